//! A master broker hosted by an in-process container, driven over real TCP on 127.0.0.1 with the
//! RocketMQ protocol: registration, auto-created topics, send, pull, long polling, queries, and bad
//! input that gets a clear answer while nothing else changes.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::time::{Duration, Instant};

use common::rmq::{pull, send, wait_max_offset, T};
use common::{write_broker, write_container};
use rmqc::container::config::LoadedContainerConfig;
use rmqc::container::BrokerContainer;
use rmqc::protocol::codes::{request, response};
use rmqc::protocol::message::decode_records;
use rmqc::remoting::{RemotingClient, RemotingCommand};

async fn route(client: &RemotingClient, ns: u16, topic: &str) -> RemotingCommand {
    let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
    client.invoke(&format!("127.0.0.1:{ns}"), req, T).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_pull_long_poll_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (bfile, bport) = write_broker(dir.path(), "broker-a", "maxMessageSize=65536\n");
    let (conf, _cport, ns) = write_container(dir.path(), &[&bfile]);
    let container =
        BrokerContainer::start(LoadedContainerConfig::load(&conf, None, None).unwrap(), false, None).await.unwrap();
    let client = RemotingClient::default();
    let broker = format!("127.0.0.1:{bport}");

    // Registered at once: the NameServer knows the broker's system topic (its cluster) right away.
    let r = route(&client, ns, "TestCluster").await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert!(String::from_utf8_lossy(&r.body).contains(&broker));

    // Send auto-creates the topic from TBW102, then the route shows it (re-registered at once).
    let mut ids = Vec::new();
    for i in 0..10 {
        let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
        let key = format!("key-{i}");
        let resp =
            send(&client, &broker, "TopicE2E", 0, format!("body-{i}").as_bytes(), &[("TAGS", tag), ("KEYS", &key)])
                .await;
        assert_eq!(resp.code, response::SUCCESS, "{:?}", resp.remark);
        assert_eq!(resp.ext("queueOffset"), Some(i.to_string().as_str()));
        ids.push(resp.ext("msgId").unwrap().to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if route(&client, ns, "TopicE2E").await.code == response::SUCCESS {
            break;
        }
        assert!(Instant::now() < deadline, "the new topic reaches the NameServer within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Pull everything, then only TagA.
    wait_max_offset(&client, &broker, "TopicE2E", 0, 10).await;
    let r = pull(&client, &broker, "g1", "TopicE2E", 0, 0, "*", 0).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let msgs = decode_records(&r.body, true);
    assert_eq!(msgs.len(), 10);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(&m.body[..], format!("body-{i}").as_bytes());
        assert_eq!(m.queue_offset, i as i64);
        assert_eq!(m.msg_id, ids[i]);
    }
    assert_eq!(r.ext("nextBeginOffset"), Some("10"));
    let r = pull(&client, &broker, "g1", "TopicE2E", 0, 0, "TagA", 0).await;
    let msgs = decode_records(&r.body, true);
    assert_eq!(msgs.len(), 5);
    assert!(msgs.iter().all(|m| m.properties.get("TAGS").map(String::as_str) == Some("TagA")));

    // Query by offset msgId and by key.
    let off = rmqc::protocol::message::decode_offset_msg_id(&ids[3]).unwrap().1;
    let r = client
        .invoke(&broker, RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_ext("offset", off.to_string()), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(&decode_records(&r.body, true)[0].body[..], b"body-3");
    let q = RemotingCommand::request(request::QUERY_MESSAGE)
        .with_ext("topic", "TopicE2E")
        .with_ext("key", "key-7")
        .with_ext("maxNum", "32")
        .with_ext("beginTimestamp", "0")
        .with_ext("endTimestamp", i64::MAX.to_string());
    let r = client.invoke(&broker, q, T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(&decode_records(&r.body, true)[0].body[..], b"body-7");

    // Long polling: a held pull returns within milliseconds of a send...
    let (c2, b2) = (client.clone(), broker.clone());
    let held = tokio::spawn(async move {
        let t0 = Instant::now();
        let r = pull(&c2, &b2, "g1", "TopicE2E", 0, 10, "*", 15_000).await;
        (r, t0.elapsed())
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while container_held(&client, &broker).await == 0 {
        if held.is_finished() {
            panic!("the pull was answered without being held: {:?}", held.await.map(|(r, t)| (r.code, r.remark, t)));
        }
        assert!(Instant::now() < deadline, "the pull is held (not answered, not counted held after 5 s)");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent_at = Instant::now();
    assert_eq!(send(&client, &broker, "TopicE2E", 0, b"late", &[]).await.code, response::SUCCESS);
    let (r, _) = held.await.unwrap();
    let latency = sent_at.elapsed();
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(&decode_records(&r.body, true)[0].body[..], b"late");
    eprintln!("held pull answered {latency:?} after the send");
    assert!(latency < Duration::from_millis(500), "held pull answered {latency:?} after the send");
    // ...and an idle long poll returns after its suspend timeout, with PULL_NOT_FOUND.
    let t0 = Instant::now();
    let r = pull(&client, &broker, "g1", "TopicE2E", 0, 11, "*", 300).await;
    let waited = t0.elapsed();
    assert_eq!(r.code, response::PULL_NOT_FOUND);
    assert!(waited >= Duration::from_millis(290) && waited < Duration::from_secs(5), "idle poll waited {waited:?}");

    // Bad input: clear answers, nothing else changes.
    let big = vec![b'x'; 70_000];
    let r = send(&client, &broker, "TopicE2E", 0, &big, &[]).await;
    assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{:?}", r.remark);
    let r = send(&client, &broker, "Bad Topic!", 0, b"x", &[]).await;
    assert_eq!(r.code, response::INVALID_PARAMETER, "{:?}", r.remark);
    let upd = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", "ReadOnlyTopic")
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", "1")
        .with_ext("writeQueueNums", "1")
        .with_ext("perm", "4")
        .with_ext("topicFilterType", "SINGLE_TAG")
        .with_ext("order", "false");
    assert_eq!(client.invoke(&broker, upd, T).await.unwrap().code, response::SUCCESS);
    let r = send(&client, &broker, "ReadOnlyTopic", 0, b"x", &[]).await;
    assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);
    let r = pull(&client, &broker, "g1", "TopicE2E", 99, 0, "*", 0).await;
    assert_eq!(r.code, response::INVALID_PARAMETER, "{:?}", r.remark);
    let max = RemotingCommand::request(request::GET_MAX_OFFSET).with_ext("topic", "TopicE2E").with_ext("queueId", "0");
    let r = client.invoke(&broker, max, T).await.unwrap();
    assert_eq!(r.ext("offset"), Some("11"), "the refused sends stored nothing");

    client.shutdown().await;
    container.shutdown().await;
}

async fn container_held(client: &RemotingClient, broker: &str) -> i64 {
    let r = client.invoke(broker, RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO), T).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["table"]["pullHeldCount"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_retry_dlq_fast_port_and_binary_headers() {
    let dir = tempfile::tempdir().unwrap();
    let levels = "1s ".repeat(18);
    let (bfile, bport) =
        write_broker(dir.path(), "broker-d", &format!("maxMessageSize=65536\nmessageDelayLevel={}\n", levels.trim()));
    let (conf, _cport, _ns) = write_container(dir.path(), &[&bfile]);
    let container =
        BrokerContainer::start(LoadedContainerConfig::load(&conf, None, None).unwrap(), false, None).await.unwrap();
    let broker = format!("127.0.0.1:{bport}");
    let fast = format!("127.0.0.1:{}", bport - 2);
    let binary = RemotingClient::new(rmqc::remoting::ClientConfig {
        serialize_type: rmqc::remoting::SerializeType::RocketMq,
        ..Default::default()
    });
    let client = RemotingClient::default();

    // The fast port and ROCKETMQ binary headers serve the same processors.
    let r = send(&binary, &fast, "DelayTopic", 0, b"now", &[("TAGS", "t")]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(r.serialize_type, rmqc::remoting::SerializeType::RocketMq);
    let r = pull(&binary, &fast, "dg", "DelayTopic", 0, 0, "*", 10_000).await;
    assert_eq!(decode_records(&r.body, true).len(), 1);

    // A delayed message (level 2 = 1 s here) is not visible at once, then arrives in its topic.
    let sent_at = Instant::now();
    let r = send(&client, &broker, "DelayTopic", 0, b"later", &[("DELAY", "2")]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = pull(&client, &broker, "dg", "DelayTopic", 0, 1, "*", 0).await;
    assert_eq!(r.code, response::PULL_NOT_FOUND, "not delivered yet");
    let r = pull(&client, &broker, "dg", "DelayTopic", 0, 1, "*", 10_000).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let m = &decode_records(&r.body, true)[0];
    assert_eq!(&m.body[..], b"later");
    assert_eq!(m.properties.get("REAL_TOPIC").map(String::as_str), None, "REAL_TOPIC is removed on delivery");
    assert!(sent_at.elapsed() >= Duration::from_millis(900), "delivered after about 1 s, not at once");

    // A consumer that fails sends the message back: it reappears in %RETRY%dg with its origin.
    let send_back = |offset: i64, delay: i32| {
        RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK)
            .with_ext("offset", offset.to_string())
            .with_ext("group", "dg")
            .with_ext("delayLevel", delay.to_string())
            .with_ext("maxReconsumeTimes", "2")
    };
    let r = client.invoke(&broker, send_back(m.commit_log_offset, 1), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = pull(&client, &broker, "dg", "%RETRY%dg", 0, 0, "*", 10_000).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let retry = &decode_records(&r.body, true)[0];
    assert_eq!(&retry.body[..], b"later");
    assert_eq!(retry.reconsume_times, 1);
    assert_eq!(retry.properties.get("RETRY_TOPIC").map(String::as_str), Some("DelayTopic"));
    // Past maxReconsumeTimes the message goes to the dead-letter topic.
    let r = client.invoke(&broker, send_back(retry.commit_log_offset, 1), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS);
    let r = pull(&client, &broker, "dg", "%RETRY%dg", 0, 1, "*", 10_000).await;
    let retry2 = &decode_records(&r.body, true)[0];
    assert_eq!(retry2.reconsume_times, 2);
    let r = client.invoke(&broker, send_back(retry2.commit_log_offset, 1), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS);
    let r = pull(&client, &broker, "dg", "%DLQ%dg", 0, 0, "*", 10_000).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let dead = &decode_records(&r.body, true)[0];
    assert_eq!(&dead.body[..], b"later");
    assert_eq!(dead.reconsume_times, 3);

    client.shutdown().await;
    binary.shutdown().await;
    container.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_removal_waits_for_consumers_to_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let (bfile, bport) = write_broker(dir.path(), "broker-r", "maxMessageSize=65536\n");
    let (conf, cport, _ns) = write_container(dir.path(), &[&bfile]);
    let container =
        BrokerContainer::start(LoadedContainerConfig::load(&conf, None, None).unwrap(), false, None).await.unwrap();
    let client = RemotingClient::default();
    let (broker, caddr) = (format!("127.0.0.1:{bport}"), format!("127.0.0.1:{cport}"));
    for i in 0..3 {
        assert_eq!(
            send(&client, &broker, "DrainTopic", 0, format!("{i}").as_bytes(), &[]).await.code,
            response::SUCCESS
        );
    }
    let commit = |offset: i64| {
        RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", "dg")
            .with_ext("topic", "DrainTopic")
            .with_ext("queueId", "0")
            .with_ext("commitOffset", offset.to_string())
    };
    let remove = || {
        RemotingCommand::request(request::REMOVE_BROKER)
            .with_ext("brokerClusterName", "TestCluster")
            .with_ext("brokerName", "broker-r")
            .with_ext("brokerId", "0")
            .with_ext("drain", "true")
            .with_ext("drainTimeoutMillis", "300")
    };
    wait_max_offset(&client, &broker, "DrainTopic", 0, 3).await;
    // A consumer of group dg reads (creating the group) and commits offset 1.
    assert_eq!(pull(&client, &broker, "dg", "DrainTopic", 0, 0, "*", 0).await.code, response::SUCCESS);
    assert_eq!(client.invoke(&broker, commit(1), T).await.unwrap().code, response::SUCCESS);
    // Behind by 2: the drain times out, the broker stays hosted and refuses writes.
    let r = client.invoke(&caddr, remove(), T).await.unwrap();
    assert_eq!(r.code, response::SYSTEM_ERROR);
    let remark = r.remark.unwrap_or_default();
    assert!(remark.contains("dg behind by 2") && remark.contains("read-only"), "{remark}");
    let r = send(&client, &broker, "DrainTopic", 0, b"late", &[]).await;
    assert_eq!(r.code, response::NO_PERMISSION, "a draining broker refuses writes: {:?}", r.remark);
    let r = pull(&client, &broker, "dg", "DrainTopic", 0, 1, "*", 0).await;
    assert_eq!(decode_records(&r.body, true).len(), 2, "and keeps serving reads");
    // Caught up: the drain completes and the broker is removed.
    assert_eq!(client.invoke(&broker, commit(3), T).await.unwrap().code, response::SUCCESS);
    let r = client.invoke(&caddr, remove(), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert!(client.invoke(&broker, commit(3), Duration::from_millis(500)).await.is_err(), "the broker is gone");
    client.shutdown().await;
    container.shutdown().await;
}

/// The offset a pull commits (sysFlag 0x1) is stored when the pull arrives, as Apache does on the
/// first pass (`brokerAllowSuspend`), and never again when the held pull is answered: the client
/// may meanwhile have committed a newer offset with UPDATE_CONSUMER_OFFSET (it does so at
/// shutdown), which the stale value must not overwrite. Found by the rocketmq-rust client: after a
/// consumer shut down, its held pulls rolled the group's offsets back, and a restarted broker
/// redelivered consumed messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_pull_commits_its_offset_on_arrival_only() {
    use rmqc::protocol::header::PullMessageRequestHeader;

    let dir = tempfile::tempdir().unwrap();
    let (bfile, bport) = write_broker(dir.path(), "broker-c", "maxMessageSize=65536\n");
    let (conf, _cport, _ns) = write_container(dir.path(), &[&bfile]);
    let container =
        BrokerContainer::start(LoadedContainerConfig::load(&conf, None, None).unwrap(), false, None).await.unwrap();
    let client = RemotingClient::default();
    let broker = format!("127.0.0.1:{bport}");
    assert_eq!(send(&client, &broker, "TopicCommit", 0, b"m0", &[]).await.code, response::SUCCESS);

    let query = |client: RemotingClient, broker: String| async move {
        let q = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
            .with_ext("consumerGroup", "gc")
            .with_ext("topic", "TopicCommit")
            .with_ext("queueId", "0")
            .with_ext("setZeroIfNotFound", "false");
        let r = client.invoke(&broker, q, T).await.unwrap();
        (r.code == response::SUCCESS).then(|| r.ext("offset").unwrap().parse::<i64>().unwrap())
    };
    assert_eq!(query(client.clone(), broker.clone()).await, None, "no offset yet");

    // A held pull at offset 1 that commits offset 0 (COMMIT_OFFSET | SUSPEND | SUBSCRIPTION).
    let h = PullMessageRequestHeader {
        consumer_group: "gc".into(),
        topic: "TopicCommit".into(),
        queue_id: 0,
        queue_offset: 1,
        max_msg_nums: 32,
        sys_flag: 0x1 | 0x2 | 0x4,
        commit_offset: 0,
        suspend_timeout_millis: 15_000,
        subscription: Some("*".into()),
        sub_version: 0,
        expression_type: Some("TAG".into()),
        max_msg_bytes: None,
    };
    let (c2, b2) = (client.clone(), broker.clone());
    let held = tokio::spawn(async move {
        let req = RemotingCommand::request_with_header(request::PULL_MESSAGE, &h);
        c2.invoke(&b2, req, T + Duration::from_secs(15)).await.unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while container_held(&client, &broker).await == 0 {
        if held.is_finished() {
            panic!("the pull was answered without being held: {:?}", held.await);
        }
        assert!(Instant::now() < deadline, "the pull is held (not answered, not counted held after 5 s)");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(query(client.clone(), broker.clone()).await, Some(0), "committed when the pull arrived");

    // The client commits a newer offset, then a message wakes the held pull.
    let upd = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", "gc")
        .with_ext("topic", "TopicCommit")
        .with_ext("queueId", "0")
        .with_ext("commitOffset", "1");
    assert_eq!(client.invoke(&broker, upd, T).await.unwrap().code, response::SUCCESS);
    assert_eq!(send(&client, &broker, "TopicCommit", 0, b"m1", &[]).await.code, response::SUCCESS);
    let r = held.await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(&decode_records(&r.body, true)[0].body[..], b"m1");
    assert_eq!(query(client.clone(), broker.clone()).await, Some(1), "the answered pull did not roll the offset back");

    client.shutdown().await;
    container.shutdown().await;
}
