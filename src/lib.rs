//! A RocketMQ-compatible BrokerContainer (RIP-31).
pub mod remoting;
pub mod store;
