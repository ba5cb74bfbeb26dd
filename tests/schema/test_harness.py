"""The ephemeral servers of the test stack: PostgreSQL with logical decoding, and Mosquitto."""

from __future__ import annotations

import json

import aiomqtt
import asyncpg
import pytest

from tests.support.mosquitto import MosquittoBroker
from tests.support.ports import accepts_connections
from tests.support.postgres import PostgresError, PostgresServer, unique_database_name


async def test_server_runs_with_logical_decoding_settings(supabase_db: str) -> None:
    """The cluster listens on loopback with wal_level=logical, replication slots and synchronous commits."""
    conn = await asyncpg.connect(supabase_db)
    try:
        settings = {
            name: await conn.fetchval(f"show {name}")
            for name in ("wal_level", "max_replication_slots", "max_wal_senders", "synchronous_commit")
        }
        assert settings == {
            "wal_level": "logical",
            "max_replication_slots": "20",
            "max_wal_senders": "20",
            "synchronous_commit": "on",
        }
        assert await conn.fetchval("show listen_addresses") == "127.0.0.1"
    finally:
        await conn.close()


async def test_wal2json_decodes_a_committed_change(supabase_db: str) -> None:
    """A wal2json slot sees an insert into projects with its full row once it is committed."""
    conn = await asyncpg.connect(supabase_db)
    try:
        await conn.execute("select pg_create_logical_replication_slot('harness', 'wal2json')")
        try:
            project = await conn.fetchval(
                "insert into public.projects (title) values ('decoded') returning id"
            )
            changes = await conn.fetch(
                "select data from pg_logical_slot_get_changes('harness', null, null, 'format-version', '2')"
            )
        finally:
            await conn.execute("select pg_drop_replication_slot('harness')")
    finally:
        await conn.close()
    inserts = [json.loads(row["data"]) for row in changes]
    inserts = [change for change in inserts if change["action"] == "I"]
    assert [change["table"] for change in inserts] == ["projects"]
    columns = {column["name"]: column["value"] for column in inserts[0]["columns"]}
    assert (columns["id"], columns["title"], columns["version"]) == (str(project), "decoded", 1)


def test_psql_reports_the_failing_statement(pg_server: PostgresServer) -> None:
    """A failing statement stops psql and raises PostgresError carrying the server's message."""
    with pytest.raises(PostgresError, match="division by zero"):
        pg_server.psql("postgres", "select 1; select 1 / 0; select 2")


def test_database_names_must_be_plain_identifiers(pg_server: PostgresServer) -> None:
    """create_database refuses names that would need quoting, so nothing can be injected."""
    with pytest.raises(ValueError, match="identifier"):
        pg_server.create_database('x"; drop database postgres; --')


async def test_drop_database_ends_open_connections(pg_server: PostgresServer) -> None:
    """Dropping a database succeeds while a client is still connected to it."""
    name = unique_database_name()
    dsn = pg_server.create_database(name)
    conn = await asyncpg.connect(dsn)
    try:
        pg_server.drop_database(name)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            await conn.fetchval("select 1")
    finally:
        conn.terminate()
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncpg.connect(dsn)


def test_a_server_cleans_up_after_itself() -> None:
    """A stopped server no longer accepts connections and its folder is gone."""
    with PostgresServer() as server:
        port, data_dir = server.port, server.data_dir
        assert accepts_connections(port)
        server.psql("postgres", "create table t (x int)")
    assert not accepts_connections(port)
    assert not data_dir.exists()


async def _round_trip(broker: MosquittoBroker, topic: str) -> bytes:
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"harness-{topic}") as client:
        await client.subscribe(topic, qos=1)
        await client.publish(topic, b"ping", qos=1)
        async for message in client.messages:
            return bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
    raise AssertionError("no message")


async def test_mosquitto_relays_messages_and_restarts_on_the_same_port(mosquitto: MosquittoBroker) -> None:
    """The broker relays a message, and after a restart it serves again at the very same URL."""
    url = mosquitto.url
    assert url == f"mqtt://127.0.0.1:{mosquitto.port}"
    assert await _round_trip(mosquitto, "before") == b"ping"
    mosquitto.restart()
    assert mosquitto.url == url
    assert await _round_trip(mosquitto, "after") == b"ping"
    mosquitto.stop()
    assert not accepts_connections(mosquitto.port)


def test_drop_database_releases_its_replication_slots(pg_server: PostgresServer) -> None:
    """Dropping a database that still has a logical replication slot succeeds and removes the slot."""
    name = unique_database_name()
    pg_server.create_database(name)
    pg_server.psql(name, "select pg_create_logical_replication_slot('leftover_" + name + "', 'wal2json')")
    pg_server.drop_database(name)
    with pytest.raises(PostgresError, match="does not exist"):
        pg_server.psql("postgres", f"select pg_drop_replication_slot('leftover_{name}')")
