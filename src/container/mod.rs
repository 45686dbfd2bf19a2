//! The BrokerContainer: many brokers in one process behind one shared transport (RIP-31).
//!
//! The container owns the shared [`RemotingServer`], its own admin port (`listenPort` and
//! `listenPort - 2`), and the brokers it hosts.

pub mod config;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use tracing::info;

use crate::broker::config::BrokerIdentity;
pub use crate::broker::config::{load_broker_config, load_broker_config_with_overlay, BrokerPlan};
use crate::broker::register::NamesrvList;
use crate::broker::{Broker, BrokerEnv};
use crate::client::parse_namesrv_list;
use crate::config::{to_properties_text, ConfigError};
use crate::logging::LogRouter;
use crate::protocol::codes::{request, response};
use crate::remoting::RemotingClient;
use crate::remoting::{
    BoxFuture, ConnectionHandle, ProcessorTable, RemotingCommand, RemotingServer, RequestProcessor, ServerConfig,
    SubServer,
};
use config::{ContainerConfig, LoadedContainerConfig};

/// Errors of the container layer.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// A config file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A port could not be bound, or another transport failure.
    #[error(transparent)]
    Remoting(#[from] crate::remoting::RemotingError),
    /// The embedded NameServer did not start.
    #[error("embedded NameServer: {0}")]
    Namesrv(#[source] crate::namesrv::NamesrvError),
    /// The metrics endpoint could not be bound.
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The container's user store could not be opened.
    #[error("container access control: {0}")]
    Auth(#[source] crate::auth::AuthError),
    /// A broker listed in the config did not start.
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    /// The TLS certificate, key or trust files cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] crate::remoting::tls::TlsError),
}

struct Shared {
    config: ArcSwap<ContainerConfig>,
    loaded: LoadedContainerConfig,
    version: parking_lot::Mutex<crate::protocol::body::DataVersion>,
    env: BrokerEnv,
    /// Hosted brokers with the config path each came from. A tokio mutex: adds and removes are
    /// serialized (Apache's `synchronized`), and a broker's start or stop is awaited under it.
    brokers: tokio::sync::Mutex<Vec<(String, Broker)>>,
    paths_from_cli: bool,
    router: Option<LogRouter>,
    /// The admin port's access control (when the container keeps a user store).
    guard: Option<Arc<crate::auth::AuthGuard>>,
    /// Brokers added / removed at runtime since start.
    added: std::sync::atomic::AtomicU64,
    removed: std::sync::atomic::AtomicU64,
}

/// A running container.
pub struct BrokerContainer {
    shared: Arc<Shared>,
    ports: Vec<SubServer>,
    namesrv: Option<crate::namesrv::NameServer>,
    metrics: Option<crate::metrics::http::MetricsServer>,
}

impl BrokerContainer {
    /// Binds the container's ports on a new shared transport, starts the embedded NameServer if
    /// configured, then starts every broker listed. Any error stops what was started and is returned.
    pub async fn start(
        loaded: LoadedContainerConfig,
        paths_from_cli: bool,
        router: Option<LogRouter>,
    ) -> Result<Self, ContainerError> {
        let c = loaded.config.clone();
        let bind: IpAddr = c.bind_address.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        // The certificate files are read on the blocking pool.
        let tls = loaded.tls.clone();
        let (tls_server, tls_client) = tokio::task::spawn_blocking(move || (tls.server(), tls.client()))
            .await
            .map_err(|e| crate::remoting::tls::TlsError::Invalid(format!("TLS set-up task failed: {e}")))?;
        let client = RemotingClient::new(crate::remoting::ClientConfig { tls: tls_client?, ..Default::default() });
        let tls_server = tls_server?;
        let server = RemotingServer::new(ServerConfig {
            bind_address: bind,
            max_connections: c.server_max_connections,
            max_connections_per_address: c.server_max_connections_per_address,
            channel_max_idle: std::time::Duration::from_secs(c.server_channel_max_idle_time_seconds),
            frame_read_timeout: std::time::Duration::from_millis(c.server_frame_read_timeout_millis),
            max_inflight_per_connection: c.server_max_inflight_per_connection,
            tls: tls_server,
            ..Default::default()
        });
        let mut planned = Vec::new();
        for p in &loaded.broker_paths {
            planned.push(load_broker_config_with_overlay(p, loaded.runtime_dir.as_deref())?);
        }
        let namesrvs: NamesrvList =
            Arc::new(ArcSwap::from_pointee(parse_namesrv_list(c.namesrv_addr.as_deref().unwrap_or(""))));
        let guard = match &loaded.auth {
            Some(settings) => {
                let s2 = settings.clone();
                let opened = tokio::task::spawn_blocking(move || -> Result<_, crate::auth::AuthError> {
                    let store = crate::auth::store::AuthStore::open(&s2.dir)?;
                    if let Some(u) = &s2.init_user {
                        store.create_user_if_absent(u.clone())?;
                    }
                    Ok(store)
                })
                .await
                .map_err(|e| ContainerError::Auth(crate::auth::AuthError::Other(e.to_string())))?
                .map_err(ContainerError::Auth)?;
                info!(
                    authentication = settings.authentication,
                    store = %opened.dir().display(),
                    "container user store opened"
                );
                Some(Arc::new(crate::auth::AuthGuard::new(settings.clone(), Arc::new(opened), "")))
            }
            None => None,
        };
        let env = BrokerEnv {
            server: server.clone(),
            client,
            namesrvs,
            auth_store: guard.as_ref().map(|g| g.store().clone()),
            priority: crate::broker::priority::PriorityBoard::new(),
        };
        let shared = Arc::new(Shared {
            config: ArcSwap::from_pointee(c.clone()),
            loaded: loaded.clone(),
            version: parking_lot::Mutex::new(crate::protocol::body::DataVersion::new()),
            env,
            brokers: tokio::sync::Mutex::new(Vec::new()),
            paths_from_cli,
            router,
            guard,
            added: Default::default(),
            removed: Default::default(),
        });
        // Held from before the admin port opens until every listed broker has started: an
        // ADD_BROKER / REMOVE_BROKER that arrives meanwhile waits for them (it would otherwise
        // persist a list without them, and a restart would not host them).
        let starting = shared.clone();
        let mut hosted = starting.brokers.lock().await;
        let processor: Arc<dyn RequestProcessor> = Arc::new(ContainerProcessor { shared: shared.clone() });
        let mut table = ProcessorTable::new();
        table.set_default(processor);
        let main = server.bind(c.listen_port, table.clone(), None).await?;
        let fast = match server.bind(c.listen_port - 2, table, None).await {
            Ok(f) => f,
            Err(e) => {
                main.close().await;
                return Err(e.into());
            }
        };
        info!(port = c.listen_port, fast_port = c.listen_port - 2, "broker container admin ports bound");
        let mut container = BrokerContainer { shared, ports: vec![main, fast], namesrv: None, metrics: None };
        if let Some(addr) = c.metrics_addr() {
            let shared = container.shared.clone();
            let render: crate::metrics::http::Render = Arc::new(move || {
                let shared = shared.clone();
                Box::pin(async move { crate::metrics::encode(shared.metrics_sample().await) })
            });
            match crate::metrics::http::MetricsServer::start(addr, render).await {
                Ok(m) => container.metrics = Some(m),
                Err(e) => {
                    drop(hosted);
                    container.shutdown().await;
                    return Err(ContainerError::Metrics { addr, source: e });
                }
            }
        }
        if c.embedded_namesrv_enable {
            let mut ns =
                crate::namesrv::config::NamesrvConfig { listen_port: c.embedded_namesrv_port, ..Default::default() };
            ns.kv_config_path =
                crate::config::home_dir().join("namesrv").join("kvConfig.json").to_string_lossy().into_owned();
            match crate::namesrv::NameServer::start(ns, &server).await {
                Ok(n) => {
                    info!(port = n.port(), "embedded NameServer started");
                    container.namesrv = Some(n);
                }
                Err(e) => {
                    drop(hosted);
                    container.shutdown().await;
                    return Err(ContainerError::Namesrv(e));
                }
            }
        }
        // Brokers listed in the file are written back as they were listed (relative to the file).
        let listed: Vec<String> = c
            .broker_config_paths
            .as_deref()
            .unwrap_or("")
            .split(':')
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.trim().to_string())
            .collect();
        for (i, plan) in planned.into_iter().enumerate() {
            let path = listed.get(i).cloned().unwrap_or_else(|| plan.path.display().to_string());
            match Broker::start(plan, container.shared.env.clone()).await {
                Ok(b) => hosted.push((path, b)),
                Err(e) => {
                    drop(hosted);
                    container.shutdown().await;
                    return Err(ContainerError::Broker(e));
                }
            }
        }
        drop(hosted);
        Ok(container)
    }

    /// The shared transport.
    pub fn server(&self) -> &RemotingServer {
        &self.shared.env.server
    }

    /// The container's address, `brokerContainerIP:listenPort`.
    pub fn addr(&self) -> String {
        let c = self.shared.config.load();
        format!("{}:{}", c.broker_container_ip, c.listen_port)
    }

    /// Identity, address and config path of every hosted broker.
    pub async fn hosted(&self) -> Vec<(String, String, String)> {
        self.shared
            .brokers
            .lock()
            .await
            .iter()
            .map(|(p, b)| (b.identity().to_string(), b.plan().config.broker_addr(), p.clone()))
            .collect()
    }

    /// The config as it is now.
    pub fn config(&self) -> Arc<ContainerConfig> {
        self.shared.config.load_full()
    }

    /// The port of the embedded NameServer, if one runs.
    pub fn embedded_namesrv_port(&self) -> Option<u16> {
        self.namesrv.as_ref().map(|n| n.port())
    }

    /// The metrics endpoint's address, if one is served.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(|m| m.addr())
    }

    /// Stops every broker (gracefully), the embedded NameServer, and every port.
    pub async fn shutdown(self) {
        if let Some(m) = self.metrics {
            m.shutdown().await;
        }
        let brokers: Vec<(String, Broker)> = std::mem::take(&mut *self.shared.brokers.lock().await);
        for (_, b) in brokers {
            let id = b.identity().to_string();
            b.shutdown().await;
            if let Some(r) = &self.shared.router {
                r.close(&id);
            }
        }
        if let Some(ns) = self.namesrv {
            ns.shutdown().await;
        }
        for p in self.ports {
            p.close().await;
        }
        self.shared.env.client.shutdown().await;
        self.shared.env.server.shutdown().await;
        info!("broker container shut down");
    }
}

impl Shared {
    /// A metrics scrape: the container's figures and every hosted broker's sample.
    async fn metrics_sample(&self) -> crate::metrics::ContainerSample {
        use std::sync::atomic::Ordering::Relaxed;
        let brokers = self.brokers.lock().await;
        crate::metrics::ContainerSample {
            brokers: brokers.len() as i64,
            added: self.added.load(Relaxed),
            removed: self.removed.load(Relaxed),
            samples: brokers.iter().map(|(_, b)| b.metrics_sample()).collect(),
        }
    }
}

/// Answers the container port: GET_BROKER_CONFIG / UPDATE_BROKER_CONFIG act on the container's own config.
struct ContainerProcessor {
    shared: Arc<Shared>,
}

impl RequestProcessor for ContainerProcessor {
    fn process<'a>(
        &'a self,
        _conn: &'a ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move {
            if let Some(refusal) = self.refuse_unless_admin(_conn, &req) {
                return Some(refusal);
            }
            if crate::auth::admin::AUTH_ADMIN_CODES.contains(&req.code) {
                if let Some(g) = &self.shared.guard {
                    return crate::auth::admin::AuthAdminProcessor::new(g.clone()).process(_conn, req).await;
                }
            }
            Some(match req.code {
                request::ADD_BROKER => match self.add_broker(&req).await {
                    Ok(()) => RemotingCommand::success(&req),
                    Err((code, remark)) => RemotingCommand::error(&req, code, remark),
                },
                request::REMOVE_BROKER => match self.remove_broker(&req).await {
                    Ok(()) => RemotingCommand::success(&req),
                    Err((code, remark)) => RemotingCommand::error(&req, code, remark),
                },
                request::GET_BROKER_CONFIG => self.get_config(&req),
                request::UPDATE_BROKER_CONFIG => self.update_config(&req),
                other => RemotingCommand::error(
                    &req,
                    response::REQUEST_CODE_NOT_SUPPORTED,
                    format!(" request type {other} not supported"),
                ),
            })
        })
    }
}

impl ContainerProcessor {
    /// With `authenticationEnabled` in the container config, the requests that change the
    /// container (ADD_BROKER, REMOVE_BROKER, UPDATE_BROKER_CONFIG, and the user/ACL writes) must
    /// be signed by an enabled Super user; others are refused with NO_PERMISSION and an audit line.
    fn refuse_unless_admin(&self, conn: &ConnectionHandle, req: &RemotingCommand) -> Option<RemotingCommand> {
        let guard = self.shared.guard.as_ref()?;
        if !guard.settings().authentication {
            return None;
        }
        let protected =
            matches!(req.code, request::ADD_BROKER | request::REMOVE_BROKER | request::UPDATE_BROKER_CONFIG)
                || crate::auth::admin::AUTH_ADMIN_CODES.contains(&req.code);
        if !protected {
            return None;
        }
        match guard.is_super_request(req) {
            Ok(_) => None,
            Err(e) => {
                let ak = req.ext_fields.get(crate::auth::signature::ACCESS_KEY).map(|s| s.escape_default().to_string());
                tracing::warn!(
                    target: "audit",
                    "[AUTHENTICATION] container admin request code={} from {} refused, User:{} : {e}",
                    req.code,
                    conn.peer(),
                    ak.as_deref().map(|s| s.get(..64).unwrap_or(s)).unwrap_or("")
                );
                Some(RemotingCommand::error(req, response::NO_PERMISSION, e.to_string()))
            }
        }
    }

    async fn add_broker(&self, req: &RemotingCommand) -> Result<(), (i32, String)> {
        let h: AddBrokerRequestHeader = req.decode_header().map_err(|e| (response::SYSTEM_ERROR, e.to_string()))?;
        let raw = h.config_path.unwrap_or_default();
        if raw.trim().is_empty() {
            return Err((response::SYSTEM_ERROR, "addBroker config path is empty".into()));
        }
        let path = self.allowed_path(raw.trim())?;
        let plan = load_broker_config_with_overlay(&path, self.shared.loaded.runtime_dir.as_deref())
            .map_err(|e| (response::SYSTEM_ERROR, format!("addBroker: {e}")))?;
        let identity = plan.config.identity();
        let mut brokers = self.shared.brokers.lock().await;
        if brokers.iter().any(|(_, b)| *b.identity() == identity) {
            return Err((
                response::SYSTEM_ERROR,
                format!("{identity} has already been added to current broker container"),
            ));
        }
        let log_dir_created = self
            .shared
            .router
            .as_ref()
            .and_then(|r| crate::util::first_missing_ancestor(&r.dir_of(&identity.to_string())));
        let broker = match Broker::start(plan, self.shared.env.clone()).await {
            Ok(b) => b,
            Err(e) => {
                // Nothing of a failed broker stays: no open file, and no log folder it created.
                tracing::warn!(broker = %identity, error = %e, "addBroker failed");
                if let Some(r) = &self.shared.router {
                    r.close(&identity.to_string());
                }
                crate::util::remove_created_dirs(log_dir_created.as_slice());
                return Err((response::SYSTEM_ERROR, format!("start broker failed: {e}")));
            }
        };
        info!(broker = %identity, path = %path.display(), ports = ?broker.ports(), "broker added");
        self.shared.added.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        brokers.push((path.display().to_string(), broker));
        let paths: Vec<String> = brokers.iter().map(|(p, _)| p.clone()).collect();
        drop(brokers);
        self.persist_paths(&paths);
        Ok(())
    }

    async fn remove_broker(&self, req: &RemotingCommand) -> Result<(), (i32, String)> {
        let h: RemoveBrokerRequestHeader = req.decode_header().map_err(|e| (response::SYSTEM_ERROR, e.to_string()))?;
        let identity = BrokerIdentity { cluster: h.broker_cluster_name, name: h.broker_name, id: h.broker_id };
        let drain = req.ext("drain") == Some("true");
        let drain_timeout = req.ext("drainTimeoutMillis").and_then(|v| v.parse::<u64>().ok()).unwrap_or(30_000);
        let mut brokers = self.shared.brokers.lock().await;
        let Some(pos) = brokers.iter().position(|(_, b)| *b.identity() == identity) else {
            return Err((response::BROKER_NOT_EXIST, format!("Broker not exist: {identity}")));
        };
        if drain {
            let core = brokers[pos].1.core().clone();
            core.set_read_only(true);
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(drain_timeout);
            loop {
                let behind = core.consumer_lag();
                if behind.is_empty() {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    let summary: Vec<String> =
                        behind.iter().take(5).map(|(g, n)| format!("{g} behind by {n}")).collect();
                    return Err((
                        response::SYSTEM_ERROR,
                        format!(
                            "drain of {identity} timed out after {drain_timeout} ms ({}); the broker stays hosted and read-only",
                            summary.join(", ")
                        ),
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        let (_, broker) = brokers.remove(pos);
        broker.shutdown().await;
        if let Some(r) = &self.shared.router {
            r.close(&identity.to_string());
        }
        info!(broker = %identity, "broker removed");
        self.shared.removed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let paths: Vec<String> = brokers.iter().map(|(p, _)| p.clone()).collect();
        drop(brokers);
        self.persist_paths(&paths);
        Ok(())
    }

    /// A broker config path must resolve inside `brokerConfigDirs`.
    fn allowed_path(&self, raw: &str) -> Result<PathBuf, (i32, String)> {
        let p = std::path::Path::new(raw);
        let abs = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(p) };
        let canonical = abs.canonicalize().map_err(|e| {
            (response::SYSTEM_ERROR, format!("addBroker cannot read config file {}: {e}", abs.display()))
        })?;
        let configured = &self.shared.loaded.allowed_dirs;
        let allowed: Vec<PathBuf> = configured.iter().filter_map(|d| d.canonicalize().ok()).collect();
        if !allowed.iter().any(|d| canonical.starts_with(d)) {
            let dirs: Vec<String> = configured.iter().map(|d| d.display().to_string()).collect();
            return Err((
                response::NO_PERMISSION,
                format!(
                    "config path {} is outside the directories this container reads broker configs from (brokerConfigDirs: {})",
                    canonical.display(),
                    dirs.join(":")
                ),
            ));
        }
        Ok(canonical)
    }

    /// Rewrites `brokerConfigPaths` in the container's file so a restart hosts the same brokers.
    fn persist_paths(&self, paths: &[String]) {
        if self.shared.paths_from_cli {
            return;
        }
        let Some(file) = self.shared.loaded.persist_file() else { return };
        let value = paths.join(":");
        if let Err(e) = crate::config::update_properties_file(&file, &[("brokerConfigPaths".to_string(), value)]) {
            tracing::warn!(error = %e, file = %file.display(), "cannot persist brokerConfigPaths");
        }
    }

    fn get_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let c = self.shared.config.load();
        let body = to_properties_text(&self.shared.loaded.shown_entries(&c));
        let version = self.shared.version.lock().to_json();
        RemotingCommand::success(req).with_ext("version", version).with_body(Bytes::from(body))
    }

    /// UPDATE_BROKER_CONFIG on the container. Only [`config::LIVE_KEYS`] (applied at once) and
    /// [`config::RESTART_KEYS`] (written, applied after a restart; the answer says so) may change:
    /// every other key decides where files are read or written, which ports are bound or who may
    /// connect, and is refused, as is anything in `configBlackList`.
    fn update_config(&self, req: &RemotingCommand) -> RemotingCommand {
        use config::{LIVE_KEYS, RESTART_KEYS};
        let current = self.shared.config.load_full();
        let black: Vec<&str> = ContainerConfig::KEYS
            .iter()
            .copied()
            .filter(|k| !LIVE_KEYS.contains(k) && !RESTART_KEYS.contains(k))
            .chain(current.config_black_list.split(';').map(str::trim))
            .filter(|k| !k.is_empty())
            .collect();
        let persist = self.shared.loaded.persist_file();
        let validate = |c: &ContainerConfig| c.validate();
        match crate::config::apply_runtime_update(&*current, &req.body, &black, &[], &validate, persist.as_deref()) {
            Ok((next, keys)) => {
                if next.namesrv_addr != current.namesrv_addr {
                    let list = parse_namesrv_list(next.namesrv_addr.as_deref().unwrap_or(""));
                    self.shared.env.namesrvs.store(Arc::new(list));
                }
                self.shared.config.store(Arc::new(next));
                self.shared.version.lock().next();
                let later: Vec<&str> = keys.iter().map(String::as_str).filter(|k| RESTART_KEYS.contains(k)).collect();
                info!(?keys, "container config updated");
                let resp = RemotingCommand::success(req);
                if later.is_empty() {
                    resp
                } else {
                    resp.with_remark(format!("applies after a restart: {}", later.join(", ")))
                }
            }
            Err(r) => crate::broker::admin::update_refused(req, r),
        }
    }
}

crate::command_header! {
    /// ADD_BROKER (902) request header.
    pub struct AddBrokerRequestHeader {
        opt config_path: String = "configPath",
    }
}

crate::command_header! {
    /// REMOVE_BROKER (903) request header.
    pub struct RemoveBrokerRequestHeader {
        req broker_name: String = "brokerName",
        req broker_cluster_name: String = "brokerClusterName",
        req broker_id: i64 = "brokerId",
    }
}
