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
use crate::client::send::{send_header, send_request};
use crate::client::uniq::seq_uniq_key;
use crate::protocol::body::{ClusterInfo, TopicRouteData};
use crate::protocol::codes::{request, response, response_name};
use crate::protocol::header::PullMessageRequestHeader;
use crate::protocol::message::{decode_records, encode_batch_body, encode_properties, BatchItem};
use crate::protocol::perm;
use crate::remoting::{RemotingClient, RemotingCommand, RemotingError};

const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the route is read again by default (Apache's clients: every 30 s; a benchmark wants
/// to see a new broker or a dead one sooner).
pub const DEFAULT_ROUTE_REFRESH: Duration = Duration::from_secs(1);

/// The shortest gap between two route lookups: refreshes asked for by a burst of failures merge.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(200);

/// The first pause of a worker after a failure; it doubles with each further failure.
const BACKOFF_MIN: Duration = Duration::from_millis(1);

/// The longest pause of a worker after failures.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long a run waits for a topic it just created to be routed on every master it created it on,
/// before it starts with the masters routed so far (the refresh adds the others later).
const ALL_MASTERS_WAIT: Duration = Duration::from_secs(5);

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

fn new_hist() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| Histogram::new(3).expect("a histogram"))
}

/// Why a request failed, grouped for counting.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    /// The group: a response code with its name, or a transport error kind.
    kind: String,
    /// The whole reason, for the first report of the kind.
    detail: String,
    /// Whether a newer route may help (the route is read again right away).
    route: bool,
}

/// A transport error as a [`Failure`].
fn transport_failure(e: &RemotingError) -> Failure {
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
fn response_failure(addr: &str, resp: &RemotingCommand) -> Failure {
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
struct Backoff {
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
async fn pause(d: Duration, deadline: Option<Instant>, stop: &CancellationToken) {
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
struct Stats {
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
fn served_seconds(first_us: u64, last_us: u64) -> f64 {
    if first_us == u64::MAX {
        return 0.0;
    }
    last_us.saturating_sub(first_us).max(1) as f64 / 1e6
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Asks the first NameServer that answers for the topic's route.
pub async fn route(client: &RemotingClient, namesrv: &str, topic: &str) -> Result<Option<TopicRouteData>, BenchError> {
    let mut last = None;
    for ns in parse_namesrv_list(namesrv) {
        match client.invoke(&ns, route_request(topic), RPC_TIMEOUT).await {
            Ok(r) if r.code == response::SUCCESS => {
                let data = crate::json::from_slice_lenient(&r.body)
                    .map_err(|e| BenchError::Route(format!("route of {topic} does not parse: {e}")))?;
                return Ok(Some(data));
            }
            Ok(r) if r.code == response::TOPIC_NOT_EXIST => return Ok(None),
            Ok(r) => last = Some(BenchError::Route(format!("{ns}: code {} {:?}", r.code, r.remark))),
            Err(e) => last = Some(e.into()),
        }
    }
    Err(last.unwrap_or_else(|| BenchError::Route("no NameServer given".into())))
}

/// Creates the topic (8 queues) on every master of every cluster the NameServer knows, then waits
/// until its route is published. Returns the route and the masters' addresses.
async fn create_topic(
    client: &RemotingClient,
    namesrv: &str,
    topic: &str,
) -> Result<(TopicRouteData, Vec<String>), BenchError> {
    let ns = parse_namesrv_list(namesrv);
    let first = ns.first().ok_or_else(|| BenchError::Route("no NameServer given".into()))?;
    let r = client.invoke(first, RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO), RPC_TIMEOUT).await?;
    let info: ClusterInfo = crate::json::from_slice_lenient(&r.body)
        .map_err(|e| BenchError::Route(format!("cluster info does not parse: {e}")))?;
    let masters: Vec<String> =
        info.broker_addr_table.values().filter_map(|b| b.broker_addrs.get(&0).cloned()).collect();
    if masters.is_empty() {
        return Err(BenchError::Route("the NameServer knows no master broker".into()));
    }
    for addr in &masters {
        let req = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", topic)
            .with_ext("defaultTopic", "TBW102")
            .with_ext("readQueueNums", "8")
            .with_ext("writeQueueNums", "8")
            .with_ext("perm", "6")
            .with_ext("topicFilterType", "SINGLE_TAG")
            .with_ext("order", "false");
        let r = client.invoke(addr, req, RPC_TIMEOUT).await?;
        if r.code != response::SUCCESS {
            return Err(BenchError::Route(format!("creating {topic} on {addr}: code {} {:?}", r.code, r.remark)));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(r) = route(client, namesrv, topic).await? {
            return Ok((r, masters));
        }
        if Instant::now() > deadline {
            return Err(BenchError::Route(format!("{topic} was created but has no route after 30 s")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One queue of the route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Queue {
    /// The broker group.
    broker: String,
    /// Its master's address.
    addr: String,
    /// The queue id.
    id: i32,
}

/// Every writable (or readable) queue of the route's masters, as Apache's clients build their
/// publish (or subscribe) queue lists; only `broker_name`'s when given.
fn queues(route: &TopicRouteData, broker_name: Option<&str>, read: bool) -> Vec<Queue> {
    let mut datas: Vec<_> = route.queue_datas.iter().collect();
    datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let mut out = Vec::new();
    for qd in datas {
        if broker_name.is_some_and(|b| b != qd.broker_name) {
            continue;
        }
        if qd.perm & if read { perm::READ } else { perm::WRITE } == 0 {
            continue;
        }
        let Some(addr) =
            route.broker_datas.iter().find(|b| b.broker_name == qd.broker_name).and_then(|b| b.broker_addrs.get(&0))
        else {
            continue;
        };
        let n = if read { qd.read_queue_nums } else { qd.write_queue_nums };
        for id in 0..n {
            out.push(Queue { broker: qd.broker_name.clone(), addr: addr.clone(), id });
        }
    }
    out
}

/// Whether the route has queues on the master at `addr`.
fn routes_master(route: &TopicRouteData, addr: &str) -> bool {
    route.broker_datas.iter().any(|b| {
        b.broker_addrs.get(&0).is_some_and(|a| a == addr)
            && route.queue_datas.iter().any(|q| q.broker_name == b.broker_name)
    })
}

/// "16 queues: broker-a (8), broker-b (8)".
fn describe(qs: &[Queue]) -> String {
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for q in qs {
        *per.entry(q.broker.as_str()).or_insert(0) += 1;
    }
    let brokers: Vec<String> = per.iter().map(|(b, n)| format!("{b} ({n})")).collect();
    format!("{} queues: {}", qs.len(), brokers.join(", "))
}

/// The queues of the route; when none match yet (a topic just created reaches the NameServer one
/// broker at a time), asks again for up to 30 s. A topic just created on the masters `created` is
/// waited for on all of them for up to [`ALL_MASTERS_WAIT`].
async fn wait_for_queues(
    client: &RemotingClient,
    namesrv: &str,
    topic: &str,
    mut r: TopicRouteData,
    broker_name: Option<&str>,
    read: bool,
    created: &[String],
) -> Result<Vec<Queue>, BenchError> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(30);
    loop {
        let qs = queues(&r, broker_name, read);
        let all_routed = created.iter().all(|a| routes_master(&r, a));
        if !qs.is_empty() && (all_routed || start.elapsed() >= ALL_MASTERS_WAIT) {
            return Ok(qs);
        }
        if Instant::now() > deadline {
            let which = broker_name.map(|b| format!(" of broker {b}")).unwrap_or_default();
            return Err(BenchError::Route(format!(
                "topic {topic} has no {} queue{which} on a master",
                if read { "readable" } else { "writable" }
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(next) = route(client, namesrv, topic).await? {
            r = next;
        }
    }
}

/// The topic's queues at the start of a run: its route, or the route of the topic created on every
/// master when it has none.
async fn initial_queues(
    client: &RemotingClient,
    namesrv: &str,
    topic: &str,
    broker_name: Option<&str>,
    read: bool,
) -> Result<Vec<Queue>, BenchError> {
    let (r, created) = match route(client, namesrv, topic).await? {
        Some(r) => (r, Vec::new()),
        None => create_topic(client, namesrv, topic).await?,
    };
    wait_for_queues(client, namesrv, topic, r, broker_name, read, &created).await
}

/// Brokers whose last request failed in a way a route change may fix: the producer skips their
/// queues for [`ISOLATION`] while another broker's are usable (Apache's latency fault tolerance,
/// simplified), so a dead broker still in the route does not fail every other send.
#[derive(Default)]
struct Isolation {
    /// Whether `until` may hold an entry (spares the lock while every broker answers).
    any: std::sync::atomic::AtomicBool,
    until: Mutex<std::collections::HashMap<String, Instant>>,
}

/// How long a failing broker's queues are skipped.
const ISOLATION: Duration = Duration::from_secs(1);

impl Isolation {
    fn isolate(&self, addr: &str) {
        self.until.lock().insert(addr.to_string(), Instant::now() + ISOLATION);
        self.any.store(true, Ordering::Relaxed);
    }

    fn clear(&self, addr: &str) {
        if self.any.load(Ordering::Relaxed) {
            let mut until = self.until.lock();
            until.remove(addr);
            if until.is_empty() {
                self.any.store(false, Ordering::Relaxed);
            }
        }
    }

    /// The next queue round-robin, skipping isolated brokers unless all are.
    fn pick<'a>(&self, qs: &'a [Queue], next: &AtomicUsize) -> &'a Queue {
        let start = next.fetch_add(1, Ordering::Relaxed);
        let first = &qs[start % qs.len()];
        if !self.any.load(Ordering::Relaxed) {
            return first;
        }
        let now = Instant::now();
        let mut until = self.until.lock();
        until.retain(|_, t| *t > now);
        if until.is_empty() {
            self.any.store(false, Ordering::Relaxed);
            return first;
        }
        (0..qs.len()).map(|k| &qs[(start + k) % qs.len()]).find(|q| !until.contains_key(&q.addr)).unwrap_or(first)
    }
}

/// The route as a run sees it: the current queue list, and a way to ask for a refresh now.
struct RouteFollower {
    topic: String,
    namesrv: String,
    broker_name: Option<String>,
    read: bool,
    every: Duration,
    queues: watch::Sender<Arc<Vec<Queue>>>,
    wake: Notify,
}

impl RouteFollower {
    fn new(
        topic: &str,
        namesrv: &str,
        broker_name: Option<&str>,
        read: bool,
        every: Duration,
        initial: Vec<Queue>,
    ) -> Arc<Self> {
        Arc::new(RouteFollower {
            topic: topic.to_string(),
            namesrv: namesrv.to_string(),
            broker_name: broker_name.map(str::to_string),
            read,
            every: every.max(MIN_REFRESH_GAP),
            queues: watch::Sender::new(Arc::new(initial)),
            wake: Notify::new(),
        })
    }

    /// The current queue list.
    fn current(&self) -> Arc<Vec<Queue>> {
        self.queues.borrow().clone()
    }

    /// Asks for a refresh now (merged with others within [`MIN_REFRESH_GAP`]).
    fn refresh_soon(&self) {
        self.wake.notify_one();
    }

    /// Reads the route every `every` or when woken, until `stop`. A route that cannot be read, or
    /// has no usable queue, keeps the last list (as Apache's clients keep their last route).
    async fn run(self: Arc<Self>, client: RemotingClient, stats: Arc<Stats>, stop: CancellationToken) {
        let mut error_kinds: HashSet<String> = HashSet::new();
        let (mut gone_told, mut empty_told) = (false, false);
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(last + self.every) => {}
                _ = self.wake.notified() => {}
            }
            // Failures of many workers ask at once: one lookup per MIN_REFRESH_GAP at most.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(last + MIN_REFRESH_GAP) => {}
            }
            last = tokio::time::Instant::now();
            let got = tokio::select! {
                _ = stop.cancelled() => return,
                r = route(&client, &self.namesrv, &self.topic) => r,
            };
            match got {
                Ok(Some(r)) => {
                    gone_told = false;
                    let qs = queues(&r, self.broker_name.as_deref(), self.read);
                    if qs.is_empty() {
                        if !empty_told {
                            empty_told = true;
                            let which =
                                self.broker_name.as_ref().map(|b| format!(" of broker {b}")).unwrap_or_default();
                            stats.notice(format!(
                                "the route of {} has no {} queue{which} on a master now; keeping the last one",
                                self.topic,
                                if self.read { "readable" } else { "writable" }
                            ));
                        }
                    } else {
                        empty_told = false;
                        if **self.queues.borrow() != qs {
                            stats.notice(format!("the route of {} changed: {}", self.topic, describe(&qs)));
                            self.queues.send_replace(Arc::new(qs));
                        }
                    }
                }
                Ok(None) => {
                    if !gone_told {
                        gone_told = true;
                        stats
                            .notice(format!("the NameServer has no route of {} now; keeping the last one", self.topic));
                    }
                }
                Err(e) => {
                    let kind = match &e {
                        BenchError::Remoting(re) => transport_failure(re).kind,
                        BenchError::Route(_) => "bad answer".to_string(),
                    };
                    if error_kinds.insert(kind.clone()) {
                        stats.notice(format!("route refresh failed ({kind}): {e}; keeping the last route"));
                    }
                }
            }
        }
    }
}

/// Runs the producer; `on_event` receives one progress line per report period and the notices.
pub async fn run_producer(opts: ProducerOptions, mut on_event: impl FnMut(Event)) -> Result<Summary, BenchError> {
    let client = RemotingClient::default();
    let qs = initial_queues(&client, &opts.namesrv, &opts.topic, opts.broker_name.as_deref(), false).await?;
    let routes =
        RouteFollower::new(&opts.topic, &opts.namesrv, opts.broker_name.as_deref(), false, opts.route_refresh, qs);
    let stats = Arc::new(Stats::new());
    let issued = Arc::new(AtomicU64::new(0));
    let next_queue = Arc::new(AtomicUsize::new(0));
    let isolation = Arc::new(Isolation::default());
    let stop = CancellationToken::new();
    let follower = tokio::spawn(routes.clone().run(client.clone(), stats.clone(), stop.clone()));
    let body = Bytes::from(vec![b'a'; opts.size]);
    let batch = opts.batch.max(1);
    let deadline = opts.duration.map(|d| stats.start + d);
    let pacer = opts.rate.map(|r| Arc::new(Pacer::new(Instant::now(), r)));
    let mut workers = Vec::new();
    for _ in 0..opts.in_flight.max(1) {
        let pacer = pacer.clone();
        let (client, routes, stats, issued, next_queue, isolation, stop, body, opts) = (
            client.clone(),
            routes.clone(),
            stats.clone(),
            issued.clone(),
            next_queue.clone(),
            isolation.clone(),
            stop.clone(),
            body.clone(),
            opts.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut backoff = Backoff::default();
            loop {
                if stop.is_cancelled() || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let qs = routes.current();
                if qs.is_empty() {
                    // Not reached: the first list has queues and an empty one is never kept.
                    pause(backoff.fail(), deadline, &stop).await;
                    continue;
                }
                if let Some(p) = &pacer {
                    let at = p.next_at();
                    if deadline.is_some_and(|d| at >= d) {
                        break;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep_until(at.into()) => {}
                    }
                }
                let n = issued.fetch_add(batch as u64, Ordering::Relaxed);
                if opts.count.is_some_and(|c| n >= c) {
                    break;
                }
                let q = isolation.pick(&qs, &next_queue);
                let props: Vec<String> = (0..batch)
                    .map(|k| {
                        let key = seq_uniq_key(n + k as u64);
                        if opts.keys {
                            encode_properties([("UNIQ_KEY", key.as_str()), ("KEYS", key.as_str()), ("WAIT", "true")])
                        } else {
                            encode_properties([("UNIQ_KEY", key.as_str()), ("WAIT", "true")])
                        }
                    })
                    .collect();
                let mut h = send_header("mqbench", &opts.topic, q.id, 8, (batch == 1).then(|| props[0].clone()));
                h.batch = Some(batch > 1);
                let (code, payload) = if batch > 1 {
                    let items: Vec<BatchItem> = props
                        .iter()
                        .map(|p| BatchItem { flag: 0, body: body.clone(), properties: p.clone() })
                        .collect();
                    (request::SEND_BATCH_MESSAGE, Bytes::from(encode_batch_body(&items)))
                } else {
                    (request::SEND_MESSAGE_V2, body.clone())
                };
                let req = send_request(code, &h, payload);
                let t0 = Instant::now();
                let failure = if opts.mode == SendMode::Oneway {
                    match client.invoke_oneway(&q.addr, req, RPC_TIMEOUT).await {
                        Ok(()) => {
                            stats.ok(t0, batch as u64);
                            None
                        }
                        Err(e) => Some(transport_failure(&e)),
                    }
                } else {
                    match client.invoke(&q.addr, req, RPC_TIMEOUT).await {
                        Ok(resp) if resp.code == response::SUCCESS => {
                            stats.latency(t0.elapsed().as_micros() as u64, batch as u64);
                            stats.ok(t0, batch as u64);
                            None
                        }
                        Ok(resp) => Some(response_failure(&q.addr, &resp)),
                        Err(e) => Some(transport_failure(&e)),
                    }
                };
                match failure {
                    None => {
                        backoff.reset();
                        isolation.clear(&q.addr);
                    }
                    Some(f) => {
                        stats.fail(&f);
                        if f.route {
                            isolation.isolate(&q.addr);
                            routes.refresh_soon();
                        }
                        pause(backoff.fail(), deadline, &stop).await;
                    }
                }
            }
        }));
    }
    let summary =
        report_until_done(&stats, opts.report_every, &mut on_event, "Send", || workers.iter().all(|w| w.is_finished()))
            .await;
    stop.cancel();
    for w in workers {
        let _ = w.await;
    }
    let _ = follower.await;
    stats.drain_notices(&mut on_event);
    client.shutdown().await;
    Ok(summary)
}

/// What every pulling worker of a consumer run shares.
struct ConsumeRun {
    client: RemotingClient,
    opts: ConsumerOptions,
    stats: Arc<Stats>,
    routes: Arc<RouteFollower>,
    deadline: Option<Instant>,
    stop: CancellationToken,
}

/// Pulls one queue until the run is over, from its first message when `from_start` (else from its
/// current end); latency is consume time minus born time.
async fn consume_queue(run: Arc<ConsumeRun>, q: Queue, from_start: bool) {
    let ConsumeRun { client, opts, stats, routes, deadline, stop } = &*run;
    let deadline = *deadline;
    let mut offset = if from_start {
        0
    } else {
        let req = RemotingCommand::request(request::GET_MAX_OFFSET)
            .with_ext("topic", opts.topic.clone())
            .with_ext("queueId", q.id.to_string());
        match client.invoke(&q.addr, req, RPC_TIMEOUT).await {
            Ok(r) => r.ext("offset").and_then(|o| o.parse().ok()).unwrap_or(0),
            Err(_) => 0,
        }
    };
    let mut backoff = Backoff::default();
    loop {
        if stop.is_cancelled() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if opts.count.is_some_and(|c| stats.ok.load(Ordering::Relaxed) >= c) {
            break;
        }
        let h = PullMessageRequestHeader {
            consumer_group: opts.group.clone(),
            topic: opts.topic.clone(),
            queue_id: q.id,
            queue_offset: offset,
            max_msg_nums: 32,
            sys_flag: 0x1 | 0x2 | 0x4,
            commit_offset: offset,
            suspend_timeout_millis: 1000,
            subscription: Some("*".into()),
            sub_version: 0,
            expression_type: Some("TAG".into()),
            max_msg_bytes: None,
        };
        let req = RemotingCommand::request_with_header(request::PULL_MESSAGE, &h);
        let t0 = Instant::now();
        let failure = match client.invoke(&q.addr, req, RPC_TIMEOUT + Duration::from_secs(1)).await {
            Ok(resp) => {
                if let Some(next) = resp.ext("nextBeginOffset").and_then(|o| o.parse::<i64>().ok()) {
                    offset = next;
                }
                match resp.code {
                    response::SUCCESS => {
                        let now = crate::util::now_millis();
                        let msgs = decode_records(&resp.body, false);
                        let mut oldest = i64::MAX;
                        for m in &msgs {
                            stats.latency(((now - m.born_timestamp).max(0) as u64) * 1000, 1);
                            oldest = oldest.min(m.born_timestamp);
                        }
                        if !msgs.is_empty() {
                            // Served from when the request began or the oldest message was born,
                            // whichever is later (a long poll waits for messages not yet sent).
                            let born_us = (oldest - stats.start_wall_ms).max(0) as u64 * 1000;
                            stats.ok_since(stats.us_since_start(t0).max(born_us), msgs.len() as u64);
                        }
                        None
                    }
                    response::PULL_NOT_FOUND | response::PULL_RETRY_IMMEDIATELY | response::PULL_OFFSET_MOVED => None,
                    _ => Some(response_failure(&q.addr, &resp)),
                }
            }
            Err(e) => Some(transport_failure(&e)),
        };
        match failure {
            None => backoff.reset(),
            Some(f) => {
                stats.fail(&f);
                if f.route {
                    routes.refresh_soon();
                }
                pause(backoff.fail(), deadline, stop).await;
            }
        }
    }
}

/// Runs the consumer: pulls every read queue, and every queue the route gains during the run (from
/// its first message: a queue that appears during the run is new); latency is consume time minus
/// born time.
pub async fn run_consumer(opts: ConsumerOptions, mut on_event: impl FnMut(Event)) -> Result<Summary, BenchError> {
    let client = RemotingClient::default();
    let qs = initial_queues(&client, &opts.namesrv, &opts.topic, None, true).await?;
    let routes = RouteFollower::new(&opts.topic, &opts.namesrv, None, true, opts.route_refresh, qs);
    let stats = Arc::new(Stats::new());
    let stop = CancellationToken::new();
    let follower = tokio::spawn(routes.clone().run(client.clone(), stats.clone(), stop.clone()));
    let run = Arc::new(ConsumeRun {
        client: client.clone(),
        opts: opts.clone(),
        stats: stats.clone(),
        routes: routes.clone(),
        deadline: opts.duration.map(|d| stats.start + d),
        stop: stop.clone(),
    });
    // One worker per queue, started for every queue the route lists, now or later.
    let supervisor = tokio::spawn(async move {
        let mut changes = run.routes.queues.subscribe();
        let mut seen: HashSet<Queue> = HashSet::new();
        let mut workers = Vec::new();
        let mut from_start = run.opts.from_start;
        loop {
            let qs = changes.borrow_and_update().clone();
            for q in qs.iter() {
                if seen.insert(q.clone()) {
                    workers.push(tokio::spawn(consume_queue(run.clone(), q.clone(), from_start)));
                }
            }
            from_start = true;
            if workers.iter().all(|w| w.is_finished()) {
                break;
            }
            tokio::select! {
                _ = run.stop.cancelled() => break,
                r = changes.changed() => if r.is_err() { break },
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        for w in workers {
            let _ = w.await;
        }
    });
    let summary =
        report_until_done(&stats, opts.report_every, &mut on_event, "Consume", || supervisor.is_finished()).await;
    stop.cancel();
    let _ = supervisor.await;
    let _ = follower.await;
    stats.drain_notices(&mut on_event);
    client.shutdown().await;
    Ok(summary)
}

async fn report_until_done(
    stats: &Stats,
    every: Duration,
    on_event: &mut impl FnMut(Event),
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Summary {
    let mut last_report = Instant::now();
    let mut last_ok = 0u64;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stats.drain_notices(on_event);
        let finished = done();
        if last_report.elapsed() >= every || finished {
            let ok = stats.ok.load(Ordering::Relaxed);
            let secs = last_report.elapsed().as_secs_f64().max(1e-9);
            let mut interval = stats.interval.lock();
            let h = std::mem::replace(&mut *interval, new_hist());
            drop(interval);
            let _ = stats.total.lock().add(&h);
            if !finished {
                on_event(Event::Progress(format!(
                    "{what} TPS: {:.0} | Max RT(ms): {:.3} | Avg RT(ms): {:.3} | p50: {:.3} | p99: {:.3} | p999: {:.3} | failures: {}",
                    (ok - last_ok) as f64 / secs,
                    h.max() as f64 / 1000.0,
                    if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
                    ms(&h, 0.5),
                    ms(&h, 0.99),
                    ms(&h, 0.999),
                    stats.failures.load(Ordering::Relaxed)
                )));
            }
            last_ok = ok;
            last_report = Instant::now();
        }
        if finished {
            break;
        }
    }
    let total = stats.total.lock();
    let secs = stats.start.elapsed().as_secs_f64();
    let sent = stats.ok.load(Ordering::Relaxed);
    let served = stats.served_seconds();
    Summary {
        tps: if served > 0.0 { sent as f64 / served } else { 0.0 },
        overall_tps: sent as f64 / secs.max(1e-9),
        p50_ms: ms(&total, 0.5),
        p99_ms: ms(&total, 0.99),
        p999_ms: ms(&total, 0.999),
        max_ms: total.max() as f64 / 1000.0,
        avg_ms: if total.is_empty() { 0.0 } else { total.mean() / 1000.0 },
        sent,
        failures: stats.failures.load(Ordering::Relaxed),
        failures_by_kind: stats.kinds.lock().clone(),
        seconds: secs,
        served_seconds: served,
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
