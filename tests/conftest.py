"""Fixtures shared by every test, including the unit tests that also run under Pyodide (no numpy here)."""

import json
from pathlib import Path

import pytest

from paths import CONFORMANCE, STATIC


@pytest.fixture(scope="session")
def demo_data() -> Path:
    """static/data, made by `python3 build.py build` (tools/demo_data.py)."""
    path = STATIC / "data"
    if not (path / "index.json").exists():
        pytest.fail(f"{path} has no demo data: run `python3 build.py build` first")
    return path


@pytest.fixture(scope="session")
def demo_files(demo_data) -> list[Path]:
    return [demo_data / entry["file"] for entry in json.loads((demo_data / "index.json").read_text())]


@pytest.fixture(scope="session")
def conformance_files() -> list[Path]:
    """ISO/IEC 15444-4 conformance codestreams from ../shared (real files from other encoders)."""
    files = sorted(CONFORMANCE.glob("*.j2k"))
    if not files:
        pytest.fail(f"no conformance codestreams in {CONFORMANCE}")
    return files


@pytest.fixture
def identity_provider():
    """A real OpenID provider on a free loopback port, keys made for this test (tests/identity_provider.py
    says what it serves and how a test mints good and bad tokens)."""
    from identity_provider import IdentityProvider

    with IdentityProvider() as provider:
        yield provider
