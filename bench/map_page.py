"""Explore page benchmark: how long the map takes to build and how big it is, at 100k and 1M points.

    python bench/map_page.py                      # 100k and 1M, a few minutes
    python bench/map_page.py --sizes 100000 --no-browser

Each size is a run folder with a synthetic embeddings file (clustered unit vectors, 384-d, demo recipe titles and
texts) whose map is put in the projection cache beforehand (the coordinates of the vectors' clusters plus noise:
UMAP's time is bench/projection.py's subject, not this one's). Then the real page (``pages/explore.py``) runs in
Streamlit's AppTest, as a browser's session would run it: the first view (the clusters found, the base layer built),
a rerun where only the neighbours change (an item chosen), and with ``--browser`` the seconds until a real headless
Chromium (no GPU: WebGL in software, no WebGPU) shows the map of ``streamlit run``. Recorded per size: seconds of
each step, the chart's payload (MB of the plotly JSON sent to the browser) and the number of base-layer builds.
Writes bench/results/map-page.json and prints a one-line summary.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, log, recipe_texts, summary, write_result  # noqa: E402

DIMS = 384
CLUSTERS = 40


def make_run(work: Path, n: int, dims: int = DIMS, seed: int = 0) -> Path:
    """A work folder with one run of ``n`` synthetic items (``.npy`` + ids) and its 2-D map already cached, the way
    ``console.projection.project`` caches it for the page's default settings. Returns the embeddings file."""
    from console.embfiles import EmbeddedItem, make_meta, write_embeddings
    from console.projection import Projection, _cache_key, _write_cached
    from console.workspace import Workspace

    ws = Workspace(work)
    run = ws.runs / f"20261128-000000-bench-{n}"
    path = run / "embeddings_recipes.npy"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dims)).astype(np.float32)
    spots = rng.uniform(-15, 15, (CLUSTERS, 2)).astype(np.float32)
    label = rng.integers(0, CLUSTERS, n)
    texts = [t[:300] for t in recipe_texts()]  # the page shows 160 characters; a real text is longer
    vectors = np.empty((n, dims), dtype=np.float32)
    for start in range(0, n, 100_000):
        x = centres[label[start:start + 100_000]]
        x = x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(1.4 / np.sqrt(dims))
        vectors[start:start + 100_000] = x / np.linalg.norm(x, axis=1, keepdims=True)

    def items():
        for i in range(n):
            text = texts[(i * 7 + int(label[i])) % len(texts)]
            yield EmbeddedItem(f"recipe-{i}", "recipe", text, vectors[i], text.split(".")[0])

    write_embeddings(run, "recipe", items(), formats=("npy",),
                     meta=make_meta(model="synthetic", dimensions=dims, normalized=True, dtype="float32", count=n,
                                    type_="recipe"))
    coords = spots[label] + rng.standard_normal((n, 2)).astype(np.float32) * 1.2
    params = dict(dims=2, sample=5000, pca_dims=50, n_neighbors=15, min_dist=0.1, seed=42, placement="knn")
    key = _cache_key(vectors, [f"recipe-{i}" for i in range(n)], params)
    _write_cached(ws.projection_cache() / f"{key}.npz", Projection(coords, 5000, "pca+umap+knn", params, False, key))
    return path
