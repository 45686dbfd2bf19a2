//! clusterList, brokerStatus, and the cluster-wide forms of getBrokerConfig / updateBrokerConfig.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::route::{cluster_info, cluster_members};
use super::{Admin, AdminError};
use crate::json::from_slice_lenient;
use crate::protocol::body::KvTable;
use crate::protocol::codes::request;
use crate::remoting::RemotingCommand;

/// Runtime-info keys that describe replication (shown in clusterList's `#Replication` column when any
/// broker reports one of them).
pub const REPLICATION_KEYS: &[&str] = &[
    // A master: its connected slaves and how far the slowest is behind.
    "haConnectedSlaves",
    "haReplicationLagBytes",
    "haDivergedSlaves",
    // A slave: its master, whether it is connected, and its lag.
    "masterAddr",
    "haConnected",
    "haLagBytes",
    "haDiverged",
];

/// A broker's health as clusterList shows it, from its runtime info (`None`: it did not answer).
pub fn health(t: Option<&BTreeMap<String, String>>) -> String {
    let Some(t) = t else { return "UNREACHABLE".into() };
    // Older builds of this broker reported shutdown as brokerActive=false; Apache's brokerActive
    // means "special services running", so a plain slave reports false.
    if t.get("brokerShuttingDown").map_or_else(
        || t.get("brokerActive").is_some_and(|v| v == "false") && !t.contains_key("minBrokerIdInGroup"),
        |v| v == "true",
    ) {
        return "STOPPING".into();
    }
    let flags = t.get("storeRunningFlags").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    if flags != 0 {
        return format!("STORE_ERROR({flags:#x})");
    }
    let ratio = |k: &str| t.get(k).and_then(|v| v.parse::<f64>().ok());
    if let (Some(r), Some(w)) = (ratio("commitLogDiskRatio"), ratio("diskSpaceWarningLevelRatio")) {
        if r >= w {
            return "DISK_FULL".into();
        }
    }
    if t.get("haConnected").is_some_and(|v| v == "false") {
        return "HA_DISCONNECTED".into();
    }
    let busy = |k: &str| t.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    if busy("sendThreadPoolQueueSize") > 0 && busy("sendThreadPoolQueueSize") >= busy("sendThreadPoolQueueCapacity") {
        return "BUSY".into();
    }
    "OK".into()
}

/// GET_BROKER_RUNTIME_INFO (28): the broker's key/value table.
pub async fn runtime_info(admin: &Admin, addr: &str) -> Result<BTreeMap<String, String>, AdminError> {
    let resp = admin.call(addr, RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO)).await?;
    let kv: KvTable = from_slice_lenient(&resp.body)
        .map_err(|e| AdminError::BadAnswer { addr: addr.to_string(), reason: format!("runtime info: {e}") })?;
    Ok(kv.table)
}

/// `clusterList`: one line per registered broker, with its runtime figures.
pub async fn cluster_list(admin: &Admin) -> Result<String, AdminError> {
    let info = cluster_info(admin).await?;
    let members = cluster_members(&info, None);
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for (cluster, names) in &info.cluster_addr_table {
        for name in names {
            let Some(bd) = info.broker_addr_table.get(name) else { continue };
            for (id, addr) in &bd.broker_addrs {
                let table = match runtime_info(admin, addr).await {
                    Ok(t) => Some(t),
                    Err(e) => {
                        warnings.push(format!("WARN: {addr}: {e}"));
                        None
                    }
                };
                rows.push((cluster.clone(), name.clone(), *id, addr.clone(), table));
            }
        }
    }
    // Only when some group replicates: a slave is listed, or a master has slaves connected.
    let show_replication = rows.iter().any(|r| {
        r.2 > 0
            || r.4
                .as_ref()
                .and_then(|t| t.get("haConnectedSlaves"))
                .is_some_and(|n| n.parse::<i64>().is_ok_and(|n| n > 0))
    });
    let mut out = String::new();
    let header = format!(
        "{:<16}  {:<22}  {:<4}  {:<22} {:<16} {:>19} {:>19} {:>10} {:>5} {:>6}",
        "#Cluster Name",
        "#Broker Name",
        "#BID",
        "#Addr",
        "#Version",
        "#InTPS(LOAD)",
        "#OutTPS(LOAD)",
        "#PCWait(ms)",
        "#Hour",
        "#SPACE"
    );
    let header = format!("{header} {:<13}", "#Health");
    out.push_str(header.trim_end());
    if show_replication {
        out.push_str("  #Replication");
    }
    out.push('\n');
    let now = crate::util::now_millis();
    let empty = BTreeMap::new();
    for (cluster, name, id, addr, answered) in &rows {
        let t = answered.as_ref().unwrap_or(&empty);
        let get = |k: &str| t.get(k).cloned().unwrap_or_default();
        let get0 = |k: &str| t.get(k).cloned().unwrap_or_else(|| "0".to_string());
        let first_f64 = |k: &str| {
            t.get(k).and_then(|v| v.split_whitespace().next().and_then(|x| x.parse::<f64>().ok())).unwrap_or(0.0)
        };
        let hour = t
            .get("earliestMessageTimeStamp")
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|ts| *ts > 0)
            .map(|ts| (now - ts) as f64 / 3_600_000.0)
            .unwrap_or(0.0);
        let space = t.get("commitLogDiskRatio").and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let line = format!(
            "{:<16}  {:<22}  {:<4}  {:<22} {:<16} {:>19} {:>19} {:>10} {:>5} {:>6}",
            cluster,
            name,
            id,
            addr,
            get("brokerVersionDesc"),
            format!(
                "{:9.2}({},{}ms)",
                first_f64("putTps"),
                get0("sendThreadPoolQueueSize"),
                get0("sendThreadPoolQueueHeadWaitTimeMills")
            ),
            format!(
                "{:9.2}({},{}ms)",
                first_f64("getTransferedTps"),
                get0("pullThreadPoolQueueSize"),
                get0("pullThreadPoolQueueHeadWaitTimeMills")
            ),
            get0("pageCacheLockTimeMills"),
            format!("{hour:2.2}"),
            format!("{space:.4}"),
        );
        let mut state = health(answered.as_ref());
        if *id > 0
            && (state == "OK" || state == "HA_DISCONNECTED")
            && t.get("brokerActive").is_some_and(|v| v == "true")
        {
            // A slave running its master's duties (RocketMQ 5 slave acting master); its master is
            // gone, so its HA connection is down by definition.
            state = "ACTING_MASTER".into();
        }
        let line = format!("{line} {:<13}", state);
        out.push_str(line.trim_end());
        if show_replication {
            let rep: Vec<String> = REPLICATION_KEYS
                .iter()
                .filter_map(|k| t.get(*k).filter(|v| !v.is_empty()).map(|v| format!("{k}={v}")))
                .collect();
            let _ = write!(out, "  {}", if rep.is_empty() { "-".to_string() } else { rep.join(",") });
        }
        out.push('\n');
    }
    if members.is_empty() {
        let _ = writeln!(out, "No broker is registered in the NameServer ({}).", admin.namesrv.join(";"));
    }
    for w in warnings {
        out.push_str(&w);
        out.push('\n');
    }
    Ok(out)
}

/// Where a broker-level command goes: one address (`-b`) or every member of a cluster (`-c`).
pub async fn target_addrs(
    admin: &Admin,
    broker_addr: Option<&str>,
    cluster: Option<&str>,
    masters_only: bool,
) -> Result<Vec<String>, AdminError> {
    match (broker_addr, cluster) {
        (Some(b), _) => Ok(vec![b.trim().to_string()]),
        (None, Some(c)) => {
            let info = cluster_info(admin).await?;
            if !info.cluster_addr_table.contains_key(c) {
                return Err(AdminError::NotFound(format!("cluster {c} is not registered in the NameServer")));
            }
            let addrs: Vec<String> = cluster_members(&info, Some(c))
                .into_iter()
                .filter(|(_, id, _)| !masters_only || *id == 0)
                .map(|(_, _, a)| a)
                .collect();
            if addrs.is_empty() {
                return Err(AdminError::NotFound(format!("cluster {c} has no broker")));
            }
            Ok(addrs)
        }
        (None, None) => Err(AdminError::Usage("give a broker address (-b) or a cluster name (-c)".into())),
    }
}

/// `brokerStatus`: the runtime info of one broker (`-b`) or of every broker of a cluster (`-c`),
/// key/value lines sorted by key.
pub async fn broker_status(
    admin: &Admin,
    broker_addr: Option<&str>,
    cluster: Option<&str>,
) -> Result<String, AdminError> {
    let addrs = target_addrs(admin, broker_addr, cluster, false).await?;
    let mut out = String::new();
    if broker_addr.is_some() {
        for (k, v) in runtime_info(admin, &addrs[0]).await? {
            let _ = writeln!(out, "{k:<32}: {v}");
        }
        return Ok(out);
    }
    let mut failed = Vec::new();
    for addr in &addrs {
        match runtime_info(admin, addr).await {
            Ok(t) => {
                for (k, v) in t {
                    let _ = writeln!(out, "{addr:<24} {k:<32}: {v}");
                }
            }
            Err(e) => failed.push(format!("{addr}: {e}")),
        }
    }
    if !failed.is_empty() {
        return Err(AdminError::Partial { output: out, failed: failed.join("; ") });
    }
    Ok(out)
}

/// `getBrokerConfig`: the config of one broker/container (`-b`) or of every broker of a cluster
/// (`-c`), each under a `============addr============` line.
pub async fn get_config(admin: &Admin, broker_addr: Option<&str>, cluster: Option<&str>) -> Result<String, AdminError> {
    let addrs = target_addrs(admin, broker_addr, cluster, false).await?;
    let mut out = String::new();
    for addr in addrs {
        let text = super::get_broker_config(&admin.client, &addr).await?;
        let _ = writeln!(out, "============{addr}============");
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                let _ = writeln!(out, "{k:<50}=  {v}");
            }
        }
    }
    Ok(out)
}

/// `updateBrokerConfig`: sets `key=value` on one broker/container (`-b`) or on every broker of a
/// cluster (`-c`).
pub async fn update_config(
    admin: &Admin,
    broker_addr: Option<&str>,
    cluster: Option<&str>,
    key: &str,
    value: &str,
) -> Result<String, AdminError> {
    let addrs = target_addrs(admin, broker_addr, cluster, false).await?;
    let mut out = String::new();
    for addr in addrs {
        match super::update_broker_config(&admin.client, &addr, key, value).await? {
            Some(remark) => {
                let _ = writeln!(out, "update broker config success, {addr} ({remark})");
            }
            None => {
                let _ = writeln!(out, "update broker config success, {addr}");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_from_runtime_info() {
        let t =
            |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        assert_eq!(health(None), "UNREACHABLE");
        assert_eq!(health(Some(&t(&[("brokerActive", "true"), ("storeRunningFlags", "0")]))), "OK");
        assert_eq!(health(Some(&t(&[("brokerActive", "false")]))), "STOPPING");
        assert_eq!(health(Some(&t(&[("brokerShuttingDown", "true")]))), "STOPPING");
        // A slave that is not acting master: brokerActive=false, not stopping.
        let slave = t(&[("brokerActive", "false"), ("brokerShuttingDown", "false"), ("minBrokerIdInGroup", "0")]);
        assert_eq!(health(Some(&slave)), "OK");
        assert_eq!(health(Some(&t(&[("storeRunningFlags", "16")]))), "STORE_ERROR(0x10)");
        let full = t(&[("commitLogDiskRatio", "0.95"), ("diskSpaceWarningLevelRatio", "0.90")]);
        assert_eq!(health(Some(&full)), "DISK_FULL");
        assert_eq!(health(Some(&t(&[("haConnected", "false")]))), "HA_DISCONNECTED");
        let busy = t(&[("sendThreadPoolQueueSize", "4"), ("sendThreadPoolQueueCapacity", "4")]);
        assert_eq!(health(Some(&busy)), "BUSY");
    }
}
