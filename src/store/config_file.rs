//! Atomic JSON config persistence (`topics.json`, `consumerOffset.json`, …) and a lenient reader
//! that accepts fastjson's unquoted integer map keys.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::error::{io_err, Result, StoreError};

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `content` to `path` atomically: write `<path>.tmp`, fsync, copy the previous file to
/// `<path>.bak`, rename the temp file over `path`, fsync the directory.
pub fn persist(path: &Path, content: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = with_suffix(path, ".tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(content.as_bytes()).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    if let Ok(prev) = std::fs::read(path) {
        if !prev.is_empty() {
            let bak = with_suffix(path, ".bak");
            let mut f = std::fs::File::create(&bak).map_err(io_err(&bak))?;
            f.write_all(&prev).map_err(io_err(&bak))?;
            f.sync_all().map_err(io_err(&bak))?;
        }
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Serialises `value` as pretty JSON (tab indentation, like fastjson's pretty format) and
/// [`persist`]s it.
pub fn persist_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    value.serialize(&mut ser)?;
    let s = String::from_utf8(buf).map_err(|e| StoreError::Corrupt(format!("non-UTF-8 JSON output: {e}")))?;
    persist(path, &s)
}

/// Loads and parses `path`; if it is missing, empty or unparsable, falls back to `<path>.bak`.
/// `Ok(None)` when neither yields a value.
pub fn load_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    for p in [path.to_path_buf(), with_suffix(path, ".bak")] {
        match std::fs::read_to_string(&p) {
            Ok(s) if !s.trim().is_empty() => match parse_lenient::<T>(&s) {
                Ok(v) => return Ok(Some(v)),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "unparsable config file")
                }
            },
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&p)(e)),
        }
    }
    Ok(None)
}

/// Parses JSON after quoting bare integer object keys (`{0:12,-1:3}` ⇒ `{"0":12,"-1":3}`).
pub fn parse_lenient<T: DeserializeOwned>(s: &str) -> Result<T> {
    Ok(serde_json::from_str(&quote_integer_keys(s))?)
}

/// Quotes bare integer keys of JSON objects, leaving strings and values untouched.
pub fn quote_integer_keys(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 16);
    let mut i = 0;
    // After '{' or ',' inside an object we expect a key.
    let mut stack: Vec<u8> = Vec::new();
    let mut expect_key = false;
    let mut last = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' => {
                expect_key = false;
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                continue;
            }
            b'{' => {
                stack.push(b'{');
                expect_key = true;
            }
            b'[' => {
                stack.push(b'[');
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => expect_key = stack.last() == Some(&b'{'),
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'-' | b'0'..=b'9' if expect_key => {
                let start = i;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                out.push_str(&s[last..start]);
                out.push('"');
                out.push_str(&s[start..i]);
                out.push('"');
                last = i;
                expect_key = false;
                continue;
            }
            _ => expect_key = false,
        }
        i += 1;
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn quotes_only_bare_integer_keys() {
        let s = r#"{"offsetTable":{"t@g":{0:12,3:45}},"x":[1,2,{5:"a:1,{2:3}"}],"n":-1,-2:0}"#;
        let q = quote_integer_keys(s);
        assert_eq!(q, r#"{"offsetTable":{"t@g":{"0":12,"3":45}},"x":[1,2,{"5":"a:1,{2:3}"}],"n":-1,"-2":0}"#);
        let v: serde_json::Value = parse_lenient(s).unwrap();
        assert_eq!(v["offsetTable"]["t@g"]["3"], 45);
        let m: HashMap<i32, i64> = parse_lenient("{\n\t1:0,\n\t2:5\n}").unwrap();
        assert_eq!(m[&2], 5);
    }

    #[test]
    fn persist_keeps_bak_and_load_falls_back() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config").join("delayOffset.json");
        persist_json(&p, &HashMap::from([(1, 0)])).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\n\t\"1\": 0\n}");
        persist(&p, "{1:1}").unwrap();
        persist(&p, "{1:2}").unwrap();
        assert_eq!(std::fs::read_to_string(with_suffix(&p, ".bak")).unwrap(), "{1:1}");
        let m: HashMap<i32, i64> = load_json(&p).unwrap().unwrap();
        assert_eq!(m[&1], 2);
        std::fs::write(&p, "{garbage").unwrap();
        let m: HashMap<i32, i64> = load_json(&p).unwrap().unwrap();
        assert_eq!(m[&1], 1);
        std::fs::remove_file(&p).unwrap();
        let m: HashMap<i32, i64> = load_json(&p).unwrap().unwrap();
        assert_eq!(m[&1], 1);
        let none: Option<HashMap<i32, i64>> = load_json(&d.path().join("nope.json")).unwrap();
        assert!(none.is_none());
    }
}
