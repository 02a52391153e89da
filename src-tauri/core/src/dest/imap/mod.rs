//! The IMAP destination: one user's mailbox on any IMAP4rev1 server (RFC 3501), IceWarp and
//! Dovecot included.
//!
//! ## Contract of [`ImapMailbox`]
//! - **Transport:** implicit TLS or STARTTLS, certificates checked against the system's roots
//!   plus an optional CA file. Plaintext only when [`ImapSettings::allow_plaintext_loopback`]
//!   is set *and* every address of the host is a loopback address; otherwise
//!   [`ImapError::Config`] before anything is sent.
//! - **Login:** the user's password, or a master user acting for the user
//!   ([`ImapLogin::Master`]): SASL PLAIN with the user as authorization identity (RFC 4616),
//!   or Dovecot's `user*master` form. A refusal is [`ErrorClass::Fatal`]. Passwords are
//!   [`Secret`]s and appear in no log line and no error.
//! - **Folders:** [`ImapMailbox::ensure_folders`] maps the source tree onto the server by the
//!   rules of [`folders`] (special folders by SPECIAL-USE, names as typed but for the
//!   separator, no two source folders merged), creates what is missing and subscribes it.
//! - **Append:** [`ImapMailbox::append`] streams exactly `len` bytes from an `AsyncRead` (never
//!   holding the message) with the flags of [`MailFlags`] and INTERNALDATE = the received
//!   date, and returns a [`DestRef`] that names the folder and, when the server has UIDPLUS
//!   (RFC 4315), the UIDVALIDITY and UID ([`ImapRef`]). A message the server refuses is
//!   [`ErrorClass::SkipItem`] with the server's text; a lost connection is
//!   [`ErrorClass::Retry`], and the next call reconnects, no sooner than 2 s after the cut
//!   (`CUT_APPEND_SETTLE`, so the server has finished the command if it had it whole).
//! - **Exactly once:** `append` itself is not idempotent (IMAP has no such APPEND). Before
//!   appending a message that may already be there — the journal holds an unfinished intent
//!   for it, the previous `append` ended in a `Retry` error (the server may have stored it
//!   before the connection dropped), or the account held mail before the migration — the
//!   engine asks [`ImapMailbox::find_existing`] with the message's [`MessageFingerprint`].
//!   Rule: a message matches when its RFC822.SIZE equals the source size, its Message-ID
//!   equals the source's (compared unfolded, white space removed) and its header
//!   (`BODY.PEEK[HEADER]`) has the same SHA-256 as the source's (line endings normalised);
//!   without a Message-ID, its INTERNALDATE must equal the received date to the second
//!   instead. The candidates come from the folder's fingerprint index ([`index`]: one paged
//!   `FETCH` of every message's size, INTERNALDATE and Message-ID, then `UID FETCH n:*` for
//!   what arrived since), not from SEARCH, which some servers answer wrongly; SEARCH (`HEADER
//!   Message-ID`, else `LARGER/SMALLER`) serves only a few lookups in a large folder, and
//!   only once it found a message known to be there; a refused SEARCH falls back to the
//!   index. The migrator never changes a message's bytes, so a migrated copy always
//!   matches, and two distinct messages sharing a Message-ID stay distinct.
//! - **Mirroring** (incremental passes, on messages the migrator appended only):
//!   [`ImapMailbox::store_flags`] adds and removes just the flags named (`UID STORE
//!   +FLAGS.SILENT` / `-FLAGS.SILENT`), [`ImapMailbox::move_message`] moves one UID (`UID
//!   MOVE`, RFC 6851, else `UID COPY` + `\Deleted` + `UID EXPUNGE` of that UID, RFC 4315) and
//!   reports its new UID from COPYUID, [`ImapMailbox::delete_message`] deletes one UID. None of
//!   them ever runs a plain EXPUNGE, which would also remove messages the user marked
//!   `\Deleted`. A UID that no longer exists changes nothing; the engine then finds the
//!   message again by its fingerprint (also after a UIDVALIDITY change).
//! - **Reconnects** wait through a [`Pacer`] (the only place that waits); the policy is
//!   [`ImapSettings::reconnect`]. With [`ImapSettings::outage`] (a run's connections; not the
//!   preflight check, which must report a wrong address at once) a server that cannot be
//!   reached is retried for up to the outage limit instead of a number of attempts; then
//!   [`ImapError::Unreachable`], and every later call on that mailbox fails the same way at
//!   once (the engine fails the mailbox; it does not wait a second time).
//!
//! - **Batches:** [`ImapMailbox::append_many`] sends several messages in one MULTIAPPEND
//!   (RFC 3502) with non-synchronizing literals when the server has LITERAL+ (RFC 7888), so
//!   nothing waits for a round trip until the tagged answer; APPENDUID's uid-set gives each
//!   message its UID. The server stores all or none of a MULTIAPPEND: a refusal is about the
//!   batch, and the caller appends its messages one by one to find the one refused. A server
//!   with LITERAL+ but no MULTIAPPEND gets [`ImapMailbox::append_pipelined`]: one APPEND per
//!   message, all sent before the answers are read, each with its own result.
//! - **UTF-8 names:** when the server announces UTF8=ACCEPT and confirms `ENABLE UTF8=ACCEPT`
//!   (RFC 6855 §3), folder names are sent and read as UTF-8 (and SEARCH carries no CHARSET);
//!   otherwise as modified UTF-7.
//! - **Connection cap:** every `ImapMailbox` holds a place under
//!   [`ImapSettings::connection_limit`] for as long as it exists (reconnects included);
//!   [`ImapMailbox::connect`] waits for one, [`ImapMailbox::connect_if_room`] does not.
//!
//! One `ImapMailbox` is one connection; commands on it run one at a time. Parallel writers
//! open several mailboxes for the same user (at most
//! [`ImapSettings::connections_per_mailbox`] in the engine).

pub mod connection;
pub mod folders;
pub mod index;
pub mod types;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;

use self::connection::{internal_date, parse_internal_date, AppendPart, Completion, Connection};
use self::folders::{Placement, ServerFolders};
use self::index::FolderIndex;
use self::types::{Arg, Code, ListEntry, ParseError, Status, StatusResponse, Untagged};
use super::DestRef;
use crate::convert::flags::{keyword, MailFlags};
use crate::error::{Classify, ErrorClass};
use crate::graph::mail::FolderNode;
use crate::graph::pacer::{GaveUp, OutagePolicy, Pacer, PacerSettings, Verdict};
use crate::secrets::Secret;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (imaps, port 993).
    Tls,
    /// Plaintext greeting, then STARTTLS before anything else (port 143, RFC 3501 §6.2.1).
    StartTls,
    /// No TLS: only to a loopback address and only with `allow_plaintext_loopback`.
    Plain,
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Extra trusted CA certificates (PEM), e.g. for a server with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Allows [`Security::Plain`], and then only to loopback addresses.
    pub allow_plaintext_loopback: bool,
    /// Folder names for well-known source folders (`sentitems`, `drafts`, `deleteditems`,
    /// `junkemail`, `archive`) below the personal namespace; they win over SPECIAL-USE.
    pub special_folders: BTreeMap<String, String>,
    /// Names a server's admin API gives its own folders by well-known name, not proven by
    /// IMAP (IceWarp's `getaccountfolderlist`, whose mail folder-type letters are guessed):
    /// an existing folder of that name is used only where LIST shows no SPECIAL-USE folder for
    /// the role. Never over SPECIAL-USE, unlike [`ImapSettings::special_folders`].
    pub server_folders: BTreeMap<String, String>,
    /// Top-level names the server keeps for folders that are not mail (IceWarp's GroupWare
    /// folders are visible over IMAP): a source folder with such a name gets a distinct name
    /// instead of being merged into it.
    pub reserved_folders: Vec<String>,
    /// What replaces the hierarchy separator inside a folder name (`[run]
    /// folder_separator_substitute`, default `∕`); nothing else in a name changes.
    pub separator_substitute: String,
    /// Longest wait for one server response.
    pub timeout: Duration,
    /// Attempts and backoff when (re)connecting after a lost connection.
    pub reconnect: PacerSettings,
    /// How long a reconnect waits out a server that cannot be reached, with `reconnect`'s
    /// backoff, before [`ImapError::Unreachable`]; `None` (the default): `reconnect`'s
    /// attempts only.
    pub outage: Option<OutagePolicy>,
    /// Connections one user's mail may use at once (at least 1): the first is waited for, the
    /// others are opened only while the [`ConnectionLimit`] has room.
    pub connections_per_mailbox: usize,
    /// The cap on connections open to this server at once, shared by every clone of these
    /// settings (so by every mailbox of a run).
    pub connection_limit: ConnectionLimit,
    /// How many duplicate lookups in one folder may be answered by the server's SEARCH
    /// before the folder's fingerprint index is built; only in folders of more than
    /// `search_folder_min` messages, and only once the server's SEARCH found a message known
    /// to be there. 0: never SEARCH (the index always).
    pub search_lookups: u32,
    /// Folders with at most this many messages are always checked by their index.
    pub search_folder_min: u32,
}

/// [`ImapSettings::search_folder_min`] unless configured: building the index of a folder this
/// size is a few round trips.
pub const SEARCH_FOLDER_MIN: u32 = 5_000;
/// Lookups per folder answered by SEARCH unless configured ([`ImapSettings::search_lookups`]).
pub const DEFAULT_SEARCH_LOOKUPS: u32 = 4;
/// Messages per page when a folder's index is built.
const INDEX_PAGE: u32 = 2_000;
/// A SEARCH answering more candidates than this is not used: the index handles many messages
/// sharing one Message-ID or size in linear time.
const MAX_SEARCH_CANDIDATES: usize = 50;

/// Connections per mailbox unless configured.
pub const DEFAULT_CONNECTIONS_PER_MAILBOX: usize = 2;
/// Connections to the destination server at once unless configured: twice the default number
/// of parallel mailboxes, far below Dovecot's default `process_limit` and IceWarp's
/// per-IP limits.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// A cap on open connections to one server, shared by clones: every [`ImapMailbox`] holds
/// one of its permits while it exists (across reconnects), so the cap is never exceeded.
/// It also counts who waits for a permit, so that holders of spare connections can give
/// them back ([`ConnectionLimit::has_waiters`]).
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    max: usize,
    waiting: Arc<AtomicUsize>,
}

/// Counts one waiter of a [`ConnectionLimit`] while it exists (also when the wait is
/// abandoned).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionLimit {
    /// At most `max` connections (at least 1).
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        ConnectionLimit {
            permits: Arc::new(Semaphore::new(max)),
            max,
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn in_use(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// True while someone waits for a connection (see [`ImapMailbox::connect`]).
    pub fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, ImapError> {
        if let Some(permit) = self.try_acquire() {
            return Ok(permit);
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ImapError::Config("the connection limit was closed".into()))
    }

    fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }
}

impl ImapSettings {
    /// Settings with the defaults: no extra CA, no plaintext, SPECIAL-USE folders, a 2-minute
    /// response timeout, 4 connection attempts 1 s to 30 s apart.
    pub fn new(host: impl Into<String>, port: u16, security: Security) -> Self {
        ImapSettings {
            host: host.into(),
            port,
            security,
            ca_file: None,
            allow_plaintext_loopback: false,
            special_folders: BTreeMap::new(),
            server_folders: BTreeMap::new(),
            reserved_folders: Vec::new(),
            separator_substitute: crate::convert::folder_name::DEFAULT_SEPARATOR_SUBSTITUTE
                .to_string(),
            timeout: Duration::from_secs(120),
            reconnect: PacerSettings {
                max_in_flight: 1,
                budget: u32::MAX,
                window: Duration::from_secs(600),
                max_attempts: 4,
                min_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(30),
                ..PacerSettings::default()
            },
            outage: None,
            connections_per_mailbox: DEFAULT_CONNECTIONS_PER_MAILBOX,
            connection_limit: ConnectionLimit::new(DEFAULT_MAX_CONNECTIONS),
            search_lookups: DEFAULT_SEARCH_LOOKUPS,
            search_folder_min: SEARCH_FOLDER_MIN,
        }
    }
}

/// How a master user logs in for someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterStyle {
    /// SASL PLAIN with authzid = the user, authcid = the master user (RFC 4616 §2).
    SaslAuthzid,
    /// Dovecot's `user*master` login name with the master password
    /// (`auth_master_user_separator = *`).
    DovecotStar,
}

/// Whose credentials open the mailbox.
#[derive(Debug, Clone)]
pub enum ImapLogin {
    Password {
        user: String,
        password: Secret,
    },
    Master {
        user: String,
        master_user: String,
        master_password: Secret,
        style: MasterStyle,
    },
}

impl ImapLogin {
    /// The mailbox owner's login name.
    pub fn user(&self) -> &str {
        match self {
            ImapLogin::Password { user, .. } | ImapLogin::Master { user, .. } => user,
        }
    }
}

/// Why an IMAP operation failed. Texts quote the server, never a password.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("IMAP settings: {0}")]
    Config(String),
    #[error("cannot connect to IMAP server {host}:{port}")]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "TLS with IMAP server {host} failed (is its certificate trusted? see the CA file setting)"
    )]
    Tls {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to IMAP server {host} lost")]
    Connection {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("IMAP server {host} did not answer within {seconds} s")]
    Timeout { host: String, seconds: u64 },
    #[error("IMAP server {host} closed the session: {text}")]
    Bye { host: String, text: String },
    #[error(transparent)]
    Protocol(#[from] ParseError),
    /// A response over the client's bounds (a literal, a line, or the untagged responses to
    /// one command): the server is broken or hostile and would answer the same again, so the
    /// item or folder fails at once instead of being retried.
    #[error("IMAP server {host} sent more than the client reads for one command: {reason}; the item is not retried")]
    Oversized { host: String, reason: String },
    #[error("IMAP login as {user} refused: {text}")]
    Auth { user: String, text: String },
    #[error("IMAP server {host} is temporarily unavailable: {text}")]
    Unavailable { host: String, text: String },
    #[error("cannot append message to folder {folder}: {text}")]
    Rejected { folder: String, text: String },
    #[error("message for folder {folder} ended after {got} of {expected} bytes")]
    ShortBody {
        folder: String,
        expected: u64,
        got: u64,
    },
    #[error("cannot {action} folder {folder}: {text}")]
    Folder {
        action: &'static str,
        folder: String,
        text: String,
    },
    #[error("IMAP {command} failed: {text}")]
    Command { command: String, text: String },
    /// The server could not be reached for the whole outage limit ([`ImapSettings::outage`]).
    #[error("IMAP server {host}:{port} still unreachable after waiting {} (the run's outage_wait): {last}", crate::config::show_duration(*waited))]
    Unreachable {
        host: String,
        port: u16,
        waited: Duration,
        /// The last connection attempt's error.
        last: String,
    },
}

impl Classify for ImapError {
    fn class(&self) -> ErrorClass {
        match self {
            ImapError::Connect { .. }
            | ImapError::Connection { .. }
            | ImapError::Timeout { .. }
            | ImapError::Bye { .. }
            | ImapError::Protocol(_)
            | ImapError::Unavailable { .. } => ErrorClass::Retry,
            // A certificate problem does not go away by itself; a reset during the handshake
            // does.
            ImapError::Tls { source, .. } => match source.kind() {
                std::io::ErrorKind::InvalidData => ErrorClass::Fatal,
                _ => ErrorClass::Retry,
            },
            ImapError::Rejected { .. }
            | ImapError::ShortBody { .. }
            | ImapError::Folder { .. }
            | ImapError::Oversized { .. } => ErrorClass::SkipItem,
            // Already waited for as long as the run allows: this mailbox cannot go on.
            ImapError::Config(_)
            | ImapError::Auth { .. }
            | ImapError::Command { .. }
            | ImapError::Unreachable { .. } => ErrorClass::Fatal,
        }
    }
}

/// Where an appended message is: folder (wire name) and, with UIDPLUS, UIDVALIDITY and UID.
/// As a [`DestRef`] it reads like an IMAP URL path (RFC 5092): `folder;UIDVALIDITY=v/;UID=u`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapRef {
    pub folder: String,
    pub uid: Option<(u32, u32)>,
}

impl ImapRef {
    pub fn to_dest_ref(&self) -> DestRef {
        match self.uid {
            Some((validity, uid)) => {
                DestRef(format!("{};UIDVALIDITY={validity}/;UID={uid}", self.folder))
            }
            None => DestRef(self.folder.clone()),
        }
    }

    pub fn from_dest_ref(r: &DestRef) -> Self {
        let parsed = r.0.rsplit_once(";UIDVALIDITY=").and_then(|(folder, rest)| {
            let (validity, uid) = rest.split_once("/;UID=")?;
            Some(ImapRef {
                folder: folder.to_string(),
                uid: Some((validity.parse().ok()?, uid.parse().ok()?)),
            })
        });
        parsed.unwrap_or_else(|| ImapRef {
            folder: r.0.clone(),
            uid: None,
        })
    }
}

/// What identifies a message at the destination (see the module doc, "Exactly once").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFingerprint {
    /// The Message-ID header value, `<...>` included, if the message has one.
    pub message_id: Option<String>,
    /// Size in bytes (RFC822.SIZE at the server).
    pub size: u64,
    /// SHA-256 of the header section, with CR removed and trailing newlines trimmed.
    pub header_sha256: [u8; 32],
    /// The received date (INTERNALDATE), to the second.
    pub received: time::OffsetDateTime,
}

/// The header section is read up to this many bytes.
const MAX_HEADER: usize = 1024 * 1024;

impl MessageFingerprint {
    /// Reads the header section of a message of `size` bytes from `reader` (the spooled
    /// message; only the header is read).
    pub async fn read<R: AsyncRead + Unpin>(
        reader: R,
        size: u64,
        received: time::OffsetDateTime,
    ) -> std::io::Result<Self> {
        let mut limited =
            reader.take(MAX_HEADER.min(usize::try_from(size).unwrap_or(MAX_HEADER)) as u64);
        let mut head = HeaderCapture::default();
        let mut chunk = [0u8; 8192];
        while !head.is_complete() {
            let n = limited.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.feed(&chunk[..n]);
        }
        Ok(head.fingerprint(size, received))
    }

    /// The fingerprint of a whole message in memory.
    pub fn of_message(message: &[u8], received: time::OffsetDateTime) -> Self {
        let end = header_end(message, 0).unwrap_or(message.len().min(MAX_HEADER));
        Self::from_header(&message[..end], message.len() as u64, received)
    }

    fn from_header(header: &[u8], size: u64, received: time::OffsetDateTime) -> Self {
        MessageFingerprint {
            message_id: header_field(header, "message-id"),
            size,
            header_sha256: header_hash(header),
            received,
        }
    }
}

/// The header section of a message, taken from its bytes as they stream past (into a spool
/// file, say), so that its [`MessageFingerprint`] needs no second read of the message.
#[derive(Debug, Default)]
pub struct HeaderCapture {
    head: Vec<u8>,
    complete: bool,
}

impl HeaderCapture {
    /// Takes the next bytes of the message; ignores them once the header section ended (or
    /// reached its size limit).
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.complete {
            return;
        }
        let scan_from = self.head.len().saturating_sub(3);
        let room = MAX_HEADER - self.head.len();
        self.head.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if let Some(end) = header_end(&self.head, scan_from) {
            self.head.truncate(end);
            self.complete = true;
        } else if self.head.len() >= MAX_HEADER {
            self.complete = true;
        }
        if self.complete {
            // Kept while the message waits in a queue: no room for the chunk it came in.
            self.head.shrink_to_fit();
        }
    }

    /// True once the header section (or the first `MAX_HEADER` bytes) is captured.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The fingerprint of the message of `size` bytes whose start was fed: the same as
    /// [`MessageFingerprint::read`] of the whole message.
    pub fn fingerprint(&self, size: u64, received: time::OffsetDateTime) -> MessageFingerprint {
        MessageFingerprint::from_header(&self.head, size, received)
    }
}

/// The end of the header section (just after the empty line), searching from `from`.
fn header_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some(i + 4);
        }
        if buf[i..].starts_with(b"\n\n") {
            return Some(i + 2);
        }
        i += 1;
    }
    if buf.starts_with(b"\r\n") {
        return Some(2);
    }
    None
}

fn header_hash(header: &[u8]) -> [u8; 32] {
    let mut normal: Vec<u8> = header.iter().copied().filter(|&b| b != b'\r').collect();
    while normal.last() == Some(&b'\n') {
        normal.pop();
    }
    Sha256::digest(&normal).into()
}

/// The unfolded value of the first header field called `name` (case-insensitive).
fn header_field(header: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut lines = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            break;
        }
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        if !field.trim().eq_ignore_ascii_case(name) {
            continue;
        }
        let mut value = value.trim().to_string();
        while let Some(next) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
            value.push(' ');
            value.push_str(next.trim());
        }
        let value = value.trim().to_string();
        return (!value.is_empty()).then_some(value);
    }
    None
}

/// The flag list of an APPEND: system flags, `$Forwarded` and the categories as keywords.
pub fn append_flags(flags: &MailFlags) -> String {
    let mut out: Vec<String> = Vec::new();
    for (on, flag) in [
        (flags.seen, "\\Seen"),
        (flags.flagged, "\\Flagged"),
        (flags.draft, "\\Draft"),
        (flags.answered, "\\Answered"),
        (flags.forwarded, "$Forwarded"),
    ] {
        if on {
            out.push(flag.to_string());
        }
    }
    for k in &flags.keywords {
        // Already atoms; checked again so a hand-made MailFlags cannot inject syntax.
        if let Some(k) = keyword(k) {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out.join(" ")
}

/// A folder as listed by the server, with its name decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFolder {
    /// The name on the wire (modified UTF-7, or UTF-8 under UTF8=ACCEPT).
    pub wire: String,
    /// The path below the personal namespace, each part decoded.
    pub path: Vec<String>,
    pub attributes: Vec<String>,
}

/// A message read back from the server (verification and tests; held in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMessage {
    pub uid: u32,
    pub body: Vec<u8>,
    pub flags: Vec<String>,
    pub internal_date: Option<time::OffsetDateTime>,
    pub size: u64,
}

#[derive(Debug, Clone)]
struct Selected {
    wire: String,
    uid_validity: Option<u32>,
    /// Something was appended since it was selected: NOOP before searching.
    stale: bool,
    /// Opened with SELECT (read-write) rather than EXAMINE.
    writable: bool,
    /// Messages in it when it was opened (EXISTS).
    exists: u32,
}

/// How long after an APPEND was cut off the mailbox waits before it reconnects or looks for
/// the message: a server that had received the whole command may still store it after the
/// connection broke (busy, or unaware of the break), and a lookup before that finds nothing
/// and appends a second copy.
const CUT_APPEND_SETTLE: Duration = Duration::from_secs(2);

/// One user's mailbox on an IMAP server, over one connection. See the module doc.
pub struct ImapMailbox {
    settings: ImapSettings,
    login: ImapLogin,
    tls: Option<TlsConnector>,
    conn: Option<Connection>,
    reconnect: Pacer,
    server: Option<ServerFolders>,
    /// Source folder id -> wire name, filled by `ensure_folders`.
    mapped: HashMap<String, String>,
    selected: Option<Selected>,
    /// UTF8=ACCEPT is enabled (RFC 6855 §3): folder names go as UTF-8.
    utf8: bool,
    /// This mailbox's place under the server's connection limit.
    _permit: OwnedSemaphorePermit,
    /// Set when a reconnect waited out the whole outage limit: (waited, last error).
    unreachable: Option<(Duration, String)>,
    /// The fingerprint index of the folder last looked in.
    index: Option<FolderIndex>,
    /// Lookups answered by SEARCH in one folder (wire name) so far.
    searched: (String, u32),
    /// Whether the server's SEARCH found a message known to be there (asked once).
    search_proven: Option<bool>,
}

impl std::fmt::Debug for ImapMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapMailbox")
            .field("host", &self.settings.host)
            .field("user", &self.login.user())
            .finish_non_exhaustive()
    }
}

impl ImapMailbox {
    /// Connects and logs in (retrying connection failures by `settings.reconnect`), after
    /// waiting for room under `settings.connection_limit`.
    pub async fn connect(settings: &ImapSettings, login: &ImapLogin) -> Result<Self, ImapError> {
        let permit = settings.connection_limit.acquire().await?;
        Self::connect_with(settings, login, permit).await
    }

    /// Like [`ImapMailbox::connect`], but `None` at once when the connection limit has no
    /// room (for the extra connections of a mailbox, which must not wait for one).
    pub async fn connect_if_room(
        settings: &ImapSettings,
        login: &ImapLogin,
    ) -> Result<Option<Self>, ImapError> {
        match settings.connection_limit.try_acquire() {
            Some(permit) => Ok(Some(Self::connect_with(settings, login, permit).await?)),
            None => Ok(None),
        }
    }

    async fn connect_with(
        settings: &ImapSettings,
        login: &ImapLogin,
        permit: OwnedSemaphorePermit,
    ) -> Result<Self, ImapError> {
        let tls = match settings.security {
            Security::Plain => None,
            Security::Tls | Security::StartTls => Some(connection::tls_connector(settings)?),
        };
        let mut mailbox = ImapMailbox {
            settings: settings.clone(),
            login: login.clone(),
            tls,
            conn: None,
            reconnect: Pacer::new(settings.reconnect.clone()),
            server: None,
            mapped: HashMap::new(),
            selected: None,
            utf8: false,
            _permit: permit,
            unreachable: None,
            index: None,
            searched: (String::new(), 0),
            search_proven: None,
        };
        mailbox.connection().await?;
        Ok(mailbox)
    }

    /// The live connection, opening a new one (and logging in) if there is none or the last
    /// one broke.
    async fn connection(&mut self) -> Result<&mut Connection, ImapError> {
        if !self.conn.as_ref().is_some_and(Connection::is_usable) {
            self.conn = None;
            self.conn = Some(self.open_session().await?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ImapError::Config("no IMAP session".into()))
    }

    /// A new connection, logged in, with the reconnect policy's retries (through an outage,
    /// with [`ImapSettings::outage`]).
    async fn open_session(&mut self) -> Result<Connection, ImapError> {
        self.selected = None;
        // A message may have been stored just before the last connection was lost.
        if let Some(index) = self.index.as_mut() {
            index.dirty = true;
        }
        let unreachable = |(waited, last): (Duration, String)| ImapError::Unreachable {
            host: self.settings.host.clone(),
            port: self.settings.port,
            waited,
            last,
        };
        if let Some(gave_up) = self.unreachable.clone() {
            return Err(unreachable(gave_up));
        }
        let (settings, login, tls) = (&self.settings, &self.login, self.tls.as_ref());
        let conn = self
            .reconnect
            .call_within(
                settings.outage.as_ref(),
                |attempt| async move {
                    let result = async {
                        let mut conn = Connection::open(settings, tls).await?;
                        conn.login(login).await?;
                        let utf8 = conn.enable_utf8().await?;
                        Ok::<_, ImapError>((conn, utf8))
                    }
                    .await;
                    match result {
                        Ok(conn) => Verdict::Done(conn),
                        // Garbage from the server is not an outage: a few attempts only.
                        Err(error @ ImapError::Protocol(_)) => {
                            Verdict::Retry { after: None, error }
                        }
                        Err(error) if error.class() == ErrorClass::Retry => {
                            tracing::debug!(attempt, %error, "IMAP connection attempt failed");
                            Verdict::Down { after: None, error }
                        }
                        Err(error) => Verdict::Fail(error),
                    }
                },
                |_| {},
            )
            .await;
        let (conn, utf8) = match conn {
            Ok(conn) => conn,
            Err(GaveUp::Failed(error)) => return Err(error),
            Err(GaveUp::Down { error, down_for }) => {
                let mut last = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    last = format!("{last}: {cause}");
                    source = cause.source();
                }
                let gave_up = (down_for, last);
                self.unreachable = Some(gave_up.clone());
                return Err(unreachable(gave_up));
            }
        };
        self.utf8 = utf8;
        Ok(conn)
    }

    /// True when the session has UTF8=ACCEPT enabled (RFC 6855): folder names are UTF-8.
    pub fn utf8_names(&self) -> bool {
        self.utf8
    }

    /// True when several messages can go in one APPEND (MULTIAPPEND, RFC 3502).
    pub async fn can_multiappend(&mut self) -> Result<bool, ImapError> {
        Ok(self.connection().await?.capabilities().has("MULTIAPPEND"))
    }

    /// The capabilities of the current session (after login).
    pub async fn capabilities(&mut self) -> Result<types::Capabilities, ImapError> {
        Ok(self.connection().await?.capabilities().clone())
    }

    /// Lists the server's folders and learns its separator and personal namespace.
    async fn refresh_folders(&mut self) -> Result<&ServerFolders, ImapError> {
        let conn = self.connection().await?;
        let caps = conn.capabilities().clone();
        let namespace = if caps.has("NAMESPACE") {
            let done = conn.run(&[Arg::raw("NAMESPACE")]).await?;
            done.untagged.into_iter().find_map(|u| match u {
                Untagged::Namespace(personal) => personal.into_iter().next(),
                _ => None,
            })
        } else {
            None
        };
        let list = if caps.has("SPECIAL-USE") && caps.has("LIST-EXTENDED") {
            Arg::raw("LIST \"\" \"*\" RETURN (SPECIAL-USE)")
        } else {
            Arg::raw("LIST \"\" \"*\"")
        };
        let done = conn.run(&[list]).await?;
        let done = command_ok("LIST", done)?;
        let entries: Vec<ListEntry> = done
            .untagged
            .into_iter()
            .filter_map(|u| match u {
                Untagged::List(e) => Some(e),
                _ => None,
            })
            .collect();
        let mut server = ServerFolders::new(entries, namespace);
        server.utf8 = self.utf8;
        Ok(self.server.insert(server))
    }

    /// Every folder on the server, names decoded.
    pub async fn list_folders(&mut self) -> Result<Vec<ListedFolder>, ImapError> {
        let server = self.refresh_folders().await?;
        Ok(server
            .entries
            .iter()
            .map(|e| ListedFolder {
                wire: e.name.clone(),
                path: server.decode(&e.name),
                attributes: e.attributes.clone(),
            })
            .collect())
    }

    /// The wire names of the subscribed folders (`LSUB`).
    pub async fn subscribed(&mut self) -> Result<Vec<String>, ImapError> {
        let conn = self.connection().await?;
        let done = command_ok("LSUB", conn.run(&[Arg::raw("LSUB \"\" \"*\"")]).await?)?;
        Ok(done
            .untagged
            .into_iter()
            .filter_map(|u| match u {
                Untagged::List(e) => Some(e.name),
                _ => None,
            })
            .collect())
    }

    /// The hierarchy separator (known after `ensure_folders` or `list_folders`).
    pub fn separator(&self) -> Option<char> {
        self.server.as_ref().map(|s| s.separator)
    }

    /// Maps the source tree onto the server (rules in [`folders`]), creates and subscribes
    /// what is missing, and returns each node's wire name (same order). The outer error is
    /// about the session (listing failed); an inner one is about that folder alone (its items
    /// are to be skipped) and is also given to every folder below it.
    pub async fn ensure_folders(
        &mut self,
        nodes: &[FolderNode],
    ) -> Result<Vec<Result<String, ImapError>>, ImapError> {
        self.ensure_folders_recorded(nodes, &HashMap::new()).await
    }

    /// [`ImapMailbox::ensure_folders`] for a mailbox an earlier run wrote: `recorded` maps a
    /// source folder id to the wire name the journal records for it, kept when it is the name
    /// an earlier version gave the folder as it is now (see [`folders`]).
    pub async fn ensure_folders_recorded(
        &mut self,
        nodes: &[FolderNode],
        recorded: &HashMap<String, String>,
    ) -> Result<Vec<Result<String, ImapError>>, ImapError> {
        let mut server = self.refresh_folders().await?.clone();
        server.hints = self.settings.server_folders.clone();
        server.reserved = self.settings.reserved_folders.clone();
        server.substitute = self.settings.separator_substitute.clone();
        let placements =
            folders::plan_recorded(nodes, &server, &self.settings.special_folders, recorded);
        let mut results: Vec<Result<String, ImapError>> = Vec::with_capacity(nodes.len());
        for (i, placement) in placements.iter().enumerate() {
            let result = match placement {
                Placement::Special { wire, exists } => {
                    if *exists {
                        Ok(wire.clone())
                    } else {
                        self.create(wire).await?.map(|()| wire.clone())
                    }
                }
                Placement::Nested {
                    parent,
                    name,
                    suffix,
                } => {
                    let base = match parent {
                        Some(p) => match &results[*p] {
                            Ok(parent) => Ok(format!("{parent}{}", server.separator)),
                            // The parent's own failure names the cause; repeating it
                            // here would grow with every level of a deep tree.
                            Err(_) => Err(ImapError::Folder {
                                action: "create",
                                folder: nodes[i].path.join("/"),
                                text: format!(
                                    "its parent folder {} could not be created",
                                    nodes[*p].path.join("/")
                                ),
                            }),
                        },
                        None => Ok(server.prefix.clone()),
                    };
                    let recorded = recorded.get(&nodes[i].folder.id).map(String::as_str);
                    let folder = (&nodes[i], name.as_str(), suffix.as_str(), recorded);
                    match base {
                        Ok(base) => self.place(&server, &base, folder).await?,
                        Err(e) => Err(e),
                    }
                }
            };
            if let Ok(wire) = &result {
                self.mapped.insert(nodes[i].folder.id.clone(), wire.clone());
            }
            results.push(result);
        }
        Ok(results)
    }

    /// The wire name of an ordinary folder (node, display name, suffix, the journal's name):
    /// the journal's name if an earlier version gave it and it exists, else the plain form if
    /// it exists or can be created, else the strict form, else, when refused as too long, the
    /// shortened form (see [`folders`]).
    async fn place(
        &mut self,
        server: &ServerFolders,
        base: &str,
        (node, name, suffix, recorded): (&FolderNode, &str, &str, Option<&str>),
    ) -> Result<Result<String, ImapError>, ImapError> {
        if let Some(recorded) = recorded.filter(|r| server.contains(r)) {
            let earlier = server.legacy_components(name, suffix).map(|c| {
                let short = folders::shortened(&c, &node.folder.id);
                [format!("{base}{c}"), format!("{base}{short}")]
            });
            if earlier.iter().flatten().any(|e| e == recorded) {
                return Ok(Ok(recorded.to_string()));
            }
        }
        let plain = format!("{base}{}", server.component(name, suffix, false));
        let strict_component = server.component(name, suffix, true);
        let strict = format!("{base}{strict_component}");
        let short = format!(
            "{base}{}",
            folders::shortened(&strict_component, &node.folder.id)
        );
        if server.contains(&plain) {
            return Ok(Ok(plain));
        }
        if strict != plain && server.contains(&strict) {
            return Ok(Ok(strict));
        }
        if server.contains(&short) {
            return Ok(Ok(short));
        }
        let refused = match self.create(&plain).await? {
            Ok(()) => return Ok(Ok(plain)),
            Err(first) if strict != plain => {
                tracing::debug!(error = %first, "folder name refused; trying the strict escaping");
                match self.create(&strict).await? {
                    Ok(()) => return Ok(Ok(strict)),
                    Err(e) => e,
                }
            }
            Err(first) => first,
        };
        match &refused {
            ImapError::Folder { text, .. } if folders::refused_as_too_long(text) => {
                let created = self.create(&short).await?;
                if created.is_ok() {
                    tracing::info!(
                        folder = %node.path.join("/"),
                        name = %short,
                        "repair: the server refused the folder name as too long; created under a \
                         shortened name"
                    );
                }
                Ok(created.map(|()| short))
            }
            _ => Ok(Err(refused)),
        }
    }

    /// CREATE + SUBSCRIBE. `ALREADYEXISTS` (RFC 5530) counts as success.
    async fn create(&mut self, wire: &str) -> Result<Result<(), ImapError>, ImapError> {
        let conn = self.connection().await?;
        let done = conn.run(&[Arg::raw("CREATE"), Arg::string(wire)]).await?;
        let exists = matches!(&done.status.code, Some(Code::Other(c)) if c == "ALREADYEXISTS");
        if !done.is_ok() && !exists {
            return Ok(Err(ImapError::Folder {
                action: "create",
                folder: folders::decode_component(wire),
                text: done.status.describe(),
            }));
        }
        let sub = conn
            .run(&[Arg::raw("SUBSCRIBE"), Arg::string(wire)])
            .await?;
        if !sub.is_ok() {
            tracing::warn!(text = %sub.status.describe(), "SUBSCRIBE refused");
        }
        Ok(Ok(()))
    }

    /// The wire name `ensure_folders` chose for a source folder.
    pub fn folder_for(&self, node: &FolderNode) -> Option<&str> {
        self.mapped.get(&node.folder.id).map(String::as_str)
    }

    /// Appends one message of exactly `len` bytes read from `body` to `folder` (a wire name
    /// from [`ImapMailbox::ensure_folders`]). See the module doc for the contract.
    pub async fn append<R: AsyncRead + Unpin + Send>(
        &mut self,
        folder: &str,
        body: R,
        len: u64,
        flags: &MailFlags,
        received: time::OffsetDateTime,
    ) -> Result<DestRef, ImapError> {
        let mut refs = self
            .append_many(folder, vec![(body, len, flags, received)])
            .await?;
        refs.pop()
            .ok_or_else(|| ImapError::Config("APPEND returned no reference".into()))
    }

    /// Appends several messages `(body, len, flags, received)` to `folder` in one command:
    /// MULTIAPPEND (RFC 3502) when there is more than one, which the server must offer (see
    /// [`ImapMailbox::can_multiappend`]). Returns one [`DestRef`] per message, in order, with
    /// the UIDs of `APPENDUID` (RFC 4315 §3: a uid-set, in append order) when given.
    ///
    /// By RFC 3502 a server that refuses one message stores none of them: the error
    /// ([`ImapError::Rejected`], [`ErrorClass::SkipItem`]) is then about the batch, and the
    /// caller appends its messages one by one to learn which one was refused.
    pub async fn append_many<R: AsyncRead + Unpin + Send>(
        &mut self,
        folder: &str,
        messages: Vec<(R, u64, &MailFlags, time::OffsetDateTime)>,
    ) -> Result<Vec<DestRef>, ImapError> {
        let count = messages.len();
        let parts = append_parts(messages);
        let conn = self.connection().await?;
        let done = conn
            .append(folder, parts)
            .await
            .inspect_err(|_| self.reconnect.pause(CUT_APPEND_SETTLE))?;
        self.appended(folder, done, count)
    }

    /// Appends several messages to `folder` with one pipelined APPEND each (see
    /// [`connection::Connection::append_pipelined`]); the server must offer LITERAL+ (see
    /// [`ImapMailbox::can_pipeline`]). One result per message, in order: a refused message
    /// fails alone. The outer error is about the connection (nothing is known of the batch).
    pub async fn append_pipelined<R: AsyncRead + Unpin + Send>(
        &mut self,
        folder: &str,
        messages: Vec<(R, u64, &MailFlags, time::OffsetDateTime)>,
    ) -> Result<Vec<Result<DestRef, ImapError>>, ImapError> {
        let parts = append_parts(messages);
        let conn = self.connection().await?;
        let done = conn
            .append_pipelined(folder, parts)
            .await
            .inspect_err(|_| self.reconnect.pause(CUT_APPEND_SETTLE))?;
        Ok(done
            .into_iter()
            .map(|d| {
                self.appended(folder, d, 1)
                    .and_then(|mut r| r.pop().ok_or_else(|| ImapError::Config("no ref".into())))
            })
            .collect())
    }

    /// True when APPENDs can be pipelined without waiting for continuations (LITERAL+).
    pub async fn can_pipeline(&mut self) -> Result<bool, ImapError> {
        Ok(self.connection().await?.capabilities().has("LITERAL+"))
    }

    /// The references of `count` messages appended by one command that ended with `done`.
    fn appended(
        &mut self,
        folder: &str,
        done: Completion,
        count: usize,
    ) -> Result<Vec<DestRef>, ImapError> {
        if let Some(s) = self.selected.as_mut().filter(|s| s.wire == folder) {
            s.stale = true;
            // The server tells the new size with the APPEND's answer (RFC 3501 §6.3.11).
            s.exists = last_exists(&done.untagged).unwrap_or(s.exists);
        }
        self.index_changed(folder, None);
        match done.status.status {
            Status::Ok => {
                let uids: Vec<Option<(u32, u32)>> = match done.status.code {
                    Some(Code::AppendUid { uid_validity, uid }) if count == 1 => {
                        vec![Some((uid_validity, uid))]
                    }
                    Some(Code::AppendUids { uid_validity, uids }) if uids.len() == count => {
                        uids.into_iter().map(|u| Some((uid_validity, u))).collect()
                    }
                    _ => vec![None; count],
                };
                Ok(uids
                    .into_iter()
                    .map(|uid| {
                        ImapRef {
                            folder: folder.to_string(),
                            uid,
                        }
                        .to_dest_ref()
                    })
                    .collect())
            }
            _ if is_temporary(&done.status) => Err(ImapError::Unavailable {
                host: self.settings.host.clone(),
                text: done.status.describe(),
            }),
            _ => Err(ImapError::Rejected {
                folder: folders::decode_component(folder),
                text: done.status.describe(),
            }),
        }
    }

    /// The number of messages in `folder` now (EXISTS from a fresh EXAMINE).
    pub async fn message_count(&mut self, folder: &str) -> Result<u32, ImapError> {
        self.selected = None;
        self.examine(folder).await?;
        Ok(self.selected.as_ref().map_or(0, |s| s.exists))
    }

    /// Selects `folder` read-only (EXAMINE), or refreshes it with NOOP if it was appended to.
    async fn examine(&mut self, folder: &str) -> Result<Option<u32>, ImapError> {
        self.open_folder(folder, false).await
    }

    /// Opens `folder`: read-write (SELECT) when `writable`, else read-only (EXAMINE). A folder
    /// already open in a sufficient mode is reused (NOOP first if it was appended to).
    /// Returns its UIDVALIDITY.
    async fn open_folder(
        &mut self,
        folder: &str,
        writable: bool,
    ) -> Result<Option<u32>, ImapError> {
        // A lost connection is replaced here, before the selection is trusted: a new session
        // has nothing selected (`open_session` forgets it).
        self.connection().await?;
        if let Some(s) = self
            .selected
            .clone()
            .filter(|s| s.wire == folder && (s.writable || !writable))
        {
            if s.stale {
                let conn = self.connection().await?;
                let done = command_ok("NOOP", conn.run(&[Arg::raw("NOOP")]).await?)?;
                if let Some(s) = self.selected.as_mut() {
                    s.stale = false;
                    s.exists = last_exists(&done.untagged).unwrap_or(s.exists);
                }
            }
            return Ok(s.uid_validity);
        }
        self.selected = None;
        let conn = self.connection().await?;
        let verb = if writable { "SELECT" } else { "EXAMINE" };
        let done = conn.run(&[Arg::raw(verb), Arg::string(folder)]).await?;
        if !done.is_ok() {
            return Err(ImapError::Folder {
                action: "open",
                folder: folders::decode_component(folder),
                text: done.status.describe(),
            });
        }
        let uid_validity = done.untagged.iter().find_map(|u| match u {
            Untagged::Status(StatusResponse {
                code: Some(Code::UidValidity(v)),
                ..
            }) => Some(*v),
            _ => None,
        });
        let exists = last_exists(&done.untagged).unwrap_or(0);
        self.selected = Some(Selected {
            wire: folder.to_string(),
            uid_validity,
            stale: false,
            writable,
            exists,
        });
        Ok(uid_validity)
    }

    /// Adds and removes flags of one message (`UID STORE uid +FLAGS.SILENT (...)` then
    /// `-FLAGS.SILENT`, RFC 3501 §6.4.6): only the flags named change, so flags set at the
    /// destination by someone else stay. Flags that are not a system flag or a keyword atom
    /// are left out. A UID that is no longer there changes nothing (and is not an error).
    pub async fn store_flags(
        &mut self,
        folder: &str,
        uid: u32,
        add: &[String],
        remove: &[String],
    ) -> Result<(), ImapError> {
        self.open_folder(folder, true).await?;
        for (sign, list) in [('+', add), ('-', remove)] {
            let flags: Vec<&str> = list
                .iter()
                .map(String::as_str)
                .filter(|f| is_flag(f))
                .collect();
            if flags.is_empty() {
                continue;
            }
            let line = format!("UID STORE {uid} {sign}FLAGS.SILENT ({})", flags.join(" "));
            let conn = self.connection().await?;
            command_ok("UID STORE", conn.run(&[Arg::raw(line)]).await?)?;
        }
        Ok(())
    }

    /// Moves one message from `from` to `to`: `UID MOVE` (RFC 6851) when the server has MOVE,
    /// else `UID COPY`, `\Deleted` and `UID EXPUNGE` of that one UID (UIDPLUS, RFC 4315
    /// §2.1; without UIDPLUS the original stays marked `\Deleted`, because a plain EXPUNGE
    /// would also remove messages the user marked). Returns `(UIDVALIDITY, UID)` in `to` when
    /// the server reports it (COPYUID); `None` when it does not, or the message was not there.
    pub async fn move_message(
        &mut self,
        from: &str,
        uid: u32,
        to: &str,
    ) -> Result<Option<(u32, u32)>, ImapError> {
        self.open_folder(from, true).await?;
        let conn = self.connection().await?;
        let caps = conn.capabilities().clone();
        let verb = if caps.has("MOVE") { "MOVE" } else { "COPY" };
        let done = conn
            .run(&[Arg::raw(format!("UID {verb} {uid}")), Arg::string(to)])
            .await?;
        let done = command_ok(&format!("UID {verb}"), done)?;
        let copied = done
            .untagged
            .iter()
            .filter_map(|u| match u {
                Untagged::Status(s) => s.code.as_ref(),
                _ => None,
            })
            .chain(done.status.code.as_ref())
            .find_map(|code| match code {
                Code::CopyUid {
                    uid_validity,
                    source,
                    dest,
                } => source
                    .iter()
                    .position(|s| *s == uid)
                    .and_then(|i| dest.get(i))
                    .map(|d| (*uid_validity, *d)),
                _ => None,
            });
        if verb == "COPY" && copied.is_some() {
            self.delete_message(from, uid).await?;
        }
        self.index_changed(to, None);
        self.index_changed(from, Some(uid));
        Ok(copied)
    }

    /// Deletes one message: `\Deleted`, then `UID EXPUNGE` of that UID alone when the server
    /// has UIDPLUS (RFC 4315 §2.1). Without UIDPLUS the message stays marked `\Deleted` for
    /// the user's client to expunge: a plain EXPUNGE would also remove messages the user had
    /// marked.
    pub async fn delete_message(&mut self, folder: &str, uid: u32) -> Result<(), ImapError> {
        self.store_flags(folder, uid, &["\\Deleted".to_string()], &[])
            .await?;
        self.index_changed(folder, Some(uid));
        let conn = self.connection().await?;
        if conn.capabilities().has("UIDPLUS") {
            command_ok(
                "UID EXPUNGE",
                conn.run(&[Arg::raw(format!("UID EXPUNGE {uid}"))]).await?,
            )?;
        }
        Ok(())
    }

    /// The UIDVALIDITY of `folder` (from EXAMINE).
    pub async fn uid_validity(&mut self, folder: &str) -> Result<Option<u32>, ImapError> {
        self.examine(folder).await
    }

    /// The UID of a message in `folder` that is the one `fingerprint` describes, if any (rule
    /// in the module doc). Never changes the folder (EXAMINE, BODY.PEEK).
    ///
    /// Answered by the folder's fingerprint index ([`index`]), built on the first lookup and
    /// brought up to date by one `UID FETCH` of what arrived since; a few lookups in a large
    /// folder go by SEARCH instead when the server proved its SEARCH works (see
    /// [`ImapSettings::search_lookups`]). A SEARCH the server refuses (BADCHARSET, an 8-bit
    /// value, a limit), or that names too many candidates, falls back to the index: never an
    /// error of the mailbox.
    pub async fn find_existing(
        &mut self,
        folder: &str,
        fingerprint: &MessageFingerprint,
    ) -> Result<Option<u32>, ImapError> {
        // Not before an APPEND that was cut off could have been stored.
        self.reconnect.hold_while_paused().await;
        let uid_validity = self.examine(folder).await?;
        let exists = self.selected.as_ref().map_or(0, |s| s.exists);
        let indexed = self
            .index
            .as_ref()
            .is_some_and(|i| i.wire == folder && i.uid_validity == uid_validity);
        if self.searched.0 != folder {
            self.searched = (folder.to_string(), 0);
        }
        if !indexed
            && exists > self.settings.search_folder_min
            && self.searched.1 < self.settings.search_lookups
        {
            if let Some(found) = self.find_by_search(folder, fingerprint).await? {
                self.searched.1 += 1;
                return Ok(found);
            }
        }
        self.find_in_index(folder, uid_validity, fingerprint).await
    }

    /// The index's answer, after building or refreshing it and fetching the header hashes of
    /// the candidates not hashed yet.
    async fn find_in_index(
        &mut self,
        folder: &str,
        uid_validity: Option<u32>,
        fingerprint: &MessageFingerprint,
    ) -> Result<Option<u32>, ImapError> {
        let mut index = match self.index.take() {
            Some(i) if i.wire == folder && i.uid_validity == uid_validity => i,
            _ => {
                let mut fresh = FolderIndex::new(folder, uid_validity);
                fresh.dirty = true;
                self.build_index(&mut fresh).await?;
                fresh
            }
        };
        let result = async {
            if index.dirty {
                self.refresh_index(&mut index).await?;
            }
            for chunk in index.unhashed(fingerprint).chunks(50) {
                let fetched = self.fetch_headers(chunk).await?;
                for uid in chunk {
                    let hash = fetched.iter().find(|(u, _)| u == uid).map(|(_, h)| *h);
                    index.set_hash(*uid, hash);
                }
                if index.matched(fingerprint).is_some() {
                    break;
                }
            }
            Ok(index.matched(fingerprint))
        }
        .await;
        self.index = Some(index);
        result
    }

    /// Fills a new index with every message of the selected folder, by pages of sequence
    /// numbers (`FETCH a:b`), the folder's size known from EXAMINE.
    async fn build_index(&mut self, index: &mut FolderIndex) -> Result<(), ImapError> {
        let exists = self.selected.as_ref().map_or(0, |s| s.exists);
        let mut first = 1u32;
        while first <= exists {
            let last = first.saturating_add(INDEX_PAGE - 1).min(exists);
            self.fetch_into_index(index, &format!("FETCH {first}:{last}"), false)
                .await?;
            first = last.saturating_add(1);
            if last == u32::MAX {
                break;
            }
        }
        index.dirty = false;
        Ok(())
    }

    /// Adds what arrived since the index was last brought up to date (`UID FETCH n:*`).
    async fn refresh_index(&mut self, index: &mut FolderIndex) -> Result<(), ImapError> {
        // EXAMINE again if something was appended: EXISTS and the new UIDs become visible.
        self.examine(&index.wire.clone()).await?;
        let exists = self.selected.as_ref().map_or(0, |s| s.exists);
        let from = index.last_uid.saturating_add(1);
        // Some servers refuse `n:*` in an empty folder: then there is nothing to add.
        self.fetch_into_index(index, &format!("UID FETCH {from}:*"), exists == 0)
            .await?;
        index.dirty = false;
        Ok(())
    }

    /// Adds the messages of `set` to `index`; a refusal is an error unless `may_refuse`.
    async fn fetch_into_index(
        &mut self,
        index: &mut FolderIndex,
        set: &str,
        may_refuse: bool,
    ) -> Result<(), ImapError> {
        let conn = self.connection().await?;
        let done = conn
            .run(&[Arg::raw(format!(
                "{set} (UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
            ))])
            .await?;
        if !done.is_ok() && may_refuse {
            return Ok(());
        }
        let done = command_ok("FETCH", done)?;
        for u in &done.untagged {
            if let Untagged::Fetch(f) = u {
                index.add(f);
            }
        }
        Ok(())
    }

    /// The header hashes of `uids` in the selected folder, of those still there.
    async fn fetch_headers(&mut self, uids: &[u32]) -> Result<Vec<(u32, [u8; 32])>, ImapError> {
        let set = sequence_set(uids);
        let conn = self.connection().await?;
        let done = command_ok(
            "UID FETCH",
            conn.run(&[Arg::raw(format!("UID FETCH {set} (UID BODY.PEEK[HEADER])"))])
                .await?,
        )?;
        Ok(done
            .untagged
            .into_iter()
            .filter_map(|u| match u {
                Untagged::Fetch(f) => Some((f.uid?, header_hash(f.header.as_deref()?))),
                _ => None,
            })
            .collect())
    }

    /// The SEARCH fast path: `Some(answer)` when SEARCH could answer, `None` when the index
    /// must (SEARCH not proven, refused, or naming too many candidates).
    async fn find_by_search(
        &mut self,
        folder: &str,
        fingerprint: &MessageFingerprint,
    ) -> Result<Option<Option<u32>>, ImapError> {
        if !self.search_works(folder).await? {
            return Ok(None);
        }
        let Some(uids) = self.search_candidates(fingerprint).await? else {
            return Ok(None);
        };
        if uids.len() > MAX_SEARCH_CANDIDATES {
            return Ok(None);
        }
        let conn = self.connection().await?;
        let set = sequence_set(&uids);
        if set.is_empty() {
            return Ok(Some(None));
        }
        let done = command_ok(
            "UID FETCH",
            conn.run(&[Arg::raw(format!(
                "UID FETCH {set} (UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER])"
            ))])
            .await?,
        )?;
        let mut index = FolderIndex::new(folder, None);
        let mut hashes = Vec::new();
        for u in &done.untagged {
            if let Untagged::Fetch(f) = u {
                let mut fields = f.clone();
                fields.header_fields = f.header.clone();
                index.add(&fields);
                if let (Some(uid), Some(header)) = (f.uid, f.header.as_deref()) {
                    hashes.push((uid, header_hash(header)));
                }
            }
        }
        for (uid, hash) in hashes {
            index.set_hash(uid, Some(hash));
        }
        Ok(Some(index.matched(fingerprint)))
    }

    /// `UID SEARCH` for the candidates of `fingerprint`: by Message-ID, else by size. `None`
    /// when the server refuses the search (NO or BAD: BADCHARSET, 8-bit values, limits).
    async fn search_candidates(
        &mut self,
        fingerprint: &MessageFingerprint,
    ) -> Result<Option<Vec<u32>>, ImapError> {
        let utf8 = self.utf8;
        let mut search = vec![Arg::raw("UID SEARCH")];
        match &fingerprint.message_id {
            Some(id) => {
                // RFC 6855 §3: no CHARSET once UTF8=ACCEPT is enabled (UTF-8 is implied).
                if !id.is_ascii() && !utf8 {
                    search.push(Arg::raw("CHARSET UTF-8"));
                }
                search.push(Arg::raw("HEADER Message-ID"));
                search.push(Arg::string(id));
            }
            None => {
                let size = fingerprint.size;
                if size > 0 {
                    search.push(Arg::raw(format!("LARGER {}", size - 1)));
                }
                search.push(Arg::raw(format!("SMALLER {}", size.saturating_add(1))));
            }
        }
        let conn = self.connection().await?;
        let done = conn.run(&search).await?;
        if !done.is_ok() {
            tracing::debug!(reason = %done.status.describe(), "SEARCH refused; using the index");
            return Ok(None);
        }
        let mut uids: Vec<u32> = done
            .untagged
            .into_iter()
            .filter_map(|u| match u {
                Untagged::Search(n) => Some(n),
                _ => None,
            })
            .flatten()
            .collect();
        uids.sort_unstable();
        uids.dedup();
        Ok(Some(uids))
    }

    /// Whether the server's SEARCH finds the newest message of `folder` by its Message-ID and
    /// by its size: asked once per mailbox, the answer kept. A server whose SEARCH answers
    /// nothing, or refuses, is never asked again; the index answers instead.
    async fn search_works(&mut self, folder: &str) -> Result<bool, ImapError> {
        if let Some(proven) = self.search_proven {
            return Ok(proven);
        }
        let conn = self.connection().await?;
        let done = command_ok(
            "FETCH",
            conn.run(&[Arg::raw(
                "FETCH * (UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER])",
            )])
            .await?,
        )?;
        let newest = done.untagged.into_iter().find_map(|u| match u {
            Untagged::Fetch(f) => Some(f),
            _ => None,
        });
        let Some((uid, fingerprint)) = newest.and_then(|f| {
            let date = f.internal_date.as_deref().and_then(parse_internal_date)?;
            let header = f.header?;
            Some((
                f.uid?,
                MessageFingerprint::from_header(&header, f.size?, date),
            ))
        }) else {
            return Ok(false);
        };
        let mut works = true;
        let mut by_size = fingerprint.clone();
        by_size.message_id = None;
        for probe in [&fingerprint, &by_size] {
            let found = self.search_candidates(probe).await?;
            works &= found.is_some_and(|uids| uids.contains(&uid));
        }
        tracing::debug!(folder, works, "the server's SEARCH was checked");
        self.search_proven = Some(works);
        Ok(works)
    }

    /// Keeps the index in step with a change the migrator made: something arrived in
    /// `folder` (`None`), or `uid` left it.
    fn index_changed(&mut self, folder: &str, gone: Option<u32>) {
        if let Some(index) = self.index.as_mut().filter(|i| i.wire == folder) {
            match gone {
                Some(uid) => index.remove(uid),
                None => index.dirty = true,
            }
        }
    }

    /// Reads one message back whole (for verification and tests; it is held in memory).
    pub async fn fetch(
        &mut self,
        folder: &str,
        uid: u32,
    ) -> Result<Option<FetchedMessage>, ImapError> {
        self.examine(folder).await?;
        let conn = self.connection().await?;
        let done = command_ok(
            "UID FETCH",
            conn.run(&[Arg::raw(format!(
                "UID FETCH {uid} (UID RFC822.SIZE INTERNALDATE FLAGS BODY.PEEK[])"
            ))])
            .await?,
        )?;
        Ok(done.untagged.into_iter().find_map(|u| match u {
            Untagged::Fetch(f) if f.uid == Some(uid) => Some(FetchedMessage {
                uid,
                body: f.body.unwrap_or_default(),
                flags: f.flags.unwrap_or_default(),
                internal_date: f.internal_date.as_deref().and_then(parse_internal_date),
                size: f.size.unwrap_or_default(),
            }),
            _ => None,
        }))
    }

    /// The UIDs of every message in `folder`.
    pub async fn uids(&mut self, folder: &str) -> Result<Vec<u32>, ImapError> {
        self.examine(folder).await?;
        let conn = self.connection().await?;
        let done = command_ok("UID SEARCH", conn.run(&[Arg::raw("UID SEARCH ALL")]).await?)?;
        let mut uids: Vec<u32> = done
            .untagged
            .into_iter()
            .filter_map(|u| match u {
                Untagged::Search(n) => Some(n),
                _ => None,
            })
            .flatten()
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Logs out and closes the connection.
    pub async fn logout(mut self) {
        if let Some(conn) = self.conn.take() {
            conn.logout().await;
        }
    }
}

/// The APPEND parts of `(body, len, flags, received)` messages.
fn append_parts<R>(
    messages: Vec<(R, u64, &MailFlags, time::OffsetDateTime)>,
) -> Vec<AppendPart<R>> {
    messages
        .into_iter()
        .map(|(body, len, flags, received)| AppendPart {
            flags: append_flags(flags),
            date: internal_date(received),
            body,
            len,
        })
        .collect()
}

/// `uids` as an IMAP sequence set (`3,5,9`, RFC 3501 §9).
fn sequence_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The last `n EXISTS` among `untagged`: the folder's size now (RFC 3501 §7.3.1).
fn last_exists(untagged: &[Untagged]) -> Option<u32> {
    untagged.iter().rev().find_map(|u| match u {
        Untagged::Exists(n) => Some(*n),
        _ => None,
    })
}

/// A system flag (`\\Seen`) or a keyword atom: safe to put in a STORE flag list.
fn is_flag(f: &str) -> bool {
    match f.strip_prefix('\\') {
        Some(system) => !system.is_empty() && system.chars().all(|c| c.is_ascii_alphabetic()),
        None => keyword(f).as_deref() == Some(f),
    }
}

/// RFC 5530 codes that say "try again later".
fn is_temporary(status: &StatusResponse) -> bool {
    matches!(&status.code, Some(Code::Other(c)) if matches!(c.as_str(), "UNAVAILABLE" | "INUSE" | "SERVERBUG"))
}

fn command_ok(command: &str, done: Completion) -> Result<Completion, ImapError> {
    if done.is_ok() {
        Ok(done)
    } else {
        Err(ImapError::Command {
            command: command.to_string(),
            text: done.status.describe(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dest_refs_round_trip() {
        let r = ImapRef {
            folder: "INBOX/a;b".into(),
            uid: Some((1795503603, 42)),
        };
        assert_eq!(
            r.to_dest_ref().0,
            "INBOX/a;b;UIDVALIDITY=1795503603/;UID=42"
        );
        assert_eq!(ImapRef::from_dest_ref(&r.to_dest_ref()), r);
        let bare = ImapRef {
            folder: "Sent".into(),
            uid: None,
        };
        assert_eq!(ImapRef::from_dest_ref(&bare.to_dest_ref()), bare);
    }

    #[test]
    fn append_flags_are_system_flags_then_keywords() {
        let flags = MailFlags {
            seen: true,
            flagged: true,
            draft: false,
            answered: true,
            forwarded: true,
            keywords: vec!["Red_category".into(), "bad (x)".into()],
        };
        assert_eq!(
            append_flags(&flags),
            "\\Seen \\Flagged \\Answered $Forwarded Red_category bad__x_"
        );
        assert_eq!(append_flags(&MailFlags::default()), "");
    }

    #[test]
    fn a_header_captured_in_any_chunking_fingerprints_like_a_read_of_the_file() {
        let at = datetime!(2024-01-02 03:04:05 UTC);
        let crlf = b"Message-ID: <a@b>\r\nSubject: s\r\n\r\nbody\r\n\r\nmore".to_vec();
        let lf = b"Message-ID: <c@d>\nSubject: t\n\nbody".to_vec();
        let endless = vec![b'x'; MAX_HEADER + 10];
        for msg in [crlf, lf, endless] {
            let whole = MessageFingerprint::of_message(&msg, at);
            // Chunk sizes that split the empty line's CR LF CR LF in every place.
            for size in [1, 2, 3, 5, 7, 64, 8192, msg.len()] {
                let mut head = HeaderCapture::default();
                msg.chunks(size).for_each(|c| head.feed(c));
                assert_eq!(
                    head.fingerprint(msg.len() as u64, at),
                    whole,
                    "chunks of {size}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_waiter_for_the_connection_limit_is_seen_until_it_gets_a_place() {
        let limit = ConnectionLimit::new(1);
        let held = limit.try_acquire().unwrap();
        assert!(!limit.has_waiters());
        let waiter = {
            let limit = limit.clone();
            tokio::spawn(async move { limit.acquire().await.map(drop) })
        };
        for _ in 0..10_000 {
            if limit.has_waiters() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(limit.has_waiters());
        drop(held);
        waiter.await.unwrap().unwrap();
        assert!(!limit.has_waiters());
        assert_eq!(limit.in_use(), 0);
    }

    #[tokio::test]
    async fn fingerprints_read_only_the_header() {
        let msg = b"Received: x\r\nMessage-ID:\r\n  <abc@example.com>\r\nSubject: hi\r\n\r\nbody\r\n\r\nmore";
        let at = datetime!(2024-01-02 03:04:05 UTC);
        let fp = MessageFingerprint::read(&msg[..], msg.len() as u64, at)
            .await
            .unwrap();
        assert_eq!(fp.message_id.as_deref(), Some("<abc@example.com>"));
        assert_eq!(fp.size, msg.len() as u64);
        assert_eq!(fp, MessageFingerprint::of_message(msg, at));
        // The server's header has CRLF or LF endings; both hash the same.
        let lf = b"Received: x\nMessage-ID:\n  <abc@example.com>\nSubject: hi\n\n";
        assert_eq!(header_hash(lf), fp.header_sha256);
        let none = MessageFingerprint::of_message(b"Subject: x\r\n\r\nb", at);
        assert_eq!(none.message_id, None);
        assert_eq!(
            header_field(b"message-id: <a>\r\nX: y\r\n", "Message-ID").as_deref(),
            Some("<a>")
        );
    }

    #[test]
    fn error_classes() {
        let io = || std::io::Error::other("x");
        assert_eq!(
            ImapError::Auth {
                user: "u".into(),
                text: "no".into()
            }
            .class(),
            ErrorClass::Fatal
        );
        assert_eq!(
            ImapError::Rejected {
                folder: "f".into(),
                text: "too big".into()
            }
            .class(),
            ErrorClass::SkipItem
        );
        assert_eq!(
            ImapError::Connection {
                host: "h".into(),
                source: io()
            }
            .class(),
            ErrorClass::Retry
        );
        assert_eq!(
            ImapError::Tls {
                host: "h".into(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "bad cert")
            }
            .class(),
            ErrorClass::Fatal
        );
        assert_eq!(ImapError::Config("x".into()).class(), ErrorClass::Fatal);
    }
}
