//! Graph's `patternedRecurrence` to an RFC 5545 RRULE (§3.3.10, §3.8.5.3), shared by events and
//! To Do tasks.
//!
//! Mapping (resources/recurrencepattern.md, recurrencerange.md):
//! - `daily` → FREQ=DAILY; `weekly` → `FREQ=WEEKLY;BYDAY=<daysOfWeek>;WKST=<firstDayOfWeek>`.
//! - `absoluteMonthly` → `FREQ=MONTHLY;BYMONTHDAY=<dayOfMonth>`; `absoluteYearly` adds
//!   `BYMONTH=<month>`. Outlook puts a day the month lacks (the 31st in April, Feb 29 in a
//!   common year) on the month's last day (MS-OXOCAL 2.2.1.44.1; Outlook's recurrence dialog),
//!   while RFC 5545 skips such months; days 29–31 are therefore written as
//!   `BYMONTHDAY=28,…,<day>;BYSETPOS=-1`, "the last of these that the month has".
//! - `relativeMonthly`/`relativeYearly` → `BYDAY=<n><day>` (one day) or `BYDAY=<days>;BYSETPOS=<n>`
//!   (several days: "the first weekday"), n = 1…4 or -1 for `last`; yearly adds BYMONTH.
//! - `interval` > 1 → INTERVAL. Range `endDate` → UNTIL (inclusive: the end date at the
//!   series' start time, in UTC when DTSTART has a TZID, a DATE when DTSTART is a DATE);
//!   `numbered` → COUNT; `noEnd` → neither.

use calcard::common::PartialDateTime;
use calcard::icalendar::{
    ICalendarDay, ICalendarFrequency, ICalendarMonth, ICalendarRecurrenceRule, ICalendarWeekday,
};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Weekday};

use super::timezone::Zone;
use super::ConvertError;
use crate::graph::types::PatternedRecurrence;

/// The series' first start, which the rule is anchored to (DTSTART).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// An all-day series: DTSTART;VALUE=DATE.
    Date(NaiveDate),
    /// A timed series: DTSTART at this wall time in `zone`.
    Wall { wall: NaiveDateTime, zone: Zone },
}

impl Anchor {
    pub fn date(&self) -> NaiveDate {
        match self {
            Anchor::Date(d) => *d,
            Anchor::Wall { wall, .. } => wall.date(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Daily,
    Weekly,
    AbsoluteMonthly,
    RelativeMonthly,
    AbsoluteYearly,
    RelativeYearly,
}

/// A pattern checked and normalised.
#[derive(Debug, Clone)]
struct Pattern {
    kind: Kind,
    interval: u16,
    days: Vec<Weekday>,
    day_of_month: u8,
    month: u8,
    /// 1…4, or -1 for `last`.
    index: i8,
    week_start: Weekday,
}

fn weekday(name: &str) -> Result<Weekday, ConvertError> {
    match name.to_ascii_lowercase().as_str() {
        "sunday" => Ok(Weekday::Sun),
        "monday" => Ok(Weekday::Mon),
        "tuesday" => Ok(Weekday::Tue),
        "wednesday" => Ok(Weekday::Wed),
        "thursday" => Ok(Weekday::Thu),
        "friday" => Ok(Weekday::Fri),
        "saturday" => Ok(Weekday::Sat),
        _ => Err(ConvertError::invalid(
            "daysOfWeek",
            name,
            "not a day of the week",
        )),
    }
}

fn ical_weekday(d: Weekday) -> ICalendarWeekday {
    match d {
        Weekday::Sun => ICalendarWeekday::Sunday,
        Weekday::Mon => ICalendarWeekday::Monday,
        Weekday::Tue => ICalendarWeekday::Tuesday,
        Weekday::Wed => ICalendarWeekday::Wednesday,
        Weekday::Thu => ICalendarWeekday::Thursday,
        Weekday::Fri => ICalendarWeekday::Friday,
        Weekday::Sat => ICalendarWeekday::Saturday,
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).map_or(28, |d| d.day())
}

/// Days in the month of the year it has the most (February: 29).
fn max_days(month: u8) -> u8 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Pattern {
    fn parse(rec: &PatternedRecurrence) -> Result<Pattern, ConvertError> {
        let p = &rec.pattern;
        let raw_kind = p
            .kind
            .as_deref()
            .ok_or(ConvertError::Missing("recurrence pattern type"))?;
        let kind = match raw_kind {
            "daily" => Kind::Daily,
            "weekly" => Kind::Weekly,
            "absoluteMonthly" => Kind::AbsoluteMonthly,
            "relativeMonthly" => Kind::RelativeMonthly,
            "absoluteYearly" => Kind::AbsoluteYearly,
            "relativeYearly" => Kind::RelativeYearly,
            other => return Err(ConvertError::UnknownPattern(other.to_string())),
        };
        let interval = match p.interval {
            None | Some(0) => 1,
            Some(i) => u16::try_from(i).map_err(|_| {
                ConvertError::invalid("interval", &i.to_string(), "not between 1 and 65535")
            })?,
        };
        let mut days = Vec::new();
        for d in &p.days_of_week {
            let d = weekday(d)?;
            if !days.contains(&d) {
                days.push(d);
            }
        }
        let week_start = p
            .first_day_of_week
            .as_deref()
            .map(weekday)
            .transpose()?
            .unwrap_or(Weekday::Sun);
        // Graph's default index is `first` (recurrencepattern.md).
        let index = match p.index.as_deref().unwrap_or("first") {
            "first" => 1,
            "second" => 2,
            "third" => 3,
            "fourth" => 4,
            "last" => -1,
            other => {
                return Err(ConvertError::invalid(
                    "index",
                    other,
                    "not first…fourth or last",
                ))
            }
        };
        let mut pattern = Pattern {
            kind,
            interval,
            days,
            day_of_month: 0,
            month: 0,
            index,
            week_start,
        };
        if matches!(kind, Kind::AbsoluteYearly | Kind::RelativeYearly) {
            let m = p.month.ok_or(ConvertError::Missing("recurrence month"))?;
            pattern.month = u8::try_from(m)
                .ok()
                .filter(|m| (1..=12).contains(m))
                .ok_or_else(|| ConvertError::invalid("month", &m.to_string(), "not 1…12"))?;
        }
        if matches!(kind, Kind::AbsoluteMonthly | Kind::AbsoluteYearly) {
            let d = p.day_of_month.ok_or(ConvertError::Missing("dayOfMonth"))?;
            let limit = if pattern.month > 0 {
                max_days(pattern.month)
            } else {
                31
            };
            pattern.day_of_month = u8::try_from(d)
                .ok()
                .filter(|d| (1..=limit).contains(d))
                .ok_or_else(|| {
                    ConvertError::invalid(
                        "dayOfMonth",
                        &d.to_string(),
                        "no such day in the pattern's month",
                    )
                })?;
        }
        if matches!(
            kind,
            Kind::Weekly | Kind::RelativeMonthly | Kind::RelativeYearly
        ) && pattern.days.is_empty()
        {
            return Err(ConvertError::Missing("daysOfWeek"));
        }
        Ok(pattern)
    }

    /// Whether the pattern, started on `start`, has an occurrence on `d` (range ignored).
    fn has(&self, start: NaiveDate, d: NaiveDate) -> bool {
        let interval = i64::from(self.interval);
        let months = i64::from(d.year() - start.year()) * 12 + i64::from(d.month())
            - i64::from(start.month());
        match self.kind {
            Kind::Daily => (d - start).num_days() % interval == 0,
            Kind::Weekly => {
                let week_of = |x: NaiveDate| {
                    let back = (7 + x.weekday().num_days_from_sunday()
                        - self.week_start.num_days_from_sunday())
                        % 7;
                    x - chrono::Duration::days(i64::from(back))
                };
                let weeks = (week_of(d) - week_of(start)).num_days() / 7;
                weeks % interval == 0 && self.days.contains(&d.weekday())
            }
            Kind::AbsoluteMonthly => {
                months % interval == 0 && d.day() == self.clamped_day(d.year(), d.month())
            }
            Kind::AbsoluteYearly => {
                months % (12 * interval) == 0
                    && d.month() == u32::from(self.month)
                    && d.day() == self.clamped_day(d.year(), d.month())
            }
            Kind::RelativeMonthly => months % interval == 0 && self.is_relative_day(d),
            Kind::RelativeYearly => {
                months % (12 * interval) == 0
                    && d.month() == u32::from(self.month)
                    && self.is_relative_day(d)
            }
        }
    }

    fn clamped_day(&self, year: i32, month: u32) -> u32 {
        u32::from(self.day_of_month).min(days_in_month(year, month))
    }

    fn is_relative_day(&self, d: NaiveDate) -> bool {
        let candidates: Vec<u32> = (1..=days_in_month(d.year(), d.month()))
            .filter(|day| {
                NaiveDate::from_ymd_opt(d.year(), d.month(), *day)
                    .is_some_and(|x| self.days.contains(&x.weekday()))
            })
            .collect();
        let pick = if self.index < 0 {
            candidates.last()
        } else {
            candidates.get(usize::from(self.index.unsigned_abs()) - 1)
        };
        pick == Some(&d.day())
    }
}

/// The first date on or after `start` the pattern allows: Graph's first occurrence (the
/// range starts on `startDate`; the series' first instance is the first pattern date from it).
/// RFC 5545 §3.8.2.4 counts DTSTART as an instance even if the rule does not produce it, so a
/// series whose start is not a pattern date must be anchored here instead.
pub fn first_occurrence(
    rec: &PatternedRecurrence,
    start: NaiveDate,
) -> Result<NaiveDate, ConvertError> {
    let pattern = Pattern::parse(rec)?;
    // Every pattern repeats within interval × 4 years (Feb 29 yearly); bounded search.
    let limit = (1461 * i64::from(pattern.interval)).min(400 * 366);
    let mut d = start;
    for _ in 0..=limit {
        if pattern.has(start, d) {
            return Ok(d);
        }
        match d.succ_opt() {
            Some(next) => d = next,
            None => break,
        }
    }
    Err(ConvertError::invalid(
        "recurrence",
        &start.to_string(),
        "the pattern has no date",
    ))
}

/// Whether a series whose first occurrence is on `date` fits the pattern there.
pub fn allows(rec: &PatternedRecurrence, date: NaiveDate) -> Result<bool, ConvertError> {
    Ok(Pattern::parse(rec)?.has(date, date))
}

/// Whether `date` is an occurrence of the series whose first occurrence is `first`, within
/// its range (an exception's original date must be one: RFC 5545 §3.8.4.4). A range `to_rrule`
/// refuses is not checked here.
pub fn is_occurrence(
    rec: &PatternedRecurrence,
    first: NaiveDate,
    date: NaiveDate,
) -> Result<bool, ConvertError> {
    let pattern = Pattern::parse(rec)?;
    if date < first || !pattern.has(first, date) {
        return Ok(false);
    }
    let range = &rec.range;
    let kind = range
        .kind
        .as_deref()
        .unwrap_or(if range.end_date.is_some() {
            "endDate"
        } else {
            "noEnd"
        });
    Ok(match (kind, range.number_of_occurrences) {
        ("endDate", _) => range
            .end_date
            .as_deref()
            .and_then(|raw| NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").ok())
            .is_none_or(|end| date <= end),
        ("numbered", Some(n)) => {
            let mut count = 0;
            let mut d = first;
            while d <= date && count <= n {
                if pattern.has(first, d) {
                    count += 1;
                }
                match d.succ_opt() {
                    Some(next) => d = next,
                    None => break,
                }
            }
            count <= n
        }
        _ => true,
    })
}

pub(crate) fn partial_date(d: NaiveDate) -> Result<PartialDateTime, ConvertError> {
    let year = u16::try_from(d.year())
        .ok()
        .filter(|y| (1..=9999).contains(y))
        .ok_or_else(|| ConvertError::invalid("date", &d.to_string(), "year out of range"))?;
    Ok(PartialDateTime {
        year: Some(year),
        month: u8::try_from(d.month()).ok(),
        day: u8::try_from(d.day()).ok(),
        ..Default::default()
    })
}

/// A date-time value: floating wall time (`utc = false`, written with a TZID) or UTC (`Z`).
pub(crate) fn partial_date_time(
    t: NaiveDateTime,
    utc: bool,
) -> Result<PartialDateTime, ConvertError> {
    use chrono::Timelike;
    let mut p = partial_date(t.date())?;
    p.hour = u8::try_from(t.hour()).ok();
    p.minute = u8::try_from(t.minute()).ok();
    p.second = u8::try_from(t.second()).ok();
    if utc {
        p.tz_hour = Some(0);
        p.tz_minute = Some(0);
    }
    Ok(p)
}

/// The RRULE for `rec`, anchored at `anchor`.
pub fn to_rrule(
    rec: &PatternedRecurrence,
    anchor: &Anchor,
) -> Result<ICalendarRecurrenceRule, ConvertError> {
    let p = Pattern::parse(rec)?;
    let mut rule = ICalendarRecurrenceRule {
        freq: match p.kind {
            Kind::Daily => ICalendarFrequency::Daily,
            Kind::Weekly => ICalendarFrequency::Weekly,
            Kind::AbsoluteMonthly | Kind::RelativeMonthly => ICalendarFrequency::Monthly,
            Kind::AbsoluteYearly | Kind::RelativeYearly => ICalendarFrequency::Yearly,
        },
        interval: (p.interval > 1).then_some(p.interval),
        ..Default::default()
    };
    let plain_days = |ordwk: Option<i16>| -> Vec<ICalendarDay> {
        p.days
            .iter()
            .map(|d| ICalendarDay {
                ordwk,
                weekday: ical_weekday(*d),
            })
            .collect()
    };
    match p.kind {
        Kind::Daily => {}
        Kind::Weekly => {
            rule.byday = plain_days(None);
            rule.wkst = Some(ical_weekday(p.week_start));
        }
        Kind::AbsoluteMonthly | Kind::AbsoluteYearly => {
            if p.day_of_month >= 29 {
                rule.bymonthday = (28..=p.day_of_month as i8).collect();
                rule.bysetpos = vec![-1];
            } else {
                rule.bymonthday = vec![p.day_of_month as i8];
            }
        }
        Kind::RelativeMonthly | Kind::RelativeYearly => {
            if p.days.len() == 1 {
                rule.byday = plain_days(Some(i16::from(p.index)));
            } else {
                rule.byday = plain_days(None);
                rule.bysetpos = vec![i32::from(p.index)];
            }
        }
    }
    if matches!(p.kind, Kind::AbsoluteYearly | Kind::RelativeYearly) {
        rule.bymonth = vec![ICalendarMonth::new(p.month, false)];
    }

    let range = &rec.range;
    let range_kind = match range.kind.as_deref() {
        Some(k) => k,
        // Repair: a range without a type ends on its end date if it has one.
        None if range.end_date.is_some() => "endDate",
        None => "noEnd",
    };
    match range_kind {
        "noEnd" => {}
        "numbered" => {
            let n = range
                .number_of_occurrences
                .ok_or(ConvertError::Missing("numberOfOccurrences"))?;
            rule.count = Some(u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
                ConvertError::invalid("numberOfOccurrences", &n.to_string(), "not ≥ 1")
            })?);
        }
        "endDate" => {
            let raw = range
                .end_date
                .as_deref()
                .ok_or(ConvertError::Missing("range endDate"))?;
            let end = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                .map_err(|_| ConvertError::invalid("endDate", raw, "not a yyyy-mm-dd date"))?;
            if end < anchor.date() {
                return Err(ConvertError::invalid(
                    "endDate",
                    raw,
                    "before the series' first occurrence",
                ));
            }
            // RFC 5545 §3.3.10: UNTIL has DTSTART's value type, and is UTC when DTSTART is a
            // local time with a TZID. Graph's endDate is the last day an occurrence may fall
            // on, so the bound is that day at the series' start time.
            rule.until = Some(match anchor {
                Anchor::Date(_) => partial_date(end)?,
                Anchor::Wall { wall, zone } => {
                    let last = zone.instant(end.and_time(wall.time()));
                    partial_date_time(last.naive_utc(), true)?
                }
            });
        }
        other => return Err(ConvertError::UnknownRange(other.to_string())),
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::types::{RecurrencePattern, RecurrenceRange};

    fn rec(pattern: serde_json::Value, range: serde_json::Value) -> PatternedRecurrence {
        PatternedRecurrence {
            pattern: serde_json::from_value::<RecurrencePattern>(pattern).unwrap(),
            range: serde_json::from_value::<RecurrenceRange>(range).unwrap(),
        }
    }

    fn berlin(wall: &str) -> Anchor {
        Anchor::Wall {
            wall: super::super::timezone::parse_wall(wall).unwrap(),
            zone: Zone::Iana(chrono_tz::Europe::Berlin),
        }
    }

    fn rule(r: &PatternedRecurrence, a: &Anchor) -> String {
        to_rrule(r, a).map(|r| r.to_string()).unwrap()
    }

    #[test]
    fn every_pattern_type_builds_its_rule() {
        let a = berlin("2024-01-08T09:00:00");
        let no_end = serde_json::json!({"type":"noEnd","startDate":"2024-01-08"});
        let cases = [
            (
                serde_json::json!({"type":"daily","interval":2}),
                "FREQ=DAILY;INTERVAL=2",
            ),
            (
                serde_json::json!({"type":"weekly","interval":1,"daysOfWeek":["monday","wednesday"],"firstDayOfWeek":"monday"}),
                "FREQ=WEEKLY;BYDAY=MO,WE;WKST=MO",
            ),
            (
                serde_json::json!({"type":"absoluteMonthly","interval":1,"dayOfMonth":8}),
                "FREQ=MONTHLY;BYMONTHDAY=8",
            ),
            (
                serde_json::json!({"type":"absoluteMonthly","interval":3,"dayOfMonth":31}),
                "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=28,29,30,31;BYSETPOS=-1",
            ),
            (
                serde_json::json!({"type":"relativeMonthly","interval":1,"daysOfWeek":["friday"],"index":"last"}),
                "FREQ=MONTHLY;BYDAY=-1FR",
            ),
            (
                serde_json::json!({"type":"relativeMonthly","daysOfWeek":["monday","tuesday","wednesday","thursday","friday"],"index":"first"}),
                "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1",
            ),
            (
                serde_json::json!({"type":"absoluteYearly","interval":1,"month":2,"dayOfMonth":29}),
                "FREQ=YEARLY;BYMONTHDAY=28,29;BYMONTH=2;BYSETPOS=-1",
            ),
            (
                serde_json::json!({"type":"relativeYearly","interval":1,"month":11,"daysOfWeek":["thursday"],"index":"fourth"}),
                "FREQ=YEARLY;BYDAY=4TH;BYMONTH=11",
            ),
        ];
        for (pattern, want) in cases {
            assert_eq!(
                rule(&rec(pattern.clone(), no_end.clone()), &a),
                want,
                "{pattern}"
            );
        }
    }

    #[test]
    fn until_is_the_end_date_at_start_time_in_utc() {
        let weekly =
            serde_json::json!({"type":"weekly","daysOfWeek":["monday"],"firstDayOfWeek":"sunday"});
        // 09:00 in Berlin on 2024-07-29 (CEST, +02:00) is 07:00 UTC.
        let r = rec(
            weekly.clone(),
            serde_json::json!({"type":"endDate","startDate":"2024-01-08","endDate":"2024-07-29"}),
        );
        assert_eq!(
            rule(&r, &berlin("2024-01-08T09:00:00")),
            "FREQ=WEEKLY;UNTIL=20240729T070000Z;BYDAY=MO;WKST=SU"
        );
        let d = NaiveDate::from_ymd_opt(2024, 1, 8).unwrap();
        assert_eq!(
            rule(&r, &Anchor::Date(d)),
            "FREQ=WEEKLY;UNTIL=20240729;BYDAY=MO;WKST=SU"
        );
        let n = rec(
            weekly,
            serde_json::json!({"type":"numbered","numberOfOccurrences":10}),
        );
        assert_eq!(
            rule(&n, &Anchor::Date(d)),
            "FREQ=WEEKLY;COUNT=10;BYDAY=MO;WKST=SU"
        );
    }

    #[test]
    fn bad_patterns_are_clear_errors() {
        let a = berlin("2024-01-08T09:00:00");
        let no_end = serde_json::json!({"type":"noEnd"});
        let err =
            |p: serde_json::Value, r: serde_json::Value| to_rrule(&rec(p, r), &a).unwrap_err();
        assert_eq!(
            err(serde_json::json!({"type":"hourly"}), no_end.clone()),
            ConvertError::UnknownPattern("hourly".into())
        );
        assert!(matches!(
            err(
                serde_json::json!({"type":"absoluteYearly","month":2,"dayOfMonth":30}),
                no_end.clone()
            ),
            ConvertError::Invalid {
                field: "dayOfMonth",
                ..
            }
        ));
        assert_eq!(
            err(serde_json::json!({"type":"weekly"}), no_end.clone()),
            ConvertError::Missing("daysOfWeek")
        );
        assert_eq!(
            err(
                serde_json::json!({"type":"daily"}),
                serde_json::json!({"type":"forever"})
            ),
            ConvertError::UnknownRange("forever".into())
        );
        assert!(matches!(
            err(
                serde_json::json!({"type":"daily"}),
                serde_json::json!({"type":"numbered","numberOfOccurrences":0})
            ),
            ConvertError::Invalid {
                field: "numberOfOccurrences",
                ..
            }
        ));
        assert!(matches!(
            err(
                serde_json::json!({"type":"daily"}),
                serde_json::json!({"type":"endDate","endDate":"2023-01-01"})
            ),
            ConvertError::Invalid {
                field: "endDate",
                ..
            }
        ));
    }

    #[test]
    fn is_occurrence_follows_the_pattern_and_the_range() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let mondays = |range: serde_json::Value| {
            rec(
                serde_json::json!({"type":"weekly","daysOfWeek":["monday"]}),
                range,
            )
        };
        let first = d("2025-01-06");
        let four = mondays(serde_json::json!({"type":"numbered","numberOfOccurrences":4}));
        let check = |r: &PatternedRecurrence, day: &str| is_occurrence(r, first, d(day)).unwrap();
        assert!(check(&four, "2025-01-06") && check(&four, "2025-01-27"));
        assert!(!check(&four, "2025-01-14"), "a Tuesday");
        assert!(!check(&four, "2025-02-03"), "the fifth Monday");
        assert!(!check(&four, "2024-12-30"), "before the first");
        let until = mondays(serde_json::json!({"type":"endDate","endDate":"2025-01-20"}));
        assert!(check(&until, "2025-01-20") && !check(&until, "2025-01-27"));
        let forever = mondays(serde_json::json!({"type":"noEnd"}));
        assert!(check(&forever, "2030-01-07"));
    }

    #[test]
    fn first_occurrence_is_the_first_pattern_date() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let no_end = serde_json::json!({"type":"noEnd"});
        // Starting on a Sunday, weekly on Tuesday: the first occurrence is the Tuesday.
        let weekly = rec(
            serde_json::json!({"type":"weekly","daysOfWeek":["tuesday"]}),
            no_end.clone(),
        );
        assert_eq!(
            first_occurrence(&weekly, d("2024-01-07")).unwrap(),
            d("2024-01-09")
        );
        let last_fri = rec(
            serde_json::json!({"type":"relativeMonthly","daysOfWeek":["friday"],"index":"last"}),
            no_end.clone(),
        );
        assert_eq!(
            first_occurrence(&last_fri, d("2024-02-01")).unwrap(),
            d("2024-02-23")
        );
        let day31 = rec(
            serde_json::json!({"type":"absoluteMonthly","dayOfMonth":31}),
            no_end,
        );
        assert_eq!(
            first_occurrence(&day31, d("2024-04-02")).unwrap(),
            d("2024-04-30")
        );
    }
}
