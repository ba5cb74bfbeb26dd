"""MqttBridge: relays project changes to an MQTT broker and events from other services back to the daemon.

Topics, under ``mqtt.topic_prefix`` (``omegaframe/v1`` by default)::

    {prefix}/projects/{project_id}/changes          out: every change, in seq order, and resync notices
    {prefix}/projects/{project_id}/saved            out: "every change up to seq is in the database"
    {prefix}/projects/{project_id}/events/{topic}   in: transient notices (render.progress, ...)

Delivery out is at least once. A message waits in an ordered, bounded backlog until the broker has
acknowledged it (PUBACK for QoS 1), so a message interrupted by a lost connection is sent again after the
reconnect; consumers drop duplicates by ``(epoch, seq)``. When the broker stays away so long that the
backlog fills up, the oldest messages are dropped, and each project whose changes were dropped gets a
resync notice in their place::

    {"op": "resync", "epoch": "...", "seq": 41, "reason": "backlog overflow"}

which tells a consumer that the changes up to ``seq`` 41 are gone and that it must re-read the project;
the next change it sees has ``seq`` 42.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import random
import ssl
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

from syncd.config import MqttSettings
from syncd.core.backoff import Backoff
from syncd.errors import ConfigError, FieldError, UpstreamError
from syncd.rows import check_json

logger = logging.getLogger(__name__)

EventHandler = Callable[[str, str, dict[str, Any]], None]
"""Receives ``(project_id, topic, data)`` for each event message; ``topic`` is the part after ``events/``."""

PUBLISH_WINDOW = 64
"""Messages sent to the broker and not yet acknowledged, at most; more would only queue inside paho."""

KEEPALIVE = 30
"""Seconds between MQTT pings; a broker that vanishes without closing the socket is noticed in 1.5x this."""

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the broker's CONNACK and SUBACK."""

RESYNC_REASON = "backlog overflow"

_FATAL_CONNACK_CODES = frozenset({1, 2, 4, 5})
"""MQTT 3.1.1 CONNACK codes that retrying cannot fix: protocol, client id, credentials, authorisation."""

_FATAL_REASON_CODES = frozenset({0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C})
"""The same refusals as MQTT 5 reason codes (paho reports 3.1.1 refusals in this form too), plus banned."""


def is_retryable(exc: BaseException) -> bool:
    """Whether connecting again may succeed after ``exc``.

    Network trouble, timeouts and a broker that is unavailable are retried. A broker that refuses the
    client's credentials, identity or protocol will refuse it again: that is a configuration error.
    """
    if isinstance(exc, MqttConnectError):
        rc = exc.rc
        if isinstance(rc, ReasonCode):
            return rc.value not in _FATAL_REASON_CODES
        if isinstance(rc, int):
            return rc not in _FATAL_CONNACK_CODES
    return isinstance(exc, aiomqtt.MqttError | OSError)


Kind = Literal["change", "saved", "resync"]
"""What a backlog entry carries: a change, a saved notice, or a resync notice in place of dropped changes."""


@dataclass(slots=True, eq=False)
class _Entry:
    kind: Kind
    project_id: str
    topic: str
    body: bytes
    epoch: Any = None
    seq: int = 0
    sent_on: int = -1
    """The session in which the entry was handed to the client; equal to the current one means in flight."""

    def payload(self) -> bytes:
        if self.kind == "resync":
            # Built when sent, because more dropped changes may extend the notice until then.
            notice = {"op": "resync", "epoch": self.epoch, "seq": self.seq, "reason": RESYNC_REASON}
            return _encode(notice)
        return self.body


def _encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _first_leaf(group: BaseExceptionGroup[aiomqtt.MqttError]) -> aiomqtt.MqttError:
    first = group.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


class MqttBridge:
    """Publishes changes and saved notices to MQTT and hands incoming events to the daemon.

    ``async with bridge:`` returns at once, whether the broker is up or not; :meth:`run`, started by the
    daemon as a task, connects, reconnects with backoff and moves messages both ways. Leaving the context
    stops :meth:`run` if it still runs, then tries for ``drain_timeout`` seconds to deliver what is still in
    the backlog.

    Args:
        settings: the ``[mqtt]`` settings; ``url`` must be set.
        on_event: called with ``(project_id, topic, data)`` for each event whose payload is a JSON object.
        reconnect_initial_delay: seconds before the first reconnect; doubles after each failure.
        reconnect_max_delay: the longest wait between two connection attempts, in seconds.
        drain_timeout: seconds that leaving the context may spend delivering the backlog.

    Raises:
        ConfigError: no URL, or a CA file that cannot be loaded.
        ValueError: reconnect delays that are not positive or not in order.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        on_event: EventHandler,
        reconnect_initial_delay: float = 1.0,
        reconnect_max_delay: float = 30.0,
        drain_timeout: float = 5.0,
    ) -> None:
        if settings.url is None:
            raise ConfigError("mqtt.url is not set, so there is no broker to bridge to")
        parts = urlsplit(settings.url)  # without credentials: the settings refuse them
        if settings.password is not None and settings.username is None:
            logger.warning(
                "mqtt.password is set but mqtt.username is not; MQTT needs both, the password is unused"
            )
        tls = parts.scheme == "mqtts"
        if settings.ca_file is not None and not tls:
            logger.warning(
                "mqtt.ca_file is set but mqtt.url is not mqtts://; the connection is not encrypted"
            )
        assert parts.hostname is not None  # the settings validator requires a host
        self._host = parts.hostname
        self._port = parts.port or (8883 if tls else 1883)
        self._where = f"{self._host}:{self._port}"
        self._tls_context = _tls_context(settings.ca_file) if tls else None
        self._settings = settings
        self._on_event = on_event
        self._prefix = settings.topic_prefix.rstrip("/")
        self._events_filter = f"{self._prefix}/projects/+/events/#"
        self._client_id = settings.client_id or f"syncd-{uuid.uuid4().hex[:12]}"
        # Jitter spreads the reconnects of many daemons after a broker restart.
        self._backoff = Backoff(reconnect_initial_delay, reconnect_max_delay, jitter=random.random)
        self._drain_timeout = drain_timeout
        self._bound = settings.backlog

        self._backlog: OrderedDict[int, _Entry] = OrderedDict()
        self._keys = itertools.count()
        self._data_count = 0  # changes and saved notices in the backlog; resync notices are extra
        self._unsent: deque[int] = deque()  # keys not yet handed to the client in this session
        self._in_session = False  # whether a connection is up (from CONNACK to its end)
        self._open_resync: dict[str, int] = {}  # project -> key of its newest resync notice
        self._wake = asyncio.Event()
        self._session = 0
        self._connected = False
        self._connected_once = False  # whether the latest connection attempt got through
        self._run_task: asyncio.Task[Any] | None = None
        self._overflowing = False
        self._dropped = 0
        self._in_flight = 0
        self._paho_logger = logging.getLogger(f"{__name__}.paho")

    # -- the daemon's interface -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the bridge has a live broker connection with its event subscription in place."""
        return self._connected

    @property
    def dropped_messages(self) -> int:
        """Messages dropped from a full backlog since start (each project got a resync notice)."""
        return self._dropped

    def backlog_depth(self) -> int:
        """Messages waiting for the broker's acknowledgement, resync notices included."""
        return len(self._backlog)

    def in_flight(self) -> int:
        """Messages of the backlog sent on the current connection and not yet acknowledged."""
        return self._in_flight

    def publish_change(self, project_id: str, message: Mapping[str, Any]) -> None:
        """Queue one change for ``{prefix}/projects/{project_id}/changes``; never blocks.

        Args:
            project_id: the project the change belongs to.
            message: the change as the daemon sends it to editors, with ``epoch`` and an integer ``seq``.

        Raises:
            ValueError: a project id that cannot be a topic level, a message without ``epoch`` or ``seq``,
                or one that is not JSON; all bugs in the caller.
        """
        topic = self._project_topic(project_id, "changes")
        seq = message.get("seq")
        if "epoch" not in message or not isinstance(seq, int) or isinstance(seq, bool):
            raise ValueError("a change message needs an epoch and an integer seq")
        self._append(_Entry("change", project_id, topic, _encode(message), message["epoch"], seq))

    def publish_saved(self, project_id: str, message: Mapping[str, Any]) -> None:
        """Queue one saved notice for ``{prefix}/projects/{project_id}/saved``; never blocks.

        Raises:
            ValueError: a project id that cannot be a topic level, or a message that is not JSON.
        """
        topic = self._project_topic(project_id, "saved")
        self._append(_Entry("saved", project_id, topic, _encode(message)))

    async def __aenter__(self) -> MqttBridge:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._run_task
        if task is not None and not task.done():
            # Leaving the context ends the bridge, whether or not the caller stopped run() first.
            task.cancel()
            await asyncio.wait({task})
        if not self._backlog:
            return
        logger.info("delivering %d MQTT messages before stopping", len(self._backlog))
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self._connect_and_serve(drain=True)
        except (TimeoutError, aiomqtt.MqttError) as err:
            logger.debug("MQTT drain ended early: %s", err)
        if self._backlog:
            logger.error(
                "stopped with %d MQTT messages that broker %s never acknowledged; they are lost",
                len(self._backlog),
                self._where,
            )

    async def run(self) -> None:
        """Keep a broker connection: publish the backlog, relay events, reconnect with backoff.

        Runs until cancelled.

        Raises:
            UpstreamError: the broker refused the credentials or the client id; retrying cannot help.
            RuntimeError: :meth:`run` is already running.
        """
        if self._run_task is not None:
            raise RuntimeError("MqttBridge.run() is already running")
        self._run_task = asyncio.current_task()
        delays = self._backoff
        delays.reset()
        failures = 0
        try:
            while True:
                reason = "connection closed"
                try:
                    await self._connect_and_serve(drain=False)
                except aiomqtt.MqttError as err:
                    if not self._connected_once and not is_retryable(err):
                        raise UpstreamError(f"MQTT broker {self._where} refused syncd: {err}") from err
                    # aiomqtt's own message for a lost connection is generic; the cause says what happened.
                    reason = str(err.__cause__ or err) or type(err).__name__
                if self._connected_once:
                    # The backoff starts over after a connection that worked.
                    delays.reset()
                    failures = 0
                    delay = delays.next_delay()
                    logger.info(
                        "lost MQTT broker %s (%s); reconnecting in %.3g s", self._where, reason, delay
                    )
                else:
                    failures += 1
                    delay = delays.next_delay()
                    # The first failure in a row is worth a warning; the repeats are routine.
                    level = logging.WARNING if failures == 1 else logging.INFO
                    logger.log(
                        level,
                        "cannot reach MQTT broker %s (%s); retrying in %.3g s",
                        self._where,
                        reason,
                        delay,
                    )
                await asyncio.sleep(delay)
        finally:
            self._run_task = None

    # -- one connection ---------------------------------------------------------------------------

    async def _connect_and_serve(self, *, drain: bool) -> None:
        """Connect, then publish (and relay events unless ``drain``) until the connection ends.

        In drain mode, return once the backlog is empty.

        Raises:
            aiomqtt.MqttError: the connection failed or was lost.
        """
        self._connected_once = False
        client = self._new_client()
        try:
            async with client:
                self._session += 1
                self._unsent = deque(self._backlog)
                self._in_session = True
                try:
                    if not drain:
                        await self._subscribe(client)
                    self._connected = self._connected_once = True
                    logger.info(
                        "connected to MQTT broker %s as %s (%d messages waiting)",
                        self._where,
                        self._client_id,
                        len(self._backlog),
                    )
                    async with asyncio.TaskGroup() as tg:
                        receiver = tg.create_task(self._receive(client), name="syncd.mqtt.receive")
                        await self._send(client, drain=drain)
                        receiver.cancel()
                finally:
                    self._connected = self._in_session = False
                    self._unsent.clear()
                    # Nothing is in flight once the session is over: the next one sends everything again.
                    self._session += 1
        except* aiomqtt.MqttError as group:
            raise _first_leaf(group)  # noqa: B904 (the same exception, out of its group)

    def _new_client(self) -> aiomqtt.Client:
        password = self._settings.password
        client = aiomqtt.Client(
            self._host,
            self._port,
            username=self._settings.username,
            password=password.get_secret_value() if password is not None else None,
            identifier=self._client_id,
            logger=self._paho_logger,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=True,
            keepalive=KEEPALIVE,
            timeout=CONNECT_TIMEOUT,
            tls_context=self._tls_context,
            max_inflight_messages=PUBLISH_WINDOW,
        )
        # aiomqtt warns above this many outstanding calls; a full window is normal here.
        client.pending_calls_threshold = PUBLISH_WINDOW + 8
        return client

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        granted = await client.subscribe(self._events_filter, qos=1)
        if any(_refused(code) for code in granted):
            logger.error(
                "MQTT broker %s refused the subscription to %s: events from other services will not arrive",
                self._where,
                self._events_filter,
            )

    async def _send(self, client: aiomqtt.Client, *, drain: bool) -> None:
        window = asyncio.Semaphore(PUBLISH_WINDOW)
        async with asyncio.TaskGroup() as tg:
            while True:
                key = self._take_unsent()
                if key is None:
                    if drain and not self._backlog:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await window.acquire()
                # While we waited for the window the entry may have been dropped or replaced.
                entry = self._backlog.get(key)
                if entry is None:
                    window.release()
                    continue
                entry.sent_on = self._session
                self._in_flight += 1
                # Tasks start in creation order, so the client gets the messages in backlog order.
                tg.create_task(self._publish(client, key, entry, window), name="syncd.mqtt.publish")

    def _take_unsent(self) -> int | None:
        while self._unsent:
            key = self._unsent.popleft()
            if key in self._backlog:
                return key
        return None

    async def _publish(
        self, client: aiomqtt.Client, key: int, entry: _Entry, window: asyncio.Semaphore
    ) -> None:
        try:
            # No timeout: a lost connection ends the session, which cancels this wait.
            await client.publish(entry.topic, entry.payload(), qos=self._settings.qos, timeout=math.inf)
        finally:
            window.release()
            self._in_flight -= 1
        self._acknowledged(key, entry)

    async def _receive(self, client: aiomqtt.Client) -> None:
        # Also the session's watchdog: the iterator raises MqttError when the connection drops.
        async for message in client.messages:
            self._receive_event(message)

    # -- events -----------------------------------------------------------------------------------

    def _receive_event(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        if message.retain:
            # Events are transient; a retained one is stale news from before we subscribed.
            logger.debug("ignored retained MQTT event on %s", topic)
            return
        parsed = self._parse_event_topic(topic)
        if parsed is None:
            logger.warning("ignored MQTT message on unexpected topic %s", topic)
            return
        project_id, event = parsed
        payload = message.payload
        size = len(payload) if isinstance(payload, bytes | bytearray | str) else 0
        if size > self._settings.max_event_bytes:
            # Every editor of the project would be sent it: a notice is small, a file goes to Storage.
            logger.warning(
                "dropped MQTT event %s for project %s: payload of %d bytes is over mqtt.max_event_bytes (%d)",
                event,
                project_id,
                size,
                self._settings.max_event_bytes,
            )
            return
        try:
            if not isinstance(payload, bytes | bytearray | str):
                raise ValueError("not a JSON object")
            data = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            logger.warning(
                "dropped MQTT event %s for project %s: payload is not JSON (%s)", event, project_id, exc
            )
            return
        if not isinstance(data, dict):
            logger.warning(
                "dropped MQTT event %s for project %s: payload is JSON %s, not an object",
                event,
                project_id,
                type(data).__name__,
            )
            return
        try:
            # NaN or a lone surrogate decodes, but no editor's frame can carry it.
            check_json(data, "payload")
        except FieldError as exc:
            logger.warning("dropped MQTT event %s for project %s: %s", event, project_id, exc.message)
            return
        try:
            self._on_event(project_id, event, data)
        except Exception:
            # One bad event must not end the subscription for all the others.
            logger.exception("the handler of MQTT event %s for project %s failed", event, project_id)

    def _parse_event_topic(self, topic: str) -> tuple[str, str] | None:
        head = f"{self._prefix}/projects/"
        if not topic.startswith(head):
            return None
        project_id, sep, rest = topic[len(head) :].partition("/events/")
        if not sep or not project_id or "/" in project_id or not rest:
            return None
        return project_id, rest

    # -- the backlog ------------------------------------------------------------------------------

    def _project_topic(self, project_id: str, leaf: str) -> str:
        if not project_id or any(c in project_id for c in "/+#\0"):
            raise ValueError(f"project id {project_id!r} cannot be an MQTT topic level")
        return f"{self._prefix}/projects/{project_id}/{leaf}"

    def _append(self, entry: _Entry) -> None:
        key = next(self._keys)
        self._backlog[key] = entry
        self._data_count += 1
        if self._in_session:
            # Between sessions there is no queue to feed: the next session starts from the backlog.
            self._unsent.append(key)
            if len(self._unsent) > 2 * self._bound + PUBLISH_WINDOW:
                # A stalled connection would otherwise pile up the keys of messages dropped since.
                self._unsent = deque(k for k in self._unsent if k in self._backlog)
        while self._data_count > self._bound:
            self._drop_oldest()
        self._wake.set()

    def _drop_oldest(self) -> None:
        """Drop the oldest change or saved notice that is not in flight; a change leaves a resync notice."""
        for key, victim in self._backlog.items():  # noqa: B007 (used after the break)
            if victim.kind != "resync" and victim.sent_on != self._session:
                break
        else:  # pragma: no cover - the newest entry is never in flight, so the loop always breaks
            raise AssertionError("backlog over its bound with every message in flight")
        self._data_count -= 1
        self._dropped += 1
        if not self._overflowing:
            self._overflowing = True
            logger.error(
                "MQTT backlog is full (%d messages, broker %s %s): dropping the oldest; "
                "consumers get a resync notice for each project with dropped changes",
                self._bound,
                self._where,
                "connected" if self._connected else "unreachable",
            )
        if victim.kind == "saved":
            # A saved notice only reports progress; the project's next one says at least as much.
            del self._backlog[key]
            return
        notice = self._backlog.get(self._open_resync.get(victim.project_id, -1))
        if (
            notice is not None
            and notice.kind == "resync"
            and notice.sent_on != self._session
            and notice.epoch == victim.epoch
            and notice.seq == victim.seq - 1
        ):
            # The dropped change directly follows the notice's run: extend the run.
            notice.seq = victim.seq
            del self._backlog[key]
            return
        # Take the dropped change's place, so the notice comes before the changes that follow the gap.
        self._backlog[key] = _Entry("resync", victim.project_id, victim.topic, b"", victim.epoch, victim.seq)
        self._open_resync[victim.project_id] = key

    def _acknowledged(self, key: int, entry: _Entry) -> None:
        if self._backlog.get(key) is not entry:
            return
        del self._backlog[key]
        if entry.kind == "resync":
            if self._open_resync.get(entry.project_id) == key:
                del self._open_resync[entry.project_id]
        else:
            self._data_count -= 1
        if self._overflowing and self._data_count <= self._bound // 2:
            self._overflowing = False
            logger.info(
                "MQTT backlog is below half full again; %d messages dropped since start", self._dropped
            )
        self._wake.set()


def _refused(code: int | ReasonCode) -> bool:
    if isinstance(code, ReasonCode):
        return code.is_failure
    return code >= 0x80


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """An SSL context that verifies the broker against ``ca_file``, or the system CAs when it is None."""
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"mqtt.ca_file {ca_file}: cannot load the CA certificates ({exc})") from exc
