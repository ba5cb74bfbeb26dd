"""The inspector's built files in the Python package are exactly what its sources build to.

``syncd/inspector/static`` ships inside the wheel so that no Node is needed where syncd runs; this test
rebuilds the page from ``clients/inspector`` (and the TypeScript client it bundles) into a temporary
folder and fails when the shipped copy differs. After changing the sources: ``npm run build`` in
clients/inspector, then commit syncd/inspector/static.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from syncd.inspector import STATIC_FILES, static_file

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "clients" / "inspector"
SHIPPED = ROOT / "syncd" / "inspector" / "static"


def test_shipped_inspector_is_built_from_the_sources(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed to rebuild the inspector; tests/run installs it")
    if not (SOURCES / "node_modules").is_dir():
        pytest.fail(f"clients/inspector has no node_modules: run `npm ci` in {SOURCES} (tests/run does)")
    for command in (
        ["node", "build.mjs", str(tmp_path)],
        [str(SOURCES / "node_modules" / ".bin" / "tsc"), "-p", "."],
    ):
        result = subprocess.run(
            command, cwd=SOURCES, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    built = sorted(p.name for p in tmp_path.iterdir())
    assert sorted(p.name for p in SHIPPED.iterdir()) == built, "syncd/inspector/static holds other files"
    stale = [name for name in built if (tmp_path / name).read_bytes() != (SHIPPED / name).read_bytes()]
    assert stale == [], (
        f"syncd/inspector/static is stale ({', '.join(stale)}): run `npm run build` in {SOURCES}"
    )


def test_every_file_the_page_loads_is_shipped() -> None:
    page = static_file("index.html").decode()
    for name in STATIC_FILES:
        assert f'"static/{name}"' in page
        assert static_file(name)
