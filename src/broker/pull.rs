//! PULL_MESSAGE (11) with long polling: a pull that finds nothing is held until a message arrives in
//! its queue or its suspend time passes, then answered. Held pulls are woken by the store's arrival
//! callback, never by polling.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use super::config::BrokerRole;
use super::core::BrokerCore;
use crate::protocol::codes::response;
use crate::protocol::header::{pull_flag, PullMessageRequestHeader, PullMessageResponseHeader};
use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RequestProcessor};
use crate::store::{GetMessageResult, GetMessageStatus};

/// Answers PULL_MESSAGE.
pub struct PullProcessor {
    core: Arc<BrokerCore>,
}

impl PullProcessor {
    /// A processor over a broker's core.
    pub fn new(core: Arc<BrokerCore>) -> Self {
        PullProcessor { core }
    }

    async fn pull(&self, conn: &ConnectionHandle, req: RemotingCommand) -> RemotingCommand {
        let h: PullMessageRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string()),
        };
        let core = &self.core;
        let (filter, topic_sys_flag) = match core.check_pull(&h, conn) {
            Ok(x) => x,
            Err((code, remark)) => return RemotingCommand::error(&req, code, remark),
        };
        // Offsets reset for this group by an operator: tell the consumer to move there (and do not
        // let the offset this pull carries overwrite the reset).
        if let Some(offset) = core.meta.offsets.take_reset(&h.consumer_group, &h.topic, h.queue_id) {
            let header = PullMessageResponseHeader {
                suggest_which_broker_id: 0,
                next_begin_offset: offset,
                min_offset: core.store().min_offset_in_queue(&h.topic, h.queue_id),
                max_offset: core.store().max_offset_in_queue(&h.topic, h.queue_id),
                topic_sys_flag: Some(topic_sys_flag),
                group_sys_flag: Some(0),
            };
            return RemotingCommand::response_to(&req, response::PULL_OFFSET_MOVED, Some("OFFSET_RESET".into()))
                .with_header(&header);
        }
        // Apache's per-pull limits (`maxTransfer*OnMessageInMemory`: every read here is from mapped
        // files); the first message always goes.
        let limits = core.store().live_keys();
        let max = (h.max_msg_nums.clamp(1, 1024) as usize).min(limits.max_transfer_count_on_message_in_memory.max(1));
        let max_bytes = h
            .max_msg_bytes
            .filter(|b| *b > 0)
            .map_or(usize::MAX, |b| b as usize)
            .min(limits.max_transfer_bytes_on_message_in_memory.max(1));
        let suspend = h.sys_flag & pull_flag::SUSPEND != 0;
        let mut result = match core.store().get_message(&h.topic, h.queue_id, h.queue_offset, max, max_bytes, &filter) {
            Ok(r) => r,
            Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, format!("store: {e}")),
        };
        core.stats_lookup(!result.messages.is_empty());
        // The offset the client commits with its pull is stored when the request arrives, as Apache
        // does on the first pass (`brokerAllowSuspend`), never when a held pull is answered later:
        // by then the client may have committed a newer offset (UPDATE_CONSUMER_OFFSET at its
        // shutdown), which this stale value would overwrite.
        if h.sys_flag & pull_flag::COMMIT_OFFSET != 0 && h.commit_offset >= 0 {
            core.commit_offset(conn, &h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
        }
        // A slave whose group has a master sends consumers that find nothing back to the master
        // (PULL_RETRY_IMMEDIATELY, suggest 0) instead of holding them.
        let redirect = core.config().broker_role == BrokerRole::Slave && core.ha.slave.is_connected();
        if suspend
            && !redirect
            && pull_code(&result, h.queue_offset) == response::PULL_NOT_FOUND
            && !core.is_shutting_down()
        {
            let hold = if core.config().long_polling_enable {
                Duration::from_millis(h.suspend_timeout_millis.clamp(0, 60_000) as u64)
            } else {
                Duration::from_millis(core.config().short_polling_time_mills)
            };
            let woken = core.waiters().wait(&h.topic, h.queue_id, h.queue_offset);
            // A message may have arrived between the read and the registration.
            if core.store().max_offset_in_queue(&h.topic, h.queue_id) <= h.queue_offset {
                let _ = tokio::time::timeout(hold, woken).await;
            }
            result = match core.store().get_message(&h.topic, h.queue_id, h.queue_offset, max, max_bytes, &filter) {
                Ok(r) => r,
                Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, format!("store: {e}")),
            };
            core.stats_lookup(!result.messages.is_empty());
        }
        let mut code = pull_code(&result, h.queue_offset);
        if redirect && code != response::SUCCESS {
            code = response::PULL_RETRY_IMMEDIATELY;
        }
        let header = PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: result.next_begin_offset,
            min_offset: result.min_offset,
            max_offset: result.max_offset,
            topic_sys_flag: Some(topic_sys_flag),
            group_sys_flag: Some(0),
        };
        let mut resp =
            RemotingCommand::response_to(&req, code, Some(result.status.name().to_string())).with_header(&header);
        if code == response::SUCCESS {
            let mut body = BytesMut::with_capacity(result.buffer_total_size);
            for m in &result.messages {
                body.extend_from_slice(m);
            }
            core.stats_get(&h.topic, &h.consumer_group, result.messages.len(), result.buffer_total_size);
            core.meta.offsets.commit_pull_offset(&h.consumer_group, &h.topic, h.queue_id, result.next_begin_offset);
            resp = resp.with_body(body.freeze());
        }
        resp
    }
}

/// Apache's mapping of a read status to the pull response code.
pub fn pull_code(r: &GetMessageResult, requested: i64) -> i32 {
    match r.status {
        GetMessageStatus::Found => response::SUCCESS,
        GetMessageStatus::NoMatchedMessage | GetMessageStatus::MessageWasRemoving => response::PULL_RETRY_IMMEDIATELY,
        GetMessageStatus::NoMatchedLogicQueue | GetMessageStatus::NoMessageInQueue => {
            if requested != 0 {
                response::PULL_OFFSET_MOVED
            } else {
                response::PULL_NOT_FOUND
            }
        }
        GetMessageStatus::OffsetFoundNull | GetMessageStatus::OffsetOverflowOne => response::PULL_NOT_FOUND,
        GetMessageStatus::OffsetOverflowBadly | GetMessageStatus::OffsetTooSmall => response::PULL_OFFSET_MOVED,
    }
}

impl RequestProcessor for PullProcessor {
    fn process<'a>(
        &'a self,
        conn: &'a ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move { Some(self.pull(conn, req).await) })
    }
}
