"""``syncd.studio`` in daemon mode sends a call again while syncd is away, and never makes a row twice.

A renderer saves a clip it spent minutes generating; a deploy restarts syncd at that moment. The call
must land once: sent again until the daemon is back, with the id the library gave the row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from syncd.projects import DEMO_PROJECT_ID
from syncd.servicekey import service_key
from syncd.studio import StudioError, connect
from syncd.studio.daemon import DaemonStudio, retry_delays
from tests.http.conftest import LocalDaemon
from tests.support.daemon import FAST_SAVES, DaemonProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_the_waits_double_to_4_s_and_add_up_to_the_budget() -> None:
    assert list(retry_delays(20.0)) == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 0.25]
    assert list(retry_delays(1.0)) == [0.25, 0.5, 0.25]
    assert list(retry_delays(0.0)) == []


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "86400"])
def test_a_retry_time_that_is_not_seconds_is_refused_by_name(value: str) -> None:
    settings = {"SYNCD_URL": "http://127.0.0.1:9", "SYNCD_SERVICE_KEY": "k", "SYNCD_RETRY_SECONDS": value}
    with pytest.raises(StudioError) as caught:
        connect(settings)
    assert caught.value.code == "unconfigured"
    assert caught.value.message == f"SYNCD_RETRY_SECONDS: a number of seconds from 0 to 3600, not {value!r}"


async def test_a_clip_saved_while_syncd_restarts_lands_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = DaemonProcess(tmp_path / "state", env=FAST_SAVES).start()
    try:
        async with connect(
            {"SYNCD_URL": daemon.http, "SYNCD_SERVICE_KEY": service_key(daemon.state_dir)}
        ) as lib:
            assert daemon.terminate() == 0
            with caplog.at_level(logging.WARNING, logger="syncd.studio"):
                saving = asyncio.create_task(
                    lib.save_clip_record(
                        project_id=DEMO_PROJECT_ID,
                        scene_id=None,
                        provider="pika",
                        file_url=None,
                        prompt="Surf",
                    )
                )
                await wait_for(
                    lambda: "trying again" in caplog.text, "a first try that found no daemon", 10.0
                )
                assert not saving.done()
                await daemon.restart()
                clip = await saving
            loaded = await lib.load_project(DEMO_PROJECT_ID)
    finally:
        daemon.stop()
    assert [c["id"] for c in loaded["clips"] if c["prompt"] == "Surf"] == [clip["id"]]
    assert "cannot reach syncd at" in caplog.text
    assert service_key(daemon.state_dir) not in caplog.text


class LossyRelay:
    """A TCP relay to the daemon that can lose the next answer: the request reaches the daemon, and
    the connection is cut as the answer starts back, as when a network or a proxy drops it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lose_next = False
        self.lost = 0

    async def connect(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.port)

        async def up() -> None:
            while data := await client_r.read(65536):
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def down() -> None:
            while data := await server_r.read(65536):
                if self.lose_next:
                    self.lose_next, self.lost = False, self.lost + 1
                    client_w.transport.abort()
                    server_w.close()
                    return
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        await asyncio.gather(up(), down(), return_exceptions=True)


@pytest.fixture
async def lossy(daemon: LocalDaemon) -> AsyncIterator[tuple[LossyRelay, DaemonStudio]]:
    """The relay in front of the daemon, and the library talking through it."""
    relay = LossyRelay(daemon.sup.gateway.port)
    server = await asyncio.start_server(relay.connect, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with DaemonStudio(url, daemon.key) as lib:
        yield relay, lib
    server.close()


async def test_a_write_whose_answer_was_lost_is_sent_again_and_applied_once(
    daemon: LocalDaemon, lossy: tuple[LossyRelay, DaemonStudio]
) -> None:
    relay, lib = lossy
    relay.lose_next = True
    project = await lib.create_project("Lost answer")
    relay.lose_next = True
    scenes = await lib.sync_scenes(project["id"], [{"heading": "One"}, {"heading": "Two"}])
    relay.lose_next = True
    clip = await lib.save_clip_record(
        project_id=project["id"], scene_id=scenes[0]["id"], provider="pika", file_url=None, prompt="Surf"
    )
    relay.lose_next = True
    voice = await lib.create_voice(name="Narrator")
    assert relay.lost == 4

    titles = [p["title"] for p in (await daemon.service.get("/v1/projects")).json()]
    assert titles.count("Lost answer") == 1
    loaded = await lib.load_project(project["id"])
    # Scenes without ids got theirs from the library: the second try left the first one's rows.
    assert [s["id"] for s in loaded["scenes"]] == [s["id"] for s in scenes]
    assert [c["id"] for c in loaded["clips"]] == [clip["id"]]
    assert [v["id"] for v in await lib.list_voices() if v["name"] == "Narrator"] == [voice["id"]]

    relay.lose_next = True
    await lib.delete_clip(project["id"], clip["id"])
    assert relay.lost == 5
    assert (await lib.load_project(project["id"]))["clips"] == []


async def test_an_upload_that_may_not_replace_a_file_is_not_sent_again_once_it_may_have_landed(
    daemon: LocalDaemon, lossy: tuple[LossyRelay, DaemonStudio]
) -> None:
    """A second try would be refused as existing, whoever stored the file: the first error stands."""
    relay, lib = lossy
    path = f"projects/{await daemon.project()}/thumbnails/once.png"
    relay.lose_next = True
    with pytest.raises(StudioError) as caught:
        await lib.upload("thumbnails", path, b"png", "image/png", upsert=False)
    assert caught.value.code == "unavailable"
    assert relay.lost == 1
    await lib.upload("thumbnails", path, b"png", "image/png")  # with upsert, as the upload_* calls do
