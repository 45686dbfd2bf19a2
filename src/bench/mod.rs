//! `mqbench`: a load tool for any RocketMQ-compatible NameServer and broker, over the wire only.
//!
//! The producer keeps `in_flight` sends outstanding, round-robin over the writable queues of every
//! master in the topic's route, and reports throughput and latency percentiles; the consumer pulls
//! every read queue and reports end-to-end latency (born timestamp to consumed).
//!
//! Both follow the route as Apache's clients do (`pollNameServerInterval`, 30 s there, shorter
//! here): it is read again every [`ProducerOptions::route_refresh`] and right after a request fails
//! in a way a newer route may fix (topic not on the broker, connection refused or closed). A worker
//! whose request fails backs off (1 ms doubling to 1 s, reset by a success); the first failure of
//! each kind is reported once with its reason and every failure is counted per kind. The rate is
//! reported over the time requests were served (first success to last) next to the whole run's, so
//! a broker that dies halfway does not halve the figure.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::client::parse_namesrv_list;
use crate::client::route::route_request;
use crate::client::send::{send_header, send_request_owned};
use crate::protocol::body::{ClusterInfo, TopicRouteData};
use crate::protocol::codes::{request, response, response_name};
use crate::protocol::header::PullMessageRequestHeader;
use crate::protocol::message::{decode_records, encode_batch_body, encode_properties, BatchItem};
use crate::protocol::perm;
use crate::protocol::uniq::seq_uniq_key;
use crate::remoting::tls::TlsClient;
use crate::remoting::{ClientConfig, RemotingClient, RemotingCommand, RemotingError};

mod consumer;
mod producer;
mod route;

use consumer::report_until_done;
pub use consumer::run_consumer;
pub use producer::run_producer;
pub use route::route;
use route::*;

const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the route is read again by default (Apache's clients: every 30 s; a benchmark wants
/// to see a new broker or a dead one sooner).
pub const DEFAULT_ROUTE_REFRESH: Duration = Duration::from_secs(1);

/// The shortest gap between two route lookups: refreshes asked for by a burst of failures merge.
pub(crate) const MIN_REFRESH_GAP: Duration = Duration::from_millis(200);

/// The first pause of a worker after a failure; it doubles with each further failure.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(1);

/// The longest pause of a worker after failures.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long a run waits for a topic it just created to be routed on every master it created it on,
/// before it starts with the masters routed so far (the refresh adds the others later).
pub(crate) const ALL_MASTERS_WAIT: Duration = Duration::from_secs(5);

/// How sends are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    /// Wait for each response (latency measured).
    Sync,
    /// Many outstanding requests per connection, responses awaited (latency measured).
    Async,
    /// Fire and forget (no response, no latency).
    Oneway,
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// NameServer list `host:port;host:port`.
    pub namesrv: String,
    /// Topic.
    pub topic: String,
    /// Only this broker group's queues (None: all).
    pub broker_name: Option<String>,
    /// Requests outstanding at once.
    pub in_flight: usize,
    /// Body size in bytes.
    pub size: usize,
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Send mode.
    pub mode: SendMode,
    /// Messages per request (SEND_BATCH_MESSAGE when > 1).
    pub batch: usize,
    /// Give each message a KEYS property (indexed by the broker).
    pub keys: bool,
    /// Progress line period.
    pub report_every: Duration,
    /// How often the topic's route is read again ([`DEFAULT_ROUTE_REFRESH`]).
    pub route_refresh: Duration,
    /// At most this many requests per second overall, spread evenly (None: as fast as answered).
    pub rate: Option<u64>,
    /// TLS to the NameServers and brokers (None: plain).
    pub tls: Option<TlsClient>,
}

/// Spreads requests evenly at a fixed rate across every worker: request `k` (counted from 0) may
/// start no earlier than `k / rate` seconds after the start, so by any time `t` at most
/// `t * rate + 1` have started. A worker that falls behind sends at once (no burst beyond the
/// schedule, no slot skipped).
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    rate: u64,
    next: AtomicU64,
}

impl Pacer {
    /// A schedule of `rate` requests per second (at least 1) from `start`.
    pub fn new(start: Instant, rate: u64) -> Self {
        Pacer { start, rate: rate.max(1), next: AtomicU64::new(0) }
    }
    /// When request `k` may start, after the schedule's start.
    pub fn offset(&self, k: u64) -> Duration {
        Duration::from_nanos(((k as u128 * 1_000_000_000) / self.rate as u128) as u64)
    }
    /// Takes the next slot; returns when it may be used.
    pub fn next_at(&self) -> Instant {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        self.start + self.offset(k)
    }
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// NameServer list.
    pub namesrv: String,
    /// Topic.
    pub topic: String,
    /// Consumer group (offsets are committed with the pulls).
    pub group: String,
    /// Start from the first message instead of the current end.
    pub from_start: bool,
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Progress line period.
    pub report_every: Duration,
    /// How often the topic's route is read again ([`DEFAULT_ROUTE_REFRESH`]).
    pub route_refresh: Duration,
    /// TLS to the NameServers and brokers (None: plain).
    pub tls: Option<TlsClient>,
}

/// What a run tells while it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A periodic progress line (figures of the last period).
    Progress(String),
    /// Something worth a line of its own, once: the first failure of a kind with its reason, a
    /// route that changed or could not be read.
    Notice(String),
}

/// The final figures of a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Messages per second over the served time (`served_seconds`): the rate the cluster kept
    /// while it answered.
    pub tps: f64,
    /// Messages per second over the whole run (`seconds`).
    pub overall_tps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// Mean latency, ms.
    pub avg_ms: f64,
    /// Messages sent (producer) or received (consumer).
    pub sent: u64,
    /// Failed requests.
    pub failures: u64,
    /// Failed requests per kind: `code 17 TOPIC_NOT_EXIST`, `connection refused`, `timeout`, ...
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Wall time of the run, s.
    pub seconds: f64,
    /// The served window, s: from the start of the first request that succeeded to the end of the
    /// last one (0 when none did).
    pub served_seconds: f64,
}

/// Errors that stop a run before it starts.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The NameServer or broker could not be asked.
    #[error(transparent)]
    Remoting(#[from] crate::remoting::RemotingError),
    /// The topic has no usable queue.
    #[error("{0}")]
    Route(String),
}

pub(crate) fn new_hist() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| Histogram::new(3).expect("a histogram"))
}

/// Why a request failed, grouped for counting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The group: a response code with its name, or a transport error kind.
    kind: String,
    /// The whole reason, for the first report of the kind.
    detail: String,
    /// Whether a newer route may help (the route is read again right away).
    route: bool,
}

/// A transport error as a [`Failure`].
pub(crate) fn transport_failure(e: &RemotingError) -> Failure {
    let kind = match e {
        RemotingError::Connect { reason, .. } => {
            let r = reason.to_ascii_lowercase();
            if r.contains("refused") {
                "connection refused".to_string()
            } else if r.contains("timed out") {
                "connect timeout".to_string()
            } else {
                "connect failed".to_string()
            }
        }
        RemotingError::Timeout { .. } => "timeout".to_string(),
        RemotingError::ConnectionClosed { .. } => "connection closed".to_string(),
        RemotingError::Shutdown => "client shut down".to_string(),
        RemotingError::Io(io) => format!("i/o error ({:?})", io.kind()),
        RemotingError::FrameTooLarge { .. } | RemotingError::BadFrame(_) | RemotingError::BadHeader(_) => {
            "bad response frame".to_string()
        }
        RemotingError::PortInUse { .. } => "port in use".to_string(),
    };
    Failure { kind, detail: e.to_string(), route: true }
}

/// A response other than SUCCESS as a [`Failure`].
pub(crate) fn response_failure(addr: &str, resp: &RemotingCommand) -> Failure {
    let kind = format!("code {} {}", resp.code, response_name(resp.code));
    let route = matches!(
        resp.code,
        response::TOPIC_NOT_EXIST
            | response::NO_PERMISSION
            | response::SERVICE_NOT_AVAILABLE
            | response::NOT_LEADER_FOR_QUEUE
            | response::BROKER_NOT_EXIST
            | response::GO_AWAY
    );
    let remark = resp.remark.as_deref().unwrap_or("").trim();
    let detail =
        if remark.is_empty() { format!("{addr} answered {kind}") } else { format!("{addr} answered {kind}: {remark}") };
    Failure { kind, detail, route }
}

/// The exponential back-off of one worker: 1 ms doubling to 1 s, reset by a success.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// The pause after one more failure.
    fn fail(&mut self) -> Duration {
        let d = self.next.unwrap_or(BACKOFF_MIN);
        self.next = Some((d * 2).min(BACKOFF_MAX));
        d
    }
    /// A success: the next failure pauses the shortest time again.
    fn reset(&mut self) {
        self.next = None;
    }
}

/// Sleeps `d`, but not past the run's deadline nor once the run is stopped.
pub(crate) async fn pause(d: Duration, deadline: Option<Instant>, stop: &CancellationToken) {
    let d = match deadline {
        Some(end) => d.min(end.saturating_duration_since(Instant::now())),
        None => d,
    };
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Latencies (µs), counters and the served window, shared by workers and the reporter.
pub(crate) struct Stats {
    start: Instant,
    /// `start` on the wall clock, ms (to place born timestamps).
    start_wall_ms: i64,
    interval: Mutex<Histogram<u64>>,
    total: Mutex<Histogram<u64>>,
    ok: AtomicU64,
    failures: AtomicU64,
    /// µs since `start` when the first successful request began (`u64::MAX`: none yet).
    first_ok_us: AtomicU64,
    /// µs since `start` when the last successful request ended.
    last_ok_us: AtomicU64,
    kinds: Mutex<BTreeMap<String, u64>>,
    notices: Mutex<Vec<String>>,
}

impl Stats {
    fn new() -> Self {
        Stats {
            start: Instant::now(),
            start_wall_ms: crate::util::now_millis(),
            interval: Mutex::new(new_hist()),
            total: Mutex::new(new_hist()),
            ok: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            first_ok_us: AtomicU64::new(u64::MAX),
            last_ok_us: AtomicU64::new(0),
            kinds: Mutex::new(BTreeMap::new()),
            notices: Mutex::new(Vec::new()),
        }
    }
    fn us_since_start(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_micros() as u64
    }
    /// `n` messages went through in a request that began at `began` and ended now.
    fn ok(&self, began: Instant, n: u64) {
        self.ok_since(self.us_since_start(began), n);
    }
    fn ok_since(&self, began_us: u64, n: u64) {
        self.ok.fetch_add(n, Ordering::Relaxed);
        if began_us < self.first_ok_us.load(Ordering::Relaxed) {
            self.first_ok_us.fetch_min(began_us, Ordering::Relaxed);
        }
        self.last_ok_us.fetch_max(self.us_since_start(Instant::now()), Ordering::Relaxed);
    }
    /// `n` latencies of `micros` each.
    fn latency(&self, micros: u64, n: u64) {
        let _ = self.interval.lock().record_n(micros.max(1), n);
    }
    /// Counts a failure; the first of its kind becomes a notice.
    fn fail(&self, f: &Failure) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut kinds = self.kinds.lock();
        let count = kinds.entry(f.kind.clone()).or_insert(0);
        *count += 1;
        if *count == 1 {
            drop(kinds);
            self.notice(format!("first failure of kind \"{}\": {}", f.kind, f.detail));
        }
    }
    fn notice(&self, line: String) {
        self.notices.lock().push(line);
    }
    fn drain_notices(&self, on_event: &mut impl FnMut(Event)) {
        let lines = std::mem::take(&mut *self.notices.lock());
        for l in lines {
            on_event(Event::Notice(l));
        }
    }
    /// The served window, s.
    fn served_seconds(&self) -> f64 {
        served_seconds(self.first_ok_us.load(Ordering::Relaxed), self.last_ok_us.load(Ordering::Relaxed))
    }
}

/// The served window from its first start and last end (µs since the run began; `first` is
/// `u64::MAX` when nothing succeeded). At least 1 µs once something succeeded.
pub(crate) fn served_seconds(first_us: u64, last_us: u64) -> f64 {
    if first_us == u64::MAX {
        return 0.0;
    }
    last_us.saturating_sub(first_us).max(1) as f64 / 1e6
}

pub(crate) fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::body::{BrokerData, QueueData};

    #[test]
    fn backoff_doubles_up_to_a_second_and_resets() {
        let mut b = Backoff::default();
        let pauses: Vec<u64> = (0..14).map(|_| b.fail().as_millis() as u64).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.fail(), BACKOFF_MIN);
    }

    #[test]
    fn failures_are_grouped_by_code_or_transport_kind() {
        let refused =
            RemotingError::Connect { addr: "127.0.0.1:1".into(), reason: "Connection refused (os error 111)".into() };
        let f = transport_failure(&refused);
        assert_eq!(f.kind, "connection refused");
        assert!(f.route && f.detail.contains("127.0.0.1:1") && f.detail.contains("refused"), "{f:?}");
        let closed = transport_failure(&RemotingError::ConnectionClosed { addr: "a:1".into() });
        assert_eq!(closed.kind, "connection closed");
        assert_eq!(transport_failure(&RemotingError::Timeout { addr: "a:1".into(), millis: 5 }).kind, "timeout");
        let req = RemotingCommand::request(request::SEND_MESSAGE_V2);
        let f = response_failure("a:1", &RemotingCommand::error(&req, response::TOPIC_NOT_EXIST, "topic X not exist"));
        assert_eq!(f.kind, "code 17 TOPIC_NOT_EXIST");
        assert!(f.route && f.detail.contains("topic X not exist"), "{f:?}");
        let busy = response_failure("a:1", &RemotingCommand::error(&req, response::SYSTEM_BUSY, "busy"));
        assert_eq!(busy.kind, "code 2 SYSTEM_BUSY");
        assert!(!busy.route);
    }

    #[test]
    fn the_first_failure_of_each_kind_is_told_once_and_all_are_counted() {
        let s = Stats::new();
        let f = |k: &str| Failure { kind: k.into(), detail: format!("{k} because"), route: true };
        for k in ["timeout", "connection refused", "timeout", "timeout", "connection refused"] {
            s.fail(&f(k));
        }
        let mut told = Vec::new();
        s.drain_notices(&mut |e| told.push(e));
        assert_eq!(
            told,
            [
                Event::Notice("first failure of kind \"timeout\": timeout because".into()),
                Event::Notice("first failure of kind \"connection refused\": connection refused because".into()),
            ]
        );
        assert_eq!(s.failures.load(Ordering::Relaxed), 5);
        assert_eq!(s.kinds.lock().get("timeout"), Some(&3));
        assert_eq!(s.kinds.lock().get("connection refused"), Some(&2));
    }

    #[test]
    fn the_pacer_spreads_requests_evenly_and_never_ahead_of_the_schedule() {
        let start = Instant::now();
        let p = Pacer::new(start, 1000);
        assert_eq!(p.offset(0), Duration::ZERO);
        assert_eq!(p.offset(1), Duration::from_millis(1));
        assert_eq!(p.offset(1500), Duration::from_millis(1500));
        // Slots are handed out in order, across callers, each 1 ms after the previous one.
        let at: Vec<Instant> = (0..5).map(|_| p.next_at()).collect();
        for (k, t) in at.iter().enumerate() {
            assert_eq!(*t - start, Duration::from_millis(k as u64));
        }
        // Uneven rates round down to the nanosecond and never drift: slot k is at k/rate s.
        let p = Pacer::new(start, 3);
        assert_eq!(p.offset(1), Duration::from_nanos(333_333_333));
        assert_eq!(p.offset(3), Duration::from_secs(1));
        assert_eq!(p.offset(300), Duration::from_secs(100));
        // By time t at most t * rate + 1 slots have come due.
        let p = Pacer::new(start, 50_000);
        let due = (0..200_000u64).take_while(|k| p.offset(*k) <= Duration::from_millis(1000)).count();
        assert_eq!(due, 50_001);
        // A zero rate is treated as 1/s rather than dividing by zero.
        assert_eq!(Pacer::new(start, 0).offset(2), Duration::from_secs(2));
    }

    #[test]
    fn the_served_window_runs_from_the_first_success_to_the_last() {
        assert_eq!(served_seconds(u64::MAX, 0), 0.0);
        assert_eq!(served_seconds(500_000, 2_500_000), 2.0);
        assert_eq!(served_seconds(7, 7), 1e-6);
        let s = Stats::new();
        s.ok_since(1_000_000, 10);
        s.ok_since(200_000, 5);
        assert_eq!(s.first_ok_us.load(Ordering::Relaxed), 200_000);
        assert_eq!(s.ok.load(Ordering::Relaxed), 15);
    }

    fn route_of(brokers: &[(&str, &str, i32, i32)]) -> TopicRouteData {
        TopicRouteData {
            broker_datas: brokers
                .iter()
                .map(|(name, addr, _, _)| BrokerData {
                    broker_addrs: [(0, addr.to_string())].into(),
                    broker_name: name.to_string(),
                    cluster: "C".into(),
                    enable_acting_master: false,
                    zone_name: None,
                })
                .collect(),
            queue_datas: brokers
                .iter()
                .map(|(name, _, perm, n)| QueueData {
                    broker_name: name.to_string(),
                    perm: *perm,
                    read_queue_nums: *n,
                    write_queue_nums: *n,
                    topic_sys_flag: 0,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn queues_span_every_master_with_the_right_permission() {
        let r = route_of(&[("b", "h:2", 6, 2), ("a", "h:1", 6, 2), ("c", "h:3", perm::READ, 2)]);
        let w = queues(&r, None, false);
        let ids: Vec<(&str, i32)> = w.iter().map(|q| (q.broker.as_str(), q.id)).collect();
        assert_eq!(ids, [("a", 0), ("a", 1), ("b", 0), ("b", 1)], "c is read-only");
        assert_eq!(queues(&r, None, true).len(), 6);
        assert_eq!(queues(&r, Some("b"), false).len(), 2);
        assert_eq!(describe(&w), "4 queues: a (2), b (2)");
        assert!(routes_master(&r, "h:1") && !routes_master(&r, "h:9"));
    }

    #[test]
    fn an_isolated_broker_is_skipped_while_another_is_usable() {
        let r = route_of(&[("a", "h:1", 6, 2), ("b", "h:2", 6, 2)]);
        let qs = queues(&r, None, false);
        let (iso, next) = (Isolation::default(), AtomicUsize::new(0));
        let picks: Vec<i32> = (0..4).map(|_| iso.pick(&qs, &next).id).collect();
        assert_eq!(picks, [0, 1, 0, 1], "round-robin over both brokers");
        iso.isolate("h:1");
        assert!((0..8).all(|_| iso.pick(&qs, &next).addr == "h:2"));
        iso.isolate("h:2");
        assert_eq!((0..4).filter(|_| iso.pick(&qs, &next).addr == "h:1").count(), 2, "all isolated: round-robin");
        iso.clear("h:1");
        assert!((0..8).all(|_| iso.pick(&qs, &next).addr == "h:1"));
        iso.clear("h:2");
        assert!(!iso.any.load(Ordering::Relaxed));
    }
}
