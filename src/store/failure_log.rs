//! Rate limiting for the log lines of a failure that repeats until its cause goes away (a full
//! disk, a stuck dispatch): the first failure is logged in full, then at most one reminder per
//! interval with a count, and the recovery once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Default interval between two reminders of an ongoing failure.
pub const REMINDER_INTERVAL: Duration = Duration::from_secs(60);

/// What the caller should log for a failure it just saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureNote {
    /// The first failure of an episode: log it in full.
    First,
    /// Still failing and the last line is older than the interval: log a reminder.
    Still {
        /// Failed attempts since the episode began.
        failures: u64,
        /// Time since the episode began.
        since: Duration,
    },
    /// Logged recently: stay quiet.
    Quiet,
}

/// The end of a failure episode, reported once by [`FailureLog::succeeded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Failed attempts during the episode.
    pub failures: u64,
    /// How long the episode lasted.
    pub lasted: Duration,
}

#[derive(Debug)]
struct Episode {
    since: Instant,
    last_line: Instant,
}

/// Tracks one kind of recurring failure and tells the caller when to log.
#[derive(Debug)]
pub struct FailureLog {
    interval: Duration,
    failing: AtomicBool,
    failures: AtomicU64,
    lines: AtomicU64,
    episode: Mutex<Option<Episode>>,
}

impl Default for FailureLog {
    fn default() -> Self {
        FailureLog::new(REMINDER_INTERVAL)
    }
}

impl FailureLog {
    /// A tracker that allows one reminder per `interval`.
    pub fn new(interval: Duration) -> FailureLog {
        FailureLog {
            interval,
            failing: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            lines: AtomicU64::new(0),
            episode: Mutex::new(None),
        }
    }

    /// Records a failure; says whether (and how) to log it.
    pub fn failed(&self) -> FailureNote {
        let mut ep = self.episode.lock();
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let now = Instant::now();
        let note = match ep.as_mut() {
            None => {
                *ep = Some(Episode { since: now, last_line: now });
                FailureNote::First
            }
            Some(e) if now.duration_since(e.last_line) >= self.interval => {
                e.last_line = now;
                FailureNote::Still { failures, since: now.duration_since(e.since) }
            }
            Some(_) => FailureNote::Quiet,
        };
        self.failing.store(true, Ordering::Release);
        if note != FailureNote::Quiet {
            self.lines.fetch_add(1, Ordering::Relaxed);
        }
        note
    }

    /// Records a success; returns the episode it ended, if one was going on (log it then).
    /// Cheap when nothing failed.
    pub fn succeeded(&self) -> Option<Recovery> {
        if !self.failing.load(Ordering::Acquire) {
            return None;
        }
        let mut ep = self.episode.lock();
        let e = ep.take()?;
        self.failing.store(false, Ordering::Release);
        self.lines.fetch_add(1, Ordering::Relaxed);
        let failures = self.failures.swap(0, Ordering::AcqRel);
        Some(Recovery { failures, lasted: e.since.elapsed() })
    }

    /// Failed attempts in the current episode (0 when not failing).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    /// A failure episode is going on.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Lines this tracker let through so far (first failures, reminders, recoveries).
    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_quiet_then_reminder_then_recovery() {
        let l = FailureLog::new(Duration::from_millis(50));
        assert_eq!(l.succeeded(), None);
        assert_eq!(l.failed(), FailureNote::First);
        for _ in 0..100 {
            assert_eq!(l.failed(), FailureNote::Quiet);
        }
        assert_eq!(l.failures(), 101);
        let deadline = Instant::now() + Duration::from_secs(5);
        let note = loop {
            match l.failed() {
                FailureNote::Quiet => assert!(Instant::now() < deadline),
                n => break n,
            }
        };
        assert!(matches!(note, FailureNote::Still { failures, .. } if failures > 101));
        let r = l.succeeded().expect("episode ended");
        assert!(r.failures > 101);
        assert_eq!(l.succeeded(), None);
        assert_eq!(l.failures(), 0);
        assert_eq!(l.lines(), 3);
        assert_eq!(l.failed(), FailureNote::First, "a new episode starts over");
    }
}
