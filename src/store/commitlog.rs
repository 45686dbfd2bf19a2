//! The commitlog: append under a put lock (queue offsets assigned here), BLANK at file end,
//! raw append for replication, reads and the recovery scan.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::error::{Result, StoreError};
use super::failure_log::{FailureLog, FailureNote};
use super::mapped_file::MappedFile;
use super::mapped_file_queue::MappedFileQueue;
use super::message::{
    check_record, encode_blank, encode_record, now_ms, push_offset_msg_id, store_timestamp_position, sysflag,
    MessageInner, MessageVersion, RecordCheck, RecordStamp, RecordView, END_FILE_MIN_BLANK_LENGTH,
};

/// Outcome of a put (Apache's `PutMessageStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMessageStatus {
    /// Stored (and flushed if SYNC_FLUSH).
    PutOk,
    /// Stored, but the sync flush did not finish within `syncFlushTimeout`.
    FlushDiskTimeout,
    /// Stored, slave did not acknowledge in time (used by the HA layer).
    FlushSlaveTimeout,
    /// Stored, no slave available (used by the HA layer).
    SlaveNotAvailable,
    /// Store shut down, not writeable (disk full, poisoned after a failed flush, …).
    ServiceNotAvailable,
    /// A new commitlog file could not be created (e.g. ENOSPC).
    CreateMappedFileFailed,
    /// Message too large or malformed.
    MessageIllegal,
    /// Properties longer than 32767 bytes.
    PropertiesSizeExceeded,
    /// Page cache busy (not produced by this store).
    OsPageCacheBusy,
    /// Anything else (including a failed flush of this very message).
    UnknownError,
}

impl PutMessageStatus {
    /// Apache's constant name, e.g. `PUT_OK`.
    pub fn name(self) -> &'static str {
        match self {
            PutMessageStatus::PutOk => "PUT_OK",
            PutMessageStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
            PutMessageStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
            PutMessageStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
            PutMessageStatus::ServiceNotAvailable => "SERVICE_NOT_AVAILABLE",
            PutMessageStatus::CreateMappedFileFailed => "CREATE_MAPPED_FILE_FAILED",
            PutMessageStatus::MessageIllegal => "MESSAGE_ILLEGAL",
            PutMessageStatus::PropertiesSizeExceeded => "PROPERTIES_SIZE_EXCEEDED",
            PutMessageStatus::OsPageCacheBusy => "OS_PAGE_CACHE_BUSY",
            PutMessageStatus::UnknownError => "UNKNOWN_ERROR",
        }
    }
    /// Whether the message was stored (PUT_OK and the three "sent but" statuses).
    pub fn is_stored(self) -> bool {
        matches!(
            self,
            PutMessageStatus::PutOk
                | PutMessageStatus::FlushDiskTimeout
                | PutMessageStatus::FlushSlaveTimeout
                | PutMessageStatus::SlaveNotAvailable
        )
    }
}

/// What an append wrote (Apache's `AppendMessageResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessageResult {
    /// Commitlog offset of the first record.
    pub wrote_offset: i64,
    /// Bytes written (all records of a batch, excluding a BLANK).
    pub wrote_bytes: usize,
    /// Offset message ids, comma-joined for a batch.
    pub msg_id: String,
    /// Queue offset of the first message (0 for PREPARED/ROLLBACK).
    pub logics_offset: i64,
    /// Store timestamp.
    pub store_timestamp: i64,
    /// Number of messages.
    pub msg_num: usize,
}

impl AppendMessageResult {
    /// End offset (first byte after the last record).
    pub fn end_offset(&self) -> i64 {
        self.wrote_offset + self.wrote_bytes as i64
    }
}

/// What [`encode_record`] accepts besides the lengths (checked before anything is reserved).
fn encodable(m: &MessageInner, version: MessageVersion) -> bool {
    !(version == MessageVersion::V1 && m.topic.len() > 127)
        && m.topic.len() <= i16::MAX as usize
        && m.properties.len() <= super::message::MAX_PROPERTIES_LEN
        && m.body.len() <= i32::MAX as usize
}

/// Mutable state guarded by the put lock.
#[derive(Debug, Default)]
struct PutState {
    /// topic → queueId → next queue offset.
    table: HashMap<String, HashMap<i32, i64>>,
}

/// The commitlog.
#[derive(Debug)]
pub struct CommitLog {
    files: Arc<MappedFileQueue>,
    put: Mutex<PutState>,
    /// Store time of the newest record appended.
    last_store_ts: AtomicI64,
    /// Where the stream starts when no file exists (after recovery / cleanup).
    empty_start: AtomicU64,
    /// Set by [`CommitLog::fence`] at shutdown.
    closed: std::sync::atomic::AtomicBool,
    /// Rate limits the "cannot create commitlog file" lines of a full disk.
    create_log: FailureLog,
    /// A plain commitlog kept read-only below [`CommitLog::divided_offset`] when the store moved
    /// to a replicated log (Apache's `DLedgerCommitLog` with `dividedCommitlogOffset`).
    old: Option<Arc<MappedFileQueue>>,
    /// Where the replicated data starts above `old` (-1: no old commitlog).
    divided: i64,
}

impl CommitLog {
    /// Loads the commitlog directory.
    pub fn load(dir: &std::path::Path, file_size: u64) -> Result<CommitLog> {
        Ok(Self::over(Arc::new(MappedFileQueue::load(dir, file_size)?)))
    }

    /// A commitlog reading its records from `files` (a replicated log's data files, whose owner
    /// writes them: see [`super::replicated`]).
    pub fn over(files: Arc<MappedFileQueue>) -> CommitLog {
        CommitLog {
            files,
            put: Mutex::new(PutState::default()),
            last_store_ts: AtomicI64::new(0),
            empty_start: AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
            create_log: FailureLog::default(),
            old: None,
            divided: -1,
        }
    }

    /// A commitlog reading records below `divided` from `old` (a plain commitlog, read-only, its
    /// last file closed by a BLANK) and from `divided` on from `files` (a replicated log's data
    /// files, which start at or after `divided`).
    pub fn over_divided(files: Arc<MappedFileQueue>, old: Arc<MappedFileQueue>, divided: i64) -> CommitLog {
        CommitLog { old: Some(old), divided, ..Self::over(files) }
    }

    /// Where the replicated data starts above a kept plain commitlog (-1 if there is none).
    pub fn divided_offset(&self) -> i64 {
        self.divided
    }

    /// The kept plain commitlog below [`CommitLog::divided_offset`], while it has files.
    pub fn old_files(&self) -> Option<&Arc<MappedFileQueue>> {
        self.old.as_ref().filter(|o| !o.is_empty())
    }

    /// The files holding `offset`: the kept plain commitlog below the divided offset, else the
    /// commitlog's own.
    fn queue_at(&self, offset: i64) -> &MappedFileQueue {
        match &self.old {
            Some(o) if offset < self.divided => o,
            _ => &self.files,
        }
    }

    /// The file queue.
    pub fn files(&self) -> &MappedFileQueue {
        &self.files
    }

    /// First offset held (in the kept plain commitlog while it has files).
    pub fn min_offset(&self) -> i64 {
        if let Some(f) = self.old_files().and_then(|o| o.first()) {
            return f.from_offset() as i64;
        }
        match self.files.first() {
            Some(f) => f.from_offset() as i64,
            None => self.empty_start.load(Ordering::Acquire) as i64,
        }
    }

    /// End of the written data.
    pub fn max_offset(&self) -> i64 {
        match self.files.last() {
            Some(f) => (f.from_offset() + f.wrote_pos() as u64) as i64,
            None => self.empty_start.load(Ordering::Acquire) as i64,
        }
    }

    /// Store time of the newest appended record.
    pub fn last_store_timestamp(&self) -> i64 {
        self.last_store_ts.load(Ordering::Acquire)
    }

    /// Raises the newest store timestamp (used for raw appends, via the dispatcher).
    pub fn note_store_timestamp(&self, ts: i64) {
        self.last_store_ts.fetch_max(ts, Ordering::AcqRel);
    }

    /// Replaces the topic-queue offset table (after recovery).
    pub fn set_queue_offset_table(&self, table: HashMap<String, HashMap<i32, i64>>) {
        self.put.lock().table = table;
    }

    /// Next queue offset of a topic-queue.
    pub fn queue_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.put.lock().table.get(topic).and_then(|m| m.get(&queue_id)).copied().unwrap_or(0)
    }

    /// Refuses further appends and waits for any in-flight append to finish.
    pub fn fence(&self) {
        let _g = self.put.lock();
        self.closed.store(true, Ordering::Release);
    }

    /// Forgets the queue offsets of a topic.
    pub fn remove_topic(&self, topic: &str) {
        self.put.lock().table.remove(topic);
    }

    /// Appends `msgs` (one message or a batch of one topic-queue) as consecutive records in one
    /// file. `crcs[i]` is the masked body CRC of `msgs[i]`, computed by the caller outside the lock.
    ///
    /// `reserve(first_queue_offset, entries)` runs under the put lock once the file to write is
    /// known and before anything is written: the batch will take the queue offsets
    /// `[first_queue_offset, first_queue_offset + entries)` (`entries` counts the messages that get
    /// a consume-queue entry). If it refuses, nothing is appended and its status is returned;
    /// once it accepted, the append cannot fail.
    pub fn append(
        &self,
        msgs: &[MessageInner],
        crcs: &[i32],
        version: MessageVersion,
        reserve: impl FnOnce(i64, usize) -> std::result::Result<(), PutMessageStatus>,
    ) -> std::result::Result<AppendMessageResult, PutMessageStatus> {
        let lens: Vec<usize> = msgs.iter().map(|m| m.record_length(version)).collect();
        let total: usize = lens.iter().sum();
        let file_size = self.files.file_size() as usize;
        if msgs.is_empty()
            || total + END_FILE_MIN_BLANK_LENGTH > file_size
            || !msgs.iter().all(|m| encodable(m, version))
        {
            return Err(PutMessageStatus::MessageIllegal);
        }
        let has_cq_entry = |m: &MessageInner| {
            let tran = sysflag::transaction_value(m.sys_flag);
            tran != sysflag::TRANSACTION_PREPARED && tran != sysflag::TRANSACTION_ROLLBACK
        };
        let cq_entries = msgs.iter().filter(|m| has_cq_entry(m)).count();
        let mut st = self.put.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(PutMessageStatus::ServiceNotAvailable);
        }
        let start = self.empty_start.load(Ordering::Acquire);
        let mut file = self.file_for_write(start)?;
        if total + END_FILE_MIN_BLANK_LENGTH > file.remaining() {
            let pos = file.wrote_pos();
            let remaining = file.remaining();
            if remaining >= END_FILE_MIN_BLANK_LENGTH {
                // SAFETY: single writer (put lock), beyond the published position.
                encode_blank(unsafe { file.slice_mut(pos, 8) }, remaining as i32);
            }
            file.set_wrote_pos(file_size);
            file = self.file_for_write(start)?;
        }
        let first = &msgs[0];
        let next_qo = st.table.get(first.topic.as_str()).and_then(|q| q.get(&first.queue_id)).copied().unwrap_or(0);
        reserve(next_qo, cq_entries)?;
        let store_ts = now_ms();
        let wrote_pos = file.wrote_pos();
        let base = file.from_offset() + wrote_pos as u64;
        // SAFETY: single writer (put lock); readers only look below the published position.
        let dst = unsafe { file.slice_mut(wrote_pos, total) };
        let mut at = 0usize;
        let mut ids = String::new();
        let mut first_qo = 0;
        for (i, m) in msgs.iter().enumerate() {
            let qo = if !has_cq_entry(m) {
                0
            } else {
                let queues = match st.table.get_mut(m.topic.as_str()) {
                    Some(q) => q,
                    None => st.table.entry(m.topic.clone()).or_default(),
                };
                let e = queues.entry(m.queue_id).or_insert(0);
                let q = *e;
                *e += 1;
                q
            };
            if i == 0 {
                first_qo = qo;
            }
            let phys = base + at as u64;
            let stamp = RecordStamp {
                version,
                body_crc: crcs[i],
                queue_offset: qo,
                physical_offset: phys as i64,
                store_timestamp: store_ts,
            };
            let n = match encode_record(m, &stamp, &mut dst[at..at + lens[i]]) {
                Some(n) => n,
                None => return Err(PutMessageStatus::MessageIllegal),
            };
            if i > 0 {
                ids.push(',');
            }
            push_offset_msg_id(&mut ids, &m.store_host, phys as i64);
            at += n;
        }
        file.set_wrote_pos(wrote_pos + total);
        self.last_store_ts.store(store_ts, Ordering::Release);
        drop(st);
        Ok(AppendMessageResult {
            wrote_offset: base as i64,
            wrote_bytes: total,
            msg_id: ids,
            logics_offset: first_qo,
            store_timestamp: store_ts,
            msg_num: msgs.len(),
        })
    }

    /// Encodes `msgs` (one message or a batch of one topic-queue) as one record each under the put
    /// lock (queue offsets assigned here, PHYSICALOFFSET left for the log's hook) and hands each
    /// record to `submit` in order, still under the lock, so entries enter the log in queue-offset
    /// order (Apache's `DLedgerCommitLog`: one entry per message, a batch as one
    /// `BatchAppendEntryRequest`). The queue offsets of the records `submit` accepted are taken;
    /// the first refusal stops the batch. Returns what `submit` returned for each accepted record,
    /// the refusal if any, the first queue offset, the record lengths and the store time.
    #[allow(clippy::type_complexity)]
    pub fn append_replicated<W>(
        &self,
        msgs: &[MessageInner],
        crcs: &[i32],
        version: MessageVersion,
        mut submit: impl FnMut(Bytes) -> std::result::Result<W, PutMessageStatus>,
    ) -> std::result::Result<(Vec<W>, Option<PutMessageStatus>, i64, Vec<usize>, i64), PutMessageStatus> {
        let lens: Vec<usize> = msgs.iter().map(|m| m.record_length(version)).collect();
        let file_size = self.files.file_size() as usize;
        if msgs.is_empty()
            || lens.iter().any(|l| l + END_FILE_MIN_BLANK_LENGTH > file_size)
            || !msgs.iter().all(|m| encodable(m, version))
        {
            return Err(PutMessageStatus::MessageIllegal);
        }
        let has_cq_entry = |m: &MessageInner| {
            let tran = sysflag::transaction_value(m.sys_flag);
            tran != sysflag::TRANSACTION_PREPARED && tran != sysflag::TRANSACTION_ROLLBACK
        };
        // Encoded first (nothing is submitted if one does not encode).
        let mut st = self.put.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(PutMessageStatus::ServiceNotAvailable);
        }
        let store_ts = now_ms();
        let topic = msgs[0].topic.as_str();
        let mut next = st.table.get(topic).and_then(|q| q.get(&msgs[0].queue_id)).copied().unwrap_or(0);
        let first_qo = if has_cq_entry(&msgs[0]) { next } else { 0 };
        let mut records = Vec::with_capacity(msgs.len());
        let mut taken = Vec::with_capacity(msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            let qo = if has_cq_entry(m) {
                next += 1;
                next - 1
            } else {
                0
            };
            taken.push(next);
            let stamp = RecordStamp {
                version,
                body_crc: crcs[i],
                queue_offset: qo,
                physical_offset: 0,
                store_timestamp: store_ts,
            };
            let mut rec = vec![0u8; lens[i]];
            encode_record(m, &stamp, &mut rec).ok_or(PutMessageStatus::MessageIllegal)?;
            records.push(Bytes::from(rec));
        }
        let mut waits = Vec::with_capacity(msgs.len());
        let mut refused = None;
        for rec in records {
            match submit(rec) {
                Ok(w) => waits.push(w),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        if waits.is_empty() {
            return Err(refused.unwrap_or(PutMessageStatus::UnknownError));
        }
        let upto = taken[waits.len() - 1];
        st.table.entry(topic.to_string()).or_default().insert(msgs[0].queue_id, upto);
        self.last_store_ts.store(store_ts, Ordering::Release);
        drop(st);
        Ok((waits, refused, first_qo, lens, store_ts))
    }

    fn file_for_write(&self, start: u64) -> std::result::Result<Arc<MappedFile>, PutMessageStatus> {
        match self.files.last_or_create(start) {
            Ok(f) => {
                if let Some(r) = self.create_log.succeeded() {
                    tracing::info!(
                        refused_puts = r.failures,
                        after_ms = r.lasted.as_millis() as u64,
                        "commitlog file created again: puts accepted"
                    );
                }
                Ok(f)
            }
            Err(e) => {
                match self.create_log.failed() {
                    FailureNote::First => tracing::error!(
                        error = %e,
                        "cannot create commitlog file: puts are refused (CREATE_MAPPED_FILE_FAILED) until it can be \
                         created (logged again at most once a minute)"
                    ),
                    FailureNote::Still { failures, since } => tracing::error!(
                        error = %e,
                        refused_puts = failures,
                        since_s = since.as_secs(),
                        "still cannot create commitlog file"
                    ),
                    FailureNote::Quiet => {}
                }
                Err(PutMessageStatus::CreateMappedFileFailed)
            }
        }
    }

    /// Closes the commitlog for good (a store moving to a replicated log, Apache's
    /// `DLedgerCommitLog.setRecoverPosition`): refuses further appends, fills the rest of the last
    /// file with a BLANK (unless it is full or already ends in one) and returns the end of that
    /// file, where the replicated data starts (`dividedCommitlogOffset`); `None` if there is no
    /// file. The caller flushes.
    pub fn seal(&self) -> Option<u64> {
        let _st = self.put.lock();
        self.closed.store(true, Ordering::Release);
        let f = self.files.last()?;
        let pos = f.wrote_pos();
        let remaining = f.size() - pos;
        if remaining >= END_FILE_MIN_BLANK_LENGTH {
            // SAFETY: single writer (put lock, appends refused), at the published position.
            encode_blank(unsafe { f.slice_mut(pos, 8) }, remaining as i32);
        } else if remaining > 0 {
            // Too short for a BLANK: zeros, which readers take as the end of the file.
            // SAFETY: as above.
            unsafe { f.slice_mut(pos, remaining) }.fill(0);
        }
        f.set_wrote_pos(f.size());
        Some(f.from_offset() + f.size() as u64)
    }

    /// Appends raw commitlog bytes (replication) at exactly the current max offset.
    pub fn append_raw(&self, start_offset: i64, data: &[u8]) -> Result<()> {
        let _st = self.put.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::ShutDown);
        }
        let max = self.max_offset();
        if start_offset != max {
            return Err(StoreError::InvalidArgument(format!(
                "append_raw at {start_offset} but commitlog max offset is {max}"
            )));
        }
        let mut at = start_offset as u64;
        let mut rest = data;
        while !rest.is_empty() {
            let f = match self.files.last() {
                Some(f) if !f.is_full() => f,
                Some(f) => self.files.create_file(f.from_offset() + self.files.file_size())?,
                None => {
                    let f = self.files.create_file(at - at % self.files.file_size())?;
                    f.set_wrote_pos((at - f.from_offset()) as usize);
                    f.set_flushed_pos((at - f.from_offset()) as usize);
                    self.files.set_flushed_where(at);
                    f
                }
            };
            let pos = f.wrote_pos();
            let n = rest.len().min(f.remaining());
            // SAFETY: single writer (put lock), beyond the published position.
            unsafe { f.slice_mut(pos, n) }.copy_from_slice(&rest[..n]);
            f.set_wrote_pos(pos + n);
            rest = &rest[n..];
            at += n as u64;
        }
        Ok(())
    }

    /// `size` bytes at `offset` if fully written (zero-copy).
    pub fn read(&self, offset: i64, size: usize) -> Option<Bytes> {
        if offset < 0 {
            return None;
        }
        let f = self.queue_at(offset).find(offset as u64)?;
        let pos = (offset as u64 - f.from_offset()) as usize;
        if pos + size > f.wrote_pos() {
            return None;
        }
        Some(f.bytes(pos, size))
    }

    /// The whole record at `offset` (size read from TOTALSIZE).
    pub fn read_record(&self, offset: i64) -> Option<Bytes> {
        let head = self.read(offset, 4)?;
        let size = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if size <= 0 {
            return None;
        }
        self.read(offset, size as usize)
    }

    /// Up to `max` written bytes from `offset`, within one file (replication reads).
    pub fn read_from(&self, offset: i64, max: usize) -> Option<Bytes> {
        if offset < 0 {
            return None;
        }
        let f = self.queue_at(offset).find(offset as u64)?;
        let pos = (offset as u64 - f.from_offset()) as usize;
        let wrote = f.wrote_pos();
        if pos >= wrote {
            return None;
        }
        Some(f.bytes(pos, (wrote - pos).min(max)))
    }

    /// Store timestamp of the record at `offset`.
    pub fn store_time_at(&self, offset: i64, size: i32) -> Option<i64> {
        let rec = self.read(offset, size.max(0) as usize)?;
        if rec.len() < 72 {
            return None;
        }
        let sf = i32::from_be_bytes([rec[36], rec[37], rec[38], rec[39]]);
        let p = store_timestamp_position(sf);
        let mut b = [0u8; 8];
        b.copy_from_slice(&rec[p..p + 8]);
        Some(i64::from_be_bytes(b))
    }

    /// The first record of a file, if valid.
    pub fn first_record(&self, f: &MappedFile, check_crc: bool) -> Option<RecordView> {
        match check_record(f.slice(0, f.size()), check_crc) {
            RecordCheck::Message(v) if v.commit_log_offset == f.from_offset() as i64 => Some(v),
            _ => None,
        }
    }

    /// Scans records forward from `from` (a record boundary) over the whole files (recovery);
    /// returns the end of the last valid record. A record is valid when [`check_record`] accepts it
    /// and its PHYSICALOFFSET equals its position.
    pub fn scan_valid_end(&self, from: u64, check_crc: bool) -> u64 {
        let mut at = from;
        loop {
            let Some(f) = self.files.find(at) else {
                return at;
            };
            let pos = (at - f.from_offset()) as usize;
            let data = f.slice(pos, f.size() - pos);
            match check_record(data, check_crc) {
                RecordCheck::Message(v) => {
                    if v.commit_log_offset != at as i64 {
                        tracing::warn!(
                            offset = at,
                            stored = v.commit_log_offset,
                            "record physical offset mismatch; cutting here"
                        );
                        return at;
                    }
                    at += v.store_size as u64;
                }
                RecordCheck::Blank(_) => {
                    let next = f.from_offset() + f.size() as u64;
                    if self.files.find(next).is_none() {
                        return at;
                    }
                    at = next;
                }
                RecordCheck::End => return at,
                RecordCheck::Incomplete => {
                    tracing::warn!(offset = at, "incomplete (torn) record; cutting here");
                    return at;
                }
                RecordCheck::Invalid(e) => {
                    tracing::warn!(offset = at, error = %e, "invalid record; cutting here");
                    return at;
                }
            }
        }
    }

    /// Makes an empty commitlog start at `offset` (a fresh slave starting where its master is).
    pub fn start_empty_at(&self, offset: i64) -> Result<()> {
        let _st = self.put.lock();
        if offset < 0 || !self.files.is_empty() {
            return Err(StoreError::InvalidArgument(format!(
                "cannot start the commitlog at {offset}: it is not empty or the offset is negative"
            )));
        }
        self.empty_start.store(offset as u64, Ordering::Release);
        Ok(())
    }

    /// Sets the write positions so the stream ends at `offset` (zeroing the cut tail if `zero`).
    pub fn truncate(&self, offset: u64, zero: bool) -> Result<()> {
        self.files.truncate_dirty(offset, zero)?;
        self.files.set_flushed_where(offset);
        if self.files.is_empty() {
            self.empty_start.store(offset, Ordering::Release);
        }
        Ok(())
    }

    /// Flushes (see [`MappedFileQueue::flush`]).
    pub fn flush(&self, least_pages: usize) -> Result<u64> {
        self.files.flush(least_pages)
    }

    /// Flushed offset.
    pub fn flushed_where(&self) -> u64 {
        self.files.flushed_where()
    }
}
