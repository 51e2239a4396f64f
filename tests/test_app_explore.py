"""The Explore page: a UMAP map of every item of a run (2D/3D, coloured by type, category or cluster; UMAP fitted on
a sample when large, the rest placed), its clusters named in the data's language, and the similarity preview for a
chosen item or a typed query. Real MiniLM vectors of real recipes."""
from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import read_demo_recipes
from console.cli import main as cli
from console.app.workspace import Workspace

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, minilm_path):
    """A work folder with one finished run: 60 tempe and 60 chicken (ayam) recipes embedded with MiniLM."""
    ws = Workspace(tmp_path_factory.mktemp("explore") / "work")
    records = [{"id": f"recipe-{kind}-{n}", "type": "recipe", "title": r["Title"],
                "text": f"{r['Title']}. Ingredients: {r['Ingredients'][:300].replace('--', ', ')}. Categories: {kind.title()}."}
               for kind in ("tempe", "ayam") for n, r in enumerate(read_demo_recipes(kind, 60))]
    upload = ws.save_upload("recipes.json", json.dumps(records).encode())
    run = ws.new_run_dir("minilm")
    assert cli(["generate", "--input", str(upload), "--output-dir", str(run), "--model", str(minilm_path),
                "--format", "parquet", "--quiet"]) == 0
    return ws.root


@pytest.fixture
def at(workdir, monkeypatch):
    monkeypatch.setenv("CONSOLE_WORKDIR", str(workdir))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)
    app = AppTest.from_file(APP, default_timeout=120).run()
    return app.switch_page("pages/explore.py").run()


def _spec(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def _length(values) -> int:
    """The length of a trace's array (plotly sends numpy arrays as base64 typed arrays)."""
    if isinstance(values, dict):
        return len(base64.b64decode(values["bdata"])) // {"f4": 4, "f8": 8, "i4": 4, "i2": 2, "i1": 1}[values["dtype"]]
    return len(values)


def _points(trace: dict) -> int:
    return _length(trace["x"])


def _drawn(at) -> int:
    return sum(_points(t) for t in _spec(at)["data"] if t.get("name") not in ("neighbours", "selected"))


def test_the_map_shows_every_item_of_a_small_set(at, minilm_path):
    assert not at.exception
    assert at.caption[0].value.startswith(f"120 of 120 items · 384 dimensions · model `{minilm_path}` · PCA+UMAP")
    assert sum(len(trace["hovertext"]) for trace in _spec(at)["data"]) == 120
    assert sum(_length(trace["customdata"]) for trace in _spec(at)["data"]) == 120  # row numbers: the selection
    assert _drawn(at) == 120 and {t["type"] for t in _spec(at)["data"]} == {"scattergl"}  # WebGL, no WebGPU


def test_umap_is_fitted_on_a_sample_and_every_item_is_still_drawn(at):
    """Beyond the sample UMAP is fitted on, the other items are placed, not left out (they used to be)."""
    at.number_input[0].set_value(100).run()
    assert at.caption[0].value.startswith(
        "120 of 120 items (UMAP fitted on 100, 20 placed by their nearest neighbours) · ")
    assert at.caption[0].value.endswith(" · PCA+UMAP+KNN")
    assert _drawn(at) == 120


def test_clusters_are_named_without_indonesian_stopwords_and_drawn_on_the_map(at):
    from console.explore.clusters import stopwords

    caption = next(c.value for c in at.caption if " clusters, named in " in c.value)
    assert " clusters, named in `id` (detected) · " in caption
    names = [a["text"] for a in _spec(at)["layout"]["annotations"]]
    assert len(names) >= 2, names
    words = [w for name in names for w in name.split(" / ")]
    assert not set(words) & stopwords("id"), names
    assert any("tempe" in name for name in names) and any("ayam" in name for name in names), names


def test_clusters_can_be_chosen_and_the_others_are_hidden(at):
    clusters = at.multiselect(key="explore_clusters")
    first = clusters.options[0]
    clusters.select(first).run()
    spec = _spec(at)
    assert [a["text"] for a in spec["layout"]["annotations"]] == [first.rsplit(" (", 1)[0]]
    assert _drawn(at) == int(first.rsplit("(", 1)[1].rstrip(")").replace(",", ""))


def test_points_can_be_coloured_by_cluster_and_the_names_can_be_hidden(at):
    at.selectbox[1].set_value("cluster").run()
    names = [t["name"] for t in _spec(at)["data"]]
    assert {a["text"] for a in _spec(at)["layout"]["annotations"]} <= set(names)
    at.checkbox[0].uncheck().run()
    assert not _spec(at)["layout"].get("annotations")


def test_one_type_is_coloured_by_category_with_title_and_text_on_hover(at):
    traces = _spec(at)["data"]
    assert [t["name"] for t in traces] == ["Ayam", "Tempe"]
    assert traces[0]["hovertemplate"] == "%{hovertext}<extra></extra>"
    assert traces[0]["hovertext"][0].startswith("<b>") and "<br>recipe-ayam-" in traces[0]["hovertext"][0]


def test_points_can_be_coloured_by_type(at):
    at.selectbox[1].set_value("type").run()
    assert [t["name"] for t in _spec(at)["data"]] == ["recipe"]


def test_a_3d_map_can_be_chosen(at):
    at.radio[0].set_value("3D").run()
    assert {t["type"] for t in _spec(at)["data"]} == {"scatter3d"}


def test_choosing_an_item_lists_its_neighbours_and_highlights_them(at):
    at.selectbox(key="explore_item").set_value("recipe-tempe-0").run()
    table = at.dataframe[0].value
    assert at.subheader[0].value == f"Nearest to {read_demo_recipes('tempe', 1)[0]['Title']}"
    assert len(table) == 10 and "recipe-tempe-0" not in table["id"].tolist()
    assert table["cosine"].tolist() == sorted(table["cosine"].tolist(), reverse=True)
    assert [t["name"] for t in _spec(at)["data"]][-2:] == ["neighbours", "selected"]
    names = {a["text"] for a in _spec(at)["layout"]["annotations"]} | {"(no cluster)"}
    assert set(table["cluster"]) <= names and table["cluster"].iloc[0]


def test_a_typed_query_finds_tempe_recipes(at):
    at.text_input(key="explore_query").input("tempe").run()
    assert at.subheader[0].value == "Nearest to the query “tempe”"
    top = at.dataframe[0].value["id"].tolist()[:5]
    assert sum(i.startswith("recipe-tempe-") for i in top) >= 4, top


def test_a_projection_is_kept_on_disk_so_a_restarted_server_reads_it_back(at, workdir):
    import streamlit as st

    assert len(list((workdir / "cache" / "projections").glob("*.npz"))) >= 1
    st.cache_data.clear()  # what a server restart does to the in-memory caches (the maps are a cache_resource)
    st.cache_resource.clear()
    assert len(list((workdir / "cache" / "projections").glob("clusters-*.npz"))) >= 1
    at.run()
    assert at.caption[0].value.endswith(" · PCA+UMAP · from cache")
    assert at.caption[1].value.endswith(" items in none · from cache")  # the clusters too


def test_typing_a_query_replaces_the_chosen_item(at):
    at.selectbox(key="explore_item").set_value("recipe-tempe-0").run()
    at.text_input(key="explore_query").input("ayam").run()
    assert at.selectbox(key="explore_item").value is None
    assert at.subheader[0].value == "Nearest to the query “ayam”"


def test_a_damaged_embedding_file_is_named_not_a_traceback(tmp_path, monkeypatch):
    ws = Workspace(tmp_path / "work")
    run = ws.new_run_dir("broken")
    (run / "embeddings_recipes.jsonl").write_text('{"id": "recipe-1", "type": "recipe", "text": "x", "embedding": [0.1,\n')
    monkeypatch.setenv("CONSOLE_WORKDIR", str(ws.root))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)
    at = AppTest.from_file(APP, default_timeout=60).run().switch_page("pages/explore.py").run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "embeddings_recipes.jsonl, line 1: not valid JSON at column 69: Expecting value — re-create the file with "
        "`embedding-console generate`"]


def test_a_run_with_the_earlier_file_names_is_explored(workdir, tmp_path, monkeypatch):
    """Runs made before the guide's names (embeddings_recipe.parquet) keep working."""
    work = shutil.copytree(workdir, tmp_path / "work")
    [run] = (work / "runs").iterdir()
    for path in run.glob("embeddings_recipes.*"):
        path.rename(run / path.name.replace("embeddings_recipes", "embeddings_recipe"))
    assert not list(run.glob("embeddings_recipes.*"))
    monkeypatch.setenv("CONSOLE_WORKDIR", str(work))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)
    at = AppTest.from_file(APP, default_timeout=120).run().switch_page("pages/explore.py").run()
    assert not at.exception
    assert at.caption[0].value.startswith("120 of 120 items · 384 dimensions")
    at.text_input(key="explore_query").input("tempe").run()
    top = at.dataframe[0].value["id"].tolist()[:5]
    assert sum(i.startswith("recipe-tempe-") for i in top) >= 4, top


def test_colour_by_source_has_a_legend_and_says_why_one_colour(at):
    """One embedding file: one source. The map used to show one colour and no legend (plotly hides a lone trace's)."""
    at.selectbox[1].set_value("source").run()
    spec = _spec(at)
    assert [t["name"] for t in spec["data"]] == ["embeddings_recipes.parquet"]
    assert spec["layout"]["showlegend"] is True and spec["layout"]["legend"]["title"]["text"] == "source"
    assert any(c.value.startswith("Every item has the same source here, so the map has one colour") for c in at.caption)


def test_a_new_map_names_its_stages_as_they_run(at):
    at.slider[1].set_value(17).run()  # PCA dimensions never used before: computed now
    [box] = [e for e in at.status if e.label.startswith("Map made in ")]
    stages = [m.value.split(" · ")[0] for m in box.markdown]
    assert stages == ["Reading the vectors", "Taking all 120 items", "PCA: 384 → 17 dimensions",
                      "UMAP: 120 points to 2D (the longest step)"]


def _explore(work, monkeypatch):
    monkeypatch.setenv("CONSOLE_WORKDIR", str(work))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)
    return AppTest.from_file(APP, default_timeout=120).run().switch_page("pages/explore.py").run()


def _click(at, label):
    next(b for b in at.button if b.label == label).click().run()


def test_neighbours_excluded_with_a_note_stay_excluded_after_a_reload_and_can_be_undone(workdir, tmp_path,
                                                                                       monkeypatch):
    work = shutil.copytree(workdir, tmp_path / "work")
    [run] = (work / "runs").iterdir()
    at = _explore(work, monkeypatch)
    at.selectbox(key="explore_item").set_value("recipe-tempe-0").run()
    neighbours = at.dataframe[0].value["id"].tolist()
    _click(at, "Select the 10 neighbours listed")
    [picked] = [m for m in at.multiselect if m.key.startswith("curation_pick_")]
    assert picked.value == neighbours
    picked.unselect(neighbours[-1]).run()
    at.text_input(key="curation_note").input("resep ganda").run()
    _click(at, "Exclude 9 selected")
    assert not at.exception
    assert [s.value for s in at.success] == ["Excluded 9 items."]
    lines = [json.loads(line) for line in (run / "exclusions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(e["id"], e["note"]) for e in lines] == [(i, "resep ganda") for i in neighbours[:9]]

    at = _explore(work, monkeypatch)  # a reload: a new session reads the run's file
    assert any(c.value.startswith("9 excluded items in this file: left out of downloads and pushes") for c in at.caption)
    assert at.dataframe[0].value["id"].tolist() == neighbours[:9]
    at.selectbox(key="explore_item").set_value("recipe-tempe-0").run()
    assert at.dataframe[0].value["excluded"].tolist() == ["yes"] * 9 + [""]
    at.multiselect(key="curation_undo").select(neighbours[0]).run()
    _click(at, "Undo 1")
    assert [e["id"] for e in map(json.loads, (run / "exclusions.jsonl").read_text().splitlines())] == neighbours[1:9]
    _click(at, "Undo all 8")
    assert not (run / "exclusions.jsonl").exists()
    assert any(c.value.startswith("0 excluded items in this file") for c in at.caption)


def test_a_broken_exclusion_file_is_named_with_its_line(workdir, tmp_path, monkeypatch):
    work = shutil.copytree(workdir, tmp_path / "work")
    [run] = (work / "runs").iterdir()
    (run / "exclusions.jsonl").write_text('{"id": "recipe-tempe-1"}\n{"note": "lupa id"}\n', encoding="utf-8")
    at = _explore(work, monkeypatch)
    assert not at.exception
    assert at.error[0].value.startswith('exclusions.jsonl, line 2: no "id" — each line must be a JSON object')
    assert at.error[0].value.endswith("Downloads and pushes of this run stop until the file is fixed or removed.")


def test_a_whole_cluster_can_be_excluded_and_its_points_are_crossed_out_on_the_map(workdir, tmp_path, monkeypatch):
    work = shutil.copytree(workdir, tmp_path / "work")
    [run] = (work / "runs").iterdir()
    at = _explore(work, monkeypatch)
    clusters = at.multiselect(key="explore_clusters")
    first = clusters.options[0]
    size = int(first.rsplit("(", 1)[1].rstrip(")").replace(",", ""))
    clusters.select(first).run()
    _click(at, f"Select the items of the cluster shown ({size:,})")
    [picked] = [m for m in at.multiselect if m.key.startswith("curation_pick_")]
    chosen = list(picked.value)
    assert len(chosen) == size
    _click(at, f"Exclude {size} selected")
    excluded = [json.loads(line)["id"] for line in (run / "exclusions.jsonl").read_text().splitlines()]
    assert sorted(excluded) == sorted(chosen)
    [cross] = [t for t in _spec(at)["data"] if t.get("name") == "excluded"]
    assert _points(cross) == size and cross["marker"]["symbol"] == "x"


def _select_on_map(at, points=(), box=None):
    """A selection on the map as the browser reports it (plotly's selection event: the points with their
    ``customdata`` row, the box's corners), sent as the chart's widget state with the other widgets' states."""
    states = at._tree.get_widget_states()
    state = states.widgets.add()
    state.id = at.get("plotly_chart")[0].proto.id
    state.string_value = json.dumps({"selection": {
        "points": [{"customdata": int(r), "curve_number": 1, "point_number": n} for n, r in enumerate(points)],
        "point_indices": list(range(len(points))), "box": [box] if box else [], "lasso": []}})
    return at._run(states)


def _rows(spec) -> list[int]:
    import numpy as np

    return sorted(r for t in spec["data"] if t["type"] == "scattergl" and t.get("customdata")
                  for r in np.frombuffer(base64.b64decode(t["customdata"]["bdata"]), dtype=np.int32).tolist())


def test_above_the_point_limit_the_map_is_a_density_layer_that_zooms_to_the_points_of_a_box(workdir, tmp_path,
                                                                                            monkeypatch):
    """The limits lowered (50 points, 30 drawn over the density) so that the 120 recipes are a "large" map; the
    base layer is built once per view, not at each rerun; a box zooms to all of its points, which can be excluded."""
    import numpy as np

    from console.explore import mapfigure
    from console.explore.projection import load_embedding_set, project

    monkeypatch.setattr(mapfigure, "POINT_LIMIT", 50)
    monkeypatch.setattr(mapfigure, "DENSITY_SAMPLE", 30)
    builds, build = [], mapfigure.map_layer
    monkeypatch.setattr(mapfigure, "map_layer", lambda *a, **kw: builds.append(kw["region"]) or build(*a, **kw))
    work = shutil.copytree(workdir, tmp_path / "work")
    [run] = (work / "runs").iterdir()
    at = _explore(work, monkeypatch)
    spec = _spec(at)
    assert spec["data"][0]["type"] == "heatmap" and len(_rows(spec)) == 30
    assert any(c.value.startswith("120 items in the map: their density in grey, 30 of them drawn as points")
               for c in at.caption)
    assert next(b for b in at.button if b.label == "Zoom to the box").disabled  # no box yet
    at.selectbox(key="explore_item").set_value("recipe-tempe-0").run()  # a rerun: new marks, same base layer
    assert [t["name"] for t in _spec(at)["data"]][-2:] == ["neighbours", "selected"] and builds == [None]

    data = load_embedding_set(run / "embeddings_recipes.parquet")
    coords = project(data.vectors, ids=data.ids, cache_dir=work / "cache" / "projections").coords  # the page's map
    box = {"xref": "x", "yref": "y", "x": [float(coords[:, 0].min()) - 1, float(np.percentile(coords[:, 0], 30))],
           "y": [float(coords[:, 1].min()) - 1, float(coords[:, 1].max()) + 1]}
    inside = np.flatnonzero(coords[:, 0] <= box["x"][1]).tolist()
    _select_on_map(at, box=box)
    _click(at, "Zoom to the box")
    spec = _spec(at)
    assert not at.exception and "heatmap" not in {t["type"] for t in spec["data"]}
    assert _rows(spec) == inside and 20 < len(inside) <= 50  # every point of the box, nothing else
    assert spec["layout"]["xaxis"]["range"] == [box["x"][0], box["x"][1]]
    assert any(c.value.startswith(f"{len(inside)} items in the region x ") for c in at.caption)
    assert builds == [None, tuple(box["x"] + box["y"])]

    _select_on_map(at, points=inside[:3], box=box)  # curation works on the zoomed points
    _click(at, "Exclude 3 selected")
    excluded = [json.loads(line)["id"] for line in (run / "exclusions.jsonl").read_text().splitlines()]
    assert excluded == [data.ids[r] for r in inside[:3]]
    _click(at, "Whole map")
    assert _spec(at)["data"][0]["type"] == "heatmap" and len(builds) == 2  # the whole map's layer was kept


def test_a_large_run_takes_the_item_as_a_typed_id_and_names_an_unknown_one(at, monkeypatch):
    """Above ITEM_LIST_LIMIT items (lowered here) the picker is a text box, not a list of every id."""
    from pages import preview

    monkeypatch.setattr(preview, "ITEM_LIST_LIMIT", 50)
    at.run()
    box = at.text_input(key="explore_item")
    box.input("recipe-nope").run()
    assert [e.value for e in at.error] == [
        "No item 'recipe-nope' in embeddings_recipes.parquet: type an id of this file, e.g. 'recipe-tempe-0'."]
    at.text_input(key="explore_item").input(" recipe-ayam-3 ").run()
    assert not at.error and at.subheader[0].value.startswith("Nearest to ")
    assert "recipe-ayam-3" not in at.dataframe[0].value["id"].tolist()
    at.text_input(key="explore_query").input("tempe").run()  # a query clears the typed item
    assert at.text_input(key="explore_item").value == "" and at.subheader[0].value == "Nearest to the query “tempe”"
