"""The seed's case: ordinary DICOM ingested into the sender's own JPIP store, then its hollow objects
sent to a Storage SCP, their Pixel Data Provider URLs pointing back at the sender's JPIP server.

PS3.4 B.4.3.1 asks a sender of such references to say how long they stay valid: here, as long as
the sender serves its store (`pyjpip serve STORE`). A server that does not answer now is said
before anything is sent, since no receiver could then see a pixel.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request

from pyjpip.dicom.ingest import ingest
from pyjpip.network import scu

log = logging.getLogger(__name__)


def push(host: str, port: int, inputs: list[str], store: str, url_base: str, ae_title: str = "PYJPIP",
         called_ae_title: str = "ANY-SCP", deflate: bool = False, high_throughput: bool = False, progress=None,
         timeout: float = 30.0):
    """Returns (the SCU's report, the ingest report, a warning or None)."""
    ingested = ingest(inputs, store, url_base, deflate=deflate, high_throughput=high_throughput)
    with open(os.path.join(store, "index.json")) as f:
        index = json.load(f)
    sources = {os.path.abspath(p) for p in ingested.ingested + ingested.skipped}
    entries = [e for e in index["instances"].values() if e.get("source") in sources]
    hollow = [os.path.join(store, e["hollow"]) for e in sorted(entries, key=lambda e: e["hollow"])]
    warning = None
    if entries:
        warning = unreachable(f"{url_base.rstrip('/')}/jpip?target={entries[0]['image']}")
    report = scu.store(host, port, hollow, ae_title, called_ae_title, progress=progress, timeout=timeout)
    return report, ingested, warning


def unreachable(url: str, timeout: float = 5.0) -> str | None:
    """None when a JPIP request for ``url`` is answered; otherwise what the receivers will meet."""
    try:
        with urllib.request.urlopen(f"{url}&type=jpp-stream&len=1", timeout=timeout) as response:
            response.read(64)
        return None
    except (urllib.error.URLError, OSError) as error:
        return (f"no JPIP server answers at {url[:200]} ({getattr(error, 'reason', error)}): the receivers will "
                "hold the objects but see no pixels until `pyjpip serve` runs over the store there")
