//! The destination preflight against a real Dovecot and Radicale: a correct destination passes
//! every check; each wrong setting gives exactly one blocking check that names it, within
//! seconds (no reconnect wait), and nothing is written.

use crate::support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use migrator_core::dest::dav::{CollectionTemplates, DavSettings};
use migrator_core::dest::imap::MasterStyle;
use migrator_core::engine::{
    check_destination, CheckVerdict, Destination, EndpointCheck, ImapLogins,
};
use migrator_core::secrets::Secret;
use support::dovecot::{self, Dovecot, MASTER_PASSWORD, MASTER_USER};
use support::radicale::Radicale;

const USER: &str = "alice@example.com";

fn servers() -> (Dovecot, Radicale) {
    let dovecot = Dovecot::start_with(dovecot::Options {
        users: vec![(USER.into(), "alice-secret".into())],
        ..dovecot::Options::default()
    });
    (dovecot, Radicale::start())
}

/// IMAP through the master user, CalDAV/CardDAV with alice's own password (accounts CSV).
fn destination(dovecot: &Dovecot, radicale: &Radicale) -> Destination {
    Destination::Imap {
        settings: dovecot.tls_settings(),
        logins: ImapLogins::MasterAndAccounts {
            accounts: HashMap::from([(USER.to_string(), Secret::new("alice-secret"))]),
            master_user: MASTER_USER.into(),
            password: Secret::new(MASTER_PASSWORD),
            style: MasterStyle::SaslAuthzid,
        },
        dav: Some(radicale.settings()),
    }
}

/// Runs the checks, asserting they answer within seconds.
async fn checks(destination: &Destination) -> Vec<EndpointCheck> {
    let started = Instant::now();
    let checks = check_destination(destination, None).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}: {checks:#?}");
    for c in &checks {
        for secret in ["alice-secret", MASTER_PASSWORD] {
            assert!(!c.advice.contains(secret), "secret in {c:?}");
        }
    }
    checks
}

/// The one blocking check; every other check passed.
fn only_blocking(checks: &[EndpointCheck]) -> &EndpointCheck {
    let blocking: Vec<_> = checks.iter().filter(|c| c.blocks()).collect();
    assert_eq!(blocking.len(), 1, "{checks:#?}");
    assert!(
        checks
            .iter()
            .all(|c| c.blocks() || c.verdict == CheckVerdict::Ok),
        "{checks:#?}"
    );
    blocking[0]
}

/// Nothing reached the mail store or the calendars.
fn nothing_written(dovecot: &Dovecot, radicale: &Radicale) {
    assert!(
        dovecot.mail_changes().is_empty(),
        "{:?}",
        dovecot.mail_changes()
    );
    let items: Vec<_> = walkdir(radicale.dir())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "ics" || e == "vcf"))
        .collect();
    assert!(items.is_empty(), "{items:?}");
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walkdir(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_correct_destination_passes_every_check() {
    let (dovecot, radicale) = servers();
    let checks = checks(&destination(&dovecot, &radicale)).await;
    assert_eq!(checks.len(), 2, "{checks:#?}");
    assert!(
        checks.iter().all(|c| c.verdict == CheckVerdict::Ok),
        "{checks:#?}"
    );
    nothing_written(&dovecot, &radicale);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_dav_url_is_one_blocking_check_naming_the_url_and_setting() {
    let (dovecot, radicale) = servers();
    let mut destination = destination(&dovecot, &radicale);
    let wrong = format!("{}nowhere/", radicale.base_url());
    if let Destination::Imap { dav, .. } = &mut destination {
        let mut settings = DavSettings::new(wrong.clone());
        settings.allow_plaintext_loopback = true;
        settings.discover = false;
        settings.templates = CollectionTemplates::under(&wrong);
        *dav = Some(settings);
    }
    let checks = checks(&destination).await;
    let blocking = only_blocking(&checks);
    assert!(blocking.name.contains("CalDAV"), "{blocking:?}");
    assert!(
        blocking.advice.contains("/nowhere/") && blocking.advice.contains("destination.dav_url"),
        "{blocking:?}"
    );
    nothing_written(&dovecot, &radicale);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_imap_port_is_one_blocking_check_without_the_reconnect_wait() {
    let (dovecot, radicale) = servers();
    let mut destination = destination(&dovecot, &radicale);
    let port = dovecot::free_port();
    if let Destination::Imap { settings, .. } = &mut destination {
        settings.port = port;
    }
    let checks = checks(&destination).await;
    let blocking = only_blocking(&checks);
    assert!(blocking.name.contains("IMAP"), "{blocking:?}");
    assert!(
        blocking.advice.contains(&format!("127.0.0.1:{port}"))
            && blocking.advice.contains("destination.port"),
        "{blocking:?}"
    );
    nothing_written(&dovecot, &radicale);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_one_blocking_check_naming_the_login() {
    let (dovecot, radicale) = servers();
    let mut destination = destination(&dovecot, &radicale);
    if let Destination::Imap {
        logins: ImapLogins::MasterAndAccounts { password, .. },
        ..
    } = &mut destination
    {
        *password = Secret::new("not the master password");
    }
    let checks = checks(&destination).await;
    let blocking = only_blocking(&checks);
    assert!(blocking.name.contains("IMAP"), "{blocking:?}");
    assert!(
        blocking.advice.contains("refused") && blocking.advice.contains(MASTER_USER),
        "{blocking:?}"
    );
    assert!(!blocking.advice.contains("not the master password"));
    nothing_written(&dovecot, &radicale);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_signed_certificate_without_the_ca_file_is_one_blocking_check() {
    let (dovecot, radicale) = servers();
    let mut destination = destination(&dovecot, &radicale);
    if let Destination::Imap { settings, .. } = &mut destination {
        settings.ca_file = None;
    }
    let checks = checks(&destination).await;
    let blocking = only_blocking(&checks);
    assert!(blocking.name.contains("IMAP"), "{blocking:?}");
    assert!(
        blocking.advice.contains("certificate") && blocking.advice.contains("ca_file"),
        "{blocking:?}"
    );
    nothing_written(&dovecot, &radicale);
}
