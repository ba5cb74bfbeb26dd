"""What the inspector serves, and who sees which projects in its listing (no browser needed)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from pydantic import SecretStr

from syncd.adapters.local import LocalBackend
from syncd.auth import TokenVerifier
from syncd.core.engine import SyncEngine
from syncd.core.ids import ProjectId
from syncd.inspector import PROJECTS_PATH, Inspector, Reply

SECRET = "inspector-test-secret-of-enough-length-for-hs256"
ALICE = "a11ce000-0000-4000-8000-000000000001"
BOB = "b0b00000-0000-4000-8000-000000000002"


@dataclass
class Conn:
    """An editor connection as the gateway keeps it (the fields the inspector reads)."""

    project_id: str | None
    client_id: str | None
    user_id: str | None


@dataclass
class World:
    store: LocalBackend
    engine: SyncEngine
    conns: list[Conn]
    projects: dict[str, str]

    def inspector(self, *, local: bool, allow_anonymous: bool) -> Inspector:
        return Inspector(
            backend=self.store,
            engine=self.engine,
            editors=lambda: self.conns,
            unsaved_age=lambda project_id: 2.5,
            verifier=TokenVerifier(jwt_secret=SecretStr(SECRET), jwks_url=None, audience=None),
            local=local,
            allow_anonymous=allow_anonymous,
        )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """A store with an anonymous project and one of Alice and one of Bob; Alice's is open with an editor."""
    async with LocalBackend(tmp_path / "store.db") as store:
        projects = {
            "anonymous": (await store.create_project("Open to all"))["id"],
            "alice": (await store.create_project("Alice's film", ALICE))["id"],
            "bob": (await store.create_project("Bob's film", BOB))["id"],
        }
        engine = SyncEngine()
        engine.open_project(ProjectId(projects["alice"]), "e1", 0.0)
        conns = [
            Conn(projects["alice"], "c0ffee00-0000-4000-8000-000000000001", ALICE),
            Conn(None, None, None),
        ]
        yield World(store, engine, conns, projects)


def token(user_id: str, secret: str = SECRET) -> str:
    return "Bearer " + jwt.encode({"sub": user_id, "exp": int(time.time()) + 60}, secret, algorithm="HS256")


def listed(reply: Reply | None) -> dict[str, dict[str, object]]:
    assert reply is not None
    assert (reply.status, reply.content_type) == (200, "application/json")
    return {p["id"]: p for p in json.loads(reply.body)["projects"]}


async def test_local_mode_lists_every_project_with_its_state(world: World) -> None:
    projects = listed(await world.inspector(local=True, allow_anonymous=True).respond(PROJECTS_PATH))
    assert set(projects) == set(world.projects.values())
    alice = projects[world.projects["alice"]]
    assert alice["open"] is True
    assert alice["editors"] == [{"client_id": "c0ffee00-0000-4000-8000-000000000001", "user_id": ALICE}]
    assert (alice["seq"], alice["saved_seq"], alice["unsaved"], alice["unsaved_age"]) == (0, 0, 0, 0.0)
    bob = projects[world.projects["bob"]]
    assert (bob["open"], bob["editors"], bob["seq"]) == (False, [], None)


async def test_elsewhere_the_listing_follows_the_editors_rules(world: World) -> None:
    anonymous_on = world.inspector(local=False, allow_anonymous=True)
    assert set(listed(await anonymous_on.respond(PROJECTS_PATH))) == {world.projects["anonymous"]}
    as_alice = await anonymous_on.respond(PROJECTS_PATH, token(ALICE))
    assert set(listed(as_alice)) == {world.projects["alice"]}

    anonymous_off = world.inspector(local=False, allow_anonymous=False)
    refused = await anonymous_off.respond(PROJECTS_PATH)
    assert refused is not None
    assert (refused.status, json.loads(refused.body)["error"]) == (401, "unauthorized")
    assert set(listed(await anonymous_off.respond(PROJECTS_PATH, token(BOB)))) == {world.projects["bob"]}
    forged = await anonymous_off.respond(
        PROJECTS_PATH, token(BOB, "another-secret-of-enough-length-for-hs256")
    )
    assert forged is not None
    assert (forged.status, json.loads(forged.body)["message"]) == (401, "token refused: bad signature")
    wrong_scheme = await anonymous_off.respond(PROJECTS_PATH, "Basic Ym9iOnNlY3JldA==")
    assert wrong_scheme is not None
    assert wrong_scheme.status == 401


async def test_pages_and_static_files(world: World) -> None:
    inspector = world.inspector(local=True, allow_anonymous=True)
    project = f"/projects/{world.projects['bob']}"
    # Links relative to the page, so that it works under the path a proxy may serve the daemon at.
    for path, up in (("/", "./"), (project, "../"), (f"{project}/", "../../"), ("/?x=1", "./")):
        page = await inspector.respond(path)
        assert page is not None
        assert (page.status, page.content_type) == (200, "text/html; charset=utf-8")
        assert f'<script type="module" src="{up}static/inspector.js">'.encode() in page.body
        assert f'<a class="brand" href="{up}">'.encode() in page.body
        assert ("X-Content-Type-Options", "nosniff") in page.headers
    script = await inspector.respond("/static/inspector.js")
    assert script is not None
    assert (script.status, script.content_type) == (200, "text/javascript; charset=utf-8")
    missing = await inspector.respond("/static/../__init__.py")
    assert missing is not None
    assert missing.status == 404
    assert await inspector.respond("/projects/not-a-uuid") is None
    assert await inspector.respond("/v1/editor") is None
