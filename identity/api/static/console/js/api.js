// The console's only way in: the GraphQL API, with the key the user signed in with. The key
// lives in sessionStorage (gone when the tab closes) and travels as a Bearer token; nothing
// else stores it and the server sends every console file with Cache-Control: no-store.

const KEY = "idgraph.key";

export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
  viewer: null,
  may(permission) {
    return Boolean(this.viewer && this.viewer.permissions.includes(permission));
  },
};

// Run a query; the data, or an ApiError with the server's message (the first error's, with
// its code). `partial: true` returns {data, errors} instead of throwing on field errors.
export async function gql(query, variables = {}, { partial = false, key = session.key } = {}) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        ...(key ? { Authorization: `Bearer ${key}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (e) {
    throw new ApiError(`the server did not answer: ${e.message}`, "NETWORK");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status} without JSON`, "HTTP");
  }
  const errors = body.errors || [];
  if (partial) return { data: body.data || {}, errors };
  if (errors.length) {
    const first = errors[0];
    const code = (first.extensions && first.extensions.code) || "ERROR";
    throw new ApiError(first.message, code);
  }
  return body.data;
}

// A file the API serves to the same key (an audience export), saved by the browser.
export async function download(path, filename) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${session.key}` },
    cache: "no-store",
    credentials: "omit",
  });
  if (!response.ok) {
    let message = `download refused (${response.status})`;
    try {
      message = (await response.json()).error.message || message;
    } catch {
      /* the status says it */
    }
    throw new ApiError(message, "HTTP");
  }
  const url = URL.createObjectURL(await response.blob());
  const anchor = document.createElement("a");
  anchor.href = url;
  anchor.download = filename;
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
