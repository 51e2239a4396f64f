"""The engine: same vectors as a plain `SentenceTransformer.encode`, input order kept, the model's own prompts,
Matryoshka truncation with re-normalisation, CUDA OOM halving, and the test models built without a hub."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from conftest import read_demo_recipes
from console.generation.devmodels import QWEN3_PROMPTS, build_random_qwen3
from console.generation.engine import Embedder
from console.errors import ModelError, OptionError


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


@pytest.fixture(scope="module")
def texts():
    rows = read_demo_recipes("tempe", limit=40)
    out = [f"{r['Title']}. Bahan: {r['Ingredients'].replace('--', ', ')}" for r in rows]
    return out + ["Tempe 😋", "Crème brûlée à la tempe", "x"]


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return Embedder(str(minilm_path), device="cpu")


@pytest.fixture(scope="module")
def qwen3(tiny_qwen3_path):
    return Embedder(str(tiny_qwen3_path), device="cpu")


def test_tiny_qwen3_has_the_qwen3_embedding_layout(tiny_qwen3_path):
    model = SentenceTransformer(str(tiny_qwen3_path), device="cpu", local_files_only=True)
    assert type(model[0].model).__name__ == "Qwen3Model"
    assert json.loads((tiny_qwen3_path / "1_Pooling" / "config.json").read_text())["pooling_mode"] == "lasttoken"
    assert model.tokenizer.padding_side == "left"
    assert model.prompts == QWEN3_PROMPTS
    assert model.default_prompt_name is None


def test_random_qwen3_is_deterministic_and_built_once(tmp_path, tiny_qwen3_path, texts):
    other = build_random_qwen3(tmp_path / "again", size="tiny")
    a = SentenceTransformer(str(tiny_qwen3_path), device="cpu").encode(texts[:4])
    b = SentenceTransformer(str(other), device="cpu").encode(texts[:4])
    np.testing.assert_allclose(a, b, atol=1e-6)
    stamp = (other / "model.safetensors").stat().st_mtime_ns
    assert build_random_qwen3(other, size="tiny") == other
    assert (other / "model.safetensors").stat().st_mtime_ns == stamp


def test_minilm_vectors_equal_a_plain_encode_in_input_order(minilm, minilm_path, texts):
    plain = SentenceTransformer(str(minilm_path), device="cpu").encode(texts, batch_size=8)
    ours = minilm.encode(texts, batch_size=8)
    assert ours.shape == (len(texts), 384) and ours.dtype == np.float32
    assert _cos(ours, plain).min() > 0.9999


def test_qwen3_documents_are_encoded_without_the_query_instruction(qwen3, tiny_qwen3_path, texts):
    model = SentenceTransformer(str(tiny_qwen3_path), device="cpu")
    ours = qwen3.encode(texts, batch_size=8)
    assert _cos(ours, model.encode_document(texts, batch_size=8)).min() > 0.9999
    assert _cos(ours, model.encode(texts, batch_size=8)).min() > 0.9999


def test_qwen3_queries_use_the_models_query_prompt(qwen3, tiny_qwen3_path, texts):
    model = SentenceTransformer(str(tiny_qwen3_path), device="cpu")
    assert qwen3.query_prompt == QWEN3_PROMPTS["query"]
    queries = qwen3.encode_query(texts[:6], batch_size=4)
    assert _cos(queries, model.encode(texts[:6], prompt_name="query")).min() > 0.9999
    assert _cos(queries, qwen3.encode(texts[:6])).max() < 0.999  # the instruction changes the vector


def test_left_padding_makes_a_vector_independent_of_its_batch(qwen3, texts):
    alone = np.vstack([qwen3.encode([t]) for t in texts[-3:]])
    in_batch = qwen3.encode(texts, batch_size=len(texts))[-3:]  # padded to the longest recipe
    assert _cos(alone, in_batch).min() > 0.9999


def test_order_is_kept_whatever_the_length_sorting(minilm, texts):
    shuffled = texts[::-1]
    np.testing.assert_allclose(minilm.encode(shuffled, batch_size=5)[::-1], minilm.encode(texts, batch_size=7),
                               atol=1e-5)


def test_iter_batches_yields_every_input_index_exactly_once(minilm, texts):
    seen = [(list(b.indices), b.vectors.copy()) for b in minilm.iter_batches(texts, batch_size=6)]
    out = minilm.encode(texts, batch_size=6)
    flat = [i for idx, _ in seen for i in idx]
    assert sorted(flat) == list(range(len(texts)))
    for idx, vecs in seen:
        np.testing.assert_array_equal(out[idx], vecs)
    assert [len(idx) for idx, _ in seen] == [6] * 7 + [1]


def test_matryoshka_dimensions_truncate_then_renormalise(minilm_path, minilm, texts):
    small = Embedder(str(minilm_path), device="cpu", dimensions=64)
    out = small.encode(texts[:8])
    full = minilm.encode(texts[:8])[:, :64]
    assert out.shape == (8, 64) and small.dimensions == 64
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert _cos(out, full).min() > 0.9999
    plain = SentenceTransformer(str(minilm_path), device="cpu").encode(texts[:8], truncate_dim=64,
                                                                       normalize_embeddings=True)
    assert _cos(out, plain).min() > 0.9999


def test_no_normalize_keeps_the_truncated_lengths(minilm_path, texts):
    out = Embedder(str(minilm_path), device="cpu", dimensions=64, normalize=False).encode(texts[:8])
    assert (np.linalg.norm(out, axis=1) < 0.99).all()


def _with_memory_for_4(embedder, monkeypatch):
    """Fault injection: the real model runs, but a batch larger than 4 raises CUDA's OOM error first."""
    real = embedder._encode_batch

    def small_memory(batch, prompt):
        if len(batch) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(batch, prompt)

    monkeypatch.setattr(embedder, "_encode_batch", small_memory)
    return embedder


def test_cuda_out_of_memory_halves_the_batch_and_loses_nothing(minilm_path, texts, monkeypatch):
    """Fault injection: the real model runs, but a batch larger than 4 raises CUDA's OOM error first."""
    embedder = _with_memory_for_4(Embedder(str(minilm_path), device="cpu"), monkeypatch)
    events = []
    out = embedder.encode(texts, batch_size=16, progress=events.append)
    assert [e.message for e in events if e.message] == [
        "CUDA out of memory at batch size 16; going on with batch size 8",
        "CUDA out of memory at batch size 8; going on with batch size 4"]
    assert events[-1].batch_size == 4  # the batch size at the end
    plain = SentenceTransformer(str(minilm_path), device="cpu").encode(texts)
    assert _cos(out, plain).min() > 0.9999


def test_cuda_out_of_memory_at_batch_size_one_says_what_to_do(minilm_path, monkeypatch):
    embedder = Embedder(str(minilm_path), device="cpu")

    def no_memory(batch, prompt):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(embedder, "_encode_batch", no_memory)
    with pytest.raises(ModelError) as info:
        embedder.encode(["a", "b"], batch_size=2)
    assert str(info.value) == ("CUDA out of memory even with batch size 1 — use --max-length to cut long texts, "
                               "--dtype float16, or --device cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on a machine without a GPU")
def test_without_a_gpu_auto_and_cuda_fall_back_to_the_cpu(minilm_path):
    auto = Embedder(str(minilm_path))
    assert (auto.device, auto.dtype, auto.device_message) == ("cpu", "float32", "no CUDA GPU found; running on the CPU")
    cuda = Embedder(str(minilm_path), device="cuda")
    assert cuda.device == "cpu"
    assert cuda.device_message == "--device cuda asked for, but no CUDA GPU is visible; running on the CPU instead"


def test_dimensions_larger_than_the_model_are_refused(minilm_path):
    with pytest.raises(OptionError) as info:
        Embedder(str(minilm_path), device="cpu", dimensions=1024)
    assert str(info.value) == (f"--dimensions 1024 is not possible: {minilm_path} gives 384-d vectors "
                               "(choose 1..384)")


def test_a_model_that_is_neither_local_nor_reachable_is_explained(tmp_path):
    with pytest.raises(ModelError) as info:
        Embedder("no-such-org/no-such-model", device="cpu", local_files_only=True)
    assert str(info.value).startswith("cannot load model 'no-such-org/no-such-model': it is not a local folder and "
                                      "the model hub cannot be reached")


def test_bfloat16_on_the_cpu_stays_close_to_float32(minilm_path, minilm, texts):
    half = Embedder(str(minilm_path), device="cpu", dtype="bfloat16")
    assert half.dtype == "bfloat16"
    assert _cos(half.encode(texts[:8]), minilm.encode(texts[:8])).min() > 0.98


@pytest.mark.gpu
def test_on_a_gpu_auto_picks_a_half_dtype_and_matches_float32(minilm_path, texts):
    gpu = Embedder(str(minilm_path), device="auto")
    assert gpu.device == "cuda" and gpu.dtype in ("bfloat16", "float16")
    cpu = Embedder(str(minilm_path), device="cpu")
    assert _cos(gpu.encode(texts), cpu.encode(texts)).min() > 0.99


@pytest.mark.gpu
def test_a_real_cuda_oom_halves_the_batch(tmp_path, texts):
    """A real OOM: the GPU is capped to a small share of its memory and the full-size Qwen3 gets a big batch."""
    path = build_random_qwen3(tmp_path / "qwen3-full", size="full")
    embedder = Embedder(str(path), device="cuda", dtype="float32")
    torch.cuda.set_per_process_memory_fraction(4 * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    try:
        long_texts = [t * 8 for t in texts] * 4
        events = []
        out = embedder.encode(long_texts, batch_size=256, progress=events.append)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert any("CUDA out of memory at batch size 256" in (e.message or "") for e in events)
    assert out.shape[0] == len(long_texts) and np.isfinite(out).all()


def test_iter_batches_goes_longest_first_and_halves_on_oom_without_losing_an_index(minilm_path, texts, monkeypatch):
    embedder = _with_memory_for_4(Embedder(str(minilm_path), device="cpu"), monkeypatch)
    batches = list(embedder.iter_batches(texts, batch_size=16))
    assert [b.batch_size for b in batches] == [4] * len(batches)
    assert [len(b.indices) for b in batches] == [4] * (len(texts) // 4) + [len(texts) % 4]
    assert batches[0].messages == ("CUDA out of memory at batch size 16; going on with batch size 8",
                                   "CUDA out of memory at batch size 8; going on with batch size 4")
    assert all(b.messages == () for b in batches[1:])
    flat = [int(i) for b in batches for i in b.indices]
    assert sorted(flat) == list(range(len(texts)))
    lengths = [len(texts[i]) for i in flat]
    assert lengths == sorted(lengths, reverse=True)


def test_encode_document_is_encode_and_encode_query_adds_the_query_prompt(qwen3, texts):
    np.testing.assert_array_equal(qwen3.encode_document(texts[:4]), qwen3.encode(texts[:4]))
    np.testing.assert_array_equal(qwen3.encode_query(texts[:4]), qwen3.encode(texts[:4], prompt=qwen3.query_prompt))


def test_an_unknown_prompt_name_is_refused_with_the_models_prompts(qwen3):
    with pytest.raises(OptionError) as info:
        qwen3.encode(["x"], prompt_name="nope")
    assert str(info.value) == "the model has no prompt named 'nope' (it has: query, document)"


# -- issue 13 §4: token-budget batching and tokenisation overlapped with the model's work -------------------------
def test_token_budget_and_overlap_give_the_vectors_of_the_plain_path(minilm, qwen3, texts):
    few = texts[:10] + texts[-3:]  # long recipes and the short ones (emoji, accents, "x")
    for embedder in (minilm, qwen3):  # mean pooling, right padding; last-token pooling, left padding and a prompt
        plain = embedder.encode(few, batch_size=4)
        query = embedder.encode_query(few[:5], batch_size=2)
        for max_tokens, overlap in ((None, True), (300, False), (300, True)):
            np.testing.assert_allclose(embedder.encode(few, batch_size=4, max_tokens=max_tokens, overlap=overlap),
                                       plain, atol=2e-5)
            np.testing.assert_allclose(embedder.encode_query(few[:5], batch_size=2, max_tokens=max_tokens,
                                                             overlap=overlap), query, atol=2e-5)


def test_token_budget_batches_are_sorted_by_tokens_and_cut_at_the_budget(minilm, texts):
    lengths = minilm.token_lengths(texts)
    batches = list(minilm.iter_batches(texts, batch_size=64, max_tokens=400, overlap=True))  # 43 texts, seconds
    flat = [int(i) for b in batches for i in b.indices]
    assert sorted(flat) == list(range(len(texts)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)  # by tokens, not characters
    for b in batches:
        assert len(b.indices) * lengths[b.indices].max() <= 400 or len(b.indices) == 1
    assert len({len(b.indices) for b in batches}) > 1  # short texts share a batch, long ones do not
    assert minilm.token_lengths(["x " * 1000]).tolist() == [minilm.max_length]  # cut at max_length


def test_a_token_budget_below_one_is_refused(minilm):
    with pytest.raises(OptionError) as info:
        minilm.encode(["a"], max_tokens=0)
    assert str(info.value) == "max_tokens must be at least 1"


def test_cuda_out_of_memory_halves_batch_and_budget_with_tokenisation_ahead(minilm_path, texts, monkeypatch):
    """Fault injection as above, on the token-budget path: the batch tokenised ahead is dropped and re-cut."""
    embedder = Embedder(str(minilm_path), device="cpu")
    real = embedder._embed_features

    def small_memory(features):
        if len(features["input_ids"]) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(features)

    monkeypatch.setattr(embedder, "_embed_features", small_memory)
    few = texts[-13:]
    batches = list(embedder.iter_batches(few, batch_size=16, max_tokens=10_000, overlap=True))
    # all 13 texts fit the budget: the first batch holds 13, halved to 6
    assert batches[0].messages[0] == "CUDA out of memory at batch size 13; going on with batch size 6"
    assert all(len(b.indices) <= 4 for b in batches)
    assert sorted(int(i) for b in batches for i in b.indices) == list(range(len(few)))
    out = np.zeros((len(few), embedder.dimensions), dtype=np.float32)
    for b in batches:
        out[b.indices] = b.vectors
    np.testing.assert_allclose(out, Embedder(str(minilm_path), device="cpu").encode(few), atol=2e-5)


def test_after_an_oom_the_batch_tokenised_ahead_ends_before_the_next_is_tokenised(minilm_path, texts, monkeypatch):
    """One tokenizer is never used by two threads at once (fast tokenizers refuse that): the batch tokenised ahead
    is waited for when an OOM drops it. The halved budget is in each Batch, for the generator to carry over."""
    import threading
    import time

    embedder = Embedder(str(minilm_path), device="cpu")
    real_tokenize, real_embed = embedder._tokenize, embedder._embed_features
    lock, active, most = threading.Lock(), [0], [0]

    def slow_tokenize(batch, prompt):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.05)
            return real_tokenize(batch, prompt)
        finally:
            with lock:
                active[0] -= 1

    def small_memory(features):
        if len(features["input_ids"]) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_embed(features)

    monkeypatch.setattr(embedder, "_tokenize", slow_tokenize)
    monkeypatch.setattr(embedder, "_embed_features", small_memory)
    few = texts[-13:]
    batches = list(embedder.iter_batches(few, batch_size=8, max_tokens=10_000, overlap=True))
    assert most[0] == 1
    assert batches[0].messages == ("CUDA out of memory at batch size 8; going on with batch size 4",)
    assert [b.max_tokens for b in batches] == [5000] * len(batches)
    assert sorted(int(i) for b in batches for i in b.indices) == list(range(len(few)))
    assert not embedder.tokenize_ahead  # on the CPU the generator does not tokenise ahead (nothing to hide behind)
