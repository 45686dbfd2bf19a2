//! What a port answers with: request processors, the per-port processor table (with optional
//! bounded queues), and connection events.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::admission::Admission;
use super::command::RemotingCommand;
use super::connection::ConnectionHandle;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Handles the requests of one or more request codes.
pub trait RequestProcessor: Send + Sync + 'static {
    /// Processes one request; `None` means "write no response" (oneway requests are never answered
    /// whatever this returns).
    fn process<'a>(
        &'a self,
        conn: &'a ConnectionHandle,
        request: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>>;
}

/// A processor made from an async closure.
pub struct FnProcessor<F>(pub F);

impl<F, Fut> RequestProcessor for FnProcessor<F>
where
    F: Fn(ConnectionHandle, RemotingCommand) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<RemotingCommand>> + Send + 'static,
{
    fn process<'a>(
        &'a self,
        conn: &'a ConnectionHandle,
        request: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin((self.0)(conn.clone(), request))
    }
}

/// Told when connections of a sub-server open and close (brokers drop a closed client's registrations).
pub trait ChannelEventListener: Send + Sync + 'static {
    /// A connection was accepted.
    fn on_connect(&self, _conn: &ConnectionHandle) {}
    /// A connection closed (by either side, or by a protocol error).
    fn on_close(&self, _conn: &ConnectionHandle) {}
}

#[derive(Clone)]
pub(super) struct Route {
    pub(super) processor: Arc<dyn RequestProcessor>,
    pub(super) admission: Option<Arc<Admission>>,
}

/// The processors of one port: by request code, with an optional default.
#[derive(Clone, Default)]
pub struct ProcessorTable {
    by_code: HashMap<i32, Route>,
    default: Option<Route>,
}

impl ProcessorTable {
    /// An empty table: every request is answered REQUEST_CODE_NOT_SUPPORTED.
    pub fn new() -> Self {
        Self::default()
    }
    /// Routes `code` to `processor`.
    pub fn register(&mut self, code: i32, processor: Arc<dyn RequestProcessor>) -> &mut Self {
        self.by_code.insert(code, Route { processor, admission: None });
        self
    }
    /// Routes every code in `codes` to `processor`.
    pub fn register_all(&mut self, codes: &[i32], processor: Arc<dyn RequestProcessor>) -> &mut Self {
        self.register_bounded(codes, processor, None)
    }
    /// Routes every code in `codes` to `processor` behind the bounded queue `admission`.
    pub fn register_bounded(
        &mut self,
        codes: &[i32],
        processor: Arc<dyn RequestProcessor>,
        admission: Option<Arc<Admission>>,
    ) -> &mut Self {
        for c in codes {
            self.by_code.insert(*c, Route { processor: processor.clone(), admission: admission.clone() });
        }
        self
    }
    /// Routes every code not registered to `processor`.
    pub fn set_default(&mut self, processor: Arc<dyn RequestProcessor>) -> &mut Self {
        self.default = Some(Route { processor, admission: None });
        self
    }
    pub(super) fn get(&self, code: i32) -> Option<&Route> {
        self.by_code.get(&code).or(self.default.as_ref())
    }
}
