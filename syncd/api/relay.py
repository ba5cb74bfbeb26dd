"""Calls of the HTTP API on a project's live state, apart from their request: another instance can run them.

In cluster mode only the instance that owns a project holds its live state (its unsaved edits, its
service session). A call that reads or writes that state (a `syncd.api.http.LiveOperation`) and
reaches another instance is handed to the owner whole: the operation's name, the path's parameters,
the query, the JSON body and the caller as the receiving instance established it. The owner runs it
as if it had received it and sends the status and body back. How the call travels is the
`Forwarder`'s business (`syncd.cluster.calls` in cluster mode; single-process mode has none: every
project is served here).

The caller travels as an identity, not as a token: instances trust each other through their NATS
connection (docs/scaling.md), as they do for a relayed editor's ``hello``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from syncd.api.access import Caller
from syncd.errors import EditRejected


class Forwarder(Protocol):
    """Where a live call goes when this instance does not own the project."""

    async def forward(self, project_id: str, call: bytes) -> tuple[int, bytes] | None:
        """Run ``call`` at the project's owner and return its status and JSON body.

        Returns:
            None when this instance owns the project, or has just taken it: serve the call here.

        Raises:
            EditRejected: ``unavailable`` when no owner answered in time; ``too_large`` when the call
                cannot travel between instances.
        """


@dataclass(frozen=True, slots=True)
class ProjectCall:
    """One call of the HTTP API on a project's live state.

    Attributes:
        route: the name of the operation (a method of `syncd.api.http.HttpApi`).
        params: the path's parameters (``pid``, ``cid``).
        query: the query string's parameters.
        body: the JSON body (``{}`` when there is none).
    """

    route: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: Any

    def object_body(self) -> dict[str, Any]:
        """The body, which must be a JSON object (see `json_object`)."""
        return json_object(self.body)

    def save(self) -> bool:
        """Whether the caller asked for ``?save=now``.

        Raises:
            EditRejected: ``bad_request`` for any value but ``now`` and ``debounce``.
        """
        value = self.query.get("save", "")
        if value not in ("", "now", "debounce"):
            raise EditRejected("bad_request", "save: 'now' or 'debounce'")
        return value == "now"


def json_object(body: Any) -> dict[str, Any]:
    """A request's JSON body, which must be an object.

    Raises:
        EditRejected: ``bad_request`` when it is not.
    """
    if not isinstance(body, dict):
        raise EditRejected("bad_request", "the body must be a JSON object")
    return body


def encode_call(call: ProjectCall, caller: Caller) -> bytes:
    """The message another instance runs the call from."""
    return json.dumps(
        {
            "route": call.route,
            "params": dict(call.params),
            "query": dict(call.query),
            "body": call.body,
            "caller": {"service": caller.service, "user_id": caller.user_id, "anonymous": caller.anonymous},
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def decode_call(data: bytes) -> tuple[ProjectCall, Caller]:
    """Read a message of `encode_call`.

    Raises:
        EditRejected: ``bad_request`` when the message is not one (another version of syncd, damage).
    """
    try:
        message = json.loads(data)
        who = message["caller"]
        caller = Caller(
            service=who["service"] is True, user_id=who["user_id"], anonymous=who["anonymous"] is True
        )
        call = ProjectCall(message["route"], message["params"], message["query"], message["body"])
        if not isinstance(call.route, str) or not _strings(call.params) or not _strings(call.query):
            raise TypeError("route, params and query must be text")
        if caller.user_id is not None and not isinstance(caller.user_id, str):
            raise TypeError("user_id must be text")
    except (ValueError, TypeError, KeyError) as exc:
        raise EditRejected("bad_request", f"a relayed call could not be read: {exc}") from None
    return call, caller


def _strings(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )
