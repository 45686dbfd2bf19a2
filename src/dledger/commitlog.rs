//! The broker's commitlog on the DLedger log (Apache's `DLedgerCommitLog`): a
//! [`ReplicatedLog`] over a running [`DLedgerServer`], so that a [`crate::store::MessageStore`]
//! opened with [`crate::store::MessageStore::open_replicated`] keeps its records in entry bodies
//! (PHYSICALOFFSET = `entry.pos + 48`) and dispatches committed entries only.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::entry::{self, BLANK_MAGIC, BODY_OFFSET, MAGIC};
use super::server::{DLedgerError, DLedgerServer};
use crate::store::mapped_file_queue::MappedFileQueue;
use crate::store::replicated::{AppendWait, BodyHook, LogStep, ReplicaAppendError, ReplicaCleanup, ReplicatedLog};

/// A DLedger node as the store's commitlog.
pub struct DLedgerCommitLog {
    server: Arc<DLedgerServer>,
}

impl DLedgerCommitLog {
    /// Wraps a started node.
    pub fn new(server: Arc<DLedgerServer>) -> Self {
        DLedgerCommitLog { server }
    }
}

fn map_err(e: DLedgerError) -> ReplicaAppendError {
    match e {
        DLedgerError::NotLeader { .. } => ReplicaAppendError::NotLeader,
        DLedgerError::LeaderChanged { .. } => ReplicaAppendError::LeaderChanged,
        DLedgerError::Timeout { .. } => ReplicaAppendError::Timeout,
        other => ReplicaAppendError::Unavailable(other.to_string()),
    }
}

/// What lies at `pos` of `data` given the committed index (see [`LogStep`]).
pub fn step_at(data: &MappedFileQueue, pos: i64, committed: i64) -> LogStep {
    if pos < 0 {
        return LogStep::Invalid;
    }
    let Some(f) = data.find(pos as u64) else {
        return if pos as u64 >= data.min_offset() { LogStep::Wait } else { LogStep::Invalid };
    };
    let rel = (pos as u64 - f.from_offset()) as usize;
    let size = f.size();
    let wrote = f.wrote_pos();
    let file_end = (f.from_offset() + size as u64) as i64;
    if rel + 4 > size {
        return LogStep::Skip { next: file_end };
    }
    if rel + 4 > wrote {
        return LogStep::Wait;
    }
    let magic = i32::from_be_bytes(f.slice(rel, 4).try_into().unwrap_or([0; 4]));
    if magic == BLANK_MAGIC {
        return LogStep::Skip { next: file_end };
    }
    if rel + BODY_OFFSET > wrote {
        return LogStep::Wait;
    }
    let Some(h) = entry::decode_header(f.slice(rel, BODY_OFFSET)) else {
        return LogStep::Invalid;
    };
    if h.magic != MAGIC || h.pos != pos || h.body_len < 0 || h.size as usize != BODY_OFFSET + h.body_len as usize {
        return LogStep::Invalid;
    }
    if h.index > committed || rel + h.size as usize > wrote {
        return LogStep::Wait;
    }
    LogStep::Entry {
        index: h.index,
        body_pos: pos + BODY_OFFSET as i64,
        body_len: h.body_len as usize,
        next: pos + h.size as i64,
    }
}

impl ReplicatedLog for DLedgerCommitLog {
    fn data(&self) -> Arc<MappedFileQueue> {
        self.server.data_files().clone()
    }

    fn submit(&self, body: Bytes, hook: BodyHook) -> Result<AppendWait, ReplicaAppendError> {
        let hook: super::server::AppendHook = Box::new(move |pos, b| hook(pos + BODY_OFFSET as i64, b));
        let rx = self.server.submit(body, Some(hook)).map_err(map_err)?;
        // The node fails a waiting append after maxWaitAckTimeMs; this bound only guards a node
        // that stopped answering.
        let bound = self.server.max_wait_ack() + std::time::Duration::from_secs(1);
        Ok(Box::pin(async move {
            match tokio::time::timeout(bound, rx).await {
                Ok(Ok(Ok(a))) => Ok(a.pos + BODY_OFFSET as i64),
                Ok(Ok(Err(e))) => Err(map_err(e)),
                Ok(Err(_)) => Err(ReplicaAppendError::Unavailable("the DLedger node stopped".into())),
                Err(_) => Err(ReplicaAppendError::Timeout),
            }
        }))
    }

    fn step(&self, pos: i64) -> LogStep {
        step_at(self.server.data_files(), pos, self.committed_index())
    }

    fn committed_index(&self) -> i64 {
        self.server.committed_index()
    }

    fn delete_files(&self, req: ReplicaCleanup) -> Result<Vec<PathBuf>, String> {
        self.server.delete_files(req).map_err(|e| e.to_string())
    }
}
