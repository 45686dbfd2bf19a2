//! Per-topic and per-group message counters, for the metrics endpoint (Apache's
//! `rocketmq_messages_in_total` / `rocketmq_messages_out_total` and their byte twins).
//!
//! The hot path takes a read lock and finds the counters by `&str` (no allocation); a topic or
//! group seen for the first time takes the write lock once. Entries are bounded by the topics and
//! groups the broker knows: [`TopicStats::retain`] drops those that are gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

/// Messages and bytes through one topic (or one topic for one group).
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Messages.
    pub msgs: AtomicU64,
    /// Bytes.
    pub bytes: AtomicU64,
}

impl IoCounters {
    fn add(&self, msgs: usize, bytes: usize) {
        self.msgs.fetch_add(msgs as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
    /// (messages, bytes) now.
    pub fn get(&self) -> (u64, u64) {
        (self.msgs.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }
}

type GroupMap = HashMap<String, Arc<IoCounters>>;

/// Counters by topic (stored) and by topic and consumer group (delivered).
#[derive(Debug, Default)]
pub struct TopicStats {
    stored: RwLock<HashMap<String, Arc<IoCounters>>>,
    delivered: RwLock<HashMap<String, GroupMap>>,
}

impl TopicStats {
    /// Counts messages stored into `topic`.
    pub fn stored(&self, topic: &str, msgs: usize, bytes: usize) {
        if let Some(c) = self.stored.read().get(topic) {
            return c.add(msgs, bytes);
        }
        self.stored.write().entry(topic.to_string()).or_default().add(msgs, bytes);
    }

    /// Counts messages of `topic` delivered to `group`.
    pub fn delivered(&self, topic: &str, group: &str, msgs: usize, bytes: usize) {
        if let Some(c) = self.delivered.read().get(topic).and_then(|g| g.get(group)) {
            return c.add(msgs, bytes);
        }
        self.delivered
            .write()
            .entry(topic.to_string())
            .or_default()
            .entry(group.to_string())
            .or_default()
            .add(msgs, bytes);
    }

    /// (topic, messages, bytes) stored so far.
    pub fn stored_snapshot(&self) -> Vec<(String, u64, u64)> {
        self.stored.read().iter().map(|(t, c)| (t.clone(), c.get().0, c.get().1)).collect()
    }

    /// (topic, group, messages, bytes) delivered so far.
    pub fn delivered_snapshot(&self) -> Vec<(String, String, u64, u64)> {
        let d = self.delivered.read();
        let mut out = Vec::new();
        for (t, groups) in d.iter() {
            for (g, c) in groups {
                let (m, b) = c.get();
                out.push((t.clone(), g.clone(), m, b));
            }
        }
        out
    }

    /// Keeps only the topics for which `keep` holds (deleted topics' series go).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.stored.write().retain(|t, _| keep(t));
        self.delivered.write().retain(|t, _| keep(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_topic_and_group_and_forgets_deleted_topics() {
        let s = TopicStats::default();
        s.stored("T", 2, 200);
        s.stored("T", 1, 100);
        s.stored("U", 1, 10);
        s.delivered("T", "g1", 3, 300);
        s.delivered("T", "g2", 1, 100);
        let mut st = s.stored_snapshot();
        st.sort();
        assert_eq!(st, vec![("T".into(), 3, 300), ("U".into(), 1, 10)]);
        let mut d = s.delivered_snapshot();
        d.sort();
        assert_eq!(d, vec![("T".into(), "g1".into(), 3, 300), ("T".into(), "g2".into(), 1, 100)]);
        s.retain(|t| t != "T");
        assert_eq!(s.stored_snapshot(), vec![("U".into(), 1, 10)]);
        assert!(s.delivered_snapshot().is_empty());
    }
}
