"""A file that kills the worker cannot kill it twice.

Before a file is parsed, the guard records "parsing X (state S)" in the source's
``sync_state`` (its own short transaction, so the marker survives a kill); after the parse
it clears the marker. A worker killed by the kernel (out of memory) or by anything else
mid-parse leaves the marker behind. The next run of that source (the job's retry, or the
next scheduled sync) moves it into ``sync_state["crashed"]`` before reading anything, and
from then on, for as long as the file's state (mtime, size) is unchanged, the file is
parsed only in a forked child process (:mod:`connectors.isolated_parse`): if the child
dies too, the document fails with a reason saying so and the worker goes on; if the kill
was not the file's fault (an operator's ``kill -9`` mid-parse looks the same as an
out-of-memory kill), the document ingests as usual and leaves the crashed list.

Blocking; called from the pipeline's reader thread.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)


def recover(conn: Connection, source: str) -> dict[str, list[int]]:
    """Turn a leftover "parsing" marker into a crashed entry; return the crashed map."""
    row = conn.execute(
        text("SELECT sync_state FROM sources WHERE name = :name FOR UPDATE"), {"name": source}
    ).scalar_one_or_none()
    state: dict[str, Any] = dict(row or {})
    crashed: dict[str, list[int]] = {
        str(k): [int(x) for x in v]
        for k, v in (state.get("crashed") or {}).items()
        if isinstance(v, list)
    }
    marker = state.get("parsing")
    if marker is None:
        return crashed
    if isinstance(marker, dict) and isinstance(marker.get("external_id"), str):
        ext = marker["external_id"]
        crashed[ext] = [int(x) for x in marker.get("state") or []]
        log.error(
            "source %s: the last run died while parsing %r; it is parsed in a child "
            "process from now on, until it ingests or changes",
            source,
            ext,
        )
    state.pop("parsing", None)
    state["crashed"] = crashed
    conn.execute(
        text("UPDATE sources SET sync_state = CAST(:state AS jsonb) WHERE name = :name"),
        {"state": json.dumps(state), "name": source},
    )
    return crashed


class CrashGuard:
    """The :class:`connectors.base.ParseGuard` of one run of one source."""

    def __init__(self, engine: Engine, source: str, crashed: dict[str, list[int]]) -> None:
        self.engine = engine
        self.source = source
        self.crashed = dict(crashed)

    def before(self, external_id: str, state: list[int]) -> bool:
        """Record the parse; True when it must run in a child process."""
        known = self.crashed.get(external_id)
        isolate = known is not None and known == list(state)
        if known is not None and not isolate:
            del self.crashed[external_id]  # the file changed: a new version, a new chance
        marker = {"external_id": external_id, "state": list(state)}
        self._set_marker(json.dumps(marker))
        return isolate

    def after(self, external_id: str) -> None:
        self._set_marker(None)

    def _set_marker(self, marker: str | None) -> None:
        # The marker must be committed before the parse starts: its own transaction. Without
        # waiting for the WAL flush: the process this protects against is the worker, whose
        # death loses nothing Postgres has committed (10.9 -> 1.0 ms a file, machine loaded).
        with self.engine.begin() as conn:
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            if marker is None:
                conn.execute(
                    text("UPDATE sources SET sync_state = sync_state - 'parsing' WHERE name = :n"),
                    {"n": self.source},
                )
            else:
                conn.execute(
                    text(
                        "UPDATE sources SET sync_state = jsonb_set(sync_state, '{parsing}', "
                        "CAST(:m AS jsonb)) WHERE name = :n"
                    ),
                    {"m": marker, "n": self.source},
                )


__all__ = ["CrashGuard", "recover"]
