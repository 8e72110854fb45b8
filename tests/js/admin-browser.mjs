// Drives the admin panel and the customer page in a headless Chromium (playwright-core), for a
// test that places orders and restocks over REST meanwhile.
//
//   node admin-browser.mjs   with ORION_BASE_URL, ORION_CHROMIUM, ORION_ARTIFACTS,
//                            ORION_ADMIN_EMAIL and ORION_ADMIN_PASSWORD in the environment
//
// It writes one JSON line per step to stdout and reads commands from stdin, one JSON object per
// line: {"expectOrder": id, "status": "confirmed", "withinMs": 2000}, {"restock": sku,
// "quantity": n}, {"search": reference}, {"customerPage": {"email", "password", "orderId"}},
// {"phone": true}, {"webhook": url}, {"stop": true}. Screenshots go to ORION_ARTIFACTS.
//
// {"webhook": url} registers an endpoint at that URL in the webhooks panel, reads its secret
// (shown once), sends a test event and waits for its delivery to show `delivered`; the receiver
// must answer 2xx. {"webhook": true} takes the URL from ORION_WEBHOOK_URL, and without one the
// step reports {"event": "webhook", "skipped": true}. Optional: "events" (default ["*"]),
// "withinMs" (default 30000) for the delivery.

import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const base = process.env.ORION_BASE_URL;
const artifacts = process.env.ORION_ARTIFACTS;
mkdirSync(artifacts, { recursive: true });

const problems = [];
function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

async function watchPage(page, label) {
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`${label} console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`${label} page error: ${error.message}`));
  // Records, in the page's own clock, when each order row appears and when each status shows.
  await page.addInitScript(() => {
    window.__seen = {};
    const scan = () => {
      const now = Date.now();
      for (const row of document.querySelectorAll("tr[data-order-id]")) {
        const id = row.getAttribute("data-order-id");
        const seen = (window.__seen[id] ??= { appeared: now, statuses: {} });
        const status = row.querySelector('[data-field="status"]')?.textContent.trim();
        if (status && !(status in seen.statuses)) seen.statuses[status] = now;
      }
    };
    new MutationObserver(scan).observe(document, {
      childList: true,
      subtree: true,
      characterData: true,
    });
  });
}

async function logIn(page, email, password) {
  await page.fill("#login-email", email);
  await page.fill("#login-password", password);
  await page.click("#login-submit");
  await page.waitForFunction(
    () => document.querySelector("#connection-status")?.textContent.trim() === "live",
    null,
    { timeout: 20000 },
  );
}

async function shot(page, name) {
  const path = join(artifacts, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

const browser = await chromium.launch({
  executablePath: process.env.ORION_CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const admin = await browser.newPage({ viewport: { width: 1366, height: 900 } });
await watchPage(admin, "admin");
await admin.goto(`${base}/admin`);
await logIn(admin, process.env.ORION_ADMIN_EMAIL, process.env.ORION_ADMIN_PASSWORD);
// Survives only as long as the page is not reloaded.
await admin.evaluate(() => {
  window.__sameDocument = true;
});
emit({ event: "ready", screenshot: await shot(admin, "admin-logged-in.png") });

async function expectOrder({ expectOrder: id, status, withinMs }) {
  await admin.waitForFunction(
    ([id, status]) => Boolean(window.__seen[id]?.statuses[status]),
    [id, status],
    { timeout: withinMs },
  );
  const seen = await admin.evaluate((id) => window.__seen[id], id);
  const sameDocument = await admin.evaluate(() => window.__sameDocument === true);
  return {
    event: "order",
    appeared: seen.appeared,
    shown: seen.statuses[status],
    statuses: seen.statuses,
    sameDocument,
    screenshot: await shot(admin, `admin-order-${status}.png`),
  };
}

// Types an order's reference into the feed's search box; answers the rows it then shows, and
// the rows after the box is cleared again.
async function search({ search: reference }) {
  const box = admin.locator('[data-role="reference-search"]');
  const rows = () =>
    admin.$$eval("#orders tbody tr[data-order-id]", (trs) => trs.map((tr) => tr.dataset.orderId));
  await box.fill(reference.toLowerCase());
  await admin.waitForFunction(
    () => document.querySelectorAll("#orders tbody tr[data-order-id]").length === 1,
    null,
    { timeout: 5000 },
  );
  const found = await rows();
  const screenshot = await shot(admin, "admin-search.png");
  await box.fill("");
  await admin.waitForFunction(
    () => document.querySelectorAll("#orders tbody tr[data-order-id]").length > 1,
    null,
    { timeout: 5000 },
  );
  return { event: "searched", found, cleared: (await rows()).length, screenshot };
}

async function restock({ restock: sku, quantity }) {
  const row = admin.locator(`#stock tr[data-sku="${sku}"]`);
  const available = async () =>
    Number((await row.locator('[data-field="available"]').textContent()).trim());
  const before = await available();
  await row.locator('[data-action="restock-quantity"]').fill(String(quantity));
  await row.locator('[data-action="restock"]').click();
  await admin.waitForFunction(
    ([sku, expected]) =>
      Number(
        document
          .querySelector(`#stock tr[data-sku="${sku}"] [data-field="available"]`)
          ?.textContent.trim(),
      ) === expected,
    [sku, before + quantity],
    { timeout: 5000 },
  );
  await row.scrollIntoViewIfNeeded();
  return {
    event: "restocked",
    before,
    after: await available(),
    screenshot: await shot(admin, "admin-restocked.png"),
  };
}

async function customerPage({ customerPage: { email, password, orderId } }) {
  const page = await browser.newPage({ viewport: { width: 1024, height: 800 } });
  await watchPage(page, "customer");
  await page.goto(`${base}/orders/${orderId}`);
  await logIn(page, email, password);
  const status = page.locator(`tr[data-order-id="${orderId}"] [data-field="status"]`);
  await status.waitFor({ timeout: 10000 });
  const result = {
    event: "customer",
    status: (await status.textContent()).trim(),
    rows: await page.locator("tr[data-order-id]").count(),
    screenshot: await shot(page, "customer-order.png"),
  };
  await page.close();
  return result;
}

async function phone() {
  const page = await browser.newPage({ viewport: { width: 360, height: 780 }, isMobile: true, hasTouch: true });
  await watchPage(page, "phone");
  await page.goto(`${base}/admin`);
  await logIn(page, process.env.ORION_ADMIN_EMAIL, process.env.ORION_ADMIN_PASSWORD);
  await page.locator("tr[data-order-id]").first().waitFor({ timeout: 10000 });
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - window.innerWidth,
  );
  const result = { event: "phone", overflow, screenshot: await shot(page, "admin-phone.png") };
  await page.close();
  return result;
}

// Registers an endpoint, sees its secret once, sends a test event and waits for the delivery.
async function webhook({ webhook: target, events = ["*"], withinMs = 30000 }) {
  const url = typeof target === "string" ? target : process.env.ORION_WEBHOOK_URL;
  if (!url) return { event: "webhook", skipped: true };
  // Phone-sized screens show one panel at a time, behind its tab.
  const tab = admin.locator('.tab[data-tab="webhooks"]');
  if (await tab.isVisible()) await tab.click();
  await admin.fill("#webhook-url", url);
  await admin.fill("#webhook-description", "browser test");
  for (const type of events) await admin.check(`#webhook-events input[value="${type}"]`);
  await admin.click("#webhook-submit");

  const secretBox = admin.locator("#webhook-secret");
  await secretBox.waitFor({ state: "visible", timeout: 10000 });
  const secret = (await secretBox.locator('[data-role="secret-value"]').textContent()).trim();
  const id = await secretBox.getAttribute("data-for-webhook");
  const row = admin.locator(`#webhooks-list tr[data-webhook-id="${id}"]`);
  await row.waitFor({ timeout: 5000 });
  const secretScreenshot = await shot(admin, "admin-webhook-secret.png");
  await secretBox.locator('[data-action="dismiss-secret"]').click();
  const secretGone = await admin.evaluate(
    (secret) => !document.body.textContent.includes(secret),
    secret,
  );

  // The delivery's id comes in the answer to the click; the page then shows that endpoint's
  // deliveries and re-reads them until the outcome is known.
  const sent = admin.waitForResponse(
    (response) => response.url().endsWith(`/api/admin/webhooks/${id}/test`) && response.status() === 202,
  );
  await row.locator('[data-action="test"]').click();
  const { delivery_id: deliveryId } = await (await sent).json();
  await admin.waitForFunction(
    ([id, deliveryId]) =>
      document
        .querySelector(
          `#webhook-deliveries[data-for-webhook="${id}"] tr[data-delivery-id="${deliveryId}"] [data-field="outcome"]`,
        )
        ?.textContent.trim() === "delivered",
    [id, deliveryId],
    { timeout: withinMs, polling: 250 },
  );
  const deliveries = await admin.$$eval(`#webhook-deliveries[data-for-webhook="${id}"] tr[data-delivery-id]`, (trs) =>
    trs.map((tr) => ({
      id: tr.dataset.deliveryId,
      event_type: tr.querySelector('[data-field="event_type"]')?.textContent.trim(),
      outcome: tr.querySelector('[data-field="outcome"]')?.textContent.trim(),
      attempts: Number(tr.querySelector('[data-field="attempts"]')?.textContent.trim()),
    })),
  );
  await admin.locator("#webhook-deliveries").scrollIntoViewIfNeeded();
  return {
    event: "webhook",
    id,
    // A throwaway secret of the test's own endpoint: the test may check signatures with it.
    secret,
    secretGone,
    deliveryId,
    deliveries,
    screenshots: [secretScreenshot, await shot(admin, "admin-webhook-delivered.png")],
  };
}

const commands = createInterface({ input: process.stdin });
for await (const line of commands) {
  let command;
  try {
    command = JSON.parse(line);
  } catch {
    continue;
  }
  if (command.stop) break;
  try {
    if (command.expectOrder) emit(await expectOrder(command));
    else if (command.restock) emit(await restock(command));
    else if (command.search) emit(await search(command));
    else if (command.customerPage) emit(await customerPage(command));
    else if (command.phone) emit(await phone());
    else if (command.webhook) emit(await webhook(command));
  } catch (error) {
    emit({
      event: "failed",
      error: String(error.message ?? error),
      screenshot: await shot(admin, "failure.png").catch(() => null),
    });
  }
}
await browser.close();
emit({ event: "done", problems });
