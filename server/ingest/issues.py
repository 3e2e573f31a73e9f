"""Documents of a source that are failing or stored truncated, until that changes.

A run's own failures (``ingest_failures``) say what went wrong in that run; a file that
failed once and is not read again (a SQL row whose ``updated_at`` did not move) would then
vanish from every later run while it is still missing from the index. This map is the
source's standing list instead: a document enters when it fails, leaves when it is
ingested (written, or read unchanged) or is gone from the source. It lives in
``sources.sync_state`` and is saved with the cursor at the end of each run, so it always
describes the index as committed. ``kb sources show``, ``/admin/sources/{name}`` and the
run views read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_LISTED = 10_000  # entries kept per map; the count stays exact
MAX_REASON = 500


@dataclass
class DocumentIssues:
    failing: dict[str, dict[str, Any]] = field(default_factory=dict)
    truncated: dict[str, str] = field(default_factory=dict)
    crashed: dict[str, list[int]] = field(default_factory=dict)  # see crash_guard
    run_id: int | None = None

    @classmethod
    def from_state(cls, state: Mapping[str, Any], run_id: int | None = None) -> DocumentIssues:
        failing = state.get("failing")
        truncated = state.get("truncated")
        crashed = state.get("crashed")
        return cls(
            failing={str(k): dict(v) for k, v in failing.items() if isinstance(v, Mapping)}
            if isinstance(failing, Mapping)
            else {},
            truncated={str(k): str(v) for k, v in truncated.items()}
            if isinstance(truncated, Mapping)
            else {},
            crashed={str(k): [int(x) for x in v] for k, v in crashed.items() if isinstance(v, list)}
            if isinstance(crashed, Mapping)
            else {},
            run_id=run_id,
        )

    def failed(self, external_id: str, uri: str, reason: str) -> None:
        now = datetime.now(UTC).isoformat()
        before = self.failing.get(external_id)
        if before is None and len(self.failing) >= MAX_LISTED:
            return
        self.failing[external_id] = {
            "uri": uri,
            "reason": reason[:MAX_REASON],
            "since": (before or {}).get("since", now),
            "last_failed_at": now,
            "run_id": self.run_id,
        }
        self.truncated.pop(external_id, None)

    def unchanged(self, external_id: str) -> None:
        """Read and identical to what is stored: not failing (a truncation note stays)."""
        self.failing.pop(external_id, None)
        self.crashed.pop(external_id, None)

    def written(self, external_id: str, *, truncated: str | None) -> None:
        """Stored anew, in full or (``truncated`` says why) cut to the limits."""
        self.unchanged(external_id)
        if truncated is None:
            self.truncated.pop(external_id, None)
        elif external_id in self.truncated or len(self.truncated) < MAX_LISTED:
            self.truncated[external_id] = truncated[:MAX_REASON]

    def keep_only(self, existing: Iterable[str]) -> None:
        """Forget documents that no longer exist at the source."""
        alive = set(existing)
        for table in (self.failing, self.truncated, self.crashed):
            for ext in [e for e in table if e not in alive]:
                del table[ext]
        for ext in [e for e in self.crashed if e not in self.failing]:
            del self.crashed[ext]

    def as_state(self) -> dict[str, Any]:
        return {"failing": self.failing, "truncated": self.truncated, "crashed": self.crashed}


def failing_view(state: Mapping[str, Any], *, limit: int = 100) -> dict[str, Any]:
    """The failing and truncated documents of a stored sync_state, for display."""
    issues = DocumentIssues.from_state(state)
    failing = sorted(issues.failing.items(), key=lambda kv: kv[0])
    return {
        "failing_count": len(failing),
        "failing": [{"external_id": ext, **info} for ext, info in failing[:limit]],
        "truncated_count": len(issues.truncated),
        "truncated": [
            {"external_id": ext, "reason": reason}
            for ext, reason in sorted(issues.truncated.items())[:limit]
        ],
    }


__all__ = ["DocumentIssues", "failing_view"]
