"""Faults: nothing is lost and nothing wrong is written.

- the generator SIGKILLed at random points and resumed gives the output of an uninterrupted run;
- a checkpoint whose last line was cut off is detected, the torn batch dropped and embedded again;
- Neo4j killed in the middle of an import or a push: a clear error, only whole batches written, a re-run finishes;
- a corpus of bad inputs (tests/data/bad/): each gets its exact message and nothing is embedded or written.
The long version of the kill loop (20 kills) is bench/faults.py.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import empty_database, read_demo_recipes
from console.cli import main as cli
from console.files.embfiles import make_meta, read_embeddings, write_embeddings, EmbeddedItem
from console.sinks.neo4j.settings import read_env_file

ROOT = Path(__file__).resolve().parent.parent
BAD = Path(__file__).resolve().parent / "data" / "bad"
sys.path.insert(0, str(ROOT / "backend"))
from recipes.testing import free_port, manage  # noqa: E402

N = 96
BATCH = 4


# -- helpers ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """96 real recipes (title + ingredients) as a JSON Lines export."""
    rows = read_demo_recipes("tahu", limit=N)
    folder = tmp_path_factory.mktemp("export")
    with open(folder / "recipes.jsonl", "w", encoding="utf-8") as fh:
        for i, r in enumerate(rows):
            text = f"{r['Title']}. Bahan: {r['Ingredients'].replace('--', ', ')}"
            fh.write(json.dumps({"id": f"recipe-{i}", "type": "recipe", "title": r["Title"], "text": text},
                                ensure_ascii=False) + "\n")
    return folder


def generator(export_dir, out, model, *extra) -> list[str]:
    return [sys.executable, str(ROOT / "external_embedding_generator.py"), "--input-dir", str(export_dir),
            "--output-dir", str(out), "--batch-size", str(BATCH), "--model", str(model), "--device", "cpu",
            "--format", "jsonl", "--quiet", *extra]


def checkpoint_lines(out: Path) -> int:
    folder = out / ".checkpoints"
    return sum(f.read_bytes().count(b"\n") for f in folder.glob("*.jsonl")) if folder.exists() else 0


def read_output(path: Path) -> tuple[list[str], np.ndarray]:
    items = list(read_embeddings(path))
    return [i.id for i in items], np.vstack([i.embedding for i in items])


@pytest.fixture(scope="module")
def reference(export_dir, minilm_path, tmp_path_factory):
    """The output of one uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    proc = subprocess.run(generator(export_dir, out, minilm_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return read_output(out / "embeddings_recipes.jsonl")


def assert_same_output(path: Path, reference) -> None:
    ids, vectors = read_output(path)
    ref_ids, ref_vectors = reference
    assert ids == ref_ids  # same ids in the same order: nothing lost, nothing duplicated
    # batches are composed differently after a resume (length-sorted leftovers), so the last float bits may differ
    np.testing.assert_allclose(vectors, ref_vectors, rtol=0, atol=1e-5)


# -- the generator killed and resumed -----------------------------------------------------------------------------
def test_sigkill_at_three_random_points_then_resume_gives_the_uninterrupted_output(
        export_dir, minilm_path, reference, tmp_path):
    out = tmp_path / "out"
    rng = random.Random(20261125)
    kills = 0
    for _ in range(3):
        before = checkpoint_lines(out)
        proc = subprocess.Popen(generator(export_dir, out, minilm_path), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while checkpoint_lines(out) == before and proc.poll() is None:  # the model is loaded and batches flow
            assert time.monotonic() < deadline, "no batch was checkpointed within 300 s"
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.4))  # a random point: between batches or in the middle of a checkpoint write
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 2, "the run finished before it could be killed: make the input larger"
    assert not (out / "embeddings_recipes.jsonl").exists()

    final = subprocess.run(generator(export_dir, out, minilm_path), capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    embedded, reused = map(int, re.search(r"(\d+) embedded, (\d+) reused", final.stdout).groups())
    assert embedded + reused == N and reused > 0
    assert_same_output(out / "embeddings_recipes.jsonl", reference)


def test_a_checkpoint_with_a_truncated_last_line_is_repaired_and_the_run_completes(
        export_dir, minilm_path, reference, tmp_path):
    out = tmp_path / "out"
    first = subprocess.run(generator(export_dir, out, minilm_path), capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    [checkpoint] = (out / ".checkpoints").glob("recipe-*.jsonl")
    data = checkpoint.read_bytes()
    lines = data.count(b"\n")
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    checkpoint.write_bytes(data[: last_start + (len(data) - last_start) // 2])  # a write torn in the middle
    (out / "embeddings_recipes.jsonl").unlink()

    again = subprocess.run(generator(export_dir, out, minilm_path), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert (f"{checkpoint.name}: dropped 1 unreadable batch line (line {lines}; a run was probably killed while "
            "writing); those items are embedded again") in again.stderr
    assert f"{BATCH} embedded, {N - BATCH} reused from the checkpoint" in again.stdout
    assert_same_output(out / "embeddings_recipes.jsonl", reference)
    assert checkpoint.read_bytes().count(b"\n") == lines  # cut off, then the redone batch appended whole


# -- Neo4j killed in the middle of an import or a push -----------------------------------------------------------
NODES = 6000
DIMS = 64
IMPORT_BATCH = 200


class PrivateNeo4j:
    """A Neo4j of this module alone (own NEO4J_HOME and port), so that killing it disturbs no other test."""

    def __init__(self, home: Path):
        self.home = home
        self.port = free_port()
        self.env = {**os.environ, "NEO4J_HOME": str(home), "NEO4J_BOLT_PORT": str(self.port)}
        self.env.pop("NEO4J_PASSWORD", None)

    def start(self) -> dict:
        subprocess.run([str(ROOT / "scripts" / "neo4j.sh"), "start"], env=self.env, check=True, capture_output=True)
        return read_env_file(self.home / "credentials.env")

    def kill(self) -> None:
        """SIGKILL the server (a crash or a pulled plug), not a clean stop."""
        pid = int((self.home / "run" / "neo4j.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run([str(ROOT / "scripts" / "neo4j.sh"), "stop"], env=self.env, check=False, capture_output=True)


@pytest.fixture(scope="module")
def crash_neo4j(tmp_path_factory):
    server = PrivateNeo4j(tmp_path_factory.mktemp("neo4j-crash"))
    env = server.start()
    yield server, env
    server.stop()


@pytest.fixture(scope="module")
def crash_data(crash_neo4j, tmp_path_factory):
    """6,000 Recipe nodes and an embeddings_recipes.jsonl (64-d) for them, with its .meta.json."""
    import neo4j

    _, env = crash_neo4j
    with neo4j.GraphDatabase.driver(env["NEO4J_URI"], auth=(env["NEO4J_USER"], env["NEO4J_PASSWORD"])) as driver:
        driver.execute_query("CREATE CONSTRAINT recipe_id IF NOT EXISTS FOR (n:Recipe) REQUIRE n.id IS UNIQUE")
        driver.execute_query("UNWIND range(0, $n - 1) AS i CREATE (:Recipe {id: 'recipe-' + toString(i)})",
                             n=NODES)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((NODES, DIMS)).astype(np.float32)
    folder = tmp_path_factory.mktemp("crash-embeddings")
    items = (EmbeddedItem(f"recipe-{i}", "recipe", f"text {i}", v) for i, v in enumerate(vectors))
    write_embeddings(folder, "recipe", items, formats=["jsonl"],
                     meta=make_meta(model="test-model", dimensions=DIMS, normalized=False, dtype="float32",
                                    count=NODES, type_="recipe"))
    return folder / "embeddings_recipes.jsonl"


def embedded_count(env) -> int:
    import neo4j

    with neo4j.GraphDatabase.driver(env["NEO4J_URI"], auth=(env["NEO4J_USER"], env["NEO4J_PASSWORD"])) as driver:
        return driver.execute_query("MATCH (n:Recipe) WHERE n.embedding IS NOT NULL RETURN count(n) AS c"
                                    ).records[0]["c"]


def indexed_count(env) -> int:
    """Vectors the online recipe_embedding index finds (queried for all of them with one node's own vector)."""
    import neo4j

    with neo4j.GraphDatabase.driver(env["NEO4J_URI"], auth=(env["NEO4J_USER"], env["NEO4J_PASSWORD"])) as driver:
        state = driver.execute_query("SHOW VECTOR INDEXES YIELD name, state WHERE name = 'recipe_embedding' "
                                     "RETURN state").records[0]["state"]
        assert state == "ONLINE"
        return driver.execute_query(
            "MATCH (m:Recipe) WHERE m.embedding IS NOT NULL WITH m LIMIT 1 "
            "CALL db.index.vector.queryNodes('recipe_embedding', $n, m.embedding) YIELD node "
            "RETURN count(node) AS c", n=NODES).records[0]["c"]


def forget_embeddings(env) -> None:
    import neo4j

    with neo4j.GraphDatabase.driver(env["NEO4J_URI"], auth=(env["NEO4J_USER"], env["NEO4J_PASSWORD"])) as driver:
        driver.execute_query("MATCH (n:Recipe) REMOVE n.embedding, n.embedding_hash, n.embedding_model, "
                             "n.embedding_dimensions, n.embedding_updated_at")
        driver.execute_query("MATCH (s:EmbeddingSpace) DELETE s")
        for record in driver.execute_query("SHOW VECTOR INDEXES YIELD name RETURN name").records:
            driver.execute_query(f"DROP INDEX `{record['name']}`")


def kill_when_some_are_written(server, env, proc, at_least: int) -> int:
    deadline = time.monotonic() + 120
    while embedded_count(env) < at_least:
        assert proc.poll() is None, f"finished before Neo4j could be killed:\n{proc.communicate()}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    server.kill()
    return proc.wait(timeout=120)


def test_neo4j_killed_mid_import_gives_a_clear_error_whole_batches_and_a_rerun_completes(crash_neo4j, crash_data):
    server, env = crash_neo4j
    forget_embeddings(env)
    cmd = [sys.executable, str(ROOT / "backend" / "manage.py"), "import_embeddings", "--embedding-file",
           str(crash_data), "--batch-size", str(IMPORT_BATCH), "--verbosity", "0"]
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    code = kill_when_some_are_written(server, env, proc, 3 * IMPORT_BATCH)
    stderr = proc.stderr.read()
    assert code == 1
    assert stderr.strip().splitlines()[-1] == (
        f"CommandError: Cannot reach Neo4j at {env['NEO4J_URI']}: is it running? Start it with scripts/neo4j.sh "
        "start or set NEO4J_URI")

    server.start()
    kept = embedded_count(env)
    assert 0 < kept < NODES
    assert kept % IMPORT_BATCH == 0  # each batch is one transaction: no half-written batch survives a crash

    again = manage("import_embeddings", "--embedding-file", str(crash_data), "--batch-size", str(IMPORT_BATCH),
                   env=env)
    assert (f"embeddings_recipes.jsonl (test-model): {NODES} vectors: {NODES - kept} written, {kept} unchanged, "
            "0 unknown ids, 0 rejected") in again.stdout
    # the killed run created the index before its first batch; the re-run writes into it, and it holds every vector
    assert "Created vector index" not in again.stdout
    assert embedded_count(env) == NODES == indexed_count(env)


PUSH_SCRIPT = """
import sys
from console.errors import Neo4jStoreError
from console.sinks.push import push_to_neo4j
try:
    report = push_to_neo4j(sys.argv[1], batch_size=int(sys.argv[2]))
except Neo4jStoreError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
print(report.summary())
"""


def test_neo4j_killed_mid_push_gives_a_clear_error_whole_batches_and_a_second_push_completes(
        crash_neo4j, crash_data):
    server, env = crash_neo4j
    forget_embeddings(env)
    cmd = [sys.executable, "-c", PUSH_SCRIPT, str(crash_data), str(IMPORT_BATCH)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    code = kill_when_some_are_written(server, env, proc, 3 * IMPORT_BATCH)
    assert code == 1
    # (the lines before it, if any, are the driver's own log of the dropped connection)
    assert proc.stderr.read().strip().splitlines()[-1] == (
        f"error: Cannot reach Neo4j at {env['NEO4J_URI']}: is it running? Start it with scripts/neo4j.sh start or "
        "set NEO4J_URI")
    server.start()
    kept = embedded_count(env)
    assert 0 < kept < NODES and kept % IMPORT_BATCH == 0

    again = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (f"{NODES} vectors: {NODES - kept} written, {kept} unchanged, 0 unknown ids, "
                                    "0 rejected")
    assert embedded_count(env) == NODES


# -- bad input records: the generator's exact message, nothing embedded -------------------------------------------
FIX_JSON = "fix the JSON syntax (a JSON array of objects is expected)"
UTF8 = "re-save the file as UTF-8 or pass --encoding-errors replace"
CSV_HEADER = 'the first row must name the columns, at least "id", "type" and "text"'
BAD_RECORDS = {
    "malformed.json": f"malformed.json, line 3: not valid JSON at column 2: expected ',' or ']' after a record — "
                      f"{FIX_JSON}",
    "truncated.json": f"truncated.json, line 2: not valid JSON at column 23: Unterminated string starting at — "
                      f"{FIX_JSON}",
    "object.json": "object.json, line 1: expected a JSON array of records ([{...}, ...]) — wrap the records in [ ] "
                   "or save them as JSON Lines (.jsonl)",
    "empty.json": "empty.json: the file is empty — export the records again (a JSON array of objects)",
    "empty.csv": f'empty.csv, line 1: no "id", "type", "text" column (the header has: nothing) — {CSV_HEADER}',
    "semicolon.csv": f'semicolon.csv, line 1: no "id", "type", "text" column (the header has: id;type;text) — '
                     f"{CSV_HEADER}",
    "latin1.csv": f"latin1.csv: invalid UTF-8 at byte 45 (line 2) — {UTF8}",
    "utf16.jsonl": f"utf16.jsonl: invalid UTF-8 (the file looks like UTF-16) at byte 0 (line 1) — {UTF8}",
}


@pytest.mark.parametrize("name", sorted(BAD_RECORDS))
def test_an_unreadable_input_file_is_named_with_what_to_do_and_nothing_is_written(name, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli(["generate", "--input", str(BAD / "records" / name), "--output-dir", str(out),
                "--model", str(tmp_path / "no-model-needed")])
    assert code == 1
    assert capsys.readouterr().err.strip() == f"error: {BAD_RECORDS[name]}"
    assert not out.exists() or not list(out.glob("embeddings_*"))


def test_the_bad_records_corpus_is_all_covered():
    files = {p.name for p in (BAD / "records").iterdir()}
    covered = set(BAD_RECORDS) | {"nan_text.jsonl", "injection.jsonl", "unclosed_quote.csv", "empty.jsonl",
                                  "header_only.csv"}
    assert files == covered


def test_a_nan_text_is_a_rejected_record_and_nothing_is_embedded(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli(["generate", "--input", str(BAD / "records" / "nan_text.jsonl"), "--output-dir", str(out),
                "--model", str(tmp_path / "no-model-needed")])
    assert code == 1
    assert capsys.readouterr().err.strip() == (
        "error: 1 invalid record; nothing was embedded:\n"
        '  nan_text.jsonl, line 2 (id "r2"): "text" must be a string, not the number nan — put the text to embed in '
        "one string or run with --on-invalid skip\n"
        f"All of them are listed in {out / 'rejects.jsonl'}.\n"
        "Fix them, or run with --on-invalid skip to embed the valid records and list the rest.")
    assert [p.name for p in out.iterdir()] == ["rejects.jsonl"]


def test_duplicate_ids_across_files_stop_the_run_naming_both_places(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli(["generate", "--input-dir", str(BAD / "duplicate_ids"), "--output-dir", str(out),
                "--model", str(tmp_path / "no-model-needed")])
    assert code == 1
    # files are read in name order: more.jsonl first, so its recipe-1 is the one kept
    assert capsys.readouterr().err.splitlines()[:2] == [
        "error: 1 invalid record; nothing was embedded:",
        '  recipes.json, line 2: duplicate id "recipe-1" (first in more.jsonl, line 2) — give each record its own id '
        "or run with --on-invalid skip"]
    assert not list(out.glob("embeddings_*"))


def test_an_unclosed_quote_in_a_csv_is_an_error_not_a_swallowed_record(tmp_path, capsys):
    """An unbalanced quote must not swallow the following rows into one record's text."""
    code = cli(["validate", "--input", str(BAD / "records" / "unclosed_quote.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == ('error: unclosed_quote.csv, line 2: a quoted cell is never closed — quote whole cells ("like '
                   'this") and double the quotes inside them ("")')


@pytest.mark.parametrize("name, message", [
    ("empty.jsonl", "empty.jsonl: the file has no records"),
    ("header_only.csv", "header_only.csv: the file has only a header row"),
])
def test_an_input_file_without_records_is_an_error(name, message, tmp_path, capsys):
    """Like an empty .json: an empty .jsonl or a header-only CSV is named, not read as "0 valid records"."""
    code = cli(["generate", "--input", str(BAD / "records" / name), "--output-dir", str(tmp_path / "out"),
                "--model", str(tmp_path / "no-model-needed")])
    assert code == 1
    assert capsys.readouterr().err.strip() == f"error: {message} — export the records again, or leave this file out"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("embeddings_*"))


def test_cypher_and_html_in_ids_and_texts_are_kept_verbatim_as_data(tmp_path, minilm_path):
    out = tmp_path / "out"
    assert cli(["generate", "--input", str(BAD / "records" / "injection.jsonl"), "--output-dir", str(out),
                "--model", str(minilm_path), "--device", "cpu", "--quiet", "--format", "jsonl"]) == 0
    wanted = [json.loads(line) for line in (BAD / "records" / "injection.jsonl").read_text().splitlines()]
    got = list(read_embeddings(out / "embeddings_recipes.jsonl"))
    assert [(i.id, i.text) for i in got] == [(w["id"], w["text"]) for w in wanted]


def test_a_one_megabyte_text_is_embedded_cut_to_the_models_length(tmp_path, minilm_path):
    from sentence_transformers import SentenceTransformer

    text = ("Nasi goreng kampung pedas dengan telur mata sapi. " * 21000)[: 1 << 20]
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"id": "r-big", "type": "recipe", "text": text}) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert cli(["generate", "--input", str(path), "--output-dir", str(out), "--model", str(minilm_path),
                "--device", "cpu", "--quiet", "--format", "jsonl"]) == 0
    [item] = read_embeddings(out / "embeddings_recipes.jsonl")
    assert item.text == text
    plain = SentenceTransformer(str(minilm_path), device="cpu").encode([text], normalize_embeddings=True)[0]
    np.testing.assert_allclose(item.embedding, plain, atol=1e-5)


# -- bad embedding files: import_embeddings says exactly what is wrong and writes nothing -------------------------
REDO = "re-create the file with `embedding-console generate`"
FINITE = '"embedding" must be a flat list of finite numbers'
NUMBERS = '"embedding" must be a list of numbers'
BAD_EMBEDDINGS = {
    "nan.json": f'nan.json, line 3: item "r2": {FINITE} — {REDO}',
    "infinity.jsonl": f'infinity.jsonl, line 2: item "r2": {FINITE} — {REDO}',
    "overflow.jsonl": f'overflow.jsonl, line 2: item "r2": {FINITE} — {REDO}',
    "nested.jsonl": f'nested.jsonl, line 2: item "r2": {NUMBERS} — {REDO}',
    "booleans.jsonl": f'booleans.jsonl, line 2: item "r2": {NUMBERS} — {REDO}',  # numpy would make them 1.0/0.0
    "strings.jsonl": f'strings.jsonl, line 2: item "r2": {NUMBERS} — {REDO}',  # numpy would parse "0.1"
    "mixed_dims.jsonl": f'mixed_dims.jsonl, line 2: item "r2" has 3 dimensions, the items before it 4 — {REDO}',
    "malformed.jsonl": f"malformed.jsonl, line 2: not valid JSON at column 55: Expecting value — {REDO}",
    "no_id.jsonl": f'no_id.jsonl, line 2: item has no "id" — {REDO}',
    "latin1.jsonl": f"latin1.jsonl, line 2: invalid UTF-8 at column 10 — {REDO}",
    "object.json": "object.json, line 1: expected a JSON array of records ([{...}, ...]) — wrap the records in [ ] "
                   "or save them as JSON Lines (.jsonl)",
    "empty.json": "empty.json: the file is empty — export the records again (a JSON array of objects)",
}


@pytest.fixture
def two_recipes(neo4j_driver, neo4j_settings, neo4j_env):
    empty_database(neo4j_driver, neo4j_settings["database"])
    neo4j_driver.execute_query("CREATE (:Recipe {id: 'r1', title: 'Soto'}), (:Recipe {id: 'r2', title: 'Rawon'})",
                               database_=neo4j_settings["database"])
    return neo4j_driver


def graph_state(driver, label: str | None = None) -> list[tuple]:
    """Every node (or every node with `label`, from a fixed set): id, labels, whether it has a vector, its keys."""
    match = {None: "MATCH (n)", "Recipe": "MATCH (n:Recipe)"}[label]
    return [tuple(r.values()) for r in driver.execute_query(
        f"{match} RETURN n.id AS id, labels(n) AS labels, n.embedding IS NOT NULL AS embedded, "
        "keys(n) AS keys ORDER BY id").records]


@pytest.mark.parametrize("name", sorted(BAD_EMBEDDINGS))
def test_a_bad_embedding_file_is_refused_before_anything_is_written(name, two_recipes, neo4j_env):
    before = graph_state(two_recipes)
    proc = manage("import_embeddings", "--embedding-file", str(BAD / "embeddings" / name), "--model", "m",
                  env=neo4j_env, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == f"CommandError: {BAD_EMBEDDINGS[name]} (nothing was imported)"
    assert graph_state(two_recipes) == before


def test_the_bad_embeddings_corpus_is_all_covered():
    files = {p.name for p in (BAD / "embeddings").iterdir()}
    assert files == set(BAD_EMBEDDINGS) | {"injection_ids.json", "empty.jsonl"}


def test_cypher_and_html_in_ids_are_unknown_ids_and_touch_no_node(two_recipes, neo4j_env):
    before = graph_state(two_recipes, "Recipe")
    proc = manage("import_embeddings", "--embedding-file", str(BAD / "embeddings" / "injection_ids.json"),
                  "--model", "m", "--dry-run", env=neo4j_env, check=False)
    assert proc.returncode == 1  # nothing would be written: an error (issue 28), not a quiet success
    assert "injection_ids.json (m): 4 vectors: 0 would write, 0 unchanged, 4 unknown ids, 0 rejected" in proc.stdout
    proc = manage("import_embeddings", "--embedding-file", str(BAD / "embeddings" / "injection_ids.json"),
                  "--model", "m", env=neo4j_env, check=False)
    assert proc.returncode == 1 and "no vector was written, every item was rejected or is not in the graph" in proc.stderr
    assert "4 vectors: 0 written, 0 unchanged, 4 unknown ids, 0 rejected" in proc.stdout
    assert ('4 ids are not in the graph (not written): r1"}) MATCH (n) DETACH DELETE n //, r1\' OR 1=1 //, '
            '<script>alert(1)</script>, r1\\"}) SET n.pwned = true //') in proc.stderr
    assert graph_state(two_recipes, "Recipe") == before


def test_an_import_that_writes_no_vector_leaves_no_index_and_no_embedding_space(two_recipes, neo4j_env):
    """A file of wrong ids (another graph, a typo in the id prefix) must not leave a vector index or an EmbeddingSpace
    with its model and dimensions behind: they would refuse the real import later (DimensionMismatch)."""
    assert manage("import_embeddings", "--embedding-file", str(BAD / "embeddings" / "injection_ids.json"), "--model",
                  "m", env=neo4j_env, check=False).returncode == 1
    indexes = two_recipes.execute_query("SHOW VECTOR INDEXES YIELD name RETURN name").records
    spaces = two_recipes.execute_query("MATCH (s:EmbeddingSpace) RETURN s.model AS model").records
    assert ([r["name"] for r in indexes], [r["model"] for r in spaces]) == ([], [])


def test_an_embedding_file_without_items_is_an_error(two_recipes, neo4j_env):
    """Like an empty .json: an empty .jsonl of embeddings is an error naming the file, not "0 vectors"."""
    proc = manage("import_embeddings", "--embedding-file", str(BAD / "embeddings" / "empty.jsonl"), "--model", "m",
                  env=neo4j_env, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == ("CommandError: empty.jsonl: the file holds no embeddings — "
                                                    "re-create it with `embedding-console generate` (nothing was "
                                                    "imported)")
