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
use super::client::{ByteSink, GraphClient, GraphError};
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
    /// Why the run does not use this permission here (To Do in a cloud without it): it is
    /// not probed and not missing.
    pub not_used: Option<String>,
}

impl PermissionStatus {
    /// Granted when the probe worked, or (without a probe) when the token lists it.
    pub fn granted(&self) -> bool {
        self.probe_ok.or(self.in_token).unwrap_or(false)
    }

    /// Needed by the run and not granted.
    pub fn missing(&self) -> bool {
        self.not_used.is_none() && !self.granted()
    }
}

/// Users tried in turn for the mailbox probes before the check gives up on finding one.
const PROBE_USERS: usize = 5;

/// Compares the token's roles with [`PERMISSIONS`], then probes each workload with what the
/// run itself needs: a message's MIME (`$value`) and an event's body, not just a listing
/// (Mail.ReadBasic.All lists folders and messages but reads no body; Calendars.ReadBasic.All
/// gives events without theirs; Graph docs permissions-reference.md).
///
/// The mailbox probes run against the first of `candidates` (members with a mail address, ids
/// or UPNs) whose inbox answers: one user answering 404 (no Exchange mailbox) or 403 (e.g.
/// excluded by an application access policy) is inconclusive, so the next one is tried, up to
/// [`PROBE_USERS`]. Returns the statuses and the index of the user probed. Needs a signed-in
/// client.
pub async fn check(
    client: &GraphClient,
    token: &Secret,
    candidates: &[&str],
) -> (Vec<PermissionStatus>, Option<usize>) {
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
            not_used: (p.workload == Workload::Tasks && !client.serves_todo())
                .then(|| super::client::TASKS_LEFT_OUT.to_string()),
        })
        .collect();
    let mut set = |name: &str, result: Result<(), String>| {
        if let Some(status) = statuses.iter_mut().find(|s| s.name == name) {
            status.probe_ok = Some(result.is_ok());
            status.detail = result.err();
        }
    };
    let get = |path: String| {
        let pacer = &pacer;
        async move {
            client
                .get_json::<serde_json::Value>(pacer, &client.url(&path), |_| {})
                .await
        }
    };
    for (name, path) in [
        ("User.Read.All", "/users?$select=id&$top=1"),
        ("Domain.Read.All", "/domains?$select=id"),
        ("Group.Read.All", "/groups?$select=id&$top=1"),
    ] {
        set(name, answered(get(path.to_string()).await));
    }

    let mut chosen = None;
    let mut last_error = None;
    for (index, candidate) in candidates.iter().take(PROBE_USERS).enumerate() {
        let u = segment(candidate);
        match get(format!("/users/{u}/mailFolders/inbox?$select=id")).await {
            Ok(_) => {
                chosen = Some(index);
                break;
            }
            Err(e) if matches!(e.status(), Some(403 | 404)) => last_error = Some(e.to_string()),
            Err(e) => {
                last_error = Some(e.to_string());
                break;
            }
        }
    }
    let Some(index) = chosen else {
        if let Some(e) = last_error {
            let tried = candidates.len().min(PROBE_USERS);
            set(
                "Mail.Read",
                Err(format!(
                    "no mailbox of the {tried} users tried could be read: {e}"
                )),
            );
        }
        return (statuses, None);
    };
    let u = segment(candidates[index]);
    set("Mail.Read", mail_probe(client, &pacer, &u).await);
    set(
        "Calendars.Read",
        calendar_probe(get(format!("/users/{u}/events?$select=id,body&$top=1")).await),
    );
    for (name, path) in [
        (
            "MailboxSettings.Read",
            format!("/users/{u}/mailboxSettings"),
        ),
        (
            "Contacts.Read",
            format!("/users/{u}/contactFolders?$select=id&$top=1"),
        ),
        ("Tasks.Read.All", format!("/users/{u}/todo/lists?$top=1")),
    ] {
        if name == "Tasks.Read.All" && !client.serves_todo() {
            // China (21Vianet) has no To Do API (api/todo-list-lists.md): nothing to probe.
            continue;
        }
        set(name, answered(get(path).await));
    }
    (statuses, Some(index))
}

/// A probe that only needs Graph to answer.
fn answered(result: Result<serde_json::Value, GraphError>) -> Result<(), String> {
    result.map(|_| ()).map_err(|e| e.to_string())
}

/// What the check says when Graph lists messages but refuses their content.
pub const MAIL_BODY_REFUSED: &str = "Graph lists the messages but refuses their content ($value): add Mail.Read (Mail.ReadBasic.All reads no message bodies)";
/// What the check says when events come without their body.
pub const EVENT_BODY_MISSING: &str = "Graph gives events without their body: add Calendars.Read (Calendars.ReadBasic.All reads no event bodies)";

/// Lists one message of mailbox `u` (a path segment) and downloads its MIME, as the run does;
/// an empty mailbox proves only the listing.
async fn mail_probe(client: &GraphClient, pacer: &Pacer, u: &str) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Listed {
        #[serde(default)]
        value: Vec<Id>,
    }
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    let url = client.url(&format!("/users/{u}/messages?$select=id&$top=1"));
    let listed: Listed = client
        .get_json(pacer, &url, |_| {})
        .await
        .map_err(|e| e.to_string())?;
    let Some(first) = listed.value.first() else {
        return Ok(());
    };
    let url = client.url(&format!(
        "/users/{u}/messages/{}/$value",
        segment(&first.id)
    ));
    match client.download(pacer, &url, &mut Discard, |_| {}).await {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(403) => Err(format!("{MAIL_BODY_REFUSED}: {e}")),
        Err(e) => Err(e.to_string()),
    }
}

/// An event listing with `body` selected: an event without one means the basic permission.
fn calendar_probe(listed: Result<serde_json::Value, GraphError>) -> Result<(), String> {
    let listed = listed.map_err(|e| e.to_string())?;
    let first = listed
        .get("value")
        .and_then(|v| v.as_array())
        .and_then(|v| v.first());
    match first {
        Some(event) if event.get("body").is_none() => Err(EVENT_BODY_MISSING.to_string()),
        _ => Ok(()),
    }
}

/// A sink that keeps nothing: the probe needs Graph's answer, not the bytes.
struct Discard;

impl ByteSink for Discard {
    async fn reset(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    async fn write(&mut self, _chunk: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
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
            not_used: None,
        };
        assert!(s.granted());
        s.probe_ok = Some(false);
        assert!(!s.granted());
        s.in_token = None;
        s.probe_ok = None;
        assert!(!s.granted());
    }
}
