// Drives the /demo page in headless Chromium (playwright-core with the system's browser) and
// prints what it saw as one JSON line; tests/test_web_demo.py makes the config and judges.
//
//   node drive_demo.mjs config.json
//
// config: {url, chromium, username, password, screenshot,
//          samples: [{function, path}]          -- chosen as files, run in this browser
//          drawn: {function, strokes: [[[x, y], ...], ...], modes: ["browser", "platform"]}}
// (stroke points in the pad's own 280x280 pixels)

import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const problems = []; // console errors, page errors, failed requests

const browser = await chromium.launch({
  executablePath: config.chromium,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => r.status() >= 400 && problems.push(`HTTP ${r.status()}: ${r.url()}`));

  await page.goto(`${config.url}/demo`);
  // signed in with the keyboard alone: Tab to the labelled fields, Enter submits
  await page.keyboard.press("Tab");
  await page.keyboard.type(config.username);
  await page.keyboard.press("Tab");
  await page.keyboard.type(config.password);
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => !document.getElementById("function").disabled);
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, button, canvas")]
      .filter((e) => !(e.labels?.length || e.getAttribute("aria-label") || e.textContent.trim()))
      .map((e) => e.id || e.outerHTML.slice(0, 60)),
  );

  // Classify with the current input; resolves to the page's result record.
  const classify = async (mode) => {
    await page.getByLabel(mode === "browser" ? "In this browser" : "On the platform").check();
    await page.evaluate(() => (window.teaclaveDemo.result = undefined));
    await page.getByRole("button", { name: "Classify" }).click();
    await page.waitForFunction(() => window.teaclaveDemo.result !== undefined, null, { timeout: 120_000 });
    return page.evaluate(() => window.teaclaveDemo.result);
  };

  const samples = [];
  for (const sample of config.samples) {
    await page.selectOption("#function", sample.function);
    await page.setInputFiles("#image-file", sample.path);
    await page.waitForFunction(() => window.teaclaveDemo.tensor !== null);
    const result = await classify("browser");
    samples.push({ ...sample, ...result });
  }

  const drawn = [];
  await page.selectOption("#function", config.drawn.function);
  await page.getByRole("button", { name: "Clear" }).click();
  const box = await page.locator("#pad").boundingBox();
  const at = ([x, y]) => [box.x + (x * box.width) / 280, box.y + (y * box.height) / 280];
  for (const stroke of config.drawn.strokes) {
    await page.mouse.move(...at(stroke[0]));
    await page.mouse.down();
    for (const point of stroke.slice(1)) await page.mouse.move(...at(point), { steps: 2 });
    await page.mouse.up();
  }
  const tensor = await page.evaluate(() => Array.from(window.teaclaveDemo.tensor ?? []));
  for (const mode of config.drawn.modes) drawn.push({ mode, ...(await classify(mode)) });
  await page.screenshot({ path: config.screenshot, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 }); // a phone: one column, no side scroll
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  await page.screenshot({ path: config.screenshot.replace(/\.png$/, "-narrow.png"), fullPage: true });
  console.log(JSON.stringify({ samples, drawn, tensor, problems, unlabelled, overflow }));
} finally {
  await browser.close();
}
