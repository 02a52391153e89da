//! The Microsoft Graph routes: users, domains, mail folders, messages and their MIME
//! (`$value`), with paging, `$select`, the `Prefer` headers, and Graph's error shapes.
//!
//! Order of checks for each request: bearer token (401), permission in the token's roles
//! (403), the mailbox's throttling limits (429), latency, injected faults, then the answer.
//! Sources are the Graph docs pages named at each function (shared reference graph.md).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::{json, Map, Value};

use crate::server::{Finish, MailboxKey, RequestIds, State, View};
use crate::tenant::{MailFolder, Message, Tenant, User};
use crate::throttle::{self, Slot};
use crate::token;

/// Graph's error JSON: `{"error":{"code","message","innerError":{date,request-id,…}}}`
/// (Graph docs concepts/errors.md).
pub(crate) fn error(ids: &RequestIds, status: StatusCode, code: &str, message: &str) -> Response {
    let date = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let body = json!({"error": {"code": code, "message": message, "innerError": {
        "date": date,
        "request-id": ids.request_id,
        "client-request-id": ids.client_request_id,
    }}});
    (status, axum::Json(body)).into_response()
}

/// Anything outside `/v1.0`, `/beta` and the token endpoint.
pub(crate) async fn unknown(Extension(ids): Extension<RequestIds>, uri: Uri) -> Response {
    error(
        &ids,
        StatusCode::NOT_FOUND,
        "BadRequest",
        &format!(
            "Invalid version: {}",
            uri.path()
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("")
        ),
    )
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
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

/// Encodes a path segment (RFC 3986 unreserved characters stay).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The query string's parameters, decoded (`+` is a space).
pub(crate) fn query(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(crate) fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What the `Prefer` headers ask for (Graph docs concepts/outlook-immutable-id.md,
/// api/user-list-messages.md §Request headers).
#[derive(Default, Debug)]
pub(crate) struct Prefer {
    pub immutable_ids: bool,
    pub max_page_size: Option<usize>,
    /// `outlook.timezone`: the zone event times are rendered in (Graph docs
    /// api/event-get.md §Request headers; default UTC).
    pub time_zone: Option<String>,
}

impl Prefer {
    /// Reads the *first* `Prefer` header line only, with its comma-separated preferences.
    /// RFC 7240 §2 allows either one line with several preferences or several lines, but
    /// Microsoft's docs and SDKs send one comma-separated line (graph-docs issue #7229,
    /// "Prefer header with two values"; msgraph-sdk-javascript#1048: of repeated `Prefer`
    /// headers only one took effect). A strict server that keeps one line makes a client
    /// splitting its preferences over several lines lose all but the first.
    fn parse(headers: &HeaderMap) -> Prefer {
        let mut p = Prefer::default();
        if let Some(value) = headers.get("prefer") {
            let value = value.to_str().unwrap_or("");
            for item in value.split(',') {
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                let (k, v) = (k.trim(), v.trim().trim_matches('"'));
                if k.eq_ignore_ascii_case("IdType") && v.eq_ignore_ascii_case("ImmutableId") {
                    p.immutable_ids = true;
                } else if k.eq_ignore_ascii_case("outlook.timezone")
                    && crate::calendar::named_zone(v).is_some()
                {
                    // An unknown zone is not applied: times stay in UTC.
                    p.time_zone = Some(v.to_string());
                } else if k.eq_ignore_ascii_case("odata.maxpagesize") {
                    p.max_page_size = v.parse::<usize>().ok().filter(|n| *n > 0);
                }
            }
        }
        p
    }

    fn applied(&self, used_page_size: bool) -> Option<String> {
        let mut parts = Vec::new();
        if used_page_size {
            if let Some(n) = self.max_page_size {
                parts.push(format!("odata.maxpagesize={n}"));
            }
        }
        if self.immutable_ids {
            parts.push("IdType=\"ImmutableId\"".to_string());
        }
        if let Some(zone) = &self.time_zone {
            parts.push(format!("outlook.timezone=\"{zone}\""));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// Everything a route needs about the request.
pub(crate) struct Ctx<'a> {
    pub state: &'a Arc<State>,
    pub ids: &'a RequestIds,
    pub uri: &'a Uri,
    pub query: Vec<(String, String)>,
    pub prefer: Prefer,
    /// The path as the client wrote it, from the version segment on (`/v1.0/users/…`).
    pub path: String,
    /// The tenant version this request is served from.
    pub view: &'a View,
}

impl Ctx<'_> {
    /// True when the app may read item bodies of `workload` (`Mail` or `Calendars`): it holds
    /// `<workload>.Read` or `.ReadWrite`, not only the basic permission, which leaves out
    /// body, bodyPreview and attachments (Graph docs permissions-reference.md).
    pub fn reads_bodies(&self, workload: &str) -> bool {
        let roles = &self.state.config.roles;
        [format!("{workload}.Read"), format!("{workload}.ReadWrite")]
            .iter()
            .any(|full| roles.iter().any(|r| r == full))
    }

    pub fn error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        error(self.ids, status, code, message)
    }

    fn not_found(&self) -> Response {
        self.error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    /// Page size: `$top`, else `Prefer: odata.maxpagesize`, else the default; at most `max`.
    /// Returns what decided it.
    pub fn page_size(&self, default: usize, max: usize) -> (usize, crate::PageSizeBy) {
        if let Some(top) = param(&self.query, "$top").and_then(|v| v.parse::<usize>().ok()) {
            return (top.clamp(1, max), crate::PageSizeBy::Top);
        }
        match self.prefer.max_page_size {
            Some(n) => (n.clamp(1, max), crate::PageSizeBy::Prefer),
            None => (default, crate::PageSizeBy::ServerDefault),
        }
    }

    /// A collection page's response, marked for the request log with what sized it.
    pub fn page_response(&self, body: Value, by: crate::PageSizeBy) -> Response {
        let mut response = self.with_preference(
            axum::Json(body).into_response(),
            by == crate::PageSizeBy::Prefer,
        );
        response.extensions_mut().insert(by);
        response
    }

    /// The `$select` list, if any.
    pub fn select(&self) -> Option<Vec<String>> {
        param(&self.query, "$select").map(|s| {
            s.split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect()
        })
    }

    /// `{url}{path}?{query without $skiptoken}&$skiptoken={token}`: an absolute link.
    pub fn next_link(&self, skiptoken: &str) -> String {
        let kept: Vec<&str> = self
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| {
                let name = percent_decode(p.split('=').next().unwrap_or(""));
                !p.is_empty() && !name.eq_ignore_ascii_case("$skiptoken")
            })
            .collect();
        let mut link = format!("{}{}?", self.state.url, self.path);
        for k in kept {
            link.push_str(k);
            link.push('&');
        }
        link.push_str("$skiptoken=");
        link.push_str(skiptoken);
        link
    }

    pub fn with_preference(&self, mut response: Response, used_page_size: bool) -> Response {
        if let Some(applied) = self.prefer.applied(used_page_size) {
            if let Ok(v) = HeaderValue::from_str(&applied) {
                response.headers_mut().insert("preference-applied", v);
            }
        }
        response
    }
}

/// Offset in an opaque `$skiptoken`.
fn skip_of(ctx: &Ctx<'_>) -> usize {
    param(&ctx.query, "$skiptoken")
        .and_then(|v| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(v)
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("skip:").and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// A page of a collection: `value`, and an absolute `@odata.nextLink` with an opaque
/// `$skiptoken` while more remain (Graph docs concepts/paging.md).
pub(crate) fn page<T>(
    ctx: &Ctx<'_>,
    context: &str,
    items: &[T],
    default_top: usize,
    max_top: usize,
    render: impl Fn(&T) -> Value,
) -> Response {
    let (top, by) = ctx.page_size(default_top, max_top);
    let skip = skip_of(ctx);
    let value: Vec<Value> = items.iter().skip(skip).take(top).map(render).collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(format!("{}/v1.0/$metadata#{context}", ctx.state.url)),
    );
    body.insert("value".into(), Value::Array(value));
    if skip + top < items.len() {
        // See `Faults::repeat_page_item`: the next page starts on this page's last item.
        let repeat = ctx.state.config.faults.repeat_page_item && top >= 2;
        let next = skip + top - usize::from(repeat);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("skip:{next}"));
        body.insert(
            "@odata.nextLink".into(),
            Value::String(ctx.next_link(&token)),
        );
    }
    ctx.page_response(Value::Object(body), by)
}

/// Keeps the `$select`ed properties (and `id`, `@odata.*`, `@removed`, always returned).
pub(crate) fn select(fields: Option<&[String]>, value: Value) -> Value {
    let (Some(fields), Value::Object(map)) = (fields, &value) else {
        return value;
    };
    Value::Object(
        map.iter()
            .filter(|(k, _)| {
                k.as_str() == "id"
                    || k.starts_with('@')
                    || fields.iter().any(|f| f.eq_ignore_ascii_case(k))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// `$select` names a property the type does not have: 400, as Graph answers.
pub(crate) fn unknown_property(ctx: &Ctx<'_>, known: &[&str], kind: &str) -> Option<Response> {
    let fields = ctx.select()?;
    let bad = fields
        .iter()
        .find(|f| !known.iter().any(|k| k.eq_ignore_ascii_case(f)))?;
    Some(ctx.error(
        StatusCode::BAD_REQUEST,
        "RequestBroker--ParseUri",
        &format!("Could not find a property named '{bad}' on type 'microsoft.graph.{kind}'."),
    ))
}

/// The permission a path needs, and how Graph words the 403.
fn required_role(path: &[String]) -> Option<(&'static [&'static str], &'static str, &'static str)> {
    const DIRECTORY: (&str, &str) = (
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    );
    const EXCHANGE: (&str, &str) = (
        "ErrorAccessDenied",
        "Access is denied. Check credentials and try again.",
    );
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let (roles, (code, message)): (&'static [&'static str], _) = match p.as_slice() {
        ["users"] | ["users", _] => (&["User.Read.All", "Directory.Read.All"], DIRECTORY),
        ["domains", ..] => (&["Domain.Read.All", "Directory.Read.All"], DIRECTORY),
        // api/group-list.md, api/group-list-members.md.
        ["groups", _, "members"] => (
            &[
                "GroupMember.Read.All",
                "Group.Read.All",
                "Directory.Read.All",
            ],
            DIRECTORY,
        ),
        ["groups", ..] => (&["Group.Read.All", "Directory.Read.All"], DIRECTORY),
        // A message's MIME and attachments are its body: Mail.ReadBasic.All, which "includes
        // all properties except body, previewBody, attachments, and any extended properties"
        // (Graph docs permissions-reference.md), does not reach them.
        ["users", _, "mailFolders" | "messages", .., "$value"]
        | ["users", _, "mailFolders" | "messages", .., "attachments"]
        | ["users", _, "mailFolders" | "messages", .., "attachments", _] => {
            (&["Mail.Read", "Mail.ReadWrite"], EXCHANGE)
        }
        // Listing folders and messages works with the basic permission too (api/message-get.md
        // names Mail.ReadBasic.All for an application).
        ["users", _, "mailFolders", ..] | ["users", _, "messages", ..] => (
            &["Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic.All"],
            EXCHANGE,
        ),
        ["users", _, "mailboxSettings", ..] => (&["MailboxSettings.Read"], EXCHANGE),
        // The permission table of the exchangeSettings listing is not in our reference; this
        // asks for what mailboxSettings needs, and the client reads a 403 as "not known".
        ["users", _, "settings", ..] => (&["MailboxSettings.Read"], EXCHANGE),
        ["users", _, "calendars" | "calendar" | "events", .., "attachments"]
        | ["users", _, "calendars" | "calendar" | "events", .., "attachments", _] => {
            (&["Calendars.Read", "Calendars.ReadWrite"], EXCHANGE)
        }
        ["users", _, "calendars", ..]
        | ["users", _, "calendar", ..]
        | ["users", _, "events", ..]
        | ["users", _, "calendarGroups", ..]
        | ["users", _, "calendarView", ..] => (
            // Calendars.ReadBasic.All gives events without their body and attachments
            // (Graph docs permissions-reference.md; [`Ctx::reads_bodies`]).
            &[
                "Calendars.Read",
                "Calendars.ReadWrite",
                "Calendars.ReadBasic.All",
            ],
            EXCHANGE,
        ),
        ["users", _, "contactFolders", ..] | ["users", _, "contacts", ..] => {
            (&["Contacts.Read", "Contacts.ReadWrite"], EXCHANGE)
        }
        // To Do has its own permissions (api/todo-list-lists.md: Tasks.Read.All for apps).
        ["users", _, "todo", ..] => (&["Tasks.Read.All", "Tasks.ReadWrite.All"], EXCHANGE),
        _ => return None,
    };
    Some((roles, code, message))
}

/// Splits `/v1.0/users('x')/mailFolders/…` into decoded segments `users`, `x`, `mailFolders`.
fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in path.split('/').skip(2).filter(|s| !s.is_empty()) {
        let s = percent_decode(raw);
        match s.split_once("('") {
            Some((name, rest)) if s.ends_with("')") => {
                out.push(name.to_string());
                out.push(rest.trim_end_matches("')").to_string());
            }
            _ => out.push(s),
        }
    }
    out
}

/// `GET /v1.0/…` (and `/beta/…`, served the same).
pub(crate) async fn graph(
    AxState(state): AxState<Arc<State>>,
    Extension(ids): Extension<RequestIds>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = segments(uri.path());
    let view = state.view();
    let user = (path.first().map(String::as_str) == Some("users") && path.len() > 1)
        .then(|| view.user(&path[1]))
        .flatten();
    let mailbox = match (user, path.get(1)) {
        (Some(u), _) => Some(u.id.clone()),
        (None, Some(raw)) if path[0] == "users" => Some(raw.clone()),
        _ => None,
    };
    // Graph's global limit per app comes before any service's own (throttling-limits.md).
    let (mut response, slot) = match throttle::admit_app(&state) {
        Ok(used) => {
            let (mut response, slot) =
                answer(&state, &ids, &method, &uri, &headers, &path, &view, user).await;
            throttle::announce(&mut response, used);
            (response, slot)
        }
        Err(response) => (*response, None),
    };
    if let Some(m) = mailbox {
        response.extensions_mut().insert(MailboxKey(m));
    }
    // Graph labels its JSON with the OData parameters; clients must accept them.
    if response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/json")
    {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(
                "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
            ),
        );
    }
    match slot {
        // The in-flight slot is held until the body has been sent.
        Some(slot) => {
            let (parts, body) = response.into_parts();
            let body = Finish::wrap(body, Box::new(move || drop(slot)));
            Response::from_parts(parts, body)
        }
        None => response,
    }
}

#[allow(clippy::too_many_arguments)]
async fn answer(
    state: &Arc<State>,
    ids: &RequestIds,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    path: &[String],
    view: &View,
    user: Option<&User>,
) -> (Response, Option<Slot>) {
    if let Err(message) = token::check_bearer(state, headers) {
        let mut r = error(
            ids,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
            ),
        );
        return (r, None);
    }
    if state.config.roles.is_empty() {
        return (
            error(
                ids,
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "Either scp or roles claim need to be present in the token.",
            ),
            None,
        );
    }
    if let Some((roles, code, message)) = required_role(path) {
        if !roles
            .iter()
            .any(|r| state.config.roles.iter().any(|g| g == r))
        {
            return (error(ids, StatusCode::FORBIDDEN, code, message), None);
        }
    }
    if method != Method::GET {
        return (
            error(
                ids,
                StatusCode::METHOD_NOT_ALLOWED,
                "ErrorInvalidRequest",
                "The OData request is not supported.",
            ),
            None,
        );
    }
    // Outlook resources count against the mailbox's limits; the user object itself is a
    // directory call and does not.
    let slot = match user {
        Some(u) if path.len() > 2 => match throttle::admit(state, &u.id) {
            Ok(slot) => slot,
            Err(response) => return (*response, None),
        },
        _ => None,
    };
    throttle::latency(state).await;
    if let Some(fault) = throttle::injected(state, |s, c, m| error(ids, s, c, m)) {
        return (fault, slot);
    }
    if let Some(missing) = absent_in_cloud(state, uri, path) {
        return (
            error(
                ids,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Resource not found for the segment '{missing}'."),
            ),
            slot,
        );
    }
    let ctx = Ctx {
        state,
        ids,
        uri,
        query: query(uri),
        prefer: Prefer::parse(headers),
        path: uri.path().to_string(),
        view,
    };
    (route(&ctx, path, &view.tenant, user), slot)
}

/// The segment of an API the tenant's cloud does not serve, per the "national cloud
/// deployments" table of its page: in China (21Vianet) the To Do API (api/todo-list-lists.md,
/// api/todotask-delta.md: "China operated by 21Vianet ❌") and v1.0 message delta
/// (api/message-delta.md in v1.0 ❌, in beta ✅). How the service answers such a request is
/// not documented; this answers as Graph does a segment it does not know (400), and the
/// client must not depend on it: it never sends them there.
fn absent_in_cloud<'p>(state: &State, uri: &Uri, path: &'p [String]) -> Option<&'p str> {
    if state.config.cloud != crate::NationalCloud::China {
        return None;
    }
    let todo = path.iter().find(|s| s.as_str() == "todo");
    let v1 = uri.path().starts_with("/v1.0/");
    let message_delta = v1
        && path.len() >= 2
        && path[path.len() - 1] == "delta"
        && path[path.len() - 2] == "messages";
    todo.or(message_delta.then(|| &path[path.len() - 1]))
        .map(String::as_str)
}

/// A folder by id or well-known name (Graph docs resources/mailfolder.md: well-known names
/// are case-insensitive and usable in place of an id).
pub(crate) fn find_folder<'a>(u: &'a User, key: &str) -> Option<&'a MailFolder> {
    u.folders.iter().find(|f| {
        f.id == key
            || f.well_known_name
                .as_deref()
                .is_some_and(|w| w.eq_ignore_ascii_case(key))
    })
}

/// The id of the user's msgfolderroot ("Top of Information Store").
pub(crate) fn root_id(u: &User) -> String {
    format!(
        "AAMkAGI2TG93AAAuAAAAAAA{}AAEBAAA=",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(u.id.as_bytes())
    )
}

/// Where a request for folder `key` points.
enum FolderRef<'a> {
    Root,
    Folder(&'a MailFolder),
}

fn resolve_folder<'a>(u: &'a User, key: &str) -> Option<FolderRef<'a>> {
    if key.eq_ignore_ascii_case("msgfolderroot") || key == root_id(u) {
        return Some(FolderRef::Root);
    }
    find_folder(u, key).map(FolderRef::Folder)
}

/// FNV-1a, for change keys and id checksums (stable within and across runs).
pub(crate) fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A message's id as the client sees it: the immutable id with `Prefer: IdType="ImmutableId"`,
/// else a REST id that embeds the folder, so it changes when the message moves (Graph docs
/// concepts/outlook-immutable-id.md).
pub(crate) fn wire_id(id: &str, folder: &MailFolder, immutable: bool) -> String {
    if immutable {
        return id.to_string();
    }
    let mut raw = fnv(&[folder.id.as_bytes()]).to_be_bytes().to_vec();
    raw.extend_from_slice(id.as_bytes());
    format!(
        "AAMkAGI2{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

/// Finds a message by either form of its id (immutable ids are accepted with or without the
/// Prefer header). A REST id of a message that has since moved no longer resolves.
pub(crate) fn find_message<'a>(
    view: &'a View,
    u: &User,
    key: &str,
) -> Option<(&'a MailFolder, &'a Message)> {
    let (folder_hash, immutable) = match key
        .strip_prefix("AAMkAGI2")
        .and_then(|rest| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(rest)
                .ok()
        })
        .filter(|raw| raw.len() > 8)
    {
        Some(raw) => {
            let mut hash = [0u8; 8];
            hash.copy_from_slice(&raw[..8]);
            (
                Some(u64::from_be_bytes(hash)),
                String::from_utf8(raw[8..].to_vec()).ok()?,
            )
        }
        None => (None, key.to_string()),
    };
    let (f, m) = view.message(u, &immutable)?;
    match folder_hash {
        Some(h) if h != fnv(&[f.id.as_bytes()]) => None,
        _ => Some((f, m)),
    }
}

fn route(ctx: &Ctx<'_>, path: &[String], tenant: &Tenant, user: Option<&User>) -> Response {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    if p.first() == Some(&"users") && p.len() > 1 && user.is_none() {
        return if p.len() == 2 {
            ctx.error(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                &format!("Resource '{}' does not exist or one of its queried reference-property objects are not present.", p[1]),
            )
        } else {
            ctx.error(
                StatusCode::NOT_FOUND,
                "ErrorInvalidUser",
                &format!("The requested user '{}' is invalid.", p[1]),
            )
        };
    }
    // A user without an Exchange Online mailbox (unlicensed, on-premises, soft-deleted, a
    // guest) answers every mailbox call with this 404 (microsoftgraph/msgraph-sdk-javascript
    // issue 1756; learn.microsoft.com/answers/questions/761931: a licence is missing).
    if let (Some(u), true) = (user, p.len() > 2) {
        if !u.has_mailbox {
            return ctx.error(
                StatusCode::NOT_FOUND,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            );
        }
    }
    let hidden =
        param(&ctx.query, "includeHiddenFolders").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match (p.as_slice(), user) {
        (["users"], _) => users(ctx, tenant),
        (["users", _], Some(u)) => {
            let fields = ctx.select().unwrap_or_else(user_default_set);
            axum::Json(select(Some(&fields), user_json(u))).into_response()
        }
        (["domains"], _) => page(ctx, "domains", &tenant.domains, 100, 999, |d| {
            json!({"authenticationType": "Managed", "availabilityStatus": null, "id": d.id,
                   "isAdminManaged": true, "isDefault": d.is_default, "isInitial": d.is_initial,
                   "isRoot": true, "isVerified": d.is_verified,
                   "supportedServices": if d.is_initial { json!(["Email", "OfficeCommunicationsOnline"]) } else { json!(["Email"]) },
                   "passwordValidityPeriodInDays": 2147483647, "passwordNotificationWindowInDays": 14})
        }),
        (["domains", d], _) => match tenant.domains.iter().find(|x| x.id.eq_ignore_ascii_case(d)) {
            Some(d) => axum::Json(json!({"id": d.id, "isDefault": d.is_default, "isInitial": d.is_initial, "isVerified": d.is_verified})).into_response(),
            None => ctx.error(StatusCode::NOT_FOUND, "Request_ResourceNotFound", &format!("Resource '{d}' does not exist or one of its queried reference-property objects are not present.")),
        },
        (["users", _, "mailFolders"], Some(u)) => folders(ctx, u, None, hidden),
        (["users", _, "mailFolders", "delta"], Some(u)) => crate::delta::folders(ctx, u),
        (["users", _, "mailFolders", f], Some(u)) => {
            if let Some(r) = unknown_property(ctx, FOLDER_PROPERTIES, "mailFolder") {
                return r;
            }
            match resolve_folder(u, f) {
                Some(FolderRef::Root) => axum::Json(select(ctx.select().as_deref(), root_json(u))).into_response(),
                Some(FolderRef::Folder(f)) => axum::Json(select(ctx.select().as_deref(), folder_json(u, f))).into_response(),
                None => ctx.not_found(),
            }
        }
        (["users", _, "mailFolders", f, "childFolders"], Some(u)) => match resolve_folder(u, f) {
            Some(FolderRef::Root) => folders(ctx, u, None, hidden),
            Some(FolderRef::Folder(f)) => folders(ctx, u, Some(f), hidden),
            None => ctx.not_found(),
        },
        (["users", _, "mailFolders", f, "messages"], Some(u)) => match resolve_folder(u, f) {
            Some(FolderRef::Folder(f)) => messages(ctx, u, Some(f)),
            Some(FolderRef::Root) => messages_of(ctx, &[]),
            None => ctx.not_found(),
        },
        (["users", _, "mailFolders", f, "messages", "delta"], Some(u)) => match resolve_folder(u, f) {
            Some(FolderRef::Folder(f)) => crate::delta::messages(ctx, u, f),
            Some(FolderRef::Root) => crate::delta::empty(ctx),
            None => ctx.not_found(),
        },
        (["users", _, "messages"], Some(u)) => messages(ctx, u, None),
        (["users", _, "messages", m], Some(u)) | (["users", _, "mailFolders", _, "messages", m], Some(u)) => {
            if let Some(r) = unknown_property(ctx, MESSAGE_PROPERTIES, "message") {
                return r;
            }
            match find_message(ctx.view, u, m) {
                Some((f, m)) => {
                    let fields = ctx.select();
                    axum::Json(message_json(ctx, f, m, fields.as_deref())).into_response()
                }
                None => ctx.not_found(),
            }
        }
        (["users", _, "messages", m, "$value"], Some(u))
        | (["users", _, "mailFolders", _, "messages", m, "$value"], Some(u)) => match find_message(ctx.view, u, m) {
            Some((_, message)) => mime_response(ctx, message),
            None => ctx.not_found(),
        },
        (["users", _, "messages", m, "attachments", rest @ ..], Some(u))
        | (["users", _, "mailFolders", _, "messages", m, "attachments", rest @ ..], Some(u)) => match find_message(ctx.view, u, m) {
            Some((_, message)) => crate::attachments::route(ctx, message, rest),
            None => ctx.not_found(),
        },
        (["users", _, "mailboxSettings"], Some(u)) => axum::Json(json!({
            "@odata.context": format!("{}/v1.0/$metadata#users('{}')/mailboxSettings", ctx.state.url, p[1]),
            "archiveFolder": find_folder(u, "archive").map(|f| f.id.clone()),
            "timeZone": "W. Europe Standard Time",
            "dateFormat": "dd.MM.yyyy", "timeFormat": "HH:mm",
            "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
            "language": {"locale": "en-US", "displayName": "English (United States)"},
            "automaticRepliesSetting": {"status": "disabled", "externalAudience": "all"},
            "workingHours": {"daysOfWeek": ["monday","tuesday","wednesday","thursday","friday"],
                "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000",
                "timeZone": {"name": "W. Europe Standard Time"}},
            "userPurpose": u.purpose
        })).into_response(),
        // The user's Exchange mailboxes (Graph docs resources/exchangesettings.md): v1.0 names
        // only the primary one; beta adds `inPlaceArchiveMailboxId` when the user has an
        // online archive ("the mailbox types supported are the user's primary and in-place
        // archive", Get-MgBetaUserSettingExchange).
        (["users", _, "settings", "exchange"], Some(u)) => {
            let mut settings = json!({
                "@odata.type": "#microsoft.graph.exchangeSettings",
                "primaryMailboxId": format!("{}-primary", u.id),
            });
            if ctx.path.starts_with("/beta/") && u.online_archive {
                settings["inPlaceArchiveMailboxId"] = json!(format!("{}-archive", u.id));
            }
            axum::Json(settings).into_response()
        }
        (["groups", ..], _) => match crate::graph_groups::route(ctx, &p, tenant) {
            Some(r) => r,
            None => ctx.error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Resource not found for the segment '{}'.", p.last().unwrap_or(&"")),
            ),
        },
        (["users", _, ..], Some(u)) => match crate::graph_groupware::route(ctx, &p[2..], u) {
            Some(r) => r,
            None => ctx.error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Resource not found for the segment '{}'.", p.last().unwrap_or(&"")),
            ),
        },
        _ => ctx.error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Resource not found for the segment '{}'.", p.last().unwrap_or(&"")),
        ),
    }
}

fn user_json(u: &User) -> Value {
    let (given, surname) = u
        .display_name
        .split_once(' ')
        .unwrap_or((&u.display_name, ""));
    json!({"businessPhones": [], "displayName": u.display_name, "givenName": given,
           "jobTitle": null, "mail": u.mail, "mobilePhone": null, "officeLocation": null,
           "preferredLanguage": null, "surname": surname,
           "userPrincipalName": u.user_principal_name, "id": u.id,
           "accountEnabled": u.account_enabled, "proxyAddresses": u.proxy_addresses,
           "userType": u.user_type, "usageLocation": "DE",
           "mailNickname": u.mail.split('@').next().unwrap_or("")})
}

/// The properties `GET /users` returns when there is no `$select`.
const USER_DEFAULT_SET: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

fn user_default_set() -> Vec<String> {
    USER_DEFAULT_SET.iter().map(|s| s.to_string()).collect()
}

/// `GET /users`: default page 100, `$top` 1–999 (Graph docs api/user-list.md); without
/// `$select` only the default property set (no accountEnabled, no proxyAddresses).
fn users(ctx: &Ctx<'_>, tenant: &Tenant) -> Response {
    if let Some(top) = param(&ctx.query, "$top") {
        if !top.parse::<usize>().is_ok_and(|n| (1..=999).contains(&n)) {
            return ctx.error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                &format!(
                    "Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."
                ),
            );
        }
    }
    let fields: Vec<String> = ctx.select().unwrap_or_else(user_default_set);
    page(ctx, "users", &tenant.users, 100, 999, |u| {
        select(Some(&fields), user_json(u))
    })
}

const FOLDER_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "totalItemCount",
    "unreadItemCount",
    "isHidden",
    "childFolders",
    "messages",
    "messageRules",
    "multiValueExtendedProperties",
    "singleValueExtendedProperties",
];

/// `GET …/mailFolders` and `…/childFolders`: default page 10; hidden folders only with
/// `includeHiddenFolders=true` (Graph docs api/user-list-mailfolders.md,
/// mailfolder-list-childfolders.md).
fn folders(ctx: &Ctx<'_>, u: &User, parent: Option<&MailFolder>, hidden: bool) -> Response {
    if let Some(r) = unknown_property(ctx, FOLDER_PROPERTIES, "mailFolder") {
        return r;
    }
    let parent_id = parent.map(|f| f.id.as_str());
    let children: Vec<&MailFolder> = u
        .folders
        .iter()
        .filter(|f| f.parent_id.as_deref() == parent_id && (hidden || !f.is_hidden))
        .collect();
    let fields = ctx.select();
    page(ctx, "mailFolders", &children, 10, 1000, |f| {
        select(fields.as_deref(), folder_json(u, f))
    })
}

/// Unread messages of the mailbox: what the "Unread mail" search folder shows.
fn search_results(u: &User) -> Vec<(&MailFolder, &Message)> {
    let mut out: Vec<(&MailFolder, &Message)> = u
        .folders
        .iter()
        .filter(|f| {
            !f.is_search_folder
                && f.well_known_name.as_deref() != Some("deleteditems")
                && f.well_known_name.as_deref() != Some("junkemail")
        })
        .flat_map(|f| f.messages.iter().map(move |m| (f, m)))
        .filter(|(_, m)| !m.is_read)
        .collect();
    out.sort_by_key(|x| std::cmp::Reverse(x.1.received));
    out
}

pub(crate) fn folder_json(u: &User, f: &MailFolder) -> Value {
    let parent = f.parent_id.clone().unwrap_or_else(|| root_id(u));
    let children = u
        .folders
        .iter()
        .filter(|c| c.parent_id.as_deref() == Some(f.id.as_str()))
        .count();
    if f.is_search_folder {
        let found = search_results(u);
        let unread = found.len();
        return json!({"@odata.type": "#microsoft.graph.mailSearchFolder", "id": f.id,
            "displayName": f.display_name, "parentFolderId": parent,
            "childFolderCount": children, "unreadItemCount": unread,
            "totalItemCount": found.len(), "isHidden": f.is_hidden, "isSupported": true,
            "includeNestedFolders": true, "sourceFolderIds": [root_id(u)],
            "filterQuery": "isRead eq false"});
    }
    json!({"id": f.id, "displayName": f.display_name, "parentFolderId": parent,
           "childFolderCount": children, "unreadItemCount": f.messages.iter().filter(|m| !m.is_read).count(),
           "totalItemCount": f.messages.len(), "isHidden": f.is_hidden})
}

fn root_json(u: &User) -> Value {
    json!({"id": root_id(u), "displayName": "Top of Information Store",
           "parentFolderId": format!("AAMkAGI2TG93AAAuAAAAAAA{}AAEAAAA=", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(u.id.as_bytes())),
           "childFolderCount": u.folders.iter().filter(|f| f.parent_id.is_none()).count(),
           "unreadItemCount": 0, "totalItemCount": 0, "isHidden": false})
}

pub(crate) const MESSAGE_PROPERTIES: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "uniqueBody",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
    "internetMessageHeaders",
    "attachments",
    "extensions",
    "mentions",
    "multiValueExtendedProperties",
    "singleValueExtendedProperties",
];

/// `GET …/mailFolders/{id}/messages` (or the mailbox-wide `…/messages`): newest first,
/// default page 10, `$top` 1–1000, `Prefer: odata.maxpagesize` (Graph docs
/// api/user-list-messages.md). A search folder lists the matching messages of other folders.
fn messages(ctx: &Ctx<'_>, u: &User, folder: Option<&MailFolder>) -> Response {
    if let Some(r) = unknown_property(ctx, MESSAGE_PROPERTIES, "message") {
        return r;
    }
    let verb_filter = param(&ctx.query, "$filter").map(last_verb_filter);
    let expand = param(&ctx.query, "$expand").map(expands_last_verb);
    let not_implemented = |what: &str| {
        ctx.error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            &format!("The simulator does not implement {what} on messages."),
        )
    };
    if matches!(verb_filter, Some(None)) {
        return not_implemented("this $filter");
    }
    if expand == Some(false) {
        return not_implemented("this $expand");
    }
    for unsupported in ["$search", "$skip"] {
        if param(&ctx.query, unsupported).is_some() {
            return not_implemented(unsupported);
        }
    }
    if let Some(order) = param(&ctx.query, "$orderby") {
        if !order.eq_ignore_ascii_case("receivedDateTime desc") {
            return ctx.error(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "The simulator orders messages by receivedDateTime desc only.",
            );
        }
    }
    let mut items: Vec<(&MailFolder, &Message)> = match folder {
        Some(f) if f.is_search_folder => search_results(u),
        Some(f) => f.messages.iter().map(|m| (f, m)).collect(),
        None => {
            let mut all: Vec<(&MailFolder, &Message)> = u
                .folders
                .iter()
                .filter(|f| !f.is_search_folder)
                .flat_map(|f| f.messages.iter().map(move |m| (f, m)))
                .collect();
            all.sort_by_key(|x| std::cmp::Reverse(x.1.received));
            all
        }
    };
    if let Some(Some((op, n))) = verb_filter {
        items.retain(|(_, m)| {
            m.last_verb_executed
                .is_some_and(|v| op.holds(i64::from(v), n))
        });
    }
    let fields = ctx.select();
    page(ctx, "messages", &items, 10, 1000, |(f, m)| {
        let mut json = message_json(ctx, f, m, fields.as_deref());
        if let (Some(true), Some(v), Value::Object(o)) = (expand, m.last_verb_executed, &mut json) {
            o.insert(
                "singleValueExtendedProperties".into(),
                json!([{"id": LAST_VERB, "value": v.to_string()}]),
            );
        }
        json
    })
}

fn messages_of(ctx: &Ctx<'_>, items: &[(&MailFolder, &Message)]) -> Response {
    let fields = ctx.select();
    page(ctx, "messages", items, 10, 1000, |(f, m)| {
        message_json(ctx, f, m, fields.as_deref())
    })
}

/// The one extended property the simulator knows: PidTagLastVerbExecuted (shared reference
/// graph.md, "Flags -> IMAP").
const LAST_VERB: &str = "Integer 0x1081";

/// A comparison in a `$filter` (OData `eq ne ge gt le lt`).
#[derive(Clone, Copy)]
enum Compare {
    Eq,
    Ne,
    Ge,
    Gt,
    Le,
    Lt,
}

impl Compare {
    fn holds(self, a: i64, b: i64) -> bool {
        match self {
            Compare::Eq => a == b,
            Compare::Ne => a != b,
            Compare::Ge => a >= b,
            Compare::Gt => a > b,
            Compare::Le => a <= b,
            Compare::Lt => a < b,
        }
    }
}

/// Lower case without white space, for matching the few query forms the simulator knows.
fn squeezed(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase()
}

/// `singleValueExtendedProperties/any(ep:ep/id eq 'Integer 0x1081' and cast(ep/value,
/// Edm.Int32) ge 102)`: the numeric extended-property filter of Graph docs
/// api/singlevaluelegacyextendedproperty-get.md. `None`: any other filter.
fn last_verb_filter(filter: &str) -> Option<(Compare, i64)> {
    let f = squeezed(filter);
    let rest = f
        .strip_prefix("singlevalueextendedproperties/any(ep:ep/ideq'integer0x1081'andcast(ep/value,edm.int32)")?
        .strip_suffix(')')?;
    let op = match rest.get(..2)? {
        "eq" => Compare::Eq,
        "ne" => Compare::Ne,
        "ge" => Compare::Ge,
        "gt" => Compare::Gt,
        "le" => Compare::Le,
        "lt" => Compare::Lt,
        _ => return None,
    };
    Some((op, rest.get(2..)?.parse().ok()?))
}

/// `singleValueExtendedProperties($filter=id eq 'Integer 0x1081')` (same page): the only
/// `$expand` the simulator serves.
fn expands_last_verb(expand: &str) -> bool {
    squeezed(expand) == "singlevalueextendedproperties($filter=ideq'integer0x1081')"
}

fn recipient(mailbox: &str) -> Value {
    let (name, address) = match mailbox.rsplit_once(" <") {
        Some((name, rest)) => (
            name.trim_matches('"').to_string(),
            rest.trim_end_matches('>').to_string(),
        ),
        None => (mailbox.to_string(), mailbox.to_string()),
    };
    json!({"emailAddress": {"name": name, "address": address}})
}

pub(crate) fn iso(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A message resource (Graph docs resources/message.md); only the selected properties are
/// computed (the body is costly).
pub(crate) fn message_json(
    ctx: &Ctx<'_>,
    f: &MailFolder,
    m: &Message,
    fields: Option<&[String]>,
) -> Value {
    let wants =
        |k: &str| fields.is_none_or(|fs| k == "id" || fs.iter().any(|f| f.eq_ignore_ascii_case(k)));
    let change = fnv(&[
        m.id.as_bytes(),
        f.id.as_bytes(),
        &[u8::from(m.is_read), u8::from(m.is_draft)],
        m.flag_status.as_bytes(),
        m.importance.as_bytes(),
        m.categories.join("\u{1f}").as_bytes(),
        m.subject.as_bytes(),
    ]);
    let change_key = format!(
        "CQAAABYAAAA{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(change.to_be_bytes())
    );
    let id = wire_id(&m.id, f, ctx.prefer.immutable_ids);
    let mut o = Map::new();
    o.insert("@odata.etag".into(), json!(format!("W/\"{change_key}\"")));
    let mut put = |k: &str, v: Value| {
        if wants(k) {
            o.insert(k.to_string(), v);
        }
    };
    put("id", Value::String(id.clone()));
    put("createdDateTime", json!(iso(m.received)));
    put("lastModifiedDateTime", json!(iso(m.received)));
    put("changeKey", json!(change_key));
    put("categories", json!(m.categories));
    put("receivedDateTime", json!(iso(m.received)));
    put("sentDateTime", json!(iso(m.sent)));
    put("hasAttachments", json!(m.has_attachments));
    put("internetMessageId", json!(m.internet_message_id));
    put("subject", json!(m.subject));
    put("importance", json!(m.importance));
    put("parentFolderId", json!(f.id));
    put(
        "conversationId",
        json!(format!(
            "AAQkAGI2{:016x}",
            fnv(&[m
                .subject
                .trim_start_matches("Re: ")
                .trim_start_matches("RE: ")
                .as_bytes()])
        )),
    );
    put("isDeliveryReceiptRequested", json!(false));
    put("isReadReceiptRequested", json!(false));
    put("isRead", json!(m.is_read));
    put("isDraft", json!(m.is_draft));
    put(
        "webLink",
        json!(format!(
            "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
            percent_encode(&m.id)
        )),
    );
    put("inferenceClassification", json!("focused"));
    put("sender", recipient(&m.from));
    put("from", recipient(&m.from));
    put(
        "toRecipients",
        json!(m.to.iter().map(|t| recipient(t)).collect::<Vec<_>>()),
    );
    put("ccRecipients", json!([]));
    put("bccRecipients", json!([]));
    put("replyTo", json!([]));
    put("flag", json!({"flagStatus": m.flag_status}));
    if (wants("body") || wants("bodyPreview")) && ctx.reads_bodies("Mail") {
        let text = match m.mime.recipe() {
            Some(r) => crate::mime::body_text(r),
            // The first text part, as Graph shows it (an opaque S/MIME item has none).
            None => crate::attachments::body_text(&m.mime.bytes()),
        };
        let preview: String = text.replace("\r\n", " ").chars().take(255).collect();
        put("bodyPreview", json!(preview.trim_end()));
        put("body", json!({"contentType": "text", "content": text}));
    }
    // Only when asked for by name (resources/message.md: "Returned only on applying a $select
    // query option").
    if fields.is_some_and(|fs| {
        fs.iter()
            .any(|f| f.eq_ignore_ascii_case("internetMessageHeaders"))
    }) {
        let headers: Vec<Value> = crate::attachments::header_fields(&m.mime.bytes())
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        o.insert("internetMessageHeaders".into(), Value::Array(headers));
    }
    Value::Object(o)
}

/// `GET …/messages/{id}/$value`: the exact MIME bytes with their Content-Length, streamed in
/// 16 KiB chunks (Graph docs concepts/outlook-get-mime-message.md). Graph labels the stream
/// `text/plain` [observed by clients; the docs only say "MIME content"].
fn mime_response(ctx: &Ctx<'_>, message: &Message) -> Response {
    let faults = &ctx.state.config.faults;
    // Generated once per request; the tenant keeps only the recipe.
    let bytes = message.mime.bytes();
    let len = bytes.len();
    if crate::attachments::is_opaque_smime(&bytes) {
        // Every attempt, for good (LogicLabs-OU/OpenArchiver#487; see `attachments`).
        return ctx.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ErrorMimeContentConversionFailed",
            "MIME content conversion failed.",
        );
    }
    if faults.value_fails_above.is_some_and(|max| len as u64 > max) {
        // Exchange gives up on large items after about 30 s (graph.md §MIME export).
        return ctx.error(StatusCode::GATEWAY_TIMEOUT, "UnknownError", "");
    }
    let cut = ctx.state.chance(faults.reset_rate);
    const CHUNK: usize = 16 * 1024;
    // With a reset, about half the bytes are sent, then the connection is cut before
    // Content-Length is met.
    let sent = if cut { len / 2 } else { len };
    let chunks = (0..sent.div_ceil(CHUNK))
        .map(move |i| Ok(bytes.slice(i * CHUNK..((i + 1) * CHUNK).min(sent))));
    // The failure comes after a yield, so the bytes before it are flushed to the socket
    // first (hyper writes out what it has when the body is pending).
    let failure = futures_util::stream::iter(cut.then_some(())).then(|()| async {
        tokio::task::yield_now().await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated connection reset",
        ))
    });
    let body = Body::from_stream(futures_util::stream::iter(chunks).chain(failure));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    ctx.with_preference(response, false)
}
