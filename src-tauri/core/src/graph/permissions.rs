//! The application permissions the migrator needs, and the check that the app has them.
//!
//! Graph tokens list granted application permissions in the `roles` claim
//! (entra-docs access-token-claims-reference.md). Microsoft says to treat tokens as opaque, so
//! the claim is only a first look; [`check`] confirms each workload with one probe call, and a
//! mailbox excluded by an application access policy shows up there as `ErrorAccessDenied`
//! (Graph docs, concepts/auth-limit-mailbox-access.md) without failing the others.

use serde::Serialize;
use ts_rs::TS;

use super::auth::token_roles;
use super::client::{GraphClient, GraphError};
use super::mail::segment;
use super::pacer::Pacer;
use crate::secrets::Secret;

/// What a permission is needed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum Workload {
    Directory,
    Mail,
    Calendar,
    Contacts,
    Tasks,
}

/// One application permission and why it is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct Permission {
    pub name: &'static str,
    pub workload: Workload,
    /// Without it the run cannot start; otherwise only its workload is skipped.
    pub required: bool,
    pub purpose: &'static str,
}

/// Every application permission the migrator asks for (Graph docs, permissions-reference).
pub const PERMISSIONS: [Permission; 8] = [
    Permission {
        name: "User.Read.All",
        workload: Workload::Directory,
        required: true,
        purpose: "list users and their addresses",
    },
    Permission {
        name: "Domain.Read.All",
        workload: Workload::Directory,
        required: false,
        purpose: "list the tenant's domains",
    },
    Permission {
        name: "Mail.Read",
        workload: Workload::Mail,
        required: true,
        purpose: "read mail folders, messages and their MIME",
    },
    Permission {
        name: "MailboxSettings.Read",
        workload: Workload::Mail,
        required: false,
        purpose: "read each mailbox's time zone and language",
    },
    Permission {
        name: "Calendars.Read",
        workload: Workload::Calendar,
        required: false,
        purpose: "read calendars and events",
    },
    Permission {
        name: "Contacts.Read",
        workload: Workload::Contacts,
        required: false,
        purpose: "read contacts and contact folders",
    },
    Permission {
        name: "Tasks.Read.All",
        workload: Workload::Tasks,
        required: false,
        purpose: "read Microsoft To Do task lists",
    },
    // Only read when an IceWarp destination is asked to create groups or mailing lists
    // (`groups` in `[destination]`); the check before a run requires it then.
    Permission {
        name: "Group.Read.All",
        workload: Workload::Directory,
        required: false,
        purpose: "list mail-enabled groups and their members (IceWarp groups and mailing lists)",
    },
];

/// Whether one permission is usable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct PermissionStatus {
    pub name: String,
    pub workload: Workload,
    pub required: bool,
    /// In the token's `roles` claim; `None` when the token could not be read.
    pub in_token: Option<bool>,
    /// The workload's probe call succeeded; `None` when no probe ran for it.
    pub probe_ok: Option<bool>,
    /// What the probe said when it failed.
    pub detail: Option<String>,
}

impl PermissionStatus {
    /// Granted when the probe worked, or (without a probe) when the token lists it.
    pub fn granted(&self) -> bool {
        self.probe_ok.or(self.in_token).unwrap_or(false)
    }
}

/// Compares the token's roles with [`PERMISSIONS`], then probes each workload against the
/// first user (`probe_user`, a user id or UPN). Needs a signed-in client.
pub async fn check(
    client: &GraphClient,
    token: &Secret,
    probe_user: Option<&str>,
) -> Vec<PermissionStatus> {
    let roles = token_roles(token);
    let pacer = Pacer::new(Default::default());
    let mut statuses: Vec<PermissionStatus> = PERMISSIONS
        .iter()
        .map(|p| PermissionStatus {
            name: p.name.to_string(),
            workload: p.workload,
            required: p.required,
            in_token: roles.as_ref().map(|r| r.iter().any(|role| role == p.name)),
            probe_ok: None,
            detail: None,
        })
        .collect();
    let user = probe_user.map(segment);
    let probes: Vec<(&str, String)> = [
        Some(("User.Read.All", "/users?$select=id&$top=1".to_string())),
        Some(("Domain.Read.All", "/domains?$select=id".to_string())),
        Some(("Group.Read.All", "/groups?$select=id&$top=1".to_string())),
        user.as_ref().map(|u| {
            (
                "Mail.Read",
                format!("/users/{u}/mailFolders/inbox?$select=id"),
            )
        }),
        user.as_ref().map(|u| {
            (
                "MailboxSettings.Read",
                format!("/users/{u}/mailboxSettings"),
            )
        }),
        user.as_ref().map(|u| {
            (
                "Calendars.Read",
                format!("/users/{u}/calendars?$select=id&$top=1"),
            )
        }),
        user.as_ref().map(|u| {
            (
                "Contacts.Read",
                format!("/users/{u}/contactFolders?$select=id&$top=1"),
            )
        }),
        user.as_ref()
            .map(|u| ("Tasks.Read.All", format!("/users/{u}/todo/lists?$top=1"))),
    ]
    .into_iter()
    .flatten()
    .collect();
    for (name, path) in probes {
        let result: Result<serde_json::Value, GraphError> =
            client.get_json(&pacer, &client.url(&path), |_| {}).await;
        if let Some(status) = statuses.iter_mut().find(|s| s.name == name) {
            status.probe_ok = Some(result.is_ok());
            status.detail = result.err().map(|e| e.to_string());
        }
    }
    statuses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_matches_the_documented_minimum() {
        let required: Vec<_> = PERMISSIONS
            .iter()
            .filter(|p| p.required)
            .map(|p| p.name)
            .collect();
        assert_eq!(required, ["User.Read.All", "Mail.Read"]);
        let mut names: Vec<_> = PERMISSIONS.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PERMISSIONS.len());
    }

    #[test]
    fn a_probe_result_outranks_the_token_claim() {
        let mut s = PermissionStatus {
            name: "Mail.Read".into(),
            workload: Workload::Mail,
            required: true,
            in_token: Some(true),
            probe_ok: None,
            detail: None,
        };
        assert!(s.granted());
        s.probe_ok = Some(false);
        assert!(!s.granted());
        s.in_token = None;
        s.probe_ok = None;
        assert!(!s.granted());
    }
}
