//! The mqbench producer run.

use super::*;

/// Runs the producer; `on_event` receives one progress line per report period and the notices.
pub async fn run_producer(opts: ProducerOptions, mut on_event: impl FnMut(Event)) -> Result<Summary, BenchError> {
    let client = RemotingClient::new(ClientConfig { tls: opts.tls.clone(), ..Default::default() });
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
                let props = |k: usize| {
                    let key = seq_uniq_key(n + k as u64);
                    if opts.keys {
                        encode_properties([("UNIQ_KEY", key.as_str()), ("KEYS", key.as_str()), ("WAIT", "true")])
                    } else {
                        encode_properties([("UNIQ_KEY", key.as_str()), ("WAIT", "true")])
                    }
                };
                let mut h = send_header("mqbench", &opts.topic, q.id, 8, (batch == 1).then(|| props(0)));
                h.batch = Some(batch > 1);
                let (code, payload) = if batch > 1 {
                    let items: Vec<BatchItem> =
                        (0..batch).map(|k| BatchItem { flag: 0, body: body.clone(), properties: props(k) }).collect();
                    (request::SEND_BATCH_MESSAGE, Bytes::from(encode_batch_body(&items)))
                } else {
                    (request::SEND_MESSAGE_V2, body.clone())
                };
                let req = send_request_owned(code, h, payload);
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
