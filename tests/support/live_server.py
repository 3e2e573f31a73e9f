"""Run an ASGI app under a real uvicorn server in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_in(ports: range, start: int = 0) -> int:
    """A port of ``ports`` that can be bound now, trying from ``ports[start]`` round.

    Tests that run real processes take ports from a range of their own, so that two
    suites on one machine (or a process a killed run left behind) do not collide."""
    for i in range(len(ports)):
        port = ports[(start + i) % len(ports)]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


class LiveServer:
    """``with LiveServer(app) as srv: httpx.get(srv.url + "/healthz")``."""

    def __init__(
        self,
        app: Any,
        port: int | None = None,
        startup_timeout: float = 120.0,
        config: uvicorn.Config | None = None,
    ) -> None:
        """``config`` (e.g. ``server.http.protocol.uvicorn_config``) overrides the default."""
        self.port = config.port if config is not None else (port or free_port())
        self.url = f"http://127.0.0.1:{self.port}"
        config = config or uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._timeout = startup_timeout

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn exited during start-up (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start in time")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
