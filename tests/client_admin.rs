//! Issue 16 (admin requests that reach clients, dashboard views, request-reply, trace): a raw
//! protocol client that answers the broker's own requests (running info, consumer status,
//! consume directly, reply pushes) stands in for a Java client; `mqadmin` drives the commands.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;

use common::rmq::{create_topic, pull, send, wait_max_offset, T};
use common::{run, text};
use rmqc::client::send::{send_header, send_request};
use rmqc::protocol::codes::{request, response};
use rmqc::protocol::message::{decode_records, encode_properties, find_property};
use rmqc::remoting::{RemotingClient, RemotingCodec, RemotingCommand};

const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");
const CLIENT_ID: &str = "127.0.0.1@fake#1";

/// A client connection that also answers what the broker asks it, like a Java client's
/// `ClientRemotingProcessor`, and remembers what it was asked.
struct FakeClient {
    tx: mpsc::Sender<RemotingCommand>,
    pending: Arc<Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>>,
    asked: Arc<Mutex<Vec<RemotingCommand>>>,
    opaque: AtomicI32,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn client_answer(req: &RemotingCommand) -> RemotingCommand {
    let mq = r#"{"brokerName":"ca","queueId":0,"topic":"CaTopic"}"#;
    match req.code {
        request::GET_CONSUMER_RUNNING_INFO => RemotingCommand::success(req).with_body(format!(
            r#"{{"mqTable":{{{mq}:{{"commitOffset":3,"droped":false}}}},"properties":{{"PROP_CLIENT_VERSION":"V5_3_3","PROP_CONSUME_TYPE":"CONSUME_PASSIVELY"}},"statusTable":{{"CaTopic":{{"consumeFailedMsgs":0,"consumeOKTPS":1.0,"pullTPS":2.0}}}},"subscriptionSet":[{{"subString":"*","topic":"CaTopic"}}]}}"#
        )),
        request::GET_CONSUMER_STATUS_FROM_CLIENT => RemotingCommand::success(req)
            .with_body(format!(r#"{{"consumerTable":{{}},"messageQueueTable":{{{mq}:3}}}}"#)),
        request::CONSUME_MESSAGE_DIRECTLY => {
            let msgs = decode_records(&req.body, true);
            let remark = msgs.first().map(|m| String::from_utf8_lossy(&m.body).into_owned()).unwrap_or_default();
            let body = serde_json::json!({"autoCommit": true, "consumeResult": "CR_SUCCESS", "order": false,
                                          "remark": remark, "spentTimeMills": 1});
            RemotingCommand::success(req).with_body(body.to_string())
        }
        _ => RemotingCommand::success(req),
    }
}

impl FakeClient {
    async fn connect(addr: &str) -> FakeClient {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sink, mut frames) = Framed::new(stream, RemotingCodec::default()).split();
        let (tx, mut rx) = mpsc::channel::<RemotingCommand>(64);
        let pending: Arc<Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>> = Default::default();
        let asked: Arc<Mutex<Vec<RemotingCommand>>> = Default::default();
        let writer = tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                if sink.send(cmd).await.is_err() {
                    break;
                }
            }
        });
        let (p, a, answers) = (pending.clone(), asked.clone(), tx.clone());
        let reader = tokio::spawn(async move {
            while let Some(Ok(cmd)) = frames.next().await {
                if cmd.is_response() {
                    if let Some(w) = p.lock().remove(&cmd.opaque) {
                        let _ = w.send(cmd);
                    }
                    continue;
                }
                let resp = client_answer(&cmd);
                a.lock().push(cmd.clone());
                if !cmd.is_oneway() && answers.send(resp).await.is_err() {
                    break;
                }
            }
        });
        FakeClient { tx, pending, asked, opaque: AtomicI32::new(1), tasks: vec![writer, reader] }
    }

    async fn invoke(&self, mut cmd: RemotingCommand) -> RemotingCommand {
        cmd.opaque = self.opaque.fetch_add(1, Ordering::Relaxed);
        let (w, r) = oneshot::channel();
        self.pending.lock().insert(cmd.opaque, w);
        self.tx.send(cmd).await.unwrap();
        tokio::time::timeout(T, r).await.expect("answered in time").unwrap()
    }

    async fn heartbeat(&self) {
        let body = serde_json::json!({
            "clientID": CLIENT_ID,
            "producerDataSet": [{"groupName": "ca-pg"}],
            "consumerDataSet": [{"groupName": "ca-group", "consumeType": "CONSUME_PASSIVELY",
                "messageModel": "CLUSTERING", "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
                "subscriptionDataSet": [{"topic": "CaTopic", "subString": "*", "subVersion": 1}], "unitMode": false}],
        });
        let r = self.invoke(RemotingCommand::request(request::HEART_BEAT).with_body(body.to_string())).await;
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }

    fn asked(&self, code: i32) -> Vec<RemotingCommand> {
        self.asked.lock().iter().filter(|c| c.code == code).cloned().collect()
    }
}

impl Drop for FakeClient {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn raw(client: &RemotingClient, addr: &str, req: RemotingCommand) -> RemotingCommand {
    client.invoke(addr, req, Duration::from_secs(15)).await.unwrap()
}

fn mqadmin_ok(args: &[&str]) -> String {
    let out = run(MQADMIN, args);
    assert!(out.status.success(), "mqadmin {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requests_reach_clients_and_views_answer_as_apache() {
    let dir = tempfile::tempdir().unwrap();
    let common::OneBroker { child: _c, addr, nsaddr, .. } =
        common::start_one_broker(dir.path(), "ca", "traceTopicEnable=true\n");
    let client = RemotingClient::default();
    create_topic(&client, &addr, "CaTopic").await;
    common::wait_async("the topics are routed", Duration::from_secs(20), || async {
        text(&run(MQADMIN, &["topicRoute", "-n", &nsaddr, "-t", "CaTopic"])).contains("\"ca\"")
            && text(&run(MQADMIN, &["topicRoute", "-n", &nsaddr, "-t", "RMQ_SYS_TRACE_TOPIC"])).contains("\"ca\"")
    })
    .await;

    // Three messages, consumed and committed by ca-group.
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = send(&client, &addr, "CaTopic", 0, format!("body{i}").as_bytes(), &[("KEYS", "k")]).await;
        assert_eq!(r.code, response::SUCCESS);
        ids.push(r.ext("msgId").unwrap().to_string());
    }
    wait_max_offset(&client, &addr, "CaTopic", 0, 3).await;
    let r = pull(&client, &addr, "ca-group", "CaTopic", 0, 0, "*", 0).await;
    assert_eq!(decode_records(&r.body, true).len(), 3);
    let commit = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", "ca-group")
        .with_ext("topic", "CaTopic")
        .with_ext("queueId", "0")
        .with_ext("commitOffset", "2");
    assert_eq!(raw(&client, &addr, commit).await.code, response::SUCCESS);

    let fake = FakeClient::connect(&addr).await;
    fake.heartbeat().await;

    // GET_CONSUMER_RUNNING_INFO goes to the client and its answer comes back verbatim.
    let req = RemotingCommand::request(request::GET_CONSUMER_RUNNING_INFO)
        .with_ext("consumerGroup", "ca-group")
        .with_ext("clientId", CLIENT_ID)
        .with_ext("jstackEnable", "false");
    let r = raw(&client, &addr, req).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert!(String::from_utf8_lossy(&r.body).contains("\"commitOffset\":3"));
    let asked = fake.asked(request::GET_CONSUMER_RUNNING_INFO);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].ext("clientId"), Some(CLIENT_ID));
    let req = RemotingCommand::request(request::GET_CONSUMER_RUNNING_INFO)
        .with_ext("consumerGroup", "ca-group")
        .with_ext("clientId", "nobody");
    let r = raw(&client, &addr, req).await;
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert_eq!(r.remark.as_deref(), Some("The Consumer <ca-group> <nobody> not online"));

    // mqadmin consumerStatus / consumerConnection.
    let out = mqadmin_ok(&["consumerStatus", "-n", &nsaddr, "-g", "ca-group"]);
    assert!(out.contains(CLIENT_ID) && out.contains("PROP_CLIENT_VERSION") && out.contains("commitOffset=3"), "{out}");
    let out = mqadmin_ok(&["consumerConnection", "-n", &nsaddr, "-g", "ca-group"]);
    assert!(out.contains(CLIENT_ID) && out.contains("CaTopic") && out.contains("CLUSTERING"), "{out}");

    // INVOKE_BROKER_TO_GET_CONSUMER_STATUS: every client's offsets, keyed by client id.
    let req = RemotingCommand::request(request::INVOKE_BROKER_TO_GET_CONSUMER_STATUS)
        .with_ext("topic", "CaTopic")
        .with_ext("group", "ca-group");
    let r = raw(&client, &addr, req).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let v = rmqc::json::object_keys::parse_slice(&r.body).unwrap();
    let table = v["consumerTable"][CLIENT_ID].as_object().unwrap();
    assert_eq!(table.values().next().and_then(|o| o.as_i64()), Some(3), "{v}");
    assert_eq!(fake.asked(request::GET_CONSUMER_STATUS_FROM_CLIENT)[0].ext("group"), Some("ca-group"));
    let req = RemotingCommand::request(request::INVOKE_BROKER_TO_GET_CONSUMER_STATUS)
        .with_ext("topic", "CaTopic")
        .with_ext("group", "nobody-group");
    assert_eq!(raw(&client, &addr, req).await.code, response::SYSTEM_ERROR);

    // CONSUME_MESSAGE_DIRECTLY: the stored record goes to the client.
    let req = RemotingCommand::request(request::CONSUME_MESSAGE_DIRECTLY)
        .with_ext("consumerGroup", "ca-group")
        .with_ext("clientId", CLIENT_ID)
        .with_ext("msgId", ids[1].as_str())
        .with_ext("topic", "CaTopic");
    let r = raw(&client, &addr, req).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((v["consumeResult"].as_str(), v["remark"].as_str()), (Some("CR_SUCCESS"), Some("body1")));
    assert_eq!(fake.asked(request::CONSUME_MESSAGE_DIRECTLY)[0].ext("brokerName"), Some("ca"));

    // brokerConsumeStats: the group's queue with its lag.
    let out = mqadmin_ok(&["brokerConsumeStats", "-n", &nsaddr, "-b", &addr]);
    let row =
        out.lines().find(|l| l.starts_with("CaTopic") && l.contains("ca-group")).unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[3..6], ["0", "3", "2"], "{row}");
    assert!(out.contains("Diff Total: 1"), "{out}");

    // queryCq: three entries; a missing queue is refused as Apache does.
    let out = mqadmin_ok(&[
        "queryCq", "-n", &nsaddr, "-t", "CaTopic", "-q", "0", "-i", "0", "-c", "10", "-b", &addr, "-g", "ca-group",
    ]);
    assert_eq!(out.matches("physicOffset").count(), 3, "{out}");
    assert!(out.contains("max: 3, min: 0") && out.contains("Subscription data"), "{out}");
    let req = RemotingCommand::request(request::QUERY_CONSUME_QUEUE)
        .with_ext("topic", "CaTopic")
        .with_ext("queueId", "7")
        .with_ext("index", "0")
        .with_ext("count", "1");
    let r = raw(&client, &addr, req).await;
    assert_eq!((r.code, r.remark.as_deref()), (response::SYSTEM_ERROR, Some("7@CaTopic is not exist!")));

    // statsAll and VIEW_BROKER_STATS_DATA: three in, three out.
    let req = RemotingCommand::request(request::VIEW_BROKER_STATS_DATA)
        .with_ext("statsName", "TOPIC_PUT_NUMS")
        .with_ext("statsKey", "CaTopic");
    let r = raw(&client, &addr, req).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["statsMinute"]["sum"], 3, "{v}");
    assert_eq!(v["statsDay"]["sum"], 3, "{v}");
    let req = RemotingCommand::request(request::VIEW_BROKER_STATS_DATA)
        .with_ext("statsName", "TOPIC_PUT_NUMS")
        .with_ext("statsKey", "NoTopic");
    assert_eq!(raw(&client, &addr, req).await.code, response::SYSTEM_ERROR);
    let out = mqadmin_ok(&["statsAll", "-n", &nsaddr, "-t", "CaTopic"]);
    let row =
        out.lines().find(|l| l.starts_with("CaTopic") && l.contains("ca-group")).unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((cols[2], cols[5], cols[6]), ("1", "3", "3"), "{row}");

    // getConsumerConfig: the group's config on the master.
    let out = mqadmin_ok(&["getConsumerConfig", "-n", &nsaddr, "-g", "ca-group"]);
    assert!(out.contains(&format!("Master: {addr}")) && out.contains("groupName") && out.contains("ca-group"), "{out}");

    // cleanExpiredCQ / cleanUnusedTopic succeed and keep live data.
    assert!(mqadmin_ok(&["cleanExpiredCQ", "-n", &nsaddr, "-b", &addr]).contains("success"));
    assert!(mqadmin_ok(&["cleanUnusedTopic", "-n", &nsaddr, "-c", "TestCluster"]).contains("success"));
    let r = pull(&client, &addr, "ca-group", "CaTopic", 0, 0, "*", 0).await;
    assert_eq!(decode_records(&r.body, true).len(), 3);

    // Legacy reset (useServerSideResetOffset=false): the clients are told, nothing is committed.
    mqadmin_ok(&["updateBrokerConfig", "-n", &nsaddr, "-b", &addr, "-k", "useServerSideResetOffset", "-v", "false"]);
    let req = RemotingCommand::request(request::INVOKE_BROKER_TO_RESET_OFFSET)
        .with_ext("group", "ca-group")
        .with_ext("topic", "CaTopic")
        .with_ext("timestamp", "0")
        .with_ext("isForce", "true");
    let r = raw(&client, &addr, req).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let v = rmqc::json::object_keys::parse_slice(&r.body).unwrap();
    assert_eq!(v["offsetTable"].as_object().unwrap().values().next().and_then(|o| o.as_i64()), Some(0), "{v}");
    common::wait_async("the client is told to reset", Duration::from_secs(10), || async {
        !fake.asked(request::RESET_CONSUMER_CLIENT_OFFSET).is_empty()
    })
    .await;
    let told = fake.asked(request::RESET_CONSUMER_CLIENT_OFFSET).remove(0);
    assert_eq!(
        (told.ext("group"), told.ext("timestamp"), told.ext("isForce")),
        (Some("ca-group"), Some("0"), Some("true"))
    );
    assert!(String::from_utf8_lossy(&told.body).contains("\"topic\":\"CaTopic\"}:0"));
    let q = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", "ca-group")
        .with_ext("topic", "CaTopic")
        .with_ext("queueId", "0");
    assert_eq!(raw(&client, &addr, q).await.ext("offset"), Some("2"));

    // updateBrokerConfig maxMessageSize applies at runtime (and is persisted), as in Apache.
    let big = vec![b'x'; 2000];
    assert_eq!(send(&client, &addr, "CaTopic", 0, &big, &[]).await.code, response::SUCCESS);
    mqadmin_ok(&["updateBrokerConfig", "-n", &nsaddr, "-b", &addr, "-k", "maxMessageSize", "-v", "1000"]);
    let r = send(&client, &addr, "CaTopic", 0, &big, &[]).await;
    assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{:?}", r.remark);
    assert!(r.remark.unwrap().contains("limit 1000B"));
    assert_eq!(send(&client, &addr, "CaTopic", 0, &big[..900], &[]).await.code, response::SUCCESS);
    let out = mqadmin_ok(&["getBrokerConfig", "-n", &nsaddr, "-b", &addr]);
    assert!(out.lines().any(|l| l.starts_with("maxMessageSize") && l.trim_end().ends_with("1000")), "{out}");
    assert!(std::fs::read_to_string(dir.path().join("ca.conf")).unwrap().contains("maxMessageSize=1000"));
    let out = run(MQADMIN, &["updateBrokerConfig", "-n", &nsaddr, "-b", &addr, "-k", "maxMessageSize", "-v", "0"]);
    assert!(!out.status.success(), "{}", text(&out));

    drop(fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_round_trip_and_message_trace() {
    let dir = tempfile::tempdir().unwrap();
    let common::OneBroker { child: _c, addr, nsaddr, .. } =
        common::start_one_broker(dir.path(), "ca", "traceTopicEnable=true\n");
    let client = RemotingClient::default();
    create_topic(&client, &addr, "CaTopic").await;
    let requester = FakeClient::connect(&addr).await;
    requester.heartbeat().await;

    // The requester sends a request message; the broker stamps CLUSTER on it.
    let started = Instant::now();
    let ttl = 3000;
    let props = [("CORRELATION_ID", "corr-1"), ("REPLY_TO_CLIENT", CLIENT_ID), ("TTL", "3000")];
    let r = send(&client, &addr, "CaTopic", 0, b"question", &props).await;
    assert_eq!(r.code, response::SUCCESS);
    wait_max_offset(&client, &addr, "CaTopic", 0, 1).await;

    // The responder consumes it and replies to <CLUSTER>_REPLY_TOPIC with SEND_REPLY_MESSAGE_V2.
    let r = pull(&client, &addr, "responder", "CaTopic", 0, 0, "*", 0).await;
    let m = decode_records(&r.body, true).pop().unwrap();
    let cluster = m.property("CLUSTER").unwrap().to_string();
    assert_eq!(cluster, "TestCluster");
    let reply_props = encode_properties([
        ("CORRELATION_ID", m.property("CORRELATION_ID").unwrap()),
        ("REPLY_TO_CLIENT", m.property("REPLY_TO_CLIENT").unwrap()),
        ("TTL", m.property("TTL").unwrap()),
        ("MSG_TYPE", "reply"),
    ]);
    let topic = format!("{cluster}_REPLY_TOPIC");
    let h = send_header("responder-pg", &topic, -1, 1, Some(reply_props));
    let req = send_request(request::SEND_REPLY_MESSAGE_V2, &h, Bytes::from_static(b"answer"));
    let r = raw(&client, &addr, req).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // The requester got PUSH_REPLY_MESSAGE_TO_CLIENT with the reply, within the request's TTL.
    let pushed = requester.asked(request::PUSH_REPLY_MESSAGE_TO_CLIENT);
    assert_eq!(pushed.len(), 1);
    assert!(started.elapsed() < Duration::from_millis(ttl), "{:?}", started.elapsed());
    assert_eq!(&pushed[0].body[..], b"answer");
    let p = pushed[0].ext("properties").unwrap();
    assert_eq!(find_property(p, "CORRELATION_ID"), Some("corr-1"));
    assert!(find_property(p, "PUSH_REPLY_TIME").is_some());
    assert_eq!(pushed[0].ext("topic"), Some(topic.as_str()));
    assert!(pushed[0].ext("storeHost").is_some() && pushed[0].ext("bornHost").is_some());
    // The reply is stored too (storeReplyMessageEnable).
    wait_max_offset(&client, &addr, &topic, 0, 1).await;
    // SEND_REPLY_MESSAGE (named header) to a requester that is gone: stored, answered SUCCESS.
    let gone = encode_properties([("CORRELATION_ID", "c2"), ("REPLY_TO_CLIENT", "gone@1"), ("TTL", "3000")]);
    let h = send_header("responder-pg", &topic, 0, 1, Some(gone));
    let req = RemotingCommand::request_with_header(request::SEND_REPLY_MESSAGE, &h).with_body(Bytes::from_static(b"x"));
    assert_eq!(raw(&client, &addr, req).await.code, response::SUCCESS);
    wait_max_offset(&client, &addr, &topic, 0, 2).await;
    assert_eq!(requester.asked(request::PUSH_REPLY_MESSAGE_TO_CLIENT).len(), 1);

    // Message trace: a producer's and a consumer's trace messages, found by the traced id.
    let traced = "7F00000100002A9F0000000000000042";
    let pub_rec = format!(
        "Pub\u{1}1700000000000\u{1}DefaultRegion\u{1}trace-pg\u{1}CaTopic\u{1}{traced}\u{1}tagA\u{1}k1\u{1}{addr}\u{1}8\u{1}4\u{1}0\u{1}OFF\u{1}true\u{2}"
    );
    let sub_recs = format!(
        "SubBefore\u{1}1700000000100\u{1}DefaultRegion\u{1}trace-cg\u{1}req1\u{1}{traced}\u{1}0\u{1}k1\u{2}\
         SubAfter\u{1}req1\u{1}{traced}\u{1}6\u{1}true\u{1}k1\u{1}0\u{1}1700000000106\u{1}trace-cg\u{2}"
    );
    let keys = format!("{traced} k1");
    for body in [pub_rec, sub_recs] {
        let r = send(&client, &addr, "RMQ_SYS_TRACE_TOPIC", 0, body.as_bytes(), &[("KEYS", keys.as_str())]).await;
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    wait_max_offset(&client, &addr, "RMQ_SYS_TRACE_TOPIC", 0, 2).await;
    common::wait_async("the trace topic is routed", Duration::from_secs(20), || async {
        text(&run(MQADMIN, &["topicRoute", "-n", &nsaddr, "-t", "RMQ_SYS_TRACE_TOPIC"])).contains("\"ca\"")
    })
    .await;
    let mut out = String::new();
    common::wait_async("the trace records are indexed", Duration::from_secs(10), || {
        let o = run(MQADMIN, &["queryMsgTraceById", "-n", &nsaddr, "-i", traced]);
        out = text(&o);
        async move { o.status.success() }
    })
    .await;
    let kinds: Vec<&str> = out.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(kinds, ["Pub", "SubBefore", "SubAfter"], "{out}");
    assert!(out.contains("trace-pg") && out.contains("trace-cg"), "{out}");
    drop(requester);
}
