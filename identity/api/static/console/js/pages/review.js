// Review queue (stewards): shared identifiers, quarantined components, the largest
// identities and the latest merges into large ones; each opens its identity page.

import { gql } from "../api.js";
import { h, fill, table, section, link, number, when } from "../dom.js";

const QUERY = `{
  reviewQueue(first: 20) {
    shared { totalCount edges { node { links identifier { key type value shared { kind reason } identity { id } } } } }
    quarantines { id size sample detectedAt }
    sharedDevices { id split reason device kept other detectedAt }
  }
  largestIdentities(first: 10) { id size updatedAt }
  largeMerges(first: 10, minSize: 5) { id at reason actor identities { id role current { id size } } }
}`;

function open(id, label = id) {
  return id ? link(`#/identity/${encodeURIComponent(id)}`, label) : "–";
}

function search(key) {
  const i = key.indexOf(":");
  return link(`#/search/${encodeURIComponent(key.slice(0, i))}/${encodeURIComponent(key.slice(i + 1))}`, key);
}

export async function render(view) {
  const data = await gql(QUERY);
  const { shared, quarantines, sharedDevices } = data.reviewQueue;
  fill(
    view,
    h("h1", {}, "Review queue"),
    section(
      `Shared identifiers (${number(shared.totalCount)})`,
      h("p", { class: "help" }, "Used by more people than one person can be: they link, but merge nothing."),
      table(
        ["Identifier", "Kind", "Why", "Links", "Identity"],
        shared.edges.map(({ node }) => [node.identifier.key, node.identifier.shared ? node.identifier.shared.kind : "–", node.identifier.shared ? node.identifier.shared.reason || "–" : "–", number(node.links), open(node.identifier.identity && node.identifier.identity.id)]),
        { empty: "No shared identifier." },
      ),
    ),
    section(
      `Possible shared devices (${sharedDevices.length >= 200 ? "the first 200" : sharedDevices.length} open)`,
      h("p", { class: "help" }, "Two sides that meet only on one device. Split: their use of it alternates (two people): force-merge them if they are one, cut the other side's links to the device if they are two. Kept together: one came after the other there: split the other side off if they are two."),
      table(
        ["Call", "Side with the device", "Other side", "Device", "Detected"],
        sharedDevices.map((d) => [d.split ? "split" : "kept together", h("span", {}, d.kept.map((k) => [search(k), " "])), h("span", {}, d.other.map((k) => [search(k), " "])), d.device.join(", "), when(d.detectedAt)]),
        { empty: "No device call open." },
      ),
    ),
    section(
      `Quarantined components (${quarantines.length})`,
      h("p", { class: "help" }, "Components over the size bound: held apart until a steward looks."),
      table(
        ["Quarantine", "Identifiers", "Detected", "Some of them"],
        quarantines.map((q) => [q.id, number(q.size), when(q.detectedAt), h("span", { class: "keys" }, q.sample.slice(0, 5).map((k) => [search(k), " "]))]),
        { empty: "Nothing quarantined." },
      ),
    ),
    h(
      "div",
      { class: "columns" },
      section("Largest identities", table(["Identity", "Identifiers", "Updated"], data.largestIdentities.map((p) => [open(p.id), number(p.size), when(p.updatedAt)]))),
      section(
        "Latest large merges",
        table(
          ["When", "Into", "Identifiers now", "Absorbed", "Reason"],
          data.largeMerges.map((e) => {
            const survivor = e.identities.find((i) => i.role === "survivor") || {};
            const absorbed = e.identities.filter((i) => i.role !== "survivor").map((i) => i.id);
            return [when(e.at), open(survivor.current ? survivor.current.id : survivor.id), number(survivor.current && survivor.current.size), absorbed.join(", "), e.reason || "–"];
          }),
          { empty: "No merge into an identity of 5 or more identifiers." },
        ),
      ),
    ),
  );
}
