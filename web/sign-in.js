// The viewer signs itself in: OpenID Connect authorization code flow (OpenID Connect Core 1.0 3.1)
// with PKCE S256 (RFC 7636) as a public client (RFC 8252 8.1, OAuth 2.0 for Browser-Based Apps), then
// keeps the access token fresh with the refresh_token grant (RFC 6749 6) before it expires.
// Our own ~150 lines rather than a library: oidc-client-ts (the maintained one) is ~60 kB with its own
// storage, popup and silent-renew machinery this viewer does not use, and the site loads no npm
// runtime code today; what is here is the flow's checks and nothing else.
// Checked: the discovery document names the configured issuer and its endpoints are on the issuer's
// origin; state (CSRF, RFC 6749 10.12) and the ID token's nonce (Core 3.1.2.1) match what was sent.
// Kept: the pending request and the tokens in sessionStorage (this tab; never localStorage).
import { setToken, session } from "./session.js";

const PENDING = "pyjpip.sign-in";
const REFRESH_MARGIN_MS = 30_000;  // refresh this long before the access token expires
let refreshTimer = null;

const base64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const random = (n = 32) => base64url(crypto.getRandomValues(new Uint8Array(n)));

/** The issuer's discovery document (OpenID Connect Discovery 1.0 4), checked against the settings. */
async function discover(oidc) {
  const response = await fetch(`${oidc.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`,
                               { redirect: "error", credentials: "omit" });
  if (!response.ok) throw new Error(`the sign-in server ${oidc.issuer} answered ${response.status}`);
  const document = await response.json();
  if (document.issuer !== oidc.issuer) throw new Error(`the sign-in server says it is ${document.issuer}, not ${oidc.issuer}`);
  for (const endpoint of ["authorization_endpoint", "token_endpoint"]) {
    if (typeof document[endpoint] !== "string" || new URL(document[endpoint]).origin !== oidc.issuerOrigin) {
      throw new Error(`the sign-in server's ${endpoint} is not on ${oidc.issuerOrigin}`);
    }
  }
  return document;
}

/** Where the issuer sends the browser back: this page, without query or fragment (registered there). */
const redirectUri = () => `${location.origin}${location.pathname}`;

/** Leave for the issuer's login; ``back`` is the viewer URL to return to (the study, the layout). */
export async function startSignIn(oidc, back = location.href) {
  const provider = await discover(oidc);
  const pending = { state: random(), nonce: random(), verifier: random(48), back };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(pending.verifier)));
  const query = new URLSearchParams({ response_type: "code", client_id: oidc.clientId, redirect_uri: redirectUri(),
                                      scope: oidc.scope, state: pending.state, nonce: pending.nonce,
                                      code_challenge: challenge, code_challenge_method: "S256" });
  if (oidc.audience) query.set("audience", oidc.audience);
  location.assign(`${provider.authorization_endpoint}?${query}`);
}

async function tokenRequest(oidc, fields) {
  const provider = await discover(oidc);
  const response = await fetch(provider.token_endpoint, {
    method: "POST", redirect: "error", credentials: "omit",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: oidc.clientId, ...fields }),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok || typeof answer.access_token !== "string") {
    throw new Error(`the sign-in server refused: ${answer.error_description || answer.error || response.status}`);
  }
  return answer;
}

function keep(oidc, answer) {
  const expiresIn = Number(answer.expires_in);
  const expiresAt = expiresIn > 0 ? Date.now() / 1000 + expiresIn : null;
  setToken(answer.access_token, { expiresAt, refreshToken: answer.refresh_token ?? session()?.refreshToken ?? null });
  scheduleRefresh(oidc);
}

/** The claims of a JWT, unverified: the ID token came straight from the token endpoint over TLS (Core 3.1.3.7 6). */
function claims(jwt) {
  const part = String(jwt).split(".")[1] || "";
  return JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
}

/**
 * Back from the issuer (?code=&state= on this page): the code exchanged for tokens, then the viewer
 * URL the sign-in started from. Returns that URL, or null when this load is not a sign-in's return.
 */
export async function completeSignIn(oidc) {
  const query = new URLSearchParams(location.search);
  if (!query.has("state") || !(query.has("code") || query.has("error"))) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", location.pathname);  // the code is used once, and not kept in history
  if (!pending || query.get("state") !== pending.state) throw new Error("sign-in answer with a state this page did not send");
  if (query.has("error")) throw new Error(`sign-in failed: ${query.get("error_description") || query.get("error")}`);
  const answer = await tokenRequest(oidc, { grant_type: "authorization_code", code: query.get("code"),
                                            redirect_uri: redirectUri(), code_verifier: pending.verifier });
  if (answer.id_token && claims(answer.id_token).nonce !== pending.nonce) throw new Error("the ID token's nonce is not this sign-in's");
  keep(oidc, answer);
  return new URL(pending.back, location.href).origin === location.origin ? pending.back : location.pathname;
}

/** Refresh the access token REFRESH_MARGIN_MS before it expires; ``onExpired`` when that cannot be. */
export function scheduleRefresh(oidc, onExpired = scheduleRefresh.onExpired) {
  if (onExpired) scheduleRefresh.onExpired = onExpired;
  clearTimeout(refreshTimer);
  const current = session();
  if (!current?.expiresAt) return;
  const wait = Math.max(0, current.expiresAt - Date.now() - REFRESH_MARGIN_MS);
  refreshTimer = setTimeout(async () => {
    try {
      if (!current.refreshToken) throw new Error("no refresh token");
      keep(oidc, await tokenRequest(oidc, { grant_type: "refresh_token", refresh_token: current.refreshToken }));
    } catch (error) {
      console.warn(`the session could not be refreshed: ${error.message || error}`);
      scheduleRefresh.onExpired?.(error);
    }
  }, Math.min(wait, 2 ** 31 - 1));
}
