#!/usr/bin/env python3
"""GPU profile of generation: dtypes x batch sizes; plain encode vs the engine, its tokenisation overlap and
token-budget batching; tokens/s and share of the GPU's bf16 peak.

    python bench/gpu_profile.py                        # on a CUDA machine: real Qwen3-Embedding-0.6B shape,
                                                       # random weights, fp32/bf16/fp16 x batch 16..256
    python bench/gpu_profile.py --device cpu --qwen3-random tiny --n 64 --batch-sizes 8,16 --dtypes float32 \
        --token-budgets 512                            # smoke run of the script itself on a CPU

For each (dtype, batch size) it times, on the same loaded model and the same real recipe texts:
- `st_loop`: plain `SentenceTransformer.encode` over consecutive batches in input order (the baseline: no sorting)
- `st_encode`: one `SentenceTransformer.encode` call (sorted by characters inside)
- `engine`: `console.generation.engine.Embedder.encode` (length-sorted batches, order restored); `engine_overlap`: the same
  with the next batch tokenised in a background thread while the GPU runs this one
- `engine_tokens_<N>_overlap`: texts sorted by token count, batches cut at N padded tokens, tokenisation overlapped
It reports items/s, tokens/s (real tokens after truncation, padding excluded), the best method's speed-up, and
the fraction of the GPU's dense bf16 peak reached: 2 x non-embedding parameters FLOPs per real token (the usual
forward-pass estimate; the embedding table is a lookup, and attention's extra term is small at these lengths).
Throughput does not depend on the weights, so the random-weight model built by
`console.generation.devmodels.cached_random_qwen3("full")` stands in for the real one; any shipped tokenizer serves.
`--trace FILE` instead profiles one engine run with torch.profiler (top operators, the device-busy share). Writes bench/results/gpu-profile-<device>.json and prints one line per configuration.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import machine_info, recipe_texts, timed  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s.
BF16_PEAK_TFLOPS = {"H100 SXM": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "H200": 989.0,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "T4": 65.0}


def peak_tflops(device_name: str) -> float | None:
    for key in sorted(BF16_PEAK_TFLOPS, key=len, reverse=True):
        if key in device_name:
            return BF16_PEAK_TFLOPS[key]
    return None


def rates(seconds: float, n_texts: int, tokens: int, params: int, peak: float | None) -> dict:
    """items/s, tokens/s (real tokens), TFLOP/s at 2 x parameters per token and its share of the bf16 peak."""
    achieved = 2 * params * tokens / seconds / 1e12
    return {"items_per_s": round(n_texts / seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
            "achieved_tflops": round(achieved, 3),
            "fraction_of_bf16_peak": round(achieved / peak, 4) if peak else None}


def matmul_parameters(st) -> int:
    """Parameters that take part in matrix products: all of them but the input embedding table (a lookup)."""
    total = sum(p.numel() for p in st.parameters())
    embeddings = st[0].auto_model.get_input_embeddings()
    return total - (embeddings.weight.numel() if embeddings is not None else 0)


def methods(embedder, texts: list[str], batch_size: int, budgets: list[int]) -> dict:
    """The ways of embedding `texts` that are compared, by name -> a function running one of them."""
    st = embedder.model

    def st_loop():
        for i in range(0, len(texts), batch_size):
            st.encode(texts[i:i + batch_size], batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)

    out = {"st_loop": st_loop,
           "st_encode": lambda: st.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                          show_progress_bar=False),
           "engine": lambda: embedder.encode(texts, batch_size=batch_size),
           "engine_overlap": lambda: embedder.encode(texts, batch_size=batch_size, overlap=True)}
    for budget in budgets:  # token budget: batch_size only caps the count of (short) texts per batch
        out[f"engine_tokens_{budget}_overlap"] = lambda b=budget: embedder.encode(
            texts, batch_size=max(batch_size, b // 8), max_tokens=b, overlap=True)
    return out


def profile_dtype(model: str, dtype: str, texts: list[str], args, peak_of) -> list[dict]:
    import torch

    from console.generation.engine import Embedder

    embedder = Embedder(model, device=args.device, dtype=dtype, max_length=args.max_length)
    params = matmul_parameters(embedder.model)
    tokens = int(embedder.token_lengths(texts).sum())
    peak = peak_of(embedder.device)
    embedder.encode(texts[:32], batch_size=16)  # warm-up (kernels, allocator)
    budgets = [int(b) for b in args.token_budgets.split(",") if b]
    rows = []
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        row = {"dtype": embedder.dtype, "batch_size": batch_size, "n_texts": len(texts), "tokens": tokens,
               "parameters": params}
        for name, fn in methods(embedder, texts, batch_size, budgets).items():
            if embedder.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            seconds, _, _ = timed(fn)
            row[name] = rates(seconds, len(texts), tokens, params, peak)
            if embedder.device.startswith("cuda"):
                row[name]["gpu_peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        best = max((k for k in row if isinstance(row[k], dict)), key=lambda k: row[k]["tokens_per_s"])
        row["best"] = best
        row["speedup_best_vs_st_loop"] = round(row[best]["tokens_per_s"] / row["st_loop"]["tokens_per_s"], 3)
        print(f"{row['dtype']:>8} batch {batch_size:>3}: " + ", ".join(
            f"{k} {row[k]['tokens_per_s']:.0f} tok/s" + (f" ({row[k]['fraction_of_bf16_peak']:.1%} of bf16 peak)"
                                                           if row[k]["fraction_of_bf16_peak"] else "")
            for k in row if isinstance(row[k], dict)) + f"; best {best} x{row['speedup_best_vs_st_loop']}",
            flush=True)
        rows.append(row)
    del embedder
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return rows


def trace(model: str, texts: list[str], args, out: Path) -> None:
    """Where one engine run's time goes: torch.profiler over `Embedder.encode` (batch 64, tokenised ahead), the top
    operators by self CPU and by device time, and the device-busy share of the wall time, written to `out`."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from console.generation.engine import Embedder

    embedder = Embedder(model, device=args.device, dtype=args.dtypes.split(",")[-1], max_length=args.max_length)
    embedder.encode(texts[:64], batch_size=64)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if embedder.device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        seconds, _, _ = timed(lambda: embedder.encode(texts, batch_size=64, overlap=True))
    events = prof.key_averages()
    device_us = sum(getattr(e, "self_device_time_total", 0) or 0 for e in events)
    lines = [f"{len(texts)} texts, batch 64, {embedder.dtype}, overlap: {seconds:.2f} s wall; device busy "
             f"{device_us / 1e6:.2f} s ({device_us / 1e6 / seconds:.0%} of the wall time, kernels summed)", ""]
    lines += [events.table(sort_by="self_cpu_time_total", row_limit=25), ""]
    if device_us:
        lines += [events.table(sort_by="self_device_time_total", row_limit=25)]
    out.write_text("\n".join(lines) + "\n")
    print(lines[0], flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model id or folder (default: random Qwen3, see --qwen3-random)")
    parser.add_argument("--qwen3-random", choices=("tiny", "full"), default="full")
    parser.add_argument("--n", type=int, default=2048, help="recipe texts (default 2048)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--batch-sizes", default="16,32,64,128,256")
    parser.add_argument("--token-budgets", default="16384,65536",
                        help="padded tokens per batch for the token-budget engine (comma-separated; '' for none)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--trace", type=Path, default=None,
                        help="instead of the table: profile one engine run (torch.profiler) into this text file")
    args = parser.parse_args(argv)

    import torch

    from console.generation.devmodels import cached_random_qwen3

    model = args.model
    if model is None:
        model = str(cached_random_qwen3(args.qwen3_random))
    texts = recipe_texts(args.n)

    def peak_of(device: str) -> float | None:
        return peak_tflops(torch.cuda.get_device_name(0)) if device.startswith("cuda") else None

    if args.trace:
        trace(model, texts, args, args.trace)
        return 0
    results = [row for dtype in args.dtypes.split(",") for row in profile_dtype(model, dtype, texts, args, peak_of)]
    device = "cuda" if args.device.startswith("cuda") and torch.cuda.is_available() else "cpu"
    out = args.output or ROOT / "bench" / "results" / f"gpu-profile-{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "gpu_profile", "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": args.model or f"random Qwen3 ({args.qwen3_random})", "max_length": args.max_length,
        "machine": machine_info(device), "runs": results,
        "flops_estimate": "2 x non-embedding parameters per real token (padding excluded)",
        "methods": {"st_loop": "plain SentenceTransformer.encode per consecutive batch (input order)",
                    "st_encode": "one SentenceTransformer.encode call (it sorts by characters itself)",
                    "engine": "Embedder.encode: batches sorted by characters",
                    "engine_overlap": "the same, the next batch tokenised in a thread while the model runs",
                    "engine_tokens_<N>_overlap": "sorted by token count, batches cut at N padded tokens, "
                                                 "tokenisation overlapped"},
    }, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
