//! The broker's own admin requests: runtime info, its config, delay offsets.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tracing::info;

use super::core::BrokerCore;
use super::schedule::ScheduleService;
use crate::config::{apply_runtime_update, to_properties_text, ConfigValue, Configurable, UpdateRefusal};
use crate::protocol::codes::{request, response};
use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RequestProcessor};
use crate::store::cleanup::{assess, CleanupPolicy, DiskProbe, StatvfsProbe};

/// Answers GET_BROKER_RUNTIME_INFO, GET_BROKER_CONFIG, UPDATE_BROKER_CONFIG, GET_ALL_DELAY_OFFSET,
/// TRIGGER_DELETE_FILES.
pub struct BrokerAdminProcessor {
    core: Arc<BrokerCore>,
    schedule: Arc<ScheduleService>,
    config_path: PathBuf,
    /// Store and cleanup keys with their values, read-only at runtime.
    fixed: Vec<(&'static str, String)>,
    version: parking_lot::Mutex<crate::protocol::body::DataVersion>,
    /// The cleanup policy (thresholds and disk share) the runtime info reports against.
    policy: CleanupPolicy,
    /// The broker's bounded request queues (send, pull, query), reported by runtime info.
    queues: Vec<(Arc<crate::remoting::Admission>, usize)>,
}

/// Store keys an operator may change while the broker runs (Apache applies them to the live
/// `MessageStoreConfig`).
pub const STORE_LIVE_KEYS: &[&str] = &["maxMessageSize"];

/// The codes [`BrokerAdminProcessor`] answers.
pub const ADMIN_CODES: &[i32] = &[
    request::GET_BROKER_RUNTIME_INFO,
    request::GET_BROKER_CONFIG,
    request::UPDATE_BROKER_CONFIG,
    request::GET_ALL_DELAY_OFFSET,
    request::TRIGGER_DELETE_FILES,
];

impl BrokerAdminProcessor {
    /// A processor over a broker's core; `fixed` lists the store keys shown by GET_BROKER_CONFIG;
    /// `policy` is the cleanup policy the disk figures are reported against.
    pub fn new(
        core: Arc<BrokerCore>,
        schedule: Arc<ScheduleService>,
        config_path: PathBuf,
        fixed: Vec<(&'static str, String)>,
        policy: CleanupPolicy,
        queues: Vec<(Arc<crate::remoting::Admission>, usize)>,
    ) -> Self {
        BrokerAdminProcessor {
            core,
            schedule,
            config_path,
            fixed,
            version: parking_lot::Mutex::new(crate::protocol::body::DataVersion::new()),
            policy,
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
        table.extend(core.ha.runtime_info(
            core.store().commit_log_max_offset(),
            core.config().broker_role == super::config::BrokerRole::Slave,
        ));
        // Apache's queue keys (clusterList's #InTPS(LOAD) / #OutTPS(LOAD) columns read them).
        for (q, capacity) in &self.queues {
            let name = q.name();
            table.push((format!("{name}ThreadPoolQueueSize"), q.len().to_string()));
            table.push((format!("{name}ThreadPoolQueueCapacity"), capacity.to_string()));
            table.push((format!("{name}ThreadPoolBusyRefusals"), q.refused().to_string()));
        }
        // Disk figures measured now (statvfs is cheap), against this broker's thresholds.
        let a = assess(&self.policy, &store.sample_disk_usage(&StatvfsProbe));
        let ratio = |r: f64| if r < 0.0 { "-1".to_string() } else { format!("{r:.2}") };
        let dir = store.config().commit_log_dir();
        let capacity = StatvfsProbe.partition(&dir).map(|u| {
            let free = (u.total_bytes as f64 * (1.0 - u.ratio)).max(0.0) as u64;
            format!("Total : {} MiB, Free : {} MiB.", u.total_bytes >> 20, free >> 20)
        });
        table.extend([
            ("commitLogDiskRatio".into(), ratio(a.commit_log_ratio)),
            ("consumeQueueDiskRatio".into(), ratio(a.consume_queue_ratio)),
            ("commitLogDirCapacity".into(), capacity.unwrap_or_else(|| "unknown".into())),
            ("diskQuota".into(), a.quota_bytes.to_string()),
            ("diskQuotaShare".into(), format!("{}", self.policy.disk_share)),
            ("logicalDiskUsage".into(), a.logical_bytes.to_string()),
            (
                "logicalDiskRatio".into(),
                if a.logical_ratio < 0.0 { "-1".into() } else { format!("{:.4}", a.logical_ratio) },
            ),
            ("diskSpaceWarningLevelRatio".into(), format!("{:.2}", self.policy.warning_ratio)),
            ("earliestMessageTimeStamp".into(), store.earliest_message_time_in_store().unwrap_or(-1).to_string()),
        ]);
        table
    }

    fn get_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let mut entries = self.core.config().entries();
        let live = self.core.max_message_size().to_string();
        entries.extend(
            self.fixed.iter().map(|(k, v)| (*k, if *k == "maxMessageSize" { live.clone() } else { v.clone() })),
        );
        RemotingCommand::success(req)
            .with_ext("version", self.version.lock().to_json())
            .with_body(Bytes::from(to_properties_text(&entries)))
    }

    /// `maxMessageSize` from an update body, checked against the commitlog file size:
    /// `Ok(None)` when the body does not name it; the rest of the body, re-written without it.
    fn split_store_keys(&self, body: &[u8]) -> Result<(Option<usize>, Option<Vec<u8>>), String> {
        let Ok(text) = std::str::from_utf8(body) else { return Ok((None, None)) };
        let Ok(raw) = crate::config::RawConfig::from_properties(std::path::Path::new("<request>"), text) else {
            return Ok((None, None));
        };
        if !raw.entries.iter().any(|e| STORE_LIVE_KEYS.contains(&e.key.as_str())) {
            return Ok((None, None));
        }
        let file = self.core.store().config().mapped_file_size_commit_log;
        let cap = file.saturating_sub(super::config::RECORD_OVERHEAD_ROOM);
        let mut size = None;
        let mut rest = String::new();
        for e in &raw.entries {
            if e.key == "maxMessageSize" {
                match e.value.trim().parse::<u64>() {
                    Ok(n) if n > 0 && n <= cap => size = Some(n as usize),
                    _ => {
                        return Err(format!(
                            "maxMessageSize '{}': expected 1..={cap} (commitlog file {file} B)",
                            e.value
                        ))
                    }
                }
            } else {
                rest.push_str(&format!("{}={}\n", e.key, e.value));
            }
        }
        Ok((size, (!rest.is_empty()).then(|| rest.into_bytes())))
    }

    fn update_config(&self, req: &RemotingCommand) -> RemotingCommand {
        // Store keys Apache applies at runtime are taken out and applied to the store.
        let (max_size, rest) = match self.split_store_keys(&req.body) {
            Ok(x) => x,
            Err(e) => return RemotingCommand::error(req, response::INVALID_PARAMETER, e),
        };
        if let Some(n) = max_size {
            if let Some(rest) = rest {
                let mut sub = req.clone();
                sub.body = Bytes::from(rest);
                let r = self.update_broker_keys(&sub);
                if r.code != response::SUCCESS {
                    return r;
                }
            }
            let kv = [("maxMessageSize".to_string(), n.to_string())];
            if let Err(e) = crate::config::update_properties_file(&self.config_path, &kv) {
                return RemotingCommand::error(
                    req,
                    response::SYSTEM_ERROR,
                    format!("cannot persist {}: {e}", self.config_path.display()),
                );
            }
            self.core.store().set_max_message_size(n);
            self.version.lock().next();
            info!(max_message_size = n, "maxMessageSize updated");
            return RemotingCommand::success(req);
        }
        self.update_broker_keys(req)
    }

    fn update_broker_keys(&self, req: &RemotingCommand) -> RemotingCommand {
        let current = self.core.config();
        let black: Vec<&str> = ["brokerConfigPath", "configBlackList"]
            .into_iter()
            .chain(current.config_black_list.split(';').map(str::trim))
            .chain(["brokerClusterName", "brokerName", "brokerId", "brokerRole", "listenPort", "haListenPort"])
            .filter(|k| !k.is_empty())
            .collect();
        // Keys read only when the broker starts: changing them at runtime would answer "success"
        // and do nothing (or half of it).
        let frozen: Vec<&str> = self
            .fixed
            .iter()
            .map(|(k, _)| *k)
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
                "enableControllerMode",
                "enableSlaveActingMaster",
                "duplicationEnable",
                "isolateLogEnable",
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
        let validate = move |c: &crate::broker::config::BrokerConfig| {
            c.clone().validate(&path).map(|_| ()).map_err(|e| e.to_string())
        };
        match apply_runtime_update(&*current, &req.body, &black, &frozen, &validate, Some(&self.config_path)) {
            Ok((next, keys)) => {
                self.core.meta.config.store(Arc::new(next));
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
