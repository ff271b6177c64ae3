"""build.py: a second build with nothing changed does no work."""

import subprocess
import sys

import pytest

from paths import ROOT

pytestmark = pytest.mark.cpython_only


def test_second_build_does_nothing():
    result = subprocess.run([sys.executable, str(ROOT / "build.py"), "build"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("[build]")]
    assert lines == [lines[-1]] and lines[-1].startswith("[build] static/ is ready"), result.stdout


def test_the_sites_standard_library_loses_no_module_and_precompiles_what_pages_import():
    """static/pyodide/python_stdlib.zip (tools/pyodide_stdlib.mjs) against the npm package's: every
    module is still there, as source or bytecode, and the modules a page imports come as bytecode."""
    import zipfile

    def modules(path):
        with zipfile.ZipFile(path) as archive:
            return {name.rsplit(".", 1)[0]: name.rsplit(".", 1)[1] for name in archive.namelist()
                    if name.endswith((".py", ".pyc"))}

    npm = modules(ROOT / "node_modules" / "pyodide" / "python_stdlib.zip")
    site = modules(ROOT / "static" / "pyodide" / "python_stdlib.zip")
    assert set(site) == set(npm) and set(npm.values()) == {"py"}
    for module in ("asyncio/tasks", "json/__init__", "pyodide/webloop", "email/parser", "dataclasses"):
        assert site[module] == "pyc", module
    assert 100 < sum(kind == "pyc" for kind in site.values()) < len(site) / 2  # what pages import, not all
