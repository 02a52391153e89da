//! One mailbox's mail: folder tree, then every folder by a delta round, page by page, up to
//! the pacer's in-flight limit of messages at a time, streamed from Graph into the
//! destination.
//!
//! **Rounds.** A folder without a stored deltaLink gets a full round (every message); one
//! with a link gets only what changed since (Graph docs api/message-delta.md). The new link
//! is stored only after the whole round was applied without a failure, so a stopped or failed
//! round is simply replayed; replays are harmless because every entry is an upsert by id. A
//! link Graph has forgotten (410 Gone, or a 4xx naming an expired or invalid sync state)
//! starts a full round, and after a complete full round the journal's items of that folder
//! the round did not list are treated as removed.
//!
//! **Per entry.** A message the journal holds as migrated is *mirrored*: moved at the
//! destination if it now lives in another folder (immutable ids survive moves, so the add in
//! the new folder and the `@removed` in the old one name the same message, in either order),
//! and given the flags that changed. Anything else is *copied*: record the intent, write, and
//! record the destination reference. `@removed` only marks the item; at the end of the
//! mailbox's pass, items still marked in the folder they were removed from were deleted at
//! the source, and are deleted at the destination only with `mirror_deletions` (else kept).
//! Copies the migrator found rather than made (mail that predates the migration) are never
//! changed, moved or deleted.
//! - Local folder: streamed straight into the Maildir (`tmp/` then `cur/`); the file name's key
//!   tells whether it is there.
//! - IMAP: one copy stage per folder round, fed by the page loop across pages: spooled to a
//!   temporary file (APPEND needs the length first); downloads feed a bounded queue that the
//!   user's connections (a small pool under the run's connection cap, extra ones given back
//!   while other mailboxes wait) drain in batches, one MULTIAPPEND per batch when the server
//!   offers it. A message that may
//!   already be at the server (the folder held mail when the pass first looked at it, the
//!   journal holds an unconfirmed attempt, or an APPEND was cut off) is looked up by its
//!   fingerprint first, so neither a lost journal, a crash between APPEND and journal write,
//!   nor mail already in the account makes a duplicate.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Mutex;

use super::spool::Spool;
use super::{EngineError, RunControl, Store};
use crate::config::DateLimits;
use crate::convert::flags::{applied_flags, flag_changes, MailFlags};
use crate::dest::folder::{maildir_folder_names_in, Folder, Mailbox};
use crate::dest::imap::{
    append_flags, ImapError, ImapLogin, ImapMailbox, ImapRef, ImapSettings, MessageFingerprint,
};
use crate::dest::provision::icewarp::{IceWarpProvisioner, RESOURCE_LOGIN_REFUSED};
use crate::dest::DestRef;
use crate::error::{Classify, ErrorClass};
use crate::graph::client::{GraphClient, GraphError};
use crate::graph::mail::{
    delta_round, folder_tree_with, last_verbs, message_location_url, message_url, mime_url,
    undownloadable, DeltaEntry, FolderNode, LastVerb, MessageLocation,
};
use crate::graph::types::{MessageMeta, User};
use crate::graph::{OutagePolicy, Pacer, PacerSettings};
use crate::journal::{ItemRecord, ItemState, ItemTarget, Journal, MailDetails, MailDone};
use crate::progress::{ItemName, ProgressEvent, Reporter, Stats};

/// How many "done" records of one mailbox are under way at once, besides the items being
/// written (issue 18): a message's or a groupware item's record, ~1 ms on PostgreSQL, does not
/// hold up the next write (on PostgreSQL the records that arrive while one is in flight share
/// its next transaction).
pub(super) const DONE_RECORDS_IN_FLIGHT: usize = 16;

/// The journal of the current run.
#[derive(Clone, Copy)]
pub(super) struct RunJournal<'a> {
    pub journal: &'a Journal,
    pub run: i64,
}

/// Everything one mailbox's migration needs.
pub(super) struct MailboxRun<'a> {
    pub client: &'a GraphClient,
    pub store: &'a Store,
    pub journal: Option<RunJournal<'a>>,
    pub reporter: Arc<dyn Reporter>,
    pub control: RunControl,
    /// The mailbox's Graph pacer, shared with its other workloads.
    pub pacer: &'a Pacer,
    /// Delete at the destination what was deleted at the source (else keep it).
    pub mirror_deletions: bool,
    /// Messages outside these are left out ([`DateLimits::keeps_mail`]).
    pub limits: DateLimits,
    /// How long a connection waits for a destination that is down ([`through_outages`]).
    pub outage_wait: Duration,
    /// Migrate system folders too ([`folder_tree_with`]).
    pub include_system_folders: bool,
    /// What replaces the separator inside a folder name (`[run] folder_separator_substitute`).
    pub separator_substitute: &'a str,
    /// IceWarp's admin API, which names each account's GroupWare folders (kept apart from
    /// mail folders over IMAP).
    pub icewarp: Option<&'a IceWarpProvisioner>,
}

/// What copy results count into: the mailbox's stats, whether the round and the mailbox
/// are still fine, and the messages of the round still being copied.
type Outcome<'a> = (
    &'a mut Stats,
    &'a mut bool,
    &'a mut bool,
    &'a mut HashMap<String, ItemName>,
);

/// One message's copy result, with what people know it by (for its failure).
type CopyResult = (String, ItemName, Result<Copied, ItemError>);

/// Messages of one mailbox copied into a Maildir at once: twice its requests in flight
/// ([`PacerSettings::max_in_flight`]), so while some of its messages are written and synced
/// (file and folder) the others keep the mailbox's request slots busy. The pacer still
/// holds Graph's requests to `max_in_flight`; when the run's download lane is narrow (a
/// saturated machine, [`crate::graph::lane`]) the mailbox with the most left then keeps its
/// downloads and its writes overlapped instead of idling its slots during each sync.
fn maildir_copy_width(settings: &PacerSettings) -> usize {
    settings.max_in_flight.max(1) * 2
}

/// What people know a message by: its subject and when it was received.
fn message_name(meta: &MessageMeta, size: Option<u64>) -> ItemName {
    ItemName::new(
        meta.subject.as_deref(),
        meta.received_date_time.as_deref(),
        size,
    )
}

/// How one message ended when it did not arrive.
enum ItemError {
    Cancelled,
    Skip(String),
    /// This message can never be downloaded (nor rebuilt): reported and journaled like
    /// [`ItemError::Skip`], but its folder's round still completes, so the deltaLink is stored
    /// and later passes do not read the whole folder again for it.
    Unavailable(String),
    /// This mailbox cannot go on (e.g. its destination login was refused); others can.
    Mailbox(String),
    Fatal(EngineError),
}

/// A message that reached the destination, or was found there.
struct Copied {
    bytes: u64,
    dest: DestRef,
    /// Found at the destination rather than written.
    existed: bool,
    /// The migrator wrote it (now or in an interrupted earlier attempt).
    created: bool,
    hash: Option<String>,
    details: MailDetails,
    /// Rebuilt from its properties because Graph could not export its MIME: the report line.
    rebuilt: Option<String>,
}

/// What mirroring did to a message the destination already had.
enum Mirrored {
    /// Nothing changed.
    Unchanged,
    /// Moved and/or flags changed.
    Updated,
    /// Not where the journal says (or not ours to move): copy it like a new message.
    NeedsCopy,
}

/// A user's Maildir++ tree, with the folders opened so far.
struct MaildirTarget {
    mailbox: Mailbox,
    names: Vec<String>,
    open: HashMap<String, Folder>,
}

impl MaildirTarget {
    fn folder(&mut self, name: &str) -> Result<&mut Folder, EngineError> {
        if !self.open.contains_key(name) {
            let folder = self
                .mailbox
                .folder(name)
                .map_err(|e| dest_error(&self.mailbox.path().join(name), e))?;
            self.open.insert(name.to_string(), folder);
        }
        self.open
            .get_mut(name)
            .ok_or_else(|| dest_error(self.mailbox.path(), std::io::ErrorKind::NotFound.into()))
    }
}

/// Why one mailbox's destination could not be opened ([`MailboxRun::open_target`]).
enum Unopened {
    /// IceWarp refused a login as the resource account: the mailbox is not migrated
    /// ([`RESOURCE_LOGIN_REFUSED`]), not failed.
    ResourceLoginRefused,
    /// The mailbox fails with this reason.
    Failed(String),
}

/// The user's destination, opened.
enum Target {
    Maildir(MaildirTarget),
    Imap(Arc<ImapWriters>, Vec<Result<String, String>>),
}

/// One user's IMAP connections: the first (always open) mapped the folders and does the
/// mirroring; all of them append. The extra ones are held only while nobody else waits
/// under the run's connection cap: a mailbox that waits for its first connection cannot
/// start at all, so spare connections go back to it (the cap is shared fairly).
struct ImapWriters {
    first: Mutex<ImapMailbox>,
    /// Up to `connections_per_mailbox - 1` slots, open or given back.
    extra: Vec<Mutex<Option<ImapMailbox>>>,
    settings: ImapSettings,
    login: ImapLogin,
}

impl ImapWriters {
    fn first(&self) -> &Mutex<ImapMailbox> {
        &self.first
    }

    /// Connections that may append at once.
    fn width(&self) -> usize {
        1 + self.extra.len()
    }

    /// A connection nobody is using, else the first one once it is free. Gives the idle
    /// extra connections back while others wait for one, and reopens them (only when there
    /// is room) once nobody does.
    async fn any(&self) -> tokio::sync::MappedMutexGuard<'_, ImapMailbox> {
        let limit = &self.settings.connection_limit;
        let mut free = None;
        for slot in &self.extra {
            let Ok(mut guard) = slot.try_lock() else {
                continue;
            };
            if limit.has_waiters() {
                if let Some(mailbox) = guard.take() {
                    mailbox.logout().await;
                }
                continue;
            }
            if guard.is_none() && free.is_none() {
                match ImapMailbox::connect_if_room(&self.settings, &self.login).await {
                    Ok(mailbox) => *guard = mailbox,
                    Err(e) => tracing::debug!(error = %e, "no extra IMAP connection"),
                }
            }
            if free.is_none() {
                free = tokio::sync::MutexGuard::try_map(guard, Option::as_mut).ok();
            }
        }
        if let Ok(first) = self.first.try_lock() {
            return tokio::sync::MutexGuard::map(first, |m| m);
        }
        match free {
            Some(extra) => extra,
            None => tokio::sync::MutexGuard::map(self.first.lock().await, |m| m),
        }
    }

    /// Logs every open connection out.
    async fn logout(self) {
        self.first.into_inner().logout().await;
        for slot in self.extra {
            if let Some(mailbox) = slot.into_inner() {
                mailbox.logout().await;
            }
        }
    }
}

/// A MULTIAPPEND carries at most this many messages...
const BATCH_MESSAGES: usize = 32;
/// ...and at most this many bytes (a larger message goes alone), so one refused batch costs
/// little to resend and a batch stays within any server's command size.
const BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// The page loop feeds an IMAP folder's copy stage at most this many messages ahead of what
/// it has started to download: enough to list the next page while the stage works, little
/// memory (metadata only).
const FEED_AHEAD: usize = 128;

/// A message downloaded to a spool file, ready to append.
struct Spooled {
    id: String,
    spool: Spool,
    len: u64,
    flags: MailFlags,
    received: time::OffsetDateTime,
    fingerprint: MessageFingerprint,
    hash: String,
    /// The journal held an unconfirmed attempt: the server may have it already.
    earlier_attempt: bool,
    /// See [`Copied::rebuilt`].
    rebuilt: Option<String>,
    /// Subject, date and size, for a failure.
    name: ItemName,
}

impl Spooled {
    fn copied(&self, dest: DestRef, existed: bool, created: bool) -> Copied {
        Copied {
            bytes: self.len,
            dest,
            existed,
            created,
            hash: Some(self.hash.clone()),
            rebuilt: self.rebuilt.clone(),
            details: MailDetails {
                message_id: self.fingerprint.message_id.clone(),
                header_hash: Some(hex::encode(self.fingerprint.header_sha256)),
                received: Some(self.received.unix_timestamp()),
                flags: Some(append_flags(&self.flags)),
            },
        }
    }
}

/// `settings` with a reconnect policy that waits out a destination that is down (restarted,
/// in a maintenance window): connection attempts 1 s to 30 s apart for up to `outage` (the
/// run's `outage_wait`) per reconnect, each wait reported as
/// [`ProgressEvent::DestinationDown`]; after that the mailbox fails, naming the server and the
/// time waited. The preflight check connects with the settings' own short policy, so a wrong
/// address is still reported within seconds.
fn through_outages(
    settings: &ImapSettings,
    outage: Duration,
    reporter: Arc<dyn Reporter>,
    user: &str,
) -> ImapSettings {
    let mut settings = settings.clone();
    settings.reconnect.max_backoff = settings.reconnect.max_backoff.max(Duration::from_secs(30));
    let (destination, user) = (
        format!("IMAP server {}:{}", settings.host, settings.port),
        user.to_string(),
    );
    let limit_ms = outage.as_millis() as u64;
    settings.outage = Some(OutagePolicy::new(outage).with_notice(move |down_for| {
        reporter.report(ProgressEvent::DestinationDown {
            user: user.clone(),
            destination: destination.clone(),
            down_ms: down_for.as_millis() as u64,
            limit_ms,
        })
    }));
    settings
}

/// Attempts of one IMAP step (create the folders, find or append a message) when the
/// connection is lost; each attempt reconnects with the retries of `ImapSettings::reconnect`.
const IMAP_ATTEMPTS: u32 = 3;

/// Why a destination folder could not be opened, for the folder's reported failure.
pub(super) fn folder_failure(e: &EngineError) -> String {
    match e {
        EngineError::Destination { path, source } => {
            format!("cannot create the folder {path}: {source}")
        }
        other => format!("cannot create the folder: {other}"),
    }
}

fn dest_error(path: &std::path::Path, source: std::io::Error) -> EngineError {
    EngineError::Destination {
        path: path.display().to_string(),
        source,
    }
}

fn graph_failure(e: GraphError, skip: impl FnOnce(String) -> ItemError) -> ItemError {
    match e.class() {
        ErrorClass::Fatal => match e {
            GraphError::Sink { url, source } => {
                ItemError::Fatal(EngineError::Destination { path: url, source })
            }
            other => ItemError::Fatal(EngineError::Source(other)),
        },
        _ => skip(e.to_string()),
    }
}

fn imap_failure(e: ImapError, skip: impl FnOnce(String) -> ItemError) -> ItemError {
    match e.class() {
        ErrorClass::SkipItem => skip(e.to_string()),
        _ => ItemError::Mailbox(format!("the destination mailbox failed: {e}")),
    }
}

fn journal_failure(e: crate::journal::JournalError) -> ItemError {
    ItemError::Fatal(e.into())
}

/// The fingerprint the journal remembers of a migrated message, to find it again at the
/// destination (after a UIDVALIDITY change, or without UIDPLUS).
fn recorded_fingerprint(r: &ItemRecord) -> Option<MessageFingerprint> {
    let hash: [u8; 32] = hex::decode(r.mail.header_hash.as_deref()?)
        .ok()?
        .try_into()
        .ok()?;
    Some(MessageFingerprint {
        message_id: r.mail.message_id.clone(),
        size: r.size?,
        header_sha256: hash,
        received: time::OffsetDateTime::from_unix_timestamp(r.mail.received?).ok()?,
    })
}

/// The UID of a migrated message in its recorded folder: the recorded one while the folder's
/// UIDVALIDITY is unchanged, else found again by fingerprint (RFC 3501 §2.3.1.1: a new
/// UIDVALIDITY voids every UID).
async fn locate(mailbox: &mut ImapMailbox, r: &ItemRecord) -> Result<Option<u32>, ImapError> {
    let recorded = ImapRef::from_dest_ref(&DestRef(r.dest_ref.clone().unwrap_or_default()));
    let current = mailbox.uid_validity(&r.dest_folder).await?;
    if let (Some((validity, uid)), Some(current)) = (recorded.uid, current) {
        if validity == current && recorded.folder == r.dest_folder {
            return Ok(Some(uid));
        }
    }
    match recorded_fingerprint(r) {
        Some(fingerprint) => mailbox.find_existing(&r.dest_folder, &fingerprint).await,
        None => Ok(None),
    }
}

impl MailboxRun<'_> {
    /// Migrates one user's mail. Returns `Err` only for failures that would fail every other
    /// mailbox too; anything about this mailbox alone is reported and counted as failed.
    pub(super) async fn migrate(&self, user: &User) -> Result<Stats, EngineError> {
        let address = user.mail.clone().unwrap_or_default();
        let reporter = &self.reporter;
        let pacer = self.pacer;
        let on_throttle = |wait: Duration| {
            reporter.report(ProgressEvent::Throttled {
                user: address.clone(),
                wait_ms: wait.as_millis() as u64,
            })
        };
        let fail_named =
            |stats: &mut Stats, folder: &str, item: &str, name: &ItemName, reason: String| {
                stats.failed += 1;
                reporter.report(name.failed(&address, folder, item, reason));
            };
        let fail = |stats: &mut Stats, folder: &str, item: &str, reason: String| {
            fail_named(stats, folder, item, &ItemName::default(), reason)
        };
        let skipped = |stats: &mut Stats| {
            stats.skipped += 1;
            reporter.report(ProgressEvent::ItemDone {
                user: address.clone(),
                bytes: 0,
                skipped: true,
            });
        };
        // Reported per message as soon as it is journaled, so progress moves smoothly.
        let done = |copied: &Copied| {
            if copied.rebuilt.is_some() {
                // Reported as a failure with its reason when absorbed.
                return;
            }
            reporter.report(ProgressEvent::ItemDone {
                user: address.clone(),
                bytes: if copied.existed { 0 } else { copied.bytes },
                skipped: copied.existed,
            })
        };
        // The run reports `UserFinished` once the mailbox's other workloads are done too.
        let finish = async |state: &str| -> Result<(), EngineError> {
            if let Some(j) = self.journal {
                j.journal
                    .set_user_state_async(&user.id, &address, state)
                    .await?;
            }
            Ok(())
        };
        let mut stats = Stats::default();

        let system = self.include_system_folders;
        let tree = folder_tree_with(self.client, pacer, &user.id, system, &on_throttle).await;
        let (nodes, bad_folders) = match tree {
            Ok(tree) => tree,
            Err(e) if e.class() == ErrorClass::Fatal => return Err(EngineError::Source(e)),
            Err(e) => {
                // E.g. a mailbox excluded by an application access policy: this user only.
                fail(&mut stats, "", "(mailbox)", e.to_string());
                finish("failed").await?;
                return Ok(stats);
            }
        };
        for (id, reason) in bad_folders {
            fail(
                &mut stats,
                "",
                &id,
                format!("malformed folder entry: {reason}"),
            );
        }
        // Folders recorded by an earlier pass: their destination names (kept where an earlier
        // version named them), and which are gone.
        let known_folders: HashMap<String, String> = match self.journal {
            Some(j) => j
                .journal
                .folders_of_async(&user.id)
                .await?
                .into_iter()
                .collect(),
            None => HashMap::new(),
        };
        let mut target = match self.open_target(&address, &nodes, &known_folders).await? {
            Ok(target) => target,
            Err(Unopened::ResourceLoginRefused) => {
                // Left out by the server's answer, not failed: nothing of it is written.
                let journal = self.journal.as_ref().map(|j| j.journal);
                let reason = RESOURCE_LOGIN_REFUSED;
                super::mailboxes::report_not_migrated(journal, &**reporter, user, reason)?;
                return Ok(stats);
            }
            Err(Unopened::Failed(reason)) => {
                fail(&mut stats, "", "(mailbox)", reason);
                finish("failed").await?;
                return Ok(stats);
            }
        };
        // Each source folder's destination name (where it has one), by position in `nodes`.
        let destination_names: Vec<Option<String>> = match &target {
            Target::Maildir(t) => t.names.iter().cloned().map(Some).collect(),
            Target::Imap(_, names) => names.iter().map(|n| n.clone().ok()).collect(),
        };
        if let Some(j) = self.journal {
            j.journal
                .set_user_state_async(&user.id, &address, "started")
                .await?;
            // Changed date limits: full rounds, so mail a wider limit lets in is listed again
            // (delta links only bring changes). A narrower one removes nothing migrated.
            let limits = self.limits.fingerprint();
            let before = j.journal.user_limits_async(&user.id).await?;
            if before.unwrap_or_else(|| DateLimits::default().fingerprint()) != limits {
                j.journal.set_user_limits_async(&user.id, &limits).await?;
            }
            let live: HashSet<&str> = nodes.iter().map(|n| n.folder.id.as_str()).collect();
            for folder_id in known_folders.keys().filter(|f| !live.contains(f.as_str())) {
                // Deleted at the source (its messages moved elsewhere show up there).
                j.journal.mark_folder_gone(&user.id, folder_id)?;
                j.journal.forget_folder(&user.id, folder_id)?;
            }
        }
        tracing::debug!(target: "timeline", user = %address, "mail folders listed");
        reporter.report(ProgressEvent::UserStarted {
            user: address.clone(),
            folders: nodes.len() as u32,
            messages: nodes.iter().map(|n| n.folder.total_item_count).sum(),
        });

        let mut mailbox_failed = false;
        // Every round complete: only then are items still marked gone really deleted.
        let mut all_rounds_ok = true;
        'folders: for (index, node) in nodes.iter().enumerate() {
            if self.control.checkpoint().await.is_err() {
                break;
            }
            let folder_label = node.path.join("/");
            let name = match &mut target {
                Target::Maildir(t) => {
                    let name = t.names[index].clone();
                    if let Err(e) = t.folder(&name) {
                        // This folder only (issue 19.4): the others and the other users go on.
                        fail(&mut stats, &folder_label, "(folder)", folder_failure(&e));
                        all_rounds_ok = false;
                        continue;
                    }
                    name
                }
                Target::Imap(_, names) => match &names[index] {
                    Ok(name) => name.clone(),
                    Err(reason) => {
                        fail(&mut stats, &folder_label, "(folder)", reason.clone());
                        all_rounds_ok = false;
                        continue;
                    }
                },
            };
            let name = name.as_str();
            let mut link = None;
            if let Some(j) = self.journal {
                // Renamed or moved at the source: the migrated messages follow it.
                if let Some(old) = known_folders.get(&node.folder.id).filter(|o| *o != name) {
                    for r in j.journal.items_in_folder(&user.id, &node.folder.id)? {
                        if r.dest_folder != *old {
                            continue;
                        }
                        let relocated = self.mirror(&mut target, &user.id, &r, node, name, None);
                        if let Err(e) = relocated.await {
                            all_rounds_ok = false;
                            let failed = &mut mailbox_failed;
                            let item = (r.source_id.as_str(), &ItemName::default());
                            let outcome = (&mut stats, failed);
                            if self.item_error(e, outcome, &folder_label, item, &fail_named)? {
                                break 'folders;
                            }
                        }
                    }
                }
                link = j
                    .journal
                    .set_folder_reading_link_async(&user.id, &node.folder.id, name)
                    .await?;
            }
            stats.folders += 1;
            let mut round = delta_round(self.client, pacer, &user.id, &node.folder.id, link);
            let mut round_ok = true;
            let mut cleared = false;
            // Replied and forwarded messages of the folder, read once per round with changes.
            let mut verbs: Option<HashMap<String, LastVerb>> = None;
            // Into IMAP, one copy stage per round takes the messages of every page, so its
            // downloads and connections never drain at a page boundary (the page loop feeds it
            // at most FEED_AHEAD messages ahead); its results come back on `copied_rx`.
            let (feed, feed_rx) = tokio::sync::mpsc::channel(FEED_AHEAD);
            let (copied_tx, mut copied_rx) = tokio::sync::mpsc::unbounded_channel();
            let stage = match &target {
                Target::Imap(writers, _) => {
                    let writers = Arc::clone(writers);
                    let (graph, user_id, done) = ((pacer, &on_throttle), user.id.as_str(), &done);
                    Some(async move {
                        self.copy_to_imap(&writers, graph, user_id, name, feed_rx, copied_tx, done)
                            .await
                    })
                }
                Target::Maildir(_) => {
                    // No stage: the page loop's drain ends at once.
                    drop(copied_tx);
                    None
                }
            };
            let stage = async {
                if let Some(stage) = stage {
                    stage.await
                }
            };
            let pages = async {
                let mut stop = false;
                // Fed to the stage and not absorbed yet. Delta may list a message again in a
                // later page: its first copy must be journaled before it is looked at again.
                let mut in_flight: HashMap<String, ItemName> = HashMap::new();
                // The next page is requested while this one's messages are copied (at most one
                // page ahead), so downloads and appends do not stall at every page boundary.
                let mut pending = round.next_page(&on_throttle).await;
                'pages: while let Some(page) = pending.take() {
                    if let (Some(j), true, false) = (self.journal, round.restarted(), cleared) {
                        // The sync state expired: the whole folder is read again.
                        j.journal.clear_delta_link(&user.id, &node.folder.id)?;
                        cleared = true;
                    }
                    let full = round.is_full();
                    let page = match page {
                        Ok(page) => page,
                        Err(e) if e.class() == ErrorClass::Fatal => {
                            return Err(EngineError::Source(e))
                        }
                        Err(e) => {
                            fail(&mut stats, &folder_label, "(folder listing)", e.to_string());
                            round_ok = false;
                            break 'pages;
                        }
                    };
                    for (id, reason) in page.bad {
                        let reason = format!("malformed message entry: {reason}");
                        fail(&mut stats, &folder_label, &id, reason);
                        round_ok = false;
                    }
                    let more = page.delta_link.is_none();
                    let mut seen_in_page = HashSet::new();
                    let mut todo = Vec::new();
                    // The page's records, asked for at once (issue 18: one lookup per item was
                    // a round trip each on PostgreSQL). A message still in flight from an
                    // earlier page is journaled meanwhile: its record is read after it lands.
                    let listed: Vec<&str> = page
                        .items
                        .iter()
                        .filter_map(|e| match e {
                            DeltaEntry::Upsert { meta, .. } => Some(meta.id.as_str()),
                            DeltaEntry::Removed { .. } => None,
                        })
                        .collect();
                    let in_flight_at_lookup: HashSet<String> = listed
                        .iter()
                        .filter(|id| in_flight.contains_key(**id))
                        .map(|id| id.to_string())
                        .collect();
                    let mut page_records = match self.journal {
                        Some(j) => j.journal.items_by_id_async(&user.id, &listed).await?,
                        None => HashMap::new(),
                    };
                    for entry in page.items {
                        let (meta, complete) = match entry {
                            DeltaEntry::Removed { id } => {
                                if let Some(j) = self.journal {
                                    j.journal.mark_gone(&user.id, &id, &node.folder.id)?;
                                }
                                continue;
                            }
                            DeltaEntry::Upsert { meta, complete } => (meta, complete),
                        };
                        if !seen_in_page.insert(meta.id.clone()) {
                            skipped(&mut stats);
                            continue;
                        }
                        let meta = if complete {
                            meta
                        } else {
                            let url = message_url(self.client, &user.id, &meta.id);
                            match self
                                .client
                                .get_json::<MessageMeta>(pacer, &url, &on_throttle)
                                .await
                            {
                                Ok(full) => full,
                                // Gone again meanwhile: its removal comes in a later round.
                                Err(e) if e.status() == Some(404) => continue,
                                Err(e) if e.class() == ErrorClass::Fatal => {
                                    return Err(EngineError::Source(e))
                                }
                                Err(e) => {
                                    fail(&mut stats, &folder_label, &meta.id, e.to_string());
                                    round_ok = false;
                                    continue;
                                }
                            }
                        };
                        while in_flight.contains_key(&meta.id) {
                            let Some(result) = copied_rx.recv().await else {
                                break;
                            };
                            let outcome = (
                                &mut stats,
                                &mut round_ok,
                                &mut mailbox_failed,
                                &mut in_flight,
                            );
                            if self.absorb(
                                &mut target,
                                name,
                                [result],
                                outcome,
                                &folder_label,
                                &fail_named,
                            )? {
                                stop = true;
                                break 'pages;
                            }
                        }
                        let record = match self.journal {
                            Some(j) if in_flight_at_lookup.contains(&meta.id) => {
                                j.journal.item(&user.id, &meta.id)?
                            }
                            Some(_) => page_records.remove(&meta.id),
                            None => None,
                        };
                        // The journal held an unconfirmed attempt of an earlier run (what the
                        // server has is probably ours). A record planned with its page
                        // (`created` false) does not say its write began.
                        let earlier_attempt = record.as_ref().is_some_and(|r| {
                            r.state != ItemState::Done && r.dest_folder == name && r.created
                        });
                        let migrated = record.filter(|r| {
                            r.dest_ref.is_some()
                                && matches!(r.state, ItemState::Done | ItemState::Removed)
                        });
                        // Outside the date limits and not migrated before: its body is never
                        // fetched. (A migrated one stays mirrored: a narrower limit removes nothing.)
                        if migrated.is_none()
                            && !self.limits.keeps_mail(meta.received_date_time.as_deref())
                        {
                            stats.out_of_range += 1;
                            reporter.report(ProgressEvent::ItemDone {
                                user: address.clone(),
                                bytes: 0,
                                skipped: true,
                            });
                            continue;
                        }
                        if verbs.is_none() {
                            let listed = last_verbs(
                                self.client,
                                pacer,
                                &user.id,
                                &node.folder.id,
                                &on_throttle,
                            )
                            .await;
                            verbs = Some(match listed {
                                Ok(verbs) => verbs,
                                Err(e) if e.class() == ErrorClass::Fatal => {
                                    return Err(EngineError::Source(e))
                                }
                                Err(e) => {
                                    // The round is replayed next time, with the answered state.
                                    let what = "(answered and forwarded state)";
                                    fail(&mut stats, &folder_label, what, e.to_string());
                                    round_ok = false;
                                    HashMap::new()
                                }
                            });
                        }
                        let mut flags = MailFlags::from_graph(&meta);
                        match verbs.as_ref().and_then(|v| v.get(&meta.id)) {
                            Some(LastVerb::Replied) => flags.answered = true,
                            Some(LastVerb::Forwarded) => flags.forwarded = true,
                            None => {}
                        }
                        let outcome = match &migrated {
                            Some(r) => {
                                self.mirror(&mut target, &user.id, r, node, name, Some(&flags))
                                    .await
                            }
                            None => {
                                self.found_in_maildir(&mut target, &user.id, &meta.id, name, &flags)
                            }
                        };
                        match outcome {
                            Ok(Mirrored::NeedsCopy) => todo.push((meta, flags, earlier_attempt)),
                            Ok(_) => {
                                // A message kept as removed that the source lists again is back.
                                let revived = migrated
                                    .as_ref()
                                    .is_some_and(|r| r.state == ItemState::Removed);
                                if let (Some(j), true) = (self.journal, full || revived) {
                                    j.journal.mark_seen(&user.id, &meta.id, j.run)?;
                                }
                                skipped(&mut stats);
                            }
                            Err(e) => {
                                round_ok = false;
                                let item = (meta.id.as_str(), &message_name(&meta, None));
                                if self.item_error(
                                    e,
                                    (&mut stats, &mut mailbox_failed),
                                    &folder_label,
                                    item,
                                    &fail_named,
                                )? {
                                    stop = true;
                                    break 'pages;
                                }
                            }
                        }
                    }
                    if let Some(j) = self.journal {
                        // Every intent of the page in one transaction, before any of
                        // its messages is written (what makes a crash reconcilable).
                        let targets: Vec<ItemTarget<'_>> = todo
                            .iter()
                            .map(|(meta, _, _)| ItemTarget {
                                user_id: &user.id,
                                source_id: &meta.id,
                                folder_id: &node.folder.id,
                                dest_folder: name,
                            })
                            .collect();
                        j.journal
                            .record_intents_async("mail", &targets, j.run)
                            .await?;
                    }
                    let copying = async {
                        match &target {
                            // Written `maildir_copy_width` at a time; each result is then recorded
                            // while the next messages are written (issue 18: a "done" record
                            // held its write's place until it committed, a round trip on
                            // PostgreSQL). Every record is answered before the page ends.
                            Target::Maildir(t) => {
                                futures_util::stream::iter(todo)
                                    .map(|(meta, flags, earlier_attempt)| {
                                        let (pacer, on_throttle) = (&pacer, &on_throttle);
                                        async move {
                                            let item = (name, &meta, &flags);
                                            let result = self
                                                .write_to_maildir(
                                                    t,
                                                    pacer,
                                                    &user.id,
                                                    item,
                                                    on_throttle,
                                                )
                                                .await;
                                            (meta, earlier_attempt, result)
                                        }
                                    })
                                    .buffer_unordered(maildir_copy_width(pacer.settings()))
                                    .map(|(meta, earlier_attempt, result)| {
                                        let done = &done;
                                        async move {
                                            let named = message_name(&meta, None);
                                            let ids = (user.id.as_str(), meta.id.as_str());
                                            let result = self
                                                .end_copy(ids, &named, earlier_attempt, result)
                                                .await;
                                            if let Ok(copied) = &result {
                                                done(copied);
                                            }
                                            (meta.id, named, result)
                                        }
                                    })
                                    .buffer_unordered(DONE_RECORDS_IN_FLIGHT)
                                    .collect()
                                    .await
                            }
                            Target::Imap(..) => {
                                let mut results = Vec::new();
                                for (meta, flags, earlier_attempt) in todo {
                                    in_flight.insert(meta.id.clone(), message_name(&meta, None));
                                    if let Err(refused) =
                                        feed.send((meta, flags, earlier_attempt)).await
                                    {
                                        // The stage has ended (it cannot before `feed` is closed).
                                        let id = refused.0 .0.id;
                                        results.push((
                                            id,
                                            ItemName::default(),
                                            Err(ItemError::Cancelled),
                                        ));
                                    }
                                }
                                results
                            }
                        }
                    };
                    let prefetch = async {
                        match more {
                            true => round.next_page(&on_throttle).await,
                            false => None,
                        }
                    };
                    let (mut results, next): (Vec<_>, _) = tokio::join!(copying, prefetch);
                    pending = next;
                    results.extend(std::iter::from_fn(|| copied_rx.try_recv().ok()));
                    let outcome = (
                        &mut stats,
                        &mut round_ok,
                        &mut mailbox_failed,
                        &mut in_flight,
                    );
                    if self.absorb(
                        &mut target,
                        name,
                        results,
                        outcome,
                        &folder_label,
                        &fail_named,
                    )? {
                        stop = true;
                        break;
                    }
                }
                // Whatever the page loop ended with, the stage finishes what it was fed.
                drop(feed);
                while let Some(result) = copied_rx.recv().await {
                    let outcome = (
                        &mut stats,
                        &mut round_ok,
                        &mut mailbox_failed,
                        &mut in_flight,
                    );
                    stop |= self.absorb(
                        &mut target,
                        name,
                        [result],
                        outcome,
                        &folder_label,
                        &fail_named,
                    )?;
                }
                Ok::<bool, EngineError>(stop)
            };
            let (stop, ()) = tokio::join!(pages, stage);
            if stop? {
                break 'folders;
            }
            if !round_ok || self.control.is_cancelled() {
                // The link is not stored: the next pass replays this round.
                all_rounds_ok = false;
                continue;
            }
            if let Some(j) = self.journal {
                let folder = (user.id.as_str(), node.folder.id.as_str(), name);
                j.journal
                    .end_folder_round_async(folder, j.run, round.is_full(), round.delta_link())
                    .await?;
            }
        }
        if all_rounds_ok && !mailbox_failed && !self.control.is_cancelled() {
            let places = (&nodes[..], &destination_names[..]);
            let graph = (pacer, &on_throttle);
            let settled = self.settle_removals(&mut target, &user.id, places, graph);
            if let Err(e) = settled.await {
                let item = ("", &ItemName::default());
                let outcome = (&mut stats, &mut mailbox_failed);
                self.item_error(e, outcome, "", item, &fail_named)?;
            }
        }
        if let Target::Imap(writers, _) = target {
            // Every round's copy stage has ended, so this is the last reference.
            if let Ok(writers) = Arc::try_unwrap(writers) {
                writers.logout().await;
            }
        }
        let state = if mailbox_failed {
            "failed"
        } else if self.control.is_cancelled() {
            "stopped"
        } else {
            "finished"
        };
        finish(state).await?;
        Ok(stats)
    }

    /// Counts copy results of folder `name` (journaled and reported already) into the
    /// outcome and takes them out of its messages in flight. True when the mailbox must stop
    /// (see [`MailboxRun::item_error`]).
    fn absorb(
        &self,
        target: &mut Target,
        name: &str,
        results: impl IntoIterator<Item = CopyResult>,
        (stats, round_ok, mailbox_failed, in_flight): Outcome<'_>,
        folder: &str,
        fail: &impl Fn(&mut Stats, &str, &str, &ItemName, String),
    ) -> Result<bool, EngineError> {
        let mut stop = false;
        for (id, named, result) in results {
            // The stage's name knows the size; the feed's at least the subject and date.
            let fed = in_flight.remove(&id).unwrap_or_default();
            let named = if named == ItemName::default() {
                fed
            } else {
                named
            };
            match result {
                Ok(copied) => {
                    if let Target::Maildir(t) = target {
                        t.folder(name)?.remember(Folder::key_for(&id), &copied.dest);
                    }
                    if let Some(reason) = copied.rebuilt {
                        // Migrated, but not as it was: counted and reported as a failure.
                        let named = ItemName {
                            size: Some(copied.bytes),
                            ..named
                        };
                        fail(stats, folder, &id, &named, reason);
                        continue;
                    }
                    // `ItemDone` was reported when it was journaled.
                    if copied.existed {
                        stats.skipped += 1;
                    } else {
                        stats.messages += 1;
                        stats.bytes += copied.bytes;
                    }
                }
                Err(e) => {
                    if !matches!(e, ItemError::Unavailable(_)) {
                        *round_ok = false;
                    }
                    let outcome = (&mut *stats, &mut *mailbox_failed);
                    stop |= self.item_error(e, outcome, folder, (&id, &named), fail)?;
                }
            }
        }
        Ok(stop)
    }

    /// Reports a failed item (`item`: its id and name). True when the mailbox must stop
    /// (cancelled, or its destination failed: then `mailbox_failed` is set).
    fn item_error(
        &self,
        e: ItemError,
        (stats, mailbox_failed): (&mut Stats, &mut bool),
        folder: &str,
        (id, name): (&str, &ItemName),
        fail: &impl Fn(&mut Stats, &str, &str, &ItemName, String),
    ) -> Result<bool, EngineError> {
        match e {
            ItemError::Cancelled => Ok(true),
            ItemError::Skip(reason) | ItemError::Unavailable(reason) => {
                fail(stats, folder, id, name, reason);
                Ok(false)
            }
            ItemError::Mailbox(reason) => {
                // Reported once: the messages in flight with it failed for the same reason.
                if !*mailbox_failed {
                    fail(stats, folder, "(mailbox)", &ItemName::default(), reason);
                }
                *mailbox_failed = true;
                Ok(true)
            }
            ItemError::Fatal(e) => Err(e),
        }
    }

    /// Opens the user's destination and maps the folder tree onto it. The inner `Err` is why
    /// this mailbox alone cannot be migrated.
    async fn open_target(
        &self,
        address: &str,
        nodes: &[FolderNode],
        recorded: &HashMap<String, String>,
    ) -> Result<Result<Target, Unopened>, EngineError> {
        match self.store {
            Store::Folder(store) => {
                let mailbox = store
                    .mailbox(address)
                    .map_err(|e| dest_error(std::path::Path::new(address), e))?;
                Ok(Ok(Target::Maildir(MaildirTarget {
                    names: maildir_folder_names_in(
                        mailbox.path(),
                        nodes,
                        self.separator_substitute,
                    ),
                    mailbox,
                    open: HashMap::new(),
                })))
            }
            Store::Imap { settings, logins } => {
                let Some(login) = logins.login_for(address) else {
                    return Ok(Err(Unopened::Failed(format!(
                        "no destination password for {address} in the accounts file"
                    ))));
                };
                let mut settings =
                    through_outages(settings, self.outage_wait, self.reporter.clone(), address);
                settings.separator_substitute = self.separator_substitute.to_string();
                if let Some(provisioner) = self.icewarp {
                    super::icewarp::account_folder_names(provisioner, &mut settings, address).await;
                }
                let mut mailbox = match ImapMailbox::connect(&settings, &login).await {
                    Ok(m) => m,
                    Err(ImapError::Auth { .. })
                        if match self.icewarp {
                            Some(p) => p.resource_login_refused(address).await,
                            None => false,
                        } =>
                    {
                        return Ok(Err(Unopened::ResourceLoginRefused))
                    }
                    Err(e) => {
                        let reason = format!("cannot open the destination mailbox: {e}");
                        return Ok(Err(Unopened::Failed(reason)));
                    }
                };
                // A lost connection is tried again (the mailbox reconnects through its pacer);
                // a folder that already exists counts as created, so nothing is made twice.
                let mut attempts = 0;
                let names = loop {
                    attempts += 1;
                    match mailbox.ensure_folders_recorded(nodes, recorded).await {
                        Ok(names) => break names,
                        Err(e) if e.class() == ErrorClass::Retry && attempts < IMAP_ATTEMPTS => {}
                        Err(e) => {
                            let reason = format!("cannot create the folders: {e}");
                            return Ok(Err(Unopened::Failed(reason)));
                        }
                    }
                };
                let names = names
                    .into_iter()
                    .map(|r| r.map_err(|e| e.to_string()))
                    .collect();
                // Extra connections only while the server-wide cap has room: waiting for one
                // while holding another could starve other mailboxes.
                let mut extra = Vec::new();
                while extra.len() + 1 < settings.connections_per_mailbox {
                    let room = !settings.connection_limit.has_waiters();
                    let opened = match room {
                        true => ImapMailbox::connect_if_room(&settings, &login).await,
                        false => Ok(None),
                    };
                    let opened = opened.unwrap_or_else(|e| {
                        tracing::debug!(error = %e, "no extra IMAP connection");
                        None
                    });
                    extra.push(Mutex::new(opened));
                }
                let writers = ImapWriters {
                    first: Mutex::new(mailbox),
                    extra,
                    settings,
                    login,
                };
                Ok(Ok(Target::Imap(Arc::new(writers), names)))
            }
        }
    }

    /// A message the journal does not hold as migrated. In a Maildir the file's key tells
    /// whether it is there (so a lost journal causes no duplicates): then its flags are
    /// brought up to date and a pending intent is closed. Everything else is copied (IMAP
    /// asks the server first).
    fn found_in_maildir(
        &self,
        target: &mut Target,
        user_id: &str,
        source_id: &str,
        name: &str,
        flags: &MailFlags,
    ) -> Result<Mirrored, ItemError> {
        let Target::Maildir(t) = target else {
            return Ok(Mirrored::NeedsCopy);
        };
        let path = t.mailbox.path().join(name);
        let folder = t.folder(name).map_err(ItemError::Fatal)?;
        let key = Folder::key_for(source_id);
        let Some(dest) = folder
            .set_flags(&key, flags)
            .map_err(|e| ItemError::Fatal(dest_error(&path, e)))?
        else {
            return Ok(Mirrored::NeedsCopy);
        };
        if let Some(j) = self.journal {
            if let Some(r) = j
                .journal
                .item(user_id, source_id)
                .map_err(journal_failure)?
            {
                if r.dest_folder == name {
                    let details = MailDetails {
                        flags: Some(append_flags(flags)),
                        ..r.mail.clone()
                    };
                    let done = MailDone {
                        dest_ref: &dest.0,
                        size: r.size.unwrap_or(0),
                        hash: r.hash.as_deref(),
                        details: &details,
                        created: true,
                        run: j.run,
                    };
                    j.journal
                        .record_mail_done(user_id, source_id, done)
                        .map_err(journal_failure)?;
                }
            }
        }
        Ok(Mirrored::Unchanged)
    }

    /// Mirrors a migrated message: into folder `name` (of source folder `node`) if it is
    /// elsewhere, then the flags that changed (`flags`: `None` keeps them). Journals the result.
    async fn mirror(
        &self,
        target: &mut Target,
        user_id: &str,
        r: &ItemRecord,
        node: &FolderNode,
        name: &str,
        flags: Option<&MailFlags>,
    ) -> Result<Mirrored, ItemError> {
        let Some(j) = self.journal else {
            return Ok(Mirrored::NeedsCopy);
        };
        let moved = r.dest_folder != name || r.folder_id != node.folder.id;
        let new_flags = flags.map(append_flags);
        let changed = new_flags.as_deref().is_some_and(|new| {
            let (add, remove) = flag_changes(r.mail.flags.as_deref(), new);
            !add.is_empty() || !remove.is_empty()
        });
        if !moved && !changed {
            return Ok(Mirrored::Unchanged);
        }
        let skip = |what: String| ItemError::Skip(format!("message {}: {what}", r.source_id));
        let dest = match target {
            Target::Maildir(t) => {
                let key = Folder::key_for(&r.source_id);
                let path = t.mailbox.path().to_path_buf();
                let io = |e| ItemError::Fatal(dest_error(&path, e));
                let here = t.folder(name).map_err(ItemError::Fatal)?;
                let done = if here.contains(&key) || !moved {
                    match flags {
                        Some(f) => here.set_flags(&key, f).map_err(io)?,
                        None => here.file_name(&key).map(DestRef),
                    }
                } else {
                    t.folder(&r.dest_folder).map_err(ItemError::Fatal)?;
                    let Some(mut from) = t.open.remove(&r.dest_folder) else {
                        return Ok(Mirrored::NeedsCopy);
                    };
                    let result = match t.folder(name) {
                        Ok(to) => from.move_to(&key, to, flags).map_err(io),
                        Err(e) => Err(ItemError::Fatal(e)),
                    };
                    t.open.insert(r.dest_folder.clone(), from);
                    result?
                };
                match done {
                    Some(d) => d,
                    None => return Ok(Mirrored::NeedsCopy),
                }
            }
            Target::Imap(writers, _) => {
                if !r.created {
                    // Found at the destination, not made by the migrator: never touched. A
                    // move gets a copy of its own in the new folder.
                    return Ok(if moved {
                        Mirrored::NeedsCopy
                    } else {
                        Mirrored::Unchanged
                    });
                }
                let mut mailbox = writers.first().lock().await;
                let fail = |e| imap_failure(e, skip);
                let Some(mut uid) = locate(&mut mailbox, r).await.map_err(fail)? else {
                    return Ok(Mirrored::NeedsCopy);
                };
                let mut at = r.dest_folder.clone();
                if moved {
                    let fail = |e| imap_failure(e, skip);
                    let to = match mailbox.move_message(&at, uid, name).await.map_err(fail)? {
                        Some((_, new_uid)) => Some(new_uid),
                        None => match recorded_fingerprint(r) {
                            Some(fp) => {
                                let fail = |e| imap_failure(e, skip);
                                mailbox.find_existing(name, &fp).await.map_err(fail)?
                            }
                            None => None,
                        },
                    };
                    match to {
                        Some(new_uid) => {
                            uid = new_uid;
                            at = name.to_string();
                        }
                        None => return Ok(Mirrored::NeedsCopy),
                    }
                }
                if let Some(new) = &new_flags {
                    let (add, remove) = flag_changes(r.mail.flags.as_deref(), new);
                    if !add.is_empty() || !remove.is_empty() {
                        let fail = |e| imap_failure(e, skip);
                        mailbox
                            .store_flags(&at, uid, &add, &remove)
                            .await
                            .map_err(fail)?;
                    }
                }
                let fail = |e| imap_failure(e, skip);
                let validity = mailbox.uid_validity(&at).await.map_err(fail)?;
                ImapRef {
                    folder: at,
                    uid: validity.map(|v| (v, uid)),
                }
                .to_dest_ref()
            }
        };
        let item = ItemTarget {
            user_id,
            source_id: &r.source_id,
            folder_id: &node.folder.id,
            dest_folder: name,
        };
        if moved {
            j.journal
                .record_moved(item, &dest.0, j.run)
                .map_err(journal_failure)?;
        }
        let applied = match &new_flags {
            Some(new) => applied_flags(r.mail.flags.as_deref(), new),
            None => r.mail.flags.clone().unwrap_or_default(),
        };
        j.journal
            .record_flags(user_id, &r.source_id, &applied, &dest.0)
            .map_err(journal_failure)?;
        Ok(Mirrored::Updated)
    }

    /// Settles the items deleted at the source (still marked gone after every round): with
    /// `mirror_deletions`, deleted at the destination (copies the migrator made only) and
    /// forgotten; otherwise kept and recorded as removed. Items kept by earlier passes are
    /// deleted once the option is switched on.
    ///
    /// Before deleting, each item is looked up by its immutable id: a message moved away and
    /// back between passes is reported `@removed` by its folder and never listed again
    /// (microsoft-graph-docs-contrib#72), so `@removed` alone is no proof of a deletion. One
    /// that still exists is kept, and moved at the destination when it now lives in another
    /// folder of the tree (`places`: the folders and their destination names).
    async fn settle_removals(
        &self,
        target: &mut Target,
        user_id: &str,
        (nodes, names): (&[FolderNode], &[Option<String>]),
        (pacer, on_throttle): (&Pacer, &(impl Fn(Duration) + Sync)),
    ) -> Result<(), ItemError> {
        let Some(j) = self.journal else {
            return Ok(());
        };
        let mut gone = j.journal.gone_items(user_id).map_err(journal_failure)?;
        if !self.mirror_deletions {
            for r in gone {
                j.journal
                    .record_removed(user_id, &r.source_id)
                    .map_err(journal_failure)?;
            }
            return Ok(());
        }
        gone.extend(
            j.journal
                .items_in_state(user_id, ItemState::Removed)
                .map_err(journal_failure)?
                .into_iter()
                .filter(|r| r.kind == "mail"),
        );
        let mut deleted = Vec::with_capacity(gone.len());
        for r in gone {
            let url = message_location_url(self.client, user_id, &r.source_id);
            let found = self
                .client
                .get_json::<MessageLocation>(pacer, &url, on_throttle)
                .await;
            match found {
                Ok(at) => {
                    let place = nodes
                        .iter()
                        .zip(names)
                        .find(|(n, _)| n.folder.id == at.parent_folder_id);
                    if let (Some((node, Some(name))), true) =
                        (place, at.parent_folder_id != r.folder_id)
                    {
                        self.mirror(target, user_id, &r, node, name, None).await?;
                    }
                    tracing::info!(item = %r.source_id, "reported removed but still in the mailbox; kept");
                    j.journal
                        .mark_seen(user_id, &r.source_id, j.run)
                        .map_err(journal_failure)?;
                }
                Err(e) if e.status() == Some(404) => deleted.push(r),
                Err(e) if e.class() == ErrorClass::Fatal => {
                    return Err(graph_failure(e, ItemError::Skip))
                }
                // Not known to be deleted: kept, and looked up again on the next pass.
                Err(e) => {
                    tracing::warn!(item = %r.source_id, error = %e, "cannot tell whether it was deleted; kept")
                }
            }
        }
        for r in deleted {
            let skip = |what: String| ItemError::Skip(format!("message {}: {what}", r.source_id));
            match target {
                Target::Maildir(t) => {
                    let path = t.mailbox.path().join(&r.dest_folder);
                    let folder = t.folder(&r.dest_folder).map_err(ItemError::Fatal)?;
                    folder
                        .remove(&Folder::key_for(&r.source_id))
                        .map_err(|e| ItemError::Fatal(dest_error(&path, e)))?;
                }
                Target::Imap(writers, _) => {
                    if r.created && r.dest_ref.is_some() {
                        let mut mailbox = writers.first().lock().await;
                        let fail = |e| imap_failure(e, skip);
                        if let Some(uid) = locate(&mut mailbox, &r).await.map_err(fail)? {
                            let fail = |e| imap_failure(e, skip);
                            mailbox
                                .delete_message(&r.dest_folder, uid)
                                .await
                                .map_err(fail)?;
                        }
                    }
                }
            }
            j.journal
                .forget(user_id, &r.source_id)
                .map_err(journal_failure)?;
        }
        Ok(())
    }

    /// Before a message is written (its intent is journaled already, with its page's): a
    /// checkpoint.
    async fn begin_copy(&self) -> Result<(), ItemError> {
        self.control
            .checkpoint()
            .await
            .map_err(|_| ItemError::Cancelled)
    }

    /// `Err` once a worker's lease on this mailbox has run out by the local clock
    /// ([`crate::journal::Journal::check_fence`]): checked right before each write to the
    /// destination, so a worker that was paused past its lease writes nothing on resuming.
    fn fence_held(&self) -> Result<(), ItemError> {
        match self.journal {
            Some(j) => j.journal.check_fence().map_err(journal_failure),
            None => Ok(()),
        }
    }

    /// Records that a copy of message `meta` failed (a skipped item with its reason) and
    /// returns the error, or the journal's own failure.
    async fn journal_failed(&self, user_id: &str, meta: &MessageMeta, e: ItemError) -> ItemError {
        let name = message_name(meta, None);
        self.end_copy((user_id, &meta.id), &name, false, Err(e))
            .await
            .err()
            .unwrap_or(ItemError::Cancelled)
    }

    /// Records how a copy ended: the destination reference, or the reason it was skipped
    /// with what people know the message by (`name`, for the report). The "done" record is
    /// awaited (issue 18: on PostgreSQL a round trip that holds no runtime thread).
    async fn end_copy(
        &self,
        (user_id, source_id): (&str, &str),
        name: &ItemName,
        earlier_attempt: bool,
        result: Result<Copied, ItemError>,
    ) -> Result<Copied, ItemError> {
        let Some(j) = self.journal else {
            return result;
        };
        let recorded = match &result {
            Ok(c) => {
                j.journal
                    .record_mail_done_async(
                        user_id,
                        source_id,
                        MailDone {
                            dest_ref: &c.dest.0,
                            size: c.bytes,
                            hash: c.hash.as_deref(),
                            details: &c.details,
                            created: c.created || earlier_attempt,
                            run: j.run,
                        },
                    )
                    .await
            }
            Err(ItemError::Skip(reason) | ItemError::Unavailable(reason)) => j
                .journal
                .record_failed(user_id, source_id, reason)
                .and_then(|()| j.journal.record_failure_name(user_id, source_id, name)),
            Err(_) => Ok(()),
        };
        recorded.map_err(journal_failure)?;
        result
    }

    /// Writes one message with `flags` into Maildir folder `name` (its intent journaled);
    /// [`MailboxRun::end_copy`] records the result.
    async fn write_to_maildir(
        &self,
        target: &MaildirTarget,
        pacer: &Pacer,
        user_id: &str,
        (name, meta, flags): (&str, &MessageMeta, &MailFlags),
        on_throttle: &(impl Fn(Duration) + Sync),
    ) -> Result<Copied, ItemError> {
        self.begin_copy().await?;
        match target.open.get(name) {
            Some(folder) => {
                self.copy_to_maildir(pacer, folder, user_id, meta, flags, on_throttle)
                    .await
            }
            None => Err(ItemError::Skip(format!("folder {name} is not open"))),
        }
    }

    /// After `$value` failed with `e`: when the message can never be downloaded
    /// ([`undownloadable`]), rebuilds it from its properties and attachments into `sink`
    /// ([`super::rebuild`]) and returns the bytes written and the report line; a message that
    /// cannot be rebuilt either is [`ItemError::Unavailable`]. Anything transient stays
    /// [`ItemError::Skip`], so the round is replayed.
    async fn rebuild_undownloadable<S: crate::graph::client::ByteSink>(
        &self,
        pacer: &Pacer,
        user_id: &str,
        meta: &MessageMeta,
        e: GraphError,
        sink: &mut S,
        on_throttle: &(impl Fn(Duration) + Sync),
    ) -> Result<(u64, String), ItemError> {
        let skip = |what: String| ItemError::Skip(format!("message {}: {what}", meta.id));
        let Some(why) = undownloadable(&e) else {
            return Err(graph_failure(e, skip));
        };
        let received = meta.received_date_time.as_deref().unwrap_or("unknown");
        if !why.rebuildable() {
            return Err(ItemError::Unavailable(format!(
                "message {} (received {received}): {}",
                meta.id,
                why.reason()
            )));
        }
        let ids = (user_id, meta.id.as_str());
        match super::rebuild::rebuild(self.client, pacer, ids, why.reason(), sink, on_throttle)
            .await
        {
            Ok(r) => Ok((
                r.written,
                format!(
                    "message {} (\"{}\", sent {}, received {received}, {} bytes rebuilt): {}; rebuilt from its properties and attachments, marked {}",
                    meta.id,
                    r.subject,
                    r.sent.as_deref().unwrap_or("unknown"),
                    r.written,
                    why.reason(),
                    crate::convert::rebuilt::REBUILT_HEADER,
                ),
            )),
            Err(again) if again.class() == ErrorClass::Fatal => Err(graph_failure(again, skip)),
            // Deleted meanwhile, or refused for good: nothing will ever come of it.
            Err(again) if again.class() == ErrorClass::SkipItem => {
                Err(ItemError::Unavailable(format!(
                    "message {} (received {received}): {}; cannot rebuild it either: {again}",
                    meta.id,
                    why.reason()
                )))
            }
            Err(again) => Err(skip(format!("{}; rebuilding it failed: {again}", why.reason()))),
        }
    }

    /// Streams one message's MIME into the Maildir folder and commits it.
    async fn copy_to_maildir(
        &self,
        pacer: &Pacer,
        folder: &Folder,
        user_id: &str,
        meta: &MessageMeta,
        flags: &MailFlags,
        on_throttle: &(impl Fn(Duration) + Sync),
    ) -> Result<Copied, ItemError> {
        let key = Folder::key_for(&meta.id);
        let skip = |what: String| ItemError::Skip(format!("message {}: {what}", meta.id));
        let mut delivery = folder
            .deliver(&key)
            .await
            .map_err(|e| ItemError::Fatal(dest_error(std::path::Path::new(&key), e)))?;
        let url = mime_url(self.client, user_id, &meta.id);
        let mut rebuilt = None;
        let bytes = match self
            .client
            .download(pacer, &url, &mut delivery, on_throttle)
            .await
        {
            Ok(bytes) => bytes,
            Err(e) => {
                let made = self
                    .rebuild_undownloadable(pacer, user_id, meta, e, &mut delivery, on_throttle)
                    .await;
                match made {
                    Ok((bytes, report)) => {
                        rebuilt = Some(report);
                        bytes
                    }
                    Err(e) => {
                        delivery.abandon().await;
                        return Err(e);
                    }
                }
            }
        };
        if bytes == 0 {
            delivery.abandon().await;
            return Err(skip("Graph returned an empty MIME body".into()));
        }
        let received = meta
            .received()
            .unwrap_or_else(time::OffsetDateTime::now_utc)
            .unix_timestamp();
        if let Err(e) = self.fence_held() {
            delivery.abandon().await;
            return Err(e);
        }
        let dest = delivery
            .commit(flags, received)
            .await
            .map_err(|e| ItemError::Fatal(dest_error(std::path::Path::new(&key), e)))?;
        Ok(Copied {
            bytes,
            dest,
            existed: false,
            created: true,
            hash: None,
            rebuilt,
            details: MailDetails {
                message_id: meta.internet_message_id.clone(),
                header_hash: None,
                received: Some(received),
                flags: Some(append_flags(flags)),
            },
        })
    }

    /// Copies the messages fed on `todo` into IMAP folder `name` until `todo` is closed:
    /// downloads (up to the pacer's in-flight limit) feed a bounded queue that the user's
    /// connections drain in batches of what is ready (MULTIAPPEND when offered), so
    /// downloading and appending overlap and nothing waits for a round trip per message.
    /// Fed across the pages of a round, neither side drains at a page boundary.
    ///
    /// Fresh folder: when the folder held no mail when this stage first wrote to it, a
    /// message this pass has not appended cannot be there and is appended without asking the
    /// server first; otherwise (mail predating the migration, a rerun after a crash) every
    /// message is looked up by its fingerprint before it is appended.
    ///
    /// Each message's result goes to `results`; `done` is called for each message that
    /// arrived (or was found), right after its journal record.
    #[allow(clippy::too_many_arguments)]
    async fn copy_to_imap(
        &self,
        writers: &ImapWriters,
        (pacer, on_throttle): (&Pacer, &(impl Fn(Duration) + Sync)),
        user_id: &str,
        name: &str,
        todo: tokio::sync::mpsc::Receiver<(MessageMeta, MailFlags, bool)>,
        results: tokio::sync::mpsc::UnboundedSender<CopyResult>,
        done: &(impl Fn(&Copied) + Sync),
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Spooled>(BATCH_MESSAGES);
        let fresh = tokio::sync::OnceCell::new();
        // A closed receiver means the round was abandoned: nothing is left to tell.
        let report = |item| {
            let _ = results.send(item);
        };
        let produce = async {
            let tx = tx;
            let mut todo = todo;
            let mut downloads = futures_util::stream::poll_fn(move |cx| todo.poll_recv(cx))
                .map(|(meta, flags, earlier_attempt)| async move {
                    let result = self
                        .spool_message(pacer, user_id, (&meta, flags, earlier_attempt), on_throttle)
                        .await;
                    (meta.id, result)
                })
                .buffer_unordered(pacer.settings().max_in_flight.max(1));
            while let Some((id, result)) = downloads.next().await {
                match result {
                    Ok(spooled) => {
                        if let Err(refused) = tx.send(spooled).await {
                            let s = refused.0;
                            report((id, s.name, Err(ItemError::Cancelled)));
                        }
                    }
                    Err(e) => report((id, ItemName::default(), Err(e))),
                }
            }
        };
        let consume = async {
            let fresh = &fresh;
            futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
                .ready_chunks(BATCH_MESSAGES)
                .map(|batch| async move {
                    let fresh = *fresh
                        .get_or_init(|| async {
                            let count = writers.first().lock().await.message_count(name).await;
                            count.is_ok_and(|n| n == 0)
                        })
                        .await;
                    self.write_batch(writers, user_id, (name, fresh), batch, done)
                        .await
                })
                .buffer_unordered(writers.width())
                .for_each(|written| {
                    written.into_iter().for_each(report);
                    std::future::ready(())
                })
                .await
        };
        tokio::join!(produce, consume);
    }

    /// Downloads one message (its intent journaled) into a spool file. A failure is
    /// journaled here.
    async fn spool_message(
        &self,
        pacer: &Pacer,
        user_id: &str,
        (meta, flags, earlier_attempt): (&MessageMeta, MailFlags, bool),
        on_throttle: &(impl Fn(Duration) + Sync),
    ) -> Result<Spooled, ItemError> {
        self.begin_copy().await?;
        let skip = |what: String| ItemError::Skip(format!("message {}: {what}", meta.id));
        let spool_error =
            |e: std::io::Error| ItemError::Fatal(dest_error(&std::env::temp_dir(), e));
        let spooled = async {
            let mut spool = Spool::new(None).map_err(spool_error)?;
            let url = mime_url(self.client, user_id, &meta.id);
            let mut rebuilt = None;
            if let Err(e) = self
                .client
                .download(pacer, &url, &mut spool, on_throttle)
                .await
            {
                let made = self
                    .rebuild_undownloadable(pacer, user_id, meta, e, &mut spool, on_throttle)
                    .await?;
                rebuilt = Some(made.1);
            }
            if spool.is_empty() {
                return Err(skip("Graph returned an empty MIME body".into()));
            }
            let len = spool.len();
            let received = meta
                .received()
                .unwrap_or_else(time::OffsetDateTime::now_utc);
            spool.seal().await.map_err(spool_error)?;
            let fingerprint = spool.fingerprint(received);
            let hash = spool.sha256_hex();
            Ok(Spooled {
                id: meta.id.clone(),
                spool,
                len,
                flags,
                received,
                fingerprint,
                hash,
                earlier_attempt,
                rebuilt,
                name: message_name(meta, Some(len)),
            })
        };
        match spooled.await {
            Ok(s) => Ok(s),
            Err(e) => Err(self.journal_failed(user_id, meta, e).await),
        }
    }

    /// Appends a batch of spooled messages on one of the user's connections and journals
    /// each result. Messages that may already be there are looked up first, one by one; the
    /// others go in byte-bounded MULTIAPPENDs. A refused MULTIAPPEND stored nothing (RFC 3502
    /// §6.3.11), so its messages are then appended one by one: the one the server refuses
    /// fails alone. A connection lost during a MULTIAPPEND may or may not have stored it, so
    /// its messages are then looked up before they are appended again.
    async fn write_batch(
        &self,
        writers: &ImapWriters,
        user_id: &str,
        (folder, fresh): (&str, bool),
        batch: Vec<Spooled>,
        journaled: &(impl Fn(&Copied) + Sync),
    ) -> Vec<CopyResult> {
        let mut mailbox = writers.any().await;
        let (checked, direct): (Vec<Spooled>, Vec<Spooled>) =
            batch.into_iter().partition(|s| !fresh || s.earlier_attempt);
        // One MULTIAPPEND per group when offered, else pipelined APPENDs with LITERAL+, else
        // one APPEND at a time.
        let multi = direct.len() > 1 && mailbox.can_multiappend().await.unwrap_or(false);
        let pipelined = direct.len() > 1 && !multi && mailbox.can_pipeline().await.unwrap_or(false);
        let mut done: Vec<(Spooled, Result<Copied, ItemError>)> = Vec::new();
        let mut groups: Vec<Vec<Spooled>> = Vec::new();
        for s in direct {
            match groups.last_mut() {
                Some(g)
                    if (multi || pipelined)
                        && g.iter().map(|m| m.len).sum::<u64>() + s.len <= BATCH_BYTES =>
                {
                    g.push(s)
                }
                _ => groups.push(vec![s]),
            }
        }
        for mut group in groups {
            // A worker paused past its lease (issue 18) sends nothing more.
            if self.fence_held().is_err() {
                for s in group {
                    let lost = self.fence_held().err().unwrap_or(ItemError::Cancelled);
                    done.push((s, Err(lost)));
                }
                continue;
            }
            if group.len() == 1 {
                for mut s in group {
                    let result = append_one(&mut mailbox, folder, &mut s, false).await;
                    done.push((s, result));
                }
                continue;
            }
            let check_first = match append_group(&mut mailbox, folder, &mut group, multi).await {
                Ok(results) => {
                    for (mut s, result) in group.into_iter().zip(results) {
                        let result = match result {
                            Ok(dest) => Ok(s.copied(dest, false, true)),
                            // E.g. [UNAVAILABLE] for this one: retried alone, asking first.
                            Err(e) if e.class() == ErrorClass::Retry => {
                                append_one(&mut mailbox, folder, &mut s, true).await
                            }
                            Err(e) => {
                                let id = s.id.clone();
                                Err(imap_failure(e, |what| {
                                    ItemError::Skip(format!("message {id}: {what}"))
                                }))
                            }
                        };
                        done.push((s, result));
                    }
                    continue;
                }
                Err(e) if e.class() == ErrorClass::SkipItem => {
                    tracing::debug!(error = %e, "MULTIAPPEND refused; appending one by one");
                    false
                }
                Err(e) if e.class() == ErrorClass::Retry => true,
                Err(e) => {
                    let reason = format!("the destination mailbox failed: {e}");
                    done.extend(
                        group
                            .into_iter()
                            .map(|s| (s, Err(ItemError::Mailbox(reason.clone())))),
                    );
                    continue;
                }
            };
            for mut s in group {
                let result = append_one(&mut mailbox, folder, &mut s, check_first).await;
                done.push((s, result));
            }
        }
        for mut s in checked {
            let result = append_one(&mut mailbox, folder, &mut s, true).await;
            done.push((s, result));
        }
        drop(mailbox);
        // Recorded together: on PostgreSQL the batch's "done" records share transactions.
        let ended = futures_util::future::join_all(done.into_iter().map(|(s, result)| async {
            let ids = (user_id, s.id.as_str());
            let result = self.end_copy(ids, &s.name, s.earlier_attempt, result).await;
            (s, result)
        }))
        .await;
        ended
            .into_iter()
            .map(|(s, result)| {
                if let Ok(copied) = &result {
                    journaled(copied);
                }
                (s.id, s.name, result)
            })
            .collect()
    }
}

/// Appends one spooled message, asking the server first when `check_first` or when retrying
/// (a retried APPEND may have been stored before the connection dropped). Reconnecting waits
/// in the mailbox's own pacer.
async fn append_one(
    mailbox: &mut ImapMailbox,
    folder: &str,
    s: &mut Spooled,
    check_first: bool,
) -> Result<Copied, ItemError> {
    let id = s.id.clone();
    let skip = |what: String| ItemError::Skip(format!("message {id}: {what}"));
    let spool_error = |e: std::io::Error| ItemError::Fatal(dest_error(&std::env::temp_dir(), e));
    let mut attempts = 0;
    let mut appended = false;
    loop {
        attempts += 1;
        let retry = |e: &ImapError| e.class() == ErrorClass::Retry && attempts < IMAP_ATTEMPTS;
        if check_first || attempts > 1 {
            match mailbox.find_existing(folder, &s.fingerprint).await {
                Ok(Some(uid)) => {
                    let dest = found_ref(mailbox, folder, uid).await;
                    return Ok(s.copied(dest, true, appended));
                }
                Ok(None) => {}
                Err(e) if retry(&e) => continue,
                Err(e) => return Err(imap_failure(e, skip)),
            }
        }
        let body = s.spool.reader().await.map_err(spool_error)?;
        appended = true;
        match mailbox
            .append(folder, body, s.len, &s.flags, s.received)
            .await
        {
            Ok(dest) => {
                let dest = with_uid(mailbox, folder, &s.fingerprint, dest).await;
                return Ok(s.copied(dest, false, true));
            }
            Err(e) if retry(&e) => continue,
            Err(e) => return Err(imap_failure(e, skip)),
        }
    }
}

/// Appends `group` (two or more messages) in one MULTIAPPEND when `multi`, else in pipelined
/// APPENDs. One result per message, in order, each with its UID when the server tells it; the
/// outer error is about the whole group (a refused MULTIAPPEND, a lost connection).
async fn append_group(
    mailbox: &mut ImapMailbox,
    folder: &str,
    group: &mut [Spooled],
    multi: bool,
) -> Result<Vec<Result<DestRef, ImapError>>, ImapError> {
    let mut parts = Vec::with_capacity(group.len());
    for s in group.iter_mut() {
        let reader = s
            .spool
            .reader()
            .await
            .map_err(|source| ImapError::Connection {
                host: "spool".into(),
                source,
            })?;
        parts.push((reader, s.len, &s.flags, s.received));
    }
    let results = if multi {
        mailbox
            .append_many(folder, parts)
            .await?
            .into_iter()
            .map(Ok)
            .collect()
    } else {
        mailbox.append_pipelined(folder, parts).await?
    };
    let mut out = Vec::with_capacity(results.len());
    for (s, result) in group.iter().zip(results) {
        out.push(match result {
            Ok(dest) => Ok(with_uid(mailbox, folder, &s.fingerprint, dest).await),
            Err(e) => Err(e),
        });
    }
    Ok(out)
}

/// `dest` as appended; without UIDPLUS the UID is found by the fingerprint, so later passes
/// can mirror flags and moves.
async fn with_uid(
    mailbox: &mut ImapMailbox,
    folder: &str,
    fingerprint: &MessageFingerprint,
    dest: DestRef,
) -> DestRef {
    if ImapRef::from_dest_ref(&dest).uid.is_some() {
        return dest;
    }
    match mailbox.find_existing(folder, fingerprint).await {
        Ok(Some(uid)) => found_ref(mailbox, folder, uid).await,
        _ => dest,
    }
}

/// The reference of a message found in `folder` by its UID.
async fn found_ref(mailbox: &mut ImapMailbox, folder: &str, uid: u32) -> DestRef {
    let validity = mailbox.uid_validity(folder).await.ok().flatten();
    ImapRef {
        folder: folder.to_string(),
        uid: validity.map(|v| (v, uid)),
    }
    .to_dest_ref()
}
