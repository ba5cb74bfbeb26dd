"""Fault switches of the stand-in, flipped by tests while it runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    """Mutable switches that make the stand-in misbehave the way hosted Supabase sometimes does.

    The REST and Storage handlers and the Realtime server read these on every request or event, so a
    test can change them at any time. Actions that happen once (dropping sockets, pushing a system
    error, restarting the poller) are methods of the Realtime server instead.

    Attributes:
        rest_unavailable: REST answers every request with a PostgREST-style 503.
        storage_unavailable: Storage answers every request with a 503.
        auth_unavailable: Auth's JWKS endpoint answers with a 503.
        refuse_handshake: HTTP status with which the Realtime websocket upgrade is refused
            (for example 401, 429 or 500); ``None`` accepts the upgrade.
        subscribed_delay: seconds to wait before the "Subscribed to PostgreSQL" system message.
        subscribed_error: if set, send this system error instead of "Subscribed to PostgreSQL".
        skip_changes: number of upcoming polled changes to drop without delivering them.
        rest_refused: how many requests ``rest_unavailable`` has answered with 503 (not a switch: a
            count, so that a test can tell how often a client retried).
    """

    rest_unavailable: bool = False
    storage_unavailable: bool = False
    auth_unavailable: bool = False
    refuse_handshake: int | None = None
    subscribed_delay: float = 0.0
    subscribed_error: str | None = None
    skip_changes: int = 0
    rest_refused: int = 0

    def reset(self) -> None:
        """Put every switch back to its healthy default."""
        healthy = Faults()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(healthy, name))
