//! A hostile IMAP server on 127.0.0.1 (issue 19.7): it answers a FETCH with a literal of
//! 2 GiB announced and then bytes without end, or a SELECT/EXAMINE with untagged lines without
//! end. The client must give up on that command with a protocol error, holding no more than a
//! bounded amount of memory, instead of allocating 2 GiB or reading forever.

use std::time::Duration;

use migrator_core::dest::imap::{ImapError, ImapMailbox, ImapSettings, Security};
use migrator_core::secrets::Secret;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the hostile server does after the login.
#[derive(Clone, Copy)]
enum Hostility {
    /// EXAMINE/SELECT: `* 1 RECENT` lines, never a tagged answer.
    EndlessUntagged,
    /// EXAMINE/SELECT answered normally; FETCH: `{2147483648}` and then filler without end.
    HugeLiteral,
}

/// Starts the server; its port.
async fn hostile_server(hostility: Hostility) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let greeting = b"* OK [CAPABILITY IMAP4rev1 LITERAL+] hostile ready\r\n";
                if write.write_all(greeting).await.is_err() {
                    return;
                }
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut words = line.split(' ');
                    let tag = words.next().unwrap_or("*").to_string();
                    let command = words.next().unwrap_or("").to_ascii_uppercase();
                    let answer: Vec<u8> = match (command.as_str(), hostility) {
                        ("EXAMINE" | "SELECT", Hostility::EndlessUntagged) => {
                            let lines = b"* 1 RECENT\r\n".repeat(4096);
                            while write.write_all(&lines).await.is_ok() {}
                            return;
                        }
                        ("UID", Hostility::HugeLiteral) => {
                            let head = b"* 1 FETCH (UID 1 BODY[] {2147483648}\r\n";
                            if write.write_all(head).await.is_err() {
                                return;
                            }
                            let filler = vec![b'x'; 64 * 1024];
                            while write.write_all(&filler).await.is_ok() {}
                            return;
                        }
                        ("EXAMINE" | "SELECT", _) => format!(
                            "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-ONLY] done\r\n"
                        )
                        .into_bytes(),
                        ("CAPABILITY", _) => {
                            format!("* CAPABILITY IMAP4rev1 LITERAL+\r\n{tag} OK done\r\n")
                                .into_bytes()
                        }
                        _ => format!("{tag} OK done\r\n").into_bytes(),
                    };
                    if write.write_all(&answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

async fn mailbox(port: u16) -> ImapMailbox {
    let mut settings = ImapSettings::new("127.0.0.1", port, Security::Plain);
    settings.allow_plaintext_loopback = true;
    settings.timeout = Duration::from_secs(30);
    let login = migrator_core::dest::imap::ImapLogin::Password {
        user: "alice".into(),
        password: Secret::new("pw".to_string()),
    };
    ImapMailbox::connect(&settings, &login).await.unwrap()
}

/// Regression: untagged responses were collected without a limit (memory without end).
#[tokio::test]
async fn endless_untagged_lines_end_the_command_with_a_protocol_error() {
    let port = hostile_server(Hostility::EndlessUntagged).await;
    let mut mb = mailbox(port).await;
    let err = mb.uids("INBOX").await.unwrap_err();
    assert!(
        matches!(&err, ImapError::Oversized { reason, .. } if reason.contains("more than 200000 untagged responses to one command")),
        "{err:?}"
    );
    assert_skipped_not_retried(&err);
}

/// Regression (issue 19.7): an oversized response was a protocol error classed as retryable,
/// so the item was tried again (and the server answered the same way each time). It is the
/// item's (or the folder's) failure, with a plain reason naming the server and the bound.
fn assert_skipped_not_retried(err: &ImapError) {
    use migrator_core::error::{Classify, ErrorClass};
    assert_eq!(err.class(), ErrorClass::SkipItem, "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("IMAP server 127.0.0.1 sent more than the client reads for one command")
            && text.ends_with("the item is not retried"),
        "{text}"
    );
}

/// Regression: a literal over the limit was an I/O error, retried like an outage; below the
/// limit its announced length was allocated before a byte arrived.
#[tokio::test]
async fn a_2_gib_literal_announced_ends_the_command_with_a_protocol_error() {
    let port = hostile_server(Hostility::HugeLiteral).await;
    let mut mb = mailbox(port).await;
    let err = mb.fetch("INBOX", 1).await.unwrap_err();
    assert!(
        matches!(&err, ImapError::Oversized { reason, .. } if reason.contains("literal of 2147483648 bytes")),
        "{err:?}"
    );
    assert_skipped_not_retried(&err);
}
