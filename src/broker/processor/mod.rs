//! The broker's request processors.

pub mod client_admin;
pub mod consumer_admin;
pub mod meta;
pub mod reply;

pub use meta::MetaProcessor;

use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RequestProcessor};

/// A response, or the code and remark of the error response to send instead.
pub type Answer = Result<RemotingCommand, (i32, String)>;

/// A processor that answers a request from the request alone, synchronously (a few requests may
/// wait first: [`Answering::answer_later`]). Every such processor is a [`RequestProcessor`] that
/// always responds, mapping an error to `RemotingCommand::error`.
pub trait Answering: Send + Sync + 'static {
    /// The answer to `req`.
    fn answer(&self, req: &RemotingCommand) -> Answer;

    /// The answer to a request that must wait first (I/O, another broker), or `None` (the
    /// default) to take [`Answering::answer`]'s.
    fn answer_later<'r>(&'r self, _req: &'r RemotingCommand) -> Option<BoxFuture<'r, Answer>> {
        None
    }
}

impl<P: Answering> RequestProcessor for P {
    fn process<'a>(
        &'a self,
        _conn: &'a ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move {
            let answer = match self.answer_later(&req) {
                Some(later) => later.await,
                None => self.answer(&req),
            };
            Some(answer.unwrap_or_else(|(code, remark)| RemotingCommand::error(&req, code, remark)))
        })
    }
}
