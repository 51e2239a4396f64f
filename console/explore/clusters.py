"""Clusters on the map, named in the data's language: HDBSCAN on the map's coordinates, each cluster named by its
most distinctive words (class-based TF-IDF over the cluster's texts) with the language's stopwords removed.

The language comes from the operator or from the data (:func:`detect_language`: the share of a sample's words that
are stopwords of each language of ``stopwordsiso``; the highest wins). Results are cached beside the map's
projection (``clusters-<hash>.npz``). Plain Python: no Streamlit import.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

NOISE = -1
NOISE_NAME = "(no cluster)"
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{3,}\b"
FIT_SAMPLE = 50_000  # HDBSCAN runs on at most this many points; the rest join their nearest point's cluster
LABEL_SAMPLE = 50_000  # texts read to name the clusters
COMMON_SHARE = 0.9  # a word in more than this share of all texts (a template's "Ingredients") names no cluster


@dataclass
class Clusters:
    labels: np.ndarray  # (n,) int: the cluster of each row, NOISE for none
    names: dict[int, str]  # cluster -> "santan / gulai / kambing"
    centres: dict[int, tuple]  # cluster -> its centre on the map (median of its points)
    sizes: dict[int, int]
    language: str
    from_cache: bool = False

    def ids(self) -> list[int]:
        """The clusters, largest first."""
        return sorted(self.names, key=lambda c: (-self.sizes[c], c))

    def name(self, label: int) -> str:
        return self.names.get(int(label), NOISE_NAME)

    def names_of_rows(self) -> list[str]:
        names = [self.name(c) for c in range(int(self.labels.max(initial=NOISE)) + 1)] + [NOISE_NAME]
        return [names[c] for c in self.labels.tolist()]  # NOISE (-1) picks the last: NOISE_NAME

    def rows(self, label: int) -> np.ndarray:
        return np.flatnonzero(self.labels == label)


# -- language --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def stopwords(language: str) -> frozenset[str]:
    """The stopwords of an ISO 639-1 language (``stopwordsiso``); a clear error for one it does not know."""
    import stopwordsiso

    if not stopwordsiso.has_lang(language):
        raise ValueError(f"no stopword list for language {language!r}; choose one of {', '.join(languages())}")
    return frozenset(w.lower() for w in stopwordsiso.stopwords(language))


def languages() -> list[str]:
    import stopwordsiso

    return sorted(stopwordsiso.langs())


def detect_language(texts, *, sample: int = 500, seed: int = 0) -> str:
    """The language whose stopwords make up the largest share of the words of (a seeded sample of) ``texts``;
    "en" when there are no words at all."""
    texts = list(texts)
    if len(texts) > sample:
        texts = [texts[i] for i in np.random.default_rng(seed).choice(len(texts), sample, replace=False)]
    words = [w for t in texts for w in re.findall(r"[^\W\d_]+", (t or "").lower())]
    if not words:
        return "en"
    rates = {lang: sum(w in stopwords(lang) for w in words) for lang in languages()}
    return max(sorted(rates), key=lambda lang: rates[lang])


# -- names -----------------------------------------------------------------------------------------------------
def name_clusters(texts, labels: np.ndarray, stop: frozenset[str], *, top: int = 3) -> dict[int, str]:
    """Each cluster's ``top`` most distinctive words, " / "-joined, by class-based TF-IDF: the texts of a cluster are
    one document; a word scores its frequency there (tf) times the log of how much more frequent it is there than
    over all clusters (the idf part: a word spread evenly, "bawang" in every recipe, scores 0; the score is the
    word's term in the KL divergence of the cluster's words from all words). ``stop`` words and words found in more
    than ``COMMON_SHARE`` of all texts (a template's "Ingredients:") are left out."""
    from sklearn.feature_extraction.text import CountVectorizer

    labels = np.asarray(labels)
    found = sorted(set(labels.tolist()) - {NOISE})
    if not found:
        return {}
    vectorizer = CountVectorizer(token_pattern=TOKEN_PATTERN, lowercase=True)
    try:
        counts = vectorizer.fit_transform([t or "" for t in texts]).tocsr()
    except ValueError:  # no word of three letters anywhere
        return {c: f"cluster {c + 1}" for c in found}
    words = vectorizer.get_feature_names_out()
    share = np.asarray((counts > 0).sum(axis=0)).ravel() / max(1, counts.shape[0])
    usable = np.array([w not in stop for w in words]) & (share <= COMMON_SHARE if counts.shape[0] >= 20 else True)
    per_class = np.vstack([np.asarray(counts[labels == c].sum(axis=0)).ravel() for c in found]).astype(np.float64)
    tf = per_class / np.maximum(per_class.sum(axis=1, keepdims=True), 1)
    overall = per_class.sum(axis=0) / max(per_class.sum(), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.log(tf / overall)  # > 0: the word is more frequent in this cluster than over all of them
        score = np.where(usable & (per_class > 0) & (lift > 0), tf * lift, -np.inf)
    names = {}
    for n, c in enumerate(found):
        best = [i for i in np.argsort(-score[n], kind="stable")[:top] if np.isfinite(score[n, i])]
        names[c] = " / ".join(words[i] for i in best) or f"cluster {c + 1}"
    return names


# -- clustering ------------------------------------------------------------------------------------------------
def _cache_key(coords: np.ndarray, texts, params: dict) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(np.ascontiguousarray(coords, dtype=np.float32).data)
    h.update("\0".join(t or "" for t in texts).encode())
    return h.hexdigest()


def default_min_size(n: int) -> int:
    """The smallest cluster by default: 1 % of the points, at least 5 and at most 500."""
    return int(min(500, max(5, round(n * 0.01))))


def find_clusters(coords: np.ndarray, texts, *, language: str = "auto", min_size: int | None = None,
                  seed: int = 42, cache_dir: str | os.PathLike | None = None) -> Clusters:
    """HDBSCAN (scikit-learn) on the map's ``coords`` (fitted on a seeded sample of at most ``FIT_SAMPLE``
    points; the others join the cluster of their nearest sampled point), named by :func:`name_clusters` in
    ``language`` ("auto": :func:`detect_language`). Cached in ``cache_dir`` by coordinates, texts and settings."""
    coords = np.asarray(coords, dtype=np.float32)
    texts = list(texts)
    if len(texts) != len(coords):
        raise ValueError(f"{len(texts)} texts for {len(coords)} points")
    if language != "auto":
        stopwords(language)  # an unknown language fails here, before any work
    min_size = int(min_size or default_min_size(len(coords)))
    if min_size < 2:
        raise ValueError("min_size must be at least 2")
    params = dict(language=language, min_size=min_size, seed=seed, fit_sample=FIT_SAMPLE, version=1)
    cache_file = Path(cache_dir) / f"clusters-{_cache_key(coords, texts, params)}.npz" if cache_dir else None
    if cache_file is not None and cache_file.exists():
        return _read(cache_file, coords)
    labels = _hdbscan(coords, min_size, seed)
    lang = detect_language(texts, seed=seed) if language == "auto" else language
    rows = np.arange(len(texts))
    if len(rows) > LABEL_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), LABEL_SAMPLE, replace=False))
    names = name_clusters([texts[i] for i in rows], labels[rows], stopwords(lang))
    names.update({c: f"cluster {c + 1}" for c in set(labels.tolist()) - {NOISE} - set(names)})
    result = _summarise(labels, names, coords, lang)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.stem}.tmp.npz")
        np.savez(tmp, labels=labels, names=np.array(json.dumps({str(k): v for k, v in names.items()})),
                 language=np.array(lang))
        os.replace(tmp, cache_file)
    return result


def _hdbscan(coords: np.ndarray, min_size: int, seed: int) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    n = len(coords)
    if n < max(min_size, 3):
        return np.full(n, NOISE, dtype=np.int32)
    fit = np.arange(n)
    if n > FIT_SAMPLE:
        fit = np.sort(np.random.default_rng(seed).choice(n, FIT_SAMPLE, replace=False))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        found = HDBSCAN(min_cluster_size=min_size, min_samples=min(min_size, 10)).fit_predict(coords[fit])
    labels = np.full(n, NOISE, dtype=np.int32)
    labels[fit] = found
    if len(fit) < n:
        from sklearn.neighbors import NearestNeighbors

        rest = np.setdiff1d(np.arange(n), fit, assume_unique=True)
        _, nearest = NearestNeighbors(n_neighbors=1).fit(coords[fit]).kneighbors(coords[rest])
        labels[rest] = found[nearest[:, 0]]
    return labels


def _summarise(labels: np.ndarray, names: dict[int, str], coords: np.ndarray, language: str,
               from_cache: bool = False) -> Clusters:
    sizes = {c: int((labels == c).sum()) for c in names}
    centres = {c: tuple(float(v) for v in np.median(coords[labels == c], axis=0)) for c in names}
    return Clusters(labels, names, centres, sizes, language, from_cache)


def _read(cache_file: Path, coords: np.ndarray) -> Clusters:
    with np.load(cache_file, allow_pickle=False) as data:
        names = {int(k): v for k, v in json.loads(str(data["names"])).items()}
        return _summarise(data["labels"], names, coords, str(data["language"]), from_cache=True)
