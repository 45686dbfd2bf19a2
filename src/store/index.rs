//! Index files `index/<yyyyMMddHHmmssSSS>` (spec §9): 40-byte header, hash slots, 20-byte entries.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::error::{io_err, Result, StoreError};
use super::mapped_file::MappedFile;
use super::message::java_string_hash;

/// Header size.
pub const INDEX_HEADER_SIZE: usize = 40;
/// Hash slot size.
pub const HASH_SLOT_SIZE: usize = 4;
/// Entry size.
pub const INDEX_ENTRY_SIZE: usize = 20;

/// Apache's `indexKeyHashMethod`: `abs(hashCode)`, negative (MIN) ⇒ 0.
pub fn index_key_hash(key: &str) -> i32 {
    let h = java_string_hash(key).wrapping_abs();
    if h < 0 {
        0
    } else {
        h
    }
}

/// [`index_key_hash`] of `topic#key` without building the string.
pub fn index_key_hash_parts(topic: &str, key: &str) -> i32 {
    let mut h: i32 = 0;
    for part in [topic, "#", key] {
        for u in part.encode_utf16() {
            h = h.wrapping_mul(31).wrapping_add(u as i32);
        }
    }
    let h = h.wrapping_abs();
    if h < 0 {
        0
    } else {
        h
    }
}

/// `topic#key`.
pub fn build_key(topic: &str, key: &str) -> String {
    let mut s = String::with_capacity(topic.len() + 1 + key.len());
    s.push_str(topic);
    s.push('#');
    s.push_str(key);
    s
}

/// Number of index entries a record gets: its UNIQ_KEY and each non-empty KEYS token (what
/// [`IndexService::build`] writes for it).
pub fn key_count(uniq_key: Option<&str>, keys: Option<&str>) -> u64 {
    let uniq = uniq_key.is_some_and(|k| !k.is_empty()) as u64;
    uniq + keys.map_or(0, |k| k.split(' ').filter(|t| !t.is_empty()).count() as u64)
}

/// The shape of an index file: hash slots and entries (`maxHashSlotNum`, `maxIndexNum`). Its size
/// is `40 + slots * 4 + entries * 20` bytes (Apache's format; the file itself does not record it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexGeometry {
    /// Hash slots.
    pub slots: u32,
    /// Entries, counting the unused entry 0.
    pub entries: u32,
}

impl IndexGeometry {
    /// The geometry of the configured values (at least 1 slot and 2 entries).
    pub fn new(slots: u32, entries: u32) -> IndexGeometry {
        IndexGeometry { slots: slots.max(1), entries: entries.max(2) }
    }

    /// File size in bytes.
    pub fn file_size(&self) -> u64 {
        INDEX_HEADER_SIZE as u64
            + self.slots as u64 * HASH_SLOT_SIZE as u64
            + self.entries as u64 * INDEX_ENTRY_SIZE as u64
    }

    /// Both numbers divided by `divisor`, rounded up (so `scaled(1)` is `self`).
    pub fn scaled(&self, divisor: u32) -> IndexGeometry {
        let d = divisor.max(1) as u64;
        let div = |v: u32| (v as u64).div_ceil(d) as u32;
        IndexGeometry::new(div(self.slots), div(self.entries))
    }

    fn max_divisor(&self) -> u32 {
        self.slots.max(self.entries)
    }

    /// The smallest divisor whose scaled file is at most `len` bytes (the largest divisor if none).
    fn divisor_within(&self, len: u64) -> u32 {
        // file_size(scaled(d)) does not grow with d: binary search the first d that fits.
        let (mut lo, mut hi) = (1u32, self.max_divisor());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.scaled(mid).file_size() <= len {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// The geometry for new files under a size cap: `self` if it fits in `cap` bytes, else `self`
    /// scaled down proportionally by the smallest divisor that fits (never below 1 slot and 2
    /// entries).
    pub fn capped(&self, cap: u64) -> IndexGeometry {
        if self.file_size() <= cap {
            return *self;
        }
        self.scaled(self.divisor_within(cap))
    }

    /// The geometry of an existing file of `len` bytes made with this configuration: `self` or one
    /// of its [`Self::scaled`] forms (two scaled forms of the same size are the same geometry).
    /// `None` if no form has that size.
    pub fn for_file_len(&self, len: u64) -> Option<IndexGeometry> {
        let g = self.scaled(self.divisor_within(len));
        (g.file_size() == len).then_some(g)
    }
}

/// Local-time `yyyyMMddHHmmssSSS` for `ms` since the epoch (`UtilAll.timeMillisToHumanString`).
pub fn time_millis_to_human_string(ms: i64) -> String {
    let millis = ms.rem_euclid(1000);
    let Some(t) = crate::util::local_time(ms.div_euclid(1000) * 1000) else {
        return format!("{ms:017}");
    };
    format!("{}{millis:03}", t.strftime("%Y%m%d%H%M%S"))
}

/// One index file.
#[derive(Debug)]
pub struct IndexFile {
    file: Arc<MappedFile>,
    slots: u32,
    max_entries: u32,
}

/// Header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexHeader {
    /// First store timestamp.
    pub begin_timestamp: i64,
    /// Last store timestamp.
    pub end_timestamp: i64,
    /// First commitlog offset.
    pub begin_phy_offset: i64,
    /// Last commitlog offset.
    pub end_phy_offset: i64,
    /// Used hash slots.
    pub hash_slot_count: i32,
    /// Next entry index (starts at 1).
    pub index_count: i32,
}

impl IndexFile {
    /// File size for the given geometry.
    pub fn file_size(slots: u32, max_entries: u32) -> usize {
        INDEX_HEADER_SIZE + slots as usize * HASH_SLOT_SIZE + max_entries as usize * INDEX_ENTRY_SIZE
    }

    /// Creates a new unused file at `path` (indexCount = 1, nothing else set), or `Ok(None)` if
    /// the path exists.
    pub fn create_new(path: &Path, slots: u32, max_entries: u32) -> Result<Option<IndexFile>> {
        let Some(file) = MappedFile::create_new(path, 0, Self::file_size(slots, max_entries))? else {
            return Ok(None);
        };
        let f = IndexFile { file, slots, max_entries };
        f.activate(0, 0);
        Ok(Some(f))
    }

    /// Creates a new file at `path` with indexCount = 1. Like Apache, a file that follows another
    /// starts with begin/end offsets and timestamps set to the previous file's end values
    /// (`prev_end_phy`, `prev_end_ts`, when > 0); the first put then resets the begin values.
    pub fn create(path: &Path, slots: u32, max_entries: u32, prev_end_phy: i64, prev_end_ts: i64) -> Result<IndexFile> {
        let file = MappedFile::create(path, 0, Self::file_size(slots, max_entries))?;
        let f = IndexFile { file, slots, max_entries };
        f.activate(prev_end_phy, prev_end_ts);
        Ok(f)
    }

    /// Opens an existing file (its size must match the geometry).
    pub fn open(path: &Path, slots: u32, max_entries: u32) -> Result<IndexFile> {
        let file = MappedFile::open(path, 0, Self::file_size(slots, max_entries))?;
        Ok(IndexFile { file, slots, max_entries })
    }

    /// Opens an existing file made with the `configured` geometry or a scaled-down form of it
    /// (see [`IndexGeometry::capped`]): its length tells which.
    pub fn open_existing(path: &Path, configured: IndexGeometry) -> Result<IndexFile> {
        let len = std::fs::metadata(path).map_err(io_err(path))?.len();
        let Some(g) = configured.for_file_len(len) else {
            return Err(StoreError::WrongFileSize {
                path: path.to_path_buf(),
                actual: len,
                expected: configured.file_size(),
            });
        };
        Self::open(path, g.slots, g.entries)
    }

    /// The file's geometry.
    pub fn geometry(&self) -> IndexGeometry {
        IndexGeometry { slots: self.slots, entries: self.max_entries }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.file.size() as u64
    }

    /// Entries that still fit.
    pub fn remaining(&self) -> u64 {
        (self.max_entries as i64 - self.header().index_count.max(1) as i64).max(0) as u64
    }

    /// Created but never used: no entry and no begin/end values (a file allocated ahead of time,
    /// or a first file that got nothing yet).
    pub fn is_unused(&self) -> bool {
        let h = self.header();
        h.index_count <= 1
            && h.hash_slot_count == 0
            && h.begin_timestamp == 0
            && h.end_timestamp == 0
            && h.begin_phy_offset == 0
            && h.end_phy_offset == 0
    }

    /// Makes an unused file the current one after `prev`'s end values (as [`Self::create`]).
    fn activate(&self, prev_end_phy: i64, prev_end_ts: i64) {
        let mut h = self.header();
        if h.index_count <= 0 {
            h.index_count = 1;
        }
        if prev_end_phy > 0 {
            h.begin_phy_offset = prev_end_phy;
            h.end_phy_offset = prev_end_phy;
        }
        if prev_end_ts > 0 {
            h.begin_timestamp = prev_end_ts;
            h.end_timestamp = prev_end_ts;
        }
        self.write_header(&h);
    }

    /// Path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    fn get_i32(&self, at: usize) -> i32 {
        let b = self.file.slice(at, 4);
        i32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    fn get_i64(&self, at: usize) -> i64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.file.slice(at, 8));
        i64::from_be_bytes(a)
    }
    fn put(&self, at: usize, b: &[u8]) {
        // SAFETY: index files are written only under the IndexService lock, readers take it too.
        unsafe { self.file.slice_mut(at, b.len()) }.copy_from_slice(b);
    }

    /// Reads the header.
    pub fn header(&self) -> IndexHeader {
        IndexHeader {
            begin_timestamp: self.get_i64(0),
            end_timestamp: self.get_i64(8),
            begin_phy_offset: self.get_i64(16),
            end_phy_offset: self.get_i64(24),
            hash_slot_count: self.get_i32(32),
            index_count: self.get_i32(36),
        }
    }

    fn write_header(&self, h: &IndexHeader) {
        let mut b = [0u8; 40];
        b[0..8].copy_from_slice(&h.begin_timestamp.to_be_bytes());
        b[8..16].copy_from_slice(&h.end_timestamp.to_be_bytes());
        b[16..24].copy_from_slice(&h.begin_phy_offset.to_be_bytes());
        b[24..32].copy_from_slice(&h.end_phy_offset.to_be_bytes());
        b[32..36].copy_from_slice(&h.hash_slot_count.to_be_bytes());
        b[36..40].copy_from_slice(&h.index_count.to_be_bytes());
        self.put(0, &b);
    }

    /// No room for another entry.
    pub fn is_full(&self) -> bool {
        self.header().index_count as i64 >= self.max_entries as i64
    }

    /// Adds `key` (already `topic#key`) for the record at `phy_offset`. Returns false when full.
    pub fn put_key(&self, key: &str, phy_offset: i64, store_timestamp: i64) -> bool {
        self.put_hash(index_key_hash(key), phy_offset, store_timestamp)
    }

    /// Adds an entry with a precomputed key hash ([`index_key_hash`]).
    pub fn put_hash(&self, hash: i32, phy_offset: i64, store_timestamp: i64) -> bool {
        let mut h = self.header();
        if h.index_count <= 0 {
            h.index_count = 1;
        }
        if h.index_count as i64 >= self.max_entries as i64 {
            return false;
        }
        let slot = (hash as u32 % self.slots) as usize;
        let slot_pos = INDEX_HEADER_SIZE + slot * HASH_SLOT_SIZE;
        let mut slot_value = self.get_i32(slot_pos);
        if slot_value <= 0 || slot_value > h.index_count {
            slot_value = 0;
        }
        let mut diff = store_timestamp - h.begin_timestamp;
        diff /= 1000;
        let diff = if h.begin_timestamp <= 0 { 0 } else { diff.clamp(0, i32::MAX as i64) as i32 };
        let entry_pos =
            INDEX_HEADER_SIZE + self.slots as usize * HASH_SLOT_SIZE + h.index_count as usize * INDEX_ENTRY_SIZE;
        let mut e = [0u8; 20];
        e[0..4].copy_from_slice(&hash.to_be_bytes());
        e[4..12].copy_from_slice(&phy_offset.to_be_bytes());
        e[12..16].copy_from_slice(&diff.to_be_bytes());
        e[16..20].copy_from_slice(&slot_value.to_be_bytes());
        self.put(entry_pos, &e);
        self.put(slot_pos, &h.index_count.to_be_bytes());
        if h.index_count <= 1 {
            h.begin_phy_offset = phy_offset;
            h.begin_timestamp = store_timestamp;
        }
        if slot_value == 0 {
            h.hash_slot_count += 1;
        }
        h.index_count += 1;
        h.end_phy_offset = phy_offset;
        h.end_timestamp = store_timestamp;
        self.write_header(&h);
        true
    }

    /// Does `[begin, end]` overlap the file's time range (Apache's `isTimeMatched`)?
    pub fn is_time_matched(&self, begin: i64, end: i64) -> bool {
        let h = self.header();
        (begin < h.begin_timestamp && end > h.end_timestamp)
            || (begin >= h.begin_timestamp && begin <= h.end_timestamp)
            || (end >= h.begin_timestamp && end <= h.end_timestamp)
    }

    /// Physical offsets of entries for `key` stored within `[begin, end]`, newest first.
    pub fn select(&self, key: &str, max: usize, begin: i64, end: i64, out: &mut Vec<i64>) {
        let h = self.header();
        let hash = index_key_hash(key);
        let slot = (hash as u32 % self.slots) as usize;
        let mut idx = self.get_i32(INDEX_HEADER_SIZE + slot * HASH_SLOT_SIZE);
        if idx <= 0 || idx > h.index_count || h.index_count <= 1 {
            return;
        }
        let base = INDEX_HEADER_SIZE + self.slots as usize * HASH_SLOT_SIZE;
        while out.len() < max {
            let pos = base + idx as usize * INDEX_ENTRY_SIZE;
            let hread = self.get_i32(pos);
            let phy = self.get_i64(pos + 4);
            let diff = self.get_i32(pos + 12) as i64;
            let prev = self.get_i32(pos + 16);
            let time = h.begin_timestamp + diff * 1000;
            if hread == hash && time >= begin && time <= end {
                out.push(phy);
            }
            if prev <= 0 || prev > h.index_count || prev == idx || time < begin {
                break;
            }
            idx = prev;
        }
    }

    /// msyncs the file.
    pub fn flush(&self) -> Result<()> {
        self.file.set_flushed_pos(0);
        self.file.set_wrote_pos(self.file.size());
        self.file.flush(0).map(|_| ())
    }

    /// Deletes the file.
    pub fn destroy(&self) -> Result<()> {
        self.file.destroy()
    }
}

/// The set of index files of a store.
#[derive(Debug)]
pub struct IndexService {
    dir: PathBuf,
    /// Geometry of the files this service creates (the configured one, or capped by the quota).
    geometry: IndexGeometry,
    files: Mutex<Vec<IndexFile>>,
    /// Files allocated ahead of time, oldest first; the next file to fill is the first one. Lock
    /// order: `files`, then `prepared`.
    prepared: Mutex<VecDeque<IndexFile>>,
    /// Entries reserved by puts ([`IndexService::reserve`]) whose records are not indexed yet.
    pending: AtomicU64,
    /// Files that filled up and still need an msync (done by [`IndexService::flush`], outside
    /// the lock).
    to_flush: Mutex<Vec<Arc<MappedFile>>>,
}

impl IndexService {
    /// Loads every index file (sorted by name). If `abnormal`, files whose endTimestamp is newer
    /// than `checkpoint_index_ts` are deleted; the lowest beginPhyOffset of a deleted file is
    /// returned so that the caller re-dispatches from there.
    pub fn load(
        dir: &Path,
        slots: u32,
        max_entries: u32,
        abnormal: bool,
        checkpoint_index_ts: i64,
    ) -> Result<(IndexService, Option<i64>)> {
        let g = IndexGeometry::new(slots, max_entries);
        Self::load_with(dir, g, g, abnormal, checkpoint_index_ts)
    }

    /// [`Self::load`] where new files get the `new_files` geometry (a [`IndexGeometry::capped`]
    /// form of `configured`) and existing files keep theirs (read from their length: the
    /// configured geometry or a scaled form of it). Trailing files never used (allocated ahead of
    /// time) are kept as prepared files.
    pub fn load_with(
        dir: &Path,
        configured: IndexGeometry,
        new_files: IndexGeometry,
        abnormal: bool,
        checkpoint_index_ts: i64,
    ) -> Result<(IndexService, Option<i64>)> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut names: Vec<PathBuf> = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let e = e.map_err(io_err(dir))?;
            let n = e.file_name();
            if n.to_str().is_some_and(|s| s.len() == 17 && s.bytes().all(|b| b.is_ascii_digit())) {
                names.push(e.path());
            }
        }
        names.sort();
        let mut files = Vec::new();
        let mut redispatch: Option<i64> = None;
        for p in names {
            let f = IndexFile::open_existing(&p, configured)?;
            let h = f.header();
            if abnormal && h.end_timestamp > checkpoint_index_ts {
                tracing::warn!(path = %p.display(), "abnormal shutdown: destroying index file newer than checkpoint");
                if h.index_count > 1 {
                    let b = h.begin_phy_offset;
                    redispatch = Some(redispatch.map_or(b, |r: i64| r.min(b)));
                }
                f.destroy()?;
                continue;
            }
            files.push(f);
        }
        let mut prepared = VecDeque::new();
        while files.last().is_some_and(|f| f.is_unused()) {
            if let Some(f) = files.pop() {
                prepared.push_front(f);
            }
        }
        Ok((
            IndexService {
                dir: dir.to_path_buf(),
                geometry: new_files,
                files: Mutex::new(files),
                prepared: Mutex::new(prepared),
                pending: AtomicU64::new(0),
                to_flush: Mutex::new(Vec::new()),
            },
            redispatch,
        ))
    }

    /// Geometry of the files this service creates.
    pub fn geometry(&self) -> IndexGeometry {
        self.geometry
    }

    /// Makes sure `keys` more entries fit in the current file and the prepared ones, on top of the
    /// entries reserved before and not indexed yet, allocating files as needed (the first index
    /// file of a store, the next one); then counts them as reserved until
    /// [`Self::release`]. The put path calls this before acknowledging a message with keys; an
    /// error (e.g. no space) means the put must be refused. Returns whether a file was allocated.
    pub fn reserve(&self, keys: u64) -> Result<bool> {
        if keys == 0 {
            return Ok(false);
        }
        let files = self.files.lock();
        let mut prepared = self.prepared.lock();
        let need = self.pending.load(Ordering::Acquire) + keys;
        let mut avail = files.last().map_or(0, |f| f.remaining());
        avail += prepared.iter().map(|f| f.remaining()).sum::<u64>();
        let mut allocated = false;
        while avail < need {
            let f = self.create_unused()?;
            avail += f.remaining();
            prepared.push_back(f);
            allocated = true;
        }
        self.pending.fetch_add(keys, Ordering::AcqRel);
        Ok(allocated)
    }

    /// Returns `keys` reserved entries (saturating).
    fn release(&self, keys: u64) {
        if keys == 0 {
            return;
        }
        let _ = self.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| Some(p.saturating_sub(keys)));
    }

    /// Entries reserved and not indexed yet.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// Allocates the next file ahead of time once the current one is three quarters full (and
    /// none is prepared). The allocation holds no lock: building and reserving go on meanwhile.
    pub fn preallocate_next(&self) -> Result<()> {
        let needed = {
            let files = self.files.lock();
            files.last().is_some_and(|last| {
                let used = last.header().index_count.max(1) as u64;
                used >= last.geometry().entries as u64 / 4 * 3
            })
        };
        if !needed || !self.prepared.lock().is_empty() {
            return Ok(());
        }
        let f = self.create_unused()?;
        {
            let files = self.files.lock();
            let mut prepared = self.prepared.lock();
            // Files are ordered by name: keep it only if nothing was allocated meanwhile.
            if prepared.is_empty() && files.last().is_none_or(|l| l.path() < f.path()) {
                prepared.push_back(f);
                return Ok(());
            }
        }
        f.destroy()
    }

    /// Number of files allocated ahead of time.
    pub fn prepared_files(&self) -> usize {
        self.prepared.lock().len()
    }

    /// A new unused file named after the current time (the next free name: concurrent creators
    /// never share one).
    fn create_unused(&self) -> Result<IndexFile> {
        let mut now = super::message::now_ms();
        loop {
            let path = self.dir.join(time_millis_to_human_string(now));
            if let Some(f) = IndexFile::create_new(&path, self.geometry.slots, self.geometry.entries)? {
                return Ok(f);
            }
            now += 1;
        }
    }

    /// Deletes the newest files holding entries for records at or beyond commitlog offset `cut`
    /// (recovery cut the commitlog there). Returns the lowest beginPhyOffset of a deleted file so
    /// the caller can re-dispatch the records they also covered.
    pub fn destroy_beyond(&self, cut: i64) -> Result<Option<i64>> {
        let mut files = self.files.lock();
        let mut lowest = None;
        while let Some(f) = files.last() {
            let h = f.header();
            if h.end_phy_offset < cut || (h.index_count <= 1 && h.end_phy_offset == 0) {
                break;
            }
            tracing::warn!(path = %f.path().display(), cut, "index file points beyond the recovered commitlog end; rebuilding it");
            f.destroy()?;
            lowest = Some(h.begin_phy_offset);
            files.pop();
        }
        Ok(lowest)
    }

    /// endPhyOffset of the newest file with entries, if any.
    pub fn end_phy_offset(&self) -> Option<i64> {
        let files = self.files.lock();
        let h = files.last()?.header();
        (h.index_count > 1).then_some(h.end_phy_offset)
    }

    /// Indexes one record: UNIQ_KEY and each KEYS token. Once done, its [`key_count`] entries
    /// stop counting as reserved (under the same lock, so a reservation never sees them both
    /// written and reserved; records that reserved nothing, e.g. replicated ones, release nothing).
    pub fn build(
        &self,
        topic: &str,
        uniq_key: Option<&str>,
        keys: Option<&str>,
        phy_offset: i64,
        store_timestamp: i64,
    ) -> Result<()> {
        let mut files = self.files.lock();
        if let Some(last) = files.last() {
            let h = last.header();
            // Apache's rule (`<`): the record at endPhyOffset may have had only some of its keys
            // written before the file filled up, so it is indexed again; queries de-duplicate.
            if phy_offset < h.end_phy_offset {
                self.release(key_count(uniq_key, keys));
                return Ok(()); // already indexed (idempotent rebuild)
            }
        }
        let all = uniq_key.into_iter().chain(keys.into_iter().flat_map(|k| k.split(' '))).filter(|k| !k.is_empty());
        for k in all {
            let hash = index_key_hash_parts(topic, k);
            loop {
                if files.last().is_none_or(|f| f.is_full()) {
                    let f = self.new_file(files.last())?;
                    files.push(f);
                }
                let Some(f) = files.last() else {
                    return Err(StoreError::Corrupt("no index file".into()));
                };
                if f.put_hash(hash, phy_offset, store_timestamp) {
                    break;
                }
            }
        }
        self.release(key_count(uniq_key, keys));
        Ok(())
    }

    /// The next file after `prev`: the first prepared one, else a new one. The caller holds the
    /// `files` lock.
    fn new_file(&self, prev: Option<&IndexFile>) -> Result<IndexFile> {
        let (mut prev_phy, mut prev_ts) = (0, 0);
        if let Some(p) = prev {
            let h = p.header();
            (prev_phy, prev_ts) = (h.end_phy_offset, h.end_timestamp);
        }
        let popped = self.prepared.lock().pop_front();
        let f = match popped {
            Some(f) => f,
            None => self.create_unused()?,
        };
        f.activate(prev_phy, prev_ts);
        if let Some(p) = prev {
            self.to_flush.lock().push(Arc::clone(&p.file));
        }
        Ok(f)
    }

    /// Physical offsets for `topic#key` in `[begin, end]`, newest file first, at most `max`.
    pub fn query(&self, topic: &str, key: &str, max: usize, begin: i64, end: i64) -> Vec<i64> {
        let key = build_key(topic, key);
        let files = self.files.lock();
        let mut out = Vec::new();
        for f in files.iter().rev() {
            if out.len() >= max {
                break;
            }
            if f.is_time_matched(begin, end) {
                f.select(&key, max, begin, end, &mut out);
            }
            if f.header().begin_timestamp < begin {
                break; // older files hold only older entries
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|o| seen.insert(*o));
        out
    }

    /// Last update (end timestamp, end phy offset) of the newest file.
    pub fn last_update(&self) -> (i64, i64) {
        let files = self.files.lock();
        files
            .last()
            .map(|f| {
                let h = f.header();
                (h.end_timestamp, h.end_phy_offset)
            })
            .unwrap_or((0, 0))
    }

    /// Flushes the files that filled up since the last call, then the newest file; returns the
    /// newest file's end timestamp (for the checkpoint). Filled files are released once flushed,
    /// so the space of those deleted meanwhile is returned.
    pub fn flush(&self) -> Result<Option<i64>> {
        let filled = std::mem::take(&mut *self.to_flush.lock());
        for (i, f) in filled.iter().enumerate() {
            f.set_flushed_pos(0);
            f.set_wrote_pos(f.size());
            if let Err(e) = f.flush(0) {
                self.to_flush.lock().extend(filled[i..].iter().cloned());
                return Err(e);
            }
        }
        drop(filled);
        let ts_and_file = {
            let files = self.files.lock();
            files.last().map(|f| (f.header().end_timestamp, Arc::clone(&f.file)))
        };
        if let Some((ts, file)) = ts_and_file {
            file.set_flushed_pos(0);
            file.set_wrote_pos(file.size());
            file.flush(0)?;
            return Ok(Some(ts));
        }
        Ok(None)
    }

    /// Bytes of the index files on disk, prepared ones included.
    pub fn total_bytes(&self) -> u64 {
        let files: u64 = self.files.lock().iter().map(|f| f.size()).sum();
        let prepared: u64 = self.prepared.lock().iter().map(|f| f.size()).sum();
        files + prepared
    }

    /// Deletes index files whose entries all point below `commit_log_min` (never the newest).
    pub fn delete_expired(&self, commit_log_min: i64) -> Result<usize> {
        let mut files = self.files.lock();
        let mut n = 0;
        while files.len() > 1 && files[0].header().end_phy_offset < commit_log_min {
            let f = files.remove(0);
            f.destroy()?;
            tracing::info!(path = %f.path().display(), commit_log_min, "deleted expired index file");
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_files_are_flushed_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let g = IndexGeometry::new(4, 5); // 4 entries per file
        let (svc, _) = IndexService::load_with(dir.path(), g, g, false, 0).unwrap();
        for i in 0..10i64 {
            svc.build("T", None, Some(&format!("k{i}")), 100 + i, 1000 + i).unwrap();
        }
        assert_eq!(svc.to_flush.lock().len(), 2);
        assert!(svc.flush().unwrap().is_some());
        assert!(svc.to_flush.lock().is_empty(), "flushed files are released");
    }

    #[test]
    fn reservations_allocate_what_the_dispatcher_will_need() {
        let dir = tempfile::tempdir().unwrap();
        let g = IndexGeometry::new(4, 5);
        let (svc, _) = IndexService::load_with(dir.path(), g, g, false, 0).unwrap();
        assert!(!svc.reserve(0).unwrap());
        assert!(svc.reserve(3).unwrap(), "the first file is allocated");
        assert!(!svc.reserve(1).unwrap());
        assert!(svc.reserve(1).unwrap(), "a fifth entry needs a second file");
        assert_eq!((svc.pending(), svc.prepared_files()), (5, 2));
        for i in 0..5i64 {
            svc.build("T", Some(&format!("u{i}")), None, 100 + i, 1000 + i).unwrap();
        }
        assert_eq!((svc.pending(), svc.prepared_files()), (0, 0));
        assert_eq!(svc.total_bytes(), 2 * g.file_size());
        svc.release(7); // saturates
        assert_eq!(svc.pending(), 0);
        drop(svc);
        // An unused file allocated ahead of time comes back as prepared after a restart.
        let (svc, _) = IndexService::load_with(dir.path(), g, g, false, 0).unwrap();
        assert!(svc.reserve(4).unwrap());
        drop(svc);
        let (svc, _) = IndexService::load_with(dir.path(), g, g, false, 0).unwrap();
        assert_eq!(svc.prepared_files(), 1);
        assert_eq!(svc.end_phy_offset(), Some(104));
    }
}
