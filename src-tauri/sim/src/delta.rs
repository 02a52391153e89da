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
//! to start over.

use std::collections::HashMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::graph::{message_json, percent_decode, wire_id, Ctx, MESSAGE_PROPERTIES};
use crate::tenant::{MailFolder, Tenant, User};

/// What changed when, per folder. Versions count mutations; generated content is version 0.
#[derive(Default)]
pub(crate) struct ChangeLog {
    version: u64,
    /// Delta tokens issued before this version answer 410.
    floor: u64,
    folders: HashMap<(String, String), FolderChanges>,
}

#[derive(Default)]
struct FolderChanges {
    /// Message id -> version of its last addition or change in this folder.
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
            for folder in &user.folders {
                let old: HashMap<&str, _> = old_user
                    .and_then(|u| u.folders.iter().find(|f| f.id == folder.id))
                    .map(|f| f.messages.iter().map(|m| (m.id.as_str(), m)).collect())
                    .unwrap_or_default();
                let key = (user.id.clone(), folder.id.clone());
                for m in &folder.messages {
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
        }
        if any {
            self.version = v;
        }
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
    };
    axum::Json(json!({
        "@odata.context": format!("{}/v1.0/$metadata#Collection(message)", ctx.state.url),
        "value": [],
        "@odata.deltaLink": format!("{}{}?$deltatoken={}", ctx.state.url, ctx.path, token.encode()),
    }))
    .into_response()
}

/// `GET /users/{id}/mailFolders/{id}/messages/delta`.
pub(crate) fn messages(ctx: &Ctx<'_>, user: &User, folder: &MailFolder) -> Response {
    let (current, floor, changes) = match ctx.state.changes.lock() {
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
    let restart = || {
        let mut r = ctx.error(
            StatusCode::GONE,
            "SyncStateNotFound",
            "The sync state has expired or is not valid. Start a new synchronization without a delta token.",
        );
        let start = format!("{}{}", ctx.state.url, ctx.path);
        if let Ok(v) = HeaderValue::from_str(&start) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    };
    let token = if let Some(t) = query_param(ctx, "$deltatoken") {
        match Token::decode(&percent_decode(&t)) {
            Some(t) if t.to >= floor => Token {
                from: Some(t.to),
                to: current,
                after: None,
                select: t.select,
            },
            _ => return restart(),
        }
    } else if let Some(t) = query_param(ctx, "$skiptoken") {
        match Token::decode(&percent_decode(&t)) {
            Some(t) if t.from.is_none_or(|f| f >= floor) => t,
            _ => return restart(),
        }
    } else {
        Token {
            from: None,
            to: current,
            after: None,
            select: query_param(ctx, "$select"),
        }
    };
    let fields: Option<Vec<String>> = query_param(ctx, "$select")
        .or_else(|| token.select.clone())
        .map(|s| {
            s.split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect()
        });
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
    let (changed, removed) = changes;
    // Items of this round, in a stable order (by id) so pages neither skip nor repeat when
    // the folder changes between them.
    enum Item<'a> {
        Present(&'a crate::tenant::Message),
        Removed,
    }
    let mut items: Vec<(String, Item<'_>)> = folder
        .messages
        .iter()
        .filter(|m| match token.from {
            None => true,
            Some(v) => changed.get(&m.id).is_some_and(|at| *at > v),
        })
        .map(|m| (m.id.clone(), Item::Present(m)))
        .collect();
    if let Some(v) = token.from {
        items.extend(
            removed
                .iter()
                .filter(|(_, at)| **at > v)
                .filter(|(id, _)| !folder.messages.iter().any(|m| &&m.id == id))
                .map(|(id, _)| (id.clone(), Item::Removed)),
        );
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let start = match &token.after {
        Some(after) => items.partition_point(|(id, _)| id <= after),
        None => 0,
    };
    let (size, by_prefer) = ctx.page_size(10, 1000);
    let page = &items[start..(start + size).min(items.len())];
    let value: Vec<Value> = page
        .iter()
        .map(|(id, item)| match item {
            Item::Present(m) => message_json(ctx, folder, m, fields.as_deref()),
            Item::Removed => json!({
                "@odata.type": "#microsoft.graph.message",
                "id": wire_id(id, folder, ctx.prefer.immutable_ids),
                "@removed": {"reason": "deleted"},
            }),
        })
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/v1.0/$metadata#Collection(message)",
            ctx.state.url
        )),
    );
    let base = format!("{}{}", ctx.state.url, ctx.path);
    if start + size < items.len() {
        let next = Token {
            after: page.last().map(|(id, _)| id.clone()),
            select: fields.as_ref().map(|f| f.join(",")),
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
            select: fields.as_ref().map(|f| f.join(",")),
        };
        body.insert(
            "@odata.deltaLink".into(),
            json!(format!("{base}?$deltatoken={}", delta.encode())),
        );
    }
    body.insert("value".into(), Value::Array(value));
    ctx.with_preference(axum::Json(Value::Object(body)).into_response(), by_prefer)
}
