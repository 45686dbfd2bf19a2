//! [`ExtFields`]: a command's custom header fields, kept as a vector sorted by key.
//!
//! A command carries a dozen fields or fewer, so a sorted vector beats a `BTreeMap` (one allocation
//! for the whole table instead of node allocations, no pointer chasing); keys that header structs
//! write, and the usual keys read from the wire, are `&'static str` instead of an allocated
//! `String` each.

use std::borrow::{Borrow, Cow};
use std::fmt;

/// A field name: static for the known names, owned for the others.
type Key = Cow<'static, str>;

/// The custom header fields of a command, sent as `extFields`: a map from name to value, iterated
/// in key order (so that encoding is deterministic), with the `BTreeMap` methods the code uses.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExtFields {
    /// Sorted by key, keys unique.
    entries: Vec<(Key, String)>,
}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl ExtFields {
    /// An empty table.
    pub const fn new() -> Self {
        ExtFields { entries: Vec::new() }
    }

    /// An empty table with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        ExtFields { entries: Vec::with_capacity(n) }
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        // Fields arrive (and are written) mostly in key order: check the end first.
        match self.entries.last() {
            None => return Err(0),
            Some((last, _)) if last.as_ref() < key => return Err(self.entries.len()),
            _ => {}
        }
        self.entries.binary_search_by(|(k, _)| k.as_ref().cmp(key))
    }

    fn insert_key(&mut self, key: Key, value: String) -> Option<String> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// Sets a field; returns the value it replaces.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        let key = match intern(&key) {
            Some(k) => Cow::Borrowed(k),
            None => Cow::Owned(key),
        };
        self.insert_key(key, value)
    }

    /// Sets a field whose name is static (no allocation for the name).
    pub fn insert_static(&mut self, key: &'static str, value: String) -> Option<String> {
        self.insert_key(Cow::Borrowed(key), value)
    }

    /// Sets a field whose name was read from the wire (the usual names are not allocated).
    pub fn insert_str(&mut self, key: &str, value: String) -> Option<String> {
        let key = match intern(key) {
            Some(k) => Cow::Borrowed(k),
            None => Cow::Owned(key.to_string()),
        };
        self.insert_key(key, value)
    }

    /// A field's value.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    /// True if the field is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Removes a field; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// Takes a field's value out, leaving the field set to an empty string (no shifting, no
    /// allocation): for a reader that consumes the whole table.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.find(key).ok().map(|i| std::mem::take(&mut self.entries[i].1))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The fields in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &String)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<'a> IntoIterator for &'a ExtFields {
    type Item = (&'a str, &'a String);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (Key, String)>, fn(&'a (Key, String)) -> (&'a str, &'a String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl IntoIterator for ExtFields {
    type Item = (String, String);
    type IntoIter = std::iter::Map<std::vec::IntoIter<(Key, String)>, fn((Key, String)) -> (String, String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter().map(|(k, v)| (k.into_owned(), v))
    }
}

impl FromIterator<(String, String)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut m = ExtFields::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl From<std::collections::BTreeMap<String, String>> for ExtFields {
    fn from(m: std::collections::BTreeMap<String, String>) -> Self {
        m.into_iter().collect()
    }
}

impl<Q: Borrow<str> + ?Sized> std::ops::Index<&Q> for ExtFields {
    type Output = String;
    /// The value of a field that must be set (panics otherwise, like `BTreeMap`'s index).
    fn index(&self, key: &Q) -> &String {
        #[allow(clippy::expect_used)]
        self.get(key.borrow()).expect("no such extFields entry")
    }
}

/// The static copy of a field name that headers use often, if `key` is one.
fn intern(key: &str) -> Option<&'static str> {
    const KEYS: &[&str] = &[
        "a",
        "b",
        "c",
        "d",
        "e",
        "f",
        "g",
        "h",
        "i",
        "j",
        "k",
        "l",
        "m",
        "n",
        "MSG_REGION",
        "TRACE_ON",
        "batch",
        "batchUniqId",
        "bname",
        "bornTimestamp",
        "brokerName",
        "commitOffset",
        "consumerGroup",
        "defaultTopic",
        "defaultTopicQueueNums",
        "expressionType",
        "flag",
        "maxMsgBytes",
        "maxMsgNums",
        "maxOffset",
        "maxReconsumeTimes",
        "minOffset",
        "msgId",
        "nextBeginOffset",
        "producerGroup",
        "properties",
        "queueId",
        "queueOffset",
        "reconsumeTimes",
        "subVersion",
        "subscription",
        "suggestWhichBrokerId",
        "suspendTimeoutMillis",
        "sysFlag",
        "topic",
        "transactionId",
        "unitMode",
    ];
    if key.len() == 1 {
        let b = key.as_bytes()[0];
        if b.is_ascii_lowercase() && b <= b'n' {
            return Some(KEYS[(b - b'a') as usize]);
        }
        return None;
    }
    KEYS[14..].iter().copied().find(|k| *k == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_sorted_map() {
        let mut m = ExtFields::new();
        let mut reference = std::collections::BTreeMap::new();
        let keys = ["topic", "b", "zz", "a", "queueId", "", "x1", "topic", "a", "MSG_REGION"];
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(m.insert(k.to_string(), n.to_string()), reference.insert(k.to_string(), n.to_string()));
        }
        assert_eq!(m.insert_static("flag", "f".into()), reference.insert("flag".into(), "f".into()));
        assert_eq!(m.insert_str("zz", "z".into()), reference.insert("zz".into(), "z".into()));
        assert_eq!(m.remove("b"), reference.remove("b"));
        assert_eq!(m.remove("nope"), reference.remove("nope"));
        assert_eq!(m.len(), reference.len());
        let ours: Vec<(String, String)> = m.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let theirs: Vec<(String, String)> = reference.clone().into_iter().collect();
        assert_eq!(ours, theirs);
        assert_eq!(m.get("topic"), reference.get("topic"));
        assert!(m.contains_key("a") && !m.contains_key("b"));
        assert_eq!(&m["queueId"], &reference["queueId"]);
        assert_eq!(ExtFields::from(reference.clone()), m);
        assert_eq!(m.clone().into_iter().collect::<Vec<_>>(), theirs);
        assert_eq!(format!("{m:?}"), format!("{reference:?}"));
    }

    #[test]
    fn interns_known_names_only() {
        assert_eq!(intern("a"), Some("a"));
        assert_eq!(intern("n"), Some("n"));
        assert_eq!(intern("o"), None);
        assert_eq!(intern("topic"), Some("topic"));
        assert_eq!(intern("topics"), None);
        assert_eq!(intern(""), None);
    }
}
