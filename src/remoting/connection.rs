//! One accepted connection as processors see it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::command::RemotingCommand;
use super::RemotingError;

pub(super) struct ConnInner {
    pub(super) id: u64,
    pub(super) peer: SocketAddr,
    pub(super) local: SocketAddr,
    pub(super) tx: mpsc::Sender<RemotingCommand>,
    pub(super) closed: CancellationToken,
    pub(super) pending: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    pub(super) opaque: std::sync::atomic::AtomicI32,
}

/// One accepted connection, as processors see it: who is on the other end, and a way to send it
/// requests of our own (e.g. NOTIFY_CONSUMER_IDS_CHANGED). Cheap to clone.
#[derive(Clone)]
pub struct ConnectionHandle {
    pub(super) inner: Arc<ConnInner>,
}

impl std::fmt::Debug for ConnectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection#{}({} -> {})", self.inner.id, self.inner.peer, self.inner.local)
    }
}

impl PartialEq for ConnectionHandle {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}
impl Eq for ConnectionHandle {}
impl std::hash::Hash for ConnectionHandle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state)
    }
}

impl ConnectionHandle {
    /// A process-unique id of this connection.
    pub fn id(&self) -> u64 {
        self.inner.id
    }
    /// The remote address.
    pub fn peer(&self) -> SocketAddr {
        self.inner.peer
    }
    /// The local address (its port says which sub-server accepted it).
    pub fn local(&self) -> SocketAddr {
        self.inner.local
    }
    /// True once the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }
    /// Asks the connection to close.
    pub fn close(&self) {
        self.inner.closed.cancel();
    }
    /// Sends a oneway request to the peer.
    pub async fn send_oneway(&self, mut cmd: RemotingCommand) -> Result<(), RemotingError> {
        cmd.mark_oneway();
        cmd.opaque = self.inner.opaque.fetch_add(1, Ordering::Relaxed);
        self.inner.tx.send(cmd).await.map_err(|_| RemotingError::ConnectionClosed { addr: self.inner.peer.to_string() })
    }
    /// Sends a request to the peer and waits for its response.
    pub async fn invoke(&self, mut cmd: RemotingCommand, timeout: Duration) -> Result<RemotingCommand, RemotingError> {
        let opaque = self.inner.opaque.fetch_add(1, Ordering::Relaxed);
        cmd.opaque = opaque;
        let (tx, rx) = oneshot::channel();
        self.inner.pending.lock().insert(opaque, tx);
        let addr = self.inner.peer.to_string();
        if self.inner.tx.send(cmd).await.is_err() {
            self.inner.pending.lock().remove(&opaque);
            return Err(RemotingError::ConnectionClosed { addr });
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(RemotingError::ConnectionClosed { addr }),
            Err(_) => {
                self.inner.pending.lock().remove(&opaque);
                Err(RemotingError::Timeout { addr, millis: timeout.as_millis() as u64 })
            }
        }
    }
    pub(super) fn complete(&self, resp: RemotingCommand) {
        if let Some(tx) = self.inner.pending.lock().remove(&resp.opaque) {
            let _ = tx.send(resp);
        }
    }
    pub(super) fn fail_pending(&self) {
        self.inner.pending.lock().clear();
    }
}
