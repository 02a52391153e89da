//! Secrets in memory. A [`Secret`] never prints its value: `Debug` and `Display` show
//! `[redacted]`, so a secret that ends up in a log line, an event or an error is harmless.

use std::fmt;

/// A client secret, password or token. Read it with [`Secret::expose`] at the one place that
/// sends it over the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for the request that needs it and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The keychain service every entry of the migrator lives under.
pub const KEYCHAIN_SERVICE: &str = "m365-migrator";

/// The keychain entry of an app registration's client secret:
/// `graph-client-secret:<tenant>/<client>` (trimmed, lower-case).
pub fn graph_client_secret_entry(tenant_id: &str, client_id: &str) -> String {
    format!(
        "graph-client-secret:{}/{}",
        tenant_id.trim().to_lowercase(),
        client_id.trim().to_lowercase()
    )
}

/// The keychain entry of a client secret saved for the login host `login_host` (`host[:port]`
/// of an overriding `login_url`): `graph-client-secret:<tenant>/<client>@<login_host>`, or for
/// `None` (a Microsoft cloud's own login host) [`graph_client_secret_entry`], the name entries
/// had before they were bound to a host. See [`crate::config::SourceConfig::client_secret_entry`].
pub fn graph_client_secret_entry_at(
    tenant_id: &str,
    client_id: &str,
    login_host: Option<&str>,
) -> String {
    let entry = graph_client_secret_entry(tenant_id, client_id);
    match login_host {
        Some(host) => format!("{entry}@{}", host.trim().to_lowercase()),
        None => entry,
    }
}

/// The keychain entry of a destination administrator's password:
/// `dest-admin-password:<host>/<user>` (trimmed, lower-case).
pub fn dest_admin_password_entry(host: &str, user: &str) -> String {
    format!(
        "dest-admin-password:{}/{}",
        host.trim().to_lowercase(),
        user.trim().to_lowercase()
    )
}

/// Why a secret store could not do what was asked. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    /// There is no keychain to talk to (e.g. a Linux desktop without a Secret Service), or
    /// it is locked and cannot be opened.
    #[error("no keychain is available: {0}")]
    Unavailable(String),
    /// The keychain answered with an error.
    #[error("the keychain failed: {0}")]
    Failed(String),
}

/// Where secrets are kept between runs: the OS keychain in the app and the CLI, memory in
/// tests and in the app's session-only mode. Entries are named by [`KEYCHAIN_SERVICE`] plus
/// an entry name such as [`graph_client_secret_entry`].
pub trait SecretStore: Send + Sync {
    /// Stores `secret` under `entry`, replacing what was there.
    fn put(&self, entry: &str, secret: &Secret) -> Result<(), SecretStoreError>;
    /// The secret under `entry`; `None` when there is none.
    fn get(&self, entry: &str) -> Result<Option<Secret>, SecretStoreError>;
    /// Removes `entry`; removing an entry that does not exist succeeds.
    fn delete(&self, entry: &str) -> Result<(), SecretStoreError>;
}

/// Secrets kept in memory only, gone when the process ends.
#[derive(Default)]
pub struct MemoryStore {
    entries: std::sync::Mutex<std::collections::HashMap<String, Secret>>,
}

impl MemoryStore {
    fn entries(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Secret>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SecretStore for MemoryStore {
    fn put(&self, entry: &str, secret: &Secret) -> Result<(), SecretStoreError> {
        self.entries().insert(entry.to_string(), secret.clone());
        Ok(())
    }

    fn get(&self, entry: &str) -> Result<Option<Secret>, SecretStoreError> {
        Ok(self.entries().get(entry).cloned())
    }

    fn delete(&self, entry: &str) -> Result<(), SecretStoreError> {
        self.entries().remove(entry);
        Ok(())
    }
}

/// A [`SecretStore`] over a keyring-core credential store: the platform's keychain
/// ([`KeyringStore::platform`]) or keyring-core's mock store in tests. Calls block (D-Bus,
/// Security framework, Credential Manager): async callers run them on a blocking thread.
pub struct KeyringStore {
    store: std::sync::Arc<keyring_core::CredentialStore>,
}

impl KeyringStore {
    pub fn new(store: std::sync::Arc<keyring_core::CredentialStore>) -> Self {
        KeyringStore { store }
    }

    /// The OS keychain: Secret Service on Linux, the login Keychain on macOS, Credential
    /// Manager on Windows. `Unavailable` when it cannot be reached (no D-Bus session or no
    /// Secret Service provider on Linux).
    #[cfg(feature = "keychain")]
    pub fn platform() -> Result<Self, SecretStoreError> {
        #[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
        let store = dbus_secret_service_keyring_store::Store::new();
        #[cfg(target_os = "macos")]
        let store = apple_native_keyring_store::keychain::Store::new();
        #[cfg(target_os = "windows")]
        let store = windows_native_keyring_store::Store::new();
        #[cfg(not(any(
            target_os = "linux",
            target_os = "freebsd",
            target_os = "openbsd",
            target_os = "macos",
            target_os = "windows"
        )))]
        let store: keyring_core::Result<std::sync::Arc<keyring_core::mock::Store>> = Err(
            keyring_core::Error::NotSupportedByStore("no keychain on this platform".into()),
        );
        match store {
            Ok(store) => Ok(KeyringStore::new(store)),
            Err(e) => Err(SecretStoreError::Unavailable(e.to_string())),
        }
    }

    fn entry(&self, entry: &str) -> Result<keyring_core::Entry, SecretStoreError> {
        keyring_core::Entry::new_in_store(&self.store, KEYCHAIN_SERVICE, entry).map_err(failure)
    }
}

/// Maps keyring-core's errors; none of them carries the secret (`BadEncoding` does carry
/// bytes, so it is reduced to its kind).
fn failure(e: keyring_core::Error) -> SecretStoreError {
    match e {
        keyring_core::Error::NoStorageAccess(p) => SecretStoreError::Unavailable(p.to_string()),
        keyring_core::Error::NoDefaultStore => {
            SecretStoreError::Unavailable("no credential store".into())
        }
        keyring_core::Error::BadEncoding(_) | keyring_core::Error::BadDataFormat(..) => {
            SecretStoreError::Failed("the stored value is not text".into())
        }
        other => SecretStoreError::Failed(other.to_string()),
    }
}

impl SecretStore for KeyringStore {
    fn put(&self, entry: &str, secret: &Secret) -> Result<(), SecretStoreError> {
        self.entry(entry)?
            .set_password(secret.expose())
            .map_err(failure)
    }

    fn get(&self, entry: &str) -> Result<Option<Secret>, SecretStoreError> {
        match self.entry(entry)?.get_password() {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(failure(e)),
        }
    }

    fn delete(&self, entry: &str) -> Result<(), SecretStoreError> {
        match self.entry(entry)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(failure(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("abc~DEF.123");
        assert!(!format!("{s:?}").contains("abc~DEF"));
        assert!(!format!("{s}").contains("abc~DEF"));
        assert_eq!(s.expose(), "abc~DEF.123");
    }

    fn round_trip(store: &dyn SecretStore) {
        let entry = graph_client_secret_entry(" Contoso.com ", "ABC");
        assert_eq!(entry, "graph-client-secret:contoso.com/abc");
        assert!(store.get(&entry).unwrap().is_none());
        store.put(&entry, &Secret::new("v1~x")).unwrap();
        store.put(&entry, &Secret::new("v2~x")).unwrap();
        assert_eq!(store.get(&entry).unwrap().unwrap().expose(), "v2~x");
        let other = dest_admin_password_entry("mail.example.com", "admin");
        assert!(store.get(&other).unwrap().is_none(), "entries are separate");
        store.delete(&entry).unwrap();
        assert!(store.get(&entry).unwrap().is_none());
        store.delete(&entry).unwrap();
    }

    #[test]
    fn memory_and_keyring_stores_put_replace_get_and_delete() {
        round_trip(&MemoryStore::default());
        let mock = keyring_core::mock::Store::new().unwrap();
        round_trip(&KeyringStore::new(mock));
    }
}
