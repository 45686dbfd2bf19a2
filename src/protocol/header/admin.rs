//! Typed headers of the metadata requests, with Apache's field names.

use crate::command_header;

command_header! {
    /// UNREGISTER_CLIENT (35).
    pub struct UnregisterClientRequestHeader {
        req client_id: String = "clientID",
        opt producer_group: String = "producerGroup",
        opt consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// GET_CONSUMER_LIST_BY_GROUP (38).
    pub struct GetConsumerListByGroupRequestHeader {
        req consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// NOTIFY_CONSUMER_IDS_CHANGED (40, broker → consumer).
    pub struct NotifyConsumerIdsChangedRequestHeader {
        req consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// QUERY_CONSUMER_OFFSET (14).
    pub struct QueryConsumerOffsetRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        opt set_zero_if_not_found: bool = "setZeroIfNotFound",
    }
}

command_header! {
    /// Response of QUERY_CONSUMER_OFFSET.
    pub struct QueryConsumerOffsetResponseHeader {
        req offset: i64 = "offset",
    }
}

command_header! {
    /// UPDATE_CONSUMER_OFFSET (15). `queueId` and `commitOffset` are checked by the processor (Apache
    /// answers INVALID_PARAMETER when they are absent).
    pub struct UpdateConsumerOffsetRequestHeader {
        req consumer_group: String = "consumerGroup",
        req topic: String = "topic",
        opt queue_id: i32 = "queueId",
        opt commit_offset: i64 = "commitOffset",
    }
}

command_header! {
    /// UPDATE_AND_CREATE_TOPIC (17).
    pub struct CreateTopicRequestHeader {
        req topic: String = "topic",
        opt default_topic: String = "defaultTopic",
        req read_queue_nums: i32 = "readQueueNums",
        req write_queue_nums: i32 = "writeQueueNums",
        req perm: i32 = "perm",
        opt topic_filter_type: String = "topicFilterType",
        opt topic_sys_flag: i32 = "topicSysFlag",
        opt order: bool = "order",
        opt attributes: String = "attributes",
        opt force: bool = "force",
    }
}

command_header! {
    /// DELETE_TOPIC_IN_BROKER (215).
    pub struct DeleteTopicRequestHeader {
        req topic: String = "topic",
    }
}

command_header! {
    /// GET_ALL_TOPIC_CONFIG (21); the paging fields (5.3) are accepted and ignored (all topics are
    /// returned, as Apache does when `enableSplitMetadata` is off).
    pub struct GetAllTopicConfigRequestHeader {
        opt topic_seq: i32 = "topicSeq",
        opt data_version: String = "dataVersion",
        opt max_topic_num: i32 = "maxTopicNum",
    }
}

command_header! {
    /// Response of GET_ALL_TOPIC_CONFIG.
    pub struct GetAllTopicConfigResponseHeader {
        req total_topic_num: i32 = "totalTopicNum",
    }
}

command_header! {
    /// GET_TOPIC_CONFIG (351).
    pub struct GetTopicConfigRequestHeader {
        req topic: String = "topic",
        opt lo: bool = "lo",
    }
}

command_header! {
    /// GET_SUBSCRIPTIONGROUP_CONFIG (352).
    pub struct GetSubscriptionGroupConfigRequestHeader {
        req group: String = "group",
    }
}

command_header! {
    /// DELETE_SUBSCRIPTIONGROUP (207).
    pub struct DeleteSubscriptionGroupRequestHeader {
        req group_name: String = "groupName",
        opt clean_offset: bool = "cleanOffset",
    }
}

command_header! {
    /// GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201); paging fields accepted and ignored.
    pub struct GetAllSubscriptionGroupRequestHeader {
        opt group_seq: i32 = "groupSeq",
        opt data_version: String = "dataVersion",
        opt max_group_num: i32 = "maxGroupNum",
    }
}

command_header! {
    /// Response of GET_ALL_SUBSCRIPTIONGROUP_CONFIG.
    pub struct GetAllSubscriptionGroupResponseHeader {
        req total_group_num: i32 = "totalGroupNum",
    }
}

command_header! {
    /// GET_CONSUMER_CONNECTION_LIST (203).
    pub struct GetConsumerConnectionListRequestHeader {
        req consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// GET_PRODUCER_CONNECTION_LIST (204).
    pub struct GetProducerConnectionListRequestHeader {
        req producer_group: String = "producerGroup",
    }
}

command_header! {
    /// GET_CONSUME_STATS (208). `topicList` is `;`-separated.
    pub struct GetConsumeStatsRequestHeader {
        req consumer_group: String = "consumerGroup",
        opt topic: String = "topic",
        opt topic_list: String = "topicList",
    }
}

command_header! {
    /// GET_TOPIC_STATS_INFO (202).
    pub struct GetTopicStatsInfoRequestHeader {
        req topic: String = "topic",
    }
}

command_header! {
    /// INVOKE_BROKER_TO_RESET_OFFSET (222): move a group's offsets on a topic to a time (or an offset).
    pub struct ResetOffsetRequestHeader {
        req group: String = "group",
        req topic: String = "topic",
        opt queue_id: i32 = "queueId",
        opt offset: i64 = "offset",
        req timestamp: i64 = "timestamp",
        req is_force: bool = "isForce",
    }
}

command_header! {
    /// QUERY_TOPIC_CONSUME_BY_WHO (300).
    pub struct QueryTopicConsumeByWhoRequestHeader {
        req topic: String = "topic",
    }
}

command_header! {
    /// QUERY_TOPICS_BY_CONSUMER (343).
    pub struct QueryTopicsByConsumerRequestHeader {
        req group: String = "group",
    }
}

command_header! {
    /// QUERY_SUBSCRIPTION_BY_CONSUMER (345).
    pub struct QuerySubscriptionByConsumerRequestHeader {
        req group: String = "group",
        req topic: String = "topic",
    }
}

command_header! {
    /// CLONE_GROUP_OFFSET (314).
    pub struct CloneGroupOffsetRequestHeader {
        req src_group: String = "srcGroup",
        req dest_group: String = "destGroup",
        opt topic: String = "topic",
        opt offline: bool = "offline",
    }
}
