//! An emulator of IceWarp's remote administration API: XML envelopes POSTed to
//! `/icewarpapi/`, answered in the shapes of the API's own specification
//! (`icewarp-api.openapi.json`, bundled; see [`spec`]). IceWarp cannot run here, so tests of
//! the migrator's provisioning run against this instead, on 127.0.0.1 only.
//!
//! Commands: `authenticate`, `logout`, `getserverproperties`, `getdomainsinfolist`,
//! `createdomain`, `getaccountsinfolist`, `createaccount`, `getaccountproperties`,
//! `setaccountproperties`, `getdomainproperties`, `getaccountfolderlist`, `expireaccountpassword`,
//! `addaccountmembers` and `getaccountmemberinfolist` (members of `U_Type` 1 mailing lists
//! and 7 groups). `createaccount` makes users, lists, groups and resources (`U_Type` 8 with
//! `S_Type` 0 room, 1 equipment, 2 car; apiconst), whose type `getaccountproperties`
//! (`u_type`, `s_type`) and `getaccountsinfolist` (`accounttype`) answer. Any other command of the specification answers the error envelope
//! `not_implemented`.
//!
//! Envelopes (shared reference `icewarp.md` §2): a result is `<iq type="result"
//! sid=".."><query xmlns="admin:iq:rpc"><result>..</result></query></iq>`, where simple
//! commands answer `1` (success) or `0` (failure; the API gives no reason, the request log
//! does). A request that is not an `<iq>` envelope answers `<iq type="error"><query><error
//! uid="iq_root_tag_invalid"/></query></iq>` (IceWarp.Net's ErrorResponse fixture). Other
//! error uids are not documented; the emulator uses `session_invalid` (no or unknown `sid`),
//! `account_invalid` (no such account), `schema_invalid` (a request its command's schema
//! does not allow, when [`IceWarpConfig::strict_schema`] is on) and `not_implemented`.
//!
//! Knobs: initial domains, domain aliases and accounts, server properties (password policy,
//! login policy, IMAP APPEND limit, size limits, WebDAV and GroupWare switches), localised
//! default folder names, alias patterns, domain properties
//! ([`IceWarpSim::set_domain_property`]), an administrator that is a domain administrator,
//! a licence limit, accounts the server refuses for
//! good, injected transient faults and lost replies, sessions that end, and the request log
//! with each request's schema violations. Switches for what IceWarp does not document: a
//! page cap on lists, the error uid of an expired session, and whether a `U_Alias` over 255
//! characters is refused or cut.

pub mod spec;
pub mod state;
pub mod xml;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand::Rng;

pub use spec::{api_spec, ApiSpec};
use state::{mask_matches, valid_domain, valid_local_name, Data};
pub use state::{
    Account, AccountSpec, AliasOverflow, DefaultFolderNames, Fault, IceWarpRequest, ListSpec,
    PasswordPolicy, ResourceSpec,
};
use xml::Node;

/// How the emulated server starts. Build it with `..IceWarpConfig::default()`.
#[derive(Debug, Clone)]
pub struct IceWarpConfig {
    /// The administrator `authenticate` accepts.
    pub admin_email: String,
    pub admin_password: String,
    /// Domains that exist at start.
    pub domains: Vec<String>,
    /// Accounts that exist at start (their domains are created).
    pub accounts: Vec<AccountSpec>,
    /// Groups and mailing lists that exist at start (their domains are created).
    pub lists: Vec<ListSpec>,
    /// Resources (`U_Type` 8) that exist at start (their domains are created).
    pub resources: Vec<ResourceSpec>,
    pub policy: PasswordPolicy,
    /// More server properties, or overrides (`C_System_Services_IMAP_MaxAppendsPerMinute`,
    /// `C_Mail_SMTP_Delivery_MaxMsgSize`, `C_WebDAV_Active`, ...).
    pub properties: Vec<(String, String)>,
    pub folder_names: DefaultFolderNames,
    /// Accounts whose default folders have names of their own (address, names), instead of
    /// [`IceWarpConfig::folder_names`]. The rename setting takes a `where` scope (apiconst,
    /// `C_System_Adv_Rename_Default_Folders`: "where=value1&events=value2...", e.g.
    /// `where=*&sent=Odeslan`), so two accounts of one server may name them differently.
    pub account_folder_names: Vec<(String, DefaultFolderNames)>,
    /// Licence limit: accounts the server may hold in all (`E_LICENSE` beyond).
    pub max_accounts: Option<usize>,
    /// Refuse requests that break their command's request schema (`schema_invalid`). Off:
    /// serve them and only record the violations.
    pub strict_schema: bool,
    /// The most items one page of a list command holds, whatever `count` asks for. Whether
    /// IceWarp caps its pages is not documented: `None` (no cap) and a cap are both tested.
    pub page_limit: Option<usize>,
    /// Domain aliases (alias, domain): listed by `getdomainsinfolist` with `domaintype` 2
    /// (`D_Type` 2, Domain Alias, apiconst); an address in the alias names the account of the
    /// same name in the domain.
    pub domain_aliases: Vec<(String, String)>,
    /// Alias patterns (name, local names): an account whose `U_Alias` holds `[name]` answers
    /// to each of the names. IceWarp's `U_Alias` may hold such pattern references (online help
    /// 282.htm); how the server expands one is its own configuration.
    pub alias_patterns: Vec<(String, Vec<String>)>,
    /// What a `U_Alias` longer than 255 characters gets (see [`AliasOverflow`]).
    pub alias_overflow: AliasOverflow,
    /// The administrator is a domain administrator: `getaccountproperties` of its address
    /// answers `U_Admin` 0 and `U_DomainAdmin` 1 (apiconst: "Administrator permission",
    /// "Domain admin permission"); otherwise `U_Admin` 1. What IceWarp's `createdomain`
    /// answers a domain administrator is not documented, so the emulator does not change it.
    pub domain_admin: bool,
    /// The error uid for a request whose `sid` is unknown or expired. IceWarp documents no
    /// error uid for it (the specification's error envelope names none), so tests choose one.
    pub session_error_uid: String,
}

impl Default for IceWarpConfig {
    fn default() -> Self {
        IceWarpConfig {
            admin_email: "admin@icewarp.test".into(),
            admin_password: "Admin-Pa55!".into(),
            domains: Vec::new(),
            accounts: Vec::new(),
            lists: Vec::new(),
            resources: Vec::new(),
            policy: PasswordPolicy::default(),
            properties: Vec::new(),
            folder_names: DefaultFolderNames::english(),
            account_folder_names: Vec::new(),
            max_accounts: None,
            strict_schema: true,
            page_limit: None,
            domain_aliases: Vec::new(),
            alias_patterns: Vec::new(),
            alias_overflow: AliasOverflow::Refuse,
            session_error_uid: "session_invalid".into(),
            domain_admin: false,
        }
    }
}

/// Server properties of a fresh emulator, before [`IceWarpConfig::properties`].
const DEFAULT_PROPERTIES: [(&str, &str); 9] = [
    ("C_System_Services_IMAP_MaxAppendsPerMinute", "0"),
    ("C_Mail_SMTP_Delivery_LimitMsgSize", "0"),
    ("C_Mail_SMTP_Delivery_MaxMsgSize", "0"),
    ("C_Mail_IMAP_Active", "1"),
    ("C_WebDAV_Active", "1"),
    ("C_GW_General_Disable", "0"),
    ("C_Accounts_Policies_Login_LoginSettings", "1"),
    ("C_System_Services_IMAP_Port", "143"),
    ("C_System_Services_IMAP_SSLPort", "993"),
];

struct Shared {
    config: IceWarpConfig,
    data: Mutex<Data>,
}

impl Shared {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running emulator. Dropping it without [`IceWarpSim::shutdown`] also stops it.
pub struct IceWarpSim {
    url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl IceWarpSim {
    /// Starts serving on 127.0.0.1 at a free port.
    pub async fn start(config: IceWarpConfig) -> std::io::Result<IceWarpSim> {
        IceWarpSim::start_on(config, 0).await
    }

    /// Like [`IceWarpSim::start`], on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(config: IceWarpConfig, port: u16) -> std::io::Result<IceWarpSim> {
        let mut data = Data::default();
        for (name, value) in DEFAULT_PROPERTIES {
            data.set_property(name, value);
        }
        for (name, value) in config.policy.properties() {
            data.set_property(name, value);
        }
        for (name, value) in &config.properties {
            data.set_property(name, value.clone());
        }
        for d in &config.domains {
            data.domains.insert(d.to_ascii_lowercase(), String::new());
        }
        for (alias, domain) in &config.domain_aliases {
            let (alias, domain) = (alias.to_ascii_lowercase(), domain.to_ascii_lowercase());
            data.domains
                .insert(alias.clone(), format!("alias of {domain}"));
            data.domain_aliases.insert(alias, domain);
        }
        for (name, locals) in &config.alias_patterns {
            data.patterns
                .insert(name.to_ascii_lowercase(), locals.clone());
        }
        let lists = config.lists.iter().map(|l| {
            (
                &l.email,
                &l.name,
                "",
                &[][..],
                l.account_type,
                &l.members[..],
            )
        });
        let accounts = config.accounts.iter().map(|a| {
            (
                &a.email,
                &a.name,
                a.password.as_str(),
                &a.aliases[..],
                0,
                &[][..],
            )
        });
        let resources = config.resources.iter().map(|r| {
            (
                &r.email,
                &r.name,
                r.password.as_str(),
                &r.aliases[..],
                RESOURCE_TYPE,
                &[][..],
            )
        });
        for (email, name, password, extra, account_type, members) in
            accounts.chain(lists).chain(resources)
        {
            let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
            data.domains.entry(domain.to_ascii_lowercase()).or_default();
            let mut aliases = vec![local.to_string()];
            aliases.extend(extra.iter().cloned());
            data.accounts.push(Account {
                domain: domain.to_ascii_lowercase(),
                mailbox: local.to_string(),
                aliases,
                name: name.clone(),
                password: password.to_string(),
                account_type,
                password_expired: false,
                members: members.to_vec(),
                properties: config
                    .resources
                    .iter()
                    .find(|r| &r.email == email)
                    .map(|r| [("s_type".to_string(), r.s_type.to_string())].into())
                    .unwrap_or_default(),
            });
        }
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            config,
            data: Mutex::new(data),
        });
        let app = axum::Router::new()
            .route("/icewarpapi/", post(serve))
            .route("/icewarpapi", post(serve))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!("IceWarp emulator stopped: {e}");
            }
        });
        Ok(IceWarpSim {
            url,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, the server's base URL.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// `http://127.0.0.1:PORT/icewarpapi/`, where the API is posted to.
    pub fn api_url(&self) -> String {
        format!("{}/icewarpapi/", self.url)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<IceWarpRequest> {
        self.shared.data().log.clone()
    }

    /// The domains, sorted.
    pub fn domains(&self) -> Vec<String> {
        self.shared.data().domains.keys().cloned().collect()
    }

    /// Every account, in creation order.
    pub fn accounts(&self) -> Vec<Account> {
        self.shared.data().accounts.clone()
    }

    /// The account `email` answers to (primary address or any alias).
    pub fn account(&self, email: &str) -> Option<Account> {
        let data = self.shared.data();
        data.find_account(email).map(|i| data.accounts[i].clone())
    }

    /// The next `times` calls (of `command` only, when given) fail with `fault`.
    pub fn inject(&self, fault: Fault, times: usize, command: Option<&str>) {
        let mut data = self.shared.data();
        for _ in 0..times {
            data.faults
                .push((fault, command.map(str::to_ascii_lowercase)));
        }
    }

    /// Ends every session, as IceWarp does when a session expires (`persistentlogin` 0: one
    /// day, 1: 24 days; OpenAPI `/Authenticate`) or after its idle timeout.
    pub fn expire_sessions(&self) {
        self.shared.data().sessions.clear();
    }

    /// `createaccount` for this address answers 0 every time (as for `E_PLAN_EXCEEDED`).
    pub fn refuse_account(&self, email: &str) {
        self.shared.data().refused.push(email.to_ascii_lowercase());
    }

    /// Sets a server property.
    pub fn set_property(&self, name: &str, value: &str) {
        self.shared.data().set_property(name, value);
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for IceWarpSim {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What a command produced: an answer, and what the log says about it.
enum Answer {
    /// `<result>` holding these children or this text.
    Result(Node, String),
    /// `<result>0</result>`, with the reason for the log.
    Zero(String),
    /// The error envelope with this uid.
    Error(String, String),
}

async fn serve(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    let parsed = Node::parse(&body)
        .ok()
        .filter(|n| n.name.eq_ignore_ascii_case("iq") && n.child("query").is_some());
    let (command, violations) = match &parsed {
        Some(root) => api_spec().validate_request(root),
        None => (None, vec!["not an <iq><query> envelope".into()]),
    };
    let mut data = shared.data();
    let fault = data.take_fault(command.as_deref());
    let (status, sid, answer) = match (fault, &parsed) {
        (Some(Fault::Http500), _) | (Some(Fault::LostReply), None) => {
            (500, None, Answer::Zero("injected HTTP 500".into()))
        }
        (Some(Fault::LostReply), Some(root)) => {
            let command = command.clone().unwrap_or_default();
            let (_, answer) = dispatch(&shared.config, &mut data, &command, root);
            let done = match answer {
                Answer::Result(_, note) => note,
                Answer::Zero(reason) => format!("0: {reason}"),
                Answer::Error(uid, reason) => format!("error {uid}: {reason}"),
            };
            (
                500,
                None,
                Answer::Zero(format!("injected HTTP 500 after {done}")),
            )
        }
        (Some(Fault::ResultZero), _) => (200, None, Answer::Zero("injected transient 0".into())),
        (None, None) => (
            200,
            None,
            Answer::Error("iq_root_tag_invalid".into(), "not an envelope".into()),
        ),
        (None, Some(_)) if shared.config.strict_schema && !violations.is_empty() => (
            200,
            None,
            Answer::Error("schema_invalid".into(), violations.join("; ")),
        ),
        (None, Some(root)) => {
            let command = command.clone().unwrap_or_default();
            let (sid, answer) = dispatch(&shared.config, &mut data, &command, root);
            (200, sid, answer)
        }
    };
    let (response, outcome) = if status == 500 {
        let outcome = match answer {
            Answer::Zero(reason) => reason,
            _ => "injected HTTP 500".to_string(),
        };
        (String::new(), outcome)
    } else {
        envelope(sid.as_deref(), answer)
    };
    data.log.push(IceWarpRequest {
        command,
        body,
        status,
        response: response.clone(),
        outcome,
        schema_violations: violations,
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [("content-type", "text/xml; charset=utf-8")],
        response,
    )
        .into_response()
}

fn envelope(sid: Option<&str>, answer: Answer) -> (String, String) {
    let query = Node::new("query").with_attr("xmlns", "admin:iq:rpc");
    let iq = |kind: &str| {
        let mut iq = Node::new("iq");
        if let Some(sid) = sid {
            iq = iq.with_attr("sid", sid);
        }
        iq.with_attr("type", kind)
    };
    let (node, outcome) = match answer {
        Answer::Result(result, note) => (iq("result").with(query.with(result)), note),
        Answer::Zero(reason) => (
            iq("result").with(query.with(Node::leaf("result", "0"))),
            reason,
        ),
        Answer::Error(uid, reason) => (
            Node::new("iq")
                .with_attr("type", "error")
                .with(query.with(Node::new("error").with_attr("uid", &uid))),
            format!("error {uid}: {reason}"),
        ),
    };
    (node.to_xml(), outcome)
}

fn ok() -> Answer {
    Answer::Result(Node::leaf("result", "1"), "ok".into())
}

fn dispatch(
    config: &IceWarpConfig,
    data: &mut Data,
    command: &str,
    root: &Node,
) -> (Option<String>, Answer) {
    let params = root
        .child("query")
        .and_then(|q| q.child("commandparams"))
        .cloned()
        .unwrap_or_default();
    let param = |name: &str| params.text_at(name).unwrap_or("").to_string();
    if command == "authenticate" {
        // `email`: "Account username or email address - depends on server login policy"
        // (OpenAPI /Authenticate): under the username policy the administrator's username,
        // the local part of its address here.
        let login = if data.login_with_email() {
            config.admin_email.as_str()
        } else {
            config
                .admin_email
                .split_once('@')
                .map_or(config.admin_email.as_str(), |(l, _)| l)
        };
        let email_ok = param("email").eq_ignore_ascii_case(login);
        if email_ok && param("password") == config.admin_password {
            let sid = format!("{:032x}", rand::rng().random::<u128>());
            data.sessions.insert(sid.clone(), param("email"));
            return (Some(sid), ok());
        }
        return (
            None,
            Answer::Zero("wrong administrator email or password".into()),
        );
    }
    let sid = root.attr("sid").unwrap_or("").to_string();
    if !data.sessions.contains_key(&sid) {
        return (
            None,
            Answer::Error(config.session_error_uid.clone(), "no valid sid".into()),
        );
    }
    let answer = match command {
        "logout" => {
            data.sessions.remove(&sid);
            ok()
        }
        "getserverproperties" => server_properties(data, &params),
        "getdomainsinfolist" => domains_info_list(config, data, &params),
        "createdomain" => create_domain(data, &param("domainstr")),
        "getaccountsinfolist" => accounts_info_list(config, data, &params),
        "createaccount" => create_account(config, data, &params),
        "getaccountproperties" => match admin_properties(config, &params) {
            Some(answer) => answer,
            None => account_properties(data, &params),
        },
        "getdomainproperties" => domain_properties(data, &params),
        "setaccountproperties" => set_account_properties(config, data, &params),
        "getaccountfolderlist" => folder_list(config, data, &param("accountemail")),
        "addaccountmembers" => add_members(data, &params),
        "getaccountmemberinfolist" => member_list(config, data, &params),
        "expireaccountpassword" => match data.find_account(&param("accountemail")) {
            Some(i) => {
                data.accounts[i].password_expired = true;
                ok()
            }
            None => Answer::Zero("no such account".into()),
        },
        other => Answer::Error("not_implemented".into(), format!("{other} is not emulated")),
    };
    (Some(sid), answer)
}

/// `(offset, count)` of a list request; a missing or non-positive count means all, and no
/// page holds more than [`IceWarpConfig::page_limit`].
fn window(config: &IceWarpConfig, params: &Node) -> (usize, usize) {
    let num = |n: &str| params.text_at(n).and_then(|v| v.parse::<i64>().ok());
    let offset = num("offset").unwrap_or(0).max(0) as usize;
    let count = match num("count") {
        Some(c) if c > 0 => c as usize,
        _ => usize::MAX,
    };
    (offset, count.min(config.page_limit.unwrap_or(usize::MAX)))
}

fn property_item(name: &str, value: Option<Node>) -> Node {
    let (val, right) = match value {
        Some(v) => (v, "2"),
        None => (
            Node::new("propertyval").with(Node::leaf("classname", "tpropertynovalue")),
            "0",
        ),
    };
    Node::new("item")
        .with(Node::new("apiproperty").with(Node::leaf("propname", name)))
        .with(val)
        .with(Node::leaf("propertyright", right))
}

fn string_value(value: &str) -> Node {
    Node::new("propertyval")
        .with(Node::leaf("classname", "tpropertystring"))
        .with(Node::leaf("val", value))
}

fn requested_names<'a>(params: &'a Node, list: &'a str) -> Vec<String> {
    params
        .child(list)
        .into_iter()
        .flat_map(|l| l.children_named("item"))
        .filter_map(|i| i.text_at("propname"))
        .map(str::to_string)
        .collect()
}

fn server_properties(data: &Data, params: &Node) -> Answer {
    let items = requested_names(params, "serverpropertylist")
        .into_iter()
        .map(|name| {
            let value = data.property(&name).map(string_value);
            property_item(&name, value)
        });
    Answer::Result(Node::new("result").with_all(items), "ok".into())
}

/// `getdomainproperties` (OpenAPI /GetDomainProperties: `domainstr` and
/// `domainpropertylist`; "List of domain properties with its values and rights"): each name
/// with its value as set by [`IceWarpSim::set_domain_property`], `tpropertynovalue` when
/// unset. What IceWarp answers for a domain it does not have is not documented: the emulator
/// answers the error uid `domain_invalid`, which the client takes as "cannot read".
fn domain_properties(data: &Data, params: &Node) -> Answer {
    let domain = params
        .text_at("domainstr")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !data.domains.contains_key(&domain) {
        return Answer::Error("domain_invalid".into(), format!("no domain {domain}"));
    }
    let set = data.domain_properties.get(&domain);
    let items = requested_names(params, "domainpropertylist")
        .into_iter()
        .map(|name| {
            let value = set
                .and_then(|p| p.get(&name.to_ascii_lowercase()))
                .map(|v| string_value(v));
            property_item(&name, value)
        });
    Answer::Result(Node::new("result").with_all(items), "ok".into())
}

fn domains_info_list(config: &IceWarpConfig, data: &Data, params: &Node) -> Answer {
    let mask = params.text_at("filter/namemask").unwrap_or("");
    let (offset, count) = window(config, params);
    let items = data
        .domains
        .iter()
        .filter(|(name, _)| mask_matches(mask, name))
        .skip(offset)
        .take(count)
        .map(|(name, desc)| {
            let accounts = data.accounts.iter().filter(|a| &a.domain == name).count();
            Node::new("item")
                .with(Node::leaf("name", name.clone()))
                .with(Node::leaf("desc", desc.clone()))
                .with(Node::leaf(
                    "domaintype",
                    if data.domain_aliases.contains_key(name) {
                        "2"
                    } else {
                        "0"
                    },
                ))
                .with(Node::leaf("accountcount", accounts.to_string()))
        });
    Answer::Result(Node::new("result").with_all(items), "ok".into())
}

fn create_domain(data: &mut Data, name: &str) -> Answer {
    let name = name.trim().to_ascii_lowercase();
    if !valid_domain(&name) {
        return Answer::Zero(format!("E_INVALID: '{name}' is not a domain name"));
    }
    if data.domains.contains_key(&name) {
        return Answer::Zero(format!("E_CONFLICT: domain {name} exists"));
    }
    data.domains.insert(name, String::new());
    ok()
}

/// The accounts of a domain, one page. The reply ends with `offset` and `overallcount` (the
/// accounts matching in all), as IceWarp.Net's `GetAccountsInfoList.xml` fixture shows; the
/// specification's response schema does not name them (see [`spec::REPLY_EXTRAS`]).
fn accounts_info_list(config: &IceWarpConfig, data: &Data, params: &Node) -> Answer {
    let domain = params
        .text_at("domainstr")
        .unwrap_or("")
        .to_ascii_lowercase();
    let mask = params.text_at("filter/namemask").unwrap_or("");
    let (offset, count) = window(config, params);
    let matching: Vec<&Account> = data
        .accounts
        .iter()
        .filter(|a| {
            a.domain == domain && (mask_matches(mask, &a.email()) || mask_matches(mask, &a.mailbox))
        })
        .collect();
    let overall = matching.len();
    let items = matching.into_iter().skip(offset).take(count).map(|a| {
        Node::new("item")
            .with(Node::leaf("name", a.name.clone()))
            .with(Node::leaf("email", a.email()))
            .with(Node::leaf("accounttype", a.account_type.to_string()))
            .with(
                Node::new("accountstate")
                    .with(Node::leaf("classname", "taccountstate"))
                    .with(Node::leaf("state", "0")),
            )
            .with(Node::leaf("admintype", "0"))
            .with(
                Node::new("quota")
                    .with(Node::leaf("classname", "taccountquota"))
                    .with(Node::leaf("mailboxsize", "0"))
                    .with(Node::leaf("mailboxquota", "0")),
            )
    });
    let result = Node::new("result")
        .with_all(items)
        .with(Node::leaf("offset", offset.to_string()))
        .with(Node::leaf("overallcount", overall.to_string()));
    Answer::Result(result, "ok".into())
}

/// The `(lower-case name, value)` pairs of a property list (`accountproperties`,
/// `propertyvaluelist`). `taccountname` values become `name surname`.
fn property_values(list: Option<&Node>) -> Vec<(String, String)> {
    list.into_iter()
        .flat_map(|l| l.children_named("item"))
        .filter_map(|item| {
            let name = item.text_at("apiproperty/propname")?.to_ascii_lowercase();
            let val = item.child("propertyval")?;
            let value = match val.child("val") {
                Some(v) => v.text.trim().to_string(),
                None => [val.text_at("name"), val.text_at("surname")]
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            Some((name, value))
        })
        .collect()
}

fn split_aliases(value: &str) -> Vec<String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

/// Why these local names cannot belong to a new or changed account of `domain`.
fn name_conflict(
    data: &Data,
    domain: &str,
    names: &[String],
    except: Option<usize>,
) -> Option<String> {
    if let Some(bad) = names.iter().find(|n| !valid_local_name(n)) {
        return Some(format!(
            "E_INVALID: '{bad}' is not a valid mailbox or alias"
        ));
    }
    for (i, a) in data.accounts.iter().enumerate() {
        if Some(i) == except || a.domain != domain {
            continue;
        }
        if let Some(taken) = names.iter().find(|n| data.answers(a, n)) {
            return Some(format!(
                "E_CONFLICT: '{taken}@{domain}' belongs to {}",
                a.email()
            ));
        }
    }
    None
}

fn create_account(config: &IceWarpConfig, data: &mut Data, params: &Node) -> Answer {
    let domain = params
        .text_at("domainstr")
        .unwrap_or("")
        .to_ascii_lowercase();
    if !data.domains.contains_key(&domain) {
        return Answer::Zero(format!("domain {domain} does not exist"));
    }
    // Not documented: what createaccount does in a domain alias. The emulator refuses it.
    if data.domain_aliases.contains_key(&domain) {
        return Answer::Zero(format!("{domain} is a domain alias"));
    }
    let mut props = property_values(params.child("accountproperties"));
    let mut take = |name: &str| {
        props
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| props.remove(i).1)
    };
    let aliases = match alias_field(config, take("u_alias").unwrap_or_default()) {
        Ok(value) => split_aliases(&value),
        Err(why) => return Answer::Zero(why),
    };
    let Some(mailbox) = take("u_mailbox").or_else(|| aliases.first().cloned()) else {
        return Answer::Zero("E_INVALID: no u_mailbox and no u_alias".into());
    };
    let aliases = if aliases.is_empty() {
        vec![mailbox.clone()]
    } else {
        aliases
    };
    let name = take("u_name")
        .or_else(|| take("a_name"))
        .unwrap_or_default();
    let password = take("u_password").unwrap_or_default();
    let account_type = take("u_type").and_then(|t| t.parse().ok()).unwrap_or(0);
    if account_type > RESOURCE_TYPE {
        return Answer::Zero(format!("E_INVALID: U_Type {account_type}"));
    }
    // `S_Type` "Int (rtRoom, rtEquipment,rtCar)" (apiconst, Resource group): a Delphi
    // enumeration, 0 to 2. A value outside it is refused as other invalid values are
    // (`E_INVALID`, apiconst's result codes); it is kept only on a resource (`U_Type` 8).
    if let Some(s_type) = props.iter().find(|(n, _)| n == "s_type").map(|(_, v)| v) {
        if account_type != RESOURCE_TYPE || !matches!(s_type.trim(), "0" | "1" | "2") {
            return Answer::Zero(format!(
                "E_INVALID: S_Type {s_type} for an account of U_Type {account_type}"
            ));
        }
    }
    let email = format!("{}@{domain}", aliases[0]);
    if config
        .max_accounts
        .is_some_and(|max| data.accounts.len() >= max)
    {
        return Answer::Zero("E_LICENSE: licence account limit reached".into());
    }
    if data.refused.iter().any(|r| r.eq_ignore_ascii_case(&email)) {
        return Answer::Zero(format!("E_PLAN_EXCEEDED: {email} refused"));
    }
    let mut names = vec![mailbox.clone()];
    names.extend(
        aliases
            .iter()
            .filter(|a| !a.eq_ignore_ascii_case(&mailbox))
            .cloned(),
    );
    if let Some(why) = name_conflict(data, &domain, &names, None) {
        return Answer::Zero(why);
    }
    // The password policy is for accounts with a password (users and resources); lists and
    // groups have none.
    if matches!(account_type, 0 | RESOURCE_TYPE) {
        if let Some(why) = data.policy().violation(&password, &names) {
            return Answer::Zero(format!("E_PASSWORD: {why}"));
        }
    }
    data.accounts.push(Account {
        domain,
        mailbox,
        aliases,
        name,
        password,
        account_type,
        password_expired: false,
        members: Vec::new(),
        properties: props.into_iter().collect(),
    });
    ok()
}

/// `U_Type` 8: a resource (apiconst: "Enum values=(0 - User, ... 7 - Group, 8 - Resource)").
const RESOURCE_TYPE: u32 = 8;

/// True for the account types that hold members (`U_Type` 1 mailing list, 7 group; the
/// specification's AddAccountMembers: "Available for groups and mailing lists").
fn holds_members(account_type: u32) -> bool {
    matches!(account_type, 1 | 7)
}

/// `addaccountmembers`: `members` is a `tpropertymembers` whose `val` holds `tpropertymember`
/// items, each with the member's address in `val`.
fn add_members(data: &mut Data, params: &Node) -> Answer {
    let email = params.text_at("accountemail").unwrap_or("");
    let Some(i) = data.find_account(email) else {
        return Answer::Zero(format!("no account {email}"));
    };
    if !holds_members(data.accounts[i].account_type) {
        return Answer::Zero(format!("{email} is not a group or mailing list"));
    }
    let members: Vec<String> = params
        .child("members")
        .and_then(|m| m.child("val"))
        .into_iter()
        .flat_map(|v| v.children_named("item"))
        .filter_map(|item| item.text_at("val"))
        .map(|v| v.trim().to_string())
        .collect();
    if let Some(bad) = members.iter().find(|m| {
        m.rsplit_once('@')
            .is_none_or(|(l, d)| !valid_local_name(l) || !valid_domain(d))
    }) {
        return Answer::Zero(format!("E_INVALID: '{bad}' is not an address"));
    }
    data.accounts[i].members.extend(members);
    ok()
}

/// `getaccountmemberinfolist`: the members of the account `who`, paged, filtered by
/// `filter/namemask`.
fn member_list(config: &IceWarpConfig, data: &Data, params: &Node) -> Answer {
    let who = params.text_at("who").unwrap_or("");
    let Some(i) = data.find_account(who) else {
        return Answer::Error("account_invalid".into(), format!("no account {who}"));
    };
    let mask = params.text_at("filter/namemask").unwrap_or("");
    let (offset, count) = window(config, params);
    let items = data.accounts[i]
        .members
        .iter()
        .filter(|m| mask_matches(mask, m))
        .skip(offset)
        .take(count)
        .map(|m| {
            Node::new("item")
                .with(Node::leaf("val", m.clone()))
                .with(Node::leaf("default", "1"))
                .with(Node::leaf("recieve", "1"))
                .with(Node::leaf("post", "1"))
                .with(Node::leaf("digest", "0"))
                .with(Node::leaf("params", ""))
        });
    Answer::Result(Node::new("result").with_all(items), "ok".into())
}

/// `getaccountproperties` of the administrator's own address asking its rights only
/// (`U_Admin`, `U_DomainAdmin`), as [`IceWarpConfig::domain_admin`] sets them; `None` for any
/// other request.
fn admin_properties(config: &IceWarpConfig, params: &Node) -> Option<Answer> {
    let email = params.text_at("accountemail").unwrap_or("");
    let names = requested_names(params, "accountpropertylist");
    let rights_only = !names.is_empty()
        && names
            .iter()
            .all(|n| matches!(n.to_ascii_lowercase().as_str(), "u_admin" | "u_domainadmin"));
    if !email.trim().eq_ignore_ascii_case(&config.admin_email) || !rights_only {
        return None;
    }
    let items = names.into_iter().map(|name| {
        let on = match name.to_ascii_lowercase().as_str() {
            "u_admin" => !config.domain_admin,
            _ => config.domain_admin,
        };
        let value = string_value(if on { "1" } else { "0" });
        property_item(&name, Some(value))
    });
    Some(Answer::Result(
        Node::new("result").with_all(items),
        "ok".into(),
    ))
}

fn account_properties(data: &Data, params: &Node) -> Answer {
    let email = params.text_at("accountemail").unwrap_or("");
    let Some(i) = data.find_account(email) else {
        return Answer::Error("account_invalid".into(), format!("no account {email}"));
    };
    let a = &data.accounts[i];
    let items = requested_names(params, "accountpropertylist")
        .into_iter()
        .map(|name| {
            let value = match name.to_ascii_lowercase().as_str() {
                "u_alias" => Some(string_value(&a.aliases.join(";"))),
                "u_mailbox" => Some(string_value(&a.mailbox)),
                // "Read only - string which should be used for logging into API, respects
                // c_accounts_policies_login_loginsettings" (apiconst U_Login): the username
                // under the username policy (0), else the address (online help 282.htm).
                "u_login" => Some(string_value(&if data.login_with_email() {
                    a.email()
                } else {
                    a.mailbox.clone()
                })),
                "u_name" => Some(string_value(&a.name)),
                "u_type" => Some(string_value(&a.account_type.to_string())),
                "u_passwordexpired" => {
                    Some(string_value(if a.password_expired { "1" } else { "0" }))
                }
                "a_aliaslist" => Some(
                    Node::new("propertyval")
                        .with(Node::leaf("classname", "tpropertystringlist"))
                        .with(
                            Node::new("val").with_all(
                                a.aliases
                                    .iter()
                                    .map(|x| Node::leaf("item", format!("{x}@{}", a.domain))),
                            ),
                        ),
                ),
                other => a.properties.get(other).map(|v| string_value(v)),
            };
            property_item(&name, value)
        });
    Answer::Result(Node::new("result").with_all(items), "ok".into())
}

/// A `U_Alias` value as the server keeps it: at most [`ALIAS_FIELD_MAX`] characters, by
/// [`IceWarpConfig::alias_overflow`].
fn alias_field(config: &IceWarpConfig, value: String) -> Result<String, String> {
    if value.chars().count() <= ALIAS_FIELD_MAX {
        return Ok(value);
    }
    match config.alias_overflow {
        AliasOverflow::Refuse => Err(format!(
            "U_Alias of {} characters, the limit is {ALIAS_FIELD_MAX}",
            value.chars().count()
        )),
        AliasOverflow::Truncate => Ok(value.chars().take(ALIAS_FIELD_MAX).collect()),
    }
}

/// "maximal length of this field is limited to 255 characters" (online help 282.htm, U_Alias).
const ALIAS_FIELD_MAX: usize = 255;

fn set_account_properties(config: &IceWarpConfig, data: &mut Data, params: &Node) -> Answer {
    let email = params.text_at("accountemail").unwrap_or("");
    let Some(i) = data.find_account(email) else {
        return Answer::Zero(format!("no account {email}"));
    };
    let mut props = property_values(params.child("propertyvaluelist"));
    for (_, value) in props.iter_mut().filter(|(n, _)| n == "u_alias") {
        match alias_field(config, std::mem::take(value)) {
            Ok(v) => *value = v,
            Err(why) => return Answer::Zero(why),
        }
    }
    let domain = data.accounts[i].domain.clone();
    for (name, value) in &props {
        if name == "u_alias" {
            let aliases = split_aliases(value);
            if aliases.is_empty() {
                return Answer::Zero("E_INVALID: empty alias list".into());
            }
            if let Some(why) = name_conflict(data, &domain, &aliases, Some(i)) {
                return Answer::Zero(why);
            }
        }
    }
    let a = &mut data.accounts[i];
    for (name, value) in props {
        match name.as_str() {
            "u_alias" => a.aliases = split_aliases(&value),
            "u_name" | "a_name" => a.name = value,
            "u_password" => a.password = value,
            _ => {
                a.properties.insert(name, value);
            }
        }
    }
    ok()
}

fn folder_list(config: &IceWarpConfig, data: &Data, email: &str) -> Answer {
    let Some(i) = data.find_account(email) else {
        return Answer::Error("account_invalid".into(), format!("no account {email}"));
    };
    let email = data.accounts[i].email();
    let names = config
        .account_folder_names
        .iter()
        .find(|(address, _)| address.eq_ignore_ascii_case(&email))
        .map_or(&config.folder_names, |(_, names)| names);
    let items = names
        .folders()
        .into_iter()
        .map(|(name, folder_type, default_type)| {
            let prefix = if folder_type == "M" { '0' } else { '1' };
            Node::new("item")
                .with(Node::leaf("name", name.clone()))
                .with(Node::leaf("id", format!("{prefix}{}", hex(&name))))
                .with(Node::leaf("foldertype", folder_type))
                .with(Node::leaf("defaulttype", default_type))
                .with(Node::new("subfolders"))
        });
    let result = Node::new("result")
        .with(Node::leaf("name", data.accounts[i].email()))
        .with(Node::leaf("id", "2"))
        .with(Node::leaf("foldertype", "X"))
        .with(Node::new("defaulttype"))
        .with(Node::new("subfolders").with_all(items));
    Answer::Result(result, "ok".into())
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

impl IceWarpSim {
    /// Sets a property of an existing account, as an administrator would have before the
    /// migration (`U_MaxBox`, `U_WebDAV`, ...; names from icewarp-apiconst.txt). False when
    /// there is no such account.
    pub fn set_account_property(&self, email: &str, name: &str, value: &str) -> bool {
        let mut data = self.shared.data();
        let Some(i) = data.find_account(email) else {
            return false;
        };
        data.accounts[i]
            .properties
            .insert(name.to_ascii_lowercase(), value.to_string());
        true
    }

    /// Sets the domain property `name` (`D_UserMailbox`, `D_SpamDeleteOlder`, ...; apiconst)
    /// of an existing domain. False when there is no such domain.
    pub fn set_domain_property(&self, domain: &str, name: &str, value: &str) -> bool {
        let mut data = self.shared.data();
        let domain = domain.to_ascii_lowercase();
        if !data.domains.contains_key(&domain) {
            return false;
        }
        data.domain_properties
            .entry(domain)
            .or_default()
            .insert(name.to_ascii_lowercase(), value.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(sid: Option<&str>, command: &str, params: &str) -> String {
        let sid = sid.map(|s| format!(" sid=\"{s}\"")).unwrap_or_default();
        format!(
            "<iq{sid}><query xmlns=\"admin:iq:rpc\"><commandname>{command}</commandname>\
             <commandparams>{params}</commandparams></query></iq>"
        )
    }

    async fn post(sim: &IceWarpSim, body: String) -> (u16, Node) {
        let response = reqwest::Client::new()
            .post(sim.api_url())
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, Node::parse(&text).unwrap_or_default())
    }

    fn error_uid(iq: &Node) -> Option<&str> {
        iq.child("query")?.child("error")?.attr("uid")
    }

    async fn login(sim: &IceWarpSim) -> String {
        let params = "<authtype>0</authtype><email>admin@icewarp.test</email>\
                      <password>Admin-Pa55!</password><persistentlogin>0</persistentlogin>";
        let (_, iq) = post(sim, request(None, "authenticate", params)).await;
        assert_eq!(iq.text_at("query/result"), Some("1"));
        iq.attr("sid").unwrap().to_string()
    }

    fn create(mailbox: &str, alias: &str, password: &str) -> String {
        let item = |name: &str, value: &str| {
            format!(
                "<item><apiproperty><propname>{name}</propname></apiproperty><propertyval>\
                 <classname>tpropertystring</classname><val>{value}</val></propertyval></item>"
            )
        };
        format!(
            "<domainstr>contoso.com</domainstr><accountproperties>{}{}{}{}</accountproperties>",
            item("u_type", "0"),
            item("u_mailbox", mailbox),
            item("u_alias", alias),
            item("u_password", password)
        )
    }

    fn config() -> IceWarpConfig {
        IceWarpConfig {
            domains: vec!["contoso.com".into()],
            accounts: vec![AccountSpec {
                email: "old@contoso.com".into(),
                name: "Old Timer".into(),
                password: "Old-pass-1".into(),
                aliases: vec!["veteran".into()],
            }],
            ..IceWarpConfig::default()
        }
    }

    #[tokio::test]
    async fn sessions_are_required_and_wrong_passwords_get_zero_without_sid() {
        let sim = IceWarpSim::start(config()).await.unwrap();
        let bad =
            "<authtype>0</authtype><email>admin@icewarp.test</email><password>nope</password>";
        let (status, iq) = post(&sim, request(None, "authenticate", bad)).await;
        assert_eq!((status, iq.text_at("query/result")), (200, Some("0")));
        assert_eq!(iq.attr("sid"), None);
        let (_, iq) = post(&sim, request(Some("forged"), "getdomainsinfolist", "")).await;
        assert_eq!(iq.attr("type"), Some("error"));
        assert_eq!(error_uid(&iq), Some("session_invalid"));
        let (_, iq) = post(&sim, "<html/>".into()).await;
        assert_eq!(error_uid(&iq), Some("iq_root_tag_invalid"));
        let sid = login(&sim).await;
        let (_, iq) = post(&sim, request(Some(&sid), "getdomainsinfolist", "")).await;
        assert_eq!(iq.text_at("query/result/item/name"), Some("contoso.com"));
        assert_eq!(iq.text_at("query/result/item/accountcount"), Some("1"));
        let log = sim.requests();
        assert_eq!(log.len(), 5);
        assert!(log
            .iter()
            .filter(|r| r.command.is_some())
            .all(|r| r.schema_violations.is_empty()));
    }

    /// `createaccount` makes a resource (`U_Type` 8) with its `S_Type` (apiconst: rtRoom,
    /// rtEquipment, rtCar), answers both back, and refuses an `S_Type` outside 0..2 or on an
    /// account that is not a resource.
    #[tokio::test]
    async fn resources_are_created_with_their_s_type_and_a_bad_one_is_refused() {
        let sim = IceWarpSim::start(config()).await.unwrap();
        let sid = login(&sim).await;
        let resource = |mailbox: &str, u_type: &str, s_type: &str| {
            create(mailbox, mailbox, "Str0ng-Pa55!word")
                .replace("<val>0</val>", &format!("<val>{u_type}</val>"))
                .replace(
                    "</accountproperties>",
                    &format!(
                        "<item><apiproperty><propname>s_type</propname></apiproperty>\
                         <propertyval><classname>tpropertystring</classname>\
                         <val>{s_type}</val></propertyval></item></accountproperties>"
                    ),
                )
        };
        for (mailbox, u_type, s_type, result) in [
            ("room", "8", "0", "1"),
            ("beamer", "8", "1", "1"),
            ("van", "8", "3", "0"),
            ("person", "0", "1", "0"),
            ("odd", "9", "0", "0"),
        ] {
            let (_, iq) = post(
                &sim,
                request(
                    Some(&sid),
                    "createaccount",
                    &resource(mailbox, u_type, s_type),
                ),
            )
            .await;
            assert_eq!(iq.text_at("query/result"), Some(result), "{mailbox}");
        }
        let props = "<accountemail>beamer@contoso.com</accountemail><accountpropertylist>\
                     <item><propname>u_type</propname></item><item><propname>s_type</propname>\
                     </item></accountpropertylist>";
        let (_, iq) = post(&sim, request(Some(&sid), "getaccountproperties", props)).await;
        let values: Vec<&str> = iq
            .child("query")
            .and_then(|q| q.child("result"))
            .into_iter()
            .flat_map(|r| r.children_named("item"))
            .filter_map(|i| i.text_at("propertyval/val"))
            .collect();
        assert_eq!(values, ["8", "1"]);
        let list = "<domainstr>contoso.com</domainstr><offset>0</offset><count>10</count>";
        let (_, iq) = post(&sim, request(Some(&sid), "getaccountsinfolist", list)).await;
        let types: Vec<(&str, &str)> = iq
            .child("query")
            .and_then(|q| q.child("result"))
            .into_iter()
            .flat_map(|r| r.children_named("item"))
            .filter_map(|i| Some((i.text_at("email")?, i.text_at("accounttype")?)))
            .collect();
        assert_eq!(
            types,
            [
                ("old@contoso.com", "0"),
                ("room@contoso.com", "8"),
                ("beamer@contoso.com", "8")
            ]
        );
    }

    #[tokio::test]
    async fn create_account_enforces_names_policy_conflicts_and_licence() {
        let sim = IceWarpSim::start(IceWarpConfig {
            max_accounts: Some(3),
            ..config()
        })
        .await
        .unwrap();
        let sid = login(&sim).await;
        // (mailbox, aliases, password, result): policy (no digit; an alias inside the
        // password), a conflict with the pre-existing account's alias, an invalid name, a
        // success, the same mailbox again, one more, then the licence limit of 3.
        let cases = [
            ("adele", "adele;av", "Abcdefgh!", "0"),
            ("adele", "adele;av", "Xav-12345", "0"),
            ("adele", "adele;veteran", "Qq-123456", "0"),
            ("a b", "a b", "Qq-123456", "0"),
            ("adele", "adele;av", "Qq-123456", "1"),
            ("adele", "adele", "Qq-123456", "0"),
            ("bob", "bob", "Qq-123456", "1"),
            ("carol", "carol", "Qq-123456", "0"),
        ];
        for (mailbox, aliases, password, want) in cases {
            let body = request(
                Some(&sid),
                "createaccount",
                &create(mailbox, aliases, password),
            );
            let (_, iq) = post(&sim, body).await;
            assert_eq!(
                iq.text_at("query/result"),
                Some(want),
                "{mailbox} {aliases} {password}"
            );
        }
        let a = sim.account("av@contoso.com").unwrap();
        assert_eq!(
            (a.email(), a.password.as_str()),
            ("adele@contoso.com".to_string(), "Qq-123456")
        );
        let reasons: Vec<String> = sim.requests().iter().map(|r| r.outcome.clone()).collect();
        for want in [
            "digits",
            "user name or an alias",
            "E_CONFLICT",
            "E_INVALID",
            "E_LICENSE",
        ] {
            assert!(
                reasons.iter().any(|r| r.contains(want)),
                "{want}: {reasons:?}"
            );
        }
    }

    #[tokio::test]
    async fn paging_faults_and_localised_folders() {
        let mut c = config();
        c.folder_names = DefaultFolderNames::czech();
        c.accounts.extend((0..4).map(|i| AccountSpec {
            email: format!("u{i}@contoso.com"),
            name: format!("U {i}"),
            password: "x".into(),
            aliases: vec![],
        }));
        let sim = IceWarpSim::start(c).await.unwrap();
        let sid = login(&sim).await;
        let page = |offset: usize| {
            format!("<domainstr>contoso.com</domainstr><offset>{offset}</offset><count>2</count>")
        };
        let mut seen = Vec::new();
        for offset in [0, 2, 4] {
            let (_, iq) = post(
                &sim,
                request(Some(&sid), "getaccountsinfolist", &page(offset)),
            )
            .await;
            let result = iq.child("query").unwrap().child("result").unwrap();
            seen.extend(
                result
                    .children_named("item")
                    .map(|i| i.text_at("email").unwrap().to_string()),
            );
        }
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[0], "old@contoso.com");

        sim.inject(Fault::Http500, 1, None);
        sim.inject(Fault::ResultZero, 1, Some("getaccountfolderlist"));
        let body = request(
            Some(&sid),
            "getaccountfolderlist",
            "<accountemail>veteran@contoso.com</accountemail><onlydefault>1</onlydefault>",
        );
        assert_eq!(post(&sim, body.clone()).await.0, 500);
        let (_, iq) = post(&sim, body.clone()).await;
        assert_eq!(iq.text_at("query/result"), Some("0"));
        let (_, iq) = post(&sim, body).await;
        assert_eq!(iq.text_at("query/result/name"), Some("old@contoso.com"));
        let names: Vec<&str> = iq
            .child("query")
            .unwrap()
            .child("result")
            .unwrap()
            .child("subfolders")
            .unwrap()
            .children_named("item")
            .filter_map(|i| i.text_at("name"))
            .collect();
        assert!(
            names.contains(&"Odeslané") && names.contains(&"Kalendář"),
            "{names:?}"
        );
        for r in sim
            .requests()
            .iter()
            .filter(|r| r.status == 200 && r.outcome == "ok")
        {
            let command = r.command.clone().unwrap();
            let violations =
                api_spec().validate_response(&command, &Node::parse(&r.response).unwrap());
            assert!(violations.is_empty(), "{command}: {violations:?}");
        }
    }

    #[tokio::test]
    async fn lists_take_members_and_list_them_by_page() {
        let mut c = config();
        c.lists.push(ListSpec {
            email: "team@contoso.com".into(),
            name: "Team".into(),
            account_type: 7,
            members: vec!["old@contoso.com".into()],
        });
        let sim = IceWarpSim::start(c).await.unwrap();
        let sid = login(&sim).await;
        let member = |m: &str| {
            format!(
                "<item><classname>tpropertymember</classname><val>{m}</val><default>1</default>\
                 <recieve>1</recieve><post>1</post><digest>0</digest></item>"
            )
        };
        let add = |list: &str, members: &[&str]| {
            let items: String = members.iter().map(|m| member(m)).collect();
            format!(
                "<accountemail>{list}</accountemail><members><classname>tpropertymembers</classname>\
                 <val>{items}</val></members>"
            )
        };
        // A mailing list created without a password (the policy is for people's accounts).
        let item = |name: &str, value: &str| {
            format!(
                "<item><apiproperty><propname>{name}</propname></apiproperty><propertyval>\
                 <classname>tpropertystring</classname><val>{value}</val></propertyval></item>"
            )
        };
        let create = format!(
            "<domainstr>contoso.com</domainstr><accountproperties>{}{}</accountproperties>",
            item("u_type", "1"),
            item("u_alias", "news")
        );
        let cases = [
            ("createaccount", create, "1"),
            (
                "addaccountmembers",
                add("news@contoso.com", &["a@contoso.com", "b@x.org"]),
                "1",
            ),
            (
                "addaccountmembers",
                add("team@contoso.com", &["a@contoso.com", "a@contoso.com"]),
                "1",
            ),
            // A user account holds no members; a member must be an address.
            (
                "addaccountmembers",
                add("old@contoso.com", &["a@contoso.com"]),
                "0",
            ),
            (
                "addaccountmembers",
                add("news@contoso.com", &["not an address"]),
                "0",
            ),
        ];
        for (command, params, want) in cases {
            let (_, iq) = post(&sim, request(Some(&sid), command, &params)).await;
            assert_eq!(iq.text_at("query/result"), Some(want), "{params}");
        }
        assert_eq!(sim.account("news@contoso.com").unwrap().account_type, 1);
        // Duplicates are kept as given, so a client that adds one twice shows.
        assert_eq!(
            sim.account("team@contoso.com").unwrap().members,
            ["old@contoso.com", "a@contoso.com", "a@contoso.com"]
        );
        let mut seen = Vec::new();
        for offset in [0, 2] {
            let params =
                format!("<who>team@contoso.com</who><offset>{offset}</offset><count>2</count>");
            let (_, iq) = post(
                &sim,
                request(Some(&sid), "getaccountmemberinfolist", &params),
            )
            .await;
            let result = iq.child("query").unwrap().child("result").unwrap();
            seen.extend(
                result
                    .children_named("item")
                    .map(|i| i.text_at("val").unwrap().to_string()),
            );
        }
        assert_eq!(seen.len(), 3);
        for r in sim.requests() {
            assert!(r.schema_violations.is_empty(), "{:?}", r.schema_violations);
            if r.outcome == "ok" {
                let command = r.command.clone().unwrap();
                let violations =
                    api_spec().validate_response(&command, &Node::parse(&r.response).unwrap());
                assert!(violations.is_empty(), "{command}: {violations:?}");
            }
        }
    }

    /// The documented answers (`overallcount`, the 255-character `U_Alias`, pattern aliases,
    /// sessions that end) and both sides of each undocumented switch (page cap, cut or refused
    /// alias field, the session error uid).
    #[tokio::test]
    async fn paging_sessions_alias_limits_and_patterns_follow_their_switches() {
        for (overflow, uid) in [
            (AliasOverflow::Refuse, "session_invalid"),
            (AliasOverflow::Truncate, "E_AUTH"),
        ] {
            let mut c = config();
            c.page_limit = Some(2);
            c.alias_overflow = overflow;
            c.session_error_uid = uid.into();
            c.alias_patterns = vec![("support_aliases".into(), vec!["help".into()])];
            c.accounts.extend((0..4).map(|i| AccountSpec {
                email: format!("u{i}@contoso.com"),
                name: format!("U {i}"),
                password: "x".into(),
                aliases: if i == 0 {
                    vec!["[support_aliases]".into()]
                } else {
                    vec![]
                },
            }));
            let sim = IceWarpSim::start(c).await.unwrap();
            let sid = login(&sim).await;
            let page = "<domainstr>contoso.com</domainstr><offset>0</offset><count>500</count>";
            let (_, iq) = post(&sim, request(Some(&sid), "getaccountsinfolist", page)).await;
            let result = iq.child("query").unwrap().child("result").unwrap();
            assert_eq!(result.children_named("item").count(), 2);
            assert_eq!(result.text_at("overallcount"), Some("5"));
            assert_eq!(
                sim.account("help@contoso.com").unwrap().email(),
                "u0@contoso.com"
            );

            let long = (0..30).map(|i| format!("alias{i:04}")).collect::<Vec<_>>();
            let value = format!("bob;{}", long.join(";"));
            let (_, iq) = post(
                &sim,
                request(
                    Some(&sid),
                    "createaccount",
                    &create("bob", &value, "Qq-123456"),
                ),
            )
            .await;
            match overflow {
                AliasOverflow::Refuse => {
                    assert_eq!(iq.text_at("query/result"), Some("0"));
                    assert!(sim.account("bob@contoso.com").is_none());
                }
                AliasOverflow::Truncate => {
                    assert_eq!(iq.text_at("query/result"), Some("1"));
                    let bob = sim.account("bob@contoso.com").unwrap();
                    assert_eq!(bob.aliases.join(";").chars().count(), 255);
                    assert!(sim.account("alias0029@contoso.com").is_none());
                }
            }

            sim.expire_sessions();
            let (_, iq) = post(&sim, request(Some(&sid), "getdomainsinfolist", "")).await;
            assert_eq!(error_uid(&iq), Some(uid));

            let sid = login(&sim).await;
            sim.inject(Fault::LostReply, 1, Some("createdomain"));
            let body = request(
                Some(&sid),
                "createdomain",
                "<domainstr>fabrikam.com</domainstr>",
            );
            assert_eq!(post(&sim, body).await.0, 500);
            assert!(sim.domains().contains(&"fabrikam.com".to_string()));
        }
    }
}
