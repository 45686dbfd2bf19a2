//! The metadata processors over real TCP on 127.0.0.1: heartbeats and consumer-membership
//! notifications, offsets (and their files), topic admin, the topics.json `.bak` fallback,
//! rebalance locks, and the shapes of the admin bodies.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use rmqc::broker::config::BrokerConfig;
use rmqc::broker::meta::{BrokerMeta, MetaOptions, StoreView};
use rmqc::broker::processor::MetaProcessor;
use rmqc::protocol::body::TopicConfig;
use rmqc::protocol::codes::{request as rq, response as rs};
use rmqc::remoting::codec::decode_frame;
use rmqc::remoting::{
    ChannelEventListener, ProcessorTable, RemotingClient, RemotingCommand, RemotingServer, ServerConfig, SubServer,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(5);

/// An in-memory store: queue → (min, max) offsets; messages are stored at time 1_000 + offset.
#[derive(Default)]
struct FakeStore {
    queues: Mutex<HashMap<(String, i32), (i64, i64)>>,
    deleted: Mutex<Vec<String>>,
}

impl FakeStore {
    fn set(&self, topic: &str, q: i32, min: i64, max: i64) {
        self.queues.lock().insert((topic.to_string(), q), (min, max));
    }
    fn get(&self, topic: &str, q: i32) -> (i64, i64) {
        self.queues.lock().get(&(topic.to_string(), q)).copied().unwrap_or((0, 0))
    }
}

impl StoreView for FakeStore {
    fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.get(topic, queue_id).1
    }
    fn min_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.get(topic, queue_id).0
    }
    fn store_time_of(&self, topic: &str, queue_id: i32, offset: i64) -> Option<i64> {
        let (min, max) = self.get(topic, queue_id);
        (offset >= min && offset < max).then_some(1_000 + offset)
    }
    fn check_in_mem_by_consume_offset(&self, topic: &str, queue_id: i32, offset: i64, batch: i32) -> bool {
        let (min, max) = self.get(topic, queue_id);
        offset >= min && offset + batch as i64 <= max
    }
    fn delete_topics(&self, topics: &[String]) {
        let mut q = self.queues.lock();
        q.retain(|(t, _), _| !topics.contains(t));
        self.deleted.lock().extend(topics.iter().cloned());
    }
}

struct Broker {
    meta: Arc<BrokerMeta>,
    store: Arc<FakeStore>,
    server: RemotingServer,
    port: Option<SubServer>,
    addr: String,
    client: RemotingClient,
}

fn config() -> BrokerConfig {
    BrokerConfig { broker_name: "broker-a".into(), broker_cluster_name: "DefaultCluster".into(), ..Default::default() }
}

async fn start(dir: &Path, lock_max_live_ms: i64) -> Broker {
    let store = Arc::new(FakeStore::default());
    let meta = BrokerMeta::load_with_options(dir, config(), store.clone(), MetaOptions { lock_max_live_ms }).unwrap();
    let server = RemotingServer::new(ServerConfig { bind_address: "127.0.0.1".parse().unwrap(), ..Default::default() });
    let mut table = ProcessorTable::new();
    table.register_all(MetaProcessor::CODES, Arc::new(MetaProcessor::new(meta.clone())));
    let listener: Arc<dyn ChannelEventListener> = meta.clone();
    let port = server.bind(0, table, Some(listener)).await.unwrap();
    let addr = format!("127.0.0.1:{}", port.port());
    Broker { meta, store, server, port: Some(port), addr, client: RemotingClient::default() }
}

impl Broker {
    async fn call(&self, cmd: RemotingCommand) -> RemotingCommand {
        self.client.invoke(&self.addr, cmd, T).await.unwrap()
    }
    async fn stop(mut self) {
        self.client.shutdown().await;
        if let Some(p) = self.port.take() {
            p.close().await;
        }
        self.server.shutdown().await;
        self.meta.shutdown().await;
    }
}

fn req(code: i32, ext: &[(&str, &str)]) -> RemotingCommand {
    let mut r = RemotingCommand::request(code);
    for (k, v) in ext {
        r = r.with_ext(k, *v);
    }
    r
}

/// A raw client connection that can also receive the broker's own requests.
struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    inbox: Vec<RemotingCommand>,
    opaque: i32,
}

impl Raw {
    async fn connect(addr: &str) -> Raw {
        Raw { stream: TcpStream::connect(addr).await.unwrap(), buf: BytesMut::new(), inbox: Vec::new(), opaque: 100 }
    }
    async fn read_frame(&mut self, deadline: Instant) -> Option<RemotingCommand> {
        loop {
            if let Some(cmd) = decode_frame(&mut self.buf, 16 << 20).unwrap() {
                return Some(cmd);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => panic!("read: {e}"),
            }
        }
    }
    async fn call(&mut self, mut cmd: RemotingCommand) -> RemotingCommand {
        self.opaque += 1;
        cmd.opaque = self.opaque;
        let mut out = BytesMut::new();
        cmd.encode_frame(&mut out);
        self.stream.write_all(&out).await.unwrap();
        let deadline = Instant::now() + T;
        loop {
            let f = self.read_frame(deadline).await.expect("response in time");
            if f.is_response() && f.opaque == cmd.opaque {
                return f;
            }
            self.inbox.push(f);
        }
    }
    /// Waits for the broker to send a request with this code; returns it.
    async fn expect_request(&mut self, code: i32) -> RemotingCommand {
        let deadline = Instant::now() + T;
        loop {
            if let Some(i) = self.inbox.iter().position(|c| c.code == code && !c.is_response()) {
                return self.inbox.remove(i);
            }
            let f = self.read_frame(deadline).await.unwrap_or_else(|| panic!("no request {code} within {T:?}"));
            self.inbox.push(f);
        }
    }
    fn count(&self, code: i32) -> usize {
        self.inbox.iter().filter(|c| c.code == code).count()
    }
}

async fn wait_until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const JAVA_HEARTBEAT: &str = r#"{"clientID":"127.0.0.1@1001#1","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"cg","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919,2598920],"expressionType":"TAG","subString":"TagA || TagB","subVersion":1700000000000,"tagsSet":["TagA","TagB"],"topic":"TopicTest"}],"unitMode":false}],"heartbeatFingerprint":0,"producerDataSet":[{"groupName":"pg"},{"groupName":"CLIENT_INNER_PRODUCER"}],"withoutSub":false}"#;
const SPARSE_HEARTBEAT: &str = r#"{"clientID":"127.0.0.1@1002#1","consumerDataSet":[{"consumeType":"CONSUME_PASSIVELY","groupName":"cg","messageModel":"CLUSTERING","subscriptionDataSet":[{"subString":"TagA","subVersion":1700000000001,"topic":"TopicTest"}]}]}"#;

fn heartbeat(body: &str) -> RemotingCommand {
    RemotingCommand::request(rq::HEART_BEAT).with_body(body.as_bytes().to_vec())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsumerIdList {
    consumer_id_list: Vec<String>,
}

async fn consumer_ids(b: &Broker, group: &str) -> Result<Vec<String>, (i32, String)> {
    let r = b.call(req(rq::GET_CONSUMER_LIST_BY_GROUP, &[("consumerGroup", group)])).await;
    if r.code != rs::SUCCESS {
        return Err((r.code, r.remark.unwrap_or_default()));
    }
    let mut ids = serde_json::from_slice::<ConsumerIdList>(&r.body).unwrap().consumer_id_list;
    ids.sort();
    Ok(ids)
}

#[tokio::test]
async fn heartbeats_membership_and_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), 60_000).await;

    let mut c1 = Raw::connect(&b.addr).await;
    let r = c1.call(heartbeat(JAVA_HEARTBEAT)).await;
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    assert_eq!(r.ext("IS_SUPPORT_HEART_BEAT_V2"), Some("true"));
    assert_eq!(r.ext("IS_SUB_CHANGE"), Some("true"));
    // c1's own registration changes the group: it is told too.
    let n = c1.expect_request(rq::NOTIFY_CONSUMER_IDS_CHANGED).await;
    assert_eq!(n.ext("consumerGroup"), Some("cg"));
    assert!(n.is_oneway());

    let mut c2 = Raw::connect(&b.addr).await;
    let r = c2.call(heartbeat(SPARSE_HEARTBEAT)).await;
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    c1.expect_request(rq::NOTIFY_CONSUMER_IDS_CHANGED).await;
    // A repeated heartbeat changes nothing and notifies nobody.
    let before = c1.count(rq::NOTIFY_CONSUMER_IDS_CHANGED);
    assert_eq!(c1.call(heartbeat(JAVA_HEARTBEAT)).await.code, rs::SUCCESS);

    assert_eq!(consumer_ids(&b, "cg").await.unwrap(), ["127.0.0.1@1001#1", "127.0.0.1@1002#1"]);
    // The group and its retry topic were created; the sparse subscription got its tag codes.
    assert!(b.meta.subscriptions.contains("cg"));
    let retry = b.meta.topics.select("%RETRY%cg").unwrap();
    assert_eq!((retry.read_queue_nums, retry.write_queue_nums, retry.perm), (1, 1, 6));
    let sub = b.meta.consumers.find_subscription_data("cg", "TopicTest").unwrap();
    assert_eq!(sub.sub_version, 1700000000001, "the newer subscription version wins");
    assert_eq!(sub.code_set.iter().copied().collect::<Vec<_>>(), [2598919]);
    assert_eq!(sub.expression_type, "TAG");

    // Connection lists.
    let r = b.call(req(rq::GET_CONSUMER_CONNECTION_LIST, &[("consumerGroup", "cg")])).await;
    assert_eq!(r.code, rs::SUCCESS);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["connectionSet"].as_array().unwrap().len(), 2);
    assert_eq!(v["consumeType"], "CONSUME_PASSIVELY");
    assert_eq!(v["messageModel"], "CLUSTERING");
    assert_eq!(v["subscriptionTable"]["TopicTest"]["subString"], "TagA");
    assert_eq!(v["connectionSet"][0]["language"], "RUST");
    let r = b.call(req(rq::GET_CONSUMER_CONNECTION_LIST, &[("consumerGroup", "nobody")])).await;
    assert_eq!(r.code, rs::CONSUMER_NOT_ONLINE);
    assert_eq!(r.remark.as_deref(), Some("the consumer group[nobody] not online"));
    let r = b.call(req(rq::GET_PRODUCER_CONNECTION_LIST, &[("producerGroup", "pg")])).await;
    assert_eq!(r.code, rs::SUCCESS);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["connectionSet"][0]["clientId"], "127.0.0.1@1001#1");
    let r = b.call(req(rq::GET_PRODUCER_CONNECTION_LIST, &[("producerGroup", "nope")])).await;
    assert_eq!((r.code, r.remark.as_deref()), (rs::SYSTEM_ERROR, Some("the producer group[nope] not exist")));

    // c2 goes away: it disappears and c1 is told.
    assert_eq!(c1.count(rq::NOTIFY_CONSUMER_IDS_CHANGED), before);
    drop(c2);
    c1.expect_request(rq::NOTIFY_CONSUMER_IDS_CHANGED).await;
    wait_until("c2 unregistered", async || consumer_ids(&b, "cg").await.unwrap() == ["127.0.0.1@1001#1"]).await;

    // UNREGISTER_CLIENT of the last member: the group is gone, with Apache's answer.
    let r = c1
        .call(req(
            rq::UNREGISTER_CLIENT,
            &[("clientID", "127.0.0.1@1001#1"), ("consumerGroup", "cg"), ("producerGroup", "pg")],
        ))
        .await;
    assert_eq!(r.code, rs::SUCCESS);
    assert_eq!(consumer_ids(&b, "cg").await, Err((rs::SYSTEM_ERROR, "no consumer for this group, cg".to_string())));
    assert!(b.meta.producers.group_connections("pg").is_none());
    // A heartbeat body that is not JSON is refused without registering anything.
    let r = c1.call(heartbeat("{not json")).await;
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    assert!(b.meta.consumers.group_info("cg").is_none());
    // Missing required header field.
    let r = c1.call(req(rq::UNREGISTER_CLIENT, &[])).await;
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    assert!(r.remark.unwrap().contains("clientID"));
    b.stop().await;
}

#[tokio::test]
async fn expired_consumers_are_dropped_and_others_told() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), 60_000).await;
    let mut c1 = Raw::connect(&b.addr).await;
    let mut c2 = Raw::connect(&b.addr).await;
    c1.call(heartbeat(JAVA_HEARTBEAT)).await;
    c2.call(heartbeat(SPARSE_HEARTBEAT)).await;
    c1.expect_request(rq::NOTIFY_CONSUMER_IDS_CHANGED).await;
    c1.expect_request(rq::NOTIFY_CONSUMER_IDS_CHANGED).await;
    // c1 heartbeats again "later"; a scan 121 s after the first heartbeats drops only c2.
    let now = rmqc::util::now_millis();
    assert!(b.meta.consumers.scan_expired(now).is_empty());
    let later = now + 121_000;
    // Refresh c1 as if it had heartbeated at `later`.
    let info = b.meta.consumers.find_channel("cg", "127.0.0.1@1001#1").unwrap();
    let mut fresh = info.clone();
    fresh.last_update = later;
    b.meta.consumers.register_consumer(
        "cg",
        fresh,
        "CONSUME_PASSIVELY",
        "CLUSTERING",
        "CONSUME_FROM_LAST_OFFSET",
        &[],
        true,
        false,
    );
    let dropped = b.meta.consumers.scan_expired(later);
    assert_eq!(dropped, [("cg".to_string(), "127.0.0.1@1002#1".to_string())]);
    c1.expect_request(rq::NOTIFY_CONSUMER_IDS_CHANGED).await;
    assert_eq!(consumer_ids(&b, "cg").await.unwrap(), ["127.0.0.1@1001#1"]);
    // The expired client's connection is closed by the broker.
    assert!(c2.read_frame(Instant::now() + T).await.is_none_or(|f| f.code == rq::NOTIFY_CONSUMER_IDS_CHANGED));
    b.stop().await;
}

#[tokio::test]
async fn consumer_offsets_commit_query_persist() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), 60_000).await;
    let upd = |q: &str, off: &str| {
        req(
            rq::UPDATE_CONSUMER_OFFSET,
            &[("consumerGroup", "og"), ("topic", "OT"), ("queueId", q), ("commitOffset", off)],
        )
    };
    let r = b.call(upd("0", "5")).await;
    assert_eq!((r.code, r.remark.as_deref()), (rs::SUBSCRIPTION_GROUP_NOT_EXIST, Some("Group og not exist!")));
    let r = b.call(req(rq::GET_SUBSCRIPTIONGROUP_CONFIG, &[("group", "og")])).await;
    assert_eq!(r.code, rs::SUCCESS, "auto-created");
    let g: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((g["groupName"].as_str(), g["retryMaxTimes"].as_i64()), (Some("og"), Some(16)));
    let r = b.call(upd("0", "5")).await;
    assert_eq!((r.code, r.remark.as_deref()), (rs::TOPIC_NOT_EXIST, Some("Topic OT not exist!")));
    let r = b.call(create_topic("OT", 4, 6)).await;
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    assert_eq!(b.call(upd("0", "5")).await.code, rs::SUCCESS);
    assert_eq!(b.call(upd("3", "42")).await.code, rs::SUCCESS);
    let r = b
        .call(req(rq::UPDATE_CONSUMER_OFFSET, &[("consumerGroup", "og"), ("topic", "OT"), ("commitOffset", "1")]))
        .await;
    assert_eq!((r.code, r.remark.as_deref()), (rs::INVALID_PARAMETER, Some("QueueId is null, topic is OT")));

    let query = |q: &str, zero: Option<&str>| {
        let mut r = req(rq::QUERY_CONSUMER_OFFSET, &[("consumerGroup", "og"), ("topic", "OT"), ("queueId", q)]);
        if let Some(z) = zero {
            r = r.with_ext("setZeroIfNotFound", z);
        }
        r
    };
    let r = b.call(query("3", None)).await;
    assert_eq!((r.code, r.ext("offset")), (rs::SUCCESS, Some("42")));
    // Unknown offset, queue starting at 0 with its first message still stored: 0.
    b.store.set("OT", 1, 0, 10);
    let r = b.call(query("1", None)).await;
    assert_eq!((r.code, r.ext("offset")), (rs::SUCCESS, Some("0")));
    let r = b.call(query("1", Some("false"))).await;
    assert_eq!(r.code, rs::QUERY_NOT_FOUND);
    assert_eq!(r.remark.as_deref(), Some("Not found, do not set to zero, maybe this group boot first"));
    // Queue whose head was deleted: not found.
    b.store.set("OT", 2, 5, 10);
    let r = b.call(query("2", None)).await;
    assert_eq!(r.code, rs::QUERY_NOT_FOUND);

    // GET_ALL_CONSUMER_OFFSET uses fastjson's bare integer keys.
    let r = b.call(req(rq::GET_ALL_CONSUMER_OFFSET, &[])).await;
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(text.contains(r#""OT@og":{0:5,3:42}"#), "{text}");
    let v: serde_json::Value = rmqc::json::from_slice_lenient(text.as_bytes()).unwrap();
    assert_eq!(v["offsetTable"]["OT@og"]["3"], 42);

    // Consume stats: MessageQueue object keys, as fastjson writes them.
    b.store.set("OT", 0, 0, 9);
    let r = b.call(req(rq::GET_CONSUME_STATS, &[("consumerGroup", "og"), ("topic", "OT")])).await;
    assert_eq!(r.code, rs::SUCCESS);
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(text.starts_with(r#"{"consumeTps":0.0,"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"OT"}:{"brokerOffset":9,"consumerOffset":5,"lastTimestamp":1004,"pullOffset":5}"#), "{text}");
    assert_eq!(text.matches("\"topic\":\"OT\"}:").count(), 4);
    let r = b.call(req(rq::GET_TOPIC_STATS_INFO, &[("topic", "OT")])).await;
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(text.contains(r#"{"brokerName":"broker-a","queueId":2,"topic":"OT"}:{"lastUpdateTimestamp":1009,"maxOffset":10,"minOffset":5}"#), "{text}");
    assert!(text.ends_with(r#""topicPutTps":0.0}"#), "{text}");
    let r = b.call(req(rq::GET_TOPIC_STATS_INFO, &[("topic", "Nope")])).await;
    assert_eq!((r.code, r.remark.as_deref()), (rs::TOPIC_NOT_EXIST, Some("topic[Nope] not exist")));

    // Persist and reload.
    b.meta.persist_all().unwrap();
    b.stop().await;
    let b = start(dir.path(), 60_000).await;
    let r = b.call(query("3", None)).await;
    assert_eq!(r.ext("offset"), Some("42"));
    b.stop().await;
}

#[tokio::test]
async fn java_written_offset_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    let java = "{\n\t\"dataVersion\":{\n\t\t\"counter\":2,\n\t\t\"stateVersion\":0,\n\t\t\"timestamp\":1700000000000\n\t},\n\t\"groupTopicMap\":{\n\t\t\"cg\":[\"TopicTest\"]\n\t},\n\t\"offsetTable\":{\n\t\t\"TopicTest@cg\":{0:250,1:249,2:251,3:250\n\t\t}\n\t}\n}";
    std::fs::write(dir.path().join("config/consumerOffset.json"), java).unwrap();
    let b = start(dir.path(), 60_000).await;
    let r = b
        .call(req(rq::QUERY_CONSUMER_OFFSET, &[("consumerGroup", "cg"), ("topic", "TopicTest"), ("queueId", "2")]))
        .await;
    assert_eq!((r.code, r.ext("offset")), (rs::SUCCESS, Some("251")));
    b.stop().await;
}

fn create_topic(topic: &str, queues: i32, perm: i32) -> RemotingCommand {
    let q = queues.to_string();
    let p = perm.to_string();
    req(
        rq::UPDATE_AND_CREATE_TOPIC,
        &[
            ("topic", topic),
            ("defaultTopic", "TBW102"),
            ("readQueueNums", &q),
            ("writeQueueNums", &q),
            ("perm", &p),
            ("topicFilterType", "SINGLE_TAG"),
            ("topicSysFlag", "0"),
            ("order", "false"),
        ],
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AllTopics {
    data_version: rmqc::protocol::body::DataVersion,
    mapping_data_version: rmqc::protocol::body::DataVersion,
    topic_config_table: BTreeMap<String, TopicConfig>,
    topic_queue_mapping_detail_map: BTreeMap<String, serde_json::Value>,
}

async fn all_topics(b: &Broker) -> (AllTopics, i32) {
    let r = b.call(req(rq::GET_ALL_TOPIC_CONFIG, &[])).await;
    assert_eq!(r.code, rs::SUCCESS);
    let total = r.ext("totalTopicNum").unwrap().parse().unwrap();
    (serde_json::from_slice(&r.body).unwrap(), total)
}

#[tokio::test]
async fn topic_admin_create_update_delete_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), 60_000).await;
    let mut changes = b.meta.topics.subscribe_changes();
    let (before, total) = all_topics(&b).await;
    assert_eq!(total as usize, before.topic_config_table.len());
    assert_eq!(before.topic_config_table["TBW102"].perm, 7);
    assert!(before.topic_queue_mapping_detail_map.is_empty());
    let _ = before.mapping_data_version;

    let r = b.call(create_topic("AdminT", 4, 6)).await;
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    assert!(changes.has_changed().unwrap(), "registration is triggered");
    changes.borrow_and_update();
    let r = b.call(req(rq::GET_TOPIC_CONFIG, &[("topic", "AdminT")])).await;
    let tc: TopicConfig = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((tc.read_queue_nums, tc.write_queue_nums, tc.perm), (4, 4, 6));
    // Update.
    assert_eq!(b.call(create_topic("AdminT", 8, 4)).await.code, rs::SUCCESS);
    let (after, _) = all_topics(&b).await;
    assert_eq!(after.topic_config_table["AdminT"].write_queue_nums, 8);
    assert_eq!(after.topic_config_table["AdminT"].perm, 4);
    assert!(after.data_version.counter >= before.data_version.counter + 2);
    // Same config again: success, nothing changes.
    changes.borrow_and_update();
    assert_eq!(b.call(create_topic("AdminT", 8, 4)).await.code, rs::SUCCESS);
    assert!(!changes.has_changed().unwrap());

    // Invalid names and system topics: INVALID_PARAMETER, nothing changes.
    let r = b.call(create_topic("bad topic!", 4, 6)).await;
    assert_eq!(r.code, rs::INVALID_PARAMETER);
    assert_eq!(
        r.remark.as_deref(),
        Some("The specified topic: bad topic!, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$")
    );
    let r = b.call(create_topic(&"x".repeat(128), 4, 6)).await;
    assert_eq!(r.code, rs::INVALID_PARAMETER);
    for sys in ["SCHEDULE_TOPIC_XXXX", "TBW102", "broker-a", "DefaultCluster", "rmq_sys_anything"] {
        let r = b.call(create_topic(sys, 4, 6)).await;
        assert_eq!(r.code, rs::INVALID_PARAMETER, "{sys}");
        assert_eq!(r.remark, Some(format!("The topic[{sys}] is conflict with system topic.")));
    }
    let r = b.call(create_topic("AttrT", 4, 6).with_ext("attributes", "+no.such.key=1")).await;
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    let r = b.call(create_topic("AttrT", 4, 6).with_ext("attributes", "+message.type=MIXED")).await;
    assert_eq!((r.code, r.remark.as_deref()), (rs::INVALID_PARAMETER, Some("MIXED message type is not supported.")));
    let r = b.call(create_topic("AttrT", 4, 6).with_ext("attributes", "+message.type=FIFO")).await;
    assert_eq!(r.code, rs::SUCCESS);
    assert_eq!(b.meta.topics.select("AttrT").unwrap().attributes["message.type"], "FIFO");
    let (now, _) = all_topics(&b).await;
    assert!(!now.topic_config_table.contains_key("bad topic!"));
    assert_eq!(now.topic_config_table.len(), after.topic_config_table.len() + 1);

    // Topic list.
    let body =
        r#"{"topicConfigList":[{"topicName":"L1","readQueueNums":2,"writeQueueNums":2,"perm":6},{"topicName":"L2"}]}"#;
    let r =
        b.call(RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC_LIST).with_body(body.as_bytes().to_vec())).await;
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    assert_eq!(b.meta.topics.select("L1").unwrap().write_queue_nums, 2);
    assert_eq!(b.meta.topics.select("L2").unwrap().write_queue_nums, 16);
    let body = r#"{"topicConfigList":[{"topicName":"L3"},{"topicName":"bad.name"}]}"#;
    let r =
        b.call(RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC_LIST).with_body(body.as_bytes().to_vec())).await;
    assert_eq!(r.code, rs::INVALID_PARAMETER);
    assert!(!b.meta.topics.contains("L3"), "all or nothing");

    // Delete: config, offsets and store queues go.
    b.meta.offsets.commit_offset("t", "dg", "AdminT", 0, 3);
    b.store.set("AdminT", 0, 0, 3);
    let r = b.call(req(rq::DELETE_TOPIC_IN_BROKER, &[("topic", "AdminT")])).await;
    assert_eq!(r.code, rs::SUCCESS);
    assert!(!b.meta.topics.contains("AdminT"));
    assert_eq!(b.meta.offsets.query_offset("dg", "AdminT", 0), -1);
    assert_eq!(b.store.deleted.lock().clone(), ["AdminT"]);
    let r = b.call(req(rq::GET_TOPIC_CONFIG, &[("topic", "AdminT")])).await;
    assert_eq!((r.code, r.remark.as_deref()), (rs::TOPIC_NOT_EXIST, Some("No topic in this broker. topic: AdminT")));
    let r = b.call(req(rq::DELETE_TOPIC_IN_BROKER, &[("topic", "SCHEDULE_TOPIC_XXXX")])).await;
    assert_eq!(r.code, rs::INVALID_PARAMETER);
    assert!(b.meta.topics.contains("SCHEDULE_TOPIC_XXXX"));

    // Subscription group admin.
    let body = r#"{"groupName":"sg1","retryMaxTimes":3,"consumeBroadcastEnable":false}"#;
    let r = b
        .call(RemotingCommand::request(rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(body.as_bytes().to_vec()))
        .await;
    assert_eq!(r.code, rs::SUCCESS);
    let r = b.call(req(rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, &[])).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["subscriptionGroupTable"]["sg1"]["retryMaxTimes"], 3);
    assert_eq!(v["subscriptionGroupTable"]["sg1"]["retryQueueNums"], 1);
    assert!(v["forbiddenTable"].is_object() && v["dataVersion"]["counter"].is_i64());
    assert_eq!(r.ext("totalGroupNum").unwrap(), v["subscriptionGroupTable"].as_object().unwrap().len().to_string());
    let body = r#"{"groupName":"bad group"}"#;
    let r = b
        .call(RemotingCommand::request(rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(body.as_bytes().to_vec()))
        .await;
    assert_eq!(r.code, rs::INVALID_PARAMETER);
    b.meta.offsets.commit_offset("t", "sg1", "L1", 0, 3);
    let r = b.call(req(rq::DELETE_SUBSCRIPTIONGROUP, &[("groupName", "sg1"), ("cleanOffset", "true")])).await;
    assert_eq!(r.code, rs::SUCCESS);
    assert!(!b.meta.subscriptions.contains("sg1"));
    assert_eq!(b.meta.offsets.query_offset("sg1", "L1", 0), -1);
    b.stop().await;
}

#[tokio::test]
async fn topics_json_survives_truncation_via_bak() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), 60_000).await;
    assert_eq!(b.call(create_topic("First", 2, 6)).await.code, rs::SUCCESS);
    assert_eq!(b.call(create_topic("Second", 2, 6)).await.code, rs::SUCCESS);
    b.stop().await;
    let path = dir.path().join("config/topics.json");
    assert!(dir.path().join("config/topics.json.bak").exists());
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    let b = start(dir.path(), 60_000).await;
    assert!(b.meta.topics.contains("First"), "loaded from .bak");
    assert!(!b.meta.topics.contains("Second"), ".bak holds the previous content");
    assert_eq!(b.meta.topics.select("TBW102").unwrap().perm, 7, "system topics are still there");
    b.stop().await;
    // An empty main file also falls back.
    std::fs::write(&path, b"").unwrap();
    let b = start(dir.path(), 60_000).await;
    assert!(b.meta.topics.contains("First"));
    b.stop().await;
}

fn lock_body(client: &str, queues: &[i32]) -> Vec<u8> {
    let mqs: Vec<_> =
        queues.iter().map(|q| serde_json::json!({"brokerName":"broker-a","queueId":q,"topic":"LT"})).collect();
    serde_json::to_vec(&serde_json::json!({"clientId":client,"consumerGroup":"lg","mqSet":mqs,"onlyThisBroker":false}))
        .unwrap()
}

async fn lock(b: &Broker, client: &str, queues: &[i32]) -> Vec<i32> {
    let r = b.call(RemotingCommand::request(rq::LOCK_BATCH_MQ).with_body(lock_body(client, queues))).await;
    assert_eq!(r.code, rs::SUCCESS);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let mut qs: Vec<i32> =
        v["lockOKMQSet"].as_array().unwrap().iter().map(|m| m["queueId"].as_i64().unwrap() as i32).collect();
    qs.sort();
    qs
}

#[tokio::test]
async fn rebalance_locks() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), 400).await;
    assert_eq!(lock(&b, "c1", &[0, 1]).await, [0, 1]);
    assert_eq!(lock(&b, "c2", &[1, 2]).await, [2]);
    assert_eq!(lock(&b, "c1", &[0, 1, 2]).await, [0, 1], "renewal; q2 is c2's");
    let r = b.call(RemotingCommand::request(rq::UNLOCK_BATCH_MQ).with_body(lock_body("c1", &[1]))).await;
    assert_eq!(r.code, rs::SUCCESS);
    assert_eq!(lock(&b, "c2", &[1]).await, [1]);
    // Unlocking someone else's queue changes nothing.
    b.call(RemotingCommand::request(rq::UNLOCK_BATCH_MQ).with_body(lock_body("c1", &[2]))).await;
    assert_eq!(lock(&b, "c1", &[2]).await, Vec::<i32>::new());
    // Expiry: c1 stops renewing q0; c2 gets it once the lock is older than 400 ms.
    let start_t = Instant::now();
    b.meta.locks.try_lock_batch(
        "lg",
        &[rmqc::broker::meta::MessageQueue::new("LT", "broker-a", 0)],
        "c1",
        rmqc::util::now_millis(),
    );
    wait_until("q0 expires", async || lock(&b, "c2", &[0]).await == [0]).await;
    assert!(start_t.elapsed() >= Duration::from_millis(400), "not before the lock expired");
    let r = b.call(RemotingCommand::request(rq::LOCK_BATCH_MQ).with_body(b"garbage".to_vec())).await;
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    b.stop().await;
}
