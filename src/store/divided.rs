//! A plain commitlog kept below the replicated log (Apache's `DLedgerCommitLog` with
//! `dividedCommitlogOffset`): the upgrade path of a store from a plain commitlog to DLedger.
//!
//! At the first start on a replicated log, a store directory whose `commitlog/` holds files and
//! whose replicated data directory holds none is recovered as a plain store (normal or abnormal
//! recovery, consume queues and index rebuilt as needed), then sealed: the rest of its last file
//! becomes a BLANK and the replicated data's first file is created at the end of that file, the
//! divided offset ([`MessageStore::prepare_divided`]; this must run before the log's node starts,
//! so that its first entry lands there). From then on the old files are read-only: records below
//! the divided offset are read from them (pull by queue, query by offset msgId, index lookups),
//! records from it on from the replicated data; consume queues, queue offsets, index and consumer
//! offsets simply continue. Cleanup deletes the old files first (expired, or at once, the last one
//! too) and the replicated log's files only once they are all gone.

use std::path::Path;
use std::sync::Arc;

use super::error::{io_err, Result, StoreError};
use super::mapped_file_queue::MappedFileQueue;
use super::{MessageStore, MessageStoreConfig};

/// Whether `dir` holds commitlog files (20-digit names); a missing directory holds none.
pub fn has_mapped_files(dir: &Path) -> Result<bool> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for e in rd {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name();
        if name.to_str().is_some_and(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit())) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The plain commitlog of `config` kept below a replicated log whose data files are `data`, and
/// the divided offset (the end of its last file); `None` if there is no plain commitlog. Fails if
/// the replicated data starts below the divided offset (the two would overlap) or is empty (the
/// store was not prepared with [`MessageStore::prepare_divided`]).
pub(super) fn open_old(
    config: &MessageStoreConfig,
    data: &MappedFileQueue,
) -> Result<Option<(Arc<MappedFileQueue>, i64)>> {
    let dir = config.commit_log_dir();
    if dir == data.dir() || !has_mapped_files(&dir)? {
        return Ok(None);
    }
    let old = Arc::new(MappedFileQueue::load(&dir, config.mapped_file_size_commit_log)?);
    let Some(last) = old.last() else { return Ok(None) };
    let divided = last.from_offset() + old.file_size();
    match data.first() {
        None => {
            return Err(StoreError::Corrupt(format!(
                "{} holds a plain commitlog but the replicated data in {} has no file: its first file must \
                 start at {divided} (prepare_divided)",
                dir.display(),
                data.dir().display()
            )))
        }
        Some(f) if f.from_offset() < divided => {
            return Err(StoreError::Corrupt(format!(
                "the plain commitlog in {} ends at {divided} but the replicated data in {} starts at {}: they \
                 overlap (move the plain commitlog away, or the replicated data)",
                dir.display(),
                data.dir().display(),
                f.from_offset()
            )))
        }
        Some(f) if f.from_offset() > divided => tracing::warn!(
            divided,
            data_start = f.from_offset(),
            "the replicated data starts after the end of the plain commitlog: records in between are gone"
        ),
        Some(_) => {}
    }
    tracing::info!(
        dir = %dir.display(),
        min = old.min_offset(),
        divided,
        "plain commitlog kept read-only below the divided offset"
    );
    Ok(Some((old, divided as i64)))
}

impl MessageStore {
    /// Prepares a store directory for its first start on a replicated log whose data files go to
    /// `data_dir` (`data_file_size` each, `mappedFileSizeCommitLog`): if the store has a plain
    /// commitlog and the replicated data no file yet, the plain store is opened (recovered,
    /// consume queues and index completed), its commitlog sealed (a BLANK closes its last file),
    /// and shut down cleanly; then the replicated data's first file is created at the end of that
    /// file. Returns the divided offset if the store has a plain commitlog. Blocking; run it
    /// before the replicated log's node starts.
    pub fn prepare_divided(config: &MessageStoreConfig, data_dir: &Path, data_file_size: u64) -> Result<Option<i64>> {
        let dir = config.commit_log_dir();
        if dir == data_dir || !has_mapped_files(&dir)? {
            return Ok(None);
        }
        if data_file_size != config.mapped_file_size_commit_log {
            return Err(StoreError::InvalidArgument(format!(
                "replicated data files of {data_file_size} bytes cannot continue a commitlog of {}-byte files",
                config.mapped_file_size_commit_log
            )));
        }
        if has_mapped_files(data_dir)? {
            // Prepared before: the old files are closed and the data continues after them.
            let old = MappedFileQueue::load(&dir, config.mapped_file_size_commit_log)?;
            return Ok(old.last().map(|l| (l.from_offset() + old.file_size()) as i64));
        }
        tracing::info!(
            dir = %dir.display(),
            data_dir = %data_dir.display(),
            "first start on a replicated log over a plain commitlog: recovering and sealing the plain commitlog"
        );
        let store = MessageStore::open(config.clone())?;
        let sealed = store.shared.commitlog.seal();
        // Shutdown drains the dispatcher past the BLANK, flushes and removes the abort file.
        store.shutdown()?;
        drop(store);
        let Some(divided) = sealed else { return Ok(None) };
        // Files the plain store allocated ahead of time lie at or after the divided offset: gone.
        for e in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            let name = e.file_name();
            let Some(off) = name.to_str().filter(|n| n.len() == 20).and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            if off >= divided {
                let p = e.path();
                tracing::info!(path = %p.display(), "deleting a commitlog file allocated ahead of time");
                std::fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
        let data = MappedFileQueue::load(data_dir, data_file_size)?;
        data.create_file(divided)?;
        data.flush(0)?;
        if let Ok(d) = std::fs::File::open(data_dir) {
            let _ = d.sync_all();
        }
        tracing::info!(divided, "plain commitlog sealed: the replicated data starts at the divided offset");
        Ok(Some(divided as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::super::CommitLog;
    use super::*;

    fn queue(dir: &Path, from: u64, bytes: &[u8]) -> Arc<MappedFileQueue> {
        let q = Arc::new(MappedFileQueue::load(dir, 4096).unwrap());
        let f = q.create_file(from).unwrap();
        // SAFETY: the test is the only writer, writing before publishing the position.
        unsafe { f.slice_mut(0, bytes.len()) }.copy_from_slice(bytes);
        f.set_wrote_pos(bytes.len());
        q
    }

    #[test]
    fn reads_below_the_divided_offset_come_from_the_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let old = queue(&dir.path().join("commitlog"), 4096, b"old records");
        let data = queue(&dir.path().join("data"), 8192, b"new entries");
        let cl = CommitLog::over_divided(data, old.clone(), 8192);
        assert_eq!(cl.divided_offset(), 8192);
        assert_eq!(cl.min_offset(), 4096, "the old files come first");
        assert_eq!(cl.max_offset(), 8192 + 11);
        assert_eq!(&cl.read(4096, 3).unwrap()[..], b"old");
        assert_eq!(&cl.read(4100, 7).unwrap()[..], b"records");
        assert_eq!(&cl.read(8192, 3).unwrap()[..], b"new");
        assert_eq!(&cl.read_from(4100, 100).unwrap()[..], b"records");
        assert_eq!(&cl.read_from(8196, 100).unwrap()[..], b"entries");
        // Beyond what either part holds: nothing.
        assert!(cl.read(4100, 100).is_none());
        assert!(cl.read(0, 3).is_none());
        assert!(cl.read(8192 + 11, 1).is_none());
        // Once the old files are deleted (the last one too), the data's start is the minimum.
        assert_eq!(old.take_leading_all(10, |_| true).len(), 1);
        assert!(cl.old_files().is_none());
        assert_eq!(cl.min_offset(), 8192);
        assert!(cl.read(4096, 3).is_none());
    }

    #[test]
    fn a_missing_or_foreign_directory_has_no_commitlog_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_mapped_files(&dir.path().join("absent")).unwrap());
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        assert!(!has_mapped_files(dir.path()).unwrap());
        std::fs::write(dir.path().join("00000000000000000000"), b"x").unwrap();
        assert!(has_mapped_files(dir.path()).unwrap());
    }
}
