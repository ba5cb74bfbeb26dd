"""The service key of local mode: made once, kept in the state directory, readable by its owner only.

Services (the renderer, tools) present it to the HTTP API as ``Authorization: Bearer <key>``; in
Supabase mode the key is the project's ``service_role`` key instead. ``syncd service-key`` prints it.
"""

from __future__ import annotations

import secrets
import stat
from pathlib import Path
from typing import Final

from syncd.errors import ConfigError
from syncd.statedir import make_secret_once

KEY_FILE: Final = "service.key"
PREFIX: Final = "syncd_sk_"


def service_key(state_dir: Path) -> str:
    """Return the state directory's service key, making it first if there is none.

    Raises:
        ConfigError: the key file cannot be made or read, or others may read it.
    """
    path = state_dir / KEY_FILE
    try:
        make_secret_once(path, lambda: PREFIX + secrets.token_urlsafe(32))
        return _read(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot make or read the service key: {exc.strerror or exc}") from exc


def _read(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: others may read the service key (mode {mode & 0o777:o}); chmod 600 it")
    key = path.read_text().strip()
    if not key.startswith(PREFIX) or len(key) < len(PREFIX) + 32:
        raise ConfigError(f"{path}: not a syncd service key; remove it to make a new one")
    return key
