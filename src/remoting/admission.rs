//! Bounded request queues in front of processors (Apache's per-processor pools and their
//! `[OVERLOAD]` / `[TIMEOUT_CLEAN_QUEUE]` SYSTEM_BUSY answers), used by the shared server.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    /// Requests admitted so far.
    admitted: AtomicU64,
    pub(super) refused: AtomicU64,
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
            admitted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
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
        self.admitted.load(Ordering::Relaxed)
    }
    /// True when nothing is queued or running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Requests answered busy so far (either way).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
    pub(super) fn try_enter(self: &Arc<Self>) -> Option<AdmissionGuard> {
        let n = self.in_queue.fetch_add(1, Ordering::AcqRel);
        if n >= self.capacity {
            self.in_queue.fetch_sub(1, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.admitted.fetch_add(1, Ordering::Relaxed);
        Some(AdmissionGuard(self.clone()))
    }
}

/// A place in an [`Admission`] queue, given back when the request is answered.
pub(super) struct AdmissionGuard(Arc<Admission>);

impl Drop for AdmissionGuard {
    fn drop(&mut self) {
        self.0.in_queue.fetch_sub(1, Ordering::AcqRel);
    }
}
