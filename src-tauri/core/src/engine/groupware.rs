//! One mailbox's calendars, contacts and To Do tasks: read from Graph, converted by the pure
//! converters ([`crate::convert`]), written one resource per item.
//!
//! **Rounds.** Each contact folder, To Do list and calendar is read by a delta round
//! ([`DeltaRound`], the same machinery as mail): the first run (or after the stored link
//! expired, 410) reads everything, later runs only what changed since the deltaLink stored in
//! the journal for that collection. The link is stored only after the round was applied
//! without a failure, so a failed round is replayed. `@removed` entries, and after a full
//! round the journal's items it did not list, are deletions at the source: mirrored only with
//! `mirror_deletions` and only for copies the migrator created. Calendars use beta's events
//! delta, whose entries carry only ids: changed events are read by id; a full round only
//! yields the link, the events come from the calendar's listing; a cloud that refuses the
//! delta gets the listing every time (see [`calendar`]).
//!
//! **Calendars** come from every calendar group ([`calendar::all_calendars`]), the user's own
//! only: a calendar someone shared with the user is migrated with its owner's mailbox. Each
//! goes to its own destination collection; a name two calendars share gets the group's name,
//! then a short id hash ([`calendar_names`]).
//!
//! **Moves.** An item the user moved to another calendar, contact folder or To Do list keeps
//! its id (immutable ids) and arrives in its new collection's round, while the old one
//! reports it `@removed` (in either order). It is written in the new collection, and the copy
//! the journal says the migrator wrote in the old one is deleted (never a copy it only
//! found), so one copy remains whether or not deletions are mirrored.
//!
//! **Per item.** An item the journal holds at the same source version (changeKey or
//! lastModifiedDateTime) in the same collection is skipped before anything is fetched (no
//! photo, no series read). A contact's photo is not asked for while the contact is at the
//! version at which Graph answered that it has none (404, journaled). Otherwise the
//! converted text's SHA-256 is compared with the journal's; an unchanged item is skipped, a
//! new or changed one is written (replacing the earlier version under the same UID, so a
//! rerun never duplicates) and journaled. A page's items are converted first, then their
//! intents recorded in one journal call before any of them is written ([`Ctx::flush`]; on
//! PostgreSQL one round trip per page, not per item). An item's "done" record is sent after
//! its write and not waited for before the next item is written ([`DoneRecords`]): up to
//! [`DONE_RECORDS_IN_FLIGHT`] are under way at once, all answered before the collection's
//! delta link is stored, before its items are read back, and before the workload ends.
//! Converters are deterministic (no wall-clock stamps), so an item that did not change at the
//! source is not rewritten.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use sha2::{Digest, Sha256};

use super::mail::{RunJournal, DONE_RECORDS_IN_FLIGHT};
use super::{EngineError, RunControl, Store};
use crate::config::Workload;
use crate::convert::contact::{to_vcard, VCardVersion};
use crate::convert::event::{series_to_ics, single_to_ics};
use crate::convert::task::to_vtodo;
use crate::convert::ConvertError;
use crate::dest::dav::{self, CollectionTemplates, DavAccount, DavError, DavLogin, DavSettings};
use crate::dest::folder::{CollectionDir, FolderStore, Mailbox};
use crate::dest::provision::icewarp::{IceWarpProvisioner, RESOURCE_DAV_LOGIN_REFUSED};
use crate::dest::{CollectionKind, DestRef};
use crate::error::{Classify, ErrorClass};
use crate::graph::client::{GraphClient, GraphError};
use crate::graph::pacer::{GaveUp, OutagePolicy, PacerSettings, Verdict};
use crate::graph::paging::{Delta, DeltaRound, Page, Pages};
use crate::graph::types::{Contact, DateTimeTimeZone, Event, TodoTask, User};
use crate::graph::{calendar, contacts, todo, Pacer};
use crate::journal::{ItemRecord, ItemState, ItemTarget, JournalError, MovedFrom};
use crate::progress::{ItemName, ProgressEvent, Reporter, Stats};

/// What a run knows of a contact's photo.
enum Photo {
    /// (media type, bytes).
    Present((&'static str, Vec<u8>)),
    /// Graph answered 404: the contact has none.
    Absent,
    /// It could not be read (too large, or an error): the contact goes without.
    LeftOut,
}

/// Everything one mailbox's groupware migration needs.
pub(super) struct GroupwareRun<'a> {
    pub client: &'a GraphClient,
    pub store: &'a Store,
    pub journal: Option<RunJournal<'a>>,
    pub reporter: Arc<dyn Reporter>,
    pub control: RunControl,
    /// The mailbox's Graph pacer, shared with its mail.
    pub pacer: &'a Pacer,
    pub workloads: &'a [Workload],
    /// The CalDAV/CardDAV server beside an IMAP destination; without it, an IMAP destination
    /// receives mail only.
    pub dav: Option<&'a DavSettings>,
    /// Delete at the destination what was deleted at the source (only copies the migrator
    /// created); otherwise such copies are kept.
    pub mirror_deletions: bool,
    /// Events outside these are left out (`calendar_since`, [`super::event_in_limits`]).
    pub limits: crate::config::DateLimits,
    /// How long DAV requests wait for a server that is down before this user's groupware
    /// fails ([`dav_call`]).
    pub outage_wait: Duration,
    /// IceWarp's admin API, which names each account's GroupWare folders
    /// ([`icewarp_collections`]); `None` for other servers.
    pub icewarp: Option<&'a IceWarpProvisioner>,
}

/// A user's groupware destination, opened.
enum Account {
    Dir(Mailbox),
    /// With the pacer that retries this account's transient DAV failures, and how long it
    /// waits for the server when it is down.
    Dav(Box<DavAccount>, Box<Pacer>, Box<DavOutage>),
}

/// How long a user's DAV requests wait for a server that is down, and which server it is.
struct DavOutage {
    policy: OutagePolicy,
    /// `DAV server host:port`, for messages.
    server: String,
}

/// Where one collection's items go.
#[derive(Clone)]
enum Collection {
    Dir(CollectionDir),
    Dav(dav::Collection),
}

/// How one item ended when it did not arrive.
enum ItemError {
    /// Recorded and reported; the run goes on.
    Skip(String),
    /// This user's groupware cannot go on (e.g. the DAV login was refused); other users can.
    User(String),
    Fatal(EngineError),
}

fn dav_item_error(e: DavError) -> ItemError {
    match e.class() {
        ErrorClass::Fatal => ItemError::User(e.to_string()),
        _ => ItemError::Skip(e.to_string()),
    }
}

impl From<ConvertError> for ItemError {
    fn from(e: ConvertError) -> Self {
        ItemError::Skip(format!("cannot convert: {e}"))
    }
}

fn graph_item_error(e: GraphError) -> ItemError {
    match e.class() {
        ErrorClass::Fatal => ItemError::Fatal(EngineError::Source(e)),
        _ => ItemError::Skip(e.to_string()),
    }
}

/// A converted item ready to write.
struct Resource {
    source_id: String,
    uid: String,
    text: String,
    /// The source's version of the item (see [`source_version`]).
    version: Option<String>,
}

/// A Graph `dateTimeTimeZone` as a UTC date-time, when it is in UTC (Graph's default for
/// events read without a `Prefer: outlook.timezone` header,
/// <https://learn.microsoft.com/en-us/graph/api/user-list-events#request-headers>).
fn utc_date_time(d: &Option<DateTimeTimeZone>) -> Option<&str> {
    d.as_ref()
        .filter(|d| {
            d.time_zone
                .as_deref()
                .is_none_or(|z| z.eq_ignore_ascii_case("UTC"))
        })
        .map(|d| d.date_time.as_str())
}

/// What people know an event by: its subject and start.
fn event_name(e: &Event) -> ItemName {
    ItemName::new(e.subject.as_deref(), utc_date_time(&e.start), None)
}

/// An item of a delta round, to apply to its collection.
enum SourceItem {
    Contact(Box<Contact>),
    Task(Box<TodoTask>),
    /// An event from a calendar's delta: its id and type only.
    ChangedEvent(Box<Event>),
}

impl SourceItem {
    fn id(&self) -> &str {
        match self {
            SourceItem::Contact(c) => &c.id,
            SourceItem::Task(t) => &t.id,
            SourceItem::ChangedEvent(e) => &e.id,
        }
    }
}

impl From<Contact> for SourceItem {
    fn from(c: Contact) -> Self {
        SourceItem::Contact(Box::new(c))
    }
}

impl From<TodoTask> for SourceItem {
    fn from(t: TodoTask) -> Self {
        SourceItem::Task(Box::new(t))
    }
}

impl From<Event> for SourceItem {
    fn from(e: Event) -> Self {
        SourceItem::ChangedEvent(Box::new(e))
    }
}

/// How a delta round over a collection ended.
#[derive(PartialEq)]
enum RoundEnd {
    /// Every page was read (the entries of a full round of events were not applied: the
    /// calendar's listing brings them).
    Read,
    /// Its first request was refused ([`calendar::is_delta_refused`]).
    Refused,
    /// The run was stopped.
    Stopped,
}

/// The version Graph gives an item: its `changeKey`, else its `lastModifiedDateTime`.
fn source_version(change_key: &Option<String>, modified: &Option<String>) -> Option<String> {
    change_key.clone().or_else(|| modified.clone())
}

/// One collection being migrated: its source id, its label for reports, its target.
struct Open<'c> {
    /// The journal's kind of its items: `event`, `contact` or `task`.
    kind: &'static str,
    source_id: &'c str,
    label: String,
    target: Collection,
}

impl GroupwareRun<'_> {
    /// Migrates the selected groupware workloads of one user. Returns `Err` only for failures
    /// that would fail every mailbox; anything else is reported per item and counted.
    pub(super) async fn migrate(&self, user: &User) -> Result<Stats, EngineError> {
        let mut stats = Stats::default();
        if self.workloads.iter().all(|w| *w == Workload::Mail) {
            // A mail-only run opens no groupware destination: a WebDAV server that is down or
            // refuses the login is not this run's concern.
            return Ok(stats);
        }
        let address = user.mail.clone().unwrap_or_default();
        let pacer = self.pacer;
        let account = match (self.store, self.dav) {
            (Store::Folder(store), _) => Account::Dir(self.open_folder(store, &address)?),
            (Store::Imap { logins, .. }, Some(dav)) => {
                if let Some(provisioner) = self.icewarp {
                    if provisioner.resource_left_out(&address).await {
                        // Its IMAP login was refused: reported once, by the mail pass.
                        return Ok(stats);
                    }
                }
                // A master user logs in to IMAP only; CalDAV/CardDAV have no such login.
                let password = logins.own_password(&address);
                let Some(password) = password else {
                    self.fail_user(
                        &mut stats,
                        &address,
                        "calendars, contacts and tasks need this user's own password (accounts_csv)".into(),
                    );
                    return Ok(stats);
                };
                let named;
                let dav = match self.icewarp {
                    Some(provisioner) => {
                        match icewarp_collections(provisioner, dav, &address).await {
                            Ok(settings) => {
                                named = settings;
                                &named
                            }
                            Err(reason) => {
                                self.fail_user(&mut stats, &address, reason);
                                return Ok(stats);
                            }
                        }
                    }
                    None => dav,
                };
                let login = DavLogin::new(logins.login_name(&address), password);
                // The DAV server has its own pace: its own pacer, same retry policy, outside
                // Graph's app budget.
                let dav_pacer = Pacer::new(PacerSettings {
                    app: None,
                    ..pacer.settings().clone()
                });
                let outage = self.dav_outage(dav, &address);
                let refused = std::sync::atomic::AtomicBool::new(false);
                let connected = dav_call(
                    &dav_pacer,
                    &outage,
                    |_| {},
                    || {
                        let connecting = DavAccount::connect(dav, &address, login.clone());
                        let refused = &refused;
                        async move {
                            let connected = connecting.await;
                            if matches!(connected, Err(DavError::Auth { .. })) {
                                refused.store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                            connected
                        }
                    },
                )
                .await;
                let refused = refused.load(std::sync::atomic::Ordering::Relaxed);
                match connected {
                    Ok(account) => {
                        Account::Dav(Box::new(account), Box::new(dav_pacer), Box::new(outage))
                    }
                    Err(_) if refused && self.resource_login_refused(&address).await => {
                        // Left out by the server's answer, not failed; its mail was written.
                        let journal = self.journal.as_ref().map(|j| j.journal);
                        let reason = RESOURCE_DAV_LOGIN_REFUSED;
                        super::mailboxes::report_part_not_migrated(
                            journal,
                            &*self.reporter,
                            user,
                            reason,
                        )?;
                        return Ok(stats);
                    }
                    Err(ItemError::User(reason) | ItemError::Skip(reason)) => {
                        self.fail_user(&mut stats, &address, reason);
                        return Ok(stats);
                    }
                    Err(ItemError::Fatal(e)) => return Err(e),
                }
            }
            // No groupware destination configured: the run was told at its start.
            (Store::Imap { .. }, None) => return Ok(stats),
        };
        let mut ctx = Ctx {
            run: self,
            user,
            address: &address,
            pacer,
            stats: &mut stats,
            seen: HashSet::new(),
            removed: HashSet::new(),
            incomplete: false,
            failed_here: false,
            opened: HashMap::new(),
            moved: Vec::new(),
            page_records: HashMap::new(),
            batch: PageBatch::default(),
            done_records: DoneRecords::default(),
            links: None,
        };
        for workload in self.workloads {
            if self.control.checkpoint().await.is_err() {
                break;
            }
            let result = match workload {
                Workload::Mail => continue,
                Workload::Calendar => ctx.calendars(&account).await,
                Workload::Contacts => ctx.contacts(&account).await,
                Workload::Tasks if !self.client.serves_todo() => {
                    let said = crate::graph::client::TASKS_LEFT_OUT;
                    tracing::warn!(user = %address, "{said}");
                    self.reporter.report(ProgressEvent::NotMigrated {
                        user: address.clone(),
                        reason: said.to_string(),
                    });
                    continue;
                }
                Workload::Tasks => ctx.tasks(&account).await,
            };
            // Every record of the workload answered, on every path (a stop, an error).
            let settled = ctx.done_records.settle().await.map_err(journal_error);
            let result = match result.and(settled) {
                Ok(()) => ctx.settle_moves(),
                failed => failed,
            };
            match result {
                Ok(()) => {}
                Err(ItemError::Fatal(e)) => return Err(e),
                Err(ItemError::User(reason)) => {
                    ctx.fail("(groupware)", "(account)", reason);
                    break;
                }
                Err(ItemError::Skip(reason)) => {
                    // The workload could not be listed (e.g. a missing permission): this user's
                    // workload only; the others and the other users go on.
                    ctx.fail(&format!("({workload:?})").to_lowercase(), "(list)", reason);
                }
            }
        }
        Ok(stats)
    }

    /// The outage policy of `address`'s DAV requests: the run's `outage_wait`, each wait
    /// reported as [`ProgressEvent::DestinationDown`].
    fn dav_outage(&self, dav: &DavSettings, address: &str) -> DavOutage {
        let host = url::Url::parse(&dav.base_url)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(port) => format!("{h}:{port}"),
                    None => h.to_string(),
                })
            })
            .unwrap_or_else(|| dav.base_url.clone());
        let server = format!("DAV server {host}");
        let (reporter, user, destination) =
            (self.reporter.clone(), address.to_string(), server.clone());
        let limit_ms = self.outage_wait.as_millis() as u64;
        let policy = OutagePolicy::new(self.outage_wait).with_notice(move |down_for| {
            reporter.report(ProgressEvent::DestinationDown {
                user: user.clone(),
                destination: destination.clone(),
                down_ms: down_for.as_millis() as u64,
                limit_ms,
            })
        });
        DavOutage { policy, server }
    }

    /// True when `address` is an IceWarp resource account, whose refused login leaves its
    /// data out ([`IceWarpProvisioner::resource_login_refused`]).
    async fn resource_login_refused(&self, address: &str) -> bool {
        match self.icewarp {
            Some(provisioner) => provisioner.resource_login_refused(address).await,
            None => false,
        }
    }

    fn fail_user(&self, stats: &mut Stats, address: &str, reason: String) {
        stats.failed += 1;
        let event = ItemName::default().failed(address, "(groupware)", "(account)", reason);
        self.reporter.report(event);
    }

    fn open_folder(&self, store: &FolderStore, address: &str) -> Result<Mailbox, EngineError> {
        store
            .mailbox(address)
            .map_err(|source| EngineError::Destination {
                path: address.to_string(),
                source,
            })
    }
}

/// The state of one user's groupware pass.
struct Ctx<'r, 'a> {
    run: &'r GroupwareRun<'a>,
    user: &'r User,
    address: &'r str,
    pacer: &'r Pacer,
    stats: &'r mut Stats,
    /// Source ids listed in the current collection, to find what was deleted at the source.
    seen: HashSet<String>,
    /// Source ids the current collection's delta round reported `@removed`.
    removed: HashSet<String>,
    /// A page of the current collection could not be read: nothing counts as deleted.
    incomplete: bool,
    /// Something in the current collection failed: its delta link is not stored.
    failed_here: bool,
    /// The destination collections opened in this pass, by (source collection id, label).
    opened: HashMap<(String, String), Collection>,
    /// Old copies of moved items whose collection was not opened yet when the item arrived
    /// in its new one: deleted when the workload ends ([`Ctx::settle_moves`]).
    moved: Vec<OldCopy>,
    /// The journal's records of the current page's items, read at once
    /// ([`Ctx::look_up_page`]; `None`: not recorded). An item's entry is dropped when it is
    /// written, so what is here is what the journal holds.
    page_records: HashMap<String, Option<ItemRecord>>,
    /// The current page's items converted and not written yet ([`Ctx::flush`]).
    batch: PageBatch,
    /// "Done" records of written items, sent and not answered yet.
    done_records: DoneRecords<'a>,
    /// The delta links the journal held for the user's collections, read in one call at the
    /// first collection ([`Ctx::stored_link`]), each taken once.
    links: Option<StoredLinks>,
}

/// The delta links of a user's collections as the journal held them when read, by id
/// ([`crate::journal::Journal::delta_links_async`]), and the collections whose link was
/// taken: read again, it may be one this pass stored or cleared since.
#[derive(Default)]
struct StoredLinks {
    links: HashMap<String, String>,
    taken: HashSet<String>,
}

/// "Done" records sent and not answered yet, with their items' source ids. A record is sent
/// when pushed (its journal call is queued on the first poll), so it commits while the next
/// items are written. Each item's intent was durable before its write, so a crash with
/// records in flight leaves those items pending, the state of a crash between a write and
/// its record: the next run writes them again under the same UID (an idempotent PUT or file
/// write). A record's failure (a lost lease, the journal gone) is returned by the next call
/// here, before anything more is written.
#[derive(Default)]
struct DoneRecords<'a> {
    /// In a mutex only so that the mailbox's future is `Send` (the records are not `Sync`):
    /// reached through `&mut self` ([`DoneRecords::records`]), never locked.
    in_flight: std::sync::Mutex<FuturesUnordered<DoneRecord<'a>>>,
    ids: HashSet<String>,
}

/// A "done" record under way, answering with its item's source id.
type DoneRecord<'a> = BoxFuture<'a, (String, Result<(), JournalError>)>;

impl<'a> DoneRecords<'a> {
    fn records(&mut self) -> &mut FuturesUnordered<DoneRecord<'a>> {
        self.in_flight
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends `record` (of item `source_id`) and takes in the answers already there.
    fn send(&mut self, source_id: String, record: DoneRecord<'a>) -> Result<(), JournalError> {
        self.ids.insert(source_id);
        self.records().push(record);
        self.answered()
    }

    /// Takes in the answers already there without waiting; the first failure, if any.
    fn answered(&mut self) -> Result<(), JournalError> {
        while let Some(Some((id, result))) = self.records().next().now_or_never() {
            self.ids.remove(&id);
            result?;
        }
        Ok(())
    }

    /// Waits until fewer than [`DONE_RECORDS_IN_FLIGHT`] are under way.
    async fn make_room(&mut self) -> Result<(), JournalError> {
        while self.records().len() >= DONE_RECORDS_IN_FLIGHT {
            if let Some((id, result)) = self.records().next().await {
                self.ids.remove(&id);
                result?;
            }
        }
        Ok(())
    }

    /// Waits for every answer; the first failure, if any (the others are waited for too, so
    /// nothing is left under way).
    async fn settle(&mut self) -> Result<(), JournalError> {
        let mut first = Ok(());
        while let Some((id, result)) = self.records().next().await {
            self.ids.remove(&id);
            if first.is_ok() {
                first = result;
            }
        }
        first
    }

    /// [`DoneRecords::settle`] when one of `ids` is under way (its record is about to be read).
    async fn settle_any_of(&mut self, ids: &[&str]) -> Result<(), JournalError> {
        if ids.iter().any(|id| self.ids.contains(*id)) {
            self.settle().await?;
        }
        Ok(())
    }
}

/// How many bytes of converted items a page holds before its intents are recorded and its
/// items written ([`Ctx::flush`]): a page of large events is written in parts, so memory
/// stays bounded whatever the page size (Graph's pages hold up to 500 items).
const BATCH_BYTES: usize = 4 << 20;

/// A page's items between their conversion and their write (issue 18: each item's intent
/// was a PostgreSQL transaction of its own). Their intents, and the versions of the page's
/// unchanged items, are recorded in one call before any of them is written.
#[derive(Default)]
struct PageBatch {
    planned: Vec<Planned>,
    /// Items found unchanged, by source id: the source version to record.
    versions: Vec<(String, Option<String>)>,
    /// Contacts whose no-photo version changed, by source id.
    no_photo_at: Vec<(String, Option<String>)>,
    /// The converted text held in `planned`.
    bytes: usize,
    /// The source ids in `planned` and `versions`.
    held: HashSet<String>,
}

impl PageBatch {
    /// True when `source_id` is already waiting here: its record is about to change, so the
    /// batch is written before the item is looked at again.
    fn holds(&self, source_id: &str) -> bool {
        self.held.contains(source_id)
    }

    /// Adds an item to write.
    fn plan(&mut self, planned: Planned) {
        self.bytes += planned.resource.text.len();
        self.held.insert(planned.resource.source_id.clone());
        self.planned.push(planned);
    }

    /// Adds an unchanged item's new source version to record.
    fn keep_version(&mut self, source_id: String, version: Option<String>) {
        self.held.insert(source_id.clone());
        self.versions.push((source_id, version));
    }
}

/// An item converted and checked against the journal, to be written once its page's
/// intents are recorded.
struct Planned {
    resource: Resource,
    name: ItemName,
    hash: String,
    /// The journal held no "done" record of it.
    first_write: bool,
    /// The migrator's own copy in this collection, as it wrote it: updated only in that
    /// version (`If-Match`), so a change made at the destination is never overwritten.
    written: Option<dav::ItemRef>,
    /// Its copy in the collection it left at the source, deleted once it is written here.
    old_copy: Option<OldCopy>,
}

/// Where the migrator wrote an item before it moved to another collection at the source.
struct OldCopy {
    source_id: String,
    from: MovedFrom,
}

impl Ctx<'_, '_> {
    fn on_throttle(&self) -> impl FnMut(Duration) + '_ {
        |wait: Duration| {
            self.run.reporter.report(ProgressEvent::Throttled {
                user: self.address.to_string(),
                wait_ms: wait.as_millis() as u64,
            })
        }
    }

    /// Reads the journal's records of a page's items in one call (issue 18: one lookup per
    /// item was a round trip each on PostgreSQL), awaited.
    async fn look_up_page(&mut self, ids: &[&str]) -> Result<(), ItemError> {
        self.page_records.clear();
        let Some(j) = self.run.journal else {
            return Ok(());
        };
        // An item listed again while its record is under way is read as recorded.
        self.done_records
            .settle_any_of(ids)
            .await
            .map_err(journal_error)?;
        let mut found = j
            .journal
            .items_by_id_async(&self.user.id, ids)
            .await
            .map_err(journal_error)?;
        for id in ids {
            self.page_records.insert(id.to_string(), found.remove(*id));
        }
        Ok(())
    }

    /// The journal's record of item `id`: from the page's lookup, else read.
    fn known(&self, id: &str) -> Result<Option<ItemRecord>, ItemError> {
        if let Some(record) = self.page_records.get(id) {
            return Ok(record.clone());
        }
        match self.run.journal {
            Some(j) => j.journal.item(&self.user.id, id).map_err(journal_error),
            None => Ok(None),
        }
    }

    fn fail(&mut self, folder: &str, item: &str, reason: String) {
        self.fail_named(folder, item, &ItemName::default(), reason)
    }

    /// [`Ctx::fail`] of an item people know by `name`.
    fn fail_named(&mut self, folder: &str, item: &str, name: &ItemName, reason: String) {
        self.failed_here = true;
        self.stats.failed += 1;
        let event = name.failed(self.address, folder, item, reason);
        self.run.reporter.report(event);
    }

    /// [`Ctx::open`], a collection that cannot be opened (`Skip`) reported as that
    /// collection's failure: `None`, and the next collection goes on.
    async fn open_or_fail(
        &mut self,
        account: &Account,
        (kind, path, source_id, default): (CollectionKind, &[String], &str, bool),
        label: &str,
    ) -> Result<Option<Collection>, ItemError> {
        match self.open(account, kind, path, source_id, default).await {
            Ok(target) => Ok(Some(target)),
            Err(ItemError::Skip(reason)) => {
                self.fail(label, "(folder)", reason);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens (creating if needed) the destination collection for a source collection.
    /// `default`: the source's default calendar, contact folder or task list, which goes to the
    /// destination's own default collection where the server names one (IceWarp's templates).
    async fn open(
        &self,
        account: &Account,
        kind: CollectionKind,
        path: &[String],
        source_id: &str,
        default: bool,
    ) -> Result<Collection, ItemError> {
        match account {
            // A collection that cannot be created fails that collection only (issue 19.4).
            Account::Dir(mailbox) => mailbox
                .collection(kind, path, source_id)
                .map(Collection::Dir)
                .map_err(|source| {
                    ItemError::Skip(super::mail::folder_failure(&EngineError::Destination {
                        path: mailbox.path().display().to_string(),
                        source,
                    }))
                }),
            Account::Dav(dav, pacer, outage) => {
                let name = if path.is_empty() {
                    "Contacts".to_string()
                } else {
                    path.join(" / ")
                };
                let opened = dav_call(pacer, outage, self.on_throttle(), || async {
                    let found = match default {
                        true => dav.default_collection(kind).await,
                        false => Ok(None),
                    };
                    match found {
                        Ok(Some(c)) => Ok(c),
                        Ok(None) => dav.ensure_collection(kind, &name, None).await,
                        Err(e) => Err(e),
                    }
                })
                .await;
                opened.map(Collection::Dav)
            }
        }
    }

    async fn calendars(&mut self, account: &Account) -> Result<(), ItemError> {
        let client = self.run.client;
        let listed = calendar::all_calendars(client, self.pacer, self.user, self.on_throttle())
            .await
            .map_err(graph_item_error)?;
        self.report_bad("calendars", &listed.bad);
        for shared in &listed.shared {
            let owner = shared
                .calendar
                .owner
                .as_ref()
                .and_then(|o| o.address.as_deref());
            tracing::info!(
                user = %self.address,
                calendar = %shared.calendar.name.as_deref().unwrap_or_default(),
                owner = %owner.unwrap_or_default(),
                "calendar shared with the user left out: it is migrated with its owner's mailbox"
            );
        }
        let names = calendar_names(&listed.own);
        for (grouped, name) in listed.own.iter().zip(names) {
            let cal = &grouped.calendar;
            let label = format!("calendars/{name}");
            let wanted = (
                CollectionKind::Events,
                &[name][..],
                cal.id.as_str(),
                cal.is_default_calendar == Some(true),
            );
            let Some(target) = self.open_or_fail(account, wanted, &label).await? else {
                continue;
            };
            let open = Open {
                kind: "event",
                source_id: &cal.id,
                label,
                target,
            };
            self.begin(&open);
            let stored = self.stored_link(&open).await?;
            let mut round =
                calendar::events_delta(client, self.pacer, &self.user.id, &cal.id, stored);
            let end = self.apply_round(account, &open, &mut round).await?;
            if end == RoundEnd::Stopped {
                return Ok(());
            }
            // A full round yields the link first, then the listing brings the events: what
            // changes in between comes again in the next round, an upsert like any other.
            let listed = round.is_full() || end == RoundEnd::Refused;
            if listed && !self.incomplete && !self.list_events(account, &open, &cal.id).await? {
                return Ok(());
            }
            let link = match end {
                RoundEnd::Refused => None,
                _ => round.delta_link(),
            };
            self.finish(account, &open, listed, link).await?;
        }
        Ok(())
    }

    /// Lists a calendar's single events and series masters and applies each: the full round of
    /// a calendar. False when the run was stopped.
    async fn list_events(
        &mut self,
        account: &Account,
        open: &Open<'_>,
        calendar_id: &str,
    ) -> Result<bool, ItemError> {
        let mut pages = calendar::events(self.run.client, self.pacer, &self.user.id, calendar_id);
        while let Some(page) = self.next_page(&mut pages, &open.label).await? {
            let ids: Vec<&str> = page.iter().map(|e| e.id.as_str()).collect();
            self.look_up_page(&ids).await?;
            for event in page {
                if self.run.control.checkpoint().await.is_err() {
                    return Ok(false);
                }
                let id = event.id.clone();
                let name = event_name(&event);
                if !super::event_in_limits(&self.run.limits, &event) {
                    self.left_out(id);
                    continue;
                }
                let version = source_version(&None, &event.last_modified_date_time);
                if self.unchanged(open, &event.id, version.as_deref())? {
                    continue;
                }
                let listed = match event.kind.as_deref() {
                    // Listed occurrences belong to their master's resource.
                    Some("occurrence" | "exception") => {
                        self.seen.insert(id);
                        self.done(0, true);
                        continue;
                    }
                    Some("seriesMaster") => self.series(&id).await,
                    _ => Ok(event),
                };
                let converted = match listed {
                    Ok(event) => self.event_resource(event).await,
                    Err(e) => Err(graph_item_error(e)),
                };
                self.plan(account, open, (&id, name), converted).await?;
            }
            if !self.flush(account, open).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A series master with its exceptions and cancelled occurrences (beta).
    async fn series(&self, master_id: &str) -> Result<Event, GraphError> {
        let (client, user) = (self.run.client, &self.user.id);
        calendar::series(client, self.pacer, user, master_id, self.on_throttle()).await
    }

    /// An event a delta round reported changed, read by id: a single event, or the whole
    /// series of a master (or of an occurrence, should one be reported). `None` when it is
    /// gone again meanwhile: its removal comes in a later round.
    async fn changed_event(&self, entry: &Event) -> Result<Option<Event>, GraphError> {
        let read = match entry.kind.as_deref() {
            Some("seriesMaster") => self.series(&entry.id).await,
            _ => {
                let (client, user) = (self.run.client, &self.user.id);
                let read = calendar::event(client, self.pacer, user, &entry.id, self.on_throttle());
                match read.await {
                    Ok(e) => match (e.kind.as_deref(), &e.series_master_id) {
                        (Some("occurrence" | "exception"), Some(master)) => {
                            self.series(master).await
                        }
                        _ => Ok(e),
                    },
                    Err(e) => Err(e),
                }
            }
        };
        match read {
            Ok(event) => Ok(Some(event)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A single event or a whole series (a master read with [`Ctx::series`]) as one resource.
    async fn event_resource(&self, event: Event) -> Result<Option<Resource>, ItemError> {
        let user = &self.user.id;
        let client = self.run.client;
        let attachments = if event.has_attachments == Some(true) {
            let budget = crate::convert::event::INLINE_ATTACHMENT_BUDGET;
            calendar::attachments(
                client,
                self.pacer,
                user,
                &event.id,
                budget,
                self.on_throttle(),
            )
            .await
            .map_err(graph_item_error)?
        } else {
            Vec::new()
        };
        let resource = if event.kind.as_deref() == Some("seriesMaster") {
            series_to_ics(&event, &event.exception_occurrences, &attachments)?
        } else {
            single_to_ics(&event, &attachments)?
        };
        self.log_notes(&event.id, &resource.notes);
        Ok(Some(Resource {
            version: source_version(&None, &event.last_modified_date_time),
            source_id: event.id,
            uid: resource.uid,
            text: resource.text,
        }))
    }

    async fn contacts(&mut self, account: &Account) -> Result<(), ItemError> {
        let client = self.run.client;
        let (folders, bad) =
            contacts::contact_folders(client, self.pacer, &self.user.id, self.on_throttle())
                .await
                .map_err(graph_item_error)?;
        self.report_bad("contacts", &bad);
        for folder in &folders {
            let source_id = folder.id.as_deref().unwrap_or("contacts");
            let label = if folder.path.is_empty() {
                "contacts".to_string()
            } else {
                format!("contacts/{}", folder.path.join("/"))
            };
            let wanted = (
                CollectionKind::Contacts,
                &folder.path[..],
                source_id,
                folder.id.is_none(),
            );
            let Some(target) = self.open_or_fail(account, wanted, &label).await? else {
                continue;
            };
            let open = Open {
                kind: "contact",
                source_id,
                label,
                target,
            };
            self.begin(&open);
            let Some(graph_id) = &folder.graph_id else {
                // The default folder holds no contact (its id comes from one): nothing to track.
                let mut pages = contacts::contacts(client, self.pacer, &self.user.id, None);
                while let Some(page) = self.next_page(&mut pages, &open.label).await? {
                    let ids: Vec<&str> = page.iter().map(|c| c.id.as_str()).collect();
                    self.look_up_page(&ids).await?;
                    for contact in page {
                        if !self.apply(account, &open, contact.into()).await? {
                            return Ok(());
                        }
                    }
                    if !self.flush(account, &open).await? {
                        return Ok(());
                    }
                }
                self.finish(account, &open, true, None).await?;
                continue;
            };
            let stored = self.stored_link(&open).await?;
            let mut round =
                contacts::contacts_delta(client, self.pacer, &self.user.id, graph_id, stored);
            if self.apply_round(account, &open, &mut round).await? == RoundEnd::Stopped {
                return Ok(());
            }
            self.finish(account, &open, round.is_full(), round.delta_link())
                .await?;
        }
        Ok(())
    }

    async fn tasks(&mut self, account: &Account) -> Result<(), ItemError> {
        let client = self.run.client;
        let lists = todo::task_lists(client, self.pacer, &self.user.id, self.on_throttle())
            .await
            .map_err(graph_item_error)?;
        self.report_bad("tasks", &lists.bad);
        for list in &lists.items {
            if list.wellknown_list_name.as_deref() == Some(todo::FLAGGED_EMAILS) {
                continue;
            }
            let name = list.display_name.clone().unwrap_or_else(|| "Tasks".into());
            let label = format!("tasks/{name}");
            let wanted = (
                CollectionKind::Tasks,
                &[name][..],
                list.id.as_str(),
                list.wellknown_list_name.as_deref() == Some("defaultList"),
            );
            let Some(target) = self.open_or_fail(account, wanted, &label).await? else {
                continue;
            };
            let open = Open {
                kind: "task",
                source_id: &list.id,
                label,
                target,
            };
            self.begin(&open);
            let stored = self.stored_link(&open).await?;
            let mut round = todo::tasks_delta(client, self.pacer, &self.user.id, &list.id, stored);
            if self.apply_round(account, &open, &mut round).await? == RoundEnd::Stopped {
                return Ok(());
            }
            self.finish(account, &open, round.is_full(), round.delta_link())
                .await?;
        }
        Ok(())
    }

    /// Starts the bookkeeping of one collection.
    fn begin(&mut self, open: &Open<'_>) {
        tracing::debug!(target: "timeline", user = %self.address, collection = %open.label, "collection begins");
        let key = (open.source_id.to_string(), open.label.clone());
        self.opened.insert(key, open.target.clone());
        self.seen.clear();
        self.removed.clear();
        self.page_records.clear();
        self.batch = PageBatch::default();
        self.incomplete = false;
        self.failed_here = false;
        self.stats.folders += 1;
    }

    /// The collection's delta link stored by the previous run, if any: the user's links are
    /// read in one call at the first collection (issue 18: one round trip per collection
    /// before), a collection's read again from the journal.
    async fn stored_link(&mut self, open: &Open<'_>) -> Result<Option<String>, ItemError> {
        let Some(j) = self.run.journal else {
            return Ok(None);
        };
        if self.links.is_none() {
            let links = j.journal.delta_links_async(&self.user.id).await;
            let links = links.map_err(journal_error)?.into_iter().collect();
            self.links = Some(StoredLinks {
                links,
                taken: HashSet::new(),
            });
        }
        if let Some(stored) = &mut self.links {
            if stored.taken.insert(open.source_id.to_string()) {
                return Ok(stored.links.remove(open.source_id));
            }
        }
        j.journal
            .delta_link_async(&self.user.id, open.source_id)
            .await
            .map_err(journal_error)
    }

    /// Reads a delta round page by page and applies its entries: `@removed` ids are noted for
    /// [`Ctx::finish`], added and changed items written. The entries of a full round of events
    /// carry ids only and are not applied (the calendar is listed instead).
    async fn apply_round<T>(
        &mut self,
        account: &Account,
        open: &Open<'_>,
        round: &mut DeltaRound<'_, Delta<T>>,
    ) -> Result<RoundEnd, ItemError>
    where
        T: serde::de::DeserializeOwned + Into<SourceItem>,
    {
        let mut first = true;
        let mut cleared = false;
        loop {
            let next = round.next_page(self.on_throttle()).await;
            if round.restarted() && !cleared {
                // The link's sync state expired (410, syncStateNotFound, ...): the round
                // started over in full.
                cleared = true;
                self.seen.clear();
                self.removed.clear();
                if let Some(j) = self.run.journal {
                    j.journal
                        .clear_delta_link(&self.user.id, open.source_id)
                        .map_err(journal_error)?;
                }
            }
            if let (true, Some(Err(e))) = (first && open.kind == "event", &next) {
                if calendar::is_delta_refused(e) {
                    tracing::info!(user = %self.address, reason = %e, "no events delta; listing");
                    if let Some(j) = self.run.journal {
                        // A link stored under another cloud or endpoint is not followed again.
                        j.journal
                            .clear_delta_link(&self.user.id, open.source_id)
                            .map_err(journal_error)?;
                    }
                    return Ok(RoundEnd::Refused);
                }
            }
            first = false;
            let ids_only = open.kind == "event" && round.is_full();
            // Removals and the ids of a full events round are not items to finish.
            let finishes = |e: &Delta<T>| matches!(e, Delta::Upsert(_)) && !ids_only;
            let Some(entries) = self.take_page(next, &open.label, finishes)? else {
                return Ok(RoundEnd::Read);
            };
            let entries: Vec<Delta<SourceItem>> = entries
                .into_iter()
                .map(|entry| match entry {
                    Delta::Upsert(item) => Delta::Upsert(item.into()),
                    Delta::Removed { id } => Delta::Removed { id },
                })
                .collect();
            if !ids_only {
                let ids: Vec<&str> = entries
                    .iter()
                    .filter_map(|entry| match entry {
                        Delta::Upsert(item) => Some(item.id()),
                        Delta::Removed { .. } => None,
                    })
                    .collect();
                self.look_up_page(&ids).await?;
            }
            for entry in entries {
                match entry {
                    Delta::Removed { id } => {
                        self.removed.insert(id);
                    }
                    Delta::Upsert(_) if ids_only => {}
                    Delta::Upsert(item) => {
                        if !self.apply(account, open, item).await? {
                            return Ok(RoundEnd::Stopped);
                        }
                    }
                }
            }
            if !self.flush(account, open).await? {
                return Ok(RoundEnd::Stopped);
            }
        }
    }

    /// Writes one added or changed item unless the journal holds it at this version. False
    /// when the run was stopped.
    async fn apply(
        &mut self,
        account: &Account,
        open: &Open<'_>,
        item: SourceItem,
    ) -> Result<bool, ItemError> {
        if self.run.control.checkpoint().await.is_err() {
            return Ok(false);
        }
        // Its record is read below ([`Ctx::known`]): as recorded, not while under way.
        self.done_records
            .settle_any_of(&[item.id()])
            .await
            .map_err(journal_error)?;
        match item {
            SourceItem::Contact(contact) => {
                let version = source_version(&contact.change_key, &contact.last_modified_date_time);
                if self.unchanged(open, &contact.id, version.as_deref())? {
                    return Ok(true);
                }
                // Only a new or changed contact's photo is read, and not while the contact is
                // at the version at which Graph said it has none (the 404, journaled).
                let photo = self.photo(&contact.id, version.as_deref()).await?;
                let bytes = match &photo {
                    Photo::Present((t, b)) => Some((*t, b.as_slice())),
                    Photo::Absent | Photo::LeftOut => None,
                };
                let converted = to_vcard(&contact, bytes, VCardVersion::V3_0)
                    .map(|card| {
                        self.log_notes(&contact.id, &card.notes);
                        Some(Resource {
                            source_id: contact.id.clone(),
                            uid: card.uid,
                            text: card.text,
                            version: version.clone(),
                        })
                    })
                    .map_err(ItemError::from);
                let name = ItemName::new(contact.display_name.as_deref(), None, None);
                let recorded = match self.run.journal {
                    Some(_) => self.known(&contact.id)?.and_then(|r| r.no_photo_at),
                    None => None,
                };
                self.plan(account, open, (&contact.id, name), converted)
                    .await?;
                let absent_at = match photo {
                    Photo::Absent => version,
                    Photo::Present(_) | Photo::LeftOut => None,
                };
                // Recorded with the page, only when it changes: a first pass of contacts
                // with photos records nothing.
                if self.run.journal.is_some() && recorded != absent_at {
                    self.batch.no_photo_at.push((contact.id.clone(), absent_at));
                }
            }
            SourceItem::Task(task) => {
                // Tasks come whole in their round: nothing to save by a version check.
                let converted = to_vtodo(&task)
                    .map(|r| {
                        self.log_notes(&task.id, &r.notes);
                        Some(Resource {
                            source_id: task.id.clone(),
                            uid: r.uid,
                            text: r.text,
                            version: None,
                        })
                    })
                    .map_err(ItemError::from);
                let due = utc_date_time(&task.due_date_time);
                let name = ItemName::new(task.title.as_deref(), due, None);
                self.plan(account, open, (&task.id, name), converted)
                    .await?;
            }
            SourceItem::ChangedEvent(entry) => {
                // The delta entry names the event only when read (`subject`, `start`).
                let mut name = event_name(&entry);
                let converted = match self.changed_event(&entry).await {
                    Ok(Some(event)) if !super::event_in_limits(&self.run.limits, &event) => {
                        self.left_out(entry.id);
                        return Ok(true);
                    }
                    Ok(Some(event)) => {
                        name = event_name(&event);
                        self.event_resource(event).await
                    }
                    Ok(None) => {
                        self.done(0, true);
                        return Ok(true);
                    }
                    Err(e) => Err(graph_item_error(e)),
                };
                self.plan(account, open, (&entry.id, name), converted)
                    .await?;
            }
        }
        Ok(true)
    }

    /// A contact's photo at source version `version`. Not asked for while the journal says
    /// Graph answered 404 at this very version; one that cannot be read is left out (the
    /// contact is worth more than its picture: it is migrated without).
    async fn photo(&self, contact_id: &str, version: Option<&str>) -> Result<Photo, ItemError> {
        if let (Some(_), Some(version)) = (self.run.journal, version) {
            let absent_at = self.known(contact_id)?.and_then(|r| r.no_photo_at);
            if absent_at.as_deref() == Some(version) {
                return Ok(Photo::Absent);
            }
        }
        let (client, user) = (self.run.client, &self.user.id);
        match contacts::photo(client, self.pacer, user, contact_id, self.on_throttle()).await {
            Ok(Some(photo)) => Ok(Photo::Present(photo)),
            Ok(None) => Ok(Photo::Absent),
            Err(contacts::PhotoError::Graph(e)) if e.class() == ErrorClass::Fatal => {
                Err(ItemError::Fatal(EngineError::Source(e)))
            }
            Err(e) => {
                tracing::info!(contact = %contact_id, reason = %e, "contact photo left out");
                Ok(Photo::LeftOut)
            }
        }
    }

    /// True (and counted as skipped) when the journal holds the item written from this very
    /// source version into this collection: nothing is fetched or written again.
    fn unchanged(
        &mut self,
        open: &Open<'_>,
        id: &str,
        version: Option<&str>,
    ) -> Result<bool, ItemError> {
        let (Some(_), Some(version)) = (self.run.journal, version) else {
            return Ok(false);
        };
        let known = self.known(id)?;
        let same = known.is_some_and(|r| {
            r.state == ItemState::Done
                && r.kind == open.kind
                && r.folder_id == open.source_id
                && r.dest_folder == open.label
                && r.source_version.as_deref() == Some(version)
        });
        if same {
            self.seen.insert(id.to_string());
            self.stats.skipped += 1;
            self.done(0, true);
        }
        Ok(same)
    }

    /// Ends a collection's round: settles what was deleted at the source (`full`: the round
    /// listed every item), then stores the round's delta link, unless something failed (the
    /// next run replays the round) or the run was stopped.
    async fn finish(
        &mut self,
        account: &Account,
        open: &Open<'_>,
        full: bool,
        link: Option<&str>,
    ) -> Result<(), ItemError> {
        // The collection's items are read back, and its link stored, once each is recorded.
        self.done_records.settle().await.map_err(journal_error)?;
        if self.run.control.is_cancelled() {
            return Ok(());
        }
        self.settle_removed(open, account, full).await?;
        if let (Some(j), Some(link), false, false) =
            (self.run.journal, link, self.incomplete, self.failed_here)
        {
            j.journal
                .set_folder_as_async(
                    open.kind,
                    &self.user.id,
                    open.source_id,
                    &open.label,
                    Some(link),
                )
                .await
                .map_err(journal_error)?;
        }
        tracing::debug!(target: "timeline", user = %self.address, collection = %open.label, "collection ends");
        Ok(())
    }

    /// After a collection's round: its items the journal holds that the round reported
    /// `@removed`, or (`full`) that a full round did not list, were deleted at the source.
    /// They are deleted at the destination when the user opted in and the migrator created the
    /// copy; otherwise the copy is kept and the journal says so.
    async fn settle_removed(
        &mut self,
        open: &Open<'_>,
        account: &Account,
        full: bool,
    ) -> Result<(), ItemError> {
        let Some(j) = self.run.journal else {
            return Ok(());
        };
        if self.incomplete {
            return Ok(());
        }
        let user = &self.user.id;
        let mut gone: Vec<_> = j
            .journal
            .items_of_kind_in_folder_async(user, open.source_id, open.kind, ItemState::Done)
            .await
            .map_err(journal_error)?
            .into_iter()
            .filter(|i| {
                !self.seen.contains(&i.source_id) && (full || self.removed.contains(&i.source_id))
            })
            .collect();
        if self.run.mirror_deletions {
            // Copies kept by earlier runs go too, now that the user asks for it.
            gone.extend(
                j.journal
                    .items_of_kind_in_folder_async(
                        user,
                        open.source_id,
                        open.kind,
                        ItemState::Removed,
                    )
                    .await
                    .map_err(journal_error)?,
            );
        }
        for item in gone {
            let dest = item.dest_ref.clone().map(DestRef);
            let (true, true, Some(dest)) = (self.run.mirror_deletions, item.created, dest) else {
                j.journal
                    .record_removed(user, &item.source_id)
                    .map_err(journal_error)?;
                continue;
            };
            let deleted = match (&open.target, account) {
                (Collection::Dir(dir), _) => dir.remove(&dest).map_err(|e| e.to_string()),
                (Collection::Dav(_), Account::Dav(dav, pacer, outage)) => {
                    let stored = dav::ItemRef {
                        href: dest.clone(),
                        etag: item.etag.clone(),
                    };
                    self.delete_resource(dav, pacer, outage, stored).await?
                }
                (Collection::Dav(_), Account::Dir(_)) => Err("not a DAV account".into()),
            };
            match deleted {
                Ok(()) => j
                    .journal
                    .forget(user, &item.source_id)
                    .map_err(journal_error)?,
                Err(reason) => self.fail(
                    &open.label,
                    &item.source_id,
                    format!("deleted at the source, but not at the destination: {reason}"),
                ),
            }
        }
        Ok(())
    }

    /// The next page's items; a page that cannot be read is a failure of this collection.
    async fn next_page<T: serde::de::DeserializeOwned>(
        &mut self,
        pages: &mut Pages<'_, T>,
        label: &str,
    ) -> Result<Option<Vec<T>>, ItemError> {
        let next = pages.next_page(self.on_throttle()).await;
        self.take_page(next, label, |_| true)
    }

    /// A page's items, its malformed entries reported; `None` after the last page or when the
    /// page could not be read (then the collection is incomplete: nothing counts as deleted).
    /// `finishes` tells which entries will end as done or failed: those count in the front
    /// ends' totals.
    fn take_page<T>(
        &mut self,
        next: Option<Result<Page<T>, GraphError>>,
        label: &str,
        finishes: impl Fn(&T) -> bool,
    ) -> Result<Option<Vec<T>>, ItemError> {
        match next {
            None => Ok(None),
            Some(Ok(page)) => {
                let items = page.items.iter().filter(|i| finishes(i)).count() + page.bad.len();
                self.run.reporter.report(ProgressEvent::ItemsListed {
                    user: self.address.to_string(),
                    items: items as u64,
                });
                self.report_bad(label, &page.bad);
                Ok(Some(page.items))
            }
            Some(Err(e)) => match graph_item_error(e) {
                ItemError::Skip(reason) => {
                    self.incomplete = true;
                    self.fail(label, "(page)", reason);
                    Ok(None)
                }
                fatal => Err(fatal),
            },
        }
    }

    fn report_bad(&mut self, label: &str, bad: &[(String, String)]) {
        for (id, reason) in bad {
            self.fail(label, id, format!("malformed entry: {reason}"));
        }
    }

    fn log_notes(&self, id: &str, notes: &[String]) {
        for note in notes {
            tracing::info!(user = %self.address, item = %id, "{note}");
        }
    }

    /// Takes one converted item into the page's batch unless the journal says this exact
    /// content is there (then only its new source version is noted); [`Ctx::flush`] writes
    /// it. Per-item problems are reported and counted; only destination-wide ones are `Err`.
    async fn plan(
        &mut self,
        account: &Account,
        open: &Open<'_>,
        (id, name): (&str, ItemName),
        converted: Result<Option<Resource>, ItemError>,
    ) -> Result<(), ItemError> {
        self.seen.insert(id.to_string());
        // The record is about to change: later reads go to the journal.
        let looked_up = self.page_records.remove(id);
        let resource = match converted {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(ItemError::Skip(reason)) => {
                self.record_failed(open, (id, &name), &reason)?;
                self.fail_named(&open.label, id, &name, reason);
                return Ok(());
            }
            Err(fatal) => return Err(fatal),
        };
        if self.batch.holds(&resource.source_id) {
            // Listed twice (or an occurrence with its series): the first is written first,
            // and this one is looked at against what that wrote.
            self.flush(account, open).await?;
        }
        let hash = hex::encode(Sha256::digest(resource.text.as_bytes()));
        let size = resource.text.len() as u64;
        let name = ItemName {
            size: Some(size),
            ..name
        };
        let mut planned = Planned {
            resource,
            name,
            hash,
            first_write: true,
            written: None,
            old_copy: None,
        };
        if let Some(j) = self.run.journal {
            let source_id = planned.resource.source_id.as_str();
            let known = match looked_up.filter(|_| source_id == id) {
                Some(known) => known,
                None => {
                    self.done_records
                        .settle_any_of(&[source_id])
                        .await
                        .map_err(journal_error)?;
                    j.journal
                        .items_by_id_async(&self.user.id, &[source_id])
                        .await
                        .map_err(journal_error)?
                        .remove(source_id)
                }
            };
            planned.first_write = !known.as_ref().is_some_and(|r| r.state == ItemState::Done);
            planned.written = known.as_ref().and_then(|r| {
                let ours = r.state == ItemState::Done && r.dest_folder == open.label;
                match (ours, &r.dest_ref, &r.etag) {
                    (true, Some(href), Some(etag)) => Some(dav::ItemRef {
                        href: DestRef(href.clone()),
                        etag: Some(etag.clone()),
                    }),
                    _ => None,
                }
            });
            // A move a crash interrupted is finished first.
            planned.old_copy = known.as_ref().and_then(|r| match &r.moved_from {
                Some(from) => Some(OldCopy {
                    source_id: r.source_id.clone(),
                    from: from.clone(),
                }),
                None => moved_copy(r, open),
            });
            if let Some(r) = known.filter(|r| {
                r.state == ItemState::Done
                    && r.hash.as_deref() == Some(planned.hash.as_str())
                    && r.dest_folder == open.label
            }) {
                let version = planned.resource.version;
                if r.source_version != version {
                    self.batch.keep_version(planned.resource.source_id, version);
                }
                self.stats.skipped += 1;
                self.done(0, true);
                return Ok(());
            }
        }
        self.batch.plan(planned);
        if self.batch.bytes > BATCH_BYTES {
            self.flush(account, open).await?;
        }
        Ok(())
    }

    /// Records the batch's intents (and its unchanged items' versions) in one call, then
    /// writes its items one by one. False when the run was stopped (what is left of the
    /// batch stays pending: the next run writes it).
    async fn flush(&mut self, account: &Account, open: &Open<'_>) -> Result<bool, ItemError> {
        let batch = std::mem::take(&mut self.batch);
        if let Some(j) = self.run.journal {
            let page = crate::journal::PageRecords {
                user_id: &self.user.id,
                intents: batch
                    .planned
                    .iter()
                    .map(|p| {
                        let from = p.old_copy.as_ref().map(|old| &old.from);
                        (self.target(open, &p.resource.source_id), from)
                    })
                    .collect(),
                versions: batch
                    .versions
                    .iter()
                    .map(|(id, v)| (id.as_str(), v.as_deref()))
                    .collect(),
                no_photo_at: batch
                    .no_photo_at
                    .iter()
                    .map(|(id, v)| (id.as_str(), v.as_deref()))
                    .collect(),
            };
            j.journal
                .record_page_async(open.kind, &page, j.run)
                .await
                .map_err(journal_error)?;
        }
        for planned in batch.planned {
            if self.run.control.checkpoint().await.is_err() {
                return Ok(false);
            }
            if self.put(account, open, planned).await? {
                match open.kind {
                    "event" => self.stats.events += 1,
                    "contact" => self.stats.contacts += 1,
                    _ => self.stats.tasks += 1,
                }
            }
        }
        Ok(true)
    }

    /// Writes one planned item, its intent recorded; true when it was written.
    async fn put(
        &mut self,
        account: &Account,
        open: &Open<'_>,
        planned: Planned,
    ) -> Result<bool, ItemError> {
        let Planned {
            resource,
            name,
            hash,
            first_write,
            written,
            old_copy,
        } = planned;
        let size = resource.text.len() as u64;
        if let Some(j) = self.run.journal {
            // A record that failed (a lost lease) stops the writes before this one; a worker
            // paused past its lease writes nothing more (its local clock, no round trip).
            self.done_records.answered().map_err(journal_error)?;
            self.done_records.make_room().await.map_err(journal_error)?;
            j.journal.check_fence().map_err(journal_error)?;
        }
        // What the DAV server said: the resource's ETag, and whether it held it already.
        let mut etag = None;
        let mut found = false;
        let dest: DestRef = match (&open.target, account) {
            (Collection::Dir(dir), _) => match dir
                .put_async(&resource.uid, resource.text.clone().into_bytes())
                .await
            {
                Ok(dest) => dest,
                Err(source) => {
                    // This item only (issue 19.4); the next run retries it.
                    let reason = format!("cannot write it in {}: {source}", dir.path().display());
                    self.record_failed(open, (&resource.source_id, &name), &reason)?;
                    self.fail_named(&open.label, &resource.source_id, &name, reason);
                    return Ok(false);
                }
            },
            (Collection::Dav(collection), Account::Dav(dav, pacer, outage)) => {
                let text = resource.text.as_bytes();
                let put = dav_call(pacer, outage, self.on_throttle(), || async {
                    match &written {
                        Some(ours) => dav.replace(collection, ours, text).await,
                        None => dav.put(collection, &resource.uid, text).await,
                    }
                })
                .await;
                match put {
                    Ok(outcome) => {
                        // The destination already held this UID: it is the user's.
                        found = !outcome.created && first_write;
                        etag = outcome.etag;
                        outcome.href
                    }
                    Err(ItemError::Skip(reason)) if written.is_some() => {
                        // Kept as the journal has it (done, the old version): every later
                        // run reports the conflict again and never overwrites the change.
                        self.fail_named(&open.label, &resource.source_id, &name, reason);
                        return Ok(false);
                    }
                    Err(ItemError::Skip(reason)) => {
                        self.record_failed(open, (&resource.source_id, &name), &reason)?;
                        self.fail_named(&open.label, &resource.source_id, &name, reason);
                        return Ok(false);
                    }
                    Err(other) => return Err(other),
                }
            }
            (Collection::Dav(_), Account::Dir(_)) => {
                return Err(ItemError::User(
                    "internal: a DAV collection without a DAV account".into(),
                ))
            }
        };
        if let Some(old) = old_copy {
            // Written in its new collection: the copy in the old one goes (it is ours).
            self.remove_old_copy(account, old, &dest).await?;
        }
        if let Some(j) = self.run.journal {
            let (journal, user_id) = (j.journal, self.user.id.clone());
            let (source_id, version) = (resource.source_id.clone(), resource.version);
            let record = async move {
                let done = crate::journal::GroupwareDone {
                    dest_ref: &dest.0,
                    size,
                    hash: Some(&hash),
                    version: version.as_deref(),
                    etag: etag.as_deref(),
                    found,
                };
                let result = journal
                    .record_done_at_version_async(&user_id, &source_id, &done)
                    .await;
                (source_id, result)
            };
            self.done_records
                .send(resource.source_id, Box::pin(record))
                .map_err(journal_error)?;
        }
        self.stats.bytes += size;
        self.done(size, false);
        Ok(true)
    }

    /// Deletes one DAV resource the migrator wrote, only in the version it wrote when the
    /// journal has that version's ETag (`If-Match`): a resource changed at the destination
    /// since is kept and this is reported as a conflict. `Ok(Err(reason))`: this item could
    /// not be deleted (the caller reports it); `Err`: the server is gone or the login
    /// refused, which is not this item's fault and ends the user's groupware.
    async fn delete_resource(
        &self,
        dav: &DavAccount,
        pacer: &Pacer,
        outage: &DavOutage,
        item_ref: dav::ItemRef,
    ) -> Result<Result<(), String>, ItemError> {
        match dav_call(pacer, outage, self.on_throttle(), || dav.delete(&item_ref)).await {
            Ok(()) => Ok(Ok(())),
            Err(ItemError::Skip(reason)) => Ok(Err(reason)),
            Err(other) => Err(other),
        }
    }

    /// Deletes the copy a moved item left in its old collection, now that it is written in
    /// its new one (at `new`). A collection not opened yet in this pass is handled when the
    /// workload ends. A failure is reported: the old copy stays, the new one counts.
    async fn remove_old_copy(
        &mut self,
        account: &Account,
        old: OldCopy,
        new: &DestRef,
    ) -> Result<(), ItemError> {
        let deleted = match account {
            // The same href is the same resource (e.g. a collection that kept its URL).
            Account::Dav(..) if old.from.dest_ref == new.0 => Ok(()),
            Account::Dav(dav, pacer, outage) => {
                let stored = dav::ItemRef {
                    href: DestRef(old.from.dest_ref.clone()),
                    etag: old.from.etag.clone(),
                };
                self.delete_resource(dav, pacer, outage, stored).await?
            }
            Account::Dir(_) => {
                let key = (old.from.folder_id.clone(), old.from.dest_folder.clone());
                match self.opened.get(&key) {
                    Some(Collection::Dir(dir)) => dir
                        .remove(&DestRef(old.from.dest_ref.clone()))
                        .map_err(|e| e.to_string()),
                    Some(Collection::Dav(_)) => Err("not a local collection".into()),
                    None => {
                        self.moved.push(old);
                        return Ok(());
                    }
                }
            }
        };
        if let Err(reason) = deleted {
            self.fail(
                &old.from.dest_folder,
                &old.source_id,
                format!("moved at the source; its old copy could not be deleted: {reason}"),
            );
        }
        Ok(())
    }

    /// At the end of a workload: deletes the old copies of moved items whose old collection
    /// was opened after the item was written in its new one. One whose old collection no
    /// longer exists at the source is reported (its copy stays).
    fn settle_moves(&mut self) -> Result<(), ItemError> {
        for old in std::mem::take(&mut self.moved) {
            let from = &old.from;
            let key = (from.folder_id.clone(), from.dest_folder.clone());
            let reason = match self.opened.get(&key) {
                Some(Collection::Dir(dir)) => match dir.remove(&DestRef(from.dest_ref.clone())) {
                    Ok(()) => continue,
                    Err(e) => format!("moved at the source; its old copy stays: {e}"),
                },
                _ => "moved at the source from a collection that is gone; its old copy stays"
                    .to_string(),
            };
            self.fail(&from.dest_folder, &old.source_id, reason);
        }
        Ok(())
    }

    fn target<'t>(&'t self, open: &'t Open<'_>, source_id: &'t str) -> ItemTarget<'t> {
        ItemTarget {
            user_id: &self.user.id,
            source_id,
            folder_id: open.source_id,
            dest_folder: &open.label,
        }
    }

    /// Journals item `id` (known by `name`) as failed in `open` with `reason`.
    fn record_failed(
        &self,
        open: &Open<'_>,
        (id, name): (&str, &ItemName),
        reason: &str,
    ) -> Result<(), ItemError> {
        if let Some(j) = self.run.journal {
            j.journal
                .record_intent_as(open.kind, self.target(open, id), j.run)
                .and_then(|()| j.journal.record_failed(&self.user.id, id, reason))
                .and_then(|()| j.journal.record_failure_name(&self.user.id, id, name))
                .map_err(journal_error)?;
        }
        Ok(())
    }

    /// An event left out by the date limits: not fetched nor written, what an earlier run
    /// wrote is kept.
    fn left_out(&mut self, id: String) {
        self.seen.insert(id);
        self.stats.out_of_range += 1;
        self.done(0, true);
    }

    fn done(&self, bytes: u64, skipped: bool) {
        self.run.reporter.report(ProgressEvent::ItemDone {
            user: self.address.to_string(),
            bytes,
            skipped,
        });
    }
}

/// `dav` with the default collections of `address`'s own GroupWare folders. IceWarp's
/// default folders can be renamed and localised (`C_System_Adv_Rename_Default_Folders`,
/// reference/icewarp.md §3), and its WebDAV names a folder by its name (`/webdav/<email>/
/// Calendar/`), so the URLs come from the account's `getaccountfolderlist` (folder types E
/// events, T tasks, C contacts), never from the English defaults. An account whose folder
/// list cannot be read gets no groupware (the reason is reported): guessing would create a
/// second `Calendar` beside its own `Kalendář`.
async fn icewarp_collections(
    provisioner: &IceWarpProvisioner,
    dav: &DavSettings,
    address: &str,
) -> Result<DavSettings, String> {
    let names = provisioner.default_folders(address).await.map_err(|e| {
        format!(
            "cannot read the names of the account's GroupWare folders (getaccountfolderlist): {e}"
        )
    })?;
    let name = |key: &str| names.get(key).map(String::as_str);
    let mut settings = dav.clone();
    settings.templates = CollectionTemplates::named_under(
        &dav.base_url,
        name("calendar"),
        name("tasks"),
        name("contacts"),
    );
    Ok(settings)
}

/// The copy an item left behind in another collection, when the journal says the migrator
/// wrote it there (`created`) and the item now arrives in `open`: it moved at the source.
/// With immutable ids (every request asks for them) an event or contact keeps its id when
/// moved (concepts/outlook-immutable-id.md); its old collection's round reports it
/// `@removed`, its new one lists it, in either order. A copy the migrator only found at the
/// destination is never touched.
fn moved_copy(known: &ItemRecord, open: &Open<'_>) -> Option<OldCopy> {
    let elsewhere = known.folder_id != open.source_id || known.dest_folder != open.label;
    let kept = matches!(known.state, ItemState::Done | ItemState::Removed);
    if !(elsewhere && kept && known.created && known.kind == open.kind) {
        return None;
    }
    Some(OldCopy {
        source_id: known.source_id.clone(),
        from: MovedFrom {
            folder_id: known.folder_id.clone(),
            dest_folder: known.dest_folder.clone(),
            dest_ref: known.dest_ref.clone()?,
            etag: known.etag.clone(),
        },
    })
}

/// The destination name of each calendar, in order: its own name, unless an earlier calendar
/// took it (names compare case-insensitively, as some servers do): then `name (group)`,
/// then with a short hash of its id too. Stable while Graph lists the calendars in the same
/// order; the default group's calendars come first and keep their names.
fn calendar_names(calendars: &[calendar::GroupedCalendar]) -> Vec<String> {
    let mut taken = HashSet::new();
    calendars
        .iter()
        .map(|g| {
            let name = g.calendar.name.clone().unwrap_or_else(|| "Calendar".into());
            let grouped = match &g.group {
                Some(group) => format!("{name} ({group})"),
                None => name.clone(),
            };
            let hashed = format!(
                "{grouped} ~{}",
                &hex::encode(Sha256::digest(g.calendar.id.as_bytes()))[..8]
            );
            let chosen = [name, grouped]
                .into_iter()
                .find(|n| !taken.contains(&n.to_lowercase()))
                .unwrap_or(hashed);
            taken.insert(chosen.to_lowercase());
            chosen
        })
        .collect()
}

fn journal_error(e: crate::journal::JournalError) -> ItemError {
    ItemError::Fatal(EngineError::Journal(e))
}

/// A DAV call's result as the pacer's verdict: a server that is down is waited for
/// ([`DavError::is_outage`]), other transient failures are retried a few times (after the
/// server's `Retry-After` when it sent one), the rest returned.
fn dav_verdict<T>(result: Result<T, DavError>) -> Verdict<T, DavError> {
    match result {
        Ok(value) => Verdict::Done(value),
        Err(e) if e.is_outage() => Verdict::Down {
            after: e.retry_after(),
            error: e,
        },
        Err(e) if e.class() == ErrorClass::Retry => Verdict::Retry {
            after: e.retry_after(),
            error: e,
        },
        Err(e) => Verdict::Fail(e),
    }
}

/// One DAV request through the account's pacer ([`dav_verdict`]), waiting for a server that
/// is down up to `outage`. Still down then: this user's groupware fails (the next item would
/// only wait again), naming the server and the time waited; the next run resumes it.
async fn dav_call<T, Fut>(
    pacer: &Pacer,
    outage: &DavOutage,
    on_throttle: impl FnMut(Duration),
    mut request: impl FnMut() -> Fut,
) -> Result<T, ItemError>
where
    Fut: std::future::Future<Output = Result<T, DavError>>,
{
    let called = pacer
        .call_within(
            Some(&outage.policy),
            |_| {
                let sent = request();
                async move { dav_verdict(sent.await) }
            },
            on_throttle,
        )
        .await;
    match called {
        Ok(value) => Ok(value),
        Err(GaveUp::Failed(e)) => Err(dav_item_error(e)),
        Err(GaveUp::Down { error, down_for }) => Err(ItemError::User(format!(
            "{} still unreachable after waiting {} (the run's outage_wait): {error}",
            outage.server,
            crate::config::show_duration(down_for)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::types::Calendar;

    /// An item already waiting in the page's batch, to write or with a version to record,
    /// is known as held (the batch is written before it is looked at again); others are not.
    #[test]
    fn a_page_batch_holds_what_it_plans_and_the_versions_it_keeps() {
        let mut batch = PageBatch::default();
        batch.plan(Planned {
            resource: Resource {
                source_id: "written".into(),
                uid: "uid-1".into(),
                text: "BEGIN:VCALENDAR".into(),
                version: None,
            },
            name: ItemName::default(),
            hash: String::new(),
            first_write: true,
            written: None,
            old_copy: None,
        });
        batch.keep_version("unchanged".into(), Some("v2".into()));
        assert!(batch.holds("written"));
        assert!(batch.holds("unchanged"));
        assert!(!batch.holds("uid-1"), "held by source id, not by UID");
        assert!(!batch.holds("other"));
        assert_eq!(batch.bytes, "BEGIN:VCALENDAR".len());
        assert_eq!(
            batch.versions,
            [("unchanged".to_string(), Some("v2".to_string()))]
        );
    }

    fn grouped(id: &str, name: &str, group: Option<&str>) -> calendar::GroupedCalendar {
        calendar::GroupedCalendar {
            calendar: Calendar {
                id: id.into(),
                name: Some(name.into()),
                ..Calendar::default()
            },
            group: group.map(str::to_string),
        }
    }

    #[test]
    fn calendars_of_the_same_name_in_two_groups_get_distinct_stable_names() {
        let calendars = [
            grouped("a", "Calendar", None),
            grouped("b", "Birthdays", None),
            grouped("c", "calendar", Some("Other calendars")),
            grouped("d", "Choir", Some("Other calendars")),
            grouped("e", "Calendar", Some("Other calendars")),
        ];
        let names = calendar_names(&calendars);
        let hash = &hex::encode(Sha256::digest(b"e"))[..8];
        assert_eq!(
            names,
            [
                "Calendar".to_string(),
                "Birthdays".into(),
                "calendar (Other calendars)".into(),
                "Choir".into(),
                format!("Calendar (Other calendars) ~{hash}"),
            ]
        );
        assert_eq!(calendar_names(&calendars), names, "the same every run");
    }
}
