//! Recovery at open: the index geometry for new files, and the commitlog recovery (normal or
//! abnormal, see the module docs of [`crate::store`]) that cuts the commitlog, consume queues and
//! index at the last valid record and tells where re-dispatch starts.

use super::cleanup;
use super::config;
use super::consume_queue;
use super::error::Result;
use super::index;
use super::message::{check_record, RecordCheck};
use super::replicated::{LogStep, ReplicatedLog};
use super::{CheckpointValues, CommitLog, MessageStore, MessageStoreConfig};

impl MessageStore {
    /// The configured index geometry, and the one for new files: capped at
    /// [`MessageStoreConfig::index_file_cap`] of the commitlog partition (warned once here when
    /// that shrinks it).
    pub(super) fn index_geometry(config: &MessageStoreConfig) -> (index::IndexGeometry, index::IndexGeometry) {
        use cleanup::DiskProbe;
        let configured = index::IndexGeometry::new(config.max_hash_slot_num, config.max_index_num);
        let Some(partition) = cleanup::StatvfsProbe.partition(&config.commit_log_dir()) else {
            return (configured, configured);
        };
        let cap = config.index_file_cap(partition.total_bytes);
        let capped = configured.capped(cap);
        if capped != configured && config.message_index_enable {
            tracing::warn!(
                "index file of {} bytes (maxHashSlotNum={}, maxIndexNum={}) is more than 1/{} of this store's \
                 disk quota of {} bytes: new index files get maxHashSlotNum={}, maxIndexNum={} ({} bytes)",
                configured.file_size(),
                configured.slots,
                configured.entries,
                config::INDEX_QUOTA_DIVISOR,
                config.disk_quota(partition.total_bytes),
                capped.slots,
                capped.entries,
                capped.file_size()
            );
        }
        (configured, capped)
    }

    pub(super) fn recover_commit_log(
        config: &MessageStoreConfig,
        commitlog: &CommitLog,
        cqs: &consume_queue::ConsumeQueueTable,
        index: &index::IndexService,
        last_exit_ok: bool,
        cp: CheckpointValues,
        index_redispatch: Option<i64>,
    ) -> Result<i64> {
        let files = commitlog.files().files();
        if files.is_empty() {
            tracing::debug!("commitlog empty: destroying consume queues");
            cqs.destroy_all()?;
            commitlog.truncate(0, false)?;
            return Ok(0);
        }
        let crc = config.check_crc_on_recover;
        let start: u64 = if last_exit_ok {
            let cl_min = files[0].from_offset();
            let dispatched = cqs.max_physic_offset();
            let mut start = if dispatched >= cl_min as i64 { dispatched as u64 } else { cl_min };
            if let Some(f) = commitlog.files().find(start) {
                let pos = (start - f.from_offset()) as usize;
                let bad = matches!(
                    check_record(f.slice(pos, f.size() - pos), crc),
                    RecordCheck::Invalid(_) | RecordCheck::Incomplete
                );
                if bad && pos != 0 {
                    tracing::warn!(
                        offset = start,
                        "dispatch position is not a record boundary; scanning its whole file"
                    );
                    start = f.from_offset();
                }
            } else if start > commitlog.files().max_offset() {
                start = cl_min;
            }
            start
        } else {
            let min_ts = cp.min_timestamp();
            let mut start = files[0].from_offset();
            for f in files.iter().rev() {
                if let Some(v) = commitlog.first_record(f, crc) {
                    if v.store_timestamp != 0 && v.store_timestamp <= min_ts {
                        start = f.from_offset();
                        break;
                    }
                }
            }
            if let Some(b) = index_redispatch {
                if let Some(f) = commitlog.files().find(b.max(0) as u64) {
                    start = start.min(f.from_offset());
                } else {
                    start = files[0].from_offset();
                }
            }
            tracing::warn!(start, "abnormal shutdown detected: recovering commitlog");
            start
        };
        let end = commitlog.scan_valid_end(start, crc);
        tracing::info!(start, end, normal = last_exit_ok, "commitlog recovered");
        commitlog.truncate(end, !last_exit_ok)?;
        for q in cqs.all() {
            q.truncate_dirty(end as i64)?;
        }
        let mut start = start;
        if let Some(b) = index.destroy_beyond(end as i64)? {
            if (b.max(0) as u64) < start {
                start = match commitlog.files().find(b.max(0) as u64) {
                    Some(f) => f.from_offset(),
                    None => commitlog.min_offset().max(0) as u64,
                };
            }
        }
        Ok(start as i64)
    }

    /// Recovery of a store whose commitlog lives in a replicated log: consume queues and index
    /// are cut at the end of the log's data, and dispatch restarts at the consume queues' end
    /// when an entry starts there, else at the start of the data (dispatch is idempotent).
    pub(super) fn recover_replicated(
        log: &dyn ReplicatedLog,
        commitlog: &CommitLog,
        cqs: &consume_queue::ConsumeQueueTable,
        index: &index::IndexService,
    ) -> Result<i64> {
        // Below a kept plain commitlog's divided offset, consume queues and index were completed
        // when it was sealed: dispatch follows the replicated data only.
        let data_min = match commitlog.files().first() {
            Some(f) => f.from_offset() as i64,
            None => commitlog.min_offset(),
        };
        let data_end = commitlog.files().max_offset().max(data_min.max(0) as u64) as i64;
        for q in cqs.all() {
            q.truncate_dirty(data_end)?;
        }
        let dispatched = cqs.max_physic_offset();
        let mut start = if dispatched >= data_min { dispatched } else { data_min };
        if start > data_min && matches!(log.step(start), LogStep::Invalid) {
            tracing::warn!(offset = start, "consume queues end inside an entry: re-dispatching the whole log");
            start = data_min;
        }
        if let Some(b) = index.destroy_beyond(data_end)? {
            if b < start {
                start = data_min;
            }
        }
        tracing::info!(start, data_end, "replicated commitlog recovered");
        Ok(start)
    }
}
