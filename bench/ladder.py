"""Where the daemon's CPU goes under the peers harness's load: the same run, cut short at each step.

The peers harness (``../shared/bench/peers``) gives one CPU figure for the whole daemon. This script runs
it several times on the same load, each time with ``syncd run`` stopped at a later step of an edit's path,
and prints the server's CPU for each step; the differences are what each step costs in place, with real
sockets, the real load generator and its wake-ups:

* ``receive``: frames are read from the editors' sockets (aiohttp, uvloop) and dropped;
* ``parse``: ... and each one goes through ``parse_frame``, then is dropped;
* ``no-fan-out-writes``: the whole daemon (engine, journal with its fsync, ``ack`` to the author, saves),
  except that ``fan_out`` writes nothing: it still checks each connection and builds the frame once;
* ``full``: the daemon as it ships.

The first three deliver no change, so the harness reports the edits as lost; only their CPU is read.
A step is applied by a small ``syncd`` wrapper that patches the gateway before ``syncd run`` starts (the
harness finds it through ``PEERS_SYNCD_PYTHON``); the projects are made by the real CLI.

Run from the repository root::

    .venv/bin/python bench/ladder.py                  # 200 editors / 20 projects / 500 edits/s, 10 s per step
    .venv/bin/python bench/ladder.py --rounds 3 -r 1500
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT.parent / "shared" / "bench" / "peers" / "bench.py"
STEPS = ("receive", "parse", "no-fan-out-writes", "full")
STEP_VARIABLE = "LADDER_STEP"  # not SYNCD_*: the daemon refuses settings it does not know


def _cut_short(step: str) -> None:
    """Patch the gateway (in this process, before the daemon starts) to stop an edit at ``step``."""
    from aiohttp import WSMsgType

    from syncd import registry
    from syncd.adapters import gateway
    from syncd.inbound import parse_frame

    data_frames = (WSMsgType.TEXT, WSMsgType.BINARY)

    async def receive_only(self: gateway.EditorGateway, conn: gateway.EditorConnection) -> None:
        while (await conn.ws.receive()).type in data_frames:
            pass

    async def parse_only(self: gateway.EditorGateway, conn: gateway.EditorConnection) -> None:
        s = self._settings
        while (message := await conn.ws.receive()).type in data_frames:
            parse_frame(message.data, max_bytes=s.max_frame_bytes, max_depth=s.max_json_depth)

    def fan_out_unwritten(conns: Iterable[gateway.EditorConnection], data: bytes, on_overflow: object) -> int:
        sent = 0
        frame: bytes | None = None
        for conn in conns:
            if conn.writable_now() and frame is None:
                frame = gateway.text_frame(data)
            sent += 1
        return sent

    if step == "receive":
        gateway.EditorGateway._receive = receive_only  # type: ignore[method-assign]
    elif step == "parse":
        gateway.EditorGateway._receive = parse_only  # type: ignore[method-assign]
    elif step == "no-fan-out-writes":
        registry.fan_out = fan_out_unwritten  # type: ignore[attr-defined]
    elif step != "full":
        raise SystemExit(f"{STEP_VARIABLE}: unknown step {step!r} (one of {', '.join(STEPS)})")


def serve() -> None:
    """The body of the ``syncd`` wrapper: ``syncd run`` cut short, any other command unchanged."""
    args = sys.argv[1:]
    if args[:1] == ["run"]:
        _cut_short(os.environ.get(STEP_VARIABLE, "full"))
    from syncd.cli import main

    sys.exit(main(args))


def _wrapper(folder: Path) -> Path:
    """A venv-shaped folder whose ``bin/syncd`` is the wrapper; returns its ``bin/python``."""
    venv = Path(sys.prefix)
    (folder / "bin").mkdir(parents=True)
    shutil.copy(venv / "pyvenv.cfg", folder / "pyvenv.cfg")
    (folder / "lib").symlink_to(venv / "lib")
    python = folder / "bin" / "python"
    python.symlink_to(sys.executable)
    syncd = folder / "bin" / "syncd"
    here = str(ROOT / "bench")
    syncd.write_text(f"#!{python}\nimport sys\nsys.path.insert(0, {here!r})\nimport ladder\nladder.serve()\n")
    syncd.chmod(0o755)
    return python


def _run_step(step: str, python: Path, args: argparse.Namespace, out: Path) -> dict[str, float]:
    env = {**os.environ, "PEERS_SYNCD_PYTHON": str(python), STEP_VARIABLE: step}
    load = ["-n", str(args.clients), "-m", str(args.rooms), "-r", str(args.rate), "-d", str(args.duration)]
    command = [sys.executable, str(args.harness), "-t", "syncd", *load, "--out", str(out)]
    subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)
    run = json.loads((out / "results.json").read_text())["runs"][0]
    if "server" not in run:
        raise SystemExit(f"step {step}: the harness ran no server; its logs are in {out}")
    return {
        "srv": 100 * run["server"]["cpu_util"],
        "lg": 100 * run["loadgen_proc"]["cpu_util"],
        "delivered": float(run["loadgen"]["delivered"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--clients", type=int, default=200)
    parser.add_argument("-m", "--rooms", type=int, default=20)
    parser.add_argument("-r", "--rate", type=int, default=500, help="edits per second, all editors together")
    parser.add_argument("-d", "--duration", type=int, default=10, help="counted seconds per step")
    parser.add_argument("--rounds", type=int, default=2, help="each round runs every step once, in order")
    parser.add_argument(
        "--harness", type=Path, default=HARNESS, help=f"the peers bench.py (default {HARNESS})"
    )
    args = parser.parse_args()
    if not args.harness.exists():
        raise SystemExit(f"the peers harness is not at {args.harness} (--harness)")
    figures: dict[str, list[dict[str, float]]] = {step: [] for step in STEPS}
    with tempfile.TemporaryDirectory(prefix="syncd-ladder-") as tmp:
        python = _wrapper(Path(tmp) / "venv")
        for round_ in range(args.rounds):
            for step in STEPS:
                out = Path(tmp) / f"{step}-{round_}"
                figures[step].append(_run_step(step, python, args, out))
                print(
                    f"round {round_ + 1} {step:<18} server {figures[step][-1]['srv']:5.1f} % of a core",
                    flush=True,
                )
    load = f"{args.clients} editors / {args.rooms} projects / {args.rate} edits/s"
    print(f"\n{load}, {args.rounds} rounds, medians")
    head = ("step", "server % of a core", "µs of CPU per edit", "this step", "loadgen %")
    print(f"{head[0]:<18} {head[1]:>19} {head[2]:>19} {head[3]:>10} {head[4]:>10}")
    before = 0.0
    for step in STEPS:
        srv = statistics.median(f["srv"] for f in figures[step])
        lg = statistics.median(f["lg"] for f in figures[step])
        per_edit = srv / 100 / args.rate * 1e6
        print(f"{step:<18} {srv:19.1f} {per_edit:19.0f} {per_edit - before:10.0f} {lg:10.1f}")
        before = per_edit


if __name__ == "__main__":
    main()
