"""MqttBridge against a real Mosquitto broker, watched by the broker's own mosquitto_sub and mosquitto_pub."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gc
import ipaddress
import json
import logging
import socket
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import SecretStr

from syncd.adapters.mqtt import PUBLISH_WINDOW, MqttBridge, is_retryable
from syncd.config import MqttSettings
from syncd.errors import ConfigError, UpstreamError
from tests.support.mosquitto import MosquittoBroker
from tests.support.mosquitto import MosquittoSub as Subscriber
from tests.support.ports import LOOPBACK

MOSQUITTO_PUB = Path("/usr/bin/mosquitto_pub")
PREFIX = "omegaframe/v1"
P = "5b0c7c52-3a51-4b0e-9a43-2f5f7d1e0a01"
Q = "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a00"
EPOCH = "3f2a9c"
TEST_TIMEOUT = 30.0
WAIT = 10.0

integration = pytest.mark.integration

Event = tuple[str, str, dict[str, Any]]
"""What on_event received: project id, event topic, data."""


def change(seq: int, *, epoch: str = EPOCH) -> dict[str, Any]:
    """A change message shaped like the daemon's."""
    return {
        "epoch": epoch,
        "seq": seq,
        "table": "clips",
        "op": "update",
        "id": "9d6c3b1a-0000-4000-8000-000000000001",
        "set": {"title": f"take {seq}", "note": "line one\nline two ✓"},
        "origin": "editor",
        "client_id": "c0ffee00-0000-4000-8000-000000000002",
        "mid": seq,
        "at": "2025-01-01T00:00:00Z",
    }


def _tool(path: Path) -> str:
    assert path.is_file(), f"{path} is missing: install the Debian package `mosquitto-clients`"
    return str(path)


@pytest.fixture
def subscribe(mosquitto: MosquittoBroker) -> Iterator[Callable[..., Subscriber]]:
    """Start mosquitto_sub subscribers on the test broker; all are stopped afterwards."""
    started: list[Subscriber] = []

    def start(*topics: str) -> Subscriber:
        subscriber = Subscriber(mosquitto, *topics)
        started.append(subscriber)
        return subscriber

    yield start
    for subscriber in started:
        subscriber.close()


def mosquitto_pub(broker: MosquittoBroker, topic: str, payload: bytes, *, retain: bool = False) -> None:
    """Publish one message with the broker's own client (payload from stdin, so any bytes work)."""
    command = [_tool(MOSQUITTO_PUB), "-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", topic]
    command.append("-s" if payload else "-n")  # -s reads stdin, which cannot carry an empty message
    if retain:
        command.append("-r")
    subprocess.run(command, input=payload, check=True, timeout=WAIT, capture_output=True)


class Events:
    """Records what the bridge hands to on_event."""

    def __init__(self) -> None:
        self.received: list[Event] = []

    def __call__(self, project_id: str, topic: str, data: dict[str, Any]) -> None:
        if topic == "explode":
            raise RuntimeError("handler failure")
        self.received.append((project_id, topic, data))


def make_bridge(url: str, events: Events | None = None, **settings: Any) -> MqttBridge:
    """A bridge with quick reconnects, so the tests do not wait for production backoff."""
    return MqttBridge(
        MqttSettings(url=url, client_id="syncd-test", **settings),
        on_event=events if events is not None else Events(),
        reconnect_initial_delay=0.05,
        reconnect_max_delay=0.2,
        drain_timeout=3.0,
    )


@contextlib.asynccontextmanager
async def running(bridge: MqttBridge) -> AsyncIterator[MqttBridge]:
    """Enter the bridge and run it as the daemon does; cancel run() before leaving the context."""
    async with bridge:
        task = asyncio.create_task(bridge.run(), name="syncd.mqtt")
        try:
            yield bridge
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(condition: Callable[[], bool], within: float = WAIT) -> None:
    """Poll ``condition`` on the event loop until it holds; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        # The bridge's state has no event to wait on; polling keeps the bridge free of test hooks.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


# -- publishing --------------------------------------------------------------------------------


@integration
async def test_changes_and_saved_arrive_in_order(
    mosquitto: MosquittoBroker, subscribe: Callable[..., Subscriber]
) -> None:
    """Queued changes reach a subscriber in seq order, unchanged, and saved notices on their own topic."""
    sub = subscribe(f"{PREFIX}/projects/+/changes", f"{PREFIX}/projects/+/saved")
    await sub.wait(lambda s: len(s.subscribed_at) >= 1)
    async with asyncio.timeout(TEST_TIMEOUT), running(make_bridge(mosquitto.url)) as bridge:
        for seq in range(1, 301):
            bridge.publish_change(P, change(seq))
        bridge.publish_saved(P, {"seq": 300, "at": "2025-01-01T00:00:02Z"})
        await sub.wait(lambda s: len(s.messages) >= 301)
        await until(lambda: bridge.backlog_depth() == 0)
        assert bridge.connected
    assert sub.payloads("/changes") == [change(seq) for seq in range(1, 301)]
    assert sub.payloads("/saved") == [{"seq": 300, "at": "2025-01-01T00:00:02Z"}]
    assert {topic for topic, _ in sub.messages} == {
        f"{PREFIX}/projects/{P}/changes",
        f"{PREFIX}/projects/{P}/saved",
    }


@integration
async def test_broker_restart_mid_burst_leaves_no_gap(
    mosquitto: MosquittoBroker, subscribe: Callable[..., Subscriber]
) -> None:
    """After a broker restart mid-burst, a resubscribed consumer sees every seq from its first to the last."""
    # The broker keeps no sessions across the restart, so what it had acknowledged but not yet forwarded
    # is gone with it; everything it had not acknowledged the bridge sends again. So the honest promise
    # is: from the first change the subscriber sees after the restart, no seq is missing up to the last,
    # and that first change is no later than the first one queued during the outage.
    sub = subscribe(f"{PREFIX}/projects/{P}/changes")
    await sub.wait(lambda s: len(s.subscribed_at) >= 1)
    seq = 0

    async def burst(until_seen: int = 0, count: int = 0) -> None:
        nonlocal seq
        target = seq + count
        while len(sub.messages) < until_seen or seq < target:
            seq += 1
            bridge.publish_change(P, change(seq))
            await asyncio.sleep(0.001)

    async with asyncio.timeout(TEST_TIMEOUT), running(make_bridge(mosquitto.url)) as bridge:
        await until(lambda: bridge.connected)
        await burst(until_seen=100)
        # From here to the next await the event loop is blocked on purpose: the bridge can neither
        # notice the outage nor reconnect before the subscriber is back, so whatever the bridge sends
        # again after the restart has a subscriber to reach.
        mosquitto.restart()
        first_offline = seq + 1
        for _ in range(50):
            seq += 1
            bridge.publish_change(P, change(seq))
        sub.wait_blocking(lambda s: len(s.subscribed_at) >= 2)
        await burst(count=100)
        last = seq
        await sub.wait(lambda s: bool(s.messages) and json.loads(s.messages[-1][1])["seq"] == last)
        await until(lambda: bridge.backlog_depth() == 0)
        assert bridge.connected
    seqs = [m["seq"] for m in sub.payloads()]
    before, after = seqs[: sub.subscribed_at[1]], seqs[sub.subscribed_at[1] :]
    assert before == sorted(before)
    seen = sorted(set(after))
    assert seen == list(range(seen[0], last + 1)), f"gap after the restart: first {seen[0]}, last {last}"
    assert seen[0] <= first_offline, f"changes queued during the outage are missing: first seen {seen[0]}"


@integration
async def test_backlog_overflow_leaves_resync_notice(
    mosquitto: MosquittoBroker, subscribe: Callable[..., Subscriber], caplog: pytest.LogCaptureFixture
) -> None:
    """Past the bound the oldest changes give way to one resync notice that names the last dropped seq."""
    sub = subscribe(f"{PREFIX}/projects/+/changes")
    await sub.wait(lambda s: len(s.subscribed_at) >= 1)
    bridge = make_bridge(mosquitto.url, backlog=5)
    with caplog.at_level(logging.INFO, logger="syncd.adapters.mqtt"):
        for seq in range(1, 13):
            bridge.publish_change(P, change(seq))
    assert bridge.backlog_depth() == 6  # the notice, then the five newest changes
    assert bridge.dropped_messages == 7
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "an overflow is reported once, not once per dropped message"
    async with asyncio.timeout(TEST_TIMEOUT), running(bridge):
        await sub.wait(lambda s: len(s.messages) >= 6)
        await until(lambda: bridge.backlog_depth() == 0)
    assert sub.payloads() == [
        {"op": "resync", "epoch": EPOCH, "seq": 7, "reason": "backlog overflow"},
        *(change(seq) for seq in range(8, 13)),
    ]


@contextlib.contextmanager
def paused(broker: MosquittoBroker) -> Iterator[None]:
    """Freeze the broker process (SIGSTOP): connections stay open but nothing is read or acknowledged."""
    broker.pause()
    try:
        yield
    finally:
        broker.resume()


@integration
async def test_overflow_on_a_stalled_connection_keeps_messages_in_flight(
    mosquitto: MosquittoBroker, subscribe: Callable[..., Subscriber]
) -> None:
    """With a broker that stops acknowledging, the messages already sent stay; the unsent ones give way."""
    bound, total = 100, 200
    kept = bound - PUBLISH_WINDOW  # room left beside the messages in flight
    sub = subscribe(f"{PREFIX}/projects/+/changes")
    await sub.wait(lambda s: len(s.subscribed_at) >= 1)
    async with asyncio.timeout(TEST_TIMEOUT), running(make_bridge(mosquitto.url, backlog=bound)) as bridge:
        await until(lambda: bridge.connected)
        with paused(mosquitto):
            for seq in range(1, PUBLISH_WINDOW + 1):
                bridge.publish_change(P, change(seq))
            await until(lambda: bridge.in_flight() == PUBLISH_WINDOW)  # sent, and never acknowledged
            for seq in range(PUBLISH_WINDOW + 1, total + 1):
                bridge.publish_change(P, change(seq))
            assert bridge.connected
            assert bridge.dropped_messages == total - bound
        await sub.wait(lambda s: len(s.messages) >= PUBLISH_WINDOW + 1 + kept)
        await until(lambda: bridge.backlog_depth() == 0)
    assert sub.payloads() == [
        *(change(seq) for seq in range(1, PUBLISH_WINDOW + 1)),
        {"op": "resync", "epoch": EPOCH, "seq": total - kept, "reason": "backlog overflow"},
        *(change(seq) for seq in range(total - kept + 1, total + 1)),
    ]


@integration
async def test_overflow_with_two_projects_keeps_each_notice_in_place(
    mosquitto: MosquittoBroker, subscribe: Callable[..., Subscriber]
) -> None:
    """Each project with dropped changes gets its own notice, placed where its dropped run was."""
    sub = subscribe(f"{PREFIX}/projects/+/changes")
    await sub.wait(lambda s: len(s.subscribed_at) >= 1)
    bridge = make_bridge(mosquitto.url, backlog=4)
    for project, seq in [(P, 1), (Q, 1), (P, 2), (Q, 2), (P, 3), (Q, 3), (P, 4)]:
        bridge.publish_change(project, change(seq))
    async with asyncio.timeout(TEST_TIMEOUT), running(bridge):
        await sub.wait(lambda s: len(s.messages) >= 6)
        await until(lambda: bridge.backlog_depth() == 0)
    received = [(topic.split("/")[3], json.loads(payload)) for topic, payload in sub.messages]
    notice = {"op": "resync", "epoch": EPOCH, "reason": "backlog overflow"}
    assert received == [
        (P, {**notice, "seq": 2}),
        (Q, {**notice, "seq": 1}),
        (Q, change(2)),
        (P, change(3)),
        (Q, change(3)),
        (P, change(4)),
    ]


@integration
async def test_overflow_drops_saved_notices_without_a_resync(
    mosquitto: MosquittoBroker, subscribe: Callable[..., Subscriber]
) -> None:
    """A saved notice pushed out of a full backlog is simply dropped; the changes behind it stay intact."""
    sub = subscribe(f"{PREFIX}/projects/+/changes", f"{PREFIX}/projects/+/saved")
    await sub.wait(lambda s: len(s.subscribed_at) >= 1)
    bridge = make_bridge(mosquitto.url, backlog=2)
    bridge.publish_saved(P, {"seq": 0, "at": "2025-01-01T00:00:00Z"})
    bridge.publish_change(P, change(1))
    bridge.publish_change(P, change(2))
    assert (bridge.backlog_depth(), bridge.dropped_messages) == (2, 1)
    async with asyncio.timeout(TEST_TIMEOUT), running(bridge):
        await sub.wait(lambda s: len(s.messages) >= 2)
        await until(lambda: bridge.backlog_depth() == 0)
    assert sub.payloads("/changes") == [change(1), change(2)]
    assert sub.payloads("/saved") == []


@integration
async def test_bridge_started_while_broker_down_publishes_backlog_later(
    mosquitto: MosquittoBroker, subscribe: Callable[..., Subscriber]
) -> None:
    """Entering the bridge does not wait for a broker that is down, and the backlog goes out once it is up."""
    mosquitto.stop()
    bridge = make_bridge(mosquitto.url)
    async with asyncio.timeout(TEST_TIMEOUT):
        async with asyncio.timeout(1.0):
            await bridge.__aenter__()
        task = asyncio.create_task(bridge.run(), name="syncd.mqtt")
        try:
            for seq in range(1, 21):
                bridge.publish_change(P, change(seq))
            await asyncio.sleep(0.3)  # a few failed connection attempts
            assert not bridge.connected
            assert bridge.backlog_depth() == 20
            # Deliberately blocking the event loop: the bridge cannot connect before the subscriber is in.
            mosquitto.start()
            sub = subscribe(f"{PREFIX}/projects/+/changes")
            sub.wait_blocking(lambda s: len(s.subscribed_at) >= 1)
            await sub.wait(lambda s: len(s.messages) >= 20)
            await until(lambda: bridge.backlog_depth() == 0)
            assert bridge.connected
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await bridge.__aexit__(None, None, None)
    assert sub.payloads() == [change(seq) for seq in range(1, 21)]


@integration
async def test_leaving_the_context_delivers_the_backlog(
    mosquitto: MosquittoBroker, subscribe: Callable[..., Subscriber]
) -> None:
    """Messages queued but not yet sent when the daemon stops are delivered on the way out."""
    sub = subscribe(f"{PREFIX}/projects/+/changes", f"{PREFIX}/projects/+/saved")
    await sub.wait(lambda s: len(s.subscribed_at) >= 1)
    async with asyncio.timeout(TEST_TIMEOUT):
        async with make_bridge(mosquitto.url) as bridge:
            for seq in range(1, 4):
                bridge.publish_change(P, change(seq))
            bridge.publish_saved(P, {"seq": 3, "at": "2025-01-01T00:00:02Z"})
        assert bridge.backlog_depth() == 0
        await sub.wait(lambda s: len(s.messages) >= 4)
    assert sub.payloads("/changes") == [change(seq) for seq in range(1, 4)]


@integration
async def test_leaving_the_context_stops_run_and_delivers_what_remains(
    mosquitto: MosquittoBroker, subscribe: Callable[..., Subscriber]
) -> None:
    """Leaving the context while run() still runs stops it first, then delivers the rest of the backlog."""
    sub = subscribe(f"{PREFIX}/projects/+/changes")
    await sub.wait(lambda s: len(s.subscribed_at) >= 1)
    async with asyncio.timeout(TEST_TIMEOUT):
        async with make_bridge(mosquitto.url) as bridge:
            task = asyncio.create_task(bridge.run(), name="syncd.mqtt")
            await until(lambda: bridge.connected)
            for seq in range(1, 4):
                bridge.publish_change(P, change(seq))
            # No await between queueing and leaving: run() has had no chance to send anything.
        assert task.cancelled()
        assert bridge.backlog_depth() == 0
        await sub.wait(lambda s: len(s.messages) >= 3)
    assert sub.payloads() == [change(seq) for seq in range(1, 4)]


@integration
async def test_leaving_the_context_with_broker_down_reports_the_loss(
    mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """When the backlog cannot be delivered on the way out, the bridge says how many messages are lost."""
    mosquitto.stop()
    with caplog.at_level(logging.INFO, logger="syncd.adapters.mqtt"):
        async with asyncio.timeout(TEST_TIMEOUT), make_bridge(mosquitto.url) as bridge:
            bridge.publish_change(P, change(1))
            bridge.publish_change(P, change(2))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "2 MQTT messages" in errors[0]


# -- events ------------------------------------------------------------------------------------


@integration
async def test_event_reaches_on_event(mosquitto: MosquittoBroker) -> None:
    """A JSON object published on .../events/render.progress reaches on_event with the parsed data."""
    events = Events()
    async with asyncio.timeout(TEST_TIMEOUT), running(make_bridge(mosquitto.url, events)) as bridge:
        await until(lambda: bridge.connected)
        data = {"clip_id": "c1", "progress": 0.5, "stage": "encode"}
        await asyncio.to_thread(
            mosquitto_pub,
            mosquitto,
            f"{PREFIX}/projects/{P}/events/render.progress",
            json.dumps(data).encode(),
        )
        await until(lambda: len(events.received) >= 1)
    assert events.received == [(P, "render.progress", data)]


@integration
async def test_bad_event_payloads_are_dropped_and_the_bridge_keeps_going(
    mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Events that are not JSON objects, or whose handler fails, are logged and dropped; later ones arrive."""
    events = Events()
    topic = f"{PREFIX}/projects/{P}/events"
    # NaN, Infinity and a lone surrogate decode, but no editor's frame could carry them.
    bad = [
        b"not json",
        b"[1, 2]",
        b"\xff\xfe{",
        b"",
        b"42",
        b'{"p": NaN}',
        b'{"p": -Infinity}',
        b'{"p": "\\ud800"}',
        b'{"p": "' + b"x" * 64 * 1024 + b'"}',
    ]
    with caplog.at_level(logging.INFO, logger="syncd.adapters.mqtt"):
        async with asyncio.timeout(TEST_TIMEOUT), running(make_bridge(mosquitto.url, events)) as bridge:
            await until(lambda: bridge.connected)
            for payload in bad:
                await asyncio.to_thread(mosquitto_pub, mosquitto, f"{topic}/render.progress", payload)
            await asyncio.to_thread(mosquitto_pub, mosquitto, f"{topic}/explode", b"{}")
            # The subscription's trailing # also matches .../events itself, which names no event.
            await asyncio.to_thread(mosquitto_pub, mosquitto, topic, b"{}")
            await asyncio.to_thread(mosquitto_pub, mosquitto, f"{topic}/render/done", b'{"clip_id": "c2"}')
            await until(lambda: len(events.received) >= 1)
            assert bridge.connected
    assert events.received == [(P, "render/done", {"clip_id": "c2"})]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(bad) + 1
    assert all("dropped MQTT event render.progress" in w for w in warnings[: len(bad)])
    assert "unexpected topic" in warnings[-1]
    assert warnings[5].endswith(
        f"project {P}: payload.p: not a finite number (NaN, Infinity and numbers beyond "
        "a double's range are not JSON)"
    )
    assert "payload.p: text holds a lone UTF-16 surrogate" in warnings[7]
    assert warnings[8].endswith(f"project {P}: payload of 65545 bytes is over mqtt.max_event_bytes (65536)")
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert failures[0].exc_info is not None


@integration
async def test_retained_events_are_ignored(mosquitto: MosquittoBroker) -> None:
    """A retained event, stale by the time the bridge subscribes, is not relayed."""
    events = Events()
    topic = f"{PREFIX}/projects/{P}/events/render.progress"
    await asyncio.to_thread(mosquitto_pub, mosquitto, topic, b'{"progress": 0.1}', retain=True)
    async with asyncio.timeout(TEST_TIMEOUT), running(make_bridge(mosquitto.url, events)) as bridge:
        await until(lambda: bridge.connected)
        await asyncio.to_thread(mosquitto_pub, mosquitto, topic, b'{"progress": 0.9}')
        # The broker sends retained messages right after the subscription, so before this one.
        await until(lambda: len(events.received) >= 1)
    assert events.received == [(P, "render.progress", {"progress": 0.9})]


@integration
async def test_events_resume_after_broker_restart(
    mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """The bridge subscribes again after a reconnect, so events keep arriving."""
    events = Events()
    topic = f"{PREFIX}/projects/{P}/events/render.progress"
    with caplog.at_level(logging.INFO, logger="syncd.adapters.mqtt"):
        async with asyncio.timeout(TEST_TIMEOUT), running(make_bridge(mosquitto.url, events)) as bridge:
            await until(lambda: bridge.connected)
            await asyncio.to_thread(mosquitto.restart)
            # The loss is logged after the flag drops, so connected from then on means the new session.
            await until(lambda: "lost MQTT broker" in caplog.text)
            await until(lambda: bridge.connected)
            await asyncio.to_thread(mosquitto_pub, mosquitto, topic, b'{"progress": 1.0}')
            await until(lambda: len(events.received) >= 1)
    assert events.received == [(P, "render.progress", {"progress": 1.0})]


# -- connection and security -------------------------------------------------------------------


@integration
async def test_credentials_are_sent_but_never_logged(
    mosquitto: MosquittoBroker, subscribe: Callable[..., Subscriber], caplog: pytest.LogCaptureFixture
) -> None:
    """With a username and password the bridge connects and no log line, even at DEBUG, holds the password."""
    secret = "hunter2-never-log-me"
    sub = subscribe(f"{PREFIX}/projects/+/changes")
    await sub.wait(lambda s: len(s.subscribed_at) >= 1)
    with caplog.at_level(logging.DEBUG):
        bridge = make_bridge(mosquitto.url, username="syncd", password=SecretStr(secret))
        async with asyncio.timeout(TEST_TIMEOUT), running(bridge):
            bridge.publish_change(P, change(1))
            await sub.wait(lambda s: len(s.messages) >= 1)
        await asyncio.to_thread(mosquitto.stop)
        async with asyncio.timeout(TEST_TIMEOUT), running(bridge):
            await until(lambda: "cannot reach MQTT broker" in caplog.text)  # failed attempts are logged too
    assert any("connected to MQTT broker" in r.getMessage() for r in caplog.records)
    assert any("cannot reach MQTT broker" in r.getMessage() for r in caplog.records)
    assert secret not in caplog.text
    assert all(secret not in repr(r.args) for r in caplog.records)


@pytest.fixture
def refusing_broker() -> Iterator[int]:
    """A TCP server on loopback that answers every MQTT CONNECT with 'not authorised' (CONNACK code 5)."""
    server = socket.create_server((LOOPBACK, 0))
    port: int = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(WAIT)
                conn.recv(1024)  # the CONNECT packet
                conn.sendall(bytes([0x20, 0x02, 0x00, 0x05]))
                with contextlib.suppress(OSError):
                    conn.recv(1024)  # until the client hangs up

    thread = threading.Thread(target=serve, name="refusing broker", daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


async def test_refused_credentials_stop_the_bridge(refusing_broker: int) -> None:
    """A broker that refuses the credentials makes run() raise UpstreamError instead of retrying forever."""
    bridge = make_bridge(
        f"mqtt://{LOOPBACK}:{refusing_broker}", username="syncd", password=SecretStr("wrong")
    )
    async with asyncio.timeout(TEST_TIMEOUT):
        with pytest.raises(UpstreamError, match="refused") as raised:
            await bridge.run()
    assert "wrong" not in str(raised.value)
    assert not bridge.connected


# -- TLS ---------------------------------------------------------------------------------------


def _write_ca_and_server_cert(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """Create a CA, and a certificate for 127.0.0.1 signed by it; return the CA file and a server context."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syncd test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file = folder / "server.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = folder / "server.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    return ca_file, server_context


@contextlib.asynccontextmanager
async def tls_terminator(context: ssl.SSLContext, upstream_port: int) -> AsyncIterator[int]:
    """A TLS endpoint on loopback that forwards the decrypted bytes to the plain broker; yields its port."""
    pipes: set[asyncio.Task[None]] = set()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(LOOPBACK, upstream_port)
        for task in (
            asyncio.create_task(pump(reader, up_writer)),
            asyncio.create_task(pump(up_reader, writer)),
        ):
            pipes.add(task)
            task.add_done_callback(pipes.discard)

    server = await asyncio.start_server(handle, LOOPBACK, 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(pipes):
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        await server.wait_closed()


@integration
async def test_mqtts_verifies_the_broker_with_ca_file(
    mosquitto: MosquittoBroker, subscribe: Callable[..., Subscriber], tmp_path: Path
) -> None:
    """With mqtts:// and ca_file the bridge connects over TLS to a broker whose certificate that CA signed."""
    ca_file, server_context = _write_ca_and_server_cert(tmp_path)
    sub = subscribe(f"{PREFIX}/projects/+/changes")
    await sub.wait(lambda s: len(s.subscribed_at) >= 1)
    async with asyncio.timeout(TEST_TIMEOUT), tls_terminator(server_context, mosquitto.port) as port:
        bridge = make_bridge(f"mqtts://{LOOPBACK}:{port}", ca_file=ca_file)
        async with running(bridge):
            bridge.publish_change(P, change(1))
            await sub.wait(lambda s: len(s.messages) >= 1)
            await until(lambda: bridge.backlog_depth() == 0)
    assert sub.payloads() == [change(1)]


@integration
# paho leaves the socket of a failed TLS handshake to the garbage collector (Client._ssl_wrap_socket).
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
async def test_mqtts_refuses_a_broker_the_ca_did_not_sign(
    mosquitto: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker certificate from another CA is refused: the bridge never connects and keeps the message."""
    _, server_context = _write_ca_and_server_cert(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _ = _write_ca_and_server_cert(other)
    with caplog.at_level(logging.INFO, logger="syncd.adapters.mqtt"):
        async with asyncio.timeout(TEST_TIMEOUT), tls_terminator(server_context, mosquitto.port) as port:
            bridge = make_bridge(f"mqtts://{LOOPBACK}:{port}", ca_file=other_ca)
            async with running(bridge):
                bridge.publish_change(P, change(1))
                await until(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text)
                assert not bridge.connected
                assert bridge.backlog_depth() == 1
    gc.collect()  # collect paho's leaked sockets while the warning filter above still applies


# -- settings and caller errors (no broker) ----------------------------------------------------


def test_settings_that_cannot_work_are_warned_about(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """A password without a user name, or a CA file for an unencrypted URL, gets a warning at start."""
    with caplog.at_level(logging.WARNING, logger="syncd.adapters.mqtt"):
        make_bridge("mqtt://broker.example", password=SecretStr("pw-value"), ca_file=tmp_path / "ca.pem")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "password is unused" in warnings[0]
    assert "not encrypted" in warnings[1]
    assert "pw-value" not in caplog.text


def test_missing_url_is_refused() -> None:
    """A bridge needs mqtt.url."""
    with pytest.raises(ConfigError, match=r"mqtt\.url"):
        MqttBridge(MqttSettings(), on_event=Events())


def test_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    """An mqtts:// URL with a CA file that cannot be loaded fails at construction, naming the file."""
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=r"mqtt\.ca_file"):
        make_bridge("mqtts://broker.example", ca_file=missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"garbage\.pem"):
        make_bridge("mqtts://broker.example", ca_file=garbage)


@pytest.mark.parametrize("project_id", ["", "a/b", "+", "#", "x\0y"])
def test_project_id_must_be_one_topic_level(project_id: str) -> None:
    """A project id that would change the topic's shape is a caller error."""
    bridge = make_bridge("mqtt://broker.example")
    with pytest.raises(ValueError, match="topic level"):
        bridge.publish_change(project_id, change(1))
    with pytest.raises(ValueError, match="topic level"):
        bridge.publish_saved(project_id, {"seq": 1})
    assert bridge.backlog_depth() == 0


@pytest.mark.parametrize(
    "message",
    [{"seq": 1}, {"epoch": EPOCH}, {"epoch": EPOCH, "seq": "1"}, {"epoch": EPOCH, "seq": True}],
)
def test_change_needs_epoch_and_integer_seq(message: dict[str, Any]) -> None:
    """A change without an epoch or an integer seq is a caller error and is not queued."""
    bridge = make_bridge("mqtt://broker.example")
    with pytest.raises(ValueError, match="epoch and an integer seq"):
        bridge.publish_change(P, message)
    assert bridge.backlog_depth() == 0


async def test_run_refuses_to_run_twice() -> None:
    """A second concurrent run() is a caller error."""
    bridge = make_bridge(f"mqtt://{LOOPBACK}:1")
    task = asyncio.create_task(bridge.run())
    try:
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already running"):
            await bridge.run()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=0x86)),
            False,
        ),  # bad user name or password
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=0x87)), False),  # not authorised
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=0x85)), False),  # client id not valid
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=0x88)), True),  # server unavailable
        (MqttConnectError(4), False),
        (MqttConnectError(3), True),
        (aiomqtt.MqttError("[Errno 111] Connection refused"), True),
        (ConnectionResetError(), True),
        (ValueError("bug"), False),
    ],
)
def test_is_retryable(exc: BaseException, expected: bool) -> None:
    """Refused credentials or identity are final; network trouble and an unavailable broker are retried."""
    assert is_retryable(exc) is expected
