//! Slave acting master (RocketMQ 5, `enableSlaveActingMaster`): the broker's keep-alive with the
//! NameServers, the group-membership poll that tells a slave it has the group's smallest id while
//! the master is gone, the escape bridge that sends what an acting master would store to another
//! live master of the cluster, and the hand-back when the master returns.
//!
//! The state lives in [`ActingState`] (one per broker, in the core); the loops are owned by the
//! broker's task tracker like every other background task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::config::BrokerRole;
use super::core::BrokerCore;
use super::register::NamesrvList;
use super::schedule::ScheduleService;
use crate::protocol::body::{BrokerMemberGroup, GetBrokerMemberGroupResponseBody, TopicRouteData};
use crate::protocol::codes::{request, response};
use crate::protocol::header::{
    BrokerHeartbeatRequestHeader, GetBrokerMemberGroupRequestHeader, QueryDataVersionRequestHeader,
};
use crate::protocol::perm;
use crate::remoting::{RemotingClient, RemotingCommand};
use crate::store::MessageInner;

/// Timeout of one escaped send or one route look-up.
const ESCAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a returning master holds its special services while the acting slave stands down.
const MAX_HANDBACK_WAIT: Duration = Duration::from_secs(10);

/// What a broker knows about its group in acting-master mode.
#[derive(Default)]
pub struct ActingState {
    /// The smallest live broker id of the group (NameServer's view); 0 while a master is there.
    min_broker_id: AtomicI64,
    /// A returning master holds delayed delivery until the acting slave has stood down.
    holding: AtomicBool,
    bridge: OnceLock<EscapeBridge>,
    /// Weak: the timer service's sink holds the core, which holds this.
    timer: OnceLock<std::sync::Weak<super::timer::TimerService>>,
}

impl ActingState {
    /// The group's smallest live broker id as last learned (0 before any poll).
    pub fn min_broker_id(&self) -> i64 {
        self.min_broker_id.load(Ordering::Acquire)
    }
    /// Records the group's smallest live broker id (tests and the member-group poll).
    pub fn set_min_broker_id(&self, id: i64) {
        self.min_broker_id.store(id, Ordering::Release);
    }
    /// Holds (or releases) the special services of a returning master.
    pub fn set_holding(&self, hold: bool) {
        self.holding.store(hold, Ordering::Release);
    }
    /// True while a returning master waits for the hand-back.
    pub fn is_holding(&self) -> bool {
        self.holding.load(Ordering::Acquire)
    }
    /// Installs the bridge (once, when the broker starts its tasks).
    pub fn install_bridge(&self, bridge: EscapeBridge) {
        let _ = self.bridge.set(bridge);
    }
    /// Makes the timer service reachable for progress hand-over.
    pub fn install_timer(&self, timer: &Arc<super::timer::TimerService>) {
        let _ = self.timer.set(Arc::downgrade(timer));
    }
    /// The slot time the timer service delivers next (-1: no timer files open yet).
    pub fn timer_read_time_ms(&self) -> i64 {
        self.timer.get().and_then(std::sync::Weak::upgrade).map_or(-1, |t| t.progress().1)
    }
    /// Delivery of timer messages continues from at least `ms` (another broker delivered before).
    pub fn advance_timer(&self, ms: i64) {
        if let Some(t) = self.timer.get().and_then(std::sync::Weak::upgrade) {
            if ms > 0 {
                t.advance_read_time(ms);
            }
        }
    }
    /// The bridge, once installed.
    pub fn bridge(&self) -> Option<&EscapeBridge> {
        self.bridge.get()
    }
}

/// True when this broker is a slave acting as its group's master: acting-master mode on, and its
/// id is the smallest live one of the group (so the master, id 0, is gone).
pub fn is_acting_master(core: &BrokerCore) -> bool {
    let cfg = core.config();
    cfg.enable_slave_acting_master
        && cfg.broker_role == BrokerRole::Slave
        && cfg.broker_id > 0
        && core.acting.min_broker_id() == cfg.broker_id
}

/// Whether this broker runs the special services now (delayed and timer delivery, transaction
/// checks): a master that is not handing back, or an acting master. Apache's `brokerActive`.
pub fn special_services_active(core: &BrokerCore) -> bool {
    if core.is_shutting_down() {
        return false;
    }
    if core.config().broker_role != BrokerRole::Slave {
        return !core.acting.is_holding();
    }
    is_acting_master(core)
}

/// Why an escaped put failed.
#[derive(Debug, thiserror::Error)]
pub enum EscapeError {
    /// This broker may not write at all (a slave that is not acting, or escape disabled).
    #[error("{0}")]
    NotAllowed(String),
    /// No NameServer answered with the topic's route.
    #[error("route of {topic}: {reason}")]
    Route {
        /// The topic.
        topic: String,
        /// What went wrong.
        reason: String,
    },
    /// No other live, writable master holds the topic.
    #[error("no other writable master for topic {0}")]
    NoMaster(String),
    /// The remote broker refused or did not answer (PUT_TO_REMOTE_BROKER_FAIL in Apache).
    #[error("put to remote broker {addr} failed: {reason}")]
    Remote {
        /// The remote broker.
        addr: String,
        /// Its answer or the transport error.
        reason: String,
    },
    /// The local store refused.
    #[error("local store refused: {0}")]
    Local(String),
}

/// Sends what an acting master would store to another live master of the cluster
/// (`SEND_MESSAGE_V2` with producer group `InnerProducerGroup_<brokerName>_<brokerId>`).
#[derive(Clone)]
pub struct EscapeBridge {
    client: RemotingClient,
    namesrvs: NamesrvList,
}

impl EscapeBridge {
    /// A bridge using the broker's client and NameServer list.
    pub fn new(client: RemotingClient, namesrvs: NamesrvList) -> Self {
        EscapeBridge { client, namesrvs }
    }

    async fn route(&self, topic: &str) -> Result<TopicRouteData, EscapeError> {
        let mut last = "no NameServer configured".to_string();
        for ns in self.namesrvs.load_full().iter() {
            match self.client.invoke(ns, crate::client::route::route_request(topic), ESCAPE_TIMEOUT).await {
                Ok(r) if r.code == response::SUCCESS => {
                    return crate::json::from_slice_lenient(&r.body)
                        .map_err(|e| EscapeError::Route { topic: topic.into(), reason: e.to_string() })
                }
                Ok(r) => last = format!("{ns}: code {} {:?}", r.code, r.remark),
                Err(e) => last = format!("{ns}: {e}"),
            }
        }
        Err(EscapeError::Route { topic: topic.into(), reason: last })
    }

    /// Sends `m` to a queue of its topic on a master whose group is not `own_name`.
    pub async fn put_remote(&self, own_name: &str, own_id: i64, m: MessageInner) -> Result<String, EscapeError> {
        let route = self.route(&m.topic).await?;
        let mut candidates: Vec<(String, i32)> = Vec::new();
        for qd in &route.queue_datas {
            if qd.broker_name == own_name || !perm::is_writeable(qd.perm) || qd.write_queue_nums <= 0 {
                continue;
            }
            let Some(bd) = route.broker_datas.iter().find(|b| b.broker_name == qd.broker_name) else { continue };
            let Some(addr) = crate::client::route::master_of(bd) else { continue };
            candidates.push((addr.to_string(), qd.write_queue_nums));
        }
        if candidates.is_empty() {
            return Err(EscapeError::NoMaster(m.topic.clone()));
        }
        let pick = (crate::client::uniq::random_u64() % candidates.len() as u64) as usize;
        let (addr, queues) = candidates.swap_remove(pick);
        let queue_id = (crate::client::uniq::random_u64() % queues as u64) as i32;
        let group = format!("InnerProducerGroup_{own_name}_{own_id}");
        let mut h = crate::client::send::send_header(&group, &m.topic, queue_id, 4, Some(m.properties.clone()));
        h.sys_flag = m.sys_flag
            & !(crate::protocol::message::sysflag::BORNHOST_V6 | crate::protocol::message::sysflag::STOREHOST_V6);
        h.flag = m.flag;
        h.born_timestamp = m.born_timestamp;
        h.reconsume_times = Some(m.reconsume_times);
        let req = crate::client::send::send_request(request::SEND_MESSAGE_V2, &h, m.body.clone());
        match self.client.invoke(&addr, req, ESCAPE_TIMEOUT).await {
            Ok(r) if r.code == response::SUCCESS => {
                debug!(topic = %m.topic, remote = %addr, queue_id, "escaped to remote master");
                Ok(addr)
            }
            Ok(r) => Err(EscapeError::Remote { addr, reason: format!("code {} {:?}", r.code, r.remark) }),
            Err(e) => Err(EscapeError::Remote { addr, reason: e.to_string() }),
        }
    }
}

/// Apache's `EscapeBridge.putMessage`: a master stores locally; an acting master with
/// `enableRemoteEscape` sends to another master; anyone else refuses.
pub async fn escape_put(core: &BrokerCore, m: MessageInner) -> Result<(), EscapeError> {
    let cfg = core.config();
    if cfg.broker_role != BrokerRole::Slave {
        let r = core.store().put_message(m).await;
        return if r.status.is_stored() { Ok(()) } else { Err(EscapeError::Local(r.status.name().to_string())) };
    }
    if !(is_acting_master(core) && cfg.enable_remote_escape) {
        return Err(EscapeError::NotAllowed(format!(
            "the broker {} is a slave and not an acting master with enableRemoteEscape",
            core.identity()
        )));
    }
    let Some(bridge) = core.acting.bridge() else {
        return Err(EscapeError::NotAllowed("escape bridge not started".into()));
    };
    bridge.put_remote(&cfg.broker_name, cfg.broker_id, m).await.map(|_| ())
}

async fn member_group(
    client: &RemotingClient,
    namesrvs: &[String],
    cluster: &str,
    name: &str,
    timeout: Duration,
) -> Option<BrokerMemberGroup> {
    let header = GetBrokerMemberGroupRequestHeader { cluster_name: cluster.into(), broker_name: name.into() };
    for ns in namesrvs {
        let req = RemotingCommand::request_with_header(request::GET_BROKER_MEMBER_GROUP, &header);
        match client.invoke(ns, req, timeout).await {
            Ok(r) if r.code == response::SUCCESS => {
                match crate::json::from_slice_lenient::<GetBrokerMemberGroupResponseBody>(&r.body) {
                    Ok(b) => return Some(b.broker_member_group),
                    Err(e) => debug!(namesrv = %ns, error = %e, "member group does not parse"),
                }
            }
            Ok(r) => debug!(namesrv = %ns, code = r.code, "member group refused"),
            Err(e) => debug!(namesrv = %ns, error = %e, "member group failed"),
        }
    }
    None
}

/// Keep-alive with every NameServer every `brokerHeartbeatInterval` (acting-master mode only):
/// QUERY_DATA_VERSION with `compatibleWithOldNameSrv`, else BROKER_HEARTBEAT (904) oneway.
pub async fn heartbeat_loop(
    core: Arc<BrokerCore>,
    client: RemotingClient,
    namesrvs: NamesrvList,
    cancel: CancellationToken,
) {
    loop {
        let cfg = core.config();
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(cfg.broker_heartbeat_interval)) => {}
        }
        let timeout = Duration::from_millis(cfg.send_heartbeat_timeout_millis);
        let list = namesrvs.load_full();
        let calls = list.iter().map(|ns| {
            let client = client.clone();
            let cfg = cfg.clone();
            let version = core.meta.topics.data_version();
            async move {
                if cfg.compatible_with_old_name_srv {
                    let h = QueryDataVersionRequestHeader {
                        broker_name: cfg.broker_name.clone(),
                        broker_addr: cfg.broker_addr(),
                        cluster_name: cfg.broker_cluster_name.clone(),
                        broker_id: cfg.broker_id,
                    };
                    let req = RemotingCommand::request_with_header(request::QUERY_DATA_VERSION, &h)
                        .with_body(version.to_json().into_bytes());
                    if let Err(e) = client.invoke(ns, req, timeout).await {
                        debug!(namesrv = %ns, error = %e, "keep-alive failed");
                    }
                } else {
                    let h = BrokerHeartbeatRequestHeader {
                        cluster_name: cfg.broker_cluster_name.clone(),
                        broker_addr: cfg.broker_addr(),
                        broker_name: cfg.broker_name.clone(),
                        broker_id: None,
                        epoch: None,
                        max_offset: None,
                        confirm_offset: None,
                        heartbeat_timeout_mills: None,
                        election_priority: None,
                    };
                    let req = RemotingCommand::request_with_header(request::BROKER_HEARTBEAT, &h);
                    if let Err(e) = client.invoke_oneway(ns, req, timeout).await {
                        debug!(namesrv = %ns, error = %e, "heartbeat failed");
                    }
                }
            }
        });
        futures::future::join_all(calls).await;
    }
}

/// Polls the group's members every `syncBrokerMemberGroupPeriod` and records the smallest live id;
/// a slave whose id it is becomes acting master (and stops being one when the master returns).
pub async fn member_group_loop(
    core: Arc<BrokerCore>,
    client: RemotingClient,
    namesrvs: NamesrvList,
    cancel: CancellationToken,
) {
    loop {
        let cfg = core.config();
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(cfg.sync_broker_member_group_period)) => {}
        }
        let list = namesrvs.load_full();
        let timeout = Duration::from_millis(cfg.send_heartbeat_timeout_millis.max(1000));
        let Some(group) = member_group(&client, &list, &cfg.broker_cluster_name, &cfg.broker_name, timeout).await
        else {
            continue;
        };
        let Some(min) = group.broker_addrs.keys().next().copied() else { continue };
        let before = is_acting_master(&core);
        core.acting.set_min_broker_id(min);
        let after = is_acting_master(&core);
        if before != after {
            info!(min_broker_id = min, acting = after, "change special service status: acting master {}", after);
            core.wake_registration.notify_one();
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DelayOffsets {
    #[serde(default)]
    offset_table: BTreeMap<i32, i64>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsumerOffsets {
    #[serde(default)]
    offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

async fn fetch(client: &RemotingClient, addr: &str, code: i32) -> Option<bytes::Bytes> {
    match client.invoke(addr, RemotingCommand::request(code), ESCAPE_TIMEOUT).await {
        Ok(r) if r.code == response::SUCCESS => Some(r.body),
        Ok(r) => {
            debug!(addr, code = r.code, "hand-back fetch refused");
            None
        }
        Err(e) => {
            debug!(addr, error = %e, "hand-back fetch failed");
            None
        }
    }
}

/// Takes over what the acting slave (the smallest live slave of the group) did: its delay offsets
/// and consumer offsets, each the larger of ours and its. Returns whether a slave answered.
async fn take_back_from(core: &BrokerCore, schedule: &ScheduleService, client: &RemotingClient, slave: &str) -> bool {
    let mut any = false;
    if let Some(body) = fetch(client, slave, request::GET_ALL_DELAY_OFFSET).await {
        if let Ok(w) = crate::json::from_slice_lenient::<DelayOffsets>(&body) {
            schedule.merge_offsets(&w.offset_table);
            any = true;
        }
    }
    if let Some(body) = fetch(client, slave, request::GET_BROKER_RUNTIME_INFO).await {
        if let Ok(kv) = crate::json::from_slice_lenient::<crate::protocol::body::KvTable>(&body) {
            if let Some(ms) = kv.table.get("timerReadTimeMs").and_then(|v| v.parse::<i64>().ok()) {
                core.acting.advance_timer(ms);
            }
        }
    }
    if let Some(body) = fetch(client, slave, request::GET_ALL_CONSUMER_OFFSET).await {
        if let Ok(w) = crate::json::from_slice_lenient::<ConsumerOffsets>(&body) {
            core.meta.offsets.merge_max(w.offset_table);
            any = true;
        }
    }
    any
}

/// A master starting in acting-master mode holds its special services, takes the acting slave's
/// delivery progress, waits until the slave has seen the master back (two member-group periods,
/// bounded), takes the progress again, then releases. Without a live slave it releases at once.
pub async fn hand_back(
    core: Arc<BrokerCore>,
    schedule: Arc<ScheduleService>,
    client: RemotingClient,
    namesrvs: NamesrvList,
    cancel: CancellationToken,
) {
    let cfg = core.config();
    let list = namesrvs.load_full();
    let timeout = Duration::from_millis(cfg.send_heartbeat_timeout_millis.max(1000));
    let group = member_group(&client, &list, &cfg.broker_cluster_name, &cfg.broker_name, timeout).await;
    let slave = group.and_then(|g| g.broker_addrs.into_iter().find(|(id, _)| *id > 0).map(|(_, a)| a));
    if let Some(slave) = slave {
        if take_back_from(&core, &schedule, &client, &slave).await {
            info!(slave = %slave, "taking duties back from the acting master");
            let wait = Duration::from_millis(cfg.sync_broker_member_group_period.saturating_mul(2) + 500)
                .min(MAX_HANDBACK_WAIT);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            take_back_from(&core, &schedule, &client, &slave).await;
        }
    }
    schedule.persist();
    core.acting.set_holding(false);
    info!("special services running");
}

/// Logs a refused escape once per call site (kept small so callers stay readable).
pub fn log_escape_failure(what: &str, e: &EscapeError) {
    warn!(error = %e, "{what}: escape failed; will retry");
}

/// Timer delivery for a broker that may act as master: a master puts into its own store (as
/// [`super::timer::CoreSink`]), an acting master escapes to another master.
pub struct EscapeSink(pub Arc<BrokerCore>);

impl super::timer::TimerSink for EscapeSink {
    fn put(&self, msg: MessageInner) -> futures::future::BoxFuture<'_, crate::store::PutMessageStatus> {
        Box::pin(async move {
            if self.0.config().broker_role != BrokerRole::Slave {
                return super::timer::TimerSink::put(&super::timer::CoreSink(self.0.clone()), msg).await;
            }
            match escape_put(&self.0, msg).await {
                Ok(()) => crate::store::PutMessageStatus::PutOk,
                Err(e) => {
                    log_escape_failure("timer message delivery", &e);
                    crate::store::PutMessageStatus::ServiceNotAvailable
                }
            }
        })
    }
}
