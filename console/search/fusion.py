"""Reciprocal rank fusion (RRF): the one definition of hybrid ranking, shared by the backend's hybrid search
(``embedding_search.modes``) and the console's Evaluate view (``console.search.evaluate``), so both fuse the same way.

Each branch (keyword, semantic) contributes ``1 / (RRF_K + rank)`` for every item it ranks (rank 1 = its best);
an item's fused score is the sum over the branches that found it (Cormack, Clarke & Buettcher 2009, k = 60).
Each branch offers its best :func:`branch_depth` candidates, so an item that only one branch finds can still
make the fused top k.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

RRF_K = 60


def branch_depth(k: int) -> int:
    """How many candidates each branch offers to the fusion for a fused top ``k`` (twice k, at least 20)."""
    return max(2 * k, 20)


@dataclass
class Fused:
    """One fused item: its id, the fused score, and its rank (1-based) in each branch that found it."""

    id: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


def rrf_score(ranks: Sequence[int], k: int = RRF_K) -> float:
    """The fused score of an item with these (1-based) ranks, one per branch that found it."""
    return sum(1.0 / (k + r) for r in ranks)


def rrf(rankings: Mapping[str, Sequence[str]], k: int = RRF_K) -> list[Fused]:
    """Fuse ``{branch name: [item ids, best first]}`` into one list, best first. Ties keep the order in which the
    items were first met (the first branch's ranking first), so the result is deterministic."""
    if k < 0:
        raise ValueError(f"the RRF constant must be 0 or more, not {k}")
    fused: dict[str, Fused] = {}
    for branch, ids in rankings.items():
        for rank, item in enumerate(dict.fromkeys(ids), start=1):
            fused.setdefault(item, Fused(item, 0.0)).ranks[branch] = rank
    for item in fused.values():
        item.score = rrf_score(list(item.ranks.values()), k)
    order = {item: n for n, item in enumerate(fused)}
    return sorted(fused.values(), key=lambda f: (-f.score, order[f.id]))


TIE_STEP = 1e-9   # far below the smallest gap between two different RRF scores of ranks < 1,000 (~1e-6)


def run_scores(fused: Sequence[Fused]) -> dict[str, float]:
    """``{id: score}`` for an evaluation run (ranx ranks by score): each score lowered by its position x
    :data:`TIE_STEP`, so that ties keep the fused order instead of ranx's own tie order."""
    return {item.id: item.score - n * TIE_STEP for n, item in enumerate(fused)}
