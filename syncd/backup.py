"""``syncd backup DEST``: a copy of the state directory that a daemon can start from, taken while it runs.

In local mode the state directory holds everything the studio has: the embedded store, the journal of
acknowledged edits not saved yet, the stored files and the two secrets. Copying the folder while the
daemon writes it can catch a database file between two of its writes; this command copies each
database with SQLite's online backup, which gives a consistent state of it.

The journal is copied before the store. An edit acknowledged before the journal's copy is then in that
copy, or was saved, and removed from the journal, before it: then it is in the store's copy, which is
taken later. A daemon started on the copy replays the journal and skips what the store has (each
client's highest applied mid is recorded with it), so every edit acknowledged before the backup
began is in what it shows. Files and secrets are copied as they are.

To restore: stop the daemon, replace its state directory with the copy, start it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
from pathlib import Path

from syncd.auth import LOCAL_SECRET_FILE
from syncd.config import SyncdSettings
from syncd.errors import StartupError
from syncd.servicekey import KEY_FILE

JOURNAL, STORE, FILES = "outbox.db", "store.db", "files"


def command(settings: SyncdSettings, args: argparse.Namespace) -> int:
    """Copy the state directory to ``args.dest`` and say what was copied."""
    for line in backup(settings.daemon.state_dir, args.dest):
        print(line)
    return 0


def backup(state_dir: Path, dest: Path) -> list[str]:
    """Copy ``state_dir`` to ``dest`` (a folder that does not exist yet, or is empty).

    Returns:
        One line per part copied.

    Raises:
        StartupError: the state directory is not there, ``dest`` is not empty, or a copy failed; the
            message names it.
    """
    if not (state_dir / JOURNAL).is_file() and not (state_dir / STORE).is_file():
        raise StartupError(f"backup: {state_dir} holds no syncd state (no {JOURNAL}, no {STORE})")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise StartupError(f"backup: {dest} exists and is not an empty folder; name a new one")
    lines: list[str] = []
    try:
        dest.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in (JOURNAL, STORE):  # in this order: see the module's docstring
            if (state_dir / name).is_file():
                _copy_database(state_dir / name, dest / name)
                lines.append(f"{name}: {(dest / name).stat().st_size} bytes")
        for name in (KEY_FILE, LOCAL_SECRET_FILE):
            if (state_dir / name).is_file():
                shutil.copy2(state_dir / name, dest / name)
                lines.append(f"{name}: copied")
        if (state_dir / FILES).is_dir():
            shutil.copytree(
                state_dir / FILES, dest / FILES, ignore=shutil.ignore_patterns(".incoming", "*.partial")
            )
            count = sum(1 for f in (dest / FILES).rglob("*") if f.is_file() and f.suffix != ".type")
            lines.append(f"{FILES}: {count} stored files")
    except (OSError, sqlite3.Error) as exc:
        raise StartupError(f"backup: copying {state_dir} to {dest} failed: {exc}") from exc
    return lines


def _copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup of ``source`` into a new file ``target``, on disk before it returns."""
    src = sqlite3.connect(source, isolation_level=None)
    try:
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    with target.open("rb") as f:
        os.fsync(f.fileno())
