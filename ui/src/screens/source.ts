// The Source screen: the app registration that reads the tenant.
import { invoke } from "@tauri-apps/api/core";
import type { PermissionStatus } from "../bindings/PermissionStatus";
import type { Cloud } from "../bindings/Cloud";
import { errorText, type SourceConfig } from "../api";
import { secretError, sourceErrors, type FieldMessages } from "../validate";
import { SecretField } from "../secret-field";
import { el, show, showFieldErrors as showErrors } from "../dom";
import { getState, subscribe } from "../store";
import { fieldErrors, isError, saveProject } from "./projects";

const PERMISSIONS: Array<[string, string]> = [
  ["User.Read.All", "list users and their addresses (required)"],
  ["Mail.Read", "read mail folders and messages (required)"],
  ["Domain.Read.All", "list the tenant's domains"],
  ["MailboxSettings.Read", "read each mailbox's time zone and language"],
  ["Calendars.Read", "read calendars and events"],
  ["Contacts.Read", "read contacts"],
  ["Tasks.Read.All", "read Microsoft To Do tasks"],
];

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

/**
 * The keychain account of the app registration, once both IDs are filled in: with the
 * project's login URL override, bound to its host[:port] (`<tenant>/<client>@<host>`), as the
 * backend looks it up, so the secret is only ever sent to that host.
 */
function sourceAccount(): string | null {
  const { tenantId, clientId } = readSource();
  if (!tenantId.trim() || !clientId.trim()) return null;
  const account = `${tenantId.trim()}/${clientId.trim()}`;
  const loginUrl = getState().project?.source.loginUrl?.trim();
  if (!loginUrl) return account;
  try {
    return `${account}@${new URL(loginUrl).host.toLowerCase()}`;
  } catch {
    return account;
  }
}

/** The core's field errors, and the typed secret's (which the core never sees). */
async function checkSource(): Promise<FieldMessages> {
  const errors = await sourceErrors(sourceConfig());
  const secret = secretError(readSource().clientSecret, clientSecret.stored);
  if (secret) errors.clientSecret = secret;
  return errors;
}

const clientSecret = new SecretField("client-secret", "graphClientSecret", sourceAccount);

export function sourceConfig(): SourceConfig {
  const { tenantId, clientId } = readSource();
  // The project's URL overrides (set in its file, no field here) stay as they are.
  const stored = getState().project?.source;
  return { ...stored, tenantId: tenantId.trim(), clientId: clientId.trim(), cloud: el<HTMLSelectElement>("cloud").value as Cloud };
}

/** Fills the fields from the open project. */
function fill(source: SourceConfig): void {
  el<HTMLInputElement>("tenant-id").value = source.tenantId;
  el<HTMLInputElement>("client-id").value = source.clientId;
  el<HTMLSelectElement>("cloud").value = source.cloud;
  el<HTMLInputElement>("client-secret").value = "";
  showFieldErrors({});
  el("source-status").textContent = "";
  el("permission-results").hidden = true;
  void clientSecret.refresh();
}

/**
 * Checks the fields, saves them in the project (the core's validation answers) and hands a
 * typed secret to the keychain (the field is cleared); true when the source is ready.
 */
async function sourceReady(): Promise<boolean> {
  let errors: FieldMessages;
  try {
    errors = await checkSource();
  } catch (e) {
    el("source-status").textContent = `Could not check the fields: ${errorText(e)}`;
    return false;
  }
  showFieldErrors(errors);
  const status = el("source-status");
  if (Object.keys(errors).length > 0) {
    status.textContent = "Please correct the highlighted fields.";
    return false;
  }
  const saved = await saveProject((p) => ({ ...p, source: { ...p.source, ...sourceConfig() } }));
  if (isError(saved)) {
    showFieldErrors(fieldErrors(saved));
    status.textContent = saved.fields?.length ? "Please correct the highlighted fields." : `Could not save: ${saved.message}`;
    return false;
  }
  if (!(await clientSecret.commit())) {
    status.textContent = "The client secret could not be stored (see above).";
    return false;
  }
  status.textContent = "";
  return true;
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
    status.textContent = `Sign-in failed: ${errorText(e)}`;
  }
}

export function wireSource(): void {
  renderPermissions();
  el<HTMLFormElement>("source-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await sourceReady()) el("source-status").textContent = "The fields look right and are saved in the project.";
  });
  el("test-connection").addEventListener("click", () => void testConnection());
  el("source-next").addEventListener("click", async () => {
    if (await sourceReady()) show("destination");
  });
  for (const id of ["tenant-id", "client-id"]) el(id).addEventListener("change", () => void clientSecret.refresh());
  for (const id of Object.values(FIELD_IDS)) {
    el(id).addEventListener("blur", async () => {
      const errors = await checkSource().catch(() => ({}) as FieldMessages);
      const field = Object.entries(FIELD_IDS).find(([, v]) => v === id)?.[0] ?? "";
      const value = (el<HTMLInputElement>(id).value ?? "").trim();
      if (value !== "") {
        el(`${id}-error`).textContent = errors[field] ?? "";
        el(id).setAttribute("aria-invalid", errors[field] ? "true" : "false");
      }
    });
  }
  // A project opened (not merely saved): its settings fill the fields.
  subscribe((state, previous) => {
    if (state.project && state.project.id !== previous.project?.id) fill(state.project.source);
  });
}
