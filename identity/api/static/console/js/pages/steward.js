// The steward's actions on what is selected in an identity's graph, each with a reason:
// a link: cut, restore, force-merge; one identifier: block, unblock; two: force-merge; some
// of the identity's own: split off (a preview of the links it cuts and the identities that
// would result, then one audited application). The API checks the role again.

import { gql } from "../api.js";
import { h, fill, table } from "../dom.js";

const RESULT = "action eventId identityIds";

const MUTATIONS = {
  cut: `mutation ($a: IdentifierInput!, $b: IdentifierInput!, $reason: String!) { done: cutLink(a: $a, b: $b, reason: $reason) { ${RESULT} } }`,
  restore: `mutation ($a: IdentifierInput!, $b: IdentifierInput!, $reason: String!) { done: restoreLink(a: $a, b: $b, reason: $reason) { ${RESULT} } }`,
  force: `mutation ($a: IdentifierInput!, $b: IdentifierInput!, $reason: String!) { done: forceMerge(a: $a, b: $b, reason: $reason) { ${RESULT} } }`,
  block: `mutation ($type: String!, $value: String!, $reason: String!) { done: blockIdentifier(type: $type, value: $value, reason: $reason) { ${RESULT} } }`,
  unblock: `mutation ($type: String!, $value: String!, $reason: String!) { done: unblockIdentifier(type: $type, value: $value, reason: $reason) { ${RESULT} } }`,
};

const PREVIEW = `query ($ids: [IdentifierInput!]!) { splitOffPreview(identifiers: $ids) { identityId selected cuts { a b } groups } }`;
const SPLIT = `mutation ($ids: [IdentifierInput!]!, $reason: String!) { splitOff(identifiers: $ids, reason: $reason) { eventId identityIds plan { cuts { a b } } } }`;

function input(key) {
  const i = key.indexOf(":");
  return { type: key.slice(0, i), value: key.slice(i + 1) };
}

export function actions(box, { profile, graph, state, reload, tools }) {
  // the reason survives a change of selection (the panel is drawn again for each)
  const reason = h("textarea", {
    id: "reason",
    rows: "2",
    placeholder: "Why (kept in the audit trail)",
    "aria-label": "Reason",
    value: state.reason || "",
    on: { input: (e) => (state.reason = e.target.value) },
  });
  const out = h("div", { id: "action-result" });
  const buttons = [];

  const run = async (button, mutation, variables, done) => {
    const why = reason.value.trim();
    if (!why) {
      fill(out, h("p", { class: "problem", role: "alert" }, "Give a reason first: it is kept in the audit trail."));
      reason.focus();
      return;
    }
    button.disabled = true;
    try {
      const data = await gql(mutation, { ...variables, reason: why });
      done(data);
    } catch (e) {
      fill(out, h("p", { class: "problem", role: "alert" }, e.message));
    } finally {
      button.disabled = false;
    }
  };

  const act = (label, id, mutation, variables) => {
    const button = h("button", { type: "button", id, class: "action" }, label);
    button.addEventListener("click", () =>
      run(button, MUTATIONS[mutation], variables, ({ done }) => {
        tools.say(`${done.action}: done (event ${done.eventId}); identities now ${done.identityIds.join(", ")}`, "ok");
        reload(done.identityIds.includes(profile.id) ? profile.id : done.identityIds[0] || profile.id);
      }),
    );
    buttons.push(button);
  };

  const chosen = [...state.chosen];
  const members = chosen.filter((k) => graph.nodes.find((n) => n.key === k)?.member);
  if (state.link !== null) {
    const l = graph.links[state.link];
    const pair = { a: input(l.a), b: input(l.b) };
    if (l.verdict === "cut") act("Restore link", "restore", "restore", pair);
    else act("Cut link", "cut", "cut", pair);
    if (l.verdict !== "merged") act("Force merge", "force", "force", pair);
  } else if (chosen.length === 1) {
    const node = graph.nodes.find((n) => n.key === chosen[0]);
    const { type, value } = input(chosen[0]);
    if (node.blocked) act("Unblock", "unblock", "unblock", { type, value });
    else act("Block", "block", "block", { type, value });
  } else if (chosen.length === 2) {
    act("Force merge these two", "force", "force", { a: input(chosen[0]), b: input(chosen[1]) });
  }
  if (members.length && members.length < graph.members) {
    const preview = h("button", { type: "button", id: "split-preview", class: "action" }, `Preview split-off of ${members.length}`);
    preview.addEventListener("click", async () => {
      preview.disabled = true;
      try {
        const { splitOffPreview: plan } = await gql(PREVIEW, { ids: members.map(input) });
        showPlan(plan);
      } catch (e) {
        fill(out, h("p", { class: "problem", role: "alert" }, e.message));
      } finally {
        preview.disabled = false;
      }
    });
    buttons.push(preview);
  }

  function showPlan(plan) {
    const apply = h("button", { type: "button", id: "split-apply", class: "action danger" }, `Apply: cut ${plan.cuts.length} link(s)`);
    apply.addEventListener("click", () =>
      run(apply, SPLIT, { ids: members.map(input) }, ({ splitOff }) => {
        tools.say(`split off: ${splitOff.plan.cuts.length} link(s) cut (event ${splitOff.eventId}); identities now ${splitOff.identityIds.join(", ")}`, "ok");
        reload(splitOff.identityIds.includes(profile.id) ? profile.id : splitOff.identityIds[0]);
      }),
    );
    fill(
      out,
      h(
        "div",
        { id: "split-plan" },
        h("h3", {}, "Split-off preview (nothing written yet)"),
        h("p", {}, `Cutting these ${plan.cuts.length} link(s):`),
        table(["Between", "And"], plan.cuts.map((c) => [c.a, c.b])),
        h("p", {}, `gives ${plan.groups.length} identities:`),
        h("ol", { id: "split-groups" }, plan.groups.map((g) => h("li", {}, g.join(", ")))),
        apply,
      ),
    );
  }

  fill(
    box,
    buttons.length ? [reason, h("div", { class: "buttons" }, buttons)] : h("p", { class: "help" }, "Select a link (cut, restore, force-merge), an identifier (block, unblock), two identifiers (force-merge, explain), or some of this identity's identifiers to split them off."),
    out,
  );
}
