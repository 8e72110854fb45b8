/* The sales figures of the admin dashboard, read from the stats read model. */

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { STATUSES, badge, formatMoney, timeEl } from "./format.js";
import { reportError } from "./problem.js";

const STATS_INTERVAL_MS = 2000;

export function createStats(section) {
  const body = $('[data-role="stats-body"]', section);
  const updated = $('[data-role="stats-updated"]', section);
  let last = 0;
  let timer = 0;

  function kpi(label, value, note) {
    return h("div", { class: "kpi" }, h("p", { class: "kpi-label" }, label), h("p", { class: "kpi-value" }, value), note ? h("p", { class: "kpi-note" }, note) : null);
  }

  function render(data) {
    const byStatus = new Map(STATUSES.map((s) => [s, { count: 0, amounts: [] }]));
    for (const row of data.orders_by_status || []) {
      if (!byStatus.has(row.status)) byStatus.set(row.status, { count: 0, amounts: [] });
      const entry = byStatus.get(row.status);
      entry.count += Number(row.count) || 0;
      if (row.count) entry.amounts.push({ amount: row.amount, currency: row.currency });
    }
    const total = [...byStatus.values()].reduce((sum, e) => sum + e.count, 0);
    const max = Math.max(1, ...[...byStatus.values()].map((e) => e.count));
    const revenue = (data.revenue || []).filter((m) => m.amount !== undefined);
    const low = data.low_stock || [];

    const breakdown = h(
      "ul",
      { class: "status-bars" },
      [...byStatus].map(([status, entry]) => {
        const fill = h("span", { class: `bar-fill bar-${STATUSES.includes(status) ? status : "other"}` });
        fill.style.width = `${(entry.count / max) * 100}%`; // CSSOM, which the page's CSP allows
        return h(
          "li",
          null,
          h("span", { class: "status-name" }, badge(status)),
          h("span", { class: "bar", "aria-hidden": "true" }, fill),
          h("span", { class: "status-count num" }, String(entry.count)),
          h("span", { class: "status-amount num muted" }, entry.amounts.length ? entry.amounts.map(formatMoney).join(" + ") : "—"),
        );
      }),
    );

    const lowList = low.length
      ? h(
          "ul",
          { class: "low-list" },
          low.map((item) =>
            h(
              "li",
              null,
              h("span", null, h("span", { class: "mono" }, item.sku), " ", item.name),
              h("span", { class: "num" }, `${item.available} / ${item.low_stock_threshold}`),
            ),
          ),
        )
      : h("p", { class: "muted" }, "Every item is at or above its threshold.");

    body.replaceChildren(
      h(
        "div",
        { class: "kpis" },
        kpi("Revenue", revenue.length ? revenue.map(formatMoney).join(" · ") : formatMoney({ amount: 0, currency: "USD" }), "confirmed, shipped and delivered"),
        kpi("Orders", String(total), "all statuses"),
        kpi("Low stock", String(low.length), low.length === 1 ? "item below threshold" : "items below threshold"),
      ),
      h(
        "div",
        { class: "stats-grid" },
        h("div", null, h("h3", null, "Orders by status"), breakdown),
        h("div", null, h("h3", null, "Low-stock items"), lowList),
      ),
    );
    updated.replaceChildren("updated ", timeEl(new Date().toISOString()));
  }

  async function refreshNow() {
    clearTimeout(timer);
    timer = 0;
    last = Date.now();
    render(await api("/api/admin/stats"));
  }

  /** Order events come in bursts; read the stats at most once per interval, trailing. */
  function request() {
    if (timer) return;
    const wait = Math.max(0, last + STATS_INTERVAL_MS - Date.now());
    timer = setTimeout(() => {
      timer = 0;
      refreshNow().catch(reportError);
    }, wait);
  }

  return { refreshNow, request, cancel: () => clearTimeout(timer) };
}
