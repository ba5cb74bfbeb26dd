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
    """Masks JWTs and the given secrets in the message (with its arguments) and in any traceback.

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
        if record.exc_info and not record.exc_text:
            # An exception's text can quote a request (headers and all); the formatters print this
            # cached, cleaned text instead of formatting the traceback again.
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_TRACEBACKS = logging.Formatter()


class PlainFormatter(logging.Formatter):
    """``LEVEL logger: message conn=… project=…``, no timestamp (journald adds it)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname} {record.name}: {record.getMessage()}"
        context = " ".join(f"{k}={getattr(record, k)}" for k in _CONTEXT if getattr(record, k, None))
        if context:
            line = f"{line} {context}"
        trace = _trace(self, record)
        if trace:
            line = f"{line}\n{trace}"
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
        trace = _trace(self, record)
        if trace:
            entry["exc"] = trace
        return json.dumps(entry, ensure_ascii=False)


def _trace(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """The record's traceback and stack, preferring the text that :class:`RedactFilter` cleaned."""
    parts = []
    if record.exc_text:
        parts.append(record.exc_text)
    elif record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


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
