"""Texts every faster backend must agree on with torch fp32 before it is used."""

from __future__ import annotations

import numpy as np

from server.embeddings.base import Vectors

# Mixed lengths so a batch pads: a graph that mishandles the attention mask shows up here.
PROBE_TEXTS: tuple[str, ...] = (
    "hello",
    "How do I reset my password?",
    "The quarterly revenue grew by twelve percent in Europe, driven by new contracts.",
    "Expense reports are due on the fifth working day of each month. " * 12,
    "Retrieval of information from library catalogues using automatic indexing "
    "and controlled vocabularies. " * 25,
)


def min_cosine(a: Vectors, b: Vectors) -> float:
    """Smallest row-wise cosine similarity between two stacks of vectors."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.min(np.sum(a * b, axis=1)))


__all__ = ["PROBE_TEXTS", "min_cosine"]
