//! Issue 16 (admin requests): resetOffsetByTime moves a consumer (its next pull is told to move,
//! and the offset that pull carries does not undo the reset), cloneGroupOffset, and who consumes what.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::rmq::{create_topic, pull, send, wait_max_offset, T};
use common::{run, text, wait_until};
use rmqc::protocol::codes::{request, response};
use rmqc::protocol::header::{pull_flag, PullMessageRequestHeader};
use rmqc::protocol::message::decode_records;
use rmqc::remoting::{RemotingClient, RemotingCommand};

const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");

async fn committed(client: &RemotingClient, addr: &str, group: &str) -> i64 {
    let req = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", group)
        .with_ext("topic", "ResetTopic")
        .with_ext("queueId", "0");
    let r = client.invoke(addr, req, T).await.unwrap();
    r.ext("offset").and_then(|o| o.parse().ok()).unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_by_time_moves_the_consumer_and_clone_copies_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let common::OneBroker { child: _c, addr, nsaddr, .. } = common::start_one_broker(dir.path(), "reset-a", "");
    let client = RemotingClient::default();
    create_topic(&client, &addr, "ResetTopic").await;
    common::wait_async("the topic is routed", Duration::from_secs(20), || async {
        text(&run(MQADMIN, &["topicRoute", "-n", &nsaddr, "-t", "ResetTopic"])).contains("reset-a")
    })
    .await;

    // Five messages, a point in time, five more.
    for i in 0..5 {
        assert_eq!(send(&client, &addr, "ResetTopic", 0, format!("early{i}").as_bytes(), &[]).await.code, 0);
    }
    let t0 = rmqc::util::now_millis() + 2;
    wait_until("the clock passes t0", Duration::from_secs(2), || rmqc::util::now_millis() > t0 + 1);
    for i in 0..5 {
        assert_eq!(send(&client, &addr, "ResetTopic", 0, format!("late{i}").as_bytes(), &[]).await.code, 0);
    }
    wait_max_offset(&client, &addr, "ResetTopic", 0, 10).await;
    // The group has consumed everything.
    let r = pull(&client, &addr, "reset-group", "ResetTopic", 0, 0, "*", 0).await;
    assert_eq!(decode_records(&r.body, true).len(), 10);
    let commit = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", "reset-group")
        .with_ext("topic", "ResetTopic")
        .with_ext("queueId", "0")
        .with_ext("commitOffset", "10");
    assert_eq!(client.invoke(&addr, commit, T).await.unwrap().code, response::SUCCESS);

    // mqadmin resetOffsetByTime to t0: the queue moves back to offset 5.
    let out = run(
        MQADMIN,
        &["resetOffsetByTime", "-n", &nsaddr, "-g", "reset-group", "-t", "ResetTopic", "-s", &t0.to_string()],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).lines().any(|l| l.contains("ResetTopic") && l.split_whitespace().last() == Some("5")),
        "{}",
        text(&out)
    );
    assert_eq!(committed(&client, &addr, "reset-group").await, 5);

    // The consumer's next pull (which still carries commitOffset 10) is told to move to 5, and
    // does not commit 10 over the reset.
    let h = PullMessageRequestHeader {
        consumer_group: "reset-group".into(),
        topic: "ResetTopic".into(),
        queue_id: 0,
        queue_offset: 10,
        max_msg_nums: 32,
        sys_flag: pull_flag::COMMIT_OFFSET | pull_flag::SUBSCRIPTION,
        commit_offset: 10,
        suspend_timeout_millis: 0,
        subscription: Some("*".into()),
        sub_version: 0,
        expression_type: Some("TAG".into()),
        max_msg_bytes: None,
    };
    let r = client.invoke(&addr, RemotingCommand::request_with_header(request::PULL_MESSAGE, &h), T).await.unwrap();
    assert_eq!(r.code, response::PULL_OFFSET_MOVED, "{:?}", r.remark);
    assert_eq!(r.ext("nextBeginOffset"), Some("5"));
    assert_eq!(committed(&client, &addr, "reset-group").await, 5);
    let r = pull(&client, &addr, "reset-group", "ResetTopic", 0, 5, "*", 0).await;
    let bodies: Vec<String> =
        decode_records(&r.body, true).iter().map(|m| String::from_utf8_lossy(&m.body).into_owned()).collect();
    assert_eq!(bodies, ["late0", "late1", "late2", "late3", "late4"]);

    // cloneGroupOffset copies the offsets to another group.
    let out = run(
        MQADMIN,
        &[
            "cloneGroupOffset",
            "-n",
            &nsaddr,
            "-s",
            "reset-group",
            "-d",
            "clone-group",
            "-t",
            "ResetTopic",
            "-o",
            "true",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(committed(&client, &addr, "clone-group").await, 5);

    // Who consumes the topic; what the group consumes.
    let req = RemotingCommand::request(request::QUERY_TOPIC_CONSUME_BY_WHO).with_ext("topic", "ResetTopic");
    let r = client.invoke(&addr, req, T).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let groups: Vec<&str> = v["groupList"].as_array().unwrap().iter().filter_map(|g| g.as_str()).collect();
    assert!(groups.contains(&"reset-group") && groups.contains(&"clone-group"), "{v}");
    let req = RemotingCommand::request(request::QUERY_TOPICS_BY_CONSUMER).with_ext("group", "reset-group");
    let r = client.invoke(&addr, req, T).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["topicList"]["topicList"].as_array().unwrap().iter().any(|t| t == "ResetTopic"), "{v}");

    // A reset of an unknown group or topic is refused with Apache's codes.
    let bad = RemotingCommand::request(request::INVOKE_BROKER_TO_RESET_OFFSET)
        .with_ext("group", "reset-group")
        .with_ext("topic", "NoSuchTopic")
        .with_ext("timestamp", "0")
        .with_ext("isForce", "true");
    assert_eq!(client.invoke(&addr, bad, T).await.unwrap().code, response::TOPIC_NOT_EXIST);
}
