//! The 4096-byte `checkpoint` file (spec §10).

use std::path::Path;

use parking_lot::Mutex;

use super::error::Result;
use super::mapped_file::MappedFile;

/// Size of the checkpoint file.
pub const CHECKPOINT_FILE_SIZE: usize = 4096;

/// Values held in the checkpoint file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointValues {
    /// Store time of the last message flushed in the commitlog.
    pub physic_msg_timestamp: i64,
    /// Store time of the last message flushed into consume queues.
    pub logics_msg_timestamp: i64,
    /// Store time of the last message in a flushed index file.
    pub index_msg_timestamp: i64,
    /// HA / controller master flushed offset.
    pub master_flushed_offset: i64,
    /// HA / controller confirm offset.
    pub confirm_phy_offset: i64,
}

impl CheckpointValues {
    /// `max(0, min(physic, logics) - 3000)`.
    pub fn min_timestamp(&self) -> i64 {
        (self.physic_msg_timestamp.min(self.logics_msg_timestamp) - 3000).max(0)
    }
    /// `min(min_timestamp(), index)`.
    pub fn min_timestamp_index(&self) -> i64 {
        self.min_timestamp().min(self.index_msg_timestamp)
    }
}

/// The mapped checkpoint file.
pub struct Checkpoint {
    file: std::sync::Arc<MappedFile>,
    lock: Mutex<()>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint").field("values", &self.get()).finish()
    }
}

impl Checkpoint {
    /// Opens or creates the checkpoint at `path`.
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let file = MappedFile::create(path, 0, CHECKPOINT_FILE_SIZE)?;
        Ok(Checkpoint { file, lock: Mutex::new(()) })
    }

    /// Current values.
    pub fn get(&self) -> CheckpointValues {
        let _g = self.lock.lock();
        let m = self.file.slice(0, 40);
        let r = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&m[at..at + 8]);
            i64::from_be_bytes(b)
        };
        CheckpointValues {
            physic_msg_timestamp: r(0),
            logics_msg_timestamp: r(8),
            index_msg_timestamp: r(16),
            master_flushed_offset: r(24),
            confirm_phy_offset: r(32),
        }
    }

    fn put(&self, at: usize, v: i64) {
        let _g = self.lock.lock();
        // SAFETY: writes are serialised by `lock`; readers take the same lock.
        unsafe { self.file.slice_mut(at, 8) }.copy_from_slice(&v.to_be_bytes());
    }
    /// Sets physicMsgTimestamp.
    pub fn set_physic_msg_timestamp(&self, v: i64) {
        self.put(0, v)
    }
    /// Sets logicsMsgTimestamp.
    pub fn set_logics_msg_timestamp(&self, v: i64) {
        self.put(8, v)
    }
    /// Sets indexMsgTimestamp.
    pub fn set_index_msg_timestamp(&self, v: i64) {
        self.put(16, v)
    }
    /// Sets masterFlushedOffset.
    pub fn set_master_flushed_offset(&self, v: i64) {
        self.put(24, v)
    }
    /// Sets confirmPhyOffset.
    pub fn set_confirm_phy_offset(&self, v: i64) {
        self.put(32, v)
    }

    /// msyncs the checkpoint page (no lock held during the msync).
    pub fn flush(&self) -> Result<()> {
        self.file.set_flushed_pos(0);
        self.file.set_wrote_pos(CHECKPOINT_FILE_SIZE);
        self.file.flush(0).map(|_| ())
    }
}
