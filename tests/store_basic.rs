//! Store integration tests: multi-file write/read by queue offset, msgId and key; statuses;
//! batches; transactions; append_raw; restart; lock and load errors.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use rmqc::store::consume_queue::BoundaryType;
use rmqc::store::message::{self, decode_offset_msg_id, decode_record, property, sysflag, MessageInner};
use rmqc::store::{GetMessageStatus, MessageStore, MessageStoreConfig, PutMessageStatus, StoreError};

fn small_config(dir: &std::path::Path) -> MessageStoreConfig {
    let mut c = MessageStoreConfig::with_root(dir);
    c.mapped_file_size_commit_log = 64 * 1024;
    c.mapped_file_size_consume_queue = 20 * 100;
    c.max_hash_slot_num = 64;
    c.max_index_num = 200;
    c.max_msgs_num_batch = 1000;
    c.flush_interval_commit_log = 20;
    c.flush_interval_consume_queue = 50;
    c
}

fn body(i: usize) -> Vec<u8> {
    (0..100 + (i * 37) % 400).map(|j| (i * 7 + j) as u8).collect()
}

fn msg(topic: &str, q: i32, i: usize) -> MessageInner {
    let mut m = MessageInner::new(topic, q, body(i));
    m.set_properties([
        (property::KEYS, format!("k{i} common{}", i % 7)),
        (property::UNIQ_KEY, format!("UNIQ{i:08}")),
        (property::TAGS, format!("tag{}", i % 3)),
    ]);
    m
}

async fn wait_dispatched(store: &MessageStore) {
    let target = store.commit_log_max_offset();
    let mut rx = store.subscribe_dispatched();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|v| *v >= target))
        .await
        .expect("dispatch did not catch up within 10 s")
        .expect("watch closed");
}

struct Written {
    i: usize,
    queue: i32,
    queue_offset: i64,
    phys: i64,
    msg_id: String,
}

async fn write_many(store: &MessageStore, n: usize) -> Vec<Written> {
    let mut out = Vec::new();
    for i in 0..n {
        let q = (i % 3) as i32;
        let r = store.put_message(msg("TopicA", q, i)).await;
        assert_eq!(r.status, PutMessageStatus::PutOk, "put {i}");
        let a = r.append.unwrap();
        out.push(Written { i, queue: q, queue_offset: a.logics_offset, phys: a.wrote_offset, msg_id: a.msg_id });
    }
    out
}

fn check_all(store: &MessageStore, written: &[Written]) {
    // by queue offset
    let mut per_queue: HashMap<i32, Vec<&Written>> = HashMap::new();
    for w in written {
        per_queue.entry(w.queue).or_default().push(w);
    }
    for (q, ws) in &per_queue {
        assert_eq!(store.max_offset_in_queue("TopicA", *q), ws.len() as i64);
        let mut off = 0i64;
        let mut got = Vec::new();
        loop {
            let r = store.get_message("TopicA", *q, off, 32, 1 << 20, |_| true).unwrap();
            if r.status == GetMessageStatus::OffsetOverflowOne {
                break;
            }
            assert_eq!(r.status, GetMessageStatus::Found, "queue {q} offset {off}");
            assert!(r.next_begin_offset > off);
            off = r.next_begin_offset;
            got.extend(r.messages);
        }
        assert_eq!(got.len(), ws.len());
        for (b, w) in got.iter().zip(ws) {
            let m = decode_record(b, true).unwrap();
            assert_eq!(&m.body[..], &body(w.i)[..]);
            assert_eq!(m.queue_offset, w.queue_offset);
            assert_eq!(m.commit_log_offset, w.phys);
            assert_eq!(m.queue_id, *q);
        }
    }
    for w in written {
        // by offset msgId
        let (_, phys) = decode_offset_msg_id(&w.msg_id).unwrap();
        assert_eq!(phys, w.phys);
        let b = store.look_message_by_offset(phys).expect("by msgId");
        assert_eq!(&decode_record(&b, true).unwrap().body[..], &body(w.i)[..]);
        // by key and by unique key
        for key in [format!("k{}", w.i), format!("UNIQ{:08}", w.i)] {
            let r = store.query_message("TopicA", &key, 32, 0, i64::MAX);
            assert_eq!(r.messages.len(), 1, "key {key}");
            let m = decode_record(&r.messages[0], true).unwrap();
            assert_eq!(&m.body[..], &body(w.i)[..]);
        }
    }
}

#[tokio::test]
async fn write_across_files_and_read_back_every_way() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let written = write_many(&store, 600).await;
    wait_dispatched(&store).await;
    let files = std::fs::read_dir(dir.path().join("commitlog")).unwrap().count();
    assert!(files >= 3, "expected several commitlog files, got {files}");
    let idx_files = std::fs::read_dir(dir.path().join("index")).unwrap().count();
    assert!(idx_files >= 2, "expected index files to roll, got {idx_files}");
    check_all(&store, &written);
    // A shared key: messages i%7==0 → newest first, limited by max_num.
    let r = store.query_message("TopicA", "common0", 5, 0, i64::MAX);
    assert_eq!(r.messages.len(), 5);
    let r = store.query_message("TopicA", "common0", 1000, 0, i64::MAX);
    assert_eq!(r.messages.len(), written.iter().filter(|w| w.i % 7 == 0).count());
    assert!(store.query_message("TopicB", "k1", 32, 0, i64::MAX).messages.is_empty());

    // clean restart
    store.shutdown().unwrap();
    assert!(!dir.path().join("abort").exists());
    drop(store);
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert!(store.last_exit_ok());
    check_all(&store, &written);
    let r = store.put_message(msg("TopicA", 0, 9999)).await;
    assert_eq!(r.append.unwrap().logics_offset, 200, "queue offsets continue after restart");
}

#[tokio::test]
async fn get_message_statuses_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let r = store.get_message("T", 0, 0, 32, 1 << 20, |_| true).unwrap();
    assert_eq!(r.status, GetMessageStatus::NoMatchedLogicQueue);
    for i in 0..10 {
        store.put_message(msg("T", 0, i)).await;
    }
    wait_dispatched(&store).await;
    let g = |off| store.get_message("T", 0, off, 32, 1 << 20, |_| true).unwrap();
    assert_eq!(g(10).status, GetMessageStatus::OffsetOverflowOne);
    assert_eq!(g(10).next_begin_offset, 10);
    let r = g(11);
    assert_eq!(r.status, GetMessageStatus::OffsetOverflowBadly);
    assert_eq!(r.next_begin_offset, 0);
    assert_eq!(g(-1).status, GetMessageStatus::OffsetTooSmall);
    let r = g(3);
    assert_eq!((r.status, r.messages.len(), r.next_begin_offset), (GetMessageStatus::Found, 7, 10));
    assert_eq!((r.min_offset, r.max_offset), (0, 10));
    // tag filter: tag1 = i%3==1 → 1,4,7
    let t1 = message::tags_code(Some("tag1"));
    let r = store.get_message("T", 0, 0, 32, 1 << 20, |c| c == t1).unwrap();
    let got: Vec<usize> = r.messages.iter().map(|b| decode_record(b, false).unwrap().queue_offset as usize).collect();
    assert_eq!(got, vec![1, 4, 7]);
    let r = store.get_message("T", 0, 0, 32, 1 << 20, |_| false).unwrap();
    assert_eq!((r.status, r.next_begin_offset), (GetMessageStatus::NoMatchedMessage, 10));
    // max_count and max_bytes
    let r = store.get_message("T", 0, 0, 2, 1 << 20, |_| true).unwrap();
    assert_eq!((r.messages.len(), r.next_begin_offset), (2, 2));
    let r = store.get_message("T", 0, 0, 32, 1, |_| true).unwrap();
    assert_eq!((r.messages.len(), r.next_begin_offset), (1, 1));
    // time lookups
    let t0 = store.earliest_message_time("T", 0).unwrap();
    assert_eq!(store.offset_in_queue_by_time("T", 0, 0, BoundaryType::Lower), 0);
    assert_eq!(store.offset_in_queue_by_time("T", 0, i64::MAX, BoundaryType::Lower), 10);
    assert_eq!(store.offset_in_queue_by_time("T", 0, i64::MAX, BoundaryType::Upper), 9);
    assert_eq!(store.offset_in_queue_by_time("T", 0, t0 - 1, BoundaryType::Upper), 0);
    // delete topic
    store.delete_topics(&["T"]).unwrap();
    assert!(!dir.path().join("consumequeue").join("T").exists());
    assert_eq!(store.max_offset_in_queue("T", 0), 0);
    let r = store.put_message(msg("T", 0, 1)).await;
    assert_eq!(r.append.unwrap().logics_offset, 0);
}

#[tokio::test]
async fn batch_transactions_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config(dir.path());
    cfg.max_message_size = 1000;
    let store = MessageStore::open(cfg).unwrap();
    let batch: Vec<MessageInner> = (0..5).map(|i| msg("B", 1, i)).collect();
    let r = store.put_messages(&batch).await;
    let a = r.append.unwrap();
    assert_eq!((a.msg_num, a.logics_offset), (5, 0));
    assert_eq!(a.msg_id.split(',').count(), 5);
    // mixed topics in a batch are illegal
    let bad = vec![msg("B", 1, 0), msg("C", 1, 0)];
    assert_eq!(store.put_messages(&bad).await.status, PutMessageStatus::MessageIllegal);
    let mut big = msg("B", 1, 0);
    big.body = Bytes::from(vec![0u8; 1001]);
    assert_eq!(store.put_message(big).await.status, PutMessageStatus::MessageIllegal);
    let mut props = msg("B", 1, 0);
    props.properties = "a\u{1}".to_string() + &"x".repeat(40000) + "\u{2}";
    assert_eq!(store.put_message(props).await.status, PutMessageStatus::PropertiesSizeExceeded);
    // prepared: queue offset 0, not dispatched; commit: dispatched
    let mut p = msg("B", 1, 100);
    p.sys_flag = sysflag::TRANSACTION_PREPARED;
    let a = store.put_message(p).await.append.unwrap();
    assert_eq!(a.logics_offset, 0);
    let mut c = msg("B", 1, 101);
    c.sys_flag = sysflag::TRANSACTION_COMMIT;
    let a = store.put_message(c).await.append.unwrap();
    assert_eq!(a.logics_offset, 5);
    wait_dispatched(&store).await;
    assert_eq!(store.max_offset_in_queue("B", 1), 6);
    // schedule topic: tagsCode = deliver time
    let mut s = MessageInner::new(message::SCHEDULE_TOPIC, 1, Bytes::from_static(b"x"));
    s.push_property(property::DELAY, "2");
    let a = store.put_message(s).await.append.unwrap();
    wait_dispatched(&store).await;
    let want = a.store_timestamp + 5000;
    let r = store.get_message(message::SCHEDULE_TOPIC, 1, 0, 1, 1 << 20, |c| c == want).unwrap();
    assert_eq!(r.status, GetMessageStatus::Found);
}

#[tokio::test]
async fn append_raw_is_followed_by_dispatch_and_listeners() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let master = MessageStore::open(small_config(src.path())).unwrap();
    let slave = MessageStore::open(small_config(dst.path())).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    slave.set_arrival_listener(Some(std::sync::Arc::new(move |t: &str, q, off| {
        let _ = tx.send((t.to_string(), q, off));
    })));
    let written = write_many(&master, 400).await;
    // wrong offset refused
    assert!(matches!(slave.append_raw(5, b"x"), Err(StoreError::InvalidArgument(_))));
    // ship in odd-sized chunks (records split across chunks)
    let mut off = 0i64;
    while off < master.commit_log_max_offset() {
        let data = master.get_commit_log_data(off, 777).unwrap();
        slave.append_raw(off, &data).unwrap();
        off += data.len() as i64;
    }
    assert_eq!(slave.commit_log_max_offset(), master.commit_log_max_offset());
    wait_dispatched(&slave).await;
    check_all(&slave, &written);
    let mut max_seen: HashMap<i32, i64> = HashMap::new();
    while let Ok((t, q, o)) = rx.try_recv() {
        assert_eq!(t, "TopicA");
        let e = max_seen.entry(q).or_default();
        assert!(o >= *e);
        *e = o;
    }
    assert_eq!(max_seen.get(&0), Some(&134));
}

#[test]
fn second_open_is_refused_and_load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    match MessageStore::open(small_config(dir.path())) {
        Err(StoreError::AlreadyInUse(_)) => {}
        other => panic!("expected AlreadyInUse, got {other:?}"),
    }
    let e = MessageStore::open(small_config(dir.path())).unwrap_err();
    assert!(e.to_string().contains("store already in use"), "{e}");
    store.shutdown().unwrap();
    drop(store);
    // zero-length last file is deleted; a wrong-size file is an error naming it
    let cl = dir.path().join("commitlog");
    std::fs::write(cl.join("00000000000000000000"), b"").unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert!(!cl.join("00000000000000000000").exists());
    drop(store);
    std::fs::write(cl.join("00000000000000000000"), b"short").unwrap();
    let e = MessageStore::open(small_config(dir.path())).unwrap_err();
    assert!(matches!(e, StoreError::WrongFileSize { .. }));
    assert!(e.to_string().contains("00000000000000000000"), "{e}");
}

#[tokio::test]
async fn shutdown_refuses_puts_and_stops_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    store.put_message(msg("T", 0, 0)).await;
    assert!(open_fds_under(dir.path()) > 0);
    assert!(mappings_under(dir.path()) > 0);
    store.shutdown().unwrap();
    assert_eq!(store.put_message(msg("T", 0, 1)).await.status, PutMessageStatus::ServiceNotAvailable);
    drop(store);
    assert_eq!(open_fds_under(dir.path()), 0, "fds left open after drop");
    assert_eq!(mappings_under(dir.path()), 0, "mappings left after drop");
    // a new store on the same dir opens cleanly
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert!(store.last_exit_ok());
}

fn open_fds_under(dir: &std::path::Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(&dir))
        .count()
}

fn mappings_under(dir: &std::path::Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    let dir = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().filter(|l| l.contains(dir)).count()
}

/// A filter that matches tags by code and then requires an even body length in the record.
struct EvenBody;
impl rmqc::store::MessageFilter for EvenBody {
    fn is_matched_by_consume_queue(&self, _tags_code: i64) -> bool {
        true
    }
    fn is_matched_by_commit_log(&self, record: &[u8]) -> bool {
        let b = Bytes::copy_from_slice(record);
        decode_record(&b, false).unwrap().body.len() % 2 == 0
    }
}

#[tokio::test]
async fn commit_log_level_filter_and_not_readable_flag() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    for i in 0..10 {
        store.put_message(msg("T", 0, i)).await;
    }
    wait_dispatched(&store).await;
    let r = store.get_message("T", 0, 0, 32, 1 << 20, EvenBody).unwrap();
    let want = (0..10).filter(|i| body(*i).len() % 2 == 0).count();
    assert_eq!(r.messages.len(), want);
    assert!(want > 0 && want < 10);
    store.set_running_flags(rmqc::store::running_flags::NOT_READABLE);
    assert!(matches!(store.get_message("T", 0, 0, 32, 1 << 20, |_| true), Err(StoreError::NotReadable)));
}

/// A service that cares about one topic (the delay-level schedule, the timer) is woken by that
/// topic's messages only: a put to any other topic leaves its watch unchanged, so a busy broker's
/// sends do not wake it once per message.
#[tokio::test]
async fn a_topic_watch_changes_for_its_own_topic_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let mut sched = store.subscribe_topic_dispatched("SCHEDULE_TOPIC_XXXX");
    let mut again = store.subscribe_topic_dispatched("SCHEDULE_TOPIC_XXXX");
    for i in 0..50 {
        assert_eq!(store.put_message(msg("TopicA", (i % 3) as i32, i)).await.status, PutMessageStatus::PutOk);
    }
    wait_dispatched(&store).await;
    assert!(!sched.has_changed().unwrap(), "a put to another topic woke the schedule watch");
    assert_eq!(store.put_message(msg("SCHEDULE_TOPIC_XXXX", 2, 50)).await.status, PutMessageStatus::PutOk);
    wait_dispatched(&store).await;
    for rx in [&mut sched, &mut again] {
        assert!(rx.has_changed().unwrap(), "the topic's own message did not wake its watch");
        assert_eq!(*rx.borrow_and_update(), 1);
    }
}
