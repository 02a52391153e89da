// The Destination screen: IceWarp, another IMAP server or a local folder.
import { invoke } from "@tauri-apps/api/core";
import type { DestinationSettings } from "./bindings/DestinationSettings";
import type { DestinationCheck } from "./bindings/DestinationCheck";
import type { FieldError } from "./bindings/FieldError";
import type { IpcError } from "./bindings/IpcError";
import type { SourceConfig } from "./bindings/SourceConfig";
import { el, showFieldErrors } from "./dom";
import { SecretField } from "./secret-field";
import { checkDestination, type DestinationFields } from "./validate";

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
};

const value = (id: string) => el<HTMLInputElement>(id).value;
const optional = (id: string) => value(id).trim() || undefined;

function read(): DestinationFields {
  const checked = (name: string) => document.querySelector<HTMLInputElement>(`input[name="${name}"]:checked`)?.value;
  return {
    kind: (checked("dest-kind") ?? "iceWarp") as DestinationFields["kind"],
    iceWarpHost: value("dw-host"),
    adminEmail: value("dw-admin-email"),
    credentialsReport: value("dw-credentials-report"),
    host: value("di-host"),
    port: value("di-port"),
    login: (checked("di-login") ?? "master") as DestinationFields["login"],
    masterUser: value("di-master-user"),
    accountsCsv: value("di-accounts-csv"),
    davUrl: value("di-dav-url"),
    path: value("df-path"),
  };
}

/** The settings as the backend takes them. */
export function destinationSettings(): DestinationSettings {
  const f = read();
  if (f.kind === "iceWarp") {
    return {
      kind: "iceWarp",
      host: f.iceWarpHost.trim(),
      adminEmail: f.adminEmail.trim(),
      caFile: optional("dw-ca-file"),
      credentialsReport: f.credentialsReport.trim(),
    };
  }
  if (f.kind === "imap") {
    const port = f.port.trim();
    return {
      kind: "imap",
      host: f.host.trim(),
      port: port === "" ? undefined : Number(port),
      security: el<HTMLSelectElement>("di-security").value as "tls" | "starttls",
      caFile: optional("di-ca-file"),
      masterUser: f.login === "master" ? f.masterUser.trim() : undefined,
      masterStyle: el<HTMLSelectElement>("di-master-style").value as "authzid" | "dovecot",
      accountsCsv: f.login === "csv" ? f.accountsCsv.trim() : undefined,
      davUrl: f.login === "csv" ? f.davUrl.trim() || undefined : undefined,
    };
  }
  return { kind: "folder", path: f.path.trim() };
}

const adminPassword = new SecretField("dw-admin-password", "destAdminPassword", () => {
  const f = read();
  const host = f.iceWarpHost.trim();
  return host && f.adminEmail.includes("@") ? `${host}/${f.adminEmail.trim()}` : null;
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

function paintKind(): void {
  const f = read();
  document.querySelectorAll<HTMLElement>("#destination-form [data-kind]").forEach((d) => (d.hidden = d.dataset.kind !== f.kind));
  document.querySelectorAll<HTMLElement>("#destination-form [data-login]").forEach((d) => (d.hidden = d.dataset.login !== f.login));
  el("destination-results").hidden = true;
  el("destination-status").textContent = "";
  showFieldErrors(FIELD_IDS, {});
}

/**
 * Checks the fields (here, then in the backend) and hands a typed password to the keychain.
 * Resolves true when the destination is ready to be tested or used.
 */
async function checkAndStore(): Promise<boolean> {
  const f = read();
  const secret = passwordField(f);
  const errors = checkDestination(f, secret?.typed ?? "", secret?.stored ?? false);
  showFieldErrors(FIELD_IDS, errors);
  const status = el("destination-status");
  if (Object.keys(errors).length > 0) {
    status.textContent = "Please correct the highlighted fields.";
    return false;
  }
  try {
    const backend = await invoke<FieldError[]>("validate_destination", { destination: destinationSettings() });
    const fromBackend: Record<string, string> = {};
    for (const e of backend) fromBackend[e.field] = e.message;
    showFieldErrors(FIELD_IDS, fromBackend);
    if (backend.length > 0) {
      status.textContent = "Please correct the highlighted fields.";
      return false;
    }
  } catch (e) {
    status.textContent = `Could not check the fields: ${(e as IpcError).message ?? String(e)}`;
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
    status.textContent = (e as IpcError).message ?? String(e);
  }
}

/** Wires the screen; `next` runs when the settings are valid and the password stored. */
export function wireDestination(source: () => SourceConfig, back: () => void, next: () => void): void {
  document.querySelectorAll<HTMLInputElement>('input[name="dest-kind"], input[name="di-login"]').forEach((r) =>
    r.addEventListener("change", () => {
      paintKind();
      void passwordField(read())?.refresh();
    }),
  );
  for (const id of ["dw-host", "dw-admin-email"]) el(id).addEventListener("change", () => void adminPassword.refresh());
  for (const id of ["di-host", "di-master-user"]) el(id).addEventListener("change", () => void masterPassword.refresh());
  el("test-destination").addEventListener("click", () => void testDestination(source));
  el("dest-back").addEventListener("click", back);
  el<HTMLFormElement>("destination-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await checkAndStore()) next();
  });
  paintKind();
}
