//! DLedger's RPCs as they travel on the peer port (openmessaging/dledger 0.3.1.2, the version
//! Apache RocketMQ pins).
//!
//! Every RPC is a remoting frame whose code is a [`request`] code (> 32767, so JSON headers only)
//! and whose **body** is the fastjson JSON of the request object; the response frame has code 200
//! and the JSON of the response object as its body. Field names are fastjson's (getter names,
//! camelCase); fastjson leaves out `null` fields and writes `byte[]` as base64 and enums by name.
//! Getter-only properties (`PushEntryRequest.firstEntryIndex`, `count`, `batch`, ...) are written
//! as DLedger writes them and ignored when read, as fastjson ignores them.

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// DLedger's request codes (`DLedgerRequestCode`).
pub mod request {
    /// Cluster metadata (peers).
    pub const METADATA: i32 = 50000;
    /// A client append (to the leader).
    pub const APPEND: i32 = 50001;
    /// Read entries.
    pub const GET: i32 = 50002;
    /// Request a vote.
    pub const VOTE: i32 = 51001;
    /// Leader heartbeat.
    pub const HEART_BEAT: i32 = 51002;
    /// Pull entries (unused by 0.3.1.2's replication).
    pub const PULL: i32 = 51003;
    /// Leader → follower replication.
    pub const PUSH: i32 = 51004;
    /// Leadership transfer (to the leader) and take-leadership (to the transferee).
    pub const LEADERSHIP_TRANSFER: i32 = 51005;
}

/// DLedger's response codes (`DLedgerResponseCode`), carried in the JSON `code` field.
#[allow(missing_docs)]
pub mod code {
    pub const UNKNOWN: i32 = -1;
    pub const SUCCESS: i32 = 200;
    pub const TIMEOUT: i32 = 300;
    pub const METADATA_ERROR: i32 = 301;
    pub const NETWORK_ERROR: i32 = 302;
    pub const UNSUPPORTED: i32 = 303;
    pub const UNKNOWN_GROUP: i32 = 400;
    pub const UNKNOWN_MEMBER: i32 = 401;
    pub const UNEXPECTED_MEMBER: i32 = 402;
    pub const EXPIRED_TERM: i32 = 403;
    pub const NOT_LEADER: i32 = 404;
    pub const NOT_FOLLOWER: i32 = 405;
    pub const INCONSISTENT_STATE: i32 = 406;
    pub const INCONSISTENT_TERM: i32 = 407;
    pub const INCONSISTENT_INDEX: i32 = 408;
    pub const INCONSISTENT_LEADER: i32 = 409;
    pub const INDEX_OUT_OF_RANGE: i32 = 410;
    pub const UNEXPECTED_ARGUMENT: i32 = 411;
    pub const REPEATED_REQUEST: i32 = 412;
    pub const REPEATED_PUSH: i32 = 413;
    pub const DISK_ERROR: i32 = 414;
    pub const DISK_FULL: i32 = 415;
    pub const TERM_NOT_READY: i32 = 416;
    pub const FALL_BEHIND_TOO_MUCH: i32 = 417;
    pub const TAKE_LEADERSHIP_FAILED: i32 = 418;
    pub const INDEX_LESS_THAN_LOCAL_BEGIN: i32 = 419;
    pub const REQUEST_WITH_EMPTY_BODYS: i32 = 420;
    pub const PUSH_REQUEST_IS_FULL: i32 = 421;
    pub const INTERNAL_ERROR: i32 = 500;
    pub const TERM_CHANGED: i32 = 501;
    pub const WAIT_QUORUM_ACK_TIMEOUT: i32 = 502;
    pub const LEADER_PENDING_FULL: i32 = 503;
    pub const ILLEGAL_MEMBER_STATE: i32 = 504;
    pub const LEADER_NOT_READY: i32 = 505;
    pub const LEADER_TRANSFERRING: i32 = 506;
}

/// `VoteResponse.RESULT`, written by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum VoteResult {
    #[default]
    Unknown,
    Accept,
    RejectUnknownLeader,
    RejectUnexpectedLeader,
    RejectExpiredVoteTerm,
    RejectAlreadyVoted,
    RejectAlreadyHasLeader,
    RejectTermNotReady,
    RejectTermSmallThanLedger,
    RejectExpiredLedgerTerm,
    RejectSmallLedgerEndIndex,
    RejectTakingLeadership,
}

/// `PushEntryRequest.Type`, written by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PushType {
    /// Append the entry after the follower's end.
    #[default]
    Append,
    /// Only carries the commit index.
    Commit,
    /// Does the follower hold this very entry?
    Compare,
    /// Cut the follower's log so that this entry is its last.
    Truncate,
}

fn default_code() -> i32 {
    code::SUCCESS
}
fn minus_one() -> i64 {
    -1
}

/// The fields every DLedger request and response has (`RequestOrResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Base {
    /// The Raft group (`dLegerGroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The peer the message is addressed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// The sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_id: Option<String>,
    /// A [`code`] (200 = SUCCESS).
    #[serde(default = "default_code")]
    pub code: i32,
    /// The leader (of a heartbeat or push), or the candidate (of a vote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<String>,
    /// The sender's term (-1 = unset).
    #[serde(default = "minus_one")]
    pub term: i64,
}

impl Default for Base {
    fn default() -> Self {
        Base { group: None, remote_id: None, local_id: None, code: code::SUCCESS, leader_id: None, term: -1 }
    }
}

impl Base {
    /// A request base from `local` to `remote` in `group`.
    pub fn new(group: &str, local: &str, remote: &str, leader: Option<&str>, term: i64) -> Self {
        Base {
            group: Some(group.to_string()),
            remote_id: Some(remote.to_string()),
            local_id: Some(local.to_string()),
            code: code::SUCCESS,
            leader_id: leader.map(str::to_string),
            term,
        }
    }
    /// The base of a response to this request (`copyBaseInfo`).
    pub fn reply(&self, code: i32, term: i64) -> Self {
        Base { code, term, ..self.clone() }
    }
}

/// `VoteRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct VoteRequest {
    /// Common fields; `leaderId` is the candidate.
    #[serde(flatten)]
    pub base: Base,
    /// The candidate's last index.
    #[serde(default = "minus_one")]
    pub ledger_end_index: i64,
    /// The candidate's last entry's term.
    #[serde(default = "minus_one")]
    pub ledger_end_term: i64,
}

/// `VoteResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct VoteResponse {
    /// Common fields (copied from the request; `term` = the voter's term).
    #[serde(flatten)]
    pub base: Base,
    /// The vote.
    #[serde(default)]
    pub vote_result: VoteResult,
}

/// `HeartBeatRequest` and `HeartBeatResponse` (only the common fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HeartBeat {
    /// Common fields.
    #[serde(flatten)]
    pub base: Base,
}

/// Bytes written as base64 (fastjson's `byte[]`).
pub mod b64 {
    use super::*;
    /// Serializes as base64.
    pub fn serialize<S: Serializer>(v: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    /// Reads base64 (or `null` = empty).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bytes::Bytes, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(bytes::Bytes::new()),
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map(bytes::Bytes::from)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// `DLedgerEntry` as fastjson writes it (the header fields and the body in base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct WireEntry {
    /// The body.
    #[serde(with = "b64", default)]
    pub body: bytes::Bytes,
    /// Not computed by DLedger 0.3.1.2 (always 0).
    #[serde(default)]
    pub body_crc: i32,
    /// Not computed by DLedger 0.3.1.2 (always 0).
    #[serde(default)]
    pub chain_crc: i32,
    /// Reserved.
    #[serde(default)]
    pub channel: i32,
    /// Log index.
    #[serde(default)]
    pub index: i64,
    /// Magic (1).
    #[serde(default)]
    pub magic: i32,
    /// Position in the data files.
    #[serde(default)]
    pub pos: i64,
    /// Whole entry size (48 + body).
    #[serde(default)]
    pub size: i32,
    /// Term it was written in.
    #[serde(default)]
    pub term: i64,
}

/// `PushEntryRequest` (leader → follower).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PushEntryRequest {
    /// Common fields.
    #[serde(flatten)]
    pub base: Base,
    /// The leader's committed index.
    #[serde(default = "minus_one")]
    pub commit_index: i64,
    /// What to do.
    #[serde(default, rename = "type")]
    pub kind: PushType,
    /// The entry (APPEND, COMPARE, TRUNCATE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<WireEntry>,
    /// Batch push (`enableBatchPush`): consecutive entries of an APPEND, `entry` then unset.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub batch_entry: Vec<WireEntry>,
    /// Sum of the batch's entry sizes.
    #[serde(default)]
    pub total_size: i64,
    /// Getter-only (`getFirstEntryIndex`): written, ignored when read.
    #[serde(default, skip_deserializing)]
    pub first_entry_index: i64,
    /// Getter-only (`getLastEntryIndex`).
    #[serde(default, skip_deserializing)]
    pub last_entry_index: i64,
    /// Getter-only (`getCount`).
    #[serde(default, skip_deserializing)]
    pub count: i32,
    /// Getter-only (`isBatch`).
    #[serde(default, skip_deserializing)]
    pub batch: bool,
}

/// Entries one batch push may carry when read (a batch is bounded by `maxBatchPushSize` bytes and
/// by the leader's push window; the frame size bounds the JSON anyway).
pub const MAX_BATCH_ENTRIES: usize = 64 * 1024;

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

impl PushEntryRequest {
    /// A request carrying `entry` (or none), with the getter-only fields filled as DLedger writes them.
    pub fn new(base: Base, kind: PushType, commit_index: i64, entry: Option<WireEntry>) -> Self {
        let (first, count) = match &entry {
            Some(e) => (e.index, 1),
            None => (-1, 0),
        };
        PushEntryRequest {
            base,
            commit_index,
            kind,
            entry,
            batch_entry: Vec::new(),
            total_size: 0,
            first_entry_index: first,
            last_entry_index: first,
            count,
            batch: false,
        }
    }

    /// A batch APPEND (`enableBatchPush`) of `entries` (consecutive indexes), with the getter-only
    /// fields as DLedger writes them (`firstEntryIndex`, `lastEntryIndex`, `count`, `batch`).
    pub fn batch(base: Base, commit_index: i64, entries: Vec<WireEntry>) -> Self {
        let first = entries.first().map_or(-1, |e| e.index);
        let last = entries.last().map_or(-1, |e| e.index);
        PushEntryRequest {
            base,
            commit_index,
            kind: PushType::Append,
            entry: None,
            total_size: entries.iter().map(|e| i64::from(e.size)).sum(),
            first_entry_index: first,
            last_entry_index: last,
            count: entries.len() as i32,
            batch: !entries.is_empty(),
            batch_entry: entries,
        }
    }

    /// The batch's entries if they are consecutive from the first one, each with its term (what
    /// a follower appends); `None` for a batch out of order or too long.
    pub fn batch_entries(&self) -> Option<(i64, Vec<(i64, WireEntry)>)> {
        let first = self.batch_entry.first()?.index;
        if self.batch_entry.len() > MAX_BATCH_ENTRIES
            || self.batch_entry.iter().enumerate().any(|(k, e)| e.index != first + k as i64)
        {
            return None;
        }
        Some((first, self.batch_entry.iter().map(|e| (e.term, e.clone())).collect()))
    }
}

/// `PushEntryResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PushEntryResponse {
    /// Common fields.
    #[serde(flatten)]
    pub base: Base,
    /// The index the response is about (`Long`, may be null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<i64>,
    /// The follower's first index.
    #[serde(default)]
    pub begin_index: i64,
    /// The follower's last index.
    #[serde(default)]
    pub end_index: i64,
    /// Entries acknowledged (batch).
    #[serde(default)]
    pub count: i32,
}

/// `LeadershipTransferRequest` (to the leader: transfer; to the transferee: take leadership).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LeadershipTransferRequest {
    /// Common fields.
    #[serde(flatten)]
    pub base: Base,
    /// The current leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_id: Option<String>,
    /// Who should lead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferee_id: Option<String>,
    /// The leader's last index when the transfer started.
    #[serde(default)]
    pub take_leadership_ledger_index: i64,
}

/// `LeadershipTransferResponse` (only the common fields).
pub type LeadershipTransferResponse = HeartBeat;

/// `MetadataRequest` (only the common fields).
pub type MetadataRequest = HeartBeat;

/// `MetadataResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MetadataResponse {
    /// Common fields.
    #[serde(flatten)]
    pub base: Base,
    /// Peer id → address.
    #[serde(default)]
    pub peers: std::collections::BTreeMap<String, String>,
}

/// `AppendEntryRequest` (client → leader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AppendEntryRequest {
    /// Common fields.
    #[serde(flatten)]
    pub base: Base,
    /// What to append.
    #[serde(with = "b64", default)]
    pub body: bytes::Bytes,
}

/// `AppendEntryResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntryResponse {
    /// Common fields.
    #[serde(flatten)]
    pub base: Base,
    /// The entry's index (-1 if not appended).
    #[serde(default = "minus_one")]
    pub index: i64,
    /// The entry's position (-1 if not appended).
    #[serde(default = "minus_one")]
    pub pos: i64,
}

/// A body that is not the JSON of the expected object.
#[derive(Debug, thiserror::Error)]
#[error("bad DLedger {what} body: {source}")]
pub struct WireError {
    /// Which object.
    pub what: &'static str,
    /// The JSON error.
    #[source]
    pub source: serde_json::Error,
}

/// Parses a JSON body.
pub fn decode<T: for<'de> Deserialize<'de>>(what: &'static str, body: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(body).map_err(|source| WireError { what, source })
}

/// Writes a JSON body.
pub fn encode<T: Serialize>(v: &T) -> bytes::Bytes {
    // Serializing these plain structs cannot fail (string keys, no custom errors).
    bytes::Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_request_as_dledger_writes_it() {
        // fastjson output of a VoteRequest from n0 to n1 (sorted fields, null leaderId dropped).
        let json = r#"{"code":200,"group":"RaftNode00","leaderId":"n0","ledgerEndIndex":5,"ledgerEndTerm":2,"localId":"n0","remoteId":"n1","term":3}"#;
        let r: VoteRequest = decode("VoteRequest", json.as_bytes()).unwrap();
        assert_eq!(r.base.group.as_deref(), Some("RaftNode00"));
        assert_eq!(r.base.leader_id.as_deref(), Some("n0"));
        assert_eq!((r.base.term, r.ledger_end_index, r.ledger_end_term, r.base.code), (3, 5, 2, 200));
        let back: serde_json::Value = serde_json::from_slice(&encode(&r)).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(json).unwrap());
    }

    #[test]
    fn vote_response_result_by_name() {
        let json = r#"{"code":200,"group":"g","leaderId":"n0","localId":"n0","remoteId":"n1","term":4,"voteResult":"REJECT_ALREADY_HAS_LEADER"}"#;
        let r: VoteResponse = decode("VoteResponse", json.as_bytes()).unwrap();
        assert_eq!(r.vote_result, VoteResult::RejectAlreadyHasLeader);
        assert_eq!(r.base.term, 4);
        let out = String::from_utf8(encode(&VoteResponse { vote_result: VoteResult::Accept, ..r }).to_vec()).unwrap();
        assert!(out.contains(r#""voteResult":"ACCEPT""#), "{out}");
        // Missing fields take DLedger's defaults.
        let r: VoteResponse = decode("VoteResponse", b"{}").unwrap();
        assert_eq!((r.base.code, r.base.term, r.vote_result), (200, -1, VoteResult::Unknown));
    }

    #[test]
    fn push_request_with_entry_and_getter_fields() {
        let json = r#"{"batch":false,"batchEntry":[],"code":200,"commitIndex":7,"count":1,"entry":{"body":"aGVsbG8=","bodyCrc":0,"chainCrc":0,"channel":0,"index":8,"magic":1,"pos":4096,"size":53,"term":2},"firstEntryIndex":8,"group":"g","lastEntryIndex":8,"leaderId":"n1","localId":"n1","remoteId":"n2","term":2,"totalSize":0,"type":"APPEND"}"#;
        let r: PushEntryRequest = decode("PushEntryRequest", json.as_bytes()).unwrap();
        assert_eq!(r.kind, PushType::Append);
        assert_eq!(r.commit_index, 7);
        let e = r.entry.clone().unwrap();
        assert_eq!((e.index, e.term, e.pos, e.size, e.magic), (8, 2, 4096, 53, 1));
        assert_eq!(&e.body[..], b"hello");
        let rebuilt = PushEntryRequest::new(r.base.clone(), PushType::Append, 7, Some(e));
        let a: serde_json::Value = serde_json::from_slice(&encode(&rebuilt)).unwrap();
        assert_eq!(a, serde_json::from_str::<serde_json::Value>(json).unwrap());
        // A COMMIT push has no entry; batchEntry may be null.
        let c: PushEntryRequest =
            decode("PushEntryRequest", br#"{"type":"COMMIT","commitIndex":3,"batchEntry":null,"term":1}"#).unwrap();
        assert_eq!((c.kind, c.commit_index, c.entry), (PushType::Commit, 3, None));
    }

    #[test]
    fn batch_push_as_dledger_writes_it() {
        // fastjson output of a batch PushEntryRequest (enableBatchPush): no `entry`, the entries in
        // `batchEntry`, the getter-only first/last index, count and batch flag, totalSize.
        let json = r#"{"batch":true,"batchEntry":[{"body":"aGVsbG8=","bodyCrc":0,"chainCrc":0,"channel":0,"index":8,"magic":1,"pos":4096,"size":53,"term":2},{"body":"d29ybGQh","bodyCrc":0,"chainCrc":0,"channel":0,"index":9,"magic":1,"pos":4149,"size":54,"term":2}],"code":200,"commitIndex":7,"count":2,"firstEntryIndex":8,"group":"g","lastEntryIndex":9,"leaderId":"n1","localId":"n1","remoteId":"n2","term":2,"totalSize":107,"type":"APPEND"}"#;
        let r: PushEntryRequest = decode("PushEntryRequest", json.as_bytes()).unwrap();
        assert_eq!((r.kind, r.commit_index, r.entry.is_none(), r.batch_entry.len()), (PushType::Append, 7, true, 2));
        let (first, entries) = r.batch_entries().unwrap();
        assert_eq!(first, 8);
        assert_eq!(entries.iter().map(|(t, e)| (*t, e.index)).collect::<Vec<_>>(), vec![(2, 8), (2, 9)]);
        assert_eq!(&entries[1].1.body[..], b"world!");
        let rebuilt = PushEntryRequest::batch(r.base.clone(), 7, r.batch_entry.clone());
        let a: serde_json::Value = serde_json::from_slice(&encode(&rebuilt)).unwrap();
        assert_eq!(a, serde_json::from_str::<serde_json::Value>(json).unwrap());
        // Entries out of order are refused.
        let mut bad = r.clone();
        bad.batch_entry[1].index = 11;
        assert!(bad.batch_entries().is_none());
        // The answer: the first index and the count (DLedger's `buildResponse`).
        let resp = r#"{"beginIndex":0,"code":200,"count":2,"endIndex":9,"group":"g","index":8,"leaderId":"n1","localId":"n1","remoteId":"n2","term":2}"#;
        let p: PushEntryResponse = decode("PushEntryResponse", resp.as_bytes()).unwrap();
        assert_eq!((p.index, p.count, p.end_index), (Some(8), 2, 9));
        let back: serde_json::Value = serde_json::from_slice(&encode(&p)).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(resp).unwrap());
    }

    #[test]
    fn push_response_and_transfer() {
        let json = r#"{"beginIndex":0,"code":406,"count":0,"endIndex":12,"group":"g","index":13,"leaderId":"n0","localId":"n0","remoteId":"n1","term":5}"#;
        let r: PushEntryResponse = decode("PushEntryResponse", json.as_bytes()).unwrap();
        assert_eq!((r.base.code, r.index, r.end_index), (code::INCONSISTENT_STATE, Some(13), 12));
        let t = r#"{"code":200,"group":"g","leaderId":"n0","localId":"n0","remoteId":"n2","takeLeadershipLedgerIndex":40,"term":5,"transferId":"n0","transfereeId":"n2"}"#;
        let t: LeadershipTransferRequest = decode("LeadershipTransferRequest", t.as_bytes()).unwrap();
        assert_eq!((t.transferee_id.as_deref(), t.take_leadership_ledger_index), (Some("n2"), 40));
        assert!(decode::<VoteRequest>("VoteRequest", b"[1]").is_err());
        assert!(decode::<PushEntryRequest>("PushEntryRequest", br#"{"type":"SPLIT"}"#).is_err());
    }

    #[test]
    fn append_body_is_base64() {
        let r = AppendEntryRequest { base: Base::default(), body: bytes::Bytes::from_static(b"\x00\x01\xff") };
        let s = String::from_utf8(encode(&r).to_vec()).unwrap();
        assert!(s.contains(r#""body":"AAH/""#), "{s}");
        let back: AppendEntryRequest = decode("AppendEntryRequest", s.as_bytes()).unwrap();
        assert_eq!(back, r);
    }
}
