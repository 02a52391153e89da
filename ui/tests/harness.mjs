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

/** The core's field errors for the inputs the tests type, as migrator-core recorded them. */
export async function coreFieldErrors() {
  return JSON.parse(await readFile(join(here, "core-field-errors.json"), "utf8"));
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
 * The scripted backend of the app contract (issue 16), installed before the app's scripts run.
 * Its state (projects, the run) is kept in sessionStorage, so it survives a window reload as the
 * Rust side does; secrets stay in memory and never reach storage. Options:
 * - `keychain`: false for a desktop without a secret store; `os`: what app_info says;
 * - `mailboxes`: how many tenant mailboxes beyond the three named ones (10,000 for the scale test);
 * - `picks`: purpose -> the path the native dialog "chooses" (null: cancelled);
 * - `awake`: run_status's keep-awake answer during a pass (default `{ kept: true }`);
 * - `fieldErrors`: the core's recorded field errors ([`coreFieldErrors`]), which
 *   validate_source and validate_destination answer with.
 * The test drives a run with window.__setRun({ done, running, failed }) and window.__finishRun(),
 * and fires the schedule timer with window.__fireSchedule().
 */
export function mockBackend(options = {}) {
  const calls = [];
  window.__cspViolations = [];
  document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  const keychainAvailable = options.keychain !== false;
  const secrets = new Map();
  const entry = (args) => `${args.kind}:${args.account}`.toLowerCase();
  const status = (args) => secrets.get(entry(args))?.where ?? (keychainAvailable ? "missing" : "unavailable");
  const now = () => 1_780_000_000 + calls.length;
  const KEY = "__scriptedBackend";
  const rules = () => ({ disabledUsers: "skip", sharedMailboxes: "create", resourceMailboxes: "create", resourcesAs: "resource", skipOnmicrosoft: true, groups: "skip", domainMap: {} });
  const newProject = (id, name, demo) => ({
    id, name, demo, createdAt: 1_780_000_000, updatedAt: 1_780_000_000,
    source: demo ? { tenantId: "demo.onmicrosoft.com", clientId: "00000000-0000-0000-0000-00000000de70", cloud: "global" } : { tenantId: "", clientId: "", cloud: "global" },
    destination: demo ? { kind: "folder", path: "/home/admin/.local/share/com.m365migrator.app/demo/output" } : { kind: "iceWarp", host: "", adminEmail: "", credentialsReport: "" },
    rules: rules(), selection: { users: [] }, workloads: [], passes: [],
  });
  const saved = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
  const db = saved ?? {
    projects: { demo: newProject("demo", "Demo", true), ...(options.projects ?? {}) },
    current: null,
    paths: {},
    run: null,
    seq: 0,
  };
  const persist = () => sessionStorage.setItem(KEY, JSON.stringify(db));
  const current = () => {
    const p = db.projects[db.current];
    if (!p) throw { code: "project.none", message: "No project is open." };
    return p;
  };
  const summary = (p) => ({ id: p.id, name: p.name, demo: p.demo, updatedAt: p.updatedAt, lastPass: p.passes.at(-1) });

  /** The tenant: three named mailboxes, then `options.mailboxes` generated ones. */
  function tenant() {
    const u = (address, kind, extra = {}) => ({
      address, userPrincipalName: address, enabled: true, kind, folders: 12, items: 100, calendars: 1, events: 10,
      contactFolders: 1, contacts: 5, taskLists: 1, tasks: 2, outOfRange: 0, estimatedSeconds: 10, onlineArchive: false, ...extra,
    });
    const rows = [
      u("adele.vance@contoso.com", "user", { items: 1250, folders: 24, estimatedSeconds: 125 }),
      u("alex.wilber@contoso.com", "user", { enabled: false, items: 310 }),
      u("room-1@contoso.com", "room", { items: 0 }),
    ];
    // A name a spreadsheet would run as a formula: the export must neutralise it.
    if (options.hostileName) {
      rows.push(u('=HYPERLINK("http://evil.example/")@contoso.com', "user"));
      rows.push(u("@SUM(1+1)@contoso.com", "user"), u("+1-555@contoso.com", "user"), u("-2+3@contoso.com", "user"));
    }
    for (let i = 1; i <= (options.mailboxes ?? 0); i++) {
      const n = String(i).padStart(5, "0");
      const kind = i % 50 === 0 ? "guest" : i % 20 === 0 ? "shared" : "user";
      rows.push(u(kind === "guest" ? `guest${n}_fabrikam.com#EXT#@contoso.onmicrosoft.com` : `user${n}@contoso.com`, kind, { items: (i * 37) % 5000, estimatedSeconds: ((i * 37) % 5000) / 10 }));
    }
    return rows;
  }

  /** The plan as the core would compute it from the project's rules and the accounts CSV. */
  function plan(p) {
    const d = p.destination;
    const csv = d.kind === "iceWarp" && d.accountsCsv ? new Set(["adele.vance@contoso.com"]) : new Set();
    const chosen = (w) => p.workloads.length === 0 || p.workloads.includes(w);
    const users = tenant().map((row) => {
      let action;
      if (row.kind === "guest") action = { kind: "skip", reason: "guest, not migrated" };
      else if (d.kind !== "iceWarp") action = { kind: "copy" };
      // Provisioning's own plan decides (Plan::decide, provision::deciding_rule), in its words:
      // a shared, room or equipment mailbox follows its kind's rule whatever its sign-in; the
      // disabled users' rule is for the rest.
      else if (row.kind === "room" && p.rules.resourceMailboxes === "skip") action = { kind: "skip", reason: "a room mailbox (configured rule: skip)" };
      else if (row.kind === "equipment" && p.rules.resourceMailboxes === "skip") action = { kind: "skip", reason: "an equipment mailbox (configured rule: skip)" };
      else if (row.kind === "shared" && p.rules.sharedMailboxes === "skip") action = { kind: "skip", reason: "a shared mailbox (configured rule: skip)" };
      else if (["room", "equipment"].includes(row.kind) && !csv.has(row.address) && p.rules.resourcesAs !== "user") action = { kind: "createResource", resource: row.kind };
      else if (["room", "equipment", "shared"].includes(row.kind)) action = csv.has(row.address) ? { kind: "merge" } : { kind: "create" };
      else if (!row.enabled && p.rules.disabledUsers === "skip") action = { kind: "skip", reason: "a disabled user (configured rule: skip)" };
      else action = csv.has(row.address) ? { kind: "merge" } : { kind: "create" };
      return {
        ...row, action,
        items: chosen("mail") ? row.items : 0, events: chosen("calendar") ? row.events : 0,
        contacts: chosen("contacts") ? row.contacts : 0, tasks: chosen("tasks") ? row.tasks : 0,
      };
    });
    const sum = (f) => users.reduce((n, x) => n + x[f], 0);
    return {
      users, guests: users.filter((x) => x.kind === "guest").length, withoutMailbox: 0, onlineArchives: 0,
      domains: ["contoso.com"], items: sum("items"), events: sum("events"), contacts: sum("contacts"), tasks: sum("tasks"),
      outOfRange: 0, estimatedSeconds: 7200, estimateBinds: "mailboxes",
      estimateTerms: {
        mailboxes: 7200, largestMailbox: 7200, appLimit: 0, cpu: 0, destination: 0, destinationCpu: 0,
        // engine::estimate::DestinationKind::of: a server whose host is a loopback address or
        // `localhost` (estimate::is_this_machine) runs on this machine.
        destinationCpuCounted: d.kind !== "folder" && /^(localhost|.*\.localhost|127(\.\d+){3}|\[?::1\]?)\.?$/i.test(d.host ?? ""),
      },
    };
  }

  /** The snapshot of db.run: the first `done` mailboxes done, then `failed`, then `running`. */
  function snapshot() {
    const r = db.run;
    if (!r) return null;
    const mailboxes = r.users.map((user, i) => {
      const retried = r.retried.includes(user);
      let state = "queued";
      if (i < r.done) state = "done";
      else if (i < r.done + r.failed) state = retried ? "done" : "failed";
      else if (i < r.done + r.failed + r.running) state = "running";
      const itemsDone = state === "done" ? 100 : state === "failed" ? 98 : state === "running" ? 50 : 0;
      return { user, state, itemsTotal: 100, itemsDone, itemsFailed: state === "failed" ? 2 : 0, bytes: itemsDone * 20_000, startedAt: state === "queued" ? undefined : r.startedAt };
    });
    const count = (s) => mailboxes.filter((m) => m.state === s).length;
    const sum = (f) => mailboxes.reduce((n, m) => n + m[f], 0);
    return {
      startedAt: r.startedAt, mailboxesTotal: mailboxes.length, mailboxesDone: count("done"), mailboxesRunning: count("running"),
      mailboxesQueued: count("queued"), mailboxesFailed: count("failed"), itemsTotal: sum("itemsTotal"), itemsDone: sum("itemsDone"),
      itemsFailed: sum("itemsFailed"), bytesDone: sum("bytes"), itemsPerSecond: 12.5, etaSeconds: r.running > 0 ? 7200 : undefined,
      mailboxesSkipped: 0, mailboxesStopped: 0, fraction: (sum("itemsDone") + sum("itemsFailed")) / Math.max(1, sum("itemsTotal")), mailboxes,
    };
  }

  function startRun(p, kind) {
    if (db.run?.active) throw { code: "run.running", message: "A pass is already running." };
    const planned = plan(p).users.filter((u) => u.action.kind !== "skip" && (p.selection.users.length === 0 || p.selection.users.includes(u.address)));
    db.run = { project: p.id, kind, users: planned.map((u) => u.address), done: 0, failed: 0, running: Math.min(8, planned.length), retried: [], active: true, startedAt: now() };
    p.passes.push({ kind, startedAt: now(), state: "running" });
    persist();
  }

  /** The schedule as the core shows it (migrator-core `PassSchedule::shown`). */
  function shownSchedule(p) {
    const s = p.schedule;
    if (!s) return null;
    const last = Math.max(s.since, ...p.passes.map((x) => x.startedAt));
    return { everyHours: s.everyHours, nextAt: Math.max(last + s.everyHours * 3600, now()) };
  }

  /** The shell's timer found the open project's schedule due: an incremental pass, announced. */
  function fireSchedule() {
    const p = db.projects[db.current];
    if (!p?.schedule || db.run?.active) return false;
    p.schedule.since = now();
    startRun(p, "incremental");
    internals.runCallback(internals.listeners.get("scheduled-pass-started"), { event: "scheduled-pass-started", id: 2, payload: null });
    return true;
  }

  function finishRun() {
    const r = db.run;
    if (!r?.active) return;
    r.done = r.users.length - r.failed;
    r.running = 0;
    r.active = false;
    const p = db.projects[r.project];
    const s = snapshot();
    const pass = p.passes.at(-1);
    pass.state = "finished";
    pass.finishedAt = now();
    pass.summary = {
      users: s.mailboxesTotal, seconds: 7200, cancelled: false,
      totals: { folders: 36, messages: s.itemsDone, events: 0, contacts: 0, tasks: 0, skipped: 0, failed: s.itemsFailed, bytes: s.bytesDone, outOfRange: 0 },
    };
    persist();
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
    /** As over real IPC, the page gets a copy: never the backend's own objects. */
    async invoke(cmd, args) {
      const answer = await internals.answer(cmd, args);
      return answer === undefined || answer === null ? answer : JSON.parse(JSON.stringify(answer));
    },
    async answer(cmd, args) {
      // Inputs compared as the backend reads them (a null field is an absent one).
      const drop = (x) => JSON.parse(JSON.stringify(x, (_, v) => (v === null ? undefined : v)));
      const same = (a, b) => {
        if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return a === b;
        const ka = Object.keys(a).sort();
        const kb = Object.keys(b).sort();
        return ka.length === kb.length && ka.every((k, i) => k === kb[i] && same(a[k], b[k]));
      };
      const quiet = cmd === "run_snapshot" || cmd === "run_status";
      if (!quiet) calls.push({ cmd, args: JSON.parse(JSON.stringify(args ?? {}, (k, v) => (k === "value" ? "<secret>" : v))) });
      switch (cmd) {
        case "app_info":
          return { version: "0.2.0", logDir: "/home/admin/.local/share/com.m365migrator.app/logs", os: options.os ?? "linux" };
        case "secret_status":
          return status(args);
        case "store_secret": {
          if (!args.sessionOnly && !keychainAvailable) {
            throw { code: "keychain.unavailable", message: "No secret store (Secret Service) is available on this computer. The secret can be kept for this session only: it is then forgotten when the app quits." };
          }
          const where = args.sessionOnly ? "session" : "stored";
          secrets.set(entry(args), { value: args.value, where });
          return where;
        }
        case "forget_secret":
          secrets.delete(entry(args));
          return status(args);
        case "list_projects":
          return Object.values(db.projects).map(summary);
        case "create_project": {
          const id = `p${++db.seq}`;
          db.projects[id] = newProject(id, args.name, false);
          db.current = id;
          persist();
          return db.projects[id];
        }
        case "open_project":
          if (!db.projects[args.id]) throw { code: "project.missing", message: "No such project." };
          db.current = args.id;
          persist();
          return db.projects[args.id];
        case "delete_project":
          delete db.projects[args.id];
          persist();
          return null;
        case "validate_source":
        case "validate_destination": {
          // The core's own answers for the inputs the tests type (core-field-errors.json,
          // written by migrator-core's spec tests); anything else is taken.
          const known = (options.fieldErrors ?? []).find((c) => c.cmd === cmd && same(drop(c.args), drop(args)));
          return known ? known.errors : [];
        }
        case "save_project": {
          const p = current();
          const page = args.project;
          if (page.id !== p.id) throw { code: "invalid", message: "Only the open project can be saved: open it first." };
          // The core's draft check of the spec (save_project: MigrationSpec::field_errors), as
          // migrator-core recorded it for the source and destination the tests send; the
          // backend refuses with the first field's message and every field, keyed as the page's.
          const fields = ["source", "destination"].flatMap((part) =>
            (options.fieldErrors ?? []).filter((c) => c.cmd === "save_project" && c.args[part] && same(drop(c.args[part]), drop(page[part]))).flatMap((c) => c.errors));
          if (fields.length > 0) throw { code: "invalid", message: fields[0].message, fields };
          // Paths are the backend's: the page's copies are ignored, the picked ones kept.
          const d = { ...page.destination };
          for (const k of ["accountsCsv", "caFile", "credentialsReport"]) {
            if (k in d || db.paths[k]) d[k] = db.paths[k];
            if (d[k] === undefined) delete d[k];
          }
          if (d.kind === "folder") d.path = db.paths.destinationFolder ?? (p.destination.kind === "folder" ? p.destination.path : "");
          if (d.kind === "iceWarp") d.credentialsReport = db.paths.credentialsReport ?? "";
          db.projects[p.id] = { ...page, id: p.id, demo: p.demo, passes: p.passes, destination: d, updatedAt: now() };
          persist();
          return db.projects[p.id];
        }
        case "pick_path": {
          const chosen = options.picks?.[args.purpose] !== undefined ? options.picks[args.purpose] : `/home/admin/Documents/${args.purpose}`;
          if (chosen === null) return null;
          db.paths[args.purpose] = chosen;
          persist();
          return chosen;
        }
        case "preview_accounts_csv":
          if (!db.paths.accountsCsv) throw { code: "csv.none", message: "No accounts CSV is chosen." };
          return {
            rows: 415, matched: 412, unmatched: ["old.user@contoso.com", "left@contoso.com"], missing: 8,
            errors: [{ line: 7, message: "no password" }, { line: 19, message: "not an email address: adele" }, { line: 40, message: "duplicate address" }],
          };
        case "plan_migration":
          // With `holdPlan`, counting goes on until the page cancels it (cancel_plan).
          if (options.holdPlan) await new Promise((resolve) => (window.__releasePlan = resolve));
          return plan(current());
        case "cancel_plan":
          // True when a plan was counting (the backend's answer).
          if (!window.__releasePlan) return false;
          window.__releasePlan();
          return true;
        case "start_pass":
          startRun(current(), args.kind);
          return null;
        case "run_demo":
          db.current = "demo";
          startRun(db.projects.demo, "full");
          return null;
        case "retry_failed": {
          const r = db.run;
          if (!r || r.active) throw { code: "run.none", message: "Nothing to retry." };
          r.retried = args.user ? [args.user] : [...r.users];
          r.active = true;
          const p = db.projects[r.project];
          p.passes.push({ kind: "incremental", startedAt: now(), state: "running" });
          persist();
          return null;
        }
        case "run_snapshot":
          return options.noSnapshot ? null : snapshot();
        case "run_status": {
          const s = snapshot();
          const last = s && { request: { kind: "demo", outDir: "" }, state: db.run.active ? "running" : "finished", startedAt: db.run.startedAt, done: s.itemsDone, failed: s.itemsFailed, pending: 0 };
          // While a pass runs, whether the computer is kept awake (`options.awake`; kept by default).
          const awake = db.run?.active ? (options.awake ?? { kept: true }) : undefined;
          return { running: !!db.run?.active, last: last ?? undefined, awake };
        }
        case "pass_schedule":
          return shownSchedule(current());
        case "set_pass_schedule": {
          const p = current();
          const h = args.everyHours;
          if (h !== null && !(Number.isInteger(h) && h >= 1 && h <= 168)) throw { code: "invalid", message: `a pass every ${h} hours: choose 1 to 168 hours` };
          if (h === null) delete p.schedule;
          else p.schedule = { everyHours: h, since: now() };
          persist();
          return shownSchedule(p);
        }
        case "cutover_checklist": {
          const p = current();
          return {
            domains: [
              { domain: "contoso.com", mx: ["contoso-com.mail.protection.outlook.com"] },
              { domain: "fabrikam.com", mx: [], error: "the DNS server failed to answer (SERVFAIL)" },
            ],
            lastPass: p.passes.at(-1),
            credentialsReport: p.destination.kind === "iceWarp" ? p.destination.credentialsReport : undefined,
          };
        }
        case "run_details": {
          const s = snapshot();
          if (!s) throw { code: "missing", message: "No migration has run yet." };
          const failed = s.mailboxes.filter((m) => m.state === "failed");
          const stateDir = "/home/admin/.local/share/com.m365migrator.app/projects/p1/.m365-migrator";
          return {
            reportHtml: `${stateDir}/report/report.html`, stateDir, logDir: "/home/admin/.local/share/com.m365migrator.app/logs",
            failures: failed.map((m) => ({ user: m.user, workload: "mail", folder: "Inbox", item: "AAMkAGI2", subject: "Quarterly budget", date: "2026-11-03T09:12:00Z", size: 1258291, reason: "The destination mailbox is full.", advice: "Free space in the mailbox, then run again.", detail: "NO [OVERQUOTA] Quota exceeded" })),
            failuresTotal: failed.length * 2,
          };
        }
        case "control_run":
          return null;
        case "test_connection": {
          const stored = secrets.get(`graphClientSecret:${args.source.tenantId}/${args.source.clientId}`.toLowerCase());
          if (!stored) throw { code: "secret.missing", message: "The client secret is not stored yet." };
          if (stored.value === "wrong") throw { code: "auth.secret", message: "cannot sign in to Microsoft 365: the client secret is wrong (AADSTS7000215): enter the secret's Value" };
          const p = (name, required, ok) => ({ name, workload: "mail", required, inToken: ok, probeOk: ok, detail: ok ? null : "403", notUsed: null });
          return [p("User.Read.All", true, true), p("Mail.Read", true, false), p("Calendars.Read", false, true)];
        }
        case "test_destination": {
          const d = args.destination;
          const row = (name, verdict, advice) => ({ name, verdict, advice });
          if (d.kind === "iceWarp") {
            return {
              ok: true,
              checks: [
                row("IceWarp admin API", "warning", "IMAP APPEND is slowed after 120 messages per minute (C_System_Services_IMAP_MaxAppendsPerMinute): set it to 0 (unlimited) for the migration"),
                row("IMAP (mail)", "ok", `logged in to ${d.host}:993 for admin@example.com`),
              ],
            };
          }
          if (d.kind === "folder") return { ok: true, checks: [row("Destination folder", "ok", `${d.path} is writable`)] };
          return { ok: false, checks: [row("IMAP (mail)", "blocking", `the IMAP server at ${d.host}:${d.port ?? 993} refused the master user ${d.masterUser}`)] };
        }
        case "open_run_file":
          return null;
        case "plugin:event|listen":
          internals.listeners.set(args.event, args.handler);
          return internals.listeners.size;
        case "plugin:event|unlisten":
        case "plugin:window|destroy":
          return null;
        default:
          throw { code: "unknown", message: `unknown command ${cmd}` };
      }
    },
    listeners: new Map(),
  };
  window.__TAURI_INTERNALS__ = internals;
  window.__calls = calls;
  window.__secrets = secrets;
  window.__setRun = (counts) => {
    Object.assign(db.run, counts);
    persist();
  };
  window.__finishRun = finishRun;
  window.__fireSchedule = fireSchedule;
  window.__emit = (event) => internals.runCallback(internals.listeners.get(event), { event, id: 1, payload: null });
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
