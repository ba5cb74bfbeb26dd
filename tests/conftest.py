"""Shared fixtures: one PostgreSQL per session, a cloned Supabase-like database per test, Mosquitto."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest

from tests.support.mosquitto import MosquittoBroker
from tests.support.postgres import (
    TEMPLATE_DB,
    PostgresServer,
    prepare_supabase_database,
    unique_database_name,
)


@pytest.fixture(autouse=True)
def _collect_at_the_end() -> Iterator[None]:
    """Run the collector as each test ends, while its warnings are errors: an unclosed socket or
    transport it left in a reference cycle then fails that test, instead of whichever later test the
    collector happens to run in (whose fixtures have nothing to do with it).

    What outlives the collection (modules, session fixtures, caches) is then frozen, so the next test's
    collection walks only what that test made: walking everything each time cost the suite minutes. The
    price: a frozen object is never collected, so a cycle of a longer-lived fixture that holds a socket
    and is dropped later is not reported at all."""
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Put the root logger's handlers and the levels back after each test.

    A test that runs the command line in process has ``syncd.logs.configure`` replace the root's
    handlers with one writing to that test's captured stderr; left in place, every later log line of
    the worker failed on the closed stream ("--- Logging error ---"), burying real output."""
    root, ours = logging.getLogger(), logging.getLogger("syncd")
    handlers, levels = root.handlers[:], (root.level, ours.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    ours.setLevel(levels[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL 15 with the template database (bootstrap and migrations, no seed) ready."""
    with PostgresServer() as server:
        prepare_supabase_database(server, TEMPLATE_DB)
        yield server


@pytest.fixture
def supabase_db(pg_server: PostgresServer) -> Iterator[str]:
    """The DSN of a fresh database cloned from the template, dropped after the test."""
    name = unique_database_name()
    dsn = pg_server.create_database(name, template=TEMPLATE_DB)
    try:
        yield dsn
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def mosquitto() -> Iterator[MosquittoBroker]:
    """A running Mosquitto broker on a free loopback port."""
    with MosquittoBroker() as broker:
        yield broker
