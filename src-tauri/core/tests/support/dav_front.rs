//! An HTTP front for a real WebDAV server (Radicale) on 127.0.0.1: forwards every request
//! and its answer unchanged, except the PUTs a test chose, which it answers itself with an
//! error status (500, 507 Insufficient Storage, ...) without forwarding them, the way a
//! failing or full server would. It can also refuse every REPORT (a server without CalDAV /
//! CardDAV queries), answer chosen paths with a redirect, and records which requests carried
//! an `Authorization` header.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Response, StatusCode};

/// PUTs to refuse: the `nth` PUT seen (1-based, counting every PUT through the front) is
/// answered `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub nth: u64,
    pub status: u16,
}

#[derive(Debug, Default)]
struct Shared {
    refusals: Vec<Refusal>,
    puts: u64,
    /// (status, path) of every PUT the front answered itself.
    refused: Vec<(u16, String)>,
    /// Every REPORT is answered with this status.
    report_status: Option<u16>,
    /// (path, absolute location): answered `301 Moved Permanently`.
    redirects: Vec<(String, String)>,
    /// (method, path, carried an `Authorization` header) of every request.
    seen: Vec<(String, String, bool)>,
    /// Basic login names answered `401 Unauthorized` (RFC 9110 §15.5.2) without forwarding.
    refused_logins: Vec<String>,
}

#[derive(Clone)]
struct Front {
    target: String,
    http: reqwest::Client,
    shared: Arc<Mutex<Shared>>,
}

/// A running front; stops when dropped.
pub struct DavFront {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DavFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DavFront {
    /// Fronts the server at `target` (`http://127.0.0.1:port`, no trailing slash needed).
    pub async fn start(target: &str, refusals: Vec<Refusal>) -> DavFront {
        let shared = Arc::new(Mutex::new(Shared {
            refusals,
            ..Shared::default()
        }));
        let front = Front {
            target: target.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            shared: shared.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(front);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the DAV front binds a port");
        let port = listener.local_addr().expect("local address").port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        DavFront { port, shared, task }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// (status, path) of every PUT the front refused, in order.
    pub fn refused(&self) -> Vec<(u16, String)> {
        self.lock().refused.clone()
    }

    /// Answers every REPORT with `status` from now on.
    pub fn refuse_reports(&self, status: u16) {
        self.lock().report_status = Some(status);
    }

    /// Answers requests for `path` with a redirect to `location`.
    pub fn redirect(&self, path: &str, location: &str) {
        self.lock()
            .redirects
            .push((path.to_string(), location.to_string()));
    }

    /// Answers every request that logs in as `user` (HTTP Basic, RFC 7617) with 401 from now
    /// on: a server that refuses a login as an account it holds.
    pub fn refuse_login(&self, user: &str) {
        self.lock().refused_logins.push(user.to_string());
    }

    /// (method, path, carried credentials) of every request seen.
    pub fn seen(&self) -> Vec<(String, String, bool)> {
        self.lock().seen.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The user name of an HTTP Basic `Authorization` header (RFC 7617 §2: base64 of
/// `user:password`).
fn basic_user(headers: &axum::http::HeaderMap) -> Option<String> {
    use base64::Engine;
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split_once(':')?.0.to_string())
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and those the client library sets itself.
fn forwarded(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host" | "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "upgrade"
    )
}

async fn forward(State(front): State<Front>, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    {
        let mut shared = front.shared.lock().unwrap_or_else(|p| p.into_inner());
        let authorized = parts.headers.contains_key("authorization");
        shared
            .seen
            .push((parts.method.to_string(), path.clone(), authorized));
        if basic_user(&parts.headers).is_some_and(|u| shared.refused_logins.contains(&u)) {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("www-authenticate", "Basic realm=\"front\"")
                .body(Body::empty())
                .unwrap_or_default();
        }
        if let Some((_, location)) = shared.redirects.iter().find(|(p, _)| *p == path) {
            return Response::builder()
                .status(StatusCode::MOVED_PERMANENTLY)
                .header("location", location.as_str())
                .body(Body::empty())
                .unwrap_or_default();
        }
        if let Some(code) = shared.report_status.filter(|_| parts.method == "REPORT") {
            return status(StatusCode::from_u16(code).unwrap_or(StatusCode::NOT_IMPLEMENTED));
        }
    }
    if parts.method == axum::http::Method::PUT {
        let mut shared = front.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.puts += 1;
        let n = shared.puts;
        if let Some(r) = shared.refusals.iter().find(|r| r.nth == n).copied() {
            shared.refused.push((r.status, path.clone()));
            let status =
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Response::builder()
                .status(status)
                .body(Body::empty())
                .unwrap_or_default();
        }
    }
    let bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return status(StatusCode::BAD_REQUEST),
    };
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut outgoing = front
        .http
        .request(method, format!("{}{path}", front.target));
    for (name, value) in parts.headers.iter().filter(|(n, _)| forwarded(n)) {
        outgoing = outgoing.header(name.as_str(), value.as_bytes());
    }
    let Ok(answer) = outgoing.body(bytes).send().await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if forwarded(name) {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(body)).unwrap_or_default()
}

fn status(code: StatusCode) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(Body::empty())
        .unwrap_or_default()
}
