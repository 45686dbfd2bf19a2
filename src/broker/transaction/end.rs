//! END_TRANSACTION (37): a producer (or its answer to a check) commits or rolls back a half message.

use std::sync::Arc;

use tracing::{debug, info, warn};

use super::{check_prepared, commit_message, end_too_late, op_message, read_half, TxError};
use crate::broker::config::BrokerRole;
use crate::broker::core::BrokerCore;
use crate::protocol::codes::response;
use crate::protocol::header::EndTransactionRequestHeader;
use crate::protocol::message::{sysflag, MessageExt};
use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RequestProcessor};
use crate::store::PutMessageStatus;

/// What an END_TRANSACTION came to: the response code and remark Apache would write (the request
/// is oneway, so the client never reads it; tests and logs do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndOutcome {
    /// Response code.
    pub code: i32,
    /// Remark.
    pub remark: Option<String>,
}

impl EndOutcome {
    fn ok() -> Self {
        EndOutcome { code: response::SUCCESS, remark: None }
    }
    fn err(code: i32, remark: impl Into<String>) -> Self {
        EndOutcome { code, remark: Some(remark.into()) }
    }
}

impl From<TxError> for EndOutcome {
    fn from(e: TxError) -> Self {
        EndOutcome::err(e.code(), e.to_string())
    }
}

/// Answers END_TRANSACTION.
pub struct EndTransactionProcessor {
    core: Arc<BrokerCore>,
}

impl EndTransactionProcessor {
    /// A processor over a broker's core.
    pub fn new(core: Arc<BrokerCore>) -> Self {
        EndTransactionProcessor { core }
    }

    /// Carries out one END_TRANSACTION; `None` when Apache writes no response (an unknown state).
    pub async fn end(&self, conn: &ConnectionHandle, h: &EndTransactionRequestHeader) -> Option<EndOutcome> {
        let core = &self.core;
        if core.config().broker_role == BrokerRole::Slave {
            warn!("Message store is slave mode, so end transaction is forbidden.");
            return Some(EndOutcome::err(response::SLAVE_NOT_AVAILABLE, "end transaction on a slave is forbidden"));
        }
        let from_check = h.from_transaction_check.unwrap_or(false);
        match h.commit_or_rollback {
            sysflag::TRANSACTION_COMMIT | sysflag::TRANSACTION_ROLLBACK => {}
            sysflag::TRANSACTION_NOT_TYPE => {
                debug!(peer = %conn.peer(), msg_id = %h.msg_id, from_check, "transaction state unknown; it will be checked");
                return None;
            }
            _ => return None,
        }
        let commit = h.commit_or_rollback == sysflag::TRANSACTION_COMMIT;
        let half = match read_half(core.store(), h.commit_log_offset) {
            Ok(m) => m,
            Err(e) => {
                warn!(offset = h.commit_log_offset, msg_id = %h.msg_id, error = %e, "end transaction: no half message");
                return Some(e.into());
            }
        };
        let timeout = core.config().transaction_time_out as i64;
        if end_too_late(&half, from_check, timeout, crate::util::now_millis()) {
            warn!(msg_id = %h.msg_id, offset = h.commit_log_offset, commit, "end transaction after the check immunity time; the check decides");
            return Some(EndOutcome::err(
                response::ILLEGAL_OPERATION,
                "the immunity time of the half message has passed",
            ));
        }
        if let Err(e) = check_prepared(&half, &h.producer_group, h.tran_state_table_offset, h.commit_log_offset) {
            warn!(msg_id = %h.msg_id, error = %e, "end transaction refused");
            return Some(e.into());
        }
        if commit {
            let out = self.commit(&half).await;
            if out.code != response::SUCCESS {
                return Some(out);
            }
        }
        if from_check {
            info!(peer = %conn.peer(), msg_id = %h.msg_id, commit, "checked transaction ended by its producer");
        }
        Some(self.resolve(&half).await)
    }

    async fn commit(&self, half: &MessageExt) -> EndOutcome {
        let m = match commit_message(half) {
            Ok(m) => m,
            Err(e) => return e.into(),
        };
        let topic = m.topic.clone();
        let r = self.core.store().put_message(m).await;
        match (r.status, r.append.as_ref()) {
            (s, Some(a)) if s.is_stored() => {
                self.core.stats_put(&topic, a.msg_num, a.wrote_bytes);
                EndOutcome::ok()
            }
            (PutMessageStatus::MessageIllegal | PutMessageStatus::PropertiesSizeExceeded, _) => EndOutcome::err(
                response::MESSAGE_ILLEGAL,
                "The message is illegal, maybe msg body or properties length not matched.",
            ),
            (PutMessageStatus::ServiceNotAvailable, _) => {
                EndOutcome::err(response::SERVICE_NOT_AVAILABLE, "Service not available now.")
            }
            (s, _) => EndOutcome::err(response::SYSTEM_ERROR, s.name()),
        }
    }

    /// Writes the op record of a resolved half message.
    async fn resolve(&self, half: &MessageExt) -> EndOutcome {
        let op = op_message(half.queue_id, &[half.queue_offset], self.core.store_host());
        let r = self.core.store().put_message(op).await;
        if r.status.is_stored() {
            EndOutcome::ok()
        } else {
            // Apache answers SUCCESS here too (its op write is batched and asynchronous); the
            // half message is checked again and the producer asked once more.
            warn!(offset = half.queue_offset, status = r.status.name(), "transaction op record not written");
            EndOutcome::ok()
        }
    }
}

impl RequestProcessor for EndTransactionProcessor {
    fn process<'a>(
        &'a self,
        conn: &'a ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move {
            let h: EndTransactionRequestHeader = match req.decode_header() {
                Ok(h) => h,
                Err(e) => return Some(RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string())),
            };
            let out = self.end(conn, &h).await?;
            Some(match out.remark {
                Some(r) => RemotingCommand::error(&req, out.code, r),
                None => RemotingCommand::response_to(&req, out.code, None),
            })
        })
    }
}
