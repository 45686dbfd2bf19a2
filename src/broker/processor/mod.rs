//! The broker's request processors.

pub mod meta;

pub use meta::MetaProcessor;
