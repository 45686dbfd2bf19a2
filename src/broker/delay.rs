//! What the send path, send-back and delayed delivery share: the broker's property keys, the
//! retry / dead-letter / schedule topic names and the DELAY rewrite. A leaf: it uses nothing of the
//! broker, so `core`, `send` and `schedule` all depend on it and not on each other.

use crate::protocol::message::{self, parse_properties};
use crate::store::MessageInner;

/// Property keys the send path reads or writes beyond the store's own.
pub mod prop {
    /// Cluster name, set by the broker.
    pub const CLUSTER: &str = "CLUSTER";
    /// Retry topic of a message sent back.
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    /// Original offset msgId of a message sent back.
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    /// Max reconsume times.
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    /// Transaction half message marker.
    pub const TRAN_MSG: &str = "TRAN_MSG";
    /// Origin topic of a dead-letter message.
    pub const DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
    /// Origin msgId of a dead-letter message.
    pub const DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
}

/// Topic that holds delayed messages, one queue per delay level.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Prefix of retry topics.
pub const RETRY_PREFIX: &str = "%RETRY%";
/// Prefix of dead-letter topics.
pub const DLQ_PREFIX: &str = "%DLQ%";

/// Re-targets a message with a DELAY level to the schedule topic (queue = level - 1), keeping the
/// real topic and queue in properties. Levels above the maximum are clamped.
pub fn apply_delay(msg: &mut MessageInner, max_level: i32) {
    let tran = msg.sys_flag & 0xC;
    if tran != 0 && tran != 0x8 {
        return;
    }
    let Some(level) =
        message::find_property(&msg.properties, message::property::DELAY).and_then(|d| d.parse::<i32>().ok())
    else {
        return;
    };
    if level <= 0 || msg.topic == SCHEDULE_TOPIC {
        return;
    }
    let level = level.min(max_level);
    let mut props = parse_properties(&msg.properties);
    props.insert(message::property::DELAY.to_string(), level.to_string());
    props.insert(message::property::REAL_TOPIC.to_string(), msg.topic.clone());
    props.insert(message::property::REAL_QID.to_string(), msg.queue_id.to_string());
    msg.set_properties(props);
    msg.topic = SCHEDULE_TOPIC.to_string();
    msg.queue_id = level - 1;
}
