"""A protocol fuzzer: hypothesis sends random and mutated frames to a running ``syncd run`` over a real
WebSocket, one at a time, and checks what the daemon promises whatever it is sent.

- Every frame is answered (``ack``, ``error``, ``pong``, or ``welcome`` for a first frame), or the
  connection is closed with a close code that docs/protocol.md documents.
- Everything the daemon sends is strict JSON: no ``NaN``, no ``Infinity``.
- The daemon stays up and logs no traceback: afterwards a new editor joins, edits and saves, and the
  store still reads back (``syncd project show``).
- A second project, which the fuzzer never names, is exactly as it was.

The frames are valid ones (ids of the fuzzed project's rows, its fields, plausible values), valid
ones with a field dropped, added or replaced, any JSON value, random text and bytes, and hostile
values anywhere: lone surrogates, NaN and Infinity, integers of thousands of digits, deep nesting.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from syncd.core.schema import EDITABLE_FIELDS, TABLES
from syncd.wire import CLOSE_CODES, ERROR_CODES
from tests.e2e.conftest import WAIT, DaemonFactory, seed_project, show_project
from tests.support.daemon import DaemonProcess

EXAMPLES = 400
"""Frames per run: enough to reach every kind of frame many times, within about ten seconds."""

MAX_FRAME = 16_384
"""The fuzzed daemon's ``max_frame_bytes``: small, so that ``too_large`` and the 1009 close (over four
times this) are reached by frames of moderate size."""

DOCUMENTED_CLOSES = {1007, 1009, 1011, *CLOSE_CODES}
"""Close codes of docs/protocol.md §12 that answer a frame (1007: a text frame that is not UTF-8).
1000 is not one: a normal close after a frame would be a frame left unanswered."""

ANSWERS = {"ack", "error", "pong", "welcome"}
"""Frames that answer a frame of the editor's, and only ever come as an answer to one."""

NEXT_MID = object()
"""Stands for the connection's next mid, so that most mutations are new rather than duplicates."""


_MID_MARK = '"\\u0000mid\\u0000"'
"""How :data:`NEXT_MID` looks in the text of a frame, until the frame is sent."""


class Raw(str):
    """JSON text put into a frame verbatim: what ``json.dumps`` cannot write (NaN, 5000 digits, ...)."""


@dataclass(frozen=True, repr=False)
class Shot:
    """One frame to send: its bytes, whether as a text frame, and whether as a connection's first."""

    data: str | bytes
    text: bool = True
    first: bool = False

    def __repr__(self) -> str:
        # A failing example is printed: 40,000 brackets would bury the rest.
        shown = self.data if len(self.data) <= 400 else self.data[:400]
        more = f" (+{len(self.data) - 400} more)" if len(self.data) > 400 else ""
        return f"Shot({shown!r}{more}, text={self.text}, first={self.first})"


# ---- strategies ---------------------------------------------------------------------------------

_LONE = st.integers(0xD800, 0xDFFF)

HOSTILE = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "-0", "1E-400"]).map(Raw),
    st.integers(15, 6000).map(lambda n: Raw("9" * n)),
    st.integers(20, 3000).map(lambda n: Raw("[" * n + "]" * n)),
    _LONE.map(lambda c: Raw(f'"x\\u{c:04x}y"')),
    _LONE.map(lambda c: Raw(f'{{"\\u{c:04x}":1}}')),
    st.sampled_from([2**53, -(2**53), 2**63, -(2**31) - 1]),
)
"""Values that are not portable JSON, or that break a parser."""

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    HOSTILE,
)

ANY_JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
"""Any JSON value, hostile ones included at any depth."""

SAFE_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(-1e9, 1e9) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
"""JSON values that every reader takes."""

_TEXT = st.text(max_size=30)
_SECONDS = st.floats(0, 1000)
_INDEX = st.integers(0, 50)

FIELD_VALUES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "projects": {
        "title": _TEXT,
        "script": _TEXT,
        "status": st.sampled_from(["draft", "generating", "ready", "exporting", "archived"]),
        "aspect_ratio": st.sampled_from(["16:9", "9:16", "1:1", "4:5"]),
        "settings": st.dictionaries(st.text(max_size=8), SAFE_JSON, max_size=3),
    },
    "scenes": {
        "scene_index": _INDEX,
        "heading": _TEXT,
        "body": _TEXT,
        "duration": _SECONDS,
        "voice_id": st.none(),
    },
    "clips": {
        "provider": _TEXT,
        "prompt": _TEXT,
        "file_url": st.none() | _TEXT,
        "thumbnail_url": st.none() | _TEXT,
        "status": st.sampled_from(["pending", "generating", "ready", "failed"]),
        "duration": _SECONDS,
        "trim_start": _SECONDS,
        "trim_end": st.none() | _SECONDS,
        "order_index": _INDEX,
        "metadata": st.dictionaries(st.text(max_size=8), SAFE_JSON, max_size=3),
    },
}
"""A value that fits, for every editable field (``clips.scene_id`` and ``scenes.voice_id`` aside)."""

assert all(set(FIELD_VALUES[t]) <= EDITABLE_FIELDS[t] for t in TABLES)


@dataclass(frozen=True)
class Rows:
    """Row ids the fuzzer aims at: the fuzzed project's rows, and the ids its inserts take from."""

    project: str
    scenes: list[str]
    new_scenes: list[str]
    new_clips: list[str]

    def of(self, table: str) -> st.SearchStrategy[str]:
        """An id of a row of ``table``, now and then one that exists nowhere."""
        known = {"projects": [self.project], "scenes": self.scenes + self.new_scenes, "clips": self.new_clips}
        return st.one_of(*[st.sampled_from(known[table])] * 4, st.uuids().map(str))


def _values(table: str, *, min_size: int) -> st.SearchStrategy[dict[str, Any]]:
    """Fields of ``table`` with values that fit; the fuzz comes from mutating them afterwards."""
    fields = FIELD_VALUES[table]
    pairs = st.sampled_from(sorted(fields)).flatmap(lambda name: st.tuples(st.just(name), fields[name]))
    return st.lists(pairs, min_size=min_size, max_size=3).map(dict)


def _valid(rows: Rows) -> st.SearchStrategy[dict[str, Any]]:
    """Frames that are right in every part, so that many are accepted (then mutated or not)."""
    mid = st.just(NEXT_MID)

    def patch(table: str) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries(
            {
                "type": st.just("patch"),
                "mid": mid,
                "table": st.just(table),
                "id": rows.of(table),
                "set": _values(table, min_size=1),
            }
        )

    def insert(table: str, ids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
        row = st.builds(
            lambda values, row_id: {**values, "id": row_id}, _values(table, min_size=0), st.sampled_from(ids)
        )
        return st.fixed_dictionaries(
            {"type": st.just("insert"), "mid": mid, "table": st.just(table), "row": row}
        )

    def by_id(kind: str, table: str) -> st.SearchStrategy[dict[str, Any]]:
        target = (
            st.lists(rows.of(table), min_size=1, max_size=4, unique=True)
            if kind == "reorder"
            else rows.of(table)
        )
        key = "ids" if kind == "reorder" else "id"
        return st.fixed_dictionaries(
            {"type": st.just(kind), "mid": mid, "table": st.just(table), key: target}
        )

    # Deletes are rare, or every later frame would aim at rows that are gone.
    return st.one_of(
        *(patch(table) for table in TABLES for _ in range(2)),
        *(insert("scenes", rows.new_scenes), insert("clips", rows.new_clips)) * 2,
        st.sampled_from(("scenes", "clips")).flatmap(lambda table: by_id("delete", table)),
        st.sampled_from(("scenes", "clips")).flatmap(lambda table: by_id("reorder", table)),
        st.fixed_dictionaries({"type": st.just("flush"), "mid": mid}),
        st.fixed_dictionaries({"type": st.just("ping"), "t": SAFE_JSON}),
    )


def _mutate(frame: dict[str, Any], how: int, key: str, value: object) -> dict[str, Any]:
    """``frame`` with one field dropped, replaced or added; with ``how`` >= 3, in its ``set`` or ``row``."""
    inner = "set" if "set" in frame else "row" if "row" in frame else None
    if how >= 3 and inner is not None and isinstance(frame[inner], dict):
        return {**frame, inner: _change(frame[inner], how % 3, key, value)}
    return _change(frame, how % 3, key, value)


def _change(obj: dict[str, Any], how: int, key: str, value: object) -> dict[str, Any]:
    changed = dict(obj)
    keys = sorted(changed)
    if how == 0 and keys:
        changed.pop(keys[len(key) % len(keys)])
    elif how == 1 and keys:
        changed[keys[len(key) % len(keys)]] = value
    else:
        changed[key] = value
    return changed


def _shots(rows: Rows) -> st.SearchStrategy[Shot]:
    """Every kind of frame, valid ones most often."""
    valid = _valid(rows)
    hello = st.fixed_dictionaries(
        {
            "type": st.just("hello"),
            "protocol": st.just(1),
            "project_id": st.just(rows.project) | st.uuids().map(str),
            "client_id": st.uuids().map(str),
            "token": st.none(),
            "resume": st.none()
            | st.fixed_dictionaries({"epoch": st.text(max_size=5), "seq": st.integers(0, 99)}),
        }
    )
    mutated = st.builds(_mutate, valid | hello, st.integers(0, 5), st.text(max_size=6), ANY_JSON)
    kinds: dict[str, st.SearchStrategy[Shot]] = {
        "valid": valid.map(lambda f: Shot(_to_text(f))),
        "mutated": mutated.map(lambda f: Shot(_to_text(f))),
        "any JSON": ANY_JSON.map(lambda v: Shot(_to_text(v))),
        "text": st.text(max_size=40).map(Shot),
        "bytes": st.binary(max_size=40).map(lambda b: Shot(b, text=False)),
        "text not UTF-8": st.sampled_from([b"\xff\xfe{}", b'{"type":"ping","t":"\xed\xa0\x80"}']).map(Shot),
        "deep": st.integers(1, 40_000).map(lambda n: Shot('{"type":"ping","t":' + "[" * n + "]" * n + "}")),
        "first": (hello | mutated | valid).map(lambda f: Shot(_to_text(f), first=True)),
    }
    weights = {"valid": 8, "mutated": 8, "any JSON": 2, "first": 2}
    names = [name for name in kinds for _ in range(weights.get(name, 1))]
    return st.sampled_from(names).flatmap(lambda name: kinds[name])


def _to_text(value: object) -> str:
    """JSON text of ``value``, :class:`Raw` parts as they are; ``NEXT_MID`` left as a marker."""
    raws: list[str] = []

    def mark(item: object) -> object:
        if isinstance(item, Raw):
            raws.append(item)
            return f"\x00{len(raws) - 1}\x00"
        if item is NEXT_MID:
            return "\x00mid\x00"
        if isinstance(item, dict):
            return {k: mark(v) for k, v in item.items()}
        if isinstance(item, list):
            return [mark(v) for v in item]
        return item

    text = json.dumps(mark(value))
    for index, raw in enumerate(raws):
        text = text.replace(f'"\\u0000{index}\\u0000"', raw, 1)
    return text


# ---- the editor side ----------------------------------------------------------------------------


def _strict_json(data: str | bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"the daemon sent {constant}, which is not JSON: {data[:200]!r}")

    return json.loads(data, parse_constant=refuse)


@dataclass
class Fuzzer:
    """The fuzzing editor: one connection at a time to the fuzzed project, reopened when closed."""

    url: str
    project_id: str
    ws: ClientConnection | None = None
    mids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    closes: Counter[int | None] = field(default_factory=Counter)

    async def _open(self) -> ClientConnection:
        return await connect(self.url, open_timeout=WAIT, close_timeout=1, compression=None, max_size=None)

    async def _joined(self) -> ClientConnection:
        if self.ws is None:
            ws = await self._open()
            hello = {"type": "hello", "protocol": 1, "project_id": self.project_id}
            await ws.send(
                json.dumps({**hello, "client_id": str(uuid.uuid4()), "token": None, "resume": None})
            )
            async with asyncio.timeout(WAIT):
                while (frame := _strict_json(await ws.recv()))["type"] != "welcome":
                    assert frame["type"] != "error", frame
            self.ws = ws
        return self.ws

    async def shoot(self, shot: Shot) -> None:
        """Send one frame and wait for its answer or the connection's close; check both."""
        if shot.first:
            await self.drop()
            self.ws = await self._open()
        ws = await self._joined()
        data = shot.data
        if isinstance(data, str) and _MID_MARK in data:
            data = data.replace(_MID_MARK, str(next(self.mids)))
        await ws.send(data, text=shot.text)
        self.sent += 1
        try:
            answer = await self._answer(ws, shot)
        except ConnectionClosed:
            await self._closed(ws, shot)
            return
        self.answers[answer["type"]] += 1
        if answer["type"] == "error":
            assert answer["code"] in ERROR_CODES, answer
            self.answers[f"error {answer['code']}"] += 1
            if shot.first:  # a refused hello: the close follows, with its documented code
                await self._drain(ws)
                await self._closed(ws, shot)

    async def _answer(self, ws: ClientConnection, shot: Shot) -> dict[str, Any]:
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    frame = _strict_json(await ws.recv())
                    assert isinstance(frame, dict), frame
                    if frame["type"] in ANSWERS:
                        return frame
        except TimeoutError:
            raise AssertionError(f"no answer within {WAIT} s to {shot!r}") from None

    async def _drain(self, ws: ClientConnection) -> None:
        async with asyncio.timeout(WAIT):
            try:
                while True:
                    _strict_json(await ws.recv())
            except ConnectionClosed:
                pass

    async def _closed(self, ws: ClientConnection, shot: Shot) -> None:
        code = ws.close_code
        self.closes[code] += 1
        assert code in DOCUMENTED_CLOSES, f"closed with {code}, not a documented answer, after {shot!r}"
        await self.drop()

    async def drop(self) -> None:
        """Close the current connection, if any; the next frame opens a new one."""
        if self.ws is not None:
            ws, self.ws = self.ws, None
            await ws.close()

    def summary(self) -> str:
        closes = ", ".join(f"{code}: {n}" for code, n in sorted(self.closes.items(), key=str)) or "none"
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.answers.items()))
        return f"fuzz: {self.sent} frames sent; answered: {kinds}; closes by code: {closes}"


# ---- the test -----------------------------------------------------------------------------------


async def _view(daemon: DaemonProcess, project_id: str) -> dict[str, Any]:
    """The project, its scenes and clips as a new editor's snapshot shows them."""
    async with await connect(daemon.url, open_timeout=WAIT, close_timeout=1) as ws:
        hello = {"type": "hello", "protocol": 1, "project_id": project_id, "client_id": str(uuid.uuid4())}
        await ws.send(json.dumps(hello))
        async with asyncio.timeout(WAIT):
            while (frame := _strict_json(await ws.recv()))["type"] != "snapshot":
                assert frame["type"] in ("welcome", "presence"), frame
    return {name: frame[name] for name in ("project", "scenes", "clips")}


async def _edit_and_save(daemon: DaemonProcess, project_id: str) -> None:
    """A new editor joins, adds and edits a scene, flushes and sees the save: the daemon still serves."""
    scene = str(uuid.uuid4())
    frames = [
        {"type": "hello", "protocol": 1, "project_id": project_id, "client_id": str(uuid.uuid4())},
        {"type": "insert", "mid": 1, "table": "scenes", "row": {"id": scene, "scene_index": 99}},
        {"type": "patch", "mid": 2, "table": "scenes", "id": scene, "set": {"body": "after the fuzz"}},
        {"type": "flush", "mid": 3},
    ]
    async with await connect(daemon.url, open_timeout=WAIT, close_timeout=1) as ws:
        for frame in frames:
            await ws.send(json.dumps(frame))
        acks: list[int] = []
        saved = False
        async with asyncio.timeout(WAIT):
            while acks != [1, 2, 3] or not saved:
                answer = _strict_json(await ws.recv())
                assert answer["type"] != "error", answer
                acks += [answer["mid"]] if answer["type"] == "ack" else []
                saved = saved or answer["type"] == "saved"


def test_fuzzed_frames_are_answered_and_harm_nothing(start_daemon: DaemonFactory) -> None:
    """Random and mutated frames get an answer or a documented close; the daemon and others are unharmed."""
    daemon = start_daemon({"SYNCD_GATEWAY__MAX_FRAME_BYTES": str(MAX_FRAME)})
    with asyncio.Runner() as runner:
        other_id, _ = runner.run(seed_project(daemon, "Never fuzzed"))
        other_before = runner.run(_view(daemon, other_id))
        other_stored = show_project(daemon, other_id)
        fuzzed = runner.run(_view(daemon, daemon.project_id))
        rows = Rows(
            daemon.project_id,
            [row["id"] for row in fuzzed["scenes"]],
            [str(uuid.uuid4()) for _ in range(10)],
            [str(uuid.uuid4()) for _ in range(10)],
        )
        fuzzer = Fuzzer(daemon.url, daemon.project_id)
        logged = len(daemon.stderr)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=(Phase.explicit, Phase.generate),  # no shrinking: the failing frame is in the message
            suppress_health_check=list(HealthCheck),
        )
        @given(_shots(rows))
        def fuzz(shot: Shot) -> None:
            runner.run(fuzzer.shoot(shot))

        try:
            fuzz()
        finally:
            runner.run(fuzzer.drop())
            print(fuzzer.summary())

        assert daemon.proc is not None
        assert daemon.proc.poll() is None, "the daemon died"
        runner.run(_edit_and_save(daemon, daemon.project_id))
        assert runner.run(_view(daemon, other_id)) == other_before
    assert show_project(daemon, other_id) == other_stored
    show_project(daemon, daemon.project_id)  # the fuzzed project's stored rows still read back
    assert "Traceback" not in daemon.stderr[logged:], daemon.stderr[logged:]
    assert fuzzer.answers["error"] > 0, fuzzer.summary()
    assert fuzzer.answers["ack"] > 0, fuzzer.summary()
