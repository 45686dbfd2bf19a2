//! JSON bodies of the NameServer requests, with fastjson's field names (spec: namesrv.md §3, §5-§8).
//!
//! Fields are declared in alphabetical order so that serde writes them the way fastjson does.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::json::{self, null_default};
use crate::protocol::perm;
use crate::util::now_millis;

/// `MQVersion.Version.V3_0_11`: from this version on REGISTER_BROKER carries a [`RegisterBrokerBody`].
pub const V3_0_11: i32 = 37;
/// `MQVersion.Version.V4_9_4`: from this version on route data is sent as standard JSON.
pub const V4_9_4: i32 = 401;

/// `MQVersion.getVersionDesc`: the name of a client's `version` number (`479` -> `V5_3_3`).
/// From `V3_0_1_SNAPSHOT` (14) on, Apache's enum lists each release after its snapshot, in order
/// up to `V9_9_9`; older and unknown numbers are shown as the number.
pub fn version_desc(version: i32) -> String {
    if !(14..14 + 2 * 699).contains(&version) {
        return if version >= 14 + 2 * 699 { "HIGHER_VERSION".into() } else { version.to_string() };
    }
    let n = (version - 14) / 2 + 1;
    let (x, y, z) = (3 + n / 100, n / 10 % 10, n % 10);
    let snapshot = if (version - 14) % 2 == 0 { "_SNAPSHOT" } else { "" };
    format!("V{x}_{y}_{z}{snapshot}")
}
/// `MQVersion.Version.V5_0_0`: from this version on a compressed register body has a mapping section.
pub const V5_0_0: i32 = 413;

/// The field names whose object values fastjson writes with bare integer keys (`Map<Long,String>`).
pub const BARE_KEY_FIELDS: &[&str] = &["brokerAddrs"];

/// A version stamp of a broker's metadata (`DataVersion`): a timestamp and a counter bumped on
/// every change. [`Default`] is the all-zero stamp a missing JSON field reads as; [`DataVersion::new`]
/// is Java's `new DataVersion()` (stamped now).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    /// Incremented on every change.
    pub counter: i64,
    /// Bumped by controller-mode role changes.
    pub state_version: i64,
    /// Time of the last change (ms).
    pub timestamp: i64,
}

impl DataVersion {
    /// A fresh version stamped now.
    pub fn new() -> Self {
        DataVersion { counter: 0, state_version: 0, timestamp: now_millis() }
    }
    /// Bumps the counter and the timestamp.
    pub fn next(&mut self) {
        self.counter += 1;
        self.timestamp = now_millis();
    }
    /// The JSON form (`{"counter":N,"stateVersion":0,"timestamp":ms}`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn default_perm() -> i32 {
    perm::READ | perm::WRITE
}
fn default_queue_nums() -> i32 {
    16
}
fn default_filter_type() -> String {
    "SINGLE_TAG".to_string()
}

/// One topic's config, as fastjson writes Apache's `TopicConfig` (fields in alphabetical order);
/// `topics.json`, REGISTER_BROKER and the admin requests all carry this shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfig {
    /// Topic attributes (`message.type`, `queue.type`, ...), stored without the `+` sign.
    #[serde(default, deserialize_with = "null_default")]
    pub attributes: BTreeMap<String, String>,
    /// Ordered (FIFO) topic.
    #[serde(default, deserialize_with = "null_default")]
    pub order: bool,
    /// Permission bits ([`perm`]; `READ | WRITE` by default).
    #[serde(default = "default_perm")]
    pub perm: i32,
    /// Readable queues.
    #[serde(default = "default_queue_nums")]
    pub read_queue_nums: i32,
    /// `SINGLE_TAG` or `MULTI_TAG`.
    #[serde(default = "default_filter_type")]
    pub topic_filter_type: String,
    /// The topic.
    #[serde(default, deserialize_with = "null_default")]
    pub topic_name: String,
    /// `TopicSysFlag` bits (unit flags).
    #[serde(default, deserialize_with = "null_default")]
    pub topic_sys_flag: i32,
    /// Writable queues.
    #[serde(default = "default_queue_nums")]
    pub write_queue_nums: i32,
}

impl TopicConfig {
    /// Apache's `new TopicConfig(name)`: 16/16 queues, perm RW, SINGLE_TAG.
    pub fn new(topic_name: impl Into<String>) -> Self {
        TopicConfig {
            attributes: BTreeMap::new(),
            order: false,
            perm: default_perm(),
            read_queue_nums: default_queue_nums(),
            topic_filter_type: default_filter_type(),
            topic_name: topic_name.into(),
            topic_sys_flag: 0,
            write_queue_nums: default_queue_nums(),
        }
    }
    /// With both queue counts set.
    pub fn with_queues(mut self, read: i32, write: i32) -> Self {
        self.read_queue_nums = read;
        self.write_queue_nums = write;
        self
    }
    /// With the permission bits set.
    pub fn with_perm(mut self, p: i32) -> Self {
        self.perm = p;
        self
    }
    /// `TopicConfig.encode()`: `name SP readQueueNums SP writeQueueNums SP perm SP filterType SP attributesJson`
    /// (the compressed register body's per-topic form; sysflag and order are not carried).
    pub fn encode_compact(&self) -> String {
        let attrs = serde_json::to_string(&self.attributes).unwrap_or_else(|_| "{}".to_string());
        format!(
            "{} {} {} {} {} {}",
            self.topic_name, self.read_queue_nums, self.write_queue_nums, self.perm, self.topic_filter_type, attrs
        )
    }

    /// The inverse of [`TopicConfig::encode_compact`].
    pub fn decode_compact(text: &str) -> Result<Self, BodyError> {
        let parts: Vec<&str> = text.splitn(6, ' ').collect();
        if parts.len() < 5 {
            return Err(BodyError(format!("topic config '{text}' has fewer than 5 fields")));
        }
        let num = |i: usize, what: &str| -> Result<i32, BodyError> {
            parts[i].parse().map_err(|_| BodyError(format!("topic config '{text}': bad {what} '{}'", parts[i])))
        };
        let mut tc = TopicConfig::new(parts[0]);
        tc.read_queue_nums = num(1, "readQueueNums")?;
        tc.write_queue_nums = num(2, "writeQueueNums")?;
        tc.perm = num(3, "perm")?;
        tc.topic_filter_type = parts[4].to_string();
        if let Some(attrs) = parts.get(5).filter(|a| !a.trim().is_empty()) {
            tc.attributes = json::from_str_lenient(attrs)
                .map_err(|e| BodyError(format!("topic config '{text}': bad attributes: {e}")))?;
        }
        Ok(tc)
    }
}

/// A broker's topic table with its version (`TopicConfigSerializeWrapper` /
/// `TopicConfigAndMappingSerializeWrapper`, and `topics.json`; the static-topic mapping parts are kept opaque).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfigSerializeWrapper {
    /// Version of the topic table.
    #[serde(default)]
    pub data_version: DataVersion,
    /// Version of the static-topic mappings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping_data_version: Option<DataVersion>,
    /// topic → config.
    #[serde(default, deserialize_with = "null_default")]
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    /// topic → mapping detail (static topics; opaque here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_detail_map: Option<BTreeMap<String, serde_json::Value>>,
    /// topic → `TopicQueueMappingInfo` (static topics; opaque here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_info_map: Option<BTreeMap<String, serde_json::Value>>,
}

/// A body that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// The body of REGISTER_BROKER (`RegisterBrokerBody`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBrokerBody {
    /// Filter server addresses.
    #[serde(default)]
    pub filter_server_list: Vec<String>,
    /// The broker's topics.
    #[serde(default)]
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
}

impl RegisterBrokerBody {
    /// Reads a body as the NameServer does: `version` < V3_0_11 ⇒ bare wrapper JSON; else plain JSON
    /// or (if `compressed`) the zlib-compressed binary form. An empty body is an empty registration.
    pub fn decode(body: &[u8], compressed: bool, version: i32) -> Result<Self, BodyError> {
        if body.is_empty() {
            return Ok(RegisterBrokerBody::default());
        }
        if version < V3_0_11 {
            let wrapper = json::from_slice_lenient(body)
                .map_err(|e| BodyError(format!("TopicConfigSerializeWrapper does not parse: {e}")))?;
            return Ok(RegisterBrokerBody { filter_server_list: Vec::new(), topic_config_serialize_wrapper: wrapper });
        }
        if !compressed {
            return json::from_slice_lenient(body)
                .map_err(|e| BodyError(format!("RegisterBrokerBody does not parse: {e}")));
        }
        Self::decode_compressed(body, version)
    }

    fn decode_compressed(body: &[u8], version: i32) -> Result<Self, BodyError> {
        let mut data = Vec::new();
        flate2::read::ZlibDecoder::new(body)
            .read_to_end(&mut data)
            .map_err(|e| BodyError(format!("compressed register body does not inflate: {e}")))?;
        let mut r = Reader { data: &data, pos: 0 };
        let dv = r.chunk("dataVersion")?;
        let data_version: DataVersion =
            json::from_slice_lenient(dv).map_err(|e| BodyError(format!("dataVersion does not parse: {e}")))?;
        let count = r.int("topic count")?;
        let mut table = BTreeMap::new();
        for _ in 0..count {
            let bytes = r.chunk("topic config")?;
            let text = std::str::from_utf8(bytes).map_err(|_| BodyError("topic config is not UTF-8".into()))?;
            let tc = TopicConfig::decode_compact(text)?;
            table.insert(tc.topic_name.clone(), tc);
        }
        let filters = r.chunk("filterServerList")?;
        let filter_server_list: Vec<String> = if filters.is_empty() {
            Vec::new()
        } else {
            json::from_slice_lenient(filters).map_err(|e| BodyError(format!("filterServerList does not parse: {e}")))?
        };
        let mut mapping = BTreeMap::new();
        // Brokers before 5.0.0 do not write the mapping section; tolerate its absence either way.
        if version >= V5_0_0 && !r.at_end() {
            let n = r.int("mapping count")?;
            for _ in 0..n {
                let bytes = r.chunk("topic queue mapping")?;
                let v: serde_json::Value =
                    json::from_slice_lenient(bytes).map_err(|e| BodyError(format!("mapping does not parse: {e}")))?;
                let topic = v.get("topic").and_then(|t| t.as_str()).unwrap_or_default().to_string();
                mapping.insert(topic, v);
            }
        }
        Ok(RegisterBrokerBody {
            filter_server_list,
            topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                data_version,
                mapping_data_version: None,
                topic_config_table: table,
                topic_queue_mapping_detail_map: None,
                topic_queue_mapping_info_map: Some(mapping),
            },
        })
    }

    /// Writes the body as a broker does: plain JSON, or (if `compressed`) the zlib binary form
    /// (`version` ≥ V5_0_0 adds the mapping section).
    pub fn encode(&self, compressed: bool, version: i32) -> Vec<u8> {
        if !compressed {
            return serde_json::to_vec(self).unwrap_or_default();
        }
        let w = &self.topic_config_serialize_wrapper;
        let mut out = Vec::new();
        put_chunk(&mut out, &serde_json::to_vec(&w.data_version).unwrap_or_default());
        out.extend_from_slice(&(w.topic_config_table.len() as i32).to_be_bytes());
        for tc in w.topic_config_table.values() {
            put_chunk(&mut out, tc.encode_compact().as_bytes());
        }
        put_chunk(&mut out, &serde_json::to_vec(&self.filter_server_list).unwrap_or_default());
        if version >= V5_0_0 {
            let empty = BTreeMap::new();
            let m = w.topic_queue_mapping_info_map.as_ref().unwrap_or(&empty);
            out.extend_from_slice(&(m.len() as i32).to_be_bytes());
            for v in m.values() {
                put_chunk(&mut out, &serde_json::to_vec(v).unwrap_or_default());
            }
        }
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing into a Vec cannot fail.
        let _ = enc.write_all(&out);
        enc.finish().unwrap_or_default()
    }
}

fn put_chunk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn int(&mut self, what: &str) -> Result<usize, BodyError> {
        let b = self
            .data
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| BodyError(format!("compressed register body ends before the {what}")))?;
        self.pos += 4;
        let v = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        usize::try_from(v).map_err(|_| BodyError(format!("compressed register body: negative {what} {v}")))
    }
    fn chunk(&mut self, what: &str) -> Result<&'a [u8], BodyError> {
        let n = self.int(what)?;
        let b = self
            .data
            .get(self.pos..self.pos + n)
            .ok_or_else(|| BodyError(format!("compressed register body ends inside the {what}")))?;
        self.pos += n;
        Ok(b)
    }
}

/// A topic's queues on one broker group (`QueueData`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueData {
    /// The broker group.
    pub broker_name: String,
    /// Permission bits.
    #[serde(default)]
    pub perm: i32,
    /// Number of read queues.
    #[serde(default)]
    pub read_queue_nums: i32,
    /// Topic system flags.
    #[serde(default)]
    pub topic_sys_flag: i32,
    /// Number of write queues.
    #[serde(default)]
    pub write_queue_nums: i32,
}

/// A broker group: its members by broker id (`BrokerData`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    /// brokerId → `ip:port` (0 = master).
    #[serde(default)]
    pub broker_addrs: BTreeMap<i64, String>,
    /// The group name.
    pub broker_name: String,
    /// The cluster.
    #[serde(default)]
    pub cluster: String,
    /// Whether a slave may act as master when the master is gone.
    #[serde(default)]
    pub enable_acting_master: bool,
    /// The zone, if the broker reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

/// The route of one topic (`TopicRouteData`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRouteData {
    /// The groups that hold queues of the topic.
    #[serde(default)]
    pub broker_datas: Vec<BrokerData>,
    /// brokerAddr → filter servers.
    #[serde(default)]
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    /// Order-topic configuration (KV namespace `ORDER_TOPIC_CONFIG`), when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    /// The topic's queues per group.
    #[serde(default)]
    pub queue_datas: Vec<QueueData>,
    /// Static-topic mappings by broker (opaque here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_by_broker: Option<BTreeMap<String, serde_json::Value>>,
}

/// The body of GET_BROKER_CLUSTER_INFO (`ClusterInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// brokerName → group.
    #[serde(default)]
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    /// cluster → broker names.
    #[serde(default)]
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

/// A list of topics (`TopicList`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicList {
    /// Some broker address (system topic list only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
    /// The topics.
    #[serde(default)]
    pub topic_list: BTreeSet<String>,
}

/// A string map (`KVTable`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KvTable {
    /// The entries.
    #[serde(default)]
    pub table: BTreeMap<String, String>,
}

/// The members of one broker group (`BrokerMemberGroup`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerMemberGroup {
    /// brokerId → address.
    #[serde(default)]
    pub broker_addrs: BTreeMap<i64, String>,
    /// The group name.
    #[serde(default)]
    pub broker_name: String,
    /// The cluster.
    #[serde(default)]
    pub cluster: String,
}

/// The body of GET_BROKER_MEMBER_GROUP's response (`GetBrokerMemberGroupResponseBody`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetBrokerMemberGroupResponseBody {
    /// The group.
    pub broker_member_group: BrokerMemberGroup,
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_desc_names_apache_versions() {
        assert_eq!(version_desc(479), "V5_3_3");
        assert_eq!(version_desc(V4_9_4), "V4_9_4");
        assert_eq!(version_desc(14), "V3_0_1_SNAPSHOT");
        assert_eq!(version_desc(1411), "V9_9_9");
        assert_eq!(version_desc(1412), "HIGHER_VERSION");
        assert_eq!(version_desc(3), "3");
    }

    use super::*;

    fn sample() -> RegisterBrokerBody {
        let mut tc = TopicConfig::new("TopicA");
        tc.read_queue_nums = 4;
        tc.write_queue_nums = 8;
        tc.perm = 6;
        tc.attributes.insert("+message.type".into(), "NORMAL".into());
        let mut b = RegisterBrokerBody::default();
        b.topic_config_serialize_wrapper.data_version = DataVersion { counter: 3, state_version: 0, timestamp: 1700 };
        b.topic_config_serialize_wrapper.topic_config_table.insert("TopicA".into(), tc);
        b.topic_config_serialize_wrapper.topic_config_table.insert("TopicB".into(), TopicConfig::new("TopicB"));
        b.filter_server_list.push("1.2.3.4:1".into());
        b
    }

    #[test]
    fn compressed_round_trip() {
        let b = sample();
        for version in [V3_0_11, V5_0_0, 479] {
            let bytes = b.encode(true, version);
            assert_eq!(&bytes[..1], &[0x78], "zlib header");
            let back = RegisterBrokerBody::decode(&bytes, true, version).expect("decodes");
            assert_eq!(back.filter_server_list, b.filter_server_list);
            let w = &back.topic_config_serialize_wrapper;
            assert_eq!(w.data_version, b.topic_config_serialize_wrapper.data_version);
            assert_eq!(w.topic_config_table, b.topic_config_serialize_wrapper.topic_config_table);
        }
    }

    #[test]
    fn plain_and_old_forms() {
        let b = sample();
        let back = RegisterBrokerBody::decode(&b.encode(false, 479), false, 479).expect("decodes");
        assert_eq!(back, b);
        let old = serde_json::to_vec(&b.topic_config_serialize_wrapper).expect("json");
        let back = RegisterBrokerBody::decode(&old, false, 36).expect("decodes");
        assert_eq!(back.topic_config_serialize_wrapper, b.topic_config_serialize_wrapper);
        assert!(RegisterBrokerBody::decode(b"not zlib", true, 479).is_err());
        let empty = RegisterBrokerBody::decode(b"", false, 479).expect("empty is fine");
        assert_eq!(empty.topic_config_serialize_wrapper.data_version, DataVersion::default());
    }

    #[test]
    fn compact_topic_config() {
        let tc = TopicConfig::decode_compact("T 4 8 6 SINGLE_TAG {\"+a\":\"b\"}").expect("decodes");
        assert_eq!((tc.read_queue_nums, tc.write_queue_nums, tc.perm), (4, 8, 6));
        assert_eq!(tc.attributes.get("+a").map(String::as_str), Some("b"));
        let tc = TopicConfig::decode_compact("T 1 2 4 MULTI_TAG").expect("five fields are enough");
        assert_eq!(tc.topic_filter_type, "MULTI_TAG");
        assert!(TopicConfig::decode_compact("T 1 x 4 MULTI_TAG").is_err());
    }

    #[test]
    fn route_data_forms() {
        let rd = TopicRouteData {
            broker_datas: vec![BrokerData {
                broker_addrs: [(0, "192.168.0.10:10911".to_string()), (1, "192.168.0.11:10911".to_string())]
                    .into_iter()
                    .collect(),
                broker_name: "broker-a".into(),
                cluster: "DefaultCluster".into(),
                enable_acting_master: false,
                zone_name: None,
            }],
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                perm: 6,
                read_queue_nums: 4,
                topic_sys_flag: 0,
                write_queue_nums: 4,
            }],
            ..Default::default()
        };
        let plain = json::to_fastjson_string(&rd, BARE_KEY_FIELDS).expect("json");
        assert_eq!(
            plain,
            r#"{"brokerDatas":[{"brokerAddrs":{0:"192.168.0.10:10911",1:"192.168.0.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        );
        let back: TopicRouteData = json::from_str_lenient(&plain).expect("parses");
        assert_eq!(back, rd);
    }
}
