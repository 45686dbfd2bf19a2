//! Small helpers shared by the layers.

/// The address a broker registers when `brokerIP1` is not set: `ROCKETMQ_LOCAL_IP` if set, else
/// `127.0.0.1`. (Apache picks the first non-loopback address; we default to loopback so that a
/// quickstart never advertises an address off this machine. Set `brokerIP1` for multi-host use.)
pub fn local_ip() -> String {
    if let Ok(v) = std::env::var("ROCKETMQ_LOCAL_IP") {
        if !v.is_empty() {
            return v;
        }
    }
    "127.0.0.1".to_string()
}

/// Parses `1s`, `5m`, `2h`, `1d` into milliseconds.
pub fn parse_duration_unit(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(n * mult)
}

/// Local calendar time of `ms` since the Unix epoch, in the system time zone (`TZ`, else
/// `/etc/localtime`, as `localtime_r` reads it); `None` if out of range. Through jiff: it reads
/// the time zone database itself, so this is safe and thread-safe (no `localtime_r`/`tzset`).
pub fn local_time(ms: i64) -> Option<jiff::ZonedDateTime> {
    let t = jiff::Timestamp::from_millisecond(ms).ok()?;
    Some(t.to_zoned_datetime(jiff::tz::TimeZone::system()))
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// SIGTERM and Ctrl-C (SIGINT) listeners, installed when made: from then on such a signal no
/// longer ends the process by its default action but is kept, and ends [`ShutdownSignal::wait`]
/// (at once if it came before). A process installs them before it opens its ports, so a SIGTERM
/// while it is still starting (a pod deleted during start-up) leads to its graceful shutdown once
/// started instead of a kill with brokers registered and nothing flushed. Must be made inside a
/// Tokio runtime.
pub struct ShutdownSignal {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    /// Installs the listeners (where one cannot be installed, [`ShutdownSignal::wait`] falls back
    /// to Tokio's Ctrl-C listener).
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            ShutdownSignal { term: signal(SignalKind::terminate()).ok(), int: signal(SignalKind::interrupt()).ok() }
        }
        #[cfg(not(unix))]
        {
            ShutdownSignal {}
        }
    }

    /// Resolves once SIGTERM or Ctrl-C has been received since [`ShutdownSignal::install`].
    pub async fn wait(&mut self) {
        #[cfg(unix)]
        {
            let ShutdownSignal { term, int } = self;
            let term = async {
                match term {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            tokio::select! {
                _ = term => {}
                _ = int => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// True for `host:port` with a non-empty host of letters, digits, `.`, `-`, `_` (or a bracketed
/// IPv6 address) and a numeric port.
pub fn valid_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else { return false };
    if port.parse::<u16>().is_err() || host.is_empty() {
        return false;
    }
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
}

/// The outermost directory of `path` (itself included) that does not exist yet: what creating
/// `path` would add, and what to remove to undo it. None when `path` exists.
pub fn first_missing_ancestor(path: &std::path::Path) -> Option<std::path::PathBuf> {
    let mut missing = None;
    let mut cur = Some(path);
    while let Some(p) = cur {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing = Some(p.to_path_buf());
        cur = p.parent();
    }
    missing
}

/// Removes directories recorded by [`first_missing_ancestor`] before a failed start created them.
pub fn remove_created_dirs(created: &[std::path::PathBuf]) {
    for d in created {
        if let Err(e) = std::fs::remove_dir_all(d) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %d.display(), error = %e, "cannot remove a directory a failed start created");
            }
        }
    }
}

/// Milliseconds since the epoch of a civil date-time taken as UTC; None if a field is out of range.
#[allow(clippy::too_many_arguments)]
pub fn utc_millis(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, ms: i64) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || !(0..24).contains(&h) || !(0..60).contains(&mi) {
        return None;
    }
    if !(0..61).contains(&s) || !(0..1000).contains(&ms) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((((days * 24 + h) * 60 + mi) * 60 + s) * 1000 + ms)
}

/// The calling thread's kernel thread id (`gettid`), to address it alone with per-thread
/// scheduling calls; `None` where there is no such id (not Linux).
#[cfg(target_os = "linux")]
pub fn current_tid() -> Option<i32> {
    // SAFETY: gettid takes no arguments, touches no memory and cannot fail.
    Some(unsafe { libc::gettid() })
}

/// The calling thread's kernel thread id: `None` where there is no such id (not Linux).
#[cfg(not(target_os = "linux"))]
pub fn current_tid() -> Option<i32> {
    None
}
