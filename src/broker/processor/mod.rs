//! The broker's request processors.

pub mod headers;
pub mod meta;

pub use meta::MetaProcessor;
