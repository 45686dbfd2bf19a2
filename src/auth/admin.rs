//! The admin requests of ACL 2.0 (Apache's `AdminBrokerProcessor`, codes 3001-3010): create,
//! update, delete, get and list users and ACLs, with Apache's headers and JSON bodies. Changes are
//! written to the store's files (on the blocking pool) before they are answered.

use std::sync::Arc;

use bytes::Bytes;
use tracing::info;

use super::model::{parse_subject, Acl, AclInfo, PolicyType, Resource, User, UserInfo, UserType};
use super::{AuthError, AuthGuard};
use crate::protocol::codes::request;
use crate::remoting::{BoxFuture, ConnectionHandle, RemotingCommand, RequestProcessor};

/// The codes [`AuthAdminProcessor`] answers.
pub const AUTH_ADMIN_CODES: &[i32] = &[
    request::AUTH_CREATE_USER,
    request::AUTH_UPDATE_USER,
    request::AUTH_DELETE_USER,
    request::AUTH_GET_USER,
    request::AUTH_LIST_USER,
    request::AUTH_CREATE_ACL,
    request::AUTH_UPDATE_ACL,
    request::AUTH_DELETE_ACL,
    request::AUTH_GET_ACL,
    request::AUTH_LIST_ACL,
];

/// Largest body of a user or ACL request.
pub const MAX_BODY: usize = 1 << 20;

/// Answers 3001-3010 over a broker's (or the container's) user and ACL store.
pub struct AuthAdminProcessor {
    guard: Arc<AuthGuard>,
}

impl AuthAdminProcessor {
    /// A processor over the guard's store.
    pub fn new(guard: Arc<AuthGuard>) -> Self {
        AuthAdminProcessor { guard }
    }
}

type Answer = Result<Option<Bytes>, AuthError>;

fn field<'a>(req: &'a RemotingCommand, k: &str) -> &'a str {
    req.ext_fields.get(k).map(String::as_str).unwrap_or("").trim()
}

fn body<T: serde::de::DeserializeOwned>(req: &RemotingCommand) -> Result<T, AuthError> {
    if req.body.is_empty() {
        return Err(AuthError::Invalid("the body is empty".into()));
    }
    if req.body.len() > MAX_BODY {
        return Err(AuthError::Invalid(format!("the body of {} bytes is above {MAX_BODY}", req.body.len())));
    }
    crate::json::from_slice_lenient(&req.body).map_err(|e| AuthError::Invalid(format!("the body cannot be read: {e}")))
}

fn json<T: serde::Serialize>(v: &T) -> Result<Option<Bytes>, AuthError> {
    serde_json::to_vec(v).map(|b| Some(Bytes::from(b))).map_err(|e| AuthError::Invalid(e.to_string()))
}

impl AuthAdminProcessor {
    /// The caller, when the request is signed: a non-Super caller may not make or change Super users.
    fn caller_is_normal(&self, req: &RemotingCommand) -> bool {
        match super::signature::signed_fields(req).ok().and_then(|f| f.access_key) {
            Some(ak) => !self.guard.store().is_super(ak),
            None => false,
        }
    }

    fn handle(&self, req: &RemotingCommand) -> Answer {
        let store = self.guard.store();
        match req.code {
            request::AUTH_CREATE_USER | request::AUTH_UPDATE_USER => {
                let username = field(req, "username");
                if username.is_empty() {
                    return Err(AuthError::Invalid("The username is blank".into()));
                }
                let mut info: UserInfo = body(req)?;
                info.username = Some(username.to_string());
                let to_super = info.user_type.as_deref().and_then(UserType::parse) == Some(UserType::Super);
                let normal_caller = self.caller_is_normal(req);
                if normal_caller && to_super {
                    return Err(AuthError::Other("The super user can only be created/updated by a super user".into()));
                }
                if req.code == request::AUTH_CREATE_USER {
                    store.create_user(User::from_info(&info)?)?;
                    info!(username, "user created");
                } else {
                    if normal_caller && store.is_super(username) {
                        return Err(AuthError::Authorization("The super user can only be update by super user".into()));
                    }
                    store.update_user(username, &info)?;
                    info!(username, "user updated");
                }
                Ok(None)
            }
            request::AUTH_DELETE_USER => {
                let username = field(req, "username");
                if username.is_empty() {
                    return Err(AuthError::Invalid("The username is blank".into()));
                }
                if self.caller_is_normal(req) && store.is_super(username) {
                    return Err(AuthError::Authorization("The super user can only be deleted by super user".into()));
                }
                store.delete_user(username)?;
                info!(username, "user deleted");
                Ok(None)
            }
            request::AUTH_GET_USER => {
                let username = field(req, "username");
                if username.is_empty() {
                    return Err(AuthError::Invalid("The username is blank".into()));
                }
                match store.user(username) {
                    Some(u) => json(&u.info(true)),
                    None => Ok(None),
                }
            }
            request::AUTH_LIST_USER => {
                let users: Vec<UserInfo> =
                    store.list_users(field(req, "filter")).iter().map(|u| u.info(true)).collect();
                json(&users)
            }
            request::AUTH_CREATE_ACL | request::AUTH_UPDATE_ACL => {
                let info: AclInfo = body(req)?;
                let subject = Some(field(req, "subject")).filter(|s| !s.is_empty());
                let acl = Acl::from_info(subject, &info)?;
                let who = acl.subject.clone();
                if req.code == request::AUTH_CREATE_ACL {
                    store.create_acl(acl)?;
                } else {
                    store.update_acl(acl)?;
                }
                info!(subject = %who, "acl written");
                Ok(None)
            }
            request::AUTH_DELETE_ACL => {
                let subject = parse_subject(field(req, "subject"))?;
                let pt = field(req, "policyType");
                let policy_type =
                    PolicyType::parse(pt).ok_or_else(|| AuthError::Invalid(format!("unknown policyType '{pt}'")))?;
                let resources = field(req, "resource");
                if resources.is_empty() {
                    store.delete_acl(&subject, policy_type, None)?;
                } else {
                    for r in resources.split(',').filter(|r| !r.trim().is_empty()) {
                        store.delete_acl(&subject, policy_type, Some(&Resource::parse(r)?))?;
                    }
                }
                info!(subject = %subject, "acl deleted");
                Ok(None)
            }
            request::AUTH_GET_ACL => {
                let subject = parse_subject(field(req, "subject"))?;
                match store.acl(&subject) {
                    Some(a) => json(&a.info()),
                    None => Ok(None),
                }
            }
            request::AUTH_LIST_ACL => {
                let acls: Vec<AclInfo> = store
                    .list_acls(field(req, "subjectFilter"), field(req, "resourceFilter"))
                    .iter()
                    .map(Acl::info)
                    .collect();
                json(&acls)
            }
            other => Err(AuthError::Invalid(format!("request type {other} not supported"))),
        }
    }
}

impl RequestProcessor for AuthAdminProcessor {
    fn process<'a>(
        &'a self,
        _conn: &'a ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<'a, Option<RemotingCommand>> {
        Box::pin(async move {
            let me = AuthAdminProcessor { guard: self.guard.clone() };
            let r = req.clone();
            // Writes go to disk: off the request threads.
            let answer = match tokio::task::spawn_blocking(move || me.handle(&r)).await {
                Ok(a) => a,
                Err(e) => Err(AuthError::Other(format!("the request did not finish: {e}"))),
            };
            Some(match answer {
                Ok(Some(b)) => RemotingCommand::success(&req).with_body(b),
                Ok(None) => RemotingCommand::success(&req),
                Err(e) => RemotingCommand::error(&req, e.response_code(), e.to_string()),
            })
        })
    }
}
