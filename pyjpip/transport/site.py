"""Everything pyjpip answers over HTTP, once, for every adapter (the dev server, the ASGI app):
JPIP at /jpip (and its path targets), a store's DICOMweb at /dicomweb/, configured upstreams under
their prefixes, and the built site everywhere else; with one CORS policy and one set of limits.

Sans-IO in the h11 sense: a method, a path, a query, the request headers, a way to read the
body and the TCP peer's address go in; a Response comes out. The adapters only move bytes, so both
answer alike, and one set of tests runs against both.

Access (issue 23) is decided here, once, for every surface (``_protected``): JPIP, DICOMweb (lists,
metadata, hollow objects), proxied upstreams and the site's data files (static/data/) need an
identity with the read scope (pyjpip.security: bearer JWT or a trusted proxy's header; 401 with
``WWW-Authenticate`` saying what was wrong, 403 ``insufficient_scope``); the viewer's own files
(html, js, css, wasm, wheels) stay public so it can load and sign in. Per study, the access policy
decides: lists are filtered to what the identity may see, and a study (its metadata, hollow
objects, JPIP targets) it may not see is 404, as one that does not exist. Every access and refusal
goes to the audit trail (PS3.15 A.5.3): queries, a study's first access per identity, failed
logins.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import mimetypes
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping
from urllib.parse import unquote, urlsplit

from pyjpip.response import Response, error_response
from pyjpip.security import audit
from pyjpip.security.identity import READ
from pyjpip.transport.viewer_config import PATH as VIEWER_CONFIG_PATH, ViewerConfig

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
#: The built site's data (demo DICOM and images): patient data, so read access is needed. The rest
#: of the site (the viewer's application files) is public.
DATA_PREFIX = "/data/"
EXPOSED_HEADERS = ("Pyjpip-Codestream-Length, JPIP-cnew, JPIP-tid, JPIP-qid, JPIP-fsiz, JPIP-roff, JPIP-rsiz, "
                   "JPIP-comps, JPIP-layers, JPIP-stream, JPIP-len, JPIP-quality, WWW-Authenticate")
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
        else:
            headers.append(("Access-Control-Expose-Headers", "WWW-Authenticate"))
        return headers


@dataclass
class Site:
    """The routes. ``jpip`` is a JPIPServer core, ``dicomweb`` a DicomWebStore, ``static_root`` the
    built site, ``proxies`` path prefixes mapped to upstream DICOMweb URLs; ``access`` who may ask
    what (pyjpip.security.access.AccessControl; None: open, everyone may do everything), ``audit``
    where accesses and refusals are recorded (default: the access control's trail)."""

    jpip: object = None
    dicomweb: object = None
    static_root: str | None = None
    proxies: dict[str, str] = field(default_factory=dict)
    cors: CORSPolicy = field(default_factory=CORSPolicy)
    limits: Limits = field(default_factory=Limits)
    access: object = None
    audit: object = None
    viewer: ViewerConfig = field(default_factory=ViewerConfig)

    def __post_init__(self):
        from pyjpip.security.access import AccessControl
        from pyjpip.security.authorization import StudyDirectory

        if self.static_root is not None:
            self.static_root = os.path.realpath(self.static_root)
        if hasattr(self.access, "build"):  # AccessSettings: built here (each production worker its own)
            self.access = self.access.build()
        if self.access is None:
            self.access = AccessControl.open(self.audit)
        elif self.audit is not None:
            self.access.audit = self.audit
        self.audit = self.access.audit
        self.directory = StudyDirectory(getattr(self.dicomweb, "catalog", None),
                                        getattr(getattr(self.jpip, "store", None), "root", None))

    def handle(self, method: str, path: str, query: str, headers: Mapping[str, str],
               read_body: Callable[[int], bytes], peer: str | None = None, client: str | None = None) -> Response:
        """Answer one request; never raises (an unexpected failure is a 500 that says so). ``peer`` is
        the TCP peer's IP address (a trusted proxy's header is believed only from a pinned one);
        ``client`` who asks, the key per-client limits are kept by (default: ``peer``; an
        authenticated subject replaces both)."""
        kind = "jpip" if self._is_jpip(path) else "dicomweb" if path.startswith(DICOMWEB_PREFIX) else "site"
        try:
            response = self._route(method, path, query, headers, read_body, kind, peer, client or peer)
        except Exception as error:  # noqa: BLE001 - the last line of defence of a server
            log.exception("%s %s failed", method, path[:200])
            response = error_response(500, f"internal error: {type(error).__name__}")
        patient_data = kind != "site" or self._proxied(path) is not None
        secure_headers(response, patient_data)
        if kind == "site":
            response.headers.extend(self._viewer_headers)
        response.headers.extend(self.cors.headers(kind, headers.get("Origin")))
        return response

    def _route(self, method, path, query, headers, read_body, kind, peer=None, client=None) -> Response:
        if len(query) > self.limits.query:
            return error_response(414, f"a query of {len(query)} bytes is over this server's {self.limits.query}; "
                                       "send long JPIP requests by POST")
        if method == "OPTIONS":
            return self._preflight(kind, headers.get("Origin"))
        proxied = self._proxied(path)
        protected = proxied is not None or kind != "site" or (self.static_root is not None and self._is_data(path))
        identity = None
        if protected:
            identity = self._identify(headers, peer, path)
            refused = identity if isinstance(identity, Response) else self._require_read(identity, peer, path, query)
            if refused is not None:
                refused.close_connection = refused.close_connection or method == "POST"  # its body is not read
                return refused
        if proxied is not None:
            if method not in ("GET", "HEAD"):
                return error_response(405, f"{method} is not passed on to an upstream; send GET")
            self.audit.record(audit.query(audit.SUCCESS, self._participants(identity, peer),
                                          path + (f"?{query}" if query else ""), detail="proxied upstream"))
            return forward(proxied + (f"?{query}" if query else ""), headers.get("Accept"))
        if kind == "jpip":
            return self._jpip(method, path, query, headers, read_body, identity, peer, client)
        if method == "POST":
            return error_response(405, "POST is only for JPIP requests at /jpip")
        if method not in ("GET", "HEAD"):
            return error_response(405, f"{method} is not answered here; send GET")
        if kind == "dicomweb":
            if self.dicomweb is None:
                return error_response(404, "this server has no store to list")
            return self._dicomweb(path, query, identity, peer)
        if self.static_root is None:
            return error_response(404, "this server has no static site; JPIP is at /jpip")
        if path == VIEWER_CONFIG_PATH:
            return self._viewer_config()
        response = self._static(path, headers)
        if protected and response.status == 200 and self.access.once(identity.key, "data", path):
            self.audit.record(audit.instances_accessed("R", audit.SUCCESS, self._participants(identity, peer),
                                                       detail=f"site data file {path[:200]}"))
        return response

    # -- access (issue 23): one place for every surface -------------------------------------------------

    def _is_data(self, path: str) -> bool:
        """Whether a path names the site's data, however written (//data/x, /%64ata/x: as _static reads it)."""
        parts = [p for p in unquote(path, errors="replace").split("/") if p]
        return bool(parts) and parts[0] == DATA_PREFIX.strip("/")

    def _participants(self, identity, peer) -> list:
        if identity is None or identity.anonymous:
            requestor = audit.Participant("anonymous", True, peer)
        else:
            requestor = audit.Participant(identity.subject, True, peer, user_name=str(identity),
                                          alternative_user_id=identity.issuer)
        return [requestor]

    def _identify(self, headers, peer, path):
        """The request's Identity, or the 401 (503 when keys cannot be had) that says why not; logins
        and failed logins are audited (a success once per credential in a while)."""
        from pyjpip.errors import AuthenticationError, MissingCredentialsError
        from pyjpip.security.access import credential_key

        authentication = self.access.authentication
        try:
            identity = authentication.authenticate(headers, peer)
            if identity is None:
                raise MissingCredentialsError(f"{path[:200]}: no token: send Authorization: Bearer <access token> "
                                              f"(realm {authentication.realm})")
        except AuthenticationError as error:
            log.info("%s %s: authentication failed: %s", peer, path[:200], error)
            self.audit.record(audit.user_authentication(
                audit.MINOR_FAILURE if error.status == 401 else audit.SERIOUS_FAILURE,
                [audit.Participant("unknown", True, peer)], detail=f"{path[:200]}: {error}"))
            headers_out = [("WWW-Authenticate", authentication.challenge(error))] if error.status == 401 else []
            return error_response(error.status, str(error), headers_out)
        if not identity.anonymous and self.access.once("login", credential_key(headers), identity.key):
            self.audit.record(audit.user_authentication(audit.SUCCESS, self._participants(identity, peer),
                                                        detail=f"{identity.method}"))
        return identity

    def _require_read(self, identity, peer, path, query) -> Response | None:
        decision = self.access.authorizer.decide(identity, READ)
        if decision.allowed:
            return None
        scope = self.access.authorizer.vocabulary.scope_for(READ)
        self.audit.record(audit.security_alert(audit.MINOR_FAILURE, self._participants(identity, peer),
                                               audit.USE_OF_RESTRICTED_FUNCTION,
                                               detail=f"{path[:200]}: {decision.reason}"))
        return error_response(403, decision.reason,
                              [("WWW-Authenticate", self.access.authentication.insufficient_scope(decision.reason,
                                                                                                   scope))])

    def _study_decision(self, identity, study: str):
        """(the Decision on reading ``study``, its Patient ID); the store is not asked when the identity
        sees every study (the patient is then looked up only for the audit message)."""
        from pyjpip.security.authorization import Decision

        if self.access.authorizer.sees_everything(identity):
            return Decision(True), None
        exists, patient = self.directory.patient_of(study)
        return self.access.authorizer.decide(identity, READ, study, patient), patient

    def _dicomweb(self, path: str, query: str, identity, peer) -> Response:
        name = unquote(path)
        parts = [p for p in name[len(DICOMWEB_PREFIX):].split("/") if p]
        participants = self._participants(identity, peer)
        asked = name + (f"?{query}" if query else "")
        study = parts[1] if len(parts) >= 2 and parts[0] == "studies" else None
        if study is not None:
            decision, patient = self._study_decision(identity, study)
            if not decision.allowed:
                self.audit.record(audit.instances_accessed("R", audit.MINOR_FAILURE, participants, study_uid=study,
                                                           detail=f"{asked[:200]}: {decision.reason}"))
                return error_response(404, f"{name}: no such study, series or instance in this store")
        response = self.dicomweb.handle(name, query)
        if response.status == 200 and parts == ["studies"] and not self.access.authorizer.sees_everything(identity):
            response = self._visible_studies(response, identity)
        outcome = audit.SUCCESS if response.status < 400 else audit.MINOR_FAILURE
        lists = len(parts) in (1, 3, 5) and parts[-1] in ("studies", "series", "instances")
        if lists:
            self.audit.record(audit.query(outcome, participants, asked[:1000],
                                          detail=None if outcome == audit.SUCCESS else f"answered {response.status}"))
        elif study is not None and response.status == 200 and self.access.once(identity.key, "study", study):
            patient = patient or self.directory.patient_of(study)[1]
            self.audit.record(audit.instances_accessed("R", audit.SUCCESS, participants, study_uid=study,
                                                       patient_id=patient, detail=f"DICOMweb {name[:200]}"))
        return response

    def _visible_studies(self, response: Response, identity) -> Response:
        """A QIDO-RS study list cut to the studies the identity may see."""
        import json

        entries = json.loads(b"".join(response.body))
        kept = [e for e in entries if self.access.authorizer.decide(
            identity, READ, (e.get("0020000D", {}).get("Value") or [""])[0],
            (e.get("00100020", {}).get("Value") or [None])[0]).allowed]
        data = json.dumps(kept).encode()
        return Response(response.status, response.headers, iter([data]), len(data))

    def _target_check(self, identity, peer):
        """The JPIP core's ``authorize(target)``: a target belongs to its study (the store's index)."""
        from pyjpip.jpip.request import RequestError

        def authorize(target: str) -> None:
            if self.access.authorizer.sees_everything(identity) and identity.may(READ):
                if self.access.once(identity.key, "jpip", target):  # the store is asked for the audit only
                    study = self.directory.study_of_target(target)
                    patient = self.directory.patient_of(study)[1] if study else None
                    self.audit.record(audit.instances_accessed("R", audit.SUCCESS, self._participants(identity, peer),
                                                               study_uid=study, patient_id=patient,
                                                               detail=f"JPIP target {target[:200]}"))
                return
            study = self.directory.study_of_target(target)
            patient = None
            if study is not None:
                decision, patient = self._study_decision(identity, study)
            else:
                decision = self.access.authorizer.decide(identity, READ)
            if not decision.allowed:
                self.audit.record(audit.instances_accessed("R", audit.MINOR_FAILURE, self._participants(identity, peer),
                                                           study_uid=study,
                                                           detail=f"JPIP target {target[:200]}: {decision.reason}"))
                raise RequestError(404, f"target {target[:200]!r} does not exist")
            if self.access.once(identity.key, "jpip", target):
                self.audit.record(audit.instances_accessed("R", audit.SUCCESS, self._participants(identity, peer),
                                                           study_uid=study, patient_id=patient,
                                                           detail=f"JPIP target {target[:200]}"))

        return authorize

    def _viewer_config(self) -> Response:
        """/viewer-config.json: the viewer's settings (pyjpip.transport.viewer_config)."""
        body = self.viewer.to_json()
        return Response(200, [("Content-Type", "application/json"), ("Cache-Control", "no-cache")],
                        iter([body]), len(body))

    @functools.cached_property
    def _viewer_headers(self) -> tuple[tuple[str, str], ...]:
        """Content Security Policy and framing for the site's files (pyjpip.transport.content_security):
        the viewer's settings are fixed, so the header is made once."""
        from pyjpip.transport.content_security import site_headers

        return tuple(site_headers(self.viewer)) if self.static_root is not None else ()

    def _is_jpip(self, path: str) -> bool:
        """/jpip, a target under it, or the channel path this server names in JPIP-cnew (path=,
        C.3.3): behind a proxy, a host's own channel path leads its sessions' requests back to it."""
        return (path == JPIP_PATH or path.startswith(JPIP_PATH + "/")
                or (self.jpip is not None and path == "/" + self.jpip.channel_path))

    def _preflight(self, kind: str, origin: str | None) -> Response:
        headers = []
        if self.cors.headers(kind, origin):
            headers = [("Access-Control-Allow-Methods", "GET, POST, OPTIONS" if kind == "jpip" else "GET, OPTIONS"),
                       ("Access-Control-Allow-Headers", "Content-Type, Accept, Authorization"),
                       ("Access-Control-Max-Age", "86400")]
        return Response(204, headers, iter(()), 0)

    def _jpip(self, method, path, query, headers, read_body, identity=None, peer=None, client=None) -> Response:
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
        owner = None if identity is None or identity.anonymous else identity.key
        response = self.jpip.handle(method, query, time.monotonic(), path_target, owner=owner,
                                    authorize=self._target_check(identity, peer) if identity is not None else None,
                                    client=owner or client)
        if response.status == 403:  # another identity's channel: refused by the core, recorded here
            message = b"".join(response.body)
            response.body = iter([message])
            self.audit.record(audit.security_alert(audit.MINOR_FAILURE, self._participants(identity, peer),
                                                   audit.USE_OF_RESTRICTED_FUNCTION,
                                                   detail=f"JPIP: {message.decode(errors='replace').strip()}"))
        return response

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
              channel_path: str = "jpip", access=None, audit_trail=None, viewer: ViewerConfig | None = None,
              **jpip_options) -> Site:
    """The site for these folders, as both adapters build it. ``access`` is an AccessSettings (built
    here, so each production worker has its own key cache) or an AccessControl; None: open. ``viewer``:
    the viewer's settings (/viewer-config.json and the Content-Security-Policy)."""
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
    return Site(jpip, dicomweb, static_root, dict(proxies or {}), cors or CORSPolicy(), limits or Limits(),
                access, audit_trail, viewer or ViewerConfig())
