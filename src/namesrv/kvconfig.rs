//! The NameServer's namespaced key/value store (`KVConfigManager`), persisted to `kvConfig.json` as
//! `{"configTable":{"<namespace>":{"<key>":"<value>"}}}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::json;
use crate::protocol::body::KvTable;

/// The namespace of order-topic configs.
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KvConfigSerializeWrapper {
    #[serde(default)]
    config_table: BTreeMap<String, BTreeMap<String, String>>,
}

/// Namespaced key/value config, persisted after every change (temp file, fsync, rename).
pub struct KvConfigManager {
    path: PathBuf,
    table: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl KvConfigManager {
    /// Loads `path` (a missing file is an empty store; an unreadable or corrupt one is an error, so that
    /// it is never overwritten by accident).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let table = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => BTreeMap::new(),
            Ok(bytes) => {
                let w: KvConfigSerializeWrapper = json::from_slice_lenient(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("KV config file {} does not parse: {e}", path.display()),
                    )
                })?;
                w.config_table
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot read KV config file {}: {e}", path.display()),
                ))
            }
        };
        info!(path = %path.display(), namespaces = table.len(), "KV config loaded");
        Ok(KvConfigManager { path: path.to_path_buf(), table: Mutex::new(table) })
    }

    /// The file this store persists to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets a value and persists.
    pub fn put(&self, namespace: &str, key: &str, value: &str) -> std::io::Result<()> {
        let mut t = self.table.lock();
        let old = t.entry(namespace.to_string()).or_default().insert(key.to_string(), value.to_string());
        match old {
            None => info!(namespace, key, value, "KV config created"),
            Some(old) => info!(namespace, key, value, old, "KV config updated"),
        }
        self.persist(&t)
    }

    /// Removes a value (if present) and persists.
    pub fn delete(&self, namespace: &str, key: &str) -> std::io::Result<()> {
        let mut t = self.table.lock();
        let Some(ns) = t.get_mut(namespace) else { return Ok(()) };
        if ns.remove(key).is_none() {
            return Ok(());
        }
        if ns.is_empty() {
            t.remove(namespace);
        }
        info!(namespace, key, "KV config deleted");
        self.persist(&t)
    }

    /// One value.
    pub fn get(&self, namespace: &str, key: &str) -> Option<String> {
        self.table.lock().get(namespace).and_then(|ns| ns.get(key)).cloned()
    }

    /// A whole namespace, if it has entries.
    pub fn list(&self, namespace: &str) -> Option<KvTable> {
        self.table.lock().get(namespace).filter(|ns| !ns.is_empty()).map(|ns| KvTable { table: ns.clone() })
    }

    fn persist(&self, table: &BTreeMap<String, BTreeMap<String, String>>) -> std::io::Result<()> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            config_table: &'a BTreeMap<String, BTreeMap<String, String>>,
        }
        let bytes = serde_json::to_vec_pretty(&Out { config_table: table })
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        write_atomically(&self.path, &bytes)
    }
}

pub use crate::config::write_atomically;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub/kvConfig.json");
        let kv = KvConfigManager::load(&p).expect("empty");
        kv.put("ns", "k", "v").expect("put");
        kv.put("ns", "k2", "v2").expect("put");
        kv.delete("ns", "k2").expect("delete");
        kv.delete("nope", "k").expect("deleting nothing is fine");
        let kv2 = KvConfigManager::load(&p).expect("reload");
        assert_eq!(kv2.get("ns", "k").as_deref(), Some("v"));
        assert_eq!(kv2.get("ns", "k2"), None);
        assert_eq!(kv2.list("ns").map(|t| t.table.len()), Some(1));
        let text = std::fs::read_to_string(&p).expect("read");
        assert!(text.contains("\"configTable\""));
        std::fs::write(&p, "{garbage").expect("write");
        assert!(KvConfigManager::load(&p).is_err());
    }
}
