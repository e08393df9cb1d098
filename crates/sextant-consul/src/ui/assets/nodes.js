// Nodes and the Raft peers. Nodes come from a blocking query; the Raft
// configuration has no blocking form, so it is fetched every few seconds.

import { watch, poll } from "./api.js";
import { h, fill, statusBadge } from "./dom.js";

const RAFT_REFRESH_MS = 2000;

export function renderNodes(view) {
  document.title = "Nodes · Sextant";
  const nodes = h("div", {}, h("p", { className: "muted" }, "Loading…"));
  const peers = h("div", {}, h("p", { className: "muted" }, "Loading…"));
  view.append(
    h("h1", {}, "Nodes"),
    nodes,
    h("h2", { id: "raft-heading" }, "Raft peers"),
    peers,
  );

  const stopNodes = watch("/v1/sextant/ui/nodes", (list) => fill(nodes, nodesTable(list)));
  const stopPeers = poll("/v1/operator/raft/configuration", RAFT_REFRESH_MS, (config) =>
    fill(peers, peersTable(config.Servers)),
  );
  return () => {
    stopNodes();
    stopPeers();
  };
}

function nodesTable(nodes) {
  if (nodes.length === 0) return h("p", { className: "empty" }, "No nodes are registered.");
  return h(
    "table",
    { id: "nodes" },
    h("caption", {}, `${nodes.length} node${nodes.length === 1 ? "" : "s"}`),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Node"),
        h("th", { scope: "col" }, "Address"),
        h("th", { scope: "col" }, "Health"),
        h("th", { scope: "col", className: "num" }, "Service instances"),
      ),
    ),
    h(
      "tbody",
      {},
      nodes.map((node) =>
        h(
          "tr",
          { "data-node": node.Node },
          h("th", { scope: "row" }, node.Node),
          h("td", { className: "mono" }, node.Address),
          h("td", {}, statusBadge(node.Status)),
          h("td", { className: "num" }, node.Services),
        ),
      ),
    ),
  );
}

function peersTable(servers) {
  const leader = servers.find((s) => s.Leader);
  return h(
    "table",
    { id: "raft-peers", "aria-describedby": "raft-heading" },
    h(
      "caption",
      {},
      leader ? `Leader: ${leader.Node} (${leader.Address})` : "No leader is known right now.",
    ),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Server"),
        h("th", { scope: "col" }, "ID"),
        h("th", { scope: "col" }, "Raft address"),
        h("th", { scope: "col" }, "Role"),
        h("th", { scope: "col" }, "Voter"),
      ),
    ),
    h(
      "tbody",
      {},
      servers.map((server) =>
        h(
          "tr",
          { "data-peer": server.Node, "data-leader": server.Leader ? "true" : "false" },
          h("th", { scope: "row" }, server.Node),
          h("td", { className: "mono" }, server.ID),
          h("td", { className: "mono" }, server.Address),
          h(
            "td",
            {},
            server.Leader ? h("span", { className: "badge leader" }, "leader") : "follower",
          ),
          h("td", {}, server.Voter ? "yes" : "no"),
        ),
      ),
    ),
  );
}
