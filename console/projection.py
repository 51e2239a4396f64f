"""Maps of embeddings and the similarity preview: sample, PCA, UMAP (2D or 3D), nearest neighbours by cosine.

Projections are cached on disk by a hash of the data and the parameters, so that a page reload or a second look
at the same file costs a file read, not a UMAP run. Plain Python: no Streamlit import.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

COLOR_FIELDS = ("type", "category", "source")
_CATEGORIES_IN_TEXT = re.compile(r"Categories:\s*([^.\n]+)")


@dataclass
class EmbeddingSet:
    """Vectors (float32, one row per item) with what the map shows about each item."""

    ids: list[str]
    types: list[str]
    titles: list[str]
    texts: list[str]
    vectors: np.ndarray
    categories: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dimensions(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0

    def index_of(self, item_id: str) -> int:
        return self.ids.index(item_id)


def category_of(text: str, given=None) -> str:
    """The item's first category: from its ``categories`` field when known, else from the export text's
    "Categories: x, y." part (the seed's text format), else "(none)"."""
    if given:
        first = given[0] if isinstance(given, (list, tuple)) else str(given).split(",")[0]
        return str(first).strip() or "(none)"
    m = _CATEGORIES_IN_TEXT.search(text or "")
    return m.group(1).split(",")[0].strip() if m else "(none)"


def load_embedding_set(paths, *, categories: dict[str, object] | None = None) -> EmbeddingSet:
    """Read one or more embedding files (any format ``console.embfiles`` reads) into one ``EmbeddingSet``.

    ``categories`` maps an id to its categories (e.g. from the uploaded export records), used for colouring.
    """
    from console.embfiles import read_embeddings

    ids, types, titles, texts, sources, rows = [], [], [], [], [], []
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        for item in read_embeddings(path):
            ids.append(item.id)
            types.append(item.type)
            titles.append(item.title or item.id)
            texts.append(item.text)
            sources.append(Path(path).name)
            rows.append(np.asarray(item.embedding, dtype=np.float32))
    vectors = np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
    cats = [category_of(t, (categories or {}).get(i)) for i, t in zip(ids, texts)]
    return EmbeddingSet(ids, types, titles, texts, vectors, cats, sources)


# -- projection ------------------------------------------------------------------------------------------------
@dataclass
class Projection:
    coords: np.ndarray  # (n_sample, dims)
    index: np.ndarray  # row numbers in the EmbeddingSet of the projected items
    total: int
    method: str  # "pca+umap", "umap" or "pca" (too few items for UMAP)
    params: dict
    from_cache: bool = False

    @property
    def sample_size(self) -> int:
        return int(len(self.index))

    @property
    def sampled(self) -> bool:
        return self.sample_size < self.total


def _cache_key(vectors: np.ndarray, ids: list[str] | None, params: dict) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(str(vectors.shape).encode())
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    if ids is not None:
        h.update("\0".join(ids).encode())
    return h.hexdigest()


def project(
    vectors: np.ndarray,
    *,
    ids: list[str] | None = None,
    dims: int = 2,
    sample: int = 5000,
    pca_dims: int = 50,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 42,
    cache_dir: str | os.PathLike | None = None,
    on_stage=None,
) -> Projection:
    """Project ``vectors`` to ``dims`` (2 or 3) dimensions: a random sample of at most ``sample`` rows, PCA to
    ``pca_dims`` when the vectors are wider, then UMAP with cosine distance. Cached in ``cache_dir`` when given.
    ``on_stage(text)`` is called as each stage begins (what the console shows while a large map is computed)."""
    stage = on_stage or (lambda text: None)
    if dims not in (2, 3):
        raise ValueError("dims must be 2 or 3")
    vectors = np.asarray(vectors, dtype=np.float32)
    total = int(vectors.shape[0])
    if total == 0:
        raise ValueError("no vectors to project: the file holds no items")
    params = dict(dims=dims, sample=sample, pca_dims=pca_dims, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"{_cache_key(vectors, ids, params)}.npz"
        if cache_file.exists():
            with np.load(cache_file, allow_pickle=False) as data:
                return Projection(data["coords"], data["index"], total, str(data["method"]), params, True)

    stage(f"Sampling {min(sample, total):,} of {total:,} items" if total > sample else f"Taking all {total:,} items")
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(total, size=sample, replace=False)) if total > sample else np.arange(total)
    x = vectors[index]
    n = len(index)
    method = []
    if x.shape[1] > pca_dims and n > pca_dims:
        from sklearn.decomposition import PCA

        stage(f"PCA: {x.shape[1]} → {pca_dims} dimensions")
        x = PCA(n_components=pca_dims, random_state=seed).fit_transform(x).astype(np.float32)
        method.append("pca")
    if n > dims + 2:
        stage(f"UMAP: {n:,} points to {dims}D (the longest step)")
        import umap

        reducer = umap.UMAP(
            n_components=dims, n_neighbors=max(2, min(n_neighbors, n - 1)), min_dist=min_dist, metric="cosine",
            random_state=seed, init="spectral" if n > 3 * dims + 10 else "random",
        )
        with warnings.catch_warnings():  # "n_jobs overridden by random_state": reproducible maps are the point
            warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
            coords = reducer.fit_transform(x)
        method.append("umap")
    else:  # a handful of points: UMAP cannot embed them; PCA (or the raw coordinates) shows them anyway
        from sklearn.decomposition import PCA

        k = min(dims, n, x.shape[1])
        coords = np.zeros((n, dims), dtype=np.float32)
        coords[:, :k] = PCA(n_components=k).fit_transform(x) if n > 1 else 0.0
        method = ["pca"]
    result = Projection(np.asarray(coords, dtype=np.float32), index, total, "+".join(method), params)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.stem}.tmp.npz")
        np.savez(tmp, coords=result.coords, index=result.index, method=np.array(result.method))
        os.replace(tmp, cache_file)
    return result


# -- similarity preview ----------------------------------------------------------------------------------------
def _normalized(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def nearest(vectors: np.ndarray, query: np.ndarray, k: int = 10, *, exclude: int | None = None) -> list[tuple[int, float]]:
    """The ``k`` rows of ``vectors`` most similar to ``query`` by cosine, best first, as (row, score).
    ``exclude``: a row to leave out (the selected item itself)."""
    scores = _normalized(vectors) @ _normalized(query.reshape(-1))
    if exclude is not None:
        scores[exclude] = -np.inf
    k = min(k, len(scores) - (exclude is not None))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(i), float(scores[i])) for i in top]


# -- the map ---------------------------------------------------------------------------------------------------
def _short(text: str, n: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def scatter_figure(data: EmbeddingSet, proj: Projection, *, color_by: str = "type", highlight=(), selected=None):
    """A plotly scatter (2D or 3D) of the projection, coloured by ``color_by``, hover showing title and text.
    ``highlight``: EmbeddingSet rows (neighbours) drawn as rings on top; ``selected``: the row they belong to."""
    import plotly.graph_objects as go

    if color_by not in COLOR_FIELDS:
        raise ValueError(f"color_by must be one of {COLOR_FIELDS}")
    labels = {"type": data.types, "category": data.categories, "source": data.sources}[color_by]
    three_d = proj.coords.shape[1] == 3
    scatter = go.Scatter3d if three_d else go.Scatter
    fig = go.Figure()
    groups: dict[str, list[int]] = {}
    for pos, row in enumerate(proj.index):
        groups.setdefault(labels[row] or "(none)", []).append(pos)
    for name in sorted(groups):
        pos = np.array(groups[name])
        rows = proj.index[pos]
        xyz = {axis: proj.coords[pos, i] for i, axis in enumerate("xyz"[: proj.coords.shape[1]])}
        fig.add_trace(scatter(
            **xyz, mode="markers", name=str(name), marker=dict(size=4 if three_d else 7, opacity=0.8),
            customdata=np.stack([[data.ids[r] for r in rows], [data.titles[r] for r in rows],
                                 [_short(data.texts[r]) for r in rows]], axis=-1),
            hovertemplate="<b>%{customdata[1]}</b><br>%{customdata[0]}<br>%{customdata[2]}<extra></extra>",
        ))
    where = {int(r): p for p, r in enumerate(proj.index)}
    for rows, name, marker in (
        ([r for r in highlight if r in where], "neighbours", dict(size=14, symbol="circle-open", color="black")),
        ([selected] if selected in where else [], "selected",
         dict(size=18, symbol="diamond" if three_d else "star", color="red")),
    ):
        if rows:
            pos = [where[r] for r in rows]
            xyz = {axis: proj.coords[pos, i] for i, axis in enumerate("xyz"[: proj.coords.shape[1]])}
            fig.add_trace(scatter(**xyz, mode="markers", name=name, marker=marker, hoverinfo="skip"))
    fig.update_layout(height=620, margin=dict(l=0, r=0, t=30, b=0), clickmode="event+select",
                      showlegend=True,  # plotly hides the legend of a single trace: one colour then said nothing
                      legend=dict(itemsizing="constant", title=dict(text=color_by)))
    return fig
