"""JPIP sessions and channels (ISO/IEC 15444-9 C.3.1-C.3.3, D.3): what a server remembers of a client
between requests, and the contract a session store keeps for the core.

A session here has exactly one channel (cnew opens both; cclose ends both). The server's cache
model of the client (C.9) is the session's state that matters: with it, nothing is sent twice.
Where it lives is the store's business (pyjpip.archive.sessions): in one process's memory, or in a
folder every worker and host shares, so that a channel's requests may reach any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyjpip.jpip.cache_model import BinKey, CacheModel
from pyjpip.jpip.request import RequestError


@dataclass
class Session:
    """One JPIP session with its single channel: the target, its tid, and the client's cache model."""

    cid: str
    target: str
    tid: str
    model: CacheModel = field(default_factory=CacheModel)
    last_used: float = 0.0
    generation: int = 0  # moved on by every request (memory store): a running response sees it was superseded
    handle: object = None  # the store's own, for the request that holds the channel
    owner: str | None = None  # who opened it (an identity's key): no one else may use or close it
    client: str | None = None  # who opened it (a token's subject or a peer address): sessions are shared out per client


class SessionStore:
    """What the core asks of a session store. ``enter`` and ``leave`` bracket each request on a
    channel (a store may make a second request wait for the first to leave); between them the
    core reads and changes ``session.model`` and reports what went out with ``delivered``."""

    def open(self, target: str, tid: str, now: float, limit: int, client: str | None = None,
             client_limit: int | None = None) -> Session:
        """A new session and channel for ``client``; RequestError(503) when ``limit`` sessions are
        open, or ``client_limit`` of them are the client's (use ``refuse_over_limits``)."""
        raise NotImplementedError

    def enter(self, cid: str, now: float) -> tuple[Session, int] | None:
        """The channel's session for a new request and the request's ticket (None if there is no
        such channel); requests still running on the channel are superseded from now on."""
        raise NotImplementedError

    def superseded(self, session: Session, ticket: int) -> bool:
        """Whether a newer request has entered the channel since the one holding ``ticket``."""
        raise NotImplementedError

    def delivered(self, session: Session, sent: list[tuple[BinKey, int]]) -> None:
        """These bins, up to these ends, reached the client (the model already says so)."""

    def save(self, session: Session) -> None:
        """The model (or the tid) changed other than by delivery: model= statements, a new file."""

    def leave(self, session: Session) -> None:
        """The request is over (answered, cut or abandoned)."""

    def close(self, cid: str) -> bool:
        """End the session; False if there was none."""
        raise NotImplementedError

    def expire(self, now: float, idle_timeout: float) -> None:
        """End sessions unused for ``idle_timeout`` seconds."""
        raise NotImplementedError


def refuse_over_limits(open_sessions: int, limit: int, client: str | None, of_client: int,
                       client_limit: int | None) -> None:
    """RequestError(503) when a new session would pass the server's ``limit`` or the client's share:
    one client must not take every session (the others then get none). The client goes on statelessly
    (C.3.3 lets a server refuse cnew) and may ask again later (Retry-After)."""
    if client is not None and client_limit is not None and of_client >= client_limit:
        raise RequestError(503, f"{client} holds {of_client} sessions, this server's limit per client; "
                                "close one (cclose) or send stateless requests", retry_after=SESSION_RETRY_SECONDS)
    if open_sessions >= limit:
        raise RequestError(503, f"the server holds its limit of {limit} sessions; "
                                "close one (cclose) or send stateless requests", retry_after=SESSION_RETRY_SECONDS)


#: Retry-After for a refused cnew: sessions are closed by clients or end when idle.
SESSION_RETRY_SECONDS = 30
