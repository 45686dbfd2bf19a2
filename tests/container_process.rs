//! The container binary started the way a user starts it, driven with the real mqadmin binary.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use common::*;
use std::time::Duration;

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");

#[test]
fn container_starts_answers_its_config_and_refuses_black_listed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_block(2, 0);
    let conf = dir.path().join("container.conf");
    std::fs::write(
        &conf,
        format!("# test container\nlistenPort={port}\nbindAddress=127.0.0.1\nnamesrvAddr=127.0.0.1:1\nupdateNamesrvAddrInterval=120000\n"),
    )
    .unwrap();
    let mut c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], dir.path(), "container");
    wait_until("the container port answers", Duration::from_secs(20), || port_open(port) && port_open(port - 2));
    let addr = format!("127.0.0.1:{port}");

    // GET_BROKER_CONFIG on the container port returns the container's config (both ports).
    for p in [port, port - 2] {
        let out = run(MQADMIN, &["getBrokerConfig", "-b", &format!("127.0.0.1:{p}")]);
        assert!(out.status.success(), "{}", text(&out));
        let t = text(&out);
        assert!(t.contains("listenPort") && t.contains(&port.to_string()), "{t}");
    }

    // A black-listed key is refused with NO_PERMISSION, and nothing changes.
    let out = run(MQADMIN, &["updateBrokerConfig", "-b", &addr, "-k", "brokerConfigPaths", "-v", "/etc/passwd"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("16") && text(&out).contains("black list"), "{}", text(&out));

    // A bad value is refused with a remark naming the key; the container keeps serving.
    let out = run(MQADMIN, &["updateBrokerConfig", "-b", &addr, "-k", "updateNamesrvAddrInterval", "-v", "soon"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("updateNamesrvAddrInterval"), "{}", text(&out));

    // A good update is applied, answered, and persisted to the container's file.
    let out = run(MQADMIN, &["updateBrokerConfig", "-b", &addr, "-k", "updateNamesrvAddrInterval", "-v", "60000"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(MQADMIN, &["getBrokerConfig", "-b", &addr]);
    assert!(
        text(&out).lines().any(|l| l.starts_with("updateNamesrvAddrInterval") && l.ends_with("60000")),
        "{}",
        text(&out)
    );
    let file = std::fs::read_to_string(&conf).unwrap();
    assert!(file.contains("updateNamesrvAddrInterval=60000") && file.contains("# test container"), "{file}");

    // A clean stop frees the ports.
    let status = c.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "port freed");
}

#[test]
fn bad_configs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_block(2, 0);
    // A bad value in the container file: names the file, the key and the value.
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, format!("listenPort={port}\nembeddedNamesrvEnable=maybe\n")).unwrap();
    let out = run(CONTAINER, &["-c", conf.to_str().unwrap()]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("bad.conf") && t.contains("embeddedNamesrvEnable") && t.contains("maybe"), "{t}");

    // A slave broker with id 0: refused before any port is bound.
    let broker = dir.path().join("slave.conf");
    std::fs::write(&broker, "brokerName=broker-x\nbrokerRole=SLAVE\nbrokerId=0\nlistenPort=20911\n").unwrap();
    let conf = dir.path().join("c.conf");
    std::fs::write(&conf, format!("listenPort={port}\nbindAddress=127.0.0.1\nbrokerConfigPaths=slave.conf\n")).unwrap();
    let out = run(CONTAINER, &["-c", conf.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("slave broker id must be > 0"), "{}", text(&out));
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "no port left bound");

    // A missing file.
    let out = run(CONTAINER, &["-c", dir.path().join("nope.conf").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nope.conf"), "{}", text(&out));

    // A port in use: the error names the port.
    let hold = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
    let conf = dir.path().join("busy.conf");
    std::fs::write(&conf, format!("listenPort={port}\n")).unwrap();
    let out = run(CONTAINER, &["-c", conf.to_str().unwrap()]);
    drop(hold);
    assert!(!out.status.success());
    assert!(text(&out).contains(&port.to_string()), "{}", text(&out));
}

#[test]
fn toml_config_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_block(2, 0);
    let conf = dir.path().join("container.toml");
    std::fs::write(
        &conf,
        format!("listenPort = {port}\nbindAddress = \"127.0.0.1\"\nnamesrvAddr = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n"),
    )
    .unwrap();
    let out = run(CONTAINER, &["-c", conf.to_str().unwrap(), "-p"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains(&format!("listenPort={port}")), "{t}");
    assert!(t.contains("namesrvAddr=127.0.0.1:1;127.0.0.1:2"), "{t}");
}
