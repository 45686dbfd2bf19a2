//! The remoting command (one request or response) and its two header serializations
//! (spec: remoting.md §1-§6).

use std::collections::BTreeMap;
use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Deserialize;

use super::RemotingError;
use crate::protocol::codes::response;

/// The custom header fields of a command, sent as `extFields`. Sorted, so that encoding is deterministic.
pub type ExtFields = BTreeMap<String, String>;

/// Flag bit: the command is a response.
pub const FLAG_RESPONSE: i32 = 0x1;
/// Flag bit: the request is oneway (never answered).
pub const FLAG_ONEWAY: i32 = 0x2;

/// The `version` this implementation puts in the commands it originates (`V5_3_3`).
pub const CURRENT_VERSION: i32 = 479;

/// How a command's header is serialized (the high byte of the header-length word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    /// UTF-8 JSON object (type byte 0).
    #[default]
    Json,
    /// RocketMQ's binary header (type byte 1).
    RocketMq,
}

impl SerializeType {
    /// The type byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }
    /// The type for a type byte, if known.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(SerializeType::Json),
            1 => Some(SerializeType::RocketMq),
            _ => None,
        }
    }
    /// The name used in `serializeTypeCurrentRPC`.
    pub fn name(self) -> &'static str {
        match self {
            SerializeType::Json => "JSON",
            SerializeType::RocketMq => "ROCKETMQ",
        }
    }
}

/// The language of the peer that sent a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[allow(missing_docs)]
pub enum LanguageCode {
    #[default]
    Java,
    Cpp,
    Dotnet,
    Python,
    Delphi,
    Erlang,
    Ruby,
    Other,
    Http,
    Go,
    Php,
    Oms,
    Rust,
    NodeJs,
}

const LANGUAGES: [(LanguageCode, &str); 14] = [
    (LanguageCode::Java, "JAVA"),
    (LanguageCode::Cpp, "CPP"),
    (LanguageCode::Dotnet, "DOTNET"),
    (LanguageCode::Python, "PYTHON"),
    (LanguageCode::Delphi, "DELPHI"),
    (LanguageCode::Erlang, "ERLANG"),
    (LanguageCode::Ruby, "RUBY"),
    (LanguageCode::Other, "OTHER"),
    (LanguageCode::Http, "HTTP"),
    (LanguageCode::Go, "GO"),
    (LanguageCode::Php, "PHP"),
    (LanguageCode::Oms, "OMS"),
    (LanguageCode::Rust, "RUST"),
    (LanguageCode::NodeJs, "NODE_JS"),
];

impl LanguageCode {
    /// The code byte used by the binary header.
    pub fn code(self) -> u8 {
        LANGUAGES.iter().position(|(l, _)| *l == self).unwrap_or(7) as u8
    }
    /// The language for a code byte; unknown codes read as `OTHER`.
    pub fn from_code(code: u8) -> Self {
        LANGUAGES.get(code as usize).map(|(l, _)| *l).unwrap_or(LanguageCode::Other)
    }
    /// The enum name used by the JSON header.
    pub fn name(self) -> &'static str {
        LANGUAGES[self.code() as usize].1
    }
    /// The language for a JSON name; unknown names read as `OTHER`.
    pub fn from_name(name: &str) -> Self {
        LANGUAGES.iter().find(|(_, n)| *n == name).map(|(l, _)| *l).unwrap_or(LanguageCode::Other)
    }
}

/// One request or response of the remoting protocol.
#[derive(Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    /// Request code (requests) or response code (responses).
    pub code: i32,
    /// The sender's language.
    pub language: LanguageCode,
    /// The sender's `MQVersion` ordinal.
    pub version: i32,
    /// Request id; a response carries its request's opaque.
    pub opaque: i32,
    /// Flag bits (`FLAG_RESPONSE`, `FLAG_ONEWAY`).
    pub flag: i32,
    /// Human-readable text, usually an error message.
    pub remark: Option<String>,
    /// Custom header fields.
    pub ext_fields: ExtFields,
    /// The serialization this command's header uses on the wire.
    pub serialize_type: SerializeType,
    /// The body (opaque bytes).
    pub body: Bytes,
}

impl fmt::Debug for RemotingCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotingCommand")
            .field("code", &self.code)
            .field("opaque", &self.opaque)
            .field("flag", &self.flag)
            .field("remark", &self.remark)
            .field("ext_fields", &self.ext_fields)
            .field("serialize_type", &self.serialize_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl RemotingCommand {
    /// A new request with the given code (opaque 0: the client assigns one when it sends).
    pub fn request(code: i32) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::Rust,
            version: CURRENT_VERSION,
            opaque: 0,
            flag: 0,
            remark: None,
            ext_fields: ExtFields::new(),
            serialize_type: SerializeType::Json,
            body: Bytes::new(),
        }
    }

    /// A new request whose `extFields` come from a typed header.
    pub fn request_with_header<H: CommandHeader>(code: i32, header: &H) -> Self {
        let mut cmd = Self::request(code);
        header.write_ext_fields(&mut cmd.ext_fields);
        cmd
    }

    /// A response to `request`: same opaque and serialization, response flag set.
    pub fn response_to(request: &RemotingCommand, code: i32, remark: Option<String>) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::Rust,
            version: CURRENT_VERSION,
            opaque: request.opaque,
            flag: FLAG_RESPONSE,
            remark,
            ext_fields: ExtFields::new(),
            serialize_type: request.serialize_type,
            body: Bytes::new(),
        }
    }

    /// A SUCCESS response to `request`.
    pub fn success(request: &RemotingCommand) -> Self {
        Self::response_to(request, response::SUCCESS, None)
    }

    /// An error response to `request` with a remark a person can act on.
    pub fn error(request: &RemotingCommand, code: i32, remark: impl Into<String>) -> Self {
        Self::response_to(request, code, Some(remark.into()))
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the header's `extFields` from a typed header (adding to what is there).
    pub fn with_header<H: CommandHeader>(mut self, header: &H) -> Self {
        header.write_ext_fields(&mut self.ext_fields);
        self
    }

    /// Sets the remark.
    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    /// Sets one ext field.
    pub fn with_ext(mut self, key: &str, value: impl Into<String>) -> Self {
        self.ext_fields.insert(key.to_string(), value.into());
        self
    }

    /// True for a response.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// True for a oneway request.
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// Marks the request as oneway.
    pub fn mark_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    /// Decodes the typed header from `extFields`.
    pub fn decode_header<H: CommandHeader>(&self) -> Result<H, HeaderError> {
        H::read_ext_fields(&self.ext_fields)
    }

    /// One ext field.
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key).map(String::as_str)
    }

    /// Encodes the header in this command's serialization.
    pub fn encode_header(&self, out: &mut BytesMut) {
        match self.serialize_type {
            SerializeType::Json => self.encode_json_header(out),
            SerializeType::RocketMq => self.encode_binary_header(out),
        }
    }

    /// Encodes the whole frame (length prefix, header word, header, body).
    pub fn encode_frame(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u32(0); // length, patched below
        out.put_u32(0); // header word, patched below
        let header_start = out.len();
        self.encode_header(out);
        let header_len = out.len() - header_start;
        out.extend_from_slice(&self.body);
        let length = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&length.to_be_bytes());
        let word = ((self.serialize_type.code() as u32) << 24) | (header_len as u32 & 0x00FF_FFFF);
        out[start + 4..start + 8].copy_from_slice(&word.to_be_bytes());
    }

    fn encode_json_header(&self, out: &mut BytesMut) {
        // fastjson's default: keys in alphabetical order, nulls omitted.
        let mut w = out.writer();
        let mut s = String::with_capacity(128 + self.ext_fields.len() * 32);
        s.push_str("{\"code\":");
        s.push_str(&self.code.to_string());
        if !self.ext_fields.is_empty() {
            s.push_str(",\"extFields\":{");
            for (i, (k, v)) in self.ext_fields.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                push_json_string(&mut s, k);
                s.push(':');
                push_json_string(&mut s, v);
            }
            s.push('}');
        }
        s.push_str(",\"flag\":");
        s.push_str(&self.flag.to_string());
        s.push_str(",\"language\":\"");
        s.push_str(self.language.name());
        s.push_str("\",\"opaque\":");
        s.push_str(&self.opaque.to_string());
        if let Some(remark) = &self.remark {
            s.push_str(",\"remark\":");
            push_json_string(&mut s, remark);
        }
        s.push_str(",\"serializeTypeCurrentRPC\":\"");
        s.push_str(self.serialize_type.name());
        s.push_str("\",\"version\":");
        s.push_str(&self.version.to_string());
        s.push('}');
        use std::io::Write;
        // Writing into a BytesMut cannot fail.
        let _ = w.write_all(s.as_bytes());
    }

    fn encode_binary_header(&self, out: &mut BytesMut) {
        out.put_i16(self.code as i16);
        out.put_u8(self.language.code());
        out.put_i16(self.version as i16);
        out.put_i32(self.opaque);
        out.put_i32(self.flag);
        match self.remark.as_deref() {
            Some(r) if !r.is_empty() => {
                out.put_i32(r.len() as i32);
                out.extend_from_slice(r.as_bytes());
            }
            _ => out.put_i32(0),
        }
        let ext_len: usize = self
            .ext_fields
            .iter()
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .map(|(k, v)| 2 + k.len() + 4 + v.len())
            .sum();
        out.put_i32(ext_len as i32);
        for (k, v) in self.ext_fields.iter().filter(|(k, v)| !k.is_empty() && !v.is_empty()) {
            out.put_i16(k.len() as i16);
            out.extend_from_slice(k.as_bytes());
            out.put_i32(v.len() as i32);
            out.extend_from_slice(v.as_bytes());
        }
    }

    /// Decodes a header of the given serialization; the body is attached by the caller.
    pub fn decode_header_bytes(kind: SerializeType, header: &[u8]) -> Result<Self, RemotingError> {
        match kind {
            SerializeType::Json => decode_json_header(header),
            SerializeType::RocketMq => decode_binary_header(header),
        }
    }
}

fn push_json_string(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '\u{08}' => s.push_str("\\b"),
            '\u{0C}' => s.push_str("\\f"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
}

/// A JSON scalar read leniently as a string: Apache parses headers with fastjson, and clients send
/// `extFields` values as strings, numbers or booleans.
struct LenientString(Option<String>);

impl<'de> Deserialize<'de> for LenientString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LenientString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LenientString, E> {
                Ok(LenientString(Some(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<LenientString, E> {
                Ok(LenientString(Some(v)))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<LenientString, E> {
                Ok(LenientString(Some(v.to_string())))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LenientString, E> {
                Ok(LenientString(Some(v.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LenientString, E> {
                Ok(LenientString(Some(v.to_string())))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<LenientString, E> {
                Ok(LenientString(Some(serde_json::Number::from_f64(v).map(|n| n.to_string()).unwrap_or_default())))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<LenientString, E> {
                Ok(LenientString(None))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<LenientString, E> {
                Ok(LenientString(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<LenientString, A::Error> {
                let v = serde_json::Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(LenientString(Some(v.to_string())))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<LenientString, A::Error> {
                let v = serde_json::Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(LenientString(Some(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

/// `language` as a name (what Java sends) or an ordinal (what fastjson also accepts).
#[derive(Deserialize)]
#[serde(untagged)]
enum LenientLanguage {
    Name(String),
    Ordinal(u8),
}

#[derive(Deserialize)]
struct JsonHeader {
    code: i32,
    #[serde(default)]
    language: Option<LenientLanguage>,
    #[serde(default)]
    version: i32,
    #[serde(default)]
    opaque: i32,
    #[serde(default)]
    flag: i32,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default, rename = "extFields")]
    ext_fields: Option<BTreeMap<String, LenientString>>,
}

fn decode_json_header(header: &[u8]) -> Result<RemotingCommand, RemotingError> {
    let h: JsonHeader = serde_json::from_slice(header)
        .map_err(|e| RemotingError::BadHeader(format!("JSON header does not parse: {e}")))?;
    let language = match h.language {
        Some(LenientLanguage::Name(n)) => LanguageCode::from_name(&n),
        Some(LenientLanguage::Ordinal(o)) => LanguageCode::from_code(o),
        None => LanguageCode::Java,
    };
    let ext_fields = h.ext_fields.unwrap_or_default().into_iter().filter_map(|(k, v)| v.0.map(|v| (k, v))).collect();
    Ok(RemotingCommand {
        code: h.code,
        language,
        version: h.version,
        opaque: h.opaque,
        flag: h.flag,
        remark: h.remark,
        ext_fields,
        serialize_type: SerializeType::Json,
        body: Bytes::new(),
    })
}

fn take_str(buf: &mut &[u8], len: usize, limit: usize, what: &str) -> Result<String, RemotingError> {
    if len > limit || len > buf.len() {
        return Err(RemotingError::BadHeader(format!("binary header: {what} length {len} exceeds the header")));
    }
    let s = std::str::from_utf8(&buf[..len])
        .map_err(|_| RemotingError::BadHeader(format!("binary header: {what} is not UTF-8")))?
        .to_string();
    buf.advance(len);
    Ok(s)
}

fn need(buf: &[u8], n: usize) -> Result<(), RemotingError> {
    if buf.len() < n {
        Err(RemotingError::BadHeader("binary header is truncated".into()))
    } else {
        Ok(())
    }
}

fn decode_binary_header(header: &[u8]) -> Result<RemotingCommand, RemotingError> {
    let limit = header.len();
    let mut buf = header;
    need(buf, 2 + 1 + 2 + 4 + 4 + 4)?;
    let code = buf.get_i16() as i32;
    let language = LanguageCode::from_code(buf.get_u8());
    let version = buf.get_i16() as i32;
    let opaque = buf.get_i32();
    let flag = buf.get_i32();
    let remark_len = buf.get_i32();
    if remark_len < 0 {
        return Err(RemotingError::BadHeader("binary header: negative remark length".into()));
    }
    let remark = if remark_len > 0 { Some(take_str(&mut buf, remark_len as usize, limit, "remark")?) } else { None };
    need(buf, 4)?;
    let ext_len = buf.get_i32();
    if ext_len < 0 || ext_len as usize > buf.len() {
        return Err(RemotingError::BadHeader(format!("binary header: extFields length {ext_len} exceeds the header")));
    }
    let mut ext = &buf[..ext_len as usize];
    let mut ext_fields = ExtFields::new();
    while !ext.is_empty() {
        need(ext, 2)?;
        let klen = ext.get_i16();
        if klen < 0 {
            return Err(RemotingError::BadHeader("binary header: negative key length".into()));
        }
        let k = take_str(&mut ext, klen as usize, limit, "extFields key")?;
        need(ext, 4)?;
        let vlen = ext.get_i32();
        if vlen < 0 {
            return Err(RemotingError::BadHeader("binary header: negative value length".into()));
        }
        let v = take_str(&mut ext, vlen as usize, limit, "extFields value")?;
        ext_fields.insert(k, v);
    }
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        serialize_type: SerializeType::RocketMq,
        body: Bytes::new(),
    })
}

/// A request header field could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A required field is absent.
    #[error("the custom field <{0}> is null")]
    Missing(&'static str),
    /// A field's value does not parse.
    #[error("the custom field <{field}> has an invalid value '{value}'")]
    Invalid {
        /// The field name.
        field: &'static str,
        /// The value received.
        value: String,
    },
}

/// A typed request or response header that converts to and from `extFields`.
pub trait CommandHeader: Sized {
    /// Writes every non-null field into the map.
    fn write_ext_fields(&self, map: &mut ExtFields);
    /// Reads the header from the map; a missing required field or a bad value is an error.
    fn read_ext_fields(map: &ExtFields) -> Result<Self, HeaderError>;
}

/// A value that can travel in an `extFields` string.
pub trait HeaderValue: Sized {
    /// Parses the wire string.
    fn parse_header(s: &str) -> Option<Self>;
    /// The wire string.
    fn to_header(&self) -> String;
}

impl HeaderValue for String {
    fn parse_header(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
    fn to_header(&self) -> String {
        self.clone()
    }
}

macro_rules! header_num {
    ($($t:ty),*) => {$(
        impl HeaderValue for $t {
            fn parse_header(s: &str) -> Option<Self> {
                s.trim().parse().ok()
            }
            fn to_header(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
header_num!(i32, i64, u32, u64, i16);

impl HeaderValue for bool {
    /// Java's `Boolean.parseBoolean`: "true" in any case is true, anything else false.
    fn parse_header(s: &str) -> Option<Self> {
        Some(s.trim().eq_ignore_ascii_case("true"))
    }
    fn to_header(&self) -> String {
        self.to_string()
    }
}

/// Defines a typed command header: a struct whose fields map to `extFields` keys.
/// `req` fields are required when decoding; `opt` fields are `Option`s.
#[macro_export]
macro_rules! command_header {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $kind:ident $field:ident : $ty:ty = $key:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $( #[doc = concat!("`", $key, "`")] pub $field: $crate::command_header!(@ty $kind $ty), )*
        }
        impl $crate::remoting::command::CommandHeader for $name {
            fn write_ext_fields(&self, map: &mut $crate::remoting::command::ExtFields) {
                #[allow(unused_imports)]
                use $crate::remoting::command::HeaderValue;
                $( $crate::command_header!(@write $kind self.$field, $key, map); )*
            }
            fn read_ext_fields(
                map: &$crate::remoting::command::ExtFields,
            ) -> Result<Self, $crate::remoting::command::HeaderError> {
                #[allow(unused_imports)]
                use $crate::remoting::command::HeaderValue;
                Ok($name {
                    $( $field: $crate::command_header!(@read $kind $ty, $key, map), )*
                })
            }
        }
    };
    (@ty req $ty:ty) => { $ty };
    (@ty opt $ty:ty) => { Option<$ty> };
    (@write req $v:expr, $key:literal, $map:ident) => {
        $map.insert($key.to_string(), $v.to_header());
    };
    (@write opt $v:expr, $key:literal, $map:ident) => {
        if let Some(v) = &$v {
            $map.insert($key.to_string(), v.to_header());
        }
    };
    (@read req $ty:ty, $key:literal, $map:ident) => {
        match $map.get($key) {
            None => return Err($crate::remoting::command::HeaderError::Missing($key)),
            Some(s) => <$ty>::parse_header(s).ok_or_else(|| {
                $crate::remoting::command::HeaderError::Invalid { field: $key, value: s.clone() }
            })?,
        }
    };
    (@read opt $ty:ty, $key:literal, $map:ident) => {
        match $map.get($key) {
            None => None,
            Some(s) if s.is_empty() => None,
            Some(s) => Some(<$ty>::parse_header(s).ok_or_else(|| {
                $crate::remoting::command::HeaderError::Invalid { field: $key, value: s.clone() }
            })?),
        }
    };
}
