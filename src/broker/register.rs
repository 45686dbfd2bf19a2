//! Registration with the NameServers (Apache's `BrokerOuterAPI`): with every NameServer in
//! parallel, at start, every `registerNameServerPeriod`, at once when topics change, and an
//! unregister at shutdown.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tracing::{debug, info, warn};

use super::core::BrokerCore;
use crate::protocol::body::RegisterBrokerBody;
use crate::protocol::codes::{request, response};
use crate::protocol::header::{
    RegisterBrokerRequestHeader, RegisterBrokerResponseHeader, UnRegisterBrokerRequestHeader,
};
use crate::remoting::command::CURRENT_VERSION;
use crate::remoting::{RemotingClient, RemotingCommand};

/// The NameServer list a broker registers with; the container shares one among its brokers.
pub type NamesrvList = Arc<ArcSwap<Vec<String>>>;

/// What a NameServer answered a registration (slaves learn their master from it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterResult {
    /// The master's address (for slaves).
    pub master_addr: Option<String>,
    /// The master's HA address (for slaves).
    pub ha_server_addr: Option<String>,
}

fn body(core: &BrokerCore) -> RegisterBrokerBody {
    RegisterBrokerBody { filter_server_list: Vec::new(), topic_config_serialize_wrapper: core.meta.topics.snapshot() }
}

/// Registers with every NameServer in parallel; returns what each accepted (errors are logged).
pub async fn register_all(core: &BrokerCore, client: &RemotingClient, namesrvs: &[String]) -> Vec<RegisterResult> {
    let cfg = core.config();
    let b = body(core);
    let compressed = cfg.compressed_register;
    let bytes = b.encode(compressed, CURRENT_VERSION);
    let crc = (crc32fast::hash(&bytes) & 0x7FFF_FFFF) as i32;
    let header = RegisterBrokerRequestHeader {
        broker_name: cfg.broker_name.clone(),
        broker_addr: cfg.broker_addr(),
        cluster_name: cfg.broker_cluster_name.clone(),
        ha_server_addr: format!("{}:{}", cfg.broker_ip2, cfg.ha_listen_port),
        broker_id: cfg.broker_id,
        // Only in acting-master mode (else the NameServer's 120 s), as Apache.
        heartbeat_timeout_millis: cfg
            .enable_slave_acting_master
            .then_some(cfg.broker_not_active_timeout_millis.min(i64::MAX as u64) as i64),
        enable_acting_master: Some(cfg.enable_slave_acting_master),
        compressed: Some(compressed),
        body_crc32: Some(crc),
    };
    let timeout = Duration::from_millis(cfg.register_broker_timeout_mills);
    let calls = namesrvs.iter().map(|addr| {
        let req =
            core.sign(RemotingCommand::request_with_header(request::REGISTER_BROKER, &header).with_body(bytes.clone()));
        async move { (addr, client.invoke(addr, req, timeout).await) }
    });
    let mut out = Vec::new();
    for (addr, r) in futures::future::join_all(calls).await {
        match r {
            Ok(resp) if resp.code == response::SUCCESS => {
                let h: RegisterBrokerResponseHeader = resp.decode_header().unwrap_or_default();
                debug!(namesrv = %addr, "registered");
                out.push(RegisterResult {
                    master_addr: h.master_addr.filter(|s| !s.is_empty()),
                    ha_server_addr: h.ha_server_addr.filter(|s| !s.is_empty()),
                });
            }
            Ok(resp) => warn!(namesrv = %addr, code = resp.code, remark = ?resp.remark, "registration refused"),
            Err(e) => warn!(namesrv = %addr, error = %e, "registration failed"),
        }
    }
    out
}

/// Unregisters from every NameServer (best effort, bounded by the registration timeout).
pub async fn unregister_all(core: &BrokerCore, client: &RemotingClient, namesrvs: &[String]) {
    let cfg = core.config();
    if cfg.broker_id < 0 {
        // A DLedger broker that never registered.
        return;
    }
    let header = UnRegisterBrokerRequestHeader {
        broker_name: cfg.broker_name.clone(),
        broker_addr: cfg.broker_addr(),
        cluster_name: cfg.broker_cluster_name.clone(),
        broker_id: cfg.broker_id,
    };
    let timeout = Duration::from_millis(cfg.register_broker_timeout_mills.min(5000));
    let calls = namesrvs.iter().map(|addr| {
        let req = core.sign(RemotingCommand::request_with_header(request::UNREGISTER_BROKER, &header));
        async move { (addr, client.invoke(addr, req, timeout).await) }
    });
    for (addr, r) in futures::future::join_all(calls).await {
        match r {
            Ok(resp) if resp.code == response::SUCCESS => info!(namesrv = %addr, "unregistered"),
            Ok(resp) => warn!(namesrv = %addr, code = resp.code, "unregister refused"),
            Err(e) => warn!(namesrv = %addr, error = %e, "unregister failed"),
        }
    }
}

/// The registration loop: every period (clamped to 10..60 s) and whenever topics change.
/// `changes` is taken by the caller before the broker's first registration, so that a topic
/// created between that registration and this task's first poll still wakes it.
pub async fn registration_loop(
    core: Arc<BrokerCore>,
    client: RemotingClient,
    namesrvs: NamesrvList,
    mut changes: tokio::sync::watch::Receiver<crate::protocol::body::DataVersion>,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        let cfg = core.config();
        let mut period = cfg.register_name_server_period.clamp(10_000, 60_000);
        if cfg.broker_role == super::config::BrokerRole::Slave && core.ha.slave.ha_master_addr().is_none() {
            // A slave that does not know its master yet asks again soon.
            period = 2_000;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(period)) => {}
            r = changes.changed() => if r.is_err() { break },
            _ = core.wake_registration.notified() => {}
        }
        if cancel.is_cancelled() {
            break;
        }
        if core.config().broker_id < 0 {
            // A DLedger broker whose role is not known yet.
            continue;
        }
        let list = namesrvs.load_full();
        let results = register_all(&core, &client, &list).await;
        core.ha.slave.on_register(results.iter().map(|r| (r.master_addr.as_deref(), r.ha_server_addr.as_deref())));
    }
}
