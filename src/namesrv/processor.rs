//! The NameServer's request processor (Apache's `DefaultRequestProcessor` and `ClientRequestProcessor`)
//! and its connection listener.

use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use super::kvconfig::{KvConfigManager, NAMESPACE_ORDER_TOPIC_CONFIG};
use super::route::{BrokerRegistration, RouteInfoManager, SharedConfig};
use crate::config::Configurable;
use crate::json;
use crate::protocol::body::{
    self, DataVersion, GetBrokerMemberGroupResponseBody, RegisterBrokerBody, TopicRouteData, BARE_KEY_FIELDS,
};
use crate::protocol::codes::{request, response};
use crate::protocol::header::namesrv::*;
use crate::remoting::command::{CommandHeader, HeaderError};
use crate::remoting::{BoxFuture, ChannelEventListener, ConnectionHandle, RemotingCommand, RequestProcessor};

/// The ext field a broker puts its zone in.
pub const ZONE_NAME: &str = "__ZONE_NAME";

/// Every request code the NameServer answers.
pub const NAMESRV_CODES: &[i32] = &[
    request::PUT_KV_CONFIG,
    request::GET_KV_CONFIG,
    request::DELETE_KV_CONFIG,
    request::REGISTER_BROKER,
    request::UNREGISTER_BROKER,
    request::GET_ROUTEINFO_BY_TOPIC,
    request::GET_BROKER_CLUSTER_INFO,
    request::WIPE_WRITE_PERM_OF_BROKER,
    request::ADD_WRITE_PERM_OF_BROKER,
    request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
    request::DELETE_TOPIC_IN_NAMESRV,
    request::REGISTER_TOPIC_IN_NAMESRV,
    request::GET_KVLIST_BY_NAMESPACE,
    request::GET_TOPICS_BY_CLUSTER,
    request::GET_SYSTEM_TOPIC_LIST_FROM_NS,
    request::QUERY_DATA_VERSION,
    request::BROKER_HEARTBEAT,
    request::GET_BROKER_MEMBER_GROUP,
    request::UPDATE_NAMESRV_CONFIG,
    request::GET_NAMESRV_CONFIG,
];

/// The state the processor works on.
pub(crate) struct NamesrvContext {
    pub(crate) config: SharedConfig,
    pub(crate) routes: Arc<RouteInfoManager>,
    pub(crate) kv: Arc<KvConfigManager>,
    pub(crate) started: Instant,
}

/// Answers every NameServer request code.
pub struct NamesrvProcessor {
    ctx: Arc<NamesrvContext>,
}

impl NamesrvProcessor {
    pub(crate) fn new(ctx: Arc<NamesrvContext>) -> Self {
        NamesrvProcessor { ctx }
    }
}

impl RequestProcessor for NamesrvProcessor {
    fn process<'a>(
        &'a self,
        conn: &'a ConnectionHandle,
        request: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move { Some(self.handle(conn, &request)) })
    }
}

/// Drops a broker's registration as soon as the connection it registered on closes.
pub struct NamesrvConnectionListener {
    pub(crate) routes: Arc<RouteInfoManager>,
}

impl ChannelEventListener for NamesrvConnectionListener {
    fn on_close(&self, conn: &ConnectionHandle) {
        self.routes.on_connection_closed(conn.id());
    }
}

fn header<H: CommandHeader>(req: &RemotingCommand) -> Result<H, RemotingCommand> {
    req.decode_header::<H>()
        .map_err(|e: HeaderError| RemotingCommand::error(req, response::SYSTEM_ERROR, e.to_string()))
}

fn json_error(req: &RemotingCommand, e: serde_json::Error) -> RemotingCommand {
    RemotingCommand::error(req, response::SYSTEM_ERROR, format!("cannot serialize the response body: {e}"))
}

impl NamesrvProcessor {
    fn handle(&self, conn: &ConnectionHandle, req: &RemotingCommand) -> RemotingCommand {
        let r = match req.code {
            request::PUT_KV_CONFIG => self.put_kv_config(req),
            request::GET_KV_CONFIG => self.get_kv_config(req),
            request::DELETE_KV_CONFIG => self.delete_kv_config(req),
            request::GET_KVLIST_BY_NAMESPACE => self.get_kv_list(req),
            request::REGISTER_BROKER => self.register_broker(conn, req),
            request::UNREGISTER_BROKER => self.unregister_broker(req),
            request::GET_ROUTEINFO_BY_TOPIC => self.get_route_info(req),
            request::GET_BROKER_CLUSTER_INFO => self.get_cluster_info(req),
            request::WIPE_WRITE_PERM_OF_BROKER => self.wipe_write_perm(req),
            request::ADD_WRITE_PERM_OF_BROKER => self.add_write_perm(req),
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => self.get_all_topic_list(req),
            request::DELETE_TOPIC_IN_NAMESRV => self.delete_topic(req),
            request::REGISTER_TOPIC_IN_NAMESRV => self.register_topic(req),
            request::GET_TOPICS_BY_CLUSTER => self.get_topics_by_cluster(req),
            request::GET_SYSTEM_TOPIC_LIST_FROM_NS => self.get_system_topic_list(req),
            request::QUERY_DATA_VERSION => self.query_data_version(req),
            request::BROKER_HEARTBEAT => self.broker_heartbeat(req),
            request::GET_BROKER_MEMBER_GROUP => self.get_broker_member_group(req),
            request::UPDATE_NAMESRV_CONFIG => self.update_config(req),
            request::GET_NAMESRV_CONFIG => self.get_config(req),
            code => Ok(RemotingCommand::error(
                req,
                response::REQUEST_CODE_NOT_SUPPORTED,
                format!(" request type {code} not supported"),
            )),
        };
        r.unwrap_or_else(|e| e)
    }

    fn put_kv_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: PutKvConfigRequestHeader = header(req)?;
        self.ctx.kv.put(&h.namespace, &h.key, &h.value).map_err(|e| {
            RemotingCommand::error(req, response::SYSTEM_ERROR, format!("cannot persist the KV config: {e}"))
        })?;
        Ok(RemotingCommand::success(req))
    }

    fn get_kv_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: GetKvConfigRequestHeader = header(req)?;
        match self.ctx.kv.get(&h.namespace, &h.key) {
            Some(v) => Ok(RemotingCommand::success(req).with_header(&GetKvConfigResponseHeader { value: Some(v) })),
            None => Ok(RemotingCommand::error(
                req,
                response::QUERY_NOT_FOUND,
                format!("No config item, Namespace: {} Key: {}", h.namespace, h.key),
            )),
        }
    }

    fn delete_kv_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: DeleteKvConfigRequestHeader = header(req)?;
        self.ctx.kv.delete(&h.namespace, &h.key).map_err(|e| {
            RemotingCommand::error(req, response::SYSTEM_ERROR, format!("cannot persist the KV config: {e}"))
        })?;
        Ok(RemotingCommand::success(req))
    }

    fn get_kv_list(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: GetKvListByNamespaceRequestHeader = header(req)?;
        match self.ctx.kv.list(&h.namespace) {
            Some(t) => {
                let body = serde_json::to_vec(&t).map_err(|e| json_error(req, e))?;
                Ok(RemotingCommand::success(req).with_body(body))
            }
            None => Ok(RemotingCommand::error(
                req,
                response::QUERY_NOT_FOUND,
                format!("No config item, Namespace: {}", h.namespace),
            )),
        }
    }

    fn register_broker(
        &self,
        conn: &ConnectionHandle,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let h: RegisterBrokerRequestHeader = header(req)?;
        let crc = h.body_crc32.unwrap_or(0);
        if crc != 0 {
            let actual = (crc32fast::hash(&req.body) & 0x7FFF_FFFF) as i32;
            if actual != crc {
                warn!(broker = %h.broker_name, addr = %h.broker_addr, expected = crc, actual, "register body crc32 mismatch");
                return Ok(RemotingCommand::error(req, response::SYSTEM_ERROR, "crc32 not match"));
            }
        }
        let body = RegisterBrokerBody::decode(&req.body, h.compressed.unwrap_or(false), req.version).map_err(|e| {
            RemotingCommand::error(req, response::SYSTEM_ERROR, format!("register broker body does not parse: {e}"))
        })?;
        let reg = BrokerRegistration {
            cluster_name: h.cluster_name,
            broker_addr: h.broker_addr,
            broker_name: h.broker_name,
            broker_id: h.broker_id,
            ha_server_addr: h.ha_server_addr,
            zone_name: req.ext(ZONE_NAME).map(str::to_string),
            heartbeat_timeout_millis: h.heartbeat_timeout_millis,
            enable_acting_master: h.enable_acting_master,
            topic_config_wrapper: body.topic_config_serialize_wrapper,
            filter_server_list: body.filter_server_list,
            connection: Some(conn.clone()),
        };
        let Some(result) = self.ctx.routes.register_broker(reg) else {
            return Ok(RemotingCommand::error(req, response::SYSTEM_ERROR, "register broker failed"));
        };
        let mut resp = RemotingCommand::success(req).with_header(&RegisterBrokerResponseHeader {
            ha_server_addr: result.ha_server_addr,
            master_addr: result.master_addr,
        });
        if self.ctx.config.read().return_order_topic_config_to_broker {
            if let Some(t) = self.ctx.kv.list(NAMESPACE_ORDER_TOPIC_CONFIG) {
                resp.body = serde_json::to_vec(&t).map_err(|e| json_error(req, e))?.into();
            }
        }
        Ok(resp)
    }

    fn unregister_broker(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: UnRegisterBrokerRequestHeader = header(req)?;
        self.ctx.routes.unregister_broker(&h.cluster_name, &h.broker_addr, &h.broker_name, h.broker_id);
        Ok(RemotingCommand::success(req))
    }

    fn get_route_info(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: GetRouteInfoRequestHeader = header(req)?;
        let (wait, wait_secs, order_enabled) = {
            let c = self.ctx.config.read();
            (c.need_wait_for_service, c.wait_seconds_for_service, c.order_message_enable)
        };
        if wait && self.ctx.started.elapsed().as_secs() < wait_secs {
            return Ok(RemotingCommand::error(req, response::SYSTEM_ERROR, "name server not ready"));
        }
        let Some(mut rd): Option<TopicRouteData> = self.ctx.routes.pickup_topic_route_data(&h.topic) else {
            return Ok(RemotingCommand::error(
                req,
                response::TOPIC_NOT_EXIST,
                format!(
                    "No topic route info in name server for the topic: {}\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.",
                    h.topic
                ),
            ));
        };
        if order_enabled {
            rd.order_topic_conf = self.ctx.kv.get(NAMESPACE_ORDER_TOPIC_CONFIG, &h.topic);
        }
        let standard = req.version >= body::V4_9_4 || h.accept_standard_json_only.unwrap_or(false);
        let text =
            if standard { json::to_standard_json_string(&rd) } else { json::to_fastjson_string(&rd, BARE_KEY_FIELDS) }
                .map_err(|e| json_error(req, e))?;
        Ok(RemotingCommand::success(req).with_body(text.into_bytes()))
    }

    fn get_cluster_info(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let info = self.ctx.routes.cluster_info();
        let text = json::to_fastjson_string(&info, BARE_KEY_FIELDS).map_err(|e| json_error(req, e))?;
        Ok(RemotingCommand::success(req).with_body(text.into_bytes()))
    }

    fn wipe_write_perm(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: WipeWritePermOfBrokerRequestHeader = header(req)?;
        let n = self.ctx.routes.wipe_write_perm_of_broker(&h.broker_name);
        info!(broker = %h.broker_name, topics = n, "write permission wiped");
        Ok(RemotingCommand::success(req).with_header(&WipeWritePermOfBrokerResponseHeader { wipe_topic_count: n }))
    }

    fn add_write_perm(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: AddWritePermOfBrokerRequestHeader = header(req)?;
        let n = self.ctx.routes.add_write_perm_of_broker(&h.broker_name);
        info!(broker = %h.broker_name, topics = n, "write permission added");
        Ok(RemotingCommand::success(req).with_header(&AddWritePermOfBrokerResponseHeader { add_topic_count: n }))
    }

    fn get_all_topic_list(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        if !self.ctx.config.read().enable_all_topic_list {
            return Ok(RemotingCommand::error(req, response::SYSTEM_ERROR, "disable"));
        }
        let body = serde_json::to_vec(&self.ctx.routes.all_topic_list()).map_err(|e| json_error(req, e))?;
        Ok(RemotingCommand::success(req).with_body(body))
    }

    fn get_topics_by_cluster(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        if !self.ctx.config.read().enable_topic_list {
            return Ok(RemotingCommand::error(req, response::SYSTEM_ERROR, "disable"));
        }
        let h: GetTopicsByClusterRequestHeader = header(req)?;
        let body =
            serde_json::to_vec(&self.ctx.routes.topics_by_cluster(&h.cluster)).map_err(|e| json_error(req, e))?;
        Ok(RemotingCommand::success(req).with_body(body))
    }

    fn get_system_topic_list(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let body = serde_json::to_vec(&self.ctx.routes.system_topic_list()).map_err(|e| json_error(req, e))?;
        Ok(RemotingCommand::success(req).with_body(body))
    }

    fn delete_topic(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: DeleteTopicFromNamesrvRequestHeader = header(req)?;
        self.ctx.routes.delete_topic(&h.topic, h.cluster_name.as_deref());
        Ok(RemotingCommand::success(req))
    }

    fn register_topic(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: RegisterTopicRequestHeader = header(req)?;
        if !req.body.is_empty() {
            let rd: TopicRouteData = json::from_slice_lenient(&req.body).map_err(|e| {
                RemotingCommand::error(req, response::SYSTEM_ERROR, format!("TopicRouteData does not parse: {e}"))
            })?;
            self.ctx.routes.register_topic(&h.topic, &rd.queue_datas);
        }
        Ok(RemotingCommand::success(req))
    }

    fn query_data_version(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: QueryDataVersionRequestHeader = header(req)?;
        let version: DataVersion = if req.body.is_empty() {
            DataVersion::default()
        } else {
            json::from_slice_lenient(&req.body).map_err(|e| {
                RemotingCommand::error(req, response::SYSTEM_ERROR, format!("DataVersion does not parse: {e}"))
            })?
        };
        let routes = &self.ctx.routes;
        let changed = routes.is_broker_topic_config_changed(&h.cluster_name, &h.broker_addr, &version);
        routes.update_broker_info_update_timestamp(&h.cluster_name, &h.broker_addr);
        let mut resp =
            RemotingCommand::success(req).with_header(&QueryDataVersionResponseHeader { changed: Some(changed) });
        if let Some(stored) = routes.query_broker_topic_config(&h.cluster_name, &h.broker_addr) {
            resp.body = serde_json::to_vec(&stored).map_err(|e| json_error(req, e))?.into();
        }
        Ok(resp)
    }

    fn broker_heartbeat(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: BrokerHeartbeatRequestHeader = header(req)?;
        self.ctx.routes.update_broker_info_update_timestamp(&h.cluster_name, &h.broker_addr);
        Ok(RemotingCommand::success(req))
    }

    fn get_broker_member_group(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let h: GetBrokerMemberGroupRequestHeader = header(req)?;
        let body = GetBrokerMemberGroupResponseBody {
            broker_member_group: self.ctx.routes.broker_member_group(&h.cluster_name, &h.broker_name),
        };
        let text = json::to_fastjson_string(&body, BARE_KEY_FIELDS).map_err(|e| json_error(req, e))?;
        Ok(RemotingCommand::success(req).with_body(text.into_bytes()))
    }

    fn get_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let text = self.ctx.config.read().to_properties();
        Ok(RemotingCommand::success(req).with_body(text.into_bytes()))
    }

    fn update_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let Ok(text) = std::str::from_utf8(&req.body) else {
            return Ok(RemotingCommand::error(req, response::SYSTEM_ERROR, "the config body is not UTF-8"));
        };
        let entries = crate::config::properties::parse(text).map_err(|e| {
            RemotingCommand::error(req, response::SYSTEM_ERROR, format!("string2Properties error: {e}"))
        })?;
        if entries.is_empty() {
            return Ok(RemotingCommand::error(req, response::SYSTEM_ERROR, "string2Properties error"));
        }
        let mut cfg = self.ctx.config.write();
        let black = cfg.black_list();
        if entries.iter().any(|e| black.contains(&e.key)) {
            return Ok(RemotingCommand::error(req, response::NO_PERMISSION, "Can not update config in black list."));
        }
        let mut next = cfg.clone();
        for e in &entries {
            match next.set(&e.key, &e.value) {
                Ok(true) => {}
                Ok(false) => warn!(key = %e.key, "UPDATE_NAMESRV_CONFIG: unknown key ignored"),
                Err(reason) => {
                    return Ok(RemotingCommand::error(
                        req,
                        response::SYSTEM_ERROR,
                        format!("bad value '{}' for key '{}': {reason}", e.value, e.key),
                    ))
                }
            }
        }
        let path = next.config_store_file();
        super::kvconfig::write_atomically(&path, next.to_properties().as_bytes()).map_err(|e| {
            RemotingCommand::error(
                req,
                response::SYSTEM_ERROR,
                format!("cannot persist the config to {}: {e}", path.display()),
            )
        })?;
        info!(keys = ?entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), "NameServer config updated");
        *cfg = next;
        Ok(RemotingCommand::success(req))
    }
}
