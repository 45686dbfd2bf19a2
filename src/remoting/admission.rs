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
    /// Requests admitted and not yet begun, for [`Admission::head_wait_ms`]: slot `seq % WAIT_SLOTS`
    /// holds the request's tag and admission time ([`pack`]), or 0 when free. Lock-free: a request
    /// takes its slot with one compare-and-swap if free (else it is not tracked: the slot's holder is
    /// older) and frees it with another when its processing begins.
    waiting: Box<[AtomicU64]>,
    /// Time base of the admission times in `waiting`.
    epoch: Instant,
    next_seq: AtomicU64,
}

/// Slots of [`Admission::waiting`]: enough for the head wait of any queue that is not full of
/// requests stuck for longer than the oldest (8 KiB per queue).
const WAIT_SLOTS: usize = 1024;
/// Bits of a slot that hold the admission time (ms after the queue's epoch, plus one), enough
/// for 8,900 years; the other 24 bits hold the admission number's low bits.
const TIME_BITS: u32 = 40;

/// A slot value: the admission number's low bits and the admission time (never 0).
fn pack(seq: u64, ms: u64) -> u64 {
    (seq << TIME_BITS) | ((ms + 1) & ((1 << TIME_BITS) - 1))
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
            waiting: (0..WAIT_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
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
    /// when none waits): Apache's `headSlowTimeMills` of a thread pool queue. Exact while the
    /// oldest waiting request holds a slot (always, unless a request admitted `WAIT_SLOTS` earlier
    /// held it then and began since: then the oldest tracked one is reported).
    pub fn head_wait_ms(&self) -> u64 {
        let oldest = self
            .waiting
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&v| v != 0)
            .map(|v| (v & ((1 << TIME_BITS) - 1)) - 1)
            .min();
        let now = self.epoch.elapsed().as_millis() as u64;
        oldest.map_or(0, |at| now.saturating_sub(at))
    }
    /// Takes a place in the queue, or `None` (counted as refused) when it is full.
    pub(super) fn try_enter(self: &Arc<Self>) -> Option<AdmissionGuard> {
        let n = self.in_queue.fetch_add(1, Ordering::AcqRel);
        if n >= self.capacity {
            self.in_queue.fetch_sub(1, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let tag = pack(seq, self.epoch.elapsed().as_millis() as u64);
        let slot = (seq % WAIT_SLOTS as u64) as usize;
        let tracked = self.waiting[slot].compare_exchange(0, tag, Ordering::AcqRel, Ordering::Relaxed).is_ok();
        Some(AdmissionGuard { queue: self.clone(), slot, tag: AtomicU64::new(if tracked { tag } else { 0 }) })
    }
}

/// A place in an [`Admission`] queue, given back when the request is answered.
pub(super) struct AdmissionGuard {
    queue: Arc<Admission>,
    slot: usize,
    /// The value this request put in its slot, until its processing begins (0: none).
    tag: AtomicU64,
}

impl AdmissionGuard {
    /// The request's processing begins: it no longer waits in the queue.
    pub(super) fn begin(&self) {
        let tag = self.tag.swap(0, Ordering::Relaxed);
        if tag != 0 {
            // Only this request ever clears its own value.
            let _ = self.queue.waiting[self.slot].compare_exchange(tag, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

impl Drop for AdmissionGuard {
    fn drop(&mut self) {
        self.begin();
        self.queue.in_queue.fetch_sub(1, Ordering::AcqRel);
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

    #[test]
    fn slots_are_shared_without_losing_the_head() {
        // More requests waiting than slots: those that found their slot taken are not tracked, and
        // the head is still the oldest one waiting.
        let a = Admission::new("send", 3 * WAIT_SLOTS, Duration::ZERO);
        let old = a.try_enter().unwrap();
        std::thread::sleep(Duration::from_millis(20)); // ages `old`; not a synchronisation
        let rest: Vec<_> = (0..2 * WAIT_SLOTS).map(|_| a.try_enter().unwrap()).collect();
        assert!(a.head_wait_ms() >= 20);
        old.begin();
        assert!(a.head_wait_ms() < 20, "{}", a.head_wait_ms());
        for g in &rest {
            g.begin();
        }
        assert_eq!(a.head_wait_ms(), 0);
        drop(rest);
        drop(old);
        assert!(a.is_empty());
        // Enter and begin from several threads at once: every slot is free again at the end.
        let a2 = a.clone();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let a = a2.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let g = a.try_enter().unwrap();
                        g.begin();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(a.is_empty());
        assert!(a.waiting.iter().all(|s| s.load(Ordering::Relaxed) == 0));
    }
}
