// The viewer's settings, served by the site at /viewer-config.json (pyjpip.transport.viewer_config:
// the Python side of this contract; tests/browser/test_viewer_security.py checks both sides):
//   {version: 1, pixel_origins: [...], source_origins: [...], embed_origins: [...], token_origins: [...],
//    oidc: null | {issuer, client_id, scope, audience}}
// No settings (a site that does not serve them, or a broken document): the viewer's own origin only,
// no embedders, no sign-in.

export const CONFIG_VERSION = 1;
export const CONFIG_KEYS = ["version", "pixel_origins", "source_origins", "embed_origins", "token_origins", "oidc"];
export const OIDC_KEYS = ["issuer", "client_id", "scope", "audience"];
const MAXIMUM_ORIGINS = 64;

/** An origin as a browser serialises it, or an Error naming where it was found. */
function originOf(value, where) {
  let url;
  try {
    url = new URL(String(value));
  } catch {
    throw new Error(`viewer-config.json ${where}: ${String(value).slice(0, 80)} is not an origin`);
  }
  if (!["http:", "https:"].includes(url.protocol) || url.origin !== String(value)) {
    throw new Error(`viewer-config.json ${where}: ${String(value).slice(0, 80)} is not an http(s) origin`);
  }
  return url.origin;
}

function originList(document, key) {
  const list = document[key];
  if (!Array.isArray(list) || list.length > MAXIMUM_ORIGINS) {
    throw new Error(`viewer-config.json: ${key} must be a list of at most ${MAXIMUM_ORIGINS} origins`);
  }
  return Object.freeze(list.map((value, i) => originOf(value, `${key}[${i}]`)));
}

/** The settings from their JSON document: every key checked, unknown keys refused (a contract, not a bag). */
export function readConfig(document) {
  if (!document || typeof document !== "object" || Array.isArray(document)) throw new Error("viewer-config.json: not an object");
  const keys = Object.keys(document);
  const unknown = keys.filter((k) => !CONFIG_KEYS.includes(k));
  const missing = CONFIG_KEYS.filter((k) => !keys.includes(k));
  if (unknown.length || missing.length) {
    throw new Error(`viewer-config.json: ${unknown.length ? `unknown keys ${unknown.join(", ")}` : ""}` +
                    `${missing.length ? ` missing keys ${missing.join(", ")}` : ""}`.trim());
  }
  if (document.version !== CONFIG_VERSION) throw new Error(`viewer-config.json: version ${document.version}, not ${CONFIG_VERSION}`);
  let oidc = null;
  if (document.oidc !== null) {
    const o = document.oidc;
    if (!o || typeof o !== "object" || Object.keys(o).some((k) => !OIDC_KEYS.includes(k))) {
      throw new Error(`viewer-config.json: oidc has keys other than ${OIDC_KEYS.join(", ")}`);
    }
    for (const k of ["issuer", "client_id", "scope"]) {
      if (typeof o[k] !== "string" || !o[k]) throw new Error(`viewer-config.json: oidc.${k} must be a string`);
    }
    if (o.audience != null && typeof o.audience !== "string") throw new Error("viewer-config.json: oidc.audience must be a string");
    oidc = Object.freeze({ issuer: o.issuer, clientId: o.client_id, scope: o.scope, audience: o.audience ?? null,
                           issuerOrigin: originOf(new URL(o.issuer).origin, "oidc.issuer") });
  }
  const tokenOrigins = originList(document, "token_origins");
  const pixelOrigins = originList(document, "pixel_origins");
  if (tokenOrigins.some((o) => !pixelOrigins.includes(o))) throw new Error("viewer-config.json: a token origin is not a pixel origin");
  return Object.freeze({
    pixelOrigins, tokenOrigins,
    sourceOrigins: originList(document, "source_origins"),
    embedOrigins: originList(document, "embed_origins"),
    oidc,
  });
}

/** Nothing configured: the viewer's own origin only. */
export const DEFAULT_CONFIG = readConfig({ version: 1, pixel_origins: [], source_origins: [], embed_origins: [],
                                           token_origins: [], oidc: null });

let loaded = null;

/** The site's settings (fetched once per page; same origin, no redirect followed). */
export function loadConfig() {
  loaded ??= fetch(new URL("./viewer-config.json", import.meta.url), { redirect: "error", credentials: "same-origin" })
    .then((response) => (response.ok ? response.json().then(readConfig) : DEFAULT_CONFIG))
    .catch((error) => {
      console.warn(`viewer settings not read (${error.message || error}): this site's own origin only`);
      return DEFAULT_CONFIG;
    });
  return loaded;
}
