// The app contract of issue 16 as the page uses it: the commands, typed, over the generated
// bindings. The few fields the page reads beyond them (app_info's `os`) are added here and
// optional, so an older backend still works.
import { invoke } from "@tauri-apps/api/core";
import type { SourceConfig } from "./bindings/SourceConfig";
import type { DestinationSettings } from "./bindings/DestinationSettings";
import type { WorkloadChoice } from "./bindings/WorkloadChoice";
import type { RunSummary } from "./bindings/RunSummary";
import type { PlanUser } from "./bindings/PlanUser";
import type { Plan } from "./bindings/Plan";
import type { AppInfo as BaseAppInfo } from "./bindings/AppInfo";
import type { FailureLine } from "./bindings/FailureLine";
import type { RunDetails } from "./bindings/RunDetails";
import type { IpcError } from "./bindings/IpcError";
import type { FieldError } from "./bindings/FieldError";
import type { MailboxState } from "./bindings/MailboxState";
import type { MailboxProgress } from "./bindings/MailboxProgress";
import type { RunSnapshot } from "./bindings/RunSnapshot";
import type { AccountRule } from "./bindings/AccountRule";
import type { AccountRules } from "./bindings/AccountRules";
import type { GroupRule } from "./bindings/GroupRule";
import type { ResourcesAs } from "./bindings/ResourcesAs";
import type { Selection } from "./bindings/Selection";
import type { PassKind } from "./bindings/PassKind";
import type { PassState } from "./bindings/PassState";
import type { PassRecord } from "./bindings/PassRecord";
import type { Project } from "./bindings/Project";
import type { ProjectSummary } from "./bindings/ProjectSummary";
import type { PlanAction } from "./bindings/PlanAction";
import type { MailboxKind } from "./bindings/MailboxKind";
import type { AccountsCsvPreview } from "./bindings/AccountsCsvPreview";
import type { CutoverChecklist } from "./bindings/CutoverChecklist";
import type { PathPurpose } from "./bindings/PathPurpose";
import type { RunStatus } from "./bindings/RunStatus";
import type { ScheduledPass } from "./bindings/ScheduledPass";
import type { KeptAwake } from "./bindings/KeptAwake";

export type {
  SourceConfig,
  DestinationSettings,
  WorkloadChoice,
  RunSummary,
  FieldError,
  IpcError,
  MailboxState,
  MailboxProgress,
  RunSnapshot,
  AccountRule,
  AccountRules,
  GroupRule,
  ResourcesAs,
  Selection,
  PassKind,
  PassState,
  PassRecord,
  Project,
  ProjectSummary,
  PlanAction,
  MailboxKind,
  PlanUser,
  Plan,
  AccountsCsvPreview,
  CutoverChecklist,
  PathPurpose,
  RunStatus,
  ScheduledPass,
  KeptAwake,
  FailureLine,
  RunDetails,
};

/** Which secret store the OS has, for the wording (app-contract-changes.md: `os`). */
export type Os = "macos" | "windows" | "linux";
export type AppInfo = BaseAppInfo & { os?: Os };


/** The message of anything a command threw. */
export function errorText(e: unknown): string {
  return (e as IpcError)?.message ?? String(e);
}

/** The contract's commands, typed. */
export const api = {
  appInfo: () => invoke<AppInfo>("app_info"),
  listProjects: () => invoke<ProjectSummary[]>("list_projects"),
  createProject: (name: string) => invoke<Project>("create_project", { name }),
  openProject: (id: string) => invoke<Project>("open_project", { id }),
  saveProject: (project: Project) => invoke<Project>("save_project", { project }),
  deleteProject: (id: string) => invoke<null>("delete_project", { id }),
  pickPath: (purpose: PathPurpose) => invoke<string | null>("pick_path", { purpose }),
  previewAccountsCsv: () => invoke<AccountsCsvPreview>("preview_accounts_csv"),
  planMigration: (refresh: boolean) => invoke<Plan>("plan_migration", { refresh }),
  /** False when no plan was counting. */
  cancelPlan: () => invoke<boolean>("cancel_plan"),
  startPass: (kind: PassKind) => invoke<null>("start_pass", { kind }),
  retryFailed: (user?: string) => invoke<null>("retry_failed", user === undefined ? {} : { user }),
  runSnapshot: () => invoke<RunSnapshot | null>("run_snapshot"),
  passSchedule: () => invoke<ScheduledPass | null>("pass_schedule"),
  /** `null` clears the schedule. */
  setPassSchedule: (everyHours: number | null) => invoke<ScheduledPass | null>("set_pass_schedule", { everyHours }),
  cutoverChecklist: () => invoke<CutoverChecklist>("cutover_checklist"),
  runDemo: () => invoke<null>("run_demo"),
  runDetails: () => invoke<RunDetails>("run_details"),
  runStatus: () => invoke<RunStatus>("run_status"),
  openRunFile: (file: "report" | "logFolder") => invoke<null>("open_run_file", { file }),
  controlRun: (action: "pause" | "resume" | "stop") => invoke<null>("control_run", { action }),
};
