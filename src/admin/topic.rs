//! updateTopic, deleteTopic, topicList, topicRoute, topicStatus.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::route::{cluster_info, cluster_masters, topic_list as fetch_topic_list, topic_route};
use super::{human_time, Admin, AdminError};
use crate::client::route::read_addr;
use crate::protocol::codes::request;
use crate::protocol::header::DeleteTopicFromNamesrvRequestHeader;
use crate::protocol::header::{CreateTopicRequestHeader, DeleteTopicRequestHeader, GetTopicStatsInfoRequestHeader};
use crate::protocol::perm;
use crate::remoting::RemotingCommand;

/// The topic settings updateTopic sends (Apache's defaults: 8 read and 8 write queues, perm RW).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub topic: String,
    /// Read queues.
    pub read_queue_nums: i32,
    /// Write queues.
    pub write_queue_nums: i32,
    /// Permission bits (2 W, 4 R, 6 RW).
    pub perm: i32,
    /// Order topic.
    pub order: bool,
}

impl TopicSpec {
    /// A spec with Apache's defaults.
    pub fn new(topic: &str) -> Self {
        TopicSpec { topic: topic.trim().to_string(), read_queue_nums: 8, write_queue_nums: 8, perm: 6, order: false }
    }

    /// Apache's `TopicConfig.toString()`.
    pub fn describe(&self) -> String {
        format!(
            "TopicConfig [topicName={}, readQueueNums={}, writeQueueNums={}, perm={}, topicFilterType=SINGLE_TAG, topicSysFlag=0, order={}, attributes={{}}]",
            self.topic,
            self.read_queue_nums,
            self.write_queue_nums,
            perm_to_string(self.perm),
            self.order
        )
    }
}

/// Apache's `PermName.perm2String`: `RW-`, `R--`, `-W-`, `RWX`...
pub fn perm_to_string(perm: i32) -> String {
    let mut s = String::with_capacity(3);
    s.push(if perm & perm::READ != 0 { 'R' } else { '-' });
    s.push(if perm & perm::WRITE != 0 { 'W' } else { '-' });
    s.push(if perm & perm::INHERIT != 0 { 'X' } else { '-' });
    s
}

/// UPDATE_AND_CREATE_TOPIC (17) on one broker.
pub async fn create_topic_on(admin: &Admin, addr: &str, spec: &TopicSpec) -> Result<(), AdminError> {
    let header = CreateTopicRequestHeader {
        topic: spec.topic.clone(),
        default_topic: Some("TBW102".into()),
        read_queue_nums: spec.read_queue_nums,
        write_queue_nums: spec.write_queue_nums,
        perm: spec.perm,
        topic_filter_type: Some("SINGLE_TAG".into()),
        topic_sys_flag: Some(0),
        order: Some(spec.order),
        attributes: None,
        force: None,
    };
    admin.call(addr, RemotingCommand::request_with_header(request::UPDATE_AND_CREATE_TOPIC, &header)).await?;
    Ok(())
}

/// `updateTopic`: on one broker (`-b`) or on every master of a cluster (`-c`).
pub async fn update_topic(
    admin: &Admin,
    broker_addr: Option<&str>,
    cluster: Option<&str>,
    spec: &TopicSpec,
) -> Result<String, AdminError> {
    if spec.topic.is_empty() {
        return Err(AdminError::Usage("the topic name (-t) is empty".into()));
    }
    if spec.read_queue_nums <= 0 || spec.write_queue_nums <= 0 {
        return Err(AdminError::Usage("queue numbers (-r, -w) must be positive".into()));
    }
    let addrs: Vec<String> = match (broker_addr, cluster) {
        (Some(b), _) => vec![b.trim().to_string()],
        (None, Some(c)) => cluster_masters(&cluster_info(admin).await?, c.trim())?.into_iter().collect(),
        (None, None) => return Err(AdminError::Usage("give a broker address (-b) or a cluster name (-c)".into())),
    };
    let mut out = String::new();
    for addr in addrs {
        create_topic_on(admin, &addr, spec).await?;
        let _ = writeln!(out, "create topic to {addr} success.");
    }
    let _ = writeln!(out, "{}", spec.describe());
    Ok(out)
}

/// `deleteTopic`: DELETE_TOPIC_IN_BROKER (215) on every master of the cluster, then
/// DELETE_TOPIC_IN_NAMESRV (216) on every NameServer.
pub async fn delete_topic(admin: &Admin, cluster: &str, topic: &str) -> Result<String, AdminError> {
    let (cluster, topic) = (cluster.trim(), topic.trim());
    let masters = cluster_masters(&cluster_info(admin).await?, cluster)?;
    let mut out = String::new();
    for addr in &masters {
        let h = DeleteTopicRequestHeader { topic: topic.to_string() };
        admin.call(addr, RemotingCommand::request_with_header(request::DELETE_TOPIC_IN_BROKER, &h)).await?;
    }
    let _ = writeln!(out, "delete topic [{topic}] from cluster [{cluster}] success.");
    for ns in admin.namesrvs()? {
        let h =
            DeleteTopicFromNamesrvRequestHeader { topic: topic.to_string(), cluster_name: Some(cluster.to_string()) };
        admin.call(ns, RemotingCommand::request_with_header(request::DELETE_TOPIC_IN_NAMESRV, &h)).await?;
    }
    let _ = writeln!(out, "delete topic [{topic}] from NameServer success.");
    Ok(out)
}

/// `topicList`: every topic the NameServer knows, one per line.
pub async fn topic_list(admin: &Admin) -> Result<String, AdminError> {
    let list = fetch_topic_list(admin).await?;
    if list.topic_list.is_empty() {
        return Ok(format!("No topic is registered in the NameServer ({}).\n", admin.namesrv.join(";")));
    }
    let mut out = String::new();
    for t in &list.topic_list {
        out.push_str(t);
        out.push('\n');
    }
    Ok(out)
}

/// `topicRoute`: the route as pretty JSON.
pub async fn topic_route_json(admin: &Admin, topic: &str) -> Result<String, AdminError> {
    let route = topic_route(admin, topic.trim()).await?;
    let mut s = serde_json::to_string_pretty(&route)
        .map_err(|e| AdminError::BadAnswer { addr: "NameServer".into(), reason: e.to_string() })?;
    s.push('\n');
    Ok(s)
}

/// One queue's offsets as GET_TOPIC_STATS_INFO reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Smallest offset still stored.
    pub min_offset: i64,
    /// Next offset to be written.
    pub max_offset: i64,
    /// Store time of the last message (0 if none).
    pub last_update_timestamp: i64,
}

/// `(brokerName, topic, queueId)` of a MessageQueue key.
pub type QueueKey = (String, String, i32);

/// Reads an `offsetTable` whose keys are MessageQueue objects: `(brokerName, topic, queueId) → value`.
pub fn message_queue_table(body: &[u8], addr: &str) -> Result<(Value, Vec<(QueueKey, Value)>), AdminError> {
    let bad = |reason: String| AdminError::BadAnswer { addr: addr.to_string(), reason };
    let v = crate::json::parse_fastjson_slice(body).map_err(bad)?;
    let mut rows = Vec::new();
    if let Some(table) = v.get("offsetTable").and_then(Value::as_object) {
        for (k, val) in table {
            let key: Value = serde_json::from_str(k).map_err(|e| bad(format!("offsetTable key {k}: {e}")))?;
            let broker = key.get("brokerName").and_then(Value::as_str).unwrap_or_default().to_string();
            let topic = key.get("topic").and_then(Value::as_str).unwrap_or_default().to_string();
            let qid = key.get("queueId").and_then(Value::as_i64).unwrap_or(-1) as i32;
            rows.push(((broker, topic, qid), val.clone()));
        }
    }
    Ok((v, rows))
}

/// GET_TOPIC_STATS_INFO (202) on one broker: queue id → offsets, keyed by (brokerName, queueId).
pub async fn topic_stats_on(
    admin: &Admin,
    addr: &str,
    topic: &str,
) -> Result<BTreeMap<(String, i32), QueueStats>, AdminError> {
    let h = GetTopicStatsInfoRequestHeader { topic: topic.to_string() };
    let resp = admin.call(addr, RemotingCommand::request_with_header(request::GET_TOPIC_STATS_INFO, &h)).await?;
    let (_, rows) = message_queue_table(&resp.body, addr)?;
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(|((broker, _, qid), v)| {
            (
                (broker, qid),
                QueueStats {
                    min_offset: num(&v, "minOffset"),
                    max_offset: num(&v, "maxOffset"),
                    last_update_timestamp: num(&v, "lastUpdateTimestamp"),
                },
            )
        })
        .collect())
}

/// `topicStatus`: min/max offset and last update of every queue of the topic.
pub async fn topic_status(admin: &Admin, topic: &str) -> Result<String, AdminError> {
    let topic = topic.trim();
    let route = topic_route(admin, topic).await?;
    let mut all = BTreeMap::new();
    for bd in &route.broker_datas {
        let Some(addr) = read_addr(bd) else { continue };
        all.extend(topic_stats_on(admin, addr, topic).await?);
    }
    let mut out = format!(
        "{:<32}  {:<4}  {:<20}  {:<20}    {}\n",
        "#Broker Name", "#QID", "#Min Offset", "#Max Offset", "#Last Updated"
    );
    for ((broker, qid), s) in all {
        let ts = if s.last_update_timestamp > 0 { human_time(s.last_update_timestamp) } else { String::new() };
        let line = format!("{:<32}  {:<4}  {:<20}  {:<20}    {}", broker, qid, s.min_offset, s.max_offset, ts);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_and_describe() {
        assert_eq!(perm_to_string(6), "RW-");
        assert_eq!(perm_to_string(4), "R--");
        assert_eq!(perm_to_string(7), "RWX");
        assert!(TopicSpec::new("T").describe().contains("perm=RW-"));
    }

    #[test]
    fn stats_table() {
        let body = br#"{"offsetTable":{{"brokerName":"b","queueId":2,"topic":"T"}:{"lastUpdateTimestamp":5,"maxOffset":3,"minOffset":1}},"topicPutTps":0.0}"#;
        let (_, rows) = message_queue_table(body, "x").unwrap();
        assert_eq!(rows[0].0, ("b".to_string(), "T".to_string(), 2));
        assert_eq!(rows[0].1["maxOffset"], 3);
    }
}
