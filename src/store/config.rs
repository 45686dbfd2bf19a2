//! Message store configuration (`MessageStoreConfig`), with Apache RocketMQ defaults.

use std::path::PathBuf;

/// When is a put acknowledged with respect to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FlushDiskType {
    /// `ASYNC_FLUSH`: periodic flush; puts return once the bytes are in the page cache.
    #[serde(rename = "ASYNC_FLUSH")]
    AsyncFlush,
    /// `SYNC_FLUSH`: group commit; puts return once their bytes are msync'ed.
    #[serde(rename = "SYNC_FLUSH")]
    SyncFlush,
}

/// Store configuration. Field docs name the Apache property key.
#[derive(Debug, Clone)]
pub struct MessageStoreConfig {
    /// `storePathRootDir` (default `~/store`).
    pub store_path_root_dir: PathBuf,
    /// `storePathCommitLog` (default `<storePathRootDir>/commitlog`; multi-path not supported).
    pub store_path_commit_log: Option<PathBuf>,
    /// `mappedFileSizeCommitLog` (default 1 GiB).
    pub mapped_file_size_commit_log: u64,
    /// `mappedFileSizeConsumeQueue` (default 6,000,000; rounded up to a multiple of 20).
    pub mapped_file_size_consume_queue: u64,
    /// `flushDiskType` (default ASYNC_FLUSH).
    pub flush_disk_type: FlushDiskType,
    /// `flushIntervalCommitLog` in ms (default 500), async flush period.
    pub flush_interval_commit_log: u64,
    /// `flushCommitLogLeastPages` (default 4), pages of 4 KiB needed for a periodic async flush.
    pub flush_commit_log_least_pages: usize,
    /// `flushCommitLogThoroughInterval` in ms (default 10000): full flush at least that often.
    pub flush_commit_log_thorough_interval: u64,
    /// `flushIntervalConsumeQueue` in ms (default 1000): consume queue / index / checkpoint flush period.
    pub flush_interval_consume_queue: u64,
    /// `syncFlushTimeout` in ms (default 5000): SYNC_FLUSH wait before FLUSH_DISK_TIMEOUT.
    pub sync_flush_timeout: u64,
    /// `checkCRCOnRecover` (default true).
    pub check_crc_on_recover: bool,
    /// `maxMessageSize` (default 4 MiB), body size limit.
    pub max_message_size: usize,
    /// `messageIndexEnable` (default true).
    pub message_index_enable: bool,
    /// `maxHashSlotNum` (default 5,000,000).
    pub max_hash_slot_num: u32,
    /// `maxIndexNum` (default 20,000,000).
    pub max_index_num: u32,
    /// `defaultQueryMaxNum` (default 32).
    pub default_query_max_num: usize,
    /// `maxTransferCountOnMessageInMemory` (default 32): most messages one pull returns.
    pub max_transfer_count_on_message_in_memory: usize,
    /// `maxTransferBytesOnMessageInMemory` (default 256 KiB): most bytes one pull returns (the
    /// first message always goes).
    pub max_transfer_bytes_on_message_in_memory: usize,
    /// `maxMsgsNumBatch` (default 64): upper bound of a key query's result.
    pub max_msgs_num_batch: usize,
    /// `autoMessageVersionOnTopicLen` (default true): v2 records for topics longer than 127.
    pub auto_message_version_on_topic_len: bool,
    /// `messageDelayLevel` (default `1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h`),
    /// used to compute the tagsCode (deliver time) of `SCHEDULE_TOPIC_XXXX` records at dispatch.
    pub message_delay_level: String,
    /// This store's share of its disk partition (0 < share ≤ 1, default 1): not a key of its own,
    /// the broker sets it from `quotaPercentForDiskPartition` / `replicasPerDiskPartition`. The
    /// store's quota is the commitlog partition's size times this share; new index files are
    /// capped at [`INDEX_QUOTA_DIVISOR`]th of it (see [`MessageStoreConfig::index_file_cap`]).
    pub disk_share: f64,
}

/// The store keys an operator may change while the store runs (UPDATE_BROKER_CONFIG), read by
/// the store each time it needs them: Apache's flush services, sync flush and queries read them
/// from the live `MessageStoreConfig` the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveStoreKeys {
    /// `maxMessageSize`.
    pub max_message_size: usize,
    /// `flushIntervalCommitLog`, ms.
    pub flush_interval_commit_log: u64,
    /// `flushCommitLogLeastPages`.
    pub flush_commit_log_least_pages: usize,
    /// `flushCommitLogThoroughInterval`, ms.
    pub flush_commit_log_thorough_interval: u64,
    /// `flushIntervalConsumeQueue`, ms.
    pub flush_interval_consume_queue: u64,
    /// `syncFlushTimeout`, ms.
    pub sync_flush_timeout: u64,
    /// `defaultQueryMaxNum`.
    pub default_query_max_num: usize,
    /// `maxTransferCountOnMessageInMemory`.
    pub max_transfer_count_on_message_in_memory: usize,
    /// `maxTransferBytesOnMessageInMemory`.
    pub max_transfer_bytes_on_message_in_memory: usize,
}

impl LiveStoreKeys {
    /// The values a store starts with.
    pub fn from_config(c: &MessageStoreConfig) -> Self {
        LiveStoreKeys {
            max_message_size: c.max_message_size,
            flush_interval_commit_log: c.flush_interval_commit_log,
            flush_commit_log_least_pages: c.flush_commit_log_least_pages,
            flush_commit_log_thorough_interval: c.flush_commit_log_thorough_interval,
            flush_interval_consume_queue: c.flush_interval_consume_queue,
            sync_flush_timeout: c.sync_flush_timeout,
            default_query_max_num: c.default_query_max_num,
            max_transfer_count_on_message_in_memory: c.max_transfer_count_on_message_in_memory,
            max_transfer_bytes_on_message_in_memory: c.max_transfer_bytes_on_message_in_memory,
        }
    }
}

/// New index files take at most this fraction (1/n) of the store's disk quota: with a small quota,
/// `maxHashSlotNum` and `maxIndexNum` are scaled down for them.
pub const INDEX_QUOTA_DIVISOR: u64 = 8;

impl Default for MessageStoreConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        MessageStoreConfig {
            store_path_root_dir: home.join("store"),
            store_path_commit_log: None,
            mapped_file_size_commit_log: 1024 * 1024 * 1024,
            mapped_file_size_consume_queue: 300_000 * 20,
            flush_disk_type: FlushDiskType::AsyncFlush,
            flush_interval_commit_log: 500,
            flush_commit_log_least_pages: 4,
            flush_commit_log_thorough_interval: 10_000,
            flush_interval_consume_queue: 1000,
            sync_flush_timeout: 5000,
            check_crc_on_recover: true,
            max_message_size: 4 * 1024 * 1024,
            message_index_enable: true,
            max_hash_slot_num: 5_000_000,
            max_index_num: 20_000_000,
            default_query_max_num: 32,
            max_transfer_count_on_message_in_memory: 32,
            max_transfer_bytes_on_message_in_memory: 256 * 1024,
            max_msgs_num_batch: 64,
            auto_message_version_on_topic_len: true,
            message_delay_level: "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".to_string(),
            disk_share: 1.0,
        }
    }
}

impl MessageStoreConfig {
    /// A config rooted at `root` with other fields at their defaults.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        MessageStoreConfig { store_path_root_dir: root.into(), ..Default::default() }
    }

    /// Applies one broker property (camelCase key, Java `Properties` value). Returns `Ok(false)`
    /// when `key` is not a store key, an error when the value does not parse.
    pub fn set_property(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let v = value.trim();
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, String> {
            v.parse::<T>().map_err(|_| format!("invalid value {v:?} for {k}"))
        }
        fn boolean(k: &str, v: &str) -> Result<bool, String> {
            match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("invalid boolean {v:?} for {k}")),
            }
        }
        match key {
            "storePathRootDir" => self.store_path_root_dir = PathBuf::from(v),
            "storePathCommitLog" => {
                if v.contains(',') {
                    return Err("storePathCommitLog with several paths is not supported".into());
                }
                self.store_path_commit_log = Some(PathBuf::from(v))
            }
            "mappedFileSizeCommitLog" => self.mapped_file_size_commit_log = num(key, v)?,
            "mappedFileSizeConsumeQueue" => self.mapped_file_size_consume_queue = num(key, v)?,
            "flushDiskType" => {
                self.flush_disk_type = match v {
                    "ASYNC_FLUSH" => FlushDiskType::AsyncFlush,
                    "SYNC_FLUSH" => FlushDiskType::SyncFlush,
                    _ => return Err(format!("invalid flushDiskType {v:?}")),
                }
            }
            "flushIntervalCommitLog" => self.flush_interval_commit_log = num(key, v)?,
            "flushCommitLogLeastPages" => self.flush_commit_log_least_pages = num(key, v)?,
            "flushCommitLogThoroughInterval" => self.flush_commit_log_thorough_interval = num(key, v)?,
            "flushIntervalConsumeQueue" => self.flush_interval_consume_queue = num(key, v)?,
            "syncFlushTimeout" => self.sync_flush_timeout = num(key, v)?,
            "checkCRCOnRecover" => self.check_crc_on_recover = boolean(key, v)?,
            "maxMessageSize" => self.max_message_size = num(key, v)?,
            "messageIndexEnable" => self.message_index_enable = boolean(key, v)?,
            "maxHashSlotNum" => self.max_hash_slot_num = num(key, v)?,
            "maxIndexNum" => self.max_index_num = num(key, v)?,
            "defaultQueryMaxNum" => self.default_query_max_num = num(key, v)?,
            "maxTransferCountOnMessageInMemory" => self.max_transfer_count_on_message_in_memory = num(key, v)?,
            "maxTransferBytesOnMessageInMemory" => self.max_transfer_bytes_on_message_in_memory = num(key, v)?,
            "maxMsgsNumBatch" => self.max_msgs_num_batch = num(key, v)?,
            "autoMessageVersionOnTopicLen" => self.auto_message_version_on_topic_len = boolean(key, v)?,
            "messageDelayLevel" => self.message_delay_level = v.to_string(),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Commitlog directory.
    pub fn commit_log_dir(&self) -> PathBuf {
        self.store_path_commit_log.clone().unwrap_or_else(|| self.store_path_root_dir.join("commitlog"))
    }

    /// The store's disk quota for a commitlog partition of `partition_bytes`: the partition times
    /// [`Self::disk_share`] (taken as 1 when not in (0, 1]).
    pub fn disk_quota(&self, partition_bytes: u64) -> u64 {
        let share = if self.disk_share > 0.0 && self.disk_share <= 1.0 { self.disk_share } else { 1.0 };
        (partition_bytes as f64 * share) as u64
    }

    /// The largest index file this store creates for a commitlog partition of `partition_bytes`:
    /// 1/[`INDEX_QUOTA_DIVISOR`] of [`Self::disk_quota`].
    pub fn index_file_cap(&self, partition_bytes: u64) -> u64 {
        self.disk_quota(partition_bytes) / INDEX_QUOTA_DIVISOR
    }

    /// Consume queue file size rounded up to a multiple of 20.
    pub fn consume_queue_file_size(&self) -> u64 {
        let s = self.mapped_file_size_consume_queue.max(20);
        s.div_ceil(20) * 20
    }

    /// Parsed delay levels in ms (index 0 = level 1). Unparsable tokens are skipped.
    pub fn delay_levels_ms(&self) -> Vec<i64> {
        self.message_delay_level
            .split_whitespace()
            .filter_map(|t| {
                let (num, unit) = t.split_at(t.len().checked_sub(1)?);
                let n: i64 = num.parse().ok()?;
                let mul = match unit {
                    "s" => 1000,
                    "m" => 60_000,
                    "h" => 3_600_000,
                    "d" => 86_400_000,
                    _ => return None,
                };
                Some(n * mul)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_and_delay_levels() {
        let mut c = MessageStoreConfig::default();
        assert_eq!(c.set_property("flushDiskType", "SYNC_FLUSH"), Ok(true));
        assert_eq!(c.flush_disk_type, FlushDiskType::SyncFlush);
        assert_eq!(c.set_property("mappedFileSizeCommitLog", " 65536 "), Ok(true));
        assert_eq!(c.mapped_file_size_commit_log, 65536);
        assert_eq!(c.set_property("checkCRCOnRecover", "FALSE"), Ok(true));
        assert!(!c.check_crc_on_recover);
        assert_eq!(c.set_property("brokerName", "x"), Ok(false));
        assert!(c.set_property("maxIndexNum", "lots").is_err());
        assert!(c.set_property("storePathCommitLog", "/a,/b").is_err());
        let d = MessageStoreConfig::default().delay_levels_ms();
        assert_eq!(d.len(), 18);
        assert_eq!((d[0], d[4], d[17]), (1000, 60_000, 7_200_000));
        c.mapped_file_size_consume_queue = 1001;
        assert_eq!(c.consume_queue_file_size(), 1020);
    }
}
