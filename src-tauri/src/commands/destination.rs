//! The Destination screen: its fields and a test of every endpoint a run will use.

use migrator_core::config::SourceConfig;
use migrator_core::engine::{
    check_destination, test_source, Destination, EndpointCheck, RunOptions,
};
use migrator_core::spec::{
    destination_errors, AccountRules, Completeness, DestinationSettings, FieldError,
};
use serde::Serialize;
use tauri::{AppHandle, Runtime, State};
use ts_rs::TS;

use super::keychain::{admin_password, client_secret};
use super::project::current_project;
use crate::state::SecretPlaces;
use crate::{AppState, IpcError};

/// Checks the Destination screen's fields (the core's one validation).
#[tauri::command]
pub(crate) fn validate_destination(destination: DestinationSettings) -> Vec<FieldError> {
    destination_errors(&destination, Completeness::Ready)
}

/// What a destination test found: `ok` when a run could start (no blocking check), and every
/// endpoint's check in the order the run uses them.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct DestinationCheck {
    pub ok: bool,
    pub checks: Vec<EndpointCheck>,
}

/// The core's destination for valid settings, with the admin password from the keychain.
pub(crate) async fn open_destination(
    places: SecretPlaces,
    settings: &DestinationSettings,
    rules: &AccountRules,
) -> Result<Destination, IpcError> {
    IpcError::refuse_fields(destination_errors(settings, Completeness::Ready))?;
    let password = admin_password(places, settings).await?;
    Destination::from_config(&settings.config(rules), password)
        .map_err(|e| IpcError::new("invalid", e.to_string()))
}

/// Tests every endpoint the destination will use (the core's [`check_destination`]): a
/// folder must be writable; an IMAP server is reached, its certificate verified and one login
/// tried (with a master user, for the tenant's first mailbox, so the Source step must be
/// filled in); the CalDAV/CardDAV server answers an authenticated PROPFIND; IceWarp's admin
/// API accepts the administrator, and its settings that would slow the run are warnings.
///
/// The page's path fields are ignored: the open project's (chosen in native dialogs) are used.
#[tauri::command]
pub(crate) async fn test_destination<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    source: Option<SourceConfig>,
    destination: DestinationSettings,
) -> Result<DestinationCheck, IpcError> {
    let stored = current_project(&app, &state).map_or(
        DestinationSettings::Folder {
            path: String::new(),
        },
        |p| p.spec.destination,
    );
    let destination = destination.with_paths_of(&stored);
    let target = open_destination(state.secrets(), &destination, &AccountRules::default()).await?;
    let probe = match (&target, &destination) {
        (Destination::Imap { .. }, DestinationSettings::Imap { master_user, .. })
            if master_user.is_some() =>
        {
            let source = source.ok_or_else(|| {
                IpcError::new(
                    "invalid",
                    "Fill in the Source step first: the master user's login is tested with the tenant's first mailbox.",
                )
            })?;
            let secret = client_secret(state.secrets(), &source).await?;
            let (_, first) = test_source(&source, &secret, &RunOptions::default()).await?;
            first.and_then(|p| p.mail)
        }
        _ => None,
    };
    let checks = check_destination(&target, probe.as_deref()).await;
    Ok(DestinationCheck {
        ok: !checks.iter().any(EndpointCheck::blocks),
        checks,
    })
}
