"""The client's protocol core is sans-I/O: no asyncio, sockets, clocks or websockets in its modules."""

from pathlib import Path

import syncd.client
from tests.core.test_purity import forbidden_imports

CORE_MODULES = ("protocol.py", "view.py", "events.py", "frames.py")
CLIENT = Path(syncd.client.__file__).parent


def test_client_core_modules_are_pure() -> None:
    """ClientProtocol and the modules it uses import nothing that does I/O or reads a clock."""
    offenders = {}
    for name in CORE_MODULES:
        source = (CLIENT / name).read_text()
        bad = forbidden_imports(source) + [
            line for line in source.splitlines() if line.startswith(("import websockets", "from websockets"))
        ]
        if bad:
            offenders[name] = bad
    assert offenders == {}


def test_the_check_sees_a_websockets_import() -> None:
    """The purity check would notice the asyncio layer leaking into the core."""
    source = (CLIENT / "connection.py").read_text()
    assert "asyncio" in forbidden_imports(source)
    assert any(line.startswith("from websockets") for line in source.splitlines())
