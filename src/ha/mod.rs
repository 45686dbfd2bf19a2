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
//! consume queues and index) and the broker's `slave_sync` copies the master's metadata every second.
//!
//! Replication depends on the store and on [`HaHost`], the narrow view of the broker it runs in;
//! the broker depends on this module, never the other way round. Files: [`wire`] (format),
//! [`master`], [`slave`].

pub mod master;
pub mod slave;
pub mod wire;

use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use master::*;
pub use slave::*;
pub use wire::*;

use crate::store::MessageStore;

/// What replication needs of the broker it runs in.
pub trait HaHost: Send + Sync + 'static {
    /// The broker's message store.
    fn store(&self) -> &Arc<MessageStore>;
    /// The broker's replication state.
    fn ha(&self) -> &HaState;
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
    /// The runtime-info keys of replication, given the local commitlog max offset and the role.
    pub fn runtime_info(&self, store_max: i64, is_slave: bool) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if is_slave {
            let master_max = self.slave.master_max();
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicI64};
    use std::time::Duration;

    use bytes::{Bytes, BytesMut};

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
