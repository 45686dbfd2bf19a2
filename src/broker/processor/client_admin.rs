//! Admin requests that reach a consumer through the broker (running info, consume status,
//! consume a stored message directly) and the broker-wide views the dashboard and `mqadmin`
//! read (brokerConsumeStats, queryCq, statsAll) or trigger (cleanExpiredCQ, cleanUnusedTopic),
//! answered as Apache's `AdminBrokerProcessor` / `Broker2Client` answer them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::broker::core::BrokerCore;
use crate::broker::meta::MessageQueue;
use crate::broker::stats_window::WindowStats;
use crate::protocol::codes::{request as rq, response as rs};
use crate::protocol::header::client_admin::*;
use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RemotingError, RequestProcessor};

/// How long a forwarded request waits for the consumer (Apache's `callClient`, 10 s).
pub const CALL_CONSUMER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long GET_CONSUMER_STATUS_FROM_CLIENT waits for each consumer (5 s).
pub const CONSUMER_STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// Most queue entries one QUERY_CONSUME_QUEUE answers (the count comes from the network).
pub const QUERY_CQ_MAX_COUNT: usize = 1024;

/// Answers GET_CONSUMER_RUNNING_INFO, CONSUME_MESSAGE_DIRECTLY, INVOKE_BROKER_TO_GET_CONSUMER_STATUS,
/// GET_BROKER_CONSUME_STATS, QUERY_CONSUME_QUEUE, CLEAN_EXPIRED_CONSUMEQUEUE, CLEAN_UNUSED_TOPIC
/// and VIEW_BROKER_STATS_DATA.
pub struct ClientAdminProcessor {
    core: Arc<BrokerCore>,
}

type Answer = Result<RemotingCommand, (i32, String)>;

fn bad(e: crate::remoting::HeaderError) -> (i32, String) {
    (rs::SYSTEM_ERROR, e.to_string())
}

/// A fastjson `double` (always with a fraction part).
fn java_double(d: f64) -> String {
    let s = serde_json::to_string(&d).unwrap_or_else(|_| "0.0".into());
    if s.contains('.') || s.contains('e') || s.contains('E') {
        s
    } else {
        format!("{s}.0")
    }
}

fn stats_item_json(w: &WindowStats) -> String {
    format!("{{\"avgpt\":{},\"sum\":{},\"tps\":{}}}", java_double(w.avgpt), w.sum, java_double(w.tps))
}

/// Writes a value read by [`crate::json::object_keys::parse`] back as fastjson text: keys that
/// were objects (message queues) are written as objects again.
fn fastjson_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut s = String::from("{");
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                if k.starts_with('{') {
                    s.push_str(k);
                } else {
                    s.push_str(&serde_json::to_string(k).unwrap_or_default());
                }
                s.push(':');
                s.push_str(&fastjson_text(v));
            }
            s.push('}');
            s
        }
        other => other.to_string(),
    }
}

impl ClientAdminProcessor {
    /// The codes this processor answers.
    pub const CODES: &'static [i32] = &[
        rq::GET_CONSUMER_RUNNING_INFO,
        rq::CONSUME_MESSAGE_DIRECTLY,
        rq::INVOKE_BROKER_TO_GET_CONSUMER_STATUS,
        rq::GET_BROKER_CONSUME_STATS,
        rq::QUERY_CONSUME_QUEUE,
        rq::CLEAN_EXPIRED_CONSUMEQUEUE,
        rq::CLEAN_UNUSED_TOPIC,
        rq::VIEW_BROKER_STATS_DATA,
    ];

    /// A processor over a broker's core.
    pub fn new(core: Arc<BrokerCore>) -> Self {
        ClientAdminProcessor { core }
    }

    async fn answer(&self, req: RemotingCommand) -> Answer {
        match req.code {
            rq::GET_CONSUMER_RUNNING_INFO => {
                let h: GetConsumerRunningInfoRequestHeader = req.decode_header().map_err(bad)?;
                self.call_consumer(&req, req.clone(), &h.consumer_group, &h.client_id).await
            }
            rq::CONSUME_MESSAGE_DIRECTLY => self.consume_directly(req).await,
            rq::INVOKE_BROKER_TO_GET_CONSUMER_STATUS => self.consumer_status(&req).await,
            rq::GET_BROKER_CONSUME_STATS => self.broker_consume_stats(&req),
            rq::QUERY_CONSUME_QUEUE => self.query_consume_queue(&req),
            rq::CLEAN_EXPIRED_CONSUMEQUEUE => self.clean(&req, false).await,
            rq::CLEAN_UNUSED_TOPIC => self.clean(&req, true).await,
            rq::VIEW_BROKER_STATS_DATA => self.view_stats(&req),
            other => Err((rs::REQUEST_CODE_NOT_SUPPORTED, format!(" request type {other} not supported"))),
        }
    }

    /// Apache's `callConsumer`: forwards `fwd` (same code, ext fields and body) to the member
    /// `client_id` of `group` and relays its answer.
    async fn call_consumer(&self, req: &RemotingCommand, fwd: RemotingCommand, group: &str, client_id: &str) -> Answer {
        let Some(ch) = self.core.meta.consumers.find_channel(group, client_id) else {
            return Err((rs::SYSTEM_ERROR, format!("The Consumer <{group}> <{client_id}> not online")));
        };
        let mut out = RemotingCommand::request(fwd.code).with_body(fwd.body.clone());
        out.ext_fields = fwd.ext_fields.clone();
        match ch.conn.invoke(out, CALL_CONSUMER_TIMEOUT).await {
            Ok(r) => {
                let mut resp = RemotingCommand::response_to(req, r.code, r.remark);
                resp.ext_fields = r.ext_fields;
                resp.body = r.body;
                Ok(resp)
            }
            Err(e @ RemotingError::Timeout { .. }) => {
                Err((rs::CONSUME_MSG_TIMEOUT, format!("consumer <{group}> <{client_id}> Timeout: {e}")))
            }
            Err(e) => Err((rs::SYSTEM_ERROR, format!("invoke consumer <{group}> <{client_id}> Exception: {e}"))),
        }
    }

    async fn consume_directly(&self, req: RemotingCommand) -> Answer {
        let h: ConsumeMessageDirectlyResultRequestHeader = req.decode_header().map_err(bad)?;
        let cfg = self.core.config();
        let mut fwd = req.clone();
        fwd.ext_fields.insert("brokerName".into(), cfg.broker_name.clone());
        if let Some(t) = h.topic.as_deref().and_then(|t| self.core.meta.topics.select(t)) {
            fwd.ext_fields.insert("topicSysFlag".into(), t.topic_sys_flag.to_string());
        }
        if !fwd.ext_fields.contains_key("groupSysFlag") {
            fwd.ext_fields.insert_static("groupSysFlag", "0".into());
        }
        let msg_id = h.msg_id.as_deref().unwrap_or("");
        let Some((_, offset)) = crate::protocol::message::decode_offset_msg_id(msg_id) else {
            return Err((rs::SYSTEM_ERROR, format!("the message id {msg_id} is not an offset message id")));
        };
        let store = self.core.store().clone();
        let record = tokio::task::spawn_blocking(move || store.look_message_by_offset(offset))
            .await
            .map_err(|e| (rs::SYSTEM_ERROR, e.to_string()))?;
        let Some(record) = record else {
            return Err((rs::SYSTEM_ERROR, format!("can not find message by the offset, {offset}")));
        };
        fwd.body = record;
        let client = h.client_id.unwrap_or_default();
        self.call_consumer(&req, fwd, &h.consumer_group, &client).await
    }

    /// Apache's `Broker2Client.getConsumeStatus`.
    async fn consumer_status(&self, req: &RemotingCommand) -> Answer {
        let h: GetConsumerStatusRequestHeader = req.decode_header().map_err(bad)?;
        let Some(gi) = self.core.meta.consumers.group_info(&h.group).filter(|g| !g.channels.is_empty()) else {
            return Err((rs::SYSTEM_ERROR, format!("No Any Consumer online in the consumer group: [{}]", h.group)));
        };
        let ask =
            GetConsumerStatusFromClientHeader { topic: h.topic.clone(), group: h.group.clone(), client_addr: None };
        let members: Vec<_> = gi
            .channels
            .values()
            .filter(|c| h.client_addr.as_deref().is_none_or(|id| id == c.client_id))
            .cloned()
            .collect();
        let calls = members.iter().map(|c| {
            let cmd = RemotingCommand::request_with_header(rq::GET_CONSUMER_STATUS_FROM_CLIENT, &ask);
            async move { (c.client_id.clone(), c.conn.invoke(cmd, CONSUMER_STATUS_TIMEOUT).await) }
        });
        let mut table = Vec::new();
        for (client, r) in futures::future::join_all(calls).await {
            match r {
                Ok(r) if r.code == rs::SUCCESS && !r.body.is_empty() => {
                    match crate::json::object_keys::parse_slice(&r.body) {
                        Ok(v) => {
                            let mq = v.get("messageQueueTable").cloned().unwrap_or_else(|| json!({}));
                            table.push((client, fastjson_text(&mq)));
                        }
                        Err(e) => tracing::warn!(client = %client, error = %e, "unreadable consumer status"),
                    }
                }
                Ok(r) => tracing::warn!(client = %client, code = r.code, "consumer status refused"),
                Err(e) => tracing::warn!(client = %client, error = %e, "consumer status not answered"),
            }
        }
        let mut body = String::from("{\"consumerTable\":{");
        for (i, (client, mq)) in table.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&serde_json::to_string(client).unwrap_or_default());
            body.push(':');
            body.push_str(mq);
        }
        body.push_str("},\"messageQueueTable\":{}}");
        Ok(RemotingCommand::success(req).with_body(body))
    }

    fn broker_consume_stats(&self, req: &RemotingCommand) -> Answer {
        let h: GetConsumeStatsInBrokerHeader = req.decode_header().map_err(bad)?;
        let core = &self.core;
        let meta = &core.meta;
        let store = core.store();
        let cfg = core.config();
        let now = crate::util::now_millis();
        let live = crate::broker::stats_window::current(core);
        let (mut total_diff, mut list) = (0i64, Vec::new());
        for group in meta.subscriptions.all().keys() {
            let mut stats = Vec::new();
            for topic in meta.offsets.which_topic_by_consumer(group) {
                let Some(tc) = meta.topics.select(&topic) else { continue };
                if h.is_order && !tc.order {
                    continue;
                }
                if meta.consumers.find_subscription_data(group, &topic).is_none()
                    && meta.consumers.find_subscription_data_count(group) > 0
                {
                    continue;
                }
                let mut table = BTreeMap::new();
                for i in 0..tc.write_queue_nums {
                    let broker_offset = store.max_offset_in_queue(&topic, i).max(0);
                    let consumer_offset = meta.offsets.query_offset(group, &topic, i).max(0);
                    let last = if consumer_offset >= 1 {
                        store.message_store_timestamp(&topic, i, consumer_offset - 1).filter(|t| *t > 0).unwrap_or(0)
                    } else {
                        0
                    };
                    total_diff += broker_offset - consumer_offset;
                    table.insert(
                        MessageQueue::new(topic.clone(), cfg.broker_name.clone(), i),
                        json!({"brokerOffset": broker_offset, "consumerOffset": consumer_offset,
                               "lastTimestamp": last, "pullOffset": consumer_offset}),
                    );
                }
                let key = format!("{topic}@{group}");
                let tps = live
                    .get(&("GROUP_GET_NUMS", key.clone()))
                    .map(|(v, n)| {
                        core.stats_windows.view("GROUP_GET_NUMS", &key, (now, *v, *n), core.started_at)[0].tps
                    })
                    .unwrap_or(0.0);
                stats.push(format!(
                    "{{\"consumeTps\":{},\"offsetTable\":{}}}",
                    java_double(tps),
                    super::meta::object_key_map(table)
                ));
            }
            list.push(format!("{{{}:[{}]}}", serde_json::to_string(group).unwrap_or_default(), stats.join(",")));
        }
        let body = format!(
            "{{\"brokerAddr\":{},\"consumeStatsList\":[{}],\"totalDiff\":{total_diff},\"totalInflightDiff\":0}}",
            serde_json::to_string(&cfg.broker_addr()).unwrap_or_default(),
            list.join(",")
        );
        Ok(RemotingCommand::success(req).with_body(body))
    }

    fn query_consume_queue(&self, req: &RemotingCommand) -> Answer {
        let h: QueryConsumeQueueRequestHeader = req.decode_header().map_err(bad)?;
        let count = (h.count.max(0) as usize).min(QUERY_CQ_MAX_COUNT);
        let Some(view) = self.core.store().consume_queue_view(&h.topic, h.queue_id, h.index, count) else {
            return Err((rs::SYSTEM_ERROR, format!("{}@{} is not exist!", h.queue_id, h.topic)));
        };
        let mut body = serde_json::Map::new();
        body.insert("maxQueueIndex".into(), json!(view.max_offset));
        body.insert("minQueueIndex".into(), json!(view.min_offset));
        if let Some(group) = h.consumer_group.as_deref() {
            match self.core.meta.consumers.find_subscription_data(group, &h.topic) {
                Some(sd) => {
                    body.insert("subscriptionData".into(), serde_json::to_value(sd).unwrap_or_default());
                    body.insert("filterData".into(), json!("null"));
                }
                None => {
                    body.insert("filterData".into(), json!(format!("{group}@{} is not online!", h.topic)));
                }
            }
        }
        let data: Vec<_> = view
            .entries
            .iter()
            .map(|e| json!({"eval": false, "physicOffset": e.phys_offset, "physicSize": e.size, "tagsCode": e.tags_code}))
            .collect();
        body.insert("queueData".into(), json!(data));
        let mut resp = RemotingCommand::success(req).with_body(serde_json::Value::Object(body).to_string());
        if h.index >= view.max_offset {
            resp.remark = Some("Can't find consume queue unit, maybe index is too big".into());
        }
        Ok(resp)
    }

    /// CLEAN_EXPIRED_CONSUMEQUEUE (`unused` false) / CLEAN_UNUSED_TOPIC (true), on a blocking thread.
    async fn clean(&self, req: &RemotingCommand, unused: bool) -> Answer {
        let core = self.core.clone();
        let run = tokio::task::spawn_blocking(move || {
            let store = core.store();
            if unused {
                let known: BTreeSet<String> = core.meta.topics.topic_names().into_iter().collect();
                let gone: Vec<String> = store
                    .consume_queue_topics()
                    .into_iter()
                    .filter(|t| !known.contains(t) && !core.meta.topics.is_system_topic(t))
                    .collect();
                let refs: Vec<&str> = gone.iter().map(String::as_str).collect();
                store.delete_topics(&refs).map(|()| gone)
            } else {
                let schedule = crate::broker::meta::topic::RMQ_SYS_SCHEDULE_TOPIC;
                store.clean_expired_consume_queues(&|t: &str| t == schedule)
            }
        })
        .await
        .map_err(|e| (rs::SYSTEM_ERROR, e.to_string()))?;
        match run {
            Ok(gone) => {
                tracing::info!(topics = ?gone, unused, "consume queues cleaned on request");
                Ok(RemotingCommand::success(req))
            }
            Err(e) => Err((rs::SYSTEM_ERROR, e.to_string())),
        }
    }

    fn view_stats(&self, req: &RemotingCommand) -> Answer {
        let h: ViewBrokerStatsDataRequestHeader = req.decode_header().map_err(bad)?;
        let core = &self.core;
        let live = crate::broker::stats_window::current(core);
        let name = crate::broker::stats_window::STATS_NAMES.iter().find(|n| **n == h.stats_name);
        let Some((v, n)) = name.and_then(|name| live.get(&(*name, h.stats_key.clone()))) else {
            return Err((rs::SYSTEM_ERROR, format!("The stats <{}> <{}> not exist", h.stats_name, h.stats_key)));
        };
        let now = crate::util::now_millis();
        let [m, hr, d] = core.stats_windows.view(&h.stats_name, &h.stats_key, (now, *v, *n), core.started_at);
        let body = format!(
            "{{\"statsDay\":{},\"statsHour\":{},\"statsMinute\":{}}}",
            stats_item_json(&d),
            stats_item_json(&hr),
            stats_item_json(&m)
        );
        Ok(RemotingCommand::success(req).with_body(body))
    }
}

impl RequestProcessor for ClientAdminProcessor {
    fn process<'a>(
        &'a self,
        _conn: &'a ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move {
            let keep = req.clone();
            Some(match self.answer(req).await {
                Ok(r) => r,
                Err((code, remark)) => RemotingCommand::error(&keep, code, remark),
            })
        })
    }
}

/// How long RESET_CONSUMER_CLIENT_OFFSET may take to leave (Apache's oneway, 5 s).
pub const RESET_CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Apache's legacy INVOKE_BROKER_TO_RESET_OFFSET (`useServerSideResetOffset=false`,
/// `Broker2Client.resetOffset`): per read queue the offset at the time (the queue end for a
/// negative time) if forced or below the committed offset, else the committed one; every online
/// client of the group is told (RESET_CONSUMER_CLIENT_OFFSET, oneway) and moves itself.
pub async fn legacy_reset_offset(core: &Arc<BrokerCore>, req: &RemotingCommand) -> Answer {
    use crate::protocol::header::admin::ResetOffsetRequestHeader;
    use crate::store::consume_queue::BoundaryType;
    let h: ResetOffsetRequestHeader = req.decode_header().map_err(bad)?;
    let Some(tc) = core.meta.topics.select(&h.topic) else {
        return Err((
            rs::SYSTEM_ERROR,
            format!("[reset-offset] reset offset failed, no topic in this broker. topic={}", h.topic),
        ));
    };
    let store = core.store();
    let broker = core.config().broker_name.clone();
    let mut table = BTreeMap::new();
    for q in 0..tc.write_queue_nums {
        let committed = core.meta.offsets.query_offset(&h.group, &h.topic, q);
        if committed == -1 {
            return Err((rs::SYSTEM_ERROR, format!("THe consumer group <{}> not exist", h.group)));
        }
        let at = if h.timestamp < 0 {
            store.max_offset_in_queue(&h.topic, q)
        } else {
            store.offset_in_queue_by_time(&h.topic, q, h.timestamp, BoundaryType::Lower)
        };
        let target = if h.is_force || at < committed { at } else { committed };
        table.insert(MessageQueue::new(h.topic.clone(), broker.clone(), q), target);
    }
    let Some(gi) = core.meta.consumers.group_info(&h.group).filter(|g| !g.channels.is_empty()) else {
        return Err((
            rs::SYSTEM_ERROR,
            format!(
                "Consumer not online, so can not reset offset, Group: {} Topic: {} Timestamp: {}",
                h.group, h.topic, h.timestamp
            ),
        ));
    };
    let body = format!("{{\"offsetTable\":{}}}", super::meta::object_key_map(table));
    let tell = ResetConsumerClientOffsetHeader {
        topic: h.topic.clone(),
        group: h.group.clone(),
        timestamp: h.timestamp,
        is_force: h.is_force,
    };
    for c in gi.channels.values() {
        let cmd = RemotingCommand::request_with_header(rq::RESET_CONSUMER_CLIENT_OFFSET, &tell).with_body(body.clone());
        match tokio::time::timeout(RESET_CLIENT_TIMEOUT, c.conn.send_oneway(cmd)).await {
            Ok(Ok(())) => tracing::info!(group = %h.group, client = %c.client_id, "[reset-offset] client told"),
            Ok(Err(e)) => {
                tracing::warn!(group = %h.group, client = %c.client_id, error = %e, "[reset-offset] not told")
            }
            Err(_) => tracing::warn!(group = %h.group, client = %c.client_id, "[reset-offset] not told in time"),
        }
    }
    Ok(RemotingCommand::success(req).with_body(body))
}
