//! The seam for a commitlog backed by a replicated log (Apache's `DLedgerCommitLog`): the store's
//! records live in the bodies of the log's entries, in the log's own data files.
//!
//! The store knows neither the network nor the entry format: a [`ReplicatedLog`] hands it the
//! data files (a [`MappedFileQueue`] the store reads records from, by the position of each
//! record's first byte), appends entries for it and tells it what lies at a position
//! ([`LogStep`]). A record's PHYSICALOFFSET (and so its offset msgId and the consume-queue and
//! index entries that point at it) is the position of its bytes in those data files.
//!
//! With a replicated log:
//! - a put encodes its records under the put lock (queue offsets assigned there), submits them as
//!   one entry in that order, and is answered once the log committed the entry (a majority has
//!   it); the position is patched into each record by the log's append hook;
//! - the dispatcher follows the entries up to the committed index only, skipping empty (no-op)
//!   entries and file-end fillers, so consume queues and index never point at what a new leader
//!   may still truncate;
//! - recovery cuts consume queues and index beyond the end of the data and re-dispatches from the
//!   consume queues' end (the start of the data if that is not an entry);
//! - the store neither flushes nor preallocates the log's files: the log owns them; the store's
//!   cleanup asks the log to delete its leading files ([`ReplicatedLog::delete_files`]), then cuts
//!   consume queues and index behind the new minimum as after a plain commitlog cleanup.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use super::mapped_file_queue::MappedFileQueue;

/// Patches an entry's body once it is placed: called with the position of the body's first byte
/// in the data files and the body about to be written.
pub type BodyHook = Box<dyn FnOnce(i64, &mut [u8]) + Send>;

/// Why a replicated append was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaAppendError {
    /// This node cannot append (not the leader, or stopping): nothing was appended.
    NotLeader,
    /// Leadership changed before the entry committed: it may or may not survive.
    LeaderChanged,
    /// No majority in time: the entry stays in the log and may still commit.
    Timeout,
    /// The log is shut down or failed.
    Unavailable(String),
}

/// Resolves with the position of the entry's body once the entry is committed.
pub type AppendWait = Pin<Box<dyn Future<Output = Result<i64, ReplicaAppendError>> + Send>>;

/// What lies at a position of the data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStep {
    /// A committed entry: its index, where its body starts, how long the body is (0 for a no-op)
    /// and where the next entry starts.
    Entry {
        /// Log index.
        index: i64,
        /// Position of the body's first byte.
        body_pos: i64,
        /// Body length.
        body_len: usize,
        /// Position of the next entry.
        next: i64,
    },
    /// A file-end filler: continue at `next`.
    Skip {
        /// Where the next entry starts.
        next: i64,
    },
    /// Nothing committed there yet.
    Wait,
    /// Not an entry boundary (or the entry is damaged).
    Invalid,
}

/// Which leading data files a cleanup run may delete ([`ReplicatedLog::delete_files`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaCleanup {
    /// Most files deleted in this run (`deleteFileBatchMax`).
    pub max: usize,
    /// Only files wholly below this data position (the store's dispatched position).
    pub below: u64,
    /// A file expires this long after its last modification, in ms.
    pub reserved_ms: i64,
    /// Now, in ms since the epoch.
    pub now_ms: i64,
    /// Delete files whether or not they expired.
    pub at_once: bool,
}

/// A replicated log the store's commitlog lives in.
pub trait ReplicatedLog: Send + Sync {
    /// The log's data files (shared, read-only for the store).
    fn data(&self) -> Arc<MappedFileQueue>;
    /// Appends `body` as the next entry, in call order (the caller holds the put lock), or
    /// refuses at once. The returned future resolves when the entry is committed.
    fn submit(&self, body: Bytes, hook: BodyHook) -> Result<AppendWait, ReplicaAppendError>;
    /// What lies at data position `pos`, as far as committed.
    fn step(&self, pos: i64) -> LogStep;
    /// The committed index now.
    fn committed_index(&self) -> i64;
    /// Deletes the log's leading data files as `req` allows: oldest first, whole files below
    /// both the committed entries and `req.below`, never the last; the log's begin moves to the
    /// new first entry. Blocking. Returns the deleted files. The default deletes nothing.
    fn delete_files(&self, req: ReplicaCleanup) -> Result<Vec<PathBuf>, String> {
        let _ = req;
        Ok(Vec::new())
    }
}

/// Where PHYSICALOFFSET sits in a commitlog record (message-format.md §1).
pub const PHYSICAL_OFFSET_POS: usize = 28;

/// Writes `body_pos + start` into the PHYSICALOFFSET of each record of a body starting at the
/// given offsets.
pub fn patch_physical_offsets(body_pos: i64, body: &mut [u8], starts: &[usize]) {
    for &s in starts {
        if let Some(dst) = body.get_mut(s + PHYSICAL_OFFSET_POS..s + PHYSICAL_OFFSET_POS + 8) {
            dst.copy_from_slice(&(body_pos + s as i64).to_be_bytes());
        }
    }
}
