"""Start ``syncd run`` as a real process for end-to-end tests, and read what it prints."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tests.support.env import clean_environ, command_stderr
from tests.support.waiting import wait_for

WAIT = 10.0
"""Default seconds for the process to exit, log a line or answer a request."""

FAST_SAVES = {"SYNCD_DEBOUNCE__QUIET": "0.2", "SYNCD_DEBOUNCE__MAX_WAIT": "1"}
"""A debounce short enough that saves happen within a test."""

_ADDRESS = re.compile(r"editors connect to (ws://\S+)")
_PROJECT = re.compile(r"^project: ([0-9a-f-]{36})")


def syncd_command(state_dir: Path, *args: str) -> list[str]:
    """The command line of ``syncd ARGS --state-dir STATE_DIR`` with this interpreter."""
    return [sys.executable, "-m", "syncd", *args, "--state-dir", str(state_dir)]


def run_syncd(state_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``syncd ARGS --state-dir STATE_DIR`` to its end, in a clean environment, beside the state dir.

    Its stderr is the command's own: without asyncio's debug notes (:func:`command_stderr`).
    """
    done = subprocess.run(
        syncd_command(state_dir, *args),
        capture_output=True,
        text=True,
        env=clean_environ(),
        cwd=state_dir.parent,
        timeout=timeout,
        check=False,
    )
    done.stderr = command_stderr(done.stderr)
    return done


class DaemonProcess:
    """One ``syncd run`` process on a free port, with its own state directory.

    Args:
        state_dir: the daemon's state directory (kept across restarts of this object).
        env: extra environment variables, e.g. ``SYNCD_DEBOUNCE__QUIET``.
        args: extra command-line arguments for ``syncd run``.
        wrapper: a command that runs the daemon's command line, e.g. ``("prlimit", "--nofile=64:4096")``.
    """

    def __init__(
        self,
        state_dir: Path,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
        wrapper: tuple[str, ...] = (),
    ) -> None:
        self.state_dir = state_dir
        self.env = dict(env or {})
        self.args = args
        self.wrapper = wrapper
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.project_id = ""
        self.port = 0
        self.lines: list[str] = []
        self._stderr: list[str] = []

    def start(self, timeout: float = 20.0, port: int | None = None) -> DaemonProcess:
        """Start the process and wait until it prints its address (it serves from then on)."""
        env = {**clean_environ(), "PYTHONUNBUFFERED": "1", **self.env}
        cmd = [
            *self.wrapper,
            *syncd_command(self.state_dir, "run"),
            "--port",
            str(self.port if port is None and self.port else (port or 0)),
            *self.args,
        ]
        self.lines = []
        self._stderr = []
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=self.state_dir.parent
        )
        threading.Thread(target=self._drain_stderr, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"syncd exited early ({self.proc.wait()}):\n{self.stderr}")
            self.lines.append(line.rstrip("\n"))
            if m := _ADDRESS.search(line):
                self.url = m.group(1)
                self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
            if m := _PROJECT.search(line):
                self.project_id = m.group(1)
            if self.url and (self.project_id or "supabase mode" in self.lines[0]):
                threading.Thread(target=self._drain_stdout, args=(self.proc,), daemon=True).start()
                return self
        raise TimeoutError(f"syncd did not start within {timeout} s:\n{self.stderr}")

    def _drain_stdout(self, proc: subprocess.Popen[str]) -> None:
        # Each reader closes its pipe at the end, so no pipe outlives its process (an open one is a
        # ResourceWarning, an error under filterwarnings).
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self.lines.append(line.rstrip("\n"))

    def _drain_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        with proc.stderr:
            for line in proc.stderr:
                self._stderr.append(line)

    @property
    def stderr(self) -> str:
        """Everything the process wrote to stderr so far."""
        return "".join(self._stderr)

    def kill(self) -> None:
        """``kill -9``: no flush, no goodbye."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """End the process whatever its state (for fixture teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    async def restart(self) -> None:
        """Start the process again (off the event loop) on the same state directory and port."""
        await asyncio.to_thread(self.start)

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send a signal to the process."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def exit_code(self, timeout: float = WAIT) -> int:  # noqa: ASYNC109
        """Wait (off the event loop) for the process to end; return its exit code."""
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, timeout)

    async def wait_log(self, text: str, timeout: float = WAIT) -> None:  # noqa: ASYNC109
        """Wait until ``text`` appears on the daemon's stderr."""
        await wait_for(
            lambda: text in self.stderr, lambda: f"{text!r} in the daemon's log:\n{self.stderr}", timeout
        )

    @property
    def http(self) -> str:
        """The daemon's HTTP base URL (the editors' port)."""
        return f"http://127.0.0.1:{self.port}"

    async def get(self, path: str) -> bytes:
        """GET a path on the daemon's port (off the event loop); return the body of a 200 answer."""

        def fetch() -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=WAIT) as answer:
                body: bytes = answer.read()
                return body

        return await asyncio.to_thread(fetch)
