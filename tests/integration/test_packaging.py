"""What the package declares is what its commands need: a fresh virtual environment with
`pip install .` ingests JPEG 2000 objects and names the extra for the rest in one line; with
`pip install .[ingest]` it ingests them all (no module of the project's own .venv leaks in)."""

import shutil
import subprocess
import venv

import pytest
from pydicom.data import get_testdata_file

from paths import ROOT

pytestmark = pytest.mark.cpython_only


def test_fresh_environment_installs_what_ingest_needs(tmp_path):
    environment = tmp_path / "env"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    package = tmp_path / "package"  # a copy: building must not write into the checkout
    shutil.copytree(ROOT, package, ignore=shutil.ignore_patterns(".venv", "node_modules", "static", ".git",
                                                                 "test-output", "*.egg-info", "build"))
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "-c", str(ROOT / "requirements-dev.txt")]
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(get_testdata_file("MR_small_jp2klossless.dcm"), inputs / "j2k.dcm")
    shutil.copy(get_testdata_file("SC_rgb_rle_16bit.dcm"), inputs / "rle.dcm")
    shutil.copy(get_testdata_file("JPGExtended.dcm"), inputs / "jpeg12.dcm")

    def ingest(store: str, *options):
        return subprocess.run([str(environment / "bin" / "pyjpip"), "ingest", str(inputs), "--store",
                               str(tmp_path / store), "--url-base", "http://store.test", *options],
                              capture_output=True, text=True, cwd=tmp_path)

    subprocess.run([*pip, str(package)], check=True, capture_output=True)
    modules = subprocess.run([str(python), "-c", "import importlib.util as u; print([m for m in "
                              "('numpy', 'imagecodecs', 'pylibjpeg') if u.find_spec(m)])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert modules == "[]", f"the plain install brought {modules}"
    plain = ingest("plain")  # the proof at ingest decodes every frame: numpy and the decoders are needed
    assert plain.stdout.startswith("0 ingested, 0 already in the store, 3 failed"), plain.stdout + plain.stderr
    assert plain.stderr.strip().splitlines() == [
        "pyjpip ingest: 3 file(s) need numpy, which is not installed; install it with: pip install 'pyjpip[ingest]' "
        "(JPEG 2000 sources need it only for the proof: --no-verify skips it)"]
    trusted = ingest("trusted", "--no-verify")  # JPEG 2000 is re-packetized without decoding anything
    assert trusted.stdout.startswith("1 ingested, 0 already in the store, 2 failed"), trusted.stdout + trusted.stderr
    assert trusted.stderr.strip().splitlines() == [
        "pyjpip ingest: 2 file(s) need numpy, which is not installed; install it with: pip install 'pyjpip[ingest]'"]
    subprocess.run([*pip, f"{package}[ingest]"], check=True, capture_output=True)
    full = ingest("full")
    assert full.returncode == 0 and full.stdout.startswith("3 ingested, 0 already in the store, 0 failed"), \
        full.stdout + full.stderr
