//! A fixed-size file, fully allocated with `posix_fallocate` and memory-mapped.
//!
//! Single writer (the caller serialises writes), many readers. Bytes below the write position are
//! immutable until the file is truncated during recovery (before any reader exists) or destroyed.

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{MmapOptions, MmapRaw};

use super::error::{io_err, Result, StoreError};

/// OS page size used for flush accounting.
pub const OS_PAGE_SIZE: usize = 4096;

/// File name of a mapped file starting at `offset`: 20 digits, zero padded.
pub fn offset_to_file_name(offset: u64) -> String {
    format!("{offset:020}")
}

/// One memory-mapped file of a fixed size.
pub struct MappedFile {
    path: PathBuf,
    from_offset: u64,
    size: usize,
    map: MmapRaw,
    file: File,
    wrote: AtomicUsize,
    flushed: AtomicUsize,
    destroyed: AtomicBool,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path)
            .field("wrote", &self.wrote_pos())
            .field("flushed", &self.flushed_pos())
            .finish()
    }
}

fn allocate(file: &File, path: &Path, size: usize) -> Result<()> {
    // SAFETY: plain syscall on a valid fd.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size as libc::off_t) };
    match rc {
        0 => Ok(()),
        libc::ENOSPC => Err(StoreError::NoSpace(path.to_path_buf())),
        // Filesystems without fallocate support: fall back to set_len (sparse).
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(size as u64).map_err(io_err(path)),
        e => Err(StoreError::Io { path: path.to_path_buf(), source: std::io::Error::from_raw_os_error(e) }),
    }
}

impl MappedFile {
    /// Creates (or re-opens and extends) the file at `path`, allocates all `size` bytes, maps it.
    /// ENOSPC becomes [`StoreError::NoSpace`] and the partial file is removed.
    pub fn create(path: &Path, from_offset: u64, size: usize) -> Result<Arc<MappedFile>> {
        let existed = path.exists();
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_err(path))?;
        if let Err(e) = allocate(&file, path, size) {
            drop(file);
            if !existed {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
        Self::map(path, file, from_offset, size)
    }

    /// Like [`Self::create`] for a file that must not exist yet: `Ok(None)` if `path` exists
    /// (another creator took that name), so concurrent creators never share a file.
    pub fn create_new(path: &Path, from_offset: u64, size: usize) -> Result<Option<Arc<MappedFile>>> {
        let file = match OpenOptions::new().read(true).write(true).create_new(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(io_err(path)(e)),
        };
        if let Err(e) = allocate(&file, path, size) {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Self::map(path, file, from_offset, size).map(Some)
    }

    /// Opens an existing file which must have exactly `size` bytes.
    pub fn open(path: &Path, from_offset: u64, size: usize) -> Result<Arc<MappedFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        if len != size as u64 {
            return Err(StoreError::WrongFileSize { path: path.to_path_buf(), actual: len, expected: size as u64 });
        }
        // Apache creates sparse files; make sure every block is allocated before we map.
        allocate(&file, path, size)?;
        Self::map(path, file, from_offset, size)
    }

    fn map(path: &Path, file: File, from_offset: u64, size: usize) -> Result<Arc<MappedFile>> {
        let map = MmapOptions::new().len(size).map_raw(&file).map_err(io_err(path))?;
        Ok(Arc::new(MappedFile {
            path: path.to_path_buf(),
            from_offset,
            size,
            map,
            file,
            wrote: AtomicUsize::new(0),
            flushed: AtomicUsize::new(0),
            destroyed: AtomicBool::new(false),
        }))
    }

    /// Path on disk.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Absolute start offset (the file name).
    pub fn from_offset(&self) -> u64 {
        self.from_offset
    }
    /// File size.
    pub fn size(&self) -> usize {
        self.size
    }
    /// Current write position (bytes below it are complete and readable).
    pub fn wrote_pos(&self) -> usize {
        self.wrote.load(Ordering::Acquire)
    }
    /// Publishes a new write position (after the bytes were written).
    pub fn set_wrote_pos(&self, pos: usize) {
        self.wrote.store(pos.min(self.size), Ordering::Release);
    }
    /// Position up to which data is flushed.
    pub fn flushed_pos(&self) -> usize {
        self.flushed.load(Ordering::Acquire)
    }
    /// Sets the flushed position (recovery).
    pub fn set_flushed_pos(&self, pos: usize) {
        self.flushed.store(pos.min(self.size), Ordering::Release);
    }
    /// Bytes left after the write position.
    pub fn remaining(&self) -> usize {
        self.size - self.wrote_pos()
    }
    /// No room left.
    pub fn is_full(&self) -> bool {
        self.wrote_pos() >= self.size
    }

    /// Read-only view of `[pos, pos+len)` (clamped to the file).
    pub fn slice(&self, pos: usize, len: usize) -> &[u8] {
        let pos = pos.min(self.size);
        let len = len.min(self.size - pos);
        // SAFETY: in-bounds of a live mapping; concurrent writes only happen beyond the published
        // write position, which readers do not look at.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(pos), len) }
    }

    /// Mutable view of `[pos, pos+len)` for the single writer.
    ///
    /// # Safety
    /// The caller must be the only writer and must not write below the published write position
    /// while readers may look at it.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, pos: usize, len: usize) -> &mut [u8] {
        let pos = pos.min(self.size);
        let len = len.min(self.size - pos);
        // SAFETY: `[pos, pos+len)` lies inside the mapping (clamped above), which lives as long as
        // `self`; exclusivity is the caller's contract (see above).
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(pos), len) }
    }

    /// A zero-copy [`Bytes`] of `[pos, pos+len)` that keeps the mapping alive.
    pub fn bytes(self: &Arc<Self>, pos: usize, len: usize) -> Bytes {
        let pos = pos.min(self.size);
        let len = len.min(self.size - pos);
        Bytes::from_owner(MapSlice { file: Arc::clone(self), pos, len })
    }

    /// Flushes written-but-unflushed bytes with msync if at least `least_pages` pages are pending
    /// (0 = always). Returns the new flushed position.
    pub fn flush(&self, least_pages: usize) -> Result<usize> {
        let wrote = self.wrote_pos();
        let flushed = self.flushed_pos();
        if wrote <= flushed {
            return Ok(flushed);
        }
        if least_pages > 0
            && wrote < self.size
            && (wrote / OS_PAGE_SIZE).saturating_sub(flushed / OS_PAGE_SIZE) < least_pages
        {
            return Ok(flushed);
        }
        self.map.flush_range(flushed, wrote - flushed).map_err(io_err(&self.path))?;
        self.flushed.fetch_max(wrote, Ordering::AcqRel);
        Ok(self.flushed_pos())
    }

    /// Makes `[pos, end of file)` read as zeros (recovery of a cut tail), durably.
    ///
    /// The partial first page is zeroed and msynced; the page-aligned rest is deallocated with
    /// `FALLOC_FL_PUNCH_HOLE` and allocated again, which avoids writing up to a whole file of zeros
    /// back to disk. Filesystems without hole punching get a plain memset + msync.
    pub fn zero_from(&self, pos: usize) -> Result<()> {
        if pos >= self.size {
            return Ok(());
        }
        let aligned = pos.div_ceil(OS_PAGE_SIZE) * OS_PAGE_SIZE;
        let head_end = aligned.min(self.size);
        if head_end > pos {
            // SAFETY: only used during recovery / truncation with no concurrent reader of that range.
            unsafe { self.slice_mut(pos, head_end - pos).fill(0) };
            self.map.flush_range(pos, head_end - pos).map_err(io_err(&self.path))?;
        }
        if aligned >= self.size {
            return Ok(());
        }
        let len = self.size - aligned;
        let fd = self.file.as_raw_fd();
        // SAFETY: plain syscalls on a valid fd; the kernel drops the punched pages from our mapping.
        let rc = unsafe {
            libc::fallocate(
                fd,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                aligned as libc::off_t,
                len as libc::off_t,
            )
        };
        if rc != 0 {
            // SAFETY: as above.
            unsafe { self.slice_mut(aligned, len).fill(0) };
            return self.map.flush_range(aligned, len).map_err(io_err(&self.path));
        }
        // SAFETY: as above.
        let rc = unsafe { libc::posix_fallocate(fd, aligned as libc::off_t, len as libc::off_t) };
        match rc {
            0 => {}
            libc::ENOSPC => return Err(StoreError::NoSpace(self.path.clone())),
            e => return Err(StoreError::Io { path: self.path.clone(), source: std::io::Error::from_raw_os_error(e) }),
        }
        self.file.sync_data().map_err(io_err(&self.path))
    }

    /// Last modification time of the file in ms since the epoch (writes through the mapping
    /// update it), or `None` if it cannot be read.
    pub fn last_modified_ms(&self) -> Option<i64> {
        let m = self.file.metadata().ok()?.modified().ok()?;
        let d = m.duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(d.as_millis() as i64)
    }

    /// Removes the file from disk; the mapping lives on until the last reference is dropped.
    pub fn destroy(&self) -> Result<()> {
        if !self.destroyed.swap(true, Ordering::AcqRel) {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&self.path)(e)),
            }
        }
        Ok(())
    }
}

struct MapSlice {
    file: Arc<MappedFile>,
    pos: usize,
    len: usize,
}

impl AsRef<[u8]> for MapSlice {
    fn as_ref(&self) -> &[u8] {
        self.file.slice(self.pos, self.len)
    }
}
