//! Free-port blocks for process-level tests.
//!
//! Ports come from 10000..32000, below Linux's ephemeral range (32768..60999 by default), so a port a test
//! hands to a broker can never be taken meanwhile as the local port of some outgoing connection (a client,
//! an HA or DLedger link, mqadmin). Within one test process a shared cursor gives every call its own block,
//! so tests running in parallel threads never get overlapping blocks. Across test processes (two test
//! binaries at once, or two copies of one) every port handed out is reserved for the life of the process
//! by an abstract Unix socket named after it: the kernel lets one process at a time bind that name and
//! drops it when the process exits, so a port another test process was given (and checked free, but
//! whose broker has not bound it yet) is never handed out twice. Every port is also checked by binding it.

use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

const LOW: u32 = 10_000;
const HIGH: u32 = 32_000;

fn cursor() -> &'static AtomicU32 {
    static CURSOR: OnceLock<AtomicU32> = OnceLock::new();
    CURSOR.get_or_init(|| {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let spread = std::process::id().wrapping_mul(7_919).wrapping_add(nanos / 1_000);
        AtomicU32::new(spread % (HIGH - LOW))
    })
}

/// The reservations this process holds (kept until it exits).
fn held() -> &'static Mutex<Vec<UnixListener>> {
    static HELD: OnceLock<Mutex<Vec<UnixListener>>> = OnceLock::new();
    HELD.get_or_init(Mutex::default)
}

/// Reserves `port` for this process among test processes; false if another live process holds it.
fn reserve(port: u32) -> Option<UnixListener> {
    let name = format!("rmqc-test-port-{port}");
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
    UnixListener::bind_addr(&addr).ok()
}

/// A free TCP port on 127.0.0.1 such that `port - below ..= port + above` are all free too.
pub fn free_port_block(below: u16, above: u16) -> u16 {
    let size = u32::from(below) + u32::from(above) + 1;
    assert!(size < 1_000, "port block of {size} is too large");
    for _ in 0..500 {
        // One block per call, with one spare port between blocks.
        let start = LOW + cursor().fetch_add(size + 1, Ordering::Relaxed) % (HIGH - LOW - size);
        let p = start + u32::from(below);
        let Ok(p) = u16::try_from(p) else { continue };
        let block = p - below..=p + above;
        let Some(reserved) = block.clone().map(|q| reserve(u32::from(q))).collect::<Option<Vec<_>>>() else {
            continue;
        };
        if block.clone().all(|q| TcpListener::bind(("127.0.0.1", q)).is_ok()) {
            held().lock().unwrap_or_else(|e| e.into_inner()).extend(reserved);
            return p;
        }
    }
    panic!("no free port block of {size} found in {LOW}..{HIGH}");
}
