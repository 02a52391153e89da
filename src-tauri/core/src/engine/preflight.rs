//! The check before a run: everything that would stop it, found without moving data.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use super::icewarp::{resources_advice, Directory};
use super::mailboxes::read_facts;
use super::ImapLogins;
use super::{signed_in_mailboxes, Destination, EngineError, IceWarpDestination, RunOptions};
use crate::config::SourceConfig;
use crate::dest::dav::{DavAccount, DavError, DavLogin, DavSettings};
use crate::dest::folder::FolderStore;
use crate::dest::imap::connection::{tls_connector, Connection};
use crate::dest::imap::{
    ConnectionLimit, ImapError, ImapLogin, ImapMailbox, ImapSettings, Security,
};
use crate::graph::client::{http_client, GraphClient};
use crate::graph::permissions::{self, PermissionStatus};
use crate::graph::users;
use crate::graph::Pacer;
use crate::secrets::Secret;

/// A user to probe with: a member with a mail address whose mailbox answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeUser {
    pub id: String,
    #[serde(default)]
    pub mail: Option<String>,
    /// `Member` or `Guest`: a guest has no mailbox here.
    #[serde(default)]
    pub user_type: Option<String>,
}

/// Signs in and checks every permission (token roles and probe calls per workload doing what
/// the run does, against the first member whose mailbox answers; [`permissions::check`]). A
/// sign-in failure is the `Err`, with Entra's advice.
pub async fn test_source(
    source: &SourceConfig,
    secret: &Secret,
    options: &RunOptions,
) -> Result<(Vec<PermissionStatus>, Option<ProbeUser>), EngineError> {
    let client = GraphClient::new(source, secret, http_client().map_err(EngineError::Http)?)?;
    let token = client.sign_in().await?;
    #[derive(Deserialize)]
    struct Users {
        #[serde(default)]
        value: Vec<ProbeUser>,
    }
    let pacer = Pacer::new(options.pacer.clone());
    let candidates: Vec<ProbeUser> = client
        .get_json::<Users>(
            &pacer,
            &client.url("/users?$select=id,mail,userType&$top=20"),
            |_| {},
        )
        .await
        .map(|u| u.value)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.mail.as_deref().is_some_and(|m| !m.trim().is_empty()))
        .filter(|p| {
            !p.user_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("Guest"))
        })
        .collect();
    let ids: Vec<&str> = candidates.iter().map(|p| p.id.as_str()).collect();
    let (permissions, probed) = permissions::check(&client, &token, &ids).await;
    let probe = probed.or((!candidates.is_empty()).then_some(0));
    Ok((permissions, probe.and_then(|i| candidates.get(i).cloned())))
}

/// What the check found.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub permissions: Vec<PermissionStatus>,
    /// Each thing that would stop a run, as advice. Empty when ready.
    pub problems: Vec<String>,
    /// Every destination endpoint's check, blocking or not (see [`check_destination`]).
    pub checks: Vec<EndpointCheck>,
}

/// Signs in (a failure is the `Err`), checks permissions with probe calls against the first
/// user that has a mailbox, and checks that the destination is usable (a folder is writable;
/// an IMAP server accepts that user's login) and the state folder too; for IceWarp, says how
/// many rooms and equipment mailboxes become resource accounts. Creates folders if missing,
/// but writes no mail.
pub async fn preflight(
    source: &SourceConfig,
    secret: &Secret,
    destination: &Destination,
    options: &RunOptions,
) -> Result<Preflight, EngineError> {
    let (mut permissions, first) = test_source(source, secret, options).await?;
    // Group.Read.All is needed only when an IceWarp destination creates groups.
    if let Destination::IceWarp(d) = destination {
        if d.rules.groups != crate::config::GroupRule::Skip {
            for p in permissions
                .iter_mut()
                .filter(|p| p.name == "Group.Read.All")
            {
                p.required = true;
            }
        }
    }
    if let Destination::IceWarp(_) = destination {
        // The domains to create are the tenant's verified ones (`/domains`), never guessed
        // from addresses.
        for p in permissions
            .iter_mut()
            .filter(|p| p.name == "Domain.Read.All")
        {
            p.required = true;
        }
    }
    // Events without their body would be migrated without it: with calendars chosen, the
    // basic permission stops the run (Calendars.ReadBasic.All, permissions-reference.md).
    if options
        .workloads
        .contains(&crate::config::Workload::Calendar)
        && destination.holds_groupware()
    {
        for p in permissions.iter_mut().filter(|p| {
            p.name == "Calendars.Read"
                && p.detail.as_deref() == Some(permissions::EVENT_BODY_MISSING)
        }) {
            p.required = true;
        }
    }
    let mut problems = Vec::new();
    for p in permissions.iter().filter(|p| p.required && !p.granted()) {
        problems.push(format!(
            "the application permission {} is missing: add it under API permissions > Microsoft Graph > Application permissions and grant admin consent{}",
            p.name,
            p.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
        ));
    }
    let probe = first.as_ref().and_then(|p| p.mail.as_deref());
    let mut checks = check_destination(destination, probe).await;
    if let Destination::IceWarp(d) = destination {
        checks.extend(resources_check(d, source, secret, options).await);
    }
    problems.extend(
        checks
            .iter()
            .filter(|c| c.blocks())
            .map(|c| c.advice.clone()),
    );
    if let Some(dir) = &options.state_dir {
        if let Err(e) = options.open_journal(dir) {
            problems.push(e.to_string());
        }
    }
    Ok(Preflight {
        permissions,
        problems,
        checks,
    })
}

/// The check's row on the rooms and equipment an IceWarp run makes resource accounts of
/// ([`super::icewarp::resources_advice`]), one per check: a warning, as the run goes on but
/// may leave their data out. Each mailbox's kind is read as the run reads it.
async fn resources_check(
    d: &IceWarpDestination,
    source: &SourceConfig,
    secret: &Secret,
    options: &RunOptions,
) -> Option<EndpointCheck> {
    const NAME: &str = "IceWarp resources";
    let (client, members) = match signed_in_mailboxes(source, secret, options).await {
        Ok(listed) => listed,
        Err(e) => {
            let advice = format!("cannot count the rooms and equipment mailboxes: {e}");
            return Some(EndpointCheck::new(NAME, CheckVerdict::Warning, advice));
        }
    };
    let tenant_pacer = Pacer::new(options.pacer.clone());
    let mut known = HashMap::new();
    let mut ordered = Vec::new();
    for mailbox in read_facts(&client, &options.pacer, members).await {
        if !mailbox.facts.no_mailbox {
            ordered.push(mailbox.user.clone());
            known.insert(mailbox.user.id.clone(), mailbox);
        }
    }
    let verified = users::verified_domains(&client, &tenant_pacer).await.ok();
    let graph = Directory {
        client: &client,
        pacer: &tenant_pacer,
        facts: &known,
        verified: verified.as_deref(),
    };
    resources_advice(d, &graph, &ordered)
        .map(|advice| EndpointCheck::new(NAME, CheckVerdict::Warning, advice))
}

/// How a destination check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
#[ts(export, rename = "CheckVerdictView")]
pub enum CheckVerdict {
    Ok,
    /// The run can go on, but slower or with something left out.
    Warning,
    /// The run would fail: fix this first.
    Blocking,
}

/// One endpoint (or setting) of the destination, checked. `advice` names the URL or host and
/// the setting to change; it never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
#[ts(export, rename = "CheckRow")]
pub struct EndpointCheck {
    pub name: String,
    pub verdict: CheckVerdict,
    pub advice: String,
}

impl EndpointCheck {
    fn new(name: &str, verdict: CheckVerdict, advice: impl Into<String>) -> Self {
        EndpointCheck {
            name: name.to_string(),
            verdict,
            advice: advice.into(),
        }
    }

    /// True when this check would stop a run.
    pub fn blocks(&self) -> bool {
        self.verdict == CheckVerdict::Blocking
    }
}

/// The longest a preflight waits for one server: a check answers in seconds, not after the
/// run's reconnect policy.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks every endpoint `destination` will use, writing nothing: the IMAP server (connect,
/// TLS verification, the login route), the CalDAV/CardDAV server (an authenticated PROPFIND on
/// the collection the writer would use), and for IceWarp its admin API too. Logins are tried
/// for one account: the first of the accounts CSV, else `probe` (e.g. the tenant's first
/// mailbox). Connection attempts are made once, not by the run's reconnect policy.
pub async fn check_destination(
    destination: &Destination,
    probe: Option<&str>,
) -> Vec<EndpointCheck> {
    match destination {
        Destination::Folder(path) => vec![match FolderStore::open(path) {
            Ok(_) => EndpointCheck::new(
                "Destination folder",
                CheckVerdict::Ok,
                format!("{} is writable", path.display()),
            ),
            Err(e) => EndpointCheck::new(
                "Destination folder",
                CheckVerdict::Blocking,
                format!("{} is not writable: {e}", path.display()),
            ),
        }],
        Destination::Imap {
            settings,
            logins,
            dav,
        } => {
            let accounts = match logins {
                ImapLogins::Accounts(a)
                | ImapLogins::Named { accounts: a, .. }
                | ImapLogins::MasterAndAccounts { accounts: a, .. } => Some(a),
                ImapLogins::Master { .. } => None,
            };
            let account = first_account(accounts).map(|(a, _)| a).or(probe);
            let login = account.and_then(|a| logins.login_for(a));
            let mut checks = vec![
                check_imap(
                    settings,
                    login.as_ref(),
                    "destination.host and destination.port",
                )
                .await,
            ];
            if let Some(dav) = dav {
                checks.push(check_dav(dav, first_account(accounts), "destination.dav_url").await);
            }
            checks
        }
        Destination::IceWarp(d) => {
            let mut checks = vec![match super::icewarp::connect(d).await {
                Ok(provisioner) => {
                    let mut advice = match provisioner.settings_report().await {
                        Ok(report) => report.advice,
                        Err(e) => vec![format!("cannot read the server settings: {e}")],
                    };
                    // What the server will refuse or delete later, for the accounts known and
                    // the domains they and the domain map write into.
                    let known: Vec<String> = d.accounts.keys().cloned().collect();
                    let mapped: Vec<String> = d.rules.domain_map.values().cloned().collect();
                    advice.extend(provisioner.limits_advice(&known, &mapped).await);
                    // A domain administrator cannot create the domains that are missing.
                    let mut written: Vec<String> = known
                        .iter()
                        .map(String::as_str)
                        .chain(probe)
                        .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_string()))
                        .collect();
                    written.extend(mapped);
                    advice.extend(provisioner.domain_admin_advice(&written).await);
                    let advice = (!advice.is_empty()).then(|| advice.join("; "));
                    provisioner.client().logout().await;
                    match advice {
                        None => EndpointCheck::new(
                            "IceWarp admin API",
                            CheckVerdict::Ok,
                            format!("signed in to {} as {}", d.api.api_url, d.api.admin_email),
                        ),
                        Some(advice) => {
                            EndpointCheck::new("IceWarp admin API", CheckVerdict::Warning, advice)
                        }
                    }
                }
                Err(e) => EndpointCheck::new(
                    "IceWarp admin API",
                    CheckVerdict::Blocking,
                    format!(
                        "{e}: {} (check destination.api_url, destination.admin_email and the administrator password)",
                        error_chain(&e)
                    ),
                ),
            }];
            let account = first_account(Some(&d.accounts));
            // The master user logs in for any account; without one, the administrator's own
            // mailbox proves the server and the password.
            let login = match (&d.master, account) {
                (Some((master_user, style)), _) => Some(ImapLogin::Master {
                    user: account
                        .map_or(d.api.admin_email.as_str(), |(a, _)| a)
                        .to_string(),
                    master_user: master_user.clone(),
                    master_password: d.admin_password.clone(),
                    style: *style,
                }),
                (None, Some((address, password))) => Some(ImapLogin::Password {
                    user: address.to_string(),
                    password: password.clone(),
                }),
                (None, None) => Some(ImapLogin::Password {
                    user: d.api.admin_email.clone(),
                    password: d.admin_password.clone(),
                }),
            };
            checks.push(
                check_imap(
                    &d.imap,
                    login.as_ref(),
                    "destination.host and destination.imap_port",
                )
                .await,
            );
            let dav_account = account.or(Some((d.api.admin_email.as_str(), &d.admin_password)));
            checks.push(check_dav(&d.dav, dav_account, "destination.webdav_url").await);
            checks
        }
    }
}

/// The first account (by address) with a known password.
fn first_account(
    accounts: Option<&std::collections::HashMap<String, Secret>>,
) -> Option<(&str, &Secret)> {
    accounts?
        .iter()
        .min_by(|a, b| a.0.cmp(b.0))
        .map(|(a, p)| (a.as_str(), p))
}

/// Connects once (no reconnect wait) and, with a login, logs in.
async fn check_imap(
    settings: &ImapSettings,
    login: Option<&ImapLogin>,
    setting: &str,
) -> EndpointCheck {
    const NAME: &str = "IMAP (mail)";
    let mut quick = settings.clone();
    quick.timeout = quick.timeout.min(PROBE_TIMEOUT);
    quick.reconnect.max_attempts = 1;
    // Not the run's shared cap: the check must not wait for the run's connections.
    quick.connection_limit = ConnectionLimit::new(1);
    let endpoint = format!("{}:{}", settings.host, settings.port);
    let Some(login) = login else {
        // No account to log in as: the server, the port and TLS can still be proved.
        let opened = async {
            let tls = match quick.security {
                Security::Plain => None,
                Security::Tls | Security::StartTls => Some(tls_connector(&quick)?),
            };
            Connection::open(&quick, tls.as_ref()).await
        };
        return match opened.await {
            Ok(conn) => {
                conn.logout().await;
                EndpointCheck::new(
                    NAME,
                    CheckVerdict::Warning,
                    format!("{endpoint} answers, but the login is not checked: no account to try it with"),
                )
            }
            Err(e) => EndpointCheck::new(
                NAME,
                CheckVerdict::Blocking,
                imap_advice(&e, None, &endpoint, setting),
            ),
        };
    };
    match ImapMailbox::connect(&quick, login).await {
        Ok(mailbox) => {
            mailbox.logout().await;
            EndpointCheck::new(
                NAME,
                CheckVerdict::Ok,
                format!("logged in to {endpoint} for {}", login.user()),
            )
        }
        Err(e) => EndpointCheck::new(
            NAME,
            CheckVerdict::Blocking,
            imap_advice(&e, Some(login), &endpoint, setting),
        ),
    }
}

/// Plain advice for a failed IMAP check, naming the endpoint and the setting to change.
fn imap_advice(e: &ImapError, login: Option<&ImapLogin>, endpoint: &str, setting: &str) -> String {
    match (e, login) {
        (ImapError::Connect { .. } | ImapError::Timeout { .. }, _) => format!(
            "cannot reach the IMAP server at {endpoint} ({}): check {setting}, and that the server listens there",
            error_chain(e)
        ),
        (ImapError::Tls { .. }, _) => format!(
            "the IMAP server at {endpoint} has a certificate this computer does not trust ({}): set destination.ca_file to the server's CA certificate, or check the TLS setting",
            error_chain(e)
        ),
        (ImapError::Auth { .. }, Some(ImapLogin::Master { master_user, user, .. })) => format!(
            "the IMAP server at {endpoint} refused the master user {master_user} logging in for {user}: check the master user and the administrator password"
        ),
        (ImapError::Auth { .. }, Some(ImapLogin::Password { user, .. })) => format!(
            "the IMAP server at {endpoint} refused the login of {user}: check that account's password in the accounts CSV"
        ),
        _ => format!("the IMAP server at {endpoint}: {e}: {}", error_chain(e)),
    }
}

/// Discovers (or expands the templates) for one account and sends an authenticated PROPFIND
/// to the collection the writer would use.
async fn check_dav(
    settings: &DavSettings,
    account: Option<(&str, &Secret)>,
    setting: &str,
) -> EndpointCheck {
    const NAME: &str = "CalDAV/CardDAV (calendars, contacts, tasks)";
    let Some((address, password)) = account else {
        return EndpointCheck::new(
            NAME,
            CheckVerdict::Warning,
            format!(
                "{}: not checked: no account password to log in with (the accounts CSV); calendars, contacts and tasks need each user's own password",
                settings.base_url
            ),
        );
    };
    let mut quick = settings.clone();
    quick.timeout = quick.timeout.min(PROBE_TIMEOUT);
    let login = DavLogin::new(address, password.clone());
    let probed = match DavAccount::connect(&quick, address, login).await {
        Ok(account) => account.probe().await,
        Err(e) => Err(e),
    };
    let blocking = |advice: String| EndpointCheck::new(NAME, CheckVerdict::Blocking, advice);
    match probed {
        Ok((url, 207)) => EndpointCheck::new(
            NAME,
            CheckVerdict::Ok,
            format!("{address} can read {url}"),
        ),
        Ok((url, 403)) => blocking(format!(
            "{url} refused {address} (403 Forbidden): the account may not use CalDAV/CardDAV there; check {setting} and the account's rights"
        )),
        Ok((url, 404)) => blocking(format!(
            "{url} does not exist (404 Not Found): check {setting}"
        )),
        Ok((url, status)) => blocking(format!(
            "{url} answered {status} to a PROPFIND, not a WebDAV collection: check {setting}"
        )),
        Err(DavError::Auth { url, .. }) => blocking(format!(
            "{url} refused the login of {address} (401): check that account's password in the accounts CSV, and {setting}"
        )),
        Err(e @ DavError::Tls { .. }) => blocking(format!(
            "{e}: {}: set the CA file (ca_file) or check {setting}",
            error_chain(&e)
        )),
        Err(e) => blocking(format!(
            "cannot use the CalDAV/CardDAV server at {}: {e}: {}: check {setting}",
            settings.base_url,
            error_chain(&e)
        )),
    }
}

/// The causes of an error, innermost last, for one line of output.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    causes.join(": ")
}
