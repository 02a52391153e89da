// The Destination screen: IceWarp, another IMAP server or a local folder, the account rules and
// the accounts CSV. Paths come only from native dialogs (`pick_path`): the page shows them.
import { invoke } from "@tauri-apps/api/core";
import type { DestinationCheck } from "../bindings/DestinationCheck";
import {
  api,
  errorText,
  type AccountRule,
  type AccountRules,
  type AccountsCsvPreview,
  type DestinationSettings,
  type GroupRule,
  type PathPurpose,
  type ResourcesAs,
  type SourceConfig,
} from "../api";
import { announce, el, show, showFieldErrors } from "../dom";
import { plural } from "../format";
import { getState, subscribe } from "../store";
import { SecretField } from "../secret-field";
import { destinationErrors, passwordError, portValue, type FieldMessages } from "../validate";
import { fieldErrors, isError, saveProject } from "./projects";

const FIELD_IDS: Record<string, string> = {
  iceWarpHost: "dw-host",
  adminEmail: "dw-admin-email",
  adminPassword: "dw-admin-password",
  credentialsReport: "dw-credentials-report",
  host: "di-host",
  port: "di-port",
  login: "di-login",
  masterUser: "di-master-user",
  masterPassword: "di-master-password",
  accountsCsv: "di-accounts-csv",
  davUrl: "di-dav-url",
  path: "df-path",
  domainMap: "rule-domain-map",
};

/** The chosen paths, by purpose, as `pick_path` returned them (or the project held them). */
let paths: Partial<Record<PathPurpose, string>> = {};

const value = (id: string) => el<HTMLInputElement>(id).value;
const optional = (id: string) => value(id).trim() || undefined;

/** The Destination screen's fields as typed; paths are the ones chosen in native dialogs. */
interface DestinationFields {
  kind: "iceWarp" | "imap" | "folder";
  iceWarpHost: string;
  adminEmail: string;
  credentialsReport: string;
  host: string;
  port: string;
  login: "master" | "csv";
  masterUser: string;
  accountsCsv: string;
  davUrl: string;
  path: string;
}

function read(): DestinationFields {
  const checked = (name: string) => document.querySelector<HTMLInputElement>(`input[name="${name}"]:checked`)?.value;
  return {
    kind: (checked("dest-kind") ?? "iceWarp") as DestinationFields["kind"],
    iceWarpHost: value("dw-host"),
    adminEmail: value("dw-admin-email"),
    credentialsReport: paths.credentialsReport ?? "",
    host: value("di-host"),
    port: value("di-port"),
    login: (checked("di-login") ?? "master") as DestinationFields["login"],
    masterUser: value("di-master-user"),
    accountsCsv: paths.accountsCsv ?? "",
    davUrl: value("di-dav-url"),
    path: paths.destinationFolder ?? "",
  };
}

/** The settings as the backend takes them (it keeps its own stored paths regardless). */
export function destinationSettings(): DestinationSettings {
  const f = read();
  if (f.kind === "iceWarp") {
    const stored = getState().project?.destination;
    return {
      kind: "iceWarp",
      host: f.iceWarpHost.trim(),
      adminEmail: f.adminEmail.trim(),
      caFile: paths.caFile,
      credentialsReport: f.credentialsReport,
      accountsCsv: paths.accountsCsv,
      apiUrl: stored?.kind === "iceWarp" ? stored.apiUrl : undefined,
    };
  }
  if (f.kind === "imap") {
    return {
      kind: "imap",
      host: f.host.trim(),
      port: portValue(f.port),
      security: el<HTMLSelectElement>("di-security").value as "tls" | "starttls",
      caFile: paths.caFile,
      masterUser: f.login === "master" ? f.masterUser.trim() : undefined,
      masterStyle: el<HTMLSelectElement>("di-master-style").value as "authzid" | "dovecot",
      accountsCsv: f.login === "csv" ? f.accountsCsv : undefined,
      davUrl: f.login === "csv" ? optional("di-dav-url") : undefined,
    };
  }
  return { kind: "folder", path: f.path };
}

/** Parses the domain map's lines (`from = to`); a line that is not one is an error. */
function readDomainMap(): { map: Record<string, string>; error?: string } {
  const map: Record<string, string> = {};
  const lines = value("rule-domain-map").split("\n");
  for (const [i, line] of lines.entries()) {
    if (line.trim() === "") continue;
    const m = line.match(/^\s*([^\s=]+)\s*=\s*([^\s=]+)\s*$/);
    if (!m) return { map, error: `Line ${i + 1} is not “from.domain = to.domain”.` };
    map[m[1].toLowerCase()] = m[2].toLowerCase();
  }
  return { map };
}

function readRules(map: Record<string, string>): AccountRules {
  const select = (id: string) => el<HTMLSelectElement>(id).value;
  return {
    disabledUsers: select("rule-disabled") as AccountRule,
    sharedMailboxes: select("rule-shared") as AccountRule,
    resourceMailboxes: select("rule-resource") as AccountRule,
    resourcesAs: select("rule-resources-as") as ResourcesAs,
    skipOnmicrosoft: el<HTMLInputElement>("rule-onmicrosoft").checked,
    groups: select("rule-groups") as GroupRule,
    domainMap: map,
  };
}

const adminPassword = new SecretField("dw-admin-password", "destAdminPassword", () => {
  const f = read();
  const host = f.iceWarpHost.trim();
  return host && f.adminEmail.trim() ? `${host}/${f.adminEmail.trim()}` : null;
});
const masterPassword = new SecretField("di-master-password", "destAdminPassword", () => {
  const f = read();
  return f.host.trim() && f.masterUser.trim() ? `${f.host.trim()}/${f.masterUser.trim()}` : null;
});

/** The password field in use for the chosen destination, if any. */
function passwordField(f: DestinationFields): SecretField | null {
  if (f.kind === "iceWarp") return adminPassword;
  if (f.kind === "imap" && f.login === "master") return masterPassword;
  return null;
}

/** Shows each chosen path, or what choosing one is for. */
function paintPaths(): void {
  document.querySelectorAll<HTMLElement>("#destination-form .path").forEach((span) => {
    const chosen = paths[span.dataset.purpose as PathPurpose];
    span.dataset.hint ??= span.textContent ?? "";
    span.textContent = chosen ?? span.dataset.hint;
    span.classList.toggle("unset", !chosen);
  });
}

function paintKind(): void {
  const f = read();
  document.querySelectorAll<HTMLElement>("#destination-form [data-kind]").forEach((d) => (d.hidden = d.dataset.kind !== f.kind));
  document.querySelectorAll<HTMLElement>("#destination-form [data-login]").forEach((d) => (d.hidden = d.dataset.login !== f.login));
  // Only IceWarp creates accounts: elsewhere only the disabled-users rule applies.
  document.querySelectorAll<HTMLElement>("#rules [data-iw-rule]").forEach((d) => (d.hidden = f.kind !== "iceWarp"));
  el("destination-results").hidden = true;
  el("destination-status").textContent = "";
  showFieldErrors(FIELD_IDS, {});
}

/** "412 of 420 tenant mailboxes matched; 3 rows with errors: line 7: …". */
export function describePreview(p: AccountsCsvPreview): string {
  const tenant = p.matched + p.missing;
  let text = `${p.matched.toLocaleString("en")} of ${plural(tenant, "tenant mailbox", "tenant mailboxes")} matched`;
  if (p.errors.length > 0) {
    const shown = p.errors.slice(0, 3).map((e) => `line ${e.line}: ${e.message}`);
    text += `; ${plural(p.errors.length, "row")} with errors: ${shown.join("; ")}${p.errors.length > 3 ? "; …" : ""}`;
  }
  if (p.unmatched.length > 0) {
    text += `. Not in the tenant: ${p.unmatched.slice(0, 5).join(", ")}${p.unmatched.length > 5 ? ", …" : ""}`;
  }
  return `${text}.`;
}

async function previewCsv(): Promise<void> {
  const line = el("accounts-csv-preview");
  if (!paths.accountsCsv || read().kind !== "iceWarp") {
    line.textContent = "";
    return;
  }
  line.textContent = "Reading the accounts CSV…";
  try {
    line.textContent = describePreview(await api.previewAccountsCsv());
  } catch (e) {
    line.textContent = `The accounts CSV could not be read: ${errorText(e)}`;
  }
}

async function pick(purpose: PathPurpose): Promise<void> {
  try {
    const chosen = await api.pickPath(purpose);
    if (chosen === null) return;
    paths = { ...paths, [purpose]: chosen };
    paintPaths();
    announce(`Chosen: ${chosen}`);
    if (purpose === "accountsCsv") await previewCsv();
  } catch (e) {
    el("destination-status").textContent = errorText(e);
  }
}

/** Fills the screen from the open project. */
function fill(d: DestinationSettings, rules: AccountRules): void {
  const set = (id: string, v: string | number | undefined) => (el<HTMLInputElement>(id).value = v === undefined ? "" : String(v));
  document.querySelector<HTMLInputElement>(`input[name="dest-kind"][value="${d.kind}"]`)!.checked = true;
  paths = {};
  if (d.kind === "iceWarp") {
    set("dw-host", d.host);
    set("dw-admin-email", d.adminEmail);
    paths = { caFile: d.caFile, credentialsReport: d.credentialsReport || undefined, accountsCsv: d.accountsCsv };
  } else if (d.kind === "imap") {
    set("di-host", d.host);
    set("di-port", d.port);
    el<HTMLSelectElement>("di-security").value = d.security;
    el<HTMLSelectElement>("di-master-style").value = d.masterStyle;
    set("di-master-user", d.masterUser);
    set("di-dav-url", d.davUrl);
    document.querySelector<HTMLInputElement>(`input[name="di-login"][value="${d.accountsCsv ? "csv" : "master"}"]`)!.checked = true;
    paths = { caFile: d.caFile, accountsCsv: d.accountsCsv };
  } else {
    paths = { destinationFolder: d.path || undefined };
  }
  el<HTMLSelectElement>("rule-disabled").value = rules.disabledUsers;
  el<HTMLSelectElement>("rule-shared").value = rules.sharedMailboxes;
  el<HTMLSelectElement>("rule-resource").value = rules.resourceMailboxes;
  el<HTMLSelectElement>("rule-resources-as").value = rules.resourcesAs;
  el<HTMLInputElement>("rule-onmicrosoft").checked = rules.skipOnmicrosoft;
  el<HTMLSelectElement>("rule-groups").value = rules.groups;
  el<HTMLTextAreaElement>("rule-domain-map").value = Object.entries(rules.domainMap)
    .map(([from, to]) => `${from} = ${to}`)
    .join("\n");
  paintPaths();
  paintKind();
  void passwordField(read())?.refresh();
  void previewCsv();
}

/**
 * Checks the fields here, saves them with the rules in the project (the core validates) and
 * hands a typed password to the keychain. Resolves true when the destination is ready.
 */
async function checkAndStore(): Promise<boolean> {
  const f = read();
  const secret = passwordField(f);
  let errors: FieldMessages;
  try {
    errors = await destinationErrors(destinationSettings());
  } catch (e) {
    el("destination-status").textContent = `Could not check the fields: ${errorText(e)}`;
    return false;
  }
  const password = secret && passwordError(secret.typed, secret.stored);
  if (password && (f.kind === "iceWarp" || f.masterUser.trim())) errors[f.kind === "iceWarp" ? "adminPassword" : "masterPassword"] = password;
  const domainMap = readDomainMap();
  if (domainMap.error) errors.domainMap = domainMap.error;
  showFieldErrors(FIELD_IDS, errors);
  const status = el("destination-status");
  if (Object.keys(errors).length > 0) {
    status.textContent = "Please correct the highlighted fields.";
    return false;
  }
  const saved = await saveProject((p) => ({ ...p, destination: destinationSettings(), rules: readRules(domainMap.map) }));
  if (isError(saved)) {
    showFieldErrors(FIELD_IDS, fieldErrors(saved));
    status.textContent = saved.fields?.length ? "Please correct the highlighted fields." : `Could not save: ${saved.message}`;
    return false;
  }
  if (secret && !(await secret.commit())) {
    status.textContent = "The password could not be stored (see above).";
    return false;
  }
  return true;
}

const VERDICT_MARK = { ok: "✓", warning: "!", blocking: "✗" } as const;
const VERDICT_CLASS = { ok: "ok", warning: "advice", blocking: "problem" } as const;

/** One row per endpoint checked: its verdict, its name and the advice. */
function renderCheck(check: DestinationCheck): void {
  const list = el<HTMLUListElement>("destination-results");
  list.replaceChildren();
  for (const row of check.checks) {
    const li = document.createElement("li");
    li.className = VERDICT_CLASS[row.verdict];
    li.dataset.verdict = row.verdict;
    const name = document.createElement("strong");
    name.textContent = `${VERDICT_MARK[row.verdict]} ${row.name}`;
    li.append(name, document.createTextNode(`: ${row.advice}`));
    list.append(li);
  }
  list.hidden = false;
}

async function testDestination(source: () => SourceConfig): Promise<void> {
  el("destination-results").hidden = true;
  if (!(await checkAndStore())) return;
  const status = el("destination-status");
  status.textContent = "Testing…";
  try {
    const check = await invoke<DestinationCheck>("test_destination", { source: source(), destination: destinationSettings() });
    renderCheck(check);
    status.textContent = !check.ok
      ? "The destination is not ready yet (see below)."
      : check.checks.some((c) => c.verdict === "warning")
        ? "Connected. Some server settings would slow the migration, or could not be checked (see below)."
        : "The destination is ready.";
  } catch (e) {
    status.textContent = errorText(e);
  }
}

/** Wires the screen; `next` runs when the settings are saved and the password stored. */
export function wireDestination(source: () => SourceConfig, next: () => void): void {
  document.querySelectorAll<HTMLInputElement>('input[name="dest-kind"], input[name="di-login"]').forEach((r) =>
    r.addEventListener("change", () => {
      paintKind();
      void passwordField(read())?.refresh();
      void previewCsv();
    }),
  );
  for (const id of ["dw-host", "dw-admin-email"]) el(id).addEventListener("change", () => void adminPassword.refresh());
  for (const id of ["di-host", "di-master-user"]) el(id).addEventListener("change", () => void masterPassword.refresh());
  document.querySelectorAll<HTMLButtonElement>("#destination-form button.pick").forEach((b) =>
    b.addEventListener("click", () => void pick(b.dataset.purpose as PathPurpose)),
  );
  el("test-destination").addEventListener("click", () => void testDestination(source));
  el("dest-back").addEventListener("click", () => show("source"));
  el<HTMLFormElement>("destination-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await checkAndStore()) next();
  });
  subscribe((state, previous) => {
    if (state.project && state.project.id !== previous.project?.id) fill(state.project.destination, state.project.rules);
  });
  paintKind();
}
