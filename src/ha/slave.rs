//! The slave side: connects to the master's HA port, appends what it receives, reports offsets.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::wire::*;
use super::HaHost;
use crate::remoting::tls::TlsClient;
use crate::store::MessageStore;

/// Slave-side replication state.
#[derive(Default)]
pub struct HaSlave {
    master_addr: Mutex<Option<String>>,
    ha_master_addr: Mutex<Option<String>>,
    addr_changed: Notify,
    connected: AtomicBool,
    /// The master's commitlog max offset at the last sample (-1 unknown).
    master_max: AtomicI64,
    diverged: Mutex<Option<String>>,
    /// Bytes received over HA since start.
    pub received: AtomicU64,
}

impl HaSlave {
    /// The master's remoting address learned from the NameServer.
    pub fn master_addr(&self) -> Option<String> {
        self.master_addr.lock().clone()
    }
    /// The master's HA address learned from the NameServer.
    pub fn ha_master_addr(&self) -> Option<String> {
        self.ha_master_addr.lock().clone()
    }
    /// True while the HA connection to the master is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }
    /// The master's commitlog max offset at the last sample (-1 unknown).
    pub fn master_max(&self) -> i64 {
        self.master_max.load(Ordering::Acquire)
    }
    /// Records a sample of the master's commitlog max offset (the broker's metadata sync takes it).
    pub fn set_master_max(&self, offset: i64) {
        self.master_max.store(offset, Ordering::Release);
    }
    /// The divergence found, if any.
    pub fn diverged(&self) -> Option<String> {
        self.diverged.lock().clone()
    }
    /// Takes what the NameServers answered a registration (keeps the last known addresses when an
    /// answer has none, as Apache does).
    /// `results` are the (master address, HA master address) pairs the NameServers answered.
    pub fn on_register<'a>(&self, results: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>) {
        for (master_addr, ha_server_addr) in results {
            if let Some(m) = master_addr {
                let mut cur = self.master_addr.lock();
                if cur.as_deref() != Some(m) {
                    info!(master = %m, "master address updated");
                    *cur = Some(m.to_string());
                }
            }
            if let Some(h) = ha_server_addr {
                let changed = {
                    let mut cur = self.ha_master_addr.lock();
                    let changed = cur.as_deref() != Some(h);
                    *cur = Some(h.to_string());
                    changed
                };
                if changed {
                    info!(ha_master = %h, "HA master address updated");
                    self.addr_changed.notify_waiters();
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Replicates from the master whose HA address the NameServer gave, reconnecting after failures,
/// until cancelled.
///
/// With `tls` the connection to the master runs TLS (the broker's `tls.enable` client settings).
pub async fn run_ha_client<H: HaHost>(core: Arc<H>, tls: Option<TlsClient>, cancel: CancellationToken) {
    let slave = &core.ha().slave;
    let mut failures = 0u32;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let Some(addr) = slave.ha_master_addr() else {
            let changed = slave.addr_changed.notified();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = changed => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        let connect = async {
            let stream = TcpStream::connect(&addr).await?;
            let _ = stream.set_nodelay(true);
            Ok::<_, std::io::Error>(match &tls {
                None => HaStream::Plain(stream),
                Some(t) => HaStream::Tls(Box::new(t.connect(&addr, stream).await?)),
            })
        };
        let connected = tokio::select! {
            _ = cancel.cancelled() => break,
            r = tokio::time::timeout(Duration::from_secs(3), connect) => r,
        };
        match connected {
            Ok(Ok(stream)) => {
                failures = 0;
                slave.connected.store(true, Ordering::Release);
                info!(master = %addr, tls = matches!(stream, HaStream::Tls(_)), "HA connected to master");
                let r = match stream {
                    HaStream::Plain(s) => {
                        let (rd, wr) = s.into_split();
                        replicate(&core, rd, wr, &cancel).await
                    }
                    HaStream::Tls(s) => {
                        let (rd, wr) = tokio::io::split(*s);
                        replicate(&core, rd, wr, &cancel).await
                    }
                };
                slave.connected.store(false, Ordering::Release);
                match r {
                    Ok(()) => break,
                    Err(e) => warn!(master = %addr, reason = %e, "HA connection to master closed"),
                }
            }
            Ok(Err(e)) => {
                failures += 1;
                if failures == 1 || failures % 60 == 0 {
                    warn!(master = %addr, error = %e, failures, "HA connect to master failed");
                }
            }
            Err(_) => {
                failures += 1;
                warn!(master = %addr, "HA connect to master timed out");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
}

/// The slave's connection to its master, before it is split.
enum HaStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// One HA session; `Ok` when cancelled, `Err(reason)` when the connection must be dropped.
async fn replicate<H, R, W>(core: &Arc<H>, mut rd: R, mut wr: W, cancel: &CancellationToken) -> Result<(), String>
where
    H: HaHost,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let store = core.store().clone();
    let slave = &core.ha().slave;
    let mut reported = store.commit_log_max_offset();
    wr.write_all(&encode_report(reported)).await.map_err(|e| format!("report failed: {e}"))?;
    let mut last_report_at = Instant::now();
    let mut last_read = Instant::now();
    let mut buf = BytesMut::with_capacity(4 << 20);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => return Err("master closed the connection".into()),
                Ok(n) => {
                    last_read = Instant::now();
                    slave.received.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => return Err(format!("read failed: {e}")),
            },
            _ = tokio::time::sleep_until(last_report_at + HEARTBEAT) => {
                wr.write_all(&encode_report(reported)).await.map_err(|e| format!("heartbeat failed: {e}"))?;
                last_report_at = Instant::now();
                continue;
            }
            _ = tokio::time::sleep_until(last_read + HOUSEKEEPING) => {
                return Err(format!("nothing read from the master for {HOUSEKEEPING:?}"));
            }
        }
        let mut packets = Vec::new();
        while let Some(p) = take_packet(&mut buf)? {
            packets.push(p);
        }
        if packets.is_empty() {
            continue;
        }
        let st = store.clone();
        let outcome = tokio::task::spawn_blocking(move || apply_packets(&st, packets))
            .await
            .map_err(|e| format!("append task failed: {e}"))?;
        match outcome {
            Ok(appended_any) => {
                if appended_any {
                    *slave.diverged.lock() = None;
                }
            }
            Err(ApplyError::Packet(e)) => {
                if let PacketError::SlaveAhead { .. } = e {
                    error!("{e}; not appending, will retry after reconnecting");
                    *slave.diverged.lock() = Some(e.to_string());
                } else {
                    warn!("{e}");
                }
                return Err(e.to_string());
            }
            Err(ApplyError::Store(e)) => return Err(format!("append to the commitlog failed: {e}")),
        }
        let now_max = store.commit_log_max_offset();
        if now_max > reported {
            reported = now_max;
            wr.write_all(&encode_report(reported)).await.map_err(|e| format!("report failed: {e}"))?;
            last_report_at = Instant::now();
        }
    }
}

/// Why received packets could not be appended.
#[derive(Debug)]
pub enum ApplyError {
    /// The packet does not continue the slave's commitlog.
    Packet(PacketError),
    /// The store refused.
    Store(crate::store::error::StoreError),
}

/// Appends packets in order after checking each; returns whether any data was appended.
pub fn apply_packets(store: &MessageStore, packets: Vec<(i64, Bytes)>) -> Result<bool, ApplyError> {
    let mut any = false;
    for (phy, data) in packets {
        let max = store.commit_log_max_offset();
        let empty = store.commit_log_min_offset() == max && max == 0;
        check_packet(empty, max, phy).map_err(ApplyError::Packet)?;
        if data.is_empty() {
            continue;
        }
        if empty && phy != max {
            store.start_replica_at(phy).map_err(ApplyError::Store)?;
        }
        store.append_raw(phy, &data).map_err(ApplyError::Store)?;
        any = true;
    }
    Ok(any)
}
