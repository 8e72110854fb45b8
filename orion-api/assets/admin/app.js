/* Orion admin panel and customer order page.
 *
 * One page, two modes chosen by the path: /admin… is the admin dashboard, /orders and
 * /orders/{id} are a customer's own orders. Everything goes through the public REST API and the
 * SignalR hub at /hubs/orders; the page keeps no state the server does not also have, so after any
 * interruption of live updates it simply re-reads over REST.
 *
 * The page is served with `style-src 'self'` and `script-src 'self'`: no inline styles or
 * handlers, and every value from the server reaches the DOM as text (never innerHTML).
 */
(() => {
  "use strict";

  const MODE = location.pathname.startsWith("/admin") ? "admin" : "customer";
  const STATUSES = ["pending", "reserved", "confirmed", "shipped", "delivered", "cancelled", "failed"];
  // Mirrors the server's rules, so buttons are only offered when the click can succeed.
  const LEGAL = {
    ship: (status) => status === "confirmed",
    deliver: (status) => status === "shipped",
    cancel: (status) => status === "pending" || status === "reserved" || status === "confirmed",
  };
  const ACTION_DONE = { ship: "shipped", deliver: "delivered", cancel: "cancelled" };
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const STATS_INTERVAL_MS = 2000;
  const ORDERS_PAGE = 50;

  /* ------------------------------------------------------------------ DOM helpers */

  const $ = (selector, root = document) => root.querySelector(selector);

  /** Builds an element; strings become text nodes, so data can never become markup. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "class") el.className = value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child == null || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function template(id) {
    return document.getElementById(id).content.cloneNode(true);
  }

  /** A table cell that carries its column name, shown as a label when rows stack on phones. */
  function cell(label, content, attrs = {}) {
    return h("td", { "data-label": label, ...attrs }, content);
  }

  function emptyRow(columns, text) {
    return h("tr", { class: "empty" }, h("td", { colspan: columns }, text));
  }

  /** Restarts the highlight animation even when the element is already highlighted. */
  function flash(el) {
    el.classList.remove("flash");
    void el.offsetWidth;
    el.classList.add("flash");
    el.addEventListener("animationend", () => el.classList.remove("flash"), { once: true });
  }

  const reducedMotion = () => window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  /* ------------------------------------------------------------------ formatting */

  const moneyFormats = new Map();

  function moneyFormat(currency) {
    if (!moneyFormats.has(currency)) {
      let format;
      try {
        format = new Intl.NumberFormat(undefined, { style: "currency", currency });
      } catch {
        format = null; // not an ISO code this browser knows
      }
      moneyFormats.set(currency, format);
    }
    return moneyFormats.get(currency);
  }

  /** Amounts are integers in minor units; the currency says how many digits those are. */
  function formatMoney(money) {
    if (!money || typeof money.amount !== "number") return "—";
    const format = moneyFormat(money.currency);
    if (!format) return `${money.amount} ${money.currency} (minor units)`;
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(money.amount / 10 ** digits);
  }

  const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
  const shortDateTimeFormat = new Intl.DateTimeFormat(undefined, {
    month: "short",
    day: "numeric",
    hour: "numeric",
    minute: "2-digit",
  });

  const millis = (iso) => {
    const t = Date.parse(iso);
    return Number.isNaN(t) ? 0 : t;
  };

  /** A <time> element: compact text (time only for today), the full timestamp as a tooltip. */
  function timeEl(iso, { full = false } = {}) {
    const t = Date.parse(iso);
    if (!iso || Number.isNaN(t)) return "—";
    const date = new Date(t);
    const today = date.toDateString() === new Date().toDateString();
    const text = full ? dateTimeFormat.format(date) : today ? timeFormat.format(date) : shortDateTimeFormat.format(date);
    return h("time", { datetime: iso, title: dateTimeFormat.format(date) }, text);
  }

  // An id's short reference, as the server makes it (OrderId::reference): its last ten hex digits.
  // A UUID v7 starts with a timestamp that every order of a minute shares; its end is random.
  const shortId = (id) => (typeof id === "string" ? id.replaceAll("-", "").slice(-10).toUpperCase() : "—");
  const humanize = (word) => (word ? String(word).replaceAll("_", " ") : "—");

  function badge(status) {
    const known = STATUSES.includes(status) ? ` badge-${status}` : "";
    return h("span", { class: `badge${known}` }, status ?? "unknown");
  }

  /* ------------------------------------------------------------------ toasts */

  const toastArea = document.getElementById("toasts");
  const recentToasts = new Map();

  /** A transient message in the aria-live area; repeats within a few seconds are dropped. */
  function toast(message, kind = "info", timeoutMs) {
    const now = Date.now();
    if (now - (recentToasts.get(message) || 0) < 4000) return;
    recentToasts.set(message, now);
    if (recentToasts.size > 50) {
      for (const [text, at] of recentToasts) if (now - at > 4000) recentToasts.delete(text);
    }
    const close = h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
    const el = h("div", { class: `toast toast-${kind}` }, h("p", null, message), close);
    const remove = () => el.remove();
    close.addEventListener("click", remove);
    toastArea.append(el);
    while (toastArea.children.length > 4) toastArea.firstElementChild.remove();
    setTimeout(remove, timeoutMs ?? (kind === "error" ? 9000 : 5000));
  }

  /* ------------------------------------------------------------------ errors */

  /** A problem+json answer (or a failure to get one), with a message fit to show. */
  class ApiError extends Error {
    constructor(problem) {
      const fields = Array.isArray(problem.errors)
        ? problem.errors.map((e) => `${e.field}: ${e.message}`).join("; ")
        : "";
      const base = problem.detail || problem.title || "The request failed.";
      super(fields ? `${base} (${fields})` : base);
      this.problem = problem;
      this.status = problem.status || 0;
    }
  }

  /** The session is over; the login form is already showing, so callers stay quiet. */
  class SessionEnded extends Error {}

  function reportError(error) {
    if (error instanceof SessionEnded) return;
    if (error instanceof ApiError) {
      toast(error.message, "error");
      return;
    }
    console.warn(error);
    toast("Something went wrong in the page. Reloading may help.", "error");
  }

  function reportFirstFailure(results) {
    const failed = results.find((r) => r.status === "rejected");
    if (failed) reportError(failed.reason);
  }

  /* ------------------------------------------------------------------ session */

  /** Tokens live in sessionStorage: a reload keeps the login, closing the tab ends it. */
  const session = (() => {
    const KEY = "orion.session";
    let tokens = load();
    let refreshing = null;
    let timer = 0;
    let onEnded = () => {};

    function load() {
      try {
        const stored = JSON.parse(sessionStorage.getItem(KEY));
        return stored && stored.access_token && stored.refresh_token ? stored : null;
      } catch {
        return null;
      }
    }

    function start(response) {
      const lifetime = Math.max(1, Number(response.expires_in) || 0) * 1000;
      tokens = {
        access_token: response.access_token,
        refresh_token: response.refresh_token,
        expires_at: Date.now() + lifetime,
        lifetime,
      };
      sessionStorage.setItem(KEY, JSON.stringify(tokens));
      schedule();
    }

    // Refresh a little before expiry so requests and hub reconnects never carry a dead token.
    function margin() {
      return Math.min(60_000, (tokens?.lifetime || 300_000) * 0.2);
    }

    function schedule(delay) {
      clearTimeout(timer);
      if (!tokens) return;
      const wait = delay ?? Math.max(0, tokens.expires_at - margin() - Date.now());
      timer = setTimeout(() => {
        refresh().catch((error) => {
          // A transient failure (network, 503): try again soon, while the token still works.
          if (!(error instanceof SessionEnded)) schedule(10_000);
        });
      }, wait);
    }

    function refresh() {
      // Refresh tokens are single use: concurrent callers must share one exchange.
      refreshing ??= exchange().finally(() => {
        refreshing = null;
      });
      return refreshing;
    }

    async function exchange() {
      if (!tokens) throw new SessionEnded();
      let response;
      try {
        response = await fetch("/api/auth/refresh", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ refresh_token: tokens.refresh_token }),
        });
      } catch {
        throw new ApiError({ title: "Network error", detail: "The server could not be reached to renew your session." });
      }
      const body = await readBody(response);
      if (!response.ok) {
        if ([400, 401, 403, 422].includes(response.status)) {
          end("Your session has ended. Please sign in again.");
          throw new SessionEnded();
        }
        throw new ApiError(asProblem(response, body));
      }
      start(body);
      return tokens.access_token;
    }

    /** An access token that is valid for a while yet, refreshing first when it is not. */
    async function freshAccessToken() {
      if (!tokens) throw new SessionEnded();
      // Near expiry: 15 s, or a quarter of the lifetime for (test) tokens shorter than a minute.
      if (tokens.expires_at - Date.now() < Math.min(15_000, (tokens.lifetime || 60_000) / 4)) return refresh();
      return tokens.access_token;
    }

    function clear() {
      clearTimeout(timer);
      tokens = null;
      sessionStorage.removeItem(KEY);
    }

    function end(reason) {
      clear();
      onEnded(reason);
    }

    return {
      active: () => tokens !== null,
      start,
      refresh,
      freshAccessToken,
      clear,
      end,
      resume: () => schedule(),
      // After the tab slept, timers may have been late: catch up now.
      wake: () => {
        if (tokens && tokens.expires_at - Date.now() < margin()) schedule(0);
      },
      set onEnded(fn) {
        onEnded = fn;
      },
    };
  })();

  /* ------------------------------------------------------------------ REST */

  async function readBody(response) {
    if (response.status === 204) return null;
    const text = await response.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return response.ok ? text : { detail: text.slice(0, 300) };
    }
  }

  function asProblem(response, body) {
    if (body && typeof body === "object" && (body.detail || body.title)) return { status: response.status, ...body };
    return {
      status: response.status,
      title: response.statusText || `HTTP ${response.status}`,
      detail: `The server answered ${response.status}${response.statusText ? ` ${response.statusText}` : ""}.`,
    };
  }

  /**
   * fetch for the JSON API: sends the bearer token, turns problem+json into ApiError, and on a
   * 401 refreshes the session and retries once (the token may have expired in flight).
   */
  async function api(path, { method = "GET", body, headers = {}, auth = true, retried = false } = {}) {
    const init = { method, headers: { Accept: "application/json, application/problem+json", ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (auth) init.headers.Authorization = `Bearer ${await session.freshAccessToken()}`;
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError({ title: "Network error", detail: "The server could not be reached. Check the connection and try again." });
    }
    if (response.status === 401 && auth) {
      if (retried) {
        session.end("Your session is no longer valid. Please sign in again.");
        throw new SessionEnded();
      }
      await session.refresh();
      return api(path, { method, body, headers, auth, retried: true });
    }
    const data = await readBody(response);
    if (!response.ok) throw new ApiError(asProblem(response, data));
    return data;
  }

  /** Every page of a cursor-paginated list (bounded, the lists here are small). */
  async function fetchAll(path, { limit = 100, maxPages = 20 } = {}) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < maxPages; page += 1) {
      const params = new URLSearchParams({ limit: String(limit) });
      if (cursor) params.set("cursor", cursor);
      const result = await api(`${path}?${params}`);
      items.push(...(result.items || []));
      cursor = result.next_cursor;
      if (!cursor) break;
    }
    return items;
  }

  const orderPath = (id, suffix = "") => `/api/orders/${encodeURIComponent(id)}${suffix}`;

  function idempotencyKey() {
    if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
    // randomUUID needs a secure context; plain http on a LAN address still has getRandomValues.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /* ------------------------------------------------------------------ hub */

  /**
   * The SignalR connection. SignalR's automatic reconnect covers dropped connections; this adds
   * retries with backoff for a failed start() and after the automatic policy gives up, and tells
   * the view to re-read over REST whenever messages may have been missed.
   */
  const hub = (() => {
    const TARGETS = ["OrderStatusUpdated", "OrderPlaced", "InventoryUpdated", "LowStockAlert"];
    const BACKOFF_MS = [1000, 2000, 5000, 10_000, 20_000, 30_000];
    const LABELS = { live: "live", reconnecting: "reconnecting…", offline: "offline" };
    let connection = null;
    let listener = null;
    let wanted = false;
    let attempt = 0;
    let retryTimer = 0;
    let lastSequence = 0;

    function setStatus(state) {
      const el = document.getElementById("connection-status");
      if (!el) return;
      el.dataset.state = state;
      el.textContent = LABELS[state];
    }

    // SignalR's console logger reports routine closes (an expired token, a server restart) as
    // errors. The indicator shows them and handler failures are caught in receive(), so its
    // messages are only informational here.
    const logger = {
      log(level, message) {
        if (level >= signalR.LogLevel.Warning) console.info(`[hub] ${message}`);
      },
    };

    function build() {
      const built = new signalR.HubConnectionBuilder()
        .withUrl("/hubs/orders", {
          accessTokenFactory: () => session.freshAccessToken(),
          transport: signalR.HttpTransportType.WebSockets,
        })
        .withAutomaticReconnect()
        .configureLogging(logger)
        .build();
      for (const target of TARGETS) built.on(target, (message) => receive(built, target, message));
      built.onreconnecting(() => {
        if (built === connection) setStatus("reconnecting");
      });
      built.onreconnected(() => {
        if (built !== connection) return;
        setStatus("live");
        listener?.onResync("reconnected");
      });
      built.onclose(() => {
        if (built !== connection) return;
        setStatus("offline");
        if (wanted) scheduleRetry();
      });
      return built;
    }

    function receive(source, target, message) {
      if (source !== connection || !listener || !message || typeof message !== "object") return;
      // The counter restarts at 1 on each connection; any other jump means lost messages.
      const sequence = message.sequence;
      if (typeof sequence === "number") {
        if (sequence !== 1 && sequence !== lastSequence + 1) listener.onResync("sequence gap");
        lastSequence = sequence;
      }
      try {
        listener.onMessage(target, message);
      } catch (error) {
        reportError(error);
      }
    }

    async function connect() {
      clearTimeout(retryTimer);
      retryTimer = 0;
      const current = connection;
      if (!wanted || !current || current.state !== signalR.HubConnectionState.Disconnected) return;
      if (attempt > 0) setStatus("reconnecting");
      try {
        await current.start();
      } catch {
        if (current !== connection || !wanted) return;
        setStatus("offline");
        scheduleRetry();
        return;
      }
      if (current !== connection) return;
      attempt = 0;
      setStatus("live");
      listener?.onResync("connected");
    }

    function scheduleRetry() {
      clearTimeout(retryTimer);
      const base = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
      attempt += 1;
      retryTimer = setTimeout(connect, base * (0.8 + Math.random() * 0.4));
    }

    return {
      start(newListener) {
        listener = newListener;
        wanted = true;
        attempt = 0;
        setStatus("offline");
        if (typeof signalR === "undefined") {
          toast("Live updates are unavailable: the SignalR client did not load.", "error");
          return;
        }
        connection = build();
        connect();
      },
      stop() {
        wanted = false;
        listener = null;
        clearTimeout(retryTimer);
        retryTimer = 0;
        const old = connection;
        connection = null;
        setStatus("offline");
        if (old) old.stop().catch(() => {});
      },
      /** Retry now rather than at the end of the backoff (the tab is back, or the network is). */
      nudge() {
        if (wanted && retryTimer) connect();
      },
    };
  })();

  /** Coalesces re-reads: a burst of reasons (reconnect, gap, …) costs one round of requests. */
  const resync = (() => {
    let timer = 0;
    let running = false;
    let again = false;
    let target = null;

    async function run() {
      timer = 0;
      if (!target) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        await target.resync();
      } catch (error) {
        reportError(error);
      } finally {
        running = false;
        if (again) {
          again = false;
          request();
        }
      }
    }

    function request() {
      clearTimeout(timer);
      timer = setTimeout(run, 250);
    }

    return {
      attach(view) {
        target = view;
      },
      request,
      cancel() {
        clearTimeout(timer);
        timer = 0;
        again = false;
        target = null;
      },
    };
  })();

  /* ------------------------------------------------------------------ orders table */

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

  function orderRow(order, { admin, highlightId }) {
    const highlighted = order.id === highlightId;
    return h(
      "tr",
      {
        "data-order-id": order.id,
        class: highlighted ? "order-row highlight" : "order-row",
        "aria-current": highlighted ? "true" : null,
      },
      cell(
        "Order",
        h("button", { type: "button", class: "link mono", "data-role": "open", title: `Timeline of order ${order.id}` }, shortId(order.id)),
      ),
      admin
        ? cell("Customer", h("span", { class: "mono", title: order.customer_id }, shortId(order.customer_id)))
        : cell("Placed", timeEl(order.created_at)),
      cell("Items", itemsSummary(order), { class: "cell-items cell-wide" }),
      cell("Total", formatMoney(order.total), { class: "num" }),
      cell("Status", badge(order.status), { "data-field": "status" }),
      cell("Failure", order.failure_reason ? humanize(order.failure_reason) : "—", {
        "data-field": "failure_reason",
        class: order.failure_reason ? "failure" : "muted",
      }),
      admin ? cell("Updated", timeEl(order.updated_at)) : null,
      cell("Actions", actionButtons(order, admin), { class: "actions-cell cell-wide" }),
    );
  }

  /**
   * The orders table of either mode. It owns a map of the orders it shows, merges REST pages and
   * hub messages by `updated_at` so an older answer never overwrites a newer one, and reports
   * gaps (a message whose previous status is not the one shown) so the caller can re-read.
   */
  function createOrdersFeed(section, { admin, highlightId = null, onChange = () => {} }) {
    const tbody = $("#orders", section).tBodies[0];
    const columns = $("#orders", section).tHead.rows[0].cells.length;
    const loadMore = $('[data-role="load-more"]', section);
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
  function handleStatusMessage(feed, message) {
    const outcome = feed.applyStatus(message);
    if (outcome === "gap") resync.request();
    if (outcome === "unknown" && (!message.status || feed.matches({ status: message.status }))) {
      feed.fetchAndShow(message.orderId).catch(reportError);
    }
    timeline.refreshIfOpen(message.orderId);
    return outcome;
  }

  /* ------------------------------------------------------------------ timeline panel */

  const timeline = (() => {
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

  /* ------------------------------------------------------------------ stock (admin) */

  function createStock(section, { onChange = () => {}, onLowCount = () => {} }) {
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

  /* ------------------------------------------------------------------ dead letters (admin) */

  function createDeadLetters(section, { onCount = () => {} }) {
    const table = $("#dead-letters", section);
    const tbody = table.tBodies[0];
    const columns = table.tHead.rows[0].cells.length;

    function row(letter) {
      const body = typeof letter.body === "string" ? letter.body : JSON.stringify(letter.body, null, 2);
      return h(
        "tr",
        { "data-dead-letter-id": letter.id },
        cell("Parked", timeEl(letter.parked_at)),
        cell("Queue", h("code", null, letter.queue)),
        cell("Event", letter.event_type ? h("code", null, letter.event_type) : "—"),
        cell(
          "Error",
          h(
            "div",
            { class: "error-cell" },
            h("p", { class: "error-text" }, letter.error),
            h("details", { class: "json" }, h("summary", null, "Message body"), h("pre", null, body ?? "")),
          ),
          { class: "cell-error cell-wide" },
        ),
        cell("Attempts", String(letter.attempts), { class: "num" }),
        cell(
          "Replays",
          letter.replay_count ? h("span", null, String(letter.replay_count), " ", h("span", { class: "muted small" }, "last ", timeEl(letter.replayed_at))) : "0",
          { class: "num" },
        ),
        cell("Actions", h("button", { type: "button", class: "btn btn-sm", "data-action": "replay" }, "Replay"), { class: "actions-cell cell-wide" }),
      );
    }

    async function load() {
      const page = await api("/api/admin/dead-letters?limit=100");
      const letters = page.items || [];
      tbody.replaceChildren(
        ...(letters.length ? letters.map(row) : [emptyRow(columns, "No dead letters: every message was handled.")]),
      );
      onCount(letters.length, Boolean(page.next_cursor));
    }

    async function replay(id, button) {
      button.disabled = true;
      button.classList.add("busy");
      try {
        await api(`/api/admin/dead-letters/${encodeURIComponent(id)}/replay`, { method: "POST", body: {} });
        toast("Message sent back to its queue.", "success");
      } catch (error) {
        reportError(error);
      } finally {
        button.disabled = false;
        button.classList.remove("busy");
      }
      await load().catch(reportError);
    }

    tbody.addEventListener("click", (event) => {
      const button = event.target.closest('button[data-action="replay"]');
      if (button && !button.disabled) replay(button.closest("tr[data-dead-letter-id]").dataset.deadLetterId, button);
    });
    $('[data-role="refresh"]', section)?.addEventListener("click", () => load().catch(reportError));

    tbody.replaceChildren(emptyRow(columns, "Loading…"));
    return { load };
  }

  /* ------------------------------------------------------------------ sales stats (admin) */

  function createStats(section) {
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

  /* ------------------------------------------------------------------ views */

  function setupTabs(root) {
    const tabs = [...root.querySelectorAll(".tab[data-tab]")];
    const panels = [...root.querySelectorAll(".panel[data-panel]")];
    for (const tab of tabs) {
      tab.addEventListener("click", () => {
        for (const other of tabs) other.removeAttribute("aria-current");
        tab.setAttribute("aria-current", "true");
        for (const panel of panels) panel.classList.toggle("active", panel.dataset.panel === tab.dataset.tab);
      });
    }
  }

  function setCount(root, name, count, more = false) {
    const el = $(`[data-count="${name}"]`, root);
    if (!el) return;
    el.hidden = !count;
    el.textContent = more ? `${count}+` : String(count);
  }

  function mountAdmin(main) {
    main.replaceChildren(template("tpl-admin"));
    setupTabs(main);
    const stats = createStats($("#stats", main));
    const feed = createOrdersFeed($(".panel-feed", main), { admin: true, onChange: () => stats.request() });
    const stock = createStock($(".panel-stock", main), {
      onChange: () => stats.request(),
      onLowCount: (n) => setCount(main, "low", n),
    });
    const dead = createDeadLetters($(".panel-dead", main), { onCount: (n, more) => setCount(main, "dead", n, more) });

    return {
      async resync() {
        reportFirstFailure(await Promise.allSettled([feed.load(), stock.load(), stats.refreshNow(), dead.load()]));
      },
      onMessage(target, message) {
        switch (target) {
          case "OrderStatusUpdated":
            handleStatusMessage(feed, message);
            stats.request();
            break;
          case "OrderPlaced":
            feed.placed(message);
            stats.request();
            break;
          case "InventoryUpdated":
            stock.apply(message);
            stats.request();
            break;
          case "LowStockAlert":
            stock.lowAlert(message);
            stats.request();
            break;
          default:
            break;
        }
      },
      destroy() {
        stats.cancel();
      },
    };
  }

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

  function mountCustomer(main) {
    main.replaceChildren(template("tpl-customer"));
    const highlightId = orderIdFromPath();
    const ordersSection = $("#orders", main).closest("section");
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

  /* ------------------------------------------------------------------ shell */

  const shell = {
    topbar: document.getElementById("topbar"),
    title: document.getElementById("app-title"),
    email: document.getElementById("user-email"),
    main: document.getElementById("main"),
  };
  const TITLE = MODE === "admin" ? "Orion admin" : "Your orders";
  let currentView = null;

  function teardown() {
    hub.stop();
    resync.cancel();
    currentView?.destroy();
    currentView = null;
    timeline.close();
  }

  function showLogin(message, kind = "info") {
    teardown();
    shell.topbar.hidden = true;
    document.title = `Sign in · ${TITLE}`;
    shell.main.replaceChildren(template("tpl-login"));
    const form = $("#login-form", shell.main);
    const errorBox = $('[data-role="login-error"]', shell.main);
    const submit = $("#login-submit", shell.main);
    $('[data-role="login-brand"]', shell.main).textContent = TITLE;
    $('[data-role="login-subtitle"]', shell.main).textContent =
      MODE === "admin" ? "Administrators sign in to follow orders, stock and sales live." : "Sign in to follow your orders live.";

    const showBanner = (text, bannerKind) => {
      errorBox.textContent = text;
      errorBox.className = `banner banner-${bannerKind}`;
      errorBox.hidden = false;
    };
    if (message) showBanner(message, kind);

    for (const fill of shell.main.querySelectorAll('[data-role="fill"]')) {
      fill.addEventListener("click", () => {
        $("#login-email", form).value = fill.dataset.email;
        $("#login-password", form).value = fill.dataset.password;
        submit.focus();
      });
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const email = $("#login-email", form).value.trim();
      const password = $("#login-password", form).value;
      submit.disabled = true;
      submit.textContent = "Signing in…";
      errorBox.hidden = true;
      try {
        session.start(await api("/api/auth/login", { method: "POST", body: { email, password }, auth: false }));
        enter(await api("/api/auth/me"));
      } catch (error) {
        if (error instanceof SessionEnded) return;
        showBanner(error instanceof ApiError ? error.message : "Signing in failed. Please try again.", "error");
        if (!(error instanceof ApiError)) console.warn(error);
        submit.disabled = false;
        submit.textContent = "Sign in";
        $("#login-password", form).focus();
      }
    });
    $("#login-email", form).focus();
  }

  function showNotAdmin(user) {
    shell.main.replaceChildren(template("tpl-not-admin"));
    $('[data-role="email"]', shell.main).textContent = user.email;
    $('[data-role="logout"]', shell.main).addEventListener("click", logout);
  }

  /** Signed in: the header, then the view this path and role call for. */
  function enter(user) {
    teardown();
    shell.topbar.hidden = false;
    shell.title.textContent = TITLE;
    shell.email.textContent = user.email;
    shell.email.title = `${user.name} (${user.role})`;
    document.title = TITLE;
    if (MODE === "admin" && user.role !== "admin") {
      showNotAdmin(user);
      return;
    }
    const view = MODE === "admin" ? mountAdmin(shell.main) : mountCustomer(shell.main);
    currentView = view;
    resync.attach(view);
    hub.start({
      onMessage: (target, message) => currentView === view && view.onMessage(target, message),
      onResync: () => currentView === view && resync.request(),
    });
    // Read now rather than after the hub connects; the hub's own re-read follows once it does.
    view.resync().catch(reportError);
  }

  function logout() {
    session.clear();
    showLogin("You have signed out.", "info");
  }

  async function boot() {
    document.getElementById("logout").addEventListener("click", logout);
    session.onEnded = (reason) => showLogin(reason, "info");
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState !== "visible") return;
      session.wake();
      hub.nudge();
    });
    window.addEventListener("online", () => hub.nudge());

    if (!session.active()) {
      showLogin();
      return;
    }
    session.resume();
    shell.main.replaceChildren(h("p", { class: "loading muted" }, "Loading…"));
    try {
      enter(await api("/api/auth/me"));
    } catch (error) {
      if (error instanceof SessionEnded) return;
      showLogin(error instanceof ApiError ? error.message : "Could not restore your session.", "error");
    }
  }

  boot();
})();
