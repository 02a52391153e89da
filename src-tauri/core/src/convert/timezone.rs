//! Graph's time zone names to IANA zones, and Graph's wall times to instants and back.
//!
//! Graph names zones the Windows way (`W. Europe Standard Time`), sometimes with IANA names,
//! `UTC`, or `tzone://Microsoft/Custom` for a zone imported from an iCalendar file that has no
//! Windows name (resources/datetimetimezone.md). Windows names are mapped with CLDR's
//! windowsZones table (territory `001`, the zone CLDR calls the "golden" one), vendored in
//! `data/windowsZones.json` from the npm package `cldr-core`. The IANA rules come from
//! `chrono-tz`, which compiles the tz database in, so output does not depend on the host.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::ConvertError;
use crate::graph::types::DateTimeTimeZone;

static WINDOWS_ZONES_JSON: &str = include_str!("../../data/windowsZones.json");

/// The zone a time is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Written as `DTSTART;TZID=<name>:<wall time>` with a VTIMEZONE.
    Iana(Tz),
    /// Written as `DTSTART:<utc>Z`, no VTIMEZONE.
    Utc,
}

impl Zone {
    /// The TZID to write, `None` for UTC.
    pub fn tzid(&self) -> Option<&'static str> {
        match self {
            Zone::Iana(tz) => Some(tz.name()),
            Zone::Utc => None,
        }
    }

    /// The wall-clock time of an instant in this zone.
    pub fn wall(&self, at: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Iana(tz) => at.with_timezone(tz).naive_local(),
            Zone::Utc => at.naive_utc(),
        }
    }

    /// The instant of a wall-clock time in this zone. A time in a spring-forward gap moves
    /// forward by the gap, an ambiguous one takes the earlier instant (what Outlook and
    /// RFC 5545 §3.3.5 do).
    pub fn instant(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        let Zone::Iana(tz) = self else {
            return wall.and_utc();
        };
        match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(early, _) => early.with_timezone(&Utc),
            LocalResult::None => {
                // Gaps are at most a few hours; the wall time before the gap keeps the offset
                // in force before it, which lands after the gap.
                let before = (1..=4)
                    .map(|h| wall - Duration::hours(h))
                    .find_map(|w| tz.from_local_datetime(&w).earliest());
                match before {
                    Some(b) => {
                        let offset = b.naive_local() - b.naive_utc();
                        (wall - offset).and_utc()
                    }
                    None => wall.and_utc(),
                }
            }
        }
    }
}

/// Names that mean UTC, in Graph or in tzdb.
fn is_utc_name(name: &str) -> bool {
    const UTC_NAMES: &[&str] = &[
        "utc",
        "etc/utc",
        "etc/gmt",
        "gmt",
        "etc/uct",
        "uct",
        "etc/universal",
        "universal",
        "etc/zulu",
        "zulu",
        "etc/gmt0",
        "etc/gmt+0",
        "etc/gmt-0",
        "gmt0",
        "z",
        "coordinated universal time",
        "tzone://microsoft/utc",
    ];
    UTC_NAMES.contains(&name.to_ascii_lowercase().as_str())
}

/// Windows zone name (lower case) -> IANA name, from the vendored CLDR table, parsed once.
fn windows_zones() -> &'static HashMap<String, String> {
    static MAP: OnceLock<HashMap<String, String>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut map = HashMap::new();
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(WINDOWS_ZONES_JSON) else {
            return map;
        };
        let zones = doc
            .pointer("/supplemental/windowsZones/mapTimezones")
            .and_then(|v| v.as_array());
        for entry in zones.into_iter().flatten() {
            let Some(zone) = entry.get("mapZone") else {
                continue;
            };
            let field = |k: &str| zone.get(k).and_then(|v| v.as_str());
            if let (Some(windows), Some(iana), Some("001")) =
                (field("_other"), field("_type"), field("_territory"))
            {
                if let Some(first) = iana.split_whitespace().next() {
                    map.insert(windows.to_ascii_lowercase(), first.to_string());
                }
            }
        }
        map
    })
}

/// The IANA name CLDR gives a Windows zone name (territory 001), if any.
pub fn windows_to_iana(windows: &str) -> Option<&'static str> {
    windows_zones()
        .get(&windows.trim().to_ascii_lowercase())
        .map(String::as_str)
}

/// The zone a Graph name stands for: a Windows name, an IANA name, or a UTC alias. `None` for
/// `tzone://Microsoft/Custom` and names neither table knows.
pub fn resolve(name: &str) -> Option<Zone> {
    let name = name.trim();
    if is_utc_name(name) {
        return Some(Zone::Utc);
    }
    let iana = windows_to_iana(name).unwrap_or(name);
    if is_utc_name(iana) {
        return Some(Zone::Utc);
    }
    iana.parse::<Tz>().ok().map(Zone::Iana)
}

/// Parses Graph's `dateTime` (`2024-03-01T08:15:00.0000000`, no offset) or a DateTimeOffset
/// (`2024-03-01T08:15:00Z`, converted to UTC wall time).
pub fn parse_wall(raw: &str) -> Option<NaiveDateTime> {
    // Years iCalendar can write; also keeps date arithmetic far from chrono's limits.
    parse_any_wall(raw).filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)))
}

fn parse_any_wall(raw: &str) -> Option<NaiveDateTime> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.naive_utc());
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
}

/// The date whose midnight is nearest to `t`: the local date of a date-only value (a To Do due
/// date, a birthday) that Graph stored as some local midnight and renders in UTC. Right for
/// zones from UTC−12 to UTC+11:59; Exchange stores birthdays near noon UTC for this reason.
pub fn nearest_date(t: NaiveDateTime) -> chrono::NaiveDate {
    (t + Duration::hours(12)).date()
}

/// The instant a `dateTimeTimeZone` names. A missing zone means UTC (Graph's default); an
/// unknown one is read as UTC too and reported in `notes`.
pub fn instant_of(
    field: &'static str,
    value: &DateTimeTimeZone,
    notes: &mut Vec<String>,
) -> Result<DateTime<Utc>, ConvertError> {
    let wall = parse_wall(&value.date_time)
        .ok_or_else(|| ConvertError::invalid(field, &value.date_time, "not a date-time"))?;
    let zone = match value.time_zone.as_deref() {
        None | Some("") => Zone::Utc,
        Some(name) => resolve(name).unwrap_or_else(|| {
            notes.push(format!("{field}: unknown time zone {name:?}, read as UTC"));
            Zone::Utc
        }),
    };
    Ok(zone.instant(wall))
}

/// The first of `names` that resolves, else UTC. Names tried before it that did not resolve
/// are reported in `notes`. This is the documented fallback for `tzone://Microsoft/Custom` and
/// unknown zones: times are written in UTC, which keeps every instant right; only the series'
/// local-date rules (weekdays, month days) are then evaluated in UTC, which differs when the
/// UTC date is not the local date.
pub fn first_known(names: &[Option<&str>], notes: &mut Vec<String>) -> Zone {
    let mut tried: Vec<&str> = Vec::new();
    let mut found = None;
    for name in names.iter().flatten() {
        let name = name.trim();
        if name.is_empty() || tried.contains(&name) {
            continue;
        }
        if let Some(zone) = resolve(name) {
            found = Some(zone);
            break;
        }
        tried.push(name);
    }
    let zone = found.unwrap_or(Zone::Utc);
    if !tried.is_empty() {
        notes.push(format!(
            "time zone {} has no IANA equivalent; times written in {}",
            tried.join(" / "),
            zone.tzid().unwrap_or("UTC")
        ));
    }
    zone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_names_map_to_cldr_golden_zones() {
        assert!(
            windows_zones().len() > 130,
            "the vendored CLDR table parsed"
        );
        assert_eq!(
            windows_to_iana("W. Europe Standard Time"),
            Some("Europe/Berlin")
        );
        assert_eq!(
            windows_to_iana("Pacific Standard Time"),
            Some("America/Los_Angeles")
        );
        assert_eq!(
            windows_to_iana("india standard time"),
            Some("Asia/Calcutta")
        );
        assert_eq!(windows_to_iana("Tokyo Standard Time"), Some("Asia/Tokyo"));
        assert_eq!(windows_to_iana("No Such Standard Time"), None);
    }

    #[test]
    fn resolves_windows_iana_utc_and_refuses_custom() {
        assert_eq!(
            resolve("Eastern Standard Time"),
            Some(Zone::Iana(chrono_tz::America::New_York))
        );
        assert_eq!(
            resolve("Europe/Paris"),
            Some(Zone::Iana(chrono_tz::Europe::Paris))
        );
        assert_eq!(resolve("UTC"), Some(Zone::Utc));
        assert_eq!(resolve("tzone://Microsoft/Utc"), Some(Zone::Utc));
        assert_eq!(resolve("tzone://Microsoft/Custom"), None);
        assert_eq!(resolve("Mars Standard Time"), None);
        let mut notes = Vec::new();
        assert_eq!(
            first_known(&[Some("tzone://Microsoft/Custom"), None], &mut notes),
            Zone::Utc
        );
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn wall_times_round_trip_across_dst() {
        let berlin = Zone::Iana(chrono_tz::Europe::Berlin);
        let summer = parse_wall("2024-07-01T09:00:00.0000000").unwrap();
        assert_eq!(
            berlin.instant(summer).to_rfc3339(),
            "2024-07-01T07:00:00+00:00"
        );
        let winter = parse_wall("2024-12-01T09:00:00").unwrap();
        assert_eq!(
            berlin.instant(winter).to_rfc3339(),
            "2024-12-01T08:00:00+00:00"
        );
        assert_eq!(berlin.wall(berlin.instant(summer)), summer);
        // 02:30 on 31 March 2024 does not exist in Berlin: it moves forward by the gap.
        let gap = parse_wall("2024-03-31T02:30:00").unwrap();
        assert_eq!(
            berlin.instant(gap).to_rfc3339(),
            "2024-03-31T01:30:00+00:00"
        );
        // 02:30 on 27 October 2024 happens twice: the earlier instant.
        let twice = parse_wall("2024-10-27T02:30:00").unwrap();
        assert_eq!(
            berlin.instant(twice).to_rfc3339(),
            "2024-10-27T00:30:00+00:00"
        );
        assert_eq!(
            parse_wall("2024-03-11T09:00:00Z"),
            parse_wall("2024-03-11T09:00:00")
        );
        assert_eq!(parse_wall("yesterday"), None);
        assert_eq!(parse_wall("+262000-01-01T00:00:00"), None);
    }
}
