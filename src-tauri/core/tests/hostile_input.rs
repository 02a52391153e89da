//! The hostile corpus (`migrator_sim::hostile`) migrated end to end into the local folder
//! destination and into a real Dovecot and Radicale: nothing panics, each item no destination
//! can hold is one reported failure with a reason, each repairable one arrives repaired,
//! everything else arrives exactly once, and a second run writes nothing.

use crate::occurrences::occurrences;
use crate::support;

use std::collections::HashMap;
use std::path::Path;

use migrator_core::dest::dav::{CollectionKind, DavAccount, DavLogin};
use migrator_core::dest::imap::MasterStyle;
use migrator_core::engine::{Destination, ImapLogins, RunOptions};
use migrator_core::progress::RunSummary;
use migrator_core::secrets::Secret;
use migrator_sim::hostile::{
    add_hostile_groupware, add_hostile_mail, add_huge_message, add_many_messages, BARE_LF_MESSAGE,
    DAY_31_SERIES, END_BEFORE_START_SERIES, FEB_30_SERIES, FIFTH_MONDAY_SERIES, HUGE_PHOTO_CONTACT,
    STRAY_EXCEPTION_SERIES, UNKNOWN_ZONE_EVENT, ZERO_BYTE_MESSAGE, ZERO_OCCURRENCES_SERIES,
};
use migrator_sim::{Faults, SimConfig, SimServer, TenantSpec};
use support::dovecot::{Dovecot, MASTER_PASSWORD, MASTER_USER};
use support::radicale::{self, Radicale};

/// A one-user tenant with a few ordinary messages and the hostile corpus, whose pages each
/// repeat an item already returned (a folder of 520 messages makes the message list span
/// two pages).
async fn hostile_sim() -> SimServer {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 1,
            messages_per_user: 6,
            ..TenantSpec::default()
        },
        faults: Faults {
            repeat_page_item: true,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    sim.mutate(|t| {
        add_hostile_mail(&mut t.users[0]);
        add_hostile_groupware(&mut t.users[0]);
        add_many_messages(&mut t.users[0], 520);
    });
    sim
}

/// The message list of the "Many" folder was read in more than one page, so the simulator
/// repeated an item (`Faults::repeat_page_item`).
fn assert_a_page_repeated_an_item(sim: &SimServer) {
    let next_pages = sim
        .requests()
        .iter()
        .filter(|r| {
            r.path_and_query.contains("/messages") && r.path_and_query.contains("skiptoken")
        })
        .count();
    assert!(next_pages > 0, "no message list needed a second page");
}

/// One run; the summary and the failed items (`user folder item: reason`).
async fn run_once(
    sim: &SimServer,
    destination: &Destination,
    state: &Path,
) -> (RunSummary, Vec<String>) {
    let options = RunOptions {
        state_dir: Some(state.to_path_buf()),
        ..RunOptions::default()
    };
    support::run_with(sim, destination, options).await
}

/// The user's messages minus the zero-byte one, which must be a reported failure.
fn user_without_empty(sim: &SimServer) -> migrator_sim::User {
    let mut user = sim.tenant().users[0].clone();
    for folder in &mut user.folders {
        folder.messages.retain(|m| m.id != ZERO_BYTE_MESSAGE);
    }
    user
}

/// The series of `add_impossible_recurrences` no calendar can hold as Outlook shows them,
/// each with what its failure's reason must say (the field and value the converter refused):
/// Feb 30 is no date (Outlook cannot make it: a yearly day is at most the month's last), Graph
/// defines no "fifth" index (recurrencepattern.md), and an empty range has no occurrence
/// (RFC 5545 §3.8.2.4 would still count DTSTART as one).
const REFUSED_SERIES: [(&str, &str); 4] = [
    (FEB_30_SERIES, "dayOfMonth \"30\""),
    (FIFTH_MONDAY_SERIES, "index \"fifth\""),
    (END_BEFORE_START_SERIES, "endDate \"2025-05-01\": before"),
    (ZERO_OCCURRENCES_SERIES, "numberOfOccurrences \"0\""),
];

/// Takes the failures of [`REFUSED_SERIES`] out of `failures`: each series failed once, its
/// reason naming what is impossible.
fn take_refused_series(failures: &mut Vec<String>) {
    for (id, reason) in REFUSED_SERIES {
        let found: Vec<String> = failures.extract_if(.., |f| f.contains(id)).collect();
        assert!(
            found.len() == 1 && found[0].contains("cannot convert") && found[0].contains(reason),
            "{id} is one failure saying {reason}: {found:#?}"
        );
    }
}

/// The calendar resources at a destination (`texts`, one per series or single event) hold
/// every event of the user but [`REFUSED_SERIES`], each once; the repaired series have the
/// occurrences Outlook shows, expanded by an independent RRULE engine:
/// - on the 31st: the months without one on their last day (EWS `DayOfMonth`: "If for a
///   particular month this value is larger than the number of days in the month, the last day
///   of the month is assumed", learn.microsoft.com/en-us/previous-versions/office/developer/
///   exchange-server-2010/aa563211(v=exchg.140)); RFC 5545 §3.3.10 would skip those months,
///   so the converter writes `BYMONTHDAY=28,29,30,31;BYSETPOS=-1`;
/// - the exception whose original start (a Tuesday) is no occurrence of the Monday series: an
///   RDATE (RFC 5545 §3.8.5.2) makes it one, so its RECURRENCE-ID names an instance
///   (§3.8.4.4) and the moved occurrence shows once, at its new time.
fn assert_events_arrived(sim: &SimServer, texts: &[String]) {
    let user = &sim.tenant().users[0];
    let events: usize = user.calendars.iter().map(|c| c.events.len()).sum();
    assert_eq!(
        texts.len(),
        events - REFUSED_SERIES.len(),
        "every event but the refused series arrives once"
    );
    let of = |id: &str| -> Vec<&String> {
        texts
            .iter()
            .filter(|t| t.contains(&format!("SUMMARY:Impossible {id}\r\n")))
            .collect()
    };
    for (id, _) in REFUSED_SERIES {
        assert!(of(id).is_empty(), "{id} is not written");
    }
    let year = (
        "2025-01-01T00:00:00Z".parse().unwrap(),
        "2026-01-01T00:00:00Z".parse().unwrap(),
    );
    let [day_31] = of(DAY_31_SERIES)[..] else {
        panic!("{DAY_31_SERIES} arrives once")
    };
    // 09:00 in Berlin: 08:00 UTC in winter, 07:00 from 2025-03-30.
    assert_eq!(
        occurrences(day_31, year.0, year.1).unwrap(),
        [
            "2025-01-31T08:00:00Z",
            "2025-02-28T08:00:00Z",
            "2025-03-31T07:00:00Z",
            "2025-04-30T07:00:00Z",
            "2025-05-31T07:00:00Z",
            "2025-06-30T07:00:00Z",
        ],
        "{day_31}"
    );
    let [stray] = of(STRAY_EXCEPTION_SERIES)[..] else {
        panic!("{STRAY_EXCEPTION_SERIES} arrives once")
    };
    assert!(
        stray.contains("\r\nRDATE;TZID=Europe/Berlin:20250114T110000\r\n"),
        "{stray}"
    );
    assert_eq!(
        occurrences(stray, year.0, year.1).unwrap(),
        [
            "2025-01-06T10:00:00Z",
            "2025-01-13T10:00:00Z",
            "2025-01-14T14:00:00Z",
            "2025-01-20T10:00:00Z",
            "2025-01-27T10:00:00Z",
        ],
        "{stray}"
    );
}

/// Exactly one failure, naming the zero-byte message and saying it is empty, besides the
/// refused series.
fn assert_only_the_empty_message_failed(failures: &[String]) {
    let mut failures = failures.to_vec();
    take_refused_series(&mut failures);
    assert_eq!(failures.len(), 1, "failed items: {failures:#?}");
    assert!(
        failures[0].contains(ZERO_BYTE_MESSAGE) && failures[0].contains("empty"),
        "the failure names the empty message and says why: {}",
        failures[0]
    );
}

/// Every file with `extension` under `dir`, with its text.
fn texts(dir: &Path, extension: &str) -> Vec<String> {
    support::files_under(dir)
        .into_iter()
        .filter(|p| p.extension() == Some(extension.as_ref()))
        .map(|p| std::fs::read_to_string(&p).unwrap())
        .collect()
}

/// The documented repairs of the hostile groupware: the contact whose photo is over the
/// 4 MiB cap arrives without it, the event in an unknown zone arrives with its wall-clock
/// times read as UTC; every contact arrives once, every event as
/// [`assert_events_arrived`] says.
fn assert_groupware_repaired(sim: &SimServer, user_dir: &Path) {
    let user = &sim.tenant().users[0];
    let huge = user
        .contact_folders
        .iter()
        .flat_map(|f| &f.contacts)
        .find(|c| c.id == HUGE_PHOTO_CONTACT)
        .expect("the corpus has the huge-photo contact");
    let cards = texts(&user_dir.join("contacts"), "vcf");
    let contacts: usize = user.contact_folders.iter().map(|f| f.contacts.len()).sum();
    assert_eq!(cards.len(), contacts, "every contact arrives once");
    let card = cards
        .iter()
        .find(|c| c.contains(&huge.display_name))
        .expect("the huge-photo contact arrives");
    assert!(
        !card.contains("PHOTO"),
        "its photo is left out: {card:.300}"
    );

    let events = texts(&user_dir.join("calendars"), "ics");
    assert_events_arrived(sim, &events);
    let mars = events
        .iter()
        .find(|e| e.contains("SUMMARY:Meeting on Mars"))
        .unwrap_or_else(|| panic!("the event {UNKNOWN_ZONE_EVENT} arrives"));
    assert!(
        mars.contains("DTSTART:20240429T090000Z"),
        "read as UTC: {mars}"
    );
}

#[tokio::test]
async fn hostile_mail_into_the_local_folder_fails_only_the_empty_message_and_reruns_clean() {
    let sim = hostile_sim().await;
    let out = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let destination = Destination::Folder(out.path().to_path_buf());
    let (_, failures) = run_once(&sim, &destination, state.path()).await;
    assert_only_the_empty_message_failed(&failures);
    // Issue 15: a series that cannot be converted is named in the report by its subject and
    // start, not by its Graph id alone.
    let journal = migrator_core::journal::Journal::open(state.path()).unwrap();
    let report = migrator_core::engine::report::Report::from_journal(&journal).unwrap();
    for (id, _) in REFUSED_SERIES {
        let f = report.failures.iter().find(|f| f.item == id).unwrap();
        assert_eq!(f.workload, "event", "{f:?}");
        assert!(
            f.subject.as_deref().is_some_and(|s| !s.is_empty()) && f.date.is_some(),
            "{f:?}"
        );
    }
    let first: HashMap<Vec<u8>, usize> = support::maildir_bodies(out.path());
    support::assert_exactly_once(&user_without_empty(&sim), &first, "in the folder");
    assert_groupware_repaired(&sim, &out.path().join(&sim.tenant().users[0].mail));
    assert_a_page_repeated_an_item(&sim);

    let calendars = out
        .path()
        .join(&sim.tenant().users[0].mail)
        .join("calendars");
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let events = sorted(texts(&calendars, "ics"));

    let (again, failures) = run_once(&sim, &destination, state.path()).await;
    assert_eq!(
        (
            again.totals.messages,
            again.totals.events,
            again.totals.contacts
        ),
        (0, 0, 0),
        "the rerun writes no message, event or contact"
    );
    assert_eq!(
        sorted(texts(&calendars, "ics")),
        events,
        "nor changes an event"
    );
    assert_only_the_empty_message_failed(&failures);
    assert_eq!(
        support::maildir_bodies(out.path()),
        first,
        "the rerun changes nothing"
    );
}

/// Dovecot refuses the deep tree below its own path limit (level 29 with its Maildir++
/// storage): each refused folder is one failure with the server's reason or naming its failed
/// parent (not every ancestor's reason: a deep tree would repeat them at each level), besides
/// the empty message and the refused series. The 300-character name Dovecot refuses ("Mailbox
/// name too long") is repaired, not reported. Returns the display names of the refused
/// folders.
fn assert_refused_folders_are_reported(failures: &[String]) -> Vec<String> {
    let (folders, items): (Vec<&String>, Vec<&String>) =
        failures.iter().partition(|f| f.contains(" (folder): "));
    assert_only_the_empty_message_failed(&items.into_iter().cloned().collect::<Vec<_>>());
    let mut refused = Vec::new();
    for failure in folders {
        // The path appears three times at most (folder, its path, its parent's): linear in depth.
        assert!(failure.len() < 4_000, "a short reason: {failure}");
        let path = failure
            .split_once(' ')
            .and_then(|(_, rest)| rest.split_once(" (folder): "))
            .map(|(path, _)| path)
            .unwrap_or_default();
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        assert!(
            name.starts_with("level ")
                && (failure.contains("Not found") || failure.contains("its parent folder level")),
            "only the deep tree is refused: {failure}"
        );
        refused.push(name);
    }
    assert!(
        refused.iter().any(|n| n == "level 99") && refused.len() < 100,
        "the deepest folders are refused, the shallow ones created: {refused:?}"
    );
    refused.sort();
    refused
}

/// The calendar resources (VEVENT) in `address`'s Radicale account.
async fn radicale_events(radicale: &Radicale, address: &str) -> Vec<String> {
    let account = DavAccount::connect(
        &radicale.settings(),
        address,
        DavLogin::new(address, Secret::new("pw")),
    )
    .await
    .unwrap();
    let mut texts = Vec::new();
    for collection in account.collections(CollectionKind::Events).await.unwrap() {
        for item in account.list(&collection).await.unwrap() {
            if let Some(got) = account.get(&item.href).await.unwrap() {
                texts.push(String::from_utf8(got.body).unwrap());
            }
        }
    }
    texts.retain(|t| t.contains("BEGIN:VEVENT"));
    texts
}

/// The folder of 300 characters Dovecot refused as too long was created under a shortened
/// name (` ~` and the folder id's hash) and holds its message.
async fn assert_long_name_repaired(dovecot: &Dovecot, address: &str) {
    let login = Dovecot::master(address, MasterStyle::SaslAuthzid);
    let mut mailbox =
        migrator_core::dest::imap::ImapMailbox::connect(&dovecot.tls_settings(), &login)
            .await
            .unwrap();
    let folders = mailbox.list_folders().await.unwrap();
    let long: Vec<_> = folders
        .iter()
        .filter(|f| f.path[0].starts_with("ÄÄÄ"))
        .collect();
    let [folder] = long[..] else {
        panic!("one folder for the long name: {folders:#?}")
    };
    assert!(
        folder.path.len() == 1
            && folder.wire.len() <= 160
            && folder.path[0].trim_start_matches('Ä').len() == " ~123456".len(),
        "shortened, ending with the id's hash: {folder:?}"
    );
}

#[tokio::test]
async fn hostile_mail_into_dovecot_and_radicale_repairs_or_reports_and_reruns_clean() {
    let sim = hostile_sim().await;
    let dovecot = Dovecot::start_with(support::dovecot::Options {
        users: support::tenant_accounts(&sim),
        ..support::dovecot::Options::default()
    });
    let radicale = Radicale::start_with(radicale::Options {
        users: support::tenant_accounts(&sim),
        ..radicale::Options::default()
    });
    let state = tempfile::tempdir().unwrap();
    let destination = Destination::Imap {
        settings: dovecot.tls_settings(),
        logins: ImapLogins::MasterAndAccounts {
            accounts: support::tenant_accounts(&sim)
                .into_iter()
                .map(|(mail, password)| (mail.to_lowercase(), Secret::new(password)))
                .collect(),
            master_user: MASTER_USER.into(),
            password: Secret::new(MASTER_PASSWORD),
            style: MasterStyle::SaslAuthzid,
        },
        dav: Some(radicale.settings()),
    };
    let (_, failures) = run_once(&sim, &destination, state.path()).await;
    let refused = assert_refused_folders_are_reported(&failures);
    let address = sim.tenant().users[0].mail.clone();
    assert_long_name_repaired(&dovecot, &address).await;
    assert_events_arrived(&sim, &radicale_events(&radicale, &address).await);
    let mut user = user_without_empty(&sim);
    user.folders.retain(|f| !refused.contains(&f.display_name));
    let mut first = support::account_bodies(&dovecot, &user.mail).await;
    // Dovecot hands a bare-LF message back with CRLF line ends (IMAP's, RFC 3501 §4.3) and its
    // NUL byte as 0x80 (IMAP text has no NUL, RFC 3501 §4.3): count that copy as the source's
    // bytes, once, when nothing else changed.
    let bare_lf = user
        .folders
        .iter()
        .flat_map(|f| &f.messages)
        .find(|m| m.id == BARE_LF_MESSAGE)
        .map(|m| m.mime.as_ref().to_vec())
        .expect("the corpus has a bare-LF message");
    let as_crlf: Vec<u8> = bare_lf
        .iter()
        .flat_map(|b| match b {
            b'\n' => vec![b'\r', b'\n'],
            0 => vec![0x80],
            b => vec![*b],
        })
        .collect();
    let stored = first.remove(&as_crlf);
    assert_eq!(
        stored,
        Some(1),
        "the bare-LF message is stored once, with CRLF and no NUL"
    );
    first.insert(bare_lf, 1);
    support::assert_exactly_once(&user, &first, "in Dovecot");
    assert_a_page_repeated_an_item(&sim);

    let changes = dovecot.mail_changes().len();
    let (again, failures) = run_once(&sim, &destination, state.path()).await;
    assert_eq!(again.totals.messages, 0, "the rerun appends no message");
    assert_eq!(assert_refused_folders_are_reported(&failures), refused);
    assert_eq!(
        dovecot.mail_changes().len(),
        changes,
        "Dovecot logged no change on the rerun"
    );
    assert_eq!(
        (again.totals.events, again.totals.contacts),
        (0, 0),
        "the rerun writes no event or contact"
    );
    assert_events_arrived(&sim, &radicale_events(&radicale, &address).await);
}

/// Size of the long tests' message.
const HUGE: usize = 150 * 1024 * 1024;

/// A one-user tenant with one ordinary message and one of [`HUGE`] bytes.
async fn huge_sim() -> SimServer {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 1,
            messages_per_user: 1,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    sim.mutate(|t| add_huge_message(&mut t.users[0], HUGE));
    sim
}

/// Long test (`make test-long`): a 150 MB message arrives in the local folder byte for byte,
/// once.
#[tokio::test]
#[ignore = "long: a 150 MB message"]
async fn a_150_mb_message_arrives_in_the_local_folder_byte_for_byte() {
    let sim = huge_sim().await;
    let out = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let destination = Destination::Folder(out.path().to_path_buf());
    let (_, failures) = run_once(&sim, &destination, state.path()).await;
    assert_eq!(failures, Vec::<String>::new());
    let bodies = support::maildir_bodies(out.path());
    support::assert_exactly_once(&sim.tenant().users[0], &bodies, "in the folder");
}

/// This process's resident memory: (current, peak since start or the last reset), in bytes
/// (`VmRSS`, `VmHWM` of /proc/self/status, proc(5)).
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/self/status"))
            * 1024
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// Long test (`make test-long`): a 150 MB message arrives in Dovecot byte for byte, once, and
/// the migration's memory stays flat: the process's peak resident memory grows by less than
/// 64 MiB while the run streams it (the simulator in this process already holds the message;
/// the peak is reset to the current size before the run, proc(5) `clear_refs` 5).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: a 150 MB message"]
async fn a_150_mb_message_arrives_in_dovecot_byte_for_byte_once_in_flat_memory() {
    let sim = huge_sim().await;
    let dovecot = Dovecot::start_with(support::dovecot::Options {
        users: support::tenant_accounts(&sim),
        ..support::dovecot::Options::default()
    });
    let state = tempfile::tempdir().unwrap();
    let destination = support::dovecot::master_destination(dovecot.tls_settings());
    std::fs::write("/proc/self/clear_refs", "5")
        .expect("reset the peak RSS (Linux 4.0 or later: /proc/self/clear_refs)");
    let (before, _) = rss();
    let (summary, failures) = run_once(&sim, &destination, state.path()).await;
    let (_, peak) = rss();
    assert_eq!(failures, Vec::<String>::new());
    assert!(summary.totals.bytes >= HUGE as u64, "{summary:?}");
    let growth = peak.saturating_sub(before);
    eprintln!(
        "peak RSS growth during the run: {} MiB (before: {} MiB)",
        growth >> 20,
        before >> 20
    );
    assert!(
        growth < 64 << 20,
        "the run grew the peak RSS by {} MiB for a {} MiB message",
        growth >> 20,
        HUGE >> 20
    );
    let user = &sim.tenant().users[0];
    let bodies = support::account_bodies(&dovecot, &user.mail).await;
    support::assert_exactly_once(user, &bodies, "in Dovecot");
}
