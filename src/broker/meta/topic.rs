//! Topic configs (`topics.json`), Apache's system topics, topic name validation and the ways
//! topics come into being (admin requests, auto-creation on send, retry topics).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{persist_config_file, MetaError};
use crate::broker::config::BrokerConfig;
use crate::protocol::body::{DataVersion, TopicConfig, TopicConfigSerializeWrapper};
use crate::protocol::perm;

/// `TBW102`: the template of auto-created topics.
pub const AUTO_CREATE_TOPIC_KEY_TOPIC: &str = "TBW102";
/// Delayed messages wait here.
pub const RMQ_SYS_SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Benchmark topic.
pub const RMQ_SYS_BENCHMARK_TOPIC: &str = "BenchmarkTest";
/// Transaction half messages.
pub const RMQ_SYS_TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Message traces.
pub const RMQ_SYS_TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";
/// Transaction op messages.
pub const RMQ_SYS_TRANS_OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Half messages checked too often.
pub const RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// Self test.
pub const RMQ_SYS_SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
/// Offset-moved events.
pub const RMQ_SYS_OFFSET_MOVED_EVENT: &str = "OFFSET_MOVED_EVENT";
/// RocksDB offset checkpoints.
pub const RMQ_SYS_ROCKSDB_OFFSET_TOPIC: &str = "CHECKPOINT_TOPIC";
/// Prefix of system topics.
pub const SYSTEM_TOPIC_PREFIX: &str = "rmq_sys_";
/// Prefix of the broker-member-group sync topic.
pub const SYNC_BROKER_MEMBER_GROUP_PREFIX: &str = "rmq_sys_SYNC_BROKER_MEMBER_";
/// Prefix of retry topics (`%RETRY%<group>`).
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
/// Prefix of dead-letter topics (`%DLQ%<group>`).
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
/// Suffix of the cluster's reply topic.
pub const REPLY_TOPIC_POSTFIX: &str = "REPLY_TOPIC";
/// Prefix of the pop revive topic (followed by the cluster name).
pub const REVIVE_TOPIC_PREFIX: &str = "rmq_sys_REVIVE_LOG_";

const TOPIC_MAX_LENGTH: usize = 127;
const GROUP_MAX_LENGTH: usize = 120;
const RETRY_OR_DLQ_TOPIC_MAX_LENGTH: usize = 255;
const SCHEDULE_TOPIC_QUEUE_NUM: i32 = 18;
const REVIVE_QUEUE_NUM: i32 = 8;

const STATIC_SYSTEM_TOPICS: [&str; 10] = [
    AUTO_CREATE_TOPIC_KEY_TOPIC,
    RMQ_SYS_SCHEDULE_TOPIC,
    RMQ_SYS_BENCHMARK_TOPIC,
    RMQ_SYS_TRANS_HALF_TOPIC,
    RMQ_SYS_TRACE_TOPIC,
    RMQ_SYS_TRANS_OP_HALF_TOPIC,
    RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC,
    RMQ_SYS_SELF_TEST_TOPIC,
    RMQ_SYS_OFFSET_MOVED_EVENT,
    RMQ_SYS_ROCKSDB_OFFSET_TOPIC,
];

/// Topics clients may not send to.
pub const NOT_ALLOWED_SEND_TOPICS: [&str; 6] = [
    RMQ_SYS_SCHEDULE_TOPIC,
    RMQ_SYS_TRANS_HALF_TOPIC,
    RMQ_SYS_TRANS_OP_HALF_TOPIC,
    RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC,
    RMQ_SYS_SELF_TEST_TOPIC,
    RMQ_SYS_OFFSET_MOVED_EVENT,
];

/// `%RETRY%<group>`.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

/// `%DLQ%<group>`.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_GROUP_TOPIC_PREFIX}{group}")
}

fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '%' | '-' | '_' | '|')
}

fn is_blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// Apache's `TopicValidator.validateTopic`; the error carries Apache's remark.
pub fn validate_topic(topic: &str) -> Result<(), MetaError> {
    if is_blank(topic) {
        return Err(MetaError::InvalidName("The specified topic is blank.".into()));
    }
    if !topic.chars().all(valid_char) {
        return Err(MetaError::InvalidName(format!(
            "The specified topic: {topic}, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        )));
    }
    // Java measures UTF-16 units; every valid char is ASCII, so bytes == units here.
    if topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) || topic.starts_with(DLQ_GROUP_TOPIC_PREFIX) {
        if topic.len() > RETRY_OR_DLQ_TOPIC_MAX_LENGTH {
            return Err(MetaError::InvalidName(format!(
                "The specified topic is DLQ or Retry topic: {topic}, and it's longer than topic max length: {RETRY_OR_DLQ_TOPIC_MAX_LENGTH}"
            )));
        }
    } else if topic.len() > TOPIC_MAX_LENGTH {
        return Err(MetaError::InvalidName(format!(
            "The specified topic: {topic}, is longer than topic max length: {TOPIC_MAX_LENGTH}"
        )));
    }
    Ok(())
}

/// Apache's `TopicValidator.validateGroup`.
pub fn validate_group(group: &str) -> Result<(), MetaError> {
    if is_blank(group) {
        return Err(MetaError::InvalidName("The specified group is blank.".into()));
    }
    if !group.chars().all(valid_char) {
        return Err(MetaError::InvalidName(format!(
            "The specified group: {group}, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        )));
    }
    if group.len() > GROUP_MAX_LENGTH {
        return Err(MetaError::InvalidName(format!(
            "The specified group: {group}, is longer than group max length: {GROUP_MAX_LENGTH}"
        )));
    }
    Ok(())
}

/// One known attribute of topics (Apache's `TopicAttributes.ALL`).
struct AttrSpec {
    name: &'static str,
    changeable: bool,
    /// Allowed values; empty = any long.
    values: &'static [&'static str],
}

const TOPIC_ATTRIBUTES: [AttrSpec; 4] = [
    AttrSpec { name: "queue.type", changeable: false, values: &["BatchCQ", "SimpleCQ"] },
    AttrSpec { name: "cleanup.policy", changeable: false, values: &["DELETE", "COMPACTION"] },
    AttrSpec {
        name: "message.type",
        changeable: true,
        values: &["UNSPECIFIED", "NORMAL", "FIFO", "DELAY", "TRANSACTION", "MIXED"],
    },
    AttrSpec { name: "topic.reserve.time", changeable: true, values: &[] },
];

/// Apache's `AttributeParser.parseToMap`: `+k=v,-k2` → `{"+k":"v","-k2":""}`.
pub fn parse_attributes(s: &str) -> Result<BTreeMap<String, String>, MetaError> {
    let mut out = BTreeMap::new();
    if is_blank(s) {
        return Ok(out);
    }
    for kv in s.split(',') {
        if kv.is_empty() {
            return Err(MetaError::BadAttribute(format!("attributes '{s}' contain an empty entry")));
        }
        if let Some(key) = kv.strip_prefix('-') {
            if key.contains('=') {
                return Err(MetaError::BadAttribute(format!("delete attribute format is wrong: {kv}")));
            }
            out.insert(kv.to_string(), String::new());
        } else if kv.starts_with('+') {
            match kv.split_once('=') {
                Some((k, v)) if !k[1..].is_empty() && !v.is_empty() => {
                    out.insert(k.to_string(), v.to_string());
                }
                _ => return Err(MetaError::BadAttribute(format!("add/alter attribute format is wrong: {kv}"))),
            }
        } else {
            return Err(MetaError::BadAttribute(format!("add/alter attribute format is wrong: {kv}")));
        }
    }
    Ok(out)
}

/// Apache's `AttributeUtil.alterCurrentAttributes` for topics: applies `+k=v` / `-k` requests to the
/// current attributes. Returns the new attribute map (keys without signs).
fn alter_topic_attributes(
    create: bool,
    current: &BTreeMap<String, String>,
    requested: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, MetaError> {
    let spec = |k: &str| TOPIC_ATTRIBUTES.iter().find(|a| a.name == k);
    let check_value = |a: &AttrSpec, v: &str| -> Result<(), MetaError> {
        let ok = if a.values.is_empty() { v.parse::<i64>().is_ok() } else { a.values.contains(&v) };
        if ok {
            Ok(())
        } else {
            Err(MetaError::BadAttribute(format!("value is not in set: {:?}, value: {v}", a.values)))
        }
    };
    let mut out = if create { BTreeMap::new() } else { current.clone() };
    for (key, value) in requested {
        if let Some(k) = key.strip_prefix('+') {
            let Some(a) = spec(k) else { return Err(MetaError::BadAttribute(format!("unsupported key: {k}"))) };
            if !create && !a.changeable && current.contains_key(k) {
                return Err(MetaError::BadAttribute(format!("attempt to update an unchangeable attribute. key: {k}")));
            }
            check_value(a, value)?;
            if k == "topic.reserve.time" {
                return Err(MetaError::BadAttribute("Update topic reserveTime not supported".into()));
            }
            out.insert(k.to_string(), value.clone());
        } else if let Some(k) = key.strip_prefix('-') {
            if create {
                return Err(MetaError::BadAttribute(format!(
                    "only add attribute is supported while creating topic. key: {k}"
                )));
            }
            let Some(a) = spec(k) else { return Err(MetaError::BadAttribute(format!("unsupported key: {k}"))) };
            if !a.changeable {
                return Err(MetaError::BadAttribute(format!("attempt to update an unchangeable attribute. key: {k}")));
            }
            if out.remove(k).is_none() {
                return Err(MetaError::BadAttribute(format!("attempt to delete a nonexistent key: {k}")));
            }
        } else if create {
            return Err(MetaError::BadAttribute(format!(
                "only add attribute is supported while creating topic. key: {key}"
            )));
        } else {
            // Attributes already in stored form (e.g. a TopicConfig body echoed back by a tool):
            // unchanged values are fine, anything else is a format error.
            if current.get(key) != Some(value) {
                return Err(MetaError::BadAttribute(format!("wrong format key: {key}")));
            }
        }
    }
    Ok(out)
}

struct TopicState {
    table: BTreeMap<String, TopicConfig>,
    data_version: DataVersion,
}

/// The broker's topic configs, persisted to `topics.json`.
pub struct TopicConfigManager {
    path: PathBuf,
    config: Arc<ArcSwap<BrokerConfig>>,
    state: RwLock<TopicState>,
    /// Serializes changes and file writes (never held across an await).
    write: Mutex<()>,
    system_topics: HashSet<String>,
    changes: watch::Sender<DataVersion>,
}

impl TopicConfigManager {
    /// Creates Apache's system topics, then loads `<config_dir>/topics.json` (or its `.bak`) over them.
    pub fn load(config_dir: &Path, config: Arc<ArcSwap<BrokerConfig>>) -> Result<Self, MetaError> {
        let path = config_dir.join("topics.json");
        let cfg = config.load_full();
        let mut table = BTreeMap::new();
        let mut system_topics: HashSet<String> = STATIC_SYSTEM_TOPICS.iter().map(|s| s.to_string()).collect();
        let mut add = |tc: TopicConfig| {
            system_topics.insert(tc.topic_name.clone());
            table.insert(tc.topic_name.clone(), tc);
        };
        add(TopicConfig::new(RMQ_SYS_SELF_TEST_TOPIC).with_queues(1, 1));
        if cfg.auto_create_topic_enable {
            let n = cfg.default_topic_queue_nums;
            add(TopicConfig::new(AUTO_CREATE_TOPIC_KEY_TOPIC)
                .with_queues(n, n)
                .with_perm(perm::INHERIT | perm::READ | perm::WRITE));
        }
        add(TopicConfig::new(RMQ_SYS_BENCHMARK_TOPIC).with_queues(1024, 1024));
        // clusterTopicEnable and brokerTopicEnable default to true in Apache.
        add(TopicConfig::new(cfg.broker_cluster_name.clone()).with_perm(perm::INHERIT | perm::READ | perm::WRITE));
        add(TopicConfig::new(cfg.broker_name.clone())
            .with_queues(1, 1)
            .with_perm(perm::INHERIT | perm::READ | perm::WRITE));
        add(TopicConfig::new(RMQ_SYS_OFFSET_MOVED_EVENT).with_queues(1, 1));
        add(TopicConfig::new(RMQ_SYS_SCHEDULE_TOPIC).with_queues(SCHEDULE_TOPIC_QUEUE_NUM, SCHEDULE_TOPIC_QUEUE_NUM));
        if cfg.trace_topic_enable {
            add(TopicConfig::new(cfg.msg_trace_topic_name.clone()).with_queues(1, 1));
        }
        add(TopicConfig::new(format!("{}_{REPLY_TOPIC_POSTFIX}", cfg.broker_cluster_name)).with_queues(1, 1));
        add(TopicConfig::new(format!("{REVIVE_TOPIC_PREFIX}{}", cfg.broker_cluster_name))
            .with_queues(REVIVE_QUEUE_NUM, REVIVE_QUEUE_NUM));
        add(TopicConfig::new(format!("{SYNC_BROKER_MEMBER_GROUP_PREFIX}{}", cfg.broker_name))
            .with_queues(1, 1)
            .with_perm(perm::INHERIT));
        add(TopicConfig::new(RMQ_SYS_TRANS_HALF_TOPIC).with_queues(1, 1));
        add(TopicConfig::new(RMQ_SYS_TRANS_OP_HALF_TOPIC).with_queues(1, 1));

        let mut data_version = DataVersion::new();
        if let Some(w) = super::load_config_file::<TopicConfigSerializeWrapper>(&path)? {
            for (name, mut tc) in w.topic_config_table {
                if tc.topic_name.is_empty() {
                    tc.topic_name = name.clone();
                }
                table.insert(name, tc);
            }
            // A file without a version keeps the fresh stamp (Java's `new DataVersion()`).
            if w.data_version != DataVersion::default() {
                data_version = w.data_version;
            }
        }
        let (changes, _) = watch::channel(data_version);
        Ok(TopicConfigManager {
            path,
            config,
            state: RwLock::new(TopicState { table, data_version }),
            write: Mutex::new(()),
            system_topics,
            changes,
        })
    }

    /// The file this manager persists to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A topic's config.
    pub fn select(&self, topic: &str) -> Option<TopicConfig> {
        self.state.read().table.get(topic).cloned()
    }

    /// `f` of a topic's config, without copying it.
    pub fn select_with<R>(&self, topic: &str, f: impl FnOnce(&TopicConfig) -> R) -> Option<R> {
        self.state.read().table.get(topic).map(f)
    }

    /// True if the topic is known.
    pub fn contains(&self, topic: &str) -> bool {
        self.state.read().table.contains_key(topic)
    }

    /// True for an ordered topic.
    pub fn is_order_topic(&self, topic: &str) -> bool {
        self.state.read().table.get(topic).map(|t| t.order).unwrap_or(false)
    }

    /// Every topic config.
    pub fn all(&self) -> BTreeMap<String, TopicConfig> {
        self.state.read().table.clone()
    }

    /// The topic names.
    pub fn topic_names(&self) -> Vec<String> {
        self.state.read().table.keys().cloned().collect()
    }

    /// The table and its version, taken together.
    pub fn snapshot(&self) -> TopicConfigSerializeWrapper {
        let st = self.state.read();
        TopicConfigSerializeWrapper {
            data_version: st.data_version,
            topic_config_table: st.table.clone(),
            ..Default::default()
        }
    }

    /// The table's version.
    pub fn data_version(&self) -> DataVersion {
        self.state.read().data_version
    }

    /// Told the new data version whenever the table changes (to re-register with the NameServers
    /// at once).
    pub fn subscribe_changes(&self) -> watch::Receiver<DataVersion> {
        self.changes.subscribe()
    }

    /// Apache's `TopicValidator.isSystemTopic`, plus this broker's own system topics (its cluster and
    /// broker name, reply, revive and sync topics).
    pub fn is_system_topic(&self, topic: &str) -> bool {
        self.system_topics.contains(topic) || topic.starts_with(SYSTEM_TOPIC_PREFIX)
    }

    /// True for topics clients may not send to.
    pub fn is_not_allowed_send_topic(topic: &str) -> bool {
        NOT_ALLOWED_SEND_TOPICS.contains(&topic)
    }

    /// Runs `f` on the table under the write lock; if it reports a change, bumps the version, persists
    /// and notifies. The change stays in memory if the write fails (the error is returned).
    fn mutate<R>(&self, f: impl FnOnce(&mut BTreeMap<String, TopicConfig>) -> (bool, R)) -> Result<R, MetaError> {
        let _w = self.write.lock();
        let (changed, r, content, version) = {
            let mut st = self.state.write();
            let (changed, r) = f(&mut st.table);
            if !changed {
                return Ok(r);
            }
            st.data_version.next();
            (changed, r, Self::encode_state(&st), st.data_version)
        };
        debug_assert!(changed);
        self.changes.send_replace(version);
        persist_config_file(&self.path, &content)?;
        Ok(r)
    }

    fn encode_state(st: &TopicState) -> String {
        let w = serde_json::json!({"dataVersion": st.data_version, "topicConfigTable": st.table});
        super::fastjson_pretty(&w, None)
    }

    /// Writes `topics.json` (the previous content is kept as `.bak`).
    pub fn persist(&self) -> Result<(), MetaError> {
        let _w = self.write.lock();
        let content = Self::encode_state(&self.state.read());
        persist_config_file(&self.path, &content)
    }

    /// Creates or replaces a topic (UPDATE_AND_CREATE_TOPIC): attributes in the config are
    /// modifications (`+k` → v, `-k` → ""). Returns false when the config is identical to the stored
    /// one (nothing changes). The name must have been validated by the caller.
    pub fn update_topic_config(&self, tc: TopicConfig) -> Result<bool, MetaError> {
        self.update_topic_config_list(vec![tc])
    }

    /// Creates or replaces several topics at once; either all pass attribute checks or nothing changes.
    pub fn update_topic_config_list(&self, list: Vec<TopicConfig>) -> Result<bool, MetaError> {
        let mut prepared = Vec::with_capacity(list.len());
        {
            let st = self.state.read();
            for mut tc in list {
                let current = st.table.get(&tc.topic_name);
                if current == Some(&tc) {
                    continue;
                }
                let empty = BTreeMap::new();
                let cur_attrs = current.map(|c| &c.attributes).unwrap_or(&empty);
                tc.attributes = alter_topic_attributes(current.is_none(), cur_attrs, &tc.attributes)?;
                prepared.push(tc);
            }
        }
        if prepared.is_empty() {
            return Ok(false);
        }
        self.mutate(|table| {
            for tc in prepared {
                info!(topic = %tc.topic_name, "create or update topic config");
                table.insert(tc.topic_name.clone(), tc);
            }
            (true, true)
        })
    }

    /// A slave takes its master's table and version as they are (Apache's `SlaveSynchronize`):
    /// replaces the table, persists and notifies.
    pub fn replace_from_master(&self, w: TopicConfigSerializeWrapper) -> Result<(), MetaError> {
        let _w = self.write.lock();
        let (content, version) = {
            let mut st = self.state.write();
            st.table = w
                .topic_config_table
                .into_iter()
                .map(|(name, mut tc)| {
                    if tc.topic_name.is_empty() {
                        tc.topic_name = name.clone();
                    }
                    (name, tc)
                })
                .collect();
            st.data_version = w.data_version;
            (Self::encode_state(&st), st.data_version)
        };
        self.changes.send_replace(version);
        persist_config_file(&self.path, &content)
    }

    /// Deletes a topic's config. Returns false if it did not exist.
    pub fn delete_topic_config(&self, topic: &str) -> Result<bool, MetaError> {
        self.mutate(|table| {
            let removed = table.remove(topic).is_some();
            if !removed {
                warn!(topic, "delete topic config failed: topic does not exist");
            }
            (removed, removed)
        })
    }

    /// Inserts the topic if absent; returns the stored config.
    pub fn create_topic_if_absent(&self, tc: TopicConfig) -> Result<TopicConfig, MetaError> {
        self.mutate(|table| {
            if let Some(existing) = table.get(&tc.topic_name) {
                return (false, existing.clone());
            }
            table.insert(tc.topic_name.clone(), tc.clone());
            (true, tc)
        })
    }

    /// Auto-creation on first send (Apache's `createTopicInSendMessageMethod`): if `default_topic`
    /// exists and inherits, the new topic gets min(client's queue count, default topic's write queues)
    /// queues and the default topic's perm without INHERIT. `None` when the topic cannot be created.
    pub fn create_topic_in_send_message_method(
        &self,
        topic: &str,
        default_topic: &str,
        remote_addr: &str,
        client_default_topic_queue_nums: i32,
        topic_sys_flag: i32,
    ) -> Result<Option<TopicConfig>, MetaError> {
        let auto_create = self.config.load().auto_create_topic_enable;
        self.mutate(|table| {
            if let Some(tc) = table.get(topic) {
                return (false, Some(tc.clone()));
            }
            let Some(default) = table.get(default_topic) else {
                warn!(
                    default_topic,
                    producer = remote_addr,
                    "create new topic failed: the default topic does not exist"
                );
                return (false, None);
            };
            let mut default_perm = default.perm;
            if default_topic == AUTO_CREATE_TOPIC_KEY_TOPIC && !auto_create {
                default_perm = perm::READ | perm::WRITE;
            }
            if !perm::is_inherited(default_perm) {
                warn!(
                    default_topic,
                    perm = default_perm,
                    producer = remote_addr,
                    "create new topic failed: the default topic has no inherit perm"
                );
                return (false, None);
            }
            let n = client_default_topic_queue_nums.min(default.write_queue_nums).max(0);
            let mut tc = TopicConfig::new(topic).with_queues(n, n).with_perm(default_perm & !perm::INHERIT);
            tc.topic_sys_flag = topic_sys_flag;
            tc.topic_filter_type = default.topic_filter_type.clone();
            info!(topic, default_topic, producer = remote_addr, queues = n, "create new topic by default topic");
            table.insert(topic.to_string(), tc.clone());
            (true, Some(tc))
        })
    }

    /// Creates a retry (or similar) topic if absent (Apache's `createTopicInSendMessageBackMethod`);
    /// an existing topic only gets its `order` flag aligned.
    pub fn create_topic_in_send_back(
        &self,
        topic: &str,
        queue_nums: i32,
        perm: i32,
        is_order: bool,
        topic_sys_flag: i32,
    ) -> Result<TopicConfig, MetaError> {
        self.mutate(|table| {
            if let Some(tc) = table.get_mut(topic) {
                if tc.order != is_order {
                    tc.order = is_order;
                    return (true, tc.clone());
                }
                return (false, tc.clone());
            }
            let mut tc = TopicConfig::new(topic).with_queues(queue_nums, queue_nums).with_perm(perm);
            tc.topic_sys_flag = topic_sys_flag;
            tc.order = is_order;
            info!(topic, "create new topic");
            table.insert(topic.to_string(), tc.clone());
            (true, tc)
        })
    }

    /// The GET_ALL_TOPIC_CONFIG body (`TopicConfigAndMappingSerializeWrapper`, no static topics).
    pub fn encode_with_mapping(&self) -> String {
        let st = self.state.read();
        let w = serde_json::json!({
            "dataVersion": st.data_version,
            "mappingDataVersion": DataVersion { counter: 0, state_version: 0, timestamp: st.data_version.timestamp },
            "topicConfigTable": st.table,
            "topicQueueMappingDetailMap": {},
            "topicQueueMappingInfoMap": {},
        });
        super::fastjson_compact(&w, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(auto: bool) -> Arc<ArcSwap<BrokerConfig>> {
        let c = BrokerConfig {
            broker_name: "broker-a".into(),
            broker_cluster_name: "DefaultCluster".into(),
            auto_create_topic_enable: auto,
            ..Default::default()
        };
        Arc::new(ArcSwap::from_pointee(c))
    }

    #[test]
    fn validation_matches_apache() {
        assert!(validate_topic("Topic_A-1|%x").is_ok());
        assert!(validate_topic("a b").unwrap_err().to_string().contains("contains illegal characters"));
        assert_eq!(validate_topic("  ").unwrap_err().to_string(), "The specified topic is blank.");
        assert!(validate_topic(&"t".repeat(127)).is_ok());
        assert!(validate_topic(&"t".repeat(128)).unwrap_err().to_string().contains("max length: 127"));
        assert!(validate_topic(&format!("%RETRY%{}", "g".repeat(200))).is_ok());
        assert!(validate_topic("topic.with.dot").is_err());
        assert!(validate_group(&"g".repeat(121)).is_err());
        assert!(validate_group("CID_1").is_ok());
    }

    #[test]
    fn system_topics_and_auto_create() {
        let dir = tempfile::tempdir().unwrap();
        let m = TopicConfigManager::load(dir.path(), cfg(true)).unwrap();
        let tbw = m.select("TBW102").unwrap();
        assert_eq!(tbw.perm, 7);
        assert_eq!(tbw.write_queue_nums, 8);
        for t in [
            "SELF_TEST_TOPIC",
            "DefaultCluster",
            "broker-a",
            "OFFSET_MOVED_EVENT",
            "SCHEDULE_TOPIC_XXXX",
            "RMQ_SYS_TRANS_HALF_TOPIC",
            "RMQ_SYS_TRANS_OP_HALF_TOPIC",
            "BenchmarkTest",
            "DefaultCluster_REPLY_TOPIC",
            "rmq_sys_REVIVE_LOG_DefaultCluster",
            "rmq_sys_SYNC_BROKER_MEMBER_broker-a",
        ] {
            assert!(m.contains(t), "{t}");
            assert!(m.is_system_topic(t), "{t}");
        }
        assert_eq!(m.select("SCHEDULE_TOPIC_XXXX").unwrap().read_queue_nums, 18);
        assert!(!m.is_system_topic("MyTopic"));

        let rx = m.subscribe_changes();
        let v0 = m.data_version().counter;
        let tc = m.create_topic_in_send_message_method("NewT", "TBW102", "1.2.3.4:5", 4, 0).unwrap().unwrap();
        assert_eq!((tc.read_queue_nums, tc.write_queue_nums, tc.perm), (4, 4, 6));
        assert_eq!(m.data_version().counter, v0 + 1);
        assert!(rx.has_changed().unwrap());
        let tc = m.create_topic_in_send_message_method("NewT2", "TBW102", "x", 100, 0).unwrap().unwrap();
        assert_eq!(tc.write_queue_nums, 8, "capped by the default topic");
        assert!(m.create_topic_in_send_message_method("NewT3", "NoSuch", "x", 4, 0).unwrap().is_none());
        assert!(m.create_topic_in_send_message_method("NewT4", "NewT", "x", 4, 0).unwrap().is_none(), "no inherit");

        let r = m.create_topic_in_send_back("%RETRY%g", 1, 6, false, 0).unwrap();
        assert_eq!((r.read_queue_nums, r.perm), (1, 6));
        let v = m.data_version().counter;
        m.create_topic_in_send_back("%RETRY%g", 1, 6, false, 0).unwrap();
        assert_eq!(m.data_version().counter, v, "no change, no bump");
    }

    #[test]
    fn auto_create_disabled_has_no_tbw102() {
        let dir = tempfile::tempdir().unwrap();
        let m = TopicConfigManager::load(dir.path(), cfg(false)).unwrap();
        assert!(!m.contains("TBW102"));
        assert!(m.create_topic_in_send_message_method("NewT", "TBW102", "x", 4, 0).unwrap().is_none());
    }

    #[test]
    fn attributes_create_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let m = TopicConfigManager::load(dir.path(), cfg(true)).unwrap();
        let mut tc = TopicConfig::new("A");
        tc.attributes = parse_attributes("+message.type=FIFO").unwrap();
        assert!(m.update_topic_config(tc).unwrap());
        assert_eq!(m.select("A").unwrap().attributes.get("message.type").map(String::as_str), Some("FIFO"));
        let mut bad = TopicConfig::new("B");
        bad.attributes = parse_attributes("+no.such=1").unwrap();
        assert!(m.update_topic_config(bad).is_err());
        assert!(!m.contains("B"), "a rejected config changes nothing");
        let mut del = TopicConfig::new("A");
        del.attributes = parse_attributes("-message.type").unwrap();
        m.update_topic_config(del).unwrap();
        assert!(m.select("A").unwrap().attributes.is_empty());
        assert!(parse_attributes("message.type=FIFO").is_err());
        // Identical config: no change.
        let v = m.data_version().counter;
        assert!(!m.update_topic_config(m.select("A").unwrap()).unwrap());
        assert_eq!(m.data_version().counter, v);
    }

    #[test]
    fn persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let m = TopicConfigManager::load(dir.path(), cfg(true)).unwrap();
        m.update_topic_config(TopicConfig::new("P").with_queues(3, 5)).unwrap();
        let v = m.data_version();
        drop(m);
        let text = std::fs::read_to_string(dir.path().join("topics.json")).unwrap();
        assert!(text.contains("\t\"topicConfigTable\":{"), "{text}");
        let m = TopicConfigManager::load(dir.path(), cfg(true)).unwrap();
        assert_eq!(m.select("P").unwrap().write_queue_nums, 5);
        assert_eq!(m.data_version(), v);
        assert!(m.delete_topic_config("P").unwrap());
        assert!(!m.delete_topic_config("P").unwrap());
    }

    #[test]
    fn lenient_topic_config() {
        let tc: TopicConfig =
            crate::json::from_slice_lenient(br#"{"topicName":"X","perm":6,"attributes":null,"extra":1}"#).unwrap();
        assert_eq!(tc.read_queue_nums, 16);
        assert_eq!(tc.topic_filter_type, "SINGLE_TAG");
        let s = serde_json::to_string(&TopicConfig::new("T")).unwrap();
        assert_eq!(
            s,
            r#"{"attributes":{},"order":false,"perm":6,"readQueueNums":16,"topicFilterType":"SINGLE_TAG","topicName":"T","topicSysFlag":0,"writeQueueNums":16}"#
        );
    }
}
