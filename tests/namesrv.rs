//! NameServer over real TCP: a NameServer on a shared RemotingServer (port 0), driven by RemotingClient
//! in JSON and ROCKETMQ binary headers; plus the real `mqnamesrv` binary.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use rmqc::json;
use rmqc::namesrv::{NameServer, NamesrvConfig};
use rmqc::protocol::body::{
    ClusterInfo, DataVersion, GetBrokerMemberGroupResponseBody, KvTable, QueueData, RegisterBrokerBody, TopicConfig,
    TopicList, TopicRouteData,
};
use rmqc::protocol::codes::{request, response};
use rmqc::protocol::header::*;
use rmqc::remoting::{ClientConfig, RemotingClient, RemotingCommand, RemotingServer, SerializeType, ServerConfig};

const T: Duration = Duration::from_secs(5);

struct Env {
    server: RemotingServer,
    ns: Option<NameServer>,
    addr: String,
    _dir: Option<tempfile::TempDir>,
}

impl Env {
    async fn start(dir: &Path, tweak: impl FnOnce(&mut NamesrvConfig)) -> Env {
        let server = RemotingServer::new(ServerConfig {
            bind_address: "127.0.0.1".parse().expect("ip"),
            ..ServerConfig::default()
        });
        let ns = start_ns(&server, dir, tweak).await;
        let addr = format!("127.0.0.1:{}", ns.port());
        Env { server, ns: Some(ns), addr, _dir: None }
    }
    async fn stop(mut self) {
        if let Some(ns) = self.ns.take() {
            ns.shutdown().await;
        }
        self.server.shutdown().await;
    }
}

async fn start_ns(server: &RemotingServer, dir: &Path, tweak: impl FnOnce(&mut NamesrvConfig)) -> NameServer {
    let mut cfg = NamesrvConfig {
        listen_port: 0,
        kv_config_path: dir.join("kvConfig.json").to_string_lossy().into(),
        config_store_path: dir.join("namesrv.properties").to_string_lossy().into(),
        ..NamesrvConfig::default()
    };
    tweak(&mut cfg);
    NameServer::start(cfg, server).await.expect("NameServer starts")
}

fn client(kind: SerializeType) -> RemotingClient {
    RemotingClient::new(ClientConfig { serialize_type: kind, ..ClientConfig::default() })
}

async fn call(c: &RemotingClient, addr: &str, cmd: RemotingCommand) -> RemotingCommand {
    c.invoke(addr, cmd, T).await.expect("response")
}

fn wrapper(topics: &[&str], counter: i64) -> RegisterBrokerBody {
    let mut b = RegisterBrokerBody::default();
    let w = &mut b.topic_config_serialize_wrapper;
    w.data_version = DataVersion { counter, state_version: 0, timestamp: 1_700_000_000_000 + counter };
    for t in topics {
        let mut tc = TopicConfig::new(*t);
        tc.read_queue_nums = 4;
        tc.write_queue_nums = 4;
        w.topic_config_table.insert(t.to_string(), tc);
    }
    b
}

struct Reg<'a> {
    name: &'a str,
    id: i64,
    addr: &'a str,
    topics: &'a [&'a str],
    counter: i64,
    compressed: bool,
    timeout: Option<i64>,
}

impl<'a> Reg<'a> {
    fn new(name: &'a str, id: i64, addr: &'a str, topics: &'a [&'a str]) -> Self {
        Reg { name, id, addr, topics, counter: 1, compressed: false, timeout: None }
    }
    fn cmd(&self) -> RemotingCommand {
        let body = wrapper(self.topics, self.counter).encode(self.compressed, rmqc::remoting::command::CURRENT_VERSION);
        let crc = (crc32fast::hash(&body) & 0x7FFF_FFFF) as i32;
        let h = RegisterBrokerRequestHeader {
            broker_name: self.name.into(),
            broker_addr: self.addr.into(),
            cluster_name: "DefaultCluster".into(),
            ha_server_addr: format!("{}-ha", self.addr),
            broker_id: self.id,
            heartbeat_timeout_millis: self.timeout,
            enable_acting_master: Some(false),
            compressed: Some(self.compressed),
            body_crc32: Some(crc),
        };
        RemotingCommand::request_with_header(request::REGISTER_BROKER, &h).with_body(body)
    }
}

fn route_cmd(topic: &str, version: i32, standard: Option<bool>) -> RemotingCommand {
    let mut c = RemotingCommand::request_with_header(
        request::GET_ROUTEINFO_BY_TOPIC,
        &GetRouteInfoRequestHeader { topic: topic.into(), accept_standard_json_only: standard },
    );
    c.version = version;
    c
}

fn text(c: &RemotingCommand) -> String {
    String::from_utf8(c.body.to_vec()).expect("UTF-8 body")
}

async fn cluster_info(c: &RemotingClient, addr: &str) -> ClusterInfo {
    let r = call(c, addr, RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO)).await;
    assert_eq!(r.code, response::SUCCESS);
    json::from_slice_lenient(&r.body).expect("ClusterInfo parses")
}

/// Polls `cond` until it holds or the deadline passes.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if cond().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn register_route_and_lists(kind: SerializeType) {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::start(dir.path(), |_| {}).await;
    let c = client(kind);
    let a = &env.addr;

    // Master with a plain body.
    let r = call(&c, a, Reg::new("broker-a", 0, "10.0.0.1:10911", &["TopicA", "TopicB"]).cmd()).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(r.serialize_type, kind, "the response uses the request's header serialization");
    assert_eq!(r.ext("masterAddr"), None);
    // Slave with a compressed body: it learns its master.
    let mut slave = Reg::new("broker-a", 1, "10.0.0.2:10911", &["TopicA", "TopicB"]);
    slave.compressed = true;
    let r = call(&c, a, slave.cmd()).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let h: RegisterBrokerResponseHeader = r.decode_header().expect("header");
    assert_eq!(h.master_addr.as_deref(), Some("10.0.0.1:10911"));
    assert_eq!(h.ha_server_addr.as_deref(), Some("10.0.0.1:10911-ha"));
    // A second group, compressed too.
    let mut b = Reg::new("broker-b", 0, "10.0.0.3:10911", &["TopicB", "TopicC"]);
    b.compressed = true;
    assert_eq!(call(&c, a, b.cmd()).await.code, response::SUCCESS);

    // Old client (version 399): fastjson's bare integer keys.
    let r = call(&c, a, route_cmd("TopicA", 399, None)).await;
    assert_eq!(r.code, response::SUCCESS);
    let body = text(&r);
    assert!(body.contains(r#""brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"}"#), "{body}");
    assert!(serde_json::from_str::<serde_json::Value>(&body).is_err(), "plain fastjson form is not strict JSON");
    let rd: TopicRouteData = json::from_str_lenient(&body).expect("lenient parse");
    assert_eq!(rd.broker_datas.len(), 1);
    assert_eq!(
        rd.queue_datas,
        vec![QueueData {
            broker_name: "broker-a".into(),
            perm: 6,
            read_queue_nums: 4,
            topic_sys_flag: 0,
            write_queue_nums: 4
        }]
    );
    // acceptStandardJsonOnly makes an old client get quoted keys.
    let r = call(&c, a, route_cmd("TopicA", 399, Some(true))).await;
    assert!(text(&r).contains(r#""brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"}"#));
    // New client (version 479): standard JSON.
    let r = call(&c, a, route_cmd("TopicB", 479, None)).await;
    let body = text(&r);
    assert!(body.contains(r#""brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"}"#), "{body}");
    let rd: TopicRouteData = serde_json::from_str(&body).expect("standard form is strict JSON");
    assert_eq!(rd.broker_datas.len(), 2);
    assert_eq!(rd.queue_datas.len(), 2);

    // Unknown topic.
    let r = call(&c, a, route_cmd("NoSuchTopic", 479, None)).await;
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    assert_eq!(
        r.remark.as_deref(),
        Some("No topic route info in name server for the topic: NoSuchTopic\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.")
    );

    // Cluster info: plain fastjson whatever the version.
    let r = call(&c, a, RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO)).await;
    assert!(text(&r).contains(r#""brokerAddrs":{0:"10.0.0.3:10911"}"#), "{}", text(&r));
    let ci: ClusterInfo = json::from_slice_lenient(&r.body).expect("ClusterInfo");
    assert_eq!(ci.cluster_addr_table["DefaultCluster"].iter().collect::<Vec<_>>(), vec!["broker-a", "broker-b"]);
    assert_eq!(ci.broker_addr_table["broker-a"].broker_addrs.len(), 2);

    // Topic lists.
    let r = call(&c, a, RemotingCommand::request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).await;
    let tl: TopicList = serde_json::from_slice(&r.body).expect("TopicList");
    assert_eq!(tl.topic_list.iter().collect::<Vec<_>>(), vec!["TopicA", "TopicB", "TopicC"]);
    let r = call(
        &c,
        a,
        RemotingCommand::request_with_header(
            request::GET_TOPICS_BY_CLUSTER,
            &GetTopicsByClusterRequestHeader { cluster: "DefaultCluster".into() },
        ),
    )
    .await;
    let tl: TopicList = serde_json::from_slice(&r.body).expect("TopicList");
    assert_eq!(tl.topic_list.len(), 3);
    let r = call(&c, a, RemotingCommand::request(request::GET_SYSTEM_TOPIC_LIST_FROM_NS)).await;
    let tl: TopicList = serde_json::from_slice(&r.body).expect("TopicList");
    assert!(tl.topic_list.contains("DefaultCluster") && tl.topic_list.contains("broker-b"));
    assert!(tl.broker_addr.is_some());

    // Member group.
    let r = call(
        &c,
        a,
        RemotingCommand::request_with_header(
            request::GET_BROKER_MEMBER_GROUP,
            &GetBrokerMemberGroupRequestHeader {
                cluster_name: "DefaultCluster".into(),
                broker_name: "broker-a".into(),
            },
        ),
    )
    .await;
    assert!(text(&r).contains(r#"{0:"10.0.0.1:10911",1:"10.0.0.2:10911"}"#));
    let g: GetBrokerMemberGroupResponseBody = json::from_slice_lenient(&r.body).expect("member group");
    assert_eq!(g.broker_member_group.broker_addrs.len(), 2);

    // Unregister the master: the slave keeps the group; then the slave: the group and its topics go.
    let unreg = |addr: &str, id: i64| {
        RemotingCommand::request_with_header(
            request::UNREGISTER_BROKER,
            &UnRegisterBrokerRequestHeader {
                broker_name: "broker-a".into(),
                broker_addr: addr.into(),
                cluster_name: "DefaultCluster".into(),
                broker_id: id,
            },
        )
    };
    assert_eq!(call(&c, a, unreg("10.0.0.1:10911", 0)).await.code, response::SUCCESS);
    let ci = cluster_info(&c, a).await;
    assert_eq!(ci.broker_addr_table["broker-a"].broker_addrs.keys().copied().collect::<Vec<_>>(), vec![1]);
    assert_eq!(call(&c, a, unreg("10.0.0.2:10911", 1)).await.code, response::SUCCESS);
    let ci = cluster_info(&c, a).await;
    assert!(!ci.broker_addr_table.contains_key("broker-a"));
    assert_eq!(call(&c, a, route_cmd("TopicA", 479, None)).await.code, response::TOPIC_NOT_EXIST);
    assert_eq!(call(&c, a, route_cmd("TopicB", 479, None)).await.code, response::SUCCESS);

    c.shutdown().await;
    env.stop().await;
}

#[tokio::test]
async fn register_route_cluster_info_json_headers() {
    register_route_and_lists(SerializeType::Json).await;
}

#[tokio::test]
async fn register_route_cluster_info_binary_headers() {
    register_route_and_lists(SerializeType::RocketMq).await;
}

#[tokio::test]
async fn crc_mismatch_single_topic_and_old_body_forms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::start(dir.path(), |_| {}).await;
    let c = client(SerializeType::Json);
    let a = &env.addr;
    for compressed in [false, true] {
        let mut reg = Reg::new("broker-x", 0, "10.0.1.1:10911", &["T1", "T2"]);
        reg.compressed = compressed;
        let mut cmd = reg.cmd();
        let good = cmd.ext("bodyCrc32").expect("crc").to_string();
        cmd.ext_fields.insert("bodyCrc32".into(), (good.parse::<i32>().expect("int") ^ 1).to_string());
        let r = call(&c, a, cmd).await;
        assert_eq!(r.code, response::SYSTEM_ERROR);
        assert_eq!(r.remark.as_deref(), Some("crc32 not match"));
    }
    assert!(cluster_info(&c, a).await.broker_addr_table.is_empty(), "refused registrations leave no trace");

    // A single-topic registration before the first full one is refused.
    let r = call(&c, a, Reg::new("broker-x", 0, "10.0.1.1:10911", &["T1"]).cmd()).await;
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert_eq!(r.remark.as_deref(), Some("register broker failed"));

    // A broker older than V3_0_11 sends a bare TopicConfigSerializeWrapper.
    let mut cmd = Reg::new("broker-old", 0, "10.0.1.2:10911", &[]).cmd();
    cmd.ext_fields.remove("bodyCrc32");
    cmd.version = 36;
    cmd.body = serde_json::to_vec(&wrapper(&["OldTopic", "OldTopic2"], 1).topic_config_serialize_wrapper)
        .expect("json")
        .into();
    assert_eq!(call(&c, a, cmd).await.code, response::SUCCESS);
    assert_eq!(call(&c, a, route_cmd("OldTopic", 479, None)).await.code, response::SUCCESS);

    // A malformed body is an error, not a panic.
    let mut cmd = Reg::new("broker-y", 0, "10.0.1.3:10911", &[]).cmd();
    cmd.ext_fields.remove("bodyCrc32");
    cmd.body = "{not json".into();
    assert_eq!(call(&c, a, cmd).await.code, response::SYSTEM_ERROR);
    // A missing required header field.
    let r = call(&c, a, RemotingCommand::request(request::REGISTER_BROKER)).await;
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r.remark.unwrap_or_default().contains("is null"));

    c.shutdown().await;
    env.stop().await;
}

#[tokio::test]
async fn query_data_version_and_heartbeat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::start(dir.path(), |_| {}).await;
    let c = client(SerializeType::RocketMq);
    let a = &env.addr;
    let qdv = |counter: i64| {
        let v = wrapper(&[], counter).topic_config_serialize_wrapper.data_version;
        RemotingCommand::request_with_header(
            request::QUERY_DATA_VERSION,
            &QueryDataVersionRequestHeader {
                broker_name: "broker-q".into(),
                broker_addr: "10.0.2.1:10911".into(),
                cluster_name: "DefaultCluster".into(),
                broker_id: 0,
            },
        )
        .with_body(serde_json::to_vec(&v).expect("json"))
    };
    // Not registered: changed, no body.
    let r = call(&c, a, qdv(1)).await;
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(r.ext("changed"), Some("true"));
    assert!(r.body.is_empty());
    let mut reg = Reg::new("broker-q", 0, "10.0.2.1:10911", &["Q1", "Q2"]);
    reg.counter = 7;
    assert_eq!(call(&c, a, reg.cmd()).await.code, response::SUCCESS);
    let r = call(&c, a, qdv(7)).await;
    assert_eq!(r.ext("changed"), Some("false"));
    let stored: DataVersion = serde_json::from_slice(&r.body).expect("DataVersion");
    assert_eq!(stored.counter, 7);
    let r = call(&c, a, qdv(8)).await;
    assert_eq!(r.ext("changed"), Some("true"));

    let hb = RemotingCommand::request_with_header(
        request::BROKER_HEARTBEAT,
        &BrokerHeartbeatRequestHeader {
            cluster_name: "DefaultCluster".into(),
            broker_addr: "10.0.2.1:10911".into(),
            broker_name: "broker-q".into(),
            ..Default::default()
        },
    );
    assert_eq!(call(&c, a, hb).await.code, response::SUCCESS);

    c.shutdown().await;
    env.stop().await;
}

#[tokio::test]
async fn kv_config_persists_across_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = Env::start(dir.path(), |_| {}).await;
    let c = client(SerializeType::Json);
    let put = |k: &str, v: &str| {
        RemotingCommand::request_with_header(
            request::PUT_KV_CONFIG,
            &PutKvConfigRequestHeader { namespace: "ORDER_TOPIC_CONFIG".into(), key: k.into(), value: v.into() },
        )
    };
    let get = |k: &str| {
        RemotingCommand::request_with_header(
            request::GET_KV_CONFIG,
            &GetKvConfigRequestHeader { namespace: "ORDER_TOPIC_CONFIG".into(), key: k.into() },
        )
    };
    let a = env.addr.clone();
    assert_eq!(call(&c, &a, put("OrderTopic", "broker-a:4")).await.code, response::SUCCESS);
    assert_eq!(call(&c, &a, put("Gone", "x")).await.code, response::SUCCESS);
    let r = call(&c, &a, get("OrderTopic")).await;
    assert_eq!(r.ext("value"), Some("broker-a:4"));
    let del = RemotingCommand::request_with_header(
        request::DELETE_KV_CONFIG,
        &DeleteKvConfigRequestHeader { namespace: "ORDER_TOPIC_CONFIG".into(), key: "Gone".into() },
    );
    assert_eq!(call(&c, &a, del).await.code, response::SUCCESS);
    let r = call(&c, &a, get("Gone")).await;
    assert_eq!(r.code, response::QUERY_NOT_FOUND);
    assert_eq!(r.remark.as_deref(), Some("No config item, Namespace: ORDER_TOPIC_CONFIG Key: Gone"));
    // A registering broker gets the order-topic KV list.
    let r = call(&c, &a, Reg::new("broker-a", 0, "10.0.3.1:10911", &["OrderTopic", "X"]).cmd()).await;
    let kv: KvTable = serde_json::from_slice(&r.body).expect("KvTable body");
    assert_eq!(kv.table.get("OrderTopic").map(String::as_str), Some("broker-a:4"));

    // Restart the NameServer on the same transport: the KV config is back.
    let ns = env.ns.take().expect("ns");
    ns.shutdown().await;
    let ns = start_ns(&env.server, dir.path(), |cfg| cfg.order_message_enable = true).await;
    env.addr = format!("127.0.0.1:{}", ns.port());
    env.ns = Some(ns);
    let a = env.addr.clone();
    let r = call(&c, &a, get("OrderTopic")).await;
    assert_eq!(r.ext("value"), Some("broker-a:4"));
    assert_eq!(call(&c, &a, get("Gone")).await.code, response::QUERY_NOT_FOUND);
    let list = RemotingCommand::request_with_header(
        request::GET_KVLIST_BY_NAMESPACE,
        &GetKvListByNamespaceRequestHeader { namespace: "ORDER_TOPIC_CONFIG".into() },
    );
    let kv: KvTable = serde_json::from_slice(&call(&c, &a, list).await.body).expect("KvTable");
    assert_eq!(kv.table.len(), 1);
    // orderMessageEnable adds orderTopicConf to the route.
    assert_eq!(call(&c, &a, Reg::new("broker-a", 0, "10.0.3.1:10911", &["OrderTopic", "X"]).cmd()).await.code, 0);
    let rd: TopicRouteData =
        serde_json::from_slice(&call(&c, &a, route_cmd("OrderTopic", 479, None)).await.body).expect("route");
    assert_eq!(rd.order_topic_conf.as_deref(), Some("broker-a:4"));

    c.shutdown().await;
    env.stop().await;
}

#[tokio::test]
async fn broker_dropped_when_its_connection_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::start(dir.path(), |_| {}).await;
    let observer = client(SerializeType::Json);
    let broker = client(SerializeType::Json);
    let a = env.addr.clone();
    assert_eq!(call(&broker, &a, Reg::new("broker-c", 0, "10.0.4.1:10911", &["C1", "C2"]).cmd()).await.code, 0);
    assert_eq!(call(&observer, &a, Reg::new("broker-d", 0, "10.0.4.2:10911", &["D1", "D2"]).cmd()).await.code, 0);
    assert!(cluster_info(&observer, &a).await.broker_addr_table.contains_key("broker-c"));
    broker.shutdown().await;
    eventually("broker-c is dropped", || async {
        !cluster_info(&observer, &a).await.broker_addr_table.contains_key("broker-c")
    })
    .await;
    assert_eq!(call(&observer, &a, route_cmd("C1", 479, None)).await.code, response::TOPIC_NOT_EXIST);
    // The broker registered on the still-open connection stays.
    assert!(cluster_info(&observer, &a).await.broker_addr_table.contains_key("broker-d"));
    observer.shutdown().await;
    env.stop().await;
}

#[tokio::test]
async fn broker_expires_after_its_heartbeat_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::start(dir.path(), |cfg| cfg.scan_not_active_broker_interval = 50).await;
    let observer = client(SerializeType::Json);
    let broker = client(SerializeType::Json);
    let a = env.addr.clone();
    let mut short = Reg::new("broker-e", 0, "10.0.5.1:10911", &["E1", "E2"]);
    short.timeout = Some(300);
    assert_eq!(call(&broker, &a, short.cmd()).await.code, 0);
    // The default timeout (120 s) keeps this one (registered on another connection).
    assert_eq!(call(&observer, &a, Reg::new("broker-f", 0, "10.0.5.2:10911", &["F1", "F2"]).cmd()).await.code, 0);
    assert!(cluster_info(&observer, &a).await.broker_addr_table.contains_key("broker-e"));
    eventually("broker-e expires", || async {
        !cluster_info(&observer, &a).await.broker_addr_table.contains_key("broker-e")
    })
    .await;
    assert_eq!(call(&observer, &a, route_cmd("E1", 479, None)).await.code, response::TOPIC_NOT_EXIST);
    assert!(cluster_info(&observer, &a).await.broker_addr_table.contains_key("broker-f"));
    assert_eq!(call(&observer, &a, route_cmd("F1", 479, None)).await.code, response::SUCCESS);
    broker.shutdown().await;
    observer.shutdown().await;
    env.stop().await;
}

#[tokio::test]
async fn perms_topics_and_config_admin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::start(dir.path(), |_| {}).await;
    let c = client(SerializeType::RocketMq);
    let a = &env.addr;
    assert_eq!(call(&c, a, Reg::new("broker-g", 0, "10.0.6.1:10911", &["G1", "G2"]).cmd()).await.code, 0);
    let wipe = RemotingCommand::request_with_header(
        request::WIPE_WRITE_PERM_OF_BROKER,
        &WipeWritePermOfBrokerRequestHeader { broker_name: "broker-g".into() },
    );
    let r = call(&c, a, wipe).await;
    assert_eq!(r.ext("wipeTopicCount"), Some("2"));
    let rd: TopicRouteData = serde_json::from_slice(&call(&c, a, route_cmd("G1", 479, None)).await.body).expect("rd");
    assert_eq!(rd.queue_datas[0].perm, 4);
    let add = RemotingCommand::request_with_header(
        request::ADD_WRITE_PERM_OF_BROKER,
        &AddWritePermOfBrokerRequestHeader { broker_name: "broker-g".into() },
    );
    assert_eq!(call(&c, a, add).await.ext("addTopicCount"), Some("2"));
    let rd: TopicRouteData = serde_json::from_slice(&call(&c, a, route_cmd("G1", 479, None)).await.body).expect("rd");
    assert_eq!(rd.queue_datas[0].perm, 6);

    let del = RemotingCommand::request_with_header(
        request::DELETE_TOPIC_IN_NAMESRV,
        &DeleteTopicFromNamesrvRequestHeader { topic: "G1".into(), cluster_name: None },
    );
    assert_eq!(call(&c, a, del).await.code, 0);
    assert_eq!(call(&c, a, route_cmd("G1", 479, None)).await.code, response::TOPIC_NOT_EXIST);
    // Register it back through REGISTER_TOPIC_IN_NAMESRV, with a fastjson-form body.
    let body = r#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.6.1:10911"},"brokerName":"broker-g","cluster":"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-g","perm":6,"readQueueNums":2,"topicSysFlag":0,"writeQueueNums":2}]}"#;
    let reg = RemotingCommand::request_with_header(
        request::REGISTER_TOPIC_IN_NAMESRV,
        &RegisterTopicRequestHeader { topic: "G1".into() },
    )
    .with_body(body);
    assert_eq!(call(&c, a, reg).await.code, 0);
    let rd: TopicRouteData = serde_json::from_slice(&call(&c, a, route_cmd("G1", 479, None)).await.body).expect("rd");
    assert_eq!(rd.queue_datas[0].read_queue_nums, 2);

    // Config: read, update, black list.
    let r = call(&c, a, RemotingCommand::request(request::GET_NAMESRV_CONFIG)).await;
    assert!(text(&r).contains("enableAllTopicList=true\n"));
    let upd = |body: &str| RemotingCommand::request(request::UPDATE_NAMESRV_CONFIG).with_body(body.to_string());
    assert_eq!(call(&c, a, upd("enableAllTopicList=false\n")).await.code, 0);
    let r = call(&c, a, RemotingCommand::request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).await;
    assert_eq!((r.code, r.remark.as_deref()), (response::SYSTEM_ERROR, Some("disable")));
    assert!(std::fs::read_to_string(dir.path().join("namesrv.properties"))
        .expect("persisted")
        .contains("enableAllTopicList=false"));
    let r = call(&c, a, upd("kvConfigPath=/tmp/evil.json\n")).await;
    assert_eq!(r.code, response::NO_PERMISSION);
    assert_eq!(call(&c, a, upd("scanNotActiveBrokerInterval=abc\n")).await.code, response::SYSTEM_ERROR);

    // Unknown codes are the transport's business.
    assert_eq!(call(&c, a, RemotingCommand::request(311 /* GET_UNIT_TOPIC_LIST */)).await.code, 3);

    c.shutdown().await;
    env.stop().await;
}

/// Kills the child on drop so a failing test leaves no process behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn mqnamesrv_binary_serves_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port_block(0, 0);
    let conf = dir.path().join("namesrv.properties");
    std::fs::write(
        &conf,
        format!("listenPort={port}\nkvConfigPath={}\n", dir.path().join("kv/kvConfig.json").display()),
    )
    .expect("write config");
    let _child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_mqnamesrv"))
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mqnamesrv starts"),
    );
    let addr = format!("127.0.0.1:{port}");
    eventually("mqnamesrv accepts connections", || async { tokio::net::TcpStream::connect(&addr).await.is_ok() }).await;
    let c = client(SerializeType::Json);
    let put = RemotingCommand::request_with_header(
        request::PUT_KV_CONFIG,
        &PutKvConfigRequestHeader { namespace: "ns".into(), key: "k".into(), value: "v".into() },
    );
    assert_eq!(call(&c, &addr, put).await.code, response::SUCCESS);
    assert!(dir.path().join("kv/kvConfig.json").exists());
    let r = call(&c, &addr, route_cmd("Nothing", 479, None)).await;
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    c.shutdown().await;
}

#[test]
fn mqnamesrv_prints_config_from_toml_and_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("namesrv.toml");
    std::fs::write(&conf, "listenPort = 19999\norderMessageEnable = true\n").expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqnamesrv"))
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .output()
        .expect("mqnamesrv runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listenPort=19999\n"), "{text}");
    assert!(text.contains("orderMessageEnable=true\n"), "{text}");
    assert!(text.contains("scanNotActiveBrokerInterval=5000\n"), "{text}");
    // A bad value is refused with a message naming the key.
    std::fs::write(&conf, "listenPort = \"abc\"\n").expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqnamesrv"))
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .output()
        .expect("mqnamesrv runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listenPort"));
}
