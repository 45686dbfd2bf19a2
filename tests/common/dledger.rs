//! Pieces the in-process DLedger tests share: a loopback transport, a single-member group's
//! config and a store config with small files.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use rmqc::dledger::commitlog::DLedgerCommitLog;
use rmqc::dledger::server::{parse_peers, DLedgerConfig, DLedgerServer};
use rmqc::remoting::{RemotingServer, ServerConfig};
use rmqc::store::config::MessageStoreConfig;
use rmqc::store::MessageStore;

/// A shared transport bound to 127.0.0.1 for the nodes of one test.
pub fn transport() -> RemotingServer {
    RemotingServer::new(ServerConfig { bind_address: "127.0.0.1".parse().unwrap(), ..ServerConfig::default() })
}

/// Member `n0` of a single-member group `group` on `port`, with `file`-byte data files, 64-entry
/// index files, 300 ms heartbeats and 150..450 ms vote timeouts.
pub fn single_member(group: &str, root: &Path, port: u16, file: u64) -> DLedgerConfig {
    let peers = format!("n0-127.0.0.1:{port}");
    let mut c = DLedgerConfig::new(group, "n0", parse_peers(&peers).unwrap(), root.to_path_buf());
    c.data_file_size = file;
    c.index_file_size = 32 * 64;
    c.heartbeat_ms = 300;
    c.min_vote_ms = 150;
    c.max_vote_ms = 450;
    c
}

/// A store under `root` with `file`-byte commitlog files, 20-entry consume-queue files, and an
/// index of 64 slots and `max_index_num` entries.
pub fn small_store(root: &Path, file: u64, max_index_num: u32) -> MessageStoreConfig {
    let mut c = MessageStoreConfig::with_root(root);
    c.mapped_file_size_commit_log = file;
    c.mapped_file_size_consume_queue = 20 * 40;
    c.max_hash_slot_num = 64;
    c.max_index_num = max_index_num;
    c
}

/// A store with `cfg` on `node`'s log, opened off the runtime's threads.
pub async fn open_on(node: &Arc<DLedgerServer>, cfg: MessageStoreConfig) -> Arc<MessageStore> {
    let log = Arc::new(DLedgerCommitLog::new(node.clone()));
    Arc::new(tokio::task::spawn_blocking(move || MessageStore::open_replicated(cfg, log)).await.unwrap().unwrap())
}
