// The segment builder: the segment language (docs/segments.md) as nested groups of
// conditions. The tree the marketer edits converts to the definition JSON the API takes,
// and back, so a saved segment opens in the builder as it was written.

import { h, fill } from "../dom.js";

export const KINDS = {
  trait: "Trait",
  event: "Event",
  consent: "Consent",
  dmp_segment: "Third-party segment",
  has_identifier: "Has identifier",
  last_seen_within_days: "Seen in the last days",
};
const OPERATORS = ["eq", "neq", "in", "gt", "gte", "lt", "lte", "contains", "exists"];
const OPERATOR_LABELS = { eq: "=", neq: "≠", in: "in (comma-separated)", gt: ">", gte: "≥", lt: "<", lte: "≤", contains: "contains", exists: "exists" };

// A typed value: a number when it reads as one, true/false, text in double quotes as text
// ("75001" stays a string), else the text as it is.
function scalar(text) {
  const t = text.trim();
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) return t.slice(1, -1);
  if (t === "true" || t === "false") return t === "true";
  if (t !== "" && /^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  return text;
}

// A value as the marketer edits it: what scalar() reads back as the same value.
function shown(value) {
  if (Array.isArray(value)) return value.map(shown).join(", ");
  if (value === undefined || value === null) return "";
  if (typeof value === "string" && scalar(value) !== value) return `"${value}"`;
  return String(value);
}

export function blank(kind = "trait") {
  if (kind === "all" || kind === "any") return { kind, not: false, children: [] };
  return { kind, not: false, name: "", op: "eq", value: "", count: "", days: "" };
}

export function toDefinition(node) {
  let d;
  const whole = (v) => (String(v).trim() === "" ? undefined : scalar(String(v)));
  switch (node.kind) {
    case "all":
    case "any":
      d = { [node.kind]: node.children.map(toDefinition) };
      break;
    case "trait":
      d = { trait: node.name };
      if (node.op === "in") d.in = String(node.value).split(",").map((v) => scalar(v.trim())).filter((v) => v !== "");
      else if (node.op === "exists") d.exists = node.value !== "false";
      else d[node.op] = scalar(String(node.value));
      break;
    case "event":
      d = { event: node.name };
      if (whole(node.count) !== undefined) d.count_gte = whole(node.count);
      if (whole(node.days) !== undefined) d.within_days = whole(node.days);
      break;
    case "has_identifier":
      d = { has_identifier: node.name };
      if (whole(node.count) !== undefined) d.count_gte = whole(node.count);
      break;
    case "last_seen_within_days":
      d = { last_seen_within_days: whole(node.days) };
      break;
    default:
      d = { [node.kind]: node.name };
  }
  return node.not ? { not: d } : d;
}

export function fromDefinition(d) {
  if (d.not) {
    const inner = fromDefinition(d.not);
    inner.not = !inner.not;
    return inner;
  }
  for (const kind of ["all", "any"]) if (d[kind]) return { kind, not: false, children: d[kind].map(fromDefinition) };
  if ("trait" in d) {
    const op = OPERATORS.find((o) => o in d) || "eq";
    return { ...blank("trait"), name: d.trait, op, value: shown(d[op]) };
  }
  if ("event" in d) return { ...blank("event"), name: d.event, count: shown(d.count_gte), days: shown(d.within_days) };
  if ("has_identifier" in d) return { ...blank("has_identifier"), name: d.has_identifier, count: shown(d.count_gte) };
  if ("last_seen_within_days" in d) return { ...blank("last_seen_within_days"), days: shown(d.last_seen_within_days) };
  for (const kind of ["consent", "dmp_segment"]) if (kind in d) return { ...blank(kind), name: d[kind] };
  return blank();
}

function field(label, value, onInput, props = {}) {
  return h("label", { class: "field" }, h("span", {}, label), h("input", { value, ...props, on: { input: (e) => onInput(e.target.value) } }));
}

// The editor of `node`; `changed()` after every edit (the caller estimates again).
export function editor(node, { changed, types, remove }) {
  const box = h("div", { class: node.kind === "all" || node.kind === "any" ? "group" : "condition" });
  const redraw = () => {
    fill(box, ...parts());
    changed();
  };
  const set = (key) => (value) => {
    node[key] = value;
    changed();
  };
  const negate = h("label", { class: "not" }, h("input", { type: "checkbox", checked: node.not, on: { change: (e) => set("not")(e.target.checked) } }), " not");
  const removeButton = remove ? h("button", { type: "button", class: "quiet remove", "aria-label": "Remove", on: { click: remove } }, "✕") : null;

  function parts() {
    if (node.kind === "all" || node.kind === "any") {
      const mode = h(
        "select",
        { class: "group-mode", "aria-label": "Group", on: { change: (e) => { node.kind = e.target.value; changed(); } } },
        h("option", { value: "all", selected: node.kind === "all" }, "all of"),
        h("option", { value: "any", selected: node.kind === "any" }, "any of"),
      );
      return [
        h("div", { class: "row" }, negate, mode, removeButton),
        h(
          "div",
          { class: "children" },
          node.children.map((child, i) =>
            editor(child, {
              changed,
              types,
              remove: () => {
                node.children.splice(i, 1);
                redraw();
              },
            }),
          ),
        ),
        h(
          "div",
          { class: "row" },
          h("button", { type: "button", class: "quiet add-condition", on: { click: () => { node.children.push(blank("trait")); redraw(); } } }, "+ condition"),
          h("button", { type: "button", class: "quiet add-group", on: { click: () => { node.children.push(blank("any")); redraw(); } } }, "+ group"),
        ),
      ];
    }
    const kind = h(
      "select",
      { class: "kind", "aria-label": "Condition", on: { change: (e) => { Object.assign(node, blank(e.target.value), { not: node.not }); redraw(); } } },
      Object.entries(KINDS).map(([k, label]) => h("option", { value: k, selected: node.kind === k }, label)),
    );
    const fields = [];
    if (node.kind === "trait") {
      fields.push(field("name", node.name, set("name"), { class: "trait-name", placeholder: "country" }));
      fields.push(
        h(
          "select",
          { class: "op", "aria-label": "Operator", on: { change: (e) => { node.op = e.target.value; redraw(); } } },
          OPERATORS.map((o) => h("option", { value: o, selected: node.op === o }, OPERATOR_LABELS[o])),
        ),
      );
      if (node.op === "exists") {
        fields.push(
          h(
            "select",
            { "aria-label": "Exists", on: { change: (e) => set("value")(e.target.value) } },
            h("option", { value: "true", selected: node.value !== "false" }, "yes"),
            h("option", { value: "false", selected: node.value === "false" }, "no"),
          ),
        );
      } else fields.push(field("value", node.value, set("value"), { class: "trait-value", placeholder: "FR" }));
    } else if (node.kind === "event") {
      fields.push(field("event", node.name, set("name"), { class: "event-name", placeholder: "Order Completed" }));
      fields.push(field("at least", node.count, set("count"), { type: "number", min: "1", placeholder: "1", class: "short" }));
      fields.push(field("last within days", node.days, set("days"), { type: "number", min: "1", placeholder: "any time", class: "short" }));
    } else if (node.kind === "has_identifier") {
      if (!node.name) node.name = types[0] || "";
      fields.push(
        h(
          "select",
          { "aria-label": "Identifier type", on: { change: (e) => set("name")(e.target.value) } },
          types.map((t) => h("option", { value: t, selected: node.name === t }, t)),
        ),
      );
      fields.push(field("at least", node.count, set("count"), { type: "number", min: "1", placeholder: "1", class: "short" }));
    } else if (node.kind === "last_seen_within_days") {
      fields.push(field("days", node.days, set("days"), { type: "number", min: "1", placeholder: "90", class: "short" }));
    } else {
      fields.push(field(node.kind === "consent" ? "purpose" : "segment", node.name, set("name"), { class: "condition-name", placeholder: node.kind === "consent" ? "marketing" : "travel_intenders" }));
    }
    return [h("div", { class: "row" }, negate, kind, fields, removeButton)];
  }

  fill(box, ...parts());
  return box;
}
