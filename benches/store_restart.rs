//! Restart-time measurement (harness = false): writes `RESTART_MB` MiB (default 300) of
//! commitlog in 64 MiB files, then times a reopen after a clean shutdown and after a simulated
//! crash (abort file left, full re-validation from the checkpoint's start file).
//!
//! Run: `cargo bench --bench store_restart`
#![allow(clippy::unwrap_used, missing_docs)] // benches may unwrap; criterion macros generate undocumented items

use std::time::Instant;

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

fn main() {
    // `cargo bench` passes "--bench"; `cargo test --benches` passes nothing we need.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let mb: u64 = std::env::var("RESTART_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let t = Instant::now();
    let mut i = 0u64;
    while (store.commit_log_max_offset() as u64) < mb * 1024 * 1024 {
        let mut m = MessageInner::new("RestartTopic", (i % 16) as i32, vec![b'r'; 1024]);
        m.set_properties([(property::UNIQ_KEY, format!("U{i:020}"))]);
        let r = rt.block_on(store.put_message(m));
        assert!(r.is_ok());
        i += 1;
    }
    let written = store.commit_log_max_offset();
    println!("wrote {} messages, {:.1} MiB commitlog in {:.2?}", i, written as f64 / 1048576.0, t.elapsed());
    let t = Instant::now();
    store.shutdown().unwrap();
    drop(store);
    println!("clean shutdown: {:.2?}", t.elapsed());

    let t = Instant::now();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let clean = t.elapsed();
    assert!(store.last_exit_ok());
    assert_eq!(store.commit_log_max_offset(), written);
    println!("reopen after clean shutdown: {clean:.2?}");

    store.halt_for_tests();
    drop(store);
    let t = Instant::now();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let crash = t.elapsed();
    assert!(!store.last_exit_ok());
    assert_eq!(store.commit_log_max_offset(), written);
    println!("reopen after simulated crash (abnormal recovery): {crash:.2?}");
    store.shutdown().unwrap();
}
