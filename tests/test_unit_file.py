"""The shipped systemd unit: systemd's own verifier accepts it, and it holds the settings syncd relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.config import DaemonSettings

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "syncd.service"
INSTALLED_SYNCD = "/opt/syncd/.venv/bin/syncd"
TEST_SYNCD = Path(sys.executable).parent / "syncd"
STOP_MARGIN = 5.0
"""Seconds that TimeoutStopSec must leave beyond shutdown_timeout for closing editors and MQTT."""

Unit = dict[str, dict[str, list[str]]]
"""A parsed unit file: section -> key -> every value given to it, in order."""


def parse_unit(text: str) -> Unit:
    """Parse unit-file text; a key may repeat (systemd accumulates such lists), comments are skipped."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"line {number}: continuation lines are not used in this unit"
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"line {number}: setting before the first section"
        key, sep, value = line.partition("=")
        assert sep, f"line {number}: not KEY=VALUE: {raw!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    assert path is not None, "systemd-analyze is missing: install the Debian package `systemd`"
    return path


def _testable_copy(tmp_path: Path, text: str | None = None) -> Path:
    """Write the unit with the installed syncd path replaced by this virtualenv's, which exists here."""
    assert TEST_SYNCD.is_file(), f"{TEST_SYNCD} is missing: install the package into the test virtualenv"
    source = UNIT.read_text() if text is None else text
    folder = tmp_path / "units"
    folder.mkdir()
    copy = folder / "syncd.service"
    copy.write_text(source.replace(INSTALLED_SYNCD, str(TEST_SYNCD)))
    return copy


def _verify(unit_file: Path) -> tuple[int, list[str]]:
    """Run ``systemd-analyze verify``; return its exit code and the diagnostics about ``unit_file``.

    verify exits 0 even for unknown keys and unparsable values (it only prints them), so the lines
    that name the file are what tells a clean unit from a broken one. Lines about other units of the
    host are not ours to judge.
    """
    result = subprocess.run(
        [_systemd_analyze(), "verify", "--man=no", str(unit_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).splitlines()
    ours = [line for line in output if unit_file.name in line or str(unit_file) in line]
    return result.returncode, ours


@pytest.fixture(scope="module")
def unit() -> Unit:
    """The shipped unit, parsed."""
    return parse_unit(UNIT.read_text())


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """systemd-analyze verify passes with no diagnostic about the unit."""
    code, diagnostics = _verify(_testable_copy(tmp_path))
    assert code == 0, diagnostics
    assert diagnostics == []


def test_verify_check_catches_a_broken_unit(tmp_path: Path) -> None:
    """The verify check reports a misspelled key and a bad value, so a clean result means something."""
    broken = UNIT.read_text().replace("UMask=", "Umask=").replace("Restart=on-failure", "Restart=sometimes")
    _, diagnostics = _verify(_testable_copy(tmp_path, broken))
    assert any("Umask" in line for line in diagnostics), diagnostics
    assert any("sometimes" in line for line in diagnostics), diagnostics


def test_verified_copy_differs_only_in_the_syncd_path(tmp_path: Path) -> None:
    """The verified copy is the shipped file byte for byte, apart from the path of the syncd executable."""
    shipped = UNIT.read_bytes()
    copy = _testable_copy(tmp_path).read_bytes()
    shipped_lines = shipped.splitlines(keepends=True)
    copy_lines = copy.splitlines(keepends=True)
    assert len(shipped_lines) == len(copy_lines)
    changed = [(a, b) for a, b in zip(shipped_lines, copy_lines, strict=True) if a != b]
    assert [a.split(b"=", 1)[0] for a, _ in changed] == [b"ExecStartPre", b"ExecStart"]
    for original, replaced in changed:
        assert replaced == original.replace(INSTALLED_SYNCD.encode(), str(TEST_SYNCD).encode())
    assert copy.replace(str(TEST_SYNCD).encode(), INSTALLED_SYNCD.encode()) == shipped


def test_security_exposure_stays_low(tmp_path: Path) -> None:
    """systemd-analyze security rates the unit's exposure at 2.0 or lower (0 is fully locked down)."""
    result = subprocess.run(
        [_systemd_analyze(), "security", "--offline=yes", "--threshold=20", str(_testable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_start_and_stop_contract(unit: Unit) -> None:
    """The unit starts syncd as a notify service with a config check first and restarts it only on failure."""
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["ExecStartPre"] == [f"{INSTALLED_SYNCD} check-config --config /etc/syncd/syncd.toml"]
    assert service["ExecStart"] == [
        f"{INSTALLED_SYNCD} run --config /etc/syncd/syncd.toml --state-dir ${{STATE_DIRECTORY}}"
    ]
    assert service["Restart"] == ["on-failure"]
    assert service["RestartSec"] == ["2"]
    assert service["RestartPreventExitStatus"] == ["78"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["WatchdogSec"] == ["30"]
    assert service["StateDirectory"] == ["syncd"]
    assert service["EnvironmentFile"] == ["-/etc/syncd/syncd.env"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert unit["Unit"]["After"] == ["network-online.target"]
    assert unit["Unit"]["Wants"] == ["network-online.target"]


def test_stop_timeout_exceeds_shutdown_timeout(unit: Unit) -> None:
    """systemd waits longer than daemon.shutdown_timeout plus a margin before it kills syncd."""
    (value,) = unit["Service"]["TimeoutStopSec"]
    assert re.fullmatch(r"\d+", value), "TimeoutStopSec is given in plain seconds"
    assert float(value) >= DaemonSettings().shutdown_timeout + STOP_MARGIN


def test_sandboxing(unit: Unit) -> None:
    """The service runs as a dynamic user in a locked-down sandbox."""
    service = unit["Service"]
    expected = {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native",
        "UMask": "0077",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }
    assert {key: service.get(key) for key in expected} == {key: [value] for key, value in expected.items()}
    assert service["SystemCallFilter"][0] == "@system-service"


def test_config_check_command_accepts_the_shipped_settings() -> None:
    """The ExecStartPre command line works with this checkout's CLI and settings file."""
    result = subprocess.run(
        [str(TEST_SYNCD), "check-config", "--config", str(ROOT / "config" / "syncd.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "daemon.shutdown_timeout" in result.stdout


@pytest.mark.parametrize("key", ["ExecStartPre", "ExecStart"])
def test_command_lines_use_existing_options(unit: Unit, key: str) -> None:
    """Every subcommand and option that the unit passes to syncd is one that the CLI offers."""
    (line,) = unit["Service"][key]
    executable, command, *arguments = line.split()
    assert executable == INSTALLED_SYNCD
    result = subprocess.run(
        [str(TEST_SYNCD), command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    options = [argument for argument in arguments if argument.startswith("--")]
    assert options
    for option in options:
        assert re.search(rf"(^|\s|\[){re.escape(option)}\b", result.stdout), f"{command} has no {option}"
