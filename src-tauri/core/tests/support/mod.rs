//! Real servers for the integration tests, each started in a throwaway directory and stopped
//! when dropped. Every test binary that needs one declares `mod support;`.
#![allow(dead_code)]

pub mod dovecot;
pub mod radicale;

/// A simulated tenant and a Dovecot whose accounts are the tenant's users (password "pw").
pub async fn tenant_with_dovecot(
    users: usize,
    messages_per_user: usize,
) -> (migrator_sim::SimServer, dovecot::Dovecot) {
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users,
            messages_per_user,
            ..migrator_sim::TenantSpec::default()
        },
        ..migrator_sim::SimConfig::default()
    })
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
