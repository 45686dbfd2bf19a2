//! The message wire codec: record decoding (a pulled body is the stored record bytes; the store's
//! recovery uses the same decoder), properties strings, Java `String.hashCode` tag hash, offset
//! message ids, batch bodies. Encoding a record into the commitlog is the store's
//! (`store::message`).
//!
//! Byte layout: `/work/shared/spec/message-format.md` §1–§6 (all integers big-endian).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;

/// Record magic code, version 1 (1-byte topic length).
pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// Record magic code, version 2 (2-byte topic length).
pub const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// Magic of the BLANK record that fills the end of a commitlog file.
pub const BLANK_MAGIC: i32 = 0xCBD4_3194_u32 as i32;
/// Separator between a property name and its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Terminator after every property pair.
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// Offset of TOTALSIZE.
pub const POS_TOTAL_SIZE: usize = 0;
/// Offset of MAGICCODE.
pub const POS_MAGIC: usize = 4;
/// Offset of BODYCRC.
pub const POS_BODY_CRC: usize = 8;
/// Offset of QUEUEID.
pub const POS_QUEUE_ID: usize = 12;
/// Offset of FLAG.
pub const POS_FLAG: usize = 16;
/// Offset of QUEUEOFFSET.
pub const POS_QUEUE_OFFSET: usize = 20;
/// Offset of PHYSICALOFFSET.
pub const POS_PHYSICAL_OFFSET: usize = 28;
/// Offset of SYSFLAG.
pub const POS_SYS_FLAG: usize = 36;
/// Offset of BORNTIMESTAMP.
pub const POS_BORN_TIMESTAMP: usize = 40;
/// Offset of BORNHOST.
pub const POS_BORN_HOST: usize = 48;

/// Message system flag bits (`MessageSysFlag`).
pub mod sysflag {
    /// Body compressed by the producer.
    pub const COMPRESSED: i32 = 0x1;
    /// Multi-tags topic filter.
    pub const MULTI_TAGS: i32 = 0x2;
    /// Not a transaction message.
    pub const TRANSACTION_NOT_TYPE: i32 = 0;
    /// Half (prepared) transaction message.
    pub const TRANSACTION_PREPARED: i32 = 0x4;
    /// Committed transaction message.
    pub const TRANSACTION_COMMIT: i32 = 0x8;
    /// Rolled back transaction message.
    pub const TRANSACTION_ROLLBACK: i32 = 0xC;
    /// Born host is IPv6.
    pub const BORNHOST_V6: i32 = 0x10;
    /// Store host is IPv6.
    pub const STOREHOST_V6: i32 = 0x20;
    /// Batch message that needs unwrapping.
    pub const NEED_UNWRAP: i32 = 0x40;
    /// Inner batch.
    pub const INNER_BATCH: i32 = 0x80;

    /// `flag & 0xC`.
    pub fn transaction_value(flag: i32) -> i32 {
        flag & 0xC
    }
}

/// Reserved property names (`MessageConst`) the store itself uses.
pub mod property {
    /// User keys separated by one space; indexed.
    pub const KEYS: &str = "KEYS";
    /// Tag; tagsCode = Java hashCode.
    pub const TAGS: &str = "TAGS";
    /// "false" ⇒ do not wait for a sync flush.
    pub const WAIT: &str = "WAIT";
    /// Delay level of a scheduled message.
    pub const DELAY: &str = "DELAY";
    /// Client unique id; indexed.
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    /// Original topic of delayed / half / retry messages.
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    /// Original queue id of delayed / half / retry messages.
    pub const REAL_QID: &str = "REAL_QID";
    /// Timer message: absolute deliver time (epoch ms), set by the client.
    pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
    /// Timer message: delay in seconds, set by the client.
    pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
    /// Timer message: delay in ms, set by the client.
    pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
    /// Timer message: the rounded deliver time the broker set (its presence means "converted").
    pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
    /// Timer message: when it entered the wheel (ms).
    pub const TIMER_ENQUEUE_MS: &str = "TIMER_ENQUEUE_MS";
    /// Timer message: when it left the wheel (ms).
    pub const TIMER_DEQUEUE_MS: &str = "TIMER_DEQUEUE_MS";
    /// Timer message: how often it was parked again before its time.
    pub const TIMER_ROLL_TIMES: &str = "TIMER_ROLL_TIMES";
    /// Timer delete marker: `<topic>+<uniqKey>` of the message it cancels.
    pub const TIMER_DEL_UNIQKEY: &str = "TIMER_DEL_UNIQKEY";
}

/// Record format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageVersion {
    /// Magic `0xDAA320A7`, 1-byte topic length.
    V1,
    /// Magic `0xDAA320AB`, 2-byte topic length.
    V2,
}

impl MessageVersion {
    /// The magic code written for this version.
    pub fn magic(self) -> i32 {
        match self {
            MessageVersion::V1 => MAGIC_V1,
            MessageVersion::V2 => MAGIC_V2,
        }
    }
    /// Size of the topic length field.
    pub fn topic_len_size(self) -> usize {
        match self {
            MessageVersion::V1 => 1,
            MessageVersion::V2 => 2,
        }
    }
    /// Version for a magic code, if it is a message magic.
    pub fn from_magic(magic: i32) -> Option<Self> {
        match magic {
            MAGIC_V1 => Some(MessageVersion::V1),
            MAGIC_V2 => Some(MessageVersion::V2),
            _ => None,
        }
    }
    /// Apache's choice: v2 when `auto` and the topic is longer than 127 (we also switch when the UTF-8
    /// length exceeds 127, which a 1-byte length could not hold).
    pub fn for_topic(topic: &str, auto: bool) -> Self {
        if topic.len() > 127 || (auto && topic.chars().count() > 127) {
            MessageVersion::V2
        } else {
            MessageVersion::V1
        }
    }
}

/// Java `String.hashCode` over UTF-16 code units (32-bit wrapping).
pub fn java_string_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for u in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(u as i32);
    }
    h
}

/// tagsCode of a TAGS value: hashCode sign-extended; empty/absent ⇒ 0.
pub fn tags_code(tags: Option<&str>) -> i64 {
    match tags {
        Some(t) if !t.is_empty() => java_string_hash(t) as i64,
        _ => 0,
    }
}

/// Masked CRC32 (IEEE) of a body as stored in BODYCRC.
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

/// Encodes properties as `name 0x01 value 0x02` for each pair.
pub fn encode_properties<K: AsRef<str>, V: AsRef<str>>(props: impl IntoIterator<Item = (K, V)>) -> String {
    let mut s = String::new();
    for (k, v) in props {
        let (k, v) = (k.as_ref(), v.as_ref());
        if s.capacity() == 0 {
            // Room for a few usual properties at once rather than doubling from 8 bytes.
            s.reserve(96.max(k.len() + v.len() + 2));
        }
        s.push_str(k);
        s.push(NAME_VALUE_SEPARATOR);
        s.push_str(v);
        s.push(PROPERTY_SEPARATOR);
    }
    s
}

/// Iterates the well-formed `(name, value)` pairs of a properties string (Apache's lenient rules).
pub fn iter_properties(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split(PROPERTY_SEPARATOR).filter_map(|seg| {
        if seg.len() < 3 {
            return None;
        }
        let i = seg.find(NAME_VALUE_SEPARATOR)?;
        if i == 0 || i + 1 >= seg.len() {
            return None;
        }
        Some((&seg[..i], &seg[i + 1..]))
    })
}

/// Parses a properties string into a map (malformed segments are dropped).
pub fn parse_properties(s: &str) -> HashMap<String, String> {
    iter_properties(s).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Finds one property without building a map.
pub fn find_property<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let n = name.as_bytes();
    if n.is_empty() || n.contains(&(NAME_VALUE_SEPARATOR as u8)) || n.contains(&(PROPERTY_SEPARATOR as u8)) {
        return iter_properties(s).find(|(k, _)| *k == name).map(|(_, v)| v);
    }
    // The same answer as `iter_properties` (the first segment whose name, up to its first
    // NAME_VALUE_SEPARATOR, is `name` and whose value is not empty), in one pass over the bytes and
    // without splitting segments that cannot match.
    let b = s.as_bytes();
    let mut start = 0;
    while start < b.len() {
        let end = b[start..].iter().position(|&c| c == PROPERTY_SEPARATOR as u8).map_or(b.len(), |i| start + i);
        let seg = &b[start..end];
        if seg.len() > n.len() + 1 && seg[n.len()] == NAME_VALUE_SEPARATOR as u8 && seg.starts_with(n) {
            // Both separators are ASCII, so these are char boundaries.
            return s.get(start + n.len() + 1..end);
        }
        start = end + 1;
    }
    None
}

/// Finds several properties in one pass: `out[k]` is what `find_property(s, names[k])` gives.
/// Every name must be non-empty and free of both separators (the well-known names are).
pub fn find_properties<'a, const N: usize>(s: &'a str, names: [&str; N]) -> [Option<&'a str>; N] {
    let mut out = [None; N];
    let mut missing = N;
    for seg in s.split(PROPERTY_SEPARATOR) {
        // The name runs up to the segment's first NAME_VALUE_SEPARATOR; the value is not empty.
        let Some(i) = seg.as_bytes().iter().position(|&c| c == NAME_VALUE_SEPARATOR as u8) else { continue };
        if i == 0 || i + 1 >= seg.len() {
            continue;
        }
        let name = &seg[..i];
        for (k, n) in names.iter().enumerate() {
            if out[k].is_none() && *n == name {
                debug_assert!(!n.contains(NAME_VALUE_SEPARATOR) && !n.contains(PROPERTY_SEPARATOR));
                out[k] = Some(&seg[i + 1..]);
                missing -= 1;
                if missing == 0 {
                    return out;
                }
                break;
            }
        }
    }
    out
}

/// Record length from its variable parts (spec §1 length formula).
pub fn record_length(
    version: MessageVersion,
    body_len: usize,
    topic_len: usize,
    properties_len: usize,
    born_host_v6: bool,
    store_host_v6: bool,
) -> usize {
    let bh = if born_host_v6 { 20 } else { 8 };
    let sh = if store_host_v6 { 20 } else { 8 };
    4 + 4
        + 4
        + 4
        + 4
        + 8
        + 8
        + 4
        + 8
        + bh
        + 8
        + sh
        + 4
        + 8
        + 4
        + body_len
        + version.topic_len_size()
        + topic_len
        + 2
        + properties_len
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the record needs.
    #[error("truncated record: need {need} bytes, have {have}")]
    Truncated {
        /// Needed.
        need: usize,
        /// Available.
        have: usize,
    },
    /// Magic code unknown.
    #[error("bad magic code {0:#010x}")]
    BadMagic(u32),
    /// Body CRC mismatch.
    #[error("body CRC mismatch: stored {stored}, computed {computed}")]
    BadCrc {
        /// Stored.
        stored: i32,
        /// Computed.
        computed: i32,
    },
    /// Field lengths inconsistent with TOTALSIZE.
    #[error("record length mismatch: total size {total}, computed {computed}")]
    BadLength {
        /// TOTALSIZE field.
        total: usize,
        /// Recomputed.
        computed: usize,
    },
    /// Invalid UTF-8 or other malformed field.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.pos + n > self.buf.len() {
            return Err(DecodeError::Truncated { need: self.pos + n, have: self.buf.len() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn host(&mut self, v6: bool) -> Result<SocketAddr, DecodeError> {
        let ip = if v6 {
            let b = self.take(16)?;
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            let b = self.take(4)?;
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        };
        let port = self.i32()?;
        Ok(SocketAddr::new(ip, port as u16))
    }
}

/// Parsed fixed header plus the positions of the variable parts of one record.
#[derive(Debug, Clone)]
pub struct RecordView {
    /// TOTALSIZE.
    pub store_size: usize,
    /// Version (from the magic).
    pub version: MessageVersion,
    /// BODYCRC.
    pub body_crc: i32,
    /// QUEUEID.
    pub queue_id: i32,
    /// FLAG.
    pub flag: i32,
    /// QUEUEOFFSET.
    pub queue_offset: i64,
    /// PHYSICALOFFSET.
    pub commit_log_offset: i64,
    /// SYSFLAG.
    pub sys_flag: i32,
    /// BORNTIMESTAMP.
    pub born_timestamp: i64,
    /// BORNHOST.
    pub born_host: SocketAddr,
    /// STORETIMESTAMP.
    pub store_timestamp: i64,
    /// STOREHOSTADDRESS.
    pub store_host: SocketAddr,
    /// RECONSUMETIMES.
    pub reconsume_times: i32,
    /// PREPARED TRANSACTION OFFSET.
    pub prepared_transaction_offset: i64,
    /// Body byte range within the record.
    pub body: std::ops::Range<usize>,
    /// Topic byte range.
    pub topic: std::ops::Range<usize>,
    /// Properties byte range.
    pub properties: std::ops::Range<usize>,
}

/// Result of looking at the bytes at a record position.
#[derive(Debug, Clone)]
pub enum RecordCheck {
    /// A valid message record.
    Message(RecordView),
    /// A BLANK end-of-file record spanning this many bytes.
    Blank(usize),
    /// No data here (TOTALSIZE and magic are zero) — end of the written data.
    End,
    /// The record is longer than the bytes available (may complete later, or is torn).
    Incomplete,
    /// The bytes are not a valid record.
    Invalid(DecodeError),
}

/// Parses the record starting at `buf[0]`, validating magic, lengths and (optionally) the body CRC.
pub fn check_record(buf: &[u8], check_crc: bool) -> RecordCheck {
    if buf.len() < 8 {
        if buf.iter().all(|b| *b == 0) {
            return RecordCheck::End;
        }
        return RecordCheck::Incomplete;
    }
    let total = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let magic = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if total == 0 && magic == 0 {
        return RecordCheck::End;
    }
    if magic == BLANK_MAGIC {
        if total < 8 {
            return RecordCheck::Invalid(DecodeError::Malformed("blank size"));
        }
        return RecordCheck::Blank(total as usize);
    }
    let Some(version) = MessageVersion::from_magic(magic) else {
        return RecordCheck::Invalid(DecodeError::BadMagic(magic as u32));
    };
    if total < 20 {
        return RecordCheck::Invalid(DecodeError::Malformed("total size"));
    }
    let total = total as usize;
    if total > buf.len() {
        return RecordCheck::Incomplete;
    }
    match parse_view(&buf[..total], version, check_crc) {
        Ok(v) => RecordCheck::Message(v),
        Err(e) => RecordCheck::Invalid(e),
    }
}

fn parse_view(rec: &[u8], version: MessageVersion, check_crc: bool) -> Result<RecordView, DecodeError> {
    let mut r = Reader { buf: rec, pos: 0 };
    let store_size = r.i32()? as usize;
    let _magic = r.i32()?;
    let body_crc = r.i32()?;
    let queue_id = r.i32()?;
    let flag = r.i32()?;
    let queue_offset = r.i64()?;
    let commit_log_offset = r.i64()?;
    let sys_flag = r.i32()?;
    let born_timestamp = r.i64()?;
    let born_host = r.host(sys_flag & sysflag::BORNHOST_V6 != 0)?;
    let store_timestamp = r.i64()?;
    let store_host = r.host(sys_flag & sysflag::STOREHOST_V6 != 0)?;
    let reconsume_times = r.i32()?;
    let prepared_transaction_offset = r.i64()?;
    let body_len = r.i32()?;
    if body_len < 0 {
        return Err(DecodeError::Malformed("negative body length"));
    }
    let body_start = r.pos;
    let body = r.take(body_len as usize)?;
    if check_crc && !body.is_empty() {
        let computed = body_crc_of(body);
        if computed != body_crc {
            return Err(DecodeError::BadCrc { stored: body_crc, computed });
        }
    }
    let body_range = body_start..r.pos;
    let topic_len = match version {
        MessageVersion::V1 => r.take(1)?[0] as i8 as i32,
        MessageVersion::V2 => r.i16()? as i32,
    };
    if topic_len < 0 {
        return Err(DecodeError::Malformed("negative topic length"));
    }
    let topic_start = r.pos;
    let topic = r.take(topic_len as usize)?;
    if std::str::from_utf8(topic).is_err() {
        return Err(DecodeError::Malformed("topic is not UTF-8"));
    }
    let topic_range = topic_start..r.pos;
    let props_len = r.i16()?;
    if props_len < 0 {
        return Err(DecodeError::Malformed("negative properties length"));
    }
    let props_start = r.pos;
    let props = r.take(props_len as usize)?;
    if std::str::from_utf8(props).is_err() {
        return Err(DecodeError::Malformed("properties are not UTF-8"));
    }
    let props_range = props_start..r.pos;
    let computed = record_length(
        version,
        body_len as usize,
        topic_len as usize,
        props_len as usize,
        sys_flag & sysflag::BORNHOST_V6 != 0,
        sys_flag & sysflag::STOREHOST_V6 != 0,
    );
    if computed != store_size || r.pos != store_size {
        return Err(DecodeError::BadLength { total: store_size, computed });
    }
    Ok(RecordView {
        store_size,
        version,
        body_crc,
        queue_id,
        flag,
        queue_offset,
        commit_log_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body: body_range,
        topic: topic_range,
        properties: props_range,
    })
}

fn body_crc_of(body: &[u8]) -> i32 {
    body_crc(body)
}

impl RecordView {
    /// Topic as text (validated UTF-8 by [`check_record`]).
    pub fn topic<'a>(&self, rec: &'a [u8]) -> &'a str {
        std::str::from_utf8(&rec[self.topic.clone()]).unwrap_or("")
    }
    /// Properties string (validated UTF-8 by [`check_record`]).
    pub fn properties<'a>(&self, rec: &'a [u8]) -> &'a str {
        std::str::from_utf8(&rec[self.properties.clone()]).unwrap_or("")
    }
}

/// A fully decoded record (Apache's `MessageExt`), the body sharing the source buffer.
#[derive(Debug, Clone)]
pub struct MessageExt {
    /// TOTALSIZE.
    pub store_size: i32,
    /// Record version.
    pub version: MessageVersion,
    /// BODYCRC.
    pub body_crc: i32,
    /// QUEUEID.
    pub queue_id: i32,
    /// FLAG.
    pub flag: i32,
    /// QUEUEOFFSET.
    pub queue_offset: i64,
    /// PHYSICALOFFSET.
    pub commit_log_offset: i64,
    /// SYSFLAG.
    pub sys_flag: i32,
    /// BORNTIMESTAMP.
    pub born_timestamp: i64,
    /// BORNHOST.
    pub born_host: SocketAddr,
    /// STORETIMESTAMP.
    pub store_timestamp: i64,
    /// STOREHOSTADDRESS.
    pub store_host: SocketAddr,
    /// RECONSUMETIMES.
    pub reconsume_times: i32,
    /// PREPARED TRANSACTION OFFSET.
    pub prepared_transaction_offset: i64,
    /// Body (zero-copy slice of the source).
    pub body: Bytes,
    /// Topic.
    pub topic: String,
    /// Raw properties string.
    pub properties_string: String,
    /// Parsed properties.
    pub properties: HashMap<String, String>,
    /// Offset message id (store host + commitlog offset).
    pub msg_id: String,
}

impl MessageExt {
    /// A property value.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(|s| s.as_str())
    }
    /// TAGS property.
    pub fn tags(&self) -> Option<&str> {
        self.property(property::TAGS)
    }
    /// KEYS property.
    pub fn keys(&self) -> Option<&str> {
        self.property(property::KEYS)
    }
    /// UNIQ_KEY property.
    pub fn uniq_key(&self) -> Option<&str> {
        self.property(property::UNIQ_KEY)
    }
}

/// Decodes the record at the start of `buf` (zero-copy body). BLANK or zeros are errors here.
pub fn decode_record(buf: &Bytes, check_crc: bool) -> Result<MessageExt, DecodeError> {
    let v = match check_record(buf, check_crc) {
        RecordCheck::Message(v) => v,
        RecordCheck::Invalid(e) => return Err(e),
        RecordCheck::Blank(_) => return Err(DecodeError::BadMagic(BLANK_MAGIC as u32)),
        RecordCheck::End => return Err(DecodeError::Malformed("no record (zeros)")),
        RecordCheck::Incomplete => return Err(DecodeError::Truncated { need: buf.len() + 1, have: buf.len() }),
    };
    let props = v.properties(buf).to_string();
    Ok(MessageExt {
        store_size: v.store_size as i32,
        version: v.version,
        body_crc: v.body_crc,
        queue_id: v.queue_id,
        flag: v.flag,
        queue_offset: v.queue_offset,
        commit_log_offset: v.commit_log_offset,
        sys_flag: v.sys_flag,
        born_timestamp: v.born_timestamp,
        born_host: v.born_host,
        store_timestamp: v.store_timestamp,
        store_host: v.store_host,
        reconsume_times: v.reconsume_times,
        prepared_transaction_offset: v.prepared_transaction_offset,
        body: buf.slice(v.body.clone()),
        topic: v.topic(buf).to_string(),
        properties: parse_properties(&props),
        properties_string: props,
        msg_id: create_offset_msg_id(&v.store_host, v.commit_log_offset),
    })
}

/// Decodes consecutive records (stops at the first BLANK, zeros or invalid record).
pub fn decode_records(buf: &Bytes, check_crc: bool) -> Vec<MessageExt> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let b = buf.slice(pos..);
        match decode_record(&b, check_crc) {
            Ok(m) => {
                pos += m.store_size as usize;
                out.push(m);
            }
            Err(_) => break,
        }
    }
    out
}

/// Offset message id: upper-case hex of store host address, port (int) and commitlog offset (long).
pub fn create_offset_msg_id(store_host: &SocketAddr, offset: i64) -> String {
    let mut s = String::with_capacity(56);
    push_offset_msg_id(&mut s, store_host, offset);
    s
}

/// Appends the offset message id to `out` (see [`create_offset_msg_id`]).
pub fn push_offset_msg_id(out: &mut String, store_host: &SocketAddr, offset: i64) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut raw = [0u8; 28];
    let n = match store_host.ip() {
        IpAddr::V4(ip) => {
            raw[..4].copy_from_slice(&ip.octets());
            4
        }
        IpAddr::V6(ip) => {
            raw[..16].copy_from_slice(&ip.octets());
            16
        }
    };
    raw[n..n + 4].copy_from_slice(&(store_host.port() as i32).to_be_bytes());
    raw[n + 4..n + 12].copy_from_slice(&offset.to_be_bytes());
    out.reserve((n + 12) * 2);
    for b in &raw[..n + 12] {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// Decodes an offset message id (32 hex chars ⇒ IPv4, 56 ⇒ IPv6) into store host and offset.
pub fn decode_offset_msg_id(id: &str) -> Option<(SocketAddr, i64)> {
    if !(id.len() == 32 || id.len() == 56) || !id.is_ascii() {
        return None;
    }
    let mut raw = Vec::with_capacity(id.len() / 2);
    for i in (0..id.len()).step_by(2) {
        raw.push(u8::from_str_radix(&id[i..i + 2], 16).ok()?);
    }
    let ip_len = if id.len() == 32 { 4 } else { 16 };
    let ip = if ip_len == 4 {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    } else {
        let mut a = [0u8; 16];
        a.copy_from_slice(&raw[..16]);
        IpAddr::V6(Ipv6Addr::from(a))
    };
    let port = i32::from_be_bytes([raw[ip_len], raw[ip_len + 1], raw[ip_len + 2], raw[ip_len + 3]]);
    let mut o = [0u8; 8];
    o.copy_from_slice(&raw[ip_len + 4..ip_len + 12]);
    Some((SocketAddr::new(ip, port as u16), i64::from_be_bytes(o)))
}

/// One message of a SEND_BATCH_MESSAGE body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// User flag.
    pub flag: i32,
    /// Body (zero-copy slice of the batch body).
    pub body: Bytes,
    /// Properties string.
    pub properties: String,
}

/// Decodes a SEND_BATCH_MESSAGE body (remoting.md §9 "Batch body").
pub fn decode_batch_body(body: &Bytes) -> Result<Vec<BatchItem>, DecodeError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < body.len() {
        let rec_start = pos;
        let mut r = Reader { buf: &body[..], pos };
        let total = r.i32()?;
        let _magic = r.i32()?;
        let _crc = r.i32()?;
        let flag = r.i32()?;
        let body_len = r.i32()?;
        if body_len < 0 {
            return Err(DecodeError::Malformed("negative body length"));
        }
        let b_start = r.pos;
        r.take(body_len as usize)?;
        let b_end = r.pos;
        let plen = r.i16()?;
        if plen < 0 {
            return Err(DecodeError::Malformed("negative properties length"));
        }
        let p = r.take(plen as usize)?;
        let props = std::str::from_utf8(p).map_err(|_| DecodeError::Malformed("properties are not UTF-8"))?.to_string();
        if total < 0 || total as usize != r.pos - rec_start {
            return Err(DecodeError::BadLength { total: total.max(0) as usize, computed: r.pos - rec_start });
        }
        pos = r.pos;
        out.push(BatchItem { flag, body: body.slice(b_start..b_end), properties: props });
    }
    Ok(out)
}

/// Encodes a SEND_BATCH_MESSAGE body (the client side of [`decode_batch_body`]).
pub fn encode_batch_body(items: &[BatchItem]) -> Vec<u8> {
    let mut out = Vec::new();
    for it in items {
        let total = 4 + 4 + 4 + 4 + 4 + it.body.len() + 2 + it.properties.len();
        out.extend_from_slice(&(total as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&it.flag.to_be_bytes());
        out.extend_from_slice(&(it.body.len() as i32).to_be_bytes());
        out.extend_from_slice(&it.body);
        out.extend_from_slice(&(it.properties.len() as i16).to_be_bytes());
        out.extend_from_slice(it.properties.as_bytes());
    }
    out
}

/// Store-timestamp position within a record, given its sysflag.
pub fn store_timestamp_position(sys_flag: i32) -> usize {
    POS_BORN_HOST + if sys_flag & sysflag::BORNHOST_V6 != 0 { 20 } else { 8 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("TagA"), 2598919);
        assert_eq!(java_string_hash("hello world"), 1794106052);
        // overflow and non-BMP (surrogate pair)
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(java_string_hash("\u{1F600}"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn find_property_agrees_with_iter_properties() {
        fn reference<'a>(s: &'a str, name: &str) -> Option<&'a str> {
            iter_properties(s).find(|(k, _)| *k == name).map(|(_, v)| v)
        }
        let strings = [
            "",
            "\u{2}",
            "a\u{1}b\u{1}c\u{2}",
            "a\u{1}\u{2}a\u{1}x\u{2}",
            "\u{2}\u{2}KEYS\u{1}k\u{2}KEYS\u{1}j",
            "KEYS\u{1}k1 k2\u{2}TAGS\u{1}t\u{2}WAIT\u{1}true\u{2}",
            "\u{1}KEYS\u{1}x\u{2}KEYSX\u{1}y\u{2}KEY\u{1}z",
            "é\u{1}ü\u{2}TAGS\u{1}é",
            "ab",
            "a\u{1}",
        ];
        let names = ["a", "KEYS", "TAGS", "WAIT", "KEY", "é", "", "a\u{1}b", "x\u{2}"];
        for s in strings {
            for name in names {
                assert_eq!(find_property(s, name), reference(s, name), "{s:?} {name:?}");
            }
        }
    }

    #[test]
    fn properties_roundtrip_and_lenient_parse() {
        let s = encode_properties([("KEYS", "k1 k2"), ("TAGS", "t")]);
        assert_eq!(s, "KEYS\u{1}k1 k2\u{2}TAGS\u{1}t\u{2}");
        let m = parse_properties(&s);
        assert_eq!(m.get("KEYS").map(|s| s.as_str()), Some("k1 k2"));
        let m = parse_properties("\u{1}x\u{2}a\u{1}\u{2}ok\u{1}1\u{2}bad\u{2}");
        assert_eq!(m.len(), 1);
        assert_eq!(find_property("a\u{1}b\u{1}c\u{2}", "a"), Some("b\u{1}c"));
        for s in [
            "",
            "UNIQ_KEY\u{1}u1\u{2}KEYS\u{1}k\u{2}WAIT\u{1}true\u{2}",
            "KEYS\u{1}\u{2}KEYS\u{1}k2\u{2}UNIQ_KEY\u{1}a\u{1}b\u{2}\u{1}x\u{2}WAIT",
            "WAIT\u{1}false\u{2}WAIT\u{1}true\u{2}TAGS\u{1}t",
            "\u{2}\u{2}\u{1}\u{1}UNIQ_KEYS\u{1}no\u{2}UNIQ_KE\u{1}no\u{2}",
        ] {
            let names = ["UNIQ_KEY", "KEYS", "WAIT", "TAGS"];
            let found = find_properties(s, names);
            for (k, n) in names.iter().enumerate() {
                assert_eq!(found[k], find_property(s, n), "{s:?} {n:?}");
            }
        }
    }

    #[test]
    fn msg_id_roundtrip() {
        let a: SocketAddr = "10.1.2.3:10911".parse().unwrap();
        let id = create_offset_msg_id(&a, 0x1234);
        assert_eq!(id, "0A01020300002A9F0000000000001234");
        assert_eq!(decode_offset_msg_id(&id), Some((a, 0x1234)));
        let b: SocketAddr = "[::1]:7".parse().unwrap();
        let id = create_offset_msg_id(&b, 99);
        assert_eq!(id.len(), 56);
        assert_eq!(decode_offset_msg_id(&id), Some((b, 99)));
        assert_eq!(decode_offset_msg_id("zz"), None);
    }
}
