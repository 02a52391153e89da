// The wizard in a real Chromium with the Tauri backend scripted.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { serveDist, launch, mockBackend, screenshot } from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await serveDist();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function openApp(colorScheme = "light", backend = {}) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 }, colorScheme });
  page.setDefaultTimeout(5000);
  await page.addInitScript(mockBackend, backend);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(server.url);
  return { page, errors };
}

test("the Source screen shows every field and the steps", async () => {
  const { page, errors } = await openApp();
  for (const label of ["Tenant ID", "Client ID", "Client secret", "Cloud"]) {
    assert.equal(await page.getByLabel(label, { exact: true }).count(), 1, label);
  }
  assert.equal(await page.locator("#client-secret").getAttribute("type"), "password");
  const clouds = await page.locator("#cloud option").allTextContents();
  assert.deepEqual(clouds, ["Global (also GCC)", "US Government GCC High", "US Government DoD", "China (21Vianet)"]);
  assert.equal(await page.locator('.steps li[aria-current="step"]').textContent(), "1 Source");
  assert.equal(await page.isVisible("#screen-migrate"), false);
  assert.equal(await page.isVisible("#screen-report"), false);
  await screenshot(page, "source", { docs: true });
  assert.deepEqual(errors, []);
});

test("bad fields get clear messages; a secret ID is recognised", async () => {
  const { page } = await openApp();
  await page.fill("#tenant-id", "contoso");
  await page.fill("#client-id", "my-app");
  await page.fill("#client-secret", "6a3e4f0c-1b2d-4c5e-8f90-123456789abc");
  await page.click("#check-source");
  assert.match(await page.textContent("#tenant-id-error"), /GUID, or a domain/);
  assert.match(await page.textContent("#client-id-error"), /Application \(client\) ID/);
  assert.match(await page.textContent("#client-secret-error"), /secret's ID/);
  assert.equal(await page.getAttribute("#tenant-id", "aria-invalid"), "true");
  await screenshot(page, "source-errors", { docs: true });
  // Nothing reached the backend while the fields were wrong, and no secret ever does.
  const calls = await page.evaluate(() => window.__calls.filter((c) => !c.cmd.startsWith("plugin:event|") && c.cmd !== "run_status"));
  assert.deepEqual(calls, []);

  await page.fill("#tenant-id", "contoso.onmicrosoft.com");
  await page.fill("#client-id", "00000000-0000-0000-0000-000000000001");
  await page.fill("#client-secret", "Qx8Q~realValue.123");
  await page.click("#check-source");
  await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "validate_source"));
  const calls2 = await page.evaluate(() => window.__calls.filter((c) => !c.cmd.startsWith("plugin:event|") && c.cmd !== "run_status"));
  assert.deepEqual([...new Set(calls2.map((c) => c.cmd))].sort(), ["secret_status", "validate_source"]);
  const call = calls2.find((c) => c.cmd === "validate_source");
  assert.equal(JSON.stringify(call.args).includes("Qx8Q~realValue"), false, "the secret must not be sent to validation");
  assert.equal(await page.textContent("#tenant-id-error"), "");
  assert.match(await page.textContent("#source-status"), /look right/);
  assert.equal(await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage)).then((s) => s.includes("Qx8Q")), false);
});

test("test connection shows granted and missing permissions, or Entra's advice", async () => {
  const { page } = await openApp();
  await page.fill("#tenant-id", "contoso.onmicrosoft.com");
  await page.fill("#client-id", "00000000-0000-0000-0000-000000000001");
  await page.fill("#client-secret", "Qx8Q~realValue.123");
  await page.click("#test-connection");
  await page.waitForSelector("#permission-results:not([hidden])");
  assert.match(await page.textContent('[data-permission="User.Read.All"]'), /granted/);
  assert.match(await page.textContent('[data-permission="Mail.Read"]'), /missing.*\(required\)/);
  assert.match(await page.textContent("#source-status"), /Mail.Read must be granted/);
  // The secret went to the keychain once, then the field shows where it is.
  assert.equal(await page.isVisible("#client-secret"), false);
  assert.match(await page.textContent("#client-secret-stored"), /Stored in the keychain/);
  assert.equal(await page.inputValue("#client-secret"), "");
  const cmds = (await page.evaluate(() => window.__calls)).map((c) => c.cmd);
  assert.deepEqual(cmds.filter((c) => !["secret_status", "run_status"].includes(c) && !c.startsWith("plugin:event|")), ["store_secret", "test_connection"]);
  const testCall = (await page.evaluate(() => window.__calls)).find((c) => c.cmd === "test_connection");
  assert.equal(JSON.stringify(testCall.args).includes("Qx8Q"), false, "sign-in uses the stored secret");
  await screenshot(page, "test-connection", { docs: true });

  // Test again without retyping: the stored secret is used.
  await page.click("#test-connection");
  await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "test_connection").length === 2);
  assert.equal((await page.evaluate(() => window.__calls)).filter((c) => c.cmd === "store_secret").length, 1);

  // Replace, then nothing typed: the stored secret stays in use.
  await page.click("#client-secret-replace");
  assert.equal(await page.isVisible("#client-secret"), true);
  await page.click("#test-connection");
  await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "test_connection").length === 3);
  assert.match(await page.textContent("#client-secret-stored"), /Stored in the keychain/);
  await page.click("#client-secret-replace");
  await page.fill("#client-secret", "wrong");
  await page.click("#test-connection");
  await page.waitForFunction(() => document.querySelector("#source-status").textContent.startsWith("Sign-in failed"));
  assert.match(await page.textContent("#source-status"), /AADSTS7000215/);
  assert.equal(await page.isVisible("#permission-results"), false);
});

test("the registration guide lists each permission with a copy button", async () => {
  const { page } = await openApp();
  await page.click("#guide summary");
  const names = await page.locator("#permissions code").allTextContents();
  assert.deepEqual(names, ["User.Read.All", "Mail.Read", "Domain.Read.All", "MailboxSettings.Read", "Calendars.Read", "Contacts.Read", "Tasks.Read.All"]);
  assert.equal(await page.locator("#permissions button.copy").count(), 7);
  await screenshot(page, "guide", { docs: true });
});

test("the demo renders live progress with groupware counted, pause and resume, then the report", async () => {
  const { page, errors } = await openApp("light", { holdEnd: true });
  // No run before: no "last migration" card.
  await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "run_status"));
  assert.equal(await page.isVisible("#last-run"), false);
  await page.click("#try-demo");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  assert.equal(await page.isVisible("#screen-source"), false, "one screen at a time");
  assert.equal(await page.isVisible("#screen-report"), false, "one screen at a time");
  // 4 messages counted ahead and 2 calendar events listed later: 4 of 6 items have ended
  // (3 written, 1 failed).
  await page.waitForFunction(() => document.querySelector("#counters").textContent.startsWith("4 of 6 items"));
  assert.match(await page.textContent("#counters"), /items\/s · ETA \d+ s · 1 failed/);
  assert.equal(await page.getAttribute("#overall", "aria-valuenow"), "67");
  const rows = await page.locator("#user-rows tr").count();
  assert.equal(rows, 2);
  assert.match(await page.textContent('#user-rows tr[data-user="alex.wilber@contoso.com"]'), /1 \/ 3 items/);
  assert.match(await page.textContent("#failures"), /AAMk1: Graph answered HTTP 404/);
  assert.match(await page.textContent('#user-rows tr[data-user="adele.vance@contoso.com"]'), /3 \/ 3 items/);
  await screenshot(page, "migrate", { docs: true });

  await page.click("#pause");
  await page.waitForSelector("#resume:not([hidden])");
  assert.match(await page.textContent("#run-status"), /Paused/);
  // While paused there is no ETA, and the paused time does not slow the rate.
  assert.match(await page.textContent("#counters"), /items\/s · paused · 1 failed/);
  const rateBefore = Number((await page.textContent("#counters")).match(/([\d.]+) items\/s/)[1]);
  await page.waitForTimeout(1500);
  await page.click("#resume");
  await page.waitForSelector("#pause:not([hidden])");
  assert.match(await page.textContent("#counters"), /items\/s · ETA \d+ s · 1 failed/);
  const rateAfter = Number((await page.textContent("#counters")).match(/([\d.]+) items\/s/)[1]);
  assert.ok(rateAfter >= rateBefore * 0.5, `rate ${rateBefore} -> ${rateAfter} after 1.5 s paused`);
  const controls = (await page.evaluate(() => window.__calls)).filter((c) => c.cmd === "control_run").map((c) => c.args.action);
  assert.deepEqual(controls, ["pause", "resume"]);

  // The calendar events end: the bar is full before the run reports its end.
  await page.evaluate(() => window.__finishDemo());
  await page.waitForFunction(() => document.querySelector("#counters").textContent.startsWith("6 of 6 items"));
  assert.equal(await page.getAttribute("#overall", "aria-valuenow"), "100");
  assert.match(await page.textContent('#user-rows tr[data-user="alex.wilber@contoso.com"]'), /3 \/ 3 items/);
  assert.equal(await page.isVisible("#screen-migrate"), true);

  await page.evaluate(() => window.__endRun());
  await page.waitForSelector("#screen-report:not([hidden])");
  assert.equal(await page.isVisible("#screen-migrate"), false, "one screen at a time");
  assert.match(await page.textContent("#summary"), /Migrated 2 mailboxes: 3 messages/);
  assert.match(await page.textContent("#summary"), /1 failed/);
  // The report lists each failure with its reason and says where the report and log are.
  await page.waitForFunction(() => document.querySelector("#report-places").textContent !== "");
  assert.match(await page.textContent("#report-failures"), /adele.vance@contoso.com Inbox AAMk1: Graph answered HTTP 404/);
  assert.match(await page.textContent("#report-places"), /demo-output\/.m365-migrator\/report\/report.html.*The log is in \/home\/admin/);
  assert.equal(await page.isVisible("#accounts"), false, "the demo creates no accounts");
  for (const id of ["#open-report", "#open-logs", "#run-again"]) assert.equal(await page.isEnabled(id), true, id);
  await screenshot(page, "report", { docs: true });

  // The buttons name a file of the last run; the backend resolves its path.
  await page.click("#open-report");
  await page.click("#open-logs");
  await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "open_run_file").length === 2);
  const opens = (await page.evaluate(() => window.__calls)).filter((c) => c.cmd === "open_run_file").map((c) => c.args);
  assert.deepEqual(opens, [{ file: "report" }, { file: "logFolder" }]);
  assert.equal(await page.textContent("#report-status"), "");

  // An incremental pass runs the same demo again.
  await page.click("#run-again");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  const demos = (await page.evaluate(() => window.__calls)).filter((c) => c.cmd === "run_demo").map((c) => c.args.outDir);
  assert.deepEqual(demos, ["", ""]);
  assert.deepEqual(errors, []);
});

test("dark mode follows the system", async () => {
  const { page } = await openApp("dark");
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, "rgb(21, 24, 30)");
  await screenshot(page, "source-dark", { docs: true });
});

test("a stored secret is recognised on return; without a keychain it can be kept for the session", async () => {
  const { page } = await openApp();
  await page.evaluate(() => window.__secrets.set("graphclientsecret:contoso.onmicrosoft.com/00000000-0000-0000-0000-000000000001", { value: "x", where: "stored" }));
  await page.fill("#tenant-id", "contoso.onmicrosoft.com");
  await page.fill("#client-id", "00000000-0000-0000-0000-000000000001");
  await page.locator("#client-id").blur();
  await page.waitForSelector("#client-secret-stored:not([hidden])");
  assert.match(await page.textContent("#client-secret-stored"), /Stored in the keychain/);
  assert.match(await page.textContent("#client-secret-stored"), /Replace/);
  await page.click("#check-source");
  assert.equal(await page.textContent("#client-secret-error"), "", "a stored secret needs no typing");
  await screenshot(page, "source-secret-stored", { docs: true });

  const other = await openApp("light", { keychain: false });
  const p = other.page;
  await p.fill("#tenant-id", "contoso.onmicrosoft.com");
  await p.fill("#client-id", "00000000-0000-0000-0000-000000000001");
  await p.locator("#client-id").blur();
  // Said as soon as the app knows, before anything is typed.
  await p.waitForSelector("#client-secret-session:not([hidden])");
  assert.match(await p.textContent("#client-secret-session"), /session only/);
  await p.fill("#client-secret", "Qx8Q~realValue.123");
  await p.click("#test-connection");
  await p.waitForFunction(() => document.querySelector("#client-secret-session").textContent.includes("No keychain is available"));
  assert.match(await p.textContent("#client-secret-session"), /No keychain is available/);
  assert.equal((await p.evaluate(() => window.__calls)).some((c) => c.cmd === "test_connection"), false);
  await screenshot(p, "source-no-keychain", { docs: true });
  await p.click("#client-secret-session-only");
  await p.waitForSelector("#client-secret-stored:not([hidden])");
  assert.match(await p.textContent("#client-secret-stored"), /Kept for this session only/);
  assert.equal(await p.isVisible("#client-secret-session"), false);
});

/** Fills the Source screen and goes on to the Destination screen. */
async function toDestination(page) {
  await page.fill("#tenant-id", "contoso.onmicrosoft.com");
  await page.fill("#client-id", "00000000-0000-0000-0000-000000000001");
  await page.fill("#client-secret", "Qx8Q~realValue.123");
  await page.click("#source-next");
  await page.waitForSelector("#screen-destination:not([hidden])");
}

test("Source's Next stores the secret and opens the Destination step", async () => {
  const { page } = await openApp();
  await page.click("#source-next");
  assert.equal(await page.isVisible("#screen-destination"), false, "not with empty fields");
  assert.match(await page.textContent("#client-secret-error"), /client secret/);
  await toDestination(page);
  assert.equal(await page.locator('.steps li[aria-current="step"]').textContent(), "2 Destination");
  const calls = await page.evaluate(() => window.__calls);
  const store = calls.find((c) => c.cmd === "store_secret");
  assert.deepEqual(store.args, { kind: "graphClientSecret", account: "contoso.onmicrosoft.com/00000000-0000-0000-0000-000000000001", value: "<secret>", sessionOnly: false });
  // Back to Source through the steps: the secret shows as stored.
  await page.click('.steps li[data-step="source"]');
  await page.waitForSelector("#screen-source:not([hidden])");
  assert.match(await page.textContent("#client-secret-stored"), /Stored in the keychain/);
});

test("the Destination screen validates IceWarp, stores its password and shows the server's slow settings", async () => {
  const { page, errors } = await openApp();
  await toDestination(page);
  assert.equal(await page.isChecked('input[name="dest-kind"][value="iceWarp"]'), true);
  await page.fill("#dw-host", "https://mail.example.com");
  await page.fill("#dw-credentials-report", "new-accounts.csv");
  await page.click("#dest-next");
  assert.match(await page.textContent("#dw-host-error"), /no https:\/\//);
  assert.match(await page.textContent("#dw-admin-email-error"), /email address/);
  assert.match(await page.textContent("#dw-admin-password-error"), /keychain/);
  assert.match(await page.textContent("#dw-credentials-report-error"), /full path/);
  assert.equal(await page.getAttribute("#dw-host", "aria-invalid"), "true");
  await screenshot(page, "destination-errors", { docs: true });

  await page.fill("#dw-host", "mail.example.com");
  await page.fill("#dw-admin-email", "admin@example.com");
  await page.fill("#dw-admin-password", "adm1n-pa55");
  await page.fill("#dw-ca-file", "/etc/ssl/private-ca.pem");
  await page.fill("#dw-credentials-report", "/root/icewarp-new-accounts.csv");
  await page.click("#test-destination");
  await page.waitForSelector("#destination-results:not([hidden])");
  assert.match(await page.textContent("#destination-status"), /Some server settings would slow the migration/);
  // One row per endpoint, each with its verdict, name and advice.
  const rows = await page.$$eval("#destination-results li", (lis) => lis.map((li) => [li.dataset.verdict, li.className, li.textContent]));
  assert.equal(rows.length, 3, JSON.stringify(rows));
  assert.deepEqual(rows.map(([verdict]) => verdict), ["warning", "ok", "ok"]);
  assert.deepEqual(rows.map(([, cls]) => cls), ["advice", "ok", "ok"]);
  assert.match(rows[0][2], /^! IceWarp admin API: .*120 messages per minute/);
  assert.match(rows[1][2], /^✓ IMAP \(mail\): logged in to mail.example.com:993/);
  assert.match(rows[2][2], /^✓ CalDAV\/CardDAV .*: .*\/webdav\//);
  assert.match(await page.textContent("#dw-admin-password-stored"), /Stored in the keychain/);
  const calls = await page.evaluate(() => window.__calls);
  const store = calls.filter((c) => c.cmd === "store_secret").at(-1);
  assert.deepEqual(store.args, { kind: "destAdminPassword", account: "mail.example.com/admin@example.com", value: "<secret>", sessionOnly: false });
  const test = calls.find((c) => c.cmd === "test_destination");
  assert.deepEqual(test.args.destination, {
    kind: "iceWarp", host: "mail.example.com", adminEmail: "admin@example.com",
    caFile: "/etc/ssl/private-ca.pem", credentialsReport: "/root/icewarp-new-accounts.csv",
  });
  assert.equal(JSON.stringify(calls.filter((c) => c.cmd !== "store_secret")).includes("adm1n"), false, "the password only goes to store_secret");
  await screenshot(page, "destination-icewarp", { docs: true });
  assert.deepEqual(errors, []);
});

test("the Destination screen validates an IMAP server and a folder", async () => {
  const { page } = await openApp();
  await toDestination(page);
  await page.check('input[name="dest-kind"][value="imap"]');
  assert.equal(await page.isVisible("#dw-server-url"), false, "only the chosen kind's fields");
  await page.fill("#di-host", "imap://mail.example.com");
  await page.fill("#di-port", "70000");
  await page.click("#dest-next");
  assert.match(await page.textContent("#di-host-error"), /no imap:\/\//);
  assert.match(await page.textContent("#di-port-error"), /1 to 65535/);
  assert.match(await page.textContent("#di-master-user-error"), /master user/);
  await page.check('input[name="di-login"][value="csv"]');
  assert.equal(await page.isVisible("#di-master-user"), false);
  await page.fill("#di-host", "imap.example.com");
  await page.fill("#di-port", "");
  await page.fill("#di-accounts-csv", "accounts.csv");
  await page.fill("#di-dav-url", "dav.example.com");
  await page.click("#dest-next");
  assert.match(await page.textContent("#di-accounts-csv-error"), /full path/);
  assert.match(await page.textContent("#di-dav-url-error"), /CalDAV\/CardDAV server's address/);
  await page.fill("#di-dav-url", "");
  await page.check('input[name="di-login"][value="master"]');
  await page.fill("#di-master-user", "admin");
  await page.fill("#di-master-password", "master-pa55");
  await page.selectOption("#di-security", "starttls");
  await page.selectOption("#di-master-style", "dovecot");
  await page.click("#test-destination");
  await page.waitForSelector("#destination-results:not([hidden])");
  const imapRows = await page.$$eval("#destination-results li", (lis) => lis.map((li) => [li.dataset.verdict, li.className, li.textContent]));
  assert.equal(imapRows.length, 1, JSON.stringify(imapRows));
  assert.equal(imapRows[0][0], "blocking");
  assert.equal(imapRows[0][1], "problem");
  assert.match(imapRows[0][2], /^✗ IMAP \(mail\): the IMAP server at imap.example.com:993 refused the master user admin/);
  assert.match(await page.textContent("#destination-status"), /not ready/);
  const test = (await page.evaluate(() => window.__calls)).find((c) => c.cmd === "test_destination");
  assert.deepEqual(test.args.destination, { kind: "imap", host: "imap.example.com", security: "starttls", masterUser: "admin", masterStyle: "dovecot" });
  assert.equal(test.args.source.tenantId, "contoso.onmicrosoft.com");
  await screenshot(page, "destination-imap", { docs: true });

  await page.check('input[name="dest-kind"][value="folder"]');
  await page.fill("#df-path", "export");
  await page.click("#dest-next");
  assert.match(await page.textContent("#df-path-error"), /full path/);
  await page.fill("#df-path", "/srv/m365-export");
  await page.click("#test-destination");
  await page.waitForSelector("#destination-results:not([hidden])");
  assert.match(await page.textContent("#destination-results li[data-verdict=ok]"), /^✓ Destination folder: \/srv\/m365-export is writable/);
  await screenshot(page, "destination-folder", { docs: true });
});

/** Source, a folder destination, then the Plan screen with its users listed. */
async function toPlan(page) {
  await toDestination(page);
  await page.check('input[name="dest-kind"][value="folder"]');
  await page.fill("#df-path", "/srv/m365-export");
  await page.click("#dest-next");
  await page.waitForSelector("#screen-plan:not([hidden])");
  await page.waitForFunction(() => document.querySelectorAll("#plan-users tr").length === 3);
}

test("the Plan counts each mailbox; a selection and the workloads go into the run request", async () => {
  const { page } = await openApp();
  await toPlan(page);
  assert.match(
    await page.textContent("#plan-summary"),
    /3 mailboxes · 1560 messages · 52 events · 150 contacts · 8 tasks · estimated 2 min 5 s · domains: contoso.com, contoso.onmicrosoft.com/,
  );
  const adele = await page.locator('#plan-users tr[data-user="adele.vance@contoso.com"] td').allTextContents();
  // Folders, messages, events, contacts, tasks, left out, estimate, notes.
  assert.deepEqual(adele.slice(1), ["adele.vance@contoso.com", "24", "1250", "40", "120", "8", "0", "2 min 5 s", ""]);
  const first = (await page.evaluate(() => window.__calls)).find((c) => c.cmd === "plan_migration");
  assert.deepEqual(first.args.scope, { users: [], workloads: ["mail", "calendar", "contacts", "tasks"] });
  assert.match(await page.textContent('#plan-users tr[data-user="alex.wilber@contoso.com"]'), /sign-in blocked \(still migrated\)/);
  assert.match(await page.textContent('#plan-users tr[data-user="room-1@contoso.com"]'), /cannot be read: Graph answered HTTP 403/);
  assert.equal(await page.locator('input[name="workload"]:checked').count(), 4);
  await screenshot(page, "plan", { docs: true });

  await page.uncheck("#plan-all");
  await page.click("#start-migration");
  assert.match(await page.textContent("#start-status"), /at least one mailbox/);
  await page.check('#plan-users tr[data-user="alex.wilber@contoso.com"] input');
  for (const w of ["mail", "calendar", "contacts", "tasks"]) await page.uncheck(`input[name="workload"][value="${w}"]`);
  await page.click("#start-migration");
  assert.match(await page.textContent("#start-status"), /at least one workload/);
  await page.check('input[name="workload"][value="mail"]');
  await page.check('input[name="workload"][value="contacts"]');
  // The counts follow the workloads: calendars and tasks are no longer counted.
  await page.waitForFunction(() => /1560 messages · 0 events · 150 contacts · 0 tasks/.test(document.querySelector("#plan-summary").textContent));
  // The mailbox picked by hand is still picked after the recount.
  assert.equal(await page.isChecked('#plan-users tr[data-user="alex.wilber@contoso.com"] input'), true);
  assert.equal(await page.isChecked('#plan-users tr[data-user="adele.vance@contoso.com"] input'), false);

  // Date limits: the plan is counted again with them and shows what they leave out.
  await page.fill("#plan-mail-since", "2020-01-01");
  await page.dispatchEvent("#plan-mail-since", "change");
  await page.waitForFunction(() => /780 messages .* 780 left out by the date limits/.test(document.querySelector("#plan-summary").textContent));
  const alexRow = await page.locator('#plan-users tr[data-user="alex.wilber@contoso.com"] td').allTextContents();
  assert.deepEqual(alexRow.slice(2, 8), ["18", "155", "0", "30", "0", "155"]);
  await page.fill("#plan-mail-until", "2019-06-30");
  await page.dispatchEvent("#plan-mail-until", "change");
  assert.match(await page.textContent("#plan-status"), /end date must be after its start/);
  await page.fill("#plan-mail-until", "");
  await page.dispatchEvent("#plan-mail-until", "change");

  // A batch: only its mailboxes are counted.
  assert.equal(await page.isDisabled("#plan-batch-size"), true);
  await page.check("#plan-use-batch");
  await page.fill("#plan-batch-size", "1");
  await page.fill("#plan-batch", "2");
  await page.dispatchEvent("#plan-batch", "change");
  await page.waitForFunction(() => document.querySelector("#plan-summary").textContent.startsWith("1 mailbox ·"));
  assert.equal(await page.locator("#plan-users tr").count(), 1);
  // Alex was picked by hand before the batch of 1 that held only Adele: still picked.
  assert.equal(await page.isChecked('#plan-users tr[data-user="alex.wilber@contoso.com"] input'), true);
  const planned = (await page.evaluate(() => window.__calls)).filter((c) => c.cmd === "plan_migration").pop();
  assert.deepEqual(planned.args.scope, { users: [], workloads: ["mail", "contacts"], batchSize: 1, batch: 2, mailSince: "2020-01-01" });
  await screenshot(page, "plan-limits");

  await page.click("#start-migration");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  const start = (await page.evaluate(() => window.__calls)).find((c) => c.cmd === "start_migration");
  assert.deepEqual(start.args.request, {
    source: { tenantId: "contoso.onmicrosoft.com", clientId: "00000000-0000-0000-0000-000000000001", cloud: "global" },
    destination: { kind: "folder", path: "/srv/m365-export" },
    users: ["alex.wilber@contoso.com"],
    workloads: ["mail", "contacts"],
    batchSize: 1,
    batch: 2,
    mailSince: "2020-01-01",
  });
  assert.equal(JSON.stringify(start.args).includes("Qx8Q"), false, "no secret in the run request");
});

test("the Migrate screen shows throttling as a status, failed items, rate and ETA; the report follows", async () => {
  const { page, errors } = await openApp("light", { throttleMs: 60000 });
  await toPlan(page);
  await page.click("#start-migration");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#counters").textContent.startsWith("4 of 6 items"));
  assert.match(await page.textContent("#counters"), /items\/s · ETA \d+ s · 1 failed/);
  assert.match(await page.textContent("#throttle-status"), /Throttled by Microsoft 365: 1 mailbox waiting \(\d+\.\d s\)\. This is normal/);
  assert.equal(await page.isVisible("#throttle-status"), true);
  assert.match(await page.textContent('#user-rows tr[data-user="adele.vance@contoso.com"]'), /waiting 60.0 s \(Microsoft throttling\)/);
  assert.match(await page.textContent("#failures"), /adele.vance@contoso.com Inbox AAMk1: Graph answered HTTP 404/);
  assert.equal(await page.locator("#failures li").count(), 1);
  const color = await page.evaluate(() => getComputedStyle(document.querySelector("#throttle-status")).color);
  const errorColor = await page.evaluate(() => getComputedStyle(document.querySelector("#failures")).color);
  assert.notEqual(color, errorColor, "throttling is not shown as an error");
  // The steps stay put while a run is going on.
  await page.click('.steps li[data-step="source"]');
  assert.equal(await page.isVisible("#screen-migrate"), true);
  await screenshot(page, "migrate-throttled", { docs: true });

  await page.click("#stop");
  await page.waitForFunction(() => document.querySelector("#run-status").textContent.startsWith("Stopping"));
  await page.evaluate(() => window.__finishDemo());
  await page.waitForSelector("#screen-report:not([hidden])");
  assert.equal(await page.isVisible("#throttle-status"), false);
  assert.match(await page.textContent("#summary"), /Migrated 2 mailboxes: 3 messages \(224.6 KiB\), 4 events, 2 contacts and 1 tasks/);
  await page.waitForFunction(() => document.querySelector("#report-places").textContent !== "");
  assert.match(await page.textContent("#report-places"), /The report is \/srv\/m365-export\/.m365-migrator\/report\/report.html\. The log is in \/home\/admin\/.local\/share\/com.m365migrator.app\/logs/);
  // "Run an incremental pass" repeats the same request (the journal makes it incremental).
  const first = (await page.evaluate(() => window.__calls)).filter((c) => c.cmd === "start_migration");
  await page.click("#run-again");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  const runs = (await page.evaluate(() => window.__calls)).filter((c) => c.cmd === "start_migration");
  assert.equal(runs.length, 2);
  assert.deepEqual(runs[1].args.request, first[0].args.request);
  await page.evaluate(() => window.__finishDemo());
  await page.waitForSelector("#screen-report:not([hidden])");
  assert.match(await page.textContent('#user-rows tr[data-user="alex.wilber@contoso.com"]'), /3 \/ 3 items/);
  assert.deepEqual(errors, []);
  // Every screen so far ran under the app's Content-Security-Policy without a violation.
  assert.deepEqual(await page.evaluate(() => window.__cspViolations), []);
});

test("closing the window during a run asks first; Stop and quit stops the run", async () => {
  const { page } = await openApp();
  // Before a run, closing needs no answer.
  await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "plugin:event|listen"));
  await page.evaluate(() => window.__emit("tauri://close-requested"));
  await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "plugin:window|destroy"));
  assert.equal(await page.isVisible("#close-dialog"), false);
  await page.evaluate(() => (window.__calls.length = 0));

  await page.click("#try-demo");
  await page.waitForFunction(() => document.querySelector("#counters").textContent.startsWith("4 of 6"));
  await page.evaluate(() => window.__emit("tauri://close-requested"));
  await page.waitForSelector("#close-dialog[open]");
  await screenshot(page, "close-during-run", { docs: true });
  await page.click("#close-cancel");
  assert.equal(await page.isVisible("#close-dialog"), false);
  let cmds = (await page.evaluate(() => window.__calls)).map((c) => c.cmd);
  assert.equal(cmds.includes("plugin:window|destroy"), false, "Keep running keeps the window");
  assert.equal(cmds.includes("control_run"), false);

  await page.evaluate(() => window.__emit("tauri://close-requested"));
  await page.waitForSelector("#close-dialog[open]");
  assert.match(await page.textContent("#close-dialog"), /A migration is running.*Stop and quit/s);
  await page.click("#close-confirm");
  await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "plugin:window|destroy"));
  const calls = await page.evaluate(() => window.__calls);
  cmds = calls.map((c) => c.cmd);
  assert.ok(cmds.indexOf("control_run") < cmds.indexOf("plugin:window|destroy"), "the run is stopped before the window goes");
  assert.equal(calls.find((c) => c.cmd === "control_run").args.action, "stop");
});

test("when the run ends while the close question is open, the question says so", async () => {
  const { page } = await openApp();
  await page.click("#try-demo");
  await page.waitForFunction(() => document.querySelector("#counters").textContent.startsWith("4 of 6"));
  await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "plugin:event|listen"));
  await page.evaluate(() => window.__emit("tauri://close-requested"));
  await page.waitForSelector("#close-dialog[open]");
  await page.evaluate(() => window.__finishDemo());
  await page.waitForSelector("#screen-report:not([hidden])");
  assert.match(await page.textContent("#close-title"), /has ended/);
  await page.click("#close-cancel");
  assert.equal(await page.isVisible("#close-dialog"), false);
  const cmds = (await page.evaluate(() => window.__calls)).map((c) => c.cmd);
  assert.equal(cmds.includes("plugin:window|destroy"), false, "Stay keeps the window");
});

const ICEWARP_RUN = {
  kind: "migration",
  request: {
    source: { tenantId: "contoso.onmicrosoft.com", clientId: "00000000-0000-0000-0000-000000000001", cloud: "global" },
    destination: { kind: "iceWarp", host: "mail.example.com", adminEmail: "admin@example.com", credentialsReport: "/root/icewarp-new-accounts.csv" },
    users: [],
    workloads: [],
  },
};

test("reopening the app offers to resume a stopped run; its report names the created accounts", async () => {
  const lastRun = { request: ICEWARP_RUN, state: "stopped", startedAt: 1796000000, done: 1204, failed: 3, pending: 2 };
  const { page, errors } = await openApp("light", { lastRun });
  await page.waitForSelector("#last-run:not([hidden])");
  const text = await page.textContent("#last-run-text");
  assert.match(text, /The migration of contoso.onmicrosoft.com to mail.example.com was stopped/);
  assert.match(text, /1204 items written, 3 failed so far\)\. Resume continues where it stopped without copying anything twice/);
  assert.equal(await page.textContent("#last-run-resume"), "Resume");
  await screenshot(page, "resume", { docs: true });

  await page.click("#last-run-report");
  await page.waitForSelector("#screen-report:not([hidden])");
  await page.waitForSelector("#accounts:not([hidden])");
  assert.match(await page.textContent("#summary"), /did not finish: 1204 items written, 3 failed so far/);
  assert.match(await page.textContent("#accounts"), /2 accounts were created at the destination\. Their passwords are in \/root\/icewarp-new-accounts.csv/);
  assert.match(await page.textContent("#report-failures"), /AAMk1: Graph answered HTTP 404/);

  await page.click("#back-to-start");
  await page.click("#last-run-resume");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  const start = (await page.evaluate(() => window.__calls)).find((c) => c.cmd === "start_migration");
  assert.deepEqual(start.args.request, ICEWARP_RUN.request, "the same request resumes");
  await page.waitForFunction(() => document.querySelector("#counters").textContent.startsWith("4 of 6"));
  assert.equal(await page.isVisible("#last-run"), false);
  assert.deepEqual(errors, []);
});

test("after a finished run, reopening the app offers an incremental pass", async () => {
  const lastRun = { request: { kind: "demo", outDir: "" }, state: "finished", startedAt: 1796000000, done: 346, failed: 0, pending: 0 };
  const { page } = await openApp("light", { lastRun });
  await page.waitForSelector("#last-run:not([hidden])");
  assert.match(await page.textContent("#last-run-text"), /The demo migration finished .*346 items written, 0 failed\)\. An incremental pass copies only what changed/);
  assert.equal(await page.textContent("#last-run-resume"), "Run an incremental pass");
  await page.click("#last-run-resume");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  const demo = (await page.evaluate(() => window.__calls)).find((c) => c.cmd === "run_demo");
  assert.deepEqual(demo.args.outDir, "");
});

test("reopening the window during a run shows the run in progress and its report", async () => {
  const { page, errors } = await openApp("light", { running: true });
  await page.waitForSelector("#screen-migrate:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#counters").textContent.startsWith("4 of 6 items"));
  const cmds = (await page.evaluate(() => window.__calls)).map((c) => c.cmd);
  assert.ok(cmds.includes("watch_run"), "the page takes over the run's progress stream");
  assert.equal(cmds.includes("run_demo") || cmds.includes("start_migration"), false, "nothing new is started");
  // Closing still asks while it runs.
  await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "plugin:event|listen"));
  await page.evaluate(() => window.__emit("tauri://close-requested"));
  await page.waitForSelector("#close-dialog[open]");
  await page.click("#close-cancel");
  await page.click("#pause");
  await page.waitForSelector("#resume:not([hidden])");
  await page.evaluate(() => window.__finishDemo());
  await page.waitForSelector("#screen-report:not([hidden])");
  assert.match(await page.textContent("#summary"), /Migrated 2 mailboxes/);
  assert.deepEqual(errors, []);
});

test("thousands of failures do not flood the window: the first 200 are listed, the rest counted", async () => {
  const { page, errors } = await openApp("light", { failures: 250 });
  await page.click("#try-demo");
  await page.waitForSelector("#failures li.more");
  assert.equal(await page.locator("#failures li:not(.more)").count(), 200);
  assert.equal(await page.textContent("#failures li.more"), "… and 50 more, all listed in the report.");
  assert.match(await page.textContent("#counters"), /250 failed/);
  assert.deepEqual(errors, []);
});

test("a run stopped by an error says why and offers a way back", async () => {
  const { page, errors } = await openApp("light", { fatal: true });
  await page.click("#try-demo");
  await page.waitForSelector("#run-back:not([hidden])");
  assert.match(await page.textContent("#run-status"), /The migration stopped: cannot sign in to Microsoft 365: the client secret has expired/);
  for (const id of ["#pause", "#resume", "#stop"]) assert.equal(await page.isVisible(id), false, id);
  await page.click("#run-back");
  await page.waitForSelector("#screen-source:not([hidden])");
  assert.deepEqual(errors, []);
});
