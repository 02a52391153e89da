//! Mailbox purposes and groups as the Graph docs describe them: `mailboxSettings.userPurpose`
//! (resources/mailboxsettings.md), `/groups` and `/groups/{id}/members` (api/group-list.md,
//! api/group-list-members.md), each behind its permission.

use crate::common;

use std::collections::HashSet;

use migrator_sim::{SimConfig, TenantSpec, ROLES};
use serde_json::Value;

fn config(roles: &[&str]) -> SimConfig {
    SimConfig {
        tenant: TenantSpec {
            users: 6,
            messages_per_user: 0,
            shared_mailboxes: 2,
            rooms: 1,
            groups: 5,
            ..TenantSpec::default()
        },
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..SimConfig::default()
    }
}

fn with_groups() -> Vec<&'static str> {
    ROLES.iter().copied().chain(["Group.Read.All"]).collect()
}

#[tokio::test]
async fn mailbox_settings_tell_shared_and_room_mailboxes_apart() {
    let s = common::start(config(&with_groups())).await;
    let tenant = s.sim.tenant();
    assert_eq!(tenant.users.len(), 9);
    let mut purposes = Vec::new();
    for u in &tenant.users {
        let settings = s
            .json(&format!("/v1.0/users/{}/mailboxSettings", u.id))
            .await;
        purposes.push(settings["userPurpose"].as_str().unwrap().to_string());
        // Exchange creates shared and resource mailboxes with sign-in blocked.
        if u.purpose != "user" {
            assert!(!u.account_enabled, "{}", u.mail);
        }
    }
    assert_eq!(
        purposes,
        ["user", "user", "user", "user", "user", "user", "shared", "shared", "room"]
    );
    let mails: Vec<&str> = tenant.users[6..].iter().map(|u| u.mail.as_str()).collect();
    assert_eq!(
        mails,
        ["info@contoso.com", "sales@contoso.com", "room1@contoso.com"]
    );
    // Without MailboxSettings.Read: Exchange's 403.
    let denied = common::start(config(&["User.Read.All", "Mail.Read"])).await;
    let r = denied
        .get(&format!(
            "/v1.0/users/{}/mailboxSettings",
            tenant.users[6].id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ErrorAccessDenied");
}

#[tokio::test]
async fn groups_list_with_their_kinds_and_members() {
    let s = common::start(config(&with_groups())).await;
    let tenant = s.sim.tenant();
    let (groups, pages) = s
        .all(
            "/v1.0/groups?$select=id,displayName,mail,mailEnabled,securityEnabled,groupTypes,proxyAddresses&$top=2",
            None,
        )
        .await;
    assert_eq!((groups.len(), pages), (5, 3));
    let kinds: Vec<(bool, bool, bool)> = groups
        .iter()
        .map(|g| {
            (
                g["mailEnabled"].as_bool().unwrap(),
                g["securityEnabled"].as_bool().unwrap(),
                g["groupTypes"][0] == "Unified",
            )
        })
        .collect();
    // A Microsoft 365 group, a distribution list, a mail-enabled security group, a security
    // group without mail, and a second Microsoft 365 group.
    assert_eq!(
        kinds,
        [
            (true, false, true),
            (true, false, false),
            (true, true, false),
            (false, true, false),
            (true, false, true)
        ]
    );
    assert!(groups[3]["mail"].is_null());
    assert_eq!(groups[0]["proxyAddresses"][0], "SMTP:project1@contoso.com");
    assert!(groups[0].get("visibility").is_none(), "$select applies");

    // Members: people of the group's parity, the first shared mailbox in Microsoft 365
    // groups, the nested first group and an outside contact in distribution lists.
    let session = &s;
    let members = |id: &str| {
        let path = format!("/v1.0/groups/{id}/members?$select=id,mail&$top=3");
        async move { session.all(&path, None).await.0 }
    };
    let project = members(groups[0]["id"].as_str().unwrap()).await;
    let types: HashSet<&str> = project
        .iter()
        .map(|m| m["@odata.type"].as_str().unwrap())
        .collect();
    assert_eq!(types, HashSet::from(["#microsoft.graph.user"]));
    let mails: Vec<&str> = project
        .iter()
        .map(|m| m["mail"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = tenant.users[..6]
        .iter()
        .step_by(2)
        .chain(&tenant.users[6..7])
        .map(|u| u.mail.as_str())
        .collect();
    assert_eq!(mails, expected);
    assert!(project[0].get("displayName").is_none(), "$select applies");
    let staff = members(groups[1]["id"].as_str().unwrap()).await;
    let last_two: Vec<(&str, &str)> = staff[staff.len() - 2..]
        .iter()
        .map(|m| {
            (
                m["@odata.type"].as_str().unwrap(),
                m["mail"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        last_two,
        [
            ("#microsoft.graph.group", "project1@contoso.com"),
            ("#microsoft.graph.orgContact", "partner1@tailspintoys.com")
        ]
    );

    let r = s.get("/v1.0/groups/nope/members").send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn groups_need_group_read_all() {
    let s = common::start(config(&ROLES)).await;
    for path in ["/v1.0/groups", "/v1.0/groups/x/members"] {
        let r = s.get(path).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    }
}
