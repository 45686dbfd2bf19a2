//! DLedger: Raft replica groups whose log is the broker's commitlog (Apache's
//! `enableDLegerCommitLog=true`), wire- and disk-compatible with openmessaging/dledger 0.3.1.2.
//!
//! Layers, bottom-up:
//! - [`wire`]: the RPC bodies (fastjson JSON) and codes;
//! - [`entry`] and [`store`]: the entry codec and the on-disk log (`data/`, `index/`,
//!   `checkpoint`, `currterm` under `<storePathRootDir>/dledger-<selfId>/`);
//! - [`core`]: the Raft state machine (election, replication, commit, fencing, leadership
//!   transfer) as a pure, deterministic function of ticks and messages;
//! - [`server`]: the tokio driver that runs the core over the remoting client and server on the
//!   `dLegerPeers` port of this node.

pub mod commitlog;
pub mod core;
pub mod entry;
pub mod server;
pub mod store;
pub mod wire;

#[cfg(test)]
mod sim;
