"""The editor protocol's constants, shared by the server and the clients (docs/protocol.md).

Nothing here does I/O, so the sans-I/O core and the client protocol both import it.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias, get_args
from urllib.parse import urlsplit, urlunsplit

PROTOCOL_VERSION: Final = 1
"""The protocol version an editor names in ``hello``."""

MUTATION_RATE: Final = 200.0
MUTATION_BURST: Final = 400
"""The daemon's default mutation rate limit per connection (``gateway.mutation_rate`` per second on
average, ``gateway.mutation_burst`` at once; §11), which the clients pace themselves to."""

EDITOR_PATH: Final = "/v1/editor"
"""Where editors open their WebSocket."""
API_PATH: Final = "/v1"
"""Where the HTTP API is (docs/http.md)."""


def editor_url(url: str) -> str:
    """The editor URL for ``url``, read as the TypeScript client's ``editorUrl`` reads it.

    A ``ws(s)`` URL is one already (given ``/v1/editor`` when it has no path). The daemon's address
    (``http(s)``, with the path a proxy serves it under, if any), or its API's as ``syncd run``
    prints it (``…/v1``), becomes ``ws(s)`` with ``/v1/editor`` after that path.
    """
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        return url if parts.path not in ("", "/") else urlunsplit(parts._replace(path=EDITOR_PATH))
    if parts.scheme not in ("http", "https"):
        return url  # the WebSocket library names what is wrong with it
    scheme = "ws" if parts.scheme == "http" else "wss"
    return urlunsplit(parts._replace(scheme=scheme, path=served_under(parts.path) + EDITOR_PATH))


def served_under(path: str) -> str:
    """The path the daemon is served under (``""`` at the root, ``/syncd`` behind a proxy that serves
    it there), from the path of its address, of its API (``…/v1``) or of its editor URL."""
    path = path.rstrip("/")
    for tail in (EDITOR_PATH, API_PATH):
        if path.endswith(tail):
            return path.removesuffix(tail)
    return path


ErrorCode: TypeAlias = Literal[
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "too_large",
    "rate_limited",
    "unavailable",
    "internal",
]
"""The ``code`` of an ``error`` frame."""

ERROR_CODES: Final[frozenset[str]] = frozenset(get_args(ErrorCode))
"""Every ``ErrorCode``, for checks at run time."""

ChangeOp: TypeAlias = Literal["insert", "update", "delete"]
"""What a ``change`` did to its row."""

CHANGE_OPS: Final[frozenset[str]] = frozenset(get_args(ChangeOp))
"""Every ``ChangeOp``, for checks at run time."""

Origin: TypeAlias = Literal["editor", "db"]
"""Who made a change: an editor's mutation, or the database (anyone else, or its own defaults)."""

# Close codes: the 44xx ones mirror HTTP statuses; 1008 and 1012 are RFC 6455's.
CLOSE_NORMAL: Final = 1000
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_ABNORMAL: Final = 1006  # never sent: what a connection that dropped without a close frame reports
CLOSE_NOT_READING: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_RESTART: Final = 1012
CLOSE_TRY_LATER: Final = 1013
CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_FORBIDDEN: Final = 4403
CLOSE_NOT_FOUND: Final = 4404
CLOSE_HELLO_TIMEOUT: Final = 4408
CLOSE_TAKEN_OVER: Final = 4409
CLOSE_RATE_LIMITED: Final = 4429

CLOSE_CODES: Final[dict[int, str]] = {
    CLOSE_TOO_BIG: "a frame far over the size limit",
    CLOSE_NOT_READING: "not reading",
    CLOSE_RESTART: "daemon restarting",
    CLOSE_TRY_LATER: "try again later",
    CLOSE_UNAUTHORIZED: "unauthorized",
    CLOSE_FORBIDDEN: "forbidden",
    CLOSE_NOT_FOUND: "project not found",
    CLOSE_HELLO_TIMEOUT: "hello timeout",
    CLOSE_TAKEN_OVER: "client id taken over",
    CLOSE_RATE_LIMITED: "rate limited",
}
"""The close codes the server uses on purpose, with their meaning."""

CLOSE_FOR_ERROR: Final[dict[str, int]] = {
    "unauthorized": CLOSE_UNAUTHORIZED,
    "forbidden": CLOSE_FORBIDDEN,
    "not_found": CLOSE_NOT_FOUND,
}
"""The close code that follows a refused ``hello``, by the refusal's error code."""

FINAL_CLOSE_CODES: Final[frozenset[int]] = frozenset(
    {
        CLOSE_NORMAL,
        CLOSE_PROTOCOL_ERROR,
        CLOSE_TOO_BIG,
        CLOSE_UNAUTHORIZED,
        CLOSE_FORBIDDEN,
        CLOSE_NOT_FOUND,
        CLOSE_TAKEN_OVER,
    }
)
"""Close codes after which a client does not reconnect by itself: reconnecting cannot help."""
