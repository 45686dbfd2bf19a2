//! Transactional messages over real TCP: half sends stay invisible, END_TRANSACTION commits or
//! rolls back, unknown states are checked back on the producer's own connection, checks stop after
//! `transactionCheckMax`, and a container killed between the half message and its commit checks
//! it back after the restart and delivers it exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::rmq::{pull, wait_max_offset, T};
use common::{free_port_block, port_open, wait_until, write_broker, write_container, ChildGuard};
use rmqc::client::transaction::{end_after_check, end_after_send, half_send_request, producer_heartbeat, TxState};
use rmqc::container::config::LoadedContainerConfig;
use rmqc::container::BrokerContainer;
use rmqc::protocol::codes::{request, response};
use rmqc::protocol::header::CheckTransactionStateRequestHeader;
use rmqc::protocol::message::{decode_record, decode_records, sysflag};
use rmqc::remoting::{ClientConfig, CommandHeader, RemotingClient, RemotingCommand, ServerRequest};
use tokio::sync::mpsc;

const HALF: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
const OP: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");

/// A producer: a client whose connections also carry the broker's CHECK_TRANSACTION_STATE.
fn producer() -> (RemotingClient, mpsc::Receiver<ServerRequest>) {
    RemotingClient::with_inbox(ClientConfig::default(), 64)
}

async fn heartbeat(client: &RemotingClient, broker: &str, group: &str) {
    let r = client.invoke(broker, producer_heartbeat("127.0.0.1@tx-test", group), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

/// Sends a half message; returns (queue offset in the half queue, offset msgId).
async fn send_half(
    client: &RemotingClient,
    broker: &str,
    group: &str,
    topic: &str,
    key: &str,
    body: &str,
) -> (i64, String) {
    let req = half_send_request(group, topic, 0, key, &[("TAGS", "tx")], Bytes::copy_from_slice(body.as_bytes()));
    let r = client.invoke(broker, req, T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(r.ext("queueId"), Some("0"), "the requested queue is answered");
    assert_eq!(r.ext("transactionId"), Some(key));
    (r.ext("queueOffset").unwrap().parse().unwrap(), r.ext("msgId").unwrap().to_string())
}

async fn max_offset(client: &RemotingClient, broker: &str, topic: &str) -> i64 {
    let req = RemotingCommand::request(request::GET_MAX_OFFSET).with_ext("topic", topic).with_ext("queueId", "0");
    let r = client.invoke(broker, req, T).await.unwrap();
    r.ext("offset").and_then(|o| o.parse().ok()).unwrap_or(-1)
}

/// The check service's progress on a queue (group CID_RMQ_SYS_TRANS), −1 if none yet.
async fn progress(client: &RemotingClient, broker: &str, topic: &str) -> i64 {
    let q = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", "CID_RMQ_SYS_TRANS")
        .with_ext("topic", topic)
        .with_ext("queueId", "0")
        .with_ext("setZeroIfNotFound", "false");
    let r = client.invoke(broker, q, T).await.unwrap();
    if r.code == response::SUCCESS {
        r.ext("offset").unwrap().parse().unwrap()
    } else {
        -1
    }
}

/// Waits for the next CHECK_TRANSACTION_STATE, answering nothing else.
async fn next_check(
    inbox: &mut mpsc::Receiver<ServerRequest>,
    within: Duration,
) -> (String, CheckTransactionStateRequestHeader, RemotingCommand) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = tokio::time::timeout(left, inbox.recv()).await;
        let Ok(Some(sr)) = got else { panic!("no CHECK_TRANSACTION_STATE within {within:?}") };
        if sr.request.code == request::CHECK_TRANSACTION_STATE {
            assert!(sr.request.is_oneway(), "checks are oneway");
            let h = CheckTransactionStateRequestHeader::read_ext_fields(&sr.request.ext_fields).unwrap();
            return (sr.addr, h, sr.request);
        }
    }
}

async fn pull_all(
    client: &RemotingClient,
    broker: &str,
    group: &str,
    topic: &str,
) -> Vec<rmqc::protocol::message::MessageExt> {
    let r = pull(client, broker, group, topic, 0, 0, "*", 0).await;
    if r.code != response::SUCCESS {
        return Vec::new();
    }
    decode_records(&r.body, true)
}

async fn start(extra: &str) -> (tempfile::TempDir, BrokerContainer, String) {
    let dir = tempfile::tempdir().unwrap();
    let (bfile, bport) = write_broker(dir.path(), "broker-tx", &format!("maxMessageSize=65536\n{extra}"));
    let (conf, _cport, _ns) = write_container(dir.path(), &[&bfile]);
    let container =
        BrokerContainer::start(LoadedContainerConfig::load(&conf, None, None).unwrap(), false, None).await.unwrap();
    (dir, container, format!("127.0.0.1:{bport}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_reaches_the_consumer_and_rollback_never_does() {
    // Checks run every 200 ms, but nothing here is older than the 60 s timeout: none is sent.
    let (_dir, container, broker) = start("transactionCheckInterval=200\ntransactionTimeOut=60000\n").await;
    let (client, mut inbox) = producer();
    heartbeat(&client, &broker, "tx-pg").await;
    common::rmq::create_topic(&client, &broker, "TxTopic").await;

    let (qa, ida) = send_half(&client, &broker, "tx-pg", "TxTopic", "KEY-A", "body-a").await;
    let (qb, idb) = send_half(&client, &broker, "tx-pg", "TxTopic", "KEY-B", "body-b").await;
    assert_eq!((qa, qb), (0, 1), "half messages go to the half queue");
    wait_max_offset(&client, &broker, HALF, 0, 2).await;
    assert_eq!(max_offset(&client, &broker, "TxTopic").await, 0, "half messages are invisible");
    let halves = pull_all(&client, &broker, "tx-inspect", HALF).await;
    assert_eq!(halves.len(), 2);
    assert_eq!(halves[0].property("REAL_TOPIC"), Some("TxTopic"));
    assert_eq!(halves[0].property("REAL_QID"), Some("0"));
    assert_eq!(halves[0].property("__transactionId__"), Some("KEY-A"));
    assert_eq!(halves[0].sys_flag & 0xC, 0, "stored without transaction bits");

    // Bad END_TRANSACTIONs (sent as requests, so the broker's answer can be read) change nothing.
    let wrong = end_after_send("other-pg", "TxTopic", qa, &ida, "KEY-A", TxState::Commit).unwrap();
    let r = client.invoke(&broker, wrong, T).await.unwrap();
    assert_eq!((r.code, r.remark.as_deref()), (response::SYSTEM_ERROR, Some("The producer group wrong")));
    let r = client
        .invoke(&broker, end_after_send("tx-pg", "TxTopic", qb, &ida, "KEY-A", TxState::Commit).unwrap(), T)
        .await
        .unwrap();
    assert_eq!(
        (r.code, r.remark.as_deref()),
        (response::SYSTEM_ERROR, Some("The transaction state table offset wrong"))
    );
    let bogus = rmqc::protocol::message::create_offset_msg_id(&"127.0.0.1:1".parse().unwrap(), 1 << 40);
    let r = client
        .invoke(&broker, end_after_send("tx-pg", "TxTopic", qa, &bogus, "KEY-A", TxState::Commit).unwrap(), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SYSTEM_ERROR, "{:?}", r.remark);
    assert_eq!(max_offset(&client, &broker, "TxTopic").await, 0);

    // A commits (oneway, as producers send it), B rolls back.
    client
        .invoke_oneway(&broker, end_after_send("tx-pg", "TxTopic", qa, &ida, "KEY-A", TxState::Commit).unwrap(), T)
        .await
        .unwrap();
    client
        .invoke_oneway(&broker, end_after_send("tx-pg", "TxTopic", qb, &idb, "KEY-B", TxState::Rollback).unwrap(), T)
        .await
        .unwrap();
    wait_max_offset(&client, &broker, "TxTopic", 0, 1).await;
    wait_max_offset(&client, &broker, OP, 0, 2).await;
    let got = pull_all(&client, &broker, "tx-consumer", "TxTopic").await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(&m.body[..], b"body-a");
    assert_eq!(m.uniq_key(), Some("KEY-A"));
    assert_eq!(m.tags(), Some("tx"));
    assert_eq!(m.sys_flag & 0xC, sysflag::TRANSACTION_COMMIT);
    assert_eq!(m.prepared_transaction_offset, rmqc::protocol::message::decode_offset_msg_id(&ida).unwrap().1);
    assert!(m.property("REAL_TOPIC").is_none() && m.property("TRAN_MSG").is_none());
    let ops = pull_all(&client, &broker, "tx-inspect", OP).await;
    let mut bodies: Vec<_> =
        ops.iter().map(|o| (o.tags().unwrap().to_string(), String::from_utf8_lossy(&o.body).to_string())).collect();
    bodies.sort(); // the two oneway ENDs may be processed in either order
    assert_eq!(bodies, [("d".to_string(), "0,".to_string()), ("d".to_string(), "1,".to_string())]);

    // The check service passes over both (they have op records) without asking anybody.
    let deadline = Instant::now() + T;
    while progress(&client, &broker, HALF).await < 2 || progress(&client, &broker, OP).await < 2 {
        assert!(Instant::now() < deadline, "the check service moves past resolved half messages");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(inbox.try_recv().is_err(), "no check for resolved transactions");
    assert_eq!(pull_all(&client, &broker, "tx-consumer2", "TxTopic").await.len(), 1, "the rollback never arrives");

    // rejectTransactionMessage refuses half sends, at runtime.
    let body = "rejectTransactionMessage=true\n";
    let r = client
        .invoke(&broker, RemotingCommand::request(request::UPDATE_BROKER_CONFIG).with_body(body.as_bytes().to_vec()), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let req = half_send_request("tx-pg", "TxTopic", 0, "KEY-C", &[], Bytes::from_static(b"c"));
    let r = client.invoke(&broker, req, T).await.unwrap();
    assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);
    assert!(r.remark.unwrap().contains("sending transaction message is forbidden"));

    client.shutdown().await;
    container.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_state_is_checked_back_and_committed_by_the_producer() {
    // A pass a second: the producer's answer has a second to arrive before the copy would be
    // checked again (as in Apache, a late answer means another check).
    let (_dir, container, broker) = start("transactionCheckInterval=1000\ntransactionTimeOut=300\n").await;
    let (client, mut inbox) = producer();
    heartbeat(&client, &broker, "tx-pg").await;
    common::rmq::create_topic(&client, &broker, "TxTopic").await;
    let (q, id) = send_half(&client, &broker, "tx-pg", "TxTopic", "KEY-U", "body-u").await;
    let end = end_after_send("tx-pg", "TxTopic", q, &id, "KEY-U", TxState::Unknown).unwrap();
    client.invoke_oneway(&broker, end, T).await.unwrap();

    // The broker asks on the producer's own connection, about a fresh copy of the half message.
    let (addr, h, req) = next_check(&mut inbox, Duration::from_secs(20)).await;
    assert_eq!(addr, broker);
    assert_eq!(h.msg_id.as_deref(), Some("KEY-U"));
    assert_eq!(h.transaction_id.as_deref(), Some("KEY-U"));
    assert_eq!(h.bname.as_deref(), Some("broker-tx"));
    assert_eq!(h.tran_state_table_offset, 1, "the check names the re-appended copy");
    let msg = decode_record(&req.body, true).unwrap();
    assert_eq!((msg.topic.as_str(), msg.queue_id), ("TxTopic", 0), "the body carries the real topic and queue");
    assert_eq!(msg.commit_log_offset, h.commit_log_offset);
    assert_eq!(msg.property("PGROUP"), Some("tx-pg"));
    assert_eq!(msg.property("TRANSACTION_CHECK_TIMES"), Some("1"));
    assert_eq!(&msg.body[..], b"body-u");
    assert_eq!(max_offset(&client, &broker, "TxTopic").await, 0);

    client.invoke_oneway(&addr, end_after_check("tx-pg", &h, TxState::Commit), T).await.unwrap();
    wait_max_offset(&client, &broker, "TxTopic", 0, 1).await;
    let got = pull_all(&client, &broker, "tx-consumer", "TxTopic").await;
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].body[..], b"body-u");
    assert_eq!(got[0].uniq_key(), Some("KEY-U"));

    // The service moves past the copy and asks no more.
    let deadline = Instant::now() + T;
    while progress(&client, &broker, HALF).await < 2 {
        assert!(Instant::now() < deadline, "the check service moves past the committed copy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(max_offset(&client, &broker, HALF).await, 2, "no further copy");
    while let Ok(sr) = inbox.try_recv() {
        assert_ne!(sr.request.code, request::CHECK_TRANSACTION_STATE, "no second check");
    }
    client.shutdown().await;
    container.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_checks_stop_after_transaction_check_max() {
    let (_dir, container, broker) =
        start("transactionCheckInterval=200\ntransactionTimeOut=200\ntransactionCheckMax=2\n").await;
    let (client, mut inbox) = producer();
    heartbeat(&client, &broker, "tx-pg").await;
    common::rmq::create_topic(&client, &broker, "TxTopic").await;
    send_half(&client, &broker, "tx-pg", "TxTopic", "KEY-D", "body-d").await;

    let (_, h1, r1) = next_check(&mut inbox, Duration::from_secs(20)).await;
    let (_, h2, r2) = next_check(&mut inbox, Duration::from_secs(20)).await;
    assert!(h2.tran_state_table_offset > h1.tran_state_table_offset);
    assert_eq!(decode_record(&r1.body, false).unwrap().property("TRANSACTION_CHECK_TIMES"), Some("1"));
    assert_eq!(decode_record(&r2.body, false).unwrap().property("TRANSACTION_CHECK_TIMES"), Some("2"));

    // After two checks the half message goes to TRANS_CHECK_MAX_TIME_TOPIC and is never asked about again.
    wait_max_offset(&client, &broker, "TRANS_CHECK_MAX_TIME_TOPIC", 0, 1).await;
    let discarded = pull_all(&client, &broker, "tx-inspect", "TRANS_CHECK_MAX_TIME_TOPIC").await;
    assert_eq!(discarded.len(), 1);
    assert_eq!(discarded[0].property("REAL_TOPIC"), Some("TxTopic"));
    assert_eq!(discarded[0].uniq_key(), Some("KEY-D"));
    assert_eq!(discarded[0].property("TRANSACTION_CHECK_TIMES"), Some("2"));
    let half_max = max_offset(&client, &broker, HALF).await;
    let deadline = Instant::now() + T;
    while progress(&client, &broker, HALF).await < half_max {
        assert!(Instant::now() < deadline, "the check service moves past the discarded copy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while let Ok(sr) = inbox.try_recv() {
        assert_ne!(sr.request.code, request::CHECK_TRANSACTION_STATE, "no third check");
    }
    assert_eq!(max_offset(&client, &broker, "TxTopic").await, 0, "never delivered");
    // The topic is known (created on first discard) and routes to the broker.
    let r = client
        .invoke(
            &broker,
            RemotingCommand::request(request::GET_TOPIC_CONFIG).with_ext("topic", "TRANS_CHECK_MAX_TIME_TOPIC"),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    client.shutdown().await;
    container.shutdown().await;
}

/// A container killed (SIGKILL) after the half message and before any END_TRANSACTION: after the
/// restart the broker checks it back on the producer's new connection, the producer commits, and
/// the message is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_half_and_commit_is_checked_back_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port_block(2, 1);
    std::fs::write(
        d.join("tx.conf"),
        format!(
            "brokerClusterName=K\nbrokerName=tx-crash\nlistenPort={port}\nbrokerIP1=127.0.0.1\nstorePathRootDir={}\nmappedFileSizeCommitLog=1048576\nmaxMessageSize=65536\nmaxHashSlotNum=1000\nmaxIndexNum=4000\ntransactionCheckInterval=1000\ntransactionTimeOut=500\n",
            d.join("store").display()
        ),
    )
    .unwrap();
    let cport = free_port_block(2, 0);
    let conf = d.join("c.conf");
    std::fs::write(&conf, format!("listenPort={cport}\nbindAddress=127.0.0.1\nbrokerConfigPaths=tx.conf\n")).unwrap();
    let broker = format!("127.0.0.1:{port}");

    let mut first = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "c1");
    wait_until("the broker listens", Duration::from_secs(30), || port_open(port));
    {
        let (client, _inbox) = producer();
        heartbeat(&client, &broker, "tx-pg").await;
        common::rmq::create_topic(&client, &broker, "TxTopic").await;
        send_half(&client, &broker, "tx-pg", "TxTopic", "KEY-K", "body-k").await;
        first.kill9();
        client.shutdown().await;
    }

    let _second = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "c2");
    wait_until("the restarted broker listens", Duration::from_secs(30), || port_open(port));
    let (client, mut inbox) = producer();
    heartbeat(&client, &broker, "tx-pg").await;
    assert_eq!(max_offset(&client, &broker, "TxTopic").await, 0, "not delivered before the commit");
    // Answer every check with COMMIT, as a producer whose local transaction committed does.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut checks = 0;
    while max_offset(&client, &broker, "TxTopic").await < 1 {
        assert!(Instant::now() < deadline, "the half message is checked back and committed after the restart");
        if let Ok(Some(sr)) = tokio::time::timeout(Duration::from_millis(200), inbox.recv()).await {
            if sr.request.code == request::CHECK_TRANSACTION_STATE {
                let h = CheckTransactionStateRequestHeader::read_ext_fields(&sr.request.ext_fields).unwrap();
                assert_eq!(h.msg_id.as_deref(), Some("KEY-K"));
                client.invoke_oneway(&sr.addr, end_after_check("tx-pg", &h, TxState::Commit), T).await.unwrap();
                checks += 1;
            }
        }
    }
    assert!(checks >= 1);
    // Let the service pass over what is left (the copy, resolved by its op record), still answering.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (p, max) = (progress(&client, &broker, HALF).await, max_offset(&client, &broker, HALF).await);
        if p >= max && p > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the check service catches up ({p} of {max})");
        if let Ok(Some(sr)) = tokio::time::timeout(Duration::from_millis(100), inbox.recv()).await {
            if sr.request.code == request::CHECK_TRANSACTION_STATE {
                let h = CheckTransactionStateRequestHeader::read_ext_fields(&sr.request.ext_fields).unwrap();
                client.invoke_oneway(&sr.addr, end_after_check("tx-pg", &h, TxState::Commit), T).await.unwrap();
            }
        }
    }
    let got = pull_all(&client, &broker, "tx-consumer", "TxTopic").await;
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert_eq!(&got[0].body[..], b"body-k");
    assert_eq!(got[0].uniq_key(), Some("KEY-K"));
    client.shutdown().await;
}
