//! Where users and ACLs live: in memory, and in two JSON files under a broker's (or the
//! container's) `config/` directory, `users.json` and `acls.json`, each rewritten atomically (temp
//! file, fsync, rename) before a change is applied in memory, so what a request acknowledged is
//! what a restart reads back. Apache keeps the same data in RocksDB (`config/users`,
//! `config/acls`).
//!
//! The methods do blocking file I/O: callers on a runtime run them through `spawn_blocking`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::model::{parse_subject, Acl, AclInfo, PolicyType, Resource, User, UserInfo, UserType};
use super::AuthError;

/// Most users one store holds.
pub const MAX_USERS: usize = 10_000;
/// Most ACLs one store holds.
pub const MAX_ACLS: usize = 10_000;
/// Largest store file read.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// File of the users.
pub const USERS_FILE: &str = "users.json";
/// File of the ACLs.
pub const ACLS_FILE: &str = "acls.json";

#[derive(Default, Serialize, Deserialize)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserInfo>,
}

#[derive(Default, Serialize, Deserialize)]
struct AclsFile {
    #[serde(default)]
    acls: Vec<AclInfo>,
}

/// Users and ACLs of one broker (or of the container, shared by the brokers that choose it).
pub struct AuthStore {
    dir: PathBuf,
    users: RwLock<BTreeMap<String, User>>,
    acls: RwLock<BTreeMap<String, Acl>>,
    /// Serializes changes (read, write the file, apply).
    write: Mutex<()>,
}

impl std::fmt::Debug for AuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, AuthError> {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(AuthError::Io { path: path.to_path_buf(), source }),
    };
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|source| AuthError::Io { path: path.to_path_buf(), source })?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(AuthError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    Ok(Some(buf))
}

/// Writes a file readable by its owner only, atomically.
fn write_private(path: &Path, data: &[u8]) -> Result<(), AuthError> {
    use std::io::Write;
    let io = |source| AuthError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
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
    result.map_err(io)
}

impl AuthStore {
    /// Opens (reading the files if they exist) the store in `dir`.
    pub fn open(dir: &Path) -> Result<AuthStore, AuthError> {
        let mut users = BTreeMap::new();
        let upath = dir.join(USERS_FILE);
        if let Some(bytes) = read_bounded(&upath)? {
            let f: UsersFile = serde_json::from_slice(&bytes)
                .map_err(|e| AuthError::Corrupt { path: upath.clone(), reason: e.to_string() })?;
            for info in f.users.iter().take(MAX_USERS) {
                let u = User::from_info(info)
                    .map_err(|e| AuthError::Corrupt { path: upath.clone(), reason: e.to_string() })?;
                users.insert(u.username.clone(), u);
            }
        }
        let mut acls = BTreeMap::new();
        let apath = dir.join(ACLS_FILE);
        if let Some(bytes) = read_bounded(&apath)? {
            let f: AclsFile = serde_json::from_slice(&bytes)
                .map_err(|e| AuthError::Corrupt { path: apath.clone(), reason: e.to_string() })?;
            for info in f.acls.iter().take(MAX_ACLS) {
                let a = Acl::from_info(None, info)
                    .map_err(|e| AuthError::Corrupt { path: apath.clone(), reason: e.to_string() })?;
                acls.insert(a.subject.clone(), a);
            }
        }
        Ok(AuthStore {
            dir: dir.to_path_buf(),
            users: RwLock::new(users),
            acls: RwLock::new(acls),
            write: Mutex::new(()),
        })
    }

    /// The directory of the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn persist_users(&self, users: &BTreeMap<String, User>) -> Result<(), AuthError> {
        let f = UsersFile { users: users.values().map(|u| u.info(true)).collect() };
        let bytes = serde_json::to_vec_pretty(&f).map_err(|e| AuthError::Invalid(e.to_string()))?;
        write_private(&self.dir.join(USERS_FILE), &bytes)
    }

    fn persist_acls(&self, acls: &BTreeMap<String, Acl>) -> Result<(), AuthError> {
        let f = AclsFile { acls: acls.values().map(Acl::info).collect() };
        let bytes = serde_json::to_vec_pretty(&f).map_err(|e| AuthError::Invalid(e.to_string()))?;
        write_private(&self.dir.join(ACLS_FILE), &bytes)
    }

    /// A change to the users: computed on a copy, written, then applied.
    fn change_users<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, User>) -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        let _w = self.write.lock();
        let mut next = self.users.read().clone();
        let out = f(&mut next)?;
        if next.len() > MAX_USERS {
            return Err(AuthError::Invalid(format!("more than {MAX_USERS} users")));
        }
        self.persist_users(&next)?;
        *self.users.write() = next;
        Ok(out)
    }

    fn change_acls<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, Acl>) -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        let _w = self.write.lock();
        let mut next = self.acls.read().clone();
        let out = f(&mut next)?;
        if next.len() > MAX_ACLS {
            return Err(AuthError::Invalid(format!("more than {MAX_ACLS} ACLs")));
        }
        self.persist_acls(&next)?;
        *self.acls.write() = next;
        Ok(out)
    }

    /// A user by name.
    pub fn user(&self, username: &str) -> Option<User> {
        self.users.read().get(username).cloned()
    }

    /// Users whose name contains `filter` (all when blank).
    pub fn list_users(&self, filter: &str) -> Vec<User> {
        self.users.read().values().filter(|u| filter.is_empty() || u.username.contains(filter)).cloned().collect()
    }

    /// Creates a user; an existing one is an error.
    pub fn create_user(&self, user: User) -> Result<(), AuthError> {
        self.change_users(|m| {
            if m.contains_key(&user.username) {
                return Err(AuthError::Exists(format!("The user is existed, username={}", user.username)));
            }
            m.insert(user.username.clone(), user);
            Ok(())
        })
    }

    /// Creates a user unless one of that name exists; true when created.
    pub fn create_user_if_absent(&self, user: User) -> Result<bool, AuthError> {
        self.change_users(|m| {
            if m.contains_key(&user.username) {
                return Ok(false);
            }
            m.insert(user.username.clone(), user);
            Ok(true)
        })
    }

    /// Updates an existing user with the fields of `info` that are set.
    pub fn update_user(&self, username: &str, info: &UserInfo) -> Result<User, AuthError> {
        self.change_users(|m| {
            let u = m
                .get_mut(username)
                .ok_or_else(|| AuthError::NotFound(format!("The user is not exist, username={username}")))?;
            u.apply(info)?;
            Ok(u.clone())
        })
    }

    /// Deletes a user and its ACL.
    pub fn delete_user(&self, username: &str) -> Result<(), AuthError> {
        self.change_users(|m| {
            m.remove(username);
            Ok(())
        })?;
        let subject = format!("User:{username}");
        if self.acls.read().contains_key(&subject) {
            self.change_acls(|m| {
                m.remove(&subject);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The ACL of a subject.
    pub fn acl(&self, subject: &str) -> Option<Acl> {
        self.acls.read().get(subject).cloned()
    }

    /// ACLs whose subject contains `subject_filter` and that have an entry whose resource contains
    /// `resource_filter` (blank filters match all).
    pub fn list_acls(&self, subject_filter: &str, resource_filter: &str) -> Vec<Acl> {
        self.acls
            .read()
            .values()
            .filter(|a| subject_filter.is_empty() || a.subject.contains(subject_filter))
            .filter_map(|a| {
                if resource_filter.is_empty() {
                    return Some(a.clone());
                }
                let mut a = a.clone();
                for p in &mut a.policies {
                    p.entries.retain(|e| e.resource.to_string().contains(resource_filter));
                }
                a.policies.retain(|p| !p.entries.is_empty());
                (!a.policies.is_empty()).then_some(a)
            })
            .collect()
    }

    fn user_of_subject(&self, subject: &str) -> Result<(), AuthError> {
        let name = subject.strip_prefix("User:").unwrap_or(subject);
        if self.user(name).is_none() {
            return Err(AuthError::NotFound(format!("The subject of {subject} is not exist")));
        }
        Ok(())
    }

    /// Creates or replaces the ACL of a subject (Apache's create: merged into an existing one).
    pub fn create_acl(&self, acl: Acl) -> Result<(), AuthError> {
        self.update_acl(acl)
    }

    /// Merges an ACL into the subject's (entries replaced per resource); the user must exist.
    pub fn update_acl(&self, acl: Acl) -> Result<(), AuthError> {
        self.user_of_subject(&acl.subject)?;
        self.change_acls(|m| {
            match m.get_mut(&acl.subject) {
                Some(existing) => {
                    for p in acl.policies {
                        existing.merge(p)?;
                    }
                }
                None => {
                    m.insert(acl.subject.clone(), acl);
                }
            }
            Ok(())
        })
    }

    /// Deletes the entries of `resource` from the subject's policy of `policy_type`, or the whole
    /// ACL when `resource` is None.
    pub fn delete_acl(
        &self,
        subject: &str,
        policy_type: PolicyType,
        resource: Option<&Resource>,
    ) -> Result<(), AuthError> {
        let subject = parse_subject(subject)?;
        self.change_acls(|m| {
            let Some(acl) = m.get_mut(&subject) else { return Ok(()) };
            match resource {
                None => {
                    m.remove(&subject);
                }
                Some(r) => {
                    for p in acl.policies.iter_mut().filter(|p| p.policy_type == policy_type) {
                        p.entries.retain(|e| e.resource != *r);
                    }
                    acl.policies.retain(|p| !p.entries.is_empty());
                    if acl.policies.is_empty() {
                        m.remove(&subject);
                    }
                }
            }
            Ok(())
        })
    }

    /// The user table, to fill a store without writing files (tests only).
    #[cfg(test)]
    pub(crate) fn users_for_tests(&self) -> parking_lot::RwLockWriteGuard<'_, BTreeMap<String, User>> {
        self.users.write()
    }

    /// True if `username` is a Super user.
    pub fn is_super(&self, username: &str) -> bool {
        self.user(username).is_some_and(|u| u.user_type == UserType::Super)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::model::{PolicyEntryInfo, PolicyInfo};

    fn user(name: &str) -> User {
        User::from_info(&UserInfo {
            username: Some(name.into()),
            password: Some("pw".into()),
            user_type: None,
            user_status: None,
        })
        .unwrap()
    }

    #[test]
    fn persists_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = AuthStore::open(dir.path()).unwrap();
        s.create_user(user("a")).unwrap();
        assert!(s.create_user(user("a")).is_err());
        let info = AclInfo {
            subject: Some("User:a".into()),
            policies: Some(vec![PolicyInfo {
                policy_type: None,
                entries: Some(vec![PolicyEntryInfo {
                    resource: Some("Topic:t".into()),
                    actions: Some(vec!["Pub".into()]),
                    source_ips: None,
                    decision: Some("Allow".into()),
                }]),
            }]),
        };
        s.create_acl(Acl::from_info(None, &info).unwrap()).unwrap();
        let mut orphan = info.clone();
        orphan.subject = Some("User:nobody".into());
        assert!(s.create_acl(Acl::from_info(None, &orphan).unwrap()).is_err());
        let again = AuthStore::open(dir.path()).unwrap();
        assert_eq!(again.user("a").unwrap().password, "pw");
        assert_eq!(again.acl("User:a"), s.acl("User:a"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(USERS_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the users file is private");
        }
        again.delete_acl("User:a", PolicyType::Custom, Some(&Resource::parse("Topic:t").unwrap())).unwrap();
        assert!(again.acl("User:a").is_none());
        again.delete_user("a").unwrap();
        assert!(AuthStore::open(dir.path()).unwrap().user("a").is_none());
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = AuthStore::open(&dir.path().join("sub")).unwrap();
        // The directory cannot be created: a file is in its place.
        std::fs::write(dir.path().join("sub"), b"x").unwrap();
        assert!(s.create_user(user("a")).is_err());
        assert!(s.user("a").is_none());
    }
}
