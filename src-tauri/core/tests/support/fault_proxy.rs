//! A TCP fault proxy for tests: listens on 127.0.0.1, forwards every connection to a real
//! server on 127.0.0.1, and breaks connections on command, the way networks and restarting
//! servers do. It reads the client's bytes as IMAP (lines and `{n}` / `{n+}` literals,
//! RFC 3501 §4.3 and RFC 7888) so it can cut a connection halfway through an APPEND's message
//! or right after a LOGIN/AUTHENTICATE command; a plaintext session is needed for that (TLS
//! hides the commands), so IMAP tests point a `Security::Plain` client at it.
//!
//! Every fault is armed once and fires once; [`FaultProxy::fired`] says which did, so a test
//! can prove its faults happened.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

/// One way to break a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next connection is cut after this many bytes from the client.
    AfterClientBytes(u64),
    /// The connection carrying the `nth` APPEND seen from now on (1-based) is cut when half of
    /// that message's literal has been forwarded.
    MidAppend { nth: u64 },
    /// The next connection that sends LOGIN or AUTHENTICATE is cut right after that command
    /// line reached the server, before its answer.
    DuringLogin,
    /// The connection carrying the `nth` APPEND seen from now on is cut on the client's side
    /// once the whole command was sent, and the server gets the command's last line `delay_ms`
    /// ms later: a server still busy with a command when its client's connection broke, which
    /// stores the message after the client has reconnected.
    LateCommit { nth: u64, delay_ms: u64 },
}

/// How the server behind the proxy answers the migrator's duplicate lookups (`UID SEARCH`
/// other than `ALL`). imapsync's notes doubt IceWarp's SEARCH and document no failure mode,
/// so both are made from Dovecot's own answers: the criteria are changed on the way in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SearchAnswer {
    /// Passed through unchanged.
    #[default]
    Real,
    /// `NOT ALL` is added to the criteria: an OK with no match, whatever is there.
    Nothing,
    /// An unknown CHARSET is asked for: Dovecot answers `NO [BADCHARSET ...]` (RFC 3501
    /// §6.4.4), as a server refusing an 8-bit or over-long value would.
    Refused,
}

impl SearchAnswer {
    fn rewrite(self, line: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(line);
        let mut words = text.splitn(4, ' ');
        let (tag, uid, search, rest) = (words.next(), words.next(), words.next(), words.next());
        let lookup = uid.is_some_and(|w| w.eq_ignore_ascii_case("UID"))
            && search.is_some_and(|w| w.eq_ignore_ascii_case("SEARCH"))
            && rest.is_some_and(|r| !r.trim_end().eq_ignore_ascii_case("ALL"));
        let (Some(tag), Some(rest), true) = (tag, rest, lookup) else {
            return line.to_vec();
        };
        let rest = &line[line.len() - rest.len()..];
        let criteria: &[u8] = match self {
            SearchAnswer::Real => return line.to_vec(),
            SearchAnswer::Nothing => b"NOT ALL ",
            SearchAnswer::Refused => b"CHARSET X-REFUSED ",
        };
        // CHARSET must come first (RFC 3501 §6.4.4): `NOT ALL` goes after it.
        let (charset, rest) = match rest.strip_prefix(b"CHARSET UTF-8 ") {
            Some(after) if self == SearchAnswer::Nothing => (&b"CHARSET UTF-8 "[..], after),
            _ => (&b""[..], rest),
        };
        let mut out = format!("{tag} UID SEARCH ").into_bytes();
        out.extend_from_slice(charset);
        out.extend_from_slice(criteria);
        out.extend_from_slice(rest);
        out
    }
}

/// What the proxy saw.
#[derive(Debug, Clone, Default)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections open now, and the most that were open at the same time.
    pub open: u64,
    pub peak: u64,
    /// APPEND commands (a MULTIAPPEND counts once).
    pub appends: u64,
    pub logins: u64,
    /// `LateCommit` commands the server has been given (and answered, or not within 5 s).
    pub late_commits: u64,
}

#[derive(Debug)]
struct Armed {
    fault: Fault,
    /// For `MidAppend`: the absolute APPEND count that triggers it.
    at_append: u64,
}

#[derive(Debug, Default)]
struct Shared {
    armed: Vec<Armed>,
    fired: Vec<Fault>,
    stats: ProxyStats,
    search: SearchAnswer,
    /// Until when a connection accepted is dropped at once (an outage began before the
    /// listener could be closed).
    refusing_until: Option<tokio::time::Instant>,
}

/// A running proxy; stops accepting (and cuts its connections) when dropped.
pub struct FaultProxy {
    /// The port clients connect to.
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    /// Bumped to cut every live connection.
    cut_all: watch::Sender<u64>,
    /// Set to refuse connections (the listener is closed) for a while.
    refuse: watch::Sender<Option<Duration>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all.send_modify(|g| *g += 1);
    }
}

impl FaultProxy {
    /// Forwards 127.0.0.1:`port` (a new free port) to 127.0.0.1:`target`.
    pub async fn start(target: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fault proxy binds a port");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (cut_all, cut_rx) = watch::channel(0u64);
        let (refuse, refuse_rx) = watch::channel(None);
        let target = SocketAddr::from(([127, 0, 0, 1], target));
        let accept = tokio::spawn(accept_loop(
            listener,
            port,
            target,
            shared.clone(),
            cut_rx,
            refuse_rx,
        ));
        FaultProxy {
            port,
            shared,
            cut_all,
            refuse,
            accept,
        }
    }

    /// Arms `fault` (it fires once).
    pub fn arm(&self, fault: Fault) {
        let mut shared = self.lock();
        let at_append = match fault {
            Fault::MidAppend { nth } | Fault::LateCommit { nth, .. } => shared.stats.appends + nth,
            _ => 0,
        };
        shared.armed.push(Armed { fault, at_append });
    }

    /// From now on, lookups by SEARCH are answered as `answer` says.
    pub fn answer_searches(&self, answer: SearchAnswer) {
        self.lock().search = answer;
    }

    /// The faults that fired, in order.
    pub fn fired(&self) -> Vec<Fault> {
        self.lock().fired.clone()
    }

    pub fn stats(&self) -> ProxyStats {
        self.lock().stats.clone()
    }

    /// Cuts every live connection and refuses new ones (the port is closed: connection
    /// refused) for `period`: what clients see while a server restarts.
    pub fn outage(&self, period: Duration) {
        // Under the lock the accept loop takes: a connection it accepts from now on is
        // dropped, and one accepted before is cut (its relay compares generations), however
        // late the loop closes the listener.
        let mut shared = self.lock();
        shared.refusing_until = Some(tokio::time::Instant::now() + period);
        self.cut_all.send_modify(|g| *g += 1);
        self.refuse.send_replace(Some(period));
        drop(shared);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn accept_loop(
    listener: TcpListener,
    port: u16,
    target: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    cut_all: watch::Receiver<u64>,
    mut refuse: watch::Receiver<Option<Duration>>,
) {
    let mut listener = Some(listener);
    loop {
        let Some(l) = listener.as_ref() else { return };
        tokio::select! {
            accepted = l.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let (fault, generation) = {
                    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                    if s.refusing_until.is_some_and(|t| tokio::time::Instant::now() < t) {
                        continue;
                    }
                    let generation = *cut_all.borrow();
                    s.stats.connections += 1;
                    s.stats.open += 1;
                    s.stats.peak = s.stats.peak.max(s.stats.open);
                    let fault = take(&mut s, |a| matches!(a.fault, Fault::AfterClientBytes(_)));
                    (fault, generation)
                };
                let limit = match fault {
                    Some(Fault::AfterClientBytes(n)) => Some(n),
                    _ => None,
                };
                let shared = shared.clone();
                let cut_all = cut_all.clone();
                tokio::spawn(async move {
                    relay(client, target, shared.clone(), (cut_all, generation), limit).await;
                    shared.lock().unwrap_or_else(|p| p.into_inner()).stats.open -= 1;
                });
            }
            changed = refuse.changed() => {
                if changed.is_err() {
                    return;
                }
                let Some(period) = *refuse.borrow_and_update() else { continue };
                // Closing the listener makes new connections fail with "connection refused".
                drop(listener.take());
                tokio::time::sleep(period).await;
                listener = Some(rebind(port).await);
            }
        }
    }
}

/// Binds `port` again (SO_REUSEADDR: connections cut a moment ago may linger in TIME_WAIT).
async fn rebind(port: u16) -> TcpListener {
    for _ in 0..200 {
        let socket = TcpSocket::new_v4().expect("a socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        if socket
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .is_ok()
        {
            if let Ok(l) = socket.listen(64) {
                return l;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the fault proxy cannot listen on port {port} again");
}

/// Removes and returns the first armed fault matching `which`, recording it as fired.
fn take(shared: &mut Shared, which: impl Fn(&Armed) -> bool) -> Option<Fault> {
    let i = shared.armed.iter().position(which)?;
    let fault = shared.armed.remove(i).fault;
    shared.fired.push(fault);
    Some(fault)
}

async fn relay(
    mut client: TcpStream,
    target: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    (mut cut_all, generation): (watch::Receiver<u64>, u64),
    limit: Option<u64>,
) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let mut scanner = Scanner {
        limit,
        ..Scanner::default()
    };
    let upstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            let (forward, cut) = {
                let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                scanner.scan(&buf[..n], &mut s)
            };
            if server_write.write_all(&forward).await.is_err() {
                return None;
            }
            match cut {
                Cut::No => {}
                Cut::Now => {
                    let _ = server_write.flush().await;
                    return None;
                }
                Cut::Late(tail, delay) => return Some((tail, delay)),
            }
        }
    };
    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
    let late = tokio::select! {
        late = upstream => late,
        _ = downstream => None,
        // Cut when the generation moved on since the accept, even before this task ran.
        _ = cut_all.wait_for(|g| *g != generation) => None,
    };
    // The client's socket closes here: it sees the server vanish.
    drop(client);
    if let Some((tail, delay)) = late {
        tokio::time::sleep(delay).await;
        if server.write_all(&tail).await.is_ok() {
            // Until the server answered (it has stored the message) or gave up.
            let mut answer = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(5), server.read(&mut answer)).await;
        }
        shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stats
            .late_commits += 1;
    }
    // The server's socket closes here: it sees the client vanish.
}

/// Reads the client's side of an IMAP session: command lines and the literals they announce.
#[derive(Debug, Default)]
struct Scanner {
    line: Vec<u8>,
    /// Bytes of the current literal still to come.
    literal_left: u64,
    /// Cut when `literal_left` falls to this (set by a `MidAppend` fault).
    cut_at_left: Option<u64>,
    /// The last line announced a literal: the line after it continues the same command.
    continues: bool,
    /// Bytes from the client so far, and the most to forward.
    sent: u64,
    limit: Option<u64>,
    /// The current APPEND's last line goes to the server this much later (a `LateCommit`).
    late: Option<Duration>,
}

/// What the relay does after forwarding a chunk's bytes.
#[derive(Debug, PartialEq, Eq)]
enum Cut {
    No,
    Now,
    /// Cut the client now; give the server these bytes after the delay.
    Late(Vec<u8>, Duration),
}

impl Scanner {
    /// What to forward of `chunk` (a command line goes once it is complete, rewritten by the
    /// proxy's [`SearchAnswer`]), and whether and how to cut the connection after it.
    fn scan(&mut self, chunk: &[u8], shared: &mut Shared) -> (Vec<u8>, Cut) {
        let mut out = Vec::with_capacity(chunk.len());
        for &byte in chunk {
            if self.limit.is_some_and(|l| self.sent >= l) {
                out.append(&mut self.line);
                return (out, Cut::Now);
            }
            self.sent += 1;
            if self.literal_left > 0 {
                out.push(byte);
                self.literal_left -= 1;
                if self.cut_at_left == Some(self.literal_left) {
                    return (out, Cut::Now);
                }
                continue;
            }
            self.line.push(byte);
            if !self.line.ends_with(b"\r\n") {
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let literal = literal_length(&line);
            if self.continues && literal.is_none() {
                if let Some(delay) = self.late.take() {
                    self.continues = false;
                    return (out, Cut::Late(line, delay));
                }
            }
            if !self.continues {
                out.extend_from_slice(&shared.search.rewrite(&line));
            } else {
                out.extend_from_slice(&line);
            }
            // The first line of a command names it: `tag COMMAND ...`. A line that follows a
            // literal continues the same command and starts with no tag.
            let command = if self.continues {
                String::new()
            } else {
                command_of(&line)
            };
            self.continues = literal.is_some();
            if let Some(n) = literal {
                self.literal_left = n;
                self.cut_at_left = None;
            }
            match command.as_str() {
                "APPEND" => {
                    shared.stats.appends += 1;
                    let count = shared.stats.appends;
                    if let Some(n) = literal {
                        if take(shared, |a| {
                            matches!(a.fault, Fault::MidAppend { .. }) && a.at_append == count
                        })
                        .is_some()
                        {
                            self.cut_at_left = Some(n - n / 2);
                            if n == 0 {
                                return (out, Cut::Now);
                            }
                        }
                        if let Some(Fault::LateCommit { delay_ms, .. }) = take(shared, |a| {
                            matches!(a.fault, Fault::LateCommit { .. }) && a.at_append == count
                        }) {
                            self.late = Some(Duration::from_millis(delay_ms));
                        }
                    }
                }
                "LOGIN" | "AUTHENTICATE" => {
                    shared.stats.logins += 1;
                    if take(shared, |a| a.fault == Fault::DuringLogin).is_some() {
                        return (out, Cut::Now);
                    }
                }
                _ => {}
            }
        }
        (out, Cut::No)
    }
}

/// The length of the literal a line announces at its end (`{n}`, `{n+}`, `~{n}`).
fn literal_length(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"}\r\n")?;
    let body = body.strip_suffix(b"+").unwrap_or(body);
    let open = body.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&body[open + 1..]).ok()?.parse().ok()
}

/// The command name of a command's first line (`a1 APPEND ...` -> `APPEND`), upper-cased.
fn command_of(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .split_ascii_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_ascii_uppercase()
}
