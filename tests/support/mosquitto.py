"""An ephemeral Mosquitto broker on 127.0.0.1 for the MQTT tests."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

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

    def publish(self, topic: str, payload: str, timeout: float = 10.0) -> None:
        """Publish one message (QoS 1) with the broker's own client, ``mosquitto_pub``; blocks until sent."""
        pub = shutil.which("mosquitto_pub")
        assert pub is not None, "mosquitto_pub is missing: install the Debian package mosquitto-clients"
        command = [pub, "-h", self.host, "-p", str(self.port), "-q", "1", "-t", topic, "-m", payload]
        subprocess.run(command, check=True, timeout=timeout, capture_output=True)

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


MOSQUITTO_SUB = Path("/usr/bin/mosquitto_sub")
SUB_WAIT = 10.0
"""Seconds a subscriber waits for a condition before the test fails."""


class MosquittoSub:
    """mosquitto_sub in a child process: collects the messages it prints and notes each (re)subscription.

    mosquitto_sub reconnects by itself about a second after it loses the broker and subscribes again.
    ``stdbuf -oL`` makes it print line by line into the pipe, so its debug lines tell when it subscribed.
    """

    def __init__(self, broker: MosquittoBroker, *topics: str) -> None:
        stdbuf = shutil.which("stdbuf")
        assert stdbuf is not None, "stdbuf (coreutils) is missing"
        assert MOSQUITTO_SUB.is_file(), (
            f"{MOSQUITTO_SUB} is missing: install the Debian package mosquitto-clients"
        )
        command = [stdbuf, "-oL", str(MOSQUITTO_SUB), "-h", broker.host, "-p", str(broker.port)]
        command += ["-V", "mqttv311", "-q", "1", "-d", "-F", "MSG %t %p"]
        for topic in topics:
            command += ["-t", topic]
        self.messages: list[tuple[str, str]] = []
        self.lines: list[str] = []
        """Everything mosquitto_sub printed."""
        self.subscribed_at: list[int] = []
        """For each (re)subscription, how many messages had arrived before it."""
        self._condition = threading.Condition()
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, name="mosquitto_sub reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._condition:
                self.lines.append(line)
                if line.startswith("MSG "):
                    topic, _, payload = line[4:].rstrip("\n").partition(" ")
                    self.messages.append((topic, payload))
                elif line.startswith("Subscribed (mid"):
                    self.subscribed_at.append(len(self.messages))
                self._condition.notify_all()

    def wait_blocking(self, predicate: Callable[[MosquittoSub], bool], timeout: float = SUB_WAIT) -> None:
        """Block the calling thread until ``predicate(self)`` holds; fail after ``timeout`` seconds."""
        with self._condition:
            ok = self._condition.wait_for(lambda: predicate(self), timeout=timeout)
        assert ok, f"mosquitto_sub: condition not met in {timeout} s; got {len(self.messages)} messages\n" + (
            self.connection_log()
        )

    def connection_log(self) -> str:
        """mosquitto_sub's debug lines about its connections and subscriptions, for failure messages."""
        with self._condition:
            return "".join(
                line
                for line in self.lines
                if not line.startswith("MSG ") and "PUBLISH" not in line and "PUBACK" not in line
            )

    async def wait(self, predicate: Callable[[MosquittoSub], bool], within: float = SUB_WAIT) -> None:
        """Wait until ``predicate(self)`` holds, without blocking the event loop; fail after ``within`` s."""
        await asyncio.to_thread(self.wait_blocking, predicate, within)

    def payloads(self, topic_suffix: str = "/changes") -> list[dict[str, Any]]:
        """The JSON payloads received on topics ending in ``topic_suffix``, in arrival order."""
        with self._condition:
            return [json.loads(p) for t, p in self.messages if t.endswith(topic_suffix)]

    def close(self) -> None:
        """Stop mosquitto_sub and its reader thread."""
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=5)
        assert self._process.stdout is not None
        self._process.stdout.close()
