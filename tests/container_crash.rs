//! Acknowledged messages survive a SIGKILL of the whole container (ASYNC_FLUSH and SYNC_FLUSH
//! brokers side by side), and the restarted brokers serve them byte-identical.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::rmq::{pull, send};
use common::{free_port_block, port_open, wait_until, ChildGuard};
use rmqc::protocol::codes::response;
use rmqc::remoting::RemotingClient;
use rmqc::store::message::decode_records;

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");

/// (broker port, queue id, queue offset) -> body of every acknowledged send.
type Acked = Arc<parking_lot::Mutex<BTreeMap<(u16, i32, i64), Vec<u8>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_of_the_container() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut files = Vec::new();
    let mut ports = Vec::new();
    for (name, flush) in [("crash-async", "ASYNC_FLUSH"), ("crash-sync", "SYNC_FLUSH")] {
        let port = free_port_block(2, 1);
        std::fs::write(
            d.join(format!("{name}.conf")),
            format!(
                "brokerClusterName=K\nbrokerName={name}\nlistenPort={port}\nbrokerIP1=127.0.0.1\nflushDiskType={flush}\nstorePathRootDir={}\nmappedFileSizeCommitLog=1048576\nmaxMessageSize=65536\nmaxHashSlotNum=1000\nmaxIndexNum=4000\n",
                d.join("store").join(name).display()
            ),
        )
        .unwrap();
        files.push(format!("{name}.conf"));
        ports.push(port);
    }
    let cport = free_port_block(2, 0);
    let conf = d.join("c.conf");
    std::fs::write(
        &conf,
        format!("listenPort={cport}\nbindAddress=127.0.0.1\nbrokerConfigPaths={}\n", files.join(":")),
    )
    .unwrap();
    let mut child = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "c1");
    wait_until("brokers listen", Duration::from_secs(30), || ports.iter().all(|p| port_open(*p)));

    // Two senders per broker; every acknowledged (queue offset -> body) is remembered. The container
    // is killed while they send.
    let client = RemotingClient::default();
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for &port in &ports {
        for w in 0..2 {
            let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let addr = format!("127.0.0.1:{port}");
                for i in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let body = format!("{port}-{w}-{i}-{}", "p".repeat(i % 200)).into_bytes();
                    let Ok(r) =
                        tokio::time::timeout(Duration::from_secs(5), send(&client, &addr, "CrashTopic", w, &body, &[]))
                            .await
                    else {
                        break;
                    };
                    if r.code != response::SUCCESS {
                        break;
                    }
                    let off: i64 = r.ext("queueOffset").unwrap().parse().unwrap();
                    acked.lock().insert((port, w, off), body);
                }
            }));
        }
    }
    wait_until("some messages are acknowledged", Duration::from_secs(30), || acked.lock().len() > 400);
    child.kill9();
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    client.shutdown().await;
    let acked = acked.lock().clone();
    assert!(acked.len() > 400);

    let _child2 = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "c2");
    wait_until("restarted brokers listen", Duration::from_secs(30), || ports.iter().all(|p| port_open(*p)));
    let client = RemotingClient::default();
    let mut found = 0;
    for &port in &ports {
        for w in 0..2 {
            let addr = format!("127.0.0.1:{port}");
            let mut offset = 0;
            loop {
                let r = pull(&client, &addr, "crash-check", "CrashTopic", w, offset, "*", 0).await;
                if r.code != response::SUCCESS {
                    break;
                }
                for m in decode_records(&r.body, true) {
                    if let Some(body) = acked.get(&(port, w, m.queue_offset)) {
                        assert_eq!(&m.body[..], &body[..], "byte-identical at {port}/{w}/{}", m.queue_offset);
                        found += 1;
                    }
                    offset = m.queue_offset + 1;
                }
            }
        }
    }
    assert_eq!(found, acked.len(), "every acknowledged message survived the kill");
    client.shutdown().await;
}
