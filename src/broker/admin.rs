//! The broker's own admin requests: runtime info, its config, delay offsets.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use tracing::{info, warn};

use super::config::{BrokerConfig, CleanupConfig, LIVE_CLEANUP_KEYS, LIVE_STORE_KEYS};
use super::core::BrokerCore;
use super::schedule::ScheduleService;
use crate::config::{apply_runtime_update, to_properties_text, ConfigValue, Configurable, UpdateRefusal};
use crate::protocol::codes::{request, response};
use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RequestProcessor};
use crate::store::cleanup::{assess, DiskProbe, StatvfsProbe};
use crate::store::config::LiveStoreKeys;

/// Answers GET_BROKER_RUNTIME_INFO, GET_BROKER_CONFIG, UPDATE_BROKER_CONFIG, GET_ALL_DELAY_OFFSET,
/// TRIGGER_DELETE_FILES.
pub struct BrokerAdminProcessor {
    core: Arc<BrokerCore>,
    schedule: Arc<ScheduleService>,
    config_path: PathBuf,
    /// Store and cleanup keys with their values, read-only at runtime.
    fixed: Vec<(&'static str, String)>,
    version: parking_lot::Mutex<crate::protocol::body::DataVersion>,
    /// Cleanup and quota keys now (the runtime info reports against their policy; some change at
    /// runtime).
    cleanup: Arc<ArcSwap<CleanupConfig>>,
    /// The broker's bounded request queues (send, pull, query), reported by runtime info.
    queues: Vec<(Arc<crate::remoting::Admission>, usize)>,
}

/// What UPDATE_BROKER_CONFIG may change, as one whole: the broker's keys, the store's runtime
/// keys and the cleanup keys. Each key goes to the first part that knows it.
#[derive(Clone)]
struct RuntimeKeys {
    broker: BrokerConfig,
    store: LiveStoreKeys,
    cleanup: CleanupConfig,
}

impl Configurable for RuntimeKeys {
    fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        Ok(self.broker.set(key, value)? || self.store.set(key, value)? || self.cleanup.set(key, value)?)
    }
    fn entries(&self) -> Vec<(&'static str, String)> {
        let mut e = self.broker.entries();
        e.extend(self.store.entries());
        e.extend(self.cleanup.entries());
        e
    }
    /// The broker's keys (the store's and cleanup's are listed by their own types).
    fn keys(&self) -> &'static [&'static str] {
        BrokerConfig::KEYS
    }
}

/// The codes [`BrokerAdminProcessor`] answers.
pub const ADMIN_CODES: &[i32] = &[
    request::GET_BROKER_RUNTIME_INFO,
    request::GET_BROKER_CONFIG,
    request::UPDATE_BROKER_CONFIG,
    request::GET_ALL_DELAY_OFFSET,
    request::TRIGGER_DELETE_FILES,
];

impl BrokerAdminProcessor {
    /// A processor over a broker's core; `fixed` lists the store, cleanup and access-control keys
    /// as the broker started with them (GET_BROKER_CONFIG shows the live ones' current values);
    /// `cleanup` holds the cleanup keys now.
    pub fn new(
        core: Arc<BrokerCore>,
        schedule: Arc<ScheduleService>,
        config_path: PathBuf,
        fixed: Vec<(&'static str, String)>,
        cleanup: Arc<ArcSwap<CleanupConfig>>,
        queues: Vec<(Arc<crate::remoting::Admission>, usize)>,
    ) -> Self {
        BrokerAdminProcessor {
            core,
            schedule,
            config_path,
            fixed,
            version: parking_lot::Mutex::new(crate::protocol::body::DataVersion::new()),
            cleanup,
            queues,
        }
    }

    /// The KV table of GET_BROKER_RUNTIME_INFO.
    pub fn runtime_info(&self) -> Vec<(String, String)> {
        use std::sync::atomic::Ordering::Relaxed;
        let core = &self.core;
        let store = core.store();
        let s = &core.stats;
        let now = crate::util::now_millis();
        let up = (now - core.started_at).max(0) / 1000;
        let mut table: Vec<(String, String)> = vec![
            ("brokerVersionDesc".into(), "V5_3_3".into()),
            ("brokerVersion".into(), crate::remoting::command::CURRENT_VERSION.to_string()),
            ("brokerIdentity".into(), core.identity().to_string()),
            ("bootTimestamp".into(), core.started_at.to_string()),
            (
                "runtime".into(),
                format!(
                    "[ {} days, {} hours, {} minutes, {} seconds ]",
                    up / 86400,
                    up / 3600 % 24,
                    up / 60 % 60,
                    up % 60
                ),
            ),
            ("msgPutTotalTodayNow".into(), s.put_msgs.load(Relaxed).to_string()),
            ("msgGetTotalTodayNow".into(), s.get_msgs.load(Relaxed).to_string()),
            ("putMessageSizeTotal".into(), s.put_bytes.load(Relaxed).to_string()),
            ("getMessageSizeTotal".into(), s.get_bytes.load(Relaxed).to_string()),
            ("commitLogMinOffset".into(), store.commit_log_min_offset().to_string()),
            ("commitLogMaxOffset".into(), store.commit_log_max_offset().to_string()),
            (
                "dispatchBehindBytes".into(),
                (store.commit_log_max_offset() - store.dispatched_offset()).max(0).to_string(),
            ),
            ("pullHeldCount".into(), core.waiters().held().to_string()),
            // Apache's meaning: the special services (delayed delivery, ...) run here: a master, or
            // a slave acting as master.
            ("brokerActive".into(), super::acting::special_services_active(core).to_string()),
            ("brokerShuttingDown".into(), core.is_shutting_down().to_string()),
            ("minBrokerIdInGroup".into(), core.acting.min_broker_id().to_string()),
            ("timerReadTimeMs".into(), core.acting.timer_read_time_ms().to_string()),
            ("storeRunningFlags".into(), store.running_flags().to_string()),
            ("brokerRole".into(), core.config().broker_role.render()),
        ];
        match core.dledger() {
            // A DLedger broker replicates through its Raft group, not classic HA.
            Some(n) => {
                let st = n.status();
                table.extend([
                    ("dLegerGroup".to_string(), n.config().group.clone()),
                    ("dLegerSelfId".to_string(), n.self_id().to_string()),
                    ("dLegerRole".to_string(), format!("{:?}", st.role).to_ascii_uppercase()),
                    ("dLegerTerm".to_string(), st.term.to_string()),
                    ("dLegerLeader".to_string(), st.leader.unwrap_or_default()),
                    ("dLegerCommittedIndex".to_string(), st.committed.to_string()),
                    ("dLegerEndIndex".to_string(), st.end_index.to_string()),
                    ("dLegerDispatchedIndex".to_string(), store.replica_dispatched_index().to_string()),
                ]);
            }
            None => table.extend(core.ha.runtime_info(
                core.store().commit_log_max_offset(),
                core.config().broker_role == super::config::BrokerRole::Slave,
            )),
        }
        // Apache's queue keys (clusterList's #InTPS(LOAD) / #OutTPS(LOAD) columns read them).
        for (q, capacity) in &self.queues {
            let name = q.name();
            table.push((format!("{name}ThreadPoolQueueSize"), q.len().to_string()));
            table.push((format!("{name}ThreadPoolQueueCapacity"), capacity.to_string()));
            table.push((format!("{name}ThreadPoolBusyRefusals"), q.refused().to_string()));
            table.push((format!("{name}ThreadPoolQueueHeadWaitTimeMills"), q.head_wait_ms().to_string()));
            if name == "endTransaction" {
                // Apache's own spelling of the transaction queue's keys.
                table.push(("EndTransactionQueueSize".into(), q.len().to_string()));
                table.push(("EndTransactionThreadPoolQueueCapacity".into(), capacity.to_string()));
            }
        }
        // Disk figures measured now (statvfs is cheap), against this broker's thresholds.
        let policy = self.cleanup.load().policy().0;
        let a = assess(&policy, &store.sample_disk_usage(&StatvfsProbe));
        let ratio = |r: f64| if r < 0.0 { "-1".to_string() } else { format!("{r:.2}") };
        let dir = store.config().commit_log_dir();
        let capacity = StatvfsProbe.partition(&store.config().store_path_root_dir).map(|u| {
            let free = (u.total_bytes as f64 * (1.0 - u.ratio)).max(0.0) as u64;
            format!("Total : {}, Free : {}.", human_bytes(u.total_bytes), human_bytes(free))
        });
        table.extend([
            ("commitLogDiskRatio".into(), ratio(a.commit_log_ratio)),
            (format!("commitLogDiskRatio_{}", dir.display()), ratio(a.commit_log_ratio)),
            ("consumeQueueDiskRatio".into(), ratio(a.consume_queue_ratio)),
            ("commitLogDirCapacity".into(), capacity.unwrap_or_else(|| "unknown".into())),
            ("diskQuota".into(), a.quota_bytes.to_string()),
            ("diskQuotaShare".into(), format!("{}", policy.disk_share)),
            ("logicalDiskUsage".into(), a.logical_bytes.to_string()),
            (
                "logicalDiskRatio".into(),
                if a.logical_ratio < 0.0 { "-1".into() } else { format!("{:.4}", a.logical_ratio) },
            ),
            ("diskSpaceWarningLevelRatio".into(), format!("{:.2}", policy.warning_ratio)),
            ("earliestMessageTimeStamp".into(), store.earliest_message_time_in_store().unwrap_or(-1).to_string()),
        ]);
        table.extend(self.store_stats(now));
        table
    }

    /// Apache's `StoreStatsService`, `BrokerStats`, schedule and timer keys of the runtime info.
    fn store_stats(&self, now: i64) -> Vec<(String, String)> {
        use super::stats_window::{java_double, RateCounters};
        let core = &self.core;
        let store = core.store();
        let rates = &core.rates;
        let live = (now, core.rate_counters());
        let since = core.started_at;
        let tps = |pick: fn(&RateCounters) -> u64| rates.tps_text(live, since, pick);
        let total_tps = |w: i64| rates.tps(live, since, w, |c| c.get_found) + rates.tps(live, since, w, |c| c.get_miss);
        let puts = live.1.put;
        let put_bytes = core.stats.put_bytes.load(std::sync::atomic::Ordering::Relaxed);
        let day = rates.day_totals();
        let mut t: Vec<(String, String)> = vec![
            ("putMessageTimesTotal".into(), puts.to_string()),
            ("putMessageFailedTimes".into(), store.put_failed_times().to_string()),
            ("putMessageAverageSize".into(), java_double(put_bytes as f64 / puts.max(1) as f64)),
            // Apache never sets it (always 0).
            ("dispatchMaxBuffer".into(), "0".into()),
            ("putTps".into(), tps(|c| c.put)),
            ("getFoundTps".into(), tps(|c| c.get_found)),
            ("getMissTps".into(), tps(|c| c.get_miss)),
            ("getTotalTps".into(), [10, 60, 600].map(|w| java_double(total_tps(w))).join(" ")),
            ("getTransferredTps".into(), tps(|c| c.transferred)),
            ("msgPutTotalYesterdayMorning".into(), day.put_yesterday_morning.to_string()),
            ("msgPutTotalTodayMorning".into(), day.put_today_morning.to_string()),
            ("msgGetTotalYesterdayMorning".into(), day.get_yesterday_morning.to_string()),
            ("msgGetTotalTodayMorning".into(), day.get_today_morning.to_string()),
            // Puts hold our commitlog lock only to copy their bytes; Apache's figure is how long
            // the current holder has held it, which we do not track.
            ("pageCacheLockTimeMills".into(), "0".into()),
            // Sends are accepted from the start (Apache's config key, default 0).
            ("startAcceptSendRequestTimeStamp".into(), "0".into()),
            // No transient store pool here: Apache's answer without one.
            ("remainTransientStoreBufferNumbs".into(), i32::MAX.to_string()),
            (
                "remainHowManyDataToFlush".into(),
                human_bytes((store.commit_log_max_offset() - store.commit_log_flushed_offset()).max(0) as u64),
            ),
        ];
        for (level, offset) in self.schedule.offsets() {
            let max = store.max_offset_in_queue(super::delay::SCHEDULE_TOPIC, level - 1);
            t.push((format!("scheduleMessageOffset_{level}"), format!("{offset},{max}")));
        }
        match core.acting.timer_service() {
            Some(timer) => {
                let (queue_offset, read_ms) = timer.progress();
                let wheel_max = store.max_offset_in_queue(crate::store::timer::TIMER_TOPIC, 0);
                let read_behind = if read_ms > 0 { (now - read_ms).max(0) / 1000 } else { 0 };
                t.extend([
                    ("timerReadBehind".into(), read_behind.to_string()),
                    ("timerOffsetBehind".into(), (wheel_max - queue_offset.max(0)).max(0).to_string()),
                    // Messages waiting in the wheel: Apache sums the wheel's slots; not counted here.
                    ("timerCongestNum".into(), "0".into()),
                    ("timerEnqueueTps".into(), java_double(rates.tps(live, since, 10, |c| c.timer_enqueued))),
                    ("timerDequeueTps".into(), java_double(rates.tps(live, since, 10, |c| c.timer_dequeued))),
                ]);
            }
            None => t.extend(
                [("timerReadBehind", "0"), ("timerOffsetBehind", "0"), ("timerCongestNum", "0")]
                    .into_iter()
                    .chain([("timerEnqueueTps", "0.0"), ("timerDequeueTps", "0.0")])
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            ),
        }
        t
    }

    /// Every key GET_BROKER_CONFIG shows with its value, sorted by key: Apache 5.3.3's whole key
    /// set (its `getAllConfigs`) with our values for the keys we implement (the live ones as they
    /// are now, secrets masked) and Apache's defaults for the keys we accept and ignore, plus our
    /// own keys.
    pub fn config_entries(&self) -> Vec<(String, String)> {
        let mut all: std::collections::BTreeMap<String, String> = super::apache_config::APACHE_CONFIG_DEFAULTS
            .iter()
            .filter_map(|(k, _)| Some((k.to_string(), super::apache_config::apache_default(k)?)))
            .collect();
        let live = self.core.store().live_keys().entries();
        let cleanup = self.cleanup.load().entries();
        let ours = self.core.config().entries().into_iter().chain(self.fixed.iter().map(|(k, v)| {
            let now = live.iter().chain(cleanup.iter()).find(|(l, _)| l == k);
            (*k, now.map_or_else(|| v.clone(), |(_, v)| v.clone()))
        }));
        for (k, v) in ours {
            all.insert(k.to_string(), v);
        }
        all.into_iter().collect()
    }

    fn get_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let entries = self.config_entries();
        let refs: Vec<(&str, String)> = entries.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        RemotingCommand::success(req)
            .with_ext("version", self.version.lock().to_json())
            .with_body(Bytes::from(to_properties_text(&refs)))
    }

    fn update_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let current = RuntimeKeys {
            broker: (*self.core.config()).clone(),
            store: self.core.store().live_keys(),
            cleanup: (**self.cleanup.load()).clone(),
        };
        let black: Vec<&str> = ["brokerConfigPath", "configBlackList"]
            .into_iter()
            .chain(current.broker.config_black_list.split(';').map(str::trim))
            .chain(["brokerClusterName", "brokerName", "brokerId", "brokerRole", "listenPort", "haListenPort"])
            .filter(|k| !k.is_empty())
            .collect();
        // Keys read only when the broker starts: changing them at runtime would answer "success"
        // and do nothing (or half of it).
        let frozen: Vec<&str> = self
            .fixed
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| !LIVE_STORE_KEYS.contains(k) && !LIVE_CLEANUP_KEYS.contains(k))
            .chain([
                "brokerIP1",
                "brokerIP2",
                "namesrvAddr",
                "enableDLegerCommitLog",
                "dLegerGroup",
                "dLegerPeers",
                "dLegerSelfId",
                "preferredLeaderId",
                "storePathDLedgerCommitLog",
                "heartBeatTimeIntervalMs",
                "maxHeartBeatLeak",
                "minVoteIntervalMs",
                "maxVoteIntervalMs",
                "enableBatchPush",
                "maxBatchPushSize",
                "enableControllerMode",
                "enableSlaveActingMaster",
                "duplicationEnable",
                "isolateLogEnable",
                // The broker's threads and request queues are built when it starts.
                "brokerWorkerThreads",
                "sendThreadPoolQueueCapacity",
                "pullThreadPoolQueueCapacity",
                "queryThreadPoolQueueCapacity",
                "endTransactionPoolQueueCapacity",
                "waitTimeMillsInSendQueue",
                "waitTimeMillsInPullQueue",
                "waitTimeMillsInTransactionQueue",
                // The timer service reads these when it starts (timerMaxDelaySec applies at once).
                "timerWheelEnable",
                "timerPrecisionMs",
                "timerRollWindowSlot",
                "timerFlushIntervalMs",
                "mappedFileSizeTimerLog",
                "timerStopEnqueue",
                "timerStopDequeue",
            ])
            .collect();
        let path = self.config_path.clone();
        let file_size = self.core.store().config().mapped_file_size_commit_log;
        let validate = move |c: &RuntimeKeys| {
            c.broker.clone().validate(&path).map_err(|e| e.to_string())?;
            super::config::validate_live_store(&c.store, file_size)?;
            c.cleanup.validate()
        };
        match apply_runtime_update(&current, &req.body, &black, &frozen, &validate, Some(&self.config_path)) {
            Ok((next, keys)) => {
                if next.store != current.store {
                    self.core.store().set_live_keys(next.store);
                }
                if next.cleanup != current.cleanup {
                    for n in next.cleanup.policy().1 {
                        warn!("{n}");
                    }
                    self.cleanup.store(Arc::new(next.cleanup));
                }
                self.core.meta.config.store(Arc::new(next.broker));
                self.version.lock().next();
                self.core.wake_registration.notify_one();
                info!(?keys, "broker config updated");
                RemotingCommand::success(req)
            }
            Err(r) => update_refused(req, r),
        }
    }
}

impl RequestProcessor for BrokerAdminProcessor {
    fn process<'a>(
        &'a self,
        _conn: &'a ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move {
            Some(match req.code {
                request::GET_BROKER_RUNTIME_INFO => {
                    let table: serde_json::Map<String, serde_json::Value> =
                        self.runtime_info().into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
                    let body = serde_json::json!({ "table": table }).to_string();
                    RemotingCommand::success(&req).with_body(Bytes::from(body))
                }
                request::GET_BROKER_CONFIG => self.get_config(&req),
                request::UPDATE_BROKER_CONFIG => self.update_config(&req),
                request::GET_ALL_DELAY_OFFSET => {
                    RemotingCommand::success(&req).with_body(Bytes::from(self.schedule.encode()))
                }
                request::TRIGGER_DELETE_FILES => {
                    self.core.store().trigger_delete_files();
                    RemotingCommand::success(&req)
                }
                other => RemotingCommand::error(
                    &req,
                    response::REQUEST_CODE_NOT_SUPPORTED,
                    format!(" request type {other} not supported"),
                ),
            })
        })
    }
}

/// A byte count as Apache's `MixAll.humanReadableByteCount(bytes, false)` writes it (`512 B`,
/// `1.5 KiB`, `3.0 GiB`).
pub fn human_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let exp = ((bytes as f64).ln() / 1024f64.ln()) as i32;
    let exp = exp.clamp(1, 6);
    let unit = ["K", "M", "G", "T", "P", "E"][exp as usize - 1];
    format!("{:.1} {unit}iB", bytes as f64 / 1024f64.powi(exp))
}

/// The answer to a refused UPDATE_BROKER_CONFIG (broker or container), with Apache's codes.
pub fn update_refused(req: &RemotingCommand, r: UpdateRefusal) -> RemotingCommand {
    match r {
        UpdateRefusal::Unparsable(e) => {
            RemotingCommand::error(req, response::SYSTEM_ERROR, format!("string2Properties error: {e}"))
        }
        UpdateRefusal::BlackListed(k) => RemotingCommand::error(
            req,
            response::NO_PERMISSION,
            format!("Can not update config in black list. (key '{k}')"),
        ),
        UpdateRefusal::Invalid(e) => RemotingCommand::error(req, response::INVALID_PARAMETER, e),
        UpdateRefusal::Persist(e) => RemotingCommand::error(req, response::SYSTEM_ERROR, e),
    }
}
