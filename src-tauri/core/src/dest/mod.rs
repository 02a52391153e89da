//! Destinations. Each kind lives in `dest/<kind>/` with the same shape; see CONTRIBUTING.md,
//! "How to add a destination".
//!
//! - [`dav`]: any CalDAV + CardDAV server (IceWarp, Radicale, ...): discovery or URL
//!   templates, calendars, task lists and address books created or merged by name, and
//!   conditional PUTs that update a resource with the same UID instead of duplicating it.
//! - [`folder`]: a local folder, one Maildir++ tree per user (a backup format, and the demo's
//!   destination).
//! - [`imap`]: any IMAP4rev1 server (IceWarp, Dovecot, ...): TLS, master-user login, folder
//!   mapping to SPECIAL-USE folders, streaming APPEND with flags and dates, and the
//!   destination check that keeps appends exactly-once.
//! - [`provision`]: creating domains and accounts before writing ([`provision::icewarp`]:
//!   IceWarp's admin API).

pub mod dav;
pub mod folder;
pub mod imap;
pub mod provision;

/// Where an item ended up at the destination (a file name, an IMAP UID, a DAV href).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestRef(pub String);

/// The groupware collections a destination holds besides mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupwareKind {
    /// Events (iCalendar VEVENT).
    Calendar,
    /// Contacts (vCard).
    Contacts,
    /// To Do tasks (iCalendar VTODO).
    Tasks,
}
