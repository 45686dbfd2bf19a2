//! The commitlog's record encoder (encoding straight into a destination slice) and the message
//! the broker hands to the store. Decoding is shared with clients: [`crate::protocol::message`],
//! re-exported here for the store's own use.
//!
//! Byte layout: `/work/shared/spec/message-format.md` §1–§6 (all integers big-endian).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;

pub use crate::protocol::message::*;

/// A message is written only if `len + END_FILE_MIN_BLANK_LENGTH <= remaining`.
pub const END_FILE_MIN_BLANK_LENGTH: usize = 8;
/// Maximum length of the properties string in bytes.
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;
/// The delay (schedule) topic whose tagsCode is the deliver timestamp.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// A message as handed to the store by the broker (Apache's `MessageExtBrokerInner`).
#[derive(Debug, Clone)]
pub struct MessageInner {
    /// Topic (UTF-8, at most 255 bytes stored).
    pub topic: String,
    /// Queue id.
    pub queue_id: i32,
    /// User flag.
    pub flag: i32,
    /// Body, stored as is.
    pub body: Bytes,
    /// Encoded properties string (see [`encode_properties`]).
    pub properties: String,
    /// System flag; the host v6 bits are derived from the host addresses at encoding.
    pub sys_flag: i32,
    /// Producer timestamp (ms).
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Broker address written as STOREHOSTADDRESS and used for the offset msgId.
    pub store_host: SocketAddr,
    /// Reconsume times.
    pub reconsume_times: i32,
    /// Prepared transaction offset.
    pub prepared_transaction_offset: i64,
}

impl MessageInner {
    /// A message with the given topic, queue and body; hosts 127.0.0.1:0 / :10911, now as born time.
    pub fn new(topic: impl Into<String>, queue_id: i32, body: impl Into<Bytes>) -> Self {
        MessageInner {
            topic: topic.into(),
            queue_id,
            flag: 0,
            body: body.into(),
            properties: String::new(),
            sys_flag: 0,
            born_timestamp: now_ms(),
            born_host: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            store_host: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 10911),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
    }

    /// Replaces the properties with an encoded map.
    pub fn set_properties<K: AsRef<str>, V: AsRef<str>>(&mut self, props: impl IntoIterator<Item = (K, V)>) {
        self.properties = encode_properties(props);
    }

    /// Appends one property (no de-duplication).
    pub fn push_property(&mut self, name: &str, value: &str) {
        self.properties.push_str(name);
        self.properties.push(NAME_VALUE_SEPARATOR);
        self.properties.push_str(value);
        self.properties.push(PROPERTY_SEPARATOR);
    }

    /// The sysflag actually written (host v6 bits from the addresses).
    pub fn effective_sys_flag(&self) -> i32 {
        let mut f = self.sys_flag & !(sysflag::BORNHOST_V6 | sysflag::STOREHOST_V6);
        if self.born_host.is_ipv6() {
            f |= sysflag::BORNHOST_V6;
        }
        if self.store_host.is_ipv6() {
            f |= sysflag::STOREHOST_V6;
        }
        f
    }

    /// Encoded record length for `version`.
    pub fn record_length(&self, version: MessageVersion) -> usize {
        record_length(
            version,
            self.body.len(),
            self.topic.len(),
            self.properties.len(),
            self.born_host.is_ipv6(),
            self.store_host.is_ipv6(),
        )
    }
}

/// Current wall-clock time in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Values the store assigns at append time.
#[derive(Debug, Clone, Copy)]
pub struct RecordStamp {
    /// Record version.
    pub version: MessageVersion,
    /// Masked body CRC (see [`body_crc`]).
    pub body_crc: i32,
    /// Logical queue offset.
    pub queue_offset: i64,
    /// Absolute commitlog offset of the record.
    pub physical_offset: i64,
    /// Store timestamp (ms).
    pub store_timestamp: i64,
}

struct Cursor<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn put(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
    fn i32(&mut self, v: i32) {
        self.put(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.put(&v.to_be_bytes());
    }
    fn host(&mut self, a: &SocketAddr) {
        match a.ip() {
            IpAddr::V4(ip) => self.put(&ip.octets()),
            IpAddr::V6(ip) => self.put(&ip.octets()),
        }
        self.i32(a.port() as i32);
    }
}

/// Encodes one record into `dest` (which must hold at least `msg.record_length(stamp.version)` bytes;
/// checked) and returns the number of bytes written. Length limits are the caller's business.
pub fn encode_record(msg: &MessageInner, stamp: &RecordStamp, dest: &mut [u8]) -> Option<usize> {
    let len = msg.record_length(stamp.version);
    if dest.len() < len
        || (stamp.version == MessageVersion::V1 && msg.topic.len() > 127)
        || msg.topic.len() > i16::MAX as usize
        || msg.properties.len() > MAX_PROPERTIES_LEN
        || msg.body.len() > i32::MAX as usize
    {
        return None;
    }
    let mut c = Cursor { buf: &mut dest[..len], pos: 0 };
    c.i32(len as i32);
    c.i32(stamp.version.magic());
    c.i32(stamp.body_crc);
    c.i32(msg.queue_id);
    c.i32(msg.flag);
    c.i64(stamp.queue_offset);
    c.i64(stamp.physical_offset);
    c.i32(msg.effective_sys_flag());
    c.i64(msg.born_timestamp);
    c.host(&msg.born_host);
    c.i64(stamp.store_timestamp);
    c.host(&msg.store_host);
    c.i32(msg.reconsume_times);
    c.i64(msg.prepared_transaction_offset);
    c.i32(msg.body.len() as i32);
    c.put(&msg.body);
    match stamp.version {
        MessageVersion::V1 => c.put(&[msg.topic.len() as u8]),
        MessageVersion::V2 => c.put(&(msg.topic.len() as i16).to_be_bytes()),
    }
    c.put(msg.topic.as_bytes());
    c.put(&(msg.properties.len() as i16).to_be_bytes());
    c.put(msg.properties.as_bytes());
    debug_assert_eq!(c.pos, len);
    Some(len)
}

/// Writes a BLANK record header (`maxBlank`, BLANK magic) at the start of `dest` (≥ 8 bytes).
pub fn encode_blank(dest: &mut [u8], max_blank: i32) {
    dest[0..4].copy_from_slice(&max_blank.to_be_bytes());
    dest[4..8].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
}

/// Turns decoded batch items into inner messages: topic, queue, sysflag, born time and hosts come
/// from `template` (the request header), flag/body/properties from each item.
pub fn batch_to_inner(template: &MessageInner, items: Vec<BatchItem>) -> Vec<MessageInner> {
    items
        .into_iter()
        .map(|it| MessageInner { flag: it.flag, body: it.body, properties: it.properties, ..template.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_v1_v2_v6() {
        for (topic, born, store) in [
            ("T", "1.2.3.4:5", "5.6.7.8:9"),
            (&"x".repeat(200)[..], "[::2]:5", "5.6.7.8:9"),
            ("T", "1.2.3.4:5", "[fe80::1]:10911"),
        ] {
            let mut m = MessageInner::new(topic, 3, Bytes::from_static(b"hello"));
            m.born_host = born.parse().unwrap();
            m.store_host = store.parse().unwrap();
            m.push_property("TAGS", "A");
            m.flag = 7;
            let v = MessageVersion::for_topic(topic, true);
            let len = m.record_length(v);
            let mut buf = vec![0u8; len];
            let st = RecordStamp {
                version: v,
                body_crc: body_crc(&m.body),
                queue_offset: 11,
                physical_offset: 1000,
                store_timestamp: 42,
            };
            assert_eq!(encode_record(&m, &st, &mut buf), Some(len));
            let e = decode_record(&Bytes::from(buf), true).unwrap();
            assert_eq!(e.topic, topic);
            assert_eq!(e.queue_id, 3);
            assert_eq!(e.flag, 7);
            assert_eq!(e.queue_offset, 11);
            assert_eq!(e.commit_log_offset, 1000);
            assert_eq!(e.store_timestamp, 42);
            assert_eq!(e.born_host, m.born_host);
            assert_eq!(e.store_host, m.store_host);
            assert_eq!(&e.body[..], b"hello");
            assert_eq!(e.tags(), Some("A"));
            assert_eq!(e.version, v);
        }
    }

    #[test]
    fn batch_body_roundtrip() {
        let items = vec![
            BatchItem { flag: 1, body: Bytes::from_static(b"abc"), properties: "a\u{1}b\u{2}".into() },
            BatchItem { flag: 2, body: Bytes::new(), properties: String::new() },
        ];
        let enc = Bytes::from(encode_batch_body(&items));
        assert_eq!(decode_batch_body(&enc).unwrap(), items);
        let t = MessageInner::new("T", 2, Bytes::new());
        let inner = batch_to_inner(&t, decode_batch_body(&enc).unwrap());
        assert_eq!(inner.len(), 2);
        assert_eq!((inner[0].flag, &inner[0].body[..], inner[0].queue_id), (1, &b"abc"[..], 2));
        assert_eq!(inner[0].properties, "a\u{1}b\u{2}");
        assert!(decode_batch_body(&enc.slice(..enc.len() - 1)).is_err());
    }
}
