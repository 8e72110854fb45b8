/* Failed requests: problem+json answers as errors with a message fit to show, and one place
 * that decides how a failure reaches the user. */

import { toast } from "./toast.js";

/** A problem+json answer (or a failure to get one), with a message fit to show. */
export class ApiError extends Error {
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
export class SessionEnded extends Error {}

export async function readBody(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return response.ok ? text : { detail: text.slice(0, 300) };
  }
}

/** The answer's problem, or one made from its status when it carried none (a proxy's page). */
export function asProblem(response, body) {
  if (body && typeof body === "object" && (body.detail || body.title)) return { status: response.status, ...body };
  return {
    status: response.status,
    title: response.statusText || `HTTP ${response.status}`,
    detail: `The server answered ${response.status}${response.statusText ? ` ${response.statusText}` : ""}.`,
  };
}

export function reportError(error) {
  if (error instanceof SessionEnded) return;
  if (error instanceof ApiError) {
    toast(error.message, "error");
    return;
  }
  console.warn(error);
  toast("Something went wrong in the page. Reloading may help.", "error");
}

export function reportFirstFailure(results) {
  const failed = results.find((r) => r.status === "rejected");
  if (failed) reportError(failed.reason);
}
