//! The IceWarp leg of a run: domains and accounts created or merged through the admin API
//! before any data moves, then the logins each mailbox uses.
//!
//! Before planning, each user's `mailboxSettings.userPurpose` says whether it is a shared,
//! room or equipment mailbox (the configured rules apply to those), and, when `groups` asks
//! for them, the tenant's mail-enabled groups and their members are read (Group.Read.All).
//! Directory reads go through the tenant's pacer; each mailbox's settings were read on its own.
//!
//! A user whose account could not be created or found is not migrated (its data has nowhere
//! safe to go) and is reported with the reason; the others go on. New accounts' generated
//! passwords exist only in the credentials report, which is also where the run reads them back
//! to log in.

use std::collections::{BTreeSet, HashMap};

use super::mailboxes::{verified_only, Mailbox};
use super::plan::domains_of;
use super::{EngineError, IceWarpDestination, ImapLogins, Store};
use crate::config::read_accounts_csv;
use crate::config::GroupRule;
use crate::convert::flags::MailFlags;
use crate::dest::imap::{ImapLogin, ImapMailbox, ImapSettings, MessageFingerprint};
use crate::dest::provision::icewarp::IceWarpProvisioner;
use crate::dest::provision::{
    AccountAction, AccountProvisioner, DirectoryGroup, DirectoryMember, DirectoryUser, MailboxKind,
    ProvisionOutcome, ResourceKind, TenantDomain,
};
use crate::graph::types::User;
use crate::graph::users;
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

/// The Graph side of provisioning: the tenant's client and its directory pacer, each
/// mailbox's facts (read on that mailbox's own pacer, [`super::mailboxes::read_facts`]) and
/// the tenant's verified domains (`None`: not readable).
pub(super) struct Directory<'a> {
    pub client: &'a GraphClient,
    pub pacer: &'a Pacer,
    pub facts: &'a HashMap<String, Mailbox>,
    pub verified: Option<&'a [String]>,
}

impl Directory<'_> {
    /// The users with the kind of their mailbox. A mailbox whose purpose cannot be read
    /// counts as a user mailbox; without MailboxSettings.Read (403) that is everyone, said
    /// once.
    fn users(&self, users: &[User]) -> Vec<DirectoryUser> {
        let mut denied = false;
        users
            .iter()
            .map(|user| {
                let mut directory = DirectoryUser::from(user);
                let facts = self.facts.get(&user.id).map(|m| &m.facts);
                let purpose = match facts {
                    Some(f) => match &f.settings_error {
                        Some(e) => Err(e),
                        None => Ok(f.purpose),
                    },
                    None => Ok(None),
                };
                match purpose {
                    Ok(p) => directory.kind = MailboxKind::from_purpose(p).or_user(),
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

/// The domains of members' and groups' addresses that Graph's /domains says are `verified`
/// (a guest's or an outside contact's domain never is); when /domains cannot be read, the
/// members' own (guests are not among the users here).
fn tenant_domains(
    users: &[User],
    groups: &[DirectoryGroup],
    verified: Option<&[String]>,
) -> Vec<TenantDomain> {
    let mut names: BTreeSet<String> = domains_of(users).into_iter().collect();
    names.extend(group_domains(groups));
    verified_only(names.into_iter().collect(), verified)
        .into_iter()
        .map(|name| TenantDomain {
            name,
            is_verified: true,
        })
        .collect()
}

/// The check's one line on resources ([`super::preflight`]): how many of `users` (the
/// selected mailboxes, in the selection's order) the run makes IceWarp resource accounts
/// (created, or merged into the resource at their address), by provisioning's own plan, and
/// that IceWarp documents no login as one. `None` when there are none (e.g. `resources_as =
/// "user"`).
pub(super) fn resources_advice(
    d: &IceWarpDestination,
    graph: &Directory<'_>,
    users: &[User],
) -> Option<String> {
    let planned = crate::dest::provision::plan(
        &graph.users(users),
        &[],
        &tenant_domains(users, &[], graph.verified),
        &d.rules,
    );
    let (mut rooms, mut equipment) = (0, 0);
    for account in &planned.accounts {
        match account.resource {
            Some(ResourceKind::Room) => rooms += 1,
            Some(ResourceKind::Equipment) => equipment += 1,
            None => {}
        }
    }
    if rooms + equipment == 0 {
        return None;
    }
    let plural = |n: usize, one: &str, many: &str| {
        (n > 0).then(|| format!("{n} {}", if n == 1 { one } else { many }))
    };
    let counted: Vec<String> = [
        plural(rooms, "room", "rooms"),
        plural(equipment, "equipment mailbox", "equipment mailboxes"),
    ]
    .into_iter()
    .flatten()
    .collect();
    Some(format!(
        "{} {} (created, or merged into the resource already at the same address); \
         IceWarp documents no IMAP or WebDAV login as a resource, so if it refuses one, that resource's mail and bookings are reported \"not migrated\" and \
         stay in Microsoft 365; set resources_as = \"user\" in [destination] to migrate them \
         into ordinary accounts instead",
        counted.join(" and "),
        if rooms + equipment == 1 {
            "becomes an IceWarp resource account"
        } else {
            "become IceWarp resource accounts"
        },
    ))
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
    let directory = graph.users(&users);
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
                    subject: None,
                    date: None,
                    size: None,
                    reason: format!(
                        "cannot read the tenant's groups (Group.Read.All is needed for `groups`): {e}"
                    ),
                });
                Vec::new()
            }
        }
    };
    let domains = tenant_domains(&users, &groups, graph.verified);
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
                    subject: None,
                    date: None,
                    size: None,
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
                    subject: None,
                    date: None,
                    size: None,
                    reason: format!("the IceWarp account could not be set up: {reason}"),
                });
            }
            (AccountAction::Created | AccountAction::Merged, None) => {
                failed += 1;
                reporter.report(ProgressEvent::ItemFailed {
                    user: source,
                    folder: "(account)".into(),
                    item: "(provision)".into(),
                    subject: None,
                    date: None,
                    size: None,
                    reason: "no destination address".into(),
                });
            }
        }
    }

    // Each account's own folder names are given to its IMAP writer when its mail pass opens
    // it ([`account_folder_names`]).
    let imap = d.imap.clone();
    // What the server will refuse or delete later, before any data moves: the accounts
    // written into and their domains.
    let addresses: Vec<String> = mailboxes.iter().filter_map(|u| u.mail.clone()).collect();
    for advice in provisioner.limits_advice(&addresses, &[]).await {
        tracing::warn!("IceWarp: {advice}");
    }
    // Under IceWarp's username login policy an account logs in with its U_Login.
    let login_names = login_names_of(&outcome);
    let mut logins = logins(d, login_names, false)?;
    if d.master.is_some() {
        prove_master_login(d, &imap, &logins, &outcome).await?;
        logins = super::icewarp::logins(d, login_names_of(&outcome), true)?;
    }
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
///
/// `master_proven`: the preflight proved that `master_user` opens the user's own mailbox
/// ([`prove_master_login`]); only then does it log in, and only for accounts without a known
/// password.
pub(super) fn logins(
    d: &IceWarpDestination,
    login_names: HashMap<String, String>,
    master_proven: bool,
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
    let master = match &d.master {
        Some((master_user, style)) if master_proven => {
            Some((master_user.clone(), d.admin_password.clone(), *style))
        }
        _ => None,
    };
    Ok(ImapLogins::Named {
        accounts,
        login_names,
        master,
    })
}

/// Each account's login name where it is not its address.
fn login_names_of(outcome: &ProvisionOutcome) -> HashMap<String, String> {
    outcome
        .accounts
        .iter()
        .filter_map(|a| Some((a.address.clone()?, a.login_name.clone()?)))
        .collect()
}

/// Before a master login writes anything at IceWarp, which documents none: for one account
/// other than the administrator with a known password, a probe message is appended to INBOX
/// through the master session and looked for through the account's own login, then deleted.
/// Found: the master session opens the user's mailbox. Refused, or not found (the server
/// ignored the authorization identity and opened the administrator's own mailbox, where the
/// probe is deleted again): the run stops before any data moves.
async fn prove_master_login(
    d: &IceWarpDestination,
    imap: &ImapSettings,
    own: &ImapLogins,
    outcome: &ProvisionOutcome,
) -> Result<(), EngineError> {
    let Some((master_user, style)) = &d.master else {
        return Ok(());
    };
    let refuse = |why: String| {
        EngineError::MasterLogin(format!(
            "master_user {master_user} is not used for IceWarp: {why}. IceWarp documents no IMAP \
             master login (no server setting enables one); remove master_user and give the \
             existing accounts' passwords in accounts_csv"
        ))
    };
    let admin = d.api.admin_email.to_lowercase();
    let probe_account = outcome
        .accounts
        .iter()
        .filter(|a| matches!(a.action, AccountAction::Created | AccountAction::Merged))
        .filter_map(|a| a.address.as_deref())
        .find(|a| *a != admin && own.own_password(a).is_some());
    let Some(address) = probe_account else {
        return Err(refuse(
            "no account other than the administrator's has a known password to prove it with"
                .into(),
        ));
    };
    let (Some(own_login), master) = (
        own.login_for(address),
        ImapLogin::Master {
            user: address.to_string(),
            master_user: master_user.clone(),
            master_password: d.admin_password.clone(),
            style: *style,
        },
    ) else {
        return Err(refuse(format!("no own login for {address}")));
    };
    let received = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let message = format!(
        "Message-ID: <m365-migrator-probe-{:016x}@probe.invalid>\r\nSubject: m365-migrator \
         master login probe (deleted at once)\r\n\r\nprobe\r\n",
        rand::random::<u64>()
    )
    .into_bytes();
    let fingerprint = MessageFingerprint::of_message(&message, received);
    let mut as_master = ImapMailbox::connect(imap, &master).await.map_err(|e| {
        refuse(format!(
            "the IMAP server refused it logging in for {address}: {e}"
        ))
    })?;
    as_master
        .append(
            "INBOX",
            &message[..],
            message.len() as u64,
            &MailFlags::default(),
            received,
        )
        .await
        .map_err(|e| refuse(format!("cannot append the probe for {address}: {e}")))?;
    let mut as_user = ImapMailbox::connect(imap, &own_login).await.map_err(|e| {
        refuse(format!(
            "{address} cannot log in with its own password: {e}"
        ))
    })?;
    let found = as_user.find_existing("INBOX", &fingerprint).await;
    if let Ok(Some(uid)) = found {
        let deleted = as_user.delete_message("INBOX", uid).await;
        as_user.logout().await;
        as_master.logout().await;
        if let Err(e) = deleted {
            tracing::warn!(%address, "cannot delete the master login probe: {e}");
        }
        return Ok(());
    }
    as_user.logout().await;
    // The probe went to whatever mailbox the master session opened: take it out again.
    if let Ok(Some(uid)) = as_master.find_existing("INBOX", &fingerprint).await {
        if let Err(e) = as_master.delete_message("INBOX", uid).await {
            tracing::warn!("cannot delete the master login probe: {e}");
        }
    }
    as_master.logout().await;
    Err(refuse(format!(
        "a message appended through it for {address} did not reach {address}'s mailbox (the \
         server ignores the authorization identity and opens the administrator's own mailbox)"
    )))
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

/// IceWarp's GroupWare folders, in English: what is reserved when the server's names cannot
/// be read (IceWarp.Net's GetAccountFolderList fixture; `Files` is the rename key's name).
const GROUPWARE_FOLDERS: [&str; 7] = [
    "Calendar",
    "Contacts",
    "Tasks",
    "Notes",
    "Journal",
    "Documents",
    "Files",
];

/// `imap` for the account `address`: with that account's own default folder names
/// (`getaccountfolderlist`, read once per account and shared with its groupware pass). The
/// names can differ between accounts: `C_System_Adv_Rename_Default_Folders` takes a `where`
/// scope (apiconst: `where=*&sent=Odeslan`), so one account's names never stand for another's.
pub(super) async fn account_folder_names(
    provisioner: &IceWarpProvisioner,
    imap: &mut ImapSettings,
    address: &str,
) {
    let names = provisioner.default_folders(address).await;
    if let Err(e) = &names {
        tracing::warn!(%address, "cannot read IceWarp's default folder names: {e}");
    }
    apply_folder_names(imap, names.ok());
}

/// Gives the IMAP writer IceWarp's own folder names (`getaccountfolderlist`; `None`: they
/// could not be read). The GroupWare folders (calendar, contacts, tasks, notes, journal,
/// files) are visible over IMAP ("Full Access Via IMAP", GroupWare Reference v10) and are
/// not mail folders: their names are reserved, so a user's mail folder called like one gets
/// a distinct name instead of being merged into it. The mail defaults (sent, drafts, trash,
/// spam) are hints only: their folder-type letters are inferred, not documented, so they never
/// override the server's SPECIAL-USE answer, and a configured `special_folders` entry still
/// wins over both.
fn apply_folder_names(
    imap: &mut crate::dest::imap::ImapSettings,
    names: Option<std::collections::BTreeMap<String, String>>,
) {
    let Some(names) = names else {
        imap.reserved_folders
            .extend(GROUPWARE_FOLDERS.iter().map(|n| n.to_string()));
        return;
    };
    for (well_known, name) in names {
        match well_known.as_str() {
            "inbox" => {}
            "calendar" | "contacts" | "tasks" | "notes" | "journal" | "files" => {
                imap.reserved_folders.push(name)
            }
            _ => {
                imap.server_folders.insert(well_known, name);
            }
        }
    }
}

#[cfg(test)]
mod folder_name_tests {
    use std::collections::BTreeMap;

    use super::apply_folder_names;
    use crate::convert::folder_name::encode_mutf7;
    use crate::dest::imap::folders::{plan, Placement, ServerFolders};
    use crate::dest::imap::types::ListEntry;
    use crate::dest::imap::{ImapSettings, Security};
    use crate::graph::mail::test_node as node;

    fn entry(name: &str, attrs: &[&str]) -> ListEntry {
        ListEntry {
            attributes: attrs.iter().map(|a| a.to_string()).collect(),
            separator: Some('/'),
            name: encode_mutf7(name),
        }
    }

    /// A Czech IceWarp over IMAP: `\Sent` on `Sent Messages`, its GroupWare folders listed.
    fn plan_with(names: Option<BTreeMap<String, String>>, user_folder: &str) -> Vec<Placement> {
        let mut imap = ImapSettings::new("mail.example.com", 993, Security::Tls);
        apply_folder_names(&mut imap, names);
        let mut server = ServerFolders::new(
            vec![
                entry("INBOX", &[]),
                entry("Sent Messages", &["\\Sent"]),
                entry("Odeslané", &[]),
                entry("Kalendář", &[]),
                entry("Calendar", &[]),
            ],
            None,
        );
        server.hints = imap.server_folders.clone();
        server.reserved = imap.reserved_folders.clone();
        let nodes = vec![
            node("s", None, "Gesendete Elemente", Some("sentitems")),
            node("u", None, user_folder, None),
        ];
        plan(&nodes, &server, &imap.special_folders)
    }

    #[test]
    fn icewarp_guessed_folder_letters_never_override_special_use() {
        let names: BTreeMap<String, String> = [
            ("inbox", "Inbox"),
            ("sentitems", "Odeslané"),
            ("calendar", "Kalendář"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let placed = plan_with(Some(names), "Projects");
        assert_eq!(
            placed[0],
            Placement::Special {
                wire: "Sent Messages".into(),
                exists: true
            },
            "the server's SPECIAL-USE answer wins over the guessed S letter"
        );
    }

    #[test]
    fn icewarp_mail_folder_named_like_a_groupware_folder_is_not_merged_into_it() {
        let names: BTreeMap<String, String> = [("calendar", "Kalendář"), ("tasks", "Úkoly")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (names, folder) in [
            (Some(names), "Kalendář"),
            (Some(BTreeMap::new()), "Projects"),
            // The names could not be read: IceWarp's English ones are kept apart.
            (None, "Calendar"),
        ] {
            let placed = plan_with(names, folder);
            let Placement::Nested { name, suffix, .. } = &placed[1] else {
                panic!("{folder}: {placed:?}");
            };
            assert_eq!(name, folder);
            if folder == "Projects" {
                assert!(suffix.is_empty(), "an ordinary name stays as it is");
            } else {
                assert!(
                    suffix.starts_with(" ~"),
                    "{folder}: a distinct name, not the GroupWare folder: {placed:?}"
                );
            }
        }
    }
}
