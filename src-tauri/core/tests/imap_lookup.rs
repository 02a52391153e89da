//! The duplicate check against a real Dovecot when SEARCH cannot be trusted (issue 14.6,
//! 19.5): a front that makes every lookup SEARCH answer nothing, or refuse; 8-bit and folded
//! Message-IDs. Each copy already in the folder must be found, and no lookup may stop the
//! mailbox.

use crate::support;

use std::time::Duration;

use migrator_core::convert::flags::MailFlags;
use migrator_core::dest::imap::{
    ImapLogin, ImapMailbox, ImapRef, ImapSettings, MessageFingerprint, Security,
};
use support::dovecot::Dovecot;
use support::fault_proxy::{FaultProxy, SearchAnswer};
use time::macros::datetime;

/// Three messages: with a Message-ID, without one, and with a Message-ID folded onto the
/// next line.
fn messages() -> Vec<Vec<u8>> {
    let head = "From: a@example.com\r\nTo: alice@example.com\r\nSubject: s\r\n";
    vec![
        format!("{head}Message-ID: <one@example.com>\r\n\r\nfirst\r\n").into_bytes(),
        format!("{head}\r\nno id\r\n").into_bytes(),
        format!("{head}Message-ID:\r\n <folded@example.com>\r\n\r\nthird\r\n").into_bytes(),
    ]
}

/// Plaintext settings through `proxy`, with SEARCH allowed for every lookup in any folder,
/// so only the server's own answers decide whether SEARCH is used.
fn through(proxy: &FaultProxy) -> ImapSettings {
    let mut s = ImapSettings::new("127.0.0.1", proxy.port, Security::Plain);
    s.allow_plaintext_loopback = true;
    s.timeout = Duration::from_secs(20);
    s.search_lookups = u32::MAX;
    s.search_folder_min = 0;
    s
}

/// Appends `messages` to alice's INBOX directly; their UIDs.
async fn appended(server: &Dovecot, messages: &[Vec<u8>]) -> Vec<u32> {
    let mut mb = ImapMailbox::connect(&server.tls_settings(), &Dovecot::password("alice"))
        .await
        .unwrap();
    let mut uids = Vec::new();
    for m in messages {
        let r = mb
            .append("INBOX", &m[..], m.len() as u64, &MailFlags::default(), at())
            .await
            .unwrap();
        uids.push(ImapRef::from_dest_ref(&r).uid.unwrap().1);
    }
    mb.logout().await;
    uids
}

fn at() -> time::OffsetDateTime {
    datetime!(2023-03-04 05:06:07 UTC)
}

async fn find_all(mb: &mut ImapMailbox, messages: &[Vec<u8>]) -> Vec<Option<u32>> {
    let mut found = Vec::new();
    for m in messages {
        let fp = MessageFingerprint::of_message(m, at());
        found.push(
            mb.find_existing("INBOX", &fp)
                .await
                .unwrap_or_else(|e| panic!("the lookup stopped the mailbox: {e}")),
        );
    }
    found
}

/// Regression (issue 14.6): the duplicate check asked SEARCH and believed its answer, so a
/// server whose SEARCH finds nothing (imapsync's notes doubt IceWarp's) had every message
/// appended again on a rerun or merge.
#[tokio::test]
async fn a_server_whose_search_finds_nothing_still_has_every_copy_found() {
    let server = Dovecot::start();
    let messages = messages();
    let uids = appended(&server, &messages).await;
    let proxy = FaultProxy::start(server.imap_port).await;
    proxy.answer_searches(SearchAnswer::Nothing);
    for settings in [through(&proxy), {
        let mut defaults = through(&proxy);
        defaults.search_lookups = ImapSettings::new("x", 1, Security::Tls).search_lookups;
        defaults.search_folder_min = ImapSettings::new("x", 1, Security::Tls).search_folder_min;
        defaults
    }] {
        let mut mb = ImapMailbox::connect(&settings, &Dovecot::password("alice"))
            .await
            .unwrap();
        let found = find_all(&mut mb, &messages).await;
        assert_eq!(found, uids.iter().map(|u| Some(*u)).collect::<Vec<_>>());
        // Not there: not found.
        let other = MessageFingerprint::of_message(b"Message-ID: <x@y>\r\n\r\nz", at());
        assert_eq!(mb.find_existing("INBOX", &other).await.unwrap(), None);
    }
}

/// Regression (issue 19.5): a `SEARCH HEADER Message-ID` the server refused was a fatal
/// error of the mailbox; now the lookup falls back to the folder's index.
#[tokio::test]
async fn a_refused_message_id_search_falls_back_to_the_index_and_the_mailbox_goes_on() {
    let server = Dovecot::start();
    let messages = messages();
    let uids = appended(&server, &messages).await;
    let proxy = FaultProxy::start(server.imap_port).await;
    let login = Dovecot::password("alice");
    // Refused from the start, and refused after SEARCH was proven (the first lookup).
    for answer_first in [SearchAnswer::Refused, SearchAnswer::Real] {
        proxy.answer_searches(answer_first);
        let mut mb = ImapMailbox::connect(&through(&proxy), &login)
            .await
            .unwrap();
        let first = find_all(&mut mb, &messages[..1]).await;
        assert_eq!(first, vec![Some(uids[0])]);
        proxy.answer_searches(SearchAnswer::Refused);
        let found = find_all(&mut mb, &messages).await;
        assert_eq!(found, uids.iter().map(|u| Some(*u)).collect::<Vec<_>>());
    }
}

/// Issue 19.5: an 8-bit Message-ID is found again through the index, and two IDs that
/// differ only in such a byte (the same U+FFFD once decoded) stay two messages: the header
/// hash is over the raw bytes. (Dovecot's own SEARCH found these too; a server whose SEARCH
/// does not is the case the index is for.)
#[tokio::test]
async fn an_8bit_message_id_is_found_by_its_own_bytes() {
    let server = Dovecot::start();
    let mut latin1 = b"From: a@example.com\r\nMessage-ID: <caf\xe9@example.com>\r\n".to_vec();
    latin1.extend_from_slice(b"Subject: s\r\n\r\nbody\r\n");
    // Another byte where lossy UTF-8 has the same U+FFFD: a distinct message.
    let other: Vec<u8> = latin1
        .iter()
        .map(|&b| if b == 0xe9 { 0xe8 } else { b })
        .collect();
    let uids = appended(&server, &[latin1.clone(), other.clone()]).await;
    let login: ImapLogin = Dovecot::password("alice");
    let mut mb = ImapMailbox::connect(&server.tls_settings(), &login)
        .await
        .unwrap();
    assert_eq!(
        find_all(&mut mb, &[latin1, other]).await,
        vec![Some(uids[0]), Some(uids[1])]
    );
}

/// Side-by-side measurement for BENCHMARKS.md (issue 14.6), by hand, never in `make test`:
/// `cargo nextest run -p migrator-core --test integration --run-ignored only
/// measure_duplicate_lookups --no-capture`. A folder of `LOOKUP_BENCH_MESSAGES` messages
/// (default 2000) in a real Dovecot; every message looked up once (a rerun: all there) and as
/// many messages that are not there (a merge), on a new connection each time, by one SEARCH
/// per message and by the fingerprint index, alternating, 5 rounds; prints the medians.
/// Times nothing it asserts.
#[tokio::test]
#[ignore = "a measurement, run by hand"]
async fn measure_duplicate_lookups() {
    let n: usize = std::env::var("LOOKUP_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let server = Dovecot::start();
    let body = |i: usize, there: bool| {
        format!(
            "From: a@example.com\r\nMessage-ID: <{i}.{there}@bench.example>\r\nSubject: {i}\r\n\r\n\
             message {i} {}\r\n",
            "x".repeat(i % 97)
        )
        .into_bytes()
    };
    let present: Vec<Vec<u8>> = (0..n).map(|i| body(i, true)).collect();
    let absent: Vec<Vec<u8>> = (0..n).map(|i| body(i, false)).collect();
    let login = Dovecot::password("alice");
    let mut mb = ImapMailbox::connect(&server.tls_settings(), &login)
        .await
        .unwrap();
    let flags = MailFlags::default();
    for chunk in present.chunks(100) {
        let batch = chunk
            .iter()
            .map(|m| (&m[..], m.len() as u64, &flags, at()))
            .collect();
        mb.append_many("INBOX", batch).await.unwrap();
    }
    mb.logout().await;
    let mut times: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    for _round in 0..5 {
        for (mode, (rerun, merge)) in times.iter_mut().enumerate() {
            let mut settings = server.tls_settings();
            (settings.search_lookups, settings.search_folder_min) = match mode {
                0 => (u32::MAX, 0),
                _ => (0, 0),
            };
            let mut mb = ImapMailbox::connect(&settings, &login).await.unwrap();
            for (messages, into, expect) in [(&present, &mut *rerun, true), (&absent, merge, false)]
            {
                let started = std::time::Instant::now();
                for m in messages.iter() {
                    let fp = MessageFingerprint::of_message(m, at());
                    let found = mb.find_existing("INBOX", &fp).await.unwrap();
                    assert_eq!(found.is_some(), expect);
                }
                into.push(started.elapsed().as_secs_f64());
            }
            mb.logout().await;
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (name, (rerun, merge)) in ["SEARCH per message", "fingerprint index"]
        .iter()
        .zip(times.iter_mut())
    {
        println!(
            "{name}: {n} lookups of messages there {:.3} s, {n} of messages not there {:.3} s \
             (medians of 5; rerun {rerun:?}, merge {merge:?})",
            median(rerun),
            median(merge)
        );
    }
}
