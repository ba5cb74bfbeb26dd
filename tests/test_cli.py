"""Tests of the syncd command line, run as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import syncd
from tests.support.env import clean_environ


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        cwd=cwd,
        env={**clean_environ(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version(tmp_path: Path) -> None:
    """syncd --version prints the package version."""
    out = run("--version", cwd=tmp_path)
    assert out.returncode == 0
    assert out.stdout.strip() == f"syncd {syncd.__version__}"


def test_check_config_prints_effective_settings(tmp_path: Path) -> None:
    """check-config prints every setting, secrets masked, and exits 0."""
    cfg = tmp_path / "s.toml"
    cfg.write_text("[gateway]\nport = 9300\n")
    out = run(
        "check-config",
        "--config",
        str(cfg),
        cwd=tmp_path,
        env={"SUPABASE_URL": "https://x.supabase.co", "SUPABASE_SERVICE_KEY": "topsecret-key"},
    )
    assert out.returncode == 0, out.stderr
    assert "gateway.port = 9300" in out.stdout
    assert "# mode: supabase" in out.stdout
    assert "topsecret" not in out.stdout + out.stderr
    assert 'supabase.service_key = "**********"' in out.stdout


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[gateway]\nbogus = 1\n", "gateway.bogus: unknown key"),
        ('[gateway]\nport = "x"\n', "gateway.port: Input should be a valid integer"),
        ('[supabase]\nurl = "htp:/broken"\n', "supabase.url: Value error, expected a URL"),
    ],
)
def test_check_config_bad_file_exits_78(tmp_path: Path, text: str, needle: str) -> None:
    """check-config on an unknown key, a wrong type or a bad URL exits 78 and names the key."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = run("check-config", "--config", str(cfg), cwd=tmp_path)
    assert out.returncode == 78
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    """syncd without a command prints the usage and exits 2."""
    out = run(cwd=tmp_path)
    assert out.returncode == 2
    assert "usage: syncd" in out.stderr
