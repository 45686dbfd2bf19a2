//! POP consumption (RocketMQ 5's message-granularity load balancing): the broker hands out messages
//! of a queue to whichever consumer of a group asks, remembers each popped batch in a checkpoint
//! written to the revive topic, and puts the messages nobody acknowledged in time into the group's
//! pop retry topic (`%RETRY%<group>_<topic>`), from where they are popped again.
//!
//! - [`processor`]: POP_MESSAGE, ACK_MESSAGE, BATCH_ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME,
//!   NOTIFICATION, POLLING_INFO, QUERY_ASSIGNMENT, SET_MESSAGE_REQUEST_MODE.
//! - [`revive`]: the per-broker task that matches checkpoints with acks.
//! - this module: the state they share (queue locks, ordered-pop blocks, request modes).

pub mod processor;
pub mod revive;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::core::BrokerCore;
use super::meta::topic::REVIVE_TOPIC_PREFIX;
use crate::protocol::pop::SetMessageRequestModeRequestBody;

/// Errors of the POP layer, mapped to response codes at the processor edge.
#[derive(Debug, thiserror::Error)]
pub enum PopError {
    /// A record could not be written to the store.
    #[error("store refused the {what} record: {status}")]
    Put {
        /// What was written.
        what: &'static str,
        /// The store's status.
        status: &'static str,
    },
    /// The store could not be read.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// A config file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Topic metadata could not be changed.
    #[error("metadata: {0}")]
    Meta(#[source] super::meta::MetaError),
    /// JSON could not be written.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Apache's `popFromRetryProbability` (percent).
pub const POP_FROM_RETRY_PROBABILITY: u64 = 20;
/// Longest long poll of a pop or notification (ms).
pub const MAX_POLL_MS: i64 = 60_000;
/// At most this many pops and notifications are held at once per broker (beyond: POLLING_FULL).
pub const MAX_HELD_POLLS: usize = 100_000;

/// The pop retry topic of a group and topic (Apache's `KeyBuilder.buildPopRetryTopic`, V1 form; V2
/// with `enableRetryTopicV2`, which is off by default).
pub fn pop_retry_topic(topic: &str, group: &str) -> String {
    format!("%RETRY%{group}_{topic}")
}

/// Where an ordered pop of one queue stands.
#[derive(Debug, Clone, Default)]
pub struct OrderInfo {
    /// When the batch was popped.
    pub pop_time: i64,
    /// For how long.
    pub invisible_time: i64,
    /// The popped offsets.
    pub offsets: Vec<i64>,
    /// Which of them are acked.
    pub acked: HashSet<i64>,
    /// How often each offset has been popped before.
    pub consumed: HashMap<i64, i32>,
    /// The attempt that popped them.
    pub attempt_id: Option<String>,
}

impl OrderInfo {
    fn done(&self) -> bool {
        self.offsets.iter().all(|o| self.acked.contains(o))
    }
}

/// State shared by the POP processor and the revive task of one broker.
pub struct PopService {
    core: Arc<BrokerCore>,
    /// `topic@group@queueId` being popped now (Apache's QueueLockManager: try-lock, skip if held).
    queue_locks: Mutex<HashSet<String>>,
    ck_counter: AtomicU64,
    order: Mutex<HashMap<String, OrderInfo>>,
    modes: Mutex<BTreeMap<String, BTreeMap<String, SetMessageRequestModeRequestBody>>>,
    modes_path: PathBuf,
    /// Held pops by `topic@group@queueId`.
    held: Mutex<HashMap<String, usize>>,
    /// Woken when an ordered queue may be unblocked (an ack), so held pops look again.
    pub(crate) unblocked: Notify,
    /// Woken when a checkpoint or ack was written, so the revive task scans at once.
    pub(crate) revive_wake: Notify,
}

/// Removes the key from the set when dropped.
pub(crate) struct QueueLockGuard<'a> {
    set: &'a Mutex<HashSet<String>>,
    key: String,
}

impl Drop for QueueLockGuard<'_> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.key);
    }
}

/// Counts a held poll while alive.
pub(crate) struct HeldGuard<'a> {
    svc: &'a PopService,
    key: String,
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        let mut h = self.svc.held.lock();
        if let Some(n) = h.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                h.remove(&self.key);
            }
        }
    }
}

impl PopService {
    /// The state of one broker; loads `config/messageRequestMode.json` if present.
    pub fn new(core: Arc<BrokerCore>, store_root: &std::path::Path) -> Arc<PopService> {
        let modes_path = store_root.join("config").join("messageRequestMode.json");
        let modes = load_modes(&modes_path);
        Arc::new(PopService {
            core,
            queue_locks: Mutex::new(HashSet::new()),
            ck_counter: AtomicU64::new(0),
            order: Mutex::new(HashMap::new()),
            modes: Mutex::new(modes),
            modes_path,
            held: Mutex::new(HashMap::new()),
            unblocked: Notify::new(),
            revive_wake: Notify::new(),
        })
    }

    /// The broker core.
    pub fn core(&self) -> &Arc<BrokerCore> {
        &self.core
    }

    /// `rmq_sys_REVIVE_LOG_<cluster>`.
    pub fn revive_topic(&self) -> String {
        format!("{REVIVE_TOPIC_PREFIX}{}", self.core.config().broker_cluster_name)
    }

    /// The revive topic's queue count (`reviveQueueNum`, 8).
    pub fn revive_queue_num(&self) -> i32 {
        self.core.meta.topics.select(&self.revive_topic()).map(|t| t.write_queue_nums).unwrap_or(8).max(1)
    }

    /// The revive queue of the next non-ordered checkpoint (round robin).
    pub fn next_revive_qid(&self) -> i32 {
        (self.ck_counter.fetch_add(1, Ordering::Relaxed) % self.revive_queue_num() as u64) as i32
    }

    pub(crate) fn try_lock(&self, key: &str) -> Option<QueueLockGuard<'_>> {
        let mut s = self.queue_locks.lock();
        if !s.insert(key.to_string()) {
            return None;
        }
        Some(QueueLockGuard { set: &self.queue_locks, key: key.to_string() })
    }

    pub(crate) fn hold(&self, key: String) -> Option<HeldGuard<'_>> {
        let mut h = self.held.lock();
        if h.values().sum::<usize>() >= MAX_HELD_POLLS {
            return None;
        }
        *h.entry(key.clone()).or_default() += 1;
        Some(HeldGuard { svc: self, key })
    }

    /// Pops and notifications held now for `topic@group@queueId`.
    pub fn polling_num(&self, key: &str) -> usize {
        self.held.lock().get(key).copied().unwrap_or(0)
    }

    /// True when an ordered queue still has unacked messages of another attempt within their
    /// invisible time.
    pub fn order_blocked(&self, key: &str, attempt_id: Option<&str>, now: i64) -> bool {
        let order = self.order.lock();
        let Some(info) = order.get(key) else { return false };
        if info.done() || now >= info.pop_time + info.invisible_time {
            return false;
        }
        !(attempt_id.is_some() && info.attempt_id.as_deref() == attempt_id)
    }

    /// Records an ordered pop of `offsets`; returns how often each was popped before.
    pub fn order_update(
        &self,
        key: &str,
        attempt_id: Option<&str>,
        pop_time: i64,
        invisible_time: i64,
        offsets: &[i64],
    ) -> Vec<i32> {
        let mut order = self.order.lock();
        let info = order.entry(key.to_string()).or_default();
        let mut consumed = HashMap::new();
        let mut counts = Vec::with_capacity(offsets.len());
        for o in offsets {
            // Popped again (the previous batch expired or the same attempt retried): count it.
            let before = if info.offsets.contains(o) { info.consumed.get(o).copied().unwrap_or(0) + 1 } else { 0 };
            consumed.insert(*o, before);
            counts.push(before);
        }
        *info = OrderInfo {
            pop_time,
            invisible_time,
            offsets: offsets.to_vec(),
            acked: HashSet::new(),
            consumed,
            attempt_id: attempt_id.map(str::to_string),
        };
        counts
    }

    /// An ordered ack: marks `offset` acked and returns the offset to commit (the first unacked one,
    /// or past the batch), `None` when the offset was not popped in the current batch.
    pub fn order_commit_and_next(&self, key: &str, offset: i64, pop_time: i64) -> Option<i64> {
        let mut order = self.order.lock();
        let info = order.get_mut(key)?;
        if !info.offsets.contains(&offset) || (pop_time > 0 && info.pop_time != pop_time) {
            return None;
        }
        info.acked.insert(offset);
        let next = info
            .offsets
            .iter()
            .copied()
            .filter(|o| !info.acked.contains(o))
            .min()
            .unwrap_or_else(|| info.offsets.iter().max().copied().unwrap_or(offset) + 1);
        Some(next)
    }

    /// Postpones an ordered batch (CHANGE_MESSAGE_INVISIBLETIME with revive queue 999).
    pub fn order_change_invisible(&self, key: &str, now: i64, invisible_time: i64) {
        if let Some(info) = self.order.lock().get_mut(key) {
            info.pop_time = now;
            info.invisible_time = invisible_time;
        }
    }

    /// The request mode of a topic and group, if one was set.
    pub fn request_mode(&self, topic: &str, group: &str) -> Option<SetMessageRequestModeRequestBody> {
        self.modes.lock().get(topic).and_then(|g| g.get(group)).cloned()
    }

    /// Stores a request mode and writes `config/messageRequestMode.json`.
    pub fn set_request_mode(&self, body: SetMessageRequestModeRequestBody) -> Result<(), PopError> {
        let content = {
            let mut m = self.modes.lock();
            m.entry(body.topic.clone()).or_default().insert(body.consumer_group.clone(), body);
            serde_json::to_string_pretty(&serde_json::json!({ "messageRequestModeMap": &*m }))?
        };
        let path = self.modes_path.clone();
        crate::config::write_atomically(&path, content.as_bytes()).map_err(|source| PopError::Io { path, source })
    }
}

fn load_modes(path: &std::path::Path) -> BTreeMap<String, BTreeMap<String, SetMessageRequestModeRequestBody>> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct File {
        message_request_mode_map: BTreeMap<String, BTreeMap<String, SetMessageRequestModeRequestBody>>,
    }
    // At most 64 MiB: the file is ours, but nothing read decides unbounded memory.
    let Ok(meta) = std::fs::metadata(path) else { return BTreeMap::new() };
    if meta.len() > 64 << 20 {
        tracing::warn!(path = %path.display(), "messageRequestMode.json is too large; ignored");
        return BTreeMap::new();
    }
    match std::fs::read(path).map(|b| crate::json::from_slice_lenient::<File>(&b)) {
        Ok(Ok(f)) => f.message_request_mode_map,
        Ok(Err(e)) => {
            tracing::warn!(path = %path.display(), error = %e, "messageRequestMode.json does not parse; ignored");
            BTreeMap::new()
        }
        Err(_) => BTreeMap::new(),
    }
}
