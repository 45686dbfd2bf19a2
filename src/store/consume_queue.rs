//! Consume queues: 20-byte entries `(commitlog offset, size, tagsCode)` per topic/queue (spec §7).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use super::error::{io_err, Result};
use super::mapped_file_queue::MappedFileQueue;

/// Size of one consume queue entry.
pub const CQ_UNIT_SIZE: usize = 20;

/// One consume queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    /// Commitlog offset of the record.
    pub phys_offset: i64,
    /// Record size.
    pub size: i32,
    /// Tag hash code (or deliver time for the schedule topic).
    pub tags_code: i64,
}

impl CqEntry {
    /// Parses 20 bytes.
    pub fn parse(b: &[u8]) -> CqEntry {
        let mut l = [0u8; 8];
        l.copy_from_slice(&b[0..8]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[12..20]);
        CqEntry {
            phys_offset: i64::from_be_bytes(l),
            size: i32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            tags_code: i64::from_be_bytes(t),
        }
    }
    /// Serialises to 20 bytes.
    pub fn to_bytes(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0..8].copy_from_slice(&self.phys_offset.to_be_bytes());
        b[8..12].copy_from_slice(&self.size.to_be_bytes());
        b[12..20].copy_from_slice(&self.tags_code.to_be_bytes());
        b
    }
    /// A valid entry (offset ≥ 0 and size > 0) — recovery stops at the first invalid one.
    pub fn is_valid(&self) -> bool {
        self.phys_offset >= 0 && self.size > 0
    }
    /// The pre-blank filler entry `(0, Integer.MAX_VALUE, 0)`.
    pub fn is_filler(&self) -> bool {
        self.phys_offset == 0 && self.size == i32::MAX && self.tags_code == 0
    }
    /// The filler entry.
    pub const FILLER: CqEntry = CqEntry { phys_offset: 0, size: i32::MAX, tags_code: 0 };
}

/// Which end of a run of equal timestamps [`ConsumeQueue::offset_by_time`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundaryType {
    /// First offset whose store time is ≥ the timestamp (max offset if none).
    Lower,
    /// Last offset whose store time is ≤ the timestamp (min offset if none).
    Upper,
}

/// One consume queue `consumequeue/<topic>/<queueId>/`.
#[derive(Debug)]
pub struct ConsumeQueue {
    topic: String,
    queue_id: i32,
    files: MappedFileQueue,
    /// End (offset + size) of the last dispatched record.
    max_physic_offset: AtomicI64,
    /// First logical offset served.
    min_logic_offset: AtomicI64,
    write_lock: Mutex<()>,
}

impl ConsumeQueue {
    /// Loads (or creates) the queue in `dir`.
    pub fn load(dir: &Path, topic: &str, queue_id: i32, file_size: u64) -> Result<ConsumeQueue> {
        let files = MappedFileQueue::load(dir, file_size)?;
        Ok(ConsumeQueue {
            topic: topic.to_string(),
            queue_id,
            files,
            max_physic_offset: AtomicI64::new(-1),
            min_logic_offset: AtomicI64::new(0),
            write_lock: Mutex::new(()),
        })
    }

    /// Topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// Queue id.
    pub fn queue_id(&self) -> i32 {
        self.queue_id
    }

    /// Recovery: scans from the third-last file, keeps everything up to the last valid entry.
    pub fn recover(&self) -> Result<()> {
        let _g = self.write_lock.lock();
        let files = self.files.files();
        if files.is_empty() {
            return Ok(());
        }
        // The scan covers the last three files holding entries: files after them were only
        // preallocated (their first entry is zero) and must not push real data out of the window.
        let mut used = files.len();
        while used > 0 && !CqEntry::parse(files[used - 1].slice(0, CQ_UNIT_SIZE)).is_valid() {
            used -= 1;
        }
        let start = used.saturating_sub(3);
        let mut end = files[start].from_offset();
        let mut max_phys = -1i64;
        'outer: for f in &files[start..] {
            let data = f.slice(0, f.size());
            let mut pos = 0;
            while pos + CQ_UNIT_SIZE <= data.len() {
                let e = CqEntry::parse(&data[pos..pos + CQ_UNIT_SIZE]);
                if !e.is_valid() {
                    end = f.from_offset() + pos as u64;
                    break 'outer;
                }
                if !e.is_filler() {
                    max_phys = e.phys_offset + e.size as i64;
                }
                pos += CQ_UNIT_SIZE;
            }
            end = f.from_offset() + f.size() as u64;
        }
        if max_phys < 0 && start > 0 {
            // Fillers only in the scanned files: look at earlier ones for the last real entry.
            max_phys = self.scan_back_max_phys(&files[..start]);
        }
        self.files.truncate_dirty(end, false)?;
        self.files.set_flushed_where(end);
        self.max_physic_offset.store(max_phys, Ordering::Release);
        self.init_min_offset();
        Ok(())
    }

    fn scan_back_max_phys(&self, files: &[Arc<super::mapped_file::MappedFile>]) -> i64 {
        for f in files.iter().rev() {
            let data = f.slice(0, f.wrote_pos());
            for chunk in data.chunks_exact(CQ_UNIT_SIZE).rev() {
                let e = CqEntry::parse(chunk);
                if e.is_valid() && !e.is_filler() {
                    return e.phys_offset + e.size as i64;
                }
            }
        }
        -1
    }

    fn init_min_offset(&self) {
        let Some(first) = self.files.first() else {
            self.min_logic_offset.store(0, Ordering::Release);
            return;
        };
        let data = first.slice(0, first.wrote_pos());
        let mut idx = first.from_offset() / CQ_UNIT_SIZE as u64;
        for chunk in data.chunks_exact(CQ_UNIT_SIZE) {
            if !CqEntry::parse(chunk).is_filler() {
                break;
            }
            idx += 1;
        }
        self.min_logic_offset.store(idx as i64, Ordering::Release);
    }

    /// Moves the min offset past entries pointing below `commit_log_min` (after commitlog cleanup).
    pub fn correct_min_offset(&self, commit_log_min: i64) {
        let min = self.min_offset_in_queue();
        let max = self.max_offset_in_queue();
        let mut idx = min;
        while idx < max {
            match self.entry(idx) {
                Some(e) if e.is_filler() || e.phys_offset < commit_log_min => idx += 1,
                _ => break,
            }
        }
        self.min_logic_offset.fetch_max(idx, Ordering::AcqRel);
    }

    /// End of the last dispatched record (−1 if none).
    pub fn max_physic_offset(&self) -> i64 {
        self.max_physic_offset.load(Ordering::Acquire)
    }

    /// Next logical offset to be written.
    pub fn max_offset_in_queue(&self) -> i64 {
        (self.files.max_offset() / CQ_UNIT_SIZE as u64) as i64
    }

    /// First logical offset served.
    pub fn min_offset_in_queue(&self) -> i64 {
        self.min_logic_offset.load(Ordering::Acquire).min(self.max_offset_in_queue())
    }

    /// Appends the entry for logical offset `queue_offset`. Records already covered
    /// (`phys + size <= max physic offset`) and offsets already written are skipped (idempotent
    /// rebuild); a queue starting at a non-zero offset is pre-filled with filler entries.
    pub fn put(&self, entry: CqEntry, queue_offset: i64) -> Result<()> {
        let _g = self.write_lock.lock();
        if entry.phys_offset + entry.size as i64 <= self.max_physic_offset() {
            return Ok(());
        }
        let expected = queue_offset as u64 * CQ_UNIT_SIZE as u64;
        let fsize = self.files.file_size();
        if !self.files.is_empty()
            && expected > self.files.max_offset()
            && self.min_offset_in_queue() >= self.max_offset_in_queue()
        {
            // Every entry points at deleted data and this one comes after a gap (the commitlog
            // restarted later: a DLedger follower reset at its leader's begin): start the files
            // over at this offset instead of writing a filler for each offset of the gap.
            tracing::info!(topic = %self.topic, queue = self.queue_id, queue_offset, "consume queue restarts after a gap");
            self.files.clear()?;
        }
        if self.files.is_empty() && expected > 0 {
            let start = expected - expected % fsize;
            let f = self.files.create_file(start)?;
            let fill = (expected - start) as usize;
            // SAFETY: new file, single writer under write_lock, nothing published yet.
            let dst = unsafe { f.slice_mut(0, fill) };
            for chunk in dst.chunks_exact_mut(CQ_UNIT_SIZE) {
                chunk.copy_from_slice(&CqEntry::FILLER.to_bytes());
            }
            f.set_wrote_pos(fill);
            self.files.set_flushed_where(start);
            self.min_logic_offset.store(queue_offset, Ordering::Release);
        }
        let current = self.files.max_offset();
        if expected < current {
            tracing::warn!(topic = %self.topic, queue = self.queue_id, queue_offset, "consume queue entry already written, skipping");
            return Ok(());
        }
        if expected > current {
            tracing::warn!(topic = %self.topic, queue = self.queue_id, queue_offset, current = current / 20, "gap in consume queue; filling");
            let mut at = current;
            while at < expected {
                let f = self.files.last_or_create(at)?;
                let pos = f.wrote_pos();
                // SAFETY: single writer under write_lock, beyond published position.
                unsafe { f.slice_mut(pos, CQ_UNIT_SIZE) }.copy_from_slice(&CqEntry::FILLER.to_bytes());
                f.set_wrote_pos(pos + CQ_UNIT_SIZE);
                at += CQ_UNIT_SIZE as u64;
            }
        }
        let f = self.files.last_or_create(expected)?;
        let pos = f.wrote_pos();
        // SAFETY: single writer under write_lock, beyond the published position.
        unsafe { f.slice_mut(pos, CQ_UNIT_SIZE) }.copy_from_slice(&entry.to_bytes());
        f.set_wrote_pos(pos + CQ_UNIT_SIZE);
        self.max_physic_offset.store(entry.phys_offset + entry.size as i64, Ordering::Release);
        Ok(())
    }

    /// Makes sure the entries for logical offsets `[first, first + n)` land in files that exist or
    /// are prepared, so that dispatching them later needs no allocation. The put path calls this
    /// before acknowledging a message; an error (e.g. no space) means the put must be refused.
    /// Returns whether a file was allocated.
    pub fn reserve(&self, first: i64, n: usize) -> Result<bool> {
        let first = first.max(0) as u64 * CQ_UNIT_SIZE as u64;
        self.files.reserve_through(first, first + n as u64 * CQ_UNIT_SIZE as u64)
    }

    /// Allocates the next file ahead of time once the last one is three quarters full.
    pub fn preallocate_next(&self) -> Result<()> {
        self.files.preallocate_next_at((self.files.file_size() as usize / 4 * 3).max(CQ_UNIT_SIZE))
    }

    /// Number of files allocated ahead of time.
    pub fn prepared_files(&self) -> usize {
        self.files.prepared_len()
    }

    /// The entry at logical offset `idx`, if written.
    pub fn entry(&self, idx: i64) -> Option<CqEntry> {
        let b = self.entries_from(idx, 1)?;
        Some(CqEntry::parse(&b[..CQ_UNIT_SIZE]))
    }

    /// Up to `max` entries starting at `idx` from the file holding it (zero-copy).
    pub fn entries_from(&self, idx: i64, max: usize) -> Option<Bytes> {
        if idx < 0 {
            return None;
        }
        let off = idx as u64 * CQ_UNIT_SIZE as u64;
        let f = self.files.find(off)?;
        let pos = (off - f.from_offset()) as usize;
        let wrote = f.wrote_pos();
        if pos + CQ_UNIT_SIZE > wrote {
            return None;
        }
        let n = ((wrote - pos) / CQ_UNIT_SIZE).min(max);
        Some(f.bytes(pos, n * CQ_UNIT_SIZE))
    }

    /// Logical offset of the first entry of the file after the one holding `idx`.
    pub fn roll_next_file(&self, idx: i64) -> i64 {
        let per = (self.files.file_size() / CQ_UNIT_SIZE as u64) as i64;
        idx + per - idx % per
    }

    /// Removes entries pointing at or beyond commitlog offset `phys_cut` (and zeroes them).
    pub fn truncate_dirty(&self, phys_cut: i64) -> Result<()> {
        let _g = self.write_lock.lock();
        let files = self.files.files();
        let mut end = self.files.max_offset();
        let mut new_max = -1;
        'outer: for f in files.iter().rev() {
            let data = f.slice(0, f.wrote_pos());
            let mut pos = data.len() - data.len() % CQ_UNIT_SIZE;
            while pos >= CQ_UNIT_SIZE {
                let e = CqEntry::parse(&data[pos - CQ_UNIT_SIZE..pos]);
                if e.is_filler() {
                    pos -= CQ_UNIT_SIZE;
                    continue;
                }
                if e.phys_offset + e.size as i64 <= phys_cut {
                    new_max = e.phys_offset + e.size as i64;
                    break 'outer;
                }
                pos -= CQ_UNIT_SIZE;
                end = f.from_offset() + pos as u64;
            }
        }
        if end < self.files.max_offset() {
            tracing::info!(topic = %self.topic, queue = self.queue_id, new_max_offset = end / 20, "truncating consume queue beyond commitlog offset {phys_cut}");
            self.files.truncate_dirty(end, true)?;
        }
        self.max_physic_offset.store(new_max, Ordering::Release);
        Ok(())
    }

    /// Binary search by store time; `store_time(phys, size)` reads the commitlog.
    pub fn offset_by_time(&self, ts: i64, boundary: BoundaryType, store_time: impl Fn(i64, i32) -> Option<i64>) -> i64 {
        let min = self.min_offset_in_queue();
        let max = self.max_offset_in_queue();
        let time_at = |i: i64| -> Option<i64> {
            let e = self.entry(i)?;
            if e.is_filler() {
                return Some(i64::MIN);
            }
            store_time(e.phys_offset, e.size)
        };
        match boundary {
            BoundaryType::Lower => {
                // first i in [min, max) with t(i) >= ts
                let (mut lo, mut hi) = (min, max);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    match time_at(mid) {
                        Some(t) if t >= ts => hi = mid,
                        _ => lo = mid + 1,
                    }
                }
                lo
            }
            BoundaryType::Upper => {
                // last i with t(i) <= ts
                let (mut lo, mut hi) = (min, max);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    match time_at(mid) {
                        Some(t) if t <= ts => lo = mid + 1,
                        _ => hi = mid,
                    }
                }
                if lo > min {
                    lo - 1
                } else {
                    min
                }
            }
        }
    }

    /// Flushes all pending entries.
    pub fn flush(&self) -> Result<()> {
        self.files.flush(0).map(|_| ())
    }

    /// Deletes the queue's files and directory.
    pub fn destroy(&self) -> Result<()> {
        let _g = self.write_lock.lock();
        self.files.destroy()?;
        self.max_physic_offset.store(-1, Ordering::Release);
        self.min_logic_offset.store(0, Ordering::Release);
        Ok(())
    }

    /// Bytes of the queue's files on disk.
    pub fn total_bytes(&self) -> u64 {
        self.files.total_bytes()
    }

    /// Deletes files whose entries all point below `commit_log_min`; returns files deleted.
    pub fn delete_expired(&self, commit_log_min: i64) -> Result<usize> {
        let _g = self.write_lock.lock();
        let mut n = 0;
        loop {
            let files = self.files.files();
            if files.len() < 2 {
                break;
            }
            let f = &files[0];
            let w = f.wrote_pos();
            if w < CQ_UNIT_SIZE {
                break;
            }
            let last = CqEntry::parse(f.slice(w - CQ_UNIT_SIZE, CQ_UNIT_SIZE));
            if last.phys_offset + last.size as i64 > commit_log_min && !last.is_filler() {
                break;
            }
            n += self.files.delete_files_before(files[1].from_offset())?;
        }
        drop(_g);
        self.init_min_offset();
        self.correct_min_offset(commit_log_min);
        Ok(n)
    }
}

/// All consume queues of a store, keyed by topic then queue id.
#[derive(Debug)]
pub struct ConsumeQueueTable {
    root: PathBuf,
    file_size: u64,
    queues: RwLock<HashMap<String, HashMap<i32, Arc<ConsumeQueue>>>>,
}

impl ConsumeQueueTable {
    /// Loads every `<root>/<topic>/<queueId>/` directory.
    pub fn load(root: &Path, file_size: u64) -> Result<ConsumeQueueTable> {
        std::fs::create_dir_all(root).map_err(io_err(root))?;
        let mut map: HashMap<String, HashMap<i32, Arc<ConsumeQueue>>> = HashMap::new();
        for t in std::fs::read_dir(root).map_err(io_err(root))? {
            let t = t.map_err(io_err(root))?;
            let tpath = t.path();
            if !tpath.is_dir() {
                continue;
            }
            let Some(topic) = t.file_name().to_str().map(|s| s.to_string()) else {
                continue;
            };
            for q in std::fs::read_dir(&tpath).map_err(io_err(&tpath))? {
                let q = q.map_err(io_err(&tpath))?;
                let Some(qid) = q.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                let cq = ConsumeQueue::load(&q.path(), &topic, qid, file_size)?;
                map.entry(topic.clone()).or_default().insert(qid, Arc::new(cq));
            }
        }
        Ok(ConsumeQueueTable { root: root.to_path_buf(), file_size, queues: RwLock::new(map) })
    }

    /// The queue if it exists.
    pub fn get(&self, topic: &str, queue_id: i32) -> Option<Arc<ConsumeQueue>> {
        self.queues.read().get(topic)?.get(&queue_id).cloned()
    }

    /// The queue, created if missing.
    pub fn get_or_create(&self, topic: &str, queue_id: i32) -> Result<Arc<ConsumeQueue>> {
        if let Some(q) = self.get(topic, queue_id) {
            return Ok(q);
        }
        let mut w = self.queues.write();
        if let Some(q) = w.get(topic).and_then(|m| m.get(&queue_id)) {
            return Ok(Arc::clone(q));
        }
        let dir = self.root.join(topic).join(queue_id.to_string());
        let q = Arc::new(ConsumeQueue::load(&dir, topic, queue_id, self.file_size)?);
        w.entry(topic.to_string()).or_default().insert(queue_id, Arc::clone(&q));
        Ok(q)
    }

    /// Snapshot of all queues.
    pub fn all(&self) -> Vec<Arc<ConsumeQueue>> {
        self.queues.read().values().flat_map(|m| m.values().cloned()).collect()
    }

    /// Removes and deletes every queue of `topic`.
    pub fn remove_topic(&self, topic: &str) -> Result<()> {
        let removed = self.queues.write().remove(topic);
        if let Some(m) = removed {
            for q in m.values() {
                q.destroy()?;
            }
        }
        let dir = self.root.join(topic);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&dir)(e)),
        }
    }

    /// Deletes every queue (commitlog gone).
    pub fn destroy_all(&self) -> Result<()> {
        let topics: Vec<String> = self.queues.read().keys().cloned().collect();
        for t in topics {
            self.remove_topic(&t)?;
        }
        Ok(())
    }

    /// Bytes of every queue's files on disk.
    pub fn total_bytes(&self) -> u64 {
        self.all().iter().map(|q| q.total_bytes()).sum()
    }

    /// Highest dispatched physical end offset over all queues (−1 if none).
    pub fn max_physic_offset(&self) -> i64 {
        self.all().iter().map(|q| q.max_physic_offset()).max().unwrap_or(-1)
    }
}
