//! Typed headers of the NameServer requests and responses (spec: remoting.md §9, namesrv.md §3-§7).

use crate::command_header;

command_header! {
    /// REGISTER_BROKER (103) request (`RegisterBrokerRequestHeader`).
    pub struct RegisterBrokerRequestHeader {
        req broker_name: String = "brokerName",
        req broker_addr: String = "brokerAddr",
        req cluster_name: String = "clusterName",
        req ha_server_addr: String = "haServerAddr",
        req broker_id: i64 = "brokerId",
        opt heartbeat_timeout_millis: i64 = "heartbeatTimeoutMillis",
        opt enable_acting_master: bool = "enableActingMaster",
        opt compressed: bool = "compressed",
        opt body_crc32: i32 = "bodyCrc32",
    }
}

command_header! {
    /// REGISTER_BROKER (103) response (`RegisterBrokerResponseHeader`).
    pub struct RegisterBrokerResponseHeader {
        opt ha_server_addr: String = "haServerAddr",
        opt master_addr: String = "masterAddr",
    }
}

command_header! {
    /// UNREGISTER_BROKER (104) request (`UnRegisterBrokerRequestHeader`).
    pub struct UnRegisterBrokerRequestHeader {
        req broker_name: String = "brokerName",
        req broker_addr: String = "brokerAddr",
        req cluster_name: String = "clusterName",
        req broker_id: i64 = "brokerId",
    }
}

command_header! {
    /// GET_ROUTEINFO_BY_TOPIC (105) request (`GetRouteInfoRequestHeader`).
    pub struct GetRouteInfoRequestHeader {
        req topic: String = "topic",
        opt accept_standard_json_only: bool = "acceptStandardJsonOnly",
    }
}

command_header! {
    /// QUERY_DATA_VERSION (322) request (`QueryDataVersionRequestHeader`).
    pub struct QueryDataVersionRequestHeader {
        req broker_name: String = "brokerName",
        req broker_addr: String = "brokerAddr",
        req cluster_name: String = "clusterName",
        req broker_id: i64 = "brokerId",
    }
}

command_header! {
    /// QUERY_DATA_VERSION (322) response (`QueryDataVersionResponseHeader`).
    pub struct QueryDataVersionResponseHeader {
        opt changed: bool = "changed",
    }
}

command_header! {
    /// BROKER_HEARTBEAT (904) request (`BrokerHeartbeatRequestHeader`).
    pub struct BrokerHeartbeatRequestHeader {
        req cluster_name: String = "clusterName",
        req broker_addr: String = "brokerAddr",
        req broker_name: String = "brokerName",
        opt broker_id: i64 = "brokerId",
        opt epoch: i32 = "epoch",
        opt max_offset: i64 = "maxOffset",
        opt confirm_offset: i64 = "confirmOffset",
        opt heartbeat_timeout_mills: i64 = "heartbeatTimeoutMills",
        opt election_priority: i32 = "electionPriority",
    }
}

command_header! {
    /// GET_TOPICS_BY_CLUSTER (224) request (`GetTopicsByClusterRequestHeader`).
    pub struct GetTopicsByClusterRequestHeader {
        req cluster: String = "cluster",
    }
}

command_header! {
    /// WIPE_WRITE_PERM_OF_BROKER (205) request (`WipeWritePermOfBrokerRequestHeader`).
    pub struct WipeWritePermOfBrokerRequestHeader {
        req broker_name: String = "brokerName",
    }
}

command_header! {
    /// WIPE_WRITE_PERM_OF_BROKER (205) response (`WipeWritePermOfBrokerResponseHeader`).
    pub struct WipeWritePermOfBrokerResponseHeader {
        req wipe_topic_count: i32 = "wipeTopicCount",
    }
}

command_header! {
    /// ADD_WRITE_PERM_OF_BROKER (327) request (`AddWritePermOfBrokerRequestHeader`).
    pub struct AddWritePermOfBrokerRequestHeader {
        req broker_name: String = "brokerName",
    }
}

command_header! {
    /// ADD_WRITE_PERM_OF_BROKER (327) response (`AddWritePermOfBrokerResponseHeader`).
    pub struct AddWritePermOfBrokerResponseHeader {
        req add_topic_count: i32 = "addTopicCount",
    }
}

command_header! {
    /// DELETE_TOPIC_IN_NAMESRV (216) request (`DeleteTopicFromNamesrvRequestHeader`).
    pub struct DeleteTopicFromNamesrvRequestHeader {
        req topic: String = "topic",
        opt cluster_name: String = "clusterName",
    }
}

command_header! {
    /// REGISTER_TOPIC_IN_NAMESRV (217) request (`RegisterTopicRequestHeader`).
    pub struct RegisterTopicRequestHeader {
        req topic: String = "topic",
    }
}

command_header! {
    /// PUT_KV_CONFIG (100) request (`PutKVConfigRequestHeader`).
    pub struct PutKvConfigRequestHeader {
        req namespace: String = "namespace",
        req key: String = "key",
        req value: String = "value",
    }
}

command_header! {
    /// GET_KV_CONFIG (101) request (`GetKVConfigRequestHeader`).
    pub struct GetKvConfigRequestHeader {
        req namespace: String = "namespace",
        req key: String = "key",
    }
}

command_header! {
    /// GET_KV_CONFIG (101) response (`GetKVConfigResponseHeader`).
    pub struct GetKvConfigResponseHeader {
        opt value: String = "value",
    }
}

command_header! {
    /// DELETE_KV_CONFIG (102) request (`DeleteKVConfigRequestHeader`).
    pub struct DeleteKvConfigRequestHeader {
        req namespace: String = "namespace",
        req key: String = "key",
    }
}

command_header! {
    /// GET_KVLIST_BY_NAMESPACE (219) request (`GetKVListByNamespaceRequestHeader`).
    pub struct GetKvListByNamespaceRequestHeader {
        req namespace: String = "namespace",
    }
}

command_header! {
    /// GET_BROKER_MEMBER_GROUP (901) request (`GetBrokerMemberGroupRequestHeader`).
    pub struct GetBrokerMemberGroupRequestHeader {
        req cluster_name: String = "clusterName",
        req broker_name: String = "brokerName",
    }
}
