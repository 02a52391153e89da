//! Real servers for the integration tests, each started in a throwaway directory and stopped
//! when dropped. Every test binary that needs one declares `mod support;`.
#![allow(dead_code)]

pub mod dns;
pub mod dovecot;
pub mod fault_proxy;
pub mod postgres;
pub mod radicale;

use std::collections::HashMap;
use std::path::Path;

use migrator_core::dest::imap::{ImapMailbox, MasterStyle};

/// Items a run wrote (not those it found already there).
pub fn written(summary: &migrator_core::progress::RunSummary) -> u64 {
    let t = &summary.totals;
    t.messages + t.events + t.contacts + t.tasks
}

/// A simulated tenant and a Dovecot whose accounts are the tenant's users (password "pw").
pub async fn tenant_with_dovecot(
    users: usize,
    messages_per_user: usize,
) -> (migrator_sim::SimServer, dovecot::Dovecot) {
    tenant_with_dovecot_config(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users,
            messages_per_user,
            ..migrator_sim::TenantSpec::default()
        },
        ..migrator_sim::SimConfig::default()
    })
    .await
}

/// [`tenant_with_dovecot`] with a simulator configured by the caller (latency, faults...).
pub async fn tenant_with_dovecot_config(
    config: migrator_sim::SimConfig,
) -> (migrator_sim::SimServer, dovecot::Dovecot) {
    let sim = migrator_sim::SimServer::start(config)
        .await
        .expect("the simulator starts");
    let dovecot = dovecot::Dovecot::start_with(dovecot::Options {
        users: tenant_accounts(&sim),
        ..dovecot::Options::default()
    });
    (sim, dovecot)
}

/// A message `id` with `subject` too big for a Dovecot whose `max_mail_kib` is the returned
/// limit, which every other message of `sim`'s tenant fits under: (its MIME, the limit).
pub fn too_big_message(sim: &migrator_sim::SimServer, id: &str, subject: &str) -> (Vec<u8>, u64) {
    let largest = sim
        .tenant()
        .users
        .iter()
        .flat_map(|u| &u.folders)
        .flat_map(|f| &f.messages)
        .map(|m| m.mime.as_ref().len())
        .max()
        .unwrap_or(0);
    let limit_kib = largest as u64 / 1024 + 16;
    let mut big =
        format!("Message-ID: <{id}@example.com>\r\nSubject: {subject}\r\n\r\n").into_bytes();
    big.resize(big.len() + (limit_kib as usize + 64) * 1024, b'x');
    (big, limit_kib)
}

/// Every user of `sim` as a destination account: (address, password "pw").
pub fn tenant_accounts(sim: &migrator_sim::SimServer) -> Vec<(String, String)> {
    sim.tenant()
        .users
        .iter()
        .map(|u| (u.mail.clone(), "pw".to_string()))
        .collect()
}

/// How many times each message body is in `address`'s account, over every selectable folder
/// (read with the master login).
pub async fn account_bodies(dovecot: &dovecot::Dovecot, address: &str) -> HashMap<Vec<u8>, usize> {
    let login = dovecot::Dovecot::master(address, MasterStyle::SaslAuthzid);
    let mut mailbox = ImapMailbox::connect(&dovecot.tls_settings(), &login)
        .await
        .expect("master login to Dovecot");
    let mut bodies: HashMap<Vec<u8>, usize> = HashMap::new();
    for folder in mailbox.list_folders().await.expect("LIST") {
        if folder
            .attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case("\\Noselect"))
        {
            continue;
        }
        for uid in mailbox.uids(&folder.wire).await.expect("UID SEARCH") {
            if let Some(m) = mailbox.fetch(&folder.wire, uid).await.expect("UID FETCH") {
                *bodies.entry(m.body).or_default() += 1;
            }
        }
    }
    bodies
}

/// The source settings that read from `sim` (its token endpoint and Graph).
pub fn source_config(sim: &migrator_sim::SimServer) -> migrator_core::config::SourceConfig {
    migrator_core::config::SourceConfig {
        tenant_id: sim.tenant_id().to_string(),
        client_id: sim.client_id().to_string(),
        cloud: migrator_core::config::Cloud::Global,
        login_url: Some(sim.url()),
        graph_url: Some(sim.url()),
        allow_plaintext_loopback: Some(true),
    }
}

/// The `[source]` section of a configuration file that reads from `sim`.
pub fn source_toml(sim: &migrator_sim::SimServer) -> String {
    format!(
        "[source]\ntenant_id = \"{}\"\nclient_id = \"{}\"\nlogin_url = \"{url}\"\ngraph_url = \"{url}\"\nallow_plaintext_loopback = true\n\n",
        sim.tenant_id(),
        sim.client_id(),
        url = sim.url(),
    )
}

/// The `[destination]` section for `dovecot` over TLS with the master login.
pub fn dovecot_toml(dovecot: &dovecot::Dovecot) -> String {
    format!(
        "[destination]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{}\"\nmaster_user = \"{}\"\n\n",
        dovecot.imaps_port,
        dovecot.ca_file.display(),
        dovecot::MASTER_USER,
    )
}

/// Every file under `dir`, at any depth (none when `dir` does not exist).
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// How many times each message body is delivered (in `cur/` or `new/`) under a Maildir++ tree.
/// Files in `tmp/` are deliveries in progress, which Maildir readers ignore.
pub fn maildir_bodies(root: &Path) -> HashMap<Vec<u8>, usize> {
    let mut bodies: HashMap<Vec<u8>, usize> = HashMap::new();
    for path in files_under(root) {
        let box_dir = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str());
        if matches!(box_dir, Some("cur" | "new")) {
            *bodies.entry(std::fs::read(&path).unwrap()).or_default() += 1;
        }
    }
    bodies
}

/// Every source message of `user` is in `actual` exactly once, and nothing else is.
pub fn assert_exactly_once(
    user: &migrator_sim::tenant::User,
    actual: &HashMap<Vec<u8>, usize>,
    context: &str,
) {
    let mut expected: HashMap<Vec<u8>, usize> = HashMap::new();
    for folder in &user.folders {
        for message in &folder.messages {
            *expected.entry(message.mime.as_ref().to_vec()).or_default() += 1;
        }
    }
    let missing = expected
        .iter()
        .filter(|(body, n)| actual.get(*body) < Some(n))
        .count();
    let duplicated = actual
        .iter()
        .filter(|(body, n)| expected.get(*body).is_some_and(|e| *n > e))
        .count();
    let foreign = actual.keys().filter(|b| !expected.contains_key(*b)).count();
    assert_eq!(
        (missing, duplicated, foreign),
        (0, 0, 0),
        "{}: missing, duplicated and unknown messages {context}",
        user.mail
    );
}

/// Collects the failed items a run reports, each as `user folder item: reason`.
#[derive(Clone, Default)]
pub struct Failures(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Failures {
    /// A reporter for [`migrator_core::engine::run`] that records into this list.
    pub fn reporter(&self) -> std::sync::Arc<dyn migrator_core::progress::Reporter> {
        let seen = self.0.clone();
        std::sync::Arc::new(move |e: migrator_core::progress::ProgressEvent| {
            if let migrator_core::progress::ProgressEvent::ItemFailed {
                user,
                folder,
                item,
                subject,
                reason,
                ..
            } = e
            {
                let line = match subject {
                    Some(subject) => format!("{user} {folder} {item} \"{subject}\": {reason}"),
                    None => format!("{user} {folder} {item}: {reason}"),
                };
                seen.lock().unwrap().push(line);
            }
        })
    }

    /// What was recorded so far.
    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// One run of the engine from `sim` into `destination`: its summary and the failed items
/// (`user folder item: reason`). A run that fails as a whole fails the test.
pub async fn run_with(
    sim: &migrator_sim::SimServer,
    destination: &migrator_core::engine::Destination,
    options: migrator_core::engine::RunOptions,
) -> (migrator_core::progress::RunSummary, Vec<String>) {
    let failures = Failures::default();
    let summary = migrator_core::engine::run(
        &source_config(sim),
        &migrator_core::secrets::Secret::new(sim.client_secret()),
        destination,
        failures.reporter(),
        migrator_core::engine::RunControl::new(),
        options,
    )
    .await
    .unwrap_or_else(|e| panic!("the run fails as a whole: {e}"));
    (summary, failures.list())
}

/// `(user, reason)` of every `NotMigrated` among `events`, sorted.
pub fn not_migrated(events: &[migrator_core::progress::ProgressEvent]) -> Vec<(String, String)> {
    let mut out: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            migrator_core::progress::ProgressEvent::NotMigrated { user, reason } => {
                Some((user.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// An error and its sources, as a user reads them (the CLI prints the chain so).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
