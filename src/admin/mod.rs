//! mqadmin's commands. They talk to NameServers, brokers and containers only over the wire.
//!
//! Each command is an async function returning the text to print; `src/bin/mqadmin.rs` only parses
//! the command line and prints. Areas: [`route`] (NameServer look-ups), [`cluster`] (clusterList,
//! brokerStatus, broker config), [`topic`], [`container`] (addBroker/removeBroker), [`message`]
//! (send/consume/query), [`consumer`] (consumerProgress).

pub mod auth;
pub mod client_admin;
pub mod cluster;
pub mod consumer;
pub mod container;
pub mod message;
pub mod pop;
pub mod route;
pub mod topic;

use std::time::Duration;

pub use crate::client::parse_namesrv_list;
use crate::protocol::codes::{request, response, response_name};
use crate::remoting::{RemotingClient, RemotingCommand, RemotingError};

/// Errors of an admin command: a transport failure or a non-success answer, shown to the operator.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request could not be made.
    #[error(transparent)]
    Remoting(#[from] RemotingError),
    /// The server answered with an error code.
    #[error("CODE: {code} ({name})  DESC: {remark}")]
    Refused {
        /// The response code.
        code: i32,
        /// Its name.
        name: &'static str,
        /// The server's remark.
        remark: String,
    },
    /// The operator's input is wrong.
    #[error("{0}")]
    Usage(String),
    /// A server answered something this tool cannot read.
    #[error("bad answer from {addr}: {reason}")]
    BadAnswer {
        /// Who answered.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Some targets answered (`output`), others failed.
    #[error("failed: {failed}")]
    Partial {
        /// What the targets that answered produced (printed before the error).
        output: String,
        /// Which targets failed and why.
        failed: String,
    },
    /// Nothing matched (no broker, no message, ...).
    #[error("{0}")]
    NotFound(String),
}

/// Timeout of ADD_BROKER / REMOVE_BROKER (Apache: 20 s).
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Timeout of the other requests (Apache's `DefaultMQAdminExt` uses 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `req` to `addr` and returns the response if it is SUCCESS (timeout [`ADMIN_TIMEOUT`]).
pub async fn call(client: &RemotingClient, addr: &str, req: RemotingCommand) -> Result<RemotingCommand, AdminError> {
    call_with(client, addr, req, ADMIN_TIMEOUT).await
}

/// Sends `req` to `addr` and returns the response if it is SUCCESS.
pub async fn call_with(
    client: &RemotingClient,
    addr: &str,
    req: RemotingCommand,
    timeout: Duration,
) -> Result<RemotingCommand, AdminError> {
    let resp = client.invoke(addr, req, timeout).await?;
    check(resp)
}

/// The response if it is SUCCESS, else [`AdminError::Refused`].
pub fn check(resp: RemotingCommand) -> Result<RemotingCommand, AdminError> {
    if resp.code != response::SUCCESS {
        return Err(AdminError::Refused {
            code: resp.code,
            name: response_name(resp.code),
            remark: resp.remark.unwrap_or_default(),
        });
    }
    Ok(resp)
}

/// GET_BROKER_CONFIG: the config of a broker (or of a container, on its admin port) as properties text.
pub async fn get_broker_config(client: &RemotingClient, addr: &str) -> Result<String, AdminError> {
    let resp = call_with(client, addr, RemotingCommand::request(request::GET_BROKER_CONFIG), DEFAULT_TIMEOUT).await?;
    Ok(String::from_utf8_lossy(&resp.body).into_owned())
}

/// TRIGGER_DELETE_FILES: asks a broker to delete its expired files now.
pub async fn trigger_delete_files(client: &RemotingClient, addr: &str) -> Result<(), AdminError> {
    call(client, addr, RemotingCommand::request(request::TRIGGER_DELETE_FILES)).await?;
    Ok(())
}

/// UPDATE_BROKER_CONFIG: sets `key=value` on a broker (or a container); returns the success
/// answer's remark (e.g. that the key applies after a restart).
pub async fn update_broker_config(
    client: &RemotingClient,
    addr: &str,
    key: &str,
    value: &str,
) -> Result<Option<String>, AdminError> {
    let body = crate::config::to_properties_text(&[(key, value.to_string())]);
    let resp = call(client, addr, RemotingCommand::request(request::UPDATE_BROKER_CONFIG).with_body(body)).await?;
    Ok(resp.remark.filter(|r| !r.trim().is_empty()))
}

/// The connection state of one mqadmin run: the client and the NameServer list (`-n` or
/// `NAMESRV_ADDR`).
#[derive(Clone)]
pub struct Admin {
    /// The client every request goes through.
    pub client: RemotingClient,
    /// NameServer addresses, in the order given.
    pub namesrv: Vec<String>,
    /// Timeout of ordinary requests.
    pub timeout: Duration,
}

impl Admin {
    /// An admin context; `namesrv` is a `host:port;host:port` list (empty ⇒ commands that need a
    /// NameServer fail with a usage error).
    pub fn new(client: RemotingClient, namesrv: Option<&str>) -> Self {
        Admin { client, namesrv: parse_namesrv_list(namesrv.unwrap_or("")), timeout: DEFAULT_TIMEOUT }
    }

    /// The NameServer list, or a usage error when none was given.
    pub fn namesrvs(&self) -> Result<&[String], AdminError> {
        if self.namesrv.is_empty() {
            return Err(AdminError::Usage(
                "no NameServer address: give -n host:port[;host:port] or set NAMESRV_ADDR".into(),
            ));
        }
        Ok(&self.namesrv)
    }

    /// Sends `req` to `addr`; SUCCESS only.
    pub async fn call(&self, addr: &str, req: RemotingCommand) -> Result<RemotingCommand, AdminError> {
        call_with(&self.client, addr, req, self.timeout).await
    }

    /// Sends `req` to `addr` and returns whatever answer comes (transport errors only).
    pub async fn invoke(&self, addr: &str, req: RemotingCommand) -> Result<RemotingCommand, AdminError> {
        Ok(self.client.invoke(addr, req, self.timeout).await?)
    }

    /// Sends `req` to the NameServers in order until one answers; a refusal is returned as is
    /// (it is the same on every NameServer), transport errors move on to the next one.
    pub async fn call_namesrv(&self, req: RemotingCommand) -> Result<RemotingCommand, AdminError> {
        let mut last = None;
        for addr in self.namesrvs()? {
            match self.client.invoke(addr, req.clone(), self.timeout).await {
                Ok(resp) => return check(resp),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map(AdminError::Remoting).unwrap_or_else(|| AdminError::Usage("no NameServer address".into())))
    }
}

/// Apache's `UtilAll.timeMillisToHumanString2`: local time `yyyy-MM-dd HH:mm:ss,SSS`.
pub fn human_time(ms: i64) -> String {
    let millis = ms.rem_euclid(1000);
    let Some(t) = crate::util::local_time(ms.div_euclid(1000) * 1000) else {
        return ms.to_string();
    };
    format!("{},{millis:03}", t.strftime("%Y-%m-%d %H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namesrv_list() {
        assert_eq!(parse_namesrv_list(" a:1; ;b:2;"), vec!["a:1".to_string(), "b:2".to_string()]);
        assert!(parse_namesrv_list("").is_empty());
    }

    #[test]
    fn human_time_shape() {
        let s = human_time(1_700_000_000_123);
        assert_eq!(s.len(), 23, "{s}");
        assert!(s.ends_with(",123"), "{s}");
    }
}
