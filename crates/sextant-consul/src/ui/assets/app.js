// The UI's entry point: a hash router that shows one view at a time, stops
// the previous view's long polls when the route changes, and shows whether
// the live updates are connected.

import { onConnection } from "./api.js";
import { renderServices } from "./services.js";
import { renderService } from "./service.js";
import { renderNodes } from "./nodes.js";
import { renderKv } from "./kv.js";

const view = document.getElementById("view");
const connection = document.getElementById("connection");
let stopCurrent = () => {};

/** Route table: a hash pattern, the nav section it belongs to, its view. */
const routes = [
  { pattern: /^#\/services\/(.+)$/, section: "services", render: renderService },
  { pattern: /^#\/services\/?$/, section: "services", render: renderServices },
  { pattern: /^#\/nodes\/?$/, section: "nodes", render: renderNodes },
  { pattern: /^#\/kv\/(.*)$/, section: "kv", render: renderKv },
];

function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function show() {
  const hash = location.hash || "#/services";
  const route = routes.find((r) => r.pattern.test(hash));
  if (!route) {
    location.replace("#/services");
    return;
  }
  const argument = decode(hash.match(route.pattern)[1] ?? "");
  stopCurrent();
  view.replaceChildren();
  for (const link of document.querySelectorAll("nav a[data-section]")) {
    if (link.dataset.section === route.section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  stopCurrent = route.render(view, argument);
}

onConnection(({ ok, error, retryInMs }) => {
  connection.classList.toggle("live", ok);
  connection.classList.toggle("down", !ok);
  connection.textContent = ok
    ? "Live"
    : `Disconnected (${error.message}); retrying in ${Math.ceil(retryInMs / 1000)} s`;
});

window.addEventListener("hashchange", show);
show();
