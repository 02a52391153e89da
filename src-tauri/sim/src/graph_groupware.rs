//! The Graph routes for calendars, events, contacts and To Do, under `/users/{id}/…`, in
//! v1.0 and beta (the beta-only event properties `uid`, `occurrenceId`,
//! `cancelledOccurrences`, `exceptionOccurrences` and the calendar events delta answer only
//! under `/beta`). Sources, all Graph docs: resources/event.md (v1.0 and beta),
//! api/calendar-list-events.md, api/event-list-instances.md, api/calendar-list-calendarview.md,
//! api/event-get.md (`Prefer: outlook.timezone`), api/attachment-get.md, resources/contact.md,
//! api/user-list-contactfolders.md, api/contactfolder-list-childfolders.md,
//! api/profilephoto-get.md, resources/todotasklist.md, resources/todotask.md.
//!
//! Event times are rendered in UTC unless `Prefer: outlook.timezone` names a Windows or IANA
//! zone; all-day events keep their midnights in any zone. `startDateTime`/`endDateTime` are
//! read with their offset, or as UTC without one (calendar-list-calendarview.md: "not impacted
//! by the value of the Prefer: outlook.timezone header").

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::calendar::{
    expand, wall_in, weekday_name, Calendar, Event, EventException, Occurrence, RangeEnd,
    Recurrence,
};
use crate::graph::{fnv, iso, page, param, percent_encode, select, unknown_property, Ctx};
use crate::groupware::{Address, Contact, ContactFolder, TodoList, TodoTask};
use crate::tenant::User;

/// A groupware collection whose changes the delta log tracks.
pub(crate) enum Collection {
    Events,
    Contacts,
    ContactFolders,
    TodoLists,
    Tasks,
}

/// The change-log key of a collection (`id`: the calendar, folder or list; empty for the
/// per-user collections).
pub(crate) fn collection_key(c: Collection, id: &str) -> String {
    match c {
        Collection::Events => format!("events:{id}"),
        Collection::Contacts => format!("contacts:{id}"),
        Collection::ContactFolders => "contactFolders".into(),
        Collection::TodoLists => "todoLists".into(),
        Collection::Tasks => format!("tasks:{id}"),
    }
}

const CALENDAR_PROPERTIES: &[&str] = &[
    "id",
    "name",
    "color",
    "hexColor",
    "isDefaultCalendar",
    "changeKey",
    "canShare",
    "canViewPrivateItems",
    "canEdit",
    "allowedOnlineMeetingProviders",
    "defaultOnlineMeetingProvider",
    "isTallyingResponses",
    "isRemovable",
    "owner",
];

/// resources/calendargroup.md.
const CALENDAR_GROUP_PROPERTIES: &[&str] = &["id", "name", "classId", "changeKey", "calendars"];

/// v1.0 event properties (resources/event.md).
const EVENT_PROPERTIES: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "transactionId",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "iCalUId",
    "reminderMinutesBeforeStart",
    "isReminderOn",
    "hasAttachments",
    "subject",
    "bodyPreview",
    "importance",
    "sensitivity",
    "isAllDay",
    "isCancelled",
    "isOrganizer",
    "responseRequested",
    "seriesMasterId",
    "showAs",
    "type",
    "webLink",
    "onlineMeetingUrl",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "allowNewTimeProposals",
    "isDraft",
    "hideAttendees",
    "originalStart",
    "responseStatus",
    "body",
    "start",
    "end",
    "location",
    "locations",
    "recurrence",
    "attendees",
    "organizer",
    "onlineMeeting",
    "attachments",
    "calendar",
    "instances",
    "extensions",
    "multiValueExtendedProperties",
    "singleValueExtendedProperties",
];

/// Beta adds these (beta resources/event.md).
const EVENT_BETA_PROPERTIES: &[&str] = &[
    "uid",
    "occurrenceId",
    "cancelledOccurrences",
    "exceptionOccurrences",
];

const CONTACT_PROPERTIES: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "parentFolderId",
    "birthday",
    "fileAs",
    "displayName",
    "givenName",
    "initials",
    "middleName",
    "nickName",
    "surname",
    "title",
    "yomiGivenName",
    "yomiSurname",
    "yomiCompanyName",
    "generation",
    "emailAddresses",
    "imAddresses",
    "jobTitle",
    "companyName",
    "department",
    "officeLocation",
    "profession",
    "businessHomePage",
    "assistantName",
    "manager",
    "homePhones",
    "mobilePhone",
    "businessPhones",
    "homeAddress",
    "businessAddress",
    "otherAddress",
    "spouseName",
    "personalNotes",
    "children",
    "photo",
    "extensions",
    "multiValueExtendedProperties",
    "singleValueExtendedProperties",
];

const CONTACT_FOLDER_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "parentFolderId",
    "childFolders",
    "contacts",
];

const LIST_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "isOwner",
    "isShared",
    "wellknownListName",
    "tasks",
    "extensions",
];

const TASK_PROPERTIES: &[&str] = &[
    "id",
    "title",
    "body",
    "bodyLastModifiedDateTime",
    "categories",
    "completedDateTime",
    "createdDateTime",
    "dueDateTime",
    "hasAttachments",
    "importance",
    "isReminderOn",
    "lastModifiedDateTime",
    "recurrence",
    "reminderDateTime",
    "startDateTime",
    "status",
    "checklistItems",
    "linkedResources",
    "attachments",
    "extensions",
];

/// Routes `rest` (the path after `/users/{id}`) for `u`; `None`: not a groupware path.
pub(crate) fn route(ctx: &Ctx<'_>, rest: &[&str], u: &User) -> Option<Response> {
    let beta = ctx.path.starts_with("/beta/");
    let default = u.calendars.first();
    let calendar = |id: &str| u.calendars.iter().find(|c| c.id == id);
    let default_group = default.map(|c| c.group_id.as_str()).unwrap_or_default();
    let r = match rest {
        // The default group's calendars only: the narrower of the two documented readings
        // (beta api/calendargroup-list-calendars.md: "A user's default calendarGroup.
        // GET /me/calendars"; v1.0 api/user-list-calendars.md now says "All the user's
        // calendars"). Every calendar is reachable through its group.
        ["calendars"] | ["calendarGroup", "calendars"] => calendars_of_group(ctx, u, default_group),
        ["calendarGroups"] => {
            if let Some(r) = unknown_property(ctx, CALENDAR_GROUP_PROPERTIES, "calendarGroup") {
                return Some(r);
            }
            let fields = ctx.select();
            let groups = calendar_groups(u);
            page(ctx, "calendarGroups", &groups, 10, 1000, |g| {
                select(fields.as_deref(), calendar_group_json(g))
            })
        }
        ["calendarGroups", g] => {
            if let Some(r) = unknown_property(ctx, CALENDAR_GROUP_PROPERTIES, "calendarGroup") {
                return Some(r);
            }
            match calendar_groups(u).into_iter().find(|x| x.id == *g) {
                Some(x) => axum::Json(select(ctx.select().as_deref(), calendar_group_json(&x)))
                    .into_response(),
                None => not_found(ctx),
            }
        }
        ["calendarGroups", g, "calendars"] => {
            if !u.calendars.iter().any(|c| c.group_id == *g) {
                return Some(not_found(ctx));
            }
            calendars_of_group(ctx, u, g)
        }
        ["calendars", c] | ["calendarGroups", _, "calendars", c] => {
            one_calendar(ctx, u, calendar(c))
        }
        ["calendar"] => one_calendar(ctx, u, default),
        ["calendars", c, "events"] => events(ctx, calendar(c)),
        ["calendar", "events"] | ["events"] => events(ctx, default),
        ["calendars", c, "events", "delta"] => events_delta(ctx, u, calendar(c), beta),
        ["calendar", "events", "delta"] | ["events", "delta"] => {
            events_delta(ctx, u, default, beta)
        }
        ["calendars", c, "calendarView"] => calendar_view(ctx, calendar(c)),
        ["calendarView", "delta"] | ["calendar", "calendarView", "delta"] => match default {
            Some(cal) => crate::delta::calendar_view(ctx, u, cal, window(ctx).ok()),
            None => not_found(ctx),
        },
        ["calendar", "calendarView"] | ["calendarView"] => calendar_view(ctx, default),
        ["calendars", _, "events", e, more @ ..]
        | ["calendar", "events", e, more @ ..]
        | ["events", e, more @ ..] => event_route(ctx, u, e, more, beta),
        ["contacts"] => contacts(ctx, u, u.contact_folders.first()),
        ["contacts", "delta"] => contacts_delta(ctx, u, u.contact_folders.first()),
        ["contactFolders"] => contact_folders(ctx, u, u.contact_folders.first()),
        ["contactFolders", "delta"] => contact_folders_delta(ctx, u),
        ["contactFolders", f] => {
            if let Some(r) = unknown_property(ctx, CONTACT_FOLDER_PROPERTIES, "contactFolder") {
                return Some(r);
            }
            match contact_folder(u, f) {
                Some(f) => axum::Json(select(ctx.select().as_deref(), contact_folder_json(u, f)))
                    .into_response(),
                None => not_found(ctx),
            }
        }
        ["contactFolders", f, "childFolders"] => match contact_folder(u, f) {
            Some(f) => contact_folders(ctx, u, Some(f)),
            None => not_found(ctx),
        },
        ["contactFolders", f, "contacts"] => match contact_folder(u, f) {
            Some(f) => contacts(ctx, u, Some(f)),
            None => not_found(ctx),
        },
        ["contactFolders", f, "contacts", "delta"] => match contact_folder(u, f) {
            Some(f) => contacts_delta(ctx, u, Some(f)),
            None => not_found(ctx),
        },
        ["contacts", c, more @ ..] | ["contactFolders", _, "contacts", c, more @ ..] => {
            contact_route(ctx, u, c, more)
        }
        ["todo", "lists"] => {
            if let Some(r) = unknown_property(ctx, LIST_PROPERTIES, "todoTaskList") {
                return Some(r);
            }
            let fields = ctx.select();
            page(ctx, "todo/lists", &u.todo_lists, 10, 1000, |l| {
                select(fields.as_deref(), list_json(l))
            })
        }
        ["todo", "lists", "delta"] => lists_delta(ctx, u),
        ["todo", "lists", l] => match u.todo_lists.iter().find(|x| x.id == *l) {
            Some(l) => {
                if let Some(r) = unknown_property(ctx, LIST_PROPERTIES, "todoTaskList") {
                    return Some(r);
                }
                axum::Json(select(ctx.select().as_deref(), list_json(l))).into_response()
            }
            None => not_found(ctx),
        },
        ["todo", "lists", l, "tasks"] => match u.todo_lists.iter().find(|x| x.id == *l) {
            Some(l) => tasks(ctx, l),
            None => not_found(ctx),
        },
        ["todo", "lists", l, "tasks", "delta"] => match u.todo_lists.iter().find(|x| x.id == *l) {
            Some(l) => tasks_delta(ctx, u, l),
            None => not_found(ctx),
        },
        ["todo", "lists", l, "tasks", t, more @ ..] => {
            let task = u
                .todo_lists
                .iter()
                .find(|x| x.id == *l)
                .and_then(|l| l.tasks.iter().find(|x| x.id == *t));
            match (task, more) {
                (Some(t), []) => one_task(ctx, t),
                (Some(t), ["checklistItems"]) => page(
                    ctx,
                    "checklistItems",
                    &t.checklist,
                    100,
                    1000,
                    checklist_json,
                ),
                (Some(t), ["linkedResources"]) => {
                    page(ctx, "linkedResources", &linked(t), 100, 1000, Clone::clone)
                }
                (Some(_), _) => return None,
                (None, _) => not_found(ctx),
            }
        }
        _ => return None,
    };
    Some(r)
}

fn not_found(ctx: &Ctx<'_>) -> Response {
    ctx.error(
        StatusCode::NOT_FOUND,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.as_bytes())
}

/// A stable `changeKey` from the parts that change.
fn change_key(parts: &[&[u8]]) -> String {
    format!(
        "DwAAABYAAAA{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(fnv(parts).to_be_bytes())
    )
}

// ---------------------------------------------------------------- calendars

/// A calendar group: its id and name, in the order its calendars first appear.
struct CalendarGroup {
    id: String,
    name: String,
}

fn calendar_groups(u: &User) -> Vec<CalendarGroup> {
    let mut groups: Vec<CalendarGroup> = Vec::new();
    for c in &u.calendars {
        if !groups.iter().any(|g| g.id == c.group_id) {
            groups.push(CalendarGroup {
                id: c.group_id.clone(),
                name: c.group_name.clone(),
            });
        }
    }
    groups
}

fn calendar_group_json(g: &CalendarGroup) -> Value {
    // classId: a GUID, stable per group.
    let h = format!("{:016x}", crate::graph::fnv(&[g.id.as_bytes()]));
    json!({"id": g.id, "name": g.name,
           "classId": format!("0006f0b7-0000-0000-c000-{}", &h[..12]),
           "changeKey": change_key(&[g.id.as_bytes(), g.name.as_bytes()])})
}

fn calendars_of_group(ctx: &Ctx<'_>, u: &User, group: &str) -> Response {
    if let Some(r) = unknown_property(ctx, CALENDAR_PROPERTIES, "calendar") {
        return r;
    }
    let fields = ctx.select();
    let of_group: Vec<&Calendar> = u.calendars.iter().filter(|c| c.group_id == group).collect();
    page(ctx, "calendars", &of_group, 10, 1000, |c| {
        select(fields.as_deref(), calendar_json(u, c))
    })
}

/// resources/calendar.md: `owner` is the user for a calendar the user created, the sharer for
/// a calendar shared with the user; only the creator can share it (`canShare`).
fn calendar_json(u: &User, c: &Calendar) -> Value {
    let own = c.shared_by.is_none();
    let (owner_name, owner_address) = match &c.shared_by {
        Some((name, address)) => (name.as_str(), address.as_str()),
        None => (u.display_name.as_str(), u.mail.as_str()),
    };
    json!({"id": c.id, "name": c.name, "color": c.color, "hexColor": c.hex_color,
           "isDefaultCalendar": c.is_default,
           "changeKey": change_key(&[c.id.as_bytes(), c.name.as_bytes()]),
           "canShare": own, "canViewPrivateItems": own, "canEdit": own,
           "allowedOnlineMeetingProviders": ["teamsForBusiness"],
           "defaultOnlineMeetingProvider": "teamsForBusiness",
           "isTallyingResponses": own, "isRemovable": !c.is_default,
           "owner": {"name": owner_name, "address": owner_address}})
}

fn one_calendar(ctx: &Ctx<'_>, u: &User, c: Option<&Calendar>) -> Response {
    if let Some(r) = unknown_property(ctx, CALENDAR_PROPERTIES, "calendar") {
        return r;
    }
    match c {
        Some(c) => axum::Json(select(ctx.select().as_deref(), calendar_json(u, c))).into_response(),
        None => not_found(ctx),
    }
}

/// An item of a calendar as Graph shows it.
#[derive(Clone, Copy)]
pub(crate) enum Item<'a> {
    /// A single instance or a series master.
    Event(&'a Event),
    /// An unmodified occurrence of a series: its pattern date.
    Occurrence(&'a Event, Date),
    Exception(&'a Event, &'a EventException),
}

impl<'a> Item<'a> {
    fn of(master: &'a Event, o: &Occurrence) -> Item<'a> {
        if master.recurrence.is_none() {
            return Item::Event(master);
        }
        match o
            .exception_id
            .as_deref()
            .and_then(|id| master.exceptions.iter().find(|x| x.id == id))
        {
            Some(x) => Item::Exception(master, x),
            None => Item::Occurrence(master, o.original_date),
        }
    }

    fn event(&self) -> &'a Event {
        match self {
            Item::Event(e) | Item::Occurrence(e, _) | Item::Exception(e, _) => e,
        }
    }

    /// The id of the single instance or series master it belongs to.
    pub(crate) fn master_id(&self) -> &'a str {
        &self.event().id
    }

    /// Its id as Graph shows it.
    fn id(&self) -> String {
        match self {
            Item::Event(e) => e.id.clone(),
            Item::Occurrence(m, d) => occurrence_id(m, *d),
            Item::Exception(_, x) => x.id.clone(),
        }
    }
}

/// The items of `events` overlapping `[from, to)`, by start, with their ids.
pub(crate) fn items_in_window<'a>(
    events: impl Iterator<Item = &'a Event>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Vec<(String, Item<'a>)> {
    let mut found: Vec<(OffsetDateTime, Item<'a>)> = events
        .flat_map(|e| {
            expand(e, from, to)
                .into_iter()
                .map(move |o| (o.start, Item::of(e, &o)))
        })
        .collect();
    found.sort_by_key(|(start, _)| *start);
    found.into_iter().map(|(_, i)| (i.id(), i)).collect()
}

/// An item as calendarView shows it (times in UTC or the Prefer zone).
pub(crate) fn render_item(ctx: &Ctx<'_>, item: Item<'_>) -> Value {
    event_json(ctx, &out_zone(ctx), item)
}

/// An occurrence's id: opaque, resolvable by `GET …/events/{id}`.
fn occurrence_id(master: &Event, date: Date) -> String {
    format!("AAMkOCC{}", b64(&format!("{}|{date}", master.id)))
}

/// An event, exception or occurrence of `u` by id.
fn find_item<'a>(u: &'a User, id: &str) -> Option<Item<'a>> {
    let events = || u.calendars.iter().flat_map(|c| &c.events);
    if let Some(raw) = id.strip_prefix("AAMkOCC") {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?;
        let (master, date) = decoded.rsplit_once('|')?;
        let date = Date::parse(
            date,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .ok()?;
        let m = events().find(|e| e.id == master)?;
        // Only a live slot resolves: a pattern date neither cancelled nor modified.
        return (m.is_pattern_date(date)
            && !m.cancelled.contains(&date)
            && !m.exceptions.iter().any(|x| x.original_date == date))
        .then_some(Item::Occurrence(m, date));
    }
    events().find_map(|e| {
        if e.id == id {
            return Some(Item::Event(e));
        }
        e.exceptions
            .iter()
            .find(|x| x.id == id)
            .map(|x| Item::Exception(e, x))
    })
}

/// The zone responses are rendered in, from `Prefer: outlook.timezone` (default UTC).
struct OutZone {
    name: String,
    tz: jiff::tz::TimeZone,
}

fn out_zone(ctx: &Ctx<'_>) -> OutZone {
    ctx.prefer
        .time_zone
        .as_deref()
        .and_then(|n| crate::calendar::named_zone(n).map(|tz| (n, tz)))
        .map(|(n, tz)| OutZone {
            name: n.to_string(),
            tz,
        })
        .unwrap_or(OutZone {
            name: "UTC".into(),
            tz: jiff::tz::TimeZone::UTC,
        })
}

fn wall_text(w: PrimitiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.0000000",
        w.year(),
        u8::from(w.month()),
        w.day(),
        w.hour(),
        w.minute(),
        w.second()
    )
}

/// A `dateTimeTimeZone` for a wall-clock time of `e` (all-day: floating midnights).
fn date_time_zone(out: &OutZone, e: &Event, wall: PrimitiveDateTime) -> Value {
    let w = if e.is_all_day {
        wall
    } else {
        wall_in(&out.tz, e.zone.instant(wall))
    };
    json!({"dateTime": wall_text(w), "timeZone": out.name})
}

fn recurrence_json(r: &Recurrence, zone: &str) -> Value {
    let p = &r.pattern;
    // Graph returns every field, with zero/empty defaults for the unused ones.
    let (kind, end, count) = match r.range.end {
        RangeEnd::EndDate(d) => ("endDate", d.to_string(), 0),
        RangeEnd::Numbered(n) => ("numbered", "0001-01-01".into(), n),
        RangeEnd::NoEnd => ("noEnd", "0001-01-01".into(), 0),
    };
    json!({
        "pattern": {"type": p.kind.graph_name(), "interval": p.interval, "month": p.month,
            "dayOfMonth": p.day_of_month,
            "daysOfWeek": p.days_of_week.iter().map(|d| weekday_name(*d)).collect::<Vec<_>>(),
            "firstDayOfWeek": weekday_name(p.first_day_of_week), "index": p.index.graph_name()},
        "range": {"type": kind, "startDate": r.range.start_date.to_string(), "endDate": end,
            "recurrenceTimeZone": zone, "numberOfOccurrences": count}
    })
}

/// The v1.0 `iCalUId` of an item: the master's global object id, with the occurrence's date
/// in its instance-date bytes (MS-OXOCAL 2.2.1.27), so it differs per occurrence.
fn ical_uid(e: &Event, date: Option<Date>) -> String {
    match date {
        Some(d) if e.uid.len() >= 40 => format!(
            "{}{:04X}{:02X}{:02X}{}",
            &e.uid[..32],
            d.year(),
            u8::from(d.month()),
            d.day(),
            &e.uid[40..]
        ),
        _ => e.uid.clone(),
    }
}

fn event_json(ctx: &Ctx<'_>, out: &OutZone, item: Item<'_>) -> Value {
    let beta = ctx.path.starts_with("/beta/");
    let e = item.event();
    let (kind, id, start, end, subject, location, date, modified) = match item {
        Item::Event(e) => (
            if e.recurrence.is_some() {
                "seriesMaster"
            } else {
                "singleInstance"
            },
            e.id.clone(),
            e.start,
            e.end,
            e.subject.as_str(),
            e.location.as_str(),
            None,
            e.last_modified,
        ),
        Item::Occurrence(m, d) => (
            "occurrence",
            occurrence_id(m, d),
            m.wall_start_on(d),
            m.wall_end_on(d),
            m.subject.as_str(),
            m.location.as_str(),
            Some(d),
            m.last_modified,
        ),
        Item::Exception(m, x) => (
            "exception",
            x.id.clone(),
            x.start,
            x.end,
            x.subject.as_str(),
            x.location.as_str(),
            Some(x.original_date),
            x.last_modified.max(m.last_modified),
        ),
    };
    let key = change_key(&[
        id.as_bytes(),
        iso(modified).as_bytes(),
        subject.as_bytes(),
        wall_text(start).as_bytes(),
    ]);
    let mut o = Map::new();
    o.insert("@odata.etag".into(), json!(format!("W/\"{key}\"")));
    o.insert("id".into(), json!(id));
    o.insert("createdDateTime".into(), json!(iso(e.created)));
    o.insert("lastModifiedDateTime".into(), json!(iso(modified)));
    o.insert("changeKey".into(), json!(key));
    o.insert("categories".into(), json!(e.categories));
    o.insert("transactionId".into(), Value::Null);
    o.insert("originalStartTimeZone".into(), json!(e.zone.graph_name()));
    o.insert("originalEndTimeZone".into(), json!(e.zone.graph_name()));
    o.insert("iCalUId".into(), json!(ical_uid(e, date)));
    if beta {
        o.insert("uid".into(), json!(e.uid));
        o.insert(
            "occurrenceId".into(),
            match date {
                Some(d) => json!(format!("OID.{}.{d}", e.id)),
                None => Value::Null,
            },
        );
    }
    o.insert(
        "reminderMinutesBeforeStart".into(),
        json!(e.reminder_minutes.unwrap_or(15)),
    );
    o.insert("isReminderOn".into(), json!(e.reminder_minutes.is_some()));
    o.insert("hasAttachments".into(), json!(!e.attachments.is_empty()));
    o.insert("subject".into(), json!(subject));
    if ctx.reads_bodies("Calendars") {
        let text = strip_tags(&e.body_html);
        o.insert(
            "bodyPreview".into(),
            json!(text.chars().take(255).collect::<String>()),
        );
    }
    o.insert("importance".into(), json!(e.importance));
    o.insert("sensitivity".into(), json!(e.sensitivity));
    o.insert("isAllDay".into(), json!(e.is_all_day));
    o.insert("isCancelled".into(), json!(false));
    o.insert("isOrganizer".into(), json!(e.is_organizer));
    o.insert("responseRequested".into(), json!(true));
    o.insert(
        "seriesMasterId".into(),
        if date.is_some() {
            json!(e.id)
        } else {
            Value::Null
        },
    );
    o.insert("showAs".into(), json!(e.show_as));
    o.insert("type".into(), json!(kind));
    o.insert(
        "webLink".into(),
        json!(format!(
            "https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item",
            percent_encode(&id)
        )),
    );
    o.insert("onlineMeetingUrl".into(), Value::Null);
    o.insert(
        "isOnlineMeeting".into(),
        json!(e.online_meeting_url.is_some()),
    );
    o.insert(
        "onlineMeetingProvider".into(),
        json!(if e.online_meeting_url.is_some() {
            "teamsForBusiness"
        } else {
            "unknown"
        }),
    );
    o.insert("allowNewTimeProposals".into(), json!(true));
    o.insert("isDraft".into(), json!(false));
    o.insert("hideAttendees".into(), json!(false));
    if let Some(d) = date {
        o.insert("originalStart".into(), json!(iso(e.at(e.wall_start_on(d)))));
    }
    o.insert(
        "responseStatus".into(),
        if e.is_organizer {
            json!({"response": "organizer", "time": "0001-01-01T00:00:00Z"})
        } else {
            json!({"response": "accepted", "time": iso(e.created)})
        },
    );
    if ctx.reads_bodies("Calendars") {
        o.insert(
            "body".into(),
            json!({"contentType": "html", "content": e.body_html}),
        );
    }
    o.insert("start".into(), date_time_zone(out, e, start));
    o.insert("end".into(), date_time_zone(out, e, end));
    let location = if location.is_empty() {
        json!({"displayName": "", "locationType": "default", "uniqueIdType": "unknown"})
    } else {
        json!({"displayName": location, "locationType": "default",
               "uniqueId": location, "uniqueIdType": "private"})
    };
    o.insert(
        "locations".into(),
        if location["displayName"] == "" {
            json!([])
        } else {
            json!([location.clone()])
        },
    );
    o.insert("location".into(), location);
    o.insert(
        "recurrence".into(),
        match (&e.recurrence, item) {
            (Some(r), Item::Event(_)) => recurrence_json(r, e.zone.graph_name()),
            _ => Value::Null,
        },
    );
    o.insert(
        "attendees".into(),
        Value::Array(
            e.attendees
                .iter()
                .map(|a| {
                    json!({"type": a.kind,
                           "status": {"response": a.response,
                                      "time": a.response_time.map(iso).unwrap_or_else(|| "0001-01-01T00:00:00Z".into())},
                           "emailAddress": {"name": a.name, "address": a.address}})
                })
                .collect(),
        ),
    );
    o.insert(
        "organizer".into(),
        json!({"emailAddress": {"name": e.organizer_name, "address": e.organizer_address}}),
    );
    o.insert(
        "onlineMeeting".into(),
        match &e.online_meeting_url {
            Some(url) => json!({"joinUrl": url}),
            None => Value::Null,
        },
    );
    Value::Object(o)
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("&amp;", "&")
}

/// The event properties this version knows.
fn event_properties(ctx: &Ctx<'_>) -> Vec<&'static str> {
    let mut known = EVENT_PROPERTIES.to_vec();
    if ctx.path.starts_with("/beta/") {
        known.extend(EVENT_BETA_PROPERTIES);
    }
    known
}

fn check_event_select(ctx: &Ctx<'_>) -> Option<Response> {
    unknown_property(ctx, &event_properties(ctx), "event")
}

/// Renders items with `$select` applied.
fn render_items(ctx: &Ctx<'_>, context: &str, items: &[Item<'_>]) -> Response {
    let out = out_zone(ctx);
    let fields = ctx.select();
    page(ctx, context, items, 10, 1000, |i| {
        select(fields.as_deref(), event_json(ctx, &out, *i))
    })
}

/// `GET …/calendars/{id}/events`: single instances and series masters only.
fn events(ctx: &Ctx<'_>, cal: Option<&Calendar>) -> Response {
    if let Some(r) = check_event_select(ctx) {
        return r;
    }
    let Some(cal) = cal else {
        return not_found(ctx);
    };
    let since =
        match param(&ctx.query, "$filter") {
            None => None,
            Some(f) => match modified_since(f) {
                Some(since) => Some(since),
                None => return ctx.error(
                    StatusCode::NOT_IMPLEMENTED,
                    "NotImplemented",
                    "The simulator filters events by 'lastModifiedDateTime ge|gt <instant>' only.",
                ),
            },
        };
    let items: Vec<Item<'_>> = cal
        .events
        .iter()
        .filter(|e| match since {
            Some((at, inclusive)) => e.last_modified > at || (inclusive && e.last_modified == at),
            None => true,
        })
        .map(Item::Event)
        .collect();
    render_items(ctx, "events", &items)
}

/// `lastModifiedDateTime ge|gt <instant>`: the instant and whether it is inclusive (the
/// documented fallback for calendars without delta in v1.0 filters on it).
fn modified_since(filter: &str) -> Option<(OffsetDateTime, bool)> {
    let mut words = filter.split_whitespace();
    let (field, op, value) = (words.next()?, words.next()?, words.next()?);
    if words.next().is_some() || !field.eq_ignore_ascii_case("lastModifiedDateTime") {
        return None;
    }
    let inclusive = match op {
        "ge" => true,
        "gt" => false,
        _ => return None,
    };
    let ts = value.parse::<jiff::Timestamp>().ok()?;
    Some((
        OffsetDateTime::from_unix_timestamp(ts.as_second()).ok()?,
        inclusive,
    ))
}

/// `startDateTime` and `endDateTime`: required; an offset is honoured, none means UTC.
fn window(ctx: &Ctx<'_>) -> Result<(OffsetDateTime, OffsetDateTime), Box<Response>> {
    let read = |name: &str| {
        param(&ctx.query, name).and_then(|v| {
            // A `+` offset arrives as a space when the client did not encode it.
            let v = v.trim().replace(' ', "+");
            let ts = v.parse::<jiff::Timestamp>().ok().or_else(|| {
                v.parse::<jiff::civil::DateTime>()
                    .ok()
                    .or_else(|| {
                        v.parse::<jiff::civil::Date>()
                            .ok()
                            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
                    })
                    .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
                    .map(|z| z.timestamp())
            })?;
            OffsetDateTime::from_unix_timestamp(ts.as_second()).ok()
        })
    };
    match (read("startDateTime"), read("endDateTime")) {
        (Some(s), Some(e)) => Ok((s, e)),
        _ => Err(Box::new(ctx.error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        ))),
    }
}

/// `GET …/calendarView`: every single instance, occurrence and exception overlapping the
/// window, by start.
fn calendar_view(ctx: &Ctx<'_>, cal: Option<&Calendar>) -> Response {
    if let Some(r) = check_event_select(ctx) {
        return r;
    }
    let (from, to) = match window(ctx) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let Some(cal) = cal else {
        return not_found(ctx);
    };
    let items: Vec<Item<'_>> = items_in_window(cal.events.iter(), from, to)
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    render_items(ctx, "events", &items)
}

/// `GET …/events/{id}[/instances|/attachments[/{id}[/$value]]]`.
fn event_route(ctx: &Ctx<'_>, u: &User, id: &str, more: &[&str], beta: bool) -> Response {
    let Some(item) = find_item(u, id) else {
        return not_found(ctx);
    };
    let e = item.event();
    match more {
        [] => {
            if let Some(r) = check_event_select(ctx) {
                return r;
            }
            let out = out_zone(ctx);
            let fields = ctx.select();
            let mut v = select(fields.as_deref(), event_json(ctx, &out, item));
            if let (true, Item::Event(m), Some(map)) = (beta, item, v.as_object_mut()) {
                if m.recurrence.is_some() {
                    // Beta: returned only on $select / $expand of a series master.
                    let wants = |name: &str| {
                        fields
                            .iter()
                            .flatten()
                            .any(|f| f.eq_ignore_ascii_case(name))
                    };
                    if wants("cancelledOccurrences") {
                        let ids: Vec<String> = m
                            .cancelled
                            .iter()
                            .map(|d| format!("OID.{}.{d}", m.id))
                            .collect();
                        map.insert("cancelledOccurrences".into(), json!(ids));
                    }
                    let expand = param(&ctx.query, "$expand").unwrap_or("");
                    if expand
                        .split(',')
                        .any(|x| x.trim().eq_ignore_ascii_case("exceptionOccurrences"))
                    {
                        let xs: Vec<Value> = m
                            .exceptions
                            .iter()
                            .map(|x| event_json(ctx, &out, Item::Exception(m, x)))
                            .collect();
                        map.insert("exceptionOccurrences".into(), Value::Array(xs));
                    }
                }
            }
            if let Some(bad) = param(&ctx.query, "$expand").and_then(|x| {
                x.split(',')
                    .map(str::trim)
                    .find(|x| !(beta && x.eq_ignore_ascii_case("exceptionOccurrences")))
                    .map(str::to_string)
            }) {
                return ctx.error(
                    StatusCode::BAD_REQUEST,
                    "RequestBroker--ParseUri",
                    &format!(
                        "Could not find a property named '{bad}' on type 'microsoft.graph.event'."
                    ),
                );
            }
            axum::Json(v).into_response()
        }
        ["instances"] => {
            if let Some(r) = check_event_select(ctx) {
                return r;
            }
            let (from, to) = match window(ctx) {
                Ok(w) => w,
                Err(r) => return *r,
            };
            let items: Vec<Item<'_>> = match item {
                Item::Event(m) if m.recurrence.is_some() => {
                    expand(m, from, to).iter().map(|o| Item::of(m, o)).collect()
                }
                _ => Vec::new(),
            };
            render_items(ctx, "events", &items)
        }
        ["attachments"] => {
            // A listing carries every file attachment's `contentBytes` unless `$select`
            // leaves them out (api/event-list-attachments.md); Exchange gives up on a response
            // that large after about 30 s with 504, as for large `$value`s (graph.md §MIME
            // export: msgraph-sdk-dotnet#1477, docs-contrib#1220).
            let fields = ctx.select();
            let with_bytes = fields
                .as_ref()
                .is_none_or(|f| f.iter().any(|x| x.eq_ignore_ascii_case("contentBytes")));
            let carried: usize = e.attachments.iter().map(|a| a.bytes.len()).sum();
            if with_bytes && too_large(ctx, carried) {
                return ctx.error(StatusCode::GATEWAY_TIMEOUT, "UnknownError", "");
            }
            page(ctx, "attachments", &e.attachments, 10, 1000, |a| {
                select(fields.as_deref(), attachment_json(a, with_bytes))
            })
        }
        ["attachments", a, rest @ ..] => match (e.attachments.iter().find(|x| x.id == *a), rest) {
            (Some(a), _) if too_large(ctx, a.bytes.len()) => {
                ctx.error(StatusCode::GATEWAY_TIMEOUT, "UnknownError", "")
            }
            (Some(a), []) => axum::Json(attachment_json(a, true)).into_response(),
            (Some(a), ["$value"]) => bytes_response(&a.content_type, a.bytes.clone()),
            _ => not_found(ctx),
        },
        _ => ctx.error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "Resource not found for the segment '{}'.",
                more.last().unwrap_or(&"")
            ),
        ),
    }
}

/// True when `Faults::value_fails_above` says a response carrying `bytes` times out.
fn too_large(ctx: &Ctx<'_>, bytes: usize) -> bool {
    ctx.state
        .config
        .faults
        .value_fails_above
        .is_some_and(|max| bytes as u64 > max)
}

fn attachment_json(a: &crate::calendar::EventAttachment, with_bytes: bool) -> Value {
    let mut v = json!({"@odata.type": "#microsoft.graph.fileAttachment", "id": a.id,
        "lastModifiedDateTime": iso(a.last_modified), "name": a.name,
        "contentType": a.content_type, "size": a.bytes.len(), "isInline": false,
        "contentId": null, "contentLocation": null});
    if with_bytes {
        v["contentBytes"] = json!(base64::engine::general_purpose::STANDARD.encode(&a.bytes));
    }
    v
}

fn bytes_response(content_type: &str, bytes: Vec<u8>) -> Response {
    let len = bytes.len();
    let mut r = bytes.into_response();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// Beta `…/events/delta` of a calendar: single instances and series masters added or
/// changed (a changed occurrence changes its master), `@removed` for deleted ones. v1.0 has
/// no such route (only the default calendar's calendarView/delta). Each event carries only
/// `id`, `type`, `start` and `end` "for performance reasons" (beta api/event-delta.md,
/// "Response"); clients read changed events by id.
fn events_delta(ctx: &Ctx<'_>, u: &User, cal: Option<&Calendar>, beta: bool) -> Response {
    if !beta || !ctx.state.config.beta_events_delta {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidIdMalformed",
            "Id is malformed.",
        );
    }
    let Some(cal) = cal else {
        return not_found(ctx);
    };
    let out = out_zone(ctx);
    let known = event_properties(ctx);
    crate::delta::collection(
        ctx,
        u,
        &collection_key(Collection::Events, &cal.id),
        "Collection(event)",
        "#microsoft.graph.event",
        cal.events.iter().map(|e| e.id.as_str()).collect(),
        &known,
        "event",
        |id, _, _| {
            cal.events.iter().find(|e| e.id == id).map(|e| {
                let full = event_json(ctx, &out, Item::Event(e));
                let mut entry = Map::new();
                entry.insert("@odata.type".into(), json!("#microsoft.graph.event"));
                for key in ["id", "type", "start", "end"] {
                    if let Some(v) = full.get(key) {
                        entry.insert(key.into(), v.clone());
                    }
                }
                Value::Object(entry)
            })
        },
    )
}

// ---------------------------------------------------------------- contacts

fn contact_folder<'a>(u: &'a User, id: &str) -> Option<&'a ContactFolder> {
    u.contact_folders.iter().find(|f| f.id == id)
}

fn contact_folder_json(u: &User, f: &ContactFolder) -> Value {
    // The default folder's parent is the mailbox root.
    let parent = f
        .parent_id
        .clone()
        .unwrap_or_else(|| crate::graph::root_id(u));
    json!({"id": f.id, "displayName": f.display_name, "parentFolderId": parent})
}

/// `GET /contactFolders` (children of the default folder) and `…/childFolders`.
fn contact_folders(ctx: &Ctx<'_>, u: &User, parent: Option<&ContactFolder>) -> Response {
    if let Some(r) = unknown_property(ctx, CONTACT_FOLDER_PROPERTIES, "contactFolder") {
        return r;
    }
    let Some(parent) = parent else {
        return page::<Value>(ctx, "contactFolders", &[], 10, 1000, Clone::clone);
    };
    let children: Vec<&ContactFolder> = u
        .contact_folders
        .iter()
        .filter(|f| f.parent_id.as_deref() == Some(parent.id.as_str()))
        .collect();
    let fields = ctx.select();
    page(ctx, "contactFolders", &children, 10, 1000, |f| {
        select(fields.as_deref(), contact_folder_json(u, f))
    })
}

fn contact_folders_delta(ctx: &Ctx<'_>, u: &User) -> Response {
    let folders: Vec<&ContactFolder> = u
        .contact_folders
        .iter()
        .filter(|f| f.parent_id.is_some())
        .collect();
    crate::delta::collection(
        ctx,
        u,
        &collection_key(Collection::ContactFolders, ""),
        "Collection(contactFolder)",
        "#microsoft.graph.contactFolder",
        folders.iter().map(|f| f.id.as_str()).collect(),
        CONTACT_FOLDER_PROPERTIES,
        "contactFolder",
        |id, fields, _| {
            folders
                .iter()
                .find(|f| f.id == id)
                .map(|f| select(fields, contact_folder_json(u, f)))
        },
    )
}

fn address_json(a: &crate::groupware::Address) -> Value {
    if *a == Address::default() {
        return json!({});
    }
    json!({"street": a.street, "city": a.city, "state": a.state,
           "countryOrRegion": a.country_or_region, "postalCode": a.postal_code})
}

fn contact_json(f: &ContactFolder, c: &Contact) -> Value {
    let key = change_key(&[
        c.id.as_bytes(),
        iso(c.last_modified).as_bytes(),
        c.display_name.as_bytes(),
    ]);
    json!({
        "@odata.etag": format!("W/\"{key}\""),
        "id": c.id,
        "createdDateTime": iso(c.created),
        "lastModifiedDateTime": iso(c.last_modified),
        "changeKey": key,
        "categories": c.categories,
        "parentFolderId": f.id,
        "birthday": c.birthday.map(|d| format!("{d}T11:59:00Z")),
        "fileAs": c.file_as,
        "displayName": c.display_name,
        "givenName": c.given_name,
        "initials": c.initials,
        "middleName": c.middle_name,
        "nickName": c.nick_name,
        "surname": c.surname,
        "title": c.title,
        "yomiGivenName": c.yomi_given_name,
        "yomiSurname": c.yomi_surname,
        "yomiCompanyName": c.yomi_company_name,
        "generation": c.generation,
        "imAddresses": c.im_addresses,
        "jobTitle": c.job_title,
        "companyName": c.company_name,
        "department": c.department,
        "officeLocation": c.office_location,
        "profession": c.profession,
        "businessHomePage": c.business_home_page,
        "assistantName": c.assistant_name,
        "manager": c.manager,
        "homePhones": c.home_phones,
        "mobilePhone": c.mobile_phone,
        "businessPhones": c.business_phones,
        "spouseName": c.spouse_name,
        "personalNotes": c.personal_notes,
        "children": c.children,
        "emailAddresses": c.email_addresses.iter().map(|(n, a)| json!({"name": n, "address": a})).collect::<Vec<_>>(),
        "homeAddress": address_json(&c.home_address),
        "businessAddress": address_json(&c.business_address),
        "otherAddress": address_json(&c.other_address),
    })
}

/// `GET /contacts` (the default folder) and `/contactFolders/{id}/contacts`.
fn contacts(ctx: &Ctx<'_>, _u: &User, folder: Option<&ContactFolder>) -> Response {
    if let Some(r) = unknown_property(ctx, CONTACT_PROPERTIES, "contact") {
        return r;
    }
    let Some(f) = folder else {
        return page::<Value>(ctx, "contacts", &[], 10, 1000, Clone::clone);
    };
    let fields = ctx.select();
    page(ctx, "contacts", &f.contacts, 10, 1000, |c| {
        select(fields.as_deref(), contact_json(f, c))
    })
}

fn contacts_delta(ctx: &Ctx<'_>, u: &User, folder: Option<&ContactFolder>) -> Response {
    let Some(f) = folder else {
        return not_found(ctx);
    };
    crate::delta::collection(
        ctx,
        u,
        &collection_key(Collection::Contacts, &f.id),
        "Collection(contact)",
        "#microsoft.graph.contact",
        f.contacts.iter().map(|c| c.id.as_str()).collect(),
        CONTACT_PROPERTIES,
        "contact",
        |id, fields, _| {
            f.contacts
                .iter()
                .find(|c| c.id == id)
                .map(|c| select(fields, contact_json(f, c)))
        },
    )
}

/// `GET …/contacts/{id}[/photo[/$value]]`: the photo's metadata (`@odata.mediaEtag`, size) or
/// its bytes, and 404 `ImageNotFound` for a contact without one ("If no photo exists, the
/// operation returns 404 Not Found", learn.microsoft.com/graph/api/profilephoto-get). Every
/// request is in the request log, so tests count photo reads.
fn contact_route(ctx: &Ctx<'_>, u: &User, id: &str, more: &[&str]) -> Response {
    let Some((f, c)) = u
        .contact_folders
        .iter()
        .find_map(|f| f.contacts.iter().find(|c| c.id == id).map(|c| (f, c)))
    else {
        return not_found(ctx);
    };
    let no_photo = || {
        ctx.error(
            StatusCode::NOT_FOUND,
            "ImageNotFound",
            "The photo wasn't found.",
        )
    };
    match more {
        [] => {
            if let Some(r) = unknown_property(ctx, CONTACT_PROPERTIES, "contact") {
                return r;
            }
            axum::Json(select(ctx.select().as_deref(), contact_json(f, c))).into_response()
        }
        ["photo"] => match &c.photo {
            Some(p) => axum::Json(json!({
                "@odata.mediaContentType": p.content_type,
                "@odata.mediaEtag": format!("W/\"{}\"", change_key(&[&p.bytes])),
                "id": format!("{}X{}", p.width, p.height), "width": p.width, "height": p.height}))
            .into_response(),
            None => no_photo(),
        },
        ["photo", "$value"] => match &c.photo {
            Some(p) => bytes_response(&p.content_type, p.bytes.clone()),
            None => no_photo(),
        },
        _ => not_found(ctx),
    }
}

// ---------------------------------------------------------------- To Do

fn list_json(l: &TodoList) -> Value {
    json!({"@odata.etag": format!("W/\"{}\"", change_key(&[l.id.as_bytes(), l.display_name.as_bytes()])),
           "displayName": l.display_name, "isOwner": l.is_owner, "isShared": l.is_shared,
           "wellknownListName": l.wellknown_list_name, "id": l.id})
}

/// A task date-time: wall clock in the task's zone, rendered in UTC or the Prefer zone.
fn task_time(out: &OutZone, t: &TodoTask, wall: Option<PrimitiveDateTime>) -> Value {
    match wall {
        Some(w) => {
            let zone = crate::calendar::Zone::windows(&t.zone);
            json!({"dateTime": wall_text(wall_in(&out.tz, zone.instant(w))), "timeZone": out.name})
        }
        None => Value::Null,
    }
}

fn checklist_json(c: &crate::groupware::ChecklistItem) -> Value {
    json!({"displayName": c.display_name, "createdDateTime": iso(c.created),
           "checkedDateTime": c.checked.map(iso), "isChecked": c.is_checked, "id": c.id})
}

fn linked(t: &TodoTask) -> Vec<Value> {
    t.linked_message
        .iter()
        .map(|(url, id)| {
            json!({"webUrl": url, "applicationName": "Outlook", "displayName": t.title,
                   "externalId": id, "id": format!("{:08x}-0000-4000-8000-000000000000", fnv(&[id.as_bytes()]) as u32)})
        })
        .collect()
}

/// A task; `expand`: the request's `$expand` (checklistItems, linkedResources).
fn task_json(out: &OutZone, t: &TodoTask, expand: Option<&str>) -> Value {
    let key = change_key(&[
        t.id.as_bytes(),
        iso(t.last_modified).as_bytes(),
        t.status.as_bytes(),
    ]);
    let mut v = json!({
        "@odata.etag": format!("W/\"{key}\""),
        "importance": t.importance,
        "isReminderOn": t.reminder.is_some(),
        "status": t.status,
        "title": t.title,
        "createdDateTime": iso(t.created),
        "lastModifiedDateTime": iso(t.last_modified),
        "hasAttachments": false,
        "categories": t.categories,
        "id": t.id,
        "body": {"content": t.body, "contentType": "text"},
        "bodyLastModifiedDateTime": iso(t.last_modified),
    });
    for (name, wall) in [
        ("dueDateTime", t.due),
        ("reminderDateTime", t.reminder),
        ("startDateTime", t.start),
        ("completedDateTime", t.completed),
    ] {
        if wall.is_some() {
            v[name] = task_time(out, t, wall);
        }
    }
    if let Some(r) = &t.recurrence {
        v["recurrence"] = recurrence_json(r, &t.zone);
    }
    // Relationships, returned only when expanded (resources/todotask.md, "Relationships";
    // api/todotask-delta.md supports `$expand`).
    for x in expand.unwrap_or("").split(',').map(str::trim) {
        if x.eq_ignore_ascii_case("checklistItems") {
            v["checklistItems"] = Value::Array(t.checklist.iter().map(checklist_json).collect());
        } else if x.eq_ignore_ascii_case("linkedResources") {
            v["linkedResources"] = Value::Array(linked(t));
        }
    }
    v
}

fn tasks(ctx: &Ctx<'_>, l: &TodoList) -> Response {
    if let Some(r) = unknown_property(ctx, TASK_PROPERTIES, "todoTask") {
        return r;
    }
    let out = out_zone(ctx);
    let fields = ctx.select();
    page(ctx, "tasks", &l.tasks, 10, 1000, |t| {
        select(
            fields.as_deref(),
            task_json(&out, t, param(&ctx.query, "$expand")),
        )
    })
}

fn one_task(ctx: &Ctx<'_>, t: &TodoTask) -> Response {
    if let Some(r) = unknown_property(ctx, TASK_PROPERTIES, "todoTask") {
        return r;
    }
    let out = out_zone(ctx);
    let expand = param(&ctx.query, "$expand");
    axum::Json(select(ctx.select().as_deref(), task_json(&out, t, expand))).into_response()
}

fn tasks_delta(ctx: &Ctx<'_>, u: &User, l: &TodoList) -> Response {
    let out = out_zone(ctx);
    crate::delta::collection(
        ctx,
        u,
        &collection_key(Collection::Tasks, &l.id),
        "Collection(todoTask)",
        "#microsoft.graph.todoTask",
        l.tasks.iter().map(|t| t.id.as_str()).collect(),
        TASK_PROPERTIES,
        "todoTask",
        |id, fields, expand| {
            l.tasks
                .iter()
                .find(|t| t.id == id)
                .map(|t| select(fields, task_json(&out, t, expand)))
        },
    )
}

fn lists_delta(ctx: &Ctx<'_>, u: &User) -> Response {
    crate::delta::collection(
        ctx,
        u,
        &collection_key(Collection::TodoLists, ""),
        "Collection(todoTaskList)",
        "#microsoft.graph.todoTaskList",
        u.todo_lists.iter().map(|l| l.id.as_str()).collect(),
        LIST_PROPERTIES,
        "todoTaskList",
        |id, fields, _| {
            u.todo_lists
                .iter()
                .find(|l| l.id == id)
                .map(|l| select(fields, list_json(l)))
        },
    )
}
