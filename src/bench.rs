//! `mqbench`: a load tool for any RocketMQ-compatible NameServer and broker, over the wire only.
//!
//! The producer keeps `in_flight` sends outstanding across the topic's write queues and reports
//! throughput and latency percentiles; the consumer pulls every read queue and reports end-to-end
//! latency (born timestamp to consumed).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::broker::headers::{PullMessageRequestHeader, SendMessageRequestHeader};
use crate::namesrv::body::{ClusterInfo, TopicRouteData};
use crate::remoting::codes::{request, response};
use crate::remoting::{RemotingClient, RemotingCommand};
use crate::store::message::{decode_records, encode_properties};

const RPC_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// The final figures of a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Messages per second over the whole run.
    pub tps: f64,
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
    /// Wall time of the run, s.
    pub seconds: f64,
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

/// Latencies (µs) and counters shared by workers and the reporter.
struct Stats {
    interval: Mutex<Histogram<u64>>,
    total: Mutex<Histogram<u64>>,
    ok: AtomicU64,
    failures: AtomicU64,
}

impl Stats {
    fn new() -> Self {
        Stats {
            interval: Mutex::new(new_hist()),
            total: Mutex::new(new_hist()),
            ok: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }
    fn record(&self, micros: u64, n: u64) {
        let v = micros.max(1);
        let _ = self.interval.lock().record_n(v, n);
        self.ok.fetch_add(n, Ordering::Relaxed);
    }
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
    for ns in crate::broker::register::parse_namesrv_list(namesrv) {
        let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
        match client.invoke(&ns, req, RPC_TIMEOUT).await {
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
/// until its route is published.
async fn create_topic(client: &RemotingClient, namesrv: &str, topic: &str) -> Result<TopicRouteData, BenchError> {
    let ns = crate::broker::register::parse_namesrv_list(namesrv);
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
            return Ok(r);
        }
        if Instant::now() > deadline {
            return Err(BenchError::Route(format!("{topic} was created but has no route after 30 s")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (master address, queue id) of every write (or read) queue of the route.
fn queues(route: &TopicRouteData, broker_name: Option<&str>, read: bool) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for qd in &route.queue_datas {
        if broker_name.is_some_and(|b| b != qd.broker_name) {
            continue;
        }
        let Some(addr) =
            route.broker_datas.iter().find(|b| b.broker_name == qd.broker_name).and_then(|b| b.broker_addrs.get(&0))
        else {
            continue;
        };
        let n = if read { qd.read_queue_nums } else { qd.write_queue_nums };
        for q in 0..n {
            out.push((addr.clone(), q));
        }
    }
    out
}

/// The queues of the route; when none match yet (a topic just created reaches the NameServer one
/// broker at a time), asks again for up to 30 s.
async fn wait_for_queues(
    client: &RemotingClient,
    namesrv: &str,
    topic: &str,
    mut r: TopicRouteData,
    broker_name: Option<&str>,
    read: bool,
) -> Result<Vec<(String, i32)>, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let qs = queues(&r, broker_name, read);
        if !qs.is_empty() {
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

fn batch_body(bodies: &[Bytes], props: &[String]) -> Bytes {
    let mut out = BytesMut::new();
    for (b, p) in bodies.iter().zip(props) {
        let total = 4 + 4 + 4 + 4 + 4 + b.len() + 2 + p.len();
        out.put_i32(total as i32);
        out.put_i32(0);
        out.put_i32(0);
        out.put_i32(0);
        out.put_i32(b.len() as i32);
        out.extend_from_slice(b);
        out.put_i16(p.len() as i16);
        out.extend_from_slice(p.as_bytes());
    }
    out.freeze()
}

/// A process-unique message id in the client format (32 upper-case hex chars).
fn uniq_key(seq: u64) -> String {
    let pid = std::process::id() as u64 & 0xFFFF;
    format!("7F000001{pid:04X}{:08X}{:012X}", (crate::util::now_millis() as u64) & 0xFFFF_FFFF, seq & 0xFFFF_FFFF_FFFF)
}

/// Runs the producer; `progress` receives one line per report period.
pub async fn run_producer(opts: ProducerOptions, mut progress: impl FnMut(String)) -> Result<Summary, BenchError> {
    let client = RemotingClient::default();
    let r = match route(&client, &opts.namesrv, &opts.topic).await? {
        Some(r) => r,
        None => create_topic(&client, &opts.namesrv, &opts.topic).await?,
    };
    let qs =
        Arc::new(wait_for_queues(&client, &opts.namesrv, &opts.topic, r, opts.broker_name.as_deref(), false).await?);
    let stats = Arc::new(Stats::new());
    let issued = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let body = Bytes::from(vec![b'a'; opts.size]);
    let batch = opts.batch.max(1);
    let start = Instant::now();
    let deadline = opts.duration.map(|d| start + d);
    let mut workers = Vec::new();
    for w in 0..opts.in_flight.max(1) {
        let (client, qs, stats, issued, stop, body, opts) =
            (client.clone(), qs.clone(), stats.clone(), issued.clone(), stop.clone(), body.clone(), opts.clone());
        workers.push(tokio::spawn(async move {
            let mut i = w as u64;
            loop {
                if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let n = issued.fetch_add(batch as u64, Ordering::Relaxed);
                if opts.count.is_some_and(|c| n >= c) {
                    break;
                }
                let (addr, qid) = &qs[(i as usize) % qs.len()];
                i += opts.in_flight as u64;
                let props: Vec<String> = (0..batch)
                    .map(|k| {
                        let key = uniq_key(n + k as u64);
                        if opts.keys {
                            encode_properties([("UNIQ_KEY", key.as_str()), ("KEYS", key.as_str()), ("WAIT", "true")])
                        } else {
                            encode_properties([("UNIQ_KEY", key.as_str()), ("WAIT", "true")])
                        }
                    })
                    .collect();
                let h = SendMessageRequestHeader {
                    producer_group: "mqbench".into(),
                    topic: opts.topic.clone(),
                    default_topic: "TBW102".into(),
                    default_topic_queue_nums: 8,
                    queue_id: *qid,
                    sys_flag: 0,
                    born_timestamp: crate::util::now_millis(),
                    flag: 0,
                    properties: (batch == 1).then(|| props[0].clone()),
                    reconsume_times: Some(0),
                    unit_mode: Some(false),
                    batch: Some(batch > 1),
                    max_reconsume_times: None,
                    bname: None,
                };
                let (code, payload) = if batch > 1 {
                    let bodies = vec![body.clone(); batch];
                    (request::SEND_BATCH_MESSAGE, batch_body(&bodies, &props))
                } else {
                    (request::SEND_MESSAGE_V2, body.clone())
                };
                let req = RemotingCommand::request_with_header(code, &h.to_v2()).with_body(payload);
                let t0 = Instant::now();
                if opts.mode == SendMode::Oneway {
                    match client.invoke_oneway(addr, req, RPC_TIMEOUT).await {
                        Ok(()) => {
                            stats.ok.fetch_add(batch as u64, Ordering::Relaxed);
                        }
                        Err(_) => {
                            stats.failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    continue;
                }
                match client.invoke(addr, req, RPC_TIMEOUT).await {
                    Ok(resp) if resp.code == response::SUCCESS => {
                        stats.record(t0.elapsed().as_micros() as u64, batch as u64)
                    }
                    _ => {
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let summary = report_until_done(&stats, start, opts.report_every, &mut progress, "Send", || {
        workers.iter().all(|w| w.is_finished())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    client.shutdown().await;
    Ok(summary)
}

/// Runs the consumer: pulls every read queue; latency is consume time minus born time.
pub async fn run_consumer(opts: ConsumerOptions, mut progress: impl FnMut(String)) -> Result<Summary, BenchError> {
    let client = RemotingClient::default();
    let r = match route(&client, &opts.namesrv, &opts.topic).await? {
        Some(r) => r,
        None => create_topic(&client, &opts.namesrv, &opts.topic).await?,
    };
    let qs = wait_for_queues(&client, &opts.namesrv, &opts.topic, r, None, true).await?;
    let stats = Arc::new(Stats::new());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = opts.duration.map(|d| start + d);
    let mut workers = Vec::new();
    for (addr, qid) in qs {
        let (client, stats, stop, opts) = (client.clone(), stats.clone(), stop.clone(), opts.clone());
        workers.push(tokio::spawn(async move {
            let mut offset = if opts.from_start {
                0
            } else {
                let req = RemotingCommand::request(request::GET_MAX_OFFSET)
                    .with_ext("topic", opts.topic.clone())
                    .with_ext("queueId", qid.to_string());
                match client.invoke(&addr, req, RPC_TIMEOUT).await {
                    Ok(r) => r.ext("offset").and_then(|o| o.parse().ok()).unwrap_or(0),
                    Err(_) => 0,
                }
            };
            loop {
                if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if opts.count.is_some_and(|c| stats.ok.load(Ordering::Relaxed) >= c) {
                    break;
                }
                let h = PullMessageRequestHeader {
                    consumer_group: opts.group.clone(),
                    topic: opts.topic.clone(),
                    queue_id: qid,
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
                match client.invoke(&addr, req, RPC_TIMEOUT + Duration::from_secs(1)).await {
                    Ok(resp) => {
                        if let Some(next) = resp.ext("nextBeginOffset").and_then(|o| o.parse::<i64>().ok()) {
                            offset = next;
                        }
                        if resp.code == response::SUCCESS {
                            let now = crate::util::now_millis();
                            for m in decode_records(&resp.body, false) {
                                stats.record(((now - m.born_timestamp).max(0) as u64) * 1000, 1);
                            }
                        }
                    }
                    Err(_) => {
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    let summary = report_until_done(&stats, start, opts.report_every, &mut progress, "Consume", || {
        workers.iter().all(|w| w.is_finished())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    client.shutdown().await;
    Ok(summary)
}

async fn report_until_done(
    stats: &Stats,
    start: Instant,
    every: Duration,
    progress: &mut impl FnMut(String),
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Summary {
    let mut last_report = Instant::now();
    let mut last_ok = 0u64;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let finished = done();
        if last_report.elapsed() >= every || finished {
            let ok = stats.ok.load(Ordering::Relaxed);
            let secs = last_report.elapsed().as_secs_f64().max(1e-9);
            let mut interval = stats.interval.lock();
            let h = std::mem::replace(&mut *interval, new_hist());
            drop(interval);
            let _ = stats.total.lock().add(&h);
            if !finished {
                progress(format!(
                    "{what} TPS: {:.0} | Max RT(ms): {:.3} | Avg RT(ms): {:.3} | p50: {:.3} | p99: {:.3} | p999: {:.3} | failures: {}",
                    (ok - last_ok) as f64 / secs,
                    h.max() as f64 / 1000.0,
                    if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
                    ms(&h, 0.5),
                    ms(&h, 0.99),
                    ms(&h, 0.999),
                    stats.failures.load(Ordering::Relaxed)
                ));
            }
            last_ok = ok;
            last_report = Instant::now();
        }
        if finished {
            break;
        }
    }
    let total = stats.total.lock();
    let secs = start.elapsed().as_secs_f64();
    let sent = stats.ok.load(Ordering::Relaxed);
    Summary {
        tps: sent as f64 / secs.max(1e-9),
        p50_ms: ms(&total, 0.5),
        p99_ms: ms(&total, 0.99),
        p999_ms: ms(&total, 0.999),
        max_ms: total.max() as f64 / 1000.0,
        avg_ms: if total.is_empty() { 0.0 } else { total.mean() / 1000.0 },
        sent,
        failures: stats.failures.load(Ordering::Relaxed),
        seconds: secs,
    }
}
