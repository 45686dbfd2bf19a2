//! The transaction check service (Apache's `TransactionalMessageCheckService` and
//! `TransactionalMessageServiceImpl.check`): every `transactionCheckInterval` it walks each half
//! queue from the committed progress, skips half messages that have an op record, discards those
//! checked `transactionCheckMax` times (to `TRANS_CHECK_MAX_TIME_TOPIC`), and for those older than
//! their immunity time appends a copy with the check count incremented and sends
//! CHECK_TRANSACTION_STATE for the copy to a live producer of the group.
//!
//! It reaches the broker only through [`TxHost`], so it can run wherever a store and a put sink
//! exist (a master today; an acting-master slave later).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::{
    check_body, discard_message, immunity_ms, next_check_times, parse_op, prop, renew_half, TxHost, HALF_TOPIC,
    OP_TOPIC,
};
use crate::protocol::codes::request;
use crate::protocol::header::CheckTransactionStateRequestHeader;
use crate::protocol::message::{self, property, MessageExt};
use crate::remoting::RemotingCommand;

/// Longest time one pass spends on one half queue (Apache's `MAX_PROCESS_TIME_LIMIT`).
const MAX_QUEUE_TIME: Duration = Duration::from_secs(60);
/// Most half messages one pass looks at per queue.
const MAX_HALVES_PER_PASS: usize = 100_000;
/// Most resolved half offsets one pass keeps in memory per queue (from op records).
const MAX_OP_OFFSETS_PER_PASS: usize = 200_000;
/// Op records read per store call.
const OP_BATCH: usize = 32;
/// How long a check request may wait for room on the producer's connection.
const CHECK_SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// What one pass did (for logs and tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    /// CHECK_TRANSACTION_STATE requests sent.
    pub checks_sent: usize,
    /// Half messages that needed a check but had no live producer connection.
    pub no_producer: usize,
    /// Half messages discarded to `TRANS_CHECK_MAX_TIME_TOPIC`.
    pub discarded: usize,
    /// Half messages skipped because an op record resolved them.
    pub resolved: usize,
    /// Half messages handed to another master by an acting master.
    pub escaped: usize,
}

/// Op records read for one half queue: which half offsets they resolve.
struct OpView {
    /// Half offset → op offset that resolved it.
    remove: HashMap<i64, i64>,
    /// Op offset → half offsets (≥ the scan start) it still has to see.
    pending: HashMap<i64, BTreeSet<i64>>,
    /// Op offsets fully accounted for.
    done: Vec<i64>,
    /// Next op offset to read.
    next: i64,
    /// True once the op queue was read to its end.
    at_end: bool,
    offsets_kept: usize,
}

impl OpView {
    fn new(start: i64) -> Self {
        OpView {
            remove: HashMap::new(),
            pending: HashMap::new(),
            done: Vec::new(),
            next: start,
            at_end: false,
            offsets_kept: 0,
        }
    }

    /// Reads op records until the end of the op queue (or the memory bound).
    fn fill(&mut self, host: &dyn TxHost, queue_id: i32, half_start: i64) {
        let store = host.store();
        while !self.at_end && self.offsets_kept < MAX_OP_OFFSETS_PER_PASS {
            let max = store.max_offset_in_queue(OP_TOPIC, queue_id);
            if self.next >= max {
                self.at_end = true;
                break;
            }
            let r = match store.get_message(OP_TOPIC, queue_id, self.next, OP_BATCH, usize::MAX, |_| true) {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "reading transaction op records failed");
                    return;
                }
            };
            if r.messages.is_empty() {
                if r.next_begin_offset > self.next {
                    // Removed or illegal offsets: skip them, as Apache does.
                    for o in self.next..r.next_begin_offset.min(self.next + MAX_OP_OFFSETS_PER_PASS as i64) {
                        self.done.push(o);
                    }
                    self.next = r.next_begin_offset;
                    continue;
                }
                self.at_end = true;
                break;
            }
            for (raw, op_off) in r.messages.iter().zip(r.queue_offsets.iter()) {
                let offsets = match message::decode_record(raw, false) {
                    Ok(op) => parse_op(&op),
                    Err(e) => {
                        warn!(op_offset = op_off, error = %e, "undecodable transaction op record skipped");
                        Vec::new()
                    }
                };
                self.add(*op_off, offsets, half_start);
            }
            self.next = r.next_begin_offset;
        }
    }

    /// Accounts for one op record resolving `offsets`; offsets below the scan start are done with.
    fn add(&mut self, op_off: i64, offsets: Vec<i64>, half_start: i64) {
        let set: BTreeSet<i64> = offsets.into_iter().filter(|o| *o >= half_start).collect();
        if set.is_empty() {
            self.done.push(op_off);
        } else {
            for o in &set {
                self.remove.insert(*o, op_off);
            }
            self.offsets_kept += set.len();
            self.pending.insert(op_off, set);
        }
    }

    /// If an op record resolved `half`, accounts for it and returns true.
    fn take(&mut self, half: i64) -> bool {
        let Some(op) = self.remove.remove(&half) else { return false };
        if let Some(set) = self.pending.get_mut(&op) {
            set.remove(&half);
            if set.is_empty() {
                self.pending.remove(&op);
                self.done.push(op);
            }
        }
        true
    }

    /// The new op progress: past every op offset that is done, contiguously from `old`.
    fn new_offset(&mut self, old: i64) -> i64 {
        self.done.sort_unstable();
        self.done.dedup();
        let mut next = old;
        for o in &self.done {
            if *o == next {
                next += 1;
            } else if *o > next {
                break;
            }
        }
        next
    }
}

/// The background check of one broker's half messages.
pub struct TransactionCheckService {
    host: Arc<dyn TxHost>,
}

impl TransactionCheckService {
    /// A service over a broker (or anything else that is a [`TxHost`]).
    pub fn new(host: Arc<dyn TxHost>) -> Self {
        TransactionCheckService { host }
    }

    /// Runs a pass every `transactionCheckInterval` (read afresh each time) until cancelled. Each
    /// pass runs on `exec` (the broker's own threads: it reads and writes the store) and is awaited;
    /// a cancelled service finishes the pass it is in (bounded by [`MAX_QUEUE_TIME`] per queue).
    pub async fn run(self: Arc<Self>, exec: tokio::runtime::Handle, cancel: CancellationToken) {
        info!("transaction check service started");
        loop {
            let interval = Duration::from_millis(self.host.check_config().interval_ms.max(1));
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            if !self.host.should_check() {
                continue;
            }
            let me = self.clone();
            let pass = exec.spawn(async move { me.check_once().await }.instrument(tracing::Span::current()));
            match pass.await {
                Ok(s) if s != PassStats::default() => debug!(?s, "transaction check pass"),
                Ok(_) => {}
                Err(e) if e.is_cancelled() => break,
                Err(e) => warn!(error = %e, "transaction check pass panicked"),
            }
        }
        info!("transaction check service stopped");
    }

    /// One pass over every half queue.
    pub async fn check_once(&self) -> PassStats {
        let mut stats = PassStats::default();
        for qid in 0..self.host.half_queue_nums().max(0) {
            self.check_queue(qid, &mut stats).await;
        }
        stats
    }

    fn read_progress(&self, topic: &str, qid: i32) -> i64 {
        let p = self.host.progress(topic, qid);
        let min = self.host.store().min_offset_in_queue(topic, qid);
        if p < 0 {
            min
        } else {
            p.max(min)
        }
    }

    async fn check_queue(&self, qid: i32, stats: &mut PassStats) {
        let host = &*self.host;
        let cfg = host.check_config();
        let started = Instant::now();
        let start_ms = crate::util::now_millis();
        let half_start = self.read_progress(HALF_TOPIC, qid);
        let op_start = self.read_progress(OP_TOPIC, qid);
        let mut ops = OpView::new(op_start);
        ops.fill(host, qid, half_start);
        let store = host.store().clone();
        let mut i = half_start;
        let mut new_offset = half_start;
        let mut looked = 0usize;
        while started.elapsed() < MAX_QUEUE_TIME && looked < MAX_HALVES_PER_PASS {
            looked += 1;
            if ops.take(i) {
                stats.resolved += 1;
                i += 1;
                new_offset = i;
                continue;
            }
            if i >= store.max_offset_in_queue(HALF_TOPIC, qid) {
                break;
            }
            let half = match store.get_message(HALF_TOPIC, qid, i, 1, usize::MAX, |_| true) {
                Ok(r) if r.messages.is_empty() => {
                    if r.next_begin_offset > i {
                        i = r.next_begin_offset;
                        new_offset = i;
                        continue;
                    }
                    break;
                }
                Ok(r) => match message::decode_record(&r.messages[0], false) {
                    Ok(m) => {
                        // Entries the store skipped (file fillers) move the scan with them.
                        if let Some(at) = r.queue_offsets.first().filter(|at| **at > i) {
                            i = *at;
                            new_offset = i;
                            if ops.take(i) {
                                stats.resolved += 1;
                                i += 1;
                                new_offset = i;
                                continue;
                            }
                        }
                        m
                    }
                    Err(e) => {
                        warn!(offset = i, error = %e, "undecodable half message skipped");
                        i += 1;
                        new_offset = i;
                        continue;
                    }
                },
                Err(e) => {
                    warn!(error = %e, "reading half messages failed");
                    break;
                }
            };
            if host.escapes_halves() {
                // Acting master (Apache's check escape): another master takes the half message
                // over and checks it with the producer; it is done with here.
                if !ops.at_end {
                    break; // an op record not read yet may resolve it: next pass
                }
                if let Some(m) = super::escaped_half(&half) {
                    if !host.escape_half(m).await {
                        break; // the next pass tries again from here
                    }
                    stats.escaped += 1;
                } else {
                    warn!(offset = i, "half message without REAL_TOPIC skipped");
                }
                i += 1;
                new_offset = i;
                continue;
            }
            let mut props = half.properties.clone();
            let now = crate::util::now_millis();
            let age = now - half.born_timestamp;
            let count = next_check_times(&props, cfg.check_max);
            if count.is_none() || age > cfg.file_reserved_ms {
                self.discard(&half, &props).await;
                stats.discarded += 1;
                i += 1;
                new_offset = i;
                continue;
            }
            if let Some(n) = count {
                props.insert(prop::CHECK_TIMES.into(), n.to_string());
            }
            if half.store_timestamp >= start_ms {
                break; // stored after this pass began: the next pass looks at it
            }
            let immunity = immunity_ms(&half.properties, cfg.timeout_ms);
            if let Some(imm) = immunity {
                if age <= imm && self.immune_copy(&half, &mut ops).await {
                    i += 1;
                    new_offset = i;
                    continue;
                }
            } else if (0..=cfg.timeout_ms).contains(&age) {
                break;
            }
            let imm = immunity.unwrap_or(cfg.timeout_ms);
            if !ops.at_end && age > -1 {
                // Op records not read to their end (memory bound): this one may be resolved by
                // one of them; the next pass continues from here.
                break;
            }
            if age > imm || age <= -1 {
                if !self.check_back(&half, &props, stats).await {
                    break; // the copy could not be stored: try again next pass
                }
            } else {
                break;
            }
            i += 1;
            new_offset = i;
        }
        if new_offset != half_start {
            host.set_progress(HALF_TOPIC, qid, new_offset);
        }
        let new_op = ops.new_offset(op_start);
        if new_op != op_start {
            host.set_progress(OP_TOPIC, qid, new_op);
        }
    }

    /// A half message still inside its custom immunity time: Apache's `checkPrepareQueueOffset`.
    /// Returns true when the message is done with for this pass (resolved, or re-appended as an
    /// immunity copy that remembers the original offset).
    async fn immune_copy(&self, half: &MessageExt, ops: &mut OpView) -> bool {
        if let Some(p) = half.property(prop::PREPARED_QUEUE_OFFSET) {
            let p = p.trim().parse::<i64>().unwrap_or(-1);
            if p == -1 {
                return false;
            }
            if ops.take(p) {
                return true;
            }
        }
        let mut props = half.properties.clone();
        props.entry(prop::PREPARED_QUEUE_OFFSET.into()).or_insert_with(|| half.queue_offset.to_string());
        self.host.put(renew_half(half, &props)).await.status.is_stored()
    }

    async fn discard(&self, half: &MessageExt, props: &HashMap<String, String>) {
        warn!(
            msg_id = %half.msg_id,
            uniq_key = half.uniq_key().unwrap_or(""),
            real_topic = half.property(property::REAL_TOPIC).unwrap_or(""),
            "half message checked too many times (or too old): moved to TRANS_CHECK_MAX_TIME_TOPIC"
        );
        if let Err(e) = self.host.ensure_check_max_time_topic() {
            warn!(error = %e, "cannot create TRANS_CHECK_MAX_TIME_TOPIC");
        }
        let r = self.host.put(discard_message(half, props)).await;
        if !r.status.is_stored() {
            warn!(status = r.status.name(), "discarded half message not stored");
        }
    }

    /// Appends a copy with the new check count and asks the producer group about the copy.
    async fn check_back(&self, half: &MessageExt, props: &HashMap<String, String>, stats: &mut PassStats) -> bool {
        let r = self.host.put(renew_half(half, props)).await;
        let Some(a) = r.append.filter(|_| r.status.is_stored()) else {
            warn!(status = r.status.name(), offset = half.queue_offset, "half message copy not stored");
            return false;
        };
        // Read back what was stored: the check names the copy's offsets.
        let copy = match super::read_half(self.host.store(), a.wrote_offset) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "half message copy unreadable");
                return true;
            }
        };
        let group = copy.property(prop::PGROUP).unwrap_or("").to_string();
        let Some(conn) = self.host.producer_channel(&group) else {
            warn!(group, "Check transaction failed, channel is null.");
            stats.no_producer += 1;
            return true;
        };
        let uniq = copy.uniq_key().map(str::to_string);
        let header = CheckTransactionStateRequestHeader {
            topic: Some(copy.topic.clone()),
            tran_state_table_offset: copy.queue_offset,
            commit_log_offset: copy.commit_log_offset,
            msg_id: uniq.clone(),
            transaction_id: uniq,
            offset_msg_id: Some(copy.msg_id.clone()),
            bname: Some(self.host.broker_name()),
        };
        let Some(body) = check_body(&copy) else {
            warn!(offset = copy.commit_log_offset, "half message copy cannot be encoded for a check");
            return true;
        };
        let req = RemotingCommand::request_with_header(request::CHECK_TRANSACTION_STATE, &header).with_body(body);
        match tokio::time::timeout(CHECK_SEND_TIMEOUT, conn.send_oneway(req)).await {
            Ok(Ok(())) => {
                stats.checks_sent += 1;
                info!(
                    group,
                    peer = %conn.peer(),
                    real_topic = copy.property(property::REAL_TOPIC).unwrap_or(""),
                    offset = copy.queue_offset,
                    times = copy.property(prop::CHECK_TIMES).unwrap_or(""),
                    "check transaction state"
                );
            }
            Ok(Err(e)) => warn!(group, error = %e, "check transaction failed"),
            Err(_) => warn!(group, "check transaction failed: the producer connection is full"),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::transaction::{op_message, to_half, TxCheckConfig, CHECK_MAX_TIME_TOPIC};
    use crate::remoting::{BoxFuture, ConnectionHandle};
    use crate::store::{MessageInner, MessageStore, MessageStoreConfig, PutMessageResult};
    use std::net::SocketAddr;

    /// A host with a store and nothing else: no broker, no producer online.
    struct StoreOnly {
        store: Arc<MessageStore>,
        progress: parking_lot::Mutex<HashMap<String, i64>>,
    }

    impl TxHost for StoreOnly {
        fn store(&self) -> &Arc<MessageStore> {
            &self.store
        }
        fn put(&self, m: MessageInner) -> BoxFuture<'_, PutMessageResult> {
            Box::pin(self.store.put_message(m))
        }
        fn check_config(&self) -> TxCheckConfig {
            TxCheckConfig { timeout_ms: 0, check_max: 2, interval_ms: 10, file_reserved_ms: i64::MAX }
        }
        fn should_check(&self) -> bool {
            true
        }
        fn progress(&self, topic: &str, _queue_id: i32) -> i64 {
            *self.progress.lock().get(topic).unwrap_or(&-1)
        }
        fn set_progress(&self, topic: &str, _queue_id: i32, offset: i64) {
            self.progress.lock().insert(topic.to_string(), offset);
        }
        fn half_queue_nums(&self) -> i32 {
            1
        }
        fn producer_channel(&self, _group: &str) -> Option<ConnectionHandle> {
            None
        }
        fn broker_name(&self) -> String {
            "b".into()
        }
        fn store_host(&self) -> SocketAddr {
            "127.0.0.1:10911".parse().unwrap()
        }
        fn ensure_check_max_time_topic(&self) -> Result<(), String> {
            Ok(())
        }
    }

    /// Waits until the queues reach the given ends and the clock has moved past the last store.
    async fn settle(store: &MessageStore, ends: &[(&str, i64)]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let stored_at = crate::util::now_millis();
        while ends.iter().any(|(t, n)| store.max_offset_in_queue(t, 0) < *n) || crate::util::now_millis() <= stored_at {
            assert!(Instant::now() < deadline, "the store dispatches within 10 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn a_pass_over_a_bare_store_resolves_checks_and_discards() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = MessageStoreConfig::with_root(dir.path());
        cfg.mapped_file_size_commit_log = 1 << 20;
        cfg.mapped_file_size_consume_queue = 20 * 100;
        cfg.max_hash_slot_num = 64;
        cfg.max_index_num = 200;
        let store = Arc::new(MessageStore::open(cfg).unwrap());
        let host = Arc::new(StoreOnly { store: store.clone(), progress: Default::default() });
        for key in ["K0", "K1"] {
            let mut m = MessageInner::new("Real", 0, &b"x"[..]);
            m.born_timestamp -= 10_000;
            m.set_properties([("TRAN_MSG", "true"), ("PGROUP", "pg"), ("UNIQ_KEY", key)]);
            to_half(&mut m);
            assert!(store.put_message(m).await.is_ok());
        }
        assert!(store.put_message(op_message(0, &[0], host.store_host())).await.is_ok());
        settle(&store, &[(HALF_TOPIC, 2), (OP_TOPIC, 1)]).await;
        let service = TransactionCheckService::new(host.clone());

        // Half 0 has its op record; half 1 gets a copy with one check (nobody to ask).
        let s = service.check_once().await;
        assert_eq!((s.resolved, s.no_producer, s.discarded), (1, 1, 0));
        assert_eq!((host.progress(HALF_TOPIC, 0), host.progress(OP_TOPIC, 0)), (2, 1));
        settle(&store, &[(HALF_TOPIC, 3)]).await;
        // The copy is checked again; the second copy has reached transactionCheckMax and, as in
        // Apache (the discard test comes before the freshness test), is discarded in the same pass.
        // (It is read in this pass if the store dispatched it in time, else in the next one.)
        let s = service.check_once().await;
        assert_eq!(s.no_producer, 1);
        let mut discarded = s.discarded;
        settle(&store, &[(HALF_TOPIC, 4)]).await;
        if discarded == 0 {
            let s = service.check_once().await;
            assert_eq!((s.no_producer, s.discarded), (0, 1));
            discarded = s.discarded;
        }
        assert_eq!(discarded, 1);
        assert_eq!(host.progress(HALF_TOPIC, 0), 4);
        settle(&store, &[(CHECK_MAX_TIME_TOPIC, 1)]).await;
        let r = store.get_message(CHECK_MAX_TIME_TOPIC, 0, 0, 1, usize::MAX, |_| true).unwrap();
        let m = message::decode_record(&r.messages[0], false).unwrap();
        assert_eq!((m.uniq_key(), m.property(prop::CHECK_TIMES)), (Some("K1"), Some("2")));
        assert_eq!(service.check_once().await, PassStats::default(), "nothing left");
        store.shutdown().unwrap();
    }

    #[test]
    fn op_progress_moves_only_past_fully_used_op_records() {
        // Half scan starts at 5. Op 0 (merged, Apache's batch form) resolves 5 and 6, op 1
        // resolves 2 (below the start: done at once), op 2 resolves 9.
        let mut ops = OpView::new(0);
        ops.add(0, vec![5, 6], 5);
        ops.add(1, vec![2], 5);
        ops.add(2, vec![9], 5);
        assert!(ops.take(5));
        assert_eq!(ops.new_offset(0), 0, "op 0 still has half 6 to account for");
        assert!(!ops.take(7));
        assert!(ops.take(6));
        assert_eq!(ops.new_offset(0), 2, "ops 0 and 1 are done; op 2 waits for half 9");
        assert!(ops.take(9));
        assert_eq!(ops.new_offset(0), 3);
        assert!(!ops.take(9), "each half offset is taken once");
    }
}
