//! Projects: saved migrations the app reopens as they were ([`migrator_core::project`]), the
//! paths they hold (only from native dialogs), the accounts CSV preview and the cut-over
//! checklist. Every command acts on the project `open_project` opened.

use std::path::{Path, PathBuf};

use migrator_core::cutover::{domains_to_check, mx_of};
use migrator_core::project::{
    default_credentials_report, unix_now, CutoverChecklist, Project, ProjectError, ProjectStore,
    ProjectSummary, DEMO_ID,
};
use migrator_core::spec::{AccountsCsvPreview, Completeness, DestinationSettings, PathPurpose};
use tauri::{AppHandle, Manager, Runtime, State};

use super::{blocking, data_dir};
use crate::{AppState, IpcError};

impl From<ProjectError> for IpcError {
    fn from(e: ProjectError) -> Self {
        let code = match e {
            ProjectError::Missing(_) => "missing",
            ProjectError::BadId(_) => "invalid",
            ProjectError::Unreadable { .. } | ProjectError::Write { .. } => "io",
        };
        IpcError::new(code, crate::ipc_error::message_chain(&e))
    }
}

/// The store of projects: `<data dir>/projects`.
pub(crate) fn store<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
) -> Result<ProjectStore, IpcError> {
    Ok(ProjectStore::new(data_dir(app, state)?.join("projects")))
}

/// The open project, as last saved.
pub(crate) fn current_project<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
) -> Result<Project, IpcError> {
    let id = state
        .project()
        .ok_or_else(|| IpcError::new("noProject", "Open or create a project first."))?;
    Ok(store(app, state)?.load(&id)?)
}

/// Where new accounts' passwords go unless the user chooses: the documents folder (the data
/// folder when there is none), never a system folder such as /root.
fn documents<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> Result<PathBuf, IpcError> {
    if let Some(dir) = state.data_dir() {
        return Ok(dir);
    }
    app.path()
        .document_dir()
        .or_else(|_| app.path().app_data_dir())
        .map_err(|e| IpcError::new("internal", format!("no documents folder: {e}")))
}

/// An IceWarp destination without a credentials report gets the default one.
fn with_default_report(
    mut destination: DestinationSettings,
    documents: &Path,
    id: &str,
) -> DestinationSettings {
    if destination.path(PathPurpose::CredentialsReport).is_none() {
        let _ = destination.set_path(
            PathPurpose::CredentialsReport,
            &default_credentials_report(documents, id),
        );
    }
    destination
}

#[tauri::command]
pub(crate) fn list_projects<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<Vec<ProjectSummary>, IpcError> {
    let idle = state.current_run().is_none();
    Ok(store(&app, &state)?
        .list()
        .into_iter()
        .map(|mut p| {
            if idle {
                p.settle_interrupted();
            }
            p.summary()
        })
        .collect())
}

/// Creates an empty project (an IceWarp destination with the default credentials report)
/// and opens it.
#[tauri::command]
pub(crate) fn create_project<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    name: String,
) -> Result<Project, IpcError> {
    if name.trim().is_empty() {
        return Err(IpcError::new("invalid", "Give the project a name."));
    }
    let mut project = Project::new(&name, unix_now());
    project.spec.destination = with_default_report(
        project.spec.destination,
        &documents(&app, &state)?,
        &project.id,
    );
    store(&app, &state)?.save(&project)?;
    state.set_project(Some(project.id.clone()));
    Ok(project)
}

#[tauri::command]
pub(crate) fn open_project<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    id: String,
) -> Result<Project, IpcError> {
    let store = store(&app, &state)?;
    let mut project = store.load(&id)?;
    if state.current_run().is_none() && project.settle_interrupted() {
        store.save(&project)?;
    }
    state.set_project(Some(project.id.clone()));
    Ok(project)
}

/// Saves the page's copy of the open project: checked by the core's validation (fields may
/// still be empty; a filled one must be right), its path fields ignored (the stored ones are
/// kept), its id, history and demo mark the stored ones.
#[tauri::command]
pub(crate) fn save_project<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    project: Project,
) -> Result<Project, IpcError> {
    let store = store(&app, &state)?;
    let current = current_project(&app, &state)?;
    if project.id != current.id {
        return Err(IpcError::new(
            "invalid",
            "Only the open project can be saved: open it first.",
        ));
    }
    let mut spec = project.spec;
    spec.destination = with_default_report(
        spec.destination.with_paths_of(&current.spec.destination),
        &documents(&app, &state)?,
        &current.id,
    );
    IpcError::refuse_fields(spec.field_errors(Completeness::Draft))?;
    let saved = Project {
        name: if project.name.trim().is_empty() {
            current.name.clone()
        } else {
            project.name.trim().to_string()
        },
        updated_at: unix_now(),
        spec,
        ..current
    };
    store.save(&saved)?;
    Ok(saved)
}

#[tauri::command]
pub(crate) fn delete_project<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    id: String,
) -> Result<(), IpcError> {
    store(&app, &state)?.delete(&id)?;
    if state.project().as_deref() == Some(id.as_str()) {
        state.set_project(None);
    }
    Ok(())
}

/// Asks for a path in a native dialog, stores it in the open project and returns it for
/// display (`None`: cancelled). The page never sends a path.
#[tauri::command]
pub(crate) async fn pick_path<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    purpose: PathPurpose,
) -> Result<Option<String>, IpcError> {
    let mut project = current_project(&app, &state)?;
    if project.id == DEMO_ID {
        return Err(IpcError::new("invalid", "The demo's paths are its own."));
    }
    let picker = state.picker();
    let dialog_app = app.clone();
    let chosen = blocking(move || {
        Ok(match picker {
            Some(pick) => pick(purpose),
            None => native_dialog(&dialog_app, purpose),
        })
    })
    .await?;
    let Some(path) = chosen else {
        return Ok(None);
    };
    project
        .spec
        .destination
        .set_path(purpose, &path)
        .map_err(|e| IpcError::new("invalid", e.to_string()))?;
    project.updated_at = unix_now();
    store(&app, &state)?.save(&project)?;
    Ok(Some(path.display().to_string()))
}

/// The desktop's own file or folder dialog (tauri-plugin-dialog), on a blocking thread.
fn native_dialog<R: Runtime>(app: &AppHandle<R>, purpose: PathPurpose) -> Option<PathBuf> {
    use tauri_plugin_dialog::DialogExt;
    let dialog = app.dialog().file();
    let picked = match purpose {
        PathPurpose::AccountsCsv => dialog
            .set_title("Accounts CSV (address,password)")
            .add_filter("CSV", &["csv", "txt"])
            .blocking_pick_file(),
        PathPurpose::CaFile => dialog
            .set_title("CA certificate (PEM)")
            .add_filter("PEM", &["pem", "crt", "cer"])
            .blocking_pick_file(),
        PathPurpose::CredentialsReport => dialog
            .set_title("Where to keep the new accounts' passwords")
            .set_file_name("new-accounts.csv")
            .blocking_save_file(),
        PathPurpose::DestinationFolder => dialog
            .set_title("Folder for the migrated mailboxes")
            .blocking_pick_folder(),
    };
    picked.and_then(|p| p.into_path().ok())
}

/// How the open project's accounts CSV matches the tenant's mailboxes of the last plan
/// (counts and addresses only, never a password).
#[tauri::command]
pub(crate) async fn preview_accounts_csv<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<AccountsCsvPreview, IpcError> {
    let project = current_project(&app, &state)?;
    let path = project
        .spec
        .destination
        .path(PathPurpose::AccountsCsv)
        .map(PathBuf::from)
        .ok_or_else(|| IpcError::new("missing", "Choose the accounts CSV first."))?;
    let tenant = state.plan_addresses();
    blocking(move || Ok(AccountsCsvPreview::of(&path, &tenant))).await
}

/// What to check before the cut-over: where the MX records of each domain of the last plan
/// (and of the domain map) point, looked up at once under a short budget; the last pass; the
/// credentials report.
#[tauri::command]
pub(crate) async fn cutover_checklist<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<CutoverChecklist, IpcError> {
    let project = current_project(&app, &state)?;
    let domains = domains_to_check(
        &state.plan_addresses(),
        project.spec.rules.domain_map.keys(),
    );
    Ok(CutoverChecklist {
        domains: mx_of(state.mx_lookup(), &domains).await,
        last_pass: project.passes.last().cloned(),
        credentials_report: project
            .spec
            .destination
            .path(PathPurpose::CredentialsReport)
            .map(str::to_string),
    })
}
