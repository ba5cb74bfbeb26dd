"""Fixtures of the cluster-mode tests: a three-node NATS cluster with JetStream, and clients of it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import pytest

from syncd.cluster.connection import connect_nats
from tests.support.nats import NatsCluster

if TYPE_CHECKING:
    from nats.aio.client import Client

ClientFactory = Callable[..., Awaitable["Client"]]
"""``await connect(urls=None, name="test")``: a NATS client of the test cluster."""


@pytest.fixture(scope="module")
def nats_cluster() -> Iterator[NatsCluster]:
    """Three nats-server nodes in one JetStream cluster, shared by the tests of a module.

    Tests that kill a node restart it before they end, so the next test finds all three running.
    """
    with NatsCluster() as cluster:
        yield cluster


@pytest.fixture
async def clients(nats_cluster: NatsCluster) -> AsyncIterator[ClientFactory]:
    """A factory of NATS clients (``await connect(urls)``), all closed after the test."""
    async with AsyncExitStack() as stack:

        async def connect(urls: list[str] | None = None, name: str = "test") -> Client:
            client = await connect_nats(urls or nats_cluster.urls, name)
            stack.push_async_callback(client.close)
            return client

        yield connect


def unique(prefix: str) -> str:
    """A name no other test uses (buckets and streams of one cluster are shared by a module's tests)."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# The Supabase stand-in of the Supabase-mode tests, for the tests that run syncd instances.
from tests.supabase_mode.conftest import stack  # noqa: E402

__all__ = ["ClientFactory", "clients", "nats_cluster", "stack", "unique"]
