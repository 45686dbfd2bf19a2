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

/// Parses a reset time as Apache's mqadmin does: milliseconds, `now`, or
/// `yyyy-MM-dd#HH:mm:ss:SSS` (taken as UTC here; Apache reads it in the tool's local zone).
pub fn parse_reset_time(s: &str) -> Result<i64, AdminError> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(crate::util::now_millis());
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || AdminError::Usage(format!("timestamp '{s}': give milliseconds, now, or yyyy-MM-dd#HH:mm:ss:SSS"));
    let (date, time) = s.split_once('#').ok_or_else(bad)?;
    let d: Vec<i64> = date.split('-').map(|x| x.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let t: Vec<i64> = time.split(':').map(|x| x.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    if d.len() != 3 || t.len() != 4 {
        return Err(bad());
    }
    crate::util::utc_millis(d[0], d[1], d[2], t[0], t[1], t[2], t[3]).ok_or_else(bad)
}

/// `resetOffsetByTime`: INVOKE_BROKER_TO_RESET_OFFSET (222) on every master of the topic's route;
/// prints each queue's new offset. Consumers are moved on their next pull.
pub async fn reset_offset_by_time(
    admin: &Admin,
    group: &str,
    topic: &str,
    timestamp: i64,
    force: bool,
) -> Result<String, AdminError> {
    let route = super::route::topic_route(admin, topic).await?;
    let mut out = String::new();
    let _ = writeln!(out, "{:<40}  {:<24}  {:<5}  {:<20}", "#brokerName", "#topic", "#QID", "#offset");
    let mut rows = 0;
    for bd in &route.broker_datas {
        let Some(addr) = crate::client::route::master_of(bd) else { continue };
        let req = RemotingCommand::request(request::INVOKE_BROKER_TO_RESET_OFFSET)
            .with_ext("group", group)
            .with_ext("topic", topic)
            .with_ext("timestamp", timestamp.to_string())
            .with_ext("isForce", force.to_string());
        let resp = check(admin.invoke(addr, req).await?)?;
        let (_, table) = message_queue_table(&resp.body, addr)?;
        for ((broker, t, qid), v) in table {
            let _ = writeln!(out, "{broker:<40}  {t:<24}  {qid:<5}  {:<20}", v.as_i64().unwrap_or(-1));
            rows += 1;
        }
    }
    if rows == 0 {
        return Err(AdminError::NotFound(format!("no master of topic {topic} answered")));
    }
    Ok(out)
}

/// `cloneGroupOffset`: CLONE_GROUP_OFFSET (314) on every master of the topic's route.
pub async fn clone_group_offset(
    admin: &Admin,
    src: &str,
    dest: &str,
    topic: &str,
    offline: bool,
) -> Result<String, AdminError> {
    let route = super::route::topic_route(admin, topic).await?;
    let mut out = String::new();
    for bd in &route.broker_datas {
        let Some(addr) = crate::client::route::master_of(bd) else { continue };
        let req = RemotingCommand::request(request::CLONE_GROUP_OFFSET)
            .with_ext("srcGroup", src)
            .with_ext("destGroup", dest)
            .with_ext("topic", topic)
            .with_ext("offline", offline.to_string());
        check(admin.invoke(addr, req).await?)?;
        let _ = writeln!(out, "clone group offset success. srcGroup[{src}], destGroup[{dest}], topic[{topic}], {addr}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_times() {
        assert_eq!(parse_reset_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_reset_time("1970-01-02#00:00:01:005").unwrap(), 86_401_005);
        assert_eq!(parse_reset_time("2026-11-29#12:00:00:000").unwrap(), 1_795_953_600_000);
        assert!((parse_reset_time("now").unwrap() - crate::util::now_millis()).abs() < 5_000);
        assert!(parse_reset_time("yesterday").is_err());
        assert!(parse_reset_time("2026-13-01#00:00:00:000").is_err());
    }
}
