//! Users as Exchange Online has them: B2B guests (userType `Guest`, an outside address,
//! learn.microsoft.com/entra/external-id/user-properties), users without an Exchange Online
//! mailbox (404 `MailboxNotEnabledForRESTAPI`), online archives (beta `settings/exchange`,
//! resources/exchangesettings.md), and what the basic permissions leave out
//! (permissions-reference.md: Mail.ReadBasic.All, Calendars.ReadBasic.All).

use crate::common;

use migrator_sim::{SimConfig, TenantSpec, ROLES};
use serde_json::Value;

fn config(roles: &[&str]) -> SimConfig {
    SimConfig {
        tenant: TenantSpec {
            users: 2,
            messages_per_user: 2,
            guests: 1,
            without_mailbox: 1,
            online_archives: 1,
            ..TenantSpec::default()
        },
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn guests_mailbox_less_users_and_archives_answer_as_exchange_online_does() {
    let s = common::start(config(&ROLES)).await;
    let tenant = s.sim.tenant();
    let users = s
        .json("/v1.0/users?$select=id,mail,userType,userPrincipalName")
        .await;
    let types: Vec<&str> = users["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Member", "Member", "Guest", "Member"]);
    let guest = &users["value"][2];
    assert!(guest["mail"].as_str().unwrap().ends_with("@gmail.com"));
    assert!(guest["userPrincipalName"]
        .as_str()
        .unwrap()
        .contains("#EXT#@contoso.onmicrosoft.com"));
    // The verified domains are the tenant's own: never a guest's.
    let domains = s.json("/v1.0/domains").await;
    assert!(domains["value"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["isVerified"] == true && d["id"] != "gmail.com"));

    for u in &tenant.users[2..] {
        for path in [
            "mailboxSettings",
            "mailFolders/inbox",
            "calendars",
            "contactFolders",
        ] {
            let r = s
                .get(&format!("/v1.0/users/{}/{path}", u.id))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404, "{} {path}", u.mail);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "MailboxNotEnabledForRESTAPI");
        }
    }

    let archive = |v: &Value| v.get("inPlaceArchiveMailboxId").cloned();
    let beta = s
        .json(&format!(
            "/beta/users/{}/settings/exchange",
            tenant.users[0].id
        ))
        .await;
    assert!(archive(&beta).is_some_and(|a| a.is_string()), "{beta}");
    let none = s
        .json(&format!(
            "/beta/users/{}/settings/exchange",
            tenant.users[1].id
        ))
        .await;
    assert_eq!(archive(&none), None);
    // v1.0's exchangeSettings has only the primary mailbox.
    let v1 = s
        .json(&format!(
            "/v1.0/users/{}/settings/exchange",
            tenant.users[0].id
        ))
        .await;
    assert_eq!(archive(&v1), None);
    assert!(v1["primaryMailboxId"].is_string());
}

#[tokio::test]
async fn basic_permissions_list_items_but_give_no_bodies() {
    let roles: Vec<&str> = ROLES
        .iter()
        .copied()
        .filter(|r| *r != "Mail.Read" && *r != "Calendars.Read")
        .chain(["Mail.ReadBasic.All", "Calendars.ReadBasic.All"])
        .collect();
    let s = common::start(config(&roles)).await;
    let user = s.sim.tenant().users[0].id.clone();
    let listed = s
        .json(&format!(
            "/v1.0/users/{user}/messages?$select=id,subject,body&$top=1"
        ))
        .await;
    let message = &listed["value"][0];
    assert!(message["subject"].is_string());
    assert!(message.get("body").is_none(), "{message}");
    let id = message["id"].as_str().unwrap();
    let r = s
        .get(&format!("/v1.0/users/{user}/messages/{id}/$value"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let events = s
        .json(&format!(
            "/v1.0/users/{user}/events?$select=id,subject,body&$top=1"
        ))
        .await;
    let event = &events["value"][0];
    assert!(event["id"].is_string(), "{events}");
    assert!(event.get("body").is_none(), "{event}");
}
