//! Access control (ACL 2.0), process level: the real `mqbrokercontainer` and `mqadmin` binaries,
//! clients signing requests as Apache's `AclClientRPCHook` does.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::rmq::{create_topic, pull, send, wait_max_offset, T};
use common::{
    free_port_block, port_open, run, text, wait_async, wait_until, write_broker, write_container, ChildGuard,
};
use rmqc::auth::signature::{AclClientRpcHook, Credentials};
use rmqc::protocol::codes::{request, response};
use rmqc::remoting::{ClientConfig, RemotingClient, RemotingCommand};

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");

const ADMIN_USER: &str = r#"initAuthenticationUser={"username":"admin","password":"admin-secret"}"#;

fn signed(ak: &str, sk: &str) -> RemotingClient {
    let hook = AclClientRpcHook(Credentials::new(ak, sk));
    RemotingClient::new(ClientConfig { rpc_hook: Some(Arc::new(hook)), ..Default::default() })
}

async fn call(client: &RemotingClient, addr: &str, req: RemotingCommand) -> RemotingCommand {
    client.invoke(addr, req, T).await.expect("answered")
}

async fn create_user(admin: &RemotingClient, addr: &str, name: &str, pw: &str, status: &str) {
    let body = serde_json::json!({"username": name, "password": pw, "userType": "Normal", "userStatus": status});
    let req = RemotingCommand::request(request::AUTH_CREATE_USER)
        .with_ext("username", name)
        .with_body(Bytes::from(body.to_string()));
    let r = call(admin, addr, req).await;
    assert_eq!(r.code, response::SUCCESS, "create user {name}: {:?}", r.remark);
}

async fn create_acl(admin: &RemotingClient, addr: &str, subject: &str, entries: serde_json::Value) {
    let body = serde_json::json!({"subject": subject, "policies": [{"policyType": "Custom", "entries": entries}]});
    let req = RemotingCommand::request(request::AUTH_CREATE_ACL)
        .with_ext("subject", subject)
        .with_body(Bytes::from(body.to_string()));
    let r = call(admin, addr, req).await;
    assert_eq!(r.code, response::SUCCESS, "create acl {subject}: {:?}", r.remark);
}

fn refused(r: &RemotingCommand, what: &str, remark: &str) {
    assert_eq!(r.code, response::NO_PERMISSION, "{what}: {} {:?}", r.code, r.remark);
    let got = r.remark.clone().unwrap_or_default();
    assert!(got.contains(remark), "{what}: remark {got:?} should say {remark:?}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_clients_pub_and_sub_refusals_answer_16_with_an_audit_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (file, port) =
        write_broker(d, "acl-a", &format!("authenticationEnabled=true\nauthorizationEnabled=true\n{ADMIN_USER}\n"));
    let (conf, _cport, _ns) = write_container(d, &[&file]);
    let _c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "container");
    wait_until("the broker listens", Duration::from_secs(30), || port_open(port));
    let addr = format!("127.0.0.1:{port}");

    let admin = signed("admin", "admin-secret");
    create_topic(&admin, &addr, "AclTopic").await;
    create_topic(&admin, &addr, "AclTopicSecret").await;
    create_user(&admin, &addr, "producer", "p-secret", "enable").await;
    create_user(&admin, &addr, "consumer", "c-secret", "enable").await;
    create_user(&admin, &addr, "sleeper", "s-secret", "disable").await;
    create_acl(
        &admin,
        &addr,
        "User:producer",
        serde_json::json!([
            {"resource": "Topic:AclTopic*", "actions": ["Pub"], "decision": "Allow"},
            {"resource": "Topic:AclTopicSecret", "actions": ["Pub"], "decision": "Deny"},
        ]),
    )
    .await;
    create_acl(
        &admin,
        &addr,
        "User:consumer",
        serde_json::json!([
            {"resource": "Topic:AclTopic", "actions": ["Sub"], "sourceIps": ["127.0.0.0/8"], "decision": "Allow"},
            {"resource": "Group:acl-group", "actions": ["Sub"], "decision": "Allow"},
        ]),
    )
    .await;

    // A signed producer with Pub sends; the Deny on a topic beats the Allow on its prefix.
    let producer = signed("producer", "p-secret");
    let r = send(&producer, &addr, "AclTopic", 0, b"hello acl", &[]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    refused(&send(&producer, &addr, "AclTopicSecret", 0, b"no", &[]).await, "Deny beats prefix", "decision is deny");

    // A signed consumer with Sub consumes, and may not send.
    wait_max_offset(&admin, &addr, "AclTopic", 0, 1).await;
    let consumer = signed("consumer", "c-secret");
    let r = pull(&consumer, &addr, "acl-group", "AclTopic", 0, 0, "*", 0).await;
    assert_eq!(r.code, response::SUCCESS, "pull: {:?}", r.remark);
    assert!(r.body.windows(9).any(|w| w == b"hello acl"), "the pulled body holds the message");
    refused(&send(&consumer, &addr, "AclTopic", 0, b"no", &[]).await, "consumer sends", "no matched policies");
    refused(&pull(&consumer, &addr, "other-group", "AclTopic", 0, 0, "*", 0).await, "other group", "Group:other-group");

    // Unsigned, wrongly signed, unknown and disabled users are refused.
    let plain = RemotingClient::default();
    refused(&send(&plain, &addr, "AclTopic", 0, b"x", &[]).await, "unsigned", "username cannot be null");
    let wrong = signed("producer", "not-the-secret");
    refused(&send(&wrong, &addr, "AclTopic", 0, b"x", &[]).await, "wrong secret", "check signature failed");
    let unknown = signed("nobody", "x");
    refused(&send(&unknown, &addr, "AclTopic", 0, b"x", &[]).await, "unknown user", "not found");
    let sleeper = signed("sleeper", "s-secret");
    refused(&send(&sleeper, &addr, "AclTopic", 0, b"x", &[]).await, "disabled user", "disabled");
    // A body changed after signing.
    let h = rmqc::client::send::send_header("pg", "AclTopic", 0, 4, None);
    let mut req = rmqc::client::send::send_request(request::SEND_MESSAGE_V2, &h, Bytes::from_static(b"original"));
    Credentials::new("producer", "p-secret").sign_request(&mut req);
    req.body = Bytes::from_static(b"tampered");
    refused(&call(&plain, &addr, req).await, "tampered body", "check signature failed");
    // Oversized and garbage signature fields are refused, not fatal.
    let req = RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO)
        .with_ext("AccessKey", "producer")
        .with_ext("Signature", "x".repeat(100_000));
    refused(&call(&plain, &addr, req).await, "oversized signature", "above the limit");

    // The broker keeps serving the others.
    let r = send(&producer, &addr, "AclTopic", 0, b"still here", &[]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);

    // Each refusal left a line in the broker's audit log.
    let audit = d.join("logs").join("TestCluster_acl-a_0").join("auth_audit.log");
    wait_until("audit lines", Duration::from_secs(10), || {
        let a = read(&audit);
        a.contains("[AUTHENTICATION] User:nobody") && a.contains("[AUTHORIZATION] Subject = User:consumer")
    });
    let a = read(&audit);
    assert!(a.contains("User:sleeper") && a.contains("check signature failed"), "{a}");
    // Users are stored under the broker's store config dir, never readable by others.
    let users = d.join("store").join("acl-a").join("config").join("users.json");
    assert!(read(&users).contains("producer"));
    let broker_log = read(&d.join("logs").join("TestCluster_acl-a_0").join("broker.log"));
    assert!(!broker_log.contains("admin-secret") && !broker_log.contains("p-secret"), "secrets in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_admin_port_needs_a_super_user_and_mqadmin_users_and_acls_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (conf, cport, ns) = write_container(d, &[]);
    let mut text_conf = std::fs::read_to_string(&conf).unwrap();
    text_conf.push_str(&format!(
        "authenticationEnabled=true\ninitAuthenticationUser={{\"username\":\"root\",\"password\":\"root-secret\"}}\nauthConfigPath={}\n",
        d.join("cauth").display()
    ));
    std::fs::write(&conf, text_conf).unwrap();
    let (bfile, bport) =
        write_broker(d, "acl-b", "authenticationEnabled=true\nauthorizationEnabled=true\nuseContainerAuthStore=true\n");
    let bconf = d.join(&bfile);
    let _c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "container");
    wait_until("the container listens", Duration::from_secs(30), || port_open(cport));
    let caddr = format!("127.0.0.1:{cport}");
    let baddr = format!("127.0.0.1:{bport}");
    let root = ["-a", "root", "-s", "root-secret"];
    let with = |auth: &[&str], args: &[&str]| {
        let mut v: Vec<&str> = auth.to_vec();
        v.extend_from_slice(args);
        run(MQADMIN, &v)
    };

    // ADD_BROKER: refused unsigned and wrongly signed, accepted from the Super user.
    let add = ["addBroker", "-c", &caddr, "-b", bconf.to_str().unwrap()];
    let o = with(&[], &add);
    assert!(!o.status.success() && text(&o).contains("NO_PERMISSION"), "{}", text(&o));
    let o = with(&["-a", "root", "-s", "wrong"], &add);
    assert!(!o.status.success() && text(&o).contains("check signature failed"), "{}", text(&o));
    assert!(!port_open(bport), "a refused add starts nothing");
    let o = with(&root, &add);
    assert!(o.status.success(), "{}", text(&o));
    wait_until("the added broker listens", Duration::from_secs(30), || port_open(bport));

    // UPDATE_BROKER_CONFIG on the container: the same.
    let upd = ["updateBrokerConfig", "-b", &caddr, "-k", "updateNamesrvAddrInterval", "-v", "60000"];
    let o = with(&[], &upd);
    assert!(!o.status.success() && text(&o).contains("NO_PERMISSION"), "{}", text(&o));
    let o = with(&root, &upd);
    assert!(o.status.success(), "{}", text(&o));

    // Secrets never show: getBrokerConfig and -p mask them.
    let o = with(&[], &["getBrokerConfig", "-b", &caddr]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("root-secret") && text(&o).contains("******"), "{}", text(&o));
    let p = run(CONTAINER, &["-c", conf.to_str().unwrap(), "-p"]);
    assert!(!text(&p).contains("root-secret") && text(&p).contains("initAuthenticationUser"), "{}", text(&p));

    // mqadmin's user and ACL commands on the broker, which shares the container's store.
    let ok = |args: &[&str]| {
        let o = with(&root, args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ok(&["createUser", "-b", &baddr, "-u", "alice", "-p", "alice-secret"]);
    let out = ok(&["getUser", "-b", &baddr, "-u", "alice"]);
    assert!(out.contains("alice") && out.contains("Normal") && out.contains("enable"), "{out}");
    assert!(!out.contains("alice-secret"), "{out}");
    ok(&["updateUser", "-b", &baddr, "-u", "alice", "-s", "disable"]);
    assert!(ok(&["getUser", "-b", &baddr, "-u", "alice"]).contains("disable"));
    let out = ok(&["listUser", "-b", &baddr, "-f", "ali"]);
    assert!(out.contains("alice") && !out.contains("root "), "{out}");
    ok(&["createAcl", "-b", &baddr, "-s", "User:alice", "-r", "Topic:foo,Group:g", "-a", "Pub,Sub", "-d", "Allow"]);
    let out = ok(&["getAcl", "-b", &baddr, "-s", "User:alice"]);
    assert!(out.contains("Topic:foo") && out.contains("Pub,Sub") && out.contains("Allow"), "{out}");
    ok(&["updateAcl", "-b", &baddr, "-s", "User:alice", "-r", "Topic:foo", "-a", "Pub", "-d", "Deny"]);
    let out = ok(&["listAcl", "-b", &baddr, "-s", "alice"]);
    assert!(out.contains("Deny") && out.contains("Group:g"), "{out}");
    ok(&["deleteAcl", "-b", &baddr, "-s", "User:alice", "-r", "Topic:foo"]);
    let out = ok(&["getAcl", "-b", &baddr, "-s", "User:alice"]);
    assert!(!out.contains("Topic:foo") && out.contains("Group:g"), "{out}");
    // The container's store has them (shared), in its authConfigPath.
    assert!(read(&d.join("cauth").join("acls.json")).contains("Group:g"));
    // copyUser / copyAcl to a broker with its own store.
    let (cfile, c2port) = write_broker(
        d,
        "acl-c",
        "authenticationEnabled=true\ninitAuthenticationUser={\"username\":\"root\",\"password\":\"root-secret\"}\n",
    );
    ok(&["addBroker", "-c", &caddr, "-b", d.join(&cfile).to_str().unwrap()]);
    wait_until("acl-c listens", Duration::from_secs(30), || port_open(c2port));
    let c2addr = format!("127.0.0.1:{c2port}");
    assert!(ok(&["getUser", "-b", &c2addr, "-u", "alice"]).contains("not found"));
    ok(&["copyUser", "-f", &baddr, "-t", &c2addr, "-u", "alice"]);
    ok(&["copyAcl", "-f", &baddr, "-t", &c2addr, "-s", "User:alice"]);
    assert!(ok(&["getUser", "-b", &c2addr, "-u", "alice"]).contains("disable"));
    assert!(ok(&["getAcl", "-b", &c2addr, "-s", "User:alice"]).contains("Group:g"));
    assert!(!read(&d.join("store").join("acl-c").join("config").join("users.json")).is_empty());
    ok(&["removeBroker", "-c", &caddr, "-b", "TestCluster:acl-c:0"]);

    ok(&["deleteUser", "-b", &baddr, "-u", "alice"]);
    assert!(ok(&["getUser", "-b", &baddr, "-u", "alice"]).contains("not found"));
    // Unsigned admin requests to the broker are refused.
    let o = with(&[], &["listUser", "-b", &baddr]);
    assert!(!o.status.success() && text(&o).contains("NO_PERMISSION"), "{}", text(&o));
    // A Super user signs every command, NameServer look-ups included.
    let o = with(&root, &["clusterList", "-n", &format!("127.0.0.1:{ns}")]);
    assert!(o.status.success() && text(&o).contains("acl-b"), "{}", text(&o));

    // REMOVE_BROKER: refused unsigned, accepted signed.
    let rm = ["removeBroker", "-c", &caddr, "-b", "TestCluster:acl-b:0"];
    let o = with(&[], &rm);
    assert!(!o.status.success() && text(&o).contains("NO_PERMISSION"), "{}", text(&o));
    assert!(port_open(bport));
    let o = with(&root, &rm);
    assert!(o.status.success(), "{}", text(&o));
    wait_until("the removed broker's port closes", Duration::from_secs(30), || !port_open(bport));
    let audit = read(&d.join("logs").join("BrokerContainer").join("auth_audit.log"));
    assert!(audit.contains("container admin request code=902"), "{audit}");
}

fn ha_conf(dir: &Path, id: i64, port: u16, inner: bool) -> String {
    let inner = if inner {
        r#"innerClientAuthenticationCredentials={"accessKey":"inner","secretKey":"inner-secret"}"#
    } else {
        ""
    };
    let role = if id == 0 { "ASYNC_MASTER" } else { "SLAVE" };
    let file = format!("acl-ha-{id}.conf");
    std::fs::write(
        dir.join(&file),
        format!(
            "brokerClusterName=AclHa\nbrokerName=acl-ha\nbrokerId={id}\nbrokerRole={role}\nlistenPort={port}\nbrokerIP1=127.0.0.1\nstorePathRootDir={}\nmappedFileSizeCommitLog=1048576\nmaxMessageSize=65536\nmappedFileSizeConsumeQueue=6000\nmaxHashSlotNum=1000\nmaxIndexNum=4000\nauthenticationEnabled=true\nauthorizationEnabled=true\n{ADMIN_USER}\n{inner}\n",
            dir.join(format!("store-{id}")).display()
        ),
    )
    .unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_slave_replication_work_with_inner_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mport = free_port_block(2, 1);
    let other = |taken: &[u16]| loop {
        let p = free_port_block(2, 1);
        if taken.iter().all(|t| p.abs_diff(*t) > 4) {
            break p;
        }
    };
    let sport = other(&[mport]);
    let uport = other(&[mport, sport]);
    let m = ha_conf(d, 0, mport, true);
    let s = ha_conf(d, 1, sport, true);
    // A second slave without inner credentials: the master refuses its metadata sync.
    let u = ha_conf(d, 2, uport, false);
    let (conf, _cport, ns) = write_container(d, &[&m, &s, &u]);
    let _c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "container");
    wait_until("both brokers listen", Duration::from_secs(30), || port_open(mport) && port_open(sport));
    let (maddr, saddr) = (format!("127.0.0.1:{mport}"), format!("127.0.0.1:{sport}"));
    let admin = signed("admin", "admin-secret");

    // Registration (signed with the inner credentials) put both brokers in the NameServer.
    let ns = format!("127.0.0.1:{ns}");
    wait_async("both brokers registered", Duration::from_secs(30), || async {
        let r = admin.invoke(&ns, RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO), T).await;
        r.is_ok_and(|r| {
            let b = String::from_utf8_lossy(&r.body).into_owned();
            b.contains(&maddr) && b.contains(&saddr)
        })
    })
    .await;

    // The slave copies topics from the master (GET_ALL_TOPIC_CONFIG etc., signed with the inner
    // credentials, which the master checks) and replicates the commitlog.
    create_topic(&admin, &maddr, "AclHaTopic").await;
    let r = send(&admin, &maddr, "AclHaTopic", 0, b"replicated", &[]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    wait_async("the slave has the topic", Duration::from_secs(30), || async {
        let r = admin.invoke(&saddr, RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG), T).await;
        r.is_ok_and(|r| r.code == response::SUCCESS && String::from_utf8_lossy(&r.body).contains("AclHaTopic"))
    })
    .await;
    wait_max_offset(&admin, &saddr, "AclHaTopic", 0, 1).await;
    // The master never refused the signed slave, and refused the unsigned one.
    let audit = d.join("logs").join("AclHa_acl-ha_0").join("auth_audit.log");
    wait_until("the unsigned slave's sync is refused", Duration::from_secs(30), || {
        read(&audit).contains("User: is authenticated failed with Signature = . code=28")
    });
    assert!(!read(&audit).contains("User:inner"), "{}", read(&audit));
}
