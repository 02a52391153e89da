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

async function openApp(colorScheme = "light") {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 }, colorScheme });
  await page.addInitScript(mockBackend);
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
  const calls = await page.evaluate(() => window.__calls);
  assert.deepEqual(calls, []);

  await page.fill("#tenant-id", "contoso.onmicrosoft.com");
  await page.fill("#client-id", "00000000-0000-0000-0000-000000000001");
  await page.fill("#client-secret", "Qx8Q~realValue.123");
  await page.click("#check-source");
  await page.waitForFunction(() => window.__calls.length === 1);
  const [call] = await page.evaluate(() => window.__calls);
  assert.equal(call.cmd, "validate_source");
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
  await screenshot(page, "test-connection", { docs: true });

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

test("the demo renders live progress, pause and resume, then the report", async () => {
  const { page, errors } = await openApp();
  await page.click("#try-demo");
  await page.waitForSelector("#screen-migrate:not([hidden])");
  assert.equal(await page.isVisible("#screen-source"), false, "one screen at a time");
  assert.equal(await page.isVisible("#screen-report"), false, "one screen at a time");
  await page.waitForFunction(() => document.querySelector("#counters").textContent.startsWith("3 of 4 messages"));
  assert.match(await page.textContent("#counters"), /1 failed/);
  assert.equal(await page.getAttribute("#overall", "aria-valuenow"), "75");
  const rows = await page.locator("#user-rows tr").count();
  assert.equal(rows, 2);
  assert.match(await page.textContent('#user-rows tr[data-user="alex.wilber@contoso.com"]'), /1 \/ 1/);
  assert.match(await page.textContent("#failures"), /AAMk1: Graph answered HTTP 404/);
  assert.match(await page.textContent('#user-rows tr[data-user="adele.vance@contoso.com"]'), /2 \/ 3/);
  await screenshot(page, "migrate", { docs: true });

  await page.click("#pause");
  await page.waitForSelector("#resume:not([hidden])");
  assert.match(await page.textContent("#run-status"), /Paused/);
  await page.click("#resume");
  await page.waitForSelector("#pause:not([hidden])");
  const controls = (await page.evaluate(() => window.__calls)).filter((c) => c.cmd === "control_run").map((c) => c.args.action);
  assert.deepEqual(controls, ["pause", "resume"]);

  await page.evaluate(() => window.__finishDemo());
  await page.waitForSelector("#screen-report:not([hidden])");
  assert.equal(await page.isVisible("#screen-migrate"), false, "one screen at a time");
  assert.match(await page.textContent("#summary"), /Migrated 2 mailboxes: 3 messages/);
  assert.match(await page.textContent("#summary"), /1 failed/);
  await screenshot(page, "report", { docs: true });
  assert.deepEqual(errors, []);
});

test("dark mode follows the system", async () => {
  const { page } = await openApp("dark");
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, "rgb(21, 24, 30)");
  await screenshot(page, "source-dark", { docs: true });
});
