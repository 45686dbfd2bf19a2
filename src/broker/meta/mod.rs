//! A broker's metadata: topics, consumer offsets, subscription groups, rebalance locks, and the
//! shared state the metadata processors need ([`BrokerMeta`]).
//!
//! Config files live in `<storeRoot>/config/` in Apache's formats (spec: message-format.md §12):
//! written atomically, the previous content kept as `<file>.bak`, read leniently (fastjson's bare
//! integer keys) and, when the main file is missing, empty or unparsable, read from the `.bak`.
//!
//! Wiring a broker:
//! 1. `let meta = BrokerMeta::load(store_root, config, store_view)?;`
//! 2. `table.register_all(MetaProcessor::CODES, Arc::new(MetaProcessor::new(meta.clone())))` on the
//!    broker's ports, with `meta.clone()` as the port's `ChannelEventListener` (closed connections
//!    drop their consumers and producers).
//! 3. Periodically: `meta.scan_expired_clients(now_millis())` (Apache: every 10 s) and
//!    `meta.persist_all()` (Apache flushes offsets every 5 s); once more at shutdown, then
//!    `meta.shutdown().await`.
//! 4. `meta.topics.subscribe_changes()` wakes when topics change: re-register with the NameServers.
//! 5. The send path uses `topics.create_topic_in_send_message_method` / `create_topic_in_send_back`.

pub mod lock;
pub mod offset;
pub mod subscription;
pub mod topic;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::broker::clients::{ConsumerManager, ProducerManager};
use crate::broker::config::BrokerConfig;
use crate::remoting::{ChannelEventListener, ConnectionHandle};

pub use lock::RebalanceLockManager;
pub use offset::ConsumerOffsetManager;
pub use subscription::{SubscriptionGroupConfig, SubscriptionGroupManager};
pub use topic::TopicConfigManager;

/// What the metadata layer needs from the message store. The broker implements it for the real
/// store; tests use an in-memory fake.
pub trait StoreView: Send + Sync {
    /// The next offset to be written in the queue (its message count), 0 for an unknown queue.
    fn max_offset(&self, topic: &str, queue_id: i32) -> i64;
    /// The smallest offset still in the queue, 0 for an unknown queue.
    fn min_offset(&self, topic: &str, queue_id: i32) -> i64;
    /// The store timestamp of the message at `offset` in the queue, if it is still there.
    fn store_time_of(&self, topic: &str, queue_id: i32, offset: i64) -> Option<i64>;
    /// True when the `batch` messages from `offset` of the queue are still in the store (Apache's
    /// `checkInMemByConsumeOffset`; used to answer 0 for a fresh group on a queue that starts at 0).
    fn check_in_mem_by_consume_offset(&self, topic: &str, queue_id: i32, offset: i64, batch: i32) -> bool;
    /// Deletes the queues (consume queues and their index entries) of the topics.
    fn delete_topics(&self, topics: &[String]);
}

/// Errors of the metadata layer. The processors map them to response codes.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// A config file could not be read or written.
    #[error("config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Neither a config file nor its `.bak` parses.
    #[error("config file {path} does not parse (and neither does its .bak): {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A topic or group name fails validation (Apache's `TopicValidator` remark).
    #[error("{0}")]
    InvalidName(String),
    /// The request would change a system topic.
    #[error("The topic[{0}] is conflict with system topic.")]
    SystemTopic(String),
    /// Attributes of a topic or group are not acceptable.
    #[error("{0}")]
    BadAttribute(String),
}

/// A message queue: `{brokerName, queueId, topic}` (fields in fastjson's alphabetical order).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueue {
    /// Broker (group) name.
    #[serde(default)]
    pub broker_name: String,
    /// Queue id.
    #[serde(default)]
    pub queue_id: i32,
    /// Topic.
    #[serde(default)]
    pub topic: String,
}

impl MessageQueue {
    /// A queue.
    pub fn new(topic: impl Into<String>, broker_name: impl Into<String>, queue_id: i32) -> Self {
        MessageQueue { broker_name: broker_name.into(), queue_id, topic: topic.into() }
    }
}

/// The shared state of the metadata processors of one broker.
pub struct BrokerMeta {
    /// The broker's config (swappable at runtime by UPDATE_BROKER_CONFIG).
    pub config: Arc<ArcSwap<BrokerConfig>>,
    /// Topic configs (`topics.json`).
    pub topics: TopicConfigManager,
    /// Consumer offsets (`consumerOffset.json`).
    pub offsets: ConsumerOffsetManager,
    /// Subscription groups (`subscriptionGroup.json`).
    pub subscriptions: SubscriptionGroupManager,
    /// Online consumers by group.
    pub consumers: ConsumerManager,
    /// Online producers by group.
    pub producers: ProducerManager,
    /// Rebalance (orderly consumption) locks.
    pub locks: RebalanceLockManager,
    /// The message store, as far as metadata needs it.
    pub store: Arc<dyn StoreView>,
}

/// Tunables of [`BrokerMeta`] that are JVM system properties in Apache.
#[derive(Debug, Clone)]
pub struct MetaOptions {
    /// `rocketmq.broker.rebalance.lockMaxLiveTime`, ms (default 60 000).
    pub lock_max_live_ms: i64,
}

impl Default for MetaOptions {
    fn default() -> Self {
        MetaOptions { lock_max_live_ms: RebalanceLockManager::from_system_property().max_live_ms() }
    }
}

impl BrokerMeta {
    /// Loads the config files under `<store_root>/config/` (creating Apache's system topics and
    /// groups) and builds the client managers.
    pub fn load(store_root: &Path, config: BrokerConfig, store: Arc<dyn StoreView>) -> Result<Arc<Self>, MetaError> {
        Self::load_with_options(store_root, config, store, MetaOptions::default())
    }

    /// [`BrokerMeta::load`] with explicit options.
    pub fn load_with_options(
        store_root: &Path,
        config: BrokerConfig,
        store: Arc<dyn StoreView>,
        options: MetaOptions,
    ) -> Result<Arc<Self>, MetaError> {
        let dir = store_root.join("config");
        std::fs::create_dir_all(&dir).map_err(|source| MetaError::Io { path: dir.clone(), source })?;
        let config = Arc::new(ArcSwap::from_pointee(config));
        let topics = TopicConfigManager::load(&dir, config.clone())?;
        let offsets = ConsumerOffsetManager::load(&dir)?;
        let subscriptions = SubscriptionGroupManager::load(&dir, config.clone())?;
        Ok(Arc::new(BrokerMeta {
            consumers: ConsumerManager::new(config.clone()),
            producers: ProducerManager::new(),
            locks: RebalanceLockManager::new(options.lock_max_live_ms),
            config,
            topics,
            offsets,
            subscriptions,
            store,
        }))
    }

    /// The broker config now.
    pub fn broker_config(&self) -> Arc<BrokerConfig> {
        self.config.load_full()
    }

    /// Writes every config file (the broker calls this periodically and at shutdown).
    pub fn persist_all(&self) -> Result<(), MetaError> {
        self.topics.persist()?;
        self.offsets.persist()?;
        self.subscriptions.persist()?;
        Ok(())
    }

    /// Drops consumers and producers whose last heartbeat is older than 120 s (the broker calls this
    /// periodically, Apache every 10 s).
    pub fn scan_expired_clients(&self, now: i64) {
        self.consumers.scan_expired(now);
        self.producers.scan_expired(now);
    }

    /// Waits for pending consumer notifications to be written (or dropped).
    pub async fn shutdown(&self) {
        self.consumers.shutdown().await;
    }
}

impl ChannelEventListener for BrokerMeta {
    fn on_close(&self, conn: &ConnectionHandle) {
        self.consumers.do_channel_close(conn);
        self.producers.do_channel_close(conn);
    }
}

// ---------------------------------------------------------------------------------------------
// Config file plumbing shared by the managers.

/// Reads a config file the way Apache's `ConfigManager.load` does: the main file, else (missing,
/// empty or unparsable) the `.bak`. `Ok(None)` when neither exists (first start).
pub(crate) fn load_config_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, MetaError> {
    let bak = bak_path(path);
    let mut first_error = None;
    for p in [path, bak.as_path()] {
        match std::fs::read(p) {
            Ok(bytes) if bytes.iter().all(|b| b.is_ascii_whitespace()) => {
                if p == path {
                    warn!(path = %p.display(), "config file is empty; trying its .bak");
                }
            }
            Ok(bytes) => match crate::json::from_slice_lenient::<T>(&bytes) {
                Ok(v) => {
                    if p != path {
                        warn!(path = %path.display(), "loaded config from the .bak file");
                    }
                    return Ok(Some(v));
                }
                Err(e) => {
                    warn!(path = %p.display(), error = %e, "config file does not parse");
                    first_error.get_or_insert(e.to_string());
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(MetaError::Io { path: p.to_path_buf(), source }),
        }
    }
    match first_error {
        Some(reason) => Err(MetaError::Corrupt { path: path.to_path_buf(), reason }),
        None => Ok(None),
    }
}

/// Writes a config file: the current content (if it parses) is kept as `<file>.bak`, then the new
/// content replaces the file atomically.
pub(crate) fn persist_config_file(path: &Path, content: &str) -> Result<(), MetaError> {
    let io = |source| MetaError::Io { path: path.to_path_buf(), source };
    match std::fs::read(path) {
        // Unchanged (the periodic persist of every broker, every 5 s): nothing to write or sync.
        Ok(old) if old == content.as_bytes() => return Ok(()),
        Ok(old) if crate::json::from_slice_lenient::<serde_json::Value>(&old).is_ok() => {
            crate::config::write_atomically(&bak_path(path), &old).map_err(io)?;
        }
        Ok(_) => warn!(path = %path.display(), "current config file does not parse; keeping the old .bak"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    crate::config::write_atomically(path, content.as_bytes()).map_err(io)
}

fn bak_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".bak");
    PathBuf::from(s)
}

/// Writes JSON the way fastjson's pretty format does (tab indentation, no space after `:`).
/// Object keys at `bare_key_depth` that are integers are written without quotes (fastjson's form
/// of `Map<Integer, _>`).
pub(crate) fn fastjson_pretty(v: &serde_json::Value, bare_key_depth: Option<usize>) -> String {
    let mut out = String::new();
    write_value(v, 0, true, bare_key_depth, &mut out);
    out
}

/// The compact form, with the same bare-key rule.
pub(crate) fn fastjson_compact(v: &serde_json::Value, bare_key_depth: Option<usize>) -> String {
    let mut out = String::new();
    write_value(v, 0, false, bare_key_depth, &mut out);
    out
}

fn write_value(v: &serde_json::Value, depth: usize, pretty: bool, bare: Option<usize>, out: &mut String) {
    use serde_json::Value;
    let newline = |out: &mut String, d: usize| {
        if pretty {
            out.push('\n');
            for _ in 0..d {
                out.push('\t');
            }
        }
    };
    match v {
        Value::Object(map) => {
            out.push('{');
            for (i, (k, val)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                if bare == Some(depth) && k.parse::<i64>().is_ok() {
                    out.push_str(k);
                } else {
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                }
                out.push(':');
                write_value(val, depth + 1, pretty, bare, out);
            }
            if !map.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, val) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_value(val, depth + 1, pretty, bare, out);
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

pub use crate::protocol::message::java_string_hash;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("TagA"), 2598919);
        assert_eq!(java_string_hash("hello"), 99162322);
        // Overflow wraps like Java's int arithmetic.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        // Non-BMP characters count as two UTF-16 code units.
        assert_eq!(java_string_hash("😀"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn pretty_writer_bare_keys_only_at_depth() {
        let v: serde_json::Value = serde_json::json!({"offsetTable": {"T@g": {"0": 5, "12": 7}}, "x": {"1": 2}});
        let s = fastjson_compact(&v, Some(2));
        assert_eq!(s, r#"{"offsetTable":{"T@g":{0:5,12:7}},"x":{"1":2}}"#);
        let p = fastjson_pretty(&v, Some(2));
        assert!(p.contains("\n\t\t\t0:5,"), "{p}");
        let back: serde_json::Value = crate::json::from_slice_lenient(p.as_bytes()).unwrap();
        assert_eq!(back["offsetTable"]["T@g"]["12"], 7);
    }

    #[test]
    fn bak_is_used_when_main_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        persist_config_file(&p, r#"{"a":1}"#).unwrap();
        persist_config_file(&p, r#"{"a":2}"#).unwrap();
        std::fs::write(&p, r#"{"a":"#).unwrap();
        let v: serde_json::Value = load_config_file(&p).unwrap().unwrap();
        assert_eq!(v["a"], 1);
        // A persist over the corrupt file keeps the good .bak.
        persist_config_file(&p, r#"{"a":3}"#).unwrap();
        let bak: serde_json::Value = serde_json::from_slice(&std::fs::read(bak_path(&p)).unwrap()).unwrap();
        assert_eq!(bak["a"], 1);
        std::fs::write(&p, "").unwrap();
        std::fs::write(bak_path(&p), "garbage").unwrap();
        assert!(matches!(load_config_file::<serde_json::Value>(&p), Err(MetaError::Corrupt { .. })));
        assert!(load_config_file::<serde_json::Value>(&dir.path().join("none.json")).unwrap().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn unchanged_content_is_not_written_again() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        persist_config_file(&p, r#"{"a":1}"#).unwrap();
        persist_config_file(&p, r#"{"a":2}"#).unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        persist_config_file(&p, r#"{"a":2}"#).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino, "an unchanged file was replaced");
        let bak: serde_json::Value = serde_json::from_slice(&std::fs::read(bak_path(&p)).unwrap()).unwrap();
        assert_eq!(bak["a"], 1, "the .bak still holds the previous version");
        persist_config_file(&p, r#"{"a":3}"#).unwrap();
        assert_ne!(std::fs::metadata(&p).unwrap().ino(), ino, "a change is written (atomically: a new file)");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), r#"{"a":3}"#);
    }
}
