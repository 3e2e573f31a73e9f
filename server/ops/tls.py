"""TLS for ``kb serve`` on small installs: uvicorn terminates it with a certificate file.

Large installs terminate TLS at a proxy or load balancer (docs/operations.md). Here the
certificate and key are checked before anything starts, so a wrong path or a key that does
not match the certificate is one clear line instead of a traceback after the database and
the model have been loaded.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError


@dataclass(frozen=True)
class TLSFiles:
    certfile: Path
    keyfile: Path

    def uvicorn_options(self) -> dict[str, str]:
        return {"ssl_certfile": str(self.certfile), "ssl_keyfile": str(self.keyfile)}


def tls_files(certfile: Path | None, keyfile: Path | None) -> TLSFiles | None:
    """Both files, checked (they load as a matching pair), or neither; else ConfigError."""
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise ConfigError("--ssl-certfile and --ssl-keyfile go together: give both or neither")
    for path in (certfile, keyfile):
        if not path.is_file():
            raise ConfigError(f"TLS file {path} does not exist or is not a file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"cannot load the TLS certificate {certfile} with key {keyfile}: {exc}"
        ) from None
    return TLSFiles(certfile.resolve(), keyfile.resolve())


__all__ = ["TLSFiles", "tls_files"]
