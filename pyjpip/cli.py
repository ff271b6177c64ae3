"""The ``pyjpip`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pyjpip import __version__
from pyjpip.errors import PyjpipError


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

    dicom = commands.add_parser("dicom", help="describe a DICOM object with JPEG 2000 pixel data")
    dicom.add_argument("file")
    dicom.add_argument("--frame", type=int, default=1, help="frame number, counted from 1")
    dicom.add_argument("--json", action="store_true", help="print JSON")

    info = commands.add_parser("info", help="describe a JPEG 2000 file: geometry, coding, data-bins")
    info.add_argument("file")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--cache", metavar="DIR", help="keep packet indexes in DIR (opening again is fast)")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose or args.command == "serve" else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "info":
            return _info(args)
        return _dicom(args)
    except (PyjpipError, OSError, ValueError) as exc:
        print(f"pyjpip {args.command}: {exc}", file=sys.stderr)
        return 1


def _serve(args) -> int:
    from pyjpip.transport.http_server import make_server

    if args.root is None and args.static is None:
        raise FileNotFoundError("nothing to serve: give a ROOT folder of JPEG 2000 files, --static DIR, or both")
    server = make_server(args.static, args.host, args.port, jpip_root=args.root, cache_dir=args.cache)
    host, port = server.server_address[:2]
    what = " and ".join(filter(None, [args.static, args.root and f"JPIP for {args.root} at /jpip"]))
    print(f"pyjpip serving {what} at http://{host}:{port}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _dicom(args) -> int:
    from pyjpip.browser import describe_image

    with open(args.file, "rb") as f:
        description = describe_image(f.read(), source=args.file, frame=args.frame)
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
