// Segments (marketers): the list; a segment's builder with a live estimate and a preview of
// members, save, refresh with who entered and left, its size over its refreshes, members,
// and audience export with download.

import { gql, session, download } from "../api.js";
import { h, fill, table, section, link, number, when, text, debounce } from "../dom.js";
import { lineChart } from "../charts.js";
import { editor, fromDefinition, toDefinition, blank } from "./builder.js";

const SEGMENT = `id name description definition size refreshedAt stale createdAt createdBy`;
const LIST = `{ segments { ${SEGMENT} } }`;
const ONE = `query ($id: ID!) { segment(id: $id) {
  ${SEGMENT}
  refreshes(last: 30) { id at entered left size ms }
  members(first: 20) { totalCount edges { since node { id size } } }
} }`;
const PREVIEW = `mutation ($d: SegmentConditionInput!) { previewSegment(definition: $d, sample: 10) { size sample { id traits } } }`;
const CREATE = `mutation ($name: String!, $d: SegmentConditionInput!, $description: String!) { createSegment(name: $name, definition: $d, description: $description) { id } }`;
const UPDATE = `mutation ($id: ID!, $name: String!, $d: SegmentConditionInput!, $description: String!) { updateSegment(id: $id, name: $name, definition: $d, description: $description) { id } }`;
const REFRESH = `mutation ($id: ID!) { refreshSegment(id: $id) { refresh { entered left size ms } } }`;
const DELETE = `mutation ($id: ID!) { deleteSegment(id: $id) }`;
const EXPORT = `mutation ($id: ID!, $types: [String!]!, $format: AudienceFormat!, $hashed: Boolean!) {
  exportAudience(segmentId: $id, identifierTypes: $types, format: $format, hashed: $hashed) {
    id status format members identifiers eligible rows skippedConsent { type count } skippedBlocked skippedHashed downloadPath } }`;

export async function render(view, [id], tools) {
  if (!id) return list(view);
  if (id === "new") return detail(view, null, null, tools);
  const loaded = await gql(ONE, { id });
  return detail(view, loaded.segment, loaded, tools);
}

async function list(view) {
  const { segments } = await gql(LIST);
  fill(
    view,
    h("h1", {}, "Segments"),
    h("p", {}, link("#/segments/new", "New segment", { class: "button", id: "new-segment" })),
    section(
      "All segments",
      table(
        ["Name", "Members", "Refreshed", "Description"],
        segments.map((s) => [link(`#/segments/${encodeURIComponent(s.id)}`, s.name), number(s.size), s.refreshedAt ? `${when(s.refreshedAt)}${s.stale ? " (definition changed since)" : ""}` : "never", s.description || "–"]),
        { empty: "No segment yet." },
      ),
    ),
  );
}

function detail(view, segment, loaded, tools) {
  const root = segment ? fromDefinition(segment.definition) : blank("all");
  // a saved single condition is edited inside a group, and saved back as it was when it
  // still is one condition (else saving would change the definition and stale the segment)
  const single = !(root.kind === "all" || root.kind === "any");
  const tree = single ? { kind: "all", not: false, children: [root] } : root;
  const definitionOf = () => (single && tree.kind === "all" && !tree.not && tree.children.length === 1 ? toDefinition(tree.children[0]) : toDefinition(tree));
  if (!segment && !tree.children.length) tree.children.push(blank("trait"));
  const name = h("input", { id: "segment-name", value: segment ? segment.name : "", placeholder: "fr-repeat-buyers", required: true });
  const description = h("input", { id: "segment-description", value: segment ? segment.description : "", placeholder: "What it is for" });
  const estimate = h("div", { id: "estimate", "aria-live": "polite" });
  const sample = h("div", { id: "sample" });
  const json = h("pre", { id: "definition-json" });
  let asked = 0;

  const estimateNow = async () => {
    const definition = definitionOf();
    json.textContent = JSON.stringify(definition, null, 2);
    const mine = ++asked;
    estimate.dataset.state = "busy";
    try {
      const { previewSegment } = await gql(PREVIEW, { d: definition });
      if (mine !== asked) return;
      estimate.dataset.state = "done";
      estimate.dataset.size = String(previewSegment.size);
      fill(estimate, h("strong", { id: "estimate-size" }, number(previewSegment.size)), " identities match now");
      fill(sample, table(["Identity", "Traits"], previewSegment.sample.map((m) => [link(`#/identity/${encodeURIComponent(m.id)}`, m.id), Object.entries(m.traits).map(([k, v]) => `${k}: ${text(v)}`).join(", ")]), { empty: "No member." }));
    } catch (e) {
      if (mine !== asked) return;
      estimate.dataset.state = "error";
      fill(estimate, h("span", { class: "problem" }, e.message));
      sample.replaceChildren();
    }
  };
  const changed = debounce(estimateNow, 350);

  const save = h("button", { type: "button", id: "save-segment" }, segment ? "Save" : "Create");
  save.addEventListener("click", async () => {
    try {
      const variables = { name: name.value.trim(), d: definitionOf(), description: description.value.trim() };
      if (segment) {
        await gql(UPDATE, { id: segment.id, ...variables });
        tools.say("Saved: the members change at the next refresh.", "ok");
        tools.go(`#/segments/${encodeURIComponent(segment.id)}`);
      } else {
        const { createSegment } = await gql(CREATE, variables);
        tools.say("Created: refresh it to compute its members.", "ok");
        tools.go(`#/segments/${encodeURIComponent(createSegment.id)}`);
      }
    } catch (e) {
      tools.say(e.message);
    }
  });

  fill(
    view,
    h("h1", {}, segment ? `Segment ${segment.name}` : "New segment"),
    h(
      "div",
      { class: "identity" },
      h(
        "div",
        { class: "graph-column" },
        section(
          "Definition",
          h("div", { class: "row" }, h("label", { class: "field" }, h("span", {}, "name"), name), h("label", { class: "field wide" }, h("span", {}, "description"), description)),
          h("div", { id: "builder" }, editor(tree, { changed, types: session.types })),
          h("div", { class: "buttons" }, save),
          h("details", {}, h("summary", {}, "As JSON"), json),
        ),
        section("Estimate", estimate, h("h3", {}, "Some of them"), sample),
      ),
      segment ? h("div", { class: "side-column" }, savedPanels(segment, loaded, tools)) : null,
    ),
  );
  estimateNow();
}

function savedPanels(segment, loaded, tools) {
  const { refreshes, members } = loaded.segment;
  const audience = h("div", { id: "audience" });
  const refresh = h("button", { type: "button", id: "refresh-segment" }, "Refresh now");
  refresh.addEventListener("click", async () => {
    refresh.disabled = true;
    try {
      const { refreshSegment } = await gql(REFRESH, { id: segment.id });
      const r = refreshSegment.refresh;
      tools.say(`Refreshed: ${r.entered} entered, ${r.left} left, size ${r.size} (${r.ms} ms)`, "ok");
      tools.go(`#/segments/${encodeURIComponent(segment.id)}`);
    } catch (e) {
      tools.say(e.message);
      refresh.disabled = false;
    }
  });
  const remove = h("button", { type: "button", class: "danger", id: "delete-segment" }, "Delete");
  remove.addEventListener("click", async () => {
    if (!window.confirm(`Delete segment ${segment.name} and its memberships?`)) return;
    try {
      await gql(DELETE, { id: segment.id });
      tools.go("#/segments");
    } catch (e) {
      tools.say(e.message);
    }
  });
  const points = [...refreshes].reverse().map((r) => ({ at: new Date(r.at), value: r.size }));
  return [
    section(
      "Members",
      h("p", {}, h("strong", { id: "segment-size" }, number(segment.size)), ` members, refreshed ${segment.refreshedAt ? when(segment.refreshedAt) : "never"}`, segment.stale ? " (the definition changed since: refresh)" : ""),
      h("div", { class: "buttons" }, refresh, remove),
      lineChart(points, { title: "Members after each refresh" }),
      table(["When", "Entered", "Left", "Size", "Took"], refreshes.map((r) => [when(r.at), number(r.entered), number(r.left), number(r.size), `${r.ms} ms`]), { empty: "Never refreshed." }),
      h("h3", {}, "Members"),
      table(["Identity", "Identifiers", "Since"], members.edges.map((e) => [link(`#/identity/${encodeURIComponent(e.node.id)}`, e.node.id), number(e.node.size), when(e.since)]), { empty: "No member (refresh it)." }),
    ),
    section("Audience export", exportForm(segment, audience, tools), audience),
  ];
}

function exportForm(segment, out, tools) {
  const boxes = session.types.map((t) => h("label", { class: "check" }, h("input", { type: "checkbox", value: t, checked: t === "email" }), ` ${t}`));
  const format = h("select", { id: "export-format", "aria-label": "Format" }, h("option", { value: "CSV" }, "CSV"), h("option", { value: "NDJSON" }, "NDJSON"));
  const hashed = h("input", { type: "checkbox", id: "export-hashed" });
  const go = h("button", { type: "button", id: "export-audience" }, "Export");
  go.addEventListener("click", async () => {
    const types = boxes.map((b) => b.querySelector("input")).filter((b) => b.checked).map((b) => b.value);
    go.disabled = true;
    try {
      const { exportAudience: x } = await gql(EXPORT, { id: segment.id, types, format: format.value, hashed: hashed.checked });
      const file = x.downloadPath ? x.downloadPath.split("/").pop() : null;
      const save = h("button", { type: "button", id: "download-audience" }, `Download ${file || ""}`);
      save.addEventListener("click", () => download(x.downloadPath, file).catch((e) => tools.say(e.message)));
      fill(
        out,
        h("p", { id: "export-summary" }, `${x.status}: ${number(x.rows)} rows for ${number(x.members)} members (${number(x.eligible)} of ${number(x.identifiers)} identifiers eligible; skipped for consent: ${x.skippedConsent.map((s) => `${s.type} ${s.count}`).join(", ") || "none"}, blocked ${number(x.skippedBlocked)})`),
        x.downloadPath ? save : null,
      );
    } catch (e) {
      fill(out, h("p", { class: "problem", role: "alert" }, e.message));
    } finally {
      go.disabled = false;
    }
  });
  return h("div", { class: "export" }, h("div", { class: "row" }, boxes), h("div", { class: "row" }, format, h("label", { class: "check" }, hashed, " hashed (SHA-256)")), go);
}
