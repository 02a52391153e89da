//! The Plan screen: what a pass of the current project would do, mailbox by mailbox.

use migrator_core::engine::{
    self, plan_action, MailboxKind, Plan, PlanAction, PlanOptions, RunOptions,
};
use migrator_core::spec::{Completeness, DestinationSettings, MigrationSpec};
use serde::Serialize;
use tauri::{AppHandle, Runtime, State};
use ts_rs::TS;

use super::keychain::client_secret;
use super::project::{current_project, store};
use crate::{AppState, IpcError};

/// One mailbox of the plan, as the Plan screen lists it. Counts of workloads not chosen are 0.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct PlanRow {
    pub address: String,
    pub user_principal_name: String,
    /// `false` for an account whose sign-in is blocked (what becomes of it: `action`).
    pub enabled: bool,
    /// What the run does with it, from the destination and the account rules.
    pub action: PlanAction,
    pub kind: MailboxKind,
    #[ts(type = "number")]
    pub folders: u64,
    /// Messages in the migrated folders (inside the mail date limits).
    #[ts(type = "number")]
    pub items: u64,
    #[ts(type = "number")]
    pub calendars: u64,
    #[ts(type = "number")]
    pub events: u64,
    #[ts(type = "number")]
    pub contact_folders: u64,
    #[ts(type = "number")]
    pub contacts: u64,
    #[ts(type = "number")]
    pub task_lists: u64,
    #[ts(type = "number")]
    pub tasks: u64,
    /// Messages and events the date limits leave out.
    #[ts(type = "number")]
    pub out_of_range: u64,
    pub estimated_seconds: f64,
    /// Why this mailbox (or one of its workloads) cannot be read; the run would report it and
    /// go on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub problem: Option<String>,
    /// Why this user is not migrated at all (`guest, not migrated`, `no Exchange mailbox`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub not_migrated: Option<String>,
    /// `true`: the user has an online archive, which is not migrated (export it separately).
    pub online_archive: bool,
}

/// What a run would do: the core's [`engine::plan`] for the Plan screen.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct PlanView {
    pub users: Vec<PlanRow>,
    #[ts(type = "number")]
    pub guests: u64,
    #[ts(type = "number")]
    pub without_mailbox: u64,
    #[ts(type = "number")]
    pub online_archives: u64,
    /// The domains of the users' addresses (accounts at the destination are in these).
    pub domains: Vec<String>,
    #[ts(type = "number")]
    pub items: u64,
    #[ts(type = "number")]
    pub events: u64,
    #[ts(type = "number")]
    pub contacts: u64,
    #[ts(type = "number")]
    pub tasks: u64,
    #[ts(type = "number")]
    pub out_of_range: u64,
    pub estimated_seconds: f64,
}

/// The plan of `spec`, each mailbox with its action: IceWarp applies the account rules and
/// merges into accounts the accounts CSV lists; IMAP and folders copy every mailbox.
pub(crate) fn view(plan: Plan, spec: &MigrationSpec) -> PlanView {
    let (rules, existing) = match &spec.destination {
        DestinationSettings::IceWarp { accounts_csv, .. } => {
            let listed = accounts_csv
                .as_deref()
                .filter(|p| !p.trim().is_empty())
                .and_then(|p| migrator_core::config::read_accounts_csv(p.as_ref()).ok())
                .map(|accounts| accounts.into_keys().collect::<Vec<_>>())
                .unwrap_or_default();
            (Some(&spec.rules), listed)
        }
        _ => (None, Vec::new()),
    };
    PlanView {
        users: plan
            .users
            .into_iter()
            .map(|u| PlanRow {
                action: plan_action(
                    u.kind,
                    u.enabled,
                    u.not_migrated.as_deref(),
                    rules,
                    existing.contains(&u.address.to_lowercase()),
                ),
                kind: u.kind,
                address: u.address,
                user_principal_name: u.user_principal_name,
                enabled: u.enabled,
                folders: u.folders,
                items: u.items,
                calendars: u.calendars,
                events: u.events,
                contact_folders: u.contact_folders,
                contacts: u.contacts,
                task_lists: u.task_lists,
                tasks: u.tasks,
                out_of_range: u.out_of_range,
                estimated_seconds: u.estimated_seconds,
                problem: u.problem,
                not_migrated: u.not_migrated,
                online_archive: u.online_archive == Some(true),
            })
            .collect(),
        guests: plan.guests,
        without_mailbox: plan.without_mailbox,
        online_archives: plan.online_archives,
        domains: plan.domains,
        items: plan.items,
        events: plan.events,
        contacts: plan.contacts,
        tasks: plan.tasks,
        out_of_range: plan.out_of_range,
        estimated_seconds: plan.estimated_seconds,
    }
}

/// Discovers the current project's selected mailboxes with their folders and item counts for
/// its workloads and date limits, and what a pass does with each (nothing is written).
/// Mailboxes counted before (kept in the project's folder) are not read again unless
/// `refresh`; a new plan cancels the one counting before it, and `cancel_plan` cancels it
/// (rejected with code `cancelled`).
#[tauri::command]
pub(crate) async fn plan_migration<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    refresh: Option<bool>,
) -> Result<PlanView, IpcError> {
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
    };
    let plan = engine::plan_with(&spec.source, &secret, &options, &how).await;
    state.end_plan(number);
    let plan = plan?;
    state.set_plan_addresses(plan.users.iter().map(|u| u.address.clone()).collect());
    Ok(view(plan, &spec))
}

/// Cancels the plan being counted (its `plan_migration` is rejected with code `cancelled`;
/// the mailboxes counted by then are kept); `false` when none is.
#[tauri::command]
pub(crate) fn cancel_plan(state: State<'_, AppState>) -> bool {
    state.cancel_plan()
}
