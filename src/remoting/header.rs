//! Typed request and response headers: the `extFields` of a command read into and written from
//! structs (`command_header!`), with Apache's lenient value parsing.

use super::command::ExtFields;

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
    /// Like [`CommandHeader::read_ext_fields`], moving the string values out of the map instead of
    /// copying them (the fields read are left empty): for a request handler that needs the
    /// fields no more.
    fn take_ext_fields(map: &mut ExtFields) -> Result<Self, HeaderError> {
        Self::read_ext_fields(map)
    }
    /// Like [`CommandHeader::write_ext_fields`], moving the string values into the map.
    fn into_ext_fields(self, map: &mut ExtFields) {
        self.write_ext_fields(map)
    }
}

/// A value that can travel in an `extFields` string.
pub trait HeaderValue: Sized {
    /// Parses the wire string.
    fn parse_header(s: &str) -> Option<Self>;
    /// The wire string.
    fn to_header(&self) -> String;
    /// Parses an owned wire string (a `String` field takes it as is); the string back when it
    /// does not parse.
    fn from_header_owned(s: String) -> Result<Self, String> {
        Self::parse_header(&s).ok_or(s)
    }
    /// The wire string, consuming the value (a `String` is moved, not copied).
    fn into_header(self) -> String {
        self.to_header()
    }
}

impl HeaderValue for String {
    fn parse_header(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
    fn from_header_owned(s: String) -> Result<Self, String> {
        Ok(s)
    }
    fn into_header(self) -> String {
        self
    }
    fn to_header(&self) -> String {
        self.clone()
    }
}

/// `v` in decimal, what `to_string` gives, without the formatting machinery (headers write a
/// handful of numbers per request).
fn decimal(v: i128) -> String {
    let mut buf = [0u8; 40];
    // Only ASCII digits and '-' are written.
    String::from_utf8_lossy(super::command::decimal_ascii(v, &mut buf)).into_owned()
}

macro_rules! header_num {
    ($($t:ty),*) => {$(
        impl HeaderValue for $t {
            fn parse_header(s: &str) -> Option<Self> {
                s.trim().parse().ok()
            }
            fn to_header(&self) -> String {
                decimal(*self as i128)
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
        String::from(if *self { "true" } else { "false" })
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
            fn into_ext_fields(self, map: &mut $crate::remoting::command::ExtFields) {
                #[allow(unused_imports)]
                use $crate::remoting::command::HeaderValue;
                $( $crate::command_header!(@into $kind self.$field, $key, map); )*
            }
            fn take_ext_fields(
                map: &mut $crate::remoting::command::ExtFields,
            ) -> Result<Self, $crate::remoting::command::HeaderError> {
                #[allow(unused_imports)]
                use $crate::remoting::command::HeaderValue;
                Ok($name {
                    $( $field: $crate::command_header!(@take $kind $ty, $key, map), )*
                })
            }
        }
    };
    (@ty req $ty:ty) => { $ty };
    (@ty opt $ty:ty) => { Option<$ty> };
    (@write req $v:expr, $key:literal, $map:ident) => {
        $map.insert_static($key, $v.to_header());
    };
    (@write opt $v:expr, $key:literal, $map:ident) => {
        if let Some(v) = &$v {
            $map.insert_static($key, v.to_header());
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
    (@into req $v:expr, $key:literal, $map:ident) => {
        $map.insert_static($key, $v.into_header());
    };
    (@into opt $v:expr, $key:literal, $map:ident) => {
        if let Some(v) = $v {
            $map.insert_static($key, v.into_header());
        }
    };
    (@take req $ty:ty, $key:literal, $map:ident) => {
        match $map.take($key) {
            None => return Err($crate::remoting::command::HeaderError::Missing($key)),
            Some(s) => <$ty>::from_header_owned(s).map_err(|value| {
                $crate::remoting::command::HeaderError::Invalid { field: $key, value }
            })?,
        }
    };
    (@take opt $ty:ty, $key:literal, $map:ident) => {
        match $map.take($key) {
            None => None,
            Some(s) if s.is_empty() => None,
            Some(s) => Some(<$ty>::from_header_owned(s).map_err(|value| {
                $crate::remoting::command::HeaderError::Invalid { field: $key, value }
            })?),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_booleans_write_what_to_string_writes() {
        for v in [0i64, 1, -1, 9, 10, 479, -2147483648, i64::MAX, i64::MIN, 1_732_000_000_123] {
            assert_eq!(v.to_header(), v.to_string());
        }
        for v in [0u64, u64::MAX] {
            assert_eq!(v.to_header(), v.to_string());
        }
        for v in [i32::MIN, i32::MAX, -7] {
            assert_eq!(v.to_header(), v.to_string());
        }
        assert_eq!(i16::MIN.to_header(), i16::MIN.to_string());
        assert_eq!(u32::MAX.to_header(), u32::MAX.to_string());
        assert_eq!(true.to_header(), "true");
        assert_eq!(false.to_header(), "false");
    }
}
