//! Issue 13: a broker that is overloaded answers busy (Apache's `[OVERLOAD]` /
//! `[TIMEOUT_CLEAN_QUEUE]` SYSTEM_BUSY) while its neighbour in the same container keeps answering,
//! and nothing answered busy is stored. Speed is measured by scripts/bench-isolation.sh, not here.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::rmq::{create_topic, send, wait_max_offset, T};
use common::{port_open, wait_until, write_broker, write_container, ChildGuard};
use rmqc::protocol::codes::{request, response};
use rmqc::remoting::{RemotingClient, RemotingCommand};

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_broker_answers_busy_and_its_neighbour_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    // broker-a: one thread and a send queue of 4; broker-b: defaults. A burst of 400 pipelined
    // sends overflows the queue of 4 ([OVERLOAD]); the four admitted ones may wait up to 1 s for
    // the thread (past that, [TIMEOUT_CLEAN_QUEUE]). With a 5 ms wait a loaded machine that did
    // not run the thread within 5 ms of each burst had broker-a refuse every send, as configured.
    let (a, pa) = write_broker(
        dir.path(),
        "busy-a",
        "brokerWorkerThreads=1\nsendThreadPoolQueueCapacity=4\nwaitTimeMillsInSendQueue=1000\nautoCreateTopicEnable=true\n",
    );
    let (b, pb) = write_broker(dir.path(), "calm-b", "autoCreateTopicEnable=true\n");
    let (conf, port, _ns) = write_container(dir.path(), &[&a, &b]);
    let _c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], dir.path(), "container");
    wait_until("both brokers listen", Duration::from_secs(20), || port_open(port) && port_open(pa) && port_open(pb));
    let (addr_a, addr_b) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    let client = RemotingClient::default();
    // Create the topics (one queue each) so every send lands in queue 0.
    for addr in [&addr_a, &addr_b] {
        create_topic(&client, addr, "Iso").await;
    }

    // broker-b answers every send, one at a time, all through broker-a's overload.
    let stop = Arc::new(AtomicBool::new(false));
    let calm = {
        let (client, addr_b, stop) = (client.clone(), addr_b.clone(), stop.clone());
        tokio::spawn(async move {
            let mut ok = 0i64;
            while !stop.load(Ordering::Relaxed) && ok < 100_000 {
                let r = send(&client, &addr_b, "Iso", 0, b"calm", &[]).await;
                assert_eq!(r.code, response::SUCCESS, "broker-b refused a send: {:?}", r.remark);
                ok += 1;
            }
            ok
        })
    };

    // Bursts of pipelined sends to broker-a overflow its queue of 4.
    let body = vec![b'x'; 1024];
    let (mut stored, mut busy, mut remarks) = (0i64, 0usize, Vec::new());
    for _ in 0..5 {
        let burst = (0..400).map(|_| send(&client, &addr_a, "Iso", 0, &body, &[]));
        for r in futures::future::join_all(burst).await {
            match r.code {
                response::SUCCESS => stored += 1,
                response::SYSTEM_BUSY => {
                    busy += 1;
                    let remark = r.remark.unwrap_or_default();
                    assert!(
                        remark.starts_with("[OVERLOAD]") || remark.starts_with("[TIMEOUT_CLEAN_QUEUE]"),
                        "{remark}"
                    );
                    if remarks.len() < 3 {
                        remarks.push(remark);
                    }
                }
                other => panic!("broker-a answered {other}: {:?}", r.remark),
            }
        }
    }
    assert!(busy > 0, "2000 pipelined sends into a queue of 4 were never refused");
    assert!(stored > 0, "broker-a stored nothing: {busy} answered busy, e.g. {remarks:?}");
    eprintln!("broker-a: {stored} stored, {busy} answered busy, e.g. {remarks:?}");

    stop.store(true, Ordering::Relaxed);
    let calm_ok = calm.await.expect("broker-b's sender");
    assert!(calm_ok > 0);
    // What broker-a acknowledged is exactly what it stored: nothing answered busy was written.
    wait_max_offset(&client, &addr_a, "Iso", 0, stored).await;
    let req = RemotingCommand::request(request::GET_MAX_OFFSET).with_ext("topic", "Iso").with_ext("queueId", "0");
    let r = client.invoke(&addr_a, req, T).await.unwrap();
    assert_eq!(r.ext("offset").and_then(|o| o.parse::<i64>().ok()), Some(stored));
    // Once the burst is over broker-a takes sends again.
    let r = send(&client, &addr_a, "Iso", 0, b"after", &[]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}
