#!/usr/bin/env python3
"""Build, serve and test pyjpip from a fresh machine: the only entry point a person or CI needs.

    python3 build.py build    install what is missing, assemble static/ (the deployable site)
    python3 build.py serve    build if needed, then serve static/ and print the URL to open
    python3 build.py test     build if needed, install test-only system packages, run every test

Standard library only, so it runs with any Python 3.11+ before anything is installed. Each build
step records a hash of its inputs in static/.build-stamp and is skipped when nothing changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
CACHE = ROOT / ".cache"
STATIC = ROOT / "static"
WEB = ROOT / "web"
STAMP = STATIC / ".build-stamp"
NODE_MODULES = ROOT / "node_modules"
PYODIDE_CORE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "pyodide-lock.json")
#: Pyodide's standard library, with the modules the pages import precompiled (tools/pyodide_stdlib.mjs).
PYODIDE_STDLIB = "python_stdlib.zip"
OPENJPEG_FILES = ("region_decoder.js", "region_decoder.wasm", "LICENSE-OpenJPEG", "warmup-reversible.j2k",
                  "warmup-irreversible.j2k")
#: Precompiled bundles: pyjpip alone (every page), pydicom (pages that read DICOM attributes).
BUNDLES = {"core": "python-core.zip", "dicom": "python-dicom.zip"}

#: The demo CT as bare codestreams (Part 1 and HTJ2K, the same pixels), served beside the study.
BARE_DEMO_IMAGES = ("ct_phantom_2048.j2k", "ct_phantom_2048.jhc")

#: command → Debian package, for each purpose.
SYSTEM_PACKAGES_BUILD = {"node": "nodejs", "npm": "npm", "opj_compress": "libopenjp2-tools", "emcc": "emscripten",
                         "ojph_compress": "openjph-tools"}
#: The push workflow's peers, all run by the tests on loopback: DCMTK, GDCM, Orthanc with its
#: DICOMweb plugin, a PostgreSQL server (its binaries are not on PATH: absolute paths are checked);
#: nginx in front of the production workers (deploy/nginx).
SYSTEM_PACKAGES_TEST = {**SYSTEM_PACKAGES_BUILD, "opj_decompress": "libopenjp2-tools", "chromium": "chromium",
                        "storescu": "dcmtk", "gdcmscu": "libgdcm-tools", "Orthanc": "orthanc",
                        "/usr/share/orthanc/plugins/libOrthancDicomWeb.so": "orthanc-dicomweb",
                        "/usr/lib/postgresql/15/bin/initdb": "postgresql", "runuser": "util-linux",
                        "/usr/sbin/nginx": "nginx"}


def say(message: str) -> None:
    print(f"[build] {message}", flush=True)


def run(*command, **kwargs) -> None:
    subprocess.run([str(c) for c in command], check=True, **kwargs)


def venv_python() -> Path:
    return VENV / "bin" / "python"


# --- system packages -------------------------------------------------------------------------

def ensure_system_packages(wanted: dict[str, str]) -> None:
    """Make sure each command exists, installing its Debian package when it does not."""
    install_debian_packages(sorted({package for command, package in wanted.items()
                                    if not (shutil.which(command) or (command.startswith("/") and Path(command).exists()))}))


def install_debian_packages(missing: list[str]) -> None:
    """Install when root on Debian; otherwise say exactly what is needed and stop."""
    if not missing:
        return
    can_install = os.geteuid() == 0 and shutil.which("apt-get") and Path("/etc/debian_version").exists()
    if not can_install:
        sys.exit(f"[build] missing system packages: {' '.join(missing)}\n"
                 f"[build] install them, e.g. on Debian: sudo apt-get install -y {' '.join(missing)}")
    say(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("apt-get", "update", "-qq", env=env)
    run("apt-get", "install", "-y", "-qq", *missing, env=env)


# --- Python and npm dependencies --------------------------------------------------------------

def files_hash(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def ensure_venv() -> None:
    stamp = VENV / ".pyjpip-installed"
    wanted = files_hash(ROOT / "requirements-dev.txt", ROOT / "pyproject.toml")
    if stamp.exists() and stamp.read_text() == wanted and venv_python().exists():
        return
    if not venv_python().exists():
        say(f"creating the virtual environment {VENV.relative_to(ROOT)}")
        try:
            venv.create(VENV, with_pip=True)
        except (subprocess.CalledProcessError, OSError):
            install_debian_packages(["python3-venv"])  # Debian splits ensurepip out of python3
            shutil.rmtree(VENV, ignore_errors=True)
            venv.create(VENV, with_pip=True)
    say("installing Python packages (requirements-dev.txt)")
    pip = [venv_python(), "-m", "pip", "--disable-pip-version-check", "-q"]
    run(*pip, "install", "-r", ROOT / "requirements-dev.txt")
    run(*pip, "install", "--no-deps", "--no-build-isolation", "-e", ROOT)
    stamp.write_text(wanted)


def ensure_npm() -> None:
    stamp = NODE_MODULES / ".pyjpip-installed"
    wanted = files_hash(ROOT / "package.json", ROOT / "package-lock.json")
    if stamp.exists() and stamp.read_text() == wanted:
        return
    say("installing npm packages (package-lock.json)")
    run("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", cwd=ROOT)
    stamp.write_text(wanted)


def pinned(requirements: Path, name: str) -> str:
    for line in requirements.read_text().splitlines():
        if line.lower().startswith(f"{name.lower()}=="):
            return line.split("==", 1)[1].strip()
    raise SystemExit(f"[build] {requirements.name} does not pin {name}")


def download_wheels(requirements: Path, destination: Path) -> list[Path]:
    """Pure-Python wheels, exactly as pinned, into a cache folder (downloaded once)."""
    destination.mkdir(parents=True, exist_ok=True)
    wanted = [line.split("#")[0].strip() for line in requirements.read_text().splitlines()]
    wanted = [w for w in wanted if w]
    found = []
    for requirement in wanted:
        name, version = requirement.split("==")
        prefix = f"{name.replace('-', '_').lower()}-{version}-"
        matches = [p for p in destination.glob("*.whl") if p.name.lower().startswith(prefix)]
        if not matches:
            run(venv_python(), "-m", "pip", "--disable-pip-version-check", "-q", "download", "--no-deps",
                "--only-binary=:all:", "-d", destination, requirement)
            matches = [p for p in destination.glob("*.whl") if p.name.lower().startswith(prefix)]
        if not matches:
            raise SystemExit(f"[build] no wheel for {requirement} in {destination}")
        found.append(matches[0])
    return found


# --- static/ ----------------------------------------------------------------------------------

def step(stamps: dict, name: str, inputs: list[Path], outputs: list[Path], action) -> None:
    """Run ``action`` unless its inputs are unchanged since the last build and its outputs exist."""
    wanted = files_hash(*inputs)
    if stamps.get(name) == wanted and all(p.exists() for p in outputs):
        return
    started = time.monotonic()
    action()
    stamps[name] = wanted
    STAMP.write_text(json.dumps(stamps, indent=2))
    say(f"{name}: done in {time.monotonic() - started:.1f} s")


def copy_web() -> None:
    """Copy web/ into static/, removing what an earlier build copied from files since deleted."""
    listing = STATIC / ".web-files"
    current = sorted(str(p.relative_to(WEB)) for p in WEB.rglob("*") if p.is_file())
    previous = listing.read_text().split("\n") if listing.exists() else []
    for stale in set(previous) - set(current) - {""}:
        (STATIC / stale).unlink(missing_ok=True)
    for name in current:
        target = STATIC / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(WEB / name, target)
    listing.write_text("\n".join(current))


def copy_files(source_dir: Path, names: tuple[str, ...], target_dir: Path) -> None:
    shutil.rmtree(target_dir, ignore_errors=True)
    target_dir.mkdir(parents=True)
    for name in names:
        shutil.copy2(source_dir / name, target_dir / name)


def make_wheels() -> None:
    wheels = STATIC / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    build_dir = CACHE / "pyjpip-wheel"
    shutil.rmtree(build_dir, ignore_errors=True)
    run(venv_python(), "-m", "pip", "--disable-pip-version-check", "-q", "wheel", "--no-deps",
        "--no-build-isolation", "-w", build_dir, ROOT)
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools' scratch folder
    parts = {"core": list(build_dir.glob("pyjpip-*.whl")),
             "dicom": download_wheels(ROOT / "requirements-browser.txt", CACHE / "wheels")}
    manifest = {"bundles": BUNDLES, "wheels": {}}
    for part, found in parts.items():
        for wheel in found:
            shutil.copy2(wheel, wheels / wheel.name)
        manifest["wheels"][part] = [wheel.name for wheel in found]
        run("node", ROOT / "tools" / "pyodide_bundle.mjs", wheels / BUNDLES[part], *[wheels / w.name for w in found],
            cwd=ROOT)
    (wheels / "manifest.json").write_text(json.dumps(manifest, indent=2))


def make_stdlib() -> None:
    run("node", ROOT / "tools" / "pyodide_stdlib.mjs", NODE_MODULES / "pyodide" / PYODIDE_STDLIB,
        STATIC / "pyodide" / PYODIDE_STDLIB, *(STATIC / "wheels" / name for name in BUNDLES.values()), cwd=ROOT)


def make_decoder() -> None:
    """OpenJPEG compiled to WebAssembly with region decoding (tools/wasm/build_decoder.py says why)."""
    shutil.rmtree(STATIC / "openjpeg", ignore_errors=True)
    run(sys.executable, ROOT / "tools" / "wasm" / "build_decoder.py", STATIC / "openjpeg")


def make_demo_data() -> None:
    run(venv_python(), ROOT / "tools" / "demo_data.py", STATIC / "data")


def build() -> None:
    ensure_system_packages(SYSTEM_PACKAGES_BUILD)
    ensure_venv()
    ensure_npm()
    STATIC.mkdir(exist_ok=True)
    stamps = json.loads(STAMP.read_text()) if STAMP.exists() else {}
    lock = ROOT / "package-lock.json"
    step(stamps, "web", [WEB], [STATIC / "index.html"], copy_web)
    step(stamps, "pyodide", [lock], [STATIC / "pyodide" / n for n in PYODIDE_CORE_FILES],
         lambda: copy_files(NODE_MODULES / "pyodide", PYODIDE_CORE_FILES, STATIC / "pyodide"))
    step(stamps, "openjpeg", [ROOT / "tools" / "wasm"], [STATIC / "openjpeg" / n for n in OPENJPEG_FILES],
         make_decoder)
    step(stamps, "wheels", [ROOT / "pyjpip", ROOT / "pyproject.toml", ROOT / "requirements-browser.txt", lock,
                            ROOT / "tools" / "pyodide_bundle.mjs"],
         [STATIC / "wheels" / "manifest.json", *(STATIC / "wheels" / name for name in BUNDLES.values())], make_wheels)
    step(stamps, "stdlib", [lock, ROOT / "tools" / "pyodide_stdlib.mjs", *(STATIC / "wheels" / n for n in BUNDLES.values())],
         [STATIC / "pyodide" / PYODIDE_STDLIB], make_stdlib)
    step(stamps, "demo data", [ROOT / "tools" / "demo_data.py", ROOT / "requirements-dev.txt"],
         [STATIC / "data" / "index.json"], make_demo_data)
    say(f"static/ is ready ({sum(p.stat().st_size for p in STATIC.rglob('*') if p.is_file()) / 1e6:.1f} MB)")


# --- commands ---------------------------------------------------------------------------------

def demo_store(url_base: str) -> Path:
    """The demo study set, made once (tools/demo_study.py) and ingested into a JPIP store for ``url_base``."""
    sources, store = CACHE / "demo-study", CACHE / "demo-store"
    stamp = sources / ".made-from"
    wanted = files_hash(ROOT / "tools" / "demo_study.py", ROOT / "requirements-dev.txt")
    if not (stamp.exists() and stamp.read_text() == wanted):
        say("making the demo study set")
        shutil.rmtree(sources, ignore_errors=True)
        run(venv_python(), ROOT / "tools" / "demo_study.py", sources)
        stamp.write_text(wanted)
    say(f"ingesting the demo study set into {store.relative_to(ROOT)} (already ingested objects are skipped)")
    run(venv_python(), "-m", "pyjpip", "ingest", sources, "--store", store, "--url-base", url_base)
    for name in BARE_DEMO_IMAGES:  # bare JPEG 2000 targets beside the study: /?jpip=/jpip?target=<name>
        shutil.copy2(STATIC / "data" / name, store / name)
    return store


def command_serve(args) -> int:
    build()
    url = f"http://{args.host}:{args.port}"
    store = demo_store(url)
    say(f"open {url}/ in a browser; studies are listed at {url}/dicomweb/studies; bare images: "
        + ", ".join(f"{url}/?jpip=/jpip?target={name}" for name in BARE_DEMO_IMAGES))
    os.execv(venv_python(), [str(venv_python()), "-m", "pyjpip", "serve", str(store),
                              "--static", str(STATIC), "--cache", str(CACHE / "index"),
                              "--host", args.host, "--port", str(args.port)])


def command_test(args) -> int:
    ensure_system_packages(SYSTEM_PACKAGES_TEST)
    build()
    download_wheels(ROOT / "requirements-pyodide-test.txt", CACHE / "pyodide-test-wheels")
    say("running the test suite")
    return subprocess.run([str(venv_python()), "-m", "pytest", *args.pytest_args], cwd=ROOT).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="install what is missing and assemble static/")
    serve = commands.add_parser("serve", help="build if needed and serve static/")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    commands.add_parser("test", help="build if needed and run every test (extra arguments go to pytest)")
    args, extra = parser.parse_known_args()
    if extra and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pytest_args = extra
    if sys.version_info < (3, 11):
        sys.exit("[build] Python 3.11 or newer is needed")
    try:
        if args.command == "build":
            build()
            return 0
        if args.command == "serve":
            return command_serve(args)
        return command_test(args)
    except subprocess.CalledProcessError as exc:
        print(f"[build] failed: {' '.join(map(str, exc.cmd))} (exit {exc.returncode})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
