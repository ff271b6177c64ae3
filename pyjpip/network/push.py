"""The seed's case: ordinary DICOM ingested into the sender's own JPIP store, then its hollow objects
sent to a Storage SCP, their Pixel Data Provider URLs pointing back at the sender's JPIP server.

PS3.4 B.4.3.1 asks a sender of such references to say how long they stay valid: here, as long as
the sender serves its store (`pyjpip serve STORE`). A server that does not answer now is said
before anything is sent, since no receiver could then see a pixel, and so is a server that answers
with a redirect: receivers follow none (pyjpip.network.url_policy), so neither does the check.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
from urllib.parse import urlsplit

from pyjpip.dicom.ingest import ingest
from pyjpip.dicom.limits import MAXIMUM_ORDINARY_BYTES
from pyjpip.network import scu
from pyjpip.network.url_policy import DEFAULT_POLICY, URLPolicy

log = logging.getLogger(__name__)


def push(host: str, port: int, inputs: list[str], store: str, url_base: str, ae_title: str = "PYJPIP",
         called_ae_title: str = "PYJPIP", deflate: bool = False, high_throughput: bool = False, progress=None,
         timeout: float = 30.0, url_policy: URLPolicy | None = None,
         maximum_bytes: int = MAXIMUM_ORDINARY_BYTES, verify: bool = True, tls_context=None):
    """Returns (the SCU's report, the ingest report, a warning or None). ``url_policy`` is where
    pixels may be fetched from (the SCU's last resort for an SCP that takes no JPIP syntax): a
    ``url_base`` outside it is refused (UntrustedURLError) before anything is ingested or sent. Every
    frame is proven at ingest (pyjpip.dicom.pixel_proof) unless ``verify`` is False: an object whose
    served pixels would differ from its own is not ingested, hence not sent. ``tls_context``: DICOM
    over TLS (pyjpip.network.secure_transport.requestor_context)."""
    url_policy = url_policy or DEFAULT_POLICY
    url_policy.check(f"{url_base.rstrip('/')}/jpip")
    ingested = ingest(inputs, store, url_base, deflate=deflate, high_throughput=high_throughput,
                      maximum_bytes=maximum_bytes, verify=verify)
    with open(os.path.join(store, "index.json")) as f:
        index = json.load(f)
    sources = {os.path.abspath(p) for p in ingested.ingested + ingested.skipped}
    entries = [e for e in index["instances"].values() if e.get("source") in sources]
    hollow = [os.path.join(store, e["hollow"]) for e in sorted(entries, key=lambda e: e["hollow"])]
    warning = None
    if entries:
        warning = unreachable(f"{url_base.rstrip('/')}/jpip?target={entries[0]['image']}")
    report = scu.store(host, port, hollow, ae_title, called_ae_title, progress=progress, timeout=timeout,
                       url_policy=url_policy, tls_context=tls_context)
    return report, ingested, warning


def unreachable(url: str, timeout: float = 5.0) -> str | None:
    """None when a JPIP request for ``url`` is answered; otherwise what the receivers will meet.
    One request, no redirect followed (http.client follows none)."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.netloc, timeout=timeout)
    try:
        connection.request("GET", f"{parts.path or '/'}?{parts.query}&type=jpp-stream&len=1")
        response = connection.getresponse()
        response.read(64)
        status, reason, location = response.status, response.reason, response.getheader("Location")
    except (http.client.HTTPException, OSError, ValueError) as error:
        return (f"no JPIP server answers at {url[:200]} ({error}): the receivers will hold the objects but see no "
                "pixels until `pyjpip serve` runs over the store there")
    finally:
        connection.close()
    if 300 <= status < 400:
        return (f"the server at {url[:200]} answers {status} {reason}, a redirect to {str(location)[:200]}: "
                "receivers follow no redirects, so they will see no pixels; give --url-base the JPIP server "
                "itself")
    if status != 200:
        return (f"the server at {url[:200]} answers {status} {reason}: the receivers will hold the objects but "
                "see no pixels until `pyjpip serve` runs over the store there")
    return None
