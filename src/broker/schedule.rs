//! Delayed messages (Apache's `ScheduleMessageService`): a message with a DELAY level is stored in
//! `SCHEDULE_TOPIC_XXXX`, queue `level - 1`; when its time comes it is stored again in its real topic
//! and queue. Progress per level is kept in `config/delayOffset.json` in Apache's shape.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::core::BrokerCore;
use super::delay::SCHEDULE_TOPIC;
use crate::json;
use crate::protocol::body::DataVersion;
use crate::protocol::message::{self, decode_record};
use crate::store::MessageInner;

/// `delayOffset.json`: delay level → next offset in that level's queue.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DelayOffsetFile {
    #[serde(default)]
    offset_table: BTreeMap<i32, i64>,
}

/// Delivers delayed messages of one broker.
pub struct ScheduleService {
    core: Arc<BrokerCore>,
    path: PathBuf,
    offsets: parking_lot::Mutex<BTreeMap<i32, i64>>,
    version: parking_lot::Mutex<DataVersion>,
}

impl ScheduleService {
    /// Loads `delayOffset.json` (falls back to `.bak`).
    pub fn load(core: Arc<BrokerCore>) -> Self {
        let path = core.store().config().store_path_root_dir.join("config").join("delayOffset.json");
        let offsets = match super::meta::load_config_file::<DelayOffsetFile>(&path) {
            Ok(f) => f.map(|f| f.offset_table).unwrap_or_default(),
            Err(e) => {
                warn!(error = %e, "delay offsets unreadable; delivering delayed messages from the queue starts");
                BTreeMap::new()
            }
        };
        ScheduleService {
            core,
            path,
            offsets: parking_lot::Mutex::new(offsets),
            version: parking_lot::Mutex::new(DataVersion::new()),
        }
    }

    /// The next offset to deliver per level.
    pub fn offsets(&self) -> BTreeMap<i32, i64> {
        self.offsets.lock().clone()
    }

    /// A slave takes its master's delay offsets.
    pub fn replace_offsets(&self, offsets: BTreeMap<i32, i64>) {
        *self.offsets.lock() = offsets;
        self.version.lock().next();
    }

    /// Takes the larger of ours and `other` per level (acting-master hand-over: delivery progress
    /// only moves forward).
    pub fn merge_offsets(&self, other: &BTreeMap<i32, i64>) {
        let mut o = self.offsets.lock();
        for (level, off) in other {
            let cur = o.entry(*level).or_insert(*off);
            *cur = (*cur).max(*off);
        }
        drop(o);
        self.version.lock().next();
    }

    /// The body of GET_ALL_DELAY_OFFSET and the content of `delayOffset.json`.
    pub fn encode(&self) -> String {
        let table = json::bare_key_map(self.offsets.lock().iter());
        format!("{{\"dataVersion\":{},\"offsetTable\":{}}}", self.version.lock().to_json(), table)
    }

    /// Writes `delayOffset.json` atomically, keeping the previous content as `.bak`.
    pub fn persist(&self) {
        if let Err(e) = super::meta::persist_config_file(&self.path, &self.encode()) {
            warn!(error = %e, "cannot persist delay offsets");
        }
    }

    /// Delivers due messages until cancelled. Sleeps until the earliest pending delivery (at most
    /// 1 s), or until a message arrives in the schedule topic (only there: a put to any other
    /// topic does not wake it).
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let levels = self.core.store().config().delay_levels_ms();
        let mut arrivals = self.core.store().subscribe_topic_dispatched(SCHEDULE_TOPIC);
        loop {
            if !super::acting::special_services_active(&self.core) {
                // A slave delivers only as acting master; otherwise its master does, and the
                // result arrives by replication.
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            let next = self.deliver_due(&levels).await;
            let now = crate::util::now_millis();
            let wait = next.map(|t| (t - now).clamp(1, 1000)).unwrap_or(1000) as u64;
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                r = arrivals.changed() => if r.is_err() { break },
            }
        }
        self.persist();
    }

    /// Delivers what is due; returns the earliest future deliver time seen.
    async fn deliver_due(&self, levels: &[i64]) -> Option<i64> {
        let store = self.core.store().clone();
        let mut earliest: Option<i64> = None;
        let mut changed = false;
        for (i, delay) in levels.iter().enumerate() {
            let level = i as i32 + 1;
            let queue = i as i32;
            let mut offset = *self.offsets.lock().get(&level).unwrap_or(&0);
            let min = store.min_offset_in_queue(SCHEDULE_TOPIC, queue);
            if offset < min {
                offset = min;
            }
            'batch: loop {
                if store.max_offset_in_queue(SCHEDULE_TOPIC, queue) <= offset {
                    break;
                }
                let Ok(r) = store.get_message(SCHEDULE_TOPIC, queue, offset, 32, usize::MAX, |_| true) else { break };
                if r.messages.is_empty() {
                    if r.next_begin_offset > offset {
                        offset = r.next_begin_offset;
                        changed = true;
                        continue;
                    }
                    break;
                }
                for (raw, qoff) in r.messages.iter().zip(r.queue_offsets.iter()) {
                    let Ok(m) = decode_record(raw, false) else {
                        offset = qoff + 1;
                        changed = true;
                        continue;
                    };
                    let due = m.store_timestamp + delay;
                    if due > crate::util::now_millis() {
                        earliest = Some(earliest.map_or(due, |e: i64| e.min(due)));
                        break 'batch;
                    }
                    if !self.deliver(&m).await {
                        // Store refused (e.g. disk full): retry later from the same offset.
                        earliest = Some(crate::util::now_millis() + 1000);
                        break 'batch;
                    }
                    offset = qoff + 1;
                    changed = true;
                }
            }
            self.offsets.lock().insert(level, offset);
        }
        if changed {
            self.version.lock().next();
        }
        earliest
    }

    async fn deliver(&self, m: &message::MessageExt) -> bool {
        let mut props = m.properties.clone();
        let Some(topic) = props.remove(message::property::REAL_TOPIC) else {
            warn!(offset = m.commit_log_offset, "delayed message without REAL_TOPIC dropped");
            return true;
        };
        let queue_id = props.remove(message::property::REAL_QID).and_then(|q| q.parse().ok()).unwrap_or(0);
        props.remove(message::property::DELAY);
        let mut inner = MessageInner::new(topic.clone(), queue_id, m.body.clone());
        inner.flag = m.flag;
        inner.sys_flag = m.sys_flag & !(message::sysflag::BORNHOST_V6 | message::sysflag::STOREHOST_V6);
        inner.born_timestamp = m.born_timestamp;
        inner.born_host = m.born_host;
        inner.store_host = self.core.store_host();
        inner.reconsume_times = m.reconsume_times;
        inner.set_properties(props);
        // A master stores it; an acting master escapes it to another master.
        match super::acting::escape_put(&self.core, inner).await {
            Ok(()) => {
                debug!(topic = %topic, queue_id, "delayed message delivered");
                true
            }
            Err(e) => {
                info!(topic = %topic, error = %e, "delayed message delivery refused; will retry");
                false
            }
        }
    }
}
