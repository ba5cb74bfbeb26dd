"""The ``syncd`` command: parse the arguments, load the settings, run what was asked."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from syncd import __version__
from syncd.config import describe_settings, load_settings
from syncd.errors import ConfigError

EX_CONFIG = 78
"""Exit code of a bad configuration (sysexits.h); the systemd unit does not restart after it."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description="Realtime sync daemon of OmegaFrame Studio.")
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser("check-config", help="validate the settings and print them, secrets masked")
    _add_config_option(check)
    return parser


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="TOML settings file (default: config/syncd.toml, then /etc/syncd/syncd.toml)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help(sys.stderr)
        return 2
    try:
        if args.command == "check-config":
            return _check_config(args.config)
    except ConfigError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EX_CONFIG
    raise AssertionError(f"unhandled command {args.command}")


def _check_config(config: Path | None) -> int:
    settings = load_settings(config)
    for line in describe_settings(settings):
        print(line)
    return 0
