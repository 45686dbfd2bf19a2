//! Message ids as producers make them (`UNIQ_KEY`), shared by the client, the broker (messages it
//! writes itself: transaction commits, escape bridge) and the tools.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU16, Ordering};

static UNIQ_COUNTER: AtomicU16 = AtomicU16::new(0);

/// A random number (seeded per call from the clock and the pid; good enough to spread picks).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    h.finish()
}

/// Start of the current month in local time, ms since the epoch (Apache's `MessageClientIDSetter`
/// counts the time part of a UNIQ_KEY from there).
fn start_of_month_ms(now_ms: i64) -> i64 {
    let start = crate::util::local_time((now_ms / 1000) * 1000)
        .and_then(|t| t.first_of_month().ok()?.start_of_day().ok())
        .map(|t| t.timestamp().as_millisecond());
    match start {
        Some(s) if s >= 0 => s,
        _ => now_ms - now_ms.rem_euclid(86_400_000),
    }
}

/// A new UNIQ_KEY: 32 upper-case hex chars of IPv4 (4 bytes), pid (2), random (4), milliseconds since
/// the start of the month (4) and a counter (2), like Apache's `MessageClientIDSetter`.
pub fn new_uniq_key() -> String {
    let ip = match crate::util::local_ip().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4,
        _ => Ipv4Addr::LOCALHOST,
    };
    let now = crate::util::now_millis();
    let counter = {
        // Start the counter at a random point so that keys of separate runs differ even in one ms.
        let _ = UNIQ_COUNTER.compare_exchange(0, (random_u64() as u16) | 1, Ordering::Relaxed, Ordering::Relaxed);
        UNIQ_COUNTER.fetch_add(1, Ordering::Relaxed)
    };
    let mut raw = Vec::with_capacity(16);
    raw.extend_from_slice(&ip.octets());
    raw.extend_from_slice(&(std::process::id() as u16).to_be_bytes());
    raw.extend_from_slice(&(random_u64() as u32).to_be_bytes());
    raw.extend_from_slice(&((now - start_of_month_ms(now)) as u32).to_be_bytes());
    raw.extend_from_slice(&counter.to_be_bytes());
    raw.iter().map(|b| format!("{b:02X}")).collect()
}

/// A cheap process-unique message id in the client format (32 upper-case hex chars) for the
/// `seq`-th message of a load run: loopback address, pid, seconds-ish time and the sequence.
pub fn seq_uniq_key(seq: u64) -> String {
    // Once per process (`getpid` is a system call), then hex digits written by hand: this runs
    // once per message of a load run.
    static PID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let pid = *PID.get_or_init(|| std::process::id() as u64 & 0xFFFF);
    let mut out = String::with_capacity(32);
    out.push_str("7F000001");
    push_hex(&mut out, pid, 4);
    push_hex(&mut out, (crate::util::now_millis() as u64) & 0xFFFF_FFFF, 8);
    push_hex(&mut out, seq & 0xFFFF_FFFF_FFFF, 12);
    out
}

/// Appends the `digits` low hex digits of `v`, upper case, zero-padded.
fn push_hex(out: &mut String, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (4 * i)) & 15) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_uniq_key_is_the_formatted_key() {
        for seq in [0u64, 1, 0xABCDEF, u64::MAX] {
            let k = seq_uniq_key(seq);
            let pid = std::process::id() as u64 & 0xFFFF;
            assert_eq!(k.len(), 32, "{k}");
            assert_eq!(&k[..12], format!("7F000001{pid:04X}"));
            assert_eq!(&k[20..], format!("{:012X}", seq & 0xFFFF_FFFF_FFFF));
            assert!(k[12..20].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()), "{k}");
        }
    }

    #[test]
    fn uniq_keys() {
        let a = new_uniq_key();
        let b = new_uniq_key();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()), "{a}");
        assert_ne!(a, b);
        assert!(a.starts_with("7F000001") || !a.is_empty());
    }

    #[test]
    fn month_start_is_before_now() {
        let now = crate::util::now_millis();
        let s = start_of_month_ms(now);
        assert!(s <= now && now - s < 32 * 86_400_000);
    }
}
