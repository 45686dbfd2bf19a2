//! A full disk must never leave an acknowledged message unconsumable (issue 11, point 4).
//!
//! - Puts to new queues on a full tmpfs: every put answered OK is readable through its consume
//!   queue; the put that would need a consume-queue (or index) file that cannot be allocated is
//!   refused with CREATE_MAPPED_FILE_FAILED, puts that need nothing new keep working, and once
//!   space returns puts are accepted again without a restart.
//! - A dispatch that is stuck on a full disk (replicated data) logs once, not every 100 ms, and
//!   recovers by itself (running flags cleared) when space returns.
//! - Index files are sized from the disk quota; existing index files keep their size.
//! - Files allocated ahead of time count in the logical disk usage.
//!
//! The tmpfs tests need root (mount); otherwise they print "skipped: needs root to mount tmpfs".
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::fs::File;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::wait_until;
use rmqc::store::consume_queue::{ConsumeQueue, CqEntry};
use rmqc::store::index::{IndexGeometry, IndexService};
use rmqc::store::message::{decode_record, property, MessageInner};
use rmqc::store::{GetMessageStatus, MessageStore, MessageStoreConfig, PutMessageStatus};

/// Everything the store logs in this test binary (all tests share it; filter by store path).
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Capture(b.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captured log lines that contain every one of `parts`.
fn log_lines(parts: &[&str]) -> Vec<String> {
    let buf = captured();
    let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    text.lines().filter(|l| parts.iter().all(|p| l.contains(p))).map(str::to_string).collect()
}

/// Prints the captured lines about `root` when STORE_DISK_FULL_SHOW_LOGS is set.
fn show_logs(root: &Path) {
    if std::env::var_os("STORE_DISK_FULL_SHOW_LOGS").is_some() {
        println!("==== {} ====\n{}", root.display(), log_lines(&[]).join("\n"));
    }
}

/// A tmpfs mounted for the test, unmounted (lazily if busy) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts `mib` MiB at `at`, or `None` (with the skip line printed) when not root.
    fn mount(test: &str, at: &Path, mib: u64) -> Option<Tmpfs> {
        if !common::root_or_skip(test) {
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "disk-full-test"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        Some(Tmpfs(at.to_path_buf()))
    }

    /// Bytes still available.
    fn available(&self) -> u64 {
        let (_, avail, frsize) = statvfs(&self.0);
        avail * frsize
    }

    /// Size of the partition.
    fn total(&self) -> u64 {
        let (blocks, _, frsize) = statvfs(&self.0);
        blocks * frsize
    }

    /// A neighbour's file that takes all available space but `leave` bytes.
    fn fill_leaving(&self, leave: u64) -> PathBuf {
        let path = self.0.join("filler.bin");
        let f = File::create(&path).unwrap();
        let len = self.available().saturating_sub(leave);
        // SAFETY: valid fd.
        let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len as libc::off_t) };
        assert_eq!(rc, 0, "fallocate filler of {len} bytes");
        let left = self.available();
        assert!(left <= leave + 64 * 1024, "{left} bytes left");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// (blocks, available blocks, fragment size) of the filesystem holding `p`.
fn statvfs(p: &Path) -> (u64, u64, u64) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: zeroed plain C struct filled by the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out pointer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    (st.f_blocks as u64, st.f_bavail as u64, st.f_frsize as u64)
}

fn config(root: &Path) -> MessageStoreConfig {
    let mut c = MessageStoreConfig::with_root(root);
    c.mapped_file_size_commit_log = 2 << 20;
    c.mapped_file_size_consume_queue = 60_000;
    c.max_hash_slot_num = 1000;
    c.max_index_num = 4000;
    c.flush_interval_commit_log = 10;
    c
}

fn keyed(topic: &str, i: usize) -> MessageInner {
    let mut m = MessageInner::new(topic, 0, format!("message {i}").into_bytes());
    m.push_property(property::KEYS, &format!("k{i}"));
    m
}

/// An acknowledged put: where it must be found.
#[derive(Debug, Clone)]
struct Acked {
    topic: String,
    queue_offset: i64,
    phys: i64,
}

/// Acknowledged messages that cannot be read back through their consume queue.
fn unreadable(store: &MessageStore, acked: &[Acked]) -> Vec<Acked> {
    acked
        .iter()
        .filter(|a| {
            let r = store.get_message(&a.topic, 0, a.queue_offset, 1, 1 << 20, |_: i64| true);
            let found = r.as_ref().is_ok_and(|r| r.status == GetMessageStatus::Found && r.messages.len() == 1);
            !found || decode_record(&r.unwrap().messages[0], true).map(|m| m.commit_log_offset).ok() != Some(a.phys)
        })
        .cloned()
        .collect()
}

/// Waits (bounded) for the dispatcher to reach the end of the commitlog; false on timeout.
fn caught_up(store: &MessageStore, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if store.dispatched_offset() >= store.commit_log_max_offset() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_puts_to_new_queues_stay_readable_on_a_full_disk() {
    captured();
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) =
        Tmpfs::mount("acknowledged_puts_to_new_queues_stay_readable_on_a_full_disk", &dir.path().join("disk"), 16)
    else {
        return;
    };
    let root = disk.0.join("store");
    let store = MessageStore::open(config(&root)).unwrap();
    let mut acked = Vec::new();
    let r = store.put_message(keyed("T0", 0)).await;
    assert_eq!(r.status, PutMessageStatus::PutOk);
    acked.push(Acked { topic: "T0".into(), queue_offset: 0, phys: r.append.unwrap().wrote_offset });
    assert!(caught_up(&store, Duration::from_secs(10)));
    // A neighbour takes the disk: room is left for a few consume-queue files of 60 000 bytes.
    let filler = disk.fill_leaving(250 * 1024);

    // One message to each new topic until the store refuses.
    let mut refused = None;
    for i in 1..2000 {
        let topic = format!("T{i}");
        let r = store.put_message(keyed(&topic, i)).await;
        match (r.status.is_stored(), r.append) {
            (true, Some(a)) => acked.push(Acked { topic, queue_offset: a.logics_offset, phys: a.wrote_offset }),
            _ => {
                refused = Some((i, r.status));
                break;
            }
        }
    }
    let (first_refused, status) = refused.expect("the full disk refused a put");
    let dispatched = caught_up(&store, Duration::from_secs(5));
    let lost = unreadable(&store, &acked);
    println!(
        "{} puts acknowledged, {} readable, first refused: T{first_refused}",
        acked.len(),
        acked.len() - lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages cannot be read (dispatch caught up: {dispatched}): {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(dispatched, "dispatch caught up");
    assert_eq!(status, PutMessageStatus::CreateMappedFileFailed);
    assert!(acked.len() >= 3, "a few new queues fitted: {}", acked.len());

    // A queue that has its file still takes messages; the new one is refused again.
    let r = store.put_message(keyed("T0", 9000)).await;
    assert_eq!(r.status, PutMessageStatus::PutOk);
    acked.push(Acked { topic: "T0".into(), queue_offset: 1, phys: r.append.unwrap().wrote_offset });
    let r = store.put_message(keyed(&format!("T{first_refused}"), first_refused)).await;
    assert_eq!(r.status, PutMessageStatus::CreateMappedFileFailed);
    assert!(store.is_writeable(), "a refused put raises no running flag");

    // The neighbour goes: the same store accepts the new queues at once, no restart.
    std::fs::remove_file(filler).unwrap();
    for i in first_refused..first_refused + 20 {
        let topic = format!("T{i}");
        let r = store.put_message(keyed(&topic, i)).await;
        assert_eq!(r.status, PutMessageStatus::PutOk, "put to {topic} after space returned");
        let a = r.append.unwrap();
        acked.push(Acked { topic, queue_offset: a.logics_offset, phys: a.wrote_offset });
    }
    assert!(caught_up(&store, Duration::from_secs(10)), "dispatch caught up after space returned");
    assert!(unreadable(&store, &acked).is_empty());
    assert_eq!(store.running_flags(), 0);
    assert_eq!(store.index_entries_reserved(), 0, "every reserved index entry was written");
    let q = store.query_message(&format!("T{first_refused}"), &format!("k{first_refused}"), 1, 0, i64::MAX);
    assert_eq!(q.messages.len(), 1, "indexed");
    let root_s = root.to_str().unwrap();
    let refusals = log_lines(&["cannot allocate consume queue or index space", root_s]);
    assert_eq!(refusals.len(), 1, "the refusal is logged once: {refusals:#?}");
    assert!(log_lines(&["dispatch failed", root_s]).is_empty(), "dispatch never failed");
    show_logs(&root);
    assert_eq!(log_lines(&["puts accepted", "refused_puts=2"]).len(), 1, "the recovery is logged");
    store.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_needing_a_new_index_file_is_refused_on_a_full_disk() {
    captured();
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) =
        Tmpfs::mount("a_put_needing_a_new_index_file_is_refused_on_a_full_disk", &dir.path().join("disk"), 8)
    else {
        return;
    };
    let root = disk.0.join("store");
    let mut c = config(&root);
    // 9 999 entries (1 999 messages of 5 keys) per index file of 204 040 bytes.
    c.max_index_num = 10_000;
    let store = MessageStore::open(c).unwrap();
    let msg = |i: usize| {
        let mut m = MessageInner::new("Keys", 0, format!("message {i}").into_bytes());
        m.push_property(property::KEYS, &format!("a{i} b{i} c{i} d{i} e{i}"));
        m
    };
    let mut acked = Vec::new();
    let r = store.put_message(msg(0)).await;
    acked.push(Acked { topic: "Keys".into(), queue_offset: 0, phys: r.append.unwrap().wrote_offset });
    assert!(caught_up(&store, Duration::from_secs(10)));
    // Room for consume-queue files, not for a second index file.
    let filler = disk.fill_leaving(150 * 1024);
    let mut refused = None;
    for i in 1..5000 {
        let r = store.put_message(msg(i)).await;
        match (r.status.is_stored(), r.append) {
            (true, Some(a)) => {
                acked.push(Acked { topic: "Keys".into(), queue_offset: a.logics_offset, phys: a.wrote_offset })
            }
            _ => {
                refused = Some(r.status);
                break;
            }
        }
    }
    let dispatched = caught_up(&store, Duration::from_secs(5));
    let lost = unreadable(&store, &acked);
    println!("{} keyed puts acknowledged, {} readable", acked.len(), acked.len() - lost.len());
    assert!(lost.is_empty(), "{} of {} acknowledged messages cannot be read", lost.len(), acked.len());
    assert!(dispatched);
    assert_eq!(refused, Some(PutMessageStatus::CreateMappedFileFailed));
    assert_eq!(acked.len(), 1999, "the first index file holds 9 999 entries: 1 999 messages of 5 keys");
    let last = acked.len() - 1;
    assert_eq!(store.query_message("Keys", &format!("e{last}"), 1, 0, i64::MAX).messages.len(), 1);
    // A message without keys needs no index space.
    let r = store.put_message(MessageInner::new("Keys", 0, b"no keys".to_vec())).await;
    assert_eq!(r.status, PutMessageStatus::PutOk);

    std::fs::remove_file(filler).unwrap();
    let r = store.put_message(msg(5000)).await;
    assert_eq!(r.status, PutMessageStatus::PutOk);
    assert!(caught_up(&store, Duration::from_secs(10)));
    assert_eq!(store.query_message("Keys", "e5000", 1, 0, i64::MAX).messages.len(), 1);
    assert_eq!(store.running_flags(), 0);
    store.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_dispatch_logs_once_and_recovers_when_space_returns() {
    captured();
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) =
        Tmpfs::mount("a_stuck_dispatch_logs_once_and_recovers_when_space_returns", &dir.path().join("disk"), 8)
    else {
        return;
    };
    // The master (on the ordinary disk) holds one message in each of 30 new queues.
    let master = MessageStore::open(config(&dir.path().join("master"))).unwrap();
    for i in 0..30 {
        let r = master.put_message(MessageInner::new(format!("R{i}"), 0, vec![b'r'; 100])).await;
        assert_eq!(r.status, PutMessageStatus::PutOk);
    }
    let data = master.get_commit_log_data(0, 1 << 20).unwrap();
    assert_eq!(data.len() as i64, master.commit_log_max_offset());

    // The slave's disk has room for its commitlog file and two consume-queue files.
    let root = disk.0.join("slave");
    let slave = MessageStore::open(config(&root)).unwrap();
    let filler = disk.fill_leaving((2 << 20) + 150 * 1024);
    slave.append_raw(0, &data).unwrap();
    wait_until("the slave's dispatch has failed 20 times", Duration::from_secs(20), || {
        slave.dispatch_failed_attempts() >= 20
    });
    assert!(slave.dispatched_offset() < slave.commit_log_max_offset());
    assert!(!slave.is_writeable(), "writes are refused while dispatch is stuck");
    let root_s = root.to_str().unwrap();
    let errors = log_lines(&["ERROR", "dispatch", root_s]);
    println!("{} failed dispatch attempts, {} error lines", slave.dispatch_failed_attempts(), errors.len());
    assert_eq!(errors.len(), 1, "one line for 20 attempts: {errors:#?}");

    // Space returns: dispatch catches up by itself and writes are accepted again.
    std::fs::remove_file(filler).unwrap();
    wait_until("the slave's dispatch caught up and writes are accepted", Duration::from_secs(20), || {
        slave.dispatched_offset() >= slave.commit_log_max_offset() && slave.is_writeable()
    });
    assert_eq!(slave.dispatch_failed_attempts(), 0);
    assert_eq!(slave.running_flags(), 0);
    for i in 0..30 {
        let r = slave.get_message(&format!("R{i}"), 0, 0, 1, 1 << 20, |_: i64| true).unwrap();
        assert_eq!(r.status, GetMessageStatus::Found, "R{i}");
    }
    show_logs(&root);
    let recovered = log_lines(&["dispatch recovered", "failed_attempts="]);
    assert!(!recovered.is_empty(), "the recovery is logged");
    assert_eq!(log_lines(&["ERROR", "dispatch", root_s]).len(), 1);
    slave.shutdown().unwrap();
    master.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_files_are_sized_from_the_disk_quota() {
    captured();
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount("index_files_are_sized_from_the_disk_quota", &dir.path().join("disk"), 64) else {
        return;
    };
    let root = disk.0.join("store");
    // The sample configs' geometry: a 42 000 040-byte index file, most of this disk.
    let mut c = MessageStoreConfig::with_root(&root);
    c.mapped_file_size_commit_log = 1 << 20;
    c.mapped_file_size_consume_queue = 60_000;
    c.max_hash_slot_num = 500_000;
    c.max_index_num = 2_000_000;
    let cap = disk.total() / 8;
    let index_files = || {
        let mut v: Vec<(PathBuf, u64)> = std::fs::read_dir(root.join("index"))
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.path(), e.metadata().unwrap().len()))
            .collect();
        v.sort();
        v
    };
    {
        let store = MessageStore::open(c.clone()).unwrap();
        let r = store.put_message(keyed("Idx", 1)).await;
        assert_eq!(r.status, PutMessageStatus::PutOk);
        assert!(caught_up(&store, Duration::from_secs(10)));
        let files = index_files();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(
            files[0].1 <= cap,
            "index file of {} bytes on a disk of {} bytes (cap {cap})",
            files[0].1,
            disk.total()
        );
        assert_eq!(store.query_message("Idx", "k1", 1, 0, i64::MAX).messages.len(), 1);
        let g = store.index_geometry_for_new_files();
        assert!(g.file_size() <= cap && g.file_size() > cap / 2, "{g:?}");
        // Scaled proportionally.
        assert_eq!(g.entries.div_ceil(g.slots), 4, "{g:?}");
        store.shutdown().unwrap();
    }
    let warned = log_lines(&["WARN", "maxIndexNum=2000000", "disk quota"]);
    assert!(!warned.is_empty(), "the cap is logged at start");
    let first = index_files();

    // A quarter of the partition: new files get smaller, the existing one keeps its size.
    c.disk_share = 0.25;
    let store = MessageStore::open(c.clone()).unwrap();
    assert!(store.index_geometry_for_new_files().file_size() <= cap / 4);
    assert_eq!(index_files(), first);
    assert_eq!(store.query_message("Idx", "k1", 1, 0, i64::MAX).messages.len(), 1);
    let r = store.put_message(keyed("Idx", 2)).await;
    assert_eq!(r.status, PutMessageStatus::PutOk);
    assert!(caught_up(&store, Duration::from_secs(10)));
    assert_eq!(store.query_message("Idx", "k2", 1, 0, i64::MAX).messages.len(), 1);
    let usage = store.logical_disk_usage();
    store.shutdown().unwrap();
    assert!(usage < disk.total() / 2, "{usage}");
}

#[test]
fn index_files_keep_their_geometry_when_the_cap_changes() {
    let dir = tempfile::tempdir().unwrap();
    let configured = IndexGeometry::new(10, 40);
    assert_eq!(configured.file_size(), 40 + 40 + 800);
    let small = configured.capped(400);
    assert!(small.file_size() <= 400 && small != configured, "{small:?}");
    assert_eq!(configured.for_file_len(small.file_size()), Some(small));
    assert_eq!(configured.for_file_len(configured.file_size()), Some(configured));
    assert_eq!(configured.capped(1 << 20), configured);
    assert_eq!(configured.capped(0), IndexGeometry::new(1, 2));
    // A sample-config geometry under a 64 MiB disk's cap.
    let sample = IndexGeometry::new(500_000, 2_000_000);
    let g = sample.capped(8 << 20);
    assert!(g.file_size() <= 8 << 20 && g.file_size() > 6 << 20, "{g:?}");
    assert_eq!(sample.for_file_len(g.file_size()), Some(g));

    let keys = |from: usize, to: usize| (from..to).map(|i| format!("key{i}")).collect::<Vec<_>>();
    // Full-size files first (45 keys: two files of 39 entries each at most).
    let (svc, _) = IndexService::load_with(dir.path(), configured, configured, false, 0).unwrap();
    for (i, k) in keys(0, 45).iter().enumerate() {
        svc.build("T", None, Some(k), 100 + i as i64, 1_000_000 + i as i64).unwrap();
    }
    let bytes_full = svc.total_bytes();
    assert_eq!(bytes_full, 2 * configured.file_size());
    drop(svc);
    // Capped: the existing files open with their own size, new ones are small.
    let (svc, _) = IndexService::load_with(dir.path(), configured, small, false, 0).unwrap();
    for (i, k) in keys(45, 100).iter().enumerate() {
        svc.build("T", None, Some(k), 200 + i as i64, 2_000_000 + i as i64).unwrap();
    }
    assert!(svc.total_bytes() > bytes_full);
    for k in ["key0", "key44", "key45", "key99"] {
        assert_eq!(svc.query("T", k, 1, 0, i64::MAX).len(), 1, "{k}");
    }
    drop(svc);
    // Reopened with the full geometry again: every file still opens.
    let (svc, _) = IndexService::load_with(dir.path(), configured, configured, false, 0).unwrap();
    for k in ["key0", "key60", "key99"] {
        assert_eq!(svc.query("T", k, 1, 0, i64::MAX).len(), 1, "{k}");
    }
    drop(svc);
    // A file of a size no geometry of this configuration has is refused, as before.
    assert!(IndexService::load_with(dir.path(), IndexGeometry::new(7, 41), small, false, 0).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_allocated_ahead_count_in_the_logical_usage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let mut c = config(&root);
    c.mapped_file_size_consume_queue = 2000; // 100 entries
    c.max_hash_slot_num = 10;
    c.max_index_num = 100;
    c.flush_interval_consume_queue = 10;
    let store = MessageStore::open(c.clone()).unwrap();
    for i in 0..80 {
        let r = store.put_message(keyed("Ahead", i)).await;
        assert_eq!(r.status, PutMessageStatus::PutOk);
    }
    assert!(caught_up(&store, Duration::from_secs(10)));
    let count = |d: &Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    let cq_dir = root.join("consumequeue").join("Ahead").join("0");
    // 80 of 100 entries: the next consume-queue file is allocated ahead of time; so is the next
    // index file (80 of 99 entries).
    wait_until("the next consume-queue and index files are allocated ahead", Duration::from_secs(10), || {
        count(&cq_dir) == 2 && count(&root.join("index")) == 2
    });
    let on_disk: u64 = [root.join("commitlog"), cq_dir, root.join("index")]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(store.logical_disk_usage(), on_disk);
    // The prepared files are used: 40 more messages fill the first files and go on in the next.
    for i in 80..120 {
        let r = store.put_message(keyed("Ahead", i)).await;
        assert_eq!(r.status, PutMessageStatus::PutOk);
    }
    assert!(caught_up(&store, Duration::from_secs(10)));
    assert_eq!(store.max_offset_in_queue("Ahead", 0), 120);
    assert_eq!(store.query_message("Ahead", "k119", 1, 0, i64::MAX).messages.len(), 1);
    store.shutdown().unwrap();
    // A restart with files allocated ahead on disk recovers the right offsets.
    let store = MessageStore::open(c).unwrap();
    assert_eq!(store.max_offset_in_queue("Ahead", 0), 120);
    assert_eq!(store.query_message("Ahead", "k100", 1, 0, i64::MAX).messages.len(), 1);
    store.shutdown().unwrap();
}

#[test]
fn consume_queue_recovery_ignores_trailing_preallocated_files() {
    let dir = tempfile::tempdir().unwrap();
    let size = 200u64; // 10 entries
    {
        let q = ConsumeQueue::load(dir.path(), "T", 0, size).unwrap();
        for i in 0..25 {
            q.put(CqEntry { phys_offset: i * 100, size: 100, tags_code: 0 }, i).unwrap();
        }
        q.flush().unwrap();
    }
    // Five more files allocated ahead of time (all zeros), as a reservation leaves them.
    for from in [600u64, 800, 1000, 1200, 1400] {
        std::fs::write(dir.path().join(format!("{from:020}")), vec![0u8; size as usize]).unwrap();
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 8);
    let q = ConsumeQueue::load(dir.path(), "T", 0, size).unwrap();
    q.recover().unwrap();
    assert_eq!(q.max_offset_in_queue(), 25);
    assert_eq!(q.max_physic_offset(), 2500);
    assert_eq!(q.entry(24).map(|e| e.phys_offset), Some(2400));
    assert_eq!(q.entry(25), None);
}
