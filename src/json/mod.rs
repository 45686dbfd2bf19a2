//! fastjson compatibility for JSON bodies (spec: namesrv.md §8).
//!
//! Java peers write bodies with fastjson 1.x, which puts non-string map keys unquoted
//! (`{"brokerAddrs":{0:"10.0.0.1:10911"}}`). That is not RFC 8259 JSON, so:
//! - [`from_slice_lenient`] reads a body with serde_json, quoting bare integer object keys first when
//!   the strict parse fails ([`quote_integer_keys`]);
//! - [`to_fastjson_string`] writes fastjson's plain form: keys sorted, nulls omitted (by the serde
//!   types), and integer keys left bare inside the objects named by the caller (e.g. `brokerAddrs`);
//! - [`to_standard_json_string`] writes the "standard" form Apache uses for new clients
//!   (`BrowserCompatible, QuoteFieldNames, MapSortField`): valid JSON, keys sorted, non-ASCII escaped
//!   as `\uXXXX`, integers beyond ±2^53 written as strings.

pub mod object_keys;

pub use object_keys::{parse as parse_fastjson, parse_slice as parse_fastjson_slice};

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Quotes every bare integer object key (`{0:"a", -1 : "b"}` ⇒ `{"0":"a", "-1" : "b"}`) outside string
/// literals. Input that has none is returned borrowed.
pub fn quote_integer_keys(input: &str) -> Cow<'_, str> {
    let b = input.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut in_string = false;
    // True right after `{` or `,` (whitespace aside): the next token may be an object key.
    let mut key_position = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 2,
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        match c {
            b'"' => {
                in_string = true;
                key_position = false;
            }
            b'{' | b',' => key_position = true,
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'-' | b'0'..=b'9' if key_position => {
                let start = i;
                let mut j = i;
                if b[j] == b'-' {
                    j += 1;
                }
                let digits = j;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                let mut k = j;
                while k < b.len() && matches!(b[k], b' ' | b'\t' | b'\n' | b'\r') {
                    k += 1;
                }
                if j > digits && k < b.len() && b[k] == b':' {
                    let o = out.get_or_insert_with(|| String::with_capacity(input.len() + 16));
                    o.push_str(&input[copied..start]);
                    o.push('"');
                    o.push_str(&input[start..j]);
                    o.push('"');
                    copied = j;
                }
                key_position = false;
                i = j;
                continue;
            }
            _ => key_position = false,
        }
        i += 1;
    }
    match out {
        None => Cow::Borrowed(input),
        Some(mut o) => {
            o.push_str(&input[copied..]);
            Cow::Owned(o)
        }
    }
}

/// Parses a JSON body written by a Java peer: strict JSON first, then again with bare integer keys
/// quoted. The error is the strict parse's if both fail.
pub fn from_slice_lenient<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(strict) => {
            let Ok(text) = std::str::from_utf8(bytes) else { return Err(strict) };
            match quote_integer_keys(text) {
                Cow::Borrowed(_) => Err(strict),
                Cow::Owned(fixed) => serde_json::from_str(&fixed).map_err(|_| strict),
            }
        }
    }
}

/// Like [`from_slice_lenient`] for text.
pub fn from_str_lenient<T: DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    from_slice_lenient(text.as_bytes())
}

struct Style<'a> {
    /// Objects that are the value of one of these keys have their integer keys written bare.
    bare_key_fields: &'a [&'a str],
    /// `BrowserCompatible`: `\uXXXX` for non-ASCII, big integers as strings.
    browser_compatible: bool,
}

/// fastjson's plain `JSON.toJSONString` form: keys sorted, and integer keys of the objects that are
/// the value of a field named in `bare_key_fields` written unquoted (`"brokerAddrs":{0:"a"}`).
pub fn to_fastjson_string<T: Serialize + ?Sized>(
    value: &T,
    bare_key_fields: &[&str],
) -> Result<String, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    let mut out = String::with_capacity(256);
    write_value(&mut out, &v, &Style { bare_key_fields, browser_compatible: false }, false);
    Ok(out)
}

/// The standard form (valid JSON, keys sorted, non-ASCII escaped, integers beyond ±2^53 quoted).
pub fn to_standard_json_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    let mut out = String::with_capacity(256);
    write_value(&mut out, &v, &Style { bare_key_fields: &[], browser_compatible: true }, false);
    Ok(out)
}

fn is_integer_key(k: &str) -> bool {
    let digits = k.strip_prefix('-').unwrap_or(k);
    !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())
}

const MAX_SAFE: u64 = 9_007_199_254_740_991;

fn write_value(out: &mut String, v: &Value, style: &Style<'_>, bare_keys: bool) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let big = n.as_i64().map(|i| i.unsigned_abs() > MAX_SAFE).or_else(|| n.as_u64().map(|u| u > MAX_SAFE));
            if style.browser_compatible && big == Some(true) {
                out.push('"');
                out.push_str(&n.to_string());
                out.push('"');
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_str(out, s, style.browser_compatible),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, x, style, false);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if bare_keys && is_integer_key(k) {
                    out.push_str(k);
                } else {
                    write_str(out, k, style.browser_compatible);
                }
                out.push(':');
                write_value(out, x, style, style.bare_key_fields.contains(&k.as_str()));
            }
            out.push('}');
        }
    }
}

fn write_str(out: &mut String, s: &str, ascii_only: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if ascii_only && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04X}", unit));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Reads `null` as the type's default (fastjson accepts nulls where Java has defaults).
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(<Option<T> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn quotes_bare_integer_keys_only_outside_strings() {
        assert_eq!(quote_integer_keys(r#"{0:"a",1:"b"}"#), r#"{"0":"a","1":"b"}"#);
        assert_eq!(quote_integer_keys(r#"{ -12 : 3 ,  7:4}"#), r#"{ "-12" : 3 ,  "7":4}"#);
        // Inside strings nothing changes, escaped quotes included.
        let s = r#"{"k":"{0:\"x\",1:2}","n":[1,2,3]}"#;
        assert!(matches!(quote_integer_keys(s), Cow::Borrowed(_)));
        // Array elements and values are not keys.
        assert!(matches!(quote_integer_keys(r#"{"a":[0,1],"b":2}"#), Cow::Borrowed(_)));
        // Nested.
        assert_eq!(
            quote_integer_keys(r#"{"t":{"b":{"brokerAddrs":{0:"h:1",10:"h:2"}}}}"#),
            r#"{"t":{"b":{"brokerAddrs":{"0":"h:1","10":"h:2"}}}}"#
        );
        // Non-ASCII before a rewrite keeps its bytes.
        assert_eq!(quote_integer_keys("{\"é\":{3:\"ü\"}}"), "{\"é\":{\"3\":\"ü\"}}");
    }

    #[test]
    fn lenient_parse_accepts_fastjson_maps() {
        let m: BTreeMap<i64, String> = from_slice_lenient(br#"{0:"a:1",1:"b:2"}"#).expect("parses");
        assert_eq!(m.get(&0).map(String::as_str), Some("a:1"));
        assert_eq!(m.get(&1).map(String::as_str), Some("b:2"));
        let m: BTreeMap<i64, String> = from_slice_lenient(br#"{"0":"a"}"#).expect("parses");
        assert_eq!(m.len(), 1);
        assert!(from_slice_lenient::<BTreeMap<i64, String>>(b"{0:").is_err());
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Bd {
        broker_name: String,
        broker_addrs: BTreeMap<i64, String>,
        other: BTreeMap<String, i32>,
    }

    #[test]
    fn fastjson_form_has_bare_keys_where_asked_and_sorted_fields() {
        let bd = Bd {
            broker_name: "b-ü".into(),
            broker_addrs: [(0, "h:1".to_string()), (1, "h:2".to_string())].into_iter().collect(),
            other: [("5".to_string(), 1)].into_iter().collect(),
        };
        let plain = to_fastjson_string(&bd, &["brokerAddrs"]).expect("serializes");
        assert_eq!(plain, r#"{"brokerAddrs":{0:"h:1",1:"h:2"},"brokerName":"b-ü","other":{"5":1}}"#);
        let std = to_standard_json_string(&bd).expect("serializes");
        assert_eq!(std, r#"{"brokerAddrs":{"0":"h:1","1":"h:2"},"brokerName":"b-\u00FC","other":{"5":1}}"#);
        let back: serde_json::Value = serde_json::from_str(&std).expect("standard form is valid JSON");
        assert_eq!(back["brokerName"], "b-ü");
        // And the plain form reads back leniently.
        let back: serde_json::Value = from_str_lenient(&plain).expect("lenient");
        assert_eq!(back["brokerAddrs"]["1"], "h:2");
    }

    #[test]
    fn standard_form_quotes_unsafe_integers() {
        let v = serde_json::json!({"a": 9_007_199_254_740_993_i64, "b": 5, "c": "\u{1F600}"});
        let s = to_standard_json_string(&v).expect("serializes");
        assert_eq!(s, r#"{"a":"9007199254740993","b":5,"c":"\uD83D\uDE00"}"#);
        assert_eq!(
            to_fastjson_string(&v, &[]).expect("serializes"),
            "{\"a\":9007199254740993,\"b\":5,\"c\":\"\u{1F600}\"}"
        );
    }
}

/// Writes a map with integer keys the way fastjson does (`{0:"a",1:"b"}`), for peers that want the
/// byte-exact form. Values are JSON-encoded.
pub fn bare_key_map<K: std::fmt::Display, V: Serialize>(entries: impl IntoIterator<Item = (K, V)>) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&k.to_string());
        s.push(':');
        s.push_str(&serde_json::to_string(&v).unwrap_or_else(|_| "null".into()));
    }
    s.push('}');
    s
}

#[cfg(test)]
mod bare_key_tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn bare_key_map_round_trips() {
        let m: BTreeMap<i32, i64> = [(0, 5), (2, 7)].into_iter().collect();
        let s = bare_key_map(m.iter());
        assert_eq!(s, "{0:5,2:7}");
        let back: BTreeMap<i32, i64> = from_slice_lenient(s.as_bytes()).unwrap();
        assert_eq!(back, m);
    }
}
