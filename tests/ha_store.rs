//! The slave side of replication against real stores: packets the master's HA writer would send are
//! applied with the slave's offset checks; a fresh slave starts at the master's last file; a slave
//! with bytes its master lacks is refused as diverged.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rmqc::ha::{apply_packets, encode_header, take_packet, transfer_start, ApplyError, PacketError};
use rmqc::store::config::MessageStoreConfig;
use rmqc::store::message::MessageInner;
use rmqc::store::{MessageStore, PutMessageStatus};

fn config(dir: &std::path::Path) -> MessageStoreConfig {
    let mut c = MessageStoreConfig::with_root(dir);
    c.mapped_file_size_commit_log = 64 * 1024;
    c.mapped_file_size_consume_queue = 20 * 100;
    c.max_hash_slot_num = 64;
    c.max_index_num = 200;
    c
}

async fn write(store: &MessageStore, from: usize, n: usize) {
    for i in from..from + n {
        let mut m =
            MessageInner::new("HaT".to_string(), (i % 2) as i32, Bytes::from(format!("m{i}-{}", "y".repeat(i % 300))));
        m.born_host = "127.0.0.1:1".parse().unwrap();
        m.store_host = "127.0.0.1:2".parse().unwrap();
        assert_eq!(store.put_message(m).await.status, PutMessageStatus::PutOk);
    }
}

/// What the master's writer sends from `from`: 32 KiB packets framed with 12-byte headers.
fn wire_from(master: &MessageStore, mut from: i64) -> BytesMut {
    let mut wire = BytesMut::new();
    while let Some(d) = master.get_commit_log_data(from, 32 * 1024) {
        wire.extend_from_slice(&encode_header(from, d.len()));
        wire.extend_from_slice(&d);
        from += d.len() as i64;
    }
    wire
}

fn packets(mut wire: BytesMut) -> Vec<(i64, Bytes)> {
    let mut out = Vec::new();
    while let Some(p) = take_packet(&mut wire).unwrap() {
        out.push(p);
    }
    out
}

async fn wait_dispatched(store: &MessageStore) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.dispatched_offset() < store.commit_log_max_offset() {
        assert!(std::time::Instant::now() < deadline, "dispatch stuck");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn fresh_slave_starts_at_the_masters_last_file_and_rebuilds_queues() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MessageStore::open(config(a.path())).unwrap();
    let slave = MessageStore::open(config(b.path())).unwrap();
    write(&master, 0, 600).await;
    let max = master.commit_log_max_offset();
    assert!(max > 2 * 64 * 1024, "several files written");
    let start = transfer_start(slave.commit_log_max_offset(), max, 64 * 1024);
    assert_eq!(start % (64 * 1024), 0);
    assert!(start > 0);
    assert!(apply_packets(&slave, packets(wire_from(&master, start))).unwrap());
    assert_eq!(slave.commit_log_max_offset(), max);
    // Then resume from the slave's own offset.
    write(&master, 600, 50).await;
    assert!(apply_packets(&slave, packets(wire_from(&master, slave.commit_log_max_offset()))).unwrap());
    assert_eq!(slave.commit_log_max_offset(), master.commit_log_max_offset());
    wait_dispatched(&slave).await;
    wait_dispatched(&master).await;
    for q in 0..2 {
        let mmax = master.max_offset_in_queue("HaT", q);
        assert_eq!(slave.max_offset_in_queue("HaT", q), mmax, "queue {q} rebuilt on the slave");
        let off = mmax - 1;
        let m = master.get_message("HaT", q, off, 1, usize::MAX, |_| true).unwrap();
        let s = slave.get_message("HaT", q, off, 1, usize::MAX, |_| true).unwrap();
        assert_eq!(m.messages, s.messages, "byte-identical record at {q}/{off}");
    }
    master.shutdown().unwrap();
    slave.shutdown().unwrap();
}

#[tokio::test]
async fn slave_with_data_the_master_lacks_is_reported_diverged() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MessageStore::open(config(a.path())).unwrap();
    let slave = MessageStore::open(config(b.path())).unwrap();
    write(&master, 0, 20).await;
    apply_packets(&slave, packets(wire_from(&master, 0))).unwrap();
    // The slave gets 10 more records the master never had (e.g. written while it acted alone).
    write(&slave, 1000, 10).await;
    let master_max = master.commit_log_max_offset();
    let slave_max = slave.commit_log_max_offset();
    let mut hb = BytesMut::new();
    hb.extend_from_slice(&encode_header(master_max, 0));
    match apply_packets(&slave, packets(hb)) {
        Err(ApplyError::Packet(e @ PacketError::SlaveAhead { .. })) => {
            assert!(e.to_string().contains(&format!("{} bytes", slave_max - master_max)), "{e}")
        }
        other => panic!("expected divergence, got {other:?}"),
    }
    assert_eq!(slave.commit_log_max_offset(), slave_max, "nothing overwritten");
    master.shutdown().unwrap();
    slave.shutdown().unwrap();
}
