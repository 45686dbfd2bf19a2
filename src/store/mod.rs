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

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::{oneshot, watch};

pub use checkpoint::{Checkpoint, CheckpointValues};
pub use commitlog::{AppendMessageResult, CommitLog, PutMessageStatus};
pub use config::{FlushDiskType, MessageStoreConfig};
pub use consume_queue::{BoundaryType, ConsumeQueue, CqEntry, CQ_UNIT_SIZE};
pub use error::{Result, StoreError};
pub use message::{MessageExt, MessageInner, MessageVersion};

use error::io_err;
use failure_log::{FailureLog, FailureNote};
use message::{check_record, sysflag, RecordCheck, RecordView};

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

/// Result of a put: status plus what was appended (if anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutMessageResult {
    /// Status.
    pub status: PutMessageStatus,
    /// Append details when the message was written.
    pub append: Option<AppendMessageResult>,
}

impl PutMessageResult {
    fn status(status: PutMessageStatus) -> Self {
        PutMessageResult { status, append: None }
    }
    /// The message is stored (PUT_OK or a "sent but" status).
    pub fn is_ok(&self) -> bool {
        self.status.is_stored() && self.append.is_some()
    }
}

/// Status of a read (Apache's `GetMessageStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetMessageStatus {
    /// Messages returned.
    Found,
    /// Entries exist but the filter matched none.
    NoMatchedMessage,
    /// Commitlog data already deleted.
    MessageWasRemoving,
    /// Consume queue file for the offset is gone.
    OffsetFoundNull,
    /// Offset beyond max + 1.
    OffsetOverflowBadly,
    /// Offset equals max (nothing new yet).
    OffsetOverflowOne,
    /// Offset below min.
    OffsetTooSmall,
    /// No such queue.
    NoMatchedLogicQueue,
    /// Queue is empty.
    NoMessageInQueue,
}

impl GetMessageStatus {
    /// Apache's constant name.
    pub fn name(self) -> &'static str {
        match self {
            GetMessageStatus::Found => "FOUND",
            GetMessageStatus::NoMatchedMessage => "NO_MATCHED_MESSAGE",
            GetMessageStatus::MessageWasRemoving => "MESSAGE_WAS_REMOVING",
            GetMessageStatus::OffsetFoundNull => "OFFSET_FOUND_NULL",
            GetMessageStatus::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
            GetMessageStatus::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
            GetMessageStatus::OffsetTooSmall => "OFFSET_TOO_SMALL",
            GetMessageStatus::NoMatchedLogicQueue => "NO_MATCHED_LOGIC_QUEUE",
            GetMessageStatus::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
        }
    }
}

/// Result of [`MessageStore::get_message`].
#[derive(Debug, Clone)]
pub struct GetMessageResult {
    /// Status.
    pub status: GetMessageStatus,
    /// Where the next read should start.
    pub next_begin_offset: i64,
    /// Queue min offset.
    pub min_offset: i64,
    /// Queue max offset (next offset to be written).
    pub max_offset: i64,
    /// Whole commitlog records (zero-copy slices of the mapping).
    pub messages: Vec<Bytes>,
    /// Queue offset of each returned message.
    pub queue_offsets: Vec<i64>,
    /// Sum of the record sizes.
    pub buffer_total_size: usize,
}

/// Result of [`MessageStore::query_message`].
#[derive(Debug, Clone, Default)]
pub struct QueryMessageResult {
    /// Matching records.
    pub messages: Vec<Bytes>,
    /// End timestamp of the newest index file.
    pub index_last_update_timestamp: i64,
    /// End physical offset of the newest index file.
    pub index_last_update_phyoffset: i64,
}

/// Selects messages in [`MessageStore::get_message`]: first by the consume-queue tagsCode, then
/// (for entries that pass) by the whole commitlog record (e.g. SQL92 property filters).
/// Any `Fn(i64) -> bool` closure is a filter on the tagsCode alone.
pub trait MessageFilter {
    /// Match on the consume-queue tagsCode.
    fn is_matched_by_consume_queue(&self, tags_code: i64) -> bool;
    /// Match on the commitlog record (called only if the tagsCode matched).
    fn is_matched_by_commit_log(&self, _record: &[u8]) -> bool {
        true
    }
}

impl<F: Fn(i64) -> bool> MessageFilter for F {
    fn is_matched_by_consume_queue(&self, tags_code: i64) -> bool {
        self(tags_code)
    }
}

/// Callback for new messages: `(topic, queue_id, new max offset in queue)`. Called on the
/// dispatcher thread; keep it short (e.g. push to a channel).
pub type ArrivalListener = Arc<dyn Fn(&str, i32, i64) + Send + Sync>;

type FlushRequest = (u64, oneshot::Sender<bool>);

/// New max offsets per topic and queue collected during one dispatch round.
type Arrivals = HashMap<String, HashMap<i32, i64>>;

/// State shared with the background threads.
struct Shared {
    config: MessageStoreConfig,
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
    last_dispatched_ts: AtomicI64,
    dispatch_stalled_at: AtomicI64,
    delay_levels: Vec<i64>,
    /// Number of commitlog flushes that advanced the flushed offset.
    flush_count: std::sync::atomic::AtomicU64,
    /// Test-only fault injection for the commitlog flush (see [`FlushFault`]).
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

/// Test-only fault injection for the commitlog flush.
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
        let root = config.store_path_root_dir.clone();
        std::fs::create_dir_all(&root).map_err(io_err(&root))?;
        let lock_file = lock_store_dir(&root)?;
        let abort_path = root.join("abort");
        let last_exit_ok = !abort_path.exists();
        let commitlog = CommitLog::load(&config.commit_log_dir(), config.mapped_file_size_commit_log)?;
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
        let reput_from =
            Self::recover_commit_log(&config, &commitlog, &cqs, &index, last_exit_ok, cp, index_redispatch)?;

        {
            let mut f = File::create(&abort_path).map_err(io_err(&abort_path))?;
            f.write_all(std::process::id().to_string().as_bytes()).map_err(io_err(&abort_path))?;
            f.sync_all().map_err(io_err(&abort_path))?;
        }

        let (dispatched_tx, _) = watch::channel(reput_from);
        let commitlog_max = commitlog.max_offset();
        let delay_levels = config.delay_levels_ms();
        let shared = Arc::new(Shared {
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
            last_dispatched_ts: AtomicI64::new(0),
            dispatch_stalled_at: AtomicI64::new(-1),
            delay_levels,
            flush_count: std::sync::atomic::AtomicU64::new(0),
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
        });
        // Catch up synchronously so consume queues are complete when open() returns.
        while shared.do_reput() {}
        let reput = shared.reput_from.load(Ordering::Acquire);
        if reput < shared.commitlog.max_offset() {
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
            lock_file: Mutex::new(Some(lock_file)),
            abort_path,
            last_exit_ok,
        };
        store.start_threads()?;
        Ok(store)
    }

    /// The configured index geometry, and the one for new files: capped at
    /// [`MessageStoreConfig::index_file_cap`] of the commitlog partition (warned once here when
    /// that shrinks it).
    fn index_geometry(config: &MessageStoreConfig) -> (index::IndexGeometry, index::IndexGeometry) {
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

    fn recover_commit_log(
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

    fn start_threads(&self) -> Result<()> {
        let mut threads = self.threads.lock();
        // The threads log inside the span that opened the store (a broker's), so their lines are
        // routed with the broker's own.
        let span = tracing::Span::current();
        let spawn = |name: &str, f: fn(&Shared)| -> Result<JoinHandle<()>> {
            let s = Arc::clone(&self.shared);
            let span = span.clone();
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || span.in_scope(|| f(&s)))
                .map_err(io_err(Path::new(name)))
        };
        threads.push(spawn("store-reput", Shared::reput_loop)?);
        threads.push(spawn("store-flush-commitlog", Shared::flush_loop)?);
        threads.push(spawn("store-flush-logics", Shared::logics_loop)?);
        Ok(())
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

    fn precheck(&self, msgs: &[MessageInner]) -> std::result::Result<(), PutMessageStatus> {
        if !self.is_writeable() {
            return Err(PutMessageStatus::ServiceNotAvailable);
        }
        let Some(first) = msgs.first() else {
            return Err(PutMessageStatus::MessageIllegal);
        };
        for m in msgs {
            if m.topic.is_empty()
                || m.topic.len() > 255
                || m.topic != first.topic
                || m.queue_id != first.queue_id
                || m.queue_id < 0
            {
                return Err(PutMessageStatus::MessageIllegal);
            }
            if m.body.len() > self.shared.config.max_message_size {
                return Err(PutMessageStatus::MessageIllegal);
            }
            if m.properties.len() > message::MAX_PROPERTIES_LEN {
                return Err(PutMessageStatus::PropertiesSizeExceeded);
            }
        }
        Ok(())
    }

    /// Appends one message; with SYNC_FLUSH completes after its bytes are flushed (unless the
    /// message has `WAIT=false`), answering FLUSH_DISK_TIMEOUT after `syncFlushTimeout`.
    pub async fn put_message(&self, msg: MessageInner) -> PutMessageResult {
        self.put_messages(std::slice::from_ref(&msg)).await
    }

    /// Appends a batch of messages of one topic-queue as consecutive records in one file, with
    /// consecutive queue offsets.
    pub async fn put_messages(&self, msgs: &[MessageInner]) -> PutMessageResult {
        let (res, wait) = match self.append_now(msgs) {
            Ok(x) => x,
            Err(s) => return PutMessageResult::status(s),
        };
        let Some(rx) = wait else {
            return PutMessageResult { status: PutMessageStatus::PutOk, append: Some(res) };
        };
        let timeout = Duration::from_millis(self.shared.config.sync_flush_timeout);
        let status = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(true)) => PutMessageStatus::PutOk,
            Ok(Ok(false)) | Ok(Err(_)) => PutMessageStatus::UnknownError,
            Err(_) => PutMessageStatus::FlushDiskTimeout,
        };
        if status != PutMessageStatus::PutOk {
            tracing::warn!(status = status.name(), offset = res.wrote_offset, "sync flush did not complete");
        }
        PutMessageResult { status, append: Some(res) }
    }

    #[allow(clippy::type_complexity)]
    fn append_now(
        &self,
        msgs: &[MessageInner],
    ) -> std::result::Result<(AppendMessageResult, Option<oneshot::Receiver<bool>>), PutMessageStatus> {
        self.precheck(msgs)?;
        let s = &self.shared;
        let version = MessageVersion::for_topic(&msgs[0].topic, s.config.auto_message_version_on_topic_len);
        let crcs: Vec<i32> = msgs.iter().map(|m| message::body_crc(&m.body)).collect();
        let index_keys: u64 = if s.config.message_index_enable {
            msgs.iter()
                .filter(|m| sysflag::transaction_value(m.sys_flag) != sysflag::TRANSACTION_ROLLBACK)
                .map(|m| {
                    index::key_count(
                        message::find_property(&m.properties, message::property::UNIQ_KEY),
                        message::find_property(&m.properties, message::property::KEYS),
                    )
                })
                .sum()
        } else {
            0
        };
        let (topic, queue_id) = (msgs[0].topic.as_str(), msgs[0].queue_id);
        let res = s.commitlog.append(msgs, &crcs, version, |first_qo, entries| {
            s.reserve_logics(topic, queue_id, first_qo, entries, index_keys)
        })?;
        self.shared.wake_dispatcher();
        self.shared.appended_tx.send_replace(res.end_offset());
        let wait = self.shared.config.flush_disk_type == FlushDiskType::SyncFlush
            && message::find_property(&msgs[0].properties, message::property::WAIT) != Some("false");
        if !wait {
            return Ok((res, None));
        }
        let (tx, rx) = oneshot::channel();
        self.shared.flush_reqs.lock().push((res.end_offset() as u64, tx));
        self.shared.flush_cv.notify_one();
        Ok((res, Some(rx)))
    }

    /// Makes an empty store's commitlog (and dispatch) start at `offset`: a fresh slave replicates
    /// from the start of its master's last file. Refused once the commitlog holds a file.
    pub fn start_replica_at(&self, offset: i64) -> Result<()> {
        self.shared.commitlog.start_empty_at(offset)?;
        self.shared.reput_from.store(offset, Ordering::Release);
        Ok(())
    }

    /// Appends raw commitlog bytes (replication) at exactly [`Self::commit_log_max_offset`].
    /// Consume queues and index follow through the dispatcher.
    pub fn append_raw(&self, start_offset: i64, data: &[u8]) -> Result<()> {
        if self.is_shutdown() {
            return Err(StoreError::ShutDown);
        }
        if self.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        self.shared.commitlog.append_raw(start_offset, data)?;
        self.shared.wake_dispatcher();
        self.shared.appended_tx.send_replace(self.shared.commitlog.max_offset());
        Ok(())
    }

    /// Reads up to `max_count` messages (and `max_bytes`) of a queue starting at `offset`;
    /// `filter(tags_code)` selects by consume queue tag hash.
    pub fn get_message(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_count: usize,
        max_bytes: usize,
        filter: impl MessageFilter,
    ) -> Result<GetMessageResult> {
        if self.is_shutdown() {
            return Err(StoreError::ShutDown);
        }
        if self.running_flags() & running_flags::NOT_READABLE != 0 {
            return Err(StoreError::NotReadable);
        }
        let mut r = GetMessageResult {
            status: GetMessageStatus::NoMatchedLogicQueue,
            next_begin_offset: 0,
            min_offset: 0,
            max_offset: 0,
            messages: Vec::new(),
            queue_offsets: Vec::new(),
            buffer_total_size: 0,
        };
        let Some(cq) = self.shared.cqs.get(topic, queue_id) else {
            return Ok(r);
        };
        let min = cq.min_offset_in_queue();
        let max = cq.max_offset_in_queue();
        r.min_offset = min;
        r.max_offset = max;
        if max == 0 {
            r.status = GetMessageStatus::NoMessageInQueue;
            return Ok(r);
        }
        if offset < min {
            r.status = GetMessageStatus::OffsetTooSmall;
            r.next_begin_offset = min;
            return Ok(r);
        }
        if offset == max {
            r.status = GetMessageStatus::OffsetOverflowOne;
            r.next_begin_offset = offset;
            return Ok(r);
        }
        if offset > max {
            r.status = GetMessageStatus::OffsetOverflowBadly;
            r.next_begin_offset = if min == 0 { min } else { max };
            return Ok(r);
        }
        let cl_min = self.shared.commitlog.min_offset();
        let scan_limit = max_count.max(800);
        let mut idx = offset;
        let mut scanned = 0usize;
        r.status = GetMessageStatus::NoMatchedMessage;
        'outer: while r.messages.len() < max_count && idx < max && scanned < scan_limit {
            let Some(entries) = cq.entries_from(idx, scan_limit - scanned) else {
                if r.messages.is_empty() {
                    r.status = GetMessageStatus::OffsetFoundNull;
                    idx = cq.roll_next_file(idx);
                }
                break;
            };
            for chunk in entries.chunks_exact(CQ_UNIT_SIZE) {
                let e = CqEntry::parse(chunk);
                if r.messages.len() >= max_count {
                    break 'outer;
                }
                if !e.is_filler() && e.size > 0 {
                    if r.buffer_total_size + e.size as usize > max_bytes && !r.messages.is_empty() {
                        break 'outer;
                    }
                    if e.phys_offset < cl_min {
                        if r.messages.is_empty() {
                            r.status = GetMessageStatus::MessageWasRemoving;
                        }
                    } else if filter.is_matched_by_consume_queue(e.tags_code) {
                        match self.shared.commitlog.read(e.phys_offset, e.size as usize) {
                            Some(b) if !filter.is_matched_by_commit_log(&b) => {}
                            Some(b) => {
                                r.buffer_total_size += b.len();
                                r.messages.push(b);
                                r.queue_offsets.push(idx);
                            }
                            None => {
                                if r.messages.is_empty() {
                                    r.status = GetMessageStatus::MessageWasRemoving;
                                }
                            }
                        }
                    }
                }
                idx += 1;
                scanned += 1;
            }
        }
        if !r.messages.is_empty() {
            r.status = GetMessageStatus::Found;
        }
        r.next_begin_offset = idx;
        Ok(r)
    }

    /// Next queue offset to be written (0 if no such queue).
    pub fn max_offset_in_queue(&self, topic: &str, queue_id: i32) -> i64 {
        self.shared.cqs.get(topic, queue_id).map(|q| q.max_offset_in_queue()).unwrap_or(0)
    }

    /// First served queue offset (0 if no such queue).
    pub fn min_offset_in_queue(&self, topic: &str, queue_id: i32) -> i64 {
        self.shared.cqs.get(topic, queue_id).map(|q| q.min_offset_in_queue()).unwrap_or(0)
    }

    /// Queue offset by store time (see [`BoundaryType`]).
    pub fn offset_in_queue_by_time(&self, topic: &str, queue_id: i32, timestamp: i64, boundary: BoundaryType) -> i64 {
        let Some(q) = self.shared.cqs.get(topic, queue_id) else {
            return 0;
        };
        q.offset_by_time(timestamp, boundary, |phys, size| self.shared.commitlog.store_time_at(phys, size))
    }

    /// Store time of the first message of a queue.
    pub fn earliest_message_time(&self, topic: &str, queue_id: i32) -> Option<i64> {
        let q = self.shared.cqs.get(topic, queue_id)?;
        let e = q.entry(q.min_offset_in_queue())?;
        self.shared.commitlog.store_time_at(e.phys_offset, e.size)
    }

    /// Store time of the message at a queue offset.
    pub fn message_store_timestamp(&self, topic: &str, queue_id: i32, offset: i64) -> Option<i64> {
        let e = self.shared.cqs.get(topic, queue_id)?.entry(offset)?;
        self.shared.commitlog.store_time_at(e.phys_offset, e.size)
    }

    /// The record at commitlog offset `phy` (size from its TOTALSIZE).
    pub fn look_message_by_offset(&self, phy: i64) -> Option<Bytes> {
        let b = self.shared.commitlog.read_record(phy)?;
        match check_record(&b, false) {
            RecordCheck::Message(v) if v.commit_log_offset == phy => Some(b),
            _ => None,
        }
    }

    /// `size` bytes at commitlog offset `phy`.
    pub fn look_message_by_offset_size(&self, phy: i64, size: usize) -> Option<Bytes> {
        self.shared.commitlog.read(phy, size)
    }

    /// Messages whose UNIQ_KEY or one of whose KEYS equals `key`, stored within `[begin, end]` ms,
    /// newest first, at most `max_num` (0 ⇒ `defaultQueryMaxNum`; capped at `maxMsgsNumBatch`).
    pub fn query_message(&self, topic: &str, key: &str, max_num: usize, begin: i64, end: i64) -> QueryMessageResult {
        let max = if max_num == 0 { self.shared.config.default_query_max_num } else { max_num }
            .min(self.shared.config.max_msgs_num_batch.max(1));
        let offsets = self.shared.index.query(topic, key, max, begin, end);
        let (ts, phy) = self.shared.index.last_update();
        let mut out = QueryMessageResult {
            messages: Vec::new(),
            index_last_update_timestamp: ts,
            index_last_update_phyoffset: phy,
        };
        for off in offsets {
            let Some(b) = self.look_message_by_offset(off) else {
                continue;
            };
            if let RecordCheck::Message(v) = check_record(&b, false) {
                let props = v.properties(&b);
                let hit = v.topic(&b) == topic
                    && (message::find_property(props, message::property::UNIQ_KEY) == Some(key)
                        || message::find_property(props, message::property::KEYS)
                            .is_some_and(|k| k.split(' ').any(|t| t == key)));
                if hit {
                    out.messages.push(b);
                }
            }
        }
        out
    }

    /// First commitlog offset.
    pub fn commit_log_min_offset(&self) -> i64 {
        self.shared.commitlog.min_offset()
    }
    /// End of the commitlog data.
    pub fn commit_log_max_offset(&self) -> i64 {
        self.shared.commitlog.max_offset()
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
        s.commitlog.files().total_bytes() + s.cqs.total_bytes() + s.index.total_bytes()
    }

    /// Store time of the oldest message in the commitlog (`None` if it is empty).
    pub fn earliest_message_time_in_store(&self) -> Option<i64> {
        let f = self.shared.commitlog.files().first()?;
        let v = self.shared.commitlog.first_record(&f, false)?;
        Some(v.store_timestamp)
    }

    /// Samples disk usage: the partitions of the commitlog and consume queue directories and this
    /// store's logical usage.
    pub fn sample_disk_usage(&self, probe: &dyn cleanup::DiskProbe) -> cleanup::UsageSample {
        let root = &self.shared.config.store_path_root_dir;
        cleanup::UsageSample {
            commit_log: probe.partition(&self.shared.config.commit_log_dir()),
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
            let taken = s.commitlog.files().take_leading(policy.delete_file_batch_max, |f| {
                let dispatched_all = f.from_offset() + file_size <= dispatched;
                let expired = f.last_modified_ms().is_some_and(|m| m.saturating_add(reserved) <= now);
                dispatched_all && (at_once || expired)
            });
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
            if taken.is_empty() && a.space_to_delete && !st.warned_stuck {
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
        if let Err(e) = s.commitlog.flush(0) {
            s.poison(&e);
            result = Err(e);
        } else if ts > 0 {
            s.checkpoint.set_physic_msg_timestamp(ts);
        }
        if let Err(e) = s.flush_logics() {
            result = Err(e);
        }
        let clean =
            result.is_ok() && !self.is_poisoned() && s.reput_from.load(Ordering::Acquire) >= s.commitlog.max_offset();
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

    /// Injects a commitlog flush fault (tests only).
    #[doc(hidden)]
    pub fn set_flush_fault_for_tests(&self, fault: FlushFault) {
        *self.shared.flush_fault.lock() = fault;
    }

    /// Simulates a crash for tests: stops the threads without any final flush, checkpoint or
    /// abort-file removal, then releases the lock.
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

impl Shared {
    /// Runs under the put lock before a put is written: makes sure the consume-queue entries
    /// `[first_qo, first_qo + entries)` of `topic`/`queue_id` and `index_keys` index entries have
    /// their files (allocating them now if needed), so that an acknowledged message can always be
    /// dispatched. Refuses the put with CREATE_MAPPED_FILE_FAILED (as a commitlog file that cannot
    /// be created) otherwise; logged once, then at most once a minute, and when puts pass again.
    fn reserve_logics(
        &self,
        topic: &str,
        queue_id: i32,
        first_qo: i64,
        entries: usize,
        index_keys: u64,
    ) -> std::result::Result<(), PutMessageStatus> {
        let res = (|| -> Result<bool> {
            let mut allocated = false;
            if entries > 0 {
                allocated = self.cqs.get_or_create(topic, queue_id)?.reserve(first_qo, entries)?;
            }
            Ok(self.index.reserve(index_keys)? || allocated)
        })();
        match res {
            Ok(allocated) => {
                // Only an allocation ends a refusal episode: puts that need no new file pass
                // while others are refused.
                if let Some(r) = allocated.then(|| self.reserve_log.succeeded()).flatten() {
                    tracing::info!(
                        refused_puts = r.failures,
                        after_ms = r.lasted.as_millis() as u64,
                        "consume queue and index space available again: puts accepted"
                    );
                }
                Ok(())
            }
            Err(e) => {
                match self.reserve_log.failed() {
                    FailureNote::First => tracing::error!(
                        error = %e,
                        topic,
                        queue_id,
                        "cannot allocate consume queue or index space for a put: puts that need it are refused \
                         (CREATE_MAPPED_FILE_FAILED) until space is available (logged again at most once a minute)"
                    ),
                    FailureNote::Still { failures, since } => tracing::error!(
                        error = %e,
                        topic,
                        queue_id,
                        refused_puts = failures,
                        since_s = since.as_secs(),
                        "still cannot allocate consume queue or index space: puts refused"
                    ),
                    FailureNote::Quiet => {}
                }
                Err(PutMessageStatus::CreateMappedFileFailed)
            }
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

    /// Raises running-flag bits for a failed dispatch (cleared again when it recovers).
    fn raise_dispatch_flag(&self, bit: u32) {
        self.dispatch_flag_bits.fetch_or(bit, Ordering::AcqRel);
        self.flags.fetch_or(bit, Ordering::AcqRel);
    }

    /// A dispatch attempt failed at commitlog offset `at`: logged once, then at most once a minute.
    fn dispatch_failed(&self, at: i64, e: &StoreError) {
        match self.dispatch_log.failed() {
            FailureNote::First => tracing::error!(
                error = %e,
                offset = at,
                "dispatch failed: consume queues or index cannot be written; writes are refused and dispatch \
                 retries every 100 ms until it succeeds (logged again at most once a minute)"
            ),
            FailureNote::Still { failures, since } => tracing::error!(
                error = %e,
                offset = at,
                failures,
                since_s = since.as_secs(),
                "dispatch still failing"
            ),
            FailureNote::Quiet => {}
        }
    }

    /// A record was dispatched: ends a failure episode (clearing the flags it raised) if any.
    fn dispatch_succeeded(&self) {
        if let Some(r) = self.dispatch_log.succeeded() {
            let bits =
                self.dispatch_flag_bits.swap(0, Ordering::AcqRel) & !self.flush_flag_bits.load(Ordering::Acquire);
            self.flags.fetch_and(!bits, Ordering::AcqRel);
            tracing::info!(
                failed_attempts = r.failures,
                after_ms = r.lasted.as_millis() as u64,
                "dispatch recovered: consume queues and index are written again, writes accepted"
            );
        }
    }

    fn wake_dispatcher(&self) {
        *self.dispatch_seq.lock() += 1;
        self.dispatch_cv.notify_one();
    }

    fn poison(&self, e: &StoreError) {
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
        let fault = *self.flush_fault.lock();
        let res = match fault {
            FlushFault::None => self.commitlog.flush(least_pages),
            FlushFault::Stall => return true,
            FlushFault::Fail => Err(StoreError::Io {
                path: self.config.commit_log_dir(),
                source: std::io::Error::from_raw_os_error(libc::EIO),
            }),
        };
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

    fn flush_loop(&self) {
        let sync = self.config.flush_disk_type == FlushDiskType::SyncFlush;
        let interval = Duration::from_millis(self.config.flush_interval_commit_log.max(1));
        let thorough = Duration::from_millis(self.config.flush_commit_log_thorough_interval);
        let mut last_full = Instant::now();
        // Requests not yet satisfied (e.g. the disk stalls): they stay here until their offset is
        // flushed, the flush fails, or the waiter gave up (FLUSH_DISK_TIMEOUT).
        let mut pending: Vec<FlushRequest> = Vec::new();
        loop {
            let stopping = self.stop_flush.load(Ordering::Acquire);
            if self.halt.load(Ordering::Acquire) {
                return;
            }
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
                self.config.flush_commit_log_least_pages
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

    fn flush_logics(&self) -> Result<()> {
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

    fn logics_loop(&self) {
        let interval = Duration::from_millis(self.config.flush_interval_consume_queue.max(1));
        loop {
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

    fn reput_loop(&self) {
        loop {
            let seq = *self.dispatch_seq.lock();
            let progressed = self.do_reput();
            if self.halt.load(Ordering::Acquire) {
                return;
            }
            if self.stop_dispatch.load(Ordering::Acquire) && !progressed {
                return;
            }
            if !progressed {
                let mut g = self.dispatch_seq.lock();
                if *g == seq && !self.stop_dispatch.load(Ordering::Acquire) {
                    self.dispatch_cv.wait_for(&mut g, Duration::from_millis(100));
                }
            }
        }
    }

    /// Dispatches records from `reput_from` to the end of the written data. Returns whether it
    /// advanced.
    fn do_reput(&self) -> bool {
        let mut progressed = false;
        let mut arrivals: Arrivals = HashMap::new();
        loop {
            let reput = self.reput_from.load(Ordering::Acquire);
            let max = self.commitlog.max_offset();
            if reput >= max {
                break;
            }
            let min = self.commitlog.min_offset();
            if reput < min {
                self.reput_from.store(min, Ordering::Release);
                continue;
            }
            let Some(f) = self.commitlog.files().find(reput as u64) else {
                break;
            };
            let pos = (reput as u64 - f.from_offset()) as usize;
            let wrote = f.wrote_pos();
            if pos >= wrote {
                if f.is_full() {
                    self.reput_from.store((f.from_offset() + f.size() as u64) as i64, Ordering::Release);
                    continue;
                }
                break;
            }
            let data = f.slice(pos, wrote - pos);
            let mut p = 0usize;
            let mut next_file = false;
            let mut stalled = false;
            while p < data.len() {
                match check_record(&data[p..], false) {
                    RecordCheck::Message(v) => {
                        let rec = &data[p..p + v.store_size];
                        if let Err(e) = self.dispatch(&v, rec, &mut arrivals) {
                            self.dispatch_failed(reput + p as i64, &e);
                            stalled = true;
                            break;
                        }
                        self.dispatch_succeeded();
                        p += v.store_size;
                    }
                    RecordCheck::Blank(_) => {
                        next_file = true;
                        break;
                    }
                    RecordCheck::Incomplete => break, // raw append in progress
                    RecordCheck::End | RecordCheck::Invalid(_) => {
                        let at = reput + p as i64;
                        if self.dispatch_stalled_at.swap(at, Ordering::AcqRel) != at {
                            tracing::error!(offset = at, "invalid commitlog record; dispatch stalled");
                        }
                        stalled = true;
                        break;
                    }
                }
            }
            let new = if next_file { (f.from_offset() + f.size() as u64) as i64 } else { reput + p as i64 };
            if new == reput {
                break;
            }
            progressed = true;
            self.reput_from.store(new, Ordering::Release);
            self.publish(&mut arrivals);
            if stalled {
                break;
            }
        }
        if progressed {
            self.publish(&mut arrivals);
        }
        progressed
    }

    fn publish(&self, arrivals: &mut Arrivals) {
        let reput = self.reput_from.load(Ordering::Acquire);
        self.dispatched_tx.send_replace(reput);
        if arrivals.is_empty() {
            return;
        }
        let l = self.listener.read().clone();
        if let Some(l) = l {
            for (t, qs) in arrivals.iter_mut() {
                for (q, off) in qs.drain() {
                    l(t, q, off);
                }
            }
        } else {
            arrivals.values_mut().for_each(|m| m.clear());
        }
    }

    fn tags_code_of(&self, v: &RecordView, topic: &str, props: &str) -> i64 {
        if topic == message::SCHEDULE_TOPIC {
            if let Some(level) = message::find_property(props, message::property::DELAY)
                .and_then(|d| d.parse::<i64>().ok())
                .filter(|l| *l > 0)
            {
                let n = self.delay_levels.len() as i64;
                let l = level.min(n);
                return match self.delay_levels.get((l - 1).max(0) as usize) {
                    Some(d) => v.store_timestamp + d,
                    None => v.store_timestamp + 1000,
                };
            }
        }
        message::tags_code(message::find_property(props, message::property::TAGS))
    }

    fn dispatch(&self, v: &RecordView, rec: &[u8], arrivals: &mut Arrivals) -> Result<()> {
        let topic = v.topic(rec);
        let props = v.properties(rec);
        let tran = sysflag::transaction_value(v.sys_flag);
        if tran == sysflag::TRANSACTION_NOT_TYPE || tran == sysflag::TRANSACTION_COMMIT {
            let tags = self.tags_code_of(v, topic, props);
            let cq = self
                .cqs
                .get_or_create(topic, v.queue_id)
                .inspect_err(|_| self.raise_dispatch_flag(running_flags::WRITE_LOGICS_QUEUE_ERROR))?;
            cq.put(
                CqEntry { phys_offset: v.commit_log_offset, size: v.store_size as i32, tags_code: tags },
                v.queue_offset,
            )
            .inspect_err(|_| self.raise_dispatch_flag(running_flags::WRITE_LOGICS_QUEUE_ERROR))?;
            let max = cq.max_offset_in_queue();
            match arrivals.get_mut(topic) {
                Some(m) => {
                    m.insert(v.queue_id, max);
                }
                None => {
                    arrivals.insert(topic.to_string(), HashMap::from([(v.queue_id, max)]));
                }
            }
        }
        if self.config.message_index_enable && tran != sysflag::TRANSACTION_ROLLBACK {
            let uniq = message::find_property(props, message::property::UNIQ_KEY);
            let keys = message::find_property(props, message::property::KEYS);
            self.index
                .build(topic, uniq, keys, v.commit_log_offset, v.store_timestamp)
                .inspect_err(|_| self.raise_dispatch_flag(running_flags::WRITE_INDEX_FILE_ERROR))?;
        }
        self.last_dispatched_ts.store(v.store_timestamp, Ordering::Release);
        // Raw (replicated) appends carry no store time of their own: the dispatched one feeds the
        // checkpoint's physic timestamp (it trails the written data, so it is safe).
        self.commitlog.note_store_timestamp(v.store_timestamp);
        Ok(())
    }
}
