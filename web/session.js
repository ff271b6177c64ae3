// The viewer's access token (RFC 6750 bearer token): where it came from (the embedding page's
// postMessage, the <jpip-viewer> element's token property, the URL fragment #access_token=..., or
// the viewer's own OpenID Connect sign-in, sign-in.js), kept in memory and in sessionStorage (this
// tab only; never localStorage), and given to whoever fetches (fetch-policy.js in the page and the
// Python worker). Never read from a query string: a query is logged by servers and sent on.

const STORAGE_KEY = "pyjpip.session";
const MAXIMUM_TOKEN = 16384;  // a JWT of a few claims is under 2 kB; anything near this is not one
const listeners = new Set();
let current = null;  // {token, expiresAt (ms since the epoch) | null, refreshToken | null}

/** A token as a string RFC 6750 2.1's b64token allows, or an Error. */
function checked(token) {
  if (typeof token !== "string" || !token || token.length > MAXIMUM_TOKEN || !/^[A-Za-z0-9\-._~+/]+=*$/.test(token)) {
    throw new Error("not a bearer token (RFC 6750 b64token characters, at most 16 kB)");
  }
  return token;
}

/** expires_at: seconds since the epoch (as OAuth's expires_in is turned into it), or null. */
export function setToken(token, { expiresAt = null, refreshToken = null } = {}) {
  current = token == null ? null : {
    token: checked(token),
    expiresAt: expiresAt == null ? null : Number(expiresAt) * 1000,
    refreshToken: refreshToken ?? null,
  };
  try {
    if (current) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(current));
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage refused (a sandboxed frame): the token lives in memory only
  }
  for (const listener of listeners) listener(current?.token ?? null);
}

/** The token, if there is one that has not expired. */
export function currentToken() {
  if (!current) return null;
  if (current.expiresAt != null && current.expiresAt <= Date.now()) return null;
  return current.token;
}

export function session() { return current; }

/** listener(token | null) on every change; returns the function that stops it. */
export function onToken(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** #access_token=...[&expires_in=...]: taken once and removed from the address bar and history. */
function fromFragment() {
  if (!location.hash.includes("access_token=")) return false;
  const fields = new URLSearchParams(location.hash.slice(1));
  history.replaceState(history.state, "", location.pathname + location.search);
  try {
    const expiresIn = Number(fields.get("expires_in"));
    setToken(fields.get("access_token"), { expiresAt: expiresIn > 0 ? Date.now() / 1000 + expiresIn : null });
  } catch (error) {
    console.warn(`the access token in the address was not taken: ${error.message}`);
  }
  return true;
}

function fromStorage() {
  try {
    const kept = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
    if (kept && typeof kept.token === "string") current = { ...kept, token: checked(kept.token) };
  } catch {
    current = null;
  }
}

if (typeof document !== "undefined") {  // a page, not a worker
  fromStorage();
  fromFragment();
}
