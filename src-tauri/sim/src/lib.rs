//! # migrator-sim
//!
//! A stand-in for Microsoft 365 in tests, the demo and benchmarks: the Entra token endpoint
//! and the Microsoft Graph calls a migration makes, served in-process on 127.0.0.1 (only
//! there), behaving as Microsoft's documentation says (the shared reference `graph.md`, whose
//! sources are cited in the modules) rather than as any client expects. It does not depend
//! on the migrator's core.
//!
//! One [`SimServer`] serves both hosts at one URL: `POST /{tenant}/oauth2/v2.0/token` and
//! `GET /v1.0/...` (and `/beta/...`). Tests read the generated [`Tenant`] to compare bytes,
//! read the request log ([`SimServer::requests`]) to check a client's manners, and change
//! mailboxes between two delta rounds ([`SimServer::mutate`] and friends: messages, events
//! and single occurrences, contacts, tasks, and moves of events, contacts and tasks between
//! their collections).
//!
//! Each mailbox has mail and, unless [`TenantSpec::groupware`] says otherwise
//! ([`GroupwareSpec::none`]), calendars, contacts and To Do lists. Calendar series are kept
//! as Graph defines them (pattern, range, exceptions, cancellations) and expanded on request
//! by [`expand`], the same function tests use to know which occurrences a window holds.
//!
//! ## Layout
//! - [`tenant`]: the seeded tenant generator ([`generate_tenant`]) and the data model: people,
//!   shared and room mailboxes (`mailboxSettings.userPurpose`), groups, B2B guests, users
//!   without an Exchange Online mailbox, online archives.
//! - [`icewarp`]: an emulator of IceWarp's admin API, validated against its specification.
//! - [`mime`]: generated RFC 5322 messages, produced on demand from small recipes.
//! - [`calendar`]: calendars, events, Windows time zones, and series expansion ([`expand`]).
//! - [`groupware`]: contacts (with photos) and To Do tasks, and the per-mailbox generator
//!   of calendars, contacts and task lists ([`GroupwareSpec`]).
//! - [`attachments`]: a message's attachments, transport headers, and the S/MIME items
//!   `$value` cannot export, read from its MIME.
//! - `token`: the Entra client-credentials token endpoint, its AADSTS errors, token checks.
//! - `graph`: the Graph routes (users, domains, mail folders, messages, `$value`), paging,
//!   `$select`, `Prefer` headers, and Graph's error shapes.
//! - `graph_groups`: the group routes (`/groups`, `/groups/{id}/members`) for the tenant's
//!   Microsoft 365 groups, distribution lists and security groups ([`TenantSpec::groups`]).
//! - `graph_groupware`: the calendar group, calendar, event, contact and To Do routes (v1.0
//!   and beta),
//!   `Prefer: outlook.timezone`, calendarView and instances.
//! - `delta`: the delta queries (messages, mail folders, beta calendar events, contacts,
//!   contact folders, To Do lists and tasks) and the change log that feeds them.
//! - `throttle`: Exchange Online's per-mailbox limits, Graph's limit per app across the tenant,
//!   injected faults, simulated latency.
//! - `server`: shared state, the router, the request log and request ids.

pub mod attachments;
pub mod calendar;
pub mod groupware;
#[cfg(feature = "hostile")]
pub mod hostile;
pub mod icewarp;
pub mod mime;
pub mod tenant;

mod delta;
mod graph;
mod graph_groups;
mod graph_groupware;
mod server;
mod throttle;
mod token;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use calendar::{expand, Calendar, Event, EventException, Occurrence, Zone};
pub use groupware::{
    sample_contact, sample_event, sample_task, Contact, ContactFolder, GroupwareSpec, Photo,
    TodoList, TodoTask,
};
pub use mime::Mime;
pub use tenant::{
    generate_tenant, sample_message, system_folders, Domain, Group, GroupMember, MailFolder,
    MailboxSizes, Message, SizeProfile, Tenant, TenantSpec, User,
};

/// Exchange Online's per-app, per-mailbox limits (Graph docs, concepts/throttling-limits.md
/// §Outlook service limits): 4 concurrent requests and 10,000 requests per 10 minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxLimits {
    /// Requests in progress at once; one more gets 429 `MailboxConcurrency`.
    pub max_in_flight: u32,
    /// Requests per sliding `window`; one more gets 429 until the oldest leaves the window.
    pub budget: u32,
    pub window: Duration,
}

impl Default for MailboxLimits {
    fn default() -> Self {
        MailboxLimits {
            max_in_flight: 4,
            budget: 10_000,
            window: Duration::from_secs(600),
        }
    }
}

/// Graph's global limit per app across all tenants: "Any request: 130,000 requests per 10
/// seconds", evaluated besides the service limits, the first limit reached throttling
/// (learn.microsoft.com/graph/throttling-limits, global limits). Every Graph request counts,
/// the throttled ones too ("usage keeps accruing", concepts/throttling.md). One more is
/// answered 429 with `Retry-After` and throttling.md's sample body (code `TooManyRequests`).
#[derive(Debug, Clone, PartialEq)]
pub struct AppLimit {
    pub budget: u32,
    pub window: Duration,
    /// Announce the use of the limit with the headers Graph documents for its Identity
    /// limits (throttling-limits.md, "Identity and access service limits"): a response sent
    /// past 0.8 of the budget carries `x-ms-throttle-limit-percentage` (0.8 to 1.8), a
    /// throttled one `x-ms-throttle-scope: Application/...`. Whether the global limit sends
    /// them is not documented, so the tests run both ways and the client never needs them.
    pub announce: bool,
}

impl Default for AppLimit {
    fn default() -> Self {
        AppLimit {
            budget: 130_000,
            window: Duration::from_secs(10),
            announce: false,
        }
    }
}

/// Injected faults: each rate is a probability per Graph request, drawn from a generator
/// seeded with `seed`. Default: none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// 429 `ApplicationThrottled` with `Retry-After`.
    pub error_rate_429: f64,
    /// 503 `ServiceUnavailable`, with `Retry-After` about half the time (the docs say "may").
    pub error_rate_503: f64,
    /// 504 `GatewayTimeout`, no `Retry-After`.
    pub error_rate_504: f64,
    /// A `$value` body cut off midway (the connection is reset after part of the bytes).
    pub reset_rate: f64,
    /// `$value` answers 504 for messages larger than this (as Exchange does for large items),
    /// and so does an event attachment, or a listing of event attachments with their bytes,
    /// carrying more.
    pub value_fails_above: Option<u64>,
    /// Each page of a collection (list or delta round) of two or more items ends with an item
    /// the next page starts with again: a page repeating an item already returned.
    pub repeat_page_item: bool,
    /// One mailbox throttled for a long time, whatever the limits.
    pub long_throttle: Option<LongThrottle>,
    pub seed: u64,
}

/// A mailbox Exchange keeps throttling: its first `answers` requests are answered 429
/// `ApplicationThrottled` "Application is over its MailboxConcurrency limit." with
/// `Retry-After: retry_after`. Throttling lasts as long as usage keeps accruing
/// (concepts/throttling.md: "usage keeps accruing while throttled"), also from other apps'
/// use of the mailbox; suggested backoffs of five minutes are reported (imapsync
/// FAQ.Office365), so a long throttle is many answers. The count stands for the time: a
/// test gives a short `Retry-After` and many answers.
#[derive(Debug, Clone, PartialEq)]
pub struct LongThrottle {
    /// The user id of the mailbox.
    pub mailbox: String,
    pub answers: u32,
    pub retry_after: Duration,
}

/// How the simulator behaves. Build it with `..SimConfig::default()` so new knobs do not
/// break callers.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub tenant: TenantSpec,
    /// Mean latency added to each Graph request before it is answered.
    pub latency: Duration,
    /// Uniform jitter of ± this around `latency`.
    pub jitter: Duration,
    /// `None`: no throttling.
    pub limits: Option<MailboxLimits>,
    /// `None`: no limit per app across the tenant.
    pub app_limit: Option<AppLimit>,
    /// `expires_in` of issued tokens; Graph answers 401 once a token is older.
    pub token_lifetime: Duration,
    pub faults: Faults,
    /// `Retry-After` for the request-budget 429 in fractional seconds (`2.128`, which the
    /// Graph docs show) instead of whole seconds (what Exchange usually sends).
    pub fractional_retry_after: bool,
    /// The application permissions granted (the token's `roles`); Graph answers 403 to calls
    /// a missing one would allow. Default: all the migrator needs ([`ROLES`]).
    pub roles: Vec<String>,
    /// Serve beta's per-calendar events delta. `false`: a cloud without it (API availability
    /// differs per cloud, shared reference graph.md §1), which answers it as v1.0 does: 400.
    pub beta_events_delta: bool,
    /// The Microsoft cloud the tenant lives in: which Graph resource its token endpoint
    /// knows, and which APIs its Graph serves.
    pub cloud: NationalCloud,
    /// How a delta or page link whose sync state expired is refused
    /// ([`SimServer::expire_delta_tokens`]).
    pub delta_expiry: DeltaExpiry,
}

/// A Microsoft cloud (Graph docs concepts/deployments.md). Each has its own Graph App ID
/// URI, the only resource its token endpoint issues Graph tokens for; APIs differ per cloud
/// (each API page's "national cloud deployments" table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NationalCloud {
    #[default]
    Global,
    UsGov,
    UsGovDod,
    /// Operated by 21Vianet.
    China,
}

impl NationalCloud {
    /// The Graph resource (App ID URI) of this cloud (concepts/deployments.md, "Microsoft
    /// Graph and Graph Explorer service root endpoints").
    pub fn graph_resource(self) -> &'static str {
        match self {
            NationalCloud::Global => "https://graph.microsoft.com",
            NationalCloud::UsGov => "https://graph.microsoft.us",
            NationalCloud::UsGovDod => "https://dod-graph.microsoft.us",
            NationalCloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

/// The answer to a delta link whose sync state expired. The docs name the codes but not one
/// status per code, so each answer seen in the sources is a choice and tests run them all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeltaExpiry {
    /// 410 `SyncStateNotFound` with a `Location` (microsoft-graph-docs#2350: a calendarView
    /// delta link answered "410 Gone", code SyncStateNotFound; delta-query-overview
    /// "Synchronization reset").
    #[default]
    Gone,
    /// 400 `syncStateNotFound`: "a 40X-series error with error codes such as
    /// syncStateNotFound" (learn.microsoft.com/graph/delta-query-overview, "Token duration");
    /// a BadRequest with that code (devblogs.microsoft.com/microsoft365dev, "Duration of change
    /// tracking tokens", 2020).
    BadRequest,
    /// 410 `resyncRequired` (learn.microsoft.com/graph/errors, code table: "The delta token is
    /// no longer valid, and the app must reset the sync state").
    ResyncRequired,
    /// 400 `SyncStateInvalid` (alcionai/corso#3176: a delta link of another id type is refused
    /// with it; the status is not documented).
    SyncStateInvalid,
}

impl DeltaExpiry {
    pub const ALL: [DeltaExpiry; 4] = [
        DeltaExpiry::Gone,
        DeltaExpiry::BadRequest,
        DeltaExpiry::ResyncRequired,
        DeltaExpiry::SyncStateInvalid,
    ];
}

/// Every application permission the simulated app is granted by default.
pub const ROLES: [&str; 7] = [
    "User.Read.All",
    "Domain.Read.All",
    "Mail.Read",
    "Calendars.Read",
    "Contacts.Read",
    "Tasks.Read.All",
    "MailboxSettings.Read",
];

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tenant: TenantSpec::default(),
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            limits: None,
            app_limit: None,
            token_lifetime: Duration::from_secs(3599),
            faults: Faults::default(),
            fractional_retry_after: false,
            roles: ROLES.iter().map(|r| r.to_string()).collect(),
            beta_events_delta: true,
            cloud: NationalCloud::Global,
            delta_expiry: DeltaExpiry::default(),
        }
    }
}

impl SimConfig {
    /// The demo tenant: 3 users with nested folders and 100 messages each (a few MB in all),
    /// no throttling, no latency.
    pub fn demo() -> Self {
        SimConfig {
            tenant: TenantSpec {
                max_attachment: 24 * 1024,
                ..TenantSpec::default()
            },
            ..SimConfig::default()
        }
    }
}

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// When it arrived.
    pub at: Instant,
    /// When its response body was sent completely (or abandoned).
    pub finished: Instant,
    pub method: String,
    pub path_and_query: String,
    /// The mailbox addressed: the user's id when the path names a known user (by id or
    /// UPN), else the path segment as given.
    pub mailbox: Option<String>,
    pub status: u16,
    /// The `Retry-After` sent, in seconds.
    pub retry_after: Option<f64>,
    /// For a page of a collection (listing or delta round): what chose its size.
    pub page_size: Option<PageSizeBy>,
    /// Answered 429 for the app's limit across the tenant ([`AppLimit`]), not a mailbox's.
    pub app_throttled: bool,
}

/// What chose the size of a collection page: the request's `$top`, its `Prefer:
/// odata.maxpagesize`, or neither (the server's default, 10 for most Outlook collections:
/// Graph docs api/user-list-messages.md, concepts/paging.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSizeBy {
    Top,
    Prefer,
    ServerDefault,
}

/// A running simulator. Dropping it without [`SimServer::shutdown`] also stops it.
pub struct SimServer {
    url: String,
    state: Arc<server::State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimServer {
    /// Generates the tenant and starts serving on 127.0.0.1 at a free port.
    pub async fn start(config: SimConfig) -> std::io::Result<SimServer> {
        SimServer::start_on(config, 0).await
    }

    /// Like [`SimServer::start`], on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(config: SimConfig, port: u16) -> std::io::Result<SimServer> {
        let tenant = generate_tenant(&config.tenant);
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(server::State::new(config, tenant, url.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(state.clone());
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!("simulator stopped: {e}");
            }
        });
        Ok(SimServer {
            url,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`: both the login host and the Graph host.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The tenant (directory) id, a GUID.
    pub fn tenant_id(&self) -> &str {
        &self.state.tenant_id
    }

    /// The application (client) id, a GUID.
    pub fn client_id(&self) -> &str {
        &self.state.client_id
    }

    /// The one valid client secret value.
    pub fn client_secret(&self) -> &str {
        &self.state.client_secret
    }

    /// The id of the client secret (what people paste by mistake; Entra rejects it with
    /// AADSTS7000215).
    pub fn client_secret_id(&self) -> &str {
        &self.state.client_secret_id
    }

    /// The tenant as it is now (after any mutations).
    pub fn tenant(&self) -> Arc<Tenant> {
        self.state.snapshot()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.requests()
    }

    /// Changes the tenant. Every message added, changed (any property) or removed in a folder
    /// shows up in that folder's next delta round; see also the shortcuts below.
    pub fn mutate<R>(&self, change: impl FnOnce(&mut Tenant) -> R) -> R {
        self.state.mutate(change)
    }

    /// Adds `message` to a folder (`folder`: id or well-known name) of a user (id or UPN).
    /// Returns false if the user or folder does not exist.
    pub fn add_message(&self, user: &str, folder: &str, message: Message) -> bool {
        self.mutate(|t| match folder_mut(t, user, folder) {
            Some(f) => {
                let at = f
                    .messages
                    .iter()
                    .position(|m| m.received <= message.received)
                    .unwrap_or(f.messages.len());
                f.messages.insert(at, message);
                true
            }
            None => false,
        })
    }

    /// Moves a message (by immutable id) to another folder of the same mailbox.
    pub fn move_message(&self, user: &str, message: &str, to_folder: &str) -> bool {
        self.mutate(|t| {
            let Some(u) = user_mut(t, user) else {
                return false;
            };
            let Some(target) = find_folder(u, to_folder) else {
                return false;
            };
            let Some(m) = take_message(u, message) else {
                return false;
            };
            let f = &mut u.folders[target];
            let at = f
                .messages
                .iter()
                .position(|x| x.received <= m.received)
                .unwrap_or(f.messages.len());
            f.messages.insert(at, m);
            true
        })
    }

    /// Deletes a message (hard delete: it leaves the mailbox).
    pub fn delete_message(&self, user: &str, message: &str) -> bool {
        self.mutate(|t| {
            user_mut(t, user)
                .and_then(|u| take_message(u, message))
                .is_some()
        })
    }

    /// Sets a message's `flag.flagStatus` (notFlagged | flagged | complete).
    pub fn set_flag(&self, user: &str, message: &str, flag_status: &str) -> bool {
        self.update_message(user, message, |m| m.flag_status = flag_status.to_string())
    }

    /// Sets a message's `isRead`.
    pub fn set_read(&self, user: &str, message: &str, is_read: bool) -> bool {
        self.update_message(user, message, |m| m.is_read = is_read)
    }

    /// Applies `change` to one message in place.
    pub fn update_message(
        &self,
        user: &str,
        message: &str,
        change: impl FnOnce(&mut Message),
    ) -> bool {
        self.mutate(|t| {
            let m = user_mut(t, user).and_then(|u| {
                u.folders
                    .iter_mut()
                    .flat_map(|f| f.messages.iter_mut())
                    .find(|m| m.id == message)
            });
            match m {
                Some(m) => {
                    change(m);
                    true
                }
                None => false,
            }
        })
    }

    /// Adds `event` to a calendar (`calendar`: its id, or `None` for the default calendar).
    pub fn add_event(&self, user: &str, calendar: Option<&str>, event: Event) -> bool {
        self.mutate(|t| {
            let cal = user_mut(t, user).and_then(|u| match calendar {
                Some(id) => u.calendars.iter_mut().find(|c| c.id == id),
                None => u.calendars.first_mut(),
            });
            match cal {
                Some(c) => {
                    c.events.push(event);
                    true
                }
                None => false,
            }
        })
    }

    /// Applies `change` to a single event or series master; its `lastModifiedDateTime`
    /// becomes now.
    pub fn update_event(&self, user: &str, event: &str, change: impl FnOnce(&mut Event)) -> bool {
        self.with_event(user, event, |e| {
            change(e);
            e.last_modified = now();
            true
        })
    }

    /// Deletes a single event or a whole series.
    pub fn delete_event(&self, user: &str, event: &str) -> bool {
        self.mutate(|t| {
            user_mut(t, user).is_some_and(|u| {
                u.calendars.iter_mut().any(|c| {
                    let before = c.events.len();
                    c.events.retain(|e| e.id != event);
                    c.events.len() != before
                })
            })
        })
    }

    /// Edits one occurrence of a series (its pattern date `date`): it becomes an exception at
    /// the new wall-clock times (in the series' zone) with the new subject. Returns the
    /// exception's id, or `None` if there is no such series or live occurrence.
    pub fn edit_occurrence(
        &self,
        user: &str,
        master: &str,
        date: time::Date,
        start: time::PrimitiveDateTime,
        end: time::PrimitiveDateTime,
        subject: &str,
    ) -> Option<String> {
        let mut id = None;
        self.with_event(user, master, |e| {
            if !e.is_pattern_date(date) || e.cancelled.contains(&date) {
                return false;
            }
            let modified = now();
            let x = match e.exceptions.iter_mut().find(|x| x.original_date == date) {
                Some(x) => x,
                None => {
                    let new_id = format!(
                        "AAMkAGI2EXC{:016x}",
                        graph::fnv(&[e.id.as_bytes(), date.to_string().as_bytes()])
                    );
                    e.exceptions.push(EventException {
                        id: new_id,
                        original_date: date,
                        start,
                        end,
                        subject: String::new(),
                        location: e.location.clone(),
                        last_modified: modified,
                    });
                    let last = e.exceptions.len() - 1;
                    &mut e.exceptions[last]
                }
            };
            x.start = start;
            x.end = end;
            x.subject = subject.to_string();
            x.last_modified = modified;
            id = Some(x.id.clone());
            e.last_modified = modified;
            true
        });
        id
    }

    /// Cancels one occurrence of a series (a modified one too): it leaves calendarView and
    /// instances and joins the master's cancelled occurrences.
    pub fn cancel_occurrence(&self, user: &str, master: &str, date: time::Date) -> bool {
        self.with_event(user, master, |e| {
            if !e.is_pattern_date(date) || e.cancelled.contains(&date) {
                return false;
            }
            e.exceptions.retain(|x| x.original_date != date);
            e.cancelled.push(date);
            e.last_modified = now();
            true
        })
    }

    fn with_event(&self, user: &str, event: &str, change: impl FnOnce(&mut Event) -> bool) -> bool {
        self.mutate(|t| {
            let e = user_mut(t, user).and_then(|u| {
                u.calendars
                    .iter_mut()
                    .flat_map(|c| c.events.iter_mut())
                    .find(|e| e.id == event)
            });
            e.is_some_and(change)
        })
    }

    /// Adds a contact to a folder (`folder`: its id, or `None` for the default folder).
    pub fn add_contact(&self, user: &str, folder: Option<&str>, contact: Contact) -> bool {
        self.mutate(|t| {
            let f = user_mut(t, user).and_then(|u| match folder {
                Some(id) => u.contact_folders.iter_mut().find(|f| f.id == id),
                None => u.contact_folders.first_mut(),
            });
            f.map(|f| f.contacts.push(contact)).is_some()
        })
    }

    /// Applies `change` to a contact; its `lastModifiedDateTime` becomes now.
    pub fn update_contact(
        &self,
        user: &str,
        contact: &str,
        change: impl FnOnce(&mut Contact),
    ) -> bool {
        self.mutate(|t| {
            contact_mut(t, user, contact)
                .map(|c| {
                    change(c);
                    c.last_modified = now();
                })
                .is_some()
        })
    }

    /// Gives a contact `photo` (`None`: removes it); its photo then answers as
    /// api/profilephoto-get.md documents (metadata and `$value`, or 404 `ImageNotFound`).
    /// Whether a photo change alone gives the contact a new `changeKey` and
    /// `lastModifiedDateTime` is not documented (resources/contact.md: "every time the contact
    /// is changed, ChangeKey changes as well"; the photo is an attachment of the contact item,
    /// flagged by its PidLidHasPicture property, MS-OXOCNTC): `new_version` picks the answer.
    pub fn set_contact_photo(
        &self,
        user: &str,
        contact: &str,
        photo: Option<Photo>,
        new_version: bool,
    ) -> bool {
        self.mutate(|t| {
            contact_mut(t, user, contact)
                .map(|c| {
                    c.photo = photo;
                    if new_version {
                        c.last_modified = now();
                    }
                })
                .is_some()
        })
    }

    /// Deletes a contact.
    pub fn delete_contact(&self, user: &str, contact: &str) -> bool {
        self.mutate(|t| {
            user_mut(t, user).is_some_and(|u| {
                u.contact_folders.iter_mut().any(|f| {
                    let before = f.contacts.len();
                    f.contacts.retain(|c| c.id != contact);
                    f.contacts.len() != before
                })
            })
        })
    }

    /// Adds a task to a To Do list.
    pub fn add_task(&self, user: &str, list: &str, task: TodoTask) -> bool {
        self.mutate(|t| {
            let l = user_mut(t, user).and_then(|u| u.todo_lists.iter_mut().find(|l| l.id == list));
            l.map(|l| l.tasks.push(task)).is_some()
        })
    }

    /// Applies `change` to a task; its `lastModifiedDateTime` becomes now.
    pub fn update_task(&self, user: &str, task: &str, change: impl FnOnce(&mut TodoTask)) -> bool {
        self.mutate(|t| {
            let found = user_mut(t, user).and_then(|u| {
                u.todo_lists
                    .iter_mut()
                    .flat_map(|l| l.tasks.iter_mut())
                    .find(|x| x.id == task)
            });
            found
                .map(|x| {
                    change(x);
                    x.last_modified = now();
                })
                .is_some()
        })
    }

    /// Marks a task completed now (status `completed`, `completedDateTime` set).
    pub fn complete_task(&self, user: &str, task: &str) -> bool {
        self.update_task(user, task, |x| {
            x.status = "completed".into();
            x.completed = Some(Zone::windows(&x.zone).wall(now()));
        })
    }

    /// Deletes a task.
    pub fn delete_task(&self, user: &str, task: &str) -> bool {
        self.mutate(|t| {
            user_mut(t, user).is_some_and(|u| {
                u.todo_lists.iter_mut().any(|l| {
                    let before = l.tasks.len();
                    l.tasks.retain(|x| x.id != task);
                    l.tasks.len() != before
                })
            })
        })
    }

    /// Moves a single event or series master (by its immutable id, which a move keeps:
    /// Graph docs concepts/outlook-immutable-id.md) to another calendar of the same mailbox.
    /// It leaves the old calendar's events delta (`@removed`) and joins the new one's.
    pub fn move_event(&self, user: &str, event: &str, to_calendar: &str) -> bool {
        self.mutate(|t| {
            let Some(u) = user_mut(t, user) else {
                return false;
            };
            let Some(to) = u.calendars.iter().position(|c| c.id == to_calendar) else {
                return false;
            };
            let taken = u.calendars.iter_mut().find_map(|c| {
                let at = c.events.iter().position(|e| e.id == event)?;
                Some(c.events.remove(at))
            });
            taken.map(|e| u.calendars[to].events.push(e)).is_some()
        })
    }

    /// Moves a contact (its immutable id kept) to another contact folder (`None`: the
    /// default folder) of the same mailbox.
    pub fn move_contact(&self, user: &str, contact: &str, to_folder: Option<&str>) -> bool {
        self.mutate(|t| {
            let Some(u) = user_mut(t, user) else {
                return false;
            };
            let to = match to_folder {
                Some(id) => u.contact_folders.iter().position(|f| f.id == id),
                None => (!u.contact_folders.is_empty()).then_some(0),
            };
            let Some(to) = to else {
                return false;
            };
            let taken = u.contact_folders.iter_mut().find_map(|f| {
                let at = f.contacts.iter().position(|c| c.id == contact)?;
                Some(f.contacts.remove(at))
            });
            taken
                .map(|c| u.contact_folders[to].contacts.push(c))
                .is_some()
        })
    }

    /// Moves a task to another To Do list. To Do is not among the resources whose ids are
    /// documented to survive a move (concepts/outlook-immutable-id.md lists message, event,
    /// contact, outlookTask), so the caller says which id the task has afterwards:
    /// `new_id` `None` keeps it.
    pub fn move_task(&self, user: &str, task: &str, to_list: &str, new_id: Option<&str>) -> bool {
        self.mutate(|t| {
            let Some(u) = user_mut(t, user) else {
                return false;
            };
            let Some(to) = u.todo_lists.iter().position(|l| l.id == to_list) else {
                return false;
            };
            let taken = u.todo_lists.iter_mut().find_map(|l| {
                let at = l.tasks.iter().position(|x| x.id == task)?;
                Some(l.tasks.remove(at))
            });
            taken
                .map(|mut x| {
                    if let Some(id) = new_id {
                        x.id = id.to_string();
                    }
                    u.todo_lists[to].tasks.push(x)
                })
                .is_some()
        })
    }

    /// Invalidates every delta link issued so far: following one answers as
    /// [`SimConfig::delta_expiry`] says (by default `410 Gone` with a `Location` to start a full
    /// round again, Graph docs concepts/delta-query-overview.md §Synchronization reset).
    pub fn expire_delta_tokens(&self) {
        if let Ok(mut changes) = self.state.changes.lock() {
            changes.expire_tokens();
        }
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

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Now, to the second.
fn now() -> time::OffsetDateTime {
    let t = time::OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn user_mut<'a>(t: &'a mut Tenant, key: &str) -> Option<&'a mut User> {
    t.users
        .iter_mut()
        .find(|u| u.id.eq_ignore_ascii_case(key) || u.user_principal_name.eq_ignore_ascii_case(key))
}

/// A contact of a user (id or UPN), in any contact folder.
fn contact_mut<'a>(t: &'a mut Tenant, user: &str, contact: &str) -> Option<&'a mut Contact> {
    user_mut(t, user).and_then(|u| {
        u.contact_folders
            .iter_mut()
            .flat_map(|f| f.contacts.iter_mut())
            .find(|c| c.id == contact)
    })
}

fn find_folder(u: &User, key: &str) -> Option<usize> {
    u.folders.iter().position(|f| {
        f.id == key
            || f.well_known_name
                .as_deref()
                .is_some_and(|w| w.eq_ignore_ascii_case(key))
    })
}

fn folder_mut<'a>(t: &'a mut Tenant, user: &str, folder: &str) -> Option<&'a mut MailFolder> {
    let u = user_mut(t, user)?;
    let i = find_folder(u, folder)?;
    u.folders.get_mut(i)
}

fn take_message(u: &mut User, id: &str) -> Option<Message> {
    u.folders.iter_mut().find_map(|f| {
        let i = f.messages.iter().position(|m| m.id == id)?;
        Some(f.messages.remove(i))
    })
}
