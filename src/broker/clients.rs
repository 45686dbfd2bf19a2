//! Online clients of a broker: consumers by group (with their subscriptions) and producers by group,
//! registered by HEART_BEAT, removed by UNREGISTER_CLIENT, by their connection closing, or after
//! 120 s without a heartbeat. Consumers are told when their group's membership changes
//! (NOTIFY_CONSUMER_IDS_CHANGED).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::broker::config::BrokerConfig;
use crate::json::null_default;
use crate::protocol::codes::request;
use crate::protocol::message::java_string_hash;
use crate::remoting::{ConnectionHandle, LanguageCode, RemotingCommand};

/// A client is dropped after this long without a heartbeat (Apache's `channelExpiredTimeout`).
pub const CHANNEL_EXPIRED_TIMEOUT_MS: i64 = 120_000;
/// Expression type of tag subscriptions.
pub const EXPRESSION_TYPE_TAG: &str = "TAG";
/// Subscribe-all expression.
pub const SUB_ALL: &str = "*";
/// `consumeType` of push consumers.
pub const CONSUME_PASSIVELY: &str = "CONSUME_PASSIVELY";
/// `messageModel` of broadcasting consumers.
pub const BROADCASTING: &str = "BROADCASTING";
/// `messageModel` of clustering consumers.
pub const CLUSTERING: &str = "CLUSTERING";

const NOTIFY_SEND_TIMEOUT: Duration = Duration::from_secs(3);

fn tag() -> String {
    EXPRESSION_TYPE_TAG.into()
}

fn tag_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()).unwrap_or_else(tag))
}

/// One topic subscription of a consumer group (Apache's `SubscriptionData`, fastjson field order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionData {
    /// Class filter mode (obsolete).
    #[serde(default, deserialize_with = "null_default")]
    pub class_filter_mode: bool,
    /// Java `String.hashCode` of each tag.
    #[serde(default, deserialize_with = "null_default")]
    pub code_set: BTreeSet<i32>,
    /// `TAG` (default) or `SQL92`.
    #[serde(default = "tag", deserialize_with = "tag_or_null")]
    pub expression_type: String,
    /// The expression (`*`, `a || b`, or SQL).
    #[serde(default, deserialize_with = "null_default")]
    pub sub_string: String,
    /// Version (the client's timestamp of the subscription).
    #[serde(default, deserialize_with = "null_default")]
    pub sub_version: i64,
    /// Tags of a TAG expression.
    #[serde(default, deserialize_with = "null_default")]
    pub tags_set: BTreeSet<String>,
    /// The topic.
    #[serde(default, deserialize_with = "null_default")]
    pub topic: String,
}

impl SubscriptionData {
    /// A TAG subscription built like Apache's `FilterAPI.buildSubscriptionData`.
    pub fn new(topic: impl Into<String>, sub_string: &str) -> Self {
        let mut s = SubscriptionData {
            class_filter_mode: false,
            code_set: BTreeSet::new(),
            expression_type: tag(),
            sub_string: sub_string.to_string(),
            sub_version: crate::util::now_millis(),
            tags_set: BTreeSet::new(),
            topic: topic.into(),
        };
        s.normalize();
        s
    }

    /// Fills what a lenient client may leave out: tags from a TAG expression, and their hash codes.
    pub fn normalize(&mut self) {
        if self.expression_type.eq_ignore_ascii_case(EXPRESSION_TYPE_TAG) {
            let expr = self.sub_string.trim();
            if expr.is_empty() || expr == SUB_ALL {
                if self.sub_string.is_empty() {
                    self.sub_string = SUB_ALL.into();
                }
            } else if self.tags_set.is_empty() {
                self.tags_set = expr.split("||").map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect();
            }
            if self.code_set.is_empty() {
                self.code_set = self.tags_set.iter().map(|t| java_string_hash(t)).collect();
            }
        }
    }
}

/// One consumer group's part of a heartbeat (Apache's `ConsumerData`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerData {
    /// Group.
    #[serde(default, deserialize_with = "null_default")]
    pub group_name: String,
    /// `CONSUME_ACTIVELY` (pull), `CONSUME_PASSIVELY` (push) or `CONSUME_POP`.
    #[serde(default, deserialize_with = "null_default")]
    pub consume_type: String,
    /// `CLUSTERING` or `BROADCASTING`.
    #[serde(default, deserialize_with = "null_default")]
    pub message_model: String,
    /// `CONSUME_FROM_LAST_OFFSET`, `CONSUME_FROM_FIRST_OFFSET`, `CONSUME_FROM_TIMESTAMP`, ...
    #[serde(default, deserialize_with = "null_default")]
    pub consume_from_where: String,
    /// Subscriptions.
    #[serde(default, deserialize_with = "null_default")]
    pub subscription_data_set: Vec<SubscriptionData>,
    /// Unit mode.
    #[serde(default, deserialize_with = "null_default")]
    pub unit_mode: bool,
}

/// One producer group's part of a heartbeat.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerData {
    /// Group.
    #[serde(default, deserialize_with = "null_default")]
    pub group_name: String,
}

/// The HEART_BEAT body (Apache's `HeartbeatData`); every field is optional on the wire.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatData {
    /// The client id (`ip@pid#...`).
    #[serde(default, rename = "clientID", deserialize_with = "null_default")]
    pub client_id: String,
    /// Producer groups.
    #[serde(default, deserialize_with = "null_default")]
    pub producer_data_set: Vec<ProducerData>,
    /// Consumer groups.
    #[serde(default, deserialize_with = "null_default")]
    pub consumer_data_set: Vec<ConsumerData>,
    /// Non-zero: heartbeat V2 (subscriptions may be omitted when unchanged).
    #[serde(default, deserialize_with = "null_default")]
    pub heartbeat_fingerprint: i32,
    /// V2: subscriptions omitted because unchanged.
    #[serde(default, deserialize_with = "null_default")]
    pub without_sub: bool,
}

impl HeartbeatData {
    /// Parses a body leniently (fastjson quirks; missing fields default) and normalizes subscriptions.
    pub fn decode(body: &[u8]) -> Result<Self, serde_json::Error> {
        let mut hb: HeartbeatData = crate::json::from_slice_lenient(body)?;
        for c in &mut hb.consumer_data_set {
            for s in &mut c.subscription_data_set {
                s.normalize();
            }
        }
        Ok(hb)
    }
}

/// One registered client connection.
#[derive(Debug, Clone)]
pub struct ClientChannelInfo {
    /// The connection.
    pub conn: ConnectionHandle,
    /// Client id.
    pub client_id: String,
    /// Client language.
    pub language: LanguageCode,
    /// Client version.
    pub version: i32,
    /// Last heartbeat, ms.
    pub last_update: i64,
}

impl ClientChannelInfo {
    /// Info for a heartbeat received now on `conn`.
    pub fn new(
        conn: ConnectionHandle,
        client_id: impl Into<String>,
        language: LanguageCode,
        version: i32,
        now: i64,
    ) -> Self {
        ClientChannelInfo { conn, client_id: client_id.into(), language, version, last_update: now }
    }
}

/// A consumer group's members and subscriptions.
#[derive(Debug, Clone)]
pub struct ConsumerGroupInfo {
    /// Group.
    pub group_name: String,
    /// Members by connection id.
    pub channels: BTreeMap<u64, ClientChannelInfo>,
    /// Subscriptions by topic.
    pub subscriptions: BTreeMap<String, SubscriptionData>,
    /// Consume type of the last heartbeat.
    pub consume_type: String,
    /// Message model of the last heartbeat.
    pub message_model: String,
    /// Consume-from-where of the last heartbeat.
    pub consume_from_where: String,
    /// Last change or heartbeat, ms.
    pub last_update: i64,
    /// The group's `notifyConsumerIdsChangedEnable` at its last registration.
    pub notify_enabled: bool,
}

impl ConsumerGroupInfo {
    /// Client ids of the members.
    pub fn client_ids(&self) -> Vec<String> {
        self.channels.values().map(|c| c.client_id.clone()).collect()
    }
    /// Connections of the members.
    pub fn connections(&self) -> Vec<ConnectionHandle> {
        self.channels.values().map(|c| c.conn.clone()).collect()
    }
    fn is_broadcast(&self) -> bool {
        self.message_model == BROADCASTING
    }
    fn update_channel(&mut self, info: ClientChannelInfo, ct: &str, mm: &str, cfw: &str, now: i64) -> bool {
        self.consume_type = ct.to_string();
        self.message_model = mm.to_string();
        self.consume_from_where = cfw.to_string();
        self.last_update = now;
        let id = info.conn.id();
        match self.channels.get_mut(&id) {
            None => {
                info!(group = %self.group_name, client = %info.client_id, peer = %info.conn.peer(), "new consumer connected");
                self.channels.insert(id, info);
                true
            }
            Some(old) => {
                if old.client_id != info.client_id {
                    warn!(group = %self.group_name, old = %old.client_id, new = %info.client_id, "consumer channel exists with another clientId");
                    *old = info;
                } else {
                    old.last_update = now;
                }
                false
            }
        }
    }
    fn update_subscription(&mut self, subs: &[SubscriptionData], now: i64) -> bool {
        let mut updated = false;
        for s in subs {
            match self.subscriptions.get(&s.topic) {
                None => {
                    self.subscriptions.insert(s.topic.clone(), s.clone());
                    updated = true;
                }
                Some(old) if s.sub_version > old.sub_version => {
                    self.subscriptions.insert(s.topic.clone(), s.clone());
                }
                Some(_) => {}
            }
        }
        let topics: BTreeSet<&str> = subs.iter().map(|s| s.topic.as_str()).collect();
        let before = self.subscriptions.len();
        self.subscriptions.retain(|t, _| topics.contains(t.as_str()));
        updated |= before != self.subscriptions.len();
        self.last_update = now;
        updated
    }
}

/// Sends NOTIFY_CONSUMER_IDS_CHANGED on tracked tasks (the channel-close callback cannot await).
struct Notifier {
    tasks: TaskTracker,
}

impl Notifier {
    fn notify(&self, group: &str, conns: Vec<ConnectionHandle>) {
        if conns.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            debug!(group, "no runtime; consumer ids change not notified");
            return;
        };
        let cmd = RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED).with_ext("consumerGroup", group);
        let group = group.to_string();
        let fut = async move {
            for c in conns {
                if c.is_closed() {
                    continue;
                }
                match tokio::time::timeout(NOTIFY_SEND_TIMEOUT, c.send_oneway(cmd.clone())).await {
                    Ok(Ok(())) => debug!(%group, peer = %c.peer(), "notified consumer ids changed"),
                    Ok(Err(e)) => debug!(%group, peer = %c.peer(), error = %e, "notify consumer ids changed failed"),
                    Err(_) => warn!(%group, peer = %c.peer(), "notify consumer ids changed timed out"),
                }
            }
        };
        // The tracker keeps the task (BrokerMeta::shutdown waits for it); the handle is not needed.
        drop(self.tasks.spawn_on(fut, &rt));
    }
}

/// Online consumers by group.
pub struct ConsumerManager {
    config: Arc<ArcSwap<BrokerConfig>>,
    table: Mutex<HashMap<String, ConsumerGroupInfo>>,
    notifier: Notifier,
}

impl ConsumerManager {
    /// An empty manager; notifications follow the broker's `notifyConsumerIdsChangedEnable`.
    pub fn new(config: Arc<ArcSwap<BrokerConfig>>) -> Self {
        ConsumerManager { config, table: Mutex::new(HashMap::new()), notifier: Notifier { tasks: TaskTracker::new() } }
    }

    fn notify_change(&self, group: &str, conns: Vec<ConnectionHandle>) {
        if self.config.load().notify_consumer_ids_changed_enable {
            self.notifier.notify(group, conns);
        }
    }

    /// Registers (or refreshes) a consumer. Returns true if the membership or the subscriptions
    /// changed; then, if `notify_enabled` and the group is clustering, members are notified.
    #[allow(clippy::too_many_arguments)]
    pub fn register_consumer(
        &self,
        group: &str,
        info: ClientChannelInfo,
        consume_type: &str,
        message_model: &str,
        consume_from_where: &str,
        subs: &[SubscriptionData],
        notify_enabled: bool,
        update_subscription: bool,
    ) -> bool {
        let now = info.last_update;
        let (changed, notify) = {
            let mut table = self.table.lock();
            let gi = table.entry(group.to_string()).or_insert_with(|| ConsumerGroupInfo {
                group_name: group.to_string(),
                channels: BTreeMap::new(),
                subscriptions: BTreeMap::new(),
                consume_type: consume_type.to_string(),
                message_model: message_model.to_string(),
                consume_from_where: consume_from_where.to_string(),
                last_update: now,
                notify_enabled,
            });
            gi.notify_enabled = notify_enabled;
            let r1 = gi.update_channel(info, consume_type, message_model, consume_from_where, now);
            let r2 = update_subscription && gi.update_subscription(subs, now);
            let changed = r1 || r2;
            let notify = (changed && notify_enabled && !gi.is_broadcast()).then(|| gi.connections());
            (changed, notify)
        };
        if let Some(conns) = notify {
            self.notify_change(group, conns);
        }
        changed
    }

    /// Registers a V2 heartbeat that omitted its unchanged subscriptions.
    pub fn register_consumer_without_sub(
        &self,
        group: &str,
        info: ClientChannelInfo,
        consume_type: &str,
        message_model: &str,
        consume_from_where: &str,
        notify_enabled: bool,
    ) -> bool {
        self.register_consumer(group, info, consume_type, message_model, consume_from_where, &[], notify_enabled, false)
    }

    /// Removes a consumer's connection from the group (UNREGISTER_CLIENT).
    pub fn unregister_consumer(&self, group: &str, conn: &ConnectionHandle, notify_enabled: bool) {
        let notify = {
            let mut table = self.table.lock();
            let Some(gi) = table.get_mut(group) else { return };
            let removed = gi.channels.remove(&conn.id()).is_some();
            if removed {
                info!(group, peer = %conn.peer(), "unregister consumer");
            }
            let broadcast = gi.is_broadcast();
            let conns = gi.connections();
            if gi.channels.is_empty() {
                table.remove(group);
                info!(group, "no consumer left; group removed");
            }
            (removed && notify_enabled && !broadcast).then_some(conns)
        };
        if let Some(conns) = notify {
            self.notify_change(group, conns);
        }
    }

    /// Drops a closed connection from every group. Returns true if it was registered anywhere.
    pub fn do_channel_close(&self, conn: &ConnectionHandle) -> bool {
        let mut notifications = Vec::new();
        {
            let mut table = self.table.lock();
            table.retain(|group, gi| {
                if gi.channels.remove(&conn.id()).is_some() {
                    info!(group, peer = %conn.peer(), "consumer connection closed; unregistered");
                    if gi.notify_enabled && !gi.is_broadcast() {
                        notifications.push((group.clone(), gi.connections()));
                    }
                }
                !gi.channels.is_empty()
            });
        }
        let removed = !notifications.is_empty();
        for (g, conns) in notifications {
            self.notify_change(&g, conns);
        }
        removed
    }

    /// Drops consumers whose last heartbeat is more than 120 s before `now` (closing their
    /// connections) and tells the remaining members. Returns the `(group, clientId)` dropped.
    pub fn scan_expired(&self, now: i64) -> Vec<(String, String)> {
        let mut dropped = Vec::new();
        let mut notifications = Vec::new();
        {
            let mut table = self.table.lock();
            table.retain(|group, gi| {
                let before = gi.channels.len();
                gi.channels.retain(|_, c| {
                    let expired = now - c.last_update > CHANNEL_EXPIRED_TIMEOUT_MS;
                    if expired {
                        warn!(group, client = %c.client_id, peer = %c.conn.peer(), "consumer heartbeat expired; removed");
                        c.conn.close();
                        dropped.push((group.clone(), c.client_id.clone()));
                    }
                    !expired
                });
                if gi.channels.len() != before && !gi.channels.is_empty() && gi.notify_enabled && !gi.is_broadcast() {
                    notifications.push((group.clone(), gi.connections()));
                }
                !gi.channels.is_empty()
            });
        }
        for (g, conns) in notifications {
            self.notify_change(&g, conns);
        }
        dropped
    }

    /// Consumer connections counted by (group, language, version, consume type), as Apache's
    /// `rocketmq_consumer_connections` gauge counts them.
    pub fn connection_counts(&self) -> Vec<(String, LanguageCode, i32, String, usize)> {
        let mut counts: BTreeMap<(String, &'static str, i32, String), (LanguageCode, usize)> = BTreeMap::new();
        for (group, info) in self.table.lock().iter() {
            for c in info.channels.values() {
                let key = (group.clone(), c.language.name(), c.version, info.consume_type.clone());
                counts.entry(key).or_insert((c.language, 0)).1 += 1;
            }
        }
        counts.into_iter().map(|((g, _, v, t), (l, n))| (g, l, v, t, n)).collect()
    }

    /// A copy of the group's state.
    pub fn group_info(&self, group: &str) -> Option<ConsumerGroupInfo> {
        self.table.lock().get(group).cloned()
    }

    /// Client ids of the group's members (empty if none).
    pub fn client_ids(&self, group: &str) -> Vec<String> {
        self.table.lock().get(group).map(|g| g.client_ids()).unwrap_or_default()
    }

    /// The group's subscription of the topic.
    pub fn find_subscription_data(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        self.table.lock().get(group).and_then(|g| g.subscriptions.get(topic).cloned())
    }

    /// How many topics the group subscribes.
    pub fn find_subscription_data_count(&self, group: &str) -> usize {
        self.table.lock().get(group).map(|g| g.subscriptions.len()).unwrap_or(0)
    }

    /// Groups with a member subscribed to the topic.
    pub fn groups_by_topic(&self, topic: &str) -> BTreeSet<String> {
        self.table.lock().iter().filter(|(_, g)| g.subscriptions.contains_key(topic)).map(|(n, _)| n.clone()).collect()
    }

    /// The member with this client id.
    pub fn find_channel(&self, group: &str, client_id: &str) -> Option<ClientChannelInfo> {
        self.table.lock().get(group).and_then(|g| g.channels.values().find(|c| c.client_id == client_id).cloned())
    }

    /// Waits for pending notifications.
    pub async fn shutdown(&self) {
        self.notifier.tasks.close();
        self.notifier.tasks.wait().await;
    }
}

/// Online producers by group.
pub struct ProducerManager {
    table: Mutex<HashMap<String, BTreeMap<u64, ClientChannelInfo>>>,
}

impl Default for ProducerManager {
    fn default() -> Self {
        Self::new()
    }
}

impl ProducerManager {
    /// An empty manager.
    pub fn new() -> Self {
        ProducerManager { table: Mutex::new(HashMap::new()) }
    }

    /// Registers (or refreshes) a producer connection.
    pub fn register_producer(&self, group: &str, info: ClientChannelInfo) {
        let mut table = self.table.lock();
        let g = table.entry(group.to_string()).or_default();
        match g.get_mut(&info.conn.id()) {
            Some(old) => {
                old.last_update = info.last_update;
                old.client_id = info.client_id;
            }
            None => {
                info!(group, client = %info.client_id, peer = %info.conn.peer(), "new producer connected");
                g.insert(info.conn.id(), info);
            }
        }
    }

    /// Removes a producer connection from the group.
    pub fn unregister_producer(&self, group: &str, conn: &ConnectionHandle) {
        let mut table = self.table.lock();
        if let Some(g) = table.get_mut(group) {
            if g.remove(&conn.id()).is_some() {
                info!(group, peer = %conn.peer(), "unregister producer");
            }
            if g.is_empty() {
                table.remove(group);
            }
        }
    }

    /// Drops a closed connection from every group.
    pub fn do_channel_close(&self, conn: &ConnectionHandle) -> bool {
        let mut removed = false;
        self.table.lock().retain(|_, g| {
            removed |= g.remove(&conn.id()).is_some();
            !g.is_empty()
        });
        removed
    }

    /// Drops producers silent for more than 120 s (closing their connections).
    pub fn scan_expired(&self, now: i64) -> Vec<(String, String)> {
        let mut dropped = Vec::new();
        self.table.lock().retain(|group, g| {
            g.retain(|_, c| {
                let expired = now - c.last_update > CHANNEL_EXPIRED_TIMEOUT_MS;
                if expired {
                    warn!(group, client = %c.client_id, "producer heartbeat expired; removed");
                    c.conn.close();
                    dropped.push((group.clone(), c.client_id.clone()));
                }
                !expired
            });
            !g.is_empty()
        });
        dropped
    }

    /// The group's connections, `None` for an unknown group.
    pub fn group_connections(&self, group: &str) -> Option<Vec<ClientChannelInfo>> {
        self.table.lock().get(group).map(|g| g.values().cloned().collect())
    }

    /// An open connection of the group (for transaction checks).
    pub fn available_channel(&self, group: &str) -> Option<ConnectionHandle> {
        self.table.lock().get(group).and_then(|g| g.values().map(|c| c.conn.clone()).find(|c| !c.is_closed()))
    }

    /// The connection of a client id, in any group.
    pub fn find_channel(&self, client_id: &str) -> Option<ConnectionHandle> {
        self.table.lock().values().flat_map(|g| g.values()).find(|c| c.client_id == client_id).map(|c| c.conn.clone())
    }

    /// Group names.
    pub fn groups(&self) -> Vec<String> {
        self.table.lock().keys().cloned().collect()
    }

    /// Producer connections counted by (language, version), as Apache's
    /// `rocketmq_producer_connections` gauge counts them.
    pub fn connection_counts(&self) -> Vec<(LanguageCode, i32, usize)> {
        let mut counts: BTreeMap<(&'static str, i32), (LanguageCode, usize)> = BTreeMap::new();
        for c in self.table.lock().values().flat_map(|g| g.values()) {
            counts.entry((c.language.name(), c.version)).or_insert((c.language, 0)).1 += 1;
        }
        counts.into_iter().map(|((_, v), (l, n))| (l, v, n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_bodies_parse_leniently() {
        let java = br#"{"clientID":"10.0.0.1@123#1","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"g","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919],"expressionType":"TAG","subString":"TagA","subVersion":1700000000000,"tagsSet":["TagA"],"topic":"T"}],"unitMode":false}],"heartbeatFingerprint":0,"producerDataSet":[{"groupName":"pg"}],"withoutSub":false}"#;
        let hb = HeartbeatData::decode(java).unwrap();
        assert_eq!(hb.client_id, "10.0.0.1@123#1");
        assert_eq!(hb.consumer_data_set[0].subscription_data_set[0].code_set.len(), 1);
        assert_eq!(hb.producer_data_set[0].group_name, "pg");

        let sparse = br#"{"clientID":"c2","consumerDataSet":[{"groupName":"g","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","subscriptionDataSet":[{"topic":"T","subString":"a || b","subVersion":1}]}]}"#;
        let hb = HeartbeatData::decode(sparse).unwrap();
        let s = &hb.consumer_data_set[0].subscription_data_set[0];
        assert_eq!(s.expression_type, "TAG");
        assert_eq!(s.tags_set.iter().cloned().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.code_set, [java_string_hash("a"), java_string_hash("b")].into_iter().collect());
        assert!(hb.producer_data_set.is_empty());
        assert_eq!(hb.heartbeat_fingerprint, 0);

        let nulls = br#"{"clientID":"c3","consumerDataSet":null,"producerDataSet":[{"groupName":null}]}"#;
        let hb = HeartbeatData::decode(nulls).unwrap();
        assert!(hb.consumer_data_set.is_empty());
        assert!(HeartbeatData::decode(b"not json").is_err());
    }

    #[test]
    fn sub_all_gets_no_tags() {
        let s = SubscriptionData::new("T", "*");
        assert!(s.tags_set.is_empty() && s.code_set.is_empty());
        let s: SubscriptionData = serde_json::from_str(r#"{"topic":"T","expressionType":null}"#).unwrap();
        assert_eq!(s.expression_type, "TAG");
    }
}
