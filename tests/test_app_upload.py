"""The Upload page: export files in (uploaded or from a server folder), per-file counts by type, a preview and
the validation report, before anything runs; uploads are kept in the work folder across reloads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import read_demo_recipes

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _recipes(n: int, name: str = "tempe") -> list[dict]:
    return [{"id": f"recipe-{r['URL'].rstrip('/').split('/')[-1].split('-')[0]}", "type": "recipe",
             "title": r["Title"], "text": f"{r['Title']}. Ingredients: {r['Ingredients'].replace('--', ', ')}"}
            for r in read_demo_recipes(name, n)]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSOLE_WORKDIR", str(tmp_path / "work"))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)
    return tmp_path / "work"


def _open(**kw) -> AppTest:
    return AppTest.from_file(APP, default_timeout=60).run()


def _upload(at: AppTest, *files) -> AppTest:
    at.file_uploader(key="uploader").set_value(list(files))
    return at.run()


def test_an_uploaded_export_is_counted_by_type_previewed_and_validated(workdir):
    records = _recipes(30) + [{"id": "category-tempe", "type": "category", "text": "Tempe", "name": "Tempe"}]
    at = _upload(_open(), ("recipes.json", json.dumps(records).encode(), "application/json"))
    assert not at.exception
    table = at.dataframe[0].value
    assert table.to_dict("records") == [
        {"file": "recipes.json", "records": 31, "valid": 31, "invalid": 0, "recipe": 30, "category": 1}]
    assert [s.value for s in at.success] == ["All 31 records are valid (30 recipe, 1 category). Next: the Generate page."]
    preview = at.dataframe[1].value
    assert preview["id"].tolist()[:2] == [records[0]["id"], records[1]["id"]]
    assert (workdir / "uploads" / "recipes.json").read_bytes() == json.dumps(records).encode()


def test_duplicates_empty_text_and_bad_rows_are_reported_before_anything_runs(workdir):
    good = _recipes(5)
    lines = [json.dumps(r) for r in good] + [
        json.dumps(dict(good[0], text="again")),          # line 6: duplicate id
        json.dumps({"id": "recipe-x", "type": "recipe", "text": "  "}),  # line 7: empty text
        '{"id": "recipe-y", "type": "recipe", "text": ',  # line 8: broken JSON
    ]
    at = _upload(_open(), ("recipes.jsonl", "\n".join(lines).encode(), "application/jsonl"))
    assert {m.label: m.value for m in at.metric} == {
        "Valid records": "5", "Duplicates": "1", "Empty text": "1", "Bad rows": "1", "Unreadable files": "0"}
    assert at.code[0].value.splitlines() == [
        f'recipes.jsonl, line 6: duplicate id "{good[0]["id"]}" (first in recipes.jsonl, line 1) — give each record '
        "its own id or run with --on-invalid skip",
        'recipes.jsonl, line 7 (id "recipe-x"): "text" is empty — fill it in or run with --on-invalid skip',
        "recipes.jsonl, line 8: not valid JSON at column 46: Expecting value — fix or remove that line or run with "
        "--on-invalid skip",
    ]
    assert at.warning[0].value.startswith("5 valid records (5 recipe); 3 problems.")


def test_a_file_that_cannot_be_read_is_named_with_what_to_do(workdir):
    at = _upload(_open(), ("notes.csv", b"name,amount\ntempe,1\n", "text/csv"))
    assert [e.value for e in at.error] == [
        'notes.csv, line 1: no "id", "type", "text" column (the header has: name, amount) — the first row must name '
        'the columns, at least "id", "type" and "text"']
    assert {m.label: m.value for m in at.metric}["Unreadable files"] == "1"


def test_uploads_are_still_listed_after_a_reload(workdir):
    _upload(_open(), ("recipes.csv", b"id,type,text\nrecipe-1,recipe,Tempe goreng\n", "text/csv"))
    reloaded = _open()  # a new browser session
    assert any(m.value.startswith(":material/description: **recipes.csv**") for m in reloaded.markdown)
    assert reloaded.dataframe[0].value["recipe"].tolist() == [1]


def test_a_folder_on_the_server_is_read_and_remembered(workdir, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "recipes.json").write_text(json.dumps(_recipes(12)), encoding="utf-8")
    at = _open()
    at.radio[0].set_value("A folder on the server").run()
    at.text_input[0].input(str(folder)).run()
    assert at.dataframe[0].value["recipe"].tolist() == [12]
    reloaded = _open()
    assert reloaded.radio[0].value == "A folder on the server" and reloaded.text_input[0].value == str(folder)


def test_a_missing_server_folder_says_so(workdir, tmp_path):
    at = _open()
    at.radio[0].set_value("A folder on the server").run()
    at.text_input[0].input(str(tmp_path / "nowhere")).run()
    assert [e.value for e in at.error] == ["nowhere: no such folder — pass the folder that holds the exported files"]
