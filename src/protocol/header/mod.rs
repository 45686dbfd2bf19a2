//! Typed request and response headers (the `extFields` of a frame).

pub mod admin;
pub mod message;
pub mod namesrv;
pub mod pop;

pub use admin::*;
pub use message::*;
pub use namesrv::*;
pub use pop::*;
