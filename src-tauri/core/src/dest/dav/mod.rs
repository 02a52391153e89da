//! The CalDAV + CardDAV destination: one user's calendars, task lists and address books on any
//! CalDAV (RFC 4791) / CardDAV (RFC 6352) server, IceWarp and Radicale included. It writes
//! resources it is given as `(uid, text)`; building the iCalendar/vCard text is `convert`'s job.
//!
//! ## Contract of [`DavAccount`]
//! - **Transport:** HTTPS with certificates checked against the system's roots plus an
//!   optional CA file; `http://` only with [`DavSettings::allow_plaintext_loopback`] and only
//!   to a loopback address, otherwise [`DavError::Config`] before anything is sent. Basic
//!   authentication; the password is a [`Secret`] and appears in no log line and no error. A
//!   refused login (401) is [`ErrorClass::Fatal`]. Credentials go only to the configured
//!   origins ([`connection`]): a redirect or href to another host gets none, and a login it
//!   asks for is [`DavError::ForeignOrigin`].
//! - **Discovery** ([`discovery`]): `/.well-known/caldav` and `/.well-known/carddav`
//!   (RFC 6764, redirects followed), `current-user-principal` (RFC 5397), then
//!   `calendar-home-set` / `addressbook-home-set`. Where that finds nothing, or with
//!   [`DavSettings::discover`] off, the [`CollectionTemplates`] name the default collections
//!   (IceWarp: `/webdav/{email}/Calendar`), and their parent is the home.
//! - **Collections** ([`collections`]): [`DavAccount::ensure_collection`] reuses an existing
//!   collection of the right kind with the same display name (merge) and otherwise creates one
//!   (MKCALENDAR with display name, color and one component; extended MKCOL for address
//!   books) under a path segment derived from the name ([`collections::segment`]).
//! - **Items:** [`DavAccount::put`] writes one resource named after its UID
//!   ([`collections::item_names`]): `If-None-Match: *` for a new one, `If-Match` with the
//!   current ETag to update. A resource with the same UID already in the collection, under
//!   any href, is updated in place, never duplicated (found by a calendar-query /
//!   addressbook-query REPORT on the UID, RFC 4791 §7.8 / RFC 6352 §8.6, and by the server's
//!   `no-uid-conflict` refusal and the href it names, RFC 4791 §5.3.2.1). A server that
//!   refuses that REPORT (400, 403, 405, 501) is asked no more: writes rely on
//!   `If-None-Match: *` and the 412 path. Nothing else in the collection is touched. It
//!   returns the href ([`DestRef`]) and ETag for the journal; [`DavAccount::replace`] and
//!   [`DavAccount::delete`] with that ETag touch only the version the migrator wrote.
//! - **Errors:** a resource or collection the server refuses (400, 403, 409, 415, 422, 507,
//!   ...) is [`ErrorClass::SkipItem`] carrying the server's status and text; 401 is
//!   [`ErrorClass::Fatal`]; 408, 429, 5xx, timeouts and lost connections are
//!   [`ErrorClass::Retry`] (with `Retry-After` in [`DavError::retry_after`]). Nothing here
//!   waits or retries: the caller's pacer does.
//! - **Bounded:** at most [`DavSettings::max_in_flight`] requests of one account are in flight;
//!   a `DavAccount` is shared (`&self` methods, cheap [`Clone`]) by that account's writers.

pub mod collections;
pub mod connection;
pub mod discovery;
pub mod types;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use self::connection::{method, Headers, Http, Reply, Transport};
use self::discovery::Homes;
use super::DestRef;
use crate::error::{Classify, ErrorClass};
use crate::secrets::Secret;

/// What a collection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CollectionKind {
    /// A calendar of VEVENTs.
    Events,
    /// A task list: a calendar of VTODOs.
    Tasks,
    /// An address book of vCards.
    Contacts,
}

impl CollectionKind {
    /// The iCalendar component of a calendar kind.
    pub fn component(self) -> Option<&'static str> {
        match self {
            CollectionKind::Events => Some("VEVENT"),
            CollectionKind::Tasks => Some("VTODO"),
            CollectionKind::Contacts => None,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            CollectionKind::Contacts => ".vcf",
            _ => ".ics",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            CollectionKind::Contacts => "text/vcard; charset=utf-8",
            _ => "text/calendar; charset=utf-8",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            CollectionKind::Events => "calendar",
            CollectionKind::Tasks => "task list",
            CollectionKind::Contacts => "address book",
        }
    }
}

/// URL templates of the default collections, for servers without discovery. Absolute, or
/// relative to [`DavSettings::base_url`]; `{email}`, `{user}` (local part) and `{domain}` are
/// replaced by the account's, percent-encoded as one path segment each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionTemplates {
    pub events: Option<String>,
    pub tasks: Option<String>,
    pub contacts: Option<String>,
}

impl CollectionTemplates {
    /// IceWarp's WebDAV layout (docs.icewarp.com, "How to add calendars and contacts
    /// manually"; see reference/icewarp.md §3).
    pub fn icewarp() -> Self {
        CollectionTemplates {
            events: Some("/webdav/{email}/Calendar/".into()),
            tasks: Some("/webdav/{email}/Tasks/".into()),
            contacts: Some("/webdav/{email}/Contacts/".into()),
        }
    }

    /// IceWarp's layout below a WebDAV base URL other than `https://host/webdav/` (a proxy, or
    /// a test server): `<base>{email}/Calendar/`, `Tasks/`, `Contacts/`, the English default
    /// names. IceWarp lets administrators rename and localise them: [`Self::named_under`] with
    /// the account's own names (`getaccountfolderlist`) is what a run uses.
    pub fn under(base: &str) -> Self {
        Self::named_under(base, Some("Calendar"), Some("Tasks"), Some("Contacts"))
    }

    /// `<base>{email}/<name>/` for each kind whose default folder is named (the name
    /// percent-encoded as one path segment); `None`: that kind has no default collection.
    pub fn named_under(
        base: &str,
        events: Option<&str>,
        tasks: Option<&str>,
        contacts: Option<&str>,
    ) -> Self {
        let base = format!("{}/", base.trim_end_matches('/'));
        let template = |name: Option<&str>| {
            name.filter(|n| !n.trim().is_empty())
                .map(|n| format!("{base}{{email}}/{}/", discovery::encode_segment(n)))
        };
        CollectionTemplates {
            events: template(events),
            tasks: template(tasks),
            contacts: template(contacts),
        }
    }

    fn get(&self, kind: CollectionKind) -> Option<&str> {
        match kind {
            CollectionKind::Events => self.events.as_deref(),
            CollectionKind::Tasks => self.tasks.as_deref(),
            CollectionKind::Contacts => self.contacts.as_deref(),
        }
    }
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct DavSettings {
    /// Where discovery starts and relative templates resolve, e.g. `https://mail.example.com/`.
    pub base_url: String,
    /// Look up the home sets (RFC 6764, RFC 5397); templates are the fallback.
    pub discover: bool,
    pub templates: CollectionTemplates,
    /// Extra trusted CA certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Allows `http://`, and then only to loopback addresses.
    pub allow_plaintext_loopback: bool,
    /// Requests of one account in flight at once.
    pub max_in_flight: usize,
    /// Longest wait for one whole response.
    pub timeout: Duration,
}

impl DavSettings {
    /// Defaults: discovery on, no templates, no extra CA, https only, 4 requests in flight,
    /// a 2-minute timeout.
    pub fn new(base_url: impl Into<String>) -> Self {
        DavSettings {
            base_url: base_url.into(),
            discover: true,
            templates: CollectionTemplates::default(),
            ca_file: None,
            allow_plaintext_loopback: false,
            max_in_flight: 4,
            timeout: Duration::from_secs(120),
        }
    }
}

/// Whose account: the login name (IceWarp: the full email address) and password.
#[derive(Debug, Clone)]
pub struct DavLogin {
    pub user: String,
    pub password: Secret,
}

impl DavLogin {
    pub fn new(user: impl Into<String>, password: Secret) -> Self {
        DavLogin {
            user: user.into(),
            password,
        }
    }
}

/// Why a DAV operation failed. Texts quote the server, never a password.
#[derive(Debug, thiserror::Error)]
pub enum DavError {
    #[error("DAV settings: {0}")]
    Config(String),
    #[error("cannot reach DAV server {host}")]
    Connect {
        host: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "TLS with DAV server {host} failed (is its certificate trusted? see the CA file setting)"
    )]
    Tls {
        host: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("DAV server {host} did not answer in time")]
    Timeout { host: String },
    #[error("the destination refused the login for {user} ({url})")]
    Auth { user: String, url: String },
    #[error("cannot find the calendars and address books of {user}: {reason}")]
    Discovery { user: String, reason: String },
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
    #[error("DAV server {host} is temporarily unavailable: {reason}")]
    Unavailable {
        host: String,
        /// The HTTP status.
        status: u16,
        reason: String,
        retry_after: Option<Duration>,
    },
    #[error("the destination refused {what}: {reason}")]
    Rejected { what: String, reason: String },
    #[error("cannot {action} {name}: {reason}")]
    Collection {
        action: &'static str,
        name: String,
        reason: String,
    },
    #[error("{href} changed at the destination while it was being written")]
    Conflict { href: String },
    #[error(
        "conflict: {href} was changed at the destination since the migration wrote it, \
         and is left as it is there"
    )]
    ChangedAtDestination { href: String },
    /// The server sent the client to another host, which asked for a login: the password is
    /// sent only to the configured origin.
    #[error(
        "the DAV server sent the request to {url}, which asks for a login; credentials go only \
         to {configured} (configure that host's URL if it is the right server)"
    )]
    ForeignOrigin { url: String, configured: String },
    /// The server refuses the UID `calendar-query` / `addressbook-query` REPORT.
    #[error("the destination refuses searches by UID: {reason}")]
    QueryRefused { reason: String },
}

impl Classify for DavError {
    fn class(&self) -> ErrorClass {
        match self {
            DavError::Connect { .. }
            | DavError::Timeout { .. }
            | DavError::Protocol { .. }
            | DavError::Unavailable { .. }
            | DavError::Conflict { .. } => ErrorClass::Retry,
            DavError::Rejected { .. }
            | DavError::QueryRefused { .. }
            | DavError::Collection { .. }
            | DavError::ChangedAtDestination { .. } => ErrorClass::SkipItem,
            DavError::Config(_)
            | DavError::ForeignOrigin { .. }
            | DavError::Tls { .. }
            | DavError::Auth { .. }
            | DavError::Discovery { .. } => ErrorClass::Fatal,
        }
    }
}

impl DavError {
    /// True when the server cannot be reached, or a gateway before it says it is down (502,
    /// 503, 504: RFC 9110 §15.6): what a run waits out up to its outage limit. Other
    /// transient failures (a 500 for one request, a timeout-less garbled answer) are retried a
    /// few times only.
    pub fn is_outage(&self) -> bool {
        match self {
            DavError::Connect { .. } | DavError::Timeout { .. } => true,
            DavError::Unavailable { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    /// The server's `Retry-After`, for the pacer.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DavError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Turns an unwanted status into an error: transient statuses are
/// [`DavError::Unavailable`], anything else is what `refused` makes of the server's reason.
fn refusal(reply: &Reply, refused: impl FnOnce(String) -> DavError) -> DavError {
    let code = reply.status.as_u16();
    // 501 (method not implemented), 505 and 507 (no room) do not go away by waiting.
    let transient = matches!(code, 408 | 425 | 429)
        || (500..600).contains(&code) && !matches!(code, 501 | 505 | 507);
    if transient {
        return DavError::Unavailable {
            host: reply.url.host_str().unwrap_or("").to_string(),
            status: code,
            reason: reply.reason(),
            retry_after: reply.retry_after(),
        };
    }
    if code == 507 {
        // RFC 4918 §11.5: the server cannot store the representation (no room left).
        return refused(format!(
            "the destination's storage is full ({})",
            reply.reason()
        ));
    }
    refused(reply.reason())
}

fn protocol(reply: &Reply, e: impl std::fmt::Display) -> DavError {
    DavError::Protocol {
        url: reply.url.to_string(),
        reason: e.to_string(),
    }
}

/// A calendar, task list or address book at the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    pub kind: CollectionKind,
    /// Absolute, ending in `/`.
    pub url: Url,
    pub display_name: Option<String>,
    pub color: Option<String>,
    /// `supported-calendar-component-set`, when the server reports it.
    pub components: Option<Vec<String>>,
    /// `getctag` / `sync-token`: change markers, for verify.
    pub ctag: Option<String>,
    pub sync_token: Option<String>,
    /// Created by this `DavAccount` just now, so it held nothing before the migration.
    pub created: bool,
}

impl Collection {
    /// The collection's href, as recorded in the journal.
    pub fn href(&self) -> DestRef {
        DestRef(collections::canonical_path(&self.url))
    }

    fn label(&self) -> String {
        match &self.display_name {
            Some(name) => format!("{} {name:?}", self.kind.noun()),
            None => format!("{} {}", self.kind.noun(), self.url.path()),
        }
    }
}

/// A resource at the destination: href and, when known, its current ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRef {
    pub href: DestRef,
    pub etag: Option<String>,
}

/// A resource read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub href: DestRef,
    pub etag: Option<String>,
    pub body: Vec<u8>,
}

/// What [`DavAccount::put`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub href: DestRef,
    /// The ETag after the write (`None` if the server gave none, RFC 4791 §5.3.4).
    pub etag: Option<String>,
    /// A new resource; `false` when a resource with the same UID was updated.
    pub created: bool,
}

/// One user's account at a CalDAV/CardDAV server (see the module doc).
#[derive(Debug, Clone)]
pub struct DavAccount {
    http: Http,
    base: Url,
    email: String,
    homes: Homes,
    /// The template collections, by kind.
    defaults: Vec<(CollectionKind, Url)>,
    /// The server refused a UID query once: no more are sent ([`DavAccount::search_uid`]).
    no_uid_query: Arc<AtomicBool>,
}

impl DavAccount {
    /// Connects `account_email`'s account: builds the HTTP client, discovers the home sets
    /// (or applies the templates) and checks the login.
    pub async fn connect(
        settings: &DavSettings,
        account_email: &str,
        login: DavLogin,
    ) -> Result<DavAccount, DavError> {
        let transport = Transport::new(settings)?;
        Self::connect_with(&transport, settings, account_email, login).await
    }

    /// Like [`DavAccount::connect`] with a transport shared by many accounts (one TLS setup).
    pub async fn connect_with(
        transport: &Transport,
        settings: &DavSettings,
        account_email: &str,
        login: DavLogin,
    ) -> Result<DavAccount, DavError> {
        let base = Url::parse(settings.base_url.trim())
            .map_err(|e| DavError::Config(format!("base URL {:?}: {e}", settings.base_url)))?;
        transport.check_url(&base)?;
        let mut http = Http::new(transport.clone(), login, &base, settings.max_in_flight);
        let mut defaults = Vec::new();
        for kind in [
            CollectionKind::Events,
            CollectionKind::Tasks,
            CollectionKind::Contacts,
        ] {
            if let Some(template) = settings.templates.get(kind) {
                let url = discovery::expand_template(&base, template, account_email)?;
                transport.check_url(&url)?;
                // A configured absolute template names a host the user trusts.
                http = http.trust(&url);
                defaults.push((kind, url));
            }
        }
        let mut homes = if settings.discover {
            match discovery::discover(&http, &base).await {
                Ok(homes) => homes,
                // A server whose discovery is broken (IceWarp's, per TbSync #113) still has
                // its template collections.
                Err(e @ (DavError::Unavailable { .. } | DavError::Protocol { .. }))
                    if !defaults.is_empty() =>
                {
                    tracing::warn!(error = %e, "DAV discovery failed; using the URL templates");
                    Homes::default()
                }
                Err(e) => return Err(e),
            }
        } else {
            Homes::default()
        };
        homes.fill_from_templates(&defaults);
        if homes.calendar.is_none() && homes.addressbook.is_none() {
            return Err(DavError::Discovery {
                user: account_email.to_string(),
                reason: "the server names no calendar or address book home \
                         (configure the collection URL templates)"
                    .into(),
            });
        }
        let account = DavAccount {
            http,
            base,
            email: account_email.to_string(),
            homes,
            defaults,
            no_uid_query: Arc::new(AtomicBool::new(false)),
        };
        if !settings.discover {
            // Templates alone send nothing yet: check the login now, not at the first write.
            account.check_login().await?;
        }
        Ok(account)
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    /// Where calendars and task lists are listed and created.
    pub fn calendar_home(&self) -> Option<&Url> {
        self.homes.calendar.as_ref()
    }

    /// Where address books are listed and created.
    pub fn addressbook_home(&self) -> Option<&Url> {
        self.homes.addressbook.as_ref()
    }

    /// The absolute URL of an href from the journal or a listing.
    pub fn url_of(&self, href: &DestRef) -> Result<Url, DavError> {
        self.base
            .join(&href.0)
            .map_err(|e| DavError::Config(format!("href {:?}: {e}", href.0)))
    }

    /// Writes the resource `text` with `uid` into `collection` (see the module doc, "Items").
    pub async fn put(
        &self,
        collection: &Collection,
        uid: &str,
        text: &[u8],
    ) -> Result<PutOutcome, DavError> {
        if uid.trim().is_empty() {
            return Err(DavError::Rejected {
                what: format!("a resource without UID in {}", collection.label()),
                reason: "no UID".into(),
            });
        }
        // A collection that existed before may hold this UID under another href.
        if !collection.created {
            if let Some(existing) = self.search_uid(collection, uid).await? {
                return self.update_found(collection, uid, &existing, text).await;
            }
        }
        let [primary, fallback] = collections::item_names(uid, collection.kind.extension());
        let names = if primary == fallback {
            vec![primary]
        } else {
            vec![primary, fallback]
        };
        for name in names {
            let url = collection
                .url
                .join(&name)
                .map_err(|e| DavError::Config(format!("resource name {name:?}: {e}")))?;
            let reply = self.write(collection, &url, text, Some("*"), None).await?;
            if reply.status.is_success() {
                let etag = self.etag_after_write(&reply).await?;
                return Ok(PutOutcome {
                    href: self.dest_ref(&url),
                    etag,
                    created: true,
                });
            }
            match reply.status.as_u16() {
                // Something is at this href already: our resource from an earlier run, or
                // (rarely) another UID whose name maps here.
                412 => {
                    let Some(existing) = self.get_url(&url).await? else {
                        return Err(DavError::Conflict {
                            href: url.path().to_string(),
                        });
                    };
                    let text_there = String::from_utf8_lossy(&existing.body);
                    if types::resource_uids(&text_there).iter().any(|u| u == uid) {
                        let item = ItemRef {
                            href: existing.href,
                            etag: existing.etag,
                        };
                        return self.update_found(collection, uid, &item, text).await;
                    }
                    continue;
                }
                403 | 409 if is_uid_conflict(&reply) => {
                    let found = match self.search_uid(collection, uid).await? {
                        Some(existing) => Some(existing),
                        None => self.conflicting(&reply, uid).await?,
                    };
                    return match found {
                        Some(existing) => self.update_found(collection, uid, &existing, text).await,
                        None => Err(self.rejected(collection, uid, &reply)),
                    };
                }
                _ => return Err(self.rejected(collection, uid, &reply)),
            }
        }
        Err(DavError::Rejected {
            what: format!("{uid} in {}", collection.label()),
            reason: "the resource names for this UID hold other resources".into(),
        })
    }

    /// Overwrites a resource the journal knows, only if it is unchanged since (`If-Match`
    /// with its ETag). A change at the destination is [`DavError::ChangedAtDestination`].
    pub async fn replace(
        &self,
        collection: &Collection,
        item: &ItemRef,
        text: &[u8],
    ) -> Result<PutOutcome, DavError> {
        let what = item.href.0.clone();
        self.update(collection, &what, item, text, |href| {
            DavError::ChangedAtDestination { href }
        })
        .await
    }

    /// [`DavAccount::find_by_uid`] for a write: a server that refuses the UID query (400, 403,
    /// 405, 501: it does not implement RFC 4791 §7.8 / RFC 6352 §8.6 queries, or not on this
    /// collection) finds nothing, and the write relies on `If-None-Match: *` and the 412 path
    /// alone. After the first refusal the account sends no more queries.
    async fn search_uid(
        &self,
        collection: &Collection,
        uid: &str,
    ) -> Result<Option<ItemRef>, DavError> {
        if self.no_uid_query.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match self.find_by_uid(collection, uid).await {
            Err(DavError::QueryRefused { reason }) => {
                if !self.no_uid_query.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        user = %self.email,
                        %reason,
                        "the DAV server refuses UID queries (REPORT); writes rely on \
                         If-None-Match and the resource name alone"
                    );
                }
                Ok(None)
            }
            other => other,
        }
    }

    /// The resource in `collection` whose UID is exactly `uid`, if any (lowest href first). A
    /// server that refuses the query itself (400, 403, 405, 501) is [`DavError::QueryRefused`].
    pub async fn find_by_uid(
        &self,
        collection: &Collection,
        uid: &str,
    ) -> Result<Option<ItemRef>, DavError> {
        let body = match collection.kind.component() {
            Some(component) => types::calendar_query_uid(component, uid),
            None => types::addressbook_query_uid(uid),
        };
        let reply = self
            .http
            .send(
                method("REPORT"),
                &collection.url,
                Headers::xml("1"),
                Some(body.into_bytes()),
            )
            .await?;
        if matches!(reply.status.as_u16(), 400 | 403 | 405 | 501) {
            return Err(DavError::QueryRefused {
                reason: reply.reason(),
            });
        }
        if reply.status.as_u16() != 207 {
            return Err(refusal(&reply, |reason| DavError::Rejected {
                what: format!("the search for {uid} in {}", collection.label()),
                reason,
            }));
        }
        let responses = types::parse_multistatus(&reply.body).map_err(|e| protocol(&reply, e))?;
        let mut found: Vec<ItemRef> = responses
            .into_iter()
            .filter(|r| {
                r.props
                    .data
                    .as_deref()
                    .is_some_and(|d| types::resource_uids(d).iter().any(|u| u == uid))
            })
            .filter_map(|r| {
                let url = reply.url.join(&r.href).ok()?;
                Some(ItemRef {
                    href: self.dest_ref(&url),
                    etag: r.props.etag,
                })
            })
            .collect();
        found.sort_by(|a, b| a.href.0.cmp(&b.href.0));
        Ok(found.into_iter().next())
    }

    /// The resource a `no-uid-conflict` refusal names, when it holds `uid` (read, for its ETag).
    async fn conflicting(&self, reply: &Reply, uid: &str) -> Result<Option<ItemRef>, DavError> {
        let Some(href) = types::uid_conflict_href(&reply.body) else {
            return Ok(None);
        };
        let Ok(url) = reply.url.join(&href) else {
            return Ok(None);
        };
        let Some(there) = self.get_url(&url).await? else {
            return Ok(None);
        };
        let text_there = String::from_utf8_lossy(&there.body);
        Ok(types::resource_uids(&text_there)
            .iter()
            .any(|u| u == uid)
            .then_some(ItemRef {
                href: there.href,
                etag: there.etag,
            }))
    }

    /// Every resource of `collection` with its ETag, by href (for verify).
    pub async fn list(&self, collection: &Collection) -> Result<Vec<ItemRef>, DavError> {
        let reply = self
            .http
            .send(
                method("PROPFIND"),
                &collection.url,
                Headers::xml("1"),
                Some(types::propfind_etags().into_bytes()),
            )
            .await?;
        if reply.status.as_u16() != 207 {
            return Err(refusal(&reply, |reason| DavError::Collection {
                action: "list",
                name: collection.label(),
                reason,
            }));
        }
        let responses = types::parse_multistatus(&reply.body).map_err(|e| protocol(&reply, e))?;
        let mut items: Vec<ItemRef> = responses
            .into_iter()
            .filter(|r| !r.props.resource_type.as_ref().is_some_and(|t| t.collection))
            .filter(|r| r.status.is_none_or(|s| (200..300).contains(&s)))
            .filter_map(|r| {
                let url = reply.url.join(&r.href).ok()?;
                (!collections::same_path(&url, &collection.url)).then(|| ItemRef {
                    href: self.dest_ref(&url),
                    etag: r.props.etag,
                })
            })
            .collect();
        items.sort_by(|a, b| a.href.0.cmp(&b.href.0));
        Ok(items)
    }

    /// Reads one resource; `None` when it is not there.
    pub async fn get(&self, href: &DestRef) -> Result<Option<Item>, DavError> {
        self.get_url(&self.url_of(href)?).await
    }

    /// Deletes a resource, only in the version `item.etag` names when known (`If-Match`). Used
    /// only to mirror a deletion at the source, for resources the migration wrote. A resource
    /// already gone is fine.
    pub async fn delete(&self, item: &ItemRef) -> Result<(), DavError> {
        let url = self.url_of(&item.href)?;
        let headers = match &item.etag {
            Some(etag) => Headers::new().with("if-match", etag)?,
            None => Headers::new(),
        };
        let reply = self
            .http
            .send(reqwest::Method::DELETE, &url, headers, None)
            .await?;
        match reply.status.as_u16() {
            200..=299 | 404 => Ok(()),
            412 => Err(DavError::ChangedAtDestination {
                href: url.path().to_string(),
            }),
            _ => Err(refusal(&reply, |reason| DavError::Rejected {
                what: format!("deleting {}", url.path()),
                reason,
            })),
        }
    }

    async fn get_url(&self, url: &Url) -> Result<Option<Item>, DavError> {
        let reply = self
            .http
            .send(reqwest::Method::GET, url, Headers::new(), None)
            .await?;
        match reply.status.as_u16() {
            200 => Ok(Some(Item {
                href: self.dest_ref(url),
                etag: reply.header("etag").map(str::to_string),
                body: reply.body,
            })),
            404 | 410 => Ok(None),
            _ => Err(refusal(&reply, |reason| DavError::Rejected {
                what: format!("reading {}", url.path()),
                reason,
            })),
        }
    }

    /// Updates an existing resource in place, guarded by its ETag; a 412 (it changed since
    /// that ETag) is what `stale` makes of the href.
    async fn update(
        &self,
        collection: &Collection,
        what: &str,
        existing: &ItemRef,
        text: &[u8],
        stale: impl FnOnce(String) -> DavError,
    ) -> Result<PutOutcome, DavError> {
        let url = self.url_of(&existing.href)?;
        let reply = self
            .write(collection, &url, text, None, existing.etag.as_deref())
            .await?;
        match reply.status.as_u16() {
            200..=299 => Ok(PutOutcome {
                href: self.dest_ref(&url),
                etag: self.etag_after_write(&reply).await?,
                created: false,
            }),
            412 => Err(stale(url.path().to_string())),
            _ => Err(self.rejected(collection, what, &reply)),
        }
    }

    /// [`DavAccount::update`] during a `put`: a change between lookup and write is a
    /// [`DavError::Conflict`], and the caller tries again.
    async fn update_found(
        &self,
        collection: &Collection,
        uid: &str,
        existing: &ItemRef,
        text: &[u8],
    ) -> Result<PutOutcome, DavError> {
        self.update(collection, uid, existing, text, |href| DavError::Conflict {
            href,
        })
        .await
    }

    /// One conditional PUT.
    async fn write(
        &self,
        collection: &Collection,
        url: &Url,
        text: &[u8],
        if_none_match: Option<&str>,
        if_match: Option<&str>,
    ) -> Result<Reply, DavError> {
        let mut headers = Headers::new().with("content-type", collection.kind.content_type())?;
        if let Some(v) = if_none_match {
            headers = headers.with("if-none-match", v)?;
        }
        if let Some(v) = if_match {
            headers = headers.with("if-match", v)?;
        }
        self.http
            .send(reqwest::Method::PUT, url, headers, Some(text.to_vec()))
            .await
    }

    /// The ETag of a resource just written: from the response, else asked for (a server that
    /// changed the data on storing sends none, RFC 4791 §5.3.4).
    async fn etag_after_write(&self, reply: &Reply) -> Result<Option<String>, DavError> {
        if let Some(etag) = reply.header("etag") {
            return Ok(Some(etag.to_string()));
        }
        let check = self
            .http
            .send(
                method("PROPFIND"),
                &reply.url,
                Headers::xml("0"),
                Some(types::propfind_etags().into_bytes()),
            )
            .await?;
        if check.status.as_u16() != 207 {
            return Ok(None);
        }
        let responses = types::parse_multistatus(&check.body).map_err(|e| protocol(&check, e))?;
        Ok(responses.into_iter().find_map(|r| r.props.etag))
    }

    fn rejected(&self, collection: &Collection, uid: &str, reply: &Reply) -> DavError {
        refusal(reply, |reason| DavError::Rejected {
            what: format!("{uid} in {}", collection.label()),
            reason,
        })
    }

    /// An href for the journal: the path when on the account's server, else the whole URL,
    /// in one canonical percent-encoding (servers differ: `@` or `%40`), so the same
    /// resource always has the same `DestRef`.
    fn dest_ref(&self, url: &Url) -> DestRef {
        let path = collections::canonical_path(url);
        if url.origin() == self.base.origin() {
            DestRef(path)
        } else {
            let mut url = url.clone();
            url.set_path(&path);
            DestRef(url.to_string())
        }
    }

    /// The collection URL the writer would use first ([`DavAccount::first_collection`]) and
    /// the status of an authenticated
    /// depth-0 PROPFIND on it; writes nothing. A template collection that does not exist yet
    /// is created by the writer, so on a 404 its parent (the account's home) is probed
    /// instead and returned. A 401 is [`DavError::Auth`]; the other statuses are for the
    /// caller to judge (207: usable).
    pub async fn probe(&self) -> Result<(Url, u16), DavError> {
        let Some(url) = self.first_collection() else {
            return Err(DavError::Discovery {
                user: self.email.clone(),
                reason: "the server names no calendar or address book home".into(),
            });
        };
        let reply = self.propfind_depth0(&url).await?;
        let status = reply.status.as_u16();
        let from_template = self.defaults.first().is_some_and(|(_, u)| *u == url);
        if status != 404 || !from_template {
            return Ok((url, status));
        }
        let Ok(parent) = url.join("..") else {
            return Ok((url, status));
        };
        let reply = self.propfind_depth0(&parent).await?;
        Ok((parent, reply.status.as_u16()))
    }

    /// The collection the writer would use first: a template's collection, else the calendar
    /// home, else the address-book home.
    fn first_collection(&self) -> Option<Url> {
        self.defaults
            .first()
            .map(|(_, u)| u.clone())
            .or_else(|| self.homes.calendar.clone())
            .or_else(|| self.homes.addressbook.clone())
    }

    /// An authenticated depth-0 PROPFIND of `url`'s collection properties; writes nothing.
    async fn propfind_depth0(&self, url: &Url) -> Result<Reply, DavError> {
        self.http
            .send(
                method("PROPFIND"),
                url,
                Headers::xml("0"),
                Some(types::propfind_collections().into_bytes()),
            )
            .await
    }

    /// One PROPFIND on a template collection, so a wrong password fails at connect.
    async fn check_login(&self) -> Result<(), DavError> {
        let Some(url) = self.first_collection() else {
            return Ok(());
        };
        let reply = self.propfind_depth0(&url).await?;
        if reply.status.is_server_error() {
            return Err(refusal(&reply, |reason| DavError::Discovery {
                user: self.email.clone(),
                reason,
            }));
        }
        Ok(())
    }
}

fn is_uid_conflict(reply: &Reply) -> bool {
    types::error_conditions(&reply.body)
        .iter()
        .any(|c| c.ends_with(":no-uid-conflict"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_contract() {
        let rejected = DavError::Rejected {
            what: "x".into(),
            reason: "400 Bad Request".into(),
        };
        assert_eq!(rejected.class(), ErrorClass::SkipItem);
        let auth = DavError::Auth {
            user: "a@b".into(),
            url: "https://x/".into(),
        };
        assert_eq!(auth.class(), ErrorClass::Fatal);
        assert_eq!(
            auth.to_string(),
            "the destination refused the login for a@b (https://x/)"
        );
        let busy = DavError::Unavailable {
            host: "x".into(),
            status: 503,
            reason: "503".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(busy.class(), ErrorClass::Retry);
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn statuses_map_to_retry_or_refusal() {
        let reply = |code: u16| Reply {
            url: Url::parse("https://dav.example.com/a.ics").unwrap(),
            status: reqwest::StatusCode::from_u16(code).unwrap(),
            headers: Default::default(),
            body: Vec::new(),
        };
        let make = |reason| DavError::Rejected {
            what: "x".into(),
            reason,
        };
        for code in [408, 429, 500, 502, 503, 504] {
            assert_eq!(
                refusal(&reply(code), make).class(),
                ErrorClass::Retry,
                "{code}"
            );
        }
        for code in [400, 403, 404, 409, 413, 415, 422, 501, 507] {
            assert_eq!(
                refusal(&reply(code), make).class(),
                ErrorClass::SkipItem,
                "{code}"
            );
        }
        assert!(
            refusal(&reply(507), make)
                .to_string()
                .contains("storage is full"),
            "a full server is named in plain words"
        );
    }
}
