//! Shared state, the router, the request log, request ids, and a response body that reports
//! when it has been sent.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, Response};
use axum::middleware::Next;
use axum::routing::{any, post};
use axum::Router;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::delta::ChangeLog;
use crate::tenant::{guid, Tenant, User};
use crate::throttle::Mailboxes;
use crate::{RequestRecord, SimConfig};

pub(crate) struct State {
    pub config: SimConfig,
    pub url: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub client_secret_id: String,
    tenant: RwLock<Arc<View>>,
    pub changes: Mutex<ChangeLog>,
    pub tokens: Mutex<HashMap<String, Instant>>,
    pub mailboxes: Mailboxes,
    /// Draws for faults, jitter and ids (seeded with `faults.seed`).
    pub rng: Mutex<StdRng>,
    log: Mutex<Vec<RequestRecord>>,
}

impl State {
    pub fn new(config: SimConfig, tenant: Tenant, url: String) -> Self {
        let mut rng = StdRng::seed_from_u64(crate::tenant::mix(config.tenant.seed, 0xc11e));
        let client_id = guid(&mut rng);
        let client_secret_id = guid(&mut rng);
        // Entra secret values: a 3-character prefix, "8Q~", then 34 characters of [A-Za-z0-9._~-].
        const ALPHABET: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-";
        let body: String = (0..34)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        let client_secret = format!("Qx8Q~{body}");
        State {
            rng: Mutex::new(StdRng::seed_from_u64(config.faults.seed)),
            mailboxes: Mailboxes::default(),
            config,
            url,
            tenant_id: tenant.id.clone(),
            client_id,
            client_secret,
            client_secret_id,
            tenant: RwLock::new(Arc::new(View::new(Arc::new(tenant)))),
            changes: Mutex::new(ChangeLog::default()),
            tokens: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
        }
    }

    /// The tenant as it is now.
    pub fn snapshot(&self) -> Arc<Tenant> {
        self.view().tenant.clone()
    }

    /// The tenant as it is now, with its user index.
    pub fn view(&self) -> Arc<View> {
        match self.tenant.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies `change` to a copy of the tenant, records what changed for delta, publishes it.
    pub fn mutate<R>(&self, change: impl FnOnce(&mut Tenant) -> R) -> R {
        let mut guard = match self.tenant.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let before = guard.tenant.clone();
        let mut after = (*before).clone();
        let result = change(&mut after);
        if let Ok(mut changes) = self.changes.lock() {
            changes.record(&before, &after);
        }
        *guard = Arc::new(View::new(Arc::new(after)));
        result
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn random<T>(&self) -> T
    where
        rand::distr::StandardUniform: rand::distr::Distribution<T>,
        T: Default,
    {
        self.rng.lock().map(|mut r| r.random()).unwrap_or_default()
    }

    /// True with probability `p`.
    pub fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.random::<f64>() < p
    }

    fn log_start(&self, record: RequestRecord) -> usize {
        match self.log.lock() {
            Ok(mut log) => {
                log.push(record);
                log.len() - 1
            }
            Err(_) => usize::MAX,
        }
    }

    fn log_update(&self, index: usize, update: impl FnOnce(&mut RequestRecord)) {
        if let Ok(mut log) = self.log.lock() {
            if let Some(r) = log.get_mut(index) {
                update(r);
            }
        }
    }
}

/// One version of the tenant and an index of its users by lower-cased id and UPN, so a
/// request finds its mailbox without scanning thousands of users.
pub(crate) struct View {
    pub tenant: Arc<Tenant>,
    users: HashMap<String, usize>,
    /// Per user, built on first use: hash of a message id -> (folder, message) positions.
    messages: Vec<std::sync::OnceLock<HashMap<u64, (u32, u32)>>>,
}

impl View {
    fn new(tenant: Arc<Tenant>) -> Self {
        let mut users = HashMap::with_capacity(tenant.users.len() * 2);
        for (i, u) in tenant.users.iter().enumerate() {
            users.insert(u.id.to_ascii_lowercase(), i);
            users.insert(u.user_principal_name.to_ascii_lowercase(), i);
        }
        let messages = (0..tenant.users.len())
            .map(|_| std::sync::OnceLock::new())
            .collect();
        View {
            tenant,
            users,
            messages,
        }
    }

    /// A message of `user` by immutable id, through the user's index (not a scan).
    pub fn message<'a>(
        &'a self,
        user: &User,
        id: &str,
    ) -> Option<(&'a crate::tenant::MailFolder, &'a crate::tenant::Message)> {
        let ui = *self.users.get(&user.id.to_ascii_lowercase())?;
        let u = self.tenant.users.get(ui)?;
        let index = self.messages.get(ui)?.get_or_init(|| {
            let mut index = HashMap::new();
            for (fi, f) in u.folders.iter().enumerate() {
                if f.is_search_folder {
                    continue;
                }
                for (mi, m) in f.messages.iter().enumerate() {
                    index.insert(
                        crate::graph::fnv(&[m.id.as_bytes()]),
                        (fi as u32, mi as u32),
                    );
                }
            }
            index
        });
        let found = index
            .get(&crate::graph::fnv(&[id.as_bytes()]))
            .and_then(|(fi, mi)| {
                let f = u.folders.get(*fi as usize)?;
                Some((f, f.messages.get(*mi as usize)?))
            })
            .filter(|(_, m)| m.id == id);
        // A hash collision (never seen in practice) falls back to a scan.
        found.or_else(|| {
            u.folders
                .iter()
                .filter(|f| !f.is_search_folder)
                .find_map(|f| f.messages.iter().find(|m| m.id == id).map(|m| (f, m)))
        })
    }

    /// A user by id or UPN, case-insensitively (as Graph matches them).
    pub fn user(&self, key: &str) -> Option<&crate::tenant::User> {
        self.users
            .get(&key.to_ascii_lowercase())
            .and_then(|i| self.tenant.users.get(*i))
    }
}

/// Request ids of one request: ours (`request-id`) and the client's (`client-request-id`,
/// echoed; generated when absent, as Graph does).
#[derive(Clone, Debug)]
pub(crate) struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
}

/// Set by a handler on its response: the mailbox (user id) the request addressed.
#[derive(Clone, Debug)]
pub(crate) struct MailboxKey(pub String);

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(crate::token::token))
        .route("/v1.0/{*rest}", any(crate::graph::graph))
        .route("/beta/{*rest}", any(crate::graph::graph))
        .fallback(crate::graph::unknown)
        .layer(axum::middleware::from_fn_with_state(state.clone(), log))
        .with_state(state)
}

/// Logs every request (arrival, status, Retry-After, mailbox, and when the body was sent)
/// and sets the request-id headers.
async fn log(AxState(state): AxState<Arc<State>>, mut req: Request, next: Next) -> Response<Body> {
    let at = Instant::now();
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ids = {
        let mut rng = state.rng.lock().ok();
        let mut id = || match rng.as_mut() {
            Some(r) => guid(r),
            None => "00000000-0000-0000-0000-000000000000".into(),
        };
        let request_id = id();
        RequestIds {
            client_request_id: client_request_id.unwrap_or_else(|| request_id.clone()),
            request_id,
        }
    };
    req.extensions_mut().insert(ids.clone());
    let index = state.log_start(RequestRecord {
        at,
        finished: at,
        method: req.method().to_string(),
        path_and_query: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        mailbox: None,
        status: 0,
        retry_after: None,
        page_size: None,
        app_throttled: false,
    });
    let response = next.run(req).await;
    let (mut parts, body) = response.into_parts();
    for (name, value) in [
        ("request-id", &ids.request_id),
        ("client-request-id", &ids.client_request_id),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            parts.headers.insert(name, v);
        }
    }
    let status = parts.status.as_u16();
    let retry_after = parts
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    let mailbox = parts.extensions.get::<MailboxKey>().map(|m| m.0.clone());
    let page_size = parts.extensions.get::<crate::PageSizeBy>().copied();
    let app_throttled = parts
        .extensions
        .get::<crate::throttle::AppThrottled>()
        .is_some();
    state.log_update(index, |r| {
        r.page_size = page_size;
        r.app_throttled = app_throttled;
        r.status = status;
        r.retry_after = retry_after;
        r.mailbox = mailbox;
        r.finished = Instant::now();
    });
    let done = state.clone();
    let body = Finish::wrap(
        body,
        Box::new(move || done.log_update(index, |r| r.finished = Instant::now())),
    );
    Response::from_parts(parts, body)
}

/// A body that runs `on_end` once it has been sent completely, failed, or been dropped.
pub(crate) struct Finish {
    inner: Body,
    on_end: Option<Box<dyn FnOnce() + Send>>,
}

impl Finish {
    pub fn wrap(inner: Body, on_end: Box<dyn FnOnce() + Send>) -> Body {
        Body::new(Finish {
            inner,
            on_end: Some(on_end),
        })
    }

    fn end(&mut self) {
        if let Some(f) = self.on_end.take() {
            f();
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.end();
    }
}

impl HttpBody for Finish {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.end();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
