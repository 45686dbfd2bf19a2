//! Issue 18 (Kubernetes): the pod entrypoint picks its broker set from the pod's ordinal. Started
//! for ordinals 0, 1 and 2 of a 3-replica set on loopback (one port range per "pod"), the three
//! containers form RIP-31's cross deployment: every group has its master and both slaves
//! registered, and the slaves replicate.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port_block, port_open, text, wait_until, ChildGuard};

const NAMESRV: &str = env!("CARGO_BIN_EXE_mqnamesrv");
const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");
const ENTRYPOINT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/entrypoint.sh");

/// A port P such that P-2 ..= P+21 are free (three brokers at P, P+10, P+20).
fn port_range() -> u16 {
    free_port_block(2, 21)
}

fn pod(ordinal: u32, replicas: u32, ns: &str, data: &Path, base: u16, admin: u16, log_dir: &Path) -> ChildGuard {
    let bin_dir = Path::new(CONTAINER).parent().unwrap();
    let out = std::fs::File::create(log_dir.join(format!("pod{ordinal}.out"))).unwrap();
    let err = std::fs::File::create(log_dir.join(format!("pod{ordinal}.err"))).unwrap();
    let child = Command::new("bash")
        .arg(ENTRYPOINT)
        .arg("start")
        .env("POD_NAME", format!("rmqc-container-{ordinal}"))
        .env("POD_IP", "127.0.0.1")
        .env("REPLICAS", replicas.to_string())
        .env("NAMESRV_ADDR", ns)
        .env("DATA_DIR", data)
        .env("PORT_BASE", base.to_string())
        .env("ADMIN_PORT", admin.to_string())
        .env("METRICS_PORT", "0")
        .env("COMMITLOG_FILE_SIZE", "1048576")
        .env("EXTRA_BROKER_PROPS", "maxHashSlotNum=1000\nmaxIndexNum=4000\nmappedFileSizeConsumeQueue=6000\nmaxMessageSize=65536\nslaveTimeout=1500")
        .env("BIN_DIR", bin_dir)
        .env("HOME", data)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start the entrypoint");
    ChildGuard(Some(child))
}

#[test]
fn ordinals_form_the_three_replica_cross_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_ns, ns) = common::start_namesrv(NAMESRV, d);

    let mut pods = Vec::new();
    let mut bases = Vec::new();
    for ordinal in 0..3 {
        let base = port_range();
        let admin = free_port_block(2, 0);
        let data = d.join(format!("pod{ordinal}"));
        pods.push(pod(ordinal, 3, &ns, &data, base, admin, d));
        wait_until(&format!("pod {ordinal}'s brokers listen"), Duration::from_secs(30), || {
            port_open(admin) && [0, 10, 20].iter().all(|k| port_open(base + k))
        });
        bases.push(base);
    }

    // Every group broker-N has brokerId 0 on pod N, 1 on pod N+1 and 2 on pod N+2.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(MQADMIN).args(["clusterList", "-n", &ns]).output().unwrap();
        let last = text(&out);
        let mut all = true;
        for group in 0..3u16 {
            for id in 0..3u16 {
                let pod = ((group + id) % 3) as usize;
                let addr = format!("127.0.0.1:{}", bases[pod] + 10 * id);
                let found = last.lines().any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 3 && f[1] == format!("broker-{group}") && f[2] == id.to_string() && f[3] == addr
                });
                all &= found;
            }
        }
        if all {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the cross deployment did not form:\n{last}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The slaves replicate: a message sent to broker-1's master shows up on both its slaves.
    let out = Command::new(MQADMIN)
        .args(["sendMessage", "-n", &ns, "-t", "K8sTopic", "-p", "replicated", "-b", "broker-1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for id in [1u16, 2] {
        let pod = ((1 + id) % 3) as usize;
        let slave = format!("127.0.0.1:{}", bases[pod] + 10 * id);
        wait_until(&format!("broker-1 slave {id} replicated"), Duration::from_secs(20), || {
            let out = Command::new(MQADMIN).args(["brokerStatus", "-b", &slave]).output().unwrap();
            let t = text(&out);
            t.lines().any(|l| l.starts_with("haConnected") && l.contains("true"))
                && t.lines().any(|l| {
                    l.starts_with("commitLogMaxOffset")
                        && l.split_whitespace().last().and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) > 0
                })
        });
    }
    drop(pods);
}

#[test]
fn bad_ordinals_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, replicas, expect) in [
        ("rmqc-container-3", "3", "outside REPLICAS"),
        ("rmqc-container-x", "3", "cannot read an ordinal"),
        ("rmqc-0", "9", "REPLICAS"),
    ] {
        let out = Command::new("bash")
            .args([ENTRYPOINT, "configs"])
            .env("POD_NAME", name)
            .env("REPLICAS", replicas)
            .env("NAMESRV_ADDR", "127.0.0.1:9876")
            .env("DATA_DIR", dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}: {}", text(&out));
        assert!(text(&out).contains(expect), "{name}: {}", text(&out));
    }
    // Pod 1 of 2: master of broker-1, slave (id 1) of broker-0.
    let out = Command::new("bash")
        .args([ENTRYPOINT, "configs"])
        .env("POD_NAME", "rmqc-container-1")
        .env("REPLICAS", "2")
        .env("NAMESRV_ADDR", "127.0.0.1:9876")
        .env("DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let conf = dir.path().join("conf");
    let master = std::fs::read_to_string(conf.join("broker-1-0.conf")).unwrap();
    assert!(master.contains("brokerRole=SYNC_MASTER") && master.contains("listenPort=10911"), "{master}");
    let slave = std::fs::read_to_string(conf.join("broker-0-1.conf")).unwrap();
    assert!(slave.contains("brokerRole=SLAVE") && slave.contains("brokerId=1") && slave.contains("listenPort=10921"));
    let c = std::fs::read_to_string(conf.join("container.conf")).unwrap();
    assert!(c.contains("brokerConfigPaths=broker-1-0.conf:broker-0-1.conf"), "{c}");
}
