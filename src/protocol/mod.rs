//! The RocketMQ wire protocol shared by the broker, the NameServer, the admin and load tools and
//! any client: request and response codes, typed request/response headers, JSON bodies and the
//! message wire codec. Frames (`RemotingCommand`, the codec, servers and clients) live in
//! [`crate::remoting`]; nothing here depends on a server module or on the store.

pub mod body;
pub mod codes;
pub mod header;
pub mod message;
pub mod perm;
pub mod pop;
pub mod uniq;
