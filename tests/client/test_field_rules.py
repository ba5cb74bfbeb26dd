"""The field rules of clients/conformance/fields/values.json are the daemon's (syncd/rows.py).

The TypeScript client checks every row of a multi-row call before sending any (``syncScenes``), with
its own copy of the rules of docs/protocol.md §5; ``clients/js/test/fields.test.mjs`` holds that copy to
the same file. This test holds the file to the daemon, so a rule changed on one side fails a test.

The file is made by this module: ``python -m tests.client.test_field_rules`` writes it again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from syncd.core.schema import EDITABLE_FIELDS, TABLES
from syncd.errors import FieldError
from syncd.rows import validate_set

VALUES = Path(__file__).resolve().parents[2] / "clients" / "conformance" / "fields" / "values.json"

_UUID = "0f000000-0000-4000-8000-00000000000a"
_PROBES: list[Any] = [
    None,
    True,
    "",
    "x",
    "5",
    "a\u0000b",
    "draft",
    "archived",
    "pending",
    "failed",
    "16:9",
    "4:5",
    "bogus",
    _UUID,
    _UUID.upper(),
    "not-a-uuid",
    -1,
    -0.5,
    0,
    1,
    1.5,
    2**31 - 1,
    2**31,
    2**53 - 1,
    2**53,
    {},
    {"a": 1},
    {"a": [1, {"b": "c\u0000"}]},
    {"seed": 2**53},
    [],
    [1],
    *({"repeat": "x", "times": n} for n in (200, 201, 500, 501, 2_000, 2_001, 100_000, 100_001)),
    {"repeat": "\U0001f3ac", "times": 500},  # 500 characters, 1,000 UTF-16 units
    {"repeat": "\U0001f3ac", "times": 501},
]
"""Values to try in every editable field; ``{"repeat", "times"}`` stands for a long string."""


def expand(value: Any) -> Any:
    """A probe as the value it stands for."""
    if isinstance(value, dict) and set(value) == {"repeat", "times"}:
        return value["repeat"] * value["times"]
    return value


def daemon_takes(table: str, field: str, value: Any) -> bool:
    """Whether the daemon accepts ``value`` in ``field`` of a patch of ``table``."""
    try:
        validate_set(table, {field: expand(value)})  # type: ignore[arg-type]
    except FieldError:
        return False
    return True


def entries() -> list[dict[str, Any]]:
    """Every (table, field, probe) with the daemon's answer, in a stable order."""
    return [
        {"table": table, "field": field, "value": value, "ok": daemon_takes(table, field, value)}
        for table in TABLES
        for field in sorted(EDITABLE_FIELDS[table])
        for value in _PROBES
    ]


def render() -> str:
    """The file's text: one entry per line, so that a change reads as a diff of rules."""
    lines = [json.dumps(entry, ensure_ascii=True, separators=(", ", ": ")) for entry in entries()]
    return "[\n" + ",\n".join(lines) + "\n]\n"


def test_the_file_holds_the_daemons_rules_for_every_editable_field() -> None:
    """Every editable field of every table, every probe, with what syncd/rows.py says of it now."""
    assert VALUES.read_text() == render(), f"run `python -m tests.client.test_field_rules` to update {VALUES}"


def test_the_probes_can_tell_a_rule_apart() -> None:
    """Each field takes some probes and refuses others: a file of all-yes or all-no would check nothing."""
    by_field: dict[tuple[str, str], set[bool]] = {}
    for entry in entries():
        by_field.setdefault((entry["table"], entry["field"]), set()).add(entry["ok"])
    assert {key: oks for key, oks in by_field.items() if oks != {True, False}} == {}


if __name__ == "__main__":
    VALUES.write_text(render())
    sys.stdout.write(f"wrote {VALUES}\n")
