//! What a request asks for (Apache's `DefaultAuthorizationContextBuilder`): each request code maps
//! to zero or more (resource, actions) pairs read from its header fields or body. A request with
//! no pair is allowed once authenticated, as in Apache.

use crate::protocol::codes::request as rc;
use crate::remoting::RemotingCommand;

use super::model::{Action, Resource, ResourceType};

/// Prefix of retry topics.
pub const RETRY_PREFIX: &str = "%RETRY%";

/// Largest body parsed for contexts (heartbeats, lock requests); a larger one is refused.
pub const MAX_CONTEXT_BODY: usize = 4 << 20;
/// Most contexts one request may yield.
pub const MAX_CONTEXTS: usize = 4096;

/// One thing a request does: a resource and the actions on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// The (LITERAL) resource.
    pub resource: Resource,
    /// The actions.
    pub actions: Vec<Action>,
}

fn topic(name: &str, actions: &[Action]) -> AccessRequest {
    AccessRequest { resource: Resource::literal(ResourceType::Topic, name), actions: actions.to_vec() }
}

fn group(name: &str, actions: &[Action]) -> AccessRequest {
    AccessRequest { resource: Resource::literal(ResourceType::Group, name), actions: actions.to_vec() }
}

fn is_retry(t: &str) -> bool {
    t.starts_with(RETRY_PREFIX)
}

/// The contexts of a request; `Err` when the request's body cannot be read to decide (refused).
pub fn contexts(req: &RemotingCommand, cluster: &str) -> Result<Vec<AccessRequest>, String> {
    use Action::*;
    let f = |k: &str| req.ext_fields.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let mut out = Vec::new();
    // A topic of the request, or its group when it is a retry topic.
    let topic_or_retry_group =
        |out: &mut Vec<AccessRequest>, t: &str, topic_actions: &[Action], group_actions: &[Action]| match t
            .strip_prefix(RETRY_PREFIX)
        {
            Some(g) => out.push(group(g, group_actions)),
            None => out.push(topic(t, topic_actions)),
        };
    match req.code {
        rc::GET_ROUTEINFO_BY_TOPIC => {
            if let Some(t) = f("topic") {
                topic_or_retry_group(&mut out, t, &[Pub, Sub, Get], &[Sub, Get]);
            }
        }
        rc::SEND_MESSAGE | rc::SEND_MESSAGE_V2 | rc::SEND_BATCH_MESSAGE => {
            let (tk, gk) = if req.code == rc::SEND_MESSAGE { ("topic", "producerGroup") } else { ("b", "a") };
            if let Some(t) = f(tk) {
                if is_retry(t) {
                    let g = t.trim_start_matches(RETRY_PREFIX);
                    out.push(group(if g.is_empty() { f(gk).unwrap_or(t) } else { g }, &[Sub]));
                } else {
                    out.push(topic(t, &[Pub]));
                }
            }
        }
        rc::END_TRANSACTION => {
            if let Some(t) = f("topic") {
                out.push(topic(t, &[Pub]));
            }
        }
        rc::CHECK_TRANSACTION_STATE => {
            if let Some(t) = f("topic") {
                out.push(topic(t, &[Pub]));
            }
        }
        rc::CONSUMER_SEND_MSG_BACK => {
            if let Some(g) = f("group") {
                out.push(group(g, &[Sub]));
            }
        }
        rc::PULL_MESSAGE => {
            if let Some(t) = f("topic").filter(|t| !is_retry(t)) {
                out.push(topic(t, &[Sub]));
            }
            if let Some(g) = f("consumerGroup") {
                out.push(group(g, &[Sub]));
            }
        }
        rc::QUERY_MESSAGE => {
            if let Some(t) = f("topic") {
                out.push(topic(t, &[Sub, Get]));
            }
        }
        rc::HEART_BEAT => heartbeat(req, &mut out)?,
        rc::UNREGISTER_CLIENT => {
            if let Some(g) = f("consumerGroup") {
                out.push(group(g, &[Sub]));
            }
        }
        rc::GET_CONSUMER_LIST_BY_GROUP => {
            if let Some(g) = f("consumerGroup") {
                out.push(group(g, &[Sub, Get]));
            }
        }
        rc::QUERY_CONSUMER_OFFSET | rc::UPDATE_CONSUMER_OFFSET => {
            let a: &[Action] = if req.code == rc::QUERY_CONSUMER_OFFSET { &[Sub, Get] } else { &[Sub, Update] };
            if let Some(t) = f("topic").filter(|t| !is_retry(t)) {
                out.push(topic(t, a));
            }
            if let Some(g) = f("consumerGroup") {
                out.push(group(g, a));
            }
        }
        rc::LOCK_BATCH_MQ | rc::UNLOCK_BATCH_MQ => lock_batch(req, &mut out)?,
        // Annotated headers (@RocketMQAction / @RocketMQResource).
        rc::NOTIFY_CONSUMER_IDS_CHANGED | rc::CONSUME_MESSAGE_DIRECTLY | rc::PUSH_REPLY_MESSAGE_TO_CLIENT => {
            if let Some(g) = f("consumerGroup") {
                out.push(group(g, &[Sub]));
            }
        }
        rc::UPDATE_AND_CREATE_TOPIC => {
            if let Some(t) = f("topic") {
                out.push(topic(t, &[Create]));
            }
        }
        rc::DELETE_TOPIC_IN_BROKER => {
            if let Some(t) = f("topic") {
                out.push(topic(t, &[Delete]));
            }
        }
        rc::DELETE_SUBSCRIPTIONGROUP => {
            if let Some(g) = f("groupName") {
                out.push(group(g, &[Delete]));
            }
        }
        rc::CLONE_GROUP_OFFSET => {
            for k in ["srcGroup", "destGroup"] {
                if let Some(g) = f(k) {
                    out.push(group(g, &[Update]));
                }
            }
            if let Some(t) = f("topic") {
                out.push(topic(t, &[Update]));
            }
        }
        rc::INVOKE_BROKER_TO_RESET_OFFSET => {
            if let Some(t) = f("topic") {
                out.push(topic(t, &[Update]));
            }
            if let Some(g) = f("group") {
                out.push(group(g, &[Update]));
            }
        }
        rc::GET_TOPIC_CONFIG
        | rc::GET_TOPIC_STATS_INFO
        | rc::GET_MIN_OFFSET
        | rc::GET_MAX_OFFSET
        | rc::GET_EARLIEST_MSG_STORETIME
        | rc::SEARCH_OFFSET_BY_TIMESTAMP
        | rc::VIEW_MESSAGE_BY_ID
        | rc::QUERY_TOPIC_CONSUME_BY_WHO => {
            if let Some(t) = f("topic") {
                topic_or_retry_group(&mut out, t, &[Get], &[Get]);
            }
        }
        rc::GET_CONSUME_STATS => {
            if let Some(g) = f("consumerGroup") {
                out.push(group(g, &[Get]));
            }
            if let Some(t) = f("topic") {
                topic_or_retry_group(&mut out, t, &[Get], &[Get]);
            }
            if let Some(list) = f("topicList") {
                for t in list.split(';').filter(|t| !t.is_empty()).take(MAX_CONTEXTS) {
                    topic_or_retry_group(&mut out, t, &[Get], &[Get]);
                }
            }
        }
        rc::GET_CONSUMER_CONNECTION_LIST | rc::GET_CONSUMER_STATUS_FROM_CLIENT => {
            if let Some(g) = f("consumerGroup") {
                out.push(group(g, &[Get]));
            }
        }
        rc::GET_SUBSCRIPTIONGROUP_CONFIG | rc::QUERY_TOPICS_BY_CONSUMER => {
            if let Some(g) = f("group") {
                out.push(group(g, &[Get]));
            }
        }
        rc::QUERY_SUBSCRIPTION_BY_CONSUMER => {
            if let Some(g) = f("group") {
                out.push(group(g, &[Get]));
            }
            if let Some(t) = f("topic") {
                topic_or_retry_group(&mut out, t, &[Get], &[Get]);
            }
        }
        rc::GET_BROKER_MEMBER_GROUP => {
            out.push(AccessRequest { resource: Resource::literal(ResourceType::Cluster, cluster), actions: vec![Get] })
        }
        rc::REGISTER_BROKER
        | rc::UNREGISTER_BROKER
        | rc::BROKER_HEARTBEAT
        | rc::REGISTER_TOPIC_IN_NAMESRV
        | rc::DELETE_TOPIC_IN_NAMESRV
        | rc::PUT_KV_CONFIG
        | rc::DELETE_KV_CONFIG
        | rc::ADD_WRITE_PERM_OF_BROKER
        | rc::WIPE_WRITE_PERM_OF_BROKER
        | rc::ADD_BROKER
        | rc::REMOVE_BROKER
        | rc::RESET_MASTER_FLUSH_OFFSET
        | rc::NOTIFY_MIN_BROKER_ID_CHANGE
        | rc::EXCHANGE_BROKER_HA_INFO
        | rc::AUTH_CREATE_USER
        | rc::AUTH_UPDATE_USER
        | rc::AUTH_DELETE_USER
        | rc::AUTH_CREATE_ACL
        | rc::AUTH_UPDATE_ACL
        | rc::AUTH_DELETE_ACL => out
            .push(AccessRequest { resource: Resource::literal(ResourceType::Cluster, cluster), actions: vec![Update] }),
        rc::GET_KV_CONFIG
        | rc::GET_KVLIST_BY_NAMESPACE
        | rc::QUERY_DATA_VERSION
        | rc::GET_PRODUCER_CONNECTION_LIST
        | rc::AUTH_GET_USER
        | rc::AUTH_LIST_USER
        | rc::AUTH_GET_ACL
        | rc::AUTH_LIST_ACL => {
            out.push(AccessRequest { resource: Resource::literal(ResourceType::Cluster, cluster), actions: vec![Get] })
        }
        _ => {}
    }
    if out.len() > MAX_CONTEXTS {
        return Err(format!("the request names more than {MAX_CONTEXTS} resources"));
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct HbSubscription {
    #[serde(default)]
    topic: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct HbConsumer {
    #[serde(default)]
    group_name: String,
    #[serde(default)]
    subscription_data_set: Vec<HbSubscription>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Heartbeat {
    #[serde(default)]
    consumer_data_set: Vec<HbConsumer>,
}

fn read_body<T: serde::de::DeserializeOwned>(req: &RemotingCommand) -> Result<Option<T>, String> {
    if req.body.is_empty() {
        return Ok(None);
    }
    if req.body.len() > MAX_CONTEXT_BODY {
        return Err(format!("the body of {} bytes is above {MAX_CONTEXT_BODY}", req.body.len()));
    }
    crate::json::from_slice_lenient(&req.body).map(Some).map_err(|e| format!("the body cannot be read: {e}"))
}

fn heartbeat(req: &RemotingCommand, out: &mut Vec<AccessRequest>) -> Result<(), String> {
    let Some(hb) = read_body::<Heartbeat>(req)? else { return Ok(()) };
    for c in &hb.consumer_data_set {
        if !c.group_name.is_empty() {
            out.push(group(&c.group_name, &[Action::Sub]));
        }
        for s in &c.subscription_data_set {
            if !s.topic.is_empty() && !is_retry(&s.topic) {
                out.push(topic(&s.topic, &[Action::Sub]));
            }
            if out.len() > MAX_CONTEXTS {
                return Err(format!("the heartbeat names more than {MAX_CONTEXTS} resources"));
            }
        }
    }
    Ok(())
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mq {
    #[serde(default)]
    topic: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockBody {
    #[serde(default)]
    consumer_group: String,
    #[serde(default)]
    mq_set: Vec<Mq>,
}

fn lock_batch(req: &RemotingCommand, out: &mut Vec<AccessRequest>) -> Result<(), String> {
    let Some(b) = read_body::<LockBody>(req)? else { return Ok(()) };
    if !b.consumer_group.is_empty() {
        out.push(group(&b.consumer_group, &[Action::Sub]));
    }
    for mq in &b.mq_set {
        if !mq.topic.is_empty() && !is_retry(&mq.topic) && !out.iter().any(|c| c.resource.name == mq.topic) {
            out.push(topic(&mq.topic, &[Action::Sub]));
        }
        if out.len() > MAX_CONTEXTS {
            return Err(format!("the request names more than {MAX_CONTEXTS} resources"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn req(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
        let mut r = RemotingCommand::request(code);
        for (k, v) in fields {
            r.ext_fields.insert(k.to_string(), v.to_string());
        }
        r
    }

    #[test]
    fn sends_pulls_and_retry_topics() {
        let c = contexts(&req(rc::SEND_MESSAGE_V2, &[("a", "pg"), ("b", "T")]), "C").unwrap();
        assert_eq!(c, vec![topic("T", &[Action::Pub])]);
        let c = contexts(&req(rc::SEND_MESSAGE, &[("producerGroup", "pg"), ("topic", "%RETRY%g1")]), "C").unwrap();
        assert_eq!(c, vec![group("g1", &[Action::Sub])]);
        let c = contexts(&req(rc::PULL_MESSAGE, &[("consumerGroup", "g"), ("topic", "T")]), "C").unwrap();
        assert_eq!(c, vec![topic("T", &[Action::Sub]), group("g", &[Action::Sub])]);
        let c = contexts(&req(rc::GET_ROUTEINFO_BY_TOPIC, &[("topic", "T")]), "C").unwrap();
        assert_eq!(c[0].actions, vec![Action::Pub, Action::Sub, Action::Get]);
        let c = contexts(&req(rc::AUTH_CREATE_USER, &[("username", "u")]), "C").unwrap();
        assert_eq!(c[0].resource, Resource::literal(ResourceType::Cluster, "C"));
        assert!(contexts(&req(rc::GET_BROKER_CONFIG, &[]), "C").unwrap().is_empty());
    }

    #[test]
    fn heartbeat_and_lock_bodies() {
        let mut r = req(rc::HEART_BEAT, &[]);
        r.body = Bytes::from_static(
            br#"{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"T"},{"topic":"%RETRY%g"}]}],"producerDataSet":[{"groupName":"p"}]}"#,
        );
        assert_eq!(contexts(&r, "C").unwrap(), vec![group("g", &[Action::Sub]), topic("T", &[Action::Sub])]);
        r.body = Bytes::from_static(b"{not json");
        assert!(contexts(&r, "C").is_err());
        let mut r = req(rc::LOCK_BATCH_MQ, &[]);
        r.body = Bytes::from_static(br#"{"consumerGroup":"g","clientId":"c","mqSet":[{"topic":"T","brokerName":"b","queueId":0},{"topic":"T","brokerName":"b","queueId":1}]}"#);
        assert_eq!(contexts(&r, "C").unwrap(), vec![group("g", &[Action::Sub]), topic("T", &[Action::Sub])]);
    }
}
