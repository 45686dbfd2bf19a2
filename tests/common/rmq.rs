//! A minimal protocol-level client for tests: routes, sends, pulls, written from the spec.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use rmqc::client::send::{send_header, send_request};
use rmqc::protocol::codes::request;
use rmqc::protocol::header::PullMessageRequestHeader;
use rmqc::protocol::message::encode_properties;
use rmqc::remoting::{RemotingClient, RemotingCommand};

/// Request timeout used by tests.
pub const T: Duration = Duration::from_secs(10);

/// Sends one message with SEND_MESSAGE_V2; returns the raw response.
pub async fn send(
    client: &RemotingClient,
    addr: &str,
    topic: &str,
    queue_id: i32,
    body: &[u8],
    props: &[(&str, &str)],
) -> RemotingCommand {
    let h = send_header("test-pg", topic, queue_id, 4, Some(encode_properties(props.iter().copied())));
    let req = send_request(request::SEND_MESSAGE_V2, &h, Bytes::copy_from_slice(body));
    client.invoke(addr, req, T).await.expect("send answered")
}

/// Pulls with an explicit subscription; `suspend_ms` > 0 allows long polling.
#[allow(clippy::too_many_arguments)]
pub async fn pull(
    client: &RemotingClient,
    addr: &str,
    group: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
    subscription: &str,
    suspend_ms: i64,
) -> RemotingCommand {
    let mut sys_flag = 0x4;
    if suspend_ms > 0 {
        sys_flag |= 0x2;
    }
    let h = PullMessageRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id,
        queue_offset: offset,
        max_msg_nums: 32,
        sys_flag,
        commit_offset: 0,
        suspend_timeout_millis: suspend_ms,
        subscription: Some(subscription.into()),
        sub_version: 0,
        expression_type: Some("TAG".into()),
        max_msg_bytes: None,
    };
    let req = RemotingCommand::request_with_header(request::PULL_MESSAGE, &h);
    client.invoke(addr, req, T + Duration::from_millis(suspend_ms.max(0) as u64)).await.expect("pull answered")
}

/// Waits (bounded) until the queue's max offset reaches `expected`: consume queues are built
/// asynchronously from the commitlog, so a read right after a send may not see it yet.
pub async fn wait_max_offset(client: &RemotingClient, addr: &str, topic: &str, queue_id: i32, expected: i64) {
    let deadline = std::time::Instant::now() + T;
    loop {
        let req = RemotingCommand::request(request::GET_MAX_OFFSET)
            .with_ext("topic", topic)
            .with_ext("queueId", queue_id.to_string());
        let r = client.invoke(addr, req, T).await.expect("GET_MAX_OFFSET answered");
        let got: i64 = r.ext("offset").and_then(|o| o.parse().ok()).unwrap_or(-1);
        if got >= expected {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{topic}/{queue_id} on {addr} reached only {got} of {expected}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Creates (or updates) `topic` on one broker with one read and one write queue.
pub async fn create_topic(client: &RemotingClient, addr: &str, topic: &str) {
    let req = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", "1")
        .with_ext("writeQueueNums", "1")
        .with_ext("perm", "6")
        .with_ext("topicFilterType", "SINGLE_TAG")
        .with_ext("topicSysFlag", "0")
        .with_ext("order", "false");
    let r = client.invoke(addr, req, T).await.expect("UPDATE_AND_CREATE_TOPIC answered");
    assert_eq!(r.code, rmqc::protocol::codes::response::SUCCESS, "{:?}", r.remark);
}

/// A broker's runtime info table (GET_BROKER_RUNTIME_INFO), asserting that it is answered.
pub async fn runtime_info(client: &RemotingClient, addr: &str) -> serde_json::Map<String, serde_json::Value> {
    let r = client
        .invoke(addr, RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO), T)
        .await
        .expect("runtime info answered");
    assert_eq!(r.code, rmqc::protocol::codes::response::SUCCESS);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["table"].as_object().unwrap().clone()
}

/// The runtime info of the broker at 127.0.0.1:`port` as strings, or None when it does not answer
/// (in 3 s) or answers something else: for waits on a broker that may be down.
pub async fn try_runtime_info(
    client: &RemotingClient,
    port: u16,
) -> Option<std::collections::BTreeMap<String, String>> {
    let req = RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO);
    let r = client.invoke(&format!("127.0.0.1:{port}"), req, Duration::from_secs(3)).await.ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    Some(v["table"].as_object()?.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
}

/// Bodies of queue `q` of `topic` read from `store` from queue offset `from` (at most 1000 reads
/// of 32), each message's queue offset checked against the one the read gave.
pub fn queue_bodies(store: &rmqc::store::MessageStore, topic: &str, q: i32, from: i64) -> Vec<String> {
    let mut out = Vec::new();
    let mut off = from;
    for _ in 0..1000 {
        let r = store.get_message(topic, q, off, 32, 1 << 20, |_: i64| true).unwrap();
        if r.messages.is_empty() {
            break;
        }
        for (rec, qo) in r.messages.iter().zip(&r.queue_offsets) {
            let v = rmqc::protocol::message::decode_record(rec, true).unwrap();
            assert_eq!(v.queue_offset, *qo);
            out.push(String::from_utf8_lossy(&v.body).into_owned());
        }
        off = r.next_begin_offset;
    }
    out
}
