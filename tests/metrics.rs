//! Issue 18 (metrics): a container hosting two brokers serves Prometheus metrics over HTTP; each
//! broker's series carry its identity and match what was sent, consumed and committed; a removed
//! broker's series are gone from the next scrape.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::rmq::{create_topic, pull, send, wait_max_offset, T};
use common::{free_port_block, port_open, wait_until, write_broker, ChildGuard};
use rmqc::protocol::codes::{request, response};
use rmqc::remoting::{RemotingClient, RemotingCommand};

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");

/// GET `path` over plain HTTP/1.1; returns (status line, body).
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the response");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

/// The value of the one sample whose line starts with `name{` and contains every label given.
fn value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// (open file descriptors, threads) of a process, from /proc.
fn resources(pid: u32) -> (usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads =
        status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    (fds, threads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_broker_series_match_the_traffic_and_go_with_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, pa) = write_broker(d, "metric-a", "");
    let (b, pb) = write_broker(d, "metric-b", "");
    let port = free_port_block(2, 0);
    let ns = free_port_block(0, 0);
    let mport = free_port_block(0, 0);
    let conf = d.join("container.conf");
    std::fs::write(
        &conf,
        format!(
            "listenPort={port}\nbindAddress=127.0.0.1\nembeddedNamesrvEnable=true\nembeddedNamesrvPort={ns}\n\
             namesrvAddr=127.0.0.1:{ns}\nbrokerConfigPaths={a}:{b}\nbrokerConfigDirs=.\nlogRoot={}\n\
             metricsExporterType=PROM\nmetricsPromExporterPort={mport}\n",
            d.join("logs").display()
        ),
    )
    .unwrap();
    let c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "container");
    let pid = c.0.as_ref().unwrap().id();
    wait_until("brokers and metrics listen", Duration::from_secs(20), || {
        port_open(pa) && port_open(pb) && port_open(mport)
    });
    let (addr_a, addr_b) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    let client = RemotingClient::default();
    create_topic(&client, &addr_a, "MetricTopicA").await;
    create_topic(&client, &addr_b, "MetricTopicB").await;

    // Traffic: 30 messages to broker-a, 20 to broker-b, from 8 senders at once; 30 pulled from
    // broker-a by group mg, which commits 10.
    let body = vec![b'm'; 100];
    let sends = (0..50).map(|i| {
        let (client, body) = (client.clone(), body.clone());
        let (addr, topic) = if i < 30 { (addr_a.clone(), "MetricTopicA") } else { (addr_b.clone(), "MetricTopicB") };
        async move { send(&client, &addr, topic, 0, &body, &[]).await }
    });
    for r in futures::future::join_all(sends).await {
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    wait_max_offset(&client, &addr_a, "MetricTopicA", 0, 30).await;
    let r = pull(&client, &addr_a, "mg", "MetricTopicA", 0, 0, "*", 0).await;
    assert_eq!(r.code, response::SUCCESS);
    let commit = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", "mg")
        .with_ext("topic", "MetricTopicA")
        .with_ext("queueId", "0")
        .with_ext("commitOffset", "10");
    assert_eq!(client.invoke(&addr_a, commit, T).await.unwrap().code, response::SUCCESS);
    // One producer and one consumer connection on broker-a (a heartbeat over the client's
    // connection: language RUST, version V5_3_3).
    let hb = r#"{"clientID":"127.0.0.1@7#1","consumerDataSet":[{"consumeType":"CONSUME_PASSIVELY","groupName":"mg","messageModel":"CLUSTERING","subscriptionDataSet":[{"subString":"*","subVersion":1,"topic":"MetricTopicA"}]}],"producerDataSet":[{"groupName":"mpg"}]}"#;
    let r = client.invoke(&addr_a, RemotingCommand::request(request::HEART_BEAT).with_body(hb.as_bytes().to_vec()), T);
    assert_eq!(r.await.unwrap().code, response::SUCCESS);

    let (status, text) = http_get(mport, "/metrics");
    assert!(status.contains("200"), "{status}");
    let ida = [("cluster", "TestCluster"), ("node_id", "metric-a"), ("node_type", "broker")];
    let idb = [("cluster", "TestCluster"), ("node_id", "metric-b"), ("node_type", "broker")];
    let with = |id: &[(&'static str, &'static str)], extra: &[(&'static str, &'static str)]| {
        id.iter().chain(extra.iter()).copied().collect::<Vec<_>>()
    };
    assert_eq!(
        value(&text, "rocketmq_messages_in_total", &with(&ida, &[("topic", "MetricTopicA")])),
        Some(30.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "rocketmq_messages_in_total", &with(&idb, &[("topic", "MetricTopicB")])),
        Some(20.0),
        "{text}"
    );
    assert_eq!(value(&text, "rocketmq_messages_in_total", &with(&idb, &[("topic", "MetricTopicA")])), None, "{text}");
    let tin = value(&text, "rocketmq_throughput_in_total", &with(&ida, &[("topic", "MetricTopicA")])).unwrap();
    assert!(tin >= 30.0 * 100.0, "stored bytes {tin}");
    let out = [("topic", "MetricTopicA"), ("consumer_group", "mg")];
    assert_eq!(value(&text, "rocketmq_messages_out_total", &with(&ida, &out)), Some(30.0), "{text}");
    assert_eq!(value(&text, "rocketmq_consumer_lag_messages", &with(&ida, &out)), Some(20.0), "{text}");
    // Pulled 30, committed 10: 20 in flight, nothing left to pull.
    assert_eq!(value(&text, "rocketmq_consumer_inflight_messages", &with(&ida, &out)), Some(20.0), "{text}");
    assert_eq!(value(&text, "rocketmq_consumer_ready_messages", &with(&ida, &out)), Some(0.0), "{text}");
    let producers = with(&ida, &[("language", "rust"), ("version", "v5_3_3"), ("protocol_type", "remoting")]);
    assert_eq!(value(&text, "rocketmq_producer_connections", &producers), Some(1.0), "{text}");
    let consumers = with(&ida, &[("consumer_group", "mg"), ("language", "rust"), ("consume_mode", "push")]);
    assert_eq!(value(&text, "rocketmq_consumer_connections", &consumers), Some(1.0), "{text}");
    assert_eq!(value(&text, "rocketmq_producer_connections", &idb), None, "{text}");
    assert_eq!(value(&text, "rocketmq_processor_watermark", &with(&ida, &[("processor", "send")])), Some(0.0));
    assert!(value(&text, "rocketmq_storage_size_bytes", &ida).unwrap_or(0.0) > 0.0, "{text}");
    assert_eq!(value(&text, "rocketmq_container_brokers", &[]), Some(2.0), "{text}");
    // Request latency, as Apache's rocketmq_rpc_latency histogram (milliseconds).
    let sends = with(&ida, &[("request_code", "send_message_v2"), ("response_code", "success")]);
    assert_eq!(value(&text, "rocketmq_rpc_latency_milliseconds_count", &sends), Some(30.0), "{text}");
    let inf = with(&ida, &[("request_code", "send_message_v2"), ("le", "+Inf")]);
    assert_eq!(value(&text, "rocketmq_rpc_latency_milliseconds_bucket", &inf), Some(30.0), "{text}");
    let (status, healthy) = http_get(mport, "/-/healthy");
    assert!(status.contains("200") && healthy.trim() == "OK", "{status} {healthy}");

    // Remove broker-b: its series are gone from the next scrape; broker-a's stay.
    let remove = RemotingCommand::request(request::REMOVE_BROKER)
        .with_ext("brokerClusterName", "TestCluster")
        .with_ext("brokerName", "metric-b")
        .with_ext("brokerId", "0");
    let r = client.invoke(&format!("127.0.0.1:{port}"), remove, Duration::from_secs(30)).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let (_, text) = http_get(mport, "/metrics");
    assert!(!text.contains("node_id=\"metric-b\""), "{text}");
    assert_eq!(value(&text, "rocketmq_messages_in_total", &with(&ida, &[("topic", "MetricTopicA")])), Some(30.0));
    assert_eq!(value(&text, "rocketmq_container_broker_events_total", &[("event", "remove")]), Some(1.0), "{text}");

    // Add/remove cycles leave nothing behind in the scrape (Apache's #9677): after each removal
    // the series are exactly those of the broker that stays.
    // (Connection gauges are left out: a long run outlives the test client's heartbeat, 120 s.)
    let series = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with('#') && !l.contains("broker_events") && !l.contains("_connections{"))
            .count()
    };
    let baseline = series(&text);
    let (fds_before, threads_before) = resources(pid);
    let caddr = format!("127.0.0.1:{port}");
    let add = RemotingCommand::request(request::ADD_BROKER).with_ext("configPath", d.join(&b).display().to_string());
    let remove = RemotingCommand::request(request::REMOVE_BROKER)
        .with_ext("brokerClusterName", "TestCluster")
        .with_ext("brokerName", "metric-b")
        .with_ext("brokerId", "0");
    // RMQC_CYCLES=1000 runs Apache's #9677 scenario in full (about 2.5 minutes in a debug build).
    let cycles: u64 = std::env::var("RMQC_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(20).clamp(1, 5000);
    for i in 0..cycles {
        let r = client.invoke(&caddr, add.clone(), Duration::from_secs(30)).await.unwrap();
        assert_eq!(r.code, response::SUCCESS, "add {i}: {:?}", r.remark);
        let (_, during) = http_get(mport, "/metrics");
        assert!(during.contains("node_id=\"metric-b\""), "cycle {i}: the added broker reports");
        let r = client.invoke(&caddr, remove.clone(), Duration::from_secs(30)).await.unwrap();
        assert_eq!(r.code, response::SUCCESS, "remove {i}: {:?}", r.remark);
    }
    let (_, after) = http_get(mport, "/metrics");
    let (fds_after, threads_after) = resources(pid);
    eprintln!("after {cycles} add/remove cycles: open files {fds_before} -> {fds_after}, threads {threads_before} -> {threads_after}");
    assert_eq!(series(&after), baseline, "series after {cycles} add/remove cycles:\n{after}");
    // Nor anything in the process: every cycle's runtime threads, files and sockets are gone
    // (slack for the shared blocking pool's idle threads and a scrape's socket, not per cycle).
    assert!(fds_after <= fds_before + 8, "open files {fds_before} -> {fds_after} over {cycles} cycles");
    assert!(threads_after <= threads_before + 16, "threads {threads_before} -> {threads_after} over {cycles} cycles");
    assert_eq!(value(&after, "rocketmq_container_broker_events_total", &[("event", "add")]), Some(cycles as f64));
}
