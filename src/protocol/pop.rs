//! JSON of POP consumption: request bodies (BATCH_ACK_MESSAGE, QUERY_ASSIGNMENT,
//! SET_MESSAGE_REQUEST_MODE) and the records written to the revive topic (PopCheckPoint, AckMsg,
//! BatchAckMsg), with Apache's field names (spec: messaging-5x.md §4).

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Ordered pops answer with this revive queue (`KeyBuilder.POP_ORDER_REVIVE_QUEUE`).
pub const POP_ORDER_REVIVE_QUEUE: i32 = 999;
/// Tag of checkpoint records.
pub const CK_TAG: &str = "ck";
/// Tag of ack records.
pub const ACK_TAG: &str = "ack";
/// Tag of batch ack records.
pub const BATCH_ACK_TAG: &str = "bAck";
/// The group whose offsets of the revive topic are the revive progress.
pub const REVIVE_GROUP: &str = "CID_RMQ_SYS_REVIVE_GROUP";

/// A message queue as clients write it (`{"brokerName","queueId","topic"}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageQueueBody {
    /// Broker name.
    pub broker_name: String,
    /// Queue id.
    pub queue_id: i32,
    /// Topic.
    pub topic: String,
}

/// One acknowledged range of BATCH_ACK_MESSAGE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchAck {
    /// Consumer group.
    #[serde(rename = "c", alias = "consumerGroup")]
    pub consumer_group: String,
    /// Topic (the original; `r` says whether it is the retry topic).
    #[serde(rename = "t", alias = "topic")]
    pub topic: String,
    /// Retry flag (`0`, `1`, `2`).
    #[serde(rename = "r", alias = "retry")]
    pub retry: String,
    /// Checkpoint start offset.
    #[serde(rename = "so", alias = "startOffset")]
    pub start_offset: i64,
    /// Queue id.
    #[serde(rename = "q", alias = "queueId")]
    pub queue_id: i32,
    /// Revive queue.
    #[serde(rename = "rq", alias = "reviveQueueId")]
    pub revive_queue_id: i32,
    /// Pop time.
    #[serde(rename = "pt", alias = "popTime")]
    pub pop_time: i64,
    /// Invisible time.
    #[serde(rename = "it", alias = "invisibleTime")]
    pub invisible_time: i64,
    /// Acked offsets minus `so`, as a Java `BitSet.toByteArray()` in base64 (fastjson's byte[]).
    #[serde(rename = "b", alias = "bitSet")]
    pub bit_set: String,
}

impl BatchAck {
    /// The set bits (offset - start offset), at most `limit` of them; `None` if `b` is not base64.
    pub fn bits(&self, limit: usize) -> Option<Vec<u32>> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(self.bit_set.as_bytes()).ok()?;
        let mut out = Vec::new();
        for (i, b) in bytes.iter().enumerate() {
            for j in 0..8 {
                if b & (1 << j) != 0 {
                    if out.len() >= limit {
                        return Some(out);
                    }
                    out.push((i * 8 + j) as u32);
                }
            }
        }
        Some(out)
    }

    /// Encodes bits as Java's `BitSet.toByteArray()` in base64.
    pub fn encode_bits(bits: &[u32]) -> String {
        let len = bits.iter().map(|b| *b as usize / 8 + 1).max().unwrap_or(0);
        let mut bytes = vec![0u8; len];
        for b in bits {
            bytes[*b as usize / 8] |= 1 << (b % 8);
        }
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// BATCH_ACK_MESSAGE body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchAckMessageRequestBody {
    /// Broker name.
    pub broker_name: String,
    /// The acks.
    pub acks: Vec<BatchAck>,
}

/// QUERY_ASSIGNMENT body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueryAssignmentRequestBody {
    /// Topic.
    pub topic: String,
    /// Consumer group.
    pub consumer_group: String,
    /// Client id.
    pub client_id: String,
    /// Allocation strategy name.
    pub strategy_name: String,
    /// `CLUSTERING` or `BROADCASTING`.
    pub message_model: String,
}

/// One queue of a QUERY_ASSIGNMENT answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageQueueAssignment {
    /// The queue (`queueId` -1 in POP mode: every queue of the broker).
    pub message_queue: MessageQueueBody,
    /// `PULL` or `POP`.
    pub mode: String,
    /// Extra attributes.
    pub attachments: BTreeMap<String, String>,
}

/// QUERY_ASSIGNMENT answer body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueryAssignmentResponseBody {
    /// The assigned queues.
    pub message_queue_assignments: Vec<MessageQueueAssignment>,
}

/// SET_MESSAGE_REQUEST_MODE body (also the value stored per topic and group).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SetMessageRequestModeRequestBody {
    /// Topic.
    pub topic: String,
    /// Consumer group.
    pub consumer_group: String,
    /// `PULL` or `POP`.
    pub mode: String,
    /// In POP mode, how many queues each client shares (0: all).
    pub pop_share_queue_num: i32,
}

/// A checkpoint of one popped batch (Apache's `PopCheckPoint`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PopCheckPoint {
    /// First offset considered.
    #[serde(rename = "so")]
    pub start_offset: i64,
    /// Pop time.
    #[serde(rename = "pt")]
    pub pop_time: i64,
    /// Invisible time.
    #[serde(rename = "it")]
    pub invisible_time: i64,
    /// Acked bitmap (by index in `d`).
    #[serde(rename = "bm")]
    pub bit_map: i32,
    /// Number of messages.
    #[serde(rename = "n")]
    pub num: i32,
    /// Queue id.
    #[serde(rename = "q")]
    pub queue_id: i32,
    /// Topic popped (the retry topic for retried messages).
    #[serde(rename = "t")]
    pub topic: String,
    /// Consumer group.
    #[serde(rename = "c")]
    pub cid: String,
    /// Offset of the checkpoint in the revive queue.
    #[serde(rename = "ro")]
    pub revive_offset: i64,
    /// Popped offsets minus `so`.
    #[serde(rename = "d")]
    pub queue_offset_diff: Vec<i32>,
    /// Broker name.
    #[serde(rename = "bn")]
    pub broker_name: String,
    /// Re-put count.
    #[serde(rename = "rp")]
    pub re_put_times: Option<String>,
}

impl PopCheckPoint {
    /// When its messages become visible again.
    pub fn revive_time(&self) -> i64 {
        self.pop_time + self.invisible_time
    }
    /// The queue offset of the i-th message.
    pub fn offset_of(&self, i: usize) -> i64 {
        match self.queue_offset_diff.get(i) {
            Some(d) => self.start_offset + *d as i64,
            None => self.start_offset + i as i64,
        }
    }
    /// The index of a queue offset among the popped ones.
    pub fn index_of(&self, offset: i64) -> Option<usize> {
        if self.queue_offset_diff.is_empty() {
            let i = offset - self.start_offset;
            return (i >= 0 && i < self.num as i64).then_some(i as usize);
        }
        self.queue_offset_diff.iter().position(|d| self.start_offset + *d as i64 == offset)
    }
}

/// An ack record (Apache's `AckMsg`; with `aol` a `BatchAckMsg`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AckMsg {
    /// Acked offset (-1 in a batch).
    #[serde(rename = "ao", alias = "ackOffset")]
    pub ack_offset: i64,
    /// Checkpoint start offset.
    #[serde(rename = "so", alias = "startOffset")]
    pub start_offset: i64,
    /// Consumer group.
    #[serde(rename = "c", alias = "consumerGroup")]
    pub consumer_group: String,
    /// Topic.
    #[serde(rename = "t", alias = "topic")]
    pub topic: String,
    /// Queue id.
    #[serde(rename = "q", alias = "queueId")]
    pub queue_id: i32,
    /// Pop time.
    #[serde(rename = "pt", alias = "popTime")]
    pub pop_time: i64,
    /// Broker name.
    #[serde(rename = "bn", alias = "brokerName")]
    pub broker_name: String,
    /// Acked offsets of a batch ack.
    #[serde(rename = "aol", alias = "ackOffsetList", skip_serializing_if = "Option::is_none")]
    pub ack_offset_list: Option<Vec<i64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitset_matches_java() {
        // new BitSet(); set(0); set(3); set(9) -> toByteArray [0x09, 0x02] -> "CQI="
        assert_eq!(BatchAck::encode_bits(&[0, 3, 9]), "CQI=");
        let b = BatchAck { bit_set: "CQI=".into(), ..Default::default() };
        assert_eq!(b.bits(100), Some(vec![0, 3, 9]));
    }

    #[test]
    fn checkpoint_json_keys() {
        let ck = PopCheckPoint { start_offset: 3, num: 2, queue_offset_diff: vec![0, 1], ..Default::default() };
        let s = serde_json::to_string(&ck).expect("json");
        assert!(s.contains("\"so\":3") && s.contains("\"d\":[0,1]") && s.contains("\"bn\""));
        assert_eq!(ck.index_of(4), Some(1));
        assert_eq!(ck.offset_of(1), 4);
    }
}
