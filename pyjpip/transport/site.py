"""Everything pyjpip answers over HTTP, once, for every adapter (the dev server, the ASGI app):
JPIP at /jpip (and its path targets), a store's DICOMweb at /dicomweb/, configured upstreams under
their prefixes, and the built site everywhere else; with one CORS policy and one set of limits.

Sans-IO in the h11 sense: a method, a path, a query, the request headers and a way to read the
body go in; a Response comes out. The adapters only move bytes, so both answer alike, and one set
of tests runs against both.
"""

from __future__ import annotations

import email.utils
import logging
import mimetypes
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping
from urllib.parse import unquote, urlsplit

from pyjpip.response import Response, error_response

log = logging.getLogger(__name__)

#: Types the browser insists on (module scripts, streaming WebAssembly compilation) or that
#: Python's mimetypes may not know on a bare machine.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".zip": "application/zip",
    ".whl": "application/zip",
    ".dcm": "application/dicom",
    ".j2k": "image/j2c",
    ".j2c": "image/j2c",
    ".jp2": "image/jp2",
    ".map": "application/json",
}
JPIP_PATH = "/jpip"
DICOMWEB_PREFIX = "/dicomweb/"
EXPOSED_HEADERS = ("Pyjpip-Codestream-Length, JPIP-cnew, JPIP-tid, JPIP-qid, JPIP-fsiz, JPIP-roff, JPIP-rsiz, "
                   "JPIP-comps, JPIP-layers, JPIP-stream, JPIP-len, JPIP-quality")
#: A proxied DICOMweb answer (a study's metadata) larger than this is refused.
MAXIMUM_PROXIED_BYTES = 256 << 20
FILE_CHUNK = 1 << 16


@dataclass(frozen=True)
class Limits:
    """Sizes beyond which a request is refused before any work (the HTTP servers bound the request
    line and headers themselves: see the production command). The JPIP client sends queries over
    2000 bytes by POST, so ``query`` only stops abuse."""

    query: int = 8000  # under gunicorn's request line limit (8190), so both servers say why
    post: int = 1 << 20


@dataclass(frozen=True)
class CORSPolicy:
    """Which other origins' pages may read the answers. DICOMweb carries patient attributes: same
    origin only unless configured. JPIP pixels default to every origin (embedding the viewer on a
    portal); a deployment narrows it. An entry is an origin (``https://portal.example``) or ``*``."""

    jpip: tuple[str, ...] = ("*",)
    dicomweb: tuple[str, ...] = ()

    def headers(self, kind: str, origin: str | None) -> list[tuple[str, str]]:
        allowed = self.jpip if kind == "jpip" else self.dicomweb if kind == "dicomweb" else ()
        if "*" in allowed:
            value = "*"
        elif origin and origin in allowed:
            value = origin
        else:
            return [("Vary", "Origin")] if allowed else []
        headers = [("Access-Control-Allow-Origin", value)]
        if value != "*":
            headers.append(("Vary", "Origin"))
        if kind == "jpip":
            headers.append(("Access-Control-Expose-Headers", EXPOSED_HEADERS))
        return headers


@dataclass
class Site:
    """The routes. ``jpip`` is a JPIPServer core, ``dicomweb`` a DicomWebStore, ``static_root`` the
    built site, ``proxies`` path prefixes mapped to upstream DICOMweb URLs."""

    jpip: object = None
    dicomweb: object = None
    static_root: str | None = None
    proxies: dict[str, str] = field(default_factory=dict)
    cors: CORSPolicy = field(default_factory=CORSPolicy)
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self):
        if self.static_root is not None:
            self.static_root = os.path.realpath(self.static_root)

    def handle(self, method: str, path: str, query: str, headers: Mapping[str, str],
               read_body: Callable[[int], bytes], peer: str | None = None, client: str | None = None) -> Response:
        """Answer one request; never raises (an unexpected failure is a 500 that says so). ``peer`` is
        the TCP peer's IP address; ``client`` who asks, the key per-client limits are kept by (an
        authenticated subject; default: ``peer``)."""
        kind = "jpip" if self._is_jpip(path) else "dicomweb" if path.startswith(DICOMWEB_PREFIX) else "site"
        try:
            response = self._route(method, path, query, headers, read_body, kind, client or peer)
        except Exception as error:  # noqa: BLE001 - the last line of defence of a server
            log.exception("%s %s failed", method, path[:200])
            response = error_response(500, f"internal error: {type(error).__name__}")
        patient_data = kind != "site" or self._proxied(path) is not None
        secure_headers(response, patient_data)
        response.headers.extend(self.cors.headers(kind, headers.get("Origin")))
        return response

    def _route(self, method, path, query, headers, read_body, kind, client) -> Response:
        if len(query) > self.limits.query:
            return error_response(414, f"a query of {len(query)} bytes is over this server's {self.limits.query}; "
                                       "send long JPIP requests by POST")
        if method == "OPTIONS":
            return self._preflight(kind, headers.get("Origin"))
        proxied = self._proxied(path)
        if proxied is not None:
            if method not in ("GET", "HEAD"):
                return error_response(405, f"{method} is not passed on to an upstream; send GET")
            return forward(proxied + (f"?{query}" if query else ""), headers.get("Accept"))
        if kind == "jpip":
            return self._jpip(method, path, query, headers, read_body, client)
        if method == "POST":
            return error_response(405, "POST is only for JPIP requests at /jpip")
        if method not in ("GET", "HEAD"):
            return error_response(405, f"{method} is not answered here; send GET")
        if kind == "dicomweb":
            if self.dicomweb is None:
                return error_response(404, "this server has no store to list")
            return self.dicomweb.handle(unquote(path), query)
        if self.static_root is None:
            return error_response(404, "this server has no static site; JPIP is at /jpip")
        return self._static(path, headers)

    def _is_jpip(self, path: str) -> bool:
        """/jpip, a target under it, or the channel path this server names in JPIP-cnew (path=,
        C.3.3): behind a proxy, a host's own channel path leads its sessions' requests back to it."""
        return (path == JPIP_PATH or path.startswith(JPIP_PATH + "/")
                or (self.jpip is not None and path == "/" + self.jpip.channel_path))

    def _preflight(self, kind: str, origin: str | None) -> Response:
        headers = []
        if self.cors.headers(kind, origin):
            headers = [("Access-Control-Allow-Methods", "GET, POST, OPTIONS" if kind == "jpip" else "GET, OPTIONS"),
                       ("Access-Control-Allow-Headers", "Content-Type, Accept"),
                       ("Access-Control-Max-Age", "86400")]
        return Response(204, headers, iter(()), 0)

    def _jpip(self, method, path, query, headers, read_body, client) -> Response:
        if self.jpip is None:
            return error_response(404, "this server was started without a JPIP root")
        path_target = unquote(path[len(JPIP_PATH) + 1 :], errors="replace") if path.startswith(JPIP_PATH + "/") \
            else None
        if method == "POST":
            length = headers.get("Content-Length")
            if length is None:
                return _unread(411, f"a JPIP POST needs a Content-Length (at most {self.limits.post} bytes)")
            if not length.strip().isdigit():
                return _unread(400, f"Content-Length {length[:40]!r} is not a number of bytes")
            if int(length) > self.limits.post:
                return _unread(413, f"a JPIP POST of {int(length)} bytes is over this server's {self.limits.post}")
            query = read_body(int(length))
        elif method == "HEAD":
            return error_response(405, "HEAD is not answered for JPIP; send GET or POST")
        return self.jpip.handle(method, query, time.monotonic(), path_target, client)

    def _proxied(self, path: str) -> str | None:
        """The upstream URL for a path under a proxy prefix (never a path that leaves it)."""
        for prefix, upstream in self.proxies.items():
            if path == prefix or path.startswith(prefix + "/"):
                rest = path[len(prefix):]
                if ".." in unquote(rest).split("/"):
                    return None
                return upstream + rest
        return None

    def _static(self, path: str, headers: Mapping[str, str]) -> Response:
        """A file of the built site: no listings, nothing outside the folder, revalidated (no-cache)."""
        name = unquote(path, errors="replace")
        parts = [p for p in name.split("/") if p]
        if ("\x00" in name or "\\" in name or "\ufffd" in name
                or any(p in (".", "..") or p.startswith(".") for p in parts)):
            return error_response(404, f"{path[:200]}: no such file")
        full = os.path.realpath(os.path.join(self.static_root, *parts))
        if os.path.commonpath([full, self.static_root]) != self.static_root:
            return error_response(404, f"{path[:200]}: no such file")
        if os.path.isdir(full):
            if not path.endswith("/"):
                return Response(301, [("Location", path + "/"), ("Content-Length", "0")], iter(()), 0)
            full = os.path.join(full, "index.html")
        try:
            handle = open(full, "rb")
        except OSError:  # not there, a folder, a name no file system takes (ENAMETOOLONG), unreadable
            return error_response(404, f"{path[:200]}: no such file")
        status = os.fstat(handle.fileno())
        modified = email.utils.formatdate(status.st_mtime, usegmt=True)
        type_ = CONTENT_TYPES.get(os.path.splitext(full)[1].lower()) or mimetypes.guess_type(full)[0] \
            or "application/octet-stream"
        common = [("Content-Type", type_), ("Last-Modified", modified), ("Cache-Control", "no-cache")]
        since = headers.get("If-Modified-Since")
        if since:
            try:
                if int(status.st_mtime) <= email.utils.parsedate_to_datetime(since).timestamp():
                    handle.close()
                    return Response(304, common, iter(()), 0)
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
        return Response(200, common, _file_chunks(handle), status.st_size)


def secure_headers(response: Response, patient_data: bool) -> None:
    """Headers every answer carries, whatever the transport. nosniff: a browser takes the type as
    sent (a JPP-stream or a DICOM file is never run as a script or a page). no-referrer: URLs carry
    Study and SOP Instance UIDs and JPIP targets, which must not leave in a Referer. Patient data
    (JPIP, DICOMweb, proxied DICOMweb) is no-store (RFC 9111 5.2.2.5): no browser or proxy keeps it
    on disk; neither pyjpip client uses the HTTP cache (their own caches are in memory: data-bins,
    the study list), and JPIP answers have no validators, so no-cache kept them for no reuse.
    Content-Security-Policy and frame-ancestors are the viewer's (the site's pages), not set here."""
    if patient_data:
        response.headers[:] = [h for h in response.headers if h[0].lower() != "cache-control"]
        response.headers.append(("Cache-Control", "no-store"))
    response.headers.append(("X-Content-Type-Options", "nosniff"))
    response.headers.append(("Referrer-Policy", "no-referrer"))


class _file_chunks:
    """A file's bytes in chunks; closed when sent or abandoned."""

    def __init__(self, handle):
        self.handle = handle

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        data = self.handle.read(FILE_CHUNK)
        if not data:
            self.close()
            raise StopIteration
        return data

    def close(self) -> None:
        self.handle.close()


def _unread(status: int, message: str) -> Response:
    """A refusal sent without reading the body: the connection cannot carry another request."""
    response = error_response(status, message)
    response.close_connection = True
    return response


def forward(url: str, accept: str | None) -> Response:
    """GET ``url`` from a configured upstream (a PACS's DICOMweb) for a page of this origin: status,
    type and body passed on; redirects are not followed (they could lead anywhere)."""
    import http.client

    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.netloc, timeout=30)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                           headers={"Accept": accept or "*/*"})
        upstream = connection.getresponse()
        body = upstream.read(MAXIMUM_PROXIED_BYTES + 1)
    except (OSError, http.client.HTTPException) as error:
        return error_response(502, f"the upstream {parts.scheme}://{parts.netloc} did not answer ({error})")
    finally:
        connection.close()
    if len(body) > MAXIMUM_PROXIED_BYTES:
        return error_response(502, f"the upstream's answer is over {MAXIMUM_PROXIED_BYTES} bytes")
    if 300 <= upstream.status < 400:
        return error_response(502, f"the upstream answered {upstream.status} (a redirect, not followed)")
    headers = [("Content-Type", upstream.getheader("Content-Type") or "application/octet-stream"),
               ("Cache-Control", "no-cache")]
    return Response(upstream.status, headers, iter([body]), len(body))


def make_site(static_root: str | None = None, jpip_root: str | None = None, *, cache_dir: str | None = None,
              database_url: str | None = None, proxies: dict[str, str] | None = None,
              sessions_dir: str | None = None, cors: CORSPolicy | None = None, limits: Limits | None = None,
              channel_path: str = "jpip", **jpip_options) -> Site:
    """The site for these folders, as both adapters build it."""
    from pyjpip.dicom.dicomweb import DicomWebStore
    from pyjpip.jpip.server import JPIPServer

    if static_root is not None and not os.path.isfile(os.path.join(static_root, "index.html")):
        raise FileNotFoundError(f"{static_root} has no index.html; run `python3 build.py build` first")
    if jpip_root is not None and not os.path.isdir(jpip_root):
        raise FileNotFoundError(f"JPIP root {jpip_root} is not a folder")
    if static_root is None and jpip_root is None:
        raise ValueError("nothing to serve: give a JPIP root, a static folder or both")
    sessions = None
    if sessions_dir:
        from pyjpip.archive.sessions import FolderSessions

        sessions = FolderSessions(sessions_dir)
    jpip = JPIPServer(jpip_root, cache_dir=cache_dir, sessions=sessions, channel_path=channel_path,
                      **jpip_options) if jpip_root else None
    # The store's catalog: an archive database, received files or an ingested store's index.json
    # (answers 404 when ROOT is none of them).
    dicomweb = DicomWebStore(jpip_root, database_url) if jpip_root else None
    return Site(jpip, dicomweb, static_root, dict(proxies or {}), cors or CORSPolicy(), limits or Limits())
