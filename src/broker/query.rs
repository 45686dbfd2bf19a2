//! Store queries: offsets, timestamps, a message by offset id, messages by key.

use std::sync::Arc;

use bytes::BytesMut;

use super::core::BrokerCore;
use super::processor::{Answer, Answering};
use crate::protocol::codes::{request, response};
use crate::protocol::header::{
    OffsetResponseHeader, QueryMessageRequestHeader, QueryMessageResponseHeader, QueueRequestHeader,
    SearchOffsetRequestHeader, TimestampResponseHeader, ViewMessageRequestHeader,
};
use crate::remoting::RemotingCommand;
use crate::store::consume_queue::BoundaryType;

/// Answers GET_MAX_OFFSET, GET_MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME,
/// VIEW_MESSAGE_BY_ID and QUERY_MESSAGE.
pub struct QueryProcessor {
    core: Arc<BrokerCore>,
}

impl QueryProcessor {
    /// A processor over a broker's core.
    pub fn new(core: Arc<BrokerCore>) -> Self {
        QueryProcessor { core }
    }
}

impl Answering for QueryProcessor {
    fn answer(&self, req: &RemotingCommand) -> Answer {
        let bad = |e: crate::remoting::HeaderError| (response::SYSTEM_ERROR, e.to_string());
        let store = self.core.store();
        Ok(match req.code {
            request::GET_MAX_OFFSET => {
                let h: QueueRequestHeader = req.decode_header().map_err(bad)?;
                let offset = store.max_offset_in_queue(&h.topic, h.queue_id);
                RemotingCommand::success(req).with_header(&OffsetResponseHeader { offset })
            }
            request::GET_MIN_OFFSET => {
                let h: QueueRequestHeader = req.decode_header().map_err(bad)?;
                let offset = store.min_offset_in_queue(&h.topic, h.queue_id);
                RemotingCommand::success(req).with_header(&OffsetResponseHeader { offset })
            }
            request::SEARCH_OFFSET_BY_TIMESTAMP => {
                let h: SearchOffsetRequestHeader = req.decode_header().map_err(bad)?;
                let boundary = match h.boundary_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    Some("upper") => BoundaryType::Upper,
                    _ => BoundaryType::Lower,
                };
                let offset = store.offset_in_queue_by_time(&h.topic, h.queue_id, h.timestamp, boundary);
                RemotingCommand::success(req).with_header(&OffsetResponseHeader { offset })
            }
            request::GET_EARLIEST_MSG_STORETIME => {
                let h: QueueRequestHeader = req.decode_header().map_err(bad)?;
                let timestamp = store.earliest_message_time(&h.topic, h.queue_id).unwrap_or(-1);
                RemotingCommand::success(req).with_header(&TimestampResponseHeader { timestamp })
            }
            request::VIEW_MESSAGE_BY_ID => {
                let h: ViewMessageRequestHeader = req.decode_header().map_err(bad)?;
                match store.look_message_by_offset(h.offset) {
                    Some(b) => RemotingCommand::success(req).with_body(b),
                    None => {
                        return Err((
                            response::SYSTEM_ERROR,
                            format!("can not find message by the offset, {}", h.offset),
                        ));
                    }
                }
            }
            request::QUERY_MESSAGE => {
                let h: QueryMessageRequestHeader = req.decode_header().map_err(bad)?;
                let unique = req.ext("_UNIQUE_KEY_QUERY") == Some("true");
                let max = if unique { store.live_keys().default_query_max_num } else { h.max_num.max(0) as usize };
                let r = store.query_message(&h.topic, &h.key, max, h.begin_timestamp, h.end_timestamp);
                if r.messages.is_empty() {
                    return Err((
                        response::QUERY_NOT_FOUND,
                        "can not find message, maybe time range not correct".into(),
                    ));
                }
                let mut body = BytesMut::new();
                for m in &r.messages {
                    body.extend_from_slice(m);
                }
                RemotingCommand::success(req)
                    .with_header(&QueryMessageResponseHeader {
                        index_last_update_timestamp: r.index_last_update_timestamp,
                        index_last_update_phyoffset: r.index_last_update_phyoffset,
                    })
                    .with_body(body.freeze())
            }
            other => {
                return Err((response::REQUEST_CODE_NOT_SUPPORTED, format!(" request type {other} not supported")))
            }
        })
    }
}

/// The codes [`QueryProcessor`] answers.
pub const QUERY_CODES: &[i32] = &[
    request::GET_MAX_OFFSET,
    request::GET_MIN_OFFSET,
    request::SEARCH_OFFSET_BY_TIMESTAMP,
    request::GET_EARLIEST_MSG_STORETIME,
    request::VIEW_MESSAGE_BY_ID,
    request::QUERY_MESSAGE,
];
