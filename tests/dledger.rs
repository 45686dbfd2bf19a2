#![allow(clippy::unwrap_used)]
//! DLedger nodes over real TCP on 127.0.0.1: three nodes of one group elect a leader, replicate
//! and commit appends, survive killing the leader, and a restarted node catches up from its files.

mod common;

use common::dledger::transport;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rmqc::dledger::core::Role;
use rmqc::dledger::server::{parse_peers, DLedgerConfig, DLedgerError, DLedgerServer};
use rmqc::dledger::wire::{self, code, request};
use rmqc::remoting::{RemotingClient, RemotingCommand};

fn config(id: &str, peers: &str, root: &std::path::Path) -> DLedgerConfig {
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

async fn leader_of(nodes: &[Option<Arc<DLedgerServer>>]) -> Option<usize> {
    let leaders: Vec<usize> =
        (0..nodes.len()).filter(|&i| nodes[i].as_ref().is_some_and(|n| n.status().role == Role::Leader)).collect();
    if leaders.len() != 1 {
        return None;
    }
    let l = leaders[0];
    let (term, id) = (nodes[l].as_ref().unwrap().status().term, nodes[l].as_ref().unwrap().self_id().to_string());
    // Every live node follows it in the same term.
    nodes
        .iter()
        .flatten()
        .all(|n| n.status().term == term && n.status().leader.as_deref() == Some(id.as_str()))
        .then_some(l)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_elect_replicate_and_survive_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::free_port_block(0, 2);
    let peers = format!("n0-127.0.0.1:{};n1-127.0.0.1:{};n2-127.0.0.1:{}", base, base + 1, base + 2);
    let net = transport();
    let mut nodes: Vec<Option<Arc<DLedgerServer>>> = Vec::new();
    for i in 0..3 {
        let n = DLedgerServer::start(config(&format!("n{i}"), &peers, dir.path()), &net, None).await.unwrap();
        nodes.push(Some(n));
    }
    common::wait_async("a leader", Duration::from_secs(20), || {
        let nodes = nodes.clone();
        async move { leader_of(&nodes).await.is_some() }
    })
    .await;
    let l = leader_of(&nodes).await.unwrap();
    let leader = nodes[l].clone().unwrap();

    // A follower refuses appends and names the leader.
    let f = (l + 1) % 3;
    match nodes[f].as_ref().unwrap().append(Bytes::from_static(b"x"), None).await {
        Err(DLedgerError::NotLeader { leader: Some(id) }) => assert_eq!(id, leader.self_id()),
        other => panic!("follower append: {other:?}"),
    }

    // Appends are acknowledged once committed; the hook sees the final position.
    let mut positions = Vec::new();
    for k in 0..50 {
        let body = Bytes::from(format!("message-{k}-{}", "p".repeat(k * 37)));
        let seen = Arc::new(parking_lot::Mutex::new(-1i64));
        let s2 = seen.clone();
        let a = leader
            .append(
                body,
                Some(Box::new(move |pos, b: &mut [u8]| {
                    *s2.lock() = pos;
                    b[0] = b'M';
                })),
            )
            .await
            .unwrap();
        assert_eq!(*seen.lock(), a.pos);
        positions.push(a);
    }
    // Many appends in flight at once: with batch push (on by default) they travel to each
    // follower several to a PUSH.
    let before = (leader.push_stats().append_requests(), leader.push_stats().entries());
    let mut waits = Vec::new();
    for k in 0..400 {
        waits.push(leader.submit(Bytes::from(format!("burst-{k}")), None).unwrap());
    }
    let mut burst = Vec::new();
    for w in waits {
        burst.push(tokio::time::timeout(Duration::from_secs(10), w).await.unwrap().unwrap().unwrap());
    }
    assert!(burst.windows(2).all(|w| w[1].index == w[0].index + 1), "in submit order");
    let (reqs, entries) = (leader.push_stats().append_requests() - before.0, leader.push_stats().entries() - before.1);
    eprintln!("burst of 400 appends: {entries} entries pushed in {reqs} APPEND requests");
    // A majority (the leader and one follower) acknowledged them all; the other may still be on its way.
    assert!(entries >= 400, "{entries} entries pushed");
    assert!(reqs * 4 <= entries, "no batching: {reqs} requests for {entries} entries");

    let last = burst.last().unwrap().index;
    assert!(leader.status().committed >= last);
    // Every node holds the same entries at the same positions.
    common::wait_async("followers committed", Duration::from_secs(10), || {
        let nodes = nodes.clone();
        async move { nodes.iter().flatten().all(|n| n.status().committed >= last) }
    })
    .await;
    for n in nodes.iter().flatten() {
        for a in positions.iter().step_by(7) {
            let (got, body) = n.read(a.index).await.unwrap().unwrap();
            assert_eq!(got, *a, "{} entry {}", n.self_id(), a.index);
            assert_eq!(body[0], b'M');
        }
    }

    // The wire: a VOTE in an old term is refused with the voter's term, as DLedger answers.
    let client = RemotingClient::default();
    let vote = wire::VoteRequest {
        base: wire::Base::new("RaftNode00", "n9", nodes[f].as_ref().unwrap().self_id(), Some("n9"), 0),
        ledger_end_index: -1,
        ledger_end_term: -1,
    };
    let mut req = RemotingCommand::request(request::VOTE);
    req.body = wire::encode(&vote);
    let addr = format!("127.0.0.1:{}", base + f as u16);
    let resp = client.invoke(&addr, req, Duration::from_secs(3)).await.unwrap();
    assert_eq!(resp.code, code::SUCCESS);
    let v: wire::VoteResponse = wire::decode("VoteResponse", &resp.body).unwrap();
    assert_ne!(v.vote_result, wire::VoteResult::Accept);
    let mut meta = RemotingCommand::request(request::METADATA);
    meta.body = wire::encode(&wire::HeartBeat { base: wire::Base::new("RaftNode00", "n9", "n0", None, -1) });
    let m: wire::MetadataResponse =
        wire::decode("MetadataResponse", &client.invoke(&addr, meta, Duration::from_secs(3)).await.unwrap().body)
            .unwrap();
    assert_eq!(m.peers.len(), 3);
    assert_eq!(m.base.leader_id.as_deref(), Some(leader.self_id()));
    client.shutdown().await;

    // Kill the leader: the two others elect a new one and keep committing.
    let old_term = leader.status().term;
    let old_id = leader.self_id().to_string();
    drop(leader);
    nodes[l].take().unwrap().shutdown().await;
    common::wait_async("a new leader", Duration::from_secs(20), || {
        let nodes = nodes.clone();
        async move { leader_of(&nodes).await.is_some() }
    })
    .await;
    let l2 = leader_of(&nodes).await.unwrap();
    let leader2 = nodes[l2].clone().unwrap();
    assert!(leader2.status().term > old_term);
    for k in 0..10 {
        leader2.append(Bytes::from(format!("after-{k}")), None).await.unwrap();
    }
    // Everything committed before survived.
    for a in &positions {
        assert_eq!(leader2.read(a.index).await.unwrap().unwrap().0, *a);
    }

    // The old leader comes back from its files, follows and catches up.
    let back = DLedgerServer::start(config(&old_id, &peers, dir.path()), &net, None).await.unwrap();
    nodes[l] = Some(back.clone());
    let end = leader2.status().end_index;
    common::wait_async("the old leader caught up", Duration::from_secs(20), || {
        let back = back.clone();
        async move { back.status().committed >= end && back.status().role == Role::Follower }
    })
    .await;
    assert_eq!(back.read(end).await.unwrap().unwrap().0, leader2.read(end).await.unwrap().unwrap().0);

    for n in nodes.iter_mut() {
        if let Some(n) = n.take() {
            n.shutdown().await;
        }
    }
    net.shutdown().await;
    // Files as DLedger keeps them.
    let d = dir.path().join(format!("dledger-{old_id}"));
    assert!(d.join("data/00000000000000000000").is_file());
    assert!(d.join("index/00000000000000000000").is_file());
    let ck = std::fs::read_to_string(d.join("checkpoint")).unwrap();
    assert!(ck.contains("committedIndex="), "{ck}");
    assert!(std::fs::read_to_string(d.join("currterm")).unwrap().contains("currTerm="));
}

#[tokio::test]
async fn bad_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = transport();
    let c = config("n5", "n0-127.0.0.1:1;n1-127.0.0.1:2", dir.path());
    assert!(matches!(DLedgerServer::start(c, &net, None).await, Err(DLedgerError::Config(_))));
    let mut c = config("n0", "n0-127.0.0.1:1;n1-127.0.0.1:2", dir.path());
    c.preferred_leader = Some("n7".into());
    assert!(matches!(DLedgerServer::start(c, &net, None).await, Err(DLedgerError::Config(_))));
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leadership_moves_to_the_preferred_leader() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::free_port_block(0, 2);
    let peers = format!("n0-127.0.0.1:{};n1-127.0.0.1:{};n2-127.0.0.1:{}", base, base + 1, base + 2);
    let net = transport();
    let mut nodes: Vec<Option<Arc<DLedgerServer>>> = Vec::new();
    for i in 0..3 {
        let mut c = config(&format!("n{i}"), &peers, dir.path());
        c.preferred_leader = Some("n2".into());
        nodes.push(Some(DLedgerServer::start(c, &net, None).await.unwrap()));
    }
    common::wait_async("n2 leads", Duration::from_secs(30), || {
        let nodes = nodes.clone();
        async move { leader_of(&nodes).await == Some(2) }
    })
    .await;
    let a = nodes[2].as_ref().unwrap().append(Bytes::from_static(b"on the preferred leader"), None).await.unwrap();
    assert!(a.index >= 0);
    for n in nodes.iter_mut() {
        if let Some(n) = n.take() {
            n.shutdown().await;
        }
    }
    net.shutdown().await;
}
