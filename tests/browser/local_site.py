"""The built site served on a free local port in a thread, as `pyjpip serve` runs it."""

import threading
from contextlib import contextmanager

from paths import ROOT
from pyjpip.transport.http_server import make_server


@contextmanager
def served(jpip_root=None, static: bool = True, cors=None, viewer=None, hits=None, authorization=None, **site_options):
    """static/ (unless not ``static``) and JPIP + DICOMweb over ``jpip_root`` on 127.0.0.1, with ``cors`` (a
    pyjpip.transport.site.CORSPolicy) and ``viewer`` (a pyjpip.transport.viewer_config.ViewerConfig) if
    given; every request's (method, path) is appended to the list ``hits`` if given, its (path,
    Authorization header or None) to ``authorization``. Yields the base URL with a final '/'."""
    options = {**({"cors": cors} if cors else {}), **({"viewer": viewer} if viewer else {}), **site_options}
    server = make_server(str(ROOT / "static") if static else None, "127.0.0.1", 0,
                         jpip_root=None if jpip_root is None else str(jpip_root), **options)
    if hits is not None or authorization is not None:
        app = server.server.config.app  # the ASGI app uvicorn loads when it starts serving

        async def counted(scope, receive, send):
            if scope["type"] == "http":
                if hits is not None:
                    hits.append((scope["method"], scope["path"]))
                if authorization is not None and scope["method"] != "OPTIONS":
                    value = dict(scope["headers"]).get(b"authorization")
                    authorization.append((scope["path"], None if value is None else value.decode("latin-1")))
            await app(scope, receive, send)

        server.server.config.app = counted
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def ingested(sources, store):
    """DICOM objects in ``sources`` ingested into an empty ``store`` with URLs of a server serving it."""
    from pyjpip.dicom.ingest import ingest

    (store / "index.json").write_text('{"instances": {}}')
    with served(store) as base:
        assert not ingest([str(sources)], str(store), base.rstrip("/")).failed
        yield base
