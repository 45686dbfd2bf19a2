#![allow(clippy::unwrap_used)]
//! The broker's commitlog on the DLedger log: stores opened on three DLedger nodes over real TCP
//! on 127.0.0.1 keep their records in entry bodies (PHYSICALOFFSET = entry pos + 48), dispatch
//! committed entries only on every replica, rebuild their consume queues from the log, and a new
//! leader's store continues the queue offsets.

mod common;

use common::dledger::transport;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rmqc::dledger::commitlog::DLedgerCommitLog;
use rmqc::dledger::core::Role;
use rmqc::dledger::server::{parse_peers, DLedgerConfig, DLedgerServer};
use rmqc::store::config::MessageStoreConfig;
use rmqc::store::message::MessageInner;
use rmqc::store::{MessageStore, PutMessageStatus};

/// Fast but tolerant timing: a loaded CI machine (tests run in parallel on two cores) must not
/// cost the leader its term in the middle of the test.
fn node_config(id: &str, peers: &str, root: &std::path::Path) -> DLedgerConfig {
    let mut c = DLedgerConfig::new("RaftNode00", id, parse_peers(peers).unwrap(), root.to_path_buf());
    c.data_file_size = 64 * 1024;
    c.index_file_size = 32 * 1024;
    c.heartbeat_ms = 300;
    // 3 s without a heartbeat before a follower stands for election: with 3 (0.9 s) a stalled
    // machine (stress: put 157 of 160 refused, the node no longer the leader) cost the leader
    // its term mid-test. The test's waits for a new leader allow 20 s.
    c.max_heartbeat_leak = 10;
    c.min_vote_ms = 150;
    c.max_vote_ms = 450;
    c.push_timeout_ms = 600;
    // A put is answered once a majority has it, or busy after this: 2 s was too short on a
    // starved machine (stress: put 32 OsPageCacheBusy, all three nodes in term 1, entry 32
    // appended everywhere, 31 committed). No test here measures the ack time.
    c.max_wait_ack_ms = 10_000;
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

struct Replica {
    node: Arc<DLedgerServer>,
    store: Arc<MessageStore>,
}

/// Opens (or reopens) a replica's store. A store just closed may be reported AlreadyInUse for a
/// moment: its directory lock is a flock, and a process this test binary is spawning at that
/// instant (the other tests start containers and `ip`) holds a copy of every descriptor from its
/// fork until its exec. Retried for up to 10 s.
async fn open_store(root: std::path::PathBuf, node: &Arc<DLedgerServer>) -> Arc<MessageStore> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (log, r) = (Arc::new(DLedgerCommitLog::new(node.clone())), root.clone());
        match tokio::task::spawn_blocking(move || MessageStore::open_replicated(store_config(&r), log)).await.unwrap() {
            Ok(store) => return Arc::new(store),
            Err(rmqc::store::StoreError::AlreadyInUse(p)) if std::time::Instant::now() < deadline => {
                eprintln!("{} in use, opened again", p.display());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("open {}: {e}", root.display()),
        }
    }
}

async fn close_store(store: Arc<MessageStore>) {
    tokio::task::spawn_blocking(move || store.shutdown().unwrap()).await.unwrap();
}

/// The leader once the group has settled: one node leads and every live node follows it in its
/// term. A node that just won a vote can still be deposed by a candidate that moved to a higher
/// term before hearing its first heartbeat (a vote in a higher term makes a leader stand down, as
/// DLedger's does), so one node in the Leader role is not yet a leader to append to.
fn leader_of(rs: &[Option<Replica>]) -> Option<usize> {
    let leaders: Vec<usize> =
        (0..rs.len()).filter(|&i| rs[i].as_ref().is_some_and(|r| r.node.status().role == Role::Leader)).collect();
    let &[l] = leaders.as_slice() else { return None };
    let (term, id) = (rs[l].as_ref()?.node.status().term, rs[l].as_ref()?.node.self_id().to_string());
    rs.iter()
        .flatten()
        .all(|r| r.node.status().term == term && r.node.status().leader.as_deref() == Some(id.as_str()))
        .then_some(l)
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
    common::rmq::queue_bodies(store, "DlT", q, 0)
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
        let statuses = || rs.iter().flatten().map(|r| r.node.status()).collect::<Vec<_>>();
        assert_eq!(r.status, PutMessageStatus::PutOk, "put {i}; nodes now: {:?}", statuses());
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
    // A batch is one entry per message.
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

// ---------------------------------------------------------------------------------------------
// Three containers, one DLedger broker of group `dl-a` each, with a NameServer: real processes.

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
const NAMESRV: &str = env!("CARGO_BIN_EXE_mqnamesrv");
const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");

use common::rmq::{pull, send, wait_max_offset, T};
use common::ChildGuard;
use rmqc::protocol::body::ClusterInfo;
use rmqc::protocol::codes::{request, response};
use rmqc::remoting::{RemotingClient, RemotingCommand};

struct Member {
    conf: std::path::PathBuf,
    port: u16,
    admin: u16,
    metrics: u16,
    child: ChildGuard,
}

/// Writes member `n{i}`'s broker config (`dl-a-n{i}.conf` in `d`, listening on `ip:port`); returns its path.
fn write_broker_conf(d: &std::path::Path, i: usize, ip: &str, port: u16, peers: &str) -> std::path::PathBuf {
    let broker = d.join(format!("dl-a-n{i}.conf"));
    std::fs::write(
        &broker,
        format!(
            "brokerClusterName=DlCluster\nbrokerName=dl-a\nlistenPort={port}\nbrokerIP1={ip}\n\
             storePathRootDir={}\nmappedFileSizeCommitLog=1048576\nmaxHashSlotNum=1000\nmaxIndexNum=4000\n\
             mappedFileSizeConsumeQueue=6000\nenableDLegerCommitLog=true\ndLegerGroup=dl-a\ndLegerPeers={peers}\n\
             dLegerSelfId=n{i}\nheartBeatTimeIntervalMs=1000\n",
            d.join(format!("store-n{i}")).display()
        ),
    )
    .unwrap();
    broker
}

fn write_member(d: &std::path::Path, i: usize, peers: &str, ns: &str) -> (std::path::PathBuf, u16, u16, u16) {
    let port = common::free_port_block(2, 1);
    let broker = write_broker_conf(d, i, "127.0.0.1", port, peers);
    let cport = common::free_port_block(2, 0);
    let mport = common::free_port_block(0, 0);
    let conf = d.join(format!("container-{i}.conf"));
    std::fs::write(
        &conf,
        format!(
            "listenPort={cport}\nbindAddress=127.0.0.1\nnamesrvAddr={ns}\nbrokerConfigPaths={}\nbrokerConfigDirs={}\nlogRoot={}\n\
             metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort={mport}\n",
            broker.display(),
            d.display(),
            d.join(format!("logs-{i}")).display()
        ),
    )
    .unwrap();
    (conf, port, cport, mport)
}

/// The DLedger role and term a container's `/metrics` reports for its broker.
fn metrics_role(port: u16) -> Option<(String, i64)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let role = text
        .lines()
        .find(|l| l.starts_with("rocketmq_container_dledger_role{") && l.ends_with(" 1"))
        .and_then(|l| l.split("role=\"").nth(1))
        .and_then(|r| r.split('"').next())?
        .to_string();
    let term = text
        .lines()
        .find(|l| l.starts_with("rocketmq_container_dledger_term{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())?;
    Some((role, term))
}

fn start_member(d: &std::path::Path, i: usize, conf: &std::path::Path) -> ChildGuard {
    ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, &format!("container-{i}"))
}

async fn group_addrs(client: &RemotingClient, ns: &str) -> std::collections::BTreeMap<i64, String> {
    let Ok(r) = client.invoke(ns, RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO), T).await else {
        return Default::default();
    };
    let ci: ClusterInfo = rmqc::json::from_slice_lenient(&r.body).unwrap_or_default();
    ci.broker_addr_table.get("dl-a").map(|b| b.broker_addrs.clone()).unwrap_or_default()
}

/// Every message of queue 0 of `topic` on `addr`, in queue order: (queue offset, body).
async fn read_all(client: &RemotingClient, addr: &str, topic: &str) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut off = 0;
    for _ in 0..1000 {
        let r = pull(client, addr, "dl-reader", topic, 0, off, "*", 0).await;
        if r.code != response::SUCCESS {
            break;
        }
        let msgs = rmqc::store::message::decode_records(&r.body, true);
        if msgs.is_empty() {
            break;
        }
        for m in &msgs {
            out.push((m.queue_offset, String::from_utf8_lossy(&m.body).into_owned()));
        }
        off = msgs.last().unwrap().queue_offset + 1;
    }
    out
}

/// Waits up to `within` for a master other than `old` to register, then sends it 30 messages
/// (`second-<i>`), each of which must be acknowledged, and adds them to `acked`; returns its address.
async fn new_master_acknowledges(
    client: &RemotingClient,
    ns: &str,
    old: &str,
    within: Duration,
    acked: &mut Vec<(i64, String)>,
) -> String {
    common::wait_async("a new master registers", within, || async move {
        group_addrs(client, ns).await.get(&0).is_some_and(|a| a != old)
    })
    .await;
    let new_master = group_addrs(client, ns).await[&0].clone();
    let second: Vec<String> = (0..30).map(|i| format!("second-{i}")).collect();
    let more = send_all(client, &new_master, "DlTopic", &second).await;
    assert_eq!(more.len(), 30, "the new leader acknowledges");
    acked.extend(more);
    new_master
}

/// A SYSTEM_BUSY answered before the request was processed (Apache's BrokerFastFailure remarks).
fn refused_unprocessed(r: &RemotingCommand) -> bool {
    let remark = r.remark.as_deref().unwrap_or("");
    r.code == response::SYSTEM_BUSY && (remark.starts_with("[TIMEOUT_CLEAN_QUEUE]") || remark.starts_with("[OVERLOAD]"))
}

/// Sends `bodies` to `addr` one by one; returns the acknowledged ones with their queue offsets.
async fn send_all(client: &RemotingClient, addr: &str, topic: &str, bodies: &[String]) -> Vec<(i64, String)> {
    let mut acked = Vec::new();
    for b in bodies {
        // Refused before it was processed (it waited in the broker's queue past
        // waitTimeMillsInSendQueue on a loaded machine, or found the queue full): nothing stored,
        // sent again as Apache's producer does, at most 20 times. (A SYSTEM_BUSY for an entry
        // that missed its majority in time is not sent again: it may still commit.)
        let mut r = send(client, addr, topic, 0, b.as_bytes(), &[]).await;
        for _ in 0..20 {
            if !refused_unprocessed(&r) {
                break;
            }
            eprintln!("send to {addr}: busy, sent again: {:?}", r.remark);
            tokio::time::sleep(Duration::from_millis(20)).await;
            r = send(client, addr, topic, 0, b.as_bytes(), &[]).await;
        }
        if r.code != response::SUCCESS {
            eprintln!("send to {addr}: {} {:?}", r.code, r.remark);
        }
        if r.code == response::SUCCESS {
            let qo: i64 = r.ext("queueOffset").and_then(|o| o.parse().ok()).unwrap();
            acked.push((qo, b.clone()));
        }
    }
    acked
}

/// Waits until the NameServer at `ns` lists group `dl-a` with a master and two slaves.
async fn wait_group(client: &RemotingClient, ns: &str, within: Duration) {
    common::wait_async("dl-a registers a master and two slaves", within, || {
        let (client, ns) = (client.clone(), ns.to_string());
        async move {
            let a = group_addrs(&client, &ns).await;
            a.len() == 3 && a.contains_key(&0)
        }
    })
    .await;
}

/// A NameServer and three containers on 127.0.0.1, each hosting member `n{i}` of DLedger group
/// `dl-a` (DLedger ports `q`, `q + 1`, `q + 2`), registered: see [`start_group`].
struct Group {
    /// The NameServer process (kept running while this is held).
    _nsrv: ChildGuard,
    /// The NameServer's address.
    ns: String,
    /// The first of the three consecutive DLedger ports.
    q: u16,
    /// The three members, `n0` to `n2`.
    members: Vec<Member>,
    /// A client for the test.
    client: RemotingClient,
}

/// Starts a [`Group`] with its files and logs in `d`; returns once the NameServer lists its
/// master and two slaves (30 s at most).
async fn start_group(d: &std::path::Path) -> Group {
    let (_nsrv, ns) = common::start_namesrv(NAMESRV, d);
    let q = common::free_port_block(0, 2);
    let peers = format!("n0-127.0.0.1:{q};n1-127.0.0.1:{};n2-127.0.0.1:{}", q + 1, q + 2);
    let members: Vec<Member> = (0..3)
        .map(|i| {
            let (conf, port, admin, metrics) = write_member(d, i, &peers, &ns);
            let child = start_member(d, i, &conf);
            Member { conf, port, admin, metrics, child }
        })
        .collect();
    let client = RemotingClient::default();
    wait_group(&client, &ns, Duration::from_secs(30)).await;
    Group { _nsrv, ns, q, members, client }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_containers_fail_over_the_dledger_master() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One master (brokerId 0) and two slaves (brokerId = n + 1) register.
    let Group { _nsrv, ns, q, mut members, client } = start_group(d).await;
    let addr_of = |m: &Member| format!("127.0.0.1:{}", m.port);
    let addrs = group_addrs(&client, &ns).await;
    let master = addrs[&0].clone();
    let leader = members.iter().position(|m| addr_of(m) == master).unwrap();
    for (id, a) in &addrs {
        if *id != 0 {
            let i = members.iter().position(|m| &addr_of(m) == a).unwrap();
            assert_eq!(*id, i as i64 + 1, "a follower n{i} registers brokerId n+1");
        }
    }
    for m in &members {
        common::rmq::create_topic(&client, &addr_of(m), "DlTopic").await;
    }

    // Sends are acknowledged by the leader; followers refuse them.
    let follower = addr_of(&members[(leader + 1) % 3]);
    let r = send(&client, &follower, "DlTopic", 0, b"to a follower", &[]).await;
    assert_eq!(r.code, response::SERVICE_NOT_AVAILABLE, "{:?}", r.remark);
    let first: Vec<String> = (0..50).map(|i| format!("first-{i}")).collect();
    let mut acked = send_all(&client, &master, "DlTopic", &first).await;
    assert_eq!(acked.len(), 50, "every send to a healthy leader is acknowledged");
    wait_max_offset(&client, &master, "DlTopic", 0, 50).await;
    assert_eq!(read_all(&client, &master, "DlTopic").await, acked);
    // Followers have them.
    for m in &members {
        wait_max_offset(&client, &addr_of(m), "DlTopic", 0, 50).await;
    }
    // Each container's /metrics shows its replica's DLedger role and the group's term.
    let mut roles: Vec<Option<(String, i64)>> = Vec::new();
    let settled = |roles: &[Option<(String, i64)>]| {
        roles
            .iter()
            .enumerate()
            .all(|(i, r)| r.as_ref().is_some_and(|(role, _)| role == if i == leader { "leader" } else { "follower" }))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !settled(&roles) {
        assert!(std::time::Instant::now() < deadline, "metrics roles: {roles:?}");
        roles = members.iter().map(|m| metrics_role(m.metrics)).collect();
        if !settled(&roles) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let roles: Vec<(String, i64)> = roles.into_iter().map(Option::unwrap).collect();
    assert!(roles.iter().all(|r| r.1 == roles[leader].1 && r.1 >= 1), "one term for the group: {roles:?}");

    // SIGKILL the leader's container: a new leader registers as master within 10 s.
    let killed_at = std::time::Instant::now();
    members[leader].child.kill9();
    common::wait_async("a new master registers", Duration::from_secs(10), || {
        let (client, ns, old) = (client.clone(), ns.clone(), master.clone());
        async move { group_addrs(&client, &ns).await.get(&0).is_some_and(|a| *a != old) }
    })
    .await;
    let took = killed_at.elapsed();
    let new_master = group_addrs(&client, &ns).await[&0].clone();
    eprintln!("new DLedger master {new_master} registered {took:?} after SIGKILL of the old one");

    // Sends resume; every acknowledged message is readable once, in queue order.
    let second: Vec<String> = (0..50).map(|i| format!("second-{i}")).collect();
    let more = send_all(&client, &new_master, "DlTopic", &second).await;
    assert_eq!(more.len(), 50, "every send to the new leader is acknowledged");
    acked.extend(more);
    wait_max_offset(&client, &new_master, "DlTopic", 0, 100).await;
    let read = read_all(&client, &new_master, "DlTopic").await;
    assert_eq!(read, acked, "every acknowledged message once, in order");
    assert_eq!(read.iter().map(|(o, _)| *o).collect::<Vec<_>>(), (0..100).collect::<Vec<_>>());

    // The killed container restarts and catches up as a follower.
    let conf = members[leader].conf.clone();
    members[leader].child = start_member(d, leader, &conf);
    let back = addr_of(&members[leader]);
    common::wait_async("the restarted member catches up", Duration::from_secs(30), || {
        let (client, back) = (client.clone(), back.clone());
        async move {
            let req =
                RemotingCommand::request(request::GET_MAX_OFFSET).with_ext("topic", "DlTopic").with_ext("queueId", "0");
            match client.invoke(&back, req, T).await {
                Ok(r) => r.ext("offset").and_then(|o| o.parse::<i64>().ok()) == Some(100),
                Err(_) => false,
            }
        }
    })
    .await;
    assert_eq!(read_all(&client, &back, "DlTopic").await, acked);
    let addrs = group_addrs(&client, &ns).await;
    assert_eq!(addrs.get(&0), Some(&new_master), "one master");
    common::wait_async("the restarted member registers as a slave", Duration::from_secs(20), || {
        let (client, ns, back) = (client.clone(), ns.clone(), back.clone());
        async move { group_addrs(&client, &ns).await.get(&(leader as i64 + 1)) == Some(&back) }
    })
    .await;
    // clusterList shows each member's DLedger role, the term, the leader and the lag in entries.
    common::wait_until("clusterList shows the group caught up", Duration::from_secs(20), || {
        let out = common::text(&common::run(MQADMIN, &["clusterList", "-n", &ns]));
        out.lines().filter(|l| l.contains("dl-a")).filter(|l| l.contains("lagEntries=0")).count() == 3
            && out.matches(":LEADER,term=").count() == 1
            && out.matches(":FOLLOWER,term=").count() == 2
    });
    // Removing a member at runtime stops its DLedger node (its peer port closes) and unregisters it.
    let f = (0..3).find(|&i| addr_of(&members[i]) != new_master).unwrap();
    let out = common::run(
        MQADMIN,
        &["removeBroker", "-c", &format!("127.0.0.1:{}", members[f].admin), "-b", &format!("DlCluster:dl-a:{f}")],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    common::wait_until("the removed member's DLedger port closes", Duration::from_secs(20), || {
        !common::port_open(q + f as u16)
    });
    for m in &mut members {
        m.child.terminate();
    }
}

/// Sends a signal (`STOP`, `CONT`) to a member's container process.
fn signal(m: &Member, sig: &str) {
    let pid = m.child.0.as_ref().expect("running").id().to_string();
    let st = std::process::Command::new("kill").args([&format!("-{sig}"), &pid]).status().unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// A frozen leader (SIGSTOP) is replaced; when it thaws (SIGCONT) it neither acknowledges a send
/// nor registers as master again, and the NameServer never shows it as master beside the new one;
/// then all three containers are killed at once and come back with every acknowledged message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_is_fenced_and_a_restart_of_all_three_keeps_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Group { _nsrv, ns, q: _, mut members, client } = start_group(d).await;
    let addr_of = |m: &Member| format!("127.0.0.1:{}", m.port);
    let old = group_addrs(&client, &ns).await[&0].clone();
    let leader = members.iter().position(|m| addr_of(m) == old).unwrap();
    for m in &members {
        common::rmq::create_topic(&client, &addr_of(m), "DlTopic").await;
    }
    let first: Vec<String> = (0..30).map(|i| format!("first-{i}")).collect();
    let mut acked = send_all(&client, &old, "DlTopic", &first).await;
    assert_eq!(acked.len(), 30);

    // Freeze the leader: the two others elect a new one, which registers as master.
    signal(&members[leader], "STOP");
    let new_master = new_master_acknowledges(&client, &ns, &old, Duration::from_secs(15), &mut acked).await;

    // Thaw it. A send to it is not acknowledged (it is fenced, or follows the new leader), and until
    // it registers as a slave the NameServer never shows it as the master.
    signal(&members[leader], "CONT");
    let r = send(&client, &old, "DlTopic", 0, b"to the thawed leader", &[]).await;
    assert_ne!(r.code, response::SUCCESS, "a deposed leader acknowledged a send");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let a = group_addrs(&client, &ns).await;
        assert_ne!(a.get(&0), Some(&old), "the thawed leader registered as master again: {a:?}");
        if a.get(&(leader as i64 + 1)) == Some(&old) && a.get(&0) == Some(&new_master) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the thawed leader did not register as a slave: {a:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_max_offset(&client, &old, "DlTopic", 0, 60).await;
    assert_eq!(read_all(&client, &old, "DlTopic").await, acked, "the thawed member has every message");

    // All three at once: kill -9 and start again; every acknowledged message comes back, once, in order.
    for m in members.iter_mut() {
        m.child.kill9();
    }
    for (i, m) in members.iter_mut().enumerate() {
        let conf = m.conf.clone();
        m.child = start_member(d, i, &conf);
    }
    common::wait_async("a master registers after the restart", Duration::from_secs(40), || {
        let (client, ns, addrs) = (client.clone(), ns.clone(), members.iter().map(addr_of).collect::<Vec<_>>());
        async move {
            // The NameServer may still list the old registration until the new master registers.
            let Some(m) = group_addrs(&client, &ns).await.get(&0).cloned() else { return false };
            let req =
                RemotingCommand::request(request::GET_MAX_OFFSET).with_ext("topic", "DlTopic").with_ext("queueId", "0");
            addrs.contains(&m)
                && matches!(client.invoke(&m, req, T).await,
                    Ok(r) if r.ext("offset").and_then(|o| o.parse::<i64>().ok()).is_some_and(|o| o >= 60))
                && send(&client, &m, "DlTopic", 0, b"probe", &[]).await.code == response::SUCCESS
        }
    })
    .await;
    let master = group_addrs(&client, &ns).await[&0].clone();
    let read = read_all(&client, &master, "DlTopic").await;
    assert_eq!(&read[..60], &acked[..], "every acknowledged message once, in order, after a restart of all three");
    assert!(read[60..].iter().all(|(_, b)| b == "probe"), "{:?}", &read[60..]);
}

/// Three network namespaces on one bridge (`10.231.<net>.0/24`, the bridge `.1`, namespace `i` at
/// `.(i + 2)`), removed on drop. A namespace is cut off by taking its veth down on the host side.
struct NetLab {
    tag: String,
    net: u32,
    n: usize,
}

impl NetLab {
    fn sh(args: &[&str]) {
        let out = std::process::Command::new("ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    fn new(n: usize) -> NetLab {
        let tag = format!("rq{}", std::process::id() % 100_000);
        let net = 100 + std::process::id() % 100;
        let lab = NetLab { tag, net, n };
        let br = lab.bridge();
        Self::sh(&["link", "add", &br, "type", "bridge"]);
        Self::sh(&["addr", "add", &format!("10.231.{net}.1/24"), "dev", &br]);
        Self::sh(&["link", "set", &br, "up"]);
        for i in 0..n {
            let (ns, host, inner) = (lab.ns(i), lab.host_if(i), format!("{}n{i}", lab.tag));
            Self::sh(&["netns", "add", &ns]);
            Self::sh(&["link", "add", &host, "type", "veth", "peer", "name", &inner]);
            Self::sh(&["link", "set", &inner, "netns", &ns]);
            Self::sh(&["link", "set", &host, "master", &br]);
            Self::sh(&["link", "set", &host, "up"]);
            Self::sh(&["netns", "exec", &ns, "ip", "addr", "add", &format!("{}/24", lab.ip(i)), "dev", &inner]);
            Self::sh(&["netns", "exec", &ns, "ip", "link", "set", &inner, "up"]);
            Self::sh(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        }
        lab
    }
    fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }
    fn ns(&self, i: usize) -> String {
        format!("{}ns{i}", self.tag)
    }
    fn host_if(&self, i: usize) -> String {
        format!("{}h{i}", self.tag)
    }
    fn ip(&self, i: usize) -> String {
        format!("10.231.{}.{}", self.net, i + 2)
    }
    fn host_ip(&self) -> String {
        format!("10.231.{}.1", self.net)
    }
    fn cut(&self, i: usize, cut: bool) {
        Self::sh(&["link", "set", &self.host_if(i), if cut { "down" } else { "up" }]);
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for i in 0..self.n {
            let _ = std::process::Command::new("ip").args(["netns", "del", &self.ns(i)]).output();
            let _ = std::process::Command::new("ip").args(["link", "del", &self.host_if(i)]).output();
        }
        let _ = std::process::Command::new("ip").args(["link", "del", &self.bridge()]).output();
    }
}

/// A leader cut off from the network (its namespace's link down) loses the group: the two others
/// elect a new master, which acknowledges sends; once the link is back, the old leader follows as a
/// slave, nothing it might have taken while cut off is visible, and every acknowledged message is
/// read once, in order, on every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_is_replaced_and_rejoins_as_a_slave() {
    if !common::root_or_skip("a_partitioned_leader_is_replaced_and_rejoins_as_a_slave") {
        return;
    }
    let lab = NetLab::new(3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_nsrv, ns_local) = common::start_namesrv(NAMESRV, d);
    let ns = ns_local.replace("127.0.0.1", &lab.host_ip());
    let (port, dport) = (common::free_port_block(2, 1), common::free_port_block(0, 0));
    // The container's own ports (listen and fast, listen - 2) from a block of their own: the
    // ports next to the broker's block belong to other blocks (here: `dport`).
    let cport = common::free_port_block(2, 0);
    let peers = (0..3).map(|i| format!("n{i}-{}:{dport}", lab.ip(i))).collect::<Vec<_>>().join(";");
    let confs: Vec<std::path::PathBuf> = (0..3)
        .map(|i| {
            let broker = write_broker_conf(d, i, &lab.ip(i), port, &peers);
            let conf = d.join(format!("container-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "listenPort={}\nnamesrvAddr={ns}\nbrokerConfigPaths={}\nbrokerConfigDirs={}\nlogRoot={}\n",
                    cport,
                    broker.display(),
                    d.display(),
                    d.join(format!("logs-{i}")).display()
                ),
            )
            .unwrap();
            conf
        })
        .collect();
    let mut children: Vec<ChildGuard> = (0..3)
        .map(|i| {
            let c = confs[i].to_str().unwrap();
            ChildGuard::spawn("ip", &["netns", "exec", &lab.ns(i), CONTAINER, "-c", c], d, &format!("container-{i}"))
        })
        .collect();
    let client = RemotingClient::default();
    let addr = |i: usize| format!("{}:{port}", lab.ip(i));
    wait_group(&client, &ns, Duration::from_secs(40)).await;
    let old = group_addrs(&client, &ns).await[&0].clone();
    let leader = (0..3).find(|&i| addr(i) == old).unwrap();
    for i in 0..3 {
        common::rmq::create_topic(&client, &addr(i), "DlTopic").await;
    }
    let first: Vec<String> = (0..30).map(|i| format!("first-{i}")).collect();
    let mut acked = send_all(&client, &old, "DlTopic", &first).await;
    assert_eq!(acked.len(), 30);

    // Cut the leader off: a new master registers (the NameServer keeps one address per brokerId,
    // so the old registration is replaced, never listed beside it).
    lab.cut(leader, true);
    let new_master = new_master_acknowledges(&client, &ns, &old, Duration::from_secs(20), &mut acked).await;

    // Heal: the old leader follows as a slave and has exactly the acknowledged messages.
    lab.cut(leader, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let a = group_addrs(&client, &ns).await;
        if a.get(&(leader as i64 + 1)) == Some(&old) && a.get(&0) == Some(&new_master) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the healed leader did not register as a slave: {a:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..3 {
        wait_max_offset(&client, &addr(i), "DlTopic", 0, 60).await;
        assert_eq!(read_all(&client, &addr(i), "DlTopic").await, acked, "member n{i}");
    }
    for c in children.iter_mut() {
        c.kill9();
    }
}
