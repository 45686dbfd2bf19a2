//! The access-control keys (Apache's `AuthConfig`), read from a broker's config file (and, for the
//! container's admin port, from the container's), validated once into [`AuthSettings`].

use std::path::{Path, PathBuf};

use super::model::{User, UserInfo, UserType};
use super::signature::Credentials;
use crate::config::ConfigValue;
use crate::config_struct;

/// A config value holding a secret: read as written, shown masked (`-p`, GET_BROKER_CONFIG, logs).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

/// What a masked secret shows.
pub const MASK: &str = "******";

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl ConfigValue for Secret {
    fn parse_value(s: &str) -> Result<Self, String> {
        Ok(Secret(s.trim().to_string()))
    }
    /// JSON objects keep their shape with `password` / `secretKey` masked; anything else is masked
    /// whole. Empty stays empty.
    fn render(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        match serde_json::from_str::<serde_json::Value>(&self.0) {
            Ok(serde_json::Value::Object(mut m)) => {
                for k in ["password", "secretKey", "securityToken"] {
                    if let Some(v) = m.get_mut(k) {
                        *v = serde_json::Value::String(MASK.into());
                    }
                }
                serde_json::Value::Object(m).to_string()
            }
            _ => MASK.into(),
        }
    }
}

config_struct! {
    /// Access control keys, Apache's names and defaults.
    pub struct AuthConfig {
        /// Check request signatures.
        authentication_enabled: bool = "authenticationEnabled" => false,
        /// Check ACLs (after authentication).
        authorization_enabled: bool = "authorizationEnabled" => false,
        /// Apache's provider class; only the default is supported (blank or the default name).
        authentication_provider: String = "authenticationProvider" => String::new(),
        /// Apache's provider class; only the default is supported.
        authorization_provider: String = "authorizationProvider" => String::new(),
        /// Apache's metadata provider class; users always come from the local store.
        authentication_metadata_provider: String = "authenticationMetadataProvider" => String::new(),
        /// Apache's metadata provider class; ACLs always come from the local store.
        authorization_metadata_provider: String = "authorizationMetadataProvider" => String::new(),
        /// Apache's strategy class; every request is checked (stateless).
        authentication_strategy: String = "authenticationStrategy" => String::new(),
        /// Apache's strategy class; every request is checked (stateless).
        authorization_strategy: String = "authorizationStrategy" => String::new(),
        /// Request codes that skip authentication, comma-separated.
        authentication_whitelist: String = "authenticationWhitelist" => String::new(),
        /// Request codes that skip authorization, comma-separated.
        authorization_whitelist: String = "authorizationWhitelist" => String::new(),
        /// JSON user created as Super at start if absent, e.g. `{"username":"rocketmq","password":"12345678"}`.
        init_authentication_user: Secret = "initAuthenticationUser" => Secret::default(),
        /// JSON `{"accessKey":"..","secretKey":".."}`: the broker signs its own requests (registration,
        /// slave sync) with it; created as a Super user at start if absent.
        inner_client_authentication_credentials: Secret = "innerClientAuthenticationCredentials" => Secret::default(),
        /// Import ACL 1.0's `plain_acl.yml` at start (existing users are kept).
        migrate_auth_from_v1_enabled: bool = "migrateAuthFromV1Enabled" => false,
        /// Where users.json and acls.json live (default `<storePathRootDir>/config`).
        auth_config_path: String = "authConfigPath" => String::new(),
        /// ACL 1.0 file to import (our key; default `$ROCKETMQ_HOME/conf/plain_acl.yml`, Apache's
        /// system property `rocketmq.acl.plain.file`); `*.yml` in `conf/acl/` beside it are read too.
        plain_acl_file: String = "aclPlainFile" => String::new(),
        /// A hosted broker uses its container's user and ACL store instead of its own (our key).
        use_container_auth_store: bool = "useContainerAuthStore" => false,
        /// Apache's cache sizes and times: accepted, not needed (everything is in memory).
        user_cache_max_num: u64 = "userCacheMaxNum" => 1000,
        /// Accepted, not needed.
        user_cache_expired_second: u64 = "userCacheExpiredSecond" => 600,
        /// Accepted, not needed.
        user_cache_refresh_second: u64 = "userCacheRefreshSecond" => 60,
        /// Accepted, not needed.
        acl_cache_max_num: u64 = "aclCacheMaxNum" => 1000,
        /// Accepted, not needed.
        acl_cache_expired_second: u64 = "aclCacheExpiredSecond" => 600,
        /// Accepted, not needed.
        acl_cache_refresh_second: u64 = "aclCacheRefreshSecond" => 60,
    }
}

/// The access-control settings, validated.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// Check signatures.
    pub authentication: bool,
    /// Check ACLs.
    pub authorization: bool,
    /// Codes that skip authentication.
    pub authentication_whitelist: Vec<i32>,
    /// Codes that skip authorization.
    pub authorization_whitelist: Vec<i32>,
    /// The user created at start.
    pub init_user: Option<User>,
    /// The broker's own signing credentials.
    pub inner_credentials: Option<Credentials>,
    /// Import plain_acl.yml at start.
    pub migrate_v1: bool,
    /// Where the store files live.
    pub dir: PathBuf,
    /// The ACL 1.0 file.
    pub plain_acl_file: PathBuf,
    /// Use the container's store.
    pub use_container_store: bool,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsJson {
    #[serde(default)]
    access_key: String,
    #[serde(default)]
    secret_key: String,
    #[serde(default)]
    security_token: Option<String>,
}

fn codes(key: &str, s: &str) -> Result<Vec<i32>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| c.parse::<i32>().map_err(|_| format!("{key}: '{c}' is not a request code")))
        .collect()
}

fn provider_ok(key: &str, v: &str, default_class: &str) -> Result<(), String> {
    let v = v.trim();
    if v.is_empty() || v.ends_with(default_class) {
        Ok(())
    } else {
        Err(format!("{key} '{v}' is not supported: only {default_class}"))
    }
}

impl AuthConfig {
    /// Validates the keys; `store_root` is `storePathRootDir` (the default store is its `config/`).
    pub fn settings(&self, store_root: &Path) -> Result<AuthSettings, String> {
        provider_ok("authenticationProvider", &self.authentication_provider, "DefaultAuthenticationProvider")?;
        provider_ok("authorizationProvider", &self.authorization_provider, "DefaultAuthorizationProvider")?;
        provider_ok(
            "authenticationMetadataProvider",
            &self.authentication_metadata_provider,
            "LocalAuthenticationMetadataProvider",
        )?;
        provider_ok(
            "authorizationMetadataProvider",
            &self.authorization_metadata_provider,
            "LocalAuthorizationMetadataProvider",
        )?;
        let init_user = if self.init_authentication_user.0.is_empty() {
            None
        } else {
            let info: UserInfo = serde_json::from_str(&self.init_authentication_user.0)
                .map_err(|e| format!("initAuthenticationUser is not a JSON user: {e}"))?;
            let mut u = User::from_info(&info).map_err(|e| format!("initAuthenticationUser: {e}"))?;
            u.user_type = UserType::Super;
            Some(u)
        };
        let inner_credentials = if self.inner_client_authentication_credentials.0.is_empty() {
            None
        } else {
            let c: CredentialsJson =
                serde_json::from_str(&self.inner_client_authentication_credentials.0).map_err(|e| {
                    format!("innerClientAuthenticationCredentials is not JSON {{accessKey, secretKey}}: {e}")
                })?;
            if c.access_key.trim().is_empty() || c.secret_key.is_empty() {
                return Err("innerClientAuthenticationCredentials needs accessKey and secretKey".into());
            }
            if c.access_key.len() > super::signature::MAX_ACCESS_KEY_LEN
                || c.secret_key.len() > super::signature::MAX_SECRET_KEY_LEN
            {
                return Err("innerClientAuthenticationCredentials: accessKey or secretKey too long".into());
            }
            Some(Credentials { access_key: c.access_key, secret_key: c.secret_key, security_token: c.security_token })
        };
        let dir = if self.auth_config_path.trim().is_empty() {
            store_root.join("config")
        } else {
            PathBuf::parse_value(&self.auth_config_path)?
        };
        let plain_acl_file = if self.plain_acl_file.trim().is_empty() {
            let home = std::env::var("ROCKETMQ_HOME").unwrap_or_default();
            Path::new(&home).join("conf").join("plain_acl.yml")
        } else {
            PathBuf::parse_value(&self.plain_acl_file)?
        };
        Ok(AuthSettings {
            authentication: self.authentication_enabled,
            authorization: self.authorization_enabled,
            authentication_whitelist: codes("authenticationWhitelist", &self.authentication_whitelist)?,
            authorization_whitelist: codes("authorizationWhitelist", &self.authorization_whitelist)?,
            init_user,
            inner_credentials,
            migrate_v1: self.migrate_auth_from_v1_enabled,
            dir,
            plain_acl_file,
            use_container_store: self.use_container_auth_store,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Configurable;

    #[test]
    fn secrets_are_masked_and_settings_validated() {
        let mut c = AuthConfig::default();
        c.set("initAuthenticationUser", r#"{"username":"rocketmq","password":"12345678"}"#).unwrap();
        c.set("innerClientAuthenticationCredentials", r#"{"accessKey":"inner","secretKey":"s3cr3t"}"#).unwrap();
        c.set("authenticationWhitelist", "34, 105").unwrap();
        let shown = crate::config::to_properties_text(&c.entries());
        assert!(!shown.contains("12345678") && !shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("rocketmq") && shown.contains("inner"), "{shown}");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let s = c.settings(Path::new("/tmp/store")).unwrap();
        assert_eq!(s.authentication_whitelist, vec![34, 105]);
        assert_eq!(s.init_user.unwrap().user_type, UserType::Super);
        assert_eq!(s.inner_credentials.unwrap().secret_key, "s3cr3t");
        assert_eq!(s.dir, Path::new("/tmp/store/config"));
        c.set("authenticationWhitelist", "x").unwrap();
        assert!(c.settings(Path::new("/")).is_err());
        let mut c = AuthConfig::default();
        c.set("innerClientAuthenticationCredentials", "not json").unwrap();
        assert_eq!(c.entries().iter().find(|(k, _)| *k == "innerClientAuthenticationCredentials").unwrap().1, MASK);
        assert!(c.settings(Path::new("/")).is_err());
        c = AuthConfig::default();
        c.set("authenticationProvider", "com.example.Mine").unwrap();
        assert!(c.settings(Path::new("/")).is_err());
    }
}
