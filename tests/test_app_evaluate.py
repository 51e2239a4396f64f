"""The Evaluate view: two finished runs of 120 real demo recipes (MiniLM at 384 and at --dimensions 128) judged on
the shipped query set, side by side with where they disagree; the figures are console.search.evaluate's for the same
vectors and queries. And the errors: a run without vectors of the chosen type, a broken or foreign query set."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from console.cli import main as cli
from console.search.querysets import save_query_set
from console.app.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
sys.path.insert(0, str(ROOT / "backend"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, minilm_path):
    from recipes.demo_data import read_recipes

    ws = Workspace(tmp_path_factory.mktemp("evaluate") / "work")
    rows = [r.row() for r in read_recipes(ROOT / "data" / "indonesian-recipes", limit=120)]
    records = [{"id": r["id"], "type": "recipe", "title": r["title"], "text": r["text"]} for r in rows]
    upload = ws.save_upload("recipes.json", json.dumps(records).encode())
    runs = {}
    for label, extra in (("full", []), ("d128", ["--dimensions", "128"])):
        runs[label] = ws.new_run_dir(label)
        assert cli(["generate", "--input", str(upload), "--output-dir", str(runs[label]), "--model", str(minilm_path),
                    "--format", "npy", "--quiet", *extra]) == 0
    ingredients = ws.save_upload("ingredients.json", json.dumps(
        [{"id": f"ingredient-{n}", "type": "ingredient", "text": n} for n in ("garam", "cabai", "tempe")]).encode())
    runs["ingredients"] = ws.new_run_dir("ingredients")
    assert cli(["generate", "--input", str(ingredients), "--output-dir", str(runs["ingredients"]), "--model",
                str(minilm_path), "--format", "json", "--quiet"]) == 0
    ids = {r["id"] for r in records}
    lines = []
    for line in (ROOT / "data" / "queries" / "recipes.jsonl").read_text(encoding="utf-8").splitlines():
        query = json.loads(line)
        query["relevant"] = [i for i in query["relevant"] if i in ids]
        if query["relevant"]:
            lines.append(json.dumps(query))
    save_query_set(ws.root / "querysets", {"demo120.jsonl": ("\n".join(lines) + "\n").encode()})
    return {"root": ws.root, "runs": {k: v.name for k, v in runs.items()}, "queries": len(lines)}


@pytest.fixture
def at(workdir, monkeypatch):
    monkeypatch.setenv("CONSOLE_WORKDIR", str(workdir["root"]))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)
    app = AppTest.from_file(APP, default_timeout=600).run()
    return app.switch_page("pages/evaluate.py").run()


def test_two_runs_side_by_side_with_the_console_figures(at, workdir, minilm_path):
    from console.generation.engine import Embedder
    from console.search.evaluate import evaluate_console, load_run, query_encoder
    from console.search.querysets import read_query_set

    runs = workdir["runs"]
    at.multiselect(key="eval_runs").set_value([runs["full"], runs["d128"]]).run()
    at.selectbox(key="eval_set").set_value("uploaded: demo120.jsonl").run()
    at.button(key="eval_go").click().run()
    assert not at.exception and not at.error
    assert at.subheader[0].value == f"demo120.jsonl: {workdir['queries']} queries, k = 10"
    scores = at.dataframe[0].value
    assert scores["mode"].tolist() == ["keyword", f"semantic · {runs['full']}", f"semantic · {runs['d128']}",
                                       f"hybrid · {runs['full']}", f"hybrid · {runs['d128']}"]

    run_dirs = [workdir["root"] / "runs" / runs[r] for r in ("full", "d128")]
    loaded = [load_run(next(d.glob("*.npy")), d.name) for d in run_dirs]
    expected = evaluate_console(read_query_set(workdir["root"] / "querysets" / "demo120.jsonl"), loaded,
                                ["keyword", "semantic", "hybrid"], 10,
                                [query_encoder(Embedder(str(minilm_path), dimensions=d)) for d in (384, 128)])
    for row in scores.to_dict("records"):
        for metric in expected.evaluation.metrics:
            assert row[metric] == pytest.approx(round(expected.evaluation.scores[row["mode"]][metric], 4), abs=1e-4)
    assert len(at.dataframe[1].value) == 10 * 4  # ten pairs of the five columns x four metrics
    assert at.metric[0].label.startswith("Neighbour overlap of the two runs (120 items, k = 10)")
    assert at.subheader[1].value == f"Where semantic · {runs['full']} and semantic · {runs['d128']} disagree most"
    kinds = at.dataframe[2].value   # the shipped queries' kinds: nDCG@10 per kind
    assert kinds["kind"].tolist() == list(expected.evaluation.by_kind) and kinds["queries"].sum() == workdir["queries"]
    first = next(iter(expected.evaluation.by_kind.values()))
    assert kinds.iloc[0]["keyword"] == pytest.approx(round(first.scores["keyword"]["ndcg@10"], 4), abs=1e-4)
    overlap = at.dataframe[3].value
    assert overlap["top-k overlap"].tolist() == sorted(overlap["top-k overlap"].tolist())


def test_a_run_without_vectors_of_the_type_is_named(at, workdir):
    at.multiselect(key="eval_runs").set_value([workdir["runs"]["ingredients"]]).run()
    at.selectbox(key="eval_type").set_value("recipe").run()
    at.button(key="eval_go").click().run()
    assert [e.value for e in at.error] == [
        f"run {workdir['runs']['ingredients']} has no recipe vectors: generate them, or pick another run or type"]


def test_a_broken_query_set_names_its_file_and_line(at, workdir):
    (workdir["root"] / "querysets" / "broken.jsonl").write_text('{"query": "tempe", "relevant": ["recipe-1"]}\n{\n')
    at.run()
    at.multiselect(key="eval_runs").set_value([workdir["runs"]["full"]]).run()
    at.selectbox(key="eval_set").set_value("uploaded: broken.jsonl").run()
    at.button(key="eval_go").click().run()
    assert at.error[0].value.startswith("broken.jsonl, line 2: not valid JSON at column 2")


def test_a_query_set_of_other_items_is_refused(at, workdir):
    (workdir["root"] / "querysets" / "foreign.jsonl").write_text('{"query": "tempe", "relevant": ["recipe-0"]}\n')
    at.run()
    at.multiselect(key="eval_runs").set_value([workdir["runs"]["full"]]).run()
    at.selectbox(key="eval_set").set_value("uploaded: foreign.jsonl").run()
    at.button(key="eval_go").click().run()
    assert at.error[0].value.startswith(f"foreign.jsonl, line 1: query 'q1' judges 'recipe-0', which is not in run "
                                        f"{workdir['runs']['full']}")
