// The services overview: every service with its instance count and how many
// instances are passing, warning or critical, kept live by one long poll.

import { watch } from "./api.js";
import { h, fill, tagList, countCell } from "./dom.js";

export function renderServices(view) {
  document.title = "Services · Sextant";
  const body = h("div", {}, h("p", { className: "muted" }, "Loading…"));
  view.append(h("h1", {}, "Services"), body);

  return watch("/v1/sextant/ui/services", (services) => {
    if (services.length === 0) {
      fill(body, h("p", { className: "empty" }, "No services are registered."));
      return;
    }
    fill(body, servicesTable(services));
  });
}

function servicesTable(services) {
  return h(
    "table",
    { id: "services" },
    h("caption", {}, `${services.length} service${services.length === 1 ? "" : "s"}`),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Service"),
        h("th", { scope: "col", className: "num" }, "Instances"),
        h("th", { scope: "col", className: "num" }, "Passing"),
        h("th", { scope: "col", className: "num" }, "Warning"),
        h("th", { scope: "col", className: "num" }, "Critical"),
        h("th", { scope: "col" }, "Tags"),
      ),
    ),
    h(
      "tbody",
      {},
      services.map((service) =>
        h(
          "tr",
          { "data-service": service.Name },
          h(
            "th",
            { scope: "row" },
            h("a", { href: `#/services/${encodeURIComponent(service.Name)}` }, service.Name),
          ),
          h("td", { className: "num", "data-count": "instances" }, service.Instances),
          countCell(service.Health.Passing, "passing"),
          countCell(service.Health.Warning, "warning"),
          countCell(service.Health.Critical, "critical"),
          h("td", {}, tagList(service.Tags)),
        ),
      ),
    ),
  );
}
