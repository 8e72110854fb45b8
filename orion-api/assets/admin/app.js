/* Orion admin panel and customer order page: the entry module.
 *
 * One page, two modes chosen by the path: /admin… is the admin dashboard, /orders and
 * /orders/{id} are a customer's own orders. Everything goes through the public REST API and the
 * SignalR hub at /hubs/orders; the page keeps no state the server does not also have, so after any
 * interruption of live updates it simply re-reads over REST.
 *
 * Native modules, no build step: each file here is served as it is, under /admin/. The page is
 * served with `style-src 'self'` and `script-src 'self'`: no inline styles or handlers, and every
 * value from the server reaches the DOM as text (never innerHTML).
 */

import { mountAdmin } from "./admin.js";
import { api } from "./api.js";
import { mountCustomer } from "./customer.js";
import { h } from "./dom.js";
import { hub, resync } from "./hub.js";
import { showLoginForm, showNotAdmin } from "./login.js";
import { ApiError, SessionEnded, reportError } from "./problem.js";
import { session } from "./session.js";
import { timeline } from "./timeline.js";

const MODE = location.pathname.startsWith("/admin") ? "admin" : "customer";
const TITLE = MODE === "admin" ? "Orion admin" : "Your orders";

const shell = {
  topbar: document.getElementById("topbar"),
  title: document.getElementById("app-title"),
  email: document.getElementById("user-email"),
  main: document.getElementById("main"),
};
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
  showLoginForm(shell.main, { title: TITLE, admin: MODE === "admin", message, kind, onSignedIn: enter });
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
    showNotAdmin(shell.main, user, { onLogout: logout });
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
