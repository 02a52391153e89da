// The Migrate and Report screens, drawn from the core's RunSnapshot: the same after a window
// reload, since the snapshot lives in the backend.
import { api, errorText, type FailureLine, type KeptAwake, type MailboxProgress, type PassKind, type RunSnapshot, type RunSummary } from "../api";
import { announce, el, fillList, show } from "../dom";
import { formatBytes, formatDuration, formatTime, plural } from "../format";
import { getState, subscribe, update } from "../store";
import { MailboxTable, type Column } from "../table";
import { loadProjects, projectOpened } from "./projects";

/** How often the snapshot is read while a pass runs (ms). */
const POLL_MS = 500;

const byNumber = (f: (r: MailboxProgress) => number) => (a: MailboxProgress, b: MailboxProgress) => f(a) - f(b);

function retryButton(row: MailboxProgress): string | HTMLButtonElement {
  if (row.itemsFailed === 0 || getState().running) return "";
  const b = document.createElement("button");
  b.type = "button";
  b.className = "row-action";
  b.textContent = "Retry failed";
  b.setAttribute("aria-label", `Retry the failed items of ${row.user}`);
  b.addEventListener("click", () => void retry(row.user));
  return b;
}

function stateCell(row: MailboxProgress): HTMLSpanElement {
  const span = document.createElement("span");
  span.className = `state-${row.state}`;
  span.textContent = row.state;
  return span;
}

const COLUMNS: Column<MailboxProgress>[] = [
  { key: "user", label: "Mailbox", cell: (r) => r.user, compare: (a, b) => a.user.localeCompare(b.user) },
  { key: "state", label: "State", cell: stateCell, compare: (a, b) => a.state.localeCompare(b.state) },
  { key: "items", label: "Items", cell: (r) => `${r.itemsDone + r.itemsFailed} / ${r.itemsTotal}`, compare: byNumber((r) => r.itemsDone), numeric: true },
  { key: "failed", label: "Failed", cell: (r) => String(r.itemsFailed), compare: byNumber((r) => r.itemsFailed), numeric: true },
  { key: "bytes", label: "Size", cell: (r) => formatBytes(r.bytes), compare: byNumber((r) => r.bytes), numeric: true },
  { key: "retry", label: "", cell: retryButton },
];

let table: MailboxTable<MailboxProgress>;

/** "37 of 200 mailboxes done, 8 running, 155 queued". */
export function describeMailboxes(s: RunSnapshot): string {
  const failed = (s.mailboxesFailed > 0 ? `, ${s.mailboxesFailed} failed` : "") + (s.mailboxesSkipped > 0 ? `, ${s.mailboxesSkipped} not migrated` : "") + (s.mailboxesStopped > 0 ? `, ${s.mailboxesStopped} stopped part-way` : "");
  return `${s.mailboxesDone.toLocaleString("en")} of ${plural(s.mailboxesTotal, "mailbox", "mailboxes")} done, ${s.mailboxesRunning.toLocaleString("en")} running, ${s.mailboxesQueued.toLocaleString("en")} queued${failed}`;
}

function filtered(s: RunSnapshot | null): MailboxProgress[] {
  if (!s) return [];
  const query = el<HTMLInputElement>("run-search").value.trim().toLowerCase();
  const filter = el<HTMLSelectElement>("run-filter").value;
  return s.mailboxes.filter(
    (m) =>
      (!query || m.user.toLowerCase().includes(query)) &&
      (filter === "all" || (filter === "failed" ? m.state === "failed" || m.itemsFailed > 0 : m.state === filter)),
  );
}

function paintSnapshot(s: RunSnapshot | null): void {
  if (!s) return;
  el("run-mailboxes").textContent = describeMailboxes(s);
  const ended = s.itemsDone + s.itemsFailed;
  // The core's fraction never goes back (items can be counted late).
  const fraction = Math.min(1, Math.max(0, s.fraction));
  el("overall-bar").style.width = `${(fraction * 100).toFixed(1)}%`;
  el("overall").setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
  const eta = getState().running && s.etaSeconds !== undefined ? ` · about ${formatDuration(s.etaSeconds)} left` : "";
  const failed = s.itemsFailed > 0 ? ` · ${plural(s.itemsFailed, "item")} failed` : "";
  el("counters").textContent =
    `${ended.toLocaleString("en")} of ${plural(s.itemsTotal, "item")} · ${formatBytes(s.bytesDone)} · ` +
    `${s.itemsPerSecond.toFixed(1)} items/s${eta}${failed}`;
  table.setRows(filtered(s));
}

/** "Re: Budget 2026 — Inbox, 03/11/2026, 1.2 MiB: reason" (the Graph id only when no subject). */
export function describeFailure(f: FailureLine): string {
  const what = f.subject ? `“${f.subject}”` : `item ${f.item}`;
  const facts = [f.folder, f.date ? new Date(f.date).toLocaleString() : "", f.size != null ? formatBytes(f.size) : ""].filter(Boolean);
  return `${f.user}: ${what} in ${facts.join(", ")}: ${f.reason}`;
}

async function paintFailures(): Promise<void> {
  const list = el("failures");
  try {
    const details = await api.runDetails();
    update({ details });
    fillList(list, details.failures.map(describeFailure), "None.");
    el("failures-title").textContent =
      details.failuresTotal > details.failures.length
        ? `Failed items (the first ${details.failures.length} of ${details.failuresTotal}; the HTML report lists all)`
        : "Failed items";
  } catch (e) {
    el("run-status").textContent = `The run's details could not be read: ${errorText(e)}`;
  }
}

function paintControls(running: boolean): void {
  for (const id of ["pause", "stop"]) el(id).hidden = !running;
  if (!running) el("resume").hidden = true;
  const failed = (getState().snapshot?.itemsFailed ?? 0) > 0;
  el("retry-all").hidden = running || !failed;
  el("show-report").hidden = running;
  el("run-back").hidden = running || !getState().project;
}

/** Whether the computer is kept awake during the pass, or why it may sleep (the backend's answer). */
function paintAwake(awake: KeptAwake | undefined): void {
  const line = el("run-awake");
  line.hidden = !awake;
  if (!awake) return;
  line.textContent = awake.kept
    ? "This computer is kept awake while the pass runs."
    : `This computer may sleep during the pass: it could not be kept awake (${awake.reason ?? "no reason given"}). Keep it from sleeping in its power settings until the pass ends.`;
}

let polling = false;

/** Follows the running pass from its snapshot until it ends; then the failures and the history. */
export async function follow(title: string, then?: () => Promise<void>): Promise<void> {
  update({ running: true });
  show("migrate");
  el("migrate-title").textContent = title;
  el("run-status").textContent = "";
  paintControls(true);
  if (polling) return;
  polling = true;
  try {
    for (;;) {
      const [snapshot, status] = await Promise.all([api.runSnapshot(), api.runStatus()]);
      if (snapshot) update({ snapshot });
      else if (status.last) {
        // A backend without snapshots: the journal's counts are all there is.
        el("run-mailboxes").textContent = "Running.";
        el("counters").textContent = `${plural(status.last.done, "item")} written, ${status.last.failed} failed so far`;
      }
      paintAwake(status.running ? status.awake : undefined);
      if (!status.running) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } catch (e) {
    el("run-status").textContent = `The run's progress could not be read: ${errorText(e)}`;
  } finally {
    polling = false;
  }
  update({ running: false });
  paintSnapshot(getState().snapshot);
  paintControls(false);
  const s = getState().snapshot;
  const words = s ? describeMailboxes(s) : "The pass ended";
  el("run-status").textContent = `The pass has ended: ${words}.`;
  announce(`The pass has ended: ${words}.`);
  await paintFailures();
  const project = getState().project;
  if (project) {
    // The pass history grew: the backend's copy is the truth.
    try {
      projectOpened(await api.openProject(project.id), null);
    } catch {
      /* the history shows on the next open */
    }
  }
  void loadProjects();
  await then?.();
}

/** Starts a pass of the open project and follows it. */
export async function startPass(kind: PassKind): Promise<void> {
  const status = el("start-status");
  status.textContent = "";
  try {
    await api.startPass(kind);
  } catch (e) {
    status.textContent = `The pass could not start: ${errorText(e)}`;
    return;
  }
  await follow(kind === "full" ? "Full pass" : kind === "incremental" ? "Incremental pass" : "Final pass");
}

async function retry(user?: string): Promise<void> {
  try {
    await api.retryFailed(user);
  } catch (e) {
    el("run-status").textContent = `The retry could not start: ${errorText(e)}`;
    return;
  }
  await follow(user ? `Retrying the failed items of ${user}` : "Retrying the failed items");
}

export async function startDemo(): Promise<void> {
  try {
    await api.runDemo();
  } catch (e) {
    el("projects-status").textContent = `The demo could not start: ${errorText(e)}`;
    return;
  }
  // The demo ends on its report, as a first look at what a run leaves.
  await follow("Migrating the demo tenant", async () => {
    const demo = getState().projects.find((p) => p.demo);
    if (demo) projectOpened(await api.openProject(demo.id), null);
    await showReport();
  });
}

/** The Report screen: the last pass's summary and where its files are. */
function renderSummary(summary: RunSummary | undefined): void {
  if (!summary) {
    el("summary").textContent = "";
    return;
  }
  const t = summary.totals;
  el("summary").textContent =
    `${summary.cancelled ? "Stopped after" : "Migrated"} ${plural(summary.users, "mailbox", "mailboxes")}: ${plural(t.messages, "message")} ` +
    `(${formatBytes(t.bytes)}), ${plural(t.events, "event")}, ${plural(t.contacts, "contact")} and ${plural(t.tasks, "task")} ` +
    `in ${plural(t.folders, "folder")}, in ${formatDuration(summary.seconds)}. ` +
    `${t.skipped} ${t.skipped === 1 ? "was" : "were"} already there, ${t.failed} failed.` +
    (t.outOfRange > 0 ? ` ${t.outOfRange} were left out by the date limits.` : "") +
    (summary.cancelled ? " Resume it with an incremental pass." : "");
}

async function showReport(): Promise<void> {
  const last = getState().project?.passes.at(-1);
  renderSummary(last?.summary);
  if (last && !last.summary) el("summary").textContent = `The ${last.kind} pass started ${formatTime(last.startedAt)} ${last.state === "running" ? "is running" : `was ${last.state}`}.`;
  show("report");
  const details = getState().details ?? (await api.runDetails().catch(() => null));
  if (!details) return;
  el<HTMLButtonElement>("open-report").disabled = !details.reportHtml;
  el<HTMLButtonElement>("open-logs").disabled = !details.logDir;
  el("report-places").textContent = [
    details.reportHtml ? `The report is ${details.reportHtml}.` : "",
    details.logDir ? `The log is in ${details.logDir}.` : "",
    `The journal is in ${details.stateDir}.`,
  ]
    .filter(Boolean)
    .join(" ");
  const accounts = el("accounts");
  accounts.hidden = !details.accounts;
  if (details.accounts) {
    accounts.textContent =
      `${plural(details.accounts.count, "account")} created at the destination. Their passwords are in ` +
      `${details.accounts.credentialsReport} (readable by you only): hand them to the users. Later passes read this file: keep it until the cut-over, then delete it.`;
  }
  fillList(el("report-failures"), details.failures.map(describeFailure), "None.");
}

export function wireRun(): void {
  table = new MailboxTable(el("run-table"), COLUMNS, (r) => r.user, "Mailboxes of the run");
  const control = async (action: "pause" | "resume" | "stop") => {
    try {
      await api.controlRun(action);
      el("pause").hidden = action === "pause" || action === "stop";
      el("resume").hidden = action !== "pause";
      el("run-status").textContent =
        action === "pause" ? "Paused." : action === "stop" ? "Stopping after the items in flight…" : "Running.";
    } catch (e) {
      el("run-status").textContent = errorText(e);
    }
  };
  el("pause").addEventListener("click", () => void control("pause"));
  el("resume").addEventListener("click", () => void control("resume"));
  el("stop").addEventListener("click", () => void control("stop"));
  el("retry-all").addEventListener("click", () => void retry());
  el("show-report").addEventListener("click", () => void showReport());
  el("run-back").addEventListener("click", () => show("plan"));
  el("run-search").addEventListener("input", () => paintSnapshot(getState().snapshot));
  el("run-filter").addEventListener("change", () => paintSnapshot(getState().snapshot));
  el("run-again").addEventListener("click", () => void startPass("incremental"));
  el("back-to-start").addEventListener("click", () => show("projects"));
  const open = (file: "report" | "logFolder") => async () => {
    try {
      await api.openRunFile(file);
      el("report-status").textContent = "";
    } catch (e) {
      el("report-status").textContent = errorText(e);
    }
  };
  el("open-report").addEventListener("click", open("report"));
  el("open-logs").addEventListener("click", open("logFolder"));
  subscribe((state, previous) => {
    if (state.snapshot !== previous.snapshot || state.running !== previous.running) paintSnapshot(state.snapshot);
  });
}
