//! Routes for mqbench: look-up, topic creation, the queues to use, and following changes.

use super::*;

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
pub(super) async fn create_topic(
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
pub(super) struct Queue {
    /// The broker group.
    pub(super) broker: String,
    /// Its master's address.
    pub(super) addr: String,
    /// The queue id.
    pub(super) id: i32,
}

/// Every writable (or readable) queue of the route's masters, as Apache's clients build their
/// publish (or subscribe) queue lists; only `broker_name`'s when given.
pub(super) fn queues(route: &TopicRouteData, broker_name: Option<&str>, read: bool) -> Vec<Queue> {
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
pub(super) fn routes_master(route: &TopicRouteData, addr: &str) -> bool {
    route.broker_datas.iter().any(|b| {
        b.broker_addrs.get(&0).is_some_and(|a| a == addr)
            && route.queue_datas.iter().any(|q| q.broker_name == b.broker_name)
    })
}

/// "16 queues: broker-a (8), broker-b (8)".
pub(super) fn describe(qs: &[Queue]) -> String {
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
pub(super) async fn wait_for_queues(
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
pub(super) async fn initial_queues(
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
pub(super) struct Isolation {
    /// Whether `until` may hold an entry (spares the lock while every broker answers).
    pub(super) any: std::sync::atomic::AtomicBool,
    pub(super) until: Mutex<std::collections::HashMap<String, Instant>>,
}

/// How long a failing broker's queues are skipped.
pub(super) const ISOLATION: Duration = Duration::from_secs(1);

impl Isolation {
    pub(super) fn isolate(&self, addr: &str) {
        self.until.lock().insert(addr.to_string(), Instant::now() + ISOLATION);
        self.any.store(true, Ordering::Relaxed);
    }

    pub(super) fn clear(&self, addr: &str) {
        if self.any.load(Ordering::Relaxed) {
            let mut until = self.until.lock();
            until.remove(addr);
            if until.is_empty() {
                self.any.store(false, Ordering::Relaxed);
            }
        }
    }

    /// The next queue round-robin, skipping isolated brokers unless all are.
    pub(super) fn pick<'a>(&self, qs: &'a [Queue], next: &AtomicUsize) -> &'a Queue {
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
pub(super) struct RouteFollower {
    pub(super) topic: String,
    pub(super) namesrv: String,
    pub(super) broker_name: Option<String>,
    pub(super) read: bool,
    pub(super) every: Duration,
    pub(super) queues: watch::Sender<Arc<Vec<Queue>>>,
    pub(super) wake: Notify,
}

impl RouteFollower {
    pub(super) fn new(
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
    pub(super) fn current(&self) -> Arc<Vec<Queue>> {
        self.queues.borrow().clone()
    }

    /// Asks for a refresh now (merged with others within [`MIN_REFRESH_GAP`]).
    pub(super) fn refresh_soon(&self) {
        self.wake.notify_one();
    }

    /// Reads the route every `every` or when woken, until `stop`. A route that cannot be read, or
    /// has no usable queue, keeps the last list (as Apache's clients keep their last route).
    pub(super) async fn run(self: Arc<Self>, client: RemotingClient, stats: Arc<Stats>, stop: CancellationToken) {
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
