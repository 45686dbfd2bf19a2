//! The rocketmq-rust client (crates.io, JSON headers) against a real BrokerContainer.

use client_compat::{scenarios, with_client, Wire};

#[test]
fn ten_thousand_messages_exactly_once() {
    with_client(Wire::Json, |c| scenarios::exactly_once(c, 10_000));
}

#[test]
fn consumer_offsets_survive_broker_restart() {
    with_client(Wire::Json, scenarios::offsets_survive_restart);
}

#[test]
fn reconsume_later_comes_back_through_retry_topic() {
    with_client(Wire::Json, scenarios::retry_after_reconsume_later);
}

#[test]
fn tag_filter_delivers_only_matching() {
    with_client(Wire::Json, scenarios::tag_filter);
}
