//! The revive task (Apache's PopReviveService): reads the revive topic's queues with the group
//! `CID_RMQ_SYS_REVIVE_GROUP`, matches checkpoints with acks, and for every popped message not acked
//! by its checkpoint's revive time writes a copy into the pop retry topic, where it is popped again.
//!
//! Progress is the revive group's consumer offset of each revive queue: the offset of the oldest
//! checkpoint still open (or the end when none is). After a restart the task reads again from there
//! and so rebuilds every open checkpoint with the acks that came after it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::processor::PROPERTY_FIRST_POP_TIME;
use super::{pop_retry_topic, PopError, PopService};
use crate::protocol::message::{self, decode_record, property};
use crate::protocol::perm;
use crate::protocol::pop::{AckMsg, PopCheckPoint, ACK_TAG, BATCH_ACK_TAG, CK_TAG, REVIVE_GROUP};
use crate::store::MessageInner;

/// How often the revive queues are scanned when nothing wakes the task.
const SCAN_INTERVAL: Duration = Duration::from_millis(500);
/// Least time between two scans when records keep arriving.
const MIN_GAP: Duration = Duration::from_millis(100);
/// Records read per revive queue and scan.
const READ_BATCH: usize = 256;
/// Records read per revive queue and scan at most.
const READ_PER_SCAN: usize = 8192;
/// Open checkpoints kept per revive queue at most; beyond, reading pauses until some are done.
const MAX_OPEN: usize = 100_000;

/// An open checkpoint.
struct Open {
    ck: PopCheckPoint,
    acked: Vec<bool>,
}

/// The state of one revive queue.
#[derive(Default)]
struct ReviveQueue {
    /// The next revive-queue offset to read.
    next: i64,
    /// Open checkpoints by key.
    open: HashMap<String, Open>,
    loaded: bool,
}

fn ck_key(topic: &str, group: &str, q: i32, so: i64, pt: i64, bn: &str) -> String {
    format!("{topic}@{group}@{q}@{so}@{pt}@{bn}")
}

/// Runs until cancelled.
pub async fn run(svc: Arc<PopService>, cancel: CancellationToken) {
    let mut queues: Vec<ReviveQueue> = Vec::new();
    loop {
        let wake = svc.revive_wake.notified();
        if svc.core().config().broker_role != crate::broker::config::BrokerRole::Slave {
            let n = svc.revive_queue_num() as usize;
            queues.resize_with(n, ReviveQueue::default);
            for (q, state) in queues.iter_mut().enumerate() {
                if cancel.is_cancelled() {
                    return;
                }
                if let Err(e) = scan(&svc, q as i32, state).await {
                    warn!(error = %e, revive_queue = q, "revive scan failed; retrying");
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(SCAN_INTERVAL) => {}
            _ = wake => {
                // Woken by a new record: scan soon, but at most every MIN_GAP under load.
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(MIN_GAP) => {}
                }
            }
        }
    }
}

async fn scan(svc: &PopService, q: i32, st: &mut ReviveQueue) -> Result<(), PopError> {
    let core = svc.core().clone();
    let store = core.store().clone();
    let topic = svc.revive_topic();
    if !st.loaded {
        let committed = core.meta.offsets.query_offset(REVIVE_GROUP, &topic, q);
        st.next = if committed >= 0 { committed } else { store.min_offset_in_queue(&topic, q) };
        st.loaded = true;
    }
    // Read what arrived.
    let mut read = 0;
    while read < READ_PER_SCAN && st.open.len() < MAX_OPEN {
        let r = store.get_message(&topic, q, st.next, READ_BATCH, usize::MAX, |_: i64| true)?;
        if r.messages.is_empty() {
            if r.next_begin_offset > st.next {
                st.next = r.next_begin_offset;
                continue;
            }
            break;
        }
        for (raw, off) in r.messages.iter().zip(&r.queue_offsets) {
            read += 1;
            let Ok(m) = decode_record(raw, false) else { continue };
            match m.tags() {
                Some(CK_TAG) => match serde_json::from_slice::<PopCheckPoint>(&m.body) {
                    Ok(mut ck) => {
                        ck.revive_offset = *off;
                        let n = ck.num.clamp(0, 64) as usize;
                        let key =
                            ck_key(&ck.topic, &ck.cid, ck.queue_id, ck.start_offset, ck.pop_time, &ck.broker_name);
                        st.open.entry(key).or_insert(Open { ck, acked: vec![false; n] });
                    }
                    Err(e) => warn!(error = %e, offset = off, "revive: a checkpoint does not parse; skipped"),
                },
                Some(ACK_TAG) | Some(BATCH_ACK_TAG) => match serde_json::from_slice::<AckMsg>(&m.body) {
                    Ok(ack) => {
                        let key = ck_key(
                            &ack.topic,
                            &ack.consumer_group,
                            ack.queue_id,
                            ack.start_offset,
                            ack.pop_time,
                            &ack.broker_name,
                        );
                        if let Some(open) = st.open.get_mut(&key) {
                            let offsets = match &ack.ack_offset_list {
                                Some(list) => list.clone(),
                                None => vec![ack.ack_offset],
                            };
                            for o in offsets {
                                if let Some(i) = open.ck.index_of(o) {
                                    if let Some(b) = open.acked.get_mut(i) {
                                        *b = true;
                                    }
                                }
                            }
                        }
                        // An ack whose checkpoint is already done (revived) is late: nothing to do.
                    }
                    Err(e) => warn!(error = %e, offset = off, "revive: an ack does not parse; skipped"),
                },
                _ => {}
            }
            st.next = off + 1;
        }
    }
    // Close what is acked, revive what is due.
    let now = crate::util::now_millis();
    let mut done = Vec::new();
    for (key, open) in st.open.iter() {
        if open.acked.iter().all(|a| *a) {
            done.push(key.clone());
        } else if now >= open.ck.revive_time() {
            match revive(svc, open).await {
                Ok(()) => done.push(key.clone()),
                Err(e) => warn!(error = %e, topic = %open.ck.topic, group = %open.ck.cid, "revive failed; will retry"),
            }
        }
    }
    for k in done {
        st.open.remove(&k);
    }
    let progress = st.open.values().map(|o| o.ck.revive_offset).min().unwrap_or(st.next);
    if core.meta.offsets.query_offset(REVIVE_GROUP, &topic, q) != progress {
        core.meta.offsets.commit_offset("PopReviveService", REVIVE_GROUP, &topic, q, progress);
    }
    Ok(())
}

/// Copies every unacked message of a checkpoint into the pop retry topic.
async fn revive(svc: &PopService, open: &Open) -> Result<(), PopError> {
    let core = svc.core().clone();
    let ck = &open.ck;
    let retry = if ck.topic.starts_with("%RETRY%") { ck.topic.clone() } else { pop_retry_topic(&ck.topic, &ck.cid) };
    let mut created = false;
    for (i, acked) in open.acked.iter().enumerate() {
        if *acked {
            continue;
        }
        let offset = ck.offset_of(i);
        let r = core.store().get_message(&ck.topic, ck.queue_id, offset, 1, usize::MAX, |_: i64| true)?;
        let Some(raw) = r.messages.first().filter(|_| r.queue_offsets.first() == Some(&offset)) else {
            debug!(topic = %ck.topic, q = ck.queue_id, offset, "revive: the message is gone; skipped");
            continue;
        };
        let Ok(m) = decode_record(raw, false) else { continue };
        if !created {
            core.meta
                .topics
                .create_topic_in_send_back(&retry, 1, perm::READ | perm::WRITE, false, 0)
                .map_err(PopError::Meta)?;
            core.wake_registration.notify_one();
            created = true;
        }
        let mut props: Vec<(String, String)> =
            message::iter_properties(&m.properties_string).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        props.retain(|(k, _)| k != super::processor::PROPERTY_POP_CK);
        if m.reconsume_times == 0 || !props.iter().any(|(k, _)| k == PROPERTY_FIRST_POP_TIME) {
            props.retain(|(k, _)| k != PROPERTY_FIRST_POP_TIME);
            props.push((PROPERTY_FIRST_POP_TIME.to_string(), ck.pop_time.to_string()));
        }
        if !props.iter().any(|(k, _)| k == property::UNIQ_KEY) {
            props.push((property::UNIQ_KEY.to_string(), m.msg_id.clone()));
        }
        let mut inner = MessageInner::new(retry.clone(), 0, m.body.clone());
        inner.flag = m.flag;
        inner.sys_flag = m.sys_flag & !(message::sysflag::BORNHOST_V6 | message::sysflag::STOREHOST_V6);
        inner.born_timestamp = m.born_timestamp;
        inner.born_host = m.born_host;
        inner.store_host = core.store_host();
        inner.reconsume_times = m.reconsume_times + 1;
        inner.set_properties(props);
        let r = core.put_message(inner).await;
        if !r.status.is_stored() {
            return Err(PopError::Put { what: "revived message", status: r.status.name() });
        }
    }
    Ok(())
}
