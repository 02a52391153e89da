//! One IMAP4rev1 connection (RFC 3501): transport (implicit TLS, STARTTLS, or loopback-only
//! plaintext), tagged commands, literals, login, and a streaming APPEND.
//!
//! - **Literals** (§4.3, RFC 7888): with `LITERAL+` every literal is sent non-synchronizing
//!   (`{n+}`); with `LITERAL-` only those up to 4096 bytes; otherwise the client sends `{n}`,
//!   waits for the `+` continuation, and stops if the server answers the command instead
//!   (a tagged NO before the literal, e.g. a message over the size limit).
//! - **Streaming:** the APPEND literal is copied from an `AsyncRead` in small chunks; the
//!   message is never held whole in memory.
//! - **Secrets:** command lines are never logged; at `trace` level only the tag and the
//!   command name are. Passwords travel only inside the one write that sends them.
//! - **Timeouts:** every read waits at most `ImapSettings::timeout`; a write of a literal gets
//!   that plus one second per 32 KiB. A timeout, an I/O error or an unparsable response marks
//!   the connection broken; the mailbox then opens a new one.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;

use super::types::{
    parse_response, quotable, quote, Arg, Capabilities, Code, Response, Status, StatusResponse,
    Untagged,
};
use super::{ImapError, ImapLogin, ImapSettings, MasterStyle, Security};
use crate::config::{self, PlaintextRefusal};

/// The largest response the client accepts (a `BODY[]` fetched for verification).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;
/// The most untagged responses one command may bring (a page of the fingerprint index is far
/// below it); together they may hold at most [`MAX_RESPONSE`] bytes. A server that goes on
/// sending untagged lines is cut off rather than read into memory without end.
const MAX_UNTAGGED: usize = 200_000;
/// RFC 7888 §4: `LITERAL-` allows non-synchronizing literals up to this size.
const LITERAL_MINUS_MAX: u64 = 4096;

/// A literal is read from its body in pieces of up to this many bytes (one buffer per
/// connection at a time).
const LITERAL_CHUNK: usize = 64 * 1024;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A logged-in (or about to log in) IMAP connection.
pub struct Connection {
    /// Buffered both ways; the reader's buffer is checked empty before STARTTLS.
    stream: BufReader<BufWriter<Box<dyn Io>>>,
    host: String,
    next_tag: u32,
    caps: Capabilities,
    timeout: Duration,
    broken: bool,
    /// Untagged responses (count, bytes) read since the last command was tagged.
    untagged_read: (usize, usize),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.host)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// One message of an APPEND: its flag list, INTERNALDATE (`date-time`) and exactly `len`
/// bytes to read from `body`.
pub struct AppendPart<R> {
    pub flags: String,
    pub date: String,
    pub body: R,
    pub len: u64,
}

/// The result of one command: its untagged responses and the tagged completion.
#[derive(Debug)]
pub struct Completion {
    pub untagged: Vec<Untagged>,
    pub status: StatusResponse,
}

impl Completion {
    pub fn is_ok(&self) -> bool {
        self.status.status == Status::Ok
    }
}

/// Builds the TLS client configuration: the system's roots plus the PEM certificates of
/// `ca_file`. Built once per mailbox and reused for reconnects.
pub fn tls_connector(settings: &ImapSettings) -> Result<TlsConnector, ImapError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.roots.extend(system_roots().roots.iter().cloned());
    if let Some(path) = &settings.ca_file {
        use rustls_pki_types::pem::PemObject as _;
        let bad =
            |reason: String| ImapError::Config(format!("CA file {}: {reason}", path.display()));
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("no PEM certificate in it".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The platform's trusted roots, loaded once per process (reading them takes a while).
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut store = rustls::RootCertStore::empty();
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "could not read some system CA certificates");
        }
        let (added, ignored) = store.add_parsable_certificates(loaded.certs);
        tracing::debug!(added, ignored, "system CA certificates loaded");
        store
    })
}

/// Checks the transport policy before anything is sent, by the one plaintext rule
/// ([`config::check_plaintext_host`]): plaintext only when the settings allow it and the host
/// is a literal loopback address.
pub fn check_plaintext(settings: &ImapSettings) -> Result<(), ImapError> {
    if settings.security != Security::Plain {
        return Ok(());
    }
    match config::check_plaintext_host(&settings.host, settings.allow_plaintext_loopback) {
        Ok(()) => Ok(()),
        Err(PlaintextRefusal::NotAllowed) => Err(ImapError::Config(format!(
            "plaintext IMAP to {} is not allowed: use TLS or STARTTLS \
             (plaintext is only possible for a loopback address when explicitly allowed)",
            settings.host
        ))),
        Err(PlaintextRefusal::NotLoopback) => Err(ImapError::Config(format!(
            "plaintext IMAP is only allowed to a literal loopback address such as 127.0.0.1, \
             and {} is not one",
            settings.host
        ))),
    }
}

impl Connection {
    /// Connects, secures the transport as configured, and reads the greeting and capabilities.
    /// Does not log in.
    pub async fn open(
        settings: &ImapSettings,
        tls: Option<&TlsConnector>,
    ) -> Result<Connection, ImapError> {
        let host = settings.host.clone();
        let connect_err = |source| ImapError::Connect {
            host: host.clone(),
            port: settings.port,
            source,
        };
        // Plaintext is judged before any lookup or connection.
        check_plaintext(settings)?;
        let lookup = tokio::net::lookup_host((settings.host.as_str(), settings.port));
        let addrs: Vec<SocketAddr> = tokio::time::timeout(settings.timeout, lookup)
            .await
            .map_err(|_| connect_err(std::io::ErrorKind::TimedOut.into()))?
            .map_err(connect_err)?
            .collect();
        let mut last_err = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        let mut tcp = None;
        for addr in &addrs {
            match tokio::time::timeout(settings.timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    tcp = Some(s);
                    break;
                }
                Ok(Err(e)) => last_err = e,
                Err(_) => last_err = std::io::ErrorKind::TimedOut.into(),
            }
        }
        let tcp = tcp.ok_or_else(|| connect_err(last_err))?;
        let _ = tcp.set_nodelay(true);

        let need_tls =
            || tls.ok_or_else(|| ImapError::Config("TLS requested without a TLS setup".into()));
        let stream: Box<dyn Io> = match settings.security {
            Security::Tls => Box::new(Self::handshake(need_tls()?, &host, tcp, settings).await?),
            Security::Plain => Box::new(tcp),
            Security::StartTls => {
                let mut plain = Connection::new(Box::new(tcp), &host, settings.timeout);
                let caps = plain.greeting().await?;
                if !caps.has("STARTTLS") {
                    // RFC 3501 §6.2.1: STARTTLS must be announced; ask anyway if the greeting
                    // carried no capabilities, then give up clearly.
                    let caps = plain.capability().await?;
                    if !caps.has("STARTTLS") {
                        return Err(ImapError::Config(format!(
                            "{host} does not offer STARTTLS; use implicit TLS (port 993)"
                        )));
                    }
                }
                let done = plain.run(&[Arg::raw("STARTTLS")]).await?;
                if !done.is_ok() {
                    return Err(ImapError::Config(format!(
                        "{host} refused STARTTLS: {}",
                        done.status.describe()
                    )));
                }
                // Anything the server sent after its OK would be injected plaintext (CVE-2011-0411
                // class): refuse rather than carry it into the TLS session.
                if !plain.stream.buffer().is_empty() {
                    return Err(ImapError::Protocol(super::types::ParseError {
                        reason: "data after STARTTLS response".into(),
                        excerpt: String::new(),
                    }));
                }
                let boxed = plain.stream.into_inner().into_inner();
                Box::new(Self::handshake(need_tls()?, &host, boxed, settings).await?)
            }
        };
        let mut conn = Connection::new(stream, &host, settings.timeout);
        if settings.security == Security::StartTls {
            // The pre-TLS capabilities must be forgotten (RFC 3501 §6.2.1).
            conn.capability().await?;
        } else {
            conn.greeting().await?;
            if conn.caps.0.is_empty() {
                conn.capability().await?;
            }
        }
        Ok(conn)
    }

    async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        tls: &TlsConnector,
        host: &str,
        stream: S,
        settings: &ImapSettings,
    ) -> Result<tokio_rustls::client::TlsStream<S>, ImapError> {
        let name = rustls_pki_types::ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|e| ImapError::Config(format!("{host} is not a valid TLS server name: {e}")))?;
        match tokio::time::timeout(settings.timeout, tls.connect(name, stream)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(source)) => Err(ImapError::Tls {
                host: host.to_string(),
                source,
            }),
            Err(_) => Err(ImapError::Timeout {
                host: host.to_string(),
                seconds: settings.timeout.as_secs(),
            }),
        }
    }

    fn new(stream: Box<dyn Io>, host: &str, timeout: Duration) -> Self {
        Connection {
            stream: BufReader::with_capacity(
                64 * 1024,
                BufWriter::with_capacity(64 * 1024, stream),
            ),
            host: host.to_string(),
            next_tag: 1,
            caps: Capabilities::default(),
            timeout,
            broken: false,
            untagged_read: (0, 0),
        }
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// False once an I/O error, a timeout or a protocol error left the session unusable.
    pub fn is_usable(&self) -> bool {
        !self.broken
    }

    /// Reads the server greeting (§7.1.1 / §7.1.4 / §7.1.5).
    async fn greeting(&mut self) -> Result<Capabilities, ImapError> {
        match self.read_response().await? {
            Response::Untagged(Untagged::Status(s)) => match s.status {
                Status::Ok | Status::PreAuth => {
                    if let Some(Code::Capability(caps)) = s.code {
                        self.caps = caps;
                    }
                    Ok(self.caps.clone())
                }
                _ => {
                    self.broken = true;
                    Err(ImapError::Bye {
                        host: self.host.clone(),
                        text: s.describe(),
                    })
                }
            },
            _ => Err(self.protocol("greeting expected")),
        }
    }

    /// `CAPABILITY`, remembered for the session.
    pub async fn capability(&mut self) -> Result<Capabilities, ImapError> {
        let done = self.run(&[Arg::raw("CAPABILITY")]).await?;
        for u in done.untagged {
            if let Untagged::Capability(caps) = u {
                self.caps = caps;
            }
        }
        Ok(self.caps.clone())
    }

    /// Logs in as configured. A refusal is [`ImapError::Auth`] (fatal), except a refusal
    /// with `[UNAVAILABLE]` (RFC 5530), which is temporary.
    pub async fn login(&mut self, login: &ImapLogin) -> Result<(), ImapError> {
        let plain_ok = self.caps.has_auth("PLAIN");
        let login_ok = !self.caps.has("LOGINDISABLED");
        let (authzid, authcid, password) = match login {
            ImapLogin::Password { user, password } => ("", user.clone(), password),
            ImapLogin::Master {
                user,
                master_user,
                master_password,
                style: MasterStyle::SaslAuthzid,
            } => {
                if !plain_ok {
                    return Err(ImapError::Config(format!(
                        "{} does not offer AUTHENTICATE PLAIN, needed to log in as a master user \
                         with an authorization identity; try the user*master style",
                        self.host
                    )));
                }
                (user.as_str(), master_user.clone(), master_password)
            }
            ImapLogin::Master {
                user,
                master_user,
                master_password,
                style: MasterStyle::DovecotStar,
            } => ("", format!("{user}*{master_user}"), master_password),
        };
        let user_shown = login.user().to_string();
        let done = if plain_ok {
            self.authenticate_plain(authzid, &authcid, password.expose())
                .await?
        } else if login_ok {
            self.run(&[
                Arg::raw("LOGIN"),
                Arg::Secret(authcid.into_bytes()),
                Arg::Secret(password.expose().as_bytes().to_vec()),
            ])
            .await?
        } else {
            return Err(ImapError::Config(format!(
                "{} offers neither LOGIN nor AUTHENTICATE PLAIN",
                self.host
            )));
        };
        if done.is_ok() {
            match done.status.code {
                Some(Code::Capability(caps)) => self.caps = caps,
                _ => {
                    self.capability().await?;
                }
            }
            return Ok(());
        }
        let text = done.status.describe();
        if matches!(&done.status.code, Some(Code::Other(c)) if c == "UNAVAILABLE") {
            return Err(ImapError::Unavailable {
                host: self.host.clone(),
                text,
            });
        }
        Err(ImapError::Auth {
            user: user_shown,
            text,
        })
    }

    /// Enables UTF8=ACCEPT (RFC 6855 §3, through ENABLE, RFC 5161) when the server offers
    /// it. True only when the server confirms it in `* ENABLED`; then mailbox names are sent
    /// and received as UTF-8 instead of modified UTF-7.
    pub async fn enable_utf8(&mut self) -> Result<bool, ImapError> {
        if !(self.caps.has("UTF8=ACCEPT") && self.caps.has("ENABLE")) {
            return Ok(false);
        }
        let done = self.run(&[Arg::raw("ENABLE UTF8=ACCEPT")]).await?;
        let confirmed = done.is_ok()
            && done.untagged.iter().any(|u| match u {
                Untagged::Other(raw) => {
                    let text = String::from_utf8_lossy(raw).to_ascii_uppercase();
                    text.starts_with("* ENABLED") && text.contains("UTF8=ACCEPT")
                }
                _ => false,
            });
        Ok(confirmed)
    }

    /// SASL PLAIN (RFC 4616) through AUTHENTICATE (§6.2.2), with the initial response on the
    /// command line when the server has SASL-IR (RFC 4959).
    async fn authenticate_plain(
        &mut self,
        authzid: &str,
        authcid: &str,
        password: &str,
    ) -> Result<Completion, ImapError> {
        let mut message = Vec::with_capacity(authzid.len() + authcid.len() + password.len() + 2);
        message.extend_from_slice(authzid.as_bytes());
        message.push(0);
        message.extend_from_slice(authcid.as_bytes());
        message.push(0);
        message.extend_from_slice(password.as_bytes());
        let encoded = base64::engine::general_purpose::STANDARD.encode(&message);
        let tag = self.tag();
        tracing::trace!(%tag, "IMAP AUTHENTICATE PLAIN");
        let mut untagged = Vec::new();
        if self.caps.has("SASL-IR") {
            let line = format!("{tag} AUTHENTICATE PLAIN {encoded}\r\n");
            self.write_all(line.as_bytes()).await?;
        } else {
            self.write_all(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes())
                .await?;
            if let Some(status) = self.wait_continuation(&tag, &mut untagged).await? {
                return Ok(Completion { untagged, status });
            }
            self.write_all(format!("{encoded}\r\n").as_bytes()).await?;
        }
        loop {
            match self.read_response().await? {
                Response::Tagged { tag: t, status } if t == tag => {
                    return Ok(Completion { untagged, status })
                }
                // A further challenge means the server did not accept PLAIN: cancel (§6.2.2).
                Response::Continuation(_) => self.write_all(b"*\r\n").await?,
                Response::Untagged(u) => self.note_untagged(u, &mut untagged)?,
                Response::Tagged { .. } => return Err(self.protocol("unexpected tag")),
            }
        }
    }

    /// Runs one command made of `args`, separated by spaces. Strings that cannot be quoted go
    /// as literals. Returns the completion whatever its status; I/O and protocol failures are
    /// errors.
    pub async fn run(&mut self, args: &[Arg]) -> Result<Completion, ImapError> {
        let tag = self.tag();
        let name = match args.first() {
            Some(Arg::Raw(s)) => s.split(' ').take(2).collect::<Vec<_>>().join(" "),
            _ => String::new(),
        };
        tracing::trace!(%tag, command = %name, "IMAP command");
        let mut untagged = Vec::new();
        let mut line: Vec<u8> = tag.clone().into_bytes();
        for arg in args {
            line.push(b' ');
            let bytes = match arg {
                Arg::Raw(s) => {
                    line.extend_from_slice(s.as_bytes());
                    continue;
                }
                Arg::Str(b) | Arg::Secret(b) => b,
            };
            if quotable(bytes) {
                line.extend_from_slice(quote(bytes).as_bytes());
                continue;
            }
            if let Some(status) = self
                .send_literal(&tag, &mut line, bytes, &mut untagged)
                .await?
            {
                return Ok(Completion { untagged, status });
            }
        }
        line.extend_from_slice(b"\r\n");
        self.write_all(&line).await?;
        self.finish(&tag, untagged).await
    }

    /// `APPEND mailbox (flags) "date" {len}` with each literal streamed from its part's body
    /// (RFC 3501 §6.3.11). Several parts make one MULTIAPPEND command (RFC 3502 §6.3.11: the
    /// caller checks the capability; the server stores all of them or none). Exactly `len`
    /// bytes of each body are sent; a shorter body breaks the connection (a literal cannot be
    /// ended early) and is reported as [`ImapError::ShortBody`]. With `LITERAL+` nothing waits
    /// for a round trip until the tagged answer.
    pub async fn append<R: AsyncRead + Unpin + Send>(
        &mut self,
        mailbox: &str,
        parts: Vec<AppendPart<R>>,
    ) -> Result<Completion, ImapError> {
        let tag = self.tag();
        let mut untagged = Vec::new();
        if let Some(status) = self
            .send_append(&tag, mailbox, parts, &mut untagged)
            .await?
        {
            return Ok(Completion { untagged, status });
        }
        self.finish(&tag, untagged).await
    }

    /// One APPEND command per part, all sent before any answer is read (pipelining, RFC 3501
    /// §5.5), each literal non-synchronizing: for servers with `LITERAL+` (the caller checks)
    /// but without MULTIAPPEND. Each message has its own completion, in order, so a refused
    /// one fails alone (RFC 7888 §4: the server still reads its literal).
    pub async fn append_pipelined<R: AsyncRead + Unpin + Send>(
        &mut self,
        mailbox: &str,
        parts: Vec<AppendPart<R>>,
    ) -> Result<Vec<Completion>, ImapError> {
        let mut tags = Vec::with_capacity(parts.len());
        let mut untagged = Vec::new();
        for part in parts {
            let tag = self.tag();
            if let Some(status) = self
                .send_append(&tag, mailbox, vec![part], &mut untagged)
                .await?
            {
                // Only a synchronizing literal can be refused before it is sent: the
                // pipeline cannot go on in step with the server.
                self.broken = true;
                return Err(ImapError::Command {
                    command: "APPEND".into(),
                    text: status.describe(),
                });
            }
            tags.push(tag);
        }
        let mut done = Vec::with_capacity(tags.len());
        for tag in tags {
            done.push(self.finish(&tag, std::mem::take(&mut untagged)).await?);
        }
        Ok(done)
    }

    /// Writes one whole APPEND command with `parts` (several: MULTIAPPEND). `Some(status)`
    /// when the server answered before a synchronizing literal was invited.
    async fn send_append<R: AsyncRead + Unpin + Send>(
        &mut self,
        tag: &str,
        mailbox: &str,
        parts: Vec<AppendPart<R>>,
        untagged: &mut Vec<Untagged>,
    ) -> Result<Option<StatusResponse>, ImapError> {
        tracing::trace!(%tag, messages = parts.len(), "IMAP APPEND");
        let mut line = format!("{tag} APPEND ").into_bytes();
        if quotable(mailbox.as_bytes()) {
            line.extend_from_slice(quote(mailbox.as_bytes()).as_bytes());
        } else if let Some(status) = self
            .send_literal(tag, &mut line, mailbox.as_bytes(), untagged)
            .await?
        {
            // A UTF-8 name (RFC 6855 §3) that cannot be quoted goes as a literal.
            return Ok(Some(status));
        }
        for part in parts {
            let len = part.len;
            let sync = !self.non_sync_allowed(len);
            line.extend_from_slice(
                format!(
                    " ({}) \"{}\" {{{len}{}}}\r\n",
                    part.flags,
                    part.date,
                    if sync { "" } else { "+" }
                )
                .as_bytes(),
            );
            if sync {
                self.write_all(&line).await?;
                line.clear();
                if let Some(status) = self.wait_continuation(tag, untagged).await? {
                    return Ok(Some(status));
                }
            } else {
                // A non-synchronizing literal follows its line at once: one flush at the end.
                self.write_unflushed(&line).await?;
                line.clear();
            }
            let budget = self.timeout + Duration::from_secs(len / (32 * 1024));
            let copy = async {
                // Large reads: each read of a spool file is a trip to the blocking pool.
                let mut limited = part.body.take(len);
                let size = usize::try_from(len).unwrap_or(LITERAL_CHUNK);
                let mut chunk = vec![0u8; size.clamp(1, LITERAL_CHUNK)];
                let mut sent = 0u64;
                loop {
                    let n = limited.read(&mut chunk).await?;
                    if n == 0 {
                        break Ok::<u64, std::io::Error>(sent);
                    }
                    self.stream.write_all(&chunk[..n]).await?;
                    sent += n as u64;
                }
            };
            let copied = match tokio::time::timeout(budget, copy).await {
                Ok(Ok(n)) => n,
                Ok(Err(source)) => return Err(self.io_error(source)),
                Err(_) => return Err(self.timed_out()),
            };
            if copied != len {
                self.broken = true;
                return Err(ImapError::ShortBody {
                    folder: mailbox.to_string(),
                    expected: len,
                    got: copied,
                });
            }
        }
        self.write_all(b"\r\n").await?;
        Ok(None)
    }

    /// Writes `line` followed by `bytes` as a literal (waiting for the continuation when it
    /// must be synchronizing) and clears `line`. `Some(status)` when the server answered the
    /// command instead of inviting the literal.
    async fn send_literal(
        &mut self,
        tag: &str,
        line: &mut Vec<u8>,
        bytes: &[u8],
        untagged: &mut Vec<Untagged>,
    ) -> Result<Option<StatusResponse>, ImapError> {
        let len = bytes.len() as u64;
        let sync = !self.non_sync_allowed(len);
        line.extend_from_slice(format!("{{{len}{}}}\r\n", if sync { "" } else { "+" }).as_bytes());
        self.write_all(line).await?;
        line.clear();
        if sync {
            if let Some(status) = self.wait_continuation(tag, untagged).await? {
                return Ok(Some(status));
            }
        }
        self.write_all(bytes).await?;
        Ok(None)
    }

    /// Sends `LOGOUT` and closes; errors are of no interest at that point.
    pub async fn logout(mut self) {
        if !self.broken {
            let _ = self.run(&[Arg::raw("LOGOUT")]).await;
        }
        let _ = self.stream.shutdown().await;
    }

    fn non_sync_allowed(&self, len: u64) -> bool {
        self.caps.has("LITERAL+") || (self.caps.has("LITERAL-") && len <= LITERAL_MINUS_MAX)
    }

    fn tag(&mut self) -> String {
        let tag = format!("M{:04}", self.next_tag);
        self.next_tag = self.next_tag.wrapping_add(1);
        self.untagged_read = (0, 0);
        tag
    }

    /// Waits for `+` after a synchronizing literal's length. `Some(status)` when the server
    /// completed the command instead (it refused the literal).
    async fn wait_continuation(
        &mut self,
        tag: &str,
        untagged: &mut Vec<Untagged>,
    ) -> Result<Option<StatusResponse>, ImapError> {
        loop {
            match self.read_response().await? {
                Response::Continuation(_) => return Ok(None),
                Response::Tagged { tag: t, status } if t == tag => return Ok(Some(status)),
                Response::Tagged { .. } => return Err(self.protocol("unexpected tag")),
                Response::Untagged(u) => self.note_untagged(u, untagged)?,
            }
        }
    }

    async fn finish(
        &mut self,
        tag: &str,
        mut untagged: Vec<Untagged>,
    ) -> Result<Completion, ImapError> {
        loop {
            match self.read_response().await? {
                Response::Tagged { tag: t, status } if t == tag => {
                    if let Some(Code::Capability(caps)) = &status.code {
                        self.caps = caps.clone();
                    }
                    return Ok(Completion { untagged, status });
                }
                Response::Tagged { .. } => return Err(self.protocol("unexpected tag")),
                Response::Continuation(_) => {
                    return Err(self.protocol("unexpected continuation request"))
                }
                Response::Untagged(u) => self.note_untagged(u, &mut untagged)?,
            }
        }
    }

    /// Keeps an untagged response; a `BYE` means the server is closing the session.
    fn note_untagged(&mut self, u: Untagged, into: &mut Vec<Untagged>) -> Result<(), ImapError> {
        match u {
            Untagged::Status(s) if s.status == Status::Bye => {
                self.broken = true;
                Err(ImapError::Bye {
                    host: self.host.clone(),
                    text: s.describe(),
                })
            }
            Untagged::Capability(caps) => {
                self.caps = caps;
                Ok(())
            }
            other => {
                into.push(other);
                Ok(())
            }
        }
    }

    /// Like [`Connection::write_all`] but leaves the bytes in the write buffer.
    async fn write_unflushed(&mut self, bytes: &[u8]) -> Result<(), ImapError> {
        match tokio::time::timeout(self.timeout, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.io_error(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), ImapError> {
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.io_error(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Reads one whole response: the line and every literal it announces (`{n}` at the end of
    /// a line is followed by exactly `n` bytes, then the line goes on).
    async fn read_response(&mut self) -> Result<Response, ImapError> {
        let timeout = self.timeout;
        let read = async {
            let mut buf = Vec::with_capacity(256);
            loop {
                let room = MAX_RESPONSE.saturating_sub(buf.len()) as u64;
                let n = (&mut self.stream)
                    .take(room)
                    .read_until(b'\n', &mut buf)
                    .await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                }
                if !buf.ends_with(b"\n") {
                    return Err(Oversized::Line.into_io());
                }
                match literal_length(&buf) {
                    Some(len) if len <= MAX_RESPONSE.saturating_sub(buf.len()) => {
                        read_literal(&mut self.stream, len, &mut buf).await?;
                    }
                    Some(len) => return Err(Oversized::Literal(len).into_io()),
                    None => return Ok(buf),
                }
            }
        };
        let raw = match tokio::time::timeout(timeout, read).await {
            Ok(Ok(raw)) => raw,
            Ok(Err(e)) => match Oversized::of(&e) {
                // Not an outage: the same command would get the same answer again.
                Some(what) => return Err(self.oversized(what)),
                None => return Err(self.io_error(e)),
            },
            Err(_) => return Err(self.timed_out()),
        };
        if raw.starts_with(b"* ") {
            let (count, bytes) = &mut self.untagged_read;
            *count += 1;
            *bytes = bytes.saturating_add(raw.len());
            if *count > MAX_UNTAGGED {
                return Err(self.oversized(Oversized::UntaggedCount));
            }
            if *bytes > MAX_RESPONSE {
                return Err(self.oversized(Oversized::UntaggedBytes));
            }
        }
        parse_response(&raw).map_err(|e| {
            self.broken = true;
            ImapError::Protocol(e)
        })
    }

    fn io_error(&mut self, source: std::io::Error) -> ImapError {
        self.broken = true;
        ImapError::Connection {
            host: self.host.clone(),
            source,
        }
    }

    fn timed_out(&mut self) -> ImapError {
        self.broken = true;
        ImapError::Timeout {
            host: self.host.clone(),
            seconds: self.timeout.as_secs(),
        }
    }

    /// The session is given up: what is left of the response is never read.
    fn oversized(&mut self, what: Oversized) -> ImapError {
        self.broken = true;
        ImapError::Oversized {
            host: self.host.clone(),
            reason: what.to_string(),
        }
    }

    fn protocol(&mut self, reason: &str) -> ImapError {
        self.broken = true;
        ImapError::Protocol(super::types::ParseError {
            reason: reason.into(),
            excerpt: String::new(),
        })
    }
}

/// A response over the client's limits: the server is broken or hostile, and the session is
/// given up (a protocol error) rather than read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Oversized {
    #[error("the server announced a literal of {0} bytes, over the {MAX_RESPONSE}-byte limit of a response")]
    Literal(usize),
    #[error("a response line longer than {MAX_RESPONSE} bytes")]
    Line,
    #[error("more than {MAX_UNTAGGED} untagged responses to one command")]
    UntaggedCount,
    #[error("more than {MAX_RESPONSE} bytes of untagged responses to one command")]
    UntaggedBytes,
}

impl Oversized {
    fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }

    fn of(e: &std::io::Error) -> Option<Oversized> {
        e.get_ref()?.downcast_ref::<Oversized>().copied()
    }
}

/// Appends the `len` bytes of a literal from `stream` to `buf`, in pieces of at most
/// [`LITERAL_CHUNK`]: memory grows with the bytes that arrive, never with the length a server
/// announces (a hostile `{2147483648}` followed by nothing costs nothing).
async fn read_literal<R: AsyncRead + Unpin>(
    stream: &mut R,
    len: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut left = len;
    let mut chunk = vec![0u8; len.min(LITERAL_CHUNK)];
    while left > 0 {
        let want = left.min(chunk.len());
        let n = stream.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection inside a literal",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        left -= n;
    }
    Ok(())
}

/// `n` when a line read so far ends with a literal announcement `{n}\r\n` (or literal8 `~{n}`).
fn literal_length(line: &[u8]) -> Option<usize> {
    let line = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))?;
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Formats a date for APPEND (`date-time`, RFC 3501 §9): `dd-Mon-yyyy hh:mm:ss +0000`, in UTC.
pub fn internal_date(received: time::OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = received.to_offset(time::UtcOffset::UTC);
    format!(
        "{:02}-{}-{:04} {:02}:{:02}:{:02} +0000",
        t.day(),
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an `INTERNALDATE` as servers send it (the day may be space-padded).
pub fn parse_internal_date(s: &str) -> Option<time::OffsetDateTime> {
    let s = s.trim();
    let (date, rest) = s.split_once(' ')?;
    let (clock, zone) = rest.trim().split_once(' ')?;
    let mut d = date.split('-');
    let day: u8 = d.next()?.trim().parse().ok()?;
    let month_name = d.next()?;
    let year: i32 = d.next()?.parse().ok()?;
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| m.eq_ignore_ascii_case(month_name))?;
    let month = time::Month::try_from(u8::try_from(month + 1).ok()?).ok()?;
    let mut c = clock.split(':');
    let (h, m, sec): (u8, u8, u8) = (
        c.next()?.parse().ok()?,
        c.next()?.parse().ok()?,
        c.next()?.parse().ok()?,
    );
    let sign = match zone.as_bytes().first()? {
        b'+' => 1i32,
        b'-' => -1,
        _ => return None,
    };
    let hhmm: i32 = zone.get(1..5)?.parse().ok()?;
    let offset_secs = sign * ((hhmm / 100) * 3600 + (hhmm % 100) * 60);
    let offset = time::UtcOffset::from_whole_seconds(offset_secs).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let clock = time::Time::from_hms(h, m, sec).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn literal_announcements() {
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
        assert_eq!(literal_length(b"* LIST () \"/\" {3}\n"), Some(3));
        assert_eq!(literal_length(b"* OK {not}\r\n"), None);
        assert_eq!(literal_length(b"* OK done\r\n"), None);
        assert_eq!(literal_length(b"* OK {}\r\n"), None);
    }

    #[test]
    fn internal_dates_round_trip_in_utc() {
        let t = datetime!(2024-03-05 23:30:09 -02:00);
        assert_eq!(internal_date(t), "06-Mar-2024 01:30:09 +0000");
        assert_eq!(parse_internal_date(&internal_date(t)), Some(t));
        assert_eq!(
            parse_internal_date(" 5-Mar-2024 01:30:09 +0130"),
            Some(datetime!(2024-03-05 01:30:09 +01:30))
        );
        assert_eq!(parse_internal_date("5-Foo-2024 01:30:09 +0000"), None);
        assert_eq!(parse_internal_date("garbage"), None);
    }

    /// A connection to a scripted server over an in-memory pipe, with `caps` announced.
    fn scripted(caps: &str) -> (Connection, tokio::io::DuplexStream) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut conn = Connection::new(Box::new(client), "test", Duration::from_secs(5));
        conn.caps = Capabilities(caps.split(' ').map(str::to_string).collect());
        (conn, server)
    }

    fn part<R>(flags: &str, at: time::OffsetDateTime, body: R, len: u64) -> Vec<AppendPart<R>> {
        vec![AppendPart {
            flags: flags.into(),
            date: internal_date(at),
            body,
            len,
        }]
    }

    #[tokio::test]
    async fn multiappend_with_literal_plus_sends_every_message_without_waiting() {
        let (mut conn, server) = scripted("IMAP4REV1 LITERAL+ MULTIAPPEND");
        let script = tokio::spawn(async move {
            let mut server = BufReader::new(server);
            // The whole command arrives before the server says anything.
            let mut all = vec![0u8; 111];
            server.read_exact(&mut all).await.unwrap();
            assert_eq!(
                String::from_utf8_lossy(&all),
                "M0001 APPEND \"Sent\" (\\Seen) \"01-Jan-2024 00:00:00 +0000\" {3+}\r\nabc \
                 () \"02-Jan-2024 00:00:00 +0000\" {4+}\r\nd\r\ne\r\n"
            );
            server
                .get_mut()
                .write_all(b"M0001 OK [APPENDUID 5 8:9] Append completed.\r\n")
                .await
                .unwrap();
        });
        let at = time::macros::datetime!(2024-01-01 00:00:00 UTC);
        let mut parts = part("\\Seen", at, &b"abc"[..], 3);
        parts.extend(part("", at + Duration::from_secs(86400), &b"d\r\ne"[..], 4));
        let done = conn.append("Sent", parts).await.unwrap();
        assert_eq!(
            done.status.code,
            Some(Code::AppendUids {
                uid_validity: 5,
                uids: vec![8, 9]
            })
        );
        script.await.unwrap();
    }

    async fn read_line(server: &mut BufReader<tokio::io::DuplexStream>) -> String {
        let mut line = String::new();
        server.read_line(&mut line).await.unwrap();
        line
    }

    #[tokio::test]
    async fn synchronizing_literal_waits_for_continuation_and_stops_on_refusal() {
        let (mut conn, server) = scripted("IMAP4REV1");
        let script = tokio::spawn(async move {
            let mut server = BufReader::new(server);
            let line = read_line(&mut server).await;
            assert_eq!(
                line,
                "M0001 APPEND \"INBOX\" (\\Seen) \"01-Jan-2024 00:00:00 +0000\" {5}\r\n"
            );
            // Nothing may follow before the continuation.
            let mut probe = [0u8; 1];
            let early =
                tokio::time::timeout(Duration::from_millis(100), server.read(&mut probe)).await;
            assert!(early.is_err(), "literal sent before the continuation");
            server.get_mut().write_all(b"+ go ahead\r\n").await.unwrap();
            let mut body = [0u8; 7];
            server.read_exact(&mut body).await.unwrap();
            assert_eq!(&body, b"a\x00\xffz\n\r\n");
            server
                .get_mut()
                .write_all(b"* 3 EXISTS\r\nM0001 OK [APPENDUID 9 3] done\r\n")
                .await
                .unwrap();
            // Second APPEND: refused before the literal.
            let line = read_line(&mut server).await;
            assert!(
                line.starts_with("M0002 APPEND ") && line.ends_with("{9999}\r\n"),
                "{line}"
            );
            server
                .get_mut()
                .write_all(b"M0002 NO [LIMIT] Message too large\r\n")
                .await
                .unwrap();
            let line = read_line(&mut server).await;
            assert_eq!(line, "M0003 NOOP\r\n");
            server.get_mut().write_all(b"M0003 OK\r\n").await.unwrap();
        });
        let at = time::macros::datetime!(2024-01-01 00:00:00 UTC);
        let done = conn
            .append("INBOX", part("\\Seen", at, &b"a\x00\xffz\n"[..], 5))
            .await
            .unwrap();
        assert_eq!(
            done.status.code,
            Some(Code::AppendUid {
                uid_validity: 9,
                uid: 3
            })
        );
        assert_eq!(done.untagged, vec![Untagged::Exists(3)]);
        let refused = conn
            .append("INBOX", part("", at, tokio::io::empty(), 9999))
            .await
            .unwrap();
        assert_eq!(refused.status.status, Status::No);
        assert_eq!(refused.status.describe(), "[LIMIT] Message too large");
        assert!(conn.is_usable());
        assert!(conn.run(&[Arg::raw("NOOP")]).await.unwrap().is_ok());
        script.await.unwrap();
    }

    #[tokio::test]
    async fn utf8_accept_is_used_only_when_the_server_confirms_it() {
        for (answer, expected) in [
            (&b"* ENABLED UTF8=ACCEPT\r\nM0001 OK Enabled.\r\n"[..], true),
            (&b"* ENABLED\r\nM0001 OK Enabled.\r\n"[..], false),
            (&b"M0001 BAD Unknown command\r\n"[..], false),
        ] {
            let (mut conn, server) = scripted("IMAP4REV1 ENABLE UTF8=ACCEPT");
            let script = tokio::spawn(async move {
                let mut server = BufReader::new(server);
                assert_eq!(read_line(&mut server).await, "M0001 ENABLE UTF8=ACCEPT\r\n");
                server.get_mut().write_all(answer).await.unwrap();
            });
            assert_eq!(conn.enable_utf8().await.unwrap(), expected);
            script.await.unwrap();
        }
        // Not announced: not asked.
        let (mut conn, _server) = scripted("IMAP4REV1 ENABLE");
        assert!(!conn.enable_utf8().await.unwrap());
    }

    #[tokio::test]
    async fn literal_plus_sends_at_once_and_strings_become_literals() {
        let (mut conn, server) = scripted("IMAP4REV1 LITERAL+");
        let script = tokio::spawn(async move {
            let mut server = BufReader::new(server);
            assert_eq!(
                read_line(&mut server).await,
                "M0001 UID SEARCH CHARSET UTF-8 HEADER Subject {6+}\r\n"
            );
            assert_eq!(read_line(&mut server).await, "Grüß\r\n");
            server
                .get_mut()
                .write_all(b"* SEARCH 4 7\r\nM0001 OK done\r\n")
                .await
                .unwrap();
        });
        let done = conn
            .run(&[
                Arg::raw("UID SEARCH CHARSET UTF-8 HEADER Subject"),
                Arg::string("Grüß"),
            ])
            .await
            .unwrap();
        assert_eq!(done.untagged, vec![Untagged::Search(vec![4, 7])]);
        script.await.unwrap();
    }

    #[tokio::test]
    async fn short_body_and_bye_break_the_connection() {
        let (mut conn, server) = scripted("IMAP4REV1 LITERAL+");
        let script = tokio::spawn(async move {
            let mut server = BufReader::new(server);
            let _ = read_line(&mut server).await;
            let mut rest = Vec::new();
            let _ = server.read_to_end(&mut rest).await;
        });
        let at = time::macros::datetime!(2024-01-01 00:00:00 UTC);
        let err = conn
            .append("INBOX", part("", at, &b"abc"[..], 10))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ImapError::ShortBody {
                    got: 3,
                    expected: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!conn.is_usable());
        drop(conn);
        script.await.unwrap();

        let (mut conn, mut server) = scripted("IMAP4REV1");
        server
            .write_all(b"* BYE Server shutting down\r\n")
            .await
            .unwrap();
        let err = conn.run(&[Arg::raw("NOOP")]).await.unwrap_err();
        assert!(matches!(err, ImapError::Bye { .. }), "{err:?}");
        assert!(!conn.is_usable());
    }

    /// Regression: a literal's announced length was allocated before a byte of it arrived,
    /// so a server announcing 256 MiB cost 256 MiB at once.
    #[tokio::test]
    async fn a_literal_announced_large_allocates_only_what_arrives() {
        let mut buf = b"* 1 FETCH (BODY[] {200000000}\r\n".to_vec();
        let err = read_literal(&mut &b"only ten b"[..], 200_000_000, &mut buf)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(buf.ends_with(b"only ten b"));
        assert!(buf.capacity() < 1024 * 1024, "{} bytes", buf.capacity());
    }

    /// Regression: a literal over the limit was an I/O error (retried like an outage).
    #[tokio::test]
    async fn a_2_gib_literal_is_a_protocol_error_that_reads_nothing_of_it() {
        let (mut conn, mut server) = scripted("IMAP4REV1");
        server
            .write_all(b"* 1 FETCH (UID 1 BODY[] {2147483648}\r\nxxxx")
            .await
            .unwrap();
        let err = conn.run(&[Arg::raw("UID FETCH 1 BODY.PEEK[]")]).await;
        let Err(ImapError::Oversized { reason, .. }) = err else {
            panic!("{err:?}")
        };
        assert!(reason.contains("literal of 2147483648 bytes"), "{reason}");
        assert!(!conn.is_usable());
    }

    /// Regression: untagged responses to one command were collected without a limit, so a
    /// server sending them without end grew the client's memory without end.
    #[tokio::test]
    async fn untagged_responses_to_one_command_are_bounded() {
        let (mut conn, server) = scripted("IMAP4REV1");
        let script = tokio::spawn(async move {
            let mut server = BufReader::new(server);
            assert_eq!(read_line(&mut server).await, "M0001 NOOP\r\n");
            let lines = b"* 1 RECENT\r\n".repeat(1000);
            for _ in 0..=MAX_UNTAGGED / 1000 {
                if server.get_mut().write_all(&lines).await.is_err() {
                    return;
                }
            }
            let _ = server.get_mut().write_all(b"M0001 OK done\r\n").await;
        });
        let err = conn.run(&[Arg::raw("NOOP")]).await;
        let Err(ImapError::Oversized { reason, .. }) = err else {
            panic!("{err:?}")
        };
        assert!(
            reason.contains("untagged responses to one command"),
            "{reason}"
        );
        assert!(!conn.is_usable());
        drop(conn);
        script.await.unwrap();
    }

    #[tokio::test]
    async fn imap_plaintext_to_localhost_is_refused() {
        let mut s = ImapSettings::new("localhost", 1, Security::Plain);
        s.allow_plaintext_loopback = true;
        // Refused before any lookup or connection: a name is whatever the resolver says.
        match Connection::open(&s, None).await {
            Err(ImapError::Config(reason)) => assert!(reason.contains("localhost"), "{reason}"),
            other => panic!("expected a configuration error, got {:?}", other.err()),
        }
        s.host = "127.0.0.1".into();
        assert!(check_plaintext(&s).is_ok());
        s.host = "[::1]".into();
        assert!(check_plaintext(&s).is_ok());
        s.allow_plaintext_loopback = false;
        assert!(matches!(check_plaintext(&s), Err(ImapError::Config(_))));
    }

    #[test]
    fn plaintext_needs_permission_and_loopback() {
        let mut s = ImapSettings::new("127.0.0.1", 143, Security::Plain);
        assert!(matches!(check_plaintext(&s), Err(ImapError::Config(_))));
        s.allow_plaintext_loopback = true;
        assert!(check_plaintext(&s).is_ok());
        for refused in ["mail.example.com", "192.0.2.7", "127.0.0.1.example.com"] {
            s.host = refused.into();
            assert!(check_plaintext(&s).is_err(), "{refused}");
        }
        s.security = Security::Tls;
        assert!(check_plaintext(&s).is_ok());
    }
}
