//! The broker's request processors.

pub mod consumer_admin;
pub mod meta;

pub use meta::MetaProcessor;
