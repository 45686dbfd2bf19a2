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

/// Samples the broker's counters until cancelled: the rate counters every [`RATE_SAMPLE_EVERY`],
/// the stats items every [`SAMPLE_EVERY`].
pub async fn sampling_loop(core: std::sync::Arc<BrokerCore>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(RATE_SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let every = (SAMPLE_EVERY.as_millis() / RATE_SAMPLE_EVERY.as_millis()).max(1) as u64;
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = crate::util::now_millis();
        core.rates.sample(now, core.rate_counters(), local_day(now));
        if n % every == 0 {
            let table = current(&core);
            core.stats_windows.sample(now, table);
        }
        n += 1;
    }
}

/// Sampling period of the rate counters (Apache's `StoreStatsService` samples every second).
pub const RATE_SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Rate samples kept: ten minutes and one (Apache's longest TPS window is 600 s).
const RATE_SAMPLES: usize = 601;

/// The counters behind runtime info's TPS figures, as they are at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateCounters {
    /// Messages stored.
    pub put: u64,
    /// Reads (pulls, each look-up of a held pull) that found messages.
    pub get_found: u64,
    /// Reads that found none.
    pub get_miss: u64,
    /// Messages delivered to consumers.
    pub transferred: u64,
    /// Units written into the timer wheel.
    pub timer_enqueued: u64,
    /// Timer messages put back to their topic.
    pub timer_dequeued: u64,
}

/// Totals at the start of today and of yesterday (local time), Apache's `BrokerStats`: 0 until
/// the broker has seen a midnight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayTotals {
    /// Messages stored before today.
    pub put_today_morning: u64,
    /// Messages stored before yesterday.
    pub put_yesterday_morning: u64,
    /// Messages delivered before today.
    pub get_today_morning: u64,
    /// Messages delivered before yesterday.
    pub get_yesterday_morning: u64,
}

#[derive(Default)]
struct Rates {
    samples: VecDeque<(i64, RateCounters)>,
    day: Option<i64>,
    totals: DayTotals,
}

/// The last ten minutes of [`RateCounters`], one a second, and the day totals.
#[derive(Default)]
pub struct RateSamples {
    inner: Mutex<Rates>,
}

/// The local calendar day of `ms` as `yyyymmdd` (only its changes matter), for the day totals.
pub fn local_day(ms: i64) -> i64 {
    match crate::util::local_time(ms) {
        Some(t) => {
            let d = t.date();
            d.year() as i64 * 10_000 + d.month() as i64 * 100 + d.day() as i64
        }
        None => ms / 86_400_000,
    }
}

impl RateSamples {
    /// Records the counters at `at` (ms) on local day `day`; a new day moves the day totals.
    pub fn sample(&self, at: i64, c: RateCounters, day: i64) {
        let mut r = self.inner.lock();
        match r.day {
            Some(d) if d != day => {
                r.totals = DayTotals {
                    put_yesterday_morning: r.totals.put_today_morning,
                    put_today_morning: c.put,
                    get_yesterday_morning: r.totals.get_today_morning,
                    get_today_morning: c.transferred,
                };
            }
            _ => {}
        }
        r.day = Some(day);
        r.samples.push_back((at, c));
        while r.samples.len() > RATE_SAMPLES {
            r.samples.pop_front();
        }
    }

    /// The day totals.
    pub fn day_totals(&self) -> DayTotals {
        self.inner.lock().totals
    }

    /// Per-second growth of `pick` over the last `secs` seconds up to `now` (the live counters),
    /// from the newest sample at least that old; with none so old, from the oldest sample, or
    /// from 0 at `since` before the first sample.
    pub fn tps(&self, now: (i64, RateCounters), since: i64, secs: i64, pick: fn(&RateCounters) -> u64) -> f64 {
        let r = self.inner.lock();
        let limit = now.0 - secs * 1000;
        let base = r
            .samples
            .iter()
            .rev()
            .find(|(at, _)| *at <= limit)
            .or_else(|| r.samples.front())
            .map_or((since, 0), |(at, c)| (*at, pick(c)));
        let ms = now.0 - base.0;
        if ms <= 0 {
            return 0.0;
        }
        pick(&now.1).saturating_sub(base.1) as f64 * 1000.0 / ms as f64
    }

    /// Apache's three-window TPS text (`"<10 s> <60 s> <600 s>"`), each a Java double.
    pub fn tps_text(&self, now: (i64, RateCounters), since: i64, pick: fn(&RateCounters) -> u64) -> String {
        [10, 60, 600].map(|w| java_double(self.tps(now, since, w, pick))).join(" ")
    }
}

/// A number as Java's `Double.toString` writes it (`0.0`, `12.5`, `1.0E7`).
pub fn java_double(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{v:E}");
        match s.split_once('E') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0E{e}"),
            _ => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_day_totals() {
        let r = RateSamples::default();
        let c = |put: u64| RateCounters { put, transferred: put / 2, ..Default::default() };
        // Before any sample: growth since the start.
        assert_eq!(r.tps((2_000, c(10)), 0, 10, |c| c.put), 5.0);
        for i in 0..=700i64 {
            r.sample(i * 1000, c(i as u64 * 3), 1);
        }
        // 3 a second over each window, measured against the live counters.
        let now = (700_000, c(2100));
        assert_eq!(r.tps_text(now, 0, |c| c.put), "3.0 3.0 3.0");
        assert_eq!(r.tps_text(now, 0, |c| c.get_miss), "0.0 0.0 0.0");
        assert_eq!(r.day_totals(), DayTotals::default());
        r.sample(701_000, c(5000), 2);
        r.sample(702_000, c(6000), 3);
        let t = r.day_totals();
        assert_eq!((t.put_today_morning, t.put_yesterday_morning), (6000, 5000));
        assert_eq!((t.get_today_morning, t.get_yesterday_morning), (3000, 2500));
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(12.5), "12.5");
        assert_eq!(java_double(3.0), "3.0");
        assert_eq!(java_double(12_345_678.0), "1.2345678E7");
        assert!([19_691_231, 19_700_101, 19_700_102].contains(&local_day(0)), "{}", local_day(0));
    }

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
