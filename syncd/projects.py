"""``syncd project create|list|show``, ``syncd token``, and what ``syncd run`` prints once it serves."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import jwt

from syncd.adapters.local import LocalBackend
from syncd.auth import LOCAL_SECRET_FILE, editor_jwt_secret
from syncd.backend import open_backend
from syncd.config import SyncdSettings
from syncd.errors import ConfigError, WriteError
from syncd.rows import is_uuid

DEMO_PROJECT_ID = "0f000000-0000-4000-8000-000000000001"
"""The demo project of ``supabase/seed.sql``, which local mode creates in an empty store."""

DEMO_VOICE: dict[str, Any] = {
    "id": "0f000000-0000-4000-8000-000000000101",
    "user_id": None,
    "name": "Keeper (narrator)",
    "provider": "demo",
    "voice_ref": "narrator-warm-1",
    "settings": {"stability": 0.6, "speed": 0.95},
}
_LINES = (
    "At dusk the keeper climbs the spiral stairs.",
    "The lamp turns; its beam sweeps the restless sea.",
    "Far out, a small boat turns toward the light and home.",
)
DEMO_PROJECT: dict[str, Any] = {
    "id": DEMO_PROJECT_ID,
    "user_id": None,
    "title": "Demo: The Lighthouse",
    "script": "\n\n".join(_LINES),
    "status": "draft",
    "aspect_ratio": "16:9",
    "settings": {"fps": 30, "resolution": "1080p", "music": "calm-strings"},
}
DEMO_SCENES: tuple[dict[str, Any], ...] = tuple(
    {
        "id": f"0f000000-0000-4000-8000-00000000020{index + 1}",
        "scene_index": index,
        "heading": heading,
        "body": _LINES[index],
        "duration": duration,
        "voice_id": DEMO_VOICE["id"],
    }
    for index, (heading, duration) in enumerate((("Dusk", 6.0), ("The lamp", 7.5), ("Homeward", 8.0)))
)
DEMO_CLIPS: tuple[dict[str, Any], ...] = tuple(
    {
        "id": f"0f000000-0000-4000-8000-00000000030{index + 1}",
        "scene_id": DEMO_SCENES[index]["id"],
        "provider": "demo",
        "prompt": prompt,
        "status": "pending",
        "duration": DEMO_SCENES[index]["duration"],
        "trim_start": 0.0,
        "trim_end": None,
        "order_index": index,
        "metadata": {"seed": 101 + index},
    }
    for index, prompt in enumerate(
        (
            "An old keeper climbing a spiral staircase inside a lighthouse at dusk, warm lantern light",
            "A lighthouse beam sweeping across a stormy sea at night, wide shot",
            "A small fishing boat turning toward a distant lighthouse, calm water at first light",
        )
    )
)
_DEMO_CLIENT = "00000000-0000-4000-8000-000000000001"
"""The client id that the demo's rows are recorded under (a batch needs one)."""


async def command(settings: SyncdSettings, args: argparse.Namespace) -> int:
    """Run one ``project`` action on the configured backend; return the exit code.

    Raises:
        ConfigError: an owner or a project id that is not a UUID (checked before the store is opened).
    """
    if args.action == "create" and args.user is not None:
        _check_uuid(args.user, "project create: --user")
    if args.action == "show":
        _check_uuid(args.id, "project show: the project id")
    async with open_backend(settings, one_shot=True) as store:
        if args.action == "create":
            row = await store.create_project(args.title, None if args.user is None else args.user.lower())
            print(row["id"])
            return 0
        if args.action == "list":
            for row in await store.list_projects():
                owner = row["user_id"] or "anonymous"
                print(f"{row['id']}\t{row['updated_at']}\t{owner}\t{row['title']}")
            return 0
        if args.action == "show":
            data = await store.read_project(args.id.lower())
            if data["project"] is None:
                print(f"syncd: project {args.id} does not exist", file=sys.stderr)
                return 1
            print(json.dumps(data, indent=2, ensure_ascii=False))
            return 0
    raise AssertionError(f"unknown project action {args.action}")


def token_command(settings: SyncdSettings, args: argparse.Namespace) -> int:
    """``syncd token USER_ID``: print an editor token for the user, signed with the daemon's secret."""
    secret_file = settings.daemon.state_dir / LOCAL_SECRET_FILE
    new_secret = (
        settings.supabase.jwt_secret is None and settings.mode == "local" and not secret_file.exists()
    )
    print(make_token(settings, args.user_id, hours=args.hours))
    if new_secret:
        # Run from the wrong folder, this signs with a secret no daemon has: say so rather than fail later.
        print(
            f"syncd: made a new JWT secret in {secret_file}; only a daemon with this state directory "
            "accepts the token",
            file=sys.stderr,
        )
    return 0


def make_token(settings: SyncdSettings, user_id: str, *, hours: float = 24.0) -> str:
    """An HS256 access token for ``user_id`` that this daemon's editors' check accepts.

    Signed with ``supabase.jwt_secret`` when it is set, else (local mode) with the secret in the state
    directory, created on first use.

    Raises:
        ConfigError: Supabase mode without a JWT secret, a user id that is not a UUID, or hours not
            above 0.
    """
    _check_uuid(user_id, "token: the user id")
    if not hours > 0:
        raise ConfigError(f"token: --hours must be above 0, not {hours:g}")
    secret = editor_jwt_secret(settings)
    if secret is None:
        raise ConfigError("token: Supabase mode signs with SUPABASE_JWT_SECRET, which is not set")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id.lower(),
        "role": "authenticated",
        "iat": now,
        "exp": now + int(hours * 3600),
    }
    if settings.auth.audience is not None:
        claims["aud"] = settings.auth.audience
    return jwt.encode(claims, secret.get_secret_value(), algorithm="HS256")


async def announce(settings: SyncdSettings, port: int) -> None:
    """Print where editors connect, the inspector's address, and in local mode a project to open.

    In local mode an empty store first gets the demo project of ``supabase/seed.sql``.
    """
    url = settings.gateway.dial_url(port)
    ws = "ws" + url.removeprefix("http")
    print(f"syncd {settings.mode} mode: editors connect to {ws}/v1/editor", flush=True)
    print(f"inspector: {url}/", flush=True)
    key = "`syncd service-key`" if settings.mode == "local" else "SUPABASE_SERVICE_KEY"
    print(f"HTTP API: {url}/v1 (services: Authorization: Bearer <{key}>)", flush=True)
    if settings.mode != "local":
        return
    async with LocalBackend(settings.daemon.state_dir / "store.db") as store:
        existing = await store.list_projects()
        project = existing[-1] if existing else await create_demo(store)
    print(f"project: {project['id']} ({project['title']})", flush=True)


async def create_demo(store: LocalBackend) -> dict[str, Any]:
    """Write the seed's demo (voice, project, scenes, clips) with its fixed ids; return the project row.

    Raises:
        WriteError: the store refused a row.
    """
    await store.insert_missing("voices", [DEMO_VOICE])
    await store.insert_missing("projects", [DEMO_PROJECT])
    ops: list[dict[str, Any]] = []
    for table, rows in (("scenes", DEMO_SCENES), ("clips", DEMO_CLIPS)):
        for row in rows:
            mid = len(ops) + 1
            ops.append(
                {"op": "insert", "table": table, "id": row["id"], "row": row, "by": [_DEMO_CLIENT, mid]}
            )
    mutations = [op["by"] for op in ops]
    await store.apply_encoded({"project_id": DEMO_PROJECT_ID, "ops": ops, "mutations": mutations})
    data = await store.read_project(DEMO_PROJECT_ID)
    if data["project"] is None:
        raise WriteError("the demo project was not written", retryable=False)
    project: dict[str, Any] = data["project"]
    return project


def _check_uuid(value: str, where: str) -> None:
    """Refuse a user or project id that is not a UUID: every id column holds one, and Auth makes no other.

    Raises:
        ConfigError: naming ``where`` and the value.
    """
    if not is_uuid(value):
        raise ConfigError(f"{where} must be a UUID (8-4-4-4-12 hex digits), not {value!r}")
