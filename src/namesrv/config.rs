//! NameServer configuration (`NamesrvConfig` plus the listen port; spec: namesrv.md §1).

use std::path::{Path, PathBuf};

use crate::config::{home_dir, Configurable, RawConfig};
use crate::config_struct;
use crate::remoting::tls::TlsConfig;

fn default_store_path(file: &str) -> String {
    home_dir().join("namesrv").join(file).to_string_lossy().into_owned()
}

config_struct! {
    /// The NameServer's settings, with Apache's keys and defaults.
    pub struct NamesrvConfig {
        /// The port to listen on (Apache: `NettyServerConfig.listenPort`, set to 9876 by NamesrvStartup).
        listen_port: u16 = "listenPort" => 9876,
        /// `ROCKETMQ_HOME` (informational).
        rocketmq_home: String = "rocketmqHome" => std::env::var("ROCKETMQ_HOME").unwrap_or_default(),
        /// Where the KV config is persisted (`~/namesrv/kvConfig.json`).
        kv_config_path: String = "kvConfigPath" => default_store_path("kvConfig.json"),
        /// Where UPDATE_NAMESRV_CONFIG persists the config (`~/namesrv/namesrv.properties`).
        config_store_path: String = "configStorePath" => default_store_path("namesrv.properties"),
        /// Environment name (informational).
        product_env_name: String = "productEnvName" => "center".to_string(),
        /// Cluster test mode (informational).
        cluster_test: bool = "clusterTest" => false,
        /// Add `orderTopicConf` (KV namespace ORDER_TOPIC_CONFIG) to route data.
        order_message_enable: bool = "orderMessageEnable" => false,
        /// Return the ORDER_TOPIC_CONFIG KV list to registering brokers.
        return_order_topic_config_to_broker: bool = "returnOrderTopicConfigToBroker" => true,
        /// Threads for route queries (informational here: requests run on the async runtime).
        client_request_thread_pool_nums: u32 = "clientRequestThreadPoolNums" => 8,
        /// Threads for other requests (informational here).
        default_thread_pool_nums: u32 = "defaultThreadPoolNums" => 16,
        /// Queue capacity of route queries (informational here).
        client_request_thread_pool_queue_capacity: u32 = "clientRequestThreadPoolQueueCapacity" => 50000,
        /// Queue capacity of other requests (informational here).
        default_thread_pool_queue_capacity: u32 = "defaultThreadPoolQueueCapacity" => 10000,
        /// Period of the scan that drops brokers whose heartbeat timed out (ms).
        scan_not_active_broker_interval: u64 = "scanNotActiveBrokerInterval" => 5000,
        /// Capacity of the unregister queue (informational here: unregistration is done in place).
        un_register_broker_queue_capacity: u32 = "unRegisterBrokerQueueCapacity" => 3000,
        /// Let route data name an acting master when a group's master is gone.
        support_acting_master: bool = "supportActingMaster" => false,
        /// Answer GET_ALL_TOPIC_LIST_FROM_NAMESERVER.
        enable_all_topic_list: bool = "enableAllTopicList" => true,
        /// Answer GET_TOPICS_BY_CLUSTER.
        enable_topic_list: bool = "enableTopicList" => true,
        /// Send NOTIFY_MIN_BROKER_ID_CHANGE to a group when its smallest id changes (not implemented).
        notify_min_broker_id_changed: bool = "notifyMinBrokerIdChanged" => false,
        /// Run a controller inside the NameServer (not supported).
        enable_controller_in_namesrv: bool = "enableControllerInNamesrv" => false,
        /// Refuse route queries until `waitSecondsForService` after start.
        need_wait_for_service: bool = "needWaitForService" => false,
        /// See `needWaitForService`.
        wait_seconds_for_service: u64 = "waitSecondsForService" => 45,
        /// Drop a broker's topics that its registration no longer reports.
        delete_topic_with_broker_registration: bool = "deleteTopicWithBrokerRegistration" => false,
        /// Most connections open at once (Apache's `NettyServerConfig` has no such cap); past it a new
        /// connection is accepted and closed at once (with a rate-limited warning).
        server_max_connections: usize = "serverMaxConnections" => 10_000,
        /// Most connections open at once from one IP address (0 = no limit).
        server_max_connections_per_address: usize = "serverMaxConnectionsPerAddress" =>
            crate::remoting::server::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        /// A connection that read no frame and wrote nothing for this many seconds, with no request in
        /// flight, is closed (`NettyServerConfig.serverChannelMaxIdleTimeSeconds`; 0 = never).
        server_channel_max_idle_time_seconds: u64 = "serverChannelMaxIdleTimeSeconds" => 120,
        /// A frame whose first bytes arrived but which is still incomplete this many ms later closes
        /// its connection (0 = never).
        server_frame_read_timeout_millis: u64 = "serverFrameReadTimeoutMillis" => 30_000,
        /// Keys UPDATE_NAMESRV_CONFIG refuses (`;`-separated).
        config_black_list: String = "configBlackList" => "configBlackList;configStorePath;kvConfigPath".to_string(),
    }
}

impl NamesrvConfig {
    /// The transport settings this config asks for (the rest are [`ServerConfig`]'s defaults).
    ///
    /// [`ServerConfig`]: crate::remoting::ServerConfig
    pub fn server_config(&self) -> crate::remoting::ServerConfig {
        crate::remoting::ServerConfig {
            max_connections: self.server_max_connections,
            max_connections_per_address: self.server_max_connections_per_address,
            channel_max_idle: std::time::Duration::from_secs(self.server_channel_max_idle_time_seconds),
            frame_read_timeout: std::time::Duration::from_millis(self.server_frame_read_timeout_millis),
            ..Default::default()
        }
    }

    /// Reads a config file (properties, or TOML for `.toml`) over the defaults. Returns the config and the
    /// warnings (unknown keys). Relative paths in the file resolve against its directory.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), crate::config::ConfigError> {
        Self::load_with_tls(path).map(|(c, _, w)| (c, w))
    }

    /// Like [`NamesrvConfig::load`], with the TLS settings of the file (`tls.*`; `tls.config.file`
    /// applied, paths resolved, validated).
    pub fn load_with_tls(path: &Path) -> Result<(Self, TlsConfig, Vec<String>), crate::config::ConfigError> {
        let raw = RawConfig::load(path)?;
        let mut cfg = NamesrvConfig::default();
        let mut tls = TlsConfig::default();
        let warnings = raw.apply(&mut [&mut cfg as &mut dyn Configurable, &mut tls])?;
        tls.resolve(Some(path))?;
        tls.validate().map_err(|reason| crate::config::ConfigError::Invalid { path: path.to_path_buf(), reason })?;
        if raw.get("kvConfigPath").is_some() {
            cfg.kv_config_path = crate::config::resolve_relative(path, &cfg.kv_config_path).to_string_lossy().into();
        }
        if raw.get("configStorePath").is_some() {
            cfg.config_store_path =
                crate::config::resolve_relative(path, &cfg.config_store_path).to_string_lossy().into();
        }
        Ok((cfg, tls, warnings))
    }

    /// The KV config file, `~/` expanded.
    pub fn kv_config_file(&self) -> PathBuf {
        expand_home(&self.kv_config_path)
    }

    /// The config store file, `~/` expanded.
    pub fn config_store_file(&self) -> PathBuf {
        expand_home(&self.config_store_path)
    }

    /// The config as properties text (`key=value` lines), as GET_NAMESRV_CONFIG and `-p` show it.
    pub fn to_properties(&self) -> String {
        crate::config::to_properties_text(&self.entries())
    }

    /// The keys UPDATE_NAMESRV_CONFIG must refuse.
    pub fn black_list(&self) -> Vec<String> {
        self.config_black_list.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
    }
}

fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest),
        None => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_file() {
        let c = NamesrvConfig::default();
        assert_eq!(c.listen_port, 9876);
        assert_eq!(c.scan_not_active_broker_interval, 5000);
        assert!(c.kv_config_path.ends_with("namesrv/kvConfig.json"));
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("namesrv.properties");
        std::fs::write(&f, "listenPort=19876\nkvConfigPath=kv/kv.json\norderMessageEnable=true\nfoo=bar\n")
            .expect("write");
        let (c, warnings) = NamesrvConfig::load(&f).expect("loads");
        assert_eq!(c.listen_port, 19876);
        assert!(c.order_message_enable);
        assert_eq!(c.kv_config_file(), dir.path().join("kv/kv.json"));
        assert_eq!(warnings.len(), 1);
        assert!(c.to_properties().contains("listenPort=19876\n"));
        assert_eq!(c.black_list(), vec!["configBlackList", "configStorePath", "kvConfigPath"]);
    }

    #[test]
    fn transport_keys_reach_the_server_config() {
        let d = NamesrvConfig::default().server_config();
        assert_eq!(d.channel_max_idle, std::time::Duration::from_secs(120));
        assert_eq!(d.max_connections_per_address, 1000);
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("namesrv.properties");
        let text = "serverMaxConnections=50\nserverMaxConnectionsPerAddress=5\n\
                    serverChannelMaxIdleTimeSeconds=7\nserverFrameReadTimeoutMillis=900\n";
        std::fs::write(&f, text).expect("write");
        let (c, warnings) = NamesrvConfig::load(&f).expect("loads");
        assert!(warnings.is_empty(), "{warnings:?}");
        let s = c.server_config();
        assert_eq!((s.max_connections, s.max_connections_per_address), (50, 5));
        assert_eq!(s.channel_max_idle, std::time::Duration::from_secs(7));
        assert_eq!(s.frame_read_timeout, std::time::Duration::from_millis(900));
    }
}
