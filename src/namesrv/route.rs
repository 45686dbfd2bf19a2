//! The route tables (`RouteInfoManager`; spec: namesrv.md §2-§7). All tables sit behind one RW lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tracing::{debug, info, warn};

use super::config::NamesrvConfig;
use crate::protocol::body::{
    BrokerData, BrokerMemberGroup, ClusterInfo, DataVersion, QueueData, TopicConfig, TopicConfigSerializeWrapper,
    TopicList, TopicRouteData,
};
use crate::protocol::perm;
use crate::remoting::ConnectionHandle;

/// The NameServer config, shared by its parts and updatable at run time (UPDATE_NAMESRV_CONFIG).
pub type SharedConfig = Arc<RwLock<NamesrvConfig>>;

/// The broker id of a master (`MixAll.MASTER_ID`).
pub const MASTER_ID: i64 = 0;
/// A broker not refreshed for this long is dropped, unless it registered another timeout (ms).
pub const DEFAULT_BROKER_CHANNEL_EXPIRED_TIME: i64 = 120_000;
/// Topics starting with this are not subject to acting-master rewriting.
pub const SYNC_BROKER_MEMBER_GROUP_PREFIX: &str = "rmq_sys_SYNC_BROKER_MEMBER_";

/// Everything a REGISTER_BROKER request says about a broker.
#[derive(Debug, Clone, Default)]
pub struct BrokerRegistration {
    /// `clusterName`.
    pub cluster_name: String,
    /// `brokerAddr` (`ip:port`).
    pub broker_addr: String,
    /// `brokerName` (the group).
    pub broker_name: String,
    /// `brokerId` (0 = master).
    pub broker_id: i64,
    /// `haServerAddr`.
    pub ha_server_addr: String,
    /// `__ZONE_NAME` ext field.
    pub zone_name: Option<String>,
    /// `heartbeatTimeoutMillis` (None ⇒ 120 s).
    pub heartbeat_timeout_millis: Option<i64>,
    /// `enableActingMaster` (None ⇒ a broker older than acting-master support).
    pub enable_acting_master: Option<bool>,
    /// The broker's topics and their version.
    pub topic_config_wrapper: TopicConfigSerializeWrapper,
    /// Filter servers.
    pub filter_server_list: Vec<String>,
    /// The connection the registration came on (its close unregisters the broker).
    pub connection: Option<ConnectionHandle>,
}

/// What a registering slave learns about its master.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterBrokerResult {
    /// The master's address, if the group has a live master.
    pub master_addr: Option<String>,
    /// The master's HA address.
    pub ha_server_addr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct BrokerAddrInfo {
    cluster: String,
    addr: String,
}

struct BrokerLiveInfo {
    last_update: Instant,
    timeout: Duration,
    data_version: DataVersion,
    connection: Option<ConnectionHandle>,
    ha_server_addr: String,
}

#[derive(Default)]
struct Tables {
    topic_queue: BTreeMap<String, BTreeMap<String, QueueData>>,
    broker_addr: BTreeMap<String, BrokerData>,
    cluster_addr: BTreeMap<String, BTreeSet<String>>,
    live: HashMap<BrokerAddrInfo, BrokerLiveInfo>,
    filter_server: HashMap<BrokerAddrInfo, Vec<String>>,
    topic_queue_mapping: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

/// The NameServer's route tables and their algorithms.
pub struct RouteInfoManager {
    config: SharedConfig,
    tables: RwLock<Tables>,
}

impl RouteInfoManager {
    /// Empty tables.
    pub fn new(config: SharedConfig) -> Self {
        RouteInfoManager { config, tables: RwLock::new(Tables::default()) }
    }

    /// Registers (or refreshes) a broker. `None` means the registration is refused (a single-topic
    /// registration from a broker not yet registered); the caller answers "register broker failed".
    pub fn register_broker(&self, reg: BrokerRegistration) -> Option<RegisterBrokerResult> {
        let delete_topics = self.config.read().delete_topic_with_broker_registration;
        let mut t = self.tables.write();
        let t = &mut *t;
        let mut result = RegisterBrokerResult::default();
        let key = BrokerAddrInfo { cluster: reg.cluster_name.clone(), addr: reg.broker_addr.clone() };

        t.cluster_addr.entry(reg.cluster_name.clone()).or_default().insert(reg.broker_name.clone());

        let mut register_first = false;
        let bd = t.broker_addr.entry(reg.broker_name.clone()).or_insert_with(|| {
            register_first = true;
            BrokerData {
                broker_addrs: BTreeMap::new(),
                broker_name: reg.broker_name.clone(),
                cluster: reg.cluster_name.clone(),
                enable_acting_master: false,
                zone_name: None,
            }
        });
        let old_version_broker = reg.enable_acting_master.is_none();
        bd.enable_acting_master = reg.enable_acting_master.unwrap_or(false);
        bd.zone_name = reg.zone_name.clone();

        // The same address under another id: a role switch; forget the old id.
        bd.broker_addrs.retain(|id, addr| !(*addr == reg.broker_addr && *id != reg.broker_id));

        if let Some(old_addr) = bd.broker_addrs.get(&reg.broker_id).filter(|a| **a != reg.broker_addr) {
            let old_key = BrokerAddrInfo { cluster: reg.cluster_name.clone(), addr: old_addr.clone() };
            if let Some(old) = t.live.get(&old_key) {
                let new_state = reg.topic_config_wrapper.data_version.state_version;
                if old.data_version.state_version > new_state {
                    warn!(
                        cluster = %reg.cluster_name, broker = %reg.broker_name, id = reg.broker_id,
                        addr = %reg.broker_addr, old_addr = %old_addr,
                        old_state_version = old.data_version.state_version, new_state_version = new_state,
                        "registration ignored: the registered broker with this id has a newer state version"
                    );
                    t.live.remove(&key);
                    return Some(result);
                }
            }
        }

        if !bd.broker_addrs.contains_key(&reg.broker_id) && reg.topic_config_wrapper.topic_config_table.len() == 1 {
            warn!(
                cluster = %reg.cluster_name, broker = %reg.broker_name, id = reg.broker_id, addr = %reg.broker_addr,
                "single-topic registration refused: the broker has not registered in full yet"
            );
            return None;
        }

        let old_addr = bd.broker_addrs.insert(reg.broker_id, reg.broker_addr.clone());
        register_first |= old_addr.as_deref().is_none_or(str::is_empty);

        let is_master = reg.broker_id == MASTER_ID;
        let min_id = bd.broker_addrs.keys().next().copied();
        let is_prime_slave = !old_version_broker && !is_master && min_id == Some(reg.broker_id);
        let acting = bd.enable_acting_master;
        let wrapper = &reg.topic_config_wrapper;

        if is_master || is_prime_slave {
            let prev_version = t.live.get(&key).map(|l| l.data_version);
            let version_changed = prev_version != Some(wrapper.data_version);
            let mapping_empty = wrapper.topic_queue_mapping_info_map.as_ref().is_none_or(BTreeMap::is_empty);
            if delete_topics && mapping_empty {
                let gone: Vec<String> = t
                    .topic_queue
                    .iter()
                    .filter(|(topic, qds)| {
                        qds.contains_key(&reg.broker_name) && !wrapper.topic_config_table.contains_key(*topic)
                    })
                    .map(|(topic, _)| topic.clone())
                    .collect();
                for topic in gone {
                    if let Some(qds) = t.topic_queue.get_mut(&topic) {
                        qds.remove(&reg.broker_name);
                        if qds.is_empty() {
                            t.topic_queue.remove(&topic);
                        }
                    }
                    info!(topic = %topic, broker = %reg.broker_name, "topic removed: no longer reported by its broker");
                }
            }
            for tc in wrapper.topic_config_table.values() {
                let missing = t.topic_queue.get(&tc.topic_name).is_none_or(|qds| !qds.contains_key(&reg.broker_name));
                if register_first || version_changed || missing {
                    let mut tc = tc.clone();
                    if is_prime_slave && acting {
                        tc.perm &= !perm::WRITE;
                    }
                    upsert_queue_data(&mut t.topic_queue, &reg.broker_name, &tc);
                }
            }
            if version_changed || register_first {
                if let Some(m) = &wrapper.topic_queue_mapping_info_map {
                    for (topic, info) in m {
                        t.topic_queue_mapping
                            .entry(topic.clone())
                            .or_default()
                            .insert(reg.broker_name.clone(), info.clone());
                    }
                }
            }
        }

        let timeout =
            reg.heartbeat_timeout_millis.filter(|ms| *ms > 0).unwrap_or(DEFAULT_BROKER_CHANNEL_EXPIRED_TIME) as u64;
        let prev = t.live.insert(
            key.clone(),
            BrokerLiveInfo {
                last_update: Instant::now(),
                timeout: Duration::from_millis(timeout),
                data_version: wrapper.data_version,
                connection: reg.connection.clone(),
                ha_server_addr: reg.ha_server_addr.clone(),
            },
        );
        if prev.is_none() {
            tracing::debug!(
                cluster = %reg.cluster_name, broker = %reg.broker_name, id = reg.broker_id, addr = %reg.broker_addr,
                ha = %reg.ha_server_addr, topics = wrapper.topic_config_table.len(), "broker registered"
            );
        } else {
            debug!(cluster = %reg.cluster_name, broker = %reg.broker_name, id = reg.broker_id, addr = %reg.broker_addr, "broker re-registered");
        }

        if reg.filter_server_list.is_empty() {
            t.filter_server.remove(&key);
        } else {
            t.filter_server.insert(key.clone(), reg.filter_server_list.clone());
        }

        if reg.broker_id != MASTER_ID {
            let master = t.broker_addr.get(&reg.broker_name).and_then(|bd| bd.broker_addrs.get(&MASTER_ID)).cloned();
            if let Some(master_addr) = master {
                let mk = BrokerAddrInfo { cluster: reg.cluster_name.clone(), addr: master_addr.clone() };
                if let Some(ml) = t.live.get(&mk) {
                    result.ha_server_addr = Some(ml.ha_server_addr.clone());
                    result.master_addr = Some(master_addr);
                }
            }
        }
        Some(result)
    }

    /// Removes one broker (UNREGISTER_BROKER; spec §4).
    pub fn unregister_broker(&self, cluster_name: &str, broker_addr: &str, broker_name: &str, broker_id: i64) {
        let mut t = self.tables.write();
        unregister_locked(&mut t, cluster_name, broker_addr, broker_name, broker_id, "unregister request");
    }

    /// A connection closed: unregister every broker whose live entry came over it.
    pub fn on_connection_closed(&self, connection_id: u64) {
        let mut t = self.tables.write();
        let keys: Vec<BrokerAddrInfo> = t
            .live
            .iter()
            .filter(|(_, l)| l.connection.as_ref().is_some_and(|c| c.id() == connection_id))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            destroy_locked(&mut t, &k, "connection closed");
        }
    }

    /// Drops the brokers whose heartbeat timed out, closing their connections. Returns how many.
    pub fn scan_not_active_brokers(&self) -> usize {
        let now = Instant::now();
        let mut t = self.tables.write();
        let expired: Vec<BrokerAddrInfo> = t
            .live
            .iter()
            .filter(|(_, l)| now.saturating_duration_since(l.last_update) > l.timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            if let Some(l) = t.live.get(k) {
                warn!(cluster = %k.cluster, addr = %k.addr, timeout_ms = l.timeout.as_millis() as u64, "broker expired: no heartbeat within its timeout");
                if let Some(c) = &l.connection {
                    c.close();
                }
            }
            destroy_locked(&mut t, k, "expired");
        }
        expired.len()
    }

    /// Refreshes a broker's liveness (BROKER_HEARTBEAT, QUERY_DATA_VERSION).
    pub fn update_broker_info_update_timestamp(&self, cluster_name: &str, broker_addr: &str) {
        let key = BrokerAddrInfo { cluster: cluster_name.to_string(), addr: broker_addr.to_string() };
        if let Some(l) = self.tables.write().live.get_mut(&key) {
            l.last_update = Instant::now();
        }
    }

    /// The DataVersion stored for a live broker.
    pub fn query_broker_topic_config(&self, cluster_name: &str, broker_addr: &str) -> Option<DataVersion> {
        let key = BrokerAddrInfo { cluster: cluster_name.to_string(), addr: broker_addr.to_string() };
        self.tables.read().live.get(&key).map(|l| l.data_version)
    }

    /// True if the broker is not live here or its stored DataVersion differs from `version`.
    pub fn is_broker_topic_config_changed(&self, cluster_name: &str, broker_addr: &str, version: &DataVersion) -> bool {
        self.query_broker_topic_config(cluster_name, broker_addr) != Some(*version)
    }

    /// True if a live entry exists for the broker address.
    pub fn is_broker_live(&self, cluster_name: &str, broker_addr: &str) -> bool {
        let key = BrokerAddrInfo { cluster: cluster_name.to_string(), addr: broker_addr.to_string() };
        self.tables.read().live.contains_key(&key)
    }

    /// The route of a topic, or `None` if no live queue data and broker data exist for it.
    pub fn pickup_topic_route_data(&self, topic: &str) -> Option<TopicRouteData> {
        let support_acting_master = self.config.read().support_acting_master;
        let t = self.tables.read();
        let qds = t.topic_queue.get(topic).filter(|q| !q.is_empty())?;
        let mut rd = TopicRouteData { queue_datas: qds.values().cloned().collect(), ..Default::default() };
        for name in qds.keys() {
            let Some(bd) = t.broker_addr.get(name) else { continue };
            let bd = bd.clone();
            for addr in bd.broker_addrs.values() {
                let k = BrokerAddrInfo { cluster: bd.cluster.clone(), addr: addr.clone() };
                if let Some(fs) = t.filter_server.get(&k) {
                    rd.filter_server_table.insert(addr.clone(), fs.clone());
                }
            }
            rd.broker_datas.push(bd);
        }
        if rd.broker_datas.is_empty() {
            return None;
        }
        if let Some(m) = t.topic_queue_mapping.get(topic).filter(|m| !m.is_empty()) {
            rd.topic_queue_mapping_by_broker = Some(m.clone());
        }
        if support_acting_master && !topic.starts_with(SYNC_BROKER_MEMBER_GROUP_PREFIX) {
            for bd in &mut rd.broker_datas {
                if bd.broker_addrs.is_empty() || bd.broker_addrs.contains_key(&MASTER_ID) || !bd.enable_acting_master {
                    continue;
                }
                let writable = rd
                    .queue_datas
                    .iter()
                    .find(|q| q.broker_name == bd.broker_name)
                    .is_some_and(|q| q.perm & perm::WRITE != 0);
                if writable {
                    continue;
                }
                if let Some((&min_id, _)) = bd.broker_addrs.iter().next() {
                    if let Some(addr) = bd.broker_addrs.remove(&min_id) {
                        bd.broker_addrs.insert(MASTER_ID, addr);
                    }
                }
            }
        }
        Some(rd)
    }

    /// GET_BROKER_CLUSTER_INFO.
    pub fn cluster_info(&self) -> ClusterInfo {
        let t = self.tables.read();
        ClusterInfo { broker_addr_table: t.broker_addr.clone(), cluster_addr_table: t.cluster_addr.clone() }
    }

    /// GET_ALL_TOPIC_LIST_FROM_NAMESERVER.
    pub fn all_topic_list(&self) -> TopicList {
        TopicList { broker_addr: None, topic_list: self.tables.read().topic_queue.keys().cloned().collect() }
    }

    /// GET_TOPICS_BY_CLUSTER: topics with queue data on any broker group of the cluster.
    pub fn topics_by_cluster(&self, cluster: &str) -> TopicList {
        let t = self.tables.read();
        let mut list = TopicList::default();
        if let Some(names) = t.cluster_addr.get(cluster) {
            for (topic, qds) in &t.topic_queue {
                if names.iter().any(|n| qds.contains_key(n)) {
                    list.topic_list.insert(topic.clone());
                }
            }
        }
        list
    }

    /// GET_SYSTEM_TOPIC_LIST_FROM_NS: cluster names and broker names, plus some broker address.
    pub fn system_topic_list(&self) -> TopicList {
        let t = self.tables.read();
        let mut list = TopicList::default();
        for (cluster, names) in &t.cluster_addr {
            list.topic_list.insert(cluster.clone());
            list.topic_list.extend(names.iter().cloned());
        }
        list.broker_addr = t.broker_addr.values().find_map(|bd| bd.broker_addrs.values().next().cloned());
        list
    }

    /// WIPE_WRITE_PERM_OF_BROKER: clears the write bit of every queue data of the group. Returns the count.
    pub fn wipe_write_perm_of_broker(&self, broker_name: &str) -> i32 {
        self.operate_write_perm(broker_name, |p| p & !perm::WRITE)
    }

    /// ADD_WRITE_PERM_OF_BROKER: sets read|write on every queue data of the group. Returns the count.
    pub fn add_write_perm_of_broker(&self, broker_name: &str) -> i32 {
        self.operate_write_perm(broker_name, |_| perm::READ | perm::WRITE)
    }

    fn operate_write_perm(&self, broker_name: &str, f: impl Fn(i32) -> i32) -> i32 {
        let mut t = self.tables.write();
        let mut n = 0;
        for qds in t.topic_queue.values_mut() {
            if let Some(qd) = qds.get_mut(broker_name) {
                qd.perm = f(qd.perm);
                n += 1;
            }
        }
        info!(broker = %broker_name, topics = n, "write permission changed");
        n
    }

    /// DELETE_TOPIC_IN_NAMESRV: the whole topic, or only the queue data of one cluster's groups.
    pub fn delete_topic(&self, topic: &str, cluster_name: Option<&str>) {
        let mut t = self.tables.write();
        let t = &mut *t;
        match cluster_name.filter(|c| !c.is_empty()) {
            None => {
                t.topic_queue.remove(topic);
            }
            Some(cluster) => {
                let Some(names) = t.cluster_addr.get(cluster) else { return };
                if let Some(qds) = t.topic_queue.get_mut(topic) {
                    for n in names {
                        qds.remove(n);
                    }
                    if qds.is_empty() {
                        t.topic_queue.remove(topic);
                    }
                }
            }
        }
        info!(topic, cluster = cluster_name.unwrap_or(""), "topic deleted");
    }

    /// REGISTER_TOPIC_IN_NAMESRV: sets queue data of known groups for the topic.
    pub fn register_topic(&self, topic: &str, queue_datas: &[QueueData]) {
        if queue_datas.is_empty() {
            return;
        }
        let mut t = self.tables.write();
        let t = &mut *t;
        for qd in queue_datas {
            if !t.broker_addr.contains_key(&qd.broker_name) {
                warn!(topic, broker = %qd.broker_name, "topic registration names an unknown broker; skipped");
                continue;
            }
            t.topic_queue.entry(topic.to_string()).or_default().insert(qd.broker_name.clone(), qd.clone());
        }
        info!(topic, "topic registered");
    }

    /// GET_BROKER_MEMBER_GROUP.
    pub fn broker_member_group(&self, cluster_name: &str, broker_name: &str) -> BrokerMemberGroup {
        let t = self.tables.read();
        BrokerMemberGroup {
            broker_addrs: t.broker_addr.get(broker_name).map(|bd| bd.broker_addrs.clone()).unwrap_or_default(),
            broker_name: broker_name.to_string(),
            cluster: cluster_name.to_string(),
        }
    }

    /// The number of live broker entries.
    pub fn live_broker_count(&self) -> usize {
        self.tables.read().live.len()
    }
}

fn upsert_queue_data(table: &mut BTreeMap<String, BTreeMap<String, QueueData>>, broker_name: &str, tc: &TopicConfig) {
    let qd = QueueData {
        broker_name: broker_name.to_string(),
        perm: tc.perm,
        read_queue_nums: tc.read_queue_nums,
        topic_sys_flag: tc.topic_sys_flag,
        write_queue_nums: tc.write_queue_nums,
    };
    let qds = table.entry(tc.topic_name.clone()).or_default();
    match qds.get(broker_name) {
        None => {
            tracing::debug!(topic = %tc.topic_name, broker = %broker_name, "new topic queue data");
            qds.insert(broker_name.to_string(), qd);
        }
        Some(old) if *old != qd => {
            info!(topic = %tc.topic_name, broker = %broker_name, ?old, new = ?qd, "topic queue data changed");
            qds.insert(broker_name.to_string(), qd);
        }
        Some(_) => {}
    }
}

/// The live entry `key` is gone: find which group/id had that address and unregister it.
fn destroy_locked(t: &mut Tables, key: &BrokerAddrInfo, why: &str) {
    let found = t.broker_addr.values().find_map(|bd| {
        if bd.cluster != key.cluster {
            return None;
        }
        bd.broker_addrs.iter().find(|(_, a)| **a == key.addr).map(|(id, _)| (bd.broker_name.clone(), *id))
    });
    match found {
        Some((name, id)) => unregister_locked(t, &key.cluster, &key.addr, &name, id, why),
        None => {
            t.live.remove(key);
            t.filter_server.remove(key);
        }
    }
}

fn unregister_locked(t: &mut Tables, cluster: &str, addr: &str, name: &str, id: i64, why: &str) {
    let key = BrokerAddrInfo { cluster: cluster.to_string(), addr: addr.to_string() };
    t.live.remove(&key);
    t.filter_server.remove(&key);
    let mut remove_name = false;
    let mut reduced = false;
    if let Some(bd) = t.broker_addr.get_mut(name) {
        bd.broker_addrs.retain(|_, a| a != addr);
        if bd.broker_addrs.is_empty() {
            t.broker_addr.remove(name);
            remove_name = true;
        } else {
            reduced = true;
        }
    }
    info!(cluster, broker = name, id, addr, reason = why, group_removed = remove_name, "broker unregistered");
    if remove_name {
        if let Some(names) = t.cluster_addr.get_mut(cluster) {
            names.remove(name);
            if names.is_empty() {
                t.cluster_addr.remove(cluster);
            }
        }
        t.topic_queue.retain(|topic, qds| {
            if qds.remove(name).is_some() {
                debug!(topic = %topic, broker = name, "queue data removed with its broker group");
            }
            !qds.is_empty()
        });
    } else if reduced {
        let no_master_acting = t
            .broker_addr
            .get(name)
            .is_some_and(|bd| bd.enable_acting_master && !bd.broker_addrs.contains_key(&MASTER_ID));
        if no_master_acting {
            for qds in t.topic_queue.values_mut() {
                if let Some(qd) = qds.get_mut(name) {
                    qd.perm &= !perm::WRITE;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mgr() -> RouteInfoManager {
        RouteInfoManager::new(Arc::new(RwLock::new(NamesrvConfig::default())))
    }

    fn reg(name: &str, id: i64, addr: &str, topics: &[&str], counter: i64) -> BrokerRegistration {
        let mut w = TopicConfigSerializeWrapper::default();
        w.data_version.counter = counter;
        for t in topics {
            w.topic_config_table.insert(t.to_string(), TopicConfig::new(*t));
        }
        BrokerRegistration {
            cluster_name: "C".into(),
            broker_addr: addr.into(),
            broker_name: name.into(),
            broker_id: id,
            ha_server_addr: format!("{addr}-ha"),
            enable_acting_master: Some(false),
            topic_config_wrapper: w,
            ..Default::default()
        }
    }

    #[test]
    fn register_route_unregister() {
        let m = mgr();
        assert_eq!(m.register_broker(reg("a", 0, "h:1", &["T1", "T2"], 1)), Some(RegisterBrokerResult::default()));
        let r = m.register_broker(reg("a", 1, "h:2", &["T1", "T2"], 1)).expect("slave registers");
        assert_eq!(r.master_addr.as_deref(), Some("h:1"));
        assert_eq!(r.ha_server_addr.as_deref(), Some("h:1-ha"));
        let rd = m.pickup_topic_route_data("T1").expect("route");
        assert_eq!(rd.broker_datas[0].broker_addrs.len(), 2);
        assert_eq!(rd.queue_datas[0].read_queue_nums, 16);
        assert!(m.pickup_topic_route_data("nope").is_none());
        // Single-topic registration of an unknown id is refused.
        assert_eq!(m.register_broker(reg("a", 2, "h:3", &["T1"], 1)), None);
        m.unregister_broker("C", "h:1", "a", 0);
        assert!(m.pickup_topic_route_data("T1").is_some(), "slave still holds the group");
        m.unregister_broker("C", "h:2", "a", 1);
        assert!(m.pickup_topic_route_data("T1").is_none());
        assert!(m.cluster_info().cluster_addr_table.is_empty());
        assert!(m.all_topic_list().topic_list.is_empty());
    }

    #[test]
    fn role_switch_and_state_version() {
        let m = mgr();
        m.register_broker(reg("a", 1, "h:1", &["T1", "T2"], 1));
        m.register_broker(reg("a", 0, "h:1", &["T1", "T2"], 1));
        let bd = m.cluster_info().broker_addr_table["a"].clone();
        assert_eq!(bd.broker_addrs.keys().copied().collect::<Vec<_>>(), vec![0]);
        // A newer state version at id 0 wins over an older one from another address.
        let mut newer = reg("a", 0, "h:1", &["T1", "T2"], 2);
        newer.topic_config_wrapper.data_version.state_version = 5;
        m.register_broker(newer);
        let older = reg("a", 0, "h:9", &["T1", "T2"], 3);
        assert_eq!(m.register_broker(older), Some(RegisterBrokerResult::default()));
        assert!(!m.is_broker_live("C", "h:9"));
        assert_eq!(m.cluster_info().broker_addr_table["a"].broker_addrs[&0], "h:1");
    }

    #[test]
    fn perms_and_topics() {
        let m = mgr();
        m.register_broker(reg("a", 0, "h:1", &["T1", "T2"], 1));
        m.register_broker(reg("b", 0, "h:2", &["T2", "T3"], 1));
        assert_eq!(m.wipe_write_perm_of_broker("a"), 2);
        assert_eq!(m.pickup_topic_route_data("T1").expect("route").queue_datas[0].perm, perm::READ);
        assert_eq!(m.add_write_perm_of_broker("a"), 2);
        assert_eq!(m.pickup_topic_route_data("T1").expect("route").queue_datas[0].perm, 6);
        assert_eq!(m.topics_by_cluster("C").topic_list.len(), 3);
        let sys = m.system_topic_list();
        assert!(sys.topic_list.contains("C") && sys.topic_list.contains("a") && sys.topic_list.contains("b"));
        assert!(sys.broker_addr.is_some());
        m.delete_topic("T2", Some("C"));
        assert!(m.pickup_topic_route_data("T2").is_none());
        m.delete_topic("T1", None);
        assert!(m.pickup_topic_route_data("T1").is_none());
        // A changed DataVersion updates queue data; an unchanged one keeps it.
        let mut r = reg("b", 0, "h:2", &["T2", "T3"], 2);
        r.topic_config_wrapper.topic_config_table.get_mut("T3").expect("T3").write_queue_nums = 2;
        m.register_broker(r);
        assert_eq!(m.pickup_topic_route_data("T3").expect("route").queue_datas[0].write_queue_nums, 2);
    }

    #[test]
    fn acting_master_in_route() {
        let m = mgr();
        m.config.write().support_acting_master = true;
        let mut s = reg("a", 1, "h:2", &["T1", "T2"], 1);
        s.enable_acting_master = Some(true);
        m.register_broker(s);
        let rd = m.pickup_topic_route_data("T1").expect("route");
        assert_eq!(rd.queue_datas[0].perm & perm::WRITE, 0, "prime slave registers without write perm");
        assert_eq!(rd.broker_datas[0].broker_addrs.get(&0).map(String::as_str), Some("h:2"));
    }
}
