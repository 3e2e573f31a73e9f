"""Listening sockets for several server processes on one port (``kb serve --workers``).

Each worker gets its own socket, bound to the same address with ``SO_REUSEPORT``, and the
kernel spreads new connections over them by a hash of the connection. One socket shared by
every worker would not spread them: the first worker to wake accepts every pending
connection at once (asyncio accepts up to its backlog per wake-up), so 16 clients that
connect together often all land on one process while the other idles (seen here: 16/0 in
three runs of four).

``SO_REUSEPORT`` lets any process of the same user join the group, so before binding the
group :func:`reserve` checks the port is free with an ordinary bind: a server already
listening there (another kb included) makes ``kb serve`` fail with "address in use"
instead of silently sharing its connections.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from core.errors import ConfigError


@dataclass(frozen=True)
class PortGroup:
    """An address whose listening sockets share the incoming connections."""

    family: socket.AddressFamily
    address: tuple[str, int] | tuple[str, int, int, int]

    @property
    def port(self) -> int:
        return int(self.address[1])

    def socket(self) -> socket.socket:
        """A new socket of the group, bound but not yet listening (the caller closes it).

        Its server calls ``listen`` once the app has started (asyncio's ``create_server``
        does): until then the kernel sends it no connections, so none waits on a worker
        that is still loading its model.
        """
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections accepted
        # from a socket that says it is TCP.
        sock = socket.socket(self.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(self.address)
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on {_where(self.address)}: {exc.strerror}") from None
        sock.set_inheritable(True)
        return sock


def _where(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    return f"{host}:{address[1]}"


def reserve(host: str, port: int) -> PortGroup:
    """The group for ``host:port``, once an ordinary bind has shown nobody listens there.

    Port 0 picks a free port (the same one for every socket of the group).
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("http.workers above 1 needs SO_REUSEPORT (Linux, BSD, macOS)")
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    probe = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        bound = probe.getsockname()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    finally:
        probe.close()
    return PortGroup(family, (address[0], bound[1], *address[2:]))


__all__ = ["PortGroup", "reserve"]
