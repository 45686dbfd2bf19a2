//! The message store: commitlog, consume queues, index, checkpoint, flush and dispatch services,
//! recovery. Byte-compatible with Apache RocketMQ's store directory (formats: the facts sheet
//! `message-format.md`). The store knows nothing about networks.
//!
//! # Threads
//! Three std threads are owned by the store and joined by [`MessageStore::shutdown`]:
//! - `store-flush-commitlog`: ASYNC_FLUSH periodic flush (`flushIntervalCommitLog`, at least
//!   `flushCommitLogLeastPages` pages, full flush every `flushCommitLogThoroughInterval`), or the
//!   SYNC_FLUSH group commit (every waiting put since the last round shares one msync); it also
//!   preallocates the next commitlog file.
//! - `store-reput`: the dispatcher. It follows the commitlog (whatever wrote it: `put_message*` or
//!   [`MessageStore::append_raw`]) and builds consume queues and the index, then publishes the
//!   dispatched offset ([`MessageStore::subscribe_dispatched`]) and calls the arrival listener.
//! - `store-flush-logics`: flushes consume queues and index files and writes the checkpoint every
//!   `flushIntervalConsumeQueue`; it also allocates the next consume-queue file of a queue (and
//!   the next index file) once the current one is three quarters full.
//!
//! No lock is held across an msync or an `.await`. A failed commitlog flush poisons the store:
//! the waiting puts get UNKNOWN_ERROR, later puts SERVICE_NOT_AVAILABLE, shutdown keeps the abort
//! file.
//!
//! # Full disk
//! A put is acknowledged only if what indexes it has room: under the put lock, before the record
//! is written, the consume-queue file its entry lands in and room for its index entries must
//! exist (or be allocated then, as prepared files the dispatcher takes later); otherwise the put
//! is refused with CREATE_MAPPED_FILE_FAILED, like a commitlog file that cannot be created.
//! Prepared files count in [`MessageStore::logical_disk_usage`]. New index files are capped at
//! 1/[`config::INDEX_QUOTA_DIVISOR`] of the store's quota (existing ones keep their size). A
//! dispatch that still fails (e.g. replicated data on a full disk) sets
//! WRITE_LOGICS_QUEUE_ERROR / WRITE_INDEX_FILE_ERROR, retries every 100 ms, logs once (then once
//! a minute), and clears those flags itself when it succeeds again.
//!
//! # Recovery
//! `abort` present at open ⇒ abnormal recovery, else normal.
//! - Normal: start at the consume queues' max dispatched end offset and validate forward (falls
//!   back to the start of that file if the position is not a record boundary).
//! - Abnormal: walk back to the newest file whose first record's store time is ≤ the checkpoint's
//!   `min(physic, logics) - 3 s` (file 0 if none, earlier if an index file had to be dropped),
//!   validate every record forward (magic, lengths, PHYSICALOFFSET = position, body CRC when
//!   `checkCRCOnRecover`).
//!
//! The commitlog is cut at the end of the last valid record (later files deleted; in abnormal
//! recovery the cut tail is zeroed so stale records cannot come back), consume-queue entries
//! beyond the cut are removed, index files reaching beyond it are dropped, and everything from
//! the start offset is re-dispatched idempotently before `open` returns.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod cleanup;
pub mod commitlog;
pub mod config;
pub mod consume_queue;
pub mod error;
pub mod failure_log;
pub mod index;
pub mod mapped_file;
pub mod mapped_file_queue;
pub mod message;
pub mod timer;

mod admin_ops;
mod cleanup_run;
mod dispatch;
pub mod divided;
mod flush;
mod put;
mod read;
mod recovery;
pub mod replicated;

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::{oneshot, watch};

pub use checkpoint::{Checkpoint, CheckpointValues};
pub use commitlog::{AppendMessageResult, CommitLog, PutMessageStatus};
pub use config::{FlushDiskType, MessageStoreConfig};
pub use consume_queue::{BoundaryType, ConsumeQueue, CqEntry, CQ_UNIT_SIZE};
pub use error::{Result, StoreError};
pub use message::{MessageExt, MessageInner, MessageVersion};
pub use put::PutMessageResult;
pub use read::{GetMessageResult, GetMessageStatus, MessageFilter, QueryMessageResult};

use error::io_err;
use failure_log::FailureLog;

/// `RunningFlags` bits (spec §14).
pub mod running_flags {
    /// Not readable.
    pub const NOT_READABLE: u32 = 1;
    /// Not writeable (also set when the store is poisoned by a failed flush).
    pub const NOT_WRITEABLE: u32 = 2;
    /// Writing consume queues failed.
    pub const WRITE_LOGICS_QUEUE_ERROR: u32 = 4;
    /// Writing the index failed.
    pub const WRITE_INDEX_FILE_ERROR: u32 = 8;
    /// Disk full.
    pub const DISK_FULL: u32 = 16;
    /// Fenced (controller mode).
    pub const FENCED: u32 = 32;
    /// Logic disk full.
    pub const LOGIC_DISK_FULL: u32 = 64;
    /// Bits that make the store non-writeable.
    pub const NOT_WRITEABLE_MASK: u32 =
        NOT_WRITEABLE | WRITE_LOGICS_QUEUE_ERROR | DISK_FULL | WRITE_INDEX_FILE_ERROR | FENCED | LOGIC_DISK_FULL;
}

/// Callback for new messages: `(topic, queue_id, new max offset in queue)`. Called on the
/// dispatcher thread; keep it short (e.g. push to a channel).
pub type ArrivalListener = Arc<dyn Fn(&str, i32, i64) + Send + Sync>;

type FlushRequest = (u64, oneshot::Sender<bool>);

/// State shared with the background threads.
struct Shared {
    config: MessageStoreConfig,
    /// `maxMessageSize` now (an operator may change it at runtime).
    max_message_size: std::sync::atomic::AtomicUsize,
    /// The other keys an operator may change at runtime.
    live: parking_lot::RwLock<config::LiveStoreKeys>,
    /// Puts that did not end PUT_OK.
    put_failed: std::sync::atomic::AtomicU64,
    commitlog: CommitLog,
    cqs: consume_queue::ConsumeQueueTable,
    index: index::IndexService,
    checkpoint: Checkpoint,
    flags: AtomicU32,
    poisoned: AtomicBool,
    shutdown: AtomicBool,
    halt: AtomicBool,
    stop_dispatch: AtomicBool,
    stop_flush: AtomicBool,
    flush_reqs: Mutex<Vec<FlushRequest>>,
    flush_cv: Condvar,
    logics_lock: Mutex<()>,
    logics_cv: Condvar,
    reput_from: AtomicI64,
    dispatch_seq: Mutex<u64>,
    dispatch_cv: Condvar,
    dispatched_tx: watch::Sender<i64>,
    /// The commitlog max offset after every append (replication wakes on it).
    appended_tx: watch::Sender<i64>,
    listener: RwLock<Option<ArrivalListener>>,
    /// Per-topic wake-ups for services that care about one (system) topic only.
    topic_watches: RwLock<Vec<(String, watch::Sender<u64>)>>,
    last_dispatched_ts: AtomicI64,
    dispatch_stalled_at: AtomicI64,
    delay_levels: Vec<i64>,
    /// Number of commitlog flushes that advanced the flushed offset.
    flush_count: std::sync::atomic::AtomicU64,
    /// Test-only fault injection for the commitlog flush (see [`FlushFault`]).
    #[cfg(feature = "test-hooks")]
    flush_fault: Mutex<FlushFault>,
    /// State of the cleanup runs (held for a whole run: runs do not overlap).
    cleanup: Mutex<CleanupState>,
    /// Puts refused because consume-queue or index space could not be reserved.
    reserve_log: FailureLog,
    /// Failed dispatch attempts (the dispatcher retries every 100 ms).
    dispatch_log: FailureLog,
    /// Failed allocations of consume-queue and index files ahead of time.
    prealloc_log: FailureLog,
    /// Running-flag bits raised by a failed dispatch: cleared when dispatch recovers.
    dispatch_flag_bits: AtomicU32,
    /// Running-flag bits raised by a failed consume-queue or index flush: never cleared.
    flush_flag_bits: AtomicU32,
    /// The latest assessment of a cleanup run (remarks, runtime info).
    last_assessment: Mutex<Option<cleanup::Assessment>>,
    /// The replicated log the commitlog lives in (`None`: a plain commitlog).
    replica: Option<Arc<dyn replicated::ReplicatedLog>>,
    /// Index of the last replicated-log entry dispatched (-1 if none; plain stores: -1).
    replica_dispatched_index: AtomicI64,
}

/// What cleanup runs remember between runs.
#[derive(Debug)]
struct CleanupState {
    /// Runs left of a manual trigger (TRIGGER_DELETE_FILES).
    manual_runs: u32,
    physical_level: cleanup::Level,
    logical_level: cleanup::Level,
    /// Commitlog min offset the consume queues and index were last cleaned for.
    last_logics_min: i64,
    /// "nothing could be deleted" was logged for the current shortage.
    warned_stuck: bool,
}

/// Test-only fault injection for the commitlog flush (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushFault {
    /// Normal operation.
    None,
    /// The next commitlog flush fails with EIO.
    Fail,
    /// Commitlog flushes are skipped (as if the disk hung).
    Stall,
}

/// The message store facade.
pub struct MessageStore {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Kernel ids of the store's own threads (flush, logics, dispatch), for per-thread priority.
    thread_ids: Arc<Mutex<Vec<i32>>>,
    lock_file: Mutex<Option<File>>,
    abort_path: PathBuf,
    last_exit_ok: bool,
}

impl std::fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStore")
            .field("root", &self.shared.config.store_path_root_dir)
            .field("commit_log_max_offset", &self.commit_log_max_offset())
            .finish()
    }
}

fn lock_store_dir(root: &Path) -> Result<File> {
    let path = root.join("lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    // SAFETY: flock on a valid fd.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(StoreError::AlreadyInUse(root.to_path_buf()));
        }
        return Err(io_err(&path)(e));
    }
    // Also take a POSIX record lock on byte 0 like Java's FileChannel.tryLock(0, 1), so a Java
    // broker on the same directory sees it as locked.
    let fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 1,
        l_pid: 0,
    };
    // SAFETY: fcntl with a valid struct.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) };
    if rc != 0 {
        return Err(StoreError::AlreadyInUse(root.to_path_buf()));
    }
    if f.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        let _ = f.write_all(b"lock");
    }
    Ok(f)
}

impl MessageStore {
    /// Opens the store at `config.store_path_root_dir`: lock, load, recover (normal or abnormal
    /// depending on the abort file), re-dispatch, then start the background threads.
    pub fn open(config: MessageStoreConfig) -> Result<MessageStore> {
        Self::open_with(config, None)
    }

    /// Opens a store whose commitlog lives in `log` (see [`replicated`]): consume queues and
    /// index are recovered against the log's data and rebuilt from its committed entries.
    pub fn open_replicated(
        config: MessageStoreConfig,
        log: Arc<dyn replicated::ReplicatedLog>,
    ) -> Result<MessageStore> {
        Self::open_with(config, Some(log))
    }

    fn open_with(
        config: MessageStoreConfig,
        replica: Option<Arc<dyn replicated::ReplicatedLog>>,
    ) -> Result<MessageStore> {
        let root = config.store_path_root_dir.clone();
        std::fs::create_dir_all(&root).map_err(io_err(&root))?;
        let lock_file = lock_store_dir(&root)?;
        let abort_path = root.join("abort");
        let last_exit_ok = !abort_path.exists();
        let commitlog = match &replica {
            Some(r) => {
                let data = r.data();
                match divided::open_old(&config, &data)? {
                    Some((old, divided)) => CommitLog::over_divided(data, old, divided),
                    None => CommitLog::over(data),
                }
            }
            None => CommitLog::load(&config.commit_log_dir(), config.mapped_file_size_commit_log)?,
        };
        let cqs = consume_queue::ConsumeQueueTable::load(&root.join("consumequeue"), config.consume_queue_file_size())?;
        let checkpoint = Checkpoint::open(&root.join("checkpoint"))?;
        let cp = checkpoint.get();
        let (configured, new_files) = Self::index_geometry(&config);
        let (index, index_redispatch) = index::IndexService::load_with(
            &root.join("index"),
            configured,
            new_files,
            !last_exit_ok,
            cp.index_msg_timestamp,
        )?;
        for q in cqs.all() {
            q.recover()?;
        }
        let reput_from = match &replica {
            Some(r) => Self::recover_replicated(r.as_ref(), &commitlog, &cqs, &index)?,
            None => Self::recover_commit_log(&config, &commitlog, &cqs, &index, last_exit_ok, cp, index_redispatch)?,
        };

        {
            let mut f = File::create(&abort_path).map_err(io_err(&abort_path))?;
            f.write_all(std::process::id().to_string().as_bytes()).map_err(io_err(&abort_path))?;
            f.sync_all().map_err(io_err(&abort_path))?;
        }

        let (dispatched_tx, _) = watch::channel(reput_from);
        let commitlog_max = commitlog.max_offset();
        let delay_levels = config.delay_levels_ms();
        let shared = Arc::new(Shared {
            max_message_size: std::sync::atomic::AtomicUsize::new(config.max_message_size),
            live: parking_lot::RwLock::new(config::LiveStoreKeys::from_config(&config)),
            put_failed: std::sync::atomic::AtomicU64::new(0),
            config,
            commitlog,
            cqs,
            index,
            checkpoint,
            flags: AtomicU32::new(0),
            poisoned: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            halt: AtomicBool::new(false),
            stop_dispatch: AtomicBool::new(false),
            stop_flush: AtomicBool::new(false),
            flush_reqs: Mutex::new(Vec::new()),
            flush_cv: Condvar::new(),
            logics_lock: Mutex::new(()),
            logics_cv: Condvar::new(),
            reput_from: AtomicI64::new(reput_from),
            dispatch_seq: Mutex::new(0),
            dispatch_cv: Condvar::new(),
            dispatched_tx,
            appended_tx: watch::channel(commitlog_max).0,
            listener: RwLock::new(None),
            topic_watches: RwLock::new(Vec::new()),
            last_dispatched_ts: AtomicI64::new(0),
            dispatch_stalled_at: AtomicI64::new(-1),
            delay_levels,
            flush_count: std::sync::atomic::AtomicU64::new(0),
            #[cfg(feature = "test-hooks")]
            flush_fault: Mutex::new(FlushFault::None),
            cleanup: Mutex::new(CleanupState {
                manual_runs: 0,
                physical_level: cleanup::Level::Normal,
                logical_level: cleanup::Level::Normal,
                last_logics_min: -1,
                warned_stuck: false,
            }),
            reserve_log: FailureLog::default(),
            dispatch_log: FailureLog::default(),
            prealloc_log: FailureLog::default(),
            dispatch_flag_bits: AtomicU32::new(0),
            flush_flag_bits: AtomicU32::new(0),
            last_assessment: Mutex::new(None),
            replica,
            replica_dispatched_index: AtomicI64::new(-1),
        });
        // Catch up synchronously so consume queues are complete when open() returns.
        while shared.do_reput() {}
        let reput = shared.reput_from.load(Ordering::Acquire);
        if shared.replica.is_none() && reput < shared.commitlog.max_offset() {
            return Err(StoreError::Corrupt(format!(
                "dispatch stalled at {reput} during recovery (commitlog max {})",
                shared.commitlog.max_offset()
            )));
        }
        let mut table: HashMap<String, HashMap<i32, i64>> = HashMap::new();
        let cl_min = shared.commitlog.min_offset();
        for q in shared.cqs.all() {
            q.correct_min_offset(cl_min);
            table.entry(q.topic().to_string()).or_default().insert(q.queue_id(), q.max_offset_in_queue());
        }
        shared.commitlog.set_queue_offset_table(table);

        let store = MessageStore {
            shared,
            threads: Mutex::new(Vec::new()),
            thread_ids: Arc::new(Mutex::new(Vec::new())),
            lock_file: Mutex::new(Some(lock_file)),
            abort_path,
            last_exit_ok,
        };
        store.start_threads()?;
        Ok(store)
    }

    fn start_threads(&self) -> Result<()> {
        let mut threads = self.threads.lock();
        // The threads log inside the span that opened the store (a broker's), so their lines are
        // routed with the broker's own.
        let span = tracing::Span::current();
        let spawn = |name: &str, f: fn(&Shared)| -> Result<JoinHandle<()>> {
            let s = Arc::clone(&self.shared);
            let span = span.clone();
            let ids = Arc::clone(&self.thread_ids);
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || {
                    if let Some(tid) = crate::util::current_tid() {
                        ids.lock().push(tid);
                    }
                    span.in_scope(|| f(&s))
                })
                .map_err(io_err(Path::new(name)))
        };
        threads.push(spawn("store-reput", Shared::reput_loop)?);
        if self.shared.replica.is_none() {
            // A replicated log flushes and allocates its own files.
            threads.push(spawn("store-flush-commitlog", Shared::flush_loop)?);
        }
        threads.push(spawn("store-flush-logics", Shared::logics_loop)?);
        Ok(())
    }

    /// Kernel thread ids of the store's own threads (dispatch, commitlog flush, logics flush)
    /// started so far; empty where the OS has none.
    pub fn thread_ids(&self) -> Vec<i32> {
        self.thread_ids.lock().clone()
    }

    /// Configuration.
    pub fn config(&self) -> &MessageStoreConfig {
        &self.shared.config
    }

    /// Whether the previous run ended cleanly (no abort file at open).
    pub fn last_exit_ok(&self) -> bool {
        self.last_exit_ok
    }

    /// Current running flag bits (see [`running_flags`]).
    pub fn running_flags(&self) -> u32 {
        self.shared.flags.load(Ordering::Acquire)
    }
    /// Sets running flag bits (e.g. DISK_FULL from a disk checker).
    pub fn set_running_flags(&self, bits: u32) {
        self.shared.flags.fetch_or(bits, Ordering::AcqRel);
    }
    /// Clears running flag bits (the poisoned state cannot be cleared).
    pub fn clear_running_flags(&self, bits: u32) {
        let bits = if self.is_poisoned() { bits & !running_flags::NOT_WRITEABLE } else { bits };
        self.shared.flags.fetch_and(!bits, Ordering::AcqRel);
    }
    /// Puts are accepted.
    pub fn is_writeable(&self) -> bool {
        self.running_flags() & running_flags::NOT_WRITEABLE_MASK == 0
            && !self.shared.shutdown.load(Ordering::Acquire)
            && !self.is_poisoned()
    }
    /// A flush failed; the store refuses writes until restarted.
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }
    /// Shut down.
    pub fn is_shutdown(&self) -> bool {
        self.shared.shutdown.load(Ordering::Acquire)
    }

    /// First commitlog offset.
    pub fn commit_log_min_offset(&self) -> i64 {
        self.shared.commitlog.min_offset()
    }
    /// End of the commitlog data (with a replicated log: of the dispatched committed entries).
    pub fn commit_log_max_offset(&self) -> i64 {
        if self.shared.replica.is_some() {
            return self.shared.reput_from.load(Ordering::Acquire);
        }
        self.shared.commitlog.max_offset()
    }

    /// Whether the commitlog lives in a replicated log ([`MessageStore::open_replicated`]).
    pub fn is_replicated(&self) -> bool {
        self.shared.replica.is_some()
    }

    /// Index of the last replicated-log entry the dispatcher went past (-1 if none or plain).
    pub fn replica_dispatched_index(&self) -> i64 {
        self.shared.replica_dispatched_index.load(Ordering::Acquire)
    }

    /// Wakes the dispatcher (a replicated log's committed index moved).
    pub fn notify_committed(&self) {
        self.shared.wake_dispatcher();
    }
    /// Offset up to which the commitlog is flushed.
    pub fn commit_log_flushed_offset(&self) -> i64 {
        self.shared.commitlog.flushed_where() as i64
    }
    /// How many commitlog flushes (msync rounds) advanced the flushed offset so far.
    pub fn commit_log_flush_count(&self) -> u64 {
        self.shared.flush_count.load(Ordering::Relaxed)
    }

    /// Commitlog offset up to which records are dispatched to consume queues and index.
    pub fn dispatched_offset(&self) -> i64 {
        self.shared.reput_from.load(Ordering::Acquire)
    }

    /// Failed attempts of the dispatch that is stuck now (it retries every 100 ms; the failure is
    /// logged once, then at most once a minute), 0 when dispatch is healthy.
    pub fn dispatch_failed_attempts(&self) -> u64 {
        self.shared.dispatch_log.failures()
    }

    /// Index entries reserved by accepted puts and not yet written by the dispatcher.
    pub fn index_entries_reserved(&self) -> u64 {
        self.shared.index.pending()
    }

    /// Geometry (`maxHashSlotNum`, `maxIndexNum`) of the index files this store creates: the
    /// configured one, or scaled down to fit 1/[`config::INDEX_QUOTA_DIVISOR`] of the disk quota.
    pub fn index_geometry_for_new_files(&self) -> index::IndexGeometry {
        self.shared.index.geometry()
    }

    /// Up to `max` bytes of commitlog data from `offset` within one file (replication).
    pub fn get_commit_log_data(&self, offset: i64, max: usize) -> Option<Bytes> {
        self.shared.commitlog.read_from(offset, max)
    }

    /// A watch of the dispatched commitlog offset: wakes readers (long polling) without polling.
    pub fn subscribe_dispatched(&self) -> watch::Receiver<i64> {
        self.shared.dispatched_tx.subscribe()
    }

    /// A watch that changes whenever the dispatcher has made new messages of `topic` readable
    /// (a counter): services of one system topic (delay levels, timer) wake for their own
    /// messages, not for every message the broker stores.
    pub fn subscribe_topic_dispatched(&self, topic: &str) -> watch::Receiver<u64> {
        let mut w = self.shared.topic_watches.write();
        if let Some((_, tx)) = w.iter().find(|(t, _)| t == topic) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(0);
        w.push((topic.to_string(), tx));
        rx
    }

    /// A watch of the commitlog max offset, updated after every append (replication).
    pub fn subscribe_appended(&self) -> watch::Receiver<i64> {
        self.shared.appended_tx.subscribe()
    }

    /// Installs the new-message listener (replaces any previous one).
    pub fn set_arrival_listener(&self, l: Option<ArrivalListener>) {
        *self.shared.listener.write() = l;
    }

    /// Deletes the consume queues of `topics` and forgets their queue offsets.
    pub fn delete_topics(&self, topics: &[&str]) -> Result<()> {
        for t in topics {
            self.shared.commitlog.remove_topic(t);
            self.shared.cqs.remove_topic(t)?;
        }
        Ok(())
    }

    /// Checkpoint values.
    pub fn checkpoint(&self) -> CheckpointValues {
        self.shared.checkpoint.get()
    }

    /// Recomputes the topic-queue offset table from the consume queues (e.g. after a slave that
    /// appended raw data becomes master).
    pub fn recompute_queue_offsets(&self) {
        let mut table: HashMap<String, HashMap<i32, i64>> = HashMap::new();
        for q in self.shared.cqs.all() {
            table.entry(q.topic().to_string()).or_default().insert(q.queue_id(), q.max_offset_in_queue());
        }
        self.shared.commitlog.set_queue_offset_table(table);
    }

    /// Bytes of this store's commitlog, consume queue and index files (its logical disk usage;
    /// config, checkpoint and other files are not counted).
    pub fn logical_disk_usage(&self) -> u64 {
        let s = &self.shared;
        let old = s.commitlog.old_files().map_or(0, |o| o.total_bytes());
        s.commitlog.files().total_bytes() + old + s.cqs.total_bytes() + s.index.total_bytes()
    }

    /// Store time of the oldest message in the commitlog (`None` if it is empty).
    pub fn earliest_message_time_in_store(&self) -> Option<i64> {
        let cl = &self.shared.commitlog;
        let f = cl.old_files().and_then(|o| o.first()).or_else(|| cl.files().first())?;
        let v = cl.first_record(&f, false)?;
        Some(v.store_timestamp)
    }

    /// Stops and joins the background threads, flushes everything, writes the checkpoint and
    /// removes the abort file (clean shutdown). Idempotent.
    pub fn shutdown(&self) -> Result<()> {
        if self.shared.shutdown.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.shared.commitlog.fence();
        self.stop_and_join();
        let mut result = Ok(());
        let s = &self.shared;
        let ts = s.commitlog.last_store_timestamp();
        if s.replica.is_some() {
            // The replicated log flushes its own files.
            if ts > 0 {
                s.checkpoint.set_physic_msg_timestamp(ts);
            }
        } else if let Err(e) = s.commitlog.flush(0) {
            s.poison(&e);
            result = Err(e);
        } else if ts > 0 {
            s.checkpoint.set_physic_msg_timestamp(ts);
        }
        if let Err(e) = s.flush_logics() {
            result = Err(e);
        }
        let clean = result.is_ok()
            && !self.is_poisoned()
            && (s.replica.is_some() || s.reput_from.load(Ordering::Acquire) >= s.commitlog.max_offset());
        if clean {
            if let Err(e) = std::fs::remove_file(&self.abort_path) {
                result = Err(io_err(&self.abort_path)(e));
            }
        } else {
            tracing::warn!("store not shut down cleanly; keeping the abort file");
        }
        self.lock_file.lock().take();
        result
    }

    /// Injects a commitlog flush fault (tests only, feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn set_flush_fault_for_tests(&self, fault: FlushFault) {
        *self.shared.flush_fault.lock() = fault;
    }

    /// Simulates a crash for tests: stops the threads without any final flush, checkpoint or
    /// abort-file removal, then releases the lock (feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn halt_for_tests(&self) {
        self.shared.halt.store(true, Ordering::Release);
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.commitlog.fence();
        self.stop_and_join();
        self.lock_file.lock().take();
    }

    fn stop_and_join(&self) {
        let mut threads = std::mem::take(&mut *self.threads.lock());
        // Dispatcher first (it drains), then the flush threads.
        self.shared.stop_dispatch.store(true, Ordering::Release);
        self.shared.wake_dispatcher();
        if !threads.is_empty() {
            let t = threads.remove(0);
            let _ = t.join();
        }
        self.shared.stop_flush.store(true, Ordering::Release);
        {
            let _g = self.shared.flush_reqs.lock();
            self.shared.flush_cv.notify_all();
        }
        {
            let _g = self.shared.logics_lock.lock();
            self.shared.logics_cv.notify_all();
        }
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "store shutdown on drop failed");
        }
    }
}
