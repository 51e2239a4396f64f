#!/usr/bin/env python3
"""Build the demo query set data/queries/recipes.jsonl from the hand-written rules in data/queries/rules.json.

Each rule is a query written by hand (Indonesian, the way a cook would search) and a relevance rule a reader can
check against the recipes: the recipe is in ``category`` (when given), for every group in ``all_of`` at least
one of its ingredient names contains one of the group's words as whole words (``"kecap"`` matches "kecap manis"
but "pala" does not match "kepala"), and none of its ingredient names contains a word of ``none_of`` (when given:
"tidak pedas" is no chili). Only ingredients and categories are judged, never the title, so a query's dish name
or cooking method ("goreng", "pepes") is never the reason a recipe counts as relevant. Each rule has a ``kind``
(:data:`KINDS`: how users type queries), written to its query line, so that the figures can be reported per kind.

    python scripts/build_demo_queries.py [--data-dir data/indonesian-recipes] [--output data/queries/recipes.jsonl]

``--check`` compares with the file instead of writing it (tests/test_demo_queries.py does the same).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
RULES = ROOT / "data" / "queries" / "rules.json"
OUTPUT = ROOT / "data" / "queries" / "recipes.jsonl"
MIN_RELEVANT = 3
# dish: an Indonesian dish name; ingredients: a combination of ingredients; method: a cooking method and what it
# needs; idea: a loose wish ("masakan berkuah untuk anak"); english: English words for Indonesian dishes; typo: one
# of the other kinds with a misspelt word.
KINDS = ("dish", "ingredients", "method", "idea", "english", "typo")


def _pattern(words: list[str]) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(re.escape(w.lower()) for w in words) + r")\b")


def relevant_ids(rule: dict, recipes) -> list[str]:
    """Ids of the recipes the rule judges relevant, in the recipes' order."""
    groups = [_pattern(words) for words in rule["all_of"]]
    excluded = _pattern(rule["none_of"]) if rule.get("none_of") else None
    out = []
    for recipe in recipes:
        if rule.get("category") and rule["category"] not in {c["name"] for c in recipe.categories}:
            continue
        names = [i["name"].lower() for i in recipe.ingredients]
        if excluded is not None and any(excluded.search(name) for name in names):
            continue
        if all(any(group.search(name) for name in names) for group in groups):
            out.append(recipe.id)
    return out


def build(data_dir: Path = ROOT / "data" / "indonesian-recipes", rules_path: Path = RULES) -> list[dict]:
    from recipes.demo_data import read_recipes

    recipes = read_recipes(data_dir)
    rules = json.loads(rules_path.read_text(encoding="utf-8"))
    lines = []
    for rule in rules:
        if rule.get("kind") not in KINDS:
            raise SystemExit(f"{rules_path.name}: rule {rule['id']} has kind {rule.get('kind')!r}: choose from "
                             f"{', '.join(KINDS)}")
        ids = relevant_ids(rule, recipes)
        if len(ids) < MIN_RELEVANT:
            raise SystemExit(f"{rules_path.name}: rule {rule['id']} finds {len(ids)} recipes (fewer than "
                             f"{MIN_RELEVANT}): widen it")
        lines.append({"id": rule["id"], "kind": rule["kind"], "query": rule["query"], "relevant": ids})
    return lines


def render(lines: list[dict]) -> str:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "indonesian-recipes")
    parser.add_argument("--rules", type=Path, default=RULES)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="fail when the file differs from the rules' result")
    args = parser.parse_args(argv)
    text = render(build(args.data_dir, args.rules))
    if args.check:
        same = args.output.exists() and args.output.read_text(encoding="utf-8") == text
        print(f"{args.output}: {'up to date' if same else 'differs from the rules: rebuild it'}")
        return 0 if same else 1
    args.output.write_text(text, encoding="utf-8")
    counts = [len(json.loads(line)["relevant"]) for line in text.splitlines()]
    print(f"Wrote {args.output}: {len(counts)} queries, {min(counts)}-{max(counts)} relevant recipes each "
          f"(median {sorted(counts)[len(counts) // 2]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
