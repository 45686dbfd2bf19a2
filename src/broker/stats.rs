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
    /// Calls that added to the counters (Apache's `StatsItem.times`).
    pub calls: AtomicU64,
}

impl IoCounters {
    fn add(&self, msgs: usize, bytes: usize) {
        self.msgs.fetch_add(msgs as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
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

    /// Apache's stats items as `(statsName, statsKey, value, times)`: `TOPIC_PUT_NUMS` /
    /// `TOPIC_PUT_SIZE` by topic, `GROUP_GET_NUMS` / `GROUP_GET_SIZE` by `topic@group`.
    pub fn items(&self) -> Vec<(&'static str, String, u64, u64)> {
        let mut out = Vec::new();
        for (t, c) in self.stored.read().iter() {
            let (m, b, n) =
                (c.msgs.load(Ordering::Relaxed), c.bytes.load(Ordering::Relaxed), c.calls.load(Ordering::Relaxed));
            out.push(("TOPIC_PUT_NUMS", t.clone(), m, n));
            out.push(("TOPIC_PUT_SIZE", t.clone(), b, n));
        }
        for (t, groups) in self.delivered.read().iter() {
            for (g, c) in groups {
                let (m, b, n) =
                    (c.msgs.load(Ordering::Relaxed), c.bytes.load(Ordering::Relaxed), c.calls.load(Ordering::Relaxed));
                out.push(("GROUP_GET_NUMS", format!("{t}@{g}"), m, n));
                out.push(("GROUP_GET_SIZE", format!("{t}@{g}"), b, n));
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

/// Upper bounds (ms) of Apache's `rocketmq_rpc_latency` buckets.
pub const RPC_LATENCY_BUCKETS_MS: [f64; 9] = [1.0, 3.0, 5.0, 7.0, 10.0, 100.0, 1000.0, 2000.0, 3000.0];

/// (sum in ms, count, per-bucket counts by upper bound) of one histogram.
pub type HistogramSnapshot = (f64, u64, Vec<(f64, u64)>);

/// One (request code, response code) latency histogram.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Counts per bucket of [`RPC_LATENCY_BUCKETS_MS`] (not cumulative), then the overflow.
    buckets: [AtomicU64; 10],
    /// Sum of the latencies, microseconds.
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl LatencyHistogram {
    fn record(&self, us: u64) {
        let ms = us as f64 / 1000.0;
        let i = RPC_LATENCY_BUCKETS_MS.iter().position(|b| ms <= *b).unwrap_or(RPC_LATENCY_BUCKETS_MS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
    /// (sum in ms, count, per-bucket counts by upper bound, the last bound infinite).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let bounds = RPC_LATENCY_BUCKETS_MS.iter().copied().chain([f64::INFINITY]);
        let buckets = bounds.enumerate().map(|(i, b)| (b, self.buckets[i].load(Ordering::Relaxed))).collect();
        (self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0, self.count.load(Ordering::Relaxed), buckets)
    }
}

/// Request latency by (request code, response code), as Apache's `rocketmq_rpc_latency`.
#[derive(Debug, Default)]
pub struct RpcLatency {
    table: RwLock<HashMap<(i32, i32), Arc<LatencyHistogram>>>,
}

impl RpcLatency {
    /// Records one answered request.
    pub fn record(&self, request: i32, response: i32, elapsed: std::time::Duration) {
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        if let Some(h) = self.table.read().get(&(request, response)) {
            return h.record(us);
        }
        // Bounded: request and response codes are each a small set, but a client may send any
        // request code; unknown ones share one entry.
        let key =
            if crate::protocol::codes::request_name(request).is_some() { (request, response) } else { (-1, response) };
        self.table.write().entry(key).or_default().record(us);
    }
    /// ((request code, response code), histogram) now.
    pub fn snapshot(&self) -> Vec<((i32, i32), HistogramSnapshot)> {
        self.table.read().iter().map(|(k, h)| (*k, h.snapshot())).collect()
    }
}

/// Wraps a processor to time each request it answers into [`RpcLatency`].
pub struct Timed<P> {
    /// The processor.
    pub inner: P,
    /// Where the latencies go.
    pub latency: Arc<RpcLatency>,
}

impl<P: crate::remoting::RequestProcessor> crate::remoting::RequestProcessor for Timed<P> {
    fn process<'a>(
        &'a self,
        conn: &'a crate::remoting::ConnectionHandle,
        request: crate::remoting::RemotingCommand,
    ) -> crate::remoting::BoxFuture<'a, Option<crate::remoting::RemotingCommand>> {
        Box::pin(async move {
            let code = request.code;
            let start = std::time::Instant::now();
            let out = self.inner.process(conn, request).await;
            if let Some(r) = &out {
                self.latency.record(code, r.code, start.elapsed());
            }
            out
        })
    }
}

#[cfg(test)]
mod latency_tests {
    use super::*;

    #[test]
    fn histogram_buckets_count_each_bound() {
        let l = RpcLatency::default();
        l.record(10, 0, std::time::Duration::from_micros(500));
        l.record(10, 0, std::time::Duration::from_millis(4));
        l.record(10, 0, std::time::Duration::from_secs(5));
        l.record(99_999, 1, std::time::Duration::from_millis(1));
        let snap = l.snapshot();
        let (_, (sum, count, cum)) = snap.iter().find(|(k, _)| *k == (10, 0)).unwrap().clone();
        assert_eq!(count, 3);
        assert!((sum - 5004.5).abs() < 0.01, "{sum}");
        assert_eq!(cum[0], (1.0, 1));
        assert_eq!(cum[2], (5.0, 1));
        assert_eq!(cum[8], (3000.0, 0));
        assert_eq!(cum[9], (f64::INFINITY, 1));
        assert!(snap.iter().any(|(k, _)| *k == (-1, 1)), "unknown request codes share one entry");
    }
}
