//! The broker's own config keys (Apache's `BrokerConfig`, plus the role keys Apache keeps in
//! `MessageStoreConfig`), read raw and validated once.

use crate::config::{ConfigError, ConfigValue, Configurable, RawConfig};
use crate::store::cleanup::{parse_delete_when, CleanupPolicy};
use crate::store::config::{FlushDiskType, MessageStoreConfig};
use crate::{config_enum, config_struct, configurable_fields};
use std::path::Path;
use std::path::PathBuf;

impl ConfigValue for FlushDiskType {
    fn parse_value(s: &str) -> Result<Self, String> {
        match s.trim() {
            "ASYNC_FLUSH" => Ok(FlushDiskType::AsyncFlush),
            "SYNC_FLUSH" => Ok(FlushDiskType::SyncFlush),
            _ => Err("expected ASYNC_FLUSH or SYNC_FLUSH".into()),
        }
    }
    fn render(&self) -> String {
        match self {
            FlushDiskType::AsyncFlush => "ASYNC_FLUSH".into(),
            FlushDiskType::SyncFlush => "SYNC_FLUSH".into(),
        }
    }
}

configurable_fields!(MessageStoreConfig {
    store_path_root_dir = "storePathRootDir",
    store_path_commit_log = "storePathCommitLog",
    mapped_file_size_commit_log = "mappedFileSizeCommitLog",
    mapped_file_size_consume_queue = "mappedFileSizeConsumeQueue",
    flush_disk_type = "flushDiskType",
    flush_interval_commit_log = "flushIntervalCommitLog",
    flush_commit_log_least_pages = "flushCommitLogLeastPages",
    flush_commit_log_thorough_interval = "flushCommitLogThoroughInterval",
    flush_interval_consume_queue = "flushIntervalConsumeQueue",
    sync_flush_timeout = "syncFlushTimeout",
    check_crc_on_recover = "checkCRCOnRecover",
    max_message_size = "maxMessageSize",
    message_index_enable = "messageIndexEnable",
    max_hash_slot_num = "maxHashSlotNum",
    max_index_num = "maxIndexNum",
    default_query_max_num = "defaultQueryMaxNum",
    max_transfer_count_on_message_in_memory = "maxTransferCountOnMessageInMemory",
    max_transfer_bytes_on_message_in_memory = "maxTransferBytesOnMessageInMemory",
    auto_message_version_on_topic_len = "autoMessageVersionOnTopicLen",
    message_delay_level = "messageDelayLevel",
});

configurable_fields!(crate::store::config::LiveStoreKeys {
    max_message_size = "maxMessageSize",
    flush_interval_commit_log = "flushIntervalCommitLog",
    flush_commit_log_least_pages = "flushCommitLogLeastPages",
    flush_commit_log_thorough_interval = "flushCommitLogThoroughInterval",
    flush_interval_consume_queue = "flushIntervalConsumeQueue",
    sync_flush_timeout = "syncFlushTimeout",
    default_query_max_num = "defaultQueryMaxNum",
    max_transfer_count_on_message_in_memory = "maxTransferCountOnMessageInMemory",
    max_transfer_bytes_on_message_in_memory = "maxTransferBytesOnMessageInMemory",
});

/// Store keys UPDATE_BROKER_CONFIG changes on the running store ([`LiveStoreKeys`]).
///
/// [`LiveStoreKeys`]: crate::store::config::LiveStoreKeys
pub const LIVE_STORE_KEYS: &[&str] = &[
    "maxMessageSize",
    "flushIntervalCommitLog",
    "flushCommitLogLeastPages",
    "flushCommitLogThoroughInterval",
    "flushIntervalConsumeQueue",
    "syncFlushTimeout",
    "defaultQueryMaxNum",
    "maxTransferCountOnMessageInMemory",
    "maxTransferBytesOnMessageInMemory",
];

/// Cleanup keys UPDATE_BROKER_CONFIG changes at runtime (the next cleanup run uses them). The
/// others are read at start: the period (`cleanResourceInterval`, Apache schedules it once) and
/// the disk share (index files are sized from it).
pub const LIVE_CLEANUP_KEYS: &[&str] = &[
    "deleteWhen",
    "fileReservedTime",
    "diskMaxUsedSpaceRatio",
    "diskSpaceCleanForciblyRatio",
    "diskSpaceWarningLevelRatio",
    "cleanFileForciblyEnable",
    "deleteFileBatchMax",
    "logicalDiskSpaceCleanForciblyThreshold",
];

/// Checks runtime store key values: `maxMessageSize` must leave a commitlog file of `file_size`
/// room for a record's header and properties; intervals and timeouts must be positive.
pub fn validate_live_store(k: &crate::store::config::LiveStoreKeys, file_size: u64) -> Result<(), String> {
    let cap = file_size.saturating_sub(RECORD_OVERHEAD_ROOM);
    if k.max_message_size == 0 || k.max_message_size as u64 > cap {
        return Err(format!(
            "maxMessageSize '{}': expected 1..={cap} (commitlog file {file_size} B)",
            k.max_message_size
        ));
    }
    for (key, v) in [
        ("flushIntervalCommitLog", k.flush_interval_commit_log),
        ("flushIntervalConsumeQueue", k.flush_interval_consume_queue),
        ("syncFlushTimeout", k.sync_flush_timeout),
        ("defaultQueryMaxNum", k.default_query_max_num as u64),
        ("maxTransferCountOnMessageInMemory", k.max_transfer_count_on_message_in_memory as u64),
        ("maxTransferBytesOnMessageInMemory", k.max_transfer_bytes_on_message_in_memory as u64),
    ] {
        if v == 0 {
            return Err(format!("{key} must be > 0"));
        }
    }
    Ok(())
}

config_struct! {
    /// File cleanup and disk-quota keys (Apache keeps them in `MessageStoreConfig`).
    pub struct CleanupConfig {
        /// Hours of the day when expired files may be deleted, `;`-separated.
        delete_when: String = "deleteWhen" => "04".into(),
        /// Hours a file is kept before it expires.
        file_reserved_time: u64 = "fileReservedTime" => 72,
        /// Disk usage (%) above which expired files go regardless of `deleteWhen` (clamped 10..95).
        disk_max_used_space_ratio: u32 = "diskMaxUsedSpaceRatio" => 75,
        /// Physical usage above which the oldest files go even if not expired: a fraction, or a
        /// percent when above 1 (Apache 5 writes `85`); clamped to 0.30..0.85.
        disk_space_clean_forcibly_ratio: f64 = "diskSpaceCleanForciblyRatio" => 0.85,
        /// Physical usage above which writes are refused (SERVICE_NOT_AVAILABLE): a fraction, or a
        /// percent when above 1 (Apache 5 writes `90`); clamped to 0.35..0.90.
        disk_space_warning_level_ratio: f64 = "diskSpaceWarningLevelRatio" => 0.90,
        /// Allow deleting files that have not expired when space is short.
        clean_file_forcibly_enable: bool = "cleanFileForciblyEnable" => true,
        /// Period of the cleanup service, ms.
        clean_resource_interval: u64 = "cleanResourceInterval" => 10_000,
        /// Most commitlog files deleted per run.
        delete_file_batch_max: u32 = "deleteFileBatchMax" => 10,
        /// Brokers sharing this broker's disk partition (share = 1 / replicas).
        replicas_per_disk_partition: u32 = "replicasPerDiskPartition" => 1,
        /// RIP-31: this broker's share of the partition (0 < q <= 1); overrides replicasPerDiskPartition.
        quota_percent_for_disk_partition: Option<f64> = "quotaPercentForDiskPartition" => None,
        /// Logical (quota) usage above which the oldest files go.
        logical_disk_space_clean_forcibly_threshold: f64 = "logicalDiskSpaceCleanForciblyThreshold" => 0.8,
    }
}

impl CleanupConfig {
    /// The store's cleanup policy with Apache's clamps applied (`diskMaxUsedSpaceRatio` 10..95,
    /// warning level 0.35..0.90, clean-forcibly ratio 0.30..0.85, at least one file per run), and
    /// the share of the partition: `quotaPercentForDiskPartition` if set, else
    /// `1 / replicasPerDiskPartition`. The notes say which values were changed.
    pub fn policy(&self) -> (CleanupPolicy, Vec<String>) {
        let mut notes = Vec::new();
        let mut clamp = |key: &str, v: f64, lo: f64, hi: f64| {
            let c = v.clamp(lo, hi);
            if c != v {
                notes.push(format!("{key} {v} clamped to {c}"));
            }
            c
        };
        let fraction = |v: f64| if v > 1.0 { v / 100.0 } else { v };
        let max_used = clamp("diskMaxUsedSpaceRatio", self.disk_max_used_space_ratio as f64, 10.0, 95.0) / 100.0;
        let warning = clamp("diskSpaceWarningLevelRatio", fraction(self.disk_space_warning_level_ratio), 0.35, 0.90);
        let forcibly = clamp("diskSpaceCleanForciblyRatio", fraction(self.disk_space_clean_forcibly_ratio), 0.30, 0.85);
        let share = match self.quota_percent_for_disk_partition {
            Some(q) => q.clamp(f64::MIN_POSITIVE, 1.0),
            None => 1.0 / self.replicas_per_disk_partition.max(1) as f64,
        };
        let policy = CleanupPolicy {
            delete_when_hours: parse_delete_when(&self.delete_when),
            file_reserved_ms: (self.file_reserved_time as i64).saturating_mul(3_600_000),
            disk_max_used_ratio: max_used,
            clean_forcibly_ratio: forcibly,
            warning_ratio: warning,
            clean_file_forcibly: self.clean_file_forcibly_enable,
            delete_file_batch_max: self.delete_file_batch_max.max(1) as usize,
            disk_share: share,
            logical_clean_forcibly_threshold: self.logical_disk_space_clean_forcibly_threshold,
        };
        (policy, notes)
    }

    /// Checks the values that have no clamp: `deleteWhen` hours, the logical threshold.
    pub fn validate(&self) -> Result<(), String> {
        for h in self.delete_when.split(';').filter(|h| !h.trim().is_empty()) {
            if !h.trim().parse::<u32>().is_ok_and(|h| h < 24) {
                return Err(format!("deleteWhen entry '{h}' must be an hour 00-23"));
            }
        }
        let t = self.logical_disk_space_clean_forcibly_threshold;
        if !(t > 0.0 && t <= 1.0) {
            return Err(format!("logicalDiskSpaceCleanForciblyThreshold {t} must be in (0, 1]"));
        }
        Ok(())
    }

    /// Period of the cleanup task (`cleanResourceInterval`, at least 10 ms).
    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.clean_resource_interval.max(10))
    }
}

config_enum! {
    /// A broker's replication role (`brokerRole`).
    pub enum BrokerRole {
        /// Master that acknowledges before replication.
        AsyncMaster = "ASYNC_MASTER",
        /// Master that acknowledges after a slave has the message.
        SyncMaster = "SYNC_MASTER",
        /// Slave replicating a master.
        Slave = "SLAVE",
    }
}

config_struct! {
    /// Broker identity, ports, registration and behaviour switches.
    pub struct BrokerConfig {
        /// Cluster the broker belongs to.
        broker_cluster_name: String = "brokerClusterName" => "DefaultCluster".into(),
        /// Broker group name (master and slaves share it).
        broker_name: String = "brokerName" => default_broker_name(),
        /// 0 for a master, > 0 for a slave.
        broker_id: i64 = "brokerId" => 0,
        /// Replication role.
        broker_role: BrokerRole = "brokerRole" => BrokerRole::AsyncMaster,
        /// Remoting port; `listenPort - 2` is the fast port and `listenPort + 1` the HA port.
        listen_port: u16 = "listenPort" => 6888,
        /// HA port; inside a container it is always `listenPort + 1`.
        ha_listen_port: u16 = "haListenPort" => 0,
        /// Address registered for clients (default: first non-loopback IPv4, else 127.0.0.1).
        broker_ip1: String = "brokerIP1" => String::new(),
        /// Address registered for HA.
        broker_ip2: String = "brokerIP2" => String::new(),
        /// Name servers (ignored inside a container, which registers through its own list).
        namesrv_addr: Option<String> = "namesrvAddr" => None,
        /// Create unknown topics on first send from `TBW102`.
        auto_create_topic_enable: bool = "autoCreateTopicEnable" => true,
        /// Create unknown subscription groups on first use.
        auto_create_subscription_group: bool = "autoCreateSubscriptionGroup" => true,
        /// Queue count of auto-created topics.
        default_topic_queue_nums: i32 = "defaultTopicQueueNums" => 8,
        /// Broker permission bits (6 = read + write).
        broker_permission: i32 = "brokerPermission" => 6,
        /// Registration period with the name servers, ms (clamped to 10 s..60 s).
        register_name_server_period: u64 = "registerNameServerPeriod" => 30_000,
        /// Timeout of one registration, ms.
        register_broker_timeout_mills: u64 = "registerBrokerTimeoutMills" => 24_000,
        /// Register even when the data version is unchanged.
        force_register: bool = "forceRegister" => true,
        /// Send REGISTER_BROKER bodies compressed.
        compressed_register: bool = "compressedRegister" => false,
        /// Let consumers read from slaves.
        slave_read_enable: bool = "slaveReadEnable" => false,
        /// Hold pulls that find nothing until a message arrives.
        long_polling_enable: bool = "longPollingEnable" => true,
        /// Hold time of a pull when long polling is off, ms.
        short_polling_time_mills: u64 = "shortPollingTimeMills" => 1000,
        /// Tell consumers when their group's membership changes.
        notify_consumer_ids_changed_enable: bool = "notifyConsumerIdsChangedEnable" => true,
        /// Replica count of the group.
        total_replicas: i32 = "totalReplicas" => 1,
        /// Replicas (master included) that must have a message before a SYNC_MASTER acknowledges it.
        in_sync_replicas: i32 = "inSyncReplicas" => 1,
        /// Lower bound of in-sync replicas.
        min_in_sync_replicas: i32 = "minInSyncReplicas" => 1,
        /// Wait for a slave this long before FLUSH_SLAVE_TIMEOUT, ms.
        slave_timeout: u64 = "slaveTimeout" => 3000,
        /// DLedger commitlog (Raft replication).
        enable_dleger_commit_log: bool = "enableDLegerCommitLog" => false,
        /// DLedger group.
        dleger_group: Option<String> = "dLegerGroup" => None,
        /// DLedger peers `n0-host:port;n1-host:port`.
        dleger_peers: Option<String> = "dLegerPeers" => None,
        /// This node's DLedger id (`n0`, `n1`, ...).
        dleger_self_id: Option<String> = "dLegerSelfId" => None,
        /// DLedger leadership transfer target (`n0`, ...).
        preferred_leader_id: Option<String> = "preferredLeaderId" => None,
        /// DLedger data files (default `<storePathRootDir>/dledger-<selfId>/data`).
        store_path_dledger_commit_log: Option<String> = "storePathDLedgerCommitLog" => None,
        /// DLedger leader heartbeat interval, ms (DLedger's `heartBeatTimeIntervalMs`; not an
        /// Apache broker key: Apache always runs DLedger's default).
        dleger_heartbeat_ms: u64 = "heartBeatTimeIntervalMs" => 2000,
        /// Heartbeats a follower misses before it stands for election (DLedger's `maxHeartBeatLeak`).
        dleger_max_heartbeat_leak: u64 = "maxHeartBeatLeak" => 3,
        /// Lower bound of the randomized vote interval, ms (DLedger's `minVoteIntervalMs`).
        dleger_min_vote_ms: u64 = "minVoteIntervalMs" => 300,
        /// Upper bound of the randomized vote interval, ms (DLedger's `maxVoteIntervalMs`).
        dleger_max_vote_ms: u64 = "maxVoteIntervalMs" => 1000,
        /// A DLedger leader sends a follower its pending entries several to a PUSH (`batchEntry`).
        /// Apache's default is false; ours is true: one PUSH per entry per follower made
        /// replication several times slower than a plain broker, and every follower (DLedger's
        /// and ours) accepts batch pushes whatever its own setting.
        dleger_enable_batch_push: bool = "enableBatchPush" => true,
        /// Bytes of entries that close a batch push (DLedger's `maxBatchPushSize`, 4096 there; not
        /// an Apache broker key). The entry that reaches it is still in the batch.
        dleger_max_batch_push_size: u64 = "maxBatchPushSize" => 64 * 1024,
        /// Controller mode (not supported in a container).
        enable_controller_mode: bool = "enableControllerMode" => false,
        /// Slave acting as master when the master is gone.
        enable_slave_acting_master: bool = "enableSlaveActingMaster" => false,
        /// An acting master writes what it would store (delayed deliveries, retries) to another
        /// live master of the cluster over the wire (Apache's EscapeBridge).
        enable_remote_escape: bool = "enableRemoteEscape" => false,
        /// Keep-alive with the NameServers as QUERY_DATA_VERSION (true) or BROKER_HEARTBEAT (904).
        compatible_with_old_name_srv: bool = "compatibleWithOldNameSrv" => true,
        /// Period of the keep-alive with the NameServers in acting-master mode, ms.
        broker_heartbeat_interval: u64 = "brokerHeartbeatInterval" => 1000,
        /// A NameServer drops this broker after this long without a keep-alive (acting-master
        /// mode only; else the NameServer's 120 s), ms.
        broker_not_active_timeout_millis: u64 = "brokerNotActiveTimeoutMillis" => 10_000,
        /// Timeout of one keep-alive request, ms.
        send_heartbeat_timeout_millis: u64 = "sendHeartbeatTimeoutMillis" => 1000,
        /// Period of the group-membership poll (GET_BROKER_MEMBER_GROUP) in acting-master mode, ms.
        sync_broker_member_group_period: u64 = "syncBrokerMemberGroupPeriod" => 1000,
        /// Message duplication (not supported in a container).
        duplication_enable: bool = "duplicationEnable" => false,
        /// Region id returned with sends.
        region_id: String = "regionId" => "DefaultRegion".into(),
        /// Message trace switch returned with sends.
        trace_on: bool = "traceOn" => true,
        /// Create the message trace topic (`msgTraceTopicName`, 1/1 queues) at startup.
        trace_topic_enable: bool = "traceTopicEnable" => false,
        /// The message trace topic.
        msg_trace_topic_name: String = "msgTraceTopicName" => "RMQ_SYS_TRACE_TOPIC".into(),
        /// Reset offsets on the broker (the next pull is told to move); false: Apache's legacy reset,
        /// which tells every online client (RESET_CONSUMER_CLIENT_OFFSET) and commits nothing.
        use_server_side_reset_offset: bool = "useServerSideResetOffset" => true,
        /// Store replies (SEND_REPLY_MESSAGE) as well as pushing them to the requester.
        store_reply_message_enable: bool = "storeReplyMessageEnable" => true,
        /// Keys UPDATE_BROKER_CONFIG may not change (`;`-separated).
        config_black_list: String = "configBlackList" => "configBlackList;brokerConfigPath".into(),
        /// Standalone-only: separate log dir per broker.
        isolate_log_enable: bool = "isolateLogEnable" => false,
        /// Lag ratio of physical memory beyond which reads are suggested from a slave.
        access_message_in_memory_max_ratio: i32 = "accessMessageInMemoryMaxRatio" => 40,
        /// Threads of the broker's own runtime, which runs its ports' connections and requests
        /// (our addition; 0 = one per core, at most 4). A busy broker queues behind itself there,
        /// never in front of its neighbours in the container.
        broker_worker_threads: usize = "brokerWorkerThreads" => 0,
        /// Lower the CPU weight of this broker's threads while its request queues stay saturated,
        /// so that its neighbours' requests preempt it (our addition; Linux only).
        adaptive_priority_enable: bool = "adaptivePriorityEnable" => false,
        /// Nice value (0..=19) of a saturated broker's threads.
        adaptive_priority_busy_nice: i32 = "adaptivePriorityBusyNice" => 10,
        /// A saturated broker's threads also run as `SCHED_BATCH` (no wake-up preemption).
        adaptive_priority_busy_batch: bool = "adaptivePriorityBusyBatch" => true,
        /// Window over which the queues are sampled (ten samples), ms: a broker whose queues held
        /// more requests than it has worker threads in nine samples of a window is demoted (while a
        /// neighbour needs the CPU), one where they did in at most five gets its weight back.
        adaptive_priority_window_millis: u64 = "adaptivePriorityWindowMillis" => 100,
        /// Sends queued or running at once; more are answered SYSTEM_BUSY `[OVERLOAD]`.
        send_thread_pool_queue_capacity: usize = "sendThreadPoolQueueCapacity" => 10_000,
        /// A send that waited longer before its processing began is answered SYSTEM_BUSY
        /// `[TIMEOUT_CLEAN_QUEUE]`, ms.
        wait_time_mills_in_send_queue: u64 = "waitTimeMillsInSendQueue" => 200,
        /// Pulls queued, running or held at once.
        pull_thread_pool_queue_capacity: usize = "pullThreadPoolQueueCapacity" => 100_000,
        /// A pull that waited longer before its processing began is answered busy, ms.
        wait_time_mills_in_pull_queue: u64 = "waitTimeMillsInPullQueue" => 5_000,
        /// Accept SQL92 property filters (`MessageSelector.bySql`).
        enable_property_filter: bool = "enablePropertyFilter" => false,
        /// Filter messages of retry topics too.
        filter_support_retry: bool = "filterSupportRetry" => false,
        /// Queries, metadata and admin requests queued or running at once.
        query_thread_pool_queue_capacity: usize = "queryThreadPoolQueueCapacity" => 20_000,
        /// Refuse half (transactional) messages with NO_PERMISSION.
        reject_transaction_message: bool = "rejectTransactionMessage" => false,
        /// A half message younger than this is not checked back yet, ms.
        transaction_time_out: u64 = "transactionTimeOut" => 6_000,
        /// Check-backs of one half message before it is discarded to `TRANS_CHECK_MAX_TIME_TOPIC`.
        transaction_check_max: i32 = "transactionCheckMax" => 15,
        /// Period of the transaction check service, ms.
        transaction_check_interval: u64 = "transactionCheckInterval" => 30_000,
        /// END_TRANSACTION requests queued or running at once.
        end_transaction_pool_queue_capacity: usize = "endTransactionPoolQueueCapacity" => 100_000,
        /// An END_TRANSACTION that waited longer before its processing began is dropped, ms.
        wait_time_mills_in_transaction_queue: u64 = "waitTimeMillsInTransactionQueue" => 3_000,
        /// Timer messages (RIP-43): convert sends with TIMER_DELIVER_MS / TIMER_DELAY_SEC /
        /// TIMER_DELAY_MS into the timer wheel (Apache's default: on). Off: such sends are refused.
        timer_wheel_enable: bool = "timerWheelEnable" => true,
        /// Step of the timer wheel, ms (a deliver time is rounded down to it).
        timer_precision_ms: i64 = "timerPrecisionMs" => 1000,
        /// Longest accepted timer delay, s (3 days).
        timer_max_delay_sec: i64 = "timerMaxDelaySec" => 259_200,
        /// Steps ahead a timer message may be placed at once; farther ones are parked and rolled.
        timer_roll_window_slot: i64 = "timerRollWindowSlot" => 172_800,
        /// Period of the timer files' flush and checkpoint, ms.
        timer_flush_interval_ms: u64 = "timerFlushIntervalMs" => 1000,
        /// Size of a timerlog file.
        mapped_file_size_timer_log: u64 = "mappedFileSizeTimerLog" => 104_857_600,
        /// Stop reading the wheel topic into the wheel.
        timer_stop_enqueue: bool = "timerStopEnqueue" => false,
        /// Stop delivering due timer messages.
        timer_stop_dequeue: bool = "timerStopDequeue" => false,
    }
}

fn default_broker_name() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "DEFAULT_BROKER".into())
}

/// A broker's identity in a container: `cluster_brokerName_brokerId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerIdentity {
    /// Cluster name.
    pub cluster: String,
    /// Broker (group) name.
    pub name: String,
    /// Broker id (for DLedger the number in `dLegerSelfId`).
    pub id: i64,
}

impl std::fmt::Display for BrokerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}_{}", self.cluster, self.name, self.id)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 127 && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-%|.".contains(c))
}

impl BrokerConfig {
    /// Checks the values together, the way Apache's container does when it adds a broker, and
    /// applies Apache's forced values (a master's id is 0; HA port is `listenPort + 1`).
    pub fn validate(&mut self, path: &Path) -> Result<Vec<String>, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid { path: path.to_path_buf(), reason };
        let mut notes = Vec::new();
        if !valid_name(&self.broker_cluster_name) {
            return Err(invalid(format!(
                "brokerClusterName '{}' must be 1-127 of [A-Za-z0-9_-%|.]",
                self.broker_cluster_name
            )));
        }
        if !valid_name(&self.broker_name) {
            return Err(invalid(format!("brokerName '{}' must be 1-127 of [A-Za-z0-9_-%|.]", self.broker_name)));
        }
        if self.listen_port < 3 || self.listen_port == u16::MAX {
            return Err(invalid(format!(
                "listenPort {} leaves no room for the fast port (listenPort-2) and the HA port (listenPort+1)",
                self.listen_port
            )));
        }
        if self.duplication_enable {
            return Err(invalid("Can not add broker to container when duplicationEnable is true currently".into()));
        }
        if self.enable_controller_mode {
            return Err(invalid("enableControllerMode is not supported in a broker container".into()));
        }
        if self.enable_dleger_commit_log {
            let id = self.dleger_self_id.as_deref().unwrap_or("");
            let num = id.get(1..).and_then(|n| n.parse::<i64>().ok());
            match num {
                Some(n) => self.broker_id = n,
                None => return Err(invalid(format!("dLegerSelfId '{id}' must look like n0, n1, ..."))),
            }
            self.validate_dledger().map_err(invalid)?;
        } else {
            match self.broker_role {
                BrokerRole::AsyncMaster | BrokerRole::SyncMaster => {
                    if self.broker_id != 0 {
                        notes.push(format!("brokerId {} of a master is forced to 0", self.broker_id));
                        self.broker_id = 0;
                    }
                }
                BrokerRole::Slave if self.broker_id <= 0 => {
                    return Err(invalid("slave broker id must be > 0".into()));
                }
                BrokerRole::Slave => {}
            }
        }
        if !(0..=19).contains(&self.adaptive_priority_busy_nice) {
            return Err(invalid(format!(
                "adaptivePriorityBusyNice {} is not within 0..=19",
                self.adaptive_priority_busy_nice
            )));
        }
        if !(10..=60_000).contains(&self.adaptive_priority_window_millis) {
            return Err(invalid(format!(
                "adaptivePriorityWindowMillis {} is not within 10..=60000",
                self.adaptive_priority_window_millis
            )));
        }
        if self.broker_worker_threads > 256 {
            return Err(invalid(format!("brokerWorkerThreads {} is above 256", self.broker_worker_threads)));
        }
        if self.total_replicas < self.in_sync_replicas
            || self.total_replicas < self.min_in_sync_replicas
            || self.in_sync_replicas < self.min_in_sync_replicas
        {
            return Err(invalid(format!(
                "invalid replicas number: totalReplicas={} inSyncReplicas={} minInSyncReplicas={}",
                self.total_replicas, self.in_sync_replicas, self.min_in_sync_replicas
            )));
        }
        // Apache keeps the wheel at a fixed number of steps; a step must divide a second or be
        // whole seconds so that deliver times round the same way on every broker.
        let p = self.timer_precision_ms;
        if p <= 0 || (p < 1000 && 1000 % p != 0) || (p > 1000 && p % 1000 != 0) {
            return Err(invalid(format!(
                "timerPrecisionMs {p} must be > 0 and divide 1000 (or be a multiple of 1000)"
            )));
        }
        if self.timer_max_delay_sec <= 0 || self.timer_max_delay_sec > i32::MAX as i64 / 1000 {
            return Err(invalid(format!(
                "timerMaxDelaySec {} must be in 1..={}",
                self.timer_max_delay_sec,
                i32::MAX / 1000
            )));
        }
        if self.mapped_file_size_timer_log < 4096 {
            return Err(invalid(format!(
                "mappedFileSizeTimerLog {} must be at least 4096",
                self.mapped_file_size_timer_log
            )));
        }
        if self.broker_heartbeat_interval == 0 || self.sync_broker_member_group_period == 0 {
            return Err(invalid("brokerHeartbeatInterval and syncBrokerMemberGroupPeriod must be > 0 ms".into()));
        }
        if self.send_heartbeat_timeout_millis == 0 || self.broker_not_active_timeout_millis == 0 {
            return Err(invalid("sendHeartbeatTimeoutMillis and brokerNotActiveTimeoutMillis must be > 0 ms".into()));
        }
        if self.transaction_check_interval == 0 {
            return Err(invalid("transactionCheckInterval must be > 0 ms".into()));
        }
        if self.transaction_check_max < 1 {
            return Err(invalid(format!("transactionCheckMax {} must be >= 1", self.transaction_check_max)));
        }
        self.ha_listen_port = self.listen_port + 1;
        if self.broker_ip1.is_empty() {
            self.broker_ip1 = crate::util::local_ip();
        }
        if self.broker_ip2.is_empty() {
            self.broker_ip2 = self.broker_ip1.clone();
        }
        Ok(notes)
    }

    /// Checks the DLedger keys together: `dLegerGroup` set, `dLegerPeers` well-formed
    /// (`<id>-<host>:<port>;...`), `dLegerSelfId` and `preferredLeaderId` among the peers.
    fn validate_dledger(&self) -> Result<(), String> {
        match self.dleger_group.as_deref() {
            Some(g) if valid_name(g) => {}
            Some(g) => return Err(format!("dLegerGroup '{g}' must be 1-127 of [A-Za-z0-9_-%|.]")),
            None => return Err("enableDLegerCommitLog=true needs dLegerGroup".into()),
        }
        let peers = crate::dledger::server::parse_peers(self.dleger_peers.as_deref().unwrap_or(""))
            .map_err(|e| format!("dLegerPeers '{}': {e}", self.dleger_peers.as_deref().unwrap_or("")))?;
        let id = self.dleger_self_id.as_deref().unwrap_or("");
        if !peers.iter().any(|p| p.id == id) {
            return Err(format!("dLegerSelfId '{id}' is not one of dLegerPeers"));
        }
        if let Some(p) = self.preferred_leader_id.as_deref() {
            if !peers.iter().any(|x| x.id == p) {
                return Err(format!("preferredLeaderId '{p}' is not one of dLegerPeers"));
            }
        }
        if self.dleger_heartbeat_ms == 0 || self.dleger_max_heartbeat_leak == 0 {
            return Err("heartBeatTimeIntervalMs and maxHeartBeatLeak must be positive".into());
        }
        if self.dleger_max_batch_push_size == 0 || self.dleger_max_batch_push_size > 16 * 1024 * 1024 {
            return Err(format!("maxBatchPushSize {} must be 1..=16777216", self.dleger_max_batch_push_size));
        }
        if self.dleger_min_vote_ms >= self.dleger_max_vote_ms {
            return Err(format!(
                "minVoteIntervalMs {} must be below maxVoteIntervalMs {}",
                self.dleger_min_vote_ms, self.dleger_max_vote_ms
            ));
        }
        Ok(())
    }

    /// The DLedger node settings of a validated DLedger broker (`None` without
    /// `enableDLegerCommitLog`), Apache's derivation: `storeBaseDir = storePathRootDir`, data
    /// files of `mappedFileSizeCommitLog`, DLedger's timing keys (DLedger's defaults).
    pub fn dledger_config(&self, store: &MessageStoreConfig) -> Option<crate::dledger::server::DLedgerConfig> {
        if !self.enable_dleger_commit_log {
            return None;
        }
        let peers = crate::dledger::server::parse_peers(self.dleger_peers.as_deref()?).ok()?;
        let mut c = crate::dledger::server::DLedgerConfig::new(
            self.dleger_group.as_deref()?,
            self.dleger_self_id.as_deref()?,
            peers,
            store.store_path_root_dir.clone(),
        );
        c.data_dir = self.store_path_dledger_commit_log.as_ref().map(PathBuf::from);
        c.data_file_size = store.mapped_file_size_commit_log;
        c.preferred_leader = self.preferred_leader_id.clone();
        c.heartbeat_ms = self.dleger_heartbeat_ms;
        c.max_heartbeat_leak = self.dleger_max_heartbeat_leak;
        c.min_vote_ms = self.dleger_min_vote_ms;
        c.max_vote_ms = self.dleger_max_vote_ms;
        c.batch_push = self.dleger_enable_batch_push;
        c.max_batch_bytes = self.dleger_max_batch_push_size;
        Some(c)
    }

    /// The identity that keeps brokers apart in a container.
    pub fn identity(&self) -> BrokerIdentity {
        BrokerIdentity { cluster: self.broker_cluster_name.clone(), name: self.broker_name.clone(), id: self.broker_id }
    }

    /// `brokerIP1:listenPort`, the address registered for clients.
    pub fn broker_addr(&self) -> String {
        format!("{}:{}", self.broker_ip1, self.listen_port)
    }
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
    /// Access-control keys as read (secrets masked when shown).
    pub auth_config: crate::auth::config::AuthConfig,
    /// Access-control settings, validated.
    pub auth: crate::auth::config::AuthSettings,
    /// Unknown keys and forced or capped values.
    pub notes: Vec<String>,
    /// Where runtime changes (UPDATE_BROKER_CONFIG) are written: the file itself, or the broker's
    /// overlay in the container's `runtimeConfigDir`.
    pub persist_path: PathBuf,
}

/// Room a commitlog file keeps beside a message body of `maxMessageSize` (record header, topic,
/// properties of up to 32 KiB).
pub const RECORD_OVERHEAD_ROOM: u64 = 65_536;

/// Reads and validates one broker config file.
pub fn load_broker_config(path: &Path) -> Result<BrokerPlan, ConfigError> {
    load_broker_config_with_overlay(path, None)
}

/// Reads and validates one broker config file; with `runtime_dir`, the broker's runtime changes
/// kept there (`<identity>.runtime.conf`) apply over the file, and are written there.
pub fn load_broker_config_with_overlay(path: &Path, runtime_dir: Option<&Path>) -> Result<BrokerPlan, ConfigError> {
    let raw = RawConfig::load(path)?;
    if raw.entries.is_empty() {
        return Err(ConfigError::Invalid { path: path.to_path_buf(), reason: "the file has no properties".into() });
    }
    let mut config = BrokerConfig::default();
    let mut store = MessageStoreConfig::default();
    let mut cleanup = CleanupConfig::default();
    let mut auth_config = crate::auth::config::AuthConfig::default();
    let mut notes =
        raw.apply(&mut [&mut config as &mut dyn Configurable, &mut store, &mut cleanup, &mut auth_config])?;
    if notes.len() == raw.entries.len() {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            reason: format!("none of its {} keys is a broker config key: is this a broker config?", notes.len()),
        });
    }
    let mut persist_path = path.to_path_buf();
    if let Some(dir) = runtime_dir {
        let mut probe = config.clone();
        probe.validate(path)?;
        let overlay = dir.join(format!("{}.runtime.conf", probe.identity()));
        if overlay.exists() {
            let mut over = RawConfig::load(&overlay)?;
            over.path = overlay.clone();
            notes.extend(over.apply(&mut [
                &mut config as &mut dyn Configurable,
                &mut store,
                &mut cleanup,
                &mut auth_config,
            ])?);
        }
        persist_path = overlay;
    }
    notes.extend(config.validate(path)?);
    notes.extend(validate_store(path, &mut store, &cleanup)?);
    // The store sizes its index files from its quota.
    store.disk_share = cleanup.policy().0.disk_share;
    let auth = auth_config
        .settings(&store.store_path_root_dir)
        .map_err(|reason| ConfigError::Invalid { path: path.to_path_buf(), reason })?;
    Ok(BrokerPlan { path: path.to_path_buf(), config, store, cleanup, auth_config, auth, notes, persist_path })
}

fn validate_store(
    path: &std::path::Path,
    s: &mut MessageStoreConfig,
    c: &CleanupConfig,
) -> Result<Vec<String>, ConfigError> {
    let invalid = |reason: String| Err(ConfigError::Invalid { path: path.to_path_buf(), reason });
    let mut notes = Vec::new();
    let file = s.mapped_file_size_commit_log;
    if file <= RECORD_OVERHEAD_ROOM {
        return invalid(format!(
            "mappedFileSizeCommitLog {file} must be above {RECORD_OVERHEAD_ROOM} bytes: a commitlog file holds a \
             record header, properties and a body"
        ));
    }
    if s.max_message_size == 0 {
        return invalid("maxMessageSize must be > 0".into());
    }
    if s.max_message_size as u64 + RECORD_OVERHEAD_ROOM > file {
        // Apache starts and refuses only a message that cannot fit; we cap the limit so that such
        // a message is refused up front (MESSAGE_ILLEGAL) instead.
        let capped = (file - RECORD_OVERHEAD_ROOM) as usize;
        notes.push(format!(
            "{}: maxMessageSize {} does not fit a commitlog file of {file} bytes; capped to {capped}",
            path.display(),
            s.max_message_size
        ));
        s.max_message_size = capped;
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
    if let Err(e) = c.validate() {
        return invalid(e);
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn dledger_keys_are_checked_together() {
        let dir = tempfile::tempdir().unwrap();
        let base = "brokerName=RaftNode00\nenableDLegerCommitLog=true\n";
        let cases = [
            ("dLegerSelfId=n0\ndLegerPeers=n0-127.0.0.1:40911\n", "needs dLegerGroup"),
            ("dLegerGroup=g\ndLegerSelfId=x\ndLegerPeers=n0-127.0.0.1:40911\n", "must look like n0"),
            ("dLegerGroup=g\ndLegerSelfId=n0\ndLegerPeers=n0-127.0.0.1\n", "dLegerPeers"),
            ("dLegerGroup=g\ndLegerSelfId=n3\ndLegerPeers=n0-127.0.0.1:40911;n1-127.0.0.1:40912\n", "not one of"),
            (
                "dLegerGroup=g\ndLegerSelfId=n0\ndLegerPeers=n0-127.0.0.1:40911;n1-127.0.0.1:40912\npreferredLeaderId=n4\n",
                "preferredLeaderId",
            ),
            (
                "dLegerGroup=g\ndLegerSelfId=n0\ndLegerPeers=n0-127.0.0.1:40911\nminVoteIntervalMs=900\nmaxVoteIntervalMs=900\n",
                "minVoteIntervalMs",
            ),
        ];
        for (i, (extra, want)) in cases.iter().enumerate() {
            let p = write(dir.path(), &format!("d{i}.conf"), &format!("{base}{extra}"));
            let e = load_broker_config(&p).unwrap_err().to_string();
            assert!(e.contains(want), "case {i}: {e}");
        }
        // What a DLedger broker's node would be given (Apache's derivation).
        let mut c = BrokerConfig {
            enable_dleger_commit_log: true,
            dleger_group: Some("RaftNode00".into()),
            dleger_peers: Some("n0-127.0.0.1:40911;n1-127.0.0.1:40912;n2-127.0.0.1:40913".into()),
            dleger_self_id: Some("n2".into()),
            preferred_leader_id: Some("n0".into()),
            ..BrokerConfig::default()
        };
        c.validate(Path::new("x.conf")).unwrap();
        assert_eq!(c.identity().id, 2);
        let store = MessageStoreConfig::default();
        let d = c.dledger_config(&store).unwrap();
        assert_eq!((d.group.as_str(), d.self_id.as_str(), d.peers.len()), ("RaftNode00", "n2", 3));
        assert_eq!(d.data_file_size, store.mapped_file_size_commit_log);
        assert_eq!(d.store_root, store.store_path_root_dir);
        assert_eq!(d.preferred_leader.as_deref(), Some("n0"));
        assert_eq!(d.data_dir, None);
        assert!(BrokerConfig::default().dledger_config(&store).is_none());
    }

    #[test]
    fn the_dledger_sample_deployment_loads() {
        // brokers-conf/3container-dledger: three groups of three members, one per container.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("brokers-conf/3container-dledger");
        let mut leaders = std::collections::BTreeSet::new();
        for g in ["a", "b", "c"] {
            for n in 0..3 {
                let plan = load_broker_config(&dir.join(format!("raft-{g}-n{n}.conf"))).unwrap();
                let d = plan.config.dledger_config(&plan.store).unwrap();
                assert_eq!((d.group.as_str(), d.peers.len()), (format!("raft-{g}").as_str(), 3));
                assert_eq!(plan.config.identity().id, n);
                leaders.insert(d.preferred_leader.clone().unwrap());
            }
        }
        assert_eq!(leaders.len(), 3, "each group prefers a leader in another container");
    }

    #[test]
    fn small_commitlog_files_cap_max_message_size() {
        // Apache starts with these values; so do we, with a note and a capped limit.
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "b.conf", "brokerName=b\nmappedFileSizeCommitLog=1048576\n");
        let plan = load_broker_config(&p).expect("a 1 MiB commitlog file with the default maxMessageSize starts");
        assert_eq!(plan.store.max_message_size as u64, 1_048_576 - RECORD_OVERHEAD_ROOM);
        assert!(plan.notes.iter().any(|n| n.contains("capped")), "{:?}", plan.notes);
        // A limit that fits is kept.
        let p = write(dir.path(), "c.conf", "brokerName=c\nmappedFileSizeCommitLog=1048576\nmaxMessageSize=1000\n");
        assert_eq!(load_broker_config(&p).unwrap().store.max_message_size, 1000);
        // A file too small for any record is still refused.
        let p = write(dir.path(), "d.conf", "brokerName=d\nmappedFileSizeCommitLog=4096\n");
        let e = load_broker_config(&p).unwrap_err().to_string();
        assert!(e.contains("mappedFileSizeCommitLog"), "{e}");
    }

    #[test]
    fn only_regular_broker_config_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        // A directory, a FIFO and an oversized file get clear errors, at once.
        let e = load_broker_config(dir.path()).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        let fifo = dir.path().join("fifo.conf");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = load_broker_config(&fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let big = write(dir.path(), "big.conf", &format!("brokerName=b\n#{}\n", "x".repeat(1 << 20)));
        let e = load_broker_config(&big).unwrap_err().to_string();
        assert!(e.contains("at most"), "{e}");
        let e = load_broker_config(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        // A file with no broker key at all (say /etc/passwd) is not a broker config.
        let p = write(dir.path(), "passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/bin/sh\n");
        let e = load_broker_config(&p).unwrap_err().to_string();
        assert!(e.contains("none of its 2 keys"), "{e}");
    }

    #[test]
    fn transaction_keys_have_apache_defaults_and_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "b.conf", "brokerName=b\n");
        let c = load_broker_config(&p).unwrap().config;
        assert_eq!((c.transaction_time_out, c.transaction_check_max, c.transaction_check_interval), (6000, 15, 30_000));
        assert!(!c.reject_transaction_message);
        let p = write(dir.path(), "t.conf", "brokerName=b\ntransactionCheckInterval=1000\ntransactionCheckMax=3\n");
        let c = load_broker_config(&p).unwrap().config;
        assert_eq!((c.transaction_check_interval, c.transaction_check_max), (1000, 3));
        let p = write(dir.path(), "z.conf", "brokerName=b\ntransactionCheckInterval=0\n");
        assert!(load_broker_config(&p).unwrap_err().to_string().contains("transactionCheckInterval"));
        let p = write(dir.path(), "m.conf", "brokerName=b\ntransactionCheckMax=0\n");
        assert!(load_broker_config(&p).unwrap_err().to_string().contains("transactionCheckMax"));
    }

    #[test]
    fn runtime_overlay_applies_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "b.conf", "brokerClusterName=C\nbrokerName=b\nslaveTimeout=1000\n");
        let rt = dir.path().join("rt");
        let plan = load_broker_config_with_overlay(&p, Some(&rt)).unwrap();
        assert_eq!(plan.persist_path, rt.join("C_b_0.runtime.conf"));
        assert_eq!(plan.config.slave_timeout, 1000);
        std::fs::create_dir_all(&rt).unwrap();
        std::fs::write(rt.join("C_b_0.runtime.conf"), "slaveTimeout=2500\n").unwrap();
        let plan = load_broker_config_with_overlay(&p, Some(&rt)).unwrap();
        assert_eq!(plan.config.slave_timeout, 2500);
        assert_eq!(load_broker_config(&p).unwrap().persist_path, p);
    }

    #[test]
    fn cleanup_policy_defaults_clamps_and_share() {
        let (p, notes) = CleanupConfig::default().policy();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(p, CleanupPolicy::default());

        let mut c = CleanupConfig::default();
        c.set("diskMaxUsedSpaceRatio", "99").unwrap();
        c.set("diskSpaceWarningLevelRatio", "95").unwrap(); // Apache 5's percent form
        c.set("diskSpaceCleanForciblyRatio", "0.2").unwrap();
        c.set("deleteFileBatchMax", "0").unwrap();
        c.set("replicasPerDiskPartition", "4").unwrap();
        c.set("deleteWhen", "01;13").unwrap();
        c.set("fileReservedTime", "2").unwrap();
        let (p, notes) = c.policy();
        assert_eq!(p.disk_max_used_ratio, 0.95);
        assert_eq!(p.warning_ratio, 0.90);
        assert_eq!(p.clean_forcibly_ratio, 0.30);
        assert_eq!(p.delete_file_batch_max, 1);
        assert_eq!(p.disk_share, 0.25);
        assert_eq!(p.delete_when_hours, vec![1, 13]);
        assert_eq!(p.file_reserved_ms, 7_200_000);
        assert_eq!(notes.len(), 3, "{notes:?}");
        c.set("diskSpaceWarningLevelRatio", "80").unwrap();
        assert_eq!(c.policy().0.warning_ratio, 0.80);

        // RIP-31's key wins over replicasPerDiskPartition.
        c.set("quotaPercentForDiskPartition", "0.5").unwrap();
        assert_eq!(c.policy().0.disk_share, 0.5);
    }
}
