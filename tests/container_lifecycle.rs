//! Issue 18 (life cycle): SIGTERM under load. The container stops accepting, answers what is in
//! flight, unregisters every broker from the NameServer, flushes and exits within a bounded time;
//! every acknowledged message is there after a restart.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rmq::pull;
use common::{free_port_block, port_open, wait_until, write_broker, ChildGuard};
use rmqc::protocol::codes::{request, response};
use rmqc::remoting::{RemotingClient, RemotingCommand};
use rmqc::store::message::decode_records;

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
const NAMESRV: &str = env!("CARGO_BIN_EXE_mqnamesrv");

type Acked = Arc<parking_lot::Mutex<BTreeMap<(u16, i32, i64), Vec<u8>>>>;

async fn cluster_info(client: &RemotingClient, ns: &str) -> String {
    let r = client.invoke(ns, RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO), Duration::from_secs(5)).await;
    r.map(|r| String::from_utf8_lossy(&r.body).into_owned()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_unregisters_answers_flushes_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_ns, ns) = common::start_namesrv(NAMESRV, d);
    let (a, pa) = write_broker(d, "life-a", "maxMessageSize=65536\n");
    let (b, pb) = write_broker(d, "life-b", "maxMessageSize=65536\nflushDiskType=SYNC_FLUSH\n");
    let cport = free_port_block(2, 0);
    let conf = d.join("c.conf");
    std::fs::write(
        &conf,
        format!("listenPort={cport}\nbindAddress=127.0.0.1\nnamesrvAddr={ns}\nbrokerConfigPaths={a}:{b}\nbrokerConfigDirs=.\nlogRoot={}\n", d.join("logs").display()),
    )
    .unwrap();
    let mut child = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "c1");
    wait_until("brokers listen", Duration::from_secs(30), || port_open(pa) && port_open(pb));
    let client = RemotingClient::default();
    common::wait_async("both brokers registered", Duration::from_secs(10), || async {
        let info = cluster_info(&client, &ns).await;
        info.contains("life-a") && info.contains("life-b")
    })
    .await;

    // Four senders per broker until the container goes; every acknowledged send is remembered.
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for port in [pa, pb] {
        for w in 0..4 {
            let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let addr = format!("127.0.0.1:{port}");
                let mut refused = 0;
                for i in 0..200_000 {
                    if stop.load(Ordering::SeqCst) || refused > 50 {
                        break;
                    }
                    let body = format!("{port}-{w}-{i}").into_bytes();
                    let r = client.invoke(&addr, send_req(w, &body), Duration::from_secs(5)).await;
                    match r {
                        Ok(r) if r.code == response::SUCCESS => {
                            let off: i64 = r.ext("queueOffset").unwrap().parse().unwrap();
                            acked.lock().insert((port, w, off), body);
                        }
                        // Refused while shutting down (or the connection went): never acknowledged.
                        _ => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }));
        }
    }
    wait_until("load is flowing", Duration::from_secs(30), || acked.lock().len() > 2000);
    let before = acked.lock().len();
    let t0 = Instant::now();
    let status = child.terminate();
    let took = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(15), "SIGTERM to exit took {took:?}");
    // Unregistered, not left to expire (the NameServer keeps a silent broker for 120 s).
    let info = cluster_info(&client, &ns).await;
    assert!(!info.contains("life-a") && !info.contains("life-b"), "still registered: {info}");
    let acked = acked.lock().clone();
    assert!(acked.len() >= before);
    eprintln!("SIGTERM under load: {} acknowledged, exit in {took:?}", acked.len());

    let _child2 = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "c2");
    wait_until("restarted brokers listen", Duration::from_secs(30), || port_open(pa) && port_open(pb));
    let mut found = 0;
    for port in [pa, pb] {
        for q in 0..4 {
            let addr = format!("127.0.0.1:{port}");
            let mut offset = 0;
            for _ in 0..100_000 {
                let r = pull(&client, &addr, "life-check", "LifeTopic", q, offset, "*", 0).await;
                if r.code != response::SUCCESS {
                    break;
                }
                for m in decode_records(&r.body, true) {
                    if let Some(body) = acked.get(&(port, q, m.queue_offset)) {
                        assert_eq!(&m.body[..], &body[..]);
                        found += 1;
                    }
                    offset = m.queue_offset + 1;
                }
            }
        }
    }
    assert_eq!(found, acked.len(), "every acknowledged message is there after the restart");
    client.shutdown().await;
}

fn send_req(queue: i32, body: &[u8]) -> RemotingCommand {
    let h = rmqc::protocol::header::SendMessageRequestHeader {
        producer_group: "life-pg".into(),
        topic: "LifeTopic".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: queue,
        sys_flag: 0,
        born_timestamp: rmqc::util::now_millis(),
        flag: 0,
        properties: Some(String::new()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(false),
        max_reconsume_times: None,
        bname: None,
    };
    RemotingCommand::request_with_header(request::SEND_MESSAGE_V2, &h.to_v2())
        .with_body(bytes::Bytes::copy_from_slice(body))
}
