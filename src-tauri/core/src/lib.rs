//! # migrator-core
//!
//! The migration engine of M365 Migrator, shared by the desktop app and the `m365-migrate`
//! CLI. It has no user interface and never prints: it reports through [`progress::Reporter`].
//!
//! ## The pipeline in one paragraph
//! A run signs in to Microsoft Graph with the client-credentials flow ([`graph::auth`]), lists
//! the tenant's users (guests, users without an Exchange Online mailbox and online archives are
//! reported as not migrated, never as failures; each mailbox's own settings are read on its
//! own pacer), for IceWarp creates (in the tenant's verified domains) or merges their domains
//! and accounts through the
//! admin API ([`dest::provision`]; each account then logs in with its own password and login
//! name, a master login only once proved to open the user's mailbox), and migrates many
//! mailboxes in parallel, the largest first (each sized by one read while others copy, a
//! freed slot taken at once, except while the mailbox that bounds the finish runs under its
//! Graph ceiling on a saturated machine: then no new one starts until it keeps its pace or
//! the machine has room, `engine::admission`). Each mailbox has
//! its own [`graph::pacer::Pacer`], the only place that waits or retries, which keeps the mailbox under
//! Exchange Online's limits (4 requests in flight, 10,000 per 10 minutes) and honours
//! `Retry-After` exactly; all of a run's pacers share one count of Graph's limit per app across
//! the tenant (130,000 requests per 10 s; each of the workers sharing a PostgreSQL journal
//! takes its share of it, the limit over the live workers). For each folder of the tree ([`graph::mail`]; system folders such as
//! Outbox, Sync Issues or Teams' hidden Team Chat are left out unless asked for) the engine reads a
//! delta round (every message the first time, then only what changed since the stored
//! deltaLink), skips what the journal or the destination already holds, and streams each new
//! message's MIME (`$value`; one Graph cannot export is rebuilt from its properties and
//! attachments, [`convert::rebuilt`]) into the destination without holding it whole: into a Maildir
//! directly, or through a temporary spool file into an IMAP APPEND after checking whether the
//! server already has the message (the folder's fingerprint index: size, INTERNALDATE and
//! Message-ID from one paged FETCH per folder; SEARCH only as a fast path proven on that
//! server). Into IMAP, each folder round has one copy stage fed
//! across delta pages: downloads spool ahead while MULTIAPPEND batches go out on the
//! mailbox's pooled connections, under a run-wide connection cap that mailboxes share fairly;
//! message downloads across all mailboxes are capped too (`[run] max_downloads`), so memory
//! does not grow with the number of mailboxes; a freed download slot goes to the mailbox with
//! the most items left ([`graph::lane`]), so the largest is never queued behind small ones
//! (the lane's slots are fixed: a lane that shrank while the CPU was saturated throttled a
//! CPU-bound run at Exchange's real latency and was removed). A destination that goes down is waited for up
//! to `[run] outage_wait` (through the pacer, reported as `DestinationDown`), then only that
//! mailbox fails. Messages migrated earlier are mirrored instead: moved,
//! given their changed flags, and (only when the user opted in) deleted. The [`journal`]
//! records intent and result per message, so a stopped or crashed run resumes and a rerun
//! writes nothing twice. Flags and folder names are converted by pure functions ([`convert`]).
//! Then the mailbox's calendars (of every calendar group; calendars shared by others stay
//! with their owner), contacts and To Do tasks (not in China, which has no To Do API) are
//! read ([`graph::calendar`],
//! [`graph::contacts`], [`graph::todo`]) by the same kind of delta round, per calendar,
//! contact folder and task list ([`graph::paging::DeltaRound`], shared with mail; calendars by
//! beta's events delta, or listed in full where a cloud refuses it), so a rerun reads only
//! what changed (and only a changed contact's photo). Items are converted to iCalendar and
//! vCard by pure functions and written one resource per item (a file, or a CalDAV/CardDAV PUT
//! keyed by UID; an event's attachments are listed by metadata and only those within the
//! inline budget are read), journaled by content hash and source version so nothing is
//! written twice;
//! an item moved to another collection at the source leaves one copy (the old one is deleted
//! only if the journal says the migrator wrote it); deletions at the source are mirrored only
//! when asked. Every step is reported as one typed
//! [`progress::ProgressEvent`] stream; [`engine::plan()`] estimates a run beforehand and
//! [`engine::report`] renders the journal afterwards.
//!
//! ## Layout
//! - [`config`]: source settings, clouds, the TOML configuration file, input shape checks.
//! - [`secrets`]: [`secrets::Secret`], a value that never prints.
//! - [`spec`]: one description of a migration ([`spec::MigrationSpec`]) and its one validation,
//!   used by the app and by the configuration file (which deserializes the spec's own types,
//!   its file-only settings beside them: [`config::FileConfig`]).
//! - [`project`]: saved migrations (a spec, a name, the history of passes) as private JSON
//!   files, written atomically.
//! - [`cutover`]: before the cut-over: each domain's MX records, looked up in parallel under a
//!   short budget, with a plain reason per domain when DNS has no answer.
//! - [`error`]: the three error classes (retry, skip the item, stop the run).
//! - [`graph`]: the source: auth, client, pacer, download lane (largest mailbox first, sized
//!   by the machine's saturation), paging,
//!   wire types, users, mail, calendars, contacts, To Do, permissions.
//! - [`convert`]: pure conversions: flags, folder names (modified UTF-7, the separator
//!   substitute), a message rebuilt from its properties when Graph cannot export its MIME;
//!   events to iCalendar (one resource per series, RRULE, overrides, EXDATE, VTIMEZONE), contacts to
//!   vCard 3.0/4.0, To Do tasks to VTODO, Windows zones to IANA (CLDR data).
//! - [`dest`]: destinations: [`dest::folder`] (local Maildir++ tree), [`dest::imap`] (any IMAP
//!   server, tested against a real Dovecot), [`dest::dav`] (CalDAV + CardDAV: calendars, task
//!   lists, address books; tested against a real Radicale), [`dest::provision`] (creates
//!   domains and accounts: the [`dest::provision::AccountProvisioner`] trait, IceWarp's admin
//!   API).
//! - [`http`]: HTTP response bodies read under a cap (Graph, DAV, IceWarp's API).
//! - [`journal`]: the record of runs, folders and groupware collections (delta links) and
//!   items, for exactly-once: SQLite in the state folder, or a shared PostgreSQL database
//!   (`[journal] url`, [`journal::postgres`]), one contract over both.
//! - [`engine`]: runs a migration ([`engine::run`]) into a [`engine::Destination`] (mail and
//!   groupware per mailbox, IceWarp provisioning first), the pre-run check
//!   ([`engine::preflight`]), the plan ([`engine::plan()`], [`engine::plan_with`]: each
//!   mailbox's counts kept in the state folder, recounted on request, cancellable), the tenant
//!   model its estimate and the tenant benchmark's lower bound share ([`engine::estimate`]:
//!   mailboxes at their ceilings largest first, the app limit, the CPU, the destination), the
//!   report
//!   ([`engine::report`]),
//!   pause/resume/stop ([`engine::RunControl`]), the mailboxes' order and admission
//!   (`schedule`: largest first, starts spaced 10 ms apart so waves of mailboxes do not
//!   run in step; `admission`: no new start while the mailbox that bounds the finish lags on
//!   a saturated machine), and the workers that share a PostgreSQL
//!   journal, one leased mailbox at a time ([`engine::work`]).
//! - [`progress`]: the event stream, [`progress::Reporter`], counters, and
//!   [`progress::RunSnapshot`], the whole run at one moment (every mailbox from the start,
//!   totals from the plan's counts, rate and ETA) that front ends show.
//! - [`open_files`]: the process's open-file limit, raised towards its hard limit by the front
//!   ends at start (a thousand mailboxes at once need thousands of descriptors).
//! - [`private_files`]: files and folders that hold passwords or mail: no symbolic link
//!   followed, owned by the running user, private; directories synced after a rename.

pub mod config;
pub mod convert;
pub mod cutover;
pub mod dest;
pub mod engine;
pub mod error;
pub mod graph;
pub mod http;
pub mod journal;
pub mod open_files;
pub mod private_files;
pub mod progress;
pub mod project;
pub mod secrets;
pub mod spec;
