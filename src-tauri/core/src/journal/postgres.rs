//! The shared backend: a PostgreSQL database, for many workers on many machines (issue 18).
//!
//! **Why a connection thread.** The journal's callers run inside Tokio runtimes of either
//! flavour or none (`report`). So the PostgreSQL client (`tokio-postgres`) lives on one
//! dedicated thread with its own current-thread runtime; each journal call sends its
//! statement there and awaits the answer on a oneshot channel. The engine's calls per item
//! (`*_async` on [`super::Journal`]) await it, so the runtime thread runs other tasks during
//! the round trip (issue 18: on a runtime of one thread per CPU, two blocked calls stopped the
//! whole run); the other calls are synchronous and park their thread until the answer
//! ([`block_on`]), as a SQLite call waits for its mutex and the disk. A journal has
//! [`PostgresSettings::connections`] such threads, each with its own connection, taking the
//! calls in turn: a worker's lease loops do not queue behind one connection's round trips.
//!
//! **Schema.** The migrations in `migrations/postgres/` (numbered, applied in order, each
//! recorded in `schema_migrations`) run when the journal opens, under an advisory lock so
//! workers starting together apply each one once.
//!
//! **Connection settings** follow libpq's: a `postgres://user@host:port/db` URL whose
//! `sslmode` is `disable`, `prefer` (libpq's default), `require`, `verify-ca` or
//! `verify-full`, and `sslrootcert` the CA file
//! (<https://www.postgresql.org/docs/15/libpq-ssl.html#LIBPQ-SSL-PROTECTION>). The password
//! never is in the URL: it comes from [`PASSWORD_VARIABLE`].

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_rustls::rustls;

use super::sql::{Row, Value};
use super::JournalError;
use crate::secrets::Secret;

/// The environment variable that holds the PostgreSQL journal's password.
pub const PASSWORD_VARIABLE: &str = "M365_MIGRATOR_JOURNAL_PASSWORD";

/// The migrations, in order: (version, SQL).
const MIGRATIONS: [(i64, &str); 4] = [
    (
        1,
        include_str!("../../migrations/postgres/0001_journal.sql"),
    ),
    (2, include_str!("../../migrations/postgres/0002_leases.sql")),
    (
        3,
        include_str!("../../migrations/postgres/0003_user_destination.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_workers.sql"),
    ),
];

/// Taken (per transaction) while migrations are applied; any fixed number of our own.
const MIGRATION_LOCK: i64 = 0x6d33_3635_6a6e_6c01;

/// How to verify the server, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, not verified (libpq's default).
    Prefer,
    /// TLS, not verified; with `sslrootcert`, verified as `verify-ca` (as libpq does).
    Require,
    /// TLS, the chain verified, not the host name.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    /// The mode as libpq spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// What is wrong with the server's certificate, when `e` is its refusal in the TLS handshake
/// (the verifier's [`rustls::Error`], inside the I/O error tokio-postgres wraps it in).
fn certificate_problem(e: &tokio_postgres::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let mut source = std::error::Error::source(e);
    let refusal = loop {
        let s = source?;
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>());
        if let Some(r) = inner.or_else(|| s.downcast_ref::<rustls::Error>()) {
            break r;
        }
        source = s.source();
    };
    let rustls::Error::InvalidCertificate(problem) = refusal else {
        return None;
    };
    Some(match problem {
        C::UnknownIssuer => "is not signed by a certificate authority of".to_string(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "is not made out for the host the URL names, checked against".to_string()
        }
        C::Expired | C::ExpiredContext { .. } => "has expired, checked against".to_string(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "is not valid yet, checked against".to_string()
        }
        C::Revoked => "was revoked, checked against".to_string(),
        // The issuer's name found among the roots, its key not the one that signed.
        C::BadSignature => "has a signature no certificate authority made of".to_string(),
        other => format!("is refused ({other:?}), checked against"),
    })
}

/// Why a `[journal] url` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalUrlError {
    #[error("[journal] url must start with postgres:// or postgresql://")]
    Scheme,
    #[error("[journal] url is not a PostgreSQL URL: {0}")]
    Syntax(String),
    #[error("[journal] url must not hold a password: set it in the environment variable {PASSWORD_VARIABLE}")]
    Password,
    #[error("[journal] url names no host")]
    NoHost,
    #[error(
        "[journal] url: sslmode={0} is not one of disable, prefer, require, verify-ca, verify-full"
    )]
    SslMode(String),
    #[error("[journal] url: sslrootcert {} cannot be read", path.display())]
    RootCert {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("[journal] url: sslrootcert {} holds no certificate", path.display())]
    NoCertificate { path: PathBuf },
}

/// Where the PostgreSQL journal is and how to reach it (no password).
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub root_cert: Option<PathBuf>,
    /// `user@host:port/db`, for messages.
    pub target: String,
    /// How long a journal call waits for a server that went away (`[run] outage_wait`).
    pub outage_wait: std::time::Duration,
    /// How many connections serve the journal's calls at once (at least 1; a worker opens
    /// one per lease loop, up to [`MAX_CONNECTIONS`]).
    pub connections: usize,
}

/// The most connections one journal opens: each is a server process on PostgreSQL's side
/// (`max_connections`, 100 by default, is shared by the whole fleet).
pub const MAX_CONNECTIONS: usize = 4;

impl PostgresSettings {
    /// Parses a journal URL. Reads `sslrootcert` now, so a missing file is a configuration
    /// error before any data moves.
    pub fn parse(url: &str) -> Result<Self, JournalUrlError> {
        let parsed = url::Url::parse(url).map_err(|e| JournalUrlError::Syntax(e.to_string()))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(JournalUrlError::Scheme);
        }
        if parsed.password().is_some() {
            return Err(JournalUrlError::Password);
        }
        let host = parsed.host_str().filter(|h| !h.is_empty());
        let Some(host) = host else {
            return Err(JournalUrlError::NoHost);
        };
        let mut ssl_mode = SslMode::Prefer;
        let mut root_cert = None;
        let mut rest = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "sslmode" => {
                    ssl_mode = match value.as_ref() {
                        "disable" => SslMode::Disable,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => return Err(JournalUrlError::SslMode(other.to_string())),
                    }
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(value.as_ref())),
                "password" => return Err(JournalUrlError::Password),
                _ => {
                    rest.append_pair(&key, &value);
                }
            }
        }
        let mut plain = parsed.clone();
        let rest = rest.finish();
        plain.set_query((!rest.is_empty()).then_some(rest.as_str()));
        let mut config = tokio_postgres::Config::from_str(plain.as_str())
            .map_err(|e| JournalUrlError::Syntax(e.to_string()))?;
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        config.application_name("m365-migrate");
        let settings = PostgresSettings {
            target: format!(
                "{}@{host}:{}{}",
                parsed.username(),
                parsed.port().unwrap_or(5432),
                parsed.path()
            ),
            config,
            ssl_mode,
            root_cert,
            outage_wait: crate::config::DEFAULT_OUTAGE_WAIT,
            connections: 1,
        };
        settings.tls_config()?;
        Ok(settings)
    }

    /// The TLS client configuration for the mode (`None` for `disable`).
    fn tls_config(&self) -> Result<Option<rustls::ClientConfig>, JournalUrlError> {
        if self.ssl_mode == SslMode::Disable {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        if let Some(path) = &self.root_cert {
            use rustls_pki_types::pem::PemObject;
            let pem = std::fs::read(path).map_err(|source| JournalUrlError::RootCert {
                path: path.clone(),
                source,
            })?;
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem).flatten() {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(JournalUrlError::NoCertificate { path: path.clone() });
            }
        } else if matches!(self.ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull) {
            // libpq reads ~/.postgresql/root.crt; the system's CAs are this program's default.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
        let verify_chain = match self.ssl_mode {
            SslMode::VerifyCa | SslMode::VerifyFull => true,
            // "If a root CA file exists, the behavior of sslmode=require will be the same as
            // that of verify-ca" (libpq-ssl.html, 34.19.1).
            _ => self.root_cert.is_some(),
        };
        let chain = if verify_chain {
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| JournalUrlError::Syntax(e.to_string()))?;
            Some(verifier)
        } else {
            None
        };
        let verifier = LibpqVerifier {
            chain,
            check_name: self.ssl_mode == SslMode::VerifyFull,
            provider: provider.clone(),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| JournalUrlError::Syntax(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(Some(config))
    }
}

/// Verifies a server certificate as libpq's `sslmode` says: not at all, the chain only, or
/// the chain and the host name.
#[derive(Debug)]
struct LibpqVerifier {
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        let Some(chain) = &self.chain else {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) if !self.check_name => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) if *ty == Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
            Value::Int(v) => v.to_sql(ty, out),
            Value::Text(t) => t.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8 | Type::INT4 | Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME
        )
    }

    tokio_postgres::types::to_sql_checked!();
}

/// The journal's SQL (`?N` parameters) as PostgreSQL writes it (`$N`).
fn dollar_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn read_row(row: &tokio_postgres::Row) -> Result<Row, tokio_postgres::Error> {
    read_row_from(row, 0)
}

/// A row's columns from the `first`.
fn read_row_from(row: &tokio_postgres::Row, first: usize) -> Result<Row, tokio_postgres::Error> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate().skip(first) {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into()))
        } else {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

/// What one journal call asks of the database.
enum Work {
    Execute(String, Vec<Value>),
    Query(String, Vec<Value>),
    /// Statements in one transaction, after a guard query that must find a row (else
    /// nothing is written and the answer is `None`); the answer holds the last statement's
    /// changed-row count and its `RETURNING` rows.
    Transaction(Guard, Statements),
    /// As `Transaction`, for statements that touch different rows and read nothing another
    /// writes: run as one statement ([`one_statement`]); the answer holds the sum of their
    /// changed-row counts, and a lone statement's `RETURNING` rows.
    AtOnce(Guard, Statements),
}

/// The database's answer to one [`Work`].
enum Answer {
    Count(u64),
    Rows(Vec<Row>),
    Applied(Option<(u64, Vec<Row>)>),
}

enum Request {
    /// One call, answered on `reply`.
    Call {
        work: Work,
        reply: oneshot::Sender<Result<Answer, tokio_postgres::Error>>,
    },
    /// Records under one guard to commit together ([`PostgresStore::durable`]), each told
    /// how it ended.
    Durable { guard: Guard, batch: Vec<Queued> },
}

/// The PostgreSQL journal's connection, served by its own thread.
#[derive(Debug)]
pub(super) struct PostgresStore {
    requests: Mutex<mpsc::Sender<Request>>,
    pub target: String,
    group: Arc<GroupCommit>,
}

/// A guard query and its arguments ([`PostgresStore::guarded_transaction`]), as sent.
type Guard = Option<(String, Vec<Value>)>;

/// Statements and their arguments, as sent.
type Statements = Vec<(String, Vec<Value>)>;

/// Records that say an item is done, committed together ([`PostgresStore::durable`]): while a
/// transaction of records under one guard (one lease, or none) is in flight, the records under
/// that guard that arrive wait and share the next one, as SQLite's group commit shares one
/// sync of its WAL. The connection thread that committed a transaction sends the next one
/// ([`commit_together`]): no caller leads, so a waiting record depends on no other caller's
/// thread or task (one that is blocked, or went away).
#[derive(Debug, Default)]
struct GroupCommit {
    state: Mutex<GroupState>,
}

#[derive(Debug, Default)]
struct GroupState {
    /// Records waiting for the transaction under their guard in flight to end.
    waiting: Vec<Queued>,
    /// The guards whose shared transaction is in flight.
    in_flight: Vec<Guard>,
}

impl GroupCommit {
    fn lock(&self) -> std::sync::MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
struct Queued {
    guard: Guard,
    statement: (String, Vec<Value>),
    told: oneshot::Sender<Told>,
}

/// How a record's shared transaction ended: `Some(())` committed, `None` the guard found no
/// row (nothing was written); `Err` it failed, with the error when the record was alone in
/// it, else `None`: the record is sent again on its own, for its own answer.
type Told = Result<Option<()>, Option<tokio_postgres::Error>>;

/// Commits `batch` (records under `guard`) in one transaction on `connection`, tells each
/// record how it ended, then does the same with the records under `guard` that arrived
/// meanwhile, until none did.
fn commit_together(
    runtime: &tokio::runtime::Runtime,
    connection: &Connection,
    group: &GroupCommit,
    guard: Guard,
    mut batch: Vec<Queued>,
) {
    loop {
        let statements = batch.iter().map(|q| q.statement.clone()).collect();
        let work = Work::Transaction(guard.clone(), statements);
        let answer = runtime.block_on(connection.serve(&work));
        WAITS.record_share(batch.len());
        match answer {
            Ok(Answer::Applied(applied)) => {
                for q in batch {
                    let _ = q.told.send(Ok(applied.as_ref().map(|_| ())));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(q) = batch.into_iter().next() {
                    let _ = q.told.send(Err(Some(e)));
                }
            }
            _ => {
                for q in batch {
                    let _ = q.told.send(Err(None));
                }
            }
        }
        let mut state = group.lock();
        let (next, rest): (Vec<Queued>, Vec<Queued>) = std::mem::take(&mut state.waiting)
            .into_iter()
            .partition(|q| q.guard == guard);
        state.waiting = rest;
        if next.is_empty() {
            state.in_flight.retain(|g| *g != guard);
            return;
        }
        batch = next;
    }
}

/// How long the journal's callers waited for PostgreSQL, for the whole process (issue 18's
/// coordination benchmark reads it: [`call_waits`]).
struct Waits {
    calls: AtomicU64,
    answered_nanos: AtomicU64,
    blocked_calls: AtomicU64,
    blocked_nanos: AtomicU64,
    shared_transactions: AtomicU64,
    shared_records: AtomicU64,
    largest_share: AtomicU64,
}

static WAITS: Waits = Waits {
    calls: AtomicU64::new(0),
    answered_nanos: AtomicU64::new(0),
    blocked_calls: AtomicU64::new(0),
    blocked_nanos: AtomicU64::new(0),
    shared_transactions: AtomicU64::new(0),
    shared_records: AtomicU64::new(0),
    largest_share: AtomicU64::new(0),
};

impl Waits {
    fn record_share(&self, records: usize) {
        let records = records as u64;
        self.shared_transactions.fetch_add(1, Ordering::Relaxed);
        self.shared_records.fetch_add(records, Ordering::Relaxed);
        self.largest_share.fetch_max(records, Ordering::Relaxed);
    }
}

/// What the PostgreSQL journal's callers waited for in this process so far.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct CallWaits {
    /// Calls sent to a connection thread, and their time from sending to the answer.
    pub calls: u64,
    pub answered_seconds: f64,
    /// Synchronous calls that parked their thread (a runtime worker thread when called from
    /// a task), and how long in all.
    pub blocked_calls: u64,
    pub blocked_seconds: f64,
    /// Transactions of "done" records ([`PostgresStore::durable`]), the records in them, and
    /// the most in one.
    pub shared_transactions: u64,
    pub shared_records: u64,
    pub largest_share: u64,
}

/// [`CallWaits`] of this process so far.
pub fn call_waits() -> CallWaits {
    let seconds = |n: &AtomicU64| Duration::from_nanos(n.load(Ordering::Relaxed)).as_secs_f64();
    CallWaits {
        calls: WAITS.calls.load(Ordering::Relaxed),
        answered_seconds: seconds(&WAITS.answered_nanos),
        blocked_calls: WAITS.blocked_calls.load(Ordering::Relaxed),
        blocked_seconds: seconds(&WAITS.blocked_nanos),
        shared_transactions: WAITS.shared_transactions.load(Ordering::Relaxed),
        shared_records: WAITS.shared_records.load(Ordering::Relaxed),
        largest_share: WAITS.largest_share.load(Ordering::Relaxed),
    }
}

fn add_nanos(counter: &AtomicU64, since: Instant) {
    let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
    counter.fetch_add(nanos, Ordering::Relaxed);
}

/// Runs `call` to its end on this thread, parked while it waits: how the journal's
/// synchronous methods run their asynchronous forms. The journal's futures wait only for a
/// connection thread's answer or another caller's (never for this thread's runtime), so they
/// end from any context: a task of either runtime flavour, or none. Tokio's cooperative
/// budget is not consulted (`unconstrained`): a task that spent it would otherwise be told
/// to yield, which it cannot do here, and spin.
pub(super) fn block_on<F: Future>(call: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut call = std::pin::pin!(tokio::task::unconstrained(call));
    let mut parked: Option<Instant> = None;
    loop {
        if let std::task::Poll::Ready(out) = call.as_mut().poll(&mut cx) {
            if let Some(since) = parked {
                WAITS.blocked_calls.fetch_add(1, Ordering::Relaxed);
                add_nanos(&WAITS.blocked_nanos, since);
            }
            return out;
        }
        parked.get_or_insert_with(Instant::now);
        std::thread::park();
    }
}

fn params(args: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// True when `e` says the server or the connection went away (the server stopped, restarted,
/// or cannot be reached): the work is tried again once it is back. An error the server
/// answered about the statement itself is not.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match e.code() {
        // 57P01 admin_shutdown (a fast or smart stop), 57P02 crash_shutdown, 57P03
        // cannot_connect_now (starting up or shutting down): appendix A, Error Codes,
        // <https://www.postgresql.org/docs/15/errcodes-appendix.html>.
        Some(code) => [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(code),
        None => true,
    }
}

/// A live connection and the statements prepared on it, by SQL text. tokio-postgres prepares
/// a statement given as text before each run of it (a round trip of its own); the journal's
/// SQL texts are a fixed set, so each is prepared once per connection.
struct Session {
    client: tokio_postgres::Client,
    prepared: std::collections::HashMap<String, tokio_postgres::Statement>,
}

impl Session {
    fn new(client: tokio_postgres::Client) -> Self {
        Session {
            client,
            prepared: std::collections::HashMap::new(),
        }
    }
}

/// `sql` prepared on `client` (a connection or a transaction on it), from `prepared` when it
/// was before.
async fn prepared<C: tokio_postgres::GenericClient>(
    client: &C,
    prepared: &mut std::collections::HashMap<String, tokio_postgres::Statement>,
    sql: &str,
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    if let Some(statement) = prepared.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql).await?;
    prepared.insert(sql.to_string(), statement.clone());
    Ok(statement)
}

/// One connection that is made again when the server went away.
struct Connection {
    config: tokio_postgres::Config,
    tls: Option<rustls::ClientConfig>,
    client: tokio::sync::Mutex<Option<Session>>,
    /// Waits between reconnections, as for any server that is down.
    pacer: crate::graph::Pacer,
    outage: crate::graph::OutagePolicy,
}

impl Connection {
    async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let client = self.connect_only().await?;
        // A worker paused (SIGSTOP, a frozen VM) inside one of the journal's short
        // transactions would hold its row locks, and every other worker touching those rows
        // would wait for it; the server ends such a session after this long, which releases
        // them (<https://www.postgresql.org/docs/15/runtime-config-client.html>, 20.11.1).
        client
            .batch_execute("SET idle_in_transaction_session_timeout = '5s'")
            .await?;
        Ok(client)
    }

    async fn connect_only(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        match &self.tls {
            None => {
                let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                Ok(client)
            }
            Some(tls) => {
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls.clone());
                let (client, connection) = self.config.connect(tls).await?;
                tokio::spawn(connection);
                Ok(client)
            }
        }
    }

    /// Does `work`; while the server is away, reconnects and does it again through the
    /// pacer, up to the outage limit (`[run] outage_wait`). A transaction cut off before its
    /// commit was rolled back by the server, so doing it again writes it once; every journal
    /// statement is idempotent, except a run's `INSERT` (then one extra run row).
    async fn serve(&self, work: &Work) -> Result<Answer, tokio_postgres::Error> {
        use crate::graph::pacer::Verdict;
        let result = self
            .pacer
            .call_within(
                Some(&self.outage),
                |_| async {
                    let mut slot = self.client.lock().await;
                    let mut client = match slot.take().filter(|c| !c.client.is_closed()) {
                        Some(client) => client,
                        None => match self.connect().await {
                            Ok(client) => Session::new(client),
                            Err(error) => return Verdict::Down { after: None, error },
                        },
                    };
                    let result = run_work(&mut client, work).await;
                    match result {
                        Ok(answer) => {
                            *slot = Some(client);
                            Verdict::Done(answer)
                        }
                        Err(error) if connection_lost(&error) => {
                            tracing::warn!(
                                "the PostgreSQL journal went away; waiting for it: {error}"
                            );
                            Verdict::Down { after: None, error }
                        }
                        Err(error) => {
                            *slot = Some(client);
                            Verdict::Fail(error)
                        }
                    }
                },
                |_| {},
            )
            .await;
        result.map_err(|gave_up| match gave_up {
            crate::graph::GaveUp::Down { error, .. } | crate::graph::GaveUp::Failed(error) => error,
        })
    }
}

async fn run_work(session: &mut Session, work: &Work) -> Result<Answer, tokio_postgres::Error> {
    let Session {
        client,
        prepared: cache,
    } = session;
    match work {
        Work::Execute(sql, args) => {
            let statement = prepared(client, cache, sql).await?;
            client
                .execute(&statement, &params(args))
                .await
                .map(Answer::Count)
        }
        Work::Query(sql, args) => {
            let statement = prepared(client, cache, sql).await?;
            let rows = client.query(&statement, &params(args)).await?;
            rows.iter()
                .map(read_row)
                .collect::<Result<_, _>>()
                .map(Answer::Rows)
        }
        Work::Transaction(guard, statements) if statements.len() != 1 => {
            pipelined_transaction(client, cache, guard.as_ref(), statements).await
        }
        Work::Transaction(guard, statements) | Work::AtOnce(guard, statements) => {
            one_statement(client, cache, guard.as_ref(), statements).await
        }
    }
}

/// True when `sql` reads back rows it wrote (`RETURNING`).
fn returns_rows(sql: &str) -> bool {
    sql.contains("RETURNING")
}

/// `sql` with each `$N` parameter numbered `$(N + by)`.
fn shift_parameters(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// Writes after `guard` as one statement: PostgreSQL runs a single statement as its own
/// transaction, so this is the transaction of [`pipelined_transaction`] in one message
/// instead of one per statement plus `BEGIN`, the guard and `COMMIT`, each answered on its
/// own. The guard and the writes are the `WITH` queries of one statement that selects the
/// guard's row: the guard query is read, so it runs (and fails with `division_by_zero` when
/// it finds no row, as in [`failing_guard`]); each write, a data-modifying `WITH` query, "is
/// executed exactly once, and always to completion"
/// (<https://www.postgresql.org/docs/15/queries-with.html#QUERIES-WITH-MODIFYING>); an error
/// in any undoes all, and the guard's row lock is held until the statement commits. The
/// writes share one snapshot and run in no set order, hence more than one only when they
/// touch different rows and none reads what another writes ([`Work::AtOnce`]). A lone write's
/// `RETURNING` rows are read back through a left join on the guard's row, so the guard runs
/// whether or not the write returns any. Most of a worker's journal transactions are one
/// write under its lease (issue 18: the "done" records, a folder's round).
async fn one_statement(
    client: &tokio_postgres::Client,
    cache: &mut std::collections::HashMap<String, tokio_postgres::Statement>,
    guard: Option<&(String, Vec<Value>)>,
    statements: &[(String, Vec<Value>)],
) -> Result<Answer, tokio_postgres::Error> {
    let returning = match statements {
        [(sql, _)] => returns_rows(sql),
        _ => false,
    };
    if let (None, [(sql, args)]) = (guard, statements) {
        let statement = prepared(client, cache, sql).await?;
        return if returning {
            let rows = client.query(&statement, &params(args)).await?;
            let rows: Vec<Row> = rows.iter().map(read_row).collect::<Result<_, _>>()?;
            Ok(Answer::Applied(Some((rows.len() as u64, rows))))
        } else {
            let changed = client.execute(&statement, &params(args)).await?;
            Ok(Answer::Applied(Some((changed, Vec::new()))))
        };
    }
    if guard.is_none() && statements.is_empty() {
        return Ok(Answer::Applied(Some((0, Vec::new()))));
    }
    let mut queries = Vec::with_capacity(statements.len() + 1);
    let mut all: Vec<Value> = Vec::new();
    if let Some((guard_sql, guard_args)) = guard {
        queries.push(format!("fence AS ({})", failing_guard(guard_sql)));
        all.extend(guard_args.iter().cloned());
    }
    let mut counts = Vec::with_capacity(statements.len());
    for (i, (sql, args)) in statements.iter().enumerate() {
        let body = shift_parameters(sql.trim_end().trim_end_matches(';'), all.len());
        let marker = if returning { "" } else { " RETURNING 1" };
        queries.push(format!("w{i} AS ({body}{marker})"));
        counts.push(format!("(SELECT COUNT(*) FROM w{i})"));
        all.extend(args.iter().cloned());
    }
    let ok = if guard.is_some() { "fence.ok" } else { "1" };
    let from = if guard.is_some() { " FROM fence" } else { "" };
    let select = if returning {
        format!(
            "SELECT {ok}, w.* FROM fence LEFT JOIN (SELECT 1 AS present, * FROM w0) AS w ON true"
        )
    } else {
        let sum = if counts.is_empty() {
            "0".to_string()
        } else {
            counts.join(" + ")
        };
        format!("SELECT {ok}, {sum}{from}")
    };
    let combined = format!("WITH {} {select}", queries.join(", "));
    let statement = prepared(client, cache, &combined).await?;
    match client.query(&statement, &params(&all)).await {
        Ok(rows) if returning => {
            // Columns: the guard's, the marker (NULL when the write returned no row), the
            // write's.
            let present = rows
                .iter()
                .filter(|row| matches!(row.try_get::<_, Option<i32>>(1), Ok(Some(_))));
            let rows: Vec<Row> = present
                .map(|row| read_row_from(row, 2))
                .collect::<Result<_, _>>()?;
            Ok(Answer::Applied(Some((rows.len() as u64, rows))))
        }
        Ok(rows) => {
            let changed: i64 = match rows.first() {
                Some(row) => row.try_get(1)?,
                None => 0,
            };
            Ok(Answer::Applied(Some((
                u64::try_from(changed).unwrap_or(0),
                Vec::new(),
            ))))
        }
        Err(e)
            if guard.is_some()
                && e.code() == Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO) =>
        {
            Ok(Answer::Applied(None))
        }
        Err(e) => Err(e),
    }
}

/// One step of a pipelined transaction.
enum Step<'a> {
    /// `BEGIN`, `COMMIT` or `ROLLBACK`, sent as a simple query.
    Control(&'static str),
    /// A prepared statement; `rows`: read its `RETURNING` rows, else count what it changed.
    Statement {
        statement: tokio_postgres::Statement,
        args: &'a [Value],
        rows: bool,
    },
}

async fn run_step(
    client: &tokio_postgres::Client,
    step: Step<'_>,
) -> Result<(u64, Vec<Row>), tokio_postgres::Error> {
    match step {
        Step::Control(sql) => client.batch_execute(sql).await.map(|()| (0, Vec::new())),
        Step::Statement {
            statement,
            args,
            rows: true,
        } => {
            let rows = client.query(&statement, &params(args)).await?;
            let rows: Vec<Row> = rows.iter().map(read_row).collect::<Result<_, _>>()?;
            Ok((rows.len() as u64, rows))
        }
        Step::Statement {
            statement, args, ..
        } => Ok((client.execute(&statement, &params(args)).await?, Vec::new())),
    }
}

/// `guard` as a query that fails with `division_by_zero` when the guard finds no row (and
/// still locks the rows it finds, `FOR UPDATE` in a subquery).
fn failing_guard(guard: &str) -> String {
    format!("SELECT 1 / COUNT(*)::int AS ok FROM ({guard}) AS guard")
}

/// `BEGIN`, the guard, the statements and `COMMIT` in one round trip: tokio-postgres sends a
/// request when its future is first polled and pipelines the requests so sent
/// (<https://docs.rs/tokio-postgres/0.7/tokio_postgres/#pipelining>). The guard fails when
/// it finds no row; an error inside a transaction block aborts it, every later statement
/// fails, and "if the transaction is in an aborted state then no changes will be made and
/// the effect of the COMMIT will be identical to that of ROLLBACK"
/// (<https://www.postgresql.org/docs/current/sql-commit.html>), so nothing is written unless
/// all of it is. A statement that fails before it is sent (a parameter it cannot encode) is
/// seen before the last step, which is then `ROLLBACK`.
async fn pipelined_transaction(
    client: &tokio_postgres::Client,
    cache: &mut std::collections::HashMap<String, tokio_postgres::Statement>,
    guard: Option<&(String, Vec<Value>)>,
    statements: &[(String, Vec<Value>)],
) -> Result<Answer, tokio_postgres::Error> {
    use futures_util::future::{maybe_done, MaybeDone};
    use std::future::Future as _;
    let guard_sql = guard.map(|(sql, _)| failing_guard(sql));
    let mut steps = vec![Step::Control("BEGIN")];
    if let (Some(sql), Some((_, args))) = (&guard_sql, guard) {
        steps.push(Step::Statement {
            statement: prepared(client, cache, sql).await?,
            args,
            rows: true,
        });
    }
    for (sql, args) in statements {
        steps.push(Step::Statement {
            statement: prepared(client, cache, sql).await?,
            args,
            rows: returns_rows(sql),
        });
    }
    let mut sent: Vec<_> = steps
        .into_iter()
        .map(|step| Box::pin(maybe_done(run_step(client, step))))
        .collect();
    // Each step's first poll queues its messages, in order; none is answered before this
    // task yields (the connection is served by another task of this thread's runtime).
    std::future::poll_fn(|cx| {
        for step in sent.iter_mut() {
            let _ = step.as_mut().poll(cx);
        }
        std::task::Poll::Ready(())
    })
    .await;
    let refused = sent.iter().any(|s| matches!(&**s, MaybeDone::Done(Err(_))));
    let mut end = Box::pin(maybe_done(run_step(
        client,
        Step::Control(if refused { "ROLLBACK" } else { "COMMIT" }),
    )));
    std::future::poll_fn(|cx| {
        let _ = end.as_mut().poll(cx);
        std::task::Poll::Ready(())
    })
    .await;
    let mut results = Vec::with_capacity(sent.len());
    for mut step in sent {
        step.as_mut().await;
        results.push(step.as_mut().take_output());
    }
    end.as_mut().await;
    let end = end.as_mut().take_output();
    let mut results = results.into_iter().flatten();
    let mut last = (0, Vec::new());
    let mut first_error = None;
    for (i, result) in results.by_ref().enumerate() {
        match result {
            Err(e) if connection_lost(&e) => return Err(e),
            Err(e)
                if i == 1
                    && guard.is_some()
                    && e.code() == Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO) =>
            {
                return Ok(Answer::Applied(None));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
            Ok(answer) => last = answer,
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    match end {
        Some(Err(e)) => Err(e),
        _ => Ok(Answer::Applied(Some(last))),
    }
}

/// Serves the journal's calls from `inbox` on `connection` until every sender is gone; the
/// connections of one journal take turns at the one inbox, each call going to a free one.
fn serve_requests(
    runtime: &tokio::runtime::Runtime,
    connection: &Connection,
    inbox: &Mutex<mpsc::Receiver<Request>>,
    group: &GroupCommit,
) {
    loop {
        let next = inbox.lock().unwrap_or_else(|p| p.into_inner()).recv();
        match next {
            Err(_) => return,
            // A caller that stopped waiting is no reason to stop serving the others.
            Ok(Request::Call { work, reply }) => {
                let _ = reply.send(runtime.block_on(connection.serve(&work)));
            }
            Ok(Request::Durable { guard, batch }) => {
                commit_together(runtime, connection, group, guard, batch)
            }
        }
    }
}

/// Applies the migrations not yet recorded, one transaction each, under [`MIGRATION_LOCK`].
async fn migrate(
    client: &mut tokio_postgres::Client,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let applied: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if applied > known {
        return Ok(Some(applied));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(None)
}

impl PostgresStore {
    /// Connects, applies the migrations, and starts the connection's thread. A server that
    /// cannot be reached now is an error at once (before any data moves); one that goes away
    /// later is waited for, up to `settings.outage_wait`.
    pub fn open(
        settings: &PostgresSettings,
        password: Option<&Secret>,
    ) -> Result<Self, JournalError> {
        let target = settings.target.clone();
        let mut config = settings.config.clone();
        if let Some(password) = password {
            config.password(password.expose());
        }
        let tls = settings
            .tls_config()
            .map_err(|e| JournalError::Settings(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| JournalError::Thread { source })?;
        let outage_wait = settings.outage_wait;
        let new_connection = move || Connection {
            config: config.clone(),
            tls: tls.clone(),
            client: tokio::sync::Mutex::new(None),
            pacer: crate::graph::Pacer::new(crate::graph::PacerSettings {
                min_backoff: std::time::Duration::from_millis(200),
                max_backoff: std::time::Duration::from_secs(5),
                ..crate::graph::PacerSettings::default()
            }),
            outage: crate::graph::OutagePolicy::new(outage_wait),
        };
        let connection = new_connection();
        let roots = match &settings.root_cert {
            Some(path) => format!("sslrootcert {}", path.display()),
            None => "the system's certificate authorities".to_string(),
        };
        let mode = settings.ssl_mode.as_str();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (requests, inbox) = mpsc::channel::<Request>();
        let inbox = Arc::new(Mutex::new(inbox));
        let first_inbox = inbox.clone();
        let group = Arc::new(GroupCommit::default());
        let first_group = group.clone();
        let thread_target = target.clone();
        std::thread::Builder::new()
            .name("journal-postgres".into())
            .spawn(move || {
                let connected = runtime.block_on(async {
                    let mut client = connection.connect().await?;
                    let newer = migrate(&mut client).await?;
                    Ok::<_, tokio_postgres::Error>((client, newer))
                });
                match connected {
                    Ok((client, None)) => {
                        *connection.client.blocking_lock() = Some(Session::new(client));
                        let _ = ready_tx.send(Ok(()));
                    }
                    Ok((_, Some(found))) => {
                        let _ = ready_tx.send(Err(JournalError::NewerPostgresSchema {
                            target: thread_target,
                            found,
                        }));
                        return;
                    }
                    Err(source) => {
                        let _ = ready_tx.send(Err(match certificate_problem(&source) {
                            Some(problem) => JournalError::Certificate {
                                target: thread_target,
                                problem: format!("{problem} {roots} (sslmode={mode})"),
                            },
                            None => JournalError::Postgres {
                                target: thread_target,
                                source,
                            },
                        }));
                        return;
                    }
                };
                serve_requests(&runtime, &connection, &first_inbox, &first_group);
            })
            .map_err(|source| JournalError::Thread { source })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {
                // The other connections are made on their first call (the schema is there).
                for _ in 1..settings.connections.clamp(1, MAX_CONNECTIONS) {
                    let (connection, inbox, group) =
                        (new_connection(), inbox.clone(), group.clone());
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|source| JournalError::Thread { source })?;
                    std::thread::Builder::new()
                        .name("journal-postgres".into())
                        .spawn(move || serve_requests(&runtime, &connection, &inbox, &group))
                        .map_err(|source| JournalError::Thread { source })?;
                }
                Ok(PostgresStore {
                    requests: Mutex::new(requests),
                    target,
                    group,
                })
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(JournalError::Stopped { target }),
        }
    }

    /// Sends `work` to a connection thread and awaits its answer, without holding the
    /// calling thread.
    async fn ask(&self, work: Work) -> Result<Answer, JournalError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || JournalError::Stopped {
            target: self.target.clone(),
        };
        let sent = Instant::now();
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Request::Call { work, reply })
            .map_err(|_| stopped())?;
        let answer = answer.await;
        WAITS.calls.fetch_add(1, Ordering::Relaxed);
        add_nanos(&WAITS.answered_nanos, sent);
        answer
            .map_err(|_| stopped())?
            .map_err(|source| JournalError::Postgres {
                target: self.target.clone(),
                source,
            })
    }

    /// Runs one statement; the rows it changed.
    pub async fn execute_async(&self, sql: &str, args: Vec<Value>) -> Result<u64, JournalError> {
        match self
            .ask(Work::Execute(dollar_parameters(sql), args))
            .await?
        {
            Answer::Count(n) => Ok(n),
            _ => Err(JournalError::Column { index: 0 }),
        }
    }

    pub fn query(&self, sql: &str, args: Vec<Value>) -> Result<Vec<Row>, JournalError> {
        block_on(self.query_async(sql, args))
    }

    /// [`PostgresStore::query`], awaited.
    pub async fn query_async(&self, sql: &str, args: Vec<Value>) -> Result<Vec<Row>, JournalError> {
        match self.ask(Work::Query(dollar_parameters(sql), args)).await? {
            Answer::Rows(rows) => Ok(rows),
            _ => Err(JournalError::Column { index: 0 }),
        }
    }

    /// `statements` in one transaction, awaited.
    pub async fn transaction(&self, statements: &[(&str, Vec<Value>)]) -> Result<(), JournalError> {
        self.guarded_transaction(None, statements).await.map(|_| ())
    }

    /// [`PostgresStore::transaction`] after `guard`, a query that must find a row (it should
    /// lock it, `FOR UPDATE`, so what it checked holds until the commit). `None`: it found
    /// none and nothing was written; else the last statement's changed-row count and
    /// `RETURNING` rows. Awaited.
    pub async fn guarded_transaction(
        &self,
        guard: Option<(&str, Vec<Value>)>,
        statements: &[(&str, Vec<Value>)],
    ) -> Result<Option<(u64, Vec<Row>)>, JournalError> {
        self.guarded(Work::Transaction, guard, statements).await
    }

    /// [`PostgresStore::guarded_transaction`] for statements that touch different rows and
    /// read nothing another writes, as one statement ([`Work::AtOnce`]); `Some` holds the sum
    /// of their changed-row counts.
    pub async fn guarded_at_once(
        &self,
        guard: Option<(&str, Vec<Value>)>,
        statements: &[(&str, Vec<Value>)],
    ) -> Result<Option<(u64, Vec<Row>)>, JournalError> {
        self.guarded(Work::AtOnce, guard, statements).await
    }

    async fn guarded(
        &self,
        work: fn(Guard, Statements) -> Work,
        guard: Option<(&str, Vec<Value>)>,
        statements: &[(&str, Vec<Value>)],
    ) -> Result<Option<(u64, Vec<Row>)>, JournalError> {
        let guard = guard.map(|(sql, args)| (dollar_parameters(sql), args));
        let statements = statements
            .iter()
            .map(|(sql, args)| (dollar_parameters(sql), args.clone()))
            .collect();
        self.applied(work(guard, statements)).await
    }

    async fn applied(&self, work: Work) -> Result<Option<(u64, Vec<Row>)>, JournalError> {
        match self.ask(work).await? {
            Answer::Applied(applied) => Ok(applied),
            _ => Err(JournalError::Column { index: 0 }),
        }
    }

    /// Runs `sql` after `guard` (as [`PostgresStore::guarded_transaction`]) in one transaction
    /// with the other records under the same guard that arrived while one of theirs was in
    /// flight (a group commit, [`GroupCommit`]); returns once this record is committed.
    /// `None`: the guard found no row and nothing was written. Every shared transaction runs
    /// the guard, so under a lease nothing commits once the lease is lost. Awaited: a caller
    /// waiting for its transaction, or for the one in flight before it, holds no thread.
    pub async fn durable(
        &self,
        guard: Option<(&str, Vec<Value>)>,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Option<()>, JournalError> {
        let guard: Guard = guard.map(|(sql, args)| (dollar_parameters(sql), args));
        let statement = (dollar_parameters(sql), args);
        let stopped = || JournalError::Stopped {
            target: self.target.clone(),
        };
        let sent = Instant::now();
        let (told, heard) = oneshot::channel();
        let queued = Queued {
            guard: guard.clone(),
            statement: statement.clone(),
            told,
        };
        let first = {
            let mut state = self.group.lock();
            if state.in_flight.contains(&guard) {
                state.waiting.push(queued);
                None
            } else {
                state.in_flight.push(guard.clone());
                Some(queued)
            }
        };
        if let Some(first) = first {
            let request = Request::Durable {
                guard: guard.clone(),
                batch: vec![first],
            };
            let refused = self
                .requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .send(request);
            if refused.is_err() {
                // No connection thread is left: every record under this guard hears so.
                let mut state = self.group.lock();
                state.in_flight.retain(|g| *g != guard);
                state.waiting.retain(|q| q.guard != guard);
            }
        }
        let told = heard.await;
        WAITS.calls.fetch_add(1, Ordering::Relaxed);
        add_nanos(&WAITS.answered_nanos, sent);
        match told {
            Ok(Ok(applied)) => Ok(applied),
            Ok(Err(Some(source))) => Err(JournalError::Postgres {
                target: self.target.clone(),
                source,
            }),
            Ok(Err(None)) => {
                let applied = self
                    .applied(Work::Transaction(guard, vec![statement]))
                    .await;
                applied.map(|applied| applied.map(|_| ()))
            }
            Err(_) => Err(stopped()),
        }
    }

    /// Records waiting for a transaction of [`PostgresStore::durable`] under way.
    pub fn durable_waiting(&self) -> usize {
        self.group.lock().waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statements_parameters_are_numbered_after_its_guards() {
        assert_eq!(
            shift_parameters(
                "UPDATE t SET a = $3 WHERE b = $1 AND c = $12 AND d = '$'",
                4
            ),
            "UPDATE t SET a = $7 WHERE b = $5 AND c = $16 AND d = '$'"
        );
    }

    #[test]
    fn parameters_are_numbered_with_dollars() {
        assert_eq!(
            dollar_parameters("UPDATE t SET a = ?3 WHERE b = ?1 AND c = ?12 AND d = '?'"),
            "UPDATE t SET a = $3 WHERE b = $1 AND c = $12 AND d = '?'"
        );
    }

    #[test]
    fn a_journal_url_keeps_the_password_out_and_knows_libpq_ssl_modes() {
        let s = PostgresSettings::parse("postgres://mig@db.example:6432/journal?sslmode=require")
            .unwrap();
        assert_eq!(s.ssl_mode, SslMode::Require);
        assert_eq!(s.target, "mig@db.example:6432/journal");
        assert_eq!(
            PostgresSettings::parse("postgres://db.example/j")
                .unwrap()
                .ssl_mode,
            SslMode::Prefer,
            "libpq's default"
        );
        assert!(matches!(
            PostgresSettings::parse("postgres://mig:hunter2@db/j"),
            Err(JournalUrlError::Password)
        ));
        assert!(matches!(
            PostgresSettings::parse("postgres://mig@db/j?password=x"),
            Err(JournalUrlError::Password)
        ));
        assert!(matches!(
            PostgresSettings::parse("postgres://mig@db/j?sslmode=allow-ish"),
            Err(JournalUrlError::SslMode(_))
        ));
        assert!(matches!(
            PostgresSettings::parse("mysql://mig@db/j"),
            Err(JournalUrlError::Scheme)
        ));
        assert!(matches!(
            PostgresSettings::parse(
                "postgres://mig@db/j?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
            ),
            Err(JournalUrlError::RootCert { .. })
        ));
        let text = PostgresSettings::parse("postgres://mig:hunter2@db/j")
            .unwrap_err()
            .to_string();
        assert!(
            !text.contains("hunter2") && text.contains(PASSWORD_VARIABLE),
            "{text}"
        );
    }
}
