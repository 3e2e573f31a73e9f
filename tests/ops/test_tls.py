"""`kb serve --ssl-certfile/--ssl-keyfile`: MCP over HTTPS, verified against a private CA.

A real `kb serve` process serves a certificate issued by a CA made here; an MCP client
that trusts the CA lists tools and searches; clients that do not trust it fail the
handshake, and plain HTTP to the TLS port gets no answer.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from core.errors import ConfigError
from server.ops.tls import tls_files
from tests.support.live_server import free_port
from tests.support.server_process import KB, REPO, server_env


@dataclass
class PKI:
    ca: Path
    cert: Path
    key: Path
    other_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """A CA and a server certificate for localhost and 127.0.0.1 that it signed."""
    d = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("kb test CA"))
        .issuer_name(_name("kb test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = PKI(d / "ca.pem", d / "server.pem", d / "server.key", d / "other.key")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pki.key)
    _write_key(ec.generate_private_key(ec.SECP256R1()), pki.other_key)
    return pki


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def https_server(
    pki: PKI, fresh_database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    workers: int = request.param
    port = free_port()
    env = server_env(fresh_database, tmp_path, KB_AUTH__MODE="none", KB_MCP__STATELESS_HTTP="true")
    log = tmp_path / "serve.log"
    cmd = [str(KB), "serve", "--port", str(port), "--ssl-certfile", str(pki.cert)]
    cmd += ["--ssl-keyfile", str(pki.key), "--workers", str(workers)]
    url = f"https://127.0.0.1:{port}"
    trusting = ssl.create_default_context(cafile=str(pki.ca))
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while True:
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                try:
                    # Every worker serves TLS once the parent has announced them all.
                    up = httpx.get(f"{url}/healthz", verify=trusting, timeout=2).is_success
                    if up and f"serving {url}" in log.read_text():
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
            yield url, proc, log
        finally:
            proc.terminate()
            proc.wait(timeout=30)


async def _mcp(url: str, verify: ssl.SSLContext | bool) -> tuple[list[str], bool]:
    timeout = httpx2.Timeout(30, read=300)
    async with httpx2.AsyncClient(verify=verify, timeout=timeout) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, cache=None) as client:
            tools = await client.list_tools()
            result = await client.call_tool("search", {"query": "backups"})
    return sorted(t.name for t in tools.tools), bool(result.is_error)


def test_mcp_over_https_verified_against_the_ca(
    https_server: tuple[str, subprocess.Popen[bytes], Path], pki: PKI
) -> None:
    url, _, log = https_server
    trusting = ssl.create_default_context(cafile=str(pki.ca))
    tools, search_failed = anyio.run(_mcp, url, trusting)
    assert "search" in tools and "fetch" in tools
    assert not search_failed
    # The advertised URL names the scheme served.
    assert f"serving {url}" in log.read_text()

    # Without the CA (the system store only) the certificate does not verify.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/healthz", timeout=5)
    with pytest.raises(Exception) as raised:
        anyio.run(_mcp, url, ssl.create_default_context())
    assert "CERTIFICATE_VERIFY_FAILED" in repr(raised.value) + str(raised.value.__cause__)
    # Plain HTTP on the TLS port is not served.
    with pytest.raises(httpx.HTTPError):
        httpx.get(url.replace("https://", "http://") + "/healthz", timeout=5)


def test_certificate_and_key_are_checked_before_anything_starts(pki: PKI, tmp_path: Path) -> None:
    assert tls_files(None, None) is None
    with pytest.raises(ConfigError, match="give both"):
        tls_files(pki.cert, None)
    with pytest.raises(ConfigError, match="does not exist"):
        tls_files(pki.cert, tmp_path / "missing.key")
    with pytest.raises(ConfigError, match="cannot load the TLS certificate"):
        tls_files(pki.cert, pki.other_key)  # a key that is not the certificate's
    # Through the command: one line, exit 2, before any database or model work.
    env = server_env("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    done = subprocess.run(
        [str(KB), "serve", "--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.other_key)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "cannot load the TLS certificate" in done.stderr and "Traceback" not in done.stderr
