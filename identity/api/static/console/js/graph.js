// An identity drawn with Cytoscape (vendored from npm): identifiers as nodes coloured by
// type, the identity's own solid and its neighbours faded; shared, blocked and quarantined
// identifiers marked; links styled by verdict and as wide as their count says.

import cytoscape from "/static/vendor/cytoscape@3.35.0/dist/cytoscape.esm.min.mjs";

export const VERDICTS = {
  merged: { color: "#2f4858", label: "merged" },
  forced: { color: "#7b2cbf", label: "forced by a steward" },
  cut: { color: "#d62828", label: "cut by a steward" },
  shared: { color: "#f77f00", label: "shared identifier" },
  expired: { color: "#9e9e9e", label: "expired (TTL)" },
  third_party: { color: "#1d7fd6", label: "third-party (never merges)" },
  limit: { color: "#8d5524", label: "refused by a limit" },
  shared_device: { color: "#e63946", label: "two people on one device" },
  blocked: { color: "#6a040f", label: "blocked value" },
  quarantined: { color: "#e9c46a", label: "quarantined" },
};

const TYPE_COLORS = ["#264653", "#2a9d8f", "#e76f51", "#8ab17d", "#6d597a", "#b56576", "#457b9d", "#bc6c25", "#588157"];

export function typeColor(type, types) {
  const i = Math.max(0, types.indexOf(type));
  return TYPE_COLORS[i % TYPE_COLORS.length];
}

// The verdict a link is drawn with: a forced link that merged is "forced".
export function shownVerdict(link) {
  return link.verdict === "merged" && link.forced ? "forced" : link.verdict;
}

function label(key) {
  const value = key.slice(key.indexOf(":") + 1);
  return value.length > 18 ? `${value.slice(0, 16)}…` : value;
}

export function draw(container, graph, types, { onNode, onLink, onBackground }) {
  const elements = [
    ...graph.nodes.map((n) => ({
      group: "nodes",
      data: { id: n.key, label: label(n.key), color: typeColor(n.key.slice(0, n.key.indexOf(":")), types) },
      classes: [n.member ? "member" : "other", n.shared ? "shared" : "", n.blocked ? "blocked" : "", n.quarantined ? "quarantined" : ""].join(" "),
    })),
    ...graph.links.map((l, i) => ({
      group: "edges",
      data: { id: `link-${i}`, source: l.a, target: l.b, index: i, width: Math.min(6, 1 + Math.log2(1 + l.count)), color: VERDICTS[shownVerdict(l)]?.color || "#555" },
      classes: `v-${shownVerdict(l)}`,
    })),
  ];
  const cy = cytoscape({
    container,
    elements,
    autounselectify: true,
    boxSelectionEnabled: false,
    style: [
      { selector: "node", style: { "background-color": "data(color)", label: "data(label)", "font-size": 8, color: "#222", "text-valign": "bottom", "text-margin-y": 4, width: 22, height: 22, "border-width": 0 } },
      { selector: "node.other", style: { opacity: 0.55, shape: "round-rectangle" } },
      { selector: "node.shared", style: { shape: "diamond", "border-width": 3, "border-color": VERDICTS.shared.color } },
      { selector: "node.blocked", style: { shape: "octagon", "border-width": 3, "border-color": VERDICTS.blocked.color } },
      { selector: "node.quarantined", style: { "border-width": 3, "border-style": "dashed", "border-color": "#c9a227" } },
      { selector: "node.chosen", style: { "border-width": 4, "border-color": "#ffbe0b", "overlay-color": "#ffbe0b", "overlay-opacity": 0.15 } },
      { selector: "edge", style: { width: "data(width)", "line-color": "data(color)", "curve-style": "bezier" } },
      { selector: "edge.v-cut, edge.v-expired, edge.v-limit, edge.v-shared_device", style: { "line-style": "dashed" } },
      { selector: "edge.v-shared, edge.v-third_party, edge.v-blocked", style: { "line-style": "dotted" } },
      { selector: "edge.chosen", style: { "overlay-color": "#ffbe0b", "overlay-opacity": 0.35, "overlay-padding": 4 } },
    ],
    layout: { name: "cose", animate: false, nodeRepulsion: () => 9000, idealEdgeLength: () => 70, padding: 24 },
  });
  cy.on("tap", "node", (event) => onNode(event.target.id(), event.originalEvent && (event.originalEvent.shiftKey || event.originalEvent.ctrlKey || event.originalEvent.metaKey)));
  cy.on("tap", "edge", (event) => onLink(event.target.data("index")));
  cy.on("tap", (event) => {
    if (event.target === cy) onBackground();
  });
  container.dataset.nodes = String(cy.nodes().length);
  container.dataset.members = String(cy.nodes(".member").length);
  container.dataset.links = String(cy.edges().length);
  return cy;
}

export function mark(cy, keys, linkIndex) {
  cy.batch(() => {
    cy.elements().removeClass("chosen");
    for (const key of keys) cy.getElementById(key).addClass("chosen");
    if (linkIndex !== null && linkIndex !== undefined) cy.getElementById(`link-${linkIndex}`).addClass("chosen");
  });
}
