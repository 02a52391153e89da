//! The commands the UI calls. Each is a few lines over the core.

use std::path::PathBuf;
use std::sync::Arc;

use migrator_core::config::{
    check_endpoint, check_icewarp_admin, parse_date, DateLimits, UserSelection, Workload,
};
use migrator_core::config::{
    is_guid, tenant_id_shape_ok, AccountRule, Cloud, DestinationConfig, ImapSecurity,
    MasterLoginStyle, SourceConfig,
};
use migrator_core::engine::{
    self, check_destination, run_to_folder_with, test_source, CheckVerdict, Destination,
    EndpointCheck, RunControl, RunOptions,
};
use migrator_core::graph::permissions::PermissionStatus;
use migrator_core::progress::Reporter;
use migrator_core::progress::{ProgressEvent, RunSummary};
use migrator_core::secrets::{
    dest_admin_password_entry, graph_client_secret_entry_at, Secret, SecretStore, SecretStoreError,
};
use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime, State};
use ts_rs::TS;

use crate::runs::{self, LastRun, RememberedRun, RunDetails, RunFile, RunRequest};
use crate::state::{Found, SecretPlaces};
use crate::{AppState, ChannelReporter, IpcError};

/// What the About box and the log button need.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct AppInfo {
    pub version: String,
    #[ts(optional)]
    pub log_dir: Option<String>,
}

#[tauri::command]
pub(crate) fn app_info(state: State<'_, AppState>) -> AppInfo {
    AppInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        log_dir: state.log_dir().map(|d| d.display().to_string()),
    }
}

/// One problem with one form field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Checks the Source screen's fields with the same rules the engine applies.
#[tauri::command]
pub(crate) fn validate_source(source: SourceConfig) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut push = |field: &str, message: &str| {
        errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        })
    };
    if !tenant_id_shape_ok(source.tenant_id.trim()) {
        push(
            "tenantId",
            "Enter the Directory (tenant) ID: a GUID, or a domain such as contoso.onmicrosoft.com.",
        );
    }
    if !is_guid(source.client_id.trim()) {
        push(
            "clientId",
            "Enter the Application (client) ID: a GUID from the app registration's Overview page.",
        );
    }
    if let Err(e) = source.check_endpoints() {
        let field = if e.key == "login_url" {
            "loginUrl"
        } else {
            "graphUrl"
        };
        push(field, &e.message);
    }
    errors
}

/// Signs in with the Source screen's settings and the client secret stored for them
/// ([`store_secret`]), and reports each permission as granted or missing.
#[tauri::command]
pub(crate) async fn test_connection(
    state: State<'_, AppState>,
    source: SourceConfig,
) -> Result<Vec<PermissionStatus>, IpcError> {
    let secret = client_secret(state.secrets(), &source).await?;
    let (permissions, _) = test_source(&source, &secret, &RunOptions::default()).await?;
    Ok(permissions)
}

// --- Secrets ------------------------------------------------------------------------------

/// Which secret: an app registration's client secret (account `<tenant>/<client>`, or
/// `<tenant>/<client>@<host[:port]>` for an overriding login URL) or a destination
/// administrator's password (account `<host>/<user>`).
#[derive(Debug, Clone, Copy, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum SecretKind {
    GraphClientSecret,
    DestAdminPassword,
}

/// Where a secret is: in the keychain, kept for this session only, not stored yet, or
/// not stored and no keychain to store it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum SecretStatus {
    Stored,
    Session,
    Missing,
    Unavailable,
}

/// The keychain entry of `kind` for `account`.
fn secret_entry(kind: SecretKind, account: &str) -> Result<String, IpcError> {
    let (a, b) = account
        .split_once('/')
        .filter(|(a, b)| !a.trim().is_empty() && !b.trim().is_empty())
        .ok_or_else(|| {
            IpcError::new(
                "invalid",
                "The account must be <tenant>/<client> or <host>/<user>.",
            )
        })?;
    Ok(match kind {
        // `<tenant>/<client>@<host[:port]>`: a secret for an overriding login_url.
        SecretKind::GraphClientSecret => match b.split_once('@') {
            Some((client, host)) => graph_client_secret_entry_at(a, client, Some(host)),
            None => graph_client_secret_entry_at(a, b, None),
        },
        SecretKind::DestAdminPassword => dest_admin_password_entry(a, b),
    })
}

/// Runs a keychain call on a blocking thread (D-Bus and the platform APIs block).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IpcError> + Send + 'static,
) -> Result<T, IpcError> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|e| IpcError::new("internal", format!("keychain call failed: {e}")))?
}

fn status(places: &SecretPlaces, entry: &str) -> Result<SecretStatus, IpcError> {
    match places.find(entry) {
        Ok(Some(Found::Keychain(_))) => Ok(SecretStatus::Stored),
        Ok(Some(Found::Session(_))) => Ok(SecretStatus::Session),
        Ok(None) => Ok(SecretStatus::Missing),
        Err(SecretStoreError::Unavailable(_)) => Ok(SecretStatus::Unavailable),
        Err(e) => Err(e.into()),
    }
}

/// Stores a secret the user typed, in the keychain (or, with `session_only`, in memory until
/// the app quits). The value crosses the IPC boundary this once and is never sent back.
#[tauri::command]
pub(crate) async fn store_secret(
    state: State<'_, AppState>,
    kind: SecretKind,
    account: String,
    value: String,
    session_only: Option<bool>,
) -> Result<SecretStatus, IpcError> {
    let entry = secret_entry(kind, &account)?;
    let secret = Secret::new(value);
    if secret.is_empty() {
        return Err(IpcError::new("invalid", "The secret is empty."));
    }
    let places = state.secrets();
    blocking(move || {
        if session_only.unwrap_or(false) {
            places.session().put(&entry, &secret)?;
            return Ok(SecretStatus::Session);
        }
        places.keychain()?.put(&entry, &secret)?;
        // A value kept for the session before is superseded by the keychain's.
        places.session().delete(&entry)?;
        Ok(SecretStatus::Stored)
    })
    .await
}

/// Whether a secret is stored, without revealing it.
#[tauri::command]
pub(crate) async fn secret_status(
    state: State<'_, AppState>,
    kind: SecretKind,
    account: String,
) -> Result<SecretStatus, IpcError> {
    let entry = secret_entry(kind, &account)?;
    let places = state.secrets();
    blocking(move || status(&places, &entry)).await
}

/// Removes a secret from the keychain and the session.
#[tauri::command]
pub(crate) async fn forget_secret(
    state: State<'_, AppState>,
    kind: SecretKind,
    account: String,
) -> Result<SecretStatus, IpcError> {
    let entry = secret_entry(kind, &account)?;
    let places = state.secrets();
    blocking(move || {
        places.session().delete(&entry)?;
        if let Ok(keychain) = places.keychain() {
            keychain.delete(&entry)?;
        }
        status(&places, &entry)
    })
    .await
}

/// The stored secret under `entry`, or a `secret.missing` error saying what to enter.
async fn stored_secret(
    places: SecretPlaces,
    entry: String,
    what: &'static str,
) -> Result<Secret, IpcError> {
    blocking(move || match places.find(&entry) {
        Ok(Some(found)) => Ok(found.secret()),
        Ok(None) | Err(SecretStoreError::Unavailable(_)) => Err(IpcError::new(
            "secret.missing",
            format!("The {what} is not stored yet: enter it and it will be kept in the keychain."),
        )),
        Err(e) => Err(e.into()),
    })
    .await
}

/// The client secret stored for `source`'s app registration.
async fn client_secret(places: SecretPlaces, source: &SourceConfig) -> Result<Secret, IpcError> {
    stored_secret(places, source.client_secret_entry(), "client secret").await
}

// --- Destination ----------------------------------------------------------------------------

/// How the IMAP connection is secured (plaintext is not offered: it is for loopback tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum ImapSecurityChoice {
    #[default]
    Tls,
    Starttls,
}

/// How an IMAP master user logs in for each user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum MasterStyleChoice {
    /// SASL PLAIN with the user as authorization identity (RFC 4616).
    #[default]
    Authzid,
    /// Dovecot's `user*master` login name.
    Dovecot,
}

/// The Destination screen's settings. Passwords are not here: the admin or master password
/// lives in the keychain under [`SecretKind::DestAdminPassword`] for `<host>/<user>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[ts(export)]
pub enum DestinationSettings {
    /// An IceWarp server, accounts created through its admin API.
    IceWarp {
        /// The server's host name; the admin API, IMAP and WebDAV derive from it.
        host: String,
        admin_email: String,
        /// A CA certificate file (PEM) to trust, for a server with a private CA.
        #[serde(default)]
        #[ts(optional)]
        ca_file: Option<String>,
        /// Where the passwords of accounts the run creates are written (mode 0600).
        credentials_report: String,
        /// Overrides `https://<host>/icewarpapi/` (plain http only to a loopback address).
        #[serde(default)]
        #[ts(optional)]
        api_url: Option<String>,
    },
    /// Any IMAP server (CalDAV/CardDAV come with the groupware workloads).
    Imap {
        host: String,
        #[serde(default)]
        #[ts(optional)]
        port: Option<u16>,
        #[serde(default)]
        security: ImapSecurityChoice,
        #[serde(default)]
        #[ts(optional)]
        ca_file: Option<String>,
        /// An administrator who logs in for every user; or else `accounts_csv`.
        #[serde(default)]
        #[ts(optional)]
        master_user: Option<String>,
        #[serde(default)]
        master_style: MasterStyleChoice,
        /// A file of `address,password` lines.
        #[serde(default)]
        #[ts(optional)]
        accounts_csv: Option<String>,
        /// The CalDAV/CardDAV server for calendars, contacts and tasks (needs `accounts_csv`).
        #[serde(default)]
        #[ts(optional)]
        dav_url: Option<String>,
    },
    /// One Maildir++ tree per user under `path`.
    Folder { path: String },
}

fn filled(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn host_ok(host: &str) -> bool {
    !host.is_empty()
        && !host.contains("://")
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

impl DestinationSettings {
    /// The host and user whose password the keychain holds, when this destination has one.
    pub fn admin_account(&self) -> Option<(String, String)> {
        match self {
            DestinationSettings::IceWarp {
                host, admin_email, ..
            } => Some((host.trim().to_string(), admin_email.trim().to_string())),
            DestinationSettings::Imap {
                host, master_user, ..
            } => filled(master_user).map(|user| (host.trim().to_string(), user.to_string())),
            DestinationSettings::Folder { .. } => None,
        }
    }

    /// Each field that is not right, with the same rules as the UI (ui/src/validate.ts).
    pub fn field_errors(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut push = |field: &str, message: &str| {
            errors.push(FieldError {
                field: field.into(),
                message: message.into(),
            })
        };
        match self {
            DestinationSettings::IceWarp {
                host,
                admin_email,
                credentials_report,
                api_url,
                ..
            } => {
                if !host_ok(host.trim()) {
                    push(
                        "iceWarpHost",
                        "Enter the IceWarp server's host name, such as mail.example.com (no https://).",
                    );
                }
                if check_icewarp_admin(admin_email).is_err() {
                    push(
                        "adminEmail",
                        "Enter the administrator's email address, such as admin@example.com, or its username when IceWarp logs in with usernames.",
                    );
                }
                if !std::path::Path::new(credentials_report.trim()).is_absolute() {
                    push(
                        "credentialsReport",
                        "Enter the full path of the file for new accounts' passwords, such as /root/icewarp-new-accounts.csv.",
                    );
                }
                // The core's endpoint rule; the app allows plain http to a literal loopback
                // API URL (see `config` below).
                if filled(api_url).is_some_and(|url| check_endpoint(url, true).is_err()) {
                    push(
                        "apiUrl",
                        "The admin API URL must start with https:// (plain http only to 127.0.0.1).",
                    );
                }
            }
            DestinationSettings::Imap {
                host,
                port,
                master_user,
                accounts_csv,
                dav_url,
                ..
            } => {
                if let Some(dav) = filled(dav_url) {
                    // The core's endpoint rule; the app never allows plaintext to IMAP/DAV.
                    if check_endpoint(dav, false).is_err() {
                        push(
                            "davUrl",
                            "Enter the CalDAV/CardDAV server's address, such as https://dav.example.com/, or leave it empty for mail only.",
                        );
                    } else if filled(master_user).is_some() {
                        push(
                            "davUrl",
                            "Calendars, contacts and tasks need each account's own password: choose the accounts CSV.",
                        );
                    }
                }
                if !host_ok(host.trim()) {
                    push(
                        "host",
                        "Enter the IMAP server's host name, such as imap.example.com (no imap://).",
                    );
                }
                if *port == Some(0) {
                    push(
                        "port",
                        "Enter a port from 1 to 65535 (993 for TLS, 143 for STARTTLS).",
                    );
                }
                match (filled(master_user), filled(accounts_csv)) {
                    (Some(_), Some(_)) | (None, None) => push(
                        "login",
                        "Choose one: a master user who logs in for everyone, or a CSV file of each account's password.",
                    ),
                    (None, Some(csv)) if !std::path::Path::new(csv).is_absolute() => push(
                        "accountsCsv",
                        "Enter the full path of the accounts CSV file.",
                    ),
                    _ => {}
                }
            }
            DestinationSettings::Folder { path } => {
                if !std::path::Path::new(path.trim()).is_absolute() {
                    push(
                        "path",
                        "Enter the full path of a folder, such as /srv/m365-export.",
                    );
                }
            }
        }
        errors
    }

    /// The core's destination configuration.
    fn config(&self) -> DestinationConfig {
        let path = |p: &Option<String>| filled(p).map(PathBuf::from);
        match self {
            DestinationSettings::IceWarp {
                host,
                admin_email,
                ca_file,
                credentials_report,
                api_url,
            } => DestinationConfig::IceWarp {
                host: host.trim().to_string(),
                api_url: filled(api_url).map(str::to_string),
                admin_email: admin_email.trim().to_string(),
                ca_file: path(ca_file),
                // Only an explicit loopback API URL can be plain http (the client checks it).
                allow_plaintext_loopback: filled(api_url).is_some(),
                domain_map: Default::default(),
                skip_onmicrosoft: true,
                disabled_users: AccountRule::Skip,
                shared_mailboxes: AccountRule::Create,
                resource_mailboxes: AccountRule::Create,
                groups: Default::default(),
                expire_passwords: false,
                credentials_report: PathBuf::from(credentials_report.trim()),
                accounts_csv: None,
                master_user: None,
                imap_port: None,
                imap_security: ImapSecurity::Tls,
                webdav_url: None,
                account_quota_mb: None,
            },
            DestinationSettings::Folder { path } => DestinationConfig::Folder {
                path: PathBuf::from(path.trim()),
            },
            DestinationSettings::Imap {
                host,
                port,
                security,
                ca_file,
                master_user,
                master_style,
                accounts_csv,
                dav_url,
            } => DestinationConfig::Imap {
                host: host.trim().to_string(),
                port: *port,
                security: match security {
                    ImapSecurityChoice::Tls => ImapSecurity::Tls,
                    ImapSecurityChoice::Starttls => ImapSecurity::Starttls,
                },
                ca_file: path(ca_file),
                allow_plaintext_loopback: false,
                master_user: filled(master_user).map(str::to_string),
                master_style: match master_style {
                    MasterStyleChoice::Authzid => MasterLoginStyle::Authzid,
                    MasterStyleChoice::Dovecot => MasterLoginStyle::Dovecot,
                },
                accounts_csv: path(accounts_csv),
                special_folders: Default::default(),
                dav_url: filled(dav_url).map(str::to_string),
                connections_per_mailbox: None,
                max_connections: None,
            },
        }
    }
}

/// Checks the Destination screen's fields.
#[tauri::command]
pub(crate) fn validate_destination(destination: DestinationSettings) -> Vec<FieldError> {
    destination.field_errors()
}

/// What a destination test found: `ok` when a run could start (no blocking check), and every
/// endpoint's check in the order the run uses them.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct DestinationCheck {
    pub ok: bool,
    pub checks: Vec<CheckRow>,
}

/// One endpoint's check: `warning` is a server setting that would slow the migration or
/// something left unchecked; `blocking` would stop a run. `advice` holds no secret.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct CheckRow {
    pub name: String,
    pub verdict: CheckVerdictView,
    pub advice: String,
}

/// [`CheckVerdict`] across the IPC boundary.
#[derive(Debug, Clone, Copy, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum CheckVerdictView {
    Ok,
    Warning,
    Blocking,
}

impl From<EndpointCheck> for CheckRow {
    fn from(c: EndpointCheck) -> Self {
        CheckRow {
            name: c.name,
            verdict: match c.verdict {
                CheckVerdict::Ok => CheckVerdictView::Ok,
                CheckVerdict::Warning => CheckVerdictView::Warning,
                CheckVerdict::Blocking => CheckVerdictView::Blocking,
            },
            advice: c.advice,
        }
    }
}

/// The core's destination, with the admin password from the keychain.
async fn destination(
    places: SecretPlaces,
    settings: &DestinationSettings,
) -> Result<Destination, IpcError> {
    let (config, password) = checked_config(places, settings).await?;
    Destination::from_config(&config, password).map_err(|e| IpcError::new("invalid", e.to_string()))
}

/// The core's configuration of valid settings, and the admin password from the keychain.
async fn checked_config(
    places: SecretPlaces,
    settings: &DestinationSettings,
) -> Result<(DestinationConfig, Option<Secret>), IpcError> {
    if let Some(error) = settings.field_errors().into_iter().next() {
        return Err(IpcError::new("invalid", error.message));
    }
    let password = match settings.admin_account() {
        Some((host, user)) => Some(
            stored_secret(
                places,
                dest_admin_password_entry(&host, &user),
                "administrator password",
            )
            .await?,
        ),
        None => None,
    };
    Ok((settings.config(), password))
}

/// Tests every endpoint the destination will use (the core's [`check_destination`]): a
/// folder must be writable; an IMAP server is reached, its certificate verified and one login
/// tried (with a master user, for the tenant's first mailbox, so the Source step must be
/// filled in); the CalDAV/CardDAV server answers an authenticated PROPFIND; IceWarp's admin
/// API accepts the administrator, and its settings that would slow the run are warnings.
#[tauri::command]
pub(crate) async fn test_destination(
    state: State<'_, AppState>,
    source: Option<SourceConfig>,
    destination: DestinationSettings,
) -> Result<DestinationCheck, IpcError> {
    let target = self::destination(state.secrets(), &destination).await?;
    let probe = match (&target, &destination) {
        (Destination::Imap { .. }, DestinationSettings::Imap { master_user, .. })
            if master_user.is_some() =>
        {
            let source = source.ok_or_else(|| {
                IpcError::new(
                    "invalid",
                    "Fill in the Source step first: the master user's login is tested with the tenant's first mailbox.",
                )
            })?;
            let secret = client_secret(state.secrets(), &source).await?;
            let (_, first) = test_source(&source, &secret, &RunOptions::default()).await?;
            first.and_then(|p| p.mail)
        }
        _ => None,
    };
    let checks = check_destination(&target, probe.as_deref()).await;
    Ok(DestinationCheck {
        ok: !checks.iter().any(EndpointCheck::blocks),
        checks: checks.into_iter().map(CheckRow::from).collect(),
    })
}

// --- Plan and run ---------------------------------------------------------------------------

/// One mailbox of the plan, as the Plan screen lists it. Counts of workloads not chosen are 0.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct PlanRow {
    pub address: String,
    pub user_principal_name: String,
    /// `false` for a disabled account (its mailbox is still migrated).
    pub enabled: bool,
    /// Mail folders.
    #[ts(type = "number")]
    pub folders: u64,
    /// Messages in the migrated folders (inside the mail date limits).
    #[ts(type = "number")]
    pub items: u64,
    #[ts(type = "number")]
    pub calendars: u64,
    /// Single events and series (inside `calendarSince`).
    #[ts(type = "number")]
    pub events: u64,
    #[ts(type = "number")]
    pub contact_folders: u64,
    #[ts(type = "number")]
    pub contacts: u64,
    #[ts(type = "number")]
    pub task_lists: u64,
    #[ts(type = "number")]
    pub tasks: u64,
    /// Messages and events the date limits leave out.
    #[ts(type = "number")]
    pub out_of_range: u64,
    pub estimated_seconds: f64,
    /// Why this mailbox (or one of its workloads) cannot be read; the run would report it and
    /// go on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub problem: Option<String>,
    /// Why this user is not migrated at all (`guest, not migrated`, `no Exchange mailbox`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub not_migrated: Option<String>,
    /// `true`: the user has an online archive, which is not migrated (export it separately).
    pub online_archive: bool,
}

/// What a run would do: the core's [`engine::plan`] for the Plan screen.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct PlanView {
    pub users: Vec<PlanRow>,
    /// Guests listed in `users`: never migrated.
    #[ts(type = "number")]
    pub guests: u64,
    /// Users without an Exchange Online mailbox: not migrated.
    #[ts(type = "number")]
    pub without_mailbox: u64,
    /// Mailboxes with an online archive, which is not migrated.
    #[ts(type = "number")]
    pub online_archives: u64,
    /// The domains of the users' addresses (accounts at the destination are in these).
    pub domains: Vec<String>,
    #[ts(type = "number")]
    pub items: u64,
    #[ts(type = "number")]
    pub events: u64,
    #[ts(type = "number")]
    pub contacts: u64,
    #[ts(type = "number")]
    pub tasks: u64,
    #[ts(type = "number")]
    pub out_of_range: u64,
    pub estimated_seconds: f64,
}

/// Which mailboxes and items a run takes: what the Plan screen chooses, for both the plan and
/// the run. Every field may be left out: all mailboxes, every workload, no date limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct RunScope {
    /// The mailboxes to migrate (address or UPN); empty means all.
    #[serde(default)]
    pub users: Vec<String>,
    /// Mailboxes per batch: with `batch`, only that group of the mailboxes sorted by
    /// userPrincipalName (IceWarp advises at most 700 accounts per batch).
    #[serde(default)]
    #[ts(optional)]
    pub batch_size: Option<u32>,
    /// Which batch (1-based).
    #[serde(default)]
    #[ts(optional)]
    pub batch: Option<u32>,
    /// What to migrate; empty means everything.
    #[serde(default)]
    pub workloads: Vec<WorkloadChoice>,
    /// `YYYY-MM-DD`: mail received before this day is left out.
    #[serde(default)]
    #[ts(optional)]
    pub mail_since: Option<String>,
    /// `YYYY-MM-DD`: mail received on or after this day is left out.
    #[serde(default)]
    #[ts(optional)]
    pub mail_until: Option<String>,
    /// `YYYY-MM-DD`: events that ended before this day are left out.
    #[serde(default)]
    #[ts(optional)]
    pub calendar_since: Option<String>,
}

impl RunScope {
    /// The core's run options for this scope; a bad date or batch is an `invalid` error
    /// naming the field.
    pub fn options(&self) -> Result<RunOptions, IpcError> {
        let date = |field: &str, value: &Option<String>| match value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => Ok(None),
            Some(v) => parse_date(v).map(Some).ok_or_else(|| {
                IpcError::new(
                    "invalid",
                    format!("{field}: '{v}' is not a date such as 2020-01-01"),
                )
            }),
        };
        let limits = DateLimits {
            mail_since: date("mailSince", &self.mail_since)?,
            mail_until: date("mailUntil", &self.mail_until)?,
            calendar_since: date("calendarSince", &self.calendar_since)?,
        };
        if let (Some(since), Some(until)) = (limits.mail_since, limits.mail_until) {
            if until <= since {
                return Err(IpcError::new(
                    "invalid",
                    format!("mailUntil: {until} is not after mailSince ({since})"),
                ));
            }
        }
        let (batch_size, batch) = match (self.batch_size, self.batch) {
            (None, None) => (None, None),
            (Some(size), Some(batch)) if size >= 1 && batch >= 1 => {
                (Some(size as usize), Some(batch as usize))
            }
            _ => {
                return Err(IpcError::new(
                    "invalid",
                    "batch: give a batch size of at least 1 and a batch number from 1",
                ))
            }
        };
        let mut options = RunOptions {
            users: UserSelection {
                include: self.users.clone(),
                batch_size,
                batch,
                ..UserSelection::default()
            },
            limits,
            ..RunOptions::default()
        };
        if !self.workloads.is_empty() {
            options.workloads = self.workloads.iter().map(|w| Workload::from(*w)).collect();
        }
        Ok(options)
    }
}

/// Discovers the chosen mailboxes with their folders and item counts for the chosen workloads
/// and date limits, and estimates the run (the core's plan; nothing is written). Without a
/// scope: every mailbox and workload.
#[tauri::command]
pub(crate) async fn plan_migration(
    state: State<'_, AppState>,
    source: SourceConfig,
    scope: Option<RunScope>,
) -> Result<PlanView, IpcError> {
    let options = scope.unwrap_or_default().options()?;
    let secret = client_secret(state.secrets(), &source).await?;
    let plan = engine::plan(&source, &secret, &options).await?;
    Ok(PlanView {
        users: plan
            .users
            .into_iter()
            .map(|u| PlanRow {
                address: u.address,
                user_principal_name: u.user_principal_name,
                enabled: u.enabled,
                folders: u.folders,
                items: u.items,
                calendars: u.calendars,
                events: u.events,
                contact_folders: u.contact_folders,
                contacts: u.contacts,
                task_lists: u.task_lists,
                tasks: u.tasks,
                out_of_range: u.out_of_range,
                estimated_seconds: u.estimated_seconds,
                problem: u.problem,
                not_migrated: u.not_migrated,
                online_archive: u.online_archive == Some(true),
            })
            .collect(),
        guests: plan.guests,
        without_mailbox: plan.without_mailbox,
        online_archives: plan.online_archives,
        domains: plan.domains,
        items: plan.items,
        events: plan.events,
        contacts: plan.contacts,
        tasks: plan.tasks,
        out_of_range: plan.out_of_range,
        estimated_seconds: plan.estimated_seconds,
    })
}

/// One kind of data to migrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum WorkloadChoice {
    Mail,
    Calendar,
    Contacts,
    Tasks,
}

impl From<WorkloadChoice> for Workload {
    fn from(w: WorkloadChoice) -> Self {
        match w {
            WorkloadChoice::Mail => Workload::Mail,
            WorkloadChoice::Calendar => Workload::Calendar,
            WorkloadChoice::Contacts => Workload::Contacts,
            WorkloadChoice::Tasks => Workload::Tasks,
        }
    }
}

/// What the wizard hands to "Start": no secret in it, those come from the keychain. The
/// scope's fields sit beside `source` and `destination`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct MigrationRequest {
    pub source: SourceConfig,
    pub destination: DestinationSettings,
    #[serde(flatten)]
    pub scope: RunScope,
}

/// A migration ready to start: the secrets read from the keychain, the destination opened.
pub struct PreparedRun {
    source: SourceConfig,
    secret: Secret,
    target: Destination,
    options: RunOptions,
}

impl PreparedRun {
    /// The folder of the run's journal and reports.
    pub fn state_dir(&self) -> PathBuf {
        self.options.state_dir.clone().unwrap_or_default()
    }

    /// Runs it (the core's engine), then writes the report files beside the journal.
    pub async fn run(
        self,
        reporter: Arc<dyn Reporter>,
        control: RunControl,
    ) -> Result<RunSummary, IpcError> {
        let state_dir = self.state_dir();
        let result = engine::run(
            &self.source,
            &self.secret,
            &self.target,
            reporter,
            control,
            self.options,
        )
        .await;
        crate::runs::write_report(&state_dir);
        Ok(result?)
    }
}

/// Reads the secrets and opens the destination of the migration the wizard describes; its
/// journal goes beside a destination folder, or under `data_dir` for a server.
pub async fn prepare(
    places: SecretPlaces,
    data_dir: &std::path::Path,
    request: MigrationRequest,
) -> Result<PreparedRun, IpcError> {
    let secret = client_secret(places.clone(), &request.source).await?;
    let target = destination(places, &request.destination).await?;
    // A server's journal lives in the app's data folder, one per tenant and server.
    let server_dir = |settings: &migrator_core::dest::imap::ImapSettings| {
        let name = format!(
            "{}-{}-{}",
            request.source.tenant_id, settings.host, settings.port
        );
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        data_dir.join("journal").join(safe)
    };
    let state_dir = match &target {
        Destination::Folder(path) => path.join(".m365-migrator"),
        Destination::Imap { settings, .. } => server_dir(settings),
        Destination::IceWarp(d) => server_dir(&d.imap),
    };
    let options = RunOptions {
        state_dir: Some(state_dir),
        ..request.scope.options()?
    };
    Ok(PreparedRun {
        source: request.source,
        secret,
        target,
        options,
    })
}

/// Runs the migration the wizard describes ([`prepare`], then [`PreparedRun::run`]).
pub async fn migrate(
    places: SecretPlaces,
    data_dir: &std::path::Path,
    request: MigrationRequest,
    reporter: Arc<dyn Reporter>,
    control: RunControl,
) -> Result<RunSummary, IpcError> {
    prepare(places, data_dir, request)
        .await?
        .run(reporter, control)
        .await
}

/// The app's data folder: journals of server destinations, the demo's output, the last run.
fn data_dir<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> Result<PathBuf, IpcError> {
    match state.data_dir() {
        Some(dir) => Ok(dir),
        None => app
            .path()
            .app_data_dir()
            .map_err(|e| IpcError::new("internal", format!("no data folder: {e}"))),
    }
}

/// Registers a run with its reporter, so Pause/Stop and a reloaded page reach it.
fn begin(
    state: &AppState,
    on_event: Channel<ProgressEvent>,
) -> Result<(RunControl, Arc<ChannelReporter>), IpcError> {
    let control = state
        .start_run()
        .ok_or_else(|| IpcError::new("busy", "A migration is already running."))?;
    let reporter = Arc::new(ChannelReporter::new(on_event));
    state.set_reporter(reporter.clone());
    Ok((control, reporter))
}

/// Starts a real migration, streaming progress events over `on_event`; Pause, Resume and Stop
/// go through [`control_run`]. The run is remembered (settings only) for the next app start.
#[tauri::command]
pub(crate) async fn start_migration<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    request: MigrationRequest,
    on_event: Channel<ProgressEvent>,
) -> Result<RunSummary, IpcError> {
    let data_dir = data_dir(&app, &state)?;
    let (control, reporter) = begin(&state, on_event)?;
    let result = async {
        let prepared = prepare(state.secrets(), &data_dir, request.clone()).await?;
        RememberedRun {
            request: RunRequest::Migration {
                request: Box::new(request),
            },
            state_dir: prepared.state_dir(),
        }
        .save(&data_dir)?;
        prepared.run(reporter, control).await
    }
    .await;
    state.finish_run();
    result
}

/// Runs the built-in demo: a simulated tenant on 127.0.0.1 into `out_dir` (default: the app's
/// data folder), streaming progress events over `on_event`.
#[tauri::command]
pub(crate) async fn run_demo<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    out_dir: Option<String>,
    on_event: Channel<ProgressEvent>,
) -> Result<RunSummary, IpcError> {
    let data_dir = data_dir(&app, &state)?;
    let out = match out_dir.filter(|d| !d.trim().is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => data_dir.join("demo-output"),
    };
    let (control, reporter) = begin(&state, on_event)?;
    let result = async {
        RememberedRun {
            request: RunRequest::Demo {
                out_dir: out.display().to_string(),
            },
            state_dir: demo_state_dir(&out),
        }
        .save(&data_dir)?;
        crate::demo(&out, reporter, control).await
    }
    .await;
    state.finish_run();
    result
}

/// Whether a run is going on, and how the last one ended (to resume it or run it again).
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct RunStatus {
    pub running: bool,
    #[ts(optional)]
    pub last: Option<LastRun>,
}

/// What the app shows when it opens: a run going on, or the last one from its journal.
#[tauri::command]
pub(crate) async fn run_status<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<RunStatus, IpcError> {
    let data_dir = data_dir(&app, &state)?;
    let running = state.current_run().is_some();
    // SQLite blocks: off the async workers.
    let last = tauri::async_runtime::spawn_blocking(move || runs::last_run(&data_dir, running))
        .await
        .map_err(|e| IpcError::new("internal", format!("cannot read the journal: {e}")))?;
    Ok(RunStatus { running, last })
}

/// Sends the running migration's progress events to `on_event` from now on (a reloaded
/// page); false when nothing runs.
#[tauri::command]
pub(crate) fn watch_run(state: State<'_, AppState>, on_event: Channel<ProgressEvent>) -> bool {
    match state.current_reporter() {
        Some(reporter) => {
            reporter.retarget(on_event);
            true
        }
        None => false,
    }
}

/// The Report screen's details of the last run: failures, report and log places, accounts.
#[tauri::command]
pub(crate) async fn run_details<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<RunDetails, IpcError> {
    let data_dir = data_dir(&app, &state)?;
    let log_dir = state.log_dir();
    tauri::async_runtime::spawn_blocking(move || runs::run_details(&data_dir, log_dir.as_deref()))
        .await
        .map_err(|e| IpcError::new("internal", format!("cannot read the journal: {e}")))?
        .ok_or_else(|| IpcError::new("missing", "No migration has run yet."))
}

/// Opens the last run's HTML report or the log folder with the desktop's default application. The path is resolved here from the last run: the web view
/// names which one, never a path (it has no opener permission of its own).
#[tauri::command]
pub(crate) fn open_run_file<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    file: RunFile,
) -> Result<(), IpcError> {
    let data_dir = data_dir(&app, &state)?;
    let path = runs::resolve(file, &data_dir, state.log_dir().as_deref())?;
    let opened = match state.opener() {
        Some(open) => open(&path),
        None => {
            use tauri_plugin_opener::OpenerExt;
            app.opener()
                .open_path(path.display().to_string(), None::<&str>)
                .map_err(|e| e.to_string())
        }
    };
    opened.map_err(|e| IpcError::new("open", format!("cannot open {}: {e}", path.display())))
}

/// Pause, resume or stop the running migration.
#[derive(Debug, Clone, Copy, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum RunAction {
    Pause,
    Resume,
    Stop,
}

#[tauri::command]
pub(crate) fn control_run(state: State<'_, AppState>, action: RunAction) -> Result<(), IpcError> {
    let run = state
        .current_run()
        .ok_or_else(|| IpcError::new("idle", "No migration is running."))?;
    match action {
        RunAction::Pause => run.pause(),
        RunAction::Resume => run.resume(),
        RunAction::Stop => run.cancel(),
    }
    Ok(())
}

/// The demo's source: the simulator's tenant and credentials.
pub(crate) fn demo_source(sim: &migrator_sim::SimServer) -> (SourceConfig, Secret) {
    (
        SourceConfig {
            tenant_id: sim.tenant_id().to_string(),
            client_id: sim.client_id().to_string(),
            cloud: Cloud::Global,
            login_url: Some(sim.url()),
            graph_url: Some(sim.url()),
            allow_plaintext_loopback: Some(true),
        },
        Secret::new(sim.client_secret()),
    )
}

/// The demo's state folder: the journal beside the users' folders.
pub(crate) fn demo_state_dir(out: &std::path::Path) -> PathBuf {
    out.join(".m365-migrator")
}

/// Options for a demo run into `out`.
pub(crate) fn demo_options(out: &std::path::Path) -> RunOptions {
    RunOptions {
        state_dir: Some(demo_state_dir(out)),
        ..RunOptions::default()
    }
}

/// Runs the core against a started simulator.
pub(crate) async fn run_against(
    sim: &migrator_sim::SimServer,
    out: &std::path::Path,
    reporter: Arc<dyn migrator_core::progress::Reporter>,
    control: migrator_core::engine::RunControl,
) -> Result<RunSummary, IpcError> {
    let (source, secret) = demo_source(sim);
    let result =
        run_to_folder_with(&source, &secret, out, reporter, control, demo_options(out)).await;
    crate::runs::write_report(&demo_state_dir(out));
    Ok(result?)
}
