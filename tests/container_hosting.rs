//! RIP-31 hosting with real processes: a container with two masters, a third added and removed at
//! runtime under load, per-broker log files, 50 add/remove cycles without leaks, and a restart that
//! finds the same brokers with their messages and offsets.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::rmq::{pull, send, wait_max_offset, T};
use common::{free_port_block, port_open, wait_until, ChildGuard};
use rmqc::protocol::codes::{request, response};
use rmqc::remoting::{RemotingClient, RemotingCommand};
use rmqc::store::message::decode_records;

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");

/// Runs mqadmin off the async runtime and returns (success, stdout + stderr).
async fn mqadmin(args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || std::process::Command::new(MQADMIN).args(&args).output().unwrap())
        .await
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn write_broker(dir: &Path, name: &str) -> (String, u16) {
    let port = free_port_block(2, 1);
    let file = format!("{name}.conf");
    std::fs::write(
        dir.join(&file),
        format!(
            "brokerClusterName=C\nbrokerName={name}\nbrokerId=0\nlistenPort={port}\nbrokerIP1=127.0.0.1\nstorePathRootDir={}\nmappedFileSizeCommitLog=1048576\nmaxHashSlotNum=1000\nmaxIndexNum=4000\nmappedFileSizeConsumeQueue=6000\nmaxMessageSize=65536\n",
            dir.join("store").join(name).display()
        ),
    )
    .unwrap();
    (file, port)
}

struct Proc {
    pid: u32,
}

impl Proc {
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map(|d| d.count()).unwrap_or(0)
    }
    fn status(&self, key: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

async fn admin(client: &RemotingClient, addr: &str, req: RemotingCommand) -> RemotingCommand {
    client.invoke(addr, req, Duration::from_secs(20)).await.expect("container answers")
}

fn add_req(path: &Path) -> RemotingCommand {
    RemotingCommand::request(request::ADD_BROKER).with_ext("configPath", path.display().to_string())
}

fn remove_req(name: &str) -> RemotingCommand {
    RemotingCommand::request(request::REMOVE_BROKER)
        .with_ext("brokerClusterName", "C")
        .with_ext("brokerName", name)
        .with_ext("brokerId", "0")
}

async fn cluster_has(client: &RemotingClient, ns: &str, name: &str) -> bool {
    let r = client.invoke(ns, RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO), T).await;
    r.map(|r| String::from_utf8_lossy(&r.body).contains(&format!("\"{name}\""))).unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_remove_logs_leaks_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (fa, pa) = write_broker(d, "broker-a");
    let (fb, pb) = write_broker(d, "broker-b");
    let (_fc, pc) = write_broker(d, "broker-c");
    let (conf, cport, nport) = common::write_container(d, &[&fa, &fb]);
    let mut child = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "container");
    wait_until("the container and both brokers listen", Duration::from_secs(30), || {
        port_open(cport) && port_open(pa) && port_open(pb)
    });
    let client = RemotingClient::default();
    let (caddr, ns) = (format!("127.0.0.1:{cport}"), format!("127.0.0.1:{nport}"));
    let (a, b, c) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"), format!("127.0.0.1:{pc}"));

    // Produce to and consume from both masters.
    for addr in [&a, &b] {
        for i in 0..5 {
            let r = send(&client, addr, "HostTopic", 0, format!("m{i}").as_bytes(), &[]).await;
            assert_eq!(r.code, response::SUCCESS, "{addr}: {:?}", r.remark);
        }
        wait_max_offset(&client, addr, "HostTopic", 0, 5).await;
        let r = pull(&client, addr, "hg", "HostTopic", 0, 0, "*", 0).await;
        assert_eq!(decode_records(&r.body, true).len(), 5);
        let commit = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", "hg")
            .with_ext("topic", "HostTopic")
            .with_ext("queueId", "0")
            .with_ext("commitOffset", "3");
        assert_eq!(client.invoke(addr, commit, T).await.unwrap().code, response::SUCCESS);
    }

    // Add a third broker at runtime with mqadmin: in `mqadmin clusterList` within 5 s and serving.
    let cpath = d.join("broker-c.conf");
    let (ok, out) = mqadmin(&["addBroker", "-c", &caddr, "-b", cpath.to_str().unwrap()]).await;
    assert!(ok && out.contains(&format!("add broker to {caddr} success")), "{out}");
    common::wait_async("broker-c in mqadmin clusterList", Duration::from_secs(5), || async {
        let (ok, out) = mqadmin(&["clusterList", "-n", &ns]).await;
        ok && out.contains("broker-c") && out.contains(&c)
    })
    .await;
    assert_eq!(send(&client, &c, "HostTopic", 0, b"on-c", &[]).await.code, response::SUCCESS);
    let r = pull(&client, &c, "hg", "HostTopic", 0, 0, "*", 10_000).await;
    assert_eq!(&decode_records(&r.body, true)[0].body[..], b"on-c");

    // Adding it again, a missing file, a file outside the allowed dirs, an unknown removal: clear
    // answers, and the container keeps serving.
    let r = admin(&client, &caddr, add_req(&d.join("broker-c.conf"))).await;
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r.remark.as_deref().unwrap_or("").contains("has already been added"), "{:?}", r.remark);
    let r = admin(&client, &caddr, add_req(&d.join("missing.conf"))).await;
    assert_eq!(r.code, response::SYSTEM_ERROR, "{:?}", r.remark);
    let r = admin(&client, &caddr, add_req(Path::new("/etc/hostname"))).await;
    assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);
    let r = admin(&client, &caddr, remove_req("nope")).await;
    assert_eq!(r.code, response::BROKER_NOT_EXIST, "{:?}", r.remark);

    // The add was persisted: a restart would host broker-c too.
    let file = std::fs::read_to_string(&conf).unwrap();
    assert!(file.contains("broker-c.conf"), "brokerConfigPaths rewritten:\n{file}");

    // A failed add (its port is taken) leaves nothing behind: no port, no registration, no open file.
    let proc_ = Proc { pid: child.0.as_ref().unwrap().id() };
    let (fx, px) = write_broker(d, "broker-x");
    // The test's own client connects to the NameServer before the baseline is taken.
    assert!(!cluster_has(&client, &ns, "broker-x").await);
    let fds_before = {
        let mut last = proc_.fds();
        // Settle first: the previous steps' connections may still be closing.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = proc_.fds();
            if now == last {
                break;
            }
            last = now;
        }
        last
    };
    let squatter = std::net::TcpListener::bind(("127.0.0.1", px)).unwrap();
    let r = admin(&client, &caddr, add_req(&d.join(&fx))).await;
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r.remark.as_deref().unwrap_or("").contains(&px.to_string()), "the remark names the port: {:?}", r.remark);
    drop(squatter);
    assert!(!port_open(px - 2), "the fast port of the failed broker is not left bound");
    assert!(!cluster_has(&client, &ns, "broker-x").await, "the failed broker is not registered");
    // Connections of the mqadmin processes above close asynchronously: wait for the count to settle.
    common::wait_async("no file left open by the failed add", Duration::from_secs(5), || async {
        proc_.fds() <= fds_before
    })
    .await;
    assert!(!std::fs::read_to_string(&conf).unwrap().contains("broker-x"), "a failed add is not persisted");
    // With the port free the same file adds fine (its store lock was released), then goes again.
    let r = admin(&client, &caddr, add_req(&d.join(&fx))).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = admin(&client, &caddr, remove_req("broker-x")).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);

    // Remove broker-c while a producer keeps sending to a and b: not a single failed send.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (client, stop, sent, a, b) = (client.clone(), stop.clone(), sent.clone(), a.clone(), b.clone());
        tokio::spawn(async move {
            for i in 0..200_000u64 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let addr = if i % 2 == 0 { &a } else { &b };
                let r = send(&client, addr, "LoadTopic", 0, b"x", &[]).await;
                assert_eq!(r.code, response::SUCCESS, "send to {addr} failed during removal: {:?}", r.remark);
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    common::wait_async("the producer runs", Duration::from_secs(10), || async { sent.load(Ordering::SeqCst) > 20 })
        .await;
    let (ok, out) = mqadmin(&["removeBroker", "-c", &caddr, "-b", "C:broker-c:0"]).await;
    assert!(ok && out.contains(&format!("remove broker from {caddr} success")), "{out}");
    let after = sent.load(Ordering::SeqCst);
    common::wait_async("the producer keeps going", Duration::from_secs(10), || async {
        sent.load(Ordering::SeqCst) > after + 20
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    producer.await.expect("no failed send");
    assert!(!port_open(pc), "broker-c's port is closed");
    common::wait_async("broker-c gone from the cluster", Duration::from_secs(5), || async {
        !cluster_has(&client, &ns, "broker-c").await
    })
    .await;

    // Each broker's lines are only in its own files.
    let logs = d.join("logs");
    for name in ["broker-a", "broker-b", "broker-c"] {
        let own = std::fs::read_to_string(logs.join(format!("C_{name}_0")).join("broker.log")).unwrap_or_default();
        assert!(own.contains(&format!("Broker [{name}-0] boot success")), "{name}'s broker.log:\n{own}");
        for other in ["broker-a", "broker-b", "broker-c"].iter().filter(|o| **o != name) {
            assert!(!own.contains(&format!("Broker [{other}-0]")), "{other}'s line in {name}'s log");
        }
    }
    let own_c = std::fs::read_to_string(logs.join("C_broker-c_0").join("broker.log")).unwrap();
    assert!(own_c.contains("shut down"), "the removal is logged in broker-c's own file");

    // 50 add/remove cycles: descriptors, threads and resident memory stay flat.
    let cycle = |client: RemotingClient| {
        let caddr = caddr.clone();
        let path = d.join("broker-c.conf");
        async move {
            let r = admin(&client, &caddr, add_req(&path)).await;
            assert_eq!(r.code, response::SUCCESS, "add: {:?}", r.remark);
            let r = admin(&client, &caddr, remove_req("broker-c")).await;
            assert_eq!(r.code, response::SUCCESS, "remove: {:?}", r.remark);
        }
    };
    for _ in 0..3 {
        cycle(client.clone()).await;
    }
    let (fd0, th0, rss0) = (proc_.fds(), proc_.status("Threads:"), proc_.status("VmRSS:"));
    for _ in 0..50 {
        cycle(client.clone()).await;
    }
    // Idle blocking-pool threads of the runtimes exit after their keep-alive (10 s): wait for
    // descriptors and threads to settle, with a deadline, before comparing.
    let settle = std::time::Instant::now() + Duration::from_secs(20);
    while (proc_.fds() > fd0 + 2 || proc_.status("Threads:") > th0 + 2) && std::time::Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (fd1, th1, rss1) = (proc_.fds(), proc_.status("Threads:"), proc_.status("VmRSS:"));
    eprintln!("after 50 cycles: fds {fd0}->{fd1}, threads {th0}->{th1}, rss {rss0}->{rss1} KiB");
    assert!(fd1 <= fd0 + 2, "file descriptors grew from {fd0} to {fd1}");
    assert!(th1 <= th0 + 2, "threads grew from {th0} to {th1}");
    assert!(rss1 <= rss0 + 32 * 1024, "resident memory grew from {rss0} KiB to {rss1} KiB");

    // After the adds and removes, the brokers listed in the file are written back as listed.
    let file = std::fs::read_to_string(&conf).unwrap();
    assert!(
        file.lines().any(|l| l == format!("brokerConfigPaths={fa}:{fb}")),
        "brokerConfigPaths kept as listed:\n{file}"
    );

    // Restart: the same brokers, with their messages and consumer offsets.
    let status = child.terminate();
    assert!(status.success(), "clean exit: {status:?}");
    let mut child = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "container2");
    wait_until("the restarted container and brokers listen", Duration::from_secs(30), || {
        port_open(cport) && port_open(pa) && port_open(pb)
    });
    assert!(!port_open(pc), "broker-c was removed and stays removed");
    for addr in [&a, &b] {
        let r = pull(&client, addr, "hg", "HostTopic", 0, 0, "*", 0).await;
        let msgs = decode_records(&r.body, true);
        assert_eq!(msgs.len(), 5, "{addr} kept its messages");
        let q = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
            .with_ext("consumerGroup", "hg")
            .with_ext("topic", "HostTopic")
            .with_ext("queueId", "0");
        let r = client.invoke(addr, q, T).await.unwrap();
        assert_eq!(r.ext("offset"), Some("3"), "{addr} kept the consumer offset: {:?}", r.remark);
    }
    client.shutdown().await;
    assert!(child.terminate().success());
}
