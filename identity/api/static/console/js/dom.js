// Building the page without markup strings: every value is set as text (textContent or a
// text node), never parsed as HTML, so identifier values and traits that come from outside
// (an email like <img src=x onerror=...>) show as what they are and never run.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "value" || name === "checked" || name === "disabled" || name === "selected") {
      el[name] = value;
    } else if (/^(on|innerHTML|outerHTML|srcdoc|style$)/i.test(name)) {
      throw new Error(`refusing to set ${name}: build the page with text and listeners`);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function fill(el, ...children) {
  return append(clear(el), children);
}

// A time as the user's locale shows it; a dash when there is none.
export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function number(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString();
}

// Any JSON value as short text (a trait's value, a definition).
export function text(value) {
  if (value === null || value === undefined) return "–";
  return typeof value === "string" ? value : JSON.stringify(value);
}

export function table(headers, rows, { empty = "Nothing yet.", caption } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows.map((cells) => (cells instanceof Node ? cells : h("tr", {}, cells.map((c) => h("td", {}, c)))))),
  );
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...children);
}

// A link inside the console (a #/ route): nothing else, so no value can become a URL.
export function link(href, label, props = {}) {
  if (!String(href).startsWith("#/")) throw new Error(`not a console route: ${href}`);
  return h("a", { href, ...props }, label);
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
