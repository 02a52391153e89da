//! What a DAV server may do that the destination must survive without losing or leaking
//! anything: refuse the UID query REPORT (issue 14.7), send the client to another host
//! (issue 19.2). A real Radicale behind [`DavFront`], which refuses or redirects.

use crate::dav_front::DavFront;
use crate::dav_radicale::{raw_addressbook, raw_calendar, simple_event, vcard};
use crate::support;

use migrator_core::config::{FileConfig, Workload};
use migrator_core::dest::dav::{
    CollectionKind, DavAccount, DavError, DavLogin, DavSettings, ItemRef,
};
use migrator_core::dest::imap::{ImapSettings, Security};
use migrator_core::engine::{Destination, ImapLogins, RunOptions};
use migrator_core::error::{Classify, ErrorClass};
use migrator_core::progress::RunSummary;
use migrator_core::secrets::Secret;
use migrator_sim::icewarp::{DefaultFolderNames, IceWarpConfig, IceWarpSim};
use migrator_sim::{SimConfig, SimServer, TenantSpec};
use support::radicale::Radicale;

const ALICE: &str = "alice@example.com";

/// A tenant of one user with one message (the tests here move groupware only).
async fn one_user_tenant() -> SimServer {
    SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 1,
            messages_per_user: 1,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts")
}

/// Runs `workloads` of `sim`'s tenant into `destination`, journaled in `state`; returns the
/// summary and each failed item's line.
async fn run_groupware(
    sim: &SimServer,
    destination: &Destination,
    state: &std::path::Path,
    workloads: Vec<Workload>,
    mirror_deletions: bool,
) -> (RunSummary, Vec<String>) {
    let options = RunOptions {
        state_dir: Some(state.join("state")),
        workloads,
        mirror_deletions,
        ..RunOptions::default()
    };
    support::run_with(sim, destination, options).await
}

/// An IceWarp destination at `icewarp`, configured as a user would (`source`: the
/// `[source]` table; `more`: more `[destination]` lines; IMAP never contacted), its files in
/// `dir`.
fn icewarp_destination(
    source: &str,
    icewarp: &IceWarpSim,
    dir: &std::path::Path,
    more: &str,
) -> Destination {
    let toml = format!(
        "{source}[destination]\nkind = \"icewarp\"\nhost = \"127.0.0.1\"\napi_url = \"{api}\"\n\
         admin_email = \"{admin}\"\nallow_plaintext_loopback = true\n\
         credentials_report = \"{report}\"\nimap_port = 9\n{more}",
        api = icewarp.api_url(),
        admin = IceWarpConfig::default().admin_email,
        report = dir.join("credentials.csv").display(),
    );
    let config = FileConfig::parse(&toml, &dir.join("migrate.toml")).expect("the configuration");
    Destination::from_config(
        &config.destination(),
        Some(Secret::new(IceWarpConfig::default().admin_password)),
    )
    .expect("an IceWarp destination")
}

fn through(front: &DavFront, server: &Radicale) -> DavSettings {
    DavSettings {
        base_url: front.base_url(),
        ..server.settings()
    }
}

/// A server without calendar-query / addressbook-query (it answers REPORT with 400, 403 or
/// 501) still gets each item once: written with `If-None-Match: *`, updated in place on a
/// rerun through the 412 path, never failed for the refused search.
#[tokio::test]
async fn dav_without_report_writes_and_updates_each_item_once() {
    for status in [400u16, 403, 501] {
        let server = Radicale::start();
        let base = server.base_url();
        // Collections that existed before the migration: the writer must look for the UID.
        raw_calendar(&base, "alice@example.com/work/", "Work").await;
        raw_addressbook(&base, "alice@example.com/people/", "People").await;
        let front = DavFront::start(&base, Vec::new()).await;
        front.refuse_reports(status);
        let account = DavAccount::connect(&through(&front, &server), ALICE, Radicale::login(ALICE))
            .await
            .unwrap_or_else(|e| panic!("connect: {e:?}"));
        let cal = account
            .ensure_collection(CollectionKind::Events, "Work", None)
            .await
            .unwrap();
        let book = account
            .ensure_collection(CollectionKind::Contacts, "People", None)
            .await
            .unwrap();
        assert!(
            !cal.created && !book.created,
            "merged into the existing ones"
        );

        let first = account
            .put(&cal, "ev-1", simple_event("ev-1", "first").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{status}: the refused REPORT failed the item: {e:?}"));
        assert!(first.created);
        let again = account
            .put(&cal, "ev-1", simple_event("ev-1", "second").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{status}: rerun: {e:?}"));
        assert!(!again.created, "{status}: updated in place");
        assert_eq!(again.href, first.href);
        let card = account
            .put(&book, "card-1", vcard("card-1", "Jane Roe").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{status}: the refused REPORT failed the card: {e:?}"));
        assert!(card.created);

        let items = account.list(&cal).await.unwrap();
        assert_eq!(items.len(), 1, "{status}: no duplicate: {items:?}");
        let body = account.get(&first.href).await.unwrap().unwrap().body;
        assert!(
            String::from_utf8_lossy(&body).contains("SUMMARY:second"),
            "{status}: the rerun's version is there"
        );
        assert_eq!(account.list(&book).await.unwrap().len(), 1);
        let reports = front
            .seen()
            .iter()
            .filter(|(m, _, _)| m == "REPORT")
            .count();
        assert_eq!(
            reports, 1,
            "{status}: asked once, then the account stops sending REPORTs"
        );
    }
}

/// A discovery redirect to another origin (another port is another origin, RFC 6454 §4) is
/// followed without the password; the login that host then asks for is refused with an error
/// that names it, fatal for this account only.
#[tokio::test]
async fn dav_credentials_go_only_to_the_configured_origin() {
    let server = Radicale::start();
    let elsewhere = DavFront::start(&server.base_url(), Vec::new()).await;
    let configured = DavFront::start(&server.base_url(), Vec::new()).await;
    let foreign = format!("{}.well-known/caldav", elsewhere.base_url());
    configured.redirect("/.well-known/caldav", &foreign);
    configured.redirect("/.well-known/carddav", &foreign);
    let settings = through(&configured, &server);

    let outcome = DavAccount::connect(&settings, ALICE, Radicale::login(ALICE)).await;
    let seen = elsewhere.seen();
    assert!(!seen.is_empty(), "the redirect was followed");
    assert!(
        seen.iter().all(|(_, _, authorized)| !authorized),
        "the other host received credentials: {seen:?}"
    );
    assert!(
        configured
            .seen()
            .iter()
            .any(|(_, _, authorized)| *authorized),
        "the configured host gets them"
    );
    // Radicale behind the other host asks for a login: the account is refused, naming it.
    let e = outcome.expect_err("the other host's login request is an error");
    assert!(matches!(e, DavError::ForeignOrigin { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Fatal);
    let text = e.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}/", elsewhere.port))
            && text.contains(&format!("127.0.0.1:{}", configured.port))
            && !text.contains("alice-secret"),
        "{text}"
    );
}

/// Contacts migrated into Radicale, then edited there by their owner: a later change and a
/// deletion at the source do not overwrite or delete the user's version (the migrator's
/// stored ETag goes with `If-Match`); each is reported as a conflict, on every rerun.
#[tokio::test(flavor = "multi_thread")]
async fn dav_changes_made_at_the_destination_are_never_overwritten_or_deleted() {
    let sim = one_user_tenant().await;
    let server = Radicale::start_with(support::radicale::Options {
        users: support::tenant_accounts(&sim),
        ..support::radicale::Options::default()
    });
    let state = tempfile::tempdir().unwrap();
    let user = sim.tenant().users[0].clone();
    let login = DavLogin::new(user.mail.clone(), Secret::new("pw"));
    let migrate = || async {
        let destination = Destination::Imap {
            // Contacts only: the IMAP server is never contacted.
            settings: ImapSettings::new("127.0.0.1", 9, Security::Tls),
            logins: ImapLogins::Accounts(
                [(user.mail.to_lowercase(), Secret::new("pw"))]
                    .into_iter()
                    .collect(),
            ),
            dav: Some(server.settings()),
        };
        run_groupware(
            &sim,
            &destination,
            state.path(),
            vec![Workload::Contacts],
            true,
        )
        .await
    };
    let (first, failures) = migrate().await;
    assert_eq!(failures, Vec::<String>::new(), "{first:?}");
    assert!(first.totals.contacts >= 2, "{first:?}");

    // The user edits every migrated contact at the destination.
    const EDIT: &str = "NOTE:edited at the destination";
    let account = DavAccount::connect(&server.settings(), &user.mail, login.clone())
        .await
        .unwrap();
    let mut held = 0;
    for book in account.collections(CollectionKind::Contacts).await.unwrap() {
        for item in account.list(&book).await.unwrap() {
            let text = String::from_utf8(account.get(&item.href).await.unwrap().unwrap().body)
                .unwrap()
                .replace("END:VCARD", &format!("{EDIT}\r\nEND:VCARD"));
            account
                .replace(&book, &item, text.as_bytes())
                .await
                .unwrap();
            held += 1;
        }
    }
    // One contact changes at the source, another is deleted there.
    let contacts: Vec<_> = user
        .contact_folders
        .iter()
        .flat_map(|f| f.contacts.iter())
        .collect();
    assert!(sim.update_contact(&user.id, &contacts[0].id, |c| c.job_title = "CTO".into()));
    assert!(sim.delete_contact(&user.id, &contacts[1].id));

    for round in ["second", "third"] {
        let (summary, failures) = migrate().await;
        assert_eq!(failures.len(), 2, "{round}: {failures:?}");
        assert!(
            failures.iter().all(|f| f.contains("conflict")
                && f.contains("changed at the destination since the migration wrote it")),
            "{round}: {failures:?}"
        );
        // Issue 15: the changed contact's conflict was named by its Graph id only. (The
        // deleted one is gone at the source; its conflict names the destination resource.)
        let changed = format!(
            " {} \"{}\": conflict",
            contacts[0].id, contacts[0].display_name
        );
        assert!(
            failures.iter().any(|f| f.contains(&changed)),
            "{round}: the conflict names the contact: {failures:?}"
        );
        assert_eq!(summary.totals.contacts, 0, "{round}: nothing overwritten");
        let mut bodies = Vec::new();
        for book in account.collections(CollectionKind::Contacts).await.unwrap() {
            for item in account.list(&book).await.unwrap() {
                let ItemRef { href, .. } = item;
                bodies.push(
                    String::from_utf8(account.get(&href).await.unwrap().unwrap().body).unwrap(),
                );
            }
        }
        assert_eq!(bodies.len(), held, "{round}: nothing deleted");
        assert!(
            bodies
                .iter()
                .all(|b| b.contains(EDIT) && !b.contains("CTO")),
            "{round}: every user edit is kept"
        );
    }
}

/// An IceWarp whose GroupWare folders are localised (a Czech installation: `Kalendář`,
/// `Úkoly`, `Kontakty`, as `getaccountfolderlist` names them): each account's default
/// calendar, task list and address book go into those, and no English `Calendar`, `Tasks` or
/// `Contacts` collection appears beside them.
#[tokio::test(flavor = "multi_thread")]
async fn icewarp_localised_groupware_folders_receive_the_default_collections() {
    let sim = one_user_tenant().await;
    let czech = DefaultFolderNames::czech();
    let icewarp = IceWarpSim::start(IceWarpConfig {
        folder_names: czech.clone(),
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let server = Radicale::start_with(support::radicale::Options {
        any_password: true,
        ..support::radicale::Options::default()
    });
    let user = sim.tenant().users[0].clone();
    // What IceWarp has for every account: its GroupWare folders, here in Czech.
    let http = reqwest::Client::new();
    for (name, body) in [
        (&czech.events, mkcalendar("VEVENT")),
        (&czech.tasks, mkcalendar("VTODO")),
    ] {
        let url = format!("{}{}/{name}/", server.base_url(), user.mail);
        let status = http
            .request(reqwest::Method::from_bytes(b"MKCALENDAR").unwrap(), &url)
            .basic_auth(&user.mail, Some("x"))
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 201, "{url}");
    }
    let url = format!("{}{}/{}/", server.base_url(), user.mail, czech.contacts);
    let status = http
        .request(reqwest::Method::from_bytes(b"MKCOL").unwrap(), &url)
        .basic_auth(&user.mail, Some("x"))
        .body(
            r#"<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>"#,
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 201, "{url}");

    let dir = tempfile::tempdir().unwrap();
    let destination = icewarp_destination(
        &support::source_toml(&sim),
        &icewarp,
        dir.path(),
        &format!("webdav_url = \"{}\"\n", server.base_url()),
    );
    let workloads = vec![Workload::Calendar, Workload::Contacts, Workload::Tasks];
    let (summary, failures) = run_groupware(&sim, &destination, dir.path(), workloads, false).await;
    assert_eq!(failures, Vec::<String>::new(), "{summary:?}");
    assert!(summary.totals.events > 0 && summary.totals.contacts > 0);

    let account = DavAccount::connect(
        &server.settings(),
        &user.mail,
        DavLogin::new(user.mail.clone(), Secret::new("x")),
    )
    .await
    .unwrap();
    let last = |c: &migrator_core::dest::dav::Collection| {
        let path = percent_encoding::percent_decode_str(c.url.path())
            .decode_utf8_lossy()
            .into_owned();
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string()
    };
    for (kind, localised, english, sources) in [
        (
            CollectionKind::Events,
            &czech.events,
            "Calendar",
            user.calendars.len(),
        ),
        (CollectionKind::Tasks, &czech.tasks, "Tasks", 0),
        (
            CollectionKind::Contacts,
            &czech.contacts,
            "Contacts",
            user.contact_folders.len(),
        ),
    ] {
        let collections = account.collections(kind).await.unwrap();
        let names: Vec<String> = collections.iter().map(last).collect();
        assert!(
            !names.iter().any(|n| n == english),
            "{kind:?}: an English {english} beside {localised}: {names:?}"
        );
        let own = collections
            .iter()
            .find(|c| last(c) == *localised)
            .unwrap_or_else(|| panic!("{kind:?}: {localised} in {names:?}"));
        assert!(
            !account.list(own).await.unwrap().is_empty(),
            "{kind:?}: the default collection went into {localised}"
        );
        if sources > 0 {
            assert_eq!(collections.len(), sources, "{kind:?}: {names:?}");
        }
    }
}

fn mkcalendar(component: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:supported-calendar-component-set><C:comp name="{component}"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#
    )
}

/// An existing account of the IceWarp tests of `check`, with its password.
const EXISTING: &str = "jane@contoso.com";

/// The IceWarp emulator with the account [`EXISTING`] and these server properties.
async fn icewarp_with_jane(properties: Vec<(String, String)>) -> IceWarpSim {
    IceWarpSim::start(IceWarpConfig {
        accounts: vec![migrator_sim::icewarp::AccountSpec {
            email: EXISTING.into(),
            name: "Jane".into(),
            password: "Jane-Pa55!".into(),
            aliases: Vec::new(),
        }],
        properties,
        ..IceWarpConfig::default()
    })
    .await
    .unwrap()
}

/// The advice of `check`'s IceWarp admin API line, for a destination with this accounts CSV
/// (its text), these more `[destination]` lines and this probe mailbox.
async fn admin_api_advice(
    icewarp: &IceWarpSim,
    accounts_csv: Option<&str>,
    more: &str,
    probe: Option<&str>,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut more = more.to_string();
    if let Some(text) = accounts_csv {
        let path = dir.path().join("accounts.csv");
        std::fs::write(&path, text).unwrap();
        more.push_str(&format!("accounts_csv = \"{}\"\n", path.display()));
    }
    let source = "[source]\ntenant_id = \"contoso.onmicrosoft.com\"\n\
                  client_id = \"00000000-0000-0000-0000-000000000001\"\n\n";
    let destination = icewarp_destination(source, icewarp, dir.path(), &more);
    let checks = migrator_core::engine::check_destination(&destination, probe).await;
    checks
        .iter()
        .find(|c| c.name.contains("IceWarp admin API"))
        .unwrap_or_else(|| panic!("{checks:#?}"))
        .advice
        .clone()
}

/// `check` names, before any data moves, what the IceWarp server will refuse or delete later:
/// plain authentication off, spam clean-up by age, and for an existing account its quota,
/// message size limit, clean-up of old mail and a WebDAV policy that is off.
#[tokio::test(flavor = "multi_thread")]
async fn icewarp_check_names_the_limits_that_refuse_or_delete_migrated_data() {
    let icewarp = icewarp_with_jane(vec![
        ("C_Accounts_Policies_Auth_DisablePlain".into(), "1".into()),
        ("C_AS_DeleteSpamMailOlder".into(), "30".into()),
    ])
    .await;
    for (name, value) in [
        ("U_MaxBox", "1"),
        ("U_MaxBoxSize", "512000"),
        ("U_MaxMessageSize", "20480"),
        ("U_DeleteOlder", "1"),
        ("U_DeleteOlderDays", "365"),
        ("U_WebDAV", "0"),
    ] {
        assert!(icewarp.set_account_property(EXISTING, name, value));
    }
    let advice = advice_with_jane(&icewarp).await;
    for expected in [
        "C_Accounts_Policies_Auth_DisablePlain",
        "spam older than 30 days",
        "jane@contoso.com: the mailbox is limited to 500 MB",
        "jane@contoso.com: messages larger than 20 MB are refused",
        "jane@contoso.com: messages older than 365 days are deleted",
        "jane@contoso.com: U_WebDAV is off",
    ] {
        assert!(advice.contains(expected), "{expected}: {advice}");
    }
}

/// [`admin_api_advice`] with [`EXISTING`] and its password in the accounts CSV.
async fn advice_with_jane(icewarp: &IceWarpSim) -> String {
    admin_api_advice(icewarp, Some(&format!("{EXISTING},Jane-Pa55!\n")), "", None).await
}

/// IceWarp's `C_System_Services_IMAP_CopyBWFunction` (apiconst: a copy or move from Inbox to
/// Spam blacklists the sender, from Spam to Inbox whitelists it) turns the moves a later run
/// mirrors into spam-filter training. `check` names it when it is on, and only then.
#[tokio::test(flavor = "multi_thread")]
async fn icewarp_check_names_spam_training_by_imap_moves_only_when_on() {
    for (value, named) in [("1", true), ("0", false)] {
        let icewarp = icewarp_with_jane(vec![(
            "C_System_Services_IMAP_CopyBWFunction".into(),
            value.into(),
        )])
        .await;
        let advice = advice_with_jane(&icewarp).await;
        assert_eq!(
            advice.contains("C_System_Services_IMAP_CopyBWFunction")
                && advice.contains("blacklist or whitelist"),
            named,
            "CopyBWFunction = {value}: {advice}"
        );
    }
}

/// `check` names the limits of the domain an account is written into (`getdomainproperties`):
/// its mailbox, storage and message size limits, spam clean-up by age, login switched off and
/// GroupWare/WebDAV without support or with the policy off.
#[tokio::test(flavor = "multi_thread")]
async fn icewarp_check_names_the_domain_limits_that_refuse_or_delete_migrated_data() {
    let icewarp = icewarp_with_jane(Vec::new()).await;
    for (name, value) in [
        ("D_UserMailbox", "1048576"),
        ("D_DiskQuota", "10485760"),
        ("D_UserMsg", "25600"),
        ("D_SpamDeleteOlder", "14"),
        ("D_DisableLogin", "1"),
        ("D_GWSupport", "0"),
        ("D_WebDAVSupport", "1"),
        ("D_Calendar", "1"),
        ("D_WebDAV", "0"),
    ] {
        assert!(icewarp.set_domain_property("contoso.com", name, value));
    }
    let advice = advice_with_jane(&icewarp).await;
    for expected in [
        "contoso.com: user mailboxes are limited to 1024 MB (D_UserMailbox)",
        "contoso.com: the domain's storage is limited to 10240 MB (D_DiskQuota)",
        "contoso.com: messages larger than 25 MB are refused (D_UserMsg)",
        "contoso.com: spam older than 14 days is deleted from spam folders (D_SpamDeleteOlder)",
        "contoso.com: login to this domain is disabled (D_DisableLogin)",
        "contoso.com: the domain has no GroupWare support (D_GWSupport)",
        "contoso.com: the domain has the WebDAV policy off (D_WebDAV)",
    ] {
        assert!(advice.contains(expected), "{expected}: {advice}");
    }
    for not_limiting in ["D_WebDAVSupport", "D_Calendar"] {
        assert!(!advice.contains(not_limiting), "{advice}");
    }
    assert_eq!(
        icewarp
            .requests()
            .iter()
            .filter(|r| r.command.as_deref() == Some("getdomainproperties"))
            .count(),
        1,
        "one read per domain"
    );
}

/// `check` says, before any data moves, that the administrator is a domain administrator
/// (`U_Admin` 0, `U_DomainAdmin` 1) when a domain the run writes into is not on the server and
/// would have to be created; a server administrator, or a domain administrator whose domains
/// all exist, gets no such line.
#[tokio::test(flavor = "multi_thread")]
async fn icewarp_check_names_a_domain_administrator_that_cannot_create_the_domains() {
    let advice = |domain_admin: bool, mapped_to: &'static str| async move {
        let icewarp = IceWarpSim::start(IceWarpConfig {
            domains: vec!["contoso.com".into()],
            domain_admin,
            ..IceWarpConfig::default()
        })
        .await
        .unwrap();
        let map = format!("domain_map = {{ \"contoso.onmicrosoft.com\" = \"{mapped_to}\" }}\n");
        admin_api_advice(&icewarp, None, &map, Some("adele@contoso.com")).await
    };
    let missing = advice(true, "fabrikam.com").await;
    assert!(
        missing.contains(
            "is a domain administrator, not a server administrator (U_Admin 0, U_DomainAdmin 1): \
             it cannot create the domains fabrikam.com;"
        ),
        "{missing}"
    );
    for (domain_admin, mapped_to) in [(false, "fabrikam.com"), (true, "contoso.com")] {
        let advice = advice(domain_admin, mapped_to).await;
        assert!(!advice.contains("domain administrator"), "{advice}");
    }
}
