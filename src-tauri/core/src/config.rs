//! Settings the engine runs with. The TOML file format for headless runs builds on these.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The Microsoft cloud a tenant lives in. Each has its own login and Graph hosts and tokens are
/// not interchangeable between them (Graph docs, concepts/deployments.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum Cloud {
    /// Worldwide and GCC (moderate).
    #[default]
    Global,
    /// US Government GCC High (L4).
    UsGovHigh,
    /// US Government DoD (L5).
    UsGovDod,
    /// China, operated by 21Vianet.
    China,
}

impl Cloud {
    /// Login host of this cloud, without a trailing slash.
    pub fn login_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGovHigh | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// Graph host of this cloud, without a trailing slash.
    pub fn graph_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGovHigh => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

/// Where to read from: one Entra app registration in one tenant. The secret is not here; it
/// comes from the keychain or the environment as a [`crate::secrets::Secret`].
///
/// One type for the app's page (camelCase, the bindings) and the configuration file's
/// `[source]` (its documented snake_case keys, as aliases); unknown keys are errors in both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export)]
pub struct SourceConfig {
    /// Directory (tenant) ID: a GUID or a verified domain such as `contoso.onmicrosoft.com`.
    #[serde(alias = "tenant_id")]
    pub tenant_id: String,
    /// Application (client) ID of the app registration.
    #[serde(alias = "client_id")]
    pub client_id: String,
    #[serde(default)]
    pub cloud: Cloud,
    /// Overrides the cloud's login host (a proxy, or the simulator in tests).
    #[serde(default, alias = "login_url")]
    #[ts(optional)]
    pub login_url: Option<String>,
    /// Overrides the cloud's Graph host.
    #[serde(default, alias = "graph_url")]
    #[ts(optional)]
    pub graph_url: Option<String>,
    /// Allows `http://` overrides to a literal loopback address (the simulator, an SSH
    /// tunnel); otherwise both hosts must be `https://`.
    #[serde(default, alias = "allow_plaintext_loopback")]
    #[ts(optional)]
    pub allow_plaintext_loopback: Option<bool>,
}

impl SourceConfig {
    /// A tenant served from one loopback URL for both login and Graph (the simulator, an SSH
    /// tunnel), plain http allowed to that literal loopback address.
    pub fn on_loopback(tenant_id: &str, client_id: &str, url: &str) -> SourceConfig {
        SourceConfig {
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
            cloud: Cloud::Global,
            login_url: Some(url.to_string()),
            graph_url: Some(url.to_string()),
            allow_plaintext_loopback: Some(true),
        }
    }

    /// The login host in effect, without a trailing slash.
    pub fn login_base(&self) -> String {
        trim(self.login_url.as_deref().unwrap_or(self.cloud.login_url()))
    }

    /// The Graph host in effect, without a trailing slash.
    pub fn graph_base(&self) -> String {
        trim(self.graph_url.as_deref().unwrap_or(self.cloud.graph_url()))
    }

    /// Checks `login_url` and `graph_url` (both receive the client secret or its tokens)
    /// with [`check_endpoint`]. The error names the key.
    pub fn check_endpoints(&self) -> Result<(), EndpointError> {
        self.check_endpoints_for(PlaintextSetting::FileKey)
    }

    /// [`SourceConfig::check_endpoints`] with its messages for a front end that names the
    /// plain-http setting `setting`'s way ([`check_endpoint_for`]).
    pub fn check_endpoints_for(&self, setting: PlaintextSetting) -> Result<(), EndpointError> {
        let allow = self.allow_plaintext_loopback.unwrap_or(false);
        for (key, url) in [
            ("login_url", &self.login_url),
            ("graph_url", &self.graph_url),
        ] {
            if let Some(url) = url {
                check_endpoint_for(url, allow, setting)
                    .map_err(|message| EndpointError { key, message })?;
            }
        }
        Ok(())
    }

    /// The keychain entry of this app registration's client secret, bound to the login host
    /// the secret is sent to: a Microsoft cloud's own login host keeps the entry name it always
    /// had ([`crate::secrets::graph_client_secret_entry`]); an overriding `login_url` has
    /// entries of its own, so a secret saved for one host is never sent to another.
    pub fn client_secret_entry(&self) -> String {
        crate::secrets::graph_client_secret_entry_at(
            &self.tenant_id,
            &self.client_id,
            self.login_host_override().as_deref(),
        )
    }

    /// `host[:port]` of an overriding `login_url` (lower-case); `None` when the login host in
    /// effect is one of the Microsoft clouds' own.
    pub fn login_host_override(&self) -> Option<String> {
        let base = self.login_base();
        let own = [
            Cloud::Global,
            Cloud::UsGovHigh,
            Cloud::UsGovDod,
            Cloud::China,
        ]
        .iter()
        .any(|c| c.login_url().eq_ignore_ascii_case(&base));
        if own {
            return None;
        }
        Some(match url::Url::parse(&base) {
            Ok(u) => match (u.host_str(), u.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_string(),
                (None, _) => base.to_lowercase(),
            },
            Err(_) => base.to_lowercase(),
        })
    }
}

/// An endpoint override that would send a credential somewhere unsafe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct EndpointError {
    /// The setting, e.g. `login_url`.
    pub key: &'static str,
    pub message: String,
}

/// Checks a URL that will receive a credential, as a parsed URL (never by its text's prefix,
/// which `http://127.0.0.1@evil.example` and `http://localhost.evil.example` pass): it needs a
/// host and no user name or password in it, and `https`; `http` only when
/// `allow_plaintext_loopback` is set and the host is a literal loopback address (`127.0.0.0/8`
/// or `[::1]`, not a name: a name is whatever the resolver says).
pub fn check_endpoint(url: &str, allow_plaintext_loopback: bool) -> Result<url::Url, String> {
    check_endpoint_for(url, allow_plaintext_loopback, PlaintextSetting::FileKey)
}

/// How a front end lets plain http to a loopback address through, which an endpoint's refusal
/// tells the user to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaintextSetting {
    /// The configuration file's key: "set allow_plaintext_loopback = true".
    FileKey,
    /// The app has no such setting for the user to change: each of its URL fields allows
    /// plain http to a literal loopback address or never does, so a refusal asks for https.
    App,
}

/// [`check_endpoint`] with its refusals worded for `setting`'s front end: the same rules, the
/// app's messages never name the file's key.
pub fn check_endpoint_for(
    url: &str,
    allow_plaintext_loopback: bool,
    setting: PlaintextSetting,
) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| format!("'{url}' is not a URL ({e})"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "'{url}' has a user name or password in it: leave them out"
        ));
    }
    let Some(host) = parsed.host_str() else {
        return Err(format!("'{url}' has no host"));
    };
    let plaintext = check_plaintext_host(host, allow_plaintext_loopback);
    match (parsed.scheme(), setting) {
        ("https", _) => Ok(parsed),
        ("http", _) if plaintext.is_ok() => Ok(parsed),
        ("http", PlaintextSetting::FileKey) if plaintext == Err(PlaintextRefusal::NotAllowed) => {
            Err(format!(
                "'{url}' is plain http: set allow_plaintext_loopback = true to allow it to a loopback address"
            ))
        }
        (_, PlaintextSetting::FileKey) => Err(format!(
            "'{url}' must be https:// (plain http only to a literal loopback address such as 127.0.0.1, with allow_plaintext_loopback = true)"
        )),
        (_, PlaintextSetting::App) if allow_plaintext_loopback => Err(format!(
            "'{url}' must be https:// (plain http only to a literal loopback address such as 127.0.0.1)"
        )),
        (_, PlaintextSetting::App) => Err(format!(
            "'{url}' must be https://"
        )),
    }
}

/// Checks IceWarp's administrator login (`admin_email`), for the config file and the app
/// alike. A username is allowed: under IceWarp's username login policy the API wants the
/// username (OpenAPI `/Authenticate`: "username or email address - depends on server login
/// policy"); it must not be empty nor hold white space.
pub fn check_icewarp_admin(admin: &str) -> Result<(), String> {
    let trimmed = admin.trim();
    if trimmed.is_empty() {
        return Err("enter the administrator's email address, such as admin@example.com, or its username when IceWarp logs in with usernames".into());
    }
    if trimmed.contains(char::is_whitespace) {
        return Err(format!("'{admin}' is not an email address or a username"));
    }
    Ok(())
}

/// Why a credential may not travel unencrypted to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaintextRefusal {
    /// The host is not a literal loopback address.
    NotLoopback,
    /// The host is one, but `allow_plaintext_loopback` is not set.
    NotAllowed,
}

/// The one plaintext rule for every destination and endpoint (HTTP URLs, IMAP, CalDAV/CardDAV,
/// the IceWarp API): allowed only to a literal loopback address (`127.0.0.0/8` or `::1`,
/// bracketed or not) and only with `allow_plaintext_loopback`. A name, `localhost` included,
/// is refused: it is whatever the resolver (or a hosts file) says.
pub fn check_plaintext_host(
    host: &str,
    allow_plaintext_loopback: bool,
) -> Result<(), PlaintextRefusal> {
    let bare = host.trim();
    let bare = bare
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(bare);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() && allow_plaintext_loopback => Ok(()),
        Ok(ip) if ip.is_loopback() => Err(PlaintextRefusal::NotAllowed),
        _ => Err(PlaintextRefusal::NotLoopback),
    }
}

fn trim(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// Checks the shape of a tenant ID before any request: a GUID or a DNS name.
pub fn tenant_id_shape_ok(tenant: &str) -> bool {
    is_guid(tenant) || is_dns_name(tenant)
}

/// True for the 8-4-4-4-12 hexadecimal form of a GUID.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A server's host name or address as a destination names it (`mail.example.com`,
/// `127.0.0.1`, `[::1]`): not empty, no scheme, no path. The configuration file and the app
/// apply this one rule.
pub fn check_host(host: &str) -> Result<(), String> {
    let host = host.trim();
    if host.is_empty() {
        return Err("enter the server's host name, such as mail.example.com".into());
    }
    let ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{host}' is not a host name such as mail.example.com (no scheme such as https://, no path)"
        ))
    }
}

/// Each `domain_map` entry must map a domain name to a domain name (the file and the app).
pub fn check_domain_map(map: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    match map
        .iter()
        .find(|(from, to)| !is_dns_name(from.trim()) || !is_dns_name(to.trim()))
    {
        Some((from, to)) => Err(format!("'{from}' = '{to}': both must be domain names")),
        None => Ok(()),
    }
}

pub(crate) fn is_dns_name(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_shapes() {
        assert!(tenant_id_shape_ok("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(tenant_id_shape_ok("contoso.onmicrosoft.com"));
        assert!(!tenant_id_shape_ok("contoso"));
        assert!(!tenant_id_shape_ok("72f988bf-86f1-41af-91ab-2d7cd011db4"));
        assert!(!tenant_id_shape_ok("https://login.microsoftonline.com/x"));
    }

    #[test]
    fn overrides_win_and_lose_trailing_slash() {
        let mut c = SourceConfig {
            tenant_id: "t".into(),
            client_id: "c".into(),
            cloud: Cloud::China,
            login_url: None,
            graph_url: Some("http://127.0.0.1:9/".into()),
            allow_plaintext_loopback: None,
        };
        assert_eq!(c.login_base(), "https://login.chinacloudapi.cn");
        assert_eq!(c.graph_base(), "http://127.0.0.1:9");
        c.cloud = Cloud::UsGovDod;
        assert_eq!(c.login_base(), "https://login.microsoftonline.us");
    }
}

/// The TOML configuration file of a headless run. Unknown keys and wrong types are errors that
/// name the key and the line. Secrets are never in this file: the client secret comes from the
/// OS keychain or the `M365_CLIENT_SECRET` environment variable.
///
/// ```toml
/// [source]
/// tenant_id = "contoso.onmicrosoft.com"   # or the Directory (tenant) ID GUID
/// client_id = "00000000-0000-0000-0000-000000000000"
/// cloud = "global"                         # global | usGovHigh | usGovDod | china
///
/// [destination]
/// kind = "folder"                          # a local Maildir++ tree per user
/// path = "/srv/m365-export"
///
/// [users]                                  # optional: all users by default
/// include = ["adele@contoso.com"]          # only these (address or UPN)
/// exclude = ["room-1@contoso.com"]
/// # batch_size = 500                       # with batch: the 2nd group of 500 mailboxes,
/// # batch = 2                              #   sorted by userPrincipalName
///
/// [run]                                    # optional
/// parallel_mailboxes = 8
/// # mail_since = "2020-01-01"              # mail received from this day on (UTC)
/// # mail_until = "2025-01-01"              # ... and before this day
/// # calendar_since = "2024-01-01"          # events that ended before it are left out
/// # outage_wait = "10m"                    # how long to wait for a destination that is down
/// # max_downloads = 128                    # message downloads at once, across all mailboxes
/// # folder_separator_substitute = "∕"      # replaces the hierarchy separator in folder names
/// state_dir = "/var/lib/m365-migrator"     # the journal; default: beside this file
///
/// [journal]                                # optional: a shared PostgreSQL journal
/// url = "postgres://migrator@db.example.com:5432/m365?sslmode=verify-full"
/// # the password: environment variable M365_MIGRATOR_JOURNAL_PASSWORD, never this file
/// ```
///
/// The parts of a migration the app's page also describes are read into the app's own types,
/// [`crate::spec::MigrationSpec`]: `[source]`, the documented keys of `[destination]` (its
/// account rules under `[destination]` become the spec's `rules`), `[users] include` (the
/// spec's `selection`) and `[run]`'s `workloads` and date limits. Whatever the page must never
/// set stays beside it, in the file's own fields ([`FileDestination`], batches, `[run]`
/// tuning, `[journal]`). [`FileConfig::parse`] moves each documented key to its place and
/// deserializes both halves with their unknown keys refused, so the file's layout stays as
/// documented while the spec is the one the app sends.
#[derive(Debug, Clone, PartialEq)]
pub struct FileConfig {
    /// The migration in the app's types, checked by the one validation
    /// ([`crate::spec::MigrationSpec::errors`]).
    pub spec: crate::spec::MigrationSpec,
    /// `[destination]`'s keys the app has no field for.
    pub destination_file: FileDestination,
    /// `[users]`' `exclude` and batches (`include` is the spec's selection).
    pub users: UserSelection,
    /// `[run]`'s tuning (`workloads` and the date limits are the spec's).
    pub run: RunSettings,
    pub journal: JournalSettings,
}

/// The half of the file the spec does not hold ([`FileConfig`]): unknown keys land here and
/// are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOnly {
    destination: FileDestination,
    #[serde(default)]
    users: UserSelection,
    #[serde(default)]
    run: RunSettings,
    #[serde(default)]
    journal: JournalSettings,
}

/// `[destination]`'s keys only the configuration file sets (the app's page never does), by
/// `kind`; the others are the spec's [`crate::spec::DestinationSettings`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum FileDestination {
    Folder {},
    Imap {
        /// Needed for `security = "plain"`, which is only allowed to a loopback address.
        #[serde(default)]
        allow_plaintext_loopback: bool,
        /// Only `"plain"` lands here: `tls` and `starttls` are the spec's `security`.
        #[serde(default)]
        security: Option<ImapSecurity>,
        /// Destination folder names for well-known folders (`sentitems`, `drafts`,
        /// `deleteditems`, `junkemail`, `archive`), when SPECIAL-USE is not enough.
        #[serde(default)]
        special_folders: std::collections::BTreeMap<String, String>,
        /// IMAP connections one user's mail may use at once (default 2).
        connections_per_mailbox: Option<usize>,
        /// The most IMAP connections open to the server at once (default 16).
        max_connections: Option<usize>,
    },
    #[serde(rename = "icewarp")]
    IceWarp {
        /// Allows unencrypted `http://` and IMAP to a loopback address (tests, SSH tunnels).
        #[serde(default)]
        allow_plaintext_loopback: bool,
        /// Force a password change at the next login of every account the run created.
        #[serde(default)]
        expire_passwords: bool,
        /// An IMAP master user for existing accounts without a password in `accounts_csv`.
        master_user: Option<String>,
        imap_port: Option<u16>,
        #[serde(default)]
        imap_security: ImapSecurity,
        /// Overrides the WebDAV base (default `https://<host>/webdav/`).
        webdav_url: Option<String>,
        /// A mailbox size limit in MB set on each user account the run creates.
        account_quota_mb: Option<u64>,
    },
}

impl FileDestination {
    /// `allow_plaintext_loopback` of `[destination]`.
    fn allows_plaintext_loopback(&self) -> bool {
        match self {
            FileDestination::Folder {} => false,
            FileDestination::Imap {
                allow_plaintext_loopback,
                ..
            }
            | FileDestination::IceWarp {
                allow_plaintext_loopback,
                ..
            } => *allow_plaintext_loopback,
        }
    }
}

/// `[journal]`: where the journal lives. Absent: SQLite in the state folder.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSettings {
    /// A PostgreSQL URL as libpq reads it (`sslmode`, `sslrootcert`), without a password
    /// ([`crate::journal::PASSWORD_VARIABLE`] holds it).
    pub url: Option<String>,
    /// How long a worker's lease on a mailbox lives without a heartbeat (`m365-migrate
    /// worker` renews it every third of it): a worker that died gives its mailbox up after
    /// this long. Default [`DEFAULT_LEASE_SECONDS`], at least 3.
    pub lease_seconds: Option<u64>,
}

/// The default of `[journal] lease_seconds`.
pub const DEFAULT_LEASE_SECONDS: u64 = 120;

impl JournalSettings {
    /// A worker's lease life (`lease_seconds`).
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_seconds.unwrap_or(DEFAULT_LEASE_SECONDS))
    }

    /// The PostgreSQL journal's settings, `None` for SQLite. [`FileConfig::parse`] has
    /// checked the URL.
    pub fn postgres(
        &self,
    ) -> Result<Option<crate::journal::PostgresSettings>, crate::journal::JournalUrlError> {
        self.url
            .as_deref()
            .map(crate::journal::PostgresSettings::parse)
            .transpose()
    }
}

/// The destination a run writes to, every setting resolved: the spec's
/// [`crate::spec::DestinationSettings`] ([`crate::spec::DestinationSettings::config`]) with the
/// configuration file's own keys ([`FileConfig::destination`]). Not deserialized: the file
/// and the app describe a destination with the spec's types.
#[derive(Debug, Clone, PartialEq)]
pub enum DestinationConfig {
    /// One Maildir++ tree per user under `path`.
    Folder { path: std::path::PathBuf },
    /// Any IMAP server. Logs in per user either as `master_user` (password from
    /// `DEST_ADMIN_PASSWORD`) or with each user's password from `accounts_csv`
    /// (`address,password` per line).
    Imap {
        host: String,
        /// Default: 993 with `tls`, 143 otherwise.
        port: Option<u16>,
        security: ImapSecurity,
        /// Extra CA certificates (PEM) to trust, e.g. a private CA.
        ca_file: Option<std::path::PathBuf>,
        /// Needed for `security = "plain"`, which is only allowed to a loopback address.
        allow_plaintext_loopback: bool,
        master_user: Option<String>,
        master_style: MasterLoginStyle,
        accounts_csv: Option<std::path::PathBuf>,
        /// Destination folder names for well-known folders (`sentitems`, `drafts`,
        /// `deleteditems`, `junkemail`, `archive`), when SPECIAL-USE is not enough.
        special_folders: std::collections::BTreeMap<String, String>,
        /// The CalDAV/CardDAV server for calendars, contacts and tasks (discovery starts here,
        /// RFC 6764). Needs each user's password (`accounts_csv`): a master user logs in to
        /// IMAP only. Without it, only mail is migrated.
        dav_url: Option<String>,
        /// IMAP connections one user's mail may use at once (default 2); extra ones are
        /// opened only while `max_connections` has room.
        connections_per_mailbox: Option<usize>,
        /// The most IMAP connections open to the server at once, across every mailbox of the
        /// run (default 16). Lower it for a server that limits connections per client address.
        max_connections: Option<usize>,
    },
    /// An IceWarp server. The migrator creates the domains and accounts through IceWarp's
    /// admin API (XML over `https://<host>/icewarpapi/`, logged in as `admin_email`, whose
    /// password comes from `DEST_ADMIN_PASSWORD` or the keychain), merges into accounts that
    /// exist, then writes mail over IMAP and calendars, contacts and tasks over IceWarp's
    /// WebDAV (`https://<host>/webdav/<email>/Calendar/`, ...).
    ///
    /// ```toml
    /// [destination]
    /// kind = "icewarp"
    /// host = "mail.example.com"
    /// admin_email = "admin@example.com"
    /// credentials_report = "/root/icewarp-new-accounts.csv"   # passwords of new accounts, mode 0600
    /// domain_map = { "contoso.onmicrosoft.com" = "contoso.com" }
    /// disabled_users = "skip"          # or "create"
    /// shared_mailboxes = "create"      # or "skip"
    /// resource_mailboxes = "create"    # rooms and equipment; or "skip"
    /// resources_as = "resource"        # rooms and equipment as IceWarp resources; or "user"
    /// groups = "skip"                  # or "by-kind", "mailing-lists", "groups" (needs Group.Read.All)
    /// expire_passwords = true          # users must change the generated password at first login
    /// ```
    IceWarp {
        /// The IceWarp server's host name; the API, IMAP and WebDAV endpoints derive from it.
        host: String,
        /// Overrides the API URL (default `https://<host>/icewarpapi/`). Plain `http://` only to a
        /// loopback address with `allow_plaintext_loopback = true`.
        api_url: Option<String>,
        /// An administrator's email address. The password is never in this file.
        admin_email: String,
        /// Extra CA certificates (PEM) to trust for the API, IMAP and WebDAV, e.g. a private CA.
        ca_file: Option<std::path::PathBuf>,
        /// Allows unencrypted `http://` and IMAP to a loopback address (tests, SSH tunnels).
        allow_plaintext_loopback: bool,
        /// Which users become accounts and under which domains: `domain_map` (renames or
        /// merges Microsoft 365 domains), `skip_onmicrosoft`, `disabled_users`,
        /// `shared_mailboxes`, `resource_mailboxes` (rooms and equipment, which count against
        /// the IceWarp licence like any account), `resources_as` (IceWarp resources or user
        /// accounts) and `groups` (anything but `skip` needs the Group.Read.All permission).
        rules: crate::spec::AccountRules,
        /// After the data is written, force a password change at the next login of every
        /// account the run created (`expireaccountpassword`).
        expire_passwords: bool,
        /// The CSV (`address,password`, file mode 0600) the generated passwords of new accounts
        /// are written to, and nowhere else. It doubles as an `accounts_csv` for later runs.
        credentials_report: std::path::PathBuf,
        /// Passwords of accounts that already exist (`address,password` per line), so the
        /// migrator can log in to them.
        accounts_csv: Option<std::path::PathBuf>,
        /// An IMAP master user that may log in for any account, for existing accounts without
        /// a password in `accounts_csv`.
        master_user: Option<String>,
        /// Default: 993 with `tls`, 143 otherwise.
        imap_port: Option<u16>,
        imap_security: ImapSecurity,
        /// Overrides the WebDAV base (default `https://<host>/webdav/`); each account's data is
        /// below `<base><email>/`.
        webdav_url: Option<String>,
        /// A mailbox size limit in MB (1 to 2,097,151: IceWarp's `U_MaxBoxSize` is an Int of
        /// kB) set on each user account the run creates (`U_MaxBox`, `U_MaxBoxSize`,
        /// apiconst). Accounts that already exist keep theirs. Unset: the server's default.
        account_quota_mb: Option<u64>,
    },
}

/// The largest `account_quota_mb`: `U_MaxBoxSize` (kB) is an Int (apiconst), at most
/// 2^31 - 1.
pub const MAX_ACCOUNT_QUOTA_MB: u64 = (i32::MAX as u64) / 1024;

/// What becomes of a group of Microsoft 365 users at an IceWarp destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export)]
pub enum AccountRule {
    /// Create (or merge into) an account and migrate its data.
    Create,
    /// Leave the user out; the run report says so.
    Skip,
}

/// What becomes of the tenant's mail-enabled groups at an IceWarp destination. IceWarp has two
/// account types that hold members (`U_Type` 1 mailing list, 7 group; icewarp-apiconst.txt):
/// a mailing list only distributes mail, a group also shares GroupWare folders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, TS)]
#[serde(rename_all = "kebab-case")]
#[ts(export)]
pub enum GroupRule {
    /// Groups are not read (Group.Read.All is not needed) and nothing is created.
    #[default]
    Skip,
    /// Microsoft 365 groups become IceWarp groups; distribution lists and mail-enabled
    /// security groups become mailing lists.
    ByKind,
    /// Every mail-enabled group becomes an IceWarp mailing list.
    MailingLists,
    /// Every mail-enabled group becomes an IceWarp group.
    Groups,
}

/// What account a room or equipment mailbox gets at an IceWarp destination
/// (`resources_as`), when `resource_mailboxes` creates one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export)]
pub enum ResourcesAs {
    /// An IceWarp resource (`U_Type` 8, `S_Type` room or equipment; icewarp-apiconst.txt),
    /// whose calendar takes reservations (IceWarp KB "Resource Management").
    #[default]
    Resource,
    /// An ordinary user account, as before resources were supported: for a server that
    /// refuses logins as a resource account.
    User,
}

impl AccountRule {
    pub(crate) fn skip() -> Self {
        AccountRule::Skip
    }

    pub(crate) fn create() -> Self {
        AccountRule::Create
    }
}

pub(crate) fn default_true() -> bool {
    true
}

/// Where the migrator reaches an IceWarp server, derived from its `[destination]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceWarpEndpoints {
    /// The admin API, ending in `/icewarpapi/`.
    pub api_url: String,
    pub imap_host: String,
    pub imap_port: u16,
    pub imap_security: ImapSecurity,
    /// The WebDAV base, ending in `/webdav/`: an account's calendar is at
    /// `<base><email>/Calendar/` (shared reference icewarp.md §3).
    pub webdav_base: String,
}

impl IceWarpEndpoints {
    /// The WebDAV home of an account, `<base><email>/`; its collections are `Calendar/`,
    /// `Contacts/` and `Tasks/` (discovery is known not to work on IceWarp).
    pub fn webdav_home(&self, email: &str) -> String {
        format!("{}{}/", self.webdav_base, email.trim().to_lowercase())
    }
}

impl DestinationConfig {
    /// The endpoints of an IceWarp destination (`None` for other kinds).
    pub fn icewarp_endpoints(&self) -> Option<IceWarpEndpoints> {
        let DestinationConfig::IceWarp {
            host,
            api_url,
            imap_port,
            imap_security,
            webdav_url,
            ..
        } = self
        else {
            return None;
        };
        let host = host.trim().trim_end_matches('/');
        let with_slash = |url: &str| format!("{}/", url.trim().trim_end_matches('/'));
        Some(IceWarpEndpoints {
            api_url: api_url
                .as_deref()
                .map(with_slash)
                .unwrap_or_else(|| format!("https://{host}/icewarpapi/")),
            imap_host: host.to_string(),
            imap_port: imap_port.unwrap_or(match imap_security {
                ImapSecurity::Tls => 993,
                _ => 143,
            }),
            imap_security: *imap_security,
            webdav_base: webdav_url
                .as_deref()
                .map(with_slash)
                .unwrap_or_else(|| format!("https://{host}/webdav/")),
        })
    }
}

/// How the IMAP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapSecurity {
    /// TLS from the first byte (port 993).
    #[default]
    Tls,
    /// STARTTLS on the plain port (143).
    Starttls,
    /// No TLS: loopback only, with `allow_plaintext_loopback = true`.
    Plain,
}

/// How a master user logs in for a user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MasterLoginStyle {
    /// SASL PLAIN with the user as authorization identity (RFC 4616).
    #[default]
    Authzid,
    /// Dovecot's `user*master` login name.
    Dovecot,
}

/// `[users]`: which mailboxes to migrate. Empty `include` means all.
///
/// **Batches.** With `batch_size = N` and `batch = K` (1-based) a run takes only the K-th
/// group of N mailboxes: the mailboxes `include`/`exclude` select, sorted by
/// userPrincipalName (case-insensitive), then cut into groups of N. The order is the
/// directory's, not Graph's listing order, so the same tenant gives the same batches on every
/// run; users added to or removed from the tenant meanwhile shift the later batches (a
/// mailbox migrated twice that way is harmless: the journal and the destination check make a
/// rerun copy nothing twice). IceWarp advises at most 700 accounts per batch.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSelection {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Mailboxes per batch; set together with `batch`.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Which batch (1-based) this run migrates.
    #[serde(default)]
    pub batch: Option<usize>,
}

/// A batch that selects nobody: the selection holds fewer mailboxes than it starts at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("batch {batch} of {batch_size} mailboxes is empty: the selection holds {selected} mailboxes, so batches 1 to {batches} exist")]
pub struct EmptyBatch {
    pub batch: usize,
    pub batch_size: usize,
    pub selected: usize,
    pub batches: usize,
}

impl UserSelection {
    /// True when a user with these addresses (mail, UPN) is selected. Case-insensitive.
    /// Batches are not applied here: they need the whole selection ([`Self::batch_of`]).
    pub fn selects(&self, addresses: &[&str]) -> bool {
        let matches = |list: &[String]| {
            list.iter().any(|want| {
                addresses
                    .iter()
                    .any(|a| a.trim().eq_ignore_ascii_case(want.trim()))
            })
        };
        (self.include.is_empty() || matches(&self.include)) && !matches(&self.exclude)
    }

    /// The configured batch of `selected` (the users [`Self::selects`] keeps), keyed by
    /// `upn`: sorted by it case-insensitively, then the `batch`-th group of `batch_size`.
    /// Without a batch, every user, in the same order.
    pub fn batch_of<T>(
        &self,
        mut selected: Vec<T>,
        upn: impl Fn(&T) -> String,
    ) -> Result<Vec<T>, EmptyBatch> {
        selected.sort_by_cached_key(|u| selection_order(&upn(u)));
        let (Some(size), Some(batch)) = (self.batch_size, self.batch) else {
            return Ok(selected);
        };
        let size = size.max(1);
        let start = (batch.max(1) - 1).saturating_mul(size);
        if start >= selected.len() {
            return Err(EmptyBatch {
                batch,
                batch_size: size,
                selected: selected.len(),
                batches: selected.len().div_ceil(size),
            });
        }
        Ok(selected.into_iter().skip(start).take(size).collect())
    }
}

/// The one order a run walks its selected mailboxes in, keyed by userPrincipalName
/// (case-insensitive, then as written): batches are cut in it, provisioning gives an address
/// two users claim to the first, and the Plan decides in it ([`crate::engine::Plan::decide`]).
pub fn selection_order(upn: &str) -> (String, String) {
    (upn.to_lowercase(), upn.to_string())
}

/// The message for a date limit that is not `YYYY-MM-DD` (the file and the app).
pub fn not_a_date(text: &str) -> String {
    format!("'{}' is not a date such as 2020-01-01", text.trim())
}

/// The message for a `mail_until` that is not after `mail_since` (the file and the app).
pub fn until_not_after_since(since: time::Date, until: time::Date) -> String {
    format!("the last day {until} is not after the first day {since}: no mail would be migrated")
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format).ok()
}

/// What a run leaves out by date. Days are UTC days; `since` is inclusive, `until` exclusive.
///
/// - Mail: a message is migrated when its `receivedDateTime` is on or after `mail_since` and
///   before `mail_until`.
/// - Calendars: an event that ended before `calendar_since` is left out; a single event is
///   judged by its end date (in its own time zone), a recurring series by its range: kept
///   unless it has an end date before the limit (a series with no end, or a number of
///   occurrences, is kept whole).
/// - Contacts and tasks have no date limit.
///
/// Items left out are neither fetched nor written and are counted apart (not as failures).
/// What an earlier run already migrated is never removed because a limit changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateLimits {
    pub mail_since: Option<time::Date>,
    pub mail_until: Option<time::Date>,
    pub calendar_since: Option<time::Date>,
}

impl DateLimits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == DateLimits::default()
    }

    /// True when a message received at `received` (RFC 3339, Graph's `receivedDateTime`) is
    /// inside the mail limits. A missing or unreadable date is inside: never lose mail over a
    /// malformed stamp.
    pub fn keeps_mail(&self, received: Option<&str>) -> bool {
        if self.mail_since.is_none() && self.mail_until.is_none() {
            return true;
        }
        let Some(day) = received.and_then(|r| r.get(..10)).and_then(parse_date) else {
            return true;
        };
        // receivedDateTime is UTC (`...Z`), so its date part is the UTC day.
        self.mail_since.is_none_or(|since| day >= since)
            && self.mail_until.is_none_or(|until| day < until)
    }

    /// True when an event is inside the calendar limit (rule in the type's doc). `kind` is
    /// Graph's `type`, `end` the event's `end.dateTime` (local, no offset) and `range_end` the
    /// recurrence range's `type` and `endDate`.
    pub fn keeps_event(
        &self,
        kind: Option<&str>,
        end: Option<&str>,
        range: Option<(Option<&str>, Option<&str>)>,
    ) -> bool {
        let Some(since) = self.calendar_since else {
            return true;
        };
        let day = |text: Option<&str>| text.and_then(|t| t.get(..10)).and_then(parse_date);
        if kind == Some("seriesMaster") {
            return match range {
                Some((Some("endDate"), end_date)) => day(end_date).is_none_or(|d| d >= since),
                // noEnd, numbered (its last date is not computed), or no range: keep.
                _ => true,
            };
        }
        day(end).is_none_or(|d| d >= since)
    }

    /// A stable text of the limits, to notice on a later run that they changed.
    pub fn fingerprint(&self) -> String {
        let show = |d: Option<time::Date>| d.map(|d| d.to_string()).unwrap_or_default();
        format!(
            "mail_since={};mail_until={};calendar_since={}",
            show(self.mail_since),
            show(self.mail_until),
            show(self.calendar_since)
        )
    }
}

/// `[run]`: tuning (its `workloads` and date limits are the spec's). The defaults suit Exchange Online's documented limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    pub parallel_mailboxes: usize,
    /// Requests in flight per mailbox (Exchange Online allows 4).
    pub max_in_flight: usize,
    /// Requests per mailbox per `window_seconds` (Exchange Online: 10,000 per 600 s).
    pub requests_per_window: u32,
    pub window_seconds: u64,
    /// Graph requests of the whole run (every mailbox and the directory) per
    /// `app_window_seconds`: Graph's global limit per app is 130,000 per 10 s
    /// (learn.microsoft.com/graph/throttling-limits).
    pub app_requests_per_window: u32,
    pub app_window_seconds: u64,
    pub state_dir: Option<std::path::PathBuf>,
    /// On a later (incremental) run, delete at the destination the messages deleted at the
    /// source since. Only copies the migrator made are deleted; default `false`: kept.
    pub mirror_deletions: bool,
    /// How long the run waits for a destination server that is down (connections refused or
    /// cut, or it answers that it is unavailable) before it fails the mailbox it was writing:
    /// seconds, or a duration such as `"10m"`, `"90s"`, `"1h 30m"` (default 10 minutes, at
    /// most 24 hours). Each mailbox waits on its own; the next run resumes a failed one.
    #[serde(deserialize_with = "outage_wait")]
    pub outage_wait: std::time::Duration,
    /// Message bodies downloading at once across every mailbox of the run (default 128):
    /// bounds memory however many mailboxes run in parallel; raise it with
    /// `parallel_mailboxes` on a machine that has the cores and memory for more.
    pub max_downloads: usize,
    /// Also migrate the mailbox's system folders (Outbox, Sync Issues, and hidden ones such as
    /// Teams' Team Chat and Yammer Root: [`crate::graph::mail::is_system_folder`]). Default
    /// `false`: they hold no user mail; folders a user hid are migrated either way.
    pub include_system_folders: bool,
    /// What replaces the destination's hierarchy separator inside a folder name (default `∕`,
    /// U+2215); every other character of a name stays as typed.
    pub folder_separator_substitute: String,
}

/// The default of `[run] outage_wait`.
pub const DEFAULT_OUTAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(600);
/// The longest `[run] outage_wait` accepted.
const MAX_OUTAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `outage_wait` as written in the file: whole seconds, or a duration text ([`parse_duration`]).
fn outage_wait<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    use serde::de::Error as _;
    let expected = "seconds, or a duration such as \"10m\", \"90s\" or \"1h 30m\"";
    let wait = match toml::Value::deserialize(d)? {
        toml::Value::Integer(n) if n >= 0 => std::time::Duration::from_secs(n as u64),
        toml::Value::String(text) => parse_duration(&text)
            .ok_or_else(|| D::Error::custom(format!("'{text}' is not {expected}")))?,
        other => {
            return Err(D::Error::custom(format!(
                "invalid value ({}): expected {expected}",
                other.type_str()
            )))
        }
    };
    if wait > MAX_OUTAGE_WAIT {
        return Err(D::Error::custom("more than 24 hours"));
    }
    Ok(wait)
}

/// Parses a duration such as `90s`, `10m`, `1h 30m`, `2 min` or a bare number of seconds.
/// Units: `s`/`sec`, `m`/`min`, `h`/`hour` (plurals allowed).
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let seconds = match &rest[..unit_len] {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(seconds)?)?;
        rest = rest[unit_len..].trim_start();
    }
    Some(std::time::Duration::from_secs(total))
}

/// A duration for people: `40 s`, `10 min`, `1 h 30 min` (whole seconds).
pub fn show_duration(d: std::time::Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// One kind of data a run migrates (`WorkloadChoice` in the app's bindings: the permission
/// list has a `Workload` of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export, rename = "WorkloadChoice")]
pub enum Workload {
    Mail,
    Calendar,
    Contacts,
    Tasks,
}

impl Workload {
    pub const ALL: [Workload; 4] = [
        Workload::Mail,
        Workload::Calendar,
        Workload::Contacts,
        Workload::Tasks,
    ];
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            parallel_mailboxes: 8,
            max_in_flight: 4,
            requests_per_window: 10_000,
            window_seconds: 600,
            app_requests_per_window: crate::graph::pacer::APP_BUDGET,
            app_window_seconds: crate::graph::pacer::APP_WINDOW.as_secs(),
            state_dir: None,
            mirror_deletions: false,
            outage_wait: DEFAULT_OUTAGE_WAIT,
            max_downloads: crate::graph::client::DEFAULT_MAX_DOWNLOADS,
            include_system_folders: false,
            folder_separator_substitute: crate::convert::folder_name::DEFAULT_SEPARATOR_SUBSTITUTE
                .to_string(),
        }
    }
}

/// A configuration file that cannot be used, naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Syntax {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("configuration file {path}: {key}: {message}")]
    Invalid {
        path: std::path::PathBuf,
        key: &'static str,
        message: String,
    },
}

impl FileConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`; `path` is only used in messages.
    pub fn parse(text: &str, path: &std::path::Path) -> Result<Self, ConfigError> {
        let config = Self::read(text, path)?;
        let invalid = |key, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        // The spec's rules, written once in [`crate::spec`]; the file reports the first.
        let origin = crate::spec::Origin::File {
            allow_plaintext_loopback: config.destination_file.allows_plaintext_loopback(),
        };
        if let Some(e) = config
            .spec
            .errors(crate::spec::Completeness::Ready, origin)
            .into_iter()
            .next()
        {
            let key = crate::spec::file_key(&e.field);
            let line = match key.split_once('.') {
                Some(("run", name)) => key_line(text, "run", name),
                _ => None,
            };
            let message = match line {
                Some(n) => format!("line {n}: {}", e.message),
                None => e.message,
            };
            return Err(invalid(key, message));
        }
        let host = match &config.spec.destination {
            crate::spec::DestinationSettings::Imap { host, .. }
            | crate::spec::DestinationSettings::IceWarp { host, .. } => host.as_str(),
            crate::spec::DestinationSettings::Folder { .. } => "",
        };
        if let FileDestination::Imap {
            security,
            allow_plaintext_loopback,
            connections_per_mailbox,
            max_connections,
            ..
        } = &config.destination_file
        {
            for (key, value) in [
                (
                    "destination.connections_per_mailbox",
                    connections_per_mailbox,
                ),
                ("destination.max_connections", max_connections),
            ] {
                if *value == Some(0) {
                    return Err(invalid(key, "must be at least 1".into()));
                }
            }
            if *security == Some(ImapSecurity::Plain)
                && check_plaintext_host(host, *allow_plaintext_loopback).is_err()
            {
                return Err(invalid(
                    "destination.security",
                    "\"plain\" sends passwords unencrypted: it needs allow_plaintext_loopback = true and a literal loopback host such as 127.0.0.1".into(),
                ));
            }
        }
        if let FileDestination::IceWarp {
            allow_plaintext_loopback,
            imap_security,
            webdav_url,
            account_quota_mb,
            ..
        } = &config.destination_file
        {
            if let Some(mb) = account_quota_mb {
                if !(1..=MAX_ACCOUNT_QUOTA_MB).contains(mb) {
                    return Err(invalid(
                        "destination.account_quota_mb",
                        format!("must be from 1 to {MAX_ACCOUNT_QUOTA_MB} (MB)"),
                    ));
                }
            }
            if let Some(url) = webdav_url {
                check_endpoint(url, *allow_plaintext_loopback)
                    .map_err(|message| invalid("destination.webdav_url", message))?;
            }
            if *imap_security == ImapSecurity::Plain
                && check_plaintext_host(host, *allow_plaintext_loopback).is_err()
            {
                return Err(invalid(
                    "destination.imap_security",
                    "\"plain\" sends passwords unencrypted: it needs allow_plaintext_loopback = true and a literal loopback host such as 127.0.0.1".into(),
                ));
            }
        }
        // Values that parse but make no sense: the message names the key and its line.
        let at = |table: &str, key: &'static str, message: &str| {
            let line = key_line(text, table, key.rsplit('.').next().unwrap_or(key))
                .map(|n| format!("line {n}: "))
                .unwrap_or_default();
            invalid(key, format!("{line}{message}"))
        };
        let users = &config.users;
        match (users.batch_size, users.batch) {
            (Some(0), _) => return Err(at("users", "users.batch_size", "must be at least 1")),
            (_, Some(0)) => return Err(at("users", "users.batch", "batches are numbered from 1")),
            (Some(_), None) => {
                return Err(at(
                    "users",
                    "users.batch_size",
                    "set batch too: which batch (1, 2, ...) this run migrates",
                ))
            }
            (None, Some(_)) => {
                return Err(at(
                    "users",
                    "users.batch",
                    "set batch_size too: how many mailboxes a batch holds",
                ))
            }
            _ => {}
        }
        if let Err(e) = config.journal.postgres() {
            return Err(invalid("journal.url", e.to_string()));
        }
        if config.journal.lease_seconds.is_some_and(|s| s < 3) {
            return Err(invalid(
                "journal.lease_seconds",
                "must be at least 3 (the lease is renewed every third of it)".to_string(),
            ));
        }
        let run = &config.run;
        if run.parallel_mailboxes == 0 {
            return Err(invalid(
                "run.parallel_mailboxes",
                "must be at least 1".into(),
            ));
        }
        if run.max_in_flight == 0 {
            return Err(invalid("run.max_in_flight", "must be at least 1".into()));
        }
        if run.max_downloads == 0 {
            return Err(invalid("run.max_downloads", "must be at least 1".into()));
        }
        if let Err(e) =
            crate::convert::folder_name::check_substitute(&run.folder_separator_substitute)
        {
            return Err(invalid("run.folder_separator_substitute", e.to_string()));
        }
        if run.requests_per_window == 0 || run.window_seconds == 0 {
            return Err(invalid(
                "run.requests_per_window",
                "the request budget and window must be at least 1".into(),
            ));
        }
        if run.app_requests_per_window == 0 || run.app_window_seconds == 0 {
            return Err(invalid(
                "run.app_requests_per_window",
                "the app's request budget and window must be at least 1".into(),
            ));
        }
        Ok(config)
    }

    /// The keychain entry of the destination's admin or master password: the app's
    /// ([`crate::spec::DestinationSettings::admin_account`]), so the CLI finds the password the
    /// app stored, and a password stored for an IceWarp server's own API is never sent to an
    /// `api_url` override.
    pub fn admin_password_entry(&self) -> Option<String> {
        self.spec
            .destination
            .admin_account()
            .map(|(host, user)| crate::secrets::dest_admin_password_entry(&host, &user))
    }

    /// The source settings for the engine.
    pub fn source_config(&self) -> SourceConfig {
        let source = &self.spec.source;
        SourceConfig {
            tenant_id: source.tenant_id.trim().to_string(),
            client_id: source.client_id.trim().to_string(),
            allow_plaintext_loopback: Some(source.allow_plaintext_loopback.unwrap_or(false)),
            ..source.clone()
        }
    }

    /// The destination the engine writes to: the spec's
    /// ([`crate::spec::MigrationSpec::destination_config`]) with `[destination]`'s own keys.
    pub fn destination(&self) -> DestinationConfig {
        let mut config = self.spec.destination_config();
        match (&mut config, &self.destination_file) {
            (
                DestinationConfig::Imap {
                    allow_plaintext_loopback,
                    security,
                    special_folders,
                    connections_per_mailbox,
                    max_connections,
                    ..
                },
                FileDestination::Imap {
                    allow_plaintext_loopback: allow,
                    security: plain,
                    special_folders: folders,
                    connections_per_mailbox: per_mailbox,
                    max_connections: most,
                },
            ) => {
                *allow_plaintext_loopback = *allow;
                if let Some(plain) = plain {
                    *security = *plain;
                }
                special_folders.clone_from(folders);
                *connections_per_mailbox = *per_mailbox;
                *max_connections = *most;
            }
            (
                DestinationConfig::IceWarp {
                    allow_plaintext_loopback,
                    expire_passwords,
                    master_user,
                    imap_port,
                    imap_security,
                    webdav_url,
                    account_quota_mb,
                    ..
                },
                FileDestination::IceWarp {
                    allow_plaintext_loopback: allow,
                    expire_passwords: expire,
                    master_user: master,
                    imap_port: port,
                    imap_security: security,
                    webdav_url: webdav,
                    account_quota_mb: quota,
                },
            ) => {
                *allow_plaintext_loopback = *allow;
                *expire_passwords = *expire;
                master_user.clone_from(master);
                *imap_port = *port;
                *imap_security = *security;
                webdav_url.clone_from(webdav);
                *account_quota_mb = *quota;
            }
            _ => {}
        }
        config
    }

    /// `[users]`: the spec's `include` with the file's `exclude` and batch.
    pub fn selection(&self) -> UserSelection {
        UserSelection {
            include: self.spec.selection.users.clone(),
            ..self.users.clone()
        }
    }

    /// The run options of this file: `[run]`'s tuning, the selection ([`Self::selection`]),
    /// and the spec's workloads and date limits ([`FileConfig::parse`] checked them).
    pub fn run_options(&self) -> crate::engine::RunOptions {
        let mut options = crate::engine::RunOptions::from_settings(&self.run, &self.selection());
        if !self.spec.workloads.is_empty() {
            options.workloads = self.spec.workloads.clone();
        }
        options.limits = self.spec.limits().unwrap_or_default();
        options
    }

    /// Reads `text` into the spec and the file's own settings, unchecked: each documented key
    /// is moved to where the spec or the file's settings hold it ([`FileLayout::split`]), then both
    /// are deserialized, unknown keys refused with their line.
    pub(crate) fn read(text: &str, path: &std::path::Path) -> Result<Self, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            path: path.to_path_buf(),
            message,
        };
        let toml_error = |e: toml::de::Error| syntax(toml_message(text, &e));
        let root = toml::de::DeTable::parse(text).map_err(toml_error)?;
        let layout = FileLayout::split(root).map_err(|(span, message)| {
            syntax(format!("line {}: {message}", line_at(text, span.start)))
        })?;
        let spec =
            crate::spec::MigrationSpec::deserialize(toml::de::Deserializer::from(layout.spec))
                .map_err(|e| syntax(in_file_words(&toml_message(text, &e))))?;
        let file =
            FileOnly::deserialize(toml::de::Deserializer::from(layout.file)).map_err(toml_error)?;
        Ok(FileConfig {
            spec,
            destination_file: file.destination,
            users: file.users,
            run: file.run,
            journal: file.journal,
        })
    }
}

type Spanned<T> = toml::Spanned<T>;
type DeTable<'i> = toml::de::DeTable<'i>;
type DeValue<'i> = toml::de::DeValue<'i>;

/// The configuration file's text split into the spec's shape and the file's own settings,
/// each key keeping its place in the text (for the line in a message).
struct FileLayout<'i> {
    /// `source`, `destination` (the spec's keys, camelCase), `rules`, `selection`,
    /// `workloads`, `mailSince`, `mailUntil`, `calendarSince`.
    spec: Spanned<DeTable<'i>>,
    /// Everything else: `destination` (the file's keys of its kind), `users`, `run`,
    /// `journal` and any unknown key.
    file: Spanned<DeTable<'i>>,
}

/// `[destination]` keys the spec's [`crate::spec::DestinationSettings`] holds, by `kind`.
fn spec_destination_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "folder" => &["path"],
        "imap" => &[
            "host",
            "port",
            "security",
            "ca_file",
            "master_user",
            "master_style",
            "accounts_csv",
            "dav_url",
        ],
        "icewarp" => &[
            "host",
            "admin_email",
            "ca_file",
            "credentials_report",
            "api_url",
            "accounts_csv",
        ],
        _ => &[],
    }
}

/// The IceWarp `[destination]` keys that are the spec's [`crate::spec::AccountRules`].
const RULE_KEYS: [&str; 7] = [
    "disabled_users",
    "shared_mailboxes",
    "resource_mailboxes",
    "resources_as",
    "skip_onmicrosoft",
    "groups",
    "domain_map",
];

/// `[run]`'s date limits, which are the spec's.
const LIMIT_KEYS: [&str; 3] = ["mail_since", "mail_until", "calendar_since"];

/// The spec's (serde's camelCase) name of a file key: `admin_email` -> `adminEmail`.
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// A message about the spec's deserialization in the file's words: the spec's names of the
/// keys moved into it (`adminEmail`, `iceWarp`) as the file spells them.
fn in_file_words(message: &str) -> String {
    let mut out = message.replace("`iceWarp`", "`icewarp`");
    let keys = ["folder", "imap", "icewarp"]
        .iter()
        .flat_map(|kind| spec_destination_keys(kind).iter())
        .chain(RULE_KEYS.iter())
        .chain(LIMIT_KEYS.iter());
    for key in keys {
        out = out.replace(&format!("`{}`", camel_case(key)), &format!("`{key}`"));
    }
    out
}

/// The 1-based line of byte `offset` of `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

impl<'i> FileLayout<'i> {
    /// Moves each documented key to where it belongs. A date limit that is not a date is
    /// refused here, at its place in the text (the spec holds dates as text).
    fn split(root: Spanned<DeTable<'i>>) -> Result<Self, (std::ops::Range<usize>, String)> {
        let root_span = root.span();
        let mut file = root.into_inner();
        let mut spec = DeTable::new();
        let key = |name: &str, span: std::ops::Range<usize>| {
            Spanned::new(span, std::borrow::Cow::Owned(name.to_string()))
        };
        if let Some((k, v)) = file.remove_entry("source") {
            spec.insert(k, v);
        }
        if let Some((k, v)) = file.remove_entry("destination") {
            let span = v.span();
            match v.into_inner() {
                DeValue::Table(table) => {
                    let (destination, rules, own) = split_destination(table);
                    spec.insert(
                        key("destination", k.span()),
                        Spanned::new(span.clone(), DeValue::Table(destination)),
                    );
                    if !rules.is_empty() {
                        spec.insert(
                            key("rules", k.span()),
                            Spanned::new(span.clone(), DeValue::Table(rules)),
                        );
                    }
                    file.insert(k, Spanned::new(span, DeValue::Table(own)));
                }
                // Not a table: the file's half says so.
                other => {
                    file.insert(k, Spanned::new(span, other));
                }
            }
        }
        let mut take = |section: &str,
                        moved: &dyn Fn(&str) -> Option<String>|
         -> Result<Vec<(String, Spanned<DeValue<'i>>)>, _> {
            let Some((k, v)) = file.remove_entry(section) else {
                return Ok(Vec::new());
            };
            let span = v.span();
            let DeValue::Table(table) = v.into_inner() else {
                return Err((span, format!("{section}: expected a table")));
            };
            let mut out = Vec::new();
            let mut own = DeTable::new();
            for (name, value) in table {
                match moved(name.get_ref()) {
                    Some(to) => out.push((to, value)),
                    None => {
                        own.insert(name, value);
                    }
                }
            }
            file.insert(k, Spanned::new(span, DeValue::Table(own)));
            Ok(out)
        };
        let users = take("users", &|name: &str| {
            (name == "include").then(|| "users".to_string())
        })?;
        if !users.is_empty() {
            let span = users[0].1.span();
            let selection: DeTable = users
                .into_iter()
                .map(|(name, value)| (key(&name, value.span()), value))
                .collect();
            spec.insert(
                key("selection", span.clone()),
                Spanned::new(span, DeValue::Table(selection)),
            );
        }
        let run = take("run", &|name: &str| {
            (name == "workloads" || LIMIT_KEYS.contains(&name)).then(|| camel_case(name))
        })?;
        for (name, value) in run {
            let span = value.span();
            let value = match value.into_inner() {
                other if name == "workloads" => other,
                other => DeValue::String(limit_text(&name, other).map_err(|m| (span.clone(), m))?),
            };
            spec.insert(key(&name, span.clone()), Spanned::new(span, value));
        }
        Ok(FileLayout {
            spec: Spanned::new(root_span.clone(), spec),
            file: Spanned::new(root_span, file),
        })
    }
}

/// A date limit as written in the file, as the spec's text: `"2020-01-01"` or a bare TOML
/// date `2020-01-01`; anything else is refused naming the key (`mail_since: ...`).
fn limit_text<'i>(
    spec_name: &str,
    value: DeValue<'i>,
) -> Result<std::borrow::Cow<'i, str>, String> {
    let name = LIMIT_KEYS
        .iter()
        .find(|k| camel_case(k) == spec_name)
        .copied()
        .unwrap_or(spec_name);
    let expected = "a date such as \"2020-01-01\"";
    let text = match value {
        DeValue::String(s) => s,
        DeValue::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
            std::borrow::Cow::Owned(dt.to_string())
        }
        other => {
            let kind = match other {
                DeValue::Integer(_) => "integer",
                DeValue::Float(_) => "float",
                DeValue::Boolean(_) => "boolean",
                DeValue::Datetime(_) => "datetime",
                DeValue::Array(_) => "array",
                _ => "table",
            };
            return Err(format!(
                "{name}: invalid value (a {kind}): expected {expected}"
            ));
        }
    };
    match parse_date(text.trim()) {
        Some(_) => Ok(text),
        None => Err(format!("{name}: {}", not_a_date(&text))),
    }
}

/// `[destination]` split into the spec's destination (camelCase keys, `kind` as the spec
/// names it), the spec's account rules (IceWarp only) and the file's own keys with `kind`.
fn split_destination<'i>(table: DeTable<'i>) -> (DeTable<'i>, DeTable<'i>, DeTable<'i>) {
    let kind = match table.get("kind").map(|v| v.get_ref()) {
        Some(DeValue::String(kind)) => kind.to_string(),
        _ => String::new(),
    };
    let spec_keys = spec_destination_keys(&kind);
    let (mut destination, mut rules, mut own) = (DeTable::new(), DeTable::new(), DeTable::new());
    for (name, value) in table {
        let renamed = |name: &Spanned<toml::de::DeString<'i>>| {
            Spanned::new(
                name.span(),
                std::borrow::Cow::Owned(camel_case(name.get_ref())),
            )
        };
        let plain = matches!(value.get_ref(), DeValue::String(s) if s.as_ref() == "plain");
        if name.get_ref() == "kind" {
            // The spec's tag is camelCase (`iceWarp`); the file's is as documented.
            let spec_kind = match value.get_ref() {
                DeValue::String(k) if k.as_ref() == "icewarp" => {
                    DeValue::String(std::borrow::Cow::Borrowed("iceWarp"))
                }
                other => other.clone(),
            };
            destination.insert(name.clone(), Spanned::new(value.span(), spec_kind));
            own.insert(name, value);
        } else if spec_keys.contains(&name.get_ref().as_ref())
            && !(name.get_ref() == "security" && plain)
        {
            destination.insert(renamed(&name), value);
        } else if kind == "icewarp" && RULE_KEYS.contains(&name.get_ref().as_ref()) {
            rules.insert(renamed(&name), value);
        } else {
            own.insert(name, value);
        }
    }
    (destination, rules, own)
}

/// Header names of the address column in an accounts file (compared without case), as the
/// common exports of directories and spreadsheets spell it.
const ADDRESS_HEADERS: [&str; 7] = [
    "email", "e-mail", "mail", "address", "upn", "user", "username",
];

/// Reads an accounts file, a CSV (RFC 4180) of addresses and passwords, UTF-8 with or without
/// a byte order mark. Its first row may be a header naming the address column (one of
/// [`ADDRESS_HEADERS`]) and the `password` column, in any order among other columns; without a
/// header each row is `address,password`. Fields may be quoted (`"pa,""ss"`); an unquoted
/// password may contain commas (the rest of the row is the password). Blank lines and lines
/// starting with `#` are skipped. Errors name the line, never a password or any other cell.
pub fn read_accounts_csv(
    path: &std::path::Path,
) -> Result<std::collections::HashMap<String, crate::secrets::Secret>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, what: &str| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: format!("line {line}: {what}"),
    };
    // Spreadsheets save "CSV UTF-8" with a byte order mark; the csv crate keeps it in the
    // first cell.
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    // The line a record starts on. csv counts neither the blank lines it skips in its line
    // number nor in the record's offset, which points at the blank lines before the record.
    let line_at = |p: Option<&csv::Position>| {
        let mut byte = p.map_or(0, |p| p.byte() as usize).min(text.len());
        while matches!(text.get(byte), Some(b'\r' | b'\n')) {
            byte += 1;
        }
        text[..byte].iter().filter(|b| **b == b'\n').count() + 1
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text);
    // The address and password columns, and whether the password is the last column (then
    // the rest of a row is the password: one written without quotes may hold commas).
    // Without a header: `address,password`.
    let mut layout: Option<(usize, usize, bool)> = None;
    let mut accounts = std::collections::HashMap::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|e| bad(line_at(e.position()), "not a CSV row"))?;
        if !more {
            break;
        }
        let line = line_at(record.position());
        let mut cells = Vec::with_capacity(record.len());
        for cell in record.iter() {
            cells.push(
                std::str::from_utf8(cell)
                    .map_err(|_| bad(line, "not UTF-8 text (save the file as CSV UTF-8)"))?,
            );
        }
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let (address_at, password_at, rest) = match layout {
            Some(layout) => layout,
            None if cells.iter().any(|c| c.contains('@')) => *layout.insert((0, 1, true)),
            None => {
                let names: Vec<String> = cells.iter().map(|c| c.trim().to_lowercase()).collect();
                let address = names
                    .iter()
                    .position(|n| ADDRESS_HEADERS.contains(&n.as_str()));
                let password = names.iter().position(|n| n == "password");
                let (Some(address), Some(password)) = (address, password) else {
                    return Err(bad(
                        line,
                        "expected a header naming the address (email, e-mail, mail, address, upn, user or username) and the password column, or rows of address,password",
                    ));
                };
                layout = Some((address, password, password + 1 == cells.len()));
                continue;
            }
        };
        let address = cells.get(address_at).map_or("", |a| a.trim());
        let password = match cells.get(password_at..) {
            Some(tail) if rest && address_at < password_at => tail.join(","),
            Some([password, ..]) => password.to_string(),
            _ => String::new(),
        };
        if !address.contains('@') || password.is_empty() {
            return Err(bad(line, "expected an address and a password"));
        }
        accounts.insert(
            address.to_lowercase(),
            crate::secrets::Secret::new(password),
        );
    }
    Ok(accounts)
}

/// The 1-based line of `key = ...` inside `[table]`, for messages about a value that parsed.
fn key_line(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut in_table = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            in_table = header.trim_end_matches(']').trim() == table;
            continue;
        }
        let name = line.split('=').next().unwrap_or("").trim();
        if in_table && line.contains('=') && name == key {
            return Some(n + 1);
        }
    }
    None
}

/// toml's message with the line number and the key made explicit (its spans are byte
/// offsets). Only the key is quoted from the line, never its value: a secret pasted into the
/// file must not end up in an error message.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return message;
    };
    let mut start = span.start.min(text.len());
    // For an unknown key toml points at its table; point at the key itself.
    if let Some(key) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        let mut offset = start;
        for line in text[start..].split_inclusive('\n') {
            let trimmed = line.trim_start();
            if trimmed.starts_with(key) && trimmed[key.len()..].trim_start().starts_with('=') {
                start = offset;
                break;
            }
            offset += line.len();
        }
    }
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) if !message.contains(key.trim()) => {
            format!("line {line_no}: {}: {message}", key.trim())
        }
        _ => format!("line {line_no}: {message}"),
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    const GOOD: &str = r#"
[source]
tenant_id = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000001"
cloud = "usGovHigh"

[destination]
kind = "folder"
path = "/srv/out"

[users]
exclude = ["Room-1@contoso.com"]
"#;

    /// The file's `[source]` and the app's page deserialize the one `SourceConfig`: the
    /// documented snake_case keys in the file, camelCase from the page; an unknown key is an
    /// error in both.
    #[test]
    fn the_file_and_the_page_deserialize_one_source_type() {
        let file: SourceConfig = toml::from_str(
            "tenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\ncloud = \"usGovHigh\"\nlogin_url = \"http://127.0.0.1:9/\"\ngraph_url = \"http://127.0.0.1:9/\"\nallow_plaintext_loopback = true\n",
        )
        .expect("the file's [source] keys");
        let page: SourceConfig = serde_json::from_value(serde_json::json!({
            "tenantId": "contoso.onmicrosoft.com",
            "clientId": "00000000-0000-0000-0000-000000000001",
            "cloud": "usGovHigh",
            "loginUrl": "http://127.0.0.1:9/",
            "graphUrl": "http://127.0.0.1:9/",
            "allowPlaintextLoopback": true,
        }))
        .expect("the page's fields");
        assert_eq!(file, page);
        let unknown = toml::from_str::<SourceConfig>(
            "tenant_id = \"t\"\nclient_id = \"c\"\nsecret = \"x\"\n",
        )
        .expect_err("an unknown key");
        assert!(unknown.to_string().contains("secret"), "{unknown}");
        let text = GOOD.replace("[source]", "[source]\nclient_secret = \"s\"");
        let e = FileConfig::parse(&text, Path::new("m.toml")).expect_err("a secret in the file");
        assert!(e.to_string().contains("client_secret"), "{e}");
    }

    /// Issue 16: the file's `[destination]`, `[users]` and `[run]` were types of their own,
    /// mapped onto the app's spec field by field (`FileConfig::spec`) and back
    /// (`DestinationSettings::config`). The file now deserializes the spec's own types: a file
    /// and the page's JSON saying the same give one equal `MigrationSpec`, and the file's own
    /// keys (quota, WebDAV URL, plain IMAP, batches, tuning) stay beside it, never in it.
    #[test]
    fn the_file_and_the_page_deserialize_one_migration_spec() {
        let text = r#"
[source]
tenant_id = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000001"

[destination]
kind = "icewarp"
host = "127.0.0.1"
admin_email = "admin@example.com"
credentials_report = "/srv/new.csv"
accounts_csv = "/srv/existing.csv"
api_url = "http://127.0.0.1:3200/icewarpapi/"
allow_plaintext_loopback = true
imap_security = "plain"
webdav_url = "http://127.0.0.1:5232/dav/"
account_quota_mb = 2048
expire_passwords = true
disabled_users = "create"
resource_mailboxes = "skip"
skip_onmicrosoft = false
groups = "by-kind"
domain_map = { "contoso.onmicrosoft.com" = "contoso.com" }

[users]
include = ["adele@contoso.com", "alex@contoso.com"]
exclude = ["alex@contoso.com"]
batch_size = 10
batch = 1

[run]
workloads = ["mail", "calendar"]
mail_since = 2020-01-01
mail_until = "2025-01-01"
parallel_mailboxes = 3
"#;
        let c = FileConfig::parse(text, Path::new("m.toml")).expect("a good file");
        let page: crate::spec::MigrationSpec = serde_json::from_value(serde_json::json!({
            "source": {
                "tenantId": "contoso.onmicrosoft.com",
                "clientId": "00000000-0000-0000-0000-000000000001",
            },
            "destination": {
                "kind": "iceWarp",
                "host": "127.0.0.1",
                "adminEmail": "admin@example.com",
                "credentialsReport": "/srv/new.csv",
                "accountsCsv": "/srv/existing.csv",
                "apiUrl": "http://127.0.0.1:3200/icewarpapi/",
            },
            "rules": {
                "disabledUsers": "create",
                "sharedMailboxes": "create",
                "resourceMailboxes": "skip",
                "skipOnmicrosoft": false,
                "groups": "by-kind",
                "domainMap": {"contoso.onmicrosoft.com": "contoso.com"},
            },
            "selection": {"users": ["adele@contoso.com", "alex@contoso.com"]},
            "workloads": ["mail", "calendar"],
            "mailSince": "2020-01-01",
            "mailUntil": "2025-01-01",
        }))
        .expect("the page's spec");
        assert_eq!(c.spec, page);
        // The file's own keys, beside the spec.
        assert_eq!(
            c.destination_file,
            FileDestination::IceWarp {
                allow_plaintext_loopback: true,
                expire_passwords: true,
                master_user: None,
                imap_port: None,
                imap_security: ImapSecurity::Plain,
                webdav_url: Some("http://127.0.0.1:5232/dav/".into()),
                account_quota_mb: Some(2048),
            }
        );
        assert_eq!((c.users.batch_size, c.users.batch), (Some(10), Some(1)));
        assert_eq!(c.run.parallel_mailboxes, 3);
        // What the engine runs with: both halves.
        let options = c.run_options();
        assert_eq!(options.workloads, [Workload::Mail, Workload::Calendar]);
        assert_eq!(options.limits.mail_since, parse_date("2020-01-01"));
        assert!(options.users.selects(&["adele@contoso.com"]));
        assert!(!options.users.selects(&["alex@contoso.com"]));
        assert_eq!(options.parallel_mailboxes, 3);
        let DestinationConfig::IceWarp {
            allow_plaintext_loopback: true,
            expire_passwords: true,
            imap_security: ImapSecurity::Plain,
            account_quota_mb: Some(2048),
            rules:
                crate::spec::AccountRules {
                    skip_onmicrosoft: false,
                    groups: GroupRule::ByKind,
                    ..
                },
            ..
        } = c.destination()
        else {
            panic!("{:?}", c.destination());
        };
        // The page cannot send a file-only key, nor the file's spelling of a spec key.
        for (key, value) in [
            ("webdavUrl", serde_json::json!("http://127.0.0.1:5232/dav/")),
            ("allowPlaintextLoopback", serde_json::json!(true)),
            ("expirePasswords", serde_json::json!(true)),
            ("admin_email", serde_json::json!("admin@example.com")),
        ] {
            let mut destination = serde_json::to_value(&page.destination).expect("JSON");
            destination[key] = value;
            let e = serde_json::from_value::<crate::spec::DestinationSettings>(destination)
                .expect_err(key);
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
    }

    /// The file is split between the spec and the file's own settings before it is
    /// deserialized: a key unknown in its section (or known only to another kind of
    /// destination) is still refused by name, with its line.
    #[test]
    fn unknown_keys_are_refused_with_their_line_after_the_split() {
        // (a key put before `host`, on line 8 of ICEWARP)
        let cases = [
            "special_folders = {}",
            "admin_emial = \"a@b.c\"",
            "path = \"/srv\"",
            "dav_url = \"https://d.example/\"",
        ];
        for line in cases {
            let name = line.split(' ').next().unwrap_or_default();
            let want = format!("line 8: unknown field `{name}`");
            let text = ICEWARP.replace("host =", &format!("{line}\nhost ="));
            let e = FileConfig::parse(&text, Path::new("m.toml"))
                .expect_err(line)
                .to_string();
            assert!(e.contains(&want), "{want}: {e}");
        }
        let folder = GOOD.replace(
            "path = \"/srv/out\"",
            "path = \"/srv/out\"\ndomain_map = {}",
        );
        let e = FileConfig::parse(&folder, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 10: unknown field `domain_map`"), "{e}");
        let users = format!("{GOOD}includes = [\"adele@contoso.com\"]\n");
        let e = FileConfig::parse(&users, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 13: unknown field `includes`"), "{e}");
        let run = format!("{GOOD}\n[run]\nworkload = [\"mail\"]\n");
        let e = FileConfig::parse(&run, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 15") && e.contains("unknown field `workload`"),
            "{e}"
        );
        let top = format!("{GOOD}\n[sources]\ntenant_id = \"x\"\n");
        let e = FileConfig::parse(&top, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `sources`"), "{e}");
    }

    /// The spec's names never reach a message about the file: a missing or wrong key of a
    /// kind is named as the file spells it.
    #[test]
    fn messages_name_the_file_keys_not_the_spec_fields() {
        let base = "[source]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\n\n[destination]\n";
        for (destination, want) in [
            (
                "kind = \"icewarp\"\nhost = \"mail.example.com\"\ncredentials_report = \"/x\"",
                "missing field `admin_email`",
            ),
            (
                "kind = \"ftp\"",
                "kind: unknown variant `ftp`, expected one of `icewarp`, `imap`, `folder`",
            ),
            (
                "kind = \"imap\"\nmaster_user = \"a\"",
                "missing field `host`",
            ),
        ] {
            let e = FileConfig::parse(&format!("{base}{destination}\n"), Path::new("m.toml"))
                .expect_err(want)
                .to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn a_good_file_parses_with_defaults() {
        let c = FileConfig::parse(GOOD, Path::new("m.toml")).unwrap();
        assert_eq!(c.spec.source.cloud, Cloud::UsGovHigh);
        assert_eq!(c.run, RunSettings::default());
        assert_eq!(
            c.destination(),
            DestinationConfig::Folder {
                path: "/srv/out".into()
            }
        );
        assert!(c.users.selects(&["adele@contoso.com"]));
        assert!(!c.users.selects(&["room-1@CONTOSO.com", "x@y"]));
        assert_eq!(
            c.source_config().login_base(),
            "https://login.microsoftonline.us"
        );
    }

    #[test]
    fn a_journal_url_picks_postgres_and_a_bad_one_is_one_clear_error() {
        let c = FileConfig::parse(GOOD, Path::new("m.toml")).unwrap();
        assert!(c.journal.postgres().unwrap().is_none(), "SQLite by default");
        let with = |url: &str| format!("{GOOD}\n[journal]\nurl = \"{url}\"\n");
        let c = FileConfig::parse(
            &with("postgres://mig@db.example.com/m365?sslmode=verify-full"),
            Path::new("m.toml"),
        )
        .unwrap();
        let pg = c.journal.postgres().unwrap().unwrap();
        assert_eq!(pg.ssl_mode, crate::journal::SslMode::VerifyFull);
        for (url, says) in [
            (
                "postgres://mig:s3cret@db/m365",
                "M365_MIGRATOR_JOURNAL_PASSWORD",
            ),
            (
                "postgres://mig@db/m365?sslmode=sometimes",
                "sslmode=sometimes",
            ),
            ("sqlite:///tmp/j", "postgres://"),
            (
                "postgres://mig@db/m365?sslmode=require&sslrootcert=/nonexistent/ca.pem",
                "/nonexistent/ca.pem",
            ),
        ] {
            let e = FileConfig::parse(&with(url), Path::new("m.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("journal.url") && e.contains(says), "{url}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        let typo = format!("{GOOD}\n[journal]\nuri = \"postgres://db/j\"\n");
        let e = FileConfig::parse(&typo, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("uri"), "unknown keys stay errors: {e}");
    }

    #[test]
    fn a_lease_of_less_than_three_seconds_is_a_config_error() {
        let with = |extra: &str| format!("{GOOD}\n[journal]\nurl = \"postgres://m@db/j\"\n{extra}");
        let c = FileConfig::parse(&with(""), Path::new("m.toml")).unwrap();
        assert_eq!(c.journal.lease().as_secs(), DEFAULT_LEASE_SECONDS);
        let c = FileConfig::parse(&with("lease_seconds = 9\n"), Path::new("m.toml")).unwrap();
        assert_eq!(c.journal.lease().as_secs(), 9);
        let e = FileConfig::parse(&with("lease_seconds = 2\n"), Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("journal.lease_seconds"), "{e}");
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key_and_line() {
        let typo = GOOD.replace("cloud =", "clowd =");
        let e = FileConfig::parse(&typo, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 5") && e.contains("clowd"), "{e}");

        let wrong = format!("{GOOD}\n[run]\nparallel_mailboxes = \"many\"\n");
        let e = FileConfig::parse(&wrong, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 15: parallel_mailboxes: invalid type"),
            "{e}"
        );

        let secret = GOOD.replace("[destination]", "client_secret = \"x\"\n[destination]");
        let e = FileConfig::parse(&secret, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("client_secret"), "{e}");
    }

    #[test]
    fn an_imap_destination_needs_one_login_route_and_tls_unless_loopback() {
        let imap = GOOD.replace(
            "kind = \"folder\"\npath = \"/srv/out\"",
            "kind = \"imap\"\nhost = \"mail.example.com\"\nmaster_user = \"admin\"",
        );
        let c = FileConfig::parse(&imap, Path::new("m.toml")).unwrap();
        assert!(matches!(
            c.destination(),
            DestinationConfig::Imap {
                security: ImapSecurity::Tls,
                port: None,
                ..
            }
        ));
        let both = imap.replace(
            "master_user = \"admin\"",
            "master_user = \"a\"\naccounts_csv = \"x.csv\"",
        );
        let e = FileConfig::parse(&both, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly one"), "{e}");
        let plain = imap.replace("host =", "security = \"plain\"\nhost =");
        let e = FileConfig::parse(&plain, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("destination.security"), "{e}");
    }

    #[test]
    fn imap_connection_options_are_read_and_zero_is_refused() {
        let imap = GOOD.replace(
            "kind = \"folder\"\npath = \"/srv/out\"",
            "kind = \"imap\"\nhost = \"mail.example.com\"\nmaster_user = \"admin\"\n\
             connections_per_mailbox = 3\nmax_connections = 40",
        );
        let c = FileConfig::parse(&imap, Path::new("m.toml")).unwrap();
        assert!(matches!(
            c.destination(),
            DestinationConfig::Imap {
                connections_per_mailbox: Some(3),
                max_connections: Some(40),
                ..
            }
        ));
        let zero = imap.replace("max_connections = 40", "max_connections = 0");
        let e = FileConfig::parse(&zero, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("destination.max_connections"), "{e}");
    }

    #[test]
    fn folder_separator_substitute_is_read_and_a_separator_is_refused() {
        let read = |extra: &str| {
            FileConfig::parse(&format!("{GOOD}\n[run]\n{extra}\n"), Path::new("m.toml"))
        };
        assert_eq!(
            read("").unwrap().run.folder_separator_substitute,
            "\u{2215}"
        );
        let underscore = read("folder_separator_substitute = \"_\"").unwrap();
        assert_eq!(underscore.run.folder_separator_substitute, "_");
        for bad in ["", "/", "a.b", "%"] {
            let e = read(&format!("folder_separator_substitute = \"{bad}\""))
                .unwrap_err()
                .to_string();
            assert!(e.contains("run.folder_separator_substitute"), "{e}");
        }
    }

    #[test]
    fn max_downloads_is_read_and_zero_is_refused() {
        let read = |extra: &str| {
            FileConfig::parse(&format!("{GOOD}\n[run]\n{extra}\n"), Path::new("m.toml"))
        };
        assert_eq!(
            read("").unwrap().run.max_downloads,
            crate::graph::client::DEFAULT_MAX_DOWNLOADS
        );
        assert_eq!(read("max_downloads = 300").unwrap().run.max_downloads, 300);
        let e = read("max_downloads = 0").unwrap_err().to_string();
        assert!(
            e.contains("run.max_downloads") && e.contains("at least 1"),
            "{e}"
        );
    }

    #[test]
    fn the_app_budget_defaults_to_graphs_global_limit_and_zero_is_refused() {
        let read = |extra: &str| {
            FileConfig::parse(&format!("{GOOD}\n[run]\n{extra}\n"), Path::new("m.toml"))
        };
        let run = read("").unwrap().run;
        assert_eq!(
            (run.app_requests_per_window, run.app_window_seconds),
            (130_000, 10)
        );
        let run = read("app_requests_per_window = 5000\napp_window_seconds = 1")
            .unwrap()
            .run;
        assert_eq!(
            (run.app_requests_per_window, run.app_window_seconds),
            (5_000, 1)
        );
        for zero in ["app_requests_per_window = 0", "app_window_seconds = 0"] {
            let e = read(zero).unwrap_err().to_string();
            assert!(
                e.contains("run.app_requests_per_window") && e.contains("at least 1"),
                "{e}"
            );
        }
    }

    /// Writes `text` as an accounts file and reads it back.
    fn accounts(text: &[u8]) -> Result<std::collections::HashMap<String, String>, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("accounts.csv");
        std::fs::write(&file, text).unwrap();
        read_accounts_csv(&file)
            .map(|a| {
                a.into_iter()
                    .map(|(k, v)| (k, v.expose().to_string()))
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accounts_csv_lines_are_checked_without_quoting_passwords() {
        let read = accounts(b"address,password\r\nAdele@Contoso.com,pa,ss\r\n\n# note\n").unwrap();
        assert_eq!(read["adele@contoso.com"], "pa,ss");
        let e = accounts(b"adele@contoso.com,ok\nbroken-line-s3cret\n").unwrap_err();
        assert!(e.contains("line 2") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn accounts_csv_header_names_the_address_column_by_any_common_name() {
        for name in ADDRESS_HEADERS {
            for header in [name.to_string(), name.to_uppercase()] {
                let text = format!("{header},password\nAdele@Contoso.com,s3cret\n");
                let read = accounts(text.as_bytes()).unwrap_or_else(|e| panic!("{header}: {e}"));
                assert_eq!(read.len(), 1, "{header}");
                assert_eq!(read["adele@contoso.com"], "s3cret", "{header}");
            }
        }
        // Other columns, in any order.
        let read =
            accounts(b"Password,Display name,E-mail\ns3cret,Adele Vance,adele@contoso.com\n")
                .unwrap();
        assert_eq!(read["adele@contoso.com"], "s3cret");
        // No header at all.
        let read = accounts(b"adele@contoso.com,s3cret\nalex@contoso.com,0ther\n").unwrap();
        assert_eq!(read["alex@contoso.com"], "0ther");
        // A header without a password column is refused on its line.
        let e = accounts(b"email,name\nadele@contoso.com,s3cret\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("password"), "{e}");
    }

    #[test]
    fn accounts_csv_quoted_passwords_keep_commas_quotes_and_spaces() {
        let read = accounts(
            b"upn,password\n\"adele@contoso.com\",\"pa,\"\"ss\"\"\"\nalex@contoso.com,\" lead,trail \"\n\"lynne@contoso.com\",\"two\nlines\"\nmeg@contoso.com,mid\"quote\n",
        )
        .unwrap();
        assert_eq!(read["adele@contoso.com"], "pa,\"ss\"");
        assert_eq!(read["alex@contoso.com"], " lead,trail ");
        assert_eq!(read["lynne@contoso.com"], "two\nlines");
        assert_eq!(read["meg@contoso.com"], "mid\"quote");
    }

    #[test]
    fn accounts_csv_with_a_byte_order_mark_reads_its_header() {
        let read = accounts(b"\xEF\xBB\xBFemail,password\r\nadele@contoso.com,s3cret\r\n").unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read["adele@contoso.com"], "s3cret");
        let read = accounts("\u{feff}adele@contoso.com,pässwörd\n".as_bytes()).unwrap();
        assert_eq!(read["adele@contoso.com"], "pässwörd");
    }

    #[test]
    fn accounts_csv_bad_row_names_its_line_and_never_its_password() {
        // A row without an address, one without a password, an address without a domain, bad
        // UTF-8.
        for (text, line) in [
            (
                &b"email,password\nadele@contoso.com,fine\n\nS3cret-no-address\n"[..],
                4,
            ),
            (
                b"# accounts\nadele@contoso.com,S3cret\nalex@contoso.com,\n",
                3,
            ),
            (b"email,password\nadele,\"S3cret,\"\n", 2),
            (b"adele@contoso.com,S3cret\nalex@contoso.com,S3cr\xFFt\n", 2),
        ] {
            let e = accounts(text).unwrap_err();
            assert!(e.contains(&format!("line {line}:")), "{line}: {e}");
            assert!(!e.contains("S3cr") && !e.contains("fine"), "{e}");
        }
    }

    #[test]
    fn imap_and_dav_plaintext_only_to_a_literal_loopback_address() {
        let imap = |host: &str, extra: &str| {
            GOOD.replace(
                "kind = \"folder\"\npath = \"/srv/out\"",
                &format!(
                    "kind = \"imap\"\nhost = \"{host}\"\naccounts_csv = \"x.csv\"\nallow_plaintext_loopback = true\n{extra}"
                ),
            )
        };
        let refused = |text: String, key: &str| {
            let e = FileConfig::parse(&text, Path::new("m.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        };
        refused(
            imap("localhost", "security = \"plain\""),
            "destination.security",
        );
        for dav in [
            "http://localhost.evil.example/",
            "http://127.0.0.1@evil.example/",
            "http://localhost:5232/",
        ] {
            refused(
                imap("127.0.0.1", &format!("dav_url = \"{dav}\"")),
                "destination.dav_url",
            );
        }
        let ok = imap(
            "127.0.0.1",
            "security = \"plain\"\ndav_url = \"http://127.0.0.1:5232/\"",
        );
        FileConfig::parse(&ok, Path::new("m.toml")).unwrap();
    }

    #[test]
    fn login_and_graph_urls_that_only_look_like_loopback_are_refused() {
        let with = |source_lines: &str| {
            FileConfig::parse(
                &GOOD.replace("cloud = \"usGovHigh\"", source_lines),
                Path::new("m.toml"),
            )
        };
        for (lines, key) in [
            (
                "login_url = \"http://localhost.evil.example\"",
                "source.login_url",
            ),
            (
                "login_url = \"http://127.0.0.1@evil.example\"",
                "source.login_url",
            ),
            (
                "login_url = \"http://127.0.0.1.evil.example/\"\nallow_plaintext_loopback = true",
                "source.login_url",
            ),
            (
                "login_url = \"http://localhost.evil.example\"\nallow_plaintext_loopback = true",
                "source.login_url",
            ),
            (
                "login_url = \"https://admin:pw@login.example\"",
                "source.login_url",
            ),
            ("graph_url = \"http://[::1]:8080\"", "source.graph_url"),
            ("graph_url = \"http://127.0.0.1:8080\"", "source.graph_url"),
            ("graph_url = \"ftp://graph.example\"", "source.graph_url"),
        ] {
            let e = with(lines).unwrap_err().to_string();
            assert!(e.contains(key), "{lines}: {e}");
        }
        for lines in [
            "login_url = \"https://login.example/\"\ngraph_url = \"https://graph.example\"",
            "login_url = \"http://127.0.0.1:9\"\ngraph_url = \"http://[::1]:9/\"\nallow_plaintext_loopback = true",
        ] {
            with(lines).unwrap_or_else(|e| panic!("{lines}: {e}"));
        }
    }

    #[test]
    fn the_client_secret_entry_is_bound_to_the_login_host() {
        let mut source = SourceConfig {
            tenant_id: "Contoso.com".into(),
            client_id: "ABC".into(),
            cloud: Cloud::Global,
            login_url: None,
            graph_url: None,
            allow_plaintext_loopback: None,
        };
        // Entries saved before hosts were bound keep working for Microsoft's own hosts.
        let default = "graph-client-secret:contoso.com/abc";
        assert_eq!(source.client_secret_entry(), default);
        source.cloud = Cloud::China;
        assert_eq!(source.client_secret_entry(), default);
        source.login_url = Some("https://login.microsoftonline.com/".into());
        assert_eq!(source.client_secret_entry(), default);
        source.login_url = Some("https://Login.Proxy.example:8443/base".into());
        assert_eq!(
            source.client_secret_entry(),
            "graph-client-secret:contoso.com/abc@login.proxy.example:8443"
        );
        source.login_url = Some("http://127.0.0.1:4000".into());
        assert_eq!(
            source.client_secret_entry(),
            "graph-client-secret:contoso.com/abc@127.0.0.1:4000"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = FileConfig::parse(
            &GOOD.replace("contoso.onmicrosoft.com", "contoso"),
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("source.tenant_id"), "{e}");
        let e = FileConfig::parse(
            &GOOD.replace(
                "cloud = \"usGovHigh\"",
                "graph_url = \"http://graph.example.com\"",
            ),
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("source.graph_url"), "{e}");
        let e = FileConfig::parse(&GOOD.replace("\"folder\"", "\"ftp\""), Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ftp") && e.contains("folder"), "{e}");
    }

    #[test]
    fn batches_cut_the_sorted_selection_into_groups() {
        let batch = |size, n| UserSelection {
            batch_size: Some(size),
            batch: Some(n),
            ..UserSelection::default()
        };
        // Listed in Graph's order; batches follow the UPN order, whatever the case.
        let users = vec!["e@x", "B@x", "a@x", "d@x", "C@x"];
        let upn = |u: &&str| u.to_string();
        assert_eq!(
            batch(2, 1).batch_of(users.clone(), upn).unwrap(),
            ["a@x", "B@x"]
        );
        assert_eq!(
            batch(2, 2).batch_of(users.clone(), upn).unwrap(),
            ["C@x", "d@x"]
        );
        assert_eq!(batch(2, 3).batch_of(users.clone(), upn).unwrap(), ["e@x"]);
        let e = batch(2, 4).batch_of(users.clone(), upn).unwrap_err();
        assert_eq!((e.selected, e.batches), (5, 3));
        assert!(e.to_string().contains("batches 1 to 3"), "{e}");
        assert_eq!(
            UserSelection::default().batch_of(users, upn).unwrap(),
            ["a@x", "B@x", "C@x", "d@x", "e@x"]
        );
    }

    #[test]
    fn batch_and_date_settings_parse_and_bad_values_name_key_and_line() {
        let file = format!(
            "{GOOD}batch_size = 500\nbatch = 2\n\n[run]\nmail_since = \"2020-01-01\"\nmail_until = 2025-01-01\ncalendar_since = \"2024-06-30\"\n"
        );
        let c = FileConfig::parse(&file, Path::new("m.toml")).unwrap();
        assert_eq!((c.users.batch_size, c.users.batch), (Some(500), Some(2)));
        let limits = c.spec.limits().unwrap();
        assert_eq!(limits.mail_since, parse_date("2020-01-01"));
        assert_eq!(limits.mail_until, parse_date("2025-01-01"));
        assert_eq!(limits.calendar_since, parse_date("2024-06-30"));

        // (replace, with, what the error must say); GOOD's [users] starts on line 11.
        let cases = [
            (
                "batch = 2",
                "batch = 0",
                "users.batch: line 14: batches are numbered from 1",
            ),
            (
                "batch_size = 500",
                "batch_size = 0",
                "users.batch_size: line 13: must be at least 1",
            ),
            (
                "batch = 2\n",
                "",
                "users.batch_size: line 13: set batch too",
            ),
            (
                "batch_size = 500\n",
                "",
                "users.batch: line 13: set batch_size too",
            ),
            ("batch = 2", "batch = -1", "line 14: batch: invalid value"),
            (
                "\"2020-01-01\"",
                "\"2020-13-01\"",
                "line 17: mail_since: '2020-13-01' is not a date",
            ),
            (
                "\"2020-01-01\"",
                "2020-01-01T10:00:00Z",
                "line 17: mail_since: invalid value",
            ),
            (
                "\"2020-01-01\"",
                "2025-01-01",
                "run.mail_until: line 18: the last day 2025-01-01 is not after the first day 2025-01-01",
            ),
        ];
        for (from, to, want) in cases {
            let e = FileConfig::parse(&file.replacen(from, to, 1), Path::new("m.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn outage_wait_reads_seconds_or_a_duration_and_bad_values_name_the_line() {
        let with = |value: &str| {
            FileConfig::parse(
                &format!("{GOOD}\n[run]\noutage_wait = {value}\n"),
                Path::new("m.toml"),
            )
        };
        assert_eq!(RunSettings::default().outage_wait, Duration::from_secs(600));
        for (value, seconds) in [
            ("40", 40),
            ("0", 0),
            ("\"90s\"", 90),
            ("\"10m\"", 600),
            ("\"1h 30m\"", 5400),
            ("\"2 min 5 sec\"", 125),
        ] {
            let c = with(value).unwrap();
            assert_eq!(c.run.outage_wait, Duration::from_secs(seconds), "{value}");
        }
        for (value, want) in [
            (
                "\"ten minutes\"",
                "line 15: outage_wait: 'ten minutes' is not seconds",
            ),
            (
                "\"10 fortnights\"",
                "line 15: outage_wait: '10 fortnights' is not",
            ),
            ("-5", "line 15: outage_wait: invalid value (integer)"),
            ("1.5", "line 15: outage_wait: invalid value (float)"),
            ("\"25h\"", "line 15: outage_wait: more than 24 hours"),
        ] {
            let e = with(value).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        assert_eq!(show_duration(Duration::from_secs(40)), "40 s");
        assert_eq!(show_duration(Duration::from_secs(600)), "10 min");
        assert_eq!(show_duration(Duration::from_secs(90)), "1 min 30 s");
        assert_eq!(show_duration(Duration::from_secs(5400)), "1 h 30 min");
    }

    #[test]
    fn date_limits_keep_mail_and_events_by_the_documented_rule() {
        let limits = DateLimits {
            mail_since: parse_date("2020-01-01"),
            mail_until: parse_date("2021-01-01"),
            calendar_since: parse_date("2024-01-01"),
        };
        assert!(!limits.keeps_mail(Some("2019-12-31T23:59:59Z")));
        assert!(limits.keeps_mail(Some("2020-01-01T00:00:00Z")));
        assert!(limits.keeps_mail(Some("2020-12-31T23:59:59Z")));
        assert!(!limits.keeps_mail(Some("2021-01-01T00:00:00Z")));
        // No date, or one that cannot be read: kept.
        assert!(limits.keeps_mail(None) && limits.keeps_mail(Some("garbage")));

        let single = |end| limits.keeps_event(Some("singleInstance"), Some(end), None);
        assert!(!single("2023-12-31T23:00:00.0000000"));
        assert!(single("2024-01-01T00:30:00.0000000"));
        let series = |kind, end| {
            limits.keeps_event(
                Some("seriesMaster"),
                Some("2010-01-01T10:00:00"),
                Some((Some(kind), end)),
            )
        };
        assert!(!series("endDate", Some("2023-06-30")));
        assert!(series("endDate", Some("2024-06-30")));
        assert!(series("noEnd", None));
        assert!(series("numbered", None));
        assert!(DateLimits::default().keeps_event(None, Some("1990-01-01T00:00:00"), None));
        assert_ne!(limits.fingerprint(), DateLimits::default().fingerprint());
    }

    const ICEWARP: &str = r#"
[source]
tenant_id = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000001"

[destination]
kind = "icewarp"
host = "mail.example.com"
admin_email = "admin@example.com"
credentials_report = "/root/new-accounts.csv"
domain_map = { "contoso.onmicrosoft.com" = "contoso.com" }
"#;

    #[test]
    fn an_icewarp_destination_derives_its_endpoints_and_rules() {
        let c = FileConfig::parse(ICEWARP, Path::new("m.toml")).unwrap();
        let DestinationConfig::IceWarp {
            expire_passwords,
            ref rules,
            ..
        } = c.destination()
        else {
            panic!("{:?}", c.destination());
        };
        assert!(rules.skip_onmicrosoft && !expire_passwords);
        assert_eq!(rules.disabled_users, AccountRule::Skip);
        assert_eq!(rules.shared_mailboxes, AccountRule::Create);
        assert_eq!(rules.domain_map["contoso.onmicrosoft.com"], "contoso.com");
        assert_eq!(
            c.destination().icewarp_endpoints().unwrap(),
            IceWarpEndpoints {
                api_url: "https://mail.example.com/icewarpapi/".into(),
                imap_host: "mail.example.com".into(),
                imap_port: 993,
                imap_security: ImapSecurity::Tls,
                webdav_base: "https://mail.example.com/webdav/".into(),
            }
        );

        let local = ICEWARP.replace(
            "host =",
            "api_url = \"http://127.0.0.1:3200/icewarpapi\"\nwebdav_url = \"http://127.0.0.1:5232/dav\"\nallow_plaintext_loopback = true\nimap_security = \"plain\"\nimap_port = 1143\ndisabled_users = \"create\"\nhost =",
        )
        // Plain IMAP only to a literal loopback host.
        .replace("\"mail.example.com\"", "\"127.0.0.1\"");
        let c = FileConfig::parse(&local, Path::new("m.toml")).unwrap();
        let e = c.destination().icewarp_endpoints().unwrap();
        assert_eq!(e.api_url, "http://127.0.0.1:3200/icewarpapi/");
        assert_eq!(e.webdav_base, "http://127.0.0.1:5232/dav/");
        assert_eq!((e.imap_port, e.imap_security), (1143, ImapSecurity::Plain));
        assert_eq!(
            e.webdav_home("Adele@Contoso.com"),
            "http://127.0.0.1:5232/dav/adele@contoso.com/"
        );
        assert!(matches!(
            c.destination(),
            DestinationConfig::IceWarp {
                rules: crate::spec::AccountRules {
                    disabled_users: AccountRule::Create,
                    ..
                },
                ..
            }
        ));
        assert_eq!(
            FileConfig::parse(GOOD, Path::new("m.toml"))
                .unwrap()
                .destination()
                .icewarp_endpoints(),
            None
        );
    }

    #[test]
    fn icewarp_settings_are_checked() {
        // (text replaced, replacement, what the error must name)
        let cases = [
            (
                "host =",
                "api_url = \"http://127.0.0.1/icewarpapi/\"\nhost =",
                "destination.api_url",
            ),
            (
                "host =",
                "api_url = \"http://mail.example.com/\"\nallow_plaintext_loopback = true\nhost =",
                "destination.api_url",
            ),
            (
                "host =",
                "imap_security = \"plain\"\nhost =",
                "destination.imap_security",
            ),
            ("admin@example.com", "ad min", "destination.admin_email"),
            (
                "= \"contoso.com\" }",
                "= \"not a domain\" }",
                "destination.domain_map",
            ),
            ("host =", "admin_password = \"x\"\nhost =", "admin_password"),
            (
                "credentials_report = \"/root/new-accounts.csv\"\n",
                "",
                "credentials_report",
            ),
            ("host =", "disabled_users = \"delete\"\nhost =", "delete"),
            (
                "host =",
                "api_url = \"http://localhost.evil.example/\"\nallow_plaintext_loopback = true\nhost =",
                "destination.api_url",
            ),
            (
                "host =",
                "webdav_url = \"http://127.0.0.1@evil.example/\"\nallow_plaintext_loopback = true\nhost =",
                "destination.webdav_url",
            ),
            (
                "host =",
                "account_quota_mb = 0\nhost =",
                "destination.account_quota_mb",
            ),
            (
                "host =",
                "account_quota_mb = 2097152\nhost =",
                "destination.account_quota_mb",
            ),
        ];
        for (from, to, key) in cases {
            let e = FileConfig::parse(&ICEWARP.replace(from, to), Path::new("m.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        let quota = ICEWARP.replace("host =", "account_quota_mb = 2097151\nhost =");
        assert!(FileConfig::parse(&quota, Path::new("m.toml")).is_ok());
    }

    /// The CLI looked up an IceWarp admin password under `<host>/<admin>` even with an
    /// `api_url` override, where the app stores it under `<host>@<api host>/<admin>`: the CLI
    /// missed the app's password and could send the server's own to another API host.
    #[test]
    fn regression_the_cli_reads_the_admin_password_entry_the_app_stores() {
        let with_api = ICEWARP.replace(
            "host =",
            "api_url = \"https://api.example.net:8443/icewarpapi/\"\nhost =",
        );
        let entry = |text: &str| {
            FileConfig::parse(text, Path::new("m.toml"))
                .expect("a good file")
                .admin_password_entry()
        };
        assert_eq!(
            entry(&with_api).as_deref(),
            Some("dest-admin-password:mail.example.com@api.example.net:8443/admin@example.com")
        );
        assert_eq!(
            entry(ICEWARP).as_deref(),
            Some("dest-admin-password:mail.example.com/admin@example.com")
        );
        let imap = GOOD.replace(
            "kind = \"folder\"\npath = \"/srv/out\"",
            "kind = \"imap\"\nhost = \"Mail.Example.com\"\nmaster_user = \"Admin\"",
        );
        assert_eq!(
            entry(&imap).as_deref(),
            Some("dest-admin-password:mail.example.com/admin")
        );
        assert_eq!(entry(GOOD), None);
    }
}
