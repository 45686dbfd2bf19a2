//! Request signatures of ACL (Apache's `AclClientRPCHook` / `AclUtils` / `AclSigner`): the
//! client adds `AccessKey` (and `SecurityToken`) to the header fields, then signs the values of
//! every header field sorted by key (`Signature` excluded), concatenated without separators, then
//! the body, with HMAC-SHA1 keyed by the secret key; the signature travels base64-encoded in
//! `Signature`.
//!
//! The content is streamed into the MAC (never copied), every field has a size bound, and the
//! comparison is constant-time.

use base64::Engine;
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

use crate::remoting::{RemotingCommand, RpcHook};

/// Header field carrying the access key (the ACL 2.0 username).
pub const ACCESS_KEY: &str = "AccessKey";
/// Header field carrying the signature.
pub const SIGNATURE: &str = "Signature";
/// Header field carrying an optional security token (signed like any other field).
pub const SECURITY_TOKEN: &str = "SecurityToken";
/// Left out of the signed content when the request's `version` is at most [`V4_9_3`] (Apache's quirk).
pub const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";
/// `MQVersion.V4_9_3` ordinal.
pub const V4_9_3: i32 = 399;

/// Longest access key (username) accepted.
pub const MAX_ACCESS_KEY_LEN: usize = 256;
/// Longest signature accepted (a base64 HMAC-SHA1 is 28 characters; room for others).
pub const MAX_SIGNATURE_LEN: usize = 128;
/// Longest security token accepted.
pub const MAX_SECURITY_TOKEN_LEN: usize = 4096;
/// Longest secret key accepted.
pub const MAX_SECRET_KEY_LEN: usize = 1024;

type HmacSha1 = hmac::Hmac<sha1::Sha1>;

/// Base64(HMAC-SHA1(secret, content)) over a request's header fields and body, as the client
/// computes it before sending (and the broker after receiving). `skip_unique_key_query` leaves
/// [`UNIQUE_KEY_QUERY`] out (requests from clients of version <= 4.9.3).
pub fn sign(secret: &[u8], request: &RemotingCommand, skip_unique_key_query: bool) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match <HmacSha1 as KeyInit>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    for (k, v) in &request.ext_fields {
        if k == SIGNATURE || (skip_unique_key_query && k == UNIQUE_KEY_QUERY) {
            continue;
        }
        mac.update(v.as_bytes());
    }
    mac.update(&request.body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Constant-time comparison of a received signature with the expected one.
pub fn signature_matches(expected: &str, received: &str) -> bool {
    expected.as_bytes().ct_eq(received.as_bytes()).into()
}

/// Why a request's signature fields cannot even be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureFieldError {
    /// A field is larger than its bound.
    #[error("the field {field} is {len} bytes, above the limit of {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
}

/// The access key, signature and security token of a request, each within its bound.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignedFields<'a> {
    /// `AccessKey`, if present and not blank.
    pub access_key: Option<&'a str>,
    /// `Signature`, if present.
    pub signature: Option<&'a str>,
    /// `SecurityToken`, if present.
    pub security_token: Option<&'a str>,
}

/// Reads the signature fields of a request, refusing oversized ones.
pub fn signed_fields(request: &RemotingCommand) -> Result<SignedFields<'_>, SignatureFieldError> {
    let get = |field: &'static str, max: usize| -> Result<Option<&str>, SignatureFieldError> {
        match request.ext_fields.get(field) {
            None => Ok(None),
            Some(v) if v.len() > max => Err(SignatureFieldError::TooLong { field, len: v.len(), max }),
            Some(v) => Ok(Some(v.as_str())),
        }
    };
    Ok(SignedFields {
        access_key: get(ACCESS_KEY, MAX_ACCESS_KEY_LEN)?.filter(|s| !s.trim().is_empty()),
        signature: get(SIGNATURE, MAX_SIGNATURE_LEN)?,
        security_token: get(SECURITY_TOKEN, MAX_SECURITY_TOKEN_LEN)?,
    })
}

/// An access key and secret key (and optional token) that sign requests.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key (the username).
    pub access_key: String,
    /// Secret key (the user's password).
    pub secret_key: String,
    /// Security token, if any.
    pub security_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Credentials").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials without a token.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Credentials { access_key: access_key.into(), secret_key: secret_key.into(), security_token: None }
    }

    /// Signs `request` in place (Apache's `AclClientRPCHook.doBeforeRequest`): adds `AccessKey`
    /// (and `SecurityToken`), then `Signature` over every field and the body.
    pub fn sign_request(&self, request: &mut RemotingCommand) {
        request.ext_fields.remove(SIGNATURE);
        request.ext_fields.insert(ACCESS_KEY.to_string(), self.access_key.clone());
        if let Some(t) = &self.security_token {
            request.ext_fields.insert(SECURITY_TOKEN.to_string(), t.clone());
        }
        let sig = sign(self.secret_key.as_bytes(), request, false);
        request.ext_fields.insert(SIGNATURE.to_string(), sig);
    }
}

/// An [`RpcHook`] that signs every request of a client with [`Credentials`].
#[derive(Debug, Clone)]
pub struct AclClientRpcHook(pub Credentials);

impl RpcHook for AclClientRpcHook {
    fn before_request(&self, _addr: &str, request: &mut RemotingCommand) {
        self.0.sign_request(request);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn signs_sorted_values_then_body() {
        let mut r = RemotingCommand::request(10);
        r.ext_fields.insert("b".into(), "2".into());
        r.ext_fields.insert("a".into(), "1".into());
        r.body = Bytes::from_static(b"xyz");
        let c = Credentials::new("ak", "sk");
        c.sign_request(&mut r);
        // content = values sorted by key: "1" (a), "ak" (AccessKey sorts first: 'A' < 'a'), ...
        // AccessKey < a < b in byte order.
        let mut mac = <HmacSha1 as KeyInit>::new_from_slice(b"sk").unwrap();
        mac.update(b"ak12xyz");
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(r.ext_fields[SIGNATURE], want);
        assert_eq!(want.len(), 28);
        assert!(signature_matches(&sign(b"sk", &r, false), &r.ext_fields[SIGNATURE]));
        assert!(!signature_matches(&sign(b"other", &r, false), &r.ext_fields[SIGNATURE]));
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA1 test vector (RFC 2202 case 2): key "Jefe", data "what do ya want for nothing?".
        let mut r = RemotingCommand::request(10);
        r.body = Bytes::from_static(b"what do ya want for nothing?");
        // 0xeffcdf6ae5eb2fa2d27416d5f184df9c259a7c79
        assert_eq!(sign(b"Jefe", &r, false), "7/zfauXrL6LSdBbV8YTfnCWafHk=");
    }

    #[test]
    fn unique_key_query_is_skipped_for_old_clients() {
        let mut r = RemotingCommand::request(12);
        r.ext_fields.insert(UNIQUE_KEY_QUERY.into(), "true".into());
        let with = sign(b"k", &r, false);
        let without = sign(b"k", &r, true);
        r.ext_fields.remove(UNIQUE_KEY_QUERY);
        assert_eq!(without, sign(b"k", &r, false));
        assert_ne!(with, without);
    }

    #[test]
    fn oversized_fields_are_refused() {
        let mut r = RemotingCommand::request(10);
        r.ext_fields.insert(ACCESS_KEY.into(), "a".repeat(MAX_ACCESS_KEY_LEN + 1));
        assert!(matches!(signed_fields(&r), Err(SignatureFieldError::TooLong { field: ACCESS_KEY, .. })));
        r.ext_fields.insert(ACCESS_KEY.into(), "  ".into());
        assert_eq!(signed_fields(&r).unwrap().access_key, None);
    }
}
