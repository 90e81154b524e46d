// Search: a value tried as an identity id and as an identifier of each type (or of the type
// chosen); the API normalizes the value as loads do. One hit opens its identity; several are
// listed.

import { gql, session } from "../api.js";
import { h, fill, table, link, number } from "../dom.js";

const FIELDS = "id size redirected requestedId";

async function byId(value) {
  return gql(`query ($value: ID!) { hit: profile(id: $value) { ${FIELDS} } }`, { value }, { partial: true });
}

// one request: an alias per type; a value a type refuses is an error of that alias only
async function byValue(value, types) {
  const variables = { value };
  const declared = ["$value: String!"];
  const fields = types.map((t, i) => {
    variables[`t${i}`] = t;
    declared.push(`$t${i}: String!`);
    return `t${i}: profile(identifier: {type: $t${i}, value: $value}) { ${FIELDS} }`;
  });
  return gql(`query (${declared.join(", ")}) { ${fields.join(" ")} }`, variables, { partial: true });
}

export async function render(view, [type, value]) {
  const types = type === "any" ? session.types : type === "id" ? [] : [type];
  const hits = [];
  const refused = [];
  if (type === "any" || type === "id") {
    const { data } = await byId(value);
    if (data.hit) hits.push({ how: "identity id", profile: data.hit });
  }
  if (types.length) {
    const { data, errors } = await byValue(value, types);
    types.forEach((t, i) => {
      if (data[`t${i}`]) hits.push({ how: t, profile: data[`t${i}`] });
    });
    refused.push(...errors.filter((e) => (e.extensions || {}).code === "BAD_USER_INPUT").map((e) => e.message));
  }
  const distinct = [...new Map(hits.map((hit) => [hit.profile.id, hit])).values()];
  if (distinct.length === 1) {
    const { profile } = distinct[0];
    // a merged id opens its survivor, which says it was merged
    // replace the search in the history, so that Back goes to where the search started
    location.replace(`#/identity/${encodeURIComponent(profile.redirected ? profile.requestedId : profile.id)}`);
    return;
  }
  if (!distinct.length) {
    const as = type === "any" ? "as an identity id or an identifier of any type" : type === "id" ? "as an identity id" : `as a ${type}`;
    fill(
      view,
      h(
        "section",
        { class: "panel", id: "no-match" },
        h("h1", {}, "No match"),
        h("p", {}, "Nothing holds ", h("code", {}, value), ` ${as}.`),
        type !== "any" && refused.length ? h("p", { class: "problem" }, refused[0]) : null,
      ),
    );
    return;
  }
  fill(
    view,
    h(
      "section",
      { class: "panel" },
      h("h1", {}, `${distinct.length} identities match`),
      table(
        ["As", "Identity", "Identifiers"],
        distinct.map(({ how, profile }) => [how, link(`#/identity/${encodeURIComponent(profile.id)}`, profile.id), number(profile.size)]),
      ),
    ),
  );
}
