//! addBroker / removeBroker on a BrokerContainer's admin address (spec: container.md §6.5).

use std::time::Duration;

use super::{call, AdminError};
use crate::protocol::codes::request;
use crate::remoting::{RemotingClient, RemotingCommand};

/// `addBroker`: ADD_BROKER (902) with `configPath`; the container reads, validates and starts it.
pub async fn add_broker(client: &RemotingClient, container: &str, config_path: &str) -> Result<String, AdminError> {
    let container = container.trim();
    let req = RemotingCommand::request(request::ADD_BROKER).with_ext("configPath", config_path.trim());
    call(client, container, req).await?;
    Ok(format!("add broker to {container} success\n"))
}

/// A broker identity `clusterName:brokerName:brokerId` as removeBroker's `-b` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerIdentity {
    /// Cluster name.
    pub cluster: String,
    /// Broker (group) name.
    pub broker_name: String,
    /// Broker id (≥ 0).
    pub broker_id: i64,
}

impl std::str::FromStr for BrokerIdentity {
    type Err = AdminError;

    fn from_str(s: &str) -> Result<Self, AdminError> {
        let bad = |why: &str| {
            AdminError::Usage(format!("-b must be clusterName:brokerName:brokerId (brokerId >= 0), got '{s}': {why}"))
        };
        let parts: Vec<&str> = s.split(':').map(str::trim).collect();
        if parts.len() != 3 {
            return Err(bad("expected three ':'-separated parts"));
        }
        if parts[0].is_empty() || parts[1].is_empty() {
            return Err(bad("empty cluster or broker name"));
        }
        let id: i64 = parts[2].parse().map_err(|_| bad("brokerId is not a number"))?;
        if id < 0 {
            return Err(bad("brokerId can't be negative"));
        }
        Ok(BrokerIdentity { cluster: parts[0].to_string(), broker_name: parts[1].to_string(), broker_id: id })
    }
}

/// `removeBroker`: REMOVE_BROKER (903); with `drain`, the container first waits (up to
/// `drain_timeout`) for the broker's consumers to catch up.
pub async fn remove_broker(
    client: &RemotingClient,
    container: &str,
    id: &BrokerIdentity,
    drain: bool,
    drain_timeout: Option<Duration>,
) -> Result<String, AdminError> {
    let container = container.trim();
    let mut req = RemotingCommand::request(request::REMOVE_BROKER)
        .with_ext("brokerClusterName", id.cluster.as_str())
        .with_ext("brokerName", id.broker_name.as_str())
        .with_ext("brokerId", id.broker_id.to_string());
    if drain {
        req = req.with_ext("drain", "true");
        if let Some(t) = drain_timeout {
            req = req.with_ext("drainTimeoutMillis", t.as_millis().to_string());
        }
    }
    // A drain may take as long as its timeout; give the request that much more time.
    let timeout = super::ADMIN_TIMEOUT + if drain { drain_timeout.unwrap_or_default() } else { Duration::ZERO };
    super::call_with(client, container, req, timeout).await?;
    Ok(format!("remove broker from {container} success\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_parsing() {
        let id: BrokerIdentity = "C:b-a:1".parse().unwrap();
        assert_eq!(id, BrokerIdentity { cluster: "C".into(), broker_name: "b-a".into(), broker_id: 1 });
        for bad in ["bad", "C:b", "C:b:x", "C:b:-1", ":b:0", "C:b:0:1"] {
            assert!(bad.parse::<BrokerIdentity>().is_err(), "{bad}");
        }
    }
}
