//! Consumer offsets: `topic@group → queueId → offset`, persisted to `consumerOffset.json` in
//! Apache's shape (bare integer queue keys, as fastjson writes `Map<Integer, Long>`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use serde::Deserialize;
use tracing::warn;

use super::{persist_config_file, MetaError};
use crate::protocol::body::DataVersion;

/// Separator of the offset table's keys (`TOPIC_GROUP_SEPARATOR`).
pub const TOPIC_GROUP_SEPARATOR: char = '@';

/// Apache's `consumerOffsetUpdateVersionStep`: the data version moves every this many commits.
const UPDATE_VERSION_STEP: u64 = 500;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OffsetFile {
    #[serde(default)]
    data_version: Option<DataVersion>,
    #[serde(default)]
    offset_table: Option<BTreeMap<String, Option<BTreeMap<String, serde_json::Value>>>>,
}

struct OffsetState {
    table: BTreeMap<String, BTreeMap<i32, i64>>,
    data_version: DataVersion,
}

/// The broker's committed consumer offsets.
pub struct ConsumerOffsetManager {
    path: PathBuf,
    state: RwLock<OffsetState>,
    write: Mutex<()>,
    commits: AtomicU64,
    /// Offsets reset by INVOKE_BROKER_TO_RESET_OFFSET, not yet taken by a pull: `topic@group` ->
    /// queue -> offset.
    resets: Mutex<HashMap<String, BTreeMap<i32, i64>>>,
    /// Where each group's last successful pull of each queue left off (`topic@group` -> queue ->
    /// next offset), in memory only, as Apache's `pullOffsetTable`: the in-flight and ready gauges
    /// compare it with the committed offsets and the queue ends.
    pulls: Mutex<HashMap<String, BTreeMap<i32, i64>>>,
}

fn key(topic: &str, group: &str) -> String {
    format!("{topic}{TOPIC_GROUP_SEPARATOR}{group}")
}

fn split_key(k: &str) -> Option<(&str, &str)> {
    k.split_once(TOPIC_GROUP_SEPARATOR)
}

fn lenient_i64(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl ConsumerOffsetManager {
    /// Loads `<config_dir>/consumerOffset.json` (or its `.bak`); entries that do not parse are skipped
    /// with a warning.
    pub fn load(config_dir: &Path) -> Result<Self, MetaError> {
        let path = config_dir.join("consumerOffset.json");
        let mut table = BTreeMap::new();
        let mut data_version = DataVersion::new();
        if let Some(f) = super::load_config_file::<OffsetFile>(&path)? {
            for (k, queues) in f.offset_table.unwrap_or_default() {
                if split_key(&k).is_none() {
                    warn!(key = %k, "consumer offset key without '@' skipped");
                    continue;
                }
                let mut m = BTreeMap::new();
                for (q, v) in queues.unwrap_or_default() {
                    match (q.trim().parse::<i32>(), lenient_i64(&v)) {
                        (Ok(q), Some(o)) => {
                            m.insert(q, o);
                        }
                        _ => warn!(key = %k, queue = %q, value = %v, "consumer offset entry skipped"),
                    }
                }
                table.insert(k, m);
            }
            if let Some(v) = f.data_version {
                data_version = v;
            }
        }
        Ok(ConsumerOffsetManager {
            path,
            state: RwLock::new(OffsetState { table, data_version }),
            write: Mutex::new(()),
            commits: AtomicU64::new(0),
            resets: Mutex::new(HashMap::new()),
            pulls: Mutex::new(HashMap::new()),
        })
    }

    /// Records `offset` as `group`'s committed offset of the queue.
    pub fn commit_offset(&self, client_host: &str, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let k = key(topic, group);
        let mut st = self.state.write();
        let prev = st.table.entry(k).or_default().insert(queue_id, offset);
        if let Some(p) = prev {
            if offset < p {
                warn!(
                    client_host,
                    group,
                    topic,
                    queue_id,
                    offset,
                    stored = p,
                    "update consumer offset less than store"
                );
            }
        }
        if (self.commits.fetch_add(1, Ordering::Relaxed) + 1) % UPDATE_VERSION_STEP == 0 {
            st.data_version.next();
        }
    }

    /// A slave takes its master's offsets (Apache's `putAll`: entries the master has replace the
    /// slave's; others stay).
    pub fn merge_from_master(&self, table: BTreeMap<String, BTreeMap<i32, i64>>) {
        let mut st = self.state.write();
        for (k, v) in table {
            st.table.insert(k, v);
        }
        st.data_version.next();
    }

    /// Merges offsets keeping the larger of ours and theirs per queue (acting-master hand-over:
    /// offsets committed on either side only move forward).
    pub fn merge_max(&self, table: BTreeMap<String, BTreeMap<i32, i64>>) {
        let mut st = self.state.write();
        for (k, v) in table {
            let e = st.table.entry(k).or_default();
            for (q, off) in v {
                let cur = e.entry(q).or_insert(off);
                *cur = (*cur).max(off);
            }
        }
        st.data_version.next();
    }

    /// Resets `group`'s offsets of `topic` (queue -> offset): commits them, and keeps them pending
    /// so the group's next pull of each queue is told to move there (PULL_OFFSET_MOVED) instead of
    /// committing its own, older offset over the reset.
    pub fn reset_offsets(&self, group: &str, topic: &str, table: &BTreeMap<i32, i64>) {
        let k = key(topic, group);
        {
            let mut st = self.state.write();
            let e = st.table.entry(k.clone()).or_default();
            for (q, off) in table {
                e.insert(*q, *off);
            }
            st.data_version.next();
        }
        self.resets.lock().entry(k).or_default().extend(table.iter().map(|(q, o)| (*q, *o)));
    }

    /// Takes the pending reset of one queue, if any (see [`Self::reset_offsets`]).
    pub fn take_reset(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        let mut r = self.resets.lock();
        if r.is_empty() {
            return None;
        }
        let k = key(topic, group);
        let q = r.get_mut(&k)?;
        let off = q.remove(&queue_id);
        if q.is_empty() {
            r.remove(&k);
        }
        off
    }

    /// Records where `group`'s last pull of the queue left off (Apache's `commitPullOffset`).
    pub fn commit_pull_offset(&self, group: &str, topic: &str, queue_id: i32, next_offset: i64) {
        self.pulls.lock().entry(key(topic, group)).or_default().insert(queue_id, next_offset);
    }

    /// The pull offsets (`topic@group` -> queue -> next offset).
    pub fn pull_offset_table(&self) -> HashMap<String, BTreeMap<i32, i64>> {
        self.pulls.lock().clone()
    }

    /// The committed offset, or -1 if none.
    pub fn query_offset(&self, group: &str, topic: &str, queue_id: i32) -> i64 {
        self.state.read().table.get(&key(topic, group)).and_then(|m| m.get(&queue_id).copied()).unwrap_or(-1)
    }

    /// Every committed offset of the group on the topic.
    pub fn query_offsets(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        self.state.read().table.get(&key(topic, group)).cloned().unwrap_or_default()
    }

    /// Drops every offset of the topic (all groups). Returns true if anything was removed.
    pub fn clean_offset_by_topic(&self, topic: &str) -> bool {
        let mut st = self.state.write();
        let before = st.table.len();
        st.table.retain(|k, _| split_key(k).map(|(t, _)| t != topic).unwrap_or(true));
        self.pulls.lock().retain(|k, _| split_key(k).map(|(t, _)| t != topic).unwrap_or(true));
        let removed = st.table.len() != before;
        if removed {
            st.data_version.next();
        }
        removed
    }

    /// Drops every offset of the group (all topics). Returns true if anything was removed.
    pub fn remove_offset(&self, group: &str) -> bool {
        let mut st = self.state.write();
        let before = st.table.len();
        st.table.retain(|k, _| split_key(k).map(|(_, g)| g != group).unwrap_or(true));
        self.pulls.lock().retain(|k, _| split_key(k).map(|(_, g)| g != group).unwrap_or(true));
        let removed = st.table.len() != before;
        if removed {
            st.data_version.next();
        }
        removed
    }

    /// The topics the group has offsets on.
    pub fn which_topic_by_consumer(&self, group: &str) -> BTreeSet<String> {
        self.state
            .read()
            .table
            .keys()
            .filter_map(|k| split_key(k).filter(|(_, g)| *g == group).map(|(t, _)| t.to_string()))
            .collect()
    }

    /// The groups with offsets on the topic.
    pub fn which_group_by_topic(&self, topic: &str) -> BTreeSet<String> {
        self.state
            .read()
            .table
            .keys()
            .filter_map(|k| split_key(k).filter(|(t, _)| *t == topic).map(|(_, g)| g.to_string()))
            .collect()
    }

    /// The whole table (`topic@group → queueId → offset`).
    pub fn offset_table(&self) -> BTreeMap<String, BTreeMap<i32, i64>> {
        self.state.read().table.clone()
    }

    /// The table's version.
    pub fn data_version(&self) -> DataVersion {
        self.state.read().data_version
    }

    /// Apache's JSON of the manager: `dataVersion`, derived `groupTopicMap`, and `offsetTable` with
    /// bare integer queue keys. Pretty (tabs) for the file, compact for GET_ALL_CONSUMER_OFFSET.
    pub fn encode(&self, pretty: bool) -> String {
        let st = self.state.read();
        let mut group_topic: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for k in st.table.keys() {
            if let Some((t, g)) = split_key(k) {
                group_topic.entry(g).or_default().insert(t);
            }
        }
        let v = serde_json::json!({
            "dataVersion": st.data_version,
            "groupTopicMap": group_topic,
            "offsetTable": st.table,
        });
        if pretty {
            super::fastjson_pretty(&v, Some(2))
        } else {
            super::fastjson_compact(&v, Some(2))
        }
    }

    /// Writes `consumerOffset.json` (the previous content is kept as `.bak`).
    pub fn persist(&self) -> Result<(), MetaError> {
        let _w = self.write.lock();
        let content = self.encode(true);
        persist_config_file(&self.path, &content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_query_persist_reload() {
        let dir = tempfile::tempdir().unwrap();
        let m = ConsumerOffsetManager::load(dir.path()).unwrap();
        assert_eq!(m.query_offset("g", "T", 0), -1);
        m.commit_offset("h", "g", "T", 0, 12);
        m.commit_offset("h", "g", "T", 3, 45);
        m.commit_offset("h", "g2", "T", 0, 1);
        m.commit_offset("h", "g", "U", 0, 2);
        assert_eq!(m.query_offset("g", "T", 3), 45);
        assert_eq!(m.which_group_by_topic("T").into_iter().collect::<Vec<_>>(), ["g", "g2"]);
        assert_eq!(m.which_topic_by_consumer("g").into_iter().collect::<Vec<_>>(), ["T", "U"]);
        m.persist().unwrap();
        let text = std::fs::read_to_string(dir.path().join("consumerOffset.json")).unwrap();
        assert!(text.contains("0:12"), "{text}");
        assert!(text.contains("\"groupTopicMap\""), "{text}");
        let m2 = ConsumerOffsetManager::load(dir.path()).unwrap();
        assert_eq!(m2.offset_table(), m.offset_table());
        assert!(m2.clean_offset_by_topic("T"));
        assert_eq!(m2.query_offset("g", "T", 0), -1);
        assert_eq!(m2.query_offset("g", "U", 0), 2);
        assert!(m2.remove_offset("g"));
        assert!(m2.offset_table().is_empty());
    }

    #[test]
    fn loads_java_written_file() {
        let dir = tempfile::tempdir().unwrap();
        let java = "{\n\t\"offsetTable\":{\n\t\t\"%RETRY%cg@cg\":{0:0\n\t\t},\n\t\t\"TopicTest@cg\":{0:250,1:249,2:\"7\",3:251\n\t\t}\n\t},\"dataVersion\":{\"counter\":3,\"timestamp\":1700000000000}\n}";
        std::fs::write(dir.path().join("consumerOffset.json"), java).unwrap();
        let m = ConsumerOffsetManager::load(dir.path()).unwrap();
        assert_eq!(m.query_offset("cg", "TopicTest", 1), 249);
        assert_eq!(m.query_offset("cg", "TopicTest", 2), 7);
        assert_eq!(m.query_offset("cg", "%RETRY%cg", 0), 0);
        assert_eq!(m.data_version().counter, 3);
        let compact = m.encode(false);
        assert!(compact.contains(r#""TopicTest@cg":{0:250,1:249,2:7,3:251}"#), "{compact}");
    }
}
