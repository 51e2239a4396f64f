"""Search-quality evaluation: rank items for labelled queries in several modes, score the rankings, compare them.

A *run* is what every mode produces: ``{query id: {item id: score}}`` (the top k items of each query). Metrics
(recall@k, MRR@k, nDCG@k, precision@k) and the paired significance test between modes come from ranx
(``ranx.evaluate`` / ``ranx.compare``), so this module holds no metric formula. Rankers over a run's own vectors:

- ``keyword``: BM25 (bm25s) over the items' texts, the same texts the vectors were made from;
- ``semantic``: exact cosine between the query vectors (the run's model with its query prompt) and the item vectors;
- ``hybrid``: the fusion (:func:`console.search.fusion.fuse`, :data:`~console.search.fusion.DEFAULT_FUSION` unless
  another of :data:`~console.search.fusion.FUSIONS` is asked for; the backend's hybrid search uses the same function)
  of the keyword and the semantic ranking, each ``branch_depth(k)`` deep.

A new mode is one more entry in :data:`CONSOLE_MODES` (here) or in the management command's table
of live searches; both share :func:`parse_modes`, :func:`evaluate_runs` and :class:`Evaluation`. Plain Python:
no Streamlit or Django import. ranx compiles its metrics with numba on first use (slow once, cached on disk).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from console.errors import ConsoleError, OptionError
from console.search.fusion import DEFAULT_FUSION, branch_depth, check_fusion, fuse, run_scores
from console.search.querysets import QuerySet

Run = dict[str, dict[str, float]]
QueryEncoder = Callable[[list[str]], np.ndarray]
METRICS = ("ndcg", "recall", "mrr", "precision")
STAT_TESTS = ("student", "fisher", "tukey")  # ranx: paired t-test, randomisation test, Tukey's HSD
MAX_P = 0.05


def parse_modes(text: str | Sequence[str], available: Sequence[str], parameter: str = "--modes") -> list[str]:
    """``"keyword,semantic"`` -> ["keyword", "semantic"]; an unknown or missing mode is an OptionError."""
    names = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m and m.strip()]
    if not names:
        raise OptionError(f"{parameter}: name at least one mode ({', '.join(available)})")
    for name in names:
        if name not in available:
            raise OptionError(f"{parameter}: unknown mode {name!r}: choose from {', '.join(available)}")
    return list(dict.fromkeys(names))


def check_k(k: int, parameter: str = "--k", most: int = 100) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= most:
        raise OptionError(f"{parameter} must be a whole number from 1 to {most}, not {k!r}")
    return k


def metric_names(k: int) -> list[str]:
    return [f"{m}@{k}" for m in METRICS]


# -- rankers over a run's own vectors and texts ------------------------------------------------------------------
class KeywordIndex:
    """BM25 (bm25s, Lucene's BM25 variant) over ``texts``; no stemming or stop words (the texts are Indonesian)."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str]):
        import bm25s

        self.ids = list(ids)
        self._bm25s = bm25s
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(list(texts), stopwords=None, show_progress=False), show_progress=False)

    def search(self, queries: Mapping[str, str], k: int) -> Run:
        qids = list(queries)
        if not qids or not self.ids:
            return {q: {} for q in qids}
        tokens = self._bm25s.tokenize([queries[q] for q in qids], stopwords=None, return_ids=False,
                                      show_progress=False)
        docs, scores = self.retriever.retrieve(tokens, k=min(k, len(self.ids)), show_progress=False, n_threads=1)
        return {q: {self.ids[d]: float(s) for d, s in zip(docs[i], scores[i]) if s > 0} for i, q in enumerate(qids)}


class VectorIndex:
    """Exact cosine over ``vectors`` (one row per id); rows are normalised here, so any vectors work."""

    def __init__(self, ids: Sequence[str], vectors: np.ndarray):
        self.ids = list(ids)
        vectors = np.asarray(vectors, dtype=np.float32)
        self.vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def top_k(self, query_vectors: np.ndarray, k: int, exclude: Sequence[int] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """(row indices, cosines) of the k best rows for each query vector, best first."""
        q = np.asarray(query_vectors, dtype=np.float32)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        sims = q @ self.vectors.T
        if exclude is not None:
            sims[np.arange(len(exclude)), np.asarray(exclude)] = -np.inf
        k = min(k, sims.shape[1] - (1 if exclude is not None else 0))
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else np.tile(
            np.arange(sims.shape[1]), (len(q), 1))
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1, kind="stable")[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        return top, np.take_along_axis(sims, top, axis=1)

    def search(self, queries: Mapping[str, str], k: int, encode: QueryEncoder) -> Run:
        qids = list(queries)
        if not qids:
            return {}
        vectors = np.asarray(encode([queries[q] for q in qids]), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.vectors.shape[1]:
            raise ConsoleError(f"the query vectors have {vectors.shape[-1]} dimensions but the items "
                               f"{self.vectors.shape[1]}: embed the queries with the run's model and --dimensions")
        rows, sims = self.top_k(vectors, k)
        return {q: {self.ids[r]: float(s) for r, s in zip(rows[i], sims[i])} for i, q in enumerate(qids)}


def query_encoder(embedder) -> QueryEncoder:
    """The one place that embeds evaluation queries: the model's query prompt, one query per batch, exactly as the
    backend embeds a live query (so the console and ``evaluate_search`` see the same query vectors)."""
    return lambda texts: embedder.encode_query(list(texts), batch_size=1)


@dataclass
class RunVectors:
    """One finished run of one type, as the Evaluate view uses it."""

    label: str
    path: Path
    ids: list[str]
    texts: list[str]
    vectors: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def index(self) -> VectorIndex:
        if not hasattr(self, "_index"):
            self._index = VectorIndex(self.ids, self.vectors)
        return self._index


def load_run(path: str | Path, label: str | None = None) -> RunVectors:
    """A run's embedding file (any format console.files.embfiles reads) with its metadata; an empty file is an error."""
    from console.files.embfiles import read_meta
    from console.explore.projection import load_embedding_set

    path = Path(path)
    data = load_embedding_set(path)
    if len(data) == 0:
        raise ConsoleError(f"{path.name}: the run has no vectors of this type — generate them first")
    return RunVectors(label or path.parent.name, path, data.ids, data.texts, data.vectors, read_meta(path) or {})


def semantic_label(run: RunVectors, several: bool) -> str:
    return f"semantic · {run.label}" if several else "semantic"


def _keyword_runs(runs: Sequence[RunVectors], queries: Mapping[str, str], k: int, encoders) -> dict[str, Run]:
    return {"keyword": KeywordIndex(runs[0].ids, runs[0].texts).search(queries, k)}


def _semantic_runs(runs: Sequence[RunVectors], queries: Mapping[str, str], k: int, encoders) -> dict[str, Run]:
    return {semantic_label(r, len(runs) > 1): r.index.search(queries, k, encoders[i]) for i, r in enumerate(runs)}


def fused_run(keyword: Run, semantic: Run, k: int, fusion: str = DEFAULT_FUSION) -> Run:
    """The fused top k of each query's two rankings (each ``{id: score}``, ranked by score), each branch asked
    for ``branch_depth(k)`` candidates."""
    def ranked(scores: Mapping[str, float]) -> list[tuple[str, float]]:
        return sorted(scores.items(), key=lambda d: -d[1])

    out: Run = {}
    for qid in dict.fromkeys([*keyword, *semantic]):
        fused = fuse({"keyword": ranked(keyword.get(qid) or {}), "semantic": ranked(semantic.get(qid) or {})},
                     fusion, branch_depth(k))
        out[qid] = run_scores(fused[:k])
    return out


def _hybrid_runs(runs: Sequence[RunVectors], queries: Mapping[str, str], k: int, encoders,
                 fusions: Sequence[str] = (DEFAULT_FUSION,)) -> dict[str, Run]:
    depth = branch_depth(k)
    keyword = KeywordIndex(runs[0].ids, runs[0].texts).search(queries, depth)
    out: dict[str, Run] = {}
    for i, r in enumerate(runs):
        semantic = r.index.search(queries, depth, encoders[i])
        for fusion in fusions:
            name = "hybrid" + (f" [{fusion}]" if len(fusions) > 1 else "") + (f" · {r.label}" if len(runs) > 1 else "")
            out[name] = fused_run(keyword, semantic, k, fusion)
    return out


# mode -> (runs, queries, k, one query encoder per run) -> {column name: run}
CONSOLE_MODES: dict[str, Callable[..., dict[str, Run]]] = {"keyword": _keyword_runs, "semantic": _semantic_runs,
                                                           "hybrid": _hybrid_runs}


def console_runs(query_set: QuerySet, runs: Sequence[RunVectors], modes: Sequence[str], k: int,
                 encoders: Sequence[QueryEncoder], fusions: Sequence[str] = (DEFAULT_FUSION,)) -> dict[str, Run]:
    """Rank the query set in each mode over the runs' own vectors and texts (no Neo4j), hybrid once per fusion of
    ``fusions`` (its column named after the fusion when there are several). The query set's ids must all be items
    of every run."""
    if not runs:
        raise OptionError("pick at least one finished run")
    modes = parse_modes(modes, list(CONSOLE_MODES), "modes")
    check_k(k, "k")
    for run in runs:
        query_set.check_ids(set(run.ids), f"run {run.label} ({run.path.name}, {len(run.ids):,} items)")
    out: dict[str, Run] = {}
    fusions = [check_fusion(f) for f in fusions] or [DEFAULT_FUSION]
    for mode in modes:
        extra = {"fusions": fusions} if mode == "hybrid" else {}
        out.update(CONSOLE_MODES[mode](runs, query_set.queries, k, encoders, **extra))
    return out


# -- scoring ----------------------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """Mean metrics per mode, per-query values, and paired tests between every two modes (ranx)."""

    query_set: str
    k: int
    metrics: list[str]
    modes: list[str]
    n_queries: int
    stat_test: str
    scores: dict[str, dict[str, float]]                       # mode -> metric -> mean
    per_query: dict[str, dict[str, dict[str, float]]]         # mode -> metric -> query id -> value
    p_values: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # a -> b -> metric -> p
    win_tie_loss: dict[str, dict[str, dict[str, dict[str, int]]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    by_kind: dict[str, "Evaluation"] = field(default_factory=dict)   # the same, on each kind's queries alone

    def to_dict(self, per_query: bool = True) -> dict:
        out = {"query_set": self.query_set, "k": self.k, "metrics": self.metrics, "modes": self.modes,
               "queries": self.n_queries, "stat_test": self.stat_test, "max_p": MAX_P, "scores": self.scores,
               "comparisons": self.comparisons(), "notes": self.notes}
        if self.by_kind:
            out["by_kind"] = {kind: {"queries": ev.n_queries, "scores": ev.scores, "comparisons": ev.comparisons()}
                              for kind, ev in self.by_kind.items()}
        if per_query:
            out["per_query"] = self.per_query
        return out

    def comparisons(self) -> list[dict]:
        """Each later mode against each earlier one: difference of means, p-value, significant at MAX_P."""
        rows = []
        for i, a in enumerate(self.modes):
            for b in self.modes[i + 1:]:
                for m in self.metrics:
                    p = self.p_values.get(b, {}).get(a, {}).get(m)
                    wtl = self.win_tie_loss.get(b, {}).get(a, {}).get(m, {})
                    rows.append({"mode": b, "against": a, "metric": m,
                                 "difference": self.scores[b][m] - self.scores[a][m], "p_value": p,
                                 "significant": p is not None and p < MAX_P,
                                 "wins": wtl.get("W"), "ties": wtl.get("T"), "losses": wtl.get("L")})
        return rows

    def table(self) -> str:
        """The terminal table: modes x metrics, then the pairwise differences with their p-values."""
        width = max(len(m) for m in self.modes + ["mode"])
        lines = [f"{self.query_set}: {self.n_queries} queries, k={self.k}",
                 "  ".join([f"{'mode':<{width}}"] + [f"{m:>12}" for m in self.metrics])]
        for mode in self.modes:
            lines.append("  ".join([f"{mode:<{width}}"] + [f"{self.scores[mode][m]:>12.4f}" for m in self.metrics]))
        comparisons = self.comparisons()
        if comparisons:
            lines.append(f"paired {self.stat_test} test, * = p < {MAX_P}:")
        for row in comparisons:
            p = "n/a" if row["p_value"] is None else f"{row['p_value']:.4f}"
            lines.append(f"  {row['mode']} vs {row['against']}, {row['metric']}: {row['difference']:+.4f} "
                         f"(p={p}{' *' if row['significant'] else ''}; better on {row['wins']}, same on "
                         f"{row['ties']}, worse on {row['losses']} queries)")
        if self.by_kind:
            first = self.metrics[0]
            lines.append(f"{first} per kind of query:")
            for kind, ev in self.by_kind.items():
                lines.append(f"  {kind} ({ev.n_queries}): " + ", ".join(f"{mode} {ev.scores[mode][first]:.4f}"
                                                                       for mode in ev.modes))
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def evaluate_runs(query_set: QuerySet, runs: Mapping[str, Run], k: int, *, stat_test: str = "student",
                  per_kind: bool = True) -> Evaluation:
    """Score each run (mode name -> run) against the query set's labels with ranx; with two runs or more, the paired
    ``stat_test`` between every two (ranx.compare). When the set's queries have kinds (and ``per_kind``), the same
    again on each kind's queries alone (:attr:`Evaluation.by_kind`)."""
    from ranx import Qrels, Run as RanxRun, compare, evaluate

    if stat_test not in STAT_TESTS:
        raise OptionError(f"--stat-test must be one of {', '.join(STAT_TESTS)}, not {stat_test!r}")
    if not runs:
        raise OptionError("no mode to evaluate")
    check_k(k, "k")
    metrics = metric_names(k)
    qrels = Qrels({q: dict(docs) for q, docs in query_set.qrels.items()})
    ranx_runs = []
    for name, run in runs.items():
        full = {q: dict(run.get(q) or {}) for q in query_set.qrels}
        ranx_run = RanxRun({q: d for q, d in full.items() if d}, name=name).make_comparable(qrels)
        ranx_runs.append(ranx_run)
    p_values, wtl = {}, {}
    if len(ranx_runs) > 1:
        report = compare(qrels, ranx_runs, metrics=metrics, stat_test=stat_test, max_p=MAX_P).to_dict()
        for name in report["model_names"]:
            p_values[name] = {other: {m: _p_value(v) for m, v in by_metric.items()}
                              for other, by_metric in report[name]["comparisons"].items()}
            wtl[name] = report[name]["win_tie_loss"]
    else:
        evaluate(qrels, ranx_runs[0], metrics)
    scores = {r.name: {m: float(r.mean_scores[m]) for m in metrics} for r in ranx_runs}
    per_query = {r.name: {m: {q: float(v) for q, v in r.scores[m].items()} for m in metrics} for r in ranx_runs}
    by_kind = {kind: evaluate_runs(sub, runs, k, stat_test=stat_test, per_kind=False)
               for kind, sub in query_set.by_kind().items()} if per_kind else {}
    return Evaluation(query_set.name, k, metrics, list(runs), len(query_set.qrels), stat_test, scores, per_query,
                      p_values, wtl, list(query_set.notes), by_kind)


def _p_value(value) -> float | None:
    """ranx's p-value as a float; None where the test has none (identical scores give NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


# -- where two runs disagree ------------------------------------------------------------------------------------
def top_k_overlap(query_set: QuerySet, run_a: Run, run_b: Run, k: int) -> list[dict]:
    """Per query: the share of the two top-k lists they have in common (0..1) and the ids only one of them has,
    least overlap first."""
    rows = []
    for qid, text in query_set.queries.items():
        a = sorted((run_a.get(qid) or {}).items(), key=lambda x: -x[1])[:k]
        b = sorted((run_b.get(qid) or {}).items(), key=lambda x: -x[1])[:k]
        ids_a, ids_b = [d for d, _ in a], [d for d, _ in b]
        common = set(ids_a) & set(ids_b)
        rows.append({"query_id": qid, "query": text, "overlap": len(common) / k,
                     "only_first": [d for d in ids_a if d not in common],
                     "only_second": [d for d in ids_b if d not in common]})
    rows.sort(key=lambda r: (r["overlap"], r["query_id"]))
    return rows


def neighbour_overlap(first: RunVectors, second: RunVectors, k: int = 10, sample: int = 1000,
                      seed: int = 0) -> dict:
    """How alike the two runs' neighbourhoods are: for a sample of the items both runs hold, the share of each
    item's k nearest neighbours (itself left out) that the two runs have in common."""
    common = sorted(set(first.ids) & set(second.ids))
    if len(common) < 2:
        raise ConsoleError(f"runs {first.label} and {second.label} have fewer than 2 items in common")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(common), size=min(sample, len(common)), replace=False).tolist())
    ids = [common[i] for i in chosen]
    k = min(k, len(first.ids) - 1, len(second.ids) - 1)
    neighbours = []
    for run in (first, second):
        rows = {item: n for n, item in enumerate(run.ids)}
        picked = [rows[i] for i in ids]
        top, _ = run.index.top_k(run.index.vectors[picked], k, exclude=picked)
        neighbours.append([{run.ids[j] for j in row} for row in top])
    shares = np.array([len(a & b) / k for a, b in zip(*neighbours)])
    return {"items": len(ids), "k": k, "mean": float(shares.mean()), "median": float(np.median(shares)),
            "min": float(shares.min()), "identical_share": float((shares == 1.0).mean())}


@dataclass
class ConsoleResult:
    """What the Evaluate view shows: the metrics, and where the two compared rankings disagree."""

    evaluation: Evaluation
    runs: dict[str, Run]
    compared: tuple[str, str] | None = None   # the two columns whose top-k lists are compared
    overlap: list[dict] = field(default_factory=list)
    neighbours: dict | None = None            # neighbour overlap between the two runs' vectors


def evaluate_console(query_set: QuerySet, runs: Sequence[RunVectors], modes: Sequence[str], k: int,
                     encoders: Sequence[QueryEncoder], *, stat_test: str = "student",
                     fusions: Sequence[str] = (DEFAULT_FUSION,)) -> ConsoleResult:
    """The console's judgement on one or two runs: metrics per mode (and per run for semantic), the paired tests,
    and the disagreement between the two runs (or, with one run, between the first two modes)."""
    if len(runs) > 2:
        raise OptionError("pick one or two runs to compare")
    ranked = console_runs(query_set, runs, modes, k, encoders, fusions)
    result = ConsoleResult(evaluate_runs(query_set, ranked, k, stat_test=stat_test), ranked)
    semantic = [name for name in ranked if name.startswith("semantic")]
    pair = tuple(semantic) if len(semantic) == 2 else tuple(list(ranked)[:2])
    if len(pair) == 2:
        result.compared = pair
        result.overlap = top_k_overlap(query_set, ranked[pair[0]], ranked[pair[1]], k)
    if len(runs) == 2:
        result.neighbours = neighbour_overlap(runs[0], runs[1], k)
    return result
