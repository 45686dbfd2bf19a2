//! Adaptive per-broker CPU priority (issue 13). Each hosted broker runs on its own threads (its
//! runtime's workers and blocking threads, its store's flush and dispatch threads), registered
//! here by kernel thread id as they start. A governor samples the broker's admission queues and
//! its threads' CPU time; when the queues held more requests than the broker has worker threads
//! through a whole window, or its threads used a large share of a core (the broker is saturated or
//! heavy), while a neighbour in the container has work, is not saturated and uses at most half as
//! much CPU, the busy broker's threads are moved to a lower CPU weight (a higher nice value) and to
//! `SCHED_BATCH`, so that the neighbour's thread, when it wakes up with a request, gets the CPU
//! sooner. Once the broker is light again, or the neighbours are idle, saturated or as busy, the
//! threads get their own weight back. Linux only; elsewhere nothing changes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::remoting::Admission;

/// How a broker's threads are scheduled while it is saturated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyClass {
    /// Nice value (0..=19) given to the threads; 0 leaves their weight alone.
    pub nice: i32,
    /// Also `SCHED_BATCH`: the threads never preempt others when they wake up.
    pub batch: bool,
}

/// The governor's settings, from the broker's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrioritySettings {
    /// Adapt at all (`adaptivePriorityEnable`).
    pub enable: bool,
    /// The class of a saturated broker's threads (`adaptivePriorityBusyNice`,
    /// `adaptivePriorityBusyBatch`).
    pub busy: BusyClass,
    /// The sampling window (`adaptivePriorityWindowMillis`): ten samples a window.
    pub window: Duration,
}

impl PrioritySettings {
    /// The settings of a validated broker config.
    pub fn from_config(c: &super::config::BrokerConfig) -> Self {
        PrioritySettings {
            enable: c.adaptive_priority_enable,
            busy: BusyClass { nice: c.adaptive_priority_busy_nice, batch: c.adaptive_priority_busy_batch },
            window: Duration::from_millis(c.adaptive_priority_window_millis),
        }
    }
}

/// Samples taken per window.
const SAMPLES: u32 = 10;
/// A broker whose queues held more requests than it has worker threads in at least this many
/// samples of a window is saturated.
const BUSY_SAMPLES: u32 = 9;
/// A demoted broker whose queues held that many in at most this many samples of a window gets its
/// weight back.
const QUIET_SAMPLES: u32 = 5;

/// One registered thread.
#[derive(Debug, Clone, Copy)]
struct Member {
    tid: i32,
    /// Its nice value when it registered (given back on restore).
    base_nice: i32,
}

/// The threads of one broker, by kernel thread id, and whether they are demoted now.
#[derive(Debug, Default)]
pub struct BrokerThreads {
    members: Mutex<Vec<Member>>,
    /// The class applied now (`None`: the threads' own).
    applied: Mutex<Option<BusyClass>>,
    demoted: AtomicBool,
    demotions: AtomicU64,
    failures: AtomicU64,
}

impl BrokerThreads {
    /// An empty set.
    pub fn new() -> Arc<Self> {
        Arc::new(BrokerThreads::default())
    }

    /// Registers the calling thread (from the thread itself: its nice value now is its own); a
    /// thread that starts while the broker is demoted is demoted at once.
    pub fn register_current(&self) {
        let Some(tid) = crate::util::current_tid() else { return };
        let member = Member { tid, base_nice: os::own_nice() };
        let applied = self.applied.lock();
        self.members.lock().push(member);
        if applied.is_some() {
            self.apply(tid, member.base_nice, *applied);
        }
    }

    /// Registers threads started elsewhere (the store's), whose nice value is the process's.
    pub fn register(&self, tids: &[i32]) {
        let applied = self.applied.lock();
        let mut members = self.members.lock();
        for &tid in tids {
            if members.iter().any(|m| m.tid == tid) {
                continue;
            }
            let base_nice = os::thread_nice(tid);
            members.push(Member { tid, base_nice });
            if applied.is_some() {
                self.apply(tid, base_nice, *applied);
            }
        }
    }

    /// Forgets the calling thread (it is ending).
    pub fn unregister_current(&self) {
        if let Some(tid) = crate::util::current_tid() {
            self.members.lock().retain(|m| m.tid != tid);
        }
    }

    /// Kernel ids of the registered threads.
    pub fn tids(&self) -> Vec<i32> {
        self.members.lock().iter().map(|m| m.tid).collect()
    }

    /// CPU time the registered threads have used so far, ns (threads that ended are not
    /// counted: a difference over a window may come out low, never high, when one ends).
    pub fn cpu_ns(&self) -> u64 {
        self.members.lock().iter().filter_map(|m| os::thread_cpu_ns(m.tid)).sum()
    }

    /// Whether the threads are demoted now.
    pub fn is_demoted(&self) -> bool {
        self.demoted.load(Ordering::Acquire)
    }

    /// Times the broker was demoted so far.
    pub fn demotions(&self) -> u64 {
        self.demotions.load(Ordering::Relaxed)
    }

    /// Scheduling calls that failed so far (a thread that ended meanwhile, or no permission).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Moves every registered thread to `class`.
    pub fn demote(&self, class: BusyClass) {
        let mut applied = self.applied.lock();
        if *applied == Some(class) {
            return;
        }
        self.apply_all(Some(class));
        *applied = Some(class);
        self.demoted.store(true, Ordering::Release);
        self.demotions.fetch_add(1, Ordering::Relaxed);
    }

    /// Gives every registered thread its own class back.
    pub fn restore(&self) {
        let mut applied = self.applied.lock();
        if applied.is_none() {
            return;
        }
        self.apply_all(None);
        *applied = None;
        self.demoted.store(false, Ordering::Release);
    }

    /// Moves every registered thread to `class` (`None`: its own class back).
    fn apply_all(&self, class: Option<BusyClass>) {
        for m in self.members.lock().iter() {
            self.apply(m.tid, m.base_nice, class);
        }
    }

    /// Moves thread `tid`, whose own nice value is `base`, to `class` (`None`: back to its own
    /// class); a call that fails is counted.
    fn apply(&self, tid: i32, base: i32, class: Option<BusyClass>) {
        let (nice, batch) = match class {
            Some(class) => (busy_nice(class, base), class.batch),
            None => (base, false),
        };
        if os::apply(tid, nice, batch).is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The nice value of a demoted thread whose own is `base`: the busy class's, never below its own,
/// and its own where this process could not give the lower value back afterwards (no
/// CAP_SYS_NICE and no room in RLIMIT_NICE; `SCHED_BATCH` alone needs neither).
fn busy_nice(class: BusyClass, base: i32) -> i32 {
    if class.nice > base && os::can_lower_nice() {
        class.nice
    } else {
        base
    }
}

/// What one hosted broker showed over its last window.
#[derive(Debug, Default)]
struct Load {
    /// Work waited for its threads through the window (its queues held more requests than it
    /// has workers).
    saturated: AtomicBool,
    /// It admitted requests in the window.
    active: AtomicBool,
    /// CPU its threads used in the window, in thousandths of one core.
    cpu_permille: AtomicU64,
}

/// One broker's last window, as the decision reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// Its queues held more requests than it has workers through the window.
    queue_saturated: bool,
    /// It admitted requests in the window.
    active: bool,
    /// CPU its threads used, thousandths of one core.
    cpu_permille: u64,
}

impl Load {
    fn window(&self) -> Window {
        Window {
            queue_saturated: self.saturated.load(Ordering::Acquire),
            active: self.active.load(Ordering::Acquire),
            cpu_permille: self.cpu_permille.load(Ordering::Acquire),
        }
    }
}

/// A broker whose threads used at least this share of one core (thousandths) in a window is
/// heavy: with a lighter neighbour that has work, it yields.
const HEAVY_PERMILLE: u64 = 400;

/// Whether a broker that showed `me` over its last window (and is `demoted` now) should run at
/// the busy class, given its neighbours' last windows. It yields when it is saturated (its
/// queues) or heavy (its CPU) while a neighbour with work, not saturated itself, uses at most half
/// its CPU; once demoted it stays so while such a neighbour still uses less than it does (its
/// share drops once it yields: the looser bound keeps it from flapping). A broker alone, or next
/// to idle or saturated neighbours only, keeps its weight.
fn should_yield(demoted: bool, me: Window, neighbours: &[Window]) -> bool {
    let heavy_at = if demoted { HEAVY_PERMILLE / 2 } else { HEAVY_PERMILLE };
    if !(me.queue_saturated || me.cpu_permille >= heavy_at) {
        return false;
    }
    neighbours.iter().any(|n| {
        n.active
            && !n.queue_saturated
            && if demoted {
                n.cpu_permille < me.cpu_permille
            } else {
                n.cpu_permille.saturating_mul(2) <= me.cpu_permille || me.queue_saturated
            }
    })
}

/// The hosted brokers' last windows, shared by their governors: a saturated or heavy broker is
/// demoted only while a lighter neighbour has work (with no such neighbour there is nobody to
/// yield to, and brokers saturated together share the CPU at equal weight).
#[derive(Debug, Default)]
pub struct PriorityBoard {
    loads: Mutex<Vec<std::sync::Weak<Load>>>,
}

impl PriorityBoard {
    /// An empty board (one per container).
    pub fn new() -> Arc<Self> {
        Arc::new(PriorityBoard::default())
    }

    fn join(&self) -> Arc<Load> {
        let load = Arc::new(Load::default());
        let mut loads = self.loads.lock();
        loads.retain(|l| l.strong_count() > 0);
        loads.push(Arc::downgrade(&load));
        load
    }

    /// The last windows of the brokers other than `me`.
    fn neighbours(&self, me: &Arc<Load>) -> Vec<Window> {
        self.loads
            .lock()
            .iter()
            .filter_map(|l| l.upgrade())
            .filter(|l| !Arc::ptr_eq(l, me))
            .map(|l| l.window())
            .collect()
    }
}

/// Watches a broker's admission queues and its threads' CPU time and demotes or restores its
/// threads (see the module doc).
pub struct PriorityGovernor {
    board: Arc<PriorityBoard>,
    threads: Arc<BrokerThreads>,
    /// Thread ids started outside the broker's runtime (its store's), registered every window
    /// (a thread may register its id after the broker read the list first).
    more_threads: Box<dyn Fn() -> Vec<i32> + Send + Sync>,
    queues: Vec<Arc<Admission>>,
    workers: usize,
    settings: PrioritySettings,
}

impl PriorityGovernor {
    /// A governor of `threads` and `more_threads` (of which `workers` run requests) driven by
    /// `queues`, telling and asking its neighbours on `board`. The pull queue is left out: held long polls count in it
    /// without using a thread.
    pub fn new(
        board: Arc<PriorityBoard>,
        threads: Arc<BrokerThreads>,
        more_threads: Box<dyn Fn() -> Vec<i32> + Send + Sync>,
        queues: Vec<Arc<Admission>>,
        workers: usize,
        settings: PrioritySettings,
    ) -> Self {
        let queues = queues.into_iter().filter(|q| q.name() != "pull").collect();
        PriorityGovernor { board, threads, more_threads, queues, workers: workers.max(1), settings }
    }

    /// Samples until `cancel`; the threads get their own class back when it ends.
    pub async fn run(self, cancel: CancellationToken) {
        if !self.settings.enable || !os::SUPPORTED {
            return;
        }
        let load = self.board.join();
        let tick = (self.settings.window / SAMPLES).max(Duration::from_millis(1));
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let admitted = || self.queues.iter().map(|q| q.admitted()).sum::<u64>();
        self.threads.register(&(self.more_threads)());
        let (mut taken, mut busy, mut since) = (0u32, 0u32, admitted());
        let (mut cpu_since, mut at) = (self.threads.cpu_ns(), std::time::Instant::now());
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = interval.tick() => {}
            }
            taken += 1;
            // More requests in the queues than worker threads: some wait for a thread.
            if self.queues.iter().map(|q| q.len()).sum::<usize>() > self.workers {
                busy += 1;
            }
            if taken < SAMPLES {
                continue;
            }
            let now = admitted();
            self.threads.register(&(self.more_threads)());
            let (cpu, now_at) = (self.threads.cpu_ns(), std::time::Instant::now());
            let elapsed = now_at.duration_since(at).as_nanos().max(1) as u64;
            let cpu_permille = cpu.saturating_sub(cpu_since).saturating_mul(1000) / elapsed;
            let demoted = self.threads.is_demoted();
            let me = Window {
                queue_saturated: busy >= BUSY_SAMPLES || (demoted && busy > QUIET_SAMPLES),
                active: now != since,
                cpu_permille,
            };
            load.active.store(me.active, Ordering::Release);
            load.saturated.store(me.queue_saturated, Ordering::Release);
            load.cpu_permille.store(me.cpu_permille, Ordering::Release);
            let yield_cpu = should_yield(demoted, me, &self.board.neighbours(&load));
            if yield_cpu && !demoted {
                tracing::debug!(
                    busy,
                    cpu_permille,
                    "broker heavy next to a lighter neighbour with work: its threads yield"
                );
                self.threads.demote(self.settings.busy);
            } else if !yield_cpu && demoted {
                tracing::debug!(
                    busy,
                    cpu_permille,
                    "broker light again, or alone in need: its threads get their weight back"
                );
                self.threads.restore();
            }
            (taken, busy, since) = (0, 0, now);
            (cpu_since, at) = (self.threads.cpu_ns(), std::time::Instant::now());
        }
        load.active.store(false, Ordering::Release);
        self.threads.restore();
    }
}

#[cfg(target_os = "linux")]
mod os {
    /// Per-thread scheduling works here.
    pub const SUPPORTED: bool = true;

    /// The calling thread's nice value.
    pub fn own_nice() -> i32 {
        thread_nice(0)
    }

    /// A thread's nice value (0 when it cannot be read).
    pub fn thread_nice(tid: i32) -> i32 {
        // SAFETY: getpriority only reads the scheduling attributes of the thread `tid` (0: the
        // caller); it touches no memory of ours. With PRIO_PROCESS and a tid, Linux reads that one
        // thread. For a thread of this process it can fail only if the thread ended, which
        // returns -1: taken as a nice value it is merely not restored exactly for a dead thread.
        let n = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
        n.clamp(-20, 19)
    }

    /// CPU time thread `tid` of this process has run so far, ns (`/proc/self/task/<tid>/schedstat`,
    /// first field); `None` once it ended.
    pub fn thread_cpu_ns(tid: i32) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        s.split_whitespace().next()?.parse().ok()
    }

    /// Whether this process may lower a thread's nice value again (CAP_SYS_NICE or room in
    /// RLIMIT_NICE): tried once, on a thread of its own that ends at once.
    pub fn can_lower_nice() -> bool {
        static CAN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *CAN.get_or_init(|| {
            let probe = std::thread::Builder::new().name("nice-probe".into()).spawn(|| {
                let base = own_nice();
                if base >= 19 {
                    return false;
                }
                // SAFETY: as in `apply`, for the calling thread (0): raises, then lowers its own
                // nice value; no memory of ours is touched. The thread ends right after.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, 0, base + 1) == 0
                        && libc::setpriority(libc::PRIO_PROCESS, 0, base) == 0
                }
            });
            let can = probe.ok().and_then(|t| t.join().ok()).unwrap_or(false);
            if !can {
                tracing::info!(
                    "adaptive priority: no permission to give a nice value back (CAP_SYS_NICE or RLIMIT_NICE); \
                     saturated brokers' threads only move to SCHED_BATCH"
                );
            }
            can
        })
    }

    /// Gives thread `tid` the nice value `nice` and the policy SCHED_BATCH (`batch`) or
    /// SCHED_OTHER.
    pub fn apply(tid: i32, nice: i32, batch: bool) -> std::io::Result<()> {
        let policy = if batch { libc::SCHED_BATCH } else { libc::SCHED_OTHER };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param that lives across the call, which only reads it;
        // the call changes the scheduling policy of thread `tid` of this process and nothing else.
        if unsafe { libc::sched_setscheduler(tid, policy, &param) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: setpriority changes the nice value of thread `tid` (PRIO_PROCESS with a tid
        // addresses one thread on Linux); it reads and writes no memory of ours.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    /// Per-thread scheduling is not done here.
    pub const SUPPORTED: bool = false;

    /// The calling thread's nice value (unknown: 0).
    pub fn own_nice() -> i32 {
        0
    }

    /// A thread's nice value (unknown: 0).
    pub fn thread_nice(_tid: i32) -> i32 {
        0
    }

    /// CPU time per thread is not read here.
    pub fn thread_cpu_ns(_tid: i32) -> Option<u64> {
        None
    }

    /// Nice values are not changed here.
    pub fn can_lower_nice() -> bool {
        false
    }

    /// Does nothing.
    pub fn apply(_tid: i32, _nice: i32, _batch: bool) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(queue_saturated: bool, active: bool, cpu_permille: u64) -> Window {
        Window { queue_saturated, active, cpu_permille }
    }

    #[test]
    fn a_heavy_or_saturated_broker_yields_only_to_a_lighter_neighbour_with_work() {
        let heavy = w(false, true, 900);
        assert!(!should_yield(false, heavy, &[]), "alone: nobody to yield to");
        assert!(!should_yield(false, heavy, &[w(false, false, 0)]), "the neighbour is idle");
        assert!(should_yield(false, heavy, &[w(false, true, 300)]), "a light neighbour with work");
        assert!(!should_yield(false, heavy, &[w(false, true, 600)]), "the neighbour uses more than half as much");
        assert!(!should_yield(false, heavy, &[w(true, true, 100)]), "a saturated neighbour gets no precedence");
        assert!(!should_yield(false, w(false, true, 300), &[w(false, true, 10)]), "not heavy");
        assert!(should_yield(false, w(true, true, 300), &[w(false, true, 250)]), "queues saturated");
        // Demoted: its share drops; it stays demoted while the neighbour still uses less.
        assert!(should_yield(true, w(false, true, 500), &[w(false, true, 450)]));
        assert!(!should_yield(true, w(false, true, 500), &[w(false, true, 550)]), "the neighbour now uses more");
        assert!(!should_yield(true, w(false, true, 150), &[w(false, true, 10)]), "light again");
        assert!(!should_yield(true, w(false, true, 900), &[w(false, false, 0)]), "the neighbour went quiet");
    }

    #[test]
    fn the_board_shows_each_broker_its_neighbours_only() {
        let board = PriorityBoard::new();
        let (a, b) = (board.join(), board.join());
        b.active.store(true, Ordering::Release);
        b.cpu_permille.store(120, Ordering::Release);
        assert_eq!(board.neighbours(&a), vec![w(false, true, 120)]);
        assert_eq!(board.neighbours(&b), vec![w(false, false, 0)]);
        drop(b);
        assert!(board.neighbours(&a).is_empty(), "b is gone");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_threads_cpu_time_is_read_and_grows_while_it_runs() {
        let threads = BrokerThreads::new();
        threads.register_current();
        let before = threads.cpu_ns();
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < Duration::from_millis(20) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(threads.cpu_ns() > before, "a spinning thread's CPU time did not grow");
        threads.unregister_current();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn demoted_threads_get_the_busy_class_and_their_own_back() {
        fn class_of(tid: i32) -> (i64, i64) {
            let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
            let f: Vec<&str> = stat[stat.rfind(')').map_or(0, |i| i + 1)..].split_whitespace().collect();
            (f[16].parse().unwrap_or(-99), f[38].parse().unwrap_or(-99))
        }
        let threads = BrokerThreads::new();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = {
            let threads = threads.clone();
            std::thread::spawn(move || {
                threads.register_current();
                let _ = rx.recv();
                threads.unregister_current();
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while threads.tids().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the thread never registered");
            std::thread::yield_now();
        }
        let tid = threads.tids()[0];
        let own = class_of(tid);
        threads.demote(BusyClass { nice: 7, batch: true });
        assert!(threads.is_demoted());
        let nice = if os::can_lower_nice() { 7.max(own.0) } else { own.0 };
        assert_eq!(class_of(tid), (nice, 3), "SCHED_BATCH (3) at the busy nice value");
        threads.restore();
        assert!(!threads.is_demoted());
        assert_eq!(class_of(tid), own);
        assert_eq!(threads.failures(), 0);
        let _ = tx.send(());
        t.join().unwrap();
        assert!(threads.tids().is_empty());
    }
}
