//! Held pulls and tag filters: the state the pull path shares with the broker core (which owns the
//! waiters and wakes them on arrival). A leaf: it uses nothing of the broker.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::protocol::codes::response;
use crate::protocol::message::java_string_hash;

/// A tag filter: everything, or the tags whose hash codes are listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    /// `*` (or empty): every message matches.
    pub all: bool,
    /// Hash codes of the subscribed tags.
    pub codes: Vec<i64>,
}

impl TagFilter {
    /// Everything.
    pub fn all() -> Self {
        TagFilter { all: true, codes: Vec::new() }
    }
    /// Parses a TAG expression: `*`, or tags separated by `||`.
    pub fn parse(expression: &str) -> Self {
        let e = expression.trim();
        if e.is_empty() || e == "*" {
            return Self::all();
        }
        let codes =
            e.split("||").map(str::trim).filter(|t| !t.is_empty()).map(|t| java_string_hash(t) as i64).collect();
        TagFilter { all: false, codes }
    }
    /// True if a message with this consume-queue tags code passes.
    pub fn matches(&self, tags_code: i64) -> bool {
        self.all || self.codes.contains(&tags_code)
    }
}

/// Held pulls of one queue: the offset each waits beyond, and its wake-up.
type Held = Vec<(i64, oneshot::Sender<()>)>;

/// Pulls waiting for messages, by queue. The store's arrival callback wakes them.
#[derive(Default)]
pub struct PullWaiters {
    map: Mutex<HashMap<(String, i32), Held>>,
}

impl PullWaiters {
    /// Registers a wait for a message at or beyond `offset` in the queue.
    pub fn wait(&self, topic: &str, queue_id: i32, offset: i64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.map.lock();
        let v = map.entry((topic.to_string(), queue_id)).or_default();
        v.retain(|(_, s)| !s.is_closed());
        v.push((offset, tx));
        rx
    }

    /// A queue's max offset grew to `max_offset`: wakes the pulls it satisfies.
    pub fn notify(&self, topic: &str, queue_id: i32, max_offset: i64) {
        let mut map = self.map.lock();
        let key = (topic.to_string(), queue_id);
        let Some(v) = map.get_mut(&key) else { return };
        let mut i = 0;
        while i < v.len() {
            if v[i].0 < max_offset || v[i].1.is_closed() {
                let (_, tx) = v.swap_remove(i);
                let _ = tx.send(());
            } else {
                i += 1;
            }
        }
        if v.is_empty() {
            map.remove(&key);
        }
    }

    /// Wakes every held pull (shutdown).
    pub fn wake_all(&self) {
        let drained: Vec<_> = self.map.lock().drain().collect();
        for (_, v) in drained {
            for (_, tx) in v {
                let _ = tx.send(());
            }
        }
    }

    /// Pulls held now.
    pub fn held(&self) -> usize {
        self.map.lock().values().map(Vec::len).sum()
    }
}

/// What a pull selects by: tags (matched on the consume queue) or an SQL92 selector (matched on
/// each candidate message's properties).
#[derive(Debug, Clone)]
pub enum PullFilter {
    /// A TAG expression.
    Tag(TagFilter),
    /// An SQL92 expression.
    Sql(std::sync::Arc<crate::filter::sql92::Expr>),
}

impl PullFilter {
    /// Compiles a subscription of `expression_type` (`TAG` when empty), refusing SQL92 unless
    /// `enablePropertyFilter` is on, with Apache's codes and remarks.
    pub fn build(
        expression_type: Option<&str>,
        expression: &str,
        property_filter_enabled: bool,
    ) -> Result<PullFilter, (i32, String)> {
        let t = expression_type.map(str::trim).filter(|t| !t.is_empty()).unwrap_or("TAG");
        if t.eq_ignore_ascii_case("TAG") {
            return Ok(PullFilter::Tag(TagFilter::parse(expression)));
        }
        if !t.eq_ignore_ascii_case("SQL92") {
            return Err((response::SUBSCRIPTION_PARSE_FAILED, format!("unknown expression type {t}")));
        }
        if !property_filter_enabled {
            return Err((
                response::SYSTEM_ERROR,
                format!("The broker does not support consumer to filter message by {t}"),
            ));
        }
        crate::filter::sql92::compile(expression).map(|e| PullFilter::Sql(std::sync::Arc::new(e))).map_err(|e| {
            (response::SUBSCRIPTION_PARSE_FAILED, format!("parse the consumer's subscription failed: {e}"))
        })
    }
}

impl crate::store::MessageFilter for &PullFilter {
    fn is_matched_by_consume_queue(&self, tags_code: i64) -> bool {
        match self {
            PullFilter::Tag(t) => t.matches(tags_code),
            PullFilter::Sql(_) => true,
        }
    }
    fn is_matched_by_commit_log(&self, record: &[u8]) -> bool {
        match self {
            PullFilter::Tag(_) => true,
            PullFilter::Sql(expr) => match crate::protocol::message::check_record(record, false) {
                crate::protocol::message::RecordCheck::Message(v) => {
                    let props = v.properties(record);
                    expr.matches(&|k: &str| crate::protocol::message::find_property(props, k))
                }
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_filter() {
        let f = TagFilter::parse("TagA || TagB");
        assert!(f.matches(java_string_hash("TagA") as i64));
        assert!(f.matches(java_string_hash("TagB") as i64));
        assert!(!f.matches(java_string_hash("TagC") as i64));
        assert!(TagFilter::parse("*").matches(12345));
    }

    #[test]
    fn waiters_wake_only_satisfied_pulls() {
        let w = PullWaiters::default();
        let mut a = w.wait("T", 0, 5);
        let mut b = w.wait("T", 0, 9);
        let mut c = w.wait("T", 1, 0);
        w.notify("T", 0, 6);
        assert!(a.try_recv().is_ok());
        assert!(b.try_recv().is_err());
        assert!(c.try_recv().is_err());
        assert_eq!(w.held(), 2);
        w.wake_all();
        assert!(b.try_recv().is_ok() && c.try_recv().is_ok());
        assert_eq!(w.held(), 0);
    }
}
