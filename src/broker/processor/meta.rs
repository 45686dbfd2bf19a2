//! The metadata processor: client heartbeats and registrations, consumer offsets, rebalance locks,
//! and the admin requests on topics, subscription groups and consume stats — answered as Apache's
//! `ClientManageProcessor`, `ConsumerManageProcessor` and `AdminBrokerProcessor` do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{info, warn};

use crate::broker::clients::{ClientChannelInfo, ConsumerGroupInfo, HeartbeatData, SubscriptionData};
use crate::broker::meta::topic::{parse_attributes, retry_topic, validate_group, validate_topic};
use crate::broker::meta::{BrokerMeta, MessageQueue, MetaError, SubscriptionGroupConfig};
use crate::json::null_default;
use crate::protocol::body::TopicConfig;
use crate::protocol::codes::{request as rq, response as rs};
use crate::protocol::header::admin::*;
use crate::protocol::perm;
use crate::remoting::{BoxFuture, CommandHeader, ConnectionHandle, HeaderError, RemotingCommand, RequestProcessor};
use crate::util::now_millis;

/// Response ext field: the broker understands heartbeat V2.
pub const IS_SUPPORT_HEART_BEAT_V2: &str = "IS_SUPPORT_HEART_BEAT_V2";
/// Response ext field: the subscriptions changed (V2 clients then send them in full).
pub const IS_SUB_CHANGE: &str = "IS_SUB_CHANGE";

/// `TopicSysFlag.buildSysFlag(false, true)`: the unit-sub flag.
const FLAG_UNIT_SUB: i32 = 0x2;

/// Answers the metadata requests of one broker (see [`MetaProcessor::CODES`]).
pub struct MetaProcessor {
    meta: Arc<BrokerMeta>,
    /// Last heartbeat fingerprint by consumer group (heartbeat V2).
    fingerprints: Mutex<HashMap<String, i32>>,
}

/// The LOCK_BATCH_MQ / UNLOCK_BATCH_MQ body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockBatchRequestBody {
    /// The locking client.
    #[serde(default, deserialize_with = "null_default")]
    pub client_id: String,
    /// Its group.
    #[serde(default, deserialize_with = "null_default")]
    pub consumer_group: String,
    /// The queues.
    #[serde(default, deserialize_with = "null_default")]
    pub mq_set: Vec<MessageQueue>,
    /// Lock only on this broker (strict mode; always so here).
    #[serde(default, deserialize_with = "null_default")]
    pub only_this_broker: bool,
}

/// The UPDATE_AND_CREATE_TOPIC_LIST body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateTopicListRequestBody {
    #[serde(default, deserialize_with = "null_default")]
    topic_config_list: Vec<TopicConfig>,
}

fn header_error(req: &RemotingCommand, e: HeaderError) -> RemotingCommand {
    RemotingCommand::error(req, rs::SYSTEM_ERROR, e.to_string())
}

/// Maps a metadata error to Apache's response code.
fn meta_error(req: &RemotingCommand, e: &MetaError) -> RemotingCommand {
    let code = match e {
        MetaError::InvalidName(_) | MetaError::SystemTopic(_) => rs::INVALID_PARAMETER,
        MetaError::BadAttribute(_) | MetaError::Io { .. } | MetaError::Corrupt { .. } => rs::SYSTEM_ERROR,
    };
    RemotingCommand::error(req, code, e.to_string())
}

fn json_body(v: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// fastjson writes a map with object keys as `{{"k":..}:{..}}`; so does this.
pub(crate) fn object_key_map<K: Serialize, V: Serialize>(entries: impl IntoIterator<Item = (K, V)>) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&serde_json::to_string(&k).unwrap_or_default());
        s.push(':');
        s.push_str(&serde_json::to_string(&v).unwrap_or_default());
    }
    s.push('}');
    s
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

/// `ip:port` of the connection's peer, as Apache's `parseChannelRemoteAddr`.
fn peer_addr(conn: &ConnectionHandle) -> String {
    conn.peer().to_string()
}

fn connection_json(c: &ClientChannelInfo) -> serde_json::Value {
    json!({
        "clientAddr": peer_addr(&c.conn),
        "clientId": c.client_id,
        "language": c.language.name(),
        "version": c.version,
    })
}

impl MetaProcessor {
    /// Every request code this processor answers.
    pub const CODES: &'static [i32] = &[
        rq::HEART_BEAT,
        rq::UNREGISTER_CLIENT,
        rq::GET_CONSUMER_LIST_BY_GROUP,
        rq::QUERY_CONSUMER_OFFSET,
        rq::UPDATE_CONSUMER_OFFSET,
        rq::LOCK_BATCH_MQ,
        rq::UNLOCK_BATCH_MQ,
        rq::UPDATE_AND_CREATE_TOPIC,
        rq::UPDATE_AND_CREATE_TOPIC_LIST,
        rq::DELETE_TOPIC_IN_BROKER,
        rq::GET_ALL_TOPIC_CONFIG,
        rq::GET_TOPIC_CONFIG,
        rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
        rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
        rq::DELETE_SUBSCRIPTIONGROUP,
        rq::GET_SUBSCRIPTIONGROUP_CONFIG,
        rq::GET_ALL_CONSUMER_OFFSET,
        rq::GET_CONSUMER_CONNECTION_LIST,
        rq::GET_PRODUCER_CONNECTION_LIST,
        rq::GET_CONSUME_STATS,
        rq::GET_TOPIC_STATS_INFO,
        rq::CHECK_CLIENT_CONFIG,
    ];

    /// A processor over the broker's metadata.
    pub fn new(meta: Arc<BrokerMeta>) -> Self {
        MetaProcessor { meta, fingerprints: Mutex::new(HashMap::new()) }
    }

    /// The metadata this processor serves.
    pub fn meta(&self) -> &Arc<BrokerMeta> {
        &self.meta
    }

    /// Answers one request (synchronously: nothing here waits on I/O other than small config writes).
    pub fn handle(&self, conn: &ConnectionHandle, req: &RemotingCommand) -> RemotingCommand {
        let r = match req.code {
            rq::HEART_BEAT => self.heartbeat(conn, req),
            rq::CHECK_CLIENT_CONFIG => self.check_client_config(req),
            rq::UNREGISTER_CLIENT => self.unregister_client(conn, req),
            rq::GET_CONSUMER_LIST_BY_GROUP => self.consumer_list_by_group(req),
            rq::QUERY_CONSUMER_OFFSET => self.query_consumer_offset(req),
            rq::UPDATE_CONSUMER_OFFSET => self.update_consumer_offset(conn, req),
            rq::LOCK_BATCH_MQ => self.lock_batch(req),
            rq::UNLOCK_BATCH_MQ => self.unlock_batch(req),
            rq::UPDATE_AND_CREATE_TOPIC => self.update_and_create_topic(conn, req),
            rq::UPDATE_AND_CREATE_TOPIC_LIST => self.update_and_create_topic_list(conn, req),
            rq::DELETE_TOPIC_IN_BROKER => self.delete_topic(conn, req),
            rq::GET_ALL_TOPIC_CONFIG => self.all_topic_config(req),
            rq::GET_TOPIC_CONFIG => self.topic_config(req),
            rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => self.update_subscription_group(conn, req),
            rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => self.all_subscription_groups(req),
            rq::DELETE_SUBSCRIPTIONGROUP => self.delete_subscription_group(conn, req),
            rq::GET_SUBSCRIPTIONGROUP_CONFIG => self.subscription_group(req),
            rq::GET_ALL_CONSUMER_OFFSET => Ok(RemotingCommand::success(req).with_body(self.meta.offsets.encode(false))),
            rq::GET_CONSUMER_CONNECTION_LIST => self.consumer_connections(req),
            rq::GET_PRODUCER_CONNECTION_LIST => self.producer_connections(req),
            rq::GET_CONSUME_STATS => self.consume_stats(req),
            rq::GET_TOPIC_STATS_INFO => self.topic_stats(req),
            other => Ok(RemotingCommand::error(
                req,
                rs::REQUEST_CODE_NOT_SUPPORTED,
                format!(" request type {other} not supported"),
            )),
        };
        r.unwrap_or_else(|resp| resp)
    }

    fn header<H: CommandHeader>(req: &RemotingCommand) -> Result<H, RemotingCommand> {
        req.decode_header::<H>().map_err(|e| header_error(req, e))
    }

    // ----------------------------------------------------------------------------------------
    // Clients

    /// CHECK_CLIENT_CONFIG (46): a consumer asks, before it starts, whether its subscription's
    /// expression type is supported and its expression compiles.
    fn check_client_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct CheckClientRequestBody {
            #[serde(default)]
            subscription_data: Option<crate::broker::clients::SubscriptionData>,
        }
        let body: CheckClientRequestBody = crate::json::from_slice_lenient(&req.body).map_err(|e| {
            RemotingCommand::error(req, rs::SYSTEM_ERROR, format!("check client config body does not parse: {e}"))
        })?;
        let Some(sd) = body.subscription_data else { return Ok(RemotingCommand::success(req)) };
        let enabled = self.meta.config.load().enable_property_filter;
        match crate::broker::waiters::PullFilter::build(Some(&sd.expression_type), &sd.sub_string, enabled) {
            Ok(_) => Ok(RemotingCommand::success(req)),
            Err((code, remark)) => Err(RemotingCommand::error(req, code, remark)),
        }
    }

    fn heartbeat(&self, conn: &ConnectionHandle, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let hb = HeartbeatData::decode(&req.body).map_err(|e| {
            RemotingCommand::error(req, rs::SYSTEM_ERROR, format!("heartbeat body does not parse: {e}"))
        })?;
        let now = now_millis();
        let info = ClientChannelInfo::new(conn.clone(), hb.client_id.clone(), req.language, req.version, now);
        let v2 = hb.heartbeat_fingerprint != 0;
        let mut sub_change = !v2;
        for cd in &hb.consumer_data_set {
            if v2 {
                let mut fp = self.fingerprints.lock();
                if fp.get(&cd.group_name).is_some_and(|old| *old != hb.heartbeat_fingerprint) {
                    sub_change = true;
                }
                fp.insert(cd.group_name.clone(), hb.heartbeat_fingerprint);
            } else {
                self.fingerprints.lock().insert(cd.group_name.clone(), 0);
            }
            let group_cfg = match self.meta.subscriptions.find(&cd.group_name) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    warn!(group = %cd.group_name, error = %e, "heartbeat: subscription group could not be created");
                    continue;
                }
            };
            let has_order_sub = cd.subscription_data_set.iter().any(|s| self.meta.topics.is_order_topic(&s.topic));
            let sys_flag = if cd.unit_mode { FLAG_UNIT_SUB } else { 0 };
            if let Err(e) = self.meta.topics.create_topic_in_send_back(
                &retry_topic(&cd.group_name),
                group_cfg.retry_queue_nums,
                perm::READ | perm::WRITE,
                has_order_sub,
                sys_flag,
            ) {
                warn!(group = %cd.group_name, error = %e, "heartbeat: retry topic could not be persisted");
            }
            let notify = group_cfg.notify_consumer_ids_changed_enable;
            let changed = if v2 && hb.without_sub {
                self.meta.consumers.register_consumer_without_sub(
                    &cd.group_name,
                    info.clone(),
                    &cd.consume_type,
                    &cd.message_model,
                    &cd.consume_from_where,
                    notify,
                )
            } else {
                self.meta.consumers.register_consumer(
                    &cd.group_name,
                    info.clone(),
                    &cd.consume_type,
                    &cd.message_model,
                    &cd.consume_from_where,
                    &cd.subscription_data_set,
                    notify,
                    true,
                )
            };
            if changed {
                info!(group = %cd.group_name, client = %hb.client_id, peer = %conn.peer(), "consumer registration changed");
            }
        }
        for pd in &hb.producer_data_set {
            self.meta.producers.register_producer(&pd.group_name, info.clone());
        }
        Ok(RemotingCommand::success(req)
            .with_ext(IS_SUPPORT_HEART_BEAT_V2, "true")
            .with_ext(IS_SUB_CHANGE, sub_change.to_string()))
    }

    fn unregister_client(
        &self,
        conn: &ConnectionHandle,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let h: UnregisterClientRequestHeader = Self::header(req)?;
        if let Some(g) = &h.producer_group {
            self.meta.producers.unregister_producer(g, conn);
        }
        if let Some(g) = &h.consumer_group {
            let notify = match self.meta.subscriptions.find(g) {
                Ok(Some(c)) => c.notify_consumer_ids_changed_enable,
                _ => true,
            };
            self.meta.consumers.unregister_consumer(g, conn, notify);
        }
        Ok(RemotingCommand::success(req))
    }

    fn consumer_list_by_group(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: GetConsumerListByGroupRequestHeader = Self::header(req)?;
        let ids = self.meta.consumers.client_ids(&h.consumer_group);
        if ids.is_empty() {
            warn!(group = %h.consumer_group, "getConsumerGroupInfo failed");
            return Ok(RemotingCommand::error(
                req,
                rs::SYSTEM_ERROR,
                format!("no consumer for this group, {}", h.consumer_group),
            ));
        }
        Ok(RemotingCommand::success(req).with_body(json_body(&json!({ "consumerIdList": ids }))))
    }

    // ----------------------------------------------------------------------------------------
    // Offsets and locks

    fn query_consumer_offset(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: QueryConsumerOffsetRequestHeader = Self::header(req)?;
        let offset = self.meta.offsets.query_offset(&h.consumer_group, &h.topic, h.queue_id);
        if offset >= 0 {
            return Ok(RemotingCommand::success(req).with_header(&QueryConsumerOffsetResponseHeader { offset }));
        }
        if h.set_zero_if_not_found == Some(false) {
            return Ok(RemotingCommand::error(
                req,
                rs::QUERY_NOT_FOUND,
                "Not found, do not set to zero, maybe this group boot first",
            ));
        }
        let store = &self.meta.store;
        if store.min_offset(&h.topic, h.queue_id) <= 0
            && store.check_in_mem_by_consume_offset(&h.topic, h.queue_id, 0, 1)
        {
            return Ok(RemotingCommand::success(req).with_header(&QueryConsumerOffsetResponseHeader { offset: 0 }));
        }
        Ok(RemotingCommand::error(
            req,
            rs::QUERY_NOT_FOUND,
            "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
        ))
    }

    fn update_consumer_offset(
        &self,
        conn: &ConnectionHandle,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let h: UpdateConsumerOffsetRequestHeader = Self::header(req)?;
        if !self.meta.subscriptions.contains(&h.consumer_group) {
            return Ok(RemotingCommand::error(
                req,
                rs::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("Group {} not exist!", h.consumer_group),
            ));
        }
        if !self.meta.topics.contains(&h.topic) {
            return Ok(RemotingCommand::error(req, rs::TOPIC_NOT_EXIST, format!("Topic {} not exist!", h.topic)));
        }
        let Some(queue_id) = h.queue_id else {
            return Ok(RemotingCommand::error(
                req,
                rs::INVALID_PARAMETER,
                format!("QueueId is null, topic is {}", h.topic),
            ));
        };
        let Some(offset) = h.commit_offset else {
            return Ok(RemotingCommand::error(
                req,
                rs::INVALID_PARAMETER,
                format!("Offset is null, topic is {}", h.topic),
            ));
        };
        self.meta.offsets.commit_offset(&peer_addr(conn), &h.consumer_group, &h.topic, queue_id, offset);
        Ok(RemotingCommand::success(req))
    }

    fn lock_body(req: &RemotingCommand) -> Result<LockBatchRequestBody, RemotingCommand> {
        crate::json::from_slice_lenient(&req.body)
            .map_err(|e| RemotingCommand::error(req, rs::SYSTEM_ERROR, format!("lock batch body does not parse: {e}")))
    }

    fn lock_batch(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let body = Self::lock_body(req)?;
        let locked = self.meta.locks.try_lock_batch(&body.consumer_group, &body.mq_set, &body.client_id, now_millis());
        Ok(RemotingCommand::success(req).with_body(json_body(&json!({ "lockOKMQSet": locked }))))
    }

    fn unlock_batch(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let body = Self::lock_body(req)?;
        self.meta.locks.unlock_batch(&body.consumer_group, &body.mq_set, &body.client_id);
        Ok(RemotingCommand::success(req))
    }

    // ----------------------------------------------------------------------------------------
    // Topics

    /// Checks a topic an admin request wants to create or change.
    fn check_admin_topic(&self, req: &RemotingCommand, topic: &str) -> Result<(), RemotingCommand> {
        validate_topic(topic).map_err(|e| meta_error(req, &e))?;
        if self.meta.topics.is_system_topic(topic) {
            return Err(meta_error(req, &MetaError::SystemTopic(topic.to_string())));
        }
        Ok(())
    }

    fn check_topic_config(&self, req: &RemotingCommand, tc: &TopicConfig) -> Result<(), RemotingCommand> {
        self.check_admin_topic(req, &tc.topic_name)?;
        if tc.attributes.get("+message.type").map(String::as_str) == Some("MIXED") {
            return Err(RemotingCommand::error(req, rs::INVALID_PARAMETER, "MIXED message type is not supported."));
        }
        if tc.read_queue_nums < 0 || tc.write_queue_nums < 0 {
            return Err(RemotingCommand::error(
                req,
                rs::INVALID_PARAMETER,
                format!("queue nums of topic {} must not be negative", tc.topic_name),
            ));
        }
        if tc.topic_filter_type != "SINGLE_TAG" && tc.topic_filter_type != "MULTI_TAG" {
            return Err(RemotingCommand::error(
                req,
                rs::SYSTEM_ERROR,
                format!("No enum constant org.apache.rocketmq.common.TopicFilterType.{}", tc.topic_filter_type),
            ));
        }
        Ok(())
    }

    fn update_and_create_topic(
        &self,
        conn: &ConnectionHandle,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let h: CreateTopicRequestHeader = Self::header(req)?;
        info!(topic = %h.topic, caller = %conn.peer(), "broker receive request to update or create topic");
        self.check_admin_topic(req, &h.topic)?;
        let attributes = parse_attributes(h.attributes.as_deref().unwrap_or("")).map_err(|e| meta_error(req, &e))?;
        let tc = TopicConfig {
            attributes,
            order: h.order.unwrap_or(false),
            perm: h.perm,
            read_queue_nums: h.read_queue_nums,
            topic_filter_type: h.topic_filter_type.unwrap_or_else(|| "SINGLE_TAG".into()),
            topic_name: h.topic,
            topic_sys_flag: h.topic_sys_flag.unwrap_or(0),
            write_queue_nums: h.write_queue_nums,
        };
        self.check_topic_config(req, &tc)?;
        self.meta.topics.update_topic_config(tc).map_err(|e| meta_error(req, &e))?;
        Ok(RemotingCommand::success(req))
    }

    fn update_and_create_topic_list(
        &self,
        conn: &ConnectionHandle,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let body: CreateTopicListRequestBody = crate::json::from_slice_lenient(&req.body).map_err(|e| {
            RemotingCommand::error(req, rs::SYSTEM_ERROR, format!("topic list body does not parse: {e}"))
        })?;
        let names: Vec<&str> = body.topic_config_list.iter().map(|t| t.topic_name.as_str()).collect();
        info!(topics = ?names, caller = %conn.peer(), "update and create topic list");
        for tc in &body.topic_config_list {
            self.check_topic_config(req, tc)?;
        }
        self.meta.topics.update_topic_config_list(body.topic_config_list).map_err(|e| meta_error(req, &e))?;
        Ok(RemotingCommand::success(req))
    }

    fn delete_topic(&self, conn: &ConnectionHandle, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: DeleteTopicRequestHeader = Self::header(req)?;
        info!(topic = %h.topic, caller = %conn.peer(), "broker receive request to delete topic");
        if h.topic.trim().is_empty() {
            return Ok(RemotingCommand::error(req, rs::INVALID_PARAMETER, "The specified topic is blank."));
        }
        if self.meta.topics.is_system_topic(&h.topic) {
            return Ok(meta_error(req, &MetaError::SystemTopic(h.topic.clone())));
        }
        // clearRetryTopicWhenDeleteTopic (default true): the pop retry topics of the topic's groups.
        let mut topics = vec![h.topic.clone()];
        for group in self.meta.offsets.which_group_by_topic(&h.topic) {
            for t in [format!("%RETRY%{group}+{}", h.topic), format!("%RETRY%{group}_{}", h.topic)] {
                if self.meta.topics.contains(&t) {
                    topics.push(t);
                }
            }
        }
        for t in &topics {
            self.meta.topics.delete_topic_config(t).map_err(|e| meta_error(req, &e))?;
            self.meta.offsets.clean_offset_by_topic(t);
        }
        self.meta.store.delete_topics(&topics);
        Ok(RemotingCommand::success(req))
    }

    fn all_topic_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let _h: GetAllTopicConfigRequestHeader = Self::header(req)?;
        let body = self.meta.topics.encode_with_mapping();
        let total = self.meta.topics.topic_names().len() as i32;
        Ok(RemotingCommand::success(req)
            .with_header(&GetAllTopicConfigResponseHeader { total_topic_num: total })
            .with_body(body))
    }

    fn topic_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: GetTopicConfigRequestHeader = Self::header(req)?;
        match self.meta.topics.select(&h.topic) {
            Some(tc) => Ok(RemotingCommand::success(req).with_body(json_body(&tc))),
            None => Ok(RemotingCommand::error(
                req,
                rs::TOPIC_NOT_EXIST,
                format!("No topic in this broker. topic: {}", h.topic),
            )),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Subscription groups

    fn update_subscription_group(
        &self,
        conn: &ConnectionHandle,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        if req.body.is_empty() {
            return Ok(RemotingCommand::success(req));
        }
        let cfg: SubscriptionGroupConfig = crate::json::from_slice_lenient(&req.body).map_err(|e| {
            RemotingCommand::error(req, rs::SYSTEM_ERROR, format!("subscription group body does not parse: {e}"))
        })?;
        info!(group = %cfg.group_name, caller = %conn.peer(), "update and create subscription group");
        validate_group(&cfg.group_name).map_err(|e| meta_error(req, &e))?;
        self.meta.subscriptions.update(cfg).map_err(|e| meta_error(req, &e))?;
        Ok(RemotingCommand::success(req))
    }

    fn all_subscription_groups(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let _h: GetAllSubscriptionGroupRequestHeader = Self::header(req)?;
        let total = self.meta.subscriptions.all().len() as i32;
        Ok(RemotingCommand::success(req)
            .with_header(&GetAllSubscriptionGroupResponseHeader { total_group_num: total })
            .with_body(self.meta.subscriptions.encode(false)))
    }

    fn delete_subscription_group(
        &self,
        conn: &ConnectionHandle,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let h: DeleteSubscriptionGroupRequestHeader = Self::header(req)?;
        info!(group = %h.group_name, caller = %conn.peer(), "delete subscription group");
        self.meta.subscriptions.delete(&h.group_name).map_err(|e| meta_error(req, &e))?;
        if h.clean_offset.unwrap_or(false) {
            self.meta.offsets.remove_offset(&h.group_name);
        }
        Ok(RemotingCommand::success(req))
    }

    fn subscription_group(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: GetSubscriptionGroupConfigRequestHeader = Self::header(req)?;
        match self.meta.subscriptions.find(&h.group).map_err(|e| meta_error(req, &e))? {
            Some(c) => Ok(RemotingCommand::success(req).with_body(json_body(&c))),
            None => Ok(RemotingCommand::error(req, rs::SUBSCRIPTION_GROUP_NOT_EXIST, "No group in this broker")),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Connections and stats

    fn consumer_connections(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: GetConsumerConnectionListRequestHeader = Self::header(req)?;
        let Some(gi) = self.meta.consumers.group_info(&h.consumer_group) else {
            return Ok(RemotingCommand::error(
                req,
                rs::CONSUMER_NOT_ONLINE,
                format!("the consumer group[{}] not online", h.consumer_group),
            ));
        };
        Ok(RemotingCommand::success(req).with_body(json_body(&consumer_connection_json(&gi))))
    }

    fn producer_connections(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: GetProducerConnectionListRequestHeader = Self::header(req)?;
        let Some(conns) = self.meta.producers.group_connections(&h.producer_group) else {
            return Ok(RemotingCommand::error(
                req,
                rs::SYSTEM_ERROR,
                format!("the producer group[{}] not exist", h.producer_group),
            ));
        };
        let set: Vec<_> = conns.iter().map(connection_json).collect();
        Ok(RemotingCommand::success(req).with_body(json_body(&json!({ "connectionSet": set }))))
    }

    fn consume_stats(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: GetConsumeStatsRequestHeader = Self::header(req)?;
        let group = &h.consumer_group;
        let listed: Vec<String> = h
            .topic_list
            .as_deref()
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
        let topics: BTreeSet<String> = if !listed.is_empty() {
            listed.into_iter().collect()
        } else {
            let mut t: BTreeSet<String> = match h.topic.as_deref().filter(|t| !t.trim().is_empty()) {
                Some(t) => [t.to_string()].into_iter().collect(),
                None => self.meta.offsets.which_topic_by_consumer(group),
            };
            let sub_count = self.meta.consumers.find_subscription_data_count(group);
            t.retain(|topic| sub_count == 0 || self.meta.consumers.find_subscription_data(group, topic).is_some());
            t
        };
        let broker_name = self.meta.broker_config().broker_name.clone();
        let store = &self.meta.store;
        let mut table: BTreeMap<MessageQueue, serde_json::Value> = BTreeMap::new();
        for topic in topics {
            let Some(tc) = self.meta.topics.select(&topic) else { continue };
            for i in 0..tc.read_queue_nums {
                let broker_offset = store.max_offset(&topic, i).max(0);
                let consumer_offset = self.meta.offsets.query_offset(group, &topic, i).max(0);
                let last_timestamp = if consumer_offset >= 1 {
                    store.store_time_of(&topic, i, consumer_offset - 1).filter(|t| *t > 0).unwrap_or(0)
                } else {
                    0
                };
                table.insert(
                    MessageQueue::new(topic.clone(), broker_name.clone(), i),
                    json!({
                        "brokerOffset": broker_offset,
                        "consumerOffset": consumer_offset,
                        "lastTimestamp": last_timestamp,
                        "pullOffset": consumer_offset,
                    }),
                );
            }
        }
        let body = format!("{{\"consumeTps\":{},\"offsetTable\":{}}}", java_double(0.0), object_key_map(table));
        Ok(RemotingCommand::success(req).with_body(body))
    }

    fn topic_stats(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: GetTopicStatsInfoRequestHeader = Self::header(req)?;
        let Some(tc) = self.meta.topics.select(&h.topic) else {
            return Ok(RemotingCommand::error(req, rs::TOPIC_NOT_EXIST, format!("topic[{}] not exist", h.topic)));
        };
        let broker_name = self.meta.broker_config().broker_name.clone();
        let store = &self.meta.store;
        let mut table = BTreeMap::new();
        for i in 0..tc.write_queue_nums.max(tc.read_queue_nums) {
            let min = store.min_offset(&h.topic, i).max(0);
            let max = store.max_offset(&h.topic, i).max(0);
            let ts = if max > 0 { store.store_time_of(&h.topic, i, max - 1).unwrap_or(0) } else { 0 };
            table.insert(
                MessageQueue::new(h.topic.clone(), broker_name.clone(), i),
                json!({"lastUpdateTimestamp": ts, "maxOffset": max, "minOffset": min}),
            );
        }
        let body = format!("{{\"offsetTable\":{},\"topicPutTps\":{}}}", object_key_map(table), java_double(0.0));
        Ok(RemotingCommand::success(req).with_body(body))
    }
}

fn consumer_connection_json(gi: &ConsumerGroupInfo) -> serde_json::Value {
    let set: Vec<_> = gi.channels.values().map(connection_json).collect();
    let subs: BTreeMap<&String, &SubscriptionData> = gi.subscriptions.iter().collect();
    let mut v = json!({
        "connectionSet": set,
        "messageModel": gi.message_model,
        "subscriptionTable": subs,
    });
    // Null enums are omitted by fastjson.
    if let Some(m) = v.as_object_mut() {
        if !gi.consume_type.is_empty() {
            m.insert("consumeType".into(), json!(gi.consume_type));
        }
        if !gi.consume_from_where.is_empty() {
            m.insert("consumeFromWhere".into(), json!(gi.consume_from_where));
        }
        if gi.message_model.is_empty() {
            m.remove("messageModel");
        }
    }
    v
}

impl RequestProcessor for MetaProcessor {
    fn process<'a>(
        &'a self,
        conn: &'a ConnectionHandle,
        request: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move { Some(self.handle(conn, &request)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_like_fastjson() {
        let mut m = BTreeMap::new();
        m.insert(MessageQueue::new("T", "b", 1), json!({"x": 1}));
        assert_eq!(object_key_map(m), r#"{{"brokerName":"b","queueId":1,"topic":"T"}:{"x":1}}"#);
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(2.5), "2.5");
    }
}
