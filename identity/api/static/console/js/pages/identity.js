// An identity: its graph (identifiers and links with their verdicts), what is selected in
// it (a node's traits and times, a link's evidence, explain for two nodes), the steward's
// actions on the selection, and beside it the profile, segments and history.

import { gql, session } from "../api.js";
import { h, fill, table, section, link, number, when, text } from "../dom.js";
import { draw, mark, shownVerdict, VERDICTS } from "../graph.js";
import { actions } from "./steward.js";

const PROFILE = `query ($id: ID!) {
  profile(id: $id) {
    id requestedId redirected status createdAt updatedAt size firstSeen lastSeen
    traits { name value source observedAt identifier }
    traitObservations { name value source observedAt identifier }
    consents { purpose granted source observedAt }
    events { name count firstAt lastAt }
    identifierCounts { type count }
    dmpSegments { name expiresAt }
    history(first: 20) { edges { node { id kind reason actor at action keys identities { id role } } } }
  }
  memberships(id: $id) { segmentId name since }
}`;

const GRAPH = `query ($id: ID!) {
  identityGraph(id: $id, limit: 300) {
    identityId members truncated
    nodes { key member identityId shared blocked quarantined
      identifier { type value hashed firstSeen lastSeen seen sources blockedReason shared { kind reason } } }
    links { a b verdict why sources party firstSeen lastSeen count evidence forced
      origins { batch source file startedAt } }
  }
}`;

const EXPLAIN = `query ($a: IdentifierInput!, $b: IdentifierInput!) {
  explain(a: $a, b: $b) { same summary identityA identityB path { a b verdict why count sources party firstSeen lastSeen evidence } }
}`;

export function identifierInput(key) {
  const i = key.indexOf(":");
  return { type: key.slice(0, i), value: key.slice(i + 1) };
}

function dl(pairs) {
  return h("dl", {}, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export async function render(view, [asked], tools) {
  const { profile, memberships } = await gql(PROFILE, { id: asked });
  if (!profile) throw new Error(`no identity ${asked}`);
  const { identityGraph: graph } = await gql(GRAPH, { id: profile.id });
  const state = { chosen: new Set(), link: null, cy: null, explained: null };
  const observations = profile.traitObservations;

  const heading = h(
    "header",
    { class: "identity-head" },
    h("h1", {}, "Identity ", h("code", { id: "identity-id" }, profile.id)),
    h("p", {}, `${number(profile.size)} identifiers · ${profile.status} · created ${when(profile.createdAt)} · updated ${when(profile.updatedAt)}`),
    profile.redirected ? h("p", { class: "note", id: "redirected" }, h("code", {}, profile.requestedId), " was merged into this identity.") : null,
  );
  const graphBox = h("div", { id: "graph", class: "graph", "aria-label": "The identity's graph" });
  const details = h("div", { id: "details" });
  const actionBox = h("div", { id: "actions" });
  const identifiers = h("div", { id: "identifiers" });
  const links = h("div", { id: "links" });

  function refresh() {
    if (state.cy) mark(state.cy, state.chosen, state.link);
    for (const box of identifiers.querySelectorAll("input[type=checkbox]")) box.checked = state.chosen.has(box.value);
    for (const row of links.querySelectorAll("tr[data-link]")) row.classList.toggle("chosen", Number(row.dataset.link) === state.link);
    showDetails();
    if (session.may("steward")) actions(actionBox, { profile, graph, state, refresh, reload, tools });
  }

  function reload(id = profile.id) {
    tools.go(`#/identity/${encodeURIComponent(id)}`);
  }

  function choose(key, add) {
    state.link = null;
    state.explained = null;
    if (add) {
      if (state.chosen.has(key)) state.chosen.delete(key);
      else state.chosen.add(key);
    } else {
      state.chosen = new Set(state.chosen.size === 1 && state.chosen.has(key) ? [] : [key]);
    }
    refresh();
  }

  function chooseLink(index) {
    state.chosen = new Set();
    state.explained = null;
    state.link = state.link === index ? null : index;
    refresh();
  }

  function showDetails() {
    if (state.link !== null) return fill(details, linkDetails(graph.links[state.link]));
    const keys = [...state.chosen];
    if (keys.length === 1) return fill(details, nodeDetails(graph.nodes.find((n) => n.key === keys[0]), observations));
    if (keys.length === 2) return fill(details, explainBox(keys, state));
    if (keys.length > 2) return fill(details, h("p", {}, `${keys.length} identifiers selected.`));
    fill(details, h("p", { class: "help" }, "Click a node for its traits and times, a link for its evidence; shift-click (or tick) two nodes to see why they are, or are not, together."));
  }

  const types = session.types;
  fill(
    view,
    heading,
    h(
      "div",
      { class: "identity" },
      h(
        "div",
        { class: "graph-column" },
        graphBox,
        legend(types, graph),
        section("Identifiers", identifiers),
        section("Links", links),
      ),
      h(
        "div",
        { class: "side-column" },
        section("Selected", details),
        session.may("steward") ? section("Steward actions", actionBox) : null,
        profilePanel(profile, memberships),
        section("History", history(profile)),
      ),
    ),
  );

  fill(
    identifiers,
    table(
      ["", "Identifier", "Type", "Last seen", "Marks"],
      graph.nodes.map((n) => {
        const box = h("input", { type: "checkbox", value: n.key, "aria-label": `select ${n.key}`, on: { change: () => choose(n.key, true) } });
        return h(
          "tr",
          { dataset: { key: n.key }, class: n.member ? "member" : "other" },
          h("td", {}, box),
          h("td", {}, n.member ? n.identifier ? n.identifier.value : n.key : [n.key, " ", n.identityId ? link(`#/identity/${encodeURIComponent(n.identityId)}`, "(another identity)") : "(no identity)"]),
          h("td", {}, h("span", { class: `dot t-${types.indexOf(n.key.slice(0, n.key.indexOf(":"))) % 9}` }), n.key.slice(0, n.key.indexOf(":"))),
          h("td", {}, when(n.identifier && n.identifier.lastSeen)),
          h("td", {}, [n.shared ? `shared (${n.shared})` : "", n.blocked ? "blocked" : "", n.quarantined ? "quarantined" : ""].filter(Boolean).join(", ") || "–"),
        );
      }),
    ),
    graph.truncated ? h("p", { class: "note" }, `Showing ${graph.nodes.length} identifiers; the identity has ${number(graph.members)}.`) : null,
  );
  fill(
    links,
    table(
      ["Between", "And", "Verdict", "Seen", "Sources"],
      graph.links.map((l, i) =>
        h(
          "tr",
          { dataset: { link: String(i) }, class: "clickable", tabindex: "0", on: { click: () => chooseLink(i), keydown: (e) => e.key === "Enter" && chooseLink(i) } },
          h("td", {}, l.a),
          h("td", {}, l.b),
          h("td", {}, h("span", { class: `verdict v-${shownVerdict(l)}` }, VERDICTS[shownVerdict(l)]?.label || l.verdict)),
          h("td", {}, `${number(l.count)}×`),
          h("td", {}, l.sources.join(", ") || "–"),
        ),
      ),
      { empty: "No link." },
    ),
  );

  state.cy = draw(graphBox, graph, types, {
    onNode: choose,
    onLink: chooseLink,
    onBackground: () => {
      state.chosen = new Set();
      state.link = null;
      refresh();
    },
  });
  refresh();
}

function legend(types, graph) {
  const used = new Set(graph.links.map(shownVerdict));
  return h(
    "div",
    { class: "legend" },
    types.filter((t) => graph.nodes.some((n) => n.key.startsWith(`${t}:`))).map((t) => h("span", { class: "item" }, h("span", { class: `dot t-${types.indexOf(t) % 9}` }), t)),
    Object.entries(VERDICTS).filter(([v]) => used.has(v)).map(([v, { label }]) => h("span", { class: "item" }, h("span", { class: `swatch v-${v}` }), label)),
    h("span", { class: "item" }, "diamond: shared · octagon: blocked · faded square: not this identity's"),
  );
}

function nodeDetails(node, observations) {
  const id = node.identifier || {};
  const traits = observations.filter((t) => t.identifier === node.key);
  return h(
    "div",
    { class: "node-details" },
    h("h3", {}, node.key),
    dl([
      ["Type", id.type || node.key.slice(0, node.key.indexOf(":"))],
      ["Value", id.value || "–"],
      ["Identity", node.member ? "this one" : node.identityId ? link(`#/identity/${encodeURIComponent(node.identityId)}`, node.identityId) : "none"],
      ["First seen", when(id.firstSeen)],
      ["Last seen", when(id.lastSeen)],
      ["Seen", number(id.seen)],
      ["Sources", (id.sources || []).join(", ") || "–"],
      node.shared ? ["Shared", `${node.shared}: ${(id.shared && id.shared.reason) || ""}`] : [],
      node.blocked ? ["Blocked", id.blockedReason || "yes"] : [],
      node.quarantined ? ["Quarantined", "in a component held for review"] : [],
    ].filter((p) => p.length)),
    h("h4", {}, "Traits seen on it"),
    table(["Trait", "Value", "Source", "Observed"], traits.map((t) => [t.name, text(t.value), t.source, when(t.observedAt)]), { empty: "No trait seen on this identifier." }),
  );
}

function linkDetails(l) {
  return h(
    "div",
    { class: "link-details", id: "link-details" },
    h("h3", {}, `${l.a} — ${l.b}`),
    h("p", { class: `verdict v-${shownVerdict(l)}` }, VERDICTS[shownVerdict(l)]?.label || l.verdict),
    h("p", { class: "why" }, l.why),
    dl([
      ["Count", number(l.count)],
      ["Sources", l.sources.join(", ") || "–"],
      ["Party", l.party || "–"],
      ["First seen", when(l.firstSeen)],
      ["Last seen", when(l.lastSeen)],
    ]),
    h("h4", {}, "Evidence"),
    l.evidence.length ? h("ul", { class: "evidence" }, l.evidence.map((e) => h("li", {}, h("code", {}, e)))) : h("p", { class: "empty" }, "No reference kept."),
    h("h4", {}, "Loads"),
    table(["Batch", "Source", "File", "Started"], l.origins.map((o) => [o.batch, o.source || "–", o.file || "–", when(o.startedAt)]), { empty: "The loads are no longer recorded." }),
  );
}

function explainBox(keys, state) {
  const box = h("div", { id: "explain" }, h("h3", {}, `${keys[0]} and ${keys[1]}`));
  if (!session.may("steward")) {
    box.append(h("p", { class: "help" }, "Explain is for stewards."));
    return box;
  }
  const out = h("div", {});
  box.append(out);
  const show = (x) =>
    fill(
      out,
      h("p", { class: x.same ? "same" : "apart", id: "explain-summary" }, x.summary),
      table(["From", "To", "Verdict", "Why", "Count"], x.path.map((p) => [p.a, p.b, p.verdict, p.why, number(p.count)]), { empty: "No path." }),
    );
  if (state.explained && state.explained.keys === keys.join(" ")) show(state.explained.result);
  else {
    fill(out, h("p", { class: "empty" }, "Explaining..."));
    gql(EXPLAIN, { a: identifierInput(keys[0]), b: identifierInput(keys[1]) })
      .then(({ explain }) => {
        state.explained = { keys: keys.join(" "), result: explain };
        show(explain);
      })
      .catch((e) => fill(out, h("p", { class: "problem" }, e.message)));
  }
  return box;
}

function profilePanel(p, memberships) {
  return section(
    "Profile",
    dl([
      ["First seen", when(p.firstSeen)],
      ["Last seen", when(p.lastSeen)],
      ["Identifiers", p.identifierCounts.map((c) => `${c.type} ${c.count}`).join(", ") || "–"],
    ]),
    h("h3", {}, "Traits"),
    table(["Trait", "Value", "Source", "Observed"], p.traits.map((t) => [t.name, text(t.value), t.source, when(t.observedAt)]), { empty: "No trait." }),
    h("h3", {}, "Consents"),
    table(["Purpose", "Granted", "Source", "Observed"], p.consents.map((c) => [c.purpose, c.granted ? "yes" : "no", c.source || "–", when(c.observedAt)]), { empty: "No consent recorded." }),
    h("h3", {}, "Events"),
    table(["Event", "Count", "First", "Last"], p.events.map((e) => [e.name, number(e.count), when(e.firstAt), when(e.lastAt)]), { empty: "No event." }),
    h("h3", {}, "Segments"),
    table(["Segment", "Since"], memberships.map((m) => [session.may("marketer") ? link(`#/segments/${encodeURIComponent(m.segmentId)}`, m.name) : m.name, when(m.since)]), { empty: "In no segment." }),
    h("h3", {}, "Third-party segments"),
    table(["Segment", "Expires"], p.dmpSegments.map((d) => [d.name, when(d.expiresAt)]), { empty: "None." }),
  );
}

function history(p) {
  const events = p.history.edges.map((e) => e.node);
  return table(
    ["When", "What", "Reason", "By", "Identities"],
    events.map((e) => [
      when(e.at),
      e.action ? `${e.kind}: ${e.action}` : e.kind,
      e.reason || "–",
      e.actor || "–",
      h("span", {}, e.identities.map((i) => [i.id === p.id ? h("code", {}, i.id) : link(`#/identity/${encodeURIComponent(i.id)}`, i.id), ` (${i.role}) `])),
    ]),
    { empty: "No event." },
  );
}
