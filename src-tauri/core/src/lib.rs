//! # migrator-core
//!
//! The migration engine of M365 Migrator, shared by the desktop app and the `m365-migrate`
//! CLI. It has no user interface and never prints: it reports through [`progress::Reporter`].
//!
//! ## The pipeline in one paragraph
//! A run signs in to Microsoft Graph with the client-credentials flow ([`graph::auth`]), lists
//! the tenant's users, and migrates many mailboxes in parallel. Each mailbox has its own
//! [`graph::pacer::Pacer`], the only place that waits or retries, which keeps the mailbox under
//! Exchange Online's limits (4 requests in flight, 10,000 per 10 minutes) and honours
//! `Retry-After` exactly. For each folder of the tree ([`graph::mail`]) the engine pages
//! through the messages, skips those the journal or the destination already holds, and
//! streams each message's MIME (`$value`) into the destination without holding it whole: into
//! a Maildir directly, or through a temporary spool file into an IMAP APPEND after asking the
//! server whether it already has the message. The [`journal`] records intent and result per
//! message, so a stopped or crashed run resumes and a rerun writes nothing twice. Flags and
//! folder names are converted by pure functions ([`convert`]). Every step is reported as one
//! typed [`progress::ProgressEvent`] stream.
//!
//! ## Layout
//! - [`config`]: source settings, clouds, the TOML configuration file, input shape checks.
//! - [`secrets`]: [`secrets::Secret`], a value that never prints.
//! - [`error`]: the three error classes (retry, skip the item, stop the run).
//! - [`graph`]: the source: auth, client, pacer, paging, wire types, users, mail,
//!   permissions.
//! - [`convert`]: pure conversions: flags, folder names (modified UTF-7, escaping); events to
//!   iCalendar (one resource per series, RRULE, overrides, EXDATE, VTIMEZONE), contacts to
//!   vCard 3.0/4.0, To Do tasks to VTODO, Windows zones to IANA (CLDR data).
//! - [`dest`]: destinations: [`dest::folder`] (local Maildir++ tree), [`dest::imap`] (any IMAP
//!   server, tested against a real Dovecot), [`dest::dav`] (CalDAV + CardDAV: calendars, task
//!   lists, address books; tested against a real Radicale), [`dest::provision`] (creates
//!   domains and accounts: the [`dest::provision::AccountProvisioner`] trait, IceWarp's admin
//!   API).
//! - [`journal`]: SQLite record of runs, folders (delta links) and items, for exactly-once.
//! - [`engine`]: runs a migration ([`engine::run`]) into a [`engine::Destination`], the
//!   pre-run check ([`engine::preflight`]), pause/resume/stop ([`engine::RunControl`]).
//! - [`progress`]: the event stream, [`progress::Reporter`], counters.

pub mod config;
pub mod convert;
pub mod dest;
pub mod engine;
pub mod error;
pub mod graph;
pub mod journal;
pub mod progress;
pub mod secrets;
