//! Headers of POP consumption (RocketMQ 5): POP_MESSAGE, ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME,
//! NOTIFICATION, POLLING_INFO (spec: messaging-5x.md §4).

use crate::command_header;

command_header! {
    /// POP_MESSAGE (200050) request header.
    pub struct PopMessageRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req max_msg_nums: i32 = "maxMsgNums",
        req invisible_time: i64 = "invisibleTime",
        req poll_time: i64 = "pollTime",
        req born_time: i64 = "bornTime",
        req init_mode: i32 = "initMode",
        opt exp_type: String = "expType",
        opt exp: String = "exp",
        opt order: bool = "order",
        opt attempt_id: String = "attemptId",
    }
}

command_header! {
    /// POP_MESSAGE response header.
    pub struct PopMessageResponseHeader {
        req pop_time: i64 = "popTime",
        req invisible_time: i64 = "invisibleTime",
        req revive_qid: i32 = "reviveQid",
        req rest_num: i64 = "restNum",
        opt start_offset_info: String = "startOffsetInfo",
        opt msg_offset_info: String = "msgOffsetInfo",
        opt order_count_info: String = "orderCountInfo",
    }
}

command_header! {
    /// ACK_MESSAGE (200051) request header.
    pub struct AckMessageRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req extra_info: String = "extraInfo",
        req offset: i64 = "offset",
    }
}

command_header! {
    /// CHANGE_MESSAGE_INVISIBLETIME (200053) request header.
    pub struct ChangeInvisibleTimeRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req extra_info: String = "extraInfo",
        req offset: i64 = "offset",
        req invisible_time: i64 = "invisibleTime",
    }
}

command_header! {
    /// CHANGE_MESSAGE_INVISIBLETIME response header.
    pub struct ChangeInvisibleTimeResponseHeader {
        req pop_time: i64 = "popTime",
        req invisible_time: i64 = "invisibleTime",
        req revive_qid: i32 = "reviveQid",
    }
}

command_header! {
    /// NOTIFICATION (200054) request header.
    pub struct NotificationRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req poll_time: i64 = "pollTime",
        req born_time: i64 = "bornTime",
        opt order: bool = "order",
        opt attempt_id: String = "attemptId",
    }
}

command_header! {
    /// NOTIFICATION response header.
    pub struct NotificationResponseHeader {
        req has_msg: bool = "hasMsg",
        req polling_full: bool = "pollingFull",
    }
}

command_header! {
    /// POLLING_INFO (200055) request header.
    pub struct PollingInfoRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
    }
}

command_header! {
    /// POLLING_INFO response header.
    pub struct PollingInfoResponseHeader {
        req polling_num: i32 = "pollingNum",
    }
}

/// The POP_CK extra info of one message: `ckStartOffset popTime invisibleTime reviveQid retryFlag
/// brokerName queueId [msgQueueOffset]` (Apache's `ExtraInfoUtil`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraInfo {
    /// Start offset of the checkpoint.
    pub ck_queue_offset: i64,
    /// Pop time (ms).
    pub pop_time: i64,
    /// Invisible time (ms).
    pub invisible_time: i64,
    /// Revive queue (999 for ordered pops).
    pub revive_qid: i32,
    /// `0` normal topic, `1` `%RETRY%<group>_<topic>`, `2` `%RETRY%<group>+<topic>`.
    pub retry: String,
    /// The broker that popped it.
    pub broker_name: String,
    /// Queue id.
    pub queue_id: i32,
    /// The message's queue offset, when given.
    pub queue_offset: Option<i64>,
}

impl ExtraInfo {
    /// Parses the space-separated form; `None` when fewer than 7 fields or a number is bad.
    pub fn parse(s: &str) -> Option<ExtraInfo> {
        let f: Vec<&str> = s.split(' ').collect();
        if f.len() < 7 {
            return None;
        }
        Some(ExtraInfo {
            ck_queue_offset: f[0].parse().ok()?,
            pop_time: f[1].parse().ok()?,
            invisible_time: f[2].parse().ok()?,
            revive_qid: f[3].parse().ok()?,
            retry: f[4].to_string(),
            broker_name: f[5].to_string(),
            queue_id: f[6].parse().ok()?,
            queue_offset: match f.get(7) {
                Some(o) => Some(o.parse().ok()?),
                None => None,
            },
        })
    }

    /// The wire form.
    pub fn encode(&self) -> String {
        let mut s = format!(
            "{} {} {} {} {} {} {}",
            self.ck_queue_offset,
            self.pop_time,
            self.invisible_time,
            self.revive_qid,
            self.retry,
            self.broker_name,
            self.queue_id
        );
        if let Some(o) = self.queue_offset {
            s.push(' ');
            s.push_str(&o.to_string());
        }
        s
    }
}

/// Apache's retry flag of a topic: `2` for the V2 pop retry form (`%RETRY%<group>+<topic>`), `1` for
/// any other `%RETRY%` topic, else `0`.
pub fn retry_flag(topic: &str) -> &'static str {
    match topic.strip_prefix("%RETRY%") {
        Some(rest) if rest.contains('+') => "2",
        Some(_) => "1",
        None => "0",
    }
}

/// The topic an extra info's retry flag names: the topic itself, or the group's pop retry topic.
pub fn real_topic(topic: &str, group: &str, retry: &str) -> String {
    match retry {
        "1" => format!("%RETRY%{group}_{topic}"),
        "2" => format!("%RETRY%{group}+{topic}"),
        _ => topic.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_info_round_trip() {
        let s = "5 1700000000000 60000 3 0 broker-a 1 7";
        let e = ExtraInfo::parse(s).expect("parses");
        assert_eq!(e.ck_queue_offset, 5);
        assert_eq!(e.revive_qid, 3);
        assert_eq!(e.queue_offset, Some(7));
        assert_eq!(e.encode(), s);
        assert!(ExtraInfo::parse("1 2 3").is_none());
        assert_eq!(retry_flag("%RETRY%g_T"), "1");
        assert_eq!(retry_flag("%RETRY%g+T"), "2");
        assert_eq!(retry_flag("T"), "0");
        assert_eq!(real_topic("T", "g", "1"), "%RETRY%g_T");
    }
}
