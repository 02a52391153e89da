//! One mailbox's mail: folder tree, then every folder page by page, up to the pacer's
//! in-flight limit of messages at a time, streamed from Graph into the destination.
//!
//! Per message: skip it if the journal or the destination says it is already there;
//! otherwise record the intent, write, and record the destination reference.
//! - Local folder: streamed straight into the Maildir (`tmp/` then `cur/`); the file name's key
//!   tells whether it is there.
//! - IMAP: spooled to a temporary file (APPEND needs the length first), then the server is
//!   asked for the message's fingerprint before appending, so neither a lost journal, a crash
//!   between APPEND and journal write, nor mail already in the account makes a duplicate.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Mutex;

use super::spool::Spool;
use super::{EngineError, RunControl, Store};
use crate::convert::flags::MailFlags;
use crate::dest::folder::{maildir_folder_names, Folder, Mailbox};
use crate::dest::imap::{ImapError, ImapMailbox, ImapRef, MessageFingerprint};
use crate::dest::DestRef;
use crate::error::{Classify, ErrorClass};
use crate::graph::client::{GraphClient, GraphError};
use crate::graph::mail::{folder_tree, messages, mime_url, FolderNode};
use crate::graph::types::{MessageMeta, User};
use crate::graph::{Pacer, PacerSettings};
use crate::journal::{ItemState, ItemTarget, Journal};
use crate::progress::{ProgressEvent, Reporter, Stats};

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
    pub settings: PacerSettings,
}

/// How one message ended when it did not arrive.
enum ItemError {
    Cancelled,
    Skip(String),
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
}

/// The user's destination, opened.
enum Target {
    Maildir(Mailbox, Vec<String>),
    Imap(Box<Mutex<ImapMailbox>>, Vec<Result<String, String>>),
}

/// One folder of the destination, opened.
enum FolderTarget<'t> {
    Maildir(Folder),
    Imap(&'t Mutex<ImapMailbox>),
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

impl MailboxRun<'_> {
    /// Migrates one user's mail. Returns `Err` only for failures that would fail every other
    /// mailbox too; anything about this mailbox alone is reported and counted as failed.
    pub(super) async fn migrate(&self, user: &User) -> Result<Stats, EngineError> {
        let address = user.mail.clone().unwrap_or_default();
        let reporter = &self.reporter;
        let pacer = Pacer::new(self.settings.clone());
        let on_throttle = |wait: Duration| {
            reporter.report(ProgressEvent::Throttled {
                user: address.clone(),
                wait_ms: wait.as_millis() as u64,
            })
        };
        let fail = |stats: &mut Stats, folder: &str, item: &str, reason: String| {
            stats.failed += 1;
            reporter.report(ProgressEvent::ItemFailed {
                user: address.clone(),
                folder: folder.to_string(),
                item: item.to_string(),
                reason,
            });
        };
        let finish = |stats: &Stats, state: &str| -> Result<(), EngineError> {
            if let Some(j) = self.journal {
                j.journal.set_user_state(&user.id, &address, state)?;
            }
            reporter.report(ProgressEvent::UserFinished {
                user: address.clone(),
                stats: stats.clone(),
            });
            Ok(())
        };
        let mut stats = Stats::default();

        let tree = folder_tree(self.client, &pacer, &user.id, &on_throttle).await;
        let (nodes, bad_folders) = match tree {
            Ok(tree) => tree,
            Err(e) if e.class() == ErrorClass::Fatal => return Err(EngineError::Source(e)),
            Err(e) => {
                // E.g. a mailbox excluded by an application access policy: this user only.
                fail(&mut stats, "", "(mailbox)", e.to_string());
                finish(&stats, "failed")?;
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
        let target = match self.open_target(&address, &nodes).await? {
            Ok(target) => target,
            Err(reason) => {
                fail(&mut stats, "", "(mailbox)", reason);
                finish(&stats, "failed")?;
                return Ok(stats);
            }
        };
        if let Some(j) = self.journal {
            j.journal.set_user_state(&user.id, &address, "started")?;
        }
        reporter.report(ProgressEvent::UserStarted {
            user: address.clone(),
            folders: nodes.len() as u32,
            messages: nodes.iter().map(|n| n.folder.total_item_count).sum(),
        });

        let mut mailbox_failed = false;
        'folders: for (index, node) in nodes.iter().enumerate() {
            if self.control.checkpoint().await.is_err() {
                break;
            }
            let folder_label = node.path.join("/");
            let (name, mut folder) = match &target {
                Target::Maildir(mailbox, names) => {
                    let name = &names[index];
                    let folder = mailbox
                        .folder(name)
                        .map_err(|e| dest_error(&mailbox.path().join(name), e))?;
                    (name.as_str(), FolderTarget::Maildir(folder))
                }
                Target::Imap(mailbox, names) => match &names[index] {
                    Ok(name) => (name.as_str(), FolderTarget::Imap(mailbox)),
                    Err(reason) => {
                        fail(&mut stats, &folder_label, "(folder)", reason.clone());
                        continue;
                    }
                },
            };
            if let Some(j) = self.journal {
                j.journal
                    .set_folder(&user.id, &node.folder.id, name, None)?;
            }
            stats.folders += 1;
            let mut pages = messages(self.client, &pacer, &user.id, &node.folder.id);
            while let Some(page) = pages.next_page(&on_throttle).await {
                let page = match page {
                    Ok(page) => page,
                    Err(e) if e.class() == ErrorClass::Fatal => return Err(EngineError::Source(e)),
                    Err(e) => {
                        fail(&mut stats, &folder_label, "(folder listing)", e.to_string());
                        continue 'folders;
                    }
                };
                for (id, reason) in page.bad {
                    let reason = format!("malformed message entry: {reason}");
                    fail(&mut stats, &folder_label, &id, reason);
                }
                let mut seen_in_page = HashSet::new();
                let mut todo = Vec::new();
                for meta in page.items {
                    let key = Folder::key_for(&meta.id);
                    if !seen_in_page.insert(key.clone())
                        || self.already_there(&user.id, &meta.id, name, &folder, &key)?
                    {
                        stats.skipped += 1;
                        reporter.report(ProgressEvent::ItemDone {
                            user: address.clone(),
                            bytes: 0,
                            skipped: true,
                        });
                    } else {
                        todo.push((meta, key));
                    }
                }
                let folder_ref = &folder;
                let results: Vec<_> = futures_util::stream::iter(todo)
                    .map(|(meta, key)| {
                        let (pacer, on_throttle) = (&pacer, &on_throttle);
                        async move {
                            let target = ItemTarget {
                                user_id: &user.id,
                                source_id: &meta.id,
                                folder_id: &node.folder.id,
                                dest_folder: name,
                            };
                            self.control
                                .checkpoint()
                                .await
                                .map_err(|_| ItemError::Cancelled)?;
                            if let Some(j) = self.journal {
                                j.journal
                                    .record_intent(target, j.run)
                                    .map_err(|e| ItemError::Fatal(e.into()))?;
                            }
                            let result = match folder_ref {
                                FolderTarget::Maildir(folder) => {
                                    self.copy_to_maildir(
                                        pacer,
                                        folder,
                                        &user.id,
                                        &meta,
                                        &key,
                                        on_throttle,
                                    )
                                    .await
                                }
                                FolderTarget::Imap(mailbox) => {
                                    self.copy_to_imap(
                                        pacer,
                                        mailbox,
                                        name,
                                        &user.id,
                                        &meta,
                                        on_throttle,
                                    )
                                    .await
                                }
                            };
                            if let Some(j) = self.journal {
                                let recorded = match &result {
                                    Ok(c) => j
                                        .journal
                                        .record_done(&user.id, &meta.id, &c.dest.0, c.bytes, None),
                                    Err(ItemError::Skip(reason)) => {
                                        j.journal.record_failed(&user.id, &meta.id, reason)
                                    }
                                    Err(_) => Ok(()),
                                };
                                recorded.map_err(|e| ItemError::Fatal(e.into()))?;
                            }
                            result.map(|copied| (key, copied))
                        }
                    })
                    .buffer_unordered(pacer.settings().max_in_flight.max(1))
                    .collect()
                    .await;
                let mut stop = false;
                for result in results {
                    match result {
                        Ok((key, copied)) => {
                            if let FolderTarget::Maildir(folder) = &mut folder {
                                folder.remember(key);
                            }
                            if copied.existed {
                                stats.skipped += 1;
                            } else {
                                stats.messages += 1;
                                stats.bytes += copied.bytes;
                            }
                            reporter.report(ProgressEvent::ItemDone {
                                user: address.clone(),
                                bytes: if copied.existed { 0 } else { copied.bytes },
                                skipped: copied.existed,
                            });
                        }
                        Err(ItemError::Cancelled) => stop = true,
                        Err(ItemError::Skip(reason)) => fail(&mut stats, &folder_label, "", reason),
                        Err(ItemError::Mailbox(reason)) => {
                            if !mailbox_failed {
                                fail(&mut stats, &folder_label, "(mailbox)", reason);
                            }
                            mailbox_failed = true;
                            stop = true;
                        }
                        Err(ItemError::Fatal(e)) => return Err(e),
                    }
                }
                if stop {
                    break 'folders;
                }
            }
        }
        if let Target::Imap(mailbox, _) = target {
            mailbox.into_inner().logout().await;
        }
        let state = if mailbox_failed {
            "failed"
        } else if self.control.is_cancelled() {
            "stopped"
        } else {
            "finished"
        };
        finish(&stats, state)?;
        Ok(stats)
    }

    /// Opens the user's destination and maps the folder tree onto it. The inner `Err` is a
    /// reason this mailbox alone cannot be migrated.
    async fn open_target(
        &self,
        address: &str,
        nodes: &[FolderNode],
    ) -> Result<Result<Target, String>, EngineError> {
        match self.store {
            Store::Folder(store) => {
                let mailbox = store
                    .mailbox(address)
                    .map_err(|e| dest_error(std::path::Path::new(address), e))?;
                Ok(Ok(Target::Maildir(mailbox, maildir_folder_names(nodes))))
            }
            Store::Imap { settings, logins } => {
                let Some(login) = logins.login_for(address) else {
                    return Ok(Err(format!(
                        "no destination password for {address} in the accounts file"
                    )));
                };
                let mut mailbox = match ImapMailbox::connect(settings, &login).await {
                    Ok(m) => m,
                    Err(e) => return Ok(Err(format!("cannot open the destination mailbox: {e}"))),
                };
                let names = match mailbox.ensure_folders(nodes).await {
                    Ok(names) => names,
                    Err(e) => return Ok(Err(format!("cannot create the folders: {e}"))),
                };
                let names = names
                    .into_iter()
                    .map(|r| r.map_err(|e| e.to_string()))
                    .collect();
                Ok(Ok(Target::Imap(Box::new(Mutex::new(mailbox)), names)))
            }
        }
    }

    /// True when the message is already at the destination. For a Maildir the destination is
    /// asked (so a lost journal causes no duplicates) and a pending intent it confirms is
    /// closed; for IMAP a `done` journal record counts, and everything else is checked
    /// against the server when it is copied.
    fn already_there(
        &self,
        user_id: &str,
        source_id: &str,
        dest_folder: &str,
        folder: &FolderTarget<'_>,
        key: &str,
    ) -> Result<bool, EngineError> {
        let record = match self.journal {
            Some(j) => j.journal.item(user_id, source_id)?,
            None => None,
        };
        let done_here = record
            .as_ref()
            .is_some_and(|r| r.state == ItemState::Done && r.dest_folder == dest_folder);
        match folder {
            FolderTarget::Maildir(folder) => {
                let present = folder.contains(key);
                if let (Some(j), Some(r), true) = (self.journal, &record, present) {
                    if r.state != ItemState::Done && r.dest_folder == dest_folder {
                        j.journal.record_done(
                            user_id,
                            source_id,
                            key,
                            r.size.unwrap_or(0),
                            None,
                        )?;
                    }
                }
                Ok(present)
            }
            FolderTarget::Imap(_) => Ok(done_here),
        }
    }

    /// Streams one message's MIME into the Maildir folder and commits it.
    async fn copy_to_maildir(
        &self,
        pacer: &Pacer,
        folder: &Folder,
        user_id: &str,
        meta: &MessageMeta,
        key: &str,
        on_throttle: &(impl Fn(Duration) + Sync),
    ) -> Result<Copied, ItemError> {
        let skip = |what: String| ItemError::Skip(format!("message {}: {what}", meta.id));
        let mut delivery = folder
            .deliver(key)
            .await
            .map_err(|e| ItemError::Fatal(dest_error(std::path::Path::new(key), e)))?;
        let url = mime_url(self.client, user_id, &meta.id);
        let bytes = match self
            .client
            .download(pacer, &url, &mut delivery, on_throttle)
            .await
        {
            Ok(bytes) => bytes,
            Err(e) => {
                delivery.abandon().await;
                return Err(graph_failure(e, skip));
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
        let dest = delivery
            .commit(&MailFlags::from_graph(meta), received)
            .await
            .map_err(|e| ItemError::Fatal(dest_error(std::path::Path::new(key), e)))?;
        Ok(Copied {
            bytes,
            dest,
            existed: false,
        })
    }

    /// Spools one message, then appends it over IMAP unless the server already has it.
    async fn copy_to_imap(
        &self,
        pacer: &Pacer,
        mailbox: &Mutex<ImapMailbox>,
        folder: &str,
        user_id: &str,
        meta: &MessageMeta,
        on_throttle: &(impl Fn(Duration) + Sync),
    ) -> Result<Copied, ItemError> {
        let skip = |what: String| ItemError::Skip(format!("message {}: {what}", meta.id));
        let spool_error =
            |e: std::io::Error| ItemError::Fatal(dest_error(&std::env::temp_dir(), e));
        let mut spool = Spool::new(None).map_err(spool_error)?;
        let url = mime_url(self.client, user_id, &meta.id);
        if let Err(e) = self
            .client
            .download(pacer, &url, &mut spool, on_throttle)
            .await
        {
            return Err(graph_failure(e, skip));
        }
        if spool.is_empty() {
            return Err(skip("Graph returned an empty MIME body".into()));
        }
        let len = spool.len();
        let received = meta
            .received()
            .unwrap_or_else(time::OffsetDateTime::now_utc);
        let fingerprint =
            MessageFingerprint::read(spool.reader().await.map_err(spool_error)?, len, received)
                .await
                .map_err(spool_error)?;
        let flags = MailFlags::from_graph(meta);
        let imap_failure = |e: ImapError| match e.class() {
            ErrorClass::SkipItem => skip(e.to_string()),
            _ => ItemError::Mailbox(format!("the destination mailbox failed: {e}")),
        };
        // A retried APPEND may have been stored before the connection dropped: every attempt
        // asks the server first. Reconnecting waits in the mailbox's own pacer.
        let mut attempts = 0;
        let mut mailbox = mailbox.lock().await;
        loop {
            attempts += 1;
            let retry = |e: &ImapError| e.class() == ErrorClass::Retry && attempts < 3;
            match mailbox.find_existing(folder, &fingerprint).await {
                Ok(Some(uid)) => {
                    let validity = mailbox.uid_validity(folder).await.ok().flatten();
                    let dest = ImapRef {
                        folder: folder.to_string(),
                        uid: validity.map(|v| (v, uid)),
                    }
                    .to_dest_ref();
                    return Ok(Copied {
                        bytes: len,
                        dest,
                        existed: true,
                    });
                }
                Ok(None) => {}
                Err(e) if retry(&e) => continue,
                Err(e) => return Err(imap_failure(e)),
            }
            let body = spool.reader().await.map_err(spool_error)?;
            match mailbox.append(folder, body, len, &flags, received).await {
                Ok(dest) => {
                    return Ok(Copied {
                        bytes: len,
                        dest,
                        existed: false,
                    })
                }
                Err(e) if retry(&e) => continue,
                Err(e) => return Err(imap_failure(e)),
            }
        }
    }
}
