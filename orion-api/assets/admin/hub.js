/* Live updates: the SignalR connection to /hubs/orders, and re-reads over REST whenever
 * messages may have been missed.
 *
 * `signalR` is the global that the classic script signalr.min.js defines; index.html loads it
 * before this module graph runs. */

import { reportError } from "./problem.js";
import { session } from "./session.js";
import { toast } from "./toast.js";

const TARGETS = ["OrderStatusUpdated", "OrderPlaced", "InventoryUpdated", "LowStockAlert"];
const BACKOFF_MS = [1000, 2000, 5000, 10_000, 20_000, 30_000];
const LABELS = { live: "live", reconnecting: "reconnecting…", offline: "offline" };

/**
 * The SignalR connection. SignalR's automatic reconnect covers dropped connections; this adds
 * retries with backoff for a failed start() and after the automatic policy gives up, and tells
 * the view to re-read over REST whenever messages may have been missed.
 */
export const hub = (() => {
  let connection = null;
  let listener = null;
  let wanted = false;
  let attempt = 0;
  let retryTimer = 0;
  let lastSequence = 0;

  function setStatus(state) {
    const el = document.getElementById("connection-status");
    if (!el) return;
    el.dataset.state = state;
    el.textContent = LABELS[state];
  }

  // SignalR's console logger reports routine closes (an expired token, a server restart) as
  // errors. The indicator shows them and handler failures are caught in receive(), so its
  // messages are only informational here.
  const logger = {
    log(level, message) {
      if (level >= signalR.LogLevel.Warning) console.info(`[hub] ${message}`);
    },
  };

  function build() {
    const built = new signalR.HubConnectionBuilder()
      .withUrl("/hubs/orders", {
        accessTokenFactory: () => session.freshAccessToken(),
        transport: signalR.HttpTransportType.WebSockets,
      })
      .withAutomaticReconnect()
      .configureLogging(logger)
      .build();
    for (const target of TARGETS) built.on(target, (message) => receive(built, target, message));
    built.onreconnecting(() => {
      if (built === connection) setStatus("reconnecting");
    });
    built.onreconnected(() => {
      if (built !== connection) return;
      setStatus("live");
      listener?.onResync("reconnected");
    });
    built.onclose(() => {
      if (built !== connection) return;
      setStatus("offline");
      if (wanted) scheduleRetry();
    });
    return built;
  }

  function receive(source, target, message) {
    if (source !== connection || !listener || !message || typeof message !== "object") return;
    // The counter restarts at 1 on each connection; any other jump means lost messages.
    const sequence = message.sequence;
    if (typeof sequence === "number") {
      if (sequence !== 1 && sequence !== lastSequence + 1) listener.onResync("sequence gap");
      lastSequence = sequence;
    }
    try {
      listener.onMessage(target, message);
    } catch (error) {
      reportError(error);
    }
  }

  async function connect() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    const current = connection;
    if (!wanted || !current || current.state !== signalR.HubConnectionState.Disconnected) return;
    if (attempt > 0) setStatus("reconnecting");
    try {
      await current.start();
    } catch {
      if (current !== connection || !wanted) return;
      setStatus("offline");
      scheduleRetry();
      return;
    }
    if (current !== connection) return;
    attempt = 0;
    setStatus("live");
    listener?.onResync("connected");
  }

  function scheduleRetry() {
    clearTimeout(retryTimer);
    const base = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    attempt += 1;
    retryTimer = setTimeout(connect, base * (0.8 + Math.random() * 0.4));
  }

  return {
    start(newListener) {
      listener = newListener;
      wanted = true;
      attempt = 0;
      setStatus("offline");
      if (typeof signalR === "undefined") {
        toast("Live updates are unavailable: the SignalR client did not load.", "error");
        return;
      }
      connection = build();
      connect();
    },
    stop() {
      wanted = false;
      listener = null;
      clearTimeout(retryTimer);
      retryTimer = 0;
      const old = connection;
      connection = null;
      setStatus("offline");
      if (old) old.stop().catch(() => {});
    },
    /** Retry now rather than at the end of the backoff (the tab is back, or the network is). */
    nudge() {
      if (wanted && retryTimer) connect();
    },
  };
})();

/** Coalesces re-reads: a burst of reasons (reconnect, gap, …) costs one round of requests. */
export const resync = (() => {
  let timer = 0;
  let running = false;
  let again = false;
  let target = null;

  async function run() {
    timer = 0;
    if (!target) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await target.resync();
    } catch (error) {
      reportError(error);
    } finally {
      running = false;
      if (again) {
        again = false;
        request();
      }
    }
  }

  function request() {
    clearTimeout(timer);
    timer = setTimeout(run, 250);
  }

  return {
    attach(view) {
      target = view;
    },
    request,
    cancel() {
      clearTimeout(timer);
      timer = 0;
      again = false;
      target = null;
    },
  };
})();
