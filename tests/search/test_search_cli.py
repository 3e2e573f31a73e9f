"""`kb search`: who the caller is, from flags or from the configuration."""

from __future__ import annotations

import pytest

from core.errors import InvalidRequest
from server.cli.search_cmd import make_caller
from server.settings import Settings


def test_caller_from_flags_adds_prefixes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=str(tmp_path))
    caller = make_caller(settings, "alice", ["eng", "group:ops"])
    assert caller.subject == "user:alice"
    assert caller.principals == {"user:alice", "group:eng", "group:ops"}
    assert caller.transport == "cli"
    assert make_caller(settings, "svc:indexer", []).subject == "svc:indexer"


def test_caller_from_configuration_or_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRequest, match="--as"):
        make_caller(Settings(home=str(tmp_path)), None, [])
    configured = Settings(home=str(tmp_path), stdio={"principals": ["user:bob", "group:hr"]})
    assert make_caller(configured, None, ["eng"]).principals == {
        "user:bob",
        "group:hr",
        "group:eng",
    }
