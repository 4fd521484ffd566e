"""Fixtures for the simulator's own tests: a live SimServer, an API client, a callback receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from simkit import BASE_CONFIG, Api, Receiver

from wechat.sim import SimServer


@pytest.fixture(scope="session")
def shared_server() -> Iterator[SimServer]:
    with SimServer(BASE_CONFIG) as server:
        yield server


@pytest.fixture
def api(shared_server: SimServer) -> Api:
    """The session's simulator, reset to a blank account for each test."""
    shared_server.state.reset()
    return Api(shared_server)


@pytest.fixture
def start_sim() -> Iterator[Callable[..., Api]]:
    """Start a dedicated simulator with config overrides (and `limits=SimLimits(...)`)."""
    servers: list[SimServer] = []

    def start(**overrides: Any) -> Api:
        server = SimServer(replace(BASE_CONFIG, **overrides)).start()
        servers.append(server)
        return Api(server)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.stop()
