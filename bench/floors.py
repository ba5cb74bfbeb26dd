"""syncd beside two floors built on WebSocket layers it could stand on, under the peers harness's load.

The harness (``../shared/bench/peers``) compares syncd with a bare websockets broadcast server and
with Hocuspocus. This script adds two more bare broadcast servers, ``bench/floors/``: one on aiohttp and
uvloop, read and written the way syncd's gateway does (what syncd's own layer costs when it does nothing
else), and one on picows, a WebSocket layer in Cython that hands frames to a callback (what a faster
layer would save). The harness's folder is copied to a temporary one with the two targets added; it
installs their packages into its own cache folder (``~/.cache/syncd-floors``), with aiohttp and uvloop
at the versions syncd runs with here. Arguments go to the harness's ``bench.py``.

Run from the repository root::

    .venv/bin/python bench/floors.py                  # the five targets, 200 / 20 / 500, 3 rounds
    .venv/bin/python bench/floors.py -t aiohttp-floor,picows-floor -n 200 -m 20 -r 1500
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT.parent / "shared" / "bench" / "peers"
FLOORS = Path(__file__).resolve().parent / "floors"
PICOWS = "2.3.1"
DEFAULT = ["-t", "ws-broadcast,aiohttp-floor,picows-floor,hocuspocus,syncd", "-n", "200", "-m", "20"]
DEFAULT += ["-r", "500", "--repeat", "3"]

TARGETS = """

TARGETS += [
    Target(
        name="aiohttp-floor",
        wire="json",
        argv=lambda e, port: [e.python, {aiohttp_floor!r}, str(port)],
        pip=("aiohttp=={aiohttp}", "uvloop=={uvloop}"),
        note="aiohttp + uvloop, read and written as syncd's gateway does; no parsing, no state",
    ),
    Target(
        name="picows-floor",
        wire="json",
        argv=lambda e, port: [e.python, {picows_floor!r}, str(port)],
        pip=("picows=={picows}", "uvloop=={uvloop}"),
        note="picows + uvloop, frames in a callback; no parsing, no state",
    ),
]
"""


def main() -> int:
    if not (HARNESS / "bench.py").exists():
        sys.exit(f"floors.py: the peers harness is not at {HARNESS}")
    args = sys.argv[1:] or DEFAULT
    with tempfile.TemporaryDirectory(prefix="syncd-floors-") as tmp:
        copy = Path(tmp) / "peers"
        shutil.copytree(HARNESS, copy)
        with (copy / "targets.py").open("a") as targets:
            targets.write(
                TARGETS.format(
                    aiohttp_floor=str(FLOORS / "aiohttp_floor.py"),
                    picows_floor=str(FLOORS / "picows_floor.py"),
                    aiohttp=version("aiohttp"),
                    uvloop=version("uvloop"),
                    picows=PICOWS,
                )
            )
        env = dict(os.environ)
        env["XDG_CACHE_HOME"] = str(Path.home() / ".cache" / "syncd-floors")
        env.setdefault("PEERS_SYNCD_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
        return subprocess.call([sys.executable, str(copy / "bench.py"), *args], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
