//! Bounded request queues in front of processors (Apache's per-processor pools and their
//! `[OVERLOAD]` / `[TIMEOUT_CLEAN_QUEUE]` SYSTEM_BUSY answers), used by the shared server.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A bounded queue in front of a processor (Apache's per-processor thread pool queue): at most
/// `capacity` requests queued or running; a request that finds it full is answered SYSTEM_BUSY
/// `[OVERLOAD]` at once, and one that waited longer than `max_wait` before its processing began is
/// answered SYSTEM_BUSY `[TIMEOUT_CLEAN_QUEUE]` instead of being processed (Apache's
/// `BrokerFastFailure`). Shared by every code routed through it.
pub struct Admission {
    pub(super) name: &'static str,
    pub(super) capacity: usize,
    pub(super) max_wait: Duration,
    in_queue: AtomicUsize,
    pub(super) refused: AtomicU64,
    /// Requests admitted and not yet begun, by admission number: when each came in.
    waiting: parking_lot::Mutex<std::collections::BTreeMap<u64, Instant>>,
    next_seq: AtomicU64,
}

impl Admission {
    /// A queue named `name` (for logs) of `capacity` requests, refusing those older than `max_wait`
    /// when they come up (`Duration::ZERO`: no age limit).
    pub fn new(name: &'static str, capacity: usize, max_wait: Duration) -> Arc<Self> {
        Arc::new(Admission {
            name,
            capacity: capacity.max(1),
            max_wait,
            in_queue: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            waiting: parking_lot::Mutex::new(std::collections::BTreeMap::new()),
            next_seq: AtomicU64::new(0),
        })
    }
    /// The queue's name (`send`, `pull`, ...).
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// Requests queued or running now.
    pub fn len(&self) -> usize {
        self.in_queue.load(Ordering::Relaxed)
    }
    /// Requests admitted so far.
    pub fn admitted(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed)
    }
    /// True when nothing is queued or running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Requests answered busy so far (either way).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
    /// How long the oldest request still waiting for its processing to begin has waited, ms (0
    /// when none waits): Apache's `headSlowTimeMills` of a thread pool queue.
    pub fn head_wait_ms(&self) -> u64 {
        self.waiting.lock().first_key_value().map_or(0, |(_, at)| at.elapsed().as_millis() as u64)
    }
    pub(super) fn try_enter(self: &Arc<Self>) -> Option<AdmissionGuard> {
        let n = self.in_queue.fetch_add(1, Ordering::AcqRel);
        if n >= self.capacity {
            self.in_queue.fetch_sub(1, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.waiting.lock().insert(seq, Instant::now());
        Some(AdmissionGuard(self.clone(), seq))
    }
}

/// A place in an [`Admission`] queue, given back when the request is answered.
pub(super) struct AdmissionGuard(Arc<Admission>, u64);

impl AdmissionGuard {
    /// The request's processing begins: it no longer waits in the queue.
    pub(super) fn begin(&self) {
        self.0.waiting.lock().remove(&self.1);
    }
}

impl Drop for AdmissionGuard {
    fn drop(&mut self) {
        self.begin();
        self.0.in_queue.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_wait_is_the_age_of_the_oldest_request_not_yet_begun() {
        let a = Admission::new("send", 3, Duration::ZERO);
        assert_eq!(a.head_wait_ms(), 0);
        let first = a.try_enter().unwrap();
        let second = a.try_enter().unwrap();
        let third = a.try_enter().unwrap();
        assert!(a.try_enter().is_none(), "full");
        std::thread::sleep(Duration::from_millis(30)); // ages the queued requests; not a synchronisation
        assert!(a.head_wait_ms() >= 30, "{}", a.head_wait_ms());
        // Begun requests no longer wait; the head is the oldest that still does.
        first.begin();
        second.begin();
        let fresh = a.head_wait_ms();
        assert!(fresh >= 30, "the third still waits: {fresh}");
        drop(third);
        assert_eq!(a.head_wait_ms(), 0);
        assert_eq!(a.len(), 2);
        drop((first, second));
        assert!(a.is_empty());
        assert_eq!(a.refused(), 1);
    }
}
