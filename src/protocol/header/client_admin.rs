//! Typed headers of the requests a broker forwards to its clients (running info, consumer status,
//! consume directly, reply push) and of the store views the dashboard asks for, with Apache's names.

use crate::command_header;

command_header! {
    /// GET_CONSUMER_RUNNING_INFO (307), tool → broker → client.
    pub struct GetConsumerRunningInfoRequestHeader {
        req consumer_group: String = "consumerGroup",
        req client_id: String = "clientId",
        opt jstack_enable: bool = "jstackEnable",
    }
}

command_header! {
    /// CONSUME_MESSAGE_DIRECTLY (309), tool → broker → client.
    pub struct ConsumeMessageDirectlyResultRequestHeader {
        req consumer_group: String = "consumerGroup",
        opt client_id: String = "clientId",
        opt msg_id: String = "msgId",
        opt broker_name: String = "brokerName",
        opt topic: String = "topic",
        opt topic_sys_flag: i32 = "topicSysFlag",
        opt group_sys_flag: i32 = "groupSysFlag",
    }
}

command_header! {
    /// INVOKE_BROKER_TO_GET_CONSUMER_STATUS (223).
    pub struct GetConsumerStatusRequestHeader {
        req topic: String = "topic",
        req group: String = "group",
        opt client_addr: String = "clientAddr",
    }
}

command_header! {
    /// GET_CONSUMER_STATUS_FROM_CLIENT (221), broker → client.
    pub struct GetConsumerStatusFromClientHeader {
        req topic: String = "topic",
        req group: String = "group",
        opt client_addr: String = "clientAddr",
    }
}

command_header! {
    /// RESET_CONSUMER_CLIENT_OFFSET (220), broker → client.
    pub struct ResetConsumerClientOffsetHeader {
        req topic: String = "topic",
        req group: String = "group",
        req timestamp: i64 = "timestamp",
        req is_force: bool = "isForce",
    }
}

command_header! {
    /// GET_BROKER_CONSUME_STATS (317).
    pub struct GetConsumeStatsInBrokerHeader {
        req is_order: bool = "isOrder",
    }
}

command_header! {
    /// QUERY_CONSUME_QUEUE (321).
    pub struct QueryConsumeQueueRequestHeader {
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req index: i64 = "index",
        req count: i32 = "count",
        opt consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// VIEW_BROKER_STATS_DATA (315).
    pub struct ViewBrokerStatsDataRequestHeader {
        req stats_name: String = "statsName",
        req stats_key: String = "statsKey",
    }
}

command_header! {
    /// PUSH_REPLY_MESSAGE_TO_CLIENT (326), broker → requesting producer.
    pub struct ReplyMessageRequestHeader {
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
        req born_host: String = "bornHost",
        req store_host: String = "storeHost",
        req store_timestamp: i64 = "storeTimestamp",
    }
}
