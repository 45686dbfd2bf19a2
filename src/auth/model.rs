//! ACL 2.0's model (Apache's `auth` module): users, and ACLs of policies of entries over
//! resources, actions, source IPs and a decision; with the JSON forms the admin requests carry
//! (`UserInfo`, `AclInfo`) and the matching rules.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::AuthError;

/// Longest username / password / resource name / subject accepted.
pub const MAX_NAME_LEN: usize = 256;
/// Most entries in one policy.
pub const MAX_ENTRIES_PER_POLICY: usize = 1024;
/// Most source IPs in one entry.
pub const MAX_SOURCE_IPS: usize = 256;

/// `Super` users pass every authorization check; `Normal` users need ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserType {
    /// Administrator.
    Super,
    /// Ordinary user.
    Normal,
}

/// A disabled user cannot authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// Enabled.
    Enable,
    /// Disabled.
    Disable,
}

impl UserType {
    /// Case-insensitive name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "super" | "1" => Some(UserType::Super),
            "normal" | "2" => Some(UserType::Normal),
            _ => None,
        }
    }
    /// Apache's name.
    pub fn name(self) -> &'static str {
        match self {
            UserType::Super => "Super",
            UserType::Normal => "Normal",
        }
    }
}

impl UserStatus {
    /// Case-insensitive name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "enable" | "1" => Some(UserStatus::Enable),
            "disable" | "2" => Some(UserStatus::Disable),
            _ => None,
        }
    }
    /// Apache's name.
    pub fn name(self) -> &'static str {
        match self {
            UserStatus::Enable => "enable",
            UserStatus::Disable => "disable",
        }
    }
}

/// A user: the username is the access key, the password the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Name (access key).
    pub username: String,
    /// Password (secret key, the HMAC key).
    pub password: String,
    /// Super or Normal.
    pub user_type: UserType,
    /// Enabled or not.
    pub user_status: UserStatus,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("user_type", &self.user_type)
            .field("user_status", &self.user_status)
            .finish_non_exhaustive()
    }
}

/// The JSON form of a user (Apache's `UserInfo`): every field optional (an update applies the
/// fields that are set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// Username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `Super` or `Normal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// `enable` or `disable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_status: Option<String>,
}

impl User {
    /// A user from its JSON form: username and password required, Normal and enabled by default.
    pub fn from_info(info: &UserInfo) -> Result<User, AuthError> {
        let username = info.username.clone().unwrap_or_default();
        check_name("username", &username)?;
        let password = info.password.clone().unwrap_or_default();
        if password.is_empty() {
            return Err(AuthError::Invalid("password is blank".into()));
        }
        if password.len() > super::signature::MAX_SECRET_KEY_LEN {
            return Err(AuthError::Invalid("password is too long".into()));
        }
        let mut u = User { username, password, user_type: UserType::Normal, user_status: UserStatus::Enable };
        u.apply(info)?;
        Ok(u)
    }

    /// Applies the fields of `info` that are set (password, type, status).
    pub fn apply(&mut self, info: &UserInfo) -> Result<(), AuthError> {
        if let Some(p) = info.password.as_deref().filter(|p| !p.is_empty()) {
            if p.len() > super::signature::MAX_SECRET_KEY_LEN {
                return Err(AuthError::Invalid("password is too long".into()));
            }
            self.password = p.to_string();
        }
        if let Some(t) = info.user_type.as_deref().filter(|t| !t.trim().is_empty()) {
            self.user_type = UserType::parse(t).ok_or_else(|| AuthError::Invalid(format!("unknown userType '{t}'")))?;
        }
        if let Some(s) = info.user_status.as_deref().filter(|s| !s.trim().is_empty()) {
            self.user_status =
                UserStatus::parse(s).ok_or_else(|| AuthError::Invalid(format!("unknown userStatus '{s}'")))?;
        }
        Ok(())
    }

    /// The JSON form; `with_password` false leaves the password out.
    pub fn info(&self, with_password: bool) -> UserInfo {
        UserInfo {
            username: Some(self.username.clone()),
            password: with_password.then(|| self.password.clone()),
            user_type: Some(self.user_type.name().into()),
            user_status: Some(self.user_status.name().into()),
        }
    }
}

fn check_name(what: &str, s: &str) -> Result<(), AuthError> {
    if s.trim().is_empty() {
        return Err(AuthError::Invalid(format!("{what} is blank")));
    }
    if s.len() > MAX_NAME_LEN {
        return Err(AuthError::Invalid(format!("{what} is longer than {MAX_NAME_LEN} bytes")));
    }
    if s.chars().any(char::is_control) {
        return Err(AuthError::Invalid(format!("{what} has control characters")));
    }
    Ok(())
}

/// What a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// Every resource (`*`).
    Any,
    /// A cluster.
    Cluster,
    /// A namespace.
    Namespace,
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
}

impl ResourceType {
    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "any" => Some(ResourceType::Any),
            "cluster" => Some(ResourceType::Cluster),
            "namespace" => Some(ResourceType::Namespace),
            "topic" => Some(ResourceType::Topic),
            "group" => Some(ResourceType::Group),
            _ => None,
        }
    }
    /// Apache's name.
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Any => "Any",
            ResourceType::Cluster => "Cluster",
            ResourceType::Namespace => "Namespace",
            ResourceType::Topic => "Topic",
            ResourceType::Group => "Group",
        }
    }
}

/// How a resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourcePattern {
    /// Every name of the type (`Topic:*`).
    Any,
    /// Exactly this name (`Topic:abc`).
    Literal,
    /// Names starting with this (`Topic:abc*`).
    Prefixed,
}

/// A resource: `*`, `Topic:*`, `Topic:abc*`, `Topic:abc`, `Group:g`, `Cluster:c`, ...
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource {
    /// Type.
    pub rtype: ResourceType,
    /// Name (the prefix for PREFIXED, empty for ANY).
    pub name: String,
    /// Pattern.
    pub pattern: ResourcePattern,
}

impl Resource {
    /// A LITERAL resource (what a request asks for).
    pub fn literal(rtype: ResourceType, name: impl Into<String>) -> Self {
        Resource { rtype, name: name.into(), pattern: ResourcePattern::Literal }
    }

    /// Parses Apache's resource string.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let s = s.trim();
        if s == "*" {
            return Ok(Resource { rtype: ResourceType::Any, name: String::new(), pattern: ResourcePattern::Any });
        }
        let (t, name) =
            s.split_once(':').ok_or_else(|| AuthError::Invalid(format!("resource '{s}' must be '*' or Type:name")))?;
        let rtype = ResourceType::parse(t).ok_or_else(|| AuthError::Invalid(format!("unknown resource type '{t}'")))?;
        check_name("resource name", name)?;
        if rtype == ResourceType::Any {
            return Ok(Resource { rtype, name: String::new(), pattern: ResourcePattern::Any });
        }
        Ok(if name == "*" {
            Resource { rtype, name: String::new(), pattern: ResourcePattern::Any }
        } else if let Some(prefix) = name.strip_suffix('*') {
            Resource { rtype, name: prefix.to_string(), pattern: ResourcePattern::Prefixed }
        } else {
            Resource { rtype, name: name.to_string(), pattern: ResourcePattern::Literal }
        })
    }

    /// Whether this (an entry's) resource covers `requested` (a LITERAL resource).
    pub fn matches(&self, requested: &Resource) -> bool {
        if self.rtype == ResourceType::Any {
            return true;
        }
        if self.rtype != requested.rtype {
            return false;
        }
        match self.pattern {
            ResourcePattern::Any => true,
            ResourcePattern::Literal => self.name == requested.name,
            ResourcePattern::Prefixed => requested.name.starts_with(&self.name),
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.rtype, self.pattern) {
            (ResourceType::Any, _) => f.write_str("*"),
            (t, ResourcePattern::Any) => write!(f, "{}:*", t.name()),
            (t, ResourcePattern::Prefixed) => write!(f, "{}:{}*", t.name(), self.name),
            (t, ResourcePattern::Literal) => write!(f, "{}:{}", t.name(), self.name),
        }
    }
}

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Every action (in an entry).
    All,
    /// Any action (in a request: any entry action matches).
    Any,
    /// Send.
    Pub,
    /// Consume.
    Sub,
    /// Create.
    Create,
    /// Update.
    Update,
    /// Delete.
    Delete,
    /// Read.
    Get,
    /// List.
    List,
}

impl Action {
    /// Case-insensitive name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "all" => Action::All,
            "any" => Action::Any,
            "pub" => Action::Pub,
            "sub" => Action::Sub,
            "create" => Action::Create,
            "update" => Action::Update,
            "delete" => Action::Delete,
            "get" => Action::Get,
            "list" => Action::List,
            _ => return None,
        })
    }
    /// Apache's name.
    pub fn name(self) -> &'static str {
        match self {
            Action::All => "All",
            Action::Any => "Any",
            Action::Pub => "Pub",
            Action::Sub => "Sub",
            Action::Create => "Create",
            Action::Update => "Update",
            Action::Delete => "Delete",
            Action::Get => "Get",
            Action::List => "List",
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
}

impl Decision {
    /// Case-insensitive name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow" => Some(Decision::Allow),
            "deny" => Some(Decision::Deny),
            _ => None,
        }
    }
    /// Apache's name.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Allow => "Allow",
            Decision::Deny => "Deny",
        }
    }
}

/// Custom policies are checked first; the Default policy only when no Custom entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyType {
    /// Written by operators.
    Custom,
    /// Fallback (ACL 1.0's `defaultTopicPerm` / `defaultGroupPerm`).
    Default,
}

impl PolicyType {
    /// Case-insensitive name; blank is Custom.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "custom" => Some(PolicyType::Custom),
            "default" => Some(PolicyType::Default),
            _ => None,
        }
    }
    /// Apache's name.
    pub fn name(self) -> &'static str {
        match self {
            PolicyType::Custom => "Custom",
            PolicyType::Default => "Default",
        }
    }
}

/// An IP address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `10.0.0.1`, `10.0.0.0/8`, `::1`, `fe80::/10`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpRange { addr, prefix })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// One entry of a policy: a resource, the actions, where from, and the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    /// The resource.
    pub resource: Resource,
    /// The actions (never empty, never `Any`).
    pub actions: Vec<Action>,
    /// Client addresses it applies to (empty: every address).
    pub source_ips: Vec<IpRange>,
    /// Allow or deny.
    pub decision: Decision,
}

impl PolicyEntry {
    /// Apache's `isMatchAction`: an entry without actions never matches; a request for `Any`
    /// matches every entry; else one requested action is in the entry (or the entry has `All`).
    pub fn matches_actions(&self, requested: &[Action]) -> bool {
        if self.actions.is_empty() {
            return false;
        }
        if requested.contains(&Action::Any) {
            return true;
        }
        requested.iter().any(|a| self.actions.contains(a) || self.actions.contains(&Action::All))
    }

    /// Apache's `isMatchEnvironment`: no source IPs match every address.
    pub fn matches_source(&self, ip: Option<IpAddr>) -> bool {
        if self.source_ips.is_empty() {
            return true;
        }
        match ip {
            Some(ip) => self.source_ips.iter().any(|r| r.contains(ip)),
            None => false,
        }
    }
}

/// A policy: Custom or Default, with its entries (one per resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Type.
    pub policy_type: PolicyType,
    /// Entries.
    pub entries: Vec<PolicyEntry>,
}

/// The ACL of one subject (`User:<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// `User:<name>`.
    pub subject: String,
    /// At most one policy per type.
    pub policies: Vec<Policy>,
}

/// JSON of one entry (Apache's `PolicyEntryInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyEntryInfo {
    /// Resource string.
    #[serde(default)]
    pub resource: Option<String>,
    /// Action names.
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    /// IPs or CIDRs.
    #[serde(default)]
    pub source_ips: Option<Vec<String>>,
    /// `Allow` / `Deny`.
    #[serde(default)]
    pub decision: Option<String>,
}

/// JSON of one policy (Apache's `PolicyInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyInfo {
    /// `Custom` (default) or `Default`.
    #[serde(default)]
    pub policy_type: Option<String>,
    /// Entries.
    #[serde(default)]
    pub entries: Option<Vec<PolicyEntryInfo>>,
}

/// JSON of an ACL (Apache's `AclInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AclInfo {
    /// `User:<name>`.
    #[serde(default)]
    pub subject: Option<String>,
    /// Policies.
    #[serde(default)]
    pub policies: Option<Vec<PolicyInfo>>,
}

/// Checks a subject key: `User:<name>`.
pub fn parse_subject(s: &str) -> Result<String, AuthError> {
    let s = s.trim();
    let name = s
        .split_once(':')
        .filter(|(t, _)| t.eq_ignore_ascii_case("user"))
        .map(|(_, n)| n)
        .ok_or_else(|| AuthError::Invalid(format!("subject '{s}' must be User:<name>")))?;
    check_name("subject", name)?;
    Ok(format!("User:{name}"))
}

impl PolicyEntry {
    /// An entry from its JSON form, validated as Apache does (resource set, actions non-empty and
    /// not `Any`, valid IPs, decision set).
    pub fn from_info(info: &PolicyEntryInfo) -> Result<Self, AuthError> {
        let resource = Resource::parse(info.resource.as_deref().unwrap_or(""))?;
        let names = info.actions.clone().unwrap_or_default();
        if names.is_empty() {
            return Err(AuthError::Invalid(format!("the actions of {resource} are empty")));
        }
        let mut actions = Vec::new();
        for n in &names {
            let a = Action::parse(n).ok_or_else(|| AuthError::Invalid(format!("unknown action '{n}'")))?;
            if a == Action::Any {
                return Err(AuthError::Invalid("the action Any is not allowed in an entry".into()));
            }
            if !actions.contains(&a) {
                actions.push(a);
            }
        }
        let ips = info.source_ips.clone().unwrap_or_default();
        if ips.len() > MAX_SOURCE_IPS {
            return Err(AuthError::Invalid(format!("more than {MAX_SOURCE_IPS} source IPs")));
        }
        let mut source_ips = Vec::new();
        for ip in ips.iter().filter(|s| !s.trim().is_empty()) {
            source_ips
                .push(IpRange::parse(ip).ok_or_else(|| AuthError::Invalid(format!("sourceIp '{ip}' is invalid")))?);
        }
        let d = info.decision.as_deref().unwrap_or("");
        let decision = Decision::parse(d).ok_or_else(|| AuthError::Invalid(format!("decision '{d}' is invalid")))?;
        Ok(PolicyEntry { resource, actions, source_ips, decision })
    }

    /// The JSON form.
    pub fn info(&self) -> PolicyEntryInfo {
        PolicyEntryInfo {
            resource: Some(self.resource.to_string()),
            actions: Some(self.actions.iter().map(|a| a.name().to_string()).collect()),
            source_ips: Some(self.source_ips.iter().map(|r| r.to_string()).collect()),
            decision: Some(self.decision.name().into()),
        }
    }
}

impl Acl {
    /// An ACL from its JSON form (`subject` overrides the body's subject when given).
    pub fn from_info(subject: Option<&str>, info: &AclInfo) -> Result<Self, AuthError> {
        let subject = parse_subject(subject.or(info.subject.as_deref()).unwrap_or(""))?;
        let mut acl = Acl { subject, policies: Vec::new() };
        let policies = info.policies.clone().unwrap_or_default();
        if policies.is_empty() {
            return Err(AuthError::Invalid("the policies are empty".into()));
        }
        for p in &policies {
            let t = p.policy_type.as_deref().unwrap_or("");
            let policy_type = PolicyType::parse(t).ok_or_else(|| AuthError::Invalid(format!("policyType '{t}'")))?;
            let entries = p.entries.clone().unwrap_or_default();
            if entries.is_empty() {
                return Err(AuthError::Invalid("the entries of a policy are empty".into()));
            }
            let mut parsed = Vec::new();
            for e in &entries {
                parsed.push(PolicyEntry::from_info(e)?);
            }
            acl.merge(Policy { policy_type, entries: parsed })?;
        }
        Ok(acl)
    }

    /// Merges a policy in: entries of the same resource are replaced, others added.
    pub fn merge(&mut self, policy: Policy) -> Result<(), AuthError> {
        match self.policies.iter_mut().find(|p| p.policy_type == policy.policy_type) {
            Some(existing) => {
                for e in policy.entries {
                    match existing.entries.iter_mut().find(|x| x.resource == e.resource) {
                        Some(x) => *x = e,
                        None => existing.entries.push(e),
                    }
                }
                if existing.entries.len() > MAX_ENTRIES_PER_POLICY {
                    return Err(AuthError::Invalid(format!("more than {MAX_ENTRIES_PER_POLICY} entries in a policy")));
                }
            }
            None => {
                let mut p = Policy { policy_type: policy.policy_type, entries: Vec::new() };
                for e in policy.entries {
                    match p.entries.iter_mut().find(|x| x.resource == e.resource) {
                        Some(x) => *x = e,
                        None => p.entries.push(e),
                    }
                }
                if p.entries.len() > MAX_ENTRIES_PER_POLICY {
                    return Err(AuthError::Invalid(format!("more than {MAX_ENTRIES_PER_POLICY} entries in a policy")));
                }
                self.policies.push(p);
            }
        }
        Ok(())
    }

    /// The policy of a type.
    pub fn policy(&self, t: PolicyType) -> Option<&Policy> {
        self.policies.iter().find(|p| p.policy_type == t)
    }

    /// The JSON form.
    pub fn info(&self) -> AclInfo {
        AclInfo {
            subject: Some(self.subject.clone()),
            policies: Some(
                self.policies
                    .iter()
                    .map(|p| PolicyInfo {
                        policy_type: Some(p.policy_type.name().into()),
                        entries: Some(p.entries.iter().map(PolicyEntry::info).collect()),
                    })
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_parse_and_match() {
        let r = Resource::parse("Topic:abc*").unwrap();
        assert_eq!(r.pattern, ResourcePattern::Prefixed);
        assert!(r.matches(&Resource::literal(ResourceType::Topic, "abcd")));
        assert!(!r.matches(&Resource::literal(ResourceType::Group, "abcd")));
        assert!(Resource::parse("*").unwrap().matches(&Resource::literal(ResourceType::Group, "x")));
        assert!(Resource::parse("Topic:*").unwrap().matches(&Resource::literal(ResourceType::Topic, "x")));
        assert!(!Resource::parse("Topic:x").unwrap().matches(&Resource::literal(ResourceType::Topic, "xy")));
        assert_eq!(Resource::parse("topic:a*").unwrap().to_string(), "Topic:a*");
        assert!(Resource::parse("Bogus:a").is_err());
        assert!(Resource::parse("Topic:").is_err());
        assert!(Resource::parse("nocolon").is_err());
    }

    #[test]
    fn ip_ranges() {
        let r = IpRange::parse("10.0.0.0/8").unwrap();
        assert!(r.contains("10.1.2.3".parse().unwrap()));
        assert!(r.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!r.contains("11.0.0.1".parse().unwrap()));
        assert!(IpRange::parse("127.0.0.1").unwrap().contains("127.0.0.1".parse().unwrap()));
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains("1.2.3.4".parse().unwrap()));
        assert!(IpRange::parse("10.0.0.0/33").is_none());
        assert!(IpRange::parse("x").is_none());
        assert!(IpRange::parse("fe80::/10").unwrap().contains("fe80::1".parse().unwrap()));
    }

    #[test]
    fn acl_json_round_trip_and_merge() {
        let json = r#"{"subject":"User:a","policies":[{"policyType":"Custom","entries":[
            {"resource":"Topic:t*","actions":["Pub","Sub"],"sourceIps":["10.0.0.0/8"],"decision":"Allow"}]}]}"#;
        let info: AclInfo = serde_json::from_str(json).unwrap();
        let mut acl = Acl::from_info(None, &info).unwrap();
        assert_eq!(acl.subject, "User:a");
        assert_eq!(Acl::from_info(None, &acl.info()).unwrap(), acl);
        let e = PolicyEntry::from_info(&PolicyEntryInfo {
            resource: Some("Topic:t*".into()),
            actions: Some(vec!["Get".into()]),
            source_ips: None,
            decision: Some("Deny".into()),
        })
        .unwrap();
        acl.merge(Policy { policy_type: PolicyType::Custom, entries: vec![e.clone()] }).unwrap();
        assert_eq!(acl.policy(PolicyType::Custom).unwrap().entries, vec![e]);
        let bad = |j: &str| Acl::from_info(None, &serde_json::from_str::<AclInfo>(j).unwrap()).is_err();
        assert!(bad(
            r#"{"subject":"User:a","policies":[{"entries":[{"resource":"Topic:t","actions":[],"decision":"Allow"}]}]}"#
        ));
        assert!(bad(
            r#"{"subject":"User:a","policies":[{"entries":[{"resource":"Topic:t","actions":["Any"],"decision":"Allow"}]}]}"#
        ));
        assert!(bad(
            r#"{"subject":"User:a","policies":[{"entries":[{"resource":"Topic:t","actions":["Pub"],"decision":"Maybe"}]}]}"#
        ));
        assert!(bad(
            r#"{"subject":"Role:a","policies":[{"entries":[{"resource":"Topic:t","actions":["Pub"],"decision":"Allow"}]}]}"#
        ));
    }
}
