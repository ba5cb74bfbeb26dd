"""Who gets in: tokens checked at hello, the project's owner enforced, the close codes of the protocol."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable

import pytest

from syncd.client import EditorClient
from tests.e2e.conftest import NO_SAVES, DaemonFactory, RawFactory, create_project, make_token
from tests.support.daemon import DaemonProcess

OWNER = "a0000000-0000-4000-8000-00000000000a"
STRANGER = "b0000000-0000-4000-8000-00000000000b"


@pytest.fixture(scope="module")
def owned_project(shared_daemon: DaemonProcess) -> str:
    """A project that belongs to OWNER, made with ``syncd project create --user``."""
    return create_project(shared_daemon, "Owned by one user", OWNER)


async def test_the_owner_opens_their_project_with_a_valid_token(
    shared_daemon: DaemonProcess, owned_project: str, raw_editor: RawFactory
) -> None:
    """A valid token of the project's owner gets welcome and a snapshot of that project."""
    editor = await raw_editor(shared_daemon.url)
    snapshot = await editor.join(owned_project, token=make_token(OWNER))
    assert snapshot["project"]["id"] == owned_project
    assert snapshot["project"]["user_id"] == OWNER


TokenMaker = Callable[[], str | None]

REFUSALS: list[tuple[str, TokenMaker, bool, int, str, str]] = [
    ("missing token", lambda: None, True, 4401, "unauthorized", "needs a token"),
    ("forged token", lambda: make_token(OWNER, secret="not-the-secret-0123456789abcdef0123"), True, 4401,
     "unauthorized", "bad signature"),
    ("expired token", lambda: make_token(OWNER, expires_in=-60), True, 4401, "unauthorized", "expired"),
    ("not a token", lambda: "not-a-jwt", True, 4401, "unauthorized", "not a JWT"),
    ("user not a UUID", lambda: make_token("user-1"), True, 4401, "unauthorized", "(sub) is not a UUID"),
    ("another user's project", lambda: make_token(STRANGER), True, 4403, "forbidden", "another user"),
    ("unknown project", lambda: make_token(OWNER), False, 4404, "not_found", "does not exist"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("token", "owned", "close_code", "code", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSALS],
)
async def test_a_refused_hello_gets_an_error_then_the_close_code(
    shared_daemon: DaemonProcess,
    owned_project: str,
    raw_editor: RawFactory,
    token: TokenMaker,
    owned: bool,
    close_code: int,
    code: str,
    fragment: str,
) -> None:
    """A hello that may not open the project gets an error frame saying why, then the matching close code."""
    editor = await raw_editor(shared_daemon.url)
    await editor.hello(owned_project if owned else str(uuid.uuid4()), token=token())
    closed_with, frames = await editor.closed()
    assert closed_with == close_code
    assert len(frames) == 1
    assert frames[0]["type"] == "error"
    assert frames[0]["code"] == code
    assert fragment in frames[0]["message"]


async def test_a_first_frame_that_is_not_hello_closes_with_4401(
    shared_daemon: DaemonProcess, raw_editor: RawFactory
) -> None:
    """A connection that starts with anything but hello is closed as unauthorized."""
    editor = await raw_editor(shared_daemon.url)
    await editor.send({"type": "ping", "t": 1})
    closed_with, frames = await editor.closed()
    assert closed_with == 4401
    assert [(frame["type"], frame["code"]) for frame in frames] == [("error", "unauthorized")]
    assert "hello" in frames[0]["message"]


LIMITS = {
    **NO_SAVES,
    "SYNCD_GATEWAY__HELLO_TIMEOUT": "0.5",
    "SYNCD_GATEWAY__MUTATION_RATE": "0.5",
    "SYNCD_GATEWAY__MUTATION_BURST": "3",
}


async def test_no_hello_within_the_timeout_closes_with_4408(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """A connection that says nothing is closed with 4408 once the hello timeout has passed."""
    daemon = start_daemon(LIMITS)
    editor = await raw_editor(daemon.url)
    closed_with, frames = await editor.closed()
    assert closed_with == 4408
    assert [frame["type"] for frame in frames] == ["error"]
    assert "no hello within 0.5 s" in frames[0]["message"]


async def test_the_python_client_keeps_to_the_rate_limit_so_a_bulk_of_edits_all_land(
    start_daemon: DaemonFactory,
) -> None:
    """1,000 patches queued at once, at the daemon's default limit: paced, each is acknowledged."""
    daemon = start_daemon(NO_SAVES)
    async with EditorClient(daemon.url, daemon.project_id, request_timeout=30) as editor:
        scene = editor.view.ordered("scenes")[0]["id"]
        mids = [editor.send_patch("scenes", scene, {"heading": f"bulk {i}"}) for i in range(1000)]
        acks = [await editor.wait_ack(mid) for mid in mids]
        assert [ack.mid for ack in acks] == mids
        assert editor.errors == deque()
        await editor.wait_seq(acks[-1].seq)
        assert editor.view.scenes[scene]["heading"] == "bulk 999"


async def test_mutations_past_the_rate_limit_get_rate_limited_then_4429(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """Past the burst, a mutation is refused with rate_limited and the connection closes with 4429."""
    daemon = start_daemon(LIMITS)
    editor = await raw_editor(daemon.url)
    snapshot = await editor.join(daemon.project_id)
    scene = snapshot["scenes"][0]["id"]
    for i in range(5):
        await editor.patch("scenes", scene, {"heading": f"burst {i}"})
    closed_with, frames = await editor.closed()
    changes = [frame["mid"] for frame in frames if frame["type"] == "change"]
    acks = [frame["mid"] for frame in frames if frame["type"] == "ack"]
    errors = [(frame["code"], frame["mid"]) for frame in frames if frame["type"] == "error"]
    assert closed_with == 4429
    assert changes == [1, 2, 3]
    # The close does not wait for the outbox: acks of the accepted three may be cut off (a resend after
    # reconnecting gets them), but none is for a refused mutation.
    assert set(acks) <= {1, 2, 3}
    assert errors == [("rate_limited", 4)]

    fresh = await raw_editor(daemon.url)
    after = await fresh.join(daemon.project_id)
    assert after["seq"] == 3
    assert {row["id"]: row["heading"] for row in after["scenes"]}[scene] == "burst 2"
