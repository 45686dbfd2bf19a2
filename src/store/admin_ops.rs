//! Store views and maintenance that operators ask for over the wire (QUERY_CONSUME_QUEUE,
//! CLEAN_EXPIRED_CONSUMEQUEUE, CLEAN_UNUSED_TOPIC). Callers run the cleaning ones off the
//! request threads (they delete files).

use std::collections::BTreeSet;

use super::consume_queue::CqEntry;
use super::{MessageStore, Result};

/// Entries of one consume queue as QUERY_CONSUME_QUEUE shows them.
#[derive(Debug, Clone)]
pub struct ConsumeQueueView {
    /// First served queue offset.
    pub min_offset: i64,
    /// Next queue offset to be written.
    pub max_offset: i64,
    /// Entries from the asked index (fillers skipped), at most the asked count.
    pub entries: Vec<CqEntry>,
}

impl MessageStore {
    /// The body size limit now (`maxMessageSize`).
    pub fn max_message_size(&self) -> usize {
        self.shared.max_message_size.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Changes the body size limit (UPDATE_BROKER_CONFIG); the caller validated it.
    pub fn set_max_message_size(&self, n: usize) {
        self.shared.max_message_size.store(n, std::sync::atomic::Ordering::Relaxed);
        self.shared.live.write().max_message_size = n;
    }

    /// The keys an operator may change at runtime, as they are now.
    pub fn live_keys(&self) -> super::config::LiveStoreKeys {
        let mut k = *self.shared.live.read();
        k.max_message_size = self.max_message_size();
        k
    }

    /// Applies runtime key changes (UPDATE_BROKER_CONFIG; the caller validated them) and wakes the
    /// flush services so that new intervals apply from their next round.
    pub fn set_live_keys(&self, keys: super::config::LiveStoreKeys) {
        self.shared.max_message_size.store(keys.max_message_size, std::sync::atomic::Ordering::Relaxed);
        *self.shared.live.write() = keys;
        self.shared.flush_cv.notify_all();
        self.shared.logics_cv.notify_all();
    }

    /// Up to `count` entries of `topic`/`queue_id` from queue offset `index`; `None` when the
    /// store has no such queue.
    pub fn consume_queue_view(&self, topic: &str, queue_id: i32, index: i64, count: usize) -> Option<ConsumeQueueView> {
        let q = self.shared.cqs.get(topic, queue_id)?;
        let (min, max) = (q.min_offset_in_queue(), q.max_offset_in_queue());
        let mut entries = Vec::new();
        let mut idx = index.max(min);
        while entries.len() < count && idx < max {
            match q.entry(idx) {
                Some(e) if e.is_filler() => {}
                Some(e) => entries.push(e),
                None => break,
            }
            idx += 1;
        }
        Some(ConsumeQueueView { min_offset: min, max_offset: max, entries })
    }

    /// Topics that have consume queues in this store.
    pub fn consume_queue_topics(&self) -> BTreeSet<String> {
        self.shared.cqs.all().iter().map(|q| q.topic().to_string()).collect()
    }

    /// Apache's `cleanExpiredConsumerQueue`: deletes the consume queues of topics whose every
    /// queue ends before the commitlog's first offset (nothing in them can be read any more),
    /// except the schedule topic. Returns the topics removed. Apache removes such queues one by
    /// one; removing whole topics keeps each topic's queue offsets consistent.
    pub fn clean_expired_consume_queues(&self, keep: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
        let min = self.shared.commitlog.min_offset();
        let mut by_topic: std::collections::BTreeMap<String, bool> = std::collections::BTreeMap::new();
        for q in self.shared.cqs.all() {
            let expired = q.max_physic_offset() <= min;
            let e = by_topic.entry(q.topic().to_string()).or_insert(true);
            *e &= expired;
        }
        let gone: Vec<String> = by_topic.into_iter().filter(|(t, all)| *all && !keep(t)).map(|(t, _)| t).collect();
        let refs: Vec<&str> = gone.iter().map(String::as_str).collect();
        self.delete_topics(&refs)?;
        for t in &gone {
            tracing::info!(topic = %t, commit_log_min = min, "cleanExpiredConsumerQueue: consume queues removed");
        }
        Ok(gone)
    }
}
