"""The daemon's log on stderr: plain lines by default, JSON lines by config, ids in every line about an
editor, and never a key, token or secret."""

from __future__ import annotations

import json
import re
import signal
import uuid

import pytest

from localsupabase.app import LocalSupabase
from tests.service.conftest import (
    LONG_QUIET,
    WAIT,
    DaemonFactory,
    RecorderFactory,
    seed_standin,
    supabase_env,
)
from tests.support.daemon import DaemonProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PLAIN_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) syncd(\.\w+)*: \S")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d|\d\d:\d\d:\d\d")


async def _one_editor_session(
    daemon: DaemonProcess, recorder: RecorderFactory, token: str | None = None
) -> str:
    """Open the daemon's project, make an edit, leave; return the connection id (the welcome's session)."""
    editor = await recorder(daemon.url)
    snapshot = await editor.join(daemon.project_id, token=token)
    session = str(editor.of_type("welcome")[0]["session"])
    ack = await editor.acked(await editor.patch("scenes", snapshot["scenes"][0]["id"], {"body": "logged"}))
    assert ack["seq"] >= 1
    await editor.ws.close()
    tags = (f"conn={session}", f'"conn": "{session}"')  # plain or JSON
    await wait_for(
        lambda: any(
            "closed (" in line and any(t in line for t in tags) for line in daemon.stderr.splitlines()
        ),
        "the close logged",
        WAIT,
    )
    return session


async def test_plain_lines_without_timestamps_carry_connection_and_project_ids(
    start_daemon: DaemonFactory, recorder: RecorderFactory
) -> None:
    """By default lines read 'LEVEL logger: message' with no time, and lines about an editor name its ids."""
    daemon = await start_daemon(LONG_QUIET)
    session = await _one_editor_session(daemon, recorder)
    daemon.signal(signal.SIGTERM)
    assert await daemon.exit_code() == 0

    lines = daemon.stderr.splitlines()
    assert lines, "the daemon logged nothing"
    for line in lines:
        assert PLAIN_LINE.match(line), f"not a plain log line: {line!r}"
        assert not TIMESTAMP.search(line), f"a timestamp in a journald line: {line!r}"
    about_editor = [line for line in lines if f"conn={session}" in line]
    assert any("opened project" in line for line in about_editor), lines
    assert about_editor
    assert all(f"project={daemon.project_id}" in line for line in about_editor), about_editor


async def test_a_close_is_logged_with_who_closed_and_the_code_sent(
    start_daemon: DaemonFactory, recorder: RecorderFactory
) -> None:
    """An editor's own close, a connection dropped without a close frame and syncd's 1012 at a stop each
    read as what they were: a dropped connection is not the editor closing."""
    daemon = await start_daemon(LONG_QUIET)
    leaving = await _one_editor_session(daemon, recorder)
    vanishing = await recorder(daemon.url)
    await vanishing.join(daemon.project_id)
    vanished = str(vanishing.of_type("welcome")[0]["session"])
    vanishing.ws.transport.abort()
    await daemon.wait_log(f"conn={vanished}")
    await daemon.wait_log(": closed (1006")
    staying = await recorder(daemon.url)
    await staying.join(daemon.project_id)
    session = str(staying.of_type("welcome")[0]["session"])
    daemon.signal(signal.SIGTERM)
    assert await daemon.exit_code() == 0
    closes = {
        line.split(" conn=")[1].split()[0]: line
        for line in daemon.stderr.splitlines()
        if ": closed (" in line
    }
    assert closes[leaving].startswith("INFO syncd.adapters.gateway: closed (1000, by the editor) ")
    assert closes[vanished].startswith(
        "INFO syncd.adapters.gateway: closed (1006, connection lost: no close frame, or no answer to "
        "syncd's ping) "
    )
    assert closes[session].startswith(
        "INFO syncd.adapters.gateway: closed (1012, by syncd: daemon restarting) "
    )


async def test_json_lines_are_objects_with_connection_and_project_ids(
    start_daemon: DaemonFactory, recorder: RecorderFactory
) -> None:
    """With SYNCD_LOG__FORMAT=json each line is one JSON object, with conn and project on editor lines."""
    daemon = await start_daemon({**LONG_QUIET, "SYNCD_LOG__FORMAT": "json"})
    session = await _one_editor_session(daemon, recorder)
    daemon.signal(signal.SIGTERM)
    assert await daemon.exit_code() == 0

    entries = [json.loads(line) for line in daemon.stderr.splitlines()]
    assert entries, "the daemon logged nothing"
    for entry in entries:
        assert isinstance(entry, dict)
        assert {"ts", "level", "logger", "msg"} <= entry.keys(), entry
    about_editor = [e for e in entries if e.get("conn") == session]
    assert any("opened project" in e["msg"] for e in about_editor), entries
    assert all(e.get("project") == daemon.project_id for e in about_editor), about_editor
    assert any(e["msg"] == "stopped" for e in entries)


async def test_no_key_token_or_secret_reaches_the_log(
    start_daemon: DaemonFactory, recorder: RecorderFactory, standin: LocalSupabase
) -> None:
    """Supabase mode with a token-bearing editor, failing writes and DEBUG logging logs no secret."""
    user_id = str(uuid.uuid4())
    project_id, scenes = await seed_standin(standin, user_id=user_id)
    token = standin.user_token(user_id)
    env = {**supabase_env(standin), **LONG_QUIET, "SYNCD_LOG__LEVEL": "DEBUG"}
    daemon = await start_daemon(env)
    editor = await recorder(daemon.url)
    await editor.join(project_id, token=token)
    assert editor.close_code is None
    await editor.acked(await editor.patch("scenes", scenes[0], {"body": "secretless"}))
    standin.faults.rest_unavailable = True
    await editor.ws.send('{"type": "flush", "mid": 2}')
    await daemon.wait_log(f"writing project {project_id} failed")
    # A forged token (right shape, wrong secret) is refused; its text must not be echoed either.
    intruder = await recorder(daemon.url)
    forged = token[: token.rindex(".") + 1] + "A" * 43
    await intruder.ws.send(
        json.dumps(
            {
                "type": "hello",
                "protocol": 1,
                "project_id": project_id,
                "client_id": str(uuid.uuid4()),
                "token": forged,
                "resume": None,
            }
        )
    )
    closed_with, _ = await intruder.closed()
    assert closed_with == 4401
    standin.faults.rest_unavailable = False
    daemon.signal(signal.SIGTERM)
    assert await daemon.exit_code() == 0

    log = daemon.stderr + "\n".join(daemon.lines)
    assert "writing project" in log
    assert "failed" in log
    secrets = {
        "service key": standin.service_key,
        "JWT secret": standin.jwt_secret,
        "editor token": token,
        "forged token": forged,
        "token signature": token.rsplit(".", 1)[1],
    }
    for what, secret in secrets.items():
        assert secret not in log, f"the {what} is in the log"
