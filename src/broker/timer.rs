//! Timer messages (RIP-43, Apache's `TimerMessageStore`): arbitrary deliver times.
//!
//! - Send side ([`apply_timer`]): a message with `TIMER_DELIVER_MS`, `TIMER_DELAY_SEC` or
//!   `TIMER_DELAY_MS` whose time is in the future is stored in `rmq_sys_wheel_timer` queue 0 with
//!   `TIMER_OUT_MS` (the deliver time rounded to the wheel's step), `REAL_TOPIC` and `REAL_QID`.
//! - [`TimerService`]: a dispatcher reads that queue into the timer files (wheel + log, in
//!   `store::timer`) and a scanner puts due messages back to their real topic and queue through a
//!   [`TimerSink`]. It needs only the store and the sink, so whoever delivers (a master, or later a
//!   slave acting as master) hands in its own sink. All file work runs on the blocking pool.
//!
//! A slot of time `T` is delivered once `T + precision` has passed; with the send side's rounding
//! (an exact multiple of the step moves one step back) no message leaves before its deliver time
//! and none later than one step after it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::config::BrokerConfig;
use super::core::{BrokerCore, Refusal};
use crate::protocol::codes::response;
use crate::protocol::message::{self, decode_record, java_string_hash, parse_properties, property};
use crate::store::commitlog::PutMessageStatus;
use crate::store::error::StoreError;
use crate::store::timer::{
    checkpoint_path, log_dir, wheel_path, Slot, TimerCheckpoint, TimerCheckpointValues, TimerLog, TimerUnit,
    TimerWheel, BLANK_SLOTS, MAGIC_DEFAULT, MAGIC_DELETE, MAGIC_ROLL, SLOTS_TOTAL, TIMER_TOPIC, UNIT_SIZE,
};
use crate::store::{MessageInner, MessageStore};

/// Wheel-topic entries read per dispatch step.
const ENQUEUE_BATCH: usize = 256;
/// Units delivered per scanner step (the rest of a slot follows in the next steps).
const DEQUEUE_BATCH: usize = 64;
/// Bytes of messages read per scanner step.
const DEQUEUE_BATCH_BYTES: usize = 4 << 20;
/// Period of the expired-timerlog cleanup (Apache: 30 s).
const CLEAN_INTERVAL: Duration = Duration::from_secs(30);
/// Units of one slot walked for its delete markers, and delete keys kept, at most.
const DELETE_SCAN_MAX: usize = 1_000_000;
/// Delete keys kept for one slot at most.
const DELETE_KEYS_MAX: usize = 100_000;
/// Scanner steps per round before the dispatcher runs again.
const DEQUEUE_STEPS_PER_ROUND: usize = 16;

/// The send-side conversion (Apache's `HookUtils.transformTimerMessage`), one call from the send
/// path: `Ok` leaves the message as it is or converted; `Err` is the answer to refuse it with.
pub fn apply_timer(core: &BrokerCore, m: &mut MessageInner) -> Result<(), Refusal> {
    convert_timer(&core.config(), crate::util::now_millis(), m)
}

/// [`apply_timer`] at a given time.
pub fn convert_timer(cfg: &BrokerConfig, now: i64, m: &mut MessageInner) -> Result<(), Refusal> {
    let tran = message::sysflag::transaction_value(m.sys_flag);
    if tran != 0 && tran != 0x8 {
        return Ok(());
    }
    if m.topic == TIMER_TOPIC {
        return Ok(());
    }
    let find = |k: &str| message::find_property(&m.properties, k).map(str::to_string);
    let (sec, ms, at) =
        (find(property::TIMER_DELAY_SEC), find(property::TIMER_DELAY_MS), find(property::TIMER_DELIVER_MS));
    if sec.is_none() && ms.is_none() && at.is_none() {
        return Ok(());
    }
    let level = find(property::DELAY).and_then(|d| d.trim().parse::<i32>().ok()).unwrap_or(0);
    if level > 0 {
        // A delay level wins: the timer properties go, the level's schedule path is used.
        let mut props = parse_properties(&m.properties);
        for k in [property::TIMER_DELIVER_MS, property::TIMER_DELAY_SEC, property::TIMER_DELAY_MS] {
            props.remove(k);
        }
        m.set_properties(props);
        return Ok(());
    }
    if find(property::TIMER_OUT_MS).is_some() {
        return Ok(());
    }
    if !cfg.timer_wheel_enable {
        return Err((
            response::SYSTEM_ERROR,
            format!("accurate timer message is not enabled, timerWheelEnable is {}", cfg.timer_wheel_enable),
        ));
    }
    let illegal = || {
        (
            response::MESSAGE_ILLEGAL,
            format!(
                "timer message illegal, the delay time should not be bigger than the max delay {}ms; or if set del \
                 msg, the delay time should be bigger than the current time",
                cfg.timer_max_delay_sec.saturating_mul(1000)
            ),
        )
    };
    let num = |v: &str| v.trim().parse::<i64>().ok();
    let deliver = if let Some(s) = sec {
        num(&s).and_then(|s| s.checked_mul(1000)).and_then(|d| now.checked_add(d))
    } else if let Some(d) = ms {
        num(&d).and_then(|d| now.checked_add(d))
    } else {
        at.as_deref().and_then(num)
    };
    let Some(mut deliver) = deliver else {
        return Err((
            response::MESSAGE_ILLEGAL,
            format!("timer message illegal: cannot parse its deliver time; {}", illegal().1),
        ));
    };
    if deliver <= now {
        // Due already: stored as a normal message (a delete marker must be in the future).
        if find(property::TIMER_DEL_UNIQKEY).is_some() {
            return Err(illegal());
        }
        return Ok(());
    }
    if deliver - now > cfg.timer_max_delay_sec.saturating_mul(1000) {
        return Err(illegal());
    }
    deliver = round_deliver_ms(deliver, cfg.timer_precision_ms);
    let mut props = parse_properties(&m.properties);
    props.insert(property::TIMER_OUT_MS.to_string(), deliver.to_string());
    props.insert(property::REAL_TOPIC.to_string(), m.topic.clone());
    props.insert(property::REAL_QID.to_string(), m.queue_id.to_string());
    m.set_properties(props);
    m.topic = TIMER_TOPIC.to_string();
    m.queue_id = 0;
    Ok(())
}

/// Apache's rounding of a deliver time to the wheel step: an exact multiple moves one step back,
/// anything else down to the step (the slot of time `T` fires at `T + precision`).
pub fn round_deliver_ms(deliver: i64, precision_ms: i64) -> i64 {
    let p = precision_ms.max(1);
    if deliver % p == 0 {
        deliver - p
    } else {
        deliver.div_euclid(p) * p
    }
}

/// Where delivered (and rolled) timer messages are put: the broker's own store, or, for a slave
/// acting as master, wherever it escapes to.
pub trait TimerSink: Send + Sync + 'static {
    /// Stores one message; the status decides whether it is retried.
    fn put(&self, msg: MessageInner) -> BoxFuture<'_, PutMessageStatus>;
}

/// The broker's own store (with its replication wait and put statistics).
pub struct CoreSink(pub Arc<BrokerCore>);

impl TimerSink for CoreSink {
    fn put(&self, msg: MessageInner) -> BoxFuture<'_, PutMessageStatus> {
        Box::pin(async move {
            let topic = msg.topic.clone();
            let r = self.0.put_message(msg).await;
            if let (true, Some(a)) = (r.status.is_stored(), r.append.as_ref()) {
                self.0.stats_put(&topic, a.msg_num, a.wrote_bytes);
            }
            r.status
        })
    }
}

/// The timer keys the service needs, validated by the broker config.
#[derive(Debug, Clone)]
pub struct TimerSettings {
    /// `timerPrecisionMs`.
    pub precision_ms: i64,
    /// `timerRollWindowSlot`, clamped as Apache does to 2..=SLOTS_TOTAL - BLANK_SLOTS.
    pub roll_window_slots: i64,
    /// `mappedFileSizeTimerLog`.
    pub log_file_size: u64,
    /// `timerFlushIntervalMs`.
    pub flush_interval_ms: u64,
    /// `timerStopEnqueue`.
    pub stop_enqueue: bool,
    /// `timerStopDequeue`.
    pub stop_dequeue: bool,
}

impl TimerSettings {
    /// From a validated broker config.
    pub fn from_config(c: &BrokerConfig) -> Self {
        let w = c.timer_roll_window_slot;
        let p = c.timer_precision_ms.max(1);
        let w = if (2..=SLOTS_TOTAL - BLANK_SLOTS).contains(&w) { w } else { SLOTS_TOTAL - BLANK_SLOTS };
        TimerSettings {
            precision_ms: p,
            // A unit's delay is an int of ms: the window must fit it.
            roll_window_slots: w.min(i32::MAX as i64 / p).max(2),
            log_file_size: c.mapped_file_size_timer_log,
            flush_interval_ms: c.timer_flush_interval_ms.max(10),
            stop_enqueue: c.timer_stop_enqueue,
            stop_dequeue: c.timer_stop_dequeue,
        }
    }
}

/// The open timer files and the two positions.
struct State {
    wheel: TimerWheel,
    log: TimerLog,
    checkpoint: TimerCheckpoint,
    cp: TimerCheckpointValues,
    /// Next wheel-topic queue offset to dispatch.
    queue_offset: i64,
    /// The slot being (or next to be) delivered.
    read_time_ms: i64,
    /// Inside the slot at `read_time_ms`: the next unit to deliver (the chain goes backwards).
    cursor: Option<i64>,
    /// Delete keys (`<topic>+<uniqKey>`) of the slot being delivered.
    deleted: HashSet<String>,
    last_flush: Instant,
}

/// One scanner step: units of one slot and the messages to put for them.
struct Batch {
    /// `None` for a unit that is not delivered (delete marker, message gone).
    items: Vec<Option<MessageInner>>,
    /// The next unit of the slot, -1 when the slot is done.
    next: i64,
}

/// Counters of a timer service.
#[derive(Debug, Default)]
pub struct TimerStats {
    /// Units written into the wheel.
    pub enqueued: AtomicU64,
    /// Messages put back to their topic (or rolled).
    pub delivered: AtomicU64,
    /// Messages dropped (no real topic, illegal at delivery, gone from the commitlog).
    pub dropped: AtomicU64,
}

/// Dispatches the wheel topic into the timer files and delivers due messages.
pub struct TimerService {
    store: Arc<MessageStore>,
    sink: Arc<dyn TimerSink>,
    settings: TimerSettings,
    state: Arc<parking_lot::Mutex<Option<State>>>,
    queue_offset: AtomicI64,
    read_time_ms: AtomicI64,
    /// Slot time below which nothing is delivered here (another broker of the group delivered
    /// it: the master's progress on a slave, the acting slave's on a returning master).
    read_floor_ms: AtomicI64,
    /// Counters.
    pub stats: TimerStats,
}

impl TimerService {
    /// A service over `store` delivering into `sink`. Nothing is opened before [`Self::run`] finds
    /// a timer message or timer files.
    pub fn new(store: Arc<MessageStore>, sink: Arc<dyn TimerSink>, settings: TimerSettings) -> Self {
        TimerService {
            store,
            sink,
            settings,
            state: Arc::new(parking_lot::Mutex::new(None)),
            queue_offset: AtomicI64::new(-1),
            read_time_ms: AtomicI64::new(-1),
            read_floor_ms: AtomicI64::new(-1),
            stats: TimerStats::default(),
        }
    }

    /// Next wheel-topic offset to dispatch and the slot time being delivered (-1 before opening).
    pub fn progress(&self) -> (i64, i64) {
        (self.queue_offset.load(Ordering::Acquire), self.read_time_ms.load(Ordering::Acquire))
    }

    /// Raises the slot time delivery continues from to at least `ms` (Apache's SlaveSynchronize
    /// of the timer checkpoint's `lastReadTimeMs`, and its reverse at a master's return).
    pub fn advance_read_time(&self, ms: i64) {
        self.read_floor_ms.fetch_max(floor(ms, self.settings.precision_ms), Ordering::AcqRel);
    }

    /// Runs until cancelled: dispatch and delivery while `active()` (a master; a slave leaves it to
    /// its master), then a last flush of the timer files.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken, active: Arc<dyn Fn() -> bool + Send + Sync>) {
        self.run_gated(cancel, active.clone(), active).await
    }

    /// As [`Self::run`], with dispatch into the timer files gated by `enqueue` and delivery by
    /// `dequeue` (a slave that may act as master keeps its own timer files up to date and
    /// delivers only while acting).
    pub async fn run_gated(
        self: Arc<Self>,
        cancel: CancellationToken,
        enqueue_active: Arc<dyn Fn() -> bool + Send + Sync>,
        dequeue_active: Arc<dyn Fn() -> bool + Send + Sync>,
    ) {
        let active = enqueue_active;
        // Woken by timer messages only (a put to any other topic does not concern it).
        let mut arrivals = self.store.subscribe_topic_dispatched(TIMER_TOPIC);
        let p = self.settings.precision_ms;
        let root = self.store.config().store_path_root_dir.clone();
        // Looked at once: until then a wakeup (any stored message) costs a queue look-up only.
        let files_exist = wheel_path(&root).exists();
        let mut error_wait = false;
        let mut last_clean = Instant::now();
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let mut worked = false;
            if error_wait || !active() {
                error_wait = false;
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            if self.state.lock().is_none() {
                let needed = files_exist || self.store.max_offset_in_queue(TIMER_TOPIC, 0) > 0;
                if !needed {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        r = arrivals.changed() => if r.is_err() { break },
                    }
                    continue;
                }
                if let Err(e) = self.open().await {
                    warn!(error = %e, "timer store cannot be opened; retrying");
                    error_wait = true;
                    continue;
                }
            }
            if !self.settings.stop_enqueue
                && self.store.max_offset_in_queue(TIMER_TOPIC, 0) > self.queue_offset.load(Ordering::Acquire)
            {
                match self.step(|st, store, s| enqueue(st, store, s, crate::util::now_millis())).await {
                    Some(Ok(n)) => worked |= n > 0,
                    Some(Err(e)) => {
                        warn!(error = %e, "timer dispatch failed; retrying");
                        error_wait = true;
                    }
                    None => {
                        warn!("timer dispatch step did not finish; retrying");
                        error_wait = true;
                    }
                }
            }
            let read_floor = self.read_floor_ms.load(Ordering::Acquire);
            if read_floor > self.read_time_ms.load(Ordering::Acquire) {
                let _ = self
                    .step(move |st, _, _| {
                        if st.read_time_ms < read_floor {
                            st.read_time_ms = read_floor;
                            st.cursor = None;
                            let _ = write_checkpoint(st);
                        }
                    })
                    .await;
            }
            let due = self.read_time_ms.load(Ordering::Acquire) < floor(crate::util::now_millis(), p);
            if !self.settings.stop_dequeue && due && dequeue_active() {
                for _ in 0..DEQUEUE_STEPS_PER_ROUND {
                    let Some(Some(batch)) =
                        self.step(|st, store, s| next_batch(st, store, s, crate::util::now_millis())).await
                    else {
                        break;
                    };
                    if !self.deliver(batch.items, &cancel).await {
                        break;
                    }
                    if self.step(move |st, _, s| commit_batch(st, s, batch.next)).await.is_none() {
                        break;
                    }
                    worked = true;
                }
            }
            let flush_due =
                self.state.lock().as_ref().is_some_and(|st| {
                    st.last_flush.elapsed() >= Duration::from_millis(self.settings.flush_interval_ms)
                });
            if flush_due {
                if let Some(Err(e)) = self.step(|st, _, _| flush(st)).await {
                    warn!(error = %e, "timer files flush failed");
                }
            }
            if last_clean.elapsed() >= CLEAN_INTERVAL {
                last_clean = Instant::now();
                match self.step(|st, store, _| st.log.delete_expired(store.commit_log_min_offset())).await {
                    Some(Ok(n)) if n > 0 => info!(files = n, "expired timerlog files deleted"),
                    Some(Err(e)) => warn!(error = %e, "deleting expired timerlog files failed"),
                    _ => {}
                }
            }
            if worked {
                tokio::task::yield_now().await;
                continue;
            }
            // Sleep to the next step boundary (when the next slot falls due), a flush, or a message.
            let now = crate::util::now_millis();
            let to_step = (p - now.rem_euclid(p)).clamp(1, p) as u64;
            let wait = to_step.min(self.settings.flush_interval_ms);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                r = arrivals.changed() => if r.is_err() { break },
            }
        }
        if let Some(Err(e)) = self.step(|st, _, _| flush(st)).await {
            warn!(error = %e, "timer files flush at shutdown failed");
        }
    }

    async fn open(&self) -> Result<(), StoreError> {
        let (store, settings, slot, span) =
            (self.store.clone(), self.settings.clone(), self.state.clone(), tracing::Span::current());
        let opened = tokio::task::spawn_blocking(move || span.in_scope(|| open_state(&store, &settings)))
            .await
            .map_err(|e| StoreError::InvalidArgument(format!("timer store opening did not finish: {e}")))??;
        self.queue_offset.store(opened.queue_offset, Ordering::Release);
        self.read_time_ms.store(opened.read_time_ms, Ordering::Release);
        *slot.lock() = Some(opened);
        Ok(())
    }

    /// Runs `f` on the open state on the blocking pool; `None` if there is no state or the task
    /// did not finish.
    async fn step<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State, &MessageStore, &TimerSettings) -> T + Send + 'static,
    ) -> Option<T> {
        let (state, store, settings, span) =
            (self.state.clone(), self.store.clone(), self.settings.clone(), tracing::Span::current());
        let r = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut g = state.lock();
                let st = g.as_mut()?;
                let r = f(st, &store, &settings);
                Some((r, st.queue_offset, st.read_time_ms))
            })
        })
        .await
        .ok()
        .flatten()?;
        self.queue_offset.store(r.1, Ordering::Release);
        self.read_time_ms.store(r.2, Ordering::Release);
        Some(r.0)
    }

    /// Puts every message of a batch, retrying what the store refuses for now; `false` if
    /// cancelled first (the slot is then delivered again after a restart).
    async fn deliver(&self, items: Vec<Option<MessageInner>>, cancel: &CancellationToken) -> bool {
        let retry = Duration::from_millis((500 * self.settings.precision_ms / 1000).max(10) as u64);
        for item in items {
            let Some(msg) = item else {
                continue;
            };
            loop {
                let status = self.sink.put(msg.clone()).await;
                if status.is_stored() {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    debug!(topic = %msg.topic, queue_id = msg.queue_id, "timer message delivered");
                    break;
                }
                if matches!(status, PutMessageStatus::MessageIllegal | PutMessageStatus::PropertiesSizeExceeded) {
                    warn!(topic = %msg.topic, status = status.name(), "timer message cannot be delivered; dropped");
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                info!(topic = %msg.topic, status = status.name(), "timer message delivery refused; will retry");
                tokio::select! {
                    _ = cancel.cancelled() => return false,
                    _ = tokio::time::sleep(retry) => {}
                }
            }
        }
        true
    }
}

fn floor(t: i64, p: i64) -> i64 {
    t.div_euclid(p) * p
}

/// Opens the timer files and recovers them (Apache's `recover`): the timerlog is scanned from one
/// file before the checkpoint's flushed offset to its valid end, the wheel revised from it; the
/// dispatch offset continues after the last unit's message.
fn open_state(store: &MessageStore, s: &TimerSettings) -> Result<State, StoreError> {
    let started = Instant::now();
    let root = store.config().store_path_root_dir.clone();
    let p = s.precision_ms;
    let (checkpoint, cp) = TimerCheckpoint::open(&checkpoint_path(&root))?;
    let log = TimerLog::load(&log_dir(&root), s.log_file_size)?;
    let mut wheel = TimerWheel::open(&wheel_path(&root), p)?;
    let begin = if log.files().is_empty() { 0 } else { (cp.last_timer_log_flush_pos - s.log_file_size as i64).max(0) };
    let end = log.recover(begin, true, |t, pos| wheel.revise_last(t, pos))?;
    let now_floor = floor(crate::util::now_millis(), p);
    let mut read_time = if checkpoint.existed { floor(cp.last_read_time_ms, p) } else { now_floor };
    read_time = read_time.max(now_floor - SLOTS_TOTAL * p + BLANK_SLOTS * p);
    // The wheel may point beyond the recovered log (a lost log tail): revise it again from there.
    let min_first = wheel.check_phy_pos(read_time, end);
    if min_first < end {
        warn!(min_first, end, "timer wheel points beyond the timerlog; revising it");
        log.recover(min_first, false, |t, pos| wheel.revise_last(t, pos))?;
    }
    let mut queue_offset = cp.last_timer_queue_offset;
    if end >= UNIT_SIZE as i64 {
        if let Some(u) = log.read(end - UNIT_SIZE as i64) {
            let msg = store
                .look_message_by_offset_size(u.offset_py, u.size_py.max(0) as usize)
                .and_then(|b| decode_record(&b, false).ok());
            if let Some(m) = msg {
                // Units up to the log's end are in the wheel: never dispatch them twice.
                queue_offset = queue_offset.max(m.queue_offset + 1);
            }
        }
    }
    let (min, max) = (store.min_offset_in_queue(TIMER_TOPIC, 0), store.max_offset_in_queue(TIMER_TOPIC, 0));
    queue_offset = queue_offset.clamp(min, max.max(min));
    let mut st = State {
        wheel,
        log,
        checkpoint,
        cp,
        queue_offset,
        read_time_ms: read_time,
        cursor: None,
        deleted: HashSet::new(),
        last_flush: Instant::now(),
    };
    flush(&mut st)?;
    info!(
        queue_offset,
        read_time_ms = read_time,
        timerlog_end = end,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "timer store recovered (checkpoint read time {}, queue offset {})",
        cp.last_read_time_ms,
        cp.last_timer_queue_offset
    );
    Ok(st)
}

/// Writes the checkpoint values (page cache: they survive the process).
fn write_checkpoint(st: &mut State) -> Result<(), StoreError> {
    st.cp.last_read_time_ms = st.read_time_ms;
    st.cp.last_timer_queue_offset = st.queue_offset;
    st.cp.master_timer_queue_offset = st.queue_offset;
    st.cp.timestamp = crate::util::now_millis();
    st.cp.counter += 1;
    st.checkpoint.write(&st.cp)
}

/// Flushes the timerlog, then the wheel (which covers every unit written), then the checkpoint
/// naming the flushed timerlog offset.
fn flush(st: &mut State) -> Result<(), StoreError> {
    let pos = st.log.flush()?;
    st.wheel.flush()?;
    st.cp.last_timer_log_flush_pos = pos as i64;
    write_checkpoint(st)?;
    st.checkpoint.sync()?;
    st.last_flush = Instant::now();
    Ok(())
}

/// Dispatches up to [`ENQUEUE_BATCH`] wheel-topic messages into the wheel; returns how many.
fn enqueue(st: &mut State, store: &MessageStore, s: &TimerSettings, now: i64) -> Result<usize, StoreError> {
    let (min, max) = (store.min_offset_in_queue(TIMER_TOPIC, 0), store.max_offset_in_queue(TIMER_TOPIC, 0));
    st.queue_offset = st.queue_offset.clamp(min, max.max(min));
    if st.queue_offset >= max {
        return Ok(0);
    }
    let r = store.get_message(TIMER_TOPIC, 0, st.queue_offset, ENQUEUE_BATCH, DEQUEUE_BATCH_BYTES, |_| true)?;
    if r.messages.is_empty() {
        if r.next_begin_offset > st.queue_offset {
            st.queue_offset = r.next_begin_offset;
        }
        return Ok(0);
    }
    let write_time = floor(now, s.precision_ms);
    let mut n = 0;
    for (raw, qoff) in r.messages.iter().zip(r.queue_offsets.iter()) {
        match decode_record(raw, false) {
            Ok(m) => match m.property(property::TIMER_OUT_MS).and_then(|v| v.trim().parse::<i64>().ok()) {
                Some(target) => {
                    place(st, s, write_time, target, &m, raw.len())?;
                    n += 1;
                }
                None => warn!(offset = qoff, "wheel-topic message without TIMER_OUT_MS skipped"),
            },
            Err(e) => warn!(offset = qoff, error = %e, "unreadable wheel-topic message skipped"),
        }
        st.queue_offset = qoff + 1;
    }
    write_checkpoint(st)?;
    Ok(n)
}

/// Apache's `doEnqueue`: appends a unit to the slot of the message's time (parked at the roll
/// window if farther), linking it to the slot's previous last unit.
fn place(
    st: &mut State,
    s: &TimerSettings,
    write_time: i64,
    target: i64,
    m: &message::MessageExt,
    size: usize,
) -> Result<(), StoreError> {
    let p = s.precision_ms;
    let window = s.roll_window_slots;
    let mut delayed = floor(target, p);
    let mut magic = MAGIC_DEFAULT;
    if delayed - write_time >= window * p {
        magic |= MAGIC_ROLL;
        delayed = if delayed - write_time - window * p < window / 3 * p {
            write_time + window / 2 * p
        } else {
            write_time + window * p
        };
    }
    let delete = m.property(property::TIMER_DEL_UNIQKEY).is_some();
    if delete {
        magic |= MAGIC_DELETE;
    }
    // A slot already delivered (or being delivered) takes nothing more: late units go to the
    // first slot still ahead of the scanner.
    let first_open = if st.cursor.is_some() { st.read_time_ms + p } else { st.read_time_ms };
    if delayed < first_open {
        delayed = first_open;
    }
    let slot = st.wheel.slot(delayed);
    let unit = TimerUnit {
        size: UNIT_SIZE as i32,
        prev_pos: slot.last_pos,
        magic,
        write_time_ms: write_time,
        delay: (delayed - write_time) as i32,
        offset_py: m.commit_log_offset,
        size_py: size as i32,
        topic_hash: m.property(property::REAL_TOPIC).map(java_string_hash).unwrap_or(0),
        reserved: 0,
    };
    let pos = st.log.append(&unit.encode())?;
    let first = if slot == Slot::EMPTY { pos } else { slot.first_pos };
    let num = if delete { slot.num - 1 } else { slot.num + 1 };
    st.wheel.put_slot(delayed, first, pos, num, slot.magic);
    Ok(())
}

/// The next units to deliver: empty slots up to now are skipped; `None` when nothing is due.
fn next_batch(st: &mut State, store: &MessageStore, s: &TimerSettings, now: i64) -> Option<Batch> {
    let p = s.precision_ms;
    let now_floor = floor(now, p);
    let mut skipped = false;
    let start = loop {
        if let Some(c) = st.cursor {
            break c;
        }
        if st.read_time_ms >= now_floor {
            if skipped {
                let _ = write_checkpoint(st);
            }
            return None;
        }
        let slot = st.wheel.slot(st.read_time_ms);
        if slot == Slot::EMPTY || slot.last_pos < 0 {
            st.read_time_ms += p;
            skipped = true;
            continue;
        }
        st.cursor = Some(slot.last_pos);
        st.deleted = delete_keys(st, store, slot.last_pos);
    };
    let mut items = Vec::new();
    let mut bytes = 0usize;
    let mut pos = start;
    while pos >= 0 && items.len() < DEQUEUE_BATCH && bytes < DEQUEUE_BATCH_BYTES {
        let Some(u) = st.log.read(pos).filter(|u| u.is_valid()) else {
            warn!(pos, slot = st.read_time_ms, "timerlog unit missing or damaged; rest of the slot skipped");
            pos = -1;
            break;
        };
        if floor(u.delayed_time(), p) != st.read_time_ms {
            warn!(pos, slot = st.read_time_ms, "timerlog unit of another slot; rest of the slot skipped");
            pos = -1;
            break;
        }
        bytes += u.size_py.max(0) as usize;
        items.push(deliverable(store, &u, now, &st.deleted));
        pos = if u.prev_pos < pos { u.prev_pos } else { -1 };
    }
    Some(Batch { items, next: pos })
}

/// The delete keys of a slot's delete markers (Apache reads them before the slot's messages).
fn delete_keys(st: &State, store: &MessageStore, last_pos: i64) -> HashSet<String> {
    let mut keys = HashSet::new();
    let mut pos = last_pos;
    let mut walked = 0;
    while pos >= 0 && walked < DELETE_SCAN_MAX && keys.len() < DELETE_KEYS_MAX {
        let Some(u) = st.log.read(pos).filter(|u| u.is_valid()) else { break };
        if u.magic & MAGIC_DELETE != 0 && u.magic & MAGIC_ROLL == 0 {
            let key = store
                .look_message_by_offset_size(u.offset_py, u.size_py.max(0) as usize)
                .and_then(|b| decode_record(&b, false).ok())
                .and_then(|m| m.property(property::TIMER_DEL_UNIQKEY).map(str::to_string));
            keys.extend(key);
        }
        walked += 1;
        pos = if u.prev_pos < pos { u.prev_pos } else { -1 };
    }
    if pos >= 0 {
        warn!(slot = st.read_time_ms, walked, "timer slot too large to read all its delete markers");
    }
    keys
}

/// Apache's delete key: `<topic>+<uniqKey>`.
pub fn delete_key(topic: &str, uniq_key: &str) -> String {
    format!("{topic}+{uniq_key}")
}

/// The message to put for a unit (Apache's `convert`): back to its real topic and queue, or
/// (rolled) into the wheel topic again with one more roll. Messages a delete marker of the slot
/// names are not delivered.
fn deliverable(store: &MessageStore, u: &TimerUnit, now: i64, deleted: &HashSet<String>) -> Option<MessageInner> {
    let roll = u.magic & MAGIC_ROLL != 0;
    if u.magic & MAGIC_DELETE != 0 && !roll {
        return None;
    }
    let raw = store.look_message_by_offset_size(u.offset_py, u.size_py.max(0) as usize)?;
    let m = match decode_record(&raw, false) {
        Ok(m) => m,
        Err(e) => {
            warn!(offset = u.offset_py, error = %e, "timer message unreadable in the commitlog; skipped");
            return None;
        }
    };
    if !roll && !deleted.is_empty() {
        let topic = m.property(property::REAL_TOPIC).unwrap_or_default();
        if m.uniq_key().is_some_and(|k| deleted.contains(&delete_key(topic, k))) {
            debug!(topic, uniq_key = m.uniq_key(), "timer message deleted before its time");
            return None;
        }
    }
    let mut props = m.properties.clone();
    props.insert(property::TIMER_ENQUEUE_MS.to_string(), u.write_time_ms.to_string());
    props.insert(property::TIMER_DEQUEUE_MS.to_string(), now.to_string());
    props.insert(property::WAIT.to_string(), "false".to_string());
    let (topic, queue_id) = if roll {
        let times = props.get(property::TIMER_ROLL_TIMES).and_then(|v| v.parse::<i32>().ok()).unwrap_or(0);
        props.insert(property::TIMER_ROLL_TIMES.to_string(), (times + 1).to_string());
        (m.topic.clone(), m.queue_id)
    } else {
        let Some(topic) = props.remove(property::REAL_TOPIC) else {
            warn!(offset = u.offset_py, "timer message without REAL_TOPIC dropped");
            return None;
        };
        let qid = props.remove(property::REAL_QID).and_then(|q| q.parse().ok()).unwrap_or(0);
        (topic, qid)
    };
    let mut inner = MessageInner::new(topic, queue_id, m.body.clone());
    inner.flag = m.flag;
    inner.sys_flag = m.sys_flag & !(message::sysflag::BORNHOST_V6 | message::sysflag::STOREHOST_V6);
    inner.born_timestamp = m.born_timestamp;
    inner.born_host = m.born_host;
    inner.store_host = m.store_host;
    inner.reconsume_times = m.reconsume_times;
    inner.set_properties(props);
    Some(inner)
}

/// After a batch was put: the slot goes on from `next`, or is done and the read time moves on.
fn commit_batch(st: &mut State, s: &TimerSettings, next: i64) {
    if next < 0 {
        st.cursor = None;
        st.deleted.clear();
        st.read_time_ms += s.precision_ms;
    } else {
        st.cursor = Some(next);
    }
    if let Err(e) = write_checkpoint(st) {
        warn!(error = %e, "timer checkpoint write failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BrokerConfig {
        BrokerConfig::default()
    }

    fn msg(props: &[(&str, &str)]) -> MessageInner {
        let mut m = MessageInner::new("T", 3, &b"x"[..]);
        m.set_properties(props.iter().copied());
        m
    }

    #[test]
    fn rounding_never_delivers_early() {
        assert_eq!(round_deliver_ms(10_000, 1000), 9_000);
        assert_eq!(round_deliver_ms(10_500, 1000), 10_000);
        assert_eq!(round_deliver_ms(10_999, 100), 10_900);
        // The slot of T fires at T + precision: never before the deliver time, at most one step after.
        for d in [10_000i64, 10_001, 10_500, 10_999] {
            let fire = round_deliver_ms(d, 1000) + 1000;
            assert!(fire >= d && fire - d <= 1000, "{d} fires at {fire}");
        }
    }

    #[test]
    fn conversion_as_apache() {
        let now = 1_000_000_500;
        let mut m = msg(&[("TIMER_DELIVER_MS", "1000003500"), ("UNIQ_KEY", "u")]);
        convert_timer(&cfg(), now, &mut m).unwrap();
        assert_eq!(m.topic, TIMER_TOPIC);
        assert_eq!(m.queue_id, 0);
        let p = parse_properties(&m.properties);
        assert_eq!(p["TIMER_OUT_MS"], "1000003000");
        assert_eq!(p["REAL_TOPIC"], "T");
        assert_eq!(p["REAL_QID"], "3");
        // Converted once only.
        let before = m.clone();
        convert_timer(&cfg(), now, &mut m).unwrap();
        assert_eq!(m.properties, before.properties);

        let mut m = msg(&[("TIMER_DELAY_SEC", "2")]);
        convert_timer(&cfg(), now, &mut m).unwrap();
        assert_eq!(parse_properties(&m.properties)["TIMER_OUT_MS"], "1000002000");
        let mut m = msg(&[("TIMER_DELAY_MS", "1500")]);
        convert_timer(&cfg(), now, &mut m).unwrap();
        assert_eq!(parse_properties(&m.properties)["TIMER_OUT_MS"], "1000001000");

        // Due now or in the past: a normal message.
        let mut m = msg(&[("TIMER_DELIVER_MS", "1000000500")]);
        convert_timer(&cfg(), now, &mut m).unwrap();
        assert_eq!(m.topic, "T");
        // ... unless it is a delete marker.
        let mut m = msg(&[("TIMER_DELIVER_MS", "5"), ("TIMER_DEL_UNIQKEY", "T+u")]);
        assert_eq!(convert_timer(&cfg(), now, &mut m).unwrap_err().0, response::MESSAGE_ILLEGAL);

        // Beyond timerMaxDelaySec.
        let mut m = msg(&[("TIMER_DELAY_SEC", "259201")]);
        let (code, remark) = convert_timer(&cfg(), now, &mut m).unwrap_err();
        assert_eq!(code, response::MESSAGE_ILLEGAL);
        assert!(remark.contains("max delay 259200000ms"), "{remark}");
        let mut m = msg(&[("TIMER_DELAY_SEC", "259200")]);
        assert!(convert_timer(&cfg(), now, &mut m).is_ok());
        let mut m = msg(&[("TIMER_DELIVER_MS", "soon")]);
        assert_eq!(convert_timer(&cfg(), now, &mut m).unwrap_err().0, response::MESSAGE_ILLEGAL);

        // A delay level wins and the timer properties are dropped.
        let mut m = msg(&[("TIMER_DELIVER_MS", "1000003500"), ("DELAY", "2")]);
        convert_timer(&cfg(), now, &mut m).unwrap();
        assert_eq!(m.topic, "T");
        assert!(message::find_property(&m.properties, "TIMER_DELIVER_MS").is_none());

        // Prepared transaction halves are not converted; the wheel switched off refuses.
        let mut m = msg(&[("TIMER_DELAY_SEC", "5")]);
        m.sys_flag = 0x4;
        convert_timer(&cfg(), now, &mut m).unwrap();
        assert_eq!(m.topic, "T");
        let mut off = cfg();
        off.timer_wheel_enable = false;
        let mut m = msg(&[("TIMER_DELAY_SEC", "5")]);
        let (code, remark) = convert_timer(&off, now, &mut m).unwrap_err();
        assert_eq!(code, response::SYSTEM_ERROR);
        assert!(remark.contains("timerWheelEnable is false"), "{remark}");
    }

    /// A small store in a temporary directory (removed when the returned guard drops).
    fn open_store() -> (tempfile::TempDir, Arc<MessageStore>) {
        let dir = tempfile::tempdir().unwrap();
        let mut sc = crate::store::config::MessageStoreConfig::with_root(dir.path());
        sc.mapped_file_size_commit_log = 1 << 20;
        sc.max_hash_slot_num = 1000;
        sc.max_index_num = 4000;
        let store = Arc::new(MessageStore::open(sc).unwrap());
        (dir, store)
    }

    /// Records what it is handed and puts it into the store.
    struct StoreSink(Arc<MessageStore>, parking_lot::Mutex<Vec<String>>);

    impl TimerSink for StoreSink {
        fn put(&self, msg: MessageInner) -> BoxFuture<'_, PutMessageStatus> {
            Box::pin(async move {
                self.1.lock().push(msg.topic.clone());
                self.0.put_message(msg).await.status
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn service_delivers_on_time_and_rolls_far_messages() {
        let (_dir, store) = open_store();
        let mut bc = cfg();
        bc.timer_precision_ms = 100;
        bc.timer_roll_window_slot = 2; // 200 ms: the 2.5 s message is parked and rolled
        bc.mapped_file_size_timer_log = 4096;
        let now = crate::util::now_millis();
        let mut due = Vec::new();
        for (body, delay) in [("near", 300i64), ("far", 2500)] {
            let mut m = MessageInner::new("Real", 1, body.as_bytes().to_vec());
            m.set_properties([("TIMER_DELIVER_MS", (now + delay).to_string())]);
            convert_timer(&bc, now, &mut m).unwrap();
            assert_eq!(m.topic, TIMER_TOPIC);
            assert!(store.put_message(m).await.is_ok());
            due.push(now + delay);
        }
        let sink = Arc::new(StoreSink(store.clone(), Default::default()));
        let svc = Arc::new(TimerService::new(store.clone(), sink.clone(), TimerSettings::from_config(&bc)));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(svc.clone().run(cancel.clone(), Arc::new(|| true)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.max_offset_in_queue("Real", 1) < 2 {
            assert!(Instant::now() < deadline, "timer messages not delivered in 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = store.get_message("Real", 1, 0, 10, usize::MAX, |_| true).unwrap();
        let msgs: Vec<_> = r.messages.iter().map(|b| decode_record(b, false).unwrap()).collect();
        assert_eq!(&msgs[0].body[..], b"near");
        assert_eq!(&msgs[1].body[..], b"far");
        for (m, at) in msgs.iter().zip(&due) {
            assert!(m.store_timestamp >= *at, "{:?} delivered {} ms early", m.body, at - m.store_timestamp);
            // Generous: the service opens its files first (a debug build, a loaded machine).
            assert!(m.store_timestamp < at + 5000, "{:?} delivered {} ms late", m.body, m.store_timestamp - at);
            assert!(m.property(property::REAL_TOPIC).is_none());
        }
        let rolls: i32 = msgs[1].property(property::TIMER_ROLL_TIMES).and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(rolls >= 1, "the far message was rolled");
        assert!(sink.1.lock().iter().any(|t| t == TIMER_TOPIC), "rolled back into the wheel topic");
        cancel.cancel();
        task.await.unwrap();
        assert!(svc.progress().0 >= 2);

        // A second service over the same files delivers nothing again.
        let svc = Arc::new(TimerService::new(store.clone(), sink.clone(), TimerSettings::from_config(&bc)));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(svc.clone().run(cancel.clone(), Arc::new(|| true)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while svc.progress().1 < crate::util::now_millis() - 200 {
            assert!(Instant::now() < deadline, "the restarted timer did not catch up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(store.max_offset_in_queue("Real", 1), 2);
        store.shutdown().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delete_markers_cancel_their_message() {
        let (_dir, store) = open_store();
        let mut bc = cfg();
        bc.timer_precision_ms = 100;
        bc.mapped_file_size_timer_log = 4096;
        let now = crate::util::now_millis();
        let at = now + 400;
        for (body, uniq, del) in [("keep", "k1", None), ("gone", "k2", None), ("0", "k3", Some("Real+k2"))] {
            let mut m = MessageInner::new("Real", 0, body.as_bytes().to_vec());
            let mut props = vec![("TIMER_DELIVER_MS", at.to_string()), ("UNIQ_KEY", uniq.to_string())];
            if let Some(d) = del {
                props.push(("TIMER_DEL_UNIQKEY", d.to_string()));
            }
            m.set_properties(props);
            convert_timer(&bc, now, &mut m).unwrap();
            assert!(store.put_message(m).await.is_ok());
        }
        let sink = Arc::new(StoreSink(store.clone(), Default::default()));
        let svc = Arc::new(TimerService::new(store.clone(), sink, TimerSettings::from_config(&bc)));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(svc.clone().run(cancel.clone(), Arc::new(|| true)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while svc.progress().1 <= at {
            assert!(Instant::now() < deadline, "the timer did not pass the slot");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
        task.await.unwrap();
        let r = store.get_message("Real", 0, 0, 10, usize::MAX, |_| true).unwrap();
        let bodies: Vec<_> = r.messages.iter().map(|b| decode_record(b, false).unwrap().body).collect();
        assert_eq!(bodies, vec![bytes::Bytes::from_static(b"keep")]);
        store.shutdown().unwrap();
    }

    /// Timer files written byte by byte as Apache lays them out (not with our encoders): the
    /// service picks the pending message up from them and delivers it once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_laid_out_by_apache_are_delivered_from() {
        use std::os::unix::fs::FileExt;
        let (dir, store) = open_store();
        let root = dir.path();
        let bc = cfg(); // precision 1000
        let now = crate::util::now_millis();
        let mut m = MessageInner::new("Real", 2, &b"from-apache"[..]);
        m.set_properties([("TIMER_DELIVER_MS", (now + 1500).to_string())]);
        convert_timer(&bc, now, &mut m).unwrap();
        let out: i64 = message::find_property(&m.properties, "TIMER_OUT_MS").unwrap().parse().unwrap();
        let put = store.put_message(m).await;
        let a = put.append.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.max_offset_in_queue(TIMER_TOPIC, 0) < 1 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // timerlog/00000000000000000000: one unit at 0.
        let write_time = now / 1000 * 1000;
        let mut unit = Vec::new();
        unit.extend(52i32.to_be_bytes());
        unit.extend((-1i64).to_be_bytes());
        unit.extend(1i32.to_be_bytes());
        unit.extend(write_time.to_be_bytes());
        unit.extend(((out - write_time) as i32).to_be_bytes());
        unit.extend(a.wrote_offset.to_be_bytes());
        unit.extend((a.wrote_bytes as i32).to_be_bytes());
        unit.extend(java_string_hash("Real").to_be_bytes());
        unit.extend(0i64.to_be_bytes());
        std::fs::create_dir_all(root.join("timerlog")).unwrap();
        let mut log = vec![0u8; 4096];
        log[..52].copy_from_slice(&unit);
        std::fs::write(root.join("timerlog").join("00000000000000000000"), &log).unwrap();
        // timerwheel: 2 * 7 * 86400 slots of 32 bytes, sparse; the slot of `out`.
        let f = std::fs::File::create(root.join("timerwheel")).unwrap();
        f.set_len(7 * 86400 * 2 * 32).unwrap();
        let idx = (out / 1000) % (7 * 86400 * 2);
        let mut slot = Vec::new();
        slot.extend((out / 1000).to_be_bytes());
        slot.extend(0i64.to_be_bytes());
        slot.extend(0i64.to_be_bytes());
        slot.extend(1i32.to_be_bytes());
        slot.extend(0i32.to_be_bytes());
        f.write_all_at(&slot, idx as u64 * 32).unwrap();
        drop(f);
        // config/timercheck: read time now, 52 bytes of timerlog flushed, queue offset 1.
        let mut cp = vec![0u8; 4096];
        for (i, v) in [write_time, 52, 1, 1].iter().enumerate() {
            cp[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
        std::fs::create_dir_all(root.join("config")).unwrap();
        std::fs::write(root.join("config").join("timercheck"), &cp).unwrap();

        let mut settings = TimerSettings::from_config(&bc);
        settings.log_file_size = 4096;
        let sink = Arc::new(StoreSink(store.clone(), Default::default()));
        let svc = Arc::new(TimerService::new(store.clone(), sink, settings));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(svc.clone().run(cancel.clone(), Arc::new(|| true)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while svc.progress().1 <= out {
            assert!(Instant::now() < deadline, "the timer did not pass the slot");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
        task.await.unwrap();
        // Every put is in the commitlog; wait until all of it is dispatched to the queues.
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.dispatched_offset() < store.commit_log_max_offset() {
            assert!(Instant::now() < deadline, "the delivered message never reached its queue");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let r = store.get_message("Real", 2, 0, 10, usize::MAX, |_| true).unwrap();
        assert_eq!(r.messages.len(), 1, "delivered once");
        let d = decode_record(&r.messages[0], false).unwrap();
        assert_eq!(&d.body[..], b"from-apache");
        // Delivered from the hand-written unit (not dispatched again: its enqueue time is ours).
        assert_eq!(d.property(property::TIMER_ENQUEUE_MS), Some(write_time.to_string().as_str()));
        store.shutdown().unwrap();
    }

    #[test]
    fn roll_window_is_clamped() {
        let mut c = cfg();
        assert_eq!(TimerSettings::from_config(&c).roll_window_slots, 172_800);
        c.timer_roll_window_slot = 1;
        assert_eq!(TimerSettings::from_config(&c).roll_window_slots, SLOTS_TOTAL - BLANK_SLOTS);
        c.timer_precision_ms = 60_000;
        assert_eq!(TimerSettings::from_config(&c).roll_window_slots, i32::MAX as i64 / 60_000);
    }
}
