//! The load tool against a container on loopback: a bounded producer run and a consumer run, each
//! ending with the JSON summary line.

mod common;

use std::process::Command;

use common::{write_broker, write_container};
use rmqc::container::config::LoadedContainerConfig;
use rmqc::container::BrokerContainer;

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
    let (bfile, _) = write_broker(dir.path(), "bench-a", "maxMessageSize=65536\n");
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
