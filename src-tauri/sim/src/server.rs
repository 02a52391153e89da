//! The HTTP side: the token endpoint, the Graph routes, paging, `$select`, throttling as
//! Exchange Online answers it, injected faults, and the request log.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::tenant::{guid, MailFolder, Message, Tenant, User};
use crate::{Log, RequestRecord, SimConfig};

/// The permissions the simulated app was granted (the token's `roles`).
const ROLES: [&str; 7] = [
    "User.Read.All",
    "Domain.Read.All",
    "Mail.Read",
    "Calendars.Read",
    "Contacts.Read",
    "Tasks.Read.All",
    "MailboxSettings.Read",
];

pub(crate) struct State {
    pub config: SimConfig,
    pub tenant: Arc<Tenant>,
    pub url: String,
    pub client_id: String,
    pub client_secret: String,
    pub log: Log,
    tokens: Mutex<HashMap<String, Instant>>,
    mailboxes: Mutex<HashMap<String, MailboxState>>,
    rng: Mutex<StdRng>,
    /// Message id -> (user, folder, message) indexes, so `$value` is not a scan of the mailbox
    /// (a linear scan made the simulator, not the client, the bottleneck in benchmarks).
    messages: HashMap<String, (usize, usize, usize)>,
}

#[derive(Default)]
struct MailboxState {
    in_flight: u32,
    sent: VecDeque<Instant>,
}

impl State {
    pub fn new(config: SimConfig, tenant: Arc<Tenant>, url: String) -> Self {
        let mut rng = StdRng::seed_from_u64(config.tenant.seed ^ 0x5eed);
        let client_id = guid(&mut rng);
        let secret_bytes: [u8; 30] = rng.random();
        let client_secret = format!(
            "Qx8Q~{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes)
        )
        .replace(['-', '_'], ".");
        let mut messages = HashMap::new();
        for (u, user) in tenant.users.iter().enumerate() {
            for (f, folder) in user.folders.iter().enumerate() {
                for (m, message) in folder.messages.iter().enumerate() {
                    messages.entry(message.id.clone()).or_insert((u, f, m));
                }
            }
        }
        State {
            messages,
            rng: Mutex::new(StdRng::seed_from_u64(config.faults.seed)),
            config,
            tenant,
            url,
            client_id,
            client_secret,
            log: Mutex::new(Vec::new()),
            tokens: Mutex::new(HashMap::new()),
            mailboxes: Mutex::new(HashMap::new()),
        }
    }

    fn chance(&self, p: f64) -> bool {
        p > 0.0
            && self
                .rng
                .lock()
                .map(|mut r| r.random::<f64>() < p)
                .unwrap_or(false)
    }

    fn record(&self, record: RequestRecord) {
        if let Ok(mut log) = self.log.lock() {
            log.push(record);
        }
    }
}

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/v1.0/{*rest}", get(graph))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Token endpoint

fn aad_error(status: StatusCode, error: &str, code: u64, text: &str) -> Response {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let trace = format!("{:032x}", now.unix_timestamp_nanos());
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {trace} Timestamp: {stamp}"),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": trace,
    });
    (status, axum::Json(body)).into_response()
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `POST /{tenant}/oauth2/v2.0/token`, client-credentials grant, answering as Entra does
/// (entra-docs reference-error-codes.md).
async fn token(
    AxState(state): AxState<Arc<State>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let started = Instant::now();
    let response = token_response(&state, &tenant, &form);
    state.record(RequestRecord {
        at: started,
        finished: Instant::now(),
        method: "POST".into(),
        path_and_query: format!("/{tenant}/oauth2/v2.0/token"),
        mailbox: None,
        status: response.status().as_u16(),
        retry_after: None,
    });
    response
}

fn token_response(state: &State, tenant: &str, form: &HashMap<String, String>) -> Response {
    let dns = tenant.contains('.')
        && tenant
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !is_guid(tenant) && !dns {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900023,
            &format!("Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain."),
        );
    }
    let known = tenant.eq_ignore_ascii_case(&state.tenant.id)
        || state
            .tenant
            .domains
            .iter()
            .any(|d| d.id.eq_ignore_ascii_case(tenant));
    if !known {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let client_id = form.get("client_id").map(String::as_str).unwrap_or("");
    if client_id != state.client_id {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        );
    }
    if form.get("client_secret").map(String::as_str) != Some(state.client_secret.as_str()) {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
        );
    }
    if !form
        .get("scope")
        .is_some_and(|s| s.trim().ends_with("/.default"))
    {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
        );
    }
    let lifetime = state.config.token_lifetime;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"none"}"#);
    let jti: u64 = state.rng.lock().map(|mut r| r.random()).unwrap_or(0);
    let payload = json!({
        "aud": "https://graph.microsoft.com", "iat": now, "nbf": now,
        "exp": now + lifetime.as_secs() as i64, "tid": state.tenant.id,
        "appid": state.client_id, "roles": ROLES, "jti": format!("{jti:x}"),
    });
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    let access_token = format!("{header}.{payload}.c2ln");
    if let Ok(mut tokens) = state.tokens.lock() {
        tokens.insert(access_token.clone(), Instant::now() + lifetime);
    }
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": access_token,
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Graph

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message,
        "innerError": {"date": time::OffsetDateTime::now_utc().unix_timestamp(), "request-id": "00000000-0000-0000-0000-000000000000"}}});
    (status, axum::Json(body)).into_response()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_map(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

/// Releases a mailbox's in-flight slot when dropped (after the body is sent).
struct Slot {
    state: Arc<State>,
    mailbox: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.state.mailboxes.lock() {
            if let Some(s) = m.get_mut(&self.mailbox) {
                s.in_flight = s.in_flight.saturating_sub(1);
            }
        }
    }
}

/// A 429 to send: the `Retry-After` seconds and Exchange's message.
struct Throttle {
    retry_after: f64,
    message: &'static str,
}

impl Throttle {
    fn response(&self) -> Response {
        let mut r = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            self.message,
        );
        if let Ok(v) = HeaderValue::from_str(&format!("{}", self.retry_after)) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

/// Admits a request to a mailbox, or says how Exchange Online would answer 429.
fn admit(state: &Arc<State>, mailbox: &str) -> Result<Option<Slot>, Throttle> {
    let Some(limits) = &state.config.limits else {
        return Ok(None);
    };
    let Ok(mut all) = state.mailboxes.lock() else {
        return Ok(None);
    };
    let m = all.entry(mailbox.to_string()).or_default();
    let now = Instant::now();
    while m
        .sent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= limits.window)
    {
        m.sent.pop_front();
    }
    if m.in_flight >= limits.max_in_flight {
        return Err(Throttle {
            retry_after: 1.0,
            message: "Application is over its MailboxConcurrency limit.",
        });
    }
    if m.sent.len() as u32 >= limits.budget {
        let oldest = m.sent.front().copied().unwrap_or(now);
        let wait = (oldest + limits.window).saturating_duration_since(now);
        return Err(Throttle {
            retry_after: wait.as_secs_f64().ceil().max(1.0),
            message: "Application is over its RequestRate limit.",
        });
    }
    m.in_flight += 1;
    m.sent.push_back(now);
    Ok(Some(Slot {
        state: state.clone(),
        mailbox: mailbox.to_string(),
    }))
}

async fn graph(AxState(state): AxState<Arc<State>>, uri: Uri, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let path: Vec<String> = uri
        .path()
        .trim_start_matches("/v1.0/")
        .split('/')
        .map(percent_decode)
        .collect();
    let user = (path.first().map(String::as_str) == Some("users") && path.len() > 1)
        .then(|| find_user(&state.tenant, &path[1]))
        .flatten();
    let (response, retry_after) = answer(&state, &uri, &headers, &path, user).await;
    let mut response = response;
    response.headers_mut().insert(
        "request-id",
        HeaderValue::from_static("00000000-0000-0000-0000-000000000000"),
    );
    state.record(RequestRecord {
        at: started,
        finished: Instant::now(),
        method: "GET".into(),
        path_and_query: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        mailbox: user.map(|u| u.id.clone()),
        status: response.status().as_u16(),
        retry_after,
    });
    response
}

fn find_user<'a>(tenant: &'a Tenant, key: &str) -> Option<&'a User> {
    tenant
        .users
        .iter()
        .find(|u| u.id.eq_ignore_ascii_case(key) || u.user_principal_name.eq_ignore_ascii_case(key))
}

async fn answer(
    state: &Arc<State>,
    uri: &Uri,
    headers: &HeaderMap,
    path: &[String],
    user: Option<&User>,
) -> (Response, Option<f64>) {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = bearer.is_some_and(|t| {
        state
            .tokens
            .lock()
            .map(|tokens| tokens.get(t).is_some_and(|exp| *exp > Instant::now()))
            .unwrap_or(false)
    });
    if !valid {
        let message = if bearer.is_some() {
            "Access token has expired or is not yet valid."
        } else {
            "Access token is empty."
        };
        return (
            graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                message,
            ),
            None,
        );
    }
    let slot = match user {
        Some(u) if path.len() > 2 => match admit(state, &u.id) {
            Ok(slot) => slot,
            Err(throttle) => return (throttle.response(), Some(throttle.retry_after)),
        },
        _ => None,
    };
    let cfg = &state.config;
    if !cfg.latency.is_zero() || !cfg.jitter.is_zero() {
        let jitter = cfg.jitter.as_secs_f64();
        let offset = state
            .rng
            .lock()
            .map(|mut r| r.random_range(-jitter..=jitter))
            .unwrap_or(0.0);
        let delay = (cfg.latency.as_secs_f64() + offset).max(0.0);
        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
    }
    let faults = &cfg.faults;
    if state.chance(faults.error_rate_429) {
        let mut r = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return (r, Some(1.0));
    }
    if state.chance(faults.error_rate_503) {
        let mut r = graph_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Service unavailable.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return (r, Some(1.0));
    }
    if state.chance(faults.error_rate_504) {
        return (
            graph_error(
                StatusCode::GATEWAY_TIMEOUT,
                "GatewayTimeout",
                "Gateway timeout.",
            ),
            None,
        );
    }
    (route(state, uri, path, user, slot), None)
}

fn route(
    state: &Arc<State>,
    uri: &Uri,
    path: &[String],
    user: Option<&User>,
    slot: Option<Slot>,
) -> Response {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let tenant = &state.tenant;
    let not_found = || {
        graph_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    };
    if p.first() == Some(&"users") && p.len() > 1 && user.is_none() {
        return graph_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("User not found: {}", p[1]),
        );
    }
    let hidden = query_map(uri)
        .iter()
        .any(|(k, v)| k == "includeHiddenFolders" && v == "true");
    let folder_of = |u: &'_ User, key: &str| -> Option<usize> {
        u.folders.iter().position(|f| {
            f.id == key
                || f.well_known_name
                    .as_deref()
                    .is_some_and(|w| w.eq_ignore_ascii_case(key))
        })
    };
    let children = |u: &'_ User, parent: Option<&str>| -> Vec<Value> {
        u.folders
            .iter()
            .filter(|f| f.parent_id.as_deref() == parent && (hidden || !f.is_hidden))
            .map(|f| folder_json(u, f))
            .collect()
    };
    match (p.as_slice(), user) {
        (["users"], _) => page(state, uri, tenant.users.iter().map(user_json).collect(), 100, 999),
        (["users", _], Some(u)) => single(uri, user_json(u)),
        (["domains"], _) => page(state, uri, tenant.domains.iter().map(|d| json!({"id": d.id, "isDefault": d.is_default, "isInitial": d.is_initial, "isVerified": d.is_verified, "authenticationType": "Managed"})).collect(), 100, 999),
        (["users", _, "mailFolders"], Some(u)) => page(state, uri, children(u, None), 10, 1000),
        (["users", _, "mailFolders", f], Some(u)) => match folder_of(u, f) {
            Some(i) => single(uri, folder_json(u, &u.folders[i])),
            None => not_found(),
        },
        (["users", _, "mailFolders", f, "childFolders"], Some(u)) => match folder_of(u, f) {
            Some(i) => page(state, uri, children(u, Some(&u.folders[i].id)), 10, 1000),
            None => not_found(),
        },
        (["users", _, "mailFolders", f, "messages"], Some(u)) => match folder_of(u, f) {
            Some(i) => {
                let folder = &u.folders[i];
                page(state, uri, folder.messages.iter().map(|m| message_json(folder, m)).collect(), 10, 1000)
            }
            None => not_found(),
        },
        (["users", _, "messages", m, "$value"], Some(u))
        | (["users", _, "mailFolders", _, "messages", m, "$value"], Some(u)) => {
            let found = state
                .messages
                .get(*m)
                .and_then(|&(ui, f, i)| {
                    let owner = tenant.users.get(ui)?;
                    (owner.id == u.id).then_some(owner.folders.get(f)?.messages.get(i)?)
                });
            match found {
                Some(message) => mime_response(state, message, slot),
                None => not_found(),
            }
        }
        (["users", _, "mailboxSettings"], Some(_)) => axum::Json(json!({"timeZone": "W. Europe Standard Time", "language": {"locale": "en-US"}})).into_response(),
        (["users", _, "calendars"], Some(_))
        | (["users", _, "contactFolders"], Some(_))
        | (["users", _, "todo", "lists"], Some(_)) => axum::Json(json!({"value": []})).into_response(),
        _ => graph_error(StatusCode::BAD_REQUEST, "BadRequest", &format!("Resource not found for the segment '{}'.", p.last().unwrap_or(&""))),
    }
}

fn user_json(u: &User) -> Value {
    json!({"id": u.id, "userPrincipalName": u.user_principal_name, "mail": u.mail,
           "displayName": u.display_name, "accountEnabled": u.account_enabled,
           "proxyAddresses": u.proxy_addresses})
}

fn folder_json(u: &User, f: &MailFolder) -> Value {
    let kind = if f.is_search_folder {
        "#microsoft.graph.mailSearchFolder"
    } else {
        "#microsoft.graph.mailFolder"
    };
    json!({"@odata.type": kind, "id": f.id, "displayName": f.display_name,
           "parentFolderId": f.parent_id.clone().unwrap_or_else(|| format!("root-{}", u.id)),
           "childFolderCount": u.folders.iter().filter(|c| c.parent_id.as_deref() == Some(f.id.as_str())).count(),
           "totalItemCount": f.messages.len(),
           "unreadItemCount": f.messages.iter().filter(|m| !m.is_read).count(),
           "isHidden": f.is_hidden})
}

fn message_json(f: &MailFolder, m: &Message) -> Value {
    let received = m
        .received
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({"id": m.id, "receivedDateTime": received, "sentDateTime": received,
           "subject": m.subject, "isRead": m.is_read, "isDraft": m.is_draft,
           "importance": m.importance, "flag": {"flagStatus": m.flag_status},
           "categories": m.categories, "internetMessageId": m.internet_message_id,
           "parentFolderId": f.id})
}

/// Applies `$select` (keeping `id` and `@odata.*`).
fn select(uri: &Uri, value: Value) -> Value {
    let Some((_, fields)) = query_map(uri).into_iter().find(|(k, _)| k == "$select") else {
        return value;
    };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| {
                    k == "id" || k.starts_with("@odata") || wanted.contains(&k.as_str())
                })
                .collect::<Map<String, Value>>(),
        ),
        other => other,
    }
}

fn single(uri: &Uri, value: Value) -> Response {
    axum::Json(select(uri, value)).into_response()
}

/// A collection page: `$top` (default, max), an opaque `$skiptoken`, absolute nextLink.
fn page(
    state: &State,
    uri: &Uri,
    items: Vec<Value>,
    default_top: usize,
    max_top: usize,
) -> Response {
    let query = query_map(uri);
    let top = query
        .iter()
        .find(|(k, _)| k == "$top")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(default_top)
        .clamp(1, max_top);
    let skip = query
        .iter()
        .find(|(k, _)| k == "$skiptoken")
        .and_then(|(_, v)| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(v)
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.strip_prefix("offset:")
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or(0);
    let total = items.len();
    let value: Vec<Value> = items
        .into_iter()
        .skip(skip)
        .take(top)
        .map(|v| select(uri, v))
        .collect();
    let mut body =
        json!({"@odata.context": format!("{}/v1.0/$metadata", state.url), "value": value});
    if skip + top < total {
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("offset:{}", skip + top));
        let kept: Vec<String> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| {
                !p.is_empty() && !p.starts_with("$skiptoken=") && !p.starts_with("%24skiptoken=")
            })
            .map(str::to_string)
            .collect();
        let mut next = format!("{}{}?", state.url, uri.path());
        for k in kept {
            next.push_str(&k);
            next.push('&');
        }
        next.push_str(&format!("$skiptoken={token}"));
        body["@odata.nextLink"] = Value::String(next);
    }
    axum::Json(body).into_response()
}

/// The message's MIME, streamed in chunks with its Content-Length. Faults may cut it short.
fn mime_response(state: &Arc<State>, message: &Message, slot: Option<Slot>) -> Response {
    let faults = &state.config.faults;
    if faults
        .value_fails_above
        .is_some_and(|max| message.mime.len() as u64 > max)
    {
        return graph_error(
            StatusCode::GATEWAY_TIMEOUT,
            "GatewayTimeout",
            "The request timed out.",
        );
    }
    let cut = state.chance(faults.reset_rate);
    let bytes = message.mime.clone();
    let len = bytes.len();
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = {
        let mut v = Vec::new();
        let mut at = 0;
        while at < len {
            let end = (at + 16 * 1024).min(len);
            if cut && at >= len / 2 {
                v.push(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated reset",
                )));
                break;
            }
            v.push(Ok(bytes.slice(at..end)));
            at = end;
        }
        if cut && len < 2 {
            v.push(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "simulated reset",
            )));
        }
        v
    };
    let stream = futures_util::stream::iter(chunks);
    // The slot is released when the body has been sent (or dropped).
    let stream = futures_util::StreamExt::chain(
        stream,
        futures_util::stream::once(async move {
            drop(slot);
            Ok::<bytes::Bytes, std::io::Error>(bytes::Bytes::new())
        }),
    );
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}
