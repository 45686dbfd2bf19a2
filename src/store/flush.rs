//! The flush services: the commitlog flush thread (ASYNC_FLUSH periodic flush or SYNC_FLUSH group
//! commit, poisoning the store when a flush fails) and the logics thread (consume queues, index,
//! checkpoint, files allocated ahead of time).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::error::{Result, StoreError};
use super::failure_log::FailureNote;
#[cfg(feature = "test-hooks")]
use super::FlushFault;
use super::{running_flags, FlushDiskType, FlushRequest, Shared};

impl Shared {
    pub(super) fn poison(&self, e: &StoreError) {
        if !self.poisoned.swap(true, Ordering::AcqRel) {
            tracing::error!(error = %e, "commitlog flush failed: store poisoned, refusing writes");
        }
        self.flags.fetch_or(running_flags::NOT_WRITEABLE, Ordering::AcqRel);
    }

    /// Flushes the commitlog; updates the checkpoint's physic timestamp when everything appended
    /// before the call is on disk.
    fn flush_commitlog(&self, least_pages: usize) -> bool {
        if self.poisoned.load(Ordering::Acquire) {
            return false;
        }
        let ts = self.commitlog.last_store_timestamp();
        let max = self.commitlog.max_offset() as u64;
        let before = self.commitlog.flushed_where();
        #[cfg(feature = "test-hooks")]
        let fault = *self.flush_fault.lock();
        #[cfg(feature = "test-hooks")]
        let res = match fault {
            FlushFault::None => self.commitlog.flush(least_pages),
            FlushFault::Stall => return true,
            FlushFault::Fail => Err(StoreError::Io {
                path: self.config.commit_log_dir(),
                source: std::io::Error::from_raw_os_error(libc::EIO),
            }),
        };
        #[cfg(not(feature = "test-hooks"))]
        let res = self.commitlog.flush(least_pages);
        match res {
            Ok(flushed) => {
                if flushed > before {
                    self.flush_count.fetch_add(1, Ordering::Relaxed);
                }
                if flushed >= max && ts > 0 {
                    self.checkpoint.set_physic_msg_timestamp(ts);
                }
                true
            }
            Err(e) => {
                self.poison(&e);
                false
            }
        }
    }

    pub(super) fn flush_loop(&self) {
        let sync = self.config.flush_disk_type == FlushDiskType::SyncFlush;
        let mut last_full = Instant::now();
        // Requests not yet satisfied (e.g. the disk stalls): they stay here until their offset is
        // flushed, the flush fails, or the waiter gave up (FLUSH_DISK_TIMEOUT).
        let mut pending: Vec<FlushRequest> = Vec::new();
        loop {
            let stopping = self.stop_flush.load(Ordering::Acquire);
            if self.halt.load(Ordering::Acquire) {
                return;
            }
            // Read each round: an operator may change them at runtime.
            let live = *self.live.read();
            let interval = Duration::from_millis(live.flush_interval_commit_log.max(1));
            let thorough = Duration::from_millis(live.flush_commit_log_thorough_interval);
            {
                let mut g = self.flush_reqs.lock();
                if !stopping && g.is_empty() {
                    let wait = if sync { Duration::from_millis(10) } else { interval };
                    self.flush_cv.wait_for(&mut g, wait);
                }
                pending.append(&mut g);
            }
            let least = if sync || stopping || last_full.elapsed() >= thorough {
                last_full = Instant::now();
                0
            } else {
                live.flush_commit_log_least_pages
            };
            let mut ok = self.flush_commitlog(least);
            if !stopping {
                if let Err(e) = self.commitlog.files().preallocate_next() {
                    tracing::warn!(error = %e, "cannot preallocate the next commitlog file");
                }
            }
            if stopping {
                ok = self.flush_commitlog(0) && ok;
                pending.append(&mut self.flush_reqs.lock());
            }
            let flushed = self.commitlog.flushed_where();
            let mut keep = Vec::with_capacity(pending.len());
            for (off, tx) in pending.drain(..) {
                if tx.is_closed() {
                    continue;
                }
                if !ok || flushed >= off || stopping {
                    let _ = tx.send(ok && flushed >= off);
                } else {
                    keep.push((off, tx));
                }
            }
            pending = keep;
            if stopping {
                return;
            }
        }
    }

    pub(super) fn flush_logics(&self) -> Result<()> {
        let ts = self.last_dispatched_ts.load(Ordering::Acquire);
        let mut res = Ok(());
        for q in self.cqs.all() {
            if let Err(e) = q.flush() {
                tracing::error!(error = %e, "consume queue flush failed");
                self.flush_flag_bits.fetch_or(running_flags::WRITE_LOGICS_QUEUE_ERROR, Ordering::AcqRel);
                self.flags.fetch_or(running_flags::WRITE_LOGICS_QUEUE_ERROR, Ordering::AcqRel);
                res = Err(e);
            }
        }
        match self.index.flush() {
            Ok(Some(its)) => self.checkpoint.set_index_msg_timestamp(its),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "index flush failed");
                self.flush_flag_bits.fetch_or(running_flags::WRITE_INDEX_FILE_ERROR, Ordering::AcqRel);
                self.flags.fetch_or(running_flags::WRITE_INDEX_FILE_ERROR, Ordering::AcqRel);
                res = Err(e);
            }
        }
        if res.is_ok() && ts > 0 {
            self.checkpoint.set_logics_msg_timestamp(ts);
        }
        self.checkpoint.flush()?;
        res
    }

    pub(super) fn logics_loop(&self) {
        loop {
            let interval = Duration::from_millis(self.live.read().flush_interval_consume_queue.max(1));
            {
                let mut g = self.logics_lock.lock();
                if !self.stop_flush.load(Ordering::Acquire) {
                    self.logics_cv.wait_for(&mut g, interval);
                }
            }
            if self.halt.load(Ordering::Acquire) || self.stop_flush.load(Ordering::Acquire) {
                return; // the final flush is done by shutdown()
            }
            let _ = self.flush_logics();
            self.preallocate_logics();
        }
    }

    /// Allocates the next consume-queue and index files ahead of time where the current one is
    /// getting full (so puts rarely allocate under the put lock). Failures are logged once, then
    /// at most once a minute.
    fn preallocate_logics(&self) {
        let mut first_err = None;
        for q in self.cqs.all() {
            if let Err(e) = q.preallocate_next() {
                first_err.get_or_insert(e);
            }
        }
        if self.config.message_index_enable {
            if let Err(e) = self.index.preallocate_next() {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            None => {
                if self.prealloc_log.succeeded().is_some() {
                    tracing::info!("consume queue and index files are allocated ahead of time again");
                }
            }
            Some(e) => match self.prealloc_log.failed() {
                FailureNote::First => tracing::warn!(
                    error = %e,
                    "cannot allocate the next consume queue or index file ahead of time (logged again at most once a minute)"
                ),
                FailureNote::Still { failures, since } => tracing::warn!(
                    error = %e,
                    failures,
                    since_s = since.as_secs(),
                    "still cannot allocate consume queue or index files ahead of time"
                ),
                FailureNote::Quiet => {}
            },
        }
    }
}
