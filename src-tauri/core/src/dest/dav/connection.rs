//! One account's HTTP transport to a CalDAV/CardDAV server: TLS trust, the plaintext policy,
//! Basic authentication on every request, the per-account bound on requests in flight, and
//! the mapping of HTTP failures to [`DavError`].
//!
//! - **TLS:** rustls with the system's roots plus the PEM certificates of the CA file (the
//!   same trust as the IMAP destination). No redirect is followed implicitly: reqwest would
//!   turn a redirected PROPFIND into a GET, so discovery follows them itself
//!   ([`Http::send_following`]).
//! - **Plaintext:** `http://` only when allowed and only to a literal loopback address (never
//!   a name such as `localhost`: [`crate::config::check_endpoint`]); checked for
//!   every URL before it is requested (servers hand out hrefs and redirects too).
//! - **Secrets:** the password goes only into the `Authorization` header, and only to the
//!   origins the configuration names (the base URL's, and those of absolute collection URL
//!   templates): a redirect or an href to another host is requested without credentials,
//!   logged at `warn`, and a login it then asks for is [`DavError::ForeignOrigin`] (RFC 9110
//!   §11.6.1 leaves reusing credentials across origins to the client; a server that hands out
//!   another host must not receive the password). Requests are logged at `debug` as method,
//!   URL and status, never with headers or bodies.
//! - **Bounded:** at most `max_in_flight` requests per account are in flight, each holding a
//!   permit until its whole body is read.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;
use url::{Origin, Url};

use super::{DavError, DavLogin, DavSettings};

/// The largest response body read (a REPORT with many resources, or one big vCard).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Redirects followed during discovery (RFC 6764 §5 expects a few at most).
const MAX_REDIRECTS: usize = 5;

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub url: Url,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Retry-After` as delta-seconds (the HTTP-date form is read as absent).
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")?
            .trim()
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    }

    /// A short description of the refusal for error texts: status, the `DAV:error`
    /// conditions if any, else the start of the body.
    pub fn reason(&self) -> String {
        let conditions = super::types::error_conditions(&self.body);
        let detail = if conditions.is_empty() {
            let text = String::from_utf8_lossy(&self.body);
            let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut excerpt: String = text.chars().take(300).collect();
            if excerpt.len() < text.len() {
                excerpt.push('…');
            }
            excerpt
        } else {
            conditions.join(", ")
        };
        let status = format!(
            "{} {}",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("")
        );
        if detail.is_empty() {
            status.trim_end().to_string()
        } else {
            format!("{}: {detail}", status.trim_end())
        }
    }
}

/// An HTTP client configured from [`DavSettings`]; cheap to clone and shared by the accounts
/// made from the same settings.
#[derive(Debug, Clone)]
pub struct Transport {
    client: reqwest::Client,
    allow_plaintext_loopback: bool,
}

impl Transport {
    pub fn new(settings: &DavSettings) -> Result<Transport, DavError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(30)))
            .pool_max_idle_per_host(settings.max_in_flight.max(1))
            .user_agent(concat!("m365-migrator/", env!("CARGO_PKG_VERSION")));
        for cert in system_roots() {
            builder = builder.add_root_certificate(cert.clone());
        }
        if let Some(path) = &settings.ca_file {
            let bad =
                |reason: String| DavError::Config(format!("CA file {}: {reason}", path.display()));
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate in it".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| DavError::Config(format!("HTTP client setup: {e}")))?;
        Ok(Transport {
            client,
            allow_plaintext_loopback: settings.allow_plaintext_loopback,
        })
    }

    /// Checks the transport policy for `url` (see the module doc) by the one endpoint rule,
    /// [`crate::config::check_endpoint`]: `https`, or `http` only when allowed and only to a
    /// literal loopback address; no user name or password in the URL.
    pub fn check_url(&self, url: &Url) -> Result<(), DavError> {
        crate::config::check_endpoint(url.as_str(), self.allow_plaintext_loopback)
            .map(drop)
            .map_err(DavError::Config)
    }
}

/// The platform's trusted roots, read once per process.
fn system_roots() -> &'static [reqwest::Certificate] {
    static ROOTS: OnceLock<Vec<reqwest::Certificate>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "could not read some system CA certificates");
        }
        loaded
            .certs
            .iter()
            .filter_map(|c| reqwest::Certificate::from_der(c.as_ref()).ok())
            .collect()
    })
}

/// One account's requests: its login, the origins that may receive it, and its bound on
/// requests in flight.
#[derive(Debug, Clone)]
pub struct Http {
    transport: Transport,
    login: DavLogin,
    /// Where the login is sent (see the module doc); never empty.
    trusted: Arc<Vec<Origin>>,
    slots: Arc<Semaphore>,
}

/// Headers of one request.
#[derive(Debug, Default)]
pub struct Headers(Vec<(HeaderName, HeaderValue)>);

impl Headers {
    pub fn new() -> Self {
        Headers::default()
    }

    pub fn with(mut self, name: &'static str, value: &str) -> Result<Self, DavError> {
        let value = HeaderValue::from_str(value)
            .map_err(|_| DavError::Config(format!("invalid {name} header value {value:?}")))?;
        self.0.push((HeaderName::from_static(name), value));
        Ok(self)
    }

    /// `Depth` and an XML content type, for PROPFIND and REPORT.
    pub fn xml(depth: &str) -> Self {
        Headers(vec![
            (
                HeaderName::from_static("depth"),
                HeaderValue::from_str(depth).unwrap_or(HeaderValue::from_static("0")),
            ),
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/xml; charset=utf-8"),
            ),
        ])
    }
}

/// A WebDAV method by name.
pub fn method(name: &'static str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap_or(Method::GET)
}

impl Http {
    /// The login goes to `origin` only, and to the origins added with [`Http::trust`].
    pub fn new(transport: Transport, login: DavLogin, origin: &Url, max_in_flight: usize) -> Http {
        Http {
            transport,
            login,
            trusted: Arc::new(vec![origin.origin()]),
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }

    /// Also sends the login to `url`'s origin (one the configuration names).
    pub fn trust(mut self, url: &Url) -> Http {
        let origin = url.origin();
        if !self.trusted.contains(&origin) {
            Arc::make_mut(&mut self.trusted).push(origin);
        }
        self
    }

    /// Whether the login may be sent to `url`.
    pub fn is_trusted(&self, url: &Url) -> bool {
        self.trusted.contains(&url.origin())
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub fn user(&self) -> &str {
        &self.login.user
    }

    /// Sends one request and reads the whole response. Transport failures are errors; every
    /// HTTP status, 401 included, is returned for the caller to judge, except that 401 is
    /// always [`DavError::Auth`].
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: Headers,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, DavError> {
        self.transport.check_url(url)?;
        let trusted = self.is_trusted(url);
        if !trusted {
            tracing::warn!(
                %method,
                url = %url,
                "a DAV request to another host than the configured one goes without credentials"
            );
        }
        let _permit = self.slots.acquire().await.ok();
        let mut request = self.transport.client.request(method.clone(), url.clone());
        if trusted {
            request = request.basic_auth(&self.login.user, Some(self.login.password.expose()));
        }
        for (name, value) in headers.0 {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|e| transport_error(url, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = match crate::http::read_capped(response, MAX_BODY).await {
            Ok(body) => body,
            Err(crate::http::BodyError::Transport(e)) => return Err(transport_error(url, e)),
            Err(e) => {
                return Err(DavError::Protocol {
                    url: url.to_string(),
                    reason: e.to_string(),
                })
            }
        };
        tracing::debug!(%method, url = %url, status = status.as_u16(), "DAV request");
        let reply = Reply {
            url: url.clone(),
            status,
            headers,
            body,
        };
        if status == StatusCode::UNAUTHORIZED && !trusted {
            return Err(DavError::ForeignOrigin {
                url: url.to_string(),
                configured: self.trusted[0].ascii_serialization(),
            });
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(DavError::Auth {
                user: self.login.user.clone(),
                url: url.to_string(),
            });
        }
        Ok(reply)
    }

    /// Like [`Http::send`], following redirects (301, 302, 303, 307, 308) with the same method
    /// and body, as RFC 6764 §5 asks of a client looking up `/.well-known/`.
    pub async fn send_following(
        &self,
        method: Method,
        url: &Url,
        depth: &str,
        body: &str,
    ) -> Result<Reply, DavError> {
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let reply = self
                .send(
                    method.clone(),
                    &url,
                    Headers::xml(depth),
                    Some(body.as_bytes().to_vec()),
                )
                .await?;
            if !reply.status.is_redirection() || reply.status == StatusCode::NOT_MODIFIED {
                return Ok(reply);
            }
            let Some(next) = reply.header("location").and_then(|l| url.join(l).ok()) else {
                return Ok(reply);
            };
            url = next;
        }
        Err(DavError::Protocol {
            url: url.to_string(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }
}

/// Maps a reqwest failure: an untrusted certificate is fatal, anything else on the wire is
/// transient.
fn transport_error(url: &Url, e: reqwest::Error) -> DavError {
    let host = url.host_str().unwrap_or("").to_string();
    if is_certificate_error(&e) {
        return DavError::Tls { host, source: e };
    }
    if e.is_timeout() {
        return DavError::Timeout { host };
    }
    DavError::Connect { host, source: e }
}

/// Whether the error chain holds a rustls certificate verdict (unknown issuer, bad name...).
fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<tokio_rustls::rustls::Error>() {
            return matches!(
                tls,
                tokio_rustls::rustls::Error::InvalidCertificate(_)
                    | tokio_rustls::rustls::Error::NoCertificatesPresented
            );
        }
        // `io::Error::source` skips the error it wraps; look at that one itself.
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(allow: bool) -> Transport {
        let mut s = DavSettings::new("https://dav.example.com/");
        s.allow_plaintext_loopback = allow;
        Transport::new(&s).unwrap()
    }

    #[test]
    fn plaintext_needs_permission_and_loopback() {
        let url = |s: &str| Url::parse(s).unwrap();
        let strict = transport(false);
        assert!(strict.check_url(&url("https://dav.example.com/")).is_ok());
        assert!(strict.check_url(&url("http://127.0.0.1:5232/")).is_err());
        let loose = transport(true);
        assert!(loose.check_url(&url("http://127.0.0.1:5232/")).is_ok());
        assert!(loose.check_url(&url("http://[::1]:5232/")).is_ok());
        assert!(loose.check_url(&url("http://dav.example.com/")).is_err());
        assert!(loose
            .check_url(&url("http://127.0.0.1.example.com/"))
            .is_err());
        assert!(loose.check_url(&url("ftp://127.0.0.1/")).is_err());
    }

    #[test]
    fn dav_plaintext_to_names_that_only_look_like_loopback_is_refused() {
        let url = |s: &str| Url::parse(s).unwrap();
        let loose = transport(true);
        for refused in [
            "http://localhost.evil.example/",
            "http://127.0.0.1@evil.example/",
            // A name is whatever the resolver says, `localhost` too.
            "http://localhost/",
            "http://localhost:5232/dav/",
        ] {
            assert!(
                matches!(loose.check_url(&url(refused)), Err(DavError::Config(_))),
                "{refused}"
            );
        }
        assert!(loose.check_url(&url("http://127.0.0.1:5232/")).is_ok());
    }

    #[test]
    fn reasons_quote_the_server() {
        let reply = |status: u16, body: &[u8]| Reply {
            url: Url::parse("https://x/").unwrap(),
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.to_vec(),
        };
        assert_eq!(
            reply(400, b"Bad Request").reason(),
            "400 Bad Request: Bad Request"
        );
        assert_eq!(
            reply(409, br#"<error xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><C:no-uid-conflict/></error>"#).reason(),
            "409 Conflict: C:no-uid-conflict"
        );
        assert_eq!(reply(507, b"").reason(), "507 Insufficient Storage");
        let long = reply(403, "x ".repeat(400).as_bytes()).reason();
        assert!(long.ends_with('…') && long.len() < 400, "{long}");
    }
}
