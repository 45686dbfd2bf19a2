//! Slave metadata sync (Apache's `SlaveSynchronize`, every second instead of every minute): topics,
//! consumer offsets, delay offsets and subscription groups copied from the master.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::core::BrokerCore;
use super::schedule::ScheduleService;
use crate::ha::SYNC_PERIOD;
use crate::protocol::codes::{request, response};
use crate::remoting::{RemotingClient, RemotingCommand};

#[derive(Default)]
struct SyncMemo {
    topics_version: Option<crate::protocol::body::DataVersion>,
    groups_version: Option<crate::protocol::body::DataVersion>,
    offsets_hash: Option<u32>,
    delay_hash: Option<u32>,
}

/// Copies topics, consumer offsets, delay offsets and subscription groups from the master every
/// [`SYNC_PERIOD`] (skipping what did not change), and samples the master's commitlog max offset for
/// the lag.
pub async fn run_slave_sync(
    core: Arc<BrokerCore>,
    schedule: Arc<ScheduleService>,
    client: RemotingClient,
    cancel: CancellationToken,
) {
    let mut memo = SyncMemo::default();
    let mut tick = tokio::time::interval(SYNC_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(master) = core.ha.slave.master_addr() else { continue };
        if let Err(e) = sync_once(&core, &schedule, &client, &master, &mut memo).await {
            debug!(master = %master, error = %e, "slave sync failed");
        }
    }
}

async fn fetch(core: &BrokerCore, client: &RemotingClient, addr: &str, code: i32) -> Result<Bytes, String> {
    let req = core.sign(RemotingCommand::request(code));
    let resp = client.invoke(addr, req, Duration::from_secs(3)).await.map_err(|e| e.to_string())?;
    if resp.code != response::SUCCESS {
        return Err(format!("request {code} answered {} {:?}", resp.code, resp.remark));
    }
    Ok(resp.body.clone())
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OffsetWrapper {
    #[serde(default)]
    offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupWrapper {
    #[serde(default)]
    data_version: Option<crate::protocol::body::DataVersion>,
    #[serde(default)]
    subscription_group_table: BTreeMap<String, super::meta::SubscriptionGroupConfig>,
}

async fn sync_once(
    core: &BrokerCore,
    schedule: &ScheduleService,
    client: &RemotingClient,
    master: &str,
    memo: &mut SyncMemo,
) -> Result<(), String> {
    let info = fetch(core, client, master, request::GET_BROKER_RUNTIME_INFO).await?;
    let v: serde_json::Value = crate::json::from_slice_lenient(&info).map_err(|e| e.to_string())?;
    if let Some(m) = v["table"]["commitLogMaxOffset"].as_str().and_then(|s| s.parse::<i64>().ok()) {
        core.ha.slave.set_master_max(m);
    }
    if core.config().enable_slave_acting_master {
        // Timer delivery progress (Apache syncs the timer checkpoint's lastReadTimeMs).
        if let Some(ms) = v["table"]["timerReadTimeMs"].as_str().and_then(|s| s.parse::<i64>().ok()) {
            core.acting.advance_timer(ms);
        }
    }

    let body = fetch(core, client, master, request::GET_ALL_TOPIC_CONFIG).await?;
    let w: crate::protocol::body::TopicConfigSerializeWrapper =
        crate::json::from_slice_lenient(&body).map_err(|e| format!("topics: {e}"))?;
    if memo.topics_version.as_ref() != Some(&w.data_version) {
        let v = w.data_version;
        core.meta.topics.replace_from_master(w).map_err(|e| e.to_string())?;
        info!("topic configs synced from master");
        memo.topics_version = Some(v);
    }

    let body = fetch(core, client, master, request::GET_ALL_CONSUMER_OFFSET).await?;
    let h = crc32fast::hash(&body);
    if memo.offsets_hash != Some(h) {
        let w: OffsetWrapper = crate::json::from_slice_lenient(&body).map_err(|e| format!("offsets: {e}"))?;
        if core.config().enable_slave_acting_master {
            // What this broker did as acting master is not taken back by a master's older view.
            core.meta.offsets.merge_max(w.offset_table);
        } else {
            core.meta.offsets.merge_from_master(w.offset_table);
        }
        memo.offsets_hash = Some(h);
    }

    let body = fetch(core, client, master, request::GET_ALL_DELAY_OFFSET).await?;
    let h = crc32fast::hash(&body);
    if memo.delay_hash != Some(h) {
        let w: OffsetWrapper2 = crate::json::from_slice_lenient(&body).map_err(|e| format!("delay offsets: {e}"))?;
        if core.config().enable_slave_acting_master {
            schedule.merge_offsets(&w.offset_table);
        } else {
            schedule.replace_offsets(w.offset_table);
        }
        memo.delay_hash = Some(h);
    }

    let body = fetch(core, client, master, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).await?;
    let w: GroupWrapper = crate::json::from_slice_lenient(&body).map_err(|e| format!("groups: {e}"))?;
    if w.data_version.is_none() || memo.groups_version != w.data_version {
        core.meta
            .subscriptions
            .merge_from_master(w.subscription_group_table, w.data_version)
            .map_err(|e| e.to_string())?;
        info!("subscription groups synced from master");
        memo.groups_version = w.data_version;
    }
    Ok(())
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OffsetWrapper2 {
    #[serde(default)]
    offset_table: BTreeMap<i32, i64>,
}
