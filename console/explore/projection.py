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

from console.explore.mapfigure import COLOR_FIELDS  # noqa: F401 - the page's "Colour by" choices

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


def load_embedding_set(paths, *, categories: dict[str, object] | None = None,
                       vectors_dir: str | os.PathLike | None = None) -> EmbeddingSet:
    """Read one or more embedding files (any format ``console.files.embfiles`` reads) into one ``EmbeddingSet``.

    ``categories`` maps an id to its categories (e.g. from the uploaded export records), used for colouring.
    ``vectors_dir``: where the vectors are kept as a float32 ``.npy`` (written once per file version, streamed)
    that the set memory-maps: the process then holds the ids and texts, not the matrix.
    """
    from console.files.embfiles import read_embeddings

    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    cached = _vectors_file(paths, vectors_dir) if vectors_dir is not None else None
    keep = cached is None or not cached.exists()
    ids, types, titles, texts, sources, rows = [], [], [], [], [], []
    with _VectorSink(cached if keep else None) as sink:
        for path in paths:
            for item in read_embeddings(path):
                ids.append(item.id)
                types.append(item.type)
                titles.append(item.title or item.id)
                texts.append(item.text)
                sources.append(Path(path).name)
                if sink.active:
                    sink.add(item.embedding)
                elif keep:
                    rows.append(np.asarray(item.embedding, dtype=np.float32))
    if cached is not None:
        vectors = np.load(cached, mmap_mode="r") if ids else np.zeros((0, 0), dtype=np.float32)
    else:
        vectors = np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
    cats = [category_of(t, (categories or {}).get(i)) for i, t in zip(ids, texts)]
    return EmbeddingSet(ids, types, titles, texts, vectors, cats, sources)


def _vectors_file(paths: list, folder) -> Path:
    """Where the vectors of these files (as they are now: path, size, modification time) are cached."""
    h = hashlib.blake2b(digest_size=16)
    for path in paths:
        st = Path(path).stat()
        h.update(f"{Path(path).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return Path(folder) / f"vectors-{h.hexdigest()}.npy"


class _VectorSink:
    """Streams float32 rows into a raw file, then writes it as ``target`` (.npy) on a clean exit; inactive when
    ``target`` is None."""

    def __init__(self, target: Path | None):
        self.target, self.rows, self.dim, self._fh = target, 0, 0, None

    @property
    def active(self) -> bool:
        return self.target is not None

    def __enter__(self):
        if self.target is not None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._raw = self.target.with_name(f".{self.target.name}.{os.getpid()}.raw")
            self._fh = open(self._raw, "wb")
        return self

    def add(self, vector) -> None:
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        self.dim = self.dim or int(vec.shape[0])
        self._fh.write(vec.tobytes())
        self.rows += 1

    def __exit__(self, exc_type, exc, tb):
        if self._fh is None:
            return False
        self._fh.close()
        try:
            if exc_type is None and self.rows:
                import shutil

                tmp = self._raw.with_suffix(".npy")
                with open(tmp, "wb") as out, open(self._raw, "rb") as src:
                    header = {"descr": "<f4", "fortran_order": False, "shape": (self.rows, self.dim)}
                    np.lib.format.write_array_header_1_0(out, header)
                    shutil.copyfileobj(src, out, 1 << 20)
                os.replace(tmp, self.target)
        finally:
            self._raw.unlink(missing_ok=True)
        return False


# -- projection ------------------------------------------------------------------------------------------------
PLACEMENTS = ("knn", "umap")  # how the items UMAP was not fitted on are put on the map
PLACE_NEIGHBOURS = 5
_BLOCK = 4096


@dataclass
class Projection:
    """Map coordinates of every item (row i of ``coords`` is row i of the EmbeddingSet). UMAP was fitted on
    ``fitted`` of them (a seeded random sample when the set is larger); the others were placed (``placement``)."""

    coords: np.ndarray  # (total, dims)
    fitted: int
    method: str  # "pca+umap", "umap", "pca+umap+knn", ... or "pca" (too few items for UMAP)
    params: dict
    from_cache: bool = False
    key: str = ""  # the cache key: what the clusters of this map are cached under

    @property
    def total(self) -> int:
        return int(len(self.coords))

    @property
    def placed(self) -> int:
        return self.total - self.fitted


def _cache_key(vectors: np.ndarray, ids: list[str] | None, params: dict) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(str(vectors.shape).encode())
    for start in range(0, len(vectors), 65536):  # in blocks: a memory-mapped matrix is never copied whole
        h.update(np.ascontiguousarray(vectors[start:start + 65536], dtype=np.float32).data)
    if ids is not None:
        h.update("\0".join(ids).encode())
    return h.hexdigest()


def _read_cached(cache_file: Path, params: dict, key: str) -> Projection | None:
    if not cache_file.exists():
        return None
    with np.load(cache_file, allow_pickle=False) as data:
        if "fitted" not in data:  # a map cached before every item was placed: made again
            return None
        return Projection(data["coords"], int(data["fitted"]), str(data["method"]), params, True, key)


def _write_cached(cache_file: Path, proj: Projection) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(f".{cache_file.stem}.tmp.npz")
    np.savez(tmp, coords=proj.coords, fitted=np.array(proj.fitted), method=np.array(proj.method))
    os.replace(tmp, cache_file)


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
    placement: str = "knn",
    cache_dir: str | os.PathLike | None = None,
    on_stage=None,
) -> Projection:
    """Every item of ``vectors`` on a ``dims``-D (2 or 3) map: UMAP (cosine) is fitted on a seeded random sample of
    at most ``sample`` rows (after PCA to ``pca_dims`` when the vectors are wider), and the other rows are placed:
    ``placement="knn"`` at the similarity-weighted mean of their nearest fitted points (cosine, in the PCA space),
    ``"umap"`` by UMAP's own ``transform``. ``vectors`` may be memory-mapped: it is read in blocks.
    Cached in ``cache_dir`` when given. ``on_stage(text)`` is called as each stage begins."""
    stage = on_stage or (lambda text: None)
    if dims not in (2, 3):
        raise ValueError("dims must be 2 or 3")
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}")
    total = int(vectors.shape[0])
    if total == 0:
        raise ValueError("no vectors to project: the file holds no items")
    params = dict(dims=dims, sample=sample, pca_dims=pca_dims, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
    if total > sample:
        params["placement"] = placement
    key = _cache_key(vectors, ids, params)
    cache_file = Path(cache_dir) / f"{key}.npz" if cache_dir is not None else None
    if cache_file is not None and (cached := _read_cached(cache_file, params, key)) is not None:
        return cached

    stage(f"Sampling {min(sample, total):,} of {total:,} items" if total > sample else f"Taking all {total:,} items")
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(total, size=sample, replace=False)) if total > sample else np.arange(total)
    pca = _fit_pca(vectors[index], pca_dims, seed, stage)
    x = _reduce(pca, vectors[index])
    coords, method, reducer = _fit_map(x, dims, n_neighbors, min_dist, seed, stage)
    if pca is not None and method == ["umap"]:
        method = ["pca", "umap"]
    if len(index) < total:
        coords = _place_rest(vectors, index, x, coords, pca, reducer if placement == "umap" else None, stage)
        method.append(placement)
    result = Projection(np.asarray(coords, dtype=np.float32), len(index), "+".join(method), params, False, key)
    if cache_file is not None:
        _write_cached(cache_file, result)
    return result


def _fit_pca(x: np.ndarray, pca_dims: int, seed: int, stage):
    """A PCA to ``pca_dims`` fitted on the sample, or None when the vectors are not wider (or too few)."""
    if x.shape[1] <= pca_dims or len(x) <= pca_dims:
        return None
    from sklearn.decomposition import PCA

    stage(f"PCA: {x.shape[1]} → {pca_dims} dimensions")
    return PCA(n_components=pca_dims, random_state=seed).fit(np.asarray(x, dtype=np.float32))


def _reduce(pca, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x if pca is None else pca.transform(x).astype(np.float32)


def _fit_map(x: np.ndarray, dims: int, n_neighbors: int, min_dist: float, seed: int, stage):
    """(coords of the fitted points, method parts, the fitted UMAP or None)."""
    n = len(x)
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
        return coords, ["umap"], reducer
    # a handful of points: UMAP cannot embed them; PCA (or the raw coordinates) shows them anyway
    from sklearn.decomposition import PCA

    k = min(dims, n, x.shape[1])
    coords = np.zeros((n, dims), dtype=np.float32)
    coords[:, :k] = PCA(n_components=k).fit_transform(x) if n > 1 else 0.0
    return coords, ["pca"], None


def _place_rest(vectors, index, fit_x, fit_coords, pca, reducer, stage) -> np.ndarray:
    """Coordinates of every row: the fitted rows keep theirs, the others are placed block by block."""
    total, dims = len(vectors), fit_coords.shape[1]
    how = "UMAP's transform" if reducer is not None else "their nearest fitted points"
    stage(f"Placing the other {total - len(index):,} items by {how}")
    coords = np.empty((total, dims), dtype=np.float32)
    fitted = np.zeros(total, dtype=bool)
    fitted[index] = True
    anchors = _normalized(fit_x)
    block = 65536 if reducer is not None else _BLOCK
    for start in range(0, total, block):
        stop = min(start + block, total)
        rest = np.flatnonzero(~fitted[start:stop]) + start
        if len(rest) == 0:
            continue
        x = _reduce(pca, vectors[start:stop])[rest - start]
        if reducer is not None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning)
                coords[rest] = reducer.transform(x)
        else:
            coords[rest] = place_by_neighbours(anchors, fit_coords, x)
    coords[index] = fit_coords
    return coords


def place_by_neighbours(anchors: np.ndarray, anchor_coords: np.ndarray, x: np.ndarray,
                        k: int = PLACE_NEIGHBOURS) -> np.ndarray:
    """Map positions for the rows of ``x``: the mean of the positions of their ``k`` most cosine-similar
    ``anchors`` (unit rows), weighted by the inverse of the cosine distance (an exact twin lands on its twin)."""
    sims = _normalized(x) @ anchors.T
    k = min(k, anchors.shape[0])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    near = np.take_along_axis(sims, top, axis=1)
    weights = 1.0 / np.maximum(1.0 - near, 1e-6)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", weights, anchor_coords[top]).astype(np.float32)


# -- similarity preview ----------------------------------------------------------------------------------------
def _normalized(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def nearest(vectors: np.ndarray, query: np.ndarray, k: int = 10, *, exclude: int | None = None) -> list[tuple[int, float]]:
    """The ``k`` rows of ``vectors`` most similar to ``query`` by cosine, best first, as (row, score).
    ``exclude``: a row to leave out (the selected item itself). ``vectors`` may be memory-mapped: it is read in
    blocks, so a 1M x 1024 matrix is never copied whole."""
    q = _normalized(np.asarray(query, dtype=np.float32).reshape(-1))
    scores = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), 65536):
        scores[start:start + 65536] = _normalized(vectors[start:start + 65536]) @ q
    if exclude is not None:
        scores[exclude] = -np.inf
    k = min(k, len(scores) - (exclude is not None))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(i), float(scores[i])) for i in top]

# -- the map: console.explore.mapfigure (importable from here too) -----------------------------------------------------
from console.explore.mapfigure import HOVER_LIMIT, map_figure, map_layer, scatter_figure  # noqa: E402,F401
