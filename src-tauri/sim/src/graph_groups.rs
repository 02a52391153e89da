//! The group routes: `GET /groups`, `GET /groups/{id}` and `GET /groups/{id}/members`, with
//! paging and `$select` (Graph docs api/group-list.md, api/group-get.md,
//! api/group-list-members.md). Members are directory objects of mixed types, each labelled
//! with its `@odata.type`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::graph::{page, select, Ctx};
use crate::tenant::{Group, GroupMember, Tenant};

/// The answer to a `/groups…` path (segments after the version), or `None` for a path that
/// is not a group route.
pub(crate) fn route(ctx: &Ctx<'_>, path: &[&str], tenant: &Tenant) -> Option<Response> {
    let fields = ctx.select();
    let find = |id: &str| tenant.groups.iter().find(|g| g.id.eq_ignore_ascii_case(id));
    let not_found = |id: &str| {
        ctx.error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        )
    };
    Some(match path {
        ["groups"] => page(ctx, "groups", &tenant.groups, 100, 999, |g| {
            select(fields.as_deref(), group_json(g))
        }),
        ["groups", id] => match find(id) {
            Some(g) => axum::Json(select(fields.as_deref(), group_json(g))).into_response(),
            None => not_found(id),
        },
        ["groups", id, "members"] => match find(id) {
            Some(g) => page(ctx, "directoryObjects", &g.members, 100, 999, |m| {
                select(fields.as_deref(), member_json(tenant, m))
            }),
            None => not_found(id),
        },
        _ => return None,
    })
}

fn group_json(g: &Group) -> Value {
    json!({"id": g.id, "displayName": g.display_name, "mail": g.mail,
           "mailEnabled": g.mail_enabled, "securityEnabled": g.security_enabled,
           "groupTypes": g.group_types, "proxyAddresses": g.proxy_addresses,
           "mailNickname": g.mail.as_deref().and_then(|m| m.split('@').next()).unwrap_or(""),
           "description": null, "visibility": if g.group_types.is_empty() { Value::Null } else { json!("Private") }})
}

fn member_json(tenant: &Tenant, m: &GroupMember) -> Value {
    match m {
        GroupMember::User(id) => {
            let u = tenant.users.iter().find(|u| &u.id == id);
            json!({"@odata.type": "#microsoft.graph.user", "id": id,
                   "displayName": u.map(|u| u.display_name.clone()),
                   "mail": u.map(|u| u.mail.clone()),
                   "userPrincipalName": u.map(|u| u.user_principal_name.clone())})
        }
        GroupMember::Group(id) => {
            let g = tenant.groups.iter().find(|g| &g.id == id);
            json!({"@odata.type": "#microsoft.graph.group", "id": id,
                   "displayName": g.map(|g| g.display_name.clone()),
                   "mail": g.and_then(|g| g.mail.clone())})
        }
        GroupMember::Contact {
            id,
            display_name,
            mail,
        } => json!({"@odata.type": "#microsoft.graph.orgContact", "id": id,
                    "displayName": display_name, "mail": mail}),
    }
}
