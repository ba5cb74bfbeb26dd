"""A small file system that a test can fill: a tmpfs mounted in the test's folder (needs root, as CI has)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(mount_point: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted at ``mount_point`` (made here); the test is skipped when
    mounting is not allowed."""
    mount_point.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("a full disk needs mount(8) to mount a small tmpfs")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size}", "syncd-test", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"a full disk needs to mount a tmpfs (as root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        # Lazy: a daemon still holding a file there must not keep the mount (fixtures stop it, but
        # the fixtures' order is not this one's to decide).
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def fill(path: Path, leave: int = 0) -> int:
    """Write ``path`` until the disk is full, then give ``leave`` bytes back; return the file's size."""
    written = 0
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    written += os.write(fd, chunk[:size])
                except OSError:
                    break
        os.ftruncate(fd, max(0, written - leave))
    finally:
        os.close(fd)
    return max(0, written - leave)
