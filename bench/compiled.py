"""Sizes one way to a faster edit path: the daemon's own Python compiled to C with mypyc.

The code is typed throughout (``mypy --strict``), so mypyc can compile much of it unchanged. This
copies ``syncd/`` to a temporary folder, compiles there the modules an edit runs through (the core,
the host, the outgoing frames, the JSON layer, the editor registry, the metrics and the timer), and
runs `bench/hotpath.py` alternately on this checkout's pure Python and on the compiled copy (first on
``PYTHONPATH``), printing both. A measurement, not a build: nothing here is installed or shipped.

Three modules of the path stay interpreted, because mypyc 2.4 cannot take them as they are:
``syncd/inbound.py`` (its pydantic models: the generated C does not compile),
``syncd/adapters/gateway.py`` (a ``bytes`` subclass, which mypyc does not implement) and
``syncd/adapters/outbox.py`` (the generated C does not compile).

Needs a C compiler and the Python headers. Run from the repository root::

    .venv/bin/python bench/compiled.py
    .venv/bin/python bench/compiled.py --pairs 5 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO_ROOT

HOTPATH = REPO_ROOT / "bench" / "hotpath.py"
COMPILED = [
    "syncd/core",
    "syncd/host.py",
    "syncd/outbound.py",
    "syncd/jsonlib.py",
    "syncd/registry.py",
    "syncd/metrics.py",
    "syncd/timer.py",
]
ROWS = {
    "event loop's thread": "loop",
    "of it parse_frame + ProjectHost.receive": "sync",
    "of it parse_frame": "parse",
    "whole process (journal thread included)": "process",
}


def build(into: Path) -> None:
    """Copy the package to ``into`` and compile the hot modules there, next to their sources."""
    shutil.copytree(REPO_ROOT / "syncd", into / "syncd", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    done = subprocess.run(
        [sys.executable, "-m", "mypyc", *COMPILED], cwd=into, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"mypyc failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    where = subprocess.run(
        [sys.executable, "-c", "import syncd.core.engine as m; print(m.__file__)"],
        env={**os.environ, "PYTHONPATH": str(into)},
        cwd=into,  # not this checkout: ``-c`` puts the working folder first on the path
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not where.endswith(".so"):
        sys.exit(f"the compiled copy is not the one imported: {where}")


def hotpath(pythonpath: str | None, rounds: int, edits: int) -> dict[str, float]:
    """One run of bench/hotpath.py; its medians, in µs of CPU per edit."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(
        [sys.executable, str(HOTPATH), "--rounds", str(rounds), "--edits", str(edits)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures = {}
    for line in out.splitlines():
        match = re.match(r"\s*(.+?)\s+(\d+)(\s+\[.*\])?$", line)
        if match and match.group(1) in ROWS:
            figures[ROWS[match.group(1)]] = float(match.group(2))
    if len(figures) != len(ROWS):
        sys.exit(f"bench/hotpath.py printed something else:\n{out}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=3, help="pure and compiled runs, alternated (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds inside each hotpath run (default 5)")
    parser.add_argument("--edits", type=int, default=5000, help="edits per round (default 5000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="syncd-mypyc-") as tmp:
        print(f"compiling {', '.join(COMPILED)} with mypyc ...", flush=True)
        build(Path(tmp))
        runs: dict[str, list[dict[str, float]]] = {"pure": [], "compiled": []}
        for pair in range(1, args.pairs + 1):
            runs["pure"].append(hotpath(None, args.rounds, args.edits))
            runs["compiled"].append(hotpath(tmp, args.rounds, args.edits))
            print(
                f"pair {pair}: "
                + "; ".join(
                    f"{code} {' / '.join(f'{v:.0f}' for v in r[-1].values())}" for code, r in runs.items()
                ),
                flush=True,
            )
    print("µs of CPU per edit (bench/hotpath.py's medians; median of the pairs [range]):")
    print(f"  {'':42s} {'pure':>16s} {'compiled':>16s}")
    for what, key in ROWS.items():
        cells = []
        for code in ("pure", "compiled"):
            values = [r[key] for r in runs[code]]
            cells.append(f"{statistics.median(values):.0f} [{min(values):.0f}-{max(values):.0f}]")
        print(f"  {what:42s} {cells[0]:>16s} {cells[1]:>16s}")


if __name__ == "__main__":
    main()
