"""The state directory: made at start, held with a lock, and watched while the daemon runs.

Two daemons on one state directory would each replay and sequence the same journal, so the second
one is refused at start. A directory removed (or replaced) under a running daemon would take every
later acknowledgement with it, so the daemon notices and stops.
"""

from __future__ import annotations

import fcntl
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from syncd.errors import StateDirError

LOCK_NAME = "syncd.lock"


def make_secret_once(path: Path, make: Callable[[], str]) -> None:
    """Write ``make()`` to ``path``, readable by its owner only, unless the file exists already.

    The file is created exclusively, so of two processes starting at once one makes it and both
    read the same secret afterwards; it is on disk (fsync'd) before this returns.

    Raises:
        OSError: the directory or the file cannot be made.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(make() + "\n")
        out.flush()
        os.fsync(out.fileno())


class StateDir:
    """An exclusive hold on one state directory.

    Args:
        path: the directory; created with its parents when missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None

    def __enter__(self) -> StateDir:
        """Create the directory and take its lock.

        Raises:
            StateDirError: the directory cannot be made or written, or another syncd holds it.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateDirError(f"state directory {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateDirError(
                f"state directory {self.path} is in use by another syncd (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        st = os.fstat(fd)
        self._identity = (st.st_dev, st.st_ino)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def problem(self) -> str | None:
        """What is wrong with the directory now, or None: it is gone, or it is not the one we locked."""
        try:
            st = os.stat(self.path / LOCK_NAME)
        except OSError:
            return f"state directory {self.path} was removed while the daemon ran"
        if (st.st_dev, st.st_ino) != self._identity:
            return f"state directory {self.path} was replaced while the daemon ran"
        return None


def free_bytes(state_dir: Path) -> float:
    """Free bytes (for an unprivileged writer) on the state directory's file system; NaN if unknown."""
    try:
        return float(shutil.disk_usage(state_dir).free)
    except OSError:
        return math.nan
