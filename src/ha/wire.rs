//! The HA wire format: transfer headers, offset reports, and the checks both sides apply.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};

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
