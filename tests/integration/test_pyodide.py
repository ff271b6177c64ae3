"""The unit tests also pass under Pyodide in Node: Python 3.14 on WebAssembly, as in the browser."""

import re
import shutil
import subprocess
import sys

import pytest

from paths import ROOT

pytestmark = pytest.mark.cpython_only


def collected_unit_tests() -> int:
    result = subprocess.run([sys.executable, "-m", "pytest", "tests/unit", "--collect-only", "-q",
                             "-m", "not cpython_only", "-p", "no:cacheprovider"],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    return sum(1 for line in result.stdout.splitlines() if "::" in line)


def test_unit_tests_pass_under_pyodide():
    node = shutil.which("node")
    assert node, "Node.js is needed to run Pyodide"
    expected = collected_unit_tests()
    assert expected > 20
    result = subprocess.run([node, "tests/pyodide/run_pytest.mjs", "-q"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert re.search(r"Python 3\.14\.\d+ on emscripten; pyjpip from /lib/python3\.14/site-packages/pyjpip", output)
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) == expected, output[-2000:]
    assert not re.search(r"\d+ (failed|error|skipped)", output), output[-2000:]
