"""The ``pyjpip`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pyjpip import __version__
from pyjpip.errors import PyjpipError


#: A module a command needs that is not among pyjpip's own dependencies → the extra that brings it,
#: by command where it differs ("*": any command).
EXTRAS = {"pynetdicom": {"*": "network"}, "psycopg": {"*": "postgresql"}, "glymur": {"*": "png"},
          "numpy": {"*": "ingest", "fetch": "png"}, "imagecodecs": {"*": "ingest"},
          "gunicorn": {"*": "server"}, "uvicorn": {"*": "server"},
          "uvicorn_worker": {"*": "server"}, "h11": {"*": "server"}, "joserfc": {"*": "auth"},
          "cryptography": {"*": "auth"}}


def missing_module_hint(command: str, module: str | None) -> str:
    """One line saying what to install for a module an optional feature needs."""
    extras = EXTRAS.get((module or "").split(".")[0], {})
    extra = extras.get(command, extras.get("*"))
    return f"; install it with: pip install 'pyjpip[{extra}]'" if extra else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyjpip", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pyjpip {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request and decision")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="answer JPIP requests for the files under ROOT, and serve a site")
    serve.add_argument("root", nargs="?", help="folder of JPEG 2000 files, served at /jpip?target=<path in ROOT>")
    serve.add_argument("--static", metavar="DIR", help="also serve this built site (static/) at /")
    serve.add_argument("--cache", metavar="DIR", help="keep packet indexes in DIR")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--db", metavar="URL", help="list the studies of this archive database (postgresql://...); "
                       "a store's own pyjpip.sqlite is found without it")
    serve.add_argument("--proxy", action="append", default=[], metavar="PATH=URL",
                       help="also answer GET PATH/... from URL/... (a DICOMweb root of a PACS that sends no CORS "
                            "headers, e.g. /orthanc=http://pacs:8042/dicom-web); repeatable")
    serve.add_argument("--sessions", metavar="DIR", help="keep JPIP sessions in DIR (shared by every server and "
                       "worker that answers them; default: this process's memory)")
    serve.add_argument("--channel-path", default="jpip", metavar="PATH",
                       help="the path JPIP-cnew gives for a session's later requests (default jpip); a host behind "
                            "a proxy names itself here, e.g. host1/jpip, so its channels come back to it")
    serve.add_argument("--cors-jpip", metavar="ORIGINS", default="*",
                       help="origins whose pages may read JPIP answers, comma-separated (default *; '' for none)")
    serve.add_argument("--cors-dicomweb", metavar="ORIGINS", default="",
                       help="origins whose pages may read DICOMweb answers (default: same origin only)")
    _viewer_options(serve)
    serve.add_argument("--workers", type=int, default=0, metavar="N",
                       help="production: N worker processes (gunicorn with uvicorn's asyncio HTTP server) "
                            "instead of the dev server")
    serve.add_argument("--max-connections", type=int, default=1024, metavar="N",
                       help="connections held at once (per worker in production); beyond, 503 (default 1024)")
    serve.add_argument("--max-connections-per-client", type=int, default=64, metavar="N",
                       help="connections one address may hold (per worker in production); beyond, 503 and closed "
                            "at once; a --trusted-proxy is not counted (default 64)")
    serve.add_argument("--head-seconds", type=float, default=10.0, metavar="S",
                       help="close a connection whose request head has not come whole in S seconds (default 10)")
    serve.add_argument("--certfile", metavar="FILE", help="serve HTTPS only (TLS 1.2 or 1.3) with this PEM "
                       "certificate chain")
    serve.add_argument("--keyfile", metavar="FILE", help="the private key of --certfile (default: in it)")
    serve.add_argument("--hsts-seconds", type=int, default=31536000, metavar="S",
                       help="with --certfile, answers carry Strict-Transport-Security: max-age=S (default one year; "
                            "0: none)")
    serve.add_argument("--max-sessions", type=int, default=256, metavar="N",
                       help="JPIP sessions open at once (over every worker sharing --sessions); beyond, cnew is "
                            "answered 503 and clients go on statelessly (default 256)")
    serve.add_argument("--max-sessions-per-client", type=int, default=32, metavar="N",
                       help="JPIP sessions one client (its token's subject, else its address) may hold of "
                            "--max-sessions; beyond, cnew is answered 503 with Retry-After (default 32)")
    serve.add_argument("--session-idle", type=float, default=600.0, metavar="S",
                       help="close a JPIP session unused this long (default 600)")
    serve.add_argument("--idle-seconds", type=float, default=60.0, metavar="S",
                       help="close a connection idle (or not reading) this long (default 60)")
    _access_options(serve)

    scp = commands.add_parser("store-scp", help="a Storage SCP: receive hollow and ordinary objects into a store")
    scp.add_argument("--ae-title", default="PYJPIP", help="this SCP's AE title (default PYJPIP)")
    scp.add_argument("--port", type=int, default=11112)
    scp.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    scp.add_argument("--store", required=True, metavar="DIR", help="where received objects are kept")
    scp.add_argument("--db", metavar="URL", help="shred into this database (postgresql://... or sqlite:///PATH); "
                     "default: DIR/pyjpip.sqlite")
    scp.add_argument("--files", action="store_true", help="keep the objects as received files in DIR/files "
                     "(with --db, in the database as well)")
    scp.add_argument("--http-port", type=int, metavar="P", help="also serve JPIP and DICOMweb for the store "
                     "on port P (ordinary objects' pixels are then served from here)")
    scp.add_argument("--url-base", metavar="URL", help="where this store's JPIP is reached, for ordinary objects' "
                     "Pixel Data Provider URLs (default http://HOST:HTTP-PORT)")
    scp.add_argument("--static", metavar="DIR", help="with --http-port, serve the viewer site too")
    scp.add_argument("--http-certfile", metavar="FILE", help="with --http-port, HTTPS only with this PEM certificate "
                     "chain (as serve --certfile)")
    scp.add_argument("--http-keyfile", metavar="FILE", help="the private key of --http-certfile (default: in it)")
    scp.add_argument("--deflate", action="store_true", help="ingested objects become .95/.205 (deflated)")
    scp.add_argument("--max-associations", type=int, default=64, metavar="N",
                     help="associations at once (default 64); past that A-ASSOCIATE-RJ 'local limit exceeded', and "
                          "connections past it and --max-connecting-per-peer are closed at once")
    scp.add_argument("--max-connecting-per-peer", type=int, default=8, metavar="N",
                     help="connections one peer address may hold before they are associations (waiting for the "
                          "A-ASSOCIATE-RQ or in the TLS handshake; default 8): silent connections from one host "
                          "cannot shut the others out")
    _dicom_access_options(scp)
    scp.add_argument("--transfer-syntax", action="append", metavar="UID", dest="transfer_syntaxes",
                     help="accept only these transfer syntaxes (repeatable; default: the four JPIP ones, then "
                          "uncompressed, deflated, JPEG 2000, HTJ2K, RLE, JPEG, JPEG-LS and deflated frames)")
    scp.add_argument("--max-hollow-bytes", type=int, default=64 << 20, metavar="N",
                     help="refuse hollow data sets (inflated) larger than N bytes (default 64 MiB)")
    _ordinary_limit_option(scp)
    _verify_option(scp)
    _access_options(scp, " (with --http-port)", audit=False)
    _viewer_options(scp)  # the viewer on --http-port --static: senders' JPIP servers are pixel origins to list
    _url_policy_options(scp, "store only hollow objects whose Pixel Data Provider URL is on HOST (host, "
                        "host:port or *.domain; repeatable; default: any host)",
                        "store only hollow objects whose Pixel Data Provider URL is SCHEME (http or https; "
                        "repeatable; default both)")

    scu = commands.add_parser("store-scu", help="send hollow objects (or any DICOM files) to a Storage SCP")
    scu.add_argument("host")
    scu.add_argument("port", type=int)
    scu.add_argument("inputs", nargs="+", metavar="FILE-OR-FOLDER")
    scu.add_argument("--ae-title", default="PYJPIP", help="this SCU's AE title (default PYJPIP)")
    scu.add_argument("--called-ae", default="PYJPIP", help="the SCP's AE title (default PYJPIP; pyjpip's SCP "
                                                            "accepts only its own)")
    scu.add_argument("--timeout", type=float, default=30.0)
    _dicom_tls_client_options(scu)
    _url_policy_options(scu, *_GATEWAY_HELP)

    push = commands.add_parser("push", help="ingest ordinary DICOM into your store and send its hollow objects, "
                               "whose pixels stay with you, to a Storage SCP")
    push.add_argument("host")
    push.add_argument("port", type=int)
    push.add_argument("inputs", nargs="+", metavar="FILE-OR-FOLDER")
    push.add_argument("--store", required=True, metavar="DIR", help="your JPIP store (served by `pyjpip serve DIR`)")
    push.add_argument("--url-base", required=True, metavar="URL",
                      help="where your store's JPIP server is reached by the receivers, e.g. http://me.example:8000")
    push.add_argument("--ae-title", default="PYJPIP")
    push.add_argument("--called-ae", default="PYJPIP", help="the SCP's AE title (default PYJPIP)")
    push.add_argument("--deflate", action="store_true", help="send .95/.205 (deflated) hollow objects")
    push.add_argument("--htj2k", action="store_true", help="encode HTJ2K (.204/.205) where re-encoding is needed")
    push.add_argument("--timeout", type=float, default=30.0)
    _dicom_tls_client_options(push)
    _ordinary_limit_option(push)
    _verify_option(push)
    _url_policy_options(push, *_GATEWAY_HELP)

    dicom = commands.add_parser("dicom", help="describe a DICOM object with JPEG 2000 pixel data")
    dicom.add_argument("file")
    dicom.add_argument("--frame", type=int, default=1, help="frame number, counted from 1")
    dicom.add_argument("--json", action="store_true", help="print JSON")
    _ordinary_limit_option(dicom)

    info = commands.add_parser("info", help="describe a JPEG 2000 file: geometry, coding, data-bins")
    info.add_argument("file")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--cache", metavar="DIR", help="keep packet indexes in DIR (opening again is fast)")

    repack = commands.add_parser("repacketize", help="rewrite a codestream's packets for JPIP (no decoding): "
                                 "128x128 precincts, RPCL, PLT/TLM; samples decode identically")
    repack.add_argument("file", help="a raw codestream or a JP2/JPH file (its first codestream is taken)")
    repack.add_argument("output", help="OUT.j2c: the rewritten raw codestream")
    repack.add_argument("--precinct", type=int, default=128, choices=[64, 128, 256, 512],
                        help="precinct width and height where the code-blocks allow (default 128)")

    fetch = commands.add_parser("fetch", help="fetch a view window from a JPIP server")
    fetch.add_argument("url", help="JPIP target URL, e.g. http://host/jpip?target=image.jp2")
    fetch.add_argument("--fsiz", help="frame size W,H[,round-down|round-up|closest]")
    fetch.add_argument("--roff", help="region offset X,Y in the frame")
    fetch.add_argument("--rsiz", help="region size W,H in the frame")
    fetch.add_argument("--layers", type=int)
    fetch.add_argument("--comps", help="components, e.g. 0,2-3")
    fetch.add_argument("--stream", type=int, help="codestream (DICOM frame n is stream n)")
    fetch.add_argument("--len", type=int, dest="length", help="bytes per response (more requests)")
    fetch.add_argument("--stateless", action="store_true", help="no session: send model= each time")
    fetch.add_argument("-o", "--output", required=True, help="OUT.j2k (rebuilt codestream) or OUT.png")
    _url_policy_options(fetch, "fetch only from HOST (host, host:port or *.domain; repeatable; default: any host)",
                        "fetch only over SCHEME (http or https; repeatable; default both)")

    ingest = commands.add_parser("ingest", help="turn DICOM files into a JPIP store and hollow objects")
    ingest.add_argument("inputs", nargs="+", metavar="INPUT", help="DICOM files or folders")
    ingest.add_argument("--store", required=True, metavar="DIR")
    ingest.add_argument("--url-base", required=True, metavar="URL",
                        help="where the store will be served, e.g. http://pacs.example:8000")
    ingest.add_argument("--deflate", action="store_true", help="write .95/.205 (deflated) hollow objects")
    ingest.add_argument("--htj2k", action="store_true", help="encode HTJ2K (.204/.205) instead of Part 1")
    _ordinary_limit_option(ingest)
    _verify_option(ingest)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose or args.command in ("serve", "store-scp")
                        else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not args.verbose:
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # a line per PDU otherwise
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "info":
            return _info(args)
        if args.command == "fetch":
            return _fetch(args)
        if args.command == "repacketize":
            return _repacketize(args)
        if args.command == "ingest":
            return _ingest(args)
        if args.command == "store-scp":
            return _store_scp(args)
        if args.command == "store-scu":
            return _store_scu(args)
        if args.command == "push":
            return _push(args)
        return _dicom(args)
    except ImportError as exc:
        print(f"pyjpip {args.command}: {exc}{missing_module_hint(args.command, exc.name)}", file=sys.stderr)
        return 1
    except (PyjpipError, OSError, ValueError) as exc:
        print(f"pyjpip {args.command}: {exc}", file=sys.stderr)
        return 1


def _access_options(parser, where: str = "", audit: bool = True) -> None:
    """Who may ask (issue 23): bearer JWTs, a trusted proxy's header, or explicitly no one checked."""
    group = parser.add_argument_group("authentication and authorization" + where)
    group.add_argument("--auth-issuer", action="append", default=[], metavar="URL", dest="auth_issuers",
                       help="accept bearer JWTs from this OpenID issuer, keys from its /.well-known/"
                            "openid-configuration (repeatable: e.g. a receiver's IdP trusted by a sender)")
    group.add_argument("--auth-audience", metavar="AUD", help="the aud the tokens must carry (this server)")
    group.add_argument("--auth-jwks-url", action="append", default=[], metavar="URL", dest="auth_jwks_urls",
                       help="the issuer's JWKS instead of discovery (ISSUER=URL with several issuers)")
    group.add_argument("--auth-leeway", type=float, default=60.0, metavar="S",
                       help="clock skew allowed on exp/nbf/iat (default 60 s)")
    group.add_argument("--auth-scope-claim", metavar="NAME",
                       help="the claim holding scopes or roles (default scope, then scp; a.b walks into objects, "
                            "e.g. realm_access.roles); pyjpip.read, pyjpip.store, pyjpip.admin grant the actions")
    group.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR|CIDR", dest="trusted_proxies",
                       help="a reverse proxy in front (address or network, e.g. the nginx host; repeatable): its "
                            "X-Forwarded-For names the client, its connections are not capped per address, and "
                            "with --trusted-user-header its user header is believed (from any other peer, both "
                            "headers are ignored)")
    group.add_argument("--trusted-user-header", metavar="NAME", help="the proxy's user header, e.g. X-Forwarded-User")
    group.add_argument("--trusted-scopes-header", metavar="NAME",
                       help="the proxy's header of scopes or groups (default: read only)")
    group.add_argument("--access-policy", metavar="FILE|MODULE:CALLABLE",
                       help="which studies an identity may see: a JSON claims policy or a site's own callable "
                            "(default: any authenticated reader reads every study)")
    group.add_argument("--no-auth", action="store_true", help="no authentication: anyone who reaches the port "
                       "reads everything (open demos)")
    if audit:  # (store-scp has its own, for the DICOM side and the HTTP side alike)
        group.add_argument("--audit-file", metavar="PATH", help="append DICOM audit messages (PS3.15 A.5) to PATH")
        group.add_argument("--audit-syslog", metavar="URL", help="send them to syslog: udp://host:514, "
                           "tcp://host:601 or tls://host:6514")


def _access_settings(args, host: str, what: str):
    """The AccessSettings the options say; refuses a non-loopback address without a choice."""
    from pyjpip.security.access import AccessSettings, is_loopback

    settings = AccessSettings(tuple(args.auth_issuers), args.auth_audience, tuple(args.auth_jwks_urls),
                              args.auth_leeway, args.auth_scope_claim, tuple(args.trusted_proxies),
                              args.trusted_user_header, args.trusted_scopes_header, args.access_policy, args.no_auth,
                              args.audit_file, args.audit_syslog)
    if not settings.chosen and not is_loopback(host):
        raise ValueError(f"{what} on {host} (not loopback) needs an authentication choice: --auth-issuer URL "
                         "--auth-audience AUD, --trusted-proxy ADDR --trusted-user-header NAME, or --no-auth")
    settings.check()
    settings.build()  # a policy file or module that is wrong, an audit file that cannot be: said now
    return settings


def _serve(args) -> int:
    from pyjpip.transport.http_server import make_server

    if args.root is None and args.static is None:
        raise FileNotFoundError("nothing to serve: give a ROOT folder of JPEG 2000 files, --static DIR, or both")
    from pyjpip.transport.site import CORSPolicy

    access = _access_settings(args, args.host, "serve")
    site_options = dict(cache_dir=args.cache, database_url=args.db, proxies=_proxies(args.proxy),
                        sessions_dir=args.sessions, channel_path=args.channel_path,
                        session_limit=args.max_sessions, client_session_limit=args.max_sessions_per_client,
                        idle_timeout=args.session_idle,
                        cors=CORSPolicy(_origin_list(args.cors_jpip), _origin_list(args.cors_dicomweb)),
                        access=access, viewer=_viewer_config(args))
    if args.workers:
        return _serve_production(args, site_options)
    server = make_server(args.static, args.host, args.port, jpip_root=args.root, **_http_options(args),
                         **site_options)
    host, port = server.server_address[:2]
    what = " and ".join(filter(None, [args.static, args.root and f"JPIP for {args.root} at /jpip"]))
    print(f"pyjpip serving {what} at {'https' if args.certfile else 'http'}://{host}:{port}/  "
          f"({access.describe()}; Ctrl-C stops)", flush=True)
    activity = _application_activity(access, f"serve on {host}:{port}")
    _stop_on_sigterm()  # uvicorn raises the signal again once it has stopped: then this ends the command
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        activity.stopped()
    return 0


class _application_activity:
    """Application Start now and Application Stop on ``stopped()`` in the audit trail the settings name
    (PS3.15 A.5.3.1), with the account that launched the server."""

    def __init__(self, access, detail: str):
        import getpass
        import os

        from pyjpip.security import audit

        self.audit, self.detail = audit, detail
        self.trail = access.audit_trail()
        self.participants = [audit.Participant("pyjpip", False, role=audit.APPLICATION),
                             audit.Participant(getpass.getuser(), True, role=audit.APPLICATION_LAUNCHER)]
        self.trail.record(audit.application_activity(True, self.participants, detail=detail))
        self.process = os.getpid()

    def stopped(self) -> None:
        import os

        if os.getpid() != self.process:  # a forked worker leaving: the server has not stopped
            return
        self.trail.record(self.audit.application_activity(False, self.participants, detail=self.detail))
        self.trail.close()


def _http_options(args) -> dict:
    """The HTTP layer's settings, the same for the dev server and the production workers."""
    if args.keyfile and not args.certfile:
        raise PyjpipError("--keyfile needs --certfile")
    return dict(max_connections=args.max_connections, idle_seconds=args.idle_seconds, head_seconds=args.head_seconds,
                max_connections_per_client=args.max_connections_per_client, trusted_proxies=tuple(args.trusted_proxies),
                certfile=args.certfile, keyfile=args.keyfile, hsts_seconds=args.hsts_seconds)


def _serve_production(args, site_options: dict) -> int:
    from functools import partial

    from pyjpip.transport.site import make_site
    from pyjpip.transport.asgi import run_gunicorn

    make = partial(make_site, args.static, args.root, **site_options)
    make()  # refuse a wrong folder here, before any worker starts

    activity = []

    def ready(address):
        activity.append(_application_activity(site_options["access"], f"serve on {address[0]}:{address[1]} with "
                                                                     f"{args.workers} workers"))
        print(f"pyjpip serving at {'https' if args.certfile else 'http'}://{address[0]}:{address[1]}/ with "
              f"{args.workers} workers (sessions {'in ' + args.sessions if args.sessions else 'per worker'}; "
              f"{site_options['access'].describe()})", flush=True)

    http = _http_options(args)
    try:
        run_gunicorn(make, args.host, args.port, args.workers, idle_seconds=http["idle_seconds"],
                     max_connections=http["max_connections"], head_seconds=http["head_seconds"],
                     per_address=http["max_connections_per_client"], trusted=http["trusted_proxies"],
                     certfile=http["certfile"], keyfile=http["keyfile"], hsts_seconds=http["hsts_seconds"],
                     on_ready=ready)
    finally:  # gunicorn's arbiter ends with SystemExit once its workers have stopped
        for started in activity:
            started.stopped()
    return 0


def _viewer_options(parser) -> None:
    """The viewer's settings (served at /viewer-config.json, and the site's Content-Security-Policy)."""
    group = parser.add_argument_group("viewer", "what the viewer page may fetch, who may embed it, where it signs in")
    group.add_argument("--viewer-pixel-origin", action="append", default=[], metavar="ORIGIN",
                       help="an origin other than this site's that hollow objects' Pixel Data Provider URLs may name "
                            "(scheme://host[:port]; repeatable; default: none, pixels from this site only)")
    group.add_argument("--viewer-token-origin", action="append", default=[], metavar="ORIGIN",
                       help="a --viewer-pixel-origin that takes this site's bearer token (repeatable; default none)")
    group.add_argument("--viewer-allow-origin", action="append", default=[], metavar="ORIGIN",
                       help="an origin other than this site's that ?dicom=, ?jpip= and ?dicomweb= may name "
                            "(repeatable; default: this site only)")
    group.add_argument("--embed-origin", action="append", default=[], metavar="ORIGIN",
                       help="a page origin that may frame the viewer and drive its postMessage API (repeatable; "
                            "default: this site only)")
    group.add_argument("--oidc-issuer", metavar="URL", help="the OpenID Connect issuer the viewer signs in with "
                       "(default: the --auth-issuer, when there is one)")
    group.add_argument("--oidc-client-id", metavar="ID", help="the viewer's client id at that issuer")
    group.add_argument("--oidc-scope", default="openid", metavar="S", help="the scope asked for (default openid)")
    group.add_argument("--oidc-audience", metavar="AUD", help="the audience asked for, if the issuer needs one")


def _viewer_config(args):
    from pyjpip.transport.viewer_config import ViewerConfig

    # The viewer signs in where the server's tokens come from: --oidc-issuer, or the one --auth-issuer.
    trusted = getattr(args, "auth_issuers", None) or []
    issuer = args.oidc_issuer or (trusted[0] if args.oidc_client_id and len(trusted) == 1 else None)
    return ViewerConfig.from_options(args.viewer_pixel_origin, args.viewer_allow_origin, args.embed_origin,
                                     args.viewer_token_origin, issuer, args.oidc_client_id, args.oidc_scope,
                                     args.oidc_audience)


_GATEWAY_HELP = ("when an SCP takes no JPIP syntax and the pixels are fetched to go with the object, fetch "
                 "only from HOST (host, host:port or *.domain; repeatable; default: any host)",
                 "... and only over SCHEME (http or https; repeatable; default both)")


def _url_policy_options(parser, host_help: str, scheme_help: str) -> None:
    parser.add_argument("--allow-pixel-host", action="append", metavar="HOST", dest="allow_pixel_hosts",
                        help=host_help)
    parser.add_argument("--allow-pixel-scheme", action="append", metavar="SCHEME", dest="allow_pixel_schemes",
                        help=scheme_help)


def _url_policy(args):
    """The URL policy the options say (http and https, any host, when they say nothing)."""
    from pyjpip.network.url_policy import URLPolicy

    try:
        return URLPolicy.from_options(args.allow_pixel_hosts, args.allow_pixel_schemes)
    except ValueError as error:
        raise PyjpipError(f"--allow-pixel-host/--allow-pixel-scheme: {error}") from None


def _ordinary_limit_option(parser) -> None:
    parser.add_argument("--max-ordinary-bytes", type=int, default=4 << 30, metavar="N",
                        help="refuse DICOM objects with their pixels larger than N bytes, or inflating past it "
                             "(default 4 GiB)")


def _origin_list(text: str) -> tuple[str, ...]:
    return tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())


def _dicom(args) -> int:
    from pyjpip.browser import describe_image
    from pyjpip.dicom.limits import read_limited

    data = read_limited(args.file, args.max_ordinary_bytes)  # refused by its size before it is read
    description = describe_image(data, source=args.file, frame=args.frame, limit=args.max_ordinary_bytes)
    description["codestream_bytes"] = len(description["codestream_bytes"])
    if args.json:
        print(json.dumps(description, indent=2))
    else:
        cs, grey = description["codestream"], description["greyscale"]
        print(f"{args.file}: {description['attributes']['Modality']} {cs['width']}x{cs['height']}, "
              f"{cs['precision']}-bit {'signed' if cs['signed'] else 'unsigned'}, "
              f"frame {args.frame} of {description['number_of_frames']}, {description['codestream_bytes']} bytes")
        print(f"  codestream: {cs['decomposition_levels']} levels, {cs['layers']} layers, "
              f"{cs['progression_order']}, {cs['tiles']} tile(s){', HTJ2K' if cs['high_throughput'] else ''}")
        print(f"  window: center {grey['window_center']} width {grey['window_width']} {grey['voi_lut_function']}"
              f"{', inverted (MONOCHROME1)' if grey['invert'] else ''}")
        for problem in description["mismatches"]:
            print(f"  warning: {problem}")
    return 0


def _info(args) -> int:
    from pyjpip.codestream.describe import describe_source, format_description
    from pyjpip.codestream.source import JPEG2000Source

    source = JPEG2000Source.open(args.file, cache_dir=args.cache)
    description = describe_source(source)
    print(json.dumps(description, indent=2) if args.json else format_description(description))
    return 0


def _repacketize(args) -> int:
    from pyjpip.codestream.repacketize import repacketize
    from pyjpip.codestream.source import JPEG2000Source

    source = JPEG2000Source.open(args.file)
    data = bytes(source.codestream(0).data)
    result = repacketize(data, args.precinct.bit_length() - 1)
    with open(args.output, "wb") as f:
        f.write(result.codestream)
    sizes = sorted({(1 << x, 1 << y) for x, y in result.precinct_exponents})
    print(f"{args.output}: {len(result.codestream):,} bytes (source codestream {len(data):,}), "
          f"{result.order.name}, precincts {', '.join(f'{w}x{h}' for w, h in sizes)}, {result.packets:,} packets")
    return 0


def _pair(text: str | None, name: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        x, y = (int(v) for v in text.split(","))
    except ValueError:
        raise PyjpipError(f"--{name} wants two whole numbers, X,Y (got {text!r})") from None
    return x, y


def _fetch(args) -> int:
    import time

    from pyjpip.jpip.client import JPIPClient, ViewWindow, fetch_whole_window
    from pyjpip.jpip.picture import rebuild_served
    from pyjpip.transport.http_client import HTTPTransport

    if not args.output.lower().endswith((".j2k", ".png")):
        raise PyjpipError(f"-o {args.output}: the output must end in .j2k or .png")
    fsiz, direction = None, "round-down"
    if args.fsiz:
        parts = args.fsiz.split(",")
        fsiz = _pair(",".join(parts[:2]), "fsiz")
        direction = parts[2] if len(parts) > 2 else direction
    window = ViewWindow(fsiz=fsiz, round=direction, roff=_pair(args.roff, "roff"), rsiz=_pair(args.rsiz, "rsiz"),
                        comps=args.comps, layers=args.layers, stream=args.stream)
    transport = HTTPTransport(policy=_url_policy(args))
    transport.policy.check(args.url)  # refused before anything is sent; redirects are refused as they come
    client = JPIPClient(args.url, stateless=args.stateless, length_limit=args.length)
    started = time.perf_counter()
    try:
        requests = fetch_whole_window(client, window, transport)
    finally:
        transport.close()
    view = rebuild_served(client, window)
    if view is None:
        raise PyjpipError(f"{args.url}: the server sent no main header")
    if args.output.lower().endswith(".j2k"):
        with open(args.output, "wb") as f:
            f.write(view.codestream)
    else:
        from pyjpip.tools.png import write_view_png

        write_view_png(view, args.output)
    seconds = time.perf_counter() - started
    print(f"{requests} request(s), {client.bytes_received:,} bytes received in {seconds:.2f} s; "
          f"{args.output}: discard {view.reduce} level(s), {view.rebuilt.layers_complete} layer(s) complete")
    return 0


def _verify_option(command) -> None:
    command.add_argument("--no-verify", action="store_true",
                         help="skip the proof at ingest (decoding every frame to be served and comparing it with the "
                              "source's own decoding before it counts as stored): for trusted bulk loads only")


def _ingest(args) -> int:
    from pyjpip.dicom.ingest import ingest, print_progress

    report = ingest(args.inputs, args.store, args.url_base, deflate=args.deflate, high_throughput=args.htj2k,
                    progress=print_progress if sys.stderr.isatty() else None, maximum_bytes=args.max_ordinary_bytes,
                    verify=not args.no_verify)
    needing = {path for paths in report.missing_modules.values() for path in paths}
    for path, reason in report.failed:
        if path not in needing:
            print(f"pyjpip ingest: {path}: {reason}", file=sys.stderr)
    for module, paths in report.missing_modules.items():  # one line, not one per file
        print(f"pyjpip ingest: {len(paths)} file(s) need {module}, which is not installed"
              f"{missing_module_hint('ingest', module)}"
              f"{'' if args.no_verify else ' (JPEG 2000 sources need it only for the proof: --no-verify skips it)'}",
              file=sys.stderr)
    if report.supplied:
        print(f"pyjpip ingest: {len(report.supplied)} object(s) had no Study or Series Instance UID and were given "
              "one derived from what they carry (patient, study and series attributes)", file=sys.stderr)
    print(f"{len(report.ingested)} ingested, {len(report.skipped)} already in the store, "
          f"{len(report.failed)} failed; store: {args.store}")
    return 1 if report.failed and not (report.ingested or report.skipped) else 0


def _proxies(given: list[str]) -> dict[str, str]:
    proxies = {}
    for item in given:
        path, sep, url = item.partition("=")
        if not sep or not path.startswith("/") or not url.startswith(("http://", "https://")):
            raise PyjpipError(f"--proxy {item!r}: give PATH=URL, e.g. /orthanc=http://127.0.0.1:8042/dicom-web")
        proxies[path.rstrip("/")] = url.rstrip("/")
    return proxies


def _dicom_access_options(scp) -> None:
    """store-scp: called and calling AE titles, senders' permissions, timeouts, TLS, audit (issue 23)."""
    scp.add_argument("--any-called-ae", action="store_true",
                     help="accept associations whatever AE title they call (default: only --ae-title; others get "
                          "A-ASSOCIATE-RJ 'called AE title not recognised')")
    scp.add_argument("--sender", action="append", default=[], metavar="AE[@ADDRESS-or-CIDR][:create|update]",
                     dest="senders",
                     help="a calling AE title that may store, the addresses or networks it may come from "
                          "(comma-separated; IPv6 in brackets) and its permission: create (new instances, and its own "
                          "again) or update (also replace another sender's instance); repeatable. With any "
                          "--sender or --senders-file, every other calling AE or address is rejected at association. "
                          "Without: any calling AE may create, none may update another sender's instance")
    scp.add_argument("--senders-file", metavar="FILE",
                     help='JSON {"senders": [{"ae_title": "CT1", "addresses": ["10.1.2.0/24"], '
                          '"permission": "create"}]}, with --sender or instead of it')
    scp.add_argument("--artim-timeout", type=float, default=10.0, metavar="S",
                     help="seconds from TCP connection (and TLS handshake) to A-ASSOCIATE-RQ (default 10)")
    scp.add_argument("--acse-timeout", type=float, default=30.0, metavar="S",
                     help="seconds for association messages once accepted (default 30)")
    scp.add_argument("--dimse-timeout", type=float, default=60.0, metavar="S",
                     help="seconds for each DIMSE message (default 60)")
    scp.add_argument("--network-timeout", type=float, default=60.0, metavar="S",
                     help="seconds an association may stay silent before it is aborted (default 60)")
    scp.add_argument("--tls-certfile", metavar="PEM", help="DICOM over TLS (PS3.15 B.9, BCP 195: TLS 1.2 or later): "
                                                             "this SCP's certificate (chain)")
    scp.add_argument("--tls-keyfile", metavar="PEM", help="its private key (default: in --tls-certfile)")
    scp.add_argument("--tls-ca", metavar="PEM", help="require a client certificate issued by this CA (mutual TLS)")
    scp.add_argument("--audit-file", metavar="PATH", help="append DICOM audit messages (PS3.15 A.5) to PATH")
    scp.add_argument("--audit-syslog", metavar="URL",
                     help="send audit messages to syslog: udp://host:514, tcp://host:601 or tls://host:6514")


def _dicom_tls_client_options(command) -> None:
    command.add_argument("--tls", action="store_true", help="DICOM over TLS (PS3.15 B.9, BCP 195: TLS 1.2 or later; "
                                                            "the SCP's certificate and host name verified)")
    command.add_argument("--tls-ca", metavar="PEM", help="CA certificates the SCP's certificate is checked against "
                                                         "(default: the system's)")
    command.add_argument("--tls-certfile", metavar="PEM", help="this SCU's certificate, for an SCP that requires one")
    command.add_argument("--tls-keyfile", metavar="PEM", help="its private key (default: in --tls-certfile)")


def _tls_requestor(args):
    if not (args.tls or args.tls_ca or args.tls_certfile):
        return None
    from pyjpip.network.secure_transport import requestor_context

    return requestor_context(args.tls_ca, args.tls_certfile, args.tls_keyfile)


def _store_scp(args) -> int:
    import socket

    from pyjpip.archive import open_archive
    from pyjpip.network.association_server import Timeouts
    from pyjpip.network.scp import StorageSCP
    from pyjpip.network.senders import SenderPolicy, load_senders, parse_sender
    from pyjpip.security import audit

    policy = _url_policy(args)
    senders = SenderPolicy([*map(parse_sender, args.senders),
                            *(load_senders(args.senders_file) if args.senders_file else [])])
    timeouts = Timeouts(args.artim_timeout, args.acse_timeout, args.dimse_timeout, args.network_timeout)
    tls_context = None
    if args.tls_certfile:
        from pyjpip.network.secure_transport import acceptor_context

        tls_context = acceptor_context(args.tls_certfile, args.tls_keyfile, args.tls_ca)
    elif args.tls_keyfile or args.tls_ca:
        raise PyjpipError("--tls-keyfile and --tls-ca need --tls-certfile")
    if not (1 <= args.max_connecting_per_peer <= args.max_associations):
        raise PyjpipError("--max-connecting-per-peer: between 1 and --max-associations")
    trail = audit.AuditTrail.from_options(file=args.audit_file, syslog=args.audit_syslog)
    archive = open_archive(args.store, args.db, args.files)
    url_base = args.url_base
    server = None
    if args.http_port is not None:
        import threading

        from pyjpip.transport.http_server import make_server

        http_host = "127.0.0.1" if args.host in ("127.0.0.1", "localhost") else args.host
        access = _access_settings(args, http_host, "store-scp --http-port")
        server = make_server(args.static, http_host, args.http_port, jpip_root=args.store, database_url=args.db,
                             access=access, audit_trail=trail,  # one trail for the DICOM and HTTP sides
                             certfile=args.http_certfile, keyfile=args.http_keyfile, viewer=_viewer_config(args))
        threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
        port = server.server_address[1]
        scheme = "https" if args.http_certfile else "http"
        if url_base is None:
            visible = socket.getfqdn() if http_host in ("0.0.0.0", "::") else http_host
            url_base = f"{scheme}://{visible}:{port}"
        print(f"pyjpip store-scp: JPIP and DICOMweb for {args.store} at {scheme}://{http_host}:{port}/", flush=True)
    scp = StorageSCP(args.ae_title, args.store, archive, url_base, deflate=args.deflate,
                     maximum_hollow_bytes=args.max_hollow_bytes, maximum_ordinary_bytes=args.max_ordinary_bytes,
                     transfer_syntaxes=args.transfer_syntaxes, url_policy=policy if policy.restricted else None,
                     verify=not args.no_verify, senders=senders, any_called_ae=args.any_called_ae, timeouts=timeouts,
                     per_peer=args.max_connecting_per_peer, tls_context=tls_context, trail=trail)
    where = [f"{args.store}/files" if args.files else None,
             (args.db or f"{args.store}/pyjpip.sqlite") if args.db or not args.files else None]
    print(f"pyjpip store-scp: {args.ae_title} listening on {args.host}:{args.port}, storing into "
          f"{' and '.join(w for w in where if w)}  (Ctrl-C stops)", flush=True)
    if policy.restricted:
        print(f"pyjpip store-scp: Pixel Data Provider URLs taken: {policy.describe()}", flush=True)
    tls = ("TLS with client certificates" if args.tls_ca else "TLS") if tls_context else "no TLS"
    print(f"pyjpip store-scp: called AE {'any' if args.any_called_ae else args.ae_title}; senders: "
          f"{senders.describe()}; {tls}; audit: {trail.describe()}", flush=True)
    _stop_on_sigterm()
    try:
        scp.start(args.host, args.port, block=True, maximum_associations=args.max_associations)
    except KeyboardInterrupt:
        pass
    finally:
        scp.stopped()
        trail.close()
        archive.close()
        if server is not None:
            server.shutdown()
    return 0


def _stop_on_sigterm() -> None:
    """SIGTERM stops as Ctrl-C does (the stop is then audited and the archive closed)."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _send_report(report, what: str) -> int:
    width = max((len(s.sop_instance_uid or s.path) for s in report.sent), default=0)
    print(f"{'instance':<{width}}  status")
    for sent in report.sent:
        print(f"{sent.sop_instance_uid or sent.path:<{width}}  {sent.describe()}")
    stored = len(report.sent) - len(report.failed)
    print(f"{stored} of {len(report.sent)} {what} in {report.seconds:.1f} s; {len(report.failed)} failed")
    return 1 if report.failed or not report.sent else 0


def _store_scu(args) -> int:
    from pyjpip.network.scu import print_progress, store

    report = store(args.host, args.port, args.inputs, args.ae_title, args.called_ae, progress=print_progress,
                   timeout=args.timeout, url_policy=_url_policy(args), tls_context=_tls_requestor(args))
    return _send_report(report, "stored")


def _push(args) -> int:
    from pyjpip.network.push import push
    from pyjpip.network.scu import print_progress

    report, ingest_report, warning = push(args.host, args.port, args.inputs, args.store, args.url_base,
                                          args.ae_title, args.called_ae, deflate=args.deflate,
                                          high_throughput=args.htj2k, progress=print_progress, timeout=args.timeout,
                                          url_policy=_url_policy(args), maximum_bytes=args.max_ordinary_bytes,
                                          verify=not args.no_verify, tls_context=_tls_requestor(args))
    for path, reason in ingest_report.failed:
        print(f"pyjpip push: {path}: not ingested: {reason}", file=sys.stderr)
    if warning:
        print(f"pyjpip push: warning: {warning}", file=sys.stderr)
    code = _send_report(report, "pushed")
    return 1 if ingest_report.failed else code
