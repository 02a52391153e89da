//! The destination preflight against a real Dovecot and Radicale: a correct destination passes
//! every check; each wrong setting gives exactly one blocking check that names it, within
//! seconds (no reconnect wait), and nothing is written.

use crate::support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use migrator_core::config::FileConfig;
use migrator_core::dest::dav::{CollectionTemplates, DavSettings};
use migrator_core::dest::imap::MasterStyle;
use migrator_core::engine::{
    check_destination, CheckVerdict, Destination, EndpointCheck, ImapLogins,
};
use migrator_core::secrets::Secret;
use migrator_sim::icewarp::{IceWarpConfig, IceWarpSim};
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
async fn run_checks(destination: &Destination) -> Vec<EndpointCheck> {
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
    let checks = run_checks(&destination(&dovecot, &radicale)).await;
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
    let checks = run_checks(&destination).await;
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
    let checks = run_checks(&destination).await;
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
    let checks = run_checks(&destination).await;
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
    let checks = run_checks(&destination).await;
    let blocking = only_blocking(&checks);
    assert!(blocking.name.contains("IMAP"), "{blocking:?}");
    assert!(
        blocking.advice.contains("certificate") && blocking.advice.contains("ca_file"),
        "{blocking:?}"
    );
    nothing_written(&dovecot, &radicale);
}

/// An IceWarp destination: the admin API emulator, Dovecot for its IMAP (the administrator as
/// master user) and Radicale at IceWarp's WebDAV layout, configured as a user would.
async fn icewarp(
    dovecot: &Dovecot,
    imap_port: u16,
    webdav_url: &str,
) -> (IceWarpSim, tempfile::TempDir, Destination) {
    let sim = IceWarpSim::start(IceWarpConfig {
        admin_password: MASTER_PASSWORD.into(),
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let accounts_csv = dir.path().join("accounts.csv");
    std::fs::write(&accounts_csv, format!("{USER},alice-secret\n")).unwrap();
    let toml = format!(
        "[source]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\n\n\
         [destination]\nkind = \"icewarp\"\nhost = \"127.0.0.1\"\napi_url = \"{api}\"\n\
         admin_email = \"{admin}\"\nallow_plaintext_loopback = true\nca_file = \"{ca}\"\n\
         credentials_report = \"{report}\"\nmaster_user = \"{MASTER_USER}\"\n\
         accounts_csv = \"{accounts}\"\nimap_port = {imap_port}\nwebdav_url = \"{webdav_url}\"\n",
        api = sim.api_url(),
        admin = IceWarpConfig::default().admin_email,
        ca = dovecot.ca_file.display(),
        report = dir.path().join("credentials.csv").display(),
        accounts = accounts_csv.display(),
    );
    let config = FileConfig::parse(&toml, &dir.path().join("migrate.toml")).unwrap();
    let destination =
        Destination::from_config(&config.destination(), Some(Secret::new(MASTER_PASSWORD)))
            .unwrap();
    (sim, dir, destination)
}

#[tokio::test(flavor = "multi_thread")]
async fn icewarp_checks_its_admin_api_imap_and_webdav() {
    let (dovecot, radicale) = servers();
    let (_sim, _dir, good) = icewarp(&dovecot, dovecot.imaps_port, &radicale.base_url()).await;
    let checks = run_checks(&good).await;
    let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{checks:#?}");
    assert!(names[0].contains("IceWarp admin API"), "{checks:#?}");
    assert!(
        names[1].contains("IMAP") && names[2].contains("CalDAV"),
        "{checks:#?}"
    );
    // The emulator's default settings may slow a run (a warning), but nothing blocks.
    assert!(checks.iter().all(|c| !c.blocks()), "{checks:#?}");
    assert!(
        checks[1..].iter().all(|c| c.verdict == CheckVerdict::Ok),
        "{checks:#?}"
    );

    let wrong = format!("{}nowhere/", radicale.base_url());
    let (_sim, _dir, bad_dav) = icewarp(&dovecot, dovecot.imaps_port, &wrong).await;
    let checks = run_checks(&bad_dav).await;
    let blocking: Vec<_> = checks.iter().filter(|c| c.blocks()).collect();
    assert_eq!(blocking.len(), 1, "{checks:#?}");
    assert!(
        blocking[0].advice.contains("/nowhere/")
            && blocking[0].advice.contains("destination.webdav_url"),
        "{checks:#?}"
    );

    let port = dovecot::free_port();
    let (_sim, _dir, bad_imap) = icewarp(&dovecot, port, &radicale.base_url()).await;
    let checks = run_checks(&bad_imap).await;
    let blocking: Vec<_> = checks.iter().filter(|c| c.blocks()).collect();
    assert_eq!(blocking.len(), 1, "{checks:#?}");
    assert!(
        blocking[0].name.contains("IMAP")
            && blocking[0].advice.contains(&format!("127.0.0.1:{port}"))
            && blocking[0].advice.contains("destination.imap_port"),
        "{checks:#?}"
    );
    nothing_written(&dovecot, &radicale);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_dav_password_is_one_blocking_check_naming_the_url() {
    let (dovecot, radicale) = servers();
    let mut destination = destination(&dovecot, &radicale);
    if let Destination::Imap {
        logins: ImapLogins::MasterAndAccounts { accounts, .. },
        ..
    } = &mut destination
    {
        accounts.insert(USER.into(), Secret::new("not alice's password"));
    }
    let checks = run_checks(&destination).await;
    let blocking = only_blocking(&checks);
    assert!(blocking.name.contains("CalDAV"), "{blocking:?}");
    assert!(
        blocking.advice.contains("(401)")
            && blocking.advice.contains(&radicale.base_url())
            && blocking.advice.contains(USER)
            && blocking.advice.contains("accounts CSV"),
        "{blocking:?}"
    );
    assert!(!blocking.advice.contains("not alice's password"));
    nothing_written(&dovecot, &radicale);
}
