//! The IceWarp leg of a run: domains and accounts created or merged through the admin API
//! before any data moves, then the logins each mailbox uses.
//!
//! Before planning, each user's `mailboxSettings.userPurpose` says whether it is a shared,
//! room or equipment mailbox (the configured rules apply to those), and, when `groups` asks
//! for them, the tenant's mail-enabled groups and their members are read (Group.Read.All).
//! Directory and settings reads go through the tenant's pacer.
//!
//! A user whose account could not be created or found is not migrated (its data has nowhere
//! safe to go) and is reported with the reason; the others go on. New accounts' generated
//! passwords exist only in the credentials report, which is also where the run reads them back
//! to log in.

use std::collections::{BTreeSet, HashMap};

use futures_util::StreamExt;

use super::plan::domains_of;
use super::{EngineError, IceWarpDestination, ImapLogins, Store};
use crate::config::read_accounts_csv;
use crate::config::GroupRule;
use crate::dest::provision::icewarp::IceWarpProvisioner;
use crate::dest::provision::{
    AccountAction, AccountProvisioner, DirectoryGroup, DirectoryMember, DirectoryUser, MailboxKind,
    ProvisionOutcome, TenantDomain,
};
use crate::graph::types::User;
use crate::graph::users::{self, UserPurpose};
use crate::graph::{GraphClient, GraphError, Pacer};
use crate::progress::{ProgressEvent, Reporter};
use crate::secrets::Secret;

/// What provisioning left for the mail and groupware passes.
pub(super) struct Provisioned {
    pub store: Store,
    /// The users to migrate, each with `mail` set to its destination address.
    pub mailboxes: Vec<User>,
    /// Users that could not be provisioned (reported already).
    pub failed: u64,
    pub outcome: ProvisionOutcome,
}

/// Signs in to the admin API (a wrong password stops the run here, before any data moves)
/// and reports the server settings that would slow or stop a migration.
pub(super) async fn connect(d: &IceWarpDestination) -> Result<IceWarpProvisioner, EngineError> {
    let provisioner = IceWarpProvisioner::connect(&d.api, d.admin_password.clone())
        .await
        .map_err(EngineError::Provision)?;
    match provisioner.settings_report().await {
        Ok(report) => {
            for advice in &report.advice {
                tracing::warn!("IceWarp: {advice}");
            }
        }
        Err(e) => tracing::warn!("cannot read the IceWarp server settings: {e}"),
    }
    Ok(provisioner)
}

/// The Graph side of provisioning: the tenant's client and its directory pacer.
pub(super) struct Directory<'a> {
    pub client: &'a GraphClient,
    pub pacer: &'a Pacer,
}

/// How many users' mailbox settings are read at once (the pacer bounds it further).
const PURPOSE_READS: usize = 4;

impl Directory<'_> {
    /// The users with the kind of their mailbox. A mailbox whose purpose cannot be read
    /// counts as a user mailbox; without MailboxSettings.Read (403) that is everyone, said
    /// once.
    async fn users(&self, users: &[User]) -> Vec<DirectoryUser> {
        let (client, pacer) = (self.client, self.pacer);
        let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
        // Owned ids, not `&User`: a closure over borrowed items makes the future lose `Send`
        // generality, which the desktop app's commands need.
        let purposes: Vec<Result<Option<UserPurpose>, GraphError>> =
            futures_util::stream::iter(ids)
                .map(|id| async move { users::mailbox_purpose(client, pacer, &id).await })
                .buffered(PURPOSE_READS)
                .collect()
                .await;
        let mut denied = false;
        users
            .iter()
            .zip(purposes)
            .map(|(user, purpose)| {
                let mut directory = DirectoryUser::from(user);
                match purpose {
                    Ok(p) => directory.kind = p.map_or(MailboxKind::User, MailboxKind::from),
                    Err(e) if e.status() == Some(403) => {
                        if !denied {
                            tracing::warn!(
                                "cannot read mailbox settings (MailboxSettings.Read missing?): shared, room and equipment mailboxes are treated as user mailboxes: {e}"
                            );
                        }
                        denied = true;
                    }
                    // No Exchange mailbox (e.g. no licence): nothing to tell apart.
                    Err(e) if e.status() == Some(404) => tracing::debug!(
                        user = %user.mail.as_deref().unwrap_or(&user.id),
                        "no mailbox settings: {e}"
                    ),
                    Err(e) => tracing::warn!(
                        user = %user.mail.as_deref().unwrap_or(&user.id),
                        "cannot read the mailbox's purpose, treated as a user mailbox: {e}"
                    ),
                }
                directory
            })
            .collect()
    }

    /// The mail-enabled groups with their direct members (Group.Read.All).
    async fn groups(&self) -> Result<Vec<DirectoryGroup>, GraphError> {
        let listed = users::list_groups(self.client, self.pacer).await?;
        for (id, reason) in &listed.bad {
            tracing::warn!(group = %id, %reason, "skipping a group entry Graph returned malformed");
        }
        let mut groups = Vec::new();
        for group in listed.items {
            let Some(kind) = group.kind() else {
                continue;
            };
            let members = users::group_members(self.client, self.pacer, &group.id).await?;
            let members = members
                .items
                .into_iter()
                .filter_map(|m| match m.member_type() {
                    "user" => Some(DirectoryMember::User {
                        id: m.id,
                        mail: m.mail,
                    }),
                    "group" => Some(DirectoryMember::Group { id: m.id }),
                    "orgContact" => m.mail.map(|mail| DirectoryMember::Contact { mail }),
                    // Devices and service principals receive no mail.
                    _ => None,
                })
                .collect();
            groups.push(DirectoryGroup {
                id: group.id,
                display_name: group.display_name,
                mail: group.mail,
                proxy_addresses: group.proxy_addresses,
                kind,
                members,
            });
        }
        Ok(groups)
    }
}

/// The domains of the groups' SMTP addresses.
fn group_domains(groups: &[DirectoryGroup]) -> BTreeSet<String> {
    groups
        .iter()
        .flat_map(|g| {
            let proxies = g.proxy_addresses.iter().filter_map(|p| {
                let (scheme, address) = p.split_once(':')?;
                scheme.eq_ignore_ascii_case("smtp").then_some(address)
            });
            g.mail.as_deref().into_iter().chain(proxies)
        })
        .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()))
        .collect()
}

/// Creates or merges every selected user's account (and, when asked, the groups and mailing
/// lists) and prepares the logins.
pub(super) async fn provision(
    d: &IceWarpDestination,
    provisioner: &IceWarpProvisioner,
    graph: Directory<'_>,
    users: Vec<User>,
    reporter: &dyn Reporter,
) -> Result<Provisioned, EngineError> {
    let directory = graph.users(&users).await;
    let mut failed = 0;
    let groups = if d.rules.groups == GroupRule::Skip {
        Vec::new()
    } else {
        match graph.groups().await {
            Ok(groups) => groups,
            Err(e) => {
                failed += 1;
                reporter.report(ProgressEvent::ItemFailed {
                    user: "(directory)".into(),
                    folder: "(groups)".into(),
                    item: "(provision)".into(),
                    reason: format!(
                        "cannot read the tenant's groups (Group.Read.All is needed for `groups`): {e}"
                    ),
                });
                Vec::new()
            }
        }
    };
    // Users and groups carry addresses only in the tenant's verified domains, so theirs are
    // the ones to create; this needs no Domain.Read.All.
    let mut names: BTreeSet<String> = domains_of(&users).into_iter().collect();
    names.extend(group_domains(&groups));
    let domains: Vec<TenantDomain> = names
        .into_iter()
        .map(|name| TenantDomain {
            name,
            is_verified: true,
        })
        .collect();
    let outcome = provisioner
        .provision(&directory, &groups, &domains, &d.rules)
        .await
        .map_err(EngineError::Provision)?;
    for list in &outcome.lists {
        let address = list
            .address
            .clone()
            .unwrap_or_else(|| list.group_id.clone());
        for note in &list.notes {
            tracing::info!(group = %address, "{note}");
        }
        match &list.action {
            AccountAction::Failed { reason, .. } => {
                failed += 1;
                reporter.report(ProgressEvent::ItemFailed {
                    user: address,
                    folder: "(group)".into(),
                    item: "(provision)".into(),
                    reason: format!(
                        "the IceWarp group or mailing list could not be set up: {reason}"
                    ),
                });
            }
            AccountAction::Skipped { reason } => {
                tracing::info!(group = %address, %reason, "not created")
            }
            action => tracing::info!(
                group = %address,
                ?action,
                added = list.members_added.len(),
                "group or mailing list ready"
            ),
        }
    }

    let mut mailboxes = Vec::new();
    for user in users {
        let source = user.mail.clone().unwrap_or_default();
        let Some(account) = outcome.account(&user.id) else {
            continue;
        };
        for note in &account.notes {
            tracing::info!(user = %source, "{note}");
        }
        match (&account.action, &account.address) {
            (AccountAction::Created | AccountAction::Merged, Some(address)) => {
                mailboxes.push(User {
                    mail: Some(address.clone()),
                    ..user
                });
            }
            (AccountAction::Skipped { reason }, _) => {
                tracing::info!(user = %source, %reason, "not migrated");
            }
            (AccountAction::Failed { reason, .. }, _) => {
                failed += 1;
                reporter.report(ProgressEvent::ItemFailed {
                    user: source,
                    folder: "(account)".into(),
                    item: "(provision)".into(),
                    reason: format!("the IceWarp account could not be set up: {reason}"),
                });
            }
            (AccountAction::Created | AccountAction::Merged, None) => {
                failed += 1;
                reporter.report(ProgressEvent::ItemFailed {
                    user: source,
                    folder: "(account)".into(),
                    item: "(provision)".into(),
                    reason: "no destination address".into(),
                });
            }
        }
    }

    let mut imap = d.imap.clone();
    if let Some(first) = mailboxes.first().and_then(|u| u.mail.as_deref()) {
        // IceWarp's default folder names are configurable and localised (getaccountfolderlist);
        // the first account's names stand for the server's.
        match provisioner.default_folders(first).await {
            Ok(names) => {
                for (well_known, name) in names {
                    if well_known != "inbox" {
                        imap.special_folders.entry(well_known).or_insert(name);
                    }
                }
            }
            Err(e) => tracing::warn!("cannot read IceWarp's default folder names: {e}"),
        }
    }
    // Under IceWarp's username login policy an account logs in with its U_Login.
    let login_names = outcome
        .accounts
        .iter()
        .filter_map(|a| Some((a.address.clone()?, a.login_name.clone()?)))
        .collect();
    let logins = logins(d, login_names)?;
    Ok(Provisioned {
        store: Store::Imap {
            settings: imap,
            logins,
        },
        mailboxes,
        failed,
        outcome,
    })
}

/// The master user for IMAP when one is configured, else each account's own password and
/// login name (`login_names`, by address; the address where none is given); own passwords
/// (the configured accounts CSV, then the credentials report of the accounts this or an
/// earlier run created) also serve WebDAV.
pub(super) fn logins(
    d: &IceWarpDestination,
    login_names: HashMap<String, String>,
) -> Result<ImapLogins, EngineError> {
    let mut accounts: HashMap<String, Secret> = d.accounts.clone();
    if d.api.credentials_report.is_file() {
        let created =
            read_accounts_csv(&d.api.credentials_report).map_err(|e| EngineError::Destination {
                path: d.api.credentials_report.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
        for (address, password) in created {
            accounts.entry(address).or_insert(password);
        }
    }
    Ok(match &d.master {
        Some((master_user, style)) => ImapLogins::MasterAndAccounts {
            accounts,
            master_user: master_user.clone(),
            password: d.admin_password.clone(),
            style: *style,
        },
        None => ImapLogins::Named {
            accounts,
            login_names,
        },
    })
}

/// After the data is written: on the final pass only, expire the passwords of the accounts
/// the migrator created when `expire_passwords` asks for it; then log out.
pub(super) async fn finish(
    d: &IceWarpDestination,
    provisioner: &IceWarpProvisioner,
    outcome: &ProvisionOutcome,
    final_pass: bool,
) {
    match (d.expire_passwords, final_pass) {
        (true, true) => {
            let (expired, failures) = provisioner.expire_passwords(outcome).await;
            for (address, e) in &failures {
                tracing::warn!(%address, "cannot expire the new account's password: {e}");
            }
            if expired > 0 {
                tracing::warn!(
                    "final pass: the generated passwords of {expired} accounts expired; their users \
                     choose new ones at first login, and a later run needs those new passwords \
                     (put them in accounts_csv)"
                );
            }
        }
        (true, false) => tracing::info!(
            "expire_passwords waits for the final pass (`run --final`): no password was expired"
        ),
        _ => {}
    }
    provisioner.client().logout().await;
}
