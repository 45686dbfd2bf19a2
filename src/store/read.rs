//! The read path: messages of a queue ([`MessageStore::get_message`]), queue offsets and times,
//! lookups by commitlog offset and by key (index).

use bytes::Bytes;

use super::error::{Result, StoreError};
use super::message::{self, check_record, RecordCheck};
use super::{running_flags, BoundaryType, CqEntry, MessageStore, CQ_UNIT_SIZE};

/// Status of a read (Apache's `GetMessageStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetMessageStatus {
    /// Messages returned.
    Found,
    /// Entries exist but the filter matched none.
    NoMatchedMessage,
    /// Commitlog data already deleted.
    MessageWasRemoving,
    /// Consume queue file for the offset is gone.
    OffsetFoundNull,
    /// Offset beyond max + 1.
    OffsetOverflowBadly,
    /// Offset equals max (nothing new yet).
    OffsetOverflowOne,
    /// Offset below min.
    OffsetTooSmall,
    /// No such queue.
    NoMatchedLogicQueue,
    /// Queue is empty.
    NoMessageInQueue,
}

impl GetMessageStatus {
    /// Apache's constant name.
    pub fn name(self) -> &'static str {
        match self {
            GetMessageStatus::Found => "FOUND",
            GetMessageStatus::NoMatchedMessage => "NO_MATCHED_MESSAGE",
            GetMessageStatus::MessageWasRemoving => "MESSAGE_WAS_REMOVING",
            GetMessageStatus::OffsetFoundNull => "OFFSET_FOUND_NULL",
            GetMessageStatus::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
            GetMessageStatus::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
            GetMessageStatus::OffsetTooSmall => "OFFSET_TOO_SMALL",
            GetMessageStatus::NoMatchedLogicQueue => "NO_MATCHED_LOGIC_QUEUE",
            GetMessageStatus::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
        }
    }
}

/// Result of [`MessageStore::get_message`].
#[derive(Debug, Clone)]
pub struct GetMessageResult {
    /// Status.
    pub status: GetMessageStatus,
    /// Where the next read should start.
    pub next_begin_offset: i64,
    /// Queue min offset.
    pub min_offset: i64,
    /// Queue max offset (next offset to be written).
    pub max_offset: i64,
    /// Whole commitlog records (zero-copy slices of the mapping).
    pub messages: Vec<Bytes>,
    /// Queue offset of each returned message.
    pub queue_offsets: Vec<i64>,
    /// Sum of the record sizes.
    pub buffer_total_size: usize,
}

/// Result of [`MessageStore::query_message`].
#[derive(Debug, Clone, Default)]
pub struct QueryMessageResult {
    /// Matching records.
    pub messages: Vec<Bytes>,
    /// End timestamp of the newest index file.
    pub index_last_update_timestamp: i64,
    /// End physical offset of the newest index file.
    pub index_last_update_phyoffset: i64,
}

/// Selects messages in [`MessageStore::get_message`]: first by the consume-queue tagsCode, then
/// (for entries that pass) by the whole commitlog record (e.g. SQL92 property filters).
/// Any `Fn(i64) -> bool` closure is a filter on the tagsCode alone.
pub trait MessageFilter {
    /// Match on the consume-queue tagsCode.
    fn is_matched_by_consume_queue(&self, tags_code: i64) -> bool;
    /// Match on the commitlog record (called only if the tagsCode matched).
    fn is_matched_by_commit_log(&self, _record: &[u8]) -> bool {
        true
    }
}

impl<F: Fn(i64) -> bool> MessageFilter for F {
    fn is_matched_by_consume_queue(&self, tags_code: i64) -> bool {
        self(tags_code)
    }
}

impl MessageStore {
    /// Reads up to `max_count` messages (and `max_bytes`) of a queue starting at `offset`;
    /// `filter(tags_code)` selects by consume queue tag hash.
    pub fn get_message(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_count: usize,
        max_bytes: usize,
        filter: impl MessageFilter,
    ) -> Result<GetMessageResult> {
        if self.is_shutdown() {
            return Err(StoreError::ShutDown);
        }
        if self.running_flags() & running_flags::NOT_READABLE != 0 {
            return Err(StoreError::NotReadable);
        }
        let mut r = GetMessageResult {
            status: GetMessageStatus::NoMatchedLogicQueue,
            next_begin_offset: 0,
            min_offset: 0,
            max_offset: 0,
            messages: Vec::new(),
            queue_offsets: Vec::new(),
            buffer_total_size: 0,
        };
        let Some(cq) = self.shared.cqs.get(topic, queue_id) else {
            return Ok(r);
        };
        let min = cq.min_offset_in_queue();
        let max = cq.max_offset_in_queue();
        r.min_offset = min;
        r.max_offset = max;
        if max == 0 {
            r.status = GetMessageStatus::NoMessageInQueue;
            return Ok(r);
        }
        if offset < min {
            r.status = GetMessageStatus::OffsetTooSmall;
            r.next_begin_offset = min;
            return Ok(r);
        }
        if offset == max {
            r.status = GetMessageStatus::OffsetOverflowOne;
            r.next_begin_offset = offset;
            return Ok(r);
        }
        if offset > max {
            r.status = GetMessageStatus::OffsetOverflowBadly;
            r.next_begin_offset = if min == 0 { min } else { max };
            return Ok(r);
        }
        let cl_min = self.shared.commitlog.min_offset();
        let scan_limit = max_count.max(800);
        let mut idx = offset;
        let mut scanned = 0usize;
        r.status = GetMessageStatus::NoMatchedMessage;
        'outer: while r.messages.len() < max_count && idx < max && scanned < scan_limit {
            let Some(entries) = cq.entries_from(idx, scan_limit - scanned) else {
                if r.messages.is_empty() {
                    r.status = GetMessageStatus::OffsetFoundNull;
                    idx = cq.roll_next_file(idx);
                }
                break;
            };
            for chunk in entries.chunks_exact(CQ_UNIT_SIZE) {
                let e = CqEntry::parse(chunk);
                if r.messages.len() >= max_count {
                    break 'outer;
                }
                if !e.is_filler() && e.size > 0 {
                    if r.buffer_total_size + e.size as usize > max_bytes && !r.messages.is_empty() {
                        break 'outer;
                    }
                    if e.phys_offset < cl_min {
                        if r.messages.is_empty() {
                            r.status = GetMessageStatus::MessageWasRemoving;
                        }
                    } else if filter.is_matched_by_consume_queue(e.tags_code) {
                        match self.shared.commitlog.read(e.phys_offset, e.size as usize) {
                            Some(b) if !filter.is_matched_by_commit_log(&b) => {}
                            Some(b) => {
                                r.buffer_total_size += b.len();
                                r.messages.push(b);
                                r.queue_offsets.push(idx);
                            }
                            None => {
                                if r.messages.is_empty() {
                                    r.status = GetMessageStatus::MessageWasRemoving;
                                }
                            }
                        }
                    }
                }
                idx += 1;
                scanned += 1;
            }
        }
        if !r.messages.is_empty() {
            r.status = GetMessageStatus::Found;
        }
        r.next_begin_offset = idx;
        Ok(r)
    }

    /// Next queue offset to be written (0 if no such queue).
    pub fn max_offset_in_queue(&self, topic: &str, queue_id: i32) -> i64 {
        self.shared.cqs.get(topic, queue_id).map(|q| q.max_offset_in_queue()).unwrap_or(0)
    }

    /// First served queue offset (0 if no such queue).
    pub fn min_offset_in_queue(&self, topic: &str, queue_id: i32) -> i64 {
        self.shared.cqs.get(topic, queue_id).map(|q| q.min_offset_in_queue()).unwrap_or(0)
    }

    /// Queue offset by store time (see [`BoundaryType`]).
    pub fn offset_in_queue_by_time(&self, topic: &str, queue_id: i32, timestamp: i64, boundary: BoundaryType) -> i64 {
        let Some(q) = self.shared.cqs.get(topic, queue_id) else {
            return 0;
        };
        q.offset_by_time(timestamp, boundary, |phys, size| self.shared.commitlog.store_time_at(phys, size))
    }

    /// Store time of the first message of a queue.
    pub fn earliest_message_time(&self, topic: &str, queue_id: i32) -> Option<i64> {
        let q = self.shared.cqs.get(topic, queue_id)?;
        let e = q.entry(q.min_offset_in_queue())?;
        self.shared.commitlog.store_time_at(e.phys_offset, e.size)
    }

    /// Store time of the message at a queue offset.
    pub fn message_store_timestamp(&self, topic: &str, queue_id: i32, offset: i64) -> Option<i64> {
        let e = self.shared.cqs.get(topic, queue_id)?.entry(offset)?;
        self.shared.commitlog.store_time_at(e.phys_offset, e.size)
    }

    /// The record at commitlog offset `phy` (size from its TOTALSIZE).
    pub fn look_message_by_offset(&self, phy: i64) -> Option<Bytes> {
        let b = self.shared.commitlog.read_record(phy)?;
        match check_record(&b, false) {
            RecordCheck::Message(v) if v.commit_log_offset == phy => Some(b),
            _ => None,
        }
    }

    /// `size` bytes at commitlog offset `phy`.
    pub fn look_message_by_offset_size(&self, phy: i64, size: usize) -> Option<Bytes> {
        self.shared.commitlog.read(phy, size)
    }

    /// Messages whose UNIQ_KEY or one of whose KEYS equals `key`, stored within `[begin, end]` ms,
    /// newest first, at most `max_num` (0 ⇒ `defaultQueryMaxNum`; capped at `maxMsgsNumBatch`).
    pub fn query_message(&self, topic: &str, key: &str, max_num: usize, begin: i64, end: i64) -> QueryMessageResult {
        let max = if max_num == 0 { self.shared.live.read().default_query_max_num } else { max_num }
            .min(self.shared.config.max_msgs_num_batch.max(1));
        let offsets = self.shared.index.query(topic, key, max, begin, end);
        let (ts, phy) = self.shared.index.last_update();
        let mut out = QueryMessageResult {
            messages: Vec::new(),
            index_last_update_timestamp: ts,
            index_last_update_phyoffset: phy,
        };
        for off in offsets {
            let Some(b) = self.look_message_by_offset(off) else {
                continue;
            };
            if let RecordCheck::Message(v) = check_record(&b, false) {
                let props = v.properties(&b);
                let hit = v.topic(&b) == topic
                    && (message::find_property(props, message::property::UNIQ_KEY) == Some(key)
                        || message::find_property(props, message::property::KEYS)
                            .is_some_and(|k| k.split(' ').any(|t| t == key)));
                if hit {
                    out.messages.push(b);
                }
            }
        }
        out
    }
}
