//! Calendars and events of one mailbox.
//!
//! v1.0 lists a calendar's single events and series masters only (api/calendar-list-events.md);
//! a series' modified occurrences and cancelled dates are read from the master on the beta
//! endpoint (`exceptionOccurrences`, `cancelledOccurrences`, resources/event.md in beta), which
//! v1.0 cannot express without expanding every series over a window.

use std::time::Duration;

use super::client::{GraphClient, GraphError};
use super::mail::segment;
use super::pacer::Pacer;
use super::paging::{Page, Pages};
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
