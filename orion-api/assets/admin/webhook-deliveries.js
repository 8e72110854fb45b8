/* One webhook endpoint's deliveries, newest first, with replay. While the list is on screen it
 * is re-read: often while a delivery is still pending (its outcome is about to change), rarely
 * otherwise, and not at all while the panel is hidden (a phone's other tab, a background tab).
 * A re-read covers every row shown, up to the API's largest page, so older rows stay current. */

import { api } from "./api.js";
import { $, busy, cell, emptyRow, flash, h, shown } from "./dom.js";
import { badge, millis, timeEl } from "./format.js";
import { reportError } from "./problem.js";
import { toast } from "./toast.js";

const PAGE = 20;
const MAX_PAGE = 100; // the API's limit
const POLL_PENDING_MS = 2000;
const POLL_IDLE_MS = 10_000;

const deliveriesPath = (hookId, suffix = "") => `/api/admin/webhooks/${encodeURIComponent(hookId)}/deliveries${suffix}`;

// Newest first; ids are UUID v7, so they break ties in time order too.
const newerFirst = (a, b) => millis(b.created_at) - millis(a.created_at) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
// What a row shows; a row whose version is unchanged is left alone (and keeps its focus).
const versionOf = (d) => `${d.updated_at}|${d.outcome}|${d.attempts}|${d.last_status_code}|${d.next_attempt_at}`;

function lastAnswer(delivery) {
  if (delivery.last_status_code == null) return "—";
  const latency = delivery.last_latency_ms == null ? "" : ` · ${delivery.last_latency_ms} ms`;
  return `${delivery.last_status_code}${latency}`;
}

function deliveryRow(delivery) {
  const retrying = delivery.outcome === "pending" && delivery.next_attempt_at;
  return h(
    "tr",
    { "data-delivery-id": delivery.id, "data-version": versionOf(delivery) },
    cell("Created", timeEl(delivery.created_at)),
    cell("Event", h("code", { "data-field": "event_type", title: `Event ${delivery.event_id}` }, delivery.event_type)),
    cell("Outcome", badge(delivery.outcome), { "data-field": "outcome" }),
    cell("Attempts", String(delivery.attempts ?? 0), { class: "num", "data-field": "attempts" }),
    cell("Last answer", lastAnswer(delivery), { class: "num", "data-field": "last_status_code" }),
    cell(
      "Error",
      delivery.last_error || retrying
        ? h(
            "div",
            { class: "error-cell" },
            delivery.last_error ? h("p", { class: "error-text", "data-field": "last_error" }, delivery.last_error) : null,
            retrying ? h("p", { class: "muted small" }, "next attempt ", timeEl(delivery.next_attempt_at)) : null,
          )
        : "—",
      { class: "cell-error cell-wide" },
    ),
    cell(
      "Actions",
      h(
        "button",
        // Also for a pending one: replay sends at once instead of waiting out the backoff.
        { type: "button", class: "btn btn-sm", "data-action": "replay", title: "Send this event again now" },
        "Replay",
      ),
      { class: "actions-cell cell-wide" },
    ),
  );
}

export function createDeliveries(panel) {
  const title = $('[data-role="deliveries-title"]', panel);
  const updated = $('[data-role="deliveries-updated"]', panel);
  const table = $("#webhook-deliveries-table", panel);
  const tbody = table.tBodies[0];
  const columns = table.tHead.rows[0].cells.length;
  const more = $('[data-role="deliveries-more"]', panel);
  const deliveries = new Map();
  let hook = null;
  let nextCursor = null;
  let seq = 0;
  let timer = 0;
  let pollFailed = false;
  const expected = new Set();

  const rowOf = (id) => tbody.querySelector(`tr[data-delivery-id="${CSS.escape(id)}"]`);

  function upsert(delivery, { highlight = true } = {}) {
    deliveries.set(delivery.id, delivery);
    const existing = rowOf(delivery.id);
    if (existing && existing.dataset.version === versionOf(delivery)) return;
    const row = deliveryRow(delivery);
    if (existing) {
      const hadFocus = existing.contains(document.activeElement);
      existing.replaceWith(row);
      if (hadFocus) $('[data-action="replay"]', row)?.focus();
    } else {
      tbody.querySelector("tr.empty")?.remove();
      const after = [...tbody.querySelectorAll("tr[data-delivery-id]")].find(
        (other) => newerFirst(delivery, deliveries.get(other.dataset.deliveryId)) < 0,
      );
      tbody.insertBefore(row, after || null);
    }
    if (expected.delete(delivery.id) || highlight) flash(row);
  }

  function showEmpty() {
    if (!deliveries.size) tbody.replaceChildren(emptyRow(columns, "No deliveries yet. Send a test event to make one."));
  }

  /** Reads the newest deliveries, as many as are shown, and merges them in. */
  async function load() {
    if (!hook) return;
    const mine = ++seq;
    const id = hook.id;
    const limit = Math.min(MAX_PAGE, Math.max(PAGE, deliveries.size));
    // Past the largest page, the cursor of the older rows already read stays the one to follow.
    const coversAll = deliveries.size <= limit;
    const page = await api(`${deliveriesPath(id)}?${new URLSearchParams({ limit: String(limit) })}`);
    if (mine !== seq || hook?.id !== id) return;
    // A first read shows quietly; later changes, and deliveries this page asked for, flash.
    const first = !deliveries.size;
    for (const delivery of [...(page.items || [])].sort(newerFirst)) {
      if (first) deliveries.set(delivery.id, delivery);
      else upsert(delivery);
    }
    if (first) {
      const list = [...deliveries.values()].sort(newerFirst);
      tbody.replaceChildren(...list.map(deliveryRow));
      for (const delivery of list) if (expected.delete(delivery.id)) flash(rowOf(delivery.id));
    }
    if (coversAll) nextCursor = page.next_cursor || null;
    more.hidden = !nextCursor;
    showEmpty();
    updated.replaceChildren("updated ", timeEl(new Date().toISOString()));
  }

  async function loadOlder() {
    if (!hook || !nextCursor) return;
    const id = hook.id;
    const params = new URLSearchParams({ limit: String(PAGE), cursor: nextCursor });
    const page = await busy(more, () => api(`${deliveriesPath(id)}?${params}`));
    if (hook?.id !== id) return;
    for (const delivery of page.items || []) upsert(delivery, { highlight: false });
    nextCursor = page.next_cursor || null;
    more.hidden = !nextCursor;
    showEmpty();
  }

  function schedule() {
    clearTimeout(timer);
    timer = 0;
    if (!hook) return;
    const pending = [...deliveries.values()].some((d) => d.outcome === "pending") || expected.size > 0;
    timer = setTimeout(poll, pending ? POLL_PENDING_MS : POLL_IDLE_MS);
  }

  async function poll() {
    timer = 0;
    if (hook && shown(panel)) {
      try {
        await load();
        pollFailed = false;
      } catch (error) {
        // Report the first failure of a run only; the next poll tries again anyway.
        if (!pollFailed) reportError(error);
        pollFailed = true;
      }
    }
    schedule();
  }

  /** Reads now (a click, a test just sent), then polls on from here. */
  async function refresh() {
    clearTimeout(timer);
    try {
      await load();
    } finally {
      schedule();
    }
  }

  async function replay(id, button) {
    if (!hook) return;
    try {
      const delivery = await busy(button, () =>
        api(deliveriesPath(hook.id, `/${encodeURIComponent(id)}/replay`), { method: "POST", body: {} }),
      );
      if (delivery?.id) {
        expected.add(delivery.id);
        upsert(delivery);
      }
      toast("Delivery queued again.", "success");
      await refresh();
    } catch (error) {
      reportError(error);
    }
  }

  tbody.addEventListener("click", (event) => {
    const button = event.target.closest('button[data-action="replay"]');
    if (button && !button.disabled) replay(button.closest("tr[data-delivery-id]").dataset.deliveryId, button);
  });
  more.addEventListener("click", () => loadOlder().catch(reportError));
  $('[data-role="deliveries-refresh"]', panel).addEventListener("click", () => refresh().catch(reportError));

  return {
    /** Shows this endpoint's deliveries (another's are dropped). */
    open(webhook) {
      const same = hook?.id === webhook.id;
      hook = webhook;
      title.textContent = `Deliveries to ${webhook.url}`;
      panel.dataset.forWebhook = webhook.id;
      panel.hidden = false;
      if (!same) {
        seq += 1;
        deliveries.clear();
        expected.clear();
        nextCursor = null;
        more.hidden = true;
        updated.replaceChildren();
        tbody.replaceChildren(emptyRow(columns, "Loading…"));
      }
      return refresh();
    },
    /** A delivery this page just caused (a test event): polled for until it shows. */
    expect(deliveryId) {
      if (deliveryId) expected.add(deliveryId);
    },
    close() {
      hook = null;
      seq += 1;
      clearTimeout(timer);
      timer = 0;
      deliveries.clear();
      expected.clear();
      delete panel.dataset.forWebhook;
      panel.hidden = true;
    },
    /** The endpoint changed (renamed, enabled): keep its deliveries, update the heading. */
    renamed(webhook) {
      if (hook?.id !== webhook.id) return;
      hook = webhook;
      title.textContent = `Deliveries to ${webhook.url}`;
    },
    refresh: () => (hook ? refresh() : Promise.resolve()),
    showing: () => hook?.id ?? null,
    stop() {
      clearTimeout(timer);
      timer = 0;
    },
  };
}
