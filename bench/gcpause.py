"""How long a full cyclic collection stalls the daemon while projects' change histories are full.

Each open project keeps its last changes (``engine.history_size``, 10,000 by default) so a
reconnecting editor gets exactly what it missed. A full collection walks every object the collector
tracks, and it runs on whichever thread allocates, the event loop's included. This fills
``--projects`` histories with ``--changes`` changes each (the fan-out load's edit: a patch of a
project's ``settings``) and times ``gc.collect()`` with them:

- kept by `syncd.core.history.History`, as the daemon keeps them;
- the same changes held as `Change` objects in a deque, as `History` kept them before.

The daemon's start-up objects are frozen first, as ``syncd run`` does (`syncd.cli.freeze_start_objects`),
so the figures are what the histories add. Run from the repository root:

    .venv/bin/python bench/gcpause.py
    .venv/bin/python bench/gcpause.py --projects 100 --changes 10000
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections import deque

from syncd.cli import freeze_start_objects
from syncd.core.effects import Change
from syncd.core.history import History
from syncd.core.ids import ClientId, ProjectId, RowId


def changes(project: int, count: int) -> list[Change]:
    pid = ProjectId(f"0b6c1f2e-0000-4000-8000-{project:012d}")
    author = ClientId(f"editor-{project}")
    return [
        Change(pid, seq, "projects", "update", RowId(pid), None, {"settings": {"c": 3, "k": seq, "t": 0.5}},
               "editor", author, seq)
        for seq in range(1, count + 1)
    ]  # fmt: skip


def full_collections(rounds: int) -> list[float]:
    """Milliseconds of each of ``rounds`` full collections."""
    took = []
    for _ in range(rounds):
        start = time.perf_counter()
        gc.collect()
        took.append((time.perf_counter() - start) * 1000)
    return took


def show(label: str, took: list[float]) -> None:
    print(f"{label:<34} full collection {statistics.median(took):7.1f} ms  [{min(took):.1f}-{max(took):.1f}]")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--changes", type=int, default=10_000, help="changes kept per project")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    frozen = freeze_start_objects()
    print(f"{frozen} start-up objects frozen; {args.projects} projects x {args.changes} changes")
    show("no history", full_collections(args.rounds))

    histories = [History(args.changes, max_bytes=1 << 40) for _ in range(args.projects)]
    start = time.perf_counter()
    for project, history in enumerate(histories):
        for change in changes(project, args.changes):
            history.append(change)
    per_change = (time.perf_counter() - start) / (args.projects * args.changes) * 1e6
    show("History (as the daemon keeps them)", full_collections(args.rounds))
    start = time.perf_counter()
    caught_up = sum(len(h.since(0) or ()) for h in histories)
    per_catch_up = (time.perf_counter() - start) / caught_up * 1e6
    del histories

    held = [deque(changes(project, args.changes)) for project in range(args.projects)]
    show("Change objects in deques", full_collections(args.rounds))
    del held
    print(
        f"History: {per_change:.2f} us per change made and kept, {per_catch_up:.2f} us per change caught up"
    )
    history_bytes, object_bytes = kept_bytes(True, args.changes), kept_bytes(False, args.changes)
    print(f"bytes per kept change: History {history_bytes:.0f}, Change objects {object_bytes:.0f}")


def kept_bytes(in_history: bool, count: int) -> float:
    """Bytes allocated per change that one project keeps, measured with tracemalloc."""
    tracemalloc.start()
    made = changes(0, count)
    kept: object
    if in_history:
        kept = history = History(count, max_bytes=1 << 40)
        for change in made:
            history.append(change)
    else:
        kept = deque(made)
    del made
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return size / count


if __name__ == "__main__":
    main()
