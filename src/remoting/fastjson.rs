//! Reading what fastjson writes: Java peers write maps with non-string keys unquoted
//! (`{0:"addr",1:"addr"}`), which is not RFC 8259 JSON (spec: namesrv.md §8).

use serde::de::DeserializeOwned;

/// Quotes bare (unquoted) object keys outside strings, so serde_json can read fastjson output.
/// Already-valid JSON passes through unchanged.
pub fn quote_bare_keys(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len() + 16);
    let mut i = 0;
    let mut in_str = false;
    // True right after '{' or ',' inside an object: the next token is a key.
    let mut expect_key = false;
    let mut stack: Vec<u8> = Vec::new();
    while i < bytes.len() {
        let c = bytes[i];
        if in_str {
            out.push(c as char);
            if c == b'\\' && i + 1 < bytes.len() {
                out.push(bytes[i + 1] as char);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_str = true;
                expect_key = false;
                out.push('"');
            }
            b'{' => {
                stack.push(b'{');
                expect_key = true;
                out.push('{');
            }
            b'[' => {
                stack.push(b'[');
                expect_key = false;
                out.push('[');
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
                out.push(c as char);
            }
            b',' => {
                expect_key = stack.last() == Some(&b'{');
                out.push(',');
            }
            c if expect_key && (c.is_ascii_alphanumeric() || c == b'-' || c == b'_') => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-' || bytes[i] == b'_' || bytes[i] == b'.')
                {
                    i += 1;
                }
                out.push('"');
                out.push_str(&input[start..i]);
                out.push('"');
                expect_key = false;
                continue;
            }
            c => {
                if !c.is_ascii_whitespace() {
                    expect_key = false;
                }
                // Multi-byte UTF-8 outside strings cannot occur in valid input; copy bytes as chars
                // only when ASCII, else copy the whole char.
                if c.is_ascii() {
                    out.push(c as char);
                } else {
                    let ch = input[i..].chars().next().unwrap_or('\u{FFFD}');
                    out.push(ch);
                    i += ch.len_utf8();
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

/// Parses JSON as fastjson writes it (bare integer map keys allowed).
pub fn from_slice<T: DeserializeOwned>(data: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(data) {
        Ok(v) => Ok(v),
        Err(first) => {
            let Ok(text) = std::str::from_utf8(data) else { return Err(first) };
            serde_json::from_str(&quote_bare_keys(text))
        }
    }
}

/// Writes a map with integer keys the way fastjson does (`{0:"a",1:"b"}`), for peers that want the
/// byte-exact form. Values are JSON-encoded.
pub fn bare_key_map<K: std::fmt::Display, V: serde::Serialize>(entries: impl IntoIterator<Item = (K, V)>) -> String {
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
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn bare_integer_keys_are_quoted() {
        let s = r#"{"offsetTable":{"T@g":{0:12,3:45}},"brokerAddrs":{0:"1.2.3.4:10911",1:"a:b"},"s":"{0:x}"}"#;
        let v: serde_json::Value = from_slice(s.as_bytes()).unwrap();
        assert_eq!(v["offsetTable"]["T@g"]["3"], 45);
        assert_eq!(v["brokerAddrs"]["1"], "a:b");
        assert_eq!(v["s"], "{0:x}", "strings are untouched");
    }

    #[test]
    fn valid_json_passes_and_arrays_are_not_keys() {
        let s = r#"{"a":[1,2,{"b":3}],"c":{"d":-1}}"#;
        assert_eq!(quote_bare_keys(s), s);
    }

    #[test]
    fn bare_key_map_round_trips() {
        let m: BTreeMap<i32, i64> = [(0, 5), (2, 7)].into_iter().collect();
        let s = bare_key_map(m.iter());
        assert_eq!(s, "{0:5,2:7}");
        let back: BTreeMap<i32, i64> = from_slice(s.as_bytes()).unwrap();
        assert_eq!(back, m);
    }
}
