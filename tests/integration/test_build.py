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
