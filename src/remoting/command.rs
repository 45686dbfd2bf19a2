//! The remoting command (one request or response) and its two header serializations
//! (spec: remoting.md §1-§6).

use std::collections::BTreeMap;
use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Deserialize;

use super::RemotingError;
use crate::protocol::codes::response;

pub use super::ext_fields::ExtFields;

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
        cmd.ext_fields = ExtFields::with_capacity(16);
        header.write_ext_fields(&mut cmd.ext_fields);
        cmd
    }

    /// Like [`RemotingCommand::request_with_header`], moving the header's strings into `extFields`.
    pub fn request_with_header_owned<H: CommandHeader>(code: i32, header: H) -> Self {
        let mut cmd = Self::request(code);
        cmd.ext_fields = ExtFields::with_capacity(16);
        header.into_ext_fields(&mut cmd.ext_fields);
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
        self.ext_fields.insert_str(key, value.into());
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
        // fastjson's default: keys in alphabetical order, nulls omitted. Written straight into the
        // frame buffer (no intermediate `String`, no per-number allocation).
        out.reserve(160 + self.ext_fields.iter().map(|(k, v)| k.len() + v.len() + 6).sum::<usize>());
        out.extend_from_slice(b"{\"code\":");
        push_int(out, self.code as i64);
        if !self.ext_fields.is_empty() {
            out.extend_from_slice(b",\"extFields\":{");
            for (i, (k, v)) in self.ext_fields.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                push_json_string(out, k);
                out.put_u8(b':');
                push_json_string(out, v);
            }
            out.put_u8(b'}');
        }
        out.extend_from_slice(b",\"flag\":");
        push_int(out, self.flag as i64);
        out.extend_from_slice(b",\"language\":\"");
        out.extend_from_slice(self.language.name().as_bytes());
        out.extend_from_slice(b"\",\"opaque\":");
        push_int(out, self.opaque as i64);
        if let Some(remark) = &self.remark {
            out.extend_from_slice(b",\"remark\":");
            push_json_string(out, remark);
        }
        out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"");
        out.extend_from_slice(self.serialize_type.name().as_bytes());
        out.extend_from_slice(b"\",\"version\":");
        push_int(out, self.version as i64);
        out.put_u8(b'}');
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

/// Writes `v` in decimal (what `to_string` gives), without allocating.
fn push_int(out: &mut BytesMut, v: i64) {
    let mut buf = [0u8; 40];
    out.extend_from_slice(decimal_ascii(i128::from(v), &mut buf));
}

/// `v` in decimal ASCII (what `to_string` gives), written at the end of `buf` without the
/// formatting machinery: headers write a handful of numbers per request.
pub(crate) fn decimal_ascii(v: i128, buf: &mut [u8; 40]) -> &[u8] {
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// True for the bytes a JSON string cannot hold as they are.
#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// How many bytes at the start of `b` a JSON string holds as they are (none is `"`, `\\` or a
/// control character): eight bytes at a time.
#[inline]
fn plain_prefix(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    for chunk in b.chunks_exact(8) {
        let mut a = [0u8; 8];
        a.copy_from_slice(chunk);
        let w = u64::from_le_bytes(a);
        let quote = w ^ (LO * b'"' as u64);
        let slash = w ^ (LO * b'\\' as u64);
        // The lowest flagged byte of each test is exact (a borrow only flags bytes above a hit).
        let hit =
            ((w.wrapping_sub(LO * 0x20) & !w) | (quote.wrapping_sub(LO) & !quote) | (slash.wrapping_sub(LO) & !slash))
                & HI;
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !needs_escape(b[i]) {
        i += 1;
    }
    i
}

fn push_json_string(out: &mut BytesMut, v: &str) {
    out.put_u8(b'"');
    let bytes = v.as_bytes();
    let mut run = 0; // start of the bytes not written yet
    loop {
        let i = run + plain_prefix(&bytes[run..]);
        out.extend_from_slice(&bytes[run..i]);
        let Some(&b) = bytes.get(i) else { break };
        run = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            c => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
            }
        }
    }
    out.put_u8(b'"');
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

/// The JSON header of the common shape, parsed without serde and without intermediate maps: an
/// object of plain strings and integers, strings without escapes, extFields values that are strings
/// or null. Anything else (escapes, non-string extFields values, duplicate fields, malformed input)
/// gives `None`, and the caller falls back to the serde parse, which decides (so both agree on every
/// input).
fn decode_json_header_fast(header: &[u8]) -> Option<RemotingCommand> {
    let text = std::str::from_utf8(header).ok()?;
    let mut p = JsonCursor { s: text, i: 0 };
    let (mut code, mut language, mut version, mut opaque, mut flag) = (None, None, None, None, None);
    let mut remark: Option<Option<String>> = None;
    let mut ext: Option<ExtFields> = None;
    p.expect(b'{')?;
    if !p.eat(b'}') {
        loop {
            let key = p.string()?;
            p.expect(b':')?;
            match &*key {
                "code" => set_once(&mut code, p.int()?)?,
                "version" => set_once(&mut version, p.int()?)?,
                "opaque" => set_once(&mut opaque, p.int()?)?,
                "flag" => set_once(&mut flag, p.int()?)?,
                "language" => {
                    let l = if p.eat_null() {
                        LanguageCode::Java
                    } else if p.peek()? == b'"' {
                        LanguageCode::from_name(&p.string()?)
                    } else {
                        LanguageCode::from_code(u8::try_from(p.int()?).ok()?)
                    };
                    set_once(&mut language, l)?;
                }
                "remark" => {
                    let r = if p.eat_null() { None } else { Some(p.string()?.into_owned()) };
                    set_once(&mut remark, r)?;
                }
                "extFields" => {
                    // Room for a send's fields at once, instead of growing 4 -> 8 -> 16.
                    let mut m = ExtFields::with_capacity(16);
                    if !p.eat_null() {
                        p.expect(b'{')?;
                        if !p.eat(b'}') {
                            loop {
                                let k = p.string()?;
                                p.expect(b':')?;
                                if p.eat_null() {
                                    m.remove(&k);
                                } else {
                                    let v = p.string()?;
                                    m.insert_str(&k, v.into_owned());
                                }
                                if p.eat(b'}') {
                                    break;
                                }
                                p.expect(b',')?;
                            }
                        }
                    }
                    set_once(&mut ext, m)?;
                }
                _ => p.skip_scalar()?,
            }
            if p.eat(b'}') {
                break;
            }
            p.expect(b',')?;
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return None;
    }
    Some(RemotingCommand {
        code: i32::try_from(code?).ok()?,
        language: language.unwrap_or(LanguageCode::Java),
        version: i32::try_from(version.unwrap_or(0)).ok()?,
        opaque: i32::try_from(opaque.unwrap_or(0)).ok()?,
        flag: i32::try_from(flag.unwrap_or(0)).ok()?,
        remark: remark.flatten(),
        ext_fields: ext.unwrap_or_default(),
        serialize_type: SerializeType::Json,
        body: Bytes::new(),
    })
}

/// Sets a field seen for the first time; a duplicate is left to the serde parse (which refuses it).
fn set_once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

struct JsonCursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> JsonCursor<'a> {
    fn ws(&mut self) {
        let b = self.s.as_bytes();
        while self.i < b.len() && matches!(b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.as_bytes().get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        self.eat(c).then_some(())
    }
    fn eat_null(&mut self) -> bool {
        self.ws();
        if self.s.as_bytes()[self.i..].starts_with(b"null") {
            self.i += 4;
            true
        } else {
            false
        }
    }
    /// A string; escapes are decoded (a lone surrogate or a control character: `None`).
    fn string(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        self.expect(b'"')?;
        let b = self.s.as_bytes();
        let start = self.i;
        self.i += plain_prefix(b.get(self.i..)?);
        match *b.get(self.i)? {
            b'"' => {}
            b'\\' => return self.escaped_string(start).map(std::borrow::Cow::Owned),
            _ => return None, // a control character
        }
        let out = &self.s[start..self.i];
        self.i += 1;
        Some(std::borrow::Cow::Borrowed(out))
    }
    /// The rest of a string that holds escapes, from `start` (just after the opening quote).
    fn escaped_string(&mut self, start: usize) -> Option<String> {
        let b = self.s.as_bytes();
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.s[start..self.i]);
        loop {
            let run = self.i;
            self.i += plain_prefix(b.get(self.i..)?);
            out.push_str(&self.s[run..self.i]);
            match *b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    let c = match *b.get(self.i + 1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.s.get(self.i + 2..self.i + 6)?;
                            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                                return None;
                            }
                            let v = u32::from_str_radix(hex, 16).ok()?;
                            self.i += 4;
                            char::from_u32(v)? // surrogates are left to serde
                        }
                        _ => return None,
                    };
                    self.i += 2;
                    out.push(c);
                }
                _ => return None,
            }
        }
    }
    /// An integer in JSON's grammar (no fraction, no exponent) that fits an i64.
    fn int(&mut self) -> Option<i64> {
        self.ws();
        let b = self.s.as_bytes();
        let start = self.i;
        if b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while self.i < b.len() && b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        let n = self.i - digits;
        if n == 0 || n > 18 || (n > 1 && b[digits] == b'0') {
            return None;
        }
        if matches!(b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.s[start..self.i].parse().ok()
    }
    /// Skips a string, integer, `true`, `false` or `null` (anything else: `None`).
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b't' | b'f' | b'n' => {
                for w in ["true", "false", "null"] {
                    if self.s.as_bytes()[self.i..].starts_with(w.as_bytes()) {
                        self.i += w.len();
                        return Some(());
                    }
                }
                None
            }
            _ => self.int().map(|_| ()),
        }
    }
}

fn decode_json_header(header: &[u8]) -> Result<RemotingCommand, RemotingError> {
    if let Some(cmd) = decode_json_header_fast(header) {
        return Ok(cmd);
    }
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

fn take_slice<'a>(buf: &mut &'a [u8], len: usize, limit: usize, what: &str) -> Result<&'a str, RemotingError> {
    if len > limit || len > buf.len() {
        return Err(RemotingError::BadHeader(format!("binary header: {what} length {len} exceeds the header")));
    }
    let (head, rest) = buf.split_at(len);
    let s = std::str::from_utf8(head)
        .map_err(|_| RemotingError::BadHeader(format!("binary header: {what} is not UTF-8")))?;
    *buf = rest;
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
        let k = take_slice(&mut ext, klen as usize, limit, "extFields key")?;
        need(ext, 4)?;
        let vlen = ext.get_i32();
        if vlen < 0 {
            return Err(RemotingError::BadHeader("binary header: negative value length".into()));
        }
        let v = take_str(&mut ext, vlen as usize, limit, "extFields value")?;
        ext_fields.insert_str(k, v);
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

pub use super::header::{CommandHeader, HeaderError, HeaderValue};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_json_decode_agrees_with_serde_or_defers() {
        let cases = [
            r#"{"code":310,"extFields":{"a":"g","b":"T","d":"8"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":479}"#,
            r#" { "code" : -1 , "language" : 12 , "remark" : null , "extFields" : null } "#,
            r#"{"code":1,"extFields":{"k":"v","k":null,"x":"1","x":"2"},"remark":"","other":true,"o2":null,"o3":-5}"#,
            r#"{"code":1,"extFields":{"n":5}}"#,
            r#"{"code":1,"code":2}"#,
            r#"{"code":1.5}"#,
            r#"{"code":01}"#,
            r#"{"code":4294967296}"#,
            r#"{"code":1,"language":300}"#,
            r#"{"code":1} x"#,
            r#"{"flag":1}"#,
            r#"{"code":1,"o":{"a":1}}"#,
            r#"[1]"#,
        ];
        for c in cases {
            let fast = decode_json_header_fast(c.as_bytes());
            let full = decode_json_header(c.as_bytes()).ok();
            if let Some(f) = fast {
                assert_eq!(Some(f), full, "{c}");
            }
        }
        // The common shapes do take the fast path.
        assert!(decode_json_header_fast(cases[0].as_bytes()).is_some());
        assert!(decode_json_header_fast(cases[1].as_bytes()).is_some());
        let c = decode_json_header_fast(cases[2].as_bytes()).expect("fast");
        assert_eq!(c.ext_fields.len(), 1);
        assert_eq!(c.ext("x"), Some("2"));
        assert_eq!(c.remark.as_deref(), Some(""));
        let e = r#"{"code":1,"remark":"a\"b\\\/\b\f\n\r\t\u0001\u00e9é","extFields":{"i":"K\u0001v\u0002"}}"#;
        let fast = decode_json_header_fast(e.as_bytes()).expect("escapes take the fast path");
        let h: JsonHeader = serde_json::from_slice(e.as_bytes()).expect("serde");
        assert_eq!(fast.remark, h.remark);
        assert_eq!(fast.ext("i"), Some("K\u{1}v\u{2}"));
        assert!(decode_json_header_fast(br#"{"code":1,"remark":"\ud800"}"#).is_none());
        assert!(decode_json_header_fast(br#"{"code":1,"remark":"\x"}"#).is_none());
        for bad in &cases[3..] {
            assert!(decode_json_header_fast(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn plain_prefix_stops_at_the_first_byte_to_escape() {
        let naive = |b: &[u8]| b.iter().position(|&c| needs_escape(c)).unwrap_or(b.len());
        let mut cases: Vec<Vec<u8>> = vec![Vec::new(), b"abc".to_vec(), "é\u{7f}ü€".as_bytes().to_vec()];
        for len in [1usize, 7, 8, 9, 15, 16, 17, 31] {
            for at in 0..len {
                for bad in [b'"', b'\\', 0u8, 0x1f, b'\n'] {
                    let mut v: Vec<u8> =
                        (0..len).map(|i| [b'a', 0x20, 0x7f, 0xc3, 0xff, b'!', b'#', b']'][i % 8]).collect();
                    v[at] = bad;
                    cases.push(v.clone());
                    // A second byte to escape after the first.
                    if at + 1 < len {
                        v[len - 1] = b'"';
                        cases.push(v);
                    }
                }
            }
            cases.push(vec![0x21; len]);
        }
        for c in cases {
            assert_eq!(plain_prefix(&c), naive(&c), "{c:?}");
        }
    }

    #[test]
    fn json_encode_escapes_like_before() {
        let mut c = RemotingCommand::request(-3);
        c.remark = Some("q\"b\\n\n\r\t\u{8}\u{c}\u{1}é".into());
        c.ext_fields.insert("k".into(), "v\u{1f}".into());
        c.opaque = i32::MIN;
        let mut out = BytesMut::new();
        c.encode_header(&mut out);
        assert_eq!(
            std::str::from_utf8(&out).expect("utf8"),
            r#"{"code":-3,"extFields":{"k":"v\u001f"},"flag":0,"language":"RUST","opaque":-2147483648,"remark":"q\"b\\n\n\r\t\b\f\u0001é","serializeTypeCurrentRPC":"JSON","version":479}"#
        );
        assert_eq!(decode_json_header(&out).expect("decodes"), c);
    }
}
