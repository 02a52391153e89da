//! Golden tests for the Graph → iCalendar / vCard converters.
//!
//! Each `tests/golden/{events,contacts,tasks}/NAME.json` holds Graph JSON and what is expected
//! of it; `NAME.ics` / `NAME.vcf` is the expected resource, reviewed by hand line by line.
//! Every output must also parse with an independent parser (the `ical` crate), keep lines
//! within 75 octets and end them with CRLF; event fixtures list the occurrence starts Graph's
//! calendarView would show in a window, computed by hand, and the resource's expansion by an
//! independent RRULE engine (the `rrule` crate) must equal them.
//!
//! To regenerate an expected file after a deliberate change: `GOLDEN_BLESS=1 cargo nextest run
//! -p migrator-core --test convert_golden`, then review the diff.

use crate::occurrences;

use std::io::BufReader;
use std::path::{Path, PathBuf};

use base64::Engine;
use chrono::{DateTime, Utc};
use migrator_core::convert::contact::{to_vcard, VCardVersion};
use migrator_core::convert::event::{series_to_ics, single_to_ics};
use migrator_core::convert::task::to_vtodo;
use migrator_core::convert::{CalendarResource, ConvertError};
use migrator_core::graph::types::{Contact, Event, EventAttachment, TodoTask};
use serde::Deserialize;

fn golden_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(kind)
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(golden_dir(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {kind}");
    v
}

/// Compares with the expected file, or writes it under GOLDEN_BLESS=1.
fn check_golden(json: &Path, ext: &str, got: &str) -> Result<(), String> {
    let path = json.with_extension(ext);
    if std::env::var_os("GOLDEN_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return Ok(());
    }
    let want = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if want != got {
        return Err(format!(
            "{} differs:\n--- want\n{want}\n--- got\n{got}",
            path.display()
        ));
    }
    Ok(())
}

/// RFC 5545 §3.1 / RFC 6350 §3.2: CRLF line ends, lines at most 75 octets.
fn check_lines(text: &str) -> Result<(), String> {
    if !text.ends_with("\r\n") {
        return Err("does not end with CRLF".into());
    }
    for line in text.split("\r\n") {
        if line.len() > 75 {
            return Err(format!("line of {} octets: {line}", line.len()));
        }
        if line.contains('\n') || line.contains('\r') {
            return Err(format!("bare line break in {line:?}"));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct EventFixture {
    master: Event,
    #[serde(default)]
    exceptions: Vec<Event>,
    #[serde(default)]
    attachments: Vec<EventAttachment>,
    window: (DateTime<Utc>, DateTime<Utc>),
    occurrences: Vec<String>,
    #[serde(default)]
    notes: Vec<String>,
}

fn check_event(path: &Path) -> Result<(), String> {
    let f: EventFixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .map_err(|e| format!("fixture: {e}"))?;
    let res = if f.exceptions.is_empty() && f.master.recurrence.is_none() {
        single_to_ics(&f.master, &f.attachments)
    } else {
        series_to_ics(&f.master, &f.exceptions, &f.attachments)
    }
    .map_err(|e| format!("convert: {e}"))?;
    check_golden(path, "ics", &res.text)?;
    check_lines(&res.text)?;
    if res.notes != f.notes {
        return Err(format!("notes: want {:?}, got {:?}", f.notes, res.notes));
    }
    // Independent parse: one VCALENDAR, every VEVENT with the series' UID.
    let mut parser = ical::IcalParser::new(BufReader::new(res.text.as_bytes()));
    let cal = parser
        .next()
        .ok_or("no calendar")?
        .map_err(|e| format!("ical: {e}"))?;
    if parser.next().is_some() {
        return Err("more than one VCALENDAR".into());
    }
    let want_events = 1 + f
        .exceptions
        .iter()
        .filter(|e| e.is_cancelled != Some(true))
        .count();
    if cal.events.len() != want_events {
        return Err(format!("{} VEVENTs, want {want_events}", cal.events.len()));
    }
    for e in &cal.events {
        let uid = e
            .properties
            .iter()
            .find(|p| p.name == "UID")
            .and_then(|p| p.value.clone());
        if uid.as_deref() != Some(res.uid.as_str()) {
            return Err(format!("VEVENT UID {uid:?}, want {}", res.uid));
        }
    }
    let got = occurrences::occurrences(&res.text, f.window.0, f.window.1)?;
    if got != f.occurrences {
        return Err(format!(
            "occurrences:\n want {:?}\n got  {:?}",
            f.occurrences, got
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct ContactFixture {
    contact: Contact,
    #[serde(default)]
    photo: Option<Photo>,
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Photo {
    content_type: String,
    base64: String,
}

fn check_contact(path: &Path) -> Result<(), String> {
    let f: ContactFixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .map_err(|e| format!("fixture: {e}"))?;
    let photo = f.photo.as_ref().map(|p| {
        (
            p.content_type.as_str(),
            base64::engine::general_purpose::STANDARD
                .decode(&p.base64)
                .unwrap(),
        )
    });
    let version = match f.version.as_str() {
        "4.0" => VCardVersion::V4_0,
        _ => VCardVersion::V3_0,
    };
    let res = to_vcard(
        &f.contact,
        photo.as_ref().map(|(t, b)| (*t, b.as_slice())),
        version,
    )
    .map_err(|e| format!("convert: {e}"))?;
    check_golden(path, "vcf", &res.text)?;
    check_lines(&res.text)?;
    let mut parser = ical::VcardParser::new(BufReader::new(res.text.as_bytes()));
    let card = parser
        .next()
        .ok_or("no vCard")?
        .map_err(|e| format!("vcard parser: {e}"))?;
    let get = |name: &str| {
        card.properties
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
    };
    if get("VERSION").as_deref() != Some(f.version.as_str()) {
        return Err(format!("VERSION {:?}", get("VERSION")));
    }
    if get("UID").as_deref() != Some(res.uid.as_str()) || get("FN").is_none() {
        return Err("UID or FN missing after parsing".into());
    }
    if let Some((content_type, bytes)) = &photo {
        let value = get("PHOTO").ok_or("PHOTO missing after parsing")?;
        let b64 = if f.version == "4.0" {
            let prefix = format!("data:{content_type};base64,");
            value
                .strip_prefix(&prefix)
                .ok_or_else(|| format!("PHOTO is not a {prefix} URI: {value:.40}"))?
        } else {
            value.as_str()
        };
        let back = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("PHOTO base64: {e}"))?;
        if &back != bytes {
            return Err("PHOTO bytes differ after parsing".into());
        }
    }
    Ok(())
}

fn check_task(path: &Path) -> Result<(), String> {
    let t: TodoTask = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .map_err(|e| format!("fixture: {e}"))?;
    let res = to_vtodo(&t).map_err(|e| format!("convert: {e}"))?;
    check_golden(path, "ics", &res.text)?;
    check_lines(&res.text)?;
    let mut parser = ical::IcalParser::new(BufReader::new(res.text.as_bytes()));
    let cal = parser
        .next()
        .ok_or("no calendar")?
        .map_err(|e| format!("ical: {e}"))?;
    if cal.todos.len() != 1 || !cal.events.is_empty() {
        return Err(format!("{} VTODOs", cal.todos.len()));
    }
    Ok(())
}

fn run_all(kind: &str, check: fn(&Path) -> Result<(), String>) {
    let failures: Vec<String> = fixtures(kind)
        .iter()
        .filter_map(|p| check(p).err().map(|e| format!("{}: {e}", p.display())))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn events_match_golden_files_and_graph_occurrences() {
    run_all("events", check_event);
}

#[test]
fn contacts_match_golden_files() {
    run_all("contacts", check_contact);
}

#[test]
fn tasks_match_golden_files() {
    run_all("tasks", check_task);
}

fn event(json: serde_json::Value) -> Event {
    serde_json::from_value(json).unwrap()
}

#[test]
fn bad_events_are_clear_errors_not_panics() {
    let start = serde_json::json!({"dateTime": "2024-01-08T09:00:00.0000000", "timeZone": "UTC"});
    let series = |pattern: serde_json::Value| {
        event(serde_json::json!({
            "id": "m", "type": "seriesMaster", "start": start, "end": start,
            "recurrence": {"pattern": pattern, "range": {"type": "noEnd", "startDate": "2024-01-08"}}
        }))
    };
    assert_eq!(
        series_to_ics(&series(serde_json::json!({"type": "hourly"})), &[], &[]),
        Err(ConvertError::UnknownPattern("hourly".into()))
    );
    assert!(matches!(
        series_to_ics(
            &series(serde_json::json!({"type": "absoluteYearly", "month": 2, "dayOfMonth": 30})),
            &[],
            &[]
        ),
        Err(ConvertError::Invalid {
            field: "dayOfMonth",
            ..
        })
    ));
    assert_eq!(
        single_to_ics(&event(serde_json::json!({"id": "x"})), &[]),
        Err(ConvertError::Missing("start"))
    );
    assert!(matches!(
        single_to_ics(
            &event(
                serde_json::json!({"id": "x", "start": {"dateTime": "soon", "timeZone": "UTC"}})
            ),
            &[]
        ),
        Err(ConvertError::Invalid { field: "start", .. })
    ));
}

#[test]
fn unknown_zone_and_missing_fields_are_repaired_with_a_note() {
    let e = event(serde_json::json!({
        "id": "AAMkAD=",
        "start": {"dateTime": "2024-06-03T07:30:00.0000000", "timeZone": "Mars Standard Time"},
        "originalStartTimeZone": "Mars Standard Time"
    }));
    let res: CalendarResource = single_to_ics(&e, &[]).unwrap();
    assert!(
        res.text.contains("DTSTART:20240603T073000Z\r\n"),
        "{}",
        res.text
    );
    assert!(
        res.text.contains("DTEND:20240603T073000Z\r\n"),
        "{}",
        res.text
    );
    assert!(!res.text.contains("VTIMEZONE"));
    assert_eq!(
        res.notes,
        vec![
            "time zone Mars Standard Time has no IANA equivalent; times written in UTC",
            "start: unknown time zone \"Mars Standard Time\", read as UTC",
            "event AAMkAD= has no end; written as zero length",
        ]
    );
    // Derived UIDs are stable across runs and differ between items.
    assert_eq!(res.uid, single_to_ics(&e, &[]).unwrap().uid);
    let other =
        event(serde_json::json!({"id": "other", "start": {"dateTime": "2024-06-03T07:30:00"}}));
    assert_ne!(res.uid, single_to_ics(&other, &[]).unwrap().uid);
    assert!(res.uid.starts_with("m365-event-"));
}

#[test]
fn minimal_contact_and_task_convert() {
    let c: Contact = serde_json::from_value(serde_json::json!({"id": "c1"})).unwrap();
    let card = to_vcard(&c, None, VCardVersion::V3_0).unwrap();
    assert!(card.text.contains("\r\nFN:\r\n"), "{}", card.text);
    assert_eq!(card.notes, vec!["contact has no name; FN left empty"]);
    let t: TodoTask = serde_json::from_value(serde_json::json!({"id": "t1"})).unwrap();
    let todo = to_vtodo(&t).unwrap();
    assert!(
        todo.text.contains("STATUS:NEEDS-ACTION\r\n"),
        "{}",
        todo.text
    );
    assert_eq!(todo.uid, to_vtodo(&t).unwrap().uid);
}

#[test]
fn a_broken_override_is_left_out_and_the_series_still_converts() {
    let start = serde_json::json!({"dateTime": "2024-01-08T09:00:00", "timeZone": "UTC"});
    let master = event(serde_json::json!({
        "id": "m", "type": "seriesMaster", "iCalUId": "series-1", "start": start, "end": start,
        "originalStartTimeZone": "UTC",
        "recurrence": {"pattern": {"type": "daily"}, "range": {"type": "numbered", "numberOfOccurrences": 3}}
    }));
    let no_start = event(
        serde_json::json!({"id": "x1", "type": "exception", "originalStart": "2024-01-09T09:00:00Z"}),
    );
    let no_original = event(serde_json::json!({"id": "x2", "type": "exception", "start": start}));
    let res = series_to_ics(&master, &[no_start, no_original], &[]).unwrap();
    assert_eq!(res.text.matches("BEGIN:VEVENT").count(), 1, "{}", res.text);
    assert_eq!(
        res.notes,
        vec![
            "modified occurrence x1 left out: missing start",
            "modified occurrence x2 has no originalStart; left out",
        ]
    );
    let window = (
        "2024-01-01T00:00:00Z".parse().unwrap(),
        "2024-02-01T00:00:00Z".parse().unwrap(),
    );
    assert_eq!(
        occurrences::occurrences(&res.text, window.0, window.1).unwrap(),
        [
            "2024-01-08T09:00:00Z",
            "2024-01-09T09:00:00Z",
            "2024-01-10T09:00:00Z"
        ]
    );
}

#[test]
fn prefer_outlook_timezone_input_gives_the_same_resource_as_utc_input() {
    let path = golden_dir("events").join("weekly_enddate_newyork.json");
    let f: EventFixture = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let utc = series_to_ics(&f.master, &[], &[]).unwrap();
    // The same series as Graph renders it under `Prefer: outlook.timezone="Eastern Standard
    // Time"`: wall times in that zone instead of UTC.
    let mut local = f.master.clone();
    for (dt, wall) in [
        (local.start.as_mut().unwrap(), "2024-10-28T10:00:00.0000000"),
        (local.end.as_mut().unwrap(), "2024-10-28T11:00:00.0000000"),
    ] {
        dt.date_time = wall.to_string();
        dt.time_zone = Some("Eastern Standard Time".to_string());
    }
    assert_eq!(series_to_ics(&local, &[], &[]).unwrap(), utc);
}
