//! The engine: what the GUI's "Start" and the CLI's `run` call.
//!
//! [`run_to_folder`] signs in (bad credentials stop the run before anything is written), lists
//! the tenant's users, and migrates their mailboxes in parallel, each at its own Graph pace,
//! into a local folder. Per-item failures are reported and the run goes on; only failures that
//! make every further item fail (sign-in, an unwritable destination) stop it.

mod admission;
mod control;
mod counts;
pub mod estimate;
mod groupware;
mod icewarp;
mod mail;
mod mailboxes;
mod plan;
mod preflight;
mod rebuild;
pub mod report;
mod schedule;
mod spool;
mod verify;
mod worker;

pub use crate::graph::users::MailboxKind;
pub use control::{Cancelled, RunControl};
pub use counts::FILE_NAME as COUNTS_FILE;
pub use mailboxes::{GUEST, NO_MAILBOX, ONLINE_ARCHIVE};
pub use plan::{plan, plan_with, Plan, PlanAction, PlanOptions, PlanUser};
pub use preflight::{
    check_destination, preflight, test_source, CheckVerdict, EndpointCheck, Preflight, ProbeUser,
};
pub use report::{FailureLine, Report, ReportError, ReportFiles};
pub use verify::{verify, FolderVerification, UserVerification, Verification};
pub use worker::{default_worker_name, work, WorkerOptions, WorkerSummary};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::config::{
    read_accounts_csv, ConfigError, DateLimits, DestinationConfig, EmptyBatch, ImapSecurity,
    MasterLoginStyle, RunSettings, SourceConfig, UserSelection, Workload,
};
use crate::dest::dav::{CollectionTemplates, DavSettings};
use crate::dest::folder::FolderStore;
use crate::dest::imap::{ConnectionLimit, ImapLogin, ImapSettings, MasterStyle, Security};
use crate::dest::provision::icewarp::{IceWarpError, IceWarpSettings};
use crate::graph::client::{http_client, GraphClient, GraphError};
use crate::graph::pacer::{AppBudget, Debt, APP_BUDGET, APP_WINDOW};
use crate::graph::types::User;
use crate::graph::{users, AuthError, Pacer, PacerSettings};
use crate::journal::{Journal, JournalError, JournalLocation, LockError, StateLock};
use crate::progress::{ProgressEvent, Reporter, RunSummary, Stats};
use crate::secrets::Secret;
use crate::spec::AccountRules;

/// Why a run stopped before finishing.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot sign in to Microsoft 365: {0}")]
    Auth(#[from] AuthError),
    #[error("cannot read from Microsoft Graph")]
    Source(#[source] GraphError),
    #[error("cannot write to the destination folder {path}")]
    Destination {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the HTTP client")]
    Http(#[source] reqwest::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot set up the IceWarp domains and accounts")]
    Provision(#[source] IceWarpError),
    /// The configured `master_user` was not proved to open the user's own mailbox at IceWarp.
    #[error("{0}")]
    MasterLogin(String),
    /// The configured batch selects nobody (`[users] batch`).
    #[error(transparent)]
    Selection(#[from] EmptyBatch),
    /// Another run holds the state folder ([`LockError::Busy`], code `busy`), or it cannot be
    /// locked.
    #[error(transparent)]
    StateLock(#[from] LockError),
    /// The plan was cancelled ([`PlanOptions::cancel`]).
    #[error("the plan was cancelled")]
    PlanCancelled,
}

impl EngineError {
    /// A stable machine-readable code for the IPC boundary and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Auth(e) => e.code(),
            EngineError::Source(GraphError::Auth(e)) => e.code(),
            EngineError::Source(_) => "source",
            EngineError::Destination { .. } => "destination",
            EngineError::Http(_) => "internal",
            EngineError::Journal(_) => "state",
            EngineError::Provision(_) | EngineError::MasterLogin(_) => "destination",
            EngineError::Selection(_) => "selection",
            EngineError::StateLock(LockError::Busy { .. }) => "busy",
            EngineError::StateLock(_) => "state",
            EngineError::PlanCancelled => "cancelled",
        }
    }
}

/// Where the mail goes.
#[derive(Debug, Clone)]
// Built once per run and passed by reference: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Destination {
    /// One Maildir++ tree per user under this folder.
    Folder(PathBuf),
    /// An IMAP server, one login per user.
    Imap {
        settings: ImapSettings,
        logins: ImapLogins,
        /// The CalDAV/CardDAV server for calendars, contacts and tasks; `None`: mail only.
        dav: Option<DavSettings>,
    },
    /// An IceWarp server: domains and accounts are created (or merged into) through its admin
    /// API before any data moves; mail goes over IMAP, groupware over its WebDAV.
    IceWarp(Box<IceWarpDestination>),
}

/// Everything an IceWarp run needs (see [`Destination::IceWarp`]).
#[derive(Debug, Clone)]
pub struct IceWarpDestination {
    pub api: IceWarpSettings,
    pub rules: AccountRules,
    /// The administrator's password, for the admin API and, with `master_user`, for IMAP.
    pub admin_password: Secret,
    pub imap: ImapSettings,
    /// Passwords of existing accounts (the configured accounts CSV), by lower-case address.
    pub accounts: HashMap<String, Secret>,
    /// An IMAP master user for existing accounts without a known password.
    pub master: Option<(String, MasterStyle)>,
    pub dav: DavSettings,
    /// On the final pass ([`RunOptions::final_pass`]) only: force a password change on the
    /// accounts the migrator created, once their data is written.
    pub expire_passwords: bool,
}

impl Destination {
    /// True when calendars, contacts and tasks have somewhere to go.
    pub fn holds_groupware(&self) -> bool {
        match self {
            Destination::Folder(_) => true,
            Destination::Imap { dav, .. } => dav.is_some(),
            Destination::IceWarp(_) => true,
        }
    }

    /// The destination a configuration file's `[destination]` describes. `admin_password` is
    /// the IMAP master user's password (from the keychain or `DEST_ADMIN_PASSWORD`).
    pub fn from_config(
        config: &DestinationConfig,
        admin_password: Option<Secret>,
    ) -> Result<Self, ConfigError> {
        match config {
            DestinationConfig::Folder { path } => Ok(Destination::Folder(path.clone())),
            DestinationConfig::IceWarp {
                ca_file,
                allow_plaintext_loopback,
                accounts_csv,
                master_user,
                expire_passwords,
                ..
            } => {
                let (Some((api, rules)), Some(endpoints)) = (
                    IceWarpSettings::from_config(config)?,
                    config.icewarp_endpoints(),
                ) else {
                    return Err(ConfigError::Invalid {
                        path: "destination".into(),
                        key: "destination.host",
                        message: "the IceWarp endpoints cannot be derived".into(),
                    });
                };
                let admin_password = admin_password.filter(|p| !p.is_empty()).ok_or_else(|| {
                    ConfigError::Invalid {
                        path: "DEST_ADMIN_PASSWORD".into(),
                        key: "destination.admin_email",
                        message:
                            "the administrator's password is not set: export DEST_ADMIN_PASSWORD"
                                .into(),
                    }
                })?;
                let security = match endpoints.imap_security {
                    ImapSecurity::Tls => Security::Tls,
                    ImapSecurity::Starttls => Security::StartTls,
                    ImapSecurity::Plain => Security::Plain,
                };
                let mut imap =
                    ImapSettings::new(&endpoints.imap_host, endpoints.imap_port, security);
                imap.ca_file = ca_file.clone();
                imap.allow_plaintext_loopback = *allow_plaintext_loopback;
                let mut dav = DavSettings::new(endpoints.webdav_base.clone());
                // IceWarp's WebDAV has no discovery; its layout is fixed (reference/icewarp.md).
                dav.discover = false;
                dav.templates = CollectionTemplates::under(&endpoints.webdav_base);
                dav.ca_file = ca_file.clone();
                dav.allow_plaintext_loopback = *allow_plaintext_loopback;
                let accounts = match accounts_csv {
                    Some(csv) => read_accounts_csv(csv)?,
                    None => HashMap::new(),
                };
                Ok(Destination::IceWarp(Box::new(IceWarpDestination {
                    api,
                    rules,
                    admin_password,
                    imap,
                    accounts,
                    master: master_user.clone().map(|m| (m, MasterStyle::SaslAuthzid)),
                    dav,
                    expire_passwords: *expire_passwords,
                })))
            }
            DestinationConfig::Imap {
                host,
                port,
                security,
                ca_file,
                allow_plaintext_loopback,
                master_user,
                master_style,
                accounts_csv,
                special_folders,
                dav_url,
                connections_per_mailbox,
                max_connections,
            } => {
                let (security, default_port) = match security {
                    ImapSecurity::Tls => (Security::Tls, 993),
                    ImapSecurity::Starttls => (Security::StartTls, 143),
                    ImapSecurity::Plain => (Security::Plain, 143),
                };
                let mut settings =
                    ImapSettings::new(host.trim(), port.unwrap_or(default_port), security);
                settings.ca_file = ca_file.clone();
                settings.allow_plaintext_loopback = *allow_plaintext_loopback;
                settings.special_folders = special_folders.clone();
                if let Some(n) = connections_per_mailbox {
                    settings.connections_per_mailbox = (*n).max(1);
                }
                if let Some(n) = max_connections {
                    // One limit per run, shared by every mailbox through the settings' clones.
                    settings.connection_limit = ConnectionLimit::new(*n);
                }
                let logins = match (master_user, accounts_csv) {
                    (Some(master_user), _) => ImapLogins::Master {
                        master_user: master_user.clone(),
                        password: admin_password.filter(|p| !p.is_empty()).ok_or_else(|| {
                            ConfigError::Invalid {
                                path: "DEST_ADMIN_PASSWORD".into(),
                                key: "destination.master_user",
                                message: "the master user's password is not set: export DEST_ADMIN_PASSWORD".into(),
                            }
                        })?,
                        style: match master_style {
                            MasterLoginStyle::Authzid => MasterStyle::SaslAuthzid,
                            MasterLoginStyle::Dovecot => MasterStyle::DovecotStar,
                        },
                    },
                    (None, Some(csv)) => ImapLogins::Accounts(read_accounts_csv(csv)?),
                    (None, None) => {
                        return Err(ConfigError::Invalid {
                            path: "".into(),
                            key: "destination.master_user",
                            message: "set master_user or accounts_csv".into(),
                        })
                    }
                };
                let dav = dav_url.as_deref().map(|url| {
                    let mut dav = DavSettings::new(url.trim());
                    dav.ca_file = ca_file.clone();
                    dav.allow_plaintext_loopback = *allow_plaintext_loopback;
                    dav
                });
                Ok(Destination::Imap {
                    settings,
                    logins,
                    dav,
                })
            }
        }
    }
}

/// How the migrator logs in to each user's IMAP mailbox.
#[derive(Debug, Clone)]
pub enum ImapLogins {
    /// An administrator acting for every user.
    Master {
        master_user: String,
        password: Secret,
        style: MasterStyle,
    },
    /// Each user's own password, by lower-case address.
    Accounts(HashMap<String, Secret>),
    /// Each user's own password and, where it is not the address, the name the account logs
    /// in with over IMAP and WebDAV (IceWarp's `U_Login` under the username login policy),
    /// both by lower-case address.
    /// With `master`, an administrator logs in over IMAP for the accounts without a known
    /// password (IceWarp allows it only once a preflight proved the master session opens the
    /// user's own mailbox).
    Named {
        accounts: HashMap<String, Secret>,
        login_names: HashMap<String, String>,
        master: Option<(String, Secret, MasterStyle)>,
    },
    /// An administrator acting for every user over IMAP (no dependence on each account's
    /// password, which the run may have just generated), and each user's own password where
    /// known for what has no master login (CalDAV/CardDAV).
    MasterAndAccounts {
        accounts: HashMap<String, Secret>,
        master_user: String,
        password: Secret,
        style: MasterStyle,
    },
}

impl ImapLogins {
    /// The login for one mailbox; `None` when no password is known for it.
    pub fn login_for(&self, address: &str) -> Option<ImapLogin> {
        match self {
            ImapLogins::Master {
                master_user,
                password,
                style,
            }
            | ImapLogins::MasterAndAccounts {
                master_user,
                password,
                style,
                ..
            } => Some(ImapLogin::Master {
                user: address.to_string(),
                master_user: master_user.clone(),
                master_password: password.clone(),
                style: *style,
            }),
            ImapLogins::Accounts(_) | ImapLogins::Named { .. } => {
                let own = self
                    .own_password(address)
                    .map(|password| ImapLogin::Password {
                        user: self.login_name(address),
                        password,
                    });
                match self {
                    ImapLogins::Named {
                        master: Some((master_user, password, style)),
                        ..
                    } => own.or_else(|| {
                        Some(ImapLogin::Master {
                            user: address.to_string(),
                            master_user: master_user.clone(),
                            master_password: password.clone(),
                            style: *style,
                        })
                    }),
                    _ => own,
                }
            }
        }
    }

    /// The name `address` logs in with using its own password (IMAP and WebDAV): its login
    /// name when one is known, else the address itself.
    pub fn login_name(&self, address: &str) -> String {
        match self {
            ImapLogins::Named { login_names, .. } => login_names
                .get(&address.trim().to_lowercase())
                .cloned()
                .unwrap_or_else(|| address.to_string()),
            _ => address.to_string(),
        }
    }

    /// The user's own password, when one is known (CalDAV/CardDAV need it).
    pub fn own_password(&self, address: &str) -> Option<Secret> {
        match self {
            ImapLogins::Master { .. } => None,
            ImapLogins::Accounts(accounts)
            | ImapLogins::Named { accounts, .. }
            | ImapLogins::MasterAndAccounts { accounts, .. } => {
                accounts.get(&address.trim().to_lowercase()).cloned()
            }
        }
    }
}

/// The destination as the workers use it.
// One per run, shared by reference: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Store {
    Folder(FolderStore),
    Imap {
        settings: ImapSettings,
        logins: ImapLogins,
    },
}

/// Tuning for a run. The defaults suit Exchange Online.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Mailboxes migrated at the same time (each with its own Graph budget).
    pub parallel_mailboxes: usize,
    /// Per-mailbox Graph limits and retry policy.
    pub pacer: PacerSettings,
    /// Folder for the journal (created 0700). `None` runs without one: the destination's own
    /// check still prevents duplicates, but nothing is recorded for reports or resumption.
    pub state_dir: Option<PathBuf>,
    /// Which mailboxes to migrate (all by default).
    pub users: UserSelection,
    /// Incremental passes delete at the destination the messages deleted at the source (only
    /// copies the migrator made). Off by default: deleted mail is kept.
    pub mirror_deletions: bool,
    /// What to migrate of each mailbox (everything by default).
    pub workloads: Vec<Workload>,
    /// Items left out by date (none by default).
    pub limits: DateLimits,
    /// How long each mailbox waits for a destination server that is down (IMAP connections
    /// and DAV writes) before it fails; 10 minutes by default (`[run] outage_wait`).
    pub outage_wait: std::time::Duration,
    /// Message bodies downloading at once across the run (`[run] max_downloads`).
    pub max_downloads: usize,
    /// Migrate system folders too (`[run] include_system_folders`; off by default).
    pub include_system_folders: bool,
    /// The cut-over pass (the CLI's `run --final`): only then do cut-over actions such as
    /// IceWarp's `expire_passwords` run. Off by default.
    pub final_pass: bool,
    /// What replaces the destination's hierarchy separator inside a folder name (`[run]
    /// folder_separator_substitute`, default `∕`).
    pub folder_separator_substitute: String,
    /// A shared PostgreSQL journal (`[journal] url`) instead of SQLite in `state_dir`.
    pub journal: Option<crate::journal::PostgresSettings>,
    /// A journal already open, used instead of opening one, and no state-folder lock taken:
    /// a worker's handle fenced by its lease on the one mailbox it runs ([`work`]).
    pub leased_journal: Option<Arc<Journal>>,
    /// The users as already listed, used instead of listing the tenant again: a worker's
    /// leased user, from the listing it queued the mailboxes from ([`work`]).
    pub listed_users: Option<Vec<User>>,
    /// A Graph client already signed in, used instead of signing in again: a worker's, whose
    /// token (cached until near its expiry, renewed after a 401) and download cap serve every
    /// mailbox it leases ([`work`]).
    pub signed_in: Option<GraphClient>,
    /// The size of the one mailbox a worker leased, as its queue holds it (items; 0: not
    /// known), used instead of reading it again ([`work`]).
    pub leased_size: Option<u64>,
}

impl RunOptions {
    /// The run's journal: the PostgreSQL one when [`RunOptions::journal`] is set (its password
    /// from [`crate::journal::PASSWORD_VARIABLE`]), else SQLite in `state_dir`.
    pub fn open_journal(&self, state_dir: &Path) -> Result<Journal, JournalError> {
        let location = match &self.journal {
            Some(settings) => JournalLocation::Postgres(Box::new(settings.clone())),
            None => JournalLocation::StateFolder(state_dir.to_path_buf()),
        };
        Journal::open_at(&location)
    }

    /// Options from a configuration file's `[run]` tuning and `users` selection, every workload
    /// and no date limit ([`crate::config::FileConfig::run_options`] adds the spec's).
    pub(crate) fn from_settings(run: &RunSettings, users: &UserSelection) -> Self {
        RunOptions {
            parallel_mailboxes: run.parallel_mailboxes,
            pacer: PacerSettings {
                max_in_flight: run.max_in_flight,
                budget: run.requests_per_window,
                window: std::time::Duration::from_secs(run.window_seconds),
                app: Some(AppBudget::new(
                    run.app_requests_per_window,
                    std::time::Duration::from_secs(run.app_window_seconds),
                )),
                ..PacerSettings::default()
            },
            state_dir: run.state_dir.clone(),
            users: users.clone(),
            mirror_deletions: run.mirror_deletions,
            workloads: Workload::ALL.to_vec(),
            limits: DateLimits::default(),
            outage_wait: run.outage_wait,
            max_downloads: run.max_downloads,
            include_system_folders: run.include_system_folders,
            final_pass: false,
            folder_separator_substitute: run.folder_separator_substitute.clone(),
            journal: None,
            leased_journal: None,
            listed_users: None,
            signed_in: None,
            leased_size: None,
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            parallel_mailboxes: 8,
            pacer: PacerSettings {
                app: Some(AppBudget::new(APP_BUDGET, APP_WINDOW)),
                ..PacerSettings::default()
            },
            state_dir: None,
            users: UserSelection::default(),
            mirror_deletions: false,
            workloads: Workload::ALL.to_vec(),
            limits: DateLimits::default(),
            outage_wait: crate::config::DEFAULT_OUTAGE_WAIT,
            max_downloads: crate::graph::client::DEFAULT_MAX_DOWNLOADS,
            include_system_folders: false,
            final_pass: false,
            folder_separator_substitute: crate::convert::folder_name::DEFAULT_SEPARATOR_SUBSTITUTE
                .to_string(),
            journal: None,
            leased_journal: None,
            listed_users: None,
            signed_in: None,
            leased_size: None,
        }
    }
}

/// Migrates every mailbox of the tenant into `out` (one Maildir++ tree per user) with the
/// default [`RunOptions`]. Rerunning it writes only what is missing.
pub async fn run_to_folder(
    source: &SourceConfig,
    secret: &Secret,
    out: &Path,
    reporter: Arc<dyn Reporter>,
    control: RunControl,
) -> Result<RunSummary, EngineError> {
    run_to_folder_with(
        source,
        secret,
        out,
        reporter,
        control,
        RunOptions::default(),
    )
    .await
}

/// [`run_to_folder`] with explicit options.
pub async fn run_to_folder_with(
    source: &SourceConfig,
    secret: &Secret,
    out: &Path,
    reporter: Arc<dyn Reporter>,
    control: RunControl,
    options: RunOptions,
) -> Result<RunSummary, EngineError> {
    let destination = Destination::Folder(out.to_path_buf());
    run(source, secret, &destination, reporter, control, options).await
}

/// Signs in and lists the selected mailboxes (directory calls are paced per tenant,
/// throttling-limits.md), for the commands that read before they compare or estimate.
async fn signed_in_mailboxes(
    source: &SourceConfig,
    secret: &Secret,
    options: &RunOptions,
) -> Result<(GraphClient, Vec<User>), EngineError> {
    let (client, selected) = signed_in_users(source, secret, options).await?;
    Ok((client, selected.members))
}

/// [`signed_in_mailboxes`] with the selected guests too.
async fn signed_in_users(
    source: &SourceConfig,
    secret: &Secret,
    options: &RunOptions,
) -> Result<(GraphClient, Selected), EngineError> {
    let client = GraphClient::new(source, secret, http_client().map_err(EngineError::Http)?)?;
    client.sign_in().await?;
    let tenant_pacer = Pacer::new(options.pacer.clone());
    let listed = users::list_users(&client, &tenant_pacer, |_| {})
        .await
        .map_err(EngineError::Source)?;
    Ok((client, select_mailboxes(listed.items, &options.users)?))
}

/// The domains whose mail moves at the cut-over, for their MX lookups
/// ([`crate::cutover::mx_of`]): those of the selected mailboxes' addresses and `mapped` (the
/// domain map's Microsoft 365 side), as the app's checklist takes them
/// ([`crate::cutover::domains_to_check`]).
pub async fn mail_domains(
    source: &SourceConfig,
    secret: &Secret,
    options: &RunOptions,
    mapped: &[String],
) -> Result<Vec<String>, EngineError> {
    let (_, selected) = signed_in_users(source, secret, options).await?;
    let addresses: Vec<String> = selected
        .members
        .iter()
        .filter_map(|u| u.mail.clone())
        .collect();
    Ok(crate::cutover::domains_to_check(&addresses, mapped))
}

/// The users a selection names, sorted out.
struct Selected {
    /// Members with a `mail` address, in userPrincipalName order, cut to the batch.
    members: Vec<User>,
    /// B2B guests the selection names (every batch lists them): never migrated.
    guests: Vec<User>,
}

/// The users that have a mail address and that `selection` names: members in
/// userPrincipalName order, cut to the selection's batch ([`UserSelection::batch_of`]), and
/// guests apart ([`mailboxes::GUEST`]).
fn select_mailboxes(users: Vec<User>, selection: &UserSelection) -> Result<Selected, EmptyBatch> {
    let (guests, members): (Vec<User>, Vec<User>) = users
        .into_iter()
        .filter(|u| u.mail.as_deref().is_some_and(|m| !m.trim().is_empty()))
        .filter(|u| {
            let mail = u.mail.as_deref().unwrap_or_default();
            selection.selects(&[mail, u.user_principal_name.as_str()])
        })
        .partition(User::is_guest);
    Ok(Selected {
        members: selection.batch_of(members, |u| u.user_principal_name.clone())?,
        guests,
    })
}

/// True when an event listed by Graph is inside the calendar limit
/// ([`DateLimits::keeps_event`]).
fn event_in_limits(limits: &DateLimits, event: &crate::graph::types::Event) -> bool {
    limits.keeps_event(
        event.kind.as_deref(),
        event.end.as_ref().map(|e| e.date_time.as_str()),
        event
            .recurrence
            .as_ref()
            .map(|r| (r.range.kind.as_deref(), r.range.end_date.as_deref())),
    )
}

/// What every mailbox of a run shares, owned so each mailbox runs as its own task.
struct MailboxShared {
    client: GraphClient,
    store: Store,
    /// The journal and this run's id in it.
    journal: Option<(Arc<Journal>, i64)>,
    reporter: Arc<dyn Reporter>,
    control: RunControl,
    workloads: Vec<Workload>,
    /// Each mailbox's Graph limits (every mailbox makes its own pacer from them).
    pacer: PacerSettings,
    mirror_deletions: bool,
    limits: DateLimits,
    outage_wait: std::time::Duration,
    include_system_folders: bool,
    separator_substitute: String,
    dav: Option<DavSettings>,
    icewarp: Option<Arc<crate::dest::provision::icewarp::IceWarpProvisioner>>,
    /// How each mailbox's destination account came to be ([`mailboxes::destinations`]).
    made: HashMap<String, &'static str>,
    /// The running mailboxes' pacers, which the run's admission reads ([`admission`]).
    running: Arc<admission::Running>,
    /// Where a mailbox without a provisioning outcome goes.
    made_elsewhere: &'static str,
}

/// A mailbox's size for the order mailboxes run in (issue 17): the item count of its
/// top-level mail folders, one request that never waits out throttling (transient failures
/// are still retried): a mailbox throttled for an hour must not hold back the first copies.
/// Returns the read and the request budget it spent ([`Pacer::debt`]).
pub(super) async fn read_mailbox_size(
    client: &GraphClient,
    limits: &PacerSettings,
    user_id: &str,
) -> (Result<u64, crate::graph::GraphError>, Debt) {
    let once = Pacer::new(PacerSettings {
        max_throttled: std::time::Duration::ZERO,
        ..limits.clone()
    });
    let size = crate::graph::mail::top_level_items(client, &once, user_id).await;
    (size, once.debt())
}

/// One mailbox's whole migration, mail then groupware, once its slot is free: `size` and
/// `debt` are what sizing it learned and spent, `known` its facts if already read.
///
/// Its pacer is made and counted among the running ([`admission::Running`]), with its
/// `size` left, when this is called: the scheduler has just stopped counting it as queued,
/// and its task may wait a while for a thread on a saturated runtime. Meanwhile its items
/// must not look done: the admission would take the drop for work done, overrate the
/// run's pace, and then no mailbox would look like bounding the finish.
fn migrate_mailbox(
    shared: Arc<MailboxShared>,
    user: User,
    size: u64,
    debt: Debt,
    known: Option<Box<users::MailboxFacts>>,
) -> impl std::future::Future<Output = Result<MailboxOutcome, EngineError>> + Send + 'static {
    // One pacer per mailbox for every workload: Exchange's limits are per app and
    // mailbox, whatever the data (throttling-limits.md, Outlook service limits).
    // Made now, not while queued, so memory does not grow with the queue (issue
    // 17.3), and dropped when the mailbox ends.
    let pacer = Arc::new(Pacer::new(shared.pacer.clone()));
    shared.running.enter(&pacer);
    // Its downloads' place in the run's download lane: the largest first.
    pacer.set_items_left(size);
    mailbox_run(shared, user, debt, known, pacer)
}

/// [`migrate_mailbox`]'s task.
async fn mailbox_run(
    shared: Arc<MailboxShared>,
    user: User,
    debt: Debt,
    known: Option<Box<users::MailboxFacts>>,
    pacer: Arc<Pacer>,
) -> Result<MailboxOutcome, EngineError> {
    let MailboxShared {
        client,
        store,
        reporter,
        control,
        workloads,
        made,
        ..
    } = &*shared;
    let journal = shared
        .journal
        .as_ref()
        .map(|(journal, run)| mail::RunJournal { journal, run: *run });
    let icewarp = shared.icewarp.as_deref();
    // A mailbox whose turn comes after a stop stays queued: no event, not counted.
    if control.is_cancelled() {
        return Ok(MailboxOutcome::NotStarted);
    }
    tracing::debug!(target: "timeline", user = %user.mail.as_deref().unwrap_or_default(), "mailbox begins");
    pacer.take_over(debt).await;
    let facts = match known {
        Some(facts) => *facts,
        None => users::mailbox_facts(client, &pacer, &user.id).await,
    };
    let journal_ref = journal.map(|j| j.journal);
    if facts.no_mailbox {
        mailboxes::report_not_migrated(
            journal_ref,
            reporter.as_ref(),
            &user,
            mailboxes::NO_MAILBOX,
        )?;
        return Ok(MailboxOutcome::NotStarted);
    }
    match (facts.online_archive, journal_ref) {
        (Some(true), _) => mailboxes::report_part_not_migrated(
            journal_ref,
            reporter.as_ref(),
            &user,
            mailboxes::ONLINE_ARCHIVE,
        )?,
        (Some(false), Some(j)) => {
            let address = user.mail.as_deref().unwrap_or_default();
            j.set_user_note_async(&user.id, address, None).await?
        }
        _ => {}
    }
    if let Some(j) = journal_ref {
        let made = made.get(&user.id).copied().unwrap_or(shared.made_elsewhere);
        mailboxes::record_destination(j, &user, &facts, made).await?;
    }
    let address = user.mail.clone().unwrap_or_default();
    tracing::debug!(target: "timeline", user = %address, "mail begins");
    let mut stats = if workloads.contains(&Workload::Mail) {
        let mail = mail::MailboxRun {
            client,
            store,
            journal,
            reporter: reporter.clone(),
            control: control.clone(),
            pacer: &pacer,
            mirror_deletions: shared.mirror_deletions,
            limits: shared.limits,
            outage_wait: shared.outage_wait,
            include_system_folders: shared.include_system_folders,
            separator_substitute: &shared.separator_substitute,
            icewarp,
        };
        mail.migrate(&user).await?
    } else {
        reporter.report(ProgressEvent::UserStarted {
            user: address.clone(),
            folders: 0,
            messages: 0,
        });
        Stats::default()
    };
    tracing::debug!(target: "timeline", user = %address, "groupware begins");
    let groupware = groupware::GroupwareRun {
        client,
        store,
        journal,
        reporter: reporter.clone(),
        control: control.clone(),
        pacer: &pacer,
        workloads,
        mirror_deletions: shared.mirror_deletions,
        dav: shared.dav.as_ref(),
        limits: shared.limits,
        outage_wait: shared.outage_wait,
        icewarp,
    };
    stats.add(&groupware.migrate(&user).await?);
    tracing::debug!(target: "timeline", user = %address, "groupware ends");
    if control.is_cancelled() {
        // Stopped part way: what it copied counts, the mailbox is not finished.
        return Ok(MailboxOutcome::Stopped(stats));
    }
    reporter.report(ProgressEvent::UserFinished {
        user: address,
        stats: stats.clone(),
    });
    Ok(MailboxOutcome::Finished(stats))
}

/// A mailbox whose task panicked: one failure of that mailbox (`(mailbox)`, with the panic's
/// message), recorded as failed in the journal; the run goes on.
fn mailbox_crashed(shared: &MailboxShared, user: &User, reason: &str) -> Result<(), EngineError> {
    let address = user.mail.clone().unwrap_or_default();
    if let Some((journal, _)) = &shared.journal {
        journal.set_user_state(&user.id, &address, "failed")?;
    }
    shared
        .reporter
        .report(crate::progress::ItemName::default().failed(
            &address,
            "",
            "(mailbox)",
            format!("the migrator stopped on an internal error in this mailbox: {reason}"),
        ));
    Ok(())
}

/// How one mailbox's turn in a run ended.
enum MailboxOutcome {
    /// Every workload ran to its end (some items may have failed): counted in
    /// [`RunSummary::users`].
    Finished(Stats),
    /// The run was stopped while it copied: its items count, the mailbox does not.
    Stopped(Stats),
    /// Not migrated: no Exchange mailbox, or its turn came after the run was stopped.
    NotStarted,
}

/// Migrates every selected mailbox of the tenant into `destination`. Locks the state folder
/// (one run at a time: a second one fails at once with [`EngineError::StateLock`], code
/// `busy`), signs in and opens the journal and the destination before anything is written;
/// rerunning it writes only what is missing.
pub async fn run(
    source: &SourceConfig,
    secret: &Secret,
    destination: &Destination,
    reporter: Arc<dyn Reporter>,
    control: RunControl,
    options: RunOptions,
) -> Result<RunSummary, EngineError> {
    let state_dir = options.state_dir.clone();
    let result = run_locked(source, secret, destination, reporter, control, options).await;
    // A journal write that fails mid-run (a full disk) names the state folder and why.
    result.map_err(|e| match (e, state_dir) {
        (EngineError::Journal(j), Some(dir)) => EngineError::Journal(j.in_state_folder(&dir)),
        (e, _) => e,
    })
}

/// [`run`] itself.
async fn run_locked(
    source: &SourceConfig,
    secret: &Secret,
    destination: &Destination,
    reporter: Arc<dyn Reporter>,
    control: RunControl,
    options: RunOptions,
) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    tracing::debug!(target: "timeline", user = "", "engine starts");
    // The state folder first: a full or read-only disk, or another run on it, stops the run
    // before any data moves. The lock is held until this function returns, on every path.
    let (_lock, journal) = match (&options.leased_journal, &options.state_dir) {
        (Some(leased), _) => (None, Some(leased.clone())),
        (None, Some(dir)) => (
            Some(StateLock::acquire(dir)?),
            Some(Arc::new(options.open_journal(dir)?)),
        ),
        (None, None) => (None, None),
    };
    let client = match &options.signed_in {
        Some(client) => client.clone(),
        None => GraphClient::new(source, secret, http_client().map_err(EngineError::Http)?)?
            .with_download_limit(options.max_downloads),
    };
    client.sign_in().await?;
    let provisioner = match destination {
        Destination::IceWarp(d) => Some(Arc::new(icewarp::connect(d).await?)),
        _ => None,
    };
    let mut store = match destination {
        Destination::Folder(out) => {
            Store::Folder(
                FolderStore::open(out).map_err(|source| EngineError::Destination {
                    path: out.display().to_string(),
                    source,
                })?,
            )
        }
        Destination::Imap {
            settings, logins, ..
        } => Store::Imap {
            settings: settings.clone(),
            logins: logins.clone(),
        },
        // Set once the accounts exist, below.
        Destination::IceWarp(d) => Store::Imap {
            settings: d.imap.clone(),
            logins: ImapLogins::Accounts(HashMap::new()),
        },
    };

    let workloads: Vec<Workload> = if destination.holds_groupware() {
        options.workloads.clone()
    } else {
        let skipped: Vec<_> = options
            .workloads
            .iter()
            .filter(|w| **w != Workload::Mail)
            .collect();
        if !skipped.is_empty() {
            tracing::warn!(
                ?skipped,
                "the destination has no CalDAV/CardDAV server (dav_url): only mail is migrated"
            );
        }
        vec![Workload::Mail]
            .into_iter()
            .filter(|w| options.workloads.contains(w))
            .collect()
    };

    // Directory calls are throttled per tenant, not per mailbox (throttling-limits.md).
    let tenant_pacer = Pacer::new(options.pacer.clone());
    let listed = match &options.listed_users {
        Some(users) => crate::graph::paging::Page {
            items: users.clone(),
            bad: Vec::new(),
            delta_link: None,
        },
        None => users::list_users(&client, &tenant_pacer, |_| {})
            .await
            .map_err(EngineError::Source)?,
    };
    for (id, reason) in &listed.bad {
        tracing::warn!(user = %id, %reason, "skipping a user entry Graph returned malformed");
    }
    let Selected {
        members,
        guests: selected_guests,
    } = select_mailboxes(listed.items, &options.users)?;
    for guest in &selected_guests {
        mailboxes::report_not_migrated(
            journal.as_deref(),
            reporter.as_ref(),
            guest,
            mailboxes::GUEST,
        )?;
    }
    // Each mailbox with its facts, and what their reads left its pacer, when they were read
    // before provisioning; the others read theirs when their turn comes, so a large tenant
    // starts at once.
    // Boxed: a mailbox without them (every one outside IceWarp) pays a pointer, not their size.
    type Known = Option<Box<(users::MailboxFacts, Debt)>>;
    let mut mailboxes: Vec<(User, Known)> = members.into_iter().map(|u| (u, None)).collect();
    let mut not_provisioned = 0;
    let mut provisioned = None;
    if let (Destination::IceWarp(d), Some(provisioner)) = (destination, &provisioner) {
        // Accounts are made before data moves: whose mailbox exists, and of what kind, first.
        let users = mailboxes.into_iter().map(|(u, _)| u).collect();
        let mut known = HashMap::new();
        // In the selection's order: provisioning gives a contested address to the first.
        let mut ordered = Vec::new();
        for mailbox in mailboxes::read_facts(&client, &options.pacer, users).await {
            if mailbox.facts.no_mailbox {
                mailboxes::report_not_migrated(
                    journal.as_deref(),
                    reporter.as_ref(),
                    &mailbox.user,
                    mailboxes::NO_MAILBOX,
                )?;
            } else {
                ordered.push(mailbox.user.clone());
                known.insert(mailbox.user.id.clone(), mailbox);
            }
        }
        let verified = match users::verified_domains(&client, &tenant_pacer).await {
            Ok(verified) => Some(verified),
            Err(e) => {
                tracing::warn!("cannot list the tenant's verified domains (Domain.Read.All): domains are taken from the members' addresses: {e}");
                None
            }
        };
        let graph = icewarp::Directory {
            client: &client,
            pacer: &tenant_pacer,
            facts: &known,
            verified: verified.as_deref(),
        };
        let done = icewarp::provision(d, provisioner, graph, ordered, reporter.as_ref()).await?;
        store = done.store;
        mailboxes = done
            .mailboxes
            .into_iter()
            .map(|u| {
                // A queued mailbox keeps no pacer (issue 17.3): it makes its own when it starts.
                let mailbox = known
                    .remove(&u.id)
                    .map(|m| Box::new((m.facts, m.pacer.debt())));
                (u, mailbox)
            })
            .collect();
        not_provisioned = done.failed;
        provisioned = Some(done.outcome);
    }
    tracing::debug!(target: "timeline", user = "", "run begins");
    let run_id = match &journal {
        Some(j) => Some(j.begin_run_async().await?),
        None => None,
    };
    tracing::debug!(target: "timeline", user = "", "run begun");
    let shared_journal = journal.clone().zip(run_id);
    let journal = journal
        .as_deref()
        .zip(run_id)
        .map(|(journal, run)| mail::RunJournal { journal, run });
    reporter.report(ProgressEvent::RunStarted {
        users: mailboxes.len() as u32,
    });
    // A plan's kept counts size the mailboxes without a request: the largest counted first
    // (the scheduler's order, announced so), the uncounted after them in list order, each
    // sized by its request when its turn to be sized comes.
    let kept = counts::MailboxCounts::load(options.state_dir.as_deref());
    let kept_size = |u: &User| kept.items_for_run(&u.id, &workloads, &options.limits);
    mailboxes.sort_by_key(|(u, _)| std::cmp::Reverse(kept_size(u)));
    reporter.report(counts::run_planned(
        &kept,
        &workloads,
        &options.limits,
        mailboxes.iter().map(|(u, _)| u),
    ));
    let made = mailboxes::destinations(provisioned.as_ref());
    let made_elsewhere = match destination {
        Destination::Folder(_) => mailboxes::LOCAL_FOLDER,
        _ => mailboxes::MERGED,
    };

    // What every mailbox's task shares: owned, so each mailbox runs as its own task on the
    // runtime's threads (issue 17), not as one future polled by one thread.
    let shared = Arc::new(MailboxShared {
        client: client.clone(),
        store,
        journal: shared_journal,
        reporter: reporter.clone(),
        control: control.clone(),
        workloads: workloads.clone(),
        pacer: options.pacer,
        mirror_deletions: options.mirror_deletions,
        limits: options.limits,
        outage_wait: options.outage_wait,
        include_system_folders: options.include_system_folders,
        separator_substitute: options.folder_separator_substitute.clone(),
        dav: match destination {
            Destination::Imap { dav, .. } => dav.clone(),
            Destination::IceWarp(d) => Some(d.dav.clone()),
            Destination::Folder(_) => None,
        },
        icewarp: provisioner.clone(),
        made,
        made_elsewhere,
        running: Arc::new(admission::Running::default()),
    });
    // Largest first, each sized on its own pacer (which then migrates it) while others copy.
    let size_one = |(user, known): (User, Known)| {
        let (client, workloads, limits) = (&client, &workloads, &shared.pacer);
        let control = &control;
        let counted = kept_size(&user).or(options.leased_size.filter(|size| *size > 0));
        // A mailbox without Exchange has nothing to size: its facts read (when its turn
        // comes) reports it not migrated.
        let no_mailbox =
            kept.has_no_mailbox(&user.id) || known.as_ref().is_some_and(|m| m.0.no_mailbox);
        async move {
            let (mut facts, mut debt) = match known {
                Some(known) => (Some(Box::new(known.0)), known.1),
                None => (None, Debt::default()),
            };
            // A stopped run starts no mailbox, so it sizes none either.
            let size = if let Some(counted) = counted {
                counted
            } else if no_mailbox {
                0
            } else if workloads.contains(&Workload::Mail) && !control.is_cancelled() {
                // The mailbox's own pacer, made when it starts, then takes over the request's
                // budget and any pause it was answered. A mailbox that cannot be sized runs
                // last; its own run reports why.
                let size;
                (size, debt) = read_mailbox_size(client, limits, &user.id).await;
                match size {
                    Ok(size) => size,
                    // The answer a facts read would get: no second request to learn it.
                    Err(e) if users::is_no_mailbox(&e) => {
                        facts = Some(Box::new(users::MailboxFacts {
                            no_mailbox: true,
                            ..users::MailboxFacts::default()
                        }));
                        0
                    }
                    Err(_) => 0,
                }
            } else {
                0
            };
            (size, (user, size, debt, facts))
        }
    };
    let results = schedule::largest_first(
        mailboxes,
        mailboxes::FACT_READS,
        options.parallel_mailboxes,
        schedule::Spacing {
            every: schedule::START_SPACING,
            stopped: || control.is_cancelled(),
        },
        Some(schedule::Admitting {
            admission: admission::Admission::new(options.parallel_mailboxes),
            samples: admission::probe(),
            running: shared.running.clone(),
        }),
        size_one,
        |(user, size, debt, known): (User, u64, Debt, Option<Box<users::MailboxFacts>>)| {
            let key = user.clone();
            (
                key,
                migrate_mailbox(shared.clone(), user, size, debt, known),
            )
        },
    )
    .await;

    let mut totals = Stats {
        failed: not_provisioned,
        ..Stats::default()
    };
    let mut users_done = 0;
    for result in results {
        let outcome = match result {
            Ok(outcome) => outcome?,
            Err(crashed) => {
                mailbox_crashed(&shared, &crashed.key, &crashed.reason)?;
                totals.failed += 1;
                continue;
            }
        };
        match outcome {
            MailboxOutcome::Finished(stats) => {
                totals.add(&stats);
                users_done += 1;
            }
            MailboxOutcome::Stopped(stats) => totals.add(&stats),
            MailboxOutcome::NotStarted => {}
        }
    }
    if let (Destination::IceWarp(d), Some(provisioner), Some(outcome)) =
        (destination, &provisioner, &provisioned)
    {
        icewarp::finish(d, provisioner, outcome, options.final_pass).await;
    }
    let summary = RunSummary {
        users: users_done,
        totals,
        seconds: started.elapsed().as_secs_f64(),
        cancelled: control.is_cancelled(),
    };
    if let Some(j) = journal {
        let status = if summary.cancelled {
            "stopped"
        } else {
            "finished"
        };
        let json = serde_json::to_string(&summary).unwrap_or_default();
        j.journal.finish_run_async(j.run, status, &json).await?;
    }
    reporter.report(ProgressEvent::RunFinished {
        summary: summary.clone(),
    });
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 17): the scheduler stops counting a mailbox as queued when it starts
    /// it, and its task may wait for a thread a while on a saturated runtime. Its items must
    /// count among the running from the start, not from its task's first poll: meanwhile
    /// they looked done, the admission measured a pace of hundreds of thousands of items a
    /// second, and no mailbox ever looked like bounding the finish (nothing was held).
    #[test]
    fn a_started_mailbox_counts_its_items_before_its_task_runs() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let source = SourceConfig::on_loopback(
            "contoso.onmicrosoft.com",
            "00000000-0000-0000-0000-000000000001",
            "http://127.0.0.1:9",
        );
        let client = GraphClient::new(&source, &Secret::new("s"), http_client().expect("http"))
            .expect("client");
        let shared = Arc::new(MailboxShared {
            client,
            store: Store::Folder(FolderStore::open(dir.path()).expect("folder")),
            journal: None,
            reporter: Arc::new(crate::progress::NullReporter),
            control: RunControl::new(),
            workloads: vec![Workload::Mail],
            pacer: PacerSettings::default(),
            mirror_deletions: false,
            limits: DateLimits::default(),
            outage_wait: std::time::Duration::from_secs(1),
            include_system_folders: false,
            separator_substitute: "_".into(),
            dav: None,
            icewarp: None,
            made: HashMap::new(),
            running: Arc::new(admission::Running::default()),
            made_elsewhere: mailboxes::LOCAL_FOLDER,
        });
        let user = User {
            id: "u1".into(),
            user_principal_name: "u1@contoso.com".into(),
            mail: Some("u1@contoso.com".into()),
            display_name: None,
            account_enabled: Some(true),
            proxy_addresses: Vec::new(),
            user_type: None,
        };
        let task = migrate_mailbox(shared.clone(), user, 5_000, Debt::default(), None);
        let (left, largest) = shared.running.read();
        assert_eq!(left, 5_000, "counted as running before the task is polled");
        assert_eq!(largest.map(|(_, pace)| pace.items_left), Some(5_000));
        drop(task);
        assert_eq!(shared.running.read().0, 0, "gone with its task");
    }
}
