// Every fetch the viewer makes (the page, the Python worker's own fetches; the worker's Python has the
// same rule in pyjpip.transport.pyodide_fetch.FetchPolicy) passes here: only the viewer's own origin
// and the configured pixel (and source) origins (viewer-config.js), no redirect followed (RFC 9110
// 15.4: a 3xx could lead anywhere), cookies only to the own origin, the bearer token (RFC 6750 2.1)
// only to the own origin and the configured token origins. A refused URL is a RefusedURL (kind
// "refused", as pyjpip.errors) and no request is made.

export class RefusedURL extends Error {
  constructor(message, url) {
    super(message);
    this.name = "RefusedURL";
    this.kind = "refused";
    this.url = url;
  }
}

const shown = (url) => (String(url).length > 120 ? `${String(url).slice(0, 120)}...` : String(url));

export class FetchPolicy {
  /** config: readConfig's settings; origin: the viewer's own (the page's, or the worker's location). */
  constructor(config, origin = self.location.origin) {
    this.origin = origin;
    this.config = config;
    this.others = new Set([...config.pixelOrigins, ...config.sourceOrigins]);
    this.tokenOrigins = new Set(config.tokenOrigins);
    this.token = null;
  }

  setToken(token) { this.token = token || null; }

  /** The URL, if the viewer may fetch it; else RefusedURL, before any request. */
  check(url) {
    let parsed;
    try {
      parsed = new URL(url, self.location.href);
    } catch {
      throw new RefusedURL(`${shown(url)} is not a URL`, url);
    }
    if (parsed.origin !== this.origin && !this.others.has(parsed.origin)) {
      const others = [...this.others];
      throw new RefusedURL(`pixels at ${shown(parsed.href)} are not on this viewer's list of pixel servers ` +
                           `(its own site ${this.origin}${others.length ? `, ${others.join(", ")}` : ""})`, parsed.href);
    }
    return parsed;
  }

  /**
   * A URL the page was asked to open (?dicom=, ?jpip=, ?dicomweb=, the element's src or server): the
   * viewer's own origin, or one configured with --viewer-allow-origin. Otherwise anyone could show a
   * study of their making under this viewer's address.
   */
  checkSource(url, what) {
    let parsed;
    try {
      parsed = new URL(url, self.location.href);
    } catch {
      throw new RefusedURL(`${what} ${shown(url)} is not a URL`, url);
    }
    if (parsed.origin !== this.origin && !this.config.sourceOrigins.includes(parsed.origin)) {
      throw new RefusedURL(`${what} names ${shown(parsed.href)}, which is neither this viewer's site nor one it is ` +
                           "configured to open (pyjpip serve --viewer-allow-origin)", parsed.href);
    }
    return parsed;
  }

  /** fetch(url, init) under the policy. */
  async fetch(url, init = {}) {
    const parsed = this.check(url);
    const own = parsed.origin === this.origin;
    const headers = new Headers(init.headers || {});
    if (this.token && (own || this.tokenOrigins.has(parsed.origin))) headers.set("Authorization", `Bearer ${this.token}`);
    else headers.delete("Authorization");
    const response = await fetch(parsed.href, { ...init, headers, redirect: "manual", referrerPolicy: "no-referrer",
                                                credentials: own ? "same-origin" : "omit" });
    if (response.type === "opaqueredirect" || (response.status >= 300 && response.status < 400)) {
      throw new RefusedURL(`${shown(parsed.href)}: the server answered with a redirect, which this viewer does not follow`,
                           parsed.href);
    }
    return response;
  }
}
