// The app in a real Chromium with the Tauri backend scripted (harness.mjs): projects, source,
// destination with the accounts CSV, rules seen in the Plan, 10,000 mailboxes, a run from the
// snapshot (also after a reload), retry, passes and the cut-over checklist.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { serveDist, launch, mockBackend, screenshot, coreFieldErrors } from "./harness.mjs";

let server;
let browser;
let fieldErrors;

before(async () => {
  server = await serveDist();
  browser = await launch();
  fieldErrors = await coreFieldErrors();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function openApp(backend = {}, { colorScheme = "light", width = 1100 } = {}) {
  const page = await browser.newPage({ viewport: { width, height: 800 }, colorScheme, acceptDownloads: true });
  page.setDefaultTimeout(8000);
  await page.addInitScript(mockBackend, { fieldErrors, ...backend });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(server.url);
  await page.waitForSelector("#screen-projects:not([hidden])");
  return { page, errors };
}

const calls = (page, cmd) => page.evaluate((c) => window.__calls.filter((x) => x.cmd === c), cmd);
const focused = (page) => page.evaluate(() => document.activeElement?.id);

async function createProject(page, name = "Contoso to IceWarp") {
  await page.fill("#new-project-name", name);
  await page.click("#create-project");
  await page.waitForSelector("#screen-source:not([hidden])");
}

async function fillSource(page) {
  await page.fill("#tenant-id", "contoso.onmicrosoft.com");
  await page.fill("#client-id", "00000000-0000-0000-0000-000000000001");
  await page.fill("#client-secret", "Qx8Q~realValue.123");
}

/** A new project with a source and an IceWarp destination (credentials report picked); on the Plan. */
async function toPlan(page, { csv = false } = {}) {
  await createProject(page);
  await fillSource(page);
  await page.click("#source-next");
  await page.waitForSelector("#screen-destination:not([hidden])");
  await page.fill("#dw-host", "mail.example.com");
  await page.fill("#dw-admin-email", "admin@example.com");
  await page.fill("#dw-admin-password", "adm1n-pa55");
  await page.click('button.pick[data-purpose="credentialsReport"]');
  await page.waitForFunction(() => !document.querySelector("#dw-credentials-report").classList.contains("unset"));
  if (csv) {
    await page.click('#screen-destination [data-kind="iceWarp"] button.pick[data-purpose="accountsCsv"]');
    await page.waitForFunction(() => /matched/.test(document.querySelector("#accounts-csv-preview").textContent));
  }
  await page.click("#dest-next");
  await page.waitForSelector("#screen-plan:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#plan-summary").textContent !== "");
}

/** The rows of the plan table in the DOM (not the spacers). */
const domRows = (page, table = "#plan-table") => page.locator(`${table} tbody tr:not(.spacer)`).count();
const cell = (page, key, col, table = "#plan-table") => page.textContent(`${table} tr[data-key="${key}"] td[data-col="${col}"]`);

test("the Projects screen: version shown, the demo apart, create, open, delete only after asking", async () => {
  const { page, errors } = await openApp();
  await page.waitForFunction(() => document.querySelector("#app-version").textContent !== "");
  assert.equal(await page.textContent("#app-version"), "version 0.2.0");
  assert.equal(await focused(page), "projects-title", "focus on the screen's heading");
  assert.match(await page.textContent("#project-list"), /No project yet/);
  assert.match(await page.textContent("#demo-list"), /Demo/);
  await page.click("#create-project");
  assert.match(await page.textContent("#new-project-name-error"), /Name the project/);

  await createProject(page);
  assert.equal(await focused(page), "source-title");
  assert.equal(await page.locator('.steps li[aria-current="step"]').textContent(), "1 Source");
  await page.waitForFunction(() => /Project Contoso to IceWarp is open/.test(document.querySelector("#announcer").textContent));
  // The steps are buttons: Tab and Enter reach them.
  await page.focus('.steps li[data-step="projects"] button');
  await page.keyboard.press("Enter");
  await page.waitForSelector("#screen-projects:not([hidden])");
  assert.equal(await page.isDisabled('.steps li[data-step="migrate"] button'), true, "a step not reached yet");
  // One live region for announcements: the status lines speak through it.
  assert.equal(await page.locator("[aria-live], [role=status], [role=alert], output").count(), 1);
  await page.waitForSelector('#project-list li[data-project="p1"]');
  assert.match(await page.textContent('#project-list li[data-project="p1"]'), /Contoso to IceWarp.*no pass yet/);
  assert.equal(await page.locator("#demo-list button", { hasText: "Delete" }).count(), 0, "the demo cannot be deleted");
  await screenshot(page, "projects", { docs: true });

  // Delete asks first; Cancel keeps it.
  await page.click('#project-list li[data-project="p1"] button:has-text("Delete")');
  await page.waitForSelector("#confirm-dialog[open]");
  assert.match(await page.textContent("#confirm-title"), /Delete “Contoso to IceWarp”\?/);
  await page.click("#confirm-no");
  assert.equal((await calls(page, "delete_project")).length, 0);
  await page.click('#project-list li[data-project="p1"] button:has-text("Delete")');
  await page.click("#confirm-yes");
  await page.waitForFunction(() => !document.querySelector('#project-list li[data-project="p1"]'));
  assert.deepEqual((await calls(page, "delete_project")).map((c) => c.args), [{ id: "p1" }]);

  // Open brings the saved settings back.
  await createProject(page, "Fabrikam");
  await fillSource(page);
  await page.click("#source-next");
  await page.waitForSelector("#screen-destination:not([hidden])");
  await page.reload();
  await page.waitForSelector('#project-list li[data-project="p2"]');
  await page.click('#project-list li[data-project="p2"] button:has-text("Open")');
  await page.waitForSelector("#screen-source:not([hidden])");
  assert.equal(await page.inputValue("#tenant-id"), "contoso.onmicrosoft.com");
  // Its Plan is counted when the step is opened.
  await page.click('.steps li[data-step="plan"] button');
  await page.waitForSelector('#plan-table tr[data-key="adele.vance@contoso.com"]');
  assert.deepEqual(errors, []);
});

test("the Source screen checks its fields, stores the secret once and names the OS's secret store", async () => {
  for (const [os, words] of [["linux", "Stored in the Secret Service keyring"], ["macos", "Stored in the Keychain"], ["windows", "Stored in Windows Credential Manager"]]) {
    const { page } = await openApp({ os });
    await createProject(page);
    await page.fill("#tenant-id", "contoso");
    await page.fill("#client-id", "my-app");
    await page.fill("#client-secret", "6a3e4f0c-1b2d-4c5e-8f90-123456789abc");
    await page.click("#check-source");
    assert.match(await page.textContent("#tenant-id-error"), /GUID or a domain such as contoso.onmicrosoft.com, not 'contoso'/);
    assert.match(await page.textContent("#client-id-error"), /not 'my-app'/);
  await page.waitForFunction(() => document.querySelector("#announcer").textContent === "Please correct the highlighted fields.");
    assert.match(await page.textContent("#client-secret-error"), /secret's ID/);
    assert.equal((await calls(page, "save_project")).length, 0, "nothing saved while the fields are wrong");
    if (os === "linux") await screenshot(page, "source-errors", { docs: true });
    await fillSource(page);
    await page.click("#test-connection");
    await page.waitForSelector("#permission-results:not([hidden])");
    assert.match(await page.textContent('[data-permission="Mail.Read"]'), /missing.*\(required\)/);
    assert.equal(await page.textContent("#client-secret-where"), words);
    const saved = (await calls(page, "save_project")).at(-1).args.project;
    assert.deepEqual(saved.source, { tenantId: "contoso.onmicrosoft.com", clientId: "00000000-0000-0000-0000-000000000001", cloud: "global" });
    const all = JSON.stringify(await page.evaluate(() => window.__calls.filter((c) => c.cmd !== "store_secret")));
    assert.equal(all.includes("Qx8Q"), false, "the secret only goes to store_secret");
    assert.equal(await page.evaluate(() => JSON.stringify(sessionStorage) + JSON.stringify(localStorage)).then((s) => s.includes("Qx8Q")), false);
    if (os === "linux") await screenshot(page, "test-connection", { docs: true });
    if (os === "macos") await screenshot(page, "source-secret-stored", { docs: true });
    // Forget removes it; the field asks for it again.
    await page.click("#client-secret-forget");
    await page.waitForSelector("#client-secret:visible");
    assert.equal((await calls(page, "forget_secret")).length, 1);
  }
});

test("regression: the scripted save_project refused client IDs by an old rule of its own; it answers as the backend does", async () => {
  const { page } = await openApp();
  await createProject(page);
  const open = await page.evaluate(async () =>
    (await window.__TAURI_INTERNALS__.invoke("list_projects", {})).find((p) => p.name === "Contoso to IceWarp").id);
  const save = (change) =>
    page.evaluate(async ([open, change]) => {
      const ipc = window.__TAURI_INTERNALS__;
      try {
        const project = await ipc.invoke("open_project", { id: open });
        return await ipc.invoke("save_project", { project: { ...project, ...change } });
      } catch (e) {
        return { refused: e };
      }
    }, [open, change]);
  // The core's draft check (MigrationSpec::field_errors), keyed by the page's field names; the
  // first field's message is the error's.
  for (const part of ["source", "destination"]) {
    const core = fieldErrors.find((c) => c.cmd === "save_project" && c.args[part]);
    assert.ok(core, `core-field-errors.json records save_project's answer for a ${part}`);
    const answer = await save({ [part]: core.args[part] });
    assert.deepEqual(answer, { refused: { code: "invalid", message: core.errors[0].message, fields: core.errors } });
  }
  // A client ID the core takes is saved.
  const good = { tenantId: "contoso.onmicrosoft.com", clientId: "6a3e4f0c-1b2d-4c5e-8f90-123456789abc", cloud: "global" };
  assert.deepEqual((await save({ source: good })).source, good);
  // Only the open project can be saved.
  const other = await save({ id: "demo" });
  assert.deepEqual(other, { refused: { code: "invalid", message: "Only the open project can be saved: open it first." } });
});

test("the registration guide lists each permission; dark mode follows the system", async () => {
  const { page } = await openApp({}, { colorScheme: "dark" });
  assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), "rgb(21, 24, 30)");
  await screenshot(page, "projects-dark", { docs: true });
  await createProject(page);
  await page.click("#guide summary");
  assert.equal(await page.locator("#permissions button.copy").count(), 7);
  await screenshot(page, "source-dark");
});

test("without a secret store the secret can be kept for the session", async () => {
  const { page } = await openApp({ keychain: false });
  await createProject(page);
  await page.fill("#tenant-id", "contoso.onmicrosoft.com");
  await page.fill("#client-id", "00000000-0000-0000-0000-000000000001");
  await page.locator("#client-id").blur();
  await page.waitForSelector("#client-secret-session:not([hidden])");
  assert.match(await page.textContent("#client-secret-session"), /The Secret Service keyring is not available/);
  await page.fill("#client-secret", "Qx8Q~realValue.123");
  await screenshot(page, "source-no-keychain", { docs: true });
  await page.click("#client-secret-session-only");
  await page.waitForSelector("#client-secret-stored:not([hidden])");
  assert.match(await page.textContent("#client-secret-stored"), /Kept for this session only/);
});

test("IceWarp destination: paths only from native pickers, the accounts CSV preview, rules seen in the Plan", async () => {
  const { page, errors } = await openApp();
  await createProject(page);
  await fillSource(page);
  await page.click("#source-next");
  await page.waitForSelector("#screen-destination:not([hidden])");
  assert.equal(await focused(page), "destination-title");
  // No text field for any path.
  assert.equal(await page.locator("#destination-form input:not([type=radio]):not([type=checkbox]):not([type=password])").evaluateAll((xs) => xs.map((x) => x.id).filter((id) => /csv|file|report|path/.test(id)).length), 0);
  await page.click("#dest-next");
  assert.match(await page.textContent("#dw-credentials-report-error"), /choose the file new accounts' passwords are written to/);

  await page.fill("#dw-host", "mail.example.com");
  await page.fill("#dw-admin-email", "admin@example.com");
  await page.fill("#dw-admin-password", "adm1n-pa55");
  await page.click('button.pick[data-purpose="credentialsReport"]');
  await page.click('#screen-destination [data-kind="iceWarp"] button.pick[data-purpose="accountsCsv"]');
  await page.waitForFunction(() => /matched/.test(document.querySelector("#accounts-csv-preview").textContent));
  assert.equal(
    await page.textContent("#accounts-csv-preview"),
    "412 of 420 tenant mailboxes matched; 3 rows with errors: line 7: no password; line 19: not an email address: adele; line 40: duplicate address. Not in the tenant: old.user@contoso.com, left@contoso.com.",
  );
  assert.equal(await page.textContent("#dw-accounts-csv"), "/home/admin/Documents/accountsCsv");
  const picks = (await calls(page, "pick_path")).map((c) => c.args.purpose);
  assert.deepEqual(picks, ["credentialsReport", "accountsCsv"]);

  // Every rule is shown and editable; change two.
  for (const id of ["#rule-disabled", "#rule-shared", "#rule-resource", "#rule-resources-as", "#rule-onmicrosoft", "#rule-groups", "#rule-domain-map"]) {
    assert.equal(await page.isVisible(id), true, id);
  }
  assert.equal(await page.inputValue("#rule-disabled"), "skip");
  await page.selectOption("#rule-disabled", "create");
  await page.selectOption("#rule-resource", "skip");
  await page.fill("#rule-domain-map", "contoso.onmicrosoft.com = contoso.com\nnot a mapping");
  await page.click("#dest-next");
  assert.match(await page.textContent("#rule-domain-map-error"), /Line 2/);
  await page.fill("#rule-domain-map", "contoso.onmicrosoft.com = contoso.com");
  await page.click("#test-destination");
  await page.waitForSelector("#destination-results:not([hidden])");
  await screenshot(page, "destination-icewarp", { docs: true });
  await page.click("#dest-next");
  await page.waitForSelector("#screen-plan:not([hidden])");
  const saved = (await calls(page, "save_project")).at(-1).args.project;
  assert.deepEqual(saved.rules, { disabledUsers: "create", sharedMailboxes: "create", resourceMailboxes: "skip", resourcesAs: "resource", skipOnmicrosoft: true, groups: "skip", domainMap: { "contoso.onmicrosoft.com": "contoso.com" } });
  assert.equal(JSON.stringify(await page.evaluate(() => window.__calls.filter((c) => c.cmd !== "store_secret"))).includes("adm1n"), false);

  // The rules' effect, per mailbox.
  await page.waitForSelector('#plan-table tr[data-key="room-1@contoso.com"]');
  assert.equal(await cell(page, "adele.vance@contoso.com", "action"), "merge into existing");
  assert.equal(await cell(page, "alex.wilber@contoso.com", "action"), "create");
  assert.equal(await cell(page, "room-1@contoso.com", "action"), "skip: a room mailbox (configured rule: skip)");
  assert.equal(await cell(page, "room-1@contoso.com", "kind"), "room");
  assert.match(await page.textContent("#plan-summary"), /3 mailboxes · 1,560 messages .* 1 skipped by the rules · estimated 2 h 0 min · /);
  await screenshot(page, "plan", { docs: true });

  // Back, blocked sign-ins skipped again: the Plan says so.
  await page.click('.steps li[data-step="destination"]');
  await page.selectOption("#rule-disabled", "skip");
  await page.click("#dest-next");
  await page.waitForFunction(() => /skip: a disabled user/.test(document.querySelector('#plan-table tr[data-key="alex.wilber@contoso.com"] td[data-col="action"]')?.textContent ?? ""));
  assert.deepEqual((await calls(page, "plan_migration")).map((c) => c.args), [{ refresh: false }, { refresh: false }]);
  await page.click("#plan-refresh");
  await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "plan_migration").length === 3);
  assert.deepEqual((await calls(page, "plan_migration")).at(-1).args, { refresh: true });

  // A server on this machine: the Plan says its CPU is counted.
  await page.click('.steps li[data-step="destination"]');
  await page.fill("#dw-host", "localhost");
  await page.dispatchEvent("#dw-host", "change");
  await page.fill("#dw-admin-password", "adm1n-pa55");
  await page.click("#dest-next");
  await page.waitForFunction(() => /runs on this machine/.test(document.querySelector("#plan-summary").textContent));
  assert.match(
    await page.textContent("#plan-summary"),
    /estimated 2 h 0 min \(the destination runs on this machine: its CPU is counted\) · /,
  );
  assert.deepEqual(errors, []);
});

test("10,000 mailboxes: search, sort, filter and export with few rows in the DOM; a batch joins the selection", async () => {
  const { page, errors } = await openApp({ mailboxes: 10000, hostileName: true });
  await toPlan(page);
  await page.waitForFunction(() => /10,007 mailboxes/.test(document.querySelector("#plan-shown").textContent));
  assert.ok((await domRows(page)) < 60, `rows in the DOM: ${await domRows(page)}`);
  // The scroll height is the whole table's: 10,007 rows of 34 px and the header.
  assert.ok(await page.evaluate(() => document.querySelector("#plan-table").scrollHeight > 10007 * 34));

  await page.fill("#plan-search", "user00042");
  await page.waitForFunction(() => document.querySelector("#plan-shown").textContent.startsWith("1 of 10,007"));
  assert.equal(await domRows(page), 1);
  await page.fill("#plan-search", "");
  await page.selectOption("#plan-filter", "guests");
  await page.waitForFunction(() => document.querySelector("#plan-shown").textContent.startsWith("200 of 10,007"));
  assert.ok((await domRows(page)) < 60);
  assert.equal(await page.locator('#plan-table td[data-col="kind"]', { hasText: "user" }).count(), 0);
  await page.selectOption("#plan-filter", "skipped");
  // The guests and Alex (sign-in blocked, skipped by default).
  await page.waitForFunction(() => document.querySelector("#plan-shown").textContent.startsWith("201 of 10,007"));
  await page.selectOption("#plan-filter", "all");

  // Sort by messages, most first; then scroll to the end: still few rows, the smallest last.
  await page.click('#plan-table th[data-col="items"] button');
  await page.click('#plan-table th[data-col="items"] button');
  assert.equal(await page.getAttribute('#plan-table th[data-col="items"]', "aria-sort"), "descending");
  const first = await page.textContent('#plan-table tbody tr:not(.spacer) td[data-col="items"]');
  assert.equal(first, "4999");
  await page.evaluate(() => (document.querySelector("#plan-table").scrollTop = 1e9));
  await page.waitForFunction(() => [...document.querySelectorAll('#plan-table tbody tr:not(.spacer) td[data-col="items"]')].at(-1)?.textContent === "0");
  assert.ok((await domRows(page)) < 60);
  await screenshot(page, "plan-10000");

  // Export: the shown rows, a formula neutralised.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#plan-export")]);
  const csv = await readFile(await download.path(), "utf8");
  const lines = csv.trimEnd().split("\r\n");
  assert.equal(lines.length, 10008);
  assert.equal(lines[0], "address,userPrincipalName,kind,action,folders,messages,events,contacts,tasks,estimatedSeconds,notes");
  const hostile = lines.find((l) => l.includes("HYPERLINK"));
  assert.ok(hostile.startsWith(`"'=HYPERLINK(""http://evil.example/"")@contoso.com"`), hostile);
  for (const start of ["'@SUM(1+1)@contoso.com,", "'+1-555@contoso.com,", "'-2+3@contoso.com,"]) {
    assert.equal(lines.filter((l) => l.startsWith(start)).length, 1, start);
  }
  // Numbers stay numbers (no apostrophe), text that merely contains = stays as it is.
  assert.match(lines.find((l) => l.startsWith("user00042@")), /^user00042@contoso.com,user00042@contoso.com,user,create,12,1554,/);
  assert.deepEqual(await page.evaluate(() => window.__cspViolations), []);

  // A batch adds 500 to the hand-picked one; Start runs that selection.
  await page.selectOption("#plan-filter", "all");
  await page.fill("#plan-search", "adele");
  await page.waitForFunction(() => document.querySelector("#plan-shown").textContent.startsWith("1 of"));
  await page.click("#plan-all");
  assert.equal(await page.isChecked("#plan-all"), false);
  await page.uncheck('#plan-table tr[data-key="adele.vance@contoso.com"] input');
  await page.fill("#plan-batch", "2");
  await page.fill("#plan-batch-size", "500");
  await page.click("#plan-add-batch");
  await page.waitForFunction(() => /picked/.test(document.querySelector("#plan-selected").textContent));
  const users = (await calls(page, "save_project")).at(-1).args.project.selection.users;
  assert.ok(users.length > 500 && !users.includes("adele.vance@contoso.com"), String(users.length));
  await page.check('#plan-table tr[data-key="adele.vance@contoso.com"] input');
  await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "save_project").at(-1).args.project.selection.users.includes("adele.vance@contoso.com"));
  await page.click("#start-full");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  assert.deepEqual((await calls(page, "start_pass")).map((c) => c.args), [{ kind: "full" }]);
  assert.deepEqual(errors, []);
});

test("a run shows the snapshot's totals, the same after a reload, then the pass in the history", async () => {
  // 202 generated + 3 named; 4 guests and Alex are skipped: 200 in the run.
  const { page, errors } = await openApp({ mailboxes: 202 });
  await toPlan(page);
  await page.click("#start-full");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  assert.equal(await focused(page), "migrate-title");
  await page.evaluate(() => window.__setRun({ done: 37, running: 8 }));
  await page.waitForFunction(() => document.querySelector("#run-mailboxes").textContent === "37 of 200 mailboxes done, 8 running, 155 queued");
  assert.equal(await page.textContent("#counters"), "4,100 of 20,000 items · 78.2 MiB · 12.5 items/s · about 2 h 0 min left");
  assert.equal(await page.getAttribute("#overall", "aria-valuenow"), String(Math.round((4100 / 20000) * 100)));
  assert.ok((await domRows(page, "#run-table")) < 60);
  await page.waitForSelector("#run-awake:not([hidden])");
  assert.equal(await page.textContent("#run-awake"), "This computer is kept awake while the pass runs.");
  await screenshot(page, "migrate", { docs: true });

  await page.reload();
  await page.waitForSelector("#screen-migrate:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#run-mailboxes").textContent === "37 of 200 mailboxes done, 8 running, 155 queued");
  assert.equal(await page.textContent("#counters"), "4,100 of 20,000 items · 78.2 MiB · 12.5 items/s · about 2 h 0 min left");
  // The run screen cannot be left while the pass runs.
  await page.click('.steps li[data-step="projects"]');
  assert.equal(await page.isVisible("#screen-migrate"), true);

  await page.evaluate(() => window.__finishRun());
  await page.waitForFunction(() => document.querySelector("#run-mailboxes").textContent === "200 of 200 mailboxes done, 0 running, 0 queued");
  assert.equal(await page.isHidden("#run-awake"), true, "said only while the pass runs");
  assert.match(await page.textContent("#run-status"), /The pass has ended/);
  assert.equal(await page.getAttribute("#overall", "aria-valuenow"), "100");
  await page.click('.steps li[data-step="projects"]');
  await page.waitForSelector('#project-list li[data-project="p1"]');
  assert.match(await page.textContent('#project-list li[data-project="p1"]'), /full pass finished/);
  assert.deepEqual(errors, []);
});

test("a computer that cannot be kept awake is said so on the Migrate screen, and the pass runs", async () => {
  const { page, errors } = await openApp({ awake: { kept: false, reason: "no system bus: org.freedesktop.login1 unreachable" } });
  await toPlan(page);
  await page.click("#start-full");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  await page.waitForSelector("#run-awake:not([hidden])");
  assert.equal(
    await page.textContent("#run-awake"),
    "This computer may sleep during the pass: it could not be kept awake (no system bus: org.freedesktop.login1 unreachable). Keep it from sleeping in its power settings until the pass ends.",
  );
  await page.evaluate(() => window.__finishRun());
  await page.waitForFunction(() => /The pass has ended/.test(document.querySelector("#run-status").textContent));
  assert.deepEqual(errors, []);
});

test("failed items are named by subject, folder, date and size; retry one mailbox, then all", async () => {
  const { page } = await openApp();
  await toPlan(page);
  await page.click("#start-full");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  // Adele done, room-1 failed (Alex is skipped by the default rule).
  await page.evaluate(() => {
    window.__setRun({ done: 1, failed: 1, running: 0 });
    window.__finishRun();
  });
  await page.waitForSelector("#retry-all:not([hidden])");
  await page.waitForFunction(() => /Quarterly budget/.test(document.querySelector("#failures").textContent));
  const failure = await page.textContent("#failures li");
  assert.match(failure, /^room-1@contoso.com: “Quarterly budget” in Inbox, .*2026.*, 1.2 MiB: The destination mailbox is full\.$/);
  assert.equal(failure.includes("AAMk"), false, "no Graph id when the subject is known");
  assert.equal(await page.textContent("#run-mailboxes"), "1 of 2 mailboxes done, 0 running, 0 queued, 1 failed");
  await page.selectOption("#run-filter", "failed");
  assert.equal(await domRows(page, "#run-table"), 1);
  await screenshot(page, "migrate-failed", { docs: true });

  await page.click('#run-table tr[data-key="room-1@contoso.com"] button');
  await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "retry_failed"));
  assert.deepEqual((await calls(page, "retry_failed")).map((c) => c.args), [{ user: "room-1@contoso.com" }]);
  await page.evaluate(() => window.__finishRun());
  await page.waitForFunction(() => document.querySelector("#run-mailboxes").textContent === "2 of 2 mailboxes done, 0 running, 0 queued");
  assert.equal(await page.isVisible("#retry-all"), false, "nothing left to retry");

  // An incremental pass with two failed mailboxes; retry all: no user named.
  await page.click("#run-back");
  await page.click("#start-incremental");
  await page.evaluate(() => window.__setRun({ retried: [] }));
  await page.evaluate(() => {
    window.__setRun({ done: 0, failed: 2, running: 0 });
    window.__finishRun();
  });
  await page.waitForSelector("#retry-all:not([hidden])");
  await page.click("#retry-all");
  await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "retry_failed").length === 2);
  assert.deepEqual((await calls(page, "retry_failed")).at(-1).args, {});
  await page.evaluate(() => window.__finishRun());
  await page.waitForFunction(() => document.querySelector("#run-mailboxes").textContent === "2 of 2 mailboxes done, 0 running, 0 queued");
  await page.click("#show-report");
  await page.waitForSelector("#screen-report:not([hidden])");
  assert.equal(await focused(page), "report-title");
  await page.waitForFunction(() => document.querySelector("#report-places").textContent !== "");
  await screenshot(page, "report", { docs: true });
});

test("passes: an incremental pass after the full one; the final pass shows the cut-over checklist and asks", async () => {
  const { page } = await openApp();
  await toPlan(page);
  assert.equal(await page.isDisabled("#start-incremental"), true, "no incremental pass before a full one");
  assert.equal(await page.isDisabled("#start-final"), true);
  await page.click("#start-full");
  await page.evaluate(() => window.__finishRun());
  await page.waitForSelector("#run-back:not([hidden])");
  await page.click("#run-back");
  await page.waitForFunction(() => document.querySelectorAll("#pass-history li").length === 1);
  assert.match(await page.textContent("#pass-history li"), /^Full pass finished, started .*: 2 mailboxes, 200 messages, 0 failed$/);

  await page.click("#start-incremental");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  assert.equal(await page.textContent("#migrate-title"), "Incremental pass");
  await page.evaluate(() => window.__finishRun());
  await page.waitForSelector("#run-back:not([hidden])");
  await page.click("#run-back");
  await page.waitForFunction(() => document.querySelectorAll("#pass-history li").length === 2);
  assert.match(await page.textContent("#pass-history li:nth-child(2)"), /^Incremental pass finished/);
  assert.deepEqual((await calls(page, "start_pass")).map((c) => c.args.kind), ["full", "incremental"]);

  await page.click("#start-final");
  await page.waitForSelector("#confirm-dialog[open]");
  const items = await page.locator("#cutover-checklist li").allTextContents();
  assert.equal(items[0], "MX of contoso.com points to contoso-com.mail.protection.outlook.com");
  assert.equal(items[1], "MX of fabrikam.com: could not be looked up (the DNS server failed to answer (SERVFAIL))");
  assert.match(items[2], /^The last pass: Incremental pass finished/);
  assert.equal(items[3], "Hand out the new accounts' passwords from /home/admin/Documents/credentialsReport, then delete the file after the cut-over.");
  assert.equal(await focused(page), "confirm-no", "the safe answer has the focus");
  await screenshot(page, "final-pass-checklist", { docs: true });
  await page.click("#confirm-no");
  assert.deepEqual((await calls(page, "start_pass")).map((c) => c.args.kind), ["full", "incremental"], "not started without confirmation");
  await page.click("#start-final");
  await page.click("#confirm-yes");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  assert.deepEqual((await calls(page, "start_pass")).map((c) => c.args.kind), ["full", "incremental", "final"]);
});

test("a schedule persists in the project, shows the next time, and a due one starts an incremental pass", async () => {
  const { page } = await openApp();
  await toPlan(page);
  await page.waitForFunction(() => /No schedule/.test(document.querySelector("#schedule-status").textContent));
  await page.fill("#schedule-hours", "6");
  await page.click("#schedule-set");
  await page.waitForFunction(() => /^Next incremental pass: /.test(document.querySelector("#schedule-status").textContent));
  const expected = await page.evaluate(() => {
    const p = JSON.parse(sessionStorage.getItem("__scriptedBackend")).projects.p1;
    return { schedule: p.schedule, next: new Date((p.schedule.since + 6 * 3600) * 1000).toLocaleString() };
  });
  assert.equal(expected.schedule.everyHours, 6, "persisted in the project");
  assert.equal(await page.textContent("#schedule-status"), `Next incremental pass: ${expected.next} (every 6 hours)`);
  assert.deepEqual((await calls(page, "set_pass_schedule")).map((c) => c.args), [{ everyHours: 6 }]);
  // Reopened (a reload), the project still has it.
  await page.reload();
  await page.waitForSelector("#screen-projects:not([hidden])");
  await page.click('#project-list li[data-project="p1"] button:has-text("Open")');
  await page.waitForSelector("#screen-source:not([hidden])");
  await page.click('.steps li[data-step="plan"] button');
  await page.waitForFunction(() => /^Next incremental pass: /.test(document.querySelector("#schedule-status").textContent));
  assert.equal(await page.isHidden("#schedule-clear"), false);

  // The timer finds it due: the pass starts and the page follows it.
  assert.equal(await page.evaluate(() => window.__fireSchedule()), true);
  await page.waitForSelector("#screen-migrate:not([hidden])");
  assert.equal(await page.textContent("#migrate-title"), "Scheduled incremental pass");
  assert.equal(await page.evaluate(() => window.__fireSchedule()), false, "never two passes at once");
  await page.evaluate(() => window.__finishRun());
  await page.waitForSelector("#run-back:not([hidden])");
  await page.click("#run-back");
  await page.waitForFunction(() => document.querySelectorAll("#pass-history li").length === 1);
  assert.match(await page.textContent("#pass-history li"), /^Incremental pass finished/);

  await page.click("#schedule-clear");
  await page.waitForFunction(() => /No schedule/.test(document.querySelector("#schedule-status").textContent));
  assert.equal(await page.evaluate(() => "schedule" in JSON.parse(sessionStorage.getItem("__scriptedBackend")).projects.p1), false);
});

test("the demo runs as its own project; closing the window during a run asks first", async () => {
  const { page } = await openApp();
  await page.click("#try-demo");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  assert.deepEqual((await calls(page, "run_demo")).map((c) => c.args), [{}], "run_demo takes no path");
  await page.waitForFunction(() => /of 3 mailboxes done/.test(document.querySelector("#run-mailboxes").textContent));
  await page.evaluate(() => window.__emit("tauri://close-requested"));
  await page.waitForSelector("#confirm-dialog[open]");
  assert.equal(await page.textContent("#confirm-title"), "A migration is running");
  await screenshot(page, "close-during-run", { docs: true });
  await page.click("#confirm-no");
  assert.equal((await calls(page, "control_run")).length, 0);
  await page.evaluate(() => window.__emit("tauri://close-requested"));
  await page.click("#confirm-yes");
  await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "control_run"));
  assert.deepEqual((await calls(page, "control_run")).map((c) => c.args), [{ action: "stop" }]);
  // The demo ends on its report.
  await page.evaluate(() => window.__finishRun());
  await page.waitForSelector("#screen-report:not([hidden])");
  assert.match(await page.textContent("#summary"), /^Migrated 3 mailboxes: 300 messages/);
});

test("closing the window just after a pass ended quits without asking, before the page has seen it end", async () => {
  const { page } = await openApp();
  await page.click("#try-demo");
  await page.waitForFunction(() => /of 3 mailboxes done/.test(document.querySelector("#run-mailboxes").textContent));
  // The run ends and the close request comes before the page's next poll of the run.
  await page.evaluate(() => {
    window.__finishRun();
    window.__emit("tauri://close-requested");
  });
  await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "plugin:window|destroy"));
  assert.equal(await page.isVisible("#confirm-dialog[open]"), false, "no question about a run that is over");
  assert.equal((await calls(page, "control_run")).length, 0);
});

test("the Plan table is usable at the window's minimum width", async () => {
  const { page } = await openApp({}, { width: 820 });
  await toPlan(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  await screenshot(page, "plan-narrow");
});

test("a folder destination is chosen in a native dialog; its Plan copies; counting can be cancelled", async () => {
  const { page } = await openApp({ holdPlan: true, picks: { destinationFolder: "/srv/m365-export" } });
  await createProject(page);
  await fillSource(page);
  await page.click("#source-next");
  await page.check('input[name="dest-kind"][value="folder"]');
  assert.equal(await page.isVisible("#rule-disabled"), true, "the rule that applies everywhere");
  assert.equal(await page.isVisible("#rule-shared"), false, "IceWarp's account rules only for IceWarp");
  await page.click("#dest-next");
  assert.match(await page.textContent("#df-path-error"), /choose a folder such as/);
  await page.click('#screen-destination [data-kind="folder"] button.pick');
  await page.waitForFunction(() => document.querySelector("#df-path").textContent === "/srv/m365-export");
  await page.click("#test-destination");
  await page.waitForSelector("#destination-results:not([hidden])");
  assert.match(await page.textContent("#destination-results"), /\/srv\/m365-export is writable/);
  await screenshot(page, "destination-folder", { docs: true });
  await page.click("#dest-next");
  await page.waitForSelector("#plan-cancel:not([hidden])");
  assert.match(await page.textContent("#plan-status"), /Counting/);
  await page.click("#plan-cancel");
  await page.waitForFunction(() => /cancelled/.test(document.querySelector("#plan-status").textContent));
  assert.equal((await calls(page, "cancel_plan")).length, 1);
  assert.equal(await page.isVisible("#plan-cancel"), false);
  // Counted again on request: this time it is let finish.
  await page.click("#plan-refresh");
  await page.evaluate(() => window.__releasePlan());
  await page.waitForSelector('#plan-table tr[data-key="adele.vance@contoso.com"]');
  assert.equal(await cell(page, "adele.vance@contoso.com", "action"), "copy");
  assert.equal(await cell(page, "room-1@contoso.com", "action"), "copy");
});

test("an IMAP destination: master user or an accounts CSV from a picker, checked before anything is saved", async () => {
  const { page } = await openApp({ picks: { accountsCsv: "/home/admin/accounts.csv" } });
  await createProject(page);
  await fillSource(page);
  await page.click("#source-next");
  await page.check('input[name="dest-kind"][value="imap"]');
  assert.equal(await page.isVisible("#dw-host"), false, "only the chosen kind's fields");
  await page.fill("#di-host", "imap://mail.example.com");
  await page.fill("#di-port", "70000");
  const saves = (await calls(page, "save_project")).length;
  await page.click("#dest-next");
  assert.match(await page.textContent("#di-host-error"), /is not a host name such as mail.example.com \(no scheme/);
  assert.match(await page.textContent("#di-port-error"), /1 to 65535/);
  assert.match(await page.textContent("#di-login-error"), /a master user who logs in for every account/);
  await page.check('input[name="di-login"][value="csv"]');
  assert.equal(await page.isVisible("#di-master-user"), false);
  await page.fill("#di-host", "imap.example.com");
  await page.fill("#di-port", "");
  await page.click("#dest-next");
  assert.match(await page.textContent("#di-login-error"), /a CSV file of each account's password/);
  assert.equal((await calls(page, "save_project")).length, saves, "nothing saved while fields are wrong");
  await page.click('#screen-destination [data-login="csv"] button.pick');
  await page.waitForFunction(() => document.querySelector("#di-accounts-csv").textContent === "/home/admin/accounts.csv");
  await page.click("#dest-next");
  await page.waitForSelector("#screen-plan:not([hidden])");
  const saved = (await calls(page, "save_project")).at(-1).args.project.destination;
  assert.deepEqual(saved, { kind: "imap", host: "imap.example.com", security: "tls", masterStyle: "authzid", accountsCsv: "/home/admin/accounts.csv" });
  await screenshot(page, "plan-imap");
});

test("a backend without run snapshots: the run screen shows the journal's counts", async () => {
  const { page, errors } = await openApp({ noSnapshot: true });
  await page.click("#try-demo");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  await page.evaluate(() => window.__setRun({ done: 1, running: 1 }));
  await page.waitForFunction(() => document.querySelector("#counters").textContent === "150 items written, 0 failed so far");
  await page.evaluate(() => window.__finishRun());
  await page.waitForSelector("#screen-report:not([hidden])");
  assert.deepEqual(errors, []);
});
