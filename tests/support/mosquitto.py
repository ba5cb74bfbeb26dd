"""An ephemeral Mosquitto broker on 127.0.0.1 for the MQTT tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.support.ports import LOOPBACK, accepts_connections, free_port, wait_for_port

MOSQUITTO = Path("/usr/sbin/mosquitto")
_START_ATTEMPTS = 5
_START_TIMEOUT = 10.0


class MosquittoError(RuntimeError):
    """The broker did not start; the message carries its output."""


class MosquittoBroker:
    """A Mosquitto broker with anonymous access and no persistence, listening on a free loopback port.

    The port is chosen on the first :meth:`start` and kept by :meth:`restart`, so clients can reconnect to
    the same URL after a broker outage.
    """

    host: str
    port: int

    def __init__(self) -> None:
        self.host = LOOPBACK
        self.port = 0
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker's URL, ``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        """The broker's process id.

        Raises:
            MosquittoError: the broker is not running.
        """
        if self._process is None or self._process.poll() is not None:
            raise MosquittoError("Mosquitto is not running")
        return self._process.pid

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, but nothing is read or acknowledged."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused broker run again (SIGCONT)."""
        os.kill(self.pid, signal.SIGCONT)

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the broker (on its previous port, if it had one) and return once it accepts connections."""
        if self.running:
            return
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="syncd-mqtt-"))
        if self.port:
            self._launch(self.port)
            return
        # A fresh port may be taken between our probe and the broker's bind: try another one.
        for _ in range(_START_ATTEMPTS):
            port = free_port(self.host)
            try:
                self._launch(port)
            except MosquittoError:
                continue
            return
        raise MosquittoError(f"Mosquitto found no free port in {_START_ATTEMPTS} attempts")

    def stop(self) -> None:
        """Stop the broker and remove its files; the port is kept for a later :meth:`start`."""
        self._terminate()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def restart(self) -> None:
        """Stop the broker and start it again on the same port; clients see their connections drop."""
        self._terminate()
        self.start()

    def _launch(self, port: int) -> None:
        assert self._dir is not None
        config = self._dir / "mosquitto.conf"
        log = self._dir / "mosquitto.log"
        config.write_text(
            f"listener {port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
        )
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [str(MOSQUITTO), "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        if not self._wait_ready(process, port):
            process.kill()
            process.wait()
            raise MosquittoError(
                f"Mosquitto did not start on port {port}:\n{log.read_text(errors='replace')}"
            )
        self._process = process
        self.port = port

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> bool:
        # Poll in short steps so that a broker that exits at once (port taken) is noticed quickly.
        for _ in range(int(_START_TIMEOUT / 0.05)):
            if process.poll() is not None:
                return False
            if wait_for_port(port, self.host, timeout=0.05):
                return True
        return False

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # Wait for the listening socket to close, so that a restart can bind the same port.
        for _ in range(100):
            if not accepts_connections(self.port, self.host, timeout=0.05):
                break
