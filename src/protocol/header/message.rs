//! Typed headers of the produce / consume / query requests a broker answers (spec: remoting.md §9).

use crate::command_header;
use crate::remoting::command::{CommandHeader, ExtFields, HeaderError};

command_header! {
    /// SEND_MESSAGE (10) request header.
    pub struct SendMessageRequestHeader {
        req producer_group: String = "producerGroup",
        req topic: String = "topic",
        req default_topic: String = "defaultTopic",
        req default_topic_queue_nums: i32 = "defaultTopicQueueNums",
        req queue_id: i32 = "queueId",
        req sys_flag: i32 = "sysFlag",
        req born_timestamp: i64 = "bornTimestamp",
        req flag: i32 = "flag",
        opt properties: String = "properties",
        opt reconsume_times: i32 = "reconsumeTimes",
        opt unit_mode: bool = "unitMode",
        opt batch: bool = "batch",
        opt max_reconsume_times: i32 = "maxReconsumeTimes",
        opt bname: String = "bname",
    }
}

command_header! {
    /// SEND_MESSAGE_V2 (310) / SEND_BATCH_MESSAGE (320) request header: single-letter keys.
    pub struct SendMessageRequestHeaderV2 {
        req a: String = "a",
        req b: String = "b",
        req c: String = "c",
        req d: i32 = "d",
        req e: i32 = "e",
        req f: i32 = "f",
        req g: i64 = "g",
        req h: i32 = "h",
        opt i: String = "i",
        opt j: i32 = "j",
        opt k: bool = "k",
        opt l: i32 = "l",
        opt m: bool = "m",
        opt n: String = "n",
    }
}

impl SendMessageRequestHeader {
    /// Reads either form: V2's single-letter keys when `v2`, else the named keys.
    pub fn read(ext: &ExtFields, v2: bool) -> Result<Self, HeaderError> {
        if !v2 {
            return Self::read_ext_fields(ext);
        }
        let h = SendMessageRequestHeaderV2::read_ext_fields(ext)?;
        Ok(h.into_v1())
    }
}

impl SendMessageRequestHeaderV2 {
    /// The same header with the named keys, without copying its strings.
    pub fn into_v1(self) -> SendMessageRequestHeader {
        let h = self;
        SendMessageRequestHeader {
            producer_group: h.a,
            topic: h.b,
            default_topic: h.c,
            default_topic_queue_nums: h.d,
            queue_id: h.e,
            sys_flag: h.f,
            born_timestamp: h.g,
            flag: h.h,
            properties: h.i,
            reconsume_times: h.j,
            unit_mode: h.k,
            max_reconsume_times: h.l,
            batch: h.m,
            bname: h.n,
        }
    }
}

impl SendMessageRequestHeader {
    /// Like [`SendMessageRequestHeader::read`], moving the strings out of `ext` instead of copying
    /// them (the fields read are left empty).
    pub fn take(ext: &mut ExtFields, v2: bool) -> Result<Self, HeaderError> {
        if !v2 {
            return Self::take_ext_fields(ext);
        }
        let h = SendMessageRequestHeaderV2::take_ext_fields(ext)?;
        Ok(h.into_v1())
    }

    /// The same header as V2, without copying its strings.
    pub fn into_v2(self) -> SendMessageRequestHeaderV2 {
        SendMessageRequestHeaderV2 {
            a: self.producer_group,
            b: self.topic,
            c: self.default_topic,
            d: self.default_topic_queue_nums,
            e: self.queue_id,
            f: self.sys_flag,
            g: self.born_timestamp,
            h: self.flag,
            i: self.properties,
            j: self.reconsume_times,
            k: self.unit_mode,
            l: self.max_reconsume_times,
            m: self.batch,
            n: self.bname,
        }
    }

    /// The same header as V2 (what Java clients send by default).
    pub fn to_v2(&self) -> SendMessageRequestHeaderV2 {
        SendMessageRequestHeaderV2 {
            a: self.producer_group.clone(),
            b: self.topic.clone(),
            c: self.default_topic.clone(),
            d: self.default_topic_queue_nums,
            e: self.queue_id,
            f: self.sys_flag,
            g: self.born_timestamp,
            h: self.flag,
            i: self.properties.clone(),
            j: self.reconsume_times,
            k: self.unit_mode,
            l: self.max_reconsume_times,
            m: self.batch,
            n: self.bname.clone(),
        }
    }
}

command_header! {
    /// SEND_MESSAGE response header.
    pub struct SendMessageResponseHeader {
        req msg_id: String = "msgId",
        req queue_id: i32 = "queueId",
        req queue_offset: i64 = "queueOffset",
        opt transaction_id: String = "transactionId",
        opt batch_uniq_id: String = "batchUniqId",
    }
}

command_header! {
    /// PULL_MESSAGE (11) request header.
    pub struct PullMessageRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req queue_offset: i64 = "queueOffset",
        req max_msg_nums: i32 = "maxMsgNums",
        req sys_flag: i32 = "sysFlag",
        req commit_offset: i64 = "commitOffset",
        req suspend_timeout_millis: i64 = "suspendTimeoutMillis",
        opt subscription: String = "subscription",
        req sub_version: i64 = "subVersion",
        opt expression_type: String = "expressionType",
        opt max_msg_bytes: i32 = "maxMsgBytes",
    }
}

command_header! {
    /// PULL_MESSAGE response header.
    pub struct PullMessageResponseHeader {
        req suggest_which_broker_id: i64 = "suggestWhichBrokerId",
        req next_begin_offset: i64 = "nextBeginOffset",
        req min_offset: i64 = "minOffset",
        req max_offset: i64 = "maxOffset",
        opt topic_sys_flag: i32 = "topicSysFlag",
        opt group_sys_flag: i32 = "groupSysFlag",
    }
}

/// PullSysFlag bits.
pub mod pull_flag {
    /// Commit `commitOffset` for the group.
    pub const COMMIT_OFFSET: i32 = 0x1;
    /// Long polling allowed.
    pub const SUSPEND: i32 = 0x2;
    /// The `subscription` field is present.
    pub const SUBSCRIPTION: i32 = 0x4;
    /// Class filter (unsupported).
    pub const CLASS_FILTER: i32 = 0x8;
    /// Lite pull.
    pub const LITE_PULL: i32 = 0x10;
}

command_header! {
    /// QUERY_MESSAGE (12) request header.
    pub struct QueryMessageRequestHeader {
        req topic: String = "topic",
        req key: String = "key",
        req max_num: i32 = "maxNum",
        req begin_timestamp: i64 = "beginTimestamp",
        req end_timestamp: i64 = "endTimestamp",
    }
}

command_header! {
    /// QUERY_MESSAGE response header.
    pub struct QueryMessageResponseHeader {
        req index_last_update_timestamp: i64 = "indexLastUpdateTimestamp",
        req index_last_update_phyoffset: i64 = "indexLastUpdatePhyoffset",
    }
}

command_header! {
    /// VIEW_MESSAGE_BY_ID (33) request header.
    pub struct ViewMessageRequestHeader {
        opt topic: String = "topic",
        req offset: i64 = "offset",
    }
}

command_header! {
    /// GET_MAX_OFFSET (30) / GET_MIN_OFFSET (31) / GET_EARLIEST_MSG_STORETIME (32) request header.
    pub struct QueueRequestHeader {
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        opt committed: bool = "committed",
    }
}

command_header! {
    /// Response carrying one `offset`.
    pub struct OffsetResponseHeader {
        req offset: i64 = "offset",
    }
}

command_header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP (29) request header.
    pub struct SearchOffsetRequestHeader {
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req timestamp: i64 = "timestamp",
        opt boundary_type: String = "boundaryType",
    }
}

command_header! {
    /// GET_EARLIEST_MSG_STORETIME response header.
    pub struct TimestampResponseHeader {
        req timestamp: i64 = "timestamp",
    }
}

command_header! {
    /// CONSUMER_SEND_MSG_BACK (36) request header.
    pub struct ConsumerSendMsgBackRequestHeader {
        req offset: i64 = "offset",
        req group: String = "group",
        req delay_level: i32 = "delayLevel",
        opt origin_msg_id: String = "originMsgId",
        opt origin_topic: String = "originTopic",
        opt unit_mode: bool = "unitMode",
        opt max_reconsume_times: i32 = "maxReconsumeTimes",
    }
}

command_header! {
    /// END_TRANSACTION (37) request header (oneway, producer to broker).
    pub struct EndTransactionRequestHeader {
        opt topic: String = "topic",
        req producer_group: String = "producerGroup",
        req tran_state_table_offset: i64 = "tranStateTableOffset",
        req commit_log_offset: i64 = "commitLogOffset",
        req commit_or_rollback: i32 = "commitOrRollback",
        opt from_transaction_check: bool = "fromTransactionCheck",
        req msg_id: String = "msgId",
        opt transaction_id: String = "transactionId",
        opt bname: String = "bname",
    }
}

command_header! {
    /// CHECK_TRANSACTION_STATE (39) request header (oneway, broker to producer).
    pub struct CheckTransactionStateRequestHeader {
        opt topic: String = "topic",
        req tran_state_table_offset: i64 = "tranStateTableOffset",
        req commit_log_offset: i64 = "commitLogOffset",
        opt msg_id: String = "msgId",
        opt transaction_id: String = "transactionId",
        opt offset_msg_id: String = "offsetMsgId",
        opt bname: String = "bname",
    }
}
