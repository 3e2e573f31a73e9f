"""The sockets `kb serve --workers` shares a port with (server/http/listen.py), on the real
kernel: connections spread over the listening ones only, and a taken port is refused."""

from __future__ import annotations

import socket

import pytest

from core.errors import ConfigError
from server.http.listen import reserve


def _connect_and_close(port: int, count: int) -> None:
    for _ in range(count):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _accept_all(sock: socket.socket) -> int:
    sock.setblocking(False)
    accepted = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return accepted
        conn.close()
        accepted += 1


def test_connections_spread_over_listening_sockets_only() -> None:
    group = reserve("127.0.0.1", 0)
    assert group.port > 0
    first, second, loading = group.socket(), group.socket(), group.socket()
    try:
        assert first.proto == socket.IPPROTO_TCP  # so asyncio sets TCP_NODELAY
        first.listen(64)
        second.listen(64)
        # ``loading`` is bound and not listening, as a worker's socket is until its app
        # has started: the kernel gives it nothing.
        _connect_and_close(group.port, 48)
        a, b = _accept_all(first), _accept_all(second)
        assert a + b == 48
        assert a > 0 and b > 0  # all 48 on one socket: a chance of 2 in 2**48
        with pytest.raises(OSError):
            loading.accept()
        # Once it listens, it takes its share of new connections.
        loading.listen(64)
        _connect_and_close(group.port, 48)
        assert _accept_all(loading) > 0
    finally:
        for sock in (first, second, loading):
            sock.close()


def test_a_port_someone_listens_on_is_refused() -> None:
    other = socket.create_server(("127.0.0.1", 0))
    try:
        with pytest.raises(ConfigError, match="cannot listen on 127.0.0.1"):
            reserve("127.0.0.1", other.getsockname()[1])
    finally:
        other.close()


def test_another_group_on_the_port_is_refused() -> None:
    # Another `kb serve --workers` of the same user: SO_REUSEPORT would let a second group
    # join and take half its connections; the ordinary bind in reserve() refuses it.
    group = reserve("127.0.0.1", 0)
    held = group.socket()
    held.listen(8)
    try:
        with pytest.raises(ConfigError, match="in use"):
            reserve("127.0.0.1", group.port)
    finally:
        held.close()


def test_an_unknown_host_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="cannot listen on no-such-host.invalid:8000"):
        reserve("no-such-host.invalid", 8000)
