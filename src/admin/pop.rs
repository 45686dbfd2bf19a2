//! POP commands: `setConsumeMode` (Apache's name and options) and, for manual testing,
//! `popMessage` / `ackMessage` against one broker.

use std::fmt::Write as _;

use super::cluster::target_addrs;
use super::{check, Admin, AdminError};
use crate::protocol::codes::request;
use crate::protocol::header::{AckMessageRequestHeader, PopMessageRequestHeader, PopMessageResponseHeader};
use crate::protocol::message::decode_records;
use crate::protocol::pop::SetMessageRequestModeRequestBody;
use crate::remoting::RemotingCommand;

/// `setConsumeMode -t -g -m PULL|POP [-q n]` on one broker (`-b`) or every master of a cluster (`-c`).
pub async fn set_consume_mode(
    admin: &Admin,
    broker_addr: Option<&str>,
    cluster: Option<&str>,
    topic: &str,
    group: &str,
    mode: &str,
    pop_share_queue_num: i32,
) -> Result<String, AdminError> {
    let mode = mode.trim().to_ascii_uppercase();
    if mode != "PULL" && mode != "POP" {
        return Err(AdminError::Usage(format!("mode must be PULL or POP, not '{mode}'")));
    }
    let body = SetMessageRequestModeRequestBody {
        topic: topic.to_string(),
        consumer_group: group.to_string(),
        mode: mode.clone(),
        pop_share_queue_num,
    };
    let json = serde_json::to_vec(&body).map_err(|e| AdminError::Usage(e.to_string()))?;
    let mut out = String::new();
    for addr in target_addrs(admin, broker_addr, cluster, true).await? {
        let req = RemotingCommand::request(request::SET_MESSAGE_REQUEST_MODE).with_body(json.clone());
        check(admin.invoke(&addr, req).await?)?;
        let _ = writeln!(out, "set consume mode to {addr} success.");
    }
    let _ = write!(out, "topic[{topic}] group[{group}] consume mode[{mode}] popShareQueueNum[{pop_share_queue_num}]");
    Ok(out)
}

/// `popMessage -b addr -t -g [-q queue -c count -i invisibleMs -p pollMs --order]`: pops and prints each
/// message with the extra info to ack it by.
#[allow(clippy::too_many_arguments)]
pub async fn pop_message(
    admin: &Admin,
    addr: &str,
    topic: &str,
    group: &str,
    queue_id: i32,
    count: i32,
    invisible_ms: i64,
    poll_ms: i64,
    order: bool,
) -> Result<String, AdminError> {
    let h = PopMessageRequestHeader {
        consumer_group: group.to_string(),
        topic: topic.to_string(),
        queue_id,
        max_msg_nums: count,
        invisible_time: invisible_ms,
        poll_time: poll_ms,
        born_time: crate::util::now_millis(),
        init_mode: 0,
        exp_type: Some("TAG".into()),
        exp: Some("*".into()),
        order: Some(order),
        attempt_id: None,
    };
    let req = RemotingCommand::request_with_header(request::POP_MESSAGE, &h);
    let wait = std::time::Duration::from_millis(poll_ms.max(0) as u64) + admin.timeout;
    let resp = admin.client.invoke(addr, req, wait).await?;
    if resp.code == crate::protocol::codes::response::POLLING_TIMEOUT {
        return Ok("no message\n".into());
    }
    let resp = check(resp)?;
    let rh: PopMessageResponseHeader = resp.decode_header().map_err(|e| AdminError::Usage(e.to_string()))?;
    let config = super::get_broker_config(&admin.client, addr).await?;
    let broker_name = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("brokerName=").map(str::to_string))
        .unwrap_or_else(|| "broker".into());
    let mut out = String::new();
    for m in decode_records(&resp.body, false) {
        let extra = extra_info_of(&rh, &m, &broker_name);
        let _ = writeln!(
            out,
            "queueId={} offset={} reconsumeTimes={} extraInfo=\"{}\" body={}",
            m.queue_id,
            m.queue_offset,
            m.reconsume_times,
            extra,
            String::from_utf8_lossy(&m.body)
        );
    }
    Ok(out)
}

/// The extra info a client builds for a popped message: the message's POP_CK if the broker set one,
/// else from the response header (Apache's client: `ExtraInfoUtil.buildExtraInfo`). `broker_name`
/// is used when the header does not say (it never does; the client knows whom it asked).
pub fn extra_info_of(
    rh: &PopMessageResponseHeader,
    m: &crate::protocol::message::MessageExt,
    broker_name: &str,
) -> String {
    if let Some(ck) = m.property("POP_CK") {
        return ck.to_string();
    }
    let flag = crate::protocol::header::retry_flag(&m.topic);
    let key = format!("{flag} {} ", m.queue_id);
    let start = rh
        .start_offset_info
        .as_deref()
        .unwrap_or("")
        .split(';')
        .find_map(|e| e.strip_prefix(&key).and_then(|s| s.parse::<i64>().ok()))
        .unwrap_or(m.queue_offset);
    format!(
        "{start} {} {} {} {flag} {broker_name} {} {}",
        rh.pop_time, rh.invisible_time, rh.revive_qid, m.queue_id, m.queue_offset
    )
}

/// `ackMessage -b addr -t -g -q queue -o offset -e extraInfo`.
pub async fn ack_message(
    admin: &Admin,
    addr: &str,
    topic: &str,
    group: &str,
    queue_id: i32,
    offset: i64,
    extra_info: &str,
) -> Result<String, AdminError> {
    let parsed = crate::protocol::header::ExtraInfo::parse(extra_info)
        .ok_or_else(|| AdminError::Usage(format!("extraInfo '{extra_info}' is not ckOffset popTime invisibleTime reviveQid retry brokerName queueId [offset]")))?;
    let h = AckMessageRequestHeader {
        consumer_group: group.to_string(),
        topic: crate::protocol::header::real_topic(topic, group, &parsed.retry),
        queue_id,
        extra_info: extra_info.to_string(),
        offset,
    };
    check(admin.invoke(addr, RemotingCommand::request_with_header(request::ACK_MESSAGE, &h)).await?)?;
    Ok(format!("ack {topic} queue {queue_id} offset {offset}: OK\n"))
}
