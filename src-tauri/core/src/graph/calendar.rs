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
use super::types::{Calendar, Event, EventAttachment};

/// The event fields the converter reads (v1.0 names).
pub const EVENT_SELECT: &str = "id,type,seriesMasterId,originalStart,originalStartTimeZone,\
originalEndTimeZone,subject,body,start,end,isAllDay,recurrence,attendees,organizer,isOrganizer,\
responseStatus,location,locations,categories,sensitivity,showAs,importance,isReminderOn,\
reminderMinutesBeforeStart,isOnlineMeeting,onlineMeeting,onlineMeetingUrl,iCalUId,transactionId,\
hasAttachments,createdDateTime,lastModifiedDateTime,isCancelled";

/// Events per listing page.
const PAGE: u32 = 100;

/// The mailbox's calendars (those of its default calendar group, which is where Outlook keeps
/// every calendar a user creates; api/user-list-calendars.md).
pub async fn calendars(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    on_throttle: impl FnMut(Duration),
) -> Result<Page<Calendar>, GraphError> {
    let url = client.url(&format!(
        "/users/{}/calendars?$select=id,name,color,hexColor,isDefaultCalendar,canEdit&$top=100",
        segment(user_id)
    ));
    Pages::new(client, pacer, url).collect(on_throttle).await
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

/// An event's attachments; file attachments carry their bytes (api/event-list-attachments.md).
pub async fn attachments(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    event_id: &str,
    on_throttle: impl FnMut(Duration),
) -> Result<Page<EventAttachment>, GraphError> {
    let url = client.url(&format!(
        "/users/{}/events/{}/attachments",
        segment(user_id),
        segment(event_id)
    ));
    Pages::new(client, pacer, url).collect(on_throttle).await
}
