"""The exceptions of syncd, all under one root.

::

    SyncdError
    ├── ConfigError          a setting is missing or wrong (exit code 78)
    ├── EditRejected         an editor's input that the daemon refuses (becomes an ``error`` frame)
    │   ├── FrameError       a client frame that is not valid JSON, too large, or of the wrong shape
    │   ├── FieldError       a row field that is unknown, read-only or of the wrong type
    │   └── AccessRefused    a ``hello`` for a project the editor may not open (or not now)
    ├── JournalError         the outbox (the durable journal of acked edits) cannot be read or written
    ├── StartupError         something the daemon needs at start is missing or broken
    │   └── StateDirError    the state directory cannot be made, or another syncd holds it
    └── UpstreamError        Supabase, the embedded store, MQTT or NATS failed
        ├── ClusterError     NATS (cluster mode) cannot be reached or refused a request
        └── WriteError       a write batch failed; ``retryable`` says whether to try again
            └── StaleOwner   the batch's fencing token is below the project's highest: another owns it

The editor client adds its own under ``SyncdError`` (``syncd.client``).
"""

from __future__ import annotations

from syncd.wire import ErrorCode


class SyncdError(Exception):
    """Root of every error that syncd raises on purpose."""


class ConfigError(SyncdError):
    """A setting is missing or wrong; the message names the key and never shows a secret."""


class EditRejected(SyncdError):
    """An editor's input is refused.

    Args:
        code: the protocol's error code (``bad_request``, ``not_found``, ...).
        message: what is wrong and where, safe to send to the editor.
        mid: the refused frame's ``mid`` when it had a readable one, so the editor can match the error.
    """

    def __init__(self, code: ErrorCode, message: str, mid: int | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.mid = mid


class FrameError(EditRejected):
    """A client frame that cannot be accepted (code ``bad_request`` or ``too_large``)."""


class FieldError(EditRejected):
    """A row field that cannot be accepted; the message starts with where the field is.

    Args:
        message: ``<where>: <what is wrong>``.
    """

    def __init__(self, message: str) -> None:
        super().__init__("bad_request", message)


class AccessRefused(EditRejected):
    """The daemon will not let this editor open the project: it is unknown, not theirs, or unreachable."""


class JournalError(SyncdError):
    """The outbox cannot be opened, read or written; no edit may be acknowledged while it fails."""


class StartupError(SyncdError):
    """Something the daemon needs at start is missing or broken; the message says what, in one line."""


class StateDirError(StartupError):
    """The state directory cannot be made or locked (another syncd holds it)."""


class UpstreamError(SyncdError):
    """A system that syncd depends on failed."""


class WriteError(UpstreamError):
    """A write batch failed.

    Args:
        message: what failed, without keys or tokens.
        retryable: whether the same batch may succeed later (network trouble, 5xx, timeouts).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ClusterError(UpstreamError):
    """NATS cannot be reached, or refused a request of cluster mode; the message says which."""


class StaleOwner(WriteError):
    """The store refused a batch whose fencing token is below the highest it has seen for the project.

    Another instance has taken the project over since this one acquired it; the batch must not be
    retried, and this instance must give the project up.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)
