#!/usr/bin/env python3
"""GPU profile of generation: dtypes x batch sizes, length-sorted engine vs a plain encode loop, share of peak.

    python bench/gpu_profile.py                        # on a CUDA machine: real Qwen3-Embedding-0.6B shape,
                                                       # random weights, fp32/bf16/fp16 x batch 16..256
    python bench/gpu_profile.py --device cpu --qwen3-random tiny --n 64 --batch-sizes 8,16 --dtypes float32
                                                       # smoke run of the script itself on a CPU

For each (dtype, batch size) it times, on the same loaded model and the same real recipe texts:
- `st_loop`: plain `SentenceTransformer.encode` over consecutive batches in input order (the baseline: no sorting)
- `engine`: `console.engine.Embedder.encode` (length-sorted batches, order restored)
and reports items/s, tokens/s (real tokens after truncation, padding excluded), the speed-up of the engine, and
the fraction of the GPU's dense bf16 peak reached: 2 x parameters FLOPs per real token (the usual forward-pass
estimate; attention's extra term is small at these lengths). Throughput does not depend on the weights, so the
random-weight model built by `console.devmodels.build_random_qwen3(size="full")` stands in for the real one; any
shipped tokenizer serves. Writes bench/results/gpu-profile-<device>.json and prints one line per configuration.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model id or folder (default: random Qwen3, see --qwen3-random)")
    parser.add_argument("--qwen3-random", choices=("tiny", "full"), default="full")
    parser.add_argument("--n", type=int, default=2048, help="recipe texts (default 2048)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", default="float32,bfloat16,float16")
    parser.add_argument("--batch-sizes", default="16,32,64,128,256")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from console.devmodels import build_random_qwen3
    from console.engine import Embedder

    model = args.model
    if model is None:
        model = str(build_random_qwen3(Path(tempfile.gettempdir()) / f"bench-qwen3-{args.qwen3_random}",
                                       size=args.qwen3_random))
    texts = recipe_texts(args.n)
    results, lines = [], []
    for dtype in args.dtypes.split(","):
        embedder = Embedder(model, device=args.device, dtype=dtype, max_length=args.max_length)
        st = embedder.model
        params = sum(p.numel() for p in st.parameters())
        tokenizer = st.tokenizer
        tokens = sum(min(len(ids), args.max_length) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"])
        embedder.encode(texts[:32], batch_size=16)  # warm-up (kernels, allocator)
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            def st_loop(bs=batch_size):
                for i in range(0, len(texts), bs):
                    st.encode(texts[i:i + bs], batch_size=bs, convert_to_numpy=True, show_progress_bar=False)

            if embedder.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            loop_s, _, _ = timed(st_loop)
            events = []
            engine_s, _, _ = timed(lambda bs=batch_size: embedder.encode(texts, batch_size=bs, progress=events.append))
            row = {"dtype": embedder.dtype, "batch_size": batch_size, "n_texts": len(texts), "tokens": tokens,
                   "st_loop_items_per_s": round(len(texts) / loop_s, 2),
                   "engine_items_per_s": round(len(texts) / engine_s, 2),
                   "engine_tokens_per_s": round(tokens / engine_s, 1),
                   "speedup_engine_vs_st_loop": round(loop_s / engine_s, 3),
                   "engine_batch_size_at_end": events[-1].batch_size if events else batch_size}
            if embedder.device.startswith("cuda"):
                row["gpu_peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
                peak = peak_tflops(torch.cuda.get_device_name(0))
                achieved = 2 * params * tokens / engine_s / 1e12
                row["achieved_tflops"] = round(achieved, 2)
                row["fraction_of_bf16_peak"] = round(achieved / peak, 4) if peak else None
            results.append(row)
            line = (f"{row['dtype']:>8} batch {batch_size:>3}: engine {row['engine_items_per_s']} items/s "
                    f"({row['engine_tokens_per_s']} tokens/s), plain loop {row['st_loop_items_per_s']} items/s, "
                    f"x{row['speedup_engine_vs_st_loop']}")
            if "fraction_of_bf16_peak" in row:
                line += f", {row['achieved_tflops']} TFLOP/s = {row['fraction_of_bf16_peak']} of bf16 peak"
            print(line, flush=True)
            lines.append(line)
        del embedder
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    device = "cuda" if args.device.startswith("cuda") and torch.cuda.is_available() else "cpu"
    out = args.output or ROOT / "bench" / "results" / f"gpu-profile-{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "gpu_profile", "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": args.model or f"random Qwen3 ({args.qwen3_random})", "parameters": params,
        "max_length": args.max_length, "machine": machine_info(device), "runs": results,
        "flops_estimate": "2 x parameters per real token (padding excluded)",
    }, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
