//! mqadmin's ACL 2.0 commands (Apache's `tools/command/auth`): users and ACLs on one broker (`-b`)
//! or on every master of a cluster (`-c`), over the admin requests 3001-3010.

use bytes::Bytes;

use super::cluster::target_addrs;
use super::{Admin, AdminError};
use crate::auth::model::{AclInfo, PolicyEntryInfo, PolicyInfo, UserInfo};
use crate::protocol::codes::request;
use crate::remoting::RemotingCommand;

/// Where a command goes.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `-b`: one broker (or a container's admin port).
    pub broker_addr: Option<String>,
    /// `-c`: every master of a cluster.
    pub cluster: Option<String>,
}

async fn each(admin: &Admin, t: &Target, req: RemotingCommand) -> Result<Vec<(String, RemotingCommand)>, AdminError> {
    let addrs = target_addrs(admin, t.broker_addr.as_deref(), t.cluster.as_deref(), true).await?;
    if let [one] = addrs.as_slice() {
        let r = admin.call(one, req).await?;
        return Ok(vec![(one.clone(), r)]);
    }
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for a in addrs {
        match admin.call(&a, req.clone()).await {
            Ok(r) => out.push((a, r)),
            Err(e) => failed.push(format!("{a}: {e}")),
        }
    }
    if !failed.is_empty() {
        let output = out.iter().map(|(a, _)| format!("{a}: done\n")).collect();
        return Err(AdminError::Partial { output, failed: failed.join("; ") });
    }
    Ok(out)
}

fn with_json<T: serde::Serialize>(req: RemotingCommand, body: &T) -> Result<RemotingCommand, AdminError> {
    let b = serde_json::to_vec(body).map_err(|e| AdminError::Usage(e.to_string()))?;
    Ok(req.with_body(Bytes::from(b)))
}

fn done(results: &[(String, RemotingCommand)], what: &str) -> String {
    results.iter().map(|(a, _)| format!("{what} to {a} success.\n")).collect()
}

/// `createUser` / `updateUser`.
pub async fn write_user(
    admin: &Admin,
    t: &Target,
    create: bool,
    username: &str,
    password: Option<&str>,
    user_type: Option<&str>,
    user_status: Option<&str>,
) -> Result<String, AdminError> {
    let code = if create { request::AUTH_CREATE_USER } else { request::AUTH_UPDATE_USER };
    let info = UserInfo {
        username: Some(username.to_string()),
        password: password.map(str::to_string),
        user_type: user_type.map(str::to_string),
        user_status: user_status.map(str::to_string),
    };
    let req = with_json(RemotingCommand::request(code).with_ext("username", username), &info)?;
    let r = each(admin, t, req).await?;
    Ok(done(&r, if create { "create user" } else { "update user" }))
}

/// `deleteUser`.
pub async fn delete_user(admin: &Admin, t: &Target, username: &str) -> Result<String, AdminError> {
    let req = RemotingCommand::request(request::AUTH_DELETE_USER).with_ext("username", username);
    Ok(done(&each(admin, t, req).await?, "delete user"))
}

fn user_line(u: &UserInfo) -> String {
    format!(
        "{:<24} {:<8} {:<8}\n",
        u.username.as_deref().unwrap_or(""),
        u.user_type.as_deref().unwrap_or(""),
        u.user_status.as_deref().unwrap_or("")
    )
}

/// `getUser` (the password is not printed).
pub async fn get_user(admin: &Admin, t: &Target, username: &str) -> Result<String, AdminError> {
    let req = RemotingCommand::request(request::AUTH_GET_USER).with_ext("username", username);
    let mut out = String::new();
    for (a, r) in each(admin, t, req).await? {
        out.push_str(&format!("#broker {a}\n"));
        if r.body.is_empty() {
            out.push_str(&format!("user {username} not found\n"));
            continue;
        }
        let u: UserInfo = crate::json::from_slice_lenient(&r.body)
            .map_err(|e| AdminError::BadAnswer { addr: a.clone(), reason: e.to_string() })?;
        out.push_str(&user_line(&u));
    }
    Ok(out)
}

/// `listUser` (passwords are not printed).
pub async fn list_users(admin: &Admin, t: &Target, filter: Option<&str>) -> Result<String, AdminError> {
    let req = RemotingCommand::request(request::AUTH_LIST_USER).with_ext("filter", filter.unwrap_or(""));
    let mut out = String::new();
    for (a, r) in each(admin, t, req).await? {
        out.push_str(&format!("#broker {a}\n{:<24} {:<8} {:<8}\n", "#username", "#type", "#status"));
        let users: Vec<UserInfo> = if r.body.is_empty() {
            Vec::new()
        } else {
            crate::json::from_slice_lenient(&r.body)
                .map_err(|e| AdminError::BadAnswer { addr: a.clone(), reason: e.to_string() })?
        };
        for u in &users {
            out.push_str(&user_line(u));
        }
    }
    Ok(out)
}

fn split(s: Option<&str>) -> Option<Vec<String>> {
    s.map(|s| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect())
}

/// `createAcl` / `updateAcl`: one entry per resource, with the same actions, IPs and decision.
#[allow(clippy::too_many_arguments)]
pub async fn write_acl(
    admin: &Admin,
    t: &Target,
    create: bool,
    subject: &str,
    resources: &str,
    actions: &str,
    source_ips: Option<&str>,
    decision: &str,
) -> Result<String, AdminError> {
    let entries: Vec<PolicyEntryInfo> = split(Some(resources))
        .unwrap_or_default()
        .into_iter()
        .map(|r| PolicyEntryInfo {
            resource: Some(r),
            actions: split(Some(actions)),
            source_ips: split(source_ips),
            decision: Some(decision.to_string()),
        })
        .collect();
    if entries.is_empty() {
        return Err(AdminError::Usage("give at least one resource (-r)".into()));
    }
    let info = AclInfo {
        subject: Some(subject.to_string()),
        policies: Some(vec![PolicyInfo { policy_type: Some("Custom".into()), entries: Some(entries) }]),
    };
    let code = if create { request::AUTH_CREATE_ACL } else { request::AUTH_UPDATE_ACL };
    let req = with_json(RemotingCommand::request(code).with_ext("subject", subject), &info)?;
    Ok(done(&each(admin, t, req).await?, if create { "create acl" } else { "update acl" }))
}

/// `deleteAcl`: the entries of the resources, or the whole ACL without `-r`.
pub async fn delete_acl(
    admin: &Admin,
    t: &Target,
    subject: &str,
    resources: Option<&str>,
) -> Result<String, AdminError> {
    let mut req = RemotingCommand::request(request::AUTH_DELETE_ACL).with_ext("subject", subject);
    if let Some(r) = resources {
        req = req.with_ext("resource", r);
    }
    Ok(done(&each(admin, t, req).await?, "delete acl"))
}

fn acl_lines(a: &AclInfo) -> String {
    let mut out = String::new();
    for p in a.policies.as_deref().unwrap_or(&[]) {
        for e in p.entries.as_deref().unwrap_or(&[]) {
            out.push_str(&format!(
                "{:<20} {:<8} {:<24} {:<20} {:<16} {}\n",
                a.subject.as_deref().unwrap_or(""),
                p.policy_type.as_deref().unwrap_or("Custom"),
                e.resource.as_deref().unwrap_or(""),
                e.actions.as_deref().unwrap_or(&[]).join(","),
                e.source_ips.as_deref().unwrap_or(&[]).join(","),
                e.decision.as_deref().unwrap_or("")
            ));
        }
    }
    out
}

const ACL_HEADER: &str =
    "#subject             #policy  #resource                #actions             #sourceIps       #decision\n";

/// `getAcl`.
pub async fn get_acl(admin: &Admin, t: &Target, subject: &str) -> Result<String, AdminError> {
    let req = RemotingCommand::request(request::AUTH_GET_ACL).with_ext("subject", subject);
    let mut out = String::new();
    for (a, r) in each(admin, t, req).await? {
        out.push_str(&format!("#broker {a}\n{ACL_HEADER}"));
        if r.body.is_empty() {
            continue;
        }
        let acl: AclInfo = crate::json::from_slice_lenient(&r.body)
            .map_err(|e| AdminError::BadAnswer { addr: a.clone(), reason: e.to_string() })?;
        out.push_str(&acl_lines(&acl));
    }
    Ok(out)
}

/// `listAcl` with optional subject and resource filters.
pub async fn list_acls(
    admin: &Admin,
    t: &Target,
    subject_filter: Option<&str>,
    resource_filter: Option<&str>,
) -> Result<String, AdminError> {
    let req = RemotingCommand::request(request::AUTH_LIST_ACL)
        .with_ext("subjectFilter", subject_filter.unwrap_or(""))
        .with_ext("resourceFilter", resource_filter.unwrap_or(""));
    let mut out = String::new();
    for (a, r) in each(admin, t, req).await? {
        out.push_str(&format!("#broker {a}\n{ACL_HEADER}"));
        let acls: Vec<AclInfo> = if r.body.is_empty() {
            Vec::new()
        } else {
            crate::json::from_slice_lenient(&r.body)
                .map_err(|e| AdminError::BadAnswer { addr: a.clone(), reason: e.to_string() })?
        };
        for acl in &acls {
            out.push_str(&acl_lines(acl));
        }
    }
    Ok(out)
}

/// `copyUser`: copies users (all when `usernames` is None) from one broker to another, creating
/// or updating them there.
pub async fn copy_users(admin: &Admin, from: &str, to: &str, usernames: Option<&str>) -> Result<String, AdminError> {
    let req = RemotingCommand::request(request::AUTH_LIST_USER).with_ext("filter", "");
    let r = admin.call(from, req).await?;
    let users: Vec<UserInfo> = if r.body.is_empty() {
        Vec::new()
    } else {
        crate::json::from_slice_lenient(&r.body)
            .map_err(|e| AdminError::BadAnswer { addr: from.into(), reason: e.to_string() })?
    };
    let wanted = split(usernames);
    let mut out = String::new();
    for u in users {
        let Some(name) = u.username.clone() else { continue };
        if wanted.as_ref().is_some_and(|w| !w.contains(&name)) {
            continue;
        }
        let get = RemotingCommand::request(request::AUTH_GET_USER).with_ext("username", &name);
        let exists = !admin.call(to, get).await?.body.is_empty();
        let code = if exists { request::AUTH_UPDATE_USER } else { request::AUTH_CREATE_USER };
        let req = with_json(RemotingCommand::request(code).with_ext("username", &name), &u)?;
        admin.call(to, req).await?;
        out.push_str(&format!("copy user {name} from {from} to {to} success.\n"));
    }
    Ok(out)
}

/// `copyAcl`: copies ACLs (all when `subjects` is None) from one broker to another (merged there).
pub async fn copy_acls(admin: &Admin, from: &str, to: &str, subjects: Option<&str>) -> Result<String, AdminError> {
    let req =
        RemotingCommand::request(request::AUTH_LIST_ACL).with_ext("subjectFilter", "").with_ext("resourceFilter", "");
    let r = admin.call(from, req).await?;
    let acls: Vec<AclInfo> = if r.body.is_empty() {
        Vec::new()
    } else {
        crate::json::from_slice_lenient(&r.body)
            .map_err(|e| AdminError::BadAnswer { addr: from.into(), reason: e.to_string() })?
    };
    let wanted = split(subjects);
    let mut out = String::new();
    for a in acls {
        let Some(subject) = a.subject.clone() else { continue };
        if wanted.as_ref().is_some_and(|w| !w.contains(&subject)) {
            continue;
        }
        let req = with_json(RemotingCommand::request(request::AUTH_UPDATE_ACL).with_ext("subject", &subject), &a)?;
        admin.call(to, req).await?;
        out.push_str(&format!("copy acl {subject} from {from} to {to} success.\n"));
    }
    Ok(out)
}
