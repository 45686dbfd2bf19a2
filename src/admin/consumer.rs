//! consumerProgress: a group's consumed offsets against the brokers' max offsets.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::route::cluster_info;
use super::topic::message_queue_table;
use super::{check, human_time, Admin, AdminError};
use crate::client::route::read_addr;
use crate::protocol::codes::{request, response};
use crate::protocol::header::GetConsumeStatsRequestHeader;
use crate::remoting::RemotingCommand;

/// One queue's row of consumerProgress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueProgress {
    /// Next offset the broker will write.
    pub broker_offset: i64,
    /// The group's committed offset.
    pub consumer_offset: i64,
    /// Store time of the last consumed message (0 if unknown).
    pub last_timestamp: i64,
}

/// A group's stats over all brokers: (topic, brokerName, queueId) → progress, and the summed TPS.
#[derive(Debug, Clone, Default)]
pub struct ConsumeStats {
    /// The queues.
    pub table: BTreeMap<(String, String, i32), QueueProgress>,
    /// Consume TPS summed over brokers.
    pub consume_tps: f64,
}

/// GET_CONSUME_STATS (208) on every broker group (its master, else a slave). A broker that does not
/// know the group or topic contributes nothing.
pub async fn consume_stats(admin: &Admin, group: &str, topic: Option<&str>) -> Result<ConsumeStats, AdminError> {
    let info = cluster_info(admin).await?;
    let mut stats = ConsumeStats::default();
    for bd in info.broker_addr_table.values() {
        let Some(addr) = read_addr(bd) else { continue };
        let h = GetConsumeStatsRequestHeader {
            consumer_group: group.to_string(),
            topic: topic.map(str::to_string),
            topic_list: None,
        };
        let resp = admin.invoke(addr, RemotingCommand::request_with_header(request::GET_CONSUME_STATS, &h)).await?;
        if matches!(resp.code, response::SUBSCRIPTION_GROUP_NOT_EXIST | response::TOPIC_NOT_EXIST) {
            continue;
        }
        let resp = check(resp)?;
        let (v, rows) = message_queue_table(&resp.body, addr)?;
        stats.consume_tps += v.get("consumeTps").and_then(Value::as_f64).unwrap_or(0.0);
        let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
        for ((broker, t, qid), v) in rows {
            stats.table.insert(
                (t, broker, qid),
                QueueProgress {
                    broker_offset: num(&v, "brokerOffset"),
                    consumer_offset: num(&v, "consumerOffset"),
                    last_timestamp: num(&v, "lastTimestamp"),
                },
            );
        }
    }
    Ok(stats)
}

/// `consumerProgress -g group [-t topic]`: the table, the consume TPS and the total lag.
pub async fn consumer_progress(admin: &Admin, group: &str, topic: Option<&str>) -> Result<String, AdminError> {
    let group = group.trim();
    let stats = consume_stats(admin, group, topic.map(str::trim)).await?;
    if stats.table.is_empty() {
        return Err(AdminError::NotFound(format!(
            "no consume stats for group {group}: no broker has offsets of it (maybe it has not consumed any message)"
        )));
    }
    let mut out = format!(
        "{:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20}  {}\n",
        "#Topic", "#Broker Name", "#QID", "#Broker Offset", "#Consumer Offset", "#Diff", "#LastTime"
    );
    let mut diff_total = 0i64;
    for ((t, broker, qid), p) in &stats.table {
        let diff = p.broker_offset - p.consumer_offset;
        diff_total += diff;
        let last = if p.last_timestamp > 0 { human_time(p.last_timestamp) } else { "N/A".to_string() };
        let _ = writeln!(
            out,
            "{:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20}  {}",
            t, broker, qid, p.broker_offset, p.consumer_offset, diff, last
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Consume TPS: {:.2}", stats.consume_tps);
    let _ = writeln!(out, "Consume Diff Total: {diff_total}");
    Ok(out)
}
