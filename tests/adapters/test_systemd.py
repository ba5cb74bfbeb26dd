"""SystemdNotifier against real AF_UNIX datagram sockets standing in for systemd's notification socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.adapters.systemd import SystemdNotifier

RECV_TIMEOUT = 5.0


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket in a temporary folder, and its path."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(RECV_TIMEOUT)
    with sock:
        yield sock, path


@pytest.fixture
def abstract_listener() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound in the abstract namespace, and its ``@name`` form."""
    name = f"syncd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(RECV_TIMEOUT)
    with sock:
        yield sock, "@" + name


def _notifier(environ: dict[str, str]) -> contextlib.closing[SystemdNotifier]:
    return contextlib.closing(SystemdNotifier(environ))


def test_ready_status_and_stopping_arrive(listener: tuple[socket.socket, str]) -> None:
    """Each notify call arrives as one datagram holding its lines joined by newlines."""
    sock, path = listener
    with _notifier({"NOTIFY_SOCKET": path}) as notifier:
        assert notifier.enabled
        notifier.notify("READY=1", "STATUS=serving 3 editors")
        notifier.notify("STOPPING=1")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving 3 editors"
    assert sock.recv(4096) == b"STOPPING=1"


def test_abstract_socket_name_is_used(abstract_listener: tuple[socket.socket, str]) -> None:
    """A NOTIFY_SOCKET that starts with @ addresses the abstract namespace."""
    sock, address = abstract_listener
    with _notifier({"NOTIFY_SOCKET": address}) as notifier:
        notifier.notify("READY=1")
    assert sock.recv(4096) == b"READY=1"


def test_unset_socket_makes_notify_a_no_op() -> None:
    """Without NOTIFY_SOCKET nothing is sent, nothing fails and there is no watchdog."""
    with _notifier({"WATCHDOG_USEC": "1000000"}) as notifier:
        assert not notifier.enabled
        notifier.notify("READY=1")
        assert notifier.watchdog_interval() is None


def test_relative_socket_path_turns_notifications_off(caplog: pytest.LogCaptureFixture) -> None:
    """A NOTIFY_SOCKET that is neither absolute nor abstract is refused with a warning."""
    with caplog.at_level(logging.WARNING, logger="syncd.adapters.systemd"):
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "notify.sock", "WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
    assert len(caplog.records) == 1
    assert "notify.sock" in caplog.records[0].getMessage()


def test_missing_socket_path_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A NOTIFY_SOCKET path that does not exist gives one clear warning and later sends stay silent."""
    missing = str(tmp_path / "gone.sock")
    with (
        caplog.at_level(logging.DEBUG, logger="syncd.adapters.systemd"),
        _notifier({"NOTIFY_SOCKET": missing}) as notifier,
    ):
        notifier.notify("READY=1")
        notifier.notify("STATUS=still here")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert missing in warnings[0].getMessage()
    assert "off" in warnings[0].getMessage()


def test_send_failure_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A socket file that nobody listens on any more makes notify log a warning instead of raising."""
    path = str(tmp_path / "closed.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)  # the file stays behind after the close, like a crashed manager's socket
    with (
        caplog.at_level(logging.DEBUG, logger="syncd.adapters.systemd"),
        _notifier({"NOTIFY_SOCKET": path}) as notifier,
    ):
        notifier.notify("READY=1")
        notifier.notify("WATCHDOG=1")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "not sent" in warnings[0].getMessage()


def test_delivery_resumes_after_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Once the socket is back, notifications arrive again and the recovery is logged."""
    path = tmp_path / "flaky.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
    with (
        caplog.at_level(logging.INFO, logger="syncd.adapters.systemd"),
        _notifier({"NOTIFY_SOCKET": str(path)}) as notifier,
    ):
        notifier.notify("STATUS=first")
        path.unlink()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            sock.settimeout(RECV_TIMEOUT)
            notifier.notify("STATUS=second")
            assert sock.recv(4096) == b"STATUS=second"
    assert any("delivered again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("line", ["READY", "STATUS=two\nlines"])
def test_malformed_line_is_a_caller_error(listener: tuple[socket.socket, str], line: str) -> None:
    """A line that is not a single KEY=VALUE pair raises ValueError and sends nothing."""
    sock, path = listener
    with _notifier({"NOTIFY_SOCKET": path}) as notifier, pytest.raises(ValueError, match="KEY=VALUE"):
        notifier.notify("READY=1", line)
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("100000", "self", 0.05),
        ("30000000", "other", None),
        ("30000000", "not-a-pid", None),
        ("0", None, None),
        ("soon", None, None),
        ("", None, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    listener: tuple[socket.socket, str], usec: str, pid: str | None, expected: float | None
) -> None:
    """The ping interval is half of WATCHDOG_USEC, and None when it is unset, invalid or for another pid."""
    _, path = listener
    environ = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": usec}
    if pid == "self":
        environ["WATCHDOG_PID"] = str(os.getpid())
    elif pid == "other":
        environ["WATCHDOG_PID"] = str(os.getpid() + 1)
    elif pid is not None:
        environ["WATCHDOG_PID"] = pid
    with _notifier(environ) as notifier:
        assert notifier.watchdog_interval() == expected


async def _receive_watchdog_pings(sock: socket.socket, count: int) -> list[bytes]:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    received: list[bytes] = []
    async with asyncio.timeout(RECV_TIMEOUT):
        while len(received) < count:
            received.append(await loop.sock_recv(sock, 4096))
    return received


@pytest.mark.parametrize("kind", ["path", "abstract"])
async def test_watchdog_pings_repeat(
    kind: str,
    listener: tuple[socket.socket, str],
    abstract_listener: tuple[socket.socket, str],
) -> None:
    """run_watchdog sends WATCHDOG=1 again and again from the event loop."""
    sock, address = listener if kind == "path" else abstract_listener
    with _notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"}) as notifier:
        task = asyncio.create_task(notifier.run_watchdog(), name="syncd.watchdog")
        try:
            pings = await _receive_watchdog_pings(sock, 3)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert pings == [b"WATCHDOG=1"] * 3


async def test_watchdog_returns_when_not_requested(listener: tuple[socket.socket, str]) -> None:
    """run_watchdog returns at once when systemd asked for no watchdog."""
    _, path = listener
    with _notifier({"NOTIFY_SOCKET": path}) as notifier:
        async with asyncio.timeout(RECV_TIMEOUT):
            await notifier.run_watchdog()
