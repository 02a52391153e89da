import { Channel, invoke } from "@tauri-apps/api/core";
import type { ProgressEvent } from "./bindings/ProgressEvent";
import type { RunSummary } from "./bindings/RunSummary";
import type { IpcError } from "./bindings/IpcError";
import type { PermissionStatus } from "./bindings/PermissionStatus";
import type { SourceConfig } from "./bindings/SourceConfig";
import type { Cloud } from "./bindings/Cloud";
import { checkSource, isGuid, isTenantId } from "./validate";
import { SecretField } from "./secret-field";
import { el, show, showFieldErrors as showErrors, type Screen } from "./dom";
import { destinationSettings, wireDestination } from "./destination";
import { getCurrentWindow } from "@tauri-apps/api/window";
import type { PlanView } from "./bindings/PlanView";
import type { RunScope } from "./bindings/RunScope";
import type { RunDetails } from "./bindings/RunDetails";
import type { RunFile } from "./bindings/RunFile";
import type { RunRequest } from "./bindings/RunRequest";
import type { RunStatus } from "./bindings/RunStatus";
import type { WorkloadChoice } from "./bindings/WorkloadChoice";

const PERMISSIONS: Array<[string, string]> = [
  ["User.Read.All", "list users and their addresses (required)"],
  ["Mail.Read", "read mail folders and messages (required)"],
  ["Domain.Read.All", "list the tenant's domains"],
  ["MailboxSettings.Read", "read each mailbox's time zone and language"],
  ["Calendars.Read", "read calendars and events"],
  ["Contacts.Read", "read contacts"],
  ["Tasks.Read.All", "read Microsoft To Do tasks"],
];

function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

// --- Source screen -------------------------------------------------------------------

function renderPermissions(): void {
  const list = el<HTMLUListElement>("permissions");
  for (const [name, purpose] of PERMISSIONS) {
    const li = document.createElement("li");
    const code = document.createElement("code");
    code.textContent = name;
    const text = document.createElement("span");
    text.textContent = ` ${purpose}`;
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy";
    copy.textContent = "Copy";
    copy.setAttribute("aria-label", `Copy ${name}`);
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(name);
        copy.textContent = "Copied";
      } catch {
        copy.textContent = "Select and copy";
      }
      setTimeout(() => (copy.textContent = "Copy"), 1500);
    });
    li.append(code, text, copy);
    list.append(li);
  }
}

const FIELD_IDS: Record<string, string> = {
  tenantId: "tenant-id",
  clientId: "client-id",
  clientSecret: "client-secret",
};

function showFieldErrors(errors: Record<string, string>): void {
  showErrors(FIELD_IDS, errors);
}

function readSource() {
  return {
    tenantId: el<HTMLInputElement>("tenant-id").value,
    clientId: el<HTMLInputElement>("client-id").value,
    clientSecret: el<HTMLInputElement>("client-secret").value,
  };
}

/** The keychain account of the app registration, once both IDs look right. */
function sourceAccount(): string | null {
  const { tenantId, clientId } = readSource();
  return isTenantId(tenantId) && isGuid(clientId) ? `${tenantId.trim()}/${clientId.trim()}` : null;
}

const clientSecret = new SecretField("client-secret", "graphClientSecret", sourceAccount);

function sourceConfig(): SourceConfig {
  const { tenantId, clientId } = readSource();
  return { tenantId: tenantId.trim(), clientId: clientId.trim(), cloud: el<HTMLSelectElement>("cloud").value as Cloud };
}

/**
 * Checks the fields and hands a typed secret to the keychain (the secret field is cleared);
 * true when the source is ready to sign in with.
 */
async function sourceReady(): Promise<boolean> {
  const errors = checkSource(readSource(), clientSecret.stored);
  showFieldErrors(errors);
  const status = el("source-status");
  if (Object.keys(errors).length > 0) {
    status.textContent = "Please correct the highlighted fields.";
    return false;
  }
  if (!(await clientSecret.commit())) {
    status.textContent = "The client secret could not be stored (see above).";
    return false;
  }
  status.textContent = "";
  return true;
}

async function sourceNext(): Promise<void> {
  if (await sourceReady()) show("destination");
}

function wireSource(): void {
  const form = el<HTMLFormElement>("source-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = readSource();
    const errors = checkSource(fields, clientSecret.stored);
    showFieldErrors(errors);
    const status = el("source-status");
    if (Object.keys(errors).length > 0) {
      status.textContent = "Please correct the highlighted fields.";
      return;
    }
    try {
      const backend = await invoke<Array<{ field: string; message: string }>>("validate_source", {
        source: sourceConfig(),
      });
      const fromBackend: Record<string, string> = {};
      for (const e of backend) fromBackend[e.field] = e.message;
      showFieldErrors(fromBackend);
      status.textContent =
        backend.length === 0
          ? "The fields look right. Connecting to the tenant and choosing a destination come next."
          : "Please correct the highlighted fields.";
    } catch (e) {
      status.textContent = `Could not check the fields: ${(e as IpcError).message ?? String(e)}`;
    }
  });
  el("test-connection").addEventListener("click", () => testConnection());
  el("source-next").addEventListener("click", () => void sourceNext());
  for (const id of ["tenant-id", "client-id"]) {
    el(id).addEventListener("change", () => void clientSecret.refresh());
  }
  for (const id of Object.values(FIELD_IDS)) {
    el(id).addEventListener("blur", () => {
      const errors = checkSource(readSource(), clientSecret.stored);
      const field = Object.entries(FIELD_IDS).find(([, v]) => v === id)?.[0] ?? "";
      const value = (el<HTMLInputElement>(id).value ?? "").trim();
      if (value !== "") {
        el(`${id}-error`).textContent = errors[field] ?? "";
        el(id).setAttribute("aria-invalid", errors[field] ? "true" : "false");
      }
    });
  }
}

function renderPermissionResults(results: PermissionStatus[]): void {
  const list = el<HTMLUListElement>("permission-results");
  list.replaceChildren();
  for (const p of results) {
    const granted = p.probeOk ?? p.inToken ?? false;
    const li = document.createElement("li");
    li.dataset.permission = p.name;
    if (p.notUsed != null) {
      // Not used in this cloud (To Do in China): neither granted nor missing.
      li.className = "not-used";
      li.textContent = `– not used  ${p.name}: ${p.notUsed}`;
      list.append(li);
      continue;
    }
    li.className = granted ? "granted" : "missing";
    li.textContent = `${granted ? "✓ granted" : "✗ missing"}  ${p.name}${p.required ? " (required)" : ""}`;
    list.append(li);
  }
  list.hidden = false;
}

/** Signs in with the entered settings and shows each permission as granted or missing. */
async function testConnection(): Promise<void> {
  el("permission-results").hidden = true;
  // The typed secret goes to the keychain first; sign-in then uses the stored one.
  if (!(await sourceReady())) return;
  const status = el("source-status");
  status.textContent = "Signing in…";
  try {
    const results = await invoke<PermissionStatus[]>("test_connection", { source: sourceConfig() });
    renderPermissionResults(results);
    const missing = results.filter((p) => p.required && !(p.probeOk ?? p.inToken ?? false));
    status.textContent =
      missing.length === 0
        ? "Signed in. The required permissions are granted."
        : `Signed in, but ${missing.map((p) => p.name).join(", ")} must be granted (API permissions, then Grant admin consent).`;
  } catch (e) {
    status.textContent = `Sign-in failed: ${(e as IpcError).message ?? String(e)}`;
  }
}

// --- Plan screen ---------------------------------------------------------------------

let planFor = "";
/** The latest plan request: an older answer arriving late is dropped. */
let planSeq = 0;
/** Mailboxes picked by hand: they stay picked when the plan is counted again, also after a
 * batch that left them out. */
const pickedUsers = new Set<string>();

function renderPlan(plan: PlanView): void {
  const body = el("plan-users");
  body.replaceChildren();
  const all = el<HTMLInputElement>("plan-all").checked;
  for (const u of plan.users) {
    const row = document.createElement("tr");
    row.dataset.user = u.address;
    const pick = document.createElement("input");
    pick.type = "checkbox";
    pick.checked = all || pickedUsers.has(u.address);
    pick.value = u.address;
    pick.setAttribute("aria-label", `Migrate ${u.address}`);
    pick.addEventListener("change", () => {
      if (pick.checked) pickedUsers.add(u.address);
      else pickedUsers.delete(u.address);
      if (!pick.checked) el<HTMLInputElement>("plan-all").checked = false;
    });
    const notes = [
      u.notMigrated ?? "",
      u.enabled || u.notMigrated ? "" : "sign-in blocked (still migrated)",
      u.problem ? `cannot be read: ${u.problem}` : "",
      u.onlineArchive ? "has an online archive: not migrated, export it separately" : "",
    ];
    const counts = [u.folders, u.items, u.events, u.contacts, u.tasks, u.outOfRange].map(String);
    const cells = [pick, u.address, ...counts, formatDuration(u.estimatedSeconds), notes.filter(Boolean).join("; ")].map((content) => {
      const td = document.createElement("td");
      td.append(content);
      return td;
    });
    row.append(...cells);
    body.append(row);
  }
  const notMigrated = [
    plan.guests > 0 ? `${plan.guests} guests` : "",
    plan.withoutMailbox > 0 ? `${plan.withoutMailbox} without an Exchange mailbox` : "",
    plan.onlineArchives > 0 ? `${plan.onlineArchives} online archives` : "",
  ].filter(Boolean);
  const leftOut =
    (plan.outOfRange > 0 ? ` · ${plan.outOfRange} left out by the date limits` : "") +
    (notMigrated.length > 0 ? ` · not migrated: ${notMigrated.join(", ")}` : "");
  el("plan-summary").textContent =
    `${plan.users.length} ${plan.users.length === 1 ? "mailbox" : "mailboxes"} · ${plan.items} messages · ${plan.events} events · ${plan.contacts} contacts · ` +
    `${plan.tasks} tasks${leftOut} · estimated ${formatDuration(plan.estimatedSeconds)} · domains: ${plan.domains.join(", ")}`;
}

/** The chosen batch and date limits (only those set), as the backend's RunScope has them. */
function planLimits(): Omit<RunScope, "users" | "workloads"> {
  const scope: Omit<RunScope, "users" | "workloads"> = {};
  if (el<HTMLInputElement>("plan-use-batch").checked) {
    scope.batchSize = el<HTMLInputElement>("plan-batch-size").valueAsNumber;
    scope.batch = el<HTMLInputElement>("plan-batch").valueAsNumber;
  }
  const date = (id: string) => el<HTMLInputElement>(id).value || undefined;
  const [mailSince, mailUntil, calendarSince] = [date("plan-mail-since"), date("plan-mail-until"), date("plan-calendar-since")];
  if (mailSince) scope.mailSince = mailSince;
  if (mailUntil) scope.mailUntil = mailUntil;
  if (calendarSince) scope.calendarSince = calendarSince;
  return scope;
}

/** Why the batch or date choices cannot be used, or null. */
function limitsProblem(scope: Omit<RunScope, "users" | "workloads">): string | null {
  if (scope.batchSize !== undefined && !(Number.isInteger(scope.batchSize) && scope.batchSize >= 1)) return "The batch size must be a whole number from 1.";
  if (scope.batch !== undefined && !(Number.isInteger(scope.batch) && scope.batch >= 1)) return "Batches are numbered from 1.";
  if (scope.mailSince && scope.mailUntil && scope.mailUntil <= scope.mailSince) return "The mail end date must be after its start date.";
  return null;
}

async function loadPlan(force = false): Promise<void> {
  const source = sourceConfig();
  const scope: RunScope = { users: [], workloads: selectedWorkloads(), ...planLimits() };
  const key = JSON.stringify([source.tenantId, source.clientId, source.cloud, scope]);
  if (!force && key === planFor) return;
  const status = el("plan-status");
  const problem = limitsProblem(scope);
  if (problem !== null || scope.workloads.length === 0) {
    status.textContent = problem ?? "Choose at least one workload.";
    return;
  }
  status.textContent = "Counting each mailbox's items…";
  el("plan-summary").textContent = "";
  const seq = ++planSeq;
  try {
    const plan = await invoke<PlanView>("plan_migration", { source, scope });
    if (seq !== planSeq) return;
    renderPlan(plan);
    planFor = key;
    status.textContent = "";
    el("start-status").textContent = "";
  } catch (e) {
    if (seq !== planSeq) return;
    planFor = "";
    el("plan-users").replaceChildren();
    status.textContent = `Could not count the mailboxes: ${(e as IpcError).message ?? String(e)}`;
  }
}

/** The chosen workloads (at least one to start). */
function selectedWorkloads(): WorkloadChoice[] {
  return Array.from(document.querySelectorAll<HTMLInputElement>('input[name="workload"]:checked')).map(
    (c) => c.value as WorkloadChoice,
  );
}

/** The chosen mailboxes; empty means all (also those created after the list was loaded). */
function selectedUsers(): string[] | null {
  const picks = Array.from(document.querySelectorAll<HTMLInputElement>("#plan-users input[type=checkbox]"));
  if (el<HTMLInputElement>("plan-all").checked) return [];
  const chosen = picks.filter((p) => p.checked).map((p) => p.value);
  return chosen.length > 0 ? chosen : null;
}

function wirePlan(start: (scope: RunScope) => void): void {
  el("plan-all").addEventListener("change", () => {
    const all = el<HTMLInputElement>("plan-all").checked;
    pickedUsers.clear();
    document.querySelectorAll<HTMLInputElement>("#plan-users input[type=checkbox]").forEach((p) => {
      p.checked = all;
      if (all) pickedUsers.add(p.value);
    });
  });
  el("plan-use-batch").addEventListener("change", () => {
    const on = el<HTMLInputElement>("plan-use-batch").checked;
    for (const id of ["plan-batch", "plan-batch-size"]) el<HTMLInputElement>(id).disabled = !on;
  });
  // A changed choice is counted again: the table always shows what Start would migrate.
  const recount = ["plan-use-batch", "plan-batch", "plan-batch-size", "plan-mail-since", "plan-mail-until", "plan-calendar-since"];
  for (const id of recount) el(id).addEventListener("change", () => void loadPlan());
  document.querySelectorAll('input[name="workload"]').forEach((w) => w.addEventListener("change", () => void loadPlan()));
  el("plan-refresh").addEventListener("click", () => void loadPlan(true));
  el("plan-back").addEventListener("click", () => show("destination"));
  el("start-migration").addEventListener("click", () => {
    const users = selectedUsers();
    const workloads = selectedWorkloads();
    const limits = planLimits();
    const problem = users === null ? "Choose at least one mailbox." : workloads.length === 0 ? "Choose at least one workload." : limitsProblem(limits);
    if (users === null || problem !== null) {
      el("start-status").textContent = problem ?? "";
      return;
    }
    el("start-status").textContent = "";
    start({ users, workloads, ...limits });
  });
}

// --- Migrate screen ------------------------------------------------------------------

interface UserRow {
  total: number;
  done: number;
  row: HTMLTableRowElement;
}

/**
 * Failures of one item (a message, event, contact or task) end that item like `itemDone`;
 * those of a whole folder, list, page or account (named in parentheses) are not items.
 */
function isItem(item: string): boolean {
  return !item.startsWith("(");
}

/** Failed items the Migrate screen lists live (a long list would slow the window). */
const FAILURES_SHOWN = 200;

class RunView {
  private users = new Map<string, UserRow>();
  /** Mailboxes Microsoft asked to wait, until when (ms since page load). */
  private waiting = new Map<string, number>();
  /** Items announced so far: messages counted ahead, then each listed page of groupware. */
  private total = 0;
  /** Items ended: written, already there, or failed. */
  private done = 0;
  private bytes = 0;
  private failed = 0;
  private started = performance.now();
  /** When the run was paused (ms since page load), and the time paused before. */
  private pausedAt: number | null = null;
  private pausedFor = 0;
  /** Failed items listed live; past FAILURES_SHOWN the rest are counted (the report has all). */
  private shownFailures = 0;
  /** Called with the summary when the run reports its end (a watched run has no promise). */
  onFinished: ((summary: RunSummary) => void) | null = null;

  reset(): void {
    this.users.clear();
    this.waiting.clear();
    this.total = this.done = this.bytes = this.failed = 0;
    this.started = performance.now();
    this.onFinished = null;
    el("user-rows").replaceChildren();
    el("failures").innerHTML = '<li class="none">None so far.</li>';
    el("run-status").textContent = "";
    el("throttle-status").hidden = true;
    el("counters").textContent = "Signing in…";
    el("pause").hidden = false;
    el("resume").hidden = true;
    el("stop").hidden = false;
    el("run-back").hidden = true;
    this.shownFailures = 0;
    this.pausedAt = null;
    this.pausedFor = 0;
    this.setBar(0);
  }

  private setBar(fraction: number): void {
    const pct = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
    el("overall-bar").style.width = `${pct}%`;
    el("overall").setAttribute("aria-valuenow", String(pct));
  }

  private row(user: string): UserRow {
    let entry = this.users.get(user);
    if (!entry) {
      const row = document.createElement("tr");
      row.dataset.user = user;
      for (let i = 0; i < 3; i++) row.append(document.createElement("td"));
      row.cells[0].textContent = user;
      el("user-rows").append(row);
      entry = { total: 0, done: 0, row };
      this.users.set(user, entry);
    }
    return entry;
  }

  /** Repaints a mailbox's progress, and its state when given. */
  private paintRow(u: UserRow, state?: string): void {
    u.row.cells[1].textContent = `${u.done} / ${Math.max(u.total, u.done)} items`;
    if (state !== undefined) u.row.cells[2].textContent = state;
  }

  /** Pauses and resumes: paused time counts neither towards the rate nor the ETA. */
  setPaused(paused: boolean): void {
    const now = performance.now();
    if (paused && this.pausedAt === null) this.pausedAt = now;
    if (!paused && this.pausedAt !== null) {
      this.pausedFor += now - this.pausedAt;
      this.pausedAt = null;
    }
    this.paintCounters();
  }

  private paintCounters(): void {
    const now = performance.now();
    const paused = this.pausedFor + (this.pausedAt === null ? 0 : now - this.pausedAt);
    const seconds = (now - this.started - paused) / 1000;
    const rate = seconds > 0 ? this.done / seconds : 0;
    const left = rate > 0 ? Math.max(0, this.total - this.done) / rate : 0;
    const eta = this.pausedAt === null ? `ETA ${formatDuration(left)}` : "paused";
    el("counters").textContent =
      `${this.done} of ${Math.max(this.total, this.done)} items · ${formatBytes(this.bytes)} · ` +
      `${rate.toFixed(1)} items/s · ${eta} · ${this.failed} failed`;
    this.setBar(this.total > 0 ? this.done / this.total : 0);
  }

  /** Throttling is a status: how many mailboxes wait, not an error. */
  private paintThrottle(): void {
    const now = performance.now();
    for (const [user, until] of this.waiting) if (until <= now) this.waiting.delete(user);
    const line = el("throttle-status");
    line.hidden = this.waiting.size === 0;
    if (this.waiting.size > 0) {
      const longest = Math.max(...this.waiting.values()) - now;
      line.textContent =
        `Throttled by Microsoft 365: ${this.waiting.size} mailbox${this.waiting.size === 1 ? "" : "es"} waiting ` +
        `(${(longest / 1000).toFixed(1)} s). This is normal; the run continues by itself.`;
    }
  }

  handle(event: ProgressEvent): void {
    switch (event.kind) {
      case "runStarted":
        el("run-status").textContent = `Signed in. Migrating ${event.users} mailboxes.`;
        break;
      case "userStarted":
      case "itemsListed": {
        const u = this.row(event.user);
        const items = event.kind === "userStarted" ? event.messages : event.items;
        u.total += items;
        this.total += items;
        this.paintRow(u, "running");
        break;
      }
      case "itemDone": {
        const u = this.row(event.user);
        u.done += 1;
        this.done += 1;
        this.bytes += event.bytes;
        this.waiting.delete(event.user);
        this.paintRow(u, "running");
        break;
      }
      case "itemFailed": {
        this.failed += 1;
        if (isItem(event.item)) {
          const u = this.row(event.user);
          u.done += 1;
          this.done += 1;
          // A failure is not news about waiting: a throttled mailbox stays so.
          this.paintRow(u);
        }
        const list = el("failures");
        list.querySelector(".none")?.remove();
        if (this.shownFailures < FAILURES_SHOWN) {
          this.shownFailures += 1;
          const li = document.createElement("li");
          li.textContent = `${event.user} ${event.folder} ${event.item}: ${event.reason}`;
          list.append(li);
        } else {
          let more = list.querySelector<HTMLLIElement>(".more");
          if (!more) {
            more = document.createElement("li");
            more.className = "more";
            list.append(more);
          }
          more.textContent = `… and ${this.failed - this.shownFailures} more, all listed in the report.`;
        }
        break;
      }
      case "throttled":
        this.waiting.set(event.user, performance.now() + event.waitMs);
        this.paintRow(this.row(event.user), `waiting ${(event.waitMs / 1000).toFixed(1)} s (Microsoft throttling)`);
        setTimeout(() => this.paintThrottle(), event.waitMs + 50);
        break;
      case "destinationDown":
        // Cleared by the mailbox's next item or its end, like throttling.
        this.paintRow(
          this.row(event.user),
          `waiting for ${event.destination}: down ${formatDuration(event.downMs / 1000)}, ` +
            `giving up after ${formatDuration(event.limitMs / 1000)}`,
        );
        break;
      case "notMigrated":
        // Not a failure: a guest, a user without an Exchange mailbox, or an online archive.
        this.paintRow(this.row(event.user), event.reason);
        break;
      case "userFinished":
        this.waiting.delete(event.user);
        this.paintRow(this.row(event.user), event.stats.failed > 0 ? `done, ${event.stats.failed} failed` : "done");
        break;
      case "runFinished":
        this.waiting.clear();
        this.paintThrottle();
        this.paintCounters();
        this.setBar(1);
        this.onFinished?.(event.summary);
        return;
    }
    this.paintThrottle();
    this.paintCounters();
  }
}

function formatDuration(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function renderSummary(summary: RunSummary): void {
  const t = summary.totals;
  el("summary").textContent =
    `${summary.cancelled ? "Stopped after" : "Migrated"} ${summary.users} mailboxes: ${t.messages} messages ` +
    `(${formatBytes(t.bytes)}), ${t.events} events, ${t.contacts} contacts and ${t.tasks} tasks ` +
    `in ${t.folders} folders, in ${summary.seconds.toFixed(1)} s. ` +
    `${t.skipped} were already there, ${t.failed} failed.` +
    (t.outOfRange > 0 ? ` ${t.outOfRange} were left out by the date limits.` : "") +
    (summary.cancelled ? " Resume it with an incremental pass." : "");
}

/** True while a run is going on: closing the window asks first. */
let running = false;

/** The last run's request, for "Run an incremental pass": the journal makes it write only what changed. */
let lastRequest: RunRequest | null = null;

/** The request a run was started with, as the backend remembers it. */
function runCommand(request: RunRequest): [string, string, Record<string, unknown>] {
  return request.kind === "demo"
    ? ["Migrating the demo tenant", "run_demo", { outDir: request.outDir }]
    : ["Migrating", "start_migration", { request: request.request }];
}

/** Runs `request` with a progress Channel, showing the Migrate screen, then the report. */
async function runWith(view: RunView, request: RunRequest): Promise<void> {
  lastRequest = request;
  const [title, command, args] = runCommand(request);
  view.reset();
  show("migrate");
  el("last-run").hidden = true;
  el("migrate-title").textContent = title;
  const channel = new Channel<ProgressEvent>();
  channel.onmessage = (event) => view.handle(event);
  running = true;
  try {
    const summary = await invoke<RunSummary>(command, { ...args, onEvent: channel });
    await showReport(summary);
  } catch (e) {
    const err = e as IpcError;
    el("run-status").textContent = `The migration stopped: ${err.message ?? String(e)}`;
    // Nothing runs any more: the controls give way to a way back to the settings.
    for (const id of ["pause", "resume", "stop"]) el(id).hidden = true;
    el("run-back").hidden = false;
    el("run-back").onclick = () => show(request.kind === "demo" ? "source" : "plan");
  } finally {
    runEnded();
  }
}

/** After a run: no close question any more (one already open says so). */
function runEnded(): void {
  running = false;
  if (el<HTMLDialogElement>("close-dialog").open) {
    el("close-title").textContent = "The migration has ended";
    el("close-text").textContent = "Nothing is running any more. Quit now, or stay to read the report?";
    el("close-cancel").textContent = "Stay";
    el("close-confirm").textContent = "Quit";
  }
}

/** The Report screen: the summary (when known) and the run's details from its journal. */
async function showReport(summary: RunSummary | null, fallback = ""): Promise<void> {
  if (summary) renderSummary(summary);
  else el("summary").textContent = fallback;
  show("report");
  el("report-status").textContent = "";
  const failures = el("report-failures");
  try {
    const details = await invoke<RunDetails>("run_details");
    el<HTMLButtonElement>("open-report").disabled = !details.reportHtml;
    el<HTMLButtonElement>("open-logs").disabled = !details.logDir;
    const places = [
      details.reportHtml ? `The report is ${details.reportHtml}.` : "",
      details.logDir ? `The log is in ${details.logDir}.` : "",
      `The journal is in ${details.stateDir}.`,
    ];
    el("report-places").textContent = places.filter(Boolean).join(" ");
    const accounts = el("accounts");
    accounts.hidden = !details.accounts;
    if (details.accounts) {
      accounts.textContent =
        `${details.accounts.count} account${details.accounts.count === 1 ? " was" : "s were"} created at the destination. ` +
        `Their passwords are in ${details.accounts.credentialsReport} (readable by you only): hand them to the users, then delete the file.`;
    }
    failures.replaceChildren();
    for (const f of details.failures) {
      const li = document.createElement("li");
      li.textContent = `${f.user} ${f.folder} ${f.item}: ${f.reason}`;
      failures.append(li);
    }
    if (details.failures.length === 0) failures.innerHTML = '<li class="none">None.</li>';
    el("report-failures-title").textContent =
      details.failuresTotal > details.failures.length
        ? `Failed items (the first ${details.failures.length} of ${details.failuresTotal}; the HTML report lists all)`
        : "Failed items";
  } catch (e) {
    el("report-status").textContent = `The run's details could not be read: ${(e as IpcError).message ?? String(e)}`;
  }
}

/** How a request reads in a sentence: "the demo", "the migration of contoso.com to mail.example.com". */
function describe(request: RunRequest): string {
  if (request.kind === "demo") return "The demo migration";
  const d = request.request.destination;
  const to = d.kind === "folder" ? d.path : d.host;
  return `The migration of ${request.request.source.tenantId} to ${to}`;
}

/**
 * When the app opens: a run going on (the page was reloaded) is shown live; else the last run
 * is offered, to resume it or to run an incremental pass.
 */
async function showLastRun(view: RunView): Promise<void> {
  let status: RunStatus;
  try {
    status = await invoke<RunStatus>("run_status");
  } catch {
    return;
  }
  const last = status.last;
  if (status.running) {
    if (last) lastRequest = last.request;
    view.reset();
    show("migrate");
    el("migrate-title").textContent = "Migrating";
    el("counters").textContent = "Reconnecting to the running migration…";
    running = true;
    view.onFinished = (summary) => {
      runEnded();
      void showReport(summary);
    };
    const channel = new Channel<ProgressEvent>();
    channel.onmessage = (event) => view.handle(event);
    if (!(await invoke<boolean>("watch_run", { onEvent: channel }))) {
      // It ended in between.
      runEnded();
      show("source");
      return showLastRun(view);
    }
    return;
  }
  if (!last) return;
  lastRequest = last.request;
  const when = new Date(last.startedAt * 1000).toLocaleString();
  const counts = `${last.done} items written, ${last.failed} failed`;
  const finished = last.state === "finished";
  el("last-run-text").textContent = finished
    ? `${describe(last.request)} finished (started ${when}; ${counts}). An incremental pass copies only what changed since.`
    : `${describe(last.request)} ${last.state === "stopped" ? "was stopped" : "did not finish"} (started ${when}; ${counts} so far). ` +
      "Resume continues where it stopped without copying anything twice.";
  el("last-run-resume").textContent = finished ? "Run an incremental pass" : "Resume";
  // Its state folder is locked by another process (the CLI, another copy of the app).
  const elsewhere = last.state === "runningElsewhere";
  if (elsewhere) {
    el("last-run-text").textContent =
      `${describe(last.request)} is in progress in another process` +
      (last.heldBy ? ` (${last.heldBy})` : "") +
      ` (${counts} so far). It can be resumed here once that run has ended.`;
  }
  el("last-run-resume").hidden = elsewhere;
  el("last-run").hidden = false;
  el("last-run-report").onclick = () =>
    void showReport(last.summary ?? null, `${describe(last.request)} did not finish: ${counts} so far.`);
  el("last-run-resume").onclick = () => void runWith(view, last.request);
}

function wireMigrate(view: RunView): void {
  const control = async (action: "pause" | "resume" | "stop") => {
    try {
      await invoke("control_run", { action });
      if (action !== "stop") view.setPaused(action === "pause");
      el("pause").hidden = action === "pause";
      el("resume").hidden = action !== "pause";
      el("run-status").textContent =
        action === "pause" ? "Paused." : action === "stop" ? "Stopping after the items in flight…" : "Running.";
    } catch (e) {
      el("run-status").textContent = (e as IpcError).message ?? String(e);
    }
  };
  el("pause").addEventListener("click", () => control("pause"));
  el("resume").addEventListener("click", () => control("resume"));
  el("stop").addEventListener("click", () => control("stop"));

  el("try-demo").addEventListener("click", () => void runWith(view, { kind: "demo", outDir: "" }));
  wirePlan((scope: RunScope) =>
    void runWith(view, {
      kind: "migration",
      request: { source: sourceConfig(), destination: destinationSettings(), ...scope },
    }),
  );
  el("back-to-start").addEventListener("click", () => show("source"));
  el("run-again").addEventListener("click", () => {
    if (lastRequest) void runWith(view, lastRequest);
  });
  const open = (file: RunFile) => async () => {
    try {
      await invoke("open_run_file", { file });
      el("report-status").textContent = "";
    } catch (e) {
      el("report-status").textContent = (e as IpcError).message ?? String(e);
    }
  };
  el("open-report").addEventListener("click", open("report"));
  el("open-logs").addEventListener("click", open("logFolder"));
}

/** Asks in the page whether to stop the run and quit. */
function confirmClose(): Promise<boolean> {
  const dialog = el<HTMLDialogElement>("close-dialog");
  el("close-title").textContent = "A migration is running";
  el("close-text").textContent =
    "Quit anyway? The run stops after the messages in flight, and the next run resumes where it stopped without copying anything twice.";
  el("close-cancel").textContent = "Keep running";
  el("close-confirm").textContent = "Stop and quit";
  return new Promise((resolve) => {
    const done = (answer: boolean) => {
      dialog.close();
      el("close-cancel").onclick = el("close-confirm").onclick = null;
      resolve(answer);
    };
    el("close-cancel").onclick = () => done(false);
    el("close-confirm").onclick = () => done(true);
    dialog.oncancel = () => done(false);
    dialog.showModal();
  });
}

/** Closing the window during a run asks first; "Stop and quit" stops the run safely. */
async function guardClose(): Promise<void> {
  try {
    await getCurrentWindow().onCloseRequested(async (event) => {
      if (!running) return;
      if (await confirmClose()) {
        await invoke("control_run", { action: "stop" }).catch(() => undefined);
      } else {
        event.preventDefault();
      }
    });
  } catch (e) {
    console.warn("close guard not installed", e);
  }
}

/** Steps already reached can be revisited by clicking them. */
function wireSteps(): void {
  document.querySelectorAll<HTMLLIElement>(".steps li").forEach((li) =>
    li.addEventListener("click", () => {
      // No leaving the Migrate screen while a run is going on.
      if (li.getAttribute("aria-disabled") !== "true" && !running) {
        show(li.dataset.step as Screen);
      }
    }),
  );
}

renderPermissions();
wireSource();
wireSteps();
wireDestination(sourceConfig, () => show("source"), () => {
  show("plan");
  void loadPlan();
});
const runView = new RunView();
wireMigrate(runView);
void guardClose();
void showLastRun(runView);
