//! Mail folders and messages of one mailbox.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use super::client::{GraphClient, GraphError};
use super::pacer::Pacer;
pub use super::paging::{is_own_link, is_sync_reset};
use super::paging::{removed_id, DeltaRound, Pages};
use super::types::{ItemBody, MailFolder, MessageMeta, Recipient, MESSAGE_SELECT};

/// Well-known folders the destinations map to their own special folders. Graph accepts these
/// names in place of a folder id, whatever the mailbox's language (resources/mailfolder.md).
pub const MAPPED_WELL_KNOWN: [&str; 6] = [
    "inbox",
    "sentitems",
    "drafts",
    "deleteditems",
    "junkemail",
    "archive",
];

/// System folders by well-known name (resources/mailfolder.md): what they hold is the mail
/// client's, not the user's mail. `outbox` holds only what is waiting to be sent;
/// `syncissues` and its children (`conflicts`, `localfailures`, `serverfailures`) hold
/// Outlook's sync logs and conflicting copies. Left out with their subfolders unless
/// `[run] include_system_folders` is set.
pub const SYSTEM_WELL_KNOWN: [&str; 2] = ["outbox", "syncissues"];

/// Hidden system folders without a well-known name, by display name (English; matched only on
/// a folder Graph marks `isHidden`, so a user's own folder of that name stays). They hold
/// items that are not the user's mail: Teams compliance records in the hidden Team Chat folder
/// under Conversation History (office365itpros.com 2019-07-03 "Team Chat folder";
/// gsexdev.blogspot.com 2018-02), Yammer's items (Yammer Root and its children), attachment
/// metadata in Files (petri.com "mysterious Files folder"), people metadata, Quick Steps and
/// conversation actions (Outlook's settings, stored as hidden items). Shared reference graph.md
/// "Real-service behaviours".
pub const SYSTEM_HIDDEN_NAMES: [&str; 10] = [
    "Team Chat",
    "TeamChat",
    "TeamsMessagesData",
    "Yammer Root",
    "Files",
    "ExternalContacts",
    "PersonMetadata",
    "Quick Step Settings",
    "Conversation Action Settings",
    "Social Activity Notifications",
];

/// A folder in its tree.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderNode {
    pub folder: MailFolder,
    /// Display names from the top of the mailbox down to this folder.
    pub path: Vec<String>,
    /// Set when this folder is one of [`MAPPED_WELL_KNOWN`].
    pub well_known: Option<&'static str>,
    /// The well-known folder this one sits under, if any (its top-level ancestor).
    pub under_well_known: Option<&'static str>,
}

/// Percent-encodes one URL path segment (Graph ids are base64 and may hold `+`, `/`, `=`).
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'=') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The folder tree of a mailbox as migrated by default: [`folder_tree_with`] without the
/// system folders.
pub async fn folder_tree(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    on_throttle: impl FnMut(Duration),
) -> Result<(Vec<FolderNode>, Vec<(String, String)>), GraphError> {
    folder_tree_with(client, pacer, user_id, false, on_throttle).await
}

/// How many items the top-level folders of a mailbox hold (their `totalItemCount`,
/// learn.microsoft.com/graph/api/resources/mailfolder): one request, a cheap measure of the
/// mailbox's size to schedule the largest first. Subfolders are not counted (a folder's
/// count covers its own items only); the first page (250 folders) is enough to rank.
pub async fn top_level_items(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
) -> Result<u64, GraphError> {
    #[derive(serde::Deserialize)]
    struct Folders {
        #[serde(default)]
        value: Vec<MailFolder>,
    }
    let user = segment(user_id);
    let url = client.url(&format!(
        "/users/{user}/mailFolders?includeHiddenFolders=true&$top=250&$select=id,totalItemCount"
    ));
    let folders: Folders = client.get_json(pacer, &url, |_| {}).await?;
    Ok(folders.value.iter().map(|f| f.total_item_count).sum())
}

/// The whole folder tree of a mailbox, hidden folders included and search folders left out
/// (they hold no items of their own), parents before children; system folders
/// ([`SYSTEM_WELL_KNOWN`], [`SYSTEM_HIDDEN_NAMES`]) and their subfolders only with
/// `include_system`. A folder the user hid stays. Walks breadth-first without recursion, so
/// a very deep tree cannot exhaust the stack. Bad entries are returned apart.
pub async fn folder_tree_with(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    include_system: bool,
    mut on_throttle: impl FnMut(Duration),
) -> Result<(Vec<FolderNode>, Vec<(String, String)>), GraphError> {
    let user = segment(user_id);
    let mut well_known: HashMap<String, &'static str> = HashMap::new();
    let mut system: HashSet<String> = HashSet::new();
    if !include_system {
        for name in SYSTEM_WELL_KNOWN {
            let url = client.url(&format!("/users/{user}/mailFolders/{name}?$select=id"));
            match client
                .get_json::<MailFolder>(pacer, &url, &mut on_throttle)
                .await
            {
                Ok(f) => {
                    system.insert(f.id);
                }
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e),
            }
        }
    }
    for name in MAPPED_WELL_KNOWN {
        let url = client.url(&format!("/users/{user}/mailFolders/{name}?$select=id"));
        match client
            .get_json::<MailFolder>(pacer, &url, &mut on_throttle)
            .await
        {
            Ok(f) => {
                well_known.insert(f.id, name);
            }
            // A mailbox may lack a well-known folder (archive is created on first use).
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        }
    }

    let mut nodes = Vec::new();
    let mut bad = Vec::new();
    let mut queue: VecDeque<(Option<usize>, String)> = VecDeque::new();
    queue.push_back((
        None,
        client.url(&format!(
            "/users/{user}/mailFolders?includeHiddenFolders=true&$top=250"
        )),
    ));
    while let Some((parent, url)) = queue.pop_front() {
        let page = Pages::<MailFolder>::new(client, pacer, url)
            .collect(&mut on_throttle)
            .await?;
        bad.extend(page.bad);
        for folder in page.items {
            if folder.is_search_folder() {
                continue;
            }
            if !include_system && is_system_folder(&folder, &system) {
                tracing::debug!(folder = %folder.display_name, "system folder left out");
                continue;
            }
            let (mut path, under) = match parent {
                Some(p) => {
                    let parent: &FolderNode = &nodes[p];
                    (parent.path.clone(), parent.under_well_known)
                }
                None => (Vec::new(), None),
            };
            path.push(folder.display_name.clone());
            let wk = well_known.get(&folder.id).copied();
            let has_children = folder.child_folder_count > 0;
            let id = segment(&folder.id);
            nodes.push(FolderNode {
                under_well_known: under.or(if parent.is_none() { wk } else { None }),
                well_known: wk,
                path,
                folder,
            });
            if has_children {
                queue.push_back((
                    Some(nodes.len() - 1),
                    client.url(&format!(
                        "/users/{user}/mailFolders/{id}/childFolders?includeHiddenFolders=true&$top=250"
                    )),
                ));
            }
        }
    }
    Ok((nodes, bad))
}

/// True when `folder` is a system folder: one of `system` (the ids of [`SYSTEM_WELL_KNOWN`]),
/// or hidden and named as one of [`SYSTEM_HIDDEN_NAMES`].
pub fn is_system_folder(folder: &MailFolder, system: &HashSet<String>) -> bool {
    system.contains(&folder.id)
        || (folder.is_hidden
            && SYSTEM_HIDDEN_NAMES
                .iter()
                .any(|n| n.eq_ignore_ascii_case(folder.display_name.trim())))
}

/// The first page URL of a folder's messages with the fields the migrator needs.
pub fn messages_url(client: &GraphClient, user_id: &str, folder_id: &str) -> String {
    client.url(&format!(
        "/users/{}/mailFolders/{}/messages?$select={MESSAGE_SELECT}&$top=500",
        segment(user_id),
        segment(folder_id)
    ))
}

/// Pages through a folder's messages.
pub fn messages<'a>(
    client: &'a GraphClient,
    pacer: &'a Pacer,
    user_id: &str,
    folder_id: &str,
) -> Pages<'a, MessageMeta> {
    Pages::new(client, pacer, messages_url(client, user_id, folder_id))
}

/// The first URL of a full delta round over a folder's messages (Graph docs
/// api/message-delta.md): every message in the folder, then a `@odata.deltaLink` for the
/// next round. The page size comes from `Prefer: odata.maxpagesize`, sent on every request by
/// the client; later pages and rounds follow the links Graph hands out, which keep `$select`.
pub fn delta_url(client: &GraphClient, user_id: &str, folder_id: &str) -> String {
    client.message_delta_url(&format!(
        "/users/{}/mailFolders/{}/messages/delta?$select={MESSAGE_SELECT}",
        segment(user_id),
        segment(folder_id)
    ))
}

/// The URL of one message's metadata (for a delta entry that came back with only some of its
/// properties, graph-docs issue #7776).
pub fn message_url(client: &GraphClient, user_id: &str, message_id: &str) -> String {
    client.url(&format!(
        "/users/{}/messages/{}?$select={MESSAGE_SELECT}",
        segment(user_id),
        segment(message_id)
    ))
}

/// The URL of where a message lives now, by its immutable id (found wherever it moved in the
/// mailbox: concepts/outlook-immutable-id.md); 404 once it was deleted.
pub fn message_location_url(client: &GraphClient, user_id: &str, message_id: &str) -> String {
    client.url(&format!(
        "/users/{}/messages/{}?$select=id,parentFolderId",
        segment(user_id),
        segment(message_id)
    ))
}

/// Where a message lives ([`message_location_url`]).
#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageLocation {
    pub id: String,
    #[serde(default)]
    pub parent_folder_id: String,
}

/// One entry of a message delta round (Graph docs concepts/delta-query-messages.md).
#[derive(Debug, Clone, PartialEq)]
pub enum DeltaEntry {
    /// Added to the folder or changed in it. `complete` is false when Graph left out a
    /// property the migrator reads (updates may carry only the changed ones); fetch the
    /// message's metadata before trusting the flags.
    Upsert { meta: MessageMeta, complete: bool },
    /// `@removed`: deleted, or moved out of this folder (with immutable ids a moved message
    /// keeps its id and shows up as added in its new folder).
    Removed { id: String },
}

impl<'de> serde::Deserialize<'de> for DeltaEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(d)?;
        if let Some(id) = removed_id(&value) {
            return Ok(DeltaEntry::Removed {
                id: id.map_err(D::Error::custom)?,
            });
        }
        let complete = [
            "receivedDateTime",
            "isRead",
            "isDraft",
            "flag",
            "categories",
        ]
        .iter()
        .all(|k| value.get(k).is_some());
        let meta = MessageMeta::deserialize(value).map_err(D::Error::custom)?;
        Ok(DeltaEntry::Upsert { meta, complete })
    }
}

/// One delta round of a folder's messages: from `stored` (the deltaLink of the previous
/// round), else a full round from [`delta_url`]. The last page carries the next deltaLink
/// ([`DeltaRound::delta_link`]); a link whose sync state expired ([`is_sync_reset`]: 410, or a
/// 4xx naming `syncStateNotFound`, `resyncRequired` or `SyncStateInvalid`) starts a full round
/// again ([`DeltaRound::restarted`]).
pub fn delta_round<'a>(
    client: &'a GraphClient,
    pacer: &'a Pacer,
    user_id: &str,
    folder_id: &str,
    stored: Option<String>,
) -> DeltaRound<'a, DeltaEntry> {
    DeltaRound::new(client, pacer, stored, delta_url(client, user_id, folder_id))
}

/// What a user last did with a message: PidTagLastVerbExecuted (`Integer 0x1081`,
/// MS-OXOMSG §2.2.1.33).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastVerb {
    /// 102 (reply to sender) or 103 (reply to all): IMAP `\Answered`.
    Replied,
    /// 104: IMAP `$Forwarded`.
    Forwarded,
}

/// The extended property's id as Graph names it.
const LAST_VERB_ID: &str = "Integer 0x1081";

/// The URL listing the messages of a folder that were replied to or forwarded, with the
/// property expanded: a numeric extended-property `$filter` plus `$expand` (Graph docs
/// api/singlevaluelegacyextendedproperty-get.md, "cast ep/value to Edm.Int32"). Delta cannot
/// return extended properties (shared reference graph.md, "Message delta"), so this one extra
/// listing per folder is made when a round brought added or changed messages; it returns
/// only the answered and forwarded ones.
pub fn last_verbs_url(client: &GraphClient, user_id: &str, folder_id: &str) -> String {
    client.url(&format!(
        "/users/{}/mailFolders/{}/messages?$select=id&$top=500\
         &$expand=singleValueExtendedProperties($filter=id%20eq%20'{id}')\
         &$filter=singleValueExtendedProperties/any(ep:ep/id%20eq%20'{id}'%20and%20cast(ep/value,%20Edm.Int32)%20ge%20102)",
        segment(user_id),
        segment(folder_id),
        id = LAST_VERB_ID.replace(' ', "%20"),
    ))
}

#[derive(serde::Deserialize)]
struct VerbEntry {
    id: String,
    #[serde(rename = "singleValueExtendedProperties", default)]
    properties: Vec<ExtendedProperty>,
}

#[derive(serde::Deserialize)]
struct ExtendedProperty {
    id: String,
    #[serde(default)]
    value: Option<String>,
}

/// The answered and forwarded messages of a folder (see [`last_verbs_url`]), by id.
pub async fn last_verbs(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    folder_id: &str,
    on_throttle: impl FnMut(Duration),
) -> Result<HashMap<String, LastVerb>, GraphError> {
    let url = last_verbs_url(client, user_id, folder_id);
    let page = Pages::<VerbEntry>::new(client, pacer, url)
        .collect(on_throttle)
        .await?;
    Ok(page
        .items
        .into_iter()
        .filter_map(|e| {
            let value = e
                .properties
                .iter()
                .find(|p| p.id.eq_ignore_ascii_case(LAST_VERB_ID))?
                .value
                .as_deref()?
                .trim()
                .parse::<i64>()
                .ok()?;
            let verb = match value {
                102 | 103 => LastVerb::Replied,
                104 => LastVerb::Forwarded,
                _ => return None,
            };
            Some((e.id, verb))
        })
        .collect())
}

/// The URL of a message's MIME (`$value`, Graph docs concepts/outlook-get-mime-message.md).
pub fn mime_url(client: &GraphClient, user_id: &str, message_id: &str) -> String {
    client.url(&format!(
        "/users/{}/messages/{}/$value",
        segment(user_id),
        segment(message_id)
    ))
}

/// Why a message's MIME can never be downloaded, when `e` (the answer to its `$value`) says
/// so; `None` for anything worth retrying on a later pass.
/// - 500 `ErrorMimeContentConversionFailed`: opaque-signed or encrypted S/MIME, IRM-protected
///   items and their reports; the same answer on every attempt
///   (LogicLabs-OU/OpenArchiver#487, shared reference graph.md "Real-service behaviours").
/// - 504 once the pacer's attempts are spent: very large items, which Exchange gives up on
///   after about 30 s (msgraph-sdk-dotnet#1477, microsoft-graph-docs-contrib#1220).
/// - 404: deleted at the source after the delta round listed it.
pub fn undownloadable(e: &GraphError) -> Option<Undownloadable> {
    match e {
        GraphError::Status {
            status: 500, code, ..
        } if code.eq_ignore_ascii_case(MIME_CONVERSION_FAILED) => Some(Undownloadable::Conversion),
        GraphError::Status { status: 504, .. } => Some(Undownloadable::TimedOut),
        GraphError::Status { status: 404, .. } => Some(Undownloadable::Deleted),
        _ => None,
    }
}

/// The error code of a `$value` Exchange cannot convert to MIME.
pub const MIME_CONVERSION_FAILED: &str = "ErrorMimeContentConversionFailed";

/// See [`undownloadable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undownloadable {
    Conversion,
    TimedOut,
    Deleted,
}

impl Undownloadable {
    /// The reason in the report.
    pub fn reason(self) -> &'static str {
        match self {
            Undownloadable::Conversion => "Graph cannot export its MIME (HTTP 500 ErrorMimeContentConversionFailed: opaque-signed or encrypted S/MIME, or IRM-protected)",
            Undownloadable::TimedOut => "Graph timed out exporting its MIME (HTTP 504, as for very large items)",
            Undownloadable::Deleted => "deleted at the source after it was listed (HTTP 404)",
        }
    }

    /// True when the message can be rebuilt from its properties and attachments.
    pub fn rebuildable(self) -> bool {
        self != Undownloadable::Deleted
    }
}

/// What a message is rebuilt from when its MIME cannot be exported: its properties
/// (resources/message.md; `internetMessageHeaders` only when selected by name).
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageExport {
    pub id: String,
    pub subject: Option<String>,
    pub from: Option<Recipient>,
    pub sender: Option<Recipient>,
    pub to_recipients: Vec<Recipient>,
    pub cc_recipients: Vec<Recipient>,
    pub bcc_recipients: Vec<Recipient>,
    pub reply_to: Vec<Recipient>,
    pub sent_date_time: Option<String>,
    pub received_date_time: Option<String>,
    pub internet_message_id: Option<String>,
    pub internet_message_headers: Vec<MessageHeader>,
    pub body: Option<ItemBody>,
    pub has_attachments: bool,
}

/// `internetMessageHeader`.
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct MessageHeader {
    pub name: String,
    pub value: String,
}

/// One attachment of a message, without its bytes (api/message-list-attachments.md).
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct AttachmentMeta {
    /// `#microsoft.graph.fileAttachment`, `itemAttachment` or `referenceAttachment`.
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: String,
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub size: u64,
    pub is_inline: bool,
}

impl AttachmentMeta {
    /// A link to a file elsewhere (OneDrive, SharePoint): it has no bytes here, and `$value`
    /// answers 405 (api/attachment-get.md).
    pub fn is_reference(&self) -> bool {
        self.odata_type
            .as_deref()
            .is_some_and(|t| t.ends_with("referenceAttachment"))
    }

    /// An attached Outlook item: its `$value` is MIME for a message, a vCard for a contact,
    /// iCalendar for an event (api/attachment-get.md).
    pub fn is_item(&self) -> bool {
        self.odata_type
            .as_deref()
            .is_some_and(|t| t.ends_with("itemAttachment"))
    }
}

/// The URL of what a message is rebuilt from ([`MessageExport`]).
pub fn export_url(client: &GraphClient, user_id: &str, message_id: &str) -> String {
    client.url(&format!(
        "/users/{}/messages/{}?$select=subject,from,sender,toRecipients,ccRecipients,bccRecipients,replyTo,sentDateTime,receivedDateTime,internetMessageId,internetMessageHeaders,body,hasAttachments",
        segment(user_id),
        segment(message_id)
    ))
}

/// The URL listing a message's attachments without their bytes.
pub fn attachments_url(client: &GraphClient, user_id: &str, message_id: &str) -> String {
    client.url(&format!(
        "/users/{}/messages/{}/attachments?$select=id,name,contentType,size,isInline&$top=100",
        segment(user_id),
        segment(message_id)
    ))
}

/// The URL of one attachment's raw bytes (`$value`, api/attachment-get.md).
pub fn attachment_value_url(
    client: &GraphClient,
    user_id: &str,
    message_id: &str,
    attachment_id: &str,
) -> String {
    client.url(&format!(
        "/users/{}/messages/{}/attachments/{}/$value",
        segment(user_id),
        segment(message_id),
        segment(attachment_id)
    ))
}

/// A message's attachments, without their bytes.
pub async fn attachments(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    message_id: &str,
    on_throttle: impl FnMut(Duration),
) -> Result<Vec<AttachmentMeta>, GraphError> {
    let url = attachments_url(client, user_id, message_id);
    let page = Pages::<AttachmentMeta>::new(client, pacer, url)
        .collect(on_throttle)
        .await?;
    Ok(page.items)
}

/// A folder node for unit tests: `name` under `parent`, optionally well-known.
#[cfg(test)]
pub(crate) fn test_node(
    id: &str,
    parent: Option<&str>,
    name: &str,
    wk: Option<&'static str>,
) -> FolderNode {
    FolderNode {
        folder: MailFolder {
            id: id.into(),
            display_name: name.into(),
            parent_folder_id: parent.map(Into::into),
            child_folder_count: 0,
            total_item_count: 0,
            is_hidden: false,
            odata_type: None,
        },
        path: vec![name.into()],
        well_known: wk,
        under_well_known: wk,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_entries_upsert_or_remove() {
        let removed: DeltaEntry =
            serde_json::from_str(r#"{"id":"AAMk=","@removed":{"reason":"deleted"}}"#).unwrap();
        assert_eq!(removed, DeltaEntry::Removed { id: "AAMk=".into() });
        let partial: DeltaEntry = serde_json::from_str(r#"{"id":"x","isRead":true}"#).unwrap();
        assert!(
            matches!(partial, DeltaEntry::Upsert { complete: false, ref meta } if meta.is_read)
        );
        let full: DeltaEntry = serde_json::from_str(
            r#"{"id":"x","receivedDateTime":"2024-01-01T00:00:00Z","isRead":false,"isDraft":false,"flag":{"flagStatus":"notFlagged"},"categories":[]}"#,
        )
        .unwrap();
        assert!(matches!(full, DeltaEntry::Upsert { complete: true, .. }));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("AAMk+a/b=="), "AAMk%2Ba%2Fb==");
        assert_eq!(segment("a b"), "a%20b");
    }
}
