//! Classic master/slave replication (Apache's `DefaultHAService`), byte-compatible with Apache.
//!
//! Transport is plain TCP on the master's HA port (`listenPort + 1`), not the remoting protocol:
//! - slave → master: 8-byte big-endian offset reports (the next commitlog byte the slave needs), at
//!   connect, after each append, and every 5 s as a heartbeat;
//! - master → slave: 12-byte header (`phyOffset` i64, `bodySize` i32) then `bodySize` raw commitlog
//!   bytes; a header with `bodySize = 0` is a heartbeat.
//!
//! The master side ([`serve_ha_port`]) keeps one [`SlaveConn`] per connected slave and lets
//! SYNC_MASTER writers wait for their acks ([`HaMaster::wait_for`]). The slave side
//! ([`run_ha_client`]) appends what it receives with `MessageStore::append_raw` (the dispatcher builds
//! consume queues and index) and [`run_slave_sync`] copies the master's metadata every second.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn, Instrument};

use super::core::BrokerCore;
use super::schedule::ScheduleService;
use crate::protocol::codes::{request, response};
use crate::remoting::{RemotingClient, RemotingCommand};
use crate::store::MessageStore;

/// Length of a master → slave transfer header (`phyOffset` + `bodySize`).
pub const HEADER_LEN: usize = 12;
/// Length of a slave → master offset report.
pub const REPORT_LEN: usize = 8;
/// Most commitlog bytes in one transfer packet (`haTransferBatchSize`).
pub const TRANSFER_BATCH: usize = 32 * 1024;
/// Largest transfer body a slave accepts. Masters send at most `haTransferBatchSize` (32 KiB by
/// default, [`TRANSFER_BATCH`] here) per packet, and Apache's slave reads into a 4 MiB buffer
/// (`READ_MAX_BUFFER_SIZE`), so no working master sends more; a larger header is a protocol error.
pub const MAX_TRANSFER_BODY: usize = 4 * 1024 * 1024 - HEADER_LEN;
/// Most bytes the master writes to a slave in one go (several packets).
const WRITE_BURST: usize = 512 * 1024;
/// Heartbeat period of both sides (`haSendHeartbeatInterval`).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A connection that read nothing for this long is closed (`haHousekeepingInterval`).
pub const HOUSEKEEPING: Duration = Duration::from_secs(20);
/// Pause of the slave before reconnecting (Apache waits 5 s; a shorter pause shortens recovery).
pub const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Period of the slave's metadata sync and lag sampling.
pub const SYNC_PERIOD: Duration = Duration::from_secs(1);

/// A transfer header.
pub fn encode_header(phy_offset: i64, body_size: usize) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[..8].copy_from_slice(&phy_offset.to_be_bytes());
    b[8..].copy_from_slice(&(body_size as i32).to_be_bytes());
    b
}

/// An offset report.
pub fn encode_report(offset: i64) -> [u8; REPORT_LEN] {
    offset.to_be_bytes()
}

/// The master's reading of slave reports: the last complete 8-byte report in `buf` (Apache uses
/// `pos - pos % 8`) and how many bytes it consumed; `None` while no complete report is buffered.
pub fn last_report(buf: &[u8]) -> Option<(i64, usize)> {
    let used = buf.len() - buf.len() % REPORT_LEN;
    if used == 0 {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[used - REPORT_LEN..used]);
    Some((i64::from_be_bytes(b), used))
}

/// The slave's reading of transfer packets: takes one complete packet (`phyOffset`, body) off the
/// front of `buf`; `Err` on a negative body size or one larger than [`MAX_TRANSFER_BODY`] (the
/// connection must then be closed). Reserves at most one bounded packet ahead of the bytes received.
pub fn take_packet(buf: &mut BytesMut) -> Result<Option<(i64, Bytes)>, String> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let phy = i64::from_be_bytes(buf[..8].try_into().map_err(|_| "short header")?);
    let size = i32::from_be_bytes(buf[8..12].try_into().map_err(|_| "short header")?);
    if size < 0 {
        return Err(format!("negative body size {size} in a transfer header"));
    }
    let size = size as usize;
    if size > MAX_TRANSFER_BODY {
        return Err(format!(
            "transfer header at offset {phy} claims a {size}-byte body, more than the {MAX_TRANSFER_BODY} bytes \
             a master sends in one packet: protocol error"
        ));
    }
    if buf.len() < HEADER_LEN + size {
        buf.reserve(HEADER_LEN + size - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    Ok(Some((phy, buf.split_to(size).freeze())))
}

/// Where the master starts sending after the slave's first report (Apache: from the start of the
/// last commitlog file when the slave has nothing, else from what the slave asks for).
pub fn transfer_start(first_report: i64, master_max: i64, file_size: u64) -> i64 {
    if first_report == 0 {
        let fs = file_size.max(1) as i64;
        master_max - master_max % fs
    } else {
        first_report
    }
}

/// Why a slave cannot take a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// The slave holds bytes the master does not have (the master pushes from below the slave's end).
    SlaveAhead {
        /// The slave's commitlog end.
        slave: i64,
        /// Where the master's packet starts.
        master: i64,
    },
    /// The master pushes from beyond the slave's end (a gap).
    Gap {
        /// The slave's commitlog end.
        slave: i64,
        /// Where the master's packet starts.
        master: i64,
    },
}

impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketError::SlaveAhead { slave, master } => write!(
                f,
                "slave has {} bytes the master does not have (slave max offset {slave}, master pushes from {master}): the replicas diverged",
                slave - master
            ),
            PacketError::Gap { slave, master } => write!(
                f,
                "master pushed offset {master} not equal the max phy offset in slave {slave} (gap of {} bytes)",
                master - slave
            ),
        }
    }
}

/// The slave's per-packet check (Apache `DefaultHAClient.dispatchReadRequest`): an empty slave takes
/// any start; otherwise the packet must start exactly at the slave's end.
pub fn check_packet(slave_empty: bool, slave_max: i64, phy_offset: i64) -> Result<(), PacketError> {
    if slave_empty || slave_max == phy_offset {
        Ok(())
    } else if phy_offset < slave_max {
        Err(PacketError::SlaveAhead { slave: slave_max, master: phy_offset })
    } else {
        Err(PacketError::Gap { slave: slave_max, master: phy_offset })
    }
}

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
    fn add(&self, c: Arc<SlaveConn>) {
        self.conns.lock().push(c);
    }
    fn remove(&self, c: &Arc<SlaveConn>) {
        self.conns.lock().retain(|x| !Arc::ptr_eq(x, c));
        self.acks.send_modify(|g| *g += 1);
    }
    fn acked(&self) {
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
    /// The divergence found, if any.
    pub fn diverged(&self) -> Option<String> {
        self.diverged.lock().clone()
    }
    /// Takes what the NameServers answered a registration (keeps the last known addresses when an
    /// answer has none, as Apache does).
    pub fn on_register(&self, results: &[super::register::RegisterResult]) {
        for r in results {
            if let Some(m) = &r.master_addr {
                let mut cur = self.master_addr.lock();
                if cur.as_deref() != Some(m.as_str()) {
                    info!(master = %m, "master address updated");
                    *cur = Some(m.clone());
                }
            }
            if let Some(h) = &r.ha_server_addr {
                let changed = {
                    let mut cur = self.ha_master_addr.lock();
                    let changed = cur.as_deref() != Some(h.as_str());
                    *cur = Some(h.clone());
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

/// Replication state of a broker (both sides; a broker uses the one matching its role).
#[derive(Default)]
pub struct HaState {
    /// Master side.
    pub master: HaMaster,
    /// Slave side.
    pub slave: HaSlave,
}

impl HaState {
    /// The runtime-info keys of replication.
    pub fn runtime_info(&self, core: &BrokerCore) -> Vec<(String, String)> {
        let store_max = core.store().commit_log_max_offset();
        let mut out = Vec::new();
        if core.config().broker_role == super::config::BrokerRole::Slave {
            let master_max = self.slave.master_max.load(Ordering::Acquire);
            let lag = if master_max >= 0 { (master_max - store_max).max(0) } else { -1 };
            out.push(("masterAddr".into(), self.slave.master_addr().unwrap_or_default()));
            out.push(("haMasterAddr".into(), self.slave.ha_master_addr().unwrap_or_default()));
            out.push(("haConnected".into(), self.slave.is_connected().to_string()));
            out.push(("haReplicatedOffset".into(), store_max.to_string()));
            out.push(("haMasterMaxOffset".into(), master_max.to_string()));
            out.push(("haLagBytes".into(), lag.to_string()));
            out.push(("haReceivedBytes".into(), self.slave.received.load(Ordering::Relaxed).to_string()));
            out.push(("haDiverged".into(), self.slave.diverged().unwrap_or_else(|| "false".into())));
        } else {
            let slaves = self.master.slaves();
            let acks: Vec<i64> = slaves.iter().map(|c| c.ack.load(Ordering::Acquire)).filter(|a| *a >= 0).collect();
            let min_ack = acks.iter().copied().min();
            out.push(("haConnectedSlaves".into(), slaves.len().to_string()));
            out.push(("haSlaveAckOffset".into(), min_ack.unwrap_or(-1).to_string()));
            out.push((
                "haReplicationLagBytes".into(),
                min_ack.map(|a| (store_max - a).max(0)).unwrap_or(-1).to_string(),
            ));
            let list: Vec<String> =
                slaves.iter().map(|c| format!("{}:{}", c.peer, c.ack.load(Ordering::Acquire))).collect();
            out.push(("haSlaves".into(), list.join(";")));
            let ahead: Vec<String> =
                slaves.iter().filter(|c| c.ahead.load(Ordering::Acquire)).map(|c| c.peer.to_string()).collect();
            out.push(("haDivergedSlaves".into(), ahead.join(";")));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Master side.

/// Accepts slaves on the HA port until cancelled; each connection runs as a task of `tasks`.
pub async fn serve_ha_port(
    core: Arc<BrokerCore>,
    listener: TcpListener,
    tasks: TaskTracker,
    cancel: CancellationToken,
    span: tracing::Span,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                info!(slave = %peer, "HA connection accepted");
                let (core, cancel) = (core.clone(), cancel.clone());
                tasks.spawn(serve_slave(core, stream, peer, cancel).instrument(span.clone()));
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

async fn serve_slave(core: Arc<BrokerCore>, stream: TcpStream, peer: SocketAddr, cancel: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(SlaveConn { peer, ack: AtomicI64::new(-1), ahead: AtomicBool::new(false) });
    let ha = &core.ha.master;
    ha.add(conn.clone());
    let (rd, wr) = stream.into_split();
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
    mut rd: OwnedReadHalf,
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
    mut wr: OwnedWriteHalf,
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

// ---------------------------------------------------------------------------------------------
// Slave side.

/// Replicates from the master whose HA address the NameServer gave, reconnecting after failures,
/// until cancelled.
pub async fn run_ha_client(core: Arc<BrokerCore>, cancel: CancellationToken) {
    let slave = &core.ha.slave;
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
        let connected = tokio::select! {
            _ = cancel.cancelled() => break,
            r = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(&addr)) => r,
        };
        match connected {
            Ok(Ok(stream)) => {
                failures = 0;
                slave.connected.store(true, Ordering::Release);
                info!(master = %addr, "HA connected to master");
                let r = replicate(&core, stream, &cancel).await;
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

/// One HA session; `Ok` when cancelled, `Err(reason)` when the connection must be dropped.
async fn replicate(core: &Arc<BrokerCore>, stream: TcpStream, cancel: &CancellationToken) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let store = core.store().clone();
    let slave = &core.ha.slave;
    let (mut rd, mut wr) = stream.into_split();
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

// ---------------------------------------------------------------------------------------------
// Slave metadata sync (Apache's `SlaveSynchronize`, every second instead of every minute).

#[derive(Default)]
struct SyncMemo {
    topics_version: Option<crate::protocol::body::DataVersion>,
    groups_version: Option<crate::protocol::body::DataVersion>,
    offsets_hash: Option<u32>,
    delay_hash: Option<u32>,
}

/// Copies topics, consumer offsets, delay offsets and subscription groups from the master every
/// [`SYNC_PERIOD`] (skipping what did not change), and samples the master's commitlog max offset for
/// the lag.
pub async fn run_slave_sync(
    core: Arc<BrokerCore>,
    schedule: Arc<ScheduleService>,
    client: RemotingClient,
    cancel: CancellationToken,
) {
    let mut memo = SyncMemo::default();
    let mut tick = tokio::time::interval(SYNC_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(master) = core.ha.slave.master_addr() else { continue };
        if let Err(e) = sync_once(&core, &schedule, &client, &master, &mut memo).await {
            debug!(master = %master, error = %e, "slave sync failed");
        }
    }
}

async fn fetch(client: &RemotingClient, addr: &str, code: i32) -> Result<Bytes, String> {
    let req = RemotingCommand::request(code);
    let resp = client.invoke(addr, req, Duration::from_secs(3)).await.map_err(|e| e.to_string())?;
    if resp.code != response::SUCCESS {
        return Err(format!("request {code} answered {} {:?}", resp.code, resp.remark));
    }
    Ok(resp.body.clone())
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OffsetWrapper {
    #[serde(default)]
    offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupWrapper {
    #[serde(default)]
    data_version: Option<crate::protocol::body::DataVersion>,
    #[serde(default)]
    subscription_group_table: BTreeMap<String, super::meta::SubscriptionGroupConfig>,
}

async fn sync_once(
    core: &BrokerCore,
    schedule: &ScheduleService,
    client: &RemotingClient,
    master: &str,
    memo: &mut SyncMemo,
) -> Result<(), String> {
    let info = fetch(client, master, request::GET_BROKER_RUNTIME_INFO).await?;
    let v: serde_json::Value = crate::json::from_slice_lenient(&info).map_err(|e| e.to_string())?;
    if let Some(m) = v["table"]["commitLogMaxOffset"].as_str().and_then(|s| s.parse::<i64>().ok()) {
        core.ha.slave.master_max.store(m, Ordering::Release);
    }

    let body = fetch(client, master, request::GET_ALL_TOPIC_CONFIG).await?;
    let w: crate::protocol::body::TopicConfigSerializeWrapper =
        crate::json::from_slice_lenient(&body).map_err(|e| format!("topics: {e}"))?;
    if memo.topics_version.as_ref() != Some(&w.data_version) {
        let v = w.data_version;
        core.meta.topics.replace_from_master(w).map_err(|e| e.to_string())?;
        info!("topic configs synced from master");
        memo.topics_version = Some(v);
    }

    let body = fetch(client, master, request::GET_ALL_CONSUMER_OFFSET).await?;
    let h = crc32fast::hash(&body);
    if memo.offsets_hash != Some(h) {
        let w: OffsetWrapper = crate::json::from_slice_lenient(&body).map_err(|e| format!("offsets: {e}"))?;
        core.meta.offsets.merge_from_master(w.offset_table);
        memo.offsets_hash = Some(h);
    }

    let body = fetch(client, master, request::GET_ALL_DELAY_OFFSET).await?;
    let h = crc32fast::hash(&body);
    if memo.delay_hash != Some(h) {
        let w: OffsetWrapper2 = crate::json::from_slice_lenient(&body).map_err(|e| format!("delay offsets: {e}"))?;
        schedule.replace_offsets(w.offset_table);
        memo.delay_hash = Some(h);
    }

    let body = fetch(client, master, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).await?;
    let w: GroupWrapper = crate::json::from_slice_lenient(&body).map_err(|e| format!("groups: {e}"))?;
    if w.data_version.is_none() || memo.groups_version != w.data_version {
        core.meta
            .subscriptions
            .merge_from_master(w.subscription_group_table, w.data_version)
            .map_err(|e| e.to_string())?;
        info!("subscription groups synced from master");
        memo.groups_version = w.data_version;
    }
    Ok(())
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OffsetWrapper2 {
    #[serde(default)]
    offset_table: BTreeMap<i32, i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_report_layout() {
        let h = encode_header(0x0102_0304_0506_0708, 0x0A0B);
        assert_eq!(h, [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x0A, 0x0B]);
        assert_eq!(encode_report(258), [0, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn master_uses_the_last_complete_report() {
        assert_eq!(last_report(&[0, 0, 0]), None);
        let mut b = Vec::new();
        b.extend_from_slice(&encode_report(5));
        b.extend_from_slice(&encode_report(9));
        b.extend_from_slice(&[0, 0, 0]);
        assert_eq!(last_report(&b), Some((9, 16)));
    }

    #[test]
    fn slave_decodes_packets_split_anywhere() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&encode_header(100, 3));
        wire.extend_from_slice(b"abc");
        wire.extend_from_slice(&encode_header(103, 0));
        wire.extend_from_slice(&encode_header(103, 2));
        wire.extend_from_slice(b"de");
        for split in 0..wire.len() {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                buf.extend_from_slice(part);
                while let Some(p) = take_packet(&mut buf).unwrap() {
                    got.push(p);
                }
            }
            assert_eq!(
                got,
                vec![(100, Bytes::from_static(b"abc")), (103, Bytes::new()), (103, Bytes::from_static(b"de"))],
                "split at {split}"
            );
            assert!(buf.is_empty());
        }
        let mut bad = BytesMut::from(&encode_header(0, 0)[..]);
        bad[8] = 0xFF;
        assert!(take_packet(&mut bad).is_err());
    }

    #[test]
    fn oversized_transfer_header_is_refused_without_reserving() {
        // A header claiming 1 GiB: an error, and the buffer did not grow toward it.
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(&encode_header(4096, 1 << 30));
        buf.extend_from_slice(b"some bytes");
        let err = take_packet(&mut buf).expect_err("a 1 GiB packet is a protocol error");
        assert!(err.contains("1073741824") && err.contains("4096"), "{err}");
        assert!(buf.capacity() < 1 << 20, "reserved {} bytes for a bogus header", buf.capacity());
        // The largest allowed body is still taken, and only what it needs is reserved.
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&encode_header(0, MAX_TRANSFER_BODY));
        assert_eq!(take_packet(&mut buf), Ok(None));
        assert!(buf.capacity() <= HEADER_LEN + MAX_TRANSFER_BODY + 4096);
        buf.extend_from_slice(&vec![7u8; MAX_TRANSFER_BODY]);
        let (phy, body) = take_packet(&mut buf).expect("well-formed").expect("complete");
        assert_eq!((phy, body.len()), (0, MAX_TRANSFER_BODY));
        // One byte more is refused.
        let mut buf = BytesMut::from(&encode_header(0, MAX_TRANSFER_BODY + 1)[..]);
        assert!(take_packet(&mut buf).is_err());
    }

    #[test]
    fn start_point_rules() {
        assert_eq!(transfer_start(0, 0, 1024), 0);
        assert_eq!(transfer_start(0, 2500, 1024), 2048);
        assert_eq!(transfer_start(700, 2500, 1024), 700);
    }

    #[test]
    fn slave_offset_and_divergence_checks() {
        assert_eq!(check_packet(true, 0, 4096), Ok(()));
        assert_eq!(check_packet(false, 500, 500), Ok(()));
        assert_eq!(check_packet(false, 500, 400), Err(PacketError::SlaveAhead { slave: 500, master: 400 }));
        assert_eq!(check_packet(false, 500, 600), Err(PacketError::Gap { slave: 500, master: 600 }));
        assert!(PacketError::SlaveAhead { slave: 500, master: 400 }.to_string().contains("100 bytes"));
    }

    #[tokio::test]
    async fn sync_writer_waits_for_the_slave_ack() {
        let m = Arc::new(HaMaster::default());
        let c = Arc::new(SlaveConn {
            peer: "127.0.0.1:1".parse().unwrap(),
            ack: AtomicI64::new(-1),
            ahead: AtomicBool::new(false),
        });
        m.add(c.clone());
        assert!(!m.wait_for(10, 1, Duration::from_millis(20)).await);
        let (m2, c2) = (m.clone(), c.clone());
        let waiter = tokio::spawn(async move { m2.wait_for(10, 1, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        c2.ack.store(10, Ordering::Release);
        m.acked();
        assert!(waiter.await.unwrap());
        assert!(!m.wait_for(10, 2, Duration::from_millis(20)).await);
    }
}
