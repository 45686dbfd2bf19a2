//! The shared transport over real TCP on 127.0.0.1: a container port and two sub-servers, both header
//! serializations, closing one port while the other keeps answering, malformed frames closing only
//! their own connection, connection caps, idle and stalled connections, panicking processors.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rmqc::protocol::codes::response;
use rmqc::remoting::codec::decode_frame;
use rmqc::remoting::{
    ClientConfig, FnProcessor, ProcessorTable, RemotingClient, RemotingCommand, RemotingServer, SerializeType,
    ServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ECHO: i32 = 1000;
const ONEWAY_COUNT: i32 = 1001;
const T: Duration = Duration::from_secs(5);

/// A table whose ECHO answers with the port's name in the remark and the request body echoed.
fn table(name: &'static str, oneways: Arc<AtomicUsize>) -> ProcessorTable {
    let mut t = ProcessorTable::new();
    t.register(
        ECHO,
        Arc::new(FnProcessor(move |_conn, req: RemotingCommand| async move {
            Some(
                RemotingCommand::response_to(&req, response::SUCCESS, Some(name.to_string()))
                    .with_body(req.body.clone()),
            )
        })),
    );
    t.register(
        ONEWAY_COUNT,
        Arc::new(FnProcessor(move |_conn, req: RemotingCommand| {
            let n = oneways.clone();
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                Some(RemotingCommand::success(&req))
            }
        })),
    );
    t
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn loopback_server() -> RemotingServer {
    RemotingServer::new(ServerConfig { bind_address: "127.0.0.1".parse().unwrap(), ..Default::default() })
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads until EOF or error; true if the peer closed the connection within the deadline.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    let r = tokio::time::timeout(T, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    })
    .await;
    r.unwrap_or(false)
}

async fn raw_request(s: &mut TcpStream, cmd: &RemotingCommand) -> RemotingCommand {
    let mut out = BytesMut::new();
    cmd.encode_frame(&mut out);
    s.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    tokio::time::timeout(T, async {
        loop {
            if let Some(c) = decode_frame(&mut buf, 1 << 24).unwrap() {
                return c;
            }
            let n = s.read_buf(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before the response");
        }
    })
    .await
    .expect("response in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_port_and_two_sub_servers() {
    let server = loopback_server();
    let oneways = Arc::new(AtomicUsize::new(0));
    let container = server.bind(0, table("container", oneways.clone()), None).await.unwrap();
    let a = server.bind(0, table("broker-a", oneways.clone()), None).await.unwrap();
    let b = server.bind(0, table("broker-b", oneways.clone()), None).await.unwrap();
    let ports = [container.port(), a.port(), b.port()];
    assert_eq!(server.ports().len(), 3);

    // Each port dispatches to its own table, in both serializations, answered in the request's.
    for st in [SerializeType::Json, SerializeType::RocketMq] {
        let client = RemotingClient::new(ClientConfig { serialize_type: st, ..Default::default() });
        for (port, name) in ports.iter().zip(["container", "broker-a", "broker-b"]) {
            let req = RemotingCommand::request(ECHO).with_ext("k", "v").with_body(Bytes::from_static(b"payload"));
            let resp = client.invoke(&addr(*port), req, T).await.unwrap();
            assert_eq!(resp.code, response::SUCCESS);
            assert_eq!(resp.remark.as_deref(), Some(name));
            assert_eq!(&resp.body[..], b"payload");
            assert_eq!(resp.serialize_type, st, "answered in the serialization of the request");
        }
        // Unknown code: REQUEST_CODE_NOT_SUPPORTED naming the code.
        let resp = client.invoke(&addr(a.port()), RemotingCommand::request(4242), T).await.unwrap();
        assert_eq!(resp.code, response::REQUEST_CODE_NOT_SUPPORTED);
        assert!(resp.remark.unwrap().contains("4242"));
        client.shutdown().await;
    }

    // Oneway: processed, never answered. On one raw connection: a oneway then a normal request; the
    // first frame that comes back must be the normal request's response.
    let mut s = TcpStream::connect(addr(a.port())).await.unwrap();
    let mut ow = RemotingCommand::request(ONEWAY_COUNT);
    ow.opaque = 1;
    ow.mark_oneway();
    let mut frame = BytesMut::new();
    ow.encode_frame(&mut frame);
    s.write_all(&frame).await.unwrap();
    let mut echo = RemotingCommand::request(ECHO);
    echo.opaque = 2;
    let resp = raw_request(&mut s, &echo).await;
    assert_eq!(resp.opaque, 2);
    wait_until("the oneway request is processed", || oneways.load(Ordering::SeqCst) == 1).await;

    // Binding a port in use is an error naming the port.
    let err = server.bind(a.port(), ProcessorTable::new(), None).await.err().expect("port in use");
    assert!(err.to_string().contains(&a.port().to_string()), "{err}");

    // Close broker-a while a client keeps getting answers from broker-b.
    let client = RemotingClient::default();
    let b_addr = addr(b.port());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let pinger = {
        let (client, stop, answered, b_addr) = (client.clone(), stop.clone(), answered.clone(), b_addr.clone());
        tokio::spawn(async move {
            for _ in 0..100_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let resp = client.invoke(&b_addr, RemotingCommand::request(ECHO), T).await.expect("broker-b answers");
                assert_eq!(resp.remark.as_deref(), Some("broker-b"));
                answered.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    wait_until("broker-b answers before the close", || answered.load(Ordering::SeqCst) > 10).await;
    let a_port = a.port();
    let before = answered.load(Ordering::SeqCst);
    a.close().await;
    assert!(closed_by_peer(&mut s).await, "connections of the closed port are closed");
    wait_until("broker-b keeps answering after the close", || answered.load(Ordering::SeqCst) > before + 50).await;
    stop.store(true, Ordering::SeqCst);
    pinger.await.expect("no failed request on broker-b");
    assert!(!server.ports().contains(&a_port));
    // The closed port is free again.
    let rebound = std::net::TcpListener::bind(("127.0.0.1", a_port)).expect("closed port is free");
    drop(rebound);
    // And the others still answer.
    let resp = client.invoke(&addr(container.port()), RemotingCommand::request(ECHO), T).await.unwrap();
    assert_eq!(resp.remark.as_deref(), Some("container"));

    client.shutdown().await;
    server.shutdown().await;
    assert!(server.ports().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_connection() {
    let server = loopback_server();
    let port = server.bind(0, table("p", Arc::default()), None).await.unwrap().port();
    let mut good = TcpStream::connect(addr(port)).await.unwrap();
    let mut echo = RemotingCommand::request(ECHO);
    echo.opaque = 5;
    assert_eq!(raw_request(&mut good, &echo).await.opaque, 5);

    let header = br#"{"code":1000,"flag":0,"opaque":1}"#;
    let mut past_end = Vec::new();
    past_end.extend_from_slice(&(4 + header.len() as u32).to_be_bytes());
    past_end.extend_from_slice(&(header.len() as u32 + 100).to_be_bytes());
    past_end.extend_from_slice(header);
    let mut garbage = Vec::new();
    garbage.extend_from_slice(&(4 + 9u32).to_be_bytes());
    garbage.extend_from_slice(&9u32.to_be_bytes());
    garbage.extend_from_slice(b"{garbage!");
    let cases: [(&str, Vec<u8>); 3] = [
        ("oversized length", vec![0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
        ("header length past the frame end", past_end),
        ("garbage JSON", garbage),
    ];
    for (what, bytes) in cases {
        let mut bad = TcpStream::connect(addr(port)).await.unwrap();
        bad.write_all(&bytes).await.unwrap();
        assert!(closed_by_peer(&mut bad).await, "{what}: the connection is closed");
        echo.opaque += 1;
        assert_eq!(raw_request(&mut good, &echo).await.opaque, echo.opaque, "{what}: another connection keeps working");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_in_flight_requests_are_bounded_not_lost() {
    // A per-connection in-flight limit of 4 with slow processors: 200 concurrent requests on one
    // connection all complete (the reader waits instead of buffering without bound).
    let server = RemotingServer::new(ServerConfig {
        bind_address: "127.0.0.1".parse().unwrap(),
        max_inflight_per_connection: 4,
        ..Default::default()
    });
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut t = ProcessorTable::new();
    {
        let (active, peak) = (active.clone(), peak.clone());
        t.register(
            ECHO,
            Arc::new(FnProcessor(move |_c, req: RemotingCommand| {
                let (active, peak) = (active.clone(), peak.clone());
                async move {
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    active.fetch_sub(1, Ordering::SeqCst);
                    Some(RemotingCommand::success(&req))
                }
            })),
        );
    }
    let port = server.bind(0, t, None).await.unwrap().port();
    let client = RemotingClient::default();
    let mut joins = Vec::new();
    for _ in 0..200 {
        let c = client.clone();
        let a = addr(port);
        joins.push(tokio::spawn(async move { c.invoke(&a, RemotingCommand::request(ECHO), T).await }));
    }
    for j in joins {
        assert_eq!(j.await.unwrap().unwrap().code, response::SUCCESS);
    }
    assert!(peak.load(Ordering::SeqCst) <= 4, "peak in-flight {} exceeds the limit", peak.load(Ordering::SeqCst));
    client.shutdown().await;
    server.shutdown().await;
}

fn limited_server(tune: impl FnOnce(&mut ServerConfig)) -> RemotingServer {
    let mut c = ServerConfig { bind_address: "127.0.0.1".parse().unwrap(), ..Default::default() };
    tune(&mut c);
    RemotingServer::new(c)
}

/// An ECHO request with `opaque` on a raw socket must be answered with that opaque.
async fn served(s: &mut TcpStream, opaque: i32) -> bool {
    let mut echo = RemotingCommand::request(ECHO);
    echo.opaque = opaque;
    let resp = raw_request(s, &echo).await;
    resp.opaque == opaque && resp.code == response::SUCCESS
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_at_once_not_left_hanging() {
    // Cap 4: four idle sockets take every slot; a fifth client is accepted and closed at once (before
    // the fix it was accepted by the kernel and never served). Freeing a slot lets a new client in.
    let server = limited_server(|c| c.max_connections = 4);
    let sub = server.bind(0, table("p", Arc::default()), None).await.unwrap();
    let port = sub.port();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(addr(port)).await.unwrap());
    }
    wait_until("the four idle sockets are accepted", || sub.connections().len() == 4).await;
    for _ in 0..3 {
        let mut extra = TcpStream::connect(addr(port)).await.unwrap();
        assert!(closed_by_peer(&mut extra).await, "a connection past the cap is closed, not left unserved");
    }
    assert_eq!(sub.connections().len(), 4);
    drop(idle.pop());
    wait_until("the dropped socket frees its slot", || sub.connections().len() == 3).await;
    let mut fresh = TcpStream::connect(addr(port)).await.unwrap();
    assert!(served(&mut fresh, 11).await, "a new client is served once a slot is free");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_but_not_while_a_request_is_held() {
    const HOLD: i32 = 1002;
    let server = limited_server(|c| {
        c.max_connections = 4;
        c.channel_max_idle = Duration::from_secs(1);
    });
    let release = Arc::new(tokio::sync::Notify::new());
    let held = Arc::new(AtomicUsize::new(0));
    let mut t = table("p", Arc::default());
    {
        let (release, held) = (release.clone(), held.clone());
        t.register(
            HOLD,
            Arc::new(FnProcessor(move |_c, req: RemotingCommand| {
                let (release, held) = (release.clone(), held.clone());
                async move {
                    // Like a long poll held by the broker until a message arrives.
                    let released = release.notified();
                    held.fetch_add(1, Ordering::SeqCst);
                    released.await;
                    Some(RemotingCommand::success(&req))
                }
            })),
        );
    }
    let sub = server.bind(0, t, None).await.unwrap();
    let port = sub.port();
    let started = Instant::now();
    let mut holder = TcpStream::connect(addr(port)).await.unwrap();
    let mut hold = RemotingCommand::request(HOLD);
    hold.opaque = 7;
    let mut frame = BytesMut::new();
    hold.encode_frame(&mut frame);
    holder.write_all(&frame).await.unwrap();
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr(port)).await.unwrap());
    }
    wait_until("four connections, one request held", || {
        sub.connections().len() == 4 && held.load(Ordering::SeqCst) == 1
    })
    .await;
    // The cap is reached: a fifth client is closed at once.
    let mut extra = TcpStream::connect(addr(port)).await.unwrap();
    assert!(closed_by_peer(&mut extra).await);
    // The idle ones are closed by the server after about a second.
    for s in &mut idle {
        assert!(closed_by_peer(s).await, "an idle connection is closed after serverChannelMaxIdleTimeSeconds");
    }
    assert!(started.elapsed() >= Duration::from_millis(900), "closed too early: {:?}", started.elapsed());
    // The connection with a held request is not idle: it is still open and gets its response.
    wait_until("only the holder is left", || sub.connections().len() == 1).await;
    release.notify_one();
    let mut buf = BytesMut::new();
    let resp = tokio::time::timeout(T, async {
        loop {
            if let Some(c) = decode_frame(&mut buf, 1 << 24).unwrap() {
                return c;
            }
            assert!(holder.read_buf(&mut buf).await.unwrap() > 0, "holder closed before its response");
        }
    })
    .await
    .expect("the held request is answered");
    assert_eq!((resp.opaque, resp.code), (7, response::SUCCESS));
    // Once answered and quiet, it is idle too.
    assert!(closed_by_peer(&mut holder).await);
    // And the freed slots serve new clients.
    let client = RemotingClient::default();
    let resp = client.invoke(&addr(port), RemotingCommand::request(ECHO), T).await.unwrap();
    assert_eq!(resp.code, response::SUCCESS);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_frame_is_closed_after_the_frame_timeout() {
    let server = limited_server(|c| c.frame_read_timeout = Duration::from_millis(500));
    let port = server.bind(0, table("p", Arc::default()), None).await.unwrap().port();
    let mut good = TcpStream::connect(addr(port)).await.unwrap();
    assert!(served(&mut good, 1).await);
    // A length word announcing 100 bytes, then 6 of them, then nothing.
    let mut half = TcpStream::connect(addr(port)).await.unwrap();
    let started = Instant::now();
    half.write_all(&[0, 0, 0, 100, 0, 0, 0, 20, b'{', b'"']).await.unwrap();
    assert!(closed_by_peer(&mut half).await, "a stalled frame closes its connection");
    assert!(started.elapsed() >= Duration::from_millis(400), "closed too early: {:?}", started.elapsed());
    // The same after a complete frame on the same connection (the timer is per frame).
    let mut s = TcpStream::connect(addr(port)).await.unwrap();
    assert!(served(&mut s, 2).await);
    s.write_all(&[0, 0, 0, 100]).await.unwrap();
    assert!(closed_by_peer(&mut s).await);
    // Other connections are unaffected, however long they stay quiet between frames.
    assert!(served(&mut good, 3).await);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped() {
    let server = limited_server(|c| c.max_connections_per_address = 3);
    let sub = server.bind(0, table("p", Arc::default()), None).await.unwrap();
    let port = sub.port();
    let mut mine = Vec::new();
    for i in 0..3 {
        let mut s = TcpStream::connect(addr(port)).await.unwrap();
        assert!(served(&mut s, i).await);
        mine.push(s);
    }
    let mut fourth = TcpStream::connect(addr(port)).await.unwrap();
    assert!(closed_by_peer(&mut fourth).await, "a fourth connection from 127.0.0.1 is closed at once");
    // Another address still gets in (127.0.0.2 is loopback too on Linux).
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = other.connect(addr(port).parse().unwrap()).await.unwrap();
    assert!(served(&mut other, 10).await, "another address is not limited by 127.0.0.1's connections");
    // A slot freed by 127.0.0.1 can be reused by it.
    drop(mine.pop());
    wait_until("the closed connection frees its slot", || sub.connections().len() == 3).await;
    let mut again = TcpStream::connect(addr(port)).await.unwrap();
    assert!(served(&mut again, 20).await);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_processor_is_answered_system_error() {
    const PANIC: i32 = 1003;
    let mut t = table("p", Arc::default());
    t.register(
        PANIC,
        Arc::new(FnProcessor(|_c, req: RemotingCommand| async move {
            if req.body.is_empty() {
                panic!("boom");
            }
            if req.body.len() < 1_000_000 {
                panic!("formatted boom {}", req.body.len());
            }
            Some(RemotingCommand::success(&req))
        })),
    );
    let server = loopback_server();
    let port = server.bind(0, t, None).await.unwrap().port();
    let mut s = TcpStream::connect(addr(port)).await.unwrap();
    let mut req = RemotingCommand::request(PANIC);
    req.opaque = 41;
    let resp = raw_request(&mut s, &req).await;
    assert_eq!((resp.code, resp.opaque), (response::SYSTEM_ERROR, 41));
    assert!(resp.is_response());
    assert_eq!(resp.remark.as_deref(), Some("request processor panicked: boom"));
    // A String payload is quoted too, and the connection keeps working.
    let mut req = RemotingCommand::request(PANIC).with_body(Bytes::from_static(b"abc"));
    req.opaque = 42;
    let resp = raw_request(&mut s, &req).await;
    assert_eq!((resp.code, resp.opaque), (response::SYSTEM_ERROR, 42));
    assert_eq!(resp.remark.as_deref(), Some("request processor panicked: formatted boom 3"));
    // A oneway request that panics is not answered: the next response is the echo's.
    let mut ow = RemotingCommand::request(PANIC);
    ow.opaque = 43;
    ow.mark_oneway();
    let mut frame = BytesMut::new();
    ow.encode_frame(&mut frame);
    s.write_all(&frame).await.unwrap();
    assert!(served(&mut s, 44).await);
    // Through the client, in the binary serialization: answered, not timed out.
    let client = RemotingClient::new(ClientConfig { serialize_type: SerializeType::RocketMq, ..Default::default() });
    let resp = client.invoke(&addr(port), RemotingCommand::request(PANIC), T).await.unwrap();
    assert_eq!(resp.code, response::SYSTEM_ERROR);
    assert_eq!(resp.serialize_type, SerializeType::RocketMq);
    client.shutdown().await;
    server.shutdown().await;
}
