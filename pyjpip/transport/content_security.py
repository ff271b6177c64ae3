"""The headers that keep the site's pages to themselves: Content Security Policy (CSP Level 3,
W3C) and framing (frame-ancestors), from the viewer's configuration (viewer_config.ViewerConfig).

What the viewer needs, and nothing more (tests/browser/test_viewer_security.py runs it under this
policy in Chromium):
- script-src 'self' 'wasm-unsafe-eval': its own modules and workers; Pyodide and OpenJPEG compile
  WebAssembly (no 'unsafe-eval', no inline script);
- connect-src 'self' and the configured pixel and source origins and the OpenID issuer: every
  fetch of the page and of its workers (a worker's policy is its script's response's);
- img-src 'self' blob: data:; worker-src 'self'; style-src 'self' (styles set through the CSSOM
  are not style attributes in markup);
- frame-ancestors 'self' and the configured embedders (or 'none' when framing is off);
- base-uri 'none', form-action 'self', object-src 'none'.
"""

from __future__ import annotations

from pyjpip.transport.viewer_config import ViewerConfig


def content_security_policy(config: ViewerConfig, framing: bool = True) -> str:
    """The Content-Security-Policy header's value for the site's files."""
    connect = " ".join(("'self'", *config.connect_origins()))
    ancestors = " ".join(("'self'", *config.embed_origins)) if framing else "'none'"
    directives = [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        f"connect-src {connect}",
        "img-src 'self' blob: data:",
        "style-src 'self'",
        "worker-src 'self'",
        "font-src 'self'",
        f"frame-ancestors {ancestors}",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ]
    return "; ".join(directives)


def site_headers(config: ViewerConfig, framing: bool = True) -> list[tuple[str, str]]:
    """Headers for every file of the built site (pages, their modules, their workers); the headers
    every answer carries (nosniff, Referrer-Policy) are site.secure_headers'."""
    return [("Content-Security-Policy", content_security_policy(config, framing))]
