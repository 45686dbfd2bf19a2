//! Apache's `BrokerStatsManager` views for VIEW_BROKER_STATS_DATA (`mqadmin statsAll`): each stats
//! item (`TOPIC_PUT_NUMS`/topic, `GROUP_GET_NUMS`/`topic@group`, ...) is sampled every 10 s (7
//! samples: a minute), every 10 min (7: an hour) and every hour (25: a day); a window's `sum` is
//! the growth over it, `tps` that growth per second, `avgpt` the growth per counted call.
//!
//! Deviation: the newest point of every window is the live counter (Apache uses its last
//! sample), so a just-started broker answers with what it has counted so far.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::core::BrokerCore;

/// Sampling period of the minute window.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const MINUTE_SAMPLES: usize = 7;
const HOUR_SAMPLES: usize = 7;
const DAY_SAMPLES: usize = 25;
/// Ticks of [`SAMPLE_EVERY`] between hour-window samples (10 min) and day-window samples (1 h).
const HOUR_TICKS: u64 = 60;
const DAY_TICKS: u64 = 360;

/// `(statsName, statsKey)` → `(value, times)`.
type Table = HashMap<(&'static str, String), (u64, u64)>;

struct Sample {
    at: i64,
    table: Table,
}

/// One window's figures (Apache's `BrokerStatsItem`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    /// Growth over the window.
    pub sum: u64,
    /// Growth per second.
    pub tps: f64,
    /// Growth per call.
    pub avgpt: f64,
}

/// The three windows of every stats item of one broker.
#[derive(Default)]
pub struct StatsWindows {
    inner: Mutex<Windows>,
}

#[derive(Default)]
struct Windows {
    ticks: u64,
    minute: VecDeque<Sample>,
    hour: VecDeque<Sample>,
    day: VecDeque<Sample>,
}

/// Every stats item of the broker now.
pub fn current(core: &BrokerCore) -> Table {
    let mut t: Table = HashMap::new();
    for (name, key, v, n) in core.stats.topics.items() {
        t.insert((name, key), (v, n));
    }
    let cluster = core.config().broker_cluster_name.clone();
    t.insert(("BROKER_PUT_NUMS", cluster.clone()), (core.stats.put_msgs.load(Relaxed), 0));
    t.insert(("BROKER_GET_NUMS", cluster), (core.stats.get_msgs.load(Relaxed), 0));
    t
}

fn push(q: &mut VecDeque<Sample>, cap: usize, s: Sample) {
    q.push_back(s);
    while q.len() > cap {
        q.pop_front();
    }
}

impl StatsWindows {
    /// Records one sample taken at `at` (called every [`SAMPLE_EVERY`]).
    pub fn sample(&self, at: i64, table: Table) {
        let mut w = self.inner.lock();
        let tick = w.ticks;
        w.ticks += 1;
        if tick % DAY_TICKS == 0 {
            push(&mut w.day, DAY_SAMPLES, Sample { at, table: table.clone() });
        }
        if tick % HOUR_TICKS == 0 {
            push(&mut w.hour, HOUR_SAMPLES, Sample { at, table: table.clone() });
        }
        push(&mut w.minute, MINUTE_SAMPLES, Sample { at, table });
    }

    /// Minute, hour and day figures of one item, measured up to `now`'s value; `since` is when
    /// counting began (the start of a window with no sample yet).
    pub fn view(&self, name: &str, key: &str, now: (i64, u64, u64), since: i64) -> [WindowStats; 3] {
        let w = self.inner.lock();
        let k = (name_static(name), key.to_string());
        let one = |q: &VecDeque<Sample>| {
            let (at, v, n) = match q.front() {
                Some(s) => {
                    let (v, n) = s.table.get(&k).copied().unwrap_or((0, 0));
                    (s.at, v, n)
                }
                None => (since, 0, 0),
            };
            let sum = now.1.saturating_sub(v);
            let calls = now.2.saturating_sub(n);
            let ms = now.0 - at;
            WindowStats {
                sum,
                tps: if ms > 0 { sum as f64 * 1000.0 / ms as f64 } else { 0.0 },
                avgpt: if calls > 0 { sum as f64 / calls as f64 } else { 0.0 },
            }
        };
        [one(&w.minute), one(&w.hour), one(&w.day)]
    }

    /// Samples in the minute window.
    pub fn len(&self) -> usize {
        self.inner.lock().minute.len()
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The stats names this broker keeps.
pub const STATS_NAMES: [&str; 6] =
    ["TOPIC_PUT_NUMS", "TOPIC_PUT_SIZE", "GROUP_GET_NUMS", "GROUP_GET_SIZE", "BROKER_PUT_NUMS", "BROKER_GET_NUMS"];

fn name_static(name: &str) -> &'static str {
    STATS_NAMES.iter().copied().find(|n| *n == name).unwrap_or("")
}

/// Samples the broker's counters every [`SAMPLE_EVERY`] until cancelled.
pub async fn sampling_loop(core: std::sync::Arc<BrokerCore>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let table = current(&core);
        core.stats_windows.sample(crate::util::now_millis(), table);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_measure_growth_since_their_oldest_sample() {
        let w = StatsWindows::default();
        let k = ("TOPIC_PUT_NUMS", "T".to_string());
        for i in 0..10u64 {
            let mut t = Table::new();
            t.insert(k.clone(), (i * 10, i));
            w.sample(i as i64 * 10_000, t);
        }
        // The minute window keeps the last 7 samples (from i = 3: value 30, 3 calls).
        let [m, h, d] = w.view("TOPIC_PUT_NUMS", "T", (100_000, 100, 10), 0);
        assert_eq!(m.sum, 70);
        assert!((m.tps - 1.0).abs() < 1e-9, "{m:?}");
        assert!((m.avgpt - 10.0).abs() < 1e-9);
        // The hour and day windows hold only the first sample (value 0 at t = 0).
        assert_eq!((h.sum, d.sum), (100, 100));
        assert_eq!(w.view("TOPIC_PUT_NUMS", "U", (100_000, 0, 0), 0)[0].sum, 0);
    }
}
