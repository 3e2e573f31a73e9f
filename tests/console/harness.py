"""A real `kb serve` and `kb worker` for the console tests and `make screenshots`.

The stack holds a small files source (a handbook shared with engineering), a policy that
lets group:eng read it, an administrator (user:root), a non-admin engineer (alice, whose
token even carries the admin scope) and an API key narrowed to one source.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.live_server import free_port_in
from tests.support.server_process import KB, REPO, ServerProcess, server_env

PORTS = range(18400, 18500)

POLICY = {
    # The reporting key's account is an administrator: only its narrowing refuses it.
    "roles": {"svc:reporting": "role:admin"},
    "rules": [
        {
            "subject": "group:eng",
            "object": "collection:handbook",
            "comment": "engineering reads the handbook",
        }
    ],
}
HANDBOOK = {
    "backups.md": "# Database backups\n\nNightly backups run at 02:30 with pg_dump. "
    "Restores are tested every month on a scratch server.\n",
    "deploy.md": "# Deployment runbook\n\nDeployments go out on Tuesdays after the change "
    "review. Roll back with the previous image tag.\n",
    "oncall.md": "# On-call rota\n\nThe on-call engineer answers pages within fifteen "
    "minutes and writes the incident report.\n",
}


def free_port_in_range(start: int = 0) -> int:
    return free_port_in(PORTS, start)


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    home: Path
    root_token: str
    alice_token: str
    narrowed_key: str
    serve_log: Path
    worker: subprocess.Popen[bytes] | None = None

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.root_token}"},
            timeout=120,
        )


def mint(env: dict[str, str], sub: str, *args: str) -> str:
    done = subprocess.run(
        [str(KB), "token", "mint", "--sub", sub, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def write_docs(folder: Path, docs: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")


@contextmanager
def console_stack(database_url: str, home: Path, port: int | None = None) -> Iterator[Stack]:
    """Serve, run a worker, load the handbook and the policy; stop both on exit."""
    write_docs(home / "handbook", HANDBOOK)
    port = port or free_port_in_range()
    # The port is configuration too: minted tokens name this server as their audience.
    env = server_env(database_url, home, KB_AUTH__MODE="dev", KB_HTTP__PORT=str(port))
    config = {
        "auth": {"mode": "dev", "admin_principals": ["user:root"]},
        "ingest": {"runtime_file_roots": [str(home)], "sync_on_start": "missing"},
        "sources": [
            {
                "name": "handbook",
                "kind": "files",
                "root": str(home / "handbook"),
                "collection": "handbook",
                "description": "Engineering handbook",
            }
        ],
    }
    Path(env["KB_CONFIG"]).write_text(json.dumps(config), encoding="utf-8")
    cmd = [str(KB), "serve", "--port", str(port)]
    worker_log = (home / "worker.log").open("wb")
    with ServerProcess(cmd, env, port, home / "serve.log", timeout=300) as srv:
        worker = subprocess.Popen(
            [str(KB), "worker"], env=env, cwd=REPO, stdout=worker_log, stderr=subprocess.STDOUT
        )
        try:
            root = mint(env, "root", "--admin")
            alice = mint(env, "alice", "-g", "eng", "--admin")
            stack = Stack(srv.url, env, home, root, alice, "", home / "serve.log", worker)
            with stack.admin() as http:
                http.post("/admin/policies/import", json={"policy": POLICY}).raise_for_status()
                key = http.post("/admin/keys", json={"name": "reporting", "sources": ["handbook"]})
                key.raise_for_status()
                stack.narrowed_key = key.json()["secret"]
            yield stack
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)
            worker_log.close()


__all__ = [
    "HANDBOOK",
    "POLICY",
    "Stack",
    "console_stack",
    "free_port_in_range",
    "mint",
    "write_docs",
]
