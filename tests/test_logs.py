"""Log formatting and redaction: plain and JSON lines, connection context, no secrets or tokens."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import jwt
import pytest

from syncd.config import LogSettings
from syncd.logs import JsonFormatter, PlainFormatter, RedactFilter, configure

TOKEN = jwt.encode({"sub": "user-1", "role": "authenticated"}, "k" * 32, algorithm="HS256")
SECRET = "sb-service-key-0123456789"


def record(msg: str, *args: object, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    """A log record as a logger would make it."""
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    rec = logging.LogRecord("syncd.test", logging.WARNING, __file__, 1, msg, args or None, exc_info)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def raised(message: str) -> BaseException:
    """An exception with a traceback."""
    try:
        raise RuntimeError(message)
    except RuntimeError as exc:
        return exc


def test_redact_masks_jwts_and_secrets_in_message_and_arguments() -> None:
    """A JWT or a configured secret, in the format string or an argument, never survives the filter."""
    rec = record("auth %s with key %s", TOKEN, SECRET)
    assert RedactFilter([SECRET]).filter(rec)
    message = rec.getMessage()
    assert TOKEN not in message
    assert SECRET not in message
    assert message == "auth [token] with key [secret]"


def test_redact_leaves_clean_records_untouched() -> None:
    """A record without secrets keeps its format string and arguments."""
    rec = record("project %s saved", "p1")
    RedactFilter([SECRET]).filter(rec)
    assert (rec.msg, rec.args) == ("project %s saved", ("p1",))


def test_redact_ignores_secrets_too_short_to_be_real() -> None:
    """Empty or tiny secrets are not masked (they would mangle every line)."""
    rec = record("a b c")
    RedactFilter(["", "a"]).filter(rec)
    assert rec.getMessage() == "a b c"


def test_redact_cleans_tracebacks() -> None:
    """An exception whose text holds a key is printed with the key masked, in both formats."""
    for formatter in (PlainFormatter(), JsonFormatter()):
        rec = record("request failed", exc=raised(f"header apikey: {SECRET}, bearer {TOKEN}"))
        RedactFilter([SECRET]).filter(rec)
        out = formatter.format(rec)
        assert SECRET not in out
        assert TOKEN not in out
        assert "RuntimeError" in out
        assert "[secret]" in out


def test_plain_line_has_level_logger_message_and_context_without_time() -> None:
    """Plain lines read 'LEVEL logger: message conn=… project=…' and carry no timestamp."""
    line = PlainFormatter().format(record("closed (%s)", 1000, conn="c7", project="p-1"))
    assert line == "WARNING syncd.test: closed (1000) conn=c7 project=p-1"
    assert PlainFormatter().format(record("listening")) == "WARNING syncd.test: listening"


def test_plain_line_appends_the_traceback() -> None:
    """A logged exception follows its line, traceback included."""
    out = PlainFormatter().format(record("boom", exc=raised("bad")))
    first, _, rest = out.partition("\n")
    assert first == "WARNING syncd.test: boom"
    assert rest.startswith("Traceback")
    assert "RuntimeError: bad" in rest


def test_json_line_is_one_object_with_time_level_logger_message_and_context() -> None:
    """JSON lines are single objects with ts, level, logger, msg, and conn/project when known."""
    formatter = JsonFormatter()
    out = formatter.format(record('said "hi"\nthen left', conn="c1", project="p-9"))
    assert "\n" not in out
    entry = json.loads(out)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "syncd.test"
    assert entry["msg"] == 'said "hi"\nthen left'
    assert (entry["conn"], entry["project"]) == ("c1", "p-9")
    assert entry["ts"].endswith("Z")
    assert "T" in entry["ts"]
    assert "conn" not in json.loads(formatter.format(record("no context")))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root and syncd loggers back as they were after configure() changed them."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    syncd_level = logging.getLogger("syncd").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("syncd").setLevel(syncd_level)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_configure_writes_redacted_lines_to_stderr(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """configure() sends syncd's records at its level (and others at WARNING) to stderr, redacted."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure(LogSettings(format=fmt, level="INFO"), [SECRET])
    logging.getLogger("syncd.x").info("key is %s", SECRET)
    logging.getLogger("syncd.x").debug("hidden at INFO")
    logging.getLogger("somelib").info("hidden below WARNING")
    logging.getLogger("somelib").warning("token %s", TOKEN)
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 2
    assert SECRET not in stderr.getvalue()
    assert TOKEN not in stderr.getvalue()
    if fmt == "json":
        assert [json.loads(line)["msg"] for line in lines] == ["key is [secret]", "token [token]"]
    else:
        assert lines == ["INFO syncd.x: key is [secret]", "WARNING somelib: token [token]"]
