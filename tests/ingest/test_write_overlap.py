"""The model embeds the next batch while the previous one is written (issue 11: the ingest
ratio), and the run row still counts exactly what was committed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import event

from server.embeddings.base import Embedder, Vectors
from server.settings import Settings
from tests.ingest.helpers import integrity_problems, live_documents, run_row, sync, sync_engine


class SignallingEmbedder:
    """The real embedder; says when its second call (the second batch) has begun."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.calls = 0
        self.second_started = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        if self.calls == 2:
            self.second_started.set()
        return self._inner.embed_documents(texts)


def test_the_next_batch_embeds_while_the_previous_one_is_written(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    root = tmp_path / "notes"
    root.mkdir()
    for i in range(6):
        (root / f"note-{i}.md").write_text(f"# Note {i}\n\nA short note about topic {i}.\n")
    settings = make_settings(
        sources=[{"name": "notes", "kind": "files", "root": str(root)}],
        ingest={"embed_batch_size": 2},  # one-chunk notes: three batches
    )
    with sync_engine(settings) as engine:
        model = SignallingEmbedder(embedder)
        held: list[bool] = []

        def hold_the_first_batch_write(conn: Any) -> None:
            # Keep the first batch's transaction open until the model has begun the second
            # batch: written one after the other on one thread, this waits in vain.
            if threading.current_thread().name.startswith("ingest-write") and not held:
                held.append(model.second_started.wait(30))

        event.listen(engine, "commit", hold_the_first_batch_write)
        result = sync(settings, engine, model, "notes")
        event.remove(engine, "commit", hold_the_first_batch_write)
        run = run_row(engine, result.run_id)
        docs = live_documents(engine, "notes")
        assert integrity_problems(engine) == []
    assert held == [True]
    assert model.calls == 3
    assert len(docs) == 6 and all(len(d["chunks"]) == 1 for d in docs.values())
    assert (run["status"], run["docs_added"], run["chunks_written"]) == ("succeeded", 6, 6)
