//! Harness for the client compatibility tests: a real BrokerContainer (embedded NameServer plus one
//! master broker) on 127.0.0.1 with free ports and a temp store, driven by the crates.io
//! `rocketmq-client-rust` client (a client nobody on this team wrote).
//!
//! The container runs in-process on its own thread and Tokio runtime, so the client's runtime and
//! the servers never share worker threads; it is shut down gracefully by [`Servers::stop`] and when
//! dropped. Every wait is bounded by a deadline.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rmqc::container::config::LoadedContainerConfig;
use rmqc::container::BrokerContainer;
use rmqc::protocol::codes::{request, response};
use rmqc::remoting::{RemotingClient, RemotingCommand};
use rocketmq_client_rust::{
    AclClientRPCHook, ClientConfig, ClientOptions, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext,
    ConsumeConcurrentlyStatus, DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer, MessageListenerConcurrently,
    SessionCredentials, TelemetryHandle,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_protocol::protocol::remoting_command_defaults::{RemotingCommandDefaults, RemotingCommandFactory};
use rocketmq_protocol::protocol::SerializeType;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

/// The cluster name of the test broker.
pub const CLUSTER: &str = "CompatCluster";
/// The broker name.
pub const BROKER: &str = "broker-compat";
/// Timeout for one RPC issued by the test itself.
const RPC: Duration = Duration::from_secs(5);

/// Logs to stderr (captured by the test harness) at `RUST_LOG`, `warn` by default.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// Prints a scenario's progress with the time since it started (shown with `--nocapture`).
pub struct Timeline(Instant, &'static str);

impl Timeline {
    /// Starts the clock for scenario `name`.
    pub fn start(name: &'static str) -> Timeline {
        Timeline(Instant::now(), name)
    }

    /// Notes that `what` is done.
    pub fn note(&self, what: &str) {
        eprintln!("[{} +{:.1}s] {what}", self.1, self.0.elapsed().as_secs_f64());
    }
}

#[path = "../../common/ports.rs"]
mod ports;
pub use ports::free_port_block;

/// Runs blocking `f` without stalling the async runtime we may be on.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The running container: its thread, and the channel that asks it to shut down.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    done: std::sync::mpsc::Receiver<()>,
    thread: std::thread::JoinHandle<()>,
}

/// A BrokerContainer with an embedded NameServer and one master broker, on free ports, with its
/// configs and store in `dir`. It can be stopped and started again on the same store.
pub struct Servers {
    conf: PathBuf,
    /// The embedded NameServer's port.
    pub namesrv_port: u16,
    /// The broker's listen port.
    pub broker_port: u16,
    /// The address the broker advertises (`brokerIP1`).
    broker_ip: &'static str,
    running: Option<Running>,
    /// Taps on the clients' connections to the NameServer and to the broker (see [`Servers::start_tapped`]).
    pub taps: Option<(Tap, Tap)>,
}

impl Servers {
    /// Writes the configs into `dir` (the broker config gets `broker_extra` appended) and starts.
    pub fn start(dir: &Path, broker_extra: &str) -> Servers {
        Self::start_advertising(dir, broker_extra, "127.0.0.1")
    }

    /// Like [`Servers::start`], but every client request is seen by a [`Tap`]: the broker
    /// advertises `brokerIP1=127.0.0.2`, where a tap forwards to its listener on 127.0.0.1, and
    /// [`Servers::namesrv_addr`] is a tap in front of the NameServer.
    pub fn start_tapped(dir: &Path, broker_extra: &str) -> Servers {
        let mut s = Self::start_advertising(dir, broker_extra, "127.0.0.2");
        let ns_tap = Tap::start("127.0.0.1:0", &format!("127.0.0.1:{}", s.namesrv_port));
        let broker_tap = Tap::start(&format!("127.0.0.2:{}", s.broker_port), &format!("127.0.0.1:{}", s.broker_port));
        s.taps = Some((ns_tap, broker_tap));
        s
    }

    fn start_advertising(dir: &Path, broker_extra: &str, broker_ip: &'static str) -> Servers {
        let broker_port = free_port_block(2, 1);
        std::fs::write(
            dir.join("broker.conf"),
            format!(
                "brokerClusterName={CLUSTER}\nbrokerName={BROKER}\nbrokerId=0\nbrokerRole=ASYNC_MASTER\n\
                 listenPort={broker_port}\nbrokerIP1={broker_ip}\nstorePathRootDir={}\n\
                 mappedFileSizeCommitLog=4194304\nmaxHashSlotNum=5000\nmaxIndexNum=20000\n\
                 mappedFileSizeConsumeQueue=60000\nmaxMessageSize=131072\n{broker_extra}",
                dir.join("store").display()
            ),
        )
        .unwrap();
        let container_port = free_port_block(2, 0);
        let namesrv_port = free_port_block(0, 0);
        let conf = dir.join("container.conf");
        std::fs::write(
            &conf,
            format!(
                "listenPort={container_port}\nbindAddress=127.0.0.1\nembeddedNamesrvEnable=true\n\
                 embeddedNamesrvPort={namesrv_port}\nnamesrvAddr=127.0.0.1:{namesrv_port}\n\
                 brokerConfigPaths=broker.conf\nbrokerConfigDirs=.\n"
            ),
        )
        .unwrap();
        let mut s = Servers { conf, namesrv_port, broker_port, broker_ip, running: None, taps: None };
        s.restart();
        s
    }

    /// The NameServer address for clients: "127.0.0.1:<port>", or its tap's.
    pub fn namesrv_addr(&self) -> String {
        match &self.taps {
            Some((ns, _)) => ns.addr.clone(),
            None => format!("127.0.0.1:{}", self.namesrv_port),
        }
    }

    /// The broker's own listener, "127.0.0.1:<broker port>" (the test's own requests go here).
    pub fn broker_addr(&self) -> String {
        format!("127.0.0.1:{}", self.broker_port)
    }

    /// The broker address in routes: `brokerIP1:<broker port>`.
    pub fn advertised_broker_addr(&self) -> String {
        format!("{}:{}", self.broker_ip, self.broker_port)
    }

    /// Starts the container (again) on the same configs and store; returns once it serves.
    pub fn restart(&mut self) {
        assert!(self.running.is_none(), "already running");
        let conf = self.conf.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("container".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("container-rt")
                    .enable_all()
                    .build()
                    .expect("container runtime");
                rt.block_on(async move {
                    let loaded = match LoadedContainerConfig::load(&conf, None, None) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    match BrokerContainer::start(loaded, false, None).await {
                        Ok(c) => {
                            let _ = ready_tx.send(Ok(()));
                            let _ = stop_rx.await;
                            c.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                        }
                    }
                });
                drop(rt);
                let _ = done_tx.send(());
            })
            .expect("spawn the container thread");
        match blocking(|| ready_rx.recv_timeout(Duration::from_secs(60))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("container failed to start: {e}"),
            Err(e) => panic!("container did not start within 60 s: {e}"),
        }
        self.running = Some(Running { stop: stop_tx, done: done_rx, thread });
    }

    /// Graceful shutdown (what SIGTERM does to the binary): brokers persist offsets and metadata,
    /// the store is closed, the ports are released.
    pub fn stop(&mut self) {
        let Some(r) = self.running.take() else { return };
        let _ = r.stop.send(());
        match blocking(|| r.done.recv_timeout(Duration::from_secs(60))) {
            Ok(()) => {
                let _ = blocking(|| r.thread.join());
            }
            Err(_) => panic!("the container did not shut down within 60 s"),
        }
    }

    /// Waits (bounded) until the NameServer routes `topic` to the broker.
    pub async fn wait_route(&self, topic: &str, within: Duration) {
        let client = RemotingClient::default();
        let deadline = Instant::now() + within;
        let ns = format!("127.0.0.1:{}", self.namesrv_port);
        loop {
            let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
            if let Ok(r) = client.invoke(&ns, req, RPC).await {
                if r.code == response::SUCCESS
                    && String::from_utf8_lossy(&r.body).contains(&self.advertised_broker_addr())
                {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "topic {topic} not routed within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client.shutdown().await;
    }

    /// Creates `topic` with `queues` read/write queues on the broker (UPDATE_AND_CREATE_TOPIC, as
    /// mqadmin does) and waits until the NameServer routes it.
    pub async fn create_topic(&self, topic: &str, queues: u32) {
        let client = RemotingClient::default();
        let upd = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", topic)
            .with_ext("defaultTopic", "TBW102")
            .with_ext("readQueueNums", queues.to_string())
            .with_ext("writeQueueNums", queues.to_string())
            .with_ext("perm", "6")
            .with_ext("topicFilterType", "SINGLE_TAG")
            .with_ext("order", "false");
        let r = client.invoke(&self.broker_addr(), upd, RPC).await.expect("UPDATE_AND_CREATE_TOPIC");
        assert_eq!(r.code, response::SUCCESS, "create topic {topic}: {:?}", r.remark);
        client.shutdown().await;
        self.wait_route(topic, Duration::from_secs(10)).await;
    }

    /// The broker's max offset of `topic` queue `queue_id`.
    pub async fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        let client = RemotingClient::default();
        let req = RemotingCommand::request(request::GET_MAX_OFFSET)
            .with_ext("topic", topic)
            .with_ext("queueId", queue_id.to_string());
        let r = client.invoke(&self.broker_addr(), req, RPC).await.expect("GET_MAX_OFFSET");
        client.shutdown().await;
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        r.ext("offset").and_then(|s| s.parse().ok()).expect("offset")
    }

    /// The consumer offset the broker holds for `group` on `topic` queue `queue_id` (-1 if none).
    pub async fn consumer_offset(&self, group: &str, topic: &str, queue_id: i32) -> i64 {
        let client = RemotingClient::default();
        let req = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
            .with_ext("consumerGroup", group)
            .with_ext("topic", topic)
            .with_ext("queueId", queue_id.to_string())
            .with_ext("setZeroIfNotFound", "false");
        let r = client.invoke(&self.broker_addr(), req, RPC).await.expect("QUERY_CONSUMER_OFFSET");
        client.shutdown().await;
        if r.code == response::SUCCESS {
            r.ext("offset").and_then(|s| s.parse().ok()).unwrap_or(-1)
        } else {
            -1
        }
    }

    /// Waits (bounded) until the broker holds, for `group`, committed offsets equal to the max
    /// offsets of every queue of `topic` (0..queues): the group has consumed (or filtered) all.
    pub async fn wait_group_caught_up(&self, group: &str, topic: &str, queues: i32, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let mut lag = Vec::new();
            for q in 0..queues {
                let (max, cur) = (self.max_offset(topic, q).await, self.consumer_offset(group, topic, q).await);
                if cur < max {
                    lag.push((q, cur, max));
                }
            }
            if lag.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "group {group} not caught up on {topic} within {within:?}: {lag:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            let _ = blocking(|| r.done.recv_timeout(Duration::from_secs(30)));
        }
    }
}

/// A TCP forwarder that decodes the frames clients send through it and records, for every request
/// (not responses), its code and header serialization, and for every answer the server sends back,
/// the code of the request it answers and its response code. Forwarding runs on the current runtime.
pub struct Tap {
    /// Where clients connect.
    pub addr: String,
    /// (request code, serialize type code 0 = JSON / 1 = ROCKETMQ) -> count.
    pub seen: Arc<Mutex<BTreeMap<(i32, u8), usize>>>,
    /// (request code, response code) -> count, for the server's answers to the clients' requests.
    pub answered: Arc<Mutex<BTreeMap<(i32, i32), usize>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Most requests of one connection awaiting an answer that a tap remembers (beyond, it forgets the
/// oldest: a tap must not grow without bound if a server never answers).
const TAP_PENDING_MAX: usize = 65_536;

/// The requests of one tapped connection awaiting their answers: opaque -> request code.
type Pending = Arc<Mutex<HashMap<i32, i32>>>;

impl Tap {
    /// Listens on `listen` (port 0 for any) and forwards every connection to `upstream`.
    pub fn start(listen: &str, upstream: &str) -> Tap {
        let std_listener = TcpListener::bind(listen).unwrap_or_else(|e| panic!("tap bind {listen}: {e}"));
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap().to_string();
        let listener = tokio::net::TcpListener::from_std(std_listener).expect("tap listener");
        let seen: Arc<Mutex<BTreeMap<(i32, u8), usize>>> = Arc::default();
        let answered: Arc<Mutex<BTreeMap<(i32, i32), usize>>> = Arc::default();
        let (seen2, answered2, upstream) = (seen.clone(), answered.clone(), upstream.to_string());
        let task = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let (seen, answered, upstream) = (seen2.clone(), answered2.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    // No Nagle delays added by the tap itself.
                    let _ = (down.set_nodelay(true), up.set_nodelay(true));
                    let (mut down_r, mut down_w) = down.into_split();
                    let (mut up_r, mut up_w) = up.into_split();
                    let pending: Pending = Arc::default();
                    let pending2 = pending.clone();
                    let back = tokio::spawn(async move {
                        let _ = tap_answers(&mut up_r, &mut down_w, &pending2, &answered).await;
                    });
                    let _ = tap_requests(&mut down_r, &mut up_w, &seen, &pending).await;
                    back.abort();
                });
            }
        });
        Tap { addr, seen, answered, task }
    }

    /// A copy of what was seen.
    pub fn seen(&self) -> BTreeMap<(i32, u8), usize> {
        self.seen.lock().clone()
    }

    /// How many requests with code `request` the server answered with `response`.
    pub fn answered(&self, request: i32, response: i32) -> usize {
        self.answered.lock().get(&(request, response)).copied().unwrap_or(0)
    }

    /// A copy of the answers seen: (request code, response code) -> count.
    pub fn answers(&self) -> BTreeMap<(i32, i32), usize> {
        self.answered.lock().clone()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A frame read by a tap: the frame with its length prefix, its serialize type code, and its
/// decoded header (`None` for an unknown serialization).
type TappedFrame = (Vec<u8>, u8, Option<Result<RemotingCommand, rmqc::remoting::RemotingError>>);

/// Reads one frame (its 4-byte length, then the frame) from `r`.
async fn read_tapped_frame(r: &mut (impl tokio::io::AsyncRead + Unpin)) -> std::io::Result<TappedFrame> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let n = u32::from_be_bytes(len) as usize;
    assert!((4..=64 << 20).contains(&n), "tap: bad frame length {n}");
    let mut out = vec![0u8; 4 + n];
    out[..4].copy_from_slice(&len);
    r.read_exact(&mut out[4..]).await?;
    let frame = &out[4..];
    let word = u32::from_be_bytes(frame[..4].try_into().unwrap());
    let (kind, header_len) = ((word >> 24) as u8, (word & 0x00FF_FFFF) as usize);
    let st = match kind {
        0 => Some(rmqc::remoting::SerializeType::Json),
        1 => Some(rmqc::remoting::SerializeType::RocketMq),
        _ => None,
    };
    let decoded = st.map(|st| RemotingCommand::decode_header_bytes(st, frame.get(4..4 + header_len).unwrap_or(&[])));
    Ok((out, kind, decoded))
}

/// Copies frames from `r` to `w`, recording each request's code and serialization, and
/// remembering in `pending` the requests that expect an answer.
async fn tap_requests(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
    seen: &Mutex<BTreeMap<(i32, u8), usize>>,
    pending: &Pending,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    loop {
        let (out, kind, decoded) = read_tapped_frame(r).await?;
        // An unknown serialization is recorded as code -1, an undecodable header as code -2.
        let code = match decoded {
            None => Some(-1),
            Some(Err(_)) => Some(-2),
            Some(Ok(cmd)) if cmd.is_response() => None,
            Some(Ok(cmd)) => {
                if cmd.flag & rmqc::remoting::command::FLAG_ONEWAY == 0 {
                    let mut p = pending.lock();
                    if p.len() >= TAP_PENDING_MAX {
                        p.clear();
                    }
                    p.insert(cmd.opaque, cmd.code);
                }
                Some(cmd.code)
            }
        };
        if let Some(code) = code {
            *seen.lock().entry((code, kind)).or_default() += 1;
        }
        w.write_all(&out).await?;
    }
}

/// Copies the server's frames from `r` to `w`, recording for each answer to a request in `pending`
/// (request code, response code).
async fn tap_answers(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
    pending: &Pending,
    answered: &Mutex<BTreeMap<(i32, i32), usize>>,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    loop {
        let (out, _, decoded) = read_tapped_frame(r).await?;
        if let Some(Ok(cmd)) = decoded {
            if cmd.is_response() {
                if let Some(request) = pending.lock().remove(&cmd.opaque) {
                    *answered.lock().entry((request, cmd.code)).or_default() += 1;
                }
            }
        }
        w.write_all(&out).await?;
    }
}

/// The client's remoting header serialization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// JSON headers (the default of both Apache and rocketmq-rust).
    Json,
    /// RocketMQ's binary header format (`ROCKETMQ_SERIALIZE_TYPE=ROCKETMQ`).
    RocketMq,
}

impl Wire {
    /// The serialize-type code in the frame (0 JSON, 1 ROCKETMQ).
    pub fn code(self) -> u8 {
        match self {
            Wire::Json => 0,
            Wire::RocketMq => 1,
        }
    }

    fn serialize_type(self) -> SerializeType {
        match self {
            Wire::Json => SerializeType::JSON,
            Wire::RocketMq => SerializeType::ROCKETMQ,
        }
    }
}

/// Runs `body` on a rocketmq-rust client runtime whose commands use `wire` serialization, then
/// shuts the client runtime down.
pub fn with_client<F, Fut>(wire: Wire, body: F) -> Fut::Output
where
    F: FnOnce(Client) -> Fut,
    Fut: Future,
{
    init_logging();
    // One scenario at a time: each runs its own servers and clients on a 2-core budget.
    static SERIAL: Mutex<()> = Mutex::new(());
    let _serial = SERIAL.lock();
    let owner = RuntimeOwner::plan(RuntimeConfig::for_parallelism("compat-client", 2))
        .expect("runtime config")
        .build()
        .expect("client runtime owner");
    let factory = RemotingCommandFactory::new(RemotingCommandDefaults::new(
        rocketmq_model::version::CURRENT_VERSION as i32,
        wire.serialize_type(),
    ));
    let runtime = ClientRuntime::try_new_with_remoting_command_factory(
        owner.root_context().component("client"),
        ClientRuntimeConfig { shutdown_timeout: Duration::from_secs(10), ..Default::default() },
        TelemetryHandle::noop(),
        factory,
    )
    .expect("client runtime");
    let client = Client { runtime: runtime.clone(), wire, factory };
    let out = owner.block_on(async move {
        let out = body(client).await;
        let _ = tokio::time::timeout(Duration::from_secs(20), runtime.shutdown()).await;
        out
    });
    let _ = owner.shutdown_background();
    out
}

/// What the tests need to build producers and consumers.
#[derive(Clone)]
pub struct Client {
    /// The client runtime.
    pub runtime: Arc<ClientRuntime>,
    /// The wire serialization in use.
    pub wire: Wire,
    factory: RemotingCommandFactory,
}

impl Client {
    fn options(&self, namesrv: &str, instance: &str) -> ClientOptions {
        let mut cc = ClientConfig::default();
        cc.set_namesrv_addr(namesrv.into());
        cc.set_instance_name(instance.into());
        // Commit consumed offsets every second instead of every five.
        cc.set_persist_consumer_offset_interval(1000);
        cc.set_poll_name_server_interval(10_000);
        cc.set_heartbeat_broker_interval(10_000);
        ClientOptions::legacy(cc).with_remoting_command_factory(self.factory)
    }

    /// A started producer of `group`.
    pub async fn producer(&self, namesrv: &str, group: &str) -> DefaultMQProducer {
        self.producer_signed_by(namesrv, group, None).await
    }

    /// A started producer of `group` whose requests are signed by the client's own
    /// `AclClientRPCHook` with `access_key`/`secret_key`.
    pub async fn signed_producer(
        &self,
        namesrv: &str,
        group: &str,
        access_key: &str,
        secret_key: &str,
    ) -> DefaultMQProducer {
        self.producer_signed_by(namesrv, group, Some((access_key, secret_key))).await
    }

    /// A started producer of `group`, its requests signed with `keys` (access key, secret key) if given.
    async fn producer_signed_by(&self, namesrv: &str, group: &str, keys: Option<(&str, &str)>) -> DefaultMQProducer {
        let mut builder = DefaultMQProducer::builder(self.runtime.clone())
            .client_options(self.options(namesrv, &format!("{group}-instance")))
            .producer_group(group.to_string())
            .name_server_addr(namesrv.to_string())
            .default_topic_queue_nums(4)
            .send_msg_timeout(5000);
        if let Some((access_key, secret_key)) = keys {
            builder = builder.rpc_hook(Arc::new(acl_hook(access_key, secret_key)));
        }
        let mut p = builder.build();
        p.start().await.expect("producer starts");
        p
    }

    /// Like [`Client::push_consumer`] (subscribed to every tag), with requests signed by the
    /// client's own `AclClientRPCHook` with `access_key`/`secret_key`. `instance` names the client
    /// instance: clients of one name share one client instance, which refuses a different hook.
    #[allow(clippy::too_many_arguments)]
    pub async fn signed_push_consumer(
        &self,
        namesrv: &str,
        group: &str,
        instance: &str,
        topic: &str,
        access_key: &str,
        secret_key: &str,
        listener: Recorder,
    ) -> DefaultMQPushConsumer {
        let keys = Some((access_key, secret_key));
        self.push_consumer_signed_by(namesrv, group, instance, topic, "*", listener, keys).await
    }

    /// A started clustering push consumer of `group`, subscribed to `topic` with `expression`,
    /// delivering to `listener`, consuming from the first offset when the group is new.
    pub async fn push_consumer(
        &self,
        namesrv: &str,
        group: &str,
        instance: &str,
        topic: &str,
        expression: &str,
        listener: Recorder,
    ) -> DefaultMQPushConsumer {
        self.push_consumer_signed_by(namesrv, group, instance, topic, expression, listener, None).await
    }

    /// [`Client::push_consumer`], its requests signed with `keys` (access key, secret key) if
    /// given. An unsigned consumer gives a message up after 3 reconsumes; a signed one keeps the
    /// client's default.
    #[allow(clippy::too_many_arguments)]
    async fn push_consumer_signed_by(
        &self,
        namesrv: &str,
        group: &str,
        instance: &str,
        topic: &str,
        expression: &str,
        listener: Recorder,
        keys: Option<(&str, &str)>,
    ) -> DefaultMQPushConsumer {
        let builder = DefaultMQPushConsumer::builder(self.runtime.clone())
            .client_options(self.options(namesrv, instance))
            .consumer_group(group.to_string())
            .name_server_addr(namesrv.to_string())
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .consume_thread_min(2)
            .consume_thread_max(4);
        let builder = match keys {
            Some((access_key, secret_key)) => builder.rpc_hook(Some(Arc::new(acl_hook(access_key, secret_key)))),
            None => builder.max_reconsume_times(3),
        };
        let mut c = builder.build();
        c.subscribe(topic, expression).await.expect("subscribe");
        c.register_message_listener_concurrently(listener);
        c.start().await.expect("consumer starts");
        c
    }
}

/// The client's own request signer for `access_key`/`secret_key`.
fn acl_hook(access_key: &str, secret_key: &str) -> AclClientRPCHook {
    AclClientRPCHook::new(SessionCredentials::with_keys(access_key.to_string(), secret_key.to_string()))
}

/// A sent message: what the producer knows about it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The client-generated unique id (`UNIQ_KEY`), which is also `SendResult.msg_id`.
    pub uniq: String,
    /// The body.
    pub body: String,
    /// The tag.
    pub tag: String,
    /// The keys.
    pub key: String,
    /// The queue it went to.
    pub queue_id: i32,
}

/// Sends `n` messages to `topic` named `{prefix}-{i}` (body), key `key-{prefix}-{i}`, tag
/// `tag_of(i)`; every send must be SEND_OK. Returns them by body.
pub async fn send_all(
    producer: &DefaultMQProducer,
    topic: &str,
    prefix: &str,
    n: usize,
    tag_of: impl Fn(usize) -> &'static str,
) -> BTreeMap<String, Sent> {
    let mut out = BTreeMap::new();
    for i in 0..n {
        let body = format!("{prefix}-{i}");
        let key = format!("key-{prefix}-{i}");
        let tag = tag_of(i);
        let msg = Message::builder()
            .topic(topic)
            .tags(tag)
            .keys(vec![key.clone()])
            .body_slice(body.as_bytes())
            .build()
            .expect("a valid message");
        let r = producer
            .send_with_timeout(msg, 5000)
            .await
            .unwrap_or_else(|e| panic!("send {body}: {e}"))
            .unwrap_or_else(|| panic!("send {body}: no result"));
        assert_eq!(format!("{:?}", r.send_status), "SendOk", "send {body}: {r:?}");
        let uniq = r.msg_id.as_ref().map(|s| s.to_string()).expect("a msg id");
        let queue_id = r.message_queue.as_ref().map(|q| q.queue_id()).expect("a queue");
        out.insert(body.clone(), Sent { uniq, body, tag: tag.to_string(), key, queue_id });
    }
    out
}

/// Sends one message with `body`, tag `tag` and key `key-{body}` to queue `queue_id` of `topic`.
pub async fn send_one_to_queue(
    producer: &DefaultMQProducer,
    topic: &str,
    queue_id: i32,
    body: &str,
    tag: &str,
) -> (String, Sent) {
    let key = format!("key-{body}");
    let msg = Message::builder()
        .topic(topic)
        .tags(tag)
        .keys(vec![key.clone()])
        .body_slice(body.as_bytes())
        .build()
        .expect("a valid message");
    let mq = MessageQueue::from_parts(topic, BROKER, queue_id);
    let r = producer
        .send_to_queue(msg, mq)
        .await
        .unwrap_or_else(|e| panic!("send {body}: {e}"))
        .unwrap_or_else(|| panic!("send {body}: no result"));
    assert_eq!(format!("{:?}", r.send_status), "SendOk", "send {body}: {r:?}");
    let uniq = r.msg_id.as_ref().map(|s| s.to_string()).expect("a msg id");
    assert_eq!(r.message_queue.as_ref().map(|q| q.queue_id()), Some(queue_id));
    (body.to_string(), Sent { uniq, body: body.to_string(), tag: tag.to_string(), key, queue_id })
}

/// One delivery seen by a listener.
#[derive(Debug, Clone)]
pub struct Got {
    /// `UNIQ_KEY`.
    pub uniq: String,
    /// The message id the client reports.
    pub msg_id: String,
    /// The body.
    pub body: String,
    /// The topic as the listener sees it.
    pub topic: String,
    /// Tag.
    pub tag: String,
    /// Keys.
    pub keys: String,
    /// Queue id.
    pub queue_id: i32,
    /// How many times it was consumed before.
    pub reconsume_times: i32,
    /// All properties.
    pub properties: HashMap<String, String>,
}

/// A listener that records every delivery, and fails (RECONSUME_LATER) the first delivery of
/// messages whose body starts with `fail_first_prefix`.
#[derive(Clone, Default)]
pub struct Recorder {
    /// Everything delivered, in order.
    pub got: Arc<Mutex<Vec<Got>>>,
    /// Bodies with this prefix are refused the first time they come (reconsumeTimes == 0).
    pub fail_first_prefix: Option<String>,
}

impl Recorder {
    /// A copy of what has been delivered so far.
    pub fn snapshot(&self) -> Vec<Got> {
        self.got.lock().clone()
    }

    /// Number of deliveries so far.
    pub fn len(&self) -> usize {
        self.got.lock().len()
    }

    /// True if nothing was delivered.
    pub fn is_empty(&self) -> bool {
        self.got.lock().is_empty()
    }

    /// Waits (bounded) until `done(deliveries)` holds.
    pub async fn wait_for(&self, what: &str, within: Duration, done: impl Fn(&[Got]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if done(&self.got.lock()) {
                return;
            }
            if Instant::now() >= deadline {
                let n = self.len();
                panic!("{what}: not done within {within:?} ({n} deliveries)");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl MessageListenerConcurrently for Recorder {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _context: &ConsumeConcurrentlyContext,
    ) -> rocketmq_client_rust::ClientResult<ConsumeConcurrentlyStatus> {
        let mut status = ConsumeConcurrentlyStatus::ConsumeSuccess;
        let mut got = self.got.lock();
        for m in msgs {
            let properties: HashMap<String, String> =
                m.properties().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let body = m.body().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            let g = Got {
                uniq: properties.get("UNIQ_KEY").cloned().unwrap_or_default(),
                msg_id: m.msg_id().to_string(),
                topic: m.topic().to_string(),
                tag: properties.get("TAGS").cloned().unwrap_or_default(),
                keys: properties.get("KEYS").cloned().unwrap_or_default(),
                queue_id: m.queue_id(),
                reconsume_times: m.reconsume_times(),
                properties,
                body,
            };
            if let Some(p) = &self.fail_first_prefix {
                if g.body.starts_with(p.as_str()) && g.reconsume_times == 0 {
                    status = ConsumeConcurrentlyStatus::ReconsumeLater;
                }
            }
            got.push(g);
        }
        Ok(status)
    }
}

/// Asserts that every request the client sent through the taps used `wire`, and that the taps saw
/// the requests the scenario needs (route lookups at the NameServer; sends, pulls and heartbeats at
/// the broker).
pub fn assert_wire(servers: &Servers, wire: Wire) {
    let (ns, broker) = servers.taps.as_ref().expect("tapped servers");
    let (ns, broker) = (ns.seen(), broker.seen());
    eprintln!("requests seen (code, serialize type) -> count: NameServer {ns:?}, broker {broker:?}");
    for (what, seen) in [("NameServer", &ns), ("broker", &broker)] {
        let other: Vec<_> = seen.iter().filter(|((_, k), _)| *k != wire.code()).collect();
        assert!(other.is_empty(), "{what}: requests not in {wire:?}: {other:?}");
    }
    let has = |seen: &BTreeMap<(i32, u8), usize>, code: i32| seen.contains_key(&(code, wire.code()));
    assert!(has(&ns, request::GET_ROUTEINFO_BY_TOPIC), "route lookups seen");
    assert!(has(&broker, request::SEND_MESSAGE_V2) || has(&broker, request::SEND_MESSAGE), "sends seen");
    assert!(has(&broker, request::PULL_MESSAGE), "pulls seen");
    assert!(has(&broker, request::HEART_BEAT), "heartbeats seen");
}

/// Asserts that `got` is exactly `sent` (by body), each once, with the sent UNIQ id, tag and key.
pub fn assert_exactly_once(sent: &BTreeMap<String, Sent>, got: &[Got]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for g in got {
        *seen.entry(g.body.as_str()).or_default() += 1;
        let s = sent.get(&g.body).unwrap_or_else(|| panic!("unexpected delivery {g:?}"));
        assert_eq!(g.uniq, s.uniq, "UNIQ_KEY of {}", g.body);
        assert_eq!(g.tag, s.tag, "tag of {}", g.body);
        assert_eq!(g.keys, s.key, "keys of {}", g.body);
        assert_eq!(g.queue_id, s.queue_id, "queue of {}", g.body);
    }
    let dups: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).take(10).collect();
    assert!(dups.is_empty(), "duplicates (body, times): {dups:?}");
    let missing: Vec<_> = sent.keys().filter(|b| !seen.contains_key(b.as_str())).take(10).collect();
    assert!(missing.is_empty(), "missing (first 10): {missing:?}");
    let uniq: std::collections::HashSet<&str> = got.iter().map(|g| g.uniq.as_str()).collect();
    assert_eq!(uniq.len(), got.len(), "UNIQ ids are unique");
}

/// The scenarios of issue 4, each parametrised by the client's wire serialization.
pub mod scenarios {
    use std::collections::{BTreeMap, HashSet};
    use std::time::Duration;

    use super::*;

    /// 18 delay levels of one second each, so that retries come back quickly.
    pub const FAST_DELAY_LEVELS: &str = "messageDelayLevel=1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s\n";

    fn tag3(i: usize) -> &'static str {
        ["TagA", "TagB", "TagC"][i % 3]
    }

    /// Issue 4, test 1: 10,000 messages with keys and tags, over an auto-created topic with 4 queues, are each
    /// delivered exactly once to a clustering push consumer.
    pub async fn exactly_once(client: Client, n: usize) {
        let dir = tempfile::tempdir().unwrap();
        let servers = Servers::start_tapped(dir.path(), "");
        let ns = servers.namesrv_addr();
        let topic = "CompatExactlyOnce";
        let group = "compat-exactly-once";
        let producer = client.producer(&ns, "compat-producer-1").await;

        // The first messages auto-create the topic (from TBW102, 4 queues as the producer asks).
        let mut sent: BTreeMap<String, Sent> = send_all(&producer, topic, "first", 100, tag3).await;
        let rec = Recorder::default();
        let mut consumer = client.push_consumer(&ns, group, "consumer-1", topic, "*", rec.clone()).await;
        sent.extend(send_all(&producer, topic, "m", n - 100, tag3).await);
        assert_eq!(sent.len(), n);
        let queues: HashSet<i32> = sent.values().map(|s| s.queue_id).collect();
        assert!(queues.len() >= 4, "spread over 4+ queues: {queues:?}");

        let bodies: HashSet<String> = sent.keys().cloned().collect();
        rec.wait_for("every message delivered", Duration::from_secs(180), |got| {
            got.len() >= n && got.iter().map(|g| &g.body).collect::<HashSet<_>>().len() >= bodies.len()
        })
        .await;
        // The consumer commits its offsets when it stops: they must cover every message.
        consumer.shutdown().await;
        servers.wait_group_caught_up(group, topic, queues.len() as i32, Duration::from_secs(10)).await;
        assert_exactly_once(&sent, &rec.snapshot());
        let mut producer = producer;
        producer.shutdown().await;
        assert_wire(&servers, client.wire);
    }

    /// Issue 4, test 2: offsets committed by a consumer survive a broker restart: after the restart the same
    /// group gets only the messages sent since, none of those consumed before.
    pub async fn offsets_survive_restart(client: Client) {
        let dir = tempfile::tempdir().unwrap();
        let mut servers = Servers::start(dir.path(), "");
        let ns = servers.namesrv_addr();
        let topic = "CompatRestart";
        let group = "compat-restart";
        servers.create_topic(topic, 4).await;

        let mut producer = client.producer(&ns, "compat-producer-2").await;
        let before = send_all(&producer, topic, "before", 400, tag3).await;
        producer.shutdown().await;
        let rec1 = Recorder::default();
        let mut c1 = client.push_consumer(&ns, group, "consumer-2a", topic, "*", rec1.clone()).await;
        rec1.wait_for("all 400 before the restart", Duration::from_secs(60), |g| g.len() >= 400).await;
        // Stop the consumer first: it commits its offsets when it stops, and they cover everything.
        c1.shutdown().await;
        servers.wait_group_caught_up(group, topic, 4, Duration::from_secs(10)).await;
        assert_exactly_once(&before, &rec1.snapshot());
        let committed: Vec<i64> = {
            let mut v = Vec::new();
            for q in 0..4 {
                v.push(servers.consumer_offset(group, topic, q).await);
            }
            v
        };

        // Graceful stop, then start again on the same store.
        servers.stop();
        servers.restart();
        servers.wait_route(topic, Duration::from_secs(10)).await;
        for (q, want) in committed.iter().enumerate() {
            assert_eq!(servers.consumer_offset(group, topic, q as i32).await, *want, "offset of queue {q} kept");
        }

        let mut producer = client.producer(&ns, "compat-producer-2b").await;
        let after = send_all(&producer, topic, "after", 100, tag3).await;
        producer.shutdown().await;
        let rec2 = Recorder::default();
        let mut c2 = client.push_consumer(&ns, group, "consumer-2b", topic, "*", rec2.clone()).await;
        rec2.wait_for("the 100 sent after the restart", Duration::from_secs(60), |g| {
            g.iter().filter(|m| m.body.starts_with("after-")).count() >= 100
        })
        .await;
        c2.shutdown().await;
        servers.wait_group_caught_up(group, topic, 4, Duration::from_secs(10)).await;
        let got = rec2.snapshot();
        let old: Vec<&str> = got.iter().filter(|g| g.body.starts_with("before-")).map(|g| g.body.as_str()).collect();
        assert!(
            old.is_empty(),
            "{} already-consumed messages redelivered, e.g. {:?}",
            old.len(),
            &old[..old.len().min(5)]
        );
        assert_exactly_once(&after, &got);
    }

    /// Issue 4, test 3: a message whose listener returns RECONSUME_LATER comes back through `%RETRY%<group>`,
    /// with reconsumeTimes 1, the same UNIQ id, and its original topic restored.
    pub async fn retry_after_reconsume_later(client: Client) {
        let dir = tempfile::tempdir().unwrap();
        let servers = Servers::start_tapped(dir.path(), FAST_DELAY_LEVELS);
        let ns = servers.namesrv_addr();
        let topic = "CompatRetry";
        let group = "compat-retry";
        servers.create_topic(topic, 2).await;
        let mut producer = client.producer(&ns, "compat-producer-3").await;
        let mut sent = send_all(&producer, topic, "retry", 5, |_| "TagA").await;
        sent.extend(send_all(&producer, topic, "ok", 5, |_| "TagA").await);
        producer.shutdown().await;

        let rec = Recorder { fail_first_prefix: Some("retry-".into()), ..Default::default() };
        let mut consumer = client.push_consumer(&ns, group, "consumer-3", topic, "*", rec.clone()).await;
        rec.wait_for("5 first deliveries, 5 retries and 5 plain", Duration::from_secs(60), |g| {
            g.iter().filter(|m| m.body.starts_with("retry-") && m.reconsume_times >= 1).count() >= 5
                && g.iter().filter(|m| m.body.starts_with("ok-")).count() >= 5
        })
        .await;
        consumer.shutdown().await;
        let got = rec.snapshot();
        let retry_topic = format!("%RETRY%{group}");
        for (body, s) in &sent {
            let seen: Vec<&Got> = got.iter().filter(|g| &g.body == body).collect();
            if body.starts_with("retry-") {
                assert_eq!(seen.len(), 2, "{body} delivered once, refused, then once more: {seen:?}");
                assert_eq!(seen[0].reconsume_times, 0, "{body}");
                let again = seen[1];
                assert_eq!(again.reconsume_times, 1, "{body}: {again:?}");
                assert_eq!(again.uniq, s.uniq, "{body}: the same UNIQ id");
                assert_eq!(again.topic, topic, "{body}: the original topic restored: {again:?}");
                assert_eq!(again.properties.get("RETRY_TOPIC").map(String::as_str), Some(topic), "{again:?}");
                assert_eq!(again.tag, "TagA");
                assert_eq!(again.keys, s.key);
            } else {
                assert_eq!(seen.len(), 1, "{body} exactly once: {seen:?}");
                assert_eq!(seen[0].reconsume_times, 0);
            }
        }
        // The retries were stored in the group's retry topic (one queue), and the group's offsets,
        // committed when the consumer stopped, cover both topics: nothing is left to redeliver.
        assert_eq!(servers.max_offset(&retry_topic, 0).await, 5, "5 messages went through {retry_topic}");
        servers.wait_group_caught_up(group, topic, 2, Duration::from_secs(10)).await;
        servers.wait_group_caught_up(group, &retry_topic, 1, Duration::from_secs(10)).await;
        // The broker took the refused messages back itself (CONSUMER_SEND_MSG_BACK, once each),
        // so the client never had to re-send them: the only sends are the producer's 10.
        assert_wire(&servers, client.wire);
        let seen = servers.taps.as_ref().unwrap().1.seen();
        let count = |code: i32| seen.get(&(code, client.wire.code())).copied().unwrap_or(0);
        assert_eq!(count(request::CONSUMER_SEND_MSG_BACK), 5, "{seen:?}");
        assert_eq!(count(request::SEND_MESSAGE) + count(request::SEND_MESSAGE_V2), 10, "{seen:?}");
    }

    /// Issue 4, test 4: `subscribe(topic, "TagA")` delivers exactly the TagA messages; the group's offsets still
    /// move past the others.
    pub async fn tag_filter(client: Client) {
        let t = Timeline::start("tag_filter");
        let dir = tempfile::tempdir().unwrap();
        let servers = Servers::start_tapped(dir.path(), "");
        let ns = servers.namesrv_addr();
        let topic = "CompatTags";
        let group = "compat-tags";
        servers.create_topic(topic, 4).await;
        t.note("servers up, topic created");
        let mut producer = client.producer(&ns, "compat-producer-4").await;
        let mut sent = send_all(&producer, topic, "t", 300, tag3).await;
        // Each queue ends with a TagA message: the consumer's offset reaches the end of a queue
        // when it has consumed that last message, without waiting for an empty long poll.
        for q in 0..4 {
            let (body, s) = send_one_to_queue(&producer, topic, q, &format!("last-{q}"), "TagA").await;
            sent.insert(body, s);
        }
        producer.shutdown().await;
        t.note("304 sent");
        let want: BTreeMap<String, Sent> =
            sent.iter().filter(|(_, s)| s.tag == "TagA").map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(want.len(), 104);

        let rec = Recorder::default();
        let mut consumer = client.push_consumer(&ns, group, "consumer-4", topic, "TagA", rec.clone()).await;
        t.note("consumer started");
        rec.wait_for("the 104 TagA messages", Duration::from_secs(60), |g| g.len() >= 104).await;
        t.note("104 TagA received");
        // The consumer commits its offsets when it stops; once they reach the end of every queue,
        // every message was either delivered or filtered out before it stopped.
        consumer.shutdown().await;
        t.note("consumer shut down");
        servers.wait_group_caught_up(group, topic, 4, Duration::from_secs(10)).await;
        t.note("offsets caught up");
        let got = rec.snapshot();
        assert!(got.iter().all(|g| g.tag == "TagA"), "only TagA delivered");
        assert_exactly_once(&want, &got);
        assert_wire(&servers, client.wire);
    }
}
