/* A customer's own orders at /orders (and /orders/{id}, where lifecycle emails link): placing
 * an order and following its status live. */

import { api, fetchAll, idempotencyKey, orderPath } from "./api.js";
import { $, h, reducedMotion, template } from "./dom.js";
import { UUID, formatMoney, humanize, shortId } from "./format.js";
import { createOrdersFeed, handleStatusMessage } from "./orders.js";
import { ApiError, reportError, reportFirstFailure } from "./problem.js";
import { toast } from "./toast.js";

/** The order a link like /orders/{id} points at, if any. */
function orderIdFromPath() {
  const match = location.pathname.match(/^\/orders\/([^/]+)\/?$/);
  if (!match) return null;
  const id = decodeURIComponent(match[1]);
  if (!UUID.test(id)) {
    toast("That link does not point to a valid order.", "error");
    return null;
  }
  return id.toLowerCase();
}

function createPlaceOrder(form, { onPlaced }) {
  const select = $("#order-sku", form);
  const quantity = $("#order-quantity", form);
  const estimate = $('[data-role="estimate"]', form);
  const submit = $('button[type="submit"]', form);
  const items = new Map();
  // Kept across retries of the same order, so a resubmit after a lost answer is not a duplicate.
  let key = idempotencyKey();

  function optionText(item) {
    const stock = item.available === 0 ? " · out of stock" : item.available < item.low_stock_threshold ? ` · only ${item.available} left` : "";
    return `${item.name} — ${formatMoney(item.price)}${stock}`;
  }

  function updateEstimate() {
    const item = items.get(select.value);
    const qty = Number(quantity.value);
    estimate.textContent =
      item && Number.isInteger(qty) && qty > 0 ? `Total ${formatMoney({ amount: item.price.amount * qty, currency: item.price.currency })}` : "";
  }

  async function loadInventory() {
    const list = await fetchAll("/api/inventory");
    const previous = select.value;
    items.clear();
    list.forEach((item) => items.set(item.sku, item));
    select.replaceChildren(
      list.length ? h("option", { value: "" }, "Choose an item…") : h("option", { value: "" }, "No items available"),
      ...list.map((item) => h("option", { value: item.sku }, optionText(item))),
    );
    if (items.has(previous)) select.value = previous;
    updateEstimate();
  }

  async function place(event) {
    event.preventDefault();
    const qty = Number(quantity.value);
    if (!select.value) {
      toast("Choose an item to order.", "error");
      select.focus();
      return;
    }
    if (!Number.isInteger(qty) || qty < 1 || qty > 1000) {
      toast("The quantity must be a whole number from 1 to 1000.", "error");
      quantity.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Placing…";
    try {
      const order = await api("/api/orders", {
        method: "POST",
        body: { items: [{ sku: select.value, quantity: qty }] },
        headers: { "Idempotency-Key": key },
      });
      key = idempotencyKey();
      quantity.value = "1";
      updateEstimate();
      toast(`Order ${shortId(order.id)} placed; its status updates here as it moves along.`, "success");
      onPlaced(order);
    } catch (error) {
      reportError(error);
    } finally {
      submit.disabled = false;
      submit.textContent = "Place order";
    }
  }

  const changed = () => {
    key = idempotencyKey();
    updateEstimate();
  };
  select.addEventListener("change", changed);
  quantity.addEventListener("input", changed);
  form.addEventListener("submit", place);
  return { loadInventory };
}

export function mountCustomer(main) {
  main.replaceChildren(template("tpl-customer"));
  const highlightId = orderIdFromPath();
  const ordersSection = $('[data-slot="orders-table"]', main).closest("section");
  const feed = createOrdersFeed(ordersSection, { admin: false, highlightId });
  const placeForm = createPlaceOrder($("#place-order", main), {
    onPlaced(order) {
      feed.upsert(order, { force: true });
      feed.row(order.id)?.scrollIntoView({ block: "nearest", behavior: reducedMotion() ? "auto" : "smooth" });
      placeForm.loadInventory().catch(reportError);
    },
  });
  let revealed = !highlightId;

  // Emails link to /orders/{id}: bring that order into view once, reading it if it is not
  // on the first page.
  async function reveal() {
    if (revealed) return;
    revealed = true;
    if (!feed.has(highlightId)) {
      try {
        feed.upsert(await api(orderPath(highlightId)), { highlight: false });
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) toast("We could not find that order among yours.", "error");
        else reportError(error);
        return;
      }
    }
    feed.row(highlightId)?.scrollIntoView({ block: "center", behavior: reducedMotion() ? "auto" : "smooth" });
  }

  const friendly = {
    confirmed: "is confirmed",
    shipped: "has shipped",
    delivered: "was delivered",
    cancelled: "was cancelled",
    failed: "could not be completed",
  };

  return {
    async resync() {
      const results = await Promise.allSettled([feed.load(), placeForm.loadInventory()]);
      reportFirstFailure(results);
      if (results[0].status === "fulfilled") await reveal();
    },
    onMessage(target, message) {
      if (target !== "OrderStatusUpdated") return;
      const outcome = handleStatusMessage(feed, message);
      if ((outcome === "applied" || outcome === "gap") && friendly[message.status]) {
        const reason = message.failureReason ? ` (${humanize(message.failureReason)})` : "";
        toast(`Order ${shortId(message.orderId)} ${friendly[message.status]}${reason}.`, message.status === "failed" ? "error" : "info");
      }
    },
    destroy() {},
  };
}
