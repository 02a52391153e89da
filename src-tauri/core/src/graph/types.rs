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
}

/// `$select` for [`User`].
pub const USER_SELECT: &str = "id,userPrincipalName,mail,displayName,accountEnabled,proxyAddresses";

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
}

/// `$select` for [`MessageMeta`].
pub const MESSAGE_SELECT: &str =
    "id,receivedDateTime,isRead,isDraft,flag,categories,internetMessageId";

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
}
