//! The load tool against a container on loopback: a bounded producer run and a consumer run, each
//! ending with the JSON summary line; routes followed as they change (a new topic on two masters, a
//! topic that grows to a second master during a run); a broker dying midway (errors printed once,
//! back-off, the rate over the served time).
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{wait_async, write_broker, write_container, ChildGuard};
use rmqc::container::config::LoadedContainerConfig;
use rmqc::container::BrokerContainer;
use rmqc::protocol::codes::{request, response};
use rmqc::remoting::{RemotingClient, RemotingCommand};

const MQBENCH: &str = env!("CARGO_BIN_EXE_mqbench");

fn last_json(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}):\n{text}\n{}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_and_consumer_runs_report_json() {
    let dir = tempfile::tempdir().unwrap();
    // The run's counts are checked exactly (500 sent, 0 failures): the broker must not refuse a
    // send for waiting in its queue past the default 200 ms, which a loaded machine caused (stress:
    // 'code 2 SYSTEM_BUSY' 3 times, 497 sent; mqbench reports a busy answer as a failure, as it
    // should). The tool's busy accounting is a_broker_that_dies_midway_is_reported_honestly's.
    let (bfile, _) = write_broker(dir.path(), "bench-a", "maxMessageSize=65536\nwaitTimeMillsInSendQueue=10000\n");
    let (conf, _, ns) = write_container(dir.path(), &[&bfile]);
    let container =
        BrokerContainer::start(LoadedContainerConfig::load(&conf, None, None).unwrap(), false, None).await.unwrap();
    let ns = format!("127.0.0.1:{ns}");
    let run =
        |args: Vec<String>| tokio::task::spawn_blocking(move || Command::new(MQBENCH).args(args).output().unwrap());

    let out = run(["producer", "-n", &ns, "-t", "BenchTopic", "-w", "8", "-s", "256", "-q", "500", "--keys", "--json"]
        .map(String::from)
        .to_vec())
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = last_json(&out);
    assert_eq!(p["sent"], 500, "{p}");
    assert_eq!(p["failures"], 0, "{p}");
    for k in ["tps", "p50_ms", "p99_ms", "p999_ms", "max_ms"] {
        assert!(p[k].as_f64().is_some_and(|v| v > 0.0), "{k} in {p}");
    }
    let out = run(["producer", "-n", &ns, "-t", "BenchTopic", "-w", "2", "--batch", "10", "-q", "100", "--json"]
        .map(String::from)
        .to_vec())
    .await
    .unwrap();
    assert_eq!(last_json(&out)["sent"], 100, "batches count their messages");

    let out = run([
        "consumer",
        "-n",
        &ns,
        "-t",
        "BenchTopic",
        "-g",
        "bench-g",
        "--from-start",
        "-q",
        "600",
        "-d",
        "30",
        "--json",
    ]
    .map(String::from)
    .to_vec())
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = last_json(&out);
    assert_eq!(c["sent"], 600, "every message is consumed: {c}");

    // A NameServer that is not there: a clear error and a non-zero exit.
    let out = run(["producer", "-n", "127.0.0.1:1", "-t", "X", "-q", "1"].map(String::from).to_vec()).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));
    container.shutdown().await;
}

/// Messages stored for `topic` on the broker at `addr`: the sum of its first 16 queues' max offsets
/// (0 while the topic does not exist there or the broker does not answer).
async fn stored(client: &RemotingClient, addr: &str, topic: &str) -> i64 {
    let mut total = 0;
    for q in 0..16 {
        let req = RemotingCommand::request(request::GET_MAX_OFFSET)
            .with_ext("topic", topic)
            .with_ext("queueId", q.to_string());
        if let Ok(r) = client.invoke(addr, req, Duration::from_secs(5)).await {
            if r.code == response::SUCCESS {
                total += r.ext("offset").and_then(|o| o.parse::<i64>().ok()).unwrap_or(0);
            }
        }
    }
    total
}

/// Creates `topic` with 4 queues on the broker at `addr` only.
async fn create_on(client: &RemotingClient, addr: &str, topic: &str) {
    let req = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", "4")
        .with_ext("writeQueueNums", "4")
        .with_ext("perm", "6")
        .with_ext("topicFilterType", "SINGLE_TAG")
        .with_ext("order", "false");
    let r = client.invoke(addr, req, Duration::from_secs(5)).await.expect("UPDATE_AND_CREATE_TOPIC answered");
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

/// Starts `mqbench args...` with stdout and stderr in files under `dir`.
fn spawn_bench(dir: &Path, name: &str, args: &[&str]) -> ChildGuard {
    ChildGuard::spawn(MQBENCH, args, dir, name)
}

/// Waits (bounded) for a spawned mqbench to exit; returns its status, stdout and stderr.
async fn finish(mut child: ChildGuard, dir: &Path, name: &str) -> (std::process::ExitStatus, String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait() {
            break s;
        }
        assert!(Instant::now() < deadline, "mqbench {name} did not exit within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{name}.{ext}"))).unwrap_or_default();
    (status, read("out"), read("err"))
}

fn json_of(stdout: &str, stderr: &str) -> serde_json::Value {
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}):\n{stdout}\n{stderr}"))
}

async fn two_broker_container(dir: &Path) -> (BrokerContainer, String, String, String) {
    let (fa, pa) = write_broker(dir, "bench-a", "maxMessageSize=65536\nautoCreateTopicEnable=true\n");
    let (fb, pb) = write_broker(dir, "bench-b", "maxMessageSize=65536\nautoCreateTopicEnable=true\n");
    let (conf, _, ns) = write_container(dir, &[&fa, &fb]);
    let container =
        BrokerContainer::start(LoadedContainerConfig::load(&conf, None, None).unwrap(), false, None).await.unwrap();
    (container, format!("127.0.0.1:{ns}"), format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"))
}

/// A new topic on a cluster of two masters: the run sends to both, not only to the broker whose
/// route reached the NameServer first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_topic_on_two_masters_gets_messages_on_both() {
    let dir = tempfile::tempdir().unwrap();
    let (container, ns, a, b) = two_broker_container(dir.path()).await;
    let out = spawn_bench(
        dir.path(),
        "new",
        &["producer", "-n", &ns, "-t", "NewTopic", "-w", "4", "-s", "64", "-d", "2", "--json"],
    );
    let (status, stdout, stderr) = finish(out, dir.path(), "new").await;
    assert!(status.success(), "{stdout}\n{stderr}");
    let j = json_of(&stdout, &stderr);
    assert!(j["sent"].as_u64().is_some_and(|n| n > 0), "{j}");
    let client = RemotingClient::default();
    let (on_a, on_b) = (stored(&client, &a, "NewTopic").await, stored(&client, &b, "NewTopic").await);
    assert!(on_a > 0 && on_b > 0, "both masters get messages: {on_a} on bench-a, {on_b} on bench-b\n{stderr}");
    client.shutdown().await;
    container.shutdown().await;
}

/// A topic that exists on one master when the run starts and is created on the second one during
/// the run: the periodic route refresh sends to the second one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_is_refreshed_during_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let (container, ns, a, b) = two_broker_container(dir.path()).await;
    let client = RemotingClient::default();
    create_on(&client, &a, "GrowTopic").await;
    let route_has = |brokers: usize| {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            matches!(rmqc::bench::route(&client, &ns, "GrowTopic").await, Ok(Some(r)) if r.queue_datas.len() == brokers)
        }
    };
    wait_async("GrowTopic's route lists bench-a", Duration::from_secs(10), || route_has(1)).await;
    let run =
        spawn_bench(dir.path(), "grow", &["producer", "-n", &ns, "-t", "GrowTopic", "-w", "4", "-s", "64", "-d", "10"]);
    wait_async("mqbench stores messages on bench-a", Duration::from_secs(10), || {
        let (client, a) = (client.clone(), a.clone());
        async move { stored(&client, &a, "GrowTopic").await > 0 }
    })
    .await;
    assert_eq!(stored(&client, &b, "GrowTopic").await, 0);
    create_on(&client, &b, "GrowTopic").await;
    wait_async("mqbench sends to bench-b once its route appears", Duration::from_secs(5), || {
        let (client, b) = (client.clone(), b.clone());
        async move { stored(&client, &b, "GrowTopic").await > 0 }
    })
    .await;
    drop(run); // killed: the rest of the run proves nothing more
    client.shutdown().await;
    container.shutdown().await;
}

/// A consumer pulls the queues a topic gains on a second master during its run, from their start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_follows_the_route_to_a_new_master() {
    let dir = tempfile::tempdir().unwrap();
    let (container, ns, a, b) = two_broker_container(dir.path()).await;
    let client = RemotingClient::default();
    create_on(&client, &a, "FollowTopic").await;
    let route_has = |brokers: usize| {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            matches!(rmqc::bench::route(&client, &ns, "FollowTopic").await, Ok(Some(r)) if r.queue_datas.len() == brokers)
        }
    };
    wait_async("FollowTopic's route lists bench-a", Duration::from_secs(10), || route_has(1)).await;
    let args = ["consumer", "-n", &ns, "-t", "FollowTopic", "-g", "follow-g", "-q", "1", "-d", "10", "--interval", "1"];
    let run = spawn_bench(dir.path(), "follow", &[&args[..], &["--json"]].concat());
    // The first progress line: the run has its first route (bench-a only).
    let out = dir.path().join("follow.out");
    wait_async("the consumer runs", Duration::from_secs(10), || {
        let out = out.clone();
        async move { std::fs::read_to_string(out).is_ok_and(|t| t.contains("Consume TPS")) }
    })
    .await;
    create_on(&client, &b, "FollowTopic").await;
    wait_async("FollowTopic's route lists both", Duration::from_secs(10), || route_has(2)).await;
    let r = common::rmq::send(&client, &b, "FollowTopic", 0, b"on bench-b", &[]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let (status, stdout, stderr) = finish(run, dir.path(), "follow").await;
    assert!(status.success(), "the message on bench-b is consumed:\n{stdout}\n{stderr}");
    assert_eq!(json_of(&stdout, &stderr)["sent"], 1, "{stdout}");
    client.shutdown().await;
    container.shutdown().await;
}

/// The broker goes away in the middle of a run: every kind of failure is printed once with its
/// reason, senders back off (the failure count stays small), and the rate is reported over the
/// time messages were accepted next to the whole run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_dies_midway_is_reported_honestly() {
    let dir = tempfile::tempdir().unwrap();
    let (bfile, port) = write_broker(dir.path(), "bench-d", "maxMessageSize=65536\n");
    let (conf, _, ns) = write_container(dir.path(), &[&bfile]);
    let container =
        BrokerContainer::start(LoadedContainerConfig::load(&conf, None, None).unwrap(), false, None).await.unwrap();
    let (ns, addr) = (format!("127.0.0.1:{ns}"), format!("127.0.0.1:{port}"));
    let client = RemotingClient::default();
    let run = spawn_bench(
        dir.path(),
        "dies",
        &["producer", "-n", &ns, "-t", "DyingTopic", "-w", "4", "-s", "64", "-d", "4", "--json"],
    );
    wait_async("mqbench stores messages", Duration::from_secs(10), || {
        let (client, addr) = (client.clone(), addr.clone());
        async move { stored(&client, &addr, "DyingTopic").await > 0 }
    })
    .await;
    client.shutdown().await;
    container.shutdown().await;
    let (status, stdout, stderr) = finish(run, dir.path(), "dies").await;
    assert!(status.success(), "some messages were sent: {stdout}\n{stderr}");
    let j = json_of(&stdout, &stderr);
    let (sent, failures) = (j["sent"].as_u64().unwrap_or(0), j["failures"].as_u64().unwrap_or(0));
    assert!(sent > 0 && failures > 0, "{j}");
    // Four senders backing off up to 1 s for a few seconds fail tens of times, not thousands.
    assert!(failures < 1000, "senders back off: {failures} failures\n{j}");
    let kinds = j["failures_by_kind"].as_object().unwrap_or_else(|| panic!("failures_by_kind in {j}"));
    assert_eq!(kinds.values().map(|v| v.as_u64().unwrap_or(0)).sum::<u64>(), failures, "{j}");
    assert!(
        kinds.keys().any(|k| k == "connection refused" || k == "connection closed"),
        "a transport failure kind: {j}"
    );
    for kind in kinds.keys() {
        let first = format!("first failure of kind \"{kind}\"");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(&first)).collect();
        assert_eq!(lines.len(), 1, "{kind} is printed once, with its reason:\n{stderr}");
        assert!(lines[0].len() > first.len() + 20, "the line gives the reason: {}", lines[0]);
    }
    let (secs, served) = (j["seconds"].as_f64().unwrap_or(0.0), j["served_seconds"].as_f64().unwrap_or(0.0));
    assert!(served > 0.0 && served < secs, "served {served} s within the run's {secs} s: {j}");
    let (tps, overall) = (j["tps"].as_f64().unwrap_or(0.0), j["overall_tps"].as_f64().unwrap_or(0.0));
    let expect = sent as f64 / served;
    assert!((tps - expect).abs() <= expect * 0.01, "tps is over the served time: {tps} vs {expect}\n{j}");
    let expect_overall = sent as f64 / secs;
    assert!((overall - expect_overall).abs() <= expect_overall * 0.01, "overall_tps is over the run: {j}");
    assert!(stdout.contains("served"), "the summary shows the served window:\n{stdout}");
}
