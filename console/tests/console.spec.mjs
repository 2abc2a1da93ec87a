// The web console in a real headless browser (Debian's Chromium, driven by playwright-core),
// against a real webhookd (WEBHOOKD_HTTP_ADDR, WEBHOOKD_ADMIN_TOKEN; started as scripts/test-clients
// starts its server: private targets allowed, a millisecond retry schedule) and a real
// receiver on 127.0.0.1 that fails, then succeeds.
//
// An operator signs in with an account token, sees the failing webhook with its health,
// opens its delivery log, replays the failed delivery and sees it succeed in the live tail;
// cancels a delivery whose attempt is under way;
// re-enables a disabled webhook; searches events, where an event carrying `<script>` and an
// `onerror` image shows as text and runs nothing; and every page reads at 1280 px and at
// phone width. Any console error, page error or CSP violation fails the test. Screenshots of
// every page go to $CONSOLE_SCREENSHOTS (default target/console-screenshots/).
//
// Run: WEBHOOKD_HTTP_ADDR=... WEBHOOKD_ADMIN_TOKEN=... node --test console.spec.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const base = `http://${process.env.WEBHOOKD_HTTP_ADDR ?? "127.0.0.1:8080"}`;
const adminToken = process.env.WEBHOOKD_ADMIN_TOKEN;
const shots = process.env.CONSOLE_SCREENSHOTS ?? path.join(here, "..", "..", "target", "console-screenshots");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const XSS = `<script>window.__xss = "script"</script><img src=x onerror="window.__xss = 'img'">`;
const WAIT = 20_000;

/**
 * A receiver on 127.0.0.1 answering `status` (changeable), recording what it gets; requests
 * to `?slow` are held until `release()` answers them with 503.
 */
function receiver() {
  const state = { status: 503, requests: [], held: [] };
  state.release = () => {
    for (const res of state.held.splice(0)) {
      res.writeHead(503, { "content-type": "application/json" });
      res.end("{}");
    }
  };
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => { body += chunk; });
    req.on("end", () => {
      state.requests.push({ url: req.url, headers: req.headers, body });
      if (req.url.includes("slow")) {
        state.held.push(res);
        return;
      }
      res.writeHead(state.status, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: state.status < 300 }));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      state.url = `http://127.0.0.1:${server.address().port}/hook`;
      state.close = () => {
        state.release();
        return new Promise((done) => server.close(done));
      };
      resolve(state);
    });
  });
}

async function rest(method, url, token, body) {
  const response = await fetch(`${base}${url}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${text}`);
  return json;
}

/** Polls `check` until it returns a truthy value, for up to WAIT ms. */
async function eventually(what, check) {
  const deadline = Date.now() + WAIT;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what}: not within ${WAIT} ms (last: ${last?.message ?? JSON.stringify(last)})`);
}

let browser;
let page;
let hook;
let token;
let failing;
let disabled;
let slow;
const problems = [];

async function shot(name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

before(async () => {
  assert.ok(adminToken, "WEBHOOKD_ADMIN_TOKEN is not set");
  fs.mkdirSync(shots, { recursive: true });
  hook = await receiver();
  const account = `console-${process.pid}-${Date.now()}`;
  const created = await fetch(`${base}/admin/v1/tokens`, {
    method: "POST",
    headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ account_id: account, scopes: ["webhooks:read", "webhooks:write"] }),
  });
  assert.equal(created.status, 201);
  token = (await created.json()).token;
  failing = await rest("POST", "/api/v1/webhooks/", token, {
    name: "checkout-events", url: hook.url, trigger_type: "resolve",
  });
  disabled = await rest("POST", "/api/v1/webhooks/", token, {
    name: "paused-hook", url: `${hook.url}?paused`, trigger_type: "acknowledge", is_webhook_enabled: false,
  });
  slow = await rest("POST", "/api/v1/webhooks/", token, {
    name: "slow-hook", url: `${hook.url}?slow`, trigger_type: "silence",
  });
  await rest("POST", "/api/v1/events/", token, {
    event: { type: "resolve" }, alert_group: { id: "AG1", title: XSS },
  });
  // Every attempt fails: the delivery ends FAILED.
  await eventually("the delivery to fail finally", async () => {
    const page = await rest("GET", `/api/v1/deliveries/?webhook_id=${failing.id}&state=failed`, token);
    return page.deliveries.length === 1;
  });

  browser = await chromium.launch({ executablePath: chromiumPath, chromiumSandbox: false });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") problems.push(`console ${msg.type()}: ${msg.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
});

after(async () => {
  await browser?.close();
  await hook?.close();
});

test("an operator signs in with the keyboard and sees the failing webhook's health", async () => {
  await page.goto(`${base}/console/`);
  await page.getByLabel("Account token").waitFor();
  await shot("01-sign-in");
  // The token field has focus; typing and Enter signs in.
  assert.equal(await page.evaluate(() => document.activeElement?.id), "token");
  await page.keyboard.type(token);
  await page.keyboard.press("Enter");
  const row = page.locator(`tr[data-webhook="${failing.id}"]`);
  await row.waitFor({ timeout: WAIT });
  assert.match(await row.textContent(), /checkout-events/);
  assert.match(await row.locator('td[data-label="State"]').textContent(), /failing/);
  assert.equal((await row.locator('td[data-label="Success 1 h"]').textContent()).trim(), "0%");
  assert.notEqual((await row.locator('td[data-label="Last failure"]').textContent()).trim(), "—");
  assert.equal((await row.locator('td[data-label="Last success"]').textContent()).trim(), "—");
  assert.equal(await row.locator("svg.chart rect.bad").count(), 1);
  // The token is in this tab's sessionStorage, never in the URL.
  assert.ok(!page.url().includes(token));
  await page.locator("#tail-state", { hasText: "live" }).waitFor({ timeout: WAIT });
  await shot("02-webhooks");
});

test("a disabled webhook is re-enabled from its row", async () => {
  const row = page.locator(`tr[data-webhook="${disabled.id}"]`);
  assert.match(await row.textContent(), /disabled/);
  await row.getByRole("button", { name: "Re-enable" }).click();
  await page.locator("#flash", { hasText: "paused-hook is enabled again." }).waitFor();
  await page.locator(`tr[data-webhook="${disabled.id}"] td[data-label="State"]`, { hasText: "healthy" }).waitFor();
  const webhook = await rest("GET", `/api/v1/webhooks/${disabled.id}/`, token);
  assert.equal(webhook.is_webhook_enabled, true);
});

let replayed;

test("the delivery log shows each attempt and the replay succeeds in the live tail", async () => {
  await page.locator(`tr[data-webhook="${failing.id}"]`).getByRole("link", { name: "Delivery log" }).click();
  await page.getByRole("heading", { name: "Delivery log: checkout-events" }).waitFor();
  await page.getByLabel("State", { exact: true }).selectOption("failed");
  const failed = page.locator("tr[data-delivery]", { hasText: "FAILED" });
  await failed.first().waitFor();
  assert.equal(await failed.count(), 1);
  // Every attempt is listed with its request and response; the event shows as text.
  const attempts = page.locator("details.attempt");
  assert.equal(await attempts.count(), 4);
  await attempts.first().locator("summary").click();
  await attempts.first().getByText('"title":', { exact: false }).first().waitFor();
  assert.match(await attempts.first().textContent(), /503/);
  await shot("03-delivery-log");

  // The endpoint is back; replay with the keyboard.
  hook.status = 200;
  const replay = failed.first().getByRole("button", { name: "Replay" });
  await replay.focus();
  await page.keyboard.press("Enter");
  const flash = page.locator("#flash", { hasText: "Replay queued:" });
  await flash.waitFor();
  replayed = (await flash.textContent()).split(":")[1].trim();
  assert.ok(replayed, "no delivery id in the flash");

  await page.getByRole("link", { name: /Live tail/ }).click();
  await page.locator(`#tail-rows tr[data-delivery="${replayed}"][data-state="SUCCEEDED"]`)
    .waitFor({ timeout: WAIT });
  assert.ok(hook.requests.length >= 5);
  await shot("04-live-tail");
});

test("event search shows a script-carrying event as text and runs nothing", async () => {
  await page.getByRole("link", { name: "Events" }).click();
  await page.getByRole("heading", { name: "Events" }).waitFor();
  await page.getByLabel("Type").fill("resolve");
  await page.getByRole("button", { name: "Search" }).click();
  const data = page.locator("tr[data-event] pre.data").first();
  await data.waitFor();
  assert.ok((await data.textContent()).includes(XSS.replaceAll('"', '\\"')), await data.textContent());
  assert.equal(await page.locator("#view script, #view img").count(), 0);
  await shot("05-events");
  await page.locator("tr[data-event] a").first().click();
  await page.getByRole("heading", { name: /^Event / }).waitFor();
  await page.locator("tr[data-delivery]").first().waitFor();
  await shot("06-event");
  assert.equal(await page.evaluate(() => window.__xss), undefined);
});

test("a delivery whose attempt is under way is cancelled from the delivery log", async () => {
  await rest("POST", "/api/v1/events/", token, { event: { type: "silence" }, alert_group: { id: "AG2" } });
  await eventually("the slow receiver to hold a request", () => hook.held.length === 1);
  await page.evaluate((h) => { location.hash = h; }, `#/webhooks/${slow.id}`);
  await page.getByRole("heading", { name: "Delivery log: slow-hook" }).waitFor();
  const row = page.locator("tr[data-delivery]").first();
  await row.waitFor();
  const id = await row.getAttribute("data-delivery");
  await row.getByRole("button", { name: "Cancel" }).click();
  await page.locator("#flash", { hasText: `Delivery ${id} cancelled.` }).waitFor();
  await page.locator(`tr[data-delivery="${id}"]`, { hasText: "CANCELLED" }).waitFor();
  await shot("07-cancelled");
  // The attempt under way fails; a cancelled delivery is not retried.
  hook.release();
  const delivery = await eventually("the delivery to settle", async () => {
    const d = await rest("GET", `/api/v1/deliveries/${id}/`, token);
    return d.attempts === 1 && d;
  });
  assert.equal(delivery.state, "CANCELLED");
  assert.equal(hook.requests.filter((r) => r.url.includes("slow")).length, 1);
});

test("every page reads at phone width without sideways scrolling", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  const loaded = {
    webhooks: `tr[data-webhook="${failing.id}"]`,
    "delivery-log": "details.attempt",
    events: "tr[data-event]",
    "live-tail": "#tail-rows tr[data-delivery]",
  };
  for (const [name, hash] of [["webhooks", "#/webhooks"], ["delivery-log", `#/webhooks/${failing.id}`],
    ["events", "#/events"], ["live-tail", "#/tail"]]) {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await page.locator(loaded[name]).first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `${name} scrolls sideways by ${overflow} px at 390 px`);
    await shot(`phone-${name}`);
  }
});

test("no console error, page error or CSP violation happened", async () => {
  const csp = await page.evaluate(() => window.__csp);
  assert.deepEqual(csp, []);
  assert.deepEqual(problems, []);
});
