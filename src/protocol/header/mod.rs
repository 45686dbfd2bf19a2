//! Typed request and response headers (the `extFields` of a frame).

pub mod admin;
pub mod client_admin;
pub mod message;
pub mod namesrv;
pub mod pop;

pub use admin::*;
pub use client_admin::*;
pub use message::*;
pub use namesrv::*;
pub use pop::*;
