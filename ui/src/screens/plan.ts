// The Plan screen: workloads and date limits, the mailbox table (search, sort, filter, the
// per-mailbox action), one selection shared with Start, and the passes.
import { api, errorText, type MailboxState, type PassKind, type PassRecord, type PlanUser, type Project, type ScheduledPass, type WorkloadChoice } from "../api";
import { announce, confirmDialog, el, fillList } from "../dom";
import { csvCell, formatDuration, formatTime, plural } from "../format";
import { getState, subscribe, update } from "../store";
import { MailboxTable, type Column } from "../table";
import { isError, saveProject } from "./projects";

/** What the action column says: "create", "create resource (room)", "merge into existing",
 * "copy", "skip: reason". */
export function actionText(row: PlanUser): string {
  switch (row.action.kind) {
    case "createResource":
      return `create resource (${row.action.resource})`;
    case "merge":
      return "merge into existing";
    case "skip":
      return `skip: ${row.action.reason}`;
    default:
      return row.action.kind;
  }
}

function notes(u: PlanUser): string {
  return [
    u.problem ? `cannot be read: ${u.problem}` : "",
    u.enabled ? "" : "sign-in blocked",
    u.onlineArchive ? "has an online archive: not migrated, export it separately" : "",
  ]
    .filter(Boolean)
    .join("; ");
}

/** The run state of each mailbox in the latest snapshot (for the failed/running filters). */
function runState(): Map<string, MailboxState> {
  return new Map((getState().snapshot?.mailboxes ?? []).map((m) => [m.user, m.state]));
}

const byNumber = (f: (r: PlanUser) => number) => (a: PlanUser, b: PlanUser) => f(a) - f(b);
const byText = (f: (r: PlanUser) => string) => (a: PlanUser, b: PlanUser) => f(a).localeCompare(f(b));

/** Whether a mailbox is picked: every kept one while the selection is empty. */
function picked(row: PlanUser, users: Set<string>): boolean {
  return users.size === 0 ? row.action.kind !== "skip" : users.has(row.address);
}

let table: MailboxTable<PlanUser>;
let selected = new Set<string>();

function pickBox(row: PlanUser): HTMLInputElement {
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = picked(row, selected);
  box.disabled = row.action.kind === "skip";
  box.setAttribute("aria-label", `Migrate ${row.address}`);
  box.addEventListener("change", () => void toggle(row, box.checked));
  return box;
}

const COLUMNS: Column<PlanUser>[] = [
  { key: "pick", label: "Migrate", cell: pickBox },
  { key: "address", label: "Mailbox", cell: (r) => r.address, compare: byText((r) => r.address) },
  { key: "kind", label: "Kind", cell: (r) => r.kind, compare: byText((r) => r.kind) },
  { key: "action", label: "Action", cell: actionCell, compare: byText(actionText) },
  { key: "folders", label: "Folders", cell: (r) => String(r.folders), compare: byNumber((r) => r.folders), numeric: true },
  { key: "items", label: "Messages", cell: (r) => String(r.items), compare: byNumber((r) => r.items), numeric: true },
  { key: "events", label: "Events", cell: (r) => String(r.events), compare: byNumber((r) => r.events), numeric: true },
  { key: "contacts", label: "Contacts", cell: (r) => String(r.contacts), compare: byNumber((r) => r.contacts), numeric: true },
  { key: "tasks", label: "Tasks", cell: (r) => String(r.tasks), compare: byNumber((r) => r.tasks), numeric: true },
  { key: "estimate", label: "Estimate", cell: (r) => formatDuration(r.estimatedSeconds), compare: byNumber((r) => r.estimatedSeconds), numeric: true },
  { key: "notes", label: "Notes", cell: notes },
];

function actionCell(row: PlanUser): HTMLSpanElement {
  const span = document.createElement("span");
  span.textContent = span.title = actionText(row);
  span.className = `action-${row.action.kind}`;
  return span;
}

/** The rows the search and the filter leave, from the latest plan. */
function filtered(): PlanUser[] {
  const plan = getState().plan;
  if (!plan) return [];
  const query = el<HTMLInputElement>("plan-search").value.trim().toLowerCase();
  const filter = el<HTMLSelectElement>("plan-filter").value;
  const states = filter === "failed" || filter === "running" ? runState() : null;
  return plan.users.filter((r) => {
    if (query && !r.address.toLowerCase().includes(query) && !r.userPrincipalName.toLowerCase().includes(query)) return false;
    switch (filter) {
      case "failed":
        return states?.get(r.address) === "failed";
      case "running":
        return states?.get(r.address) === "running";
      case "skipped":
        return r.action.kind === "skip";
      case "guests":
        return r.kind === "guest";
      default:
        return true;
    }
  });
}

function paintTable(): void {
  const rows = filtered();
  table.setRows(rows);
  const total = getState().plan?.users.length ?? 0;
  el("plan-shown").textContent = rows.length === total ? plural(total, "mailbox", "mailboxes") : `${rows.length.toLocaleString("en")} of ${plural(total, "mailbox", "mailboxes")} shown`;
}

function paintSelection(): void {
  el<HTMLInputElement>("plan-all").checked = selected.size === 0;
  el("plan-selected").textContent = selected.size === 0 ? "" : `${plural(selected.size, "mailbox", "mailboxes")} picked`;
}

function paintSummary(): void {
  const plan = getState().plan;
  if (!plan) {
    el("plan-summary").textContent = "";
    return;
  }
  const skipped = plan.users.filter((u) => u.action.kind === "skip").length;
  const leftOut =
    (plan.outOfRange > 0 ? ` · ${plan.outOfRange} left out by the date limits` : "") + (skipped > 0 ? ` · ${skipped} skipped by the rules` : "");
  const destinationHere = plan.estimateTerms.destinationCpuCounted ? " (the destination runs on this machine: its CPU is counted)" : "";
  el("plan-summary").textContent =
    `${plural(plan.users.length, "mailbox", "mailboxes")} · ${plural(plan.items, "message")} · ${plural(plan.events, "event")} · ` +
    `${plural(plan.contacts, "contact")} · ${plural(plan.tasks, "task")}${leftOut} · estimated ${formatDuration(plan.estimatedSeconds)}${destinationHere} · ` +
    `domains: ${plan.domains.join(", ")}`;
}

/** Saves the selection in the project: Plan and Start read the same one. */
async function saveSelection(): Promise<void> {
  const users = [...selected].sort();
  const saved = await saveProject((p) => ({ ...p, selection: { users } }));
  if (isError(saved)) el("start-status").textContent = `The selection could not be saved: ${saved.message}`;
}

async function toggle(row: PlanUser, on: boolean): Promise<void> {
  if (selected.size === 0) {
    // Leaving "every mailbox": the others stay picked by name.
    for (const r of getState().plan?.users ?? []) if (r.action.kind !== "skip") selected.add(r.address);
  }
  if (on) selected.add(row.address);
  else selected.delete(row.address);
  paintSelection();
  await saveSelection();
}

/** Adds one batch (mailboxes sorted by user principal name, cut into groups) to the selection. */
async function addBatch(): Promise<void> {
  const batch = el<HTMLInputElement>("plan-batch").valueAsNumber;
  const size = el<HTMLInputElement>("plan-batch-size").valueAsNumber;
  const status = el("plan-status");
  if (!(Number.isInteger(size) && size >= 1)) return void (status.textContent = "The batch size must be a whole number from 1.");
  if (!(Number.isInteger(batch) && batch >= 1)) return void (status.textContent = "Batches are numbered from 1.");
  const kept = (getState().plan?.users ?? []).filter((r) => r.action.kind !== "skip");
  const group = [...kept].sort((a, b) => a.userPrincipalName.localeCompare(b.userPrincipalName)).slice((batch - 1) * size, batch * size);
  if (group.length === 0) return void (status.textContent = `Batch ${batch} is empty: there are ${plural(kept.length, "mailbox", "mailboxes")}.`);
  for (const r of group) selected.add(r.address);
  status.textContent = "";
  paintSelection();
  table.refresh();
  announce(`Batch ${batch} added: ${plural(selected.size, "mailbox", "mailboxes")} picked.`);
  await saveSelection();
}

let planSeq = 0;

/** Counts the plan (`refresh`: recount every mailbox, else the cached counts serve). */
export async function loadPlan(refresh = false): Promise<void> {
  const status = el("plan-status");
  const seq = ++planSeq;
  update({ counting: true });
  status.textContent = refresh ? "Counting every mailbox again…" : "Counting each mailbox's items…";
  el("plan-cancel").hidden = false;
  try {
    const plan = await api.planMigration(refresh);
    if (seq !== planSeq) return;
    update({ plan });
    status.textContent = "";
    announce(`${plural(plan.users.length, "mailbox", "mailboxes")} counted.`);
  } catch (e) {
    if (seq !== planSeq) return;
    status.textContent = `Could not count the mailboxes: ${errorText(e)}`;
  } finally {
    if (seq === planSeq) {
      update({ counting: false });
      el("plan-cancel").hidden = true;
    }
  }
}

async function cancelPlan(): Promise<void> {
  planSeq += 1;
  el("plan-cancel").hidden = true;
  update({ counting: false });
  try {
    await api.cancelPlan();
    el("plan-status").textContent = "Counting cancelled; Count again resumes it.";
  } catch (e) {
    el("plan-status").textContent = errorText(e);
  }
}

/** The table as shown (searched, filtered, sorted) as a CSV download. */
function exportCsv(): void {
  const head = ["address", "userPrincipalName", "kind", "action", "folders", "messages", "events", "contacts", "tasks", "estimatedSeconds", "notes"];
  const lines = [head.join(",")];
  for (const r of table.shownRows()) {
    lines.push(
      [r.address, r.userPrincipalName, r.kind, actionText(r), r.folders, r.items, r.events, r.contacts, r.tasks, r.estimatedSeconds, notes(r)]
        .map(csvCell)
        .join(","),
    );
  }
  const url = URL.createObjectURL(new Blob([`${lines.join("\r\n")}\r\n`], { type: "text/csv" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = `${getState().project?.name ?? "mailboxes"}.csv`.replace(/[\\/:*?"<>|]/g, "_");
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The chosen workloads. */
function selectedWorkloads(): WorkloadChoice[] {
  return Array.from(document.querySelectorAll<HTMLInputElement>('input[name="workload"]:checked')).map((c) => c.value as WorkloadChoice);
}

/** Saves the workloads and date limits, then counts with them. */
async function scopeChanged(): Promise<void> {
  const workloads = selectedWorkloads();
  const date = (id: string) => el<HTMLInputElement>(id).value || undefined;
  const [mailSince, mailUntil, calendarSince] = [date("plan-mail-since"), date("plan-mail-until"), date("plan-calendar-since")];
  const status = el("plan-status");
  if (workloads.length === 0) return void (status.textContent = "Choose at least one workload.");
  if (mailSince && mailUntil && mailUntil <= mailSince) return void (status.textContent = "The mail end date must be after its start date.");
  const saved = await saveProject((p) => ({ ...p, workloads, mailSince, mailUntil, calendarSince }));
  if (isError(saved)) return void (status.textContent = `Could not save: ${saved.message}`);
  await loadPlan(false);
}

const PASS_NAME: Record<PassKind, string> = { full: "Full pass", incremental: "Incremental pass", final: "Final pass" };

/** One line of the pass history. */
export function describePassRecord(p: PassRecord): string {
  const ended = p.finishedAt ? `, ended ${formatTime(p.finishedAt)}` : "";
  const s = p.summary;
  const what = s
    ? `: ${plural(s.users, "mailbox", "mailboxes")}, ${plural(s.totals.messages, "message")}, ${s.totals.failed} failed`
    : "";
  return `${PASS_NAME[p.kind]} ${p.state}, started ${formatTime(p.startedAt)}${ended}${what}`;
}

function paintProject(p: Project): void {
  for (const box of document.querySelectorAll<HTMLInputElement>('input[name="workload"]')) {
    box.checked = p.workloads.length === 0 || p.workloads.includes(box.value as WorkloadChoice);
  }
  el<HTMLInputElement>("plan-mail-since").value = p.mailSince ?? "";
  el<HTMLInputElement>("plan-mail-until").value = p.mailUntil ?? "";
  el<HTMLInputElement>("plan-calendar-since").value = p.calendarSince ?? "";
  selected = new Set(p.selection.users);
  paintSelection();
  table.refresh();
  fillList(el("pass-history"), p.passes.map(describePassRecord));
  el<HTMLButtonElement>("start-incremental").disabled = p.passes.length === 0;
  el<HTMLButtonElement>("start-final").disabled = p.passes.length === 0;
  void loadSchedule();
}

/** The schedule line: when the next incremental pass starts, or that none is set. */
function paintSchedule(s: ScheduledPass | null): void {
  el("schedule-status").textContent = s
    ? `Next incremental pass: ${formatTime(s.nextAt)} (every ${plural(s.everyHours, "hour")})`
    : "No schedule: incremental passes start when you ask.";
  el("schedule-clear").hidden = !s;
  if (s) el<HTMLInputElement>("schedule-hours").value = String(s.everyHours);
}

async function loadSchedule(): Promise<void> {
  try {
    paintSchedule(await api.passSchedule());
  } catch (e) {
    el("schedule-status").textContent = `The schedule could not be read: ${errorText(e)}`;
  }
}

async function setSchedule(everyHours: number | null): Promise<void> {
  try {
    paintSchedule(await api.setPassSchedule(everyHours));
  } catch (e) {
    el("schedule-status").textContent = `The schedule was not set: ${errorText(e)}`;
  }
  // Said when the user changes it, not each time a project opens (its own announcement).
  announce(el("schedule-status").textContent ?? "");
}

/** The final pass: the cut-over checklist, then a confirmation. */
async function finalPass(start: (kind: PassKind) => void): Promise<void> {
  const status = el("start-status");
  status.textContent = "Checking the cut-over…";
  let checklist;
  try {
    checklist = await api.cutoverChecklist();
  } catch (e) {
    status.textContent = `The cut-over checklist could not be made: ${errorText(e)}`;
    return;
  }
  status.textContent = "";
  const body = document.createElement("div");
  const intro = document.createElement("p");
  intro.textContent =
    "The final pass copies what changed, mirrors deletions, then does the IceWarp cut-over. Before it, check each point:";
  const list = document.createElement("ul");
  list.className = "checklist";
  list.id = "cutover-checklist";
  const item = (text: string, problem = false) => {
    const li = document.createElement("li");
    li.textContent = text;
    if (problem) li.className = "problem";
    list.append(li);
  };
  for (const d of checklist.domains) {
    if (d.error) item(`MX of ${d.domain}: could not be looked up (${d.error})`, true);
    else if (d.mx.length === 0) item(`MX of ${d.domain}: none`, true);
    else item(`MX of ${d.domain} points to ${d.mx.join(", ")}`);
  }
  const last = checklist.lastPass;
  if (last) item(`The last pass: ${describePassRecord(last)}`, last.state !== "finished" || (last.summary?.totals.failed ?? 0) > 0);
  else item("No pass has run yet: run a full pass first.", true);
  if (checklist.credentialsReport) {
    item(`Hand out the new accounts' passwords from ${checklist.credentialsReport}, then delete the file after the cut-over.`);
  }
  body.append(intro, list);
  if (await confirmDialog("Start the final pass?", body, "Start the final pass")) start("final");
}

export function wirePlan(start: (kind: PassKind) => void): void {
  table = new MailboxTable(el("plan-table"), COLUMNS, (r) => r.address, "Mailboxes to migrate");
  el("plan-all").addEventListener("change", () => {
    if (el<HTMLInputElement>("plan-all").checked) selected.clear();
    else for (const r of getState().plan?.users ?? []) if (r.action.kind !== "skip") selected.add(r.address);
    paintSelection();
    table.refresh();
    void saveSelection();
  });
  el("plan-add-batch").addEventListener("click", () => void addBatch());
  for (const id of ["plan-mail-since", "plan-mail-until", "plan-calendar-since"]) el(id).addEventListener("change", () => void scopeChanged());
  document.querySelectorAll('input[name="workload"]').forEach((w) => w.addEventListener("change", () => void scopeChanged()));
  el("plan-refresh").addEventListener("click", () => void loadPlan(true));
  el("plan-cancel").addEventListener("click", () => void cancelPlan());
  el("plan-search").addEventListener("input", paintTable);
  el("plan-filter").addEventListener("change", paintTable);
  el("plan-export").addEventListener("click", exportCsv);
  el("start-full").addEventListener("click", () => start("full"));
  el("start-incremental").addEventListener("click", () => start("incremental"));
  el("start-final").addEventListener("click", () => void finalPass(start));
  el("schedule-set").addEventListener("click", () => void setSchedule(el<HTMLInputElement>("schedule-hours").valueAsNumber || 0));
  el("schedule-clear").addEventListener("click", () => void setSchedule(null));
  subscribe((state, previous) => {
    // Arriving at the Plan without one (a project just opened, settings just saved): count.
    if (state.screen === "plan" && previous.screen !== "plan" && !state.plan && !state.counting) void loadPlan(false);
    if (state.plan !== previous.plan) {
      paintSummary();
      paintTable();
    }
    if (state.project && state.project !== previous.project) {
      const opened = state.project.id !== previous.project?.id;
      // A save returns the project again: repaint only when it is another one or its passes grew.
      const passes = (p: Project | null | undefined) => JSON.stringify(p?.passes ?? []);
      if (opened || passes(state.project) !== passes(previous.project)) paintProject(state.project);
    }
    if (state.snapshot !== previous.snapshot && /failed|running/.test(el<HTMLSelectElement>("plan-filter").value)) paintTable();
  });
}
