"""Fixtures of the HTTP API tests: syncd in local mode, in-process, with its service key and editors."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from syncd.adapters.local import LocalBackend
from syncd.client import EditorClient
from syncd.config import SyncdSettings
from syncd.servicekey import service_key
from syncd.supervisor import Supervisor

WAIT = 10.0
JWT_SECRET = "http-test-jwt-secret-0123456789abcdef0123456789"


def user_token(user_id: str, *, expires_in: float = 3600.0) -> str:
    """A Supabase access token of ``user_id``, signed with the test secret."""
    claims = {
        "sub": user_id,
        "aud": "authenticated",
        "role": "authenticated",
        "exp": int(time.time() + expires_in),
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


class LocalDaemon:
    """One in-process syncd in local mode, with HTTP clients for a service and for editors."""

    def __init__(self, sup: Supervisor, state_dir: Path) -> None:
        self.sup = sup
        self.state_dir = state_dir
        self.url = f"http://127.0.0.1:{sup.gateway.port}"
        self.ws_url = f"ws://127.0.0.1:{sup.gateway.port}/v1/editor"
        self.key = service_key(state_dir)
        self.service = httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=WAIT
        )
        self.anonymous = httpx.AsyncClient(base_url=self.url, timeout=WAIT)
        self._clients: list[httpx.AsyncClient] = [self.service, self.anonymous]
        self._editors: list[EditorClient] = []

    def as_user(self, user_id: str) -> httpx.AsyncClient:
        """An HTTP client with ``user_id``'s token."""
        client = httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {user_token(user_id)}"}, timeout=WAIT
        )
        self._clients.append(client)
        return client

    async def project(self, title: str = "Film", scenes: int = 0) -> str:
        """A new anonymous project with ``scenes`` scenes (saved); its id."""
        answer = await self.anonymous.post("/v1/projects", json={"title": title})
        assert answer.status_code == 201, answer.text
        project_id = str(answer.json()["id"])
        if scenes:
            body = {"scenes": [{"heading": f"Scene {i + 1}", "duration": 5.0} for i in range(scenes)]}
            put = await self.service.put(f"/v1/projects/{project_id}/scenes?save=now", json=body)
            assert put.status_code == 200, put.text
        return project_id

    async def editor(self, project_id: str, token: str | None = None) -> EditorClient:
        """An editor with the project open (closed after the test)."""
        client = EditorClient(self.ws_url, project_id, token=token, request_timeout=WAIT)
        self._editors.append(client)
        await client.connect()
        return client

    async def stored(self, project_id: str) -> dict[str, Any]:
        """The project as the embedded store holds it (what is saved)."""
        async with LocalBackend(self.state_dir / "store.db") as store:
            return await store.read_project(project_id)

    async def close(self) -> None:
        for editor in self._editors:
            await editor.close()
        for client in self._clients:
            await client.aclose()


def local_settings(state_dir: Path, **sections: Any) -> SyncdSettings:
    """Local mode on a free port, quick saves (unless ``debounce`` says otherwise), editors' tokens
    signed with the test secret."""
    sections.setdefault("debounce", {"quiet": 0.2, "max_wait": 1.0})
    return SyncdSettings(
        daemon={"state_dir": state_dir, "shutdown_timeout": 5.0, "project_idle_timeout": 1.0},
        gateway={"port": 0},
        supabase={"jwt_secret": JWT_SECRET},
        **sections,
    )


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[LocalDaemon]:
    """syncd in local mode, serving."""
    async with serving(local_settings(tmp_path / "state")) as running:
        yield running


@pytest.fixture
async def slow_saving_daemon(tmp_path: Path) -> AsyncIterator[LocalDaemon]:
    """syncd in local mode whose debounce saves nothing within a test (60 s of quiet, 120 s at most)."""
    settings = local_settings(tmp_path / "state", debounce={"quiet": 60.0, "max_wait": 120.0})
    async with serving(settings) as running:
        yield running


@contextlib.asynccontextmanager
async def serving(settings: SyncdSettings) -> AsyncIterator[LocalDaemon]:
    """Run a Supervisor with ``settings`` until the block ends; it must stop cleanly."""
    state_dir = settings.daemon.state_dir
    sup = Supervisor(settings)
    task = asyncio.create_task(sup.serve())
    ready = asyncio.create_task(sup.ready.wait())
    await asyncio.wait({task, ready}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    assert not task.done(), "syncd stopped during start-up"
    running = LocalDaemon(sup, state_dir)
    try:
        yield running
    finally:
        await running.close()
        sup.request_stop()
        async with asyncio.timeout(WAIT):
            assert await task == 0


def new_id() -> str:
    """A fresh UUID in text form."""
    return str(uuid.uuid4())
