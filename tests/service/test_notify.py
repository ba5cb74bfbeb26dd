"""systemd's notify protocol, as seen by a service manager listening on ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import signal

import pytest

from tests.service.conftest import DaemonFactory, NotifyListener
from tests.support.ports import accepts_connections, free_port

pytestmark = pytest.mark.integration

WATCHDOG_USEC = 200_000
"""systemd's watchdog deadline for the test: the daemon pings every 0.1 s."""


async def test_ready_after_the_port_serves_then_watchdog_pings_then_stopping_and_exit_0(
    start_daemon: DaemonFactory, notify_socket: NotifyListener
) -> None:
    """READY=1 comes once the port serves, WATCHDOG=1 repeats, SIGTERM gives STOPPING=1 and exit 0."""
    port = free_port()
    port_served_at_ready: list[bool] = []

    def on_message(lines: list[str]) -> None:
        # Checked in the listener thread the moment the datagram arrives, before the daemon moves on.
        if "READY=1" in lines:
            port_served_at_ready.append(accepts_connections(port))

    notify_socket.on_message = on_message
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    daemon = await start_daemon(env, port=port)
    assert daemon.port == port

    await notify_socket.wait(lambda n: n.count("READY=1") == 1, "READY=1")
    assert port_served_at_ready == [True]
    status = [line for line in notify_socket.lines() if line.startswith("STATUS=")]
    assert status, "no STATUS= line"
    assert any(str(port) in line for line in status), status

    # At 0.1 s per ping, two pings take 0.2 s; the window is wide so a loaded machine does not fail.
    await notify_socket.wait(lambda n: n.count("WATCHDOG=1") >= 2, "two WATCHDOG=1 pings")
    assert "STOPPING=1" not in notify_socket.lines()

    daemon.signal(signal.SIGTERM)
    assert await daemon.exit_code() == 0
    await notify_socket.wait(lambda n: n.count("STOPPING=1") == 1, "STOPPING=1")
    lines = notify_socket.lines()
    assert lines.index("READY=1") < lines.index("STOPPING=1")


async def test_without_notify_socket_the_daemon_runs_and_stops_cleanly(start_daemon: DaemonFactory) -> None:
    """Outside systemd (no NOTIFY_SOCKET) the daemon serves and exits 0 on SIGTERM without notify warnings."""
    daemon = await start_daemon()
    daemon.signal(signal.SIGTERM)
    assert await daemon.exit_code() == 0
    assert "NOTIFY_SOCKET" not in daemon.stderr
    assert "systemd notification" not in daemon.stderr
