"""Tests of the syncd command line, run as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import syncd
from tests.support.env import clean_environ, command_stderr


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        cwd=cwd,
        env={**clean_environ(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    done.stderr = command_stderr(done.stderr)
    return done


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
        env={"SUPABASE_URL": "https://x.supabase.co", "SUPABASE_SERVICE_KEY": "sb_secret_topsecret"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"# config file: {cfg}\n# mode: supabase\n")
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


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "notajwt",
            "supabase.service_key: Value error, SUPABASE_SERVICE_KEY is neither a JWT nor a secret key",
        ),
        ("sb_publishable_abc123", "SUPABASE_SERVICE_KEY is a publishable key; syncd needs a secret key"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2ln",  # {"role": "anon"}
            "SUPABASE_SERVICE_KEY has role 'anon', not 'service_role'",
        ),
    ],
)
def test_check_config_refuses_what_run_would_refuse(tmp_path: Path, key: str, message: str) -> None:
    """A key that cannot be a service key fails check-config (the unit's ExecStartPre), not only run."""
    env = {"SUPABASE_URL": "https://x.supabase.co", "SUPABASE_SERVICE_KEY": key}
    out = run("check-config", cwd=tmp_path, env=env)
    assert (out.returncode, out.stdout) == (78, "")
    assert message in out.stderr
    assert key not in out.stderr


def test_a_config_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    """A directory or a file that is not UTF-8 is named in one line, exit 78, like a TOML error."""
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[log]\nformat = "pl\xe4in"\n')
    cases = (
        (tmp_path, "a directory, not a config file"),
        (latin, "not UTF-8 text (byte 18); TOML files are UTF-8"),
    )
    for path, message in cases:
        out = run("check-config", "--config", str(path), cwd=tmp_path)
        assert (out.returncode, out.stderr) == (78, f"syncd: {path}: {message}\n")


def test_a_password_in_a_url_is_never_printed(tmp_path: Path) -> None:
    """check-config masks it; a one-line error and the log redact it like the named secrets."""
    env = {"SUPABASE_URL": "http://user:pw-in-url@127.0.0.1:9", "SUPABASE_SERVICE_KEY": "sb_secret_x"}
    shown = run("check-config", cwd=tmp_path, env=env)
    assert 'supabase.url = "http://user:**********@127.0.0.1:9"' in shown.stdout
    failed = run("project", "list", "--state-dir", str(tmp_path / "s"), cwd=tmp_path, env=env)
    assert failed.returncode == 1
    assert failed.stderr.startswith("syncd: Supabase at http://user:[secret]@127.0.0.1:9 is not reachable")
    mqtt = run("check-config", cwd=tmp_path, env={"SYNCD_MQTT__URL": "mqtt://u:pw-in-url@broker:1883"})
    assert mqtt.returncode == 78
    assert "mqtt: Value error, url must not contain credentials" in mqtt.stderr
    assert "pw-in-url" not in shown.stdout + shown.stderr + failed.stderr + mqtt.stderr


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    """syncd without a command prints the usage and exits 2."""
    out = run(cwd=tmp_path)
    assert out.returncode == 2
    assert "usage: syncd" in out.stderr
