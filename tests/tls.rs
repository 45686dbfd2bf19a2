//! TLS on every port over real TCP on 127.0.0.1, with certificates made here (rcgen): enforcing,
//! permissive and disabled modes on a hosted broker's ports and the embedded NameServer, the
//! container's admin port driven by `mqadmin --tls`, the `mqnamesrv` binary with a broker
//! registering over TLS, client certificates, HA replication over TLS, handshake timeouts and
//! certificate reload.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::rmq::{pull, send, wait_max_offset, T};
use common::{
    free_port_block, port_open, run, text, wait_async, wait_until, write_broker, write_container, ChildGuard,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rmqc::container::config::LoadedContainerConfig;
use rmqc::container::BrokerContainer;
use rmqc::protocol::codes::{request, response};
use rmqc::remoting::tls::{TlsClient, TlsConfig};
use rmqc::remoting::{ClientConfig, FnProcessor, ProcessorTable, RemotingClient, RemotingCommand, RemotingError};
use rmqc::remoting::{RemotingServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");
const NAMESRV: &str = env!("CARGO_BIN_EXE_mqnamesrv");
const MQBENCH: &str = env!("CARGO_BIN_EXE_mqbench");

/// A test CA that signs leaf certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A leaf for 127.0.0.1 / localhost, usable by servers and clients: (cert PEM, key PEM).
    fn leaf(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the CA and a leaf into `dir`: (ca, cert, key) paths.
    fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
        let (cert, key) = self.leaf(name);
        let paths =
            (dir.join(format!("{name}-ca.pem")), dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        std::fs::write(&paths.0, &self.pem).unwrap();
        std::fs::write(&paths.1, cert).unwrap();
        std::fs::write(&paths.2, key).unwrap();
        paths
    }
}

fn tls_client(ca: &Path) -> RemotingClient {
    RemotingClient::new(ClientConfig { tls: Some(TlsClient::new(Some(ca)).unwrap()), ..Default::default() })
}

/// The `tls.*` lines of a config: server mode and files, and the process's own client side.
fn tls_lines(mode: &str, ca: &Path, cert: &Path, key: &Path, client_tls: bool) -> String {
    format!(
        "tls.server.mode={mode}\ntls.server.certPath={}\ntls.server.keyPath={}\ntls.enable={client_tls}\n\
         tls.client.trustCertPath={}\n",
        cert.display(),
        key.display(),
        ca.display()
    )
}

fn append(path: &Path, extra: &str) {
    let mut s = std::fs::read_to_string(path).unwrap();
    s.push_str(extra);
    std::fs::write(path, s).unwrap();
}

async fn route_code(client: &RemotingClient, addr: &str, topic: &str) -> Result<RemotingCommand, RemotingError> {
    let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
    client.invoke(addr, req, Duration::from_secs(3)).await
}

/// Sends `n` messages to queue 0 of `topic` and pulls them back.
async fn round_trip(client: &RemotingClient, broker: &str, topic: &str, n: usize) {
    let before = {
        let req = RemotingCommand::request(request::GET_MAX_OFFSET).with_ext("topic", topic).with_ext("queueId", "0");
        let r = client.invoke(broker, req, T).await.unwrap();
        r.ext("offset").and_then(|o| o.parse::<i64>().ok()).unwrap_or(0)
    };
    for i in 0..n {
        let r = send(client, broker, topic, 0, format!("tls-{i}").as_bytes(), &[]).await;
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    wait_max_offset(client, broker, topic, 0, before + n as i64).await;
    let r = pull(client, broker, "tls-group", topic, 0, before, "*", 0).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let msgs = rmqc::protocol::message::decode_records(&r.body, true);
    assert_eq!(msgs.len(), n);
    assert_eq!(&msgs[0].body[..], b"tls-0");
}

/// True when a plain client's request to `addr` fails because the server closed the connection.
async fn plain_refused(addr: &str) -> bool {
    let plain = RemotingClient::default();
    let r = route_code(&plain, addr, "TBW102").await;
    plain.shutdown().await;
    matches!(r, Err(RemotingError::ConnectionClosed { .. }) | Err(RemotingError::Connect { .. }))
}

async fn start_container(conf: &Path) -> BrokerContainer {
    BrokerContainer::start(LoadedContainerConfig::load(conf, None, None).unwrap(), false, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcing_serves_tls_refuses_plain_and_registers_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test-ca");
    let (ca_pem, cert, key) = ca.write(dir.path(), "server");
    let (bfile, bport) = write_broker(dir.path(), "broker-a", "");
    let (conf, cport, ns) = write_container(dir.path(), &[&bfile]);
    // The broker registers with the embedded NameServer (same transport, enforcing): over TLS.
    append(&conf, &tls_lines("enforcing", &ca_pem, &cert, &key, true));
    let container = start_container(&conf).await;
    let client = tls_client(&ca_pem);
    let broker = format!("127.0.0.1:{bport}");

    // Registration went over TLS: the NameServer (asked over TLS) routes the cluster's topic.
    let r = route_code(&client, &format!("127.0.0.1:{ns}"), "TestCluster").await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert!(String::from_utf8_lossy(&r.body).contains(&broker));

    round_trip(&client, &broker, "TlsTopic", 5).await;
    // The fast port too.
    round_trip(&client, &format!("127.0.0.1:{}", bport - 2), "TlsTopic", 2).await;

    // Plain clients are refused on every port, and TLS clients are served meanwhile.
    for port in [bport, bport - 2, ns, cport] {
        assert!(plain_refused(&format!("127.0.0.1:{port}")).await, "plain client refused on port {port}");
    }
    round_trip(&client, &broker, "TlsTopic", 1).await;

    // A raw plain frame gets no answer: the connection is closed.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", bport)).await.unwrap();
    let mut frame = bytes::BytesMut::new();
    RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO).encode_frame(&mut frame);
    s.write_all(&frame).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(T, s.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "no bytes answered to a plain frame");

    // A client that does not trust the server's CA fails the handshake.
    let other = Ca::new("other-ca");
    let (other_ca, _, _) = other.write(dir.path(), "other");
    let stranger = tls_client(&other_ca);
    assert!(route_code(&stranger, &broker, "TBW102").await.is_err());
    stranger.shutdown().await;

    client.shutdown().await;
    container.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_serves_tls_and_plain_disabled_serves_plain() {
    for mode in ["permissive", "disabled"] {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test-ca");
        let (ca_pem, cert, key) = ca.write(dir.path(), "server");
        let (bfile, bport) = write_broker(dir.path(), "broker-a", "");
        let (conf, _cport, ns) = write_container(dir.path(), &[&bfile]);
        // Outbound (registration) stays plain: both modes accept it.
        append(&conf, &tls_lines(mode, &ca_pem, &cert, &key, false));
        let container = start_container(&conf).await;
        let broker = format!("127.0.0.1:{bport}");
        let plain = RemotingClient::default();
        let tls = tls_client(&ca_pem);

        round_trip(&plain, &broker, "MixedTopic", 3).await;
        let r = route_code(&plain, &format!("127.0.0.1:{ns}"), "TestCluster").await.unwrap();
        assert_eq!(r.code, response::SUCCESS, "{mode}: {:?}", r.remark);
        if mode == "permissive" {
            round_trip(&tls, &broker, "MixedTopic", 3).await;
            let r = route_code(&tls, &format!("127.0.0.1:{ns}"), "TestCluster").await.unwrap();
            assert_eq!(r.code, response::SUCCESS);
        } else {
            assert!(route_code(&tls, &broker, "TBW102").await.is_err(), "disabled: no TLS handshake");
        }
        // Plain still served after the TLS attempt.
        round_trip(&plain, &broker, "MixedTopic", 1).await;
        plain.shutdown().await;
        tls.shutdown().await;
        container.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_admin_port_over_tls_with_mqadmin() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test-ca");
    let (ca_pem, cert, key) = ca.write(dir.path(), "server");
    let (conf, cport, ns) = write_container(dir.path(), &[]);
    append(&conf, &tls_lines("enforcing", &ca_pem, &cert, &key, true));
    let container = start_container(&conf).await;
    let (bfile, bport) = write_broker(dir.path(), "broker-b", "");
    let bpath = dir.path().join(&bfile);
    let admin = format!("127.0.0.1:{cport}");
    let ca_arg = ca_pem.to_str().unwrap().to_string();

    let out = tokio::task::spawn_blocking({
        let (admin, ca_arg, bpath) = (admin.clone(), ca_arg.clone(), bpath.clone());
        move || {
            let tls = ["--tls", "--tlsTrustCertPath", &ca_arg];
            let add = run(MQADMIN, &[&tls[..], &["addBroker", "-c", &admin, "-b", bpath.to_str().unwrap()]].concat());
            let get = run(MQADMIN, &[&tls[..], &["getBrokerConfig", "-b", &admin]].concat());
            let plain = run(MQADMIN, &["getBrokerConfig", "-b", &admin]);
            let test_mode = run(MQADMIN, &["--tls", "--tlsTestMode", "getBrokerConfig", "-b", &admin]);
            (add, get, plain, test_mode)
        }
    })
    .await
    .unwrap();
    let (add, get, plain, test_mode) = out;
    assert!(add.status.success(), "addBroker over TLS: {}", text(&add));
    assert!(get.status.success(), "getBrokerConfig over TLS: {}", text(&get));
    let port_line = |l: &str| l.starts_with("listenPort") && l.trim_end().ends_with(&cport.to_string());
    assert!(text(&get).lines().any(port_line), "{}", text(&get));
    assert!(!plain.status.success(), "a plain mqadmin is refused: {}", text(&plain));
    assert!(test_mode.status.success(), "test mode accepts the certificate: {}", text(&test_mode));

    // The added broker serves over TLS and registered (over TLS) with the embedded NameServer.
    let client = tls_client(&ca_pem);
    round_trip(&client, &format!("127.0.0.1:{bport}"), "AddedTopic", 2).await;
    let r = route_code(&client, &format!("127.0.0.1:{ns}"), "TestCluster").await.unwrap();
    assert!(String::from_utf8_lossy(&r.body).contains(&format!("127.0.0.1:{bport}")));

    // mqbench over TLS: routes from the NameServer, the topic created and messages sent on the broker.
    let bench = tokio::task::spawn_blocking(move || {
        let ns = format!("127.0.0.1:{ns}");
        run(MQBENCH, &["--tls", "--tlsTrustCertPath", &ca_arg, "producer", "-n", &ns, "-q", "50", "-w", "4", "--json"])
    })
    .await
    .unwrap();
    assert!(bench.status.success(), "mqbench over TLS: {}", text(&bench));
    assert!(text(&bench).contains("\"sent\":50"), "{}", text(&bench));
    client.shutdown().await;
    container.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namesrv_binary_over_tls_with_broker_registration() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test-ca");
    let (ca_pem, cert, key) = ca.write(dir.path(), "server");
    let ns_port = free_port_block(0, 0);
    let ns_conf = dir.path().join("namesrv.conf");
    // The NameServer's TLS keys come from tls.config.file (relative to the config file).
    std::fs::write(dir.path().join("tls.properties"), tls_lines("permissive", &ca_pem, &cert, &key, false)).unwrap();
    std::fs::write(
        &ns_conf,
        format!(
            "listenPort={ns_port}\nkvConfigPath={}\ntls.server.mode=enforcing\ntls.config.file=tls.properties\n",
            dir.path().join("kv.json").display()
        ),
    )
    .unwrap();
    let _ns = ChildGuard::spawn(NAMESRV, &["-c", ns_conf.to_str().unwrap()], dir.path(), "namesrv");
    wait_until("the NameServer listens", Duration::from_secs(20), || port_open(ns_port));
    let ns = format!("127.0.0.1:{ns_port}");
    // tls.server.mode is not taken from tls.config.file: the NameServer enforces.
    assert!(plain_refused(&ns).await, "plain client refused by the enforcing NameServer");

    let (bfile, bport) = write_broker(dir.path(), "broker-a", "");
    let cport = free_port_block(2, 0);
    let conf = dir.path().join("container.conf");
    std::fs::write(
        &conf,
        format!(
            "listenPort={cport}\nbindAddress=127.0.0.1\nnamesrvAddr={ns}\nbrokerConfigPaths={bfile}\nbrokerConfigDirs=.\n\
             logRoot={}\ntls.server.mode=disabled\ntls.enable=true\ntls.client.trustCertPath={}\n",
            dir.path().join("logs").display(),
            ca_pem.display()
        ),
    )
    .unwrap();
    let container = start_container(&conf).await;
    let client = tls_client(&ca_pem);
    let broker = format!("127.0.0.1:{bport}");
    wait_async("the broker registered over TLS", T, || async {
        match route_code(&client, &ns, "TestCluster").await {
            Ok(r) => r.code == response::SUCCESS && String::from_utf8_lossy(&r.body).contains(&broker),
            Err(_) => false,
        }
    })
    .await;
    // mqadmin reads routes over TLS from the NameServer and the broker (plain: disabled mode).
    let out = tokio::task::spawn_blocking({
        let (ns, ca) = (ns.clone(), ca_pem.to_str().unwrap().to_string());
        move || run(MQADMIN, &["clusterList", "-n", &ns, "--tls", "--tlsTrustCertPath", &ca])
    })
    .await
    .unwrap();
    // clusterList asks the broker too, which serves plain only here: the NameServer part must work.
    assert!(text(&out).contains("broker-a"), "clusterList over TLS lists the broker: {}", text(&out));
    client.shutdown().await;
    container.shutdown().await;
}

/// A bare server on one port answering every request SUCCESS, with `tls`.
async fn echo_server(tls: &TlsConfig) -> (RemotingServer, rmqc::remoting::SubServer, String) {
    let server = RemotingServer::new(ServerConfig {
        bind_address: "127.0.0.1".parse().unwrap(),
        tls: tls.server().unwrap(),
        ..Default::default()
    });
    let mut table = ProcessorTable::new();
    table.set_default(Arc::new(FnProcessor(|_c, req: RemotingCommand| async move {
        Some(RemotingCommand::response_to(&req, response::SUCCESS, None))
    })));
    let sub = server.bind(0, table, None).await.unwrap();
    let addr = format!("127.0.0.1:{}", sub.port());
    (server, sub, addr)
}

async fn ping(client: &RemotingClient, addr: &str) -> bool {
    matches!(route_code(client, addr, "x").await, Ok(r) if r.code == response::SUCCESS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_and_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test-ca");
    let (ca_pem, cert, key) = ca.write(dir.path(), "server");
    let (_, ccert, ckey) = ca.write(dir.path(), "client");
    let tls = TlsConfig {
        mode: rmqc::remoting::tls::TlsMode::Enforcing,
        server_cert_path: Some(cert.display().to_string()),
        server_key_path: Some(key.display().to_string()),
        server_need_client_auth: rmqc::remoting::tls::ClientAuth::Require,
        server_trust_cert_path: Some(ca_pem.display().to_string()),
        handshake_timeout_millis: 500,
        ..Default::default()
    };
    let (server, sub, addr) = echo_server(&tls).await;

    // Without a client certificate: refused.
    let anonymous = tls_client(&ca_pem);
    assert!(!ping(&anonymous, &addr).await);
    anonymous.shutdown().await;
    // With one signed by the trusted CA: served.
    let with_cert = TlsConfig {
        enable: true,
        client_trust_cert_path: Some(ca_pem.display().to_string()),
        client_cert_path: Some(ccert.display().to_string()),
        client_key_path: Some(ckey.display().to_string()),
        ..Default::default()
    };
    let client = RemotingClient::new(ClientConfig { tls: with_cert.client().unwrap(), ..Default::default() });
    assert!(ping(&client, &addr).await);

    // A peer that starts a handshake and stalls is closed after the handshake timeout, while
    // others are served.
    let mut stall = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stall.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let closed = tokio::time::timeout(T, async {
        let mut b = [0u8; 16];
        loop {
            match stall.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a stalled handshake is closed within the timeout");
    client.close_connection(&addr);
    assert!(ping(&client, &addr).await);

    client.shutdown().await;
    sub.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reload_new_connections_see_the_new_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca1 = Ca::new("ca-one");
    let (ca1_pem, cert, key) = ca1.write(dir.path(), "server");
    let ca2 = Ca::new("ca-two");
    let ca2_pem = dir.path().join("ca-two.pem");
    std::fs::write(&ca2_pem, &ca2.pem).unwrap();
    let tls = TlsConfig {
        mode: rmqc::remoting::tls::TlsMode::Enforcing,
        server_cert_path: Some(cert.display().to_string()),
        server_key_path: Some(key.display().to_string()),
        reload_interval_millis: 50,
        ..Default::default()
    };
    let (server, sub, addr) = echo_server(&tls).await;
    let old_trust = tls_client(&ca1_pem);
    assert!(ping(&old_trust, &addr).await);

    // A broken certificate file keeps the current certificate.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n").unwrap();
    std::fs::write(&key, "garbage").unwrap();
    let watcher = server.config().tls.clone().unwrap();
    wait_async("the watcher tried the bad files", T, || {
        let w = watcher.clone();
        async move { w.reloads().1 >= 1 }
    })
    .await;
    old_trust.close_connection(&addr);
    assert!(ping(&old_trust, &addr).await, "old certificate kept after a bad file");
    assert_eq!(watcher.reloads().0, 0);

    // A new certificate from another CA: new connections see it.
    let (c2, k2) = ca2.leaf("server-two");
    std::fs::write(&key, k2).unwrap();
    std::fs::write(&cert, c2).unwrap();
    let new_trust = tls_client(&ca2_pem);
    wait_async("new connections get the new certificate", T, || {
        let (c, a) = (new_trust.clone(), addr.clone());
        async move {
            c.close_connection(&a);
            ping(&c, &a).await
        }
    })
    .await;
    old_trust.close_connection(&addr);
    assert!(!ping(&old_trust, &addr).await, "the old CA no longer verifies the new certificate");

    old_trust.shutdown().await;
    new_trust.shutdown().await;
    sub.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_replication_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test-ca");
    let (ca_pem, cert, key) = ca.write(dir.path(), "server");
    let tls = tls_lines("enforcing", &ca_pem, &cert, &key, true);
    // Container 1: embedded NameServer + the master; container 2: the slave.
    let (mfile, mport) = write_broker(dir.path(), "broker-a", "");
    let (conf1, _c1, ns) = write_container(dir.path(), &[&mfile]);
    append(&conf1, &tls);
    let c1 = start_container(&conf1).await;

    let dir2 = tempfile::tempdir().unwrap();
    let sport = free_port_block(2, 1);
    std::fs::write(
        dir2.path().join("slave.conf"),
        format!(
            "brokerClusterName=TestCluster\nbrokerName=broker-a\nbrokerId=1\nbrokerRole=SLAVE\nlistenPort={sport}\n\
             brokerIP1=127.0.0.1\nstorePathRootDir={}\nmappedFileSizeCommitLog=1048576\nmaxHashSlotNum=1000\n\
             maxIndexNum=4000\nmappedFileSizeConsumeQueue=6000\n",
            dir2.path().join("store").display()
        ),
    )
    .unwrap();
    let cport2 = free_port_block(2, 0);
    let conf2 = dir2.path().join("container.conf");
    std::fs::write(
        &conf2,
        format!(
            "listenPort={cport2}\nbindAddress=127.0.0.1\nnamesrvAddr=127.0.0.1:{ns}\nbrokerConfigPaths=slave.conf\n\
             brokerConfigDirs=.\nlogRoot={}\n{tls}",
            dir2.path().join("logs").display()
        ),
    )
    .unwrap();
    let c2 = start_container(&conf2).await;

    let client = tls_client(&ca_pem);
    let master = format!("127.0.0.1:{mport}");
    let slave = format!("127.0.0.1:{sport}");
    for i in 0..20 {
        let r = send(&client, &master, "HaTlsTopic", 0, format!("ha-{i}").as_bytes(), &[]).await;
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    // The slave gets the commitlog over the (enforcing) HA port and serves the messages.
    wait_max_offset(&client, &slave, "HaTlsTopic", 0, 20).await;
    // (The topic's config reaches the slave with the metadata sync, every second.)
    wait_async("the slave serves the replicated messages", T, || async {
        let r = pull(&client, &slave, "ha-group", "HaTlsTopic", 0, 0, "*", 0).await;
        r.code == response::SUCCESS && rmqc::protocol::message::decode_records(&r.body, true).len() == 20
    })
    .await;
    // A plain connection to the master's HA port is closed.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", mport + 1)).await.unwrap();
    s.write_all(&0i64.to_be_bytes()).await.unwrap();
    let mut b = [0u8; 64];
    let n = tokio::time::timeout(T, s.read(&mut b)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "plain HA connection closed without data");

    client.shutdown().await;
    c2.shutdown().await;
    c1.shutdown().await;
}

#[test]
fn bad_tls_settings_stop_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (conf, _, _) = write_container(dir.path(), &[]);
    let base = std::fs::read_to_string(&conf).unwrap();
    for (extra, expect) in [
        ("tls.server.mode=enforcing\n", "tls.server.certPath"),
        ("tls.server.mode=strict\n", "tls.server.mode"),
        ("tls.enable=true\n", "tls.client.trustCertPath"),
        ("tls.server.certPath=a.pem\n", "tls.server.keyPath"),
        ("tls.server.certPath=a.pem\ntls.server.keyPath=a.key\ntls.server.keyPassword=x\n", "encrypted"),
        ("tls.server.certPath=a.pem\ntls.server.keyPath=a.key\ntls.server.need.client.auth=require\n", "trustCertPath"),
    ] {
        std::fs::write(&conf, format!("{base}{extra}")).unwrap();
        let e = LoadedContainerConfig::load(&conf, None, None).unwrap_err().to_string();
        assert!(e.contains(expect), "{extra}: {e}");
    }
    // Files that cannot be read stop the container's start, naming the key and the file.
    std::fs::write(&conf, format!("{base}tls.server.certPath=missing.pem\ntls.server.keyPath=missing.key\n")).unwrap();
    let loaded = LoadedContainerConfig::load(&conf, None, None).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let e = rt.block_on(BrokerContainer::start(loaded, false, None)).err().unwrap().to_string();
    assert!(e.contains("tls.server.certPath") && e.contains("missing.pem"), "{e}");
}
