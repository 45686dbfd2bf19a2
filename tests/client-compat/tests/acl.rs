//! Issue #17: the rocketmq-rust client (crates.io) with its own `AclClientRPCHook` against a
//! BrokerContainer with ACL 2.0 authentication and authorization on.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use client_compat::{send_all, with_client, Client, Recorder, Servers, Wire};
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

/// Creates the topic, user `app` and its ACL (Pub on the topic, Sub on topic and group).
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
    let user = r#"{"username":"app","password":"app-secret","userType":"Normal","userStatus":"enable"}"#;
    let req =
        RemotingCommand::request(request::AUTH_CREATE_USER).with_ext("username", "app").with_body(user.to_string());
    ok(admin, addr, req, "create user").await;
    let acl = format!(
        r#"{{"subject":"User:app","policies":[{{"policyType":"Custom","entries":[
            {{"resource":"Topic:{TOPIC}","actions":["Pub","Sub"],"decision":"Allow"}},
            {{"resource":"Group:{GROUP}","actions":["Sub"],"decision":"Allow"}}]}}]}}"#
    );
    let req = RemotingCommand::request(request::AUTH_CREATE_ACL).with_ext("subject", "User:app").with_body(acl);
    ok(admin, addr, req, "create acl").await;
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

async fn scenario(client: Client) {
    let dir = tempfile::tempdir().unwrap();
    let servers = Servers::start(
        dir.path(),
        "authenticationEnabled=true\nauthorizationEnabled=true\n\
         initAuthenticationUser={\"username\":\"admin\",\"password\":\"admin-secret\"}\n",
    );
    let ns = servers.namesrv_addr();
    let addr = servers.broker_addr();
    let admin = admin();
    set_up(&admin, &addr).await;
    servers.wait_route(TOPIC, Duration::from_secs(30)).await;

    // A wrong secret key: refused, nothing stored.
    let mut bad = client.signed_producer(&ns, "compat-acl-bad", "app", "wrong-secret").await;
    let msg =
        Message::builder().topic(TOPIC).tags("A").body_slice("refused".as_bytes()).build().expect("a valid message");
    match bad.send_with_timeout(msg, 5000).await {
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains("16") || text.to_lowercase().contains("permission") || text.contains("signature"),
                "refusal: {text}"
            );
        }
        Ok(r) => panic!("a wrong secret key must be refused, got {r:?}"),
    }
    bad.shutdown().await;
    assert_eq!(stored(&admin, &addr).await, 0, "nothing stored for the refused producer");

    // The right credentials: N sends, all SEND_OK, then received exactly once.
    let mut producer = client.signed_producer(&ns, "compat-acl-producer", "app", "app-secret").await;
    let sent = send_all(&producer, TOPIC, "acl", N, |_| "A").await;
    assert_eq!(stored(&admin, &addr).await, N as i64);
    let rec = Recorder::default();
    let mut consumer = client.signed_push_consumer(&ns, GROUP, TOPIC, "app", "app-secret", rec.clone()).await;
    rec.wait_for("every message delivered", Duration::from_secs(60), |got| got.len() >= N).await;
    consumer.shutdown().await;
    producer.shutdown().await;
    let got: Vec<String> = rec.snapshot().into_iter().map(|g| g.body).collect();
    let want: BTreeSet<String> = sent.keys().cloned().collect();
    assert_eq!(got.len(), N, "exactly N deliveries: {got:?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    admin.shutdown().await;
}

#[test]
fn acl_hook_producer_and_push_consumer_work_and_wrong_secret_is_refused() {
    with_client(Wire::Json, scenario);
}
