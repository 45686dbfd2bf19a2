//! Slave acting master across two cross-deployed containers (real `mqnamesrv` with
//! `supportActingMaster=true`, two `mqbrokercontainer` processes, each hosting one master and the
//! other group's slave with `enableSlaveActingMaster=true`, `enableRemoteEscape=true`): delayed
//! (delay level) and timer messages of broker-a are delivered on time through broker-a's slave
//! after container 1 is SIGKILLed, escaped to broker-b's master; two transactions whose state was
//! unknown at the kill are handed to broker-b's master, checked back with the producer and
//! committed / rolled back as it answers; a consumer's send-back is accepted by the acting master
//! and redelivered; container 1 restarts, takes its duties back, and delivers (or checks) nothing
//! a second time.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::rmq::{create_topic, pull, send, T};
use common::{free_port_block, port_open, ChildGuard};
use rmqc::client::transaction::{end_after_check, half_send_request, producer_heartbeat, TxState};
use rmqc::protocol::codes::{request, response};
use rmqc::protocol::header::{CheckTransactionStateRequestHeader, ConsumerSendMsgBackRequestHeader};
use rmqc::protocol::message::{decode_records, MessageExt};
use rmqc::remoting::{ClientConfig, CommandHeader, RemotingClient, RemotingCommand, ServerRequest};

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
const NAMESRV: &str = env!("CARGO_BIN_EXE_mqnamesrv");
const TOPIC: &str = "ActTopic";
const GROUP: &str = "act-g";
const TX_GROUP: &str = "act-tx-pg";
/// Delay level 3 in these brokers' `messageDelayLevel`.
const DELAY_MS: i64 = 8_000;
const TIMER_MS: i64 = 9_000;
/// How late a delivery through the acting master may be (takeover, escape, scheduling).
const LATE_MS: i64 = 4_000;

fn broker_conf(dir: &Path, name: &str, id: i64, port: u16, store: &Path) -> String {
    let role = if id == 0 { "ASYNC_MASTER" } else { "SLAVE" };
    let file = format!("{name}-{id}.conf");
    std::fs::write(
        dir.join(&file),
        format!(
            "brokerClusterName=ActCluster\nbrokerName={name}\nbrokerId={id}\nbrokerRole={role}\nlistenPort={port}\n\
             brokerIP1=127.0.0.1\ntotalReplicas=2\nstorePathRootDir={}\nmappedFileSizeCommitLog=1048576\n\
             maxHashSlotNum=1000\nmaxIndexNum=4000\nmappedFileSizeConsumeQueue=6000\nmappedFileSizeTimerLog=65536\n\
             messageDelayLevel=1s 2s 8s 30s\nenableSlaveActingMaster=true\nenableRemoteEscape=true\n\
             brokerNotActiveTimeoutMillis=3000\ntransactionCheckInterval=1000\n",
            store.display()
        ),
    )
    .unwrap();
    file
}

async fn info(client: &RemotingClient, port: u16, key: &str) -> Option<String> {
    common::rmq::try_runtime_info(client, port).await?.get(key).cloned()
}

/// Every message of queue 0 of `topic` on the broker at `port` (bounded: at most 20 pulls).
async fn read_queue(client: &RemotingClient, port: u16, topic: &str) -> Vec<MessageExt> {
    let mut out = Vec::new();
    let mut offset = 0;
    for _ in 0..20 {
        let r = pull(client, &format!("127.0.0.1:{port}"), "reader-g", topic, 0, offset, "*", 0).await;
        if r.code != response::SUCCESS {
            break;
        }
        let msgs = decode_records(&r.body, false);
        if msgs.is_empty() {
            break;
        }
        offset = msgs.last().unwrap().queue_offset + 1;
        out.extend(msgs);
    }
    out
}

fn bodies(msgs: &[MessageExt]) -> Vec<String> {
    msgs.iter().map(|m| String::from_utf8_lossy(&m.body).to_string()).collect()
}

/// Every CHECK_TRANSACTION_STATE seen: (broker address, transaction id).
type Checks = std::sync::Arc<parking_lot::Mutex<Vec<(String, String)>>>;

/// A transactional producer's check listener: answers every check at once, COMMIT for `TX-C`,
/// ROLLBACK for anything else, and records it.
fn answer_checks(producer: RemotingClient, mut inbox: tokio::sync::mpsc::Receiver<ServerRequest>) -> Checks {
    let seen: Checks = Default::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Some(sr) = inbox.recv().await {
            if sr.request.code != request::CHECK_TRANSACTION_STATE {
                continue;
            }
            let h = CheckTransactionStateRequestHeader::read_ext_fields(&sr.request.ext_fields).unwrap();
            let id = h.transaction_id.clone().or_else(|| h.msg_id.clone()).unwrap_or_default();
            let state = if id == "TX-C" { TxState::Commit } else { TxState::Rollback };
            let _ = producer.invoke_oneway(&sr.addr, end_after_check(TX_GROUP, &h, state), T).await;
            s2.lock().push((sr.addr.clone(), id));
        }
    });
    seen
}

fn mqadmin(args: Vec<String>) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqadmin")).args(&args).output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acting_master_delivers_delayed_and_timer_messages_and_hands_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ns_port = free_port_block(0, 0);
    let ns_conf = d.join("namesrv.conf");
    std::fs::write(
        &ns_conf,
        format!("listenPort={ns_port}\nkvConfigPath={}\nsupportActingMaster=true\n", d.join("kv.json").display()),
    )
    .unwrap();
    let _ns = ChildGuard::spawn(NAMESRV, &["-c", ns_conf.to_str().unwrap()], d, "namesrv");
    let ns = format!("127.0.0.1:{ns_port}");

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
                "listenPort={cport}\nbindAddress=127.0.0.1\nnamesrvAddr={ns}\nbrokerConfigPaths={}\n",
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
    for m in [a_m, b_m] {
        common::wait_async("each master has its slave", Duration::from_secs(60), || async {
            info(&client, m, "haConnectedSlaves").await.as_deref() == Some("1")
        })
        .await;
    }
    for m in [a_m, b_m] {
        create_topic(&client, &format!("127.0.0.1:{m}"), TOPIC).await;
        create_topic(&client, &format!("127.0.0.1:{m}"), &format!("%RETRY%{GROUP}")).await;
        // The consumer group exists once it pulled (copied to the slaves by their metadata sync).
        pull(&client, &format!("127.0.0.1:{m}"), GROUP, TOPIC, 0, 0, "*", 0).await;
    }

    // Before the kill: delayed (level 3 = 8 s) and timer (9 s) messages for broker-a, and one plain
    // message a consumer will send back.
    let a = format!("127.0.0.1:{a_m}");
    let sent_at = rmqc::util::now_millis();
    let mut expected = Vec::new();
    for i in 0..5 {
        let body = format!("delay-{i}");
        let r = send(&client, &a, TOPIC, 0, body.as_bytes(), &[("DELAY", "3")]).await;
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        expected.push((body, sent_at + DELAY_MS));
    }
    for i in 0..3 {
        let body = format!("timer-{i}");
        let at = (sent_at + TIMER_MS).to_string();
        let r = send(&client, &a, TOPIC, 0, body.as_bytes(), &[("TIMER_DELIVER_MS", at.as_str())]).await;
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        expected.push((body, sent_at + TIMER_MS));
    }
    let r = send(&client, &a, TOPIC, 0, b"retry-me", &[]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // Two transactions whose local state is still unknown (checked only after 6 s, after the kill).
    let (producer, inbox) = RemotingClient::with_inbox(ClientConfig::default(), 64);
    let checks = answer_checks(producer.clone(), inbox);
    for m in [a_m, b_m] {
        let hb = producer_heartbeat("127.0.0.1@act-tx", TX_GROUP);
        let r = producer.invoke(&format!("127.0.0.1:{m}"), hb, T).await.unwrap();
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    for (key, body) in [("TX-C", "tx-commit"), ("TX-R", "tx-rollback")] {
        let req = half_send_request(TX_GROUP, TOPIC, 0, key, &[], bytes::Bytes::from_static(body.as_bytes()));
        let r = producer.invoke(&a, req, T).await.unwrap();
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    // broker-a's slave has it all (replicated commitlog and rebuilt queues).
    common::wait_async("broker-a's slave caught up", Duration::from_secs(20), || async {
        let m = info(&client, a_m, "commitLogMaxOffset").await;
        m.is_some() && m == info(&client, a_s, "commitLogMaxOffset").await
    })
    .await;
    common::wait_async("broker-a's slave knows the consumer group", Duration::from_secs(20), || async {
        let req = RemotingCommand::request(request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG);
        let r = client.invoke(&format!("127.0.0.1:{a_s}"), req, T).await.unwrap();
        String::from_utf8_lossy(&r.body).contains(GROUP)
    })
    .await;
    assert_eq!(info(&client, a_s, "brokerActive").await.as_deref(), Some("false"), "a slave is not active yet");

    // SIGKILL container 1: broker-a's master is gone.
    c1.kill9();
    let t_kill = Instant::now();
    common::wait_async("broker-a's slave becomes acting master", Duration::from_secs(10), || async {
        info(&client, a_s, "brokerActive").await.as_deref() == Some("true")
    })
    .await;
    eprintln!("acting master after {:.2} s", t_kill.elapsed().as_secs_f64());
    let nsa = ns.clone();
    let listing =
        tokio::task::spawn_blocking(move || mqadmin(vec!["clusterList".into(), "-n".into(), nsa])).await.unwrap();
    assert!(
        listing.lines().any(|l| l.contains(&format!("127.0.0.1:{a_s}")) && l.contains("ACTING_MASTER")),
        "clusterList marks the acting master:\n{listing}"
    );

    // The route names broker-a's slave as id 0 without WRITE.
    let r = client.invoke(&ns, rmqc::client::route::route_request(TOPIC), T).await.unwrap();
    let route: rmqc::protocol::body::TopicRouteData = rmqc::json::from_slice_lenient(&r.body).unwrap();
    let bd = route.broker_datas.iter().find(|b| b.broker_name == "broker-a").unwrap();
    assert_eq!(bd.broker_addrs.get(&0).map(String::as_str), Some(format!("127.0.0.1:{a_s}").as_str()));
    let qd = route.queue_datas.iter().find(|q| q.broker_name == "broker-a").unwrap();
    assert_eq!(qd.perm & 2, 0, "broker-a is not writable while acting: {qd:?}");

    // Delayed and timer messages of broker-a arrive on broker-b's master, on time, once each.
    let want: Vec<&str> = expected.iter().map(|(b, _)| b.as_str()).collect();
    common::wait_async(
        "delayed and timer messages delivered through the acting master",
        Duration::from_secs(30),
        || async {
            let got = bodies(&read_queue(&client, b_m, TOPIC).await);
            want.iter().all(|w| got.iter().any(|g| g == w))
        },
    )
    .await;
    let escaped = read_queue(&client, b_m, TOPIC).await;
    for (body, due) in &expected {
        let m: Vec<&MessageExt> = escaped.iter().filter(|m| m.body.as_ref() == body.as_bytes()).collect();
        assert_eq!(m.len(), 1, "{body} delivered once");
        let at = m[0].store_timestamp;
        assert!(at >= due - 1_000 && at <= due + LATE_MS, "{body} due at {due} delivered at {at} ({} ms)", at - due);
        assert_eq!(m[0].property("REAL_TOPIC"), None, "{body} is a plain message of its topic");
    }

    // The unknown transactions: the acting master hands them to broker-b's master, which checks
    // them back with the producer and commits or rolls back as it answers.
    let b = format!("127.0.0.1:{b_m}");
    common::wait_async("broker-b's master checks both transactions", Duration::from_secs(20), || async {
        let c = checks.lock();
        ["TX-C", "TX-R"].iter().all(|k| c.iter().any(|(addr, id)| addr == &b && id == k))
    })
    .await;
    eprintln!("checks while acting: {:?}", checks.lock());
    assert!(!checks.lock().iter().any(|(addr, _)| addr == &a), "the dead master checked nothing");
    common::wait_async("the committed transaction reaches consumers", Duration::from_secs(10), || async {
        bodies(&read_queue(&client, b_m, TOPIC).await).iter().any(|b| b == "tx-commit")
    })
    .await;

    // A consumer of broker-a's acting master sends a message back (RECONSUME_LATER): accepted, and
    // redelivered in the retry topic (escaped to broker-b, delay level 1 there).
    let on_slave = read_queue(&client, a_s, TOPIC).await;
    let retry_me = on_slave.iter().find(|m| m.body.as_ref() == b"retry-me").expect("the plain message on the slave");
    let h = ConsumerSendMsgBackRequestHeader {
        offset: retry_me.commit_log_offset,
        group: GROUP.into(),
        delay_level: 1,
        origin_msg_id: Some(retry_me.msg_id.clone()),
        origin_topic: Some(TOPIC.into()),
        unit_mode: Some(false),
        max_reconsume_times: Some(16),
    };
    let req = RemotingCommand::request_with_header(request::CONSUMER_SEND_MSG_BACK, &h);
    let r = client.invoke(&format!("127.0.0.1:{a_s}"), req, T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "send-back accepted by the acting master: {:?}", r.remark);
    let retry_topic = format!("%RETRY%{GROUP}");
    common::wait_async("the sent-back message is redelivered", Duration::from_secs(15), || async {
        read_queue(&client, b_m, &retry_topic)
            .await
            .iter()
            .any(|m| m.body.as_ref() == b"retry-me" && m.reconsume_times == 1)
    })
    .await;

    // Container 1 comes back: broker-a's master takes its duties back.
    drop(c1);
    let c1 = ChildGuard::spawn(CONTAINER, &["-c", confs[0].to_str().unwrap()], d, "c1-restart");
    common::wait_async("broker-a's master is back and active", Duration::from_secs(60), || async {
        info(&client, a_m, "brokerActive").await.as_deref() == Some("true")
    })
    .await;
    common::wait_async("broker-a's slave stands down", Duration::from_secs(10), || async {
        info(&client, a_s, "brokerActive").await.as_deref() == Some("false")
    })
    .await;
    // The producer is known to the returned master again: it would be asked about the old halves
    // if the master had not taken the acting slave's progress.
    let hb = producer_heartbeat("127.0.0.1@act-tx", TX_GROUP);
    let r = producer.invoke(&a, hb, T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // Sentinels behind the old messages in the same delay queue and later in the timer wheel:
    // once they are delivered, anything the master still owed from before would have been too.
    let now = rmqc::util::now_millis();
    let r = send(&client, &a, TOPIC, 0, b"sentinel-delay", &[("DELAY", "1")]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = send(&client, &a, TOPIC, 0, b"sentinel-timer", &[("TIMER_DELIVER_MS", (now + 2_000).to_string().as_str())])
        .await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = send(&client, &a, TOPIC, 0, b"sentinel-delay3", &[("DELAY", "3")]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    common::wait_async("the sentinels are delivered by the returned master", Duration::from_secs(20), || async {
        let got = bodies(&read_queue(&client, a_m, TOPIC).await);
        ["sentinel-delay", "sentinel-timer", "sentinel-delay3"].iter().all(|s| got.iter().any(|g| g == s))
    })
    .await;
    eprintln!("checks in all: {:?}", checks.lock());
    assert!(
        checks.lock().iter().all(|(addr, _)| addr != &a),
        "the returned master re-checked escaped halves: {:?}",
        checks.lock()
    );
    let on_master = bodies(&read_queue(&client, a_m, TOPIC).await);
    for (body, _) in &expected {
        assert!(!on_master.contains(body), "{body} was delivered a second time by the returned master: {on_master:?}");
    }
    let on_b = bodies(&read_queue(&client, b_m, TOPIC).await);
    for (body, _) in &expected {
        assert_eq!(on_b.iter().filter(|b| *b == body).count(), 1, "{body} once on broker-b: {on_b:?}");
    }
    assert_eq!(on_b.iter().filter(|b| *b == "tx-commit").count(), 1, "committed once: {on_b:?}");
    assert!(!on_b.iter().any(|b| b == "tx-rollback") && !on_master.iter().any(|b| b.starts_with("tx-")), "{on_b:?}");
    drop(c1);
}
