"""Latency from a renderer's ``save_clip_record`` to an editor's ``change``, in both modes.

Local mode: ``syncd run`` with its embedded store; the renderer is ``syncd.studio`` over the daemon's
HTTP API (``SYNCD_URL``, the service key from ``syncd service-key``). Supabase mode: the stand-in and
``syncd run`` against it; the renderer is ``syncd.studio`` straight to Supabase, and syncd hears the
insert through Realtime. One editor has the project open (a raw WebSocket in this process, reading in a
task of its own). The renderer adds ``--clips`` clips one after another, ``--rate`` per second.

For each clip it notes when the call started, when it returned, and when the editor got the clip's
``insert`` change, and prints start→editor and return→editor p50/p95/p99 (negative: the editor had it
before the call returned). Every clock is ``time.perf_counter``.

Run from the repository root::

    .venv/bin/python bench/studio_to_editor.py                      # both modes, 200 clips at 20/s
    .venv/bin/python bench/studio_to_editor.py --mode local --clips 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from common import REPO_ROOT, percentile, start_standin, stop
from db_to_editor import start_syncd
from websockets.asyncio.client import ClientConnection, connect

from syncd.studio import Studio
from syncd.studio import connect as studio_connect

ARRIVAL_TIMEOUT = 10.0


async def editor(url: str, project_id: str, arrivals: dict[str, float], ready: asyncio.Event) -> None:
    """One editor: note when each clip's insert arrives."""
    async with connect(url, max_size=None) as ws:
        hello = {"type": "hello", "protocol": 1, "project_id": project_id, "client_id": str(uuid.uuid4())}
        await ws.send(json.dumps({**hello, "token": None, "resume": None}))
        await _until_snapshot(ws)
        ready.set()
        async for data in ws:
            now = time.perf_counter()
            frame = json.loads(data)
            if frame.get("type") == "change" and frame["table"] == "clips" and frame["op"] == "insert":
                arrivals.setdefault(frame["id"], now)


async def _until_snapshot(ws: ClientConnection) -> None:
    while json.loads(await ws.recv())["type"] != "snapshot":
        pass


async def renderer(
    lib: Studio, project_id: str, clips: int, rate: float, arrivals: dict[str, float]
) -> list[tuple[float, float, float]]:
    """Add the clips at ``rate``; return (start, return, arrival) per clip."""
    timings: list[tuple[str, float, float]] = []
    t0 = time.perf_counter()
    for n in range(clips):
        await asyncio.sleep(max(0.0, t0 + n / rate - time.perf_counter()))
        clip_id = str(uuid.uuid4())
        start = time.perf_counter()
        await lib.save_clip_record(
            project_id=project_id,
            scene_id=None,
            provider="bench",
            file_url=None,
            prompt=f"clip {n}",
            id=clip_id,
        )
        timings.append((clip_id, start, time.perf_counter()))
    await polled(lambda: all(c in arrivals for c, _, _ in timings), ARRIVAL_TIMEOUT)
    return [(s, r, arrivals[c]) for c, s, r in timings if c in arrivals]


async def polled(condition: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
    """Look at ``condition`` every 50 ms until it holds or ``timeout`` seconds have passed."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)


def report(mode: str, timings: list[tuple[float, float, float]], clips: int) -> str:
    starts = [(a - s) * 1000 for s, _, a in timings]
    returns = [(a - r) * 1000 for _, r, a in timings]
    calls = [(r - s) * 1000 for s, r, _ in timings]

    def q(values: list[float]) -> str:
        return " / ".join(f"{percentile(values, p):.1f}" for p in (0.5, 0.95, 0.99))

    lost = clips - len(timings)
    return f"| {mode} | {clips} | {q(calls)} | {q(starts)} | {q(returns)} | {lost} |"


async def run_local(args: argparse.Namespace) -> str:
    state = Path(tempfile.mkdtemp(prefix="syncd-studio-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "SUPABASE_"))}
    env["SYNCD_LOG__LEVEL"] = "WARNING"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        "run",
        "--state-dir",
        str(state),
        "--port",
        "0",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        url = ""
        while not url:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            if "editors connect to " in line:
                url = line.split("editors connect to ")[1].strip()
        http = url.replace("ws://", "http://").removesuffix("/v1/editor")
        printed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "syncd", "service-key", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        key = printed.stdout.strip()
        async with studio_connect({"SYNCD_URL": http, "SYNCD_SERVICE_KEY": key}) as lib:
            project = await lib.create_project("bench")
            return await measure("local", url, lib, project["id"], args)
    finally:
        await stop(proc)


async def run_supabase(args: argparse.Namespace) -> str:
    standin, info = await start_standin()
    try:
        syncd, url = await start_syncd(info, Path(tempfile.mkdtemp(prefix="syncd-studio-bench-")))
        try:
            env = {"SUPABASE_URL": info["url"], "SUPABASE_SERVICE_KEY": info["service_key"]}
            async with studio_connect(env) as lib:
                project = await lib.create_project("bench")
                http = url.replace("ws://", "http://").removesuffix("/v1/editor")
                async with httpx.AsyncClient() as probe:
                    for _ in range(300):
                        if (await probe.get(f"{http}/readyz")).status_code == 200:
                            break
                        await asyncio.sleep(0.1)
                return await measure("supabase", url, lib, project["id"], args)
        finally:
            await stop(syncd)
    finally:
        await stop(standin)


async def measure(mode: str, url: str, lib: Studio, project_id: str, args: argparse.Namespace) -> str:
    arrivals: dict[str, float] = {}
    ready = asyncio.Event()
    reading = asyncio.create_task(editor(url, project_id, arrivals, ready))
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(1.0)  # Supabase mode: Realtime listens once the re-read after subscribing is in
    timings = await renderer(lib, project_id, args.clips, args.rate, arrivals)
    reading.cancel()
    return report(mode, timings, args.clips)


async def main(args: argparse.Namespace) -> None:
    print("| mode | clips | call ms p50 / p95 / p99 | start → editor ms | return → editor ms | lost |")
    print("|---|---|---|---|---|---|")
    if args.mode in ("local", "both"):
        print(await run_local(args), flush=True)
    if args.mode in ("supabase", "both"):
        print(await run_supabase(args), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("local", "supabase", "both"), default="both")
    parser.add_argument("--clips", type=int, default=200, help="clips to add (default 200)")
    parser.add_argument("--rate", type=float, default=20.0, help="clips per second (default 20)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
