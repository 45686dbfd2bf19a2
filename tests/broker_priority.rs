//! Issue 13, adaptive priority: a broker saturated by its clients gets its threads (its runtime's
//! and its store's) moved to a lower CPU weight and SCHED_BATCH, its neighbour's threads keep
//! theirs and the neighbour keeps answering, and the saturated broker's threads get their weight
//! back once it is quiet. Read from /proc, so Linux only. Latency is measured by
//! scripts/bench-isolation.sh, never here.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::rmq::{create_topic, send};
use common::{port_open, skip, wait_until, write_broker, write_container, ChildGuard};
use rmqc::protocol::codes::response;
use rmqc::remoting::RemotingClient;

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");

/// One thread of the container: name, nice value, scheduling policy (0 other, 3 batch).
#[derive(Debug, Clone)]
struct Thread {
    name: String,
    nice: i64,
    policy: i64,
}

fn threads(pid: u32) -> Vec<Thread> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ...: the fields after the last ')' start with field 3 (state).
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let (Some(nice), Some(policy)) = (f.get(16), f.get(38)) else { continue };
        out.push(Thread { name, nice: nice.parse().unwrap(), policy: policy.parse().unwrap() });
    }
    out
}

fn named<'a>(ts: &'a [Thread], prefix: &str) -> Vec<&'a Thread> {
    ts.iter().filter(|t| t.name.starts_with(prefix)).collect()
}

/// SCHED_BATCH and nice 10 (or the container's own nice value where that is higher, or where the
/// container may not lower a nice value back: then the weight is left alone).
fn demoted(t: &Thread, base: i64) -> bool {
    t.policy == 3 && (t.nice == 10.max(base) || t.nice == base)
}

/// The container's own class (SCHED_OTHER at the nice value it was started with).
fn normal(t: &Thread, base: i64) -> bool {
    t.nice == base && t.policy == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_broker_yields_the_cpu_to_its_neighbour_and_gets_it_back_when_quiet() {
    if !cfg!(target_os = "linux") {
        skip("adaptive priority", "per-thread scheduling is Linux only");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A short window so that the test sees both transitions quickly; one worker thread so that
    // broker-a's queue fills from one client.
    let prio = "adaptivePriorityEnable=true\nadaptivePriorityWindowMillis=50\nadaptivePriorityBusyNice=10\nautoCreateTopicEnable=true\n";
    let (a, pa) = write_broker(dir.path(), "prio-a", &format!("brokerWorkerThreads=1\n{prio}"));
    let (b, pb) = write_broker(dir.path(), "prio-b", prio);
    let (conf, port, _ns) = write_container(dir.path(), &[&a, &b]);
    let c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], dir.path(), "container");
    let pid = c.0.as_ref().unwrap().id();
    wait_until("both brokers listen", Duration::from_secs(20), || port_open(port) && port_open(pa) && port_open(pb));
    let (addr_a, addr_b) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    let client = RemotingClient::default();
    for addr in [&addr_a, &addr_b] {
        create_topic(&client, addr, "Prio").await;
    }
    // Every thread starts at the container's own class (its nice value is that of this test).
    let before = threads(pid);
    assert!(!named(&before, "prio-a-w").is_empty(), "no broker-a threads in {before:?}");
    let base = before[0].nice;
    assert!(before.iter().all(|t| normal(t, base)), "{before:?}");

    // Saturate broker-a: 64 sends in flight, without pause, bounded in count and time.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..64)
        .map(|_| {
            let (client, addr_a, stop) = (client.clone(), addr_a.clone(), stop.clone());
            tokio::spawn(async move {
                let body = vec![b'x'; 1024];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 1_000_000 {
                    let r = send(&client, &addr_a, "Prio", 0, &body, &[]).await;
                    assert!(r.code == response::SUCCESS || r.code == response::SYSTEM_BUSY, "{:?}", r.remark);
                    n += 1;
                }
            })
        })
        .collect();
    let watchdog = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            stop.store(true, Ordering::Relaxed);
        })
    };

    // broker-a's runtime threads and three store threads (its dispatch and flush threads) are
    // demoted; broker-b's threads keep their class and broker-b keeps answering.
    let mut b_sent = 0u32;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let last = loop {
        let r = send(&client, &addr_b, "Prio", 0, b"calm", &[]).await;
        assert_eq!(r.code, response::SUCCESS, "broker-b refused a send: {:?}", r.remark);
        b_sent += 1;
        let now = threads(pid);
        let a_demoted = named(&now, "prio-a-w").iter().all(|t| demoted(t, base));
        let store_demoted = named(&now, "store-").iter().filter(|t| demoted(t, base)).count();
        if a_demoted && store_demoted == 3 {
            break now;
        }
        assert!(tokio::time::Instant::now() < deadline, "broker-a never demoted under load: {now:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(named(&last, "prio-b-w").iter().all(|t| normal(t, base)), "broker-b's threads lost their class: {last:?}");
    assert_eq!(
        named(&last, "store-").iter().filter(|t| normal(t, base)).count(),
        3,
        "broker-b's store threads: {last:?}"
    );
    for _ in 0..20 {
        let r = send(&client, &addr_b, "Prio", 0, b"calm", &[]).await;
        assert_eq!(r.code, response::SUCCESS, "broker-b refused a send next to a demoted neighbour: {:?}", r.remark);
        b_sent += 1;
    }
    eprintln!("broker-a demoted; broker-b answered {b_sent} sends meanwhile");

    // Quiet again: broker-a's threads get their class back.
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    watchdog.abort();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = threads(pid);
        if now.iter().all(|t| normal(t, base)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "broker-a's threads did not get their class back in 20 s: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = send(&client, &addr_a, "Prio", 0, b"after", &[]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}
