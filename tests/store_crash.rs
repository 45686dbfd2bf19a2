//! Crash and recovery tests. The process-level tests re-execute this test binary as a child
//! (`crash_child`, selected with `--exact`) that appends with SYNC_FLUSH and prints every
//! acknowledged message; the parent SIGKILLs it mid-stream and checks the reopened store.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rmqc::store::message::{check_record, decode_record, property, MessageInner, RecordCheck};
use rmqc::store::{FlushDiskType, GetMessageStatus, MessageStore, MessageStoreConfig, PutMessageStatus};

const CHILD_ENV: &str = "RMQC_STORE_CRASH_CHILD_DIR";
const FILE_SIZE: u64 = 64 * 1024;
const WRITERS: usize = 4;

fn cfg(dir: &Path) -> MessageStoreConfig {
    let mut c = MessageStoreConfig::with_root(dir);
    c.mapped_file_size_commit_log = FILE_SIZE;
    c.mapped_file_size_consume_queue = 20 * 64;
    c.max_hash_slot_num = 128;
    c.max_index_num = 400;
    c.flush_disk_type = FlushDiskType::SyncFlush;
    c.flush_interval_consume_queue = 20;
    c
}

fn body(i: u64) -> Vec<u8> {
    let n = 100 + (i as usize * 131) % 1100;
    (0..n).map(|j| (i as usize * 31 + j * 7) as u8).collect()
}

fn crash_msg(i: u64, q: i32) -> MessageInner {
    let mut m = MessageInner::new("CrashTopic", q, body(i));
    m.set_properties([(property::KEYS, format!("key{i}")), (property::UNIQ_KEY, format!("U{i:016}"))]);
    m
}

/// The child: appends from several writers forever, printing each acknowledgement.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // normal test run: nothing to do
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let store = std::sync::Arc::new(MessageStore::open(cfg(Path::new(&dir))).unwrap());
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for seq in 0u64.. {
                    let i = w as u64 * 1_000_000 + seq;
                    let r = store.put_message(crash_msg(i, w as i32)).await;
                    if r.status != PutMessageStatus::PutOk {
                        eprintln!("put failed: {:?}", r.status);
                        std::process::exit(3);
                    }
                    let a = r.append.unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {i} {w} {} {} {}", a.wrote_offset, a.logics_offset, a.wrote_bytes).unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[derive(Debug, Clone, Copy)]
struct Ack {
    i: u64,
    queue: i32,
    phys: i64,
    qoff: i64,
    size: usize,
}

fn run_child_and_kill(dir: &Path, acks_wanted: usize) -> Vec<Ack> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    // Watchdog so a stuck child cannot hang the test.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut acks = Vec::new();
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 6 && f[0] == "ACK" {
            acks.push(Ack {
                i: f[1].parse().unwrap(),
                queue: f[2].parse().unwrap(),
                phys: f[3].parse().unwrap(),
                qoff: f[4].parse().unwrap(),
                size: f[5].parse().unwrap(),
            });
            if acks.len() >= acks_wanted {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    let _ = child.wait();
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    assert!(acks.len() >= acks_wanted, "child died early after {} acks", acks.len());
    acks
}

fn commitlog_file(dir: &Path, phys: i64) -> (PathBuf, usize) {
    let start = phys as u64 / FILE_SIZE * FILE_SIZE;
    (dir.join("commitlog").join(format!("{start:020}")), (phys as u64 - start) as usize)
}

/// Checks the reopened store: acked messages intact (except `lost`), queues consistent, nothing torn.
fn verify(store: &MessageStore, acks: &[Ack], lost: Option<Ack>) {
    assert!(!store.last_exit_ok(), "abort file must mark the crash");
    for a in acks {
        if lost.is_some_and(|l| l.i == a.i) {
            assert!(store.look_message_by_offset(a.phys).is_none(), "corrupt record served");
            continue;
        }
        let b = store.look_message_by_offset(a.phys).expect("acked message present");
        assert_eq!(b.len(), a.size);
        let m = decode_record(&b, true).unwrap();
        assert_eq!(&m.body[..], &body(a.i)[..], "acked message {} byte-identical", a.i);
        assert_eq!((m.queue_id, m.queue_offset), (a.queue, a.qoff));
        let r = store.get_message("CrashTopic", a.queue, a.qoff, 1, 1 << 20, |_| true).unwrap();
        assert_eq!(r.status, GetMessageStatus::Found);
        assert_eq!(r.messages[0], b);
        let q = store.query_message("CrashTopic", &format!("key{}", a.i), 4, 0, i64::MAX);
        assert_eq!(q.messages.len(), 1, "index rebuilt for key{}", a.i);
    }
    let max = store.commit_log_max_offset();
    // Every consume queue entry points at a valid record with the right queue offset.
    for q in 0..WRITERS as i32 {
        let (min_q, max_q) = (store.min_offset_in_queue("CrashTopic", q), store.max_offset_in_queue("CrashTopic", q));
        let mut off = min_q;
        while off < max_q {
            let r = store.get_message("CrashTopic", q, off, 64, 1 << 24, |_| true).unwrap();
            assert_eq!(r.status, GetMessageStatus::Found);
            for (b, qo) in r.messages.iter().zip(&r.queue_offsets) {
                let m = decode_record(b, true).expect("consume queue points at a valid record");
                assert_eq!((m.queue_id, m.queue_offset), (q, *qo));
                assert!(m.commit_log_offset + m.store_size as i64 <= max);
            }
            off = r.next_begin_offset;
        }
        if let Some(l) = lost.filter(|l| l.queue == q) {
            assert_eq!(max_q, l.qoff, "queue cut at the corrupt record");
        }
    }
    // The whole commitlog scans cleanly up to max.
    let mut at = store.commit_log_min_offset();
    while at < max {
        let chunk = store.get_commit_log_data(at, usize::MAX).unwrap();
        match check_record(&chunk, true) {
            RecordCheck::Message(v) => {
                assert_eq!(v.commit_log_offset, at);
                at += v.store_size as i64;
            }
            RecordCheck::Blank(n) => at += n as i64,
            other => panic!("torn data at {at}: {other:?}"),
        }
    }
    assert_eq!(at, max);
}

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let acks = run_child_and_kill(dir.path(), 400);
    assert!(dir.path().join("abort").exists());
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    verify(&store, &acks, None);
}

#[test]
fn torn_tail_record_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let acks = run_child_and_kill(dir.path(), 300);
    let last = *acks.iter().max_by_key(|a| a.phys).unwrap();
    let (path, pos) = commitlog_file(dir.path(), last.phys);
    let mut data = std::fs::read(&path).unwrap();
    for b in &mut data[pos + last.size / 2..] {
        *b = 0;
    }
    std::fs::write(&path, &data).unwrap();
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    assert_eq!(store.commit_log_max_offset(), last.phys);
    verify(&store, &acks, Some(last));
}

#[test]
fn flipped_byte_in_last_record_is_cut_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let acks = run_child_and_kill(dir.path(), 300);
    let last = *acks.iter().max_by_key(|a| a.phys).unwrap();
    let (path, pos) = commitlog_file(dir.path(), last.phys);
    let mut data = std::fs::read(&path).unwrap();
    data[pos + 88 + 3] ^= 0x5A; // a body byte (IPv4 hosts: body starts at 88)
    std::fs::write(&path, &data).unwrap();
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    assert_eq!(store.commit_log_max_offset(), last.phys);
    verify(&store, &acks, Some(last));
}

// ---------------------------------------------------------------------------------------------
// In-process recovery tests (halt_for_tests simulates a crash without final flush / checkpoint).

fn async_cfg(dir: &Path) -> MessageStoreConfig {
    let mut c = cfg(dir);
    c.flush_disk_type = FlushDiskType::AsyncFlush;
    c
}

async fn put_n(store: &MessageStore, from: u64, n: u64) -> Vec<(u64, i64, i64, usize)> {
    let mut v = Vec::new();
    for i in from..from + n {
        let a = store.put_message(crash_msg(i, 0)).await.append.unwrap();
        v.push((i, a.wrote_offset, a.logics_offset, a.wrote_bytes));
    }
    v
}

async fn wait_dispatched(store: &MessageStore) {
    let target = store.commit_log_max_offset();
    let mut rx = store.subscribe_dispatched();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|v| *v >= target)).await.unwrap().unwrap();
}

#[tokio::test]
async fn crash_recovery_rebuilds_queues_and_index_and_zeroes_the_cut_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(async_cfg(dir.path())).unwrap();
    let w = put_n(&store, 0, 120).await;
    wait_dispatched(&store).await;
    store.halt_for_tests();
    drop(store);
    // corrupt message 100: everything from it on is cut
    let (_, phys, _, _) = w[100];
    let (path, pos) = commitlog_file(dir.path(), phys);
    let mut data = std::fs::read(&path).unwrap();
    data[pos + 88] ^= 1;
    std::fs::write(&path, &data).unwrap();
    // also lose the index entirely: it must be rebuilt
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();

    let store = MessageStore::open(async_cfg(dir.path())).unwrap();
    assert!(!store.last_exit_ok());
    assert_eq!(store.commit_log_max_offset(), phys);
    assert_eq!(store.max_offset_in_queue("CrashTopic", 0), 100);
    let data = std::fs::read(&path).unwrap();
    assert!(data[pos..].iter().all(|b| *b == 0), "cut tail zeroed");
    for (i, _, _, _) in &w[..100] {
        let q = store.query_message("CrashTopic", &format!("key{i}"), 4, 0, i64::MAX);
        assert_eq!(q.messages.len(), 1);
    }
    // new, smaller messages after the cut; crash again; old records must not come back
    let w2 = put_n(&store, 5000, 3).await;
    assert_eq!(w2[0].2, 100);
    wait_dispatched(&store).await;
    store.halt_for_tests();
    drop(store);
    let store = MessageStore::open(async_cfg(dir.path())).unwrap();
    assert_eq!(store.max_offset_in_queue("CrashTopic", 0), 103);
    let last = w2.last().unwrap();
    assert_eq!(store.commit_log_max_offset(), last.1 + last.3 as i64);
    store.shutdown().unwrap();
}

#[tokio::test]
async fn clean_restart_rebuilds_deleted_consume_queues() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(async_cfg(dir.path())).unwrap();
    let w = put_n(&store, 0, 200).await;
    store.shutdown().unwrap();
    drop(store);
    std::fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
    let store = MessageStore::open(async_cfg(dir.path())).unwrap();
    assert!(store.last_exit_ok());
    assert_eq!(store.max_offset_in_queue("CrashTopic", 0), 200);
    for (i, phys, qoff, _) in &w {
        let r = store.get_message("CrashTopic", 0, *qoff, 1, 1 << 20, |_| true).unwrap();
        let m = decode_record(&r.messages[0], true).unwrap();
        assert_eq!((m.commit_log_offset, &m.body[..]), (*phys, &body(*i)[..]));
    }
    let a = store.put_message(crash_msg(9, 0)).await.append.unwrap();
    assert_eq!(a.logics_offset, 200);
}

#[tokio::test]
async fn garbage_after_clean_end_is_cut_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(async_cfg(dir.path())).unwrap();
    let w = put_n(&store, 0, 10).await;
    store.shutdown().unwrap();
    drop(store);
    let end = w.last().map(|x| x.1 + x.3 as i64).unwrap();
    let (path, pos) = commitlog_file(dir.path(), end);
    let mut data = std::fs::read(&path).unwrap();
    data[pos..pos + 8].copy_from_slice(&[0, 0, 1, 0, 0xDA, 0xA3, 0x20, 0xA7]); // half a header
    std::fs::write(&path, &data).unwrap();
    let store = MessageStore::open(async_cfg(dir.path())).unwrap();
    assert_eq!(store.commit_log_max_offset(), end);
    assert!(store.look_message_by_offset(end).is_none());
    let a = store.put_message(crash_msg(11, 0)).await.append.unwrap();
    assert_eq!(a.wrote_offset, end);
}

#[tokio::test]
async fn index_entries_beyond_a_cut_do_not_hide_new_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(async_cfg(dir.path())).unwrap();
    let w = put_n(&store, 0, 20).await;
    wait_dispatched(&store).await;
    // wait until the index (and consume queues) are flushed and checkpointed past the last message
    let last_ts = store.message_store_timestamp("CrashTopic", 0, 19).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.checkpoint().index_msg_timestamp < last_ts || store.checkpoint().logics_msg_timestamp < last_ts {
        assert!(std::time::Instant::now() < deadline, "checkpoint not updated");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    store.halt_for_tests();
    drop(store);
    // the commitlog loses messages 10.. (as if its pages never reached the disk)
    let (_, phys, _, _) = w[10];
    let (path, pos) = commitlog_file(dir.path(), phys);
    let mut data = std::fs::read(&path).unwrap();
    for b in &mut data[pos..] {
        *b = 0;
    }
    std::fs::write(&path, &data).unwrap();
    let store = MessageStore::open(async_cfg(dir.path())).unwrap();
    assert_eq!(store.commit_log_max_offset(), phys);
    let w2 = put_n(&store, 7000, 5).await;
    wait_dispatched(&store).await;
    for (i, _, _, _) in w[..10].iter().chain(&w2) {
        let q = store.query_message("CrashTopic", &format!("key{i}"), 4, 0, i64::MAX);
        assert_eq!(q.messages.len(), 1, "key{i} indexed");
    }
    for (i, _, _, _) in &w[10..] {
        let q = store.query_message("CrashTopic", &format!("key{i}"), 4, 0, i64::MAX);
        assert!(q.messages.is_empty(), "cut key{i} must not be found");
    }
}
