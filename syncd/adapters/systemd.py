"""sd_notify without libsystemd: readiness, status and watchdog datagrams to ``$NOTIFY_SOCKET``.

systemd passes the address of its notification socket in ``$NOTIFY_SOCKET``: a file-system path, or a
name in the abstract namespace when it starts with ``@``. Each notification is one datagram of
``KEY=VALUE`` lines. Outside systemd the variable is unset and every call here does nothing.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends service-manager notifications (``READY=1``, ``STATUS=...``, ``WATCHDOG=1``) to systemd.

    Sending never raises and never blocks the event loop: the socket is non-blocking, and a failure is
    logged at WARNING (once per run of failures) because a lost notification must not stop the daemon.

    Args:
        environ: where to read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``; the process
            environment by default.
        pid: the process id that ``WATCHDOG_PID`` must name; this process by default.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        self._pid = os.getpid() if pid is None else pid
        self._address = self._parse_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")
        self._sock: socket.socket | None = None
        self._failing = False

    @property
    def enabled(self) -> bool:
        """Whether notifications are sent anywhere (``$NOTIFY_SOCKET`` set and usable)."""
        return self._address is not None

    @staticmethod
    def _parse_address(value: str) -> str | bytes | None:
        if not value:
            return None
        if value.startswith("@"):
            # Abstract socket names are bytes with a leading NUL in the kernel's view.
            return b"\0" + value[1:].encode()
        if not value.startswith("/"):
            logger.warning(
                "NOTIFY_SOCKET=%r is neither an absolute path nor an abstract name: "
                "systemd notifications are off",
                value,
            )
            return None
        if not Path(value).exists():
            logger.warning(
                "NOTIFY_SOCKET=%s does not exist: systemd notifications are off for this run", value
            )
            return None
        return value

    def notify(self, *lines: str) -> None:
        """Send one notification made of ``KEY=VALUE`` lines, such as ``notify("READY=1", "STATUS=serving")``.

        Does nothing when systemd did not ask for notifications.

        Raises:
            ValueError: a line without ``=`` or with a line break; that is a bug in the caller.
        """
        for line in lines:
            if "=" not in line or "\n" in line:
                raise ValueError(f"not a single KEY=VALUE line: {line!r}")
        if self._address is None or not lines:
            return
        payload = "\n".join(lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            self._report_failure(exc)
            return
        if self._failing:
            self._failing = False
            logger.info("systemd notifications are delivered again")

    def _report_failure(self, exc: OSError) -> None:
        if self._failing:
            logger.debug("systemd notification not sent: %s", exc)
            return
        self._failing = True
        reason = "systemd is not reading them" if exc.errno == errno.EAGAIN else exc.strerror or str(exc)
        logger.warning(
            "systemd notification not sent (%s); until one succeeds, further failures are logged at DEBUG",
            reason,
        )

    def watchdog_interval(self) -> float | None:
        """Seconds between two ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``.

        Returns None when systemd asked for no watchdog, when ``$WATCHDOG_PID`` names another process,
        or when notifications are off.
        """
        if self._address is None or not self._watchdog_usec:
            return None
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != self._pid:
                    return None
            except ValueError:
                logger.warning(
                    "WATCHDOG_PID=%r is not a process id: watchdog pings are off", self._watchdog_pid
                )
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            usec = 0
        if usec <= 0:
            logger.warning(
                "WATCHDOG_USEC=%r is not a positive integer: watchdog pings are off", self._watchdog_usec
            )
            return None
        # Pinging at half the deadline leaves a whole interval of slack for a late wake-up.
        return usec / 2 / 1_000_000

    async def run_watchdog(self) -> None:
        """Send ``WATCHDOG=1`` every :meth:`watchdog_interval` seconds until cancelled.

        The pings come from the event loop itself, so a loop that stays blocked for longer than
        ``WatchdogSec`` gets the service killed and restarted. Returns at once when there is no watchdog.
        """
        interval = self.watchdog_interval()
        if interval is None:
            return
        logger.debug("sending systemd watchdog pings every %.3f s", interval)
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def close(self) -> None:
        """Close the notification socket; a later :meth:`notify` opens a new one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
