"""ONNX copies of the local model, exported offline on first use and cached on disk.

Nothing is downloaded: the fp32 graph is traced from the packaged weights with
``torch.onnx.export`` (the TorchScript exporter; the dynamo exporter produced wrong
vectors for BERT with dynamic shapes under transformers 5), then onnxruntime's transformer
optimizer fuses it into Attention / SkipLayerNormalization / BiasGelu /
EmbedLayerNormalization kernels; the int8 graphs are quantised from that with onnxruntime's
dynamic quantiser. The graph includes mean pooling and normalisation, so it returns what
sentence-transformers returns.

Variants:

- ``fp32``: reproduces torch to rounding (min probe cosine >= 0.9999, checked at export);
- ``int8``: every projection (Attention's QKV and the MatMuls) in int8: fast, but agrees
  only ~0.84 top-10 with fp32 on CISI;
- ``int8-ffn``: only the feed-forward MatMuls (two thirds of the multiply-adds) in int8,
  attention kept in fp32, weights and activations both uint8 (AVX2 without VNNI multiplies
  u8 x s8 with saturating 16-bit sums; u8 x u8 kept probe cosines higher here). Closer to
  fp32 than ``int8`` (probe cosine ~0.99 against ~0.98) but still short of the 0.98 CISI
  top-10 overlap auto requires (docs/benchmarks.md), so auto does not pick it.

The cache folder is keyed by the model directory's name and a hash of its files plus the
exporter's versions; a file lock makes concurrent first starts export once, and each file
is written under a temporary name and renamed into place only after it has been checked
against torch on probe texts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.errors import ConfigError
from server.embeddings.model_layout import ModelLayout, fingerprint
from server.embeddings.probes import PROBE_TEXTS, min_cosine
from server.embeddings.tokenization import encoding_tokenizer

log = logging.getLogger(__name__)

Variant = Literal["fp32", "int8", "int8-ffn"]
VARIANTS: tuple[Variant, ...] = ("fp32", "int8", "int8-ffn")
# Bump when the exported graph changes shape or meaning, so old caches are not reused.
# 2: fp32 traced with eager attention and fused by onnxruntime's transformer optimizer.
EXPORT_FORMAT = 2
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "sentence_embedding"
# fp32 must reproduce torch to rounding; int8 is a lossy model by design, the check only
# catches a broken graph (its retrieval agreement is measured by `python -m bench embedding`).
MIN_COSINE: dict[Variant, float] = {"fp32": 0.9999, "int8": 0.95, "int8-ffn": 0.97}


@dataclass(frozen=True)
class OnnxModel:
    path: Path
    variant: Variant
    created: bool  # False when an earlier export was reused


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kb" / "onnx"


def cache_folder(layout: ModelLayout, cache_dir: Path) -> Path:
    versions = "|".join(
        [f"format={EXPORT_FORMAT}", f"opset={OPSET}", _version("torch"), _version("onnxruntime")]
    )
    key = hashlib.sha256(f"{fingerprint(layout.root)}|{versions}".encode()).hexdigest()
    return cache_dir / f"{layout.root.name}-{key[:24]}"


def ensure_onnx_model(layout: ModelLayout, variant: Variant, cache_dir: Path) -> OnnxModel:
    """The cached ONNX file for ``variant``, exporting it first if no process has yet."""
    folder = cache_folder(layout, cache_dir)
    target = folder / f"model-{variant}.onnx"
    if target.is_file():
        return OnnxModel(target, variant, created=False)
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder / ".lock"):
        if target.is_file():  # another process finished it while we waited
            return OnnxModel(target, variant, created=False)
        started = time.perf_counter()
        fp32 = folder / "model-fp32.onnx"
        if not fp32.is_file():
            _write_checked(fp32, lambda tmp: _export_fp32(layout, tmp), layout, "fp32")
        if variant != "fp32":
            quantize = _QUANTIZERS[variant]
            _write_checked(target, lambda tmp: quantize(fp32, tmp), layout, variant)
        log.info(
            "exported %s to ONNX %s in %.1f s: %s",
            layout.root.name,
            variant,
            time.perf_counter() - started,
            target,
        )
        return OnnxModel(target, variant, created=True)


def torch_reference(layout: ModelLayout, texts: tuple[str, ...]) -> Any:
    """Vectors of ``texts`` from the torch model the export is made from."""
    model = _load_torch(layout, attention="sdpa")
    wrapper = _pooled(model, layout.normalize)
    return _run_torch(wrapper, layout, texts)


def _write_checked(target: Path, write: Any, layout: ModelLayout, variant: Variant) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        agreement = _agreement(tmp, layout)
        if agreement < MIN_COSINE[variant]:
            raise ConfigError(
                f"the ONNX {variant} export of {layout.root.name} disagrees with torch on probe "
                f"texts (cosine {agreement:.4f} < {MIN_COSINE[variant]}); not using it"
            )
        log.info("ONNX %s export agrees with torch: min cosine %.5f", variant, agreement)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _export_fp32(layout: ModelLayout, out: Path) -> None:
    traced = out.with_name(f"{out.name}.traced")
    try:
        _trace(layout, traced)
        _fuse(layout, traced, out)
    finally:
        traced.unlink(missing_ok=True)


def _trace(layout: ModelLayout, out: Path) -> None:
    import torch

    # Eager attention traces to MatMul/Softmax/MatMul, the pattern the fuser recognises;
    # the default SDPA path traces to a graph it leaves unfused.
    model = _load_torch(layout, attention="eager")
    wrapper = _pooled(model, layout.normalize)
    tokenizer = encoding_tokenizer(layout.tokenizer_file, layout.max_seq_length)
    sample = _feed(tokenizer, ["a short sample", "a slightly longer sample text to pad"])
    args = tuple(torch.from_numpy(sample[name]) for name in INPUT_NAMES)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUT_NAMES}
    axes[OUTPUT_NAME] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns that it is deprecated and that traced Python
        # conditions are constants; the probe check below is what proves the graph right.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            args,
            str(out),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
        )


def _fuse(layout: ModelLayout, source: Path, out: Path) -> None:
    """Fuse the traced graph with onnxruntime's BERT optimizer. opt_level 0 runs only its
    own pattern fusions, so the saved graph holds no CPU-specific layouts."""
    from onnxruntime.transformers.optimizer import optimize_model

    config = json.loads((layout.transformer_dir / "config.json").read_text(encoding="utf-8"))
    fused = optimize_model(
        str(source),
        model_type="bert",
        num_heads=int(config["num_attention_heads"]),
        hidden_size=int(config["hidden_size"]),
        opt_level=0,
    )
    counts = fused.get_fused_operator_statistics()
    if not counts.get("Attention"):
        # Still correct (the probe check decides), only slower: say so.
        log.warning("ONNX export of %s: attention not fused (%s)", layout.root.name, counts)
    fused.save_model_to_file(str(out))


def _quantize_int8(source: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel scales: one scale per weight tensor (the default) lost too much here
    # (probe cosine ~0.87 against fp32); per output channel it keeps ~0.99.
    quantize_dynamic(
        str(source),
        str(out),
        op_types_to_quantize=["MatMul", "Attention"],
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options=_QUANT_OPTIONS,
    )


def _quantize_int8_ffn(source: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    ffn = [node.name for node in graph.node if node.op_type == "MatMul" and _is_ffn(node.name)]
    if not ffn:
        raise ConfigError(f"{source.name}: no feed-forward MatMul found to quantise")
    quantize_dynamic(
        str(source),
        str(out),
        op_types_to_quantize=["MatMul"],
        nodes_to_quantize=ffn,
        weight_type=QuantType.QUInt8,
        per_channel=True,
        extra_options=_QUANT_OPTIONS,
    )


def _is_ffn(node_name: str) -> bool:
    """BERT's feed-forward block as torch.onnx names it: ``.../intermediate/dense/MatMul``
    and ``.../output/dense/MatMul`` (``.../attention/output/dense`` is attention's)."""
    return "/intermediate/dense/" in node_name or (
        "/output/dense/" in node_name and "/attention/" not in node_name
    )


# The fused kernels live in the com.microsoft domain, where the quantiser's shape inference
# finds no types: every tensor it must type is float.
_QUANT_OPTIONS = {"DefaultTensorType": 1}  # onnx.TensorProto.FLOAT
_QUANTIZERS: dict[Variant, Any] = {"int8": _quantize_int8, "int8-ffn": _quantize_int8_ffn}


def _agreement(path: Path, layout: ModelLayout) -> float:
    import onnxruntime as ort

    tokenizer = encoding_tokenizer(layout.tokenizer_file, layout.max_seq_length)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = session.run([OUTPUT_NAME], _feed(tokenizer, list(PROBE_TEXTS)))[0]
    single = np.vstack(
        [session.run([OUTPUT_NAME], _feed(tokenizer, [t]))[0] for t in PROBE_TEXTS[:2]]
    )
    reference = torch_reference(layout, PROBE_TEXTS)
    return min(min_cosine(batch, reference), min_cosine(single, reference[:2]))


def _feed(tokenizer: Any, texts: list[str]) -> dict[str, Any]:
    encoded = tokenizer.encode_batch(texts)
    ids = np.asarray([e.ids for e in encoded], dtype=np.int64)
    mask = np.asarray([e.attention_mask for e in encoded], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def _load_torch(layout: ModelLayout, *, attention: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel

    return AutoModel.from_pretrained(
        str(layout.transformer_dir), local_files_only=True, attn_implementation=attention
    ).eval()


def _pooled(model: Any, normalize: bool) -> Any:
    """The transformer followed by sentence-transformers' mean pooling and Normalize."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            tokens = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            # Same arithmetic as sentence_transformers.models.Pooling (mean_tokens).
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            return pooled

    return MeanPooled().eval()


def _run_torch(wrapper: Any, layout: ModelLayout, texts: tuple[str, ...]) -> Any:
    import torch

    tokenizer = encoding_tokenizer(layout.tokenizer_file, layout.max_seq_length)
    feed = _feed(tokenizer, list(texts))
    with torch.no_grad():
        out = wrapper(*(torch.from_numpy(feed[name]) for name in INPUT_NAMES))
    return out.numpy().astype(np.float32)


def _version(dist: str) -> str:
    try:
        return f"{dist}={importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{dist}=none"


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An exclusive flock: other processes (and threads, each with its own open file)
    wait here; the kernel releases it if the holder dies."""
    with lock_path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process to finish the ONNX export (%s)", lock_path)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


__all__ = [
    "VARIANTS",
    "OnnxModel",
    "Variant",
    "default_cache_dir",
    "ensure_onnx_model",
    "torch_reference",
]
