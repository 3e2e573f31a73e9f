"""Which backend embeds what, when the configuration says ``auto``.

The order is measured, not guessed (docs/benchmarks.md, "Embedding backends"; 2 cores):

- batches of 256-token chunks: torch-bf16 is fastest where the CPU has native bf16 and
  keeps top-10 agreement 0.98 with fp32; otherwise onnx-fp32 (the fused graph: identical
  results, faster than torch-fp32 on CPUs without bf16), then torch-fp32;
- single queries: onnx-fp32 has the lowest latency of the exact backends (torch pays
  ~3-5 ms of Python overhead per call), then torch-bf16, then torch-fp32.

onnx-int8 is fast but agrees only ~0.84 with fp32 on CISI, and onnx-int8-ffn (int8 in the
feed-forward layers only) still below 0.98, so auto picks neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from server.settings import EmbeddingBackend, EmbeddingBackendChoice, EmbeddingSettings

Role = Literal["query", "ingest"]

PREFERENCE: dict[Role, tuple[EmbeddingBackend, ...]] = {
    "ingest": ("torch-bf16", "onnx-fp32", "torch-fp32"),
    "query": ("onnx-fp32", "torch-bf16", "torch-fp32"),
}


@dataclass(frozen=True)
class Capabilities:
    """What this process can run: native bf16 on the CPU, and onnxruntime installed."""

    native_bf16: bool
    onnxruntime: bool

    def can_run(self, backend: EmbeddingBackend) -> bool:
        if backend == "torch-bf16":
            return self.native_bf16
        if backend.startswith("onnx-"):
            return self.onnxruntime
        return True


@dataclass(frozen=True)
class Choice:
    """A resolved backend, the alternatives auto may fall back to, and why it was chosen."""

    backend: EmbeddingBackend
    fallbacks: tuple[EmbeddingBackend, ...]
    reason: str

    @property
    def automatic(self) -> bool:
        return self.reason.startswith("auto")


def configured(settings: EmbeddingSettings, role: Role) -> EmbeddingBackendChoice:
    specific = settings.query_backend if role == "query" else settings.ingest_backend
    return specific or settings.backend


def choose(setting: EmbeddingBackendChoice, role: Role, caps: Capabilities) -> Choice:
    """Resolve ``setting`` for ``role``. An explicit backend is taken as asked (its load
    fails clearly if it cannot run); ``auto`` takes the first runnable one in order."""
    if setting != "auto":
        return Choice(setting, (), "configured")
    runnable = [b for b in PREFERENCE[role] if caps.can_run(b)]
    skipped = [b for b in PREFERENCE[role] if not caps.can_run(b)]
    why = f"auto for {role}"
    if skipped:
        why += f" (not here: {', '.join(skipped)})"
    return Choice(runnable[0], tuple(runnable[1:]), why)


def detect_capabilities() -> Capabilities:
    import importlib.util

    from server.embeddings.cpu import has_native_bf16

    return Capabilities(
        native_bf16=has_native_bf16(),
        onnxruntime=importlib.util.find_spec("onnxruntime") is not None,
    )


__all__ = [
    "PREFERENCE",
    "Capabilities",
    "Choice",
    "Role",
    "choose",
    "configured",
    "detect_capabilities",
]
