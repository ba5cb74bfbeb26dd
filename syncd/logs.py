"""Log lines on stderr, one per event: plain for journald (which adds the time) or JSON.

Every record about an editor carries its connection id and project id (the gateway's
``LoggerAdapter`` adds them as ``conn`` and ``project``). A filter masks anything that looks like
a JWT and every configured secret, so a key or token cannot reach the log even by mistake.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable

from syncd.config import LogSettings

_JWT = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
_CONTEXT = ("conn", "project")


class RedactFilter(logging.Filter):
    """Masks JWTs and the given secrets in the formatted message and its arguments.

    Args:
        secrets: values never to print (the service key, the JWT secret, the MQTT password).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 4]

    def redact(self, text: str) -> str:
        """Return ``text`` with every JWT and secret replaced by a placeholder."""
        text = _JWT.sub("[token]", text)
        for secret in self._secrets:
            text = text.replace(secret, "[secret]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class PlainFormatter(logging.Formatter):
    """``LEVEL logger: message conn=… project=…``, no timestamp (journald adds it)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname} {record.name}: {record.getMessage()}"
        context = " ".join(f"{k}={getattr(record, k)}" for k in _CONTEXT if getattr(record, k, None))
        if context:
            line = f"{line} {context}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the time, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _CONTEXT:
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(settings: LogSettings, secrets: Iterable[str] = ()) -> None:
    """Send the ``syncd`` loggers (and the libraries') to stderr in the configured format."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = PlainFormatter()
    if settings.format == "json":
        formatter = JsonFormatter()
        formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(RedactFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("syncd").setLevel(settings.level)
