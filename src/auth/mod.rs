//! Access control (RocketMQ 5's ACL 2.0): who a request comes from (authentication: the
//! `AccessKey` and its HMAC `Signature`), and whether that user may do what it asks
//! (authorization: ACL policies over topics, groups, the cluster).
//!
//! - [`signature`]: signing requests (client side) and checking them (server side);
//! - [`model`]: users, ACLs, policies, entries, resources, actions;
//! - [`store`]: users and ACLs in memory and in `config/users.json` / `config/acls.json`;
//! - [`context`]: what each request code asks for (resource + actions);
//! - [`config`]: Apache's `AuthConfig` keys;
//! - [`admin`]: the admin requests 3001-3010;
//! - [`migrate`]: importing ACL 1.0's `plain_acl.yml`.
//!
//! [`AuthGuard`] runs both checks for one request; [`Guarded`] puts it in front of a processor,
//! at the processor edge, and answers NO_PERMISSION (16) with a remark and an audit line
//! (tracing target `audit`, routed to the broker's `auth_audit.log`).

pub mod admin;
pub mod config;
pub mod context;
pub mod migrate;
pub mod model;
pub mod signature;
pub mod store;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::protocol::codes::response;
use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RequestProcessor};
use config::AuthSettings;
use model::{Action, Decision, PolicyEntry, PolicyType, ResourcePattern, ResourceType, UserStatus, UserType};
use store::AuthStore;

/// Errors of the access-control layer.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request could not be authenticated.
    #[error("{0}")]
    Authentication(String),
    /// The user may not do this.
    #[error("{0}")]
    Authorization(String),
    /// A user, ACL or field is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Not there.
    #[error("{0}")]
    NotFound(String),
    /// Already there.
    #[error("{0}")]
    Exists(String),
    /// A store file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Refused for another reason (answered SYSTEM_ERROR, as Apache does).
    #[error("{0}")]
    Other(String),
    /// A store file does not parse.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl AuthError {
    /// The response code Apache answers this error with.
    pub fn response_code(&self) -> i32 {
        match self {
            AuthError::Authentication(_) | AuthError::Authorization(_) => response::NO_PERMISSION,
            AuthError::Invalid(_) => response::INVALID_PARAMETER,
            _ => response::SYSTEM_ERROR,
        }
    }
}

/// Authentication and authorization of one broker (or of the container's admin port).
pub struct AuthGuard {
    settings: AuthSettings,
    store: Arc<AuthStore>,
    cluster: String,
}

impl std::fmt::Debug for AuthGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthGuard").field("cluster", &self.cluster).finish_non_exhaustive()
    }
}

/// The source IP of a peer, IPv4-mapped addresses as IPv4.
fn source_ip(peer: std::net::SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl AuthGuard {
    /// A guard over `store`; `cluster` names the `Cluster:` resource of cluster-wide requests.
    pub fn new(settings: AuthSettings, store: Arc<AuthStore>, cluster: impl Into<String>) -> Self {
        AuthGuard { settings, store, cluster: cluster.into() }
    }

    /// The store.
    pub fn store(&self) -> &Arc<AuthStore> {
        &self.store
    }

    /// The settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// True when either check is on.
    pub fn enabled(&self) -> bool {
        self.settings.authentication || self.settings.authorization
    }

    /// Authenticates a request: `Ok(Some(username))` when it is signed correctly, `Ok(None)` when
    /// authentication is off or the code is whitelisted.
    pub fn authenticate(&self, req: &RemotingCommand) -> Result<Option<String>, AuthError> {
        if !self.settings.authentication || self.settings.authentication_whitelist.contains(&req.code) {
            return Ok(None);
        }
        let fail = |m: String| Err(AuthError::Authentication(m));
        let fields = match signature::signed_fields(req) {
            Ok(f) => f,
            Err(e) => return fail(e.to_string()),
        };
        let Some(ak) = fields.access_key else { return fail("username cannot be null.".into()) };
        let Some(user) = self.store.user(ak) else { return fail(format!("User:{ak} is not found.")) };
        if user.user_status == UserStatus::Disable {
            return fail(format!("User:{ak} is disabled."));
        }
        let Some(sig) = fields.signature else { return fail("check signature failed.".into()) };
        let expected = signature::sign(user.password.as_bytes(), req, req.version <= signature::V4_9_3);
        if !signature::signature_matches(&expected, sig) {
            return fail("check signature failed.".into());
        }
        Ok(Some(user.username))
    }

    /// Authorizes a request of `username` (the `AccessKey`, verified or not) from `peer`.
    pub fn authorize(
        &self,
        username: Option<&str>,
        peer: std::net::SocketAddr,
        req: &RemotingCommand,
    ) -> Result<(), AuthError> {
        if !self.settings.authorization || self.settings.authorization_whitelist.contains(&req.code) {
            return Ok(());
        }
        let wanted = context::contexts(req, &self.cluster).map_err(AuthError::Authorization)?;
        if wanted.is_empty() {
            return Ok(());
        }
        let ip = source_ip(peer);
        let Some(name) = username else {
            return Err(AuthError::Authorization(format!("no subject: the request from {ip} carries no AccessKey")));
        };
        let subject = format!("User:{name}");
        let Some(user) = self.store.user(name) else {
            return Err(AuthError::Authorization(format!("{subject} is not found.")));
        };
        if user.user_type == UserType::Super {
            return Ok(());
        }
        let acl = self.store.acl(&subject);
        for w in &wanted {
            let deny = |detail: &str| {
                Err(AuthError::Authorization(format!(
                    "{subject} has no permission to access {} from {ip}, {detail}",
                    w.resource
                )))
            };
            let Some(acl) = &acl else { return deny("no matched policies.") };
            match evaluate(acl, &w.resource, &w.actions, ip) {
                None => return deny("no matched policies."),
                Some(Decision::Deny) => return deny("the decision is deny."),
                Some(Decision::Allow) => {}
            }
        }
        Ok(())
    }

    /// Both checks; on failure the audit line is written and the error returned.
    pub fn check(&self, peer: std::net::SocketAddr, req: &RemotingCommand) -> Result<(), AuthError> {
        let user = match self.authenticate(req) {
            Ok(u) => u,
            Err(e) => {
                let ak = req.ext_fields.get(signature::ACCESS_KEY).map(|s| clip(s)).unwrap_or_default();
                let sig = req.ext_fields.get(signature::SIGNATURE).map(|s| clip(s)).unwrap_or_default();
                tracing::warn!(
                    target: "audit",
                    "[AUTHENTICATION] User:{ak} is authenticated failed with Signature = {sig}. code={} from {} : {e}",
                    req.code,
                    peer
                );
                return Err(e);
            }
        };
        let name = user.or_else(|| signature::signed_fields(req).ok().and_then(|f| f.access_key).map(str::to_string));
        if let Err(e) = self.authorize(name.as_deref(), peer, req) {
            tracing::warn!(
                target: "audit",
                "[AUTHORIZATION] Subject = User:{} is Deny code={} from sourceIp = {} : {e}",
                name.as_deref().map(clip).unwrap_or_default(),
                req.code,
                source_ip(peer)
            );
            return Err(e);
        }
        Ok(())
    }

    /// True if the request is signed by an enabled Super user (the container's admin checks).
    pub fn is_super_request(&self, req: &RemotingCommand) -> Result<String, AuthError> {
        let settings =
            AuthSettings { authentication: true, authentication_whitelist: Vec::new(), ..self.settings.clone() };
        let g = AuthGuard { settings, store: self.store.clone(), cluster: self.cluster.clone() };
        match g.authenticate(req)? {
            Some(u) if self.store.is_super(&u) => Ok(u),
            Some(u) => Err(AuthError::Authorization(format!("User:{u} is not a Super user."))),
            None => Err(AuthError::Authentication("username cannot be null.".into())),
        }
    }
}

/// A value for a log line: at most 64 characters, control characters escaped.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_default).collect();
    if s.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

/// Apache's entry order: resource type `Any` last; LITERAL, then PREFIXED (longer prefix first),
/// then ANY patterns; on a tie Deny first.
fn entry_order(a: &PolicyEntry, b: &PolicyEntry) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ra, rb) = (&a.resource, &b.resource);
    let type_rank = |t: ResourceType| if t == ResourceType::Any { 1 } else { 0 };
    let pat_rank = |p: ResourcePattern| match p {
        ResourcePattern::Literal => 0,
        ResourcePattern::Prefixed => 1,
        ResourcePattern::Any => 2,
    };
    type_rank(ra.rtype)
        .cmp(&type_rank(rb.rtype))
        .then(pat_rank(ra.pattern).cmp(&pat_rank(rb.pattern)))
        .then_with(|| {
            if ra.pattern == ResourcePattern::Prefixed && rb.pattern == ResourcePattern::Prefixed {
                rb.name.len().cmp(&ra.name.len())
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| {
            let d = |e: &PolicyEntry| if e.decision == Decision::Deny { 0 } else { 1 };
            d(a).cmp(&d(b))
        })
}

/// The decision of an ACL for one resource and actions from `ip`: the most specific matching
/// entry of the Custom policy, or of the Default policy when no Custom entry matches; None when
/// nothing matches.
pub fn evaluate(acl: &model::Acl, resource: &model::Resource, actions: &[Action], ip: IpAddr) -> Option<Decision> {
    let matching = |t: PolicyType| -> Vec<&PolicyEntry> {
        acl.policy(t)
            .map(|p| {
                p.entries
                    .iter()
                    .filter(|e| {
                        e.resource.matches(resource) && e.matches_actions(actions) && e.matches_source(Some(ip))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut found = matching(PolicyType::Custom);
    if found.is_empty() {
        found = matching(PolicyType::Default);
    }
    found.sort_by(|a, b| entry_order(a, b));
    found.first().map(|e| e.decision)
}

/// A processor behind [`AuthGuard`]: a request that fails either check is answered NO_PERMISSION
/// (16) with the reason and never reaches the processor.
pub struct Guarded<P> {
    /// The processor.
    pub inner: P,
    /// The checks.
    pub guard: Arc<AuthGuard>,
}

impl<P: RequestProcessor> RequestProcessor for Guarded<P> {
    fn process<'a>(
        &'a self,
        conn: &'a ConnectionHandle,
        request: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move {
            if let Err(e) = self.guard.check(conn.peer(), &request) {
                return Some(RemotingCommand::error(&request, response::NO_PERMISSION, e.to_string()));
            }
            self.inner.process(conn, request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Acl, AclInfo, Resource};

    fn acl(json: &str) -> Acl {
        Acl::from_info(None, &serde_json::from_str::<AclInfo>(json).unwrap()).unwrap()
    }

    #[test]
    fn most_specific_entry_wins() {
        let a = acl(r#"{"subject":"User:u","policies":[{"policyType":"Custom","entries":[
            {"resource":"Topic:*","actions":["Pub"],"decision":"Deny"},
            {"resource":"Topic:test*","actions":["Pub"],"decision":"Allow"},
            {"resource":"Topic:test-1","actions":["Pub"],"decision":"Deny"},
            {"resource":"Topic:te*","actions":["Pub"],"decision":"Deny"}]}]}"#);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t = |n: &str| Resource::literal(ResourceType::Topic, n);
        assert_eq!(evaluate(&a, &t("test-1"), &[Action::Pub], ip), Some(Decision::Deny));
        assert_eq!(evaluate(&a, &t("test-2"), &[Action::Pub], ip), Some(Decision::Allow));
        assert_eq!(evaluate(&a, &t("tex"), &[Action::Pub], ip), Some(Decision::Deny));
        assert_eq!(evaluate(&a, &t("other"), &[Action::Pub], ip), Some(Decision::Deny));
        assert_eq!(evaluate(&a, &t("test-2"), &[Action::Sub], ip), None);
        assert_eq!(evaluate(&a, &Resource::literal(ResourceType::Group, "g"), &[Action::Pub], ip), None);
    }

    #[test]
    fn default_policy_only_when_no_custom_entry_matches_and_source_ips() {
        let a = acl(r#"{"subject":"User:u","policies":[
            {"policyType":"Custom","entries":[{"resource":"Topic:a","actions":["Sub"],"sourceIps":["10.0.0.0/8"],"decision":"Allow"}]},
            {"policyType":"Default","entries":[{"resource":"Topic:*","actions":["All"],"decision":"Deny"}]}]}"#);
        let t = Resource::literal(ResourceType::Topic, "a");
        assert_eq!(evaluate(&a, &t, &[Action::Sub], "10.1.1.1".parse().unwrap()), Some(Decision::Allow));
        assert_eq!(evaluate(&a, &t, &[Action::Sub], "127.0.0.1".parse().unwrap()), Some(Decision::Deny));
    }

    mod signature_fuzz {
        use super::super::*;
        use crate::auth::model::{User, UserStatus, UserType};
        use proptest::prelude::*;

        fn guard() -> AuthGuard {
            let dir = std::env::temp_dir().join(format!("rmqc-auth-fuzz-{}", std::process::id()));
            let store = AuthStore::open(&dir).unwrap();
            // Kept in memory only: a failed write leaves the store as it was, so write nothing.
            let settings = AuthSettings { authentication: true, authorization: true, ..Default::default() };
            let g = AuthGuard::new(settings, Arc::new(store), "C");
            *g.store.users_for_tests() = [(
                "u".to_string(),
                User {
                    username: "u".into(),
                    password: "secret".into(),
                    user_type: UserType::Super,
                    user_status: UserStatus::Enable,
                },
            )]
            .into_iter()
            .collect();
            g
        }

        fn field() -> impl Strategy<Value = String> {
            prop_oneof![
                ".{0,40}",
                Just(String::new()),
                (0usize..20_000).prop_map(|n| "A".repeat(n)),
                Just("u".to_string()),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
            /// Malformed, oversized and random fields never panic and never pass, unless the
            /// request really is signed with the user's secret.
            #[test]
            fn random_fields_never_panic_nor_pass(
                ak in field(),
                sig in field(),
                token in proptest::option::of(field()),
                extra in proptest::collection::btree_map(".{0,12}", ".{0,64}", 0..8),
                body in proptest::collection::vec(any::<u8>(), 0..512),
                code in any::<i32>(),
                version in any::<i32>(),
                sign_it in any::<bool>(),
            ) {
                let g = guard();
                let mut req = RemotingCommand::request(code);
                req.version = version;
                req.ext_fields = extra.into();
                req.body = bytes::Bytes::from(body);
                req.ext_fields.insert(signature::ACCESS_KEY.into(), ak.clone());
                req.ext_fields.insert(signature::SIGNATURE.into(), sig);
                if let Some(t) = token {
                    req.ext_fields.insert(signature::SECURITY_TOKEN.into(), t);
                }
                let peer: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
                if sign_it && ak == "u" {
                    signature::Credentials::new("u", "secret").sign_request(&mut req);
                    let fits = req.ext_fields.get(signature::SECURITY_TOKEN).is_none_or(|t| t.len() <= signature::MAX_SECURITY_TOKEN_LEN);
                    prop_assert_eq!(g.check(peer, &req).is_ok(), fits);
                } else {
                    // A random signature matches only by a 2^-160 chance.
                    prop_assert!(g.check(peer, &req).is_err());
                }
            }
        }
    }
}
