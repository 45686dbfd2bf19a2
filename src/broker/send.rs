//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320) and CONSUMER_SEND_MSG_BACK (36).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, warn};

use super::core::BrokerCore;
use super::delay::{apply_delay, prop, RETRY_PREFIX};
use crate::protocol::codes::{request, response};
use crate::protocol::header::{ConsumerSendMsgBackRequestHeader, SendMessageRequestHeader, SendMessageResponseHeader};
use crate::protocol::message::{self, decode_batch_body};
use crate::remoting::command::{CommandHeader, ExtFields};
use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RequestProcessor};
use crate::store::commitlog::PutMessageStatus;
use crate::store::MessageInner;
use crate::store::PutMessageResult;

/// Maps a store result to the response code and remark Apache answers (spec: remoting.md §9).
pub fn put_status_response(
    status: PutMessageStatus,
    max_message_size: usize,
    disk_info: impl FnOnce() -> String,
) -> (i32, Option<String>) {
    match status {
        PutMessageStatus::PutOk => (response::SUCCESS, None),
        PutMessageStatus::FlushDiskTimeout => (response::FLUSH_DISK_TIMEOUT, None),
        PutMessageStatus::FlushSlaveTimeout => (response::FLUSH_SLAVE_TIMEOUT, None),
        PutMessageStatus::SlaveNotAvailable => (response::SLAVE_NOT_AVAILABLE, None),
        PutMessageStatus::MessageIllegal | PutMessageStatus::PropertiesSizeExceeded => (
            response::MESSAGE_ILLEGAL,
            Some(format!(
                "the message is illegal, maybe msg body or properties length not matched. msg body length limit {max_message_size}B, msg properties length limit 32KB."
            )),
        ),
        PutMessageStatus::ServiceNotAvailable => (
            response::SERVICE_NOT_AVAILABLE,
            Some(format!(
                "service not available now. It may be caused by one of the following reasons: the broker's disk is full [{}], messages are put to the slave, message store has been shut down, etc.",
                disk_info()
            )),
        ),
        PutMessageStatus::OsPageCacheBusy => {
            (response::SYSTEM_BUSY, Some("[PC_SYNCHRONIZED]broker busy, start flow control for a while".into()))
        }
        PutMessageStatus::CreateMappedFileFailed => {
            (response::SYSTEM_ERROR, Some("create mapped file failed, server is busy or broken.".into()))
        }
        PutMessageStatus::UnknownError => (response::SYSTEM_ERROR, Some("UNKNOWN_ERROR".into())),
    }
}

/// The inner message of a send (one message, or one of a batch) without its properties.
fn message_of(
    h: &SendMessageRequestHeader,
    queue_id: i32,
    body: Bytes,
    born_host: SocketAddr,
    store_host: SocketAddr,
) -> MessageInner {
    let mut m = MessageInner::new(h.topic.clone(), queue_id, body);
    m.flag = h.flag;
    m.sys_flag = h.sys_flag;
    m.born_timestamp = h.born_timestamp;
    m.born_host = born_host;
    m.store_host = store_host;
    m.reconsume_times = h.reconsume_times.unwrap_or(0);
    m
}

/// The properties the single-send path looks at, found in one pass over the properties string
/// (each is what `find_property` gives).
struct SendProps<'a> {
    cluster: Option<&'a str>,
    uniq_key: Option<&'a str>,
    /// None of the properties that make a send special (half, timer, delay) is there: the
    /// transaction, timer and delay rewrites would leave the message as it is.
    plain: bool,
}

impl<'a> SendProps<'a> {
    fn scan(properties: &'a str) -> Self {
        let [cluster, uniq_key, tran, delay, sec, ms, at] = message::find_properties(
            properties,
            [
                prop::CLUSTER,
                message::property::UNIQ_KEY,
                prop::TRAN_MSG,
                message::property::DELAY,
                message::property::TIMER_DELAY_SEC,
                message::property::TIMER_DELAY_MS,
                message::property::TIMER_DELIVER_MS,
            ],
        );
        let plain = tran.is_none() && delay.is_none() && sec.is_none() && ms.is_none() && at.is_none();
        SendProps { cluster, uniq_key, plain }
    }
}

/// Answers the send requests.
pub struct SendProcessor {
    core: Arc<BrokerCore>,
}

impl SendProcessor {
    /// A processor over a broker's core.
    pub fn new(core: Arc<BrokerCore>) -> Self {
        SendProcessor { core }
    }

    async fn send(&self, conn: &ConnectionHandle, mut req: RemotingCommand) -> RemotingCommand {
        let v2 =
            matches!(req.code, request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE | request::SEND_REPLY_MESSAGE_V2);
        // The header's strings are moved out: below, the request is needed only to answer it.
        let mut h = match SendMessageRequestHeader::take(&mut req.ext_fields, v2) {
            Ok(h) => h,
            Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string()),
        };
        let core = &self.core;
        if let Err((code, remark)) = core.check_writable() {
            return RemotingCommand::error(&req, code, remark);
        }
        let topic = match core.topic_for_send(&h, conn) {
            Ok(t) => t,
            Err((code, remark)) => return RemotingCommand::error(&req, code, remark),
        };
        let write_queues = topic.write_queue_nums.max(1);
        let queue_id = if h.queue_id < 0 { (rand_u32() % write_queues as u32) as i32 } else { h.queue_id };
        if queue_id >= topic.write_queue_nums.max(topic.read_queue_nums) {
            return RemotingCommand::error(
                &req,
                response::INVALID_PARAMETER,
                format!("request queueId[{queue_id}] is illegal, {:?} Producer: {}", h.topic, conn.peer()),
            );
        }
        let store_host = core.store_host();
        let cfg = core.config();
        let cluster = cfg.broker_cluster_name.as_str();
        let batch = req.code == request::SEND_BATCH_MESSAGE || h.batch == Some(true);
        let (result, transaction_id) = if batch {
            let items = match decode_batch_body(&req.body) {
                Ok(items) if !items.is_empty() => items,
                Ok(_) => {
                    return RemotingCommand::error(&req, response::MESSAGE_ILLEGAL, "the batch body holds no message")
                }
                Err(e) => {
                    return RemotingCommand::error(&req, response::MESSAGE_ILLEGAL, format!("bad batch body: {e}"))
                }
            };
            if h.topic.starts_with(RETRY_PREFIX) {
                return RemotingCommand::error(
                    &req,
                    response::MESSAGE_ILLEGAL,
                    "batch request does not support retry group",
                );
            }
            let msgs: Vec<MessageInner> = items
                .into_iter()
                .map(|it| {
                    let mut m = message_of(&h, queue_id, it.body, conn.peer(), store_host);
                    m.flag = it.flag;
                    m.properties = it.properties;
                    if message::find_property(&m.properties, prop::CLUSTER).is_none() {
                        m.push_property(prop::CLUSTER, cluster);
                    }
                    m
                })
                .collect();
            if msgs.iter().any(|m| message::find_property(&m.properties, message::property::DELAY).is_some()) {
                return RemotingCommand::error(&req, response::MESSAGE_ILLEGAL, "batch message does not support delay");
            }
            let uniq = h.properties.as_deref().and_then(|p| message::find_property(p, message::property::UNIQ_KEY));
            (core.put_messages(&msgs).await, uniq.map(str::to_string))
        } else {
            // One pass over the properties for what this path needs; they then move into the message.
            let properties = h.properties.take().unwrap_or_default();
            let found = SendProps::scan(&properties);
            let transaction_id = found.uniq_key.map(str::to_string);
            let (has_cluster, plain) = (found.cluster.is_some(), found.plain);
            let mut m = message_of(&h, queue_id, req.body.clone(), conn.peer(), store_host);
            m.properties = properties;
            if !has_cluster {
                m.push_property(prop::CLUSTER, cluster);
            }
            if let Some(resp) = self.route_retry_to_dlq(&req, &h, &mut m) {
                return resp;
            }
            if !plain {
                if let Err((code, remark)) = super::transaction::prepare_half(core, &mut m) {
                    return RemotingCommand::error(&req, code, remark);
                }
                if let Err((code, remark)) = super::timer::apply_timer(core, &mut m) {
                    return RemotingCommand::error(&req, code, remark);
                }
                apply_delay(&mut m, core.max_delay_level());
            }
            (core.put_message(m).await, transaction_id)
        };
        self.answer(&req, &h, queue_id, result, transaction_id)
    }

    /// A message sent to `%RETRY%group` that has been reconsumed too often goes to `%DLQ%group`.
    fn route_retry_to_dlq(
        &self,
        req: &RemotingCommand,
        h: &SendMessageRequestHeader,
        m: &mut MessageInner,
    ) -> Option<RemotingCommand> {
        let group = h.topic.strip_prefix(RETRY_PREFIX)?;
        let max = h.max_reconsume_times.unwrap_or(16);
        if m.reconsume_times < max {
            return None;
        }
        match self.core.dlq_topic(group) {
            Ok(dlq) => {
                m.topic = dlq;
                m.queue_id = 0;
                None
            }
            Err((code, remark)) => Some(RemotingCommand::error(req, code, remark)),
        }
    }

    fn answer(
        &self,
        req: &RemotingCommand,
        h: &SendMessageRequestHeader,
        queue_id: i32,
        r: PutMessageResult,
        transaction_id: Option<String>,
    ) -> RemotingCommand {
        let (code, remark) = put_status_response(r.status, self.core.max_message_size(), || self.core.disk_info());
        let mut resp = RemotingCommand::response_to(req, code, remark);
        resp.ext_fields = ExtFields::with_capacity(6);
        if let (true, Some(a)) = (r.status.is_stored(), r.append) {
            let header = SendMessageResponseHeader {
                msg_id: a.msg_id,
                queue_id,
                queue_offset: a.logics_offset,
                transaction_id,
                batch_uniq_id: None,
            };
            header.write_ext_fields(&mut resp.ext_fields);
            self.core.stats_put(&h.topic, a.msg_num, a.wrote_bytes);
            debug!(topic = %h.topic, queue_id, offset = a.logics_offset, "stored");
        } else if code != response::SUCCESS {
            warn!(topic = %h.topic, status = r.status.name(), "send refused");
        }
        let cfg = self.core.config();
        resp.ext_fields.insert_static("MSG_REGION", cfg.region_id.clone());
        resp.ext_fields.insert_static("TRACE_ON", String::from(if cfg.trace_on { "true" } else { "false" }));
        resp
    }

    async fn send_back(&self, req: RemotingCommand) -> RemotingCommand {
        let h: ConsumerSendMsgBackRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string()),
        };
        match self.core.send_back(&h).await {
            Ok(()) => RemotingCommand::success(&req),
            Err((code, remark)) => RemotingCommand::error(&req, code, remark),
        }
    }
}

impl RequestProcessor for SendProcessor {
    fn process<'a>(
        &'a self,
        conn: &'a ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move {
            Some(match req.code {
                request::CONSUMER_SEND_MSG_BACK => self.send_back(req).await,
                _ => self.send(conn, req).await,
            })
        })
    }
}

/// A cheap, thread-local pseudo-random number (queue selection only).
fn rand_u32() -> u32 {
    use std::cell::Cell;
    thread_local!(static S: Cell<u64> = Cell::new(0x9E37_79B9_7F4A_7C15 ^ (std::process::id() as u64)));
    S.with(|s| {
        let mut x = s.get().wrapping_add(crate::util::now_millis() as u64);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 32) as u32
    })
}
