"""Hybrid ranking: the one definition of how the keyword and the semantic branch are fused, shared by the backend's
hybrid search (``embedding_search.modes``) and the console's Evaluate view (``console.search.evaluate``), so both
fuse the same way. Each branch offers its best :func:`branch_depth` candidates, ``(id, score)`` best first, so an
item that only one branch finds can still make the fused top k. The fusions (:data:`FUSIONS`, :data:`DEFAULT_FUSION`):

- ``rrf``: reciprocal rank fusion. Each branch contributes ``1 / (RRF_K + rank)`` for every item it ranks (rank 1
  = its best); an item's score is the sum over the branches that found it (Cormack, Clarke & Buettcher 2009,
  k = 60). Every branch weighs the same, whatever it found.
- ``weighted-rrf``: the same sum with each branch's contribution times its trust for this query
  (:func:`branch_weights`): how far its best score stands above the last of its ``depth`` candidates, relative to
  the best, squared. A branch whose candidates all score alike (common words matched, or vectors that tell nothing
  apart) is barely heard; one that found only a few items (the rest count 0) is heard fully; one that found
  nothing weighs 0, so the other branch decides alone. Scale-free: it works on Lucene/BM25 and cosine scores alike.
- ``convex``: ``CONVEX_ALPHA x keyword + (1 - CONVEX_ALPHA) x semantic`` of the scores, each branch's scores
  min-max normalised over its own candidates (0 for an item a branch did not offer); a branch whose scores are
  all equal counts 1 for each of its items.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from console.errors import OptionError

RRF_K = 60
FUSIONS = ("weighted-rrf", "rrf", "convex")
DEFAULT_FUSION = "weighted-rrf"
TRUST_POWER = 2                                     # weighted-rrf: a branch's weight is its spread ** this
CONVEX_ALPHA = 0.5                                  # convex: the keyword branch's share

Ranked = Sequence[tuple[str, float]]   # one branch's candidates, (id, score), best first


def branch_depth(k: int) -> int:
    """How many candidates each branch offers to the fusion for a fused top ``k`` (twice k, at least 20)."""
    return max(2 * k, 20)


def check_fusion(name: str | None, parameter: str = "fusion") -> str:
    """The fusion's name (:data:`DEFAULT_FUSION` when empty); an unknown one is an OptionError naming the choices."""
    name = (name or DEFAULT_FUSION).strip()
    if name not in FUSIONS:
        raise OptionError(f"unknown {parameter} {name!r}: choose from {', '.join(FUSIONS)}")
    return name


@dataclass
class Fused:
    """One fused item: its id, the fused score, and its rank (1-based) in each branch that found it."""

    id: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


def rrf_score(ranks: Sequence[int], k: int = RRF_K, weights: Sequence[float] | None = None) -> float:
    """The fused score of an item with these (1-based) ranks, one per branch that found it (each times its
    weight, when given)."""
    weights = weights if weights is not None else [1.0] * len(ranks)
    return sum(w / (k + r) for r, w in zip(ranks, weights))


def _ranks(rankings: Mapping[str, Sequence[str]]) -> dict[str, Fused]:
    fused: dict[str, Fused] = {}
    for branch, ids in rankings.items():
        for rank, item in enumerate(dict.fromkeys(ids), start=1):
            fused.setdefault(item, Fused(item, 0.0)).ranks[branch] = rank
    return fused


def _sorted(fused: dict[str, Fused]) -> list[Fused]:
    """Best first; ties keep the order in which the items were first met (the first branch's ranking first)."""
    order = {item: n for n, item in enumerate(fused)}
    return sorted(fused.values(), key=lambda f: (-f.score, order[f.id]))


def rrf(rankings: Mapping[str, Sequence[str]], k: int = RRF_K,
        weights: Mapping[str, float] | None = None) -> list[Fused]:
    """Fuse ``{branch name: [item ids, best first]}`` into one list, best first (each branch's share times
    ``weights[branch]`` when given). Ties keep the order in which the items were first met, so the result is
    deterministic."""
    if k < 0:
        raise ValueError(f"the RRF constant must be 0 or more, not {k}")
    fused = _ranks(rankings)
    for item in fused.values():
        item.score = rrf_score(list(item.ranks.values()), k,
                               [weights.get(b, 1.0) for b in item.ranks] if weights is not None else None)
    return _sorted(fused)


def spread(hits: Ranked, depth: int) -> float:
    """How far the best score of one branch's candidates stands above the ``depth``-th (0 when the branch offered
    fewer: the items it did not find score nothing), relative to the best: 0..1, 0 for no candidates."""
    if depth < 1:
        raise ValueError(f"the branch depth must be 1 or more, not {depth}")
    scores = [score for _, score in hits]
    if not scores or scores[0] == 0:
        return 0.0
    last = scores[depth - 1] if len(scores) >= depth else 0.0
    return min(1.0, max(0.0, (scores[0] - last) / abs(scores[0])))


def branch_weights(branches: Mapping[str, Ranked], depth: int) -> dict[str, float]:
    """How far each branch can be trusted for this query: its :func:`spread` to the power :data:`TRUST_POWER`."""
    return {b: spread(hits, depth) ** TRUST_POWER for b, hits in branches.items()}


def normalised(hits: Ranked) -> dict[str, float]:
    """Min-max normalised scores of one branch's candidates (1 = its best, 0 = its worst; all 1 when equal)."""
    scores = dict(hits)
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    return {d: (s - low) / (high - low) if high > low else 1.0 for d, s in scores.items()}


def convex(branches: Mapping[str, Ranked], alpha: float = CONVEX_ALPHA) -> list[Fused]:
    """``alpha`` x the keyword branch's normalised score + (1 - alpha) x the semantic branch's (0 where a branch
    did not offer the item); any other branch weighs (1 - alpha) too."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"the convex weight must be from 0 to 1, not {alpha}")
    fused = _ranks({b: [d for d, _ in hits] for b, hits in branches.items()})
    for branch, hits in branches.items():
        share = alpha if branch == "keyword" else 1.0 - alpha
        for item, value in normalised(hits).items():
            fused[item].score += share * value
    return _sorted(fused)


def fuse(branches: Mapping[str, Ranked], fusion: str = DEFAULT_FUSION, depth: int | None = None) -> list[Fused]:
    """The branches' candidates (``{branch: [(id, score), ...]}``, best first) fused by ``fusion``, best first.
    ``depth``: the candidates each branch was asked for (weighted-rrf's measure of a short branch; by default the
    longest branch's count)."""
    fusion = check_fusion(fusion)
    rankings = {b: [d for d, _ in hits] for b, hits in branches.items()}
    if fusion == "rrf":
        return rrf(rankings)
    if fusion == "convex":
        return convex(branches)
    depth = depth or max([len(h) for h in branches.values()] + [1])
    return rrf(rankings, weights=branch_weights(branches, depth))


TIE_STEP = 1e-9   # below the gaps of plain RRF scores (~1e-6); smaller weighted gaps keep their order all the same


def run_scores(fused: Sequence[Fused]) -> dict[str, float]:
    """``{id: score}`` for an evaluation run (ranx ranks by score): each score lowered by its position x
    :data:`TIE_STEP`, so that ties keep the fused order instead of ranx's own tie order."""
    return {item.id: item.score - n * TIE_STEP for n, item in enumerate(fused)}
