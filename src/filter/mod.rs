//! Message filters a consumer subscribes with: Apache's SQL92 property selectors ([`sql92`]).
//!
//! Tag filters stay with the pull path (they match consume-queue tag codes); an SQL92 expression
//! is compiled once per pull and evaluated against each candidate message's properties.

pub mod sql92;
