"""The Colab notebook (notebooks/colab_generate_embeddings.ipynb) executed for real with nbclient on a Jupyter
kernel, on the CPU with the shipped small model: the Colab-only cells (Drive, upload, download) skip themselves
without ``google.colab``; everything else runs as on Colab. The generator is pip-installed from the project's
package (built from this checkout's files, no network) into a folder of its own, which is all the kernel has on
its PYTHONPATH; the push cell sends the vectors to the real backend (gunicorn) and its real test Neo4j."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
from conftest import empty_database  # noqa: E402
from recipes.testing import manage, run_backend  # noqa: E402

NOTEBOOK = ROOT / "notebooks" / "colab_generate_embeddings.ipynb"
PACKAGE_FILES = ["pyproject.toml", "README.md", "LICENSE", "external_embedding_generator.py", "console",
                 "backend/embedding_search"]  # the Django app is part of the package too (pyproject's package-dir)
TOKEN = "notebook-test-token"
OUTPUTS = ["embeddings_categories.json", "embeddings_categories.meta.json", "embeddings_ingredients.json",
           "embeddings_ingredients.meta.json", "embeddings_recipes.json", "embeddings_recipes.meta.json"]


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """The project's package source (what `pip install git+<repository>` would build), copied out of the checkout
    so that the build leaves nothing in it."""
    src = tmp_path_factory.mktemp("package") / "embedding-console"
    src.mkdir()
    for name in PACKAGE_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        else:
            shutil.copy2(ROOT / name, src / name)
    return src


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _run_notebook(cwd: Path) -> list[str]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, startup_timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return [_text(cell) for cell in nb.cells if cell.cell_type == "code"]


def _cell(outputs: list[str], needle: str) -> str:
    """The output of the first cell that printed `needle`."""
    found = [text for text in outputs if needle in text]
    assert found, f"no cell printed {needle!r}:\n" + "\n---\n".join(outputs)
    return found[0]


def test_the_notebook_is_valid_and_has_the_guides_steps():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    source = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    for needed in ("torch.cuda.is_available()", "files.upload()", "drive.mount(", "files.download(",
                   "batch_size_advice()", '"-m", "pip", "install"', "external_embedding_generator",
                   "push_to_backend("):
        assert needed in source, needed
    assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "commit it without outputs"


def test_the_notebook_runs_installs_generates_resumes_and_pushes(package, neo4j_driver, neo4j_settings, neo4j_env,
                                                                 minilm_path, tmp_path, monkeypatch):
    from console.app.jobs import batch_size_advice

    empty_database(neo4j_driver, neo4j_settings["database"])
    manage("load_demo_data", "--limit", "30", "--verbosity", "0", env=neo4j_env)
    exports, output, site = tmp_path / "exports", tmp_path / "drive" / "embeddings", tmp_path / "site-packages"
    manage("export_data_for_embeddings", "--limit", "10", "--output-dir", str(exports), "--verbosity", "0",
           env=neo4j_env)
    site.mkdir()
    with run_backend({**neo4j_env, "EMBEDDINGS_IMPORT_TOKEN": TOKEN}, log_path=tmp_path / "backend.log") as url:
        for name, value in {
            "EMBEDDING_CONSOLE_PACKAGE": f"embedding-console[push] @ {package.as_uri()}",
            "EMBEDDING_CONSOLE_PIP_ARGS": f"--no-deps --no-build-isolation --no-index --target {site}",
            "PYTHONPATH": str(site),  # the kernel imports the installed package, not this checkout
            "EMBEDDING_MODEL": str(minilm_path), "EMBEDDING_INPUT_DIR": str(exports),
            "EMBEDDING_OUTPUT_DIR": str(output), "EMBEDDING_WORK_DIR": str(tmp_path / "drive"),
            "BACKEND_URL": url, "EMBEDDINGS_IMPORT_TOKEN": TOKEN,
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("EMBEDDING_BATCH_SIZE", raising=False)
        first = _run_notebook(tmp_path)
        embedded = neo4j_driver.execute_query(
            "MATCH (n) WHERE n.embedding IS NOT NULL RETURN labels(n)[0] AS label, count(n) AS c ORDER BY label")
        again = _run_notebook(tmp_path)  # a reconnected runtime: Run all again

    advice = batch_size_advice()
    assert _cell(first, "Colab: False")
    assert _cell(first, "GPU: " if advice.gpu_name else "No GPU: the generator will run on the CPU")
    assert f"from {site / 'console' / '__init__.py'}" in _cell(first, "embedding-console ")
    assert _cell(first, f"Batch size: {advice.suggested} (halved automatically")
    assert sorted(p.name for p in output.glob("embeddings_*")) == OUTPUTS
    for export, emb in (("recipes.json", "embeddings_recipes.json"), ("categories.json", "embeddings_categories.json")):
        ids = [r["id"] for r in json.loads((exports / export).read_text(encoding="utf-8"))]
        assert [i["id"] for i in json.loads((output / emb).read_text(encoding="utf-8"))] == ids
    assert json.loads((output / "embeddings_recipes.meta.json").read_text())["model"] == str(minilm_path)
    generated = _cell(first, "-m external_embedding_generator --input-dir")
    assert "26 embedded, 0 reused from the checkpoint" in generated  # 10 recipes, 10 ingredients, 6 categories
    assert "Pushed embeddings_recipes.json to " + url + "/api/embeddings/import/: 10 vectors: 10 written, " \
        "0 unchanged, 0 unknown ids, 0 rejected" in _cell(first, "Pushed ")
    assert [(r["label"], r["c"]) for r in embedded.records] == [("Category", 6), ("Ingredient", 10), ("Recipe", 10)]

    assert "0 embedded, 26 reused from the checkpoint" in _cell(again, "-m external_embedding_generator --input-dir")
    assert "10 vectors: 0 written, 10 unchanged" in _cell(again, "Pushed ")
