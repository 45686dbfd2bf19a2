//! Flush tests: SYNC_FLUSH group commit, ASYNC_FLUSH progress, ENOSPC as a clean error.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmqc::store::mapped_file::MappedFile;
use rmqc::store::message::{decode_record, property, MessageInner};
use rmqc::store::{FlushDiskType, FlushFault, MessageStore, MessageStoreConfig, PutMessageStatus, StoreError};

fn cfg(dir: &std::path::Path, t: FlushDiskType) -> MessageStoreConfig {
    let mut c = MessageStoreConfig::with_root(dir);
    c.mapped_file_size_commit_log = 256 * 1024;
    c.mapped_file_size_consume_queue = 20 * 1000;
    c.max_hash_slot_num = 64;
    c.max_index_num = 2000;
    c.flush_disk_type = t;
    c.flush_interval_commit_log = 10;
    c.flush_commit_log_thorough_interval = 50;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_flush_group_commit_with_many_concurrent_puts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MessageStore::open(cfg(dir.path(), FlushDiskType::SyncFlush)).unwrap());
    let n = 400;
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let m = MessageInner::new("Sync", i % 4, vec![i as u8; 300]);
            let r = store.put_message(m).await;
            assert_eq!(r.status, PutMessageStatus::PutOk);
            let a = r.append.unwrap();
            // acknowledged ⇒ flushed
            assert!(store.commit_log_flushed_offset() >= a.end_offset());
            a.end_offset()
        }));
    }
    let mut max_end = 0;
    for t in tasks {
        max_end = max_end.max(t.await.unwrap());
    }
    assert_eq!(max_end, store.commit_log_max_offset());
    let flushes = store.commit_log_flush_count();
    println!("{n} concurrent SYNC_FLUSH puts used {flushes} flushes");
    assert!(flushes >= 1 && flushes < n as u64, "puts must share flushes, got {flushes}");
    // WAIT=false does not wait but still succeeds
    let mut m = MessageInner::new("Sync", 0, Bytes::from_static(b"nowait"));
    m.push_property(property::WAIT, "false");
    assert_eq!(store.put_message(m).await.status, PutMessageStatus::PutOk);
    store.shutdown().unwrap();
}

#[tokio::test]
async fn async_flush_catches_up_and_checkpoint_follows() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(cfg(dir.path(), FlushDiskType::AsyncFlush)).unwrap();
    let mut last_ts = 0;
    for i in 0..50 {
        let r = store.put_message(MessageInner::new("Async", 0, vec![i as u8; 1000])).await;
        last_ts = r.append.unwrap().store_timestamp;
    }
    let max = store.commit_log_max_offset();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.commit_log_flushed_offset() < max || store.checkpoint().physic_msg_timestamp < last_ts {
        assert!(Instant::now() < deadline, "async flush did not catch up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    store.shutdown().unwrap();
}

/// Unmounts the tmpfs when dropped (also on panic).
struct TmpfsMount(std::path::PathBuf);
impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn full_disk_is_a_clean_error_not_sigbus() {
    if !common::root_or_skip("full_disk_is_a_clean_error_not_sigbus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(dir.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        common::skip("full_disk_is_a_clean_error_not_sigbus", "mount -t tmpfs failed");
        return;
    }
    let _mount = TmpfsMount(dir.path().to_path_buf());

    // A mapped file larger than the device fails at allocation and leaves nothing behind.
    let big = dir.path().join("big");
    match MappedFile::create(&big, 0, 4 << 20) {
        Err(StoreError::NoSpace(p)) => assert_eq!(p, big),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(!big.exists());

    let root = dir.path().join("store");
    let mut c = cfg(&root, FlushDiskType::SyncFlush);
    c.mapped_file_size_commit_log = 768 * 1024;
    {
        let store = MessageStore::open(c).unwrap();
        let mut stored = Vec::new();
        let mut failed = None;
        for i in 0..400u32 {
            let m = MessageInner::new("Full", 0, vec![i as u8; 10_000]);
            let r = store.put_message(m).await;
            // FLUSH_DISK_TIMEOUT (a slow flush on a busy machine) still means stored.
            match (r.status.is_stored(), r.append) {
                (true, Some(a)) => stored.push((i, a.wrote_offset)),
                _ => {
                    failed = Some(r.status);
                    break;
                }
            }
        }
        assert_eq!(failed, Some(PutMessageStatus::CreateMappedFileFailed));
        assert!(stored.len() > 50);
        for (i, off) in &stored {
            let b = store.look_message_by_offset(*off).unwrap();
            assert_eq!(decode_record(&b, true).unwrap().body[0], *i as u8);
        }
        store.shutdown().unwrap();
    }
}

#[tokio::test]
async fn sync_flush_timeout_and_poisoning_after_a_failed_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path(), FlushDiskType::SyncFlush);
    c.sync_flush_timeout = 200;
    let store = MessageStore::open(c.clone()).unwrap();
    let ok = store.put_message(MessageInner::new("P", 0, vec![1u8; 10])).await;
    assert_eq!(ok.status, PutMessageStatus::PutOk);

    store.set_flush_fault_for_tests(FlushFault::Stall);
    let r = store.put_message(MessageInner::new("P", 0, vec![2u8; 10])).await;
    assert_eq!(r.status, PutMessageStatus::FlushDiskTimeout);
    assert!(r.status.is_stored() && r.append.is_some());

    store.set_flush_fault_for_tests(FlushFault::Fail);
    let r = store.put_message(MessageInner::new("P", 0, vec![3u8; 10])).await;
    assert_eq!(r.status, PutMessageStatus::UnknownError);
    assert!(store.is_poisoned());
    assert!(!store.is_writeable());
    let r = store.put_message(MessageInner::new("P", 0, vec![4u8; 10])).await;
    assert_eq!(r.status, PutMessageStatus::ServiceNotAvailable);
    assert!(r.append.is_none());
    store.clear_running_flags(rmqc::store::running_flags::NOT_WRITEABLE);
    assert!(!store.is_writeable(), "poisoning cannot be cleared");
    // not a clean shutdown: the abort file stays, the next open recovers
    let _ = store.shutdown();
    drop(store);
    assert!(dir.path().join("abort").exists());
    let store = MessageStore::open(c).unwrap();
    assert!(!store.last_exit_ok());
    assert!(store.is_writeable());
    assert_eq!(store.max_offset_in_queue("P", 0), 3);
}

#[tokio::test]
async fn running_flags_gate_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(cfg(dir.path(), FlushDiskType::AsyncFlush)).unwrap();
    store.set_running_flags(rmqc::store::running_flags::DISK_FULL);
    let r = store.put_message(MessageInner::new("F", 0, vec![1u8; 10])).await;
    assert_eq!(r.status, PutMessageStatus::ServiceNotAvailable);
    store.clear_running_flags(rmqc::store::running_flags::DISK_FULL);
    let r = store.put_message(MessageInner::new("F", 0, vec![1u8; 10])).await;
    assert_eq!(r.status, PutMessageStatus::PutOk);
}

#[test]
fn zero_from_clears_the_tail_of_a_mapped_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000000");
    let size = 64 * 1024;
    let f = MappedFile::create(&path, 0, size).unwrap();
    // SAFETY: test owns the only reference.
    unsafe { f.slice_mut(0, size).fill(0xAB) };
    f.set_wrote_pos(size);
    f.flush(0).unwrap();
    f.zero_from(5000).unwrap();
    assert!(f.slice(0, 5000).iter().all(|b| *b == 0xAB));
    assert!(f.slice(5000, size).iter().all(|b| *b == 0));
    drop(f);
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(on_disk.len(), size);
    assert!(on_disk[..5000].iter().all(|b| *b == 0xAB));
    assert!(on_disk[5000..].iter().all(|b| *b == 0));
}

#[test]
fn mapped_file_queue_preallocates_and_drops_the_next_file() {
    use rmqc::store::mapped_file_queue::MappedFileQueue;
    let dir = tempfile::tempdir().unwrap();
    let q = MappedFileQueue::load(dir.path(), 8192).unwrap();
    let f = q.last_or_create(0).unwrap();
    q.preallocate_next().unwrap();
    let next = dir.path().join("00000000000000008192");
    assert!(!next.exists(), "not before the last file is half full");
    f.set_wrote_pos(5000);
    q.preallocate_next().unwrap();
    assert!(next.exists());
    assert_eq!(q.len(), 1, "prepared file is not part of the queue yet");
    f.set_wrote_pos(8192);
    let n = q.last_or_create(0).unwrap();
    assert_eq!((n.from_offset(), q.len()), (8192, 2));
    n.set_wrote_pos(8000);
    q.preallocate_next().unwrap();
    assert!(dir.path().join("00000000000000016384").exists());
    q.truncate_dirty(100, false).unwrap();
    assert_eq!(q.len(), 1);
    assert!(!next.exists() && !dir.path().join("00000000000000016384").exists());
    assert_eq!(q.max_offset(), 100);
}
