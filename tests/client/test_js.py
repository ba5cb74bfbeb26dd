"""Runs the TypeScript client's own tests (``node --test`` in clients/js) as one pytest test.

They build the package with ``tsc``, type-check the README's examples (``test:types``), run the
conformance cases against the TypeScript client, its unit tests, and end-to-end tests against a real
``syncd run`` of this interpreter's environment. tests/run installs the package's development
dependencies (``npm ci``) first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "js"
TIMEOUT = 240.0
"""Seconds for the build and every test file; they take about 15 s."""


def test_typescript_client() -> None:
    """``npm run build`` and ``node --test`` pass in clients/js; on failure the message is their output."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed for clients/js; tests/run installs them")
    if not (PACKAGE / "node_modules").is_dir():
        pytest.fail(f"clients/js has no node_modules: run `npm ci` in {PACKAGE} (tests/run does)")
    env = {**os.environ, "SYNCD_TEST_BIN": str(Path(sys.executable).with_name("syncd"))}
    env.pop("PYTHONASYNCIODEBUG", None)  # the daemons the tests start run as in production
    commands = (
        [npm, "run", "--silent", "build"],
        [npm, "run", "--silent", "test:types"],
        ["node", "--test", "test/"],
    )
    for command in commands:
        result = subprocess.run(
            command,
            cwd=PACKAGE,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(
                f"`{' '.join(command[1:] if command[0] == npm else command)}` in clients/js failed "
                f"({result.returncode}):\n{result.stdout}\n{result.stderr}",
                pytrace=False,
            )
