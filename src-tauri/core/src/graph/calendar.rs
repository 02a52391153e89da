//! Calendars and events of one mailbox.
//!
//! v1.0 lists a calendar's single events and series masters only (api/calendar-list-events.md);
//! a series' modified occurrences and cancelled dates are read from the master on the beta
//! endpoint (`exceptionOccurrences`, `cancelledOccurrences`, resources/event.md in beta), which
//! v1.0 cannot express without expanding every series over a window.
//!
//! **Incremental reads.** v1.0 has delta only on `calendarView`, for the primary calendar and a
//! window fixed in the token (shared reference graph.md §4, "Delta, v1.0"); a window cannot
//! carry series without end or every secondary calendar. Beta has
//! `/users/{id}/calendars/{id}/events/delta`, per calendar, not window-bound, listing single
//! instances and series masters (graph.md §4, "Delta, beta"; beta api/event-delta.md), which is
//! the shape this module migrates: one resource per single event or series. Its entries carry
//! only `id`, `type`, `start` and `end` (beta api/event-delta.md, "Response"), so each changed
//! event is read by id ([`event`], or [`series`] for a master, which brings its exceptions and
//! cancelled occurrences). A cloud without it refuses the request ([`is_delta_refused`]); the
//! caller then lists the calendar in full ([`events`]), as graph.md §4 suggests for calendars
//! v1.0 delta cannot reach.

use std::time::Duration;

use super::client::{GraphClient, GraphError};
use super::mail::segment;
use super::pacer::Pacer;
use super::paging::{Delta, DeltaRound, Page, Pages};
use super::types::{Calendar, CalendarGroup, Event, EventAttachment, User};
use crate::error::{Classify, ErrorClass};

/// The event fields the converter reads (v1.0 names).
pub const EVENT_SELECT: &str = "id,type,seriesMasterId,originalStart,originalStartTimeZone,\
originalEndTimeZone,subject,body,start,end,isAllDay,recurrence,attendees,organizer,isOrganizer,\
responseStatus,location,locations,categories,sensitivity,showAs,importance,isReminderOn,\
reminderMinutesBeforeStart,isOnlineMeeting,onlineMeeting,onlineMeetingUrl,iCalUId,transactionId,\
hasAttachments,createdDateTime,lastModifiedDateTime,isCancelled";

/// Events per listing page.
const PAGE: u32 = 100;

/// The calendar fields the engine reads.
const CALENDAR_SELECT: &str = "id,name,color,hexColor,isDefaultCalendar,canEdit,canShare,owner";

/// The calendars of the mailbox's default calendar group (`/calendars`). Which calendars
/// this lists is documented two ways: v1.0 api/user-list-calendars.md says "All the user's
/// calendars", beta api/calendargroup-list-calendars.md (and v1.0 before 2024) labels the same
/// request "A user's default calendarGroup". [`all_calendars`] reads every group instead.
pub async fn calendars(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    on_throttle: impl FnMut(Duration),
) -> Result<Page<Calendar>, GraphError> {
    let url = client.url(&format!(
        "/users/{}/calendars?$select={CALENDAR_SELECT}&$top=100",
        segment(user_id)
    ));
    Pages::new(client, pacer, url).collect(on_throttle).await
}

/// A calendar of the user with the group that holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedCalendar {
    pub calendar: Calendar,
    /// The group's name; `None` for the default group (the one holding the default
    /// calendar) and when the groups could not be listed.
    pub group: Option<String>,
}

/// Every calendar of a mailbox, group by group.
#[derive(Debug, Default)]
pub struct CalendarListing {
    /// The user's own calendars: the default group's first, then each other group's, in
    /// Graph's order, each once.
    pub own: Vec<GroupedCalendar>,
    /// Calendars other people shared with the user (see [`is_own`]): not migrated here,
    /// they belong to their owner's mailbox.
    pub shared: Vec<GroupedCalendar>,
    /// Entries that could not be decoded, as (id, reason).
    pub bad: Vec<(String, String)>,
}

/// Every calendar of every calendar group of the mailbox (api/user-list-calendargroups.md,
/// api/calendargroup-list-calendars.md): `/calendars` alone may return only the default
/// group's. A cloud that refuses the groups ([`is_delta_refused`]'s statuses) gets
/// `/calendars`.
pub async fn all_calendars(
    client: &GraphClient,
    pacer: &Pacer,
    user: &User,
    mut on_throttle: impl FnMut(Duration),
) -> Result<CalendarListing, GraphError> {
    let id = segment(&user.id);
    let url = client.url(&format!(
        "/users/{id}/calendarGroups?$select=id,name&$top=100"
    ));
    let groups = match Pages::<CalendarGroup>::new(client, pacer, url)
        .collect(&mut on_throttle)
        .await
    {
        Ok(groups) => groups,
        Err(e) if is_delta_refused(&e) => {
            tracing::info!(reason = %e, "no calendar groups; listing /calendars");
            let page = calendars(client, pacer, &user.id, on_throttle).await?;
            let listed = page.items.into_iter().map(|calendar| (None, calendar));
            return Ok(CalendarListing::sorted(user, listed, page.bad));
        }
        Err(e) => return Err(e),
    };
    let mut bad = groups.bad;
    let mut listed = Vec::new();
    for group in groups.items {
        let url = client.url(&format!(
            "/users/{id}/calendarGroups/{}/calendars?$select={CALENDAR_SELECT}&$top=100",
            segment(&group.id)
        ));
        let page = Pages::<Calendar>::new(client, pacer, url)
            .collect(&mut on_throttle)
            .await?;
        bad.extend(page.bad);
        let name = group.name.unwrap_or(group.id);
        listed.extend(page.items.into_iter().map(|c| (Some(name.clone()), c)));
    }
    Ok(CalendarListing::sorted(user, listed, bad))
}

impl CalendarListing {
    /// From (group name, calendar) in Graph's order: each calendar once, the default
    /// calendar's group first (its calendars lose their group name), shared ones apart.
    fn sorted(
        user: &User,
        listed: impl IntoIterator<Item = (Option<String>, Calendar)>,
        bad: Vec<(String, String)>,
    ) -> Self {
        let mut seen = std::collections::HashSet::new();
        let listed: Vec<_> = listed
            .into_iter()
            .filter(|(_, c)| seen.insert(c.id.clone()))
            .collect();
        let default_group = listed
            .iter()
            .find(|(_, c)| c.is_default_calendar == Some(true))
            .or(listed.first())
            .and_then(|(g, _)| g.clone());
        let (mut first, mut rest) = (Vec::new(), Vec::new());
        for (group, calendar) in listed {
            let in_default = group == default_group;
            let grouped = GroupedCalendar {
                calendar,
                group: if in_default { None } else { group },
            };
            match in_default {
                true => first.push(grouped),
                false => rest.push(grouped),
            }
        }
        let (own, shared) = first
            .into_iter()
            .chain(rest)
            .partition(|g| is_own(&g.calendar, user));
        CalendarListing { own, shared, bad }
    }
}

/// True for a calendar the user created or added, false for one another person shared with
/// the user. resources/calendar.md: `owner` "is set to the user" for the user's own
/// calendars and "to the person who shared that calendar" otherwise; only the creator
/// can share a calendar (`canShare`). `canEdit` does not tell them apart: it is also true
/// for a calendar shared with write access. Without an owner the calendar counts as own.
pub fn is_own(calendar: &Calendar, user: &User) -> bool {
    let Some(owner) = calendar.owner.as_ref().and_then(|o| o.address.as_deref()) else {
        return true;
    };
    let owner = owner.trim();
    let aliases = user.proxy_addresses.iter().filter_map(|a| {
        let (scheme, address) = a.split_once(':')?;
        scheme.eq_ignore_ascii_case("smtp").then_some(address)
    });
    calendar.can_share == Some(true)
        || std::iter::once(user.user_principal_name.as_str())
            .chain(user.mail.as_deref())
            .chain(aliases)
            .any(|a| a.trim().eq_ignore_ascii_case(owner))
}

/// Pages through a calendar's single events and series masters.
pub fn events<'a>(
    client: &'a GraphClient,
    pacer: &'a Pacer,
    user_id: &str,
    calendar_id: &str,
) -> Pages<'a, Event> {
    let url = client.url(&format!(
        "/users/{}/calendars/{}/events?$select={EVENT_SELECT}&$top={PAGE}",
        segment(user_id),
        segment(calendar_id)
    ));
    Pages::new(client, pacer, url)
}

/// One delta round over a calendar's single events and series masters (beta; see the module
/// doc): from `stored`, the deltaLink of the previous round, else a full round. Its entries
/// carry `id` and `type` only; `$select` and `$expand` are not supported there.
pub fn events_delta<'a>(
    client: &'a GraphClient,
    pacer: &'a Pacer,
    user_id: &str,
    calendar_id: &str,
    stored: Option<String>,
) -> DeltaRound<'a, Delta<Event>> {
    let url = client.beta_url(&format!(
        "/users/{}/calendars/{}/events/delta",
        segment(user_id),
        segment(calendar_id)
    ));
    DeltaRound::new(client, pacer, stored, url)
}

/// True when Graph refused an events delta request as such: the endpoint or the beta version
/// does not exist there (400, 404, 405, 501) or is not allowed (403). The calendar is then
/// listed in full; a real problem with the calendar shows again on that listing.
pub fn is_delta_refused(e: &GraphError) -> bool {
    matches!(e.status(), Some(400 | 403 | 404 | 405 | 501))
}

/// One event by id, with the fields the converter reads.
pub async fn event(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    event_id: &str,
    on_throttle: impl FnMut(Duration),
) -> Result<Event, GraphError> {
    let url = client.url(&format!(
        "/users/{}/events/{}?$select={EVENT_SELECT}",
        segment(user_id),
        segment(event_id)
    ));
    client.get_json(pacer, &url, on_throttle).await
}

/// A series master with its modified occurrences expanded and its cancelled occurrences listed
/// (beta; the only request that returns both).
pub async fn series(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    master_id: &str,
    on_throttle: impl FnMut(Duration),
) -> Result<Event, GraphError> {
    let url = client.beta_url(&format!(
        "/users/{}/events/{}?$select={EVENT_SELECT},uid,cancelledOccurrences,exceptionOccurrences\
         &$expand=exceptionOccurrences",
        segment(user_id),
        segment(master_id)
    ));
    client.get_json(pacer, &url, on_throttle).await
}

/// The attachment fields listed before any bytes are read (no `contentBytes`).
const ATTACHMENT_SELECT: &str = "id,name,size,contentType,isInline";

/// An event's attachments, metadata first: the listing leaves the bytes out (a listing with
/// every attachment's `contentBytes` can grow past what Exchange answers in time: 504,
/// shared reference graph.md §MIME export), then each file attachment whose `size` fits what
/// is left of `budget` is read by id (api/attachment-get.md), in listing order. One that
/// does not fit, is not a file, or cannot be read comes without bytes: the converter lists
/// it in the event's description, so it never fails the event. Only a fatal error (sign-in)
/// is returned from a read.
pub async fn attachments(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    event_id: &str,
    budget: usize,
    mut on_throttle: impl FnMut(Duration),
) -> Result<Vec<EventAttachment>, GraphError> {
    let (user, event) = (segment(user_id), segment(event_id));
    let url = client.url(&format!(
        "/users/{user}/events/{event}/attachments?$select={ATTACHMENT_SELECT}&$top=100"
    ));
    let mut listed = Pages::<EventAttachment>::new(client, pacer, url)
        .collect(&mut on_throttle)
        .await?
        .items;
    let mut left = budget as u64;
    for attachment in &mut listed {
        let is_file = attachment
            .odata_type
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case("#microsoft.graph.fileAttachment"));
        let size = attachment.size.unwrap_or(u64::MAX);
        if !is_file || size > left {
            tracing::info!(attachment = %attachment.id, size, "event attachment over the size budget: listed, not read");
            continue;
        }
        let url = client.url(&format!(
            "/users/{user}/events/{event}/attachments/{}",
            segment(&attachment.id)
        ));
        match client
            .get_json::<EventAttachment>(pacer, &url, &mut on_throttle)
            .await
        {
            Ok(read) => {
                left -= size;
                attachment.content_bytes = read.content_bytes;
            }
            Err(e) if e.class() == ErrorClass::Fatal => return Err(e),
            Err(e) => {
                tracing::info!(attachment = %attachment.id, reason = %e, "event attachment not read: listed");
            }
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::types::EmailAddress;

    fn user() -> User {
        User {
            id: "u1".into(),
            user_principal_name: "adele@contoso.onmicrosoft.com".into(),
            mail: Some("Adele.Vance@contoso.com".into()),
            display_name: None,
            account_enabled: None,
            proxy_addresses: vec![
                "SMTP:Adele.Vance@contoso.com".into(),
                "smtp:adele@contoso.net".into(),
            ],
            user_type: None,
        }
    }

    fn calendar(id: &str, owner: Option<&str>, can_share: Option<bool>) -> Calendar {
        Calendar {
            id: id.into(),
            name: Some(id.into()),
            owner: owner.map(|a| EmailAddress {
                address: Some(a.into()),
                ..EmailAddress::default()
            }),
            can_share,
            ..Calendar::default()
        }
    }

    #[test]
    fn a_calendar_is_the_users_own_unless_someone_else_owns_it_and_it_cannot_be_shared() {
        let u = user();
        assert!(is_own(&calendar("a", None, None), &u), "no owner: own");
        assert!(is_own(
            &calendar("b", Some("adele.vance@CONTOSO.com"), Some(false)),
            &u
        ));
        assert!(
            is_own(&calendar("c", Some("adele@contoso.net"), None), &u),
            "an alias"
        );
        assert!(is_own(
            &calendar("d", Some("adele@contoso.onmicrosoft.com"), None),
            &u
        ));
        assert!(
            is_own(&calendar("e", Some("someone@else.com"), Some(true)), &u),
            "only the creator can share"
        );
        assert!(!is_own(
            &calendar("f", Some("megan@fabrikam.com"), Some(false)),
            &u
        ));
        assert!(!is_own(
            &calendar("g", Some("megan@fabrikam.com"), None),
            &u
        ));
    }

    #[test]
    fn the_default_calendars_group_comes_first_each_calendar_once_shared_ones_apart() {
        let mut default = calendar("cal", None, None);
        default.is_default_calendar = Some(true);
        let listed = vec![
            (Some("Other".to_string()), calendar("other", None, None)),
            (Some("My Calendars".to_string()), default),
            (
                Some("My Calendars".to_string()),
                calendar("second", None, None),
            ),
            (Some("Other".to_string()), calendar("other", None, None)),
            (
                Some("People".to_string()),
                calendar("shared", Some("megan@fabrikam.com"), Some(false)),
            ),
        ];
        let sorted = CalendarListing::sorted(&user(), listed, Vec::new());
        let own: Vec<_> = sorted
            .own
            .iter()
            .map(|g| (g.calendar.id.as_str(), g.group.as_deref()))
            .collect();
        assert_eq!(
            own,
            [("cal", None), ("second", None), ("other", Some("Other"))]
        );
        assert_eq!(sorted.shared.len(), 1);
        assert_eq!(sorted.shared[0].calendar.id, "shared");
    }
}
