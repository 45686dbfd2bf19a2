//! SEND_REPLY_MESSAGE (324) / SEND_REPLY_MESSAGE_V2 (325), as Apache's `ReplyMessageProcessor`:
//! the reply is pushed at once to the requesting producer (PUSH_REPLY_MESSAGE_TO_CLIENT, found by
//! the `REPLY_TO_CLIENT` property among the producers' heartbeats) and then stored like any send
//! (`storeReplyMessageEnable`, default true), so the answer is the store's; with the key false
//! the answer is the push's (msgId "0", queue offset 0).

use std::sync::Arc;
use std::time::Duration;

use crate::broker::core::BrokerCore;
use crate::broker::send::SendProcessor;
use crate::protocol::codes::{request as rq, response as rs};
use crate::protocol::header::{ReplyMessageRequestHeader, SendMessageRequestHeader, SendMessageResponseHeader};
use crate::protocol::message::find_property;
use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RequestProcessor};

/// `REPLY_TO_CLIENT`: the requester's client id.
pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
/// `PUSH_REPLY_TIME`: when the broker pushed the reply, ms.
pub const PUSH_REPLY_TIME: &str = "PUSH_REPLY_TIME";
/// How long the push waits for the requester (Apache's `callClient`, 10 s).
pub const PUSH_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers the reply sends.
pub struct ReplyProcessor {
    core: Arc<BrokerCore>,
    send: SendProcessor,
}

impl ReplyProcessor {
    /// A processor over a broker's core.
    pub fn new(core: Arc<BrokerCore>) -> Self {
        ReplyProcessor { send: SendProcessor::new(core.clone()), core }
    }

    /// Pushes the reply to its requester: `Err(remark)` when it could not.
    async fn push(&self, conn: &ConnectionHandle, req: &RemotingCommand) -> Result<(), String> {
        let v2 = req.code == rq::SEND_REPLY_MESSAGE_V2;
        let h = SendMessageRequestHeader::read(&req.ext_fields, v2).map_err(|e| e.to_string())?;
        let mut props = h.properties.clone().unwrap_or_default();
        let Some(sender) = find_property(&props, REPLY_TO_CLIENT).map(str::to_string) else {
            return Err(format!("reply message properties[{REPLY_TO_CLIENT}] is null"));
        };
        let Some(channel) = self.core.meta.producers.find_channel(&sender) else {
            return Err(format!("push reply message fail, channel of <{sender}> not found."));
        };
        if !props.is_empty() && !props.ends_with('\u{2}') {
            props.push('\u{2}');
        }
        props.push_str(&format!("{PUSH_REPLY_TIME}\u{1}{}\u{2}", crate::util::now_millis()));
        let header = ReplyMessageRequestHeader {
            producer_group: h.producer_group.clone(),
            topic: h.topic.clone(),
            default_topic: h.default_topic.clone(),
            default_topic_queue_nums: h.default_topic_queue_nums,
            queue_id: h.queue_id,
            sys_flag: h.sys_flag,
            born_timestamp: h.born_timestamp,
            flag: h.flag,
            properties: Some(props),
            reconsume_times: h.reconsume_times,
            unit_mode: h.unit_mode,
            born_host: conn.peer().to_string(),
            store_host: self.core.store_host().to_string(),
            store_timestamp: crate::util::now_millis(),
        };
        let push =
            RemotingCommand::request_with_header(rq::PUSH_REPLY_MESSAGE_TO_CLIENT, &header).with_body(req.body.clone());
        match channel.invoke(push, PUSH_REPLY_TIMEOUT).await {
            Ok(r) if r.code == rs::SUCCESS => Ok(()),
            Ok(r) => {
                tracing::warn!(client = %sender, code = r.code, remark = ?r.remark, "push reply message refused");
                Err(format!("push reply message to {sender}fail."))
            }
            Err(e) => {
                tracing::warn!(client = %sender, error = %e, "push reply message failed");
                Err(format!("push reply message to {sender}fail."))
            }
        }
    }
}

impl RequestProcessor for ReplyProcessor {
    fn process<'a>(
        &'a self,
        conn: &'a ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move {
            let pushed = self.push(conn, &req).await;
            if self.core.config().store_reply_message_enable {
                if let Err(remark) = &pushed {
                    tracing::debug!(%remark, "reply not pushed; stored only");
                }
                // The stored result decides the answer (Apache's order).
                return self.send.process(conn, req).await;
            }
            Some(match pushed {
                Ok(()) => {
                    let v2 = req.code == rq::SEND_REPLY_MESSAGE_V2;
                    let queue_id =
                        SendMessageRequestHeader::read(&req.ext_fields, v2).map(|h| h.queue_id.max(0)).unwrap_or(0);
                    let header = SendMessageResponseHeader {
                        msg_id: "0".into(),
                        queue_id,
                        queue_offset: 0,
                        transaction_id: None,
                        batch_uniq_id: None,
                    };
                    RemotingCommand::success(&req).with_header(&header)
                }
                Err(remark) => RemotingCommand::error(&req, rs::SYSTEM_ERROR, remark),
            })
        })
    }
}
