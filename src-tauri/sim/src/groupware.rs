//! Contacts and To Do tasks (the data model), and the seeded generator of each mailbox's
//! calendars, contacts and task lists.
//!
//! Every mailbox gets the same catalogue of calendar series, covering each recurrence pattern
//! and range type, with exceptions and cancellations, in several Windows zones and a custom
//! one (see [`SERIES`]), plus seeded single events; contacts with every property of the
//! contact resource, some with photos, in the default folder and nested folders; and three
//! task lists (the default one, `flaggedEmails`, a custom one) with tasks of every status.
//! Each mailbox's groupware is generated from its own seed, independent of its mail, so the
//! mail of a tenant is the same with groupware on or off.

use rand::{Rng, RngCore};
use time::macros::{date, time};
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Weekday};

use crate::calendar::{
    Attendee, Calendar, Event, EventAttachment, EventException, Pattern, PatternType, Range,
    RangeEnd, Recurrence, WeekIndex, Zone,
};
use crate::tenant::mix;

/// SplitMix64 (Steele, Lea, Flood 2014): groupware draws many small values per mailbox, and
/// seeding a ChaCha generator per event costs more than the event itself in debug builds.
/// Portable and stable, so generated tenants are the same everywhere.
pub(crate) struct Gen(u64);

impl Gen {
    pub(crate) fn new(seed: u64) -> Gen {
        Gen(seed)
    }
}

impl RngCore for Gen {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// How much groupware each mailbox gets. [`GroupwareSpec::none`] turns it off.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupwareSpec {
    /// Calendars, contacts and tasks at all.
    pub enabled: bool,
    /// Seeded single events per calendar, besides the fixed series catalogue.
    pub events_per_calendar: usize,
    /// Contacts per mailbox, spread over the default folder and the nested folders.
    pub contacts: usize,
    /// Tasks per To Do list (default and custom lists; the flaggedEmails list gets a few).
    pub tasks_per_list: usize,
}

impl Default for GroupwareSpec {
    /// Modest: a mailbox has 4 calendars in its default calendar group and one in a second
    /// group ("Other calendars"), ~27 events, 12 contacts and ~16 tasks, which
    /// costs microseconds to generate and no memory worth counting next to its mail.
    fn default() -> Self {
        GroupwareSpec {
            enabled: true,
            events_per_calendar: 4,
            contacts: 12,
            tasks_per_list: 7,
        }
    }
}

impl GroupwareSpec {
    /// No calendars (beyond an empty default one), contacts or tasks.
    pub fn none() -> Self {
        GroupwareSpec {
            enabled: false,
            events_per_calendar: 0,
            contacts: 0,
            tasks_per_list: 0,
        }
    }
}

/// A contact folder. The default folder ("Contacts") has no parent; the folders
/// `/contactFolders` lists are its children.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactFolder {
    pub id: String,
    /// `None`: the default folder.
    pub parent_id: Option<String>,
    pub display_name: String,
    pub contacts: Vec<Contact>,
}

/// A postal address (`physicalAddress`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Address {
    pub street: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub country_or_region: String,
}

/// A contact photo: the bytes `/photo/$value` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Photo {
    /// image/jpeg | image/png
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

/// A contact with every property of Graph's contact resource (resources/contact.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: String,
    pub given_name: String,
    pub middle_name: String,
    pub surname: String,
    pub display_name: String,
    pub nick_name: String,
    pub initials: String,
    pub title: String,
    pub generation: String,
    pub file_as: String,
    pub yomi_given_name: String,
    pub yomi_surname: String,
    pub yomi_company_name: String,
    /// (name, address)
    pub email_addresses: Vec<(String, String)>,
    pub im_addresses: Vec<String>,
    pub business_phones: Vec<String>,
    pub home_phones: Vec<String>,
    pub mobile_phone: String,
    pub business_address: Address,
    pub home_address: Address,
    pub other_address: Address,
    pub birthday: Option<Date>,
    pub company_name: String,
    pub department: String,
    pub job_title: String,
    pub office_location: String,
    pub manager: String,
    pub assistant_name: String,
    pub spouse_name: String,
    pub children: Vec<String>,
    pub profession: String,
    pub business_home_page: String,
    pub categories: Vec<String>,
    pub personal_notes: String,
    pub photo: Option<Photo>,
    pub created: OffsetDateTime,
    pub last_modified: OffsetDateTime,
}

/// A To Do list (resources/todotasklist.md).
#[derive(Debug, Clone, PartialEq)]
pub struct TodoList {
    pub id: String,
    pub display_name: String,
    /// none | defaultList | flaggedEmails
    pub wellknown_list_name: String,
    pub is_owner: bool,
    pub is_shared: bool,
    pub tasks: Vec<TodoTask>,
}

/// A checklist item of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct ChecklistItem {
    pub id: String,
    pub display_name: String,
    pub is_checked: bool,
    pub created: OffsetDateTime,
    pub checked: Option<OffsetDateTime>,
}

/// A task (resources/todotask.md). Date-times are wall-clock in `zone` (a Windows name).
#[derive(Debug, Clone, PartialEq)]
pub struct TodoTask {
    pub id: String,
    pub title: String,
    /// Plain text body.
    pub body: String,
    /// low | normal | high
    pub importance: String,
    /// notStarted | inProgress | completed | waitingOnOthers | deferred
    pub status: String,
    pub zone: String,
    pub start: Option<PrimitiveDateTime>,
    pub due: Option<PrimitiveDateTime>,
    pub reminder: Option<PrimitiveDateTime>,
    pub completed: Option<PrimitiveDateTime>,
    /// Task recurrence (same shape as events'; the pattern repeats the due date).
    pub recurrence: Option<Recurrence>,
    pub categories: Vec<String>,
    pub checklist: Vec<ChecklistItem>,
    /// For a flagged-email task: the message's web link and id.
    pub linked_message: Option<(String, String)>,
    pub created: OffsetDateTime,
    pub last_modified: OffsetDateTime,
}

/// A mailbox's groupware.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Groupware {
    /// The first one is the default calendar.
    pub calendars: Vec<Calendar>,
    /// The first one is the default contacts folder.
    pub contact_folders: Vec<ContactFolder>,
    pub todo_lists: Vec<TodoList>,
}

/// The subjects of the series every mailbox's default calendar has, in [`SERIES`] order.
pub const SERIES_SUBJECTS: [&str; 9] = [
    "Daily stand-up",
    "Team sync / planning",
    "Month-end report",
    "Board meeting",
    "Quarterly review",
    "Leap-day birthday 🎂",
    "Thanksgiving",
    "Release train",
    "Weekly 1:1 & coffee",
];

/// The fixed series catalogue, documented here because tests rely on it:
/// 0. daily, numbered 30, W. Europe (crosses 2025-03-30 DST), one exception moved an hour
///    later with a new subject, one cancelled occurrence;
/// 1. weekly every 2 weeks on Tuesday+Thursday, firstDayOfWeek monday, endDate, Pacific (both
///    US DST changes), exception + cancellation;
/// 2. absoluteMonthly on the 31st, noEnd, Eastern;
/// 3. relativeMonthly last Friday, numbered 12, Tokyo;
/// 4. relativeMonthly second Tuesday-or-Thursday every 3 months, endDate, W. Europe;
/// 5. absoluteYearly Feb 29, all-day, noEnd;
/// 6. relativeYearly fourth Thursday of November, all-day, numbered 5;
/// 7. daily every 3 days, endDate, custom zone (UTC+05:45), one cancellation;
/// 8. weekly on Monday, numbered 20, UTC, online meeting, an exception moved to another day.
pub const SERIES: usize = 9;

/// Monday 2025-03-24, a week before Europe's DST change: the catalogue's anchor.
const ANCHOR: Date = date!(2025 - 03 - 24);

const CALENDAR_NAMES: [(&str, &str, &str); 3] = [
    ("Team / Projects & Plans", "lightGreen", "#87d28e"),
    ("Ürlaub 2025 (50% *fixed*) v1.2", "lightOrange", "#fcab73"),
    ("Kalender 日本 %20", "lightBlue", "#8bc3f5"),
];

const CONTACT_FOLDERS: [(&str, Option<usize>); 4] = [
    ("Clients & Partners", None),
    ("Key accounts / EMEA", Some(1)),
    ("Ünïcode 名前 100%", Some(2)),
    ("v1.0 *old*", None),
];

const GIVEN: [&str; 12] = [
    "Anna", "Björn", "Chloé", "Dmitri", "Eun-ji", "Farid", "Greta", "Hiroshi", "Inès", "José",
    "Kalani", "Łukasz",
];
const FAMILY: [&str; 12] = [
    "Schmidt",
    "Öztürk",
    "Dubois",
    "Ivanov",
    "Kim",
    "Haddad",
    "Lindqvist",
    "Tanaka",
    "Moreau",
    "García",
    "Kahananui",
    "Wójcik",
];
const COMPANIES: [&str; 5] = [
    "Fabrikam, Inc.",
    "Northwind Traders",
    "Tailspin & Toys",
    "Wingtip Toys GmbH",
    "Adatum Corporation",
];
const CATEGORIES: [&str; 5] = [
    "Red category",
    "Blue category",
    "Projekt Ä",
    "VIP",
    "Family",
];
const ZONES: [&str; 4] = [
    "W. Europe Standard Time",
    "Pacific Standard Time",
    "Eastern Standard Time",
    "Tokyo Standard Time",
];

/// Generates a mailbox's groupware. Pure and deterministic in `(seed, spec)`.
pub fn generate(spec: &GroupwareSpec, seed: u64, owner_name: &str, owner_mail: &str) -> Groupware {
    let mut rng = Gen::new(mix(seed, 0x6a0e));
    // Calendar groups draw from their own stream: the rest of the mailbox stays as it was
    // generated before groups existed.
    let mut groups = Gen::new(mix(seed, 0xc9a0));
    let default_group = outlook_id(&mut groups, b"CGR");
    let default_calendar = Calendar {
        id: outlook_id(&mut rng, b"CAL"),
        name: "Calendar".into(),
        color: "auto".into(),
        hex_color: String::new(),
        is_default: true,
        group_id: default_group.clone(),
        group_name: DEFAULT_GROUP.into(),
        shared_by: None,
        events: Vec::new(),
    };
    if !spec.enabled {
        return Groupware {
            calendars: vec![default_calendar],
            ..Groupware::default()
        };
    }
    let mut calendars = vec![default_calendar];
    for (name, color, hex) in CALENDAR_NAMES {
        calendars.push(Calendar {
            id: outlook_id(&mut rng, b"CAL"),
            name: name.into(),
            color: color.into(),
            hex_color: hex.into(),
            is_default: false,
            group_id: default_group.clone(),
            group_name: DEFAULT_GROUP.into(),
            shared_by: None,
            events: Vec::new(),
        });
    }
    let owner = (owner_name, owner_mail);
    for n in 0..SERIES {
        let e = catalogue_series(&mut rng, n, owner);
        calendars[0].events.push(e);
    }
    // A series in a secondary calendar too (instances there must work the same).
    let mut extra = catalogue_series(&mut rng, 8, owner);
    extra.subject = "Gym & sauna".into();
    calendars[1].events.push(extra);
    for (ci, cal) in calendars.iter_mut().enumerate() {
        for k in 0..spec.events_per_calendar {
            let mut rng = Gen::new(mix(mix(seed, 0xe0e + ci as u64), k as u64));
            let e = single_event(&mut rng, ci * 1000 + k, owner);
            cal.events.push(e);
        }
    }
    calendars.push(second_group_calendar(&mut groups, spec, seed, owner));
    let contact_folders = contacts(&mut rng, spec, seed);
    let todo_lists = todo(&mut rng, spec, seed);
    Groupware {
        calendars,
        contact_folders,
        todo_lists,
    }
}

/// The name Outlook gives a mailbox's default calendar group.
pub const DEFAULT_GROUP: &str = "My Calendars";

/// The calendar every mailbox keeps in a second calendar group ("Other calendars"), with
/// events: `/calendars` may list the default group only, so it is read through the groups.
fn second_group_calendar(
    groups: &mut Gen,
    spec: &GroupwareSpec,
    seed: u64,
    owner: (&str, &str),
) -> Calendar {
    let mut cal = Calendar {
        id: outlook_id(groups, b"CAL"),
        name: "Choir rehearsals".into(),
        color: "lightTeal".into(),
        hex_color: "#7bd1c8".into(),
        is_default: false,
        group_id: outlook_id(groups, b"CGR"),
        group_name: "Other calendars".into(),
        shared_by: None,
        events: Vec::new(),
    };
    for k in 0..spec.events_per_calendar.min(2) {
        let mut rng = Gen::new(mix(mix(seed, 0xc9a1), k as u64));
        cal.events.push(single_event(&mut rng, 7000 + k, owner));
    }
    cal
}

/// An Exchange-style id: `AAMkAGI2` + base64url of a tag and 24 random bytes.
pub(crate) fn outlook_id(rng: &mut Gen, tag: &[u8]) -> String {
    use base64::Engine as _;
    let mut raw = tag.to_vec();
    for _ in 0..3 {
        raw.extend(rng.next_u64().to_le_bytes());
    }
    format!(
        "AAMkAGI2{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

/// An Exchange global object id (hex): the class id, a zero instance date, the creation
/// time and 16 random bytes (MS-OXOCAL 2.2.1.27 PidLidGlobalObjectId).
fn global_object_id(rng: &mut Gen, created: OffsetDateTime) -> String {
    use std::fmt::Write as _;
    let filetime = (created.unix_timestamp() + 11_644_473_600) as u64 * 10_000_000;
    let mut hex = String::with_capacity(112);
    hex.push_str("040000008200E00074C5B7101A82E008");
    hex.push_str("00000000");
    let _ = write!(hex, "{:016X}", filetime.swap_bytes());
    hex.push_str("000000000000000010000000");
    let _ = write!(hex, "{:016X}{:016X}", rng.next_u64(), rng.next_u64());
    hex
}

fn at(d: Date, t: time::Time) -> PrimitiveDateTime {
    PrimitiveDateTime::new(d, t)
}

fn base_event(
    rng: &mut Gen,
    subject: &str,
    zone: Zone,
    start: PrimitiveDateTime,
    minutes: i64,
    owner: (&str, &str),
) -> Event {
    let created = OffsetDateTime::from_unix_timestamp(1_735_689_600 + rng.random_range(0..86_400))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let organized = rng.random_range(0..4) != 0;
    let (organizer_name, organizer_address) = if organized {
        (owner.0.to_string(), owner.1.to_string())
    } else {
        (
            "Megan Bowen".to_string(),
            "megan.bowen@fabrikam.com".to_string(),
        )
    };
    let responses = [
        "accepted",
        "tentativelyAccepted",
        "declined",
        "none",
        "notResponded",
    ];
    let mut attendees: Vec<Attendee> = (0..rng.random_range(1..4))
        .map(|i| {
            let g = GIVEN[rng.random_range(0..GIVEN.len())];
            let f = FAMILY[rng.random_range(0..FAMILY.len())];
            let response = responses[rng.random_range(0..responses.len())];
            Attendee {
                name: format!("{g} {f}"),
                address: format!("{}.{}@fabrikam.com", ascii(g), ascii(f)).to_lowercase(),
                kind: if i == 2 { "optional" } else { "required" }.into(),
                response: response.into(),
                response_time: (response != "none" && response != "notResponded")
                    .then(|| created + Duration::hours(2)),
            }
        })
        .collect();
    if !organized {
        attendees.push(Attendee {
            name: owner.0.into(),
            address: owner.1.into(),
            kind: "required".into(),
            response: "accepted".into(),
            response_time: Some(created + Duration::hours(1)),
        });
    }
    if rng.random_range(0..5) == 0 {
        attendees.push(Attendee {
            name: "Room 4.12 \"Alpen\"".into(),
            address: "room412@contoso.com".into(),
            kind: "resource".into(),
            response: "accepted".into(),
            response_time: Some(created),
        });
    }
    Event {
        id: outlook_id(rng, b"EVT"),
        uid: global_object_id(rng, created),
        subject: subject.to_string(),
        body_html: format!(
            "<html><body><p>Agenda for <b>{}</b>:</p><ul><li>Status &amp; risks</li><li>Next steps — ü</li></ul></body></html>",
            html_escape(subject)
        ),
        location: ["Room 4.12", "Teams", "Café Ünter den Linden", ""][rng.random_range(0..4)]
            .into(),
        start,
        end: start + Duration::minutes(minutes),
        zone,
        is_all_day: false,
        recurrence: None,
        exceptions: Vec::new(),
        cancelled: Vec::new(),
        organizer_name,
        organizer_address,
        is_organizer: organized,
        attendees,
        reminder_minutes: [Some(15), Some(0), None, Some(1440)][rng.random_range(0..4)],
        categories: match rng.random_range(0..4) {
            0 => vec![CATEGORIES[0].into()],
            1 => vec![CATEGORIES[1].into(), CATEGORIES[2].into()],
            _ => Vec::new(),
        },
        sensitivity: ["normal", "normal", "private", "personal", "confidential"]
            [rng.random_range(0..5)]
        .into(),
        show_as: ["busy", "busy", "tentative", "free", "oof", "workingElsewhere"]
            [rng.random_range(0..6)]
        .into(),
        importance: ["normal", "normal", "high", "low"][rng.random_range(0..4)].into(),
        online_meeting_url: None,
        attachments: Vec::new(),
        created,
        last_modified: created + Duration::minutes(rng.random_range(0..10_000)),
    }
}

fn all_day(mut e: Event, days: i64) -> Event {
    e.is_all_day = true;
    e.start = at(e.start.date(), time!(0:00));
    e.end = e.start + Duration::days(days);
    e.show_as = "free".into();
    e
}

fn recurring(mut e: Event, pattern: Pattern, end: RangeEnd) -> Event {
    e.recurrence = Some(Recurrence {
        pattern,
        range: Range {
            start_date: e.start.date(),
            end,
        },
    });
    e
}

fn exception(rng: &mut Gen, e: &mut Event, date: Date, shift: Duration, subject: &str) {
    let start = e.wall_start_on(date) + shift;
    let end = e.wall_end_on(date) + shift;
    e.exceptions.push(EventException {
        id: outlook_id(rng, b"EXC"),
        original_date: date,
        start,
        end,
        subject: subject.into(),
        location: "Room 2.01".into(),
        last_modified: e.last_modified,
    });
}

fn days(p: Pattern, days: &[Weekday]) -> Pattern {
    Pattern {
        days_of_week: days.to_vec(),
        ..p
    }
}

/// Series `n` of the catalogue (see [`SERIES`]).
fn catalogue_series(rng: &mut Gen, n: usize, owner: (&str, &str)) -> Event {
    let subject = SERIES_SUBJECTS[n % SERIES];
    let w = |z: &str| Zone::windows(z);
    match n {
        0 => {
            let e = base_event(
                rng,
                subject,
                w(ZONES[0]),
                at(ANCHOR, time!(9:00)),
                15,
                owner,
            );
            let mut e = recurring(
                e,
                Pattern::new(PatternType::Daily, 1),
                RangeEnd::Numbered(30),
            );
            exception(
                rng,
                &mut e,
                ANCHOR + Duration::days(2),
                Duration::hours(1),
                "Daily stand-up (moved)",
            );
            e.cancelled.push(ANCHOR + Duration::days(3));
            e
        }
        1 => {
            let start = date!(2025 - 01 - 07);
            let e = base_event(
                rng,
                subject,
                w(ZONES[1]),
                at(start, time!(10:00)),
                60,
                owner,
            );
            let p = Pattern {
                first_day_of_week: Weekday::Monday,
                ..days(
                    Pattern::new(PatternType::Weekly, 2),
                    &[Weekday::Tuesday, Weekday::Thursday],
                )
            };
            let mut e = recurring(e, p, RangeEnd::EndDate(date!(2025 - 12 - 31)));
            exception(
                rng,
                &mut e,
                date!(2025 - 03 - 18),
                Duration::minutes(90),
                "Team sync / planning — moved ⏰",
            );
            e.cancelled.push(date!(2025 - 03 - 20));
            e.online_meeting_url = Some(teams_url(rng));
            e
        }
        2 => {
            let start = date!(2025 - 01 - 31);
            let e = base_event(
                rng,
                subject,
                w(ZONES[2]),
                at(start, time!(16:00)),
                60,
                owner,
            );
            let p = Pattern {
                day_of_month: 31,
                ..Pattern::new(PatternType::AbsoluteMonthly, 1)
            };
            recurring(e, p, RangeEnd::NoEnd)
        }
        3 => {
            let start = date!(2025 - 01 - 31);
            let e = base_event(
                rng,
                subject,
                w(ZONES[3]),
                at(start, time!(14:00)),
                120,
                owner,
            );
            let p = Pattern {
                index: WeekIndex::Last,
                ..days(
                    Pattern::new(PatternType::RelativeMonthly, 1),
                    &[Weekday::Friday],
                )
            };
            recurring(e, p, RangeEnd::Numbered(12))
        }
        4 => {
            let start = date!(2025 - 01 - 07);
            let e = base_event(
                rng,
                subject,
                w(ZONES[0]),
                at(start, time!(13:30)),
                90,
                owner,
            );
            let p = Pattern {
                index: WeekIndex::Second,
                ..days(
                    Pattern::new(PatternType::RelativeMonthly, 3),
                    &[Weekday::Tuesday, Weekday::Thursday],
                )
            };
            recurring(e, p, RangeEnd::EndDate(date!(2026 - 06 - 30)))
        }
        5 => {
            let start = date!(2024 - 02 - 29);
            let e = all_day(
                base_event(rng, subject, w(ZONES[0]), at(start, time!(0:00)), 0, owner),
                1,
            );
            let p = Pattern {
                day_of_month: 29,
                month: 2,
                ..Pattern::new(PatternType::AbsoluteYearly, 1)
            };
            let mut e = recurring(e, p, RangeEnd::NoEnd);
            e.reminder_minutes = Some(1080);
            e
        }
        6 => {
            let start = date!(2024 - 11 - 28);
            let e = all_day(
                base_event(rng, subject, w(ZONES[1]), at(start, time!(0:00)), 0, owner),
                1,
            );
            let p = Pattern {
                index: WeekIndex::Fourth,
                month: 11,
                ..days(
                    Pattern::new(PatternType::RelativeYearly, 1),
                    &[Weekday::Thursday],
                )
            };
            recurring(e, p, RangeEnd::Numbered(5))
        }
        7 => {
            let start = date!(2025 - 03 - 01);
            let zone = Zone::Custom {
                offset_minutes: 345,
            };
            let e = base_event(rng, subject, zone, at(start, time!(8:30)), 45, owner);
            let mut e = recurring(
                e,
                Pattern::new(PatternType::Daily, 3),
                RangeEnd::EndDate(date!(2025 - 06 - 30)),
            );
            e.cancelled.push(date!(2025 - 03 - 10));
            e
        }
        _ => {
            let e = base_event(rng, subject, w("UTC"), at(ANCHOR, time!(12:00)), 30, owner);
            let mut e = recurring(
                e,
                days(Pattern::new(PatternType::Weekly, 1), &[Weekday::Monday]),
                RangeEnd::Numbered(20),
            );
            exception(
                rng,
                &mut e,
                ANCHOR + Duration::weeks(2),
                Duration::days(2),
                "Weekly 1:1 & coffee (Wednesday)",
            );
            e.online_meeting_url = Some(teams_url(rng));
            e
        }
    }
}

fn teams_url(rng: &mut Gen) -> String {
    format!(
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_{:016x}%40thread.v2/0",
        rng.random::<u64>()
    )
}

const SINGLE_SUBJECTS: [&str; 8] = [
    "Dentist",
    "Offsite: Strategy 2026",
    "Lunch with Chloé",
    "Contract review (NDA) / legal",
    "Customer call — Fabrikam",
    "Flight LH 400 ✈",
    "Budget 100% approved?",
    "Interview: *senior* engineer",
];

fn single_event(rng: &mut Gen, k: usize, owner: (&str, &str)) -> Event {
    let subject = SINGLE_SUBJECTS[k % SINGLE_SUBJECTS.len()];
    let zone = Zone::windows(ZONES[rng.random_range(0..ZONES.len())]);
    let day = date!(2025 - 01 - 01) + Duration::days(rng.random_range(0..365));
    let start = at(
        day,
        time::Time::from_hms(
            rng.random_range(7..19),
            [0, 15, 30, 45][rng.random_range(0..4)],
            0,
        )
        .unwrap_or(time!(9:00)),
    );
    let minutes = [30, 60, 90, 240][rng.random_range(0..4)];
    let e = base_event(rng, subject, zone, start, minutes, owner);
    let mut e = if k % 4 == 1 { all_day(e, 2) } else { e };
    if k.is_multiple_of(3) {
        e.online_meeting_url = Some(teams_url(rng));
    }
    if k % 4 == 2 {
        let bytes: Vec<u8> =
            format!("Agenda for {subject}\r\n1. Welcome\r\n2. Ünicode ✓\r\n").into_bytes();
        e.attachments.push(EventAttachment {
            id: outlook_id(rng, b"ATT"),
            name: "agenda (v2) & notes.txt".into(),
            content_type: "text/plain".into(),
            bytes,
            last_modified: e.created,
        });
    }
    e
}

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ö' | 'Ö' => 'o',
            'é' | 'è' => 'e',
            'ü' | 'Ü' => 'u',
            'ä' => 'a',
            'ł' | 'Ł' => 'l',
            'ó' => 'o',
            'í' => 'i',
            c => c,
        })
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn address(rng: &mut Gen, kind: usize) -> Address {
    let cities = [
        (
            "Musterstraße 12",
            "München",
            "Bayern",
            "80331",
            "Deutschland",
        ),
        ("1 Microsoft Way", "Redmond", "WA", "98052", "United States"),
        (
            "12 rue de l'Église",
            "Paris",
            "Île-de-France",
            "75004",
            "France",
        ),
        ("2-1 Marunouchi", "東京", "", "100-0005", "Japan"),
    ];
    let (street, city, state, zip, country) = cities[(kind + rng.random_range(0..4)) % 4];
    Address {
        street: street.into(),
        city: city.into(),
        state: state.into(),
        postal_code: zip.into(),
        country_or_region: country.into(),
    }
}

fn contacts(rng: &mut Gen, spec: &GroupwareSpec, seed: u64) -> Vec<ContactFolder> {
    let mut folders = vec![ContactFolder {
        id: outlook_id(rng, b"CFD"),
        parent_id: None,
        display_name: "Contacts".into(),
        contacts: Vec::new(),
    }];
    for (name, parent) in CONTACT_FOLDERS {
        let parent_id = folders[parent.unwrap_or(0)].id.clone();
        folders.push(ContactFolder {
            id: outlook_id(rng, b"CFD"),
            parent_id: Some(parent_id),
            display_name: name.into(),
            contacts: Vec::new(),
        });
    }
    for n in 0..spec.contacts {
        let c = contact(mix(seed, 0xc0c0 + n as u64), n as u64);
        // Half in the default folder, the rest spread over the others.
        let f = if n % 2 == 0 {
            0
        } else {
            1 + (n / 2) % CONTACT_FOLDERS.len()
        };
        folders[f].contacts.push(c);
    }
    folders
}

/// A contact with every property set, generated from `seed` (the tenant's own contacts are
/// made this way); every third has a photo, alternately JPEG and PNG.
pub fn sample_contact(seed: u64) -> Contact {
    contact(seed, seed)
}

/// A contact from `seed`; `variant % 3` picks its photo (JPEG, none, PNG).
fn contact(seed: u64, variant: u64) -> Contact {
    let mut rng = Gen::new(mix(seed, 0xc0));
    let n = rng.random_range(0..1000usize);
    let given = GIVEN[n % GIVEN.len()];
    let family = FAMILY[(n / 3 + n) % FAMILY.len()];
    let company = COMPANIES[n % COMPANIES.len()];
    let created =
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + rng.random_range(0..30_000_000))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mail = format!(
        "{}.{}@{}",
        ascii(given),
        ascii(family),
        ["fabrikam.com", "northwind.example", "gmail.com"][n % 3]
    )
    .to_lowercase();
    let photo = match variant % 3 {
        0 => Some(Photo {
            content_type: "image/jpeg".into(),
            width: 8,
            height: 8,
            bytes: jpeg_gray(rng.random()),
        }),
        1 => None,
        _ => Some(Photo {
            content_type: "image/png".into(),
            width: 4,
            height: 4,
            bytes: png_rgb(4, 4, [rng.random(), rng.random(), rng.random()]),
        }),
    };
    Contact {
        id: outlook_id(&mut rng, b"CON"),
        given_name: given.into(),
        middle_name: ["", "Maria", "J."][n % 3].into(),
        surname: family.into(),
        display_name: format!("{given} {family}"),
        nick_name: given.chars().take(3).collect(),
        initials: format!(
            "{}.{}.",
            given.chars().next().unwrap_or('X'),
            family.chars().next().unwrap_or('X')
        ),
        title: ["Dr.", "", "Prof.", "Ms."][n % 4].into(),
        generation: ["", "Jr.", "III"][n % 3].into(),
        file_as: format!("{family}, {given}"),
        yomi_given_name: if given == "Hiroshi" {
            "ひろし".into()
        } else {
            String::new()
        },
        yomi_surname: if family == "Tanaka" {
            "たなか".into()
        } else {
            String::new()
        },
        yomi_company_name: String::new(),
        email_addresses: (0..1 + n % 3)
            .map(|i| {
                let address = if i == 0 {
                    mail.clone()
                } else {
                    format!("{}{i}@private.example", ascii(given).to_lowercase())
                };
                (format!("{given} {family}"), address)
            })
            .collect(),
        im_addresses: vec![format!("sip:{mail}")],
        business_phones: vec![format!("+49 89 {:07}", rng.random_range(0..10_000_000))],
        home_phones: if n % 2 == 0 {
            vec![format!("+1 425 555 {:04}", rng.random_range(0..10_000))]
        } else {
            Vec::new()
        },
        mobile_phone: format!("+44 7700 {:06}", rng.random_range(0..1_000_000)),
        business_address: address(&mut rng, 0),
        home_address: address(&mut rng, 1),
        other_address: if n % 4 == 0 {
            address(&mut rng, 2)
        } else {
            Address::default()
        },
        birthday: Date::from_ordinal_date(1950 + (n % 50) as i32, 1 + (n % 365) as u16).ok(),
        company_name: company.into(),
        department: ["Sales & Marketing", "R&D", "Finance / Controlling"][n % 3].into(),
        job_title: ["CEO", "Account manager", "Engineer"][n % 3].into(),
        office_location: format!("Building {}", n % 9),
        manager: "Megan Bowen".into(),
        assistant_name: "Lee Gu".into(),
        spouse_name: ["", "Sam", "Alex"][n % 3].into(),
        children: if n % 2 == 0 {
            vec!["Mia".into(), "Noah".into()]
        } else {
            Vec::new()
        },
        profession: "Consultant".into(),
        business_home_page: format!(
            "https://www.{}.example/team?id={n}&lang=de",
            ascii(company).to_lowercase()
        ),
        categories: if n % 3 == 0 {
            vec![CATEGORIES[3].into()]
        } else {
            Vec::new()
        },
        personal_notes: format!("Met at the 2024 fair.\nPrefers e-mail; “quotes” & <tags>. #{n}"),
        photo,
        created,
        last_modified: created + Duration::days(3),
    }
}

fn todo(rng: &mut Gen, spec: &GroupwareSpec, seed: u64) -> Vec<TodoList> {
    let mut lists = vec![
        TodoList {
            id: outlook_id(rng, b"TDL"),
            display_name: "Tasks".into(),
            wellknown_list_name: "defaultList".into(),
            is_owner: true,
            is_shared: false,
            tasks: Vec::new(),
        },
        TodoList {
            id: outlook_id(rng, b"TDL"),
            display_name: "Flagged Emails".into(),
            wellknown_list_name: "flaggedEmails".into(),
            is_owner: true,
            is_shared: false,
            tasks: Vec::new(),
        },
        TodoList {
            id: outlook_id(rng, b"TDL"),
            display_name: "Groceries & Errands / Home 🛒".into(),
            wellknown_list_name: "none".into(),
            is_owner: true,
            is_shared: true,
            tasks: Vec::new(),
        },
    ];
    for (li, list) in lists.iter_mut().enumerate() {
        let count = if li == 1 {
            spec.tasks_per_list.min(2)
        } else {
            spec.tasks_per_list
        };
        for k in 0..count {
            let mut t = task(mix(mix(seed, 0x7a5c + li as u64), k as u64), k);
            if li == 1 {
                t.title = format!("Re: {}", t.title);
                t.linked_message = Some((
                    format!("https://outlook.office365.com/owa/?ItemID=AAMkAGI2{k}&exvsurl=1"),
                    format!("AAMkAGI2flagged{k}"),
                ));
                t.recurrence = None;
            }
            list.tasks.push(t);
        }
    }
    lists
}

/// A task generated from `seed`: statuses, importance, dates, recurrence, categories and
/// checklist items vary with the seed so a list of seven covers each status.
pub fn sample_task(seed: u64) -> TodoTask {
    task(seed, seed as usize)
}

/// A task from `seed`; `variant % 7` picks its title, status, dates and recurrence.
fn task(seed: u64, variant: usize) -> TodoTask {
    let mut rng = Gen::new(mix(seed, 0x7a));
    let k = variant % 7;
    let titles = [
        "Renew passport",
        "Send Q3 report / numbers",
        "Buy milk & eggs",
        "Call Björn about 50% discount",
        "Book *flights*",
        "Review PR #42",
        "Pay invoice 2025.11",
    ];
    let statuses = [
        "notStarted",
        "inProgress",
        "completed",
        "waitingOnOthers",
        "deferred",
        "notStarted",
        "completed",
    ];
    let created =
        OffsetDateTime::from_unix_timestamp(1_740_000_000 + rng.random_range(0..2_000_000))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let due_day = date!(2025 - 04 - 01) + Duration::days(rng.random_range(0..120));
    let due = (k != 5).then(|| at(due_day, time!(0:00)));
    let status = statuses[k];
    let recurrence = (k == 1 || k == 5).then(|| Recurrence {
        pattern: if k == 1 {
            Pattern {
                first_day_of_week: Weekday::Sunday,
                ..days(Pattern::new(PatternType::Weekly, 1), &[due_day.weekday()])
            }
        } else {
            Pattern {
                day_of_month: 15,
                ..Pattern::new(PatternType::AbsoluteMonthly, 1)
            }
        },
        range: Range {
            start_date: due_day,
            end: RangeEnd::NoEnd,
        },
    });
    TodoTask {
        id: outlook_id(&mut rng, b"TSK"),
        title: titles[k].into(),
        body: if k.is_multiple_of(2) {
            format!("Details for “{}”.\nLine two.", titles[k])
        } else {
            String::new()
        },
        importance: ["normal", "high", "low"][k % 3].into(),
        status: status.into(),
        zone: ZONES[k % ZONES.len()].into(),
        start: (k == 3).then(|| at(due_day - Duration::days(3), time!(0:00))),
        due,
        reminder: k
            .is_multiple_of(3)
            .then(|| at(due_day - Duration::days(1), time!(9:00))),
        completed: (status == "completed").then(|| at(due_day, time!(17:30))),
        recurrence,
        categories: if k % 2 == 1 {
            vec![CATEGORIES[k % CATEGORIES.len()].into()]
        } else {
            Vec::new()
        },
        checklist: (0..k % 4)
            .map(|i| ChecklistItem {
                id: format!(
                    "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                    rng.random::<u32>(),
                    rng.random::<u16>(),
                    i,
                    k,
                    rng.random::<u64>() & 0xffff_ffff_ffff
                ),
                display_name: ["Step one", "Zweiter Schritt ✓", "Last & least"][i].into(),
                is_checked: i == 0,
                created,
                checked: (i == 0).then_some(created + Duration::hours(5)),
            })
            .collect(),
        linked_message: None,
        created,
        last_modified: created + Duration::hours(6),
    }
}

/// A new event for tests: a one-hour single instance at `start` (wall clock in `zone`).
pub fn sample_event(seed: u64, subject: &str, zone: Zone, start: PrimitiveDateTime) -> Event {
    let mut rng = Gen::new(mix(seed, 0xe7));
    base_event(
        &mut rng,
        subject,
        zone,
        start,
        60,
        ("Test User", "test.user@contoso.com"),
    )
}

/// A valid 8×8 grayscale baseline JPEG of one shade: one block whose only coefficient is
/// DC, coded with one-symbol Huffman tables (ITU T.81 Annex B/F).
fn jpeg_gray(shade: u8) -> Vec<u8> {
    // Level-shifted DC of a flat block with quantizer 1: 8 * (shade - 128).
    let dc = 8 * (i32::from(shade) - 128);
    let category = if dc == 0 {
        0
    } else {
        32 - (dc.unsigned_abs()).leading_zeros()
    } as u8;
    let mut out = vec![0xFF, 0xD8];
    // DQT: table 0, all ones.
    out.extend([0xFF, 0xDB, 0x00, 0x43, 0x00]);
    out.extend([1u8; 64]);
    // SOF0: 8 bits, 8x8, one component (id 1, 1x1 sampling, table 0).
    out.extend([
        0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00,
    ]);
    // DHT DC 0: one code of length 1 for `category`; DHT AC 0: one code of length 1 for EOB.
    for (class, symbol) in [(0x00u8, category), (0x10, 0x00)] {
        out.extend([0xFF, 0xC4, 0x00, 0x14, class, 1]);
        out.extend([0u8; 15]);
        out.push(symbol);
    }
    // SOS: one component, tables 0/0, spectral 0..63.
    out.extend([0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    // Scan: DC code "0", `category` bits of the value (negative: one's complement), AC EOB "0".
    let mut bits: Vec<bool> = vec![false];
    let value = if dc < 0 { dc + (1 << category) - 1 } else { dc };
    for i in (0..category).rev() {
        bits.push((value >> i) & 1 == 1);
    }
    bits.push(false);
    while !bits.len().is_multiple_of(8) {
        bits.push(true);
    }
    for chunk in bits.chunks(8) {
        let byte = chunk.iter().fold(0u8, |b, bit| (b << 1) | u8::from(*bit));
        out.push(byte);
        if byte == 0xFF {
            out.push(0x00);
        }
    }
    out.extend([0xFF, 0xD9]);
    out
}

/// A valid PNG of one colour (8-bit RGB, stored zlib blocks, CRC-32 and Adler-32; RFC 2083,
/// RFC 1950/1951).
fn png_rgb(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for b in data {
            c ^= u32::from(*b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    // Each scanline: filter type 0, then the pixels.
    let mut line = vec![0u8];
    for _ in 0..width {
        line.extend(rgb);
    }
    let raw = line.repeat(height as usize);
    let (mut a, mut b) = (1u32, 0u32);
    for x in &raw {
        a = (a + u32::from(*x)) % 65_521;
        b = (b + a) % 65_521;
    }
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend((raw.len() as u16).to_le_bytes());
    z.extend((!(raw.len() as u16)).to_le_bytes());
    z.extend(&raw);
    z.extend(((b << 16) | a).to_be_bytes());
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_covers_every_pattern_and_range_type() {
        let spec = GroupwareSpec::default();
        let a = generate(&spec, 7, "Ann Lee", "ann@contoso.com");
        assert_eq!(a, generate(&spec, 7, "Ann Lee", "ann@contoso.com"));
        assert_ne!(a, generate(&spec, 8, "Ann Lee", "ann@contoso.com"));
        let series: Vec<&Event> = a.calendars[0]
            .events
            .iter()
            .filter(|e| e.recurrence.is_some())
            .collect();
        for kind in [
            PatternType::Daily,
            PatternType::Weekly,
            PatternType::AbsoluteMonthly,
            PatternType::RelativeMonthly,
            PatternType::AbsoluteYearly,
            PatternType::RelativeYearly,
        ] {
            assert!(
                series.iter().any(|e| e
                    .recurrence
                    .as_ref()
                    .is_some_and(|r| r.pattern.kind == kind)),
                "{kind:?}"
            );
        }
        let ends: Vec<RangeEnd> = series
            .iter()
            .filter_map(|e| e.recurrence.as_ref().map(|r| r.range.end))
            .collect();
        assert!(ends.iter().any(|e| matches!(e, RangeEnd::EndDate(_))));
        assert!(ends.iter().any(|e| matches!(e, RangeEnd::Numbered(_))));
        assert!(ends.contains(&RangeEnd::NoEnd));
        // Every exception and cancellation sits on a pattern date of its series.
        for e in &series {
            for x in &e.exceptions {
                assert!(e.is_pattern_date(x.original_date), "{}", e.subject);
            }
            for d in &e.cancelled {
                assert!(e.is_pattern_date(*d), "{}", e.subject);
            }
        }
        assert_eq!(a.todo_lists.len(), 3);
        let statuses: std::collections::HashSet<&str> = a.todo_lists[0]
            .tasks
            .iter()
            .map(|t| t.status.as_str())
            .collect();
        assert_eq!(statuses.len(), 5);
        let off = generate(&GroupwareSpec::none(), 7, "Ann Lee", "ann@contoso.com");
        assert_eq!(off.calendars.len(), 1);
        assert!(off.calendars[0].events.is_empty() && off.contact_folders.is_empty());
    }

    #[test]
    fn photos_are_well_formed_images() {
        let png = png_rgb(4, 4, [200, 10, 30]);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
        // The IHDR CRC of a 4x4 RGB image, computed independently (zlib.crc32).
        assert_eq!(&png[29..33], &[0x26, 0x93, 0x09, 0x29]);
        for shade in [0u8, 127, 128, 255] {
            let jpeg = jpeg_gray(shade);
            assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
            assert_eq!(&jpeg[jpeg.len() - 2..], &[0xFF, 0xD9]);
        }
    }
}
