//! Rebalance locks of orderly consumers (Apache's `RebalanceLockManager`): a queue is held by one
//! client of a group until it unlocks or stops renewing for `lockMaxLiveTime` (60 s).

use std::collections::{BTreeSet, HashMap};

use parking_lot::Mutex;

use super::MessageQueue;

/// Apache's default `rocketmq.broker.rebalance.lockMaxLiveTime`, ms.
pub const DEFAULT_LOCK_MAX_LIVE_TIME_MS: i64 = 60_000;

#[derive(Debug, Clone)]
struct LockEntry {
    client_id: String,
    last_update: i64,
}

impl LockEntry {
    fn expired(&self, now: i64, max_live: i64) -> bool {
        now - self.last_update > max_live
    }
}

/// Queue locks by group.
pub struct RebalanceLockManager {
    max_live_ms: i64,
    table: Mutex<HashMap<String, HashMap<MessageQueue, LockEntry>>>,
}

impl RebalanceLockManager {
    /// Locks that expire `max_live_ms` after their last renewal.
    pub fn new(max_live_ms: i64) -> Self {
        RebalanceLockManager { max_live_ms, table: Mutex::new(HashMap::new()) }
    }

    /// Expiry from the `rocketmq.broker.rebalance.lockMaxLiveTime` setting (environment variable of
    /// that name, or `ROCKETMQ_BROKER_REBALANCE_LOCKMAXLIVETIME`), default 60 s.
    pub fn from_system_property() -> Self {
        let v = std::env::var("rocketmq.broker.rebalance.lockMaxLiveTime")
            .or_else(|_| std::env::var("ROCKETMQ_BROKER_REBALANCE_LOCKMAXLIVETIME"))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(DEFAULT_LOCK_MAX_LIVE_TIME_MS);
        Self::new(v)
    }

    /// The expiry, ms.
    pub fn max_live_ms(&self) -> i64 {
        self.max_live_ms
    }

    /// Locks (or renews) each queue for `client_id` unless another client holds a live lock on it.
    /// Returns the queues this client now holds.
    pub fn try_lock_batch(
        &self,
        group: &str,
        mqs: &[MessageQueue],
        client_id: &str,
        now: i64,
    ) -> BTreeSet<MessageQueue> {
        let mut locked = BTreeSet::new();
        let mut table = self.table.lock();
        let group_locks = table.entry(group.to_string()).or_default();
        for mq in mqs {
            match group_locks.get_mut(mq) {
                None => {
                    group_locks.insert(mq.clone(), LockEntry { client_id: client_id.to_string(), last_update: now });
                    locked.insert(mq.clone());
                }
                Some(e) if e.client_id == client_id => {
                    e.last_update = now;
                    locked.insert(mq.clone());
                }
                Some(e) if e.expired(now, self.max_live_ms) => {
                    tracing::warn!(group, old = %e.client_id, new = client_id, queue = mq.queue_id, topic = %mq.topic, "lock expired, taken over");
                    e.client_id = client_id.to_string();
                    e.last_update = now;
                    locked.insert(mq.clone());
                }
                Some(_) => {}
            }
        }
        locked
    }

    /// Releases the queues this client holds (others' locks are untouched).
    pub fn unlock_batch(&self, group: &str, mqs: &[MessageQueue], client_id: &str) {
        let mut table = self.table.lock();
        if let Some(group_locks) = table.get_mut(group) {
            for mq in mqs {
                if group_locks.get(mq).map(|e| e.client_id == client_id).unwrap_or(false) {
                    group_locks.remove(mq);
                }
            }
            if group_locks.is_empty() {
                table.remove(group);
            }
        }
    }

    /// True if `client_id` holds a live lock on the queue.
    pub fn is_locked(&self, group: &str, mq: &MessageQueue, client_id: &str, now: i64) -> bool {
        self.table
            .lock()
            .get(group)
            .and_then(|g| g.get(mq))
            .map(|e| e.client_id == client_id && !e.expired(now, self.max_live_ms))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_renew_conflict_expiry_unlock() {
        let m = RebalanceLockManager::new(60_000);
        let q0 = MessageQueue::new("T", "b", 0);
        let q1 = MessageQueue::new("T", "b", 1);
        let got = m.try_lock_batch("g", &[q0.clone(), q1.clone()], "c1", 1_000);
        assert_eq!(got.len(), 2);
        let got = m.try_lock_batch("g", &[q0.clone(), q1.clone()], "c2", 2_000);
        assert!(got.is_empty(), "held by c1");
        let got = m.try_lock_batch("other", std::slice::from_ref(&q0), "c2", 2_000);
        assert_eq!(got.len(), 1, "groups are independent");
        // c1 renews q0 only; q1 expires.
        m.try_lock_batch("g", std::slice::from_ref(&q0), "c1", 50_000);
        let got = m.try_lock_batch("g", &[q0.clone(), q1.clone()], "c2", 61_001);
        assert_eq!(got.into_iter().collect::<Vec<_>>(), vec![q1.clone()]);
        assert!(m.is_locked("g", &q1, "c2", 61_001));
        assert!(!m.is_locked("g", &q1, "c1", 61_001));
        // Unlocking someone else's lock does nothing; one's own frees it.
        m.unlock_batch("g", std::slice::from_ref(&q0), "c2");
        assert!(m.is_locked("g", &q0, "c1", 61_001));
        m.unlock_batch("g", std::slice::from_ref(&q0), "c1");
        assert_eq!(m.try_lock_batch("g", std::slice::from_ref(&q0), "c2", 61_002).len(), 1);
    }
}
