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
