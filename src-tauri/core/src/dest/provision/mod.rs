//! Provisioning: creating the destination's domains and accounts before data is written, for
//! destinations with an admin API ([`icewarp`]).
//!
//! The flow is the same for every provisioner: [`plan`] (pure) turns the tenant's users,
//! groups and domains into the domains, accounts and lists the destination should have,
//! applying the domain map and the rules for disabled users, shared and resource mailboxes
//! and groups; then [`AccountProvisioner::ensure_domains`],
//! [`AccountProvisioner::ensure_account`] and [`AccountProvisioner::ensure_list`] make it so;
//! [`AccountProvisioner::provision`] runs them and returns a [`ProvisionOutcome`] with one
//! entry per user (the account's address, whether it was created, merged or skipped and why,
//! and how the writers log in to it, [`LoginRoute`]) and one per mail-enabled group.

pub mod icewarp;
pub mod password;
pub mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{AccountRule, GroupRule, ResourcesAs};
use crate::error::{Classify, ErrorClass};
use crate::graph::users::GroupKind;
pub use crate::graph::users::MailboxKind;
use crate::secrets::Secret;
use crate::spec::AccountRules;

/// A Microsoft 365 user as provisioning sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The Graph user id.
    pub id: String,
    pub user_principal_name: String,
    /// The primary SMTP address (`mail`).
    pub mail: Option<String>,
    pub display_name: Option<String>,
    /// `accountEnabled`; `None` when Graph did not say.
    pub account_enabled: Option<bool>,
    /// `proxyAddresses`: `SMTP:` marks the primary, `smtp:` the aliases; other types (`SIP:`,
    /// `X500:`) are ignored.
    pub proxy_addresses: Vec<String>,
    pub kind: MailboxKind,
}

/// Which of the account rules decides whether a mailbox gets an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleFor {
    DisabledUsers,
    SharedMailboxes,
    /// Room and equipment mailboxes.
    ResourceMailboxes,
}

/// The rule that decides a mailbox of `kind` whose sign-in is `account_enabled` (`None`: an
/// account is always made). A shared, room or equipment mailbox follows its kind's rule
/// whether or not its sign-in is blocked (administrators commonly block it, as nobody signs
/// in to such a mailbox); a user mailbox, or one of no known kind, with its sign-in blocked
/// follows the disabled users' rule. The Plan shows what [`plan`] decides
/// ([`crate::engine::Plan::decide`]).
pub fn deciding_rule(kind: MailboxKind, account_enabled: Option<bool>) -> Option<RuleFor> {
    match (kind, account_enabled) {
        (MailboxKind::Shared, _) => Some(RuleFor::SharedMailboxes),
        (MailboxKind::Room | MailboxKind::Equipment, _) => Some(RuleFor::ResourceMailboxes),
        (MailboxKind::User | MailboxKind::Guest | MailboxKind::Unknown, Some(false)) => {
            Some(RuleFor::DisabledUsers)
        }
        (MailboxKind::User | MailboxKind::Guest | MailboxKind::Unknown, _) => None,
    }
}

/// What an IceWarp resource account stands for: `S_Type` (icewarp-apiconst.txt: "Int (rtRoom,
/// rtEquipment, rtCar)", a Delphi enumeration: 0 room, 1 equipment, 2 car). Microsoft 365 has
/// room and equipment mailboxes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
#[ts(export)]
pub enum ResourceKind {
    Room,
    Equipment,
}

impl ResourceKind {
    /// The resource a mailbox of `kind` becomes under `resources_as` (`None`: an ordinary
    /// account).
    pub fn of(kind: MailboxKind, resources_as: ResourcesAs) -> Option<ResourceKind> {
        match (resources_as, kind) {
            (ResourcesAs::Resource, MailboxKind::Room) => Some(ResourceKind::Room),
            (ResourcesAs::Resource, MailboxKind::Equipment) => Some(ResourceKind::Equipment),
            _ => None,
        }
    }

    /// `S_Type`'s value.
    pub fn s_type(self) -> u32 {
        match self {
            ResourceKind::Room => 0,
            ResourceKind::Equipment => 1,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ResourceKind::Room => "room",
            ResourceKind::Equipment => "equipment",
        }
    }
}

/// A mail-enabled group of the tenant as provisioning sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryGroup {
    /// The Graph group id.
    pub id: String,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    /// `SMTP:` marks the primary, `smtp:` the aliases.
    pub proxy_addresses: Vec<String>,
    pub kind: GroupKind,
    /// The direct members.
    pub members: Vec<DirectoryMember>,
}

/// A direct member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryMember {
    /// A user of the tenant, by Graph id (with its `mail` for messages).
    User { id: String, mail: Option<String> },
    /// A nested group, by Graph id: its destination address becomes the member.
    Group { id: String },
    /// An organizational contact (an outside address), kept as it is.
    Contact { mail: String },
}

/// The IceWarp account type that holds a group's members (`U_Type`, icewarp-apiconst.txt:
/// 1 mailing list, 7 group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    MailingList,
    Group,
}

impl ListKind {
    /// The kind a group becomes under `rule` (`None`: groups are skipped).
    pub fn for_group(kind: GroupKind, rule: GroupRule) -> Option<ListKind> {
        match (rule, kind) {
            (GroupRule::Skip, _) => None,
            (GroupRule::MailingLists, _) => Some(ListKind::MailingList),
            (GroupRule::Groups, _) | (GroupRule::ByKind, GroupKind::Microsoft365) => {
                Some(ListKind::Group)
            }
            (GroupRule::ByKind, _) => Some(ListKind::MailingList),
        }
    }
}

impl From<&crate::graph::types::User> for DirectoryUser {
    fn from(u: &crate::graph::types::User) -> Self {
        DirectoryUser {
            id: u.id.clone(),
            user_principal_name: u.user_principal_name.clone(),
            mail: u.mail.clone(),
            display_name: u.display_name.clone(),
            account_enabled: u.account_enabled,
            proxy_addresses: u.proxy_addresses.clone(),
            kind: MailboxKind::User,
        }
    }
}

/// A domain of the tenant (Graph `GET /domains`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDomain {
    pub name: String,
    pub is_verified: bool,
}

/// One account the destination should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPlan {
    pub user_id: String,
    /// The account's address at the destination (lower case, domain mapped).
    pub address: String,
    pub display_name: String,
    /// Other addresses of the user, mapped, without the primary, in source order.
    pub aliases: Vec<String>,
    /// A room or equipment mailbox that becomes a resource account (`resources_as`); `None`:
    /// an ordinary user account.
    pub resource: Option<ResourceKind>,
}

impl AccountPlan {
    pub fn local_part(&self) -> &str {
        self.address.rsplit_once('@').map_or("", |(l, _)| l)
    }

    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// One group or mailing list the destination should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPlan {
    pub group_id: String,
    /// The list's address at the destination (lower case, domain mapped).
    pub address: String,
    pub display_name: String,
    /// Other addresses of the group, mapped, without the primary.
    pub aliases: Vec<String>,
    pub kind: ListKind,
    /// The members' destination addresses (lower case, without duplicates, in source order).
    pub members: Vec<String>,
    /// Members left out, and why.
    pub notes: Vec<String>,
}

impl ListPlan {
    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// What happened to one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOutcome {
    pub group_id: String,
    /// The destination address (the planned one for a skipped or failed group, if any).
    pub address: Option<String>,
    pub kind: ListKind,
    /// `Created`, `Merged` (it existed: members added, none removed), `Skipped` or `Failed`.
    pub action: AccountAction,
    /// Members this run added.
    pub members_added: Vec<String>,
    pub notes: Vec<String>,
}

impl ListOutcome {
    pub(crate) fn new(plan: &ListPlan, action: AccountAction) -> Self {
        ListOutcome {
            group_id: plan.group_id.clone(),
            address: Some(plan.address.clone()),
            kind: plan.kind,
            action,
            members_added: Vec::new(),
            notes: plan.notes.clone(),
        }
    }
}

/// What the destination should have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Destination domains, sorted.
    pub domains: Vec<String>,
    pub accounts: Vec<AccountPlan>,
    /// Users left out, with the reason.
    pub skipped: Vec<AccountOutcome>,
    /// Groups to create or merge (none unless `AccountRules::groups` asks for them).
    pub lists: Vec<ListPlan>,
    /// Groups left out, with the reason.
    pub skipped_lists: Vec<ListOutcome>,
}

/// How the writers log in to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRoute {
    /// A new account: its generated password is in the credentials report.
    GeneratedPassword,
    /// An existing account whose password is in the configured accounts CSV.
    AccountsCsv,
    /// An existing account an administrator (IMAP master user) logs in for.
    AdminImpersonation,
    /// No way to log in (an existing account with no known password and no master user, or
    /// a skipped user): its data is not written.
    None,
}

/// What happened to one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountAction {
    /// The account was created.
    Created,
    /// The account existed and was kept: never recreated, its password and name untouched;
    /// missing aliases were added.
    Merged,
    /// Left out on purpose (a rule, no address in a migrated domain, ...).
    Skipped { reason: String },
    /// The destination refused or could not be reached: the user's data must not be written.
    Failed { reason: String, class: ErrorClass },
}

/// The outcome for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountOutcome {
    pub user_id: String,
    /// The destination address (the planned one for a skipped or failed user, if any).
    pub address: Option<String>,
    pub action: AccountAction,
    pub login: LoginRoute,
    /// The name the account logs in with over IMAP and WebDAV when it is not its address
    /// (IceWarp's `U_Login` under the username login policy); `None`: the address.
    pub login_name: Option<String>,
    /// Aliases this run added to the account.
    pub aliases_added: Vec<String>,
    /// Things the administrator should know (an alias IceWarp could not take, ...).
    pub notes: Vec<String>,
}

impl AccountOutcome {
    fn skipped(user_id: &str, address: Option<String>, reason: String) -> Self {
        AccountOutcome {
            user_id: user_id.to_string(),
            address,
            action: AccountAction::Skipped { reason },
            login: LoginRoute::None,
            login_name: None,
            aliases_added: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn failed(plan: &AccountPlan, reason: String, class: ErrorClass) -> Self {
        AccountOutcome {
            user_id: plan.user_id.clone(),
            address: Some(plan.address.clone()),
            action: AccountAction::Failed { reason, class },
            login: LoginRoute::None,
            login_name: None,
            aliases_added: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// What happened to one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainAction {
    Existing,
    Created,
    Failed { reason: String },
}

/// The result of a provisioning run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvisionOutcome {
    pub domains: Vec<(String, DomainAction)>,
    /// One entry per user given, in the order given.
    pub accounts: Vec<AccountOutcome>,
    /// One entry per group given (none when groups are skipped), in the order given.
    pub lists: Vec<ListOutcome>,
}

impl ProvisionOutcome {
    /// The entry of a user.
    pub fn account(&self, user_id: &str) -> Option<&AccountOutcome> {
        self.accounts.iter().find(|a| a.user_id == user_id)
    }

    /// Addresses of the accounts this run created.
    pub fn created(&self) -> Vec<&str> {
        self.accounts
            .iter()
            .filter(|a| a.action == AccountAction::Created)
            .filter_map(|a| a.address.as_deref())
            .collect()
    }
}

/// A destination that creates domains and accounts.
///
/// Contracts: both methods are idempotent (a second run with the same input creates nothing
/// and changes nothing). An account that exists is never recreated, and its password and
/// name are never changed. A failure of one account is reported in its [`AccountOutcome`]
/// and never stops the others. `Err` is for what stops provisioning as a whole: wrong
/// administrator credentials, an unreadable CA file, a credentials report that cannot be
/// written ([`ErrorClass::Fatal`]), or a domain list the server would not give after the
/// bounded retries (its class says whether trying later may help).
pub trait AccountProvisioner {
    type Error: std::error::Error + Classify + Send + Sync + 'static;

    /// Makes sure each domain exists, creating the missing ones. A domain that cannot be
    /// created is `DomainAction::Failed` (its users then fail too).
    fn ensure_domains(
        &self,
        domains: &[String],
    ) -> impl Future<Output = Result<Vec<(String, DomainAction)>, Self::Error>> + Send;

    /// Creates the account, or merges into the one that exists (adding missing aliases).
    fn ensure_account(
        &self,
        account: &AccountPlan,
    ) -> impl Future<Output = Result<AccountOutcome, Self::Error>> + Send;

    /// Creates the group or mailing list with its members, or merges into the one that
    /// exists: missing members are added, none is removed, the list is never recreated. An
    /// address held by an account of another kind is a failure of this list alone.
    fn ensure_list(
        &self,
        list: &ListPlan,
    ) -> impl Future<Output = Result<ListOutcome, Self::Error>> + Send;

    /// Plans with `rules`, then ensures every domain, account and list (lists last, so their
    /// members exist). One outcome per user and per group. A member whose account failed is
    /// left out of its lists (a later run adds it).
    fn provision(
        &self,
        users: &[DirectoryUser],
        groups: &[DirectoryGroup],
        domains: &[TenantDomain],
        rules: &AccountRules,
    ) -> impl Future<Output = Result<ProvisionOutcome, Self::Error>> + Send
    where
        Self: Sync,
    {
        async move {
            let plan = plan(users, groups, domains, rules);
            let domain_results = self.ensure_domains(&plan.domains).await?;
            let failed_domains: BTreeMap<&str, &str> = domain_results
                .iter()
                .filter_map(|(d, a)| match a {
                    DomainAction::Failed { reason } => Some((d.as_str(), reason.as_str())),
                    _ => None,
                })
                .collect();
            let domain_failure = |domain: &str| {
                failed_domains
                    .get(domain)
                    .map(|reason| format!("domain {domain} could not be created: {reason}"))
            };
            let mut by_user = BTreeMap::new();
            for account in &plan.accounts {
                let outcome = match domain_failure(account.domain()) {
                    Some(reason) => AccountOutcome::failed(account, reason, ErrorClass::SkipItem),
                    None => self.ensure_account(account).await?,
                };
                by_user.insert(account.user_id.clone(), outcome);
            }
            let failed_accounts: BTreeSet<&str> = by_user
                .values()
                .filter(|o| matches!(o.action, AccountAction::Failed { .. }))
                .filter_map(|o| o.address.as_deref())
                .collect();
            let mut by_group = BTreeMap::new();
            for list in &plan.lists {
                let mut list = list.clone();
                list.members.retain(|m| {
                    let keep = !failed_accounts.contains(m.as_str());
                    if !keep {
                        list.notes.push(format!(
                            "member {m} left out: its account could not be set up"
                        ));
                    }
                    keep
                });
                let outcome = match domain_failure(list.domain()) {
                    Some(reason) => ListOutcome::new(
                        &list,
                        AccountAction::Failed {
                            reason,
                            class: ErrorClass::SkipItem,
                        },
                    ),
                    None => self.ensure_list(&list).await?,
                };
                by_group.insert(list.group_id.clone(), outcome);
            }
            for skipped in plan.skipped {
                by_user.insert(skipped.user_id.clone(), skipped);
            }
            for skipped in plan.skipped_lists {
                by_group.insert(skipped.group_id.clone(), skipped);
            }
            let accounts = users.iter().filter_map(|u| by_user.remove(&u.id)).collect();
            let lists = groups
                .iter()
                .filter_map(|g| by_group.remove(&g.id))
                .collect();
            Ok(ProvisionOutcome {
                domains: domain_results,
                accounts,
                lists,
            })
        }
    }
}

/// The SMTP addresses of a directory object, primary first, lower case, without duplicates.
/// `fallback` (a user's UPN: a sign-in name, not necessarily an address) is used only when
/// there is no address at all.
fn smtp_addresses(mail: Option<&str>, proxies: &[String], fallback: Option<&str>) -> Vec<String> {
    let mut primary = mail.filter(|m| m.contains('@')).map(str::to_string);
    let mut others = Vec::new();
    for p in proxies {
        match p.split_once(':') {
            Some(("SMTP", a)) => primary = primary.or(Some(a.to_string())),
            Some((t, a)) if t.eq_ignore_ascii_case("smtp") => others.push(a.to_string()),
            _ => {}
        }
    }
    if primary.is_none() && others.is_empty() {
        primary = fallback.map(str::to_string);
    }
    let mut out: Vec<String> = Vec::new();
    for a in primary.into_iter().chain(others) {
        let a = a.trim().to_lowercase();
        if a.contains('@') && !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// Where a source domain goes: `Some(destination domain)` or `None` (left out).
fn map_domain(domain: &str, verified: &BTreeSet<String>, rules: &AccountRules) -> Option<String> {
    if let Some(to) = rules
        .domain_map
        .iter()
        .find(|(from, _)| from.trim().eq_ignore_ascii_case(domain))
        .map(|(_, to)| to.trim().to_lowercase())
    {
        return Some(to);
    }
    if !verified.contains(domain) {
        return None;
    }
    if rules.skip_onmicrosoft && domain.ends_with(".onmicrosoft.com") {
        return None;
    }
    Some(domain.to_string())
}

/// The destination addresses of a directory object: its SMTP addresses whose domain is
/// verified (or mapped) and not left out, with the domain mapped, without duplicates.
fn destination_addresses(
    mail: Option<&str>,
    proxies: &[String],
    fallback: Option<&str>,
    verified: &BTreeSet<String>,
    rules: &AccountRules,
) -> Vec<String> {
    smtp_addresses(mail, proxies, fallback)
        .into_iter()
        .filter_map(|a| {
            let (local, domain) = a.rsplit_once('@')?;
            Some(format!("{local}@{}", map_domain(domain, verified, rules)?))
        })
        .fold(Vec::new(), |mut acc, a| {
            if !acc.contains(&a) {
                acc.push(a);
            }
            acc
        })
}

/// Addresses given out in one plan: each belongs to one account or list.
#[derive(Default)]
struct Claims {
    taken: BTreeSet<String>,
    domains: BTreeSet<String>,
}

impl Claims {
    /// Claims the first address and the free others (the aliases). `Err` with the reason when
    /// there is no address, or the first is taken.
    fn claim(&mut self, addresses: &[String]) -> Result<(String, Vec<String>), String> {
        let Some(address) = addresses.first().cloned() else {
            return Err("no address in a migrated domain".into());
        };
        if !self.taken.insert(address.clone()) {
            return Err(format!(
                "{address} already belongs to another user or group of this run"
            ));
        }
        let aliases: Vec<String> = addresses[1..]
            .iter()
            .filter(|a| self.taken.insert((*a).clone()))
            .cloned()
            .collect();
        for a in std::iter::once(&address).chain(&aliases) {
            if let Some((_, d)) = a.rsplit_once('@') {
                self.domains.insert(d.to_string());
            }
        }
        Ok((address, aliases))
    }
}

/// A display name, or the address when there is none.
fn name_or(name: Option<&String>, address: &str) -> String {
    name.filter(|n| !n.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| address.to_string())
}

/// Decides the destination's domains, accounts and lists. Pure: no I/O.
///
/// - Addresses come from `mail` and `proxyAddresses` (`SMTP:`/`smtp:`), or the UPN for a user
///   with neither; each is kept if its domain is verified (or mapped) and not left out, with
///   the domain mapped.
/// - The account's address is the first kept one (the primary unless its domain is left
///   out); the others become aliases.
/// - Shared mailboxes follow `rules.shared_mailboxes`, room and equipment mailboxes
///   `rules.resource_mailboxes` (whether or not their sign-in is blocked, as it usually is),
///   other users with a blocked sign-in `rules.disabled_users`. A room or equipment account
///   is a resource unless `rules.resources_as` says `user` ([`ResourceKind::of`]).
/// - A user with no kept address, or whose address another user already took, is skipped.
/// - Groups become lists per `rules.groups` ([`ListKind::for_group`]), addressed the same
///   way after the users (an address a user holds is not given to a group). Their members
///   are the destination addresses of member users that have an account in this plan, of
///   member groups that have a list, and of contacts as they are; other members are left
///   out with a note.
pub fn plan(
    users: &[DirectoryUser],
    groups: &[DirectoryGroup],
    domains: &[TenantDomain],
    rules: &AccountRules,
) -> Plan {
    let verified: BTreeSet<String> = domains
        .iter()
        .filter(|d| d.is_verified)
        .map(|d| d.name.trim().to_lowercase())
        .collect();
    let mut plan = Plan::default();
    let mut claims = Claims::default();
    for user in users {
        let rule = match deciding_rule(user.kind, user.account_enabled) {
            Some(RuleFor::SharedMailboxes) => (rules.shared_mailboxes, "a shared mailbox"),
            Some(RuleFor::ResourceMailboxes) if user.kind == MailboxKind::Room => {
                (rules.resource_mailboxes, "a room mailbox")
            }
            Some(RuleFor::ResourceMailboxes) => (rules.resource_mailboxes, "an equipment mailbox"),
            Some(RuleFor::DisabledUsers) => (rules.disabled_users, "a disabled user"),
            None => (AccountRule::Create, ""),
        };
        let addresses = destination_addresses(
            user.mail.as_deref(),
            &user.proxy_addresses,
            Some(&user.user_principal_name),
            &verified,
            rules,
        );
        if rule.0 == AccountRule::Skip {
            let reason = format!("{} (configured rule: skip)", rule.1);
            let first = addresses.first().cloned();
            plan.skipped
                .push(AccountOutcome::skipped(&user.id, first, reason));
            continue;
        }
        match claims.claim(&addresses) {
            Ok((address, aliases)) => plan.accounts.push(AccountPlan {
                user_id: user.id.clone(),
                display_name: name_or(user.display_name.as_ref(), &address),
                address,
                aliases,
                resource: ResourceKind::of(user.kind, rules.resources_as),
            }),
            Err(reason) => plan.skipped.push(AccountOutcome::skipped(
                &user.id,
                addresses.first().cloned(),
                reason,
            )),
        }
    }
    for group in groups {
        let Some(kind) = ListKind::for_group(group.kind, rules.groups) else {
            continue;
        };
        let addresses = destination_addresses(
            group.mail.as_deref(),
            &group.proxy_addresses,
            None,
            &verified,
            rules,
        );
        let skipped = |reason: String| ListOutcome {
            group_id: group.id.clone(),
            address: addresses.first().cloned(),
            kind,
            action: AccountAction::Skipped { reason },
            members_added: Vec::new(),
            notes: Vec::new(),
        };
        match claims.claim(&addresses) {
            Ok((address, aliases)) => plan.lists.push(ListPlan {
                group_id: group.id.clone(),
                display_name: name_or(group.display_name.as_ref(), &address),
                address,
                aliases,
                kind,
                members: Vec::new(),
                notes: Vec::new(),
            }),
            Err(reason) => plan.skipped_lists.push(skipped(reason)),
        }
    }
    let account_of: BTreeMap<&str, &str> = plan
        .accounts
        .iter()
        .map(|a| (a.user_id.as_str(), a.address.as_str()))
        .collect();
    let list_of: BTreeMap<String, String> = plan
        .lists
        .iter()
        .map(|l| (l.group_id.clone(), l.address.clone()))
        .collect();
    for list in &mut plan.lists {
        let Some(group) = groups.iter().find(|g| g.id == list.group_id) else {
            continue;
        };
        for member in &group.members {
            let address = match member {
                DirectoryMember::User { id, mail } => match account_of.get(id.as_str()) {
                    Some(a) => Ok(a.to_string()),
                    None => Err(format!(
                        "member {} left out: no account for this user at the destination in this run",
                        mail.as_deref().unwrap_or(id)
                    )),
                },
                DirectoryMember::Group { id } => list_of.get(id).cloned().ok_or_else(|| {
                    format!("member group {id} left out: it has no list at the destination")
                }),
                DirectoryMember::Contact { mail } => Ok(mail.trim().to_lowercase()),
            };
            match address {
                Ok(a) if a == list.address => {}
                Ok(a) if !list.members.contains(&a) => list.members.push(a),
                Ok(_) => {}
                Err(note) => list.notes.push(note),
            }
        }
    }
    plan.domains = claims.domains.into_iter().collect();
    plan
}

/// The credentials report: a CSV `address,password` (the format of an accounts CSV, so later
/// runs can read it back), created with file mode 0600 and only ever appended to, so the
/// passwords of earlier runs are kept. The only place a generated password is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsReport {
    path: PathBuf,
}

/// The credentials report cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the credentials report {path}")]
pub struct ReportError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl CredentialsReport {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CredentialsReport { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that the report can be written before any account is created: creates it
    /// (mode 0600) if missing, and narrows the mode of an existing one to 0600.
    pub fn prepare(&self) -> Result<(), ReportError> {
        self.open().map(drop)
    }

    /// Appends one account and flushes it to disk. The line goes out in one `write(2)` on a
    /// file opened for appending, so a crash leaves whole lines, and runs that share the file
    /// never interleave within a line.
    pub fn append(&self, address: &str, password: &Secret) -> Result<(), ReportError> {
        let mut file = self.open()?;
        let fail = |source| ReportError {
            path: self.path.clone(),
            source,
        };
        let line = Secret::new(format!("{address},{}\n", password.expose()));
        file.write_all(line.expose().as_bytes()).map_err(fail)?;
        file.sync_data().map_err(fail)
    }

    /// Opens the report through [`crate::private_files::open_private_append`]: never through a
    /// symbolic link, only a regular file of the running user, mode 0600 (an owner-only access
    /// list on Windows).
    fn open(&self) -> Result<std::fs::File, ReportError> {
        let fail = |source| ReportError {
            path: self.path.clone(),
            source,
        };
        let mut file = crate::private_files::open_private_append(&self.path).map_err(fail)?;
        if file.metadata().map_err(fail)?.len() == 0 {
            file.write_all(b"address,password\n").map_err(fail)?;
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, mail: &str, proxies: &[&str]) -> DirectoryUser {
        DirectoryUser {
            id: id.into(),
            user_principal_name: mail.into(),
            mail: Some(mail.into()),
            display_name: Some(format!("User {id}")),
            account_enabled: Some(true),
            proxy_addresses: proxies.iter().map(|p| p.to_string()).collect(),
            kind: MailboxKind::User,
        }
    }

    fn domains() -> Vec<TenantDomain> {
        ["contoso.com", "fabrikam.com", "contoso.onmicrosoft.com"]
            .iter()
            .map(|d| TenantDomain {
                name: d.to_string(),
                is_verified: true,
            })
            .chain([TenantDomain {
                name: "unverified.com".into(),
                is_verified: false,
            }])
            .collect()
    }

    #[test]
    fn addresses_are_mapped_filtered_and_deduplicated() {
        let users = vec![
            user(
                "1",
                "Adele@Contoso.com",
                &[
                    "SMTP:adele@contoso.com",
                    "smtp:av@fabrikam.com",
                    "smtp:adele@contoso.onmicrosoft.com",
                    "smtp:a@unverified.com",
                    "SIP:adele@contoso.com",
                ],
            ),
            user("2", "bob@contoso.onmicrosoft.com", &[]),
            DirectoryUser {
                mail: None,
                user_principal_name: "carol@fabrikam.com".into(),
                ..user("3", "", &["smtp:c@contoso.com"])
            },
            DirectoryUser {
                mail: None,
                user_principal_name: "dave@fabrikam.com".into(),
                ..user("4", "", &[])
            },
        ];
        let p = plan(&users, &[], &domains(), &AccountRules::default());
        assert_eq!(p.domains, ["contoso.com", "fabrikam.com"]);
        let addresses: Vec<&str> = p.accounts.iter().map(|a| a.address.as_str()).collect();
        // The UPN is an address only for a user without any other.
        assert_eq!(
            addresses,
            ["adele@contoso.com", "c@contoso.com", "dave@fabrikam.com"]
        );
        assert!(p.accounts[1].aliases.is_empty());
        assert_eq!(p.accounts[0].aliases, ["av@fabrikam.com"]);
        assert!(
            matches!(&p.skipped[0].action, AccountAction::Skipped { reason } if reason.contains("no address"))
        );

        let rules = AccountRules {
            domain_map: [(
                "contoso.onmicrosoft.com".to_string(),
                "contoso.com".to_string(),
            )]
            .into(),
            ..AccountRules::default()
        };
        let p = plan(&users, &[], &domains(), &rules);
        assert_eq!(p.accounts.len(), 4);
        assert_eq!(p.accounts[1].address, "bob@contoso.com");
        // The onmicrosoft alias of Adele maps onto her own primary: no duplicate alias.
        assert_eq!(p.accounts[0].aliases, ["av@fabrikam.com"]);
    }

    #[test]
    fn disabled_and_shared_follow_their_rules_and_addresses_are_claimed_once() {
        let mut disabled = user("d", "gone@contoso.com", &[]);
        disabled.account_enabled = Some(false);
        let mut shared = user("s", "info@contoso.com", &[]);
        shared.account_enabled = Some(false);
        shared.kind = MailboxKind::Shared;
        let twin = user("t", "info@contoso.com", &[]);
        let users = vec![disabled, shared, twin];
        let p = plan(&users, &[], &domains(), &AccountRules::default());
        let ids: Vec<&str> = p.accounts.iter().map(|a| a.user_id.as_str()).collect();
        assert_eq!(ids, ["s"]);
        assert_eq!(p.skipped.len(), 2);
        assert!(p.skipped.iter().any(|s| matches!(&s.action, AccountAction::Skipped { reason } if reason.contains("disabled"))));
        assert!(p.skipped.iter().any(|s| matches!(&s.action, AccountAction::Skipped { reason } if reason.contains("another user"))));
        // Rooms and equipment follow their own rule, whatever their (usually blocked) sign-in.
        let mut room = user("r", "room1@contoso.com", &[]);
        room.account_enabled = Some(false);
        room.kind = MailboxKind::Room;
        let mut beamer = user("e", "beamer@contoso.com", &[]);
        beamer.account_enabled = Some(false);
        beamer.kind = MailboxKind::Equipment;
        let resources = vec![room, beamer];
        let p = plan(&resources, &[], &domains(), &AccountRules::default());
        assert_eq!(p.accounts.len(), 2);
        let rules = AccountRules {
            resource_mailboxes: AccountRule::Skip,
            disabled_users: AccountRule::Create,
            ..AccountRules::default()
        };
        let p = plan(&resources, &[], &domains(), &rules);
        assert!(p.accounts.is_empty());
        assert!(p.skipped.iter().any(
            |s| matches!(&s.action, AccountAction::Skipped { reason } if reason.contains("room"))
        ));
        assert!(p.skipped.iter().any(|s| matches!(&s.action, AccountAction::Skipped { reason } if reason.contains("equipment"))));
        let rules = AccountRules {
            disabled_users: AccountRule::Create,
            shared_mailboxes: AccountRule::Skip,
            ..AccountRules::default()
        };
        let p = plan(&users, &[], &domains(), &rules);
        let ids: Vec<&str> = p.accounts.iter().map(|a| a.user_id.as_str()).collect();
        assert_eq!(ids, ["d", "t"]);
    }

    fn group(
        id: &str,
        mail: &str,
        kind: GroupKind,
        members: Vec<DirectoryMember>,
    ) -> DirectoryGroup {
        DirectoryGroup {
            id: id.into(),
            display_name: Some(format!("Group {id}")),
            mail: Some(mail.into()),
            proxy_addresses: vec![
                format!("SMTP:{mail}"),
                format!("smtp:{id}@contoso.onmicrosoft.com"),
            ],
            kind,
            members,
        }
    }

    #[test]
    fn groups_become_lists_with_their_members_mapped() {
        let mut off = user("off", "off@contoso.com", &[]);
        off.account_enabled = Some(false);
        let users = vec![
            user("1", "Adele@contoso.com", &[]),
            user("2", "bob@fabrikam.com", &[]),
            off,
        ];
        let member = |id: &str| DirectoryMember::User {
            id: id.into(),
            mail: Some(format!("{id}@contoso.com")),
        };
        let groups = vec![
            group(
                "team",
                "Team@contoso.com",
                GroupKind::Microsoft365,
                vec![member("1"), member("2"), member("1")],
            ),
            group(
                "all",
                "all@fabrikam.com",
                GroupKind::Distribution,
                vec![
                    DirectoryMember::Group { id: "team".into() },
                    member("off"),
                    member("elsewhere"),
                    DirectoryMember::Contact {
                        mail: "Partner@Example.org".into(),
                    },
                ],
            ),
            group(
                "sec",
                "sec@contoso.com",
                GroupKind::MailEnabledSecurity,
                vec![member("2")],
            ),
            // Its address is a user's: the user keeps it.
            group("clash", "bob@fabrikam.com", GroupKind::Distribution, vec![]),
        ];
        let rules = |groups| AccountRules {
            groups,
            ..AccountRules::default()
        };
        let p = plan(&users, &groups, &domains(), &rules(GroupRule::Skip));
        assert!(p.lists.is_empty() && p.skipped_lists.is_empty());

        let p = plan(&users, &groups, &domains(), &rules(GroupRule::ByKind));
        let lists: Vec<(&str, ListKind, Vec<&str>)> = p
            .lists
            .iter()
            .map(|l| {
                (
                    l.address.as_str(),
                    l.kind,
                    l.members.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            lists,
            [
                (
                    "team@contoso.com",
                    ListKind::Group,
                    vec!["adele@contoso.com", "bob@fabrikam.com"]
                ),
                (
                    "all@fabrikam.com",
                    ListKind::MailingList,
                    vec!["team@contoso.com", "partner@example.org"]
                ),
                (
                    "sec@contoso.com",
                    ListKind::MailingList,
                    vec!["bob@fabrikam.com"]
                ),
            ]
        );
        // The onmicrosoft.com alias is left out with its domain.
        assert!(p.lists.iter().all(|l| l.aliases.is_empty()));
        assert_eq!(p.lists[1].notes.len(), 2, "{:?}", p.lists[1].notes);
        assert_eq!(p.skipped_lists.len(), 1);
        assert!(
            matches!(&p.skipped_lists[0].action, AccountAction::Skipped { reason } if reason.contains("already belongs"))
        );

        let kinds = |rule| {
            plan(&users, &groups, &domains(), &rules(rule))
                .lists
                .iter()
                .map(|l| l.kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(GroupRule::MailingLists), [ListKind::MailingList; 3]);
        assert_eq!(kinds(GroupRule::Groups), [ListKind::Group; 3]);
    }

    #[cfg(unix)]
    #[test]
    fn the_credentials_report_is_private_and_appended_to() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.csv");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let report = CredentialsReport::new(&path);
        report.append("a@x.com", &Secret::new("pw1")).unwrap();
        CredentialsReport::new(&path)
            .append("b@x.com", &Secret::new("pw2"))
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "address,password\na@x.com,pw1\nb@x.com,pw2\n"
        );
        let accounts = crate::config::read_accounts_csv(&path).unwrap();
        assert_eq!(accounts["b@x.com"].expose(), "pw2");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_credentials_report_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("bashrc");
        std::fs::write(&victim, "# mine\n").unwrap();
        let path = dir.path().join("new.csv");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let report = CredentialsReport::new(&path);
        let e = report.prepare().unwrap_err();
        assert!(format!("{:?}", e.source).contains("symbolic link"), "{e:?}");
        assert!(report.append("a@x.com", &Secret::new("pw1")).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "# mine\n");
    }
}
