/* How values from the API are shown: money, times, order references, status badges. */

import { h } from "./dom.js";

export const STATUSES = ["pending", "reserved", "confirmed", "shipped", "delivered", "cancelled", "failed"];
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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
export function formatMoney(money) {
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

export const millis = (iso) => {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 0 : t;
};

/** A <time> element: compact text (time only for today), the full timestamp as a tooltip. */
export function timeEl(iso, { full = false } = {}) {
  const t = Date.parse(iso);
  if (!iso || Number.isNaN(t)) return "—";
  const date = new Date(t);
  const today = date.toDateString() === new Date().toDateString();
  const text = full ? dateTimeFormat.format(date) : today ? timeFormat.format(date) : shortDateTimeFormat.format(date);
  return h("time", { datetime: iso, title: dateTimeFormat.format(date) }, text);
}

// An id's short reference, as the server makes it (OrderId::reference): its last ten hex digits.
// A UUID v7 starts with a timestamp that every order of a minute shares; its end is random.
export const shortId = (id) => (typeof id === "string" ? id.replaceAll("-", "").slice(-10).toUpperCase() : "—");
export const humanize = (word) => (word ? String(word).replaceAll("_", " ") : "—");

// Webhook delivery outcomes (pending, delivered, failed) share the order statuses' colours.
export function badge(status) {
  const known = STATUSES.includes(status) ? ` badge-${status}` : "";
  return h("span", { class: `badge${known}` }, status ?? "unknown");
}
