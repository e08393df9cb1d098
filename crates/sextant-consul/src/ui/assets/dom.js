// Small helpers to build DOM nodes. Text always goes in as text nodes, never
// as HTML, so names, tags and values from the registry cannot inject markup.

/** Creates an element: h("a", {href: "#"}, "text", child, [more, children]). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) {
      element.addEventListener(name.slice(2), value);
    } else if (name === "className") {
      element.className = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) {
      append(element, child);
    } else if (child instanceof Node) {
      element.appendChild(child);
    } else {
      element.appendChild(document.createTextNode(String(child)));
    }
  }
}

/** Replaces everything inside `element` with `children`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

/** A health status as a word on a coloured badge (never colour alone). */
export function statusBadge(status) {
  const known = ["passing", "warning", "critical", "maintenance"];
  const name = known.includes(status) ? status : "critical";
  return h("span", { className: `badge ${name}`, "data-status": status }, status);
}

/** The worst of several statuses, as Consul aggregates them. */
export function worstStatus(statuses) {
  const order = ["passing", "warning", "critical", "maintenance"];
  return statuses.reduce(
    (worst, status) => (order.indexOf(status) > order.indexOf(worst) ? status : worst),
    "passing",
  );
}

export function tagList(tags) {
  if (!tags || tags.length === 0) return h("span", { className: "muted" }, "—");
  return tags.map((tag) => h("span", { className: "tag" }, tag));
}

/** A count cell coloured by what it counts, grey when zero. */
export function countCell(count, kind) {
  return h(
    "td",
    { className: `num ${count === 0 ? "count-zero" : `count-${kind}`}`, "data-count": kind },
    count,
  );
}
