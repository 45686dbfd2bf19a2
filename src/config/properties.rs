//! Java `.properties` files, read the way `java.util.Properties.load` reads them.

/// One `key=value` entry with the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, unescaped.
    pub key: String,
    /// The value, unescaped.
    pub value: String,
    /// The line the entry starts on.
    pub line: usize,
}

/// Parses properties text: `#`/`!` comments, `=`, `:` or whitespace separators, line continuations
/// (odd number of trailing backslashes), escapes `\t \n \r \f \uXXXX` and `\<any>`.
/// An error names the line and what is wrong with it.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = split_lines(text);
    let mut i = 0;
    while i < lines.len() {
        let start_line = i + 1;
        let first = lines[i].trim_start_matches([' ', '\t', '\u{0C}']);
        i += 1;
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines.
        let mut logical = String::from(first);
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            if i >= lines.len() {
                break;
            }
            logical.push_str(lines[i].trim_start_matches([' ', '\t', '\u{0C}']));
            i += 1;
        }
        let (key, value) = split_key_value(&logical);
        let key = unescape(key).map_err(|e| format!("line {start_line}: {e}"))?;
        let value = unescape(value).map_err(|e| format!("line {start_line}: {e}"))?;
        out.push(Entry { key, value, line: start_line });
    }
    Ok(out)
}

fn split_lines(text: &str) -> Vec<&str> {
    let mut v = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' || bytes[i] == b'\r' {
            v.push(&text[start..i]);
            if bytes[i] == b'\r' && i + 1 < bytes.len() && bytes[i + 1] == b'\n' {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    if start < text.len() {
        v.push(&text[start..]);
    }
    v
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1
}

fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    let mut sep_is_ws = false;
    for (idx, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => {
                key_end = idx;
                break;
            }
            ' ' | '\t' | '\u{0C}' => {
                key_end = idx;
                sep_is_ws = true;
                break;
            }
            _ => {}
        }
    }
    let key = &line[..key_end];
    let mut rest = &line[key_end..];
    if sep_is_ws {
        rest = rest.trim_start_matches([' ', '\t', '\u{0C}']);
        if rest.starts_with('=') || rest.starts_with(':') {
            rest = &rest[1..];
        }
    } else if !rest.is_empty() {
        rest = &rest[1..];
    }
    (key, rest.trim_start_matches([' ', '\t', '\u{0C}']))
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => {}
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{0C}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4).then(|| u32::from_str_radix(&hex, 16).ok()).flatten();
                match code.and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => return Err(format!("malformed \\uxxxx escape '\\u{hex}'")),
                }
            }
            Some(other) => out.push(other),
        }
    }
    Ok(out)
}

/// Escapes a key or value for writing back into a properties file.
pub fn escape(s: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{0C}' => out.push_str("\\f"),
            '=' | ':' if is_key => {
                out.push('\\');
                out.push(c);
            }
            ' ' if is_key || i == 0 => out.push_str("\\ "),
            '#' | '!' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap().into_iter().map(|e| (e.key, e.value)).collect()
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let got = kv("# comment\n! also\n\n a=1\nb : 2\nc 3\nd=\ne\n");
        let want = [("a", "1"), ("b", "2"), ("c", "3"), ("d", ""), ("e", "")];
        assert_eq!(got, want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>());
    }

    #[test]
    fn continuation_and_escapes() {
        let got = kv("paths=/a/b.conf:\\\n    /c/d.conf\nkey\\ with\\=eq=v\\u0041\\tz\r\nwin=1\\\\\n");
        assert_eq!(got[0], ("paths".into(), "/a/b.conf:/c/d.conf".into()));
        assert_eq!(got[1], ("key with=eq".into(), "vA\tz".into()));
        assert_eq!(got[2], ("win".into(), "1\\".into()));
    }

    #[test]
    fn bad_unicode_escape_names_the_line() {
        let err = parse("a=1\nb=\\u12").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn escape_round_trips() {
        for s in ["plain", " lead", "a=b:c", "tab\there", "#hash", "back\\slash"] {
            let text = format!("{}={}\n", escape(s, true), escape(s, false));
            assert_eq!(kv(&text), vec![(s.to_string(), s.to_string())], "{text}");
        }
    }
}
