//! Subscription groups (`subscriptionGroup.json`): per-group consume settings, auto-created on first
//! use when `autoCreateSubscriptionGroup`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::topic::validate_group;
use super::{persist_config_file, MetaError};
use crate::broker::config::BrokerConfig;
use crate::json::null_default;
use crate::protocol::body::DataVersion;

/// `TOOLS_CONSUMER`.
pub const TOOLS_CONSUMER_GROUP: &str = "TOOLS_CONSUMER";
/// `FILTERSRV_CONSUMER`.
pub const FILTERSRV_CONSUMER_GROUP: &str = "FILTERSRV_CONSUMER";
/// `SELF_TEST_C_GROUP`.
pub const SELF_TEST_CONSUMER_GROUP: &str = "SELF_TEST_C_GROUP";
/// `CID_ONS-HTTP-PROXY`.
pub const ONS_HTTP_PROXY_GROUP: &str = "CID_ONS-HTTP-PROXY";
/// `CID_ONSAPI_PULL`.
pub const CID_ONSAPI_PULL_GROUP: &str = "CID_ONSAPI_PULL";
/// `CID_ONSAPI_PERMISSION`.
pub const CID_ONSAPI_PERMISSION_GROUP: &str = "CID_ONSAPI_PERMISSION";
/// `CID_ONSAPI_OWNER`.
pub const CID_ONSAPI_OWNER_GROUP: &str = "CID_ONSAPI_OWNER";
/// `CID_RMQ_SYS_TRANS`.
pub const CID_SYS_RMQ_TRANS: &str = "CID_RMQ_SYS_TRANS";
/// Prefix of system consumer groups (created on demand even without auto-creation).
pub const CID_RMQ_SYS_PREFIX: &str = "CID_RMQ_SYS_";

fn yes() -> bool {
    true
}
fn one_i32() -> i32 {
    1
}
fn one_i64() -> i64 {
    1
}
fn sixteen() -> i32 {
    16
}
fn fifteen() -> i32 {
    15
}
fn default_retry_policy() -> serde_json::Value {
    serde_json::json!({"type": "CUSTOMIZED"})
}

/// One group's settings, as fastjson writes Apache's `SubscriptionGroupConfig` (alphabetical).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionGroupConfig {
    /// Group attributes (stored without signs).
    #[serde(default, deserialize_with = "null_default")]
    pub attributes: BTreeMap<String, String>,
    /// Broker id to read from (0 = master).
    #[serde(default)]
    pub broker_id: i64,
    /// Broadcast consumption allowed.
    #[serde(default = "yes")]
    pub consume_broadcast_enable: bool,
    /// Consumption allowed.
    #[serde(default = "yes")]
    pub consume_enable: bool,
    /// A new group starts from the minimum offset.
    #[serde(default = "yes")]
    pub consume_from_min_enable: bool,
    /// Orderly consumption.
    #[serde(default)]
    pub consume_message_orderly: bool,
    /// Consume timeout, minutes.
    #[serde(default = "fifteen")]
    pub consume_timeout_minute: i32,
    /// Group name.
    #[serde(default, deserialize_with = "null_default")]
    pub group_name: String,
    /// Retry policy object (`{"type":"CUSTOMIZED"}` by default), kept as sent.
    #[serde(default = "default_retry_policy")]
    pub group_retry_policy: serde_json::Value,
    /// Group sys flag.
    #[serde(default)]
    pub group_sys_flag: i32,
    /// Tell members when membership changes.
    #[serde(default = "yes")]
    pub notify_consumer_ids_changed_enable: bool,
    /// Retries before the dead-letter queue.
    #[serde(default = "sixteen")]
    pub retry_max_times: i32,
    /// Queues of the retry topic.
    #[serde(default = "one_i32")]
    pub retry_queue_nums: i32,
    /// Subscriptions declared for the group (omitted when null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_data_set: Option<serde_json::Value>,
    /// Broker to read from when consumption is slow.
    #[serde(default = "one_i64")]
    pub which_broker_when_consume_slowly: i64,
}

impl SubscriptionGroupConfig {
    /// Apache's defaults for a group.
    pub fn new(group: impl Into<String>) -> Self {
        SubscriptionGroupConfig {
            attributes: BTreeMap::new(),
            broker_id: 0,
            consume_broadcast_enable: true,
            consume_enable: true,
            consume_from_min_enable: true,
            consume_message_orderly: false,
            consume_timeout_minute: 15,
            group_name: group.into(),
            group_retry_policy: default_retry_policy(),
            group_sys_flag: 0,
            notify_consumer_ids_changed_enable: true,
            retry_max_times: 16,
            retry_queue_nums: 1,
            subscription_data_set: None,
            which_broker_when_consume_slowly: 1,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupFile {
    #[serde(default)]
    data_version: Option<DataVersion>,
    #[serde(default, deserialize_with = "null_default")]
    subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
    #[serde(default)]
    forbidden_table: Option<serde_json::Value>,
}

struct GroupState {
    table: BTreeMap<String, SubscriptionGroupConfig>,
    forbidden: serde_json::Value,
    data_version: DataVersion,
}

/// The broker's subscription groups, persisted to `subscriptionGroup.json`.
pub struct SubscriptionGroupManager {
    path: PathBuf,
    config: Arc<ArcSwap<BrokerConfig>>,
    state: RwLock<GroupState>,
    write: Mutex<()>,
}

/// Apache's `MixAll.isSysConsumerGroup`-like test used for on-demand creation.
pub fn is_sys_consumer_group(group: &str) -> bool {
    group.starts_with(CID_RMQ_SYS_PREFIX)
}

impl SubscriptionGroupManager {
    /// Creates Apache's system groups, then loads `<config_dir>/subscriptionGroup.json` over them.
    pub fn load(config_dir: &Path, config: Arc<ArcSwap<BrokerConfig>>) -> Result<Self, MetaError> {
        let path = config_dir.join("subscriptionGroup.json");
        let mut table = BTreeMap::new();
        for g in [TOOLS_CONSUMER_GROUP, FILTERSRV_CONSUMER_GROUP, SELF_TEST_CONSUMER_GROUP] {
            table.insert(g.to_string(), SubscriptionGroupConfig::new(g));
        }
        for g in [
            ONS_HTTP_PROXY_GROUP,
            CID_ONSAPI_PULL_GROUP,
            CID_ONSAPI_PERMISSION_GROUP,
            CID_ONSAPI_OWNER_GROUP,
            CID_SYS_RMQ_TRANS,
        ] {
            let mut c = SubscriptionGroupConfig::new(g);
            c.consume_broadcast_enable = true;
            table.insert(g.to_string(), c);
        }
        let mut data_version = DataVersion::new();
        let mut forbidden = serde_json::json!({});
        if let Some(f) = super::load_config_file::<GroupFile>(&path)? {
            for (name, mut c) in f.subscription_group_table {
                if c.group_name.is_empty() {
                    c.group_name = name.clone();
                }
                table.insert(name, c);
            }
            if let Some(v) = f.data_version {
                data_version = v;
            }
            if let Some(fb) = f.forbidden_table.filter(|v| v.is_object()) {
                forbidden = fb;
            }
        }
        Ok(SubscriptionGroupManager {
            path,
            config,
            state: RwLock::new(GroupState { table, forbidden, data_version }),
            write: Mutex::new(()),
        })
    }

    /// The group's config without creating it.
    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.state.read().table.get(group).cloned()
    }

    /// True if the group exists.
    pub fn contains(&self, group: &str) -> bool {
        self.state.read().table.contains_key(group)
    }

    /// The group's config, created with defaults when `autoCreateSubscriptionGroup` (or for a
    /// `CID_RMQ_SYS_` group) and the name is valid (Apache's `findSubscriptionGroupConfig`).
    pub fn find(&self, group: &str) -> Result<Option<SubscriptionGroupConfig>, MetaError> {
        if let Some(c) = self.get(group) {
            return Ok(Some(c));
        }
        let auto = self.config.load().auto_create_subscription_group;
        if !(auto || is_sys_consumer_group(group)) || validate_group(group).is_err() {
            return Ok(None);
        }
        let c = self.mutate(|table| {
            if let Some(c) = table.get(group) {
                return (false, c.clone());
            }
            let c = SubscriptionGroupConfig::new(group);
            info!(group, "auto create a subscription group");
            table.insert(group.to_string(), c.clone());
            (true, c)
        })?;
        Ok(Some(c))
    }

    /// Creates or replaces a group (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP); the name must have been
    /// validated. Attributes `+k=v` add, `-k` delete; plain keys replace.
    pub fn update(&self, mut config: SubscriptionGroupConfig) -> Result<(), MetaError> {
        self.mutate(|table| {
            let current = table.get(&config.group_name).map(|c| c.attributes.clone()).unwrap_or_default();
            let mut attrs = current;
            for (k, v) in std::mem::take(&mut config.attributes) {
                if let Some(k) = k.strip_prefix('+') {
                    attrs.insert(k.to_string(), v);
                } else if let Some(k) = k.strip_prefix('-') {
                    attrs.remove(k);
                } else {
                    attrs.insert(k, v);
                }
            }
            config.attributes = attrs;
            info!(group = %config.group_name, "create or update subscription group");
            table.insert(config.group_name.clone(), config);
            (true, ())
        })
    }

    /// Deletes a group's config (and its forbidden entries). Returns false if it did not exist.
    pub fn delete(&self, group: &str) -> Result<bool, MetaError> {
        let _w = self.write.lock();
        let content = {
            let mut st = self.state.write();
            let removed = st.table.remove(group).is_some();
            if let Some(m) = st.forbidden.as_object_mut() {
                m.remove(group);
            }
            if !removed {
                return Ok(false);
            }
            st.data_version.next();
            Self::encode_state(&st, true)
        };
        persist_config_file(&self.path, &content)?;
        Ok(true)
    }

    /// A slave takes its master's groups (Apache's `putAll` plus the master's data version) and
    /// persists them.
    pub fn merge_from_master(
        &self,
        table: BTreeMap<String, SubscriptionGroupConfig>,
        version: Option<DataVersion>,
    ) -> Result<(), MetaError> {
        let _w = self.write.lock();
        let content = {
            let mut st = self.state.write();
            for (name, mut c) in table {
                if c.group_name.is_empty() {
                    c.group_name = name.clone();
                }
                st.table.insert(name, c);
            }
            match version {
                Some(v) => st.data_version = v,
                None => st.data_version.next(),
            }
            Self::encode_state(&st, true)
        };
        persist_config_file(&self.path, &content)
    }

    /// Every group config.
    pub fn all(&self) -> BTreeMap<String, SubscriptionGroupConfig> {
        self.state.read().table.clone()
    }

    /// The table's version.
    pub fn data_version(&self) -> DataVersion {
        self.state.read().data_version
    }

    fn mutate<R>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, SubscriptionGroupConfig>) -> (bool, R),
    ) -> Result<R, MetaError> {
        let _w = self.write.lock();
        let (r, content) = {
            let mut st = self.state.write();
            let (changed, r) = f(&mut st.table);
            if !changed {
                return Ok(r);
            }
            st.data_version.next();
            (r, Self::encode_state(&st, true))
        };
        persist_config_file(&self.path, &content)?;
        Ok(r)
    }

    fn encode_state(st: &GroupState, pretty: bool) -> String {
        let v = serde_json::json!({
            "dataVersion": st.data_version,
            "forbiddenTable": st.forbidden,
            "subscriptionGroupTable": st.table,
        });
        if pretty {
            super::fastjson_pretty(&v, None)
        } else {
            super::fastjson_compact(&v, None)
        }
    }

    /// The GET_ALL_SUBSCRIPTIONGROUP_CONFIG body (`SubscriptionGroupWrapper`).
    pub fn encode(&self, pretty: bool) -> String {
        Self::encode_state(&self.state.read(), pretty)
    }

    /// Writes `subscriptionGroup.json` (the previous content is kept as `.bak`).
    pub fn persist(&self) -> Result<(), MetaError> {
        let _w = self.write.lock();
        let content = Self::encode_state(&self.state.read(), true);
        persist_config_file(&self.path, &content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(auto: bool) -> Arc<ArcSwap<BrokerConfig>> {
        let c = BrokerConfig { auto_create_subscription_group: auto, ..Default::default() };
        Arc::new(ArcSwap::from_pointee(c))
    }

    #[test]
    fn defaults_and_shape() {
        let s = serde_json::to_string(&SubscriptionGroupConfig::new("g")).unwrap();
        assert_eq!(
            s,
            r#"{"attributes":{},"brokerId":0,"consumeBroadcastEnable":true,"consumeEnable":true,"consumeFromMinEnable":true,"consumeMessageOrderly":false,"consumeTimeoutMinute":15,"groupName":"g","groupRetryPolicy":{"type":"CUSTOMIZED"},"groupSysFlag":0,"notifyConsumerIdsChangedEnable":true,"retryMaxTimes":16,"retryQueueNums":1,"whichBrokerWhenConsumeSlowly":1}"#
        );
        let c: SubscriptionGroupConfig = serde_json::from_str(r#"{"groupName":"x","retryQueueNums":2}"#).unwrap();
        assert!(c.consume_enable && c.notify_consumer_ids_changed_enable);
        assert_eq!((c.retry_queue_nums, c.retry_max_times), (2, 16));
    }

    #[test]
    fn auto_create_find_update_delete_reload() {
        let dir = tempfile::tempdir().unwrap();
        let m = SubscriptionGroupManager::load(dir.path(), cfg(true)).unwrap();
        assert!(m.contains(TOOLS_CONSUMER_GROUP) && m.contains(CID_SYS_RMQ_TRANS));
        assert!(m.find("bad name").unwrap().is_none());
        let v = m.data_version().counter;
        assert_eq!(m.find("cg").unwrap().unwrap().group_name, "cg");
        assert_eq!(m.data_version().counter, v + 1);
        let mut c = SubscriptionGroupConfig::new("cg");
        c.retry_max_times = 3;
        c.attributes.insert("+k".into(), "v".into());
        m.update(c).unwrap();
        drop(m);
        let m = SubscriptionGroupManager::load(dir.path(), cfg(false)).unwrap();
        let c = m.get("cg").unwrap();
        assert_eq!(c.retry_max_times, 3);
        assert_eq!(c.attributes.get("k").map(String::as_str), Some("v"));
        assert!(m.find("other").unwrap().is_none(), "no auto-creation");
        assert!(m.find("CID_RMQ_SYS_X").unwrap().is_some(), "system groups are created on demand");
        assert!(m.delete("cg").unwrap());
        assert!(!m.delete("cg").unwrap());
    }
}
