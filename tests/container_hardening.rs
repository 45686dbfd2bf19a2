//! Issue 11's container findings, each against a real container process: configs that are not
//! regular files, the admin surface turned against itself, failed adds that left folders, and a
//! quickstart that rewrote the user's checkout.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rmqc::protocol::codes::{request, response};
use rmqc::remoting::{RemotingClient, RemotingCommand};

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");

fn add_req(path: &Path) -> RemotingCommand {
    RemotingCommand::request(request::ADD_BROKER).with_ext("configPath", path.display().to_string())
}

fn update_req(key: &str, value: &str) -> RemotingCommand {
    RemotingCommand::request(request::UPDATE_BROKER_CONFIG)
        .with_body(rmqc::config::to_properties_text(&[(key, value.to_string())]))
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A container with no brokers and no NameServer, reading broker configs from `dir` only.
fn start_plain(dir: &Path, extra: &str) -> (ChildGuard, u16) {
    let port = free_port_block(2, 0);
    let conf = dir.join("container.conf");
    std::fs::write(
        &conf,
        format!(
            "listenPort={port}\nbindAddress=127.0.0.1\nnamesrvAddr=127.0.0.1:1\nbrokerConfigDirs=.\nlogRoot={}\n{extra}",
            dir.join("logs").display()
        ),
    )
    .unwrap();
    let c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], dir, "container");
    wait_until("the container port answers", Duration::from_secs(20), || port_open(port));
    (c, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_broker_reads_only_small_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let (c, port) = start_plain(dir.path(), "");
    let pid = c.0.as_ref().unwrap().id();
    let addr = format!("127.0.0.1:{port}");
    let client = RemotingClient::default();
    let rss_before = rss_kib(pid);

    // A FIFO nobody writes to would block open(); a sparse 8 GiB file would be read into memory.
    let fifo = dir.path().join("fifo.conf");
    let cpath = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(cpath.as_ptr(), 0o600) }, 0);
    let huge = dir.path().join("huge.conf");
    std::fs::File::create(&huge).unwrap().set_len(8 << 30).unwrap();
    // /etc/passwd copied into an allowed directory is not a broker config.
    let passwd = dir.path().join("passwd.conf");
    std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/bin/false\n").unwrap();
    for (path, expect) in [
        (&fifo, "not a regular file"),
        (&huge, "at most 1048576 bytes"),
        (&passwd, "is this a broker config"),
        (&dir.path().to_path_buf(), "directory"),
    ] {
        let started = Instant::now();
        let r = client.invoke(&addr, add_req(path), Duration::from_secs(10)).await.expect("answered, not hung");
        assert_eq!(r.code, response::SYSTEM_ERROR, "{path:?}: {:?}", r.remark);
        let remark = r.remark.unwrap_or_default();
        assert!(remark.contains(expect), "{path:?}: {remark}");
        assert!(started.elapsed() < Duration::from_secs(5), "{path:?} took {:?}", started.elapsed());
    }
    // /dev/zero itself is outside the allowed directories.
    let r = client.invoke(&addr, add_req(Path::new("/dev/zero")), Duration::from_secs(10)).await.unwrap();
    assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);

    // Still serving, and memory did not follow the files.
    let r = client.invoke(&addr, RemotingCommand::request(request::GET_BROKER_CONFIG), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS);
    let grown = rss_kib(pid).saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
}

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_admin_port_cannot_be_turned_against_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, port) = start_plain(dir.path(), "# operator's comment\n");
    let addr = format!("127.0.0.1:{port}");
    let conf = dir.path().join("container.conf");
    let before = std::fs::read_to_string(&conf).unwrap();
    let client = RemotingClient::default();

    // Keys that decide paths, ports, binding and who may connect are not changeable over the wire.
    for (k, v) in [
        ("brokerConfigDirs", "/"),
        ("logRoot", "/etc"),
        ("listenPort", "1"),
        ("bindAddress", "0.0.0.0"),
        ("serverMaxConnections", "1"),
        ("embeddedNamesrvPort", "22"),
        ("embeddedNamesrvEnable", "true"),
        ("runtimeConfigDir", "/etc"),
        ("brokerConfigPaths", "/etc/passwd"),
        ("configBlackList", ""),
    ] {
        let r = client.invoke(&addr, update_req(k, v), T).await.unwrap();
        assert_eq!(r.code, response::NO_PERMISSION, "{k}={v}: {:?}", r.remark);
    }
    // Values are checked as the file loader checks them; control characters are refused.
    for (k, v) in [
        ("namesrvAddr", "127.0.0.1:9876\nbrokerConfigDirs=/"),
        ("namesrvAddr", "not-an-address"),
        ("namesrvAddr", "127.0.0.1:99999"),
        ("serverWorkerThreads", "100000"),
    ] {
        let r = client.invoke(&addr, update_req(k, v), T).await.unwrap();
        assert_eq!(r.code, response::INVALID_PARAMETER, "{k}={v:?}: {:?}", r.remark);
    }
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), before, "refused updates change nothing");

    // A live key takes effect at once; a restart key says so.
    let r = client.invoke(&addr, update_req("namesrvAddr", "127.0.0.1:2"), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert!(r.remark.as_deref().unwrap_or("").is_empty(), "{:?}", r.remark);
    let out = run(MQADMIN, &["updateBrokerConfig", "-b", &addr, "-k", "serverWorkerThreads", "-v", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("applies after a restart: serverWorkerThreads"), "{}", text(&out));
    let r = client.invoke(&addr, RemotingCommand::request(request::GET_BROKER_CONFIG), T).await.unwrap();
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(body.contains("namesrvAddr=127.0.0.1:2"), "{body}");

    // After a restart the refused keys are still what the operator wrote.
    assert!(c.terminate().success());
    let after = std::fs::read_to_string(&conf).unwrap();
    assert!(after.contains("brokerConfigDirs=.\n") && after.contains("# operator's comment"), "{after}");
    assert!(after.contains("serverWorkerThreads=3") && after.contains("namesrvAddr=127.0.0.1:2"), "{after}");
    let out = run(CONTAINER, &["-c", conf.to_str().unwrap(), "-p"]);
    assert!(text(&out).contains(&format!("listenPort={port}")), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_add_broker_leaves_no_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, port) = start_plain(dir.path(), "");
    let addr = format!("127.0.0.1:{port}");
    let client = RemotingClient::default();
    // Clash on the listen port, the fast port and the HA port, one at a time.
    for (i, offset) in [0i32, -2, 1].into_iter().enumerate() {
        let name = format!("clash{i}");
        // Another test may take a just-checked free port: try a few port blocks.
        let (file, held, _hold) = (0..20)
            .find_map(|_| {
                let (file, bport) = write_broker(dir.path(), &name, "");
                let held = (bport as i32 + offset) as u16;
                std::net::TcpListener::bind(("127.0.0.1", held)).ok().map(|l| (file, held, l))
            })
            .expect("a port block to clash on");
        let r = client.invoke(&addr, add_req(&dir.path().join(&file)), Duration::from_secs(30)).await.unwrap();
        assert_eq!(r.code, response::SYSTEM_ERROR, "{:?}", r.remark);
        assert!(r.remark.as_deref().unwrap_or("").contains(&held.to_string()), "{:?}", r.remark);
        let store = dir.path().join("store").join(&name);
        assert!(!store.exists(), "{} left behind", store.display());
        let logs = dir.path().join("logs").join(format!("TestCluster_{name}_0"));
        assert!(!logs.exists(), "{} left behind", logs.display());
    }
    // A store that was there before a failed add is kept.
    let (file, _hold) = (0..20)
        .find_map(|_| {
            let (file, bport) = write_broker(dir.path(), "kept", "");
            std::net::TcpListener::bind(("127.0.0.1", bport)).ok().map(|l| (file, l))
        })
        .expect("a port to clash on");
    let store = dir.path().join("store").join("kept");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("marker"), "mine").unwrap();
    let r = client.invoke(&addr, add_req(&dir.path().join(&file)), Duration::from_secs(30)).await.unwrap();
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert_eq!(std::fs::read_to_string(store.join("marker")).unwrap(), "mine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_changes_go_to_the_runtime_dir_and_console_is_plain() {
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path().join("checkout");
    std::fs::create_dir_all(&checkout).unwrap();
    let (a, a_port) = write_broker(&checkout, "rt-a", "");
    let (conf, port, ns) = write_container(&checkout, &[&a]);
    let mut text_conf = std::fs::read_to_string(&conf).unwrap();
    let runtime = dir.path().join("runtime");
    let own = dir.path().join("own-brokers");
    std::fs::create_dir_all(&own).unwrap();
    text_conf = text_conf.replace("brokerConfigDirs=.", &format!("brokerConfigDirs=.:{}", own.display()));
    text_conf.push_str(&format!("runtimeConfigDir={}\n", runtime.display()));
    std::fs::write(&conf, &text_conf).unwrap();
    let (b, _) = write_broker(&own, "rt-b", "");
    let snapshot = |d: &Path| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap()))
            .collect();
        v.sort();
        v
    };
    let checkout_before = snapshot(&checkout);

    let mut c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], dir.path(), "container");
    wait_until("the container port answers", Duration::from_secs(20), || port_open(port));
    let addr = format!("127.0.0.1:{port}");
    let nsaddr = format!("127.0.0.1:{ns}");
    let client = RemotingClient::default();
    let r = client.invoke(&addr, add_req(&own.join(&b)), Duration::from_secs(30)).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let out = run(MQADMIN, &["updateBrokerConfig", "-b", &addr, "-k", "updateNamesrvAddrInterval", "-v", "60000"]);
    assert!(out.status.success(), "{}", text(&out));
    let a_addr = format!("127.0.0.1:{a_port}");
    let out = run(MQADMIN, &["updateBrokerConfig", "-b", &a_addr, "-k", "slaveTimeout", "-v", "4321"]);
    assert!(out.status.success(), "{}", text(&out));
    // The checkout is untouched; the changes are in the runtime dir.
    assert_eq!(snapshot(&checkout), checkout_before, "the config files were rewritten");
    let overlay = std::fs::read_to_string(runtime.join("container.runtime.conf")).unwrap();
    assert!(overlay.contains("rt-b.conf") && overlay.contains("updateNamesrvAddrInterval=60000"), "{overlay}");
    let broker_overlay = std::fs::read_to_string(runtime.join("TestCluster_rt-a_0.runtime.conf")).unwrap();
    assert!(broker_overlay.contains("slaveTimeout=4321"), "{broker_overlay}");
    assert!(c.terminate().success());

    // The console is plain text when redirected, one boot line per broker, no system-topic chatter.
    let console = std::fs::read_to_string(dir.path().join("container.out")).unwrap();
    assert!(!console.contains('\u{1b}'), "ANSI escapes in redirected output:\n{console}");
    let boots = console.lines().filter(|l| l.contains("rt-a") && l.contains("boot success")).count();
    assert_eq!(boots, 1, "{console}");
    assert!(!console.contains("SCHEDULE_TOPIC_XXXX") && !console.contains("RMQ_SYS_TRANS"), "{console}");

    // A restart hosts both brokers with the runtime values, still without touching the checkout.
    let _c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], dir.path(), "container2");
    wait_until("the container port answers", Duration::from_secs(20), || port_open(port));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = text(&run(MQADMIN, &["clusterList", "-n", &nsaddr]));
        if t.contains("rt-a") && t.contains("rt-b") {
            break;
        }
        let log = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "both brokers not registered after a restart:\n{t}\n{}\n{}\n{}",
            std::fs::read_to_string(runtime.join("container.runtime.conf")).unwrap_or_default(),
            log("container2.out"),
            log("container2.err")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = run(MQADMIN, &["getBrokerConfig", "-b", &a_addr]);
    assert!(
        text(&out).lines().any(|l| l.starts_with("slaveTimeout") && l.trim_end().ends_with("4321")),
        "{}",
        text(&out)
    );
    assert_eq!(snapshot(&checkout), checkout_before);
}

#[test]
fn quickstart_binds_loopback_and_keeps_the_checkout_clean() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/container-conf/broker-container.conf");
    let out = run(CONTAINER, &["-c", conf, "-p"]);
    let t = text(&out);
    assert!(t.contains("bindAddress=127.0.0.1"), "{t}");
    let rt = t.lines().find(|l| l.starts_with("runtimeConfigDir=")).unwrap_or_default();
    assert!(rt.contains("rmqc-store/quickstart"), "{t}");
}

/// Makes the embedded NameServer of a container started with HOME=`d` (as [`ChildGuard::spawn`]
/// does) slow to start: it reads a large `$HOME/namesrv/kvConfig.json` (0.5-1.5 s in a debug
/// build), after the container's admin port has opened and before the listed brokers start.
fn slow_embedded_namesrv(d: &Path) {
    let kv: Vec<String> = (0..2000)
        .map(|n| {
            let keys: Vec<String> = (0..50).map(|k| format!("\"key-{k}\":\"value-{n}-{k}\"")).collect();
            format!("\"namespace-{n}\":{{{}}}", keys.join(","))
        })
        .collect();
    std::fs::create_dir_all(d.join("namesrv")).unwrap();
    std::fs::write(d.join("namesrv").join("kvConfig.json"), format!("{{\"configTable\":{{{}}}}}", kv.join(",")))
        .unwrap();
}

/// Waits, polling tightly (30 s at most), until the container's admin port opens.
fn admin_port_opens(c: &mut ChildGuard, port: u16, d: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !port_open(port) {
        assert!(Instant::now() < deadline, "the container's admin port did not open within 30 s");
        let err = || std::fs::read_to_string(d.join("container.err")).unwrap_or_default();
        assert!(c.try_wait().is_none(), "the container exited:\n{}", err());
    }
}

/// A SIGTERM that arrives while the container is still starting (admin port open, embedded
/// NameServer and broker starting) shuts it down cleanly once started: exit status 0, ports
/// closed. (The handler was installed only after the start: the signal's default action killed
/// the process, brokers registered and nothing flushed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_startup_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, a_port) = write_broker(d, "term-a", "");
    let (conf, port, _ns) = write_container(d, &[&a]);
    slow_embedded_namesrv(d);
    let mut c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "container");
    admin_port_opens(&mut c, port, d);
    let early = port_open(a_port);
    let status = c.terminate();
    let out = std::fs::read_to_string(d.join("container.out")).unwrap_or_default();
    let err = std::fs::read_to_string(d.join("container.err")).unwrap_or_default();
    assert!(
        status.success(),
        "exit after SIGTERM in start-up (broker up at the signal: {early}): {status:?}\n{err}\n{out}"
    );
    assert!(out.contains("Shutting down the broker container"), "{out}");
    assert!(!port_open(port) && !port_open(a_port), "a port left open:\n{out}");
}

/// An ADD_BROKER that arrives as soon as the admin port opens, while the container is still
/// starting, waits for the listed broker: the persisted `brokerConfigPaths` names both, and a
/// restart hosts both. (The container took its broker list's lock only after its embedded
/// NameServer had started; an add in between persisted a list without the listed broker.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_during_startup_waits_for_the_listed_brokers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, a_port) = write_broker(d, "early-a", "");
    let (b, b_port) = write_broker(d, "early-b", "");
    let (conf, port, _ns) = write_container(d, &[&a]);
    slow_embedded_namesrv(d);
    let mut c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "container");
    admin_port_opens(&mut c, port, d);
    let early = port_open(a_port);
    let client = RemotingClient::default();
    let r = client.invoke(&format!("127.0.0.1:{port}"), add_req(&d.join(&b)), Duration::from_secs(30)).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let file = std::fs::read_to_string(&conf).unwrap();
    let log = || std::fs::read_to_string(d.join("container.out")).unwrap_or_default();
    let want = format!("brokerConfigPaths={a}:{}", d.join(&b).canonicalize().unwrap().display());
    assert!(
        file.lines().any(|l| l == want),
        "the listed broker is persisted before the added one (listed broker up when the add was sent: {early}):\n{file}\n{}",
        log()
    );
    let status = c.terminate();
    let err = std::fs::read_to_string(d.join("container.err")).unwrap_or_default();
    assert!(status.success(), "exit after SIGTERM: {status:?}\n{err}\n{}", log());
    let _c = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "container2");
    wait_until("both brokers listen after a restart", Duration::from_secs(30), || {
        port_open(a_port) && port_open(b_port)
    });
    client.shutdown().await;
}
