//! The state a broker's processors share, and the checks that join metadata and store: the one
//! place where the send, pull and send-back paths consult topics, groups and subscriptions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::config::{BrokerConfig, BrokerIdentity, BrokerRole};
use super::delay::{apply_delay, prop, DLQ_PREFIX, RETRY_PREFIX};
use super::meta::{BrokerMeta, StoreView};
use super::waiters::{PullFilter, PullWaiters, TagFilter};
use crate::protocol::body::TopicConfig;
use crate::protocol::codes::response;
use crate::protocol::header::{
    pull_flag, ConsumerSendMsgBackRequestHeader, PullMessageRequestHeader, SendMessageRequestHeader,
};
use crate::protocol::message::{self, decode_record};
use crate::protocol::perm;
use crate::remoting::{ConnectionHandle, RemotingCommand};
use crate::store::MessageInner;
use crate::store::{MessageStore, PutMessageResult};

/// An error answer: response code and remark.
pub type Refusal = (i32, String);

/// What a send needs of its topic's config (read without copying the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendQueues {
    /// Permission bits.
    pub perm: i32,
    /// Readable queues.
    pub read_queue_nums: i32,
    /// Writable queues.
    pub write_queue_nums: i32,
}

const FAQ: &str = "\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.";

/// Counters shown by GET_BROKER_RUNTIME_INFO.
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// Messages stored since start.
    pub put_msgs: AtomicU64,
    /// Bytes stored since start.
    pub put_bytes: AtomicU64,
    /// Messages delivered since start.
    pub get_msgs: AtomicU64,
    /// Bytes delivered since start.
    pub get_bytes: AtomicU64,
    /// Reads of a queue (pulls, and each look-up of a held pull) that found messages.
    pub get_found: AtomicU64,
    /// Reads of a queue that found none.
    pub get_miss: AtomicU64,
    /// The same by topic (stored) and by topic and group (delivered).
    pub topics: super::stats::TopicStats,
    /// Request latency by request and response code.
    pub rpc: Arc<super::stats::RpcLatency>,
}

/// What every processor of one broker shares.
pub struct BrokerCore {
    identity: BrokerIdentity,
    /// Topics, groups, offsets, clients.
    pub meta: Arc<BrokerMeta>,
    store: Arc<MessageStore>,
    store_host: SocketAddr,
    waiters: Arc<PullWaiters>,
    shutting_down: AtomicBool,
    read_only: AtomicBool,
    /// Counters.
    pub stats: BrokerStats,
    /// Minute / hour / day samples of the stats items (VIEW_BROKER_STATS_DATA).
    pub stats_windows: super::stats_window::StatsWindows,
    /// Per-second samples of the counters behind runtime info's TPS figures and day totals.
    pub rates: super::stats_window::RateSamples,
    /// Started at (ms).
    pub started_at: i64,
    /// Signalled when topics change or a message is stored in the schedule topic.
    pub wake_registration: Notify,
    /// Replication state (master and slave side).
    pub ha: crate::ha::HaState,
    /// `innerClientAuthenticationCredentials`: signs the broker's own requests to NameServers and
    /// to its master.
    inner_credentials: std::sync::OnceLock<crate::auth::signature::Credentials>,
    /// Acting-master state (group minimum, hand-back hold, escape bridge).
    pub acting: super::acting::ActingState,
    /// The DLedger node of a broker with `enableDLegerCommitLog=true` (set once, at start).
    dledger: std::sync::OnceLock<Arc<crate::dledger::server::DLedgerServer>>,
}

impl BrokerCore {
    /// Joins the parts; wires the store's arrival callback to the held pulls.
    pub fn new(
        identity: BrokerIdentity,
        meta: Arc<BrokerMeta>,
        store: Arc<MessageStore>,
        store_host: SocketAddr,
    ) -> Arc<Self> {
        let waiters = Arc::new(PullWaiters::default());
        let w = waiters.clone();
        store.set_arrival_listener(Some(Arc::new(move |topic: &str, qid: i32, max: i64| w.notify(topic, qid, max))));
        Arc::new(BrokerCore {
            identity,
            meta,
            store,
            store_host,
            waiters,
            shutting_down: AtomicBool::new(false),
            read_only: AtomicBool::new(false),
            stats: BrokerStats::default(),
            stats_windows: Default::default(),
            rates: Default::default(),
            started_at: crate::util::now_millis(),
            wake_registration: Notify::new(),
            ha: Default::default(),
            inner_credentials: std::sync::OnceLock::new(),
            acting: Default::default(),
            dledger: std::sync::OnceLock::new(),
        })
    }

    /// Attaches the broker's DLedger node (once, at start).
    pub fn set_dledger(&self, node: Arc<crate::dledger::server::DLedgerServer>) {
        let _ = self.dledger.set(node);
    }

    /// The broker's DLedger node (`enableDLegerCommitLog=true` only).
    pub fn dledger(&self) -> Option<&Arc<crate::dledger::server::DLedgerServer>> {
        self.dledger.get()
    }

    /// Sets the credentials the broker signs its own requests with (once, at start).
    pub fn set_inner_credentials(&self, c: crate::auth::signature::Credentials) {
        let _ = self.inner_credentials.set(c);
    }

    /// Signs a request the broker sends to a NameServer or another broker, when
    /// `innerClientAuthenticationCredentials` is set; else leaves it as it is.
    pub fn sign(&self, mut req: RemotingCommand) -> RemotingCommand {
        if let Some(c) = self.inner_credentials.get() {
            c.sign_request(&mut req);
        }
        req
    }

    /// `cluster_brokerName_id`.
    pub fn identity(&self) -> &BrokerIdentity {
        &self.identity
    }
    /// The broker config now.
    pub fn config(&self) -> Arc<BrokerConfig> {
        self.meta.config.load_full()
    }
    /// The store.
    pub fn store(&self) -> &Arc<MessageStore> {
        &self.store
    }
    /// `brokerIP1:listenPort` as a socket address (written into records and msgIds).
    pub fn store_host(&self) -> SocketAddr {
        self.store_host
    }
    /// Consumer groups whose committed offsets are behind the queue ends, with how far (what a
    /// draining removal waits for); the transaction check service's group is not one.
    pub fn consumer_lag(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for (key, queues) in self.meta.offsets.offset_table() {
            let Some((topic, group)) = key.split_once('@') else { continue };
            if group == super::transaction::TRANS_GROUP {
                // The transaction check service's progress, not a consumer: unresolved half
                // messages stay behind it until their producers answer.
                continue;
            }
            let mut behind = 0;
            for (qid, off) in queues {
                behind += (self.store().max_offset_in_queue(topic, qid) - off).max(0);
            }
            if behind > 0 {
                out.push((group.to_string(), behind));
            }
        }
        out
    }
    /// Held pulls.
    pub fn waiters(&self) -> &Arc<PullWaiters> {
        &self.waiters
    }
    /// True once removal has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
    /// Refuses writes from now on and wakes held pulls (removal).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.waiters.wake_all();
    }
    /// Makes the broker read-only (drain before removal) or writable again.
    pub fn set_read_only(&self, ro: bool) {
        self.read_only.store(ro, Ordering::Release);
    }
    /// The body size limit.
    pub fn max_message_size(&self) -> usize {
        self.store.max_message_size()
    }
    /// Highest delay level.
    pub fn max_delay_level(&self) -> i32 {
        self.store.config().delay_levels_ms().len() as i32
    }
    /// A short description of the disk state for SERVICE_NOT_AVAILABLE remarks.
    pub fn disk_info(&self) -> String {
        let flags = self.store.running_flags();
        if flags & crate::store::running_flags::DISK_FULL != 0 {
            match self.store.last_disk_assessment().and_then(|a| a.reason) {
                Some(r) => r,
                None => "disk full".into(),
            }
        } else if self.store.is_poisoned() {
            "store poisoned after a failed flush".into()
        } else {
            "ok".into()
        }
    }

    /// Refuses writes when the broker cannot take them now.
    pub fn check_writable(&self) -> Result<(), Refusal> {
        let cfg = self.config();
        if self.is_shutting_down() {
            return Err((response::SERVICE_NOT_AVAILABLE, format!("broker {} is shutting down", self.identity)));
        }
        if cfg.broker_role == BrokerRole::Slave {
            return Err((
                response::SERVICE_NOT_AVAILABLE,
                format!(
                    "service not available now. the broker {} is a slave and does not accept writes",
                    self.identity
                ),
            ));
        }
        if self.read_only.load(Ordering::Acquire) || !perm::is_writeable(cfg.broker_permission) {
            return Err((
                response::NO_PERMISSION,
                format!("the broker[{}] sending message is forbidden", cfg.broker_ip1),
            ));
        }
        Ok(())
    }

    /// The topic a send goes to: validated, created from the default topic if allowed, writable.
    pub fn topic_for_send(&self, h: &SendMessageRequestHeader, conn: &ConnectionHandle) -> Result<SendQueues, Refusal> {
        let topic = h.topic.as_str();
        if let Err(e) = super::meta::topic::validate_topic(topic) {
            return Err((response::INVALID_PARAMETER, e.to_string()));
        }
        if super::meta::TopicConfigManager::is_not_allowed_send_topic(topic) {
            return Err((response::NO_PERMISSION, format!("Sending message to topic[{topic}] is forbidden.")));
        }
        let topics = &self.meta.topics;
        let queues = |tc: &TopicConfig| SendQueues {
            perm: tc.perm,
            read_queue_nums: tc.read_queue_nums,
            write_queue_nums: tc.write_queue_nums,
        };
        let found = match topics.select_with(topic, queues) {
            Some(q) => Some(q),
            None => {
                let created = if topic.starts_with(RETRY_PREFIX) {
                    topics.create_topic_in_send_back(topic, 1, perm::READ | perm::WRITE, false, 0).map(Some)
                } else {
                    topics.create_topic_in_send_message_method(
                        topic,
                        &h.default_topic,
                        &conn.peer().to_string(),
                        h.default_topic_queue_nums,
                        0,
                    )
                };
                match created {
                    Ok(Some(tc)) => {
                        self.wake_registration.notify_one();
                        Some(queues(&tc))
                    }
                    Ok(None) => None,
                    Err(e) => return Err((response::SYSTEM_ERROR, e.to_string())),
                }
            }
        };
        let Some(tc) = found else {
            return Err((response::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist, apply first please!{FAQ}")));
        };
        if !perm::is_writeable(tc.perm) {
            return Err((response::NO_PERMISSION, format!("the topic[{topic}] sending message is forbidden")));
        }
        Ok(tc)
    }

    /// The dead-letter topic of a group, created if absent.
    pub fn dlq_topic(&self, group: &str) -> Result<String, Refusal> {
        let dlq = format!("{DLQ_PREFIX}{group}");
        self.meta
            .topics
            .create_topic_in_send_back(&dlq, 1, perm::READ | perm::WRITE, false, 0)
            .map_err(|e| (response::SYSTEM_ERROR, e.to_string()))?;
        self.wake_registration.notify_one();
        Ok(dlq)
    }

    /// The checks of a pull; returns its tag filter and the topic's sys flag.
    pub fn check_pull(
        &self,
        h: &PullMessageRequestHeader,
        conn: &ConnectionHandle,
    ) -> Result<(PullFilter, i32), Refusal> {
        let cfg = self.config();
        if !perm::is_readable(cfg.broker_permission) {
            return Err((
                response::NO_PERMISSION,
                format!("the broker[{}] pulling message is forbidden", cfg.broker_ip1),
            ));
        }
        let group = match self.meta.subscriptions.find(&h.consumer_group) {
            Ok(Some(g)) => g,
            Ok(None) => {
                return Err((
                    response::SUBSCRIPTION_GROUP_NOT_EXIST,
                    format!("subscription group [{}] does not exist,{FAQ}", h.consumer_group),
                ))
            }
            Err(e) => return Err((response::SYSTEM_ERROR, e.to_string())),
        };
        if !group.consume_enable {
            return Err((response::NO_PERMISSION, format!("subscription group no permission, {}", h.consumer_group)));
        }
        let Some(tc) = self.meta.topics.select(&h.topic) else {
            return Err((response::TOPIC_NOT_EXIST, format!("topic[{}] not exist, apply first please!{FAQ}", h.topic)));
        };
        if !perm::is_readable(tc.perm) {
            return Err((response::NO_PERMISSION, format!("the topic[{}] pulling message is forbidden", h.topic)));
        }
        if h.queue_id < 0 || h.queue_id >= tc.read_queue_nums {
            return Err((
                response::INVALID_PARAMETER,
                format!(
                    "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}] consumer:[{}]",
                    h.queue_id,
                    h.topic,
                    tc.read_queue_nums,
                    conn.peer()
                ),
            ));
        }
        let sql_ok = self.config().enable_property_filter;
        // Messages of retry topics are filtered only with filterSupportRetry (Apache's default: not).
        let unfiltered = h.topic.starts_with("%RETRY%") && !self.config().filter_support_retry;
        let filter = if h.sys_flag & pull_flag::SUBSCRIPTION != 0 {
            let f = PullFilter::build(h.expression_type.as_deref(), h.subscription.as_deref().unwrap_or("*"), sql_ok)?;
            if unfiltered && matches!(f, PullFilter::Sql(_)) {
                PullFilter::Tag(TagFilter::all())
            } else {
                f
            }
        } else {
            match self.meta.consumers.find_subscription_data(&h.consumer_group, &h.topic) {
                None => {
                    return Err((
                        response::SUBSCRIPTION_NOT_EXIST,
                        format!(
                            "the consumer's subscription not exist, group: {} topic: {}",
                            h.consumer_group, h.topic
                        ),
                    ))
                }
                Some(sd) => {
                    if sd.sub_version < h.sub_version {
                        return Err((
                            response::SUBSCRIPTION_NOT_LATEST,
                            format!("the consumer's subscription not latest, group: {}", h.consumer_group),
                        ));
                    }
                    if !sd.expression_type.eq_ignore_ascii_case("TAG") {
                        let f = PullFilter::build(Some(&sd.expression_type), &sd.sub_string, sql_ok)?;
                        if unfiltered {
                            PullFilter::Tag(TagFilter::all())
                        } else {
                            f
                        }
                    } else if sd.sub_string.trim().is_empty() || sd.sub_string.trim() == "*" {
                        PullFilter::Tag(TagFilter::all())
                    } else if !sd.code_set.is_empty() {
                        PullFilter::Tag(TagFilter {
                            all: false,
                            codes: sd.code_set.iter().map(|c| *c as i64).collect(),
                        })
                    } else {
                        PullFilter::Tag(TagFilter::parse(&sd.sub_string))
                    }
                }
            }
        };
        Ok((filter, tc.topic_sys_flag))
    }

    /// Commits a consumer offset carried by a pull.
    pub fn commit_offset(&self, conn: &ConnectionHandle, group: &str, topic: &str, queue_id: i32, offset: i64) {
        if self.config().broker_role != BrokerRole::Slave {
            self.meta.offsets.commit_offset(&conn.peer().to_string(), group, topic, queue_id, offset);
        }
    }

    /// Stores one message; on a SYNC_MASTER with `inSyncReplicas >= 2` waits for the slaves.
    pub async fn put_message(&self, m: MessageInner) -> PutMessageResult {
        // The WAIT property is looked up only where replicas are waited for.
        let wait = self.waits_for_replicas() && Self::wants_replica_wait(&m);
        let r = self.store.put_message(m).await;
        self.await_replicas(r, wait).await
    }

    /// Stores a batch; on a SYNC_MASTER with `inSyncReplicas >= 2` waits for the slaves.
    pub async fn put_messages(&self, msgs: &[MessageInner]) -> PutMessageResult {
        let wait = self.waits_for_replicas() && msgs.first().is_some_and(Self::wants_replica_wait);
        let r = self.store.put_messages(msgs).await;
        self.await_replicas(r, wait).await
    }

    /// True when a stored put may wait for slaves (see [`BrokerCore::await_replicas`]).
    fn waits_for_replicas(&self) -> bool {
        let cfg = self.config();
        cfg.broker_role == BrokerRole::SyncMaster && cfg.in_sync_replicas >= 2 && !self.store.is_replicated()
    }

    fn wants_replica_wait(m: &MessageInner) -> bool {
        message::find_property(&m.properties, message::property::WAIT) != Some("false")
    }

    /// Apache's `handleHA`: after a stored put, wait until `inSyncReplicas - 1` slaves acknowledged
    /// its end offset, else FLUSH_SLAVE_TIMEOUT after `slaveTimeout` (the message stays stored).
    async fn await_replicas(&self, mut r: PutMessageResult, wait: bool) -> PutMessageResult {
        let cfg = self.config();
        // A DLedger store acknowledges only what a majority has: nothing more to wait for.
        if !wait || cfg.broker_role != BrokerRole::SyncMaster || cfg.in_sync_replicas < 2 || self.store.is_replicated()
        {
            return r;
        }
        let Some(end) = r.append.as_ref().map(|a| a.end_offset()) else { return r };
        if r.status != crate::store::PutMessageStatus::PutOk {
            return r;
        }
        let needed = (cfg.in_sync_replicas - 1) as usize;
        let timeout = std::time::Duration::from_millis(cfg.slave_timeout);
        if !self.ha.master.wait_for(end, needed, timeout).await {
            tracing::warn!(offset = end, needed, "slave did not acknowledge in time: FLUSH_SLAVE_TIMEOUT");
            r.status = crate::store::PutMessageStatus::FlushSlaveTimeout;
        }
        r
    }

    /// Counts stored messages.
    pub fn stats_put(&self, topic: &str, msgs: usize, bytes: usize) {
        self.stats.put_msgs.fetch_add(msgs as u64, Ordering::Relaxed);
        self.stats.put_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.stats.topics.stored(topic, msgs, bytes);
    }

    /// Counts one read of a queue, that found messages or not (Apache's get found / miss times).
    pub fn stats_lookup(&self, found: bool) {
        let c = if found { &self.stats.get_found } else { &self.stats.get_miss };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters behind runtime info's TPS figures, now.
    pub fn rate_counters(&self) -> super::stats_window::RateCounters {
        let (timer_enqueued, timer_dequeued) = self.acting.timer_counts();
        super::stats_window::RateCounters {
            put: self.stats.put_msgs.load(Ordering::Relaxed),
            get_found: self.stats.get_found.load(Ordering::Relaxed),
            get_miss: self.stats.get_miss.load(Ordering::Relaxed),
            transferred: self.stats.get_msgs.load(Ordering::Relaxed),
            timer_enqueued,
            timer_dequeued,
        }
    }

    /// Counts messages of `topic` delivered to `group`.
    pub fn stats_get(&self, topic: &str, group: &str, msgs: usize, bytes: usize) {
        self.stats.get_msgs.fetch_add(msgs as u64, Ordering::Relaxed);
        self.stats.get_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.stats.topics.delivered(topic, group, msgs, bytes);
    }

    /// CONSUMER_SEND_MSG_BACK: re-puts a message a consumer failed into `%RETRY%group` with a delay,
    /// or into `%DLQ%group` when it has been retried too often.
    pub async fn send_back(&self, h: &ConsumerSendMsgBackRequestHeader) -> Result<(), Refusal> {
        // An acting master accepts send-backs and escapes them to another master.
        let acting = super::acting::is_acting_master(self) && self.config().enable_remote_escape;
        if !acting {
            self.check_writable()?;
        }
        let group = match self.meta.subscriptions.find(&h.group) {
            Ok(Some(g)) => g,
            Ok(None) => {
                return Err((
                    response::SUBSCRIPTION_GROUP_NOT_EXIST,
                    format!("subscription group not exist, {}{FAQ}", h.group),
                ))
            }
            Err(e) => return Err((response::SYSTEM_ERROR, e.to_string())),
        };
        if group.retry_queue_nums <= 0 {
            return Ok(());
        }
        let Some(raw) = self.store.look_message_by_offset(h.offset) else {
            return Err((response::SYSTEM_ERROR, format!("look message by offset failed, {}", h.offset)));
        };
        let orig =
            decode_record(&raw, false).map_err(|e| (response::SYSTEM_ERROR, format!("decode message failed: {e}")))?;
        let retry_topic = format!("{RETRY_PREFIX}{}", h.group);
        let mut props = orig.properties.clone();
        props.entry(prop::RETRY_TOPIC.to_string()).or_insert_with(|| orig.topic.clone());
        let max_times = h.max_reconsume_times.unwrap_or(group.retry_max_times);
        let mut delay = h.delay_level;
        let (topic, queue_id) = if orig.reconsume_times >= max_times || delay < 0 {
            let dlq = self.dlq_topic(&h.group)?;
            props.insert(prop::DLQ_ORIGIN_TOPIC.to_string(), orig.topic.clone());
            props.insert(prop::DLQ_ORIGIN_MESSAGE_ID.to_string(), h.origin_msg_id.clone().unwrap_or_default());
            delay = 0;
            (dlq, 0)
        } else {
            let tc = self
                .meta
                .topics
                .create_topic_in_send_back(&retry_topic, group.retry_queue_nums, perm::READ | perm::WRITE, false, 0)
                .map_err(|e| (response::SYSTEM_ERROR, e.to_string()))?;
            if delay == 0 {
                delay = 3 + orig.reconsume_times;
            }
            let qid = (orig.reconsume_times.unsigned_abs() % tc.write_queue_nums.max(1) as u32) as i32;
            (retry_topic, qid)
        };
        self.wake_registration.notify_one();
        let origin_id = h.origin_msg_id.clone().unwrap_or_else(|| orig.msg_id.clone());
        props.entry(prop::ORIGIN_MESSAGE_ID.to_string()).or_insert(origin_id);
        if delay > 0 {
            props.insert(message::property::DELAY.to_string(), delay.to_string());
        } else {
            props.remove(message::property::DELAY);
        }
        let mut m = MessageInner::new(topic, queue_id, orig.body.clone());
        m.flag = orig.flag;
        m.sys_flag = orig.sys_flag & !(message::sysflag::BORNHOST_V6 | message::sysflag::STOREHOST_V6);
        m.born_timestamp = orig.born_timestamp;
        m.born_host = orig.born_host;
        m.store_host = self.store_host;
        m.reconsume_times = orig.reconsume_times + 1;
        m.set_properties(props);
        if acting {
            // The remote master applies the delay level itself.
            return super::acting::escape_put(self, m).await.map_err(|e| (response::SYSTEM_ERROR, e.to_string()));
        }
        apply_delay(&mut m, self.max_delay_level());
        let r = self.store.put_message(m).await;
        if r.status.is_stored() {
            Ok(())
        } else {
            Err((response::SYSTEM_ERROR, r.status.name().to_string()))
        }
    }
}

/// The store as the metadata layer sees it.
pub struct StoreViewImpl(pub Arc<MessageStore>);

impl StoreView for StoreViewImpl {
    fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.0.max_offset_in_queue(topic, queue_id)
    }
    fn min_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.0.min_offset_in_queue(topic, queue_id)
    }
    fn store_time_of(&self, topic: &str, queue_id: i32, offset: i64) -> Option<i64> {
        self.0.message_store_timestamp(topic, queue_id, offset)
    }
    fn check_in_mem_by_consume_offset(&self, topic: &str, queue_id: i32, offset: i64, _batch: i32) -> bool {
        self.0.message_store_timestamp(topic, queue_id, offset).is_some()
    }
    fn delete_topics(&self, topics: &[String]) {
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        if let Err(e) = self.0.delete_topics(&refs) {
            tracing::warn!(error = %e, "deleting topic queues failed");
        }
    }
}

impl crate::ha::HaHost for BrokerCore {
    fn store(&self) -> &Arc<MessageStore> {
        &self.store
    }
    fn ha(&self) -> &crate::ha::HaState {
        &self.ha
    }
}
