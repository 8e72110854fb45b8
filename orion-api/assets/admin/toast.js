/* Transient messages in the page's aria-live area. */

import { h } from "./dom.js";

const toastArea = document.getElementById("toasts");
const recentToasts = new Map();

/** Shows a message for a while; repeats within a few seconds are dropped. */
export function toast(message, kind = "info", timeoutMs) {
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
