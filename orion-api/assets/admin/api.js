/* The REST API as the page calls it: JSON in and out, the bearer token, problem+json errors. */

import { ApiError, SessionEnded, asProblem, readBody } from "./problem.js";
import { session } from "./session.js";

/**
 * fetch for the JSON API: sends the bearer token, turns problem+json into ApiError, and on a
 * 401 refreshes the session and retries once (the token may have expired in flight).
 */
export async function api(path, { method = "GET", body, headers = {}, auth = true, retried = false } = {}) {
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

/**
 * Every page of a cursor-paginated list (bounded, the lists here are small). `limit: null`
 * leaves the page size to the server, for lists that take only a cursor.
 */
export async function fetchAll(path, { limit = 100, maxPages = 20 } = {}) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const params = new URLSearchParams();
    if (limit != null) params.set("limit", String(limit));
    if (cursor) params.set("cursor", cursor);
    const query = params.toString();
    const result = await api(query ? `${path}?${query}` : path);
    items.push(...(result.items || []));
    cursor = result.next_cursor;
    if (!cursor) break;
  }
  return items;
}

export const orderPath = (id, suffix = "") => `/api/orders/${encodeURIComponent(id)}${suffix}`;

export function idempotencyKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context; plain http on a LAN address still has getRandomValues.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
