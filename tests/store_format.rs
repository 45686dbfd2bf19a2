//! On-disk format checks with an independent decoder written here from the spec's field table
//! (message-format.md §1, §7, §9, §10), not the store's own reader.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

use std::time::Duration;

use bytes::Bytes;
use rmqc::store::message::MessageInner;
use rmqc::store::{MessageStore, MessageStoreConfig};

const FILE_SIZE: usize = 64 * 1024;

struct Be<'a> {
    b: &'a [u8],
    p: usize,
}
impl Be<'_> {
    fn n(&mut self, k: usize) -> &[u8] {
        let s = &self.b[self.p..self.p + k];
        self.p += k;
        s
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.n(2).try_into().unwrap())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.n(4).try_into().unwrap())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.n(8).try_into().unwrap())
    }
}

/// What the spec says a record contains.
#[derive(Debug)]
struct Rec {
    total: i32,
    magic: u32,
    crc: i32,
    qid: i32,
    flag: i32,
    qoff: i64,
    phys: i64,
    sysflag: i32,
    born_ts: i64,
    born_host: Vec<u8>,
    store_ts: i64,
    store_host: Vec<u8>,
    reconsume: i32,
    prep: i64,
    body: Vec<u8>,
    topic: String,
    props: String,
}

enum Item {
    Rec(Rec),
    Blank(i32),
}

fn decode_at(buf: &[u8], pos: usize) -> Item {
    let mut r = Be { b: buf, p: pos };
    let total = r.i32();
    let magic = r.i32() as u32;
    if magic == 0xCBD4_3194 {
        return Item::Blank(total);
    }
    assert!(magic == 0xDAA3_20A7 || magic == 0xDAA3_20AB, "magic {magic:x} at {pos}");
    let crc = r.i32();
    let qid = r.i32();
    let flag = r.i32();
    let qoff = r.i64();
    let phys = r.i64();
    let sysflag = r.i32();
    let born_ts = r.i64();
    let born_host = r.n(if sysflag & 0x10 != 0 { 20 } else { 8 }).to_vec();
    let store_ts = r.i64();
    let store_host = r.n(if sysflag & 0x20 != 0 { 20 } else { 8 }).to_vec();
    let reconsume = r.i32();
    let prep = r.i64();
    let blen = r.i32() as usize;
    let body = r.n(blen).to_vec();
    let tlen = if magic == 0xDAA3_20A7 { r.n(1)[0] as usize } else { r.i16() as usize };
    let topic = String::from_utf8(r.n(tlen).to_vec()).unwrap();
    let plen = r.i16() as usize;
    let props = String::from_utf8(r.n(plen).to_vec()).unwrap();
    assert_eq!(r.p - pos, total as usize, "TOTALSIZE matches the fields at {pos}");
    Item::Rec(Rec {
        total,
        magic,
        crc,
        qid,
        flag,
        qoff,
        phys,
        sysflag,
        born_ts,
        born_host,
        store_ts,
        store_host,
        reconsume,
        prep,
        body,
        topic,
        props,
    })
}

fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

#[tokio::test]
async fn commitlog_consume_queue_index_and_checkpoint_bytes_follow_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = MessageStoreConfig::with_root(dir.path());
    cfg.mapped_file_size_commit_log = FILE_SIZE as u64;
    cfg.mapped_file_size_consume_queue = 1000; // rounded up to 1000 (multiple of 20)
    cfg.max_hash_slot_num = 16;
    cfg.max_index_num = 1000;
    let store = MessageStore::open(cfg).unwrap();
    assert!(dir.path().join("abort").exists());
    assert_eq!(std::fs::read_to_string(dir.path().join("abort")).unwrap(), std::process::id().to_string());

    let long_topic = "L".repeat(150); // v2 record
    let mut expected = Vec::new();
    let mut t0 = 0;
    for i in 0..600usize {
        let topic = if i % 50 == 49 { long_topic.clone() } else { "Fmt".to_string() };
        let mut m = MessageInner::new(topic.clone(), (i % 2) as i32, vec![i as u8; 150 + i % 13]);
        m.flag = i as i32;
        m.born_timestamp = 1_700_000_000_000 + i as i64;
        m.reconsume_times = (i % 4) as i32;
        m.prepared_transaction_offset = 77;
        if i % 10 == 3 {
            m.born_host = "[2001:db8::1]:4242".parse().unwrap();
            m.store_host = "[2001:db8::2]:10911".parse().unwrap();
        } else {
            m.born_host = "192.168.1.2:5555".parse().unwrap();
            m.store_host = "10.0.0.9:10911".parse().unwrap();
        }
        m.set_properties([("TAGS", format!("t{}", i % 5)), ("KEYS", format!("key{i}"))]);
        let r = store.put_message(m.clone()).await;
        let a = r.append.unwrap();
        if i == 0 {
            t0 = a.store_timestamp;
        }
        expected.push((m, a));
    }
    let target = store.commit_log_max_offset();
    let mut rx = store.subscribe_dispatched();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|v| *v >= target)).await.unwrap().unwrap();
    store.shutdown().unwrap();
    drop(store);
    assert!(!dir.path().join("abort").exists());

    // --- commitlog files ---
    let cl = dir.path().join("commitlog");
    let mut names: Vec<String> =
        std::fs::read_dir(&cl).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert!(names.len() >= 3);
    let mut qoffs = [0i64; 2];
    let mut long_qoff = [0i64; 2];
    let mut k = 0usize;
    let mut blanks = 0;
    for (fi, name) in names.iter().enumerate() {
        assert_eq!(name, &format!("{:020}", fi * FILE_SIZE));
        let buf = std::fs::read(cl.join(name)).unwrap();
        assert_eq!(buf.len(), FILE_SIZE);
        let mut pos = 0;
        while pos + 8 <= buf.len() && k < expected.len() {
            match decode_at(&buf, pos) {
                Item::Blank(n) => {
                    assert_eq!(n as usize, FILE_SIZE - pos, "BLANK covers the rest of the file");
                    assert!(buf[pos + 8..].iter().all(|b| *b == 0));
                    blanks += 1;
                    break;
                }
                Item::Rec(r) => {
                    let (m, a) = &expected[k];
                    let q = m.queue_id as usize;
                    let want_qoff = if m.topic == long_topic { &mut long_qoff[q] } else { &mut qoffs[q] };
                    assert_eq!(r.qoff, *want_qoff);
                    *want_qoff += 1;
                    assert_eq!(r.phys as usize, fi * FILE_SIZE + pos);
                    assert_eq!(r.phys, a.wrote_offset);
                    assert_eq!(r.total as usize, a.wrote_bytes);
                    assert_eq!(r.magic, if m.topic.len() > 127 { 0xDAA3_20AB } else { 0xDAA3_20A7 });
                    assert_eq!(r.crc as u32, crc32fast::hash(&m.body) & 0x7FFF_FFFF);
                    assert_eq!(r.qid, m.queue_id);
                    assert_eq!(r.flag, m.flag);
                    let v6 = k % 10 == 3;
                    assert_eq!(r.sysflag, if v6 { 0x30 } else { 0 });
                    assert_eq!(r.born_ts, m.born_timestamp);
                    if v6 {
                        let mut h = "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets().to_vec();
                        h.extend_from_slice(&4242i32.to_be_bytes());
                        assert_eq!(r.born_host, h);
                        assert_eq!(r.store_host.len(), 20);
                    } else {
                        assert_eq!(r.born_host, [192, 168, 1, 2, 0, 0, 0x15, 0xB3]);
                        assert_eq!(r.store_host, [10, 0, 0, 9, 0, 0, 0x2A, 0x9F]);
                    }
                    assert_eq!(r.store_ts, a.store_timestamp);
                    assert!(r.store_ts >= t0);
                    assert_eq!(r.reconsume, m.reconsume_times);
                    assert_eq!(r.prep, 77);
                    assert_eq!(r.body, m.body.to_vec());
                    assert_eq!(r.topic, m.topic);
                    assert_eq!(r.props, format!("TAGS\u{1}t{}\u{2}KEYS\u{1}key{k}\u{2}", k % 5));
                    // offset msgId = hex(store ip, port, phys)
                    if !v6 {
                        assert_eq!(a.msg_id, format!("0A00000900002A9F{:016X}", r.phys));
                    }
                    pos += r.total as usize;
                    k += 1;
                }
            }
        }
    }
    assert_eq!(k, expected.len(), "every record found in order");
    assert!(blanks >= 2, "files end with BLANK records");

    // --- consume queue of Fmt/1: 20-byte entries, files of 1000 bytes ---
    let qdir = dir.path().join("consumequeue").join("Fmt").join("1");
    let mut qfiles: Vec<String> =
        std::fs::read_dir(&qdir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    qfiles.sort();
    assert!(qfiles.len() >= 3);
    let mut entries = Vec::new();
    for (i, n) in qfiles.iter().enumerate() {
        assert_eq!(n, &format!("{:020}", i * 1000));
        let b = std::fs::read(qdir.join(n)).unwrap();
        assert_eq!(b.len(), 1000);
        for e in b.chunks(20) {
            let mut r = Be { b: e, p: 0 };
            let (off, size, tags) = (r.i64(), r.i32(), r.i64());
            if size > 0 {
                entries.push((off, size, tags));
            }
        }
    }
    let fmt1: Vec<_> = expected.iter().filter(|(m, _)| m.topic == "Fmt" && m.queue_id == 1).collect();
    assert_eq!(entries.len(), fmt1.len());
    for ((off, size, tags), (m, a)) in entries.iter().zip(fmt1) {
        assert_eq!(*off, a.wrote_offset);
        assert_eq!(*size as usize, a.wrote_bytes);
        let tag = rmqc::store::message::find_property(&m.properties, "TAGS").unwrap();
        assert_eq!(*tags, java_hash(tag) as i64);
    }

    // --- index: header, slots, chain ---
    let idir = dir.path().join("index");
    let inames: Vec<String> =
        std::fs::read_dir(&idir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(inames.len(), 1);
    assert!(inames[0].len() == 17 && inames[0].bytes().all(|c| c.is_ascii_digit()));
    let ib = std::fs::read(idir.join(&inames[0])).unwrap();
    assert_eq!(ib.len(), 40 + 16 * 4 + 1000 * 20);
    let mut h = Be { b: &ib, p: 0 };
    let (bts, ets, bphy, ephy, slots_used, count) = (h.i64(), h.i64(), h.i64(), h.i64(), h.i32(), h.i32());
    assert_eq!(count, 601, "indexCount starts at 1, one KEYS entry per message");
    assert_eq!(bts, t0);
    assert_eq!(ets, expected.last().unwrap().1.store_timestamp);
    assert_eq!(bphy, 0);
    assert_eq!(ephy, expected.last().unwrap().1.wrote_offset);
    assert!(slots_used > 0 && slots_used <= 16);
    for (i, (m, a)) in expected.iter().enumerate() {
        let key = format!("{}#key{i}", m.topic);
        let hash = java_hash(&key).wrapping_abs().max(0);
        let slot = hash as usize % 16;
        let mut idx = i32::from_be_bytes(ib[40 + slot * 4..44 + slot * 4].try_into().unwrap());
        let mut found = false;
        while idx > 0 {
            let p = 40 + 16 * 4 + idx as usize * 20;
            let mut e = Be { b: &ib, p };
            let (kh, phy, diff, prev) = (e.i32(), e.i64(), e.i32(), e.i32());
            if kh == hash && phy == a.wrote_offset {
                assert_eq!(diff as i64, (a.store_timestamp - bts) / 1000);
                found = true;
                break;
            }
            idx = prev;
        }
        assert!(found, "index chain holds {key}");
    }

    // --- checkpoint ---
    let cp = std::fs::read(dir.path().join("checkpoint")).unwrap();
    assert_eq!(cp.len(), 4096);
    let mut c = Be { b: &cp, p: 0 };
    let last_ts = expected.last().unwrap().1.store_timestamp;
    assert_eq!(c.i64(), last_ts, "physicMsgTimestamp");
    assert_eq!(c.i64(), last_ts, "logicsMsgTimestamp");
    assert_eq!(c.i64(), last_ts, "indexMsgTimestamp");
    let _ = Bytes::new();
}
