//! Config files: Java properties (what RocketMQ users already have) or TOML with the same camelCase
//! keys, read into typed structs. Raw entries are applied once to one or more typed targets; an unknown
//! key is a warning, a bad value an error naming the file, the key and the value.

pub mod properties;

use std::fmt;
use std::path::{Path, PathBuf};

/// Errors of the config layer.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file's syntax is wrong.
    #[error("config file {path}: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        reason: String,
    },
    /// A value does not fit its key.
    #[error("config file {path}: bad value '{value}' for key '{key}' (line {line}): {reason}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// The line (0 when not known).
        line: usize,
        /// Why it is refused.
        reason: String,
    },
    /// The values are each fine but do not make a valid whole.
    #[error("config file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The raw entries of one config file, before they are applied to typed structs.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    /// Where they came from (for error messages).
    pub path: PathBuf,
    /// The entries in file order.
    pub entries: Vec<properties::Entry>,
}

impl RawConfig {
    /// Reads a file: `.toml` as TOML, anything else as Java properties.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read_config_text(path)?;
        if path.extension().is_some_and(|e| e == "toml") {
            Self::from_toml(path, &text)
        } else {
            Self::from_properties(path, &text)
        }
    }

    /// Parses properties text.
    pub fn from_properties(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let entries =
            properties::parse(text).map_err(|reason| ConfigError::Syntax { path: path.to_path_buf(), reason })?;
        Ok(RawConfig { path: path.to_path_buf(), entries })
    }

    /// Parses TOML text: top-level scalar keys; arrays of strings are joined with the key's separator
    /// (`;` for `namesrvAddr`, `:` for `brokerConfigPaths`/`brokerConfigDirs`, `,` otherwise).
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax { path: path.to_path_buf(), reason: e.to_string() })?;
        let line_of = |key: &str| {
            text.lines()
                .position(|l| {
                    let l = l.trim_start();
                    l.starts_with(key) && l[key.len()..].trim_start().starts_with('=')
                })
                .map(|i| i + 1)
                .unwrap_or(0)
        };
        let mut entries = Vec::new();
        for (key, value) in table {
            let line = line_of(&key);
            let value = toml_scalar(&key, &value).ok_or_else(|| ConfigError::BadValue {
                path: path.to_path_buf(),
                key: key.clone(),
                value: value.to_string(),
                line,
                reason: "expected a string, number, boolean or array of strings".into(),
            })?;
            entries.push(properties::Entry { key, value, line });
        }
        entries.sort_by_key(|e| e.line);
        Ok(RawConfig { path: path.to_path_buf(), entries })
    }

    /// The value of `key`, if present (the last one wins, as in Java).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().rev().find(|e| e.key == key).map(|e| e.value.as_str())
    }

    /// Applies every entry to the first target that knows its key. Returns the warnings (unknown keys).
    pub fn apply(&self, targets: &mut [&mut dyn Configurable]) -> Result<Vec<String>, ConfigError> {
        let mut warnings = Vec::new();
        for e in &self.entries {
            let mut known = false;
            for t in targets.iter_mut() {
                match t.set(&e.key, &e.value) {
                    Ok(true) => {
                        known = true;
                        break;
                    }
                    Ok(false) => {}
                    Err(reason) => {
                        return Err(ConfigError::BadValue {
                            path: self.path.clone(),
                            key: e.key.clone(),
                            value: e.value.clone(),
                            line: e.line,
                            reason,
                        })
                    }
                }
            }
            if !known {
                warnings.push(format!("{}: unknown key '{}' (line {}) is ignored", self.path.display(), e.key, e.line));
            }
        }
        Ok(warnings)
    }
}

/// The largest config file read (Apache's are a few KiB).
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a config file as UTF-8 text: only a regular file (not a FIFO, device or directory, which
/// could block or never end) of at most [`MAX_CONFIG_FILE_BYTES`]. The file is opened without
/// blocking and checked on the open descriptor, and never more than the cap is read, so a file that
/// is swapped or grows meanwhile cannot make the reader wait or allocate without bound.
pub fn read_config_text(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let read_err = |source: std::io::Error| ConfigError::Read { path: path.to_path_buf(), source };
    let invalid = |reason: String| ConfigError::Invalid { path: path.to_path_buf(), reason };
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // A FIFO would block open() until a writer comes; O_NONBLOCK has no effect on regular files.
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device)" };
        return Err(invalid(format!("is {kind}; a config must be a regular file")));
    }
    if meta.len() > MAX_CONFIG_FILE_BYTES {
        return Err(invalid(format!(
            "is {} bytes; a config file may be at most {MAX_CONFIG_FILE_BYTES} bytes",
            meta.len()
        )));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_CONFIG_FILE_BYTES + 1).read_to_end(&mut buf).map_err(read_err)?;
    if buf.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(invalid(format!("grew past {MAX_CONFIG_FILE_BYTES} bytes while being read")));
    }
    String::from_utf8(buf).map_err(|e| invalid(format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to())))
}

fn toml_scalar(key: &str, v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(a) => {
            let sep = match key {
                "namesrvAddr" => ";",
                "brokerConfigPaths" | "brokerConfigDirs" => ":",
                _ => ",",
            };
            let parts: Option<Vec<String>> = a.iter().map(|x| x.as_str().map(str::to_string)).collect();
            parts.map(|p| p.join(sep))
        }
        _ => None,
    }
}

/// A typed config struct whose fields can be set from `key=value` strings.
pub trait Configurable {
    /// Sets `key` from `value`: `Ok(false)` if the key is not this struct's, `Err` if the value is bad.
    fn set(&mut self, key: &str, value: &str) -> Result<bool, String>;
    /// Every key with its current value, in declaration order.
    fn entries(&self) -> Vec<(&'static str, String)>;
    /// Every key this struct knows.
    fn keys(&self) -> &'static [&'static str];
}

/// A field type that can be read from and written to a config string.
pub trait ConfigValue: Sized {
    /// Parses the string.
    fn parse_value(s: &str) -> Result<Self, String>;
    /// Renders the value as it would be written in a properties file.
    fn render(&self) -> String;
}

impl ConfigValue for String {
    fn parse_value(s: &str) -> Result<Self, String> {
        Ok(s.trim().to_string())
    }
    fn render(&self) -> String {
        self.clone()
    }
}

impl ConfigValue for bool {
    fn parse_value(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

macro_rules! config_num {
    ($($t:ty),*) => {$(
        impl ConfigValue for $t {
            fn parse_value(s: &str) -> Result<Self, String> {
                s.trim().parse::<$t>().map_err(|e| format!("expected {}: {e}", stringify!($t)))
            }
            fn render(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
config_num!(u16, u32, u64, usize, i32, i64, f64);

impl<T: ConfigValue> ConfigValue for Option<T> {
    fn parse_value(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            Ok(None)
        } else {
            T::parse_value(s).map(Some)
        }
    }
    fn render(&self) -> String {
        self.as_ref().map(ConfigValue::render).unwrap_or_default()
    }
}

/// Defines a config enum whose values are written by name (e.g. `ASYNC_MASTER`).
#[macro_export]
macro_rules! config_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),* }
        impl $crate::config::ConfigValue for $name {
            fn parse_value(s: &str) -> Result<Self, String> {
                match s.trim() {
                    $($text => Ok($name::$variant),)*
                    _ => Err(format!("expected one of: {}", [$($text),*].join(", "))),
                }
            }
            fn render(&self) -> String {
                match self { $($name::$variant => $text.to_string()),* }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&$crate::config::ConfigValue::render(self))
            }
        }
    };
}

/// Defines a typed config struct: each field has its camelCase key and its default.
#[macro_export]
macro_rules! config_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $key:literal => $default:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* #[doc = concat!("\n\nKey `", $key, "`.")] pub $field: $ty, )*
        }
        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )* }
            }
        }
        impl $name {
            /// Every key of this struct.
            pub const KEYS: &'static [&'static str] = &[$($key),*];
        }
        impl $crate::config::Configurable for $name {
            fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
                match key {
                    $( $key => { self.$field = <$ty as $crate::config::ConfigValue>::parse_value(value)?; Ok(true) } )*
                    _ => Ok(false),
                }
            }
            fn entries(&self) -> Vec<(&'static str, String)> {
                vec![$( ($key, $crate::config::ConfigValue::render(&self.$field)) ),*]
            }
            fn keys(&self) -> &'static [&'static str] {
                Self::KEYS
            }
        }
    };
}

/// Renders entries as properties text (`key=value\n`), as GET_BROKER_CONFIG answers.
pub fn to_properties_text(entries: &[(&str, String)]) -> String {
    let mut s = String::new();
    for (k, v) in entries {
        s.push_str(&properties::escape(k, true));
        s.push('=');
        s.push_str(&properties::escape(v, false));
        s.push('\n');
    }
    s
}

/// A path relative to a config file is resolved against that file's directory.
pub fn resolve_relative(base_file: &Path, p: &str) -> PathBuf {
    let p = Path::new(p.trim());
    let p = if let Some(rest) = p.to_str().and_then(|s| s.strip_prefix("~/")) {
        home_dir().join(rest)
    } else {
        p.to_path_buf()
    };
    if p.is_absolute() {
        p
    } else {
        base_file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// The user's home directory (`$HOME`, or `/` if unset).
pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

/// Shows a warning list one per line.
pub struct Warnings<'a>(pub &'a [String]);

impl fmt::Display for Warnings<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in self.0 {
            writeln!(f, "{w}")?;
        }
        Ok(())
    }
}

/// Rewrites a properties file with `updates` applied: lines of updated keys get the new value in
/// place, new keys are appended, comments and other lines are kept. Atomic: temp file, fsync, rename.
pub fn update_properties_file(path: &Path, updates: &[(String, String)]) -> std::io::Result<()> {
    // A missing file starts empty; any other read failure must not turn into a file holding only
    // the updates.
    let text = match read_config_text(path) {
        Ok(t) => t,
        Err(ConfigError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(ConfigError::Read { source, .. }) => return Err(source),
        Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
    };
    let mut done = vec![false; updates.len()];
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        let parsed = properties::parse(line).ok().and_then(|v| v.into_iter().next());
        let hit = parsed.as_ref().and_then(|e| updates.iter().position(|(k, _)| *k == e.key));
        match hit {
            Some(i) if !line.trim_end().ends_with('\\') => {
                let (k, v) = &updates[i];
                out.push_str(&format!("{}={}\n", properties::escape(k, true), properties::escape(v, false)));
                done[i] = true;
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (i, (k, v)) in updates.iter().enumerate() {
        if !done[i] {
            out.push_str(&format!("{}={}\n", properties::escape(k, true), properties::escape(v, false)));
        }
    }
    write_atomically(path, out.as_bytes())
}

/// Writes a file atomically: a temp file beside it, fsync, rename, fsync of the directory. The
/// directory is created if needed; the temp file is removed if anything fails.
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl ConfigValue for PathBuf {
    /// A leading `~/` is the home directory.
    fn parse_value(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("expected a path".into());
        }
        Ok(match s.strip_prefix("~/") {
            Some(rest) => home_dir().join(rest),
            None => PathBuf::from(s),
        })
    }
    fn render(&self) -> String {
        self.display().to_string()
    }
}

/// Implements [`Configurable`] for a struct defined elsewhere (e.g. the store's config), listing
/// each field with its key.
#[macro_export]
macro_rules! configurable_fields {
    ($ty:ty { $( $field:ident = $key:literal ),* $(,)? }) => {
        impl $crate::config::Configurable for $ty {
            fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
                match key {
                    $( $key => { self.$field = $crate::config::ConfigValue::parse_value(value)?; Ok(true) } )*
                    _ => Ok(false),
                }
            }
            fn entries(&self) -> Vec<(&'static str, String)> {
                vec![$( ($key, $crate::config::ConfigValue::render(&self.$field)) ),*]
            }
            fn keys(&self) -> &'static [&'static str] {
                &[$($key),*]
            }
        }
    };
}

/// Why a runtime config update (UPDATE_BROKER_CONFIG) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateRefusal {
    /// The body is not properties text.
    Unparsable(String),
    /// A key is in the black list.
    BlackListed(String),
    /// An unknown key, a frozen key or a bad value.
    Invalid(String),
    /// The accepted update could not be written back to the file.
    Persist(String),
}

/// Largest UPDATE_BROKER_CONFIG body accepted (a handful of keys is a few hundred bytes).
pub const MAX_UPDATE_BODY_BYTES: usize = 64 * 1024;

/// Applies a runtime update (properties text) to a copy of `current`. Refuses black-listed keys,
/// `frozen` keys (fixed while running), unknown keys, bad values, values with control characters,
/// and results that `validate` (the same whole-config checks the file loader runs) rejects,
/// changing nothing; writes the accepted keys back to `file` atomically. Returns the new value and
/// the keys it changed.
pub fn apply_runtime_update<T: Configurable + Clone>(
    current: &T,
    body: &[u8],
    black: &[&str],
    frozen: &[&str],
    validate: &dyn Fn(&T) -> Result<(), String>,
    file: Option<&Path>,
) -> Result<(T, Vec<String>), UpdateRefusal> {
    if body.len() > MAX_UPDATE_BODY_BYTES {
        return Err(UpdateRefusal::Unparsable(format!(
            "body of {} bytes is above {MAX_UPDATE_BODY_BYTES}",
            body.len()
        )));
    }
    let text = std::str::from_utf8(body).map_err(|_| UpdateRefusal::Unparsable("body is not UTF-8".into()))?;
    let origin = file.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("<request>"));
    let raw = RawConfig::from_properties(&origin, text).map_err(|e| UpdateRefusal::Unparsable(e.to_string()))?;
    if raw.entries.is_empty() {
        return Err(UpdateRefusal::Invalid("the update names no key".into()));
    }
    if let Some(e) = raw.entries.iter().find(|e| black.contains(&e.key.as_str())) {
        return Err(UpdateRefusal::BlackListed(e.key.clone()));
    }
    if let Some(e) = raw.entries.iter().find(|e| frozen.contains(&e.key.as_str())) {
        return Err(UpdateRefusal::Invalid(format!("key '{}' cannot change while running", e.key)));
    }
    if let Some(e) = raw.entries.iter().find(|e| e.key.chars().chain(e.value.chars()).any(char::is_control)) {
        return Err(UpdateRefusal::Invalid(format!(
            "key '{}': control characters are not allowed",
            e.key.escape_debug()
        )));
    }
    let mut next = current.clone();
    let unknown =
        raw.apply(&mut [&mut next as &mut dyn Configurable]).map_err(|e| UpdateRefusal::Invalid(e.to_string()))?;
    if !unknown.is_empty() {
        return Err(UpdateRefusal::Invalid(unknown.join("; ")));
    }
    validate(&next).map_err(UpdateRefusal::Invalid)?;
    let updates: Vec<(String, String)> = raw.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
    if let Some(f) = file {
        update_properties_file(f, &updates)
            .map_err(|e| UpdateRefusal::Persist(format!("cannot persist {}: {e}", f.display())))?;
    }
    Ok((next, updates.into_iter().map(|(k, _)| k).collect()))
}

#[cfg(test)]
mod update_tests {
    use super::*;

    crate::config_struct! {
        /// A small config for the tests.
        pub struct Small {
            /// A number.
            port: u16 = "port" => 1,
            /// A flag.
            on: bool = "on" => false,
        }
    }

    #[test]
    fn runtime_updates_refuse_and_apply() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.conf");
        std::fs::write(&file, "# kept\nport=1\n").unwrap();
        let cur = Small::default();
        let check = |s: &Small| if s.port == 0 { Err("port 0".to_string()) } else { Ok(()) };
        let upd =
            |body: &str| apply_runtime_update(&cur, body.as_bytes(), &["secret"], &["frozenKey"], &check, Some(&file));
        assert_eq!(upd("secret=1").unwrap_err(), UpdateRefusal::BlackListed("secret".into()));
        assert!(matches!(upd("frozenKey=2"), Err(UpdateRefusal::Invalid(m)) if m.contains("frozenKey")));
        assert!(matches!(upd("nope=2"), Err(UpdateRefusal::Invalid(m)) if m.contains("nope")));
        assert!(matches!(upd("port=x"), Err(UpdateRefusal::Invalid(m)) if m.contains("port")));
        assert!(matches!(upd("port=0"), Err(UpdateRefusal::Invalid(m)) if m.contains("port 0")));
        assert!(matches!(upd("port=7\\n\\u0000"), Err(UpdateRefusal::Invalid(m)) if m.contains("control")));
        assert!(matches!(upd(""), Err(UpdateRefusal::Invalid(_))));
        assert!(matches!(
            apply_runtime_update(&cur, &[0xff], &[], &[], &check, None),
            Err(UpdateRefusal::Unparsable(_))
        ));
        let big = format!("on={}", "x".repeat(MAX_UPDATE_BODY_BYTES));
        assert!(matches!(upd(&big), Err(UpdateRefusal::Unparsable(_))));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "# kept\nport=1\n", "refusals change nothing");
        let (next, keys) = upd("port=7\non=true").unwrap();
        assert_eq!((next.port, next.on, keys), (7, true, vec!["port".to_string(), "on".to_string()]));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "# kept\nport=7\non=true\n");
    }
}
