"""End to end in a real headless Chromium against `streamlit run app.py`: upload a real export file, generate
with MiniLM, see the map and the neighbours of a query, push into the real test Neo4j, and check the vectors
there. Screenshots of each page go to test-output/screenshots/ (and docs/screenshots/ for the README)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import read_demo_recipes
from console.files.embfiles import read_embeddings

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "test-output" / "screenshots"
DOC_SHOTS = ROOT / "docs" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def graph(neo4j_clean):
    """The real test Neo4j, emptied."""
    return neo4j_clean


@pytest.fixture
def export_file(tmp_path):
    """A real export file: 50 chicken and 50 tempeh recipes from the demo data, in the export format."""
    records = [{"id": f"recipe-{r['URL'].rstrip('/').split('/')[-1].split('-')[0]}", "type": "recipe",
                "title": r["Title"], "categories": [kind.title()],
                "text": f"{r['Title']}. Ingredients: {r['Ingredients'].strip('-').replace('--', ', ')}. "
                        f"Categories: {kind.title()}."}
               for kind in ("ayam", "tempe") for r in read_demo_recipes(kind, 50)]
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    return path, records


@contextmanager
def _console(tmp_path, neo4j_settings, **extra_env):
    """`streamlit run app.py` on a free port, with its own work folder and the test Neo4j's settings."""
    port = _free_port()
    env = dict(os.environ, CONSOLE_WORKDIR=str(tmp_path / "work"), HF_HUB_OFFLINE="1",
               NEO4J_URI=neo4j_settings["uri"], NEO4J_USER=neo4j_settings["user"],
               NEO4J_PASSWORD=neo4j_settings["password"], NEO4J_DATABASE=neo4j_settings["database"], **extra_env)
    env.pop("CONSOLE_PASSWORD", None)
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text())
        time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def console_url(tmp_path, neo4j_settings):
    with _console(tmp_path, neo4j_settings) as url:
        yield url


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh --browser)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def _settle(page) -> None:
    """Wait until the script run is over and no element is stale (greyed out, from the run before)."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')")
    page.wait_for_timeout(300)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    DOC_SHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(5, 5)  # no tooltip over the picture
    _settle(page)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    shutil.copyfile(SHOTS / f"{name}.png", DOC_SHOTS / f"{name}.png")


def _points_drawn(page) -> int:
    """Points in the map's traces (the neighbour, selection and exclusion marks left out), as plotly holds them in the page
    (``_fullData``: the coordinates decoded from the base64 typed arrays the page receives)."""
    return page.evaluate("""() => document.querySelector('.js-plotly-plot')._fullData
        .filter(t => !['neighbours', 'selected', 'excluded'].includes(t.name)).reduce((n, t) => n + t.x.length, 0)""")


def _point_position(page, n: int) -> tuple[float, float]:
    """Where the map's n-th point of its first trace is on the screen (WebGL points are no DOM elements)."""
    return tuple(page.evaluate("""(n) => {
        const gd = document.querySelector('.js-plotly-plot'), t = gd._fullData[0];  // typed arrays decoded
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
        return [box.left + xa.l2p(t.x[n]), box.top + ya.l2p(t.y[n])];
    }""", n))


def _go(page, title: str) -> None:
    page.get_by_role("link", name=title).click()


def _pick_model(page, label: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text="Model").first.click()
    page.get_by_role("option", name=label).click()
    _settle(page)


@pytest.mark.timeout(300)
def test_one_click_changes_the_source_and_the_model_picker_offers_what_is_here(console_url, page, export_file):
    """The "Generate from" radio took two clicks to come back to "Uploaded files", and an upload made meanwhile was
    not validated; the Generate page offers the shipped model and "other…" (which opens the text field)."""
    page.goto(console_url)
    page.get_by_text("Upload export files").wait_for()
    for _ in range(2):  # twice, as the operator did
        page.get_by_text("A folder on the server", exact=True).click()
        page.get_by_text("reading a folder on the server is off").wait_for()
        page.get_by_text("Uploaded files", exact=True).click()  # one click back
        page.get_by_text("No files uploaded yet.").wait_for(timeout=10_000)
    page.get_by_text("A folder on the server", exact=True).click()
    page.get_by_text("reading a folder on the server is off").wait_for()
    page.locator("input[type=file]").set_input_files(str(export_file[0]))
    page.get_by_text("All 100 records are valid (100 recipe). Next: the Generate page.").wait_for()

    _go(page, "Generate")
    page.get_by_text("is neither a folder on this server nor in the local model cache").wait_for()
    assert page.get_by_role("textbox", name="Model id or folder", exact=True).input_value() == "Qwen/Qwen3-Embedding-0.6B"
    _pick_model(page, "all-MiniLM-L6-v2 (shipped small model)")
    page.get_by_role("textbox", name="Model id or folder", exact=True).wait_for(state="detached", timeout=10_000)
    page.get_by_text("is neither a folder on this server").wait_for(state="detached", timeout=10_000)
    _pick_model(page, "other… (a model id or a folder on this server)")
    page.get_by_role("textbox", name="Model id or folder", exact=True).wait_for()


@pytest.mark.timeout(480)  # 300 s ran out on a loaded 2-core machine, after the push
def test_upload_generate_explore_and_push_in_a_real_browser(console_url, page, export_file, graph, minilm_path,
                                                            neo4j_settings, tmp_path):
    path, records = export_file
    ids = [r["id"] for r in records]
    graph.execute_query("UNWIND $rows AS row MERGE (n:Recipe {id: row.id}) SET n.title = row.title",
                        rows=[{"id": r["id"], "title": r["title"]} for r in records])

    page.goto(console_url)
    page.get_by_text("Upload export files").wait_for()
    page.locator("input[type=file]").set_input_files(str(path))
    page.get_by_text("All 100 records are valid (100 recipe). Next: the Generate page.").wait_for()
    _shot(page, "upload")

    _go(page, "Generate")
    _pick_model(page, "all-MiniLM-L6-v2 (shipped small model)")  # the models available here, in a picker
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Done: 100 items embedded.").wait_for(timeout=180_000)
    _shot(page, "generate")

    _go(page, "Explore")
    page.get_by_text("100 of 100 items").wait_for(timeout=120_000)
    page.locator(".js-plotly-plot").first.wait_for()
    _settle(page)
    assert _points_drawn(page) == 100  # every item, drawn with WebGL (Scattergl) in a browser without WebGPU
    assert page.locator(".js-plotly-plot .annotation-text").count() >= 2  # the clusters' names on the map
    page.mouse.click(*_point_position(page, 3))  # a plotly selection event
    page.get_by_role("heading", name="Nearest to").wait_for()
    page.get_by_text("selected", exact=True).wait_for()  # the legend entry of the highlighted point
    query = page.get_by_role("textbox", name="Query (embedded with the run's model and its query prompt)")
    query.fill("tempe goreng")
    query.press("Enter")
    page.get_by_text("Nearest to the query “tempe goreng”").wait_for(timeout=120_000)
    _shot(page, "explore")

    _go(page, "Export & push")
    with page.expect_download() as download:  # JSON Lines was not generated: converted on the click
        page.get_by_role("button", name="embeddings_recipes.jsonl").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 100 and set(json.loads(lines[0])) >= {"id", "type", "text", "embedding"}
    page.get_by_role("button", name="Test connection").click()
    page.get_by_text(f"Connected to {neo4j_settings['uri']}").wait_for()
    page.get_by_role("button", name="Preview (dry run)").click()
    page.get_by_text("100 vectors: 100 would write, 0 unchanged, 0 unknown ids, 0 rejected.").wait_for()
    page.get_by_role("button", name="Push", exact=True).click()
    page.get_by_text("100 vectors: 100 written, 0 unchanged, 0 unknown ids, 0 rejected.").wait_for(timeout=120_000)
    _shot(page, "push")

    [output] = (tmp_path / "work" / "runs").glob("*/embeddings_recipes.json")
    expected = {item.id: item.embedding for item in read_embeddings(output)}
    stored = {r["id"]: np.array(r["v"], dtype=np.float32) for r in graph.execute_query(
        "MATCH (n:Recipe) WHERE n.id IN $ids RETURN n.id AS id, n.embedding AS v", ids=ids).records}
    assert sorted(stored) == sorted(ids)
    for item_id, vector in expected.items():
        assert vector.shape == (384,) and np.allclose(stored[item_id], vector, atol=1e-6)
    index = graph.execute_query(
        "SHOW VECTOR INDEXES YIELD name, labelsOrTypes, options WHERE name = 'recipe_embedding' "
        "RETURN options.indexConfig.`vector.dimensions` AS dims").records
    assert [r["dims"] for r in index] == [384]

    # curation: the neighbours of a clicked point excluded on Explore are left out of the next push
    _go(page, "Explore")
    page.locator(".js-plotly-plot").first.wait_for()
    _settle(page)
    query = page.get_by_role("textbox", name="Query (embedded with the run's model and its query prompt)")
    if query.input_value():  # no query: no neighbour rings over the point clicked next
        query.fill("")
        query.press("Enter")
        _settle(page)
    page.mouse.click(*_point_position(page, 3))  # WebGL points: a click at the point's place on the screen
    page.get_by_role("heading", name="Nearest to").wait_for()
    page.get_by_role("button", name="Select the 10 neighbours listed").click()
    _settle(page)
    note = page.get_by_role("textbox", name="Note (optional)")
    note.fill("resep ganda")
    note.press("Enter")
    _settle(page)
    page.get_by_role("button", name="Exclude 10 selected").click()
    page.get_by_text("Excluded 10 items.").wait_for()
    _go(page, "Export & push")
    page.get_by_text("10 excluded items left out of downloads and pushes").wait_for()
    page.get_by_role("button", name="Preview (dry run)").click()
    page.get_by_text("90 vectors: 0 would write, 90 unchanged, 0 unknown ids, 0 rejected; 10 excluded items left "
                     "out, 10 of their vectors would be removed from Neo4j.").wait_for()
    excluded = [json.loads(line) for line in (output.parent / "exclusions.jsonl").read_text().splitlines()]
    assert len(excluded) == 10 and {e["note"] for e in excluded} == {"resep ganda"}
    page.get_by_role("button", name="Push", exact=True).click()
    page.get_by_text("90 vectors: 0 written, 90 unchanged, 0 unknown ids, 0 rejected; 10 excluded items left out, 10 "
                     "of their vectors removed from Neo4j.").wait_for(timeout=120_000)
    embedded = {r["id"] for r in graph.execute_query(
        "MATCH (n:Recipe) WHERE n.id IN $ids AND n.embedding IS NOT NULL RETURN n.id AS id", ids=ids).records}
    assert embedded == set(ids) - {e["id"] for e in excluded}  # pushed before, excluded: search no longer finds them


@pytest.mark.timeout(480)
def test_a_graph_of_another_shape_is_embedded_and_pushed_from_the_browser(page, neo4j_clean, neo4j_settings, tmp_path,
                                                                          minilm_path):
    """The console started with another graph's schema file (labels Dish/Bahan/Step, id `code`, vectors in `vec`):
    the export of its dishes is uploaded, embedded and pushed with no code change; the vectors land in `vec` under
    the index `dish_vectors`."""
    from console.graphschema import load_schema
    from console.sinks.neo4j.settings import Neo4jSettings
    from console.sinks.neo4j.store import Neo4jStore
    from embedding_search.export import iter_records
    from other_graph import OTHER_GRAPH, build_other_graph

    schema_file = tmp_path / "graph.toml"
    schema_file.write_text(OTHER_GRAPH, encoding="utf-8")
    with Neo4jStore(Neo4jSettings.from_mapping(neo4j_settings), schema=load_schema(schema_file)) as store:
        rows = build_other_graph(store)
        dishes = list(iter_records(store, "dish"))
    export = tmp_path / "dish.json"
    export.write_text(json.dumps(dishes, ensure_ascii=False), encoding="utf-8")
    with _console(tmp_path, neo4j_settings, GRAPH_SCHEMA_FILE=str(schema_file)) as url:
        page.goto(url)
        page.get_by_text("Upload export files").wait_for()
        page.locator("input[type=file]").set_input_files(str(export))
        page.get_by_text(f"All {len(rows)} records are valid ({len(rows)} dish). Next: the Generate page.").wait_for()
        _go(page, "Generate")
        _pick_model(page, "all-MiniLM-L6-v2 (shipped small model)")
        page.get_by_role("button", name="Start").click()
        page.get_by_text(f"Done: {len(rows)} items embedded.").wait_for(timeout=180_000)
        _go(page, "Export & push")
        page.get_by_role("button", name="Preview (dry run)").click()
        page.get_by_text(f"{len(rows)} vectors: {len(rows)} would write, 0 unchanged, 0 unknown ids, 0 rejected."
                         ).wait_for(timeout=120_000)
        page.get_by_role("button", name="Push", exact=True).click()
        page.get_by_text(f"{len(rows)} vectors: {len(rows)} written, 0 unchanged, 0 unknown ids, 0 rejected."
                         ).wait_for(timeout=120_000)
    stored = neo4j_clean.execute_query("MATCH (d:Dish) WHERE d.vec IS NOT NULL RETURN count(d) AS n").records
    assert stored[0]["n"] == len(rows)
    index = neo4j_clean.execute_query(
        "SHOW VECTOR INDEXES YIELD name, labelsOrTypes, properties, options WHERE name = 'dish_vectors' "
        "RETURN labelsOrTypes AS labels, properties, options.indexConfig.`vector.dimensions` AS dims").records
    assert [(r["labels"], r["properties"], r["dims"]) for r in index] == [(["Dish"], ["vec"], 384)]
