//! Disk usage and file cleanup: Apache's `CleanCommitLogService` / `CleanConsumeQueueService`
//! decision (`isSpaceToDelete`), with the RIP-31 logical quota of a broker sharing its partition.
//!
//! The decision is a pure function ([`assess`]) of a [`CleanupPolicy`] and a [`UsageSample`], so it
//! can be tested with injected numbers; [`crate::store::MessageStore::run_cleanup`] measures the
//! sample through a [`DiskProbe`] (the real one is [`StatvfsProbe`]), applies the verdict (running
//! flag DISK_FULL, deletions) and returns a [`CleanupReport`].

use std::path::{Path, PathBuf};

/// The values that drive cleanup, already clamped (see the broker's `CleanupConfig::policy`).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanupPolicy {
    /// Local hours of the day when expired files are deleted (`deleteWhen`).
    pub delete_when_hours: Vec<u32>,
    /// A file is expired this long after its last modification (`fileReservedTime`, in ms).
    pub file_reserved_ms: i64,
    /// Usage above which expired files go whatever the hour (`diskMaxUsedSpaceRatio` / 100).
    pub disk_max_used_ratio: f64,
    /// Physical usage above which the oldest files go even if not expired
    /// (`diskSpaceCleanForciblyRatio`).
    pub clean_forcibly_ratio: f64,
    /// Physical usage above which writes are refused (`diskSpaceWarningLevelRatio`).
    pub warning_ratio: f64,
    /// Allow deleting files that have not expired (`cleanFileForciblyEnable`).
    pub clean_file_forcibly: bool,
    /// Most commitlog files deleted per run (`deleteFileBatchMax`).
    pub delete_file_batch_max: usize,
    /// This store's share of its partition (`quotaPercentForDiskPartition`, or
    /// `1 / replicasPerDiskPartition`); below 1 the logical quota rules apply.
    pub disk_share: f64,
    /// Logical usage above which the oldest files go (`logicalDiskSpaceCleanForciblyThreshold`).
    pub logical_clean_forcibly_threshold: f64,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy {
            delete_when_hours: vec![4],
            file_reserved_ms: 72 * 3_600_000,
            disk_max_used_ratio: 0.75,
            clean_forcibly_ratio: 0.85,
            warning_ratio: 0.90,
            clean_file_forcibly: true,
            delete_file_batch_max: 10,
            disk_share: 1.0,
            logical_clean_forcibly_threshold: 0.8,
        }
    }
}

impl CleanupPolicy {
    /// True when a quota applies (the partition is shared).
    pub fn is_shared(&self) -> bool {
        self.disk_share < 1.0
    }
}

/// `deleteWhen` as hours: `;`-separated, each an hour 0..23 (others are ignored, as Apache's
/// `isItTimeToDo` never matches them).
pub fn parse_delete_when(s: &str) -> Vec<u32> {
    s.split(';').filter_map(|h| h.trim().parse::<u32>().ok()).filter(|h| *h < 24).collect()
}

/// Usage of one disk partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionUsage {
    /// Used fraction as `df` shows it: `ceil(used * 100 / (used + available)) / 100`.
    pub ratio: f64,
    /// Size of the partition in bytes.
    pub total_bytes: u64,
}

/// Measures the partition holding a path.
pub trait DiskProbe: Send + Sync {
    /// The partition's usage, `None` if the path does not exist or cannot be measured.
    fn partition(&self, path: &Path) -> Option<PartitionUsage>;
}

/// The real probe: `statvfs(2)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatvfsProbe;

/// `df`'s Use%: `ceil(used * 100 / (used + available)) / 100` where used = total − free (blocks).
pub fn df_ratio(total: u64, free: u64, available: u64) -> f64 {
    let used = total.saturating_sub(free);
    let denom = used + available;
    if denom == 0 {
        return 0.0;
    }
    (used * 100).div_ceil(denom) as f64 / 100.0
}

impl DiskProbe for StatvfsProbe {
    fn partition(&self, path: &Path) -> Option<PartitionUsage> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: zeroed plain C struct filled by the call.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid NUL-terminated path and a valid out pointer.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return None;
        }
        let frsize = if st.f_frsize > 0 { st.f_frsize as u64 } else { st.f_bsize as u64 };
        let (total, free, avail) = (st.f_blocks as u64, st.f_bfree as u64, st.f_bavail as u64);
        Some(PartitionUsage { ratio: df_ratio(total, free, avail), total_bytes: total * frsize })
    }
}

/// What one assessment looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsageSample {
    /// The commitlog directory's partition.
    pub commit_log: Option<PartitionUsage>,
    /// The consume queue directory's partition.
    pub consume_queue: Option<PartitionUsage>,
    /// Bytes of this store's commitlog, consume queue and index files.
    pub logical_bytes: u64,
}

/// How far usage is past the thresholds (ordered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Below `diskMaxUsedSpaceRatio`.
    Normal,
    /// Above `diskMaxUsedSpaceRatio`: expired files go at once.
    AboveMaxUsed,
    /// Above the clean-forcibly ratio: the oldest files go even if not expired.
    AboveCleanForcibly,
    /// Above the warning level (physical only): writes are refused.
    AboveWarning,
}

impl Level {
    /// A word for logs.
    pub fn name(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::AboveMaxUsed => "above diskMaxUsedSpaceRatio",
            Level::AboveCleanForcibly => "above the clean-forcibly ratio",
            Level::AboveWarning => "above the warning level",
        }
    }
}

/// The verdict of one assessment.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Commitlog partition ratio (−1 if unknown).
    pub commit_log_ratio: f64,
    /// Consume queue partition ratio (−1 if unknown).
    pub consume_queue_ratio: f64,
    /// This store's quota: partition size × share (0 if the partition is unknown).
    pub quota_bytes: u64,
    /// Bytes of this store's commitlog, consume queue and index files.
    pub logical_bytes: u64,
    /// `logical_bytes / quota_bytes` (−1 if the quota is unknown).
    pub logical_ratio: f64,
    /// Physical level: the worse of the two partitions.
    pub physical_level: Level,
    /// Logical level (always [`Level::Normal`] when the partition is not shared).
    pub logical_level: Level,
    /// Writes must be refused (DISK_FULL).
    pub disk_full: bool,
    /// Expired files should go now (Apache's `isSpaceToDelete`).
    pub space_to_delete: bool,
    /// Files should go even if not expired (Apache's `cleanImmediately`).
    pub clean_immediately: bool,
    /// Why, in words (names the ratio and the threshold it passed), if anything is past a threshold.
    pub reason: Option<String>,
}

fn level(r: f64, p: &CleanupPolicy) -> Level {
    if r > p.warning_ratio {
        Level::AboveWarning
    } else if r > p.clean_forcibly_ratio {
        Level::AboveCleanForcibly
    } else if r > p.disk_max_used_ratio {
        Level::AboveMaxUsed
    } else {
        Level::Normal
    }
}

fn describe(what: &str, r: f64, l: Level, p: &CleanupPolicy) -> String {
    match l {
        Level::AboveWarning => format!("{what} {r:.2} > warning level {:.2}", p.warning_ratio),
        Level::AboveCleanForcibly => format!("{what} {r:.2} > clean forcibly ratio {:.2}", p.clean_forcibly_ratio),
        Level::AboveMaxUsed => format!("{what} {r:.2} > diskMaxUsedSpaceRatio {:.2}", p.disk_max_used_ratio),
        Level::Normal => format!("{what} {r:.2}"),
    }
}

/// Apache's `isSpaceToDelete`, made symmetric: DISK_FULL is set while either partition is above
/// the warning level and cleared as soon as both are at or below it (Apache 5 clears it through
/// its separate `isSpaceFull` check every 10 s). Above the clean-forcibly ratio files go at once;
/// otherwise, on an unshared partition, above `diskMaxUsedSpaceRatio` (or unknown usage) expired
/// files go; on a shared one the logical ratio decides: above
/// `logicalDiskSpaceCleanForciblyThreshold` at once, above `diskMaxUsedSpaceRatio` expired files.
pub fn assess(p: &CleanupPolicy, s: &UsageSample) -> Assessment {
    let cl = s.commit_log.map_or(-1.0, |u| u.ratio);
    let cq = s.consume_queue.map_or(-1.0, |u| u.ratio);
    let quota_bytes = s.commit_log.map_or(0, |u| (u.total_bytes as f64 * p.disk_share.clamp(0.0, 1.0)) as u64);
    let logical_ratio = if quota_bytes > 0 { s.logical_bytes as f64 / quota_bytes as f64 } else { -1.0 };
    let (lcl, lcq) = (level(cl, p), level(cq, p));
    let physical_level = lcl.max(lcq);
    let mut a = Assessment {
        commit_log_ratio: cl,
        consume_queue_ratio: cq,
        quota_bytes,
        logical_bytes: s.logical_bytes,
        logical_ratio,
        physical_level,
        logical_level: Level::Normal,
        disk_full: physical_level == Level::AboveWarning,
        space_to_delete: false,
        clean_immediately: false,
        reason: None,
    };
    let physical_reason = || {
        if lcl >= lcq {
            describe("commitlog disk ratio", cl, lcl, p)
        } else {
            describe("consume queue disk ratio", cq, lcq, p)
        }
    };
    if physical_level >= Level::AboveCleanForcibly {
        a.clean_immediately = true;
        a.space_to_delete = true;
        a.reason = Some(physical_reason());
    } else if !p.is_shared() {
        if cl < 0.0 || cq < 0.0 {
            a.space_to_delete = true;
            a.reason = Some("disk usage unknown".into());
        } else if physical_level == Level::AboveMaxUsed {
            a.space_to_delete = true;
            a.reason = Some(physical_reason());
        }
    } else if logical_ratio < 0.0 {
        a.space_to_delete = true;
        a.reason = Some("disk quota unknown".into());
    } else {
        if logical_ratio > p.logical_clean_forcibly_threshold {
            a.logical_level = Level::AboveCleanForcibly;
            a.clean_immediately = true;
            a.space_to_delete = true;
        } else if logical_ratio > p.disk_max_used_ratio {
            a.logical_level = Level::AboveMaxUsed;
            a.space_to_delete = true;
        }
        if a.space_to_delete {
            let limit = if a.clean_immediately { p.logical_clean_forcibly_threshold } else { p.disk_max_used_ratio };
            a.reason = Some(format!(
                "logical disk ratio {logical_ratio:.2} ({} of quota {} bytes) > {limit:.2}",
                s.logical_bytes, quota_bytes
            ));
        }
    }
    a
}

/// The time a cleanup run sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupClock {
    /// Now, ms since the epoch.
    pub now_ms: i64,
    /// The local hour of day (0..23), for `deleteWhen`.
    pub local_hour: u32,
}

impl CleanupClock {
    /// The wall clock.
    pub fn now() -> CleanupClock {
        let now_ms = super::message::now_ms();
        CleanupClock { now_ms, local_hour: local_hour(now_ms) }
    }
}

/// Local hour of day of a time in ms (UTC if the local time cannot be computed).
pub fn local_hour(ms: i64) -> u32 {
    match crate::util::local_time((ms / 1000) * 1000) {
        Some(t) => t.hour() as u32,
        None => ((ms / 3_600_000) % 24) as u32,
    }
}

/// What one cleanup run saw and did.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanupReport {
    /// The verdict.
    pub assessment: Assessment,
    /// The hour matched `deleteWhen`.
    pub time_up: bool,
    /// A manual trigger (TRIGGER_DELETE_FILES) was pending.
    pub manual: bool,
    /// Files were considered for deletion (time up, usage, or manual).
    pub deletion_ran: bool,
    /// Non-expired files could go (`cleanFileForciblyEnable && cleanImmediately`).
    pub clean_at_once: bool,
    /// Commitlog files deleted, oldest first.
    pub deleted_commit_log_files: Vec<PathBuf>,
    /// Consume queue files deleted.
    pub deleted_consume_queue_files: usize,
    /// Index files deleted.
    pub deleted_index_files: usize,
    /// Commitlog min offset before the run.
    pub min_offset_before: i64,
    /// Commitlog min offset after the run.
    pub min_offset_after: i64,
    /// DISK_FULL was set (`Some(true)`) or cleared (`Some(false)`) by this run.
    pub disk_full_changed: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn sample(cl: f64, cq: f64, logical: u64) -> UsageSample {
        UsageSample {
            commit_log: Some(PartitionUsage { ratio: cl, total_bytes: 100 * GIB }),
            consume_queue: Some(PartitionUsage { ratio: cq, total_bytes: 100 * GIB }),
            logical_bytes: logical,
        }
    }

    #[test]
    fn df_ratio_matches_df_use_percent() {
        assert_eq!(df_ratio(1000, 1000, 950), 0.0);
        // used 100, available 850 (50 reserved): 100*100/950 = 10.5 → 11 %.
        assert_eq!(df_ratio(1000, 900, 850), 0.11);
        assert_eq!(df_ratio(1000, 0, 0), 1.0);
        assert_eq!(df_ratio(0, 0, 0), 0.0);
    }

    #[test]
    fn unshared_partition_follows_apache() {
        let p = CleanupPolicy::default();
        let a = assess(&p, &sample(0.50, 0.50, 10 * GIB));
        assert!(!a.space_to_delete && !a.clean_immediately && !a.disk_full && a.reason.is_none());
        assert_eq!(a.quota_bytes, 100 * GIB);
        let a = assess(&p, &sample(0.76, 0.50, 0));
        assert!(a.space_to_delete && !a.clean_immediately && !a.disk_full);
        assert_eq!(a.physical_level, Level::AboveMaxUsed);
        let a = assess(&p, &sample(0.50, 0.86, 0));
        assert!(a.space_to_delete && a.clean_immediately && !a.disk_full);
        assert_eq!(a.reason.as_deref(), Some("consume queue disk ratio 0.86 > clean forcibly ratio 0.85"));
        let a = assess(&p, &sample(0.93, 0.93, 0));
        assert!(a.space_to_delete && a.clean_immediately && a.disk_full);
        assert_eq!(a.reason.as_deref(), Some("commitlog disk ratio 0.93 > warning level 0.90"));
        // Exactly at a threshold is not above it.
        let a = assess(&p, &sample(0.90, 0.75, 0));
        assert!(!a.disk_full && a.clean_immediately);
        assert!(!assess(&p, &sample(0.75, 0.75, 0)).space_to_delete);
        // Unknown usage: delete expired files (Apache: ratio −1 < 0).
        let mut s = sample(0.1, 0.1, 0);
        s.consume_queue = None;
        let a = assess(&p, &s);
        assert!(a.space_to_delete && !a.clean_immediately && !a.disk_full);
    }

    #[test]
    fn shared_partition_uses_the_logical_quota() {
        let p = CleanupPolicy { disk_share: 0.5, ..Default::default() };
        // Quota 50 GiB. 30 GiB = 0.6: nothing.
        let a = assess(&p, &sample(0.70, 0.70, 30 * GIB));
        assert_eq!(a.quota_bytes, 50 * GIB);
        assert!((a.logical_ratio - 0.6).abs() < 1e-9);
        assert!(!a.space_to_delete && !a.clean_immediately);
        // Physical 0.80 > diskMaxUsedSpaceRatio does not matter on a shared partition.
        assert!(!assess(&p, &sample(0.80, 0.80, 30 * GIB)).space_to_delete);
        // 38 GiB = 0.76: expired files.
        let a = assess(&p, &sample(0.50, 0.50, 38 * GIB));
        assert!(a.space_to_delete && !a.clean_immediately);
        assert_eq!(a.logical_level, Level::AboveMaxUsed);
        // 41 GiB = 0.82: forcibly.
        let a = assess(&p, &sample(0.50, 0.50, 41 * GIB));
        assert!(a.space_to_delete && a.clean_immediately && !a.disk_full);
        assert_eq!(a.logical_level, Level::AboveCleanForcibly);
        assert!(a.reason.as_deref().is_some_and(|r| r.starts_with("logical disk ratio 0.82")), "{:?}", a.reason);
        // The physical thresholds still apply first.
        let a = assess(&p, &sample(0.91, 0.50, GIB));
        assert!(a.disk_full && a.clean_immediately);
        assert_eq!(a.logical_level, Level::Normal);
        // Unknown partition: quota unknown, expired files go, nothing forced.
        let a = assess(&p, &UsageSample { commit_log: None, consume_queue: None, logical_bytes: GIB });
        assert!(a.space_to_delete && !a.clean_immediately && !a.disk_full);
        assert_eq!(a.logical_ratio, -1.0);
    }

    #[test]
    fn delete_when_and_hours() {
        assert_eq!(parse_delete_when("04"), vec![4]);
        assert_eq!(parse_delete_when("01;04; 23;24;x"), vec![1, 4, 23]);
        let h = local_hour(super::super::message::now_ms());
        assert!(h < 24);
    }
}
