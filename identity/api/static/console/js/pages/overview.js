// Overview: identifiers per type, identities, a histogram of identity sizes, the latest loads
// with their reasons for rejecting, the latest resolves with the time of each step.

import { gql } from "../api.js";
import { h, fill, table, section, number, when } from "../dom.js";
import { barChart } from "../charts.js";

const QUERY = `{
  stats { identifiers { type count } identifiersTotal identities links largestIdentity sizes { size identities } }
  recentLoads(first: 10) { batch source file status startedAt read accepted rejected reasons { reason count } valueReasons { reason count } }
  recentResolves(first: 10) { run mode status startedAt finishedAt identifiers created merged split seconds { step seconds } error }
}`;

// identity sizes in buckets: 1, 2, 3, 4, 5, 6-10, 11-20, 21-50, 51+
const BUCKETS = [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 10], [11, 20], [21, 50], [51, Infinity]];

function histogram(sizes) {
  return BUCKETS.map(([low, high]) => ({
    label: high === Infinity ? `${low}+` : low === high ? String(low) : `${low}-${high}`,
    value: sizes.filter((s) => s.size >= low && s.size <= high).reduce((n, s) => n + s.identities, 0),
  }));
}

function reasons(list) {
  return list.length ? list.map((r) => `${r.reason} ${number(r.count)}`).join(", ") : "–";
}

// a resolve's steps in the order they run
const STEPS = ["read", "compute", "profiles", "write"];
const stepOrder = (s) => (STEPS.indexOf(s.step) + 1 || 99);

function duration(start, end) {
  if (!start || !end) return "–";
  return `${((new Date(end) - new Date(start)) / 1000).toFixed(1)} s`;
}

export async function render(view) {
  const { stats, recentLoads, recentResolves } = await gql(QUERY);
  fill(
    view,
    h("h1", {}, "Overview"),
    h(
      "div",
      { class: "cards" },
      h("div", { class: "card", id: "count-identities" }, h("strong", {}, number(stats.identities)), " identities"),
      h("div", { class: "card" }, h("strong", {}, number(stats.identifiersTotal)), " identifiers"),
      h("div", { class: "card" }, h("strong", {}, number(stats.links)), " links"),
      h("div", { class: "card" }, h("strong", {}, number(stats.largestIdentity)), " in the largest identity"),
    ),
    h(
      "div",
      { class: "columns" },
      section("Identifiers per type", table(["Type", "Identifiers"], stats.identifiers.map((t) => [t.type, number(t.count)]))),
      section("Identity sizes", barChart(histogram(stats.sizes), { title: "Identities by number of identifiers" })),
    ),
    section(
      "Recent loads",
      table(
        ["Started", "Source", "File", "Status", "Read", "Accepted", "Rejected", "Records rejected for", "Values dropped for"],
        recentLoads.map((l) => [when(l.startedAt), l.source, l.file || "–", l.status, number(l.read), number(l.accepted), number(l.rejected), reasons(l.reasons), reasons(l.valueReasons)]),
        { empty: "No load yet: idgraph load segment FILE" },
      ),
    ),
    section(
      "Recent resolves",
      table(
        ["Started", "Mode", "Status", "Took", "Identifiers", "Created", "Merged", "Split", "Steps (s)"],
        recentResolves.map((r) => [
          when(r.startedAt),
          r.mode,
          r.error ? `${r.status}: ${r.error}` : r.status,
          duration(r.startedAt, r.finishedAt),
          number(r.identifiers),
          number(r.created),
          number(r.merged),
          number(r.split),
          [...r.seconds].sort((x, y) => stepOrder(x) - stepOrder(y)).map((s) => `${s.step} ${s.seconds.toFixed(2)}`).join(", ") || "–",
        ]),
        { empty: "No resolve yet: idgraph resolve" },
      ),
    ),
  );
}
