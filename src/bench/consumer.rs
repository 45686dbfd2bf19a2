//! The mqbench consumer run.

use super::*;

/// What every pulling worker of a consumer run shares.
pub(super) struct ConsumeRun {
    pub(super) client: RemotingClient,
    pub(super) opts: ConsumerOptions,
    pub(super) stats: Arc<Stats>,
    pub(super) routes: Arc<RouteFollower>,
    pub(super) deadline: Option<Instant>,
    pub(super) stop: CancellationToken,
}

/// Pulls one queue until the run is over, from its first message when `from_start` (else from its
/// current end); latency is consume time minus born time.
pub(super) async fn consume_queue(run: Arc<ConsumeRun>, q: Queue, from_start: bool) {
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
    let client = RemotingClient::new(ClientConfig { tls: opts.tls.clone(), ..Default::default() });
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

pub(super) async fn report_until_done(
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
