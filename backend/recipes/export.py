"""Export of the graph in the console's input format (records with id, type, text and metadata), streaming.

Each type is read in pages ordered by ``id`` (keyset pagination: ``WHERE n.id > $after ORDER BY n.id LIMIT $page``,
backed by the uniqueness constraint's index) and written record by record, so memory stays constant whatever the
size of the graph. Files: ``recipes.json``, ``ingredients.json``, ``categories.json`` (or ``.jsonl`` / ``.csv``),
written to a temporary name and renamed when complete.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Callable, Iterator

FORMATS = ("json", "jsonl", "csv")
FILE_STEMS = {"recipe": "recipes", "ingredient": "ingredients", "category": "categories"}
CSV_COLUMNS = ["id", "type", "title", "description", "ingredients", "categories", "text"]
LIST_SEPARATOR = "; "


def _sentence(text: str | None) -> str:
    text = " ".join((text or "").split()).strip()
    if text and text[-1] not in ".!?…":
        text += "."
    return text


def build_text(title: str | None, description: str | None, ingredients: list[str] | None = None,
               categories: list[str] | None = None) -> str:
    """The text that is embedded, as in the seed: "Title. Description. Ingredients: a, b. Categories: x, y."."""
    parts = [_sentence(title), _sentence(description)]
    if ingredients:
        parts.append(f"Ingredients: {', '.join(ingredients)}.")
    if categories:
        parts.append(f"Categories: {', '.join(categories)}.")
    return " ".join(p for p in parts if p)


RECIPE_PAGE = """
MATCH (r:Recipe) WHERE r.id > $after
WITH r ORDER BY r.id LIMIT $page
RETURN r.id AS id, r.title AS title, r.description AS description,
       [(r)-[h:HAS_INGREDIENT]->(i:Ingredient) | [coalesce(h.position, 0), i.name]] AS ingredients,
       [(r)-[:IN_CATEGORY]->(c:Category) | c.name] AS categories
"""
INGREDIENT_PAGE = """
MATCH (i:Ingredient) WHERE i.id > $after
WITH i ORDER BY i.id LIMIT $page
CALL (i) {
  OPTIONAL MATCH (r:Recipe)-[:HAS_INGREDIENT]->(i)
  WITH r ORDER BY r.loves DESC, r.id
  RETURN count(r) AS uses, collect(r.title)[..3] AS examples
}
CALL (i) {
  OPTIONAL MATCH (i)<-[:HAS_INGREDIENT]-(:Recipe)-[:IN_CATEGORY]->(c:Category)
  WITH c.name AS name, count(*) AS n WHERE name IS NOT NULL
  ORDER BY n DESC, name
  RETURN collect(name) AS categories
}
RETURN i.id AS id, i.name AS name, uses, examples, categories
"""
CATEGORY_PAGE = """
MATCH (c:Category) WHERE c.id > $after
WITH c ORDER BY c.id LIMIT $page
CALL (c) {
  OPTIONAL MATCH (c)<-[:IN_CATEGORY]-(r:Recipe)
  RETURN count(r) AS recipes
}
CALL (c) {
  OPTIONAL MATCH (c)<-[:IN_CATEGORY]-(:Recipe)-[:HAS_INGREDIENT]->(i:Ingredient)
  WITH i.name AS name, count(*) AS n WHERE name IS NOT NULL
  ORDER BY n DESC, name LIMIT 10
  RETURN collect(name) AS ingredients
}
RETURN c.id AS id, c.name AS name, recipes, ingredients
"""


def _recipe(row: dict) -> dict:
    ingredients = [name for _, name in sorted(row["ingredients"])]
    categories = sorted(row["categories"])
    return {
        "id": row["id"], "type": "recipe", "title": row["title"], "description": row["description"] or "",
        "ingredients": ingredients, "categories": categories,
        "text": build_text(row["title"], row["description"], ingredients, categories),
    }


def _ingredient(row: dict) -> dict:
    uses = row["uses"]
    description = f"Ingredient used in {uses} recipe{'s' if uses != 1 else ''}"
    if row["examples"]:
        description += f", such as {', '.join(row['examples'])}"
    return {
        "id": row["id"], "type": "ingredient", "title": row["name"], "name": row["name"],
        "description": description, "categories": row["categories"],
        "text": build_text(row["name"], description, None, row["categories"]),
    }


def _category(row: dict) -> dict:
    description = f"Category of {row['recipes']} recipe{'s' if row['recipes'] != 1 else ''}"
    return {
        "id": row["id"], "type": "category", "title": row["name"], "name": row["name"],
        "description": description, "ingredients": row["ingredients"],
        "text": build_text(row["name"], description, row["ingredients"], None),
    }


PAGES = {"recipe": (RECIPE_PAGE, _recipe), "ingredient": (INGREDIENT_PAGE, _ingredient),
         "category": (CATEGORY_PAGE, _category)}


def iter_records(store, type_: str, *, limit: int | None = None, page_size: int = 1000) -> Iterator[dict]:
    """Records of one type in id order, one page at a time."""
    query, make = PAGES[type_]
    after, produced = "", 0
    while True:
        page = page_size if limit is None else min(page_size, limit - produced)
        if page <= 0:
            return
        rows = store.read(query, after=after, page=page)
        for row in rows:
            yield make(row)
        produced += len(rows)
        if len(rows) < page:
            return
        after = rows[-1]["id"]


def count(store, type_: str) -> int:
    label = {"recipe": "Recipe", "ingredient": "Ingredient", "category": "Category"}[type_]
    return store.read(f"MATCH (n:{label}) RETURN count(n) AS n")[0]["n"]


def output_file(out_dir: Path, type_: str, fmt: str) -> Path:
    return Path(out_dir) / f"{FILE_STEMS[type_]}.{fmt}"


def write_records(records: Iterator[dict], path: Path, fmt: str,
                  progress: Callable[[int], None] | None = None) -> int:
    """Write records one by one to ``path`` (via a temporary file renamed at the end); returns the count."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = None
            if fmt == "json":
                fh.write("[")
            elif fmt == "csv":
                writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
                writer.writeheader()
            for record in records:
                if fmt == "json":
                    fh.write(",\n " if n else "\n ")
                    fh.write(json.dumps(record, ensure_ascii=False))
                elif fmt == "jsonl":
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                else:
                    writer.writerow({k: LIST_SEPARATOR.join(v) if isinstance(v, list) else v
                                     for k, v in record.items()})
                n += 1
                if progress:
                    progress(n)
            if fmt == "json":
                fh.write("\n]\n" if n else "]\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n
