//! The broker's own admin requests: runtime info, its config, delay offsets.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tracing::info;

use super::config::BrokerConfig;
use super::core::BrokerCore;
use super::schedule::ScheduleService;
use crate::config::{to_properties_text, ConfigValue, Configurable, RawConfig};
use crate::remoting::codes::{request, response};
use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RequestProcessor};

/// Answers GET_BROKER_RUNTIME_INFO, GET_BROKER_CONFIG, UPDATE_BROKER_CONFIG, GET_ALL_DELAY_OFFSET.
pub struct BrokerAdminProcessor {
    core: Arc<BrokerCore>,
    schedule: Arc<ScheduleService>,
    config_path: PathBuf,
    /// Store and cleanup keys with their values, read-only at runtime.
    fixed: Vec<(&'static str, String)>,
    version: parking_lot::Mutex<crate::util::DataVersion>,
}

/// The codes [`BrokerAdminProcessor`] answers.
pub const ADMIN_CODES: &[i32] = &[
    request::GET_BROKER_RUNTIME_INFO,
    request::GET_BROKER_CONFIG,
    request::UPDATE_BROKER_CONFIG,
    request::GET_ALL_DELAY_OFFSET,
];

impl BrokerAdminProcessor {
    /// A processor over a broker's core; `fixed` lists the store keys shown by GET_BROKER_CONFIG.
    pub fn new(
        core: Arc<BrokerCore>,
        schedule: Arc<ScheduleService>,
        config_path: PathBuf,
        fixed: Vec<(&'static str, String)>,
    ) -> Self {
        BrokerAdminProcessor { core, schedule, config_path, fixed, version: Default::default() }
    }

    /// The KV table of GET_BROKER_RUNTIME_INFO.
    pub fn runtime_info(&self) -> Vec<(String, String)> {
        use std::sync::atomic::Ordering::Relaxed;
        let core = &self.core;
        let store = core.store();
        let s = &core.stats;
        let now = crate::util::now_millis();
        let up = (now - core.started_at).max(0) / 1000;
        let mut out: Vec<(String, String)> = vec![
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
            ("brokerActive".into(), (!core.is_shutting_down()).to_string()),
            ("storeRunningFlags".into(), store.running_flags().to_string()),
            ("brokerRole".into(), core.config().broker_role.render()),
        ];
        out.extend(core.ha.runtime_info(core));
        out
    }

    fn get_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let mut entries = self.core.config().entries();
        entries.extend(self.fixed.iter().cloned());
        RemotingCommand::success(req)
            .with_ext("version", self.version.lock().to_json())
            .with_body(Bytes::from(to_properties_text(&entries)))
    }

    fn update_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let Ok(text) = std::str::from_utf8(&req.body) else {
            return RemotingCommand::error(req, response::SYSTEM_ERROR, "string2Properties error: body is not UTF-8");
        };
        let raw = match RawConfig::from_properties(&self.config_path, text) {
            Ok(r) => r,
            Err(e) => {
                return RemotingCommand::error(req, response::SYSTEM_ERROR, format!("string2Properties error: {e}"))
            }
        };
        let current = self.core.config();
        let black: Vec<&str> = ["brokerConfigPath", "configBlackList"]
            .into_iter()
            .chain(current.config_black_list.split(';').map(str::trim))
            .chain(["brokerClusterName", "brokerName", "brokerId", "brokerRole", "listenPort", "haListenPort"])
            .filter(|k| !k.is_empty())
            .collect();
        if let Some(e) = raw.entries.iter().find(|e| black.contains(&e.key.as_str())) {
            return RemotingCommand::error(
                req,
                response::NO_PERMISSION,
                format!("Can not update config in black list. (key '{}')", e.key),
            );
        }
        if let Some(e) = raw.entries.iter().find(|e| self.fixed.iter().any(|(k, _)| *k == e.key)) {
            return RemotingCommand::error(
                req,
                response::INVALID_PARAMETER,
                format!("key '{}' is a store setting and cannot change while the broker runs", e.key),
            );
        }
        let mut next: BrokerConfig = (*current).clone();
        match raw.apply(&mut [&mut next as &mut dyn Configurable]) {
            Ok(unknown) if !unknown.is_empty() => {
                return RemotingCommand::error(req, response::INVALID_PARAMETER, unknown.join("; "))
            }
            Ok(_) => {}
            Err(e) => return RemotingCommand::error(req, response::INVALID_PARAMETER, e.to_string()),
        }
        let updates: Vec<(String, String)> = raw.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        if let Err(e) = crate::config::update_properties_file(&self.config_path, &updates) {
            return RemotingCommand::error(
                req,
                response::SYSTEM_ERROR,
                format!("cannot persist {}: {e}", self.config_path.display()),
            );
        }
        self.core.meta.config.store(Arc::new(next));
        self.version.lock().next();
        self.core.wake_registration.notify_one();
        info!(keys = ?updates.iter().map(|(k, _)| k).collect::<Vec<_>>(), "broker config updated");
        RemotingCommand::success(req)
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
                other => RemotingCommand::error(
                    &req,
                    response::REQUEST_CODE_NOT_SUPPORTED,
                    format!(" request type {other} not supported"),
                ),
            })
        })
    }
}
