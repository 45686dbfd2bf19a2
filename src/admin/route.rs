//! NameServer look-ups: cluster info, topic routes, topic lists, and the broker addresses derived
//! from them.

use std::collections::BTreeSet;

use super::{Admin, AdminError};
use crate::client::route::{master_of, route_request};
use crate::json::from_slice_lenient;
use crate::protocol::body::{ClusterInfo, TopicList, TopicRouteData};
use crate::protocol::codes::request;
use crate::remoting::RemotingCommand;

/// GET_BROKER_CLUSTER_INFO (106) from the first NameServer that answers.
pub async fn cluster_info(admin: &Admin) -> Result<ClusterInfo, AdminError> {
    let resp = admin.call_namesrv(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO)).await?;
    if resp.body.is_empty() {
        return Ok(ClusterInfo::default());
    }
    from_slice_lenient(&resp.body)
        .map_err(|e| AdminError::BadAnswer { addr: "NameServer".into(), reason: format!("cluster info: {e}") })
}

/// GET_ROUTEINFO_BY_TOPIC (105). A missing topic is the NameServer's TOPIC_NOT_EXIST refusal.
pub async fn topic_route(admin: &Admin, topic: &str) -> Result<TopicRouteData, AdminError> {
    let resp = admin.call_namesrv(route_request(topic)).await?;
    from_slice_lenient(&resp.body)
        .map_err(|e| AdminError::BadAnswer { addr: "NameServer".into(), reason: format!("route of {topic}: {e}") })
}

/// GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206).
pub async fn topic_list(admin: &Admin) -> Result<TopicList, AdminError> {
    let resp = admin.call_namesrv(RemotingCommand::request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).await?;
    if resp.body.is_empty() {
        return Ok(TopicList::default());
    }
    from_slice_lenient(&resp.body)
        .map_err(|e| AdminError::BadAnswer { addr: "NameServer".into(), reason: format!("topic list: {e}") })
}

/// The master addresses of every group of `cluster`; an unknown cluster is an error.
pub fn cluster_masters(info: &ClusterInfo, cluster: &str) -> Result<BTreeSet<String>, AdminError> {
    let names = info
        .cluster_addr_table
        .get(cluster)
        .ok_or_else(|| AdminError::NotFound(format!("cluster {cluster} is not registered in the NameServer")))?;
    let masters: BTreeSet<String> = names
        .iter()
        .filter_map(|n| info.broker_addr_table.get(n))
        .filter_map(|bd| master_of(bd).map(str::to_string))
        .collect();
    if masters.is_empty() {
        return Err(AdminError::NotFound(format!("cluster {cluster} has no master broker")));
    }
    Ok(masters)
}

/// Every broker address (masters and slaves) of `cluster`, or of all clusters when `None`,
/// as `(brokerName, brokerId, addr)`.
pub fn cluster_members(info: &ClusterInfo, cluster: Option<&str>) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for (c, names) in &info.cluster_addr_table {
        if cluster.is_some_and(|want| want != c) {
            continue;
        }
        for n in names {
            if let Some(bd) = info.broker_addr_table.get(n) {
                for (id, addr) in &bd.broker_addrs {
                    out.push((n.clone(), *id, addr.clone()));
                }
            }
        }
    }
    out
}

/// The brokerName registered for `addr` in the cluster info, if any.
pub fn broker_name_of_addr(info: &ClusterInfo, addr: &str) -> Option<String> {
    info.broker_addr_table
        .values()
        .find(|bd| bd.broker_addrs.values().any(|a| a == addr))
        .map(|bd| bd.broker_name.clone())
}
