//! One mailbox's calendars, contacts and To Do tasks: read from Graph, converted by the pure
//! converters ([`crate::convert`]), written one resource per item.
//!
//! Per item: the converted text's SHA-256 is compared with the journal's; an unchanged item is
//! skipped, a new or changed one is written (replacing the earlier version under the same
//! UID, so a rerun never duplicates) and journaled. Converters are deterministic (no
//! wall-clock stamps), so an item that did not change at the source is not rewritten.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::mail::RunJournal;
use super::{EngineError, RunControl, Store};
use crate::config::Workload;
use crate::convert::contact::{to_vcard, VCardVersion};
use crate::convert::event::{series_to_ics, single_to_ics};
use crate::convert::task::to_vtodo;
use crate::convert::ConvertError;
use crate::dest::folder::{CollectionDir, FolderStore};
use crate::dest::{DestRef, GroupwareKind};
use crate::error::{Classify, ErrorClass};
use crate::graph::client::{GraphClient, GraphError};
use crate::graph::paging::Pages;
use crate::graph::types::{Event, User};
use crate::graph::{calendar, contacts, todo, Pacer, PacerSettings};
use crate::journal::{ItemState, ItemTarget};
use crate::progress::{ProgressEvent, Reporter, Stats};

/// Everything one mailbox's groupware migration needs.
pub(super) struct GroupwareRun<'a> {
    pub client: &'a GraphClient,
    pub store: &'a Store,
    pub journal: Option<RunJournal<'a>>,
    pub reporter: Arc<dyn Reporter>,
    pub control: RunControl,
    pub settings: PacerSettings,
    pub workloads: &'a [Workload],
}

/// Where one collection's items go.
enum Collection {
    Dir(CollectionDir),
}

/// How one item ended when it did not arrive.
enum ItemError {
    /// Recorded and reported; the run goes on.
    Skip(String),
    Fatal(EngineError),
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
}

/// One collection being migrated: its source id, its label for reports, its target.
struct Open<'c> {
    source_id: &'c str,
    label: String,
    target: Collection,
}

impl GroupwareRun<'_> {
    /// Migrates the selected groupware workloads of one user. Returns `Err` only for failures
    /// that would fail every mailbox; anything else is reported per item and counted.
    pub(super) async fn migrate(&self, user: &User) -> Result<Stats, EngineError> {
        let mut stats = Stats::default();
        let address = user.mail.clone().unwrap_or_default();
        let pacer = Pacer::new(self.settings.clone());
        let mailbox = match self.store {
            Store::Folder(store) => Some(self.open_folder(store, &address)?),
            // Groupware over CalDAV/CardDAV needs a DAV destination; IMAP carries mail only.
            Store::Imap { .. } => None,
        };
        let Some(mailbox) = mailbox else {
            return Ok(stats);
        };
        let mut ctx = Ctx {
            run: self,
            user,
            address: &address,
            pacer: &pacer,
            stats: &mut stats,
        };
        for workload in self.workloads {
            if self.control.checkpoint().await.is_err() {
                break;
            }
            let result = match workload {
                Workload::Mail => continue,
                Workload::Calendar => ctx.calendars(&mailbox).await,
                Workload::Contacts => ctx.contacts(&mailbox).await,
                Workload::Tasks => ctx.tasks(&mailbox).await,
            };
            match result {
                Ok(()) => {}
                Err(ItemError::Fatal(e)) => return Err(e),
                Err(ItemError::Skip(reason)) => {
                    // The workload could not be listed (e.g. a missing permission): this user's
                    // workload only; the others and the other users go on.
                    ctx.fail(&format!("({workload:?})").to_lowercase(), "(list)", reason);
                }
            }
        }
        Ok(stats)
    }

    fn open_folder(
        &self,
        store: &FolderStore,
        address: &str,
    ) -> Result<crate::dest::folder::Mailbox, EngineError> {
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

    fn fail(&mut self, folder: &str, item: &str, reason: String) {
        self.stats.failed += 1;
        self.run.reporter.report(ProgressEvent::ItemFailed {
            user: self.address.to_string(),
            folder: folder.to_string(),
            item: item.to_string(),
            reason,
        });
    }

    fn open(
        &self,
        mailbox: &crate::dest::folder::Mailbox,
        kind: GroupwareKind,
        path: &[String],
        source_id: &str,
    ) -> Result<Collection, ItemError> {
        mailbox
            .collection(kind, path, source_id)
            .map(Collection::Dir)
            .map_err(|source| {
                ItemError::Fatal(EngineError::Destination {
                    path: mailbox.path().display().to_string(),
                    source,
                })
            })
    }

    async fn calendars(&mut self, mailbox: &crate::dest::folder::Mailbox) -> Result<(), ItemError> {
        let client = self.run.client;
        let listed = calendar::calendars(client, self.pacer, &self.user.id, self.on_throttle())
            .await
            .map_err(graph_item_error)?;
        self.report_bad("calendars", &listed.bad);
        for cal in &listed.items {
            let name = cal.name.clone().unwrap_or_else(|| "Calendar".into());
            let open = Open {
                source_id: &cal.id,
                label: format!("calendars/{name}"),
                target: self.open(mailbox, GroupwareKind::Calendar, &[name], &cal.id)?,
            };
            self.stats.folders += 1;
            let mut pages = calendar::events(client, self.pacer, &self.user.id, &cal.id);
            while let Some(page) = self.next_page(&mut pages, &open.label).await? {
                for event in page {
                    if self.run.control.checkpoint().await.is_err() {
                        return Ok(());
                    }
                    let id = event.id.clone();
                    let converted = self.event_resource(event).await;
                    if self.write(&open, &id, converted).await? {
                        self.stats.events += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// A single event or a whole series as one resource; `None` for listed occurrences,
    /// which belong to their master's resource.
    async fn event_resource(&self, event: Event) -> Result<Option<Resource>, ItemError> {
        let user = &self.user.id;
        let client = self.run.client;
        let event = match event.kind.as_deref() {
            Some("seriesMaster") => {
                calendar::series(client, self.pacer, user, &event.id, self.on_throttle())
                    .await
                    .map_err(graph_item_error)?
            }
            Some("occurrence" | "exception") => return Ok(None),
            _ => event,
        };
        let attachments = if event.has_attachments == Some(true) {
            calendar::attachments(client, self.pacer, user, &event.id, self.on_throttle())
                .await
                .map_err(graph_item_error)?
                .items
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
            source_id: event.id,
            uid: resource.uid,
            text: resource.text,
        }))
    }

    async fn contacts(&mut self, mailbox: &crate::dest::folder::Mailbox) -> Result<(), ItemError> {
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
            let open = Open {
                source_id,
                label,
                target: self.open(mailbox, GroupwareKind::Contacts, &folder.path, source_id)?,
            };
            self.stats.folders += 1;
            let mut pages =
                contacts::contacts(client, self.pacer, &self.user.id, folder.id.as_deref());
            while let Some(page) = self.next_page(&mut pages, &open.label).await? {
                for contact in page {
                    if self.run.control.checkpoint().await.is_err() {
                        return Ok(());
                    }
                    let photo = match contacts::photo(
                        client,
                        self.pacer,
                        &self.user.id,
                        &contact.id,
                        self.on_throttle(),
                    )
                    .await
                    {
                        Ok(photo) => photo,
                        Err(contacts::PhotoError::Graph(e)) if e.class() == ErrorClass::Fatal => {
                            return Err(ItemError::Fatal(EngineError::Source(e)))
                        }
                        Err(e) => {
                            // The contact is worth more than its picture: migrate it without.
                            tracing::info!(contact = %contact.id, reason = %e, "contact photo left out");
                            None
                        }
                    };
                    let converted = to_vcard(
                        &contact,
                        photo.as_ref().map(|(t, b)| (*t, b.as_slice())),
                        VCardVersion::V3_0,
                    )
                    .map(|card| {
                        self.log_notes(&contact.id, &card.notes);
                        Some(Resource {
                            source_id: contact.id.clone(),
                            uid: card.uid,
                            text: card.text,
                        })
                    })
                    .map_err(ItemError::from);
                    if self.write(&open, &contact.id, converted).await? {
                        self.stats.contacts += 1;
                    }
                }
            }
        }
        Ok(())
    }

    async fn tasks(&mut self, mailbox: &crate::dest::folder::Mailbox) -> Result<(), ItemError> {
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
            let open = Open {
                source_id: &list.id,
                label: format!("tasks/{name}"),
                target: self.open(mailbox, GroupwareKind::Tasks, &[name], &list.id)?,
            };
            self.stats.folders += 1;
            let mut pages = todo::tasks(client, self.pacer, &self.user.id, &list.id);
            while let Some(page) = self.next_page(&mut pages, &open.label).await? {
                for task in page {
                    if self.run.control.checkpoint().await.is_err() {
                        return Ok(());
                    }
                    let converted = to_vtodo(&task)
                        .map(|r| {
                            self.log_notes(&task.id, &r.notes);
                            Some(Resource {
                                source_id: task.id.clone(),
                                uid: r.uid,
                                text: r.text,
                            })
                        })
                        .map_err(ItemError::from);
                    if self.write(&open, &task.id, converted).await? {
                        self.stats.tasks += 1;
                    }
                }
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
        match next {
            None => Ok(None),
            Some(Ok(page)) => {
                self.report_bad(label, &page.bad);
                Ok(Some(page.items))
            }
            Some(Err(e)) => match graph_item_error(e) {
                ItemError::Skip(reason) => {
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

    /// Writes one converted item unless the journal says this exact version is there; true
    /// when it was written. Per-item problems are reported and counted; only destination-wide
    /// ones are `Err`.
    async fn write(
        &mut self,
        open: &Open<'_>,
        id: &str,
        converted: Result<Option<Resource>, ItemError>,
    ) -> Result<bool, ItemError> {
        let resource = match converted {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(false),
            Err(ItemError::Skip(reason)) => {
                self.record_failed(open, id, &reason)?;
                self.fail(&open.label, id, reason);
                return Ok(false);
            }
            Err(fatal) => return Err(fatal),
        };
        let hash = hex::encode(Sha256::digest(resource.text.as_bytes()));
        let size = resource.text.len() as u64;
        let user = &self.user.id;
        if let Some(j) = self.run.journal {
            let known = j
                .journal
                .item(user, &resource.source_id)
                .map_err(journal_error)?;
            if known.is_some_and(|r| {
                r.state == ItemState::Done
                    && r.hash.as_deref() == Some(hash.as_str())
                    && r.dest_folder == open.label
            }) {
                self.stats.skipped += 1;
                self.done(0, true);
                return Ok(false);
            }
            j.journal
                .record_intent(self.target(open, &resource.source_id), j.run)
                .map_err(journal_error)?;
        }
        let written = match &open.target {
            Collection::Dir(dir) => dir.put(&resource.uid, resource.text.as_bytes()),
        };
        let dest: DestRef = match written {
            Ok(dest) => dest,
            Err(source) => {
                let path = match &open.target {
                    Collection::Dir(dir) => dir.path().display().to_string(),
                };
                return Err(ItemError::Fatal(EngineError::Destination { path, source }));
            }
        };
        if let Some(j) = self.run.journal {
            j.journal
                .record_done(user, &resource.source_id, &dest.0, size, Some(&hash))
                .map_err(journal_error)?;
        }
        self.stats.bytes += size;
        self.done(size, false);
        Ok(true)
    }

    fn target<'t>(&'t self, open: &'t Open<'_>, source_id: &'t str) -> ItemTarget<'t> {
        ItemTarget {
            user_id: &self.user.id,
            source_id,
            folder_id: open.source_id,
            dest_folder: &open.label,
        }
    }

    fn record_failed(&self, open: &Open<'_>, id: &str, reason: &str) -> Result<(), ItemError> {
        if let Some(j) = self.run.journal {
            j.journal
                .record_intent(self.target(open, id), j.run)
                .and_then(|()| j.journal.record_failed(&self.user.id, id, reason))
                .map_err(journal_error)?;
        }
        Ok(())
    }

    fn done(&self, bytes: u64, skipped: bool) {
        self.run.reporter.report(ProgressEvent::ItemDone {
            user: self.address.to_string(),
            bytes,
            skipped,
        });
    }
}

fn journal_error(e: crate::journal::JournalError) -> ItemError {
    ItemError::Fatal(EngineError::Journal(e))
}
