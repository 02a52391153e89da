//! IceWarp provisioning against the IceWarp API emulator (migrator-sim): a generated tenant
//! with three domains (plus its onmicrosoft.com one), one account that already exists, and
//! groups that become IceWarp groups and mailing lists (one of which already exists).

use std::collections::BTreeSet;
use std::path::Path;

use migrator_core::config::{GroupRule, ResourcesAs};
use migrator_core::dest::provision::icewarp::{
    IceWarpError, IceWarpProvisioner, IceWarpSettings, FIXTURE_PATHS, SESSION_IDLE,
};
use migrator_core::dest::provision::types::PARSED_PATHS;
use migrator_core::dest::provision::{
    AccountAction, AccountPlan, AccountProvisioner, DirectoryGroup, DirectoryMember, DirectoryUser,
    DomainAction, LoginRoute, MailboxKind, ProvisionOutcome, ResourceKind, TenantDomain,
};
use migrator_core::error::{Classify, ErrorClass};
use migrator_core::graph::users::Group;
use migrator_core::secrets::Secret;
use migrator_core::spec::AccountRules;
use migrator_sim::icewarp::spec::REPLY_EXTRAS;
use migrator_sim::icewarp::xml::Node;
use migrator_sim::icewarp::{
    api_spec, AccountSpec, AliasOverflow, DefaultFolderNames, Fault, IceWarpConfig, IceWarpSim,
    ListSpec, PasswordPolicy, ResourceSpec,
};
use migrator_sim::{generate_tenant, GroupMember, Tenant, TenantSpec};

const DOMAINS: [&str; 3] = ["contoso.com", "fabrikam.com", "northwind.com"];
const ADMIN_PASSWORD: &str = "Admin-Pa55!";

fn generated() -> Tenant {
    generate_tenant(&TenantSpec {
        users: 12,
        messages_per_user: 0,
        domains: DOMAINS.iter().map(|d| d.to_string()).collect(),
        groups: 5,
        ..TenantSpec::default()
    })
}

/// The generated tenant's groups as Graph describes them: Microsoft 365 groups, a
/// distribution list, a mail-enabled security group and a security group without mail.
fn groups(t: &Tenant) -> Vec<DirectoryGroup> {
    t.groups
        .iter()
        .filter_map(|g| {
            let kind = Group {
                id: g.id.clone(),
                display_name: Some(g.display_name.clone()),
                mail: g.mail.clone(),
                mail_enabled: Some(g.mail_enabled),
                security_enabled: Some(g.security_enabled),
                group_types: g.group_types.clone(),
                proxy_addresses: g.proxy_addresses.clone(),
            }
            .kind()?;
            let members = g
                .members
                .iter()
                .map(|m| match m {
                    GroupMember::User(id) => DirectoryMember::User {
                        id: id.clone(),
                        mail: None,
                    },
                    GroupMember::Group(id) => DirectoryMember::Group { id: id.clone() },
                    GroupMember::Contact { mail, .. } => {
                        DirectoryMember::Contact { mail: mail.clone() }
                    }
                })
                .collect();
            Some(DirectoryGroup {
                id: g.id.clone(),
                display_name: Some(g.display_name.clone()),
                mail: g.mail.clone(),
                proxy_addresses: g.proxy_addresses.clone(),
                kind,
                members,
            })
        })
        .collect()
}

/// Twelve users over three domains, each with a same-domain alias (`<first name>@domain`)
/// besides the onmicrosoft.com one the generator gives; user 10 has sign-in blocked.
fn tenant() -> (Vec<DirectoryUser>, Vec<TenantDomain>) {
    let t = generated();
    let users = t
        .users
        .iter()
        .map(|u| {
            let (local, domain) = u.mail.split_once('@').unwrap();
            let first = local.split('.').next().unwrap();
            let mut proxies = u.proxy_addresses.clone();
            proxies.push(format!("smtp:{first}{}@{domain}", local.len()));
            DirectoryUser {
                id: u.id.clone(),
                user_principal_name: u.user_principal_name.clone(),
                mail: Some(u.mail.clone()),
                display_name: Some(u.display_name.clone()),
                account_enabled: Some(u.account_enabled),
                proxy_addresses: proxies,
                kind: MailboxKind::User,
            }
        })
        .collect();
    let domains = t
        .domains
        .iter()
        .map(|d| TenantDomain {
            name: d.id.clone(),
            is_verified: d.is_verified,
        })
        .collect();
    (users, domains)
}

fn policy() -> PasswordPolicy {
    PasswordPolicy {
        enabled: true,
        min_length: 14,
        digits: 3,
        non_alphanumeric: 2,
        alpha: 4,
        upper_alpha: 2,
        user_alias: true,
    }
}

/// The emulator with user 0's address already taken by an account with its own password.
async fn emulator(users: &[DirectoryUser], strict: bool) -> IceWarpSim {
    IceWarpSim::start(IceWarpConfig {
        admin_password: ADMIN_PASSWORD.into(),
        accounts: vec![AccountSpec {
            email: users[0].mail.clone().unwrap(),
            name: "Pre Existing".into(),
            password: "Existing-pass-1".into(),
            aliases: vec!["keepme".into()],
        }],
        policy: policy(),
        properties: vec![(
            "C_System_Services_IMAP_MaxAppendsPerMinute".into(),
            "120".into(),
        )],
        folder_names: DefaultFolderNames::czech(),
        strict_schema: strict,
        ..IceWarpConfig::default()
    })
    .await
    .unwrap()
}

fn settings(sim: &IceWarpSim, report: &Path, known: &[&str]) -> IceWarpSettings {
    IceWarpSettings {
        api_url: sim.api_url(),
        admin_email: "admin@icewarp.test".into(),
        ca_file: None,
        allow_plaintext_loopback: true,
        credentials_report: report.to_path_buf(),
        known_passwords: known.iter().map(|k| k.to_string()).collect(),
        master_user: false,
        attempts: 3,
        session_idle: SESSION_IDLE,
        account_quota_kb: None,
    }
}

async fn provision(
    sim: &IceWarpSim,
    report: &Path,
    users: &[DirectoryUser],
    domains: &[TenantDomain],
) -> (IceWarpProvisioner, ProvisionOutcome) {
    provision_with(sim, report, users, &[], domains, GroupRule::Skip).await
}

async fn provision_with(
    sim: &IceWarpSim,
    report: &Path,
    users: &[DirectoryUser],
    groups: &[DirectoryGroup],
    domains: &[TenantDomain],
    rule: GroupRule,
) -> (IceWarpProvisioner, ProvisionOutcome) {
    let known = [users[0].mail.as_deref().unwrap()];
    let p =
        IceWarpProvisioner::connect(&settings(sim, report, &known), Secret::new(ADMIN_PASSWORD))
            .await
            .unwrap();
    let rules = AccountRules {
        groups: rule,
        ..AccountRules::default()
    };
    let outcome = p.provision(users, groups, domains, &rules).await.unwrap();
    (p, outcome)
}

/// The distribution list `allstaff1@contoso.com` already exists as a mailing list, with an
/// outside member of its own and one the tenant's list also has.
fn existing_list(t: &Tenant) -> ListSpec {
    ListSpec {
        email: "allstaff1@contoso.com".into(),
        name: "All Staff (old)".into(),
        account_type: 1,
        members: vec!["keep@outside.example".into(), t.users[1].mail.clone()],
    }
}

/// A tenant, the emulator, and where the credentials report goes (in a temporary folder).
async fn setup(
    strict: bool,
) -> (
    Vec<DirectoryUser>,
    Vec<TenantDomain>,
    IceWarpSim,
    std::path::PathBuf,
    tempfile::TempDir,
) {
    let (users, domains) = tenant();
    let sim = emulator(&users, strict).await;
    let dir = tempfile::tempdir().unwrap();
    (
        users,
        domains,
        sim,
        dir.path().join("new-accounts.csv"),
        dir,
    )
}

fn csv_rows(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("address,password"));
    lines
        .map(|l| {
            let (a, p) = l.split_once(',').unwrap();
            (a.to_string(), p.to_string())
        })
        .collect()
}

fn count(sim: &IceWarpSim, command: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.command.as_deref() == Some(command))
        .count()
}

#[tokio::test]
async fn a_tenant_is_provisioned_merged_and_a_rerun_creates_nothing() {
    let (users, domains, sim, report, _dir) = setup(true).await;
    let (p, outcome) = provision(&sim, &report, &users, &domains).await;

    // Domains: the three verified ones, never onmicrosoft.com.
    assert_eq!(sim.domains(), DOMAINS);
    let created_domains: Vec<&str> = outcome
        .domains
        .iter()
        .filter(|(_, a)| *a == DomainAction::Created)
        .map(|(d, _)| d.as_str())
        .collect();
    assert_eq!(created_domains, ["fabrikam.com", "northwind.com"]);

    // One outcome per user, in order; user 10 is disabled and skipped by the default rule.
    assert_eq!(outcome.accounts.len(), users.len());
    let disabled: Vec<usize> = (0..users.len())
        .filter(|&i| users[i].account_enabled == Some(false))
        .collect();
    assert_eq!(disabled, [10]);
    assert!(
        matches!(&outcome.accounts[10].action, AccountAction::Skipped { reason } if reason.contains("disabled"))
    );
    assert!(sim.account(users[10].mail.as_deref().unwrap()).is_none());

    // The pre-existing account: merged, its password and name untouched, its own alias kept,
    // the user's alias added, no second account.
    let merged = &outcome.accounts[0];
    assert_eq!(merged.action, AccountAction::Merged);
    assert_eq!(merged.login, LoginRoute::AccountsCsv);
    let old = sim.account(users[0].mail.as_deref().unwrap()).unwrap();
    assert_eq!(
        (old.password.as_str(), old.name.as_str()),
        ("Existing-pass-1", "Pre Existing")
    );
    assert!(old.aliases.contains(&"keepme".to_string()));
    assert_eq!(merged.aliases_added.len(), 1);
    assert_eq!(
        sim.account(&merged.aliases_added[0]).unwrap().email(),
        old.email()
    );

    // Every enabled user has exactly one account, answering to its primary and its alias.
    let enabled = users.len() - 1;
    assert_eq!(sim.accounts().len(), enabled);
    for (user, result) in users
        .iter()
        .zip(&outcome.accounts)
        .filter(|(u, _)| u.account_enabled == Some(true))
    {
        let mail = user.mail.as_deref().unwrap();
        let account = sim
            .account(mail)
            .unwrap_or_else(|| panic!("{mail} missing"));
        assert_eq!(result.address.as_deref(), Some(mail));
        let alias = user
            .proxy_addresses
            .last()
            .unwrap()
            .trim_start_matches("smtp:");
        assert_eq!(
            sim.account(alias).map(|a| a.email()),
            Some(account.email()),
            "{alias}"
        );
        // The onmicrosoft.com address is left out and says nothing.
        assert!(
            result.notes.iter().all(|n| !n.contains("onmicrosoft")),
            "{:?}",
            result.notes
        );
    }

    // The credentials report: 0600, the new accounts only, each the password the server
    // holds, each within the policy.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&report).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let rows = csv_rows(&report);
    let created: BTreeSet<&str> = outcome.created().into_iter().collect();
    assert_eq!(created.len(), enabled - 1);
    assert_eq!(
        rows.iter()
            .map(|(a, _)| a.as_str())
            .collect::<BTreeSet<_>>(),
        created
    );
    for (address, password) in &rows {
        let account = sim.account(address).unwrap();
        assert_eq!(&account.password, password, "{address}");
        let mut names = account.aliases.clone();
        names.push(account.mailbox.clone());
        assert_eq!(policy().violation(password, &names), None, "{address}");
        assert_eq!(
            outcome
                .accounts
                .iter()
                .find(|a| a.address.as_deref() == Some(address))
                .unwrap()
                .login,
            LoginRoute::GeneratedPassword
        );
    }

    // Settings read before a run, and the account's own (localised) default folders.
    let settings = p.settings_report().await.unwrap();
    assert_eq!(settings.max_appends_per_minute, Some(120));
    assert_eq!(
        (
            settings.password_policy.min_length,
            settings.password_policy.digits,
            settings.password_policy.non_alphanumeric
        ),
        (14, 3, 2)
    );
    assert!(settings.password_policy.no_user_names);
    assert!(
        settings
            .advice
            .iter()
            .any(|a| a.contains("MaxAppendsPerMinute")),
        "{:?}",
        settings.advice
    );
    let folders = p.default_folders(&rows[0].0).await.unwrap();
    assert_eq!(folders["sentitems"], "Odeslané");
    assert_eq!(folders["deleteditems"], "Koš");
    assert_eq!(folders["calendar"], "Kalendář");
    assert_eq!(folders["inbox"], "Inbox");

    // Passwords of new accounts expire (no expiry mail); the pre-existing one is left alone.
    let (expired, failures) = p.expire_passwords(&outcome).await;
    assert!(failures.is_empty());
    assert_eq!(expired, created.len());
    assert!(sim
        .requests()
        .iter()
        .filter(|r| r.command.as_deref() == Some("expireaccountpassword"))
        .all(|r| r
            .body
            .contains("<disablenotification>1</disablenotification>")));
    assert!(sim
        .accounts()
        .iter()
        .all(|a| a.password_expired == created.contains(a.email().as_str())));
    p.client().logout().await;

    // A rerun creates and changes nothing, and keeps the report as it was.
    let before = std::fs::read(&report).unwrap();
    let writes = |sim: &IceWarpSim| {
        ["createdomain", "createaccount", "setaccountproperties"].map(|c| count(sim, c))
    };
    let writes_before = writes(&sim);
    let (_, again) = provision(&sim, &report, &users, &domains).await;
    assert_eq!(writes(&sim), writes_before);
    assert!(again
        .domains
        .iter()
        .all(|(_, a)| *a == DomainAction::Existing));
    assert!(again
        .accounts
        .iter()
        .filter(|a| !matches!(a.action, AccountAction::Skipped { .. }))
        .all(|a| a.action == AccountAction::Merged && a.aliases_added.is_empty()));
    assert_eq!(std::fs::read(&report).unwrap(), before);
    assert_eq!(sim.accounts().len(), enabled);
}

#[tokio::test]
async fn a_wrong_admin_password_is_one_clear_fatal_error() {
    let (users, _) = tenant();
    let sim = emulator(&users, true).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.csv");
    let err =
        IceWarpProvisioner::connect(&settings(&sim, &report, &[]), Secret::new("Wrong-pa55word"))
            .await
            .unwrap_err();
    assert!(matches!(err, IceWarpError::Login { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Fatal);
    let message = err.to_string();
    assert!(
        message.contains("admin@icewarp.test") && !message.contains("Wrong-pa55word"),
        "{message}"
    );
    assert_eq!(sim.requests().len(), 1, "a wrong password is not retried");
    assert!(
        !report.exists(),
        "nothing is written before the login works"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_a_refused_account_fails_alone() {
    let (users, domains, sim, report, _dir) = setup(true).await;
    sim.inject(Fault::Http500, 1, Some("createdomain"));
    sim.inject(Fault::ResultZero, 2, Some("createaccount"));
    sim.inject(Fault::Http500, 1, Some("createaccount"));
    let refused = users[3].mail.clone().unwrap();
    sim.refuse_account(&refused);
    let (_, outcome) = provision(&sim, &report, &users, &domains).await;

    assert_eq!(sim.domains(), DOMAINS);
    let failed: Vec<_> = outcome
        .accounts
        .iter()
        .filter(|a| matches!(a.action, AccountAction::Failed { .. }))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].address.as_deref(), Some(refused.as_str()));
    let AccountAction::Failed { reason, class } = &failed[0].action else {
        unreachable!()
    };
    assert_eq!(*class, ErrorClass::SkipItem);
    assert!(
        reason.contains("createaccount") && reason.contains("3 times"),
        "{reason}"
    );
    assert_eq!(failed[0].login, LoginRoute::None);
    // Everyone else is there; the refused one is not on the server. Its password was
    // recorded before createaccount, as every new account's is (a row for an account that
    // does not exist lets nobody in).
    assert_eq!(sim.accounts().len(), users.len() - 2);
    assert!(sim.account(&refused).is_none());
    let rows = csv_rows(&report);
    assert_eq!(rows.len(), users.len() - 2);
    assert_eq!(rows.iter().filter(|(a, _)| *a == refused).count(), 1);
    // The refused account was tried 3 times with its aliases and 3 times without.
    let outcomes: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| {
            r.command.as_deref() == Some("createaccount") && r.outcome.contains("E_PLAN_EXCEEDED")
        })
        .map(|r| r.outcome.clone())
        .collect();
    assert_eq!(outcomes.len(), 6);
    let injected = sim
        .requests()
        .iter()
        .filter(|r| r.outcome.starts_with("injected"))
        .count();
    assert_eq!(injected, 4);
}

/// Every request the client sends validates against its command's request schema in
/// icewarp-api.openapi.json, every reply it got validates against the response schema, and
/// every element path it reads exists in the response schema.
#[tokio::test]
async fn every_request_and_parsed_reply_follows_the_specification() {
    let (users, domains) = tenant();
    let t = generated();
    let sim = IceWarpSim::start(IceWarpConfig {
        admin_password: ADMIN_PASSWORD.into(),
        accounts: vec![AccountSpec {
            email: users[0].mail.clone().unwrap(),
            name: "Pre Existing".into(),
            password: "Existing-pass-1".into(),
            aliases: vec!["keepme".into()],
        }],
        lists: vec![existing_list(&t)],
        policy: policy(),
        strict_schema: false,
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("new-accounts.csv");
    let (p, outcome) = provision_with(
        &sim,
        &report,
        &users,
        &groups(&t),
        &domains,
        GroupRule::ByKind,
    )
    .await;
    p.settings_report().await.unwrap();
    let created = users[1].mail.clone().unwrap();
    assert!(p.limits_advice(&[created], &[]).await.is_empty());
    p.default_folders(users[1].mail.as_deref().unwrap())
        .await
        .unwrap();
    assert!(p.expire_passwords(&outcome).await.1.is_empty());
    p.client().logout().await;

    let log = sim.requests();
    let mut sent = BTreeSet::new();
    for r in &log {
        let command = r.command.clone().unwrap_or_default();
        assert!(api_spec().has_command(&command), "{command}");
        assert!(
            r.schema_violations.is_empty(),
            "{command}: {:?}\n{}",
            r.schema_violations,
            r.body.replace(ADMIN_PASSWORD, "*")
        );
        let reply = Node::parse(&r.response).unwrap();
        if reply.attr("type") == Some("result") {
            let violations = api_spec().validate_response(&command, &reply);
            assert!(violations.is_empty(), "{command}: {violations:?}");
        }
        sent.insert(command);
    }
    for (command, path) in PARSED_PATHS {
        assert!(
            api_spec().response_has_path(command, path),
            "{command}: {path} is not in the specification"
        );
        assert!(sent.contains(*command), "{command} was not exercised");
    }
    // What the client reads beyond the specification is what the emulator adds from IceWarp's
    // published replies.
    for (command, path) in FIXTURE_PATHS {
        let name = path.strip_prefix("query/result/").unwrap();
        assert!(
            REPLY_EXTRAS.contains(&(*command, name)),
            "{command}: {path} has no published source"
        );
    }
}

#[tokio::test]
async fn a_user_whose_address_is_an_alias_of_an_account_is_merged_into_it() {
    let (users, domains) = tenant();
    let mail = users[1].mail.clone().unwrap();
    let (local, domain) = mail.split_once('@').unwrap();
    let legacy = format!("legacy@{domain}");
    let sim = IceWarpSim::start(IceWarpConfig {
        admin_password: ADMIN_PASSWORD.into(),
        accounts: vec![AccountSpec {
            email: legacy.clone(),
            name: "Legacy".into(),
            password: "Legacy-pass-1".into(),
            aliases: vec![local.to_string()],
        }],
        policy: policy(),
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.csv");
    let (_, outcome) = provision(&sim, &report, &users[..2], &domains).await;

    let merged = &outcome.accounts[1];
    assert_eq!(merged.action, AccountAction::Merged);
    assert_eq!(merged.address.as_deref(), Some(legacy.as_str()));
    assert_eq!(merged.login, LoginRoute::None);
    assert!(
        merged
            .notes
            .iter()
            .any(|n| n.contains("no password is known")),
        "{:?}",
        merged.notes
    );
    let account = sim.account(&mail).unwrap();
    assert_eq!(
        (account.email(), account.password.as_str()),
        (legacy.clone(), "Legacy-pass-1")
    );
    assert_eq!(sim.accounts().len(), 2);
    assert_eq!(count(&sim, "createaccount"), 1);
    assert_eq!(csv_rows(&report).len(), 1);
}

/// `user0000@contoso.com`, ... : `n` accounts that exist.
fn numbered_accounts(n: usize) -> Vec<AccountSpec> {
    (0..n)
        .map(|i| AccountSpec {
            email: format!("user{i:04}@contoso.com"),
            name: format!("User {i}"),
            password: "x".into(),
            aliases: vec![],
        })
        .collect()
}

#[tokio::test]
async fn account_lists_are_read_page_by_page() {
    let sim = IceWarpSim::start(IceWarpConfig {
        admin_password: ADMIN_PASSWORD.into(),
        accounts: numbered_accounts(1201),
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = IceWarpProvisioner::connect(
        &settings(&sim, &dir.path().join("r.csv"), &[]),
        Secret::new(ADMIN_PASSWORD),
    )
    .await
    .unwrap();
    let accounts = p.client().accounts("contoso.com").await.unwrap();
    assert_eq!(accounts.len(), 1201);
    assert!(accounts.contains("user0000@contoso.com") && accounts.contains("user1200@contoso.com"));
    let offsets: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.command.as_deref() == Some("getaccountsinfolist"))
        .map(|r| {
            Node::parse(&r.body)
                .unwrap()
                .text_at("query/commandparams/offset")
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(offsets, ["0", "500", "1000"]);
}

/// Every mail-enabled group ends as an IceWarp group (Microsoft 365 groups) or mailing list
/// (the others) with exactly its members; the list that existed is merged (its own member
/// kept, none twice); a rerun creates and adds nothing.
#[tokio::test]
async fn groups_become_lists_with_exactly_their_members_and_a_rerun_adds_nothing() {
    let (users, domains) = tenant();
    let t = generated();
    let existing = existing_list(&t);
    let sim = IceWarpSim::start(IceWarpConfig {
        admin_password: ADMIN_PASSWORD.into(),
        lists: vec![existing.clone()],
        policy: policy(),
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.csv");
    let directory_groups = groups(&t);
    let (_, outcome) = provision_with(
        &sim,
        &report,
        &users,
        &directory_groups,
        &domains,
        GroupRule::ByKind,
    )
    .await;
    assert_eq!(
        outcome.lists.len(),
        4,
        "the security group without mail is not a list"
    );

    // What each group should hold, read from the tenant itself: enabled members' addresses,
    // nested groups' addresses, contacts' addresses (user 10's sign-in is blocked: skipped).
    let address = |m: &GroupMember| match m {
        GroupMember::User(id) => t
            .users
            .iter()
            .find(|u| &u.id == id && u.account_enabled)
            .map(|u| u.mail.clone()),
        GroupMember::Group(id) => t
            .groups
            .iter()
            .find(|g| &g.id == id)
            .and_then(|g| g.mail.clone()),
        GroupMember::Contact { mail, .. } => Some(mail.clone()),
    };
    let mut checked = 0;
    for g in t.groups.iter().filter(|g| g.mail_enabled) {
        let mail = g.mail.clone().unwrap();
        let account = sim
            .account(&mail)
            .unwrap_or_else(|| panic!("{mail} missing"));
        let expected_type = if g.group_types.iter().any(|t| t == "Unified") {
            7
        } else {
            1
        };
        let mut expected: BTreeSet<String> = g.members.iter().filter_map(address).collect();
        if mail == existing.email {
            // Merged: never recreated, its type and own member kept.
            assert_eq!(account.name, existing.name);
            expected.insert("keep@outside.example".into());
        } else {
            assert_eq!(account.name, g.display_name, "{mail}");
        }
        assert_eq!(account.account_type, expected_type, "{mail}");
        let held: BTreeSet<String> = account.members.iter().cloned().collect();
        assert_eq!(held.len(), account.members.len(), "{mail}: no member twice");
        assert_eq!(held, expected, "{mail}");
        checked += 1;
    }
    assert_eq!(checked, 4);
    let merged: Vec<_> = outcome
        .lists
        .iter()
        .filter(|l| l.action == AccountAction::Merged)
        .collect();
    assert_eq!(merged.len(), 1);
    assert!(!merged[0].members_added.contains(&t.users[1].mail));
    // No password for lists: the credentials report lists people only.
    assert!(csv_rows(&report)
        .iter()
        .all(|(a, _)| sim.account(a).is_some_and(|acc| acc.account_type == 0)));

    let writes = |sim: &IceWarpSim| ["createaccount", "addaccountmembers"].map(|c| count(sim, c));
    let before = writes(&sim);
    let (_, again) = provision_with(
        &sim,
        &report,
        &users,
        &directory_groups,
        &domains,
        GroupRule::ByKind,
    )
    .await;
    assert_eq!(writes(&sim), before, "a rerun creates and adds nothing");
    assert!(again
        .lists
        .iter()
        .all(|l| l.action == AccountAction::Merged && l.members_added.is_empty()));

    // With groups off nothing is read or created for them.
    let (_, off) = provision_with(
        &sim,
        &report,
        &users,
        &directory_groups,
        &domains,
        GroupRule::Skip,
    )
    .await;
    assert!(off.lists.is_empty());
    assert_eq!(writes(&sim), before);
}

/// A group whose address an ordinary account holds fails alone and leaves the account as it
/// is.
#[tokio::test]
async fn a_group_address_held_by_a_user_account_is_not_touched() {
    let (users, domains) = tenant();
    let t = generated();
    let sim = IceWarpSim::start(IceWarpConfig {
        admin_password: ADMIN_PASSWORD.into(),
        accounts: vec![AccountSpec {
            email: "project1@contoso.com".into(),
            name: "A person".into(),
            password: "Person-pass-1".into(),
            aliases: vec![],
        }],
        policy: policy(),
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, outcome) = provision_with(
        &sim,
        &dir.path().join("r.csv"),
        &users,
        &groups(&t),
        &domains,
        GroupRule::MailingLists,
    )
    .await;
    let failed: Vec<_> = outcome
        .lists
        .iter()
        .filter(|l| matches!(l.action, AccountAction::Failed { .. }))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].address.as_deref(), Some("project1@contoso.com"));
    let person = sim.account("project1@contoso.com").unwrap();
    assert_eq!((person.account_type, person.members.len()), (0, 0));
    // The other lists are there, and the nested group is still a member of All Staff.
    let staff = sim.account("allstaff1@contoso.com").unwrap();
    assert_eq!(staff.account_type, 1);
    assert!(staff.members.contains(&"project1@contoso.com".to_string()));
}

/// A front on 127.0.0.1 that answers every request `status` with `Location: location`.
async fn redirecting_front(status: u16, location: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/icewarpapi/", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("location", location)],
                "",
            )
        }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// Issue 19 item 2: a 307/308 from the admin API would make an HTTP client replay the POST,
/// with the administrator's password in it, to wherever `Location` points (here the real API,
/// which would accept it). The client follows no redirect and says why.
#[tokio::test]
async fn a_redirecting_admin_api_gets_no_credentials_and_is_a_clear_error() {
    let (users, _) = tenant();
    let sim = emulator(&users, true).await;
    let dir = tempfile::tempdir().unwrap();
    for status in [301, 302, 307, 308] {
        let (front, task) = redirecting_front(status, sim.api_url()).await;
        let mut s = settings(&sim, &dir.path().join("r.csv"), &[]);
        s.api_url = front;
        let err = IceWarpProvisioner::connect(&s, Secret::new(ADMIN_PASSWORD))
            .await
            .unwrap_err();
        task.abort();
        assert!(
            matches!(err, IceWarpError::Redirect { .. }),
            "{status}: {err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Fatal);
        assert!(err.to_string().contains(&sim.api_url()), "{err}");
    }
    assert!(
        sim.requests().is_empty(),
        "the redirect target got a request"
    );
}

/// An account that exists before the run, named after its address.
fn existing_account(email: &str, password: &str, aliases: &[&str]) -> AccountSpec {
    AccountSpec {
        email: email.into(),
        name: format!("Existing {email}"),
        password: password.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
    }
}

fn account_plan(user: &str, address: &str, aliases: &[&str]) -> AccountPlan {
    AccountPlan {
        user_id: user.into(),
        address: address.into(),
        display_name: format!("User {user}"),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        resource: None,
    }
}

/// The emulator started with `config` (the administrator's password and the test's password
/// policy set), and a provisioner connected to it whose credentials report is in the returned
/// temporary folder.
async fn connected(config: IceWarpConfig) -> (IceWarpSim, IceWarpProvisioner, tempfile::TempDir) {
    let sim = IceWarpSim::start(IceWarpConfig {
        admin_password: ADMIN_PASSWORD.into(),
        policy: policy(),
        ..config
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = connect(&sim, &dir.path().join("r.csv")).await;
    (sim, p, dir)
}

async fn connect(sim: &IceWarpSim, report: &Path) -> IceWarpProvisioner {
    IceWarpProvisioner::connect(&settings(sim, report, &[]), Secret::new(ADMIN_PASSWORD))
        .await
        .unwrap()
}

/// A server that gives fewer items per page than asked for: the listing went on only while
/// pages were full, so accounts past the first page were not seen (and would have been
/// "created" again) and domains past it were "missing". Accounts are paged by `overallcount`,
/// domains (whose replies carry none) to an empty page.
#[tokio::test]
async fn a_server_that_caps_its_pages_is_listed_to_the_end() {
    let sim = IceWarpSim::start(IceWarpConfig {
        admin_password: ADMIN_PASSWORD.into(),
        domains: (0..7).map(|i| format!("d{i}.example")).collect(),
        accounts: numbered_accounts(23),
        page_limit: Some(5),
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = connect(&sim, &dir.path().join("r.csv")).await;
    let accounts = p.client().accounts("contoso.com").await.unwrap();
    assert_eq!(accounts.len(), 23);
    assert_eq!(count(&sim, "getaccountsinfolist"), 5);
    let domains = p.client().domains().await.unwrap();
    assert_eq!(domains.len(), 8);
}

/// IceWarp documents no error uid for an expired session: a session that ended is renewed
/// whatever uid the server answers (the client looked for "session" in it), and once only.
#[tokio::test]
async fn an_expired_session_is_renewed_whatever_the_error_uid() {
    let sim = IceWarpSim::start(IceWarpConfig {
        admin_password: ADMIN_PASSWORD.into(),
        domains: vec!["contoso.com".into()],
        session_error_uid: "E_AUTH".into(),
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = connect(&sim, &dir.path().join("r.csv")).await;
    sim.expire_sessions();
    let domains = p.client().domains().await.unwrap();
    assert!(domains.contains("contoso.com"));
    assert_eq!(count(&sim, "authenticate"), 2);
    // The login asks for IceWarp's long session (24 days, OpenAPI /Authenticate).
    let login = sim
        .requests()
        .into_iter()
        .find(|r| r.command.as_deref() == Some("authenticate"))
        .unwrap();
    assert!(login.body.contains("<persistentlogin>1</persistentlogin>"));
    // An error that comes back on a fresh session is the command's own: reported, once.
    let err = p.default_folders("nobody@contoso.com").await.unwrap_err();
    assert!(matches!(err, IceWarpError::Api { .. }), "{err:?}");
    assert_eq!(count(&sim, "authenticate"), 3);
    // A session left unused for the idle time (zero here) is replaced before the next request.
    let mut idle = settings(&sim, &dir.path().join("r.csv"), &[]);
    idle.session_idle = std::time::Duration::ZERO;
    let q = IceWarpProvisioner::connect(&idle, Secret::new(ADMIN_PASSWORD))
        .await
        .unwrap();
    let (logins, lists) = (
        count(&sim, "authenticate"),
        count(&sim, "getdomainsinfolist"),
    );
    q.client().domains().await.unwrap();
    q.client().domains().await.unwrap();
    let lists = count(&sim, "getdomainsinfolist") - lists;
    assert!(lists >= 2);
    assert_eq!(count(&sim, "authenticate") - logins, lists);
}

/// A createdomain whose answer was lost (the server created it, the client saw HTTP 500) is
/// tried again and answered 0 (the domain exists): the domain is looked up by name, not
/// reported failed with all its users.
#[tokio::test]
async fn a_domain_created_by_a_try_whose_answer_was_lost_is_no_failure() {
    let (users, domains, sim, report, _dir) = setup(true).await;
    sim.inject(Fault::LostReply, 1, Some("createdomain"));
    let (_, outcome) = provision(&sim, &report, &users, &domains).await;
    assert_eq!(sim.domains(), DOMAINS);
    assert!(
        outcome
            .domains
            .iter()
            .all(|(_, a)| !matches!(a, DomainAction::Failed { .. })),
        "{:?}",
        outcome.domains
    );
    assert!(outcome
        .accounts
        .iter()
        .all(|a| !matches!(a.action, AccountAction::Failed { .. })));
}

/// A createaccount whose answer was lost, whose check of the account list failed too, was
/// tried again, answered 0 (the account exists) and reported failed, while the server held
/// the account with a password recorded nowhere. The password is recorded before
/// createaccount, and a 0 is followed by a lookup of the account.
#[tokio::test]
async fn an_account_created_by_a_try_whose_answer_was_lost_keeps_its_recorded_password() {
    let (_, _, sim, report, _dir) = setup(true).await;
    let p = connect(&sim, &report).await;
    let domains = p
        .ensure_domains(&["fabrikam.com".to_string()])
        .await
        .unwrap();
    assert_eq!(domains[0].1, DomainAction::Created);
    let first = p
        .ensure_account(&account_plan("1", "first@fabrikam.com", &[]))
        .await
        .unwrap();
    assert_eq!(first.action, AccountAction::Created);
    sim.inject(Fault::LostReply, 1, Some("createaccount"));
    sim.inject(Fault::Http500, 3, Some("getaccountsinfolist"));
    let outcome = p
        .ensure_account(&account_plan(
            "2",
            "second@fabrikam.com",
            &["two@fabrikam.com"],
        ))
        .await
        .unwrap();
    assert_eq!(outcome.action, AccountAction::Created, "{outcome:?}");
    let account = sim.account("second@fabrikam.com").unwrap();
    let rows = csv_rows(&report);
    let recorded: Vec<&str> = rows
        .iter()
        .filter(|(a, _)| a == "second@fabrikam.com")
        .map(|(_, p)| p.as_str())
        .collect();
    assert_eq!(recorded, [account.password.as_str()]);
    assert_eq!(sim.accounts().len(), 3);
}

/// Merges go only into the account that is the user's: by the user's primary address, into a
/// user account (`U_Type` 0) whose own aliases name it. A mailing list holding the address, or
/// an account answering to it through a pattern alias, is a reported conflict with nothing
/// written; a user whose *alias* is another account's address was merged into that account.
#[tokio::test]
async fn a_user_is_merged_only_into_an_account_that_is_its_own() {
    let (sim, p, _dir) = connected(IceWarpConfig {
        accounts: vec![
            existing_account("info@contoso.com", "Info-pass-1", &[]),
            AccountSpec {
                email: "helpdesk@contoso.com".into(),
                name: "Help desk".into(),
                password: "Help-pass-1".into(),
                aliases: vec!["[support_aliases]".into()],
            },
            existing_account("carol@contoso.com", "Carol-pass-1", &[]),
        ],
        lists: vec![ListSpec {
            email: "sales@contoso.com".into(),
            name: "Sales".into(),
            account_type: 1,
            members: vec!["info@contoso.com".into()],
        }],
        alias_patterns: vec![("support_aliases".into(), vec!["support".into()])],
        ..IceWarpConfig::default()
    })
    .await;
    let before = sim.accounts();

    // The address is a mailing list's.
    let sales = p
        .ensure_account(&account_plan("s", "sales@contoso.com", &["s2@contoso.com"]))
        .await
        .unwrap();
    assert!(
        matches!(&sales.action, AccountAction::Failed { reason, class: ErrorClass::SkipItem }
            if reason.contains("mailing list") && reason.contains("nothing was written")),
        "{sales:?}"
    );
    assert_eq!(sales.login, LoginRoute::None);
    // The address reaches an account only through a pattern alias.
    let support = p
        .ensure_account(&account_plan("p", "support@contoso.com", &[]))
        .await
        .unwrap();
    assert!(
        matches!(&support.action, AccountAction::Failed { reason, .. }
            if reason.contains("helpdesk@contoso.com") && reason.contains("[support_aliases]")),
        "{support:?}"
    );
    assert_eq!(count(&sim, "setaccountproperties"), 0);
    assert_eq!(sim.accounts(), before);

    // Bob's alias is the info desk's address: Bob gets his own account, the info desk is
    // untouched.
    let bob = p
        .ensure_account(&account_plan("b", "bob@contoso.com", &["info@contoso.com"]))
        .await
        .unwrap();
    assert_eq!(bob.action, AccountAction::Created, "{bob:?}");
    assert_eq!(bob.address.as_deref(), Some("bob@contoso.com"));
    assert_eq!(
        sim.account("info@contoso.com").unwrap().name,
        "Existing info@contoso.com"
    );
    // Carol's own account: merged, her alias added.
    let carol = p
        .ensure_account(&account_plan("c", "carol@contoso.com", &["cc@contoso.com"]))
        .await
        .unwrap();
    assert_eq!(carol.action, AccountAction::Merged);
    assert_eq!(carol.aliases_added, ["cc@contoso.com"]);
}

/// `U_Alias` holds at most 255 characters (online help 282.htm). Whether IceWarp refuses a
/// longer value or cuts it is not documented: with either, no value longer than 255 is sent,
/// every alias reported added answers to the account, and the others are named in a note.
#[tokio::test]
async fn aliases_beyond_the_255_character_field_are_reported_not_lost() {
    for overflow in [AliasOverflow::Refuse, AliasOverflow::Truncate] {
        let sim = IceWarpSim::start(IceWarpConfig {
            admin_password: ADMIN_PASSWORD.into(),
            accounts: vec![AccountSpec {
                email: "old@contoso.com".into(),
                name: "Old".into(),
                password: "Old-pass-1".into(),
                aliases: vec![],
            }],
            alias_overflow: overflow,
            policy: policy(),
            ..IceWarpConfig::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = connect(&sim, &dir.path().join("r.csv")).await;
        for (user, address) in [("n", "new@contoso.com"), ("o", "old@contoso.com")] {
            let many: Vec<String> = (0..40)
                .map(|i| format!("{user}alias{i:04}@contoso.com"))
                .collect();
            let many: Vec<&str> = many.iter().map(String::as_str).collect();
            let outcome = p
                .ensure_account(&account_plan(user, address, &many))
                .await
                .unwrap();
            assert!(
                matches!(
                    outcome.action,
                    AccountAction::Created | AccountAction::Merged
                ),
                "{overflow:?} {outcome:?}"
            );
            assert!(
                !outcome.aliases_added.is_empty(),
                "{overflow:?} {outcome:?}"
            );
            for alias in &outcome.aliases_added {
                assert_eq!(
                    sim.account(alias).map(|a| a.email()).as_deref(),
                    Some(address),
                    "{overflow:?} {alias}"
                );
            }
            let left: Vec<&&str> = many
                .iter()
                .filter(|a| !outcome.aliases_added.iter().any(|x| x == **a))
                .collect();
            assert!(!left.is_empty());
            let note = outcome
                .notes
                .iter()
                .find(|n| n.contains("255"))
                .unwrap_or_else(|| panic!("{overflow:?} {:?}", outcome.notes));
            assert!(left.iter().all(|a| note.contains(**a)), "{note}");
        }
        for r in sim.requests() {
            let longest = r
                .body
                .split("<val>")
                .skip(1)
                .filter_map(|v| v.split("</val>").next())
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0);
            assert!(
                longest <= 255,
                "{overflow:?}: a value of {longest} characters was sent"
            );
        }
        // Created accounts are IMAP & POP3 (U_AccountType 1), never the server's default.
        let new = sim.account("new@contoso.com").unwrap();
        assert_eq!(
            new.properties.get("u_accounttype").map(String::as_str),
            Some("1")
        );
    }
}

/// Under IceWarp's username login policy (`C_Accounts_Policies_Login_LoginSettings` 0) its
/// services authenticate with the account's `U_Login`, not the address (online help 282.htm,
/// apiconst `U_Login`): the administrator signs in with its username, each created or merged
/// account carries its login name, and the writers' IMAP and WebDAV logins use it. Under the
/// email policy the address is the login.
#[tokio::test]
async fn logins_follow_the_login_policy() {
    use migrator_core::dest::imap::ImapLogin;
    use migrator_core::engine::ImapLogins;
    for (policy_value, admin) in [("0", "admin"), ("1", "admin@icewarp.test")] {
        let sim = IceWarpSim::start(IceWarpConfig {
            admin_password: ADMIN_PASSWORD.into(),
            accounts: vec![existing_account("old.timer@contoso.com", "Old-pass-1", &[])],
            properties: vec![(
                "C_Accounts_Policies_Login_LoginSettings".into(),
                policy_value.into(),
            )],
            policy: policy(),
            ..IceWarpConfig::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(&sim, &dir.path().join("r.csv"), &[]);
        s.admin_email = admin.into();
        let p = IceWarpProvisioner::connect(&s, Secret::new(ADMIN_PASSWORD))
            .await
            .unwrap_or_else(|e| panic!("{admin}: {e}"));
        p.ensure_domains(&["contoso.com".to_string()])
            .await
            .unwrap();
        let created = p
            .ensure_account(&account_plan("n", "adele.vance@contoso.com", &[]))
            .await
            .unwrap();
        let merged = p
            .ensure_account(&account_plan("o", "old.timer@contoso.com", &[]))
            .await
            .unwrap();
        assert_eq!(created.action, AccountAction::Created);
        assert_eq!(merged.action, AccountAction::Merged);
        let (want_new, want_old) = match policy_value {
            "0" => (Some("adele.vance"), Some("old.timer")),
            _ => (None, None),
        };
        assert_eq!(created.login_name.as_deref(), want_new, "{policy_value}");
        assert_eq!(merged.login_name.as_deref(), want_old, "{policy_value}");

        let logins = ImapLogins::Named {
            accounts: [("adele.vance@contoso.com".to_string(), Secret::new("pw"))].into(),
            login_names: created
                .login_name
                .iter()
                .map(|n| ("adele.vance@contoso.com".to_string(), n.clone()))
                .collect(),
            master: None,
        };
        let user = match logins.login_for("adele.vance@contoso.com") {
            Some(ImapLogin::Password { user, .. }) => user,
            other => panic!("{other:?}"),
        };
        assert_eq!(user, want_new.unwrap_or("adele.vance@contoso.com"));
        assert_eq!(logins.login_name("adele.vance@contoso.com"), user);
    }
}

/// A tenant domain that is a domain alias at IceWarp (`D_Type` 2, apiconst) was taken as an
/// existing domain and accounts were created in it. It holds no accounts: it is reported with
/// what to do, no account is created there, and its users are failed with that reason.
#[tokio::test]
async fn a_domain_alias_is_not_a_domain_to_create_accounts_in() {
    let (users, domains) = tenant();
    let sim = IceWarpSim::start(IceWarpConfig {
        admin_password: ADMIN_PASSWORD.into(),
        domains: vec!["contoso.com".into()],
        domain_aliases: vec![("fabrikam.com".into(), "contoso.com".into())],
        policy: policy(),
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, outcome) = provision(&sim, &dir.path().join("r.csv"), &users, &domains).await;
    let fabrikam = outcome
        .domains
        .iter()
        .find(|(d, _)| d == "fabrikam.com")
        .map(|(_, a)| a.clone());
    assert!(
        matches!(&fabrikam, Some(DomainAction::Failed { reason }) if reason.contains("domain alias") && reason.contains("domain_map")),
        "{fabrikam:?}"
    );
    let in_alias: Vec<_> = outcome
        .accounts
        .iter()
        .filter(|a| {
            a.address
                .as_deref()
                .is_some_and(|x| x.ends_with("@fabrikam.com"))
        })
        .collect();
    assert!(!in_alias.is_empty());
    for account in in_alias {
        assert!(
            matches!(&account.action, AccountAction::Failed { reason, .. } if reason.contains("domain alias"))
                || matches!(account.action, AccountAction::Skipped { .. }),
            "{account:?}"
        );
    }
    assert!(sim
        .requests()
        .iter()
        .filter(|r| matches!(r.command.as_deref(), Some("createaccount" | "createdomain")))
        .all(|r| !r.body.contains("fabrikam.com")));
    assert!(sim.accounts().iter().all(|a| a.domain != "fabrikam.com"));
}

/// `account_quota_mb` puts a mailbox size limit (`U_MaxBox`, `U_MaxBoxSize` in kB, apiconst)
/// on the accounts the run creates, at `createaccount`; an account that already exists and is
/// merged into keeps its own (no quota written to it).
#[tokio::test]
async fn account_quota_is_set_on_created_accounts_only() {
    let (users, domains) = tenant();
    let existing = users[0].mail.clone().unwrap();
    let sim = IceWarpSim::start(IceWarpConfig {
        admin_password: ADMIN_PASSWORD.into(),
        accounts: vec![AccountSpec {
            email: existing.clone(),
            name: "Pre Existing".into(),
            password: "Existing-pass-1".into(),
            aliases: Vec::new(),
        }],
        policy: policy(),
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("new-accounts.csv");
    let settings = IceWarpSettings {
        account_quota_kb: Some(2048 * 1024),
        ..settings(&sim, &report, &[existing.as_str()])
    };
    let p = IceWarpProvisioner::connect(&settings, Secret::new(ADMIN_PASSWORD))
        .await
        .unwrap();
    let outcome = p
        .provision(&users, &[], &domains, &AccountRules::default())
        .await
        .unwrap();
    let created: Vec<String> = outcome
        .accounts
        .iter()
        .filter(|a| a.action == AccountAction::Created)
        .filter_map(|a| a.address.clone())
        .collect();
    assert!(!created.is_empty(), "{outcome:#?}");
    for address in &created {
        let account = sim.account(address).unwrap();
        assert_eq!(
            (
                account.properties.get("u_maxbox").map(String::as_str),
                account.properties.get("u_maxboxsize").map(String::as_str)
            ),
            (Some("1"), Some("2097152")),
            "{address}"
        );
    }
    let merged = sim.account(&existing).unwrap();
    assert!(
        !merged.properties.contains_key("u_maxbox")
            && !merged.properties.contains_key("u_maxboxsize"),
        "{:?}",
        merged.properties
    );
    assert!(
        !sim.requests().iter().any(|r| {
            r.command.as_deref() == Some("setaccountproperties")
                && r.body.to_ascii_lowercase().contains("u_maxbox")
        }),
        "no quota written to an existing account"
    );
}

/// The tenant with user 1 a room mailbox and user 2 an equipment mailbox (their sign-in
/// blocked, as Exchange makes them).
fn tenant_with_resources() -> (Vec<DirectoryUser>, Vec<TenantDomain>) {
    let (mut users, domains) = tenant();
    for (user, kind) in users[1..3]
        .iter_mut()
        .zip([MailboxKind::Room, MailboxKind::Equipment])
    {
        user.kind = kind;
        user.account_enabled = Some(false);
    }
    (users, domains)
}

/// `U_Type` and `S_Type` of an emulated account.
fn resource_type(sim: &IceWarpSim, address: &str) -> (u32, Option<String>) {
    let account = sim.account(address).unwrap_or_else(|| panic!("{address}"));
    (
        account.account_type,
        account.properties.get("s_type").cloned(),
    )
}

/// Issue 14.5: rooms and equipment became ordinary user accounts (`U_Type` 0). They are
/// IceWarp resources (`U_Type` 8, apiconst) with `S_Type` 0 (room) or 1 (equipment), their
/// generated password recorded before `createaccount` as for users; a rerun merges into them
/// and creates nothing.
#[tokio::test]
async fn rooms_and_equipment_are_created_as_icewarp_resources() {
    let (users, domains) = tenant_with_resources();
    let sim = emulator(&users, true).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("new-accounts.csv");
    let (_, outcome) = provision(&sim, &report, &users, &domains).await;
    let room = users[1].mail.clone().unwrap();
    let equipment = users[2].mail.clone().unwrap();
    assert_eq!(resource_type(&sim, &room), (8, Some("0".into())));
    assert_eq!(resource_type(&sim, &equipment), (8, Some("1".into())));
    for address in [&room, &equipment] {
        let o = outcome
            .accounts
            .iter()
            .find(|a| a.address.as_ref() == Some(address))
            .unwrap();
        assert_eq!(
            (&o.action, o.login),
            (&AccountAction::Created, LoginRoute::GeneratedPassword)
        );
        let recorded: Vec<String> = csv_rows(&report)
            .into_iter()
            .filter(|(a, _)| a == address)
            .map(|(_, p)| p)
            .collect();
        assert_eq!(
            recorded,
            [sim.account(address).unwrap().password],
            "{address}"
        );
    }
    // The people are user accounts, without S_Type.
    for user in users
        .iter()
        .skip(3)
        .filter_map(|u| sim.account(u.mail.as_deref()?))
    {
        assert_eq!(
            (user.account_type, user.properties.get("s_type")),
            (0, None)
        );
    }
    assert!(sim
        .requests()
        .iter()
        .all(|r| r.schema_violations.is_empty()));

    let creates = count(&sim, "createaccount");
    let (_, again) = provision(&sim, &report, &users, &domains).await;
    assert_eq!(
        count(&sim, "createaccount"),
        creates,
        "a rerun creates nothing"
    );
    for address in [&room, &equipment] {
        let o = again
            .accounts
            .iter()
            .find(|a| a.address.as_ref() == Some(address))
            .unwrap();
        assert_eq!(o.action, AccountAction::Merged, "{o:?}");
    }
}

/// A room mailbox merges into an existing resource whose own aliases name its address
/// (missing aliases added, nothing else written); a person's mailbox never merges into a
/// resource: a conflict, nothing written.
#[tokio::test]
async fn a_room_merges_into_an_existing_resource_and_a_person_does_not() {
    let (sim, p, _dir) = connected(IceWarpConfig {
        resources: vec![ResourceSpec {
            email: "boardroom@contoso.com".into(),
            name: "Board room".into(),
            password: "Board-pass-1".into(),
            aliases: vec!["board".into()],
            s_type: 0,
        }],
        ..IceWarpConfig::default()
    })
    .await;

    let person = p
        .ensure_account(&account_plan("u", "board@contoso.com", &[]))
        .await
        .unwrap();
    assert!(
        matches!(&person.action, AccountAction::Failed { reason, class: ErrorClass::SkipItem }
            if reason.contains("a resource (U_Type 8)") && reason.contains("nothing was written")),
        "{person:?}"
    );
    assert_eq!(count(&sim, "setaccountproperties"), 0);

    let room = p
        .ensure_account(&AccountPlan {
            resource: Some(ResourceKind::Room),
            ..account_plan("r", "boardroom@contoso.com", &["meeting@contoso.com"])
        })
        .await
        .unwrap();
    assert_eq!(room.action, AccountAction::Merged, "{room:?}");
    assert_eq!(room.aliases_added, ["meeting@contoso.com"]);
    let account = sim.account("boardroom@contoso.com").unwrap();
    assert_eq!(
        (
            account.account_type,
            account.password.as_str(),
            account.aliases.clone()
        ),
        (
            8,
            "Board-pass-1",
            vec!["boardroom".into(), "board".into(), "meeting".into()]
        )
    );
    assert_eq!(count(&sim, "createaccount"), 0);
}

/// The administrators' escape hatch: with `resources_as = "user"` rooms and equipment are
/// ordinary user accounts, as before resources were supported.
#[tokio::test]
async fn resources_as_user_creates_rooms_and_equipment_as_user_accounts() {
    let (users, domains) = tenant_with_resources();
    let sim = emulator(&users, true).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("new-accounts.csv");
    let p = IceWarpProvisioner::connect(&settings(&sim, &report, &[]), Secret::new(ADMIN_PASSWORD))
        .await
        .unwrap();
    let rules = AccountRules {
        resources_as: ResourcesAs::User,
        ..AccountRules::default()
    };
    p.provision(&users, &[], &domains, &rules).await.unwrap();
    for user in &users[1..3] {
        assert_eq!(
            resource_type(&sim, user.mail.as_deref().unwrap()),
            (0, None)
        );
    }
}

/// A resource's `createaccount` whose answer was lost: the account list is asked, as for a
/// user, and the password recorded before the call is the resource's; nothing is created
/// twice.
#[tokio::test]
async fn a_resource_created_by_a_try_whose_answer_was_lost_keeps_its_recorded_password() {
    let (sim, p, dir) = connected(IceWarpConfig::default()).await;
    p.ensure_domains(&["fabrikam.com".to_string()])
        .await
        .unwrap();
    sim.inject(Fault::LostReply, 1, Some("createaccount"));
    let outcome = p
        .ensure_account(&AccountPlan {
            resource: Some(ResourceKind::Equipment),
            ..account_plan("e", "beamer@fabrikam.com", &[])
        })
        .await
        .unwrap();
    assert_eq!(outcome.action, AccountAction::Created, "{outcome:?}");
    let account = sim.account("beamer@fabrikam.com").unwrap();
    assert_eq!(
        (
            account.account_type,
            account.properties.get("s_type").map(String::as_str)
        ),
        (8, Some("1"))
    );
    let recorded: Vec<String> = csv_rows(&dir.path().join("r.csv"))
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(recorded, [account.password]);
    assert_eq!(sim.accounts().len(), 1);
}
