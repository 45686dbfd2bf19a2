//! Index files `index/<yyyyMMddHHmmssSSS>` (spec §9): 40-byte header, hash slots, 20-byte entries.

use std::path::{Path, PathBuf};
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

/// Local-time `yyyyMMddHHmmssSSS` for `ms` since the epoch (`UtilAll.timeMillisToHumanString`).
pub fn time_millis_to_human_string(ms: i64) -> String {
    let secs = ms.div_euclid(1000) as libc::time_t;
    let millis = ms.rem_euclid(1000);
    // SAFETY: localtime_r writes into our zeroed struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return format!("{ms:017}");
    }
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        millis
    )
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

    /// Creates a new file at `path` with indexCount = 1. Like Apache, a file that follows another
    /// starts with begin/end offsets and timestamps set to the previous file's end values
    /// (`prev_end_phy`, `prev_end_ts`, when > 0); the first put then resets the begin values.
    pub fn create(path: &Path, slots: u32, max_entries: u32, prev_end_phy: i64, prev_end_ts: i64) -> Result<IndexFile> {
        let file = MappedFile::create(path, 0, Self::file_size(slots, max_entries))?;
        let f = IndexFile { file, slots, max_entries };
        let mut h = f.header();
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
        f.write_header(&h);
        Ok(f)
    }

    /// Opens an existing file (its size must match the geometry).
    pub fn open(path: &Path, slots: u32, max_entries: u32) -> Result<IndexFile> {
        let file = MappedFile::open(path, 0, Self::file_size(slots, max_entries))?;
        Ok(IndexFile { file, slots, max_entries })
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
    slots: u32,
    max_entries: u32,
    files: Mutex<Vec<IndexFile>>,
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
            let f = IndexFile::open(&p, slots, max_entries)?;
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
        Ok((
            IndexService {
                dir: dir.to_path_buf(),
                slots,
                max_entries,
                files: Mutex::new(files),
                to_flush: Mutex::new(Vec::new()),
            },
            redispatch,
        ))
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

    /// Indexes one record: UNIQ_KEY and each KEYS token.
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
        Ok(())
    }

    fn new_file(&self, prev: Option<&IndexFile>) -> Result<IndexFile> {
        let (mut prev_phy, mut prev_ts) = (0, 0);
        if let Some(p) = prev {
            self.to_flush.lock().push(Arc::clone(&p.file));
            let h = p.header();
            (prev_phy, prev_ts) = (h.end_phy_offset, h.end_timestamp);
        }
        let mut now = super::message::now_ms();
        loop {
            let path = self.dir.join(time_millis_to_human_string(now));
            if !path.exists() {
                return IndexFile::create(&path, self.slots, self.max_entries, prev_phy, prev_ts);
            }
            now += 1;
        }
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

    /// Flushes the newest file; returns its end timestamp (for the checkpoint).
    pub fn flush(&self) -> Result<Option<i64>> {
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

    /// Bytes of the index files on disk.
    pub fn total_bytes(&self) -> u64 {
        self.files.lock().iter().map(|f| f.file.size() as u64).sum()
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
