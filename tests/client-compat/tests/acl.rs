//! Issue #17: the rocketmq-rust client (crates.io) with its own `AclClientRPCHook` against a
//! BrokerContainer with ACL 2.0 authentication and authorization on, with JSON and with ROCKETMQ
//! binary headers. The broker's answers are watched by a tap in front of it, so every refusal the
//! test relies on is seen as NO_PERMISSION (16) on the wire, not inferred from the client.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::Arc;
use std::time::{Duration, Instant};

use client_compat::{assert_exactly_once, send_all, with_client, Client, Recorder, Servers, Wire};
use rmqc::auth::signature::{AclClientRpcHook, Credentials};
use rmqc::protocol::codes::{request, response};
use rmqc::remoting::{ClientConfig, RemotingClient, RemotingCommand};
use rocketmq_model::common::message::message_single::Message;

const RPC: Duration = Duration::from_secs(5);
const TOPIC: &str = "CompatAclTopic";
const GROUP: &str = "compat-acl-group";
const QUEUES: i32 = 4;
const N: usize = 50;

/// Our own client, signing as Apache's `AclClientRPCHook` does, as the init super user.
fn admin() -> RemotingClient {
    let hook = AclClientRpcHook(Credentials::new("admin", "admin-secret"));
    RemotingClient::new(ClientConfig { rpc_hook: Some(Arc::new(hook)), ..Default::default() })
}

async fn ok(client: &RemotingClient, addr: &str, req: RemotingCommand, what: &str) -> RemotingCommand {
    let r = client.invoke(addr, req, RPC).await.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(r.code, response::SUCCESS, "{what}: {} {:?}", r.code, r.remark);
    r
}

async fn create_user(admin: &RemotingClient, addr: &str, name: &str, password: &str) {
    let user = format!(r#"{{"username":"{name}","password":"{password}","userType":"Normal","userStatus":"enable"}}"#);
    let req = RemotingCommand::request(request::AUTH_CREATE_USER).with_ext("username", name).with_body(user);
    ok(admin, addr, req, "create user").await;
}

async fn create_acl(admin: &RemotingClient, addr: &str, name: &str, entries: &str) {
    let subject = format!("User:{name}");
    let acl = format!(r#"{{"subject":"{subject}","policies":[{{"policyType":"Custom","entries":[{entries}]}}]}}"#);
    let req = RemotingCommand::request(request::AUTH_CREATE_ACL).with_ext("subject", subject).with_body(acl);
    ok(admin, addr, req, "create acl").await;
}

/// Creates the topic; user `app` with Pub and Sub on the topic and Sub on the group; user `nosub`
/// with Sub on the topic and nothing on the group.
async fn set_up(admin: &RemotingClient, addr: &str) {
    let topic = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", TOPIC)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", QUEUES.to_string())
        .with_ext("writeQueueNums", QUEUES.to_string())
        .with_ext("perm", "6")
        .with_ext("topicFilterType", "SINGLE_TAG")
        .with_ext("order", "false");
    ok(admin, addr, topic, "create topic").await;
    create_user(admin, addr, "app", "app-secret").await;
    create_acl(
        admin,
        addr,
        "app",
        &format!(
            r#"{{"resource":"Topic:{TOPIC}","actions":["Pub","Sub"],"decision":"Allow"}},
               {{"resource":"Group:{GROUP}","actions":["Sub"],"decision":"Allow"}}"#
        ),
    )
    .await;
    create_user(admin, addr, "nosub", "nosub-secret").await;
    create_acl(
        admin,
        addr,
        "nosub",
        &format!(r#"{{"resource":"Topic:{TOPIC}","actions":["Sub"],"decision":"Allow"}}"#),
    )
    .await;
}

/// Sum of the topic's queues' max offsets, read by the super user.
async fn stored(admin: &RemotingClient, addr: &str) -> i64 {
    let mut sum = 0;
    for q in 0..QUEUES {
        let req = RemotingCommand::request(request::GET_MAX_OFFSET)
            .with_ext("topic", TOPIC)
            .with_ext("queueId", q.to_string());
        let r = ok(admin, addr, req, "max offset").await;
        sum += r.ext("offset").and_then(|s| s.parse::<i64>().ok()).expect("offset");
    }
    sum
}

/// The group's committed offsets on the topic's queues (-1 where none), read by the super user.
async fn committed(admin: &RemotingClient, addr: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for q in 0..QUEUES {
        let req = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
            .with_ext("consumerGroup", GROUP)
            .with_ext("topic", TOPIC)
            .with_ext("queueId", q.to_string())
            .with_ext("setZeroIfNotFound", "false");
        let r = admin.invoke(addr, req, RPC).await.expect("QUERY_CONSUMER_OFFSET");
        out.push(if r.code == response::SUCCESS {
            r.ext("offset").and_then(|s| s.parse().ok()).unwrap_or(-1)
        } else {
            -1
        });
    }
    out
}

/// Waits (bounded) until `done` holds, polling every 50 ms.
async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scenario(client: Client) {
    let dir = tempfile::tempdir().unwrap();
    let servers = Servers::start_tapped(
        dir.path(),
        "authenticationEnabled=true\nauthorizationEnabled=true\n\
         initAuthenticationUser={\"username\":\"admin\",\"password\":\"admin-secret\"}\n",
    );
    let tap = &servers.taps.as_ref().unwrap().1;
    let ns = servers.namesrv_addr();
    let addr = servers.broker_addr();
    let admin = admin();
    set_up(&admin, &addr).await;
    servers.wait_route(TOPIC, Duration::from_secs(30)).await;
    let refused = |code: i32| tap.answered(code, response::NO_PERMISSION);
    let sends = || refused(request::SEND_MESSAGE) + refused(request::SEND_MESSAGE_V2);

    // A wrong secret key: the broker refuses the sends, the client reports an error, nothing is stored.
    let mut bad = client.signed_producer(&ns, "compat-acl-bad", "app", "wrong-secret").await;
    let msg =
        Message::builder().topic(TOPIC).tags("A").body_slice("refused".as_bytes()).build().expect("a valid message");
    match bad.send_with_timeout(msg, 5000).await {
        // The client's error text is generic ("Broker operation failed"): the tap shows the code.
        Err(e) => eprintln!("refused as expected: {e}"),
        Ok(r) => panic!("a wrong secret key must be refused, got {r:?}"),
    }
    bad.shutdown().await;
    assert!(sends() >= 1, "the broker answered the sends NO_PERMISSION: {:?}", tap.answers());
    assert_eq!(stored(&admin, &addr).await, 0, "nothing stored for the refused producer");

    // The right credentials: N sends, all SEND_OK and stored.
    let refused_sends = sends();
    let mut producer = client.signed_producer(&ns, "compat-acl-producer", "app", "app-secret").await;
    let sent = send_all(&producer, TOPIC, "acl", N, |_| "A").await;
    producer.shutdown().await;
    // Exactly N: nothing of the refused producer was stored.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored(&admin, &addr).await < N as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored(&admin, &addr).await, N as i64, "the N messages stored, and nothing else");
    assert_eq!(sends(), refused_sends, "no send of the right credentials refused: {:?}", tap.answers());

    // A user with Sub on the topic but not on the group: the broker refuses its heartbeat and the
    // group's consumer list (so it is assigned no queue), and nothing is delivered to it.
    // (The producers' heartbeats, with no consumer in them, were accepted before.)
    let heartbeats_accepted = tap.answered(request::HEART_BEAT, response::SUCCESS);
    let nosub_rec = Recorder::default();
    let mut nosub = client
        .signed_push_consumer(&ns, GROUP, "consumer-nosub", TOPIC, "nosub", "nosub-secret", nosub_rec.clone())
        .await;
    wait_for("the no-Sub consumer's heartbeat and consumer list refused", Duration::from_secs(30), || {
        refused(request::HEART_BEAT) >= 1 && refused(request::GET_CONSUMER_LIST_BY_GROUP) >= 1
    })
    .await;
    nosub.shutdown().await;
    assert_eq!(nosub_rec.len(), 0, "nothing delivered without Sub on the group");
    let answers = tap.answers();
    assert_eq!(tap.answered(request::PULL_MESSAGE, response::SUCCESS), 0, "no pull served: {answers:?}");
    let accepted = tap.answered(request::HEART_BEAT, response::SUCCESS);
    assert_eq!(accepted, heartbeats_accepted, "no heartbeat of the no-Sub consumer accepted: {answers:?}");
    assert_eq!(committed(&admin, &addr).await, vec![-1; QUEUES as usize], "no offset committed");

    // The right credentials: each message delivered exactly once.
    let rec = Recorder::default();
    let mut consumer =
        client.signed_push_consumer(&ns, GROUP, "consumer-app", TOPIC, "app", "app-secret", rec.clone()).await;
    rec.wait_for("every message delivered", Duration::from_secs(60), |got| got.len() >= N).await;
    consumer.shutdown().await;
    assert_exactly_once(&sent, &rec.snapshot());
    assert!(tap.answered(request::PULL_MESSAGE, response::SUCCESS) >= 1, "{:?}", tap.answers());
    // The consumer commits its offsets (signed) as it stops: they come to cover the N messages.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let offsets = committed(&admin, &addr).await;
        if offsets.iter().filter(|o| **o > 0).sum::<i64>() == N as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "the group's committed offsets {offsets:?} do not cover {N} messages");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin.shutdown().await;
}

#[test]
fn acl_hook_json_producer_and_push_consumer_work_wrong_secret_and_no_group_sub_are_refused() {
    with_client(Wire::Json, scenario);
}

#[test]
fn acl_hook_rocketmq_wire_producer_and_push_consumer_work_wrong_secret_and_no_group_sub_are_refused() {
    with_client(Wire::RocketMq, scenario);
}
