//! Store cleanup with injected disk usage and clock: DISK_FULL set and cleared, expired files at
//! `deleteWhen` and past `diskMaxUsedSpaceRatio`, forced cleaning on a logical quota, the current
//! file kept, consume queues and index following, readers sent to the new min offset.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rmqc::store::cleanup::{CleanupClock, CleanupPolicy, DiskProbe, PartitionUsage};
use rmqc::store::message::{property, MessageInner};
use rmqc::store::{running_flags, GetMessageStatus, MessageStore, MessageStoreConfig, PutMessageStatus};

const FILE: u64 = 64 * 1024;

/// A probe answering injected numbers for every path.
struct FakeProbe(Mutex<Option<PartitionUsage>>);

impl FakeProbe {
    fn new(ratio: f64, total: u64) -> Self {
        FakeProbe(Mutex::new(Some(PartitionUsage { ratio, total_bytes: total })))
    }
    fn set(&self, ratio: f64) {
        if let Some(u) = self.0.lock().unwrap().as_mut() {
            u.ratio = ratio;
        }
    }
}

impl DiskProbe for FakeProbe {
    fn partition(&self, _path: &Path) -> Option<PartitionUsage> {
        *self.0.lock().unwrap()
    }
}

fn config(dir: &Path) -> MessageStoreConfig {
    let mut c = MessageStoreConfig::with_root(dir);
    c.mapped_file_size_commit_log = FILE;
    c.mapped_file_size_consume_queue = 20 * 50;
    c.max_hash_slot_num = 64;
    c.max_index_num = 100;
    c.flush_interval_commit_log = 20;
    c.flush_interval_consume_queue = 50;
    c
}

fn msg(i: usize) -> MessageInner {
    let mut m = MessageInner::new("CleanTopic", 0, vec![i as u8; 1000]);
    m.set_properties([(property::KEYS, format!("k{i}"))]);
    m
}

async fn fill(store: &MessageStore, n: usize) {
    for i in 0..n {
        let r = store.put_message(msg(i)).await;
        assert_eq!(r.status, PutMessageStatus::PutOk, "put {i}");
    }
    let target = store.commit_log_max_offset();
    let mut rx = store.subscribe_dispatched();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|v| *v >= target))
        .await
        .expect("dispatched within 10 s")
        .expect("watch open");
}

fn commitlog_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn clock(now_ms: i64, hour: u32) -> CleanupClock {
    CleanupClock { now_ms, local_hour: hour }
}

fn policy() -> CleanupPolicy {
    CleanupPolicy { delete_when_hours: vec![4], ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_flag_follows_the_warning_level() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    fill(&store, 10).await;
    let probe = FakeProbe::new(0.50, 1 << 30);
    let now = rmqc::util::now_millis();
    let r = store.run_cleanup(&policy(), &probe, clock(now, 10)).unwrap();
    assert!(!r.deletion_ran && r.disk_full_changed.is_none());

    probe.set(0.93);
    let r = store.run_cleanup(&policy(), &probe, clock(now, 10)).unwrap();
    assert_eq!(r.disk_full_changed, Some(true));
    assert!(r.assessment.clean_immediately && r.deletion_ran);
    assert!(r.deleted_commit_log_files.is_empty(), "one file only: the current file stays");
    assert_ne!(store.running_flags() & running_flags::DISK_FULL, 0);
    let put = store.put_message(msg(99)).await;
    assert_eq!(put.status, PutMessageStatus::ServiceNotAvailable);
    let a = store.last_disk_assessment().unwrap();
    assert_eq!(a.reason.as_deref(), Some("commitlog disk ratio 0.93 > warning level 0.90"));

    // 0.87: still cleaning at once, but writes are accepted again.
    probe.set(0.87);
    let r = store.run_cleanup(&policy(), &probe, clock(now, 10)).unwrap();
    assert_eq!(r.disk_full_changed, Some(false));
    assert!(r.assessment.clean_immediately);
    assert_eq!(store.put_message(msg(100)).await.status, PutMessageStatus::PutOk);
    store.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_files_go_at_delete_when_or_past_max_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    fill(&store, 400).await; // ~420 KB: 7 files
    let files = commitlog_files(dir.path());
    assert!(files.len() >= 6, "{files:?}");
    let probe = FakeProbe::new(0.50, 1 << 30);
    let now = rmqc::util::now_millis();
    let later = now + 73 * 3_600_000;

    // Not expired, usage fine, hour matches: nothing goes.
    let r = store.run_cleanup(&policy(), &probe, clock(now, 4)).unwrap();
    assert!(r.time_up && r.deletion_ran && !r.clean_at_once);
    assert!(r.deleted_commit_log_files.is_empty());
    // Expired, but neither the hour nor the usage asks: nothing runs.
    let r = store.run_cleanup(&policy(), &probe, clock(later, 10)).unwrap();
    assert!(!r.deletion_ran);
    // (The flush thread may add the preallocated next file meanwhile: compare the front.)
    assert_eq!(commitlog_files(dir.path())[..files.len() - 1], files[..files.len() - 1]);
    assert_eq!(store.commit_log_min_offset(), 0);

    // Expired and past diskMaxUsedSpaceRatio: at most deleteFileBatchMax go, oldest first.
    probe.set(0.80);
    let p = CleanupPolicy { delete_file_batch_max: 2, ..policy() };
    let r = store.run_cleanup(&p, &probe, clock(later, 10)).unwrap();
    assert!(r.deletion_ran && !r.clean_at_once);
    assert_eq!(r.deleted_commit_log_files.len(), 2);
    assert_eq!(commitlog_files(dir.path())[..files.len() - 3], files[2..files.len() - 1]);
    assert_eq!(store.commit_log_min_offset(), 2 * FILE as i64);

    // Expired at deleteWhen: the rest goes except the current file.
    probe.set(0.50);
    let r = store.run_cleanup(&policy(), &probe, clock(later, 4)).unwrap();
    assert!(r.time_up);
    let left = commitlog_files(dir.path());
    assert_eq!(left.len(), 1 + usize::from(left.len() == 2), "{left:?}");
    let last = store.commit_log_max_offset() as u64 / FILE * FILE;
    assert_eq!(store.commit_log_min_offset() as u64, last);
    assert!(r.deleted_consume_queue_files > 0, "consume queue files follow: {r:?}");

    // A reader that fell behind is sent to the new min offset.
    let min = store.min_offset_in_queue("CleanTopic", 0);
    assert!(min > 0);
    let g = store.get_message("CleanTopic", 0, 0, 32, 1 << 20, |_| true).unwrap();
    assert_eq!(g.status, GetMessageStatus::OffsetTooSmall);
    assert_eq!(g.next_begin_offset, min);
    let g = store.get_message("CleanTopic", 0, min, 32, 1 << 20, |_| true).unwrap();
    assert_eq!(g.status, GetMessageStatus::Found);
    assert!(store.earliest_message_time_in_store().is_some());
    store.shutdown().unwrap();

    // The deletions survive a restart.
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.commit_log_min_offset() as u64, last);
    assert_eq!(store.min_offset_in_queue("CleanTopic", 0), min);
    store.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logical_quota_cleans_forcibly_and_manual_trigger_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    fill(&store, 400).await;
    let before = commitlog_files(dir.path());
    let logical = store.logical_disk_usage();
    assert!(logical >= before.len() as u64 * FILE, "{logical}");
    let now = rmqc::util::now_millis();

    // Quota = total * 0.5; make the logical ratio 0.70: nothing (physical 0.20 is fine too).
    let total = (logical as f64 / 0.70 / 0.5) as u64;
    let probe = FakeProbe::new(0.20, total);
    let p = CleanupPolicy { disk_share: 0.5, ..policy() };
    let r = store.run_cleanup(&p, &probe, clock(now, 10)).unwrap();
    assert!(!r.deletion_ran, "{r:?}");
    assert!((r.assessment.logical_ratio - 0.70).abs() < 0.01);

    // The manual trigger runs deletion of expired files only: none are.
    store.trigger_delete_files();
    let r = store.run_cleanup(&p, &probe, clock(now, 10)).unwrap();
    assert!(r.manual && r.deletion_ran && r.deleted_commit_log_files.is_empty());

    // Logical ratio 0.85 > 0.8: the oldest files go although not expired.
    let total = (logical as f64 / 0.85 / 0.5) as u64;
    let probe = FakeProbe::new(0.20, total);
    let r = store.run_cleanup(&p, &probe, clock(now, 10)).unwrap();
    assert!(r.clean_at_once, "{r:?}");
    let current = store.commit_log_max_offset() as u64 / FILE;
    assert!(before.len() as u64 > current, "{before:?}");
    assert_eq!(r.deleted_commit_log_files.len() as u64, current, "all but the current file");
    assert_eq!(store.commit_log_min_offset() as u64, current * FILE);
    assert!(store.logical_disk_usage() < logical);
    assert_eq!(store.running_flags() & running_flags::DISK_FULL, 0, "the quota never refuses writes");

    // cleanFileForciblyEnable=false: nothing that has not expired goes.
    fill(&store, 200).await;
    let min = store.commit_log_min_offset();
    let total = (store.logical_disk_usage() as f64 / 0.85 / 0.5) as u64;
    let probe = FakeProbe::new(0.20, total);
    let p2 = CleanupPolicy { clean_file_forcibly: false, ..p };
    let r = store.run_cleanup(&p2, &probe, clock(now, 10)).unwrap();
    assert!(r.deletion_ran && !r.clean_at_once && r.deleted_commit_log_files.is_empty());
    assert_eq!(store.commit_log_min_offset(), min);
    store.shutdown().unwrap();
}
