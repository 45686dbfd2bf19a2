//! A RocketMQ-compatible BrokerContainer (RIP-31).
pub mod config;
pub mod namesrv;
pub mod remoting;
