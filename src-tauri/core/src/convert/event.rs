//! Events to iCalendar (RFC 5545): one resource per series.
//!
//! A series is its master (`type = seriesMaster`) with an RRULE, each modified occurrence as a
//! VEVENT with the same UID and a RECURRENCE-ID (§3.8.4.4), and each deleted occurrence as an
//! EXDATE (§3.8.5.1). Timed events are written in the zone they were created in
//! (`originalStartTimeZone`, mapped to IANA, with a VTIMEZONE built from the tz rules); Graph's
//! times are read as instants (UTC unless the reader sent `Prefer: outlook.timezone`) and
//! converted to that zone's wall time. A zone with no IANA equivalent
//! (`tzone://Microsoft/Custom`, unknown names) falls back to UTC times and a note; when the
//! series' first occurrence then falls on a UTC date the pattern does not allow (its local
//! date is the day before or after), a whole-hour `Etc/GMT±n` zone that restores the local
//! dates is used instead. All-day events are DATE values and float, as in Outlook.
//!
//! Organizer and attendees carry SCHEDULE-AGENT=CLIENT (RFC 6638 §7.1), so a CalDAV server
//! that does scheduling sends no invitations when the migrator writes the event.
//!
//! UID: the series' UID is Graph's beta `uid` (the same on master and occurrences), else the
//! master's `iCalUId` (v1.0 gives the master the series' iCalendar UID; occurrences get their
//! own), else one derived from the Graph id (resources/event.md, beta and v1.0).

use base64::Engine;
use calcard::common::PartialDateTime;
use calcard::icalendar::{
    ICalendar, ICalendarAction, ICalendarClassification, ICalendarComponent,
    ICalendarComponentType, ICalendarDuration, ICalendarEntry, ICalendarFeatureType,
    ICalendarParameter, ICalendarParticipationRole, ICalendarParticipationStatus,
    ICalendarProperty, ICalendarScheduleAgentValue, ICalendarStatus, ICalendarTransparency,
    ICalendarUserTypes, ICalendarValue, ICalendarValueType, Uri,
};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};

use super::recurrence::{self, partial_date, partial_date_time, Anchor};
use super::timezone::{self, Zone};
use super::{html_text, CalendarResource, ConvertError};
use crate::graph::types::{Event, EventAttachment, ItemBody};

/// Decoded attachment bytes one resource may carry inline; larger attachments, and those past
/// the budget, are listed in the description instead. CalDAV servers cap resource sizes
/// (Radicale's default request limit is 100 MB; many servers use a few MB), and base64 adds a
/// third.
pub const INLINE_ATTACHMENT_BUDGET: usize = 1024 * 1024;

const PRODID: &str = "-//M365 Migrator//Graph to iCalendar//EN";

/// Converts one event that is not part of a series (or an orphan occurrence).
pub fn single_to_ics(
    event: &Event,
    attachments: &[EventAttachment],
) -> Result<CalendarResource, ConvertError> {
    series_to_ics(event, &[], attachments)
}

/// Converts a series master with its modified occurrences (`exceptions`, plus any in the
/// master's beta `exceptionOccurrences`) and the master's attachments into one resource.
/// Cancelled occurrences come from the master's beta `cancelledOccurrences` and from
/// exceptions marked `isCancelled`. A master without `recurrence` is a single event.
pub fn series_to_ics(
    master: &Event,
    exceptions: &[Event],
    attachments: &[EventAttachment],
) -> Result<CalendarResource, ConvertError> {
    let mut notes = Vec::new();
    let uid = series_uid(master);
    let recurrence = master.recurrence.as_ref().filter(|_| {
        !matches!(
            master.kind.as_deref(),
            Some("occurrence") | Some("exception")
        )
    });

    // The zone the series is written in.
    let zone = if master.is_all_day {
        Zone::Utc
    } else {
        timezone::first_known(
            &[
                master.original_start_time_zone.as_deref(),
                recurrence.and_then(|r| r.range.recurrence_time_zone.as_deref()),
                master.start.as_ref().and_then(|s| s.time_zone.as_deref()),
            ],
            &mut notes,
        )
    };
    let unresolved = master
        .original_start_time_zone
        .as_deref()
        .is_some_and(|n| timezone::resolve(n).is_none());
    let zone = match (zone, recurrence) {
        (Zone::Utc, Some(rec)) if unresolved && !master.is_all_day => {
            local_date_zone(master, rec, &mut notes)?.unwrap_or(Zone::Utc)
        }
        (zone, _) => zone,
    };
    let mut span = SeriesTimes::of(master, zone, &mut notes)?;

    let mut cal = CalendarObject::new();
    let master_id = cal.add_event();

    if let Some(rec) = recurrence {
        let first = recurrence::first_occurrence(rec, span.anchor.date())?;
        if first != span.anchor.date() {
            notes.push(format!(
                "series start {} is not a pattern date; anchored on the first occurrence {first}",
                span.anchor.date()
            ));
            span.shift_days((first - span.anchor.date()).num_days());
        }
    }
    span.write(cal.component(master_id));
    let mut bounds = vec![span.start_instant(), span.end_instant()];

    let mut exdates: Vec<Occurrence> = Vec::new();
    if let Some(rec) = recurrence {
        let rule = recurrence::to_rrule(rec, &span.anchor)?;
        if let Some(t) = rule.until.as_ref().and_then(instant_of_partial) {
            bounds.push(t);
        }
        cal.component(master_id)
            .entries
            .push(ICalendarEntry::new(ICalendarProperty::Rrule).with_value(rule));
        for oid in &master.cancelled_occurrences {
            match cancelled_date(oid) {
                Some(date) => exdates.push(span.occurrence_on(date)),
                None => notes.push(format!("cancelled occurrence {oid:?} has no date; ignored")),
            }
        }
    }

    let mut body_extra = String::new();
    write_attachments(
        cal.component(master_id),
        attachments,
        &mut body_extra,
        &mut notes,
    );
    write_details(&mut cal, master_id, master, &uid, &body_extra)?;

    if let Some(rec) = recurrence {
        let mut seen = Vec::new();
        for ex in exceptions.iter().chain(&master.exception_occurrences) {
            if seen.contains(&&ex.id) {
                continue;
            }
            seen.push(&ex.id);
            let Some(original) = ex
                .original_start
                .as_deref()
                .and_then(timezone::parse_wall)
                .map(|w| w.and_utc())
            else {
                notes.push(format!(
                    "modified occurrence {} has no originalStart; left out",
                    ex.id
                ));
                continue;
            };
            let occurrence = span.occurrence_at(original, master, &mut notes);
            if ex.is_cancelled == Some(true) {
                exdates.push(occurrence);
                continue;
            }
            bounds.push(original);
            if !span.is_instance(rec, &occurrence)? {
                // Repair: Exchange keeps an exception whose original start is no occurrence of
                // the pattern; a RECURRENCE-ID must name an instance of the set (RFC 5545
                // §3.8.4.4), so an RDATE (§3.8.5.2) adds that instance and the override
                // replaces it: the series shows the moved occurrence, as Outlook does.
                notes.push(format!(
                    "modified occurrence {} replaces {}, which is not an occurrence of the \
                     pattern; added as an RDATE",
                    ex.id,
                    occurrence.anchor.date()
                ));
                cal.component(master_id).entries.push(
                    ICalendarEntry::new(ICalendarProperty::Rdate)
                        .with_params(occurrence.params())
                        .with_value(occurrence.value()?),
                );
            }
            let mut ex_span = match SeriesTimes::of(ex, zone, &mut notes) {
                Ok(s) => s,
                Err(e) => {
                    notes.push(format!("modified occurrence {} left out: {e}", ex.id));
                    continue;
                }
            };
            ex_span.all_day = span.all_day;
            let id = cal.add_event();
            ex_span.write(cal.component(id));
            bounds.push(ex_span.start_instant());
            bounds.push(ex_span.end_instant());
            cal.component(id).entries.push(
                ICalendarEntry::new(ICalendarProperty::RecurrenceId)
                    .with_params(occurrence.params())
                    .with_value(occurrence.value()?),
            );
            write_details(&mut cal, id, ex, &uid, "")?;
        }
    }

    exdates.sort_by_key(|o| o.sort_key());
    exdates.dedup();
    for ex in &exdates {
        bounds.push(ex.at);
        cal.component(master_id).entries.push(
            ICalendarEntry::new(ICalendarProperty::Exdate)
                .with_params(ex.params())
                .with_value(ex.value()?),
        );
    }

    if let (Zone::Iana(tz), false) = (zone, span.all_day) {
        let from = bounds.iter().min().copied().unwrap_or_default();
        let to = bounds.iter().max().copied().unwrap_or_default();
        // From the start of the first year to two years past the last date: the last rules
        // stay open-ended, so an endless series is covered too.
        let from = Utc
            .with_ymd_and_hms(from.year(), 1, 1, 0, 0, 0)
            .single()
            .map_or(0, |t| t.timestamp() - 86_400);
        let to = Utc
            .with_ymd_and_hms(to.year() + 2, 1, 1, 0, 0, 0)
            .single()
            .map_or(from, |t| t.timestamp());
        if cal.ical.add_timezone(tz.name(), from, to).is_none() {
            return Err(ConvertError::Write("VTIMEZONE"));
        }
    }

    dedup_keep_order(&mut notes);
    Ok(CalendarResource {
        uid,
        text: cal.ical.to_string(),
        notes,
    })
}

/// For a series in a zone without an IANA equivalent (written in UTC), a fixed-offset zone
/// that puts its first occurrence on the local date the pattern names, when that is not the
/// UTC date: a Monday 09:00 meeting at UTC+10 starts on Sunday 23:00 UTC, and FREQ=WEEKLY;
/// BYDAY=MO evaluated in UTC would move it a day. Any whole-hour offset that crosses the same
/// midnight gives the same instants for a zone of fixed offset, so the smallest one is used.
fn local_date_zone(
    master: &Event,
    rec: &crate::graph::types::PatternedRecurrence,
    notes: &mut Vec<String>,
) -> Result<Option<Zone>, ConvertError> {
    let start = master
        .start
        .as_ref()
        .ok_or(ConvertError::Missing("start"))?;
    let at = timezone::instant_of("start", start, &mut Vec::new())?;
    let date = at.date_naive();
    if recurrence::allows(rec, date)? {
        return Ok(None);
    }
    let secs = i64::from(at.time().num_seconds_from_midnight());
    let hours = if date
        .succ_opt()
        .map(|d| recurrence::allows(rec, d))
        .transpose()?
        == Some(true)
    {
        // Local date is the next day: cross midnight forward.
        (86_400 - secs + 3_599) / 3_600
    } else if date
        .pred_opt()
        .map(|d| recurrence::allows(rec, d))
        .transpose()?
        == Some(true)
    {
        -(secs / 3_600) - 1
    } else {
        return Ok(None);
    };
    if !(-12..=14).contains(&hours) {
        return Ok(None);
    }
    let name = format!("Etc/GMT{:+}", -hours);
    let Ok(tz) = name.parse::<chrono_tz::Tz>() else {
        return Ok(None);
    };
    notes.push(format!(
        "the series' local dates are {} its UTC dates; written in {name} instead of UTC",
        if hours > 0 { "ahead of" } else { "behind" }
    ));
    Ok(Some(Zone::Iana(tz)))
}

/// The series' UID (see the module doc).
pub fn series_uid(master: &Event) -> String {
    [master.uid.as_deref(), master.ical_uid.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|u| !u.is_empty())
        .map_or_else(
            || super::uid_from_graph_id("event", &master.id),
            str::to_string,
        )
}

pub(crate) fn dedup_keep_order(notes: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    notes.retain(|n| seen.insert(n.clone()));
}

/// The date in `OID.{masterId}.{yyyy-mm-dd}` (beta `cancelledOccurrences`).
fn cancelled_date(oid: &str) -> Option<NaiveDate> {
    let (_, date) = oid.rsplit_once('.')?;
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

fn instant_of_partial(p: &PartialDateTime) -> Option<DateTime<Utc>> {
    let date = NaiveDate::from_ymd_opt(i32::from(p.year?), u32::from(p.month?), u32::from(p.day?))?;
    let t = date.and_hms_opt(
        u32::from(p.hour.unwrap_or(0)),
        u32::from(p.minute.unwrap_or(0)),
        u32::from(p.second.unwrap_or(0)),
    )?;
    Some(t.and_utc())
}

/// An iCalendar object under construction: VCALENDAR is component 0.
pub(crate) struct CalendarObject {
    pub(crate) ical: ICalendar,
}

impl CalendarObject {
    pub(crate) fn new() -> CalendarObject {
        let mut root = ICalendarComponent::new(ICalendarComponentType::VCalendar);
        root.add_property(ICalendarProperty::Version, "2.0");
        root.add_property(ICalendarProperty::Prodid, PRODID);
        CalendarObject {
            ical: ICalendar {
                components: vec![root],
            },
        }
    }

    fn add_child(&mut self, parent: usize, kind: ICalendarComponentType) -> usize {
        let id = self.ical.components.len();
        self.ical.components.push(ICalendarComponent::new(kind));
        if let Some(p) = self.ical.components.get_mut(parent) {
            p.component_ids.push(id as u32);
        }
        id
    }

    fn add_event(&mut self) -> usize {
        self.add_child(0, ICalendarComponentType::VEvent)
    }

    pub(crate) fn add_todo(&mut self) -> usize {
        self.add_child(0, ICalendarComponentType::VTodo)
    }

    pub(crate) fn component(&mut self, id: usize) -> &mut ICalendarComponent {
        // Ids come from add_child, so they are in range; fall back to the root otherwise.
        let id = if id < self.ical.components.len() {
            id
        } else {
            0
        };
        &mut self.ical.components[id]
    }

    /// A display VALARM under `parent`.
    pub(crate) fn add_alarm(&mut self, parent: usize, trigger: ICalendarEntry, text: &str) {
        let id = self.add_child(parent, ICalendarComponentType::VAlarm);
        let alarm = self.component(id);
        alarm.add_property(ICalendarProperty::Action, ICalendarAction::Display);
        alarm.entries.push(trigger);
        alarm.add_property(ICalendarProperty::Description, text);
    }
}

/// A start and end as written, and how to place occurrences of the series.
struct SeriesTimes {
    all_day: bool,
    anchor: Anchor,
    /// DTEND: a wall time in `zone` or, all-day, a date.
    end: Anchor,
}

impl SeriesTimes {
    fn of(event: &Event, zone: Zone, notes: &mut Vec<String>) -> Result<SeriesTimes, ConvertError> {
        let start = event.start.as_ref().ok_or(ConvertError::Missing("start"))?;
        if event.is_all_day {
            // All-day events float: their date is the date part, whatever zone it is in.
            let date = |raw: &str, field| {
                timezone::parse_wall(raw)
                    .map(|t| t.date())
                    .ok_or_else(|| ConvertError::invalid(field, raw, "not a date-time"))
            };
            let start_date = date(&start.date_time, "start")?;
            let end_date = match &event.end {
                Some(end) => date(&end.date_time, "end")?,
                None => start_date,
            };
            let end_date = if end_date <= start_date {
                start_date + Duration::days(1)
            } else {
                end_date
            };
            return Ok(SeriesTimes {
                all_day: true,
                anchor: Anchor::Date(start_date),
                end: Anchor::Date(end_date),
            });
        }
        let start_at = timezone::instant_of("start", start, notes)?;
        let end_at = match &event.end {
            Some(end) => timezone::instant_of("end", end, notes)?,
            None => {
                notes.push(format!(
                    "event {} has no end; written as zero length",
                    event.id
                ));
                start_at
            }
        };
        let end_at = end_at.max(start_at);
        Ok(SeriesTimes {
            all_day: false,
            anchor: Anchor::Wall {
                wall: zone.wall(start_at),
                zone,
            },
            end: Anchor::Wall {
                wall: zone.wall(end_at),
                zone,
            },
        })
    }

    fn shift_days(&mut self, days: i64) {
        let by = Duration::days(days);
        for a in [&mut self.anchor, &mut self.end] {
            *a = match *a {
                Anchor::Date(d) => Anchor::Date(d + by),
                Anchor::Wall { wall, zone } => Anchor::Wall {
                    wall: wall + by,
                    zone,
                },
            };
        }
    }

    fn start_instant(&self) -> DateTime<Utc> {
        instant(&self.anchor)
    }

    fn end_instant(&self) -> DateTime<Utc> {
        instant(&self.end)
    }

    fn write(&self, c: &mut ICalendarComponent) {
        for (name, a) in [
            (ICalendarProperty::Dtstart, &self.anchor),
            (ICalendarProperty::Dtend, &self.end),
        ] {
            if let Ok(entry) = time_entry(name, a) {
                c.entries.push(entry);
            }
        }
    }

    /// The occurrence of the series on `date` (cancelled occurrences name a date).
    fn occurrence_on(&self, date: NaiveDate) -> Occurrence {
        match self.anchor {
            Anchor::Date(_) => Occurrence {
                at: date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
                anchor: Anchor::Date(date),
            },
            Anchor::Wall { wall, zone } => {
                let wall = date.and_time(wall.time());
                Occurrence {
                    at: zone.instant(wall),
                    anchor: Anchor::Wall { wall, zone },
                }
            }
        }
    }

    /// Whether `o` is an instance of the series' rule: a pattern date within the range, at the
    /// series' start time.
    fn is_instance(
        &self,
        rec: &crate::graph::types::PatternedRecurrence,
        o: &Occurrence,
    ) -> Result<bool, ConvertError> {
        let same_time = match (self.anchor, o.anchor) {
            (Anchor::Wall { wall, .. }, Anchor::Wall { wall: at, .. }) => wall.time() == at.time(),
            _ => true,
        };
        Ok(same_time && recurrence::is_occurrence(rec, self.anchor.date(), o.anchor.date())?)
    }

    /// The occurrence whose original start is `original` (an instant, from `originalStart`).
    fn occurrence_at(
        &self,
        original: DateTime<Utc>,
        master: &Event,
        notes: &mut Vec<String>,
    ) -> Occurrence {
        match self.anchor {
            Anchor::Date(_) => {
                // An all-day occurrence's originalStart is its date's midnight: in UTC when
                // Graph rendered it so, else in the series' original zone.
                let date = if original.time() == chrono::NaiveTime::MIN {
                    original.date_naive()
                } else {
                    timezone::first_known(&[master.original_start_time_zone.as_deref()], notes)
                        .wall(original)
                        .date()
                };
                self.occurrence_on(date)
            }
            Anchor::Wall { zone, .. } => Occurrence {
                at: original,
                anchor: Anchor::Wall {
                    wall: zone.wall(original),
                    zone,
                },
            },
        }
    }
}

fn instant(a: &Anchor) -> DateTime<Utc> {
    match a {
        Anchor::Date(d) => d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
        Anchor::Wall { wall, zone } => zone.instant(*wall),
    }
}

/// One occurrence of a series, as RECURRENCE-ID or EXDATE writes it: the same value type and
/// zone as the master's DTSTART (RFC 5545 §3.8.4.4, §3.8.5.1).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Occurrence {
    at: DateTime<Utc>,
    anchor: Anchor,
}

impl Occurrence {
    fn sort_key(&self) -> DateTime<Utc> {
        self.at
    }

    fn params(&self) -> Vec<ICalendarParameter> {
        time_params(&self.anchor)
    }

    fn value(&self) -> Result<PartialDateTime, ConvertError> {
        time_value(&self.anchor)
    }
}

fn time_params(a: &Anchor) -> Vec<ICalendarParameter> {
    match a {
        Anchor::Date(_) => vec![ICalendarParameter::value(ICalendarValueType::Date)],
        Anchor::Wall { zone, .. } => zone
            .tzid()
            .map(|tz| vec![ICalendarParameter::tzid(tz.to_string())])
            .unwrap_or_default(),
    }
}

fn time_value(a: &Anchor) -> Result<PartialDateTime, ConvertError> {
    match a {
        Anchor::Date(d) => partial_date(*d),
        Anchor::Wall { wall, zone } => partial_date_time(*wall, zone.tzid().is_none()),
    }
}

pub(crate) fn time_entry(
    name: ICalendarProperty,
    a: &Anchor,
) -> Result<ICalendarEntry, ConvertError> {
    Ok(ICalendarEntry::new(name)
        .with_params(time_params(a))
        .with_value(time_value(a)?))
}

/// A UTC date-time property from a Graph DateTimeOffset (`2024-03-01T08:15:00Z`).
pub(crate) fn utc_stamp(raw: Option<&str>) -> Option<PartialDateTime> {
    let t = timezone::parse_wall(raw?)?;
    partial_date_time(t, true).ok()
}

/// DTSTAMP, CREATED, LAST-MODIFIED. DTSTAMP is the last revision (RFC 5545 §3.8.7.2, no
/// METHOD); without one it is the Unix epoch, so output stays the same on every run.
pub(crate) fn write_stamps(
    c: &mut ICalendarComponent,
    created: Option<&str>,
    modified: Option<&str>,
) {
    let stamp = utc_stamp(modified)
        .or_else(|| utc_stamp(created))
        .unwrap_or_else(|| PartialDateTime::from_utc_timestamp(0));
    c.add_dtstamp(stamp);
    if let Some(t) = utc_stamp(created) {
        c.add_property(ICalendarProperty::Created, t);
    }
    if let Some(t) = utc_stamp(modified) {
        c.add_property(ICalendarProperty::LastModified, t);
    }
}

/// SUMMARY/DESCRIPTION/X-ALT-DESC from a title and a body; `extra` is appended to the text.
pub(crate) fn write_text_body(
    c: &mut ICalendarComponent,
    title: Option<&str>,
    body: Option<&ItemBody>,
    extra: &str,
) {
    if let Some(s) = title.map(str::trim).filter(|s| !s.is_empty()) {
        c.add_property(ICalendarProperty::Summary, s);
    }
    let content = body
        .and_then(|b| b.content.as_deref())
        .filter(|s| !s.trim().is_empty());
    let is_html = body.is_some_and(ItemBody::is_html);
    let mut text = match content {
        Some(html) if is_html => html_text::to_text(html),
        Some(t) => t.replace("\r\n", "\n").trim_end().to_string(),
        None => String::new(),
    };
    if !extra.is_empty() {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(extra);
    }
    if !text.is_empty() {
        c.add_property(ICalendarProperty::Description, text);
    }
    if let (Some(html), true) = (content, is_html) {
        c.add_property_with_params(
            ICalendarProperty::Other("X-ALT-DESC".into()),
            [ICalendarParameter::fmttype("text/html".to_string())],
            html.replace("\r\n", "\n"),
        );
    }
}

pub(crate) fn write_categories(c: &mut ICalendarComponent, categories: &[String]) {
    let values: Vec<ICalendarValue> = categories
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| ICalendarValue::Text(s.to_string()))
        .collect();
    if !values.is_empty() {
        c.entries
            .push(ICalendarEntry::new(ICalendarProperty::Categories).with_values(values));
    }
}

/// PRIORITY from Graph's importance (RFC 5545 §3.8.1.9: 1 highest, 5 normal, 9 lowest).
pub(crate) fn write_priority(c: &mut ICalendarComponent, importance: Option<&str>) {
    let p = match importance {
        Some("high") => 1,
        Some("normal") => 5,
        Some("low") => 9,
        _ => return,
    };
    c.add_property(ICalendarProperty::Priority, p as i64);
}

/// A TRIGGER before the start: `-PT15M`, `-P1D`, `-P1W` (weeks alone, as §3.3.6 requires).
fn trigger_before(minutes: i64) -> ICalendarEntry {
    let m = minutes.unsigned_abs();
    let mut d = ICalendarDuration {
        neg: minutes > 0,
        weeks: 0,
        days: 0,
        hours: 0,
        minutes: 0,
        seconds: 0,
    };
    if m > 0 && m.is_multiple_of(7 * 1440) {
        d.weeks = u32::try_from(m / (7 * 1440)).unwrap_or(u32::MAX);
    } else {
        d.days = u32::try_from(m / 1440).unwrap_or(u32::MAX);
        d.hours = (m % 1440 / 60) as u32;
        d.minutes = (m % 60) as u32;
    }
    ICalendarEntry::new(ICalendarProperty::Trigger).with_value(d)
}

/// Everything but the times: text, people, status, alarm, UID and stamps.
fn write_details(
    cal: &mut CalendarObject,
    id: usize,
    event: &Event,
    uid: &str,
    body_extra: &str,
) -> Result<(), ConvertError> {
    let c = cal.component(id);
    c.add_uid(uid);
    write_stamps(
        c,
        event.created_date_time.as_deref(),
        event.last_modified_date_time.as_deref(),
    );
    write_text_body(c, event.subject.as_deref(), event.body.as_ref(), body_extra);

    let location = event
        .location
        .iter()
        .chain(&event.locations)
        .filter_map(|l| l.display_name.as_deref().map(str::trim))
        .filter(|s| !s.is_empty())
        .fold(Vec::<&str>::new(), |mut acc, s| {
            if !acc.contains(&s) {
                acc.push(s);
            }
            acc
        });
    if !location.is_empty() {
        c.add_property(ICalendarProperty::Location, location.join("; "));
    }
    write_categories(c, &event.categories);

    // Sensitivity: Outlook's "personal" and "private" are both private to others.
    let class = match event.sensitivity.as_deref() {
        Some("normal") => Some(ICalendarClassification::Public),
        Some("personal") | Some("private") => Some(ICalendarClassification::Private),
        Some("confidential") => Some(ICalendarClassification::Confidential),
        _ => None,
    };
    if let Some(class) = class {
        c.add_property(ICalendarProperty::Class, class);
    }
    // showAs: TRANSP for every client, Outlook's own status for those that read it.
    if let Some(show_as) = event.show_as.as_deref() {
        let busy = match show_as {
            "free" => Some("FREE"),
            "tentative" => Some("TENTATIVE"),
            "busy" => Some("BUSY"),
            "oof" => Some("OOF"),
            "workingElsewhere" => Some("WORKINGELSEWHERE"),
            _ => None,
        };
        if let Some(busy) = busy {
            c.add_property(
                ICalendarProperty::Transp,
                if busy == "FREE" {
                    ICalendarTransparency::Transparent
                } else {
                    ICalendarTransparency::Opaque
                },
            );
            c.add_property(
                ICalendarProperty::Other("X-MICROSOFT-CDO-BUSYSTATUS".into()),
                busy,
            );
        }
    }
    if event.is_all_day {
        c.add_property(
            ICalendarProperty::Other("X-MICROSOFT-CDO-ALLDAYEVENT".into()),
            "TRUE",
        );
    }
    write_priority(c, event.importance.as_deref());
    if event.is_cancelled == Some(true) {
        c.add_property(ICalendarProperty::Status, ICalendarStatus::Cancelled);
    }

    let join_url = event
        .online_meeting
        .as_ref()
        .and_then(|m| m.join_url.as_deref())
        .or(event.online_meeting_url.as_deref())
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if let Some(url) = join_url {
        // RFC 7986 §5.11 for clients that know it, URL for those that do not.
        c.add_property_with_params(
            ICalendarProperty::Conference,
            [
                ICalendarParameter::value(ICalendarValueType::Uri),
                ICalendarParameter::feature(ICalendarFeatureType::Video),
                ICalendarParameter::label("Join online meeting".to_string()),
            ],
            Uri::Location(url.to_string()),
        );
        c.add_property(ICalendarProperty::Url, Uri::Location(url.to_string()));
    }

    let attendees: Vec<_> = event
        .attendees
        .iter()
        .filter_map(|a| {
            let email = a.email_address.as_ref()?;
            let address = email
                .address
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())?;
            Some((a, email.name.as_deref(), address))
        })
        .collect();
    if !attendees.is_empty() {
        let organizer = event
            .organizer
            .as_ref()
            .and_then(|o| o.email_address.as_ref())
            .and_then(|e| {
                let address = e
                    .address
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())?;
                Some((e.name.as_deref(), address))
            });
        if let Some((name, address)) = organizer {
            let mut params = cn(name);
            params.push(ICalendarParameter::schedule_agent(
                ICalendarScheduleAgentValue::Client,
            ));
            c.add_property_with_params(
                ICalendarProperty::Organizer,
                params,
                Uri::Location(format!("mailto:{address}")),
            );
        }
        for (a, name, address) in attendees {
            let mut params = cn(name);
            let (cutype, role) = match a.kind.as_deref() {
                Some("optional") => (None, ICalendarParticipationRole::OptParticipant),
                Some("resource") => (
                    Some(ICalendarUserTypes::Resource),
                    ICalendarParticipationRole::NonParticipant,
                ),
                _ => (None, ICalendarParticipationRole::ReqParticipant),
            };
            if let Some(cutype) = cutype {
                params.push(ICalendarParameter::cutype(cutype));
            }
            params.push(ICalendarParameter::role(role));
            let partstat = match a.status.as_ref().and_then(|s| s.response.as_deref()) {
                Some("accepted") | Some("organizer") => ICalendarParticipationStatus::Accepted,
                Some("declined") => ICalendarParticipationStatus::Declined,
                Some("tentativelyAccepted") => ICalendarParticipationStatus::Tentative,
                _ => ICalendarParticipationStatus::NeedsAction,
            };
            params.push(ICalendarParameter::partstat(partstat));
            params.push(ICalendarParameter::schedule_agent(
                ICalendarScheduleAgentValue::Client,
            ));
            c.add_property_with_params(
                ICalendarProperty::Attendee,
                params,
                Uri::Location(format!("mailto:{address}")),
            );
        }
    }

    if event.is_reminder_on == Some(true) {
        let minutes = event.reminder_minutes_before_start.unwrap_or(15).max(0);
        let text = event
            .subject
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or("Reminder");
        cal.add_alarm(id, trigger_before(minutes), text);
    }
    Ok(())
}

fn cn(name: Option<&str>) -> Vec<ICalendarParameter> {
    name.map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| vec![ICalendarParameter::cn(super::parameter_text(n))])
        .unwrap_or_default()
}

/// Inline file attachments while they fit the budget; list the others in `listed`.
fn write_attachments(
    c: &mut ICalendarComponent,
    attachments: &[EventAttachment],
    listed: &mut String,
    notes: &mut Vec<String>,
) {
    let mut budget = INLINE_ATTACHMENT_BUDGET;
    let mut left_out = Vec::new();
    for a in attachments {
        let name = a.name.as_deref().unwrap_or("attachment");
        let is_file = a
            .odata_type
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case("#microsoft.graph.fileAttachment"));
        let bytes = a
            .content_bytes
            .as_deref()
            .filter(|_| is_file)
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            });
        match bytes {
            Some(bytes) if bytes.len() <= budget => {
                budget -= bytes.len();
                let mut params = vec![ICalendarParameter::value(ICalendarValueType::Binary)];
                if let Some(ct) = a.content_type.as_deref().filter(|s| !s.is_empty()) {
                    params.push(ICalendarParameter::fmttype(ct.to_string()));
                }
                // FILENAME: RFC 8607 §4.2.
                params.push(ICalendarParameter::filename(name.to_string()));
                c.add_property_with_params(ICalendarProperty::Attach, params, bytes);
            }
            _ => {
                let size = a.size.map(|s| format!(" ({s} bytes)")).unwrap_or_default();
                left_out.push(format!("- {name}{size}"));
                notes.push(format!(
                    "attachment {name:?} listed in the description, not inlined"
                ));
            }
        }
    }
    if !left_out.is_empty() {
        listed.push_str("Attachments not carried over:\n");
        listed.push_str(&left_out.join("\n"));
    }
}
