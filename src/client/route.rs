//! Route look-ups against the NameServer, shared by every client.

use crate::protocol::body::BrokerData;
use crate::protocol::codes::request;
use crate::protocol::header::GetRouteInfoRequestHeader;
use crate::remoting::RemotingCommand;

/// Splits `host:port;host:port` (blank entries ignored).
pub fn parse_namesrv_list(s: &str) -> Vec<String> {
    s.split(';').map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect()
}

/// GET_ROUTEINFO_BY_TOPIC (105) asking for standard JSON. A missing topic is the NameServer's
/// TOPIC_NOT_EXIST refusal.
pub fn route_request(topic: &str) -> RemotingCommand {
    let header = GetRouteInfoRequestHeader { topic: topic.to_string(), accept_standard_json_only: Some(true) };
    RemotingCommand::request_with_header(request::GET_ROUTEINFO_BY_TOPIC, &header)
}

/// The master (`brokerAddrs[0]`) of a group, if it has one.
pub fn master_of(bd: &BrokerData) -> Option<&str> {
    bd.broker_addrs.get(&0).map(String::as_str)
}

/// The address to read a group's data from: its master, else its lowest-id member.
pub fn read_addr(bd: &BrokerData) -> Option<&str> {
    master_of(bd).or_else(|| bd.broker_addrs.values().next().map(String::as_str))
}
