"""Sources added at run time (``kb sources add``, ``POST /admin/sources``) are fenced: only
allow-listed environment variables, files only under configured roots, never the data
directory, and errors that echo no expanded value (issue 9, items 6 and 9)."""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from core.errors import ConnectorError, KBError
from server.embeddings.base import Embedder
from server.ingest import catalog
from server.settings import Settings
from tests.ingest.helpers import live_documents, sync, sync_engine


class Listener:
    """A real TCP socket on 127.0.0.1 that records every connection and byte it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.settimeout(1)
            try:
                self.received += conn.recv(65536)
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    srv = Listener()
    yield srv
    srv.close()


@pytest.fixture
def engine_for(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Any]]:
    engines: list[Engine] = []
    opened: list[Any] = []

    def factory(**overrides: Any) -> tuple[Settings, Engine]:
        settings = make_settings(**overrides)
        ctx = sync_engine(settings)
        opened.append(ctx)
        engine = ctx.__enter__()
        engines.append(engine)
        return settings, engine

    yield factory
    for ctx in opened:
        ctx.__exit__(None, None, None)


def _refused(settings: Settings, engine: Engine, definition: dict[str, Any]) -> str:
    with pytest.raises(KBError) as info:
        catalog.add_source(engine, settings, definition, origin="api")
    return info.value.message


def test_environment_references_in_a_runtime_sql_url_reach_nobody(
    engine_for: Callable[..., Any], listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_CONFIG", "/srv/kb/secret-config.yaml")
    monkeypatch.setenv("HOME", "/home/very-private-home")
    settings, engine = engine_for()
    url = f"postgresql+psycopg://${{KB_CONFIG}}:${{HOME}}@127.0.0.1:{listener.port}/${{PATH}}"
    message = _refused(
        settings,
        engine,
        {
            "name": "x",
            "kind": "sql",
            "url": url,
            "tables": [{"table": "t", "primary_key": ["id"], "text_template": "{id}"}],
        },
    )
    assert "KB_CONFIG" in message and "ingest.runtime_source_env" in message
    for secret in ("/srv/kb/secret-config.yaml", "very-private-home", "/usr/bin"):
        assert secret not in message
    # Same attack with the variables only in host and database (no password part).
    for url in (
        f"mysql+pymysql://root@127.0.0.1:{listener.port}/${{PATH}}",
        "mysql+pymysql://root@${HOME}:3306/kb",
    ):
        message = _refused(
            settings,
            engine,
            {
                "name": "y",
                "kind": "sql",
                "url": url,
                "tables": [{"table": "t", "primary_key": ["id"], "text_template": "{id}"}],
            },
        )
        assert "not allowed" in message and "very-private-home" not in message
    assert (listener.connections, listener.received) == (0, b"")


def test_allow_listed_variables_expand_and_their_values_stay_out_of_errors(
    engine_for: Callable[..., Any], listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_SOURCE_DB", "crm_database_name_xyz")
    settings, engine = engine_for(ingest={"runtime_source_env": ["KB_SOURCE_DB"]})
    url = f"mysql+pymysql://root@127.0.0.1:{listener.port}/${{KB_SOURCE_DB}}"
    message = _refused(
        settings,
        engine,
        {
            "name": "crm",
            "kind": "sql",
            "url": url,
            "tables": [{"table": "t", "primary_key": ["id"], "text_template": "{id}"}],
        },
    )
    # The allowed variable was used (a connection was made, and the listener is no MySQL),
    # but the message names no expanded value.
    assert listener.connections >= 1
    assert "crm_database_name_xyz" not in message and "cannot connect" in message


def test_runtime_files_sources_read_only_under_configured_roots(
    engine_for: Callable[..., Any], embedder: Embedder, tmp_path: Path
) -> None:
    allowed = tmp_path / "shares"
    (allowed / "team").mkdir(parents=True)
    (allowed / "team" / "note.md").write_text("# Team\n\nMeeting notes for the team.\n")
    settings, engine = engine_for()
    # No roots configured: fail closed.
    message = _refused(settings, engine, {"name": "t", "kind": "files", "root": str(allowed)})
    assert "none is configured" in message

    settings, engine = engine_for(
        ingest={"runtime_file_roots": [str(allowed), str(tmp_path)]}, home=str(tmp_path / "kbh")
    )
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    (settings.home_dir / "dev-signing-key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    for root in ("/etc", str(settings.home_dir), str(allowed / "team" / ".." / ".." / "kbh")):
        message = _refused(settings, engine, {"name": "t", "kind": "files", "root": root})
        assert "ingest.runtime_file_roots" in message or "data directory" in message
    # A root that contains the data directory would walk into it: refused too.
    message = _refused(settings, engine, {"name": "t", "kind": "files", "root": str(tmp_path)})
    assert "data directory" in message
    # A symlink inside an allowed root that points outside it does not get around the fence.
    (allowed / "etc-link").symlink_to("/etc")
    message = _refused(
        settings, engine, {"name": "t", "kind": "files", "root": str(allowed / "etc-link")}
    )
    assert "outside" in message
    message = _refused(
        settings,
        engine,
        {"name": "t", "kind": "files", "root": str(allowed), "follow_symlinks": True},
    )
    assert "follow_symlinks" in message
    # SQLite files are files too.
    outside_db = tmp_path / "kbh" / "stolen.db"
    sqlite3.connect(outside_db).close()
    message = _refused(
        settings,
        engine,
        {
            "name": "q",
            "kind": "sql",
            "url": f"sqlite:///{outside_db}",
            "tables": [{"table": "t", "primary_key": ["id"], "text_template": "{id}"}],
        },
    )
    assert "data directory" in message

    catalog.add_source(
        engine,
        settings,
        {"name": "team", "kind": "files", "root": str(allowed / "team")},
        origin="api",
    )
    sync(settings, engine, embedder, "team")
    assert set(live_documents(engine, "team")) == {"note.md"}


def test_a_runtime_source_fenced_after_it_was_added_is_not_synced(
    engine_for: Callable[..., Any], embedder: Embedder, tmp_path: Path
) -> None:
    """The fence applies at every sync, not only when the source is added."""
    shares = tmp_path / "shares"
    shares.mkdir()
    (shares / "a.md").write_text("# A\n\nA note.\n")
    settings, engine = engine_for(ingest={"runtime_file_roots": [str(shares)]})
    catalog.add_source(
        engine, settings, {"name": "s", "kind": "files", "root": str(shares)}, origin="cli"
    )
    narrowed, _ = engine_for(ingest={"runtime_file_roots": [str(tmp_path / "elsewhere")]})
    with pytest.raises(ConnectorError, match="outside"):
        sync(narrowed, engine, embedder, "s")


def test_a_root_path_longer_than_the_os_allows_is_a_clear_error(
    engine_for: Callable[..., Any], tmp_path: Path
) -> None:
    settings, engine = engine_for(ingest={"runtime_file_roots": [str(tmp_path)]})
    long_root = str(tmp_path / ("x" * 300))
    message = _refused(settings, engine, {"name": "t", "kind": "files", "root": long_root})
    assert "cannot be used" in message and "File name too long" in message
    assert len(message) < 400
