// Opens a report.html the migrator wrote in Debian's Chromium (harness.mjs's launch()) and
// says what a person sees: `node tests/report-page.mjs <report.html> <screenshot.png> <text>...`
// prints one JSON line {missing, charts, violations}: the texts not visible on the page, the
// visible inline SVG charts by their aria-label, and every Content-Security-Policy violation the
// page reported. Driven by the Rust test report_html.rs (migrator-core), which generates the
// report from a real run and asserts on this line. Not a `node --test` file on its own.
import { pathToFileURL } from "node:url";
import { launch } from "./harness.mjs";

const [file, shot, ...texts] = process.argv.slice(2);
if (!file || !shot) {
  console.error("usage: node tests/report-page.mjs <report.html> <screenshot.png> <text>...");
  process.exit(2);
}
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const violations = [];
  // Chromium logs a blocked load or inline script to the console ("Refused to ...").
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text());
  });
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
  const missing = [];
  for (const text of texts) {
    const shown = page.getByText(text, { exact: false });
    let visible = false;
    for (let i = 0; i < (await shown.count()) && !visible; i++) {
      visible = await shown.nth(i).isVisible();
    }
    if (!visible) missing.push(text);
  }
  const charts = [];
  const svgs = page.locator("svg[role=img]");
  for (let i = 0; i < (await svgs.count()); i++) {
    const svg = svgs.nth(i);
    const box = await svg.boundingBox();
    if ((await svg.isVisible()) && box && box.width > 0 && box.height > 0) {
      charts.push(await svg.getAttribute("aria-label"));
    }
  }
  violations.push(...(await page.evaluate(() => window.__cspViolations)));
  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ missing, charts, violations }));
} finally {
  await browser.close();
}
