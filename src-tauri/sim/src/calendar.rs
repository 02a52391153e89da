//! Calendars and events: the data model, Windows time zones, and [`expand`], which turns a
//! series (pattern + range + exceptions + cancellations) into the occurrences `calendarView`
//! lists in a window.
//!
//! Semantics follow the Graph docs (resources/recurrencepattern.md, recurrencerange.md,
//! event.md):
//! - The range's `startDate` is the date of the master's start; the first occurrence is that
//!   date or the first later date the pattern allows. `endDate` is inclusive ("the date to stop
//!   applying the pattern"). `numbered` counts pattern dates from the first, cancelled ones
//!   included (a cancelled occurrence keeps its slot). Dates are in the event's zone (the
//!   range's `recurrenceTimeZone` defaults to it).
//! - `weekly`: weeks start on `firstDayOfWeek`; every `interval`-th week counted from the
//!   week holding `startDate`, on each of `daysOfWeek`.
//! - `relativeMonthly`/`relativeYearly`: of the days in the month whose weekday is one of
//!   `daysOfWeek`, the `index`-th (`first`…`fourth`) or the `last`.
//! - `absoluteMonthly`/`absoluteYearly`: on `dayOfMonth`; in a month without that day (the
//!   31st in April, Feb 29 in a common year) the last day of the month, as Outlook does
//!   (Outlook's recurrence dialog: "Some months have fewer than 31 days. For these months, the
//!   occurrence will fall on the last day of the month."; MS-OXOCAL 2.2.1.44.1).
//! - Each occurrence keeps the master's wall-clock start and end in the event's zone, so a
//!   09:00 meeting stays at 09:00 across a DST change (its UTC instant moves). A wall-clock
//!   time that does not exist (in a spring-forward gap) moves forward by the gap; an
//!   ambiguous one (in the fall-back hour) takes the earlier instant.
//! - All-day events are floating: midnight to midnight of their dates in whatever zone the
//!   response is rendered in; [`expand`] gives their instants as UTC midnights.

use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, Weekday};

/// The time zone name Graph gives events created with a zone that has no Windows name.
pub const CUSTOM_ZONE: &str = "tzone://Microsoft/Custom";

/// A calendar of a mailbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    pub id: String,
    pub name: String,
    /// Graph `calendarColor`: auto, lightBlue, lightGreen, …
    pub color: String,
    /// `#RRGGBB`, or empty for `auto`.
    pub hex_color: String,
    pub is_default: bool,
    /// The calendar group holding it (resources/calendargroup.md): its id and name. The
    /// default calendar's group is the default group ("My Calendars").
    pub group_id: String,
    pub group_name: String,
    /// Who shared this calendar with the mailbox user as (name, address): Graph sets the
    /// calendar's `owner` to that person, `canShare` false (resources/calendar.md). `None`:
    /// the user's own calendar.
    pub shared_by: Option<(String, String)>,
    /// Single instances and series masters (occurrences are computed, see [`expand`]).
    pub events: Vec<Event>,
}

/// The zone an event was created in.
#[derive(Debug, Clone, PartialEq)]
pub enum Zone {
    /// A Windows zone name, e.g. `W. Europe Standard Time` (see [`windows_to_iana`]).
    Windows(String),
    /// A zone without a Windows name (an imported iCalendar's VTIMEZONE): Graph names it
    /// [`CUSTOM_ZONE`]. Here a fixed offset from UTC.
    Custom { offset_minutes: i32 },
}

impl Zone {
    pub fn windows(name: &str) -> Zone {
        Zone::Windows(name.to_string())
    }

    /// What Graph shows in `originalStartTimeZone` / `originalEndTimeZone`.
    pub fn graph_name(&self) -> &str {
        match self {
            Zone::Windows(n) => n,
            Zone::Custom { .. } => CUSTOM_ZONE,
        }
    }

    fn tz(&self) -> jiff::tz::TimeZone {
        match self {
            Zone::Windows(n) => named_zone(n).unwrap_or(jiff::tz::TimeZone::UTC),
            Zone::Custom { offset_minutes } => jiff::tz::Offset::from_seconds(offset_minutes * 60)
                .map(jiff::tz::TimeZone::fixed)
                .unwrap_or(jiff::tz::TimeZone::UTC),
        }
    }

    /// The instant of a wall-clock time in this zone (a time in a gap moves forward by the
    /// gap; an ambiguous one takes the earlier instant).
    pub fn instant(&self, wall: PrimitiveDateTime) -> OffsetDateTime {
        instant_in(&self.tz(), wall)
    }

    /// The wall-clock time of an instant in this zone.
    pub fn wall(&self, at: OffsetDateTime) -> PrimitiveDateTime {
        wall_in(&self.tz(), at)
    }
}

/// A zone for `Prefer: outlook.timezone`: a Windows name or an IANA name.
pub(crate) fn named_zone(name: &str) -> Option<jiff::tz::TimeZone> {
    let iana = windows_to_iana(name).unwrap_or(name);
    jiff::tz::TimeZone::get(iana).ok()
}

pub(crate) fn instant_in(tz: &jiff::tz::TimeZone, wall: PrimitiveDateTime) -> OffsetDateTime {
    let dt = jiff::civil::DateTime::new(
        wall.year() as i16,
        u8::from(wall.month()) as i8,
        wall.day() as i8,
        wall.hour() as i8,
        wall.minute() as i8,
        wall.second() as i8,
        0,
    );
    dt.ok()
        .and_then(|dt| tz.to_ambiguous_timestamp(dt).compatible().ok())
        .and_then(|ts| OffsetDateTime::from_unix_timestamp(ts.as_second()).ok())
        .unwrap_or_else(|| wall.assume_utc())
}

pub(crate) fn wall_in(tz: &jiff::tz::TimeZone, at: OffsetDateTime) -> PrimitiveDateTime {
    let Ok(ts) = jiff::Timestamp::from_second(at.unix_timestamp()) else {
        return PrimitiveDateTime::new(at.date(), at.time());
    };
    let dt = tz.to_datetime(ts);
    Month::try_from(dt.month() as u8)
        .ok()
        .and_then(|m| Date::from_calendar_date(i32::from(dt.year()), m, dt.day() as u8).ok())
        .zip(Time::from_hms(dt.hour() as u8, dt.minute() as u8, dt.second() as u8).ok())
        .map(|(d, t)| PrimitiveDateTime::new(d, t))
        .unwrap_or_else(|| PrimitiveDateTime::new(at.date(), at.time()))
}

/// The IANA zone of a Windows zone name (CLDR windowsZones.xml, territory "001"), for the
/// zones the simulator uses and the common ones a client may ask for.
pub fn windows_to_iana(windows: &str) -> Option<&'static str> {
    const ZONES: &[(&str, &str)] = &[
        ("UTC", "UTC"),
        ("GMT Standard Time", "Europe/London"),
        ("Greenwich Standard Time", "Atlantic/Reykjavik"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Romance Standard Time", "Europe/Paris"),
        ("Central Europe Standard Time", "Europe/Budapest"),
        ("Central European Standard Time", "Europe/Warsaw"),
        ("E. Europe Standard Time", "Europe/Chisinau"),
        ("FLE Standard Time", "Europe/Kiev"),
        ("GTB Standard Time", "Europe/Bucharest"),
        ("Russian Standard Time", "Europe/Moscow"),
        ("Israel Standard Time", "Asia/Jerusalem"),
        ("Arabian Standard Time", "Asia/Dubai"),
        ("India Standard Time", "Asia/Calcutta"),
        ("Nepal Standard Time", "Asia/Katmandu"),
        ("China Standard Time", "Asia/Shanghai"),
        ("Singapore Standard Time", "Asia/Singapore"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("Korea Standard Time", "Asia/Seoul"),
        ("AUS Eastern Standard Time", "Australia/Sydney"),
        ("New Zealand Standard Time", "Pacific/Auckland"),
        ("Hawaiian Standard Time", "Pacific/Honolulu"),
        ("Alaskan Standard Time", "America/Anchorage"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("Mountain Standard Time", "America/Denver"),
        ("US Mountain Standard Time", "America/Phoenix"),
        ("Central Standard Time", "America/Chicago"),
        ("Eastern Standard Time", "America/New_York"),
        ("Atlantic Standard Time", "America/Halifax"),
        ("E. South America Standard Time", "America/Sao_Paulo"),
        ("South Africa Standard Time", "Africa/Johannesburg"),
    ];
    ZONES
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(windows))
        .map(|(_, i)| *i)
}

/// `recurrence` of a series master: how often (pattern) and for how long (range).
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrence {
    pub pattern: Pattern,
    pub range: Range,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternType {
    Daily,
    Weekly,
    AbsoluteMonthly,
    RelativeMonthly,
    AbsoluteYearly,
    RelativeYearly,
}

impl PatternType {
    pub fn graph_name(self) -> &'static str {
        match self {
            PatternType::Daily => "daily",
            PatternType::Weekly => "weekly",
            PatternType::AbsoluteMonthly => "absoluteMonthly",
            PatternType::RelativeMonthly => "relativeMonthly",
            PatternType::AbsoluteYearly => "absoluteYearly",
            PatternType::RelativeYearly => "relativeYearly",
        }
    }
}

/// `weekIndex`: which of the matching days in the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeekIndex {
    First,
    Second,
    Third,
    Fourth,
    Last,
    /// Not one of Graph's values (recurrencepattern.md defines first…fourth and last): served
    /// only by the hostile corpus (the `hostile` module, feature `hostile`); the pattern then has the 5th such day.
    Fifth,
}

impl WeekIndex {
    pub fn graph_name(self) -> &'static str {
        match self {
            WeekIndex::First => "first",
            WeekIndex::Second => "second",
            WeekIndex::Third => "third",
            WeekIndex::Fourth => "fourth",
            WeekIndex::Last => "last",
            WeekIndex::Fifth => "fifth",
        }
    }
}

/// `recurrencePattern`. Fields a type does not use are ignored by [`expand`] and not
/// rendered (the docs: "include only the properties that you need").
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub kind: PatternType,
    /// Days, weeks, months or years between occurrences; at least 1.
    pub interval: u32,
    /// weekly, relativeMonthly, relativeYearly.
    pub days_of_week: Vec<Weekday>,
    /// absoluteMonthly, absoluteYearly: 1–31.
    pub day_of_month: u8,
    /// absoluteYearly, relativeYearly: 1–12.
    pub month: u8,
    /// relativeMonthly, relativeYearly.
    pub index: WeekIndex,
    /// weekly (Graph's default is sunday).
    pub first_day_of_week: Weekday,
}

impl Pattern {
    /// A pattern of `kind` every `interval` units, other fields at Graph's defaults.
    pub fn new(kind: PatternType, interval: u32) -> Pattern {
        Pattern {
            kind,
            interval,
            days_of_week: Vec::new(),
            day_of_month: 0,
            month: 0,
            index: WeekIndex::First,
            first_day_of_week: Weekday::Sunday,
        }
    }
}

/// `recurrenceRange.type` with its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEnd {
    /// Through this date (inclusive).
    EndDate(Date),
    /// This many occurrences.
    Numbered(u32),
    NoEnd,
}

/// `recurrenceRange`; `recurrenceTimeZone` is the event's zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub start_date: Date,
    pub end: RangeEnd,
}

/// An attendee and their answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Attendee {
    pub name: String,
    pub address: String,
    /// required | optional | resource
    pub kind: String,
    /// none | organizer | tentativelyAccepted | accepted | declined | notResponded
    pub response: String,
    pub response_time: Option<OffsetDateTime>,
}

/// A file attached to an event (`#microsoft.graph.fileAttachment`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventAttachment {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub last_modified: OffsetDateTime,
}

/// A modified occurrence of a series: its own id, times and subject; everything else comes
/// from the master.
#[derive(Debug, Clone, PartialEq)]
pub struct EventException {
    pub id: String,
    /// The pattern date it replaces (in the series' zone).
    pub original_date: Date,
    /// Wall-clock start and end in the series' zone.
    pub start: PrimitiveDateTime,
    pub end: PrimitiveDateTime,
    pub subject: String,
    pub location: String,
    pub last_modified: OffsetDateTime,
}

/// A single instance or a series master.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The immutable id.
    pub id: String,
    /// The master's global object id (hex), what beta calls `uid`; occurrences' v1.0
    /// `iCalUId` carries their date in it.
    pub uid: String,
    pub subject: String,
    /// HTML.
    pub body_html: String,
    pub location: String,
    /// Wall-clock start and end in `zone` (midnights for all-day events).
    pub start: PrimitiveDateTime,
    pub end: PrimitiveDateTime,
    pub zone: Zone,
    pub is_all_day: bool,
    /// `Some`: a series master.
    pub recurrence: Option<Recurrence>,
    pub exceptions: Vec<EventException>,
    /// Pattern dates (in the series' zone) of cancelled occurrences.
    pub cancelled: Vec<Date>,
    pub organizer_name: String,
    pub organizer_address: String,
    pub is_organizer: bool,
    pub attendees: Vec<Attendee>,
    /// `None`: no reminder.
    pub reminder_minutes: Option<i32>,
    pub categories: Vec<String>,
    /// normal | personal | private | confidential
    pub sensitivity: String,
    /// free | tentative | busy | oof | workingElsewhere | unknown
    pub show_as: String,
    /// low | normal | high
    pub importance: String,
    pub online_meeting_url: Option<String>,
    pub attachments: Vec<EventAttachment>,
    pub created: OffsetDateTime,
    pub last_modified: OffsetDateTime,
}

/// One item as `calendarView` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    /// The date the pattern put it on, in the series' zone (a single instance: its start date).
    pub original_date: Date,
    /// Where the pattern put it (an exception's `originalStart`).
    pub original_start: OffsetDateTime,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// `Some(id)`: a modified occurrence (an exception).
    pub exception_id: Option<String>,
}

fn floating(wall: PrimitiveDateTime) -> OffsetDateTime {
    wall.assume_utc()
}

impl Event {
    /// The instant of a wall-clock time of this event (all-day: floating, as UTC).
    pub fn at(&self, wall: PrimitiveDateTime) -> OffsetDateTime {
        if self.is_all_day {
            floating(wall)
        } else {
            self.zone.instant(wall)
        }
    }

    /// The wall-clock start of the occurrence on pattern date `date`.
    pub fn wall_start_on(&self, date: Date) -> PrimitiveDateTime {
        PrimitiveDateTime::new(date, self.start.time())
    }

    /// The wall-clock end of the occurrence on pattern date `date` (the master's wall-clock
    /// length, so an occurrence ends at the same local time).
    pub fn wall_end_on(&self, date: Date) -> PrimitiveDateTime {
        self.wall_start_on(date) + (self.end - self.start)
    }

    /// Is `date` one of this series' pattern dates within its range?
    pub fn is_pattern_date(&self, date: Date) -> bool {
        let mut found = false;
        if let Some(r) = &self.recurrence {
            pattern_dates(r, date, |d| {
                found = d == date;
                d < date
            });
        }
        found
    }
}

/// Whether `[start, end)` overlaps the window `[from, to)` as calendarView selects: the
/// item starts before the window ends and ends after it starts (a zero-length item at the
/// window's start is in).
fn overlaps(
    start: OffsetDateTime,
    end: OffsetDateTime,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> bool {
    start < to && (end > from || (end == start && start >= from))
}

/// The occurrences of `event` overlapping `[from, to)`, in order of start: a single instance
/// as itself; a series expanded by its pattern and range, exceptions at their own times (in
/// the window by their new times), cancelled occurrences left out. See the module doc.
pub fn expand(event: &Event, from: OffsetDateTime, to: OffsetDateTime) -> Vec<Occurrence> {
    let Some(rec) = &event.recurrence else {
        let (start, end) = (event.at(event.start), event.at(event.end));
        return if overlaps(start, end, from, to) {
            vec![Occurrence {
                original_date: event.start.date(),
                original_start: start,
                start,
                end,
                exception_id: None,
            }]
        } else {
            Vec::new()
        };
    };
    // Pattern dates matter up to the window's end (a day of slack for zones far from UTC),
    // and up to the last exception, which may have moved into the window from a later date.
    let window_end = to.date().saturating_add(Duration::days(2));
    let limit = event
        .exceptions
        .iter()
        .map(|x| x.original_date)
        .fold(window_end, Date::max);
    // Occurrences starting well before the window cannot reach into it (unless moved):
    // skip them without zone arithmetic.
    let span = (event.end - event.start).whole_days() + 2;
    let too_early = from.date().saturating_sub(Duration::days(span));
    let mut out = Vec::new();
    pattern_dates(rec, limit, |date| {
        if event.cancelled.contains(&date)
            || (date < too_early && !event.exceptions.iter().any(|x| x.original_date == date))
        {
            return true;
        }
        let original_start = event.at(event.wall_start_on(date));
        let (start, end, exception_id) =
            match event.exceptions.iter().find(|x| x.original_date == date) {
                Some(x) => (event.at(x.start), event.at(x.end), Some(x.id.clone())),
                None => (original_start, event.at(event.wall_end_on(date)), None),
            };
        if overlaps(start, end, from, to) {
            out.push(Occurrence {
                original_date: date,
                original_start,
                start,
                end,
                exception_id,
            });
        }
        true
    });
    out.sort_by_key(|o| (o.start, o.original_date));
    out
}

/// Calls `each` with the series' pattern dates in order, within its range and not after
/// `until`, while it returns true.
pub(crate) fn pattern_dates(rec: &Recurrence, until: Date, mut each: impl FnMut(Date) -> bool) {
    let start = rec.range.start_date;
    let mut count = 0u32;
    let mut emit = |d: Date| -> bool {
        if d < start {
            return true;
        }
        if d > until {
            return false;
        }
        match rec.range.end {
            RangeEnd::EndDate(end) if d > end => return false,
            RangeEnd::Numbered(n) if count >= n => return false,
            _ => {}
        }
        count += 1;
        each(d)
    };
    let p = &rec.pattern;
    let interval = i64::from(p.interval.max(1));
    match p.kind {
        PatternType::Daily => {
            let mut d = start;
            loop {
                if !emit(d) {
                    return;
                }
                match d.checked_add(Duration::days(interval)) {
                    Some(next) => d = next,
                    None => return,
                }
            }
        }
        PatternType::Weekly => {
            let back = (7 + start.weekday().number_days_from_sunday() as i64
                - p.first_day_of_week.number_days_from_sunday() as i64)
                % 7;
            let mut week = start - Duration::days(back);
            loop {
                for offset in 0..7 {
                    let d = week + Duration::days(offset);
                    if p.days_of_week.contains(&d.weekday()) && !emit(d) {
                        return;
                    }
                }
                match week.checked_add(Duration::weeks(interval)) {
                    Some(next) if next <= until => week = next,
                    _ => return,
                }
            }
        }
        PatternType::AbsoluteMonthly | PatternType::RelativeMonthly => {
            let mut months = i64::from(start.year()) * 12 + i64::from(u8::from(start.month())) - 1;
            loop {
                let (year, month) = ((months / 12) as i32, (months % 12) as u8 + 1);
                if let Some(d) = day_in_month(p, year, month) {
                    if !emit(d) {
                        return;
                    }
                }
                if year > until.year() {
                    return;
                }
                months += interval;
            }
        }
        PatternType::AbsoluteYearly | PatternType::RelativeYearly => {
            let mut year = start.year();
            loop {
                if let Some(d) = day_in_month(p, year, p.month) {
                    if !emit(d) {
                        return;
                    }
                }
                if year > until.year() {
                    return;
                }
                year += interval as i32;
            }
        }
    }
}

/// The pattern's day in one month: `dayOfMonth` (or the month's last day when it has fewer),
/// or the `index`-th of the days whose weekday is in `daysOfWeek`.
fn day_in_month(p: &Pattern, year: i32, month: u8) -> Option<Date> {
    let m = Month::try_from(month).ok()?;
    let last = time::util::days_in_month(m, year);
    match p.kind {
        PatternType::AbsoluteMonthly | PatternType::AbsoluteYearly => {
            Date::from_calendar_date(year, m, p.day_of_month.clamp(1, last)).ok()
        }
        _ => {
            let days: Vec<Date> = (1..=last)
                .filter_map(|d| Date::from_calendar_date(year, m, d).ok())
                .filter(|d| p.days_of_week.contains(&d.weekday()))
                .collect();
            match p.index {
                WeekIndex::First => days.first().copied(),
                WeekIndex::Second => days.get(1).copied(),
                WeekIndex::Third => days.get(2).copied(),
                WeekIndex::Fourth => days.get(3).copied(),
                WeekIndex::Last => days.last().copied(),
                WeekIndex::Fifth => days.get(4).copied(),
            }
        }
    }
}

pub(crate) fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Sunday => "sunday",
        Weekday::Monday => "monday",
        Weekday::Tuesday => "tuesday",
        Weekday::Wednesday => "wednesday",
        Weekday::Thursday => "thursday",
        Weekday::Friday => "friday",
        Weekday::Saturday => "saturday",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn series(
        zone: Zone,
        start: PrimitiveDateTime,
        minutes: i64,
        pattern: Pattern,
        end: RangeEnd,
    ) -> Event {
        Event {
            id: "master".into(),
            uid: "uid".into(),
            subject: "s".into(),
            body_html: String::new(),
            location: String::new(),
            start,
            end: start + Duration::minutes(minutes),
            zone,
            is_all_day: false,
            recurrence: Some(Recurrence {
                pattern,
                range: Range {
                    start_date: start.date(),
                    end,
                },
            }),
            exceptions: Vec::new(),
            cancelled: Vec::new(),
            organizer_name: String::new(),
            organizer_address: String::new(),
            is_organizer: true,
            attendees: Vec::new(),
            reminder_minutes: None,
            categories: Vec::new(),
            sensitivity: "normal".into(),
            show_as: "busy".into(),
            importance: "normal".into(),
            online_meeting_url: None,
            attachments: Vec::new(),
            created: OffsetDateTime::UNIX_EPOCH,
            last_modified: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn all(e: &Event) -> Vec<Occurrence> {
        expand(
            e,
            datetime!(2000-01-01 0:00 UTC),
            datetime!(2040-01-01 0:00 UTC),
        )
    }

    fn dates(e: &Event) -> Vec<Date> {
        all(e).iter().map(|o| o.original_date).collect()
    }

    fn utc() -> Zone {
        Zone::windows("UTC")
    }

    fn with_days(mut p: Pattern, days: &[Weekday]) -> Pattern {
        p.days_of_week = days.to_vec();
        p
    }

    #[test]
    fn daily_with_an_interval_steps_that_many_days_and_numbered_stops_after_n() {
        let e = series(
            utc(),
            datetime!(2025-01-30 10:00),
            30,
            Pattern::new(PatternType::Daily, 3),
            RangeEnd::Numbered(4),
        );
        assert_eq!(
            dates(&e),
            [
                date!(2025 - 01 - 30),
                date!(2025 - 02 - 02),
                date!(2025 - 02 - 05),
                date!(2025 - 02 - 08)
            ]
        );
    }

    #[test]
    fn weekly_counts_weeks_from_the_first_day_of_week_and_skips_days_before_the_start() {
        // Starts on a Wednesday; every 2nd week on Monday and Thursday, weeks from Monday:
        // the Monday of the first week is before the start and left out.
        let mut p = with_days(
            Pattern::new(PatternType::Weekly, 2),
            &[Weekday::Monday, Weekday::Thursday],
        );
        p.first_day_of_week = Weekday::Monday;
        let e = series(
            utc(),
            datetime!(2025-01-08 9:00),
            60,
            p.clone(),
            RangeEnd::EndDate(date!(2025 - 02 - 03)),
        );
        assert_eq!(
            dates(&e),
            [
                date!(2025 - 01 - 09),
                date!(2025 - 01 - 20),
                date!(2025 - 01 - 23),
                date!(2025 - 02 - 03)
            ],
            "endDate is inclusive"
        );
        // The same with weeks from Sunday: 2025-01-05..11 is week 0; Sunday 19th starts week 2.
        p.first_day_of_week = Weekday::Sunday;
        p.days_of_week = vec![Weekday::Sunday, Weekday::Thursday];
        let e = series(
            utc(),
            datetime!(2025-01-08 9:00),
            60,
            p,
            RangeEnd::Numbered(3),
        );
        assert_eq!(
            dates(&e),
            [
                date!(2025 - 01 - 09),
                date!(2025 - 01 - 19),
                date!(2025 - 01 - 23)
            ]
        );
    }

    #[test]
    fn absolute_monthly_on_the_31st_falls_on_the_last_day_of_shorter_months() {
        let mut p = Pattern::new(PatternType::AbsoluteMonthly, 1);
        p.day_of_month = 31;
        let e = series(
            utc(),
            datetime!(2024-01-31 16:00),
            60,
            p,
            RangeEnd::Numbered(5),
        );
        assert_eq!(
            dates(&e),
            [
                date!(2024 - 01 - 31),
                date!(2024 - 02 - 29),
                date!(2024 - 03 - 31),
                date!(2024 - 04 - 30),
                date!(2024 - 05 - 31)
            ]
        );
    }

    #[test]
    fn absolute_monthly_with_an_interval_and_a_start_after_the_day_begins_next_period() {
        let mut p = Pattern::new(PatternType::AbsoluteMonthly, 2);
        p.day_of_month = 10;
        let e = series(
            utc(),
            datetime!(2025-01-15 8:00),
            60,
            p,
            RangeEnd::Numbered(3),
        );
        // January's 10th is before the start; then every second month from January.
        assert_eq!(
            dates(&e),
            [
                date!(2025 - 03 - 10),
                date!(2025 - 05 - 10),
                date!(2025 - 07 - 10)
            ]
        );
    }

    #[test]
    fn relative_monthly_last_and_several_days_pick_the_index_th_matching_day() {
        let p = Pattern {
            index: WeekIndex::Last,
            ..with_days(
                Pattern::new(PatternType::RelativeMonthly, 1),
                &[Weekday::Friday],
            )
        };
        let e = series(
            utc(),
            datetime!(2025-01-01 15:00),
            60,
            p,
            RangeEnd::Numbered(3),
        );
        assert_eq!(
            dates(&e),
            [
                date!(2025 - 01 - 31),
                date!(2025 - 02 - 28),
                date!(2025 - 03 - 28)
            ]
        );
        // The second of (Tuesday or Thursday), every 3 months.
        let p = Pattern {
            index: WeekIndex::Second,
            ..with_days(
                Pattern::new(PatternType::RelativeMonthly, 3),
                &[Weekday::Tuesday, Weekday::Thursday],
            )
        };
        let e = series(
            utc(),
            datetime!(2025-01-01 15:00),
            60,
            p,
            RangeEnd::EndDate(date!(2025 - 12 - 31)),
        );
        // Jan 2025: Thu 2, Tue 7 -> 7th; Apr: Tue 1, Thu 3 -> 3rd; Jul: Tue 1, Thu 3 -> 3rd;
        // Oct: Thu 2, Tue 7 -> 7th.
        assert_eq!(
            dates(&e),
            [
                date!(2025 - 01 - 07),
                date!(2025 - 04 - 03),
                date!(2025 - 07 - 03),
                date!(2025 - 10 - 07)
            ]
        );
        // The fourth weekday of a month.
        let p = Pattern {
            index: WeekIndex::Fourth,
            ..with_days(
                Pattern::new(PatternType::RelativeMonthly, 1),
                &[
                    Weekday::Monday,
                    Weekday::Tuesday,
                    Weekday::Wednesday,
                    Weekday::Thursday,
                    Weekday::Friday,
                ],
            )
        };
        let e = series(
            utc(),
            datetime!(2025-03-01 9:00),
            60,
            p,
            RangeEnd::Numbered(1),
        );
        assert_eq!(dates(&e), [date!(2025 - 03 - 06)]);
    }

    #[test]
    fn absolute_yearly_on_feb_29_falls_on_feb_28_in_common_years() {
        let mut p = Pattern::new(PatternType::AbsoluteYearly, 1);
        p.day_of_month = 29;
        p.month = 2;
        let mut e = series(
            utc(),
            datetime!(2024-02-29 0:00),
            24 * 60,
            p,
            RangeEnd::NoEnd,
        );
        e.is_all_day = true;
        let found = expand(
            &e,
            datetime!(2024-01-01 0:00 UTC),
            datetime!(2029-01-01 0:00 UTC),
        );
        let got: Vec<Date> = found.iter().map(|o| o.original_date).collect();
        assert_eq!(
            got,
            [
                date!(2024 - 02 - 29),
                date!(2025 - 02 - 28),
                date!(2026 - 02 - 28),
                date!(2027 - 02 - 28),
                date!(2028 - 02 - 29)
            ]
        );
        assert_eq!(found[1].start, datetime!(2025-02-28 0:00 UTC), "floating");
        assert_eq!(found[1].end, datetime!(2025-03-01 0:00 UTC));
    }

    #[test]
    fn relative_yearly_with_an_interval() {
        let p = Pattern {
            index: WeekIndex::Fourth,
            month: 11,
            ..with_days(
                Pattern::new(PatternType::RelativeYearly, 2),
                &[Weekday::Thursday],
            )
        };
        let e = series(
            utc(),
            datetime!(2024-11-28 12:00),
            60,
            p,
            RangeEnd::Numbered(3),
        );
        assert_eq!(
            dates(&e),
            [
                date!(2024 - 11 - 28),
                date!(2026 - 11 - 26),
                date!(2028 - 11 - 23)
            ]
        );
    }

    #[test]
    fn wall_clock_time_is_kept_across_dst_so_the_utc_instant_moves() {
        let e = series(
            Zone::windows("W. Europe Standard Time"),
            datetime!(2025-03-28 9:00),
            60,
            Pattern::new(PatternType::Daily, 1),
            RangeEnd::Numbered(4),
        );
        let got: Vec<(OffsetDateTime, OffsetDateTime)> =
            all(&e).iter().map(|o| (o.start, o.end)).collect();
        assert_eq!(
            got,
            [
                (
                    datetime!(2025-03-28 8:00 UTC),
                    datetime!(2025-03-28 9:00 UTC)
                ),
                (
                    datetime!(2025-03-29 8:00 UTC),
                    datetime!(2025-03-29 9:00 UTC)
                ),
                // CEST from 2025-03-30.
                (
                    datetime!(2025-03-30 7:00 UTC),
                    datetime!(2025-03-30 8:00 UTC)
                ),
                (
                    datetime!(2025-03-31 7:00 UTC),
                    datetime!(2025-03-31 8:00 UTC)
                ),
            ]
        );
        // A 02:30 meeting on the spring-forward day (02:00-03:00 does not exist) moves forward.
        let e = series(
            Zone::windows("Pacific Standard Time"),
            datetime!(2025-03-08 2:30),
            30,
            Pattern::new(PatternType::Daily, 1),
            RangeEnd::Numbered(2),
        );
        let o = all(&e);
        assert_eq!(o[0].start, datetime!(2025-03-08 10:30 UTC));
        assert_eq!(o[1].start, datetime!(2025-03-09 10:30 UTC), "03:30 PDT");
    }

    #[test]
    fn exceptions_move_cancellations_vanish_and_the_window_selects_by_new_times() {
        let mut e = series(
            Zone::Custom {
                offset_minutes: 345,
            },
            datetime!(2025-05-01 10:00),
            60,
            Pattern::new(PatternType::Daily, 1),
            RangeEnd::Numbered(5),
        );
        e.cancelled.push(date!(2025 - 05 - 02));
        e.exceptions.push(EventException {
            id: "x".into(),
            original_date: date!(2025 - 05 - 05),
            start: datetime!(2025-04-30 10:00),
            end: datetime!(2025-04-30 11:00),
            subject: "moved".into(),
            location: String::new(),
            last_modified: OffsetDateTime::UNIX_EPOCH,
        });
        let got = all(&e);
        assert_eq!(got.len(), 4, "the cancelled one is absent");
        // The moved exception comes first (sorted by its new start) with its original slot.
        assert_eq!(got[0].exception_id.as_deref(), Some("x"));
        assert_eq!(got[0].start, datetime!(2025-04-30 4:15 UTC));
        assert_eq!(got[0].original_start, datetime!(2025-05-05 4:15 UTC));
        // A window holding only the exception's new time finds it; one holding its original
        // slot does not.
        let w = expand(
            &e,
            datetime!(2025-04-30 0:00 UTC),
            datetime!(2025-05-01 0:00 UTC),
        );
        assert_eq!(w.len(), 1);
        let w = expand(
            &e,
            datetime!(2025-05-05 0:00 UTC),
            datetime!(2025-05-06 0:00 UTC),
        );
        assert!(w.is_empty());
        // Numbered counts the cancelled slot: five slots, the last on May 5th.
        assert!(e.is_pattern_date(date!(2025 - 05 - 05)));
        assert!(!e.is_pattern_date(date!(2025 - 05 - 06)));
    }

    #[test]
    fn a_window_years_after_the_start_finds_its_day_and_an_exception_moved_into_it() {
        let mut e = series(
            Zone::windows("Eastern Standard Time"),
            datetime!(2020-01-01 9:00),
            60,
            Pattern::new(PatternType::Daily, 1),
            RangeEnd::NoEnd,
        );
        e.exceptions.push(EventException {
            id: "far".into(),
            original_date: date!(2020 - 01 - 02),
            start: datetime!(2030-06-01 18:00),
            end: datetime!(2030-06-01 19:00),
            subject: "moved a decade".into(),
            location: String::new(),
            last_modified: OffsetDateTime::UNIX_EPOCH,
        });
        let w = expand(
            &e,
            datetime!(2030-06-01 0:00 UTC),
            datetime!(2030-06-02 0:00 UTC),
        );
        let got: Vec<(Date, OffsetDateTime)> =
            w.iter().map(|o| (o.original_date, o.start)).collect();
        assert_eq!(
            got,
            [
                (date!(2030 - 06 - 01), datetime!(2030-06-01 13:00 UTC)),
                (date!(2020 - 01 - 02), datetime!(2030-06-01 22:00 UTC))
            ]
        );
    }

    #[test]
    fn an_occurrence_overlapping_the_window_edge_is_in_and_one_ending_at_its_start_is_out() {
        let e = series(
            utc(),
            datetime!(2025-01-01 23:00),
            120,
            Pattern::new(PatternType::Daily, 1),
            RangeEnd::NoEnd,
        );
        let w = expand(
            &e,
            datetime!(2025-01-03 0:00 UTC),
            datetime!(2025-01-04 0:00 UTC),
        );
        let got: Vec<Date> = w.iter().map(|o| o.original_date).collect();
        // Jan 2 23:00-01:00 overlaps; Jan 3 23:00 starts inside.
        assert_eq!(got, [date!(2025 - 01 - 02), date!(2025 - 01 - 03)]);
        let w = expand(
            &e,
            datetime!(2025-01-03 1:00 UTC),
            datetime!(2025-01-03 23:00 UTC),
        );
        assert!(w.is_empty());
    }
}
