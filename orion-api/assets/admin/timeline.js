/* The drawer that shows one order's saga timeline: its events, the saga's step, deadline and
 * transitions. One drawer for the page, opened from either mode's orders table. */

import { api, orderPath } from "./api.js";
import { $, h } from "./dom.js";
import { UUID, badge, formatMoney, humanize, millis, shortId, timeEl } from "./format.js";
import { ApiError, reportError } from "./problem.js";

export const timeline = (() => {
  const section = document.getElementById("timeline");
  const body = document.getElementById("timeline-body");
  const title = document.getElementById("timeline-title");
  const backdrop = document.getElementById("timeline-backdrop");
  let openId = null;
  let seq = 0;
  let refreshTimer = 0;
  let returnFocus = null;

  function definition(pairs) {
    return h(
      "dl",
      { class: "facts" },
      pairs.filter(Boolean).map(([term, value]) => h("div", null, h("dt", null, term), h("dd", null, value))),
    );
  }

  function summary(order) {
    const lines = Array.isArray(order.items) ? order.items : [];
    return [
      definition([
        ["Status", badge(order.status)],
        order.failure_reason ? ["Failure", humanize(order.failure_reason)] : null,
        ["Total", formatMoney(order.total)],
        ["Placed", timeEl(order.created_at, { full: true })],
        ["Updated", timeEl(order.updated_at, { full: true })],
        ["Order id", h("span", { class: "mono break" }, order.id)],
      ]),
      lines.length
        ? h(
            "ul",
            { class: "lines" },
            lines.map((line) =>
              h(
                "li",
                null,
                h("span", null, `${line.quantity} × ${line.name} `, h("span", { class: "mono muted" }, line.sku)),
                h("span", { class: "num" }, formatMoney(line.unit_price)),
              ),
            ),
          )
        : null,
    ];
  }

  function jsonDetails(label, data) {
    if (data == null || (typeof data === "object" && !Object.keys(data).length)) return null;
    const text = typeof data === "string" ? data : JSON.stringify(data, null, 2);
    return h("details", { class: "json" }, h("summary", null, label), h("pre", null, text));
  }

  function events(list) {
    const ordered = [...list].sort((a, b) => millis(a.time) - millis(b.time));
    if (!ordered.length) return h("p", { class: "muted" }, "No events recorded yet.");
    return h(
      "ol",
      { class: "events" },
      ordered.map((event) =>
        h(
          "li",
          { class: "event" },
          h("div", { class: "event-head" }, h("code", { class: "event-type" }, event.type), timeEl(event.time, { full: true })),
          jsonDetails("Data", event.data),
        ),
      ),
    );
  }

  function saga(view) {
    if (!view) return h("p", { class: "muted" }, "The order's saga has not started yet.");
    const transitions = [...(view.transitions || [])].sort((a, b) => millis(a.time) - millis(b.time));
    return [
      definition([
        ["Step", h("code", null, view.step)],
        ["Deadline", view.deadline ? timeEl(view.deadline, { full: true }) : "none running"],
        ["Stock", humanize(view.stock)],
        ["Payment", humanize(view.payment)],
        view.failure_reason ? ["Failure", humanize(view.failure_reason)] : null,
      ]),
      h("h4", null, `Transitions (${transitions.length})`),
      transitions.length
        ? h(
            "ol",
            { class: "events transitions" },
            transitions.map((t) =>
              h(
                "li",
                { class: "event" },
                h("div", { class: "event-head" }, h("code", { class: "event-type" }, t.event), timeEl(t.time, { full: true })),
                h("p", { class: "transition" }, h("code", null, t.from), " → ", h("code", null, t.to)),
                t.commands?.length ? h("p", { class: "chips" }, t.commands.map((c) => h("span", { class: "chip" }, c))) : null,
              ),
            ),
          )
        : h("p", { class: "muted" }, "No transitions yet."),
    ];
  }

  function renderTimeline(order, data) {
    title.textContent = `Order ${shortId(order.id)}`;
    body.replaceChildren(
      h("div", { class: "drawer-section" }, summary(order)),
      h("div", { class: "drawer-section" }, h("h3", null, `Events (${(data.events || []).length})`), events(data.events || [])),
      h("div", { class: "drawer-section" }, h("h3", null, "Saga"), saga(data.saga)),
    );
  }

  async function load(id, { quiet = false } = {}) {
    const mine = ++seq;
    if (!quiet) body.replaceChildren(h("p", { class: "muted" }, "Loading timeline…"));
    try {
      const [order, data] = await Promise.all([api(orderPath(id)), api(orderPath(id, "/timeline"))]);
      if (mine !== seq || openId !== id) return;
      renderTimeline(order, data);
    } catch (error) {
      if (mine !== seq || openId !== id) return;
      if (!quiet) body.replaceChildren(h("p", { class: "banner banner-error" }, error instanceof ApiError ? error.message : "Could not load the timeline."));
      reportError(error);
    }
  }

  function open(id, known) {
    if (!UUID.test(id)) return;
    if (section.hidden) returnFocus = document.activeElement;
    openId = id;
    title.textContent = `Order ${shortId(id)}`;
    section.hidden = false;
    backdrop.hidden = false;
    document.body.classList.add("drawer-open");
    if (known) renderTimelinePlaceholder(known);
    load(id, { quiet: Boolean(known) });
    section.focus({ preventScroll: true });
  }

  // Show what the table already knows at once; the timeline fills in when it arrives.
  function renderTimelinePlaceholder(order) {
    body.replaceChildren(
      h("div", { class: "drawer-section" }, summary(order)),
      h("div", { class: "drawer-section" }, h("p", { class: "muted" }, "Loading timeline…")),
    );
  }

  function close() {
    if (section.hidden) return;
    openId = null;
    seq += 1;
    clearTimeout(refreshTimer);
    section.hidden = true;
    backdrop.hidden = true;
    document.body.classList.remove("drawer-open");
    if (returnFocus && document.contains(returnFocus)) returnFocus.focus({ preventScroll: true });
    returnFocus = null;
  }

  function refreshIfOpen(id) {
    if (id !== openId) return;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => openId === id && load(id, { quiet: true }), 400);
  }

  $('[data-role="close-timeline"]', section).addEventListener("click", close);
  backdrop.addEventListener("click", close);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !section.hidden) close();
  });

  return { open, close, refreshIfOpen };
})();
