//! Who a run migrates. Of the tenant's users only members with an Exchange Online mailbox are
//! migrated; the rest is reported once as not migrated, never as a failure:
//!
//! - B2B guests (`userType` `Guest`): their `mail` is their own outside address
//!   (learn.microsoft.com/entra/external-id/user-properties), so neither an account nor a
//!   domain is made for them ([`GUEST`]);
//! - users whose mailbox calls answer 404 `MailboxNotEnabledForRESTAPI` (unlicensed, hosted
//!   on-premises, soft-deleted; [`NO_MAILBOX`]);
//! - online archive mailboxes, which Graph's mail API cannot read: the user's primary mailbox
//!   is migrated and the archive is named in the plan and report ([`ONLINE_ARCHIVE`]).
//!
//! Each mailbox's own reads (its `mailboxSettings`, its Exchange settings) go through that
//! mailbox's own pacer: Graph's limits are per app and mailbox (throttling-limits.md, "Outlook
//! service limits"), so they are read many at once, not queued behind one tenant-wide pacer.

use std::collections::HashMap;

use futures_util::StreamExt;

use super::EngineError;
use crate::dest::provision::{AccountAction, MailboxKind, ProvisionOutcome};
use crate::graph::types::User;
use crate::graph::users::{self, MailboxFacts};
use crate::graph::{GraphClient, Pacer, PacerSettings};
use crate::journal::{Journal, ACCOUNT_CREATED};
use crate::progress::{ProgressEvent, Reporter};

/// Why a guest is not migrated (plan, report and events).
pub const GUEST: &str = "guest, not migrated";
/// Why a user whose mailbox Graph cannot reach is not migrated.
pub const NO_MAILBOX: &str = "no Exchange mailbox";
/// What is left out of a user with an online archive.
pub const ONLINE_ARCHIVE: &str = "has an online archive: not migrated, export it separately";

/// What the migration made of a mailbox at a destination whose account existed (any IMAP
/// server; an IceWarp account found there), for the report.
pub const MERGED: &str = "merged into an existing account";
/// ... and in the local folder.
pub const LOCAL_FOLDER: &str = "local folder";

/// What IceWarp provisioning made of each mailbox, by Graph user id: [`ACCOUNT_CREATED`] or
/// [`MERGED`] (other destinations have no provisioning: `None` gives an empty map).
pub(super) fn destinations(outcome: Option<&ProvisionOutcome>) -> HashMap<String, &'static str> {
    outcome
        .map(|o| {
            o.accounts
                .iter()
                .filter_map(|a| match a.action {
                    AccountAction::Created => Some((a.user_id.clone(), ACCOUNT_CREATED)),
                    AccountAction::Merged => Some((a.user_id.clone(), MERGED)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Records in the journal what `user`'s mailbox is ([`kind_of`]) and what the migration made
/// of it (`made`), for the report.
pub(super) async fn record_destination(
    journal: &Journal,
    user: &User,
    facts: &MailboxFacts,
    made: &str,
) -> Result<(), EngineError> {
    let address = user.mail.as_deref().unwrap_or_default();
    journal
        .set_user_destination_async(&user.id, address, kind_of(facts), made)
        .await?;
    Ok(())
}

/// What a mailbox is, in the plan's and report's words (`user`, `shared`, `room`,
/// `equipment`): its `mailboxSettings.userPurpose`, a user mailbox when Graph does not say
/// (as provisioning counts it).
pub(super) fn kind_of(facts: &MailboxFacts) -> &'static str {
    MailboxKind::from_purpose(facts.purpose).or_user().label()
}

/// Mailboxes whose facts are read at once at the start of a run (each on its own pacer, so
/// this bounds only the run's own connections).
pub(super) const FACT_READS: usize = 64;

/// A mailbox about to be migrated, with the pacer all of its requests go through.
pub(super) struct Mailbox {
    pub user: User,
    pub pacer: Pacer,
    pub facts: MailboxFacts,
}

/// Reads every user's [`MailboxFacts`], many users at once, each on a new pacer of its own
/// that the mailbox keeps for the rest of the run.
pub(super) async fn read_facts(
    client: &GraphClient,
    settings: &PacerSettings,
    users: Vec<User>,
) -> Vec<Mailbox> {
    futures_util::stream::iter(users)
        .map(|user| async move {
            let pacer = Pacer::new(settings.clone());
            let facts = users::mailbox_facts(client, &pacer, &user.id).await;
            Mailbox { user, pacer, facts }
        })
        .buffered(FACT_READS)
        .collect()
        .await
}

/// Reports once that `user` is not migrated (`reason`) and records it as the user's state in
/// the journal.
pub(super) fn report_not_migrated(
    journal: Option<&Journal>,
    reporter: &dyn Reporter,
    user: &User,
    reason: &str,
) -> Result<(), EngineError> {
    report_left_out(journal, reporter, user, reason, false)
}

/// Reports once that part of `user` is not migrated (`reason`: an online archive, bookings a
/// resource's refused WebDAV login kept out) and records it as the user's journal note; the
/// user's state stays what the run makes it.
pub(super) fn report_part_not_migrated(
    journal: Option<&Journal>,
    reporter: &dyn Reporter,
    user: &User,
    reason: &str,
) -> Result<(), EngineError> {
    report_left_out(journal, reporter, user, reason, true)
}

fn report_left_out(
    journal: Option<&Journal>,
    reporter: &dyn Reporter,
    user: &User,
    reason: &str,
    part: bool,
) -> Result<(), EngineError> {
    let address = user
        .mail
        .clone()
        .unwrap_or_else(|| user.user_principal_name.clone());
    match (journal, part) {
        (Some(journal), true) => journal.set_user_note(&user.id, &address, Some(reason))?,
        (Some(journal), false) => journal.set_user_state(&user.id, &address, reason)?,
        (None, _) => {}
    }
    reporter.report(ProgressEvent::NotMigrated {
        user: address,
        reason: reason.to_string(),
    });
    Ok(())
}

/// Domains of `names` that the tenant has verified (`verified`, from Graph's `/domains`);
/// all of them when `verified` could not be read.
pub(super) fn verified_only(names: Vec<String>, verified: Option<&[String]>) -> Vec<String> {
    match verified {
        Some(verified) => names
            .into_iter()
            .filter(|n| verified.iter().any(|v| v.eq_ignore_ascii_case(n)))
            .collect(),
        None => names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verified_domains_are_kept() {
        let names = vec!["contoso.com".to_string(), "gmail.com".to_string()];
        let verified = ["contoso.com".to_string(), "contoso.onmicrosoft.com".into()];
        assert_eq!(
            verified_only(names.clone(), Some(&verified)),
            ["contoso.com"]
        );
        assert_eq!(verified_only(names.clone(), None), names);
    }
}
