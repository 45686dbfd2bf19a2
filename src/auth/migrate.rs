//! Import of ACL 1.0's `plain_acl.yml` (Apache's `AuthMigrator`): each account becomes a user
//! (`admin: true` → Super) and its `topicPerms` / `groupPerms` become Custom LITERAL entries, its
//! `defaultTopicPerm` / `defaultGroupPerm` Default entries on `Topic:*` / `Group:*`. Existing users
//! are kept as they are. `whiteRemoteAddress`, `globalWhiteRemoteAddresses` and `dataVersion` are
//! not migrated.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use super::model::{Acl, Action, Decision, Policy, PolicyEntry, PolicyType, Resource, User, UserStatus, UserType};
use super::store::AuthStore;
use super::AuthError;

/// Largest yml file read.
pub const MAX_YML_BYTES: u64 = 8 << 20;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Users created.
    pub users: Vec<String>,
    /// Users skipped because they exist.
    pub skipped: Vec<String>,
}

/// ACL 1.0 PERM → actions and decision (`DENY` or blank → Deny).
fn perm(p: &str) -> (Vec<Action>, Decision) {
    let p = p.trim().to_ascii_uppercase();
    let actions = match p.as_str() {
        "PUB" => vec![Action::Pub],
        "SUB" => vec![Action::Sub],
        "PUB|SUB" | "SUB|PUB" => vec![Action::Pub, Action::Sub],
        _ => vec![Action::All],
    };
    let decision = if p.is_empty() || p == "DENY" { Decision::Deny } else { Decision::Allow };
    (actions, decision)
}

fn entry(resource: Resource, p: &str) -> PolicyEntry {
    let (actions, decision) = perm(p);
    PolicyEntry { resource, actions, source_ips: Vec::new(), decision }
}

fn str_of(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        _ => None,
    }
}

/// The users and ACLs of a `plain_acl.yml` text.
pub fn parse(text: &str) -> Result<Vec<(User, Option<Acl>)>, AuthError> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| AuthError::Invalid(format!("plain_acl.yml: {e}")))?;
    let mut out = Vec::new();
    for doc in &docs {
        let Some(accounts) = doc["accounts"].as_vec() else { continue };
        for a in accounts {
            let Some(ak) = str_of(&a["accessKey"]).filter(|s| !s.trim().is_empty()) else { continue };
            let Some(sk) = str_of(&a["secretKey"]).filter(|s| !s.is_empty()) else { continue };
            let admin = a["admin"].as_bool().unwrap_or(false);
            let user = User {
                username: ak.clone(),
                password: sk,
                user_type: if admin { UserType::Super } else { UserType::Normal },
                user_status: UserStatus::Enable,
            };
            let mut custom = Vec::new();
            for (key, rtype) in [("topicPerms", "Topic"), ("groupPerms", "Group")] {
                for p in a[key].as_vec().map(Vec::as_slice).unwrap_or(&[]) {
                    let Some(s) = str_of(p) else { continue };
                    let Some((name, perm)) = s.split_once('=') else { continue };
                    let r = Resource::parse(&format!("{rtype}:{}", name.trim()))?;
                    custom.push(entry(r, perm));
                }
            }
            let mut default = Vec::new();
            for (key, res) in [("defaultTopicPerm", "Topic:*"), ("defaultGroupPerm", "Group:*")] {
                if let Some(p) = str_of(&a[key]) {
                    default.push(entry(Resource::parse(res)?, &p));
                }
            }
            let mut acl = Acl { subject: format!("User:{ak}"), policies: Vec::new() };
            if !custom.is_empty() {
                acl.merge(Policy { policy_type: PolicyType::Custom, entries: custom })?;
            }
            if !default.is_empty() {
                acl.merge(Policy { policy_type: PolicyType::Default, entries: default })?;
            }
            out.push((user, (!acl.policies.is_empty()).then_some(acl)));
        }
    }
    Ok(out)
}

/// The files to import: `file` and the `*.yml` / `*.yaml` of `acl/` beside it.
pub fn files(file: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if file.is_file() {
        out.push(file.to_path_buf());
    }
    if let Some(dir) = file.parent().map(|d| d.join("acl")) {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut more: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
                .collect();
            more.sort();
            out.extend(more);
        }
    }
    out
}

/// Imports `file` (and `acl/*.yml` beside it) into `store`; existing users are skipped.
pub fn import(store: &AuthStore, file: &Path) -> Result<Imported, AuthError> {
    let mut done = Imported::default();
    for f in files(file) {
        let text = crate::config::read_config_text(&f).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if text.len() as u64 > MAX_YML_BYTES {
            return Err(AuthError::Invalid(format!("{} is too large", f.display())));
        }
        for (user, acl) in parse(&text)? {
            let name = user.username.clone();
            if !store.create_user_if_absent(user)? {
                done.skipped.push(name);
                continue;
            }
            if let Some(acl) = acl {
                store.create_acl(acl)?;
            }
            done.users.push(name);
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YML: &str = r#"
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      - groupA=DENY
      - groupB=PUB|SUB
  - accessKey: rocketmq2
    secretKey: 12345678
    admin: true
"#;

    #[test]
    fn imports_accounts_as_users_and_acls() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("plain_acl.yml");
        std::fs::write(&f, YML).unwrap();
        let store = AuthStore::open(&dir.path().join("config")).unwrap();
        let done = import(&store, &f).unwrap();
        assert_eq!(done.users, vec!["RocketMQ".to_string(), "rocketmq2".to_string()]);
        assert_eq!(store.user("RocketMQ").unwrap().password, "12345678");
        assert!(store.is_super("rocketmq2"));
        let acl = store.acl("User:RocketMQ").unwrap();
        let ip = "1.2.3.4".parse().unwrap();
        let t = |n: &str| Resource::literal(super::super::model::ResourceType::Topic, n);
        assert_eq!(super::super::evaluate(&acl, &t("topicA"), &[Action::Pub], ip), Some(Decision::Deny));
        assert_eq!(super::super::evaluate(&acl, &t("topicB"), &[Action::Pub], ip), Some(Decision::Allow));
        assert_eq!(super::super::evaluate(&acl, &t("topicC"), &[Action::Pub], ip), Some(Decision::Deny));
        assert_eq!(super::super::evaluate(&acl, &t("other"), &[Action::Sub], ip), Some(Decision::Deny));
        // A second import skips existing users.
        assert_eq!(import(&store, &f).unwrap().skipped.len(), 2);
    }
}
