//! One HTTP client for the whole run, and the Graph calls made through a mailbox's pacer.
//!
//! Every request carries one `Prefer` line ([`PREFER`]): immutable ids, so ids survive moves
//! between folders (Graph docs, concepts/outlook-immutable-id.md), and the delta page size.
//! Status codes are classified once, here: 429 is throttling (waited out for as long as it
//! lasts, [`Verdict::Throttled`]), 503 waits for its `Retry-After`, 500/502/504 and broken
//! connections back off a bounded number of attempts, 401 renews the token, and the rest fail
//! the request.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::auth::{AuthError, TokenSource};
use super::lane::DownloadLane;
use super::pacer::{Pacer, Verdict};
use crate::config::{Cloud, SourceConfig};
use crate::error::{Classify, ErrorClass};
use crate::secrets::Secret;

/// The Graph API version used for every call.
pub const API_VERSION: &str = "v1.0";
/// Graph's preview version, used only where v1.0 cannot express what is read (a series'
/// cancelled and modified occurrences).
pub const BETA_VERSION: &str = "beta";

/// The one `Prefer` header line of every request: immutable ids, so ids survive moves
/// between folders (concepts/outlook-immutable-id.md), and the page size of delta rounds,
/// which take no `$top` of their own on later pages (api/message-delta.md). One line with
/// comma-separated preferences, as Microsoft's SDKs send it (graph-docs issue #7229): a
/// server may honour only the first of several `Prefer` lines.
pub const PREFER: &str = r#"IdType="ImmutableId", odata.maxpagesize=500"#;

/// What a plan and a run say for tasks in a cloud without To Do
/// ([`GraphClient::serves_todo`]).
pub const TASKS_LEFT_OUT: &str = "tasks: left out, this Microsoft cloud has no To Do API";

/// A failed Graph request. URLs name users and items by id, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("Graph answered HTTP {status} ({code}) to {url}: {message}")]
    Status {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("request to {url} failed")]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the response from {url} was cut short: {got} of {expected} bytes")]
    Truncated {
        url: String,
        got: u64,
        expected: u64,
    },
    #[error("cannot decode the response from {url}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A JSON body over [`MAX_JSON`] (no Graph page comes near it): refused, not read on.
    #[error("the response from {url} is larger than {} MiB", MAX_JSON >> 20)]
    TooLarge { url: String },
    #[error("cannot write what was downloaded from {url}")]
    Sink {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

impl GraphError {
    /// The HTTP status, when Graph answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl Classify for GraphError {
    fn class(&self) -> ErrorClass {
        match self {
            GraphError::Status { status, .. } => match status {
                429 | 500 | 502 | 503 | 504 => ErrorClass::Retry,
                _ => ErrorClass::SkipItem,
            },
            GraphError::Network { .. } | GraphError::Truncated { .. } => ErrorClass::Retry,
            GraphError::Decode { .. } | GraphError::TooLarge { .. } => ErrorClass::SkipItem,
            GraphError::Auth(e) => e.class(),
            GraphError::Sink { .. } => ErrorClass::Fatal,
        }
    }
}

/// Where downloaded bytes go. `reset` is called before every attempt, so a retried download
/// never leaves a partial first attempt behind.
pub trait ByteSink: Send {
    fn reset(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
    fn write(
        &mut self,
        chunk: &[u8],
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

/// Builds the run's one HTTP client: rustls, HTTP/2 where offered, pooled connections, no
/// redirects (the token endpoint must not be redirected; Graph's mail calls do not redirect).
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("m365-migrator/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(20))
        .read_timeout(Duration::from_secs(120))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .tcp_keepalive(Duration::from_secs(60))
        .build()
}

/// A signed-in Graph client. Clone-cheap parts are shared; requests go through a [`Pacer`].
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    tokens: Arc<TokenSource>,
    base: String,
    beta: String,
    /// Which APIs the tenant's cloud serves ([`GraphClient::serves_todo`],
    /// [`GraphClient::message_delta_url`]).
    cloud: Cloud,
    /// Message downloads in flight across every mailbox of the run ([`Self::with_download_limit`]).
    downloads: DownloadLane,
}

/// The default of [`GraphClient::with_download_limit`] (`[run] max_downloads`).
pub const DEFAULT_MAX_DOWNLOADS: usize = 128;

/// The largest JSON body read (a page of 999 messages' metadata is a few MiB).
pub const MAX_JSON: usize = 64 * 1024 * 1024;
/// The largest error body read (Graph's error JSON is under a KiB).
const MAX_ERROR_BODY: usize = 64 * 1024;

impl GraphClient {
    /// Prepares a client; no request is sent until [`GraphClient::sign_in`] or a call.
    pub fn new(
        source: &SourceConfig,
        secret: &Secret,
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        let tokens = TokenSource::new(source, secret, http.clone())?;
        Ok(GraphClient {
            http,
            tokens: Arc::new(tokens),
            base: format!("{}/{}", source.graph_base(), API_VERSION),
            beta: format!("{}/{}", source.graph_base(), BETA_VERSION),
            cloud: source.cloud,
            downloads: DownloadLane::new(DEFAULT_MAX_DOWNLOADS),
        })
    }

    /// At most `limit` (at least 1) message bodies stream at once across every clone of this
    /// client, whatever the number of mailboxes: each download holds HTTP buffers while it
    /// streams, so this bounds the run's memory. A mailbox's own limit (4 in flight) still
    /// applies within it. When downloads wait for a slot, the mailbox with the most items
    /// left ([`Pacer::items_left`]) gets the next ([`DownloadLane`]).
    pub fn with_download_limit(self, limit: usize) -> Self {
        GraphClient {
            downloads: DownloadLane::new(limit),
            ..self
        }
    }

    /// Signs in now, so bad credentials are reported before any data moves.
    pub async fn sign_in(&self) -> Result<Secret, AuthError> {
        self.tokens.token().await
    }

    /// The absolute URL of a Graph path such as `/users`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The absolute URL of a path on the beta endpoint ([`BETA_VERSION`]).
    pub fn beta_url(&self, path: &str) -> String {
        format!("{}{}", self.beta, path)
    }

    /// The absolute URL of a message delta path: v1.0, or beta where the cloud's v1.0 lacks
    /// message delta (China operated by 21Vianet: api/message-delta.md's national cloud
    /// table marks v1.0 ❌ and beta ✅ there).
    pub fn message_delta_url(&self, path: &str) -> String {
        match self.cloud {
            Cloud::China => self.beta_url(path),
            _ => self.url(path),
        }
    }

    /// Whether the cloud serves the To Do API: not in China operated by 21Vianet
    /// (api/todo-list-lists.md, api/todotask-delta.md national cloud tables). Where it does
    /// not, tasks are left out and the run says so.
    pub fn serves_todo(&self) -> bool {
        self.cloud != Cloud::China
    }

    /// GETs `url` and decodes its JSON body.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        pacer: &Pacer,
        url: &str,
        on_throttle: impl FnMut(Duration),
    ) -> Result<T, GraphError> {
        pacer
            .call(
                |_| async move {
                    let response = match self.send(pacer, url).await.done() {
                        Ok(r) => r,
                        Err(verdict) => return verdict,
                    };
                    match crate::http::read_capped(response, MAX_JSON).await {
                        Ok(body) => match serde_json::from_slice(&body) {
                            Ok(value) => Verdict::Done(value),
                            Err(source) => Verdict::Fail(GraphError::Decode {
                                url: url.to_string(),
                                source,
                            }),
                        },
                        Err(crate::http::BodyError::Transport(source)) => {
                            network_retry(url, source)
                        }
                        Err(crate::http::BodyError::TooLarge { .. }) => {
                            Verdict::Fail(GraphError::TooLarge {
                                url: url.to_string(),
                            })
                        }
                    }
                },
                on_throttle,
            )
            .await
    }

    /// GETs `url` and streams its body into `sink` without holding it in memory. Returns the
    /// number of bytes written. A body shorter than its `Content-Length` is an error and is
    /// retried from the start (the sink is reset), so a truncated download is never kept.
    pub async fn download<S: ByteSink>(
        &self,
        pacer: &Pacer,
        url: &str,
        sink: &mut S,
        on_throttle: impl FnMut(Duration),
    ) -> Result<u64, GraphError> {
        let sink = tokio::sync::Mutex::new(sink);
        let written = pacer
            .call(
                |_| {
                    let sink = &sink;
                    async move {
                        // Held until the body is in the sink. Taken before the pacer's last
                        // check in `send`, so a pause that began meanwhile is still honoured.
                        let _slot = self.downloads.acquire(pacer.items_left()).await;
                        let response = match self.send(pacer, url).await.done() {
                            Ok(r) => r,
                            Err(verdict) => return verdict,
                        };
                        let mut sink = sink.lock().await;
                        let sink_err = |source| {
                            Verdict::Fail(GraphError::Sink {
                                url: url.to_string(),
                                source,
                            })
                        };
                        if let Err(e) = sink.reset().await {
                            return sink_err(e);
                        }
                        let expected = response.content_length();
                        let mut written = 0u64;
                        let mut body = response.bytes_stream();
                        while let Some(chunk) = body.next().await {
                            match chunk {
                                Ok(chunk) => {
                                    if let Err(e) = sink.write(&chunk).await {
                                        return sink_err(e);
                                    }
                                    written += chunk.len() as u64;
                                }
                                Err(source) => return network_retry(url, source),
                            }
                        }
                        match expected {
                            Some(n) if n != written => Verdict::Retry {
                                after: None,
                                error: GraphError::Truncated {
                                    url: url.to_string(),
                                    got: written,
                                    expected: n,
                                },
                            },
                            _ => Verdict::Done(written),
                        }
                    }
                },
                on_throttle,
            )
            .await;
        if written.is_ok() {
            pacer.item_downloaded();
        }
        written
    }

    /// Sends one GET and classifies the answer's status. The request leaves only when no
    /// pause of `pacer` is in force; a `Retry-After` it is answered pauses `pacer` at once.
    async fn send(&self, pacer: &Pacer, url: &str) -> Verdict<reqwest::Response, GraphError> {
        let token = match self.tokens.token().await {
            Ok(t) => t,
            Err(e) if e.class() == ErrorClass::Retry => {
                return Verdict::Retry {
                    after: None,
                    error: e.into(),
                }
            }
            Err(e) => return Verdict::Fail(e.into()),
        };
        // Waiting for the token may have taken a while, during which another request of this
        // mailbox may have been answered 429: check again at the last moment (and take the
        // app's budget then).
        pacer.leave().await;
        let sent = self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .header("Prefer", PREFER)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(source) => return network_retry(url, source),
        };
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Verdict::Done(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        if let (429 | 503, Some(wait)) = (status, retry_after) {
            // Before reading the body: no request of the mailbox leaves meanwhile.
            pacer.pause(wait);
        }
        // An error body only explains the status: a hostile size is not read at all.
        let body = crate::http::read_capped(response, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        let (code, message) = graph_error_body(&body);
        let error = GraphError::Status {
            url: url.to_string(),
            status,
            code,
            message,
        };
        match status {
            401 => {
                // Expired or revoked mid-run: renew and try again right away.
                self.tokens.invalidate(&token).await;
                Verdict::Retry {
                    after: Some(Duration::ZERO),
                    error,
                }
            }
            // MailboxConcurrency, ApplicationThrottled and the request budget: however long
            // the mailbox stays throttled, the request is not a failure (bounded by time).
            429 => Verdict::Throttled {
                after: retry_after,
                error,
            },
            503 => Verdict::Retry {
                after: retry_after,
                error,
            },
            // Refused for good, the same on every attempt (graph::mail::undownloadable).
            500 if code_is(&error, super::mail::MIME_CONVERSION_FAILED) => Verdict::Fail(error),
            500 | 502 | 504 => Verdict::Retry { after: None, error },
            _ => Verdict::Fail(error),
        }
    }
}

fn code_is(e: &GraphError, wanted: &str) -> bool {
    matches!(e, GraphError::Status { code, .. } if code.eq_ignore_ascii_case(wanted))
}

/// A broken connection or body: transient, retried with backoff.
fn network_retry<T>(url: &str, source: reqwest::Error) -> Verdict<T, GraphError> {
    Verdict::Retry {
        after: None,
        error: GraphError::Network {
            url: url.to_string(),
            source,
        },
    }
}

/// `Retry-After` in seconds; Graph may send fractions such as `2.128` (concepts/throttling.md).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// `(code, message)` from Graph's `{"error": {"code", "message"}}`, or placeholders.
fn graph_error_body(body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => (
            "unknown".into(),
            String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_fractions_and_rejects_garbage() {
        assert_eq!(
            parse_retry_after("2.128"),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("NaN"), None);
    }

    #[test]
    fn error_body_is_read_or_summarised() {
        let (code, message) = graph_error_body(
            br#"{"error":{"code":"ErrorAccessDenied","message":"Access to OData is disabled."}}"#,
        );
        assert_eq!(code, "ErrorAccessDenied");
        assert_eq!(message, "Access to OData is disabled.");
        assert_eq!(graph_error_body(b"<html>").0, "unknown");
    }
}
