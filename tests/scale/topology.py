"""Several ``kb serve`` replicas on one database behind a real nginx, for the scale-out tests
and ``python -m bench replicas``.

The pieces are real processes: each replica is ``kb serve`` (its own model, policy snapshot
and listener), nginx 1.22 round-robins over them with the same locations file the
deployment uses (``deploy/nginx/kb-locations.conf``), and callers authenticate like in
production (``auth.mode: prod``): bearer tokens signed by a test issuer whose JWKS every
replica reads, and API keys stored in the database. nginx names the replica that answered
each request in an ``X-Kb-Upstream`` response header (test configuration only), so a
test can prove which replicas served what.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

REPO = Path(__file__).resolve().parents[2]
KB = Path(sys.executable).with_name("kb")
NGINX = Path("/usr/sbin/nginx")
LOCATIONS = REPO / "deploy" / "nginx" / "kb-locations.conf"
UPSTREAM_HEADER = "x-kb-upstream"
ISSUER = "https://idp.scale.example.test/"
ADMIN = "root"


# --------------------------------------------------------------------------- identity
@dataclass
class Issuer:
    """A signing key and its JWKS file: the identity provider every replica trusts."""

    jwks_file: Path
    audience: str
    key: Any = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        self.jwks_file.write_text(json.dumps({"keys": [jwk]}))

    def token(self, sub: str, scope: str = "kb.read", *, key: Any = None) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": self.audience,
            "sub": sub,
            "scope": scope,
            "iat": now,
            "exp": now + 3600,
        }
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid})


# --------------------------------------------------------------------------- nginx
def nginx_conf(root: Path, port: int, upstreams: Sequence[int]) -> str:
    servers = "\n".join(
        # max_fails=0: a replica is never taken out behind the test's back.
        f"        server 127.0.0.1:{p} max_fails=0;"
        for p in upstreams
    )
    temp = "\n".join(
        f"    {kind}_temp_path {root}/temp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format kb '$upstream_addr $status $request_method $request_uri';
    access_log {root}/access.log kb;
{temp}
    upstream kb_servers {{
{servers}
        keepalive 32;
    }}
    upstream kb_console {{
        ip_hash;
{servers}
        keepalive 4;
    }}
    server {{
        listen 127.0.0.1:{port};
        # Test only: which replica answered.
        add_header X-Kb-Upstream $upstream_addr always;
        include {LOCATIONS};
    }}
}}
"""


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{tail(log)}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}:\n{tail(log)}")


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


class Nginx:
    """nginx in the foreground with its own prefix, config and logs under ``root``."""

    def __init__(
        self, root: Path, port: int, upstreams: Sequence[int], conf: Path | None = None
    ) -> None:
        """The test configuration (``nginx_conf``) unless ``conf`` names another one."""
        self.root, self.port = root, port
        self.url = f"http://127.0.0.1:{port}"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / "temp" / kind).mkdir(parents=True, exist_ok=True)
        if conf is None:
            conf = root / "nginx.conf"
            conf.write_text(nginx_conf(root, port, upstreams))
        self.conf = conf
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        check = subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
        with (self.root / "stderr.log").open("wb") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port, 30, self.proc, self.root / "error.log")
        return self

    def command(self, *extra: str) -> list[str]:
        pid = self.root / "nginx.pid"
        return [
            str(NGINX), "-p", str(self.root), "-c", str(self.conf),
            "-g", f"daemon off; pid {pid};", *extra,
        ]  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def access_log(self) -> list[tuple[str, int, str, str]]:
        """(upstream, status, method, uri) per request nginx logged so far."""
        rows = []
        path = self.root / "access.log"
        for line in path.read_text().splitlines() if path.exists() else []:
            upstream, status, method, uri = line.split(" ", 3)
            rows.append((upstream, int(status), method, uri))
        return rows

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


DEPLOY_CONF = REPO / "deploy" / "nginx" / "kb.conf"
MAKE_CERT = REPO / "deploy" / "nginx" / "make-example-cert.sh"


def render_deploy_conf(
    root: Path, *, https_port: int, http_port: int, upstreams: Sequence[int], certs: Path
) -> Path:
    """deploy/nginx/kb.conf made runnable here: the compose service names become local
    replicas, the container paths local files, the ports ours. Returns the main config.

    Every substitution must apply, so a changed deployment file fails loudly instead of
    leaving part of it untested."""
    text = DEPLOY_CONF.read_text()
    replicas = "\n".join(f"    server 127.0.0.1:{p} max_fails=0;" for p in upstreams)
    substitutions = [
        (r"(?m)^    server server:8000 max_fails=0;\n    server server-2:8000 max_fails=0;$",
         replicas),
        (r"(?m)^    listen 80;$", f"    listen 127.0.0.1:{http_port};"),
        (r"(?m)^    listen 443 ssl;$", f"    listen 127.0.0.1:{https_port} ssl;"),
        (r"(?m)^    listen \[::\]:(80|443 ssl);\n", ""),
        (r"/etc/nginx/certs/", f"{certs}/"),
        (r"/etc/nginx/kb-locations\.conf", str(LOCATIONS)),
        (r"/var/log/nginx/access\.log", str(root / "access.log")),
    ]  # fmt: skip
    for pattern, replacement in substitutions:
        text, count = re.subn(pattern, replacement, text)
        if not count:
            raise AssertionError(f"deploy/nginx/kb.conf no longer matches {pattern!r}")
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / "temp" / kind).mkdir(parents=True, exist_ok=True)
    site = root / "kb.conf"
    site.write_text(text)
    temp = "\n".join(
        f"    {kind}_temp_path {root}/temp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = root / "nginx.conf"
    main.write_text(
        f"""worker_processes 1;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
{temp}
    include {site};
}}
"""
    )
    return main


def make_example_cert(directory: Path) -> Path:
    """Run the deployment's certificate script; the directory holding kb.crt and kb.key."""
    subprocess.run(
        ["sh", str(MAKE_CERT), "localhost", str(directory)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory


# --------------------------------------------------------------------------- replicas
def replica_config(
    database_url: str,
    public_url: str,
    issuer: Issuer,
    sources: list[dict[str, Any]],
    home: Path,
) -> dict[str, Any]:
    """The configuration every replica shares (only port and home differ, by environment)."""
    return {
        "home": str(home),
        "log_level": "WARNING",
        "database": {"url": database_url, "pool_size": 4},
        "embedding": {"threads": 1},
        "http": {"public_url": public_url},
        "auth": {
            "mode": "prod",
            "issuer": ISSUER,
            "jwks_file": str(issuer.jwks_file),
            "admin_principals": [f"user:{ADMIN}"],
        },
        "mcp": {"stateless_http": True},
        "sources": sources,
    }


class Replicas:
    """``count`` ``kb serve --no-migrate`` processes on ports ``ports``, started in parallel."""

    def __init__(self, root: Path, config: dict[str, Any], ports: Sequence[int]) -> None:
        self.root, self.ports = root, list(ports)
        root.mkdir(parents=True, exist_ok=True)
        self.config_file = root / "kb.yaml"
        self.config_file.write_text(yaml.safe_dump(config))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.upstreams = [f"127.0.0.1:{p}" for p in self.ports]

    def env(self, index: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
        env.pop("DATABASE_URL", None)
        env.update(
            KB_CONFIG=str(self.config_file),
            KB_HOME=str(self.root / f"home-{index}"),
            KB_HTTP__PORT=str(self.ports[index]),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            PYTHONPATH=str(REPO),
        )
        return env

    def log(self, index: int) -> Path:
        return self.root / f"replica-{index}.log"

    def start(self, timeout: float = 300) -> Replicas:
        for i in range(len(self.ports)):
            with self.log(i).open("wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        [str(KB), "serve", "--no-migrate"],
                        env=self.env(i),
                        cwd=REPO,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        try:
            with ThreadPoolExecutor(len(self.ports)) as pool:
                list(pool.map(lambda i: self._wait_ready(i, timeout), range(len(self.ports))))
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, index: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.ports[index]}/readyz"
        while time.monotonic() < deadline:
            proc = self.procs[index]
            if proc.poll() is not None:
                raise RuntimeError(f"replica {index} exited:\n{tail(self.log(index))}")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"replica {index} not ready in {timeout}s:\n{tail(self.log(index))}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> Replicas:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- clients
@dataclass
class Answered:
    """The replica that answered each of a client's HTTP requests, with its JSON-RPC method."""

    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, upstream)

    @property
    def upstreams(self) -> list[str]:
        return [upstream for _, upstream in self.calls]

    def since(self, mark: int, method: str = "tools/call") -> set[str]:
        """Replicas that answered ``method`` requests after the first ``mark`` requests."""
        return {upstream for m, upstream in self.calls[mark:] if m == method}


def rpc_method(request: Any) -> str:
    """The JSON-RPC method of a request: the 2026-07-28 header, else the body's."""
    named = request.headers.get("mcp-method")
    if named:
        return str(named)
    try:
        body = json.loads(request.content or b"{}")
    except ValueError:
        return "?"
    return str(body.get("method", "?")) if isinstance(body, dict) else "batch"


@asynccontextmanager
async def mcp_client(url: str, credential: str, mode: str) -> AsyncIterator[tuple[Any, Answered]]:
    """An official MCP SDK client through the balancer, recording the replica per response.

    ``mode``: ``"2026-07-28"`` (stateless requests) or ``"legacy"`` (2025-11-25 handshake).
    The SDK may send more than one request per call (``tools/list`` for output schemas), so
    :meth:`Answered.since` counts only the requests of one method.
    """
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    answered = Answered()

    async def record(response: Any) -> None:
        upstream = response.headers.get(UPSTREAM_HEADER, "?")
        answered.calls.append((rpc_method(response.request), upstream))

    headers = {"Authorization": f"Bearer {credential}"}
    async with create_mcp_http_client(headers=headers) as http:
        http.event_hooks = {"request": [], "response": [record]}
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, mode=mode, cache=None) as client:
            yield client, answered


def hit_ids(result: Any) -> list[str]:
    """Document ids of a ``search`` tool result (raises on a tool error)."""
    if result.is_error:
        raise AssertionError(f"search failed: {result.content}")
    content = result.structured_content or {}
    return [str(r["id"]) for r in content.get("results", [])]


async def admin_call(
    url: str, token: str, method: str, path: str, body: Any = None
) -> tuple[Any, str]:
    """One admin REST call through the balancer: (JSON answer, replica that served it)."""
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.request(
            method, f"{url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    if response.status_code >= 300:
        raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
    return response.json(), response.headers.get(UPSTREAM_HEADER, "?")


async def post_mcp(url: str, credential: str, message: dict[str, Any]) -> httpx.Response:
    """One raw JSON-RPC POST to ``/mcp`` through the balancer."""
    headers = {
        "Authorization": f"Bearer {credential}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(timeout=60) as http:
        return await http.post(f"{url}/mcp", json=message, headers=headers)


__all__ = [
    "ADMIN",
    "ISSUER",
    "Answered",
    "Issuer",
    "Nginx",
    "Replicas",
    "admin_call",
    "hit_ids",
    "mcp_client",
    "make_example_cert",
    "nginx_conf",
    "post_mcp",
    "render_deploy_conf",
    "replica_config",
]
