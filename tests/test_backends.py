"""CPU inference backends (issue 13 §2): ONNX Runtime and OpenVINO, float32 and int8, exported once and cached;
their vectors against float32 torch; the metadata and checkpoint key; `--backend auto`; bad combinations refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import read_demo_recipes
from console.generation import backends
from console.generation.checkpoint import settings_key
from console.generation.engine import Embedder
from console.errors import ModelLoadError, OptionError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def export_cache(tmp_path_factory):
    """A private cache of exported models for this module."""
    old = os.environ.get("EMBEDDING_CONSOLE_CACHE")
    os.environ["EMBEDDING_CONSOLE_CACHE"] = str(tmp_path_factory.mktemp("exported"))
    yield Path(os.environ["EMBEDDING_CONSOLE_CACHE"])
    if old is None:
        os.environ.pop("EMBEDDING_CONSOLE_CACHE")
    else:
        os.environ["EMBEDDING_CONSOLE_CACHE"] = old


@pytest.fixture(scope="module")
def texts():
    rows = read_demo_recipes("tahu", limit=24)
    return [f"{r['Title']}. Bahan: {r['Ingredients'].replace('--', ', ')}" for r in rows] + ["x", "Tahu 😋"]


def _cos(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_onnx_gives_the_vectors_of_torch_and_int8_stays_close(minilm_path, texts, export_cache):
    reference = Embedder(str(minilm_path), device="cpu").encode(texts)
    onnx = Embedder(str(minilm_path), device="cpu", backend="onnx")
    assert _cos(onnx.encode(texts), reference).min() > 0.9999
    assert onnx.export_dir.parent.parent == export_cache and (onnx.export_dir / "model.onnx").exists()
    made = (onnx.export_dir / "model.onnx").stat().st_mtime_ns
    int8 = Embedder(str(minilm_path), device="cpu", backend="onnx", quantize="int8")
    assert _cos(int8.encode(texts), reference).min() > 0.95
    again = Embedder(str(minilm_path), device="cpu", backend="onnx")  # made once: the cached export is reused
    assert again.export_dir == onnx.export_dir and (again.export_dir / "model.onnx").stat().st_mtime_ns == made
    assert sorted(p.name for p in onnx.export_dir.parent.iterdir()) == ["onnx", "onnx-int8"]
    assert (onnx.describe()["backend"], int8.describe()["quantize"]) == ("onnx", "int8")


@pytest.mark.parametrize("quantize, floor", [("none", 0.9999), ("int8", 0.95)])
def test_openvino_runs_last_token_pooling_left_padding_and_the_query_prompt(tiny_qwen3_path, texts, quantize,
                                                                            floor):
    torch_model = Embedder(str(tiny_qwen3_path), device="cpu")
    ov = Embedder(str(tiny_qwen3_path), device="cpu", backend="openvino", quantize=quantize)
    assert _cos(ov.encode(texts, batch_size=5), torch_model.encode(texts)).min() > floor
    assert _cos(ov.encode_query(texts[:6]), torch_model.encode_query(texts[:6])).min() > floor


def test_the_run_records_backend_and_quantisation_and_never_mixes_checkpoints(tiny_qwen3_path, tmp_path):
    from console.generation.generate import GenerateOptions, generate

    export = tmp_path / "in" / "recipes.jsonl"
    export.parent.mkdir()
    export.write_text("".join(json.dumps({"id": f"r{i}", "type": "recipe", "text": f"resep {i}"}) + "\n"
                              for i in range(5)), encoding="utf-8")
    out = tmp_path / "out"
    generate(GenerateOptions(inputs=[export], output_dir=out, model=str(tiny_qwen3_path), device="cpu",
                             backend="onnx", quantize="int8"))
    meta = json.loads((out / "embeddings_recipes.meta.json").read_text())
    assert (meta["backend"], meta["quantize"]) == ("onnx", "int8")
    keys = {name.name.split("-", 1)[1] for name in (out / ".checkpoints").iterdir()}
    common = dict(model=str(tiny_qwen3_path), dimensions=64, normalize=True, max_length=512, prompt="")
    assert keys == {settings_key(**common, backend="onnx", quantize="int8") + ".jsonl"}
    assert len({settings_key(**common, backend=b, quantize=q) for b, q in
                [("torch", "none"), ("onnx", "none"), ("onnx", "int8"), ("openvino", "int8")]}) == 4
    # torch/none keeps the key of earlier versions, so their checkpoints and --reuse stay valid
    assert settings_key(**common) == settings_key(**common, backend="torch", quantize="none")


@pytest.mark.parametrize("backend, quantize, device, dtype, message", [
    ("tensorrt", "none", "cpu", "float32", "--backend must be one of torch, onnx, openvino, auto, not 'tensorrt'"),
    ("onnx", "int4", "cpu", "float32", "--quantize must be one of none, int8, not 'int4'"),
    ("torch", "int8", "cpu", "float32", "--quantize int8 is not available with --backend torch: use --backend onnx "
                                        "or openvino (or --backend auto, which picks a measured one)"),
    ("auto", "int8", "cpu", "float32", "--backend auto chooses the quantisation itself: leave --quantize at none, or "
                                       "name the backend (--backend onnx --quantize int8)"),
    ("onnx", "none", "cuda", "bfloat16", "--backend onnx runs on the CPU here (device cuda asked for): use --device "
                                         "cpu, or --backend torch on a GPU"),
    ("openvino", "int8", "cpu", "bfloat16", "--backend openvino runs the exported float32 model (int8 with "
                                            "--quantize int8); --dtype bfloat16 is for --backend torch"),
])
def test_impossible_combinations_are_refused_before_loading(backend, quantize, device, dtype, message):
    with pytest.raises(OptionError) as info:
        backends.check_backend(backend, quantize, device, dtype)
    assert str(info.value) == message


def test_the_engine_refuses_a_quantisation_torch_does_not_have(minilm_path):
    with pytest.raises(OptionError, match="--quantize int8 is not available with --backend torch"):
        Embedder(str(minilm_path), device="cpu", quantize="int8")


def test_the_cli_refuses_an_unknown_backend():
    proc = subprocess.run([sys.executable, "-m", "console.cli", "generate", "--backend", "tensorrt"],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert ("argument --backend: invalid choice: 'tensorrt' (choose from 'torch', 'onnx', 'openvino', 'auto')"
            in proc.stderr)


def test_a_missing_runtime_names_what_to_install(minilm_path, monkeypatch):
    monkeypatch.setitem(backends.PACKAGES, "onnx", ("onnxruntime", "no_such_runtime_package"))
    with pytest.raises(ModelLoadError) as info:
        Embedder(str(minilm_path), device="cpu", backend="onnx")
    assert str(info.value) == ("--backend onnx needs no_such_runtime_package: pip install the pinned versions in "
                               "requirements.txt (README, Dependencies), or use --backend torch")


def _table(tmp_path, monkeypatch, measured):
    table = tmp_path / "auto.json"
    table.write_text(json.dumps({"fp": {"model": "m", "created_at": "2026-11-28T12:00:00", "measured": measured}}))
    monkeypatch.setattr(backends, "AUTO_TABLE", table)


def _row(backend, quantize, items, cos, top10):
    return {"backend": backend, "quantize": quantize, "items_per_s": items, "speedup": items / 10,
            "mean_cosine": cos, "top10_overlap": top10}


def test_auto_takes_the_fastest_path_at_the_required_fidelity(tmp_path, monkeypatch):
    _table(tmp_path, monkeypatch, [_row("torch", "none", 10, 1.0, 1.0), _row("onnx", "int8", 40, 0.985, 0.95),
                                   _row("openvino", "int8", 30, 0.999, 0.89), _row("onnx", "none", 20, 1.0, 1.0)])
    choice = backends.pick_auto("fp", "cpu")
    assert (choice.backend, choice.quantize) == ("onnx", "none")  # the faster two miss cosine / top-10
    assert choice.message.startswith("backend auto: onnx none (2.0x torch float32, mean cosine 1.0")
    assert backends.pick_auto("fp", "cuda").backend == "torch"
    assert backends.pick_auto("fp", "cpu", "bfloat16").backend == "torch"
    assert backends.pick_auto("unmeasured", "cpu").message.startswith("backend auto: torch float32 (no "
                                                                      "measurement of this model")
    _table(tmp_path, monkeypatch, [_row("torch", "none", 10, 1.0, 1.0), _row("onnx", "int8", 40, 0.9, 0.5)])
    assert backends.pick_auto("fp", "cpu").backend == "torch"


def test_auto_follows_the_shipped_table_and_leaves_unmeasured_models_on_torch(minilm_path, tiny_qwen3_path):
    table = backends.auto_table()
    qwen = Embedder(str(tiny_qwen3_path), device="cpu", backend="auto")
    assert (qwen.backend, qwen.quantize) == ("torch", "none") and "no measurement" in qwen.backend_message
    minilm = Embedder(str(minilm_path), device="cpu")
    entry = table[backends.weights_fingerprint(minilm.model[0].auto_model)]  # the bench measured MiniLM
    good = [m for m in entry["measured"] if m["mean_cosine"] >= 0.99 and m["top10_overlap"] >= 0.9]
    best = max(good, key=lambda m: m["items_per_s"])
    choice = backends.pick_auto(backends.weights_fingerprint(minilm.model[0].auto_model), "cpu")
    assert (choice.backend, choice.quantize) == ((best["backend"], best["quantize"]) if best["backend"] != "torch"
                                                 else ("torch", "none"))


def test_the_backend_refuses_an_unknown_query_backend_setting():
    proc = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT / "backend", capture_output=True,
                          text=True, env={**os.environ, "BACKEND_QUERY_BACKEND": "tensorrt",
                                          "PYTHONPATH": str(ROOT)})
    assert proc.returncode != 0
    assert "BACKEND_QUERY_BACKEND must be one of torch, onnx, openvino, auto, not 'tensorrt'" in proc.stderr


def test_openvino_serves_concurrent_threads_as_the_backends_workers_do(tiny_qwen3_path, texts):
    """gunicorn's gthread workers embed queries from several threads with one model: each gets the vectors it would
    get alone (an OpenVINO infer request shared by threads failed with "Infer Request is busy")."""
    from concurrent.futures import ThreadPoolExecutor

    ov = Embedder(str(tiny_qwen3_path), device="cpu", backend="openvino")
    alone = {t: ov.encode_query([t])[0] for t in texts[:8]}
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda t: (t, ov.encode_query([t])[0]), texts[:8] * 25))
    assert len(got) == 200
    for text, vector in got:
        assert np.allclose(vector, alone[text], atol=1e-5), text
