//! An IceWarp migration end to end: the IceWarp admin API emulator creates the domains and
//! accounts (and, when asked, groups and mailing lists), a real Dovecot stands in for
//! IceWarp's IMAP (the administrator logs in for each account) and a real Radicale for its
//! WebDAV, at IceWarp's URL layout. The tenant has shared mailboxes and a room besides people.

use crate::dav_front::DavFront;
use crate::support;

use std::collections::HashMap;

use migrator_core::config::{FileConfig, Workload};
use migrator_core::dest::dav::{CollectionKind, DavAccount, DavLogin};
use migrator_core::engine::{preflight, run, verify, Destination, RunControl, RunOptions};
use migrator_core::journal::Journal;
use migrator_core::progress::{ProgressEvent, Reporter, RunSummary};
use migrator_core::secrets::Secret;
use migrator_sim::icewarp::{AccountSpec, IceWarpConfig, IceWarpSim};
use migrator_sim::{GroupMember, GroupwareSpec, SimConfig, TenantSpec, ROLES};
use support::dovecot::{Dovecot, MASTER_PASSWORD, MASTER_USER};
use support::radicale::{self, Radicale};

const DOMAINS: [&str; 3] = ["contoso.com", "fabrikam.com", "northwind.com"];

struct Setup {
    sim: migrator_sim::SimServer,
    icewarp: IceWarpSim,
    dovecot: Dovecot,
    radicale: Radicale,
    dir: tempfile::TempDir,
    config: FileConfig,
    /// The account that existed before the migration, and its password.
    existing: (String, String),
    /// The IMAP front that drops authorization identities, when there is one.
    _front: Option<tokio::task::JoinHandle<()>>,
    /// The WebDAV front before Radicale (refuses resource logins when asked).
    _dav_front: DavFront,
    /// What the runs reported not migrated (user, reason).
    not_migrated: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    /// What the runs move.
    workloads: Vec<Workload>,
}

/// How the IMAP server answers a master login (SASL PLAIN with an authorization identity),
/// which IceWarp does not document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MasterAnswer {
    /// Logs in to the user's mailbox (Dovecot's master passdb).
    Accepted,
    /// Refuses the login.
    Refused,
    /// Ignores the authorization identity: the administrator lands in its own mailbox.
    AuthzidIgnored,
}

/// `destination`: more `[destination]` lines; `roles`: more permissions granted to the app.
async fn setup(destination: &str, roles: &[&str]) -> Setup {
    setup_with(
        destination,
        roles,
        MasterAnswer::Accepted,
        LoginPolicy::Email,
        |_| {},
    )
    .await
}

/// IceWarp's login policy (`C_Accounts_Policies_Login_LoginSettings`, online help 282.htm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginPolicy {
    /// 1: services log in with the full address.
    Email,
    /// 0: with the account's username (`U_Login`): Dovecot knows each user by its local part,
    /// and the runs move mail only (Radicale shows a user only the collections under its own
    /// name, while IceWarp's WebDAV layout names the address).
    Username,
}

/// [`setup`] with Dovecot accepting master logins or refusing them (Dovecot takes any password
/// of a known user: it stands in for IceWarp, which knows the passwords the run generates), and
/// the simulator's configuration changed by `sim`.
async fn setup_with(
    destination: &str,
    roles: &[&str],
    master: MasterAnswer,
    login_policy: LoginPolicy,
    sim: impl FnOnce(&mut SimConfig),
) -> Setup {
    setup_resources(
        destination,
        roles,
        master,
        login_policy,
        ResourceLogin::Accepted,
        sim,
    )
    .await
}

/// How IMAP and WebDAV answer a login as a resource account (`U_Type` 8), which IceWarp does
/// not document (its KB "Resource Management" names only the Manager's access to the
/// resource's calendar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResourceLogin {
    /// Logs in like any account.
    Accepted,
    /// Refuses it, over IMAP (a Dovecot `deny` passdb) and WebDAV (401 from a front).
    Refused,
    /// Accepts it over IMAP, refuses it over WebDAV.
    WebDavRefused,
}

/// [`setup_with`] with resource accounts' logins answered by `resource_login`.
async fn setup_resources(
    destination: &str,
    roles: &[&str],
    master: MasterAnswer,
    login_policy: LoginPolicy,
    resource_login: ResourceLogin,
    sim: impl FnOnce(&mut SimConfig),
) -> Setup {
    let mut sim_config = SimConfig {
        tenant: TenantSpec {
            // The eleventh user is disabled in Microsoft 365; two shared mailboxes and a room
            // follow (their sign-in is blocked too, as Exchange creates them).
            users: 11,
            shared_mailboxes: 2,
            rooms: 1,
            groups: 4,
            messages_per_user: 2,
            domains: DOMAINS.iter().map(|d| d.to_string()).collect(),
            groupware: GroupwareSpec {
                events_per_calendar: 1,
                contacts: 2,
                tasks_per_list: 1,
                ..GroupwareSpec::default()
            },
            ..TenantSpec::default()
        },
        roles: ROLES.iter().chain(roles).map(|r| r.to_string()).collect(),
        ..SimConfig::default()
    };
    sim(&mut sim_config);
    let sim = migrator_sim::SimServer::start(sim_config)
        .await
        .expect("the simulator starts");
    let mut users = support::tenant_accounts(&sim);
    if login_policy == LoginPolicy::Username {
        for (user, _) in &mut users {
            let local = user.split('@').next().unwrap_or_default().to_string();
            *user = local;
        }
    }
    if master == MasterAnswer::AuthzidIgnored {
        // The administrator has a mailbox of its own, where an ignored authzid lands.
        users.push((MASTER_USER.into(), MASTER_PASSWORD.into()));
    }
    let resources: Vec<String> = sim
        .tenant()
        .users
        .iter()
        .filter(|u| matches!(u.purpose.as_str(), "room" | "equipment"))
        .map(|u| u.mail.clone())
        .collect();
    let dovecot = Dovecot::start_with(support::dovecot::Options {
        users,
        master_logins: master != MasterAnswer::Refused,
        any_password: true,
        denied: match resource_login {
            ResourceLogin::Refused => resources.clone(),
            _ => Vec::new(),
        },
        ..support::dovecot::Options::default()
    });
    let (imap, front) = match master {
        MasterAnswer::AuthzidIgnored => {
            let (port, task) = authzid_ignoring_front(dovecot.imap_port).await;
            (
                format!("imap_port = {port}\nimap_security = \"plain\"\n"),
                Some(task),
            )
        }
        _ => (format!("imap_port = {}\n", dovecot.imaps_port), None),
    };
    let tenant = sim.tenant();
    let existing = tenant
        .users
        .iter()
        .find(|u| u.account_enabled)
        .map(|u| (u.mail.clone(), "Existing-Pa55!".to_string()))
        .unwrap();
    let icewarp = IceWarpSim::start(IceWarpConfig {
        // The IMAP master user and the API administrator share DEST_ADMIN_PASSWORD.
        admin_password: MASTER_PASSWORD.into(),
        accounts: vec![AccountSpec {
            email: existing.0.clone(),
            name: "Existing account".into(),
            password: existing.1.clone(),
            aliases: Vec::new(),
        }],
        properties: match login_policy {
            LoginPolicy::Email => Vec::new(),
            LoginPolicy::Username => {
                vec![("C_Accounts_Policies_Login_LoginSettings".into(), "0".into())]
            }
        },
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let admin = IceWarpConfig::default().admin_email;
    let admin = match login_policy {
        LoginPolicy::Email => admin,
        LoginPolicy::Username => admin.split('@').next().unwrap_or_default().to_string(),
    };
    let radicale = Radicale::start_with(radicale::Options {
        any_password: true,
        ..radicale::Options::default()
    });
    let dav_front = DavFront::start(&radicale.base_url(), Vec::new()).await;
    if resource_login != ResourceLogin::Accepted {
        for resource in &resources {
            dav_front.refuse_login(resource);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    // The existing account's own password, for what has no master login (WebDAV).
    let accounts_csv = dir.path().join("accounts.csv");
    std::fs::write(&accounts_csv, format!("{},{}\n", existing.0, existing.1)).unwrap();
    let toml = support::source_toml(&sim)
        + &format!(
            "[destination]\nkind = \"icewarp\"\nhost = \"127.0.0.1\"\napi_url = \"{api}\"\n\
             admin_email = \"{admin}\"\nallow_plaintext_loopback = true\nca_file = \"{ca}\"\n\
             credentials_report = \"{report}\"\n\
             accounts_csv = \"{accounts}\"\n\
             {imap}webdav_url = \"{dav}\"\n{destination}",
            api = icewarp.api_url(),
            admin = admin,
            ca = dovecot.ca_file.display(),
            report = dir.path().join("credentials.csv").display(),
            accounts = accounts_csv.display(),
            dav = dav_front.base_url(),
        );
    let config = FileConfig::parse(&toml, &dir.path().join("migrate.toml")).unwrap();
    Setup {
        sim,
        icewarp,
        dovecot,
        radicale,
        dir,
        config,
        existing,
        _front: front,
        _dav_front: dav_front,
        not_migrated: Default::default(),
        workloads: match login_policy {
            LoginPolicy::Email => Workload::ALL.to_vec(),
            LoginPolicy::Username => vec![Workload::Mail],
        },
    }
}

/// A front before Dovecot's plaintext IMAP port that drops the authorization identity of SASL
/// PLAIN logins (RFC 4616), so a master login becomes the administrator's own login: a server
/// that ignores the authzid.
async fn authzid_ignoring_front(target: u16) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                let (client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let mut reader = tokio::io::BufReader::new(client_read);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if server_write
                        .write_all(&without_authzid(&line))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                down.abort();
            });
        }
    });
    (port, task)
}

/// `tag AUTHENTICATE PLAIN <base64 authzid NUL authcid NUL password>` with the authzid dropped;
/// any other line as it is.
fn without_authzid(line: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let text = String::from_utf8_lossy(line);
    let Some((head, encoded)) = text.trim_end().rsplit_once(' ') else {
        return line.to_vec();
    };
    if !head.to_ascii_uppercase().ends_with(" AUTHENTICATE PLAIN") {
        return line.to_vec();
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return line.to_vec();
    };
    let Some(first) = decoded.iter().position(|b| *b == 0) else {
        return line.to_vec();
    };
    let reencoded = base64::engine::general_purpose::STANDARD.encode(&decoded[first..]);
    format!("{head} {reencoded}\r\n").into_bytes()
}

impl Setup {
    async fn run(&self) -> (RunSummary, Vec<String>) {
        self.run_pass(false).await
    }

    /// A run; `final_pass`: the cut-over pass (`run --final`).
    async fn run_pass(&self, final_pass: bool) -> (RunSummary, Vec<String>) {
        let (summary, failures) = self.try_run(final_pass).await;
        let summary = summary.unwrap_or_else(|e| panic!("run failed: {e:?}"));
        (summary, failures)
    }

    /// The check before a run (`m365-migrate check`).
    async fn preflight(&self) -> migrator_core::engine::Preflight {
        let destination = Destination::from_config(
            &self.config.destination(),
            Some(Secret::new(MASTER_PASSWORD)),
        )
        .unwrap();
        preflight(
            &self.config.source_config(),
            &Secret::new(self.sim.client_secret()),
            &destination,
            &RunOptions::default(),
        )
        .await
        .unwrap()
    }

    /// `verify` over the runs so far.
    async fn verify(&self) -> migrator_core::engine::Verification {
        let destination = Destination::from_config(
            &self.config.destination(),
            Some(Secret::new(MASTER_PASSWORD)),
        )
        .unwrap();
        let journal = Journal::open(&self.dir.path().join("state")).unwrap();
        verify(
            &self.config.source_config(),
            &Secret::new(self.sim.client_secret()),
            &destination,
            &journal,
            &RunOptions::default(),
        )
        .await
        .unwrap()
    }

    /// The mailboxes (or parts) the runs so far reported not migrated: (user, reason).
    fn not_migrated(&self) -> Vec<(String, String)> {
        self.not_migrated.lock().unwrap().clone()
    }

    /// A run that may stop with an error, and the failures it reported.
    async fn try_run(
        &self,
        final_pass: bool,
    ) -> (
        Result<RunSummary, migrator_core::engine::EngineError>,
        Vec<String>,
    ) {
        let destination = Destination::from_config(
            &self.config.destination(),
            Some(Secret::new(MASTER_PASSWORD)),
        )
        .unwrap();
        let failures = support::Failures::default();
        let seen = failures.reporter();
        let said = self.not_migrated.clone();
        let reporter: std::sync::Arc<dyn Reporter> =
            std::sync::Arc::new(move |e: ProgressEvent| {
                if let ProgressEvent::NotMigrated { user, reason } = &e {
                    said.lock().unwrap().push((user.clone(), reason.clone()));
                }
                seen.report(e);
            });
        let summary = run(
            &self.config.source_config(),
            &Secret::new(self.sim.client_secret()),
            &destination,
            reporter,
            RunControl::new(),
            RunOptions {
                state_dir: Some(self.dir.path().join("state")),
                final_pass,
                workloads: self.workloads.clone(),
                ..RunOptions::default()
            },
        )
        .await;
        (summary, failures.list())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn domains_and_accounts_are_created_data_arrives_and_a_rerun_creates_and_writes_nothing() {
    // Groups are off by default: Group.Read.All is not granted and not needed.
    let s = setup("", &[]).await;
    let (first, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{first:?}");

    let tenant = s.sim.tenant();
    // People whose sign-in works, and shared and room mailboxes (created by the default
    // rules although their sign-in is blocked).
    let enabled: Vec<_> = tenant
        .users
        .iter()
        .filter(|u| u.account_enabled || u.purpose != "user")
        .collect();
    assert_eq!(enabled.len(), 13);
    assert!(
        tenant.users.len() > enabled.len(),
        "the tenant has a disabled user"
    );
    assert!(
        s.icewarp
            .accounts()
            .iter()
            .all(|a| !matches!(a.account_type, 1 | 7)),
        "no group or mailing list without the groups option"
    );
    for domain in DOMAINS {
        assert!(
            s.icewarp.domains().iter().any(|d| d == domain),
            "{domain} in {:?}",
            s.icewarp.domains()
        );
    }
    assert!(
        !s.icewarp
            .domains()
            .iter()
            .any(|d| d.ends_with(".onmicrosoft.com")),
        "Microsoft's routing domain is not created"
    );
    for user in &enabled {
        assert!(s.icewarp.account(&user.mail).is_some(), "{}", user.mail);
        let bodies = support::account_bodies(&s.dovecot, &user.mail).await;
        let expected: usize = user.folders.iter().map(|f| f.messages.len()).sum();
        assert_eq!(bodies.values().sum::<usize>(), expected, "{}", user.mail);
        // Calendars at IceWarp's layout: <webdav>/<email>/...
        let dav = DavAccount::connect(
            &s.radicale.settings(),
            &user.mail,
            DavLogin::new(user.mail.clone(), Secret::new("any")),
        )
        .await
        .unwrap();
        let calendars = dav.collections(CollectionKind::Events).await.unwrap();
        assert_eq!(calendars.len(), user.calendars.len(), "{}", user.mail);
    }
    // The disabled user is skipped by the default rule, not created.
    for user in tenant
        .users
        .iter()
        .filter(|u| !u.account_enabled && u.purpose == "user")
    {
        assert!(s.icewarp.account(&user.mail).is_none(), "{}", user.mail);
    }

    // The pre-existing account is merged: not recreated, its password untouched.
    let existing = s.icewarp.account(&s.existing.0).unwrap();
    assert_eq!(existing.password, s.existing.1);
    let same_mailbox = s
        .icewarp
        .accounts()
        .iter()
        .filter(|a| format!("{}@{}", a.mailbox, a.domain) == s.existing.0)
        .count();
    assert_eq!(same_mailbox, 1);

    // The credentials report lists exactly the new accounts, readable by the owner only.
    let report = s.dir.path().join("credentials.csv");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&report).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let text = std::fs::read_to_string(&report).unwrap();
    let listed: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once(','))
        .filter(|(a, _)| a.contains('@'))
        .collect();
    assert_eq!(listed.len(), enabled.len() - 1, "{text}");
    assert!(!listed.contains_key(s.existing.0.as_str()));

    let before = s.icewarp.requests().len();
    let (second, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new());
    let writes: Vec<_> = s.icewarp.requests()[before..]
        .iter()
        .filter_map(|r| r.command.clone())
        .filter(|c| c.starts_with("create") || c.starts_with("set"))
        .collect();
    assert_eq!(
        writes,
        Vec::<String>::new(),
        "a rerun creates and changes nothing"
    );
    let t = &second.totals;
    assert_eq!(
        (t.messages, t.events, t.contacts, t.tasks, t.failed),
        (0, 0, 0, 0, 0),
        "a rerun writes nothing"
    );
    assert_eq!(std::fs::read_to_string(&report).unwrap(), text);

    // Issue 15: the report said nothing of each mailbox's kind and of what the migration made
    // of it. Read back from the journal, after a rerun that found every account there.
    let journal = migrator_core::journal::Journal::open(&s.dir.path().join("state")).unwrap();
    let report = migrator_core::engine::report::Report::from_journal(&journal).unwrap();
    for user in &enabled {
        let line = report.users.iter().find(|l| l.user == user.mail).unwrap();
        let kind = match user.purpose.as_str() {
            "shared" | "room" | "equipment" => user.purpose.as_str(),
            _ => "user",
        };
        let made = if user.mail == s.existing.0 {
            "merged into an existing account"
        } else {
            "account created"
        };
        assert_eq!(
            (line.kind.as_deref(), line.destination.as_deref()),
            (Some(kind), Some(made)),
            "{}",
            user.mail
        );
        let mail: u64 = user.folders.iter().map(|f| f.messages.len() as u64).sum();
        assert_eq!(line.workloads.get("mail").map_or(0, |c| c.done), mail);
    }
    assert!(
        enabled.iter().any(|u| u.purpose != "user"),
        "the tenant has shared or room mailboxes"
    );
}

/// With `groups = "by-kind"` every mail-enabled group ends as an IceWarp group (Microsoft 365
/// groups) or mailing list with exactly its members, rooms follow `resource_mailboxes =
/// "skip"`, shared mailboxes the default rule; a rerun creates, sets and adds nothing.
#[tokio::test(flavor = "multi_thread")]
async fn groups_and_room_rules_apply_and_a_rerun_changes_nothing() {
    let s = setup(
        "groups = \"by-kind\"\nresource_mailboxes = \"skip\"\n",
        &["Group.Read.All"],
    )
    .await;
    let (first, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{first:?}");
    let tenant = s.sim.tenant();

    for user in &tenant.users {
        let there = s.icewarp.account(&user.mail).is_some();
        let expected = match user.purpose.as_str() {
            "room" => false,
            "shared" => true,
            _ => user.account_enabled,
        };
        assert_eq!(there, expected, "{} ({})", user.mail, user.purpose);
    }
    let shared = tenant.users.iter().find(|u| u.purpose == "shared").unwrap();
    let expected: usize = shared.folders.iter().map(|f| f.messages.len()).sum();
    let bodies = support::account_bodies(&s.dovecot, &shared.mail).await;
    assert_eq!(
        bodies.values().sum::<usize>(),
        expected,
        "the shared mailbox's mail arrived"
    );

    let migrated = |id: &str| {
        tenant
            .users
            .iter()
            .find(|u| u.id == id && s.icewarp.account(&u.mail).is_some())
            .map(|u| u.mail.clone())
    };
    let mut lists = 0;
    for group in &tenant.groups {
        let Some(mail) = &group.mail else {
            assert!(!group.mail_enabled);
            continue;
        };
        let list = s.icewarp.account(mail).unwrap_or_else(|| panic!("{mail}"));
        let unified = group.group_types.iter().any(|t| t == "Unified");
        assert_eq!(list.account_type, if unified { 7 } else { 1 }, "{mail}");
        let mut expected: Vec<String> = group
            .members
            .iter()
            .filter_map(|m| match m {
                GroupMember::User(id) => migrated(id),
                GroupMember::Group(id) => tenant
                    .groups
                    .iter()
                    .find(|g| &g.id == id)
                    .and_then(|g| g.mail.clone()),
                GroupMember::Contact { mail, .. } => Some(mail.clone()),
            })
            .collect();
        let mut held = list.members.clone();
        expected.sort();
        held.sort();
        assert_eq!(held, expected, "{mail}");
        lists += 1;
    }
    assert_eq!(lists, 3);

    let before = s.icewarp.requests().len();
    let (_, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new());
    let writes: Vec<_> = s.icewarp.requests()[before..]
        .iter()
        .filter_map(|r| r.command.clone())
        .filter(|c| c.starts_with("create") || c.starts_with("set") || c.starts_with("add"))
        .collect();
    assert_eq!(
        writes,
        Vec::<String>::new(),
        "a rerun creates and changes nothing"
    );
}

/// The check before a run requires Group.Read.All only when the groups option is on.
#[tokio::test(flavor = "multi_thread")]
async fn group_read_all_is_required_only_with_the_groups_option() {
    for (lines, required) in [("", false), ("groups = \"mailing-lists\"\n", true)] {
        let s = setup(lines, &[]).await;
        let report = s.preflight().await;
        let status = report
            .permissions
            .iter()
            .find(|p| p.name == "Group.Read.All")
            .unwrap();
        assert!(!status.granted(), "the probe found it missing");
        assert_eq!(status.required, required, "{lines}");
        let problem = report.problems.iter().any(|p| p.contains("Group.Read.All"));
        assert_eq!(problem, required, "{:?}", report.problems);
    }
}

/// A guest's outside address must not become a local IceWarp domain that swallows mail meant
/// for the outside, and a user without an Exchange mailbox gets no account; each mailbox's
/// settings are read on that mailbox's own pacer, many at once, not four at a time through
/// one tenant-wide pacer.
#[tokio::test(flavor = "multi_thread")]
async fn a_guest_or_a_mailbox_less_user_gets_no_account_or_domain_and_settings_reads_run_per_mailbox(
) {
    let s = setup_with(
        "",
        &[],
        MasterAnswer::Accepted,
        LoginPolicy::Email,
        |config| {
            config.tenant.guests = 2;
            config.tenant.without_mailbox = 1;
            // Every request waits a little, so reads sent together are seen together.
            config.latency = std::time::Duration::from_millis(40);
        },
    )
    .await;
    let (summary, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{summary:?}");
    let tenant = s.sim.tenant();
    for user in tenant.users.iter().filter(|u| !u.has_mailbox) {
        assert!(s.icewarp.account(&user.mail).is_none(), "{}", user.mail);
    }
    for outside in ["gmail.com", "outlook.com"] {
        assert!(
            !s.icewarp.domains().iter().any(|d| d == outside),
            "{outside} in {:?}",
            s.icewarp.domains()
        );
    }
    // The most mailboxSettings reads in flight at one moment: a tenant-wide pacer allows 4.
    let reads: Vec<_> = s
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path_and_query.contains("/mailboxSettings"))
        .collect();
    let most = reads
        .iter()
        .map(|r| {
            reads
                .iter()
                .filter(|o| o.at <= r.at && r.at < o.finished)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(most > 4, "at most {most} mailboxSettings reads at once");
}

/// `expire_passwords` is a cut-over action: an ordinary run (the first, or any incremental
/// one) expired the generated passwords, locking the users out of what later runs write and
/// the later runs out of IMAP and WebDAV. Only the final pass expires them, for the accounts
/// the migrator created in any run, without IceWarp's expiry mail.
#[tokio::test(flavor = "multi_thread")]
async fn passwords_expire_only_on_the_final_pass() {
    let s = setup("expire_passwords = true\n", &[]).await;
    let (first, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{first:?}");
    assert!(
        s.icewarp.accounts().iter().all(|a| !a.password_expired),
        "an ordinary run expired passwords"
    );
    let created: Vec<String> = std::fs::read_to_string(s.dir.path().join("credentials.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(',').map(|(a, _)| a.to_string()))
        .collect();
    assert!(!created.is_empty());

    let (last, failures) = s.run_pass(true).await;
    assert_eq!(failures, Vec::<String>::new(), "{last:?}");
    for account in s.icewarp.accounts() {
        let generated = created.contains(&account.email());
        assert_eq!(account.password_expired, generated, "{}", account.email());
    }
    let expiries: Vec<String> = s
        .icewarp
        .requests()
        .into_iter()
        .filter(|r| r.command.as_deref() == Some("expireaccountpassword"))
        .map(|r| r.body)
        .collect();
    assert_eq!(expiries.len(), created.len());
    assert!(expiries
        .iter()
        .all(|b| b.contains("<disablenotification>1</disablenotification>")));
}

/// IceWarp documents no IMAP master login: on a server that refuses it, every mailbox failed
/// (or, ignoring the authorization identity, every user's mail went into the administrator's
/// mailbox). With `master_user` set, the preflight appends a probe through the master session
/// and looks for it through the account's own login: a refusal stops the run before any mail
/// moves, naming what to do; a proved master login is used only for accounts without a known
/// password, and the probe is deleted again.
#[tokio::test(flavor = "multi_thread")]
async fn a_master_login_is_used_for_icewarp_only_once_proved() {
    use migrator_core::engine::EngineError;
    let master = format!("master_user = \"{MASTER_USER}\"\n");

    for answer in [MasterAnswer::Refused, MasterAnswer::AuthzidIgnored] {
        let s = setup_with(&master, &[], answer, LoginPolicy::Email, |_| {}).await;
        let err = s.try_run(false).await.0.unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, EngineError::MasterLogin(_)),
            "{answer:?}: {err:?}"
        );
        assert!(
            message.contains("accounts_csv") && message.contains(MASTER_USER),
            "{message}"
        );
        assert!(!message.contains(MASTER_PASSWORD), "{message}");
        if answer == MasterAnswer::Refused {
            assert_eq!(s.dovecot.mail_changes(), Vec::<String>::new());
            continue;
        }
        assert!(message.contains("did not reach"), "{message}");
        // The probe landed in the administrator's own mailbox and was taken out again; no
        // user's mailbox got anything.
        let admin = support::account_bodies(&s.dovecot, MASTER_USER).await;
        assert_eq!(admin.values().sum::<usize>(), 0);
        for user in s.sim.tenant().users.iter().filter(|u| u.account_enabled) {
            let bodies = support::account_bodies(&s.dovecot, &user.mail).await;
            assert_eq!(bodies.values().sum::<usize>(), 0, "{}", user.mail);
        }
    }

    let s = setup_with(
        &master,
        &[],
        MasterAnswer::Accepted,
        LoginPolicy::Email,
        |_| {},
    )
    .await;
    let (summary, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{summary:?}");
    let tenant = s.sim.tenant();
    for user in tenant.users.iter().filter(|u| u.account_enabled) {
        let bodies = support::account_bodies(&s.dovecot, &user.mail).await;
        let expected: usize = user.folders.iter().map(|f| f.messages.len()).sum();
        assert_eq!(
            bodies.values().sum::<usize>(),
            expected,
            "{}: the probe is gone, nothing else arrived twice",
            user.mail
        );
        assert!(bodies
            .keys()
            .all(|b| !String::from_utf8_lossy(b).contains("m365-migrator-probe")));
    }
}

/// Under IceWarp's username login policy the run logs in with each account's `U_Login`;
/// `verify` logged in with the address, so every mailbox was "cannot be verified". It reads
/// the login names as the run does: every message is found, none missing.
#[tokio::test(flavor = "multi_thread")]
async fn verify_logs_in_with_the_icewarp_login_name_under_the_username_policy() {
    let s = setup_with(
        "",
        &[],
        MasterAnswer::Accepted,
        LoginPolicy::Username,
        |_| {},
    )
    .await;
    let (summary, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{summary:?}");
    assert!(summary.totals.messages > 0);

    let result = s.verify().await;
    let problems: Vec<_> = result
        .users
        .iter()
        .filter_map(|u| Some(format!("{}: {}", u.user, u.problem.as_ref()?)))
        .collect();
    // Only the disabled user, whom the default rule did not create, has no login.
    let not_created: Vec<_> = s
        .sim
        .tenant()
        .users
        .iter()
        .filter(|u| !u.account_enabled && u.purpose == "user")
        .map(|u| format!("{0}: no destination password for {0}", u.mail))
        .collect();
    assert_eq!(problems, not_created);
    assert_eq!(present_and_missing(&result), (summary.totals.messages, 0));
}

/// Items verification found present and missing, over every user and folder.
fn present_and_missing(result: &migrator_core::engine::Verification) -> (u64, usize) {
    let folders = || result.users.iter().flat_map(|u| &u.folders);
    (
        folders().map(|f| f.present).sum(),
        folders().map(|f| f.missing.len()).sum(),
    )
}

/// IceWarp's GroupWare folders may have other names in each account (the rename setting takes
/// a `where` scope). The IMAP check took the first account's names for every account, so the
/// other account's mail folder named like its own GroupWare folder was merged into it (and a
/// folder named like the first account's was renamed for nothing). Each account's own names
/// are read, once per account, and the result is stable on a rerun.
#[tokio::test(flavor = "multi_thread")]
async fn icewarp_groupware_folder_names_are_read_per_account_for_imap() {
    use migrator_core::dest::imap::ImapLogin;
    use migrator_core::graph::mail::FolderNode;
    use migrator_core::graph::types::MailFolder;
    use migrator_sim::icewarp::DefaultFolderNames;

    let sim = migrator_sim::SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 2,
            messages_per_user: 1,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let tenant = sim.tenant();
    let (czech, german) = (
        DefaultFolderNames::czech(),
        DefaultFolderNames {
            events: "Kalender".into(),
            ..DefaultFolderNames::english()
        },
    );
    // Each user has a mail folder named like either account's calendar.
    let at = time::OffsetDateTime::now_utc();
    sim.mutate(|t| {
        for (u, user) in t.users.iter_mut().enumerate() {
            let copy = user.clone();
            for (i, name) in [&czech.events, &german.events].into_iter().enumerate() {
                user.folders.push(migrator_sim::MailFolder {
                    id: format!("AAMkAGI2TG93AAAuAAAAAAAgwnames{u}{i}AAA="),
                    parent_id: None,
                    display_name: name.clone(),
                    well_known_name: None,
                    is_hidden: false,
                    is_search_folder: false,
                    messages: vec![migrator_sim::sample_message(&copy, 9100 + i as u64, at)],
                });
            }
        }
    });
    let (first, second) = (tenant.users[0].mail.clone(), tenant.users[1].mail.clone());
    let icewarp = IceWarpSim::start(IceWarpConfig {
        account_folder_names: vec![
            (first.clone(), czech.clone()),
            (second.clone(), german.clone()),
        ],
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let dovecot = Dovecot::start_with(support::dovecot::Options {
        users: support::tenant_accounts(&sim),
        any_password: true,
        ..support::dovecot::Options::default()
    });
    let login = |address: &str| ImapLogin::Password {
        user: address.to_string(),
        password: Secret::new("any"),
    };
    // What IceWarp shows over IMAP: each account's own GroupWare calendar.
    for (address, calendar) in [(&first, &czech.events), (&second, &german.events)] {
        let mut mailbox = migrator_core::dest::imap::ImapMailbox::connect(
            &dovecot.tls_settings(),
            &login(address),
        )
        .await
        .unwrap();
        let node = FolderNode {
            folder: MailFolder {
                id: "groupware".into(),
                display_name: calendar.clone(),
                parent_folder_id: None,
                child_folder_count: 0,
                total_item_count: 0,
                is_hidden: false,
                odata_type: None,
            },
            path: vec![calendar.clone()],
            well_known: None,
            under_well_known: None,
        };
        let created = mailbox.ensure_folders(&[node]).await.unwrap();
        assert!(created[0].is_ok(), "{created:?}");
        mailbox.logout().await;
    }

    let dir = tempfile::tempdir().unwrap();
    let toml = support::source_toml(&sim)
        + &format!(
            "[destination]\nkind = \"icewarp\"\nhost = \"127.0.0.1\"\napi_url = \"{api}\"\n\
             admin_email = \"{admin}\"\nallow_plaintext_loopback = true\nca_file = \"{ca}\"\n\
             credentials_report = \"{report}\"\nimap_port = {port}\n",
            api = icewarp.api_url(),
            admin = IceWarpConfig::default().admin_email,
            ca = dovecot.ca_file.display(),
            report = dir.path().join("credentials.csv").display(),
            port = dovecot.imaps_port,
        );
    let config = FileConfig::parse(&toml, &dir.path().join("migrate.toml")).unwrap();
    let destination = Destination::from_config(
        &config.destination(),
        Some(Secret::new(IceWarpConfig::default().admin_password)),
    )
    .unwrap();
    let options = || RunOptions {
        state_dir: Some(dir.path().join("state")),
        workloads: vec![Workload::Mail],
        outage_wait: std::time::Duration::from_secs(5),
        ..RunOptions::default()
    };
    let folders = |address: String| {
        let settings = dovecot.tls_settings();
        let login = login(&address);
        async move {
            let mut mailbox = migrator_core::dest::imap::ImapMailbox::connect(&settings, &login)
                .await
                .unwrap();
            let mut out = std::collections::BTreeMap::new();
            for f in mailbox.list_folders().await.unwrap() {
                let count = mailbox.message_count(&f.wire).await.unwrap();
                out.insert(f.path.join("/"), count);
            }
            mailbox.logout().await;
            out
        }
    };

    let (summary, failures) = support::run_with(&sim, &destination, options()).await;
    assert_eq!(failures, Vec::<String>::new(), "{summary:?}");
    let mut before = Vec::new();
    for (address, own, other) in [
        (&first, &czech.events, &german.events),
        (&second, &german.events, &czech.events),
    ] {
        let listed = folders(address.clone()).await;
        assert_eq!(
            listed.get(own.as_str()),
            Some(&0),
            "{address}: nothing merged into its GroupWare folder {own}: {listed:?}"
        );
        let renamed: Vec<_> = listed
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{own} ~")))
            .collect();
        assert_eq!(
            renamed.iter().map(|(_, n)| **n).collect::<Vec<_>>(),
            vec![1],
            "{address}: its mail folder {own} under a distinct name: {listed:?}"
        );
        assert_eq!(
            listed.get(other.as_str()),
            Some(&1),
            "{address}: {other} is an ordinary mail folder in this account: {listed:?}"
        );
        before.push(listed);
    }
    let lists = requests_of(&icewarp, "getaccountfolderlist");
    assert_eq!(lists, 2, "one folder list per account");

    let (again, failures) = support::run_with(&sim, &destination, options()).await;
    assert_eq!(failures, Vec::<String>::new(), "{again:?}");
    assert_eq!(again.totals.messages, 0, "a rerun writes nothing");
    for (address, listed) in [&first, &second].into_iter().zip(before) {
        assert_eq!(folders(address.clone()).await, listed, "{address}");
    }
}

/// How many requests of `command` the emulator answered.
fn requests_of(icewarp: &IceWarpSim, command: &str) -> usize {
    icewarp
        .requests()
        .iter()
        .filter(|r| r.command.as_deref() == Some(command))
        .count()
}

/// The events `address` holds in Radicale, over all its calendars (read past the
/// WebDAV front, which may refuse the room's login).
async fn dav_events(s: &Setup, address: &str) -> usize {
    let dav = DavAccount::connect(
        &s.radicale.settings(),
        address,
        DavLogin::new(address.to_string(), Secret::new("any")),
    )
    .await
    .unwrap();
    let mut events = 0;
    for calendar in dav.collections(CollectionKind::Events).await.unwrap() {
        events += dav.list(&calendar).await.unwrap().len();
    }
    events
}

/// Issue 14.5, login accepted: the room becomes an IceWarp resource (`U_Type` 8, `S_Type` 0)
/// and the run migrates it with the account's own login: its bookings arrive, exactly once
/// (a rerun writes nothing).
#[tokio::test(flavor = "multi_thread")]
async fn a_room_becomes_an_icewarp_resource_and_its_bookings_arrive_exactly_once() {
    let s = setup("", &[]).await;
    let (first, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{first:?}");
    let tenant = s.sim.tenant();
    let room = tenant.users.iter().find(|u| u.purpose == "room").unwrap();
    let account = s.icewarp.account(&room.mail).unwrap();
    assert_eq!(
        (
            account.account_type,
            account.properties.get("s_type").map(String::as_str)
        ),
        (8, Some("0"))
    );
    let expected: usize = room.calendars.iter().map(|c| c.events.len()).sum();
    assert!(expected > 0, "the room has bookings");
    assert_eq!(dav_events(&s, &room.mail).await, expected);
    let mail: usize = room.folders.iter().map(|f| f.messages.len()).sum();
    let bodies = support::account_bodies(&s.dovecot, &room.mail).await;
    assert_eq!(bodies.values().sum::<usize>(), mail);

    let (second, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!((second.totals.events, second.totals.messages), (0, 0));
    assert_eq!(dav_events(&s, &room.mail).await, expected, "exactly once");
}

/// The default tenant and servers with resource logins answered by `login`.
async fn resource_setup(login: ResourceLogin) -> Setup {
    let (master, policy) = (MasterAnswer::Accepted, LoginPolicy::Email);
    setup_resources("", &[], master, policy, login, |_| {}).await
}

/// Issue 14.5, login refused: IceWarp documents no login as a resource account. When IMAP
/// and WebDAV refuse it, the room's data is not migrated, with the reason naming the cause
/// and the fix, never as a failure; every other mailbox completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_login_as_a_resource_leaves_it_not_migrated_and_the_others_complete() {
    let s = resource_setup(ResourceLogin::Refused).await;
    let (summary, failures) = s.run().await;
    let not_migrated = s.not_migrated();
    assert_eq!(failures, Vec::<String>::new(), "{summary:?}");
    assert_eq!(summary.totals.failed, 0);
    let tenant = s.sim.tenant();
    let room = tenant.users.iter().find(|u| u.purpose == "room").unwrap();
    assert_eq!(s.icewarp.account(&room.mail).unwrap().account_type, 8);
    assert_eq!(
        not_migrated,
        [(
            room.mail.clone(),
            migrator_core::dest::provision::icewarp::RESOURCE_LOGIN_REFUSED.to_string()
        )],
        "reported once, with the cause and the fix"
    );
    assert_eq!(dav_events(&s, &room.mail).await, 0);

    let journal = Journal::open(&s.dir.path().join("state")).unwrap();
    let report = migrator_core::engine::report::Report::from_journal(&journal).unwrap();
    let line = report.users.iter().find(|l| l.user == room.mail).unwrap();
    assert_eq!(
        line.state,
        migrator_core::dest::provision::icewarp::RESOURCE_LOGIN_REFUSED
    );
    assert!(
        line.state.contains("resources_as = \"user\""),
        "{}",
        line.state
    );
    // The people and the shared mailboxes complete.
    for user in tenant
        .users
        .iter()
        .filter(|u| u.purpose != "room" && (u.account_enabled || u.purpose == "shared"))
    {
        let line = report.users.iter().find(|l| l.user == user.mail).unwrap();
        assert_eq!(line.state, "finished", "{}", user.mail);
        let mail: usize = user.folders.iter().map(|f| f.messages.len()).sum();
        let bodies = support::account_bodies(&s.dovecot, &user.mail).await;
        assert_eq!(bodies.values().sum::<usize>(), mail, "{}", user.mail);
        let expected: usize = user.calendars.iter().map(|c| c.events.len()).sum();
        assert_eq!(dav_events(&s, &user.mail).await, expected, "{}", user.mail);
    }
}

/// Issue 14.5, only the WebDAV login refused: the room's mail is migrated, its bookings,
/// contacts and tasks are not (the report's note says why and what to change), no failure.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_webdav_login_as_a_resource_leaves_its_bookings_not_migrated() {
    let s = resource_setup(ResourceLogin::WebDavRefused).await;
    let (summary, failures) = s.run().await;
    let not_migrated = s.not_migrated();
    assert_eq!(failures, Vec::<String>::new(), "{summary:?}");
    let tenant = s.sim.tenant();
    let room = tenant.users.iter().find(|u| u.purpose == "room").unwrap();
    let said = migrator_core::dest::provision::icewarp::RESOURCE_DAV_LOGIN_REFUSED;
    assert_eq!(not_migrated, [(room.mail.clone(), said.to_string())]);
    let mail: usize = room.folders.iter().map(|f| f.messages.len()).sum();
    let bodies = support::account_bodies(&s.dovecot, &room.mail).await;
    assert_eq!(bodies.values().sum::<usize>(), mail, "its mail arrived");
    assert_eq!(dav_events(&s, &room.mail).await, 0);
    let journal = Journal::open(&s.dir.path().join("state")).unwrap();
    let report = migrator_core::engine::report::Report::from_journal(&journal).unwrap();
    let line = report.users.iter().find(|l| l.user == room.mail).unwrap();
    assert_eq!(
        (line.state.as_str(), line.note.as_deref()),
        ("finished", Some(said))
    );
}

/// A run with resource logins answered by `login`, then `verify`: the run's totals, the
/// verification, and the room's line in it, which must carry `said` as its not-migrated
/// reason and no problem.
async fn verified_after_refused_room(
    login: ResourceLogin,
    said: &str,
) -> (
    RunSummary,
    migrator_core::engine::Verification,
    migrator_core::engine::UserVerification,
    migrator_sim::User,
) {
    let s = resource_setup(login).await;
    let (summary, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{summary:?}");
    let tenant = s.sim.tenant();
    let room = tenant.users.iter().find(|u| u.purpose == "room").unwrap();
    let result = s.verify().await;
    let line = result.users.iter().find(|u| u.user == room.mail).unwrap();
    assert_eq!(
        (line.problem.as_deref(), line.not_migrated.as_deref()),
        (None, Some(said))
    );
    let line = line.clone();
    (summary, result, line, room.clone())
}

/// Issue 14, verify after a refused login as a resource: `verify` reported that it could not
/// log in to the room's account (a verification failure, and one more refused login). It
/// reports the runs' not-migrated reason instead, compares nothing for the room, and the
/// other mailboxes are verified as before.
#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_a_resource_whose_login_was_refused_as_not_migrated() {
    let said = migrator_core::dest::provision::icewarp::RESOURCE_LOGIN_REFUSED;
    let (summary, result, line, _) =
        verified_after_refused_room(ResourceLogin::Refused, said).await;
    assert_eq!(line.folders, Vec::new(), "nothing compared");
    let t = &summary.totals;
    let written = t.messages + t.events + t.contacts + t.tasks;
    assert_eq!(
        present_and_missing(&result),
        (written, 0),
        "the others verified"
    );
}

/// Issue 14, verify after a refused WebDAV login as a resource: `verify` logged in to the
/// room's WebDAV again and reported the whole room as not verifiable. Its mail is verified,
/// its bookings carry the runs' not-migrated reason.
#[tokio::test(flavor = "multi_thread")]
async fn verify_checks_the_mail_of_a_resource_whose_webdav_login_was_refused() {
    let said = migrator_core::dest::provision::icewarp::RESOURCE_DAV_LOGIN_REFUSED;
    let (_, _, line, room) = verified_after_refused_room(ResourceLogin::WebDavRefused, said).await;
    let mail: usize = room.folders.iter().map(|f| f.messages.len()).sum();
    let present: u64 = line.folders.iter().map(|f| f.present).sum();
    assert_eq!(present, mail as u64, "its mail is verified");
    assert!(line
        .folders
        .iter()
        .all(|f| f.missing.is_empty() && f.not_migrated.is_empty()));
}

/// Issue 14, the check before a run said nothing about resources: an administrator learnt
/// only from the run's "not migrated" lines that rooms become IceWarp resources, whose login
/// IceWarp does not document. The check names how many, once (not per mailbox), and the
/// escape hatch, before any data moves; with `resources_as = "user"` it says nothing.
#[tokio::test(flavor = "multi_thread")]
async fn check_names_the_rooms_that_become_icewarp_resources_once_before_any_data_moves() {
    for (lines, expected) in [("", true), ("resources_as = \"user\"\n", false)] {
        let s = setup(lines, &[]).await;
        let rooms = s
            .sim
            .tenant()
            .users
            .iter()
            .filter(|u| u.purpose == "room")
            .count();
        assert_eq!(rooms, 1);
        let report = s.preflight().await;
        let said: Vec<_> = report
            .checks
            .iter()
            .filter(|c| c.advice.contains("resource"))
            .collect();
        if expected {
            assert_eq!(said.len(), 1, "one line per check: {said:#?}");
            let row = said[0];
            assert_eq!(
                (row.name.as_str(), row.verdict),
                (
                    "IceWarp resources",
                    migrator_core::engine::CheckVerdict::Warning
                )
            );
            assert!(
                row.advice
                    .starts_with("1 room becomes an IceWarp resource account ("),
                "{}",
                row.advice
            );
            for part in [
                "documents no IMAP or WebDAV login",
                "\"not migrated\"",
                "resources_as = \"user\"",
            ] {
                assert!(row.advice.contains(part), "{part}: {}", row.advice);
            }
            assert!(!row.blocks(), "the run may go on");
        } else {
            assert_eq!(
                said,
                Vec::<&migrator_core::engine::EndpointCheck>::new(),
                "{lines}"
            );
        }
        assert!(report.problems.iter().all(|p| !p.contains("resource")));
        let writes: Vec<_> = s
            .icewarp
            .requests()
            .iter()
            .filter_map(|r| r.command.clone())
            .filter(|c| c.starts_with("create") || c.starts_with("set") || c.starts_with("add"))
            .collect();
        assert_eq!(writes, Vec::<String>::new(), "nothing written by the check");
    }
}
