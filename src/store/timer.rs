//! The timer store's files (RIP-43, Apache's `TimerWheel`, `TimerLog`, `TimerCheckpoint`), in
//! Apache's byte layout so that a store directory moves between the two (all integers big-endian):
//!
//! - `<root>/timerwheel`: `2 * SLOTS_TOTAL` slots of 32 bytes: `long timeMs / precision`,
//!   `long firstPos`, `long lastPos` (timerlog offsets), `int num`, `int magic`. A slot whose stored
//!   time is not the one asked for is empty (the wheel is reused every `2 * SLOTS_TOTAL` steps).
//! - `<root>/timerlog/`: mapped files named by offset; 52-byte units `int size`, `long prevPos`
//!   (the previous unit of the same slot, -1 none), `int magic`, `long writeTimeMs`, `int delay`
//!   (target - writeTimeMs), `long offsetPy`, `int sizePy` (the wheel-topic message in the
//!   commitlog), `int hashCode(realTopic)`, `long 0`. A file's tail is a 16-byte filler
//!   `int remaining`, `long 0`, `int BLANK_MAGIC_CODE`.
//! - `<root>/config/timercheck`: longs at 0 lastReadTimeMs, 8 lastTimerLogFlushPos, 16
//!   lastTimerQueueOffset, 24 masterTimerQueueOffset, 32/40/48 data version.
//!
//! This module knows files only: which messages go where is the broker's timer service.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{io_err, Result, StoreError};
use super::mapped_file_queue::MappedFileQueue;

/// The system topic timer messages wait in (`rmq_sys_wheel_timer`), queue 0.
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
/// Slots of one wheel turn: 7 days of 1 s steps, fixed whatever the precision (Apache).
pub const SLOTS_TOTAL: i64 = 7 * 86_400;
/// Size of one slot.
pub const SLOT_SIZE: usize = 32;
/// Steps kept free behind the read position when an old checkpoint is recovered (Apache).
pub const BLANK_SLOTS: i64 = 60;
/// Size of one timerlog unit.
pub const UNIT_SIZE: usize = 52;
/// Room a timerlog file keeps for its end filler.
pub const MIN_BLANK_LEN: usize = 16;
/// Magic of a timerlog file's end filler (Java `0xBBCCDDEE ^ 1880681586 + 8`).
pub const BLANK_MAGIC_CODE: i32 = (0xBBCC_DDEE_u32 as i32) ^ 1_880_681_594;
/// A unit to deliver.
pub const MAGIC_DEFAULT: i32 = 1;
/// A unit parked before its time: when it fires it is put into the wheel topic again.
pub const MAGIC_ROLL: i32 = 1 << 1;
/// A delete marker.
pub const MAGIC_DELETE: i32 = 1 << 2;
/// Length of the checkpoint file (Apache maps one OS page).
pub const CHECKPOINT_FILE_SIZE: u64 = 4096;

/// Length of the wheel file.
pub fn wheel_len() -> usize {
    (SLOTS_TOTAL as usize) * 2 * SLOT_SIZE
}

/// The slot index of `time_ms`: `(time / precision) mod (2 * SLOTS_TOTAL)`.
pub fn slot_index(time_ms: i64, precision_ms: i64) -> usize {
    (time_ms.div_euclid(precision_ms.max(1))).rem_euclid(2 * SLOTS_TOTAL) as usize
}

/// Apache's `isMagicOK`: only the low four bits may be set.
pub fn is_magic_ok(magic: i32) -> bool {
    (magic | 0xF) == 0xF
}

/// One wheel slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The slot's time (ms, a multiple of the precision); -1 for an empty slot.
    pub time_ms: i64,
    /// First timerlog unit of the slot.
    pub first_pos: i64,
    /// Last timerlog unit of the slot (the chain starts here and goes back by `prevPos`).
    pub last_pos: i64,
    /// Messages in the slot (delete markers count -1).
    pub num: i32,
    /// Unused by Apache; kept.
    pub magic: i32,
}

impl Slot {
    /// What an empty slot reads as.
    pub const EMPTY: Slot = Slot { time_ms: -1, first_pos: -1, last_pos: -1, num: 0, magic: 0 };

    /// The 32 bytes of the slot (time stored divided by the precision).
    pub fn encode(&self, precision_ms: i64) -> [u8; SLOT_SIZE] {
        let mut b = [0u8; SLOT_SIZE];
        b[0..8].copy_from_slice(&(self.time_ms / precision_ms.max(1)).to_be_bytes());
        b[8..16].copy_from_slice(&self.first_pos.to_be_bytes());
        b[16..24].copy_from_slice(&self.last_pos.to_be_bytes());
        b[24..28].copy_from_slice(&self.num.to_be_bytes());
        b[28..32].copy_from_slice(&self.magic.to_be_bytes());
        b
    }

    /// Reads a slot (time multiplied back by the precision).
    pub fn decode(b: &[u8; SLOT_SIZE], precision_ms: i64) -> Slot {
        Slot {
            time_ms: be_i64(&b[0..8]).wrapping_mul(precision_ms),
            first_pos: be_i64(&b[8..16]),
            last_pos: be_i64(&b[16..24]),
            num: be_i32(&b[24..28]),
            magic: be_i32(&b[28..32]),
        }
    }
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8]) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    i32::from_be_bytes(a)
}

/// One timerlog unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerUnit {
    /// Always [`UNIT_SIZE`] for a valid unit.
    pub size: i32,
    /// The previous unit of the same slot, -1 for none.
    pub prev_pos: i64,
    /// [`MAGIC_DEFAULT`], with [`MAGIC_ROLL`] / [`MAGIC_DELETE`] bits.
    pub magic: i32,
    /// The wheel's write time when the unit was written (ms).
    pub write_time_ms: i64,
    /// Slot time minus write time.
    pub delay: i32,
    /// Commitlog offset of the message in the wheel topic.
    pub offset_py: i64,
    /// Its size.
    pub size_py: i32,
    /// Java hashCode of the real topic (Apache's metrics use it).
    pub topic_hash: i32,
    /// Reserved, 0.
    pub reserved: i64,
}

impl TimerUnit {
    /// The slot time this unit belongs to.
    pub fn delayed_time(&self) -> i64 {
        self.write_time_ms + self.delay as i64
    }

    /// The 52 bytes of the unit.
    pub fn encode(&self) -> [u8; UNIT_SIZE] {
        let mut b = [0u8; UNIT_SIZE];
        b[0..4].copy_from_slice(&self.size.to_be_bytes());
        b[4..12].copy_from_slice(&self.prev_pos.to_be_bytes());
        b[12..16].copy_from_slice(&self.magic.to_be_bytes());
        b[16..24].copy_from_slice(&self.write_time_ms.to_be_bytes());
        b[24..28].copy_from_slice(&self.delay.to_be_bytes());
        b[28..36].copy_from_slice(&self.offset_py.to_be_bytes());
        b[36..40].copy_from_slice(&self.size_py.to_be_bytes());
        b[40..44].copy_from_slice(&self.topic_hash.to_be_bytes());
        b[44..52].copy_from_slice(&self.reserved.to_be_bytes());
        b
    }

    /// Reads a unit from at least [`UNIT_SIZE`] bytes (`None` if shorter).
    pub fn decode(b: &[u8]) -> Option<TimerUnit> {
        if b.len() < UNIT_SIZE {
            return None;
        }
        Some(TimerUnit {
            size: be_i32(&b[0..4]),
            prev_pos: be_i64(&b[4..12]),
            magic: be_i32(&b[12..16]),
            write_time_ms: be_i64(&b[16..24]),
            delay: be_i32(&b[24..28]),
            offset_py: be_i64(&b[28..36]),
            size_py: be_i32(&b[36..40]),
            topic_hash: be_i32(&b[40..44]),
            reserved: be_i64(&b[44..52]),
        })
    }

    /// A well-formed unit (size and magic as Apache checks them).
    pub fn is_valid(&self) -> bool {
        self.size as usize == UNIT_SIZE && is_magic_ok(self.magic)
    }
}

/// The wheel: kept in memory (as Apache does), written back at [`TimerWheel::flush`] slot by
/// slot (only the slots that changed), so a full disk is an error rather than a fault.
pub struct TimerWheel {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    dirty: Vec<u64>,
    precision_ms: i64,
}

impl TimerWheel {
    /// Opens `path` (created at the wheel's length if missing or empty); any other length is
    /// refused, as Apache does.
    pub fn open(path: &Path, precision_ms: i64) -> Result<TimerWheel> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let want = wheel_len() as u64;
        let mut buf = vec![0u8; wheel_len()];
        if len == 0 {
            file.set_len(want).map_err(io_err(path))?;
        } else if len != want {
            return Err(StoreError::WrongFileSize { path: path.to_path_buf(), actual: len, expected: want });
        } else {
            file.read_exact_at(&mut buf, 0).map_err(io_err(path))?;
        }
        let words = (2 * SLOTS_TOTAL as usize).div_ceil(64);
        Ok(TimerWheel { path: path.to_path_buf(), file, buf, dirty: vec![0; words], precision_ms: precision_ms.max(1) })
    }

    /// The precision the wheel was opened with.
    pub fn precision_ms(&self) -> i64 {
        self.precision_ms
    }

    fn slot_bytes(&self, idx: usize) -> &[u8; SLOT_SIZE] {
        let at = idx * SLOT_SIZE;
        // The index is below 2 * SLOTS_TOTAL by construction, so the range is inside `buf`.
        self.buf[at..at + SLOT_SIZE].try_into().unwrap_or(&[0u8; SLOT_SIZE])
    }

    /// The slot stored where `time_ms` falls, whatever time it holds.
    pub fn raw_slot(&self, time_ms: i64) -> Slot {
        Slot::decode(self.slot_bytes(slot_index(time_ms, self.precision_ms)), self.precision_ms)
    }

    /// The slot of `time_ms`, or [`Slot::EMPTY`] if the stored slot is of another turn.
    pub fn slot(&self, time_ms: i64) -> Slot {
        let s = self.raw_slot(time_ms);
        if s.time_ms != time_ms.div_euclid(self.precision_ms) * self.precision_ms {
            return Slot::EMPTY;
        }
        s
    }

    /// Writes the slot of `time_ms`.
    pub fn put_slot(&mut self, time_ms: i64, first_pos: i64, last_pos: i64, num: i32, magic: i32) {
        let idx = slot_index(time_ms, self.precision_ms);
        let t = time_ms.div_euclid(self.precision_ms) * self.precision_ms;
        let b = Slot { time_ms: t, first_pos, last_pos, num, magic }.encode(self.precision_ms);
        self.buf[idx * SLOT_SIZE..(idx + 1) * SLOT_SIZE].copy_from_slice(&b);
        self.dirty[idx / 64] |= 1u64 << (idx % 64);
    }

    /// Recovery (Apache's `reviseSlot` with force): the slot of `time_ms` ends at `last_pos`; a
    /// slot of another turn is replaced by one holding just that unit.
    pub fn revise_last(&mut self, time_ms: i64, last_pos: i64) {
        let s = self.slot(time_ms);
        if s == Slot::EMPTY {
            self.put_slot(time_ms, last_pos, last_pos, 1, 0);
        } else {
            self.put_slot(time_ms, s.first_pos, last_pos, s.num, s.magic);
        }
    }

    /// The smallest `firstPos` among the slots of one turn from `from_ms` whose `lastPos` is beyond
    /// `max_offset` (i64::MAX if none): where the wheel points past the recovered timerlog.
    pub fn check_phy_pos(&self, from_ms: i64, max_offset: i64) -> i64 {
        let mut min_first = i64::MAX;
        let p = self.precision_ms;
        for i in 0..2 * SLOTS_TOTAL {
            let t = (from_ms.div_euclid(p) + i) * p;
            let s = self.slot(t);
            if s != Slot::EMPTY && s.last_pos > max_offset && s.first_pos < min_first {
                min_first = s.first_pos;
            }
        }
        min_first
    }

    /// Writes the changed slots back (runs of neighbours in one write) and syncs the file.
    pub fn flush(&mut self) -> Result<()> {
        let total = 2 * SLOTS_TOTAL as usize;
        let mut idx = 0;
        let mut wrote = false;
        while idx < total {
            if self.dirty[idx / 64] == 0 {
                idx = (idx / 64 + 1) * 64;
                continue;
            }
            if self.dirty[idx / 64] & (1u64 << (idx % 64)) == 0 {
                idx += 1;
                continue;
            }
            let start = idx;
            while idx < total && self.dirty[idx / 64] & (1u64 << (idx % 64)) != 0 {
                idx += 1;
            }
            let (a, b) = (start * SLOT_SIZE, idx * SLOT_SIZE);
            self.file.write_all_at(&self.buf[a..b], a as u64).map_err(io_err(&self.path))?;
            wrote = true;
        }
        self.dirty.iter_mut().for_each(|w| *w = 0);
        if wrote {
            self.file.sync_data().map_err(io_err(&self.path))?;
        }
        Ok(())
    }
}

/// The timerlog: units appended to a queue of mapped files.
pub struct TimerLog {
    files: MappedFileQueue,
}

impl TimerLog {
    /// Loads `dir` (created if missing) with files of `file_size` bytes.
    pub fn load(dir: &Path, file_size: u64) -> Result<TimerLog> {
        if file_size < (UNIT_SIZE + MIN_BLANK_LEN) as u64 {
            return Err(StoreError::InvalidArgument(format!("timerlog file size {file_size} is too small")));
        }
        Ok(TimerLog { files: MappedFileQueue::load(dir, file_size)? })
    }

    /// The file queue.
    pub fn files(&self) -> &MappedFileQueue {
        &self.files
    }

    /// Where the next unit goes.
    pub fn max_offset(&self) -> i64 {
        self.files.max_offset() as i64
    }

    /// Appends one unit (a file without room for it gets its end filler first); returns its
    /// offset.
    pub fn append(&self, unit: &[u8; UNIT_SIZE]) -> Result<i64> {
        let mut f = self.files.last_or_create(0)?;
        if f.remaining() < UNIT_SIZE + MIN_BLANK_LEN {
            let wrote = f.wrote_pos();
            let rem = f.remaining();
            let mut blank = [0u8; MIN_BLANK_LEN];
            blank[0..4].copy_from_slice(&(rem as i32).to_be_bytes());
            blank[12..16].copy_from_slice(&BLANK_MAGIC_CODE.to_be_bytes());
            if rem >= MIN_BLANK_LEN {
                // SAFETY: single writer (the timer service holds the log), beyond the write position.
                unsafe { f.slice_mut(wrote, MIN_BLANK_LEN).copy_from_slice(&blank) };
            }
            f.set_wrote_pos(f.size());
            f = self.files.last_or_create(0)?;
        }
        let wrote = f.wrote_pos();
        // SAFETY: as above.
        unsafe { f.slice_mut(wrote, UNIT_SIZE).copy_from_slice(unit) };
        f.set_wrote_pos(wrote + UNIT_SIZE);
        Ok(f.from_offset() as i64 + wrote as i64)
    }

    /// The unit at `pos`, if it lies below the write position.
    pub fn read(&self, pos: i64) -> Option<TimerUnit> {
        if pos < 0 {
            return None;
        }
        let f = self.files.find(pos as u64)?;
        let at = (pos as u64 - f.from_offset()) as usize;
        if at + UNIT_SIZE > f.wrote_pos() {
            return None;
        }
        TimerUnit::decode(f.slice(at, UNIT_SIZE))
    }

    /// Offset in a full file of its last unit (Apache's `getOffsetForLastUnit`).
    pub fn last_unit_offset(&self) -> usize {
        let size = self.files.file_size() as usize;
        ((size - MIN_BLANK_LEN) / UNIT_SIZE - 1) * UNIT_SIZE
    }

    /// Deletes leading files (never the current one) whose last unit refers to a commitlog offset
    /// below `min_py`: units are written in commitlog order, so none of their messages is left.
    /// Returns how many files went.
    pub fn delete_expired(&self, min_py: i64) -> Result<usize> {
        let last = self.last_unit_offset();
        let gone = self.files.take_leading(16, |f| {
            TimerUnit::decode(f.slice(last, UNIT_SIZE)).is_some_and(|u| u.is_valid() && u.offset_py < min_py)
        });
        for f in &gone {
            f.destroy()?;
        }
        Ok(gone.len())
    }

    /// Flushes everything written; returns the flushed offset.
    pub fn flush(&self) -> Result<u64> {
        self.files.flush(0)
    }

    /// Apache's `recoverAndRevise`: scans the units from the start of the file holding `begin`,
    /// calling `revise(delayed time, offset)` for each valid unit, and returns where the valid
    /// units end. With `truncate`, the first invalid unit ends the log (the rest is cut and zeroed).
    pub fn recover(&self, begin: i64, truncate: bool, mut revise: impl FnMut(i64, i64)) -> Result<i64> {
        let files = self.files.files();
        if files.is_empty() {
            return Ok(0);
        }
        let mut index = files.iter().rposition(|f| begin.max(0) as u64 >= f.from_offset()).unwrap_or(0);
        let mut end = files[index].from_offset() as i64;
        while index < files.len() {
            let f = &files[index];
            let limit = if truncate { f.size() } else { f.wrote_pos() };
            let mut pos = 0usize;
            let mut stop = false;
            while pos + UNIT_SIZE <= limit {
                let Some(u) = TimerUnit::decode(f.slice(pos, UNIT_SIZE)) else { break };
                if u.magic == BLANK_MAGIC_CODE {
                    break;
                }
                if !u.is_valid() {
                    stop = true;
                    break;
                }
                revise(u.delayed_time(), f.from_offset() as i64 + pos as i64);
                pos += UNIT_SIZE;
            }
            end = f.from_offset() as i64 + pos as i64;
            if stop {
                break;
            }
            index += 1;
        }
        if truncate {
            self.files.truncate_dirty(end as u64, true)?;
        }
        Ok(end)
    }
}

/// The values of `config/timercheck`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerCheckpointValues {
    /// The wheel's read position: slots before it are delivered.
    pub last_read_time_ms: i64,
    /// Timerlog offset flushed together with the wheel.
    pub last_timer_log_flush_pos: i64,
    /// Next offset of the wheel topic's queue to read.
    pub last_timer_queue_offset: i64,
    /// The same as the master knows it (a slave reads it from its master).
    pub master_timer_queue_offset: i64,
    /// Data version: state version.
    pub state_version: i64,
    /// Data version: timestamp.
    pub timestamp: i64,
    /// Data version: counter.
    pub counter: i64,
}

impl TimerCheckpointValues {
    /// The 56 bytes Apache writes.
    pub fn encode(&self) -> [u8; 56] {
        let mut b = [0u8; 56];
        let v = [
            self.last_read_time_ms,
            self.last_timer_log_flush_pos,
            self.last_timer_queue_offset,
            self.master_timer_queue_offset,
            self.state_version,
            self.timestamp,
            self.counter,
        ];
        for (i, x) in v.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&x.to_be_bytes());
        }
        b
    }

    /// Reads up to 56 bytes (missing trailing longs read as 0, as an old Apache file has no data
    /// version).
    pub fn decode(b: &[u8]) -> TimerCheckpointValues {
        let at = |i: usize| if b.len() >= i * 8 + 8 { be_i64(&b[i * 8..]) } else { 0 };
        TimerCheckpointValues {
            last_read_time_ms: at(0),
            last_timer_log_flush_pos: at(1),
            last_timer_queue_offset: at(2),
            master_timer_queue_offset: at(3),
            state_version: at(4),
            timestamp: at(5),
            counter: at(6),
        }
    }
}

/// `config/timercheck`.
pub struct TimerCheckpoint {
    path: PathBuf,
    file: File,
    /// Whether the file existed when opened.
    pub existed: bool,
}

impl TimerCheckpoint {
    /// Opens (or creates, one page long) the checkpoint file; returns it and its values.
    pub fn open(path: &Path) -> Result<(TimerCheckpoint, TimerCheckpointValues)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let existed = path.exists();
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        if len < CHECKPOINT_FILE_SIZE {
            file.set_len(CHECKPOINT_FILE_SIZE).map_err(io_err(path))?;
        }
        let mut b = [0u8; 56];
        file.read_exact_at(&mut b, 0).map_err(io_err(path))?;
        let values = if existed && len > 0 { TimerCheckpointValues::decode(&b) } else { Default::default() };
        Ok((TimerCheckpoint { path: path.to_path_buf(), file, existed: existed && len > 0 }, values))
    }

    /// Writes the values (into the page cache: they survive the process; [`Self::sync`] makes
    /// them durable).
    pub fn write(&self, v: &TimerCheckpointValues) -> Result<()> {
        self.file.write_all_at(&v.encode(), 0).map_err(io_err(&self.path))
    }

    /// Syncs the file.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(io_err(&self.path))
    }
}

/// Paths of the timer files under a store root.
pub fn wheel_path(root: &Path) -> PathBuf {
    root.join("timerwheel")
}

/// The timerlog directory under a store root.
pub fn log_dir(root: &Path) -> PathBuf {
    root.join("timerlog")
}

/// The checkpoint under a store root.
pub fn checkpoint_path(root: &Path) -> PathBuf {
    root.join("config").join("timercheck")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_magic_is_javas() {
        // Java: 0xBBCCDDEE ^ 1880681586 + 8 (addition first).
        assert_eq!(BLANK_MAGIC_CODE, (0xBBCC_DDEE_u32 ^ 1_880_681_594u32) as i32);
        assert!(!is_magic_ok(BLANK_MAGIC_CODE));
        assert!(is_magic_ok(MAGIC_DEFAULT | MAGIC_ROLL | MAGIC_DELETE));
    }

    #[test]
    fn slot_math() {
        assert_eq!(wheel_len(), 38_707_200);
        assert_eq!(slot_index(0, 1000), 0);
        assert_eq!(slot_index(1999, 1000), 1);
        // One turn is 2 * 7 days of steps whatever the precision.
        assert_eq!(slot_index(2 * SLOTS_TOTAL * 1000 + 5000, 1000), 5);
        assert_eq!(slot_index(2 * SLOTS_TOTAL * 100 + 300, 100), 3);
        let t = 1_764_400_000_123;
        assert_eq!(slot_index(t, 1000), ((t / 1000) % (2 * SLOTS_TOTAL)) as usize);
    }

    #[test]
    fn slot_codec_stores_time_over_precision() {
        let s = Slot { time_ms: 1_764_400_000_000, first_pos: 52, last_pos: 104, num: 2, magic: 0 };
        let b = s.encode(1000);
        assert_eq!(&b[0..8], &1_764_400_000i64.to_be_bytes());
        assert_eq!(&b[16..24], &104i64.to_be_bytes());
        assert_eq!(Slot::decode(&b, 1000), s);
    }

    #[test]
    fn unit_codec_layout() {
        let u = TimerUnit {
            size: UNIT_SIZE as i32,
            prev_pos: -1,
            magic: MAGIC_DEFAULT | MAGIC_ROLL,
            write_time_ms: 1_000_000,
            delay: 2000,
            offset_py: 4096,
            size_py: 300,
            topic_hash: crate::protocol::message::java_string_hash("T"),
            reserved: 0,
        };
        let b = u.encode();
        assert_eq!(&b[0..4], &52i32.to_be_bytes());
        assert_eq!(&b[4..12], &(-1i64).to_be_bytes());
        assert_eq!(&b[12..16], &3i32.to_be_bytes());
        // Apache reads offsetPy at UNIT_PRE_SIZE_FOR_MSG = 28.
        assert_eq!(&b[28..36], &4096i64.to_be_bytes());
        assert_eq!(&b[40..44], &84i32.to_be_bytes());
        assert_eq!(TimerUnit::decode(&b), Some(u));
        assert_eq!(u.delayed_time(), 1_002_000);
        assert!(u.is_valid());
    }

    #[test]
    fn wheel_slots_persist_and_turns_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = wheel_path(dir.path());
        let mut w = TimerWheel::open(&p, 1000).unwrap();
        let t = 1_764_400_000_000;
        assert_eq!(w.slot(t), Slot::EMPTY);
        w.put_slot(t + 500, 0, 52, 2, 0);
        assert_eq!(w.slot(t).last_pos, 52);
        // The same index one turn later is another slot.
        assert_eq!(w.slot(t + 2 * SLOTS_TOTAL * 1000), Slot::EMPTY);
        w.revise_last(t, 104);
        assert_eq!(w.slot(t), Slot { time_ms: t, first_pos: 0, last_pos: 104, num: 2, magic: 0 });
        assert_eq!(w.check_phy_pos(t - 5000, 60), 0);
        assert_eq!(w.check_phy_pos(t - 5000, 104), i64::MAX);
        w.flush().unwrap();
        drop(w);
        let raw = std::fs::read(&p).unwrap();
        let at = slot_index(t, 1000) * SLOT_SIZE;
        assert_eq!(&raw[at..at + 8], &(t / 1000).to_be_bytes());
        let w = TimerWheel::open(&p, 1000).unwrap();
        assert_eq!(w.slot(t).last_pos, 104);
        std::fs::write(&p, [0u8; 64]).unwrap();
        assert!(matches!(TimerWheel::open(&p, 1000), Err(StoreError::WrongFileSize { .. })));
    }

    fn unit(prev: i64, delayed: i64) -> [u8; UNIT_SIZE] {
        TimerUnit {
            size: UNIT_SIZE as i32,
            prev_pos: prev,
            magic: MAGIC_DEFAULT,
            write_time_ms: delayed - 1000,
            delay: 1000,
            offset_py: 0,
            size_py: 100,
            topic_hash: 0,
            reserved: 0,
        }
        .encode()
    }

    #[test]
    fn log_fills_files_and_recovers_the_valid_end() {
        let dir = tempfile::tempdir().unwrap();
        let size = (UNIT_SIZE * 3 + MIN_BLANK_LEN + 4) as u64; // three units, then the filler
        let log = TimerLog::load(&log_dir(dir.path()), size).unwrap();
        let mut pos = Vec::new();
        for i in 0..5 {
            pos.push(log.append(&unit(-1, 10_000 + i)).unwrap());
        }
        assert_eq!(pos[..3], [0, 52, 104]);
        assert_eq!(pos[3], size as i64);
        let f0 = log.files().first().unwrap();
        assert_eq!(&f0.slice(156, 16)[12..16], &BLANK_MAGIC_CODE.to_be_bytes());
        assert_eq!(log.read(pos[4]).unwrap().delayed_time(), 10_004);
        log.flush().unwrap();
        drop(log);
        // Reopened: the scan stops after the last unit of the last file.
        let log = TimerLog::load(&log_dir(dir.path()), size).unwrap();
        let mut seen = Vec::new();
        let end = log.recover(0, true, |t, p| seen.push((t, p))).unwrap();
        assert_eq!(end, pos[4] + UNIT_SIZE as i64);
        assert_eq!(seen.len(), 5);
        assert_eq!(log.append(&unit(-1, 1)).unwrap(), end);
        // The first file's last unit (offsetPy 0) is below a commitlog minimum of 1: it goes.
        assert_eq!(log.last_unit_offset(), 104);
        assert_eq!(log.delete_expired(0).unwrap(), 0);
        assert_eq!(log.delete_expired(1).unwrap(), 1);
        assert_eq!(log.files().min_offset(), size);
        assert_eq!(log.delete_expired(i64::MAX).unwrap(), 0, "the current file stays");
    }

    #[test]
    fn checkpoint_layout() {
        let dir = tempfile::tempdir().unwrap();
        let p = checkpoint_path(dir.path());
        let (cp, v) = TimerCheckpoint::open(&p).unwrap();
        assert!(!cp.existed);
        assert_eq!(v, TimerCheckpointValues::default());
        let v = TimerCheckpointValues {
            last_read_time_ms: 1,
            last_timer_log_flush_pos: 2,
            last_timer_queue_offset: 3,
            master_timer_queue_offset: 4,
            state_version: 5,
            timestamp: 6,
            counter: 7,
        };
        cp.write(&v).unwrap();
        cp.sync().unwrap();
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(raw.len(), 4096);
        assert_eq!(&raw[16..24], &3i64.to_be_bytes());
        let (_, back) = TimerCheckpoint::open(&p).unwrap();
        assert_eq!(back, v);
        // An old file without the data version.
        assert_eq!(TimerCheckpointValues::decode(&raw[..32]).counter, 0);
    }
}
