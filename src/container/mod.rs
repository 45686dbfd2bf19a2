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

use crate::broker::config::{BrokerConfig, CleanupConfig};
use crate::config::{to_properties_text, ConfigError, Configurable, RawConfig};
use crate::remoting::codes::{request, response};
use crate::remoting::{
    BoxFuture, ConnectionHandle, ProcessorTable, RemotingCommand, RemotingServer, RequestProcessor, ServerConfig,
    SubServer,
};
use crate::store::config::MessageStoreConfig;
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
    Namesrv(String),
}

/// A broker config read and validated, not yet started.
#[derive(Debug, Clone)]
pub struct BrokerPlan {
    /// The file it came from.
    pub path: PathBuf,
    /// The validated values.
    pub config: BrokerConfig,
    /// The store's values.
    pub store: MessageStoreConfig,
    /// Cleanup and quota values.
    pub cleanup: CleanupConfig,
    /// Unknown keys and forced values.
    pub notes: Vec<String>,
}

/// Reads and validates one broker config file.
pub fn load_broker_config(path: &std::path::Path) -> Result<BrokerPlan, ConfigError> {
    let raw = RawConfig::load(path)?;
    if raw.entries.is_empty() {
        return Err(ConfigError::Invalid { path: path.to_path_buf(), reason: "the file has no properties".into() });
    }
    let mut config = BrokerConfig::default();
    let mut store = MessageStoreConfig::default();
    let mut cleanup = CleanupConfig::default();
    let mut notes = raw.apply(&mut [&mut config as &mut dyn Configurable, &mut store, &mut cleanup])?;
    notes.extend(config.validate(path)?);
    validate_store(path, &store, &cleanup)?;
    Ok(BrokerPlan { path: path.to_path_buf(), config, store, cleanup, notes })
}

fn validate_store(path: &std::path::Path, s: &MessageStoreConfig, c: &CleanupConfig) -> Result<(), ConfigError> {
    let invalid = |reason: String| Err(ConfigError::Invalid { path: path.to_path_buf(), reason });
    if s.mapped_file_size_commit_log < 4096 {
        return invalid(format!("mappedFileSizeCommitLog {} is below 4096 bytes", s.mapped_file_size_commit_log));
    }
    if s.max_message_size == 0 || s.max_message_size as u64 + 65_536 > s.mapped_file_size_commit_log {
        return invalid(format!(
            "maxMessageSize {} must be > 0 and leave room in a commitlog file of {} bytes",
            s.max_message_size, s.mapped_file_size_commit_log
        ));
    }
    if s.delay_levels_ms().len() != s.message_delay_level.split_whitespace().count() {
        return invalid(format!(
            "messageDelayLevel '{}': each level is a number with s, m, h or d",
            s.message_delay_level
        ));
    }
    if let Some(q) = c.quota_percent_for_disk_partition {
        if !(q > 0.0 && q <= 1.0) {
            return invalid(format!("quotaPercentForDiskPartition {q} must be in (0, 1]"));
        }
    }
    if c.replicas_per_disk_partition == 0 {
        return invalid("replicasPerDiskPartition must be >= 1".into());
    }
    for h in c.delete_when.split(';').filter(|h| !h.trim().is_empty()) {
        if !h.trim().parse::<u32>().is_ok_and(|h| h < 24) {
            return invalid(format!("deleteWhen entry '{h}' must be an hour 00-23"));
        }
    }
    Ok(())
}

struct Shared {
    config: ArcSwap<ContainerConfig>,
    loaded: LoadedContainerConfig,
    version: parking_lot::Mutex<crate::util::DataVersion>,
}

/// A running container.
pub struct BrokerContainer {
    shared: Arc<Shared>,
    server: RemotingServer,
    ports: Vec<SubServer>,
    planned: Vec<BrokerPlan>,
    namesrv: Option<crate::namesrv::NameServer>,
}

impl BrokerContainer {
    /// Binds the container's ports on a new shared transport and reads every broker config listed.
    /// Any error (port in use, bad file) is returned before anything is left running.
    pub async fn start(loaded: LoadedContainerConfig) -> Result<Self, ContainerError> {
        let c = loaded.config.clone();
        let bind: IpAddr = c.bind_address.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let server = RemotingServer::new(ServerConfig {
            bind_address: bind,
            max_connections: c.server_max_connections,
            max_inflight_per_connection: c.server_max_inflight_per_connection,
            ..Default::default()
        });
        let mut planned = Vec::new();
        for p in &loaded.broker_paths {
            planned.push(load_broker_config(p)?);
        }
        let shared = Arc::new(Shared {
            config: ArcSwap::from_pointee(c.clone()),
            loaded: loaded.clone(),
            version: parking_lot::Mutex::new(crate::util::DataVersion::new()),
        });
        let processor: Arc<dyn RequestProcessor> = Arc::new(ContainerProcessor { shared: shared.clone() });
        let mut table = ProcessorTable::new();
        table.register_all(&[request::GET_BROKER_CONFIG, request::UPDATE_BROKER_CONFIG], processor);
        let main = server.bind(c.listen_port, table.clone(), None).await?;
        let fast = match server.bind(c.listen_port - 2, table, None).await {
            Ok(f) => f,
            Err(e) => {
                main.close().await;
                return Err(e.into());
            }
        };
        info!(port = c.listen_port, fast_port = c.listen_port - 2, "broker container admin ports bound");
        let mut container = BrokerContainer { shared, server, ports: vec![main, fast], planned, namesrv: None };
        if c.embedded_namesrv_enable {
            let mut ns =
                crate::namesrv::config::NamesrvConfig { listen_port: c.embedded_namesrv_port, ..Default::default() };
            ns.kv_config_path =
                crate::config::home_dir().join("namesrv").join("kvConfig.json").to_string_lossy().into_owned();
            match crate::namesrv::NameServer::start(ns, &container.server).await {
                Ok(n) => {
                    info!(port = n.port(), "embedded NameServer started");
                    container.namesrv = Some(n);
                }
                Err(e) => {
                    container.shutdown().await;
                    return Err(ContainerError::Namesrv(e.to_string()));
                }
            }
        }
        Ok(container)
    }

    /// The shared transport (brokers and an embedded NameServer bind their ports on it).
    pub fn server(&self) -> &RemotingServer {
        &self.server
    }

    /// The container's address, `brokerContainerIP:listenPort`.
    pub fn addr(&self) -> String {
        let c = self.shared.config.load();
        format!("{}:{}", c.broker_container_ip, c.listen_port)
    }

    /// The broker configs read at start.
    pub fn planned(&self) -> &[BrokerPlan] {
        &self.planned
    }

    /// The config as it is now.
    pub fn config(&self) -> Arc<ContainerConfig> {
        self.shared.config.load_full()
    }

    /// The port of the embedded NameServer, if one runs.
    pub fn embedded_namesrv_port(&self) -> Option<u16> {
        self.namesrv.as_ref().map(|n| n.port())
    }

    /// Closes every port.
    pub async fn shutdown(self) {
        if let Some(ns) = self.namesrv {
            ns.shutdown().await;
        }
        for p in self.ports {
            p.close().await;
        }
        self.server.shutdown().await;
        info!("broker container shut down");
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
            Some(match req.code {
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
    fn get_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let c = self.shared.config.load();
        let body = to_properties_text(&c.entries());
        let version = self.shared.version.lock().to_json();
        RemotingCommand::success(req).with_ext("version", version).with_body(Bytes::from(body))
    }

    fn update_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let text = match std::str::from_utf8(&req.body) {
            Ok(t) => t,
            Err(_) => {
                return RemotingCommand::error(
                    req,
                    response::SYSTEM_ERROR,
                    "string2Properties error: body is not UTF-8",
                )
            }
        };
        let path = self.shared.loaded.path.clone().unwrap_or_else(|| PathBuf::from("<embedded>"));
        let raw = match RawConfig::from_properties(&path, text) {
            Ok(r) => r,
            Err(e) => {
                return RemotingCommand::error(req, response::SYSTEM_ERROR, format!("string2Properties error: {e}"))
            }
        };
        let current = self.shared.config.load_full();
        let black: Vec<&str> = ["brokerConfigPaths", "rocketmqHome", "configBlackList"]
            .into_iter()
            .chain(current.config_black_list.split(';').map(str::trim))
            .filter(|k| !k.is_empty())
            .collect();
        if let Some(e) = raw.entries.iter().find(|e| black.contains(&e.key.as_str())) {
            return RemotingCommand::error(
                req,
                response::NO_PERMISSION,
                format!("Can not update config in black list. (key '{}')", e.key),
            );
        }
        let mut next = (*current).clone();
        match raw.apply(&mut [&mut next as &mut dyn Configurable]) {
            Ok(unknown) if !unknown.is_empty() => {
                return RemotingCommand::error(req, response::INVALID_PARAMETER, unknown.join("; "));
            }
            Ok(_) => {}
            Err(e) => return RemotingCommand::error(req, response::INVALID_PARAMETER, e.to_string()),
        }
        if let Some(p) = &self.shared.loaded.path {
            let updates: Vec<(String, String)> = raw.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
            if let Err(e) = crate::config::update_properties_file(p, &updates) {
                return RemotingCommand::error(
                    req,
                    response::SYSTEM_ERROR,
                    format!("cannot persist {}: {e}", p.display()),
                );
            }
        }
        self.shared.config.store(Arc::new(next));
        self.shared.version.lock().next();
        info!(keys = ?raw.entries.iter().map(|e| &e.key).collect::<Vec<_>>(), "container config updated");
        RemotingCommand::success(req)
    }
}
