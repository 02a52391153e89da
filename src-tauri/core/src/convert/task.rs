//! To Do tasks to VTODO (RFC 5545 §3.6.2).
//!
//! Mapping (resources/todotask.md):
//! - title → SUMMARY; body → DESCRIPTION (HTML as text, the HTML in X-ALT-DESC).
//! - status: notStarted → NEEDS-ACTION, inProgress → IN-PROCESS, completed → COMPLETED
//!   (+ PERCENT-COMPLETE:100), waitingOnOthers → IN-PROCESS, deferred → NEEDS-ACTION; RFC 5545
//!   has no status for the last two, so Graph's value is also kept in X-M365-TODO-STATUS.
//! - importance → PRIORITY (high 1, normal 5, low 9).
//! - dueDateTime, startDateTime → DUE, DTSTART as DATE values: To Do's due and start are days
//!   (Graph stores a local midnight); rendered in UTC, the date is the one whose midnight is
//!   nearest. completedDateTime → COMPLETED (UTC).
//! - isReminderOn + reminderDateTime → VALARM with an absolute UTC TRIGGER.
//! - recurrence → RRULE anchored at DTSTART (the start date, else the due date, which then
//!   also becomes DTSTART, since §3.8.5.3 anchors a rule at DTSTART).
//! - categories → CATEGORIES. checklistItems → appended to DESCRIPTION as `[x] item` /
//!   `[ ] item` lines (no client-independent iCalendar form for sub-items without making each
//!   its own VTODO). linkedResources → appended as "Links:" lines.
//! - UID derived from the Graph id (tasks have no iCalendar UID in Graph).

use calcard::icalendar::{
    ICalendarEntry, ICalendarParameter, ICalendarProperty, ICalendarStatus, ICalendarValueType,
};
use chrono::NaiveDate;

use super::event::{
    time_entry, write_categories, write_priority, write_stamps, write_text_body, CalendarObject,
};
use super::recurrence::{self, partial_date_time, Anchor};
use super::timezone::{self, Zone};
use super::{CalendarResource, ConvertError};
use crate::graph::types::{DateTimeTimeZone, TodoTask};

/// Converts one task.
pub fn to_vtodo(task: &TodoTask) -> Result<CalendarResource, ConvertError> {
    let mut notes = Vec::new();
    let uid = super::uid_from_graph_id("task", &task.id);
    let mut cal = CalendarObject::new();
    let id = cal.add_todo();

    let start = task_date("startDateTime", task.start_date_time.as_ref(), &mut notes)?;
    let due = task_date("dueDateTime", task.due_date_time.as_ref(), &mut notes)?;
    let anchor = start.or(if task.recurrence.is_some() { due } else { None });

    let mut extra = Vec::new();
    if !task.checklist_items.is_empty() {
        let mut lines = vec!["Checklist:".to_string()];
        for item in &task.checklist_items {
            let name = item.display_name.as_deref().unwrap_or("").trim();
            lines.push(format!(
                "[{}] {name}",
                if item.is_checked { "x" } else { " " }
            ));
        }
        extra.push(lines.join("\n"));
    }
    let links: Vec<String> = task
        .linked_resources
        .iter()
        .filter_map(|l| {
            let url = l.web_url.as_deref()?.trim();
            let label = l.display_name.as_deref().or(l.application_name.as_deref());
            Some(match label {
                Some(label) => format!("- {label}: {url}"),
                None => format!("- {url}"),
            })
        })
        .collect();
    if !links.is_empty() {
        extra.push(format!("Links:\n{}", links.join("\n")));
    }

    let c = cal.component(id);
    c.add_uid(&uid);
    write_stamps(
        c,
        task.created_date_time.as_deref(),
        task.last_modified_date_time.as_deref(),
    );
    write_text_body(
        c,
        task.title.as_deref(),
        task.body.as_ref(),
        &extra.join("\n\n"),
    );

    let (status, keep_raw) = match task.status.as_deref() {
        Some("notStarted") | None => (ICalendarStatus::NeedsAction, false),
        Some("inProgress") => (ICalendarStatus::InProcess, false),
        Some("completed") => (ICalendarStatus::Completed, false),
        Some("waitingOnOthers") => (ICalendarStatus::InProcess, true),
        Some("deferred") => (ICalendarStatus::NeedsAction, true),
        Some(other) => {
            notes.push(format!(
                "unknown task status {other:?}; written as NEEDS-ACTION"
            ));
            (ICalendarStatus::NeedsAction, true)
        }
    };
    let completed = status == ICalendarStatus::Completed;
    c.add_property(ICalendarProperty::Status, status);
    if let (true, Some(raw)) = (keep_raw, task.status.as_deref()) {
        c.add_property(ICalendarProperty::Other("X-M365-TODO-STATUS".into()), raw);
    }
    if completed {
        c.add_property(ICalendarProperty::PercentComplete, 100i64);
        if let Some(done) = task.completed_date_time.as_ref() {
            let at = timezone::instant_of("completedDateTime", done, &mut notes)?;
            c.add_property(
                ICalendarProperty::Completed,
                partial_date_time(at.naive_utc(), true)?,
            );
        }
    }
    write_priority(c, task.importance.as_deref());
    if let Some(d) = anchor {
        c.entries
            .push(time_entry(ICalendarProperty::Dtstart, &Anchor::Date(d))?);
    }
    if let Some(d) = due {
        // DUE must not be before DTSTART (§3.6.2); a due date before the start is moved to it.
        let d = match anchor {
            Some(s) if d < s => {
                notes.push(format!(
                    "due date {d} before start {s}; due set to the start"
                ));
                s
            }
            _ => d,
        };
        c.entries
            .push(time_entry(ICalendarProperty::Due, &Anchor::Date(d))?);
    }
    if let Some(rec) = task.recurrence.as_ref() {
        match anchor {
            Some(d) => {
                let rule = recurrence::to_rrule(rec, &Anchor::Date(d))?;
                c.entries
                    .push(ICalendarEntry::new(ICalendarProperty::Rrule).with_value(rule));
            }
            None => {
                notes.push("recurring task without start or due date; recurrence left out".into())
            }
        }
    }
    write_categories(c, &task.categories);

    if task.is_reminder_on == Some(true) {
        match task.reminder_date_time.as_ref() {
            Some(when) => {
                let at = timezone::instant_of("reminderDateTime", when, &mut notes)?;
                let trigger = ICalendarEntry::new(ICalendarProperty::Trigger)
                    .with_param(ICalendarParameter::value(ICalendarValueType::DateTime))
                    .with_value(partial_date_time(at.naive_utc(), true)?);
                let text = task
                    .title
                    .as_deref()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or("Reminder");
                cal.add_alarm(id, trigger, text);
            }
            None => notes.push("reminder on but no reminderDateTime; left out".into()),
        }
    }

    super::event::dedup_keep_order(&mut notes);
    Ok(CalendarResource {
        uid,
        text: cal.ical.to_string(),
        notes,
    })
}

/// The day a To Do date names (see the module doc).
fn task_date(
    field: &'static str,
    value: Option<&DateTimeTimeZone>,
    notes: &mut Vec<String>,
) -> Result<Option<NaiveDate>, ConvertError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let wall = timezone::parse_wall(&value.date_time)
        .ok_or_else(|| ConvertError::invalid(field, &value.date_time, "not a date-time"))?;
    let zone = match value.time_zone.as_deref() {
        None | Some("") => Zone::Utc,
        Some(name) => timezone::resolve(name).unwrap_or_else(|| {
            notes.push(format!("{field}: unknown time zone {name:?}, read as UTC"));
            Zone::Utc
        }),
    };
    Ok(Some(match zone {
        Zone::Utc => timezone::nearest_date(wall),
        Zone::Iana(_) => wall.date(),
    }))
}
