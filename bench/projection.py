"""Map benchmark: seconds to a full map (every item on it) at 100k and 1M points, against UMAP on all points, the
quality of the placement on 10k points, and the clusters' time.

    python bench/projection.py                          # full map: 100k + 1M (with --quality: 10k), a few minutes
    python bench/projection.py --sizes 100000 --no-quality
    python bench/projection.py --sample-variants        # the earlier comparison of sampling/PCA variants

A full map is ``console.explore.projection.project``: PCA to 50 and UMAP fitted on a seeded sample of 5,000, every other
item placed at the similarity-weighted mean of its 5 nearest fitted points ("knn") or by UMAP's ``transform``
("umap"). The baseline is the same PCA + UMAP fitted on every point (at 100k measured; at 1M extrapolated from
100k, stated as such, since it does not fit in minutes on 2 cores). Quality, on 10k points: trustworthiness
(``sklearn.manifold.trustworthiness``, 10 neighbours, cosine in the original space) and the share of each point's
10 nearest neighbours in the original space that are among its 10 nearest on the map, for UMAP on all 10k and for
the sample-and-place maps. The vectors are random but clustered like real embeddings (40 clusters on the unit
sphere plus noise, unit length, 384-d). Writes bench/results/projection.json and prints a one-line summary; the
--sample-variants mode writes bench/results/projection-sample.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import log, summary, write_result  # noqa: E402

VARIANTS = {
    # name: (sample, pca_dims); pca_dims >= the vector width means "no PCA" in console.explore.projection.project
    "umap_all_no_pca": (None, None),  # the baseline
    "pca50_umap_all": (None, 50),
    "umap_sample5000_no_pca": (5000, None),
    "pca50_umap_sample5000": (5000, 50),
}


def clustered_vectors(n: int, dims: int, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Unit vectors around ``clusters`` centres, made in blocks (float32 throughout: 1M x 384 is 1.5 GB)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dims)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    out = np.empty((n, dims), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = centers[rng.integers(0, clusters, size=m)] + rng.standard_normal((m, dims), dtype=np.float32) * (
            0.35 * 4 / np.sqrt(dims))
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, round(time.perf_counter() - t0, 2)


def neighbour_overlap(x: np.ndarray, coords: np.ndarray, k: int = 10) -> float:
    """Mean share of each point's ``k`` nearest neighbours (cosine, original space) among its ``k`` on the map."""
    from sklearn.neighbors import NearestNeighbors

    _, near_x = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x).kneighbors(x)
    _, near_m = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)
    return float(np.mean([len(set(a[1:]) & set(b[1:])) / k for a, b in zip(near_x, near_m)]))


def quality(n: int, dims: int, sample: int) -> list[dict]:
    from sklearn.manifold import trustworthiness

    from console.explore.projection import project

    x = clustered_vectors(n, dims, seed=2)
    rows = []
    for name, kwargs in (("umap_all", dict(sample=n)), (f"sample{sample}_knn", dict(sample=sample)),
                         (f"sample{sample}_umap_transform", dict(sample=sample, placement="umap"))):
        proj, seconds = _timed(project, x, pca_dims=50, **kwargs)
        rows.append({"points": n, "map": name, "method": proj.method, "seconds": seconds,
                     "trustworthiness_k10": round(float(trustworthiness(x, proj.coords, n_neighbors=10,
                                                                        metric="cosine")), 4),
                     "neighbour_overlap_k10": round(neighbour_overlap(x, proj.coords), 4)})
        log(f"quality {n}: {rows[-1]}")
    return rows


def full_maps(sizes: list[int], dims: int, sample: int, transform_up_to: int, baseline_up_to: int) -> list[dict]:
    from console.explore.clusters import find_clusters
    from console.explore.projection import project

    titles = _titles()
    runs = []
    for n in sizes:
        x = clustered_vectors(n, dims)
        texts = [titles[i % len(titles)] for i in range(n)]  # real recipe titles, repeated
        for placement in ("knn", "umap"):
            if placement == "umap" and n > transform_up_to:
                continue
            proj, seconds = _timed(project, x, sample=sample, pca_dims=50, placement=placement)
            found, cluster_s = _timed(find_clusters, proj.coords, texts)
            runs.append({"points": n, "dims": dims, "map": f"sample{sample}_{placement}", "method": proj.method,
                         "seconds": seconds, "clusters": len(found.names), "cluster_seconds": cluster_s,
                         "load_after": [round(v, 2) for v in os.getloadavg()]})
            log(f"{n} points, {placement}: map {seconds:.1f} s, {len(found.names)} clusters in {cluster_s:.1f} s")
        if n <= baseline_up_to:
            proj, seconds = _timed(project, x, sample=n, pca_dims=50)
            runs.append({"points": n, "dims": dims, "map": "umap_all", "method": proj.method, "seconds": seconds,
                         "load_after": [round(v, 2) for v in os.getloadavg()]})
            log(f"{n} points, UMAP on all: {seconds:.1f} s")
        del x
    return runs


def _titles() -> list[str]:
    from bench.common import CATEGORIES, DEMO_DATA
    import csv
    import gzip

    titles = []
    for name in CATEGORIES:
        with gzip.open(DEMO_DATA / f"{name}.csv.gz", "rt", encoding="utf-8", newline="") as fh:
            titles += [row["Title"] for row in csv.DictReader(fh)]
    return titles


def _extrapolate(runs: list[dict], sizes: list[int]) -> dict | None:
    """UMAP on all points at the largest size, from the largest measured one, as n log n (stated as extrapolated)."""
    measured = [r for r in runs if r["map"] == "umap_all"]
    if not measured or max(sizes) <= max(r["points"] for r in measured):
        return None
    base = max(measured, key=lambda r: r["points"])
    n, m = max(sizes), base["points"]
    return {"points": n, "map": "umap_all", "seconds_extrapolated": round(base["seconds"] * n * np.log(n)
                                                                          / (m * np.log(m)), 1),
            "from": f"{m} points measured, scaled by n log n (not run: it does not fit in minutes on 2 cores)"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated point counts")
    parser.add_argument("--dims", type=int, default=384, help="vector width (384: MiniLM; 1024: Qwen3-0.6B)")
    parser.add_argument("--sample", type=int, default=5000, help="points UMAP is fitted on (the console's default)")
    parser.add_argument("--transform-up-to", type=int, default=100_000, help="largest size placed by UMAP transform")
    parser.add_argument("--baseline-up-to", type=int, default=100_000, help="largest size of UMAP on all points")
    parser.add_argument("--quality-points", type=int, default=10_000, help="points of the quality check (0: none)")
    parser.add_argument("--sample-variants", action="store_true", help="the earlier sampling/PCA comparison")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.sample_variants:
        return sample_variants(sizes, args.dims)

    from console.explore.projection import project

    load_before = [round(v, 2) for v in os.getloadavg()]
    _, warmup = _timed(project, clustered_vectors(2000, args.dims, seed=1), sample=1000, pca_dims=50)
    log(f"warm-up (numba compile, 2,000 points): {warmup:.1f} s")
    runs = full_maps(sizes, args.dims, args.sample, args.transform_up_to, args.baseline_up_to)
    extrapolated = _extrapolate(runs, sizes)
    quality_rows = quality(args.quality_points, args.dims, 2000) if args.quality_points else []
    write_result("projection", {
        "what": "seconds to a full map (every point placed) with console.explore.projection.project, 2-D, cosine UMAP "
                f"(n_neighbors=15) fitted on {args.sample} points after PCA 50, and console.explore.clusters.find_clusters "
                "on it; baseline = the same PCA + UMAP fitted on every point; quality on clustered random unit "
                "vectors (trustworthiness and 10-neighbour overlap with the original space)",
        "vectors": f"synthetic: 40 clusters on the unit sphere plus noise, {args.dims}-d; texts for the cluster names: "
                   "the demo recipes' titles, repeated",
        "load_avg_before": load_before, "load_avg_after": [round(v, 2) for v in os.getloadavg()],
        "warmup_seconds": warmup, "runs": runs, "umap_all_extrapolated": extrapolated, "quality": quality_rows,
    })
    parts = [f"{r['points'] // 1000}k {r['map']} {r['seconds']:.1f}s" for r in runs]
    if extrapolated:
        parts.append(f"{extrapolated['points'] // 1000}k umap_all ~{extrapolated['seconds_extrapolated']:.0f}s (extrapolated)")
    parts += [f"{q['points'] // 1000}k {q['map']} trust {q['trustworthiness_k10']}" for q in quality_rows]
    summary("projection: " + "; ".join(parts))
    return 0


def sample_variants(sizes: list[int], dims: int) -> int:
    """The earlier benchmark: UMAP of a sample with and without PCA against UMAP on every point (no placement)."""
    from console.explore.projection import project

    _, warmup = _timed(project, clustered_vectors(2000, dims, seed=1), sample=2000, pca_dims=50)
    runs = []
    for n in sizes:
        x = clustered_vectors(n, dims)
        for name, (sample, pca) in VARIANTS.items():
            proj, seconds = _timed(project, x[:sample] if sample else x, sample=sample or n, pca_dims=pca or dims)
            runs.append({"points": n, "dims": dims, "variant": name, "fitted": proj.fitted, "method": proj.method,
                         "seconds": seconds})
            log(f"{n} points, {name}: {seconds:.1f} s ({proj.method}, {proj.fitted} fitted)")
    write_result("projection-sample", {"what": "UMAP of a sample (no placement) against UMAP on every point",
                                       "warmup_seconds": warmup, "runs": runs})
    summary("projection-sample: " + ", ".join(f"{r['points'] // 1000}k {r['variant']} {r['seconds']:.1f}s"
                                             for r in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
