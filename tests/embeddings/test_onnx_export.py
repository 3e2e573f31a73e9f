"""The ONNX export: made offline from the packaged weights, once, then reused."""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest

from core.errors import ConfigError
from server.embeddings.factory import load_backend
from server.embeddings.model_layout import ModelLayout, read_layout
from server.embeddings.onnx_export import (
    MIN_COSINE,
    OnnxModel,
    cache_folder,
    ensure_onnx_model,
)
from server.settings import EmbeddingSettings


def test_first_use_exports_and_later_loads_reuse_it(
    first_export: OnnxModel, layout: ModelLayout, onnx_cache: Path
) -> None:
    assert first_export.created
    assert first_export.path.parent.parent == onnx_cache
    stamp = first_export.path.stat().st_mtime_ns
    again = ensure_onnx_model(layout, "fp32", onnx_cache)
    assert not again.created and again.path == first_export.path
    load_backend("onnx-fp32", EmbeddingSettings(onnx_cache_dir=onnx_cache))
    assert first_export.path.stat().st_mtime_ns == stamp  # not written again
    # No temporary files left behind by the export.
    assert sorted(p.name for p in first_export.path.parent.iterdir() if p.name.startswith(".")) == [
        ".lock"
    ]


def test_concurrent_first_starts_export_once(
    first_export: OnnxModel, layout: ModelLayout, tmp_path: Path
) -> None:
    # Seed the fp32 export so only the (quick) int8 quantisation races.
    folder = cache_folder(layout, tmp_path)
    folder.mkdir(parents=True)
    shutil.copy(first_export.path, folder / "model-fp32.onnx")
    results: list[OnnxModel] = []
    gate = threading.Barrier(3)

    def start() -> None:
        gate.wait()
        results.append(ensure_onnx_model(layout, "int8", tmp_path))

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.created for r in results) == [False, False, True]
    assert len({r.path for r in results}) == 1 and results[0].path.is_file()


def test_cache_is_keyed_by_the_model_files(layout: ModelLayout, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(layout.root, copy)
    same = read_layout(copy)
    assert cache_folder(same, tmp_path).name == cache_folder(layout, tmp_path).name
    config = json.loads((copy / "config.json").read_text())
    config["layer_norm_eps"] = 1e-6  # a different model computes differently
    (copy / "config.json").write_text(json.dumps(config))
    assert cache_folder(read_layout(copy), tmp_path) != cache_folder(layout, tmp_path)


def test_layouts_the_onnx_graph_does_not_reproduce_are_refused(
    layout: ModelLayout, tmp_path: Path
) -> None:
    copy = tmp_path / "cls-model"
    shutil.copytree(layout.root, copy, ignore=shutil.ignore_patterns("*.safetensors"))
    pooling = copy / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="mean pooling only"):
        read_layout(copy)


def test_fp32_export_is_fused_and_keeps_pooling(first_export: OnnxModel) -> None:
    """The transformer optimizer's kernels replace the traced attention and layer norms;
    inputs and the pooled, normalised output keep their names."""
    import onnx

    graph = onnx.load(str(first_export.path)).graph
    ops = Counter(node.op_type for node in graph.node)
    assert ops["Attention"] == 6 and ops["SkipLayerNormalization"] == 12
    assert ops["EmbedLayerNormalization"] == 1 and ops["Softmax"] == 0
    assert [o.name for o in graph.output] == ["sentence_embedding"]
    assert {i.name for i in graph.input} == {"input_ids", "attention_mask", "token_type_ids"}
    assert ops["ReduceL2"] == 1  # the Normalize step is in the graph


def test_int8_ffn_quantises_only_the_feed_forward_layers(
    first_export: OnnxModel, layout: ModelLayout, onnx_cache: Path
) -> None:
    import onnx

    ffn = ensure_onnx_model(layout, "int8-ffn", onnx_cache)
    nodes = onnx.load(str(ffn.path)).graph.node
    integer = [
        n.name for n in nodes if n.op_type == "DynamicQuantizeMatMul" or "Integer" in n.op_type
    ]
    float_matmuls = [n.name for n in nodes if n.op_type == "MatMul"]
    assert integer, "no quantised MatMul in the int8-ffn graph"
    assert all("/attention/" not in name for name in integer)
    assert sum(n.op_type == "Attention" for n in nodes) == 6  # attention stays fp32
    assert float_matmuls and all("/attention/output/" in n for n in float_matmuls)


def test_a_lossy_export_below_its_bar_is_refused(
    first_export: OnnxModel, layout: ModelLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = cache_folder(layout, tmp_path)
    folder.mkdir(parents=True)
    shutil.copy(first_export.path, folder / "model-fp32.onnx")
    monkeypatch.setitem(MIN_COSINE, "int8-ffn", 1.01)  # no quantised graph can meet this
    with pytest.raises(ConfigError, match="disagrees with torch"):
        ensure_onnx_model(layout, "int8-ffn", tmp_path)
    assert not (folder / "model-int8-ffn.onnx").exists()
