//! # migrator-sim
//!
//! A stand-in for Microsoft 365 in tests, the demo and benchmarks: the Entra token endpoint
//! and the Microsoft Graph calls the migrator makes, served on 127.0.0.1, behaving as
//! Microsoft's documentation says (shared reference graph.md) rather than as the client
//! expects. It does not depend on the migrator's core.
//!
//! ## Layout
//! - [`tenant`]: the seeded tenant generator ([`generate_tenant`]).
//! - [`mime`]: the generated messages.
//! - `server`: the HTTP endpoints, tokens, paging, throttling, faults and the request log.

pub mod mime;
mod server;
pub mod tenant;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use tenant::{
    generate_tenant, Domain, MailFolder, Message, SizeProfile, Tenant, TenantSpec, User,
};

/// Exchange Online's per-mailbox limits (Graph docs, concepts/throttling-limits.md):
/// 4 concurrent requests and 10,000 requests per 10 minutes per app and mailbox.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxLimits {
    pub max_in_flight: u32,
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

/// Injected faults, each a probability per Graph request (seeded).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub error_rate_429: f64,
    pub error_rate_503: f64,
    pub error_rate_504: f64,
    /// A `$value` body cut off midway.
    pub reset_rate: f64,
    /// `$value` answers 504 (as Exchange does after ~30 s) for messages above this size.
    pub value_fails_above: Option<u64>,
    pub seed: u64,
}

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub tenant: TenantSpec,
    /// Mean latency added to each Graph request.
    pub latency: Duration,
    /// Uniform jitter around `latency`.
    pub jitter: Duration,
    /// `None`: no throttling.
    pub limits: Option<MailboxLimits>,
    /// `expires_in` of issued tokens; Graph answers 401 after it.
    pub token_lifetime: Duration,
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tenant: TenantSpec::default(),
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            limits: None,
            token_lifetime: Duration::from_secs(3599),
            faults: Faults::default(),
        }
    }
}

impl SimConfig {
    /// The demo tenant: 3 users, nested folders, 100 messages each, no throttling.
    pub fn demo() -> Self {
        SimConfig::default()
    }
}

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub at: Instant,
    pub finished: Instant,
    pub method: String,
    pub path_and_query: String,
    /// The user id of the mailbox addressed, if any.
    pub mailbox: Option<String>,
    pub status: u16,
    /// The `Retry-After` sent, in seconds.
    pub retry_after: Option<f64>,
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
        let tenant = Arc::new(generate_tenant(&config.tenant));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
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

    pub fn tenant_id(&self) -> &str {
        &self.state.tenant.id
    }

    pub fn client_id(&self) -> &str {
        &self.state.client_id
    }

    /// The one valid client secret value.
    pub fn client_secret(&self) -> &str {
        &self.state.client_secret
    }

    pub fn tenant(&self) -> Arc<Tenant> {
        self.state.tenant.clone()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
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

/// Shared log type.
pub(crate) type Log = Mutex<Vec<RequestRecord>>;
