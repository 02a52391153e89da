//! Secrets: stored once from the page into the keychain (or the session), never sent back.

use migrator_core::config::SourceConfig;
use migrator_core::secrets::{
    dest_admin_password_entry, graph_client_secret_entry_at, Secret, SecretStore, SecretStoreError,
};
use migrator_core::spec::DestinationSettings;
use serde::{Deserialize, Serialize};
use tauri::State;
use ts_rs::TS;

use super::blocking;
use crate::state::{Found, SecretPlaces};
use crate::{AppState, IpcError};

/// Which secret: an app registration's client secret (account `<tenant>/<client>`, or
/// `<tenant>/<client>@<host[:port]>` for an overriding login URL) or a destination
/// administrator's password (account `<host>/<user>`, or `<host>@<api host[:port]>/<user>`
/// for an overriding IceWarp API URL).
#[derive(Debug, Clone, Copy, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum SecretKind {
    GraphClientSecret,
    DestAdminPassword,
}

/// Where a secret is: in the keychain, kept for this session only, not stored yet, or
/// not stored and no keychain to store it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum SecretStatus {
    Stored,
    Session,
    Missing,
    Unavailable,
}

/// The keychain entry of `kind` for `account`.
fn secret_entry(kind: SecretKind, account: &str) -> Result<String, IpcError> {
    let (a, b) = account
        .split_once('/')
        .filter(|(a, b)| !a.trim().is_empty() && !b.trim().is_empty())
        .ok_or_else(|| {
            IpcError::new(
                "invalid",
                "The account must be <tenant>/<client> or <host>/<user>.",
            )
        })?;
    Ok(match kind {
        // `<tenant>/<client>@<host[:port]>`: a secret for an overriding login_url.
        SecretKind::GraphClientSecret => match b.split_once('@') {
            Some((client, host)) => graph_client_secret_entry_at(a, client, Some(host)),
            None => graph_client_secret_entry_at(a, b, None),
        },
        SecretKind::DestAdminPassword => dest_admin_password_entry(a, b),
    })
}

fn status(places: &SecretPlaces, entry: &str) -> Result<SecretStatus, IpcError> {
    match places.find(entry) {
        Ok(Some(Found::Keychain(_))) => Ok(SecretStatus::Stored),
        Ok(Some(Found::Session(_))) => Ok(SecretStatus::Session),
        Ok(None) => Ok(SecretStatus::Missing),
        Err(SecretStoreError::Unavailable(_)) => Ok(SecretStatus::Unavailable),
        Err(e) => Err(e.into()),
    }
}

/// Stores a secret the user typed, in the keychain (or, with `session_only`, in memory until
/// the app quits). The value crosses the IPC boundary this once and is never sent back.
#[tauri::command]
pub(crate) async fn store_secret(
    state: State<'_, AppState>,
    kind: SecretKind,
    account: String,
    value: String,
    session_only: Option<bool>,
) -> Result<SecretStatus, IpcError> {
    let entry = secret_entry(kind, &account)?;
    let secret = Secret::new(value);
    if secret.is_empty() {
        return Err(IpcError::new("invalid", "The secret is empty."));
    }
    let places = state.secrets();
    blocking(move || {
        if session_only.unwrap_or(false) {
            places.session().put(&entry, &secret)?;
            return Ok(SecretStatus::Session);
        }
        places.keychain()?.put(&entry, &secret)?;
        // A value kept for the session before is superseded by the keychain's.
        places.session().delete(&entry)?;
        Ok(SecretStatus::Stored)
    })
    .await
}

/// Whether a secret is stored, without revealing it.
#[tauri::command]
pub(crate) async fn secret_status(
    state: State<'_, AppState>,
    kind: SecretKind,
    account: String,
) -> Result<SecretStatus, IpcError> {
    let entry = secret_entry(kind, &account)?;
    let places = state.secrets();
    blocking(move || status(&places, &entry)).await
}

/// Removes a secret from the keychain and the session.
#[tauri::command]
pub(crate) async fn forget_secret(
    state: State<'_, AppState>,
    kind: SecretKind,
    account: String,
) -> Result<SecretStatus, IpcError> {
    let entry = secret_entry(kind, &account)?;
    let places = state.secrets();
    blocking(move || {
        places.session().delete(&entry)?;
        if let Ok(keychain) = places.keychain() {
            keychain.delete(&entry)?;
        }
        status(&places, &entry)
    })
    .await
}

/// The stored secret under `entry`, or a `secret.missing` error saying what to enter.
async fn stored_secret(
    places: SecretPlaces,
    entry: String,
    what: &'static str,
) -> Result<Secret, IpcError> {
    blocking(move || match places.find(&entry) {
        Ok(Some(found)) => Ok(found.secret()),
        Ok(None) | Err(SecretStoreError::Unavailable(_)) => Err(IpcError::new(
            "secret.missing",
            format!("The {what} is not stored yet: enter it and it will be kept in the keychain."),
        )),
        Err(e) => Err(e.into()),
    })
    .await
}

/// The client secret stored for `source`'s app registration (its entry is bound to the login
/// host an override names, so the secret only goes where it was stored for).
pub(crate) async fn client_secret(
    places: SecretPlaces,
    source: &SourceConfig,
) -> Result<Secret, IpcError> {
    stored_secret(places, source.client_secret_entry(), "client secret").await
}

/// The admin or master password stored for `destination`, when it has one (its entry is
/// bound to the API host an IceWarp override names).
pub(crate) async fn admin_password(
    places: SecretPlaces,
    destination: &DestinationSettings,
) -> Result<Option<Secret>, IpcError> {
    match destination.admin_account() {
        Some((host, user)) => Ok(Some(
            stored_secret(
                places,
                dest_admin_password_entry(&host, &user),
                "administrator password",
            )
            .await?,
        )),
        None => Ok(None),
    }
}
