//! Issue 16 (SQL92 filters): a consumer that pulls with an SQL92 selector gets only the matching
//! messages; a malformed selector is refused with SUBSCRIPTION_PARSE_FAILED and a remark saying
//! where; a broker without `enablePropertyFilter` refuses SQL92; CHECK_CLIENT_CONFIG answers the
//! same before a consumer starts.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::rmq::{create_topic, send, wait_max_offset, T};
use common::{port_open, wait_until, write_broker, write_container, ChildGuard};
use rmqc::protocol::codes::{request, response};
use rmqc::protocol::header::PullMessageRequestHeader;
use rmqc::protocol::message::decode_records;
use rmqc::remoting::{RemotingClient, RemotingCommand};

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");

async fn pull_sql(client: &RemotingClient, addr: &str, expr: &str) -> RemotingCommand {
    let h = PullMessageRequestHeader {
        consumer_group: "sql-group".into(),
        topic: "SqlTopic".into(),
        queue_id: 0,
        queue_offset: 0,
        max_msg_nums: 32,
        sys_flag: 0x4,
        commit_offset: 0,
        suspend_timeout_millis: 0,
        subscription: Some(expr.into()),
        sub_version: 0,
        expression_type: Some("SQL92".into()),
        max_msg_bytes: None,
    };
    let req = RemotingCommand::request_with_header(request::PULL_MESSAGE, &h);
    client.invoke(addr, req, T).await.expect("pull answered")
}

fn check_client(expr: &str) -> RemotingCommand {
    let body = format!(
        r#"{{"clientId":"127.0.0.1@sql","group":"sql-group","namespace":null,"subscriptionData":{{"classFilterMode":false,"codeSet":[],"expressionType":"SQL92","subString":{},"subVersion":1,"tagsSet":[],"topic":"SqlTopic"}}}}"#,
        serde_json::to_string(expr).unwrap()
    );
    RemotingCommand::request(request::CHECK_CLIENT_CONFIG).with_body(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_selectors_deliver_only_matching_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (on, pon) = write_broker(dir.path(), "sql-on", "enablePropertyFilter=true\n");
    let (off, poff) = write_broker(dir.path(), "sql-off", "");
    let (conf, _port, _ns) = write_container(dir.path(), &[&on, &off]);
    let _c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], dir.path(), "container");
    wait_until("brokers listen", Duration::from_secs(20), || port_open(pon) && port_open(poff));
    let (addr_on, addr_off) = (format!("127.0.0.1:{pon}"), format!("127.0.0.1:{poff}"));
    let client = RemotingClient::default();
    for addr in [&addr_on, &addr_off] {
        create_topic(&client, addr, "SqlTopic").await;
    }
    // 20 messages: a = 0..19, TAGS alternating TagA / TagB, region only on the first five.
    for i in 0..20 {
        let a = i.to_string();
        let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
        let mut props = vec![("a", a.as_str()), ("TAGS", tag)];
        if i < 5 {
            props.push(("region", "eu-west"));
        }
        let r = send(&client, &addr_on, "SqlTopic", 0, format!("m{i}").as_bytes(), &props).await;
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    wait_max_offset(&client, &addr_on, "SqlTopic", 0, 20).await;

    let a_values = |r: &RemotingCommand| -> Vec<i64> {
        decode_records(&r.body, true).iter().map(|m| m.properties["a"].parse::<i64>().unwrap()).collect()
    };
    for (expr, expect) in [
        ("a >= 10 AND TAGS = 'TagA'", vec![10, 12, 14, 16, 18]),
        ("a BETWEEN 3 AND 6 OR a IN ('19')", vec![3, 4, 5, 6, 19]),
        ("region STARTSWITH 'eu' AND NOT (a = 2)", vec![0, 1, 3, 4]),
        ("region IS NULL AND a < 7", vec![5, 6]),
        ("TAGS = 'TagC'", vec![]),
    ] {
        let r = pull_sql(&client, &addr_on, expr).await;
        let got = if r.code == response::SUCCESS { a_values(&r) } else { Vec::new() };
        assert_eq!(got, expect, "{expr}: code {} {:?}", r.code, r.remark);
        if expect.is_empty() {
            // Nothing matched: no message, and the consumer is told where to continue.
            assert!(r.code == response::PULL_NOT_FOUND || r.code == response::PULL_RETRY_IMMEDIATELY, "{}", r.code);
        }
    }

    // A malformed selector: SUBSCRIPTION_PARSE_FAILED with the position; nothing delivered.
    let r = pull_sql(&client, &addr_on, "a >").await;
    assert_eq!(r.code, response::SUBSCRIPTION_PARSE_FAILED, "{:?}", r.remark);
    assert!(r.remark.as_deref().unwrap_or("").contains("position"), "{:?}", r.remark);
    // Without enablePropertyFilter, SQL92 is refused as Apache refuses it.
    let r = pull_sql(&client, &addr_off, "a > 1").await;
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r.remark.as_deref().unwrap_or("").contains("does not support consumer to filter message by SQL92"));

    // CHECK_CLIENT_CONFIG, as a consumer sends it at start.
    let r = client.invoke(&addr_on, check_client("a > 1 AND b IS NULL"), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = client.invoke(&addr_on, check_client("a >> 1"), T).await.unwrap();
    assert_eq!(r.code, response::SUBSCRIPTION_PARSE_FAILED, "{:?}", r.remark);
    let r = client.invoke(&addr_off, check_client("a > 1"), T).await.unwrap();
    assert_eq!(r.code, response::SYSTEM_ERROR, "{:?}", r.remark);
}
