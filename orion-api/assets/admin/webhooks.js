/* Webhooks of the admin dashboard: integrators' endpoints, registered with the events they want,
 * their signing secrets (shown once, when made or rotated), enabling, testing and deleting, and
 * the deliveries of the endpoint chosen. */

import { api, fetchAll } from "./api.js";
import { $, busy, cell, emptyRow, flash, h } from "./dom.js";
import { timeEl } from "./format.js";
import { ApiError, reportError } from "./problem.js";
import { toast } from "./toast.js";
import { createDeliveries } from "./webhook-deliveries.js";

// The events an endpoint may ask for (the contract's list); "*" also takes types added later.
const EVENTS = [
  "order.placed",
  "order.confirmed",
  "order.failed",
  "order.cancelled",
  "order.shipped",
  "order.delivered",
  "inventory.low_stock",
];
const ALL = "*";

const hookPath = (id, suffix = "") => `/api/admin/webhooks/${encodeURIComponent(id)}${suffix}`;

function eventChips(events) {
  const list = Array.isArray(events) ? events : [];
  if (list.includes(ALL)) return h("span", { class: "chip chip-all" }, "all events");
  return list.map((type) => h("span", { class: "chip" }, type));
}

function webhookRow(hook, { selected }) {
  const toggle = hook.enabled ? "Disable" : "Enable";
  return h(
    "tr",
    { "data-webhook-id": hook.id, class: selected ? "webhook-row selected" : "webhook-row" },
    cell(
      "Endpoint",
      h(
        "div",
        { class: "webhook-endpoint" },
        h("span", { class: "mono break", "data-field": "url" }, hook.url),
        hook.description ? h("span", { class: "muted small", "data-field": "description" }, hook.description) : null,
      ),
      { class: "cell-wide" },
    ),
    cell("Events", h("p", { class: "chips", "data-field": "events" }, eventChips(hook.events)), { class: "cell-wide" }),
    cell(
      "State",
      h(
        "div",
        { class: "webhook-state" },
        h("span", { class: `badge badge-${hook.enabled ? "enabled" : "disabled"}`, "data-field": "enabled" }, hook.enabled ? "enabled" : "disabled"),
        !hook.enabled && hook.disabled_reason
          ? h("span", { class: "failure small", "data-field": "disabled_reason" }, hook.disabled_reason)
          : null,
      ),
    ),
    cell("Created", timeEl(hook.created_at)),
    cell(
      "Actions",
      h(
        "div",
        { class: "actions", "data-role": "webhook-actions" },
        h(
          "button",
          { type: "button", class: "btn btn-sm", "data-action": "deliveries", "aria-pressed": selected ? "true" : "false" },
          "Deliveries",
        ),
        h(
          "button",
          {
            type: "button",
            class: "btn btn-sm",
            "data-action": "test",
            // The API refuses a test to a disabled endpoint.
            disabled: !hook.enabled,
            title: hook.enabled ? "Send a webhook.test event" : "Enable the endpoint to send a test",
          },
          "Test",
        ),
        h("button", { type: "button", class: "btn btn-sm", "data-action": "rotate" }, "Rotate secret"),
        h("button", { type: "button", class: "btn btn-sm", "data-action": "toggle" }, toggle),
        h("button", { type: "button", class: "btn btn-sm btn-danger", "data-action": "delete" }, "Delete"),
      ),
      { class: "actions-cell cell-wide" },
    ),
  );
}

/** Asks again in the row itself: window.confirm() would hold up the live page while open. */
function confirmDelete(row) {
  const actions = $('[data-role="webhook-actions"]', row);
  const keep = h("button", { type: "button", class: "btn btn-sm", "data-action": "cancel-delete" }, "Keep");
  actions.replaceChildren(
    h("span", { class: "confirm-text" }, "Delete this endpoint? Its deliveries stop."),
    h("button", { type: "button", class: "btn btn-sm btn-danger", "data-action": "confirm-delete" }, "Delete"),
    keep,
  );
  keep.focus();
}

export function createWebhooks(section, { onDisabledCount = () => {} }) {
  const form = $("#webhook-form", section);
  const urlInput = $("#webhook-url", form);
  const descriptionInput = $("#webhook-description", form);
  const eventsBox = $("#webhook-events", form);
  const submit = $("#webhook-submit", form);
  const formError = $('[data-role="webhook-form-error"]', form);
  const secretBox = $("#webhook-secret", section);
  const table = $("#webhooks-list", section);
  const tbody = table.tBodies[0];
  const columns = table.tHead.rows[0].cells.length;
  const deliveries = createDeliveries($("#webhook-deliveries", section));
  const hooks = new Map();

  const rowOf = (id) => tbody.querySelector(`tr[data-webhook-id="${CSS.escape(id)}"]`);
  const render = (hook) => webhookRow(hook, { selected: deliveries.showing() === hook.id });

  /* -------------------------------------------------------------- registration form */

  eventsBox.append(
    h(
      "label",
      { class: "event-choice event-choice-all" },
      h("input", { type: "checkbox", name: "events", value: ALL }),
      h("span", null, "All events", h("span", { class: "muted small" }, " (and any added later)")),
    ),
    ...EVENTS.map((type) =>
      h("label", { class: "event-choice" }, h("input", { type: "checkbox", name: "events", value: type }), h("code", null, type)),
    ),
  );
  const allBox = $(`input[value="${ALL}"]`, eventsBox);
  const typeBoxes = [...eventsBox.querySelectorAll('input[name="events"]')].filter((box) => box !== allBox);

  // "All" includes every type: the single boxes then say nothing more.
  function syncEventBoxes() {
    for (const box of typeBoxes) box.disabled = allBox.checked;
  }

  function chosenEvents() {
    if (allBox.checked) return [ALL];
    return typeBoxes.filter((box) => box.checked).map((box) => box.value);
  }

  function showFormError(text) {
    formError.textContent = text;
    formError.hidden = !text;
  }

  async function register(event) {
    event.preventDefault();
    showFormError("");
    const events = chosenEvents();
    if (!events.length) {
      showFormError("Choose at least one event, or all events.");
      allBox.focus();
      return;
    }
    const description = descriptionInput.value.trim();
    submit.textContent = "Registering…";
    try {
      const created = await busy(submit, () =>
        api("/api/admin/webhooks", {
          method: "POST",
          body: { url: urlInput.value.trim(), events, description: description || null },
        }),
      );
      const { secret, ...hook } = created;
      hooks.set(hook.id, hook);
      tbody.querySelector("tr.empty")?.remove();
      const row = render(hook);
      tbody.append(row);
      flash(row);
      countDisabled();
      form.reset();
      syncEventBoxes();
      showSecret(hook, secret);
      toast(`Endpoint ${hook.url} registered.`, "success");
    } catch (error) {
      if (error instanceof ApiError) showFormError(error.message);
      else reportError(error);
    } finally {
      submit.textContent = "Register endpoint";
    }
  }

  allBox.addEventListener("change", syncEventBoxes);
  form.addEventListener("submit", register);

  /* -------------------------------------------------------------- the secret, once */

  function showSecret(hook, secret, previousExpiresAt = null) {
    $('[data-role="secret-title"]', secretBox).textContent = previousExpiresAt
      ? `New signing secret of ${hook.url}`
      : `Signing secret of ${hook.url}`;
    $('[data-role="secret-value"]', secretBox).textContent = secret ?? "";
    const previous = $('[data-role="secret-previous"]', secretBox);
    previous.hidden = !previousExpiresAt;
    previous.replaceChildren(
      ...(previousExpiresAt
        ? ["The previous secret keeps signing too until ", timeEl(previousExpiresAt, { full: true }), ", so receivers can switch over."]
        : []),
    );
    secretBox.dataset.forWebhook = hook.id;
    secretBox.hidden = false;
    secretBox.scrollIntoView({ block: "nearest" });
    $('[data-action="copy-secret"]', secretBox).focus({ preventScroll: true });
  }

  // Once dismissed, the secret leaves the page for good: nothing can show it again.
  function hideSecret() {
    secretBox.hidden = true;
    delete secretBox.dataset.forWebhook;
    $('[data-role="secret-value"]', secretBox).textContent = "";
  }

  async function copySecret() {
    const value = $('[data-role="secret-value"]', secretBox);
    try {
      await navigator.clipboard.writeText(value.textContent);
      toast("Secret copied.", "success");
    } catch {
      // The clipboard API needs a secure context; selecting the text still lets the admin copy.
      getSelection().selectAllChildren(value);
      toast("Copying was not allowed here: the secret is selected, copy it with the keyboard.", "warn");
    }
  }

  $('[data-action="copy-secret"]', secretBox).addEventListener("click", copySecret);
  $('[data-action="dismiss-secret"]', secretBox).addEventListener("click", hideSecret);

  /* -------------------------------------------------------------- endpoints */

  function countDisabled() {
    onDisabledCount([...hooks.values()].filter((hook) => !hook.enabled).length);
  }

  function replaceRow(hook, { highlight = true } = {}) {
    hooks.set(hook.id, hook);
    const existing = rowOf(hook.id);
    if (!existing) return;
    const focused = existing.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    const row = render(hook);
    existing.replaceWith(row);
    if (focused) $(`[data-action="${focused}"]`, row)?.focus();
    if (highlight) flash(row);
    countDisabled();
  }

  async function load() {
    const list = await fetchAll("/api/admin/webhooks", { limit: null });
    hooks.clear();
    list.forEach((hook) => hooks.set(hook.id, hook));
    const selected = deliveries.showing();
    if (selected && !hooks.has(selected)) deliveries.close();
    else if (selected) deliveries.renamed(hooks.get(selected));
    tbody.replaceChildren(
      ...(list.length ? list.map(render) : [emptyRow(columns, "No endpoints yet. Register one above to receive events.")]),
    );
    countDisabled();
    await deliveries.refresh();
  }

  function select(id) {
    const hook = hooks.get(id);
    if (!hook) return Promise.resolve();
    for (const row of tbody.querySelectorAll("tr[data-webhook-id]")) {
      const mine = row.dataset.webhookId === id;
      row.classList.toggle("selected", mine);
      $('[data-action="deliveries"]', row)?.setAttribute("aria-pressed", mine ? "true" : "false");
    }
    return deliveries.open(hook);
  }

  function unselect() {
    deliveries.close();
    for (const row of tbody.querySelectorAll("tr.selected")) {
      row.classList.remove("selected");
      $('[data-action="deliveries"]', row)?.setAttribute("aria-pressed", "false");
    }
  }

  async function sendTest(id, button) {
    const { delivery_id: deliveryId } = await busy(button, () => api(hookPath(id, "/test"), { method: "POST", body: {} }));
    toast("Test event sent; its delivery shows below.", "success");
    // Show where it went: the deliveries of this endpoint, watched until the outcome is known.
    deliveries.expect(deliveryId);
    await select(id);
  }

  async function rotate(id, button) {
    const answer = await busy(button, () => api(hookPath(id, "/rotate-secret"), { method: "POST", body: {} }));
    showSecret(hooks.get(id) ?? { id, url: "this endpoint" }, answer.secret, answer.previous_secret_expires_at);
  }

  async function toggle(id, button) {
    const hook = hooks.get(id);
    const enabled = !hook.enabled;
    const updated = await busy(button, () => api(hookPath(id), { method: "PATCH", body: { enabled } }));
    replaceRow(updated);
    toast(`Endpoint ${updated.url} ${updated.enabled ? "enabled" : "disabled"}.`, "success");
  }

  async function remove(id, button) {
    const hook = hooks.get(id);
    await busy(button, () => api(hookPath(id), { method: "DELETE" }));
    hooks.delete(id);
    rowOf(id)?.remove();
    if (deliveries.showing() === id) unselect();
    if (secretBox.dataset.forWebhook === id) hideSecret();
    if (!hooks.size) tbody.replaceChildren(emptyRow(columns, "No endpoints yet. Register one above to receive events."));
    countDisabled();
    toast(`Endpoint ${hook?.url ?? ""} deleted.`, "success");
  }

  const ACTIONS = {
    deliveries: (id) => (deliveries.showing() === id ? unselect() : select(id)),
    test: sendTest,
    rotate,
    toggle,
    delete: (id, button) => confirmDelete(button.closest("tr")),
    "cancel-delete": (id) => replaceRow(hooks.get(id), { highlight: false }),
    "confirm-delete": remove,
  };

  tbody.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    const row = event.target.closest("tr[data-webhook-id]");
    if (!button || !row || button.disabled || !ACTIONS[button.dataset.action]) return;
    Promise.resolve()
      .then(() => ACTIONS[button.dataset.action](row.dataset.webhookId, button))
      .catch(reportError);
  });
  $('[data-role="deliveries-close"]', section).addEventListener("click", unselect);
  $('[data-role="refresh"]', section)?.addEventListener("click", () => load().catch(reportError));

  tbody.replaceChildren(emptyRow(columns, "Loading…"));
  return { load, destroy: () => deliveries.stop() };
}
