//! Graph answers as the docs say: authentication, users, domains, folders, messages, MIME.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use migrator_sim::{generate_tenant, SimConfig, SimServer, TenantSpec};
use serde_json::Value;

fn tenant(users: usize, messages: usize) -> SimConfig {
    SimConfig {
        tenant: TenantSpec {
            users,
            messages_per_user: messages,
            max_attachment: 64 * 1024,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn graph_needs_a_valid_unexpired_token() {
    let sim = SimServer::start(SimConfig {
        token_lifetime: Duration::ZERO,
        ..SimConfig::demo()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let users = format!("{}/v1.0/users", sim.url());
    let expired = common::token(&sim, &http).await;
    for (auth, message) in [
        (None, "Access token is empty."),
        (
            Some("a.b.c"),
            "Access token has expired or is not yet valid.",
        ),
        (
            Some(expired.as_str()),
            "Access token has expired or is not yet valid.",
        ),
    ] {
        let mut req = http.get(&users);
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
        assert!(r.headers().contains_key("request-id"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
        assert_eq!(body["error"]["message"], message);
        assert!(body["error"]["innerError"]["request-id"].is_string());
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn users_page_through_every_user_exactly_once() {
    let s = common::start(tenant(23, 0)).await;
    let (items, pages) = s.all("/v1.0/users?$top=5", None).await;
    assert_eq!(pages, 5);
    let ids: HashSet<&str> = items.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 23);
    let expected: HashSet<String> = s.sim.tenant().users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids, expected.iter().map(String::as_str).collect());
    // Without $select: the default set, which has no accountEnabled nor proxyAddresses.
    assert!(items[0].get("accountEnabled").is_none());
    assert!(items[0]["userPrincipalName"].is_string());
    let selected = s
        .json("/v1.0/users?$select=id,mail,accountEnabled,proxyAddresses&$top=999")
        .await;
    let first = &selected["value"][0];
    assert!(first["accountEnabled"].is_boolean());
    assert!(first["proxyAddresses"][0]
        .as_str()
        .unwrap()
        .starts_with("SMTP:"));
    assert!(first.get("displayName").is_none());
    let r = s.get("/v1.0/users?$top=1000").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_user_is_found_by_id_or_upn_and_an_unknown_one_is_404() {
    let s = common::start(tenant(2, 0)).await;
    let u = s.sim.tenant().users[1].clone();
    for key in [&u.id, &u.user_principal_name] {
        let body = s.json(&format!("/v1.0/users/{key}")).await;
        assert_eq!(body["id"], u.id);
    }
    let r = s
        .get("/v1.0/users/nobody@contoso.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    let r = s
        .get("/v1.0/users/nobody@contoso.com/mailFolders")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ErrorInvalidUser");
}

#[tokio::test]
async fn domains_include_the_initial_onmicrosoft_domain() {
    let s = common::start(SimConfig::demo()).await;
    let body = s.json("/v1.0/domains").await;
    let domains = body["value"].as_array().unwrap();
    let initial = domains.iter().find(|d| d["isInitial"] == true).unwrap();
    assert_eq!(initial["id"], "contoso.onmicrosoft.com");
    let default = domains.iter().find(|d| d["isDefault"] == true).unwrap();
    assert_eq!(default["id"], "contoso.com");
    assert!(domains.iter().all(|d| d["isVerified"] == true));
}

/// Walks the folder tree through Graph as a client would.
async fn walk(s: &common::Session, user: &str, hidden: bool) -> Vec<Value> {
    let suffix = if hidden {
        "?includeHiddenFolders=true"
    } else {
        ""
    };
    let (mut frontier, _) = s
        .all(&format!("/v1.0/users/{user}/mailFolders{suffix}"), None)
        .await;
    let mut out = Vec::new();
    while let Some(f) = frontier.pop() {
        if f["childFolderCount"].as_u64().unwrap() > 0 {
            let id = f["id"].as_str().unwrap();
            let (children, _) = s
                .all(
                    &format!("/v1.0/users/{user}/mailFolders/{id}/childFolders{suffix}"),
                    None,
                )
                .await;
            frontier.extend(children);
        }
        out.push(f);
    }
    out
}

#[tokio::test]
async fn folders_form_the_generated_tree_with_hidden_and_search_folders() {
    let s = common::start(SimConfig::demo()).await;
    let user = s.sim.tenant().users[0].clone();
    let visible = walk(&s, &user.id, false).await;
    let all = walk(&s, &user.id, true).await;
    assert_eq!(all.len(), user.folders.len());
    assert_eq!(
        visible.len(),
        user.folders.iter().filter(|f| !f.is_hidden).count()
    );
    for f in &all {
        let mine = user.folders.iter().find(|x| x.id == f["id"]).unwrap();
        assert_eq!(f["displayName"], mine.display_name.as_str());
        if !mine.is_search_folder {
            assert_eq!(f["totalItemCount"], mine.messages.len() as u64);
        }
        let search = f["@odata.type"] == "#microsoft.graph.mailSearchFolder";
        assert_eq!(search, mine.is_search_folder);
        assert!(f["parentFolderId"].is_string());
    }
    let names: HashSet<&str> = all
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    for awkward in [
        "a/b",
        "v1.2",
        "100%",
        "*starred*",
        "R&D",
        "日本語",
        "Rechnungen äöü",
    ] {
        assert!(names.contains(awkward), "{awkward}");
    }
    // Well-known names stand for ids, in any case.
    let inbox = s
        .json(&format!("/v1.0/users/{}/mailFolders/Inbox", user.id))
        .await;
    assert_eq!(inbox["displayName"], "Inbox");
    let root = s
        .json(&format!(
            "/v1.0/users/{}/mailFolders/msgfolderroot",
            user.id
        ))
        .await;
    assert_eq!(inbox["parentFolderId"], root["id"]);
    let r = s
        .get(&format!("/v1.0/users/{}/mailFolders/AAMkNope", user.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ErrorItemNotFound");
}

#[tokio::test]
async fn messages_page_through_every_message_once_at_any_page_size() {
    let s = common::start(tenant(1, 250)).await;
    let user = s.sim.tenant().users[0].clone();
    let inbox = user
        .folders
        .iter()
        .find(|f| f.display_name == "Inbox")
        .unwrap();
    let expected: Vec<&str> = inbox.messages.iter().map(|m| m.id.as_str()).collect();
    let base = format!(
        "/v1.0/users/{}/mailFolders/inbox/messages",
        user.user_principal_name
    );
    let immutable = "IdType=\"ImmutableId\"";
    // Default page size 10.
    let first = s
        .get(&base)
        .header("Prefer", immutable)
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["preference-applied"], immutable);
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        first["value"].as_array().unwrap().len(),
        10.min(expected.len())
    );
    for (query, prefer, page) in [
        ("", format!("{immutable}, odata.maxpagesize=7"), 7),
        ("?$top=1000", immutable.to_string(), 1000),
        ("?$top=3&$select=subject,isRead", immutable.to_string(), 3),
    ] {
        let (items, pages) = s.all(&format!("{base}{query}"), Some(&prefer)).await;
        let ids: Vec<&str> = items.iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, expected, "{query} {prefer}: all, once, newest first");
        assert_eq!(pages, expected.len().div_ceil(page).max(1));
        if query.contains("$select") {
            assert!(items[0].get("receivedDateTime").is_none());
            assert!(items[0]["subject"].is_string());
        }
    }
    let page = s.json(&format!("{base}?$top=1")).await;
    let m = &page["value"][0];
    for field in [
        "receivedDateTime",
        "isRead",
        "isDraft",
        "flag",
        "categories",
        "importance",
        "internetMessageId",
        "subject",
        "parentFolderId",
    ] {
        assert!(m.get(field).is_some(), "{field}");
    }
    assert!(m["receivedDateTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(m["flag"]["flagStatus"], inbox.messages[0].flag_status);
    let bad = s.get(&format!("{base}?$select=nope")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn value_streams_the_exact_mime_bytes() {
    let s = common::start(tenant(1, 60)).await;
    let user = s.sim.tenant().users[0].clone();
    let mut checked = 0;
    for folder in user.folders.iter().filter(|f| !f.messages.is_empty()) {
        for m in folder.messages.iter().take(3) {
            for path in [
                format!("/v1.0/users/{}/messages/{}/$value", user.id, m.id),
                format!(
                    "/v1.0/users/{}/mailFolders/{}/messages/{}/$value",
                    user.id, folder.id, m.id
                ),
            ] {
                let r = s.get(&path).send().await.unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(r.headers()["content-type"], "text/plain");
                assert_eq!(
                    r.headers()["content-length"].to_str().unwrap(),
                    m.mime.len().to_string()
                );
                let bytes = r.bytes().await.unwrap();
                assert_eq!(bytes, m.mime.bytes(), "{path}");
                checked += 1;
            }
        }
    }
    assert!(checked > 10);
    let r = s
        .get(&format!(
            "/v1.0/users/{}/messages/AAkALgNope/$value",
            user.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn without_the_immutable_id_preference_ids_are_rest_ids_that_still_resolve() {
    let s = common::start(tenant(1, 20)).await;
    let user = s.sim.tenant().users[0].clone();
    let page = s
        .json(&format!(
            "/v1.0/users/{}/mailFolders/inbox/messages?$top=1&$select=id",
            user.id
        ))
        .await;
    let rest_id = page["value"][0]["id"].as_str().unwrap().to_string();
    let inbox = user
        .folders
        .iter()
        .find(|f| f.display_name == "Inbox")
        .unwrap();
    assert_ne!(rest_id, inbox.messages[0].id);
    let r = s
        .get(&format!(
            "/v1.0/users/{}/messages/{rest_id}/$value",
            user.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), inbox.messages[0].mime.bytes());
}

#[tokio::test]
async fn request_ids_are_sent_and_the_client_request_id_is_echoed() {
    let s = common::start(SimConfig::demo()).await;
    let r = s
        .get("/v1.0/domains")
        .header("client-request-id", "my-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["client-request-id"], "my-id-1");
    assert_eq!(r.headers()["request-id"].to_str().unwrap().len(), 36);
}

#[tokio::test]
async fn a_missing_permission_is_403() {
    let s = common::start(SimConfig {
        roles: vec!["User.Read.All".into()],
        ..SimConfig::demo()
    })
    .await;
    let user = s.sim.tenant().users[0].id.clone();
    assert_eq!(s.get("/v1.0/users").send().await.unwrap().status(), 200);
    let r = s
        .get(&format!("/v1.0/users/{user}/mailFolders"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ErrorAccessDenied");
    let r = s.get("/v1.0/domains").send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn the_served_tenant_is_the_generated_one() {
    let config = tenant(4, 30);
    let expected = generate_tenant(&config.tenant);
    let sim = SimServer::start(config).await.unwrap();
    assert_eq!(*sim.tenant(), expected);
    assert_eq!(sim.tenant_id(), expected.id);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_demo_tenant_is_a_few_megabytes() {
    let t = generate_tenant(&SimConfig::demo().tenant);
    let sizes: Vec<usize> = t
        .users
        .iter()
        .flat_map(|u| &u.folders)
        .flat_map(|f| &f.messages)
        .map(|m| m.mime.len())
        .collect();
    let total: usize = sizes.iter().sum();
    assert_eq!(t.users.len(), 3);
    assert_eq!(sizes.len(), 300);
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    eprintln!("demo: {total} bytes, median {}", sorted[150]);
    assert!((1_000_000..10_000_000).contains(&total), "{total}");
    let nested = t.users[0]
        .folders
        .iter()
        .filter(|f| {
            f.parent_id.as_ref().is_some_and(|p| {
                t.users[0]
                    .folders
                    .iter()
                    .any(|g| &g.id == p && g.parent_id.is_some())
            })
        })
        .count();
    assert!(nested >= 2, "folders nested three deep");
}

#[tokio::test]
async fn with_repeat_page_item_each_next_page_starts_on_the_previous_pages_last_item() {
    let s = common::start(SimConfig {
        faults: migrator_sim::Faults {
            repeat_page_item: true,
            ..migrator_sim::Faults::default()
        },
        ..tenant(7, 0)
    })
    .await;
    let (items, pages) = s.all("/v1.0/users?$top=3", None).await;
    // 7 users in pages of 3 that each give one back: 3 + 3 + 3 (the last 1 new).
    assert_eq!((items.len(), pages), (9, 3));
    let ids: Vec<&str> = items.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids[2], ids[3], "page 2 starts with page 1's last item");
    assert_eq!(ids[5], ids[6], "page 3 starts with page 2's last item");
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), 7, "every user is still listed");
}
