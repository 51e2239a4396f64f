"""The whole demo data set (all six files, 11,751 rows) into the real test Neo4j. Slow: run with -m slow."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
from conftest import empty_database  # noqa: E402
from recipes.testing import manage  # noqa: E402


@pytest.mark.slow
def test_load_demo_data_loads_every_recipe_of_the_demo_files(neo4j_driver, neo4j_settings, neo4j_env):
    empty_database(neo4j_driver, neo4j_settings["database"])
    proc = manage("load_demo_data", env=neo4j_env)
    # 11,751 rows; a recipe listed in two files (e.g. under tahu and tempe) is one node in both categories
    assert "Loaded 11239 recipes from" in proc.stdout
    counts = neo4j_driver.execute_query(
        "MATCH (c:Category)<-[:IN_CATEGORY]-(r) RETURN c.name AS name, count(r) AS n ORDER BY name").records
    assert len(counts) == 6 and sum(r["n"] for r in counts) == 11751
