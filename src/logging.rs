//! Logging: to stdout, and per broker to its own files.
//!
//! Every task of a hosted broker runs inside a span carrying a `broker` field (its identity,
//! `Cluster_BrokerName_Id`). The [`LogRouter`] layer finds that field on the event's span scope and
//! writes the line to `<logRoot>/<identity>/<file>.log`, where the file follows the event's target:
//! `store.log` for the store, `remoting.log` for the transport, `auth_audit.log` for access-control
//! refusals (target `audit`), `broker.log` for everything else.
//! Lines outside any broker span are the container's own and go to `<logRoot>/BrokerContainer/`.
//! Files roll by size and by day into `otherdays/`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The directory name of the container's own log files.
pub const CONTAINER_LOG_DIR: &str = "BrokerContainer";

/// Logs to stdout, filtered by `RUST_LOG` (default `info`).
pub fn init_stdout() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(stdout_is_terminal()).try_init();
}

/// Logs to stdout and, per broker, to files under `log_root`. Returns the router, which the
/// container uses to close a removed broker's files.
pub fn init_with_router(log_root: &Path) -> LogRouter {
    let router = LogRouter::new(log_root, RollPolicy::default());
    let stdout_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let file_filter = EnvFilter::try_from_env("RMQC_FILE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(stdout_is_terminal())
                .with_filter(stdout_filter),
        )
        .with(router.clone().with_filter(file_filter))
        .try_init();
    router
}

/// Colours only when stdout is a terminal (and `NO_COLOR` is unset): redirected output stays plain.
fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// When log files roll over.
#[derive(Debug, Clone, Copy)]
pub struct RollPolicy {
    /// Roll when a file would grow past this size.
    pub max_bytes: u64,
    /// Rolled files kept per log file.
    pub max_files: usize,
}

impl Default for RollPolicy {
    fn default() -> Self {
        RollPolicy { max_bytes: 128 * 1024 * 1024, max_files: 10 }
    }
}

/// One log file that rolls by size and by day.
struct RollingFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    day: i64,
    policy: RollPolicy,
}

impl RollingFile {
    fn new(path: PathBuf, policy: RollPolicy) -> Self {
        RollingFile { path, file: None, size: 0, day: -1, policy }
    }

    fn write_line(&mut self, line: &[u8], day: i64) {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match OpenOptions::new().create(true).append(true).open(&self.path) {
                Ok(f) => {
                    self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
                    self.day = std::fs::metadata(&self.path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_secs() as i64 / 86_400)
                        .unwrap_or(day);
                    self.file = Some(f);
                }
                Err(_) => return,
            }
        }
        if self.size > 0 && (self.size + line.len() as u64 > self.policy.max_bytes || day != self.day) {
            self.roll();
            if self.file.is_none() {
                return self.write_line(line, day);
            }
        }
        self.day = day;
        if let Some(f) = self.file.as_mut() {
            if f.write_all(line).is_ok() {
                self.size += line.len() as u64;
            }
        }
    }

    fn roll(&mut self) {
        self.file = None;
        let Some(dir) = self.path.parent() else { return };
        let other = dir.join("otherdays");
        let _ = std::fs::create_dir_all(&other);
        let stem = self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let (y, m, d) = civil_from_days(self.day.max(0));
        let mut n = 0;
        let target = loop {
            let t = other.join(format!("{stem}.{y:04}-{m:02}-{d:02}.{n}.log"));
            if !t.exists() {
                break t;
            }
            n += 1;
        };
        let _ = std::fs::rename(&self.path, &target);
        // Keep the newest max_files rolled files of this log.
        if let Ok(rd) = std::fs::read_dir(&other) {
            let mut rolled: Vec<(std::time::SystemTime, PathBuf)> = rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{stem}.")))
                .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                .collect();
            rolled.sort();
            while rolled.len() > self.policy.max_files {
                let (_, p) = rolled.remove(0);
                let _ = std::fs::remove_file(p);
            }
        }
        self.size = 0;
    }
}

/// The broker identity a span carries, kept in the span's extensions.
struct BrokerTag(Arc<str>);

/// Open files by (broker identity, file name).
type FileTable = HashMap<(Arc<str>, &'static str), Arc<Mutex<RollingFile>>>;

struct RouterInner {
    root: PathBuf,
    policy: RollPolicy,
    files: RwLock<FileTable>,
}

/// A tracing layer that writes each broker's lines to that broker's own files. Cheap to clone.
#[derive(Clone)]
pub struct LogRouter {
    inner: Arc<RouterInner>,
}

impl LogRouter {
    /// A router writing under `root` (a leading `~/` is the home directory).
    pub fn new(root: &Path, policy: RollPolicy) -> Self {
        let root = match root.to_str().and_then(|s| s.strip_prefix("~/")) {
            Some(rest) => crate::config::home_dir().join(rest),
            None => root.to_path_buf(),
        };
        LogRouter { inner: Arc::new(RouterInner { root, policy, files: RwLock::new(HashMap::new()) }) }
    }

    /// The directory of a broker's (or the container's) files.
    pub fn dir_of(&self, identity: &str) -> PathBuf {
        self.inner.root.join(identity)
    }

    /// Closes every file of `identity` (a removed broker). A later line would reopen them.
    pub fn close(&self, identity: &str) {
        self.inner.files.write().retain(|(id, _), _| &**id != identity);
    }

    /// How many log files are open now (for leak checks).
    pub fn open_files(&self) -> usize {
        self.inner.files.read().len()
    }

    fn write(&self, identity: &Arc<str>, file: &'static str, line: &[u8], day: i64) {
        let key = (identity.clone(), file);
        let existing = self.inner.files.read().get(&key).cloned();
        let f = match existing {
            Some(f) => f,
            None => {
                let path = self.inner.root.join(&**identity).join(format!("{file}.log"));
                let policy = self.inner.policy;
                self.inner
                    .files
                    .write()
                    .entry(key)
                    .or_insert_with(|| Arc::new(Mutex::new(RollingFile::new(path, policy))))
                    .clone()
            }
        };
        f.lock().write_line(line, day);
    }
}

struct FieldVisitor<'a> {
    broker: Option<String>,
    message: &'a mut String,
    rest: &'a mut String,
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "broker" {
            self.broker = Some(value.to_string());
        } else if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "broker" {
            self.broker = Some(format!("{value:?}"));
        } else if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

impl<S> Layer<S> for LogRouter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let (mut m, mut r) = (String::new(), String::new());
        let mut v = FieldVisitor { broker: None, message: &mut m, rest: &mut r };
        attrs.record(&mut v);
        if let (Some(b), Some(span)) = (v.broker, ctx.span(id)) {
            span.extensions_mut().insert(BrokerTag(Arc::from(b.as_str())));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut identity: Option<Arc<str>> = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(tag) = span.extensions().get::<BrokerTag>() {
                    identity = Some(tag.0.clone());
                    break;
                }
            }
        }
        let identity = identity.unwrap_or_else(|| Arc::from(CONTAINER_LOG_DIR));
        let meta = event.metadata();
        let target = meta.target();
        let file = if target == "audit" {
            // Apache's RocketmqAuthAudit logger.
            "auth_audit"
        } else if target.contains("::store") {
            "store"
        } else if target.contains("::remoting") {
            "remoting"
        } else {
            "broker"
        };
        let (mut message, mut rest) = (String::new(), String::new());
        event.record(&mut FieldVisitor { broker: None, message: &mut message, rest: &mut rest });
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let secs = now.as_secs() as i64;
        let day = secs / 86_400;
        let (y, mo, d) = civil_from_days(day);
        let sod = secs % 86_400;
        let thread = std::thread::current();
        let line = format!(
            "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02},{:03} {} {} - {}{}\n",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60,
            now.subsec_millis(),
            meta.level(),
            thread.name().unwrap_or("-"),
            message,
            rest
        );
        self.write(&identity, file, line.as_bytes(), day);
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (UTC).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_778), (2026, 11, 21));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn rolls_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b").join("broker.log");
        let mut f = RollingFile::new(path.clone(), RollPolicy { max_bytes: 100, max_files: 2 });
        for _ in 0..20 {
            f.write_line(&[b'x'; 40], 20_778);
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 100, "current file {size} bytes");
        let rolled = std::fs::read_dir(dir.path().join("b").join("otherdays")).unwrap().count();
        assert_eq!(rolled, 2, "only max_files rolled files are kept");
        // A new day rolls even a small file.
        f.write_line(b"next day\n", 20_779);
        assert_eq!(std::fs::read(&path).unwrap(), b"next day\n");
    }
}
