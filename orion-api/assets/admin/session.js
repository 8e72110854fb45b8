/* The signed-in session: its tokens, kept fresh before they expire.
 *
 * Tokens live in sessionStorage: a reload keeps the login, closing the tab ends it. */

import { ApiError, SessionEnded, asProblem, readBody } from "./problem.js";

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

// Plain fetch rather than the API helper: that helper calls back here on a 401.
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

export const session = {
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
