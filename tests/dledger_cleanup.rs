#![allow(clippy::unwrap_used)]
//! Cleanup of a store on the DLedger log: the store's cleanup run (injected disk usage and clock)
//! has the DLedger node delete its leading data and index files as DLedger's clean-space service
//! does (expired after `fileReservedTime + 1` hours at `deleteWhen`, or at once when cleaning
//! forcibly, at most `deleteFileBatchMax`, never the last file), consume queues and index follow
//! the new min offset, reads below it answer as on a plain store, and a restart recovers from
//! the new begin index.

mod common;

use common::dledger::transport;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rmqc::dledger::core::Role;
use rmqc::dledger::server::{parse_peers, DLedgerConfig, DLedgerServer};
use rmqc::dledger::wire;
use rmqc::remoting::{ClientConfig, RemotingClient, RemotingCommand, RemotingServer};
use rmqc::store::cleanup::{CleanupClock, CleanupPolicy, DiskProbe, PartitionUsage};
use rmqc::store::config::MessageStoreConfig;
use rmqc::store::message::MessageInner;
use rmqc::store::{GetMessageStatus, MessageStore, PutMessageStatus};

const FILE: u64 = 16 * 1024;
const HOUR: i64 = 3_600_000;

struct FakeProbe(Mutex<f64>);

impl DiskProbe for FakeProbe {
    fn partition(&self, _path: &Path) -> Option<PartitionUsage> {
        Some(PartitionUsage { ratio: *self.0.lock().unwrap(), total_bytes: 100 << 30 })
    }
}

fn node_config(root: &Path, port: u16) -> DLedgerConfig {
    common::dledger::single_member("RaftClean", root, port, FILE)
}

fn store_config(root: &Path) -> MessageStoreConfig {
    common::dledger::small_store(root, FILE, 60)
}

async fn open(root: &Path, port: u16, net: &RemotingServer) -> (Arc<DLedgerServer>, Arc<MessageStore>) {
    let node = DLedgerServer::start(node_config(root, port), net, None).await.unwrap();
    let store = common::dledger::open_on(&node, store_config(root)).await;
    let n = node.clone();
    common::wait_until("the single member leads", Duration::from_secs(20), || n.status().role == Role::Leader);
    (node, store)
}

async fn close(node: Arc<DLedgerServer>, store: Arc<MessageStore>) {
    tokio::task::spawn_blocking(move || store.shutdown().unwrap()).await.unwrap();
    node.shutdown().await;
}

fn msg(i: usize) -> MessageInner {
    let mut m =
        MessageInner::new("DlClean".to_string(), (i % 2) as i32, Bytes::from(format!("m{i}-{}", "z".repeat(300))));
    m.born_host = "127.0.0.1:1".parse().unwrap();
    m.store_host = "127.0.0.1:2".parse().unwrap();
    m.properties = format!("KEYS\u{1}k{i}\u{2}");
    m
}

async fn put(store: &MessageStore, from: usize, to: usize) {
    for i in from..to {
        let r = store.put_message(msg(i)).await;
        assert_eq!(r.status, PutMessageStatus::PutOk, "put {i}");
    }
    // Every acknowledged message is dispatched (the queues hold `to` entries in all).
    common::wait_until("all messages dispatched", Duration::from_secs(10), || {
        store.max_offset_in_queue("DlClean", 0) + store.max_offset_in_queue("DlClean", 1) == to as i64
    });
}

/// Bodies of queue `q` from its min offset, with the first queue offset.
fn bodies(store: &MessageStore, q: i32) -> (i64, Vec<String>) {
    let min = store.min_offset_in_queue("DlClean", q);
    (min, common::rmq::queue_bodies(store, "DlClean", q, min))
}

fn expected(q: i32, from_queue_offset: i64, upto: usize) -> Vec<String> {
    (0..upto)
        .filter(|i| (i % 2) as i32 == q)
        .skip(from_queue_offset as usize)
        .map(|i| String::from_utf8_lossy(&msg(i).body).into_owned())
        .collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dledger_store_deletes_expired_whole_files_and_restarts_from_its_begin_index() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let data = root.join("dledger-n0/data");
    let index = root.join("dledger-n0/index");
    let port = common::free_port_block(0, 0);
    let net = transport();
    let (node, store) = open(&root, port, &net).await;
    put(&store, 0, 300).await;
    let n_files = files(&data).len();
    assert!(n_files >= 6, "{n_files} data files");
    let old_phy = {
        let r = store.get_message("DlClean", 0, 0, 1, 1 << 20, |_: i64| true).unwrap();
        rmqc::protocol::message::decode_record(&r.messages[0], true).unwrap().commit_log_offset
    };
    assert!(store.look_message_by_offset(old_phy).is_some());

    let probe = FakeProbe(Mutex::new(0.10));
    let now = rmqc::store::message::now_ms();
    let policy = CleanupPolicy { delete_when_hours: vec![4], delete_file_batch_max: 2, ..Default::default() };
    let run = |policy: &CleanupPolicy, now_ms: i64, hour: u32| {
        store.run_cleanup(policy, &probe, CleanupClock { now_ms, local_hour: hour }).unwrap()
    };

    // Not the hour, disk fine: nothing.
    let r = run(&policy, now + 100 * HOUR, 5);
    assert!(!r.deletion_ran && r.deleted_commit_log_files.is_empty());
    // The hour, but DLedger keeps its files fileReservedTime (72 h) + 1 h.
    let r = run(&policy, now + 72 * HOUR + HOUR / 2, 4);
    assert!(r.deletion_ran && r.deleted_commit_log_files.is_empty(), "{r:?}");
    assert_eq!(files(&data).len(), n_files);
    // Expired: at most deleteFileBatchMax files, the oldest.
    let r = run(&policy, now + 73 * HOUR + 60_000, 4);
    assert_eq!(r.deleted_commit_log_files.len(), 2, "{r:?}");
    assert_eq!(r.min_offset_after, 2 * FILE as i64);
    assert_eq!(store.commit_log_min_offset(), 2 * FILE as i64);
    assert_eq!(files(&data).len(), n_files - 2);
    assert!(store.look_message_by_offset(old_phy).is_none());

    // Above the clean-forcibly ratio, not expired: only with cleanFileForciblyEnable.
    *probe.0.lock().unwrap() = 0.87;
    let off = CleanupPolicy { clean_file_forcibly: false, delete_file_batch_max: 100, ..policy.clone() };
    let r = run(&off, now, 5);
    assert!(r.deletion_ran && !r.clean_at_once && r.deleted_commit_log_files.is_empty(), "{r:?}");
    let on = CleanupPolicy { delete_file_batch_max: 100, ..policy.clone() };
    let r = run(&on, now, 5);
    assert!(r.clean_at_once && !r.deleted_commit_log_files.is_empty(), "{r:?}");
    // Never the last file; the index files wholly below the begin index go too.
    assert_eq!(files(&data).len(), 1);
    let min = store.commit_log_min_offset();
    assert_eq!(min as u64, (n_files as u64 - 1) * FILE);
    assert_eq!(files(&data)[0].parse::<u64>().unwrap(), min as u64);
    let first_index_file = files(&index)[0].parse::<u64>().unwrap();
    assert!(first_index_file > 0, "index files below the begin index deleted");
    assert!(r.deleted_consume_queue_files > 0, "{r:?}");
    *probe.0.lock().unwrap() = 0.10;

    // Consume queues follow: reads below the new min answer OFFSET_TOO_SMALL with the new min,
    // everything from it on reads as sent.
    let mut mins = [0i64; 2];
    for q in 0..2 {
        let (qmin, got) = bodies(&store, q);
        assert!(qmin > 0, "queue {q} min offset moved");
        let r = store.get_message("DlClean", q, 0, 1, 1 << 20, |_: i64| true).unwrap();
        assert_eq!(r.status, GetMessageStatus::OffsetTooSmall);
        assert_eq!(r.next_begin_offset, qmin);
        assert_eq!(got, expected(q, qmin, 300), "queue {q}");
        mins[q as usize] = qmin;
    }
    // Sends go on.
    put(&store, 300, 340).await;
    for q in 0..2 {
        assert_eq!(bodies(&store, q), (mins[q as usize], expected(q, mins[q as usize], 340)));
    }

    // Restart: the log starts at its begin index, the queues at the same min offsets.
    close(node, store).await;
    let (node, store) = open(&root, port, &net).await;
    assert_eq!(store.commit_log_min_offset(), min);
    for q in 0..2 {
        assert_eq!(bodies(&store, q), (mins[q as usize], expected(q, mins[q as usize], 340)));
    }
    put(&store, 340, 360).await;
    for q in 0..2 {
        assert_eq!(bodies(&store, q), (mins[q as usize], expected(q, mins[q as usize], 360)));
    }
    close(node, store).await;
}

fn group_config(root: &Path, id: &str, peers: &str) -> DLedgerConfig {
    let mut c = DLedgerConfig::new("RaftClean3", id, parse_peers(peers).unwrap(), root.to_path_buf());
    c.data_file_size = FILE;
    c.index_file_size = 32 * 64;
    c.heartbeat_ms = 300;
    // 3 s without a heartbeat before a follower stands (0.9 s lost the leader its term mid-test
    // on a starved machine: 'put 166' refused, as tests/dledger_broker.rs's stores test).
    c.max_heartbeat_leak = 10;
    c.min_vote_ms = 150;
    c.max_vote_ms = 450;
    c.push_timeout_ms = 600;
    // A put is answered once a majority has it, or busy after this: 2 s was too short on a
    // starved machine (dledger_broker's stores test, same settings: a put answered
    // OsPageCacheBusy with the group stable). No test here measures the ack time.
    c.max_wait_ack_ms = 10_000;
    c
}

async fn open_member(
    root: &Path,
    id: &str,
    peers: &str,
    net: &RemotingServer,
) -> (Arc<DLedgerServer>, Arc<MessageStore>) {
    let node = DLedgerServer::start(group_config(root, id, peers), net, None).await.unwrap();
    let store = common::dledger::open_on(&node, store_config(root)).await;
    (node, store)
}

fn dispatched(store: &MessageStore) -> i64 {
    store.max_offset_in_queue("DlClean", 0) + store.max_offset_in_queue("DlClean", 1)
}

/// Three members: the leader and a follower clean their own files at the same positions (each
/// broker runs its own cleanup); a follower that was down while the leader deleted the files it
/// lacks comes back and catches up by itself: its log restarts at the leader's begin index (the
/// same positions), its consume queues and index drop what pointed at its old data and their min
/// offsets move up, every message from the leader's begin on reads by queue and by offset as on
/// the leader, across a restart, and the group fails over with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_clean_their_own_files_and_a_follower_behind_the_leaders_begin_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::free_port_block(0, 2);
    let peers = format!("n0-127.0.0.1:{};n1-127.0.0.1:{};n2-127.0.0.1:{}", base, base + 1, base + 2);
    let net = transport();
    let root = |i: usize| dir.path().join(format!("r{i}"));
    let mut ms = Vec::new();
    for i in 0..3 {
        ms.push(Some(open_member(&root(i), &format!("n{i}"), &peers, &net).await));
    }
    // One leader that every live member follows in its term (a just-elected leader can still be
    // deposed by a candidate already in a higher term).
    let leader_of = |ms: &[Option<(Arc<DLedgerServer>, Arc<MessageStore>)>]| {
        let l: Vec<usize> =
            (0..3).filter(|&i| ms[i].as_ref().is_some_and(|(n, _)| n.status().role == Role::Leader)).collect();
        let &[l] = l.as_slice() else { return None };
        let (term, id) = (ms[l].as_ref()?.0.status().term, ms[l].as_ref()?.0.self_id().to_string());
        ms.iter()
            .flatten()
            .all(|(n, _)| n.status().term == term && n.status().leader.as_deref() == Some(id.as_str()))
            .then_some(l)
    };
    common::wait_until("a leader", Duration::from_secs(30), || leader_of(&ms).is_some());
    let l = leader_of(&ms).unwrap();
    let (f, g) = ((l + 1) % 3, (l + 2) % 3);
    let leader = ms[l].as_ref().unwrap().1.clone();
    put(&leader, 0, 300).await;
    common::wait_until("every replica dispatched", Duration::from_secs(30), || {
        ms.iter().all(|m| dispatched(&m.as_ref().unwrap().1) == 300)
    });
    let f_old_max: Vec<i64> = (0..2).map(|q| ms[f].as_ref().unwrap().1.max_offset_in_queue("DlClean", q)).collect();

    // f goes down; the leader and g clean at once (forcibly): the same files on both.
    let (fnode, fstore) = ms[f].take().unwrap();
    tokio::task::spawn_blocking(move || fstore.shutdown().unwrap()).await.unwrap();
    fnode.shutdown().await;
    let f_data = root(f).join(format!("dledger-n{f}/data"));
    let f_data_end = files(&f_data).last().unwrap().parse::<i64>().unwrap() + FILE as i64;
    // Enough entries while f is down that whole files of them lie past f's end.
    put(&leader, 300, 400).await;
    common::wait_until("g dispatched", Duration::from_secs(30), || dispatched(&ms[g].as_ref().unwrap().1) == 400);
    let probe = FakeProbe(Mutex::new(0.87));
    let policy = CleanupPolicy { delete_file_batch_max: 100, ..Default::default() };
    let clock = CleanupClock { now_ms: rmqc::store::message::now_ms(), local_hour: 5 };
    for i in [l, g] {
        let r = ms[i].as_ref().unwrap().1.run_cleanup(&policy, &probe, clock).unwrap();
        assert!(!r.deleted_commit_log_files.is_empty(), "member {i}: {r:?}");
    }
    let min = leader.commit_log_min_offset();
    assert!(min > f_data_end, "the leader deleted files f lacks ({min} > {f_data_end})");
    assert_eq!(ms[g].as_ref().unwrap().1.commit_log_min_offset(), min);
    assert_eq!(files(&root(l).join(format!("dledger-n{l}/data"))), files(&root(g).join(format!("dledger-n{g}/data"))));
    for q in 0..2 {
        assert_eq!(bodies(&leader, q), bodies(&ms[g].as_ref().unwrap().1, q));
    }
    // The group goes on: the leader pushes g the entries after its (moved) begin.
    put(&leader, 400, 440).await;
    common::wait_until("g dispatched", Duration::from_secs(30), || dispatched(&ms[g].as_ref().unwrap().1) == 440);
    // g answers a push with its moved begin index, as DLedger's follower does (DLedger's leader
    // compares with it to find a follower it must restart at its own begin).
    let (gnode, lnode) = (ms[g].as_ref().unwrap().0.clone(), ms[l].as_ref().unwrap().0.clone());
    let g_begin = gnode.status().begin_index;
    assert!(g_begin > 0, "g's begin index moved with its cleanup: {:?}", gnode.status());
    let push = wire::PushEntryRequest {
        base: wire::Base {
            group: Some("RaftClean3".into()),
            remote_id: Some(format!("n{g}")),
            local_id: Some(format!("n{l}")),
            leader_id: Some(format!("n{l}")),
            term: lnode.status().term,
            ..Default::default()
        },
        commit_index: lnode.status().committed,
        kind: wire::PushType::Commit,
        ..Default::default()
    };
    let client = RemotingClient::new(ClientConfig::default());
    let req = RemotingCommand::request(wire::request::PUSH).with_body(wire::encode(&push));
    let r = client.invoke(&format!("127.0.0.1:{}", base + g as u16), req, Duration::from_secs(10)).await.unwrap();
    let resp: wire::PushEntryResponse = wire::decode("PushEntryResponse", &r.body).unwrap();
    assert_eq!(resp.base.code, wire::code::SUCCESS, "{resp:?}");
    assert_eq!((resp.begin_index, resp.end_index), (g_begin, gnode.status().end_index), "{resp:?}");

    // f comes back behind the leader's begin index and catches up without help.
    ms[f] = Some(open_member(&root(f), &format!("n{f}"), &peers, &net).await);
    let (fnode, fstore) = ms[f].as_ref().unwrap().clone();
    let lnode = ms[l].as_ref().unwrap().0.clone();
    put(&leader, 440, 460).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(dispatched(&fstore) == 460
        && fnode.status().end_index == lnode.status().end_index
        && fnode.status().committed == lnode.status().committed)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "f did not catch up in 60 s: f {:?} dispatched {} min {}; leader {:?} min {}; f's data files {:?}",
            fnode.status(),
            dispatched(&fstore),
            fstore.commit_log_min_offset(),
            lnode.status(),
            min,
            files(&f_data)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(leader_of(&ms), Some(l), "the leader kept leading");
    let check_f = |fstore: &MessageStore| {
        // Its data restarted at the leader's first file: the same positions.
        assert_eq!(fstore.commit_log_min_offset(), leader.commit_log_min_offset());
        assert_eq!(files(&f_data), files(&root(l).join(format!("dledger-n{l}/data"))));
        for q in 0..2 {
            let (fmin, fb) = bodies(fstore, q);
            assert!(fmin > f_old_max[q as usize], "queue {q}: f's min offset {fmin} moved past its old end");
            assert_eq!((fmin, fb), bodies(&leader, q), "queue {q}: f reads as the leader");
            // Below the new min: OFFSET_TOO_SMALL with the min, as a plain store after cleanup.
            let r = fstore.get_message("DlClean", q, 0, 1, 1 << 20, |_: i64| true).unwrap();
            assert_eq!((r.status, r.next_begin_offset), (GetMessageStatus::OffsetTooSmall, fmin), "queue {q}");
            // By offset: the same record at the same physical offset on both.
            let r = fstore.get_message("DlClean", q, fmin, 8, 1 << 20, |_: i64| true).unwrap();
            assert_eq!(r.messages.len(), 8, "queue {q}: {:?}", r.status);
            for rec in &r.messages {
                let v = rmqc::protocol::message::decode_record(rec, true).unwrap();
                let on_f = fstore.look_message_by_offset(v.commit_log_offset).unwrap();
                assert_eq!(on_f, leader.look_message_by_offset(v.commit_log_offset).unwrap());
                assert_eq!(&on_f[..], &rec[..]);
            }
        }
    };
    check_f(&fstore);

    // A restart of f recovers the restarted log.
    let (fnode, fstore) = ms[f].take().unwrap();
    close(fnode, fstore).await;
    ms[f] = Some(open_member(&root(f), &format!("n{f}"), &peers, &net).await);
    let fstore = ms[f].as_ref().unwrap().1.clone();
    put(&leader, 460, 480).await;
    common::wait_until("f dispatched after its restart", Duration::from_secs(60), || dispatched(&fstore) == 480);
    check_f(&fstore);

    // The group fails over with f: the leader goes, f and g elect one of them, sends go on.
    let (lnode, lstore) = ms[l].take().unwrap();
    close(lnode, lstore).await;
    common::wait_until("a new leader among f and g", Duration::from_secs(60), || leader_of(&ms).is_some());
    let nl = leader_of(&ms).unwrap();
    let (new_node, new_leader) = ms[nl].as_ref().unwrap().clone();
    // As the broker's role change does: once everything committed is dispatched, the queue
    // offsets continue from the consume queues.
    common::wait_until("the new leader dispatched what is committed", Duration::from_secs(60), || {
        let st = new_node.status();
        st.role == Role::Leader && st.committed >= st.end_index && new_leader.replica_dispatched_index() >= st.committed
    });
    new_leader.recompute_queue_offsets();
    common::wait_async("the new leader takes sends", Duration::from_secs(60), || {
        let s = new_leader.clone();
        async move { s.put_message(msg(480)).await.status == PutMessageStatus::PutOk }
    })
    .await;
    for i in 481..500 {
        assert_eq!(new_leader.put_message(msg(i)).await.status, PutMessageStatus::PutOk, "put {i}");
    }
    // (A send the new leader timed out on may have been stored too: at least 500.)
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = dispatched(&new_leader);
        let seen: Vec<i64> = [f, g].iter().map(|&i| dispatched(&ms[i].as_ref().unwrap().1)).collect();
        if n >= 500 && seen.iter().all(|&d| d == n) {
            break;
        }
        let status: Vec<_> = [f, g].iter().map(|&i| ms[i].as_ref().unwrap().0.status()).collect();
        let qs: Vec<_> = [f, g]
            .iter()
            .map(|&i| {
                let s = &ms[i].as_ref().unwrap().1;
                (0..2)
                    .map(|q| (s.min_offset_in_queue("DlClean", q), s.max_offset_in_queue("DlClean", q)))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(
            std::time::Instant::now() < deadline,
            "f (n{f}) and g (n{g}) did not dispatch what n{nl} did in 60 s: leader {n}, f and g {seen:?}, queues {qs:?}, {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for q in 0..2 {
        assert_eq!(bodies(&ms[f].as_ref().unwrap().1, q), bodies(&ms[g].as_ref().unwrap().1, q), "queue {q}");
    }
    for m in ms.into_iter().flatten() {
        close(m.0, m.1).await;
    }
}

mod process {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::common::rmq::{pull, runtime_info, send, wait_max_offset, T};
    use super::common::{free_port_block, port_open, wait_async, wait_until, ChildGuard};
    use rmqc::protocol::codes::{request, response};
    use rmqc::remoting::{RemotingClient, RemotingCommand};
    use rmqc::store::message::decode_records;

    const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
    const BODY: usize = 4 * 1024;
    const QUOTA: u64 = 3 << 20;

    /// The partition's size in bytes and its used ratio (as the broker measures it).
    fn partition(p: &Path) -> (u64, f64) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: zeroed plain C struct filled by the call, valid path and out pointer.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        let (total, free, avail) = (st.f_blocks as u64, st.f_bfree as u64, st.f_bavail as u64);
        (total * st.f_frsize as u64, rmqc::store::cleanup::df_ratio(total, free, avail))
    }

    fn data_files(store: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(store.join("dledger-n0/data"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    fn num(t: &serde_json::Map<String, serde_json::Value>, k: &str) -> i64 {
        t.get(k).and_then(|v| v.as_str()).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{k} in {t:?}"))
    }

    async fn min_offset(client: &RemotingClient, addr: &str) -> i64 {
        let req =
            RemotingCommand::request(request::GET_MIN_OFFSET).with_ext("topic", "DlQuota").with_ext("queueId", "0");
        let r = client.invoke(addr, req, T).await.expect("min offset answered");
        r.ext("offset").and_then(|o| o.parse().ok()).expect("offset")
    }

    /// Bodies of queue 0 from `from`, in order.
    async fn read_from(client: &RemotingClient, addr: &str, from: i64) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        let mut off = from;
        for _ in 0..2000 {
            let r = pull(client, addr, "dl-quota-reader", "DlQuota", 0, off, "*", 0).await;
            if r.code != response::SUCCESS {
                break;
            }
            let msgs = decode_records(&r.body, true);
            if msgs.is_empty() {
                break;
            }
            for m in &msgs {
                out.push((m.queue_offset, String::from_utf8_lossy(&m.body[..16]).into_owned()));
            }
            off = msgs.last().unwrap().queue_offset + 1;
        }
        out
    }

    fn body(i: usize) -> Vec<u8> {
        let mut b = format!("{i:016}").into_bytes();
        b.resize(BODY, b'q');
        b
    }

    async fn send_n(client: &RemotingClient, addr: &str, from: usize, n: usize) {
        for i in from..from + n {
            let r = send(client, addr, "DlQuota", 0, &body(i), &[]).await;
            assert_eq!(r.code, response::SUCCESS, "send {i}: {:?}", r.remark);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dledger_broker_over_its_quota_deletes_old_files_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let store = d.join("store");
        std::fs::create_dir_all(&store).unwrap();
        // A 3 MiB quota whatever the disk: the share is computed from the partition's size.
        let (total, ratio) = partition(&store);
        if ratio > 0.88 {
            super::common::skip(
                "a_dledger_broker_over_its_quota_deletes_old_files_and_restarts",
                &format!("the disk is {ratio:.2} full: near the 0.90 warning level the broker refuses writes"),
            );
            return;
        }
        // Above the physical clean-forcibly ratio (0.85) files go at once, before the quota (the
        // disk is shared with whatever else runs: watched during the fill).
        let mut physical_rule = ratio > 0.85;
        let share = QUOTA as f64 / total as f64;
        let port = free_port_block(2, 1);
        let dport = free_port_block(0, 0);
        std::fs::write(
            d.join("dl.conf"),
            format!(
                "brokerClusterName=DlQ\nbrokerName=dl-q\nlistenPort={port}\nbrokerIP1=127.0.0.1\n\
                 storePathRootDir={}\nmappedFileSizeCommitLog=262144\nmaxHashSlotNum=500\nmaxIndexNum=2000\n\
                 mappedFileSizeConsumeQueue=6000\nmaxMessageSize=65536\ncleanResourceInterval=100\n\
                 quotaPercentForDiskPartition={share:.12}\nenableDLegerCommitLog=true\ndLegerGroup=dl-q\n\
                 dLegerPeers=n0-127.0.0.1:{dport}\ndLegerSelfId=n0\nheartBeatTimeIntervalMs=500\n",
                store.display()
            ),
        )
        .unwrap();
        let cport = free_port_block(2, 0);
        let nport = free_port_block(0, 0);
        let conf = d.join("container.conf");
        std::fs::write(
            &conf,
            format!(
                "listenPort={cport}\nbindAddress=127.0.0.1\nembeddedNamesrvEnable=true\nembeddedNamesrvPort={nport}\n\
                 namesrvAddr=127.0.0.1:{nport}\nbrokerConfigPaths=dl.conf\nbrokerConfigDirs=.\nlogRoot={}\n",
                d.join("logs").display()
            ),
        )
        .unwrap();
        let start = || {
            let c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "container");
            wait_until("the container and the broker listen", Duration::from_secs(30), || {
                port_open(cport) && port_open(port)
            });
            c
        };
        let child = start();
        let client = RemotingClient::default();
        let a = format!("127.0.0.1:{port}");
        // The single member leads and takes sends.
        wait_async("the DLedger broker takes sends", Duration::from_secs(30), || {
            let (client, a) = (&client, &a);
            async move { send(client, a, "DlQuota", 0, &body(0), &[]).await.code == response::SUCCESS }
        })
        .await;
        let mut sent = 1;
        let t = runtime_info(&client, &a).await;
        assert_eq!(num(&t, "commitLogMinOffset"), 0);
        assert!(num(&t, "diskQuota").abs_diff(QUOTA as i64) < QUOTA / 100, "{t:?}");

        // Past 80 % of the quota the oldest DLedger data files go while every send succeeds.
        let deadline = Instant::now() + Duration::from_secs(120);
        while data_files(&store).first().map(String::as_str) == Some("00000000000000000000") {
            assert!(Instant::now() < deadline && sent < 3000, "the first data file never went ({sent} sent)");
            send_n(&client, &a, sent, 1).await;
            sent += 1;
            physical_rule |= partition(&store).1 > 0.85;
        }
        assert!(
            physical_rule || sent as u64 * BODY as u64 > QUOTA / 2,
            "the first file went after only {sent} messages"
        );
        send_n(&client, &a, sent, 40).await;
        sent += 40;
        let t = runtime_info(&client, &a).await;
        let cl_min = num(&t, "commitLogMinOffset");
        assert!(cl_min >= 262144, "{t:?}");
        assert_eq!(cl_min as u64 % 262144, 0);
        assert!(data_files(&store).first().unwrap().parse::<i64>().unwrap() >= cl_min);
        // The consume queue follows; reads from its min return what was sent, in order.
        wait_async("the consume queue follows", Duration::from_secs(10), || {
            let (client, a) = (&client, &a);
            async move { min_offset(client, a).await > 0 }
        })
        .await;
        let q_min = min_offset(&client, &a).await;
        // Acknowledged is not yet dispatched: the consume queue follows the log asynchronously.
        wait_max_offset(&client, &a, "DlQuota", 0, sent as i64).await;
        let got = read_from(&client, &a, q_min).await;
        let want: Vec<(i64, String)> =
            (q_min as usize..sent).map(|i| (i as i64, String::from_utf8_lossy(&body(i)[..16]).into_owned())).collect();
        assert_eq!(got, want);
        // A pull below the min is moved to it.
        let r = pull(&client, &a, "dl-quota-lagging", "DlQuota", 0, 0, "*", 0).await;
        assert_ne!(r.code, response::SUCCESS);

        // Restart: the log begins where cleanup left it; everything from the min reads again,
        // and sends go on.
        drop(child);
        wait_until("the ports are free", Duration::from_secs(10), || !port_open(port) && !port_open(cport));
        let _child = start();
        wait_async("the restarted broker answers with its consume queue", Duration::from_secs(30), || {
            let (client, a) = (&client, &a);
            async move { min_offset(client, a).await > 0 }
        })
        .await;
        wait_async("the restarted broker leads", Duration::from_secs(30), || {
            let (client, a) = (&client, &a);
            let i = sent;
            async move { send(client, a, "DlQuota", 0, &body(i), &[]).await.code == response::SUCCESS }
        })
        .await;
        sent += 1;
        let t = runtime_info(&client, &a).await;
        assert!(num(&t, "commitLogMinOffset") >= cl_min, "{t:?}");
        let q_min2 = min_offset(&client, &a).await;
        assert!(q_min2 >= q_min);
        wait_max_offset(&client, &a, "DlQuota", 0, sent as i64).await;
        let got = read_from(&client, &a, q_min2).await;
        let want: Vec<(i64, String)> =
            (q_min2 as usize..sent).map(|i| (i as i64, String::from_utf8_lossy(&body(i)[..16]).into_owned())).collect();
        assert_eq!(got, want);
    }
}
