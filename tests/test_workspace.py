"""The console's work folder: uploads, runs and their outputs, downloads in every format, server folders only
under CONSOLE_DATA_ROOTS, and the input summary the Upload page shows."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from console.files.validate import SKIP_HINT
from console.files.embfiles import EmbeddedItem, read_embeddings, read_meta, write_embeddings
from console.app.workspace import Workspace, inspect_inputs, safe_filename


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "work")


def test_the_work_folder_comes_from_console_workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSOLE_WORKDIR", str(tmp_path / "elsewhere"))
    ws = Workspace()
    assert ws.root == tmp_path / "elsewhere"
    assert sorted(p.name for p in ws.root.iterdir()) == ["cache", "runs", "uploads"]


def test_an_upload_name_never_escapes_the_uploads_folder(ws):
    path = ws.save_upload("../../etc/recipes.json", b"[]")
    assert path == ws.uploads / "recipes.json"
    assert safe_filename("C:\\exports\\my recipes.csv") == "my recipes.csv"


def test_only_export_files_are_accepted(ws):
    with pytest.raises(ValueError, match=r"^model.bin: not an export file \(expected .json, .jsonl or .csv\)"):
        ws.save_upload("model.bin", b"x")


def test_uploading_the_same_name_again_replaces_the_file(ws):
    ws.save_upload("recipes.csv", b"id,type,text\n")
    ws.save_upload("recipes.csv", b"id,type,text\nrecipe-1,recipe,Tempe\n")
    assert [f.name for f in ws.list_uploads()] == ["recipes.csv"]
    assert ws.list_uploads()[0].size == len(b"id,type,text\nrecipe-1,recipe,Tempe\n")


def test_server_folders_are_allowed_only_under_the_configured_roots(tmp_path):
    """No more work/state.json shared by every visitor (the pages keep choices per session); a server folder is
    checked against CONSOLE_DATA_ROOTS with links resolved."""
    from console.app.workspace import FolderNotAllowed, allowed_folder, data_roots

    root, outside = tmp_path / "data", tmp_path / "other"
    (root / "export").mkdir(parents=True)
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    roots = data_roots({"CONSOLE_DATA_ROOTS": f"{root}{os.pathsep}{tmp_path / 'more'}"})
    assert roots == [root.resolve(), (tmp_path / "more").resolve()]
    assert allowed_folder(root / "export", roots) == (root / "export").resolve()
    assert allowed_folder(root / "export" / ".." / "export", roots) == (root / "export").resolve()
    for bad in (outside, root / "escape", root / ".." / "other", Path("/")):
        with pytest.raises(FolderNotAllowed, match="outside the folders the console may read"):
            allowed_folder(bad, roots)
    with pytest.raises(FolderNotAllowed, match="reading a folder on the server is off"):
        allowed_folder(root, data_roots({}))
    assert not hasattr(Workspace, "remember")


def _run_with_output(ws, fmt="json"):
    run = ws.new_run_dir("minilm")
    items = [EmbeddedItem(f"recipe-{i}", "recipe", f"text {i}", np.full(4, i, dtype=np.float32), f"T{i}")
             for i in range(3)]
    write_embeddings(run, "recipe", items, formats=(fmt,), meta={"model": "m", "dimensions": 4})
    return run


def test_outputs_of_every_run_are_listed_newest_first(ws):
    first = _run_with_output(ws)
    second = _run_with_output(ws, "parquet")
    found = [(f.run_id, f.type, f.format) for f in ws.embedding_files()]
    assert found == [(second.name, "recipe", "parquet"), (first.name, "recipe", "json")]


def test_a_download_in_another_format_is_converted_once_into_exports(ws):
    run = _run_with_output(ws, "json")
    parquet = ws.export_file(run / "embeddings_recipes.json", "parquet")
    assert parquet == run / "exports" / "embeddings_recipes.parquet"
    assert [i.id for i in read_embeddings(parquet)] == ["recipe-0", "recipe-1", "recipe-2"]
    assert read_meta(parquet)["model"] == "m"
    stamp = parquet.stat().st_mtime_ns
    assert ws.export_file(run / "embeddings_recipes.json", "parquet").stat().st_mtime_ns == stamp
    assert ws.export_file(run / "embeddings_recipes.json", "json") == run / "embeddings_recipes.json"


def _rename_to_earlier_names(run, stem="embeddings_recipes", old="embeddings_recipe"):
    """An output folder as runs before the guide's names left it (embeddings_recipe.*)."""
    for path in run.glob(stem + ".*"):
        path.rename(run / (old + path.name[len(stem):]))
    return run


def test_runs_with_the_earlier_names_are_listed_and_downloaded(ws):
    old = _rename_to_earlier_names(_run_with_output(ws, "json"))
    new = _run_with_output(ws, "json")
    assert [(f.run_id, f.path.name, f.type) for f in ws.embedding_files()] == [
        (new.name, "embeddings_recipes.json", "recipe"), (old.name, "embeddings_recipe.json", "recipe")]
    assert ws.export_file(old / "embeddings_recipe.json", "json") == old / "embeddings_recipe.json"
    jsonl = ws.export_file(old / "embeddings_recipe.json", "jsonl")  # a conversion takes the current name
    assert jsonl == old / "exports" / "embeddings_recipes.jsonl"
    assert [i.id for i in read_embeddings(jsonl)] == ["recipe-0", "recipe-1", "recipe-2"]
    assert read_meta(jsonl)["model"] == "m"


def test_a_run_with_both_names_lists_only_the_current_one(ws):
    run = _run_with_output(ws, "json")
    (run / "embeddings_recipe.json").write_text((run / "embeddings_recipes.json").read_text())
    assert [f.path.name for f in ws.embedding_files()] == ["embeddings_recipes.json"]


def test_the_input_summary_counts_types_across_files_and_names_unreadable_ones(tmp_path):
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"id": "recipe-1", "type": "recipe", "text": "Tempe goreng"},
        {"id": "ingredient-tempe", "type": "ingredient", "text": "tempe"}]), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps([{"id": "recipe-1", "type": "recipe", "text": "again"}]))
    (tmp_path / "c.json").write_bytes(b'[{"id": "x", "text": "caf\xe9"}]')
    summary = inspect_inputs([tmp_path / "a.jsonl", tmp_path / "b.json", tmp_path / "c.json"])
    assert summary.counts == {"recipe": 1, "ingredient": 1}
    assert summary.problems == {"duplicates": 1, "empty text": 0, "bad rows": 0, "unreadable files": 1}
    assert summary.files[2]["error"] == (
        "c.json: invalid UTF-8 at byte 25 (line 1) — re-save the file as UTF-8 or pass --encoding-errors replace")
    assert [(f["file"], f["records"], f["valid"], f["invalid"], f.get("recipe", 0)) for f in summary.files] == [
        ("a.jsonl", 2, 2, 0, 1), ("b.json", 1, 0, 1, 0), ("c.json", 0, 0, 0, 0)]
    assert summary.rejects == [  # the unreadable file is listed under Problems too (it used to be left out)
        "c.json: invalid UTF-8 at byte 25 (line 1) — re-save the file as UTF-8 or pass --encoding-errors replace",
        'b.json, line 1: duplicate id "recipe-1" (first in a.jsonl, line 1) — give each record its own id '
        + SKIP_HINT]
    assert [p["id"] for p in summary.preview] == ["recipe-1", "ingredient-tempe"]


def test_the_input_summary_streams_a_large_file_and_reports_a_broken_line_after_many_good_ones(tmp_path):
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(20_000):
            fh.write(json.dumps({"id": f"recipe-{i}", "type": "recipe", "text": f"Resep {i}"}) + "\n")
        fh.write('{"id": "recipe-x", "type": "recipe", "text": \n')
    (tmp_path / "ok.jsonl").write_text(json.dumps({"id": "recipe-1", "type": "recipe", "text": "Soto"}) + "\n")
    summary = inspect_inputs([path, tmp_path / "ok.jsonl"], preview_rows=3)
    assert [f["file"] for f in summary.preview] == ["big.jsonl"] * 3
    assert summary.files[0]["records"] == 20_001 and summary.files[0]["invalid"] == 1
    assert summary.files[0]["valid"] == 20_000  # recipe-1 is here first; ok.jsonl's copy is the duplicate
    assert summary.files[1] == {"file": "ok.jsonl", "records": 1, "valid": 0, "invalid": 1, "error": ""}
    assert summary.counts == {"recipe": 20_000}
    assert summary.problems == {"duplicates": 1, "empty text": 0, "bad rows": 1, "unreadable files": 0}
    assert summary.rejects[0].startswith("big.jsonl, line 20001:")
