//! SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE requests as a producer sends them.

use bytes::Bytes;

use crate::protocol::header::SendMessageRequestHeader;
use crate::remoting::RemotingCommand;

/// Template topic for auto-created topics.
pub const DEFAULT_TOPIC: &str = "TBW102";

/// A send header the way Java producers fill it: template topic `TBW102`, no sysflag or user
/// flag, born now, no reconsumes, not a unit or batch message, no broker name.
pub fn send_header(
    producer_group: &str,
    topic: &str,
    queue_id: i32,
    default_topic_queue_nums: i32,
    properties: Option<String>,
) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: producer_group.into(),
        topic: topic.into(),
        default_topic: DEFAULT_TOPIC.into(),
        default_topic_queue_nums,
        queue_id,
        sys_flag: 0,
        born_timestamp: crate::util::now_millis(),
        flag: 0,
        properties,
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(false),
        max_reconsume_times: None,
        bname: None,
    }
}

/// The request frame (`code` SEND_MESSAGE_V2 or SEND_BATCH_MESSAGE) with the header in its V2 form.
pub fn send_request(code: i32, header: &SendMessageRequestHeader, body: Bytes) -> RemotingCommand {
    RemotingCommand::request_with_header(code, &header.to_v2()).with_body(body)
}

/// Like [`send_request`], moving the header's strings instead of copying them.
pub fn send_request_owned(code: i32, header: SendMessageRequestHeader, body: Bytes) -> RemotingCommand {
    RemotingCommand::request_with_header_owned(code, header.into_v2()).with_body(body)
}
