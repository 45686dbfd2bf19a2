//! A RocketMQ-compatible BrokerContainer (RIP-31).
pub mod admin;
pub mod bench;
pub mod broker;
pub mod client;
pub mod config;
pub mod container;
pub mod dledger;
pub mod filter;
pub mod ha;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod namesrv;
pub mod protocol;
pub mod remoting;
pub mod store;
pub mod util;
