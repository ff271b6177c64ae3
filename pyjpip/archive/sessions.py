"""Where JPIP sessions live (pyjpip.jpip.session's SessionStore): one process's memory, or a folder
shared by every worker and host, so that no load balancer needs to be sticky.

The folder store keeps, per channel, ``<cid>.session``: a JSON line (target, tid) and then fixed-size
records of what the client was sent (class, codestream, in-class id, bytes held); appended as the
bytes go out, folded when the next request enters. ``<cid>.turns`` grows by one byte per request:
its length is the channel's generation, so a response running on another worker sees a newer
request by a stat(). ``<cid>.lock`` is held (flock) by the request in progress: requests on one
channel take turns, as C.3.3 has them, and each starts from everything the last one sent.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import struct
import threading
import time
import weakref

from pyjpip.jpip.cache_model import CacheModel
from pyjpip.jpip.request import RequestError
from pyjpip.jpip.session import Session, SessionStore, refuse_over_limits

log = logging.getLogger(__name__)


class MemorySessions(SessionStore):
    """Sessions in this process: fastest; a restart or another worker does not know them (the
    client then reopens with model= and loses nothing)."""

    def __init__(self):
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()

    def open(self, target, tid, now, limit, client=None, client_limit=None):
        with self.lock:
            of_client = sum(1 for s in self.sessions.values() if s.client == client) if client is not None else 0
            refuse_over_limits(len(self.sessions), limit, client, of_client, client_limit)
            session = Session(secrets.token_hex(12), target, tid, last_used=now, client=client)
            self.sessions[session.cid] = session
        return session

    def enter(self, cid, now):
        with self.lock:
            session = self.sessions.get(cid)
            if session is None:
                return None
            session.last_used = now
            session.generation += 1
            return session, session.generation

    def superseded(self, session, ticket):
        return session.generation != ticket

    def close(self, cid):
        with self.lock:
            return self.sessions.pop(cid, None) is not None

    def expire(self, now, idle_timeout):
        with self.lock:
            for cid in [cid for cid, s in self.sessions.items() if now - s.last_used > idle_timeout]:
                log.info("session %s closed after %.0f s idle", cid, now - self.sessions[cid].last_used)
                del self.sessions[cid]

    def __len__(self):
        return len(self.sessions)


class _Turn:
    """A channel's lock among this process's threads (a Lock cannot be weakly referenced)."""

    __slots__ = ("lock", "__weakref__")

    def __init__(self):
        self.lock = threading.Lock()

    def acquire(self, timeout: float) -> bool:
        return self.lock.acquire(timeout=timeout)

    def release(self) -> None:
        self.lock.release()


RECORD = struct.Struct(">BIQQ")  # class, codestream, in-class id, bytes held
CID_LENGTH = 24


class FolderSessions(SessionStore):
    """Sessions in a folder (local, or NFS/CephFS shared by hosts): any worker answers any channel.

    ``wait_seconds`` bounds how long a request waits for the one before it on its channel (which
    a wait=no request pre-empts at its next message). Times are wall-clock here (the folder is
    shared), whatever clock the core passes."""

    def __init__(self, folder: str, wait_seconds: float = 30.0):
        self.folder = os.path.abspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.wait_seconds = wait_seconds
        self.local = threading.Lock()
        # flock does not order threads of one process: a lock per channel does, kept only while a
        # request holds or awaits it (a channel closed or expired by another worker leaves nothing).
        self.turns: weakref.WeakValueDictionary[str, _Turn] = weakref.WeakValueDictionary()
        self.expired_at = 0.0

    def _path(self, cid: str, kind: str) -> str:
        return os.path.join(self.folder, f"{cid}.{kind}")

    def _valid(self, cid: str) -> bool:
        return len(cid) == CID_LENGTH and all(c in "0123456789abcdef" for c in cid)

    def open(self, target, tid, now, limit, client=None, client_limit=None):
        # Counted, not reserved: workers opening at the same instant may pass a limit by a few.
        of_client = self.count_of(client) if client is not None and client_limit is not None else 0
        refuse_over_limits(self.count(), limit, client, of_client, client_limit)
        session = Session(secrets.token_hex(CID_LENGTH // 2), target, tid, last_used=time.time(), client=client)
        with open(self._path(session.cid, "turns"), "wb"):
            pass
        self._write(session)
        return session

    def count(self) -> int:
        return sum(1 for name in os.listdir(self.folder) if name.endswith(".session"))

    def count_of(self, client: str) -> int:
        """The sessions ``client`` opened (their first lines say; only read for a cnew)."""
        count = 0
        for name in os.listdir(self.folder):
            if name.endswith(".session"):
                try:
                    with open(os.path.join(self.folder, name), "rb") as f:
                        count += json.loads(f.readline()).get("client") == client
                except (FileNotFoundError, ValueError):
                    continue  # closed meanwhile, or being replaced
        return count

    def enter(self, cid, now):
        if not self._valid(cid):
            return None
        try:
            turns = os.open(self._path(cid, "turns"), os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            return None
        try:
            os.write(turns, b".")
            ticket = os.lseek(turns, 0, os.SEEK_CUR)  # where our byte ended: this request's generation
        finally:
            os.close(turns)
        with self.local:
            turn = self.turns.get(cid)
            if turn is None:
                turn = self.turns[cid] = _Turn()
        if not turn.acquire(timeout=self.wait_seconds):
            raise RequestError(503, f"channel {cid!r} is busy with an earlier request (wait=yes); try again")
        lock = None
        try:
            lock = os.open(self._path(cid, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
            self._flock(lock, cid)
            session = self._read(cid)
            if session is None:
                raise FileNotFoundError(cid)
            session.handle = (turn, lock, open(self._path(cid, "session"), "ab"))
            os.utime(self._path(cid, "session"))
            return session, ticket
        except FileNotFoundError:  # closed or expired while we waited
            self._release(turn, lock)
            return None
        except BaseException:
            self._release(turn, lock)
            raise

    def _flock(self, descriptor: int, cid: str) -> None:
        import fcntl

        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                raise RequestError(503, f"channel {cid!r} is busy with an earlier request (wait=yes); try again")
            time.sleep(0.002)

    @staticmethod
    def _release(turn, lock) -> None:
        if lock is not None:
            os.close(lock)  # also lets go of the flock
        turn.release()

    def superseded(self, session, ticket):
        try:
            return os.stat(self._path(session.cid, "turns")).st_size > ticket
        except FileNotFoundError:
            return True

    def delivered(self, session, sent):
        if session.handle is None or not sent:
            return
        records = bytearray()
        for (bin_class, codestream, identifier), end in sent:
            records += RECORD.pack(bin_class, codestream, identifier, end)
        handle = session.handle[2]
        handle.write(records)
        handle.flush()

    def save(self, session):
        self._write(session)
        if session.handle is not None:
            session.handle[2].close()
            session.handle = (*session.handle[:2], open(self._path(session.cid, "session"), "ab"))

    def leave(self, session):
        if session.handle is None:
            return
        turn, lock, handle = session.handle
        session.handle = None
        handle.close()
        self._release(turn, lock)

    def close(self, cid):
        if not self._valid(cid):
            return False
        found = False
        for kind in ("session", "turns", "lock"):
            try:
                os.unlink(self._path(cid, kind))
                found |= kind == "session"
            except FileNotFoundError:
                pass
        return found

    def expire(self, now, idle_timeout):
        wall = time.time()
        if wall - self.expired_at < min(10.0, idle_timeout / 4):
            return
        self.expired_at = wall
        for name in os.listdir(self.folder):
            if not name.endswith(".session"):
                continue
            cid = name[: -len(".session")]
            try:
                idle = wall - os.stat(os.path.join(self.folder, name)).st_mtime
            except FileNotFoundError:
                continue
            if idle > idle_timeout:
                log.info("session %s closed after %.0f s idle", cid, idle)
                self.close(cid)

    def _write(self, session: Session) -> None:
        header = json.dumps({"target": session.target, "tid": session.tid, "owner": session.owner,
                             "client": session.client}).encode() + b"\n"
        records = b"".join(RECORD.pack(k[0], k[1], k[2], end) for k, end in session.model.held.items())
        path = self._path(session.cid, "session")
        temporary = f"{path}.{os.getpid()}.{threading.get_ident()}"
        with open(temporary, "wb") as f:
            f.write(header + records)
        os.replace(temporary, path)

    def _read(self, cid: str) -> Session | None:
        with open(self._path(cid, "session"), "rb") as f:
            data = f.read()
        end = data.find(b"\n")
        header = json.loads(data[:end])
        model = CacheModel()
        body = memoryview(data)[end + 1 :]
        whole = len(body) - len(body) % RECORD.size  # a record cut by a crash mid-write is dropped
        for bin_class, codestream, identifier, amount in RECORD.iter_unpack(body[:whole]):
            model.add((bin_class, codestream, identifier), amount)
        return Session(cid, header["target"], header["tid"], model, last_used=time.time(), owner=header.get("owner"),
                       client=header.get("client"))
