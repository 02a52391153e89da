//! Real servers for the integration tests, each started in a throwaway directory and stopped
//! when dropped. Every test binary that needs one declares `mod support;`.
#![allow(dead_code)]

pub mod dovecot;
pub mod radicale;

use std::collections::HashMap;

use migrator_core::dest::imap::{ImapMailbox, MasterStyle};

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
    let accounts = sim
        .tenant()
        .users
        .iter()
        .map(|u| (u.mail.clone(), "pw".to_string()))
        .collect();
    let dovecot = dovecot::Dovecot::start_with(dovecot::Options {
        users: accounts,
        ..dovecot::Options::default()
    });
    (sim, dovecot)
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

/// The `[source]` section of a configuration file that reads from `sim`.
pub fn source_toml(sim: &migrator_sim::SimServer) -> String {
    format!(
        "[source]\ntenant_id = \"{}\"\nclient_id = \"{}\"\nlogin_url = \"{url}\"\ngraph_url = \"{url}\"\n\n",
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
