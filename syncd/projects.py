"""``syncd project create|list|show``, and what ``syncd run`` prints once it serves."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from syncd.adapters.local import LocalBackend
from syncd.backend import open_backend
from syncd.config import SyncdSettings

DEMO_TITLE = "Demo: The Lighthouse"
DEMO_SCENES = (
    ("Exterior, cliff, dawn", "Waves break below an old lighthouse as the fog lifts.", 6.0),
    ("Interior, lamp room", "The keeper polishes the great lens; light sweeps the walls.", 8.0),
    ("Exterior, sea, night", "The beam finds a small boat and guides it home.", 7.5),
)
_DEMO_CLIENT = "00000000-0000-4000-8000-000000000001"


async def command(settings: SyncdSettings, args: argparse.Namespace) -> int:
    """Run one ``project`` action on the configured backend; return the exit code."""
    async with open_backend(settings) as store:
        if args.action == "create":
            row = await store.create_project(args.title, args.user)
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


async def announce(settings: SyncdSettings, port: int) -> None:
    """Print where editors connect and, in local mode, a project they can open (a demo at first)."""
    host = settings.gateway.host
    print(f"syncd {settings.mode} mode: editors connect to ws://{host}:{port}/v1/editor", flush=True)
    key = "`syncd service-key`" if settings.mode == "local" else "SUPABASE_SERVICE_KEY"
    print(f"HTTP API: http://{host}:{port}/v1 (services: Authorization: Bearer <{key}>)", flush=True)
    if settings.mode != "local":
        return
    async with LocalBackend(settings.daemon.state_dir / "store.db") as store:
        existing = await store.list_projects()
        project = existing[-1] if existing else await _create_demo(store)
    print(f"project: {project['id']} ({project['title']})", flush=True)


async def _create_demo(store: LocalBackend) -> dict[str, Any]:
    project = await store.create_project(DEMO_TITLE)
    ops: list[dict[str, Any]] = []
    mutations: list[list[Any]] = []
    for index, (heading, body, duration) in enumerate(DEMO_SCENES):
        mid = index + 1
        row = {"scene_index": index, "heading": heading, "body": body, "duration": duration}
        ops.append(
            {
                "op": "insert",
                "table": "scenes",
                "id": str(uuid.uuid4()),
                "row": row,
                "by": [_DEMO_CLIENT, mid],
            }
        )
        mutations.append([_DEMO_CLIENT, mid])
    await store.apply_encoded({"project_id": project["id"], "ops": ops, "mutations": mutations})
    return project
