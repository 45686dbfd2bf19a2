//! Disk quotas on a real small filesystem: a 48 MiB tmpfs mounted by the test hosts two brokers of
//! one container process, each with half of the partition (one through RIP-31's
//! `quotaPercentForDiskPartition`, one through Apache's `replicasPerDiskPartition`).
//!
//! - Filling broker A past 80 % of its quota removes A's oldest files and none of B's, and A keeps
//!   accepting writes; a consumer of A that fell behind is moved to the new min offset.
//! - A neighbour filling the disk past 90 % makes both brokers answer SERVICE_NOT_AVAILABLE (14)
//!   with a remark naming the disk ratio; both clean their old files; writes succeed again by
//!   themselves once usage falls (the neighbour shrinks), and again when a broker's own cleanup
//!   brings usage back under the warning level.
//!
//! Needs root (mount); otherwise it prints why and passes.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::rmq::{pull, runtime_info, send};
use common::{free_port_block, port_open, root_or_skip, wait_until, ChildGuard};
use rmqc::protocol::codes::{request, response};
use rmqc::remoting::{RemotingClient, RemotingCommand};
use rmqc::store::message::decode_records;

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");
const DISK_MIB: u64 = 48;
const BODY: usize = 32 * 1024;

/// A tmpfs mounted for the test, unmounted (lazily if busy) when dropped.
struct MountGuard(PathBuf);

impl MountGuard {
    fn tmpfs(at: &Path, mib: u64) -> MountGuard {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "quota-test", at.to_str().unwrap()])
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        MountGuard(at.to_path_buf())
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        let p = self.0.to_str().unwrap_or_default().to_string();
        let ok = Command::new("umount").arg(&p).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").args(["-l", &p]).status();
        }
    }
}

/// `df`'s Use% of the partition holding `p`, and its size.
fn usage(p: &Path) -> (f64, u64) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    let (total, free, avail) = (st.f_blocks as u64, st.f_bfree as u64, st.f_bavail as u64);
    let used = total - free;
    (((used * 100).div_ceil(used + avail)) as f64 / 100.0, total * st.f_frsize as u64)
}

/// A neighbour's file on the shared partition.
struct Filler {
    file: File,
    len: u64,
}

impl Filler {
    fn create(path: &Path) -> Filler {
        Filler { file: File::create(path).unwrap(), len: 0 }
    }
    /// Grows by `bytes` (allocated); false if the disk is full.
    fn grow(&mut self, bytes: u64) -> bool {
        let rc = unsafe { libc::posix_fallocate(self.file.as_raw_fd(), self.len as i64, bytes as i64) };
        if rc == 0 {
            self.len += bytes;
        }
        rc == 0
    }
    /// Grows 256 KiB at a time until the partition's ratio reaches `ratio` (bounded); returns the
    /// ratio reached.
    fn grow_to(&mut self, dir: &Path, ratio: f64) -> f64 {
        for _ in 0..(DISK_MIB * 4) {
            let now = usage(dir).0;
            if now >= ratio || !self.grow(256 * 1024) {
                return now;
            }
        }
        usage(dir).0
    }
}

fn write_broker(dir: &Path, store: &Path, name: &str, share_key: &str) -> (String, u16) {
    let port = free_port_block(2, 1);
    let file = format!("{name}.conf");
    std::fs::write(
        dir.join(&file),
        format!(
            "brokerClusterName=C\nbrokerName={name}\nbrokerId=0\nlistenPort={port}\nbrokerIP1=127.0.0.1\n\
             storePathRootDir={}\nmappedFileSizeCommitLog=1048576\nmappedFileSizeConsumeQueue=6000\n\
             maxHashSlotNum=1000\nmaxIndexNum=4000\nmaxMessageSize=65536\ncleanResourceInterval=100\n\
             {share_key}\n",
            store.join(name).display()
        ),
    )
    .unwrap();
    (file, port)
}

fn commitlog_files(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("commitlog"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn num(t: &serde_json::Map<String, serde_json::Value>, k: &str) -> f64 {
    t.get(k).and_then(|v| v.as_str()).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{k} in {t:?}"))
}

async fn min_offset(client: &RemotingClient, addr: &str, topic: &str) -> i64 {
    let req = RemotingCommand::request(request::GET_MIN_OFFSET).with_ext("topic", topic).with_ext("queueId", "0");
    let r = client.invoke(addr, req, common::rmq::T).await.expect("min offset answered");
    r.ext("offset").and_then(|o| o.parse().ok()).expect("offset")
}

async fn send_ok(client: &RemotingClient, addr: &str, topic: &str, n: usize) {
    let body = vec![b'x'; BODY];
    for i in 0..n {
        let r = send(client, addr, topic, 0, &body, &[]).await;
        assert_eq!(r.code, response::SUCCESS, "send {i} to {addr}: {:?}", r.remark);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_cleanup_and_disk_full_on_a_real_filesystem() {
    if !root_or_skip("quota_cleanup_and_disk_full_on_a_real_filesystem") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Declared before the container so it is dropped (unmounted) after the container is killed.
    let mnt = MountGuard::tmpfs(&d.join("disk"), DISK_MIB);
    let disk = mnt.0.clone();
    let (fa, pa) = write_broker(d, &disk, "broker-a", "quotaPercentForDiskPartition=0.5");
    let (fb, pb) = write_broker(d, &disk, "broker-b", "replicasPerDiskPartition=2");
    let (store_a, store_b) = (disk.join("broker-a"), disk.join("broker-b"));
    let cport = free_port_block(2, 0);
    let nport = free_port_block(0, 0);
    let conf = d.join("container.conf");
    std::fs::write(
        &conf,
        format!(
            "listenPort={cport}\nbindAddress=127.0.0.1\nembeddedNamesrvEnable=true\nembeddedNamesrvPort={nport}\n\
             namesrvAddr=127.0.0.1:{nport}\nbrokerConfigPaths={fa}:{fb}\nbrokerConfigDirs=.\nlogRoot={}\n",
            d.join("logs").display()
        ),
    )
    .unwrap();
    let _child = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "container");
    wait_until("the container and both brokers listen", Duration::from_secs(30), || {
        port_open(cport) && port_open(pa) && port_open(pb)
    });
    let client = RemotingClient::default();
    let (a, b) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    let (_, total) = usage(&disk);
    let quota = total / 2;

    // Runtime info (and mqadmin brokerStatus) show the ratio, the quota and the logical usage.
    let t = runtime_info(&client, &b).await;
    assert_eq!(num(&t, "diskQuota") as u64, quota);
    assert!(num(&t, "commitLogDiskRatio") >= 0.0 && num(&t, "consumeQueueDiskRatio") >= 0.0);
    let out = Command::new(MQADMIN).args(["brokerStatus", "-b", &a]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for k in ["commitLogDiskRatio", "diskQuota", "logicalDiskUsage", "logicalDiskRatio", "earliestMessageTimeStamp"] {
        assert!(text.lines().any(|l| l.starts_with(k)), "brokerStatus shows {k}:\n{text}");
    }

    // B holds 8 MiB, a third of its quota: it must not lose anything below.
    send_ok(&client, &b, "TopicB", 256).await;
    let b_files = commitlog_files(&store_b);
    assert!(b_files.len() >= 8, "{b_files:?}");

    // A consumer of A reads the first messages, then falls behind.
    send_ok(&client, &a, "TopicA", 10).await;
    let r = pull(&client, &a, "lagging", "TopicA", 0, 0, "*", 0).await;
    assert_eq!(r.code, response::SUCCESS);
    assert!(!decode_records(&r.body, true).is_empty());

    // Fill A past 80 % of its quota (19.2 MiB): A's cleanup removes its oldest files while every
    // send keeps succeeding.
    let body = vec![b'a'; BODY];
    let mut sent = 10;
    let deadline = Instant::now() + Duration::from_secs(120);
    while commitlog_files(&store_a).first().map(String::as_str) == Some("00000000000000000000") {
        assert!(Instant::now() < deadline && sent < 2000, "A's first file never went ({sent} messages sent)");
        let r = send(&client, &a, "TopicA", 0, &body, &[]).await;
        assert_eq!(r.code, response::SUCCESS, "A refused message {sent}: {:?}", r.remark);
        sent += 1;
    }
    assert!(sent as u64 * BODY as u64 > quota * 3 / 4, "A went only after {sent} messages");
    send_ok(&client, &a, "TopicA", 40).await;
    assert_eq!(commitlog_files(&store_b), b_files, "none of B's files went");
    assert_eq!(runtime_info(&client, &b).await["commitLogMinOffset"], "0");
    let ta = runtime_info(&client, &a).await;
    assert!(num(&ta, "commitLogMinOffset") > 0.0);
    assert!(num(&ta, "logicalDiskRatio") < 0.8, "A is back under its threshold: {ta:?}");
    assert!(num(&ta, "logicalDiskUsage") > 0.0 && num(&ta, "earliestMessageTimeStamp") > 0.0);
    let first_usage = usage(&disk).0;
    assert!(first_usage < 0.75, "the physical thresholds were not involved: {first_usage}");

    // The lagging consumer is moved to the new min offset, and reads on from there. (The consume
    // queue follows the commitlog within the same cleanup run; until then a pull of a removed
    // offset answers PULL_RETRY_IMMEDIATELY, as Apache's MESSAGE_WAS_REMOVING.)
    common::wait_async("A's consume queue follows the commitlog", Duration::from_secs(10), || {
        let (client, a) = (&client, &a);
        async move { min_offset(client, a, "TopicA").await > 0 }
    })
    .await;
    let a_min = min_offset(&client, &a, "TopicA").await;
    assert!(a_min > 10, "{a_min}");
    let r = pull(&client, &a, "lagging", "TopicA", 0, 0, "*", 0).await;
    assert_eq!(r.code, response::PULL_OFFSET_MOVED, "{:?}", r.remark);
    assert_eq!(r.ext("nextBeginOffset"), Some(a_min.to_string().as_str()));
    let r = pull(&client, &a, "lagging", "TopicA", 0, a_min, "*", 0).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert!(!decode_records(&r.body, true).is_empty());

    // A neighbour fills the disk past 90 % and keeps it there: both brokers clean everything they
    // can and refuse writes with code 14 and a remark naming the disk ratio.
    // The oldest file each broker holds now: forced cleanup deletes from there.
    let oldest = |store: &Path| commitlog_files(store).first().cloned().unwrap_or_default();
    let (oldest_a, oldest_b) = (oldest(&store_a), oldest(&store_b));
    let mut filler = Filler::create(&disk.join("neighbour.bin"));
    let probe = vec![b'p'; 1024];
    common::wait_async("both brokers refuse writes with code 14", Duration::from_secs(60), || {
        filler.grow_to(&disk, 0.96);
        let (client, a, b, probe) = (&client, &a, &b, &probe);
        async move {
            let ra = send(client, a, "TopicA", 0, probe, &[]).await;
            let rb = send(client, b, "TopicB", 0, probe, &[]).await;
            ra.code == response::SERVICE_NOT_AVAILABLE && rb.code == response::SERVICE_NOT_AVAILABLE
        }
    })
    .await;
    for addr in [&a, &b] {
        let r = send(&client, addr, "TopicA", 0, &probe, &[]).await;
        assert_eq!(r.code, response::SERVICE_NOT_AVAILABLE, "{addr}");
        let remark = r.remark.unwrap_or_default();
        assert!(
            remark.contains("the broker's disk is full [")
                && remark.contains("disk ratio 0.9")
                && remark.contains("> warning level 0.90"),
            "{addr}: {remark}"
        );
    }
    // Each broker deletes its oldest files (at most `deleteFileBatchMax` a run, and only while the
    // disk stays above the forced-cleanup ratio: one run may bring it below, leaving newer files).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(oldest(&store_a) > oldest_a && oldest(&store_b) > oldest_b) {
        if Instant::now() >= deadline {
            let logs = |b: &str| {
                let dir = d.join("logs").join(format!("C_{b}_0"));
                let mut out = String::new();
                for f in ["broker.log", "store.log"] {
                    let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(15).collect();
                    out.push_str(&format!("--- {b}/{f}\n{}\n", tail.into_iter().rev().collect::<Vec<_>>().join("\n")));
                }
                out
            };
            panic!(
                "timed out after 30 s waiting for both brokers to delete their oldest files (A {oldest_a}, B {oldest_b}): A {:?}, B {:?}, disk {:?}\nA: {:?}\nB: {:?}\n{}{}",
                commitlog_files(&store_a),
                commitlog_files(&store_b),
                usage(&disk),
                runtime_info(&client, &a).await,
                runtime_info(&client, &b).await,
                logs("broker-a"),
                logs("broker-b"),
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // The neighbour cleans up: writes succeed again by themselves.
    drop(filler);
    std::fs::remove_file(disk.join("neighbour.bin")).unwrap();
    common::wait_async("both brokers accept writes again", Duration::from_secs(30), || {
        let (client, a, b, probe) = (&client, &a, &b, &probe);
        async move {
            send(client, a, "TopicA", 0, probe, &[]).await.code == response::SUCCESS
                && send(client, b, "TopicB", 0, probe, &[]).await.code == response::SUCCESS
        }
    })
    .await;

    // Past 90 % once more, but this time A's own cleanup frees enough: A accepts writes again
    // without the neighbour shrinking.
    send_ok(&client, &a, "TopicA", 200).await; // ~6.5 MiB, well under A's quota
    let before = commitlog_files(&store_a);
    let mut filler = Filler::create(&disk.join("neighbour2.bin"));
    // Up to 0.84 step by step (below every threshold that deletes on a shared partition), then
    // one fixed step to ~0.92: whenever A's cleanup runs, the end result is the same.
    let reached = filler.grow_to(&disk, 0.84);
    assert!(reached < 0.85, "{reached}");
    let step = ((0.92 - reached) * total as f64) as u64 / 4096 * 4096;
    assert!(filler.grow(step), "the last step fits");
    let filler_len = filler.len;
    // A run that deletes files has set DISK_FULL first; a success after it means a later run
    // cleared the flag.
    common::wait_async("A's cleanup deletes files and writes come back", Duration::from_secs(30), || {
        let (client, a, probe, store_a, n) = (&client, &a, &probe, &store_a, before.len());
        async move {
            commitlog_files(store_a).len() < n
                && send(client, a, "TopicA", 0, probe, &[]).await.code == response::SUCCESS
        }
    })
    .await;
    assert_eq!(filler.len, filler_len);
    assert!(usage(&disk).0 <= 0.90, "{:?}", usage(&disk));
    assert!(commitlog_files(&store_a).len() < before.len(), "A deleted files: {before:?}");

    // Every deletion and threshold crossing is in the broker's own logs (store.log, as Apache's
    // store logger; broker.log for the rest).
    let log = |name: &str| {
        let dir = d.join("logs").join(format!("C_{name}_0"));
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        format!("{}{}", read("store.log"), read("broker.log"))
    };
    let (log_a, log_b) = (log("broker-a"), log("broker-b"));
    if std::env::var_os("DISK_QUOTA_SHOW_LOGS").is_some() {
        println!("==== broker-a ====\n{log_a}\n==== broker-b ====\n{log_b}");
    }
    assert!(log_a.contains("logical disk usage rose"), "A's log:\n{log_a}");
    assert!(log_a.contains("deleted commitlog file") && log_a.contains("broker-a/commitlog/0000"), "A's log");
    assert!(!log_a.contains("broker-b/commitlog"), "B's files in A's log");
    assert!(!log_b.contains("broker-a/commitlog"), "A's files in B's log");
    for (name, l) in [("A", &log_a), ("B", &log_b)] {
        assert!(l.contains("so mark disk full"), "{name}'s log");
        assert!(l.contains("so mark disk ok"), "{name}'s log");
        assert!(l.contains("physical disk usage rose"), "{name}'s log");
    }
    assert!(log_a.matches("deleted commitlog file").count() >= 20, "A's log:\n{log_a}");
    let before_pressure = log_b.split("physical disk usage rose").next().unwrap_or_default();
    assert!(!before_pressure.contains("deleted commitlog file"), "B deleted nothing before the neighbour:\n{log_b}");
    client.shutdown().await;
}
