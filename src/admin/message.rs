//! sendMessage, sendTransactionMessage, consumeMessage, queryMsgById, queryMsgByKey.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::time::Duration;

use bytes::Bytes;

use super::route::topic_route;
use super::{check, human_time, Admin, AdminError};
use crate::client::route::{master_of, read_addr};
pub use crate::client::send::DEFAULT_TOPIC;
use crate::client::send::{send_header, send_request};
use crate::client::transaction::end_after_send;
pub use crate::client::transaction::TxState;
use crate::protocol::body::TopicRouteData;
use crate::protocol::codes::{request, response};
use crate::protocol::header::{
    OffsetResponseHeader, PullMessageRequestHeader, PullMessageResponseHeader, QueryMessageRequestHeader,
    QueueRequestHeader, SendMessageResponseHeader, ViewMessageRequestHeader,
};
use crate::protocol::header::{QueryConsumerOffsetRequestHeader, UpdateConsumerOffsetRequestHeader};
use crate::protocol::message::{
    decode_offset_msg_id, decode_records, encode_properties, property, sysflag, MessageExt,
};
use crate::protocol::perm;
use crate::protocol::uniq::{new_uniq_key, random_u64};
use crate::remoting::RemotingCommand;

/// Producer group of sendMessage (Apache uses a throw-away group too).
pub const TOOLS_PRODUCER_GROUP: &str = "TOOLS_PRODUCER";
/// Consumer group of consumeMessage when `-g` is not given (Apache's `MixAll.TOOLS_CONSUMER_GROUP`).
pub const TOOLS_CONSUMER_GROUP: &str = "TOOLS_CONSUMER";

/// What sendMessage sends.
#[derive(Debug, Clone, Default)]
pub struct SendArgs {
    /// Topic.
    pub topic: String,
    /// Body (UTF-8 text).
    pub body: String,
    /// KEYS property.
    pub keys: Option<String>,
    /// TAGS property.
    pub tags: Option<String>,
    /// Target broker name.
    pub broker_name: Option<String>,
    /// Target queue (needs `broker_name`).
    pub queue_id: Option<i32>,
    /// Send a half (transactional) message of this producer group, then end it so.
    pub transaction: Option<(String, TxState)>,
}

/// The outcome of one send.
#[derive(Debug, Clone)]
pub struct SendResult {
    /// Broker name.
    pub broker_name: String,
    /// Queue.
    pub queue_id: i32,
    /// `SEND_OK`, `FLUSH_DISK_TIMEOUT`, `FLUSH_SLAVE_TIMEOUT` or `SLAVE_NOT_AVAILABLE`.
    pub status: &'static str,
    /// The UNIQ_KEY (client message id).
    pub msg_id: String,
    /// The offset message id the broker returned.
    pub offset_msg_id: String,
    /// Queue offset.
    pub queue_offset: i64,
}

/// The route to send with: the topic's, or (topic unknown) the template topic's for auto-creation.
async fn send_route(admin: &Admin, topic: &str) -> Result<(TopicRouteData, bool), AdminError> {
    match topic_route(admin, topic).await {
        Ok(r) => Ok((r, false)),
        Err(AdminError::Refused { code: response::TOPIC_NOT_EXIST, .. }) => {
            match topic_route(admin, DEFAULT_TOPIC).await {
                Ok(r) => Ok((r, true)),
                Err(_) => Err(AdminError::NotFound(format!(
                    "No route info of this topic: {topic} (and no {DEFAULT_TOPIC} route to auto-create it)"
                ))),
            }
        }
        Err(e) => Err(e),
    }
}

/// Sends one message (SEND_MESSAGE_V2) to a master queue: the given one, or one picked at random.
pub async fn send(admin: &Admin, args: &SendArgs) -> Result<SendResult, AdminError> {
    let topic = args.topic.trim();
    if topic.is_empty() {
        return Err(AdminError::Usage("the topic name (-t) is empty".into()));
    }
    if args.queue_id.is_some() && args.broker_name.is_none() {
        return Err(AdminError::Usage("Broker name (-b) must be set if the queue (-i) is chosen".into()));
    }
    let (route, auto) = send_route(admin, topic).await?;
    let mut candidates: Vec<(String, String, i32)> = Vec::new();
    for qd in &route.queue_datas {
        if qd.perm & perm::WRITE == 0 || args.broker_name.as_deref().is_some_and(|b| b != qd.broker_name) {
            continue;
        }
        let Some(addr) = route.broker_datas.iter().find(|b| b.broker_name == qd.broker_name).and_then(master_of) else {
            continue;
        };
        let n = if auto { qd.write_queue_nums.min(4) } else { qd.write_queue_nums };
        match args.queue_id {
            Some(q) => candidates.push((qd.broker_name.clone(), addr.to_string(), q)),
            None => candidates.extend((0..n).map(|q| (qd.broker_name.clone(), addr.to_string(), q))),
        }
    }
    let Some(idx) = (!candidates.is_empty()).then(|| (random_u64() % candidates.len() as u64) as usize) else {
        return Err(AdminError::NotFound(match &args.broker_name {
            Some(b) => format!("no writable master queue of topic {topic} on broker {b}"),
            None => format!("no writable master queue of topic {topic}"),
        }));
    };
    let (broker_name, addr, queue_id) = candidates.swap_remove(idx);
    let uniq = new_uniq_key();
    let mut props: Vec<(&str, &str)> = Vec::new();
    if let Some(k) = args.keys.as_deref().filter(|k| !k.is_empty()) {
        props.push((property::KEYS, k));
    }
    if let Some(t) = args.tags.as_deref().filter(|t| !t.is_empty()) {
        props.push((property::TAGS, t));
    }
    props.push((property::UNIQ_KEY, &uniq));
    props.push((property::WAIT, "true"));
    let group = args.transaction.as_ref().map_or(TOOLS_PRODUCER_GROUP, |(g, _)| g.as_str());
    if args.transaction.is_some() {
        props.push(("TRAN_MSG", "true"));
        props.push(("PGROUP", group));
    }
    let mut header = send_header(group, topic, queue_id, 4, Some(encode_properties(props)));
    header.bname = Some(broker_name.clone());
    if args.transaction.is_some() {
        header.sys_flag = sysflag::TRANSACTION_PREPARED;
    }
    let req = send_request(request::SEND_MESSAGE_V2, &header, Bytes::from(args.body.clone().into_bytes()));
    let resp = admin.invoke(&addr, req).await?;
    let status = match resp.code {
        response::SUCCESS => "SEND_OK",
        response::FLUSH_DISK_TIMEOUT => "FLUSH_DISK_TIMEOUT",
        response::FLUSH_SLAVE_TIMEOUT => "FLUSH_SLAVE_TIMEOUT",
        response::SLAVE_NOT_AVAILABLE => "SLAVE_NOT_AVAILABLE",
        _ => {
            check(resp)?;
            unreachable!("check() fails on a non-success code")
        }
    };
    let h: SendMessageResponseHeader = resp
        .decode_header()
        .map_err(|e| AdminError::BadAnswer { addr: addr.clone(), reason: format!("send response: {e}") })?;
    if let Some((group, state)) = &args.transaction {
        let end = end_after_send(group, topic, h.queue_offset, &h.msg_id, &uniq, *state).ok_or_else(|| {
            AdminError::BadAnswer { addr: addr.clone(), reason: format!("not an offset message id: {}", h.msg_id) }
        })?;
        admin.client.invoke_oneway(&addr, end, admin.timeout).await?;
    }
    Ok(SendResult {
        broker_name,
        queue_id: h.queue_id,
        status,
        msg_id: uniq,
        offset_msg_id: h.msg_id,
        queue_offset: h.queue_offset,
    })
}

/// `sendMessage`: Apache's table, plus the offset message id (for queryMsgById).
pub async fn send_message(admin: &Admin, args: &SendArgs) -> Result<String, AdminError> {
    let r = send(admin, args).await?;
    let mut out = format!(
        "{:<32}  {:<4}  {:<20}    {:<32}  {}\n",
        "#Broker Name", "#QID", "#Send Result", "#MsgId", "#OffsetMsgId"
    );
    let _ = writeln!(
        out,
        "{:<32}  {:<4}  {:<20}    {:<32}  {}",
        r.broker_name, r.queue_id, r.status, r.msg_id, r.offset_msg_id
    );
    Ok(out)
}

/// `sendTransactionMessage`: a half message, then END_TRANSACTION with `args.transaction`'s
/// state (an unknown state leaves it to the broker's check-back, which finds no producer online
/// and discards it after `transactionCheckMax` checks).
pub async fn send_transaction_message(admin: &Admin, args: &SendArgs) -> Result<String, AdminError> {
    let Some((_, state)) = &args.transaction else {
        return Err(AdminError::Usage("no transaction state".into()));
    };
    let mut out = send_message(admin, args).await?;
    let _ = writeln!(
        out,
        "Transaction: {}",
        match state {
            TxState::Commit => "COMMIT_MESSAGE",
            TxState::Rollback => "ROLLBACK_MESSAGE",
            TxState::Unknown => "UNKNOW",
        }
    );
    Ok(out)
}

/// Parses `-s commit|rollback|unknown`.
pub fn parse_tx_state(s: &str) -> Result<TxState, AdminError> {
    match s.to_ascii_lowercase().as_str() {
        "commit" | "commit_message" => Ok(TxState::Commit),
        "rollback" | "rollback_message" => Ok(TxState::Rollback),
        "unknown" | "unknow" => Ok(TxState::Unknown),
        _ => Err(AdminError::Usage(format!("transaction state '{s}': expected commit, rollback or unknown"))),
    }
}

/// What consumeMessage reads.
#[derive(Debug, Clone)]
pub struct ConsumeArgs {
    /// Topic.
    pub topic: String,
    /// Consumer group; when given, reading starts at the group's committed offset and the offsets
    /// reached are committed.
    pub group: Option<String>,
    /// Maximum number of messages printed.
    pub count: u64,
    /// Only this broker's queues.
    pub broker_name: Option<String>,
    /// Only this queue.
    pub queue_id: Option<i32>,
    /// Start offset (default: the group's offset with `-g`, else the queue's min offset).
    pub offset: Option<i64>,
    /// Tag expression (`TagA || TagB`, default `*`).
    pub tags: String,
    /// Overall time limit.
    pub timeout: Duration,
}

fn tag_matches(expr: &str, tags: Option<&str>) -> bool {
    let expr = expr.trim();
    if expr.is_empty() || expr == "*" {
        return true;
    }
    let Some(t) = tags else { return false };
    expr.split("||").map(str::trim).any(|e| e == t)
}

/// A message body as text (inflated if it was compressed by the producer).
fn body_text(m: &MessageExt) -> String {
    if m.sys_flag & sysflag::COMPRESSED != 0 {
        let mut out = Vec::new();
        if flate2::read::ZlibDecoder::new(&m.body[..]).read_to_end(&mut out).is_ok() {
            return String::from_utf8_lossy(&out).into_owned();
        }
    }
    String::from_utf8_lossy(&m.body).into_owned()
}

/// The id clients show: the UNIQ_KEY if any, else the offset message id.
fn client_msg_id(m: &MessageExt) -> &str {
    m.uniq_key().unwrap_or(&m.msg_id)
}

async fn queue_offset(admin: &Admin, addr: &str, code: i32, topic: &str, qid: i32) -> Result<i64, AdminError> {
    let h = QueueRequestHeader { topic: topic.to_string(), queue_id: qid, committed: None };
    let resp = admin.call(addr, RemotingCommand::request_with_header(code, &h)).await?;
    let o: OffsetResponseHeader = resp
        .decode_header()
        .map_err(|e| AdminError::BadAnswer { addr: addr.to_string(), reason: format!("offset: {e}") })?;
    Ok(o.offset)
}

async fn group_offset(
    admin: &Admin,
    addr: &str,
    group: &str,
    topic: &str,
    qid: i32,
) -> Result<Option<i64>, AdminError> {
    let h = QueryConsumerOffsetRequestHeader {
        consumer_group: group.to_string(),
        topic: topic.to_string(),
        queue_id: qid,
        set_zero_if_not_found: Some(false),
    };
    let resp = admin.invoke(addr, RemotingCommand::request_with_header(request::QUERY_CONSUMER_OFFSET, &h)).await?;
    if resp.code == response::QUERY_NOT_FOUND {
        return Ok(None);
    }
    let resp = check(resp)?;
    let o: OffsetResponseHeader = resp
        .decode_header()
        .map_err(|e| AdminError::BadAnswer { addr: addr.to_string(), reason: format!("consumer offset: {e}") })?;
    Ok(Some(o.offset).filter(|o| *o >= 0))
}

/// `consumeMessage`: pulls every selected queue from its start offset up to the max offset seen at
/// start, printing one `MSGID: ... BORN: ... BODY: ...` line per message; stops after `count`
/// messages, when every queue is drained, or at the time limit.
pub async fn consume_message(admin: &Admin, args: &ConsumeArgs) -> Result<String, AdminError> {
    let topic = args.topic.trim();
    if args.count == 0 {
        return Err(AdminError::Usage("please input a positive message number (-c)".into()));
    }
    if args.queue_id.is_some() && args.broker_name.is_none() {
        return Err(AdminError::Usage("Please set the brokerName (-b) before the queueId (-i)".into()));
    }
    let deadline = tokio::time::Instant::now() + args.timeout;
    let route = topic_route(admin, topic).await?;
    let group = args.group.as_deref().map(str::trim).unwrap_or(TOOLS_CONSUMER_GROUP);
    let mut queues: Vec<(String, String, String, i32)> = Vec::new(); // (brokerName, read addr, master addr, qid)
    for qd in &route.queue_datas {
        if args.broker_name.as_deref().is_some_and(|b| b != qd.broker_name) {
            continue;
        }
        let Some(bd) = route.broker_datas.iter().find(|b| b.broker_name == qd.broker_name) else { continue };
        let Some(addr) = read_addr(bd) else { continue };
        if qd.perm & perm::READ == 0 {
            continue;
        }
        let master = master_of(bd).unwrap_or(addr).to_string();
        match args.queue_id {
            Some(q) => queues.push((qd.broker_name.clone(), addr.to_string(), master, q)),
            None => queues
                .extend((0..qd.read_queue_nums).map(|q| (qd.broker_name.clone(), addr.to_string(), master.clone(), q))),
        }
    }
    if queues.is_empty() {
        return Err(AdminError::NotFound(match &args.broker_name {
            Some(b) => format!("no readable queue of topic {topic} on broker {b}"),
            None => format!("no readable queue of topic {topic}"),
        }));
    }
    let mut out = String::new();
    let mut left = args.count;
    let mut timed_out = false;
    for (broker, addr, master, qid) in &queues {
        if left == 0 {
            break;
        }
        let min = queue_offset(admin, addr, request::GET_MIN_OFFSET, topic, *qid).await?;
        let max = queue_offset(admin, addr, request::GET_MAX_OFFSET, topic, *qid).await?;
        let start = match (args.offset, &args.group) {
            (Some(o), _) => o,
            (None, Some(g)) => group_offset(admin, master, g.trim(), topic, *qid).await?.unwrap_or(min),
            (None, None) => min,
        };
        let mut cur = start.max(min);
        let before = cur;
        while cur < max && left > 0 {
            if tokio::time::Instant::now() >= deadline {
                timed_out = true;
                break;
            }
            let h = PullMessageRequestHeader {
                consumer_group: group.to_string(),
                topic: topic.to_string(),
                queue_id: *qid,
                queue_offset: cur,
                max_msg_nums: left.min(32) as i32,
                sys_flag: crate::protocol::header::pull_flag::SUBSCRIPTION,
                commit_offset: 0,
                suspend_timeout_millis: 0,
                subscription: Some(if args.tags.trim().is_empty() { "*".into() } else { args.tags.trim().to_string() }),
                sub_version: crate::util::now_millis(),
                expression_type: Some("TAG".into()),
                max_msg_bytes: None,
            };
            let resp = admin.invoke(addr, RemotingCommand::request_with_header(request::PULL_MESSAGE, &h)).await?;
            let code = resp.code;
            if !matches!(
                code,
                response::SUCCESS
                    | response::PULL_NOT_FOUND
                    | response::PULL_RETRY_IMMEDIATELY
                    | response::PULL_OFFSET_MOVED
            ) {
                check(resp)?;
                break;
            }
            let ph: PullMessageResponseHeader = resp
                .decode_header()
                .map_err(|e| AdminError::BadAnswer { addr: addr.clone(), reason: format!("pull response: {e}") })?;
            // With the count reached inside a batch, the queue is consumed only up to the last
            // message printed.
            let mut stop_at = None;
            if code == response::SUCCESS {
                for m in decode_records(&resp.body, false) {
                    if m.queue_offset < cur {
                        continue;
                    }
                    if left == 0 {
                        stop_at = Some(m.queue_offset);
                        break;
                    }
                    if !tag_matches(&args.tags, m.tags()) {
                        continue;
                    }
                    left -= 1;
                    let _ = writeln!(
                        out,
                        "MSGID: {} BROKER: {} QID: {} OFFSET: {} BORN: {} TAGS: [{}] KEYS: [{}] BODY: {}",
                        client_msg_id(&m),
                        broker,
                        m.queue_id,
                        m.queue_offset,
                        human_time(m.born_timestamp),
                        m.tags().unwrap_or(""),
                        m.keys().unwrap_or(""),
                        body_text(&m)
                    );
                }
            } else if code == response::PULL_NOT_FOUND {
                break;
            }
            if let Some(stop) = stop_at {
                cur = stop;
                break;
            }
            if ph.next_begin_offset <= cur {
                break;
            }
            cur = ph.next_begin_offset;
        }
        if args.group.is_some() && cur > before {
            let h = UpdateConsumerOffsetRequestHeader {
                consumer_group: group.to_string(),
                topic: topic.to_string(),
                queue_id: Some(*qid),
                commit_offset: Some(cur),
            };
            admin.call(master, RemotingCommand::request_with_header(request::UPDATE_CONSUMER_OFFSET, &h)).await?;
        }
        if timed_out {
            break;
        }
    }
    let n = args.count - left;
    let _ = writeln!(out, "Consumed {n} message(s) of topic {topic} from {} queue(s).", queues.len());
    if timed_out {
        let _ = writeln!(out, "Stopped at the time limit of {} ms.", args.timeout.as_millis());
    }
    Ok(out)
}

/// Apache's `QueryMsgByIdSubCommand.printMsg` fields (without the body file and message track).
pub fn describe_message(m: &MessageExt) -> String {
    let mut out = String::new();
    let props: BTreeMap<&String, &String> = m.properties.iter().collect();
    let props = props.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<20} {v}");
    };
    line("OffsetID:", m.msg_id.clone());
    line("Topic:", m.topic.clone());
    line("Tags:", format!("[{}]", m.tags().unwrap_or("null")));
    line("Keys:", format!("[{}]", m.keys().unwrap_or("null")));
    line("Queue ID:", m.queue_id.to_string());
    line("Queue Offset:", m.queue_offset.to_string());
    line("CommitLog Offset:", m.commit_log_offset.to_string());
    line("Reconsume Times:", m.reconsume_times.to_string());
    line("Born Timestamp:", human_time(m.born_timestamp));
    line("Store Timestamp:", human_time(m.store_timestamp));
    line("Born Host:", m.born_host.to_string());
    line("Store Host:", m.store_host.to_string());
    line("System Flag:", m.sys_flag.to_string());
    line("Properties:", format!("{{{props}}}"));
    line("Message Body:", body_text(m));
    out
}

/// VIEW_MESSAGE_BY_ID (33) at the address and offset an offset message id encodes.
pub async fn view_by_offset_id(admin: &Admin, id: &str) -> Result<MessageExt, AdminError> {
    let (addr, offset) = decode_offset_msg_id(id)
        .ok_or_else(|| AdminError::Usage(format!("{id} is not an offset message id (32 or 56 hex chars)")))?;
    let addr = addr.to_string();
    let h = ViewMessageRequestHeader { topic: None, offset };
    let resp = admin.call(&addr, RemotingCommand::request_with_header(request::VIEW_MESSAGE_BY_ID, &h)).await?;
    decode_records(&resp.body, false)
        .into_iter()
        .next()
        .ok_or_else(|| AdminError::BadAnswer { addr, reason: "no message record in the answer".into() })
}

/// QUERY_MESSAGE (12) on every broker group of the topic (master, else a slave); messages whose
/// KEYS contain `key` (or whose UNIQ_KEY is `key` when `unique`), deduplicated, in store order.
pub async fn query_by_key(
    admin: &Admin,
    topic: &str,
    key: &str,
    max_num: i32,
    begin: i64,
    end: i64,
    unique: bool,
) -> Result<Vec<MessageExt>, AdminError> {
    let route = topic_route(admin, topic).await?;
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let mut answered = 0;
    for bd in &route.broker_datas {
        let Some(addr) = read_addr(bd) else { continue };
        let h = QueryMessageRequestHeader {
            topic: topic.to_string(),
            key: key.to_string(),
            max_num,
            begin_timestamp: begin,
            end_timestamp: end,
        };
        let mut req = RemotingCommand::request_with_header(request::QUERY_MESSAGE, &h);
        if unique {
            req = req.with_ext("_UNIQUE_KEY_QUERY", "true");
        }
        let resp = match admin.invoke(addr, req).await {
            Ok(r) => r,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        if resp.code == response::QUERY_NOT_FOUND {
            answered += 1;
            continue;
        }
        let resp = match check(resp) {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{addr}: {e}"));
                continue;
            }
        };
        answered += 1;
        for m in decode_records(&resp.body, false) {
            let hit = if unique {
                m.uniq_key() == Some(key)
            } else {
                m.keys().is_some_and(|ks| ks.split(' ').any(|k| k == key))
            };
            if m.topic == topic && hit && seen.insert(m.msg_id.clone()) {
                found.push(m);
            }
        }
    }
    if answered == 0 && !errors.is_empty() {
        return Err(AdminError::NotFound(format!("query failed on every broker: {}", errors.join("; "))));
    }
    found.sort_by_key(|m| (m.store_timestamp, m.commit_log_offset));
    Ok(found)
}

/// `queryMsgByKey`: `#Message ID #QID #Offset` of the messages with that key.
pub async fn query_msg_by_key(
    admin: &Admin,
    topic: &str,
    key: &str,
    begin: Option<i64>,
    end: Option<i64>,
    max_num: Option<i32>,
) -> Result<String, AdminError> {
    let msgs = query_by_key(
        admin,
        topic.trim(),
        key.trim(),
        max_num.unwrap_or(64),
        begin.unwrap_or(0),
        end.unwrap_or(i64::MAX),
        false,
    )
    .await?;
    let mut out = format!("{:<50} {:>4} {:>40}\n", "#Message ID", "#QID", "#Offset");
    for m in &msgs {
        let _ = writeln!(out, "{:<50} {:>4} {:>40}", client_msg_id(m), m.queue_id, m.queue_offset);
    }
    Ok(out)
}

/// `queryMsgById`: an offset message id is looked up where it points; otherwise (or if that fails)
/// the id is taken as a UNIQ_KEY and queried on every broker of `topic` (which is then required).
pub async fn query_msg_by_id(admin: &Admin, id: &str, topic: Option<&str>) -> Result<String, AdminError> {
    let id = id.trim();
    let mut direct_err = None;
    if decode_offset_msg_id(id).is_some() {
        match view_by_offset_id(admin, id).await {
            Ok(m) if topic.is_none_or(|t| t.trim() == m.topic) => return Ok(describe_message(&m)),
            Ok(m) => direct_err = Some(AdminError::NotFound(format!("{id} is a message of topic {}", m.topic))),
            Err(e) => direct_err = Some(e),
        }
    }
    let Some(topic) = topic.map(str::trim) else {
        return Err(direct_err.unwrap_or_else(|| {
            AdminError::Usage(format!(
                "{id} is not an offset message id; to look it up as a message key (UNIQ_KEY) give the topic (-t)"
            ))
        }));
    };
    let mut out = String::new();
    let msgs = query_by_key(admin, topic, id, 32, 0, i64::MAX, true).await?;
    if msgs.is_empty() {
        return Err(AdminError::NotFound(format!("Message not found: {id} in topic {topic}")));
    }
    for (i, m) in msgs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&describe_message(m));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert!(tag_matches("*", None));
        assert!(tag_matches("A || B", Some("B")));
        assert!(!tag_matches("A", Some("B")));
        assert!(!tag_matches("A", None));
    }
}
