"""Acceptance: the workflow guide's commands, typed verbatim, in order, against the real backend (gunicorn) and the
real test Neo4j, checking each step's files and answers: the whole walkthrough, then the "Verification steps"
block, then the CPU fallback of its troubleshooting section.

The guide's commands are below as the user types them. The only changes: ``--model`` points at the shipped small
model (no model hub here), the curl URL has its space encoded (curl refuses a raw space) and the backend's real
address instead of localhost:8000. The guide's setting is reproduced with folders: ``django/`` is the Django
project (``manage.py`` is a link to backend/manage.py, which finds the project from its own path), ``gpu/`` the
machine where the generator runs (the guide's Colab has the script beside the data: a link to
external_embedding_generator.py), and the user's own steps between commands (carry ``embedding_data`` to the GPU
machine, "copy embedding files back to the Django project", make ``test_data``, name a file
``test_embeddings.json``) are done here with shutil, as the user would with cp.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
from conftest import empty_database  # noqa: E402
from recipes.testing import manage, run_backend  # noqa: E402

pytestmark = pytest.mark.slow  # ~3-6 minutes on 2 cores: a model is loaded for each generator command

EXPORTS = ["categories.json", "ingredients.json", "recipes.json"]
OUTPUTS = ["embeddings_categories.json", "embeddings_categories.meta.json", "embeddings_ingredients.json",
           "embeddings_ingredients.meta.json", "embeddings_recipes.json", "embeddings_recipes.meta.json"]

WALKTHROUGH = {
    "export": "python manage.py export_data_for_embeddings",
    "export_limit": "python manage.py export_data_for_embeddings --limit 100",
    "export_csv": "python manage.py export_data_for_embeddings --format csv --output-dir embedding_export",
    "generate_defaults": "python external_embedding_generator.py --model {model}",
    "generate": "python external_embedding_generator.py \\\n"
                "    --input-dir embedding_data --output-dir embeddings_output --batch-size 16 --model {model}",
    "import_dry_run": "python manage.py import_embeddings --embedding-file embeddings_recipes.json --dry-run",
    "import_recipes": "python manage.py import_embeddings --embedding-file embeddings_recipes.json",
    "import_ingredients": "python manage.py import_embeddings --embedding-file embeddings_ingredients.json",
    "import_categories": "python manage.py import_embeddings --embedding-file embeddings_categories.json",
    "search": 'curl "{url}/api/semantic-search/?q=nasi%20goreng&type=recipe"',
}
VERIFICATION = {
    "export": "python manage.py export_data_for_embeddings --limit 5",
    "generate": "python external_embedding_generator.py --input-dir test_data --batch-size 2 --model {model}",
    "dry_run": "python manage.py import_embeddings --embedding-file test_embeddings.json --dry-run",
    "search": WALKTHROUGH["search"],
}
CPU_FALLBACK = ('export CUDA_VISIBLE_DEVICES=""\n'
                "python external_embedding_generator.py --input-dir test_data --batch-size 8 --model {model}")


class Guide:
    """The folders, the environment and the backend the commands run with, and what each step left behind."""

    def __init__(self, base: Path, env: dict, model: Path, url: str):
        self.django, self.gpu, self.cpu = base / "django", base / "gpu", base / "cpu"
        for folder in (self.django, self.gpu, self.cpu):
            folder.mkdir()
        (self.django / "manage.py").symlink_to(ROOT / "backend" / "manage.py")
        for folder in (self.django, self.gpu, self.cpu):
            (folder / "external_embedding_generator.py").symlink_to(ROOT / "external_embedding_generator.py")
        # `python` is this test's interpreter (the project's virtual environment), as after `source .venv/bin/activate`
        self.env = {**os.environ, **env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        self.model, self.url = model, url
        self.done: set[str] = set()

    def run(self, command: str, cwd: Path) -> subprocess.CompletedProcess:
        """The command as the user types it into bash, in `cwd`; it must succeed."""
        command = command.format(model=self.model, url=self.url)
        proc = subprocess.run(command, shell=True, executable="/bin/bash", cwd=cwd, env=self.env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{command}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc


def _count(driver, label: str, embedded: bool = False) -> int:
    where = " WHERE n.embedding IS NOT NULL" if embedded else ""
    return driver.execute_query(f"MATCH (n:{label}){where} RETURN count(n) AS c").records[0]["c"]


def _items(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def _copy(files, target: Path) -> None:
    target.mkdir(exist_ok=True)
    for path in files:
        shutil.copy2(path, target / path.name)


def _names(folder: Path, pattern: str = "*") -> list[str]:
    return sorted(p.name for p in folder.glob(pattern) if p.is_file())


@pytest.fixture(scope="module")
def guide(neo4j_driver, neo4j_settings, neo4j_env, minilm_path, tmp_path_factory):
    """A small graph (load_demo_data --limit 200), the backend running on it, and the guide's folders."""
    empty_database(neo4j_driver, neo4j_settings["database"])
    manage("load_demo_data", "--limit", "200", "--verbosity", "0", env=neo4j_env)
    base = tmp_path_factory.mktemp("guide")
    with run_backend(neo4j_env, log_path=base / "backend.log") as url:
        yield Guide(base, neo4j_env, minilm_path, url)


def _search(guide: Guide, driver) -> dict:
    """The guide's curl, with the checks a user makes by eye: an answer from the recipe index, with hits."""
    assert shutil.which("curl"), "curl is needed for the guide's search step (apt-get install curl)"
    answer = json.loads(guide.run(WALKTHROUGH["search"], guide.django).stdout)
    from embedding_search.graph import model_label  # answers name a folder by its last two parts, never the full path

    assert (answer["query"], answer["type"], answer["model"]) == ("nasi goreng", "recipe", model_label(str(guide.model)))
    hits = answer["results"]
    assert len(hits) == 10, answer
    embedded = {r["id"] for r in driver.execute_query(
        "MATCH (n:Recipe) WHERE n.embedding IS NOT NULL RETURN n.id AS id").records}
    assert {h["id"] for h in hits} <= embedded
    assert all(h["id"].startswith("recipe-") and h["title"] for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    return answer


def test_the_whole_walkthrough(guide, neo4j_driver):
    g, django, gpu = guide, guide.django, guide.gpu
    # 1. export, three ways
    proc = g.run(WALKTHROUGH["export"], django)
    assert _names(django / "embedding_data") == EXPORTS
    full = {name: len(_items(django / "embedding_data" / name)) for name in EXPORTS}
    assert full == {"categories.json": _count(neo4j_driver, "Category"),
                    "ingredients.json": _count(neo4j_driver, "Ingredient"), "recipes.json": 200}
    assert f"Wrote 200 recipe records to {Path('embedding_data') / 'recipes.json'}" in proc.stdout

    g.run(WALKTHROUGH["export_limit"], django)
    limited = {name: len(_items(django / "embedding_data" / name)) for name in EXPORTS}
    assert limited == {"categories.json": min(100, full["categories.json"]), "ingredients.json": 100,
                       "recipes.json": 100}

    g.run(WALKTHROUGH["export_csv"], django)
    assert _names(django / "embedding_export") == ["categories.csv", "ingredients.csv", "recipes.csv"]
    header = (django / "embedding_export" / "recipes.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("id,type,")

    # 2. generate where the GPU is: the user carries embedding_data there
    _copy((django / "embedding_data").iterdir(), gpu / "embedding_data")
    proc = g.run(WALKTHROUGH["generate_defaults"], gpu)  # defaults: embedding_data -> embeddings_output
    out = gpu / "embeddings_output"
    assert _names(out, "embeddings_*") == OUTPUTS
    for export, output in zip(EXPORTS, OUTPUTS[::2]):
        items = _items(out / output)
        assert [i["id"] for i in items] == [r["id"] for r in _items(gpu / "embedding_data" / export)]
        assert {len(i["embedding"]) for i in items} == {384}
        meta = json.loads((out / output.replace(".json", ".meta.json")).read_text())
        assert (meta["model"], meta["count"], meta["dimensions"]) == (str(g.model), len(items), 384)
    first = {name: (out / name).read_bytes() for name in OUTPUTS[::2]}

    proc = g.run(WALKTHROUGH["generate"], gpu)  # the same settings again: everything comes from the checkpoint
    assert f"0 embedded, {sum(limited.values())} reused from the checkpoint" in proc.stdout
    assert _names(out, "embeddings_*") == OUTPUTS
    assert {name: (out / name).read_bytes() for name in OUTPUTS[::2]} == first

    # 3. "Copy embedding files back to the Django project" (embeddings_*: the .meta.json files say the model)
    _copy(out.glob("embeddings_*"), django)
    proc = g.run(WALKTHROUGH["import_dry_run"], django)
    assert (f"Dry run, nothing written: embeddings_recipes.json ({g.model}): 100 vectors: 100 would write, "
            "0 unchanged, 0 unknown ids, 0 rejected") in proc.stdout
    assert _count(neo4j_driver, "Recipe", embedded=True) == 0

    for step, label, n in (("import_recipes", "Recipe", 100), ("import_ingredients", "Ingredient", 100),
                           ("import_categories", "Category", limited["categories.json"])):
        proc = g.run(WALKTHROUGH[step], django)
        assert f"{n} vectors: {n} written, 0 unchanged, 0 unknown ids, 0 rejected" in proc.stdout, proc.stdout
        assert _count(neo4j_driver, label, embedded=True) == n

    # 4. search; typed with its raw space, curl refuses the URL (README: "the search URL needs its space encoded")
    raw = WALKTHROUGH["search"].replace("%20", " ").format(url=g.url)
    refused = subprocess.run(raw, shell=True, executable="/bin/bash", cwd=django, env=g.env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 3 and "URL" in refused.stderr, (refused.returncode, refused.stderr)
    _search(g, neo4j_driver)
    g.done.add("walkthrough")


def test_the_verification_steps(guide, neo4j_driver):
    g, django = guide, guide.django
    if "walkthrough" not in g.done:
        pytest.fail("runs after test_the_whole_walkthrough (its search needs the imported vectors)")
    g.run(VERIFICATION["export"], django)
    assert {name: len(_items(django / "embedding_data" / name)) for name in EXPORTS} == dict.fromkeys(EXPORTS, 5)

    _copy((django / "embedding_data").iterdir(), django / "test_data")  # the user's test_data folder
    proc = g.run(VERIFICATION["generate"], django)
    out = django / "embeddings_output"
    assert _names(out, "embeddings_*") == OUTPUTS
    recipes = _items(out / "embeddings_recipes.json")
    assert [i["id"] for i in recipes] == [r["id"] for r in _items(django / "test_data" / "recipes.json")]
    assert "15 embedded, 0 reused" in proc.stdout

    # the user names a file test_embeddings.json (its .meta.json with it: it says which model made the vectors)
    shutil.copy2(out / "embeddings_recipes.json", django / "test_embeddings.json")
    shutil.copy2(out / "embeddings_recipes.meta.json", django / "test_embeddings.meta.json")
    before = _count(neo4j_driver, "Recipe", embedded=True)
    proc = g.run(VERIFICATION["dry_run"], django)
    assert f"Dry run, nothing written: test_embeddings.json ({g.model}): 5 vectors: " in proc.stdout
    assert "0 unknown ids, 0 rejected" in proc.stdout
    assert _count(neo4j_driver, "Recipe", embedded=True) == before

    _search(g, neo4j_driver)
    g.done.add("verification")


def test_the_cpu_fallback(guide):
    """Troubleshooting: `export CUDA_VISIBLE_DEVICES=""` (and --batch-size 8 after an out-of-memory error) runs on
    the CPU, on a GPU machine too, with the same vectors as the runs before (a fresh folder: nothing reused)."""
    g, cpu = guide, guide.cpu
    if "verification" not in g.done:
        pytest.fail("runs after test_the_verification_steps (it uses their test_data)")
    _copy((g.django / "test_data").iterdir(), cpu / "test_data")
    proc = g.run(CPU_FALLBACK, cpu)
    assert f"Model {g.model} on cpu (float32)" in proc.stdout
    assert "15 embedded, 0 reused" in proc.stdout
    out = cpu / "embeddings_output"
    assert _names(out, "embeddings_*") == OUTPUTS
    for name in OUTPUTS[::2]:
        here, before = _items(out / name), _items(g.django / "embeddings_output" / name)
        assert [i["id"] for i in here] == [i["id"] for i in before]
        np.testing.assert_allclose([i["embedding"] for i in here], [i["embedding"] for i in before], atol=1e-5)
