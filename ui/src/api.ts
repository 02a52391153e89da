// The app contract of issue 16 (/work/briefs/app-contract.md) as the page uses it. Types the
// shell has not generated yet are written here by hand, field for field; once ts-rs emits them
// into bindings/ these become re-exports.
import { invoke } from "@tauri-apps/api/core";
import type { SourceConfig } from "./bindings/SourceConfig";
import type { DestinationSettings as BaseDestination } from "./bindings/DestinationSettings";
import type { WorkloadChoice } from "./bindings/WorkloadChoice";
import type { RunSummary } from "./bindings/RunSummary";
import type { PlanRow as BasePlanRow } from "./bindings/PlanRow";
import type { PlanView as BasePlanView } from "./bindings/PlanView";
import type { FailedItem as BaseFailedItem } from "./bindings/FailedItem";
import type { RunDetails as BaseRunDetails } from "./bindings/RunDetails";
import type { IpcError as BaseIpcError } from "./bindings/IpcError";
import type { FieldError } from "./bindings/FieldError";
import type { MailboxState } from "./bindings/MailboxState";
import type { MailboxProgress } from "./bindings/MailboxProgress";
import type { RunSnapshot } from "./bindings/RunSnapshot";

export type { SourceConfig, WorkloadChoice, RunSummary, FieldError };

/** IceWarp's variant gains the accounts CSV, set only through `pick_path`. */
export type DestinationSettings =
  | (Extract<BaseDestination, { kind: "iceWarp" }> & { accountsCsv?: string })
  | Exclude<BaseDestination, { kind: "iceWarp" }>;

export type AccountRule = "create" | "skip";
export type GroupRule = "skip" | "by-kind" | "mailing-lists" | "groups";

/** The core's IceWarp account rules (config.rs), as the project holds them. */
export interface AccountRules {
  disabledUsers: AccountRule;
  sharedMailboxes: AccountRule;
  resourceMailboxes: AccountRule;
  skipOnmicrosoft: boolean;
  groups: GroupRule;
  domainMap: Record<string, string>;
}

/** Empty `users`: every mailbox the rules keep. */
export interface Selection {
  users: string[];
}

export type PassKind = "full" | "incremental" | "final";
export type PassState = "running" | "finished" | "stopped" | "failed" | "interrupted";

export interface PassRecord {
  kind: PassKind;
  startedAt: number;
  finishedAt?: number;
  state: PassState;
  summary?: RunSummary;
}

export interface Project {
  id: string;
  name: string;
  demo: boolean;
  createdAt: number;
  updatedAt: number;
  source: SourceConfig;
  destination: DestinationSettings;
  rules: AccountRules;
  selection: Selection;
  workloads: WorkloadChoice[];
  mailSince?: string;
  mailUntil?: string;
  calendarSince?: string;
  passes: PassRecord[];
}

export interface ProjectSummary {
  id: string;
  name: string;
  demo: boolean;
  updatedAt: number;
  lastPass?: PassRecord;
}

export type PlanAction = { kind: "create" } | { kind: "merge" } | { kind: "copy" } | { kind: "skip"; reason: string };
export type MailboxKind = "user" | "shared" | "room" | "equipment" | "guest" | "unknown";
export type PlanRow = BasePlanRow & { action: PlanAction; kind: MailboxKind };
export type PlanView = Omit<BasePlanView, "users"> & { users: PlanRow[] };

export interface AccountsCsvPreview {
  rows: number;
  matched: number;
  /** The first 50 addresses of the CSV that are not in the tenant. */
  unmatched: string[];
  /** Tenant mailboxes without a CSV row. */
  missing: number;
  errors: { line: number; message: string }[];
}

export type { MailboxState, MailboxProgress, RunSnapshot };

export interface CutoverChecklist {
  domains: { domain: string; mx: string[]; error?: string }[];
  lastPass?: PassRecord;
  credentialsReport?: string;
}

/** Which secret store the OS has, for the wording (app-contract-changes.md: `os`). */
export type Os = "macos" | "windows" | "linux";
export interface AppInfo {
  version: string;
  logDir?: string;
  os?: Os;
}

/** A failed item named as the user knows it (app-contract-changes.md: subject, received, size). */
export type FailedItem = BaseFailedItem & { subject?: string; received?: string; size?: number };
export type RunDetails = Omit<BaseRunDetails, "failures"> & { failures: FailedItem[] };

/** An IPC error; `fields` when `save_project` found fields that are not right. */
export type IpcError = BaseIpcError & { fields?: FieldError[] };

export type PathPurpose = "accountsCsv" | "caFile" | "credentialsReport" | "destinationFolder";

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
  planMigration: (refresh: boolean) => invoke<PlanView>("plan_migration", { refresh }),
  cancelPlan: () => invoke<null>("cancel_plan"),
  startPass: (kind: PassKind) => invoke<null>("start_pass", { kind }),
  retryFailed: (user?: string) => invoke<null>("retry_failed", user === undefined ? {} : { user }),
  runSnapshot: () => invoke<RunSnapshot | null>("run_snapshot"),
  cutoverChecklist: () => invoke<CutoverChecklist>("cutover_checklist"),
  runDemo: () => invoke<null>("run_demo"),
  runDetails: () => invoke<RunDetails>("run_details"),
  runStatus: () => invoke<{ running: boolean }>("run_status"),
  openRunFile: (file: "report" | "logFolder") => invoke<null>("open_run_file", { file }),
  controlRun: (action: "pause" | "resume" | "stop") => invoke<null>("control_run", { action }),
};
