//! Settings the engine runs with. The TOML file format for headless runs builds on these.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The Microsoft cloud a tenant lives in. Each has its own login and Graph hosts and tokens are
/// not interchangeable between them (Graph docs, concepts/deployments.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct SourceConfig {
    /// Directory (tenant) ID: a GUID or a verified domain such as `contoso.onmicrosoft.com`.
    pub tenant_id: String,
    /// Application (client) ID of the app registration.
    pub client_id: String,
    #[serde(default)]
    pub cloud: Cloud,
    /// Overrides the cloud's login host (a proxy, or the simulator in tests).
    #[serde(default)]
    #[ts(optional)]
    pub login_url: Option<String>,
    /// Overrides the cloud's Graph host.
    #[serde(default)]
    #[ts(optional)]
    pub graph_url: Option<String>,
}

impl SourceConfig {
    /// The login host in effect, without a trailing slash.
    pub fn login_base(&self) -> String {
        trim(self.login_url.as_deref().unwrap_or(self.cloud.login_url()))
    }

    /// The Graph host in effect, without a trailing slash.
    pub fn graph_base(&self) -> String {
        trim(self.graph_url.as_deref().unwrap_or(self.cloud.graph_url()))
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

fn is_dns_name(s: &str) -> bool {
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
///
/// [run]                                    # optional
/// parallel_mailboxes = 8
/// state_dir = "/var/lib/m365-migrator"     # the journal; default: beside this file
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub source: FileSource,
    pub destination: DestinationConfig,
    #[serde(default)]
    pub users: UserSelection,
    #[serde(default)]
    pub run: RunSettings,
}

/// `[source]`: the app registration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    pub tenant_id: String,
    pub client_id: String,
    #[serde(default)]
    pub cloud: Cloud,
    pub login_url: Option<String>,
    pub graph_url: Option<String>,
}

/// `[destination]`, selected by `kind`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
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
        #[serde(default)]
        security: ImapSecurity,
        /// Extra CA certificates (PEM) to trust, e.g. a private CA.
        ca_file: Option<std::path::PathBuf>,
        /// Needed for `security = "plain"`, which is only allowed to a loopback address.
        #[serde(default)]
        allow_plaintext_loopback: bool,
        master_user: Option<String>,
        #[serde(default)]
        master_style: MasterLoginStyle,
        accounts_csv: Option<std::path::PathBuf>,
        /// Destination folder names for well-known folders (`sentitems`, `drafts`,
        /// `deleteditems`, `junkemail`, `archive`), when SPECIAL-USE is not enough.
        #[serde(default)]
        special_folders: std::collections::BTreeMap<String, String>,
    },
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
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSelection {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl UserSelection {
    /// True when a user with these addresses (mail, UPN) is selected. Case-insensitive.
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
}

/// `[run]`: tuning. The defaults suit Exchange Online's documented limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    pub parallel_mailboxes: usize,
    /// Requests in flight per mailbox (Exchange Online allows 4).
    pub max_in_flight: usize,
    /// Requests per mailbox per `window_seconds` (Exchange Online: 10,000 per 600 s).
    pub requests_per_window: u32,
    pub window_seconds: u64,
    pub state_dir: Option<std::path::PathBuf>,
    /// On a later (incremental) run, delete at the destination the messages deleted at the
    /// source since. Only copies the migrator made are deleted; default `false`: kept.
    pub mirror_deletions: bool,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            parallel_mailboxes: 8,
            max_in_flight: 4,
            requests_per_window: 10_000,
            window_seconds: 600,
            state_dir: None,
            mirror_deletions: false,
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
        let config: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: toml_message(text, &e),
        })?;
        let invalid = |key, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        if !tenant_id_shape_ok(config.source.tenant_id.trim()) {
            return Err(invalid(
                "source.tenant_id",
                format!(
                    "'{}' is neither a GUID nor a domain name",
                    config.source.tenant_id
                ),
            ));
        }
        if !is_guid(config.source.client_id.trim()) {
            return Err(invalid(
                "source.client_id",
                format!("'{}' is not a GUID", config.source.client_id),
            ));
        }
        for (key, url) in [
            ("source.login_url", &config.source.login_url),
            ("source.graph_url", &config.source.graph_url),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("https://")
                    || url.starts_with("http://127.0.0.1")
                    || url.starts_with("http://localhost")
                    || url.starts_with("http://[::1]"))
                {
                    return Err(invalid(
                        key,
                        format!("'{url}' must be an https:// URL (plain http only on loopback)"),
                    ));
                }
            }
        }
        if let DestinationConfig::Imap {
            host,
            security,
            allow_plaintext_loopback,
            master_user,
            accounts_csv,
            ..
        } = &config.destination
        {
            if host.trim().is_empty() {
                return Err(invalid("destination.host", "is empty".into()));
            }
            if *security == ImapSecurity::Plain && !allow_plaintext_loopback {
                return Err(invalid(
                    "destination.security",
                    "\"plain\" sends passwords unencrypted: it needs allow_plaintext_loopback = true and a loopback host".into(),
                ));
            }
            if master_user.is_some() == accounts_csv.is_some() {
                return Err(invalid(
                    "destination.master_user",
                    "set exactly one of master_user (an administrator logs in for each user) or accounts_csv (each user's password)".into(),
                ));
            }
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
        if run.requests_per_window == 0 || run.window_seconds == 0 {
            return Err(invalid(
                "run.requests_per_window",
                "the request budget and window must be at least 1".into(),
            ));
        }
        Ok(config)
    }

    /// The source settings for the engine.
    pub fn source_config(&self) -> SourceConfig {
        SourceConfig {
            tenant_id: self.source.tenant_id.trim().to_string(),
            client_id: self.source.client_id.trim().to_string(),
            cloud: self.source.cloud,
            login_url: self.source.login_url.clone(),
            graph_url: self.source.graph_url.clone(),
        }
    }
}

/// Reads an accounts file: one `address,password` per line; blank lines, `#` comments and a
/// first line `address,password` are skipped. Errors name the line, never a password.
pub fn read_accounts_csv(
    path: &std::path::Path,
) -> Result<std::collections::HashMap<String, crate::secrets::Secret>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut accounts = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        match line.split_once(',') {
            Some((address, _)) if n == 0 && address.trim().eq_ignore_ascii_case("address") => {}
            Some((address, password)) if address.contains('@') && !password.is_empty() => {
                accounts.insert(
                    address.trim().to_lowercase(),
                    crate::secrets::Secret::new(password),
                );
            }
            _ => {
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: format!("line {}: expected address,password", n + 1),
                })
            }
        }
    }
    Ok(accounts)
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

    #[test]
    fn a_good_file_parses_with_defaults() {
        let c = FileConfig::parse(GOOD, Path::new("m.toml")).unwrap();
        assert_eq!(c.source.cloud, Cloud::UsGovHigh);
        assert_eq!(c.run, RunSettings::default());
        assert_eq!(
            c.destination,
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
            c.destination,
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
    fn accounts_csv_lines_are_checked_without_quoting_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("accounts.csv");
        std::fs::write(
            &file,
            "address,password\r\nAdele@Contoso.com,pa,ss\r\n\n# note\n",
        )
        .unwrap();
        let accounts = read_accounts_csv(&file).unwrap();
        assert_eq!(accounts["adele@contoso.com"].expose(), "pa,ss");
        std::fs::write(&file, "adele@contoso.com,ok\nbroken-line-s3cret\n").unwrap();
        let e = read_accounts_csv(&file).unwrap_err().to_string();
        assert!(e.contains("line 2") && !e.contains("s3cret"), "{e}");
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
}
