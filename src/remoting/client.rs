//! The outbound client: request/response with a timeout and oneway requests, over one reused
//! connection per address.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, Instrument};

use super::codec::{RemotingCodec, DEFAULT_MAX_FRAME_LENGTH};
use super::command::{RemotingCommand, SerializeType};
use super::server::write_loop;
use super::tls::TlsClient;
use super::RemotingError;

/// Client settings (Apache's `NettyClientConfig`, as far as it applies).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Connect timeout (`connectTimeoutMillis`, 3000 ms).
    pub connect_timeout: Duration,
    /// The header serialization of the requests this client sends.
    pub serialize_type: SerializeType,
    /// Largest frame accepted.
    pub max_frame_length: usize,
    /// Requests queued per connection before senders wait.
    pub write_queue: usize,
    /// TLS for every connection (Apache's `useTLS` / `tls.enable`); None = plain frames.
    pub tls: Option<TlsClient>,
    /// Called on every request before it is sent (Apache's `RPCHook.doBeforeRequest`), e.g. to
    /// sign it with an access key.
    pub rpc_hook: Option<Arc<dyn RpcHook>>,
}

/// Changes a request before the client sends it (Apache's `RPCHook`; the ACL signer is one).
pub trait RpcHook: Send + Sync + 'static {
    /// Called once per request, after its header fields and body are final.
    fn before_request(&self, addr: &str, request: &mut RemotingCommand);
}

impl std::fmt::Debug for dyn RpcHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RpcHook")
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(3),
            serialize_type: SerializeType::Json,
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            write_queue: 1024,
            tls: None,
            rpc_hook: None,
        }
    }
}

struct ClientConn {
    tx: mpsc::Sender<RemotingCommand>,
    pending: Arc<Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>>,
    closed: CancellationToken,
}

/// A request a server sent on one of the client's connections (e.g. CHECK_TRANSACTION_STATE to a
/// transactional producer), delivered to the receiver of [`RemotingClient::with_inbox`].
#[derive(Debug)]
pub struct ServerRequest {
    /// The `host:port` the connection was opened to (answer there, e.g. with END_TRANSACTION).
    pub addr: String,
    /// The request.
    pub request: RemotingCommand,
}

struct ClientInner {
    config: ClientConfig,
    inbox: Option<mpsc::Sender<ServerRequest>>,
    conns: Mutex<HashMap<String, Arc<ClientConn>>>,
    opaque: AtomicI32,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// An async remoting client shared by whoever makes outbound calls (brokers registering with
/// NameServers, mqadmin, tests). Cheap to clone; [`RemotingClient::shutdown`] closes its connections.
#[derive(Clone)]
pub struct RemotingClient {
    inner: Arc<ClientInner>,
}

impl Default for RemotingClient {
    fn default() -> Self {
        Self::new(ClientConfig::default())
    }
}

impl RemotingClient {
    /// A client with no connections yet.
    pub fn new(config: ClientConfig) -> Self {
        Self::build(config, None)
    }

    /// A client that hands requests servers send on its connections to the returned receiver, at
    /// most `capacity` waiting (more are dropped with a debug log: a slow reader never makes the
    /// connection buffer without bound). Without an inbox such requests are ignored.
    pub fn with_inbox(config: ClientConfig, capacity: usize) -> (Self, mpsc::Receiver<ServerRequest>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self::build(config, Some(tx)), rx)
    }

    fn build(config: ClientConfig, inbox: Option<mpsc::Sender<ServerRequest>>) -> Self {
        RemotingClient {
            inner: Arc::new(ClientInner {
                config,
                inbox,
                conns: Mutex::new(HashMap::new()),
                opaque: AtomicI32::new(1),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Sends `request` to `addr` (`host:port`) and waits up to `timeout` for the response.
    pub async fn invoke(
        &self,
        addr: &str,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(h) = &self.inner.config.rpc_hook {
            h.before_request(addr, &mut request);
        }
        // An open connection is taken without a timer; only connecting needs one.
        let conn = match self.cached_connection(addr) {
            Some(c) => c,
            None => tokio::time::timeout_at(deadline, self.connection(addr))
                .await
                .map_err(|_| RemotingError::Timeout { addr: addr.to_string(), millis: timeout.as_millis() as u64 })??,
        };
        let opaque = self.inner.opaque.fetch_add(1, Ordering::Relaxed);
        request.opaque = opaque;
        request.flag &= !super::command::FLAG_RESPONSE;
        request.serialize_type = self.inner.config.serialize_type;
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().insert(opaque, tx);
        // Room in the write queue: no timer (the usual case); else wait for room until the deadline.
        let sent = match conn.tx.try_send(request) {
            Ok(()) => Ok(Ok(())),
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(Err(())),
            Err(mpsc::error::TrySendError::Full(request)) => {
                tokio::time::timeout_at(deadline, conn.tx.send(request)).await.map(|r| r.map_err(drop))
            }
        };
        if !matches!(sent, Ok(Ok(()))) {
            conn.pending.lock().remove(&opaque);
            return Err(match sent {
                Err(_) => RemotingError::Timeout { addr: addr.to_string(), millis: timeout.as_millis() as u64 },
                _ => RemotingError::ConnectionClosed { addr: addr.to_string() },
            });
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(RemotingError::ConnectionClosed { addr: addr.to_string() }),
            Err(_) => {
                conn.pending.lock().remove(&opaque);
                Err(RemotingError::Timeout { addr: addr.to_string(), millis: timeout.as_millis() as u64 })
            }
        }
    }

    /// Sends a oneway request (no response is expected).
    pub async fn invoke_oneway(
        &self,
        addr: &str,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<(), RemotingError> {
        if let Some(h) = &self.inner.config.rpc_hook {
            h.before_request(addr, &mut request);
        }
        let conn = tokio::time::timeout(timeout, self.connection(addr))
            .await
            .map_err(|_| RemotingError::Timeout { addr: addr.to_string(), millis: timeout.as_millis() as u64 })??;
        request.opaque = self.inner.opaque.fetch_add(1, Ordering::Relaxed);
        request.mark_oneway();
        request.serialize_type = self.inner.config.serialize_type;
        match tokio::time::timeout(timeout, conn.tx.send(request)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(RemotingError::ConnectionClosed { addr: addr.to_string() }),
            Err(_) => Err(RemotingError::Timeout { addr: addr.to_string(), millis: timeout.as_millis() as u64 }),
        }
    }

    /// Closes the connection to `addr`, if any.
    pub fn close_connection(&self, addr: &str) {
        if let Some(c) = self.inner.conns.lock().remove(addr) {
            c.closed.cancel();
        }
    }

    /// Closes every connection and waits for their tasks to end.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let conns: Vec<_> = self.inner.conns.lock().drain().map(|(_, c)| c).collect();
        for c in conns {
            c.closed.cancel();
        }
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// The open connection to `addr`, if there is one (no shutdown check: `connection` makes it).
    fn cached_connection(&self, addr: &str) -> Option<Arc<ClientConn>> {
        if self.inner.shutdown.is_cancelled() {
            return None;
        }
        self.inner.conns.lock().get(addr).filter(|c| !c.closed.is_cancelled()).cloned()
    }

    async fn connection(&self, addr: &str) -> Result<Arc<ClientConn>, RemotingError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(RemotingError::Shutdown);
        }
        if let Some(c) = self.inner.conns.lock().get(addr) {
            if !c.closed.is_cancelled() {
                return Ok(c.clone());
            }
        }
        let connect_timeout = self.inner.config.connect_timeout;
        let timed_out = |_| RemotingError::Connect {
            addr: addr.to_string(),
            reason: format!("timed out after {} ms", connect_timeout.as_millis()),
        };
        let deadline = tokio::time::Instant::now() + connect_timeout;
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .map_err(timed_out)?
            .map_err(|e| RemotingError::Connect { addr: addr.to_string(), reason: e.to_string() })?;
        let _ = stream.set_nodelay(true);
        let conn = match &self.inner.config.tls {
            None => {
                let (rd, wr) = stream.into_split();
                self.start_connection(addr, rd, wr)
            }
            Some(tls) => {
                // The handshake shares the connect timeout.
                let stream = tokio::time::timeout_at(deadline, tls.connect(addr, stream))
                    .await
                    .map_err(timed_out)?
                    .map_err(|e| RemotingError::Connect {
                        addr: addr.to_string(),
                        reason: format!("TLS handshake failed: {e}"),
                    })?;
                let (rd, wr) = tokio::io::split(stream);
                self.start_connection(addr, rd, wr)
            }
        };
        let mut conns = self.inner.conns.lock();
        if let Some(existing) = conns.get(addr) {
            if !existing.closed.is_cancelled() {
                // Another task connected first: use its connection, drop ours.
                conn.closed.cancel();
                return Ok(existing.clone());
            }
        }
        conns.insert(addr.to_string(), conn.clone());
        Ok(conn)
    }

    fn start_connection<R, W>(&self, addr: &str, rd: R, wr: W) -> Arc<ClientConn>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let codec = RemotingCodec::with_max_frame_length(self.inner.config.max_frame_length);
        let (tx, rx) = mpsc::channel(self.inner.config.write_queue);
        let closed = self.inner.shutdown.child_token();
        let pending: Arc<Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>> = Arc::default();
        let conn = Arc::new(ClientConn { tx, pending: pending.clone(), closed: closed.clone() });
        let span = tracing::info_span!("client_conn", addr = %addr);
        let never = CancellationToken::new();
        self.inner.tasks.spawn(
            write_loop(FramedWrite::new(wr, codec.clone()), rx, closed.clone(), never, closed.clone(), None)
                .instrument(span.clone()),
        );
        let inner = self.inner.clone();
        let addr = addr.to_string();
        self.inner.tasks.spawn(
            async move {
                let mut reader = FramedRead::new(rd, codec);
                loop {
                    let frame = tokio::select! {
                        _ = closed.cancelled() => break,
                        f = reader.next() => f,
                    };
                    match frame {
                        Some(Ok(cmd)) if cmd.is_response() => {
                            if let Some(tx) = pending.lock().remove(&cmd.opaque) {
                                let _ = tx.send(cmd);
                            }
                        }
                        Some(Ok(cmd)) => match &inner.inbox {
                            Some(inbox) => {
                                let code = cmd.code;
                                if inbox.try_send(ServerRequest { addr: addr.clone(), request: cmd }).is_err() {
                                    debug!(code, "client inbox full or closed: server request dropped");
                                }
                            }
                            None => debug!(code = cmd.code, "ignoring a request sent to a client connection"),
                        },
                        Some(Err(e)) => {
                            debug!(error = %e, "client connection read error");
                            break;
                        }
                        None => break,
                    }
                }
                closed.cancel();
                pending.lock().clear();
                let mut conns = inner.conns.lock();
                if conns.get(&addr).is_some_and(|c| c.closed.is_cancelled()) {
                    conns.remove(&addr);
                }
            }
            .instrument(span),
        );
        conn
    }
}
