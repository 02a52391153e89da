//! Verification: does the destination hold what the source holds?
//!
//! The users checked are the run's selection: members with an Exchange mailbox (guests and
//! users whose mailbox Graph cannot reach are left out, as the run leaves them out).
//!
//! Per user and mail folder, the source's messages (listed again from Graph: ids only, no
//! content) are compared with the journal and the destination: a message is *present* when the
//! journal records it as migrated and the destination still has that copy (the IMAP UID under
//! the same UIDVALIDITY, or the Maildir file); *missing* when it was migrated but the copy is
//! gone (deleted at the destination behind the migrator's back); *not migrated* when the journal
//! has no completed copy. Calendar, contact and task items the journal records as written are
//! checked at the destination the same way (the file, or the CalDAV/CardDAV resource).
//!
//! A mailbox, or part of one, that the runs reported not migrated by IceWarp's answer (a
//! refused login as a resource account) carries the runs' reason and is not logged in to for
//! that part: nothing of it was written, so it is neither verified nor a failure.
//!
//! Verification reads only; it never writes to the destination or the journal.

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use serde::Serialize;

use super::mailboxes::{read_facts, Mailbox};
use super::{
    signed_in_mailboxes, Destination, EngineError, IceWarpDestination, ImapLogins, RunOptions,
};
use crate::config::SourceConfig;
use crate::dest::dav::{DavAccount, DavLogin, DavSettings};
use crate::dest::folder::{Folder, FolderStore};
use crate::dest::imap::{ImapMailbox, ImapRef};
use crate::dest::provision::icewarp::{RESOURCE_DAV_LOGIN_REFUSED, RESOURCE_LOGIN_REFUSED};
use crate::dest::DestRef;
use crate::graph::client::GraphClient;
use crate::graph::mail::{folder_tree, messages};
use crate::graph::types::User;
use crate::journal::{ItemRecord, ItemState, Journal, UserRecord};

use crate::secrets::Secret;

/// What verification found.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub users: Vec<UserVerification>,
}

impl Verification {
    /// True when every source item is at the destination.
    pub fn is_clean(&self) -> bool {
        self.users.iter().all(|u| u.problem.is_none())
            && self
                .users
                .iter()
                .flat_map(|u| &u.folders)
                .all(|f| f.missing.is_empty() && f.not_migrated.is_empty())
    }
}

/// One user's result.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserVerification {
    pub user: String,
    pub folders: Vec<FolderVerification>,
    /// Why this user could not be verified (the source or the destination could not be read).
    pub problem: Option<String>,
    /// Why the runs left this mailbox, or a part of it, out by the server's answer (as they
    /// reported it): nothing of that part was written, so there is nothing to compare, and it
    /// is not a verification failure.
    pub not_migrated: Option<String>,
}

/// One folder or collection's result.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FolderVerification {
    /// `mail`, `event`, `contact` or `task`.
    pub kind: String,
    /// The source folder path (mail) or the destination collection (groupware).
    pub folder: String,
    /// Items at the source (mail) or written by the migrator (groupware).
    pub source: u64,
    pub present: u64,
    /// Migrated, but no longer at the destination: source item ids.
    pub missing: Vec<String>,
    /// Not (yet) migrated: source item ids.
    pub not_migrated: Vec<String>,
}

/// Compares the source, the runs' `journal` and the destination.
pub async fn verify(
    source: &SourceConfig,
    secret: &Secret,
    destination: &Destination,
    journal: &Journal,
    options: &RunOptions,
) -> Result<Verification, EngineError> {
    let (client, members) = signed_in_mailboxes(source, secret, options).await?;
    // The run's selection: members (no guests) with an Exchange mailbox; the others were
    // reported as not migrated, not checked here.
    let mailboxes: Vec<Mailbox> = read_facts(&client, &options.pacer, members)
        .await
        .into_iter()
        .filter(|m| !m.facts.no_mailbox)
        .collect();
    let icewarp_logins = match destination {
        Destination::IceWarp(d) => {
            let users: Vec<&User> = mailboxes.iter().map(|m| &m.user).collect();
            Some(icewarp_logins(d, destination, &users).await?)
        }
        _ => None,
    };
    // What the runs recorded as left out, by user id.
    let left_out: HashMap<String, LeftOut> = journal
        .users()?
        .into_iter()
        .filter_map(|u| Some((u.user_id.clone(), LeftOut::of(&u)?)))
        .collect();
    let results: Vec<Result<UserVerification, EngineError>> = futures_util::stream::iter(mailboxes)
        .map(|mailbox| {
            let client = &client;
            let icewarp_logins = icewarp_logins.as_ref();
            let left_out = left_out.get(&mailbox.user.id).copied();
            async move {
                verify_user(
                    client,
                    journal,
                    destination,
                    (icewarp_logins, left_out),
                    options,
                    &mailbox,
                )
                .await
            }
        })
        .buffer_unordered(options.parallel_mailboxes.max(1))
        .collect()
        .await;
    let mut users = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    users.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(Verification { users })
}

/// The logins the run uses at IceWarp: each account's login name (`U_Login`, read from the
/// admin API as the run reads it), so verification works under the username login policy.
async fn icewarp_logins(
    d: &IceWarpDestination,
    destination: &Destination,
    mailboxes: &[&User],
) -> Result<ImapLogins, EngineError> {
    let provisioner = super::icewarp::connect(d).await?;
    let addresses: Vec<String> = mailboxes
        .iter()
        .filter_map(|u| u.mail.as_deref())
        .map(|mail| destination_address(destination, mail))
        .collect();
    let names = provisioner
        .login_names(&addresses)
        .await
        .map_err(EngineError::Provision)?;
    super::icewarp::logins(d, names, false)
}

/// What the runs left out of a mailbox by IceWarp's answer (the journal's record of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeftOut {
    /// The whole mailbox: a login as the resource account was refused.
    Mailbox,
    /// Its calendars, contacts and tasks: a WebDAV login as the resource was refused.
    Groupware,
}

impl LeftOut {
    fn of(user: &UserRecord) -> Option<Self> {
        if user.state == RESOURCE_LOGIN_REFUSED {
            Some(LeftOut::Mailbox)
        } else if user.note.as_deref() == Some(RESOURCE_DAV_LOGIN_REFUSED) {
            Some(LeftOut::Groupware)
        } else {
            None
        }
    }

    fn reason(self) -> &'static str {
        match self {
            LeftOut::Mailbox => RESOURCE_LOGIN_REFUSED,
            LeftOut::Groupware => RESOURCE_DAV_LOGIN_REFUSED,
        }
    }
}

/// `left_out`: what the runs left out of this mailbox; it is not logged in to for that part
/// (a refused login again proves nothing, and failed logins count towards a lockout).
async fn verify_user(
    client: &GraphClient,
    journal: &Journal,
    destination: &Destination,
    (icewarp_logins, left_out): (Option<&ImapLogins>, Option<LeftOut>),
    options: &RunOptions,
    mailbox: &Mailbox,
) -> Result<UserVerification, EngineError> {
    let (user, pacer) = (&mailbox.user, &mailbox.pacer);
    let address = destination_address(destination, user.mail.as_deref().unwrap_or_default());
    let mut result = UserVerification {
        user: address.clone(),
        not_migrated: left_out.map(|l| l.reason().to_string()),
        ..UserVerification::default()
    };
    if left_out == Some(LeftOut::Mailbox) {
        return Ok(result);
    }
    let with_dav = left_out != Some(LeftOut::Groupware);
    let done: HashMap<String, ItemRecord> = journal
        .items_in_state(&user.id, ItemState::Done)?
        .into_iter()
        .map(|r| (r.source_id.clone(), r))
        .collect();
    let opened = DestinationCheck::open(destination, icewarp_logins, &address, with_dav).await;
    let mut dest = match opened {
        Ok(d) => d,
        Err(problem) => {
            result.problem = Some(problem);
            return Ok(result);
        }
    };

    let nodes = match folder_tree(client, pacer, &user.id, |_| {}).await {
        Ok((nodes, _bad)) => nodes,
        Err(e) => {
            result.problem = Some(format!("cannot list the source folders: {e}"));
            return Ok(result);
        }
    };
    for node in &nodes {
        let mut folder = FolderVerification {
            kind: "mail".into(),
            folder: node.path.join("/"),
            ..FolderVerification::default()
        };
        let mut pages = messages(client, pacer, &user.id, &node.folder.id);
        while let Some(page) = pages.next_page(|_| {}).await {
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    result.problem = Some(format!("cannot list {}: {e}", folder.folder));
                    break;
                }
            };
            for message in page.items {
                let migrated = done.get(&message.id).filter(|r| r.kind == "mail");
                if migrated.is_none()
                    && !options
                        .limits
                        .keeps_mail(message.received_date_time.as_deref())
                {
                    // Left out by the date limits: the run was not meant to copy it.
                    continue;
                }
                folder.source += 1;
                match migrated {
                    None => folder.not_migrated.push(message.id),
                    Some(record) => match dest.holds_mail(record).await {
                        Ok(true) => folder.present += 1,
                        Ok(false) => folder.missing.push(message.id),
                        Err(problem) => {
                            result.problem = Some(problem);
                            break;
                        }
                    },
                }
            }
        }
        result.folders.push(folder);
    }

    let mut groupware: HashMap<(String, String), FolderVerification> = HashMap::new();
    for record in done.values().filter(|r| r.kind != "mail") {
        let entry = groupware
            .entry((record.kind.clone(), record.dest_folder.clone()))
            .or_insert_with(|| FolderVerification {
                kind: record.kind.clone(),
                folder: record.dest_folder.clone(),
                ..FolderVerification::default()
            });
        entry.source += 1;
        match dest.holds_resource(record).await {
            Ok(true) => entry.present += 1,
            Ok(false) => entry.missing.push(record.source_id.clone()),
            Err(problem) => {
                result.problem = Some(problem);
                break;
            }
        }
    }
    let mut groupware: Vec<_> = groupware.into_values().collect();
    groupware.sort_by(|a, b| (&a.kind, &a.folder).cmp(&(&b.kind, &b.folder)));
    result.folders.extend(groupware);
    dest.close().await;
    Ok(result)
}

/// One user's destination, opened for reading.
enum DestinationCheck {
    Folder {
        mailbox: crate::dest::folder::Mailbox,
        folders: HashMap<String, Folder>,
        /// Every groupware file name under the user's folder.
        files: Option<HashSet<String>>,
    },
    Imap {
        mailbox: Box<ImapMailbox>,
        /// Per folder: its UIDVALIDITY and UIDs.
        folders: HashMap<String, (Option<u32>, HashSet<u32>)>,
        dav: Option<Box<DavAccount>>,
    },
}

impl DestinationCheck {
    /// `icewarp_logins`: the logins an IceWarp destination's run uses ([`icewarp_logins`]);
    /// `with_dav`: whether to log in to its CalDAV/CardDAV server too.
    async fn open(
        destination: &Destination,
        icewarp_logins: Option<&ImapLogins>,
        address: &str,
        with_dav: bool,
    ) -> Result<Self, String> {
        let (settings, logins, dav) = match destination {
            Destination::Folder(root) => {
                let mailbox = FolderStore::open(root)
                    .and_then(|store| store.mailbox(address))
                    .map_err(|e| format!("cannot read the destination folder: {e}"))?;
                return Ok(DestinationCheck::Folder {
                    mailbox,
                    folders: HashMap::new(),
                    files: None,
                });
            }
            Destination::Imap {
                settings,
                logins,
                dav,
            } => (settings, logins, dav.as_ref()),
            Destination::IceWarp(d) => {
                let logins =
                    icewarp_logins.ok_or("the IceWarp logins were not read (a bug)".to_string())?;
                (&d.imap, logins, Some(&d.dav))
            }
        };
        let login = logins
            .login_for(address)
            .ok_or_else(|| format!("no destination password for {address}"))?;
        let mailbox = ImapMailbox::connect(settings, &login)
            .await
            .map_err(|e| format!("cannot log in to the destination: {e}"))?;
        let dav = match (dav.filter(|_| with_dav), logins.own_password(address)) {
            (Some(dav), Some(password)) => Some(Box::new(
                open_dav(dav, address, logins.login_name(address), password).await?,
            )),
            _ => None,
        };
        Ok(DestinationCheck::Imap {
            mailbox: Box::new(mailbox),
            folders: HashMap::new(),
            dav,
        })
    }

    async fn holds_mail(&mut self, record: &ItemRecord) -> Result<bool, String> {
        match self {
            DestinationCheck::Folder {
                mailbox, folders, ..
            } => {
                if !folders.contains_key(&record.dest_folder) {
                    let folder = mailbox
                        .folder(&record.dest_folder)
                        .map_err(|e| format!("cannot read {}: {e}", record.dest_folder))?;
                    folders.insert(record.dest_folder.clone(), folder);
                }
                Ok(folders
                    .get(&record.dest_folder)
                    .is_some_and(|f| f.contains(&Folder::key_for(&record.source_id))))
            }
            DestinationCheck::Imap {
                mailbox, folders, ..
            } => {
                let Some(dest) = &record.dest_ref else {
                    return Ok(false);
                };
                let ImapRef { folder, uid } = ImapRef::from_dest_ref(&DestRef(dest.clone()));
                let Some((validity, uid)) = uid else {
                    // No UIDPLUS at append time: the copy cannot be named, only trusted.
                    return Ok(true);
                };
                if !folders.contains_key(&folder) {
                    let current = mailbox
                        .uid_validity(&folder)
                        .await
                        .map_err(|e| format!("cannot open {folder}: {e}"))?;
                    let uids = mailbox
                        .uids(&folder)
                        .await
                        .map_err(|e| format!("cannot list {folder}: {e}"))?;
                    folders.insert(folder.clone(), (current, uids.into_iter().collect()));
                }
                Ok(folders.get(&folder).is_some_and(|(current, uids)| {
                    *current == Some(validity) && uids.contains(&uid)
                }))
            }
        }
    }

    async fn holds_resource(&mut self, record: &ItemRecord) -> Result<bool, String> {
        let Some(dest) = &record.dest_ref else {
            return Ok(false);
        };
        match self {
            DestinationCheck::Folder { mailbox, files, .. } => {
                if files.is_none() {
                    *files = Some(file_names(mailbox.path()));
                }
                Ok(files.as_ref().is_some_and(|f| f.contains(dest)))
            }
            DestinationCheck::Imap { dav: Some(dav), .. } => dav
                .get(&DestRef(dest.clone()))
                .await
                .map(|item| item.is_some())
                .map_err(|e| format!("cannot read {dest}: {e}")),
            DestinationCheck::Imap { dav: None, .. } => Err(
                "calendars, contacts and tasks cannot be checked: no CalDAV/CardDAV login".into(),
            ),
        }
    }

    async fn close(self) {
        if let DestinationCheck::Imap { mailbox, .. } = self {
            mailbox.logout().await;
        }
    }
}

/// `login`: the name `address` logs in with (its login name at IceWarp, as in the run).
async fn open_dav(
    settings: &DavSettings,
    address: &str,
    login: String,
    password: Secret,
) -> Result<DavAccount, String> {
    DavAccount::connect(settings, address, DavLogin::new(login, password))
        .await
        .map_err(|e| format!("cannot log in to the CalDAV/CardDAV server: {e}"))
}

/// Where a user's data went: IceWarp's domain map renames domains; elsewhere the address is
/// kept.
fn destination_address(destination: &Destination, source: &str) -> String {
    let Destination::IceWarp(d) = destination else {
        return source.to_string();
    };
    match source.rsplit_once('@') {
        Some((local, domain)) => match d.rules.domain_map.get(&domain.to_lowercase()) {
            Some(mapped) => format!("{local}@{mapped}"),
            None => source.to_string(),
        },
        None => source.to_string(),
    }
}

/// The names of the groupware files under a user's folder (`calendars/`, `contacts/`,
/// `tasks/`).
fn file_names(root: &std::path::Path) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut stack: Vec<_> = ["calendars", "contacts", "tasks"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                names.insert(name.to_string());
            }
        }
    }
    names
}
