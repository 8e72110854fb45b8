/* The orders table, one for both modes: the admin's live feed of every order and a customer's
 * own orders. Its columns are declared once, so the header and the rows cannot drift apart. */

import { api, orderPath } from "./api.js";
import { $, cell, emptyRow, flash, h, template } from "./dom.js";
import { badge, formatMoney, humanize, millis, shortId, timeEl } from "./format.js";
import { resync } from "./hub.js";
import { ApiError, reportError } from "./problem.js";
import { timeline } from "./timeline.js";
import { toast } from "./toast.js";

const ORDERS_PAGE = 50;
// Mirrors the server's rules, so buttons are only offered when the click can succeed.
const LEGAL = {
  ship: (status) => status === "confirmed",
  deliver: (status) => status === "shipped",
  cancel: (status) => status === "pending" || status === "reserved" || status === "confirmed",
};
const ACTION_DONE = { ship: "shipped", deliver: "delivered", cancel: "cancelled" };

function itemsSummary(order) {
  if (!Array.isArray(order.items)) {
    const count = order.item_count ?? 0;
    return `${count} item${count === 1 ? "" : "s"}`;
  }
  const lines = order.items.map((line) => `${line.quantity} × ${line.name}`);
  const shown = lines.slice(0, 2).join(", ");
  const more = lines.length > 2 ? ` +${lines.length - 2} more` : "";
  return h("span", { class: "items", title: lines.join("\n") }, shown + more);
}

function actionButtons(order, admin) {
  const actions = admin ? ["ship", "deliver", "cancel"] : ["cancel"];
  const labels = { ship: "Ship", deliver: "Deliver", cancel: "Cancel" };
  return h(
    "div",
    { class: "actions" },
    actions.map((action) =>
      h(
        "button",
        {
          type: "button",
          class: `btn btn-sm${action === "cancel" ? " btn-danger" : ""}`,
          "data-action": action,
          disabled: !LEGAL[action](order.status),
        },
        labels[action],
      ),
    ),
  );
}

/**
 * The columns, in order. `only` keeps a column to one mode: an admin sees whose order it is and
 * when it last changed, a customer when they placed it. `hideLabel` keeps a header for screen
 * readers only; `headClass` matches the cells' alignment.
 */
const COLUMNS = [
  {
    label: "Order",
    td: (order) =>
      cell(
        "Order",
        h("button", { type: "button", class: "link mono", "data-role": "open", title: `Timeline of order ${order.id}` }, shortId(order.id)),
      ),
  },
  {
    label: "Customer",
    only: "admin",
    td: (order) => cell("Customer", h("span", { class: "mono", title: order.customer_id }, shortId(order.customer_id))),
  },
  { label: "Placed", only: "customer", td: (order) => cell("Placed", timeEl(order.created_at)) },
  { label: "Items", td: (order) => cell("Items", itemsSummary(order), { class: "cell-items cell-wide" }) },
  { label: "Total", headClass: "num", td: (order) => cell("Total", formatMoney(order.total), { class: "num" }) },
  { label: "Status", td: (order) => cell("Status", badge(order.status), { "data-field": "status" }) },
  {
    label: "Failure",
    td: (order) =>
      cell("Failure", order.failure_reason ? humanize(order.failure_reason) : "—", {
        "data-field": "failure_reason",
        class: order.failure_reason ? "failure" : "muted",
      }),
  },
  { label: "Updated", only: "admin", td: (order) => cell("Updated", timeEl(order.updated_at)) },
  {
    label: "Actions",
    hideLabel: true,
    td: (order, admin) => cell("Actions", actionButtons(order, admin), { class: "actions-cell cell-wide" }),
  },
];

const columnsFor = (admin) => COLUMNS.filter((column) => !column.only || column.only === (admin ? "admin" : "customer"));

/** Puts the table (from its one template) into the section's slot and heads it for the mode. */
function mountTable(section, admin) {
  const slot = $('[data-slot="orders-table"]', section);
  slot.replaceWith(template("tpl-orders-table"));
  const table = $("#orders", section);
  const columns = columnsFor(admin);
  table.tHead.rows[0].replaceChildren(
    ...columns.map((column) =>
      h(
        "th",
        { scope: "col", class: column.headClass },
        column.hideLabel ? h("span", { class: "visually-hidden" }, column.label) : column.label,
      ),
    ),
  );
  return { tbody: table.tBodies[0], columns: columns.length, loadMore: $('[data-role="load-more"]', section) };
}

function orderRow(order, { admin, highlightId }) {
  const highlighted = order.id === highlightId;
  return h(
    "tr",
    {
      "data-order-id": order.id,
      class: highlighted ? "order-row highlight" : "order-row",
      "aria-current": highlighted ? "true" : null,
    },
    columnsFor(admin).map((column) => column.td(order, admin)),
  );
}

/**
 * The orders table of either mode. It owns a map of the orders it shows, merges REST pages and
 * hub messages by `updated_at` so an older answer never overwrites a newer one, and reports
 * gaps (a message whose previous status is not the one shown) so the caller can re-read.
 */
export function createOrdersFeed(section, { admin, highlightId = null, onChange = () => {} }) {
  const { tbody, columns, loadMore } = mountTable(section, admin);
  const filterSelect = $('[data-role="status-filter"]', section);
  const referenceInput = $('[data-role="reference-search"]', section);
  const orders = new Map();
  const fetching = new Set();
  let nextCursor = null;
  let loadSeq = 0;

  const filter = () => filterSelect?.value || "";
  // A complete reference only; a half-typed one filters nothing yet.
  const reference = () => {
    const typed = (referenceInput?.value || "").trim().toUpperCase();
    return /^[0-9A-F]{10}$/.test(typed) ? typed : "";
  };
  const filtering = () => Boolean(filter() || reference());
  const matches = (order) =>
    (!filter() || order.status === filter()) && (!reference() || (order.id !== undefined && shortId(order.id) === reference()));
  const rowOf = (id) => tbody.querySelector(`tr[data-order-id="${CSS.escape(id)}"]`);
  const render = (order) => orderRow(order, { admin, highlightId });

  function query(cursor) {
    const params = new URLSearchParams({ limit: String(ORDERS_PAGE) });
    if (filter()) params.set("status", filter());
    if (reference()) params.set("reference", reference());
    if (cursor) params.set("cursor", cursor);
    return `/api/orders?${params}`;
  }

  // REST may answer with an order older than a hub message already applied: keep the newer
  // status but take the REST copy's lines, which messages do not carry.
  function newest(local, remote) {
    if (!local || millis(local.updated_at) <= millis(remote.updated_at)) return remote;
    return { ...remote, status: local.status, failure_reason: local.failure_reason, updated_at: local.updated_at };
  }

  function sorted() {
    return [...orders.values()].sort((a, b) => millis(b.created_at) - millis(a.created_at));
  }

  function renderAll(changed = new Set()) {
    const list = sorted();
    if (!list.length) {
      const text = reference()
        ? `No order ${reference()}${filter() ? ` that is ${filter()}` : ""}.`
        : filter() ? `No ${filter()} orders.` : admin ? "No orders yet." : "You have no orders yet. Place one above.";
      tbody.replaceChildren(emptyRow(columns, text));
    } else {
      const rows = list.map(render);
      tbody.replaceChildren(...rows);
      rows.forEach((row) => changed.has(row.dataset.orderId) && flash(row));
    }
    loadMore.hidden = !nextCursor;
  }

  async function load() {
    const seq = ++loadSeq;
    const page = await api(query());
    if (seq !== loadSeq) return; // a newer load (say, after a filter change) wins
    const items = page.items || [];
    const fresh = new Map();
    const changed = new Set();
    for (const remote of items) {
      const local = orders.get(remote.id);
      const merged = newest(local, remote);
      if (local && local.status !== merged.status) changed.add(remote.id);
      fresh.set(remote.id, merged);
    }
    // Orders known locally but missing from the page were placed after it was read, or are on
    // older pages; with a filter, ones inside the page's range no longer match it.
    const newestAt = items.length ? millis(items[0].created_at) : Infinity;
    const oldestAt = items.length ? millis(items[items.length - 1].created_at) : -Infinity;
    for (const [id, local] of orders) {
      if (fresh.has(id) || !matches(local)) continue;
      const at = millis(local.created_at);
      if (!filtering() || at > newestAt || (page.next_cursor && at < oldestAt)) fresh.set(id, local);
    }
    orders.clear();
    fresh.forEach((order, id) => orders.set(id, order));
    nextCursor = page.next_cursor || null;
    renderAll(changed);
  }

  async function loadOlder() {
    if (!nextCursor) return;
    loadMore.disabled = true;
    try {
      const page = await api(query(nextCursor));
      for (const remote of page.items || []) orders.set(remote.id, newest(orders.get(remote.id), remote));
      nextCursor = page.next_cursor || null;
      renderAll();
    } finally {
      loadMore.disabled = false;
    }
  }

  function insertSorted(row, order) {
    const at = millis(order.created_at);
    for (const other of tbody.querySelectorAll("tr[data-order-id]")) {
      const known = orders.get(other.dataset.orderId);
      if (known && millis(known.created_at) < at) {
        tbody.insertBefore(row, other);
        return;
      }
    }
    tbody.append(row);
  }

  /** Shows one order; `force` for answers to this page's own actions, which are current. */
  function upsert(order, { force = false, highlight = true } = {}) {
    const local = orders.get(order.id);
    const next = force ? order : newest(local, order);
    orders.set(order.id, next);
    const row = render(next);
    const existing = rowOf(order.id);
    if (existing) {
      const focusedAction = existing.contains(document.activeElement) ? document.activeElement.dataset.action : null;
      existing.replaceWith(row);
      if (focusedAction) $(`[data-action="${focusedAction}"]`, row)?.focus();
    } else {
      tbody.querySelector("tr.empty")?.remove();
      insertSorted(row, next);
    }
    if (highlight && (!local || local.status !== next.status)) flash(row);
    return row;
  }

  /** Applies OrderStatusUpdated; answers "unknown", "stale", "same", "applied" or "gap". */
  function applyStatus(message) {
    const local = orders.get(message.orderId);
    if (!local) return "unknown";
    if (local.status === message.status) return "same"; // e.g. the echo of our own click
    if (millis(message.at) < millis(local.updated_at)) return "stale";
    const gap = message.previousStatus != null && message.previousStatus !== local.status;
    upsert(
      { ...local, status: message.status, failure_reason: message.failureReason ?? null, updated_at: message.at },
      { force: true },
    );
    return gap ? "gap" : "applied";
  }

  /** An order the table has not seen (a status change for it came first): read it. */
  async function fetchAndShow(id) {
    if (fetching.has(id) || orders.has(id)) return;
    fetching.add(id);
    try {
      const order = await api(orderPath(id));
      if (matches(order)) upsert(order);
    } finally {
      fetching.delete(id);
    }
  }

  function placed(message) {
    if (orders.has(message.orderId) || !matches({ status: message.status })) return;
    upsert({
      id: message.orderId,
      customer_id: message.customerId,
      status: message.status,
      failure_reason: null,
      items: null,
      item_count: message.itemCount,
      total: message.total,
      created_at: message.placedAt,
      updated_at: message.placedAt,
    });
  }

  async function runAction(id, action, button) {
    const row = rowOf(id);
    row?.querySelectorAll("button[data-action]").forEach((b) => {
      b.disabled = true;
    });
    button.classList.add("busy");
    try {
      const order = await api(orderPath(id, `/${action}`), { method: "POST", body: {} });
      upsert(order, { force: true });
      toast(`Order ${shortId(id)} ${ACTION_DONE[action]}.`, "success");
      onChange();
      timeline.refreshIfOpen(id);
    } catch (error) {
      reportError(error);
      // 409 says the order moved on meanwhile: show where it is now.
      try {
        upsert(await api(orderPath(id)), { force: true });
      } catch (reload) {
        if (orders.has(id)) upsert(orders.get(id), { force: true, highlight: false });
        if (!(reload instanceof ApiError && reload.status === 404)) reportError(reload);
      }
    }
  }

  tbody.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-order-id]");
    if (!row) return;
    const button = event.target.closest("button[data-action]");
    if (button) {
      if (!button.disabled) runAction(row.dataset.orderId, button.dataset.action, button);
      return;
    }
    // Clicks beside the buttons (or on a disabled one) should not open the timeline.
    if (event.target.closest(".actions-cell, a, input, select, summary")) return;
    timeline.open(row.dataset.orderId, orders.get(row.dataset.orderId));
  });

  loadMore.addEventListener("click", () => loadOlder().catch(reportError));
  const reload = () => {
    orders.clear();
    nextCursor = null;
    tbody.replaceChildren(emptyRow(columns, "Loading…"));
    load().catch(reportError);
  };
  filterSelect?.addEventListener("change", reload);
  // Searches once a whole reference is typed, and shows everything again when it is cleared.
  let searched = "";
  referenceInput?.addEventListener("input", () => {
    if (reference() === searched) return;
    const typed = referenceInput.value.trim();
    if (typed && !reference()) return;
    searched = reference();
    reload();
  });
  $('[data-role="refresh"]', section)?.addEventListener("click", () => load().catch(reportError));

  tbody.replaceChildren(emptyRow(columns, "Loading…"));

  return {
    load,
    upsert,
    applyStatus,
    fetchAndShow,
    placed,
    has: (id) => orders.has(id),
    get: (id) => orders.get(id),
    row: rowOf,
    matches,
  };
}

/** The shared handling of OrderStatusUpdated for both modes. */
export function handleStatusMessage(feed, message) {
  const outcome = feed.applyStatus(message);
  if (outcome === "gap") resync.request();
  if (outcome === "unknown" && (!message.status || feed.matches({ status: message.status }))) {
    feed.fetchAndShow(message.orderId).catch(reportError);
  }
  timeline.refreshIfOpen(message.orderId);
  return outcome;
}
