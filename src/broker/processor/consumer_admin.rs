//! Consumer-group admin requests that RocketMQ's tools and dashboard send: who consumes a topic,
//! what a group consumes, a group's subscription, cloning a group's offsets, and resetting a
//! group's offsets by time (INVOKE_BROKER_TO_RESET_OFFSET with Apache's server-side reset: the
//! offsets are committed and the group's next pull of each queue is told to move there).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Answer, Answering};
use crate::broker::config::BrokerRole;
use crate::broker::core::BrokerCore;
use crate::broker::meta::MessageQueue;
use crate::protocol::codes::{request as rq, response as rs};
use crate::protocol::header::admin::*;
use crate::remoting::{BoxFuture, RemotingCommand};
use crate::store::consume_queue::BoundaryType;

/// Answers QUERY_TOPIC_CONSUME_BY_WHO, QUERY_TOPICS_BY_CONSUMER, QUERY_SUBSCRIPTION_BY_CONSUMER,
/// CLONE_GROUP_OFFSET and INVOKE_BROKER_TO_RESET_OFFSET.
pub struct ConsumerAdminProcessor {
    core: Arc<BrokerCore>,
}

impl ConsumerAdminProcessor {
    /// The codes this processor answers.
    pub const CODES: &'static [i32] = &[
        rq::QUERY_TOPIC_CONSUME_BY_WHO,
        rq::QUERY_TOPICS_BY_CONSUMER,
        rq::QUERY_SUBSCRIPTION_BY_CONSUMER,
        rq::CLONE_GROUP_OFFSET,
        rq::INVOKE_BROKER_TO_RESET_OFFSET,
    ];

    /// A processor over a broker's core.
    pub fn new(core: Arc<BrokerCore>) -> Self {
        ConsumerAdminProcessor { core }
    }

    fn reset_offset(&self, req: &RemotingCommand) -> Result<RemotingCommand, (i32, String)> {
        let h: ResetOffsetRequestHeader = req.decode_header().map_err(|e| (rs::SYSTEM_ERROR, e.to_string()))?;
        let core = &self.core;
        if core.config().broker_role == BrokerRole::Slave {
            return Err((rs::SYSTEM_ERROR, "Can not reset offset in slave broker".into()));
        }
        let Some(tc) = core.meta.topics.select(&h.topic) else {
            return Err((rs::TOPIC_NOT_EXIST, format!("Topic {} does not exist", h.topic)));
        };
        if core.meta.subscriptions.find(&h.group).ok().flatten().is_none() {
            return Err((rs::SUBSCRIPTION_GROUP_NOT_EXIST, format!("Group {} does not exist", h.group)));
        }
        let store = core.store();
        let queues: Vec<i32> = match h.queue_id {
            Some(q) if q >= 0 => vec![q],
            _ => (0..tc.read_queue_nums).collect(),
        };
        let mut table = BTreeMap::new();
        for q in queues {
            let (min, max) = (store.min_offset_in_queue(&h.topic, q), store.max_offset_in_queue(&h.topic, q));
            let target = match h.offset.filter(|o| *o >= 0 && h.queue_id.is_some_and(|q| q >= 0)) {
                Some(off) => {
                    if off < min || off > max {
                        return Err((rs::SYSTEM_ERROR, format!("offset {off} of queue {q} is outside [{min}, {max}]")));
                    }
                    off
                }
                None if h.timestamp < 0 => max,
                None => store.offset_in_queue_by_time(&h.topic, q, h.timestamp, BoundaryType::Lower).clamp(min, max),
            };
            table.insert(q, target);
        }
        core.meta.offsets.reset_offsets(&h.group, &h.topic, &table);
        tracing::info!(group = %h.group, topic = %h.topic, timestamp = h.timestamp, ?table, "consumer offsets reset");
        let broker = core.config().broker_name.clone();
        let body = format!(
            "{{\"offsetTable\":{}}}",
            super::meta::object_key_map(
                table.iter().map(|(q, o)| (MessageQueue::new(h.topic.clone(), broker.clone(), *q), *o))
            )
        );
        Ok(RemotingCommand::success(req).with_body(body))
    }
}

impl Answering for ConsumerAdminProcessor {
    fn answer(&self, req: &RemotingCommand) -> Answer {
        let bad = |e: crate::remoting::HeaderError| (rs::SYSTEM_ERROR, e.to_string());
        let meta = &self.core.meta;
        Ok(match req.code {
            rq::QUERY_TOPIC_CONSUME_BY_WHO => {
                let h: QueryTopicConsumeByWhoRequestHeader = req.decode_header().map_err(bad)?;
                let mut groups: BTreeSet<String> = meta.consumers.groups_by_topic(&h.topic);
                groups.extend(meta.offsets.which_group_by_topic(&h.topic));
                let body = serde_json::json!({ "groupList": groups });
                RemotingCommand::success(req).with_body(body.to_string())
            }
            rq::QUERY_TOPICS_BY_CONSUMER => {
                let h: QueryTopicsByConsumerRequestHeader = req.decode_header().map_err(bad)?;
                let topics = meta.offsets.which_topic_by_consumer(&h.group);
                let addr = self.core.config().broker_addr();
                let body = serde_json::json!({ "topicList": { "topicList": topics, "brokerAddr": addr } });
                RemotingCommand::success(req).with_body(body.to_string())
            }
            rq::QUERY_SUBSCRIPTION_BY_CONSUMER => {
                let h: QuerySubscriptionByConsumerRequestHeader = req.decode_header().map_err(bad)?;
                let sd = meta.consumers.find_subscription_data(&h.group, &h.topic);
                let body = serde_json::json!({ "group": h.group, "topic": h.topic, "subscriptionData": sd });
                RemotingCommand::success(req).with_body(body.to_string())
            }
            rq::CLONE_GROUP_OFFSET => {
                let h: CloneGroupOffsetRequestHeader = req.decode_header().map_err(bad)?;
                let topics: BTreeSet<String> = match h.topic.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                    Some(t) => [t.to_string()].into_iter().collect(),
                    None => meta.offsets.which_topic_by_consumer(&h.src_group),
                };
                let online = !h.offline.unwrap_or(false) && !meta.consumers.client_ids(&h.src_group).is_empty();
                let peer = "CLONE_GROUP_OFFSET";
                for topic in topics {
                    if meta.topics.select(&topic).is_none() {
                        continue;
                    }
                    if online && meta.consumers.find_subscription_data(&h.src_group, &topic).is_none() {
                        continue;
                    }
                    for (q, off) in meta.offsets.query_offsets(&h.src_group, &topic) {
                        meta.offsets.commit_offset(peer, &h.dest_group, &topic, q, off);
                    }
                }
                RemotingCommand::success(req)
            }
            rq::INVOKE_BROKER_TO_RESET_OFFSET => self.reset_offset(req)?,
            other => RemotingCommand::error(
                req,
                rs::REQUEST_CODE_NOT_SUPPORTED,
                format!(" request type {other} not supported"),
            ),
        })
    }

    /// INVOKE_BROKER_TO_RESET_OFFSET without server-side reset asks the group's clients first.
    fn answer_later<'r>(&'r self, req: &'r RemotingCommand) -> Option<BoxFuture<'r, Answer>> {
        (req.code == rq::INVOKE_BROKER_TO_RESET_OFFSET && !self.core.config().use_server_side_reset_offset)
            .then(|| Box::pin(super::client_admin::legacy_reset_offset(&self.core, req)) as BoxFuture<'r, Answer>)
    }
}
