"""Where things are, for tests (tests/ is on sys.path through its conftest)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "static"
CONFORMANCE = ROOT.parent / "shared" / "data" / "j2k-conformance"
