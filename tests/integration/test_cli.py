"""The pyjpip command line, run as a user would."""

import socket
import subprocess
import sys
import urllib.request

import pytest

from paths import ROOT

pytestmark = pytest.mark.cpython_only


def pyjpip(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "pyjpip", *args], capture_output=True, text=True, **kwargs)


def test_dicom_describes_a_file(demo_data):
    result = pyjpip("dicom", str(demo_data / "ct_phantom_2048.dcm"))
    assert result.returncode == 0, result.stderr
    assert "CT 2048x2048, 16-bit unsigned" in result.stdout
    assert "5 levels, 4 layers, RPCL" in result.stdout


def test_bad_file_is_one_clear_line_and_a_failure(tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all" * 20)
    result = pyjpip("dicom", str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pyjpip dicom: {bad}: not a readable DICOM file ("), lines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_serves_the_site_with_browser_content_types():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pyjpip", "serve", "--static", str(ROOT / "static"),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip().endswith(
            f"http://127.0.0.1:{port}/  (no authentication: loopback only; Ctrl-C stops)")
        base = f"http://127.0.0.1:{port}"
        for path, content_type in [("/", "text/html; charset=utf-8"), ("/app.js", "text/javascript; charset=utf-8"),
                                   ("/pyodide/pyodide.asm.wasm", "application/wasm"),
                                   ("/data/mr_small_jp2k.dcm", "application/dicom")]:
            with urllib.request.urlopen(base + path, timeout=10) as response:
                assert response.headers["Content-Type"] == content_type, path
        for path in ["/nothing-here", "/pyodide/", "/../build.py", "/%2e%2e/build.py"]:
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(base + path, timeout=10)
            assert error.value.code == 404, path
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_without_a_built_site_says_so(tmp_path):
    result = pyjpip("serve", "--static", str(tmp_path), "--port", "0")
    assert result.returncode == 1
    assert "has no index.html; run `python3 build.py build` first" in result.stderr
