//! Message delta per folder: a full first round, then exactly the changes
//! (Graph docs concepts/delta-query-messages.md).

use crate::common;

use std::collections::{HashMap, HashSet};

use migrator_sim::{sample_message, SimConfig, TenantSpec};
use serde_json::Value;

const IMMUTABLE: &str = "IdType=\"ImmutableId\", odata.maxpagesize=7";

/// One delta round: every item, and the delta link at its end.
async fn round(s: &common::Session, start: &str) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut link = start.to_string();
    loop {
        let r = s
            .get(&link)
            .header("Prefer", IMMUTABLE)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{link}");
        let body: Value = r.json().await.unwrap();
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        if let Some(next) = body["@odata.nextLink"].as_str() {
            assert!(body.get("@odata.deltaLink").is_none());
            link = next.to_string();
        } else {
            let delta = body["@odata.deltaLink"]
                .as_str()
                .expect("a round ends with a deltaLink");
            assert!(delta.starts_with(&s.sim.url()) && delta.contains("$deltatoken="));
            return (items, delta.to_string());
        }
    }
}

fn ids(items: &[Value]) -> HashSet<String> {
    items
        .iter()
        .filter(|i| i.get("@removed").is_none())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn removed(items: &[Value]) -> HashSet<String> {
    items
        .iter()
        .filter(|i| i["@removed"]["reason"] == "deleted")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_second_round_returns_exactly_the_changes() {
    let s = common::start(SimConfig {
        tenant: TenantSpec {
            users: 1,
            messages_per_user: 120,
            max_attachment: 8 * 1024,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await;
    let user = s.sim.tenant().users[0].clone();
    let inbox = user
        .folders
        .iter()
        .find(|f| f.display_name == "Inbox")
        .unwrap()
        .clone();
    let archive = user
        .folders
        .iter()
        .find(|f| f.display_name == "Archive")
        .unwrap()
        .clone();
    let start = |f: &str| {
        format!(
            "/v1.0/users/{}/mailFolders/{f}/messages/delta?$select=subject,isRead,flag",
            user.id
        )
    };

    let (first, inbox_link) = round(&s, &start("inbox")).await;
    assert_eq!(
        ids(&first),
        inbox.messages.iter().map(|m| m.id.clone()).collect()
    );
    assert_eq!(first.len(), inbox.messages.len(), "each once");
    assert!(
        first[0].get("receivedDateTime").is_none(),
        "$select is kept in the links"
    );
    let (_, archive_link) = round(&s, &start(&archive.id)).await;

    // Nothing changed: an empty round.
    let (nothing, inbox_link) = round(&s, &inbox_link).await;
    assert!(nothing.is_empty());

    let added = sample_message(&user, 1, time::OffsetDateTime::now_utc());
    assert!(s
        .sim
        .add_message(&user.user_principal_name, "inbox", added.clone()));
    let flagged = &inbox.messages[3].id;
    assert!(s.sim.set_flag(&user.id, flagged, "flagged"));
    let read = &inbox.messages[4].id;
    assert!(s.sim.set_read(&user.id, read, !inbox.messages[4].is_read));
    let moved = &inbox.messages[5].id;
    assert!(s.sim.move_message(&user.id, moved, "archive"));
    let deleted = &inbox.messages[6].id;
    assert!(s.sim.delete_message(&user.id, deleted));
    assert!(!s.sim.delete_message(&user.id, deleted), "already gone");

    let (second, inbox_link) = round(&s, &inbox_link).await;
    assert_eq!(
        ids(&second),
        [added.id.clone(), flagged.clone(), read.clone()]
            .into_iter()
            .collect()
    );
    assert_eq!(
        removed(&second),
        [moved.clone(), deleted.clone()].into_iter().collect()
    );
    assert_eq!(second.len(), 5);
    let by_id: HashMap<&str, &Value> = second
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i))
        .collect();
    assert_eq!(by_id[flagged.as_str()]["flag"]["flagStatus"], "flagged");

    let (archive_changes, _) = round(&s, &archive_link).await;
    assert_eq!(
        ids(&archive_changes),
        [moved.clone()].into_iter().collect(),
        "moved in"
    );
    assert!(removed(&archive_changes).is_empty());

    let (third, _) = round(&s, &inbox_link).await;
    assert!(third.is_empty(), "{third:?}");

    // The tenant the tests see is the changed one.
    let now = s.sim.tenant();
    let now_inbox = now.users[0]
        .folders
        .iter()
        .find(|f| f.id == inbox.id)
        .unwrap();
    assert!(now_inbox.messages.iter().any(|m| m.id == added.id));
    assert!(!now_inbox
        .messages
        .iter()
        .any(|m| &m.id == moved || &m.id == deleted));
}

/// The REST id (no ImmutableId preference) of the message with this Message-ID.
async fn rest_id(
    s: &common::Session,
    user: &str,
    folder: &str,
    message_id: &Option<String>,
) -> Option<String> {
    let page = s
        .json(&format!(
            "/v1.0/users/{user}/mailFolders/{folder}/messages?$top=1000&$select=internetMessageId"
        ))
        .await;
    page["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["internetMessageId"] == serde_json::json!(message_id))
        .map(|x| x["id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_moved_message_gets_a_new_rest_id_but_keeps_its_immutable_id() {
    let s = common::start(SimConfig {
        tenant: TenantSpec {
            users: 1,
            messages_per_user: 30,
            max_attachment: 8 * 1024,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await;
    let user = s.sim.tenant().users[0].clone();
    let inbox = user
        .folders
        .iter()
        .find(|f| f.display_name == "Inbox")
        .unwrap();
    let m = inbox
        .messages
        .iter()
        .find(|m| m.internet_message_id.is_some())
        .unwrap()
        .clone();
    let before = rest_id(&s, &user.id, "inbox", &m.internet_message_id)
        .await
        .unwrap();
    assert!(s.sim.move_message(&user.id, &m.id, "archive"));
    let after = rest_id(&s, &user.id, "archive", &m.internet_message_id)
        .await
        .unwrap();
    assert_ne!(before, after);
    let value = |id: String| {
        s.get(&format!("/v1.0/users/{}/messages/{id}/$value", user.id))
            .send()
    };
    assert_eq!(
        value(before).await.unwrap().status(),
        404,
        "the old REST id is gone"
    );
    assert_eq!(value(after).await.unwrap().status(), 200);
    assert_eq!(
        value(m.id.clone()).await.unwrap().status(),
        200,
        "the immutable id survives"
    );
}

#[tokio::test]
async fn an_expired_delta_link_is_410_with_a_location_to_start_over() {
    let s = common::start(SimConfig::demo()).await;
    let user = s.sim.tenant().users[0].id.clone();
    let start = format!("/v1.0/users/{user}/mailFolders/inbox/messages/delta");
    let (_, link) = round(&s, &start).await;
    s.sim.expire_delta_tokens();
    let r = s.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 410);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.ends_with("/messages/delta"), "{location}");
    let (again, _) = round(&s, &location).await;
    assert!(!again.is_empty());
}

#[tokio::test]
async fn folder_delta_lists_the_whole_tree_then_its_changes() {
    let s = common::start(SimConfig::demo()).await;
    let user = s.sim.tenant().users[0].clone();
    let start = format!("/v1.0/users/{}/mailFolders/delta", user.id);
    let (first, link) = round(&s, &start).await;
    assert_eq!(
        ids(&first),
        user.folders.iter().map(|f| f.id.clone()).collect()
    );
    let (nothing, link) = round(&s, &link).await;
    assert!(nothing.is_empty());

    let renamed = user
        .folders
        .iter()
        .find(|f| f.display_name == "v1.2")
        .unwrap()
        .id
        .clone();
    let dropped = user
        .folders
        .iter()
        .find(|f| f.display_name == "100%")
        .unwrap()
        .id
        .clone();
    let inbox = user
        .folders
        .iter()
        .find(|f| f.display_name == "Inbox")
        .unwrap()
        .id
        .clone();
    s.sim.mutate(|t| {
        let u = &mut t.users[0];
        u.folders
            .iter_mut()
            .find(|f| f.id == renamed)
            .unwrap()
            .display_name = "v1.3".into();
        u.folders.retain(|f| f.id != dropped);
    });
    let added = sample_message(&user, 2, time::OffsetDateTime::now_utc());
    assert!(s.sim.add_message(&user.id, &inbox, added));

    let (second, _) = round(&s, &link).await;
    assert_eq!(ids(&second), [renamed.clone(), inbox].into_iter().collect());
    assert_eq!(removed(&second), [dropped].into_iter().collect());
    let by_id: HashMap<&str, &Value> = second
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i))
        .collect();
    assert_eq!(by_id[renamed.as_str()]["displayName"], "v1.3");
}

#[tokio::test]
async fn the_answered_state_is_an_extended_property_listed_by_filter_and_never_in_delta() {
    let s = common::start(SimConfig {
        tenant: TenantSpec {
            users: 1,
            messages_per_user: 30,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await;
    let user = s.sim.tenant().users[0].clone();
    let inbox = user
        .folders
        .iter()
        .find(|f| f.well_known_name.as_deref() == Some("inbox"))
        .unwrap();
    let base = format!("/v1.0/users/{}/mailFolders/{}/messages", user.id, inbox.id);
    let (_, link) = round(&s, &format!("{base}/delta?$select=id,isRead")).await;
    let (replied, forwarded) = (&inbox.messages[0], &inbox.messages[1]);
    assert!(s
        .sim
        .update_message(&user.id, &replied.id, |m| m.last_verb_executed = Some(102)));
    assert!(s
        .sim
        .update_message(&user.id, &forwarded.id, |m| m.last_verb_executed =
            Some(104)));

    // api/singlevaluelegacyextendedproperty-get.md: filter on the numeric value, expand it.
    let verbs = format!(
        "{base}?$select=id&$expand=singleValueExtendedProperties($filter=id eq 'Integer 0x1081')\
         &$filter=singleValueExtendedProperties/any(ep:ep/id eq 'Integer 0x1081' and cast(ep/value, Edm.Int32) ge 102)"
    );
    let (items, _) = s.all(&verbs, Some(IMMUTABLE)).await;
    let mut got: Vec<(String, String)> = items
        .iter()
        .map(|i| {
            let ep = &i["singleValueExtendedProperties"][0];
            assert_eq!(ep["id"], "Integer 0x1081");
            (
                i["id"].as_str().unwrap().to_string(),
                ep["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (replied.id.clone(), "102".to_string()),
        (forwarded.id.clone(), "104".to_string()),
    ];
    want.sort();
    assert_eq!(got, want);

    // The change shows up in delta, but the property does not (graph.md, "Message delta").
    let (changes, _) = round(&s, &link).await;
    assert_eq!(ids(&changes).len(), 2);
    assert!(changes
        .iter()
        .all(|c| c.get("singleValueExtendedProperties").is_none()));

    let other = s
        .get(&format!("{base}?$filter=isRead eq false"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 501, "other filters are not simulated");
}
