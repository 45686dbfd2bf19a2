//! The dashboard's and operators' consumer and broker views: consumerConnection, consumerStatus
//! (running info of each client through the broker), brokerConsumeStats, queryCq, cleanExpiredCQ,
//! cleanUnusedTopic, statsAll, getConsumerConfig and queryMsgTraceById.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::route::{cluster_info, topic_route};
use super::{check, human_time, Admin, AdminError};
use crate::client::route::{master_of, read_addr};
use crate::json::object_keys::parse_slice;
use crate::protocol::codes::request;
use crate::remoting::RemotingCommand;

fn bad(addr: &str, reason: impl std::fmt::Display) -> AdminError {
    AdminError::BadAnswer { addr: addr.to_string(), reason: reason.to_string() }
}

fn json(addr: &str, body: &[u8]) -> Result<Value, AdminError> {
    parse_slice(body).map_err(|e| bad(addr, e))
}

/// Every broker group's read address (master, else a slave).
async fn broker_addrs(admin: &Admin) -> Result<Vec<String>, AdminError> {
    let info = cluster_info(admin).await?;
    Ok(info.broker_addr_table.values().filter_map(read_addr).map(str::to_string).collect())
}

/// GET_CONSUMER_CONNECTION_LIST (203) on the first broker that knows the group online: the body
/// and the broker's address.
pub async fn consumer_connection_body(admin: &Admin, group: &str) -> Result<(Value, String), AdminError> {
    let mut last = None;
    for addr in broker_addrs(admin).await? {
        let req = RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST).with_ext("consumerGroup", group);
        match admin.invoke(&addr, req).await.and_then(check) {
            Ok(r) => return Ok((json(&addr, &r.body)?, addr)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| AdminError::NotFound(format!("no broker knows the consumer group {group}"))))
}

/// `consumerConnection -g group`: the group's clients and subscriptions.
pub async fn consumer_connection(admin: &Admin, group: &str) -> Result<String, AdminError> {
    let (v, _) = consumer_connection_body(admin, group).await?;
    let mut out =
        format!("{:<5}  {:<64}  {:<24}  {:<8}  {}\n", "#", "#ClientId", "#ClientAddr", "#Language", "#Version");
    for (i, c) in v["connectionSet"].as_array().into_iter().flatten().enumerate() {
        let s = |k: &str| c[k].as_str().map(str::to_string).unwrap_or_else(|| c[k].to_string());
        let _ = writeln!(
            out,
            "{:<5}  {:<64}  {:<24}  {:<8}  {}",
            i + 1,
            s("clientId"),
            s("clientAddr"),
            s("language"),
            c["version"]
        );
    }
    out.push_str("\nBelow is subscription:\n");
    if let Some(subs) = v["subscriptionTable"].as_object() {
        for (i, (topic, sd)) in subs.iter().enumerate() {
            let _ = writeln!(out, "{:<5}  Topic: {:<40}  SubExpression: {}", i + 1, topic, sd["subString"]);
        }
    }
    let _ = writeln!(out, "\nConsumeType: {}", v["consumeType"].as_str().unwrap_or(""));
    let _ = writeln!(out, "MessageModel: {}", v["messageModel"].as_str().unwrap_or(""));
    let _ = writeln!(out, "ConsumeFromWhere: {}", v["consumeFromWhere"].as_str().unwrap_or(""));
    Ok(out)
}

/// GET_CONSUMER_RUNNING_INFO (307) of one client through `addr`: the client's raw answer.
pub async fn running_info(
    admin: &Admin,
    addr: &str,
    group: &str,
    client_id: &str,
    jstack: bool,
) -> Result<Value, AdminError> {
    let req = RemotingCommand::request(request::GET_CONSUMER_RUNNING_INFO)
        .with_ext("consumerGroup", group)
        .with_ext("clientId", client_id)
        .with_ext("jstackEnable", jstack.to_string());
    let r = check(admin.client.invoke(addr, req, std::time::Duration::from_secs(15)).await?)?;
    json(addr, &r.body)
}

/// `consumerStatus -g group [-i clientId] [-s]`: the running info of every client of the group
/// (or of one), asked through the broker that sees it.
pub async fn consumer_status(
    admin: &Admin,
    group: &str,
    client: Option<&str>,
    jstack: bool,
) -> Result<String, AdminError> {
    let (conns, addr) = consumer_connection_body(admin, group).await?;
    let ids: Vec<String> = conns["connectionSet"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["clientId"].as_str().map(str::to_string))
        .filter(|id| client.is_none_or(|c| c == id))
        .collect();
    if ids.is_empty() {
        return Err(AdminError::NotFound(format!("no client of {group} is online (asked {addr})")));
    }
    let mut out = String::new();
    for (i, id) in ids.iter().enumerate() {
        let info = running_info(admin, &addr, group, id, jstack).await?;
        let _ = writeln!(out, "{:03}  {}", i + 1, id);
        if let Some(props) = info["properties"].as_object() {
            for (k, v) in props {
                let _ =
                    writeln!(out, "    {k:<40}: {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
            }
        }
        for s in info["subscriptionSet"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "    subscription: {} {}", s["topic"], s["subString"]);
        }
        if let Some(mqs) = info["mqTable"].as_object() {
            let _ = writeln!(out, "    mqTable: {} queue(s)", mqs.len());
            for (mq, pq) in mqs {
                let _ = writeln!(out, "      {mq}  commitOffset={}", pq["commitOffset"]);
            }
        }
        if let Some(st) = info["statusTable"].as_object() {
            for (topic, s) in st {
                let _ = writeln!(
                    out,
                    "    status {topic}: pullTPS={} consumeOKTPS={} consumeFailedMsgs={}",
                    s["pullTPS"], s["consumeOKTPS"], s["consumeFailedMsgs"]
                );
            }
        }
        if let Some(j) = info["jstack"].as_str() {
            let _ = writeln!(out, "    jstack:\n{j}");
        }
    }
    Ok(out)
}

/// `brokerConsumeStats -b addr [-o]`: GET_BROKER_CONSUME_STATS (317), one line per queue.
pub async fn broker_consume_stats(admin: &Admin, addr: &str, order: bool) -> Result<String, AdminError> {
    let req = RemotingCommand::request(request::GET_BROKER_CONSUME_STATS).with_ext("isOrder", order.to_string());
    let r = admin.call(addr, req).await?;
    let v = json(addr, &r.body)?;
    let mut out = format!(
        "{:<64}  {:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20}  {}\n",
        "#Topic", "#Group", "#Broker Name", "#QID", "#Broker Offset", "#Consumer Offset", "#Diff", "#LastTime"
    );
    for entry in v["consumeStatsList"].as_array().into_iter().flatten() {
        let Some(m) = entry.as_object() else { continue };
        for (group, list) in m {
            for cs in list.as_array().into_iter().flatten() {
                let mut rows: Vec<(Value, Value)> = Vec::new();
                for (k, w) in cs["offsetTable"].as_object().into_iter().flatten() {
                    let mq: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                    rows.push((mq, w.clone()));
                }
                rows.sort_by_key(|(mq, _)| (mq["topic"].to_string(), mq["queueId"].as_i64().unwrap_or(0)));
                for (mq, w) in rows {
                    let (b, c) = (w["brokerOffset"].as_i64().unwrap_or(0), w["consumerOffset"].as_i64().unwrap_or(0));
                    let last = w["lastTimestamp"].as_i64().unwrap_or(0);
                    let _ = writeln!(
                        out,
                        "{:<64}  {:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20}  {}",
                        mq["topic"].as_str().unwrap_or(""),
                        group,
                        mq["brokerName"].as_str().unwrap_or(""),
                        mq["queueId"],
                        b,
                        c,
                        b - c,
                        if last > 0 { human_time(last) } else { "N/A".into() }
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "\nDiff Total: {}", v["totalDiff"]);
    Ok(out)
}

/// `queryCq -t topic -q queueId -i index -c count [-g group] [-b addr]`: QUERY_CONSUME_QUEUE (321).
pub async fn query_cq(
    admin: &Admin,
    topic: &str,
    queue_id: i32,
    index: i64,
    count: i32,
    group: Option<&str>,
    addr: Option<&str>,
) -> Result<String, AdminError> {
    let addr = match addr {
        Some(a) => a.to_string(),
        None => {
            let route = topic_route(admin, topic).await?;
            route
                .broker_datas
                .iter()
                .find_map(|bd| master_of(bd).map(str::to_string))
                .ok_or_else(|| AdminError::NotFound(format!("no master serves {topic}")))?
        }
    };
    let mut req = RemotingCommand::request(request::QUERY_CONSUME_QUEUE)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id.to_string())
        .with_ext("index", index.to_string())
        .with_ext("count", count.to_string());
    if let Some(g) = group {
        req = req.with_ext("consumerGroup", g);
    }
    let r = admin.call(&addr, req).await?;
    let v = json(&addr, &r.body)?;
    let mut out = String::new();
    if let Some(sd) = v.get("subscriptionData") {
        let _ = writeln!(out, "Subscription data: \n{sd}");
        let _ = writeln!(out, "======================================");
    }
    if let Some(fd) = v.get("filterData") {
        let _ = writeln!(out, "Filter data: \n{}", fd.as_str().unwrap_or(""));
        let _ = writeln!(out, "======================================");
    }
    let _ = writeln!(out, "Queue data: \nmax: {}, min: {}", v["maxQueueIndex"], v["minQueueIndex"]);
    let _ = writeln!(out, "======================================");
    for (i, d) in v["queueData"].as_array().into_iter().flatten().enumerate() {
        let _ = writeln!(
            out,
            "idx: {}\n{{\"physicOffset\":{},\"physicSize\":{},\"tagsCode\":{}}}\n======================================",
            index + i as i64,
            d["physicOffset"],
            d["physicSize"],
            d["tagsCode"]
        );
    }
    Ok(out)
}

/// `cleanExpiredCQ` / `cleanUnusedTopic` (`code` 306 / 316) on one broker, a cluster's masters,
/// or every master.
pub async fn clean(
    admin: &Admin,
    code: i32,
    broker_addr: Option<&str>,
    cluster: Option<&str>,
) -> Result<String, AdminError> {
    let addrs: Vec<String> = match (broker_addr, cluster) {
        (None, None) => {
            let info = cluster_info(admin).await?;
            info.broker_addr_table.values().filter_map(master_of).map(str::to_string).collect()
        }
        _ => super::cluster::target_addrs(admin, broker_addr, cluster, true).await?,
    };
    let mut out = String::new();
    let mut failed = Vec::new();
    for addr in addrs {
        match admin.call(&addr, RemotingCommand::request(code)).await {
            Ok(_) => {
                let _ = writeln!(out, "success, {addr}");
            }
            Err(e) => failed.push(format!("{addr}: {e}")),
        }
    }
    if !failed.is_empty() {
        return Err(AdminError::Partial { output: out, failed: failed.join("; ") });
    }
    Ok(out)
}

/// VIEW_BROKER_STATS_DATA (315): `(minute tps, 24 h sum)` of one stats item, or `None` when the
/// broker has none.
pub async fn stats_item(admin: &Admin, addr: &str, name: &str, key: &str) -> Result<Option<(f64, i64)>, AdminError> {
    let req =
        RemotingCommand::request(request::VIEW_BROKER_STATS_DATA).with_ext("statsName", name).with_ext("statsKey", key);
    let r = admin.invoke(addr, req).await?;
    if r.code != crate::protocol::codes::response::SUCCESS {
        return Ok(None);
    }
    let v = json(addr, &r.body)?;
    let tps = v["statsMinute"]["tps"].as_f64().unwrap_or(0.0);
    // Apache's compute24HourSum: the day's sum, else the hour's, else the minute's.
    let sum = ["statsDay", "statsHour", "statsMinute"]
        .iter()
        .map(|w| v[w]["sum"].as_i64().unwrap_or(0))
        .find(|s| *s != 0)
        .unwrap_or(0);
    Ok(Some((tps, sum)))
}

/// `statsAll [-t topic] [-a]`: per topic and consumer group, accumulation, in/out TPS and the
/// messages of the last 24 hours, from every master of the topic.
pub async fn stats_all(admin: &Admin, only: Option<&str>, active_only: bool) -> Result<String, AdminError> {
    let topics: Vec<String> = match only {
        Some(t) => vec![t.to_string()],
        None => super::route::topic_list(admin).await?.topic_list.into_iter().collect(),
    };
    let mut out = format!(
        "{:<64}  {:<64} {:>12} {:>11} {:>11} {:>14} {:>14}\n",
        "#Topic", "#Consumer Group", "#Accumulation", "#InTPS", "#OutTPS", "#InMsg24Hour", "#OutMsg24Hour"
    );
    for topic in topics {
        if topic.starts_with("%RETRY%") || topic.starts_with("%DLQ%") {
            continue;
        }
        let Ok(route) = topic_route(admin, &topic).await else { continue };
        let masters: Vec<String> = route.broker_datas.iter().filter_map(master_of).map(str::to_string).collect();
        let (mut in_tps, mut in_msgs) = (0.0, 0i64);
        let mut groups: BTreeMap<String, ()> = BTreeMap::new();
        for addr in &masters {
            if let Some((t, s)) = stats_item(admin, addr, "TOPIC_PUT_NUMS", &topic).await? {
                in_tps += t;
                in_msgs += s.max(0);
            }
            let req = RemotingCommand::request(request::QUERY_TOPIC_CONSUME_BY_WHO).with_ext("topic", &topic);
            if let Ok(r) = admin.call(addr, req).await {
                for g in json(addr, &r.body)?["groupList"].as_array().into_iter().flatten() {
                    if let Some(g) = g.as_str() {
                        groups.insert(g.to_string(), ());
                    }
                }
            }
        }
        if groups.is_empty() {
            if !active_only || in_msgs > 0 {
                let _ = writeln!(
                    out,
                    "{:<64}  {:<64} {:>12} {:>11.2} {:>11} {:>14} {:>14}",
                    topic, "", 0, in_tps, "", in_msgs, "NO_CONSUMER"
                );
            }
            continue;
        }
        for group in groups.keys() {
            let (mut out_tps, mut out_msgs) = (0.0, 0i64);
            for addr in &masters {
                if let Some((t, s)) = stats_item(admin, addr, "GROUP_GET_NUMS", &format!("{topic}@{group}")).await? {
                    out_tps += t;
                    out_msgs += s.max(0);
                }
            }
            let acc: i64 = match super::consumer::consume_stats(admin, group, Some(&topic)).await {
                Ok(s) => s.table.values().map(|p| (p.broker_offset - p.consumer_offset).max(0)).sum(),
                Err(_) => 0,
            };
            if !active_only || in_msgs > 0 || out_msgs > 0 {
                let _ = writeln!(
                    out,
                    "{:<64}  {:<64} {:>12} {:>11.2} {:>11.2} {:>14} {:>14}",
                    topic, group, acc, in_tps, out_tps, in_msgs, out_msgs
                );
            }
        }
    }
    Ok(out)
}

/// `getConsumerConfig -g group`: the subscription group config on every master that has it.
pub async fn get_consumer_config(admin: &Admin, group: &str) -> Result<String, AdminError> {
    let info = cluster_info(admin).await?;
    let mut out = String::new();
    for (cluster, names) in &info.cluster_addr_table {
        for name in names {
            let Some(addr) = info.broker_addr_table.get(name).and_then(master_of) else { continue };
            let req = RemotingCommand::request(request::GET_SUBSCRIPTIONGROUP_CONFIG).with_ext("group", group);
            let Ok(r) = admin.call(addr, req).await else { continue };
            let Ok(v) = json(addr, &r.body) else { continue };
            let Some(m) = v.as_object() else { continue };
            let _ = writeln!(out, "============Master: {addr} ({cluster})============");
            for (k, v) in m {
                let _ = writeln!(out, "{k:<50}=  {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
            }
        }
    }
    if out.is_empty() {
        return Err(AdminError::NotFound(format!("no master has the subscription group {group}")));
    }
    Ok(out)
}

/// One decoded trace record (Apache's `TraceDataEncoder`, spec messaging-5x §7).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRecord {
    /// `Pub`, `SubBefore`, `SubAfter`, `EndTransaction`, `Recall`.
    pub kind: String,
    /// The record's fields after the type.
    pub fields: Vec<String>,
}

/// Splits a trace message body into its records.
pub fn decode_trace(body: &str) -> Vec<TraceRecord> {
    body.split('\u{2}')
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            let mut it = r.split('\u{1}').map(str::to_string);
            let kind = it.next().unwrap_or_default();
            TraceRecord { kind, fields: it.collect() }
        })
        .collect()
}

/// `queryMsgTraceById -i msgId [-t traceTopic]`: the trace records of a message (QUERY_MESSAGE by
/// key on the trace topic), one line per record.
pub async fn query_msg_trace_by_id(admin: &Admin, msg_id: &str, trace_topic: &str) -> Result<String, AdminError> {
    let msgs = super::message::query_by_key(admin, trace_topic, msg_id, 64, 0, i64::MAX, false).await?;
    let mut out = format!(
        "{:<10} {:<40} {:<24} {:<24} {:<10} {:<10}\n",
        "#Type", "#Group", "#ClientHost/StoreHost", "#Time", "#CostTimes", "#Status"
    );
    let mut rows = 0;
    for m in &msgs {
        let host = m.born_host.to_string();
        for r in decode_trace(&String::from_utf8_lossy(&m.body)) {
            let f = |i: usize| r.fields.get(i).cloned().unwrap_or_default();
            let time = |s: String| s.parse::<i64>().map(human_time).unwrap_or(s);
            let line = match r.kind.as_str() {
                // Pub, timeStamp, regionId, groupName, topic, msgId, tags, keys, storeHost, bodyLength, costTime, msgType, offsetMsgId, success
                "Pub" if f(4) == msg_id => {
                    let ok = if r.fields.len() >= 13 && f(12) == "false" { "failed" } else { "success" };
                    format!("{:<10} {:<40} {:<24} {:<24} {:<10} {:<10}", "Pub", f(2), f(7), time(f(0)), f(9) + "ms", ok)
                }
                // SubBefore, timeStamp, regionId, groupName, requestId, msgId, retryTimes, keys
                "SubBefore" if f(4) == msg_id => format!(
                    "{:<10} {:<40} {:<24} {:<24} {:<10} {:<10}",
                    "SubBefore",
                    f(2),
                    host,
                    time(f(0)),
                    "",
                    format!("retry {}", f(5))
                ),
                // SubAfter, requestId, msgId, costTime, success, keys, contextCode[, timeStamp, groupName]
                "SubAfter" if f(1) == msg_id => {
                    let ok = if f(3) == "true" { "success" } else { "failed" };
                    format!(
                        "{:<10} {:<40} {:<24} {:<24} {:<10} {:<10}",
                        "SubAfter",
                        f(7),
                        host,
                        time(f(6)),
                        f(2) + "ms",
                        ok
                    )
                }
                // EndTransaction / Recall: timeStamp, regionId, groupName, topic, msgId, ...
                "EndTransaction" | "Recall" if f(4) == msg_id => format!(
                    "{:<10} {:<40} {:<24} {:<24} {:<10} {:<10}",
                    r.kind,
                    f(2),
                    host,
                    time(f(0)),
                    "",
                    r.fields.last().cloned().unwrap_or_default()
                ),
                _ => continue,
            };
            out.push_str(&line);
            out.push('\n');
            rows += 1;
        }
    }
    if rows == 0 {
        return Err(AdminError::NotFound(format!("no trace of {msg_id} in {trace_topic}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_bodies_split_into_records() {
        let body = "Pub\u{1}1700000000000\u{1}DefaultRegion\u{1}pg\u{1}T\u{1}ID1\u{1}tag\u{1}k\u{1}127.0.0.1:10911\u{1}5\u{1}3\u{1}0\u{1}OFF\u{1}true\u{2}\
                    SubAfter\u{1}req\u{1}ID1\u{1}7\u{1}true\u{1}ID1\u{1}0\u{1}1700000000100\u{1}cg\u{2}";
        let r = decode_trace(body);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].kind, "Pub");
        assert_eq!(r[0].fields[4], "ID1");
        assert_eq!(r[1].kind, "SubAfter");
        assert_eq!(r[1].fields[7], "cg");
    }
}
