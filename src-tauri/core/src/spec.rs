//! One description of a migration: [`MigrationSpec`] (source, destination, account rules,
//! selection, workloads, date limits) and its one validation, [`MigrationSpec::field_errors`].
//! The app's projects hold it and the app's commands check it here; the rules it applies
//! are the configuration file's ([`crate::config`]): the same endpoint, admin, domain and date
//! checks, so the app and the file cannot disagree. No secret is ever in a spec: passwords
//! live in the keychain under the entries [`DestinationSettings::admin_account`] and
//! [`SourceConfig::client_secret_entry`] name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::config::{
    check_domain_map, check_endpoint, check_host, check_icewarp_admin, is_guid, parse_date,
    tenant_id_shape_ok, AccountRule, DateLimits, DestinationConfig, GroupRule, ImapSecurity,
    MasterLoginStyle, SourceConfig, UserSelection, Workload,
};
use crate::engine::RunOptions;

/// One problem with one field: `field` is the camelCase name the app's form uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Which users become accounts at the destination, and under which domains: the IceWarp
/// destination's rules of the configuration file (`disabled_users`, `shared_mailboxes`,
/// `resource_mailboxes`, `skip_onmicrosoft`, `groups`, `domain_map`), with its defaults.
/// Other destinations apply none of them: every selected mailbox is copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export)]
pub struct AccountRules {
    /// Users whose Microsoft 365 sign-in is blocked (default skip).
    #[serde(default = "AccountRule::skip")]
    pub disabled_users: AccountRule,
    #[serde(default = "AccountRule::create")]
    pub shared_mailboxes: AccountRule,
    /// Room and equipment mailboxes.
    #[serde(default = "AccountRule::create")]
    pub resource_mailboxes: AccountRule,
    /// Leaves out `*.onmicrosoft.com` addresses unless `domain_map` maps them (default true).
    #[serde(default = "crate::config::default_true")]
    pub skip_onmicrosoft: bool,
    #[serde(default)]
    pub groups: GroupRule,
    /// Microsoft 365 domain -> destination domain.
    #[serde(default)]
    pub domain_map: BTreeMap<String, String>,
}

impl Default for AccountRules {
    fn default() -> Self {
        AccountRules {
            disabled_users: AccountRule::skip(),
            shared_mailboxes: AccountRule::create(),
            resource_mailboxes: AccountRule::create(),
            skip_onmicrosoft: true,
            groups: GroupRule::default(),
            domain_map: BTreeMap::new(),
        }
    }
}

/// The mailboxes a plan and a run take: `users` by address or userPrincipalName; empty means
/// every mailbox the rules keep. The Plan and every pass read the same selection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export)]
pub struct Selection {
    #[serde(default)]
    pub users: Vec<String>,
}

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

/// Where the migration writes. Passwords are not here: the admin or master password lives in
/// the keychain under [`DestinationSettings::admin_account`]. Path fields (`caFile`,
/// `credentialsReport`, `accountsCsv`, a folder's `path`) are set by the app only from a
/// native dialog ([`PathPurpose`]), never from the page.
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
        #[serde(default)]
        credentials_report: String,
        /// Overrides `https://<host>/icewarpapi/` (plain http only to a literal loopback
        /// address). The administrator's password is stored for this API host too
        /// ([`DestinationSettings::admin_account`]), so an override cannot send it elsewhere.
        #[serde(default)]
        #[ts(optional)]
        api_url: Option<String>,
        /// Passwords of accounts that already exist (`email,password`), to merge into them.
        #[serde(default)]
        #[ts(optional)]
        accounts_csv: Option<String>,
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
    Folder {
        #[serde(default)]
        path: String,
    },
}

/// What a path chosen in a native dialog is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum PathPurpose {
    AccountsCsv,
    CaFile,
    CredentialsReport,
    DestinationFolder,
}

/// A path purpose the destination's kind has no field for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this destination has no {0:?} setting")]
pub struct NoSuchPath(pub PathPurpose);

fn filled(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// `host[:port]` of a URL, lower-case (the part of a keychain entry that binds a secret to
/// where it is sent).
fn url_host(url: &str) -> Option<String> {
    let u = url::Url::parse(url.trim()).ok()?;
    let host = u.host_str()?.to_lowercase();
    Some(match u.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

impl DestinationSettings {
    /// The `<host>` and `<user>` of the keychain entry holding this destination's admin or
    /// master password, when it has one. With an IceWarp `apiUrl` override the host part is
    /// `<host>@<api host[:port]>`: a password stored for the server's own API is never sent
    /// to an overriding URL.
    pub fn admin_account(&self) -> Option<(String, String)> {
        match self {
            DestinationSettings::IceWarp {
                host,
                admin_email,
                api_url,
                ..
            } => {
                let host = host.trim().to_string();
                let key = match filled(api_url) {
                    Some(url) => format!("{host}@{}", url_host(url).unwrap_or_default()),
                    None => host,
                };
                Some((key, admin_email.trim().to_string()))
            }
            DestinationSettings::Imap {
                host, master_user, ..
            } => filled(master_user).map(|user| (host.trim().to_string(), user.to_string())),
            DestinationSettings::Folder { .. } => None,
        }
    }

    /// The path fields of `self` replaced by `stored`'s (the same kind) or emptied: paths come
    /// only from [`DestinationSettings::set_path`], never from the page's copy. The accounts
    /// CSV is kept only while its passwords would go to the same servers
    /// ([`DestinationSettings::password_receivers`]): a host, port or DAV URL the page changes
    /// drops it, so the page cannot send the stored passwords elsewhere; the user chooses the
    /// file again in the native dialog.
    pub fn with_paths_of(mut self, stored: &DestinationSettings) -> Self {
        let paths = |d: &DestinationSettings| -> [Option<String>; 4] {
            PATH_PURPOSES.map(|p| d.path(p).map(str::to_string))
        };
        let kept = if std::mem::discriminant(&self) == std::mem::discriminant(stored) {
            paths(stored)
        } else {
            [None, None, None, None]
        };
        let same_receivers = self.password_receivers() == stored.password_receivers();
        for (purpose, value) in PATH_PURPOSES.into_iter().zip(kept) {
            let value = value.filter(|_| purpose != PathPurpose::AccountsCsv || same_receivers);
            let _ = self.put_path(purpose, value);
        }
        self
    }

    /// Where the accounts CSV's passwords are sent: the IMAP host and port (IceWarp's WebDAV
    /// derives from its host), and an IMAP destination's CalDAV/CardDAV URL, as parsed
    /// (lower-case host, default port filled in).
    pub fn password_receivers(&self) -> Vec<String> {
        let dav = |url: &Option<String>| {
            filled(url).map(|u| match url::Url::parse(u.trim()) {
                Ok(parsed) => parsed.to_string(),
                Err(_) => u.trim().to_string(),
            })
        };
        match self {
            DestinationSettings::IceWarp { host, .. } => vec![host.trim().to_lowercase()],
            DestinationSettings::Imap {
                host,
                port,
                dav_url,
                ..
            } => {
                let mut to = vec![format!("{}:{port:?}", host.trim().to_lowercase())];
                to.extend(dav(dav_url));
                to
            }
            DestinationSettings::Folder { .. } => Vec::new(),
        }
    }

    /// The path set for `purpose`, if any.
    pub fn path(&self, purpose: PathPurpose) -> Option<&str> {
        use DestinationSettings as D;
        use PathPurpose as P;
        let value = match (self, purpose) {
            (D::IceWarp { accounts_csv, .. }, P::AccountsCsv)
            | (D::Imap { accounts_csv, .. }, P::AccountsCsv) => accounts_csv.as_deref(),
            (D::IceWarp { ca_file, .. }, P::CaFile) | (D::Imap { ca_file, .. }, P::CaFile) => {
                ca_file.as_deref()
            }
            (
                D::IceWarp {
                    credentials_report, ..
                },
                P::CredentialsReport,
            ) => Some(credentials_report.as_str()),
            (D::Folder { path }, P::DestinationFolder) => Some(path.as_str()),
            _ => None,
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// Sets the path for `purpose` (a path chosen in a native dialog).
    pub fn set_path(&mut self, purpose: PathPurpose, path: &Path) -> Result<(), NoSuchPath> {
        self.put_path(purpose, Some(path.display().to_string()))
    }

    fn put_path(&mut self, purpose: PathPurpose, value: Option<String>) -> Result<(), NoSuchPath> {
        use DestinationSettings as D;
        use PathPurpose as P;
        match (self, purpose) {
            (D::IceWarp { accounts_csv, .. }, P::AccountsCsv)
            | (D::Imap { accounts_csv, .. }, P::AccountsCsv) => *accounts_csv = value,
            (D::IceWarp { ca_file, .. }, P::CaFile) | (D::Imap { ca_file, .. }, P::CaFile) => {
                *ca_file = value
            }
            (
                D::IceWarp {
                    credentials_report, ..
                },
                P::CredentialsReport,
            ) => *credentials_report = value.unwrap_or_default(),
            (D::Folder { path }, P::DestinationFolder) => *path = value.unwrap_or_default(),
            _ => return Err(NoSuchPath(purpose)),
        }
        Ok(())
    }

    /// The core's destination configuration, with `rules` for IceWarp.
    pub fn config(&self, rules: &AccountRules) -> DestinationConfig {
        let path = |p: &Option<String>| filled(p).map(PathBuf::from);
        match self {
            DestinationSettings::IceWarp {
                host,
                admin_email,
                ca_file,
                credentials_report,
                api_url,
                accounts_csv,
            } => DestinationConfig::IceWarp {
                host: host.trim().to_string(),
                api_url: filled(api_url).map(str::to_string),
                admin_email: admin_email.trim().to_string(),
                ca_file: path(ca_file),
                // Only an explicit loopback API URL can be plain http (the client checks it).
                allow_plaintext_loopback: filled(api_url).is_some(),
                domain_map: rules.domain_map.clone(),
                skip_onmicrosoft: rules.skip_onmicrosoft,
                disabled_users: rules.disabled_users,
                shared_mailboxes: rules.shared_mailboxes,
                resource_mailboxes: rules.resource_mailboxes,
                groups: rules.groups,
                expire_passwords: false,
                credentials_report: PathBuf::from(credentials_report.trim()),
                accounts_csv: path(accounts_csv),
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

const PATH_PURPOSES: [PathPurpose; 4] = [
    PathPurpose::AccountsCsv,
    PathPurpose::CaFile,
    PathPurpose::CredentialsReport,
    PathPurpose::DestinationFolder,
];

/// How complete a spec must be: a saved draft may leave fields empty, a plan or a run may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    /// Only filled-in fields are checked.
    Draft,
    /// Every field a run needs must be there and right.
    Ready,
}

/// A whole migration: what the app's project holds besides its name and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct MigrationSpec {
    pub source: SourceConfig,
    pub destination: DestinationSettings,
    #[serde(default)]
    pub rules: AccountRules,
    #[serde(default)]
    pub selection: Selection,
    /// What to migrate; empty means everything.
    #[serde(default)]
    pub workloads: Vec<Workload>,
    /// `YYYY-MM-DD`: mail received before this day is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub mail_since: Option<String>,
    /// `YYYY-MM-DD`: mail received on or after this day is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub mail_until: Option<String>,
    /// `YYYY-MM-DD`: events that ended before this day are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub calendar_since: Option<String>,
}

impl Default for MigrationSpec {
    fn default() -> Self {
        MigrationSpec {
            source: SourceConfig {
                tenant_id: String::new(),
                client_id: String::new(),
                cloud: Default::default(),
                login_url: None,
                graph_url: None,
                allow_plaintext_loopback: None,
            },
            destination: DestinationSettings::IceWarp {
                host: String::new(),
                admin_email: String::new(),
                ca_file: None,
                credentials_report: String::new(),
                api_url: None,
                accounts_csv: None,
            },
            rules: AccountRules::default(),
            selection: Selection::default(),
            workloads: Vec::new(),
            mail_since: None,
            mail_until: None,
            calendar_since: None,
        }
    }
}

impl MigrationSpec {
    /// Every field that is not right (the one validation of the app's settings), in form order.
    pub fn field_errors(&self, completeness: Completeness) -> Vec<FieldError> {
        let mut errors = source_errors(&self.source, completeness);
        errors.extend(destination_errors(&self.destination, completeness));
        errors.extend(self.rule_errors());
        errors.extend(self.limits().err());
        errors
    }

    fn rule_errors(&self) -> Vec<FieldError> {
        check_domain_map(&self.rules.domain_map)
            .err()
            .map(|message| error("domainMap", &message))
            .into_iter()
            .collect()
    }

    /// The date limits; a bad date names its field.
    pub fn limits(&self) -> Result<DateLimits, FieldError> {
        let date = |field: &str, value: &Option<String>| match filled(value) {
            None => Ok(None),
            Some(v) => parse_date(v).map(Some).ok_or_else(|| {
                error(
                    field,
                    &format!("{field}: '{v}' is not a date such as 2020-01-01"),
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
                return Err(error(
                    "mailUntil",
                    &format!("mailUntil: {until} is not after mailSince ({since}): no mail would be migrated"),
                ));
            }
        }
        Ok(limits)
    }

    /// The core's run options for this spec's selection, workloads and dates.
    pub fn run_options(&self) -> Result<RunOptions, FieldError> {
        let mut options = RunOptions {
            users: UserSelection {
                include: self.selection.users.clone(),
                ..UserSelection::default()
            },
            limits: self.limits()?,
            ..RunOptions::default()
        };
        if !self.workloads.is_empty() {
            options.workloads = self.workloads.clone();
        }
        Ok(options)
    }

    /// The core's destination configuration.
    pub fn destination_config(&self) -> DestinationConfig {
        self.destination.config(&self.rules)
    }
}

fn error(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// The source's fields, with the configuration file's rules. Whatever the app's page sends:
/// a Graph URL override must be on the overriding login host, which is part of the client
/// secret's keychain entry ([`SourceConfig::client_secret_entry`]), so neither the secret nor
/// its tokens can be sent to a host the secret was not stored for.
pub fn source_errors(source: &SourceConfig, completeness: Completeness) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let draft_empty = |v: &str| completeness == Completeness::Draft && v.trim().is_empty();
    if !draft_empty(&source.tenant_id) && !tenant_id_shape_ok(source.tenant_id.trim()) {
        errors.push(error(
            "tenantId",
            "Enter the Directory (tenant) ID: a GUID, or a domain such as contoso.onmicrosoft.com.",
        ));
    }
    if !draft_empty(&source.client_id) && !is_guid(source.client_id.trim()) {
        errors.push(error(
            "clientId",
            "Enter the Application (client) ID: a GUID from the app registration's Overview page.",
        ));
    }
    if let Err(e) = source.check_endpoints() {
        let field = if e.key == "login_url" {
            "loginUrl"
        } else {
            "graphUrl"
        };
        errors.push(error(field, &e.message));
    } else if let Some(graph) = filled(&source.graph_url) {
        let bound = source.login_host_override().is_some()
            && url_host(graph) == filled(&source.login_url).and_then(url_host);
        if !bound {
            errors.push(error(
                "graphUrl",
                "A Graph URL override must be on the same host as the login URL override (the client secret is stored for that host only).",
            ));
        }
    }
    errors
}

/// The destination's fields, with the configuration file's rules.
pub fn destination_errors(
    destination: &DestinationSettings,
    completeness: Completeness,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut push = |field: &str, message: &str| errors.push(error(field, message));
    let draft_empty = |v: &str| completeness == Completeness::Draft && v.trim().is_empty();
    let absolute = |v: &str| draft_empty(v) || Path::new(v.trim()).is_absolute();
    match destination {
        DestinationSettings::IceWarp {
            host,
            admin_email,
            credentials_report,
            api_url,
            accounts_csv,
            ..
        } => {
            if !draft_empty(host) && check_host(host).is_err() {
                push(
                    "iceWarpHost",
                    "Enter the IceWarp server's host name, such as mail.example.com (no https://).",
                );
            }
            if !draft_empty(admin_email) && check_icewarp_admin(admin_email).is_err() {
                push(
                    "adminEmail",
                    "Enter the administrator's email address, such as admin@example.com, or its username when IceWarp logs in with usernames.",
                );
            }
            if !absolute(credentials_report) {
                push(
                    "credentialsReport",
                    "Choose the file for new accounts' passwords (Choose... opens a file dialog).",
                );
            }
            if filled(accounts_csv).is_some_and(|p| !absolute(p)) {
                push("accountsCsv", "Choose the accounts CSV file.");
            }
            // The core's endpoint rule; plain http only to a literal loopback API URL.
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
            if !draft_empty(host) && check_host(host).is_err() {
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
                (Some(_), Some(_)) => push(
                    "login",
                    "Choose one: a master user who logs in for everyone, or a CSV file of each account's password.",
                ),
                (None, None) if completeness == Completeness::Ready => push(
                    "login",
                    "Choose one: a master user who logs in for everyone, or a CSV file of each account's password.",
                ),
                (None, Some(csv)) if !absolute(csv) => {
                    push("accountsCsv", "Choose the accounts CSV file.")
                }
                _ => {}
            }
        }
        DestinationSettings::Folder { path } => {
            if !absolute(path) {
                push(
                    "path",
                    "Choose a folder (Choose... opens a folder dialog), such as /srv/m365-export.",
                );
            }
        }
    }
    errors
}

/// One line of an accounts CSV that cannot be read (never its password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct CsvLineError {
    #[ts(type = "number")]
    pub line: u64,
    pub message: String,
}

/// How an accounts CSV matches the tenant: rows read, addresses that are tenant mailboxes,
/// the first [`UNMATCHED_SHOWN`] addresses that are not, and tenant mailboxes without a row.
/// Never a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct AccountsCsvPreview {
    #[ts(type = "number")]
    pub rows: u64,
    #[ts(type = "number")]
    pub matched: u64,
    pub unmatched: Vec<String>,
    #[ts(type = "number")]
    pub missing: u64,
    pub errors: Vec<CsvLineError>,
}

/// Unmatched addresses an [`AccountsCsvPreview`] lists.
pub const UNMATCHED_SHOWN: usize = 50;

impl AccountsCsvPreview {
    /// Reads the CSV at `path` with the core's reader ([`crate::config::read_accounts_csv`])
    /// and matches its addresses against `tenant` (mailbox addresses, any case). A file that
    /// cannot be read is one error, on the line it names (0 when none).
    pub fn of(path: &Path, tenant: &[String]) -> AccountsCsvPreview {
        let tenant: std::collections::BTreeSet<String> =
            tenant.iter().map(|a| a.trim().to_lowercase()).collect();
        match crate::config::read_accounts_csv(path) {
            Ok(accounts) => {
                let mut addresses: Vec<&String> = accounts.keys().collect();
                addresses.sort();
                let matched = addresses.iter().filter(|a| tenant.contains(**a)).count();
                AccountsCsvPreview {
                    rows: addresses.len() as u64,
                    matched: matched as u64,
                    unmatched: addresses
                        .iter()
                        .filter(|a| !tenant.contains(**a))
                        .take(UNMATCHED_SHOWN)
                        .map(|a| a.to_string())
                        .collect(),
                    missing: tenant.iter().filter(|a| !accounts.contains_key(*a)).count() as u64,
                    errors: Vec::new(),
                }
            }
            Err(e) => {
                let message = match &e {
                    crate::config::ConfigError::Syntax { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                let line = message
                    .strip_prefix("line ")
                    .and_then(|rest| rest.split(':').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                AccountsCsvPreview {
                    rows: 0,
                    matched: 0,
                    unmatched: Vec::new(),
                    missing: tenant.len() as u64,
                    errors: vec![CsvLineError { line, message }],
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;

    fn file(destination: &str) -> Result<FileConfig, crate::config::ConfigError> {
        let text = format!(
            "[source]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\n\n[destination]\n{destination}\n"
        );
        FileConfig::parse(&text, Path::new("m.toml"))
    }

    #[test]
    fn the_file_and_the_app_refuse_the_same_hosts_and_domain_maps() {
        // An IMAP host with a scheme: the file used to take it while the app refused it.
        let e = file("kind = \"imap\"\nhost = \"imap://mail.example.com\"\nmaster_user = \"a\"")
            .expect_err("the file refuses it");
        assert!(e.to_string().contains("destination.host"), "{e}");
        let app = DestinationSettings::Imap {
            host: "imap://mail.example.com".into(),
            port: None,
            security: ImapSecurityChoice::Tls,
            ca_file: None,
            master_user: Some("a".into()),
            master_style: MasterStyleChoice::Authzid,
            accounts_csv: None,
            dav_url: None,
        };
        let fields: Vec<String> = destination_errors(&app, Completeness::Ready)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["host"]);
        // The same host is fine for both.
        file("kind = \"imap\"\nhost = \"mail.example.com\"\nmaster_user = \"a\"")
            .expect("the file takes it");

        // A domain map onto something that is not a domain: one message for both.
        let e = file(
            "kind = \"icewarp\"\nhost = \"mail.example.com\"\nadmin_email = \"admin@example.com\"\ncredentials_report = \"/srv/new.csv\"\ndomain_map = { \"contoso.com\" = \"not a domain\" }",
        )
        .expect_err("the file refuses it");
        let spec = MigrationSpec {
            rules: AccountRules {
                domain_map: [("contoso.com".to_string(), "not a domain".to_string())].into(),
                ..AccountRules::default()
            },
            ..MigrationSpec::default()
        };
        let errors = spec.field_errors(Completeness::Draft);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "domainMap");
        assert!(e.to_string().contains(&errors[0].message), "{e}");
    }
}
