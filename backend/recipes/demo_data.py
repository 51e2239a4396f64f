"""The demo data set: 11,751 Indonesian home recipes (Cookpad, 2020; data/indonesian-recipes/*.csv.gz in the repository),
turned into the recipe graph.

A recipe row has Title, Ingredients and Steps (lists joined by ``--``), Loves and URL (``/id/resep/<number>-...``,
whose number is the stable id). Ingredient lines are free text ("2 siung bawang putih (haluskan)", "Bumbu halus:",
"Secukupnya garam,lada & penyedap rasa"); :func:`clean_ingredient` turns one line into zero or more clean names.
The file name (ayam, ikan, sapi, tahu, telur, tempe) is the recipe's category.
"""
from __future__ import annotations

import csv
import gzip
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from console.graphschema import DEMO_SCHEMA, load_schema, render_text

CATEGORY_NAMES = {"ayam": "Ayam", "ikan": "Ikan", "sapi": "Sapi", "tahu": "Tahu", "telur": "Telur", "tempe": "Tempe"}

# Measures and counters that precede a name ("2 siung", "1/2 sdt", "secukupnya").
UNITS = {
    "sdm", "sdt", "sdk", "sendok", "siung", "buah", "bh", "butir", "btr", "lembar", "lbr", "batang",
    "btg", "gram", "gr", "grm", "g", "kg", "ml", "liter", "ltr", "lt", "l", "ruas", "ikat", "secukupnya", "sckp",
    "scukupnya", "sejumput", "bungkus", "bks", "sachet", "saset", "papan", "potong", "ptg", "ekor", "gelas", "cup",
    "cm", "mangkok", "mangkuk", "genggam", "iris", "ons", "pcs", "biji", "bj", "kotak", "kaleng", "pack", "tangkai",
    "helai", "keping", "slice", "bonggol", "buku", "jari", "sedikit", "kurleb", "kira", "kira-kira", "sct", "btir",
    "sejempol", "ruas", "sisir", "lonjor", "blok", "ujung", "sendok", "porsi", "piring", "kecil", "besar", "sedang",
    "secukup", "sesuai", "selera", "optional", "opsional", "bila", "suka", "jika", "ada", "kurang", "lebih", "ekstra",
    "sckpnya", "secukupnya", "bgks", "scht", "rp", "rb", "ribu", "ribuan", "harga", "½", "¼", "¾", "±", "+/-", "-", "+",
}
# Words after which the rest of a segment is a note ("minyak untuk menumis", "bawang putih, haluskan").
NOTE_STARTS = {"untuk", "utk", "buat", "sbg", "sebagai", "secukupnya", "sesuai", "yang", "yg", "dan"}
PREPARATION = {
    "iris", "diiris", "potong", "dipotong", "haluskan", "dihaluskan", "cincang", "dicincang", "geprek", "digeprek",
    "memarkan", "dimemarkan", "rebus", "direbus", "goreng", "digoreng", "parut", "diparut", "kupas", "dikupas",
    "cuci", "dicuci", "tumbuk", "ditumbuk", "sangrai", "disangrai", "bakar", "dibakar", "rendam", "direndam",
    "buang", "dibuang", "ambil", "cairkan", "larutkan", "kukus", "dikukus", "tipis", "kasar", "halus", "bulat",
    "serong", "korek", "lalu", "sisihkan", "belah", "dibelah", "seduh", "diseduh", "haluskan)", "kocok", "dikocok",
    "dadu", "rajang", "dirajang", "ulek", "uleg", "diulek", "diuleg", "gepek", "petiki", "dilarutkan", "ditiriskan",
    "siapkan", "cacah", "dicacah", "suwir", "disuwir", "tiriskan", "seduh",
}
_PARENS = re.compile(r"\([^)]*\)?|\[[^\]]*\]?")
_SPLIT = re.compile(r"[,;&+/]| dan | atau ")
_NOT_A_LETTER = re.compile(r"[^a-z\s'-]+")


def slugify(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def clean_ingredient(line: str) -> list[str]:
    """Names in one ingredient line: quantities, units, notes in parentheses and section headers removed.

    >>> clean_ingredient("2 siung bawang putih (haluskan)")
    ['bawang putih']
    >>> clean_ingredient("Secukupnya garam,lada & penyedap rasa")
    ['garam', 'lada', 'penyedap rasa']
    >>> clean_ingredient("Bumbu halus:")
    []
    """
    line = line.strip()
    if not line or line.endswith(":") or line.endswith(":)"):
        return []
    line = _PARENS.sub(" ", line.lower()).replace("sendok makan", "sdm").replace("sendok teh", "sdt")
    names = []
    for segment in _SPLIT.split(line):
        words = []
        for word in segment.split():
            if any(ch.isdigit() for ch in word):
                continue  # "2", "1/2", "250gr", "potong2"
            word = _NOT_A_LETTER.sub("", word).strip("-'")
            if word:
                words.append(word)
        while words and words[0] in UNITS:
            words.pop(0)
        for i, word in enumerate(words):
            if word in NOTE_STARTS or (i and word in PREPARATION):
                words = words[:i]
                break
        while words and words[-1] in UNITS:
            words.pop()
        if not words or words[0] in PREPARATION or len(words) > 4:
            continue
        name = " ".join(words)
        if 2 <= len(name) <= 40 and name not in names:
            names.append(name)
    return names


def describe_steps(steps: list[str], limit: int = 200) -> str:
    """The first step(s), shortened to about ``limit`` characters at a word boundary."""
    text = ""
    for step in steps:
        text = f"{text} {step}".strip()
        if len(text) >= limit // 2:
            break
    text = re.sub(r"\s+", " ", text)
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0].rstrip(",.;:") + "…"
    return text


@dataclass
class DemoRecipe:
    id: str
    title: str
    description: str
    steps: str
    loves: int
    url: str
    ingredients: list[dict] = field(default_factory=list)   # {"id", "name"} in recipe order
    categories: list[dict] = field(default_factory=list)    # {"id", "name"}

    def row(self) -> dict:
        return {
            "id": self.id, "title": self.title, "description": self.description, "steps": self.steps,
            "loves": self.loves, "url": self.url, "ingredients": self.ingredients, "categories": self.categories,
            "text": render_text(load_schema(DEMO_SCHEMA).types["recipe"].text, {
                "title": self.title, "description": self.description,
                "ingredients": [i["name"] for i in self.ingredients],
                "categories": [c["name"] for c in self.categories]}),
        }


def recipe_files(data_dir: Path) -> list[Path]:
    files = sorted(Path(data_dir).glob("*.csv.gz")) + sorted(Path(data_dir).glob("*.csv"))
    if not files:
        raise FileNotFoundError(
            f"No recipe files (*.csv.gz) in {data_dir}: pass --data-dir or set DEMO_DATA_DIR to the folder of "
            "the Indonesian recipes (the repository ships them in data/indonesian-recipes)"
        )
    return files


def read_recipes(data_dir: Path, limit: int | None = None) -> list[DemoRecipe]:
    """All recipes of the folder, merged by id (a recipe listed under two files gets both categories).

    ``limit``: at most that many recipes in all, taken evenly from each file.
    """
    files = recipe_files(data_dir)
    per_file = math.ceil(limit / len(files)) if limit else None
    recipes: dict[str, DemoRecipe] = {}
    for path in files:
        stem = path.name.split(".")[0].lower()
        category = {"id": f"category-{slugify(stem)}", "name": CATEGORY_NAMES.get(stem, stem.title())}
        taken = 0
        for row in _rows(path):
            if per_file and taken >= per_file:
                break
            if limit and len(recipes) >= limit:
                break
            match = re.search(r"/(\d+)", row.get("URL") or "")
            title = (row.get("Title") or "").strip()
            if not match or not title:
                continue
            recipe_id = f"recipe-{match.group(1)}"
            recipe = recipes.get(recipe_id)
            if recipe is None:
                steps = [s.strip() for s in (row.get("Steps") or "").split("--") if s.strip()]
                recipe = DemoRecipe(
                    id=recipe_id, title=title, description=describe_steps(steps), steps="\n".join(steps),
                    loves=_int(row.get("Loves")), url=row.get("URL", ""),
                )
                seen = set()
                for line in (row.get("Ingredients") or "").split("--"):
                    for name in clean_ingredient(line):
                        ingredient_id = f"ingredient-{slugify(name)}"
                        if ingredient_id not in seen and ingredient_id != "ingredient-":
                            seen.add(ingredient_id)
                            recipe.ingredients.append({"id": ingredient_id, "name": name[:1].upper() + name[1:]})
                recipes[recipe_id] = recipe
                taken += 1
            if category not in recipe.categories:
                recipe.categories.append(category)
    return list(recipes.values())


def _rows(path: Path) -> Iterator[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


LOAD_QUERY = """
UNWIND $rows AS row
MERGE (r:Recipe {id: row.id})
SET r.title = row.title, r.description = row.description, r.steps = row.steps, r.loves = row.loves,
    r.url = row.url, r.text = row.text
WITH r, row
CALL (r, row) {
  UNWIND row.categories AS cat
  MERGE (c:Category {id: cat.id}) ON CREATE SET c.name = cat.name
  MERGE (r)-[:IN_CATEGORY]->(c)
}
CALL (r, row) {
  UNWIND range(0, size(row.ingredients) - 1) AS position
  WITH row.ingredients[position] AS ing, position
  MERGE (i:Ingredient {id: ing.id}) ON CREATE SET i.name = ing.name
  MERGE (r)-[h:HAS_INGREDIENT]->(i) SET h.position = position
}
"""


def load(store, recipes: list[DemoRecipe], *, batch_size: int = 500,
         progress: Callable[[int, int], None] | None = None) -> dict:
    """MERGE the recipes with their ingredients and categories, one transaction per batch (idempotent)."""
    store.ensure_schema()
    done = 0
    for start in range(0, len(recipes), batch_size):
        rows = [r.row() for r in recipes[start:start + batch_size]]
        store.write_tx(lambda tx, rows=rows: tx.run(LOAD_QUERY, rows=rows).consume())
        done += len(rows)
        if progress:
            progress(done, len(recipes))
    counts = store.query(
        "CALL () { MATCH (n:Recipe) RETURN count(n) AS recipes } "
        "CALL () { MATCH (n:Ingredient) RETURN count(n) AS ingredients } "
        "CALL () { MATCH (n:Category) RETURN count(n) AS categories } RETURN recipes, ingredients, categories"
    )[0]
    return counts
