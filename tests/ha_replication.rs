//! Master/slave replication across two containers (RIP-31 cross deployment) with the real
//! `mqnamesrv` and `mqbrokercontainer` binaries: SYNC_MASTER + inSyncReplicas=2, a SIGKILL of one
//! container, reads from the surviving slave, restart and catch-up.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rmq::{pull, send, T};
use common::{free_port_block, port_open, ChildGuard};
use rmqc::protocol::codes::{request, response};
use rmqc::protocol::header::{QueryConsumerOffsetRequestHeader, UpdateConsumerOffsetRequestHeader};
use rmqc::remoting::{RemotingClient, RemotingCommand};
use rmqc::store::message::decode_records;

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
const NAMESRV: &str = env!("CARGO_BIN_EXE_mqnamesrv");
const TOPIC: &str = "HaTopic";
const QUEUES: i32 = 4;
const PER_BROKER: usize = 10_000;

/// (queue id, queue offset) -> body of every stored send of one group.
type Acked = BTreeMap<(i32, i64), Vec<u8>>;

fn broker_conf(dir: &Path, name: &str, id: i64, port: u16, store: &Path) -> String {
    let role = if id == 0 { "SYNC_MASTER" } else { "SLAVE" };
    let file = format!("{name}-{id}.conf");
    std::fs::write(
        dir.join(&file),
        format!(
            "brokerClusterName=HaCluster\nbrokerName={name}\nbrokerId={id}\nbrokerRole={role}\nlistenPort={port}\nbrokerIP1=127.0.0.1\ntotalReplicas=2\ninSyncReplicas=2\nslaveTimeout=1500\nstorePathRootDir={}\nmappedFileSizeCommitLog=1048576\nmaxMessageSize=65536\nmappedFileSizeConsumeQueue=60000\nmaxHashSlotNum=1000\nmaxIndexNum=4000\n",
            store.display()
        ),
    )
    .unwrap();
    file
}

async fn info_i64(client: &RemotingClient, port: u16, key: &str) -> Option<i64> {
    common::rmq::try_runtime_info(client, port).await?.get(key)?.parse().ok()
}

/// Sends `count` messages with keys from `conc` workers; returns every stored one (SUCCESS, or
/// FLUSH_SLAVE_TIMEOUT when `allow_slave_timeout`) and the count of slave timeouts.
async fn send_load(
    client: &RemotingClient,
    port: u16,
    tag: &str,
    count: usize,
    conc: usize,
    allow_slave_timeout: bool,
) -> (Acked, usize) {
    let acked = Arc::new(parking_lot::Mutex::new((Acked::new(), 0usize)));
    let mut tasks = Vec::new();
    for w in 0..conc {
        let (client, acked, tag) = (client.clone(), acked.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let addr = format!("127.0.0.1:{port}");
            let mut i = w;
            while i < count {
                let qid = (i % QUEUES as usize) as i32;
                let key = format!("{tag}-{i}");
                let body = format!("{key}-{}", "x".repeat(100 + i % 300)).into_bytes();
                // Refused before it was processed (it waited in the broker's queue past
                // waitTimeMillsInSendQueue, 200 ms, on a loaded machine, or found the queue full):
                // nothing stored, sent again as Apache's producer does (SYSTEM_BUSY is one of its
                // retried codes), a bounded number of times.
                let mut busy = Vec::new();
                let r = loop {
                    let r = send(&client, &addr, TOPIC, qid, &body, &[("KEYS", key.as_str())]).await;
                    let remark = r.remark.as_deref().unwrap_or("");
                    let unprocessed = remark.starts_with("[TIMEOUT_CLEAN_QUEUE]") || remark.starts_with("[OVERLOAD]");
                    if r.code != response::SYSTEM_BUSY || !unprocessed || busy.len() >= 50 {
                        break r;
                    }
                    busy.push(r.remark.unwrap_or_default());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                };
                let timeout = r.code == response::FLUSH_SLAVE_TIMEOUT;
                assert!(
                    r.code == response::SUCCESS || (allow_slave_timeout && timeout),
                    "send {key} answered {} {:?} (after {} busy answers: {busy:?})",
                    r.code,
                    r.remark,
                    busy.len()
                );
                let off: i64 = r.ext("queueOffset").expect("queueOffset").parse().unwrap();
                let mut g = acked.lock();
                assert!(g.0.insert((qid, off), body).is_none(), "queue offset {qid}/{off} acknowledged twice");
                if timeout {
                    g.1 += 1;
                }
                i += conc;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let g = acked.lock();
    (g.0.clone(), g.1)
}

/// Reads every queue of `port` from 0 until all acknowledged offsets are seen; checks bodies and
/// queue order. Returns how many acknowledged messages were found.
async fn read_all(client: &RemotingClient, port: u16, acked: &Acked, what: &str) -> usize {
    let addr = format!("127.0.0.1:{port}");
    let mut found = 0;
    for qid in 0..QUEUES {
        let last = acked.range((qid, 0)..(qid + 1, 0)).next_back().map(|((_, o), _)| *o).unwrap_or(-1);
        let mut offset = 0i64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while offset <= last {
            assert!(Instant::now() < deadline, "{what}: queue {qid} stuck at {offset} (need {last})");
            let r = pull(client, &addr, "ha-check", TOPIC, qid, offset, "*", 0).await;
            if r.code != response::SUCCESS {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            for m in decode_records(&r.body, true) {
                assert_eq!(m.queue_offset, offset, "{what}: queue {qid} out of order");
                if let Some(body) = acked.get(&(qid, m.queue_offset)) {
                    assert_eq!(&m.body[..], &body[..], "{what}: byte-identical at {qid}/{}", m.queue_offset);
                    found += 1;
                }
                offset += 1;
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_replication_survives_kill_9_of_a_container() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ns_port = free_port_block(0, 0);
    let ns_conf = d.join("namesrv.conf");
    std::fs::write(&ns_conf, format!("listenPort={ns_port}\nkvConfigPath={}\n", d.join("kv.json").display())).unwrap();
    let _ns = ChildGuard::spawn(NAMESRV, &["-c", ns_conf.to_str().unwrap()], d, "namesrv");

    // Container 1: broker-a master + broker-b slave; container 2: broker-b master + broker-a slave.
    let (a_m, b_s, b_m, a_s) =
        (free_port_block(2, 1), free_port_block(2, 1), free_port_block(2, 1), free_port_block(2, 1));
    let mut confs = Vec::new();
    for (c, brokers) in
        [(1, [("broker-a", 0, a_m), ("broker-b", 1, b_s)]), (2, [("broker-b", 0, b_m), ("broker-a", 1, a_s)])]
    {
        let cdir = d.join(format!("c{c}"));
        std::fs::create_dir_all(&cdir).unwrap();
        let files: Vec<String> = brokers
            .iter()
            .map(|(name, id, port)| broker_conf(&cdir, name, *id, *port, &cdir.join("store").join(name)))
            .collect();
        let cport = free_port_block(2, 0);
        let conf = cdir.join("container.conf");
        std::fs::write(
            &conf,
            format!(
                "listenPort={cport}\nbindAddress=127.0.0.1\nnamesrvAddr=127.0.0.1:{ns_port}\nbrokerConfigPaths={}\n",
                files.join(":")
            ),
        )
        .unwrap();
        confs.push(conf);
    }
    common::wait_until("namesrv listens", Duration::from_secs(20), || port_open(ns_port));
    let mut c1 = ChildGuard::spawn(CONTAINER, &["-c", confs[0].to_str().unwrap()], d, "c1");
    let _c2 = ChildGuard::spawn(CONTAINER, &["-c", confs[1].to_str().unwrap()], d, "c2");
    let client = RemotingClient::default();
    for (m, what) in [(a_m, "broker-a"), (b_m, "broker-b")] {
        common::wait_async(&format!("{what} master has its slave"), Duration::from_secs(60), || async {
            info_i64(&client, m, "haConnectedSlaves").await == Some(1)
        })
        .await;
    }

    // mqadmin clusterList shows both groups with master (0) and slave (1) and the replication state.
    let ns = format!("127.0.0.1:{ns_port}");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mqadmin")).args(["clusterList", "-n", &ns]).output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    for port in [a_m, b_m, a_s, b_s] {
        assert!(text.contains(&format!("127.0.0.1:{port}")), "clusterList lists every replica:\n{text}");
    }
    assert!(text.contains("haConnectedSlaves=1") && text.contains("haConnected=true"), "replication column:\n{text}");

    // Phase 1: 10,000 acknowledged messages to each group under sustained load, sampling the lag.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (client, sampling) = (client.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut lags = Vec::new();
            while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                for (m, s) in [(a_m, a_s), (b_m, b_s)] {
                    if let (Some(mm), Some(sm)) = (
                        info_i64(&client, m, "commitLogMaxOffset").await,
                        info_i64(&client, s, "commitLogMaxOffset").await,
                    ) {
                        lags.push((mm - sm).max(0));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            lags
        })
    };
    let t0 = Instant::now();
    let a_before = info_i64(&client, a_m, "commitLogMaxOffset").await.unwrap();
    let b_before = info_i64(&client, b_m, "commitLogMaxOffset").await.unwrap();
    let (load_a, load_b) = tokio::join!(
        send_load(&client, a_m, "a", PER_BROKER, 16, false),
        send_load(&client, b_m, "b", PER_BROKER, 16, false)
    );
    let elapsed = t0.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::SeqCst);
    let lags = sampler.await.unwrap();
    let mut acked_a = load_a.0;
    let mut acked_b = load_b.0;
    assert_eq!(acked_a.len(), PER_BROKER);
    assert_eq!(acked_b.len(), PER_BROKER);
    let bytes = (info_i64(&client, a_m, "commitLogMaxOffset").await.unwrap() - a_before)
        + (info_i64(&client, b_m, "commitLogMaxOffset").await.unwrap() - b_before);
    let secs = elapsed.as_secs_f64();
    let max_lag = lags.iter().copied().max().unwrap_or(0);
    let mean_lag = lags.iter().sum::<i64>() as f64 / lags.len().max(1) as f64;
    eprintln!(
        "HA sustained load (SYNC_MASTER, inSyncReplicas=2, 2x16 senders): {} msgs in {:.2} s = {:.0} msgs/s, replication throughput {:.2} MiB/s ({} commitlog bytes); slave lag over {} samples: mean {:.0} B, max {} B",
        2 * PER_BROKER,
        secs,
        (2 * PER_BROKER) as f64 / secs,
        bytes as f64 / secs / (1 << 20) as f64,
        bytes,
        lags.len(),
        mean_lag,
        max_lag
    );
    let info = common::rmq::try_runtime_info(&client, a_s).await.unwrap();
    for k in ["masterAddr", "haMasterAddr", "haReplicatedOffset", "haLagBytes"] {
        assert!(info.contains_key(k), "slave runtime info has {k}: {info:?}");
    }
    let info = common::rmq::try_runtime_info(&client, a_m).await.unwrap();
    for k in ["haConnectedSlaves", "haSlaveAckOffset", "haReplicationLagBytes"] {
        assert!(info.contains_key(k), "master runtime info has {k}: {info:?}");
    }

    // Metadata follows the master within seconds: a consumer offset committed on the master (the
    // group is created there by a first pull).
    pull(&client, &format!("127.0.0.1:{a_m}"), "ha-sync-group", TOPIC, 1, 0, "*", 0).await;
    let upd = RemotingCommand::request_with_header(
        request::UPDATE_CONSUMER_OFFSET,
        &UpdateConsumerOffsetRequestHeader {
            consumer_group: "ha-sync-group".into(),
            topic: TOPIC.into(),
            queue_id: Some(1),
            commit_offset: Some(1234),
        },
    );
    let r = client.invoke(&format!("127.0.0.1:{a_m}"), upd, T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let t_sync = Instant::now();
    common::wait_async("the consumer offset reaches the slave", Duration::from_secs(10), || async {
        let q = RemotingCommand::request_with_header(
            request::QUERY_CONSUMER_OFFSET,
            &QueryConsumerOffsetRequestHeader {
                consumer_group: "ha-sync-group".into(),
                topic: TOPIC.into(),
                queue_id: 1,
                set_zero_if_not_found: None,
            },
        );
        let r = client.invoke(&format!("127.0.0.1:{a_s}"), q, T).await.unwrap();
        r.code == response::SUCCESS && r.ext("offset") == Some("1234")
    })
    .await;
    eprintln!("consumer offset synced to the slave in {:.2} s", t_sync.elapsed().as_secs_f64());

    // Phase 2: SIGKILL container 1 (broker-a master, broker-b slave).
    c1.kill9();
    let t_kill = Instant::now();
    let found = read_all(&client, a_s, &acked_a, "broker-a slave after the kill").await;
    assert_eq!(found, acked_a.len(), "every acknowledged broker-a message is on its slave");
    eprintln!(
        "broker-a slave served all {found} acknowledged messages {:.2} s after the kill",
        t_kill.elapsed().as_secs_f64()
    );
    let (more_b, timeouts) = send_load(&client, b_m, "b2", 200, 50, true).await;
    eprintln!("broker-b without its slave: 200 sends stored, {timeouts} answered FLUSH_SLAVE_TIMEOUT");
    for (k, v) in more_b {
        assert!(acked_b.insert(k, v).is_none());
    }

    // Phase 3: restart container 1; both slaves catch up; every replica has everything.
    let _c1b = ChildGuard::spawn(CONTAINER, &["-c", confs[0].to_str().unwrap()], d, "c1-restart");
    let t_restart = Instant::now();
    for (m, s, what) in [(a_m, a_s, "broker-a"), (b_m, b_s, "broker-b")] {
        common::wait_async(&format!("{what} slave catches up"), Duration::from_secs(60), || async {
            let (mm, sm) =
                (info_i64(&client, m, "commitLogMaxOffset").await, info_i64(&client, s, "commitLogMaxOffset").await);
            mm.is_some() && mm == sm && info_i64(&client, m, "haConnectedSlaves").await == Some(1)
        })
        .await;
    }
    eprintln!("both slaves caught up {:.2} s after the restart", t_restart.elapsed().as_secs_f64());
    let (more_a, _) = send_load(&client, a_m, "a3", 100, 10, false).await;
    acked_a.extend(more_a);
    for (port, acked, what) in [
        (a_m, &acked_a, "broker-a master"),
        (a_s, &acked_a, "broker-a slave"),
        (b_m, &acked_b, "broker-b master"),
        (b_s, &acked_b, "broker-b slave"),
    ] {
        let found = read_all(&client, port, acked, what).await;
        assert_eq!(found, acked.len(), "{what} has every acknowledged message");
    }
    eprintln!("replication test wall time {:.1} s", started.elapsed().as_secs_f64());
    client.shutdown().await;
}
