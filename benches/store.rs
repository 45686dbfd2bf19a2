//! Store micro-benchmarks: append (128 B / 1 KiB, single and batch of 32) and consume-queue reads.
#![allow(clippy::unwrap_used, missing_docs)] // benches may unwrap; criterion macros generate undocumented items

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rmqc::store::message::{property, MessageInner};
use rmqc::store::{FlushDiskType, MessageStore, MessageStoreConfig};

fn config(dir: &std::path::Path) -> MessageStoreConfig {
    let mut c = MessageStoreConfig::with_root(dir);
    c.mapped_file_size_commit_log = 64 * 1024 * 1024;
    c.max_hash_slot_num = 500_000;
    c.max_index_num = 2_000_000;
    c.flush_disk_type = FlushDiskType::AsyncFlush;
    c
}

fn message(size: usize, i: u64) -> MessageInner {
    let mut m = MessageInner::new("BenchTopic", (i % 8) as i32, vec![b'x'; size]);
    m.set_properties([(property::UNIQ_KEY, format!("7F000001{i:024X}")), (property::TAGS, "TagA".to_string())]);
    m
}

fn bench_append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut g = c.benchmark_group("append");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    for size in [128usize, 1024] {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(config(dir.path())).unwrap();
        let mut i = 0u64;
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("single", size), &size, |b, &size| {
            b.iter(|| {
                i += 1;
                let r = rt.block_on(store.put_message(message(size, i)));
                assert!(r.is_ok());
            })
        });
        store.shutdown().unwrap();
        drop(store);

        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(config(dir.path())).unwrap();
        g.throughput(Throughput::Elements(32));
        g.bench_with_input(BenchmarkId::new("batch32", size), &size, |b, &size| {
            b.iter(|| {
                let q = (i % 8) as i32;
                let batch: Vec<MessageInner> = (0..32)
                    .map(|k| {
                        let mut m = message(size, i * 32 + k);
                        m.queue_id = q;
                        m
                    })
                    .collect();
                i += 1;
                let r = rt.block_on(store.put_messages(&batch));
                assert!(r.is_ok());
            })
        });
        store.shutdown().unwrap();
    }
    g.finish();
}

fn bench_read(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let n = 100_000u64;
    for i in 0..n {
        let mut m = message(1024, i);
        m.queue_id = 0;
        rt.block_on(store.put_message(m));
    }
    rt.block_on(async {
        let target = store.commit_log_max_offset();
        let mut rx = store.subscribe_dispatched();
        rx.wait_for(|v| *v >= target).await.unwrap();
    });
    let mut g = c.benchmark_group("get_message");
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(32));
    let mut off = 0i64;
    g.bench_function("range32_1KiB", |b| {
        b.iter(|| {
            let r = store.get_message("BenchTopic", 0, off, 32, 1 << 20, |_| true).unwrap();
            assert_eq!(r.messages.len(), 32);
            off = (off + 32) % (n as i64 - 32);
        })
    });
    g.finish();
    store.shutdown().unwrap();
}

criterion_group!(benches, bench_append, bench_read);
criterion_main!(benches);
