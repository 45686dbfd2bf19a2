//! The container's own config (Apache's `BrokerContainerConfig` plus the network keys it shares with
//! every hosted broker, plus our additions: `brokerConfigDirs`, `logRoot`, the embedded NameServer).

use std::path::{Path, PathBuf};

use crate::config::{resolve_relative, ConfigError, Configurable, RawConfig};
use crate::config_struct;
use crate::remoting::tls::TlsConfig;

config_struct! {
    /// Container settings.
    pub struct ContainerConfig {
        /// The container's admin port; `listenPort - 2` is bound too.
        listen_port: u16 = "listenPort" => 10811,
        /// Name servers, `host:port;host:port` (default: `NAMESRV_ADDR`).
        namesrv_addr: Option<String> = "namesrvAddr" => std::env::var("NAMESRV_ADDR").ok().filter(|s| !s.is_empty()),
        /// Broker config files hosted at start, `:`-separated (relative to this file's directory).
        broker_config_paths: Option<String> = "brokerConfigPaths" => None,
        /// Directories ADD_BROKER may read broker configs from, `:`-separated (default: this file's
        /// directory and `brokers-conf/` beside it).
        broker_config_dirs: Option<String> = "brokerConfigDirs" => None,
        /// RocketMQ home (informational).
        rocketmq_home: Option<String> = "rocketmqHome" => std::env::var("ROCKETMQ_HOME").ok(),
        /// The container's address host (default 127.0.0.1).
        broker_container_ip: String = "brokerContainerIP" => crate::util::local_ip(),
        /// Fetch the NameServer list from an address server (not supported; must stay false).
        fetch_namesrv_addr_by_address_server: bool = "fetchNamesrvAddrByAddressServer" => false,
        /// Period of the NameServer address refresh, ms.
        update_namesrv_addr_interval: u64 = "updateNamesrvAddrInterval" => 120_000,
        /// Keys UPDATE_BROKER_CONFIG may not change on the container (`;`-separated).
        config_black_list: String = "configBlackList" => "configBlackList;brokerConfigPaths".into(),
        /// Root of the per-broker log directories.
        log_root: String = "logRoot" => "~/logs/rocketmqlogs".into(),
        /// Start a NameServer inside the container on the shared transport.
        embedded_namesrv_enable: bool = "embeddedNamesrvEnable" => false,
        /// Port of the embedded NameServer.
        embedded_namesrv_port: u16 = "embeddedNamesrvPort" => 9876,
        /// Address every port binds on.
        bind_address: String = "bindAddress" => "0.0.0.0".into(),
        /// Most connections open at once across all ports; past it a new connection is accepted and
        /// closed at once (with a rate-limited warning).
        server_max_connections: usize = "serverMaxConnections" => 10_000,
        /// Most connections open at once from one IP address across all ports (0 = no limit); past
        /// it a new connection from that address is accepted and closed at once.
        server_max_connections_per_address: usize = "serverMaxConnectionsPerAddress" =>
            crate::remoting::server::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        /// A connection that read no frame and wrote nothing for this many seconds, with no request
        /// (such as a held long poll) in flight, is closed (Apache's key and default; 0 = never).
        server_channel_max_idle_time_seconds: u64 = "serverChannelMaxIdleTimeSeconds" => 120,
        /// A frame whose first bytes arrived but which is still incomplete this many ms later closes
        /// its connection (0 = never).
        server_frame_read_timeout_millis: u64 = "serverFrameReadTimeoutMillis" => 30_000,
        /// Most requests in flight on one connection (held long polls included).
        server_max_inflight_per_connection: usize = "serverMaxInflightPerConnection" => 4096,
        /// Worker threads of the shared runtime (0 = one per core).
        server_worker_threads: usize = "serverWorkerThreads" => 0,
        /// Where runtime changes are written (our addition). Unset: into the config files themselves,
        /// as Apache does. Set: the container's changes (`brokerConfigPaths` after add/remove,
        /// UPDATE_BROKER_CONFIG) go to `container.runtime.conf` and each hosted broker's to
        /// `<Cluster>_<Broker>_<Id>.runtime.conf` in this directory, applied over the files at start,
        /// so the config files are never rewritten.
        runtime_config_dir: Option<String> = "runtimeConfigDir" => None,
        /// `PROM` serves Prometheus metrics of the container and every hosted broker over HTTP
        /// (Apache 5's key; `DISABLE` by default; OTLP and LOG exporters are not supported).
        metrics_exporter_type: String = "metricsExporterType" => "DISABLE".into(),
        /// Address the metrics endpoint binds (default: `bindAddress`).
        metrics_prom_exporter_host: String = "metricsPromExporterHost" => String::new(),
        /// Port of the metrics endpoint.
        metrics_prom_exporter_port: u16 = "metricsPromExporterPort" => 5557,
    }
}

/// The file in `runtimeConfigDir` that holds the container's runtime changes.
pub const CONTAINER_OVERLAY_FILE: &str = "container.runtime.conf";

/// Container keys UPDATE_BROKER_CONFIG may change, and that take effect at once.
pub const LIVE_KEYS: &[&str] = &["namesrvAddr", "updateNamesrvAddrInterval"];

/// Container keys UPDATE_BROKER_CONFIG may change, that take effect after a restart. Every key in
/// neither list (paths, ports, bind address, connection limits, ...) cannot be changed over the wire.
pub const RESTART_KEYS: &[&str] = &["serverWorkerThreads", "serverMaxInflightPerConnection"];

/// A container config read and validated once, with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedContainerConfig {
    /// The values.
    pub config: ContainerConfig,
    /// The file (None for the embedded default).
    pub path: Option<PathBuf>,
    /// Broker config files to host at start, resolved.
    pub broker_paths: Vec<PathBuf>,
    /// Directories ADD_BROKER may read from, resolved (canonicalized when a request is checked, so a
    /// directory created after the start counts).
    pub allowed_dirs: Vec<PathBuf>,
    /// Where runtime changes go (`runtimeConfigDir`), resolved.
    pub runtime_dir: Option<PathBuf>,
    /// Unknown keys and other notes.
    pub warnings: Vec<String>,
    /// TLS for every port of the container and its outbound connections (`tls.*`, Apache's keys),
    /// with `tls.config.file` applied and paths resolved.
    pub tls: TlsConfig,
    /// Access-control keys of the container's admin port (secrets masked when shown).
    pub auth_config: crate::auth::config::AuthConfig,
    /// Access-control settings of the container's admin port, validated; `None` when the
    /// container keeps no user store (neither `authenticationEnabled` nor `authConfigPath`).
    pub auth: Option<crate::auth::config::AuthSettings>,
}

impl LoadedContainerConfig {
    /// Reads `path`, applies `-b`/`-n` overrides, and validates.
    pub fn load(
        path: &Path,
        broker_override: Option<&str>,
        namesrv_override: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let raw = RawConfig::load(path)?;
        let mut config = ContainerConfig::default();
        let mut tls = TlsConfig::default();
        let mut auth_config = crate::auth::config::AuthConfig::default();
        let mut warnings = raw.apply(&mut [&mut config as &mut dyn Configurable, &mut tls, &mut auth_config])?;
        if let Some(dir) = config.runtime_config_dir.as_deref().filter(|d| !d.trim().is_empty()) {
            // Changes made at runtime apply over the file (values still resolve against the file).
            let overlay = resolve_relative(path, dir).join(CONTAINER_OVERLAY_FILE);
            if overlay.exists() {
                let mut raw = RawConfig::load(&overlay)?;
                raw.path = path.to_path_buf();
                raw.entries.retain(|e| {
                    LIVE_KEYS.contains(&e.key.as_str())
                        || RESTART_KEYS.contains(&e.key.as_str())
                        || e.key == "brokerConfigPaths"
                });
                warnings.extend(raw.apply(&mut [&mut config as &mut dyn Configurable])?);
            }
        }
        let mut loaded = Self::finish(config, tls, Some(path), warnings, broker_override, namesrv_override)?;
        loaded.set_auth(auth_config, path)?;
        Ok(loaded)
    }

    /// Validates the container's access-control keys. Its store lives in `authConfigPath`
    /// (default `~/store/container/config`).
    fn set_auth(&mut self, auth_config: crate::auth::config::AuthConfig, path: &Path) -> Result<(), ConfigError> {
        let wanted = auth_config.authentication_enabled || !auth_config.auth_config_path.trim().is_empty();
        if wanted {
            let root = crate::config::home_dir().join("store").join("container");
            let settings = auth_config
                .settings(&root)
                .map_err(|reason| ConfigError::Invalid { path: path.to_path_buf(), reason })?;
            self.auth = Some(settings);
        }
        self.auth_config = auth_config;
        Ok(())
    }

    /// Every key with its value as shown (`-p`, GET_BROKER_CONFIG): secrets masked.
    pub fn shown_entries(&self, config: &ContainerConfig) -> Vec<(&'static str, String)> {
        let mut e = config.entries();
        e.extend(self.auth_config.entries());
        e
    }

    /// The file runtime changes of the container are written to: the overlay in `runtimeConfigDir`,
    /// else the config file itself (None for the embedded default).
    pub fn persist_file(&self) -> Option<PathBuf> {
        match &self.runtime_dir {
            Some(d) => Some(d.join(CONTAINER_OVERLAY_FILE)),
            None => self.path.clone(),
        }
    }

    /// Where a hosted broker's runtime changes go: its overlay in `runtimeConfigDir`, else its file.
    pub fn broker_persist_file(&self, identity: &str, config_file: &Path) -> PathBuf {
        match &self.runtime_dir {
            Some(d) => d.join(format!("{identity}.runtime.conf")),
            None => config_file.to_path_buf(),
        }
    }

    /// The built-in default: the container port only, no brokers (unless `-b` lists some).
    pub fn defaults(broker_override: Option<&str>, namesrv_override: Option<&str>) -> Result<Self, ConfigError> {
        Self::finish(
            ContainerConfig::default(),
            TlsConfig::default(),
            None,
            Vec::new(),
            broker_override,
            namesrv_override,
        )
    }

    fn finish(
        mut config: ContainerConfig,
        mut tls: TlsConfig,
        path: Option<&Path>,
        warnings: Vec<String>,
        broker_override: Option<&str>,
        namesrv_override: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let file = path.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("container-conf/broker-container.conf"));
        let invalid = |reason: String| ConfigError::Invalid { path: file.clone(), reason };
        if let Some(n) = namesrv_override {
            config.namesrv_addr = Some(n.to_string());
        }
        if let Some(b) = broker_override {
            config.broker_config_paths = Some(b.to_string());
        }
        config.validate().map_err(invalid)?;
        tls.resolve(path)?;
        tls.validate().map_err(invalid)?;
        if config.embedded_namesrv_enable && config.namesrv_addr.is_none() {
            config.namesrv_addr = Some(format!("127.0.0.1:{}", config.embedded_namesrv_port));
        }
        let broker_paths = config
            .broker_config_paths
            .as_deref()
            .unwrap_or("")
            .split(':')
            .filter(|p| !p.trim().is_empty())
            .map(|p| resolve_relative(&file, p))
            .collect();
        let dirs: Vec<PathBuf> = match &config.broker_config_dirs {
            Some(d) => d.split(':').filter(|p| !p.trim().is_empty()).map(|p| resolve_relative(&file, p)).collect(),
            None => {
                let own = file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
                let own = if own.as_os_str().is_empty() { PathBuf::from(".") } else { own };
                vec![own.clone(), own.join("../brokers-conf"), PathBuf::from("brokers-conf")]
            }
        };
        let runtime_dir = match (&config.runtime_config_dir, path) {
            (Some(d), Some(_)) if !d.trim().is_empty() => Some(resolve_relative(&file, d)),
            _ => None,
        };
        Ok(LoadedContainerConfig {
            config,
            path: path.map(Path::to_path_buf),
            broker_paths,
            allowed_dirs: dirs,
            runtime_dir,
            warnings,
            tls,
            auth_config: Default::default(),
            auth: None,
        })
    }
}

impl ContainerConfig {
    /// The metrics endpoint's address, when `metricsExporterType=PROM`.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        let t = self.metrics_exporter_type.trim().to_ascii_uppercase();
        if t != "PROM" && t != "2" {
            return None;
        }
        let host = if self.metrics_prom_exporter_host.is_empty() {
            &self.bind_address
        } else {
            &self.metrics_prom_exporter_host
        };
        host.parse().ok().map(|ip| std::net::SocketAddr::new(ip, self.metrics_prom_exporter_port))
    }

    /// Checks the values together: at start, and for every runtime update.
    pub fn validate(&self) -> Result<(), String> {
        if self.listen_port < 3 {
            return Err(format!("listenPort {} leaves no room for listenPort-2", self.listen_port));
        }
        if self.fetch_namesrv_addr_by_address_server {
            return Err("fetchNamesrvAddrByAddressServer=true is not supported: list namesrvAddr".into());
        }
        if self.bind_address.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("bindAddress '{}' is not an IP address", self.bind_address));
        }
        if let Some(ns) = &self.namesrv_addr {
            for a in ns.split(';').filter(|a| !a.trim().is_empty()) {
                if !crate::util::valid_host_port(a.trim()) {
                    return Err(format!("namesrvAddr entry '{a}' must be host:port"));
                }
            }
        }
        if self.server_max_connections == 0 || self.server_max_inflight_per_connection == 0 {
            return Err("serverMaxConnections and serverMaxInflightPerConnection must be at least 1".into());
        }
        match self.metrics_exporter_type.trim().to_ascii_uppercase().as_str() {
            "DISABLE" | "0" | "PROM" | "2" | "" => {}
            other => {
                return Err(format!("metricsExporterType '{other}': only DISABLE and PROM are supported"));
            }
        }
        if !self.metrics_prom_exporter_host.is_empty()
            && self.metrics_prom_exporter_host.parse::<std::net::IpAddr>().is_err()
        {
            return Err(format!("metricsPromExporterHost '{}' is not an IP address", self.metrics_prom_exporter_host));
        }
        if self.server_worker_threads > 1024 {
            return Err(format!("serverWorkerThreads {} is above 1024", self.server_worker_threads));
        }
        Ok(())
    }
}
