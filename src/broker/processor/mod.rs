//! The broker's request processors.

pub mod client_admin;
pub mod consumer_admin;
pub mod meta;
pub mod reply;

pub use meta::MetaProcessor;
