//! The rocketmq-rust client with ROCKETMQ (binary) header serialization against a real
//! BrokerContainer.
//!
//! Every client runtime here is built with an explicit ROCKETMQ command factory; the process-wide
//! default (`ROCKETMQ_SERIALIZE_TYPE`, read once by the client's compatibility paths) is set too,
//! before any client exists, so that no request escapes as JSON.

use std::sync::Once;

use client_compat::{scenarios, with_client, Wire};

fn binary_everywhere() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var("ROCKETMQ_SERIALIZE_TYPE", "ROCKETMQ"));
}

#[test]
fn rocketmq_wire_ten_thousand_messages_exactly_once() {
    binary_everywhere();
    with_client(Wire::RocketMq, |c| scenarios::exactly_once(c, 10_000));
}

#[test]
fn rocketmq_wire_tag_filter_delivers_only_matching() {
    binary_everywhere();
    with_client(Wire::RocketMq, scenarios::tag_filter);
}

#[test]
fn rocketmq_wire_reconsume_later_comes_back_through_retry_topic() {
    binary_everywhere();
    with_client(Wire::RocketMq, scenarios::retry_after_reconsume_later);
}

#[test]
fn rocketmq_wire_consumer_offsets_survive_broker_restart() {
    binary_everywhere();
    with_client(Wire::RocketMq, scenarios::offsets_survive_restart);
}
