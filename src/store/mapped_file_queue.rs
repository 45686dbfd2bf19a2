//! An ordered list of equally sized mapped files forming one logical byte stream.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::error::{io_err, Result, StoreError};
use super::mapped_file::{offset_to_file_name, MappedFile};

/// Files named by their 20-digit start offset in one directory.
#[derive(Debug)]
pub struct MappedFileQueue {
    dir: PathBuf,
    file_size: u64,
    files: RwLock<Vec<Arc<MappedFile>>>,
    flushed_where: AtomicU64,
    /// The next file, allocated ahead of time by [`MappedFileQueue::preallocate_next`].
    next: parking_lot::Mutex<Option<Arc<MappedFile>>>,
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
            next: parking_lot::Mutex::new(None),
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

    /// Creates the file starting at `from` and appends it; `from` must follow the last file.
    pub fn create_file(&self, from: u64) -> Result<Arc<MappedFile>> {
        let mut files = self.files.write();
        if let Some(last) = files.last() {
            if last.from_offset() + self.file_size != from {
                return Err(StoreError::InvalidArgument(format!(
                    "new file at {from} does not follow {}",
                    last.from_offset()
                )));
            }
        }
        let prepared = self.next.lock().take();
        let f = match prepared {
            Some(f) if f.from_offset() == from => f,
            other => {
                if let Some(stale) = other {
                    stale.destroy()?;
                }
                let path = self.dir.join(offset_to_file_name(from));
                MappedFile::create(&path, from, self.file_size as usize)?
            }
        };
        files.push(Arc::clone(&f));
        Ok(f)
    }

    /// Allocates the file that will follow the last one once the last one is half full, so that
    /// rolling to it later does not pay for `fallocate` + `mmap` under the caller's lock. No-op if
    /// already prepared, empty, or the last file is less than half full.
    pub fn preallocate_next(&self) -> Result<()> {
        let Some(last) = self.last() else {
            return Ok(());
        };
        if last.wrote_pos() < last.size() / 2 {
            return Ok(());
        }
        let from = last.from_offset() + self.file_size;
        if self.next.lock().as_ref().is_some_and(|f| f.from_offset() == from) {
            return Ok(());
        }
        let path = self.dir.join(offset_to_file_name(from));
        let f = MappedFile::create(&path, from, self.file_size as usize)?;
        let mut next = self.next.lock();
        // The last file may have rolled meanwhile; keep the prepared file only if still next.
        let still_next = self.last().is_some_and(|l| l.from_offset() + self.file_size == from);
        if still_next && next.is_none() {
            *next = Some(f);
        } else if !self.files.read().iter().any(|x| x.from_offset() == from) {
            drop(next);
            f.destroy()?;
        }
        Ok(())
    }

    fn drop_prepared(&self) -> Result<()> {
        if let Some(f) = self.next.lock().take() {
            f.destroy()?;
        }
        Ok(())
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
        self.drop_prepared()?;
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
        self.set_flushed_where(offset.min(self.max_offset()).max(self.min_offset()));
        Ok(())
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

    /// Bytes this queue holds on disk: its files plus the prepared next file.
    pub fn total_bytes(&self) -> u64 {
        let n = self.files.read().len() as u64 + u64::from(self.next.lock().is_some());
        n * self.file_size
    }

    /// Removes from the front, oldest first, up to `max` files for which `remove` says yes,
    /// stopping at the first it refuses; the last (current) file is never removed. The removed
    /// files are returned still on disk: the caller destroys them outside the lock.
    pub fn take_leading(&self, max: usize, mut remove: impl FnMut(&MappedFile) -> bool) -> Vec<Arc<MappedFile>> {
        let mut files = self.files.write();
        let mut n = 0;
        while n < max && n + 1 < files.len() && remove(&files[n]) {
            n += 1;
        }
        files.drain(..n).collect()
    }

    /// Deletes every file and the directory.
    pub fn destroy(&self) -> Result<()> {
        self.drop_prepared()?;
        let mut files = self.files.write();
        for f in files.drain(..) {
            f.destroy()?;
        }
        self.set_flushed_where(0);
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
