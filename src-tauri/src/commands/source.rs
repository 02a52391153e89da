//! The Source screen: the app registration's fields and a test sign-in.

use migrator_core::config::SourceConfig;
use migrator_core::engine::{test_source, RunOptions};
use migrator_core::graph::permissions::PermissionStatus;
use migrator_core::spec::{source_errors, Completeness, FieldError};
use tauri::State;

use super::keychain::client_secret;
use crate::{AppState, IpcError};

/// Checks the Source screen's fields (the core's one validation).
#[tauri::command]
pub(crate) fn validate_source(source: SourceConfig) -> Vec<FieldError> {
    source_errors(&source, Completeness::Ready)
}

/// Signs in with the Source screen's settings and the client secret stored for them, and
/// reports each permission as granted or missing. Settings the core refuses (a Graph URL the
/// secret was not stored for) are refused before anything is sent.
#[tauri::command]
pub(crate) async fn test_connection(
    state: State<'_, AppState>,
    source: SourceConfig,
) -> Result<Vec<PermissionStatus>, IpcError> {
    IpcError::refuse_fields(source_errors(&source, Completeness::Ready))?;
    let secret = client_secret(state.secrets(), &source).await?;
    let (permissions, _) = test_source(&source, &secret, &RunOptions::default()).await?;
    Ok(permissions)
}
