"""The ``syncd`` command: parse the arguments, load the settings, run what was asked."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import resource
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from syncd import __version__, backup, jsonlib, migration, projects
from syncd.config import SyncdSettings, describe_settings, find_config_file, load_settings, url_password
from syncd.errors import ConfigError, SyncdError
from syncd.logs import RedactFilter
from syncd.logs import configure as configure_logging
from syncd.servicekey import service_key
from syncd.supervisor import EXIT_CONFIG, EXIT_FAILED, Supervisor

log = logging.getLogger("syncd")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description="Realtime sync daemon of OmegaFrame Studio.")
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser("check-config", help="validate the settings and print them, secrets masked")
    _add_config_option(check)

    run = commands.add_parser("run", help="run the daemon until SIGTERM, SIGINT or SIGHUP")
    _add_config_option(run)
    _add_state_dir_option(run)
    run.add_argument("--host", help="address editors connect to (gateway.host)")
    run.add_argument("--port", type=int, help="port editors connect to; 0 picks a free one (gateway.port)")

    project = commands.add_parser("project", help="create, list and show projects")
    actions = project.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a project and print its id")
    create.add_argument("title")
    create.add_argument("--user", metavar="UUID", help="owner's user id (default: anonymous)")
    show = actions.add_parser("show", help="print a project with its scenes and clips, as JSON")
    show.add_argument("id")
    listing = actions.add_parser("list", help="print every project, one per line")
    token = commands.add_parser("token", help="print an editor token for a user id (HS256, 24 h)")
    token.add_argument("user_id", metavar="USER_ID")
    token.add_argument("--hours", type=float, default=24.0, help="how long the token is valid (default 24)")
    imports = commands.add_parser("import", help="import projects exported from the studio's Redux state")
    imports.add_argument("file", type=Path, metavar="FILE", help='JSON: {"projects": [...]}')
    imports.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
    for sub in (create, show, listing, token, imports):
        _add_config_option(sub)
        _add_state_dir_option(sub)

    key = commands.add_parser(
        "service-key", help="print the key services present to the HTTP API (local mode; made once)"
    )
    _add_config_option(key)
    _add_state_dir_option(key)
    copy = commands.add_parser("backup", help="copy the state directory, consistently, while the daemon runs")
    copy.add_argument("dest", type=Path, metavar="DEST", help="a new folder (or an empty one)")
    _add_config_option(copy)
    _add_state_dir_option(copy)
    return parser


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="TOML settings file (default: config/syncd.toml, then /etc/syncd/syncd.toml)",
    )


def _add_state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="folder of the outbox and embedded store (daemon.state_dir)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help(sys.stderr)
        return 2
    # One-line errors go through the log's redaction too: a URL in one may hold a password.
    redact = RedactFilter().redact
    try:
        if args.command == "check-config":
            return _check_config(args.config)
        settings = load_settings(args.config, **_overrides(args))
        redact = RedactFilter(_secrets(settings)).redact
        configure_logging(settings.log, _secrets(settings))
        if args.command == "run":
            loop_factory, loop_name = event_loop()
            log.info("%s; %s; %s", loop_name, jsonlib.describe(), open_files())
            freeze_start_objects()
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                return runner.run(_run(settings))
        if args.command == "project":
            return asyncio.run(projects.command(settings, args))
        if args.command == "service-key":
            return _service_key(settings)
        if args.command == "token":
            return projects.token_command(settings, args)
        if args.command == "import":
            return migration.command(settings, args)
        if args.command == "backup":
            return backup.command(settings, args)
    except ConfigError as exc:
        print(f"syncd: {redact(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    except SyncdError as exc:
        print(f"syncd: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader stopped early (`syncd project show ID | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    raise AssertionError(f"unhandled command {args.command}")


def event_loop() -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """The daemon's event loop: uvloop's when it can be loaded, asyncio's own otherwise.

    Returns:
        The loop factory for :class:`asyncio.Runner` (None: asyncio's default) and its name for the log.
    """
    try:
        import uvloop
    except ImportError:
        return None, "event loop: asyncio's own (uvloop is not available)"
    return uvloop.new_event_loop, f"event loop: uvloop {getattr(uvloop, '__version__', '?')}"


FEW_OPEN_FILES = 4096
"""Below this many open files the daemon warns: each editor holds one."""


def open_files() -> str:
    """Raise the soft limit of open files to the hard one, and say what it is for the log.

    Each editor's connection holds a file; past the soft limit (1024 by default, under systemd too)
    new connections fail before the daemon can read them, and nothing is logged. The hard limit is
    usually far higher (524288 under systemd).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    limit = soft
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            limit = wanted
        except (ValueError, OSError):
            pass
    if limit < FEW_OPEN_FILES:
        log.warning(
            "open files: at most %d, so about %d editors at once; connections past that fail without a "
            "word: raise the hard limit (ulimit -Hn, or LimitNOFILE= in the systemd unit)",
            limit,
            max(0, limit - 32),  # about 25 are the daemon's own (sockets, databases, its loop)
        )
    return f"open files: {limit}" + (f" (raised from {soft})" if limit != soft else "")


def freeze_start_objects() -> int:
    """Put every object that exists now (modules, classes, settings) out of the cyclic collector's reach.

    They live as long as the process. Left in, each full collection walks them all again: on the
    fan-out load that was a pause of about 80 ms every 10 to 20 s, the daemon's slowest deliveries.
    Garbage made from now on is collected as before.

    Returns:
        How many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line options as settings sections; they beat the file and the environment."""
    sections: dict[str, dict[str, Any]] = {}
    if args.state_dir is not None:
        sections.setdefault("daemon", {})["state_dir"] = args.state_dir
    for key in ("host", "port"):
        value = getattr(args, key, None)
        if value is not None:
            sections.setdefault("gateway", {})[key] = value
    return sections


def _secrets(settings: SyncdSettings) -> list[str]:
    values = (settings.supabase.service_key, settings.supabase.jwt_secret, settings.mqtt.password)
    named = [v.get_secret_value() for v in values if v is not None]
    urls = (settings.supabase.url, settings.mqtt.url, *settings.cluster.nats_urls)
    in_urls = [url_password(url) for url in urls]
    return named + [password for password in in_urls if password]


async def _run(settings: SyncdSettings) -> int:
    daemon = Supervisor(settings)
    runner = asyncio.create_task(daemon.run(), name="syncd.supervisor")
    ready = asyncio.create_task(daemon.ready.wait())
    await asyncio.wait({runner, ready}, return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        await projects.announce(settings, daemon.gateway.port)
    else:
        ready.cancel()
    return await runner


def _service_key(settings: SyncdSettings) -> int:
    if settings.mode == "supabase":
        print(
            "syncd: in Supabase mode services present the project's service_role key (SUPABASE_SERVICE_KEY)",
            file=sys.stderr,
        )
        return 1
    print(service_key(settings.daemon.state_dir))
    return 0


def _check_config(config: Path | None) -> int:
    settings = load_settings(config)
    for line in describe_settings(settings, find_config_file(config)):
        print(line)
    return 0
