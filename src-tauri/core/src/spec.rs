//! One description of a migration: [`MigrationSpec`] (source, destination, account rules,
//! selection, workloads, date limits) and its one validation, [`MigrationSpec::errors`]. The
//! app's projects hold a spec and the app's commands check it here
//! ([`MigrationSpec::field_errors`]); the configuration file deserializes the same types
//! ([`crate::config::FileConfig::spec`], its file-only keys beside it) and is checked by the
//! same function, its errors named by the file's keys ([`file_key`]), so the app and the file
//! cannot disagree. Only what depends on where a spec comes from differs ([`Origin`]). No
//! secret is ever in a spec: passwords live in the keychain under the entries
//! [`DestinationSettings::admin_account`] and [`SourceConfig::client_secret_entry`] name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::config::{
    check_domain_map, check_endpoint_for, check_host, check_icewarp_admin, is_guid, not_a_date,
    parse_date, tenant_id_shape_ok, until_not_after_since, AccountRule, DateLimits,
    DestinationConfig, GroupRule, ImapSecurity, MasterLoginStyle, PlaintextSetting, ResourcesAs,
    SourceConfig, UserSelection, Workload,
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
/// `resource_mailboxes`, `resources_as`, `skip_onmicrosoft`, `groups`, `domain_map`), with its
/// defaults.
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
    /// What account a created room or equipment mailbox gets (default an IceWarp resource).
    #[serde(default)]
    pub resources_as: ResourcesAs,
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
            resources_as: ResourcesAs::default(),
            skip_onmicrosoft: true,
            groups: GroupRule::default(),
            domain_map: BTreeMap::new(),
        }
    }
}

impl AccountRules {
    /// The rules as provisioning applies them: `domain_map`'s domains trimmed and in lower
    /// case (domain names compare without case, RFC 4343).
    pub fn normalized(&self) -> AccountRules {
        AccountRules {
            domain_map: self
                .domain_map
                .iter()
                .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_lowercase()))
                .collect(),
            ..self.clone()
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
                rules: rules.clone(),
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
    /// Every field that is not right in the app's spec, in form order ([`Origin::App`]).
    pub fn field_errors(&self, completeness: Completeness) -> Vec<FieldError> {
        self.errors(completeness, Origin::App)
    }

    /// The one validation of a spec, whether the app's page or the configuration file wrote it
    /// ([`crate::config::FileConfig::parse`] reports the first error under its file key,
    /// [`file_key`]): each rule is written once here, `origin` only picks the policy that
    /// depends on where a spec comes from.
    pub fn errors(&self, completeness: Completeness, origin: Origin) -> Vec<FieldError> {
        let mut errors = source_errors_from(&self.source, completeness, origin);
        errors.extend(destination_errors_from(
            &self.destination,
            completeness,
            origin,
        ));
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
            Some(v) => parse_date(v)
                .map(Some)
                .ok_or_else(|| error(field, &not_a_date(v))),
        };
        let limits = DateLimits {
            mail_since: date("mailSince", &self.mail_since)?,
            mail_until: date("mailUntil", &self.mail_until)?,
            calendar_since: date("calendarSince", &self.calendar_since)?,
        };
        if let (Some(since), Some(until)) = (limits.mail_since, limits.mail_until) {
            if until <= since {
                return Err(error("mailUntil", &until_not_after_since(since, until)));
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

    /// Gives each mailbox of `plan` what a pass of this spec does with it
    /// ([`crate::engine::Plan::decide`]): IceWarp applies the account rules and merges into
    /// the accounts its accounts CSV lists (an unreadable CSV lists none: the Destination
    /// screen's preview names its problem); IMAP and folders copy every migrated mailbox.
    pub fn decide(&self, plan: &mut crate::engine::Plan) {
        let (rules, existing) = match &self.destination {
            DestinationSettings::IceWarp { accounts_csv, .. } => {
                let listed = filled(accounts_csv)
                    .and_then(|p| crate::config::read_accounts_csv(p.as_ref()).ok())
                    .map(|accounts| accounts.into_keys().collect())
                    .unwrap_or_default();
                (Some(&self.rules), listed)
            }
            _ => (None, Default::default()),
        };
        plan.decide(rules, &existing);
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

/// Where a spec comes from. The rules are the same; these few differ by origin, each for its
/// reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The app's page, which may be hostile: paths come from native dialogs, so they are
    /// absolute; a Graph URL override must be on the login override's host (the client
    /// secret's keychain entry is bound to it); an IceWarp API URL override may be plain http
    /// to a literal loopback address (its host is part of the admin password's keychain
    /// entry), a CalDAV/CardDAV URL never.
    App,
    /// The configuration file, written by the administrator: a path may be relative (README's
    /// `accounts_csv = "existing.csv"`), the Graph and login hosts may differ (README:
    /// `graph_url = "https://graph.example"`), and plain http to a literal loopback address
    /// follows the destination's `allow_plaintext_loopback`.
    File { allow_plaintext_loopback: bool },
}

impl Origin {
    fn plaintext_api(self) -> bool {
        match self {
            Origin::App => true,
            Origin::File {
                allow_plaintext_loopback,
            } => allow_plaintext_loopback,
        }
    }

    /// How this origin's front end names the plain-http setting in a URL's refusal.
    fn plaintext_setting(self) -> PlaintextSetting {
        match self {
            Origin::App => PlaintextSetting::App,
            Origin::File { .. } => PlaintextSetting::FileKey,
        }
    }

    fn plaintext_dav(self) -> bool {
        match self {
            Origin::App => false,
            Origin::File {
                allow_plaintext_loopback,
            } => allow_plaintext_loopback,
        }
    }
}

/// The configuration file's key of an app field (`tenantId` -> `source.tenant_id`), as the
/// file's errors name it.
pub fn file_key(field: &str) -> &'static str {
    match field {
        "tenantId" => "source.tenant_id",
        "clientId" => "source.client_id",
        "loginUrl" => "source.login_url",
        "graphUrl" => "source.graph_url",
        "iceWarpHost" | "host" => "destination.host",
        "adminEmail" => "destination.admin_email",
        "credentialsReport" => "destination.credentials_report",
        "accountsCsv" => "destination.accounts_csv",
        "apiUrl" => "destination.api_url",
        "davUrl" => "destination.dav_url",
        "port" => "destination.port",
        "login" => "destination.master_user",
        "path" => "destination.path",
        "domainMap" => "destination.domain_map",
        "mailSince" => "run.mail_since",
        "mailUntil" => "run.mail_until",
        "calendarSince" => "run.calendar_since",
        _ => "spec",
    }
}

/// A value that is shown in a message: quoted, or "empty".
fn shown(value: &str) -> String {
    match value.trim() {
        "" => "empty".to_string(),
        v => format!("'{v}'"),
    }
}

/// The source's fields (the app's Source screen; the file's `[source]`) for the app. A Graph
/// URL override must be on the overriding login host, which is part of the client secret's
/// keychain entry ([`SourceConfig::client_secret_entry`]), so neither the secret nor its
/// tokens can be sent to a host the secret was not stored for.
pub fn source_errors(source: &SourceConfig, completeness: Completeness) -> Vec<FieldError> {
    source_errors_from(source, completeness, Origin::App)
}

fn source_errors_from(
    source: &SourceConfig,
    completeness: Completeness,
    origin: Origin,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let draft_empty = |v: &str| completeness == Completeness::Draft && v.trim().is_empty();
    if !draft_empty(&source.tenant_id) && !tenant_id_shape_ok(source.tenant_id.trim()) {
        errors.push(error(
            "tenantId",
            &format!(
                "the Directory (tenant) ID is a GUID or a domain such as contoso.onmicrosoft.com, not {}",
                shown(&source.tenant_id)
            ),
        ));
    }
    if !draft_empty(&source.client_id) && !is_guid(source.client_id.trim()) {
        errors.push(error(
            "clientId",
            &format!(
                "the Application (client) ID is a GUID from the app registration's Overview page, not {}",
                shown(&source.client_id)
            ),
        ));
    }
    if let Err(e) = source.check_endpoints_for(origin.plaintext_setting()) {
        let field = if e.key == "login_url" {
            "loginUrl"
        } else {
            "graphUrl"
        };
        errors.push(error(field, &e.message));
    } else if let (Origin::App, Some(graph)) = (origin, filled(&source.graph_url)) {
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

/// The destination's fields (the app's Destination screen; the file's `[destination]`) for
/// the app.
pub fn destination_errors(
    destination: &DestinationSettings,
    completeness: Completeness,
) -> Vec<FieldError> {
    destination_errors_from(destination, completeness, Origin::App)
}

/// How an IMAP destination logs in to accounts, refused when both or neither is set: the file
/// names its keys, the app its fields' labels.
fn one_login(origin: Origin) -> &'static str {
    match origin {
        Origin::File { .. } => "set exactly one: a master user who logs in for every account (master_user), or a CSV file of each account's password (accounts_csv)",
        Origin::App => "set exactly one: a master user who logs in for every account, or a CSV file of each account's password",
    }
}

fn destination_errors_from(
    destination: &DestinationSettings,
    completeness: Completeness,
    origin: Origin,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut push = |field: &str, message: &str| errors.push(error(field, message));
    let draft_empty = |v: &str| completeness == Completeness::Draft && v.trim().is_empty();
    // A path the run needs: chosen in the app's dialogs (absolute), any in the file.
    let path_problem = |v: &str, what: &str| -> Option<String> {
        if draft_empty(v) {
            None
        } else if v.trim().is_empty() {
            Some(format!("choose {what}"))
        } else if origin == Origin::App && !Path::new(v.trim()).is_absolute() {
            Some(format!(
                "choose {what} in the file dialog (an absolute path, not {})",
                shown(v)
            ))
        } else {
            None
        }
    };
    let host_problem = |v: &str| (!draft_empty(v)).then(|| check_host(v).err()).flatten();
    match destination {
        DestinationSettings::IceWarp {
            host,
            admin_email,
            credentials_report,
            api_url,
            accounts_csv,
            ..
        } => {
            if let Some(message) = host_problem(host) {
                push("iceWarpHost", &message);
            }
            if !draft_empty(admin_email) {
                if let Err(message) = check_icewarp_admin(admin_email) {
                    push("adminEmail", &message);
                }
            }
            if let Some(message) = path_problem(
                credentials_report,
                "the file new accounts' passwords are written to",
            ) {
                push("credentialsReport", &message);
            }
            if let Some(message) =
                filled(accounts_csv).and_then(|p| path_problem(p, "the accounts CSV file"))
            {
                push("accountsCsv", &message);
            }
            if let Some(url) = filled(api_url) {
                if let Err(message) =
                    check_endpoint_for(url, origin.plaintext_api(), origin.plaintext_setting())
                {
                    push("apiUrl", &message);
                }
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
            if let Some(message) = host_problem(host) {
                push("host", &message);
            }
            if *port == Some(0) {
                push(
                    "port",
                    "the port is from 1 to 65535 (993 for TLS, 143 for STARTTLS)",
                );
            }
            match (filled(master_user), filled(accounts_csv)) {
                (Some(_), Some(_)) => push("login", one_login(origin)),
                (None, None) if completeness == Completeness::Ready => {
                    push("login", one_login(origin))
                }
                (None, Some(csv)) => {
                    if let Some(message) = path_problem(csv, "the accounts CSV file") {
                        push("accountsCsv", &message);
                    }
                }
                _ => {}
            }
            if let Some(dav) = filled(dav_url) {
                if let Err(message) =
                    check_endpoint_for(dav, origin.plaintext_dav(), origin.plaintext_setting())
                {
                    push("davUrl", &message);
                } else if filled(master_user).is_some()
                    || (completeness == Completeness::Ready && filled(accounts_csv).is_none())
                {
                    push(
                        "davUrl",
                        "CalDAV/CardDAV logins need each account's own password from the accounts CSV: a master user logs in to IMAP only",
                    );
                }
            }
        }
        DestinationSettings::Folder { path } => {
            if let Some(message) = path_problem(path, "a folder such as /srv/m365-export") {
                push("path", &message);
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

    /// Issue 16: the file's checks and the app's were written twice and disagreed (an IMAP
    /// `port = 0`, an empty folder `path` or `credentials_report` passed the file; messages
    /// differed). One table of bad inputs, through the file's path and the app's: the same
    /// field and the same message.
    #[test]
    fn regression_the_file_and_the_app_report_the_same_field_and_message() {
        const SOURCE: &str = "[source]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\n";
        const ICEWARP: &str = "kind = \"icewarp\"\nhost = \"mail.example.com\"\nadmin_email = \"admin@example.com\"\ncredentials_report = \"/srv/new.csv\"";
        const IMAP: &str =
            "kind = \"imap\"\nhost = \"mail.example.com\"\naccounts_csv = \"/srv/a.csv\"";
        let source = |from: &str, to: &str| SOURCE.replace(from, to);
        // (source section, destination section, [run] lines, the app field)
        let cases: Vec<(String, String, &str, &str)> = vec![
            (
                source("contoso.onmicrosoft.com", "contoso"),
                ICEWARP.into(),
                "",
                "tenantId",
            ),
            (
                source("00000000-0000-0000-0000-000000000001", "my-app"),
                ICEWARP.into(),
                "",
                "clientId",
            ),
            (
                source(
                    "client_id",
                    "login_url = \"http://login.example\"\nclient_id",
                ),
                ICEWARP.into(),
                "",
                "loginUrl",
            ),
            (
                SOURCE.into(),
                ICEWARP.replace("mail.example.com", "https://mail.example.com"),
                "",
                "iceWarpHost",
            ),
            (
                SOURCE.into(),
                ICEWARP.replace("admin@example.com", "ad min"),
                "",
                "adminEmail",
            ),
            (
                SOURCE.into(),
                ICEWARP.replace("/srv/new.csv", ""),
                "",
                "credentialsReport",
            ),
            (
                SOURCE.into(),
                format!("{ICEWARP}\napi_url = \"http://mail.example.com/icewarpapi/\""),
                "",
                "apiUrl",
            ),
            (
                SOURCE.into(),
                format!("{ICEWARP}\ndomain_map = {{ \"contoso.com\" = \"not a domain\" }}"),
                "",
                "domainMap",
            ),
            (
                SOURCE.into(),
                IMAP.replace("mail.example.com", "imap://mail.example.com"),
                "",
                "host",
            ),
            (SOURCE.into(), format!("{IMAP}\nport = 0"), "", "port"),
            (
                SOURCE.into(),
                format!("{IMAP}\nmaster_user = \"admin\""),
                "",
                "login",
            ),
            (
                SOURCE.into(),
                IMAP.replace(
                    "accounts_csv = \"/srv/a.csv\"",
                    "master_user = \"admin\"\ndav_url = \"https://dav.example.com/\"",
                ),
                "",
                "davUrl",
            ),
            (
                SOURCE.into(),
                format!("{IMAP}\ndav_url = \"ftp://dav.example.com/\""),
                "",
                "davUrl",
            ),
            (
                SOURCE.into(),
                "kind = \"folder\"\npath = \"\"".into(),
                "",
                "path",
            ),
            (
                SOURCE.into(),
                ICEWARP.into(),
                "mail_since = \"2024-01-01\"\nmail_until = \"2020-01-01\"",
                "mailUntil",
            ),
        ];
        for (source, destination, run, field) in cases {
            let text = format!("{source}\n[destination]\n{destination}\n\n[run]\n{run}\n");
            // The app's path: the same sections as the app's spec.
            let unchecked = FileConfig::read(&text, Path::new("m.toml")).expect("the file's types");
            let app = unchecked.spec.field_errors(Completeness::Ready);
            let first = app
                .first()
                .unwrap_or_else(|| panic!("{field}: the app takes {text}"));
            assert_eq!(first.field, field, "{text}: {app:?}");
            // The file's path: the same rule under the file's key, with the same message.
            let e = FileConfig::parse(&text, Path::new("m.toml"))
                .expect_err(field)
                .to_string();
            let key = file_key(field);
            assert!(
                e.starts_with(&format!("configuration file m.toml: {key}: ")),
                "{field}: {e}"
            );
            // The same message, except that each names its own settings: the file its keys
            // (`allow_plaintext_loopback`, `master_user`), the app none of them.
            let file = unchecked.spec.errors(
                Completeness::Ready,
                // No case sets the destination's `allow_plaintext_loopback`.
                Origin::File {
                    allow_plaintext_loopback: false,
                },
            );
            let file_message = &file[0].message;
            assert!(e.ends_with(file_message.as_str()), "{field}: {e}");
            if FILE_ONLY_WORDS.iter().any(|w| file_message.contains(w)) {
                assert!(
                    !FILE_ONLY_WORDS.iter().any(|w| first.message.contains(w)),
                    "{field}: {}",
                    first.message
                );
            } else {
                assert_eq!(&first.message, file_message, "{field}");
            }
        }
    }

    /// The configuration file's keys, which the app's messages never name.
    const FILE_ONLY_WORDS: [&str; 3] = ["allow_plaintext_loopback", "master_user", "accounts_csv"];

    /// Regression: the app's URL fields were refused with "set allow_plaintext_loopback = true",
    /// a key of the configuration file the app has no field for. The app's messages ask for
    /// https (naming the loopback exception only where the field allows it); the file's keep
    /// naming its key.
    #[test]
    fn app_url_error_names_the_toml_key_allow_plaintext_loopback() {
        let icewarp = |api: &str| DestinationSettings::IceWarp {
            host: "mail.example.com".into(),
            admin_email: "admin@example.com".into(),
            ca_file: None,
            credentials_report: "/srv/new.csv".into(),
            api_url: Some(api.into()),
            accounts_csv: None,
        };
        let imap = |dav: &str| DestinationSettings::Imap {
            host: "imap.example.com".into(),
            port: None,
            security: ImapSecurityChoice::default(),
            ca_file: None,
            master_user: None,
            master_style: MasterStyleChoice::default(),
            accounts_csv: Some("/srv/accounts.csv".into()),
            dav_url: Some(dav.into()),
        };
        let source = |login: &str| SourceConfig {
            tenant_id: "contoso.onmicrosoft.com".into(),
            client_id: "00000000-0000-0000-0000-000000000001".into(),
            cloud: Default::default(),
            login_url: Some(login.into()),
            graph_url: None,
            allow_plaintext_loopback: None,
        };
        let mut app = destination_errors(
            &icewarp("http://mail.example.com/icewarpapi/"),
            Completeness::Ready,
        );
        app.extend(destination_errors(
            &imap("http://127.0.0.1:5232/"),
            Completeness::Ready,
        ));
        app.extend(source_errors(
            &source("http://127.0.0.1:9/"),
            Completeness::Ready,
        ));
        app.extend(source_errors(
            &source("http://login.example/"),
            Completeness::Ready,
        ));
        let fields: Vec<&str> = app.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["apiUrl", "davUrl", "loginUrl", "loginUrl"],
            "{app:?}"
        );
        for e in &app {
            assert!(e.message.contains("must be https://"), "{e:?}");
            assert!(
                !FILE_ONLY_WORDS.iter().any(|w| e.message.contains(w)),
                "{e:?}"
            );
        }
        // The API URL field allows plain http to a loopback address; the DAV URL never does.
        assert!(app[0].message.contains("127.0.0.1"), "{:?}", app[0]);
        assert!(!app[1].message.contains("loopback"), "{:?}", app[1]);
        // The file keeps naming its key, where the user can set it.
        let file = crate::config::check_endpoint("http://127.0.0.1:5232/", false).unwrap_err();
        assert!(file.contains("allow_plaintext_loopback = true"), "{file}");
    }

    /// The core's answers to the settings the UI's browser tests type, recorded for the UI
    /// harness's scripted `validate_source` / `validate_destination` (ui/tests/harness.mjs),
    /// so the harness shows the core's field errors instead of a copy of its rules. Written
    /// on every run, like the ts-rs bindings; commit the result.
    #[test]
    fn exports_the_field_errors_the_ui_tests_meet() {
        let sources =
            [serde_json::json!({"tenantId": "contoso", "clientId": "my-app", "cloud": "global"})];
        let sources_checked = sources.clone();
        let destinations = [
            serde_json::json!({"kind": "iceWarp", "host": "", "adminEmail": "", "credentialsReport": ""}),
            serde_json::json!({"kind": "folder", "path": ""}),
            serde_json::json!({"kind": "imap", "host": "imap://mail.example.com", "port": 0, "security": "tls", "masterUser": "", "masterStyle": "authzid"}),
            serde_json::json!({"kind": "imap", "host": "imap.example.com", "security": "tls", "accountsCsv": "", "masterStyle": "authzid"}),
        ];
        let mut cases = Vec::new();
        for args in sources_checked {
            let source: SourceConfig = serde_json::from_value(args.clone()).expect("a source");
            let errors = source_errors(&source, Completeness::Ready);
            assert!(!errors.is_empty(), "{args}");
            cases.push(serde_json::json!({"cmd": "validate_source", "args": {"source": args}, "errors": errors}));
        }
        for args in destinations.clone() {
            let destination: DestinationSettings =
                serde_json::from_value(args.clone()).expect("a destination");
            let errors = destination_errors(&destination, Completeness::Ready);
            assert!(!errors.is_empty(), "{args}");
            cases.push(serde_json::json!({"cmd": "validate_destination", "args": {"destination": args}, "errors": errors}));
        }
        // `save_project` checks the whole spec as a draft (filled fields must be right): the
        // answers for a project holding each of these, the rest of it left empty.
        let drafts = [
            ("source", sources[0].clone()),
            ("destination", destinations[2].clone()),
        ];
        for (part, args) in drafts {
            let mut spec = MigrationSpec::default();
            match part {
                "source" => spec.source = serde_json::from_value(args.clone()).expect("a source"),
                _ => {
                    spec.destination = serde_json::from_value(args.clone()).expect("a destination")
                }
            }
            let errors = spec.field_errors(Completeness::Draft);
            assert!(!errors.is_empty(), "{args}");
            cases.push(
                serde_json::json!({"cmd": "save_project", "args": {part: args}, "errors": errors}),
            );
        }
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/tests/core-field-errors.json");
        let text = serde_json::to_string_pretty(&cases).expect("JSON") + "\n";
        std::fs::write(&path, text).expect("ui/tests/core-field-errors.json is writable");
    }
}
