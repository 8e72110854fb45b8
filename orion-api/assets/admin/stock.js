/* The stock table of the admin dashboard: live quantities from the hub, and restocking. */

import { api, fetchAll } from "./api.js";
import { $, cell, emptyRow, flash, h } from "./dom.js";
import { formatMoney } from "./format.js";
import { reportError } from "./problem.js";
import { toast } from "./toast.js";

export function createStock(section, { onChange = () => {}, onLowCount = () => {} }) {
  const table = $("#stock", section);
  const tbody = table.tBodies[0];
  const columns = table.tHead.rows[0].cells.length;
  const items = new Map();
  const fetching = new Set();

  const rowOf = (sku) => tbody.querySelector(`tr[data-sku="${CSS.escape(sku)}"]`);
  const isLow = (item) => item.available < item.low_stock_threshold;

  function createRow(item) {
    const input = h("input", {
      type: "number",
      min: "1",
      max: "1000000",
      step: "1",
      inputmode: "numeric",
      placeholder: "Qty",
      "data-action": "restock-quantity",
      "aria-label": `Quantity to add to ${item.sku}`,
    });
    return h(
      "tr",
      { "data-sku": item.sku },
      cell(
        "Item",
        h(
          "div",
          { class: "item-name" },
          h("span", { class: "mono sku" }, item.sku),
          h("span", { "data-field": "name" }, item.name),
          h("span", { class: "low-tag", "data-role": "low-tag", hidden: true }, "Low stock"),
        ),
        { class: "cell-wide" },
      ),
      cell("Available", "", { class: "num", "data-field": "available" }),
      cell("Reserved", "", { class: "num", "data-field": "reserved" }),
      cell("Threshold", "", { class: "num", "data-field": "low_stock_threshold" }),
      cell("Price", "", { class: "num", "data-field": "price" }),
      cell(
        "Restock",
        h("div", { class: "restock" }, input, h("button", { type: "button", class: "btn btn-sm", "data-action": "restock" }, "Restock")),
        { class: "restock-cell cell-wide" },
      ),
    );
  }

  // Cells are updated in place so a quantity being typed into a row survives live updates.
  function fill(row, item) {
    const set = (field, text) => {
      const el = row.querySelector(`[data-field="${field}"]`);
      if (el.textContent !== text) el.textContent = text;
    };
    set("name", item.name ?? "");
    set("available", String(item.available));
    set("reserved", String(item.reserved));
    set("low_stock_threshold", String(item.low_stock_threshold));
    set("price", formatMoney(item.price));
    row.classList.toggle("low", isLow(item));
    row.querySelector('[data-role="low-tag"]').hidden = !isLow(item);
  }

  function upsert(item, { highlight = false } = {}) {
    const before = items.get(item.sku);
    items.set(item.sku, item);
    let row = rowOf(item.sku);
    if (!row) {
      row = createRow(item);
      tbody.querySelector("tr.empty")?.remove();
      const after = [...tbody.querySelectorAll("tr[data-sku]")].find((r) => r.dataset.sku > item.sku);
      tbody.insertBefore(row, after || null);
    }
    fill(row, item);
    if (highlight && (!before || before.available !== item.available || before.reserved !== item.reserved)) flash(row);
    countLow();
  }

  function countLow() {
    onLowCount([...items.values()].filter(isLow).length);
  }

  async function load() {
    const list = await fetchAll("/api/inventory");
    const skus = new Set(list.map((item) => item.sku));
    for (const sku of [...items.keys()]) {
      if (!skus.has(sku)) {
        items.delete(sku);
        rowOf(sku)?.remove();
      }
    }
    // Only rows that changed since the last read flash, not the whole table on first load.
    list.forEach((item) => upsert(item, { highlight: items.has(item.sku) }));
    if (!list.length) tbody.replaceChildren(emptyRow(columns, "No items in the catalog."));
    countLow();
  }

  /** InventoryUpdated carries the item as it is now (but not its name). */
  function apply(message) {
    const known = items.get(message.sku);
    if (!known) {
      fetchItem(message.sku).catch(reportError);
      return;
    }
    upsert(
      {
        ...known,
        available: message.available,
        reserved: message.reserved,
        low_stock_threshold: message.lowStockThreshold,
        price: message.price ?? known.price,
      },
      { highlight: true },
    );
  }

  function lowAlert(message) {
    const known = items.get(message.sku);
    if (known) {
      upsert({ ...known, available: message.available, low_stock_threshold: message.lowStockThreshold }, { highlight: true });
    }
    const name = known ? ` (${known.name})` : "";
    toast(`Low stock: ${message.sku}${name} has ${message.available} available, below its threshold of ${message.lowStockThreshold}.`, "warn", 8000);
  }

  async function fetchItem(sku) {
    if (fetching.has(sku)) return;
    fetching.add(sku);
    try {
      upsert(await api(`/api/inventory/${encodeURIComponent(sku)}`), { highlight: true });
    } finally {
      fetching.delete(sku);
    }
  }

  async function restock(row, button) {
    const sku = row.dataset.sku;
    const input = $('[data-action="restock-quantity"]', row);
    const quantity = Number(input.value);
    if (!input.value || !Number.isInteger(quantity) || quantity < 1 || quantity > 1_000_000) {
      toast("Enter a whole number from 1 to 1,000,000 to restock.", "error");
      input.focus();
      return;
    }
    button.disabled = true;
    button.classList.add("busy");
    try {
      const item = await api(`/api/inventory/${encodeURIComponent(sku)}/restock`, { method: "POST", body: { quantity } });
      upsert(item, { highlight: true });
      input.value = "";
      toast(`Restocked ${sku} with ${quantity}; ${item.available} available now.`, "success");
      onChange();
    } catch (error) {
      reportError(error);
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }

  tbody.addEventListener("click", (event) => {
    const button = event.target.closest('button[data-action="restock"]');
    if (button && !button.disabled) restock(button.closest("tr[data-sku]"), button);
  });
  tbody.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !event.target.matches('[data-action="restock-quantity"]')) return;
    event.preventDefault();
    const row = event.target.closest("tr[data-sku]");
    const button = $('button[data-action="restock"]', row);
    if (!button.disabled) restock(row, button);
  });
  $('[data-role="refresh"]', section)?.addEventListener("click", () => load().catch(reportError));

  tbody.replaceChildren(emptyRow(columns, "Loading…"));
  return { load, apply, lowAlert };
}
