/* Building the page's DOM. The page is served with `style-src 'self'`: no inline styles or
 * handlers, and every value from the server reaches the DOM as text, never as markup. */

export const $ = (selector, root = document) => root.querySelector(selector);

/** Builds an element; strings become text nodes, so data can never become markup. */
export function h(tag, attrs, ...children) {
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

export function template(id) {
  return document.getElementById(id).content.cloneNode(true);
}

/** A table cell that carries its column name, shown as a label when rows stack on phones. */
export function cell(label, content, attrs = {}) {
  return h("td", { "data-label": label, ...attrs }, content);
}

export function emptyRow(columns, text) {
  return h("tr", { class: "empty" }, h("td", { colspan: columns }, text));
}

/** Restarts the highlight animation even when the element is already highlighted. */
export function flash(el) {
  el.classList.remove("flash");
  void el.offsetWidth;
  el.classList.add("flash");
  el.addEventListener("animationend", () => el.classList.remove("flash"), { once: true });
}

/** Marks a button as working until the promise settles; answers the promise. */
export async function busy(button, work) {
  button.disabled = true;
  button.classList.add("busy");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.classList.remove("busy");
  }
}

export const reducedMotion = () => window.matchMedia("(prefers-reduced-motion: reduce)").matches;

/** Whether the element is on screen: on phones only the active tab's panel is. */
export function shown(el) {
  if (document.visibilityState !== "visible" || !el.isConnected) return false;
  return typeof el.checkVisibility === "function" ? el.checkVisibility() : el.offsetParent !== null;
}
