// Test harness: serves ui/dist on 127.0.0.1, starts Debian's Chromium through playwright-core,
// and replaces Tauri's IPC with a scripted backend (window.__TAURI_INTERNALS__), so the real
// built UI runs in a real browser without the Rust side.
import { createServer } from "node:http";
import { readFile, mkdir, copyFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = fileURLToPath(new URL(".", import.meta.url));
const dist = join(here, "..", "dist");
const repo = join(here, "..", "..");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml" };

/** The app's Content-Security-Policy (tauri.conf.json), served with every page. */
async function appCsp() {
  const conf = JSON.parse(await readFile(join(repo, "tauri.conf.json"), "utf8"));
  return conf.app.security.csp;
}

export async function serveDist() {
  if (!existsSync(join(dist, "index.html"))) {
    throw new Error("ui/dist is missing: run `npm run build` in ui/ first");
  }
  const csp = await appCsp();
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent((req.url || "/").split("?")[0])).replace(/^(\.\.[/\\])+/, "");
    const file = join(dist, path === "/" ? "index.html" : path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream", "content-security-policy": csp });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(r)) };
}

export async function launch() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with apt-get install chromium (or set CHROMIUM_PATH)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/**
 * The scripted backend, installed before the app's scripts run. `options.keychain`: false for
 * a desktop without a Secret Service.
 */
export function mockBackend(options = {}) {
  const calls = [];
  // Anything the app's Content-Security-Policy blocks is recorded here.
  window.__cspViolations = [];
  document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  const keychainAvailable = options.keychain !== false;
  // entry -> { value, where: "stored" | "session" }; values stay here, never in __calls.
  const secrets = new Map();
  const entry = (args) => `${args.kind}:${args.account}`.toLowerCase();
  const status = (args) => secrets.get(entry(args))?.where ?? (keychainAvailable ? "missing" : "unavailable");
  let finishDemo;
  let endRun;
  let lastRequest = null;
  const listeners = new Map();
  /**
   * A scripted run on `channel`: two mailboxes, 4 messages counted ahead, 2 calendar events
   * listed later; it waits for __finishDemo() with 4 of 6 items ended, and, with
   * `options.holdEnd`, for __endRun() before runFinished.
   */
  async function script(channel) {
    let index = 0;
    const send = (message) => internals.runCallback(channel.id, { index: index++, message });
    send({ kind: "runStarted", users: 2 });
    if (options.fatal) throw { code: "auth.secret", message: "cannot sign in to Microsoft 365: the client secret has expired (AADSTS7000222)" };
    send({ kind: "userStarted", user: "adele.vance@contoso.com", folders: 18, messages: 3 });
    send({ kind: "userStarted", user: "alex.wilber@contoso.com", folders: 18, messages: 1 });
    send({ kind: "itemDone", user: "adele.vance@contoso.com", bytes: 150000, skipped: false });
    send({ kind: "itemDone", user: "adele.vance@contoso.com", bytes: 50000, skipped: false });
    send({ kind: "itemDone", user: "alex.wilber@contoso.com", bytes: 30000, skipped: false });
    send({ kind: "throttled", user: "adele.vance@contoso.com", waitMs: options.throttleMs ?? 2128 });
    send({ kind: "itemFailed", user: "adele.vance@contoso.com", folder: "Inbox", item: "AAMk1", reason: "Graph answered HTTP 404" });
    for (let i = 2; i <= (options.failures ?? 1); i++) {
      send({ kind: "itemFailed", user: "adele.vance@contoso.com", folder: "Inbox", item: `AAMk${i}`, reason: "Graph answered HTTP 404" });
    }
    // Alex's calendar: a page of 2 events, not in the messages counted ahead.
    send({ kind: "itemsListed", user: "alex.wilber@contoso.com", items: 2 });
    await new Promise((resolve) => (finishDemo = resolve));
    send({ kind: "itemDone", user: "alex.wilber@contoso.com", bytes: 0, skipped: false });
    send({ kind: "itemDone", user: "alex.wilber@contoso.com", bytes: 0, skipped: false });
    const stats = { folders: 36, messages: 3, events: 4, contacts: 2, tasks: 1, skipped: 0, failed: 1, bytes: 230000 };
    send({ kind: "userFinished", user: "adele.vance@contoso.com", stats });
    if (options.holdEnd) await new Promise((resolve) => (endRun = resolve));
    const summary = { users: 2, totals: stats, seconds: 1.5, cancelled: false };
    send({ kind: "runFinished", summary });
    return summary;
  }
  const internals = {
    metadata: { currentWindow: { label: "main" }, currentWebview: { windowLabel: "main", label: "main" } },
    callbacks: new Map(),
    transformCallback(cb) {
      const id = Math.floor(Math.random() * 2 ** 31);
      internals.callbacks.set(id, cb);
      return id;
    },
    unregisterCallback(id) {
      internals.callbacks.delete(id);
    },
    runCallback(id, data) {
      const cb = internals.callbacks.get(id);
      if (cb) cb(data);
    },
    async invoke(cmd, args) {
      calls.push({ cmd, args: JSON.parse(JSON.stringify(args ?? {}, (k, v) => (k === "onEvent" ? "<channel>" : k === "value" || k === "clientSecret" ? "<secret>" : v))) });
      switch (cmd) {
        case "app_info":
          return { version: "0.1.0", logDir: "/home/admin/.local/share/com.m365migrator.app/logs" };
        case "secret_status":
          return status(args);
        case "store_secret": {
          if (!args.sessionOnly && !keychainAvailable) {
            throw { code: "keychain.unavailable", message: "No keychain is available on this computer (no Secret Service). The secret can be kept for this session only: it is then forgotten when the app quits." };
          }
          const where = args.sessionOnly ? "session" : "stored";
          secrets.set(entry(args), { value: args.value, where });
          return where;
        }
        case "forget_secret":
          secrets.delete(entry(args));
          return status(args);
        case "validate_source": {
          const errors = [];
          const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
          if (!guid.test(args.source.clientId)) errors.push({ field: "clientId", message: "backend: not a GUID" });
          return errors;
        }
        case "control_run":
          return null;
        case "test_connection": {
          const stored = secrets.get(`graphClientSecret:${args.source.tenantId}/${args.source.clientId}`.toLowerCase());
          if (!stored) throw { code: "secret.missing", message: "The client secret is not stored yet." };
          if (stored.value === "wrong") {
            throw { code: "auth.secret", message: "cannot sign in to Microsoft 365: the client secret is wrong (AADSTS7000215): enter the secret's Value" };
          }
          const p = (name, required, ok) => ({ name, workload: "mail", required, inToken: ok, probeOk: ok, detail: ok ? null : "403" });
          return [p("User.Read.All", true, true), p("Mail.Read", true, false), p("Calendars.Read", false, true)];
        }
        case "validate_destination":
          return [];
        case "test_destination": {
          const d = args.destination;
          const row = (name, verdict, advice) => ({ name, verdict, advice });
          if (d.kind === "iceWarp") {
            return {
              ok: true,
              checks: [
                row("IceWarp admin API", "warning", "IMAP APPEND is slowed after 120 messages per minute (C_System_Services_IMAP_MaxAppendsPerMinute): set it to 0 (unlimited) for the migration"),
                row("IMAP (mail)", "ok", `logged in to ${d.host}:993 for admin@example.com`),
                row("CalDAV/CardDAV (calendars, contacts, tasks)", "ok", `admin@example.com can read https://${d.host}/webdav/admin%40example.com/Calendar/`),
              ],
            };
          }
          if (d.kind === "folder") return { ok: true, checks: [row("Destination folder", "ok", `${d.path} is writable`)] };
          return {
            ok: false,
            checks: [
              row("IMAP (mail)", "blocking", `the IMAP server at ${d.host}:${d.port ?? 993} refused the master user ${d.masterUser} logging in for adele.vance@contoso.com: check the master user and the administrator password`),
            ],
          };
        }
        case "plan_migration": {
          // The scope as the backend would apply it: a mail date limit leaves out half the mail,
          // a batch of 1 keeps only that mailbox, the workloads not chosen count 0.
          const scope = args.scope ?? {};
          const chosen = (w) => !scope.workloads?.length || scope.workloads.includes(w);
          const half = scope.mailSince ? 2 : 1;
          const u = (address, folders, items, events, contacts, tasks, extra = {}) => ({
            address, userPrincipalName: address, enabled: true, folders,
            items: chosen("mail") ? items / half : 0,
            calendars: chosen("calendar") ? 1 : 0, events: chosen("calendar") ? events : 0,
            contactFolders: chosen("contacts") ? 1 : 0, contacts: chosen("contacts") ? contacts : 0,
            taskLists: chosen("tasks") ? 1 : 0, tasks: chosen("tasks") ? tasks : 0,
            outOfRange: chosen("mail") ? items - items / half : 0,
            estimatedSeconds: items / 10, ...extra,
          });
          let users = [
            u("adele.vance@contoso.com", 24, 1250, 40, 120, 8),
            u("alex.wilber@contoso.com", 18, 310, 12, 30, 0, { enabled: false }),
            u("room-1@contoso.com", 0, 0, 0, 0, 0, { problem: "Graph answered HTTP 403 (an application access policy?)" }),
          ];
          if (scope.batchSize) users = users.slice((scope.batch - 1) * scope.batchSize, scope.batch * scope.batchSize);
          const sum = (f) => users.reduce((n, x) => n + x[f], 0);
          return {
            users,
            domains: ["contoso.com", "contoso.onmicrosoft.com"],
            items: sum("items"),
            events: sum("events"),
            contacts: sum("contacts"),
            tasks: sum("tasks"),
            outOfRange: sum("outOfRange"),
            estimatedSeconds: 125,
          };
        }
        case "run_demo":
        case "start_migration": {
          lastRequest = cmd === "run_demo" ? { kind: "demo", outDir: args.outDir } : { kind: "migration", request: args.request };
          return script(args.onEvent);
        }
        case "run_status":
          if (options.running) return { running: true, last: { request: { kind: "demo", outDir: "" }, state: "running", startedAt: 0, done: 0, failed: 0, pending: 0 } };
          return { running: false, last: options.lastRun ?? null };
        case "watch_run":
          if (!options.running) return false;
          void script(args.onEvent);
          return true;
        case "run_details": {
          const request = lastRequest ?? options.lastRun?.request;
          if (!request) throw { code: "missing", message: "No migration has run yet." };
          const stateDir = request.kind === "demo"
            ? "/home/admin/.local/share/com.m365migrator.app/demo-output/.m365-migrator"
            : `${request.request.destination.path ?? "/home/admin/.local/share/com.m365migrator.app/journal/contoso"}/.m365-migrator`;
          const accounts = request.kind === "migration" && request.request.destination.kind === "iceWarp"
            ? { count: 2, credentialsReport: request.request.destination.credentialsReport }
            : undefined;
          return {
            reportHtml: `${stateDir}/report/report.html`,
            stateDir,
            logDir: "/home/admin/.local/share/com.m365migrator.app/logs",
            failures: [{ user: "adele.vance@contoso.com", folder: "Inbox", item: "AAMk1", reason: "Graph answered HTTP 404" }],
            failuresTotal: 1,
            accounts,
          };
        }
        case "open_run_file":
          if (args.file !== "report" && args.file !== "logFolder") throw { code: "invalid", message: `unknown variant ${args.file}` };
          return null;
        case "plugin:event|listen":
          listeners.set(args.event, args.handler);
          return listeners.size;
        case "plugin:event|unlisten":
          return null;
        case "plugin:window|destroy":
          return null;
        default:
          throw { code: "unknown", message: `unknown command ${cmd}` };
      }
    },
  };
  window.__TAURI_INTERNALS__ = internals;
  window.__calls = calls;
  window.__secrets = secrets;
  window.__finishDemo = () => finishDemo && finishDemo();
  window.__endRun = () => endRun && endRun();
  // Fires a Tauri event at the page's listener, as the window would (e.g. tauri://close-requested).
  window.__emit = (event) => internals.runCallback(listeners.get(event), { event, id: 1, payload: null });
}

/** Saves a screenshot as a test artifact, and for the README when asked. */
export async function screenshot(page, name, { docs = false } = {}) {
  const artifacts = join(repo, "artifacts", "screenshots");
  await mkdir(artifacts, { recursive: true });
  const file = join(artifacts, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (docs) {
    await mkdir(join(repo, "docs", "screenshots"), { recursive: true });
    await copyFile(file, join(repo, "docs", "screenshots", `${name}.png`));
  }
  return file;
}
