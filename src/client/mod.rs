//! Client-side helpers shared by the admin tool, the load tool and the tests: route look-ups,
//! send requests and message ids. Built on [`crate::protocol`] and [`crate::remoting`] only.

pub mod route;
pub mod send;
pub mod tls;
pub mod transaction;
pub use crate::protocol::uniq;

pub use route::parse_namesrv_list;
