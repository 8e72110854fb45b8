/* Signing in, and the notice a customer gets at the admin panel's address. */

import { api } from "./api.js";
import { $, template } from "./dom.js";
import { ApiError, SessionEnded } from "./problem.js";
import { session } from "./session.js";

/**
 * Shows the sign-in form in `main`. On success the session holds the new tokens and
 * `onSignedIn` gets the signed-in user (`GET /api/auth/me`).
 */
export function showLoginForm(main, { title, admin, message, kind = "info", onSignedIn }) {
  main.replaceChildren(template("tpl-login"));
  const form = $("#login-form", main);
  const errorBox = $('[data-role="login-error"]', main);
  const submit = $("#login-submit", main);
  $('[data-role="login-brand"]', main).textContent = title;
  $('[data-role="login-subtitle"]', main).textContent = admin
    ? "Administrators sign in to follow orders, stock and sales live."
    : "Sign in to follow your orders live.";

  const showBanner = (text, bannerKind) => {
    errorBox.textContent = text;
    errorBox.className = `banner banner-${bannerKind}`;
    errorBox.hidden = false;
  };
  if (message) showBanner(message, kind);

  for (const fill of main.querySelectorAll('[data-role="fill"]')) {
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
      onSignedIn(await api("/api/auth/me"));
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

/** A customer signed in at /admin: point them to their own orders. */
export function showNotAdmin(main, user, { onLogout }) {
  main.replaceChildren(template("tpl-not-admin"));
  $('[data-role="email"]', main).textContent = user.email;
  $('[data-role="logout"]', main).addEventListener("click", onLogout);
}
