//! The shared transport (RIP-31 "transport layer sharing", spec: container.md §5).
//!
//! One [`RemotingServer`] owns the accept loops and connection tasks of every port it serves. Each port
//! is a [`SubServer`] with its own processor table: a request is dispatched by the local port it arrived
//! on. Closing a sub-server frees its port and closes its connections without touching the others.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::{FutureExt, SinkExt};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::codec::FramedWrite;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use super::codec::{decode_frame, RemotingCodec, DEFAULT_MAX_FRAME_LENGTH};
use super::command::RemotingCommand;
use super::connection::ConnInner;
pub use super::connection::ConnectionHandle;
pub use super::processor::{BoxFuture, ChannelEventListener, FnProcessor, ProcessorTable, RequestProcessor};
use super::tls::{Negotiated, Refusal, TlsServer};
use super::RemotingError;
use crate::protocol::codes::response;

/// Default of [`ServerConfig::max_connections_per_address`] (`serverMaxConnectionsPerAddress`).
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 1000;
/// Default of [`ServerConfig::channel_max_idle`] (Apache's `serverChannelMaxIdleTimeSeconds`, 120 s).
pub const DEFAULT_CHANNEL_MAX_IDLE: Duration = Duration::from_secs(120);
/// Default of [`ServerConfig::frame_read_timeout`] (`serverFrameReadTimeoutMillis`): 30 s, ten times
/// a client's usual 3 s send timeout, and enough for a 16 MiB frame at about 0.5 MiB/s.
pub const DEFAULT_FRAME_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Refused connections are logged at most once per this period (with a count of the others).
const REFUSAL_LOG_PERIOD_MS: u64 = 10_000;
/// Free space kept in a connection's read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;

/// Limits and addresses of the shared server (Apache's `NettyServerConfig`, as far as it applies).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address the ports bind on (`bindAddress`, default 0.0.0.0).
    pub bind_address: IpAddr,
    /// Most connections open at once across all ports (`serverMaxConnections`). A connection past the
    /// cap is accepted and closed at once (with a rate-limited warning), never left unserved.
    pub max_connections: usize,
    /// Most connections open at once from one IP address across all ports
    /// (`serverMaxConnectionsPerAddress`; 0 = no limit), so one client cannot take every slot. Past it,
    /// a connection is accepted and closed at once.
    pub max_connections_per_address: usize,
    /// A connection that read no frame and wrote nothing for this long, with no request of its own in
    /// flight, is closed (`serverChannelMaxIdleTimeSeconds`, Apache's ALL_IDLE; zero = never). A held
    /// long poll is in flight, so it keeps its connection open.
    pub channel_max_idle: Duration,
    /// A frame whose first bytes arrived but which is still incomplete this long after (time spent
    /// reading, not waiting for in-flight limits) closes its connection (`serverFrameReadTimeoutMillis`;
    /// zero = never).
    pub frame_read_timeout: Duration,
    /// Most requests being processed at once on one connection; the connection is not read meanwhile.
    /// Held long polls count, and a push consumer holds one per queue, so this is generous; memory
    /// is bounded by `max_inflight_bytes`.
    pub max_inflight_per_connection: usize,
    /// Most request bytes being processed at once across all connections.
    pub max_inflight_bytes: usize,
    /// Largest frame accepted, length prefix included.
    pub max_frame_length: usize,
    /// Outbound frames queued per connection before processors wait.
    pub write_queue: usize,
    /// How long closing a port waits for in-flight requests before it drops them.
    pub close_grace: Duration,
    /// TLS on every port (`tls.server.*`); None serves plain frames only.
    pub tls: Option<Arc<TlsServer>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            max_connections: 10_000,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            channel_max_idle: DEFAULT_CHANNEL_MAX_IDLE,
            frame_read_timeout: DEFAULT_FRAME_READ_TIMEOUT,
            max_inflight_per_connection: 4096,
            max_inflight_bytes: 256 * 1024 * 1024,
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            write_queue: 1024,
            close_grace: Duration::from_secs(5),
            tls: None,
        }
    }
}

struct ServerInner {
    config: ServerConfig,
    ports: Mutex<HashMap<u16, Arc<PortState>>>,
    connections: Arc<Semaphore>,
    /// Open connections per (canonical) peer IP, for `max_connections_per_address`.
    per_address: Mutex<HashMap<IpAddr, usize>>,
    inflight_bytes: Arc<Semaphore>,
    next_conn_id: AtomicU64,
    shutdown: CancellationToken,
    /// Time base of the refusal log limiter.
    epoch: std::time::Instant,
    /// Milliseconds after `epoch` before which refusals are not logged.
    refusal_log_next: AtomicU64,
    /// Refusals not logged since the last warning.
    refusal_suppressed: AtomicU64,
    /// The server's own background tasks (the TLS certificate reloader).
    tasks: TaskTracker,
}

/// What an accepted connection holds while open: its global slot and its per-address slot.
struct ConnSlot {
    _permit: OwnedSemaphorePermit,
    ip: Option<IpAddr>,
    inner: Arc<ServerInner>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut m = self.inner.per_address.lock();
            if let Some(n) = m.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&ip);
                }
            }
        }
    }
}

/// When a connection last read a frame or finished a write (for the idle timeout).
pub(crate) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity { start: Instant::now(), last_ms: AtomicU64::new(0) }
    }
    /// Records activity now.
    pub(crate) fn touch(&self) {
        self.last_ms.fetch_max(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Counts one request in flight on a connection; dropping it counts as activity.
struct InflightGuard {
    count: Arc<AtomicUsize>,
    activity: Arc<Activity>,
}

impl InflightGuard {
    fn new(count: &Arc<AtomicUsize>, activity: &Arc<Activity>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        InflightGuard { count: count.clone(), activity: activity.clone() }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.activity.touch();
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

struct PortState {
    port: u16,
    table: ProcessorTable,
    listener: Option<Arc<dyn ChannelEventListener>>,
    /// Stop accepting and reading.
    soft: CancellationToken,
    /// Drop whatever is still running.
    hard: CancellationToken,
    tasks: TaskTracker,
    live: Mutex<HashMap<u64, ConnectionHandle>>,
    /// TLS handshakes in progress on this port (`tls.server.handshakeConcurrency`).
    handshakes: Arc<Semaphore>,
}

/// The shared transport: owns every port's accept loop and connections. Cheap to clone.
#[derive(Clone)]
pub struct RemotingServer {
    inner: Arc<ServerInner>,
}

/// One port of the shared server, with its own processor table. Closing it frees the port.
pub struct SubServer {
    state: Arc<PortState>,
    server: RemotingServer,
}

impl RemotingServer {
    /// A shared server with no ports yet.
    pub fn new(config: ServerConfig) -> Self {
        let connections = Arc::new(Semaphore::new(config.max_connections));
        let inflight_bytes = Arc::new(Semaphore::new(config.max_inflight_bytes));
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        if let Some(tls) = &config.tls {
            if tokio::runtime::Handle::try_current().is_ok() {
                tls.spawn_reloader(&tasks, shutdown.child_token());
            } else {
                warn!("no async runtime: TLS certificate files will not be reloaded");
            }
        }
        RemotingServer {
            inner: Arc::new(ServerInner {
                config,
                ports: Mutex::new(HashMap::new()),
                connections,
                per_address: Mutex::new(HashMap::new()),
                inflight_bytes,
                next_conn_id: AtomicU64::new(1),
                shutdown,
                epoch: std::time::Instant::now(),
                refusal_log_next: AtomicU64::new(0),
                refusal_suppressed: AtomicU64::new(0),
                tasks,
            }),
        }
    }

    /// The server's configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Binds `port` (0 = any free port) with its own processors. A port already served here, or in
    /// use by anyone else, is an error that names the port.
    pub async fn bind(
        &self,
        port: u16,
        table: ProcessorTable,
        listener: Option<Arc<dyn ChannelEventListener>>,
    ) -> Result<SubServer, RemotingError> {
        self.bind_on(port, table, listener, None).await
    }

    /// Like [`RemotingServer::bind`], with the port's accept loop, connections and request
    /// processing on the runtime `exec` (a hosted broker's own threads), so that work queued on
    /// one port never waits behind another's. Limits, accounting and closing stay shared.
    pub async fn bind_on(
        &self,
        port: u16,
        table: ProcessorTable,
        listener: Option<Arc<dyn ChannelEventListener>>,
        exec: Option<tokio::runtime::Handle>,
    ) -> Result<SubServer, RemotingError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(RemotingError::Shutdown);
        }
        if port != 0 && self.inner.ports.lock().contains_key(&port) {
            return Err(RemotingError::PortInUse {
                port,
                reason: "already served by another sub-server of this process".into(),
            });
        }
        let addr = SocketAddr::new(self.inner.config.bind_address, port);
        let tcp = {
            // The listener (and so every accepted connection) is driven by the port's runtime.
            let _enter = exec.as_ref().map(|h| h.enter());
            bind_listener(addr).map_err(|e| RemotingError::PortInUse { port, reason: e.to_string() })?
        };
        let local_port = tcp.local_addr()?.port();
        let state = Arc::new(PortState {
            port: local_port,
            table,
            listener,
            soft: self.inner.shutdown.child_token(),
            hard: CancellationToken::new(),
            tasks: TaskTracker::new(),
            live: Mutex::new(HashMap::new()),
            handshakes: Arc::new(Semaphore::new(
                self.inner.config.tls.as_ref().map_or(1, |t| t.handshake_concurrency()),
            )),
        });
        {
            let mut ports = self.inner.ports.lock();
            if ports.contains_key(&local_port) {
                return Err(RemotingError::PortInUse {
                    port: local_port,
                    reason: "already served by another sub-server of this process".into(),
                });
            }
            ports.insert(local_port, state.clone());
        }
        let server = self.clone();
        let st = state.clone();
        let accept = async move { server.accept_loop(tcp, st).await }
            .instrument(tracing::info_span!("accept", port = local_port));
        match &exec {
            Some(h) => state.tasks.spawn_on(accept, h),
            None => state.tasks.spawn(accept),
        };
        debug!(port = local_port, "remoting port bound");
        Ok(SubServer { state, server: self.clone() })
    }

    /// The ports currently served.
    pub fn ports(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.inner.ports.lock().keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Closes every port (see [`SubServer::close`]).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let states: Vec<Arc<PortState>> = self.inner.ports.lock().values().cloned().collect();
        for st in states {
            self.close_port(&st).await;
        }
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    async fn close_port(&self, st: &Arc<PortState>) {
        st.soft.cancel();
        st.tasks.close();
        if tokio::time::timeout(self.inner.config.close_grace, st.tasks.wait()).await.is_err() {
            warn!(port = st.port, "in-flight requests did not finish within the grace period; dropping them");
            st.hard.cancel();
            st.tasks.wait().await;
        }
        st.hard.cancel();
        self.inner.ports.lock().remove(&st.port);
        debug!(port = st.port, "remoting port closed");
    }

    async fn accept_loop(self, tcp: TcpListener, st: Arc<PortState>) {
        loop {
            // Accept first, then decide: a connection past a cap is closed at once, never left
            // accepted by the kernel and unserved.
            let accepted = tokio::select! {
                _ = st.soft.cancelled() => break,
                a = tcp.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let Some(slot) = self.admit(peer, st.port) else {
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let server = self.clone();
                    let st2 = st.clone();
                    let id = self.inner.next_conn_id.fetch_add(1, Ordering::Relaxed);
                    let span = tracing::info_span!("conn", port = st.port, %peer, id);
                    st.tasks.spawn(
                        async move { server.start_connection(stream, peer, id, st2, slot).await }.instrument(span),
                    );
                }
                Err(e) => {
                    warn!(port = st.port, error = %e, "accept failed");
                    // Out of descriptors and the like: back off briefly instead of spinning.
                    tokio::select! {
                        _ = st.soft.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            }
        }
        drop(tcp);
        debug!(port = st.port, "accept loop stopped");
    }

    /// Takes a global and a per-address slot for a new connection from `peer`, or logs (rate-limited)
    /// which cap refused it and returns `None`.
    fn admit(&self, peer: SocketAddr, port: u16) -> Option<ConnSlot> {
        let config = &self.inner.config;
        let Ok(permit) = self.inner.connections.clone().try_acquire_owned() else {
            self.refused(peer, port, "serverMaxConnections", config.max_connections);
            return None;
        };
        let per = config.max_connections_per_address;
        if per == 0 {
            return Some(ConnSlot { _permit: permit, ip: None, inner: self.inner.clone() });
        }
        let ip = peer.ip().to_canonical();
        {
            let mut m = self.inner.per_address.lock();
            let n = m.entry(ip).or_insert(0);
            if *n < per {
                *n += 1;
                return Some(ConnSlot { _permit: permit, ip: Some(ip), inner: self.inner.clone() });
            }
        }
        self.refused(peer, port, "serverMaxConnectionsPerAddress", per);
        None
    }

    /// Whether a refusal may be logged now (at most once per period); if so, how many were not logged
    /// since the last time. Otherwise counts this one as not logged.
    fn refusal_log_slot(&self) -> Option<u64> {
        let inner = &self.inner;
        let now = inner.epoch.elapsed().as_millis() as u64;
        let next = inner.refusal_log_next.load(Ordering::Relaxed);
        if now >= next
            && inner
                .refusal_log_next
                .compare_exchange(next, now + REFUSAL_LOG_PERIOD_MS, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            Some(inner.refusal_suppressed.swap(0, Ordering::AcqRel))
        } else {
            inner.refusal_suppressed.fetch_add(1, Ordering::AcqRel);
            None
        }
    }

    /// Logs (rate-limited, with the connection caps' refusals) why a connection was closed at TLS
    /// negotiation.
    fn refused_tls(&self, peer: SocketAddr, port: u16, why: &str) {
        if let Some(also_refused) = self.refusal_log_slot() {
            warn!(%peer, port, also_refused, "connection closed: {why} ({also_refused} other connections refused since the last warning)");
        }
    }

    fn refused(&self, peer: SocketAddr, port: u16, key: &'static str, limit: usize) {
        if let Some(also_refused) = self.refusal_log_slot() {
            warn!(
                %peer,
                port,
                cap = key,
                limit,
                also_refused,
                "connection closed at once: {key}={limit} reached ({also_refused} other connections refused \
                 since the last warning)"
            );
        }
    }

    /// Negotiates TLS if this server serves it (off the accept loop), then serves the connection.
    async fn start_connection(self, stream: TcpStream, peer: SocketAddr, id: u64, st: Arc<PortState>, slot: ConnSlot) {
        let local = stream.local_addr().unwrap_or_else(|_| SocketAddr::new(self.inner.config.bind_address, st.port));
        let Some(tls) = self.inner.config.tls.clone() else {
            let (rd, wr) = stream.into_split();
            return self.serve_connection(rd, wr, local, peer, id, st, slot).await;
        };
        let negotiated = tokio::select! {
            _ = st.soft.cancelled() => return,
            r = tls.negotiate(stream, self.inner.config.channel_max_idle, &st.handshakes) => r,
        };
        match negotiated {
            Ok(Negotiated::Plain(stream)) => {
                let (rd, wr) = stream.into_split();
                self.serve_connection(rd, wr, local, peer, id, st, slot).await
            }
            Ok(Negotiated::Tls(stream)) => {
                let (rd, wr) = tokio::io::split(*stream);
                self.serve_connection(rd, wr, local, peer, id, st, slot).await
            }
            Err(Refusal::Quiet(why)) => debug!(%peer, port = st.port, "connection closed: {why}"),
            Err(Refusal::Refused(why)) => self.refused_tls(peer, st.port, &why),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn serve_connection<R, W>(
        self,
        mut rd: R,
        wr: W,
        local: SocketAddr,
        peer: SocketAddr,
        id: u64,
        st: Arc<PortState>,
        _slot: ConnSlot,
    ) where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let config = &self.inner.config;
        let codec = RemotingCodec::with_max_frame_length(config.max_frame_length);
        let (tx, rx) = mpsc::channel::<RemotingCommand>(config.write_queue);
        let closed = CancellationToken::new();
        let handle = ConnectionHandle {
            inner: Arc::new(ConnInner {
                id,
                peer,
                local,
                tx,
                closed: closed.clone(),
                pending: Mutex::new(HashMap::new()),
                opaque: std::sync::atomic::AtomicI32::new(1),
            }),
        };
        st.live.lock().insert(id, handle.clone());
        if let Some(l) = &st.listener {
            l.on_connect(&handle);
        }
        let activity = Arc::new(Activity::new());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let done_reading = CancellationToken::new();
        let writer = {
            let done = done_reading.clone();
            let hard = st.hard.clone();
            let closed = closed.clone();
            let sink = FramedWrite::new(wr, codec);
            st.tasks.spawn(write_loop(sink, rx, done, hard, closed, Some(activity.clone())).in_current_span())
        };
        let inflight = Arc::new(Semaphore::new(config.max_inflight_per_connection));
        let requests = TaskTracker::new();
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        // When the first bytes of the frame being read arrived (or reading resumed over them).
        let mut partial_since: Option<Instant> = None;
        // One timer for both deadlines, re-armed only when a deadline comes earlier than it (firing
        // early just means checking again), so reads do not register a timer each.
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut timer_armed = false;
        'conn: loop {
            if st.soft.is_cancelled() || closed.is_cancelled() {
                break;
            }
            // A free slot is taken without registering with the tokens (the usual case).
            let permit = match inflight.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(tokio::sync::TryAcquireError::Closed) => break,
                Err(tokio::sync::TryAcquireError::NoPermits) => tokio::select! {
                    _ = st.soft.cancelled() => break,
                    _ = closed.cancelled() => break,
                    p = inflight.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                },
            };
            let cmd = loop {
                match decode_frame(&mut rbuf, config.max_frame_length) {
                    Ok(Some(cmd)) => {
                        partial_since = None;
                        break cmd;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        warn!(%peer, port = st.port, error = %e, "closing connection after a malformed frame");
                        break 'conn;
                    }
                }
                let now = Instant::now();
                if rbuf.is_empty() {
                    partial_since = None;
                } else if partial_since.is_none() {
                    partial_since = Some(now);
                }
                let frame_deadline = partial_since
                    .filter(|_| !config.frame_read_timeout.is_zero())
                    .map(|t| t + config.frame_read_timeout);
                let idle_deadline = (!config.channel_max_idle.is_zero()).then(|| {
                    if in_flight.load(Ordering::Acquire) > 0 {
                        now + config.channel_max_idle
                    } else {
                        activity.last() + config.channel_max_idle
                    }
                });
                if frame_deadline.is_some_and(|d| now >= d) {
                    warn!(
                        %peer,
                        port = st.port,
                        buffered = rbuf.len(),
                        timeout_ms = config.frame_read_timeout.as_millis() as u64,
                        "closing connection: a frame stayed incomplete past serverFrameReadTimeoutMillis"
                    );
                    break 'conn;
                }
                if idle_deadline.is_some_and(|d| now >= d) {
                    info!(
                        %peer,
                        port = st.port,
                        idle_secs = config.channel_max_idle.as_secs_f64(),
                        "closing idle connection (serverChannelMaxIdleTimeSeconds)"
                    );
                    break 'conn;
                }
                let wake = match (frame_deadline, idle_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                if let Some(w) = wake {
                    if !timer_armed || w < timer.deadline() {
                        timer.as_mut().reset(w);
                        timer_armed = true;
                    }
                }
                if rbuf.capacity() - rbuf.len() < READ_CHUNK / 2 {
                    rbuf.reserve(READ_CHUNK);
                }
                tokio::select! {
                    _ = st.soft.cancelled() => break 'conn,
                    _ = closed.cancelled() => break 'conn,
                    r = rd.read_buf(&mut rbuf) => match r {
                        Ok(0) => {
                            if !rbuf.is_empty() {
                                debug!(%peer, port = st.port, buffered = rbuf.len(), "peer closed in the middle of a frame");
                            }
                            break 'conn;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            debug!(%peer, port = st.port, error = %e, "connection read error");
                            break 'conn;
                        }
                    },
                    _ = &mut timer, if timer_armed => timer_armed = false,
                }
            };
            activity.touch();
            if cmd.is_response() {
                handle.complete(cmd);
                continue;
            }
            let bytes = (cmd.body.len() + 64).min(config.max_inflight_bytes) as u32;
            if st.soft.is_cancelled() {
                break;
            }
            let byte_permit = match self.inner.inflight_bytes.clone().try_acquire_many_owned(bytes) {
                Ok(p) => p,
                Err(tokio::sync::TryAcquireError::Closed) => break,
                Err(tokio::sync::TryAcquireError::NoPermits) => tokio::select! {
                    _ = st.soft.cancelled() => break,
                    p = self.inner.inflight_bytes.clone().acquire_many_owned(bytes) => match p { Ok(p) => p, Err(_) => break },
                },
            };
            let route = st.table.get(cmd.code).cloned();
            let admitted = match route.as_ref().and_then(|r| r.admission.as_ref()) {
                None => None,
                Some(a) => match a.try_enter() {
                    Some(g) => Some(g),
                    None => {
                        // Full: answer at once, from here, without queueing anything.
                        if !cmd.is_oneway() {
                            let busy = RemotingCommand::response_to(
                                &cmd,
                                response::SYSTEM_BUSY,
                                Some(format!(
                                    "[OVERLOAD]system busy, start flow control for a while (queue {} holds {})",
                                    a.name, a.capacity
                                )),
                            );
                            if handle.inner.tx.try_send(busy).is_err() {
                                debug!(%peer, "write queue full; busy answer dropped");
                            }
                        }
                        continue;
                    }
                },
            };
            let h = handle.clone();
            let guard = InflightGuard::new(&in_flight, &activity);
            let queued_at = Instant::now();
            // The port's state rather than a clone of its token (cloning a token takes its lock).
            let port = st.clone();
            let request = async move {
                let _permits = (permit, byte_permit, guard);
                if let Some(g) = &admitted {
                    g.begin();
                }
                let oneway = cmd.is_oneway();
                let code = cmd.code;
                let on_panic = RemotingCommand::response_to(&cmd, response::SYSTEM_ERROR, None);
                if let Some(a) = route.as_ref().and_then(|r| r.admission.as_ref()) {
                    let waited = queued_at.elapsed();
                    if !a.max_wait.is_zero() && waited > a.max_wait {
                        a.refused.fetch_add(1, Ordering::Relaxed);
                        if !oneway {
                            let remark = format!(
                                    "[TIMEOUT_CLEAN_QUEUE]broker busy, start flow control for a while, period in queue: {}ms, size of queue: {}",
                                    waited.as_millis(),
                                    a.len()
                                );
                            let busy = RemotingCommand::response_to(&cmd, response::SYSTEM_BUSY, Some(remark));
                            let _ = h.inner.tx.send(busy).await;
                        }
                        return;
                    }
                }
                let fut = dispatch(route.as_ref().map(|r| &r.processor), &h, cmd);
                // Biased: a request that completes at once never registers with the token.
                let out = tokio::select! {
                    biased;
                    r = AssertUnwindSafe(fut).catch_unwind() => match r {
                        Ok(r) => r,
                        Err(payload) => {
                            let what = panic_message(payload.as_ref());
                            warn!(code, panic = %what, "request processor panicked");
                            let mut resp = on_panic;
                            resp.remark = Some(format!("request processor panicked: {what}"));
                            Some(resp)
                        }
                    },
                    _ = port.hard.cancelled() => None,
                };
                if let (Some(resp), false) = (out, oneway) {
                    let _ = h.inner.tx.send(resp).await;
                }
            };
            // Nothing else read waits behind this request: it is polled once here, on the
            // connection's task (no task spawned, no wake-up), and becomes a task of its own only
            // if it must wait. A request that arrived with others still buffered is spawned at
            // once, so a burst queues in the admission queue (and is answered busy when it
            // overflows) instead of waiting in the read buffer.
            let mut request: BoxFuture<'static, ()> = Box::pin(request);
            let pending = !rbuf.is_empty()
                || std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(std::future::Future::poll(request.as_mut(), cx).is_pending())
                })
                .await;
            if pending {
                requests.spawn(request.in_current_span());
            }
        }
        // Let in-flight requests finish (the hard token cuts them short), then flush and close.
        requests.close();
        tokio::select! {
            _ = requests.wait() => {}
            _ = st.hard.cancelled() => {}
        }
        done_reading.cancel();
        let _ = writer.await;
        closed.cancel();
        handle.fail_pending();
        st.live.lock().remove(&id);
        if let Some(l) = &st.listener {
            l.on_close(&handle);
        }
        debug!(%peer, port = st.port, "connection closed");
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

async fn dispatch(
    processor: Option<&Arc<dyn RequestProcessor>>,
    conn: &ConnectionHandle,
    cmd: RemotingCommand,
) -> Option<RemotingCommand> {
    match processor {
        Some(p) => p.process(conn, cmd).await,
        None => {
            let remark = format!(" request type {} not supported", cmd.code);
            Some(RemotingCommand::error(&cmd, response::REQUEST_CODE_NOT_SUPPORTED, remark))
        }
    }
}

pub(crate) async fn write_loop<W>(
    mut sink: FramedWrite<W, RemotingCodec>,
    mut rx: mpsc::Receiver<RemotingCommand>,
    done: CancellationToken,
    hard: CancellationToken,
    closed: CancellationToken,
    activity: Option<Arc<Activity>>,
) where
    W: tokio::io::AsyncWrite + Unpin,
{
    loop {
        let next = tokio::select! {
            biased;
            m = rx.recv() => m,
            _ = done.cancelled() => None,
            _ = hard.cancelled() => break,
            _ = closed.cancelled() => break,
        };
        let Some(cmd) = next else { break };
        if let Err(e) = sink.feed(cmd).await {
            debug!(error = %e, "write failed");
            closed.cancel();
            return;
        }
        // Batch whatever else is queued into the same flush.
        while let Ok(cmd) = rx.try_recv() {
            if sink.feed(cmd).await.is_err() {
                closed.cancel();
                return;
            }
        }
        if sink.flush().await.is_err() {
            closed.cancel();
            return;
        }
        if let Some(a) = &activity {
            a.touch();
        }
    }
    while let Ok(cmd) = rx.try_recv() {
        if sink.feed(cmd).await.is_err() {
            break;
        }
    }
    let _ = sink.flush().await;
    let _ = futures::SinkExt::<RemotingCommand>::close(&mut sink).await;
}

fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl SubServer {
    /// The port this sub-server is bound to.
    pub fn port(&self) -> u16 {
        self.state.port
    }

    /// The connections open on this port now.
    pub fn connections(&self) -> Vec<ConnectionHandle> {
        self.state.live.lock().values().cloned().collect()
    }

    /// Stops accepting, stops reading, lets in-flight requests finish (up to the grace period), writes
    /// their responses, closes every connection of this port and frees the port.
    pub async fn close(self) {
        let server = self.server.clone();
        server.close_port(&self.state).await;
    }
}
