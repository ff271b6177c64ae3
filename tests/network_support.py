"""Real peers for the push-workflow tests, on free loopback ports: pyjpip's Storage SCP and HTTP server
as processes of their own, a throwaway PostgreSQL server, Orthanc; DCMTK's and GDCM's tools are run
where the tests need them. Nothing is mocked: each is the program a site would run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from paths import ROOT
from pyjpip.dicom.hollow import write_hollow

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
ORTHANC_DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, log: Path | None = None,
                  seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process ended with {process.returncode} before listening on {port}:\n"
                               + (log.read_text()[-3000:] if log and log.exists() else ""))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {seconds} s")


@dataclass
class Running:
    process: subprocess.Popen
    port: int
    log: Path
    http_port: int | None = None
    command: list | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        """The same command again (same ports, same store), as a site restarts a crashed service."""
        self.stop()
        out = open(self.log, "ab")
        self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=_env())
        wait_for_port(self.port, self.process, self.log)
        if self.http_port:
            wait_for_port(self.http_port, self.process, self.log)


def _env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def pyjpip_command(*arguments) -> list[str]:
    return [sys.executable, "-m", "pyjpip", *map(str, arguments)]


@contextmanager
def store_scp(store: Path, *options, http: bool = False, ae_title: str = "PYJPIP", log_name: str = "scp.log"):
    """``pyjpip store-scp`` over ``store`` as its own process (with --http-port when ``http``)."""
    port = free_port()
    http_port = free_port() if http else None
    command = pyjpip_command("store-scp", "--host", "127.0.0.1", "--port", port, "--store", store,
                             "--ae-title", ae_title, *options, *(["--http-port", http_port] if http else []))
    log = Path(store).parent / f"{Path(store).name}-{log_name}"
    out = open(log, "ab")
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=_env())
    running = Running(process, port, log, http_port, command)
    try:
        wait_for_port(port, process, log)
        if http_port:
            wait_for_port(http_port, process, log)
        yield running
    finally:
        running.stop()
        out.close()


@contextmanager
def pyjpip_serve(root: Path, *options, port: int | None = None, static: bool = False):
    """``pyjpip serve ROOT`` as its own process; yields the base URL (no final '/')."""
    port = port or free_port()
    extra = ["--static", ROOT / "static"] if static else []
    command = pyjpip_command("serve", root, "--host", "127.0.0.1", "--port", port, *extra, *options)
    log = Path(tempfile.mkstemp(prefix="pyjpip-serve-", suffix=".log")[1])
    out = open(log, "ab")
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=_env())
    running = Running(process, port, log, port, command)
    try:
        wait_for_port(port, process, log)
        yield running
    finally:
        running.stop()
        out.close()


# --- PostgreSQL ------------------------------------------------------------------------------

def _as_postgres(command: list) -> list:
    """initdb and postgres refuse to run as root: the CI machine is root, a developer may not be."""
    return ["runuser", "-u", "postgres", "--", *map(str, command)] if os.geteuid() == 0 else list(map(str, command))


@contextmanager
def postgres_server():
    """A throwaway PostgreSQL 15 server (Debian's binaries) on a free port; yields its base URL."""
    folder = Path(tempfile.mkdtemp(prefix="pyjpip-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()
    subprocess.run(_as_postgres([POSTGRES_BIN / "initdb", "-D", data, "-A", "trust", "-U", "postgres",
                                 "--no-sync"]), check=True, capture_output=True)
    subprocess.run(_as_postgres([POSTGRES_BIN / "pg_ctl", "-D", data, "-w", "-l", folder / "log", "-o",
                                 f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off "
                                 "-c max_connections=200", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([POSTGRES_BIN / "pg_ctl", "-D", data, "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def new_database(server: str) -> str:
    import psycopg

    name = f"pyjpip_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


# --- Orthanc ---------------------------------------------------------------------------------

@contextmanager
def orthanc(folder: Path, jpip: bool = True):
    """Debian's Orthanc with its DICOMweb plugin, on free ports; yields (HTTP base, DICOM port)."""
    import json

    http_port, dicom_port = free_port(), free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = {"Name": "pyjpip-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
              "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "Plugins": [ORTHANC_DICOMWEB_PLUGIN],
              "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "JpipTransferSyntaxAccepted": jpip,
              "DicomCheckCalledAet": False}
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = folder / "orthanc.log"
    out = open(log, "ab")
    process = subprocess.Popen(["Orthanc", "--verbose", str(folder / "orthanc.json")], stdout=out,
                               stderr=subprocess.STDOUT)
    try:
        wait_for_port(http_port, process, log)
        wait_for_port(dicom_port, process, log)
        yield f"http://127.0.0.1:{http_port}", dicom_port, log
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        out.close()


# --- objects ---------------------------------------------------------------------------------

def without_pixels(path: Path) -> pydicom.Dataset:
    dataset = pydicom.dcmread(path)
    del dataset.PixelData
    return dataset


def hollow_copies(base: pydicom.Dataset, folder: Path, count: int, syntax, url: str, series: int = 1,
                  seed: str = "") -> list[Path]:
    """``count`` hollow objects made from ``base`` (new SOP Instance UIDs, ``series`` series of one
    new study), written in ``syntax``; their Pixel Data Provider URL is ``url``."""
    folder.mkdir(parents=True, exist_ok=True)
    study = generate_uid(entropy_srcs=[seed, str(folder), "study"]) if seed else generate_uid()
    series_uids = [generate_uid(entropy_srcs=[seed, str(folder), "series", str(s)]) if seed else generate_uid()
                   for s in range(series)]
    paths = []
    for n in range(count):
        ds = pydicom.Dataset()
        ds.update(base)
        ds.file_meta = pydicom.dataset.FileMetaDataset(base.file_meta)
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series_uids[n % series]
        ds.SeriesNumber = n % series + 1
        ds.InstanceNumber = n // series + 1
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[seed, str(folder), str(n)]) if seed else generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = folder / f"{n:05d}.dcm"
        path.write_bytes(write_hollow(ds, url, syntax))
        paths.append(path)
    return paths


def sql_count(url: str, table: str = "instance") -> int:
    from pyjpip.archive.database import DatabaseArchive

    archive = DatabaseArchive(url, create=False)
    try:
        return archive.rows(f"SELECT COUNT(*) FROM {table}")[0][0]
    finally:
        archive.close()
