"""The ONNX export: made offline from the packaged weights, once, then reused."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from core.errors import ConfigError
from server.embeddings.factory import load_backend
from server.embeddings.model_layout import ModelLayout, read_layout
from server.embeddings.onnx_export import OnnxModel, cache_folder, ensure_onnx_model
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
