// One service: each instance with its node, address, tags and metadata, and
// every check on it (the node's own checks too) with status and output.

import { watch } from "./api.js";
import { h, fill, statusBadge, worstStatus, tagList } from "./dom.js";

export function renderService(view, name) {
  document.title = `${name} · Sextant`;
  const body = h("div", {}, h("p", { className: "muted" }, "Loading…"));
  view.append(
    h("p", { className: "crumbs" }, h("a", { href: "#/services" }, "← All services")),
    h("h1", {}, name),
    body,
  );

  return watch(`/v1/health/service/${encodeURIComponent(name)}`, (entries) => {
    if (entries.length === 0) {
      const text = `No instances of ${name} are registered.`;
      fill(body, h("p", { className: "empty", id: "no-instances" }, text));
      return;
    }
    fill(
      body,
      h("p", { className: "muted" }, `${entries.length} instance${entries.length === 1 ? "" : "s"}`),
      entries.map(instanceSection),
    );
  });
}

function instanceSection({ Node: node, Service: service, Checks: checks }) {
  const status = worstStatus(checks.map((c) => c.Status));
  const address = service.Address || node.Address;
  const headingId = `instance-${node.Node}-${service.ID}`.replace(/[^A-Za-z0-9_-]/g, "_");
  return h(
    "section",
    {
      className: "instance",
      "aria-labelledby": headingId,
      "data-instance": service.ID,
      "data-status": status,
    },
    h("h2", { id: headingId }, h("span", { className: "mono" }, service.ID), statusBadge(status)),
    h(
      "dl",
      { className: "facts" },
      h("dt", {}, "Node"),
      h("dd", {}, node.Node),
      h("dt", {}, "Address"),
      h("dd", { className: "mono" }, `${address}:${service.Port}`),
      h("dt", {}, "Tags"),
      h("dd", {}, tagList(service.Tags)),
      h("dt", {}, "Meta"),
      h("dd", {}, metaList(service.Meta)),
    ),
    checksTable(checks),
  );
}

function metaList(meta) {
  const entries = Object.entries(meta || {});
  if (entries.length === 0) return h("span", { className: "muted" }, "—");
  return entries.map(([key, value]) => h("span", { className: "tag" }, `${key}=${value}`));
}

function checksTable(checks) {
  if (checks.length === 0) return h("p", { className: "muted" }, "No checks.");
  return h(
    "table",
    {},
    h("caption", {}, "Checks"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Check"),
        h("th", { scope: "col" }, "Status"),
        h("th", { scope: "col" }, "Type"),
        h("th", { scope: "col" }, "Output"),
      ),
    ),
    h(
      "tbody",
      {},
      checks.map((check) =>
        h(
          "tr",
          { "data-check": check.CheckID },
          h(
            "th",
            { scope: "row" },
            check.Name || check.CheckID,
            h("div", { className: "muted mono" }, check.CheckID),
          ),
          h("td", {}, statusBadge(check.Status)),
          h("td", {}, check.Type || (check.ServiceID ? "service" : "node")),
          h("td", {}, check.Output ? h("pre", { className: "output" }, check.Output) : "—"),
        ),
      ),
    ),
  );
}
