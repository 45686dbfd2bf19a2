//! The mqadmin binary against real processes: a standalone `mqnamesrv`, and a `mqbrokercontainer`
//! with an embedded NameServer and real brokers.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");
const NAMESRV: &str = env!("CARGO_BIN_EXE_mqnamesrv");
const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");

/// Runs mqadmin with `NAMESRV_ADDR` set to `env_ns` (or removed).
fn mqadmin_env(args: &[&str], env_ns: Option<&str>) -> Output {
    let mut c = Command::new(MQADMIN);
    c.args(args).stdin(Stdio::null());
    match env_ns {
        Some(ns) => c.env("NAMESRV_ADDR", ns),
        None => c.env_remove("NAMESRV_ADDR"),
    };
    c.output().expect("mqadmin runs")
}

fn mqadmin(args: &[&str]) -> Output {
    mqadmin_env(args, None)
}

/// Runs mqadmin until it succeeds and `accept` holds for its output, or panics at the deadline.
fn mqadmin_until(what: &str, args: &[&str], timeout: Duration, accept: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let out = mqadmin(args);
        let t = text(&out);
        if out.status.success() && accept(&t) {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}; last output:\n{t}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ok(args: &[&str]) -> String {
    let out = mqadmin(args);
    assert!(out.status.success(), "mqadmin {args:?} failed:\n{}", text(&out));
    text(&out)
}

fn fails(args: &[&str]) -> String {
    let out = mqadmin(args);
    assert!(!out.status.success(), "mqadmin {args:?} should fail:\n{}", text(&out));
    text(&out)
}

fn closed_port() -> u16 {
    free_port_block(0, 0)
}

fn start_namesrv(dir: &Path) -> (ChildGuard, String) {
    let port = free_port_block(0, 0);
    let conf = dir.join("namesrv.properties");
    std::fs::write(&conf, format!("listenPort={port}\nkvConfigPath={}\n", dir.join("kv/kvConfig.json").display()))
        .expect("write namesrv config");
    let child = ChildGuard::spawn(NAMESRV, &["-c", conf.to_str().expect("utf-8 path")], dir, "namesrv");
    wait_until("mqnamesrv listens", Duration::from_secs(20), || port_open(port));
    (child, format!("127.0.0.1:{port}"))
}

#[test]
fn namesrv_facing_commands_and_argument_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_ns_proc, ns) = start_namesrv(dir.path());

    // An empty NameServer: clear messages, success.
    let t = ok(&["topicList", "-n", &ns]);
    assert!(t.contains("No topic is registered"), "{t}");
    let t = ok(&["clusterList", "-n", &ns]);
    assert!(t.contains("#Cluster Name") && t.contains("#InTPS(LOAD)"), "{t}");
    assert!(t.contains("No broker is registered"), "{t}");

    // NAMESRV_ADDR is the default of -n; neither given is a usage error naming both.
    let out = mqadmin_env(&["clusterList"], Some(&ns));
    assert!(out.status.success(), "{}", text(&out));
    let t = fails(&["topicList"]);
    assert!(t.contains("-n") && t.contains("NAMESRV_ADDR"), "{t}");

    // A missing topic: the NameServer's refusal, non-zero.
    let t = fails(&["topicRoute", "-n", &ns, "-t", "NoSuchTopic"]);
    assert!(t.contains("TOPIC_NOT_EXIST") && t.contains("NoSuchTopic"), "{t}");
    let t = fails(&["topicStatus", "-n", &ns, "-t", "NoSuchTopic"]);
    assert!(t.contains("TOPIC_NOT_EXIST"), "{t}");
    let t = fails(&["sendMessage", "-n", &ns, "-t", "NoSuchTopic", "-p", "x"]);
    assert!(t.contains("NoSuchTopic"), "{t}");
    // An unknown cluster.
    let t = fails(&["updateTopic", "-n", &ns, "-c", "NoCluster", "-t", "T"]);
    assert!(t.contains("NoCluster"), "{t}");
    let t = fails(&["deleteTopic", "-n", &ns, "-c", "NoCluster", "-t", "T"]);
    assert!(t.contains("NoCluster"), "{t}");
    let t = fails(&["consumerProgress", "-n", &ns, "-g", "nobody"]);
    assert!(t.contains("nobody"), "{t}");

    // Argument errors.
    let t = fails(&["removeBroker", "-c", "127.0.0.1:1", "-b", "bad"]);
    assert!(t.contains("clusterName:brokerName:brokerId"), "{t}");
    let t = fails(&["removeBroker", "-c", "127.0.0.1:1", "-b", "C:b:-1"]);
    assert!(t.contains("negative"), "{t}");
    let t = fails(&["removeBroker", "-c", "127.0.0.1:1", "-b", "C:b:x"]);
    assert!(t.contains("not a number"), "{t}");
    let t = fails(&["sendMessage", "-n", &ns, "-t", "T", "-p", "x", "-i", "1"]);
    assert!(t.contains("-b"), "{t}");
    let t = fails(&["queryMsgById", "-n", &ns, "-i", "not-an-id"]);
    assert!(t.contains("-t"), "{t}");
    let t = fails(&["updateTopic", "-n", &ns, "-t", "T"]);
    assert!(t.contains("-b") && t.contains("-c"), "{t}");
    fails(&["addBroker", "-c", "127.0.0.1:1"]);
    // -h on a command prints its options.
    let t = ok(&["removeBroker", "-h"]);
    assert!(t.contains("--drain") && t.contains("--brokerContainerAddr"), "{t}");

    // Unreachable addresses are named with the reason.
    let dead = format!("127.0.0.1:{}", closed_port());
    for args in [
        vec!["clusterList", "-n", dead.as_str()],
        vec!["topicList", "-n", dead.as_str()],
        vec!["addBroker", "-c", dead.as_str(), "-b", "/tmp/x.conf"],
        vec!["removeBroker", "-c", dead.as_str(), "-b", "C:b:0"],
        vec!["brokerStatus", "-b", dead.as_str()],
        vec!["getBrokerConfig", "-b", dead.as_str()],
    ] {
        let t = fails(&args);
        assert!(t.contains(&dead) && t.contains("connect"), "{args:?}: {t}");
    }
    // An address that accepts but never answers: a timeout naming it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let t = fails(&["brokerStatus", "-b", &silent_addr]);
    assert!(t.contains(&silent_addr) && t.contains("timed out"), "{t}");
    drop(silent);
    // A dead first NameServer is skipped.
    let list = format!("{dead};{ns}");
    ok(&["topicList", "-n", &list]);
}

fn write_broker(dir: &Path, name: &str) -> (String, u16) {
    let port = free_port_block(2, 1);
    let file = format!("{name}.conf");
    std::fs::write(
        dir.join(&file),
        format!(
            "brokerClusterName=C\nbrokerName={name}\nbrokerId=0\nlistenPort={port}\nbrokerIP1=127.0.0.1\nstorePathRootDir={}\nmappedFileSizeCommitLog=1048576\nmaxHashSlotNum=1000\nmaxIndexNum=4000\nmappedFileSizeConsumeQueue=6000\nmaxMessageSize=65536\nautoCreateTopicEnable=true\nautoCreateSubscriptionGroup=true\n",
            dir.join("store").join(name).display()
        ),
    )
    .unwrap();
    (file, port)
}

/// The value of column `col` (0-based, whitespace-split) of the first data line under the header.
fn first_row_col(table: &str, header_start: &str, col: usize) -> String {
    let mut lines = table.lines().skip_while(|l| !l.starts_with(header_start));
    lines.next();
    let row = lines.next().unwrap_or_else(|| panic!("no data row in:\n{table}"));
    row.split_whitespace().nth(col).unwrap_or_else(|| panic!("no column {col} in {row}")).to_string()
}

/// Starts a container (with its embedded NameServer) hosting the broker config file `broker` in
/// `d`, and waits until the container, the NameServer and the broker's `port` listen (`what` names
/// that wait); panics with its stderr if it exits first. Returns the child and the container's and
/// NameServer's ports.
fn start_container(d: &Path, broker: &str, port: u16, what: &str) -> (ChildGuard, u16, u16) {
    let (conf, cport, nport) = common::write_container(d, &[broker]);
    let mut container = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "container");
    wait_until(what, Duration::from_secs(30), || {
        if let Some(status) = container.try_wait() {
            let err = std::fs::read_to_string(d.join("container.err")).unwrap_or_default();
            panic!("the container exited ({status}): {err}");
        }
        port_open(cport) && port_open(nport) && port_open(port)
    });
    (container, cport, nport)
}

#[test]
fn broker_commands_against_a_container() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (fa, pa) = write_broker(d, "broker-a");
    let (_fb, pb) = write_broker(d, "broker-b");
    let (_container, cport, nport) = start_container(d, &fa, pa, "the container, its NameServer and broker-a listen");
    let ns = format!("127.0.0.1:{nport}");
    let a = format!("127.0.0.1:{pa}");
    let caddr = format!("127.0.0.1:{cport}");
    let long = Duration::from_secs(20);

    // The broker registers; clusterList shows it with its runtime figures.
    let t = mqadmin_until("broker-a in clusterList", &["clusterList", "-n", &ns], long, |t| t.contains(&a));
    assert!(t.contains("broker-a") && t.contains("V5_3_3") && t.lines().any(|l| l.starts_with('C')), "{t}");
    // ... with its health, and its send queue in #InTPS(LOAD).
    assert!(t.lines().next().is_some_and(|h| h.contains("#Health")), "{t}");
    assert!(t.lines().any(|l| l.contains("broker-a") && l.trim_end().ends_with("OK")), "{t}");

    // updateTopic on the cluster's masters, then the route appears.
    let t = ok(&["updateTopic", "-n", &ns, "-c", "C", "-t", "AdminTopic", "-r", "2", "-w", "2"]);
    assert!(t.contains(&format!("create topic to {a} success.")) && t.contains("perm=RW-"), "{t}");
    let t = mqadmin_until("AdminTopic route", &["topicRoute", "-n", &ns, "-t", "AdminTopic"], long, |_| true);
    assert!(t.contains("\"brokerName\": \"broker-a\"") && t.contains("\"writeQueueNums\": 2"), "{t}");
    assert!(ok(&["topicList", "-n", &ns]).lines().any(|l| l == "AdminTopic"));

    // sendMessage: a table with SEND_OK, the UNIQ_KEY and the offset id.
    let t = ok(&["sendMessage", "-n", &ns, "-t", "AdminTopic", "-p", "hello-1", "-k", "key1", "-c", "TagA"]);
    assert!(t.contains("#Broker Name") && t.contains("#MsgId") && t.contains("SEND_OK"), "{t}");
    let uniq = first_row_col(&t, "#Broker Name", 3);
    let offset_id = first_row_col(&t, "#Broker Name", 4);
    assert_eq!(uniq.len(), 32, "{t}");
    assert!(uniq.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()), "{uniq}");
    assert_eq!(offset_id.len(), 32, "{t}");
    let t =
        ok(&["sendMessage", "-n", &ns, "-t", "AdminTopic", "-p", "hello-2", "-c", "TagB", "-b", "broker-a", "-i", "1"]);
    assert!(t.contains("SEND_OK") && t.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(1) == Some("1")), "{t}");

    // A topic that does not exist yet is auto-created through the TBW102 route.
    let t = ok(&["sendMessage", "-n", &ns, "-t", "AutoTopic", "-p", "auto"]);
    assert!(t.contains("SEND_OK"), "{t}");
    // The send is acknowledged once stored; its consume queue entry follows from the store's
    // dispatcher, so a read right after may find nothing yet: read again until it shows.
    let mut t = String::new();
    wait_until("the auto-created topic's message is consumable", Duration::from_secs(20), || {
        t = ok(&["consumeMessage", "-n", &ns, "-t", "AutoTopic"]);
        t.contains("BODY: auto")
    });
    assert!(t.contains("Consumed 1 message"), "{t}");

    // sendTransactionMessage: a committed half message arrives, a rolled-back one never does.
    let tx = ["sendTransactionMessage", "-n", &ns, "-t", "TxAdminTopic", "-b", "broker-a", "-i", "0"];
    let t = ok(&[&tx[..], &["-p", "tx-commit"]].concat());
    assert!(t.contains("SEND_OK") && t.contains("Transaction: COMMIT_MESSAGE"), "{t}");
    let t = ok(&[&tx[..], &["-p", "tx-rollback", "-s", "rollback"]].concat());
    assert!(t.contains("Transaction: ROLLBACK_MESSAGE"), "{t}");
    let t = mqadmin_until("the commit is delivered", &["consumeMessage", "-n", &ns, "-t", "TxAdminTopic"], long, |t| {
        t.contains("BODY: tx-commit")
    });
    assert!(t.contains("Consumed 1 message") && !t.contains("tx-rollback"), "{t}");
    assert!(fails(&[&tx[..], &["-p", "x", "-s", "maybe"]].concat()).contains("expected commit, rollback or unknown"));

    // consumeMessage: both bodies; a tag filter; -g commits the group's offsets.
    let t = ok(&["consumeMessage", "-n", &ns, "-t", "AdminTopic", "-g", "g1"]);
    assert!(t.contains("BODY: hello-1") && t.contains("BODY: hello-2"), "{t}");
    assert!(t.contains(&format!("MSGID: {uniq}")) && t.contains("BORN: ") && t.contains("Consumed 2 message"), "{t}");
    let t = ok(&["consumeMessage", "-n", &ns, "-t", "AdminTopic", "-s", "TagA"]);
    assert!(t.contains("BODY: hello-1") && !t.contains("hello-2"), "{t}");
    let t = ok(&["consumeMessage", "-n", &ns, "-t", "AdminTopic", "-c", "1"]);
    assert!(t.contains("Consumed 1 message"), "{t}");
    // The group has consumed everything: nothing more for it.
    let t = ok(&["consumeMessage", "-n", &ns, "-t", "AdminTopic", "-g", "g1"]);
    assert!(t.contains("Consumed 0 message"), "{t}");

    // queryMsgById by offset id, and by UNIQ_KEY with -t.
    let t = ok(&["queryMsgById", "-n", &ns, "-i", &offset_id]);
    assert!(t.contains("AdminTopic") && t.contains("[key1]") && t.contains("[TagA]"), "{t}");
    assert!(t.contains("Message Body:        hello-1") && t.contains(&format!("UNIQ_KEY={uniq}")), "{t}");
    let t = mqadmin_until(
        "the UNIQ_KEY is indexed",
        &["queryMsgById", "-n", &ns, "-i", &uniq, "-t", "AdminTopic"],
        long,
        |t| t.contains("hello-1"),
    );
    assert!(t.contains(&offset_id), "{t}");

    // queryMsgByKey.
    let t =
        mqadmin_until("key1 is indexed", &["queryMsgByKey", "-n", &ns, "-t", "AdminTopic", "-k", "key1"], long, |t| {
            t.contains(&uniq)
        });
    assert!(t.contains("#Message ID") && t.contains("#QID") && t.contains("#Offset"), "{t}");
    let t = ok(&["queryMsgByKey", "-n", &ns, "-t", "AdminTopic", "-k", "no-such-key"]);
    assert_eq!(t.lines().count(), 1, "{t}");

    // topicStatus: two queues, two messages in all.
    let t = ok(&["topicStatus", "-n", &ns, "-t", "AdminTopic"]);
    assert!(t.contains("#Min Offset") && t.contains("#Last Updated"), "{t}");
    let max_total: i64 = t
        .lines()
        .filter(|l| l.starts_with("broker-a"))
        .map(|l| l.split_whitespace().nth(3).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0))
        .sum();
    assert_eq!(max_total, 2, "{t}");

    // consumerProgress of g1: caught up.
    let t = ok(&["consumerProgress", "-n", &ns, "-g", "g1"]);
    assert!(t.contains("#Consumer Offset") && t.contains("AdminTopic") && t.contains("Consume Diff Total: 0"), "{t}");
    assert!(t.contains("Consume TPS"), "{t}");

    // brokerStatus: sorted key/value lines.
    let t = ok(&["brokerStatus", "-n", &ns, "-b", &a]);
    assert!(t.contains("msgPutTotalTodayNow") && t.contains("brokerVersionDesc"), "{t}");
    assert!(t.contains("sendThreadPoolQueueCapacity") && t.contains("pullThreadPoolQueueSize"), "{t}");
    let keys: Vec<&str> = t.lines().map(|l| l.split(':').next().unwrap_or("").trim()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let t = ok(&["brokerStatus", "-n", &ns, "-c", "C"]);
    assert!(t.contains(&a) && t.contains("msgPutTotalTodayNow"), "{t}");

    // Cluster-wide config commands.
    let t = ok(&["getBrokerConfig", "-n", &ns, "-c", "C"]);
    assert!(t.contains(&format!("============{a}============")) && t.contains("broker-a"), "{t}");
    let t = ok(&["updateBrokerConfig", "-n", &ns, "-c", "C", "-k", "autoCreateSubscriptionGroup", "-v", "true"]);
    assert!(t.contains(&format!("update broker config success, {a}")), "{t}");
    let t = ok(&["getBrokerConfig", "-b", &a]);
    assert!(t.lines().any(|l| l.starts_with("autoCreateSubscriptionGroup") && l.ends_with("true")), "{t}");

    // addBroker / removeBroker on the container.
    let path = d.join("broker-b.conf");
    let t = ok(&["addBroker", "-c", &caddr, "-b", path.to_str().unwrap()]);
    assert!(t.contains(&format!("add broker to {caddr} success")), "{t}");
    let b = format!("127.0.0.1:{pb}");
    mqadmin_until("broker-b in clusterList", &["clusterList", "-n", &ns], long, |t| t.contains(&b));
    let t = fails(&["addBroker", "-c", &caddr, "-b", path.to_str().unwrap()]);
    assert!(t.contains("CODE:"), "{t}");
    // removeBroker --drain: refused while a group is behind on broker-b, done once it caught up.
    let t = ok(&["updateTopic", "-b", &b, "-t", "DrainTopic", "-r", "1", "-w", "1"]);
    assert!(t.contains(&format!("create topic to {b} success.")), "{t}");
    mqadmin_until("DrainTopic route", &["topicRoute", "-n", &ns, "-t", "DrainTopic"], long, |_| true);
    for body in ["d1", "d2"] {
        ok(&["sendMessage", "-n", &ns, "-t", "DrainTopic", "-p", body, "-b", "broker-b", "-i", "0"]);
    }
    let t = ok(&["consumeMessage", "-n", &ns, "-t", "DrainTopic", "-g", "g2", "-c", "1"]);
    assert!(t.contains("BODY: d1") && !t.contains("d2"), "{t}");
    let t = ok(&["consumerProgress", "-n", &ns, "-g", "g2"]);
    assert!(t.contains("Consume Diff Total: 1"), "{t}");
    let t = fails(&["removeBroker", "-c", &caddr, "-b", "C:broker-b:0", "--drain", "--drainTimeout", "300"]);
    assert!(t.contains("g2") && t.contains("timed out"), "{t}");
    let t = ok(&["consumeMessage", "-n", &ns, "-t", "DrainTopic", "-g", "g2"]);
    assert!(t.contains("BODY: d2") && !t.contains("d1"), "{t}");
    let t = ok(&["removeBroker", "-c", &caddr, "-b", "C:broker-b:0", "--drain", "--drainTimeout", "10000"]);
    assert!(t.contains(&format!("remove broker from {caddr} success")), "{t}");
    mqadmin_until("broker-b gone", &["clusterList", "-n", &ns], long, |t| !t.contains(&b));
    let t = fails(&["removeBroker", "-c", &caddr, "-b", "C:broker-b:0"]);
    assert!(t.contains("CODE:"), "{t}");

    // deleteTopic: gone from the broker and the NameServer.
    let t = ok(&["deleteTopic", "-n", &ns, "-c", "C", "-t", "AdminTopic"]);
    assert!(t.contains("delete topic [AdminTopic] from cluster [C] success."), "{t}");
    assert!(t.contains("delete topic [AdminTopic] from NameServer success."), "{t}");
    let t = fails(&["topicRoute", "-n", &ns, "-t", "AdminTopic"]);
    assert!(t.contains("TOPIC_NOT_EXIST"), "{t}");
}

/// `getBrokerConfig` output (`key  =  value` lines) as a map.
fn config_map(t: &str) -> std::collections::BTreeMap<String, String> {
    t.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty() && !k.starts_with("====="))
        .collect()
}

/// `brokerStatus -b` output (`key : value` lines) as a map.
fn status_map(t: &str) -> std::collections::BTreeMap<String, String> {
    t.lines().filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_config_and_runtime_key_sets_and_runtime_updates() {
    use rmqc::protocol::codes::response;
    use rmqc::protocol::message::decode_records;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (fa, pa) = write_broker(d, "broker-k");
    let (_container, _, _) = start_container(d, &fa, pa, "the container and broker-k listen");
    let a = format!("127.0.0.1:{pa}");
    let client = rmqc::remoting::RemotingClient::default();

    // getBrokerConfig: Apache 5.3.3's whole key set (408 keys) plus ours; our values where we
    // implement the key, Apache's defaults where we accept and ignore it.
    let c = config_map(&ok(&["getBrokerConfig", "-b", &a]));
    eprintln!("getBrokerConfig: {} keys", c.len());
    assert!(c.len() >= 408, "{} keys: {c:?}", c.len());
    for (k, _) in rmqc::broker::apache_config::APACHE_CONFIG_DEFAULTS {
        assert!(c.contains_key(*k), "getBrokerConfig lacks Apache's {k}");
    }
    let want = [
        ("brokerName", "broker-k"),
        ("mappedFileSizeCommitLog", "1048576"),
        ("maxMessageSize", "65536"),
        ("maxTransferCountOnMessageInMemory", "32"),
        ("maxTransferBytesOnMessageInMemory", "262144"),
        ("deleteWhen", "04"),
        ("fileReservedTime", "72"),
        ("flushIntervalCommitLog", "500"),
        ("longPollingEnable", "true"),
        ("brokerPermission", "6"),
        // Accepted and ignored: Apache's defaults.
        ("maxTransferCountOnMessageInDisk", "8"),
        ("transientStorePoolEnable", "false"),
        ("enablePopBufferMerge", "false"),
    ];
    for (k, v) in want {
        assert_eq!(c.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(c["sendMessageThreadPoolNums"].parse::<u32>().unwrap() >= 1);

    // brokerStatus: Apache's runtime keys with our figures.
    let topic = "KeysTopic";
    rmq::create_topic(&client, &a, topic).await;
    for i in 0..5 {
        let r = rmq::send(&client, &a, topic, 0, format!("m{i}").as_bytes(), &[]).await;
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    rmq::wait_max_offset(&client, &a, topic, 0, 5).await;
    let r = rmq::pull(&client, &a, "keys-g", topic, 0, 0, "*", 0).await;
    assert_eq!(decode_records(&r.body, true).len(), 5);
    let s = status_map(&ok(&["brokerStatus", "-b", &a]));
    eprintln!("brokerStatus: {} keys", s.len());
    assert!(s.len() >= 62, "{} keys: {s:?}", s.len());
    for k in [
        "putTps",
        "getFoundTps",
        "getMissTps",
        "getTotalTps",
        "getTransferredTps",
        "putMessageTimesTotal",
        "putMessageAverageSize",
        "msgPutTotalYesterdayMorning",
        "msgGetTotalTodayMorning",
        "pageCacheLockTimeMills",
        "startAcceptSendRequestTimeStamp",
        "remainTransientStoreBufferNumbs",
        "remainHowManyDataToFlush",
        "dispatchMaxBuffer",
        "timerReadBehind",
        "timerOffsetBehind",
        "timerCongestNum",
        "timerEnqueueTps",
        "timerDequeueTps",
        "sendThreadPoolQueueHeadWaitTimeMills",
        "pullThreadPoolQueueHeadWaitTimeMills",
        "queryThreadPoolQueueHeadWaitTimeMills",
        "EndTransactionQueueSize",
        "EndTransactionThreadPoolQueueCapacity",
        "commitLogDiskRatio",
        "consumeQueueDiskRatio",
        "bootTimestamp",
        "earliestMessageTimeStamp",
    ] {
        assert!(s.contains_key(k), "brokerStatus lacks {k}: {s:?}");
    }
    let put_tps: Vec<f64> = s["putTps"].split(' ').map(|v| v.parse().unwrap()).collect();
    assert_eq!(put_tps.len(), 3, "{}", s["putTps"]);
    assert!(put_tps[0] > 0.0, "five messages were just stored: {}", s["putTps"]);
    assert!(s["getTransferredTps"].split(' ').next().unwrap().parse::<f64>().unwrap() > 0.0);
    assert_eq!(s["putMessageTimesTotal"], "5");
    assert_eq!(s["putMessageFailedTimes"], "0");
    assert!(s["putMessageAverageSize"].parse::<f64>().unwrap() > 0.0);
    assert_eq!(s["msgPutTotalTodayNow"], "5");
    assert_eq!(s["pageCacheLockTimeMills"], "0");
    assert_eq!(s["remainTransientStoreBufferNumbs"], "2147483647");
    assert!(s["commitLogDirCapacity"].starts_with("Total : ") && s["commitLogDirCapacity"].contains("iB, Free : "));
    assert!(s.keys().any(|k| k.starts_with("commitLogDiskRatio_")), "{s:?}");
    assert_eq!(s["EndTransactionThreadPoolQueueCapacity"], "100000");
    assert_eq!(s["timerEnqueueTps"], "0.0");

    // Runtime updates: applied at once, read back, persisted to the broker's file.
    for (k, v) in [
        ("maxTransferCountOnMessageInMemory", "2"),
        ("flushIntervalCommitLog", "200"),
        ("deleteWhen", "01;13"),
        ("fileReservedTime", "48"),
        ("diskMaxUsedSpaceRatio", "80"),
        ("longPollingEnable", "false"),
        ("slaveReadEnable", "true"),
    ] {
        let t = ok(&["updateBrokerConfig", "-b", &a, "-k", k, "-v", v]);
        assert!(t.contains("success"), "{k}: {t}");
    }
    let r = rmq::pull(&client, &a, "keys-g", topic, 0, 0, "*", 0).await;
    assert_eq!(decode_records(&r.body, true).len(), 2, "maxTransferCountOnMessageInMemory=2 applies to the next pull");
    let c = config_map(&ok(&["getBrokerConfig", "-b", &a]));
    for (k, v) in [
        ("maxTransferCountOnMessageInMemory", "2"),
        ("flushIntervalCommitLog", "200"),
        ("deleteWhen", "01;13"),
        ("fileReservedTime", "48"),
        ("diskMaxUsedSpaceRatio", "80"),
        ("longPollingEnable", "false"),
        ("slaveReadEnable", "true"),
    ] {
        assert_eq!(c.get(k).map(String::as_str), Some(v), "{k} reads back");
    }
    let file = std::fs::read_to_string(d.join(&fa)).unwrap();
    for line in
        ["maxTransferCountOnMessageInMemory=2", "deleteWhen=01;13", "fileReservedTime=48", "longPollingEnable=false"]
    {
        assert!(file.contains(line), "{line} persisted:\n{file}");
    }
    // A pull that finds nothing is no longer held (long polling off): it is answered after the
    // short polling time (1 s), not the asked 10 s.
    let started = Instant::now();
    let r = rmq::pull(&client, &a, "keys-g", topic, 0, 5, "*", 10_000).await;
    assert_eq!(r.code, response::PULL_NOT_FOUND);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // Refused: bad values, keys read only at start, keys Apache has that mean nothing here, the
    // black list; the file is unchanged.
    for (k, v, why) in [
        ("deleteWhen", "25", "hour"),
        ("maxTransferBytesOnMessageInMemory", "0", "must be > 0"),
        ("mappedFileSizeCommitLog", "2097152", "cannot change while running"),
        ("cleanResourceInterval", "5000", "cannot change while running"),
        ("sendThreadPoolQueueCapacity", "5", "cannot change while running"),
        ("sendMessageThreadPoolNums", "3", "unknown key"),
        ("brokerName", "other", "black list"),
    ] {
        let t = fails(&["updateBrokerConfig", "-b", &a, "-k", k, "-v", v]);
        assert!(t.contains(why), "{k}={v}: {t}");
    }
    assert_eq!(std::fs::read_to_string(d.join(&fa)).unwrap(), file, "refused updates change nothing");
}
