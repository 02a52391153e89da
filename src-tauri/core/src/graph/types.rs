//! Graph's wire types, with only the fields the migrator reads. Optional and unknown fields are
//! tolerated: Graph adds properties over time and delta answers may carry only a few.

use serde::Deserialize;

/// A user (Graph docs, resources/user.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub user_principal_name: String,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub account_enabled: Option<bool>,
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
    /// `Member` or `Guest` (resources/user.md). A B2B guest's `mail` is its own outside
    /// address (learn.microsoft.com/entra/external-id/user-properties): not a mailbox here.
    #[serde(default)]
    pub user_type: Option<String>,
}

impl User {
    /// True for a B2B guest (`userType` `Guest`), whose mail lives outside the tenant.
    pub fn is_guest(&self) -> bool {
        self.user_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("Guest"))
    }
}

/// `$select` for [`User`].
pub const USER_SELECT: &str =
    "id,userPrincipalName,mail,displayName,accountEnabled,proxyAddresses,userType";

/// A mail folder (resources/mailfolder.md). Search folders carry
/// `@odata.type = #microsoft.graph.mailSearchFolder` and hold no items of their own.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MailFolder {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    #[serde(default)]
    pub child_folder_count: u32,
    #[serde(default)]
    pub total_item_count: u64,
    #[serde(default)]
    pub is_hidden: bool,
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
}

impl MailFolder {
    pub fn is_search_folder(&self) -> bool {
        self.odata_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("#microsoft.graph.mailSearchFolder"))
    }
}

/// The message fields the migrator needs besides the MIME (resources/message.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageMeta {
    pub id: String,
    #[serde(default)]
    pub received_date_time: Option<String>,
    #[serde(default)]
    pub is_read: bool,
    #[serde(default)]
    pub is_draft: bool,
    #[serde(default)]
    pub flag: Option<FollowupFlag>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub internet_message_id: Option<String>,
    /// Only for naming a failed message in the report.
    #[serde(default)]
    pub subject: Option<String>,
}

/// `$select` for [`MessageMeta`].
pub const MESSAGE_SELECT: &str =
    "id,receivedDateTime,isRead,isDraft,flag,categories,internetMessageId,subject";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FollowupFlag {
    #[serde(default)]
    pub flag_status: Option<String>,
}

impl MessageMeta {
    pub fn is_flagged(&self) -> bool {
        self.flag
            .as_ref()
            .and_then(|f| f.flag_status.as_deref())
            .is_some_and(|s| s == "flagged")
    }

    /// `receivedDateTime` parsed; `None` if absent or malformed.
    pub fn received(&self) -> Option<time::OffsetDateTime> {
        let raw = self.received_date_time.as_deref()?;
        time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Calendars, contacts and To Do (resources/event.md, contact.md, todotask.md; beta where noted).
// Every field but `id` is optional: delta answers and `$select` carry only some of them.

/// Graph sends `null` for empty collections and flags in some answers; treat it as absent.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `dateTimeTimeZone` (resources/datetimetimezone.md): a wall time without offset, and the
/// zone it is in. Graph answers in UTC unless the request sent `Prefer: outlook.timezone`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DateTimeTimeZone {
    /// `2024-03-01T08:15:00.0000000`, no offset.
    pub date_time: String,
    /// A Windows zone name (`Pacific Standard Time`), `UTC`, an IANA name, or
    /// `tzone://Microsoft/Custom`.
    pub time_zone: Option<String>,
}

/// `itemBody`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ItemBody {
    /// `text` or `html`.
    pub content_type: Option<String>,
    pub content: Option<String>,
}

impl ItemBody {
    pub fn is_html(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("html"))
    }
}

/// `emailAddress`; beta contacts add `type` (work, personal, other, unknown).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct EmailAddress {
    pub name: Option<String>,
    pub address: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `recipient`: an organizer.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Recipient {
    pub email_address: Option<EmailAddress>,
}

/// `responseStatus`: `response` is none, organizer, tentativelyAccepted, accepted, declined or
/// notResponded.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ResponseStatus {
    pub response: Option<String>,
    pub time: Option<String>,
}

/// `attendee`: `type` is required, optional or resource.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Attendee {
    pub email_address: Option<EmailAddress>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub status: Option<ResponseStatus>,
}

/// `physicalAddress` (events' locations and contacts' addresses).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PhysicalAddress {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country_or_region: Option<String>,
}

impl PhysicalAddress {
    pub fn is_empty(&self) -> bool {
        [
            &self.street,
            &self.city,
            &self.state,
            &self.postal_code,
            &self.country_or_region,
        ]
        .iter()
        .all(|f| f.as_deref().is_none_or(|s| s.trim().is_empty()))
    }
}

/// `location`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Location {
    pub display_name: Option<String>,
    pub location_type: Option<String>,
    pub location_uri: Option<String>,
    pub unique_id: Option<String>,
    pub address: Option<PhysicalAddress>,
}

/// `onlineMeetingInfo`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct OnlineMeetingInfo {
    pub join_url: Option<String>,
    pub conference_id: Option<String>,
    pub toll_number: Option<String>,
}

/// `recurrencePattern` (resources/recurrencepattern.md). `type` is daily, weekly,
/// absoluteMonthly, relativeMonthly, absoluteYearly or relativeYearly; `index` is first,
/// second, third, fourth or last.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RecurrencePattern {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub interval: Option<i64>,
    #[serde(deserialize_with = "null_as_default")]
    pub days_of_week: Vec<String>,
    pub day_of_month: Option<i64>,
    pub month: Option<i64>,
    pub index: Option<String>,
    pub first_day_of_week: Option<String>,
}

/// `recurrenceRange` (resources/recurrencerange.md). `type` is endDate, noEnd or numbered;
/// dates are `yyyy-mm-dd` without time.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RecurrenceRange {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub number_of_occurrences: Option<i64>,
    pub recurrence_time_zone: Option<String>,
}

/// `patternedRecurrence`, shared by events and To Do tasks.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PatternedRecurrence {
    #[serde(deserialize_with = "null_as_default")]
    pub pattern: RecurrencePattern,
    #[serde(deserialize_with = "null_as_default")]
    pub range: RecurrenceRange,
}

/// An event (resources/event.md; beta fields marked). A series is its master
/// (`type = seriesMaster`) plus exceptions (`type = exception`) and cancelled occurrences.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Event {
    pub id: String,
    /// singleInstance, occurrence, exception or seriesMaster.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub series_master_id: Option<String>,
    /// The occurrence's start before it was moved (DateTimeOffset, UTC).
    pub original_start: Option<String>,
    pub original_start_time_zone: Option<String>,
    pub original_end_time_zone: Option<String>,
    pub subject: Option<String>,
    pub body: Option<ItemBody>,
    pub body_preview: Option<String>,
    pub start: Option<DateTimeTimeZone>,
    pub end: Option<DateTimeTimeZone>,
    #[serde(deserialize_with = "null_as_default")]
    pub is_all_day: bool,
    pub recurrence: Option<PatternedRecurrence>,
    #[serde(deserialize_with = "null_as_default")]
    pub attendees: Vec<Attendee>,
    pub organizer: Option<Recipient>,
    pub is_organizer: Option<bool>,
    pub response_status: Option<ResponseStatus>,
    pub location: Option<Location>,
    #[serde(deserialize_with = "null_as_default")]
    pub locations: Vec<Location>,
    #[serde(deserialize_with = "null_as_default")]
    pub categories: Vec<String>,
    /// normal, personal, private or confidential.
    pub sensitivity: Option<String>,
    /// free, tentative, busy, oof, workingElsewhere or unknown.
    pub show_as: Option<String>,
    /// low, normal or high.
    pub importance: Option<String>,
    pub is_reminder_on: Option<bool>,
    pub reminder_minutes_before_start: Option<i64>,
    pub is_online_meeting: Option<bool>,
    pub online_meeting: Option<OnlineMeetingInfo>,
    pub online_meeting_url: Option<String>,
    pub online_meeting_provider: Option<String>,
    #[serde(rename = "iCalUId")]
    pub ical_uid: Option<String>,
    /// Beta: the same for a series master and all its occurrences.
    pub uid: Option<String>,
    pub transaction_id: Option<String>,
    /// Beta: `OID.{masterId}.{yyyy-mm-dd}` for each deleted occurrence.
    #[serde(deserialize_with = "null_as_default")]
    pub cancelled_occurrences: Vec<String>,
    /// Beta, with `$expand=exceptionOccurrences` on the master: the modified occurrences.
    #[serde(deserialize_with = "null_as_default")]
    pub exception_occurrences: Vec<Event>,
    pub has_attachments: Option<bool>,
    pub created_date_time: Option<String>,
    pub last_modified_date_time: Option<String>,
    pub is_cancelled: Option<bool>,
    pub web_link: Option<String>,
}

/// An event attachment (resources/attachment.md). Only `#microsoft.graph.fileAttachment`
/// carries `contentBytes` (base64); item and reference attachments come without bytes.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct EventAttachment {
    pub id: String,
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    pub is_inline: Option<bool>,
    pub content_bytes: Option<String>,
    pub last_modified_date_time: Option<String>,
}

/// A calendar (resources/calendar.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Calendar {
    pub id: String,
    pub name: Option<String>,
    /// auto, lightBlue, lightGreen, … (a preset name).
    pub color: Option<String>,
    /// `#RRGGBB`, empty when the calendar has a preset color only.
    pub hex_color: Option<String>,
    pub is_default_calendar: Option<bool>,
    pub can_edit: Option<bool>,
    /// Only the user who created the calendar can share it.
    pub can_share: Option<bool>,
    /// The user for a calendar the user created or added, the sharer for a calendar shared
    /// with the user.
    pub owner: Option<EmailAddress>,
}

/// A calendar group: a folder of calendars (resources/calendargroup.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct CalendarGroup {
    pub id: String,
    pub name: Option<String>,
}

/// A contact folder (resources/contactfolder.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ContactFolder {
    pub id: String,
    pub display_name: Option<String>,
    pub parent_folder_id: Option<String>,
}

/// A contact (resources/contact.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Contact {
    pub id: String,
    pub parent_folder_id: Option<String>,
    pub change_key: Option<String>,
    pub created_date_time: Option<String>,
    pub last_modified_date_time: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub surname: Option<String>,
    pub nick_name: Option<String>,
    pub initials: Option<String>,
    /// The honorific prefix (Mr., Dr.), not the job title.
    pub title: Option<String>,
    /// The honorific suffix (Jr., III).
    pub generation: Option<String>,
    pub file_as: Option<String>,
    pub yomi_given_name: Option<String>,
    pub yomi_surname: Option<String>,
    pub yomi_company_name: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub email_addresses: Vec<EmailAddress>,
    #[serde(deserialize_with = "null_as_default")]
    pub business_phones: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub home_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub im_addresses: Vec<String>,
    pub business_address: Option<PhysicalAddress>,
    pub home_address: Option<PhysicalAddress>,
    pub other_address: Option<PhysicalAddress>,
    /// DateTimeOffset; only the date part is meaningful.
    pub birthday: Option<String>,
    pub company_name: Option<String>,
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub office_location: Option<String>,
    pub manager: Option<String>,
    pub assistant_name: Option<String>,
    pub spouse_name: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub children: Vec<String>,
    pub profession: Option<String>,
    pub business_home_page: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub categories: Vec<String>,
    pub personal_notes: Option<String>,
}

/// A To Do list (resources/todotasklist.md): `wellknownListName` is none, defaultList or
/// flaggedEmails.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TodoTaskList {
    pub id: String,
    pub display_name: Option<String>,
    pub is_owner: Option<bool>,
    pub is_shared: Option<bool>,
    pub wellknown_list_name: Option<String>,
}

/// `checklistItem` (resources/checklistitem.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ChecklistItem {
    pub id: String,
    pub display_name: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub is_checked: bool,
    pub created_date_time: Option<String>,
    pub checked_date_time: Option<String>,
}

/// `linkedResource` (resources/linkedresource.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct LinkedResource {
    pub id: Option<String>,
    pub web_url: Option<String>,
    pub application_name: Option<String>,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
}

/// A To Do task (resources/todotask.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TodoTask {
    pub id: String,
    pub title: Option<String>,
    pub body: Option<ItemBody>,
    /// low, normal or high.
    pub importance: Option<String>,
    /// notStarted, inProgress, completed, waitingOnOthers or deferred.
    pub status: Option<String>,
    pub is_reminder_on: Option<bool>,
    pub reminder_date_time: Option<DateTimeTimeZone>,
    pub due_date_time: Option<DateTimeTimeZone>,
    pub start_date_time: Option<DateTimeTimeZone>,
    pub completed_date_time: Option<DateTimeTimeZone>,
    pub recurrence: Option<PatternedRecurrence>,
    #[serde(deserialize_with = "null_as_default")]
    pub categories: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub checklist_items: Vec<ChecklistItem>,
    #[serde(deserialize_with = "null_as_default")]
    pub linked_resources: Vec<LinkedResource>,
    pub has_attachments: Option<bool>,
    pub created_date_time: Option<String>,
    pub last_modified_date_time: Option<String>,
    pub body_last_modified_date_time: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerates_unknown_and_missing_fields() {
        let m: MessageMeta = serde_json::from_str(
            r#"{"id":"AAMk=","receivedDateTime":"2024-03-01T08:15:00Z","flag":{"flagStatus":"flagged"},"newField":{"x":1}}"#,
        )
        .unwrap();
        assert!(m.is_flagged());
        assert!(!m.is_read);
        assert_eq!(m.received().map(|t| t.unix_timestamp()), Some(1709280900));
        let f: MailFolder = serde_json::from_str(
            r##"{"id":"x","displayName":"S","@odata.type":"#microsoft.graph.mailSearchFolder"}"##,
        )
        .unwrap();
        assert!(f.is_search_folder());
    }

    #[test]
    fn groupware_types_tolerate_missing_and_null_fields() {
        let e: Event = serde_json::from_str(
            r#"{"id":"A","type":"seriesMaster","iCalUId":"040000","recurrence":{"pattern":{"type":"weekly","daysOfWeek":["monday"]},"range":{"type":"noEnd","startDate":"2024-01-01"}},"exceptionOccurrences":[{"id":"B","type":"exception"}],"categories":null,"isAllDay":null,"unknown":1}"#,
        )
        .unwrap();
        assert_eq!(e.kind.as_deref(), Some("seriesMaster"));
        assert_eq!(e.ical_uid.as_deref(), Some("040000"));
        assert_eq!(e.exception_occurrences.len(), 1);
        assert_eq!(
            e.recurrence.map(|r| r.pattern.days_of_week),
            Some(vec!["monday".to_string()])
        );
        let c: Contact =
            serde_json::from_str(r#"{"id":"C","emailAddresses":[{"address":"a@b"}]}"#).unwrap();
        assert_eq!(c.email_addresses[0].address.as_deref(), Some("a@b"));
        let t: TodoTask = serde_json::from_str(
            r#"{"id":"T","checklistItems":[{"id":"1","displayName":"x","isChecked":true}]}"#,
        )
        .unwrap();
        assert!(t.checklist_items[0].is_checked);
    }
}
