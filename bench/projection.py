"""UMAP preview benchmark: seconds of ``console.projection.project`` for 10k and 100k points, with and without PCA
and with sampling, against the plain baseline (UMAP on every point, no PCA) in the same run.

    python bench/projection.py                      # 10k and 100k points, 384-d (about 10-15 min on 2 cores)
    python bench/projection.py --sizes 10000 --dims 1024

The vectors are random but clustered like real embeddings (40 clusters on the unit sphere plus noise, unit
length), so UMAP's neighbour search does real work. The first UMAP call compiles numba code: a warm-up on 2,000
points runs first and is reported apart. Writes bench/results/projection.json and prints a one-line summary.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import log, summary, write_result  # noqa: E402

VARIANTS = {
    # name: (sample, pca_dims); pca_dims >= the vector width means "no PCA" in console.projection.project
    "umap_all_no_pca": (None, None),  # the baseline
    "pca50_umap_all": (None, 50),
    "umap_sample5000_no_pca": (5000, None),
    "pca50_umap_sample5000": (5000, 50),  # the console's default
}


def clustered_vectors(n: int, dims: int, clusters: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dims)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    labels = rng.integers(0, clusters, size=n)
    x = centers[labels] + 0.35 * rng.standard_normal((n, dims)).astype(np.float32) / np.sqrt(dims) * 4
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated point counts (10000,100000)")
    parser.add_argument("--dims", type=int, default=384, help="vector width (384: MiniLM; 1024: Qwen3-0.6B)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of the variants")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    variants = [v for v in args.variants.split(",") if v]

    from console.projection import project

    started = time.perf_counter()
    project(clustered_vectors(2000, args.dims, seed=1), sample=2000, pca_dims=50)
    warmup = time.perf_counter() - started
    log(f"warm-up (numba compile + 2,000 points): {warmup:.1f} s")

    runs = []
    for n in sizes:
        x = clustered_vectors(n, args.dims)
        for name in variants:
            sample, pca = VARIANTS[name]
            t0 = time.perf_counter()
            proj = project(x, sample=sample or n, pca_dims=pca or args.dims)
            seconds = time.perf_counter() - t0
            runs.append({"points": n, "dims": args.dims, "variant": name, "sample": proj.sample_size,
                         "method": proj.method, "seconds": round(seconds, 2)})
            log(f"{n} points, {name}: {seconds:.1f} s ({proj.method}, {proj.sample_size} projected)")
    for run in runs:
        base = next(r for r in runs if r["points"] == run["points"] and r["variant"] == "umap_all_no_pca")
        run["speedup_vs_baseline"] = round(base["seconds"] / run["seconds"], 2) if run["seconds"] else None
    write_result("projection", {
        "what": "console.projection.project (2-D, cosine UMAP, n_neighbors=15) on clustered random unit vectors; "
                "baseline = UMAP on every point without PCA",
        "warmup_seconds": round(warmup, 2), "runs": runs,
    })
    parts = []
    for n in sizes:
        by = {r["variant"]: r for r in runs if r["points"] == n}
        parts.append(f"{n // 1000}k: " + ", ".join(f"{v} {by[v]['seconds']:.1f}s" for v in variants if v in by))
    summary("projection: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
