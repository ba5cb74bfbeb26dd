"""What the benchmark scripts share: quantiles, the stand-in process, a direct Realtime subscriber."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from realtime import AsyncRealtimeClient, RealtimePostgresChangesListenEvent, RealtimeSubscribeStates

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 120.0


def percentile(values: list[float], share: float) -> float:
    """Return the ``share`` quantile (0..1) of ``values`` by linear interpolation (NaN when empty)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = share * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def start_standin() -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """Start the stand-in (and its PostgreSQL) in its own process; return it with its JSON line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "localsupabase",
        "--no-seed",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)
    if not line:
        raise RuntimeError("the stand-in exited before printing its JSON line")
    return process, json.loads(line)


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM a child and wait for it (kill it after 30 s)."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def subscribe_direct(
    info: dict[str, str],
    project_id: str,
    event: RealtimePostgresChangesListenEvent,
    on_change: Callable[[Any], None],
    name: str,
) -> AsyncRealtimeClient:
    """Subscribe realtime-py to a project's scenes; return once the server says "Subscribed to PostgreSQL"."""
    client = AsyncRealtimeClient(f"{info['url']}/realtime/v1", token=info["service_key"])
    ready = asyncio.Event()
    failed: list[str] = []

    def on_system(payload: Any) -> None:
        if payload.message == "Subscribed to PostgreSQL":
            ready.set()

    def on_status(state: RealtimeSubscribeStates, error: Exception | None) -> None:
        if state != RealtimeSubscribeStates.SUBSCRIBED:
            failed.append(f"{state}: {error}")
            ready.set()

    channel = client.channel(name)
    channel.on_postgres_changes(
        event, on_change, table="scenes", schema="public", filter=f"project_id=eq.{project_id}"
    )
    channel.on_system(on_system)
    await channel.subscribe(on_status)
    await asyncio.wait_for(ready.wait(), 30)
    if failed:
        raise RuntimeError(f"subscription failed: {failed}")
    return client
