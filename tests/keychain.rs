//! The OS keychain for real: a Secret Service (gnome-keyring-daemon under dbus-run-session)
//! stores, returns, replaces and deletes the migrator's secrets, and other Secret Service
//! clients (secret-tool) see them under the documented attributes.
//!
//! Run by `scripts/test-keychain.sh` (`make test-keychain`), which starts the D-Bus session
//! and the keyring; it needs a session bus, so plain `cargo test` does not run it.

use std::process::Command;

use migrator_core::secrets::{
    dest_admin_password_entry, graph_client_secret_entry, graph_client_secret_entry_at,
    KeyringStore, Secret, SecretStore, KEYCHAIN_SERVICE,
};

fn secret_tool_lookup(entry: &str) -> Option<String> {
    let out = Command::new("secret-tool")
        .args(["lookup", "service", KEYCHAIN_SERVICE, "username", entry])
        .output()
        .expect("secret-tool runs (apt-get install libsecret-tools)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
#[ignore = "needs a Secret Service: run scripts/test-keychain.sh"]
fn the_secret_service_stores_reads_replaces_and_deletes_secrets() {
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "no D-Bus session: run scripts/test-keychain.sh (apt-get install dbus-x11 gnome-keyring libsecret-tools)"
    );
    let keychain = KeyringStore::platform().expect(
        "the Secret Service is reachable (apt-get install gnome-keyring; see scripts/test-keychain.sh)",
    );
    let client = graph_client_secret_entry(
        "contoso.onmicrosoft.com",
        &format!("{}", std::process::id()),
    );
    let admin = dest_admin_password_entry("mail.example.com", "admin");
    keychain.delete(&client).unwrap();
    keychain.delete(&admin).unwrap();
    assert!(keychain.get(&client).unwrap().is_none());

    keychain
        .put(&client, &Secret::new("Qx8Q~first.value"))
        .unwrap();
    keychain.put(&admin, &Secret::new("adm1n-pa55")).unwrap();
    assert_eq!(
        keychain.get(&client).unwrap().unwrap().expose(),
        "Qx8Q~first.value"
    );
    // Another Secret Service client finds it under service + username.
    assert_eq!(
        secret_tool_lookup(&client).as_deref(),
        Some("Qx8Q~first.value")
    );

    keychain
        .put(&client, &Secret::new("Qx8Q~second.value"))
        .unwrap();
    assert_eq!(
        keychain.get(&client).unwrap().unwrap().expose(),
        "Qx8Q~second.value"
    );
    assert_eq!(
        keychain.get(&admin).unwrap().unwrap().expose(),
        "adm1n-pa55"
    );

    keychain.delete(&client).unwrap();
    assert!(keychain.get(&client).unwrap().is_none());
    assert_eq!(secret_tool_lookup(&client), None);
    assert_eq!(
        keychain.get(&admin).unwrap().unwrap().expose(),
        "adm1n-pa55"
    );
    keychain.delete(&admin).unwrap();
    keychain.delete(&admin).unwrap();
    assert!(keychain.get(&admin).unwrap().is_none());
}

/// The CLI (`m365-migrate`, built by the script: `M365_MIGRATE_BIN`) finds the client secret
/// the desktop app stored when `M365_CLIENT_SECRET` is not set.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Secret Service: run scripts/test-keychain.sh"]
async fn the_cli_reads_the_client_secret_the_app_stored() {
    let cli = std::env::var("M365_MIGRATE_BIN")
        .expect("M365_MIGRATE_BIN names the built m365-migrate: run scripts/test-keychain.sh");
    let keychain = KeyringStore::platform().expect("the Secret Service is reachable");
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig::demo())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("migrate.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\ntenant_id = \"{}\"\nclient_id = \"{}\"\nlogin_url = \"{}\"\ngraph_url = \"{}\"\nallow_plaintext_loopback = true\n\n\
             [destination]\nkind = \"folder\"\npath = \"{}\"\n",
            sim.tenant_id(),
            sim.client_id(),
            sim.url(),
            sim.url(),
            dir.path().join("out").display()
        ),
    )
    .unwrap();
    let check = move |cli: String, config: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            Command::new(cli)
                .args(["check", "--config"])
                .arg(config)
                .env_remove("M365_CLIENT_SECRET")
                .output()
                .expect("m365-migrate runs")
        })
    };
    // The entry of a secret for the simulator's login host (bound to it, not the default).
    let host = sim.url().trim_start_matches("http://").to_string();
    let entry = graph_client_secret_entry_at(sim.tenant_id(), sim.client_id(), Some(&host));
    keychain.delete(&entry).unwrap();
    let without = check(cli.clone(), config.clone()).await.unwrap();
    assert_eq!(without.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("store it with the desktop app"),
        "{without:?}"
    );

    keychain
        .put(&entry, &Secret::new(sim.client_secret()))
        .unwrap();
    let with = check(cli, config).await.unwrap();
    keychain.delete(&entry).unwrap();
    let stdout = String::from_utf8_lossy(&with.stdout);
    assert_eq!(with.status.code(), Some(0), "{with:?}");
    assert!(stdout.contains("ready to run"), "{stdout}");
    assert!(!stdout.contains(sim.client_secret()));
    sim.shutdown().await;
}
