"""The stand-in's Phoenix protocol on the wire: frames, refs, serializers, handshake and channel rules."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import websockets
from realtime_support import WAIT, RawSocket, make_quick, raw_socket

from localsupabase import auth
from localsupabase.app import LocalSupabase

pytestmark = pytest.mark.integration

SUBSCRIBED = {
    "channel": "db-sync",
    "extension": "postgres_changes",
    "message": "Subscribed to PostgreSQL",
    "status": "ok",
}


EXCEPTION_HAPPENED = (
    "Unable to subscribe to changes with given parameters. "
    "An exception happened so please check your connect parameters"
)


@pytest.fixture
def stack(local_supabase: LocalSupabase) -> LocalSupabase:
    """The stand-in with its Realtime waits shortened."""
    return make_quick(local_supabase)


def _binding(table: str = "scenes", filter_text: str | None = None, event: str = "*") -> dict[str, Any]:
    binding: dict[str, Any] = {"event": event, "schema": "public", "table": table}
    if filter_text is not None:
        binding["filter"] = filter_text
    return binding


async def _silent(socket: RawSocket, seconds: float = 0.2) -> bool:
    """Whether the server sends nothing for ``seconds``."""
    try:
        await socket.receive(within=seconds)
    except TimeoutError:
        return True
    return False


async def test_heartbeat_reply_is_the_exact_phoenix_frame(stack: LocalSupabase) -> None:
    """A heartbeat gets an ok phx_reply on topic phoenix with the same ref and no join_ref key."""
    async with raw_socket(stack) as socket:
        await socket.send("phoenix", "heartbeat", {}, "hb-7")
        reply = await socket.receive()
        await socket.send("phoenix", "heartbeat", {}, None)
        null_ref_reply = await socket.receive()

    assert reply == {
        "topic": "phoenix",
        "event": "phx_reply",
        "payload": {"status": "ok", "response": {}},
        "ref": "hb-7",
    }
    assert null_ref_reply["ref"] is None


async def test_join_reply_echoes_bindings_in_order_with_stable_ids(stack: LocalSupabase) -> None:
    """The join reply lists the bindings as sent, in order, each with the same non-zero id on every socket."""
    project_filter = f"project_id=eq.{uuid.uuid4()}"
    bindings = [_binding(filter_text=project_filter), _binding("projects", event="INSERT"), _binding()]
    async with raw_socket(stack) as first, raw_socket(stack) as second:
        ref, reply = await first.join("realtime:db-sync", bindings)
        _, again = await second.join("realtime:db-sync", bindings)
        pushed = await first.receive()

    assert reply["ref"] == ref
    assert reply["payload"]["status"] == "ok"
    echoed = reply["payload"]["response"]["postgres_changes"]
    assert [{key: value for key, value in item.items() if key != "id"} for item in echoed] == bindings
    ids = [item["id"] for item in echoed]
    assert all(isinstance(value, int) and 0 < value < 2**27 for value in ids)
    assert len(set(ids)) == 3
    assert again["payload"]["response"]["postgres_changes"] == echoed
    assert pushed == {"topic": "realtime:db-sync", "event": "system", "payload": SUBSCRIBED, "ref": None}


async def test_join_without_bindings_replies_with_an_empty_list(stack: LocalSupabase) -> None:
    """A channel without postgres_changes is joined with an empty list and gets no system message."""
    async with raw_socket(stack) as socket:
        _, reply = await socket.join("realtime:plain", [])
        quiet = await _silent(socket)

    assert reply["payload"] == {"status": "ok", "response": {"postgres_changes": []}}
    assert quiet


async def test_v2_serializer_speaks_arrays(stack: LocalSupabase) -> None:
    """With vsn 2.0.0 every frame is [join_ref, ref, topic, event, payload]; changes carry null refs."""
    async with raw_socket(stack, vsn="2.0.0") as socket:
        ref, reply = await socket.join("realtime:db-sync", [_binding("projects")])
        ready = await socket.receive()
        project_id = await stack.pool.fetchval(
            "insert into public.projects (title) values ('v2') returning id::text"
        )
        change = await socket.receive()

    binding_id = reply[4]["response"]["postgres_changes"][0]["id"]
    assert reply[:4] == [ref, ref, "realtime:db-sync", "phx_reply"]
    assert reply[4]["status"] == "ok"
    assert ready == [ref, None, "realtime:db-sync", "system", SUBSCRIBED]
    assert change[:4] == [None, None, "realtime:db-sync", "postgres_changes"]
    assert change[4]["ids"] == [binding_id]
    assert change[4]["data"]["type"] == "INSERT"
    assert change[4]["data"]["record"]["id"] == project_id


async def test_handshake_checks_the_key_and_the_version(stack: LocalSupabase) -> None:
    """Missing or bad keys get 401 and an unknown vsn 403, each with a JSON error; good sockets open."""
    base = f"ws://127.0.0.1:{stack.port}"
    refused: dict[str, tuple[int, Any]] = {}
    for name, url in {
        "no key": f"{base}/realtime/v1/websocket?vsn=1.0.0",
        "bad key": f"{base}/realtime/v1/websocket?apikey=not-a-jwt&vsn=1.0.0",
        "bad vsn": f"{base}/realtime/v1/websocket?apikey={stack.anon_key}&vsn=3.0.0",
    }.items():
        with pytest.raises(websockets.InvalidStatus) as error:
            async with websockets.connect(url, open_timeout=WAIT):
                pass
        response = error.value.response
        refused[name] = (response.status_code, json.loads(response.body or b"{}"))

    assert refused == {
        "no key": (401, {"error": "API key missing"}),
        "bad key": (401, {"error": "The token is not a valid JWT"}),
        "bad vsn": (403, {"error": "Unsupported protocol version"}),
    }
    header_only = f"{base}/socket/websocket"
    async with websockets.connect(
        header_only, additional_headers={"x-api-key": stack.anon_key}
    ) as connection:
        socket = RawSocket(connection, "1.0.0")
        await socket.send("phoenix", "heartbeat", {}, "1")
        assert (await socket.receive())["payload"]["status"] == "ok"


async def test_leave_replies_then_closes_with_the_join_ref(stack: LocalSupabase) -> None:
    """phx_leave gets an ok reply, then phx_close with the join ref; unjoined topics behave as in Phoenix."""
    async with raw_socket(stack) as socket:
        join_ref, _ = await socket.join("realtime:plain", [])
        await socket.send("realtime:plain", "phx_leave", {}, "2", join_ref)
        leave_reply, close = await socket.receive(), await socket.receive()
        await socket.send("realtime:never", "phx_leave", {}, "3", "3")
        unjoined_leave = await socket.receive()
        await socket.send(
            "realtime:plain", "broadcast", {"type": "broadcast", "event": "x", "payload": {}}, "4"
        )
        unmatched = await socket.receive()

    assert leave_reply == {
        "topic": "realtime:plain",
        "event": "phx_reply",
        "payload": {"status": "ok", "response": {}},
        "ref": "2",
    }
    assert close == {"topic": "realtime:plain", "event": "phx_close", "payload": {}, "ref": join_ref}
    assert unjoined_leave["payload"] == {"status": "ok", "response": {}}
    assert unjoined_leave["ref"] == "3"
    assert unmatched == {
        "topic": "realtime:plain",
        "event": "phx_reply",
        "payload": {"status": "error", "response": {"reason": "unmatched topic"}},
        "ref": "4",
    }


async def test_duplicate_join_replies_first_then_closes_the_old_join(stack: LocalSupabase) -> None:
    """A second join of a joined topic gets its reply, then a phx_close with the first join's ref."""
    async with raw_socket(stack) as socket:
        first_ref, _ = await socket.join("realtime:plain", [])
        second_ref, reply = await socket.join("realtime:plain", [])
        close = await socket.receive()
        await socket.send("realtime:plain", "phx_leave", {}, "9", second_ref)
        still_joined = await socket.receive()

    assert reply["ref"] == second_ref
    assert reply["payload"]["status"] == "ok"
    assert close == {"topic": "realtime:plain", "event": "phx_close", "payload": {}, "ref": first_ref}
    assert still_joined["payload"]["status"] == "ok"


async def test_join_errors_are_replies(stack: LocalSupabase) -> None:
    """An empty topic name, a bad access token or a foreign topic get an error reply with a reason."""
    expired = auth.make_user_token(stack.jwt_secret, str(uuid.uuid4()), lifetime=-10)
    async with raw_socket(stack) as socket:
        _, no_name = await socket.join("realtime:", [])
        _, bad_token = await socket.join("realtime:x", [], access_token="garbage")
        _, old_token = await socket.join("realtime:y", [], access_token=expired)
        _, foreign = await socket.join("presence:x", [])

    assert no_name["payload"] == {
        "status": "error",
        "response": {"reason": "TopicNameRequired: You must provide a topic name"},
    }
    assert bad_token["payload"]["response"] == {"reason": "InvalidJWTToken: The token is not a valid JWT"}
    assert old_token["payload"]["response"] == {"reason": "InvalidJWTToken: Token has expired"}
    assert foreign["payload"]["response"] == {"reason": "unmatched topic"}


async def test_access_token_resubscribes_or_shuts_the_channel_down(stack: LocalSupabase) -> None:
    """A new valid token brings no reply but a new "Subscribed"; a bad one a system error, then phx_close."""
    user_token = stack.user_token(str(uuid.uuid4()))
    async with raw_socket(stack) as socket:
        join_ref, _ = await socket.join("realtime:db-sync", [_binding()])
        assert (await socket.receive())["payload"] == SUBSCRIBED
        await socket.send(
            "realtime:db-sync", "access_token", {"access_token": stack.service_key}, "2", join_ref
        )
        await socket.send("phoenix", "heartbeat", {}, "3")
        unchanged = await socket.receive()
        await socket.send("realtime:db-sync", "access_token", {"access_token": user_token}, "4", join_ref)
        resubscribed = await socket.receive()
        subscriber_roles = [sub.role for sub in stack.realtime.subscriptions()]
        await socket.send("realtime:db-sync", "access_token", {"access_token": "garbage"}, "5", join_ref)
        shutdown, close = await socket.receive(), await socket.receive()

    assert unchanged["ref"] == "3"
    assert resubscribed["payload"] == SUBSCRIBED
    assert subscriber_roles == ["authenticated"]
    assert shutdown["payload"] == {
        "channel": "db-sync",
        "extension": "system",
        "message": "The token is not a valid JWT",
        "status": "error",
    }
    assert close == {"topic": "realtime:db-sync", "event": "phx_close", "payload": {}, "ref": join_ref}
    assert stack.realtime.subscriptions() == []


async def test_channel_is_shut_down_when_its_token_expires(stack: LocalSupabase) -> None:
    """At the token's exp the channel gets a system error about the expiry and then phx_close."""
    short_lived = stack.user_token(str(uuid.uuid4()), lifetime=1)
    async with raw_socket(stack) as socket:
        join_ref, reply = await socket.join("realtime:plain", [], access_token=short_lived)
        shutdown = await socket.receive(within=3)
        close = await socket.receive()

    assert reply["payload"]["status"] == "ok"
    assert shutdown["event"] == "system"
    assert shutdown["payload"]["status"] == "error"
    assert shutdown["payload"]["message"].startswith("Token has expired")
    assert close["event"] == "phx_close"
    assert close["ref"] == join_ref


async def test_idle_socket_is_closed_but_heartbeats_keep_it_open(stack: LocalSupabase) -> None:
    """A socket that sends nothing for idle_timeout is closed with 1000; one that sends heartbeats is not."""
    stack.realtime.config.idle_timeout = 0.3
    async with raw_socket(stack) as busy, raw_socket(stack) as idle:
        for ref in range(6):
            await busy.send("phoenix", "heartbeat", {}, str(ref))
            await busy.receive()
            await asyncio.sleep(0.1)
        with pytest.raises(websockets.ConnectionClosedOK) as closed:
            await idle.receive(within=WAIT)
        await busy.send("phoenix", "heartbeat", {}, "last")
        alive = await busy.receive()

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1000
    assert alive["ref"] == "last"


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        (_binding(filter_text="project_id=foo.1"), 'Error parsing `filter` params: ["foo", "1"]'),
        (_binding(filter_text="undefined"), 'Error parsing `filter` params: ["undefined"]'),
        (
            _binding(filter_text="project_id=in.1,2"),
            "Error parsing `filter` params: `in` filter value must be wrapped by parentheses",
        ),
        (
            _binding("missing"),
            "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the "
            "given connect parameters: [event: *, schema: public, table: missing, filters: [], select: nil]",
        ),
        (
            _binding(filter_text="nope=eq.1"),
            f"{EXCEPTION_HAPPENED}: [event: *, schema: public, table: scenes, "
            'filters: [{"nope", "eq", "1"}], select: nil]. Exception: ERROR P0001 (raise_exception) '
            "invalid column for filter nope",
        ),
        (
            _binding(filter_text="project_id=eq.abc"),
            f"{EXCEPTION_HAPPENED}: [event: *, schema: public, table: scenes, "
            'filters: [{"project_id", "eq", "abc"}], select: nil]. Exception: ERROR 22P02 '
            '(invalid_text_representation) invalid input syntax for type uuid: "abc"',
        ),
        (
            _binding(filter_text="scene_index=in.(" + ",".join(str(n) for n in range(101)) + ")"),
            "too many values for `in` filter. Maximum 100",
        ),
    ],
)
async def test_bad_subscriptions_get_realtimes_system_errors(
    stack: LocalSupabase, binding: dict[str, Any], message: str
) -> None:
    """Each kind of bad binding is joined, then answered with Realtime's system error text."""
    async with raw_socket(stack) as socket:
        _, reply = await socket.join("realtime:db-sync", [binding])
        error = await socket.receive()
        await stack.pool.execute("insert into public.projects (title) values ('nothing arrives')")
        quiet = await _silent(socket)

    assert reply["payload"]["status"] == "ok"
    assert error["event"] == "system"
    assert error["payload"]["status"] == "error"
    assert error["payload"]["extension"] == "postgres_changes"
    assert error["payload"]["message"].endswith(message)
    assert quiet
    assert stack.realtime.subscriptions() == []


async def test_filters_select_the_matching_binding_ids(stack: LocalSupabase) -> None:
    """Each classic operator is evaluated on the new row; ids list the matching bindings in reverse order."""
    project_id = await stack.pool.fetchval(
        "insert into public.projects (title) values ('f') returning id::text"
    )
    filters = {
        "eq.5": True,
        "neq.5": False,
        "lt.5": False,
        "lte.5": True,
        "gt.4": True,
        "gte.6": False,
        "in.(1,5,9)": True,
        "in.(1,2)": False,
    }
    bindings = [_binding(filter_text=f"scene_index={text}") for text in filters]
    # A NULL column never matches, not even with neq.
    bindings.append(_binding(filter_text=f"voice_id=neq.{uuid.uuid4()}"))
    async with raw_socket(stack) as socket:
        _, reply = await socket.join("realtime:db-sync", bindings)
        assert (await socket.receive())["payload"] == SUBSCRIBED
        await stack.pool.execute(
            "insert into public.scenes (project_id, scene_index) values ($1::text::uuid, 5)", project_id
        )
        change = await socket.receive()

    ids = [item["id"] for item in reply["payload"]["response"]["postgres_changes"]]
    expected = [ids[index] for index, matches in enumerate(filters.values()) if matches]
    assert change["payload"]["ids"] == list(reversed(expected))
