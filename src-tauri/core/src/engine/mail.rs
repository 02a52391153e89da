//! One mailbox's mail: folder tree, then every folder page by page, up to the pacer's
//! in-flight limit of messages at a time, streamed from Graph straight into the destination.
//!
//! Per message: skip it if the destination already holds it (or the journal says it was
//! written there); otherwise record the intent, write, and record the destination reference.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::{EngineError, RunControl};
use crate::convert::flags::MailFlags;
use crate::dest::folder::{maildir_folder_names, Folder, FolderStore};
use crate::dest::DestRef;
use crate::error::{Classify, ErrorClass};
use crate::graph::client::{GraphClient, GraphError};
use crate::graph::mail::{folder_tree, messages, mime_url};
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
    pub store: &'a FolderStore,
    pub journal: Option<RunJournal<'a>>,
    pub reporter: Arc<dyn Reporter>,
    pub control: RunControl,
    pub settings: PacerSettings,
}

/// How one message ended when it did not arrive.
enum ItemError {
    Cancelled,
    Skip(String),
    Fatal(EngineError),
}

fn dest_error(path: &std::path::Path, source: std::io::Error) -> EngineError {
    EngineError::Destination {
        path: path.display().to_string(),
        source,
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
        let names = maildir_folder_names(&nodes);
        let mailbox = self
            .store
            .mailbox(&address)
            .map_err(|e| dest_error(std::path::Path::new(&address), e))?;
        if let Some(j) = self.journal {
            j.journal.set_user_state(&user.id, &address, "started")?;
        }
        reporter.report(ProgressEvent::UserStarted {
            user: address.clone(),
            folders: nodes.len() as u32,
            messages: nodes.iter().map(|n| n.folder.total_item_count).sum(),
        });

        'folders: for (node, name) in nodes.iter().zip(&names) {
            if self.control.checkpoint().await.is_err() {
                break;
            }
            let folder_label = node.path.join("/");
            let mut folder = mailbox
                .folder(name)
                .map_err(|e| dest_error(&mailbox.path().join(name), e))?;
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
                    fail(
                        &mut stats,
                        &folder_label,
                        &id,
                        format!("malformed message entry: {reason}"),
                    );
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
                            let result = copy_message(
                                self.client,
                                pacer,
                                folder_ref,
                                target,
                                &meta,
                                &key,
                                on_throttle,
                            )
                            .await;
                            if let Some(j) = self.journal {
                                let recorded = match &result {
                                    Ok((bytes, dest)) => j
                                        .journal
                                        .record_done(&user.id, &meta.id, &dest.0, *bytes, None),
                                    Err(ItemError::Skip(reason)) => {
                                        j.journal.record_failed(&user.id, &meta.id, reason)
                                    }
                                    Err(_) => Ok(()),
                                };
                                recorded.map_err(|e| ItemError::Fatal(e.into()))?;
                            }
                            result.map(|(bytes, _)| (key, bytes))
                        }
                    })
                    .buffer_unordered(pacer.settings().max_in_flight.max(1))
                    .collect()
                    .await;
                let mut cancelled = false;
                for result in results {
                    match result {
                        Ok((key, bytes)) => {
                            folder.remember(key);
                            stats.messages += 1;
                            stats.bytes += bytes;
                            reporter.report(ProgressEvent::ItemDone {
                                user: address.clone(),
                                bytes,
                                skipped: false,
                            });
                        }
                        Err(ItemError::Cancelled) => cancelled = true,
                        Err(ItemError::Skip(reason)) => fail(&mut stats, &folder_label, "", reason),
                        Err(ItemError::Fatal(e)) => return Err(e),
                    }
                }
                if cancelled {
                    break 'folders;
                }
            }
        }
        let state = if self.control.is_cancelled() {
            "stopped"
        } else {
            "finished"
        };
        finish(&stats, state)?;
        Ok(stats)
    }

    /// True when the message is already at the destination. The destination is the authority
    /// (so a lost journal causes no duplicates); a pending intent it confirms is closed here.
    fn already_there(
        &self,
        user_id: &str,
        source_id: &str,
        dest_folder: &str,
        folder: &Folder,
        key: &str,
    ) -> Result<bool, EngineError> {
        let present = folder.contains(key);
        if let Some(j) = self.journal {
            if let Some(record) = j.journal.item(user_id, source_id)? {
                if present && record.state != ItemState::Done && record.dest_folder == dest_folder {
                    j.journal.record_done(
                        user_id,
                        source_id,
                        key,
                        record.size.unwrap_or(0),
                        None,
                    )?;
                }
            }
        }
        Ok(present)
    }
}

/// Streams one message's MIME into the folder and commits it with its flags and date.
async fn copy_message(
    client: &GraphClient,
    pacer: &Pacer,
    folder: &Folder,
    target: ItemTarget<'_>,
    meta: &MessageMeta,
    key: &str,
    on_throttle: &(impl Fn(Duration) + Sync),
) -> Result<(u64, DestRef), ItemError> {
    let skip = |what: String| ItemError::Skip(format!("message {}: {what}", meta.id));
    let mut delivery = folder
        .deliver(key)
        .await
        .map_err(|e| ItemError::Fatal(dest_error(std::path::Path::new(key), e)))?;
    let url = mime_url(client, target.user_id, &meta.id);
    let bytes = match client
        .download(pacer, &url, &mut delivery, on_throttle)
        .await
    {
        Ok(bytes) => bytes,
        Err(e) => {
            delivery.abandon().await;
            return Err(match e.class() {
                ErrorClass::Fatal => match e {
                    GraphError::Sink { url, source } => {
                        ItemError::Fatal(EngineError::Destination { path: url, source })
                    }
                    other => ItemError::Fatal(EngineError::Source(other)),
                },
                _ => skip(e.to_string()),
            });
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
    Ok((bytes, dest))
}
