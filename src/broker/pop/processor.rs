//! The POP requests: POP_MESSAGE with long polling, ACK_MESSAGE / BATCH_ACK_MESSAGE,
//! CHANGE_MESSAGE_INVISIBLETIME, NOTIFICATION, POLLING_INFO, QUERY_ASSIGNMENT and
//! SET_MESSAGE_REQUEST_MODE (Apache's PopMessageProcessor, AckMessageProcessor,
//! ChangeInvisibleTimeProcessor, NotificationProcessor, PollingInfoProcessor,
//! QueryAssignmentProcessor).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::{pop_retry_topic, PopError, PopService, MAX_POLL_MS, POP_FROM_RETRY_PROBABILITY};
use crate::broker::core::Refusal;
use crate::broker::waiters::PullFilter;
use crate::protocol::body::TopicConfig;
use crate::protocol::codes::{request, response};
use crate::protocol::header::{
    real_topic, retry_flag, AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader,
    ChangeInvisibleTimeResponseHeader, ExtraInfo, NotificationRequestHeader, NotificationResponseHeader,
    PollingInfoRequestHeader, PollingInfoResponseHeader, PopMessageRequestHeader, PopMessageResponseHeader,
};
use crate::protocol::message::{self, decode_record, property};
use crate::protocol::perm;
use crate::protocol::pop::{
    AckMsg, BatchAckMessageRequestBody, MessageQueueAssignment, MessageQueueBody, PopCheckPoint,
    QueryAssignmentRequestBody, QueryAssignmentResponseBody, SetMessageRequestModeRequestBody, ACK_TAG, BATCH_ACK_TAG,
    CK_TAG, POP_ORDER_REVIVE_QUEUE,
};
use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RequestProcessor};
use crate::store::message::{encode_record, RecordStamp};
use crate::store::{GetMessageStatus, MessageInner};

/// `POP_CK`: the extra info the broker sets on retry messages it re-encodes under the original topic.
pub const PROPERTY_POP_CK: &str = "POP_CK";
/// `1ST_POP_TIME`: set when a message is first revived.
pub const PROPERTY_FIRST_POP_TIME: &str = "1ST_POP_TIME";

/// Answers the POP request codes.
pub struct PopProcessor {
    svc: Arc<PopService>,
}

/// The request codes this processor answers.
pub const POP_CODES: &[i32] = &[
    request::ACK_MESSAGE,
    request::BATCH_ACK_MESSAGE,
    request::CHANGE_MESSAGE_INVISIBLETIME,
    request::POLLING_INFO,
    request::QUERY_ASSIGNMENT,
    request::SET_MESSAGE_REQUEST_MODE,
];

/// The codes that may be held (long polls): they go through the pull queue, as Apache runs them on
/// its pull executor.
pub const POP_POLL_CODES: &[i32] = &[request::POP_MESSAGE, request::NOTIFICATION];

/// What one pop gathered.
#[derive(Default)]
struct Gathered {
    body: Vec<Bytes>,
    count: usize,
    bytes: usize,
    rest: i64,
    start_info: Vec<String>,
    msg_info: Vec<String>,
    order_info: Vec<String>,
}

impl PopProcessor {
    /// A processor over a broker's POP state.
    pub fn new(svc: Arc<PopService>) -> Self {
        PopProcessor { svc }
    }

    fn topic_readable(&self, topic: &str) -> Result<TopicConfig, Refusal> {
        let core = self.svc.core();
        let Some(tc) = core.meta.topics.select(topic) else {
            return Err((response::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist, apply first please!")));
        };
        if !perm::is_readable(tc.perm) {
            return Err((response::NO_PERMISSION, format!("the topic[{topic}] peeking message is forbidden")));
        }
        Ok(tc)
    }

    fn check_pop(&self, h: &PopMessageRequestHeader) -> Result<(TopicConfig, PullFilter), Refusal> {
        let core = self.svc.core();
        let cfg = core.config();
        if !perm::is_readable(cfg.broker_permission) {
            return Err((
                response::NO_PERMISSION,
                format!("the broker[{}] peeking message is forbidden", cfg.broker_ip1),
            ));
        }
        if h.max_msg_nums > 32 || h.max_msg_nums <= 0 {
            return Err((
                response::INVALID_PARAMETER,
                format!("the broker restrict msg number 32, got {}", h.max_msg_nums),
            ));
        }
        if h.invisible_time <= 0 {
            return Err((response::INVALID_PARAMETER, format!("invisibleTime {} is illegal", h.invisible_time)));
        }
        let tc = self.topic_readable(&h.topic)?;
        if h.queue_id >= tc.read_queue_nums || h.queue_id < -1 {
            return Err((
                response::INVALID_PARAMETER,
                format!(
                    "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                    h.queue_id, h.topic, tc.read_queue_nums
                ),
            ));
        }
        match core.meta.subscriptions.find(&h.consumer_group) {
            Ok(Some(g)) if !g.consume_enable => {
                return Err((
                    response::NO_PERMISSION,
                    format!("subscription group no permission, {}", h.consumer_group),
                ))
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err((
                    response::SUBSCRIPTION_GROUP_NOT_EXIST,
                    format!("subscription group [{}] does not exist", h.consumer_group),
                ))
            }
            Err(e) => return Err((response::SYSTEM_ERROR, e.to_string())),
        }
        let filter =
            PullFilter::build(h.exp_type.as_deref(), h.exp.as_deref().unwrap_or("*"), cfg.enable_property_filter)?;
        Ok((tc, filter))
    }

    async fn pop(&self, conn: &ConnectionHandle, req: RemotingCommand) -> RemotingCommand {
        let h: PopMessageRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string()),
        };
        let (tc, filter) = match self.check_pop(&h) {
            Ok(x) => x,
            Err((code, remark)) => return RemotingCommand::error(&req, code, remark),
        };
        let core = self.svc.core().clone();
        let order = h.order.unwrap_or(false);
        let poll = Duration::from_millis(h.poll_time.clamp(0, MAX_POLL_MS) as u64);
        let deadline = tokio::time::Instant::now() + poll;
        let hold_key = format!("{}@{}@{}", h.topic, h.consumer_group, h.queue_id);
        let mut _held = None;
        loop {
            let pop_time = crate::util::now_millis();
            let revive_qid = if order { POP_ORDER_REVIVE_QUEUE } else { self.svc.next_revive_qid() };
            // Register the wake-ups before looking, so a message that arrives in between wakes us.
            let mut wakes = Vec::new();
            let retry = pop_retry_topic(&h.topic, &h.consumer_group);
            if !poll.is_zero() {
                for q in queues_of(&tc, h.queue_id) {
                    let max = core.store().max_offset_in_queue(&h.topic, q);
                    wakes.push(core.waiters().wait(&h.topic, q, max - 1));
                }
                if !order {
                    let max = core.store().max_offset_in_queue(&retry, 0);
                    wakes.push(core.waiters().wait(&retry, 0, max - 1));
                }
            }
            let unblocked = self.svc.unblocked.notified();
            let got = match self.pop_once(conn, &h, &tc, &filter, pop_time, revive_qid).await {
                Ok(g) => g,
                Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string()),
            };
            if got.count > 0 && got.rest > 0 {
                // More is there: held pops of this group look again (Apache's notify on restNum).
                self.svc.unblocked.notify_waiters();
            }
            let now = tokio::time::Instant::now();
            if got.count > 0 || poll.is_zero() || now >= deadline || core.is_shutting_down() {
                return self.answer(&req, &h, got, pop_time, revive_qid);
            }
            if _held.is_none() {
                _held = self.svc.hold(hold_key.clone());
                if _held.is_none() {
                    let mut r = self.answer(&req, &h, got, pop_time, revive_qid);
                    r.code = response::POLLING_FULL;
                    return r;
                }
            }
            let any = futures::future::select_all(wakes.into_iter().map(Box::pin));
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = any => {}
                _ = unblocked => {}
            }
        }
    }

    fn answer(
        &self,
        req: &RemotingCommand,
        h: &PopMessageRequestHeader,
        got: Gathered,
        pop_time: i64,
        revive_qid: i32,
    ) -> RemotingCommand {
        let found = got.count > 0;
        let header = PopMessageResponseHeader {
            pop_time,
            invisible_time: h.invisible_time,
            revive_qid,
            rest_num: got.rest.max(0),
            start_offset_info: Some(got.start_info.join(";")),
            msg_offset_info: Some(got.msg_info.join(";")),
            order_count_info: h.order.unwrap_or(false).then(|| got.order_info.join(";")),
        };
        let (code, remark) =
            if found { (response::SUCCESS, "FOUND") } else { (response::POLLING_TIMEOUT, "NO_MESSAGE_IN_QUEUE") };
        let mut resp = RemotingCommand::response_to(req, code, Some(remark.to_string())).with_header(&header);
        if found {
            let mut body = BytesMut::with_capacity(got.bytes);
            for m in &got.body {
                body.extend_from_slice(m);
            }
            self.svc.core().stats_get(&h.topic, &h.consumer_group, got.count, got.bytes);
            resp = resp.with_body(body.freeze());
        }
        resp
    }

    /// One pass over the queues (retry topic first with `popFromRetryProbability`, as Apache).
    async fn pop_once(
        &self,
        conn: &ConnectionHandle,
        h: &PopMessageRequestHeader,
        tc: &TopicConfig,
        filter: &PullFilter,
        pop_time: i64,
        revive_qid: i32,
    ) -> Result<Gathered, PopError> {
        let mut g = Gathered::default();
        let order = h.order.unwrap_or(false);
        let random = (pop_time as u64)
            .wrapping_mul(2654435761)
            .wrapping_add(self.svc.ck_counter.load(std::sync::atomic::Ordering::Relaxed))
            % 100;
        let need_retry = random < POP_FROM_RETRY_PROBABILITY;
        let retry = pop_retry_topic(&h.topic, &h.consumer_group);
        let all = PullFilter::Tag(crate::broker::waiters::TagFilter::all());
        if need_retry && !order {
            self.pop_topic(conn, h, &retry, true, &all, pop_time, revive_qid, random, &mut g).await?;
        }
        if h.queue_id < 0 {
            let n = tc.read_queue_nums.max(0) as u64;
            for i in 0..n {
                let q = ((random + i) % n) as i32;
                self.pop_queue(conn, h, &h.topic, q, false, filter, pop_time, revive_qid, &mut g).await?;
            }
        } else {
            self.pop_queue(conn, h, &h.topic, h.queue_id, false, filter, pop_time, revive_qid, &mut g).await?;
        }
        if !need_retry && !order && g.count < h.max_msg_nums as usize {
            self.pop_topic(conn, h, &retry, true, &all, pop_time, revive_qid, random, &mut g).await?;
        }
        Ok(g)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pop_topic(
        &self,
        conn: &ConnectionHandle,
        h: &PopMessageRequestHeader,
        topic: &str,
        is_retry: bool,
        filter: &PullFilter,
        pop_time: i64,
        revive_qid: i32,
        random: u64,
        g: &mut Gathered,
    ) -> Result<(), PopError> {
        let Some(tc) = self.svc.core().meta.topics.select(topic) else { return Ok(()) };
        let n = tc.read_queue_nums.max(0) as u64;
        for i in 0..n {
            let q = ((random + i) % n) as i32;
            self.pop_queue(conn, h, topic, q, is_retry, filter, pop_time, revive_qid, g).await?;
        }
        Ok(())
    }

    /// The offset a group pops a queue from: its committed offset, else the initial one (committed).
    fn pop_offset(&self, conn: &ConnectionHandle, group: &str, topic: &str, q: i32, init_mode: i32) -> i64 {
        let core = self.svc.core();
        if let Some(reset) = core.meta.offsets.take_reset(group, topic, q) {
            core.commit_offset(conn, group, topic, q, reset);
            return reset;
        }
        let offset = core.meta.offsets.query_offset(group, topic, q);
        if offset >= 0 {
            return offset;
        }
        let store = core.store();
        let init = if init_mode == 0 || topic.starts_with("%RETRY%") {
            store.min_offset_in_queue(topic, q)
        } else {
            // MAX: start at the last message, as Apache ("pop last one").
            (store.max_offset_in_queue(topic, q) - 1).max(0)
        };
        core.meta.offsets.commit_offset("getPopOffset", group, topic, q, init);
        init
    }

    #[allow(clippy::too_many_arguments)]
    async fn pop_queue(
        &self,
        conn: &ConnectionHandle,
        h: &PopMessageRequestHeader,
        topic: &str,
        q: i32,
        is_retry: bool,
        filter: &PullFilter,
        pop_time: i64,
        revive_qid: i32,
        g: &mut Gathered,
    ) -> Result<(), PopError> {
        let core = self.svc.core().clone();
        let store = core.store().clone();
        let group = &h.consumer_group;
        let order = h.order.unwrap_or(false);
        let key = format!("{topic}@{group}@{q}");
        let Some(_lock) = self.svc.try_lock(&key) else {
            if !order {
                let committed = core.meta.offsets.query_offset(group, topic, q).max(0);
                g.rest += store.max_offset_in_queue(topic, q) - committed;
            }
            return Ok(());
        };
        let mut offset = self.pop_offset(conn, group, topic, q, h.init_mode);
        if order && self.svc.order_blocked(&key, h.attempt_id.as_deref(), pop_time) {
            return Ok(());
        }
        let want = (h.max_msg_nums as usize).saturating_sub(g.count);
        if want == 0 {
            g.rest += store.max_offset_in_queue(topic, q) - offset;
            return Ok(());
        }
        let mut r = store.get_message(topic, q, offset, want, usize::MAX, filter)?;
        if matches!(
            r.status,
            GetMessageStatus::OffsetTooSmall
                | GetMessageStatus::OffsetOverflowBadly
                | GetMessageStatus::OffsetFoundNull
        ) {
            tracing::warn!(topic, group, q, offset, next = r.next_begin_offset, "pop offset corrected");
            core.commit_offset(conn, group, topic, q, r.next_begin_offset);
            offset = r.next_begin_offset;
            r = store.get_message(topic, q, offset, want, usize::MAX, filter)?;
        }
        if r.messages.is_empty() {
            if matches!(r.status, GetMessageStatus::NoMatchedMessage | GetMessageStatus::MessageWasRemoving)
                && r.next_begin_offset > offset
            {
                // Nothing the filter wants up to there: move the group past it.
                core.commit_offset(conn, group, topic, q, r.next_begin_offset);
            }
            g.rest += r.max_offset - r.next_begin_offset;
            return Ok(());
        }
        let flag = retry_flag(topic);
        let offsets = r.queue_offsets.clone();
        if order {
            let counts = self.svc.order_update(&key, h.attempt_id.as_deref(), pop_time, h.invisible_time, &offsets);
            for (o, c) in offsets.iter().zip(&counts) {
                g.order_info.push(format!("{flag} qo{q}%{o} {c}"));
            }
            g.order_info.push(format!("{flag} {q} {}", counts.iter().min().copied().unwrap_or(0)));
            // The group's offset stays at the batch start until the batch is acked.
            core.commit_offset(conn, group, topic, q, offset);
        } else {
            let ck = PopCheckPoint {
                start_offset: offset,
                pop_time,
                invisible_time: h.invisible_time,
                bit_map: 0,
                num: offsets.len() as i32,
                queue_id: q,
                topic: topic.to_string(),
                cid: group.clone(),
                revive_offset: 0,
                queue_offset_diff: offsets.iter().map(|o| (o - offset) as i32).collect(),
                broker_name: core.config().broker_name.clone(),
                re_put_times: None,
            };
            // Never hand out what no checkpoint covers: if the CK is not stored the messages stay
            // where they are and are counted as rest.
            if let Err(e) = self.svc.put_checkpoint(&ck, revive_qid).await {
                tracing::warn!(error = %e, topic, group, q, "pop checkpoint not stored");
                g.rest += r.max_offset - offset;
                return Ok(());
            }
            core.commit_offset(conn, group, topic, q, r.next_begin_offset);
        }
        g.start_info.push(format!("{flag} {q} {offset}"));
        g.msg_info.push(format!("{flag} {q} {}", offsets.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(",")));
        g.rest += r.max_offset - r.next_begin_offset;
        let broker_name = core.config().broker_name.clone();
        for raw in r.messages {
            if !is_retry {
                g.bytes += raw.len();
                g.count += 1;
                g.body.push(raw);
                continue;
            }
            // A retried message goes out under its original topic with its POP_CK (Apache, with
            // popResponseReturnActualRetryTopic=false).
            match recode_retry(&raw, &h.topic, |m| {
                ExtraInfo {
                    ck_queue_offset: offset,
                    pop_time,
                    invisible_time: h.invisible_time,
                    revive_qid,
                    retry: flag.to_string(),
                    broker_name: broker_name.clone(),
                    queue_id: m.queue_id,
                    queue_offset: Some(m.queue_offset),
                }
                .encode()
            }) {
                Some(b) => {
                    g.bytes += b.len();
                    g.count += 1;
                    g.body.push(b);
                }
                None => tracing::warn!(topic, q, "a retry message could not be re-encoded; it will be revived"),
            }
        }
        Ok(())
    }

    async fn ack(&self, conn: &ConnectionHandle, req: RemotingCommand) -> RemotingCommand {
        let ok = RemotingCommand::response_to(&req, response::SUCCESS, None);
        if req.code == request::BATCH_ACK_MESSAGE {
            let body: BatchAckMessageRequestBody = match crate::json::from_slice_lenient(&req.body) {
                Ok(b) => b,
                Err(_) => return RemotingCommand::error(&req, response::NO_MESSAGE, "no acks"),
            };
            if body.acks.is_empty() {
                return RemotingCommand::error(&req, response::NO_MESSAGE, "no acks");
            }
            let mut resp = ok;
            for b in body.acks.iter().take(1024) {
                let topic = real_topic(&b.topic, &b.consumer_group, &b.retry);
                let store = self.svc.core().store();
                let (min, max) =
                    (store.min_offset_in_queue(&topic, b.queue_id), store.max_offset_in_queue(&topic, b.queue_id));
                let Some(bits) = b.bits(64 * 1024) else { continue };
                let offsets: Vec<i64> =
                    bits.into_iter().map(|i| b.start_offset + i as i64).filter(|o| *o >= min && *o <= max).collect();
                if offsets.is_empty() {
                    continue;
                }
                if b.revive_queue_id == POP_ORDER_REVIVE_QUEUE {
                    for o in offsets {
                        if let Err(r) = self.ack_orderly(conn, &topic, &b.consumer_group, b.queue_id, o, b.pop_time) {
                            resp = RemotingCommand::error(&req, r.0, r.1);
                        }
                    }
                    continue;
                }
                let ack = AckMsg {
                    ack_offset: -1,
                    start_offset: b.start_offset,
                    consumer_group: b.consumer_group.clone(),
                    topic,
                    queue_id: b.queue_id,
                    pop_time: b.pop_time,
                    broker_name: self.svc.core().config().broker_name.clone(),
                    ack_offset_list: Some(offsets),
                };
                if let Err(e) = self.svc.put_ack(&ack, b.revive_queue_id).await {
                    resp = RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string());
                }
            }
            return resp;
        }
        let h: AckMessageRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string()),
        };
        let extra = match self.ack_target(conn, &req, &h.extra_info, &h.topic, h.queue_id, h.offset) {
            Ok(extra) => extra,
            Err(refused) => return refused,
        };
        if extra.revive_qid == POP_ORDER_REVIVE_QUEUE {
            return match self.ack_orderly(conn, &h.topic, &h.consumer_group, h.queue_id, h.offset, extra.pop_time) {
                Ok(()) => ok,
                Err((code, remark)) => RemotingCommand::error(&req, code, remark),
            };
        }
        let ack = AckMsg {
            ack_offset: h.offset,
            start_offset: extra.ck_queue_offset,
            consumer_group: h.consumer_group.clone(),
            topic: h.topic.clone(),
            queue_id: h.queue_id,
            pop_time: extra.pop_time,
            // Checkpoints here are always this broker's.
            broker_name: self.svc.core().config().broker_name.clone(),
            ack_offset_list: None,
        };
        match self.svc.put_ack(&ack, extra.revive_qid).await {
            Ok(()) => ok,
            Err(e) => RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string()),
        }
    }

    /// The common prologue of ACK and CHANGE_MESSAGE_INVISIBLETIME: the handle's extra info parsed,
    /// then [`Self::check_ack_target`]; a refusal comes back as the answer to send.
    fn ack_target(
        &self,
        conn: &ConnectionHandle,
        req: &RemotingCommand,
        extra_info: &str,
        topic: &str,
        q: i32,
        offset: i64,
    ) -> Result<ExtraInfo, RemotingCommand> {
        let Some(extra) = ExtraInfo::parse(extra_info) else {
            return Err(RemotingCommand::error(
                req,
                response::MESSAGE_ILLEGAL,
                format!("extraInfo '{extra_info}' is illegal"),
            ));
        };
        self.check_ack_target(conn, topic, q, offset)
            .map_err(|(code, remark)| RemotingCommand::error(req, code, remark))?;
        Ok(extra)
    }

    /// Apache's checks of an ACK / CHANGE_MESSAGE_INVISIBLETIME target.
    fn check_ack_target(&self, conn: &ConnectionHandle, topic: &str, q: i32, offset: i64) -> Result<(), Refusal> {
        let core = self.svc.core();
        let Some(tc) = core.meta.topics.select(topic) else {
            return Err((response::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist, apply first please!")));
        };
        if q < 0 || q >= tc.read_queue_nums {
            return Err((
                response::MESSAGE_ILLEGAL,
                format!(
                    "queueId[{q}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}] consumer:[{}]",
                    tc.read_queue_nums,
                    conn.peer()
                ),
            ));
        }
        let (min, max) = (core.store().min_offset_in_queue(topic, q), core.store().max_offset_in_queue(topic, q));
        if offset < min || offset > max {
            return Err((
                response::NO_MESSAGE,
                format!("offset is illegal, key:{topic}@{q}, commit:{offset}, store:{min}~{max}"),
            ));
        }
        Ok(())
    }

    fn ack_orderly(
        &self,
        conn: &ConnectionHandle,
        topic: &str,
        group: &str,
        q: i32,
        offset: i64,
        pop_time: i64,
    ) -> Result<(), Refusal> {
        let core = self.svc.core();
        let key = format!("{topic}@{group}@{q}");
        let committed = core.meta.offsets.query_offset(group, topic, q);
        if offset < committed {
            return Ok(());
        }
        match self.svc.order_commit_and_next(&key, offset, pop_time) {
            Some(next) => {
                core.commit_offset(conn, group, topic, q, next);
                self.svc.unblocked.notify_waiters();
                Ok(())
            }
            // Not in the batch this broker remembers (e.g. popped before a restart): acking the head
            // of the queue moves the group past it; anything else is refused as Apache does.
            None if offset == committed => {
                core.commit_offset(conn, group, topic, q, offset + 1);
                self.svc.unblocked.notify_waiters();
                Ok(())
            }
            None => Err((
                response::MESSAGE_ILLEGAL,
                format!("offset is illegal, key:{key}, old:{committed}, commit:{offset}, next:-1, {}", conn.peer()),
            )),
        }
    }

    async fn change_invisible(&self, conn: &ConnectionHandle, req: RemotingCommand) -> RemotingCommand {
        let h: ChangeInvisibleTimeRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string()),
        };
        let extra = match self.ack_target(conn, &req, &h.extra_info, &h.topic, h.queue_id, h.offset) {
            Ok(extra) => extra,
            Err(refused) => return refused,
        };
        let now = crate::util::now_millis();
        let invisible = h.invisible_time.max(0);
        if extra.revive_qid == POP_ORDER_REVIVE_QUEUE {
            let key = format!("{}@{}@{}", h.topic, h.consumer_group, h.queue_id);
            self.svc.order_change_invisible(&key, now, invisible);
            let header = ChangeInvisibleTimeResponseHeader {
                pop_time: now,
                invisible_time: invisible,
                revive_qid: POP_ORDER_REVIVE_QUEUE,
            };
            return RemotingCommand::response_to(&req, response::SUCCESS, None).with_header(&header);
        }
        // A new checkpoint for the one message, then the old one acked (Apache's order).
        let revive_qid = self.svc.next_revive_qid();
        let broker_name = self.svc.core().config().broker_name.clone();
        let ck = PopCheckPoint {
            start_offset: h.offset,
            pop_time: now,
            invisible_time: invisible,
            bit_map: 0,
            num: 1,
            queue_id: h.queue_id,
            topic: h.topic.clone(),
            cid: h.consumer_group.clone(),
            revive_offset: 0,
            queue_offset_diff: vec![0],
            broker_name: broker_name.clone(),
            re_put_times: None,
        };
        if let Err(e) = self.svc.put_checkpoint(&ck, revive_qid).await {
            return RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string());
        }
        let ack = AckMsg {
            ack_offset: h.offset,
            start_offset: extra.ck_queue_offset,
            consumer_group: h.consumer_group.clone(),
            topic: h.topic.clone(),
            queue_id: h.queue_id,
            pop_time: extra.pop_time,
            // Checkpoints here are always this broker's.
            broker_name: self.svc.core().config().broker_name.clone(),
            ack_offset_list: None,
        };
        if let Err(e) = self.svc.put_ack(&ack, extra.revive_qid).await {
            return RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string());
        }
        let header = ChangeInvisibleTimeResponseHeader { pop_time: now, invisible_time: invisible, revive_qid };
        RemotingCommand::response_to(&req, response::SUCCESS, None).with_header(&header)
    }

    /// True when the group has something to pop in the topic (or one queue of it) or its retry topic.
    fn has_message(&self, h: &NotificationRequestHeader, tc: &TopicConfig) -> bool {
        let core = self.svc.core();
        let store = core.store();
        let order = h.order.unwrap_or(false);
        let now = crate::util::now_millis();
        let ready = |topic: &str, q: i32| {
            let key = format!("{topic}@{}@{q}", h.consumer_group);
            if order && self.svc.order_blocked(&key, h.attempt_id.as_deref(), now) {
                return false;
            }
            let committed = core.meta.offsets.query_offset(&h.consumer_group, topic, q);
            let from = if committed >= 0 { committed } else { store.min_offset_in_queue(topic, q) };
            store.max_offset_in_queue(topic, q) > from
        };
        if queues_of(tc, h.queue_id).into_iter().any(|q| ready(&h.topic, q)) {
            return true;
        }
        !order && ready(&pop_retry_topic(&h.topic, &h.consumer_group), 0)
    }

    async fn notification(&self, req: RemotingCommand) -> RemotingCommand {
        let h: NotificationRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string()),
        };
        let tc = match self.topic_readable(&h.topic) {
            Ok(tc) => tc,
            Err((code, remark)) => return RemotingCommand::error(&req, code, remark),
        };
        if h.queue_id >= tc.read_queue_nums || h.queue_id < -1 {
            return RemotingCommand::error(
                &req,
                response::INVALID_PARAMETER,
                format!("queueId[{}] is illegal, topic:[{}]", h.queue_id, h.topic),
            );
        }
        let core = self.svc.core().clone();
        let poll = Duration::from_millis(h.poll_time.clamp(0, MAX_POLL_MS) as u64);
        let deadline = tokio::time::Instant::now() + poll;
        let retry = pop_retry_topic(&h.topic, &h.consumer_group);
        let key = format!("{}@{}@{}", h.topic, h.consumer_group, h.queue_id);
        let mut held = None;
        let mut polling_full = false;
        let has = loop {
            let mut wakes = Vec::new();
            for q in queues_of(&tc, h.queue_id) {
                let max = core.store().max_offset_in_queue(&h.topic, q);
                wakes.push(core.waiters().wait(&h.topic, q, max - 1));
            }
            let max = core.store().max_offset_in_queue(&retry, 0);
            wakes.push(core.waiters().wait(&retry, 0, max - 1));
            let unblocked = self.svc.unblocked.notified();
            if self.has_message(&h, &tc) {
                break true;
            }
            if poll.is_zero() || tokio::time::Instant::now() >= deadline || core.is_shutting_down() {
                break false;
            }
            if held.is_none() {
                held = self.svc.hold(key.clone());
                if held.is_none() {
                    polling_full = true;
                    break false;
                }
            }
            let any = futures::future::select_all(wakes.into_iter().map(Box::pin));
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = any => {}
                _ = unblocked => {}
            }
        };
        let header = NotificationResponseHeader { has_msg: has, polling_full };
        RemotingCommand::response_to(&req, response::SUCCESS, None).with_header(&header)
    }

    fn polling_info(&self, req: RemotingCommand) -> RemotingCommand {
        let h: PollingInfoRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string()),
        };
        let tc = match self.topic_readable(&h.topic) {
            Ok(tc) => tc,
            Err((code, remark)) => return RemotingCommand::error(&req, code, remark),
        };
        if h.queue_id >= tc.read_queue_nums || h.queue_id < -1 {
            return RemotingCommand::error(
                &req,
                response::INVALID_PARAMETER,
                format!("queueId[{}] is illegal, topic:[{}]", h.queue_id, h.topic),
            );
        }
        let n = self.svc.polling_num(&format!("{}@{}@{}", h.topic, h.consumer_group, h.queue_id));
        let header = PollingInfoResponseHeader { polling_num: n as i32 };
        RemotingCommand::response_to(&req, response::SUCCESS, None).with_header(&header)
    }

    fn set_mode(&self, req: RemotingCommand) -> RemotingCommand {
        let body: SetMessageRequestModeRequestBody = match crate::json::from_slice_lenient(&req.body) {
            Ok(b) => b,
            Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, format!("bad body: {e}")),
        };
        if body.topic.starts_with("%RETRY%") {
            return RemotingCommand::error(&req, response::NO_PERMISSION, "retry topic is not allowed to set mode");
        }
        let mode = body.mode.to_ascii_uppercase();
        if mode != "PULL" && mode != "POP" {
            return RemotingCommand::error(&req, response::INVALID_PARAMETER, format!("unknown mode '{}'", body.mode));
        }
        match self.svc.set_request_mode(SetMessageRequestModeRequestBody { mode, ..body }) {
            Ok(()) => RemotingCommand::response_to(&req, response::SUCCESS, None),
            Err(e) => RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string()),
        }
    }

    fn query_assignment(&self, req: RemotingCommand) -> RemotingCommand {
        let body: QueryAssignmentRequestBody = match crate::json::from_slice_lenient(&req.body) {
            Ok(b) => b,
            Err(e) => return RemotingCommand::error(&req, response::SYSTEM_ERROR, format!("bad body: {e}")),
        };
        let core = self.svc.core();
        let broker_name = core.config().broker_name.clone();
        let mode = match self.svc.request_mode(&body.topic, &body.consumer_group) {
            Some(m) if !body.topic.starts_with("%RETRY%") => m,
            _ => SetMessageRequestModeRequestBody { mode: "PULL".into(), ..Default::default() },
        };
        let Some(tc) = core.meta.topics.select(&body.topic) else {
            // Apache answers null assignments (the client keeps what it has).
            return RemotingCommand::response_to(&req, response::SUCCESS, None).with_body(Bytes::from_static(b"{}"));
        };
        let all: Vec<i32> = (0..tc.read_queue_nums.max(0)).collect();
        let mut cids = core.meta.consumers.client_ids(&body.consumer_group);
        cids.sort();
        let queues: Vec<i32> = if body.message_model.eq_ignore_ascii_case("BROADCASTING") {
            all.clone()
        } else if mode.mode == "POP"
            && (mode.pop_share_queue_num <= 0 || mode.pop_share_queue_num as usize + 1 >= cids.len())
        {
            vec![-1]
        } else if cids.is_empty() {
            // No heartbeat yet: every queue (lenient where Apache would answer nothing).
            all.clone()
        } else {
            let mut mine = allocate_averagely(&all, &cids, &body.client_id);
            if mode.mode == "POP" {
                // Share the queues of the next popShareQueueNum clients too.
                if let Some(i) = cids.iter().position(|c| *c == body.client_id) {
                    for k in 1..=mode.pop_share_queue_num.max(0) as usize {
                        mine.extend(allocate_averagely(&all, &cids, &cids[(i + k) % cids.len()]));
                    }
                }
                mine.sort();
                mine.dedup();
            }
            mine
        };
        let out = QueryAssignmentResponseBody {
            message_queue_assignments: queues
                .into_iter()
                .map(|q| MessageQueueAssignment {
                    message_queue: MessageQueueBody {
                        broker_name: broker_name.clone(),
                        queue_id: q,
                        topic: body.topic.clone(),
                    },
                    mode: mode.mode.clone(),
                    attachments: Default::default(),
                })
                .collect(),
        };
        match serde_json::to_vec(&out) {
            Ok(b) => RemotingCommand::response_to(&req, response::SUCCESS, None).with_body(b),
            Err(e) => RemotingCommand::error(&req, response::SYSTEM_ERROR, e.to_string()),
        }
    }
}

/// Apache's AllocateMessageQueueAveragely over sorted queues and client ids.
fn allocate_averagely(all: &[i32], cids: &[String], me: &str) -> Vec<i32> {
    let Some(index) = cids.iter().position(|c| c == me) else { return Vec::new() };
    let (n, c) = (all.len(), cids.len());
    let modulo = n % c;
    let size = if n <= c {
        1
    } else if modulo > 0 && index < modulo {
        n / c + 1
    } else {
        n / c
    };
    let start = if modulo > 0 && index < modulo { index * size } else { index * size + modulo };
    let range = size.min(n.saturating_sub(start));
    (0..range).map(|i| all[(start + i) % n]).collect()
}

fn queues_of(tc: &TopicConfig, queue_id: i32) -> Vec<i32> {
    if queue_id >= 0 {
        vec![queue_id]
    } else {
        (0..tc.read_queue_nums.max(0)).collect()
    }
}

/// Re-encodes a stored retry record under `topic` with a POP_CK property built by `ck`.
fn recode_retry(raw: &Bytes, topic: &str, ck: impl Fn(&message::MessageExt) -> String) -> Option<Bytes> {
    let m = decode_record(raw, false).ok()?;
    let mut props: Vec<(String, String)> =
        message::iter_properties(&m.properties_string).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if !props.iter().any(|(k, _)| k == PROPERTY_POP_CK) {
        props.push((PROPERTY_POP_CK.to_string(), ck(&m)));
    }
    let mut inner = MessageInner::new(topic, m.queue_id, m.body.clone());
    inner.flag = m.flag;
    inner.sys_flag = m.sys_flag;
    inner.born_timestamp = m.born_timestamp;
    inner.born_host = m.born_host;
    inner.store_host = m.store_host;
    inner.reconsume_times = m.reconsume_times;
    inner.prepared_transaction_offset = m.prepared_transaction_offset;
    inner.set_properties(props);
    let stamp = RecordStamp {
        version: m.version,
        body_crc: m.body_crc,
        queue_offset: m.queue_offset,
        physical_offset: m.commit_log_offset,
        store_timestamp: m.store_timestamp,
    };
    let mut buf = vec![0u8; inner.record_length(m.version)];
    let n = encode_record(&inner, &stamp, &mut buf)?;
    buf.truncate(n);
    Some(Bytes::from(buf))
}

impl PopService {
    /// Writes a checkpoint record (tag `ck`) into revive queue `revive_qid`.
    pub async fn put_checkpoint(&self, ck: &PopCheckPoint, revive_qid: i32) -> Result<(), PopError> {
        let uniq = format!(
            "{}@{}@{}@{}@{}@{}@ck",
            ck.topic, ck.queue_id, ck.start_offset, ck.cid, ck.pop_time, ck.broker_name
        );
        self.put_revive_record(serde_json::to_vec(ck)?, CK_TAG, &uniq, revive_qid, "checkpoint").await
    }

    /// Writes an ack record (tag `ack`, or `bAck` with an offset list) into revive queue `revive_qid`.
    pub async fn put_ack(&self, ack: &AckMsg, revive_qid: i32) -> Result<(), PopError> {
        let (tag, uniq) = match &ack.ack_offset_list {
            Some(list) => (
                BATCH_ACK_TAG,
                format!(
                    "{}@{}@{:?}@{}@{}@{}@bAck",
                    ack.topic, ack.queue_id, list, ack.consumer_group, ack.pop_time, ack.broker_name
                ),
            ),
            None => (
                ACK_TAG,
                format!(
                    "{}@{}@{}@{}@{}@{}@ack",
                    ack.topic, ack.queue_id, ack.ack_offset, ack.consumer_group, ack.pop_time, ack.broker_name
                ),
            ),
        };
        self.put_revive_record(serde_json::to_vec(ack)?, tag, &uniq, revive_qid, "ack").await
    }

    async fn put_revive_record(
        &self,
        body: Vec<u8>,
        tag: &str,
        uniq: &str,
        revive_qid: i32,
        what: &'static str,
    ) -> Result<(), PopError> {
        let core = self.core();
        if let Err((_, remark)) = core.check_writable() {
            tracing::debug!(remark, "revive record refused");
            return Err(PopError::Put { what, status: "SERVICE_NOT_AVAILABLE" });
        }
        let qid = if revive_qid >= 0 && revive_qid < self.revive_queue_num() { revive_qid } else { 0 };
        let mut m = MessageInner::new(self.revive_topic(), qid, body);
        m.born_host = core.store_host();
        m.store_host = core.store_host();
        m.set_properties([(property::TAGS, tag), (property::UNIQ_KEY, uniq)]);
        let r = core.put_message(m).await;
        if !r.status.is_stored() {
            return Err(PopError::Put { what, status: r.status.name() });
        }
        self.revive_wake.notify_one();
        Ok(())
    }
}

impl RequestProcessor for PopProcessor {
    fn process<'a>(
        &'a self,
        conn: &'a ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move {
            Some(match req.code {
                request::POP_MESSAGE => self.pop(conn, req).await,
                request::ACK_MESSAGE | request::BATCH_ACK_MESSAGE => self.ack(conn, req).await,
                request::CHANGE_MESSAGE_INVISIBLETIME => self.change_invisible(conn, req).await,
                request::NOTIFICATION => self.notification(req).await,
                request::POLLING_INFO => self.polling_info(req),
                request::SET_MESSAGE_REQUEST_MODE => self.set_mode(req),
                request::QUERY_ASSIGNMENT => self.query_assignment(req),
                code => RemotingCommand::error(
                    &req,
                    response::REQUEST_CODE_NOT_SUPPORTED,
                    format!("request type {code} not supported"),
                ),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averagely() {
        let all: Vec<i32> = (0..8).collect();
        let cids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(allocate_averagely(&all, &cids, "a"), vec![0, 1, 2]);
        assert_eq!(allocate_averagely(&all, &cids, "b"), vec![3, 4, 5]);
        assert_eq!(allocate_averagely(&all, &cids, "c"), vec![6, 7]);
        assert!(allocate_averagely(&all, &cids, "x").is_empty());
    }
}
