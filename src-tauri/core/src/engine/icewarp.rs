//! The IceWarp leg of a run: domains and accounts created or merged through the admin API
//! before any data moves, then the logins each mailbox uses.
//!
//! A user whose account could not be created or found is not migrated (its data has nowhere
//! safe to go) and is reported with the reason; the others go on. New accounts' generated
//! passwords exist only in the credentials report, which is also where the run reads them back
//! to log in.

use std::collections::HashMap;

use super::plan::domains_of;
use super::{EngineError, IceWarpDestination, ImapLogins, Store};
use crate::config::read_accounts_csv;
use crate::dest::provision::icewarp::IceWarpProvisioner;
use crate::dest::provision::{
    AccountAction, AccountProvisioner, DirectoryUser, ProvisionOutcome, TenantDomain,
};
use crate::graph::types::User;
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

/// Creates or merges every selected user's account and prepares the logins.
pub(super) async fn provision(
    d: &IceWarpDestination,
    provisioner: &IceWarpProvisioner,
    users: Vec<User>,
    reporter: &dyn Reporter,
) -> Result<Provisioned, EngineError> {
    let directory: Vec<DirectoryUser> = users.iter().map(DirectoryUser::from).collect();
    // Users carry addresses only in the tenant's verified domains, so their domains are the
    // ones to create; this needs no Domain.Read.All.
    let domains: Vec<TenantDomain> = domains_of(&users)
        .into_iter()
        .map(|name| TenantDomain {
            name,
            is_verified: true,
        })
        .collect();
    let outcome = provisioner
        .provision(&directory, &domains, &d.rules)
        .await
        .map_err(EngineError::Provision)?;

    let mut mailboxes = Vec::new();
    let mut failed = 0;
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
    let logins = logins(d)?;
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

/// The master user for IMAP when one is configured, else each account's own password; own
/// passwords (the configured accounts CSV, then the credentials report of the accounts this or
/// an earlier run created) also serve WebDAV.
pub(super) fn logins(d: &IceWarpDestination) -> Result<ImapLogins, EngineError> {
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
        None => ImapLogins::Accounts(accounts),
    })
}

/// After the data is written: expire the new accounts' passwords when asked, and log out.
pub(super) async fn finish(
    d: &IceWarpDestination,
    provisioner: &IceWarpProvisioner,
    outcome: &ProvisionOutcome,
) {
    if d.expire_passwords {
        for (address, e) in provisioner.expire_passwords(outcome).await {
            tracing::warn!(%address, "cannot expire the new account's password: {e}");
        }
    }
    provisioner.client().logout().await;
}
