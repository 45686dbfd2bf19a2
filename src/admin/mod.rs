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
