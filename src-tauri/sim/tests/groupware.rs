//! Calendars, contacts and To Do as Graph serves them: shapes, paging, series expansion,
//! time zones, beta series properties, photos, deltas after changes, permissions, throttling.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use migrator_sim::calendar::{PatternType, RangeEnd};
use migrator_sim::{
    expand, sample_contact, sample_event, sample_task, GroupwareSpec, MailboxLimits, SimConfig,
    TenantSpec, User, Zone,
};
use serde_json::{json, Value};
use time::macros::{date, datetime};

fn config(users: usize) -> SimConfig {
    SimConfig {
        tenant: TenantSpec {
            users,
            messages_per_user: 5,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    }
}

fn user(s: &common::Session) -> User {
    s.sim.tenant().users[0].clone()
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

async fn get_with(
    s: &common::Session,
    path: &str,
    prefer: &str,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
    let r = s.get(path).header("Prefer", prefer).send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn status(s: &common::Session, path: &str) -> (u16, Value) {
    let r = s.get(path).send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn calendars_list_with_awkward_names_paging_and_select() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    let (items, pages) = s
        .all(&format!("/v1.0/users/{}/calendars?$top=2", u.id), None)
        .await;
    assert_eq!(pages, 2);
    let default_group = &u.calendars[0].group_id;
    assert_eq!(
        ids(&items),
        u.calendars
            .iter()
            .filter(|c| c.group_id == *default_group)
            .map(|c| c.id.clone())
            .collect::<Vec<_>>(),
        "/calendars lists the default calendar group's calendars"
    );
    assert_eq!(items[0]["isDefaultCalendar"], true);
    assert_eq!(items[0]["name"], "Calendar");
    let names: Vec<&str> = items.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for awkward in ["/", ".", "%", "*", "&", "Ü", "日本"] {
        assert!(
            names.iter().any(|n| n.contains(awkward)),
            "{awkward} in {names:?}"
        );
    }
    let one = s
        .json(&format!(
            "/v1.0/users/{}/calendars/{}?$select=name",
            u.id, u.calendars[1].id
        ))
        .await;
    assert_eq!(one["name"], u.calendars[1].name);
    assert!(one.get("color").is_none());
    let (st, body) = status(&s, &format!("/v1.0/users/{}/calendars?$select=nme", u.id)).await;
    assert_eq!(st, 400);
    assert_eq!(body["error"]["code"], "RequestBroker--ParseUri");
    let default = s.json(&format!("/v1.0/users/{}/calendar", u.id)).await;
    assert_eq!(default["id"], u.calendars[0].id);
}

#[tokio::test]
async fn calendar_groups_hold_every_calendar_and_name_who_shared_one() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    let groups = s
        .json(&format!("/v1.0/users/{}/calendarGroups", u.id))
        .await;
    let groups = groups["value"].as_array().unwrap();
    assert!(groups.len() >= 2, "{groups:?}");
    assert_eq!(groups[0]["name"], "My Calendars");
    let mut all = Vec::new();
    for g in groups {
        let id = g["id"].as_str().unwrap();
        let (items, _) = s
            .all(
                &format!("/v1.0/users/{}/calendarGroups/{id}/calendars", u.id),
                None,
            )
            .await;
        assert!(!items.is_empty(), "{g:?}");
        for c in &items {
            assert_eq!(c["owner"]["address"], u.mail.as_str(), "own calendars");
            assert_eq!(c["canShare"], true);
        }
        all.extend(ids(&items));
    }
    assert_eq!(
        all,
        u.calendars.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        "every calendar is in exactly one group"
    );
    let second = u.calendars.last().unwrap();
    assert_ne!(second.group_id, u.calendars[0].group_id);
    assert!(
        !second.events.is_empty(),
        "the second group's calendar has events"
    );
    let (st, _) = status(
        &s,
        &format!("/v1.0/users/{}/calendarGroups/nope/calendars", u.id),
    )
    .await;
    assert_eq!(st, 404);

    s.sim.mutate(|t| {
        let c = &mut t.users[0].calendars[1];
        c.shared_by = Some(("Megan Bowen".into(), "megan@fabrikam.com".into()));
    });
    let shared = s
        .json(&format!(
            "/v1.0/users/{}/calendars/{}",
            u.id, u.calendars[1].id
        ))
        .await;
    assert_eq!(shared["owner"]["address"], "megan@fabrikam.com");
    assert_eq!(
        (&shared["canShare"], &shared["canEdit"]),
        (&json!(false), &json!(false))
    );
}

#[tokio::test]
async fn events_lists_only_single_instances_and_series_masters() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    let cal = &u.calendars[0];
    let (items, pages) = s
        .all(
            &format!("/v1.0/users/{}/calendars/{}/events", u.id, cal.id),
            Some("odata.maxpagesize=5"),
        )
        .await;
    assert_eq!(pages, cal.events.len().div_ceil(5));
    assert_eq!(
        ids(&items),
        cal.events.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    );
    let types: HashSet<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, HashSet::from(["singleInstance", "seriesMaster"]));
    // A master carries its recurrence with every field, Graph-style.
    let standup = items
        .iter()
        .find(|e| e["subject"] == "Daily stand-up")
        .unwrap();
    assert_eq!(standup["recurrence"]["pattern"]["type"], "daily");
    assert_eq!(standup["recurrence"]["range"]["type"], "numbered");
    assert_eq!(standup["recurrence"]["range"]["numberOfOccurrences"], 30);
    assert_eq!(
        standup["recurrence"]["range"]["recurrenceTimeZone"],
        "W. Europe Standard Time"
    );
    let board = items
        .iter()
        .find(|e| e["subject"] == "Board meeting")
        .unwrap();
    assert_eq!(board["recurrence"]["pattern"]["index"], "last");
    assert_eq!(board["recurrence"]["pattern"]["daysOfWeek"][0], "friday");
    let sync = items
        .iter()
        .find(|e| e["subject"] == "Team sync / planning")
        .unwrap();
    assert_eq!(sync["recurrence"]["pattern"]["firstDayOfWeek"], "monday");
    assert_eq!(sync["recurrence"]["pattern"]["interval"], 2);
    assert!(sync["onlineMeeting"]["joinUrl"]
        .as_str()
        .unwrap()
        .starts_with("https://teams.microsoft.com/"));
    assert!(sync["body"]["content"]
        .as_str()
        .unwrap()
        .starts_with("<html>"));
    assert!(!sync["attendees"].as_array().unwrap().is_empty());
    // /users/{id}/events is the default calendar.
    let (default, _) = s
        .all(&format!("/v1.0/users/{}/events?$top=100", u.id), None)
        .await;
    assert_eq!(ids(&default), ids(&items));
    // The catalogue holds every pattern type and range type.
    let kinds: HashSet<&str> = items
        .iter()
        .filter_map(|e| e["recurrence"]["pattern"]["type"].as_str())
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    let zones: HashSet<&str> = items
        .iter()
        .map(|e| e["originalStartTimeZone"].as_str().unwrap())
        .collect();
    assert!(zones.contains("tzone://Microsoft/Custom"));
    assert!(zones.len() >= 4, "{zones:?}");
}

#[tokio::test]
async fn instances_agree_with_expand_and_cancelled_occurrences_are_absent() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    let (from, to) = (
        datetime!(2025-01-01 0:00 UTC),
        datetime!(2026-01-01 0:00 UTC),
    );
    let mut checked = 0;
    for cal in &u.calendars {
        for e in cal.events.iter().filter(|e| e.recurrence.is_some()) {
            let (items, _) = s
                .all(
                    &format!(
                        "/v1.0/users/{}/calendars/{}/events/{}/instances?startDateTime=2025-01-01T00:00:00Z&endDateTime=2026-01-01T00:00:00",
                        u.id, cal.id, e.id
                    ),
                    Some("odata.maxpagesize=50"),
                )
                .await;
            let expected = expand(e, from, to);
            assert_eq!(items.len(), expected.len(), "{}", e.subject);
            for (item, o) in items.iter().zip(&expected) {
                assert_eq!(item["seriesMasterId"], e.id);
                let start = time::PrimitiveDateTime::parse(
                    item["start"]["dateTime"].as_str().unwrap(),
                    time::macros::format_description!(
                        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"
                    ),
                )
                .unwrap()
                .assume_utc();
                assert_eq!(start, o.start, "{}", e.subject);
                match &o.exception_id {
                    Some(x) => {
                        assert_eq!(item["type"], "exception");
                        assert_eq!(item["id"], x.as_str());
                    }
                    None => assert_eq!(item["type"], "occurrence"),
                }
                // An occurrence is addressable by its id.
                let one = s
                    .json(&format!(
                        "/v1.0/users/{}/events/{}",
                        u.id,
                        item["id"].as_str().unwrap()
                    ))
                    .await;
                assert_eq!(one["id"], item["id"]);
            }
            for d in &e.cancelled {
                assert!(expected.iter().all(|o| o.original_date != *d));
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} series");
    // The stand-up: 30 slots, one cancelled; its exception moved an hour with a new subject.
    let standup = u.calendars[0]
        .events
        .iter()
        .find(|e| e.subject == "Daily stand-up")
        .unwrap();
    let (items, _) = s
        .all(
            &format!(
                "/v1.0/users/{}/events/{}/instances?startDateTime=2025-03-01T00:00:00Z&endDateTime=2025-06-01T00:00:00Z&$top=100",
                u.id, standup.id
            ),
            None,
        )
        .await;
    assert_eq!(items.len(), 29);
    let moved = items.iter().find(|i| i["type"] == "exception").unwrap();
    assert_eq!(moved["subject"], "Daily stand-up (moved)");
    assert_eq!(moved["start"]["dateTime"], "2025-03-26T09:00:00.0000000");
    assert_eq!(moved["originalStart"], "2025-03-26T08:00:00Z");
    assert!(items.iter().all(|i| !i["start"]["dateTime"]
        .as_str()
        .unwrap()
        .starts_with("2025-03-27")));
    let (st, _) = status(
        &s,
        &format!("/v1.0/users/{}/events/{}/instances", u.id, standup.id),
    )
    .await;
    assert_eq!(st, 400, "instances needs a window");
}

#[tokio::test]
async fn calendar_view_expands_every_event_of_the_calendar_in_the_window() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    let (from, to) = (
        datetime!(2025-03-01 0:00 UTC),
        datetime!(2025-05-01 0:00 UTC),
    );
    for cal in &u.calendars {
        let (items, _) = s
            .all(
                &format!(
                    "/v1.0/users/{}/calendars/{}/calendarView?startDateTime=2025-03-01T00:00:00Z&endDateTime=2025-05-01T00:00:00Z",
                    u.id, cal.id
                ),
                Some("odata.maxpagesize=7"),
            )
            .await;
        let expected: usize = cal.events.iter().map(|e| expand(e, from, to).len()).sum();
        assert_eq!(items.len(), expected, "{}", cal.name);
        let unique: HashSet<String> = ids(&items).into_iter().collect();
        assert_eq!(unique.len(), items.len(), "no duplicates across pages");
        assert!(items.iter().all(|i| i["type"] != "seriesMaster"));
    }
    let (view, _) = s
        .all(
            &format!(
                "/v1.0/users/{}/calendarView?startDateTime=2025-03-01T02:00:00%2B02:00&endDateTime=2025-05-01T00:00:00Z&$top=500",
                u.id
            ),
            None,
        )
        .await;
    let types: HashSet<&str> = view.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(
        types.contains("occurrence") && types.contains("exception"),
        "{types:?}"
    );
    // Sorted by start (UTC strings sort as instants).
    let starts: Vec<&str> = view
        .iter()
        .map(|e| e["start"]["dateTime"].as_str().unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted);
    let (st, body) = status(&s, &format!("/v1.0/users/{}/calendarView", u.id)).await;
    assert_eq!(st, 400);
    assert_eq!(body["error"]["code"], "ErrorInvalidParameter");
}

#[tokio::test]
async fn times_are_utc_by_default_and_follow_prefer_outlook_timezone() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    let standup = u.calendars[0]
        .events
        .iter()
        .find(|e| e.subject == "Daily stand-up")
        .unwrap();
    let path = format!(
        "/v1.0/users/{}/events/{}/instances?startDateTime=2025-03-28T00:00:00Z&endDateTime=2025-04-01T00:00:00Z",
        u.id, standup.id
    );
    let body = s.json(&path).await;
    let starts: Vec<(&str, &str)> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["start"]["dateTime"].as_str().unwrap(),
                e["start"]["timeZone"].as_str().unwrap(),
            )
        })
        .collect();
    // 09:00 Berlin is 08:00Z before 2025-03-30 and 07:00Z after.
    assert_eq!(
        starts,
        [
            ("2025-03-28T08:00:00.0000000", "UTC"),
            ("2025-03-29T08:00:00.0000000", "UTC"),
            ("2025-03-30T07:00:00.0000000", "UTC"),
            ("2025-03-31T07:00:00.0000000", "UTC"),
        ]
    );
    assert_eq!(
        body["value"][0]["originalStartTimeZone"],
        "W. Europe Standard Time"
    );
    let (st, headers, body) =
        get_with(&s, &path, "outlook.timezone=\"W. Europe Standard Time\"").await;
    assert_eq!(st, 200);
    assert_eq!(
        headers["preference-applied"],
        "outlook.timezone=\"W. Europe Standard Time\""
    );
    for e in body["value"].as_array().unwrap() {
        assert!(e["start"]["dateTime"]
            .as_str()
            .unwrap()
            .ends_with("T09:00:00.0000000"));
        assert!(e["end"]["dateTime"]
            .as_str()
            .unwrap()
            .ends_with("T09:15:00.0000000"));
        assert_eq!(e["start"]["timeZone"], "W. Europe Standard Time");
    }
    let (_, _, body) = get_with(&s, &path, "outlook.timezone=\"America/New_York\"").await;
    // 2025-03-31 07:00Z is 03:00 EDT.
    assert_eq!(
        body["value"][3]["start"]["dateTime"],
        "2025-03-31T03:00:00.0000000"
    );
    assert_eq!(body["value"][3]["start"]["timeZone"], "America/New_York");
    // A zone Graph does not know is not applied.
    let (_, headers, body) = get_with(&s, &path, "outlook.timezone=\"Mars/Olympus_Mons\"").await;
    assert_eq!(body["value"][0]["start"]["timeZone"], "UTC");
    assert!(!headers.contains_key("preference-applied"));
    // All-day events keep their midnights in any zone.
    let leap = u.calendars[0]
        .events
        .iter()
        .find(|e| e.is_all_day && e.recurrence.is_some())
        .unwrap();
    let (_, _, body) = get_with(
        &s,
        &format!("/v1.0/users/{}/events/{}", u.id, leap.id),
        "outlook.timezone=\"Tokyo Standard Time\"",
    )
    .await;
    assert_eq!(body["isAllDay"], true);
    assert!(body["start"]["dateTime"]
        .as_str()
        .unwrap()
        .ends_with("T00:00:00.0000000"));
    // The custom zone is named as Graph names it.
    let custom = u.calendars[0]
        .events
        .iter()
        .find(|e| matches!(e.zone, Zone::Custom { .. }))
        .unwrap();
    let body = s
        .json(&format!("/v1.0/users/{}/events/{}", u.id, custom.id))
        .await;
    assert_eq!(body["originalStartTimeZone"], "tzone://Microsoft/Custom");
    assert_eq!(
        body["start"]["dateTime"], "2025-03-01T02:45:00.0000000",
        "08:30 at UTC+05:45"
    );
}

#[tokio::test]
async fn beta_shows_cancelled_and_exception_occurrences_and_one_uid_per_series() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    let standup = u.calendars[0]
        .events
        .iter()
        .find(|e| e.subject == "Daily stand-up")
        .unwrap();
    let body = s
        .json(&format!(
            "/beta/users/{}/events/{}?$select=subject,type,cancelledOccurrences,exceptionOccurrences&$expand=exceptionOccurrences",
            u.id, standup.id
        ))
        .await;
    assert_eq!(body["type"], "seriesMaster");
    assert_eq!(
        body["cancelledOccurrences"],
        serde_json::json!([format!("OID.{}.2025-03-27", standup.id)])
    );
    let exceptions = body["exceptionOccurrences"].as_array().unwrap();
    assert_eq!(exceptions.len(), 1);
    assert_eq!(exceptions[0]["type"], "exception");
    assert_eq!(exceptions[0]["id"], standup.exceptions[0].id);
    assert_eq!(
        exceptions[0]["occurrenceId"],
        format!("OID.{}.2025-03-26", standup.id)
    );
    assert!(body.get("start").is_none(), "$select honoured");
    // Without $select the beta-only series properties are not returned.
    let plain = s
        .json(&format!("/beta/users/{}/events/{}", u.id, standup.id))
        .await;
    assert!(plain.get("cancelledOccurrences").is_none());
    // uid: one for the series; v1.0 iCalUId: one per occurrence.
    let window = "startDateTime=2025-03-24T00:00:00Z&endDateTime=2025-04-01T00:00:00Z";
    let beta = s
        .json(&format!(
            "/beta/users/{}/events/{}/instances?{window}",
            u.id, standup.id
        ))
        .await;
    let uids: HashSet<&str> = beta["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, HashSet::from([plain["uid"].as_str().unwrap()]));
    let v1 = s
        .json(&format!(
            "/v1.0/users/{}/events/{}/instances?{window}",
            u.id, standup.id
        ))
        .await;
    let icals: HashSet<&str> = v1["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["iCalUId"].as_str().unwrap())
        .collect();
    assert_eq!(icals.len(), v1["value"].as_array().unwrap().len());
    assert!(v1["value"][0].get("uid").is_none());
    let (st, _) = status(
        &s,
        &format!("/v1.0/users/{}/events/{}?$select=uid", u.id, standup.id),
    )
    .await;
    assert_eq!(st, 400, "uid is beta-only");
    let (st, _) = status(
        &s,
        &format!(
            "/v1.0/users/{}/events/{}?$expand=exceptionOccurrences",
            u.id, standup.id
        ),
    )
    .await;
    assert_eq!(st, 400, "exceptionOccurrences is beta-only");
}

#[tokio::test]
async fn event_attachments_list_and_value_give_the_bytes() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    let (cal, e) = u
        .calendars
        .iter()
        .find_map(|c| {
            c.events
                .iter()
                .find(|e| !e.attachments.is_empty())
                .map(|e| (c, e))
        })
        .expect("some event has an attachment");
    let a = &e.attachments[0];
    let event = s
        .json(&format!(
            "/v1.0/users/{}/calendars/{}/events/{}",
            u.id, cal.id, e.id
        ))
        .await;
    assert_eq!(event["hasAttachments"], true);
    let list = s
        .json(&format!("/v1.0/users/{}/events/{}/attachments", u.id, e.id))
        .await;
    assert_eq!(
        list["value"][0]["@odata.type"],
        "#microsoft.graph.fileAttachment"
    );
    assert_eq!(list["value"][0]["name"], a.name);
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(list["value"][0]["contentBytes"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, a.bytes);
    let r = s
        .get(&format!(
            "/v1.0/users/{}/events/{}/attachments/{}/$value",
            u.id, e.id, a.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.bytes().await.unwrap().to_vec(), a.bytes);
}

#[tokio::test]
async fn contacts_folders_fields_and_photos() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    let default = &u.contact_folders[0];
    let (items, pages) = s
        .all(
            &format!("/v1.0/users/{}/contacts", u.id),
            Some("odata.maxpagesize=4"),
        )
        .await;
    assert_eq!(pages, default.contacts.len().div_ceil(4));
    assert_eq!(
        ids(&items),
        default
            .contacts
            .iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>()
    );
    for field in [
        "givenName",
        "middleName",
        "surname",
        "displayName",
        "nickName",
        "initials",
        "title",
        "generation",
        "fileAs",
        "yomiGivenName",
        "emailAddresses",
        "imAddresses",
        "businessPhones",
        "homePhones",
        "mobilePhone",
        "businessAddress",
        "homeAddress",
        "otherAddress",
        "birthday",
        "companyName",
        "department",
        "jobTitle",
        "officeLocation",
        "manager",
        "assistantName",
        "spouseName",
        "children",
        "profession",
        "businessHomePage",
        "categories",
        "personalNotes",
        "parentFolderId",
        "changeKey",
    ] {
        assert!(items[0].get(field).is_some(), "{field}");
    }
    assert_eq!(items[0]["parentFolderId"], default.id);
    // /contactFolders: the children of the default folder; nested ones under childFolders.
    let (top, _) = s
        .all(&format!("/v1.0/users/{}/contactFolders", u.id), None)
        .await;
    let expected: Vec<String> = u
        .contact_folders
        .iter()
        .filter(|f| f.parent_id.as_deref() == Some(default.id.as_str()))
        .map(|f| f.id.clone())
        .collect();
    assert_eq!(ids(&top), expected);
    let mut seen = 1 + top.len();
    let mut queue: Vec<String> = ids(&top);
    while let Some(f) = queue.pop() {
        let (children, _) = s
            .all(
                &format!("/v1.0/users/{}/contactFolders/{f}/childFolders", u.id),
                None,
            )
            .await;
        seen += children.len();
        let (contacts, _) = s
            .all(
                &format!("/v1.0/users/{}/contactFolders/{f}/contacts", u.id),
                None,
            )
            .await;
        let folder = u.contact_folders.iter().find(|x| x.id == f).unwrap();
        assert_eq!(contacts.len(), folder.contacts.len());
        queue.extend(ids(&children));
    }
    assert_eq!(
        seen,
        u.contact_folders.len(),
        "the tree reaches every folder"
    );
    assert!(u.contact_folders.iter().any(
        |f| f.display_name.contains('/') && f.parent_id.as_deref() != Some(default.id.as_str())
    ));
    // Photos: bytes and type as stored; 404 ImageNotFound without one.
    let mut jpeg = false;
    let mut png = false;
    let mut missing = false;
    for f in &u.contact_folders {
        for c in &f.contacts {
            let paths = [
                format!("/v1.0/users/{}/contacts/{}/photo/$value", u.id, c.id),
                format!(
                    "/v1.0/users/{}/contactFolders/{}/contacts/{}/photo/$value",
                    u.id, f.id, c.id
                ),
            ];
            for path in paths {
                let r = s.get(&path).send().await.unwrap();
                match &c.photo {
                    Some(p) => {
                        assert_eq!(r.status(), 200);
                        assert_eq!(r.headers()["content-type"], p.content_type.as_str());
                        let bytes = r.bytes().await.unwrap().to_vec();
                        assert_eq!(bytes, p.bytes);
                        jpeg |= bytes.starts_with(&[0xFF, 0xD8]);
                        png |= bytes.starts_with(b"\x89PNG");
                    }
                    None => {
                        assert_eq!(r.status(), 404);
                        let body: Value = r.json().await.unwrap();
                        assert_eq!(body["error"]["code"], "ImageNotFound");
                        missing = true;
                    }
                }
            }
        }
    }
    assert!(jpeg && png && missing);
}

#[tokio::test]
async fn todo_lists_include_flagged_emails_and_tasks_of_every_status() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    let (lists, _) = s
        .all(&format!("/v1.0/users/{}/todo/lists", u.id), None)
        .await;
    let kinds: HashSet<&str> = lists
        .iter()
        .map(|l| l["wellknownListName"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        HashSet::from(["defaultList", "flaggedEmails", "none"])
    );
    let default = &u.todo_lists[0];
    let (tasks, pages) = s
        .all(
            &format!(
                "/v1.0/users/{}/todo/lists/{}/tasks?$expand=checklistItems",
                u.id, default.id
            ),
            Some("odata.maxpagesize=3"),
        )
        .await;
    assert_eq!(pages, default.tasks.len().div_ceil(3));
    assert_eq!(tasks.len(), default.tasks.len());
    let statuses: HashSet<&str> = tasks
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 5, "{statuses:?}");
    let importance: HashSet<&str> = tasks
        .iter()
        .map(|t| t["importance"].as_str().unwrap())
        .collect();
    assert_eq!(importance.len(), 3);
    assert!(tasks
        .iter()
        .any(|t| t["recurrence"]["pattern"]["type"].is_string()));
    assert!(tasks.iter().any(|t| t["dueDateTime"]["timeZone"] == "UTC"));
    assert!(tasks
        .iter()
        .any(|t| t["isReminderOn"] == true && t["reminderDateTime"].is_object()));
    assert!(tasks.iter().any(|t| t["checklistItems"]
        .as_array()
        .is_some_and(|c| !c.is_empty())));
    assert!(tasks
        .iter()
        .all(|t| t["completedDateTime"].is_object() == (t["status"] == "completed")));
    let flagged = u
        .todo_lists
        .iter()
        .find(|l| l.wellknown_list_name == "flaggedEmails")
        .unwrap();
    let (tasks, _) = s
        .all(
            &format!(
                "/v1.0/users/{}/todo/lists/{}/tasks?$expand=linkedResources",
                u.id, flagged.id
            ),
            None,
        )
        .await;
    assert!(!tasks.is_empty());
    assert_eq!(tasks[0]["linkedResources"][0]["applicationName"], "Outlook");
    let (st, _) = status(
        &s,
        &format!(
            "/v1.0/users/{}/todo/lists/{}/tasks?$select=nope",
            u.id, default.id
        ),
    )
    .await;
    assert_eq!(st, 400);
}

/// One delta round from `start` to its deltaLink.
async fn round(s: &common::Session, start: &str) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut next = start.to_string();
    loop {
        let body = s.json(&next).await;
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        if let Some(n) = body["@odata.nextLink"].as_str() {
            next = n.to_string();
        } else {
            return (
                items,
                body["@odata.deltaLink"].as_str().unwrap().to_string(),
            );
        }
    }
}

fn changes(items: &[Value]) -> (HashSet<String>, HashSet<String>) {
    let mut changed = HashSet::new();
    let mut removed = HashSet::new();
    for i in items {
        let id = i["id"].as_str().unwrap().to_string();
        if i.get("@removed").is_some() {
            removed.insert(id);
        } else {
            changed.insert(id);
        }
    }
    (changed, removed)
}

#[tokio::test]
async fn a_second_delta_round_returns_exactly_the_groupware_changes() {
    let s = common::start(config(2)).await;
    let u = user(&s);
    let other = s.sim.tenant().users[1].clone();
    let cal = &u.calendars[0];
    let folder = &u.contact_folders[0];
    let nested = &u.contact_folders[2];
    let list = &u.todo_lists[0];
    let paths = [
        format!(
            "/beta/users/{}/calendars/{}/events/delta?$top=4",
            u.id, cal.id
        ),
        format!("/v1.0/users/{}/contacts/delta", u.id),
        format!(
            "/v1.0/users/{}/contactFolders/{}/contacts/delta",
            u.id, nested.id
        ),
        format!("/v1.0/users/{}/todo/lists/{}/tasks/delta", u.id, list.id),
        format!("/v1.0/users/{}/todo/lists/delta", u.id),
    ];
    let mut links = Vec::new();
    let mut initial = Vec::new();
    for p in &paths {
        let (items, link) = round(&s, p).await;
        initial.push(items);
        links.push(link);
    }
    assert_eq!(initial[0].len(), cal.events.len());
    assert_eq!(initial[1].len(), folder.contacts.len());
    assert_eq!(initial[2].len(), nested.contacts.len());
    assert_eq!(initial[3].len(), list.tasks.len());
    assert_eq!(initial[4].len(), u.todo_lists.len());
    // Nothing changed: empty rounds.
    for link in &links {
        let (items, _) = round(&s, link).await;
        assert!(items.is_empty(), "{link}");
    }
    // Changes: events (add, occurrence edit, cancellation, delete), contacts, tasks; and one
    // change in another mailbox, which must not show.
    let standup = cal
        .events
        .iter()
        .find(|e| e.subject == "Daily stand-up")
        .unwrap();
    let sync = cal
        .events
        .iter()
        .find(|e| e.subject == "Team sync / planning")
        .unwrap();
    let gone = cal.events.iter().find(|e| e.recurrence.is_none()).unwrap();
    let new_event = sample_event(
        1,
        "Added later",
        Zone::windows("UTC"),
        datetime!(2025-04-02 10:00),
    );
    assert!(s.sim.add_event(&u.id, None, new_event.clone()));
    let exception = s
        .sim
        .edit_occurrence(
            &u.id,
            &standup.id,
            date!(2025 - 04 - 01),
            datetime!(2025-04-01 11:00),
            datetime!(2025-04-01 11:30),
            "Stand-up at eleven",
        )
        .expect("a live occurrence");
    assert!(s
        .sim
        .cancel_occurrence(&u.id, &sync.id, date!(2025 - 03 - 04)));
    assert!(
        !s.sim
            .cancel_occurrence(&u.id, &sync.id, date!(2025 - 03 - 05)),
        "not a pattern date"
    );
    assert!(s.sim.delete_event(&u.id, &gone.id));
    let new_contact = sample_contact(99);
    assert!(s.sim.add_contact(&u.id, None, new_contact.clone()));
    assert!(s
        .sim
        .update_contact(&u.id, &nested.contacts[0].id, |c| c.job_title =
            "CTO".into()));
    assert!(s.sim.delete_contact(&u.id, &folder.contacts[0].id));
    let new_task = sample_task(5);
    assert!(s.sim.add_task(&u.id, &list.id, new_task.clone()));
    let open = list.tasks.iter().find(|t| t.status != "completed").unwrap();
    assert!(s.sim.complete_task(&u.id, &open.id));
    let dropped = list.tasks.iter().find(|t| t.id != open.id).unwrap();
    assert!(s.sim.delete_task(&u.id, &dropped.id));
    assert!(s
        .sim
        .add_task(&other.id, &other.todo_lists[0].id, sample_task(6)));
    let expected: [(HashSet<String>, HashSet<String>); 5] = [
        (
            HashSet::from([new_event.id.clone(), standup.id.clone(), sync.id.clone()]),
            HashSet::from([gone.id.clone()]),
        ),
        (
            HashSet::from([new_contact.id.clone()]),
            HashSet::from([folder.contacts[0].id.clone()]),
        ),
        (
            HashSet::from([nested.contacts[0].id.clone()]),
            HashSet::new(),
        ),
        (
            HashSet::from([new_task.id.clone(), open.id.clone()]),
            HashSet::from([dropped.id.clone()]),
        ),
        (HashSet::new(), HashSet::new()),
    ];
    let mut next_links = Vec::new();
    for (i, link) in links.iter().enumerate() {
        let (items, next) = round(&s, link).await;
        assert_eq!(changes(&items), expected[i], "{}", paths[i]);
        next_links.push(next);
    }
    // The changes are in the listings too.
    let view = s
        .json(&format!(
            "/v1.0/users/{}/events/{}/instances?startDateTime=2025-03-01T00:00:00Z&endDateTime=2025-04-10T00:00:00Z&$top=100",
            u.id, standup.id
        ))
        .await;
    let moved = view["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == exception.as_str())
        .unwrap();
    assert_eq!(moved["subject"], "Stand-up at eleven");
    assert_eq!(moved["start"]["dateTime"], "2025-04-01T09:00:00.0000000");
    let task = s
        .json(&format!(
            "/v1.0/users/{}/todo/lists/{}/tasks/{}",
            u.id, list.id, open.id
        ))
        .await;
    assert_eq!(task["status"], "completed");
    assert!(task["completedDateTime"].is_object());
    let (st, _) = status(&s, &format!("/v1.0/users/{}/events/{}", u.id, gone.id)).await;
    assert_eq!(st, 404);
    // And the round after is empty again.
    for link in &next_links {
        let (items, _) = round(&s, link).await;
        assert!(items.is_empty(), "{link}");
    }
    // An expired link is 410 with a Location to start over; v1.0 has no calendar events delta.
    s.sim.expire_delta_tokens();
    let r = s.get(&next_links[1]).send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert!(r.headers().contains_key("location"));
    let (st, _) = status(
        &s,
        &format!("/v1.0/users/{}/calendars/{}/events/delta", u.id, cal.id),
    )
    .await;
    assert_eq!(st, 400);
}

/// One delta round from `start`, one item per page (every page after the first comes from a
/// nextLink).
async fn round_by_one(s: &common::Session, start: &str) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut next = start.to_string();
    loop {
        let (status, _, body) = get_with(s, &next, "odata.maxpagesize=1").await;
        assert_eq!(status, 200, "{next}: {body}");
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        match body["@odata.nextLink"].as_str() {
            Some(n) => next = n.to_string(),
            None => {
                return (
                    items,
                    body["@odata.deltaLink"].as_str().unwrap().to_string(),
                )
            }
        }
    }
}

#[tokio::test]
async fn events_delta_entries_carry_ids_only_and_tasks_delta_keeps_its_expand() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    // Beta api/event-delta.md, "Response": only id, type, start and end.
    let cal = &u.calendars[0];
    let path = format!("/beta/users/{}/calendars/{}/events/delta", u.id, cal.id);
    let (items, _) = round_by_one(&s, &path).await;
    assert_eq!(items.len(), cal.events.len());
    for item in &items {
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|k| !k.starts_with('@'))
            .collect();
        keys.sort();
        assert_eq!(keys, ["end", "id", "start", "type"], "{item}");
    }
    assert!(items.iter().any(|i| i["type"] == "seriesMaster"));

    // api/todotask-delta.md: parameters of the first request are kept by the links.
    let list = u
        .todo_lists
        .iter()
        .find(|l| l.tasks.len() > 1 && l.tasks.iter().any(|t| !t.checklist.is_empty()))
        .expect("a list with checklists");
    let path = format!(
        "/v1.0/users/{}/todo/lists/{}/tasks/delta?$expand=checklistItems",
        u.id, list.id
    );
    let (items, link) = round_by_one(&s, &path).await;
    assert_eq!(items.len(), list.tasks.len());
    for task in &list.tasks {
        let item = items.iter().find(|i| i["id"] == task.id.as_str()).unwrap();
        let checklist = item["checklistItems"].as_array().expect("expanded");
        assert_eq!(checklist.len(), task.checklist.len());
    }
    let with_checklist = list.tasks.iter().find(|t| !t.checklist.is_empty()).unwrap();
    assert!(s.sim.complete_task(&u.id, &with_checklist.id));
    let (items, _) = round_by_one(&s, &link).await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["checklistItems"].as_array().map(Vec::len),
        Some(with_checklist.checklist.len())
    );
}

#[tokio::test]
async fn each_workload_needs_its_permission() {
    for (missing, forbidden) in [
        ("Calendars.Read", "calendars"),
        ("Contacts.Read", "contactFolders"),
        ("Tasks.Read.All", "todo/lists"),
    ] {
        let s = common::start(SimConfig {
            roles: migrator_sim::ROLES
                .iter()
                .filter(|r| **r != missing)
                .map(|r| r.to_string())
                .collect(),
            ..config(1)
        })
        .await;
        let u = user(&s);
        for path in [
            "calendars",
            "contactFolders",
            "contacts",
            "todo/lists",
            "calendarView?startDateTime=2025-01-01&endDateTime=2025-02-01",
        ] {
            let (st, body) = status(&s, &format!("/v1.0/users/{}/{path}", u.id)).await;
            let denied = path.starts_with(forbidden)
                || (missing == "Contacts.Read" && path == "contacts")
                || (missing == "Calendars.Read" && path.starts_with("calendarView"));
            if denied {
                assert_eq!(st, 403, "{path} without {missing}");
                assert_eq!(body["error"]["code"], "ErrorAccessDenied");
            } else {
                assert_eq!(st, 200, "{path} without {missing}");
            }
        }
        s.sim.shutdown().await;
    }
}

#[tokio::test]
async fn groupware_requests_share_the_mailbox_budget_with_mail() {
    let s = common::start(SimConfig {
        limits: Some(MailboxLimits {
            max_in_flight: 4,
            budget: 6,
            window: Duration::from_secs(60),
        }),
        ..config(2)
    })
    .await;
    let t = s.sim.tenant();
    let (a, b) = (&t.users[0], &t.users[1]);
    let paths = [
        format!("/v1.0/users/{}/mailFolders", a.id),
        format!("/v1.0/users/{}/calendars", a.id),
        format!("/v1.0/users/{}/contacts", a.id),
        format!("/v1.0/users/{}/todo/lists", a.id),
        format!("/v1.0/users/{}/messages", a.id),
        format!(
            "/v1.0/users/{}/calendar/calendarView?startDateTime=2025-01-01&endDateTime=2025-02-01",
            a.id
        ),
    ];
    for p in &paths {
        assert_eq!(status(&s, p).await.0, 200, "{p}");
    }
    let r = s
        .get(&format!("/v1.0/users/{}/contactFolders", a.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        status(&s, &format!("/v1.0/users/{}/todo/lists", b.id))
            .await
            .0,
        200,
        "other mailboxes are not affected"
    );
    let log = s.sim.requests();
    let counted: HashMap<String, usize> =
        log.iter()
            .filter_map(|r| r.mailbox.clone())
            .fold(HashMap::new(), |mut m, k| {
                *m.entry(k).or_default() += 1;
                m
            });
    assert_eq!(
        counted[&a.id], 7,
        "every request is logged against its mailbox"
    );
}

#[tokio::test]
async fn groupware_can_be_switched_off_without_changing_mail() {
    let on = migrator_sim::generate_tenant(&TenantSpec::default());
    let off = migrator_sim::generate_tenant(&TenantSpec {
        groupware: GroupwareSpec::none(),
        ..TenantSpec::default()
    });
    for (a, b) in on.users.iter().zip(&off.users) {
        assert_eq!(a.folders, b.folders, "mail is the same");
        assert_eq!(a.id, b.id);
        assert_eq!(b.calendars.len(), 1);
        assert!(b.calendars[0].events.is_empty());
        assert!(b.contact_folders.is_empty() && b.todo_lists.is_empty());
    }
    let series = on.users[0].calendars[0]
        .events
        .iter()
        .filter_map(|e| e.recurrence.as_ref())
        .collect::<Vec<_>>();
    assert!(series
        .iter()
        .any(|r| r.pattern.kind == PatternType::RelativeYearly));
    assert!(series.iter().any(|r| r.range.end == RangeEnd::NoEnd));
    let s = common::start(SimConfig {
        tenant: TenantSpec {
            users: 1,
            groupware: GroupwareSpec::none(),
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await;
    let u = user(&s);
    let body = s
        .json(&format!("/v1.0/users/{}/contactFolders", u.id))
        .await;
    assert_eq!(body["value"], serde_json::json!([]));
    let body = s.json(&format!("/v1.0/users/{}/todo/lists", u.id)).await;
    assert_eq!(body["value"], serde_json::json!([]));
}

#[tokio::test]
async fn calendar_view_delta_keeps_its_window_and_reports_occurrences_that_left_it() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    let cal = &u.calendars[0];
    let (from, to) = (
        datetime!(2025-03-20 0:00 UTC),
        datetime!(2025-04-10 0:00 UTC),
    );
    let start = format!(
        "/v1.0/users/{}/calendarView/delta?startDateTime=2025-03-20T00:00:00Z&endDateTime=2025-04-10T00:00:00Z",
        u.id
    );
    let (items, link) = round(&s, &start).await;
    let expected: usize = cal.events.iter().map(|e| expand(e, from, to).len()).sum();
    assert_eq!(items.len(), expected);
    assert!(
        !link.contains("startDateTime"),
        "the window lives in the token"
    );
    let standup = cal
        .events
        .iter()
        .find(|e| e.subject == "Daily stand-up")
        .unwrap();
    let body = s
        .json(&format!(
            "/v1.0/users/{}/events/{}/instances?startDateTime=2025-04-02T00:00:00Z&endDateTime=2025-04-04T00:00:00Z",
            u.id, standup.id
        ))
        .await;
    let (cancelled_id, edited_id) = (
        body["value"][0]["id"].as_str().unwrap().to_string(),
        body["value"][1]["id"].as_str().unwrap().to_string(),
    );
    assert!(s
        .sim
        .cancel_occurrence(&u.id, &standup.id, date!(2025 - 04 - 02)));
    let exception = s
        .sim
        .edit_occurrence(
            &u.id,
            &standup.id,
            date!(2025 - 04 - 03),
            datetime!(2025-04-03 15:00),
            datetime!(2025-04-03 15:15),
            "Late stand-up",
        )
        .unwrap();
    // An event outside the window changes nothing in this delta.
    let later = sample_event(
        7,
        "Far away",
        Zone::windows("UTC"),
        datetime!(2025-09-01 10:00),
    );
    assert!(s.sim.add_event(&u.id, None, later));
    let (items, _) = round(&s, &link).await;
    let (changed, removed) = changes(&items);
    assert!(
        removed.contains(&cancelled_id) && removed.contains(&edited_id),
        "{removed:?}"
    );
    assert_eq!(removed.len(), 2);
    assert!(changed.contains(&exception));
    // Every changed item is one of the stand-up's, in the window.
    let now = s.sim.tenant().users[0].calendars[0]
        .events
        .iter()
        .find(|e| e.id == standup.id)
        .unwrap()
        .clone();
    assert_eq!(changed.len(), expand(&now, from, to).len());
    assert!(items
        .iter()
        .filter(|i| i.get("@removed").is_none())
        .all(|i| i["seriesMasterId"] == standup.id));
}

#[tokio::test]
async fn events_filtered_by_last_modified_list_only_what_changed_since() {
    let s = common::start(config(1)).await;
    let u = user(&s);
    let cal = &u.calendars[2];
    let path = |f: &str| {
        format!(
            "/v1.0/users/{}/calendars/{}/events?$filter={f}&$top=100",
            u.id, cal.id
        )
    };
    let newest = cal.events.iter().map(|e| e.last_modified).max().unwrap() + Duration::from_secs(1);
    let newest = newest
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let since = format!("lastModifiedDateTime%20ge%20{newest}");
    let since = since.as_str();
    let body = s.json(&path(since)).await;
    assert_eq!(
        body["value"],
        serde_json::json!([]),
        "generated events are older"
    );
    assert!(s
        .sim
        .update_event(&u.id, &cal.events[0].id, |e| e.subject = "Renamed".into()));
    let body = s.json(&path(since)).await;
    assert_eq!(
        ids(body["value"].as_array().unwrap()),
        [cal.events[0].id.clone()]
    );
    assert_eq!(body["value"][0]["subject"], "Renamed");
    let (st, _) = status(&s, &path("subject%20eq%20'x'")).await;
    assert_eq!(st, 501);
}
