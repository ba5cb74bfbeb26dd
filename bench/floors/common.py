"""What both floor servers share: the frame they write and how they are stopped.

The servers run as scripts in the harness's own venv, where syncd is not installed, so this module
(found beside them on ``sys.path``) stands in for ``syncd.adapters.gateway.text_frame``.
"""

import asyncio
import contextlib
import signal


def text_frame(data: bytes) -> bytes:
    """One unmasked text frame holding ``data`` (RFC 6455 §5.2)."""
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + data
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + data


async def until_stopped() -> None:
    """Return on SIGTERM or SIGINT, as the harness stops its servers."""
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await stop
