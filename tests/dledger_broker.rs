#![allow(clippy::unwrap_used)]
//! The broker's commitlog on the DLedger log: stores opened on three DLedger nodes over real TCP
//! on 127.0.0.1 keep their records in entry bodies (PHYSICALOFFSET = entry pos + 48), dispatch
//! committed entries only on every replica, rebuild their consume queues from the log, and a new
//! leader's store continues the queue offsets.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rmqc::dledger::commitlog::DLedgerCommitLog;
use rmqc::dledger::core::Role;
use rmqc::dledger::server::{parse_peers, DLedgerConfig, DLedgerServer};
use rmqc::remoting::{RemotingServer, ServerConfig};
use rmqc::store::config::MessageStoreConfig;
use rmqc::store::message::MessageInner;
use rmqc::store::{MessageStore, PutMessageStatus};

fn node_config(id: &str, peers: &str, root: &std::path::Path) -> DLedgerConfig {
    let mut c = DLedgerConfig::new("RaftNode00", id, parse_peers(peers).unwrap(), root.to_path_buf());
    c.data_file_size = 64 * 1024;
    c.index_file_size = 32 * 1024;
    c.heartbeat_ms = 100;
    c.max_heartbeat_leak = 3;
    c.min_vote_ms = 50;
    c.max_vote_ms = 150;
    c.push_timeout_ms = 300;
    c.max_wait_ack_ms = 2000;
    c
}

fn store_config(root: &std::path::Path) -> MessageStoreConfig {
    let mut c = MessageStoreConfig::with_root(root);
    c.mapped_file_size_commit_log = 64 * 1024;
    c.mapped_file_size_consume_queue = 20 * 100;
    c.max_hash_slot_num = 64;
    c.max_index_num = 400;
    c
}

fn transport() -> RemotingServer {
    RemotingServer::new(ServerConfig { bind_address: "127.0.0.1".parse().unwrap(), ..ServerConfig::default() })
}

struct Replica {
    node: Arc<DLedgerServer>,
    store: Arc<MessageStore>,
}

async fn open_store(root: std::path::PathBuf, node: &Arc<DLedgerServer>) -> Arc<MessageStore> {
    let log = Arc::new(DLedgerCommitLog::new(node.clone()));
    Arc::new(
        tokio::task::spawn_blocking(move || MessageStore::open_replicated(store_config(&root), log))
            .await
            .unwrap()
            .unwrap(),
    )
}

async fn close_store(store: Arc<MessageStore>) {
    tokio::task::spawn_blocking(move || store.shutdown().unwrap()).await.unwrap();
}

fn leader_of(rs: &[Option<Replica>]) -> Option<usize> {
    let leaders: Vec<usize> =
        (0..rs.len()).filter(|&i| rs[i].as_ref().is_some_and(|r| r.node.status().role == Role::Leader)).collect();
    (leaders.len() == 1).then(|| leaders[0])
}

fn msg(i: usize) -> MessageInner {
    let mut m = MessageInner::new(
        "DlT".to_string(),
        (i % 2) as i32,
        Bytes::from(format!("m{i}-{}", "z".repeat((i * 131) % 900))),
    );
    m.born_host = "127.0.0.1:1".parse().unwrap();
    m.store_host = "127.0.0.1:2".parse().unwrap();
    m.properties = format!("KEYS\u{1}k{i}\u{2}");
    m
}

/// Bodies of queue `q` read from `store` from offset 0.
fn bodies(store: &MessageStore, q: i32) -> Vec<String> {
    let mut out = Vec::new();
    let mut off = 0;
    for _ in 0..1000 {
        let r = store.get_message("DlT", q, off, 32, 1 << 20, |_: i64| true).unwrap();
        if r.messages.is_empty() {
            break;
        }
        for (rec, qo) in r.messages.iter().zip(&r.queue_offsets) {
            let v = rmqc::protocol::message::decode_record(rec, true).unwrap();
            assert_eq!(v.queue_offset, *qo);
            out.push(String::from_utf8_lossy(&v.body).into_owned());
        }
        off = r.next_begin_offset;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_on_three_dledger_nodes_dispatch_committed_entries() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::free_port_block(0, 2);
    let peers = format!("n0-127.0.0.1:{};n1-127.0.0.1:{};n2-127.0.0.1:{}", base, base + 1, base + 2);
    let net = transport();
    let mut rs: Vec<Option<Replica>> = Vec::new();
    for i in 0..3 {
        let root = dir.path().join(format!("r{i}"));
        let node = DLedgerServer::start(node_config(&format!("n{i}"), &peers, &root), &net, None).await.unwrap();
        let store = open_store(root, &node).await;
        rs.push(Some(Replica { node, store }));
    }
    common::wait_until("a leader", Duration::from_secs(20), || leader_of(&rs).is_some());
    let l = leader_of(&rs).unwrap();
    let leader = rs[l].as_ref().unwrap();

    // A follower's store refuses puts (it is not the leader).
    let f = (l + 1) % 3;
    assert_eq!(rs[f].as_ref().unwrap().store.put_message(msg(0)).await.status, PutMessageStatus::ServiceNotAvailable);

    // Puts are acknowledged once committed; the record's PHYSICALOFFSET is its body position in
    // the DLedger data files (entry pos + 48), and the data files roll over (64 KiB).
    let mut sent = [Vec::new(), Vec::new()];
    for i in 0..160 {
        let r = leader.store.put_message(msg(i)).await;
        assert_eq!(r.status, PutMessageStatus::PutOk, "put {i}");
        let a = r.append.unwrap();
        let rec = leader.store.look_message_by_offset(a.wrote_offset).unwrap();
        let v = rmqc::protocol::message::decode_record(&rec, true).unwrap();
        assert_eq!(v.commit_log_offset, a.wrote_offset);
        assert_eq!(v.queue_offset, sent[i % 2].len() as i64);
        // The 48 bytes before the body are the entry's header: magic 1, pos = body - 48.
        let head = leader.store.look_message_by_offset_size(a.wrote_offset - 48, 48).unwrap();
        assert_eq!(i32::from_be_bytes(head[0..4].try_into().unwrap()), 1);
        assert_eq!(i64::from_be_bytes(head[24..32].try_into().unwrap()), a.wrote_offset - 48);
        sent[i % 2].push(format!("m{i}-{}", "z".repeat((i * 131) % 900)));
    }
    // A batch is one entry of consecutive records.
    let batch: Vec<MessageInner> = (160..164)
        .map(|i| {
            let mut m = msg(i);
            m.queue_id = 0;
            m
        })
        .collect();
    let r = leader.store.put_messages(&batch).await;
    assert_eq!(r.status, PutMessageStatus::PutOk);
    assert_eq!(r.append.as_ref().unwrap().msg_id.split(',').count(), 4);
    for i in 160..164 {
        sent[0].push(format!("m{i}-{}", "z".repeat((i * 131) % 900)));
    }
    assert!(leader.node.data_files().files().len() > 1, "the data files rolled over");

    // Every replica dispatches the committed entries: same queues, same bytes, same offsets.
    let files_of = |i: usize| rs[i].as_ref().unwrap();
    common::wait_until("every replica dispatched", Duration::from_secs(20), || {
        (0..3).all(|i| {
            let s = &files_of(i).store;
            s.max_offset_in_queue("DlT", 0) == sent[0].len() as i64
                && s.max_offset_in_queue("DlT", 1) == sent[1].len() as i64
        })
    });
    for i in 0..3 {
        let s = &files_of(i).store;
        assert_eq!(bodies(s, 0), sent[0], "replica {i} queue 0");
        assert_eq!(bodies(s, 1), sent[1], "replica {i} queue 1");
        assert_eq!(s.commit_log_max_offset(), leader.store.commit_log_max_offset());
        // The index points into the DLedger data too.
        let q = s.query_message("DlT", "k7", 10, 0, i64::MAX);
        assert_eq!(q.messages.len(), 1, "replica {i} finds key k7");
    }

    // A follower rebuilds its consume queues from the log: reopen with them deleted.
    let fr = rs[f].take().unwrap();
    close_store(fr.store).await;
    let froot = dir.path().join(format!("r{f}"));
    std::fs::remove_dir_all(froot.join("consumequeue")).unwrap();
    std::fs::remove_dir_all(froot.join("index")).unwrap();
    let store = open_store(froot, &fr.node).await;
    assert_eq!(bodies(&store, 0), sent[0]);
    assert_eq!(bodies(&store, 1), sent[1]);
    rs[f] = Some(Replica { node: fr.node, store });

    // The leader goes away; the new leader's store continues the queue offsets once it has
    // dispatched everything committed.
    let old = rs[l].take().unwrap();
    close_store(old.store).await;
    old.node.shutdown().await;
    common::wait_until("a new leader", Duration::from_secs(20), || leader_of(&rs).is_some());
    let nl = leader_of(&rs).unwrap();
    let new_leader = rs[nl].as_ref().unwrap();
    common::wait_until("the new leader dispatched what is committed", Duration::from_secs(20), || {
        let st = new_leader.node.status();
        st.committed >= st.end_index && new_leader.store.replica_dispatched_index() >= st.committed
    });
    new_leader.store.recompute_queue_offsets();
    let r = new_leader.store.put_message(msg(1000)).await;
    assert_eq!(r.status, PutMessageStatus::PutOk);
    sent[0].push(format!("m1000-{}", "z".repeat((1000 * 131) % 900)));
    common::wait_until("the survivors dispatched the new message", Duration::from_secs(20), || {
        rs.iter().flatten().all(|r| r.store.max_offset_in_queue("DlT", 0) == sent[0].len() as i64)
    });
    for r in rs.iter().flatten() {
        assert_eq!(bodies(&r.store, 0), sent[0]);
    }
    for r in rs.into_iter().flatten() {
        close_store(r.store).await;
        r.node.shutdown().await;
    }
}
