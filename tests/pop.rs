//! Issue 16, POP consumption over the real protocol against a real container process: every message
//! goes to exactly one of several concurrent poppers; an unacked message comes back after its
//! invisible time, an acked one never; CHANGE_MESSAGE_INVISIBLETIME postpones; acks and
//! invisible-time changes survive a container restart; an ordered pop holds its queue; and
//! SET_MESSAGE_REQUEST_MODE is what QUERY_ASSIGNMENT answers.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::rmq::{send, wait_max_offset, T};
use common::{port_open, run, text, wait_until, ChildGuard};
use rmqc::protocol::codes::{request, response};
use rmqc::protocol::header::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    PopMessageRequestHeader, PopMessageResponseHeader,
};
use rmqc::protocol::message::{decode_records, MessageExt};
use rmqc::remoting::{RemotingClient, RemotingCommand};

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");

/// A container with one broker; returns the process and the broker address.
fn start(dir: &Path, name: &str) -> (ChildGuard, String, std::path::PathBuf) {
    let b = common::start_one_broker(dir, name, "");
    (b.child, b.addr, b.conf)
}

async fn create_topic(client: &RemotingClient, addr: &str, topic: &str, queues: i32) {
    let req = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", queues.to_string())
        .with_ext("writeQueueNums", queues.to_string())
        .with_ext("perm", "6")
        .with_ext("topicFilterType", "SINGLE_TAG")
        .with_ext("topicSysFlag", "0")
        .with_ext("order", "false");
    let r = client.invoke(addr, req, T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

/// A popped message with what acks it.
#[derive(Debug, Clone)]
struct Popped {
    m: MessageExt,
    extra: String,
    /// The topic to ack on (the retry topic for revived messages).
    ack_topic: String,
}

impl Popped {
    fn body(&self) -> String {
        String::from_utf8_lossy(&self.m.body).into_owned()
    }
}

#[allow(clippy::too_many_arguments)]
async fn pop(
    client: &RemotingClient,
    addr: &str,
    group: &str,
    topic: &str,
    queue_id: i32,
    max: i32,
    invisible_ms: i64,
    poll_ms: i64,
    order: bool,
) -> (i32, Vec<Popped>, Option<PopMessageResponseHeader>) {
    let h = PopMessageRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id,
        max_msg_nums: max,
        invisible_time: invisible_ms,
        poll_time: poll_ms,
        born_time: rmqc::util::now_millis(),
        init_mode: 0,
        exp_type: Some("TAG".into()),
        exp: Some("*".into()),
        order: Some(order),
        attempt_id: None,
    };
    let req = RemotingCommand::request_with_header(request::POP_MESSAGE, &h);
    let r = client.invoke(addr, req, T + Duration::from_millis(poll_ms as u64)).await.unwrap();
    if r.code != response::SUCCESS {
        return (r.code, Vec::new(), None);
    }
    let rh: PopMessageResponseHeader = r.decode_header().unwrap();
    let out = decode_records(&r.body, false)
        .into_iter()
        .map(|m| {
            let extra = rmqc::admin::pop::extra_info_of(&rh, &m, "pop-a");
            let flag = extra.split(' ').nth(4).unwrap().to_string();
            let ack_topic = rmqc::protocol::header::real_topic(&m.topic, group, &flag);
            Popped { m, extra, ack_topic }
        })
        .collect();
    (r.code, out, Some(rh))
}

async fn ack(client: &RemotingClient, addr: &str, group: &str, p: &Popped) -> RemotingCommand {
    let h = AckMessageRequestHeader {
        consumer_group: group.into(),
        topic: p.ack_topic.clone(),
        queue_id: p.m.queue_id,
        extra_info: p.extra.clone(),
        offset: p.m.queue_offset,
    };
    client.invoke(addr, RemotingCommand::request_with_header(request::ACK_MESSAGE, &h), T).await.unwrap()
}

async fn change_invisible(client: &RemotingClient, addr: &str, group: &str, p: &Popped, ms: i64) -> RemotingCommand {
    let h = ChangeInvisibleTimeRequestHeader {
        consumer_group: group.into(),
        topic: p.ack_topic.clone(),
        queue_id: p.m.queue_id,
        extra_info: p.extra.clone(),
        offset: p.m.queue_offset,
        invisible_time: ms,
    };
    client
        .invoke(addr, RemotingCommand::request_with_header(request::CHANGE_MESSAGE_INVISIBLETIME, &h), T)
        .await
        .unwrap()
}

/// Pops (long polls of `poll_ms`) until `want` returns true for a message or `within` passes;
/// returns every message seen, with when.
async fn pop_until(
    client: &RemotingClient,
    addr: &str,
    group: &str,
    topic: &str,
    invisible_ms: i64,
    within: Duration,
    want: impl Fn(&Popped) -> bool,
) -> Vec<(Instant, Popped)> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    for _ in 0..1000 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let poll = left.as_millis().min(1000) as i64;
        let (_, got, _) = pop(client, addr, group, topic, -1, 32, invisible_ms, poll, false).await;
        let hit = got.iter().any(&want);
        seen.extend(got.into_iter().map(|p| (Instant::now(), p)));
        if hit {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pop_delivers_every_message_to_exactly_one_of_several_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, addr, _) = start(dir.path(), "pop-a");
    let client = RemotingClient::default();
    create_topic(&client, &addr, "PopTopic", 4).await;
    const N: usize = 200;
    for i in 0..N {
        let r = send(&client, &addr, "PopTopic", (i % 4) as i32, format!("m{i}").as_bytes(), &[]).await;
        assert_eq!(r.code, 0, "{:?}", r.remark);
    }
    for q in 0..4 {
        wait_max_offset(&client, &addr, "PopTopic", q, (N / 4) as i64).await;
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, addr) = (client.clone(), addr.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut empty = 0;
            while Instant::now() < deadline && empty < 3 {
                let (_, batch, _) = pop(&client, &addr, "pop-g", "PopTopic", -1, 8, 60_000, 300, false).await;
                if batch.is_empty() {
                    empty += 1;
                    continue;
                }
                empty = 0;
                for p in batch {
                    assert_eq!(ack(&client, &addr, "pop-g", &p).await.code, 0);
                    got.push(p.body());
                }
            }
            got
        }));
    }
    let mut count: HashMap<String, usize> = HashMap::new();
    let mut per_consumer = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        per_consumer.push(got.len());
        for b in got {
            *count.entry(b).or_default() += 1;
        }
    }
    assert_eq!(count.len(), N, "every message delivered (per consumer: {per_consumer:?})");
    assert!(count.values().all(|c| *c == 1), "a message was delivered twice: {count:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_comes_back_acked_does_not_and_change_invisible_postpones() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, addr, _) = start(dir.path(), "pop-a");
    let client = RemotingClient::default();
    create_topic(&client, &addr, "ReviveTopic", 1).await;
    for b in ["A", "B", "C"] {
        assert_eq!(send(&client, &addr, "ReviveTopic", 0, b.as_bytes(), &[]).await.code, 0);
    }
    wait_max_offset(&client, &addr, "ReviveTopic", 0, 3).await;
    let (code, got, rh) = pop(&client, &addr, "g1", "ReviveTopic", -1, 32, 2_000, 1_000, false).await;
    assert_eq!(code, 0);
    let rh = rh.unwrap();
    assert_eq!(got.iter().map(Popped::body).collect::<Vec<_>>(), ["A", "B", "C"]);
    assert_eq!(rh.invisible_time, 2_000);
    assert!(rh.start_offset_info.as_deref().unwrap().starts_with("0 0 0"), "{rh:?}");
    assert_eq!(rh.msg_offset_info.as_deref(), Some("0 0 0,1,2"));
    let popped_at = Instant::now();
    // A acked, C postponed by 6 s, B left alone.
    assert_eq!(ack(&client, &addr, "g1", &got[0]).await.code, 0);
    let r = change_invisible(&client, &addr, "g1", &got[2], 6_000).await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let ch: ChangeInvisibleTimeResponseHeader = r.decode_header().unwrap();
    assert_eq!(ch.invisible_time, 6_000);
    let changed_at = Instant::now();
    // Nothing is visible at first.
    let (code, none, _) = pop(&client, &addr, "g1", "ReviveTopic", -1, 32, 2_000, 0, false).await;
    assert_eq!((code, none.len()), (response::POLLING_TIMEOUT, 0));
    // B comes back after its invisible time, under the original topic, with reconsumeTimes 1.
    let seen =
        pop_until(&client, &addr, "g1", "ReviveTopic", 10_000, Duration::from_secs(15), |p| p.body() == "B").await;
    let (at, b) = seen.iter().find(|(_, p)| p.body() == "B").expect("B redelivered").clone();
    assert!(at.duration_since(popped_at) >= Duration::from_millis(1_900), "B came back too early");
    assert_eq!(b.m.topic, "ReviveTopic");
    assert_eq!(b.m.reconsume_times, 1);
    assert!(b.m.property("POP_CK").is_some(), "a revived message carries its POP_CK");
    assert!(seen.iter().all(|(_, p)| p.body() != "A"), "acked A came back");
    assert_eq!(ack(&client, &addr, "g1", &b).await.code, 0, "B acked on the retry topic");
    // C comes back only after the changed invisible time.
    let seen =
        pop_until(&client, &addr, "g1", "ReviveTopic", 10_000, Duration::from_secs(15), |p| p.body() == "C").await;
    let (at, c) = seen.iter().find(|(_, p)| p.body() == "C").expect("C redelivered").clone();
    assert!(at.duration_since(changed_at) >= Duration::from_millis(5_900), "C came back before its new time");
    assert!(seen.iter().all(|(_, p)| p.body() != "A" && p.body() != "B"), "{seen:?}");
    assert_eq!(ack(&client, &addr, "g1", &c).await.code, 0);
    // Everything acked: nothing comes back.
    let seen = pop_until(&client, &addr, "g1", "ReviveTopic", 10_000, Duration::from_secs(4), |_| true).await;
    assert!(seen.is_empty(), "acked messages came back: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_and_change_invisible_survive_a_container_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, addr, conf) = start(dir.path(), "pop-a");
    let client = RemotingClient::default();
    create_topic(&client, &addr, "RestartTopic", 1).await;
    for b in ["A", "B", "C"] {
        assert_eq!(send(&client, &addr, "RestartTopic", 0, b.as_bytes(), &[]).await.code, 0);
    }
    wait_max_offset(&client, &addr, "RestartTopic", 0, 3).await;
    let (_, got, _) = pop(&client, &addr, "g2", "RestartTopic", -1, 32, 3_000, 1_000, false).await;
    assert_eq!(got.len(), 3);
    let popped_at = Instant::now();
    assert_eq!(ack(&client, &addr, "g2", &got[0]).await.code, 0);
    assert_eq!(change_invisible(&client, &addr, "g2", &got[2], 60_000).await.code, 0);
    // Stop the container process and start it again on the same files.
    assert!(c.terminate().success());
    drop(c);
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    wait_until("the port is free", Duration::from_secs(10), || !port_open(port));
    let _c2 = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], dir.path(), "pop-a-2");
    wait_until("the broker listens again", Duration::from_secs(30), || port_open(port));
    // B (neither acked nor postponed) comes back; A (acked) and C (postponed by 60 s) do not.
    let seen =
        pop_until(&client, &addr, "g2", "RestartTopic", 30_000, Duration::from_secs(20), |p| p.body() == "B").await;
    let (at, b) = seen.iter().find(|(_, p)| p.body() == "B").expect("B redelivered after the restart").clone();
    assert!(at.duration_since(popped_at) >= Duration::from_millis(2_900));
    assert_eq!(ack(&client, &addr, "g2", &b).await.code, 0);
    let more = pop_until(&client, &addr, "g2", "RestartTopic", 30_000, Duration::from_secs(5), |_| true).await;
    let bodies: Vec<String> = seen.iter().chain(&more).map(|(_, p)| p.body()).collect();
    assert_eq!(bodies, ["B"], "only B comes back after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_pop_holds_the_queue_until_acked() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, addr, _) = start(dir.path(), "pop-a");
    let client = RemotingClient::default();
    create_topic(&client, &addr, "OrderTopic", 1).await;
    for i in 0..4 {
        assert_eq!(send(&client, &addr, "OrderTopic", 0, format!("o{i}").as_bytes(), &[]).await.code, 0);
    }
    wait_max_offset(&client, &addr, "OrderTopic", 0, 4).await;
    let (code, first, rh) = pop(&client, &addr, "og", "OrderTopic", 0, 2, 20_000, 0, true).await;
    assert_eq!(code, 0);
    let rh = rh.unwrap();
    assert_eq!(rh.revive_qid, 999);
    assert!(rh.order_count_info.as_deref().unwrap().contains("0 0 0"), "{rh:?}");
    assert_eq!(first.iter().map(Popped::body).collect::<Vec<_>>(), ["o0", "o1"]);
    // Another consumer finds the queue held (a long poll that ends empty).
    let (code, none, _) = pop(&client, &addr, "og", "OrderTopic", 0, 2, 20_000, 300, true).await;
    assert_eq!((code, none.len()), (response::POLLING_TIMEOUT, 0));
    // A held pop is woken by the ack that releases the queue.
    let waiter = {
        let (client, addr) = (client.clone(), addr.clone());
        tokio::spawn(async move { pop(&client, &addr, "og", "OrderTopic", 0, 2, 20_000, 10_000, true).await })
    };
    common::wait_async("POLLING_INFO counts the held pop", Duration::from_secs(5), || async {
        let req = RemotingCommand::request(request::POLLING_INFO)
            .with_ext("consumerGroup", "og")
            .with_ext("topic", "OrderTopic")
            .with_ext("queueId", "0");
        let r = client.invoke(&addr, req, T).await.unwrap();
        r.code == 0 && r.ext("pollingNum") == Some("1")
    })
    .await;
    let started = Instant::now();
    for p in &first {
        let r = ack(&client, &addr, "og", p).await;
        assert_eq!(r.code, 0, "{:?}", r.remark);
    }
    let (code, next, _) = waiter.await.unwrap();
    assert_eq!(code, 0);
    assert!(started.elapsed() < Duration::from_secs(8), "the held pop was not woken by the ack");
    assert_eq!(next.iter().map(Popped::body).collect::<Vec<_>>(), ["o2", "o3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_message_request_mode_is_what_query_assignment_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, addr, _) = start(dir.path(), "pop-a");
    let client = RemotingClient::default();
    create_topic(&client, &addr, "ModeTopic", 2).await;
    let query = || async {
        let body = serde_json::json!({
            "topic": "ModeTopic", "consumerGroup": "mg", "clientId": "c1",
            "strategyName": "AVG", "messageModel": "CLUSTERING"
        });
        let req = RemotingCommand::request(request::QUERY_ASSIGNMENT).with_body(serde_json::to_vec(&body).unwrap());
        let r = client.invoke(&addr, req, T).await.unwrap();
        assert_eq!(r.code, 0, "{:?}", r.remark);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let mut out: Vec<(i64, String)> = v["messageQueueAssignments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["messageQueue"]["queueId"].as_i64().unwrap(), a["mode"].as_str().unwrap().to_string()))
            .collect();
        out.sort();
        out
    };
    assert_eq!(query().await, [(0, "PULL".to_string()), (1, "PULL".to_string())]);
    // mqadmin setConsumeMode (Apache's command) switches the group to POP: one assignment, every queue.
    let o = run(MQADMIN, &["setConsumeMode", "-b", &addr, "-t", "ModeTopic", "-g", "mg", "-m", "POP"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("consume mode[POP]"), "{}", text(&o));
    assert_eq!(query().await, [(-1, "POP".to_string())]);
    let file = dir.path().join("store/pop-a/config/messageRequestMode.json");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("\"ModeTopic\"") && saved.contains("\"POP\""), "{saved}");
    // And back with the raw request.
    let body = serde_json::json!({"topic": "ModeTopic", "consumerGroup": "mg", "mode": "PULL", "popShareQueueNum": 0});
    let req = RemotingCommand::request(request::SET_MESSAGE_REQUEST_MODE).with_body(serde_json::to_vec(&body).unwrap());
    assert_eq!(client.invoke(&addr, req, T).await.unwrap().code, 0);
    assert_eq!(query().await, [(0, "PULL".to_string()), (1, "PULL".to_string())]);
    // mqadmin popMessage / ackMessage for manual testing.
    assert_eq!(send(&client, &addr, "ModeTopic", 0, b"manual", &[]).await.code, 0);
    wait_max_offset(&client, &addr, "ModeTopic", 0, 1).await;
    let o = run(MQADMIN, &["popMessage", "-b", &addr, "-t", "ModeTopic", "-g", "mg", "-p", "2000"]);
    assert!(o.status.success(), "{}", text(&o));
    let line = text(&o);
    assert!(line.contains("body=manual"), "{line}");
    let extra = line.split("extraInfo=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let o =
        run(MQADMIN, &["ackMessage", "-b", &addr, "-t", "ModeTopic", "-g", "mg", "-q", "0", "-o", "0", "-e", &extra]);
    assert!(o.status.success(), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_ack_prevents_redelivery_and_notification_tells_of_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, addr, _) = start(dir.path(), "pop-a");
    let client = RemotingClient::default();
    create_topic(&client, &addr, "BatchTopic", 1).await;
    let notify = |poll: i64| {
        let (client, addr) = (client.clone(), addr.clone());
        async move {
            let req = RemotingCommand::request(request::NOTIFICATION)
                .with_ext("consumerGroup", "bg")
                .with_ext("topic", "BatchTopic")
                .with_ext("queueId", "-1")
                .with_ext("pollTime", poll.to_string())
                .with_ext("bornTime", rmqc::util::now_millis().to_string());
            let r = client.invoke(&addr, req, T + Duration::from_millis(poll as u64)).await.unwrap();
            assert_eq!(r.code, 0, "{:?}", r.remark);
            r.ext("hasMsg") == Some("true")
        }
    };
    assert!(!notify(0).await, "nothing to pop yet");
    // A held notification is answered when a message arrives.
    let held = tokio::spawn(notify(10_000));
    common::wait_async("POLLING_INFO counts the held notification", Duration::from_secs(5), || async {
        let req = RemotingCommand::request(request::POLLING_INFO)
            .with_ext("consumerGroup", "bg")
            .with_ext("topic", "BatchTopic")
            .with_ext("queueId", "-1");
        client.invoke(&addr, req, T).await.unwrap().ext("pollingNum") == Some("1")
    })
    .await;
    for b in ["x", "y", "z"] {
        assert_eq!(send(&client, &addr, "BatchTopic", 0, b.as_bytes(), &[]).await.code, 0);
    }
    assert!(held.await.unwrap(), "the held notification saw the message");
    wait_max_offset(&client, &addr, "BatchTopic", 0, 3).await;
    let (_, got, rh) = pop(&client, &addr, "bg", "BatchTopic", -1, 32, 2_000, 1_000, false).await;
    assert_eq!(got.len(), 3);
    let rh = rh.unwrap();
    // One batch ack of all three (the bitset of offset - startOffset, as Java's BitSet in base64).
    let body = serde_json::json!({
        "brokerName": "pop-a",
        "acks": [{"c": "bg", "t": "BatchTopic", "r": "0", "so": 0, "q": 0, "rq": rh.revive_qid,
                  "pt": rh.pop_time, "it": 2_000, "b": rmqc::protocol::pop::BatchAck::encode_bits(&[0, 1, 2])}]
    });
    let req = RemotingCommand::request(request::BATCH_ACK_MESSAGE).with_body(serde_json::to_vec(&body).unwrap());
    let r = client.invoke(&addr, req, T).await.unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    // Past the invisible time (and a revive scan) nothing comes back.
    let seen = pop_until(&client, &addr, "bg", "BatchTopic", 10_000, Duration::from_secs(5), |_| true).await;
    assert!(seen.is_empty(), "batch-acked messages came back: {seen:?}");
    assert!(!notify(0).await);
}
