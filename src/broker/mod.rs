//! A broker: processors, topic/offset/subscription managers, registration.

pub mod clients;
pub mod config;
pub mod headers;
pub mod meta;
pub mod processor;
