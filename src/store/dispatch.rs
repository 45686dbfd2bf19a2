//! The dispatcher (reput): follows the commitlog and builds the consume queues and the index,
//! publishes the dispatched offset and calls the arrival listener; failed dispatches raise and
//! later clear the WRITE_LOGICS_QUEUE_ERROR / WRITE_INDEX_FILE_ERROR flags.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::error::{Result, StoreError};
use super::failure_log::FailureNote;
use super::message::{self, check_record, sysflag, RecordCheck, RecordView};
use super::replicated::{LogStep, ReplicatedLog};
use super::{running_flags, CqEntry, Shared};

/// New max offsets per topic and queue collected during one dispatch round.
type Arrivals = HashMap<String, HashMap<i32, i64>>;

impl Shared {
    pub(super) fn wake_dispatcher(&self) {
        *self.dispatch_seq.lock() += 1;
        self.dispatch_cv.notify_one();
    }

    /// Raises running-flag bits for a failed dispatch (cleared again when it recovers).
    fn raise_dispatch_flag(&self, bit: u32) {
        self.dispatch_flag_bits.fetch_or(bit, Ordering::AcqRel);
        self.flags.fetch_or(bit, Ordering::AcqRel);
    }

    /// A dispatch attempt failed at commitlog offset `at`: logged once, then at most once a minute.
    fn dispatch_failed(&self, at: i64, e: &StoreError) {
        match self.dispatch_log.failed() {
            FailureNote::First => tracing::error!(
                error = %e,
                offset = at,
                "dispatch failed: consume queues or index cannot be written; writes are refused and dispatch \
                 retries every 100 ms until it succeeds (logged again at most once a minute)"
            ),
            FailureNote::Still { failures, since } => tracing::error!(
                error = %e,
                offset = at,
                failures,
                since_s = since.as_secs(),
                "dispatch still failing"
            ),
            FailureNote::Quiet => {}
        }
    }

    /// A record was dispatched: ends a failure episode (clearing the flags it raised) if any.
    fn dispatch_succeeded(&self) {
        if let Some(r) = self.dispatch_log.succeeded() {
            let bits =
                self.dispatch_flag_bits.swap(0, Ordering::AcqRel) & !self.flush_flag_bits.load(Ordering::Acquire);
            self.flags.fetch_and(!bits, Ordering::AcqRel);
            tracing::info!(
                failed_attempts = r.failures,
                after_ms = r.lasted.as_millis() as u64,
                "dispatch recovered: consume queues and index are written again, writes accepted"
            );
        }
    }

    pub(super) fn reput_loop(&self) {
        loop {
            let seq = *self.dispatch_seq.lock();
            let progressed = self.do_reput();
            if self.halt.load(Ordering::Acquire) {
                return;
            }
            if self.stop_dispatch.load(Ordering::Acquire) && !progressed {
                return;
            }
            if !progressed {
                let mut g = self.dispatch_seq.lock();
                if *g == seq && !self.stop_dispatch.load(Ordering::Acquire) {
                    self.dispatch_cv.wait_for(&mut g, Duration::from_millis(100));
                }
            }
        }
    }

    /// Dispatches records from `reput_from` to the end of the written data. Returns whether it
    /// advanced.
    pub(super) fn do_reput(&self) -> bool {
        if let Some(r) = &self.replica {
            return self.do_reput_replicated(r.as_ref());
        }
        let mut progressed = false;
        let mut arrivals: Arrivals = HashMap::new();
        loop {
            let reput = self.reput_from.load(Ordering::Acquire);
            let max = self.commitlog.max_offset();
            if reput >= max {
                break;
            }
            let min = self.commitlog.min_offset();
            if reput < min {
                self.reput_from.store(min, Ordering::Release);
                continue;
            }
            let Some(f) = self.commitlog.files().find(reput as u64) else {
                break;
            };
            let pos = (reput as u64 - f.from_offset()) as usize;
            let wrote = f.wrote_pos();
            if pos >= wrote {
                if f.is_full() {
                    self.reput_from.store((f.from_offset() + f.size() as u64) as i64, Ordering::Release);
                    continue;
                }
                break;
            }
            let data = f.slice(pos, wrote - pos);
            let mut p = 0usize;
            let mut next_file = false;
            let mut stalled = false;
            while p < data.len() {
                match check_record(&data[p..], false) {
                    RecordCheck::Message(v) => {
                        let rec = &data[p..p + v.store_size];
                        if let Err(e) = self.dispatch(&v, rec, &mut arrivals) {
                            self.dispatch_failed(reput + p as i64, &e);
                            stalled = true;
                            break;
                        }
                        self.dispatch_succeeded();
                        p += v.store_size;
                    }
                    RecordCheck::Blank(_) => {
                        next_file = true;
                        break;
                    }
                    RecordCheck::Incomplete => break, // raw append in progress
                    RecordCheck::End | RecordCheck::Invalid(_) => {
                        let at = reput + p as i64;
                        if self.dispatch_stalled_at.swap(at, Ordering::AcqRel) != at {
                            tracing::error!(offset = at, "invalid commitlog record; dispatch stalled");
                        }
                        stalled = true;
                        break;
                    }
                }
            }
            let new = if next_file { (f.from_offset() + f.size() as u64) as i64 } else { reput + p as i64 };
            if new == reput {
                break;
            }
            progressed = true;
            self.reput_from.store(new, Ordering::Release);
            self.publish(&mut arrivals);
            if stalled {
                break;
            }
        }
        if progressed {
            self.publish(&mut arrivals);
        }
        progressed
    }

    /// Dispatches the records of committed entries of a replicated log from `reput_from` (an
    /// entry's position), skipping no-op entries and file-end fillers. Returns whether it
    /// advanced.
    fn do_reput_replicated(&self, log: &dyn ReplicatedLog) -> bool {
        let mut progressed = false;
        let mut arrivals: Arrivals = HashMap::new();
        // Bounded rounds: publish regularly so readers see progress during a long catch-up.
        for _ in 0..4096 {
            let at = self.reput_from.load(Ordering::Acquire);
            let min = self.commitlog.min_offset();
            if at < min {
                self.data_restarted_at(at, min);
                progressed = true;
                continue;
            }
            let committed = log.committed_index();
            match log.step(at) {
                LogStep::Wait => {
                    // Every entry before `at` is dispatched and the one at `at` (if any) is not
                    // committed: everything up to `committed` is dispatched.
                    self.replica_dispatched_index.fetch_max(committed, Ordering::AcqRel);
                    break;
                }
                LogStep::Invalid => {
                    if self.dispatch_stalled_at.swap(at, Ordering::AcqRel) != at {
                        tracing::error!(offset = at, "no entry of the replicated log starts here; dispatch stalled");
                    }
                    break;
                }
                LogStep::Skip { next } => {
                    self.reput_from.store(next, Ordering::Release);
                    progressed = true;
                }
                LogStep::Entry { index, body_pos, body_len, next } => {
                    if body_len > 0 {
                        let Some(body) = self.commitlog.read(body_pos, body_len) else {
                            break;
                        };
                        let mut p = 0usize;
                        while p < body.len() {
                            match check_record(&body[p..], false) {
                                RecordCheck::Message(v) => {
                                    let rec = &body[p..p + v.store_size];
                                    if let Err(e) = self.dispatch(&v, rec, &mut arrivals) {
                                        self.dispatch_failed(body_pos + p as i64, &e);
                                        self.publish(&mut arrivals);
                                        // Records of this entry before `p` are re-dispatched
                                        // (idempotently) on the next attempt.
                                        return progressed;
                                    }
                                    self.dispatch_succeeded();
                                    p += v.store_size;
                                }
                                _ => {
                                    let off = body_pos + p as i64;
                                    if self.dispatch_stalled_at.swap(off, Ordering::AcqRel) != off {
                                        tracing::error!(
                                            offset = off,
                                            index,
                                            "entry body is not a sequence of commitlog records; skipping the rest"
                                        );
                                    }
                                    break;
                                }
                            }
                        }
                    }
                    self.replica_dispatched_index.store(index, Ordering::Release);
                    self.reput_from.store(next, Ordering::Release);
                    progressed = true;
                }
            }
        }
        if progressed {
            self.publish(&mut arrivals);
        }
        progressed
    }

    /// The replicated log's data now starts past the dispatch position (a follower's log restarted
    /// at its leader's begin index: the leader had deleted what it lacked). Nothing before `min`
    /// exists any more: consume queues and index drop what points there and queue min offsets
    /// move up, as after a commitlog cleanup, and dispatch goes on at `min` (Apache's reput
    /// service moves to the commitlog's min offset likewise).
    fn data_restarted_at(&self, at: i64, min: i64) {
        tracing::warn!(dispatched = at, min_offset = min, "commitlog data now starts past the dispatched position");
        for q in self.cqs.all() {
            if let Err(e) = q.delete_expired(min) {
                tracing::error!(topic = q.topic(), queue_id = q.queue_id(), error = %e, "cannot cut consume queue");
            }
        }
        if let Err(e) = self.index.delete_expired(min) {
            tracing::error!(error = %e, "cannot delete index files");
        }
        self.reput_from.store(min, Ordering::Release);
    }

    fn publish(&self, arrivals: &mut Arrivals) {
        // Topic watches first: whoever sees the dispatched offset move also sees them changed.
        if !arrivals.is_empty() {
            let watches = self.topic_watches.read();
            for (topic, tx) in watches.iter() {
                if arrivals.get(topic).is_some_and(|qs| !qs.is_empty()) {
                    tx.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        }
        let reput = self.reput_from.load(Ordering::Acquire);
        self.dispatched_tx.send_replace(reput);
        if arrivals.is_empty() {
            return;
        }
        let l = self.listener.read().clone();
        if let Some(l) = l {
            for (t, qs) in arrivals.iter_mut() {
                for (q, off) in qs.drain() {
                    l(t, q, off);
                }
            }
        } else {
            arrivals.values_mut().for_each(|m| m.clear());
        }
    }

    fn tags_code_of(&self, v: &RecordView, topic: &str, props: &str, tags: Option<&str>) -> i64 {
        if topic == message::SCHEDULE_TOPIC {
            if let Some(level) = message::find_property(props, message::property::DELAY)
                .and_then(|d| d.parse::<i64>().ok())
                .filter(|l| *l > 0)
            {
                let n = self.delay_levels.len() as i64;
                let l = level.min(n);
                return match self.delay_levels.get((l - 1).max(0) as usize) {
                    Some(d) => v.store_timestamp + d,
                    None => v.store_timestamp + 1000,
                };
            }
        }
        message::tags_code(tags)
    }

    fn dispatch(&self, v: &RecordView, rec: &[u8], arrivals: &mut Arrivals) -> Result<()> {
        let topic = v.topic(rec);
        let props = v.properties(rec);
        let tran = sysflag::transaction_value(v.sys_flag);
        // One pass over the properties for the tags and the index keys.
        let [tags, uniq, keys] = message::find_properties(
            props,
            [message::property::TAGS, message::property::UNIQ_KEY, message::property::KEYS],
        );
        if tran == sysflag::TRANSACTION_NOT_TYPE || tran == sysflag::TRANSACTION_COMMIT {
            let tags = self.tags_code_of(v, topic, props, tags);
            let cq = self
                .cqs
                .get_or_create(topic, v.queue_id)
                .inspect_err(|_| self.raise_dispatch_flag(running_flags::WRITE_LOGICS_QUEUE_ERROR))?;
            cq.put(
                CqEntry { phys_offset: v.commit_log_offset, size: v.store_size as i32, tags_code: tags },
                v.queue_offset,
            )
            .inspect_err(|_| self.raise_dispatch_flag(running_flags::WRITE_LOGICS_QUEUE_ERROR))?;
            let max = cq.max_offset_in_queue();
            match arrivals.get_mut(topic) {
                Some(m) => {
                    m.insert(v.queue_id, max);
                }
                None => {
                    arrivals.insert(topic.to_string(), HashMap::from([(v.queue_id, max)]));
                }
            }
        }
        if self.config.message_index_enable && tran != sysflag::TRANSACTION_ROLLBACK {
            self.index
                .build(topic, uniq, keys, v.commit_log_offset, v.store_timestamp)
                .inspect_err(|_| self.raise_dispatch_flag(running_flags::WRITE_INDEX_FILE_ERROR))?;
        }
        self.last_dispatched_ts.store(v.store_timestamp, Ordering::Release);
        // Raw (replicated) appends carry no store time of their own: the dispatched one feeds the
        // checkpoint's physic timestamp (it trails the written data, so it is safe).
        self.commitlog.note_store_timestamp(v.store_timestamp);
        Ok(())
    }
}
