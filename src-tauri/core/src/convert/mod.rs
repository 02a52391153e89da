//! Pure conversions from Graph's shapes to the destinations' shapes. No I/O here.
//!
//! Mail: [`flags`], [`folder_name`], [`rebuilt`] (a message rebuilt from its properties when
//! Graph cannot export its MIME). Groupware: [`event`] (events to iCalendar, one resource
//! per series), [`contact`] (contacts to vCard 3.0 or 4.0), [`task`] (To Do tasks to VTODO),
//! with [`recurrence`] (Graph patterns to RRULE), [`timezone`] (Windows zones to IANA, wall
//! times) and [`html_text`] (HTML bodies to plain text) under them. The formats are written by
//! the `calcard` crate, which folds lines at 75 octets and escapes text (RFC 5545 §3.1, §3.3.11;
//! RFC 6350 §3.2, §3.4).

pub mod contact;
pub mod event;
pub mod flags;
pub mod folder_name;
pub mod html_text;
pub mod rebuilt;
pub mod recurrence;
pub mod task;
pub mod timezone;

/// Text made safe as a parameter value (a CN, a SORT-AS): parameter values cannot hold a
/// double quote, even quoted (RFC 5545 §3.1 QSAFE-CHAR, RFC 6350 §3.3), and parsers such as
/// Radicale's refuse the whole resource if one does, so `"` becomes `'`; control characters
/// (line breaks included) become spaces.
pub fn parameter_text(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// An iCalendar object ready to PUT: one series (master and overrides) or one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarResource {
    /// The UID shared by every component in `text`; stable across reruns.
    pub uid: String,
    /// `BEGIN:VCALENDAR` … `END:VCALENDAR`, CRLF line ends, folded.
    pub text: String,
    /// Repairs made on the way (zone fallback, dropped override, attachment listed instead of
    /// inlined), for the run's report. Empty when the conversion was faithful.
    pub notes: Vec<String>,
}

/// A vCard ready to PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardResource {
    pub uid: String,
    pub text: String,
    pub notes: Vec<String>,
}

/// Why an item could not be converted. The item is skipped with this reason; the run goes on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("cannot read {field} {value:?}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("unknown recurrence pattern type {0:?}")]
    UnknownPattern(String),
    #[error("unknown recurrence range type {0:?}")]
    UnknownRange(String),
    #[error("cannot write the {0}")]
    Write(&'static str),
}

impl ConvertError {
    pub(crate) fn invalid(field: &'static str, value: &str, reason: &'static str) -> Self {
        ConvertError::Invalid {
            field,
            value: value.to_string(),
            reason,
        }
    }
}

/// A deterministic UID for an item Graph gives none for: the same Graph id always yields the
/// same UID, so a rerun updates instead of duplicating.
pub(crate) fn uid_from_graph_id(kind: &str, id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.as_bytes());
    format!("m365-{kind}-{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameter_values_lose_double_quotes_and_line_breaks() {
        assert_eq!(
            super::parameter_text("Room 4.12 \"Alpen\"\r\nEast"),
            "Room 4.12 'Alpen'  East"
        );
    }
}
