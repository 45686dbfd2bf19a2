//! Transactional messages, as Apache RocketMQ 5 keeps them (spec: messaging-5x.md §1).
//!
//! - A half send (property `TRAN_MSG=true`) is stored in `RMQ_SYS_TRANS_HALF_TOPIC` queue 0 with its
//!   real topic and queue in `REAL_TOPIC` / `REAL_QID` ([`prepare_half`], one call from the send path).
//! - END_TRANSACTION (37) commits (the half message is put to its real topic) or rolls back; either
//!   way an op record (`RMQ_SYS_TRANS_OP_HALF_TOPIC`, tag `d`, body `<half queue offset>,`) marks
//!   the half message resolved ([`end::EndTransactionProcessor`]).
//! - The check service ([`check::TransactionCheckService`]) scans unresolved half messages, asks
//!   the producer group (CHECK_TRANSACTION_STATE, 39) and discards after `transactionCheckMax`
//!   checks. Its progress is the consumer offsets of group `CID_RMQ_SYS_TRANS` on the half and op
//!   topics.
//!
//! The pure message rewrites live here; the service reaches its broker only through [`TxHost`].

pub mod check;
pub mod end;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::protocol::codes::response;
use crate::protocol::message::{self, property, sysflag, MessageExt};
use crate::remoting::{BoxFuture, ConnectionHandle};
use crate::store::message::{encode_record, RecordStamp};
use crate::store::{MessageInner, MessageStore, PutMessageResult};

pub use crate::broker::meta::topic::{
    RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC as CHECK_MAX_TIME_TOPIC, RMQ_SYS_TRANS_HALF_TOPIC as HALF_TOPIC,
    RMQ_SYS_TRANS_OP_HALF_TOPIC as OP_TOPIC,
};

/// The consumer group whose offsets on the half and op topics are the check service's progress
/// (Apache's `MixAll.CID_SYS_RMQ_TRANS`).
pub const TRANS_GROUP: &str = "CID_RMQ_SYS_TRANS";
/// Tag of an op record.
pub const REMOVE_TAG: &str = "d";
/// Separator after each half offset in an op record body.
pub const OFFSET_SEPARATOR: char = ',';

/// Property keys of transactional messages.
pub mod prop {
    /// `"true"` marks a half send.
    pub const TRAN_MSG: &str = "TRAN_MSG";
    /// Producer group (whom to check back; checked at END_TRANSACTION).
    pub const PGROUP: &str = "PGROUP";
    /// Copy of UNIQ_KEY the broker adds to a half message.
    pub const TRANSACTION_ID: &str = "__transactionId__";
    /// Check-backs done so far (decimal).
    pub const CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
    /// Client: custom delay before the first check, seconds.
    pub const CHECK_IMMUNITY_TIME: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
    /// Broker: queue offset of the original half message of a re-appended immunity copy.
    pub const PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
}

/// Why a transaction request cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// Nothing (or no message) at the commitlog offset.
    #[error("Find prepared transaction message failed")]
    HalfNotFound,
    /// The record at the offset does not decode.
    #[error("Find prepared transaction message failed: {source}")]
    HalfUnreadable {
        /// Why.
        source: message::DecodeError,
    },
    /// The request does not match the half message (Apache's remarks).
    #[error("{0}")]
    Mismatch(&'static str),
    /// The half message lacks a property the broker wrote.
    #[error("the half message has no valid {0} property")]
    MissingProperty(&'static str),
}

impl TxError {
    /// The response code Apache answers with.
    pub fn code(&self) -> i32 {
        response::SYSTEM_ERROR
    }
}

/// Check-service settings, read afresh before every pass (the broker keys change at runtime).
#[derive(Debug, Clone, Copy)]
pub struct TxCheckConfig {
    /// `transactionTimeOut`, ms.
    pub timeout_ms: i64,
    /// `transactionCheckMax`.
    pub check_max: i32,
    /// `transactionCheckInterval`, ms.
    pub interval_ms: u64,
    /// `fileReservedTime` in ms: older half messages are discarded unchecked.
    pub file_reserved_ms: i64,
}

/// What the check service and END_TRANSACTION need of a broker. A broker implements it over its
/// own store; an acting-master slave may later implement `put` by escaping to another master.
pub trait TxHost: Send + Sync {
    /// The store half and op messages are read from.
    fn store(&self) -> &Arc<MessageStore>;
    /// Stores a message (half copies, op records, commits, discards).
    fn put(&self, m: MessageInner) -> BoxFuture<'_, PutMessageResult>;
    /// Current settings.
    fn check_config(&self) -> TxCheckConfig;
    /// Whether this broker checks half messages now (a master does; a slave does not).
    fn should_check(&self) -> bool;
    /// Committed progress of [`TRANS_GROUP`] on a queue, −1 if none.
    fn progress(&self, topic: &str, queue_id: i32) -> i64;
    /// Commits progress of [`TRANS_GROUP`] on a queue.
    fn set_progress(&self, topic: &str, queue_id: i32, offset: i64);
    /// Read queues of the half topic.
    fn half_queue_nums(&self) -> i32;
    /// A live connection of a producer group, for CHECK_TRANSACTION_STATE.
    fn producer_channel(&self, group: &str) -> Option<ConnectionHandle>;
    /// The broker name (the `bname` of check requests).
    fn broker_name(&self) -> String;
    /// `brokerIP1:listenPort`, the born and store host of op records.
    fn store_host(&self) -> SocketAddr;
    /// Creates `TRANS_CHECK_MAX_TIME_TOPIC` if absent.
    fn ensure_check_max_time_topic(&self) -> Result<(), String>;
    /// True when this broker is an acting master that hands its unresolved half messages to
    /// another master instead of checking them itself.
    fn escapes_halves(&self) -> bool {
        false
    }
    /// Hands one half message (as a half send to its real topic) to another master; true if it
    /// was stored there.
    fn escape_half(&self, _m: MessageInner) -> BoxFuture<'_, bool> {
        Box::pin(async { false })
    }
}

/// The half send an acting master escapes for `half`: its real topic and queue, the half marks
/// (`TRAN_MSG`, `PGROUP`, `UNIQ_KEY`) kept, so the receiving master stores it as its own half
/// message and checks it with the producer.
pub fn escaped_half(half: &MessageExt) -> Option<MessageInner> {
    let mut props = half.properties.clone();
    let topic = props.remove(message::property::REAL_TOPIC)?;
    let qid = props.remove(message::property::REAL_QID).and_then(|q| q.parse().ok()).unwrap_or(0);
    props.remove(prop::TRANSACTION_ID);
    let mut m = base_inner(&topic, qid, half);
    m.set_properties(props);
    Some(m)
}

/// Java's `Boolean.parseBoolean`.
fn java_true(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Whether a single send is a half message: `TRAN_MSG=true`, except a message sent back with a
/// reconsume count and a delay level (clients before 4.6.1 kept the property on retries).
pub fn is_half_send(m: &MessageInner) -> bool {
    if !java_true(message::find_property(&m.properties, prop::TRAN_MSG)) {
        return false;
    }
    let delay = message::find_property(&m.properties, property::DELAY).and_then(|d| d.parse::<i32>().ok());
    !(m.reconsume_times > 0 && delay.is_some_and(|d| d > 0))
}

/// The send path's hook: a half send is refused when `rejectTransactionMessage` is set, else
/// rewritten into the half topic (see [`to_half`]). Other sends are left alone.
pub fn prepare_half(core: &crate::broker::core::BrokerCore, m: &mut MessageInner) -> Result<(), (i32, String)> {
    if !is_half_send(m) {
        return Ok(());
    }
    let cfg = core.config();
    if cfg.reject_transaction_message {
        return Err((
            response::NO_PERMISSION,
            format!("the broker[{}] sending transaction message is forbidden", cfg.broker_ip1),
        ));
    }
    to_half(m);
    Ok(())
}

/// Rewrites a half send as Apache's `parseHalfMessageInner` does: `__transactionId__` = UNIQ_KEY,
/// `REAL_TOPIC` / `REAL_QID` = where it was sent, transaction bits cleared, half topic queue 0.
/// A DELAY level is dropped (Java's transactional producer clears it too): the half message must
/// stay in the half topic.
pub fn to_half(m: &mut MessageInner) {
    let mut props = message::parse_properties(&m.properties);
    if let Some(uniq) = props.get(property::UNIQ_KEY).filter(|u| !u.is_empty()).cloned() {
        props.insert(prop::TRANSACTION_ID.into(), uniq);
    }
    props.insert(property::REAL_TOPIC.into(), m.topic.clone());
    props.insert(property::REAL_QID.into(), m.queue_id.to_string());
    props.remove(property::DELAY);
    m.set_properties(sorted(props));
    m.sys_flag &= !0xC;
    m.topic = HALF_TOPIC.into();
    m.queue_id = 0;
}

fn sorted(props: HashMap<String, String>) -> Vec<(String, String)> {
    let mut v: Vec<_> = props.into_iter().collect();
    v.sort();
    v
}

fn base_inner(topic: &str, queue_id: i32, src: &MessageExt) -> MessageInner {
    let mut m = MessageInner::new(topic, queue_id, src.body.clone());
    m.flag = src.flag;
    m.sys_flag = src.sys_flag & !(sysflag::BORNHOST_V6 | sysflag::STOREHOST_V6);
    m.born_timestamp = src.born_timestamp;
    m.born_host = src.born_host;
    m.store_host = src.store_host;
    m.reconsume_times = src.reconsume_times;
    m
}

/// Reads and decodes the message at a commitlog offset.
pub fn read_half(store: &MessageStore, commit_log_offset: i64) -> Result<MessageExt, TxError> {
    let raw = store.look_message_by_offset(commit_log_offset).ok_or(TxError::HalfNotFound)?;
    message::decode_record(&raw, false).map_err(|source| TxError::HalfUnreadable { source })
}

/// Apache's `checkPrepareMessage`: the request must name the half message's producer group,
/// queue offset and commitlog offset.
pub fn check_prepared(
    half: &MessageExt,
    producer_group: &str,
    tran_state_table_offset: i64,
    commit_log_offset: i64,
) -> Result<(), TxError> {
    if half.property(prop::PGROUP) != Some(producer_group) {
        return Err(TxError::Mismatch("The producer group wrong"));
    }
    if half.queue_offset != tran_state_table_offset {
        return Err(TxError::Mismatch("The transaction state table offset wrong"));
    }
    if half.commit_log_offset != commit_log_offset {
        return Err(TxError::Mismatch("The commit log offset wrong"));
    }
    Ok(())
}

/// The committed message: the half message back in its real topic and queue, transaction bits
/// COMMIT, `preparedTransactionOffset` = the half's commitlog offset, without `REAL_TOPIC`,
/// `REAL_QID` and `TRAN_MSG` (Apache's `endMessageTransaction`).
pub fn commit_message(half: &MessageExt) -> Result<MessageInner, TxError> {
    let topic = half.property(property::REAL_TOPIC).ok_or(TxError::MissingProperty(property::REAL_TOPIC))?;
    let queue_id = half
        .property(property::REAL_QID)
        .and_then(|q| q.parse::<i32>().ok())
        .filter(|q| *q >= 0)
        .ok_or(TxError::MissingProperty(property::REAL_QID))?;
    let mut m = base_inner(topic, queue_id, half);
    m.sys_flag = (m.sys_flag & !0xC) | sysflag::TRANSACTION_COMMIT;
    m.prepared_transaction_offset = half.commit_log_offset;
    let mut props = half.properties.clone();
    props.remove(property::REAL_TOPIC);
    props.remove(property::REAL_QID);
    props.remove(prop::TRAN_MSG);
    m.set_properties(sorted(props));
    Ok(m)
}

/// An op record marking half queue offsets resolved: op queue = half queue, tag `d`, body the
/// offsets each followed by `,` (Apache 5's merged form), born and stored by the broker.
pub fn op_message(half_queue_id: i32, half_offsets: &[i64], store_host: SocketAddr) -> MessageInner {
    let mut body = String::new();
    for o in half_offsets {
        body.push_str(&o.to_string());
        body.push(OFFSET_SEPARATOR);
    }
    let mut m = MessageInner::new(OP_TOPIC, half_queue_id, body.into_bytes());
    m.born_host = store_host;
    m.store_host = store_host;
    let uniq = crate::client::uniq::new_uniq_key();
    m.set_properties([(property::TAGS, REMOVE_TAG), (property::UNIQ_KEY, uniq.as_str()), (property::WAIT, "false")]);
    m
}

/// The half offsets an op record resolves: only tag `d` counts; entries split on `,` (a 4.x body
/// holding one bare offset reads the same); unparsable entries are skipped.
pub fn parse_op(op: &MessageExt) -> Vec<i64> {
    if op.tags() != Some(REMOVE_TAG) {
        return Vec::new();
    }
    parse_op_body(&op.body)
}

/// The offsets of an op record body.
pub fn parse_op_body(body: &[u8]) -> Vec<i64> {
    String::from_utf8_lossy(body).split(OFFSET_SEPARATOR).filter_map(|s| s.trim().parse::<i64>().ok()).collect()
}

/// A copy of a half message to append again at the end of the half queue (same topic, queue,
/// body, flags, born time and hosts) with `props` (Apache's `renewHalfMessageInner`).
pub fn renew_half(half: &MessageExt, props: &HashMap<String, String>) -> MessageInner {
    let mut m = base_inner(&half.topic, half.queue_id, half);
    let mut p = props.clone();
    p.insert(property::WAIT.into(), "false".into());
    m.set_properties(sorted(p));
    m
}

/// The copy of a half message discarded after too many checks: `TRANS_CHECK_MAX_TIME_TOPIC`
/// queue 0, same body, flags and properties.
pub fn discard_message(half: &MessageExt, props: &HashMap<String, String>) -> MessageInner {
    let mut m = base_inner(CHECK_MAX_TIME_TOPIC, 0, half);
    m.set_properties(sorted(props.clone()));
    m
}

/// The next check count of a half message: `None` when it has been checked `check_max` times
/// already (discard), else the value to store (absent → 1, else +1). Unparsable counts are −1,
/// as Apache's `getInt`, and count up from there.
pub fn next_check_times(half_props: &HashMap<String, String>, check_max: i32) -> Option<i32> {
    match half_props.get(prop::CHECK_TIMES) {
        None => Some(1),
        Some(s) => {
            let n = s.trim().parse::<i32>().unwrap_or(-1);
            (n < check_max).then_some(n + 1)
        }
    }
}

/// The time a half message is immune from checks: `transactionTimeOut`, or the client's
/// `CHECK_IMMUNITY_TIME_IN_SECONDS` (−1 = the timeout; unparsable = −1 s, as Apache's `getLong`).
pub fn immunity_ms(half_props: &HashMap<String, String>, timeout_ms: i64) -> Option<i64> {
    let s = half_props.get(prop::CHECK_IMMUNITY_TIME)?;
    let v = s.trim().parse::<i64>().unwrap_or(-1);
    Some(if v == -1 { timeout_ms } else { v.saturating_mul(1000) })
}

/// Apache's `rejectCommitOrRollback`: a producer's own END_TRANSACTION (not from a check) for a
/// half message with a custom immunity time comes too late once that time (at least the
/// timeout) has passed; the check decides then.
pub fn end_too_late(half: &MessageExt, from_check: bool, timeout_ms: i64, now: i64) -> bool {
    if from_check {
        return false;
    }
    let Some(s) = half.property(prop::CHECK_IMMUNITY_TIME).filter(|s| !s.is_empty()) else {
        return false;
    };
    let immunity = s.trim().parse::<i64>().map(|v| v.saturating_mul(1000)).unwrap_or(0).max(timeout_ms);
    now - half.born_timestamp > immunity
}

/// The body of CHECK_TRANSACTION_STATE: the half copy encoded as a stored record with its real
/// topic and queue (Apache's `MessageDecoder.encode`).
pub fn check_body(copy: &MessageExt) -> Option<Vec<u8>> {
    let topic = copy.property(property::REAL_TOPIC)?;
    let queue_id = copy.property(property::REAL_QID).and_then(|q| q.parse::<i32>().ok()).unwrap_or(0);
    let mut m = base_inner(topic, queue_id, copy);
    m.properties = copy.properties_string.clone();
    m.prepared_transaction_offset = copy.prepared_transaction_offset;
    let version = message::MessageVersion::for_topic(topic, true);
    let stamp = RecordStamp {
        version,
        body_crc: copy.body_crc,
        queue_offset: copy.queue_offset,
        physical_offset: copy.commit_log_offset,
        store_timestamp: copy.store_timestamp,
    };
    let mut out = vec![0u8; m.record_length(version)];
    let n = encode_record(&m, &stamp, &mut out)?;
    out.truncate(n);
    Some(out)
}

/// A broker as a [`TxHost`]: its own store, offsets, topics and producers.
pub struct BrokerTxHost {
    core: Arc<crate::broker::core::BrokerCore>,
    file_reserved_ms: i64,
}

impl BrokerTxHost {
    /// Over a broker's core; `file_reserved_hours` is its `fileReservedTime`.
    pub fn new(core: Arc<crate::broker::core::BrokerCore>, file_reserved_hours: u64) -> Self {
        BrokerTxHost { core, file_reserved_ms: (file_reserved_hours as i64).saturating_mul(3_600_000) }
    }
}

impl TxHost for BrokerTxHost {
    fn store(&self) -> &Arc<MessageStore> {
        self.core.store()
    }
    fn put(&self, m: MessageInner) -> BoxFuture<'_, PutMessageResult> {
        Box::pin(async move {
            let topic = m.topic.clone();
            let r = self.core.store().put_message(m).await;
            if let (true, Some(a)) = (r.status.is_stored(), r.append.as_ref()) {
                self.core.stats_put(&topic, a.msg_num, a.wrote_bytes);
            }
            r
        })
    }
    fn check_config(&self) -> TxCheckConfig {
        let c = self.core.config();
        TxCheckConfig {
            timeout_ms: c.transaction_time_out.min(i64::MAX as u64) as i64,
            check_max: c.transaction_check_max,
            interval_ms: c.transaction_check_interval,
            file_reserved_ms: self.file_reserved_ms,
        }
    }
    fn should_check(&self) -> bool {
        // A master, or a slave acting as master (which escapes its halves, see below).
        crate::broker::acting::special_services_active(&self.core)
    }
    fn escapes_halves(&self) -> bool {
        crate::broker::acting::is_acting_master(&self.core) && self.core.config().enable_remote_escape
    }
    fn escape_half(&self, m: MessageInner) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            match crate::broker::acting::escape_put(&self.core, m).await {
                Ok(()) => true,
                Err(e) => {
                    crate::broker::acting::log_escape_failure("half message hand-over", &e);
                    false
                }
            }
        })
    }
    fn progress(&self, topic: &str, queue_id: i32) -> i64 {
        self.core.meta.offsets.query_offset(TRANS_GROUP, topic, queue_id)
    }
    fn set_progress(&self, topic: &str, queue_id: i32, offset: i64) {
        let host = self.core.store_host().to_string();
        self.core.meta.offsets.commit_offset(&host, TRANS_GROUP, topic, queue_id, offset);
    }
    fn half_queue_nums(&self) -> i32 {
        self.core.meta.topics.select(HALF_TOPIC).map(|t| t.read_queue_nums).unwrap_or(1)
    }
    fn producer_channel(&self, group: &str) -> Option<ConnectionHandle> {
        self.core.meta.producers.available_channel(group)
    }
    fn broker_name(&self) -> String {
        self.core.config().broker_name.clone()
    }
    fn store_host(&self) -> SocketAddr {
        self.core.store_host()
    }
    fn ensure_check_max_time_topic(&self) -> Result<(), String> {
        let perm = crate::protocol::perm::READ | crate::protocol::perm::WRITE;
        let created = !self.core.meta.topics.contains(CHECK_MAX_TIME_TOPIC);
        self.core
            .meta
            .topics
            .create_topic_in_send_back(CHECK_MAX_TIME_TOPIC, 1, perm, false, 0)
            .map_err(|e| e.to_string())?;
        if created {
            self.core.wake_registration.notify_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn stored(m: &MessageInner, queue_offset: i64, phys: i64) -> MessageExt {
        let version = message::MessageVersion::for_topic(&m.topic, true);
        let stamp = RecordStamp {
            version,
            body_crc: message::body_crc(&m.body),
            queue_offset,
            physical_offset: phys,
            store_timestamp: m.born_timestamp + 5,
        };
        let mut out = vec![0u8; m.record_length(version)];
        let n = encode_record(m, &stamp, &mut out).unwrap();
        out.truncate(n);
        message::decode_record(&Bytes::from(out), true).unwrap()
    }

    fn half_send() -> MessageInner {
        let mut m = MessageInner::new("Orders", 3, &b"pay"[..]);
        m.sys_flag = sysflag::TRANSACTION_PREPARED;
        m.set_properties([
            ("TRAN_MSG", "true"),
            ("PGROUP", "pg"),
            ("UNIQ_KEY", "AC11000100002A9F0000000000000001"),
            ("TAGS", "t1"),
            ("DELAY", "3"),
        ]);
        m
    }

    #[test]
    fn half_rewrite_and_commit_restore() {
        let mut m = half_send();
        assert!(is_half_send(&m));
        to_half(&mut m);
        assert_eq!((m.topic.as_str(), m.queue_id, m.sys_flag & 0xC), (HALF_TOPIC, 0, 0));
        let p = message::parse_properties(&m.properties);
        assert_eq!(p["REAL_TOPIC"], "Orders");
        assert_eq!(p["REAL_QID"], "3");
        assert_eq!(p["__transactionId__"], "AC11000100002A9F0000000000000001");
        assert_eq!(p["TRAN_MSG"], "true");
        assert!(!p.contains_key("DELAY"));

        let half = stored(&m, 7, 4096);
        check_prepared(&half, "pg", 7, 4096).unwrap();
        assert_eq!(check_prepared(&half, "other", 7, 4096).unwrap_err().to_string(), "The producer group wrong");
        assert!(check_prepared(&half, "pg", 8, 4096).unwrap_err().to_string().contains("state table offset"));
        assert!(check_prepared(&half, "pg", 7, 1).unwrap_err().to_string().contains("commit log offset"));

        let c = commit_message(&half).unwrap();
        assert_eq!((c.topic.as_str(), c.queue_id), ("Orders", 3));
        assert_eq!(c.sys_flag & 0xC, sysflag::TRANSACTION_COMMIT);
        assert_eq!(c.prepared_transaction_offset, 4096);
        assert_eq!(&c.body[..], b"pay");
        let p = message::parse_properties(&c.properties);
        assert!(!p.contains_key("REAL_TOPIC") && !p.contains_key("REAL_QID") && !p.contains_key("TRAN_MSG"));
        assert_eq!(p["PGROUP"], "pg");
        assert_eq!(p["TAGS"], "t1");
    }

    #[test]
    fn retried_old_client_messages_are_not_half() {
        let mut m = half_send();
        m.reconsume_times = 1;
        assert!(!is_half_send(&m));
        m.set_properties([("TRAN_MSG", "TRUE")]);
        assert!(is_half_send(&m), "Boolean.parseBoolean ignores case; no delay level");
        m.set_properties([("TRAN_MSG", "yes")]);
        assert!(!is_half_send(&m));
    }

    #[test]
    fn op_records_merge_offsets_and_read_old_bodies() {
        let host: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let op = op_message(0, &[17, 18, 21], host);
        assert_eq!((op.topic.as_str(), op.queue_id, op.sys_flag), (OP_TOPIC, 0, 0));
        assert_eq!(&op.body[..], b"17,18,21,");
        let ext = stored(&op, 0, 0);
        assert_eq!(ext.tags(), Some("d"));
        assert_eq!(parse_op(&ext), vec![17, 18, 21]);
        assert_eq!(parse_op_body(b"42"), vec![42], "Apache 4.x: one bare offset");
        assert_eq!(parse_op_body(b"1,x,,3,"), vec![1, 3]);
        let mut other = op_message(0, &[5], host);
        other.set_properties([("TAGS", "x")]);
        assert!(parse_op(&stored(&other, 1, 100)).is_empty(), "only tag d counts");
    }

    #[test]
    fn check_counts_and_immunity() {
        let mut p = HashMap::new();
        assert_eq!(next_check_times(&p, 15), Some(1));
        p.insert(prop::CHECK_TIMES.to_string(), "14".to_string());
        assert_eq!(next_check_times(&p, 15), Some(15));
        p.insert(prop::CHECK_TIMES.to_string(), "15".to_string());
        assert_eq!(next_check_times(&p, 15), None);
        assert_eq!(immunity_ms(&p, 6000), None);
        p.insert(prop::CHECK_IMMUNITY_TIME.to_string(), "20".to_string());
        assert_eq!(immunity_ms(&p, 6000), Some(20_000));
        p.insert(prop::CHECK_IMMUNITY_TIME.to_string(), "-1".to_string());
        assert_eq!(immunity_ms(&p, 6000), Some(6000));
    }

    #[test]
    fn check_body_is_the_half_with_its_real_topic() {
        let mut m = half_send();
        to_half(&mut m);
        let half = stored(&m, 9, 8192);
        let body = check_body(&half).unwrap();
        let back = message::decode_record(&Bytes::from(body), true).unwrap();
        assert_eq!((back.topic.as_str(), back.queue_id), ("Orders", 3));
        assert_eq!((back.queue_offset, back.commit_log_offset), (9, 8192));
        assert_eq!(back.uniq_key(), Some("AC11000100002A9F0000000000000001"));
        assert_eq!(back.property("PGROUP"), Some("pg"));
        assert_eq!(&back.body[..], b"pay");
    }

    #[test]
    fn late_producer_end_is_refused_only_with_custom_immunity() {
        let mut m = half_send();
        to_half(&mut m);
        let half = stored(&m, 0, 0);
        let now = half.born_timestamp + 60_000;
        assert!(!end_too_late(&half, false, 6000, now));
        let mut m2 = m.clone();
        m2.push_property(prop::CHECK_IMMUNITY_TIME, "10");
        let half = stored(&m2, 0, 0);
        assert!(end_too_late(&half, false, 6000, now));
        assert!(!end_too_late(&half, true, 6000, now));
        assert!(!end_too_late(&half, false, 6000, half.born_timestamp + 9_000));
    }
}
