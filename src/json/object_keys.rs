//! Reading fastjson bodies whose maps have non-string keys.
//!
//! fastjson writes `Map<MessageQueue, X>` (ConsumeStats, TopicStatsTable) with the key object itself
//! as the key: `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{...}}}`, and `Map<Long,
//! X>` with bare numbers. [`parse`] reads such text into a [`serde_json::Value`] in which every
//! non-string key is replaced by its compact JSON text (`"{\"brokerName\":\"b\",...}"`, `"0"`).

use serde_json::{Map, Value};

/// Parses fastjson text (see the module doc). Errors name the byte position.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser { s: text.as_bytes(), text, pos: 0 };
    let v = p.value()?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(format!("trailing characters at {}", p.pos));
    }
    Ok(v)
}

/// [`parse`] for a body.
pub fn parse_slice(body: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    parse(text)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at {}", c as char, self.pos))
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::Array(items));
                        }
                        _ => return Err(format!("expected ',' or ']' at {}", self.pos)),
                    }
                }
            }
            Some(b'"') => self.string().map(Value::String),
            Some(_) => self.scalar(),
            None => Err("unexpected end".into()),
        }
    }

    fn object(&mut self) -> Result<Value, String> {
        self.expect(b'{')?;
        let mut m = Map::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(m));
        }
        loop {
            let key = match self.peek() {
                Some(b'"') => self.string()?,
                _ => self.value()?.to_string(),
            };
            self.expect(b':')?;
            let v = self.value()?;
            m.insert(key, v);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(m));
                }
                _ => return Err(format!("expected ',' or '}}' at {}", self.pos)),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1;
        while self.pos < self.s.len() {
            match self.s[self.pos] {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    return serde_json::from_str(&self.text[start..self.pos]).map_err(|e| format!("bad string: {e}"));
                }
                _ => self.pos += 1,
            }
        }
        Err("unterminated string".into())
    }

    fn scalar(&mut self) -> Result<Value, String> {
        let start = self.pos;
        while self.pos < self.s.len()
            && !matches!(self.s[self.pos], b',' | b'}' | b']' | b':' | b' ' | b'\n' | b'\r' | b'\t')
        {
            self.pos += 1;
        }
        let tok = &self.text[start..self.pos];
        serde_json::from_str(tok).map_err(|_| format!("bad token '{tok}' at {start}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_and_number_keys() {
        let v = parse(r#"{"consumeTps":1.5,"offsetTable":{{"brokerName":"b","queueId":1,"topic":"T"}:{"x":1}},"n":{0:"a",-3:true}}"#)
            .unwrap();
        let t = v["offsetTable"].as_object().unwrap();
        let (k, val) = t.iter().next().unwrap();
        let key: Value = serde_json::from_str(k).unwrap();
        assert_eq!(key["queueId"], 1);
        assert_eq!(val["x"], 1);
        assert_eq!(v["n"]["0"], "a");
        assert_eq!(v["n"]["-3"], true);
        assert_eq!(v["consumeTps"], 1.5);
    }

    #[test]
    fn strings_with_braces_and_errors() {
        let v = parse(r#" { "a" : "x{1:2}\"" , "b":[1, null, {}] } "#).unwrap();
        assert_eq!(v["a"], "x{1:2}\"");
        assert_eq!(v["b"][1], Value::Null);
        assert!(parse("{\"a\":1").is_err());
        assert!(parse("{\"a\":1} x").is_err());
    }
}
