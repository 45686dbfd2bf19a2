//! Typed request and response headers (the `extFields` of a frame).

pub mod admin;
pub mod message;
pub mod namesrv;

pub use admin::*;
pub use message::*;
pub use namesrv::*;
