//! Destinations. Each kind lives in `dest/<kind>/` with the same shape; see CONTRIBUTING.md,
//! "How to add a destination".
//!
//! - [`folder`]: a local folder, one Maildir++ tree per user (a backup format, and the demo's
//!   destination).

pub mod folder;

/// Where an item ended up at the destination (a file name, an IMAP UID, a DAV href).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestRef(pub String);
