//! A TCP relay on 127.0.0.1 in front of a plaintext IMAP port that counts what the migrator
//! does to the server: connections open at once (and the most ever), and APPEND commands.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Counts {
    open: AtomicUsize,
    peak: AtomicUsize,
    accepted: AtomicUsize,
    appends: AtomicUsize,
}

/// Stops relaying when dropped.
pub struct CountingProxy {
    pub port: u16,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    /// Relays 127.0.0.1:`port` (a new free port) to 127.0.0.1:`target`.
    pub async fn start(target: u16) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counts = shared.clone();
                let open = counts.open.fetch_add(1, Ordering::SeqCst) + 1;
                counts.peak.fetch_max(open, Ordering::SeqCst);
                counts.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await {
                        relay(client, server, &counts).await;
                    }
                    counts.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        CountingProxy { port, counts, task }
    }

    /// The most connections that were open at the same time.
    pub fn peak(&self) -> usize {
        self.counts.peak.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.counts.accepted.load(Ordering::SeqCst)
    }

    /// APPEND commands the clients sent (one MULTIAPPEND counts once).
    pub fn appends(&self) -> usize {
        self.counts.appends.load(Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(mut client: TcpStream, mut server: TcpStream, counts: &Counts) {
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        // The start of the current line (enough to see `<tag> APPEND `).
        let mut line: Vec<u8> = Vec::with_capacity(32);
        let mut line_checked = false;
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for &b in &buf[..n] {
                if b == b'\n' {
                    if !line_checked && is_append(&line) {
                        counts.appends.fetch_add(1, Ordering::SeqCst);
                    }
                    line.clear();
                    line_checked = false;
                } else if !line_checked {
                    line.push(b);
                    if line.len() >= 24 {
                        if is_append(&line) {
                            counts.appends.fetch_add(1, Ordering::SeqCst);
                        }
                        line_checked = true;
                    }
                }
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// `M0001 APPEND ...`: a tag of the migrator's form, then the command name.
fn is_append(line: &[u8]) -> bool {
    let mut words = line.split(|&b| b == b' ');
    let tag = words.next().unwrap_or_default();
    tag.len() > 1
        && tag[0] == b'M'
        && tag[1..].iter().all(u8::is_ascii_digit)
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(b"APPEND"))
}
