//! A broker: processors, topic/offset/subscription managers, registration.

pub mod config;
pub mod headers;
