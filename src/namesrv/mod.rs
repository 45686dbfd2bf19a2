//! The NameServer: route tables for brokers and clients (spec: namesrv.md).
//!
//! [`NameServer::start`] binds the NameServer's port on a shared [`RemotingServer`] (so a container can
//! embed one beside its brokers) and runs the expiry scan; [`NameServer::shutdown`] stops both.

pub mod config;
pub mod kvconfig;
pub mod processor;
pub mod route;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub use self::config::NamesrvConfig;
pub use self::kvconfig::KvConfigManager;
pub use self::processor::{NamesrvConnectionListener, NamesrvProcessor, NAMESRV_CODES};
pub use self::route::{BrokerRegistration, RegisterBrokerResult, RouteInfoManager, SharedConfig};
use crate::remoting::{ProcessorTable, RemotingError, RemotingServer, SubServer};

/// Why a NameServer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NamesrvError {
    /// The KV config file cannot be loaded.
    #[error("KV config: {0}")]
    KvConfig(#[from] std::io::Error),
    /// The port cannot be bound.
    #[error(transparent)]
    Remoting(#[from] RemotingError),
}

/// A running NameServer.
pub struct NameServer {
    config: SharedConfig,
    routes: Arc<RouteInfoManager>,
    kv: Arc<KvConfigManager>,
    sub: Option<SubServer>,
    cancel: CancellationToken,
    scan: Option<JoinHandle<()>>,
}

impl NameServer {
    /// Loads the KV config, binds `config.listenPort` (0 = any free port) on `server` and starts the
    /// scan that drops brokers whose heartbeat timed out.
    pub async fn start(config: NamesrvConfig, server: &RemotingServer) -> Result<NameServer, NamesrvError> {
        let kv = Arc::new(KvConfigManager::load(&config.kv_config_file())?);
        let port = config.listen_port;
        let scan_interval = Duration::from_millis(config.scan_not_active_broker_interval.max(1));
        let config: SharedConfig = Arc::new(RwLock::new(config));
        let routes = Arc::new(RouteInfoManager::new(config.clone()));
        let ctx = Arc::new(processor::NamesrvContext {
            config: config.clone(),
            routes: routes.clone(),
            kv: kv.clone(),
            started: Instant::now(),
        });
        let mut table = ProcessorTable::new();
        table.register_all(NAMESRV_CODES, Arc::new(NamesrvProcessor::new(ctx)));
        let listener = Arc::new(NamesrvConnectionListener { routes: routes.clone() });
        let sub = server.bind(port, table, Some(listener)).await?;
        let cancel = CancellationToken::new();
        let scan = tokio::spawn(scan_loop(routes.clone(), scan_interval, cancel.clone()));
        info!(port = sub.port(), kv_config = %kv.path().display(), "NameServer started");
        Ok(NameServer { config, routes, kv, sub: Some(sub), cancel, scan: Some(scan) })
    }

    /// The port the NameServer listens on.
    pub fn port(&self) -> u16 {
        self.sub.as_ref().map_or(0, SubServer::port)
    }

    /// A snapshot of the current config.
    pub fn config(&self) -> NamesrvConfig {
        self.config.read().clone()
    }

    /// The route tables.
    pub fn routes(&self) -> &Arc<RouteInfoManager> {
        &self.routes
    }

    /// The KV config store.
    pub fn kv_config(&self) -> &Arc<KvConfigManager> {
        &self.kv
    }

    /// Stops the expiry scan (and waits for it) and closes the port.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(scan) = self.scan.take() {
            let _ = scan.await;
        }
        let port = self.port();
        if let Some(sub) = self.sub.take() {
            sub.close().await;
        }
        info!(port, "NameServer shut down");
    }
}

impl Drop for NameServer {
    /// A NameServer dropped without [`NameServer::shutdown`] still stops its scan task (its port stays
    /// bound until the shared server shuts down).
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn scan_loop(routes: Arc<RouteInfoManager>, interval: Duration, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        let n = routes.scan_not_active_brokers();
        if n > 0 {
            debug!(expired = n, "expiry scan dropped brokers");
        }
    }
}
