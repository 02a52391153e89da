//! The CalDAV + CardDAV destination against a real Radicale (see `support/radicale.rs`).

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use migrator_core::dest::dav::collections::same_path;
use migrator_core::dest::dav::{
    Collection, CollectionKind, CollectionTemplates, DavAccount, DavError, DavLogin, DavSettings,
    ItemRef, PutOutcome,
};
use migrator_core::dest::DestRef;
use migrator_core::error::{Classify, ErrorClass};
use migrator_core::secrets::Secret;
use support::radicale::{Options, Radicale};
use url::Url;

const ALICE: &str = "alice@example.com";

async fn connect(settings: &DavSettings, user: &str) -> DavAccount {
    DavAccount::connect(settings, user, Radicale::login(user))
        .await
        .unwrap_or_else(|e| panic!("connect: {e:?}"))
}

/// A recurring meeting in a named time zone with an exception date, a moved occurrence
/// (RECURRENCE-ID override), attendees, an alarm and text that needs escaping and folding.
fn recurring_event(uid: &str, summary: &str) -> String {
    [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//M365 Migrator//test//EN",
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Berlin",
        "BEGIN:STANDARD",
        "DTSTART:19701025T030000",
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "TZNAME:CET",
        "END:STANDARD",
        "BEGIN:DAYLIGHT",
        "DTSTART:19700329T020000",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "TZNAME:CEST",
        "END:DAYLIGHT",
        "END:VTIMEZONE",
        "BEGIN:VEVENT",
        &format!("UID:{uid}"),
        "DTSTAMP:20240101T120000Z",
        "DTSTART;TZID=Europe/Berlin:20240108T090000",
        "DTEND;TZID=Europe/Berlin:20240108T093000",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20240331T225959Z",
        "EXDATE;TZID=Europe/Berlin:20240117T090000",
        &format!("SUMMARY:{summary}"),
        "DESCRIPTION:Line one\\nLine two\\, with a comma\\; and enough text to need fol",
        " ding at seventy-five octets – Größe ✓",
        "ORGANIZER;CN=\"Jörg, Team\";SCHEDULE-AGENT=CLIENT:mailto:joerg@example.com",
        "ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT;SCHEDULE-AGENT=CLIENT:mailto:b",
        " ob@example.com",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "TRIGGER:-PT15M",
        "DESCRIPTION:Reminder",
        "END:VALARM",
        "END:VEVENT",
        "BEGIN:VEVENT",
        &format!("UID:{uid}"),
        "DTSTAMP:20240101T120000Z",
        "RECURRENCE-ID;TZID=Europe/Berlin:20240110T090000",
        "DTSTART;TZID=Europe/Berlin:20240110T100000",
        "DTEND;TZID=Europe/Berlin:20240110T103000",
        "SUMMARY:Stand-up (moved)",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    .join("\r\n")
}

pub(crate) fn simple_event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//M365 Migrator//test//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20240101T120000Z\r\nDTSTART:20240301T100000Z\r\n\
         DTEND:20240301T110000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn task(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//M365 Migrator//test//EN\r\nBEGIN:VTODO\r\n\
         UID:{uid}\r\nDTSTAMP:20240101T120000Z\r\nDUE;VALUE=DATE:20240315\r\nPRIORITY:1\r\n\
         STATUS:NEEDS-ACTION\r\nSUMMARY:{summary}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
}

pub(crate) fn vcard(uid: &str, name: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n\
         EMAIL;TYPE=INTERNET,WORK:someone@example.com\r\nTEL;TYPE=CELL:+49 170 1234567\r\n\
         END:VCARD\r\n"
    )
}

/// An iCalendar/vCard component parsed independently of the code under test: name, its
/// properties (name, sorted parameters, value) sorted, and its sub-components sorted. Equal
/// trees mean the same content whatever the line folding and order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Component {
    name: String,
    props: Vec<(String, Vec<String>, String)>,
    children: Vec<Component>,
}

fn parse(text: &str) -> Vec<Component> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(cont) = raw.strip_prefix([' ', '\t']) {
            lines.last_mut().expect("continuation first").push_str(cont);
        } else if !raw.is_empty() {
            lines.push(raw.to_string());
        }
    }
    let mut stack: Vec<Component> = vec![Component {
        name: String::new(),
        props: vec![],
        children: vec![],
    }];
    for line in lines {
        let mut quoted = false;
        let colon = line
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == ':' && !quoted
            })
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no colon in {line:?}"));
        let (head, value) = (&line[..colon], &line[colon + 1..]);
        let mut parts = head.split(';');
        let name = parts.next().unwrap().to_ascii_uppercase();
        match name.as_str() {
            "BEGIN" => stack.push(Component {
                name: value.to_ascii_uppercase(),
                props: vec![],
                children: vec![],
            }),
            "END" => {
                let mut done = stack.pop().expect("END without BEGIN");
                assert_eq!(done.name, value.to_ascii_uppercase());
                done.props.sort();
                done.children.sort();
                stack
                    .last_mut()
                    .expect("END of the root")
                    .children
                    .push(done);
            }
            _ => {
                let mut params: Vec<String> = parts
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        format!("{}={}", k.to_ascii_uppercase(), v.trim_matches('"'))
                    })
                    .collect();
                params.sort();
                stack
                    .last_mut()
                    .unwrap()
                    .props
                    .push((name, params, value.to_string()));
            }
        }
    }
    assert_eq!(stack.len(), 1, "unbalanced BEGIN/END");
    let mut top = stack.pop().unwrap().children;
    top.sort();
    top
}

/// Raw WebDAV requests, to set up what exists before the migration without the code under
/// test.
async fn raw(
    method: &str,
    url: &str,
    user: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let client = reqwest::Client::new();
    let local = user.split('@').next().unwrap();
    let mut req = client
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
        .basic_auth(user, Some(format!("{local}-secret")))
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("raw request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

pub(crate) async fn raw_calendar(base: &str, path: &str, name: &str) {
    let body = format!(
        r#"<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>{name}</D:displayname></D:prop></D:set></C:mkcalendar>"#
    );
    let (status, text) = raw("MKCALENDAR", &format!("{base}{path}"), ALICE, &[], &body).await;
    assert_eq!(status, 201, "MKCALENDAR {path}: {text}");
}

pub(crate) async fn raw_addressbook(base: &str, path: &str, name: &str) {
    let body = format!(
        r#"<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype><D:displayname>{name}</D:displayname></D:prop></D:set></D:mkcol>"#
    );
    let (status, text) = raw("MKCOL", &format!("{base}{path}"), ALICE, &[], &body).await;
    assert_eq!(status, 201, "MKCOL {path}: {text}");
}

async fn raw_put(base: &str, path: &str, text: &str) {
    let (status, body) = raw(
        "PUT",
        &format!("{base}{path}"),
        ALICE,
        &[("content-type", "text/calendar")],
        text,
    )
    .await;
    assert_eq!(status, 201, "PUT {path}: {body}");
}

/// The calendar called `name` (created or merged).
async fn calendar(account: &DavAccount, name: &str) -> Collection {
    account
        .ensure_collection(CollectionKind::Events, name, None)
        .await
        .unwrap_or_else(|e| panic!("calendar {name}: {e:?}"))
}

/// Puts [`simple_event`] with `uid` and `summary` into `cal`.
async fn put_event(account: &DavAccount, cal: &Collection, uid: &str, summary: &str) -> PutOutcome {
    account
        .put(cal, uid, simple_event(uid, summary).as_bytes())
        .await
        .unwrap_or_else(|e| panic!("put {uid}: {e:?}"))
}

async fn body_of(account: &DavAccount, href: &DestRef) -> String {
    let item = account
        .get(href)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{} is missing", href.0));
    String::from_utf8(item.body).unwrap()
}

#[tokio::test]
async fn discovery_finds_the_home_sets() {
    let server = Radicale::start();
    // Nothing answers at this path, so only the well-known URL (301 to `/`, followed with the
    // same PROPFIND) can lead to the principal.
    let mut settings = server.settings();
    settings.base_url = format!("{}nothing-here/", server.base_url());
    let account = connect(&settings, ALICE).await;
    let home = Url::parse(&format!("{}alice@example.com/", server.base_url())).unwrap();
    let cal = account.calendar_home().expect("calendar home");
    let book = account.addressbook_home().expect("address book home");
    assert!(same_path(cal, &home), "{cal}");
    assert!(same_path(book, &home), "{book}");
    let log = server.log();
    assert!(
        log.contains("PROPFIND request for '/.well-known/caldav'")
            && log.contains("PROPFIND request for '/'"),
        "{log}"
    );
}

#[tokio::test]
async fn collections_are_created_once_and_keep_their_names() {
    let server = Radicale::start();
    let settings = server.settings();
    let account = connect(&settings, ALICE).await;
    let work = account
        .ensure_collection(
            CollectionKind::Events,
            "Work & Play / Ünïcode",
            Some("#FF0000FF"),
        )
        .await
        .unwrap();
    let tasks = account
        .ensure_collection(CollectionKind::Tasks, "Tasks", None)
        .await
        .unwrap();
    let events_named_tasks = calendar(&account, "Tasks").await;
    let contacts = account
        .ensure_collection(CollectionKind::Contacts, "Contacts", None)
        .await
        .unwrap();
    for c in [&work, &tasks, &events_named_tasks, &contacts] {
        assert!(c.created, "{c:?}");
    }
    assert_ne!(tasks.url, events_named_tasks.url);

    // A rerun (a new connection) finds them all and creates nothing.
    let rerun = connect(&settings, ALICE).await;
    for (kind, name, first) in [
        (CollectionKind::Events, "Work & Play / Ünïcode", &work),
        (CollectionKind::Tasks, "Tasks", &tasks),
        (CollectionKind::Events, "Tasks", &events_named_tasks),
        (CollectionKind::Contacts, "Contacts", &contacts),
    ] {
        let again = rerun.ensure_collection(kind, name, None).await.unwrap();
        assert!(!again.created, "{name} created twice");
        assert_eq!(again.url, first.url);
    }

    let events = rerun.collections(CollectionKind::Events).await.unwrap();
    let mut names: Vec<_> = events.iter().map(|c| c.display_name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            Some("Tasks".to_string()),
            Some("Work & Play / Ünïcode".to_string())
        ]
    );
    let listed_work = events.iter().find(|c| c.url == work.url).unwrap();
    assert_eq!(listed_work.color.as_deref(), Some("#FF0000FF"));
    assert_eq!(listed_work.components, Some(vec!["VEVENT".to_string()]));
    let task_lists = rerun.collections(CollectionKind::Tasks).await.unwrap();
    assert_eq!(task_lists.len(), 1);
    assert_eq!(task_lists[0].display_name.as_deref(), Some("Tasks"));
    assert_eq!(task_lists[0].components, Some(vec!["VTODO".to_string()]));
    let books = rerun.collections(CollectionKind::Contacts).await.unwrap();
    assert_eq!(books.len(), 1);
    assert_eq!(books[0].display_name.as_deref(), Some("Contacts"));
    // The path segment is a safe slug, not the raw name.
    let seg = work.url.path_segments().unwrap().rev().nth(1).unwrap();
    assert!(seg.starts_with("work-play-n-code-"), "{seg}");
}

#[tokio::test]
async fn recurring_event_with_override_reads_back_equivalently() {
    let server = Radicale::start();
    let account = connect(&server.settings(), ALICE).await;
    let cal = calendar(&account, "Calendar").await;
    let uid = "040000008200E00074C5B7101A82E00800000000D0E1C2";
    let text = recurring_event(uid, "Stand-up – Größe ✓");
    let out = account.put(&cal, uid, text.as_bytes()).await.unwrap();
    assert!(out.created);
    assert_eq!(out.href.0, format!("{}{uid}.ics", cal.href().0));
    let item = account.get(&out.href).await.unwrap().expect("stored");
    assert_eq!(item.etag, out.etag, "the journal's ETag is the server's");
    let stored = String::from_utf8(item.body).unwrap();
    assert_eq!(parse(&stored), parse(&text), "stored:\n{stored}");
    // The override and the master are one resource.
    assert_eq!(account.list(&cal).await.unwrap().len(), 1);

    let tasks = account
        .ensure_collection(CollectionKind::Tasks, "Tasks", None)
        .await
        .unwrap();
    let t = task("task-1", "Pay the rent");
    let out = account.put(&tasks, "task-1", t.as_bytes()).await.unwrap();
    assert_eq!(parse(&body_of(&account, &out.href).await), parse(&t));

    let book = account
        .ensure_collection(CollectionKind::Contacts, "Contacts", None)
        .await
        .unwrap();
    let card_uid = "urn:uuid:5f0c2a4e-0000-4000-8000-000000000001";
    let card = vcard(card_uid, "Jörg Müller");
    let out = account.put(&book, card_uid, card.as_bytes()).await.unwrap();
    assert!(
        out.href.0.ends_with(".vcf") && out.href.0.contains("/x-"),
        "{}",
        out.href.0
    );
    assert_eq!(parse(&body_of(&account, &out.href).await), parse(&card));
    let found = account.find_by_uid(&book, card_uid).await.unwrap();
    assert_eq!(found.map(|f| f.href), Some(out.href));
}

#[tokio::test]
async fn rerun_updates_the_same_resource_instead_of_adding_one() {
    let server = Radicale::start();
    let settings = server.settings();
    let account = connect(&settings, ALICE).await;
    let cal = calendar(&account, "Calendar").await;
    let first = put_event(&account, &cal, "ev-1", "first").await;
    assert!(first.created);
    // Same run, same (fresh) collection: the href is taken, so it is updated (412 path).
    let second = put_event(&account, &cal, "ev-1", "second").await;
    assert!(!second.created);
    assert_eq!(second.href, first.href);
    assert_ne!(second.etag, first.etag);
    // A rerun: the collection existed before, so the UID is looked up first.
    let rerun = connect(&settings, ALICE).await;
    let cal_again = calendar(&rerun, "Calendar").await;
    assert!(!cal_again.created);
    let third = put_event(&rerun, &cal_again, "ev-1", "third").await;
    assert!(!third.created);
    assert_eq!(third.href, first.href);
    let items = rerun.list(&cal_again).await.unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].etag, third.etag);
    assert!(body_of(&rerun, &third.href).await.contains("SUMMARY:third"));
}

#[tokio::test]
async fn merge_updates_the_existing_uid_in_place_and_leaves_other_events_alone() {
    let server = Radicale::start();
    let base = server.base_url();
    raw_calendar(&base, "alice@example.com/family/", "Family").await;
    raw_put(
        &base,
        "alice@example.com/family/made-by-a-phone.ics",
        &simple_event("shared-1", "from the phone"),
    )
    .await;
    raw_put(
        &base,
        "alice@example.com/family/keep.ics",
        &simple_event("keep-me", "not from the source"),
    )
    .await;
    let account = connect(&server.settings(), ALICE).await;
    let family = calendar(&account, "Family").await;
    assert!(!family.created, "merged into the existing calendar");
    let keep = DestRef("/alice@example.com/family/keep.ics".into());
    let keep_before = account.get(&keep).await.unwrap().unwrap();

    let out = account
        .put(
            &family,
            "shared-1",
            simple_event("shared-1", "from the source").as_bytes(),
        )
        .await
        .unwrap();
    assert!(!out.created);
    assert!(
        out.href.0.ends_with("/family/made-by-a-phone.ics"),
        "{}",
        out.href.0
    );

    // Even without the lookup (a collection believed fresh), the server's no-uid-conflict
    // refusal leads to the same resource.
    let believed_fresh = Collection {
        created: true,
        ..family.clone()
    };
    let again = account
        .put(
            &believed_fresh,
            "shared-1",
            simple_event("shared-1", "again").as_bytes(),
        )
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.href, out.href);

    let items = account.list(&family).await.unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(body_of(&account, &out.href).await.contains("SUMMARY:again"));
    let keep_after = account.get(&keep).await.unwrap().unwrap();
    assert_eq!(
        keep_after, keep_before,
        "an event that was there before is untouched"
    );
}

#[tokio::test]
async fn a_rejected_resource_is_a_per_item_error_and_the_next_put_succeeds() {
    let server = Radicale::start();
    let account = connect(&server.settings(), ALICE).await;
    let cal = calendar(&account, "Calendar").await;
    let err = account
        .put(&cal, "broken-1", b"BEGIN:VCALENDAR\r\ngarbage\r\n")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::SkipItem, "{err:?}");
    let text = err.to_string();
    assert!(
        matches!(err, DavError::Rejected { .. }) && text.contains("broken-1"),
        "{text}"
    );
    // Radicale answers a bare "400 Bad Request"; its parser's message is in its log.
    assert!(text.contains("400 Bad Request"), "{text}");
    assert!(
        server.log().contains("Failed to parse line: garbage"),
        "{}",
        server.log()
    );
    let ok = put_event(&account, &cal, "fine-1", "fine").await;
    assert!(ok.created);
    assert_eq!(account.list(&cal).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_fatal_error() {
    let server = Radicale::start();
    let wrong = DavLogin::new(ALICE, Secret::new("not-the-password-xyz"));
    let err = DavAccount::connect(&server.settings(), ALICE, wrong.clone())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Fatal);
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("the destination refused the login for alice@example.com"),
        "{text}"
    );
    assert!(!text.contains("not-the-password-xyz"));
    // Without discovery the login is checked at connect too.
    let mut templates = server.settings();
    templates.discover = false;
    templates.templates.events = Some("/{email}/Calendar/".into());
    let err = DavAccount::connect(&templates, ALICE, wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, DavError::Auth { .. }), "{err:?}");
    assert!(!server.log().contains("not-the-password-xyz"));
}

#[tokio::test]
async fn templates_without_discovery_use_icewarp_like_urls() {
    let server = Radicale::start();
    let base = server.base_url();
    // What IceWarp has for every account: Calendar, Tasks and Contacts below /webdav/{email}/
    // (here below Radicale's /{email}/).
    raw_calendar(&base, "alice@example.com/Calendar/", "Calendar").await;
    raw_calendar(&base, "alice@example.com/Tasks/", "Tasks").await;
    raw_addressbook(&base, "alice@example.com/Contacts/", "Contacts").await;
    let mut settings = server.settings();
    settings.discover = false;
    settings.templates = CollectionTemplates {
        events: Some("/{email}/Calendar".into()),
        tasks: Some("/{user}@{domain}/Tasks".into()),
        contacts: Some(format!("{base}{{email}}/Contacts/")),
    };
    let account = connect(&settings, ALICE).await;
    assert!(
        !server.log().contains(".well-known"),
        "no discovery was tried"
    );
    let cal = account
        .default_collection(CollectionKind::Events)
        .await
        .unwrap()
        .expect("the Calendar template collection");
    assert!(cal.url.path().ends_with("/Calendar/"), "{}", cal.url);
    let out = put_event(&account, &cal, "t-1", "via template").await;
    assert!(out.created);
    // The journal's href is the same whichever way the server spells it (`@` or `%40`).
    let found = account.find_by_uid(&cal, "t-1").await.unwrap().unwrap();
    assert_eq!(found.href, out.href);
    assert_eq!(account.list(&cal).await.unwrap()[0].href, out.href);
    let tasks = account
        .default_collection(CollectionKind::Tasks)
        .await
        .unwrap()
        .expect("Tasks");
    account
        .put(&tasks, "todo-1", task("todo-1", "x").as_bytes())
        .await
        .unwrap();
    let book = account
        .default_collection(CollectionKind::Contacts)
        .await
        .unwrap()
        .expect("Contacts");
    let card = account
        .put(&book, "c-1", vcard("c-1", "Ann").as_bytes())
        .await
        .unwrap();
    assert!(
        card.href.0.ends_with("/Contacts/c-1.vcf"),
        "{}",
        card.href.0
    );
    // Another calendar goes next to the template collections (their parent is the home).
    let holidays = calendar(&account, "Holidays").await;
    assert!(holidays.created);
    assert!(same_path(
        &holidays.url.join("..").unwrap(),
        &cal.url.join("..").unwrap()
    ));
    // Merge by name finds the template collection itself too.
    let merged = calendar(&account, "Calendar").await;
    assert!(same_path(&merged.url, &cal.url));
}

/// Counts requests in flight through a TCP relay in front of Radicale, which answers HTTP/1.0
/// (one request per connection) with a Content-Length. A request counts from its first byte
/// reaching the relay until the relay has read the whole response, and it stops counting
/// *before* the last bytes are passed on, so the client cannot have started its next request
/// yet: the peak never overstates what the client had in flight.
struct CountingRelay {
    port: u16,
    peak: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

async fn counting_relay(upstream: u16) -> CountingRelay {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let (n, p, t) = (now.clone(), peak.clone(), total.clone());
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let (n, p, t) = (n.clone(), p.clone(), t.clone());
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let (mut client_read, mut client_write) = inbound.into_split();
                let (mut server_read, mut server_write) = outbound.into_split();
                let mut first = vec![0u8; 64 * 1024];
                let Ok(len) = client_read.read(&mut first).await else {
                    return;
                };
                if len == 0 {
                    return;
                }
                let open = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(open, Ordering::SeqCst);
                t.fetch_add(1, Ordering::SeqCst);
                let upload = tokio::spawn(async move {
                    if server_write.write_all(&first[..len]).await.is_ok() {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    }
                });
                let mut counted = true;
                let mut head = Vec::new();
                let mut expected: Option<usize> = None;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let len = server_read.read(&mut buf).await.unwrap_or(0);
                    if len == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..len]);
                    if expected.is_none() {
                        expected = response_length(&head);
                    }
                    if counted && expected.is_some_and(|total| head.len() >= total) {
                        n.fetch_sub(1, Ordering::SeqCst);
                        counted = false;
                    }
                    if client_write.write_all(&buf[..len]).await.is_err() {
                        break;
                    }
                }
                if counted {
                    n.fetch_sub(1, Ordering::SeqCst);
                }
                let _ = client_write.shutdown().await;
                upload.abort();
            });
        }
    });
    CountingRelay { port, peak, total }
}

/// Header plus Content-Length bytes, once the header is complete.
fn response_length(head: &[u8]) -> Option<usize> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let header = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
    let length = header
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Some(end + length)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_in_flight_stay_within_the_bound() {
    let server = Radicale::start();
    let relay = counting_relay(server.port).await;
    let mut settings = server.settings();
    settings.base_url = format!("http://127.0.0.1:{}/", relay.port);
    settings.max_in_flight = 3;
    let account = connect(&settings, ALICE).await;
    let cal = calendar(&account, "Calendar").await;
    let before = relay.total.load(Ordering::SeqCst);
    let puts = (0..24).map(|i| {
        let (account, cal) = (account.clone(), cal.clone());
        tokio::spawn(async move {
            let uid = format!("bound-{i}");
            account
                .put(&cal, &uid, simple_event(&uid, "x").as_bytes())
                .await
        })
    });
    for put in futures_util::future::join_all(puts).await {
        assert!(put.unwrap().unwrap().created);
    }
    assert_eq!(account.list(&cal).await.unwrap().len(), 24);
    let peak = relay.peak.load(Ordering::SeqCst);
    assert!(relay.total.load(Ordering::SeqCst) - before >= 24);
    assert!(peak <= 3, "{peak} requests at once with a bound of 3");
    assert!(peak >= 2, "the puts never overlapped (peak {peak})");
}

#[tokio::test]
async fn tls_needs_the_ca_file_and_plaintext_needs_permission() {
    let server = Radicale::start_with(Options {
        tls: true,
        ..Options::default()
    });
    let mut untrusted = server.settings();
    untrusted.ca_file = None;
    let err = DavAccount::connect(&untrusted, ALICE, Radicale::login(ALICE))
        .await
        .unwrap_err();
    assert!(matches!(err, DavError::Tls { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Fatal);

    let account = connect(&server.settings(), ALICE).await;
    let cal = calendar(&account, "Calendar").await;
    let out = put_event(&account, &cal, "tls-1", "over TLS").await;
    assert!(out.created);

    let plain = Radicale::start();
    let mut refused = plain.settings();
    refused.allow_plaintext_loopback = false;
    let err = DavAccount::connect(&refused, ALICE, Radicale::login(ALICE))
        .await
        .unwrap_err();
    assert!(matches!(err, DavError::Config(_)), "{err:?}");
    assert!(!plain.log().contains("alice"), "nothing was sent");
}

#[tokio::test]
async fn delete_removes_only_the_version_the_journal_knows() {
    let server = Radicale::start();
    let account = connect(&server.settings(), ALICE).await;
    let cal = calendar(&account, "Calendar").await;
    let a = put_event(&account, &cal, "del-1", "v1").await;
    // Changed at the destination after the migration wrote it.
    let b = put_event(&account, &cal, "del-1", "edited").await;
    let stale = ItemRef {
        href: a.href.clone(),
        etag: a.etag.clone(),
    };
    let err = account.delete(&stale).await.unwrap_err();
    assert!(
        matches!(err, DavError::ChangedAtDestination { .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::SkipItem);
    assert!(account.get(&a.href).await.unwrap().is_some());
    let current = ItemRef {
        href: b.href.clone(),
        etag: b.etag.clone(),
    };
    let err = account
        .replace(&cal, &stale, simple_event("del-1", "x").as_bytes())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DavError::ChangedAtDestination { .. }),
        "{err:?}"
    );
    account.delete(&current).await.unwrap();
    assert!(account.get(&b.href).await.unwrap().is_none());
    account.delete(&current).await.unwrap(); // already gone is fine
}

#[tokio::test]
async fn an_unreachable_or_stopped_server_is_worth_retrying() {
    let mut server = Radicale::start();
    let settings = server.settings();
    let account = connect(&settings, ALICE).await;
    let cal = calendar(&account, "Calendar").await;
    drop(std::mem::replace(&mut server, Radicale::start()));
    // The old port is closed now: the write fails, and it is a transient failure.
    let err = account
        .put(&cal, "later-1", simple_event("later-1", "x").as_bytes())
        .await
        .unwrap_err();
    assert!(matches!(err, DavError::Connect { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Retry);
}

#[tokio::test]
async fn another_resource_at_the_name_of_a_uid_is_left_alone() {
    let server = Radicale::start();
    let base = server.base_url();
    raw_calendar(&base, "alice@example.com/work/", "Work").await;
    // Someone else's event sits where the migrator would put UID "meeting-7".
    raw_put(
        &base,
        "alice@example.com/work/meeting-7.ics",
        &simple_event("other-uid", "someone else's"),
    )
    .await;
    let account = connect(&server.settings(), ALICE).await;
    let work = calendar(&account, "Work").await;
    let squatter = DestRef("/alice@example.com/work/meeting-7.ics".into());
    let before = account.get(&squatter).await.unwrap().unwrap();
    // Believed fresh, so the first PUT goes straight to the UID's name and meets the 412.
    let fresh = Collection {
        created: true,
        ..work.clone()
    };
    let out = put_event(&account, &fresh, "meeting-7", "ours").await;
    assert!(out.created);
    assert!(out.href.0.contains("/work/x-"), "{}", out.href.0);
    assert_eq!(account.get(&squatter).await.unwrap().unwrap(), before);
    // Again: found by UID (at the hashed name) and updated there.
    let again = put_event(&account, &work, "meeting-7", "ours, updated").await;
    assert!(!again.created);
    assert_eq!(again.href, out.href);
    assert_eq!(account.list(&work).await.unwrap().len(), 2);
}

/// The converters' golden files (tests/golden), as the migrator would write them.
fn golden(kind: &str, ext: &str) -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden {kind}");
    files
}

/// The parsed tree without `name` properties in its top components.
fn without(mut tree: Vec<Component>, name: &str) -> Vec<Component> {
    for c in &mut tree {
        c.props.retain(|(n, _, _)| n != name);
    }
    tree
}

#[tokio::test]
async fn every_golden_resource_is_accepted_and_reads_back_equivalently() {
    let server = Radicale::start();
    let account = connect(&server.settings(), ALICE).await;
    let mut failures = Vec::new();
    for (kind, dir, ext) in [
        (CollectionKind::Events, "events", "ics"),
        (CollectionKind::Tasks, "tasks", "ics"),
        (CollectionKind::Contacts, "contacts", "vcf"),
    ] {
        for (name, text) in golden(dir, ext) {
            // One collection per file: full_v3 and full_v4 are one contact (same UID), and
            // one collection would rightly hold it once.
            let collection = account
                .ensure_collection(kind, &format!("Golden {name}"), None)
                .await
                .unwrap();
            let uid = migrator_core::dest::dav::types::resource_uids(&text)
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("{name} has no UID"));
            let out = match account.put(&collection, &uid, text.as_bytes()).await {
                Ok(out) => out,
                Err(e) => {
                    failures.push(format!("{name} refused: {e}"));
                    continue;
                }
            };
            let stored = body_of(&account, &out.href).await;
            let (mut got, mut want) = (parse(&stored), parse(&text));
            if text.contains("VERSION:4.0") {
                // Radicale 3.1 stores vCards through vobject, which knows vCard 3.0 only: a
                // 4.0 `PHOTO:data:image/png;base64,...` comes back as `data:image/png\;base64`
                // with the image gone. Write vCard 3.0 to such a server.
                assert!(
                    stored.contains("PHOTO:data:image/png\\;base64\r\n"),
                    "{stored}"
                );
                (got, want) = (without(got, "PHOTO"), without(want, "PHOTO"));
            }
            if got != want {
                failures.push(format!("{name} changed:\n{stored}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        server.log()
    );
}
