"""Properties of ClientProtocol against a correct model server, over random frame sequences.

The model server numbers its changes without gaps and answers every hello as docs/protocol.md says
(welcome, then the missed changes or a snapshot). The network between them may drop or repeat a
change, lose the connection, or restart the daemon (a new epoch). Whatever happens:

- mids strictly increase, and a resent mutation is the same frame with the same mid;
- every join (and every mid-session snapshot) sends each unanswered mutation exactly once, in mid order;
- the view always equals the server's view at the client's (epoch, seq): a gap is never applied;
- a correct server never makes the client report a violation;
- a reconnect brings the client to the server's latest view.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.client.events import Joined, ViewReplaced, Violation
from syncd.client.protocol import ClientProtocol
from syncd.client.view import Frame, Row

PROJECT = "p1"
SCENES = ("s0", "s1", "s2")

OPS = st.sampled_from(
    [("change", "deliver", scene) for scene in SCENES] * 3
    + [("change", "drop", scene) for scene in SCENES]
    + [("change", "repeat", "s0")]
    + [("mutate", scene) for scene in SCENES]
    + [("ack",), ("ack",), ("refuse",), ("snapshot",), ("restart",), ("connect",), ("connect",)]
    + [("lose", code) for code in (1006, 1012, 4429, 4403)]
)
"""The steps of a run; changes that arrive come most often, as on a real connection."""


@dataclass
class Server:
    """A correct syncd, for one project: gap-free seqs, history per epoch, acks of received mids."""

    epoch: str = "e0"
    seq: int = 0
    scenes: dict[str, Row] = field(
        default_factory=lambda: {s: {"id": s, "scene_index": i} for i, s in enumerate(SCENES)}
    )
    history: dict[tuple[str, int], dict[str, Row]] = field(default_factory=dict)
    changes: dict[int, Frame] = field(default_factory=dict)
    received: list[int] = field(default_factory=list)  # mids received, not yet answered
    edits: int = 0

    def __post_init__(self) -> None:
        self.history[(self.epoch, 0)] = copy.deepcopy(self.scenes)

    def change(self, scene: str) -> Frame:
        self.seq += 1
        self.edits += 1
        text = f"edit {self.edits}"
        self.scenes[scene]["heading"] = text
        self.history[(self.epoch, self.seq)] = copy.deepcopy(self.scenes)
        frame = {"type": "change", "seq": self.seq, "table": "scenes", "op": "update", "id": scene}
        frame.update(set={"heading": text}, origin="db", client_id=None, mid=None)
        self.changes[self.seq] = frame
        return frame

    def restart(self) -> None:
        self.epoch = f"e{int(self.epoch[1:]) + 1}"
        self.seq = 0
        self.changes = {}
        self.history[(self.epoch, 0)] = copy.deepcopy(self.scenes)

    def snapshot(self) -> Frame:
        return {
            "type": "snapshot",
            "epoch": self.epoch,
            "seq": self.seq,
            "project": {"id": PROJECT},
            "scenes": list(copy.deepcopy(self.scenes).values()),
            "clips": [],
            "saved_seq": 0,
        }

    def opening(self, hello: Frame) -> list[Frame]:
        """What syncd answers to ``hello``: welcome, then the missed changes or a snapshot."""
        welcome = {"type": "welcome", "protocol": 1, "project_id": PROJECT, "epoch": self.epoch}
        welcome.update(seq=self.seq, session="s")
        resume = hello["resume"]
        if resume is not None and resume["epoch"] == self.epoch and resume["seq"] <= self.seq:
            return [welcome] + [self.changes[seq] for seq in range(resume["seq"] + 1, self.seq + 1)]
        return [welcome, self.snapshot()]


class Run:
    """One client against the model server, checking the properties after every step."""

    def __init__(self) -> None:
        self.client = ClientProtocol(PROJECT, "c1", jitter=lambda: 0.0)
        self.server = Server()
        self.connected = False
        self.last_delivered: Frame | None = None
        self.frames_by_mid: dict[int, Frame] = {}
        self.highest_mid = 0

    def feed(self, frame: Frame) -> None:
        self.client.receive_frame(frame)
        self.settle()

    def settle(self) -> None:
        """Take what the client sends and reports, and check every property."""
        unacked_before_send = self.client.unacked
        events = self.client.take_events()
        sent = self.client.take_frames()
        assert not any(isinstance(event, Violation) for event in events), events
        for frame in sent:
            self.check_sent(frame)
        resent = [frame["mid"] for frame in sent if frame.get("type") == "patch"]
        if any(isinstance(event, Joined) for event in events) or (
            any(isinstance(event, ViewReplaced) for event in events) and self.client.phase == "live"
        ):
            assert resent == unacked_before_send, (resent, unacked_before_send)
        if self.client.phase in ("idle", "closed"):
            self.connected = False
        if self.client.epoch is not None:
            assert self.client.view.scenes == self.server.history[(self.client.epoch, self.client.seq)]

    def check_sent(self, frame: Frame) -> None:
        if frame["type"] == "hello":
            for answer in self.server.opening(frame):
                self.client.receive_frame(answer)
            self.connected = True
            self.settle()
            return
        mid = frame["mid"]
        if mid in self.frames_by_mid:
            assert frame == self.frames_by_mid[mid], "a resent mutation changed"
        else:
            assert mid > self.highest_mid, "mids must strictly increase"
            self.highest_mid = mid
            self.frames_by_mid[mid] = frame
        if mid not in self.server.received:
            self.server.received.append(mid)

    def step(self, op: tuple[Any, ...]) -> None:
        match op:
            case ("change", how, scene):
                self.on_change(how, scene)
            case ("mutate", scene):
                self.client.patch("scenes", scene, {"heading": f"mine {self.client.next_mid}"})
                self.settle()
            case ("ack" | "refuse",) if self.connected and self.server.received:
                mid = self.server.received.pop(0)
                if op[0] == "ack":
                    self.feed({"type": "ack", "mid": mid, "seq": self.server.seq})
                else:
                    self.feed({"type": "error", "mid": mid, "code": "bad_request", "message": "no"})
                assert mid not in self.client.unacked
            case ("lose", code) if self.connected:
                self.lose(code)
            case ("restart",):
                if self.connected:
                    self.lose(1012)
                self.server.restart()
            case ("snapshot",) if self.connected and self.client.phase == "live":
                self.feed(self.server.snapshot())
            case ("connect",) if not self.connected:
                self.server.received.clear()  # answers for the old connection are lost with it
                self.client.connection_made()
                self.settle()
            case _:
                pass

    def on_change(self, how: str, scene: str) -> None:
        if how == "repeat":
            if self.connected and self.last_delivered is not None:
                self.feed(self.last_delivered)
            return
        frame = self.server.change(scene)
        if how == "deliver" and self.connected:
            self.last_delivered = frame
            self.feed(frame)

    def lose(self, code: int) -> None:
        self.client.connection_lost(code, "", 0.0)
        self.last_delivered = None  # a frame of the old connection cannot arrive on the next one
        self.server.received.clear()
        self.settle()


@settings(max_examples=150, deadline=None)
@given(st.lists(OPS, min_size=5, max_size=80))
def test_protocol_properties_hold_for_any_sequence(ops: list[tuple[Any, ...]]) -> None:
    """Mids rise, resends are exact and ordered, the view matches the server's, a reconnect converges."""
    run = Run()
    run.client.connection_made()
    run.settle()
    for op in ops:
        run.step(op)
    # A reconnect at the end brings the client to the server's latest view, whatever came before.
    if run.connected:
        run.lose(1006)
    run.step(("connect",))
    assert run.client.phase == "live"
    assert (run.client.epoch, run.client.seq) == (run.server.epoch, run.server.seq)
    assert run.client.view.scenes == run.server.scenes
