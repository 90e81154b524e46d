// The console: sign-in, navigation by the URL's hash (#/identity/<id>, #/segments, ...) and
// search. Each page is a module with a render(view, params) function; what a page offers
// depends on the role of the key (viewer.permissions), and the API checks it again.

import { gql, session, ApiError } from "./api.js";
import { h, fill } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as identity from "./pages/identity.js";
import * as review from "./pages/review.js";
import * as segments from "./pages/segments.js";
import * as results from "./pages/search.js";

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const notice = document.getElementById("notice");
const search = document.getElementById("search");

const PAGES = [
  { path: "overview", label: "Overview", permission: "read", page: overview },
  { path: "review", label: "Review queue", permission: "steward", page: review },
  { path: "segments", label: "Segments", permission: "marketer", page: segments },
];

let fading = null; // the timer that clears the last message shown

export function say(message, kind = "error") {
  clearTimeout(fading);
  notice.hidden = !message;
  notice.className = kind;
  fill(notice, message || "");
  if (message && kind !== "error") fading = setTimeout(() => say(""), 6000);
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function signInPage(problem) {
  nav.replaceChildren();
  who.replaceChildren();
  search.hidden = true;
  const input = h("input", { id: "key", type: "password", autocomplete: "off", required: true, "aria-describedby": "key-help" });
  const form = h(
    "form",
    {
      class: "signin panel",
      on: {
        submit: async (event) => {
          event.preventDefault();
          await signIn(input.value.trim());
        },
      },
    },
    h("h1", {}, "Sign in"),
    h("label", { for: "key" }, "API key"),
    input,
    h("p", { id: "key-help", class: "help" }, "A key from IDGRAPH_API_KEYS. It is kept in this tab only and sent to this server as a Bearer token."),
    problem ? h("p", { class: "problem", role: "alert" }, problem) : null,
    h("button", { id: "signin", type: "submit" }, "Sign in"),
  );
  fill(view, form);
  input.focus();
}

async function signIn(key) {
  try {
    const data = await gql("{ viewer { name role permissions } stats { identifiers { type } } }", {}, { key });
    session.key = key;
    session.viewer = data.viewer;
    session.types = data.stats.identifiers.map((t) => t.type);
    chrome();
    if (!location.hash || location.hash === "#/" || location.hash === "#/signin") go("#/overview");
    else route();
  } catch (e) {
    const refused = e instanceof ApiError && e.code === "UNAUTHENTICATED";
    if (refused) session.key = null; // a server that does not answer keeps the key for a retry
    signInPage(refused ? "That key is not known to this server." : e.message);
  }
}

function signOut() {
  session.key = null;
  session.viewer = null;
  signInPage();
}

function chrome() {
  const viewer = session.viewer;
  fill(
    nav,
    PAGES.filter((p) => session.may(p.permission)).map((p) =>
      h("a", { href: `#/${p.path}`, dataset: { page: p.path } }, p.label),
    ),
  );
  fill(
    who,
    h("span", { id: "viewer-name" }, viewer.name),
    " ",
    h("span", { id: "role", class: `role role-${viewer.role}` }, viewer.role),
    " ",
    h("button", { id: "signout", type: "button", class: "quiet", on: { click: signOut } }, "Sign out"),
  );
  const select = document.getElementById("search-type");
  fill(select, h("option", { value: "" }, "any"), h("option", { value: "id" }, "identity id"), session.types.map((t) => h("option", { value: t }, t)));
  search.hidden = false;
}

search.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = document.getElementById("search-value").value.trim();
  const type = document.getElementById("search-type").value;
  if (value) go(`#/search/${encodeURIComponent(type || "any")}/${encodeURIComponent(value)}`);
});

function decoded(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

// Each navigation renders into a container of its own: a slow page that finishes after the
// user moved on writes into a container no longer shown.
async function route() {
  if (!session.viewer) return;
  if (notice.className === "error") say(""); // what was done stays a few seconds
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decoded);
  const [path, ...params] = parts;
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("current", a.dataset.page === path);
  const known = PAGES.find((p) => p.path === path);
  let page = known ? known.page : null;
  if (path === "identity") page = identity;
  if (path === "search") page = results;
  if (!page) return go("#/overview");
  const container = h("div", { class: "page" });
  fill(view, container);
  if (known && !session.may(known.permission)) {
    fill(container, h("p", { class: "empty" }, `Your role (${session.viewer.role}) does not open this page.`));
    return;
  }
  fill(container, h("p", { class: "empty" }, "Loading..."));
  try {
    await page.render(container, params, { go, say });
  } catch (e) {
    if (e instanceof ApiError && e.code === "UNAUTHENTICATED") return signOut();
    fill(container, h("p", { class: "problem", role: "alert" }, e.message));
  }
}

window.addEventListener("hashchange", route);

if (session.key) signIn(session.key);
else signInPage();
