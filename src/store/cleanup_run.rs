//! Running cleanup: samples disk usage, applies the [`cleanup::assess`] verdict (DISK_FULL, level
//! changes) and deletes expired commitlog files, then the consume queue and index files behind
//! the new commitlog min offset.

use std::sync::atomic::Ordering;

use super::cleanup;
use super::error::Result;
use super::{running_flags, MessageStore};

/// A replicated (DLedger) log keeps its files an hour longer than a plain commitlog: Apache sets
/// DLedger's `fileReservedHours` to `fileReservedTime + 1`.
pub const REPLICA_EXTRA_RESERVED_MS: i64 = 3_600_000;

impl MessageStore {
    /// Samples disk usage: the partitions of the commitlog and consume queue directories and this
    /// store's logical usage.
    pub fn sample_disk_usage(&self, probe: &dyn cleanup::DiskProbe) -> cleanup::UsageSample {
        let root = &self.shared.config.store_path_root_dir;
        // A replicated log's data files may live elsewhere (`storePathDLedgerCommitLog`).
        let commit_log_dir = match &self.shared.replica {
            Some(_) => self.shared.commitlog.files().dir().to_path_buf(),
            None => self.shared.config.commit_log_dir(),
        };
        cleanup::UsageSample {
            commit_log: probe.partition(&commit_log_dir),
            consume_queue: probe.partition(&root.join("consumequeue")),
            logical_bytes: self.logical_disk_usage(),
        }
    }

    /// The assessment of the latest cleanup run, if any ran.
    pub fn last_disk_assessment(&self) -> Option<cleanup::Assessment> {
        self.shared.last_assessment.lock().clone()
    }

    /// Asks the next 20 cleanup runs to delete expired files whatever the hour and usage
    /// (Apache's `executeDeleteFilesManually`, TRIGGER_DELETE_FILES).
    pub fn trigger_delete_files(&self) {
        self.shared.cleanup.lock().manual_runs = 20;
        tracing::info!("executeDeleteFilesManually was invoked");
    }

    /// One cleanup run: measures usage with `probe`, sets or clears DISK_FULL, and if the hour
    /// matches `deleteWhen`, usage is past a threshold or a manual trigger is pending, deletes the
    /// oldest commitlog files that expired (or any but the current one when cleaning at once), at
    /// most `deleteFileBatchMax`, never beyond what is dispatched; then the consume queue and index
    /// files wholly behind the new commitlog min offset. Every deletion and threshold crossing is
    /// logged (in the caller's span).
    pub fn run_cleanup(
        &self,
        policy: &cleanup::CleanupPolicy,
        probe: &dyn cleanup::DiskProbe,
        clock: cleanup::CleanupClock,
    ) -> Result<cleanup::CleanupReport> {
        use cleanup::Level;
        let s = &self.shared;
        let mut st = s.cleanup.lock();
        let sample = self.sample_disk_usage(probe);
        let a = cleanup::assess(policy, &sample);
        *s.last_assessment.lock() = Some(a.clone());
        let mut report = cleanup::CleanupReport {
            assessment: a.clone(),
            time_up: false,
            manual: false,
            deletion_ran: false,
            clean_at_once: false,
            deleted_commit_log_files: Vec::new(),
            deleted_consume_queue_files: 0,
            deleted_index_files: 0,
            min_offset_before: s.commitlog.min_offset(),
            min_offset_after: s.commitlog.min_offset(),
            disk_full_changed: None,
        };
        let reason = a.reason.clone().unwrap_or_default();
        if a.disk_full {
            let prev = s.flags.fetch_or(running_flags::DISK_FULL, Ordering::AcqRel);
            if prev & running_flags::DISK_FULL == 0 {
                report.disk_full_changed = Some(true);
                tracing::error!(
                    commit_log_ratio = a.commit_log_ratio,
                    consume_queue_ratio = a.consume_queue_ratio,
                    "physic disk maybe full soon ({reason}), so mark disk full: writes are refused"
                );
            }
        } else {
            let prev = s.flags.fetch_and(!running_flags::DISK_FULL, Ordering::AcqRel);
            if prev & running_flags::DISK_FULL != 0 {
                report.disk_full_changed = Some(false);
                tracing::info!(
                    commit_log_ratio = a.commit_log_ratio,
                    consume_queue_ratio = a.consume_queue_ratio,
                    warning_level = policy.warning_ratio,
                    "physic disk space OK, so mark disk ok: writes accepted again"
                );
            }
        }
        if a.physical_level != st.physical_level {
            let (from, to) = (st.physical_level, a.physical_level);
            if to > from {
                tracing::warn!(
                    "physical disk usage rose from {} to {} (commitlog disk ratio {:.2}, consume queue disk ratio {:.2})",
                    from.name(),
                    to.name(),
                    a.commit_log_ratio,
                    a.consume_queue_ratio
                );
            } else {
                tracing::info!(
                    "physical disk usage fell from {} to {} (commitlog disk ratio {:.2}, consume queue disk ratio {:.2})",
                    from.name(),
                    to.name(),
                    a.commit_log_ratio,
                    a.consume_queue_ratio
                );
            }
            st.physical_level = to;
        }
        if a.logical_level != st.logical_level {
            let (from, to) = (st.logical_level, a.logical_level);
            if to > from {
                tracing::warn!(
                    "logical disk usage rose from {} to {} (logical disk ratio {:.2}: {} of quota {} bytes)",
                    from.name(),
                    to.name(),
                    a.logical_ratio,
                    a.logical_bytes,
                    a.quota_bytes
                );
            } else {
                tracing::info!(
                    "logical disk usage fell from {} to {} (logical disk ratio {:.2}: {} of quota {} bytes)",
                    from.name(),
                    to.name(),
                    a.logical_ratio,
                    a.logical_bytes,
                    a.quota_bytes
                );
            }
            st.logical_level = to;
        }
        if !a.space_to_delete && a.physical_level == Level::Normal {
            st.warned_stuck = false;
        }

        report.time_up = policy.delete_when_hours.contains(&clock.local_hour);
        report.manual = st.manual_runs > 0;
        if report.time_up || a.space_to_delete || report.manual {
            if report.manual {
                st.manual_runs -= 1;
            }
            report.deletion_ran = true;
            report.clean_at_once = policy.clean_file_forcibly && a.clean_immediately;
            let dispatched = s.reput_from.load(Ordering::Acquire).max(0) as u64;
            let file_size = s.commitlog.files().file_size();
            let (reserved, now, at_once) = (policy.file_reserved_ms, clock.now_ms, report.clean_at_once);
            let old_files = s.commitlog.old_files();
            if let (Some(log), None) = (&s.replica, old_files) {
                // The log deletes its own files (Apache: DLedger's clean-space service with the
                // broker's keys, `fileReservedHours = fileReservedTime + 1`), never beyond what
                // is committed and dispatched here.
                let req = super::replicated::ReplicaCleanup {
                    max: policy.delete_file_batch_max,
                    below: dispatched,
                    reserved_ms: reserved.saturating_add(REPLICA_EXTRA_RESERVED_MS),
                    now_ms: now,
                    at_once,
                };
                let deleted = log.delete_files(req).map_err(|e| {
                    tracing::error!(error = %e, "cannot delete replicated log files");
                    super::error::StoreError::Replica(e)
                })?;
                for p in &deleted {
                    tracing::info!(
                        path = %p.display(),
                        forcibly = at_once,
                        time_up = report.time_up,
                        manual = report.manual,
                        "deleted replicated log data file{}",
                        a.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                    );
                }
                if deleted.is_empty() && a.space_to_delete && !st.warned_stuck {
                    st.warned_stuck = true;
                    tracing::warn!("disk space will be full soon, but no file could be deleted ({reason})");
                } else if !deleted.is_empty() {
                    st.warned_stuck = false;
                }
                report.deleted_commit_log_files = deleted;
            }
            let deletable = |f: &super::mapped_file::MappedFile| {
                let dispatched_all = f.from_offset() + file_size <= dispatched;
                let expired = f.last_modified_ms().is_some_and(|m| m.saturating_add(reserved) <= now);
                dispatched_all && (at_once || expired)
            };
            let taken = match (&s.replica, old_files) {
                // A plain commitlog kept below a replicated log goes first, its last file too; the
                // log's own files wait until it is gone (Apache's `DLedgerCommitLog.deleteExpiredFile`).
                (Some(_), Some(old)) => old.take_leading_all(policy.delete_file_batch_max, deletable),
                (Some(_), None) => Vec::new(),
                (None, _) => s.commitlog.files().take_leading(policy.delete_file_batch_max, deletable),
            };
            let mut first_err = None;
            for f in &taken {
                match f.destroy() {
                    Ok(()) => {
                        tracing::info!(
                            path = %f.path().display(),
                            forcibly = at_once,
                            time_up = report.time_up,
                            manual = report.manual,
                            "deleted commitlog file{}",
                            a.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                        );
                        report.deleted_commit_log_files.push(f.path().to_path_buf());
                    }
                    Err(e) => {
                        tracing::error!(path = %f.path().display(), error = %e, "cannot delete commitlog file");
                        first_err.get_or_insert(e);
                    }
                }
            }
            if s.replica.is_some() && old_files.is_none() {
            } else if taken.is_empty() && a.space_to_delete && !st.warned_stuck {
                st.warned_stuck = true;
                tracing::warn!("disk space will be full soon, but no file could be deleted ({reason})");
            } else if !taken.is_empty() {
                st.warned_stuck = false;
            }
            if let Some(e) = first_err {
                return Err(e);
            }
        }

        let cl_min = s.commitlog.min_offset();
        report.min_offset_after = cl_min;
        if cl_min > st.last_logics_min {
            for q in s.cqs.all() {
                let n = q.delete_expired(cl_min)?;
                if n > 0 {
                    tracing::info!(
                        topic = q.topic(),
                        queue_id = q.queue_id(),
                        files = n,
                        new_min_queue_offset = q.min_offset_in_queue(),
                        "deleted consume queue files behind commitlog min offset {cl_min}"
                    );
                }
                report.deleted_consume_queue_files += n;
            }
            report.deleted_index_files = s.index.delete_expired(cl_min)?;
            st.last_logics_min = cl_min;
        }
        if report.deletion_ran && !report.deleted_commit_log_files.is_empty() {
            tracing::info!(
                commit_log_files = report.deleted_commit_log_files.len(),
                consume_queue_files = report.deleted_consume_queue_files,
                index_files = report.deleted_index_files,
                min_offset_before = report.min_offset_before,
                min_offset_after = report.min_offset_after,
                logical_bytes_after = self.logical_disk_usage(),
                "cleanup run deleted files"
            );
        }
        Ok(report)
    }
}
