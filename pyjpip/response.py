"""What every answer of pyjpip's HTTP side is, whoever produces it (the JPIP core, DICOMweb, the site):
a status, headers and body chunks. Neutral ground, so that protocol cores do not import transports
and transports do not import each other."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Iterable


@dataclass
class Response:
    """What to send: ``length`` is the Content-Length, or None for a body produced as it goes (chunked).

    ``body`` may have a ``close()``: whoever sends it calls it when done or abandoned (every adapter
    does), so a producer can take back what did not go out and let go of what it holds."""

    status: int
    headers: list[tuple[str, str]]
    body: Iterable[bytes]
    length: int | None
    close_connection: bool = False  # the request's body was not read: the connection cannot go on


def error_response(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    data = (message.rstrip() + "\n").encode()
    return Response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-cache"),
                             *(headers or [])], iter([data]), len(data))


def status_line(status: int) -> str:
    """``"404 Not Found"``: a status with its phrase, for a status line written by hand."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


def close_body(body) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()
