#![allow(clippy::unwrap_used)]
//! A store moving from a plain commitlog to DLedger (Apache's `dividedCommitlogOffset`): the
//! plain commitlog is sealed and kept read-only below the divided offset, the DLedger entries
//! continue above it, every old and new message stays readable (by queue, by offset, by key),
//! queue offsets and consumer offsets continue, restarts recover both parts, and cleanup deletes
//! the old files first.

mod common;

use common::dledger::transport;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rmqc::dledger::core::Role;
use rmqc::dledger::server::{parse_peers, DLedgerConfig, DLedgerServer};
use rmqc::remoting::RemotingServer;
use rmqc::store::cleanup::{CleanupClock, CleanupPolicy, DiskProbe, PartitionUsage};
use rmqc::store::config::MessageStoreConfig;
use rmqc::store::message::MessageInner;
use rmqc::store::{MessageStore, PutMessageStatus};

const FILE: u64 = 16 * 1024;
const TOPIC: &str = "DvT";

fn node_config(root: &Path, port: u16) -> DLedgerConfig {
    common::dledger::single_member("RaftDivided", root, port, FILE)
}

fn store_config(root: &Path) -> MessageStoreConfig {
    common::dledger::small_store(root, FILE, 400)
}

fn data_dir(root: &Path) -> std::path::PathBuf {
    root.join("dledger-n0").join("data")
}

fn body(i: usize) -> String {
    format!("m{i}-{}", "d".repeat((i * 97) % 1500))
}

fn msg(i: usize) -> MessageInner {
    let mut m = MessageInner::new(TOPIC.to_string(), (i % 2) as i32, Bytes::from(body(i)));
    m.born_host = "127.0.0.1:1".parse().unwrap();
    m.store_host = "127.0.0.1:2".parse().unwrap();
    m.properties = format!("KEYS\u{1}k{i}\u{2}");
    m
}

/// Prepares the store for DLedger, starts a single-member node and opens the store on it, once
/// the node leads.
async fn open_on_dledger(root: &Path, port: u16, net: &RemotingServer) -> (Arc<DLedgerServer>, Arc<MessageStore>, i64) {
    let (cfg, dd) = (store_config(root), data_dir(root));
    let divided = tokio::task::spawn_blocking(move || MessageStore::prepare_divided(&cfg, &dd, FILE))
        .await
        .unwrap()
        .unwrap()
        .expect("a plain commitlog is there");
    let node = DLedgerServer::start(node_config(root, port), net, None).await.unwrap();
    let store = common::dledger::open_on(&node, store_config(root)).await;
    common::wait_until("the single member leads", Duration::from_secs(30), || node.status().role == Role::Leader);
    (node, store, divided)
}

async fn close(node: Arc<DLedgerServer>, store: Arc<MessageStore>) {
    tokio::task::spawn_blocking(move || store.shutdown().unwrap()).await.unwrap();
    node.shutdown().await;
}

/// Every message of both queues is read by queue (in order, with its queue offset), by its
/// offset (the msgId's physical offset) and the key of each is found in the index.
fn check_all(store: &MessageStore, sent: &[Vec<(i64, String)>; 2], what: &str) {
    for (q, part) in sent.iter().enumerate() {
        let want: Vec<String> = part.iter().map(|(_, b)| b.clone()).collect();
        assert_eq!(store.max_offset_in_queue(TOPIC, q as i32), want.len() as i64, "{what}: max offset of queue {q}");
        let got = common::rmq::queue_bodies(store, TOPIC, q as i32, 0);
        assert_eq!(got.len(), want.len(), "{what}: queue {q} read {} of {}", got.len(), want.len());
        assert!(got == want, "{what}: queue {q} differs");
        for (phys, b) in part {
            let rec = store.look_message_by_offset(*phys).unwrap_or_else(|| panic!("{what}: nothing at offset {phys}"));
            let v = rmqc::protocol::message::decode_record(&rec, true).unwrap();
            assert_eq!(v.commit_log_offset, *phys, "{what}");
            assert_eq!(&String::from_utf8_lossy(&v.body), b, "{what}: body at {phys}");
        }
    }
    let total = sent[0].len() + sent[1].len();
    for i in [0usize, 1, 17, 59, 60, 61, 99].into_iter().filter(|&i| i < total) {
        let q = store.query_message(TOPIC, &format!("k{i}"), 4, 0, i64::MAX);
        assert_eq!(q.messages.len(), 1, "{what}: key k{i} found once");
    }
}

struct FakeProbe(Mutex<f64>);

impl DiskProbe for FakeProbe {
    fn partition(&self, _path: &Path) -> Option<PartitionUsage> {
        Some(PartitionUsage { ratio: *self.0.lock().unwrap(), total_bytes: 100 << 30 })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_store_moves_under_dledger_and_keeps_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let port = common::free_port_block(0, 0);
    let net = transport();
    let mut sent: [Vec<(i64, String)>; 2] = [Vec::new(), Vec::new()];

    // A plain store with 60 messages over several 16 KiB files.
    let plain = MessageStore::open(store_config(&root)).unwrap();
    for i in 0..60 {
        let r = plain.put_message(msg(i)).await;
        assert_eq!(r.status, PutMessageStatus::PutOk);
        let a = r.append.unwrap();
        assert_eq!(a.logics_offset, sent[i % 2].len() as i64);
        sent[i % 2].push((a.wrote_offset, body(i)));
    }
    let old_end = plain.commit_log_max_offset();
    let old_files = std::fs::read_dir(root.join("commitlog")).unwrap().count();
    assert!(old_files >= 3, "{old_files} plain files");
    plain.shutdown().unwrap();
    drop(plain);

    // First start on DLedger: the last plain file is closed by a BLANK, the DLedger data starts
    // at its end, the divided offset.
    let (node, store, divided) = open_on_dledger(&root, port, &net).await;
    let expect_divided = (old_end as u64).div_ceil(FILE) * FILE;
    assert_eq!(divided as u64, expect_divided);
    let last = std::fs::read(root.join("commitlog").join(format!("{:020}", divided as u64 - FILE))).unwrap();
    let at = (old_end as u64 % FILE) as usize;
    assert_eq!(&last[at..at + 4], &((FILE as usize - at) as i32).to_be_bytes(), "BLANK size at the old end");
    assert_eq!(&last[at + 4..at + 8], &(-875286124i32).to_be_bytes(), "BLANK magic at the old end");
    assert_eq!(node.data_files().min_offset(), divided as u64);
    assert_eq!(store.commit_log_min_offset(), 0);
    assert_eq!(store.commit_log_max_offset(), divided);
    check_all(&store, &sent, "after the switch");

    // New messages go to the DLedger log above the divided offset; queue offsets continue.
    for i in 60..100 {
        let r = store.put_message(msg(i)).await;
        assert_eq!(r.status, PutMessageStatus::PutOk, "put {i}");
        let a = r.append.unwrap();
        assert!(a.wrote_offset >= divided + 48, "{} above {divided}", a.wrote_offset);
        assert_eq!(a.logics_offset, sent[i % 2].len() as i64, "queue offset of {i}");
        sent[i % 2].push((a.wrote_offset, body(i)));
    }
    assert!(node.data_files().len() > 1, "the DLedger data rolled over");
    common::wait_until("the new messages dispatched", Duration::from_secs(30), || {
        store.max_offset_in_queue(TOPIC, 0) == 50 && store.max_offset_in_queue(TOPIC, 1) == 50
    });
    check_all(&store, &sent, "after new sends");
    close(node, store).await;

    // Restart: both parts recovered, nothing sealed again.
    let (node, store, again) = open_on_dledger(&root, port, &net).await;
    assert_eq!(again, divided);
    check_all(&store, &sent, "after a restart");
    let r = store.put_message(msg(100)).await;
    assert_eq!(r.status, PutMessageStatus::PutOk);
    sent[0].push((r.append.unwrap().wrote_offset, body(100)));
    common::wait_until("one more dispatched", Duration::from_secs(30), || store.max_offset_in_queue(TOPIC, 0) == 51);

    // Once more: the old part and the DLedger part recovered again.
    close(node, store).await;
    let (node, store, _) = open_on_dledger(&root, port, &net).await;
    check_all(&store, &sent, "after a second restart");

    // Cleanup: the old files go first, all of them (the last one too) once expired; the DLedger
    // files stay in that run; the queues' minimum moves past the old messages.
    let dledger_files = node.data_files().len();
    let probe = FakeProbe(Mutex::new(0.1));
    let policy = CleanupPolicy { delete_when_hours: vec![4], delete_file_batch_max: 100, ..Default::default() };
    let far = rmqc::store::message::now_ms() + 1000 * 3_600_000;
    let report = store.run_cleanup(&policy, &probe, CleanupClock { now_ms: far, local_hour: 4 }).unwrap();
    assert_eq!(report.deleted_commit_log_files.len(), old_files, "{report:?}");
    assert_eq!(std::fs::read_dir(root.join("commitlog")).unwrap().count(), 0);
    assert_eq!(node.data_files().len(), dledger_files, "DLedger files stay while old ones are deleted");
    assert_eq!(store.commit_log_min_offset(), divided);
    assert_eq!(store.min_offset_in_queue(TOPIC, 0), 30);
    assert_eq!(store.min_offset_in_queue(TOPIC, 1), 30);
    let later: [Vec<(i64, String)>; 2] = [sent[0][30..].to_vec(), sent[1][30..].to_vec()];
    for (q, part) in later.iter().enumerate() {
        let want: Vec<String> = part.iter().map(|(_, b)| b.clone()).collect();
        assert_eq!(common::rmq::queue_bodies(&store, TOPIC, q as i32, 30), want, "queue {q} after cleanup");
    }
    close(node, store).await;

    // Without old files the store is a plain DLedger store again.
    let cfg = store_config(&root);
    let dd = data_dir(&root);
    let none = tokio::task::spawn_blocking(move || MessageStore::prepare_divided(&cfg, &dd, FILE)).await.unwrap();
    assert_eq!(none.unwrap(), None);
    let node = DLedgerServer::start(node_config(&root, port), &net, None).await.unwrap();
    let store = common::dledger::open_on(&node, store_config(&root)).await;
    assert_eq!(store.commit_log_min_offset(), divided);
    for (q, part) in later.iter().enumerate() {
        let want: Vec<String> = part.iter().map(|(_, b)| b.clone()).collect();
        assert_eq!(common::rmq::queue_bodies(&store, TOPIC, q as i32, 30), want, "queue {q} after reopening");
    }
    close(node, store).await;
}

// ---------------------------------------------------------------------------------------------
// A container process: a plain master with N messages, restarted on the same store as a
// single-member DLedger group.

use common::rmq::{pull, send, wait_max_offset, T};
use common::ChildGuard;
use rmqc::protocol::codes::{request, response};
use rmqc::protocol::message::decode_records;
use rmqc::remoting::{RemotingClient, RemotingCommand};

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
const PTOPIC: &str = "DvProc";

/// Writes broker `dv`'s config: a plain master, or (with `dledger_port`) a single-member DLedger
/// group, on the same store.
fn write_dv(d: &Path, port: u16, dledger_port: Option<u16>) -> std::path::PathBuf {
    let conf = d.join("dv.conf");
    let mode = match dledger_port {
        None => "brokerId=0\nbrokerRole=ASYNC_MASTER\n".to_string(),
        Some(p) => format!(
            "enableDLegerCommitLog=true\ndLegerGroup=dv\ndLegerPeers=n0-127.0.0.1:{p}\ndLegerSelfId=n0\nheartBeatTimeIntervalMs=1000\n"
        ),
    };
    std::fs::write(
        &conf,
        format!(
            "brokerClusterName=DvCluster\nbrokerName=dv\nlistenPort={port}\nbrokerIP1=127.0.0.1\nstorePathRootDir={}\n\
             mappedFileSizeCommitLog=1048576\nmaxHashSlotNum=1000\nmaxIndexNum=4000\nmappedFileSizeConsumeQueue=6000\n\
             autoCreateTopicEnable=true\n{mode}",
            d.join("store").display()
        ),
    )
    .unwrap();
    conf
}

fn proc_body(i: usize) -> String {
    // About 40 KiB each: the plain commitlog and the DLedger data both roll over (1 MiB files).
    format!("p{i}-{}", "q".repeat(40_000 + (i * 37) % 500))
}

/// The master's address once the NameServer lists broker `dv` with brokerId 0.
async fn master_of(client: &RemotingClient, ns: &str) -> Option<String> {
    let r = client.invoke(ns, RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO), T).await.ok()?;
    let ci: rmqc::protocol::body::ClusterInfo = rmqc::json::from_slice_lenient(&r.body).ok()?;
    ci.broker_addr_table.get("dv")?.broker_addrs.get(&0).cloned()
}

/// Reads every message of queue 0 by queue, checks each one by its offset msgId and by key, the
/// queue's max offset and the group's committed offset.
async fn check_proc(client: &RemotingClient, addr: &str, sent: &[(String, String)], what: &str) {
    wait_max_offset(client, addr, PTOPIC, 0, sent.len() as i64).await;
    let mut got = Vec::new();
    let mut off = 0i64;
    for _ in 0..1000 {
        let r = pull(client, addr, "dv-reader", PTOPIC, 0, off, "*", 0).await;
        if r.code != response::SUCCESS {
            break;
        }
        for m in decode_records(&r.body, true) {
            assert_eq!(m.queue_offset, got.len() as i64, "{what}: queue order");
            got.push((m.msg_id.clone(), String::from_utf8_lossy(&m.body).into_owned()));
        }
        off = r.ext("nextBeginOffset").and_then(|o| o.parse().ok()).unwrap();
    }
    assert_eq!(got.len(), sent.len(), "{what}: read {} of {} by queue", got.len(), sent.len());
    for (i, ((gid, gb), (sid, sb))) in got.iter().zip(sent).enumerate() {
        assert_eq!(gid, sid, "{what}: msgId of message {i}");
        assert!(gb == sb, "{what}: body of message {i}");
    }
    let req = RemotingCommand::request(request::GET_MAX_OFFSET).with_ext("topic", PTOPIC).with_ext("queueId", "0");
    let r = client.invoke(addr, req, T).await.unwrap();
    assert_eq!(r.ext("offset"), Some(sent.len().to_string().as_str()), "{what}: max offset");
    for (i, (id, b)) in sent.iter().enumerate().step_by(7) {
        let off = rmqc::protocol::message::decode_offset_msg_id(id).unwrap().1;
        let req = RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_ext("offset", off.to_string());
        let r = client.invoke(addr, req, T).await.unwrap();
        assert_eq!(r.code, response::SUCCESS, "{what}: message {i} by msgId {id}: {:?}", r.remark);
        assert!(String::from_utf8_lossy(&decode_records(&r.body, true)[0].body) == *b, "{what}: message {i} by msgId");
        let q = RemotingCommand::request(request::QUERY_MESSAGE)
            .with_ext("topic", PTOPIC)
            .with_ext("key", format!("key-{i}"))
            .with_ext("maxNum", "32")
            .with_ext("beginTimestamp", "0")
            .with_ext("endTimestamp", i64::MAX.to_string());
        let r = client.invoke(addr, q, T).await.unwrap();
        assert_eq!(r.code, response::SUCCESS, "{what}: key-{i}: {:?}", r.remark);
        assert_eq!(decode_records(&r.body, true).len(), 1, "{what}: key-{i} found once");
    }
    let q = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", "dv-group")
        .with_ext("topic", PTOPIC)
        .with_ext("queueId", "0");
    let r = client.invoke(addr, q, T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{what}: consumer offset: {:?}", r.remark);
    assert_eq!(r.ext("offset"), Some("17"), "{what}: consumer offset kept");
}

async fn send_range(
    client: &RemotingClient,
    addr: &str,
    range: std::ops::Range<usize>,
    sent: &mut Vec<(String, String)>,
) {
    for i in range {
        let key = format!("key-{i}");
        let r = send(client, addr, PTOPIC, 0, proc_body(i).as_bytes(), &[("KEYS", key.as_str())]).await;
        assert_eq!(r.code, response::SUCCESS, "send {i}: {:?}", r.remark);
        assert_eq!(r.ext("queueOffset"), Some(i.to_string().as_str()), "queue offset of {i}");
        sent.push((r.ext("msgId").unwrap().to_string(), proc_body(i)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_broker_restarted_as_a_dledger_group_keeps_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = common::free_port_block(2, 1);
    let dport = common::free_port_block(0, 0);
    let conf_file = write_dv(d, port, None);
    let (container_conf, _cport, ns) = common::write_container(d, &[conf_file.file_name().unwrap().to_str().unwrap()]);
    let ns = format!("127.0.0.1:{ns}");
    let addr = format!("127.0.0.1:{port}");
    let client = RemotingClient::default();
    let start = |name: &str| ChildGuard::spawn(CONTAINER, &["-c", container_conf.to_str().unwrap()], d, name);
    let logs = |name: &str| {
        let err = std::fs::read_to_string(d.join(format!("{name}.err"))).unwrap_or_default();
        err.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    };

    // The plain master: 40 messages (two commitlog files), a consumer offset committed.
    let mut c = start("plain");
    common::wait_until("the plain broker listens", Duration::from_secs(60), || common::port_open(port));
    let mut sent = Vec::new();
    send_range(&client, &addr, 0..40, &mut sent).await;
    // A pull of group dv-group creates the group; then it commits offset 17.
    assert_eq!(pull(&client, &addr, "dv-group", PTOPIC, 0, 0, "*", 0).await.code, response::SUCCESS);
    let commit = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", "dv-group")
        .with_ext("topic", PTOPIC)
        .with_ext("queueId", "0")
        .with_ext("commitOffset", "17");
    let r = client.invoke(&addr, commit, T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "commit: {:?}", r.remark);
    check_proc(&client, &addr, &sent, "plain").await;
    assert!(c.terminate().success(), "plain container exit: {}", logs("plain"));
    assert!(std::fs::read_dir(d.join("store/commitlog")).unwrap().count() >= 2);

    // The same store as a single-member DLedger group: it elects itself, registers as master,
    // serves the old messages and takes new ones above the divided offset.
    write_dv(d, port, Some(dport));
    for round in ["dledger", "dledger-restart"] {
        let mut c = start(round);
        common::wait_async("the DLedger broker registers as master", Duration::from_secs(60), || async {
            master_of(&client, &ns).await.is_some()
        })
        .await;
        assert_eq!(master_of(&client, &ns).await.as_deref(), Some(addr.as_str()));
        check_proc(&client, &addr, &sent, &format!("{round}: before sends")).await;
        let n = sent.len();
        send_range(&client, &addr, n..n + 30, &mut sent).await;
        let divided = 2 * 1048576;
        for (id, _) in &sent[n..] {
            let off = rmqc::protocol::message::decode_offset_msg_id(id).unwrap().1;
            assert!(off >= divided + 48, "{round}: new message at {off}, above the divided offset {divided}");
        }
        check_proc(&client, &addr, &sent, &format!("{round}: after sends")).await;
        assert!(c.terminate().success(), "{round} container exit: {}", logs(round));
    }
    client.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// A group upgrade: three members, each starting from a copy of the same plain store.

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_upgraded_from_copies_of_one_plain_store_replicate_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let plain_root = dir.path().join("plain");
    let mut sent: [Vec<(i64, String)>; 2] = [Vec::new(), Vec::new()];
    let plain = MessageStore::open(store_config(&plain_root)).unwrap();
    for i in 0..40 {
        let r = plain.put_message(msg(i)).await;
        assert_eq!(r.status, PutMessageStatus::PutOk);
        sent[i % 2].push((r.append.unwrap().wrote_offset, body(i)));
    }
    plain.shutdown().unwrap();
    drop(plain);

    let base = common::free_port_block(0, 2);
    let peers = format!("n0-127.0.0.1:{};n1-127.0.0.1:{};n2-127.0.0.1:{}", base, base + 1, base + 2);
    let net = transport();
    let mut members = Vec::new();
    let mut divided = Vec::new();
    for i in 0..3 {
        let root = dir.path().join(format!("r{i}"));
        copy_dir(&plain_root, &root);
        let (cfg, dd) = (store_config(&root), root.join(format!("dledger-n{i}")).join("data"));
        divided.push(
            tokio::task::spawn_blocking(move || MessageStore::prepare_divided(&cfg, &dd, FILE)).await.unwrap().unwrap(),
        );
        let mut nc = DLedgerConfig::new("RaftDivided3", &format!("n{i}"), parse_peers(&peers).unwrap(), root.clone());
        let single = node_config(&root, base);
        nc.data_file_size = single.data_file_size;
        nc.index_file_size = single.index_file_size;
        nc.heartbeat_ms = single.heartbeat_ms;
        nc.min_vote_ms = single.min_vote_ms;
        nc.max_vote_ms = single.max_vote_ms;
        let node = DLedgerServer::start(nc, &net, None).await.unwrap();
        let store = common::dledger::open_on(&node, store_config(&root)).await;
        members.push((node, store));
    }
    assert!(divided.iter().all(|d| d.is_some() && *d == divided[0]), "the same divided offset: {divided:?}");
    let divided = divided[0].unwrap();
    let leader = || {
        let l: Vec<usize> = (0..3).filter(|&i| members[i].0.status().role == Role::Leader).collect();
        (l.len() == 1).then(|| l[0])
    };
    common::wait_until("a leader", Duration::from_secs(30), || leader().is_some());
    let l = leader().unwrap();
    for i in 40..80 {
        let r = members[l].1.put_message(msg(i)).await;
        assert_eq!(r.status, PutMessageStatus::PutOk, "put {i}");
        let a = r.append.unwrap();
        assert!(a.wrote_offset >= divided + 48);
        assert_eq!(a.logics_offset, sent[i % 2].len() as i64, "queue offset of {i}");
        sent[i % 2].push((a.wrote_offset, body(i)));
    }
    common::wait_until("every member dispatched the new messages", Duration::from_secs(30), || {
        members.iter().all(|(_, s)| s.max_offset_in_queue(TOPIC, 0) == 40 && s.max_offset_in_queue(TOPIC, 1) == 40)
    });
    for (i, (_, s)) in members.iter().enumerate() {
        check_all(s, &sent, &format!("member n{i}"));
    }
    for (node, store) in members {
        close(node, store).await;
    }
}
