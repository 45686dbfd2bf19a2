//! Timer messages (RIP-43) over the real protocol against a real `mqbrokercontainer` process:
//! held until their deliver time, TIMER_DELAY_SEC, past times at once, over-max refused, and a
//! kill -9 with pending timer messages delivering each exactly once after the restart.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::rmq::{create_topic, pull, send, wait_max_offset, T};
use common::{port_open, wait_async, wait_until, ChildGuard};
use rmqc::protocol::codes::{request, response};
use rmqc::protocol::message::{decode_records, MessageExt};
use rmqc::remoting::{RemotingClient, RemotingCommand};

const CONTAINER: &str = env!("CARGO_BIN_EXE_mqbrokercontainer");
/// The wheel's step in these tests (Apache's default).
const PRECISION: i64 = 1000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// One container process hosting broker `name`; returns (process, broker address, config path).
fn start(d: &Path, name: &str) -> (ChildGuard, String, std::path::PathBuf) {
    let b = common::start_one_broker(d, name, "mappedFileSizeTimerLog=65536\ntimerMaxDelaySec=60\n");
    (b.child, b.addr, b.conf)
}

/// Every message of `topic` queue 0 from offset 0.
async fn pull_all(client: &RemotingClient, addr: &str, topic: &str) -> Vec<MessageExt> {
    let mut out = Vec::new();
    let mut offset = 0;
    for _ in 0..1000 {
        let r = pull(client, addr, "timer-check", topic, 0, offset, "*", 0).await;
        if r.code != response::SUCCESS {
            break;
        }
        let msgs = decode_records(&r.body, true);
        if msgs.is_empty() {
            break;
        }
        offset = msgs.last().unwrap().queue_offset + 1;
        out.extend(msgs);
    }
    out
}

/// Polls (bounded) until `topic` holds `n` messages; returns them and when they were first seen.
async fn wait_for(
    client: &RemotingClient,
    addr: &str,
    topic: &str,
    n: usize,
    within: Duration,
) -> (Vec<MessageExt>, i64) {
    let deadline = Instant::now() + within;
    loop {
        let got = pull_all(client, addr, topic).await;
        if got.len() >= n {
            return (got, now_ms());
        }
        assert!(Instant::now() < deadline, "{topic} holds {} of {n} messages after {within:?}", got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_ms_is_held_until_its_time_and_delay_sec_works() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, addr, _) = start(dir.path(), "timer-a");
    let client = RemotingClient::default();
    create_topic(&client, &addr, "TimerAt").await;
    create_topic(&client, &addr, "TimerSec").await;

    let deliver = now_ms() + 2000;
    let at = deliver.to_string();
    let r = send(&client, &addr, "TimerAt", 0, b"at", &[("TIMER_DELIVER_MS", &at), ("UNIQ_KEY", "u-at")]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let t0 = now_ms();
    let r = send(&client, &addr, "TimerSec", 0, b"sec", &[("TIMER_DELAY_SEC", "2"), ("UNIQ_KEY", "u-sec")]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);

    // Stored in the wheel topic, not (yet) in the real one.
    wait_max_offset(&client, &addr, "rmq_sys_wheel_timer", 0, 2).await;
    assert!(pull_all(&client, &addr, "TimerAt").await.is_empty() || now_ms() >= deliver - PRECISION);

    let (got, seen) = wait_for(&client, &addr, "TimerAt", 1, Duration::from_secs(10)).await;
    assert!(seen >= deliver - PRECISION, "delivered {} ms before its time", deliver - seen);
    let m = &got[0];
    assert_eq!(&m.body[..], b"at");
    assert!(m.store_timestamp >= deliver - PRECISION, "stored {} ms early", deliver - m.store_timestamp);
    assert!(m.store_timestamp <= deliver + 2 * PRECISION, "stored {} ms late", m.store_timestamp - deliver);
    assert_eq!(m.uniq_key(), Some("u-at"));
    assert!(m.property("TIMER_OUT_MS").is_some() && m.property("TIMER_DEQUEUE_MS").is_some());
    assert!(m.property("REAL_TOPIC").is_none() && m.property("REAL_QID").is_none());

    let (got, _) = wait_for(&client, &addr, "TimerSec", 1, Duration::from_secs(10)).await;
    assert_eq!(&got[0].body[..], b"sec");
    assert!(got[0].store_timestamp >= t0 + 2000 - PRECISION, "TIMER_DELAY_SEC=2 delivered early");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_times_go_through_and_over_max_delay_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, addr, _) = start(dir.path(), "timer-b");
    let client = RemotingClient::default();
    create_topic(&client, &addr, "TimerPast").await;

    let past = (now_ms() - 5000).to_string();
    let t0 = Instant::now();
    let r = send(&client, &addr, "TimerPast", 0, b"past", &[("TIMER_DELIVER_MS", &past)]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(r.ext("queueOffset"), Some("0"), "stored in its own queue");
    let (got, _) = wait_for(&client, &addr, "TimerPast", 1, Duration::from_secs(5)).await;
    assert!(t0.elapsed() < Duration::from_millis(900), "a past deliver time waited {:?}", t0.elapsed());
    assert_eq!(&got[0].body[..], b"past");

    // timerMaxDelaySec=60 in this broker's config.
    let r = send(&client, &addr, "TimerPast", 0, b"far", &[("TIMER_DELAY_SEC", "61")]).await;
    assert_eq!(r.code, response::MESSAGE_ILLEGAL);
    let remark = r.remark.clone().unwrap_or_default();
    assert!(remark.contains("max delay 60000ms"), "{remark}");
    let far = (now_ms() + 120_000).to_string();
    let r = send(&client, &addr, "TimerPast", 0, b"far", &[("TIMER_DELIVER_MS", &far)]).await;
    assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{:?}", r.remark);
    let r = send(&client, &addr, "TimerPast", 0, b"bad", &[("TIMER_DELAY_MS", "soon")]).await;
    assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{:?}", r.remark);
    // Nothing refused was stored.
    assert_eq!(pull_all(&client, &addr, "TimerPast").await.len(), 1);

    // timerMaxDelaySec changes at runtime; the keys the timer service reads at start do not.
    let update = |k: &str, v: &str| {
        RemotingCommand::request(request::UPDATE_BROKER_CONFIG)
            .with_body(rmqc::config::to_properties_text(&[(k, v.to_string())]))
    };
    let r = client.invoke(&addr, update("timerPrecisionMs", "100"), T).await.unwrap();
    assert_ne!(r.code, response::SUCCESS);
    assert!(r.remark.as_deref().unwrap_or_default().contains("cannot change while running"), "{:?}", r.remark);
    let r = client.invoke(&addr, update("timerMaxDelaySec", "120"), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = send(&client, &addr, "TimerPast", 0, b"far", &[("TIMER_DELAY_SEC", "61")]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    client.shutdown().await;
}

/// `config/timercheck`: (lastReadTimeMs, lastTimerQueueOffset).
fn checkpoint(root: &Path) -> (i64, i64) {
    let Ok(b) = std::fs::read(root.join("config").join("timercheck")) else { return (0, 0) };
    if b.len() < 24 {
        return (0, 0);
    }
    let at = |i: usize| i64::from_be_bytes(b[i..i + 8].try_into().unwrap());
    (at(0), at(16))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_pending_timer_messages_delivers_each_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut c, addr, conf) = start(d, "timer-k");
    let root = d.join("store").join("timer-k");
    let client = RemotingClient::default();
    create_topic(&client, &addr, "TimerCrash").await;

    // One message due soon, delivered before the kill; twenty pending ones.
    let early = now_ms() + 1000;
    let r = send(&client, &addr, "TimerCrash", 0, b"early", &[("TIMER_DELIVER_MS", &early.to_string())]).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    wait_for(&client, &addr, "TimerCrash", 1, Duration::from_secs(10)).await;

    let base = now_ms() + 4000;
    let mut due = std::collections::BTreeMap::new();
    for i in 0..20i64 {
        let at = base + (i % 4) * 700;
        let body = format!("pending-{i}");
        let r = send(&client, &addr, "TimerCrash", 0, body.as_bytes(), &[("TIMER_DELIVER_MS", &at.to_string())]).await;
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        due.insert(body, at);
    }
    // The wheel has them (the dispatcher's checkpoint passed them), none is due yet: kill -9.
    wait_until("the timer dispatched the pending messages", Duration::from_secs(10), || checkpoint(&root).1 >= 21);
    assert!(now_ms() < base, "the pending messages fell due before the kill");
    c.kill9();
    client.shutdown().await;

    let _c2 = ChildGuard::spawn(CONTAINER, &["-c", conf.to_str().unwrap()], d, "timer-k2");
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    wait_until("the restarted broker listens", Duration::from_secs(30), || port_open(port));
    let client = RemotingClient::default();
    let last = *due.values().max().unwrap();
    wait_for(&client, &addr, "TimerCrash", 21, Duration::from_secs(20)).await;
    // Let the scanner pass the last slot, then count: every message exactly once, none early.
    wait_async("the timer passed the last slot", Duration::from_secs(20), || {
        let passed = checkpoint(&root).0 > last;
        async move { passed }
    })
    .await;
    let got = pull_all(&client, &addr, "TimerCrash").await;
    let mut seen = std::collections::BTreeMap::new();
    for m in &got {
        *seen.entry(String::from_utf8_lossy(&m.body).to_string()).or_insert(0) += 1;
        if let Some(at) = due.get(&*String::from_utf8_lossy(&m.body)) {
            assert!(m.store_timestamp >= at - PRECISION, "delivered {} ms early", at - m.store_timestamp);
        }
    }
    assert_eq!(seen.get("early"), Some(&1), "{seen:?}");
    for body in due.keys() {
        assert_eq!(seen.get(body), Some(&1), "{body}: {seen:?}");
    }
    assert_eq!(got.len(), 21, "{seen:?}");
    client.shutdown().await;
}
