//! Per-broker log routing: lines logged inside a broker's span (including by tasks the transport
//! spawns for that broker's port) land only in that broker's files.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

use std::sync::Arc;
use std::time::Duration;

use rmqc::logging::{init_with_router, CONTAINER_LOG_DIR};
use rmqc::remoting::{FnProcessor, ProcessorTable, RemotingClient, RemotingCommand, RemotingServer, ServerConfig};
use tracing::Instrument;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broker_logs_only_to_its_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let router = init_with_router(dir.path());
    let server = RemotingServer::new(ServerConfig { bind_address: "127.0.0.1".parse().unwrap(), ..Default::default() });
    let mut ports = Vec::new();
    for name in ["C_broker-a_0", "C_broker-b_0"] {
        let span = tracing::info_span!("broker", broker = name);
        let mut table = ProcessorTable::new();
        table.register(
            7,
            Arc::new(FnProcessor(move |_c, req: RemotingCommand| async move {
                tracing::info!(code = req.code, "processing a request in {}", name);
                Some(RemotingCommand::success(&req))
            })),
        );
        let sub = async {
            tracing::info!("starting {name}");
            tracing::info!(target: "rmqc::store::commitlog", "store line of {name}");
            server.bind(0, table, None).await.unwrap()
        }
        .instrument(span)
        .await;
        ports.push((name, sub));
    }
    tracing::info!("a container line");
    let client = RemotingClient::default();
    for (_, sub) in &ports {
        for _ in 0..3 {
            let addr = format!("127.0.0.1:{}", sub.port());
            let r = client.invoke(&addr, RemotingCommand::request(7), Duration::from_secs(5)).await;
            assert_eq!(r.unwrap().code, 0);
        }
    }
    let read = |id: &str, file: &str| {
        std::fs::read_to_string(dir.path().join(id).join(format!("{file}.log"))).unwrap_or_default()
    };
    for (name, other) in [("C_broker-a_0", "C_broker-b_0"), ("C_broker-b_0", "C_broker-a_0")] {
        let broker = read(name, "broker");
        assert!(broker.contains(&format!("starting {name}")), "{broker}");
        assert_eq!(broker.matches(&format!("processing a request in {name}")).count(), 3, "{broker}");
        assert!(!broker.contains(other), "a line of {other} landed in {name}'s broker.log:\n{broker}");
        let store = read(name, "store");
        assert!(store.contains(&format!("store line of {name}")) && !store.contains(other), "{store}");
        assert!(!broker.contains("store line"), "store lines go to store.log only");
    }
    let container = read(CONTAINER_LOG_DIR, "broker");
    assert!(container.contains("a container line"));
    assert!(!container.contains("processing a request"), "{container}");

    assert!(router.open_files() >= 5);
    router.close("C_broker-a_0");
    assert!(!router.dir_of("C_broker-a_0").join("nonexistent").exists());
    let open_after = router.open_files();
    client.shutdown().await;
    for (_, sub) in ports {
        sub.close().await;
    }
    assert!(open_after < 5, "a closed broker's files are released");
    server.shutdown().await;
}
