//! The occurrences of a converted calendar resource in a window, computed by parsers that
//! share no code with the converter: the `ical` crate reads the resource and the `rrule` crate
//! expands the master's RRULE. RDATEs, EXDATEs and RECURRENCE-ID overrides are applied here.
//!
//! Reuse from another test with `#[path = "golden/occurrences.rs"] mod occurrences;`.

use std::io::BufReader;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

type Params = Option<Vec<(String, Vec<String>)>>;

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .flatten()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

/// An occurrence's start as the tests compare it: `2024-01-08T08:00:00Z` (UTC) for timed
/// values, `2024-01-08` for DATE values.
fn key(params: &Params, value: &str) -> Result<String, String> {
    if param(params, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE")) {
        let d = NaiveDate::parse_from_str(value, "%Y%m%d").map_err(|e| format!("{value}: {e}"))?;
        return Ok(d.format("%Y-%m-%d").to_string());
    }
    let (wall, utc) = match value.strip_suffix('Z') {
        Some(v) => (v, true),
        None => (value, false),
    };
    let wall = NaiveDateTime::parse_from_str(wall, "%Y%m%dT%H%M%S")
        .map_err(|e| format!("{value}: {e}"))?;
    let at: DateTime<Utc> = match (utc, param(params, "TZID")) {
        (false, Some(tzid)) => {
            let tz = chrono_tz::Tz::from_str(tzid).map_err(|e| format!("{tzid}: {e}"))?;
            tz.from_local_datetime(&wall)
                .earliest()
                .ok_or_else(|| format!("{value} does not exist in {tzid}"))?
                .with_timezone(&Utc)
        }
        _ => wall.and_utc(),
    };
    Ok(at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn prop<'a>(
    props: &'a [ical::property::Property],
    name: &str,
) -> Vec<&'a ical::property::Property> {
    props
        .iter()
        .filter(|p| p.name.eq_ignore_ascii_case(name))
        .collect()
}

/// Occurrence starts of the series in `ics` that begin in `[from, to)`, sorted.
pub fn occurrences(
    ics: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<String>, String> {
    let mut parser = ical::IcalParser::new(BufReader::new(ics.as_bytes()));
    let cal = parser
        .next()
        .ok_or("no VCALENDAR")?
        .map_err(|e| format!("ical parser: {e}"))?;
    let (overrides, masters): (Vec<_>, Vec<_>) = cal
        .events
        .iter()
        .partition(|e| !prop(&e.properties, "RECURRENCE-ID").is_empty());
    let [master] = masters.as_slice() else {
        return Err(format!("{} masters", masters.len()));
    };
    let dtstart = *prop(&master.properties, "DTSTART")
        .first()
        .ok_or("no DTSTART")?;
    let start_value = dtstart.value.as_deref().ok_or("empty DTSTART")?;
    let is_date = param(&dtstart.params, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
    let in_window = |k: &str| -> bool {
        let at = if is_date || k.len() == 10 {
            NaiveDate::parse_from_str(k, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        } else {
            DateTime::parse_from_rfc3339(k)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        at.is_some_and(|at| at >= from && at < to)
    };

    let mut starts: Vec<String> = match prop(&master.properties, "RRULE").first() {
        None => vec![key(&dtstart.params, start_value)?],
        Some(rrule) => {
            // rrule reads DTSTART with TZID, or in UTC; a DATE start is expanded at midnight UTC.
            let dtstart_line = match (is_date, param(&dtstart.params, "TZID")) {
                (true, _) => format!("DTSTART:{start_value}T000000Z"),
                (false, Some(tzid)) => format!("DTSTART;TZID={tzid}:{start_value}"),
                (false, None) => format!("DTSTART:{start_value}"),
            };
            let mut rule = rrule.value.clone().unwrap_or_default();
            if is_date {
                // UNTIL=yyyymmdd with a DATE start: the same day's midnight, in UTC.
                rule = rule
                    .split(';')
                    .map(|part| match part.strip_prefix("UNTIL=") {
                        Some(u) if u.len() == 8 => format!("UNTIL={u}T000000Z"),
                        _ => part.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(";");
            }
            let text = format!("{dtstart_line}\nRRULE:{rule}");
            let set =
                rrule::RRuleSet::from_str(&text).map_err(|e| format!("rrule {text:?}: {e}"))?;
            let tz_from = from.with_timezone(&rrule::Tz::UTC) - chrono::Duration::days(400);
            let tz_to = to.with_timezone(&rrule::Tz::UTC) + chrono::Duration::days(400);
            let result = set.after(tz_from).before(tz_to).all(5000);
            result
                .dates
                .iter()
                .map(|d| {
                    let utc = d.with_timezone(&Utc);
                    if is_date {
                        utc.format("%Y-%m-%d").to_string()
                    } else {
                        utc.format("%Y-%m-%dT%H:%M:%SZ").to_string()
                    }
                })
                .collect()
        }
    };
    // RFC 5545 §3.8.5.2: RDATEs add instances to the rule's (duplicates count once).
    for rdate in prop(&master.properties, "RDATE") {
        for v in rdate.value.as_deref().unwrap_or("").split(',') {
            let k = key(&rdate.params, v)?;
            if !starts.contains(&k) {
                starts.push(k);
            }
        }
    }
    for exdate in prop(&master.properties, "EXDATE") {
        for v in exdate.value.as_deref().unwrap_or("").split(',') {
            let k = key(&exdate.params, v)?;
            starts.retain(|s| *s != k);
        }
    }
    for o in &overrides {
        let rid = *prop(&o.properties, "RECURRENCE-ID")
            .first()
            .ok_or("no RECURRENCE-ID")?;
        let k = key(&rid.params, rid.value.as_deref().unwrap_or(""))?;
        if !starts.contains(&k) {
            return Err(format!(
                "RECURRENCE-ID {k} is not an occurrence of the rule"
            ));
        }
        starts.retain(|s| *s != k);
        let st = *prop(&o.properties, "DTSTART")
            .first()
            .ok_or("override without DTSTART")?;
        starts.push(key(&st.params, st.value.as_deref().unwrap_or(""))?);
    }
    starts.retain(|s| in_window(s));
    starts.sort();
    starts.dedup();
    Ok(starts)
}
