//! A transactional producer's requests: its heartbeat (so the broker can check back on it), the
//! half send and END_TRANSACTION, as Java's `TransactionMQProducer` sends them.

use bytes::Bytes;

use crate::protocol::codes::request;
use crate::protocol::header::{CheckTransactionStateRequestHeader, EndTransactionRequestHeader};
use crate::protocol::message::{decode_offset_msg_id, encode_properties, sysflag};
use crate::remoting::RemotingCommand;

/// HEART_BEAT registering `client_id` as a producer of `group` (and of no consumer group).
pub fn producer_heartbeat(client_id: &str, group: &str) -> RemotingCommand {
    let body = serde_json::json!({
        "clientID": client_id,
        "producerDataSet": [{ "groupName": group }],
        "consumerDataSet": [],
    });
    RemotingCommand::request(request::HEART_BEAT).with_body(Bytes::from(body.to_string()))
}

/// A half send (SEND_MESSAGE_V2): sysflag PREPARED, properties `TRAN_MSG=true`, `PGROUP=group`,
/// the UNIQ_KEY (the transaction id) and `extra`.
pub fn half_send_request(
    group: &str,
    topic: &str,
    queue_id: i32,
    uniq_key: &str,
    extra: &[(&str, &str)],
    body: Bytes,
) -> RemotingCommand {
    let mut props = vec![("TRAN_MSG", "true"), ("PGROUP", group), ("UNIQ_KEY", uniq_key)];
    props.extend_from_slice(extra);
    let mut h = super::send::send_header(group, topic, queue_id, 4, Some(encode_properties(props)));
    h.sys_flag = sysflag::TRANSACTION_PREPARED;
    super::send::send_request(request::SEND_MESSAGE_V2, &h, body)
}

/// How a producer ends a transaction (`commitOrRollback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// Deliver the message.
    Commit,
    /// Drop it.
    Rollback,
    /// Not known yet: the broker checks back later.
    Unknown,
}

impl TxState {
    /// The `commitOrRollback` value.
    pub fn flag(self) -> i32 {
        match self {
            TxState::Commit => sysflag::TRANSACTION_COMMIT,
            TxState::Rollback => sysflag::TRANSACTION_ROLLBACK,
            TxState::Unknown => sysflag::TRANSACTION_NOT_TYPE,
        }
    }
}

/// END_TRANSACTION after a half send: `queue_offset` and `offset_msg_id` from the send response
/// (`queueOffset`, `msgId`), `transaction_id` its UNIQ_KEY. `None` if `offset_msg_id` is not an
/// offset message id.
pub fn end_after_send(
    group: &str,
    topic: &str,
    queue_offset: i64,
    offset_msg_id: &str,
    transaction_id: &str,
    state: TxState,
) -> Option<RemotingCommand> {
    let (_, commit_log_offset) = decode_offset_msg_id(offset_msg_id)?;
    let h = EndTransactionRequestHeader {
        topic: Some(topic.into()),
        producer_group: group.into(),
        tran_state_table_offset: queue_offset,
        commit_log_offset,
        commit_or_rollback: state.flag(),
        from_transaction_check: Some(false),
        msg_id: transaction_id.into(),
        transaction_id: Some(transaction_id.into()),
        bname: None,
    };
    Some(RemotingCommand::request_with_header(request::END_TRANSACTION, &h))
}

/// END_TRANSACTION answering a CHECK_TRANSACTION_STATE (`fromTransactionCheck=true`).
pub fn end_after_check(group: &str, check: &CheckTransactionStateRequestHeader, state: TxState) -> RemotingCommand {
    let id = check.transaction_id.clone().or_else(|| check.msg_id.clone()).unwrap_or_default();
    let h = EndTransactionRequestHeader {
        topic: check.topic.clone(),
        producer_group: group.into(),
        tran_state_table_offset: check.tran_state_table_offset,
        commit_log_offset: check.commit_log_offset,
        commit_or_rollback: state.flag(),
        from_transaction_check: Some(true),
        msg_id: check.msg_id.clone().unwrap_or_else(|| id.clone()),
        transaction_id: Some(id),
        bname: check.bname.clone(),
    };
    RemotingCommand::request_with_header(request::END_TRANSACTION, &h)
}
