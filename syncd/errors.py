"""The exceptions of syncd, all under one root.

::

    SyncdError
    ├── ConfigError          a setting is missing or wrong (exit code 78)
    ├── EditRejected         an editor's input that the daemon refuses (becomes an ``error`` frame)
    ├── JournalError         the outbox (the durable journal of acked edits) cannot be read or written
    ├── UpstreamError        Supabase, the embedded store or MQTT failed
    │   ├── RealtimeError    the change feed failed
    │   └── WriteError       a write batch failed; ``retryable`` says whether to try again
    └── ShutdownTimeout      pending edits could not be written before ``shutdown_timeout``
"""

from __future__ import annotations


class SyncdError(Exception):
    """Root of every error that syncd raises on purpose."""


class ConfigError(SyncdError):
    """A setting is missing or wrong; the message names the key and never shows a secret."""


class EditRejected(SyncdError):
    """An editor's frame is refused.

    Args:
        code: one of the protocol's error codes (``bad_request``, ``not_found``, ...).
        message: what is wrong and where, safe to send to the editor.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class JournalError(SyncdError):
    """The outbox cannot be opened, read or written; no edit may be acknowledged while it fails."""


class UpstreamError(SyncdError):
    """A system that syncd depends on failed."""


class RealtimeError(UpstreamError):
    """The change feed (Supabase Realtime) failed."""


class WriteError(UpstreamError):
    """A write batch failed.

    Args:
        message: what failed, without keys or tokens.
        retryable: whether the same batch may succeed later (network trouble, 5xx, timeouts).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ShutdownTimeout(SyncdError):
    """Pending edits were still unwritten when the shutdown timeout ran out; the outbox keeps them."""
