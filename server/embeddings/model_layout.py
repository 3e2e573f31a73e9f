"""What a local sentence-transformers directory computes, read from its JSON files.

The ONNX backends reproduce the pipeline themselves (tokenise, transformer, pool,
normalise), so they must know it exactly and refuse any layout they do not reproduce.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
# Files that do not change what the model computes.
_NOT_HASHED = frozenset({"README.md", ".gitattributes"})


@dataclass(frozen=True)
class ModelLayout:
    """Transformer -> mean pooling -> optional L2 normalisation (all-MiniLM-L6-v2's shape)."""

    root: Path
    transformer_dir: Path
    max_seq_length: int
    normalize: bool

    @property
    def tokenizer_file(self) -> Path:
        return self.transformer_dir / "tokenizer.json"


def read_layout(root: Path) -> ModelLayout:
    """Parse ``modules.json``; ConfigError for anything but mean pooling of a transformer."""
    modules = _load(root / "modules.json")
    if not isinstance(modules, list) or not modules:
        raise ConfigError(f"{root}: modules.json lists no modules")
    types = [str(m.get("type", "")) for m in modules]
    if types[0] != _TRANSFORMER or len(types) < 2 or types[1] != _POOLING:
        raise ConfigError(f"{root}: ONNX backends need Transformer -> Pooling, found {types}")
    if any(t != _NORMALIZE for t in types[2:]):
        raise ConfigError(f"{root}: ONNX backends support only Normalize after pooling: {types}")
    transformer_dir = root / str(modules[0].get("path", ""))
    pooling = _load(root / str(modules[1].get("path", "")) / "config.json")
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v is True}
    if modes != {"pooling_mode_mean_tokens"}:
        raise ConfigError(f"{root}: ONNX backends reproduce mean pooling only, found {modes}")
    config = _load(transformer_dir / "sentence_bert_config.json")
    if config.get("do_lower_case"):
        raise ConfigError(f"{root}: do_lower_case outside the tokenizer is not reproduced")
    if not (transformer_dir / "tokenizer.json").is_file():
        raise ConfigError(f"{root}: ONNX backends need a fast tokenizer (tokenizer.json)")
    return ModelLayout(
        root=root,
        transformer_dir=transformer_dir,
        max_seq_length=int(config.get("max_seq_length") or 256),
        normalize=_NORMALIZE in types,
    )


def fingerprint(root: Path) -> str:
    """SHA-256 over every file that shapes the model's output (weights, configs, vocab)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in _NOT_HASHED):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


__all__ = ["ModelLayout", "fingerprint", "read_layout"]
