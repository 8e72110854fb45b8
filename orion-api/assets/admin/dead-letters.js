/* Dead letters of the admin dashboard: messages parked after their attempts, and replay. */

import { api } from "./api.js";
import { $, cell, emptyRow, h } from "./dom.js";
import { timeEl } from "./format.js";
import { reportError } from "./problem.js";
import { toast } from "./toast.js";

export function createDeadLetters(section, { onCount = () => {} }) {
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
