//! An ordered list of equally sized mapped files forming one logical byte stream.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::error::{io_err, Result, StoreError};
use super::mapped_file::{offset_to_file_name, MappedFile};

/// Files named by their 20-digit start offset in one directory.
#[derive(Debug)]
pub struct MappedFileQueue {
    dir: PathBuf,
    file_size: u64,
    files: RwLock<Vec<Arc<MappedFile>>>,
    flushed_where: AtomicU64,
    /// Files allocated ahead of time ([`MappedFileQueue::preallocate_next`],
    /// [`MappedFileQueue::reserve_through`]), in order, the first one following the last file.
    /// Its mutex also serialises every file creation of this queue. Lock order: `prepared`, then
    /// `files`.
    prepared: Mutex<VecDeque<Arc<MappedFile>>>,
    /// `prepared.len()`, readable without waiting for an allocation in progress.
    prepared_count: AtomicU64,
}

impl MappedFileQueue {
    /// Loads every file of `dir` (created if missing). A zero-length last file is deleted; any
    /// other file whose length differs from `file_size` is an error naming it. Write positions are
    /// set to "full"; recovery then fixes the tail.
    pub fn load(dir: &Path, file_size: u64) -> Result<MappedFileQueue> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut entries: Vec<(u64, PathBuf)> = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let e = e.map_err(io_err(dir))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let off: u64 = name.parse().map_err(|_| StoreError::Corrupt(format!("bad file name {name}")))?;
            entries.push((off, e.path()));
        }
        entries.sort();
        let mut files = Vec::with_capacity(entries.len());
        let n = entries.len();
        for (i, (off, path)) in entries.into_iter().enumerate() {
            let len = std::fs::metadata(&path).map_err(io_err(&path))?.len();
            if len == 0 && i + 1 == n {
                tracing::warn!(path = %path.display(), "deleting zero-length last mapped file");
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            if off % file_size != 0 {
                return Err(StoreError::Corrupt(format!(
                    "file {} does not start at a multiple of the file size {file_size}",
                    path.display()
                )));
            }
            if let Some(prev) = files.last() {
                let prev: &Arc<MappedFile> = prev;
                if prev.from_offset() + file_size != off {
                    return Err(StoreError::Corrupt(format!(
                        "gap before file {}: previous file starts at {}",
                        path.display(),
                        prev.from_offset()
                    )));
                }
            }
            let f = MappedFile::open(&path, off, file_size as usize)?;
            f.set_wrote_pos(file_size as usize);
            f.set_flushed_pos(file_size as usize);
            files.push(f);
        }
        let q = MappedFileQueue {
            dir: dir.to_path_buf(),
            file_size,
            files: RwLock::new(files),
            flushed_where: AtomicU64::new(0),
            prepared: Mutex::new(VecDeque::new()),
            prepared_count: AtomicU64::new(0),
        };
        Ok(q)
    }

    /// Directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Size of each file.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }
    /// Snapshot of the files.
    pub fn files(&self) -> Vec<Arc<MappedFile>> {
        self.files.read().clone()
    }
    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.read().len()
    }
    /// No files.
    pub fn is_empty(&self) -> bool {
        self.files.read().is_empty()
    }
    /// First file.
    pub fn first(&self) -> Option<Arc<MappedFile>> {
        self.files.read().first().cloned()
    }
    /// Last file.
    pub fn last(&self) -> Option<Arc<MappedFile>> {
        self.files.read().last().cloned()
    }

    /// The file holding absolute `offset` (`None` if outside all files).
    pub fn find(&self, offset: u64) -> Option<Arc<MappedFile>> {
        let files = self.files.read();
        let first = files.first()?;
        if offset < first.from_offset() {
            return None;
        }
        let idx = ((offset - first.from_offset()) / self.file_size) as usize;
        files.get(idx).cloned()
    }

    /// Start offset of the first file (0 if none).
    pub fn min_offset(&self) -> u64 {
        self.first().map(|f| f.from_offset()).unwrap_or(0)
    }

    /// Absolute end of the written data.
    pub fn max_offset(&self) -> u64 {
        self.last().map(|f| f.from_offset() + f.wrote_pos() as u64).unwrap_or(0)
    }

    /// Absolute offset up to which data is flushed.
    pub fn flushed_where(&self) -> u64 {
        self.flushed_where.load(Ordering::Acquire)
    }
    /// Sets the flushed offset (recovery).
    pub fn set_flushed_where(&self, off: u64) {
        self.flushed_where.store(off, Ordering::Release);
    }

    /// Creates the file starting at `from` and appends it; `from` must follow the last file. A file
    /// prepared for that offset is taken instead of allocating one.
    pub fn create_file(&self, from: u64) -> Result<Arc<MappedFile>> {
        let mut prepared = self.prepared.lock();
        if let Some(last) = self.last() {
            if last.from_offset() + self.file_size != from {
                return Err(StoreError::InvalidArgument(format!(
                    "new file at {from} does not follow {}",
                    last.from_offset()
                )));
            }
        }
        let taken = if prepared.front().is_some_and(|f| f.from_offset() == from) { prepared.pop_front() } else { None };
        let f = match taken {
            Some(f) => f,
            None => {
                // Whatever was prepared no longer follows the files.
                self.drop_prepared(&mut prepared)?;
                let path = self.dir.join(offset_to_file_name(from));
                MappedFile::create(&path, from, self.file_size as usize)?
            }
        };
        self.files.write().push(Arc::clone(&f));
        self.prepared_count.store(prepared.len() as u64, Ordering::Release);
        Ok(f)
    }

    /// Makes sure every byte of `[first, end)` falls in a file that exists or is prepared, so that
    /// writing there later needs no allocation: missing files after the last one (or, in an empty
    /// queue, from the one holding `first`) are allocated now and kept as prepared files. Cheap when
    /// the last file already reaches `end`. Returns whether a file was allocated. An error (e.g.
    /// [`StoreError::NoSpace`]) leaves what was prepared before.
    pub fn reserve_through(&self, first: u64, end: u64) -> Result<bool> {
        if first >= end || self.last().is_some_and(|l| l.from_offset() + self.file_size >= end) {
            return Ok(false);
        }
        let mut prepared = self.prepared.lock();
        let aligned = first - first % self.file_size;
        let mut next = match (prepared.back(), self.last()) {
            (Some(p), _) => p.from_offset() + self.file_size,
            (None, Some(l)) => l.from_offset() + self.file_size,
            (None, None) => aligned,
        };
        if self.is_empty() && prepared.front().is_some_and(|p| p.from_offset() > aligned) {
            // Prepared for a later start than now needed: start over.
            self.drop_prepared(&mut prepared)?;
            next = aligned;
        }
        let mut allocated = false;
        while next < end {
            let path = self.dir.join(offset_to_file_name(next));
            let f = MappedFile::create(&path, next, self.file_size as usize)?;
            prepared.push_back(f);
            self.prepared_count.store(prepared.len() as u64, Ordering::Release);
            next += self.file_size;
            allocated = true;
        }
        Ok(allocated)
    }

    /// Allocates the file that will follow the last one once the last one is half full, so that
    /// rolling to it later does not pay for `fallocate` + `mmap` under the caller's lock. No-op if
    /// already prepared, empty, or the last file is less than half full.
    pub fn preallocate_next(&self) -> Result<()> {
        self.preallocate_next_at(self.file_size as usize / 2)
    }

    /// Like [`Self::preallocate_next`] with the threshold given: the next file is allocated once the
    /// last one's write position reaches `min_wrote`.
    pub fn preallocate_next_at(&self, min_wrote: usize) -> Result<()> {
        let Some(last) = self.last() else {
            return Ok(());
        };
        if last.wrote_pos() < min_wrote {
            return Ok(());
        }
        let from = last.from_offset() + self.file_size;
        self.reserve_through(from, from + 1).map(|_| ())
    }

    /// Number of prepared files.
    pub fn prepared_len(&self) -> usize {
        self.prepared_count.load(Ordering::Acquire) as usize
    }

    fn drop_prepared(&self, prepared: &mut VecDeque<Arc<MappedFile>>) -> Result<()> {
        let res = prepared.drain(..).try_for_each(|f| f.destroy());
        self.prepared_count.store(prepared.len() as u64, Ordering::Release);
        res
    }

    /// The last file if it has room, otherwise a new file following it (or at `start` if empty).
    pub fn last_or_create(&self, start: u64) -> Result<Arc<MappedFile>> {
        match self.last() {
            Some(f) if !f.is_full() => Ok(f),
            Some(f) => self.create_file(f.from_offset() + self.file_size),
            None => self.create_file(start - start % self.file_size),
        }
    }

    /// Flushes from the flushed offset onwards. With `least_pages == 0` every pending byte in every
    /// file is flushed; otherwise only the current file, if enough pages are pending.
    pub fn flush(&self, least_pages: usize) -> Result<u64> {
        loop {
            let at = self.flushed_where();
            let Some(f) = self.find(at).or_else(|| self.first().filter(|f| f.from_offset() > at)) else {
                return Ok(at);
            };
            let pos = f.flush(least_pages)?;
            let new = f.from_offset() + pos as u64;
            self.flushed_where.fetch_max(new, Ordering::AcqRel);
            if !(pos >= f.size() && new > at) {
                return Ok(self.flushed_where());
            }
        }
    }

    /// Cuts the stream at `offset`: later files are deleted, the file holding `offset` gets its
    /// positions set there and (if `zero`) its tail zeroed.
    pub fn truncate_dirty(&self, offset: u64, zero: bool) -> Result<()> {
        let mut prepared = self.prepared.lock();
        self.drop_prepared(&mut prepared)?;
        let mut files = self.files.write();
        let mut keep = Vec::with_capacity(files.len());
        for f in files.drain(..) {
            let end = f.from_offset() + self.file_size;
            if end <= offset {
                keep.push(f);
            } else if f.from_offset() <= offset {
                let pos = (offset - f.from_offset()) as usize;
                if zero && pos < f.size() {
                    f.zero_from(pos)?;
                }
                f.set_wrote_pos(pos);
                f.set_flushed_pos(pos);
                keep.push(f);
            } else {
                tracing::info!(path = %f.path().display(), "deleting mapped file beyond {offset}");
                f.destroy()?;
            }
        }
        *files = keep;
        drop(files);
        drop(prepared);
        self.set_flushed_where(offset.min(self.max_offset()).max(self.min_offset()));
        Ok(())
    }

    /// Deletes every file (and prepared file), keeping the directory.
    pub fn clear(&self) -> Result<()> {
        let mut prepared = self.prepared.lock();
        let mut files = self.files.write();
        self.destroy_all(&mut prepared, &mut files)?;
        drop(files);
        drop(prepared);
        self.set_flushed_where(0);
        Ok(())
    }

    /// Destroys the prepared files and then every file, under the caller's locks.
    fn destroy_all(&self, prepared: &mut VecDeque<Arc<MappedFile>>, files: &mut Vec<Arc<MappedFile>>) -> Result<()> {
        self.drop_prepared(prepared)?;
        for f in files.drain(..) {
            f.destroy()?;
        }
        Ok(())
    }

    /// Deletes every file (and prepared file), then starts over with the file holding `offset`,
    /// written up to `offset` (zeros before it): a log restarted at a later position.
    pub fn restart_at(&self, offset: u64) -> Result<Arc<MappedFile>> {
        let mut prepared = self.prepared.lock();
        let mut files = self.files.write();
        self.destroy_all(&mut prepared, &mut files)?;
        let start = offset - offset % self.file_size;
        let f = MappedFile::create(&self.dir.join(offset_to_file_name(start)), start, self.file_size as usize)?;
        let rel = (offset - start) as usize;
        f.set_wrote_pos(rel);
        f.set_flushed_pos(rel);
        files.push(Arc::clone(&f));
        drop(files);
        drop(prepared);
        self.set_flushed_where(offset);
        Ok(f)
    }

    /// Deletes the first files whose whole content lies before `offset`.
    pub fn delete_files_before(&self, offset: u64) -> Result<usize> {
        let mut files = self.files.write();
        let mut n = 0;
        while files.len() > 1 && files[0].from_offset() + self.file_size <= offset {
            let f = files.remove(0);
            f.destroy()?;
            tracing::info!(path = %f.path().display(), before = offset, "deleted expired file");
            n += 1;
        }
        Ok(n)
    }

    /// Bytes this queue holds on disk: its files plus the prepared ones.
    pub fn total_bytes(&self) -> u64 {
        let files = self.files.read().len() as u64;
        let prepared = self.prepared_count.load(Ordering::Acquire);
        (files + prepared) * self.file_size
    }

    /// Removes from the front, oldest first, up to `max` files for which `remove` says yes,
    /// stopping at the first it refuses; the last (current) file is never removed. The removed
    /// files are returned still on disk: the caller destroys them outside the lock.
    pub fn take_leading(&self, max: usize, remove: impl FnMut(&MappedFile) -> bool) -> Vec<Arc<MappedFile>> {
        self.take_leading_keeping(1, max, remove)
    }

    /// Like [`Self::take_leading`], the last file included (a read-only queue nothing appends
    /// to any more: a plain commitlog kept below a replicated log).
    pub fn take_leading_all(&self, max: usize, remove: impl FnMut(&MappedFile) -> bool) -> Vec<Arc<MappedFile>> {
        self.take_leading_keeping(0, max, remove)
    }

    fn take_leading_keeping(
        &self,
        keep: usize,
        max: usize,
        mut remove: impl FnMut(&MappedFile) -> bool,
    ) -> Vec<Arc<MappedFile>> {
        let mut files = self.files.write();
        let mut n = 0;
        while n < max && n + keep < files.len() && remove(&files[n]) {
            n += 1;
        }
        files.drain(..n).collect()
    }

    /// Deletes every file and the directory.
    pub fn destroy(&self) -> Result<()> {
        self.clear()?;
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove directory");
                Ok(())
            }
        }
    }
}
