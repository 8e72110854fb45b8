/* The admin dashboard: the live order feed, stock, dead letters, sales and webhooks, side by
 * side on wide screens and one at a time behind tabs on small ones. */

import { $, template } from "./dom.js";
import { createDeadLetters } from "./dead-letters.js";
import { createOrdersFeed, handleStatusMessage } from "./orders.js";
import { reportFirstFailure } from "./problem.js";
import { createStats } from "./stats.js";
import { createStock } from "./stock.js";
import { createWebhooks } from "./webhooks.js";

function setupTabs(root) {
  const tabs = [...root.querySelectorAll(".tab[data-tab]")];
  const panels = [...root.querySelectorAll(".panel[data-panel]")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => {
      for (const other of tabs) other.removeAttribute("aria-current");
      tab.setAttribute("aria-current", "true");
      for (const panel of panels) panel.classList.toggle("active", panel.dataset.panel === tab.dataset.tab);
    });
  }
}

function setCount(root, name, count, more = false) {
  const el = $(`[data-count="${name}"]`, root);
  if (!el) return;
  el.hidden = !count;
  el.textContent = more ? `${count}+` : String(count);
}

export function mountAdmin(main) {
  main.replaceChildren(template("tpl-admin"));
  setupTabs(main);
  const stats = createStats($("#stats", main));
  const feed = createOrdersFeed($(".panel-feed", main), { admin: true, onChange: () => stats.request() });
  const stock = createStock($(".panel-stock", main), {
    onChange: () => stats.request(),
    onLowCount: (n) => setCount(main, "low", n),
  });
  const dead = createDeadLetters($(".panel-dead", main), { onCount: (n, more) => setCount(main, "dead", n, more) });
  const webhooks = createWebhooks($(".panel-webhooks", main), { onDisabledCount: (n) => setCount(main, "webhooks", n) });

  return {
    async resync() {
      reportFirstFailure(
        await Promise.allSettled([feed.load(), stock.load(), stats.refreshNow(), dead.load(), webhooks.load()]),
      );
    },
    onMessage(target, message) {
      switch (target) {
        case "OrderStatusUpdated":
          handleStatusMessage(feed, message);
          stats.request();
          break;
        case "OrderPlaced":
          feed.placed(message);
          stats.request();
          break;
        case "InventoryUpdated":
          stock.apply(message);
          stats.request();
          break;
        case "LowStockAlert":
          stock.lowAlert(message);
          stats.request();
          break;
        default:
          break;
      }
    },
    destroy() {
      stats.cancel();
      webhooks.destroy();
    },
  };
}
