//! The DLedger log on disk, as `DLedgerMmapFileStore` keeps it: entries in equally sized data
//! files (`<dataDir>`, default `<storePathRootDir>/dledger-<selfId>/data`), one 32-byte unit per
//! entry at `index * 32` in the index files (`.../index`), the `checkpoint` properties file
//! (`endIndex`, `committedIndex`) and the `currterm` file (`currTerm`, `voteLeader`) beside them.
//!
//! An entry never straddles data files: when it does not fit with [`MIN_BLANK_LEN`] to spare, the
//! rest of the file is a BLANK (magic -1, size = bytes left) and the entry starts the next file.
//! Positions are therefore the same on every replica, and a follower checks that each pushed
//! entry lands at the `pos` the leader gave it.
//!
//! Recovery ([`DLedgerLog::open`]) starts three data files before the last (as DLedger), walks the
//! entries checking magic, size, pos, consecutive indexes and non-decreasing terms, rewrites the
//! index from the first entry whose unit disagrees, and cuts (zeroes) the data and index after the
//! last valid entry. The committed index comes from `checkpoint`, bounded by the end.
//!
//! Single writer: the owner serialises every mutation (`&mut self`). Readers of entry bytes may
//! hold [`DLedgerLog::data_queue`] and read below the end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::entry::{self, EntryHeader, IndexUnit, BLANK_MAGIC, BODY_OFFSET, INDEX_UNIT_SIZE, MIN_BLANK_LEN};
use crate::store::error::{io_err, Result, StoreError};
use crate::store::mapped_file_queue::MappedFileQueue;

/// `CHECK_POINT_FILE`.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// `MemberState.TERM_PERSIST_FILE`.
pub const TERM_FILE: &str = "currterm";
/// DLedger's index file size (`32 * 5M`).
pub const DEFAULT_INDEX_FILE_SIZE: u64 = 32 * 5 * 1024 * 1024;

/// Where and how big.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `<storePathRootDir>/dledger-<selfId>` (`DLedgerConfig.getDefaultPath`).
    pub default_path: PathBuf,
    /// Data files (`storePathDLedgerCommitLog`, default `<default_path>/data`).
    pub data_dir: PathBuf,
    /// Size of each data file (`mappedFileSizeCommitLog`).
    pub data_file_size: u64,
    /// Size of each index file (a multiple of 32).
    pub index_file_size: u64,
}

impl LogConfig {
    /// DLedger's layout under `store_root` for `self_id`, with `data_dir` overriding the data path.
    pub fn new(store_root: &Path, self_id: &str, data_dir: Option<PathBuf>, data_file_size: u64) -> Self {
        let default_path = store_root.join(format!("dledger-{self_id}"));
        LogConfig {
            data_dir: data_dir.unwrap_or_else(|| default_path.join("data")),
            default_path,
            data_file_size,
            index_file_size: DEFAULT_INDEX_FILE_SIZE,
        }
    }
    /// The index directory.
    pub fn index_dir(&self) -> PathBuf {
        self.default_path.join("index")
    }
}

/// Where an entry lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// Log index.
    pub index: i64,
    /// Term.
    pub term: i64,
    /// Absolute position of the entry (its body starts at `pos + 48`).
    pub pos: i64,
    /// Whole size.
    pub size: i32,
}

/// The persisted vote (`currterm`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermState {
    /// `currTerm` (0 if never written... DLedger starts at 0).
    pub term: i64,
    /// `voteLeader`.
    pub vote_for: Option<String>,
}

/// The log of one DLedger node.
pub struct DLedgerLog {
    cfg: LogConfig,
    data: Arc<MappedFileQueue>,
    index: MappedFileQueue,
    begin_index: i64,
    end_index: i64,
    end_term: i64,
    committed_index: i64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for DLedgerLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DLedgerLog")
            .field("dir", &self.cfg.default_path)
            .field("begin", &self.begin_index)
            .field("end", &self.end_index)
            .field("end_term", &self.end_term)
            .field("committed", &self.committed_index)
            .finish()
    }
}

fn corrupt(msg: String) -> StoreError {
    StoreError::Corrupt(msg)
}

/// Reads a Java properties file of `key=value` lines (`None` if missing).
fn read_props(path: &Path) -> Result<Option<Vec<(String, String)>>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
                .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
                .collect(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Writes `text` to `path` durably: a `.tmp` written and synced, the old content kept as `.bak`
/// (as DLedger's `IOUtils.string2File`), then renamed over.
fn write_durably(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    if path.exists() {
        let bak = path.with_extension("bak");
        std::fs::copy(path, &bak).map_err(io_err(&bak))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl DLedgerLog {
    /// Opens (creating directories) and recovers the log.
    pub fn open(cfg: LogConfig) -> Result<DLedgerLog> {
        if cfg.index_file_size == 0 || cfg.index_file_size % INDEX_UNIT_SIZE as u64 != 0 {
            return Err(StoreError::InvalidArgument(format!(
                "index file size {} is not a positive multiple of 32",
                cfg.index_file_size
            )));
        }
        if cfg.data_file_size < (BODY_OFFSET + MIN_BLANK_LEN) as u64 {
            return Err(StoreError::InvalidArgument(format!("data file size {} is too small", cfg.data_file_size)));
        }
        std::fs::create_dir_all(&cfg.default_path).map_err(io_err(&cfg.default_path))?;
        let data = Arc::new(MappedFileQueue::load(&cfg.data_dir, cfg.data_file_size)?);
        let index = MappedFileQueue::load(&cfg.index_dir(), cfg.index_file_size)?;
        let mut log = DLedgerLog {
            cfg,
            data,
            index,
            begin_index: -1,
            end_index: -1,
            end_term: -1,
            committed_index: -1,
            buf: Vec::new(),
        };
        log.recover()?;
        Ok(log)
    }

    fn recover(&mut self) -> Result<()> {
        let files = self.data.files();
        if files.is_empty() {
            self.index.truncate_dirty(0, true)?;
            return Ok(());
        }
        // Start three files before the last, going further back while that file's first entry
        // does not agree with its index unit.
        let mut start = files.len().saturating_sub(3);
        loop {
            let f = &files[start];
            let ok = entry::decode_header(f.slice(0, BODY_OFFSET)).is_some_and(|h| {
                entry::check(&h, f.from_offset() as i64).is_ok() && self.unit(h.index) == Some(IndexUnit::of(&h))
            });
            if ok || start == 0 {
                break;
            }
            start -= 1;
        }
        let mut fi = start;
        let mut process = files[fi].from_offset();
        let mut last_index = -1i64;
        let mut last_term = -1i64;
        let mut first_index = -1i64;
        let mut rewrite_index = false;
        'files: loop {
            let f = &files[fi];
            let mut rel = (process - f.from_offset()) as usize;
            loop {
                if rel + 8 > f.size() {
                    break 'files;
                }
                let head = f.slice(rel, 8);
                let magic = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
                let size = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
                if magic == BLANK_MAGIC {
                    if fi + 1 >= files.len() {
                        // A blank ends the last file: the next entry goes to a new file.
                        process = f.from_offset() + f.size() as u64;
                        break 'files;
                    }
                    fi += 1;
                    process = files[fi].from_offset();
                    continue 'files;
                }
                if size == 0 {
                    break 'files;
                }
                let Some(h) = entry::decode_header(f.slice(rel, BODY_OFFSET)) else { break 'files };
                let abs = f.from_offset() as i64 + rel as i64;
                if entry::check(&h, abs).is_err()
                    || rel + h.size as usize > f.size()
                    || (last_index != -1 && h.index != last_index + 1)
                    || h.term < last_term
                    || h.index < 0
                {
                    tracing::info!(pos = abs, "dledger recovery stops at an invalid entry");
                    break 'files;
                }
                if first_index == -1 {
                    first_index = h.index;
                }
                if !rewrite_index && self.unit(h.index) != Some(IndexUnit::of(&h)) {
                    tracing::warn!(index = h.index, "dledger index disagrees with data: rebuilding it from here");
                    self.index.truncate_dirty(h.index as u64 * INDEX_UNIT_SIZE as u64, true)?;
                    rewrite_index = true;
                }
                if rewrite_index {
                    self.write_unit(&IndexUnit::of(&h))?;
                }
                last_index = h.index;
                last_term = h.term;
                rel += h.size as usize;
                process = f.from_offset() + rel as u64;
            }
        }
        self.data.truncate_dirty(process, true)?;
        let index_end = ((last_index + 1).max(0) as u64) * INDEX_UNIT_SIZE as u64;
        self.index.truncate_dirty(index_end, true)?;
        self.end_index = last_index;
        self.end_term = last_term;
        self.begin_index = if last_index == -1 { -1 } else { self.first_index_on_disk().unwrap_or(first_index) };
        if let Some(props) = read_props(&self.cfg.default_path.join(CHECKPOINT_FILE))? {
            if let Some((_, v)) = props.iter().find(|(k, _)| k == "committedIndex") {
                let c: i64 = v.parse().map_err(|_| corrupt(format!("checkpoint committedIndex {v:?}")))?;
                self.committed_index = c.min(self.end_index);
            }
        }
        // Entries before the first one on disk were committed (files go only below the committed
        // entries; a reset starts at the leader's begin, with everything before it committed),
        // whatever an older checkpoint says.
        if self.begin_index > 0 && self.committed_index < self.begin_index - 1 {
            self.committed_index = self.begin_index - 1;
        }
        Ok(())
    }

    fn first_index_on_disk(&self) -> Option<i64> {
        let f = self.data.first()?;
        let h = entry::decode_header(f.slice(0, BODY_OFFSET))?;
        entry::check(&h, f.from_offset() as i64).ok()?;
        Some(h.index)
    }

    fn unit(&self, index: i64) -> Option<IndexUnit> {
        if index < 0 {
            return None;
        }
        let off = index as u64 * INDEX_UNIT_SIZE as u64;
        let f = self.index.find(off)?;
        let rel = (off - f.from_offset()) as usize;
        if rel + INDEX_UNIT_SIZE > f.wrote_pos() {
            return None;
        }
        IndexUnit::decode(f.slice(rel, INDEX_UNIT_SIZE))
    }

    fn write_unit(&mut self, u: &IndexUnit) -> Result<()> {
        let off = u.index as u64 * INDEX_UNIT_SIZE as u64;
        if self.index.max_offset() != off && !(self.index.is_empty() && off % self.cfg.index_file_size == 0) {
            // An empty index list starts at the file holding `off` (after cleanup DLedger starts later).
            if !self.index.is_empty() {
                return Err(corrupt(format!(
                    "index unit {} would be written at {} != {off}",
                    u.index,
                    self.index.max_offset()
                )));
            }
        }
        let f = if self.index.is_empty() {
            // The index starts at this unit (after a reset at a later index, or rebuilt there).
            self.index.restart_at(off)?
        } else {
            self.index.last_or_create(off)?
        };
        let rel = (off - f.from_offset()) as usize;
        if rel != f.wrote_pos() {
            return Err(corrupt(format!(
                "index unit {} would land at {} in a file written to {}",
                u.index,
                rel,
                f.wrote_pos()
            )));
        }
        // SAFETY: single writer (&mut self), writing at the write position, then publishing it.
        unsafe { f.slice_mut(rel, INDEX_UNIT_SIZE).copy_from_slice(&u.encode()) };
        f.set_wrote_pos(rel + INDEX_UNIT_SIZE);
        Ok(())
    }

    /// Position where an entry of `len` bytes would be written, writing the BLANK that closes the
    /// last file and creating the next file when needed (`MmapFileList.preAppend`).
    fn pre_append(&mut self, len: usize) -> Result<u64> {
        if len + MIN_BLANK_LEN > self.cfg.data_file_size as usize {
            return Err(StoreError::InvalidArgument(format!(
                "entry of {len} bytes does not fit a data file of {} bytes",
                self.cfg.data_file_size
            )));
        }
        let mut f = self.data.last_or_create(0)?;
        if len + MIN_BLANK_LEN > f.remaining() {
            let rel = f.wrote_pos();
            let left = f.remaining();
            let mut blank = [0u8; MIN_BLANK_LEN];
            blank[..4].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
            blank[4..].copy_from_slice(&(left as i32).to_be_bytes());
            // SAFETY: single writer, at the write position (left >= 8: entries keep 8 bytes spare).
            unsafe { f.slice_mut(rel, MIN_BLANK_LEN).copy_from_slice(&blank) };
            f.set_wrote_pos(f.size());
            f = self.data.last_or_create(0)?;
        }
        Ok(f.from_offset() + f.wrote_pos() as u64)
    }

    fn write_data(&mut self, pos: u64) -> Result<()> {
        let f = self.data.last().ok_or_else(|| corrupt("no data file to write".into()))?;
        let rel = (pos - f.from_offset()) as usize;
        if rel != f.wrote_pos() || rel + self.buf.len() > f.size() {
            return Err(corrupt(format!("entry at {pos} does not follow the data end")));
        }
        // SAFETY: single writer, at the write position, then publishing it.
        unsafe { f.slice_mut(rel, self.buf.len()).copy_from_slice(&self.buf) };
        f.set_wrote_pos(rel + self.buf.len());
        Ok(())
    }

    /// Appends `body` as the next entry in `term` (leader). `hook` sees the entry's position and
    /// the body as it is about to be written, and may patch it (DLedger's `AppendHook`: the broker
    /// writes `PHYSICALOFFSET = pos + 48` into the record).
    pub fn append(&mut self, term: i64, body: &[u8], hook: impl FnOnce(i64, &mut [u8])) -> Result<EntryMeta> {
        let index = self.end_index + 1;
        let len = BODY_OFFSET + body.len();
        let pos = self.pre_append(len)?;
        let h = EntryHeader::new(index, term, pos as i64, body.len());
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        entry::encode(&h, body, &mut buf);
        hook(pos as i64, &mut buf[BODY_OFFSET..]);
        self.buf = buf;
        self.finish_append(h)
    }

    /// Appends an entry received from the leader; it must be the next index and land at its `pos`.
    pub fn append_replica(&mut self, index: i64, term: i64, pos: i64, body: &[u8]) -> Result<EntryMeta> {
        if index != self.end_index + 1 {
            return Err(StoreError::InvalidArgument(format!("entry {index} does not follow {}", self.end_index)));
        }
        if term < self.end_term {
            return Err(StoreError::InvalidArgument(format!("entry term {term} below the last {}", self.end_term)));
        }
        let len = BODY_OFFSET + body.len();
        let at = self.pre_append(len)?;
        if at as i64 != pos {
            return Err(corrupt(format!("entry {index} belongs at {pos} but the data ends at {at}")));
        }
        let h = EntryHeader::new(index, term, pos, body.len());
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        entry::encode(&h, body, &mut buf);
        self.buf = buf;
        self.finish_append(h)
    }

    fn finish_append(&mut self, h: EntryHeader) -> Result<EntryMeta> {
        self.write_data(h.pos as u64)?;
        self.write_unit(&IndexUnit::of(&h))?;
        self.end_index = h.index;
        self.end_term = h.term;
        if self.begin_index == -1 {
            self.begin_index = h.index;
        }
        Ok(EntryMeta { index: h.index, term: h.term, pos: h.pos, size: h.size })
    }

    /// End position (after the last byte) of the committed entries, `None` if nothing committed
    /// is in the log.
    pub fn committed_end(&self) -> Option<u64> {
        if self.committed_index < 0 || self.committed_index < self.begin_index {
            return None;
        }
        let m = self.meta(self.committed_index)?;
        Some(m.pos as u64 + m.size as u64)
    }

    /// Deletes leading data files, oldest first (DLedger's `deleteExpiredFileByTime` followed by
    /// `reviseLedgerBeginIndex`): at most `max`, never the last file, only files whose whole
    /// extent lies below both the end of the committed entries and `below` (the caller's
    /// dispatched position), and only while `deletable` accepts the file (expired, or cleaning at
    /// once); stops at the first file refused. The begin index becomes the first entry of the new
    /// first file and the index files wholly below it go too. Returns the deleted data files.
    pub fn delete_leading_files(
        &mut self,
        max: usize,
        below: u64,
        mut deletable: impl FnMut(&crate::store::mapped_file::MappedFile) -> bool,
    ) -> Result<Vec<PathBuf>> {
        let Some(committed_end) = self.committed_end() else { return Ok(Vec::new()) };
        let limit = committed_end.min(below);
        let size = self.cfg.data_file_size;
        let taken = self.data.take_leading(max, |f| f.from_offset() + size <= limit && deletable(f));
        if taken.is_empty() {
            return Ok(Vec::new());
        }
        let mut deleted = Vec::with_capacity(taken.len());
        let mut first_err = None;
        for f in &taken {
            match f.destroy() {
                Ok(()) => deleted.push(f.path().to_path_buf()),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        // The new first file starts with an entry (entries never straddle files).
        let begin = self.first_index_on_disk().ok_or_else(|| {
            corrupt(format!("no entry at the start of the first data file after deleting {deleted:?}"))
        })?;
        self.begin_index = begin;
        self.index.delete_files_before(begin as u64 * INDEX_UNIT_SIZE as u64)?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }

    /// Drops the whole log and restarts it at `index` with this entry at `pos`, the position it
    /// has in the leader's log (DLedger's `truncate` rebuilding its files at the entry's
    /// position): a follower whose log cannot reach the leader's begin index. `pos` must start a
    /// data file (the leader's first entry always does: whole files are deleted); the entries
    /// before `index` count as committed. Data files go first, then index files; the new entry
    /// and its unit are flushed and the checkpoint written before this returns, so a crash
    /// leaves either an empty log or the new one.
    pub fn reset_to(&mut self, index: i64, term: i64, pos: i64, body: &[u8]) -> Result<EntryMeta> {
        let size = self.cfg.data_file_size;
        if index <= 0 || pos < 0 || pos as u64 % size != 0 {
            return Err(StoreError::InvalidArgument(format!(
                "cannot restart the log at entry {index} at {pos}: not the start of a data file of {size} bytes"
            )));
        }
        if index <= self.committed_index {
            return Err(StoreError::InvalidArgument(format!(
                "refusing to restart the log at {index}: committed up to {}",
                self.committed_index
            )));
        }
        self.data.restart_at(pos as u64)?;
        self.index.clear()?;
        self.begin_index = -1;
        self.end_index = index - 1;
        self.end_term = -1;
        self.committed_index = index - 1;
        let m = self.append_replica(index, term, pos, body)?;
        self.data.flush(0)?;
        self.index.flush(0)?;
        self.persist_checkpoint()?;
        Ok(m)
    }

    /// Drops every entry from `index` on (an uncommitted suffix the leader does not have). Refuses
    /// to drop committed entries.
    pub fn truncate_from(&mut self, index: i64) -> Result<()> {
        if index > self.end_index {
            return Ok(());
        }
        if index <= self.committed_index {
            return Err(StoreError::InvalidArgument(format!(
                "refusing to truncate from {index}: committed up to {}",
                self.committed_index
            )));
        }
        let (pos, keep_term) = if index <= self.begin_index || index <= 0 {
            (self.data.min_offset(), -1)
        } else {
            let u = self.unit(index).ok_or_else(|| corrupt(format!("no index unit for {index}")))?;
            let prev = self.unit(index - 1).ok_or_else(|| corrupt(format!("no index unit for {}", index - 1)))?;
            (u.pos as u64, prev.term)
        };
        self.data.truncate_dirty(pos, true)?;
        self.index.truncate_dirty((index.max(0) as u64) * INDEX_UNIT_SIZE as u64, true)?;
        if index <= self.begin_index || index <= 0 {
            self.begin_index = -1;
            self.end_index = index - 1;
            self.end_term = -1;
        } else {
            self.end_index = index - 1;
            self.end_term = keep_term;
        }
        Ok(())
    }

    /// The entry at `index`: header and body bytes (zero-copy).
    pub fn get(&self, index: i64) -> Option<(EntryMeta, Bytes)> {
        if index < self.begin_index || index > self.end_index || index < 0 {
            return None;
        }
        let u = self.unit(index)?;
        let f = self.data.find(u.pos as u64)?;
        let rel = (u.pos as u64 - f.from_offset()) as usize;
        let h = entry::decode_header(f.slice(rel, BODY_OFFSET))?;
        if h.pos != u.pos || h.index != index {
            return None;
        }
        let body = f.bytes(rel + BODY_OFFSET, h.body_len as usize);
        Some((EntryMeta { index, term: h.term, pos: h.pos, size: h.size }, body))
    }

    /// Term of the entry at `index` (`None` outside the log).
    pub fn term_at(&self, index: i64) -> Option<i64> {
        if index < self.begin_index || index > self.end_index || index < 0 {
            return None;
        }
        if index == self.end_index {
            return Some(self.end_term);
        }
        self.unit(index).map(|u| u.term)
    }

    /// Where the entry at `index` lies.
    pub fn meta(&self, index: i64) -> Option<EntryMeta> {
        if index < self.begin_index || index > self.end_index || index < 0 {
            return None;
        }
        self.unit(index).map(|u| EntryMeta { index: u.index, term: u.term, pos: u.pos, size: u.size })
    }

    /// First index (-1 if empty).
    pub fn begin_index(&self) -> i64 {
        self.begin_index
    }
    /// Last index (-1 if empty).
    pub fn end_index(&self) -> i64 {
        self.end_index
    }
    /// Term of the last entry (-1 if empty).
    pub fn end_term(&self) -> i64 {
        self.end_term
    }
    /// Committed index.
    pub fn committed_index(&self) -> i64 {
        self.committed_index
    }
    /// End of the data (the next entry's position, before any BLANK).
    pub fn data_end(&self) -> u64 {
        self.data.max_offset()
    }
    /// The data files (for readers of entry bodies).
    pub fn data_queue(&self) -> &Arc<MappedFileQueue> {
        &self.data
    }
    /// The layout.
    pub fn config(&self) -> &LogConfig {
        &self.cfg
    }

    /// Raises the committed index (never lowers it, never past the end).
    pub fn set_committed(&mut self, index: i64) {
        let c = index.min(self.end_index);
        if c > self.committed_index {
            self.committed_index = c;
        }
    }

    /// Flushes data and index and writes `checkpoint`.
    pub fn flush(&mut self) -> Result<()> {
        self.data.flush(0)?;
        self.index.flush(0)?;
        self.persist_checkpoint()
    }

    /// Writes `checkpoint` (`endIndex`, `committedIndex`).
    pub fn persist_checkpoint(&self) -> Result<()> {
        let text = format!("endIndex={}\ncommittedIndex={}\n", self.end_index, self.committed_index);
        write_durably(&self.cfg.default_path.join(CHECKPOINT_FILE), &text)
    }

    /// Reads `currterm` (term 0 and no vote if missing).
    pub fn load_term(&self) -> Result<TermState> {
        let mut st = TermState::default();
        if let Some(props) = read_props(&self.cfg.default_path.join(TERM_FILE))? {
            for (k, v) in props {
                match k.as_str() {
                    "currTerm" => st.term = v.parse().map_err(|_| corrupt(format!("currterm currTerm {v:?}")))?,
                    "voteLeader" if !v.is_empty() => st.vote_for = Some(v),
                    _ => {}
                }
            }
        }
        Ok(st)
    }

    /// Writes `currterm` durably (before a vote is answered).
    pub fn persist_term(&self, st: &TermState) -> Result<()> {
        let mut text = format!("currTerm={}\n", st.term);
        if let Some(v) = &st.vote_for {
            text.push_str(&format!("voteLeader={v}\n"));
        }
        write_durably(&self.cfg.default_path.join(TERM_FILE), &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(root: &Path, data_size: u64) -> LogConfig {
        let mut c = LogConfig::new(root, "n0", None, data_size);
        c.index_file_size = 32 * 8;
        c
    }

    fn body(i: i64) -> Vec<u8> {
        format!("body-{i}-{}", "x".repeat((i % 7) as usize)).into_bytes()
    }

    #[test]
    fn append_read_blank_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = DLedgerLog::open(cfg(dir.path(), 256)).unwrap();
        assert_eq!((log.begin_index(), log.end_index(), log.end_term()), (-1, -1, -1));
        let mut metas = Vec::new();
        for i in 0..20 {
            let m = log
                .append(1 + i / 10, &body(i), |pos, b| {
                    // The append hook sees the final position.
                    assert!(pos >= 0);
                    b[0] = b'B';
                })
                .unwrap();
            assert_eq!(m.index, i);
            metas.push(m);
        }
        // Entries never straddle files; a file that cannot take the next entry ends in a BLANK.
        for m in &metas {
            assert_eq!(m.pos as u64 / 256, (m.pos as u64 + m.size as u64 - 1) / 256, "{m:?}");
        }
        let (m, b) = log.get(13).unwrap();
        assert_eq!(m, metas[13]);
        assert_eq!(&b[1..], &body(13)[1..]);
        assert_eq!(b[0], b'B');
        assert_eq!(log.term_at(9), Some(1));
        assert_eq!(log.term_at(10), Some(2));
        assert!(std::fs::read_dir(dir.path().join("dledger-n0/data")).unwrap().count() > 2);
        log.set_committed(15);
        log.flush().unwrap();
        drop(log);
        let ck = std::fs::read_to_string(dir.path().join("dledger-n0/checkpoint")).unwrap();
        assert!(ck.contains("endIndex=19") && ck.contains("committedIndex=15"), "{ck}");
        let log = DLedgerLog::open(cfg(dir.path(), 256)).unwrap();
        assert_eq!((log.begin_index(), log.end_index(), log.end_term(), log.committed_index()), (0, 19, 2, 15));
        for m in &metas {
            assert_eq!(log.meta(m.index), Some(*m));
        }
        // A blank at a file's end: magic -1 and the bytes left.
        let first = std::fs::read(dir.path().join("dledger-n0/data/00000000000000000000")).unwrap();
        let end = (metas.iter().filter(|m| m.pos < 256).map(|m| m.pos + m.size as i64).max().unwrap()) as usize;
        assert_eq!(&first[end..end + 4], &(-1i32).to_be_bytes());
        assert_eq!(&first[end + 4..end + 8], &((256 - end) as i32).to_be_bytes());
    }

    #[test]
    fn torn_tail_is_cut_and_index_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = DLedgerLog::open(cfg(dir.path(), 1024)).unwrap();
        for i in 0..10 {
            log.append(1, &body(i), |_, _| {}).unwrap();
        }
        let m8 = log.meta(8).unwrap();
        log.flush().unwrap();
        drop(log);
        // Tear entry 9 (half its header zeroed) and damage the index unit of entry 4.
        let data = dir.path().join("dledger-n0/data/00000000000000000000");
        let mut d = std::fs::read(&data).unwrap();
        let p9 = (m8.pos + m8.size as i64) as usize;
        d[p9 + 4..p9 + 8].copy_from_slice(&1000i32.to_be_bytes());
        std::fs::write(&data, &d).unwrap();
        let idx = dir.path().join("dledger-n0/index/00000000000000000000");
        let mut x = std::fs::read(&idx).unwrap();
        x[4 * 32 + 20] ^= 0xFF;
        std::fs::write(&idx, &x).unwrap();
        let mut log = DLedgerLog::open(cfg(dir.path(), 1024)).unwrap();
        assert_eq!(log.end_index(), 8);
        assert_eq!(log.committed_index(), -1);
        assert_eq!(log.data_end(), p9 as u64);
        for i in 0..=8 {
            assert_eq!(log.get(i).unwrap().0.index, i);
        }
        // The cut tail reads as zeros and the next append goes there.
        let m = log.append(2, b"after", |_, _| {}).unwrap();
        assert_eq!((m.index, m.pos), (9, p9 as i64));
        drop(log);
        let log = DLedgerLog::open(cfg(dir.path(), 1024)).unwrap();
        assert_eq!((log.end_index(), log.end_term()), (9, 2));
        assert_eq!(&log.get(9).unwrap().1[..], b"after");
    }

    #[test]
    fn truncate_suffix_and_replica_positions() {
        let dir = tempfile::tempdir().unwrap();
        let mut leader = DLedgerLog::open(cfg(&dir.path().join("a"), 200)).unwrap();
        let mut follower = DLedgerLog::open(cfg(&dir.path().join("b"), 200)).unwrap();
        for i in 0..12 {
            let m = leader.append(1, &body(i), |_, _| {}).unwrap();
            let (_, b) = leader.get(i).unwrap();
            assert_eq!(follower.append_replica(m.index, m.term, m.pos, &b).unwrap(), m);
        }
        // A wrong position or index is refused.
        assert!(follower.append_replica(12, 1, 3, b"x").is_err());
        assert!(follower.append_replica(14, 1, leader.data_end() as i64, b"x").is_err());
        follower.set_committed(5);
        assert!(follower.truncate_from(5).is_err());
        follower.truncate_from(7).unwrap();
        assert_eq!((follower.end_index(), follower.end_term()), (6, 1));
        assert!(follower.get(7).is_none());
        let m7 = leader.meta(7).unwrap();
        assert_eq!(follower.data_end(), m7.pos as u64);
        // Re-append a different suffix in a later term, then reopen.
        let m = follower.append_replica(7, 3, m7.pos, b"other").unwrap();
        assert_eq!(m.index, 7);
        drop(follower);
        let follower = DLedgerLog::open(cfg(&dir.path().join("b"), 200)).unwrap();
        assert_eq!((follower.end_index(), follower.end_term()), (7, 3));
        assert_eq!(&follower.get(7).unwrap().1[..], b"other");
        // Truncating everything.
        let mut l = DLedgerLog::open(cfg(&dir.path().join("a"), 200)).unwrap();
        l.truncate_from(0).unwrap();
        assert_eq!((l.begin_index(), l.end_index()), (-1, -1));
        assert_eq!(l.append(4, b"again", |_, _| {}).unwrap().pos, 0);
    }

    #[test]
    fn leading_files_deleted_below_committed_and_dispatched_then_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let files = |sub: &str| {
            let mut v: Vec<String> = std::fs::read_dir(dir.path().join("dledger-n0").join(sub))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        // 256-byte data files, 4 units per index file.
        let mut c = cfg(dir.path(), 256);
        c.index_file_size = 32 * 4;
        let mut log = DLedgerLog::open(c.clone()).unwrap();
        let metas: Vec<EntryMeta> = (0..30).map(|i| log.append(1, &body(i), |_, _| {}).unwrap()).collect();
        let nfiles = files("data").len();
        assert!(nfiles >= 5, "{nfiles}");
        // Nothing committed: nothing goes, even at once.
        assert!(log.delete_leading_files(10, u64::MAX, |_| true).unwrap().is_empty());
        // Committed up to entry 12: only files wholly below its end go.
        log.set_committed(12);
        let c12 = metas[12].pos as u64 + metas[12].size as u64;
        // A file not expired (the predicate refuses) stays, and nothing behind it goes.
        assert!(log.delete_leading_files(10, u64::MAX, |_| false).unwrap().is_empty());
        // Not dispatched past the first file's end: nothing.
        assert!(log.delete_leading_files(10, 255, |_| true).unwrap().is_empty());
        let gone = log.delete_leading_files(10, u64::MAX, |_| true).unwrap();
        let expect = (c12 / 256) as usize;
        assert_eq!(gone.len(), expect, "files wholly below the committed end {c12}");
        let first_pos = expect as u64 * 256;
        assert_eq!(log.data_queue().min_offset(), first_pos);
        let begin = metas.iter().find(|m| m.pos as u64 == first_pos).unwrap().index;
        assert_eq!(log.begin_index(), begin);
        assert!(log.get(begin - 1).is_none() && log.meta(begin - 1).is_none() && log.term_at(begin - 1).is_none());
        assert_eq!(log.get(begin).unwrap().0, metas[begin as usize]);
        // Index files wholly below the begin index went too.
        let first_index_file = files("index")[0].parse::<u64>().unwrap();
        assert_eq!(first_index_file, (begin as u64 * 32) / (32 * 4) * (32 * 4));
        // At most `max` per run, never the last file.
        log.set_committed(29);
        let gone = log.delete_leading_files(1, u64::MAX, |_| true).unwrap();
        assert_eq!(gone.len(), 1);
        let gone = log.delete_leading_files(100, u64::MAX, |_| true).unwrap();
        assert!(!gone.is_empty());
        assert_eq!(files("data").len(), 1, "the last file stays");
        let begin = log.begin_index();
        assert!(begin > 0 && begin <= 29);
        log.flush().unwrap();
        drop(log);
        // Reopen: begin index from the first data file, entries below it gone, appends continue.
        let mut log = DLedgerLog::open(c.clone()).unwrap();
        assert_eq!((log.begin_index(), log.end_index(), log.committed_index()), (begin, 29, 29));
        assert!(log.get(begin - 1).is_none());
        assert_eq!(log.get(29).unwrap().0, metas[29]);
        let m = log.append(2, b"after cleanup", |_, _| {}).unwrap();
        assert_eq!(m.index, 30);
        drop(log);
        let log = DLedgerLog::open(c).unwrap();
        assert_eq!((log.begin_index(), log.end_index()), (begin, 30));
        assert_eq!(&log.get(30).unwrap().1[..], b"after cleanup");
    }

    #[test]
    fn reset_restarts_the_log_at_the_leaders_begin_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let files = |sub: &str| {
            let mut v: Vec<String> = std::fs::read_dir(dir.path().join("b/dledger-n0").join(sub))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let mut c = cfg(&dir.path().join("a"), 256);
        c.index_file_size = 32 * 4;
        let mut leader = DLedgerLog::open(c).unwrap();
        let mut fc = cfg(&dir.path().join("b"), 256);
        fc.index_file_size = 32 * 4;
        let mut follower = DLedgerLog::open(fc.clone()).unwrap();
        for i in 0..40 {
            let m = leader.append(1, &body(i), |_, _| {}).unwrap();
            if i < 5 {
                let (_, b) = leader.get(i).unwrap();
                follower.append_replica(m.index, m.term, m.pos, &b).unwrap();
            }
        }
        follower.set_committed(3);
        leader.set_committed(39);
        leader.delete_leading_files(100, u64::MAX, |_| true).unwrap();
        let begin = leader.begin_index();
        assert!(begin > 6, "{begin}");
        let (m, b) = leader.get(begin).unwrap();
        // Not at the start of a data file, or at or below the committed index: refused.
        assert!(follower.reset_to(begin, m.term, m.pos + 1, &b).is_err());
        assert!(follower.reset_to(3, m.term, 0, &b).is_err());
        assert_eq!(follower.end_index(), 4);
        let r = follower.reset_to(begin, m.term, m.pos, &b).unwrap();
        assert_eq!(r, m);
        assert_eq!(
            (follower.begin_index(), follower.end_index(), follower.committed_index()),
            (begin, begin, begin - 1)
        );
        assert!(follower.get(4).is_none() && follower.term_at(begin - 1).is_none());
        assert_eq!(follower.data_queue().min_offset(), m.pos as u64);
        assert_eq!(files("data"), vec![format!("{:020}", m.pos)]);
        // The index restarts at the file holding the begin index's unit.
        let unit_file = (begin as u64 * 32) / (32 * 4) * (32 * 4);
        assert_eq!(files("index"), vec![format!("{unit_file:020}")]);
        // Entries follow at the leader's positions.
        for i in begin + 1..=39 {
            let (m, b) = leader.get(i).unwrap();
            assert_eq!(follower.append_replica(i, m.term, m.pos, &b).unwrap(), m);
        }
        follower.set_committed(39);
        follower.flush().unwrap();
        drop(follower);
        let follower = DLedgerLog::open(fc.clone()).unwrap();
        assert_eq!((follower.begin_index(), follower.end_index(), follower.committed_index()), (begin, 39, 39));
        for i in begin..=39 {
            assert_eq!(follower.get(i).unwrap().0, leader.meta(i).unwrap());
        }
        drop(follower);
        // A checkpoint older than the reset still gives a committed index below the begin.
        std::fs::write(dir.path().join("b/dledger-n0/checkpoint"), "endIndex=4\ncommittedIndex=3\n").unwrap();
        let follower = DLedgerLog::open(fc).unwrap();
        assert_eq!((follower.begin_index(), follower.committed_index()), (begin, begin - 1));
    }

    #[test]
    fn term_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let log = DLedgerLog::open(cfg(dir.path(), 256)).unwrap();
        assert_eq!(log.load_term().unwrap(), TermState::default());
        let st = TermState { term: 7, vote_for: Some("n2".into()) };
        log.persist_term(&st).unwrap();
        assert_eq!(log.load_term().unwrap(), st);
        let text = std::fs::read_to_string(dir.path().join("dledger-n0/currterm")).unwrap();
        assert_eq!(text, "currTerm=7\nvoteLeader=n2\n");
        log.persist_term(&TermState { term: 8, vote_for: None }).unwrap();
        assert_eq!(log.load_term().unwrap(), TermState { term: 8, vote_for: None });
    }
}
