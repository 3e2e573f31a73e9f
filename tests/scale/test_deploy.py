"""The scale-out deployment files: docker-compose.yml's `replicas` and `read-replica`
profiles (validated by docker-compose 1.29's own `config`) and deploy/nginx/kb.conf (TLS,
validated by Debian's nginx with the example certificate the deployment script makes).
The same nginx file serves real replicas in tests/scale/test_replicas.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.scale.topology import (
    DEPLOY_CONF,
    NGINX,
    REPO,
    make_example_cert,
    render_deploy_conf,
)

PROFILES = ("--profile", "replicas", "--profile", "read-replica")


def compose_config(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KB_", "POSTGRES_")) and k != "DATABASE_URL"
    }
    return subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.yml"), *args, "config"],
        env={**base, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """source -> target of a service's volumes (1.29 prints ``src:target[:mode]``)."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out[str(volume["source"])] = str(volume["target"])
        else:
            source, target = str(volume).split(":")[:2]
            out[source] = target
    return out


def resolved(tmp_path: Path, **env: str) -> dict[str, Any]:
    done = compose_config(tmp_path, *PROFILES, POSTGRES_PASSWORD="pw", **env)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = yaml.safe_load(done.stdout)
    return data


def test_replicas_profile_two_stateless_prod_servers_behind_tls_nginx(tmp_path: Path) -> None:
    services = resolved(tmp_path)["services"]
    assert {"server", "server-2", "lb", "worker", "db-replica"} <= set(services)
    one, two = services["server"], services["server-2"]
    for server in (one, two):
        env = server["environment"]
        assert server["command"] == ["serve", "--no-migrate"]
        assert env["KB_AUTH__MODE"] == "prod" and env["KB_MCP__STATELESS_HTTP"] == "true"
        assert env["DATABASE_URL"] == "postgresql://kb:pw@db:5432/kb"
        assert env["KB_DATABASE__READ_REPLICAS"] == "[]"  # off unless KB_READ_REPLICAS
        assert server["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Each replica its own data directory (locks, caches), one shared database.
    assert one["volumes"] != two["volumes"]
    lb = services["lb"]
    assert lb["profiles"] == ["replicas"] and lb["image"].startswith("nginx:")
    assert [p["target"] for p in lb["ports"]] == [443, 80]
    local = {Path(s).relative_to(REPO).as_posix(): t for s, t in mounts(lb).items()}
    assert local == {
        "deploy/nginx/kb.conf": "/etc/nginx/conf.d/default.conf",
        "deploy/nginx/kb-locations.conf": "/etc/nginx/kb-locations.conf",
        "deploy/nginx/certs": "/etc/nginx/certs",
    }
    # nginx's upstream names exactly the services that run `kb serve`.
    upstream = set(re.findall(r"^\s*server (\S+):8000", DEPLOY_CONF.read_text(), re.M))
    serving = {n for n, s in services.items() if s.get("command", [None])[0] == "serve"}
    assert upstream == serving == {"server", "server-2"}
    # Workers scale with --scale worker=N: no fixed name, no host port.
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == ["worker"]


def test_read_replica_profile_streams_from_the_primary(tmp_path: Path) -> None:
    urls = json.dumps(["postgresql://kb:pw@db-replica:5432/kb"])
    services = resolved(tmp_path, KB_READ_REPLICAS=urls)["services"]
    replica = services["db-replica"]
    assert replica["profiles"] == ["read-replica"]
    assert replica["image"] == services["db"]["image"]
    assert replica["environment"]["PGPASSWORD"] == "pw"
    assert replica["entrypoint"] == ["/replica-entrypoint.sh"]
    assert replica["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("server", "server-2"):
        assert json.loads(services[name]["environment"]["KB_DATABASE__READ_REPLICAS"]) == [
            "postgresql://kb:pw@db-replica:5432/kb"
        ]
    entry = (REPO / "deploy" / "postgres" / "replica-entrypoint.sh").read_text()
    assert "pg_basebackup" in entry and " -R " in entry and "hot_standby=on" in entry
    hba = (REPO / "deploy" / "postgres" / "allow-replication.sh").read_text()
    assert "host replication" in hba
    assert "/docker-entrypoint-initdb.d/allow-replication.sh" in mounts(services["db"]).values()
    assert "/replica-entrypoint.sh" in mounts(replica).values()


def test_profiles_still_need_the_database_password(tmp_path: Path) -> None:
    refused = compose_config(tmp_path, *PROFILES)
    assert refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stderr


def test_deploy_nginx_conf_is_valid_with_the_example_certificate(tmp_path: Path) -> None:
    certs = make_example_cert(tmp_path / "certs")
    assert (certs / "kb.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert (certs / "kb.key").stat().st_mode & 0o077 == 0  # the key is private
    # The committed directory holds no key (its .gitignore keeps them out).
    committed = subprocess.run(
        ["git", "ls-files", "deploy/nginx/certs"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    assert committed == ["deploy/nginx/certs/.gitignore"]
    conf = render_deploy_conf(
        tmp_path / "nginx", https_port=18690, http_port=18691, upstreams=[18692], certs=certs
    )
    checked = subprocess.run(
        [str(NGINX), "-t", "-p", str(tmp_path / "nginx"), "-c", str(conf),
         "-g", f"pid {tmp_path}/nginx.pid;"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
