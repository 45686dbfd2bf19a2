//! The RocketMQ remoting protocol: frames, headers, codes, the shared server and the client.
//!
//! This layer knows nothing about brokers: it moves [`RemotingCommand`]s between sockets and
//! [`RequestProcessor`]s.

pub mod admission;
pub mod client;
pub mod codec;
pub mod command;
pub mod connection;
pub mod ext_fields;
pub mod header;
pub mod processor;
pub mod server;
pub mod tls;

pub use admission::Admission;
pub use client::{ClientConfig, RemotingClient, RpcHook, ServerRequest};
pub use codec::RemotingCodec;
pub use command::{CommandHeader, ExtFields, HeaderError, LanguageCode, RemotingCommand, SerializeType};
pub use server::{
    BoxFuture, ChannelEventListener, ConnectionHandle, FnProcessor, ProcessorTable, RemotingServer, RequestProcessor,
    ServerConfig, SubServer,
};

/// Errors of the remoting layer.
#[derive(Debug, thiserror::Error)]
pub enum RemotingError {
    /// A frame is larger than the limit (the connection is closed).
    #[error("frame of {length} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Frame size, length prefix included.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A frame's layout is impossible (the connection is closed).
    #[error("bad frame: {0}")]
    BadFrame(String),
    /// A header does not parse (the connection is closed).
    #[error("bad header: {0}")]
    BadHeader(String),
    /// A socket error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A port cannot be bound.
    #[error("port {port} is already in use: {reason}")]
    PortInUse {
        /// The port.
        port: u16,
        /// Why.
        reason: String,
    },
    /// An outbound connection failed.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No response came in time.
    #[error("request to {addr} timed out after {millis} ms")]
    Timeout {
        /// The address.
        addr: String,
        /// The timeout.
        millis: u64,
    },
    /// The connection closed before the response came.
    #[error("connection to {addr} closed")]
    ConnectionClosed {
        /// The address.
        addr: String,
    },
    /// The transport has been shut down.
    #[error("the transport is shut down")]
    Shutdown,
}
