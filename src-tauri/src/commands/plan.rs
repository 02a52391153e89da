//! The Plan screen: what a pass of the current project would do, mailbox by mailbox.

use migrator_core::engine::estimate::DestinationKind;
use migrator_core::engine::{self, Plan, PlanOptions, RunOptions};
use migrator_core::spec::Completeness;
use tauri::{AppHandle, Runtime, State};

use super::keychain::client_secret;
use super::project::{current_project, store};
use crate::{AppState, IpcError};

/// Discovers the current project's selected mailboxes with their folders and item counts for
/// its workloads and date limits, and what a pass does with each ([`migrator_core::spec::MigrationSpec::decide`]:
/// create, merge into an existing account, copy, or skip and why; nothing is written).
/// Mailboxes counted before (kept in the project's folder) are not read again unless
/// `refresh`; a new plan cancels the one counting before it, and `cancel_plan` cancels it
/// (rejected with code `cancelled`).
#[tauri::command]
pub(crate) async fn plan_migration<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    refresh: Option<bool>,
) -> Result<Plan, IpcError> {
    let project = current_project(&app, &state)?;
    let counts_dir = store(&app, &state)?.project_dir(&project.id)?;
    let spec = project.spec;
    IpcError::refuse_fields(migrator_core::spec::source_errors(
        &spec.source,
        Completeness::Ready,
    ))?;
    let options = RunOptions {
        state_dir: Some(counts_dir),
        ..spec
            .run_options()
            .map_err(|e| IpcError::refuse_fields(vec![e]).unwrap_err())?
    };
    let secret = client_secret(state.secrets(), &spec.source).await?;
    let (number, cancel) = state.begin_plan();
    let how = PlanOptions {
        refresh: refresh.unwrap_or(false),
        cancel,
        destination: DestinationKind::of(&spec.destination_config()),
    };
    let plan = engine::plan_with(&spec.source, &secret, &options, &how).await;
    state.end_plan(number);
    let mut plan = plan?;
    state.set_plan_addresses(plan.users.iter().map(|u| u.address.clone()).collect());
    spec.decide(&mut plan);
    Ok(plan)
}

/// Cancels the plan being counted (its `plan_migration` is rejected with code `cancelled`;
/// the mailboxes counted by then are kept); `false` when none is.
#[tauri::command]
pub(crate) fn cancel_plan(state: State<'_, AppState>) -> bool {
    state.cancel_plan()
}
