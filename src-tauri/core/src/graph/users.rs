//! Users, their mailboxes' purpose, and the tenant's groups with their members.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::{GraphClient, GraphError};
use super::mail::segment;
use super::pacer::Pacer;
use super::paging::{Page, Pages};
use super::types::{User, USER_SELECT};

/// Every user of the tenant (`GET /users`, Graph docs api/user-list.md), 999 per page.
pub async fn list_users(
    client: &GraphClient,
    pacer: &Pacer,
    on_throttle: impl FnMut(Duration),
) -> Result<Page<User>, GraphError> {
    let url = client.url(&format!("/users?$select={USER_SELECT}&$top=999"));
    Pages::new(client, pacer, url).collect(on_throttle).await
}

/// What a mailbox is for: `mailboxSettings.userPurpose` (Graph docs
/// resources/mailboxsettings.md: "Differentiates a mailbox for a single user from a shared
/// mailbox and equipment mailbox in Exchange Online"; read-only, needs MailboxSettings.Read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UserPurpose {
    /// A user account with a mailbox in the local forest.
    User,
    /// A mailbox linked to a user account in another forest.
    Linked,
    /// A mailbox shared by two or more user accounts.
    Shared,
    /// A mailbox that represents a conference room.
    Room,
    /// A mailbox that represents a piece of equipment.
    Equipment,
    /// A mailbox whose purpose is none of the above.
    Others,
    /// `unknownFutureValue`, or a value added after this was written.
    #[serde(other)]
    Unknown,
}

/// What kind of mailbox a user has, in the plan's, the report's and provisioning's words: its
/// `mailboxSettings.userPurpose` ([`MailboxKind::from_purpose`]), or a guest (a directory user
/// of another organisation, `userType` `Guest`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum MailboxKind {
    User,
    Shared,
    Room,
    Equipment,
    Guest,
    /// Graph did not say (no `userPurpose`, `others`, or not read yet). Provisioning and the
    /// account rules treat it as a user mailbox ([`MailboxKind::or_user`]).
    #[default]
    Unknown,
}

impl MailboxKind {
    /// The kind in the plan's and report's words.
    pub fn label(self) -> &'static str {
        match self {
            MailboxKind::User => "user",
            MailboxKind::Shared => "shared",
            MailboxKind::Room => "room",
            MailboxKind::Equipment => "equipment",
            MailboxKind::Guest => "guest",
            MailboxKind::Unknown => "unknown",
        }
    }

    /// The kind Graph's `userPurpose` names: `linked` is a person's mailbox; `others`, a value
    /// added later, or `None` (not known) is [`MailboxKind::Unknown`].
    pub fn from_purpose(purpose: Option<UserPurpose>) -> MailboxKind {
        match purpose {
            Some(UserPurpose::User | UserPurpose::Linked) => MailboxKind::User,
            Some(UserPurpose::Shared) => MailboxKind::Shared,
            Some(UserPurpose::Room) => MailboxKind::Room,
            Some(UserPurpose::Equipment) => MailboxKind::Equipment,
            _ => MailboxKind::Unknown,
        }
    }

    /// The kind an account is made for: a mailbox of no known kind is a user mailbox (without
    /// `userPurpose` every user counts as one).
    pub fn or_user(self) -> MailboxKind {
        match self {
            MailboxKind::Unknown => MailboxKind::User,
            kind => kind,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MailboxSettings {
    #[serde(default)]
    user_purpose: Option<UserPurpose>,
}

/// The purpose of a user's mailbox (`GET /users/{id}/mailboxSettings`, Graph docs
/// api/user-get-mailboxsettings.md). `Ok(None)` when Graph does not say (an older mailbox
/// without the property). A user without an Exchange mailbox answers 404, an app without
/// MailboxSettings.Read 403: both are errors for the caller to weigh.
pub async fn mailbox_purpose(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
) -> Result<Option<UserPurpose>, GraphError> {
    let url = client.url(&format!("/users/{}/mailboxSettings", segment(user_id)));
    let settings: MailboxSettings = client.get_json(pacer, &url, |_| {}).await?;
    Ok(settings.user_purpose)
}

/// The error code Exchange Online gives (404) on mailbox calls for a user without an Exchange
/// Online mailbox: unlicensed, hosted on-premises (hybrid), soft-deleted or inactive
/// (microsoftgraph/msgraph-sdk-javascript issue 1756: "The mailbox is either inactive,
/// soft-deleted, or is hosted on-premise.").
pub const NO_MAILBOX_CODE: &str = "MailboxNotEnabledForRESTAPI";

/// True when `e` says the user has no Exchange Online mailbox ([`NO_MAILBOX_CODE`]).
pub fn is_no_mailbox(e: &GraphError) -> bool {
    matches!(e, GraphError::Status { status: 404, code, .. } if code.eq_ignore_ascii_case(NO_MAILBOX_CODE))
}

/// What the start of a run learns about one user's mailbox, before any data moves.
#[derive(Debug, Default)]
pub struct MailboxFacts {
    /// `mailboxSettings.userPurpose`; `None` when Graph does not say or could not be asked.
    pub purpose: Option<UserPurpose>,
    /// `true` when Graph answered [`NO_MAILBOX_CODE`]: nothing of this user can be read.
    pub no_mailbox: bool,
    /// `Some(true)` when the user has an online archive mailbox, which Graph's mail API cannot
    /// read; `None` when it could not be asked.
    pub online_archive: Option<bool>,
    /// Why `mailboxSettings` could not be read (other than [`NO_MAILBOX_CODE`]).
    pub settings_error: Option<GraphError>,
}

/// Reads [`MailboxFacts`] for one user on that mailbox's own `pacer` (Graph's limits are per
/// app and mailbox, throttling-limits.md "Outlook service limits"): its `mailboxSettings`
/// (when they cannot be read, its inbox, to learn whether there is a mailbox at all), then,
/// if it has a mailbox, the beta `settings/exchange` for an online archive.
pub async fn mailbox_facts(client: &GraphClient, pacer: &Pacer, user_id: &str) -> MailboxFacts {
    let mut facts = MailboxFacts::default();
    match mailbox_purpose(client, pacer, user_id).await {
        Ok(purpose) => facts.purpose = purpose,
        Err(e) if is_no_mailbox(&e) => {
            facts.no_mailbox = true;
            return facts;
        }
        Err(e) => {
            // Without MailboxSettings.Read (403) the settings say nothing about the mailbox:
            // its inbox does (Mail.Read is needed anyway).
            let url = client.url(&format!(
                "/users/{}/mailFolders/inbox?$select=id",
                segment(user_id)
            ));
            let inbox: Result<serde_json::Value, GraphError> =
                client.get_json(pacer, &url, |_| {}).await;
            if inbox.as_ref().is_err_and(is_no_mailbox) {
                facts.no_mailbox = true;
                return facts;
            }
            facts.settings_error = Some(e);
        }
    }
    facts.online_archive = online_archive(client, pacer, user_id).await.ok();
    facts
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExchangeSettings {
    #[serde(default)]
    in_place_archive_mailbox_id: Option<String>,
}

/// Whether the user has an online (In-Place) archive mailbox: beta `GET
/// /users/{id}/settings/exchange` (Graph docs resources/exchangesettings.md, beta only:
/// `inPlaceArchiveMailboxId`). Graph's mail API reads only the primary mailbox, so an archive
/// has to be exported another way.
pub async fn online_archive(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
) -> Result<bool, GraphError> {
    let url = client.beta_url(&format!("/users/{}/settings/exchange", segment(user_id)));
    let settings: ExchangeSettings = client.get_json(pacer, &url, |_| {}).await?;
    Ok(settings
        .in_place_archive_mailbox_id
        .is_some_and(|id| !id.trim().is_empty()))
}

/// A domain of the tenant (Graph docs resources/domain.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub id: String,
    #[serde(default)]
    pub is_verified: bool,
}

/// The tenant's verified domains, lower-case (`GET /domains`, Graph docs api/domain-list.md;
/// needs Domain.Read.All). Only these hold the tenant's own mailboxes: a guest's address
/// (`x@gmail.com`) is never among them.
pub async fn verified_domains(
    client: &GraphClient,
    pacer: &Pacer,
) -> Result<Vec<String>, GraphError> {
    let url = client.url("/domains?$select=id,isVerified");
    let listed: Page<Domain> = Pages::new(client, pacer, url).collect(|_| {}).await?;
    let mut names: Vec<String> = listed
        .items
        .into_iter()
        .filter(|d| d.is_verified)
        .map(|d| d.id.trim().to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// A group of the tenant (Graph docs resources/group.md), with the fields that say whether it
/// carries mail and what kind it is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub mail_enabled: Option<bool>,
    #[serde(default)]
    pub security_enabled: Option<bool>,
    /// Contains `Unified` for a Microsoft 365 group.
    #[serde(default)]
    pub group_types: Vec<String>,
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
}

/// `$select` for [`Group`].
pub const GROUP_SELECT: &str =
    "id,displayName,mail,mailEnabled,securityEnabled,groupTypes,proxyAddresses";

/// What kind of mail-enabled group a group is (Graph docs concepts/groups-overview.md, "Group
/// types in Microsoft Entra ID and Microsoft Graph": Microsoft 365 groups have `groupTypes`
/// `["Unified"]`; distribution groups are mail-enabled and not security-enabled; mail-enabled
/// security groups are both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Microsoft365,
    Distribution,
    MailEnabledSecurity,
}

impl Group {
    /// The kind of a mail-enabled group; `None` for a group that carries no mail (a plain
    /// security group).
    pub fn kind(&self) -> Option<GroupKind> {
        if self.mail_enabled != Some(true) {
            return None;
        }
        if self
            .group_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case("Unified"))
        {
            Some(GroupKind::Microsoft365)
        } else if self.security_enabled == Some(true) {
            Some(GroupKind::MailEnabledSecurity)
        } else {
            Some(GroupKind::Distribution)
        }
    }
}

/// A direct member of a group: a user, a group, an organizational contact, a device or a
/// service principal (`@odata.type` says which; Graph docs api/group-list-members.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMember {
    pub id: String,
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
}

impl GroupMember {
    /// The member's type without the namespace: `user`, `group`, `orgContact`, ...
    pub fn member_type(&self) -> &str {
        self.odata_type
            .as_deref()
            .unwrap_or("")
            .trim_start_matches("#microsoft.graph.")
    }
}

/// Every group of the tenant (`GET /groups`, Graph docs api/group-list.md, `$top` up to 999;
/// needs Group.Read.All). Filtering on mail is left to the caller: `$filter` on `mailEnabled`
/// would work too, but the tenant's groups are few next to its mail.
pub async fn list_groups(client: &GraphClient, pacer: &Pacer) -> Result<Page<Group>, GraphError> {
    let url = client.url(&format!("/groups?$select={GROUP_SELECT}&$top=999"));
    Pages::new(client, pacer, url).collect(|_| {}).await
}

/// The direct members of a group (`GET /groups/{id}/members`, Graph docs
/// api/group-list-members.md; needs Group.Read.All or GroupMember.Read.All). Nested groups
/// are members themselves, not expanded.
pub async fn group_members(
    client: &GraphClient,
    pacer: &Pacer,
    group_id: &str,
) -> Result<Page<GroupMember>, GraphError> {
    let url = client.url(&format!(
        "/groups/{}/members?$select=id,mail&$top=999",
        segment(group_id)
    ));
    Pages::new(client, pacer, url).collect(|_| {}).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(mail_enabled: bool, security: bool, types: &[&str]) -> Group {
        Group {
            id: "g".into(),
            display_name: None,
            mail: None,
            mail_enabled: Some(mail_enabled),
            security_enabled: Some(security),
            group_types: types.iter().map(|t| t.to_string()).collect(),
            proxy_addresses: Vec::new(),
        }
    }

    #[test]
    fn group_kinds_follow_the_documented_table() {
        assert_eq!(
            group(true, false, &["Unified"]).kind(),
            Some(GroupKind::Microsoft365)
        );
        assert_eq!(
            group(true, false, &[]).kind(),
            Some(GroupKind::Distribution)
        );
        assert_eq!(
            group(true, true, &[]).kind(),
            Some(GroupKind::MailEnabledSecurity)
        );
        assert_eq!(group(false, true, &[]).kind(), None);
        assert_eq!(group(false, true, &["DynamicMembership"]).kind(), None);
    }

    #[test]
    fn purposes_decode_and_unknown_values_do_not_fail() {
        let p: Vec<UserPurpose> =
            serde_json::from_str(r#"["user","shared","room","equipment","linked","others","unknownFutureValue","kiosk"]"#)
                .unwrap();
        assert_eq!(
            p,
            [
                UserPurpose::User,
                UserPurpose::Shared,
                UserPurpose::Room,
                UserPurpose::Equipment,
                UserPurpose::Linked,
                UserPurpose::Others,
                UserPurpose::Unknown,
                UserPurpose::Unknown
            ]
        );
        let m: GroupMember = serde_json::from_str(
            r##"{"@odata.type":"#microsoft.graph.orgContact","id":"c","mail":"x@y.z"}"##,
        )
        .unwrap();
        assert_eq!(m.member_type(), "orgContact");
    }
}
