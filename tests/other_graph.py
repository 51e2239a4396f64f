"""A graph shaped unlike the demo, for the tests that prove the product works on the user's graph with no code
change: other labels (Dish, Bahan, Step), other property names (the title in `nama`, the id in `code`), another
relationship name (MEMAKAI), vectors in `vec` under the index `dish_vectors`, and a type the demo lacks (each
dish's cooking steps as their own nodes, linked to their dish). Built from the repository's own recipes; described
only by :data:`OTHER_GRAPH`, its schema file."""
from __future__ import annotations

from conftest import read_demo_recipes

# A graph shaped unlike the demo: other labels, properties, relationship, id property, and a type the demo lacks.
OTHER_GRAPH = '''
fulltext_index = "dish_text"

[types.dish]
label = "Dish"
id = "code"
title = "nama"
show = ["ringkasan"]
best = "suka"
fulltext = ["nama", "ringkasan"]
vector_property = "vec"
vector_index = "dish_vectors"
text = ["{nama}", "{ringkasan}", "Bahan: {bahan}", "Langkah: {langkah}"]

[types.dish.lists]
bahan = { path = "-[:MEMAKAI]->(:Bahan)", property = "label_bahan" }
langkah = { path = "<-[:LANGKAH_DARI]-(:Step)", property = "isi", order = "urutan", limit = 2 }

[types.dish.record]
bahan = "{bahan}"

[types.dish.filters]
bahan = { path = "-[:MEMAKAI]->(:Bahan)", property = "label_bahan", example = "tempe" }

[types.bahan]
label = "Bahan"
id = "code"
title = "label_bahan"
fulltext = ["label_bahan"]
text = ["{label_bahan}"]

[types.step]
label = "Step"
id = "code"
title = "isi"
text = ["{isi}"]
'''




def other_rows(limit: int = 30) -> list[dict]:
    """One row per dish from the demo recipes (its title, a summary, two ingredients, up to three steps), half of
    them with tempe and half with tahu, so that a filter on `bahan` splits them."""
    rows = []
    for n, row in enumerate(read_demo_recipes("tempe", limit=limit)):
        ingredients = [i.strip() for i in row["Ingredients"].split("--")][:3]
        steps = [s.strip() for s in row["Steps"].split("--") if s.strip()][:3]
        rows.append({"code": f"D{n:03d}", "nama": row["Title"], "suka": n, "ringkasan": steps[0] if steps else "",
                     "bahan": ["tempe" if n % 2 else "tahu", *ingredients[:1]], "steps": steps})
    return rows


def build_other_graph(store, limit: int = 30) -> list[dict]:
    """Write the graph into the store's (empty) database, with the schema's constraints and indexes; return the
    rows it was made from."""
    rows = other_rows(limit)
    store.ensure_schema()
    store.query(
        "UNWIND $rows AS row CREATE (d:Dish {code: row.code, nama: row.nama, suka: row.suka, "
        "ringkasan: row.ringkasan}) "
        "WITH d, row CALL (d, row) { UNWIND row.bahan AS b MERGE (x:Bahan {code: 'B-' + b}) "
        "ON CREATE SET x.label_bahan = b MERGE (d)-[:MEMAKAI]->(x) } "
        "WITH d, row CALL (d, row) { UNWIND range(0, size(row.steps) - 1) AS i "
        "CREATE (:Step {code: d.code + '-' + i, isi: row.steps[i], urutan: i})-[:LANGKAH_DARI]->(d) }",
        rows=rows)
    return rows
