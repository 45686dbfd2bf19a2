//! The driver: one DLedger node of one group, running [`Core`] over the remoting transport.
//!
//! - The node's peer port (its address in `dLegerPeers`) is a sub-server of the shared
//!   [`RemotingServer`] answering VOTE, HEART_BEAT, PUSH, LEADERSHIP_TRANSFER and METADATA
//!   (bodies as in [`super::wire`]; response frames carry code 200 and the JSON answer).
//! - The core and the log are owned by one thread of this node (`dledger-<group>-<selfId>`):
//!   every input (an RPC, an RPC's answer, an append, a 10 ms tick) is a message to it, so the
//!   core's actions, the disk writes they imply (mapped-file appends, truncations, the fsynced
//!   `currterm` before a vote is answered) never run on the transport's threads.
//! - Outgoing RPCs go through one bounded queue per peer; a full queue drops the message (Raft
//!   sends again), every call has a timeout.
//! - [`DLedgerServer::append`] appends as leader and resolves once a majority has the entry
//!   (committed), or fails with [`DLedgerError::NotLeader`] / [`DLedgerError::LeaderChanged`] /
//!   [`DLedgerError::Timeout`]. A leader that loses its role fails every waiting append at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::core::{Action, Core, CoreConfig, Envelope, LogView, Msg, Role};
use super::entry::BODY_OFFSET;
use super::store::{DLedgerLog, LogConfig, TermState};
use super::wire::{self, code, request, Base, PushEntryRequest, PushEntryResponse, WireEntry};
use crate::remoting::{
    ClientConfig, FnProcessor, ProcessorTable, RemotingClient, RemotingCommand, RemotingError, RemotingServer,
    SubServer,
};
use crate::store::error::StoreError;
use crate::store::replicated::ReplicaCleanup;

/// Errors of the DLedger layer.
#[derive(Debug, thiserror::Error)]
pub enum DLedgerError {
    /// The log could not be read or written.
    #[error("dledger store: {0}")]
    Store(#[from] StoreError),
    /// The peer port could not be served.
    #[error("dledger transport: {0}")]
    Remoting(#[from] RemotingError),
    /// A bad setting.
    #[error("dledger config: {0}")]
    Config(String),
    /// This node is not the leader (or is handing leadership over).
    #[error("not the DLedger leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<String>,
    },
    /// Leadership was lost before the entry was committed; it may or may not survive.
    #[error("leadership changed before entry {index} was committed")]
    LeaderChanged {
        /// The entry's index.
        index: i64,
    },
    /// No majority acknowledged in time (`maxWaitAckTimeMs`).
    #[error("entry {index} not acknowledged by a majority within {millis} ms")]
    Timeout {
        /// The entry's index.
        index: i64,
        /// The wait.
        millis: u64,
    },
    /// The node is shut down.
    #[error("the DLedger node is shut down")]
    Shutdown,
}

/// One `dLegerPeers` element: `n0-127.0.0.1:40911`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    /// Id (`n0`).
    pub id: String,
    /// `host:port` of its DLedger port.
    pub addr: String,
}

/// Parses `dLegerPeers` (`<id>-<host>:<port>` separated by `;`). Ids must be unique; every port
/// must parse.
pub fn parse_peers(s: &str) -> Result<Vec<PeerAddr>, String> {
    let mut out: Vec<PeerAddr> = Vec::new();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('-').ok_or_else(|| format!("peer {part:?} is not <id>-<host>:<port>"))?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("peer {part:?} has no port"))?;
        if id.is_empty() || host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("peer {part:?} is not <id>-<host>:<port>"));
        }
        if out.iter().any(|p| p.id == id) {
            return Err(format!("peer id {id} appears twice"));
        }
        out.push(PeerAddr { id: id.to_string(), addr: addr.to_string() });
    }
    if out.is_empty() {
        return Err("no peers".into());
    }
    Ok(out)
}

/// The number in a DLedger id (`n1` → 1), as `DLedgerRoleChangeHandler` uses it.
pub fn id_number(id: &str) -> Option<i64> {
    let digits: String = id.chars().skip_while(|c| !c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// How a DLedger broker registers for a role (`DLedgerRoleChangeHandler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// LEADER: `brokerRole = SYNC_MASTER`, `brokerId = 0` (once its store applied every committed
    /// entry).
    Master,
    /// FOLLOWER, or CANDIDATE: `brokerRole = SLAVE`, `brokerId` = the number in `dLegerSelfId` + 1.
    Slave {
        /// The brokerId to register with.
        broker_id: i64,
    },
}

/// The registration for `role` of member `self_id` (`n1` as a follower ⇒ SLAVE with brokerId 2,
/// Apache's "TO DO check" mapping), `None` for an id without a number.
pub fn registration_for(role: Role, self_id: &str) -> Option<Registration> {
    match role {
        Role::Leader => Some(Registration::Master),
        Role::Follower | Role::Candidate => id_number(self_id).map(|n| Registration::Slave { broker_id: n + 1 }),
    }
}

/// Settings of one node.
#[derive(Debug, Clone)]
pub struct DLedgerConfig {
    /// `dLegerGroup`.
    pub group: String,
    /// `dLegerSelfId`.
    pub self_id: String,
    /// `dLegerPeers`.
    pub peers: Vec<PeerAddr>,
    /// `storePathRootDir` (`storeBaseDir`).
    pub store_root: PathBuf,
    /// `storePathDLedgerCommitLog`.
    pub data_dir: Option<PathBuf>,
    /// `mappedFileSizeCommitLog`.
    pub data_file_size: u64,
    /// Index file size (DLedger: 32 * 5M).
    pub index_file_size: u64,
    /// `heartBeatTimeIntervalMs`.
    pub heartbeat_ms: u64,
    /// `maxHeartBeatLeak`.
    pub max_heartbeat_leak: u64,
    /// `minVoteIntervalMs`.
    pub min_vote_ms: u64,
    /// `maxVoteIntervalMs`.
    pub max_vote_ms: u64,
    /// `maxPushTimeOutMs`.
    pub push_timeout_ms: u64,
    /// `maxWaitAckTimeMs`.
    pub max_wait_ack_ms: u64,
    /// `preferredLeaderId`.
    pub preferred_leader: Option<String>,
    /// `enableBatchPush`.
    pub batch_push: bool,
    /// `maxBatchPushSize` (bytes).
    pub max_batch_bytes: u64,
}

impl DLedgerConfig {
    /// DLedger's defaults for `self_id` in `group`.
    pub fn new(group: &str, self_id: &str, peers: Vec<PeerAddr>, store_root: PathBuf) -> Self {
        DLedgerConfig {
            group: group.to_string(),
            self_id: self_id.to_string(),
            peers,
            store_root,
            data_dir: None,
            data_file_size: 1024 * 1024 * 1024,
            index_file_size: super::store::DEFAULT_INDEX_FILE_SIZE,
            heartbeat_ms: 2000,
            max_heartbeat_leak: 3,
            min_vote_ms: 300,
            max_vote_ms: 1000,
            push_timeout_ms: 1000,
            max_wait_ack_ms: 2500,
            preferred_leader: None,
            batch_push: true,
            max_batch_bytes: 64 * 1024,
        }
    }

    fn validate(&self) -> Result<(), DLedgerError> {
        if !self.peers.iter().any(|p| p.id == self.self_id) {
            return Err(DLedgerError::Config(format!("dLegerSelfId {} is not one of dLegerPeers", self.self_id)));
        }
        if let Some(p) = &self.preferred_leader {
            if !self.peers.iter().any(|x| &x.id == p) {
                return Err(DLedgerError::Config(format!("preferredLeaderId {p} is not one of dLegerPeers")));
            }
        }
        if self.min_vote_ms >= self.max_vote_ms || self.heartbeat_ms == 0 || self.max_heartbeat_leak == 0 {
            return Err(DLedgerError::Config("vote intervals or heartbeat settings are inconsistent".into()));
        }
        Ok(())
    }

    fn self_port(&self) -> Result<u16, DLedgerError> {
        let me = self.peers.iter().find(|p| p.id == self.self_id).map(|p| p.addr.as_str()).unwrap_or_default();
        me.rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .ok_or_else(|| DLedgerError::Config(format!("no port in {me}")))
    }
}

/// What a node is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Role.
    pub role: Role,
    /// Term.
    pub term: i64,
    /// Known leader.
    pub leader: Option<String>,
    /// Committed index.
    pub committed: i64,
    /// First index (moves with cleanup and a follower's restart at the leader's begin).
    pub begin_index: i64,
    /// Last index.
    pub end_index: i64,
}

/// Where an appended entry lies, once committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Log index.
    pub index: i64,
    /// Entry position; the body starts at `pos + 48`.
    pub pos: i64,
    /// Term.
    pub term: i64,
}

/// What this node sent as leader: APPEND pushes and the entries they carried (with batch push,
/// several entries to a PUSH).
#[derive(Debug, Default)]
pub struct PushStats {
    append_requests: std::sync::atomic::AtomicU64,
    entries: std::sync::atomic::AtomicU64,
}

impl PushStats {
    /// APPEND PUSH requests sent (single or batch), to every follower.
    pub fn append_requests(&self) -> u64 {
        self.append_requests.load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Entries those requests carried.
    pub fn entries(&self) -> u64 {
        self.entries.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn count(&self, msg: &Msg<WireEntry>) {
        let n = match msg {
            Msg::Push { kind: wire::PushType::Append, entry: Some(_), .. } => 1,
            Msg::PushBatch { entries, .. } => entries.len() as u64,
            _ => return,
        };
        self.append_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.entries.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Patches an entry's body once its position is known (DLedger's append hook).
pub type AppendHook = Box<dyn FnOnce(i64, &mut [u8]) + Send>;

enum Event {
    Rpc { env: Envelope<WireEntry>, reply: oneshot::Sender<Msg<WireEntry>> },
    Msg(Envelope<WireEntry>),
    Append { body: Bytes, hook: Option<AppendHook>, reply: oneshot::Sender<Result<Appended, DLedgerError>> },
    Read { index: i64, reply: oneshot::Sender<Option<(Appended, Bytes)>> },
    Clean { req: ReplicaCleanup, reply: std_mpsc::SyncSender<Result<Vec<PathBuf>, DLedgerError>> },
    Stop,
}

struct LogAdapter<'a>(&'a DLedgerLog);

impl LogView<WireEntry> for LogAdapter<'_> {
    fn last_index(&self) -> i64 {
        self.0.end_index()
    }
    fn last_term(&self) -> i64 {
        self.0.end_term()
    }
    fn begin_index(&self) -> i64 {
        self.0.begin_index()
    }
    fn term_at(&self, index: i64) -> Option<i64> {
        self.0.term_at(index)
    }
    fn entry(&self, index: i64) -> Option<WireEntry> {
        let (m, body) = self.0.get(index)?;
        Some(WireEntry {
            body,
            body_crc: 0,
            chain_crc: 0,
            channel: 0,
            index: m.index,
            magic: super::entry::MAGIC,
            pos: m.pos,
            size: m.size,
            term: m.term,
        })
    }
    fn entry_size(&self, index: i64) -> u64 {
        self.0.meta(index).map_or(0, |m| u64::try_from(m.size).unwrap_or(0))
    }
}

/// A running DLedger node.
pub struct DLedgerServer {
    cfg: DLedgerConfig,
    events: std_mpsc::SyncSender<Event>,
    status: watch::Receiver<Status>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    thread: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    sub: parking_lot::Mutex<Option<SubServer>>,
    client: RemotingClient,
    data: Arc<crate::store::mapped_file_queue::MappedFileQueue>,
    stats: Arc<PushStats>,
}

/// Bound of the event queue of a node's thread.
const EVENT_QUEUE: usize = 16 * 1024;
/// Bound of each peer's outgoing queue.
const PEER_QUEUE: usize = 1024;
/// RPCs in flight per peer.
const PEER_INFLIGHT: usize = 64;
/// Events a node's thread takes at once before pushing what they appended.
const DRAIN: usize = 512;
/// Tick of the node's thread.
const TICK: Duration = Duration::from_millis(10);

impl DLedgerServer {
    /// Opens the log, binds the peer port on `transport` (on `exec` if given) and starts the node.
    pub async fn start(
        cfg: DLedgerConfig,
        transport: &RemotingServer,
        exec: Option<tokio::runtime::Handle>,
    ) -> Result<Arc<DLedgerServer>, DLedgerError> {
        cfg.validate()?;
        let port = cfg.self_port()?;
        let mut lc = LogConfig::new(&cfg.store_root, &cfg.self_id, cfg.data_dir.clone(), cfg.data_file_size);
        lc.index_file_size = cfg.index_file_size;
        let log = tokio::task::spawn_blocking(move || DLedgerLog::open(lc))
            .await
            .map_err(|e| DLedgerError::Config(format!("opening the log panicked: {e}")))??;
        let ts = log.load_term()?;
        let data = log.data_queue().clone();
        let mut cc = CoreConfig::new(&cfg.self_id, &cfg.peers.iter().map(|p| p.id.clone()).collect::<Vec<_>>());
        cc.heartbeat_ms = cfg.heartbeat_ms;
        cc.max_heartbeat_leak = cfg.max_heartbeat_leak;
        cc.min_vote_ms = cfg.min_vote_ms;
        cc.max_vote_ms = cfg.max_vote_ms;
        cc.push_timeout_ms = cfg.push_timeout_ms;
        cc.preferred_leader = cfg.preferred_leader.clone();
        cc.batch_push = cfg.batch_push;
        cc.max_batch_bytes = cfg.max_batch_bytes.max(1);
        cc.seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let epoch = Instant::now();
        let core = Core::new(cc, ts.term, ts.vote_for.clone(), log.committed_index(), 0);
        let (status_tx, status_rx) = watch::channel(Status {
            role: Role::Candidate,
            term: ts.term,
            leader: None,
            committed: log.committed_index(),
            begin_index: log.begin_index(),
            end_index: log.end_index(),
        });
        let (ev_tx, ev_rx) = std_mpsc::sync_channel(EVENT_QUEUE);
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let client = RemotingClient::new(ClientConfig {
            connect_timeout: Duration::from_millis(cfg.push_timeout_ms.max(100)),
            ..ClientConfig::default()
        });
        // One outgoing queue per peer.
        let stats = Arc::new(PushStats::default());
        let mut outs = BTreeMap::new();
        for p in cfg.peers.iter().filter(|p| p.id != cfg.self_id) {
            let (tx, rx) = mpsc::channel::<Envelope<WireEntry>>(PEER_QUEUE);
            outs.insert(p.id.clone(), tx);
            let sender = PeerSender {
                group: cfg.group.clone(),
                addr: p.addr.clone(),
                client: client.clone(),
                events: ev_tx.clone(),
                timeout: Duration::from_millis(cfg.push_timeout_ms.max(50)),
                tasks: tasks.clone(),
                cancel: cancel.clone(),
                stats: stats.clone(),
            };
            tasks.spawn(sender.run(rx));
        }
        let node = NodeThread {
            group: cfg.group.clone(),
            core,
            log,
            term_state: ts,
            epoch,
            outs,
            waiters: BTreeMap::new(),
            status: status_tx,
            max_wait: Duration::from_millis(cfg.max_wait_ack_ms),
            last_checkpoint: Instant::now(),
            unpushed: false,
        };
        let name = format!("dledger-{}-{}", cfg.group, cfg.self_id);
        let span = tracing::Span::current();
        let thread = std::thread::Builder::new()
            .name(name.chars().take(15).collect())
            .spawn(move || {
                let _e = span.enter();
                node.run(ev_rx)
            })
            .map_err(|e| DLedgerError::Config(format!("cannot start the node thread: {e}")))?;
        let server = Arc::new(DLedgerServer {
            cfg,
            events: ev_tx,
            status: status_rx,
            cancel,
            tasks,
            thread: parking_lot::Mutex::new(Some(thread)),
            sub: parking_lot::Mutex::new(None),
            client,
            data,
            stats,
        });
        let mut table = ProcessorTable::new();
        let codes = [
            request::VOTE,
            request::HEART_BEAT,
            request::PUSH,
            request::LEADERSHIP_TRANSFER,
            request::METADATA,
            request::APPEND,
            request::GET,
            request::PULL,
        ];
        let handler = Arc::new(RpcHandler {
            group: server.cfg.group.clone(),
            self_id: server.cfg.self_id.clone(),
            peers: server.cfg.peers.clone(),
            events: server.events.clone(),
            status: server.status.clone(),
        });
        table.register_all(
            &codes,
            Arc::new(FnProcessor(move |_conn, req: RemotingCommand| {
                let h = handler.clone();
                async move { Some(h.handle(req).await) }
            })),
        );
        match transport.bind_on(port, table, None, exec).await {
            Ok(sub) => *server.sub.lock() = Some(sub),
            Err(e) => {
                server.shutdown().await;
                return Err(e.into());
            }
        }
        info!(group = %server.cfg.group, id = %server.cfg.self_id, port, "dledger node started");
        Ok(server)
    }

    /// The node's id.
    pub fn self_id(&self) -> &str {
        &self.cfg.self_id
    }
    /// The node's settings.
    pub fn config(&self) -> &DLedgerConfig {
        &self.cfg
    }
    /// Current status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }
    /// The committed index now (no allocation; the dispatcher asks often).
    pub fn committed_index(&self) -> i64 {
        self.status.borrow().committed
    }
    /// Watches the status (role changes, commits).
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// The APPEND pushes this node sent as leader (how many entries travel to a PUSH).
    pub fn push_stats(&self) -> &PushStats {
        &self.stats
    }

    /// The log's data files (entry bodies are read there; the node writes them).
    pub fn data_files(&self) -> &Arc<crate::store::mapped_file_queue::MappedFileQueue> {
        &self.data
    }

    /// Queues `body` for appending as leader, in call order, and returns the receiver of the
    /// outcome (resolved once a majority has the entry, or failed; the node fails it after
    /// `maxWaitAckTimeMs`). Refused at once when this node is not the leader.
    pub fn submit(
        &self,
        body: Bytes,
        hook: Option<AppendHook>,
    ) -> Result<oneshot::Receiver<Result<Appended, DLedgerError>>, DLedgerError> {
        {
            let st = self.status.borrow();
            if st.role != Role::Leader {
                return Err(DLedgerError::NotLeader { leader: st.leader.clone() });
            }
        }
        let (tx, rx) = oneshot::channel();
        self.events.try_send(Event::Append { body, hook, reply: tx }).map_err(|_| DLedgerError::Shutdown)?;
        Ok(rx)
    }

    /// The longest an appended entry waits for a majority (`maxWaitAckTimeMs`).
    pub fn max_wait_ack(&self) -> Duration {
        Duration::from_millis(self.cfg.max_wait_ack_ms)
    }

    /// Appends `body` as leader and waits until a majority has it. `hook` may patch the body once
    /// its position is known.
    pub async fn append(&self, body: Bytes, hook: Option<AppendHook>) -> Result<Appended, DLedgerError> {
        let (tx, rx) = oneshot::channel();
        self.events.try_send(Event::Append { body, hook, reply: tx }).map_err(|_| DLedgerError::Shutdown)?;
        let wait = Duration::from_millis(self.cfg.max_wait_ack_ms) + Duration::from_millis(500);
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(DLedgerError::Shutdown),
            Err(_) => Err(DLedgerError::Timeout { index: -1, millis: wait.as_millis() as u64 }),
        }
    }

    /// Reads the entry at `index` (where it lies and its body).
    pub async fn read(&self, index: i64) -> Result<Option<(Appended, Bytes)>, DLedgerError> {
        let (tx, rx) = oneshot::channel();
        self.events.try_send(Event::Read { index, reply: tx }).map_err(|_| DLedgerError::Shutdown)?;
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .map_err(|_| DLedgerError::Timeout { index, millis: 5000 })?
            .map_err(|_| DLedgerError::Shutdown)
    }

    /// Deletes leading data files as `req` allows (DLedger's clean-space run): whole files
    /// below both the committed entries and `req.below`, never the last; the begin index moves
    /// to the new first entry and the index files below it go. Blocking (the node thread does
    /// it): call from a blocking context. Waits at most 10 s.
    pub fn delete_files(&self, req: ReplicaCleanup) -> Result<Vec<PathBuf>, DLedgerError> {
        let (tx, rx) = std_mpsc::sync_channel(1);
        self.events.try_send(Event::Clean { req, reply: tx }).map_err(|_| DLedgerError::Shutdown)?;
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(r) => r,
            Err(std_mpsc::RecvTimeoutError::Timeout) => Err(DLedgerError::Timeout { index: -1, millis: 10_000 }),
            Err(std_mpsc::RecvTimeoutError::Disconnected) => Err(DLedgerError::Shutdown),
        }
    }

    /// Stops: closes the peer port, stops the node thread (flushing the log and writing its
    /// checkpoint), ends every task and closes outbound connections.
    pub async fn shutdown(&self) {
        let sub = self.sub.lock().take();
        if let Some(sub) = sub {
            sub.close().await;
        }
        self.cancel.cancel();
        let _ = self.events.try_send(Event::Stop);
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            if tokio::task::spawn_blocking(move || t.join()).await.is_err() {
                warn!("dledger node thread panicked");
            }
        }
        self.tasks.close();
        self.tasks.wait().await;
        self.client.shutdown().await;
    }
}

struct PeerSender {
    group: String,
    addr: String,
    client: RemotingClient,
    events: std_mpsc::SyncSender<Event>,
    timeout: Duration,
    tasks: TaskTracker,
    cancel: CancellationToken,
    stats: Arc<PushStats>,
}

impl PeerSender {
    async fn run(self, mut rx: mpsc::Receiver<Envelope<WireEntry>>) {
        let permits = Arc::new(tokio::sync::Semaphore::new(PEER_INFLIGHT));
        loop {
            let env = tokio::select! {
                _ = self.cancel.cancelled() => return,
                e = rx.recv() => match e { Some(e) => e, None => return },
            };
            let permit = tokio::select! {
                _ = self.cancel.cancelled() => return,
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            };
            let (client, addr, group, events, timeout) =
                (self.client.clone(), self.addr.clone(), self.group.clone(), self.events.clone(), self.timeout);
            let cancel = self.cancel.clone();
            self.stats.count(&env.msg);
            self.tasks.spawn(async move {
                let _permit = permit;
                let Some((req, answer)) = to_request(&group, &env) else { return };
                let resp = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = client.invoke(&addr, req, timeout) => r,
                };
                match resp {
                    Ok(resp) => {
                        if let Some(msg) = answer(&resp.body) {
                            let back = Envelope { from: env.to.clone(), to: env.from.clone(), msg };
                            let _ = events.try_send(Event::Msg(back));
                        }
                    }
                    Err(e) => debug!(peer = %env.to, error = %e, "dledger rpc failed"),
                }
            });
        }
    }
}

type Answer = Box<dyn FnOnce(&[u8]) -> Option<Msg<WireEntry>> + Send>;

/// The remoting request for a core message, and how to read its answer.
fn to_request(group: &str, env: &Envelope<WireEntry>) -> Option<(RemotingCommand, Answer)> {
    let base = |leader: Option<&str>, term: i64| Base::new(group, &env.from, &env.to, leader, term);
    match &env.msg {
        Msg::Vote { term, last_index, last_term } => {
            let req_term = *term;
            let body = wire::VoteRequest {
                base: base(Some(&env.from), *term),
                ledger_end_index: *last_index,
                ledger_end_term: *last_term,
            };
            let mut cmd = RemotingCommand::request(request::VOTE);
            cmd.body = wire::encode(&body);
            let answer: Answer = Box::new(move |b: &[u8]| {
                let r: wire::VoteResponse = wire::decode("VoteResponse", b).ok()?;
                Some(Msg::VoteResp { req_term, term: r.base.term, result: r.vote_result })
            });
            Some((cmd, answer))
        }
        Msg::HeartBeat { term } => {
            let req_term = *term;
            let mut cmd = RemotingCommand::request(request::HEART_BEAT);
            cmd.body = wire::encode(&wire::HeartBeat { base: base(Some(&env.from), *term) });
            let answer: Answer = Box::new(move |b: &[u8]| {
                let r: wire::HeartBeat = wire::decode("HeartBeatResponse", b).ok()?;
                Some(Msg::HeartBeatResp { req_term, term: r.base.term, code: r.base.code })
            });
            Some((cmd, answer))
        }
        Msg::Push { term, kind, index, entry_term, entry, commit } => {
            let (req_term, kind, index) = (*term, *kind, *index);
            let count = i64::from(entry.is_some());
            let mut e = entry.clone();
            if e.is_none() && index >= 0 {
                // COMPARE carries the entry's identity (DLedger sends the whole entry).
                e = Some(WireEntry { index, term: *entry_term, magic: super::entry::MAGIC, ..WireEntry::default() });
            }
            let body = PushEntryRequest::new(base(Some(&env.from), *term), kind, *commit, e);
            let mut cmd = RemotingCommand::request(request::PUSH);
            cmd.body = wire::encode(&body);
            Some((cmd, push_answer(req_term, kind, index, count)))
        }
        Msg::PushBatch { term, first, entries, commit } => {
            let count = entries.len() as i64;
            let body = PushEntryRequest::batch(
                base(Some(&env.from), *term),
                *commit,
                entries.iter().map(|(_, e)| e.clone()).collect(),
            );
            let mut cmd = RemotingCommand::request(request::PUSH);
            cmd.body = wire::encode(&body);
            Some((cmd, push_answer(*term, wire::PushType::Append, *first, count)))
        }
        Msg::TakeLeadership { term, ledger_index } => {
            let req_term = *term;
            let body = wire::LeadershipTransferRequest {
                base: base(Some(&env.from), *term),
                transfer_id: Some(env.from.clone()),
                transferee_id: Some(env.to.clone()),
                take_leadership_ledger_index: *ledger_index,
            };
            let mut cmd = RemotingCommand::request(request::LEADERSHIP_TRANSFER);
            cmd.body = wire::encode(&body);
            let answer: Answer = Box::new(move |b: &[u8]| {
                let r: wire::HeartBeat = wire::decode("LeadershipTransferResponse", b).ok()?;
                Some(Msg::TakeLeadershipResp { req_term, code: r.base.code })
            });
            Some((cmd, answer))
        }
        _ => None,
    }
}

/// How to read a PUSH answer: what the request carried (`count` entries from `index`) is known
/// here; the answer gives the code, the follower's term and its last index.
fn push_answer(req_term: i64, kind: wire::PushType, index: i64, count: i64) -> Answer {
    Box::new(move |b: &[u8]| {
        let r: PushEntryResponse = wire::decode("PushEntryResponse", b).ok()?;
        Some(Msg::PushResp {
            req_term,
            kind,
            index,
            count,
            term: r.base.term,
            code: r.base.code,
            end_index: r.end_index,
        })
    })
}

struct RpcHandler {
    group: String,
    self_id: String,
    peers: Vec<PeerAddr>,
    events: std_mpsc::SyncSender<Event>,
    status: watch::Receiver<Status>,
}

impl RpcHandler {
    fn reply(&self, req: &RemotingCommand, body: Bytes) -> RemotingCommand {
        let mut r = RemotingCommand::response_to(req, code::SUCCESS, None);
        r.body = body;
        r
    }

    fn base_err(&self, req: &RemotingCommand, base: &Base, c: i32) -> RemotingCommand {
        let term = self.status.borrow().term;
        self.reply(req, wire::encode(&wire::HeartBeat { base: base.reply(c, term) }))
    }

    fn check(&self, base: &Base) -> Option<i32> {
        if base.group.as_deref() != Some(self.group.as_str()) {
            return Some(code::UNKNOWN_GROUP);
        }
        if base.remote_id.as_deref().is_some_and(|r| r != self.self_id) {
            return Some(code::UNKNOWN_MEMBER);
        }
        None
    }

    async fn ask(&self, env: Envelope<WireEntry>) -> Option<Msg<WireEntry>> {
        let (tx, rx) = oneshot::channel();
        self.events.try_send(Event::Rpc { env, reply: tx }).ok()?;
        tokio::time::timeout(Duration::from_secs(2), rx).await.ok()?.ok()
    }

    async fn handle(&self, req: RemotingCommand) -> RemotingCommand {
        let bad = |what: &'static str, e: wire::WireError| {
            let mut r = RemotingCommand::error(&req, code::UNEXPECTED_ARGUMENT, e.to_string());
            r.body =
                wire::encode(&wire::HeartBeat { base: Base { code: code::UNEXPECTED_ARGUMENT, ..Base::default() } });
            debug!(what, "bad dledger request");
            r
        };
        let from_of = |b: &Base| b.local_id.clone().or_else(|| b.leader_id.clone()).unwrap_or_default();
        match req.code {
            request::VOTE => {
                let v: wire::VoteRequest = match wire::decode("VoteRequest", &req.body) {
                    Ok(v) => v,
                    Err(e) => return bad("vote", e),
                };
                if let Some(c) = self.check(&v.base) {
                    return self.base_err(&req, &v.base, c);
                }
                let from = v.base.leader_id.clone().unwrap_or_else(|| from_of(&v.base));
                let env = Envelope {
                    from,
                    to: self.self_id.clone(),
                    msg: Msg::Vote { term: v.base.term, last_index: v.ledger_end_index, last_term: v.ledger_end_term },
                };
                let (term, result) = match self.ask(env).await {
                    Some(Msg::VoteResp { term, result, .. }) => (term, result),
                    _ => (self.status.borrow().term, wire::VoteResult::Unknown),
                };
                let resp = wire::VoteResponse { base: v.base.reply(code::SUCCESS, term), vote_result: result };
                self.reply(&req, wire::encode(&resp))
            }
            request::HEART_BEAT => {
                let h: wire::HeartBeat = match wire::decode("HeartBeatRequest", &req.body) {
                    Ok(v) => v,
                    Err(e) => return bad("heartbeat", e),
                };
                if let Some(c) = self.check(&h.base) {
                    return self.base_err(&req, &h.base, c);
                }
                let from = h.base.leader_id.clone().unwrap_or_else(|| from_of(&h.base));
                let env = Envelope { from, to: self.self_id.clone(), msg: Msg::HeartBeat { term: h.base.term } };
                let (term, c) = match self.ask(env).await {
                    Some(Msg::HeartBeatResp { term, code, .. }) => (term, code),
                    _ => (self.status.borrow().term, code::INTERNAL_ERROR),
                };
                self.reply(&req, wire::encode(&wire::HeartBeat { base: h.base.reply(c, term) }))
            }
            request::PUSH => {
                let p: PushEntryRequest = match wire::decode("PushEntryRequest", &req.body) {
                    Ok(v) => v,
                    Err(e) => return bad("push", e),
                };
                if let Some(c) = self.check(&p.base) {
                    return self.base_err(&req, &p.base, c);
                }
                let from = p.base.leader_id.clone().unwrap_or_else(|| from_of(&p.base));
                let (index, count, msg) = if !p.batch_entry.is_empty() {
                    // A batch push (`enableBatchPush`): APPEND only, consecutive entries.
                    let batch = if p.kind == wire::PushType::Append { p.batch_entries() } else { None };
                    let Some((first, entries)) = batch else {
                        return self.base_err(&req, &p.base, code::UNEXPECTED_ARGUMENT);
                    };
                    let count = entries.len() as i32;
                    (first, count, Msg::PushBatch { term: p.base.term, first, entries, commit: p.commit_index })
                } else {
                    let (index, entry_term) = p.entry.as_ref().map(|e| (e.index, e.term)).unwrap_or((-1, -1));
                    let entry = match p.kind {
                        wire::PushType::Append | wire::PushType::Truncate => p.entry.clone(),
                        _ => None,
                    };
                    let count = i32::from(p.entry.is_some());
                    let msg =
                        Msg::Push { term: p.base.term, kind: p.kind, index, entry_term, entry, commit: p.commit_index };
                    (index, count, msg)
                };
                let env = Envelope { from, to: self.self_id.clone(), msg };
                let (term, c, end) = match self.ask(env).await {
                    Some(Msg::PushResp { term, code, end_index, .. }) => (term, code, end_index),
                    _ => (self.status.borrow().term, code::INTERNAL_ERROR, -1),
                };
                // As DLedger's `buildResponse`: the first index and the count of the request, and
                // (as its follower fills them in) this log's begin and end: DLedger's leader compares
                // with the begin index to find a follower it must restart at its own begin.
                let resp = PushEntryResponse {
                    base: p.base.reply(c, term),
                    index: (p.kind != wire::PushType::Commit).then_some(index),
                    begin_index: self.status.borrow().begin_index,
                    end_index: end,
                    count,
                };
                self.reply(&req, wire::encode(&resp))
            }
            request::LEADERSHIP_TRANSFER => {
                let t: wire::LeadershipTransferRequest = match wire::decode("LeadershipTransferRequest", &req.body) {
                    Ok(v) => v,
                    Err(e) => return bad("leadership transfer", e),
                };
                if let Some(c) = self.check(&t.base) {
                    return self.base_err(&req, &t.base, c);
                }
                if t.transferee_id.as_deref() != Some(self.self_id.as_str()) {
                    // Admin-initiated transfers (to the leader) are not supported yet.
                    return self.base_err(&req, &t.base, code::UNSUPPORTED);
                }
                let from = t.transfer_id.clone().unwrap_or_else(|| from_of(&t.base));
                let env = Envelope {
                    from,
                    to: self.self_id.clone(),
                    msg: Msg::TakeLeadership { term: t.base.term, ledger_index: t.take_leadership_ledger_index },
                };
                let c = match self.ask(env).await {
                    Some(Msg::TakeLeadershipResp { code, .. }) => code,
                    _ => code::INTERNAL_ERROR,
                };
                let term = self.status.borrow().term;
                self.reply(&req, wire::encode(&wire::HeartBeat { base: t.base.reply(c, term) }))
            }
            request::METADATA => {
                let m: wire::HeartBeat = wire::decode("MetadataRequest", &req.body).unwrap_or_default();
                let st = self.status.borrow().clone();
                let resp = wire::MetadataResponse {
                    base: Base { leader_id: st.leader.clone(), ..m.base.reply(code::SUCCESS, st.term) },
                    peers: self.peers.iter().map(|p| (p.id.clone(), p.addr.clone())).collect(),
                };
                self.reply(&req, wire::encode(&resp))
            }
            _ => {
                let base = wire::decode::<wire::HeartBeat>("request", &req.body).map(|h| h.base).unwrap_or_default();
                self.base_err(&req, &base, code::UNSUPPORTED)
            }
        }
    }
}

struct Waiter {
    appended: Appended,
    deadline: Instant,
    reply: oneshot::Sender<Result<Appended, DLedgerError>>,
}

struct NodeThread {
    group: String,
    core: Core,
    log: DLedgerLog,
    term_state: TermState,
    epoch: Instant,
    outs: BTreeMap<String, mpsc::Sender<Envelope<WireEntry>>>,
    waiters: BTreeMap<i64, Waiter>,
    status: watch::Sender<Status>,
    max_wait: Duration,
    last_checkpoint: Instant,
    /// Entries were appended as leader and not yet handed to the core.
    unpushed: bool,
}

impl NodeThread {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn run(mut self, rx: std_mpsc::Receiver<Event>) {
        let mut next_tick = Instant::now();
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Event::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(ev) => {
                    self.on_event(ev);
                    // Take what else is queued (bounded) before pushing: appends queued together
                    // travel to the followers together (one batch push each with enableBatchPush).
                    let mut stop = false;
                    for _ in 0..DRAIN {
                        match rx.try_recv() {
                            Ok(Event::Stop) | Err(std_mpsc::TryRecvError::Disconnected) => {
                                stop = true;
                                break;
                            }
                            Ok(ev) => self.on_event(ev),
                            Err(std_mpsc::TryRecvError::Empty) => break,
                        }
                    }
                    self.push_local_appends();
                    if stop {
                        break;
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + TICK;
                let now = self.now();
                let acts = self.core.tick(now, &LogAdapter(&self.log));
                self.apply(acts, None);
                self.expire_waiters();
                if self.last_checkpoint.elapsed() >= Duration::from_secs(1) {
                    self.last_checkpoint = Instant::now();
                    if let Err(e) = self.log.flush() {
                        warn!(error = %e, "dledger flush failed");
                    }
                }
            }
        }
        for (_, w) in std::mem::take(&mut self.waiters) {
            let _ = w.reply.send(Err(DLedgerError::Shutdown));
        }
        if let Err(e) = self.log.flush() {
            warn!(error = %e, "dledger flush at shutdown failed");
        }
        info!(group = %self.group, "dledger node stopped");
    }

    fn on_event(&mut self, ev: Event) {
        let now = self.now();
        match ev {
            Event::Rpc { env, reply } => {
                let from = env.from.clone();
                let acts = self.core.step(now, env, &LogAdapter(&self.log));
                self.apply(acts, Some((from, reply)));
            }
            Event::Msg(env) => {
                let acts = self.core.step(now, env, &LogAdapter(&self.log));
                self.apply(acts, None);
            }
            Event::Append { body, hook, reply } => {
                if !self.core.can_append() {
                    let leader = self.core.leader().filter(|l| *l != self.core.self_id()).map(str::to_string);
                    let _ = reply.send(Err(DLedgerError::NotLeader { leader }));
                    return;
                }
                let term = self.core.term();
                let r = match hook {
                    Some(h) => self.log.append(term, &body, h),
                    None => self.log.append(term, &body, |_, _| {}),
                };
                match r {
                    Ok(m) => {
                        let appended = Appended { index: m.index, pos: m.pos, term: m.term };
                        self.waiters
                            .insert(m.index, Waiter { appended, deadline: Instant::now() + self.max_wait, reply });
                        // Replicated once the queued events are taken (`push_local_appends`).
                        self.unpushed = true;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Event::Read { index, reply } => {
                let r = self.log.get(index).map(|(m, b)| (Appended { index: m.index, pos: m.pos, term: m.term }, b));
                let _ = reply.send(r);
            }
            Event::Clean { req, reply } => {
                let r = self.log.delete_leading_files(req.max, req.below, |f| {
                    req.at_once || f.last_modified_ms().is_some_and(|m| m.saturating_add(req.reserved_ms) <= req.now_ms)
                });
                if let Ok(files) = &r {
                    if !files.is_empty() {
                        info!(
                            group = %self.group,
                            files = files.len(),
                            begin_index = self.log.begin_index(),
                            min_offset = self.log.data_queue().min_offset(),
                            "dledger data files deleted"
                        );
                    }
                }
                let _ = reply.send(r.map_err(DLedgerError::from));
            }
            Event::Stop => {}
        }
    }

    /// Tells the core about the entries appended since the last call: it pushes them.
    fn push_local_appends(&mut self) {
        if std::mem::take(&mut self.unpushed) {
            let acts = self.core.on_local_append(self.now(), &LogAdapter(&self.log));
            self.apply(acts, None);
        }
    }

    fn apply(&mut self, acts: Vec<Action<WireEntry>>, mut rpc: Option<(String, oneshot::Sender<Msg<WireEntry>>)>) {
        for a in acts {
            match a {
                Action::PersistTerm { term, vote_for } => {
                    self.term_state = TermState { term, vote_for };
                    if let Err(e) = self.log.persist_term(&self.term_state) {
                        // Without a durable vote we must not answer: drop the rest.
                        warn!(error = %e, "cannot persist currterm; dropping the answer");
                        return;
                    }
                }
                Action::Truncate { from } => {
                    if let Err(e) = self.log.truncate_from(from) {
                        warn!(error = %e, from, "dledger truncate failed");
                        self.core.log_write_failed();
                        return;
                    }
                }
                Action::Reset { index, term, entry } => {
                    let (old_begin, old_end) = (self.log.begin_index(), self.log.end_index());
                    match self.log.reset_to(index, term, entry.pos, &entry.body) {
                        Ok(_) => warn!(
                            group = %self.group,
                            old_begin_index = old_begin,
                            old_end_index = old_end,
                            begin_index = index,
                            pos = entry.pos,
                            "this follower's log could not reach the leader's first entry (the leader deleted the \
                             files it lacked): dropped the local log, restarted at the leader's begin index"
                        ),
                        Err(e) => {
                            // The answer (SUCCESS) is dropped: the leader asks again.
                            warn!(error = %e, index, pos = entry.pos, "dledger log restart at the leader's begin failed");
                            self.core.log_write_failed();
                            return;
                        }
                    }
                }
                Action::Append { index, term, entry } => {
                    if let Err(e) = self.log.append_replica(index, term, entry.pos, &entry.body) {
                        warn!(error = %e, index, "dledger follower append failed");
                        self.core.log_write_failed();
                        return;
                    }
                }
                Action::AppendNoop => {
                    let term = self.core.term();
                    match self.log.append(term, &[], |_, _| {}) {
                        Ok(_) => {
                            let more = self.core.on_local_append(self.now(), &LogAdapter(&self.log));
                            self.apply(more, None);
                        }
                        Err(e) => warn!(error = %e, "dledger no-op append failed"),
                    }
                }
                Action::Commit { index } => {
                    self.log.set_committed(index);
                    // Status first: whoever an acknowledgement wakes sees the commit in it.
                    self.publish();
                    let done: Vec<i64> = self.waiters.range(..=index).map(|(k, _)| *k).collect();
                    for k in done {
                        if let Some(w) = self.waiters.remove(&k) {
                            let _ = w.reply.send(Ok(w.appended));
                        }
                    }
                }
                Action::Role { role, term, leader } => {
                    info!(group = %self.group, ?role, term, leader = ?leader, "dledger role");
                    if role != Role::Leader {
                        for (k, w) in std::mem::take(&mut self.waiters) {
                            let _ = w.reply.send(Err(DLedgerError::LeaderChanged { index: k }));
                        }
                    }
                }
                Action::Send(env) => {
                    let is_answer = matches!(
                        env.msg,
                        Msg::VoteResp { .. }
                            | Msg::HeartBeatResp { .. }
                            | Msg::PushResp { .. }
                            | Msg::TakeLeadershipResp { .. }
                    );
                    if is_answer {
                        if let Some((from, reply)) = rpc.take() {
                            if from == env.to {
                                let _ = reply.send(env.msg);
                                continue;
                            }
                            rpc = Some((from, reply));
                        }
                        continue;
                    }
                    if let Some(tx) = self.outs.get(&env.to) {
                        // A full queue drops the message: the core sends again.
                        let _ = tx.try_send(env);
                    }
                }
            }
        }
        self.publish();
    }

    fn expire_waiters(&mut self) {
        let now = Instant::now();
        let late: Vec<i64> = self.waiters.iter().filter(|(_, w)| w.deadline <= now).map(|(k, _)| *k).collect();
        for k in late {
            if let Some(w) = self.waiters.remove(&k) {
                let millis = self.max_wait.as_millis() as u64;
                let _ = w.reply.send(Err(DLedgerError::Timeout { index: k, millis }));
            }
        }
    }

    fn publish(&self) {
        let st = Status {
            role: self.core.role(),
            term: self.core.term(),
            leader: self.core.leader().map(str::to_string),
            committed: self.log.committed_index(),
            begin_index: self.log.begin_index(),
            end_index: self.log.end_index(),
        };
        self.status.send_if_modified(|s| {
            if *s != st {
                *s = st;
                true
            } else {
                false
            }
        });
    }
}

/// Where a record's PHYSICALOFFSET lands: the entry's body start.
pub fn body_offset(pos: i64) -> i64 {
    pos + BODY_OFFSET as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_as_rocketmq_writes_them() {
        let p = parse_peers("n0-127.0.0.1:40911;n1-127.0.0.1:40912;n2-127.0.0.1:40913").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1], PeerAddr { id: "n1".into(), addr: "127.0.0.1:40912".into() });
        assert!(parse_peers("n0-127.0.0.1").is_err());
        assert!(parse_peers("n0-127.0.0.1:1;n0-127.0.0.1:2").is_err());
        assert!(parse_peers("").is_err());
        assert!(parse_peers("n0-h:0").is_err());
        assert_eq!(id_number("n12"), Some(12));
        assert_eq!(id_number("x"), None);
    }

    #[test]
    fn roles_map_to_broker_ids_as_apache() {
        assert_eq!(registration_for(Role::Leader, "n2"), Some(Registration::Master));
        assert_eq!(registration_for(Role::Follower, "n0"), Some(Registration::Slave { broker_id: 1 }));
        assert_eq!(registration_for(Role::Candidate, "n1"), Some(Registration::Slave { broker_id: 2 }));
        assert_eq!(registration_for(Role::Follower, "x"), None);
    }
}
