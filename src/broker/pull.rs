//! PULL_MESSAGE (11) with long polling: a pull that finds nothing is held until a message arrives in
//! its queue or its suspend time passes, then answered. Held pulls are woken by the store's arrival
//! callback, never by polling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::config::BrokerRole;
use super::core::BrokerCore;
use crate::protocol::codes::response;
use crate::protocol::header::{pull_flag, PullMessageRequestHeader, PullMessageResponseHeader};
use crate::protocol::message::java_string_hash;
use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RequestProcessor};
use crate::store::{GetMessageResult, GetMessageStatus};

/// A tag filter: everything, or the tags whose hash codes are listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    /// `*` (or empty): every message matches.
    pub all: bool,
    /// Hash codes of the subscribed tags.
    pub codes: Vec<i64>,
}

impl TagFilter {
    /// Everything.
    pub fn all() -> Self {
        TagFilter { all: true, codes: Vec::new() }
    }
    /// Parses a TAG expression: `*`, or tags separated by `||`.
    pub fn parse(expression: &str) -> Self {
        let e = expression.trim();
        if e.is_empty() || e == "*" {
            return Self::all();
        }
        let codes =
            e.split("||").map(str::trim).filter(|t| !t.is_empty()).map(|t| java_string_hash(t) as i64).collect();
        TagFilter { all: false, codes }
    }
    /// True if a message with this consume-queue tags code passes.
    pub fn matches(&self, tags_code: i64) -> bool {
        self.all || self.codes.contains(&tags_code)
    }
}

/// What a pull selects by: tags (matched on the consume queue) or an SQL92 selector (matched on
/// each candidate message's properties).
#[derive(Debug, Clone)]
pub enum PullFilter {
    /// A TAG expression.
    Tag(TagFilter),
    /// An SQL92 expression.
    Sql(std::sync::Arc<crate::filter::sql92::Expr>),
}

impl PullFilter {
    /// Compiles a subscription of `expression_type` (`TAG` when empty), refusing SQL92 unless
    /// `enablePropertyFilter` is on, with Apache's codes and remarks.
    pub fn build(
        expression_type: Option<&str>,
        expression: &str,
        property_filter_enabled: bool,
    ) -> Result<PullFilter, (i32, String)> {
        let t = expression_type.map(str::trim).filter(|t| !t.is_empty()).unwrap_or("TAG");
        if t.eq_ignore_ascii_case("TAG") {
            return Ok(PullFilter::Tag(TagFilter::parse(expression)));
        }
        if !t.eq_ignore_ascii_case("SQL92") {
            return Err((response::SUBSCRIPTION_PARSE_FAILED, format!("unknown expression type {t}")));
        }
        if !property_filter_enabled {
            return Err((
                response::SYSTEM_ERROR,
                format!("The broker does not support consumer to filter message by {t}"),
            ));
        }
        crate::filter::sql92::compile(expression).map(|e| PullFilter::Sql(std::sync::Arc::new(e))).map_err(|e| {
            (response::SUBSCRIPTION_PARSE_FAILED, format!("parse the consumer's subscription failed: {e}"))
        })
    }
}

impl crate::store::MessageFilter for &PullFilter {
    fn is_matched_by_consume_queue(&self, tags_code: i64) -> bool {
        match self {
            PullFilter::Tag(t) => t.matches(tags_code),
            PullFilter::Sql(_) => true,
        }
    }
    fn is_matched_by_commit_log(&self, record: &[u8]) -> bool {
        match self {
            PullFilter::Tag(_) => true,
            PullFilter::Sql(expr) => match crate::protocol::message::check_record(record, false) {
                crate::protocol::message::RecordCheck::Message(v) => {
                    let props = v.properties(record);
                    expr.matches(&|k: &str| crate::protocol::message::find_property(props, k))
                }
                _ => false,
            },
        }
    }
}

/// Held pulls of one queue: the offset each waits beyond, and its wake-up.
type Held = Vec<(i64, oneshot::Sender<()>)>;

/// Pulls waiting for messages, by queue. The store's arrival callback wakes them.
#[derive(Default)]
pub struct PullWaiters {
    map: Mutex<HashMap<(String, i32), Held>>,
}

impl PullWaiters {
    /// Registers a wait for a message at or beyond `offset` in the queue.
    pub fn wait(&self, topic: &str, queue_id: i32, offset: i64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.map.lock();
        let v = map.entry((topic.to_string(), queue_id)).or_default();
        v.retain(|(_, s)| !s.is_closed());
        v.push((offset, tx));
        rx
    }

    /// A queue's max offset grew to `max_offset`: wakes the pulls it satisfies.
    pub fn notify(&self, topic: &str, queue_id: i32, max_offset: i64) {
        let mut map = self.map.lock();
        let key = (topic.to_string(), queue_id);
        let Some(v) = map.get_mut(&key) else { return };
        let mut i = 0;
        while i < v.len() {
            if v[i].0 < max_offset || v[i].1.is_closed() {
                let (_, tx) = v.swap_remove(i);
                let _ = tx.send(());
            } else {
                i += 1;
            }
        }
        if v.is_empty() {
            map.remove(&key);
        }
    }

    /// Wakes every held pull (shutdown).
    pub fn wake_all(&self) {
        let drained: Vec<_> = self.map.lock().drain().collect();
        for (_, v) in drained {
            for (_, tx) in v {
                let _ = tx.send(());
            }
        }
    }

    /// Pulls held now.
    pub fn held(&self) -> usize {
        self.map.lock().values().map(Vec::len).sum()
    }
}

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
        let max = h.max_msg_nums.clamp(1, 1024) as usize;
        let max_bytes = h.max_msg_bytes.filter(|b| *b > 0).map(|b| b as usize).unwrap_or(usize::MAX);
        let suspend = h.sys_flag & pull_flag::SUSPEND != 0;
        let mut result = match core.store().get_message(&h.topic, h.queue_id, h.queue_offset, max, max_bytes, &filter) {
            Ok(r) => r,
            Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, format!("store: {e}")),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_filter() {
        let f = TagFilter::parse("TagA || TagB");
        assert!(f.matches(java_string_hash("TagA") as i64));
        assert!(f.matches(java_string_hash("TagB") as i64));
        assert!(!f.matches(java_string_hash("TagC") as i64));
        assert!(TagFilter::parse("*").matches(12345));
    }

    #[test]
    fn waiters_wake_only_satisfied_pulls() {
        let w = PullWaiters::default();
        let mut a = w.wait("T", 0, 5);
        let mut b = w.wait("T", 0, 9);
        let mut c = w.wait("T", 1, 0);
        w.notify("T", 0, 6);
        assert!(a.try_recv().is_ok());
        assert!(b.try_recv().is_err());
        assert!(c.try_recv().is_err());
        assert_eq!(w.held(), 2);
        w.wake_all();
        assert!(b.try_recv().is_ok() && c.try_recv().is_ok());
        assert_eq!(w.held(), 0);
    }
}
