"""The HTTP layer's own cost: server CPU per request for answers that cost the Site next to nothing
(a cached stateless JPIP answer of a few hundred bytes, a 404), one keep-alive client on loopback.

    .venv/bin/python bench/http_layer.py [--requests 3000] [--server-module FILE] [--tls]

The server runs in a process of its own (``make_server`` of pyjpip.transport.http_server, or of
FILE: e.g. an earlier version, ``git show REV:pyjpip/transport/http_server.py > /tmp/old.py``);
its CPU time (user + system, from /proc) over the requests, divided by their number, is the
figure. The client's time is not counted.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

SERVER = """
import importlib.util, sys, threading
spec = importlib.util.spec_from_file_location("server_module", sys.argv[1])
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
options = {"certfile": sys.argv[3], "keyfile": sys.argv[4]} if len(sys.argv) > 3 else {}
server = module.make_server(None, "127.0.0.1", 0, jpip_root=sys.argv[2], **options)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(module: str, root: str, requests: int, pki=None) -> dict[str, float]:
    extra = [str(pki.certificate), str(pki.key)] if pki else []
    process = subprocess.Popen([sys.executable, "-c", SERVER, module, root, *extra], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        port = int(process.stdout.readline())
        if pki:
            connection = http.client.HTTPSConnection("localhost", port, timeout=30, context=pki.client())
        else:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        results = {}
        for label, path in (("cached JPIP answer", "/jpip?target=p.j2k&fsiz=8,8"),
                            ("404", "/jpip?target=missing.j2k")):
            for _ in range(50):  # warm: the index, the response cache
                connection.request("GET", path)
                connection.getresponse().read()
            time.sleep(0.2)
            before, started = cpu_seconds(process.pid), time.perf_counter()
            for _ in range(requests):
                connection.request("GET", path)
                connection.getresponse().read()
            wall = time.perf_counter() - started
            results[label] = ((cpu_seconds(process.pid) - before) / requests, requests / wall)
        return results
    finally:
        process.kill()
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--server-module", default=os.path.join(ROOT, "pyjpip", "transport", "http_server.py"))
    parser.add_argument("--tls", action="store_true", help="over HTTPS (a test CA made with openssl)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        from paths import CONFORMANCE

        shutil.copy(CONFORMANCE / "p0_01.j2k", os.path.join(folder, "p.j2k"))
        pki = None
        if args.tls:
            from tls_support import make_pki
            from pathlib import Path

            pki = make_pki(Path(folder) / "pki")
        results = run(args.server_module, folder, args.requests, pki)
    print(f"\n{args.server_module}{' over TLS' if args.tls else ''}, {args.requests} requests each, one keep-alive client\n")
    print("| answer | server CPU µs/request | requests/s |")
    print("|---|---:|---:|")
    for label, (cpu, rate) in results.items():
        print(f"| {label} | {cpu * 1e6:,.0f} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
