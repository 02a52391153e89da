//! The per-folder message delta query and the change log behind it (Graph docs
//! concepts/delta-query-messages.md, api/message-delta.md).
//!
//! A round starts without a token (everything in the folder) or from a `@odata.deltaLink`
//! (what changed since that link was issued). Pages follow `@odata.nextLink` until the last
//! page carries a new `@odata.deltaLink`. Changed and added messages come back whole (subject
//! to `$select`, which the links remember); messages that left the folder (deleted or moved
//! out) come back as `{"id", "@removed": {"reason": "deleted"}}`. A change made while a round
//! is being paged may appear in this round and again in the next, as Graph allows ("replays
//! are possible, upsert by id"). Tokens can be expired with
//! [`crate::SimServer::expire_delta_tokens`]; Graph then answers `410 Gone` with a `Location`
//! to start over, or another documented refusal ([`crate::DeltaExpiry`]).

use std::collections::HashMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::calendar::{Calendar, Event};
use crate::graph::{message_json, percent_decode, wire_id, Ctx, MESSAGE_PROPERTIES};
use crate::tenant::{MailFolder, Tenant, User};

/// What changed when, per folder. Versions count mutations; generated content is version 0.
#[derive(Default)]
pub(crate) struct ChangeLog {
    version: u64,
    /// Delta tokens issued before this version answer 410.
    floor: u64,
    folders: HashMap<(String, String), FolderChanges>,
    /// Per user: folder id -> version of its last change / removal.
    hierarchy: HashMap<String, FolderChanges>,
    /// Groupware collections: (user id, [`crate::graph_groupware`] collection key) -> the
    /// items (events, contacts, contact folders, task lists, tasks) added, changed, removed.
    items: HashMap<(String, String), FolderChanges>,
    /// (user id, event id) -> (version, the event as it was before that change): what a
    /// calendarView delta round needs to know which occurrences left its window.
    event_history: HashMap<(String, String), EventHistory>,
}

/// An event's past: (version of a change, the event before it; `None`: it did not exist).
type EventHistory = Vec<(u64, Option<Event>)>;

#[derive(Default)]
struct FolderChanges {
    /// Item id -> version of its last addition or change in this folder.
    changed: HashMap<String, u64>,
    /// Message id -> version at which it left this folder.
    removed: HashMap<String, u64>,
}

impl ChangeLog {
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Invalidates every delta token issued so far.
    pub fn expire_tokens(&mut self) {
        self.version += 1;
        self.floor = self.version;
    }

    /// Records the differences between two versions of the tenant, message by message.
    pub fn record(&mut self, before: &Tenant, after: &Tenant) {
        let v = self.version + 1;
        let mut any = false;
        for user in &after.users {
            let old_user = before.users.iter().find(|u| u.id == user.id);
            let shape = |f: &MailFolder| {
                (
                    f.display_name.clone(),
                    f.parent_id.clone(),
                    f.is_hidden,
                    f.messages.len(),
                    f.messages.iter().filter(|m| !m.is_read).count(),
                )
            };
            for folder in &user.folders {
                let old = old_user.and_then(|u| u.folders.iter().find(|f| f.id == folder.id));
                if old.map(shape) != Some(shape(folder)) {
                    let log = self.hierarchy.entry(user.id.clone()).or_default();
                    log.changed.insert(folder.id.clone(), v);
                    log.removed.remove(&folder.id);
                    any = true;
                }
            }
            for old in old_user.iter().flat_map(|u| &u.folders) {
                if !user.folders.iter().any(|f| f.id == old.id) {
                    let log = self.hierarchy.entry(user.id.clone()).or_default();
                    log.removed.insert(old.id.clone(), v);
                    log.changed.remove(&old.id);
                    any = true;
                }
            }
            for folder in &user.folders {
                let old: HashMap<&str, _> = old_user
                    .and_then(|u| u.folders.iter().find(|f| f.id == folder.id))
                    .map(|f| f.messages.iter().map(|m| (m.id.as_str(), m)).collect())
                    .unwrap_or_default();
                let key = (user.id.clone(), folder.id.clone());
                for m in &folder.messages {
                    // A message moved back into a folder it had left keeps its immutable id, and
                    // that folder's delta reports it `@removed` and not again until it changes
                    // (microsoft-graph-docs-contrib#72; learn.microsoft.com/answers/questions/
                    // 1257719): the return is not a change here.
                    let returned = !old.contains_key(m.id.as_str())
                        && self
                            .folders
                            .get(&key)
                            .is_some_and(|log| log.removed.contains_key(&m.id));
                    if returned {
                        continue;
                    }
                    if old.get(m.id.as_str()) != Some(&m) {
                        let log = self.folders.entry(key.clone()).or_default();
                        log.changed.insert(m.id.clone(), v);
                        log.removed.remove(&m.id);
                        any = true;
                    }
                }
                if !old.is_empty() {
                    let now: std::collections::HashSet<&str> =
                        folder.messages.iter().map(|m| m.id.as_str()).collect();
                    for id in old.keys().filter(|id| !now.contains(*id)) {
                        let log = self.folders.entry(key.clone()).or_default();
                        log.removed.insert(id.to_string(), v);
                        log.changed.remove(*id);
                        any = true;
                    }
                }
            }
            if let Some(old) = old_user {
                any |= self.record_groupware(v, old, user);
            }
        }
        if any {
            self.version = v;
        }
    }

    /// Records item changes of one collection from `(id, item)` pairs before and after.
    fn record_items<'a, T: PartialEq + 'a>(
        &mut self,
        v: u64,
        key: (String, String),
        before: impl Iterator<Item = (&'a str, &'a T)>,
        after: impl Iterator<Item = (&'a str, &'a T)>,
    ) -> bool {
        let old: HashMap<&str, &T> = before.collect();
        let mut seen = std::collections::HashSet::new();
        let mut any = false;
        for (id, item) in after {
            seen.insert(id);
            if old.get(id) != Some(&item) {
                let log = self.items.entry(key.clone()).or_default();
                log.changed.insert(id.to_string(), v);
                log.removed.remove(id);
                any = true;
            }
        }
        for id in old.keys().filter(|id| !seen.contains(*id)) {
            let log = self.items.entry(key.clone()).or_default();
            log.removed.insert(id.to_string(), v);
            log.changed.remove(*id);
            any = true;
        }
        any
    }

    fn record_groupware(&mut self, v: u64, old: &User, user: &User) -> bool {
        use crate::graph_groupware::{collection_key as key, Collection};
        let mut any = false;
        let uid = || user.id.clone();
        if old.calendars != user.calendars {
            let before: HashMap<&str, &Event> = old
                .calendars
                .iter()
                .flat_map(|c| &c.events)
                .map(|e| (e.id.as_str(), e))
                .collect();
            let mut now = std::collections::HashSet::new();
            for e in user.calendars.iter().flat_map(|c| &c.events) {
                now.insert(e.id.as_str());
                let was = before.get(e.id.as_str()).copied();
                if was != Some(e) {
                    self.event_history
                        .entry((uid(), e.id.clone()))
                        .or_default()
                        .push((v, was.cloned()));
                }
            }
            for (id, e) in before.iter().filter(|(id, _)| !now.contains(*id)) {
                self.event_history
                    .entry((uid(), id.to_string()))
                    .or_default()
                    .push((v, Some((*e).clone())));
            }
            for cal in &user.calendars {
                let before = old.calendars.iter().find(|c| c.id == cal.id);
                any |= self.record_items(
                    v,
                    (uid(), key(Collection::Events, &cal.id)),
                    before
                        .into_iter()
                        .flat_map(|c| &c.events)
                        .map(|e| (e.id.as_str(), e)),
                    cal.events.iter().map(|e| (e.id.as_str(), e)),
                );
            }
        }
        if old.contact_folders != user.contact_folders {
            let shape =
                |f: &crate::groupware::ContactFolder| (f.display_name.clone(), f.parent_id.clone());
            let old_shapes: Vec<(&str, _)> = old
                .contact_folders
                .iter()
                .map(|f| (f.id.as_str(), shape(f)))
                .collect();
            let new_shapes: Vec<(&str, _)> = user
                .contact_folders
                .iter()
                .map(|f| (f.id.as_str(), shape(f)))
                .collect();
            any |= self.record_items(
                v,
                (uid(), key(Collection::ContactFolders, "")),
                old_shapes.iter().map(|(i, s)| (*i, s)),
                new_shapes.iter().map(|(i, s)| (*i, s)),
            );
            for f in &user.contact_folders {
                let before = old.contact_folders.iter().find(|c| c.id == f.id);
                any |= self.record_items(
                    v,
                    (uid(), key(Collection::Contacts, &f.id)),
                    before
                        .into_iter()
                        .flat_map(|c| &c.contacts)
                        .map(|c| (c.id.as_str(), c)),
                    f.contacts.iter().map(|c| (c.id.as_str(), c)),
                );
            }
        }
        if old.todo_lists != user.todo_lists {
            let shape = |l: &crate::groupware::TodoList| {
                (
                    l.display_name.clone(),
                    l.wellknown_list_name.clone(),
                    l.is_shared,
                )
            };
            let old_shapes: Vec<(&str, _)> = old
                .todo_lists
                .iter()
                .map(|l| (l.id.as_str(), shape(l)))
                .collect();
            let new_shapes: Vec<(&str, _)> = user
                .todo_lists
                .iter()
                .map(|l| (l.id.as_str(), shape(l)))
                .collect();
            any |= self.record_items(
                v,
                (uid(), key(Collection::TodoLists, "")),
                old_shapes.iter().map(|(i, s)| (*i, s)),
                new_shapes.iter().map(|(i, s)| (*i, s)),
            );
            for l in &user.todo_lists {
                let before = old.todo_lists.iter().find(|c| c.id == l.id);
                any |= self.record_items(
                    v,
                    (uid(), key(Collection::Tasks, &l.id)),
                    before
                        .into_iter()
                        .flat_map(|c| &c.tasks)
                        .map(|t| (t.id.as_str(), t)),
                    l.tasks.iter().map(|t| (t.id.as_str(), t)),
                );
            }
        }
        any
    }
}

/// The state a delta or page link carries (opaque to clients: base64url of JSON).
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Token {
    /// Changes after this version; `None`: the initial round (everything).
    from: Option<u64>,
    /// The version this round will hand out as its delta link.
    to: u64,
    /// Page position: items sort by id; continue after this one.
    after: Option<String>,
    select: Option<String>,
    /// calendarView delta: the window `[start, end)` in Unix seconds, fixed by the first
    /// request (api/event-delta.md: the window is encoded in the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<(i64, i64)>,
    /// `$expand` of the first request, kept like `$select` (api/todotask-delta.md: "If you use
    /// any query parameter … Microsoft Graph automatically encodes any specified parameters
    /// into the token portion").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expand: Option<String>,
}

impl Token {
    fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(s: &str) -> Option<Token> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .ok()?;
        serde_json::from_slice(&raw).ok()
    }
}

fn query_param(ctx: &Ctx<'_>, name: &str) -> Option<String> {
    ctx.query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// A delta round over the message-less msgfolderroot: one page, nothing in it.
pub(crate) fn empty(ctx: &Ctx<'_>) -> Response {
    let token = Token {
        from: Some(0),
        to: 0,
        after: None,
        select: None,
        window: None,
        expand: None,
    };
    axum::Json(json!({
        "@odata.context": format!("{}/v1.0/$metadata#Collection(message)", ctx.state.url),
        "value": [],
        "@odata.deltaLink": format!("{}{}?$deltatoken={}", ctx.state.url, ctx.path, token.encode()),
    }))
    .into_response()
}

/// The token a request carries (`$deltatoken` starts a round of changes, `$skiptoken`
/// continues one, none starts the initial round), or the 410 for an expired one.
fn read_token(ctx: &Ctx<'_>, current: u64, floor: u64) -> Result<Token, Box<Response>> {
    let restart = || {
        let message = "The sync state has expired or is not valid. Start a new synchronization without a delta token.";
        let (status, code) = match ctx.state.config.delta_expiry {
            crate::DeltaExpiry::Gone => (StatusCode::GONE, "SyncStateNotFound"),
            crate::DeltaExpiry::BadRequest => (StatusCode::BAD_REQUEST, "syncStateNotFound"),
            crate::DeltaExpiry::ResyncRequired => (StatusCode::GONE, "resyncRequired"),
            crate::DeltaExpiry::SyncStateInvalid => (StatusCode::BAD_REQUEST, "SyncStateInvalid"),
        };
        let mut r = ctx.error(status, code, message);
        let start = format!("{}{}", ctx.state.url, ctx.path);
        if let Ok(v) = HeaderValue::from_str(&start) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Box::new(r)
    };
    if let Some(t) = query_param(ctx, "$deltatoken") {
        match Token::decode(&percent_decode(&t)) {
            Some(t) if t.to >= floor => Ok(Token {
                from: Some(t.to),
                to: current,
                after: None,
                select: t.select,
                window: t.window,
                expand: t.expand,
            }),
            _ => Err(restart()),
        }
    } else if let Some(t) = query_param(ctx, "$skiptoken") {
        match Token::decode(&percent_decode(&t)) {
            Some(t) if t.from.is_none_or(|f| f >= floor) => Ok(t),
            _ => Err(restart()),
        }
    } else {
        Ok(Token {
            from: None,
            to: current,
            after: None,
            select: query_param(ctx, "$select"),
            window: None,
            expand: query_param(ctx, "$expand"),
        })
    }
}

/// One page of a round over `ids` (sorted): the page's ids, and the body with the nextLink
/// or, on the last page, the deltaLink. `render` makes each item.
fn page(
    ctx: &Ctx<'_>,
    context: &str,
    token: &Token,
    ids: &[String],
    fields: Option<&[String]>,
    render: impl Fn(&str) -> Value,
) -> Response {
    let start = match &token.after {
        Some(after) => ids.partition_point(|id| id <= after),
        None => 0,
    };
    let (size, by) = ctx.page_size(10, 1000);
    let end = (start + size).min(ids.len());
    let value: Vec<Value> = ids[start..end].iter().map(|id| render(id)).collect();
    let select = fields.map(|f| f.join(","));
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#{context}", ctx.state.url)),
    );
    let base = format!("{}{}", ctx.state.url, ctx.path);
    if end < ids.len() {
        // Repeating needs two items on the page, or the next page would start where this one did.
        let repeat = ctx.state.config.faults.repeat_page_item && end - start >= 2;
        let last = end.wrapping_sub(if repeat { 2 } else { 1 });
        let next = Token {
            after: ids.get(last).cloned(),
            select,
            ..token.clone()
        };
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{base}?$skiptoken={}", next.encode())),
        );
    } else {
        let delta = Token {
            from: None,
            to: token.to,
            after: None,
            select,
            window: token.window,
            expand: token.expand.clone(),
        };
        body.insert(
            "@odata.deltaLink".into(),
            json!(format!("{base}?$deltatoken={}", delta.encode())),
        );
    }
    body.insert("value".into(), Value::Array(value));
    ctx.page_response(Value::Object(body), by)
}

/// The ids in a round: everything present (initial round) or what changed after `from`,
/// plus what was removed after `from` and is not present; sorted, so pages neither skip
/// nor repeat when the collection changes between them.
fn round_ids<'a>(
    token: &Token,
    present: impl Iterator<Item = &'a str>,
    changed: &HashMap<String, u64>,
    removed: &HashMap<String, u64>,
) -> Vec<String> {
    let present: std::collections::HashSet<String> = present.map(str::to_string).collect();
    let mut ids: Vec<String> = present
        .iter()
        .filter(|id| match token.from {
            None => true,
            Some(v) => changed.get(*id).is_some_and(|at| *at > v),
        })
        .cloned()
        .collect();
    if let Some(v) = token.from {
        // Present but removed and not changed since: it came back unseen (see `record`).
        ids.extend(
            removed
                .iter()
                .filter(|(id, at)| {
                    **at > v && (!present.contains(*id) || !changed.contains_key(*id))
                })
                .map(|(id, _)| id.clone()),
        );
    }
    ids.sort();
    ids
}

fn parse_select(ctx: &Ctx<'_>, token: &Token) -> Option<Vec<String>> {
    query_param(ctx, "$select")
        .or_else(|| token.select.clone())
        .map(|s| {
            s.split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect()
        })
}

/// `GET /users/{id}/mailFolders/{id}/messages/delta`.
pub(crate) fn messages(ctx: &Ctx<'_>, user: &User, folder: &MailFolder) -> Response {
    let (current, floor, (changed, removed)) = match ctx.state.changes.lock() {
        Ok(log) => {
            let key = (user.id.clone(), folder.id.clone());
            let changes = log
                .folders
                .get(&key)
                .map(|c| (c.changed.clone(), c.removed.clone()))
                .unwrap_or_default();
            (log.version(), log.floor, changes)
        }
        Err(_) => (0, 0, Default::default()),
    };
    let token = match read_token(ctx, current, floor) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let fields = parse_select(ctx, &token);
    if let Some(bad) = fields
        .iter()
        .flatten()
        .find(|f| !MESSAGE_PROPERTIES.iter().any(|k| k.eq_ignore_ascii_case(f)))
    {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "RequestBroker--ParseUri",
            &format!("Could not find a property named '{bad}' on type 'microsoft.graph.message'."),
        );
    }
    let ids = round_ids(
        &token,
        folder.messages.iter().map(|m| m.id.as_str()),
        &changed,
        &removed,
    );
    let by_id: HashMap<&str, &crate::tenant::Message> =
        folder.messages.iter().map(|m| (m.id.as_str(), m)).collect();
    // Moved back unseen: reported as removed (see `ChangeLog::record`).
    let returned =
        |id: &str| token.from.is_some() && removed.contains_key(id) && !changed.contains_key(id);
    page(
        ctx,
        "Collection(message)",
        &token,
        &ids,
        fields.as_deref(),
        |id| match by_id.get(id).filter(|_| !returned(id)) {
            Some(m) => message_json(ctx, folder, m, fields.as_deref()),
            None => json!({
                "@odata.type": "#microsoft.graph.message",
                "id": wire_id(id, folder, ctx.prefer.immutable_ids),
                "@removed": {"reason": "deleted"},
            }),
        },
    )
}

/// `GET /users/{id}/mailFolders/delta`: the whole folder hierarchy, flat (Graph docs
/// api/mailfolder-delta.md); later rounds bring folders added, renamed, moved or whose
/// counts changed, and `@removed` for deleted ones.
pub(crate) fn folders(ctx: &Ctx<'_>, user: &User) -> Response {
    let (current, floor, (changed, removed)) = match ctx.state.changes.lock() {
        Ok(log) => {
            let changes = log
                .hierarchy
                .get(&user.id)
                .map(|c| (c.changed.clone(), c.removed.clone()))
                .unwrap_or_default();
            (log.version(), log.floor, changes)
        }
        Err(_) => (0, 0, Default::default()),
    };
    let token = match read_token(ctx, current, floor) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let fields = parse_select(ctx, &token);
    let ids = round_ids(
        &token,
        user.folders.iter().map(|f| f.id.as_str()),
        &changed,
        &removed,
    );
    page(
        ctx,
        "Collection(mailFolder)",
        &token,
        &ids,
        fields.as_deref(),
        |id| match user.folders.iter().find(|f| f.id == id) {
            Some(f) => crate::graph::select(fields.as_deref(), crate::graph::folder_json(user, f)),
            None => json!({"id": id, "@removed": {"reason": "deleted"}}),
        },
    )
}

/// A delta round over one groupware collection of `user` (Graph docs api/event-delta.md
/// (beta), api/contact-delta.md, api/todotask-delta.md, api/todotasklist-delta.md): the same
/// rounds, links and 410 as message delta. `present` are the ids in the collection now;
/// `render` gives a present item's JSON (already `$select`ed; with the round's `$expand`).
/// `$select` is checked against `known`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn collection(
    ctx: &Ctx<'_>,
    user: &User,
    key: &str,
    context: &str,
    odata_type: &str,
    present: Vec<&str>,
    known: &[&str],
    kind: &str,
    render: impl Fn(&str, Option<&[String]>, Option<&str>) -> Option<Value>,
) -> Response {
    let (current, floor, (changed, removed)) = match ctx.state.changes.lock() {
        Ok(log) => {
            let changes = log
                .items
                .get(&(user.id.clone(), key.to_string()))
                .map(|c| (c.changed.clone(), c.removed.clone()))
                .unwrap_or_default();
            (log.version(), log.floor, changes)
        }
        Err(_) => (0, 0, Default::default()),
    };
    let token = match read_token(ctx, current, floor) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let fields = parse_select(ctx, &token);
    if let Some(bad) = fields
        .iter()
        .flatten()
        .find(|f| !known.iter().any(|k| k.eq_ignore_ascii_case(f)))
    {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "RequestBroker--ParseUri",
            &format!("Could not find a property named '{bad}' on type 'microsoft.graph.{kind}'."),
        );
    }
    let ids = round_ids(&token, present.into_iter(), &changed, &removed);
    let expand = token.expand.clone();
    page(ctx, context, &token, &ids, fields.as_deref(), |id| {
        render(id, fields.as_deref(), expand.as_deref()).unwrap_or_else(
            || json!({"@odata.type": odata_type, "id": id, "@removed": {"reason": "deleted"}}),
        )
    })
}

/// `GET /users/{id}/calendarView/delta?startDateTime=&endDateTime=` (v1.0, the default
/// calendar; api/event-delta.md): the first round lists every single instance, occurrence and
/// exception in the window (fixed in the token from then on); later rounds list the items of
/// each event changed since, and `@removed` for items that left the window or the calendar.
/// `$select` is not supported there and is ignored.
pub(crate) fn calendar_view(
    ctx: &Ctx<'_>,
    user: &User,
    cal: &Calendar,
    window: Option<(time::OffsetDateTime, time::OffsetDateTime)>,
) -> Response {
    use crate::graph_groupware::{collection_key, items_in_window, render_item, Collection};
    let key = (user.id.clone(), collection_key(Collection::Events, &cal.id));
    let (current, floor, changed, removed, history) = match ctx.state.changes.lock() {
        Ok(log) => {
            let (changed, removed) = log
                .items
                .get(&key)
                .map(|c| (c.changed.clone(), c.removed.clone()))
                .unwrap_or_default();
            let history: HashMap<String, EventHistory> = log
                .event_history
                .iter()
                .filter(|((u, _), _)| *u == user.id)
                .map(|((_, id), h)| (id.clone(), h.clone()))
                .collect();
            (log.version(), log.floor, changed, removed, history)
        }
        Err(_) => Default::default(),
    };
    let mut token = match read_token(ctx, current, floor) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    token.select = None;
    if token.window.is_none() {
        match window {
            Some((s, e)) => token.window = Some((s.unix_timestamp(), e.unix_timestamp())),
            None => {
                return ctx.error(
                    StatusCode::BAD_REQUEST,
                    "ErrorInvalidParameter",
                    "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
                )
            }
        }
    }
    let (from, to) = token.window.unwrap_or_default();
    let at = |s: i64| {
        time::OffsetDateTime::from_unix_timestamp(s).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    let (from, to) = (at(from), at(to));
    let present = items_in_window(cal.events.iter(), from, to);
    let mut ids: Vec<String> = match token.from {
        None => present.iter().map(|(id, _)| id.clone()).collect(),
        Some(v) => {
            let touched = changed
                .iter()
                .chain(removed.iter())
                .filter(|(_, at)| **at > v)
                .map(|(id, _)| id.as_str());
            let mut out = std::collections::BTreeSet::new();
            for master in touched {
                // The event as it was at version `v`: the state before its first later change.
                let old = history
                    .get(master)
                    .and_then(|h| h.iter().find(|(at, _)| *at > v))
                    .and_then(|(_, e)| e.clone());
                let now: Vec<&String> = present
                    .iter()
                    .filter(|(_, item)| item.master_id() == master)
                    .map(|(id, _)| id)
                    .collect();
                out.extend(now.iter().map(|id| id.to_string()));
                for (id, _) in items_in_window(old.iter(), from, to) {
                    out.insert(id);
                }
            }
            out.into_iter().collect()
        }
    };
    ids.sort();
    ids.dedup();
    let by_id: HashMap<&str, _> = present
        .iter()
        .map(|(id, item)| (id.as_str(), *item))
        .collect();
    page(
        ctx,
        "Collection(event)",
        &token,
        &ids,
        None,
        |id| match by_id.get(id) {
            Some(item) => render_item(ctx, *item),
            None => {
                json!({"@odata.type": "#microsoft.graph.event", "id": id, "@removed": {"reason": "deleted"}})
            }
        },
    )
}
