//! The master side: accepts slaves on the HA port, streams commitlog bytes, collects their acks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn, Instrument};

use super::wire::*;
use super::HaHost;
use crate::remoting::tls::{Negotiated, Refusal, TlsServer};
use crate::store::MessageStore;

/// Most bytes the master writes to a slave in one go (several packets).
const WRITE_BURST: usize = 512 * 1024;

/// One connected slave as its master sees it.
#[derive(Debug)]
pub struct SlaveConn {
    /// The slave's address.
    pub peer: SocketAddr,
    /// Last reported offset (-1 before the first report).
    pub ack: AtomicI64,
    /// Set when the slave reported more data than the master has.
    pub ahead: AtomicBool,
}

/// Master-side replication state.
#[derive(Default)]
pub struct HaMaster {
    conns: Mutex<Vec<Arc<SlaveConn>>>,
    acks: watch::Sender<u64>,
}

impl HaMaster {
    pub(super) fn add(&self, c: Arc<SlaveConn>) {
        self.conns.lock().push(c);
    }
    fn remove(&self, c: &Arc<SlaveConn>) {
        self.conns.lock().retain(|x| !Arc::ptr_eq(x, c));
        self.acks.send_modify(|g| *g += 1);
    }
    pub(super) fn acked(&self) {
        self.acks.send_modify(|g| *g += 1);
    }
    /// The connected slaves.
    pub fn slaves(&self) -> Vec<Arc<SlaveConn>> {
        self.conns.lock().clone()
    }
    /// How many connected slaves have acknowledged `offset`.
    pub fn acked_count(&self, offset: i64) -> usize {
        self.conns.lock().iter().filter(|c| c.ack.load(Ordering::Acquire) >= offset).count()
    }
    /// Waits until `needed` slaves have everything before `offset`; false after `timeout`.
    pub async fn wait_for(&self, offset: i64, needed: usize, timeout: Duration) -> bool {
        let mut rx = self.acks.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            rx.borrow_and_update();
            if self.acked_count(offset) >= needed {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return self.acked_count(offset) >= needed,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Accepts slaves on the HA port until cancelled; each connection runs as a task of `tasks`. With
/// `tls`, a connection negotiates TLS first as the remoting ports do (`tls.server.mode`).
pub async fn serve_ha_port<H: HaHost>(
    core: Arc<H>,
    listener: TcpListener,
    tls: Option<Arc<TlsServer>>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    span: tracing::Span,
) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(tls.as_ref().map_or(1, |t| t.handshake_concurrency())));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                info!(slave = %peer, "HA connection accepted");
                let (core, cancel) = (core.clone(), cancel.clone());
                let (tls, handshakes) = (tls.clone(), handshakes.clone());
                tasks.spawn(
                    async move {
                        let _ = stream.set_nodelay(true);
                        let Some(tls) = tls else {
                            let (rd, wr) = stream.into_split();
                            return serve_slave(core, rd, wr, peer, cancel).await;
                        };
                        let negotiated = tokio::select! {
                            _ = cancel.cancelled() => return,
                            r = tls.negotiate(stream, HOUSEKEEPING, &handshakes) => r,
                        };
                        match negotiated {
                            Ok(Negotiated::Plain(s)) => {
                                let (rd, wr) = s.into_split();
                                serve_slave(core, rd, wr, peer, cancel).await
                            }
                            Ok(Negotiated::Tls(s)) => {
                                let (rd, wr) = tokio::io::split(*s);
                                serve_slave(core, rd, wr, peer, cancel).await
                            }
                            Err(Refusal::Quiet(why) | Refusal::Refused(why)) => {
                                warn!(slave = %peer, "HA connection closed: {why}")
                            }
                        }
                    }
                    .instrument(span.clone()),
                );
            }
            Err(e) => {
                warn!(error = %e, "HA accept failed");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

async fn serve_slave<H, R, W>(core: Arc<H>, rd: R, wr: W, peer: SocketAddr, cancel: CancellationToken)
where
    H: HaHost,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let conn = Arc::new(SlaveConn { peer, ack: AtomicI64::new(-1), ahead: AtomicBool::new(false) });
    let ha = &core.ha().master;
    ha.add(conn.clone());
    let (first_tx, first_rx) = watch::channel(None);
    let why = tokio::select! {
        _ = cancel.cancelled() => "broker shutting down".to_string(),
        r = read_reports(rd, &conn, ha, first_tx) => r,
        r = write_transfer(wr, &conn, core.store().clone(), first_rx) => r,
    };
    ha.remove(&conn);
    info!(slave = %peer, reason = %why, ack = conn.ack.load(Ordering::Acquire), "HA connection closed");
}

async fn read_reports(
    mut rd: impl AsyncRead + Unpin,
    conn: &SlaveConn,
    ha: &HaMaster,
    first: watch::Sender<Option<i64>>,
) -> String {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match tokio::time::timeout(HOUSEKEEPING, rd.read(&mut chunk)).await {
            Err(_) => return format!("nothing read for {HOUSEKEEPING:?}"),
            Ok(Err(e)) => return format!("read failed: {e}"),
            Ok(Ok(0)) => return "slave closed the connection".into(),
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some((offset, used)) = last_report(&buf) {
            buf.drain(..used);
            let prev = conn.ack.swap(offset, Ordering::AcqRel);
            if prev < 0 {
                info!(slave = %conn.peer, offset, "slave requests replication from offset");
                first.send_replace(Some(offset));
            }
            ha.acked();
        }
    }
}

async fn write_transfer(
    mut wr: impl AsyncWrite + Unpin,
    conn: &SlaveConn,
    store: Arc<MessageStore>,
    mut first: watch::Receiver<Option<i64>>,
) -> String {
    let requested = loop {
        if let Some(o) = *first.borrow_and_update() {
            break o;
        }
        if first.changed().await.is_err() {
            return "no offset report".into();
        }
    };
    let mut appended = store.subscribe_appended();
    let master_max = store.commit_log_max_offset();
    let mut next = transfer_start(requested, master_max, store.config().mapped_file_size_commit_log);
    info!(slave = %conn.peer, from = next, master_max, "transfer starts");
    let mut last_write = Instant::now();
    let mut buf = BytesMut::with_capacity(WRITE_BURST + TRANSFER_BATCH + HEADER_LEN);
    loop {
        appended.borrow_and_update();
        let max = store.commit_log_max_offset();
        let ack = conn.ack.load(Ordering::Acquire);
        if ack > max || next > max {
            // The slave has bytes this master does not have: never push over them. Tell the slave
            // where the master ends (an Apache slave logs the mismatch and reconnects; ours reports
            // the divergence) and wait.
            if !conn.ahead.swap(true, Ordering::AcqRel) {
                error!(
                    slave = %conn.peer,
                    slave_offset = ack.max(next),
                    master_max = max,
                    "slave has {} bytes this master does not have: replicas diverged, not replicating to it",
                    ack.max(next) - max
                );
            }
            if let Err(e) = wr.write_all(&encode_header(max, 0)).await {
                return format!("write failed: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT) => {}
                r = appended.changed() => if r.is_err() { return "store closed".into() },
            }
            continue;
        }
        conn.ahead.store(false, Ordering::Release);
        buf.clear();
        while buf.len() < WRITE_BURST {
            let Some(data) = store.get_commit_log_data(next, TRANSFER_BATCH) else { break };
            buf.put_slice(&encode_header(next, data.len()));
            buf.put_slice(&data);
            next += data.len() as i64;
        }
        if !buf.is_empty() {
            if let Err(e) = wr.write_all(&buf).await {
                return format!("write failed: {e}");
            }
            last_write = Instant::now();
            continue;
        }
        tokio::select! {
            r = appended.changed() => if r.is_err() { return "store closed".into() },
            _ = tokio::time::sleep_until(last_write + HEARTBEAT) => {
                if let Err(e) = wr.write_all(&encode_header(next, 0)).await {
                    return format!("write failed: {e}");
                }
                last_write = Instant::now();
            }
        }
    }
}
