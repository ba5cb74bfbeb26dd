"""The TypeScript client's protocol constants (clients/js/src/wire.ts) equal syncd/wire.py's."""

from __future__ import annotations

import re
from pathlib import Path

from syncd import wire

WIRE_TS = Path(__file__).resolve().parents[2] / "clients" / "js" / "src" / "wire.ts"


def ts_numbers(source: str) -> dict[str, int]:
    """Every ``export const NAME = <integer>;`` of a TypeScript file."""
    return {m[1]: int(m[2]) for m in re.finditer(r"export const (\w+) = (\d+);", source)}


def ts_set(source: str, name: str, constants: dict[str, int]) -> set[int | str]:
    """The members of ``export const NAME ... = new Set(...)``: constant names resolved, strings kept."""
    body = re.search(rf"export const {name}\b[^=]*= new Set[^(]*\((.*?)\);", source, re.S)
    assert body is not None, f"{name} not found in {WIRE_TS}"
    members: set[int | str] = set()
    for token in re.findall(r'"[^"]*"|\w+', body[1]):
        members.add(token.strip('"') if token.startswith('"') else constants[token])
    return members


def test_reader_sees_what_the_file_says() -> None:
    """The small parser reads numbers and sets, so a wrong mirror cannot pass unseen."""
    source = (
        "export const A = 7;\nexport const S: ReadonlySet<number> = new Set([A, B]);\nexport const B = 9;"
    )
    numbers = ts_numbers(source)
    assert numbers == {"A": 7, "B": 9}
    assert ts_set(source, "S", numbers) == {7, 9}


def test_close_codes_and_version_match() -> None:
    """Each close code, the final set and the protocol version are the same in both clients."""
    source = WIRE_TS.read_text()
    numbers = ts_numbers(source)
    python = {
        name: value
        for name, value in vars(wire).items()
        if name.startswith("CLOSE_") and isinstance(value, int)
    }
    assert {name: numbers.get(name) for name in python} == python
    assert numbers["PROTOCOL_VERSION"] == wire.PROTOCOL_VERSION
    assert ts_set(source, "FINAL_CLOSE_CODES", numbers) == set(wire.FINAL_CLOSE_CODES)
    assert ts_set(source, "ERROR_CODES", numbers) == set(wire.ERROR_CODES)


def test_the_rate_limit_the_clients_pace_to_is_the_daemons_default() -> None:
    """Both clients keep to the same default mutation rate and burst, the daemon's (protocol §11)."""
    numbers = ts_numbers((WIRE_TS.parent / "pacing.ts").read_text())
    assert (numbers["MUTATION_RATE"], numbers["MUTATION_BURST"]) == (wire.MUTATION_RATE, wire.MUTATION_BURST)
