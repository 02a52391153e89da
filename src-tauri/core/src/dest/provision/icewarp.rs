//! IceWarp provisioning through its remote administration API: XML envelopes POSTed to
//! `https://<host>/icewarpapi/` (shared reference `icewarp.md` §2; request and response
//! shapes from `icewarp-api.openapi.json`, see [`super::types`]).
//!
//! - **Transport:** HTTPS, or plain HTTP to a loopback address when allowed; no redirect is
//!   followed (every request carries the session or the administrator's password).
//! - **Session:** `authenticate` (`persistentlogin` 1: 24 days) with the administrator's email
//!   or username (by the server's login policy) gives a session id (`sid`) sent with every
//!   later request. A `0` answer is a wrong login (fatal, never retried). A session idle for
//!   [`IceWarpSettings::session_idle`] is replaced, and any error envelope is answered by one
//!   new login and one more try: IceWarp documents no error uid for an expired session.
//! - **Retries:** simple commands answer `1` or `0`, and `0` gives no reason. A `0`, an HTTP
//!   5xx or a transport error is tried again at once, at most [`IceWarpSettings::attempts`]
//!   times in all (IceWarp's own connector retries `createaccount` the same way); there is
//!   no waiting here, the engine decides whether to come back later ([`ErrorClass::Retry`]).
//!   A `0` every time is a definite refusal of that one account ([`ErrorClass::SkipItem`]).
//! - **Lists** are paged by `offset`/`count` to `overallcount` when the reply has one, else to
//!   an empty page (a short page ends nothing).
//! - **Domains:** `getdomainsinfolist`, then `createdomain` for each missing one; a `0` is
//!   followed by a lookup of the domain by name. A domain listed as a domain alias (or another
//!   `D_Type` that holds no accounts) fails with its users.
//! - **Accounts:** `getaccountsinfolist` per domain, without a filter (as IceWarp.Net's
//!   NoFilter fixture), lists existing accounts; `getaccountproperties` of the user's primary
//!   address (IceWarp resolves aliases) reads `U_Alias`, `U_Type` and `U_Login` of the account
//!   that answers to it. The user is merged only into a user account (`U_Type` 0), or for a
//!   room or equipment mailbox also a resource (`U_Type` 8), whose own `U_Alias` holds the
//!   address literally: missing aliases are appended with `setaccountproperties u_alias`
//!   (within 255 characters; the rest are reported), nothing else changes. Any other holder (a
//!   list, a pattern alias, a domain alias, a resource for a person) is a conflict: nothing is
//!   written. Other users get `createaccount` with `u_type` 0, `u_accounttype` 1 (IMAP &
//!   POP3), `u_mailbox`, `u_alias` (`;`-separated local names, primary first, within 255
//!   characters), `u_name` and a generated `u_password` that satisfies the server's policy;
//!   the password goes to the credentials report, before `createaccount`, and nowhere else. A
//!   room or equipment mailbox gets the same with `u_type` 8 (resource) and `s_type` 0 (room)
//!   or 1 (equipment) instead (apiconst `U_Type`, `S_Type`; IceWarp KB "Resource Management":
//!   a resource account's calendar takes the reservations), unless `resources_as = "user"`.
//!   `S_Manager` is not set: Graph's app-only API gives no reliable list of a room's
//!   delegates. If IceWarp keeps refusing, the account is tried once more without its extra
//!   aliases (a taken alias must not cost the user the mailbox). IceWarp aliases are names
//!   within the account's domain, so aliases in other domains are reported, not set. After a
//!   `0` or a transport error the account list is asked before trying `createaccount` again.
//!   Each account's `U_Login` is its login name for IMAP and WebDAV. A refused login as a
//!   resource leaves that mailbox's data out ([`IceWarpProvisioner::resource_login_refused`]).
//! - **Groups and mailing lists:** a list is an account of `U_Type` 1 (mailing list) or 7
//!   (group) (icewarp-apiconst.txt). One found in the account lists (whose `accounttype`
//!   says its type) or by alias is merged: its members are read with
//!   `getaccountmemberinfolist` (`who` = the list, paged) and only the missing ones are
//!   added with `addaccountmembers` (the specification: "Available for groups and mailing
//!   lists"); none is removed. Others get `createaccount` with `u_type`, `u_alias` and
//!   `u_name`, then `addaccountmembers`. Each member is a `tpropertymember` with `default` 1
//!   (the list's default rights), `recieve` 1, `post` 1 and `digest` 0 (the member flags of
//!   `M_DefaultRights`: receive, post, digest; IceWarp.Net's AddAccountMembers fixture sends
//!   the same four). An address held by an account of another type is not touched.
//! - **Settings:** [`IceWarpProvisioner::settings_report`] reads the server properties that
//!   slow or stop a migration and says what to change.
//! - **Folders:** [`IceWarpProvisioner::default_folders`] reads an account's default folder
//!   names (`getaccountfolderlist`), which IceWarp lets administrators rename and localise.

use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::password::PasswordPolicy;
use super::types::{property_values, Element, Param, Reply, Request};
use super::{
    AccountAction, AccountOutcome, AccountPlan, AccountProvisioner, CredentialsReport,
    DomainAction, ListKind, ListOutcome, ListPlan, LoginRoute, ProvisionOutcome, ReportError,
};
use crate::config::{ConfigError, DestinationConfig};
use crate::error::{Classify, ErrorClass};
use crate::secrets::Secret;
use crate::spec::AccountRules;

/// How to reach and use an IceWarp server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceWarpSettings {
    /// The API URL, ending in `/icewarpapi/`.
    pub api_url: String,
    pub admin_email: String,
    /// Extra CA certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Allows `http://` to a loopback address.
    pub allow_plaintext_loopback: bool,
    pub credentials_report: PathBuf,
    /// Addresses (lower case) whose password is in the configured accounts CSV.
    pub known_passwords: BTreeSet<String>,
    /// An IMAP master user is configured.
    pub master_user: bool,
    /// Tries per API call, at least 1.
    pub attempts: u32,
    /// A session unused this long is replaced by a new login ([`SESSION_IDLE`] by default).
    pub session_idle: Duration,
    /// The mailbox size limit (kB) set on each user account the run creates.
    pub account_quota_kb: Option<u64>,
}

/// Tries per API call by default.
pub const DEFAULT_ATTEMPTS: u32 = 3;

impl IceWarpSettings {
    /// The settings and rules of an IceWarp `[destination]` (`None` for other kinds). Reads
    /// the accounts CSV, if configured, for the addresses it knows passwords of.
    pub fn from_config(
        dest: &DestinationConfig,
    ) -> Result<Option<(IceWarpSettings, AccountRules)>, ConfigError> {
        let Some(endpoints) = dest.icewarp_endpoints() else {
            return Ok(None);
        };
        let DestinationConfig::IceWarp {
            admin_email,
            ca_file,
            allow_plaintext_loopback,
            rules,
            credentials_report,
            accounts_csv,
            master_user,
            account_quota_mb,
            ..
        } = dest
        else {
            return Ok(None);
        };
        let known_passwords = match accounts_csv {
            Some(path) => crate::config::read_accounts_csv(path)?
                .into_keys()
                .collect(),
            None => BTreeSet::new(),
        };
        let settings = IceWarpSettings {
            api_url: endpoints.api_url,
            admin_email: admin_email.trim().to_string(),
            ca_file: ca_file.clone(),
            allow_plaintext_loopback: *allow_plaintext_loopback,
            credentials_report: credentials_report.clone(),
            known_passwords,
            master_user: master_user.is_some(),
            attempts: DEFAULT_ATTEMPTS,
            session_idle: SESSION_IDLE,
            account_quota_kb: account_quota_mb.map(|mb| mb * 1024),
        };
        let rules = rules.normalized();
        Ok(Some((settings, rules)))
    }
}

/// Why IceWarp provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum IceWarpError {
    #[error("the IceWarp API URL '{url}' cannot be used: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot read the CA file {path}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA file {path} holds no usable PEM certificate")]
    CaCert {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot set up the HTTPS client")]
    Client(#[source] reqwest::Error),
    #[error("cannot reach the IceWarp API at {url} ({command})")]
    Transport {
        url: String,
        command: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the IceWarp API at {url} answered HTTP {status}, a redirect to '{location}': redirects are not followed (they would resend the administrator's credentials); configure the final address as the host")]
    Redirect {
        url: String,
        status: u16,
        location: String,
    },
    #[error("the IceWarp API answered {command} with HTTP {status}")]
    Status { command: String, status: u16 },
    #[error("IceWarp refused the administrator login of {email}: wrong email or password, or not an administrator")]
    Login { email: String },
    #[error("IceWarp answered {command} with the error '{uid}'")]
    Api { command: String, uid: String },
    #[error("IceWarp answered {command} for {target} with 0 (failure) {attempts} times")]
    Refused {
        command: String,
        target: String,
        attempts: u32,
    },
    #[error("IceWarp's answer to {command} is not the documented envelope: {reason}")]
    Malformed { command: String, reason: String },
    #[error(transparent)]
    Report(#[from] ReportError),
}

impl Classify for IceWarpError {
    fn class(&self) -> ErrorClass {
        match self {
            IceWarpError::Transport { .. } => ErrorClass::Retry,
            IceWarpError::Status { status, .. } if *status >= 500 => ErrorClass::Retry,
            IceWarpError::Api { .. }
            | IceWarpError::Refused { .. }
            | IceWarpError::Malformed { .. } => ErrorClass::SkipItem,
            _ => ErrorClass::Fatal,
        }
    }
}

/// A session with the admin API.
pub struct IceWarpClient {
    http: reqwest::Client,
    url: String,
    admin_email: String,
    password: Secret,
    sid: Mutex<Option<Session>>,
    attempts: u32,
    session_idle: Duration,
}

/// A session id and when it was last used.
#[derive(Debug)]
struct Session {
    sid: String,
    last_used: Instant,
}

impl Session {
    fn new(sid: String) -> Self {
        Session {
            sid,
            last_used: Instant::now(),
        }
    }
}

/// A session unused this long is replaced by a new login before the next request: the
/// `finish` steps of a run may come days after provisioning, and IceWarp also ends sessions on
/// its own idle timeout (`C_System_Adv_Protocols_SessionTimeOut`, apiconst).
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

impl std::fmt::Debug for IceWarpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceWarpClient")
            .field("url", &self.url)
            .field("admin_email", &self.admin_email)
            .finish_non_exhaustive()
    }
}

impl IceWarpClient {
    /// A client for `settings.api_url`: HTTPS with certificate checks (plus `ca_file`), or
    /// plain HTTP to a loopback address when allowed. Nothing is sent yet.
    pub fn new(settings: &IceWarpSettings, password: Secret) -> Result<Self, IceWarpError> {
        let bad = |reason: &str| IceWarpError::Url {
            url: settings.api_url.clone(),
            reason: reason.to_string(),
        };
        // The one endpoint rule: https, or http only to a literal loopback address when allowed.
        let url =
            crate::config::check_endpoint(&settings.api_url, settings.allow_plaintext_loopback)
                .map_err(|reason| bad(&reason))?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("m365-migrator/", env!("CARGO_PKG_VERSION")))
            // Every request carries the session or the administrator's password: a 307/308
            // would replay it to wherever the Location points, even plain http.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(120));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path).map_err(|source| IceWarpError::CaFile {
                path: path.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                IceWarpError::CaCert {
                    path: path.clone(),
                    source,
                }
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(IceWarpClient {
            http: builder.build().map_err(IceWarpError::Client)?,
            url: url.to_string(),
            admin_email: settings.admin_email.clone(),
            password,
            sid: Mutex::new(None),
            attempts: settings.attempts.max(1),
            session_idle: settings.session_idle,
        })
    }

    /// One round trip, without retries. Logs in first when there is no session or it has been
    /// idle for [`IceWarpSettings::session_idle`], and once more after any error envelope: IceWarp documents no
    /// error code for an expired or unknown session (its error uids are not in the
    /// specification), so the answer is never read for words like "session". An error that
    /// comes back on a fresh session is the command's own.
    async fn send(&self, request: &Request) -> Result<Reply, IceWarpError> {
        let mut last = None;
        let mut used: Option<String> = None;
        for relogin in [false, true] {
            // The lock covers the session's state only, never a request: calls go out in
            // parallel, and after an error envelope only the first caller to see it logs in
            // again (the others find a session newer than the one they used).
            let sid = {
                let mut session = self.sid.lock().await;
                let stale = session
                    .as_ref()
                    .is_none_or(|s| s.last_used.elapsed() >= self.session_idle);
                let refused = relogin && session.as_ref().map(|s| &s.sid) == used.as_ref();
                if stale || refused {
                    *session = Some(Session::new(self.authenticate().await?));
                }
                session.as_mut().map(|s| {
                    s.last_used = Instant::now();
                    s.sid.clone()
                })
            };
            let reply = self.post(request, sid.as_deref()).await?;
            match reply {
                Reply::Error(uid) => {
                    last = Some(uid);
                    used = sid;
                }
                reply => return Ok(reply),
            }
        }
        Err(IceWarpError::Api {
            command: request.command.to_string(),
            uid: last.unwrap_or_default(),
        })
    }

    async fn post(&self, request: &Request, sid: Option<&str>) -> Result<Reply, IceWarpError> {
        let command = request.command.to_string();
        let transport = |source| IceWarpError::Transport {
            url: self.url.clone(),
            command: command.clone(),
            source,
        };
        tracing::debug!(command = request.command, "IceWarp API request");
        let response = self
            .http
            .post(&self.url)
            .header("content-type", "text/xml; charset=utf-8")
            .body(request.to_xml(sid))
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("")
                .to_string();
            return Err(IceWarpError::Redirect {
                url: self.url.clone(),
                status,
                location,
            });
        }
        if status != 200 {
            return Err(IceWarpError::Status {
                command: command.clone(),
                status,
            });
        }
        let malformed = |reason: String| IceWarpError::Malformed {
            command: command.clone(),
            reason,
        };
        let body = match crate::http::read_capped(response, MAX_REPLY).await {
            Ok(body) => body,
            Err(crate::http::BodyError::Transport(e)) => return Err(transport(e)),
            Err(e) => return Err(malformed(e.to_string())),
        };
        Reply::parse(&String::from_utf8_lossy(&body)).map_err(malformed)
    }

    /// `authenticate` (authtype 0: plain password over the TLS connection). Returns the sid.
    async fn authenticate(&self) -> Result<String, IceWarpError> {
        let request = Request::new(
            "authenticate",
            vec![
                Param::text("authtype", "0"),
                Param::text("email", self.admin_email.clone()),
                Param::text("password", self.password.expose()),
                // 1: a session of 24 days, not 1 (OpenAPI `/Authenticate`), so a long run's
                // later steps find it alive.
                Param::text("persistentlogin", "1"),
            ],
        );
        let mut last = None;
        for _ in 0..self.attempts {
            match self.post(&request, None).await {
                Ok(Reply::Result {
                    sid: Some(sid),
                    result,
                    ..
                }) if result.text.trim() == "1" && !sid.is_empty() => return Ok(sid),
                Ok(Reply::Result { .. }) => {
                    return Err(IceWarpError::Login {
                        email: self.admin_email.clone(),
                    })
                }
                Ok(Reply::Error(uid)) => {
                    return Err(IceWarpError::Api {
                        command: "authenticate".into(),
                        uid,
                    })
                }
                Err(e) if e.class() == ErrorClass::Retry => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(IceWarpError::Login {
            email: self.admin_email.clone(),
        }))
    }

    /// A call with bounded immediate retries of `0`, HTTP 5xx and transport errors. Returns
    /// the whole reply envelope (`<iq>`).
    async fn call(&self, request: &Request, target: &str) -> Result<Element, IceWarpError> {
        let mut last = None;
        for _ in 0..self.attempts {
            match self.send(request).await {
                Ok(Reply::Result { result, root, .. }) => {
                    if !is_zero(&result) {
                        return Ok(root);
                    }
                    last = Some(IceWarpError::Refused {
                        command: request.command.to_string(),
                        target: target.to_string(),
                        attempts: self.attempts,
                    });
                }
                Ok(Reply::Error(uid)) => {
                    return Err(IceWarpError::Api {
                        command: request.command.to_string(),
                        uid,
                    })
                }
                Err(e) if e.class() == ErrorClass::Retry => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(IceWarpError::Refused {
            command: request.command.to_string(),
            target: target.to_string(),
            attempts: self.attempts,
        }))
    }

    /// Checks the administrator login now (a wrong password is one clear fatal error).
    pub async fn login(&self) -> Result<(), IceWarpError> {
        let sid = self.authenticate().await?;
        *self.sid.lock().await = Some(Session::new(sid));
        Ok(())
    }

    /// Ends the session (`logout`), if there is one.
    pub async fn logout(&self) {
        if self.sid.lock().await.is_some() {
            let _ = self.call(&Request::new("logout", vec![]), "session").await;
            *self.sid.lock().await = None;
        }
    }

    /// `getserverproperties`: each name with its value (`None`: no value or no right).
    pub async fn server_properties(
        &self,
        names: &[&str],
    ) -> Result<BTreeMap<String, Option<String>>, IceWarpError> {
        let list = names.iter().map(|n| Param::property_name(n)).collect();
        let request = Request::new(
            "getserverproperties",
            vec![Param::Group("serverpropertylist", list)],
        );
        let root = self.call(&request, "server").await?;
        Ok(property_values(&root)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect())
    }

    /// Every domain on the server (lower case), paged.
    pub async fn domains(&self) -> Result<BTreeSet<String>, IceWarpError> {
        Ok(self.domain_types().await?.into_keys().collect())
    }

    /// Every domain on the server (lower case) with its `domaintype` (`D_Type`; 0 when not
    /// given), paged.
    pub async fn domain_types(&self) -> Result<BTreeMap<String, u32>, IceWarpError> {
        let items = self.paged("getdomainsinfolist", None, "server").await?;
        Ok(items
            .iter()
            .filter_map(|i| {
                let name = i.value("name")?.to_lowercase();
                let kind = i.value("domaintype").and_then(|t| t.trim().parse().ok());
                Some((name, kind.unwrap_or(STANDARD_DOMAIN)))
            })
            .collect())
    }

    /// True when the server has the domain `name` (`getdomainsinfolist` filtered by its name).
    pub async fn domain_exists(&self, name: &str) -> Result<bool, IceWarpError> {
        let filter = Param::Group("filter", vec![Param::text("namemask", name)]);
        let items = self.paged("getdomainsinfolist", Some(filter), name).await?;
        Ok(items
            .iter()
            .filter_map(|i| i.value("name"))
            .any(|n| n.eq_ignore_ascii_case(name)))
    }

    /// The primary addresses (lower case) of the accounts of `domain`, paged.
    pub async fn accounts(&self, domain: &str) -> Result<BTreeSet<String>, IceWarpError> {
        Ok(self.account_types(domain).await?.into_keys().collect())
    }

    /// The accounts of `domain`: primary address (lower case) and `accounttype` (`U_Type`;
    /// 0 when not given), paged.
    pub async fn account_types(&self, domain: &str) -> Result<BTreeMap<String, u32>, IceWarpError> {
        let items = self
            .paged(
                "getaccountsinfolist",
                Some(Param::text("domainstr", domain)),
                domain,
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let email = item.value("email")?.to_lowercase();
                let kind = item.value("accounttype").and_then(|t| t.parse().ok());
                Some((email, kind.unwrap_or(0)))
            })
            .collect())
    }

    /// The member addresses (lower case) of a group or mailing list
    /// (`getaccountmemberinfolist`, paged).
    pub async fn members(&self, list: &str) -> Result<BTreeSet<String>, IceWarpError> {
        let items = self
            .paged(
                "getaccountmemberinfolist",
                Some(Param::text("who", list)),
                list,
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| i.value("val"))
            .map(str::to_lowercase)
            .collect())
    }

    /// The `query/result/item` elements of a list command, page by page (`offset`, `count`).
    /// `scope` is the command's first parameter (`domainstr`, `who`). A reply that carries
    /// `overallcount` (IceWarp.Net's GetAccountsInfoList fixture; not in the specification,
    /// see [`FIXTURE_PATHS`]) is paged until that many items are read; one without it until an
    /// empty page. A short page never ends the listing: a server may cap its pages below the
    /// `count` asked for.
    async fn paged(
        &self,
        command: &'static str,
        scope: Option<Param>,
        target: &str,
    ) -> Result<Vec<Element>, IceWarpError> {
        const PAGE: usize = 500;
        let mut all = Vec::new();
        loop {
            let params = scope
                .iter()
                .cloned()
                .chain([
                    Param::text("offset", all.len().to_string()),
                    Param::text("count", PAGE.to_string()),
                ])
                .collect();
            let root = self.call(&Request::new(command, params), target).await?;
            let overall = root
                .value("query/result/overallcount")
                .and_then(|n| n.trim().parse::<usize>().ok());
            let page: Vec<Element> = root
                .select("query/result/item")
                .into_iter()
                .cloned()
                .collect();
            let empty = page.is_empty();
            all.extend(page);
            match overall {
                _ if empty => return Ok(all),
                Some(n) if all.len() >= n => return Ok(all),
                _ => {}
            }
        }
    }
}

/// Element paths this client reads that IceWarp's specification does not name but IceWarp's
/// replies carry, with their source: `overallcount` of `getaccountsinfolist` (IceWarp.Net's
/// `GetAccountsInfoList.xml` fixture). [`IceWarpClient`] reads `overallcount` of every list
/// reply that has one and never depends on it being there.
pub const FIXTURE_PATHS: &[(&str, &str)] = &[("getaccountsinfolist", "query/result/overallcount")];

fn is_zero(result: &Element) -> bool {
    result.children.is_empty() && result.text.trim() == "0"
}

/// Server properties read before a run.
pub const SETTINGS_PROPERTIES: [&str; 15] = [
    "C_Accounts_Policies_Pass_Enable",
    "C_Accounts_Policies_Pass_MinLength",
    "C_Accounts_Policies_Pass_Digits",
    "C_Accounts_Policies_Pass_NonAlphaNum",
    "C_Accounts_Policies_Pass_Alpha",
    "C_Accounts_Policies_Pass_UpperAlpha",
    "C_Accounts_Policies_Pass_UserAlias",
    "C_System_Services_IMAP_MaxAppendsPerMinute",
    "C_Mail_SMTP_Delivery_LimitMsgSize",
    "C_Mail_SMTP_Delivery_MaxMsgSize",
    "C_Mail_IMAP_Active",
    "C_WebDAV_Active",
    "C_GW_General_Disable",
    "C_Accounts_Policies_Login_LoginSettings",
    "C_System_Services_IMAP_AllowBinaryAppend",
];

/// The server settings that slow or stop a migration, with advice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsReport {
    /// `C_System_Services_IMAP_MaxAppendsPerMinute` (0: unlimited).
    pub max_appends_per_minute: Option<u64>,
    /// `C_Mail_SMTP_Delivery_MaxMsgSize` in bytes, when `C_Mail_SMTP_Delivery_LimitMsgSize` is on.
    pub max_message_bytes: Option<u64>,
    /// `C_Mail_IMAP_Active`.
    pub imap_enabled: Option<bool>,
    /// `C_WebDAV_Active`.
    pub webdav_enabled: Option<bool>,
    /// Not `C_GW_General_Disable`.
    pub groupware_enabled: Option<bool>,
    /// `C_Accounts_Policies_Login_LoginSettings`: log in with the full address (else the
    /// user name).
    pub login_with_email: Option<bool>,
    pub password_policy: PasswordPolicy,
    /// One sentence per setting worth changing before a big run.
    pub advice: Vec<String>,
}

/// Microsoft 365's largest message (150 MB), for the size-limit advice.
/// The largest admin API reply read (a page of `getaccountsinfolist` is far smaller): more is
/// [`IceWarpError::Malformed`], not memory without end.
const MAX_REPLY: usize = 32 * 1024 * 1024;

const M365_MAX_MESSAGE: u64 = 150 * 1024 * 1024;

impl SettingsReport {
    fn from_properties(p: &BTreeMap<String, Option<String>>) -> SettingsReport {
        let num = |name: &str| {
            p.get(&name.to_ascii_lowercase())
                .cloned()
                .flatten()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let flag = |name: &str| num(name).map(|v| v != 0);
        let count = |name: &str| num(name).unwrap_or(0) as usize;
        let password_policy = PasswordPolicy {
            enabled: flag("C_Accounts_Policies_Pass_Enable").unwrap_or(false),
            min_length: count("C_Accounts_Policies_Pass_MinLength"),
            digits: count("C_Accounts_Policies_Pass_Digits"),
            non_alphanumeric: count("C_Accounts_Policies_Pass_NonAlphaNum"),
            alpha: count("C_Accounts_Policies_Pass_Alpha"),
            upper_alpha: count("C_Accounts_Policies_Pass_UpperAlpha"),
            no_user_names: flag("C_Accounts_Policies_Pass_UserAlias").unwrap_or(false),
        };
        let max_message_bytes = match flag("C_Mail_SMTP_Delivery_LimitMsgSize") {
            Some(true) => num("C_Mail_SMTP_Delivery_MaxMsgSize").filter(|v| *v > 0),
            _ => None,
        };
        let mut report = SettingsReport {
            max_appends_per_minute: num("C_System_Services_IMAP_MaxAppendsPerMinute"),
            max_message_bytes,
            imap_enabled: flag("C_Mail_IMAP_Active"),
            webdav_enabled: flag("C_WebDAV_Active"),
            groupware_enabled: flag("C_GW_General_Disable").map(|d| !d),
            login_with_email: flag("C_Accounts_Policies_Login_LoginSettings"),
            password_policy,
            advice: Vec::new(),
        };
        let advice = &mut report.advice;
        if let Some(n) = report.max_appends_per_minute.filter(|n| *n > 0) {
            advice.push(format!(
                "IMAP APPEND is slowed after {n} messages per minute \
                 (C_System_Services_IMAP_MaxAppendsPerMinute): a mailbox of 50,000 messages then \
                 takes at least {} hours; set it to 0 (unlimited) for the migration",
                50_000 / n / 60 + 1
            ));
        }
        if let Some(max) = report.max_message_bytes.filter(|m| *m < M365_MAX_MESSAGE) {
            advice.push(format!(
                "messages larger than {} MB may be refused (C_Mail_SMTP_Delivery_MaxMsgSize); \
                 Microsoft 365 allows up to 150 MB",
                max / (1024 * 1024)
            ));
        }
        if report.imap_enabled == Some(false) {
            advice.push("IMAP is disabled (C_Mail_IMAP_Active): mail cannot be written".into());
        }
        if report.webdav_enabled == Some(false) {
            advice.push(
                "WebDAV is disabled (C_WebDAV_Active): calendars, contacts and tasks cannot be written"
                    .into(),
            );
        }
        if report.groupware_enabled == Some(false) {
            advice.push(
                "GroupWare is disabled (C_GW_General_Disable): calendars, contacts and tasks cannot be written"
                    .into(),
            );
        }
        if report.login_with_email == Some(false) {
            advice.push(
                "users log in with their user name, not their address \
                 (C_Accounts_Policies_Login_LoginSettings = 0): IMAP and WebDAV logins use the mailbox name"
                    .into(),
            );
        }
        report
    }
}

/// Maps the default folders of `getaccountfolderlist` to well-known names: `inbox`,
/// `sentitems`, `drafts`, `deleteditems`, `junkemail` (Graph's names, as the IMAP writer's
/// special folders use them) and `calendar`, `contacts`, `tasks`, `notes`, `journal`,
/// `files`. Folder types are IceWarp's (M mail, E events, C contacts, T tasks, N notes, J
/// journal, F files) and Inbox's default type is `I`, as IceWarp.Net's fixture shows; the
/// letters of the other mail defaults (`S`, `D`, `T`, `P`) are inferred.
pub fn well_known_folders(root: &Element) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for item in root.select("query/result/subfolders/item") {
        let name = item.value("name").unwrap_or("");
        let folder_type = item.value("foldertype").unwrap_or("").to_ascii_uppercase();
        let default_type = item.value("defaulttype").unwrap_or("").to_ascii_uppercase();
        let key = match (folder_type.as_str(), default_type.as_str()) {
            ("M", "I") => "inbox",
            ("M", "S") => "sentitems",
            ("M", "D") => "drafts",
            ("M", "T") => "deleteditems",
            ("M", "P") => "junkemail",
            ("E", _) => "calendar",
            ("C", _) => "contacts",
            ("T", _) => "tasks",
            ("N", _) => "notes",
            ("J", _) => "journal",
            ("F", _) => "files",
            _ => continue,
        };
        if !name.is_empty() {
            map.entry(key.to_string())
                .or_insert_with(|| name.to_string());
        }
    }
    map
}

/// True for a name IceWarp takes as a mailbox or alias: letters, digits and `. _ - + ' &`,
/// not starting or ending with a dot (IceWarp answers `E_INVALID` otherwise).
fn valid_local_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+'&".contains(c))
}

/// Creates IceWarp domains and accounts (see the module doc).
#[derive(Debug)]
pub struct IceWarpProvisioner {
    client: IceWarpClient,
    report: CredentialsReport,
    known_passwords: BTreeSet<String>,
    master_user: bool,
    /// [`IceWarpSettings::account_quota_kb`].
    account_quota_kb: Option<u64>,
    /// Existing accounts by domain (address and `U_Type`), read once per domain.
    accounts: Mutex<BTreeMap<String, BTreeMap<String, u32>>>,
    /// Domains that had no account when first listed.
    empty_domains: Mutex<BTreeSet<String>>,
    policy: Mutex<Option<PasswordPolicy>>,
    /// Each account's default folder names ([`IceWarpProvisioner::default_folders`]), read
    /// once per account: the mail pass and the groupware pass both need them.
    folder_names: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// Resource accounts (`U_Type` 8) this run created or merged into, by address.
    resources: Mutex<BTreeSet<String>>,
    /// Resource accounts whose login the destination refused in this run.
    refused_resources: Mutex<BTreeSet<String>>,
}

impl IceWarpProvisioner {
    /// Logs in (a wrong administrator password fails here, once, with
    /// [`IceWarpError::Login`]) and checks that the credentials report can be written.
    pub async fn connect(
        settings: &IceWarpSettings,
        admin_password: Secret,
    ) -> Result<Self, IceWarpError> {
        let client = IceWarpClient::new(settings, admin_password)?;
        client.login().await?;
        let report = CredentialsReport::new(&settings.credentials_report);
        report.prepare()?;
        Ok(IceWarpProvisioner {
            client,
            report,
            known_passwords: settings.known_passwords.clone(),
            master_user: settings.master_user,
            account_quota_kb: settings.account_quota_kb,
            accounts: Mutex::new(BTreeMap::new()),
            empty_domains: Mutex::new(BTreeSet::new()),
            policy: Mutex::new(None),
            folder_names: Mutex::new(BTreeMap::new()),
            resources: Mutex::new(BTreeSet::new()),
            refused_resources: Mutex::new(BTreeSet::new()),
        })
    }

    /// Notes that the destination (IMAP or WebDAV) refused a login as `address`. True when it
    /// is a resource account this run created or merged into: IceWarp documents no login as a
    /// resource (only its Manager's access to the resource's calendar, KB "Resource
    /// Management"), so the refusal is the server's answer, not a wrong password, and the
    /// account's data is left out ([`RESOURCE_LOGIN_REFUSED`]).
    pub async fn resource_login_refused(&self, address: &str) -> bool {
        let address = address.trim().to_lowercase();
        if !self.resources.lock().await.contains(&address) {
            return false;
        }
        self.refused_resources.lock().await.insert(address);
        true
    }

    /// True once a login as the resource account `address` was refused in this run: its
    /// other workloads are left out too, without trying again.
    pub async fn resource_left_out(&self, address: &str) -> bool {
        self.refused_resources
            .lock()
            .await
            .contains(&address.trim().to_lowercase())
    }

    pub fn client(&self) -> &IceWarpClient {
        &self.client
    }

    /// `U_MaxBox` and `U_MaxBoxSize` (kB, apiconst) for a created user account, when the
    /// configuration asks for a quota.
    fn quota_properties(&self) -> Vec<Param> {
        self.account_quota_kb
            .map(|kb| {
                vec![
                    Param::string_property("u_maxbox", "1"),
                    Param::string_property("u_maxboxsize", kb.to_string()),
                ]
            })
            .unwrap_or_default()
    }

    /// Reads the settings that slow or stop a migration, with advice.
    pub async fn settings_report(&self) -> Result<SettingsReport, IceWarpError> {
        let props = self.client.server_properties(&SETTINGS_PROPERTIES).await?;
        let report = SettingsReport::from_properties(&props);
        *self.policy.lock().await = Some(report.password_policy.clone());
        Ok(report)
    }

    /// The server's password policy, read once.
    pub async fn password_policy(&self) -> Result<PasswordPolicy, IceWarpError> {
        if let Some(p) = self.policy.lock().await.clone() {
            return Ok(p);
        }
        Ok(self.settings_report().await?.password_policy)
    }

    /// The account's default folder names by well-known name (see [`well_known_folders`]).
    pub async fn default_folders(
        &self,
        email: &str,
    ) -> Result<BTreeMap<String, String>, IceWarpError> {
        let key = email.to_lowercase();
        if let Some(names) = self.folder_names.lock().await.get(&key) {
            return Ok(names.clone());
        }
        let request = Request::new(
            "getaccountfolderlist",
            vec![
                Param::text("accountemail", email),
                Param::text("onlydefault", "1"),
            ],
        );
        let names = well_known_folders(&self.client.call(&request, email).await?);
        self.folder_names.lock().await.insert(key, names.clone());
        Ok(names)
    }

    /// Forces a password change at the next login (`expireaccountpassword`, with
    /// `DisableNotification` 1: the users learn their password from the administrator, not
    /// from an expiry mail) of every account the migrator created: created by this run, or
    /// merged and listed in the credentials report (created by an earlier run). A cut-over
    /// action: call it on the final pass, after the data is written (an expired password may
    /// block IMAP, `C_Accounts_Policies_Pass_DisableAccessToAllIfDisabled`). Returns how many
    /// expired, and the failures.
    pub async fn expire_passwords(
        &self,
        outcome: &ProvisionOutcome,
    ) -> (usize, Vec<(String, IceWarpError)>) {
        let generated: BTreeSet<String> = match crate::config::read_accounts_csv(self.report.path())
        {
            Ok(rows) => rows.into_keys().collect(),
            Err(e) => {
                tracing::warn!("cannot read the credentials report: {e}");
                BTreeSet::new()
            }
        };
        let addresses = outcome.accounts.iter().filter_map(|a| match a.action {
            AccountAction::Created => a.address.as_deref(),
            AccountAction::Merged => a.address.as_deref().filter(|x| generated.contains(*x)),
            _ => None,
        });
        let (mut expired, mut failures) = (0, Vec::new());
        for address in addresses {
            let request = Request::new(
                "expireaccountpassword",
                vec![
                    Param::text("accountemail", address),
                    Param::text("disablenotification", "1"),
                ],
            );
            match self.client.call(&request, address).await {
                Ok(_) => expired += 1,
                Err(e) => failures.push((address.to_string(), e)),
            }
        }
        (expired, failures)
    }

    async fn domain_accounts(&self, domain: &str) -> Result<BTreeMap<String, u32>, IceWarpError> {
        let mut cache = self.accounts.lock().await;
        if let Some(set) = cache.get(domain) {
            return Ok(set.clone());
        }
        let set = self.client.account_types(domain).await?;
        if set.is_empty() {
            self.empty_domains.lock().await.insert(domain.to_string());
        }
        cache.insert(domain.to_string(), set.clone());
        Ok(set)
    }

    /// The existing account a plan's user belongs in. Only the user's primary address counts
    /// (an alias of the user held by another account never merges the two): an account whose
    /// primary it is, from the account lists, or the account IceWarp resolves it to
    /// (`getaccountproperties`, which answers for any alias). Such an account is the user's
    /// only when it is a user account (`U_Type` 0), or a resource (`U_Type` 8) for a plan that
    /// is one, and its own `U_Alias` holds the address's local name literally: a pattern alias
    /// (`[name]`, online help 282.htm), a domain alias, a group or mailing list, or a resource
    /// for a person's mailbox is a [`Found::Conflict`].
    async fn existing(&self, plan: &AccountPlan) -> Result<Found, IceWarpError> {
        let address = &plan.address;
        let listed = self
            .domain_accounts(plan.domain())
            .await?
            .get(address)
            .copied();
        if listed.is_none() && self.empty_domains.lock().await.contains(plan.domain()) {
            // A domain that had no accounts holds no alias either (this run's own accounts
            // never share addresses: the plan gives each address to one user).
            return Ok(Found::None);
        }
        let request = properties_query(address, &["u_alias", "u_type", "u_login"]);
        let root = match self.client.call(&request, address).await {
            Ok(root) => root,
            Err(IceWarpError::Api { .. } | IceWarpError::Refused { .. }) if listed.is_none() => {
                return Ok(Found::None)
            }
            Err(e) => return Err(e),
        };
        let aliases = current_aliases(&root);
        let Some(primary) = aliases.first() else {
            return Ok(Found::None);
        };
        let email = format!("{}@{}", primary.to_lowercase(), plan.domain());
        let account_type = account_type(&root).or(listed).unwrap_or(USER_TYPE);
        let conflict = |why: String| {
            Ok(Found::Conflict(format!(
                "{address} is already taken at IceWarp: {why}; nothing was written (rename or \
                 remove it there, or map the user elsewhere, then run again)"
            )))
        };
        let resource = account_type == RESOURCE_TYPE && plan.resource.is_some();
        if account_type != USER_TYPE && !resource {
            return conflict(format!(
                "{email} is {} (U_Type {account_type}), not a user account",
                type_name(account_type)
            ));
        }
        if !aliases
            .iter()
            .any(|a| a.eq_ignore_ascii_case(plan.local_part()))
        {
            return conflict(format!(
                "IceWarp resolves it to {email}, whose aliases ({}) do not name it (a pattern \
                 alias or a domain alias)",
                aliases.join(";")
            ));
        }
        let login = login_name(&root, &email);
        Ok(Found::Account {
            email,
            aliases,
            login,
            resource,
        })
    }

    fn existing_login(&self, plan: &AccountPlan, email: &str) -> LoginRoute {
        if self.known_passwords.contains(email) || self.known_passwords.contains(&plan.address) {
            LoginRoute::AccountsCsv
        } else if self.master_user {
            LoginRoute::AdminImpersonation
        } else {
            LoginRoute::None
        }
    }

    /// Adds the plan's missing aliases to the account `email`, whose `U_Alias` is `current`.
    async fn merge(
        &self,
        plan: &AccountPlan,
        email: &str,
        current: &[String],
    ) -> Result<AccountOutcome, IceWarpError> {
        let mut outcome = AccountOutcome {
            user_id: plan.user_id.clone(),
            address: Some(email.to_string()),
            action: AccountAction::Merged,
            login: self.existing_login(plan, email),
            login_name: None,
            aliases_added: Vec::new(),
            notes: Vec::new(),
        };
        if outcome.login == LoginRoute::None {
            outcome.notes.push(format!(
                "{email} existed and no password is known for it: add it to accounts_csv (its data is not written until then)"
            ));
        }
        let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
        let (missing, notes) = alias_locals(
            std::iter::once(&plan.address).chain(&plan.aliases),
            domain,
            current,
        );
        outcome.notes.extend(notes);
        let (missing, left) = fit_aliases(current, &missing);
        if !left.is_empty() {
            outcome.notes.push(overflow_note(&left, domain));
        }
        if missing.is_empty() {
            return Ok(outcome);
        }
        let all = current.iter().chain(&missing).cloned().collect::<Vec<_>>();
        let request = Request::new(
            "setaccountproperties",
            vec![
                Param::text("accountemail", email),
                Param::Group(
                    "propertyvaluelist",
                    vec![Param::string_property("u_alias", all.join(";"))],
                ),
            ],
        );
        match self.client.call(&request, email).await {
            Ok(_) => {
                outcome.aliases_added = missing.iter().map(|l| format!("{l}@{domain}")).collect()
            }
            Err(e) if e.class() == ErrorClass::SkipItem => outcome
                .notes
                .push(format!("aliases {} not added: {e}", missing.join(", "))),
            Err(e) => return Err(e),
        }
        Ok(outcome)
    }

    async fn create(&self, plan: &AccountPlan) -> Result<AccountOutcome, IceWarpError> {
        let local = plan.local_part().to_string();
        let domain = plan.domain().to_string();
        if !valid_local_name(&local) {
            return Ok(AccountOutcome::failed(
                plan,
                format!("'{local}' is not a valid IceWarp mailbox name"),
                ErrorClass::SkipItem,
            ));
        }
        let (extra, notes) = alias_locals(&plan.aliases, &domain, std::slice::from_ref(&local));
        let policy = self.password_policy().await?;
        let names: Vec<&str> = std::iter::once(local.as_str())
            .chain(extra.iter().map(String::as_str))
            .collect();
        let password = policy.generate(&names);
        let mut outcome = AccountOutcome {
            user_id: plan.user_id.clone(),
            address: Some(plan.address.clone()),
            action: AccountAction::Created,
            login: LoginRoute::GeneratedPassword,
            login_name: None,
            aliases_added: Vec::new(),
            notes,
        };
        let (extra, left) = fit_aliases(std::slice::from_ref(&local), &extra);
        if !left.is_empty() {
            outcome.notes.push(overflow_note(&left, &domain));
        }
        // Recorded before the account exists: a crash or a lost answer must never leave an
        // account whose password is nowhere. A row for an account that was never created is
        // harmless (a later run's row for the address comes after it and wins).
        self.report.append(&plan.address, &password)?;
        let mut tries = vec![extra.clone()];
        if !extra.is_empty() {
            // A taken or odd alias must not cost the user the account.
            tries.push(Vec::new());
        }
        // `U_Type` 0 user, or 8 resource with its `S_Type` (icewarp-apiconst.txt).
        let account_kind = match plan.resource {
            Some(kind) => vec![
                Param::string_property("u_type", RESOURCE_TYPE.to_string()),
                Param::string_property("s_type", kind.s_type().to_string()),
            ],
            None => vec![Param::string_property("u_type", USER_TYPE.to_string())],
        };
        let mut last = None;
        for aliases in tries {
            let alias_list = std::iter::once(local.clone())
                .chain(aliases.iter().cloned())
                .collect::<Vec<_>>()
                .join(";");
            let request = Request::new(
                "createaccount",
                vec![
                    Param::text("domainstr", domain.clone()),
                    Param::Group(
                        "accountproperties",
                        account_kind
                            .clone()
                            .into_iter()
                            .chain([
                                Param::string_property("u_mailbox", local.clone()),
                                Param::string_property("u_alias", alias_list),
                                Param::string_property("u_name", plan.display_name.clone()),
                                Param::string_property("u_password", password.expose()),
                                // IMAP & POP3: a POP3 account breaks ActiveSync and Outlook Sync
                                // (IceWarp's account Options help), and the server's default
                                // type is not documented.
                                Param::string_property("u_accounttype", IMAP_AND_POP3),
                            ])
                            .chain(self.quota_properties())
                            .collect(),
                    ),
                ],
            );
            match self.create_once(&request, &plan.address).await {
                Ok(()) => {
                    match plan.resource {
                        Some(_) => {
                            self.remember(&plan.address, RESOURCE_TYPE).await;
                            self.resources.lock().await.insert(plan.address.clone());
                        }
                        None => self.remember(&plan.address, USER_TYPE).await,
                    }
                    outcome.login_name = self.login_of(&plan.address, &mut outcome.notes).await?;
                    outcome.aliases_added =
                        aliases.iter().map(|l| format!("{l}@{domain}")).collect();
                    if aliases.len() < extra.len() {
                        outcome.notes.push(format!(
                            "aliases {} not set: IceWarp refused them (taken by another account?)",
                            extra.join(", ")
                        ));
                    }
                    return Ok(outcome);
                }
                Err(e) if e.class() == ErrorClass::Fatal => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        let (reason, class) = match last {
            Some(e @ IceWarpError::Refused { .. }) => (
                format!("{e}: a licence or plan limit, the password policy, an invalid name or a name another account holds"),
                ErrorClass::SkipItem,
            ),
            Some(e) => (e.to_string(), e.class()),
            None => ("not created".to_string(), ErrorClass::SkipItem),
        };
        Ok(AccountOutcome::failed(plan, reason, class))
    }

    /// The login names of the accounts `emails` where they are not the address, by
    /// lower-case address (read-only: what `verify` logs in with, as the run did). One that
    /// cannot be read is left out, so the address is used, and logged.
    pub async fn login_names(
        &self,
        emails: &[String],
    ) -> Result<HashMap<String, String>, IceWarpError> {
        let mut names = HashMap::new();
        for email in emails {
            let mut notes = Vec::new();
            if let Some(name) = self.login_of(email, &mut notes).await? {
                names.insert(email.trim().to_lowercase(), name);
            }
            for note in notes {
                tracing::warn!("IceWarp account {email}: {note}");
            }
        }
        Ok(names)
    }

    /// The login name of the account `email` when it is not the address (`U_Login`, "string
    /// which should be used for logging into API, respects
    /// c_accounts_policies_login_loginsettings", apiconst). Unreadable: the address, noted.
    async fn login_of(
        &self,
        email: &str,
        notes: &mut Vec<String>,
    ) -> Result<Option<String>, IceWarpError> {
        match self
            .client
            .call(&properties_query(email, &["u_login"]), email)
            .await
        {
            Ok(root) => Ok(login_name(&root, email)),
            Err(e) if e.class() == ErrorClass::Fatal => Err(e),
            Err(e) => {
                notes.push(format!(
                    "its login name (U_Login) could not be read, the address is used: {e}"
                ));
                Ok(None)
            }
        }
    }

    /// `createaccount` with bounded retries. After a `0` or a transport error the request may
    /// have been carried out (an earlier try whose answer was lost): the domain's account list
    /// is asked for an account with this primary address before trying again.
    async fn create_once(&self, request: &Request, address: &str) -> Result<(), IceWarpError> {
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        let mut last = None;
        for _ in 0..self.client.attempts {
            let failure = match self.client.send(request).await {
                Ok(Reply::Result { result, .. }) if !is_zero(&result) => return Ok(()),
                Ok(Reply::Result { .. }) => IceWarpError::Refused {
                    command: "createaccount".into(),
                    target: address.to_string(),
                    attempts: self.client.attempts,
                },
                Ok(Reply::Error(uid)) => {
                    return Err(IceWarpError::Api {
                        command: "createaccount".into(),
                        uid,
                    })
                }
                Err(e) if e.class() == ErrorClass::Retry => e,
                Err(e) => return Err(e),
            };
            match self.client.accounts(domain).await {
                Ok(now) if now.contains(address) => return Ok(()),
                Err(e) if e.class() == ErrorClass::Fatal => return Err(e),
                _ => last = Some(failure),
            }
        }
        Err(last.unwrap_or(IceWarpError::Refused {
            command: "createaccount".into(),
            target: address.to_string(),
            attempts: self.client.attempts,
        }))
    }

    /// Notes an account this run created in the cached account list.
    async fn remember(&self, address: &str, account_type: u32) {
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        self.accounts
            .lock()
            .await
            .entry(domain.to_string())
            .or_default()
            .insert(address.to_string(), account_type);
    }

    /// The existing account a list plan names, with its `U_Type`: from the account lists,
    /// else the account its address is an alias of (`getaccountproperties` of `u_alias` and
    /// `u_type`).
    async fn existing_list(&self, plan: &ListPlan) -> Result<Option<(String, u32)>, IceWarpError> {
        for address in std::iter::once(&plan.address).chain(&plan.aliases) {
            let Some((_, domain)) = address.rsplit_once('@') else {
                continue;
            };
            if let Some(t) = self.domain_accounts(domain).await?.get(address) {
                return Ok(Some((address.clone(), *t)));
            }
        }
        if self.empty_domains.lock().await.contains(plan.domain()) {
            return Ok(None);
        }
        let request = properties_query(&plan.address, &["u_alias", "u_type"]);
        let root = match self.client.call(&request, &plan.address).await {
            Ok(root) => root,
            Err(IceWarpError::Api { .. } | IceWarpError::Refused { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let account_type = property_values(&root)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("u_type"))
            .and_then(|(_, v)| v?.trim().parse().ok())
            .unwrap_or(USER_TYPE);
        Ok(current_aliases(&root).first().map(|primary| {
            (
                format!("{}@{}", primary.to_lowercase(), plan.domain()),
                account_type,
            )
        }))
    }

    /// `addaccountmembers` with these addresses.
    async fn add_members(&self, list: &str, members: &[String]) -> Result<(), IceWarpError> {
        let items = members
            .iter()
            .map(|m| {
                Param::Group(
                    "item",
                    vec![
                        Param::text("classname", "tpropertymember"),
                        Param::text("val", m.clone()),
                        Param::text("default", "1"),
                        Param::text("recieve", "1"),
                        Param::text("post", "1"),
                        Param::text("digest", "0"),
                    ],
                )
            })
            .collect();
        let request = Request::new(
            "addaccountmembers",
            vec![
                Param::text("accountemail", list),
                Param::Group(
                    "members",
                    vec![
                        Param::text("classname", "tpropertymembers"),
                        Param::Group("val", items),
                    ],
                ),
            ],
        );
        self.client.call(&request, list).await.map(drop)
    }

    /// Adds the plan's members the list lacks; never removes one.
    async fn merge_list(&self, plan: &ListPlan, email: &str) -> Result<ListOutcome, IceWarpError> {
        let mut outcome = ListOutcome::new(plan, AccountAction::Merged);
        outcome.address = Some(email.to_string());
        let have = self.client.members(email).await?;
        let missing: Vec<String> = plan
            .members
            .iter()
            .filter(|m| !have.contains(m.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.add_members(email, &missing).await?;
            outcome.members_added = missing;
        }
        Ok(outcome)
    }

    /// `createaccount` of a group or mailing list, then its members.
    async fn create_list(&self, plan: &ListPlan) -> Result<ListOutcome, IceWarpError> {
        let domain = plan.domain().to_string();
        let local = plan
            .address
            .rsplit_once('@')
            .map_or("", |(l, _)| l)
            .to_string();
        let (extra, notes) = alias_locals(&plan.aliases, &domain, std::slice::from_ref(&local));
        let mut outcome = ListOutcome::new(plan, AccountAction::Created);
        outcome.notes.extend(notes);
        let account_type = match plan.kind {
            ListKind::MailingList => MAILING_LIST_TYPE,
            ListKind::Group => GROUP_TYPE,
        };
        let alias_list = std::iter::once(local)
            .chain(extra)
            .collect::<Vec<_>>()
            .join(";");
        let request = Request::new(
            "createaccount",
            vec![
                Param::text("domainstr", domain),
                Param::Group(
                    "accountproperties",
                    vec![
                        Param::string_property("u_type", account_type.to_string()),
                        Param::string_property("u_alias", alias_list),
                        Param::string_property("u_name", plan.display_name.clone()),
                    ],
                ),
            ],
        );
        self.create_once(&request, &plan.address).await?;
        self.remember(&plan.address, account_type).await;
        if !plan.members.is_empty() {
            if let Err(e) = self.add_members(&plan.address, &plan.members).await {
                if e.class() == ErrorClass::Fatal {
                    return Err(e);
                }
                outcome.action = AccountAction::Failed {
                    reason: format!(
                        "created, but its members could not be added (a rerun adds them): {e}"
                    ),
                    class: e.class(),
                };
                return Ok(outcome);
            }
            outcome.members_added = plan.members.clone();
        }
        Ok(outcome)
    }
}

/// `U_Type` values (icewarp-apiconst.txt): 0 user, 1 mailing list, 7 group, 8 resource.
const USER_TYPE: u32 = 0;
const MAILING_LIST_TYPE: u32 = 1;
const GROUP_TYPE: u32 = 7;
const RESOURCE_TYPE: u32 = 8;

/// Why a resource account's data is not migrated when IceWarp refuses a login as it (IMAP:
/// nothing of it is written).
pub const RESOURCE_LOGIN_REFUSED: &str = "IceWarp refused a login as the resource account \
     (IceWarp documents none); its mail and bookings stay in Microsoft 365; set resources_as = \
     \"user\" to migrate them into an ordinary account";

/// ... when only its WebDAV login is refused (its mail was written).
pub const RESOURCE_DAV_LOGIN_REFUSED: &str = "IceWarp refused a WebDAV login as the resource \
     account (IceWarp documents none); its bookings, contacts and tasks stay in Microsoft 365; \
     set resources_as = \"user\" to migrate them into an ordinary account";

/// `U_AccountType` 1: IMAP & POP3 (icewarp-apiconst.txt: 0 POP3, 1 IMAP & POP3, 2 IMAP).
const IMAP_AND_POP3: &str = "1";

/// `D_Type` values (icewarp-apiconst.txt): 0 standard, 1 ETRN/ATRN queue, 2 domain alias,
/// 3 backup, 4 distributed, 5 service. Accounts live in standard and distributed domains.
const STANDARD_DOMAIN: u32 = 0;
const DISTRIBUTED_DOMAIN: u32 = 4;

/// What a domain's `D_Type` makes it (icewarp-apiconst.txt).
fn domain_type_name(domain_type: u32) -> &'static str {
    match domain_type {
        1 => "an ETRN/ATRN queue",
        2 => "a domain alias",
        3 => "a backup domain",
        5 => "a service domain",
        _ => "a domain of another kind",
    }
}

/// What an account's `U_Type` makes it (icewarp-apiconst.txt).
fn type_name(account_type: u32) -> &'static str {
    match account_type {
        0 => "a user account",
        1 => "a mailing list",
        2 => "an executable account",
        3 => "a notification account",
        4 => "a static route",
        5 => "a catalog",
        6 => "a list server",
        7 => "a group",
        8 => "a resource",
        _ => "an account of another kind",
    }
}

/// `U_Login` in a `getaccountproperties` reply, when it is set and is not `email`.
fn login_name(root: &Element, email: &str) -> Option<String> {
    property_values(root)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("u_login"))
        .and_then(|(_, v)| v)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case(email))
}

/// `U_Type` in a `getaccountproperties` reply.
fn account_type(root: &Element) -> Option<u32> {
    property_values(root)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("u_type"))
        .and_then(|(_, v)| v?.trim().parse().ok())
}

/// The existing account a user belongs in (see [`IceWarpProvisioner::existing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    None,
    /// The account's primary address, its `U_Alias` (split), its login name when it is
    /// not the address, and whether it is a resource (`U_Type` 8).
    Account {
        email: String,
        aliases: Vec<String>,
        login: Option<String>,
        resource: bool,
    },
    /// The address is taken by something the user must not be merged into: why.
    Conflict(String),
}

/// IceWarp's limit on `U_Alias`: "maximal length of this field is limited to 255 characters"
/// (online help 282.htm).
pub const ALIAS_FIELD_MAX: usize = 255;

/// Splits `extra` into the local names that fit after `kept` in one `U_Alias` value
/// (`;`-separated, at most [`ALIAS_FIELD_MAX`] characters) and those that do not, in order.
fn fit_aliases(kept: &[String], extra: &[String]) -> (Vec<String>, Vec<String>) {
    let mut length =
        kept.iter().map(|a| a.chars().count()).sum::<usize>() + kept.len().saturating_sub(1);
    let (mut fit, mut left) = (Vec::new(), Vec::new());
    for alias in extra {
        let more = alias.chars().count() + usize::from(length > 0);
        if left.is_empty() && length + more <= ALIAS_FIELD_MAX {
            length += more;
            fit.push(alias.clone());
        } else {
            left.push(alias.clone());
        }
    }
    (fit, left)
}

/// The note for aliases left out by [`fit_aliases`].
fn overflow_note(left: &[String], domain: &str) -> String {
    format!(
        "aliases {} not set: IceWarp's alias field holds at most {ALIAS_FIELD_MAX} characters",
        left.iter()
            .map(|l| format!("{l}@{domain}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `getaccountproperties` of these properties.
fn properties_query(email: &str, names: &[&str]) -> Request {
    Request::new(
        "getaccountproperties",
        vec![
            Param::text("accountemail", email),
            Param::Group(
                "accountpropertylist",
                names.iter().map(|n| Param::property_name(n)).collect(),
            ),
        ],
    )
}

/// The aliases in a `getaccountproperties` reply, in order.
fn current_aliases(root: &Element) -> Vec<String> {
    property_values(root)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("u_alias"))
        .filter_map(|(_, v)| v)
        .flat_map(|v| {
            v.split(';')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The local names among `addresses` that belong in `domain` and are not in `have`, and a
/// note for each address in another domain (IceWarp aliases are names within the account's
/// own domain).
fn alias_locals<'a>(
    addresses: impl IntoIterator<Item = &'a String>,
    domain: &str,
    have: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut missing: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    for address in addresses {
        let Some((local, d)) = address.rsplit_once('@') else {
            continue;
        };
        if !d.eq_ignore_ascii_case(domain) {
            notes.push(format!(
                "alias {address} not set: IceWarp aliases are names within the account's domain ({domain})"
            ));
        } else if !valid_local_name(local) {
            notes.push(format!(
                "alias {address} not set: not a valid IceWarp alias"
            ));
        } else if !have
            .iter()
            .chain(&missing)
            .any(|h| h.eq_ignore_ascii_case(local))
        {
            missing.push(local.to_string());
        }
    }
    (missing, notes)
}

impl AccountProvisioner for IceWarpProvisioner {
    type Error = IceWarpError;

    async fn ensure_domains(
        &self,
        domains: &[String],
    ) -> Result<Vec<(String, DomainAction)>, IceWarpError> {
        let existing = self.client.domain_types().await?;
        let mut out = Vec::new();
        for domain in domains {
            let domain = domain.to_lowercase();
            match existing.get(&domain).copied() {
                Some(STANDARD_DOMAIN | DISTRIBUTED_DOMAIN) => {
                    out.push((domain, DomainAction::Existing));
                    continue;
                }
                // A domain alias (or a queue, backup or service domain) holds no accounts of
                // its own: creating accounts there, or the domain again, would be wrong.
                Some(other) => {
                    let reason = format!(
                        "it is {} at IceWarp (D_Type {other}), which holds no accounts: map it \
                         to the domain its users belong in with domain_map",
                        domain_type_name(other)
                    );
                    out.push((domain, DomainAction::Failed { reason }));
                    continue;
                }
                None => {}
            }
            let request = Request::new(
                "createdomain",
                vec![Param::text("domainstr", domain.clone())],
            );
            let action = match self.client.call(&request, &domain).await {
                Ok(_) => DomainAction::Created,
                Err(e) if e.class() == ErrorClass::Fatal => return Err(e),
                // A 0 gives no reason: the domain may exist after all (an earlier try whose
                // answer was lost, another run), which is what the run needs.
                Err(e) => match self.client.domain_exists(&domain).await {
                    Ok(true) => DomainAction::Created,
                    Ok(false) => DomainAction::Failed {
                        reason: e.to_string(),
                    },
                    Err(e) if e.class() == ErrorClass::Fatal => return Err(e),
                    Err(lookup) => DomainAction::Failed {
                        reason: format!("{e}; looking it up failed too: {lookup}"),
                    },
                },
            };
            out.push((domain, action));
        }
        Ok(out)
    }

    async fn ensure_account(&self, plan: &AccountPlan) -> Result<AccountOutcome, IceWarpError> {
        let existing = match self.existing(plan).await {
            Ok(e) => e,
            Err(e) if e.class() != ErrorClass::Fatal => {
                return Ok(AccountOutcome::failed(plan, e.to_string(), e.class()))
            }
            Err(e) => return Err(e),
        };
        let result = match existing {
            Found::Account {
                email,
                aliases,
                login,
                resource,
            } => {
                if resource {
                    self.resources.lock().await.insert(email.clone());
                }
                let mut outcome = self.merge(plan, &email, &aliases).await;
                if let Ok(o) = &mut outcome {
                    o.login_name = login;
                }
                outcome
            }
            Found::None => self.create(plan).await,
            Found::Conflict(reason) => {
                return Ok(AccountOutcome::failed(plan, reason, ErrorClass::SkipItem))
            }
        };
        match result {
            Err(e) if e.class() != ErrorClass::Fatal => {
                Ok(AccountOutcome::failed(plan, e.to_string(), e.class()))
            }
            other => other,
        }
    }

    async fn ensure_list(&self, plan: &ListPlan) -> Result<ListOutcome, IceWarpError> {
        let result = match self.existing_list(plan).await {
            Ok(Some((email, MAILING_LIST_TYPE | GROUP_TYPE))) => self.merge_list(plan, &email).await,
            Ok(Some((email, other))) => Ok(ListOutcome::new(
                plan,
                AccountAction::Failed {
                    reason: format!(
                        "{email} belongs to an IceWarp account of type {other}, not a group or mailing list: left as it is"
                    ),
                    class: ErrorClass::SkipItem,
                },
            )),
            Ok(None) => self.create_list(plan).await,
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.class() != ErrorClass::Fatal => Ok(ListOutcome::new(
                plan,
                AccountAction::Failed {
                    reason: e.to_string(),
                    class: e.class(),
                },
            )),
            other => other,
        }
    }
}

/// Server properties that make IceWarp refuse or later delete migrated data
/// (icewarp-apiconst.txt).
const LIMIT_SERVER_PROPERTIES: [&str; 4] = [
    "C_Accounts_Policies_Auth_DisablePlain",
    "C_AS_DeleteSpamMailOlder",
    "C_WebDAV_ProcessingMode",
    "C_System_Services_IMAP_CopyBWFunction",
];

/// Account properties that make IceWarp refuse or later delete migrated data
/// (icewarp-apiconst.txt: sizes in kB, ages in days, policies as booleans).
const LIMIT_ACCOUNT_PROPERTIES: [&str; 8] = [
    "U_MaxBox",
    "U_MaxBoxSize",
    "U_MaxMessageSize",
    "U_DeleteOlder",
    "U_DeleteOlderDays",
    "U_WebDAV",
    "U_GW",
    "U_AccountDisabled",
];

/// Domain properties that make IceWarp refuse or later delete migrated data
/// (icewarp-apiconst.txt: sizes in kB, ages in days, the rest booleans).
const LIMIT_DOMAIN_PROPERTIES: [&str; 9] = [
    "D_UserMailbox",
    "D_DiskQuota",
    "D_UserMsg",
    "D_SpamDeleteOlder",
    "D_DisableLogin",
    "D_GWSupport",
    "D_WebDAVSupport",
    "D_Calendar",
    "D_WebDAV",
];

/// Account limit reads in flight at once ([`IceWarpProvisioner::limits_advice`]).
const LIMIT_READS: usize = 16;

impl IceWarpProvisioner {
    /// What the server will refuse or delete later, read before any data moves: plain
    /// authentication switched off, spam clean-up by age, WebDAV limited to some domains or
    /// accounts; per domain (the accounts' own and `domains`) its mailbox, storage and
    /// message size limits, spam clean-up and GroupWare/WebDAV support and policies; and per
    /// account its mailbox quota, message size limit, clean-up of old mail and WebDAV/GroupWare
    /// policies. One line of advice each, naming the property and the domain or account.
    /// Domains and accounts that cannot be read (not created yet) are left out.
    pub async fn limits_advice(&self, accounts: &[String], domains: &[String]) -> Vec<String> {
        let mut advice = match self
            .client
            .server_properties(&LIMIT_SERVER_PROPERTIES)
            .await
        {
            Ok(props) => server_limits(&props),
            Err(e) => vec![format!("cannot read the server's limits: {e}")],
        };
        let domains: BTreeSet<String> = accounts
            .iter()
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d))
            .chain(domains.iter().map(String::as_str))
            .map(|d| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        for domain in &domains {
            let request = Request::new(
                "getdomainproperties",
                vec![
                    Param::text("domainstr", domain.clone()),
                    Param::Group(
                        "domainpropertylist",
                        LIMIT_DOMAIN_PROPERTIES
                            .iter()
                            .map(|n| Param::property_name(n))
                            .collect(),
                    ),
                ],
            );
            if let Ok(root) = self.client.call(&request, domain).await {
                advice.extend(domain_limits(domain, &lower_case_properties(&root)));
            }
        }
        // One read per account, several at once (a run asks for every account it writes into),
        // in the accounts' order. The futures are collected first: a stream holding the
        // closure is not `Send` for every lifetime, which a spawned run needs.
        let reads: Vec<_> = accounts
            .iter()
            .map(|e| self.account_limit_advice(e))
            .collect();
        let per_account: Vec<Vec<String>> = futures_util::stream::iter(reads)
            .buffered(LIMIT_READS)
            .collect()
            .await;
        advice.extend(per_account.into_iter().flatten());
        advice
    }

    /// One account's limits as advice; nothing when its properties cannot be read.
    async fn account_limit_advice(&self, email: &str) -> Vec<String> {
        let request = properties_query(email, &LIMIT_ACCOUNT_PROPERTIES);
        match self.client.call(&request, email).await {
            Ok(root) => account_limits(email, &lower_case_properties(&root)),
            Err(_) => Vec::new(),
        }
    }

    /// When domains would have to be created (`domains` not on the server) and the
    /// administrator is a domain administrator, not a server administrator (its `U_Admin` is
    /// not 1 and its `U_DomainAdmin` is 1, apiconst), one line naming the missing domains
    /// (creating domains is a server administrator's task; IceWarp's API documents no answer
    /// for a domain administrator's `createdomain`). `None` when nothing is missing, the
    /// administrator is a server administrator, or its rights cannot be read.
    pub async fn domain_admin_advice(&self, domains: &[String]) -> Option<String> {
        let admin = self.client.admin_email.clone();
        let request = properties_query(&admin, &["U_Admin", "U_DomainAdmin"]);
        let root = self.client.call(&request, &admin).await.ok()?;
        let props = lower_case_properties(&root);
        if is(&props, "u_admin", "1") || !is(&props, "u_domainadmin", "1") {
            return None;
        }
        let existing = self.client.domains().await.ok()?;
        let missing: BTreeSet<String> = domains
            .iter()
            .map(|d| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty() && !existing.contains(d))
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "the administrator {admin} is a domain administrator, not a server administrator \
                 (U_Admin 0, U_DomainAdmin 1): it cannot create the domains {}; create them \
                 first or use a server administrator",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// The properties of a property list reply, names in lower case.
fn lower_case_properties(root: &Element) -> BTreeMap<String, Option<String>> {
    property_values(root)
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// Advice for one domain's [`LIMIT_DOMAIN_PROPERTIES`] (names in lower case).
fn domain_limits(domain: &str, props: &BTreeMap<String, Option<String>>) -> Vec<String> {
    let mut advice = Vec::new();
    let mb = |kb: u64| kb.div_ceil(1024);
    if let Some(kb) = positive(props, "d_usermailbox") {
        advice.push(format!(
            "{domain}: user mailboxes are limited to {} MB (D_UserMailbox): mail beyond it \
             will be refused",
            mb(kb)
        ));
    }
    if let Some(kb) = positive(props, "d_diskquota") {
        advice.push(format!(
            "{domain}: the domain's storage is limited to {} MB (D_DiskQuota): mail beyond it \
             will be refused",
            mb(kb)
        ));
    }
    if let Some(kb) = positive(props, "d_usermsg") {
        if kb.saturating_mul(1024) < M365_MAX_MESSAGE {
            advice.push(format!(
                "{domain}: messages larger than {} MB are refused (D_UserMsg); Microsoft 365 \
                 allows up to 150 MB",
                mb(kb)
            ));
        }
    }
    if let Some(days) = positive(props, "d_spamdeleteolder") {
        advice.push(format!(
            "{domain}: spam older than {days} days is deleted from spam folders \
             (D_SpamDeleteOlder): migrated Junk E-mail older than that will be deleted"
        ));
    }
    if is(props, "d_disablelogin", "1") {
        advice.push(format!(
            "{domain}: login to this domain is disabled (D_DisableLogin): its accounts cannot \
             log in to IMAP or WebDAV"
        ));
    }
    for (property, name, what) in [
        ("d_gwsupport", "D_GWSupport", "has no GroupWare support"),
        (
            "d_webdavsupport",
            "D_WebDAVSupport",
            "has no WebDAV support",
        ),
        ("d_calendar", "D_Calendar", "has the GroupWare policy off"),
        ("d_webdav", "D_WebDAV", "has the WebDAV policy off"),
    ] {
        if is(props, property, "0") {
            advice.push(format!(
                "{domain}: the domain {what} ({name}): its calendars, contacts and tasks \
                 cannot be written"
            ));
        }
    }
    advice
}

/// A numeric property's value, when set and positive.
fn positive(props: &BTreeMap<String, Option<String>>, name: &str) -> Option<u64> {
    props
        .get(name)?
        .as_deref()?
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
}

/// Whether a boolean property is explicitly `value` (`1` on, `0` off).
fn is(props: &BTreeMap<String, Option<String>>, name: &str, value: &str) -> bool {
    props
        .get(name)
        .and_then(|v| v.as_deref())
        .is_some_and(|v| v.trim() == value)
}

/// Advice for the server-wide [`LIMIT_SERVER_PROPERTIES`] (names in lower case).
fn server_limits(props: &BTreeMap<String, Option<String>>) -> Vec<String> {
    let mut advice = Vec::new();
    if is(props, "c_accounts_policies_auth_disableplain", "1") {
        advice.push(
            "plain authentication is disabled in all services \
             (C_Accounts_Policies_Auth_DisablePlain): IMAP and WebDAV logins with a password \
             will be refused"
                .to_string(),
        );
    }
    if let Some(days) = positive(props, "c_as_deletespammailolder") {
        advice.push(format!(
            "spam older than {days} days is deleted from spam folders \
             (C_AS_DeleteSpamMailOlder): migrated Junk E-mail older than that will be deleted"
        ));
    }
    if let Some(mode) = positive(props, "c_webdav_processingmode") {
        advice.push(format!(
            "WebDAV serves only some domains or accounts (C_WebDAV_ProcessingMode = {mode}): \
             calendars, contacts and tasks of the others cannot be written"
        ));
    }
    // apiconst: "Copy/Move from Inbox to Spam indexes e-mail to Blacklist, Copy/Move from Spam
    // to Inbox indexes e-mail to WhiteList". Incremental runs mirror moves made at the source
    // as IMAP moves (or COPY), which this setting takes as the user's verdict on the sender.
    if is(props, "c_system_services_imap_copybwfunction", "1") {
        advice.push(
            "moving mail between Inbox and Spam over IMAP trains the spam filter \
             (C_System_Services_IMAP_CopyBWFunction): moves a later run mirrors from Microsoft \
             365 into or out of Junk E-mail add their senders to the blacklist or whitelist; \
             turn it off for the migration"
                .to_string(),
        );
    }
    advice
}

/// Advice for one account's [`LIMIT_ACCOUNT_PROPERTIES`] (names in lower case).
fn account_limits(email: &str, props: &BTreeMap<String, Option<String>>) -> Vec<String> {
    let mut advice = Vec::new();
    let mb = |kb: u64| kb.div_ceil(1024);
    if is(props, "u_maxbox", "1") {
        if let Some(kb) = positive(props, "u_maxboxsize") {
            advice.push(format!(
                "{email}: the mailbox is limited to {} MB (U_MaxBox, U_MaxBoxSize): mail beyond \
                 it will be refused",
                mb(kb)
            ));
        }
    }
    if let Some(kb) = positive(props, "u_maxmessagesize") {
        if kb.saturating_mul(1024) < M365_MAX_MESSAGE {
            advice.push(format!(
                "{email}: messages larger than {} MB are refused (U_MaxMessageSize); Microsoft \
                 365 allows up to 150 MB",
                mb(kb)
            ));
        }
    }
    if is(props, "u_deleteolder", "1") {
        if let Some(days) = positive(props, "u_deleteolderdays") {
            advice.push(format!(
                "{email}: messages older than {days} days are deleted (U_DeleteOlder, \
                 U_DeleteOlderDays): migrated mail older than that will be deleted"
            ));
        }
    }
    for (property, name) in [("u_webdav", "U_WebDAV"), ("u_gw", "U_GW")] {
        if is(props, property, "0") {
            advice.push(format!(
                "{email}: {name} is off for this account: its calendars, contacts and tasks \
                 cannot be written"
            ));
        }
    }
    if positive(props, "u_accountdisabled").is_some() {
        advice.push(format!(
            "{email}: the account is disabled (U_AccountDisabled): it cannot log in or receive"
        ));
    }
    advice
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_advice_names_the_setting() {
        let props: BTreeMap<String, Option<String>> = [
            ("c_system_services_imap_maxappendsperminute", Some("120")),
            ("c_mail_smtp_delivery_limitmsgsize", Some("1")),
            ("c_mail_smtp_delivery_maxmsgsize", Some("20971520")),
            ("c_webdav_active", Some("0")),
            ("c_gw_general_disable", Some("0")),
            ("c_accounts_policies_pass_enable", Some("1")),
            ("c_accounts_policies_pass_minlength", Some("12")),
            ("c_accounts_policies_pass_useralias", None),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect();
        let r = SettingsReport::from_properties(&props);
        assert_eq!(r.max_appends_per_minute, Some(120));
        assert_eq!(r.max_message_bytes, Some(20 * 1024 * 1024));
        assert_eq!(
            (r.webdav_enabled, r.groupware_enabled),
            (Some(false), Some(true))
        );
        assert!(r.password_policy.enabled && r.password_policy.min_length == 12);
        assert!(!r.password_policy.no_user_names);
        assert_eq!(r.advice.len(), 3, "{:?}", r.advice);
        assert!(r.advice[0].contains("MaxAppendsPerMinute") && r.advice[0].contains("7 hours"));
        assert!(r.advice[1].contains("20 MB"));
        assert!(r.advice[2].contains("WebDAV"));
    }

    #[test]
    fn aliases_stay_in_the_account_domain() {
        let addresses = [
            "adele@contoso.com",
            "av@contoso.com",
            "av@fabrikam.com",
            "AV@contoso.com",
            "x y@contoso.com",
        ]
        .map(String::from);
        let (missing, notes) = alias_locals(&addresses, "contoso.com", &["adele".to_string()]);
        assert_eq!(missing, ["av"]);
        assert_eq!(notes.len(), 2, "{notes:?}");
    }

    #[test]
    fn settings_come_from_the_configuration_file() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("known.csv");
        std::fs::write(&csv, "address,password\nOld@Contoso.com,pw\n").unwrap();
        let text = format!(
            "[source]\ntenant_id = \"contoso.com\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\n\
             [destination]\nkind = \"icewarp\"\nhost = \"mail.example.com\"\nadmin_email = \"admin@example.com\"\n\
             credentials_report = \"new.csv\"\naccounts_csv = \"{}\"\nmaster_user = \"master\"\n\
             shared_mailboxes = \"skip\"\nresource_mailboxes = \"skip\"\ngroups = \"by-kind\"\n\
             domain_map = {{ \"Contoso.onmicrosoft.com\" = \"contoso.com\" }}\n",
            csv.display()
        );
        let config =
            crate::config::FileConfig::parse(&text, std::path::Path::new("m.toml")).unwrap();
        let (settings, rules) = IceWarpSettings::from_config(&config.destination())
            .unwrap()
            .unwrap();
        assert_eq!(settings.api_url, "https://mail.example.com/icewarpapi/");
        assert_eq!(
            settings.known_passwords,
            ["old@contoso.com".to_string()].into()
        );
        assert!(settings.master_user);
        assert_eq!(settings.attempts, DEFAULT_ATTEMPTS);
        assert_eq!(rules.domain_map["contoso.onmicrosoft.com"], "contoso.com");
        assert_eq!(rules.shared_mailboxes, crate::config::AccountRule::Skip);
        assert_eq!(rules.disabled_users, crate::config::AccountRule::Skip);
        assert_eq!(rules.resource_mailboxes, crate::config::AccountRule::Skip);
        assert_eq!(rules.groups, crate::config::GroupRule::ByKind);
        let defaults = crate::config::FileConfig::parse(
            &text
                .replace("groups = \"by-kind\"\n", "")
                .replace("resource_mailboxes = \"skip\"\n", ""),
            std::path::Path::new("m.toml"),
        )
        .unwrap();
        let (_, rules) = IceWarpSettings::from_config(&defaults.destination())
            .unwrap()
            .unwrap();
        assert_eq!(rules.groups, crate::config::GroupRule::Skip);
        assert_eq!(rules.resource_mailboxes, crate::config::AccountRule::Create);
        let bad = text.replace("\"by-kind\"", "\"teams\"");
        assert!(crate::config::FileConfig::parse(&bad, std::path::Path::new("m.toml")).is_err());
        let folder = crate::config::DestinationConfig::Folder { path: "x".into() };
        assert!(IceWarpSettings::from_config(&folder).unwrap().is_none());
    }

    /// `resources_as` is a rule of the IceWarp destination: "resource" by default, "user" the
    /// escape hatch; any other value is an error naming the file's key before data moves.
    #[test]
    fn resources_as_comes_from_the_file_and_an_unknown_value_is_an_error() {
        let text = "[source]\ntenant_id = \"contoso.com\"\n\
                    client_id = \"00000000-0000-0000-0000-000000000001\"\n[destination]\n\
                    kind = \"icewarp\"\nhost = \"mail.example.com\"\n\
                    admin_email = \"admin@example.com\"\ncredentials_report = \"new.csv\"\n";
        let rules = |extra: &str| {
            let config = crate::config::FileConfig::parse(
                &format!("{text}{extra}"),
                std::path::Path::new("m.toml"),
            )?;
            let settings = IceWarpSettings::from_config(&config.destination());
            Ok::<_, crate::config::ConfigError>(settings?.map(|(_, rules)| rules.resources_as))
        };
        use crate::config::ResourcesAs;
        assert_eq!(rules("").unwrap(), Some(ResourcesAs::Resource));
        assert_eq!(
            rules("resources_as = \"user\"\n").unwrap(),
            Some(ResourcesAs::User)
        );
        let e = rules("resources_as = \"room\"\n").unwrap_err().to_string();
        assert!(e.contains("resources_as"), "{e}");
    }

    #[test]
    fn plain_http_only_to_loopback_when_allowed() {
        let settings = |url: &str, allow| IceWarpSettings {
            api_url: url.into(),
            admin_email: "a@b.c".into(),
            ca_file: None,
            allow_plaintext_loopback: allow,
            credentials_report: "x.csv".into(),
            known_passwords: BTreeSet::new(),
            master_user: false,
            attempts: 3,
            session_idle: SESSION_IDLE,
            account_quota_kb: None,
        };
        let ok = |url, allow| IceWarpClient::new(&settings(url, allow), Secret::new("p")).is_ok();
        assert!(ok("https://mail.example.com/icewarpapi/", false));
        assert!(ok("http://127.0.0.1:9/icewarpapi/", true));
        assert!(!ok("http://127.0.0.1:9/icewarpapi/", false));
        assert!(!ok("http://mail.example.com/icewarpapi/", true));
        assert!(!ok("ftp://mail.example.com/", true));
        assert!(!ok("http://localhost:9/icewarpapi/", true));
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn limits_that_refuse_or_delete_migrated_data_are_named() {
        let server = server_limits(&props(&[
            ("c_accounts_policies_auth_disableplain", "1"),
            ("c_as_deletespammailolder", "30"),
            ("c_webdav_processingmode", "5"),
        ]));
        assert_eq!(server.len(), 3, "{server:?}");
        assert!(server[0].contains("C_Accounts_Policies_Auth_DisablePlain"));
        assert!(server[1].contains("older than 30 days"));
        assert!(server[2].contains("= 5"));
        let account = account_limits(
            "a@example.com",
            &props(&[
                ("u_maxbox", "1"),
                ("u_maxboxsize", "1048576"),
                ("u_maxmessagesize", "10240"),
                ("u_deleteolder", "1"),
                ("u_deleteolderdays", "365"),
                ("u_webdav", "0"),
                ("u_gw", "1"),
                ("u_accountdisabled", "0"),
            ]),
        );
        assert_eq!(account.len(), 4, "{account:?}");
        assert!(account[0].contains("1024 MB"), "{account:?}");
        assert!(account[1].contains("larger than 10 MB"), "{account:?}");
        assert!(account[2].contains("older than 365 days"), "{account:?}");
        assert!(account[3].contains("U_WebDAV"), "{account:?}");
        // Nothing set, or set to what does not limit: no advice.
        assert!(server_limits(&props(&[("c_webdav_processingmode", "0")])).is_empty());
        assert!(account_limits("a@example.com", &props(&[("u_maxbox", "0")])).is_empty());
    }
}
