//! mqadmin's commands. They talk to NameServers, brokers and containers only over the wire.

use std::time::Duration;

use crate::remoting::codes::{request, response, response_name};
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
}

/// Default timeout of admin requests (Apache uses 20 s for add/remove broker, 3 s for most others).
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends `req` to `addr` and returns the response if it is SUCCESS.
pub async fn call(client: &RemotingClient, addr: &str, req: RemotingCommand) -> Result<RemotingCommand, AdminError> {
    let resp = client.invoke(addr, req, ADMIN_TIMEOUT).await?;
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
    let resp = call(client, addr, RemotingCommand::request(request::GET_BROKER_CONFIG)).await?;
    Ok(String::from_utf8_lossy(&resp.body).into_owned())
}

/// GET_BROKER_RUNTIME_INFO: a broker's runtime table (`{"table": {...}}`), sorted by key.
pub async fn broker_runtime_info(client: &RemotingClient, addr: &str) -> Result<Vec<(String, String)>, AdminError> {
    let resp = call(client, addr, RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO)).await?;
    let v: serde_json::Value = serde_json::from_slice(&resp.body)
        .map_err(|e| AdminError::Usage(format!("unreadable runtime info from {addr}: {e}")))?;
    let Some(table) = v.get("table").and_then(|t| t.as_object()) else {
        return Err(AdminError::Usage(format!("runtime info from {addr} has no table")));
    };
    let mut out: Vec<(String, String)> = table
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
        .collect();
    out.sort();
    Ok(out)
}

/// TRIGGER_DELETE_FILES: asks a broker to delete its expired files now.
pub async fn trigger_delete_files(client: &RemotingClient, addr: &str) -> Result<(), AdminError> {
    call(client, addr, RemotingCommand::request(request::TRIGGER_DELETE_FILES)).await?;
    Ok(())
}

/// UPDATE_BROKER_CONFIG: sets `key=value` on a broker (or a container).
pub async fn update_broker_config(
    client: &RemotingClient,
    addr: &str,
    key: &str,
    value: &str,
) -> Result<(), AdminError> {
    let body = crate::config::to_properties_text(&[(key, value.to_string())]);
    call(client, addr, RemotingCommand::request(request::UPDATE_BROKER_CONFIG).with_body(body)).await?;
    Ok(())
}
