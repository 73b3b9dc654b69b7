// Shared helpers of the browser tests. Each script is run by tests/browser.rs
// against a real `proviso serve` on loopback, in headless Debian Chromium
// driven by playwright-core (no browser download: the system's Chromium).
//
// Environment (set by tests/browser.rs):
//   PROVISO_BASE          http://127.0.0.1:PORT of the server under test
//   PROVISO_*_TOKEN       the role tokens (ADMIN, INGEST, ANALYST, ...)
//   PROVISO_ARTIFACTS     where screenshots go (created when missing)
//   CHROMIUM              optional: the browser binary (default /usr/bin/chromium)

import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set (run the test through \`cargo test --test browser\`)`);
  return value;
}

export const BASE = required("PROVISO_BASE").replace(/\/+$/, "");
export const ARTIFACTS = path.resolve(process.env.PROVISO_ARTIFACTS || "target/browser-artifacts");
export const TOKENS = {
  admin: process.env.PROVISO_ADMIN_TOKEN,
  ingest: process.env.PROVISO_INGEST_TOKEN,
  analyst: process.env.PROVISO_ANALYST_TOKEN,
  subject: process.env.PROVISO_SUBJECT_SERVICE_TOKEN,
  reviewer: process.env.PROVISO_REVIEWER_TOKEN,
  advertiser: process.env.PROVISO_ADVERTISER_TOKEN,
  partner: process.env.PROVISO_PARTNER_TOKEN,
};

/** Milliseconds since the script started, for the log. */
const started = Date.now();
export function log(...parts) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(2)}s]`, ...parts);
}

let browser = null;
const pages = [];
const pageErrors = [];

/** Starts headless Chromium (a fresh temporary profile each time). */
export async function launch() {
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  if (!fs.existsSync(executablePath)) {
    throw new Error(`no browser at ${executablePath}: run \`bash .ci/run\` or \`apt-get install -y chromium\` (or set CHROMIUM)`);
  }
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: 60_000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // Loopback only: never route the page through a proxy from the environment.
      "--no-proxy-server",
    ],
  });
  return browser;
}

/**
 * A page in a new browser context (own cookies and sessionStorage) of the
 * given size; its uncaught script errors and any request to a host other
 * than the server under test fail the test; its console errors are logged.
 */
export async function newPage(options = {}) {
  if (!browser) await launch();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  // The pages work without any network beyond the proviso server: a request
  // anywhere else is refused and fails the test.
  const origin = new URL(BASE).origin;
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    pageErrors.push(`request outside the proviso server: ${url}`);
    return route.abort("blockedbyclient");
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on("pageerror", (error) => {
    pageErrors.push(`${page.url()}: ${error.message}`);
    console.error(`page error: ${error.message}`);
  });
  page.on("console", (message) => {
    if (message.type() === "error") console.error(`console error: ${message.text()} (${message.location().url || "no url"})`);
    // The pages' Content-Security-Policy refuses other hosts before the
    // request is made: a refusal is a page reaching outside too.
    if (message.text().includes("Content Security Policy")) pageErrors.push(`${page.url()}: ${message.text()}`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400) console.error(`HTTP ${response.status()} ${response.request().method()} ${response.url()}`);
  });
  page.on("requestfailed", (request) => {
    // An event stream cut short by closing the page is expected.
    if (!page.isClosed()) console.error(`request failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText}`);
  });
  pages.push(page);
  return page;
}

/**
 * One HTTP request to the server under test: `body` is sent as is when a
 * string (NDJSON by default), as JSON otherwise. Returns { status, body, ms }
 * with `body` parsed as JSON when it is JSON, else text.
 */
export async function api(method, urlPath, token, body, contentType) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined && body !== null) {
    if (typeof body === "string") {
      payload = body;
      headers["Content-Type"] = contentType || "application/x-ndjson";
    } else {
      payload = JSON.stringify(body);
      headers["Content-Type"] = contentType || "application/json";
    }
  }
  const t0 = Date.now();
  const response = await fetch(`${BASE}${urlPath}`, { method, headers, body: payload, signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body: parsed, ms: Date.now() - t0 };
}

const AXE_SOURCE = fs.readFileSync(new URL("./node_modules/axe-core/axe.min.js", import.meta.url), "utf8");

/**
 * Runs axe-core (WCAG 2.0/2.1 A and AA rules) on the page as it is now and
 * throws listing every violation of serious or critical impact: unlabelled
 * controls, missing names, contrast, keyboard traps and so on. Injected
 * through the DevTools protocol, so the page's own CSP stays in force.
 */
export async function checkAccessibility(page, what) {
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
    return result.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
  });
  if (violations.length > 0) throw new Error(`accessibility of ${what}:\n  ${violations.join("\n  ")}`);
  log(`accessibility of ${what}: no serious or critical violations`);
}

/** Saves a full-page PNG screenshot to PROVISO_ARTIFACTS; returns its path. */
export async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name.endsWith(".png") ? name : `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${file}`);
  return file;
}

/**
 * Polls `fn` (sync or async) every 25 ms until it returns a truthy value,
 * which is returned; throws after `ms` naming `what` and the last value.
 */
export async function waitFor(fn, ms, what = "a condition") {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (error) {
      last = `threw ${error.message}`;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

export function assertEqual(actual, expected, message) {
  if (actual !== expected) {
    throw new Error(`assertion failed: ${message}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** The text of `selector` read as an en-US formatted integer ("1,234" → 1234), or null. */
export async function numberIn(page, selector) {
  const text = ((await page.textContent(selector)) || "").trim();
  return /^\d{1,3}(,\d{3})*$/.test(text) ? Number(text.replace(/,/g, "")) : null;
}

/**
 * Runs the test body; on failure saves `FAILED-<name>.png` of every open
 * page, and in every case closes the browser; exits 1 on failure, also when
 * the body does not finish within `timeoutMs` or a page had a script error.
 */
export async function main(name, fn, timeoutMs = 90_000) {
  let failure = null;
  let timer;
  try {
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name} did not finish within ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([fn(), timeout]);
    if (pageErrors.length > 0) throw new Error(`script errors in the page:\n  ${pageErrors.join("\n  ")}`);
  } catch (error) {
    failure = error;
  } finally {
    clearTimeout(timer);
  }
  if (failure) {
    console.error(`FAILED ${name}: ${failure.stack || failure}`);
    for (const [i, page] of pages.entries()) {
      if (page.isClosed()) continue;
      const file = i === 0 ? `FAILED-${name}.png` : `FAILED-${name}-${i + 1}.png`;
      try {
        await Promise.race([shot(page, file), new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), 10_000))]);
      } catch (error) {
        console.error(`could not save ${file}: ${error.message}`);
      }
    }
  }
  if (browser) {
    await Promise.race([browser.close().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 10_000))]);
  }
  if (failure) process.exit(1);
  log(`PASSED ${name}`);
  process.exit(0);
}
