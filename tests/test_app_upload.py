"""The Upload page: export files in (uploaded or from a server folder), per-file counts by type, a preview and
the validation report, before anything runs; uploads are kept in the work folder across reloads. A server folder is read only under
CONSOLE_DATA_ROOTS (links included), and the choice is the browser session's own."""
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
    monkeypatch.delenv("CONSOLE_DATA_ROOTS", raising=False)
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


def test_a_type_the_graph_schema_lacks_is_reported_at_upload(workdir, tmp_path, monkeypatch):
    """Records of a type the console's graph schema does not describe are valid (they can be embedded), and the
    page says, before any model work, that a push would leave them out and how to add the type."""
    schema = tmp_path / "graph.toml"
    schema.write_text('[types.recipe]\nlabel = "Recipe"\n', encoding="utf-8")
    monkeypatch.setenv("GRAPH_SCHEMA_FILE", str(schema))
    records = _recipes(3) + [{"id": f"tag-{n}", "type": "tag", "text": f"Tag {n}"} for n in range(2)]
    at = _upload(_open(), ("mixed.json", json.dumps(records).encode(), "application/json"))
    assert not at.exception
    assert [s.value for s in at.success] == ["All 5 records are valid (3 recipe, 2 tag). Next: the Generate page."]
    assert [w.value for w in at.warning] == [
        f"Not in the graph schema ({schema}): 2 tag. These records can be embedded and downloaded, but a push or an "
        "import leaves them out. Add a [types.<name>] table for each to the schema file (GRAPH_SCHEMA_FILE), or "
        'correct the records\' "type".']


def test_records_of_the_schema_s_types_get_no_schema_warning(workdir):
    at = _upload(_open(), ("recipes.json", json.dumps(_recipes(3)).encode(), "application/json"))
    assert not at.exception
    assert [w.value for w in at.warning] == []


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


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """CONSOLE_DATA_ROOTS: one allowed folder, data/."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("CONSOLE_DATA_ROOTS", str(root))
    return root


def _export_folder(folder: Path, n: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipes.json").write_text(json.dumps(_recipes(n)), encoding="utf-8")
    return folder


def _read_folder(folder) -> AppTest:
    at = _open()
    at.radio[0].set_value("A folder on the server").run()
    return at.text_input[0].input(str(folder)).run()


def test_a_folder_on_the_server_is_read_and_kept_for_this_session_only(workdir, roots):
    """The choice was kept in work/state.json, shared by every visitor; now it is this browser session's."""
    folder = _export_folder(roots / "export")
    at = _read_folder(folder)
    assert at.dataframe[0].value["recipe"].tolist() == [12]
    generate = at.switch_page("pages/generate.py").run()
    assert any(m.value.startswith(f"Input: the export files in the server folder `{folder}`") for m in generate.markdown)
    other = _open()  # another visitor (or a reload): not this session's choice
    assert other.radio[0].value == "Uploaded files"
    assert not (workdir / "state.json").exists()


def test_a_missing_server_folder_says_so(workdir, roots):
    at = _read_folder(roots / "nowhere")
    assert [e.value for e in at.error] == ["nowhere: no such folder — pass the folder that holds the exported files"]


def test_a_folder_outside_the_roots_is_refused(workdir, roots, tmp_path):
    outside = _export_folder(tmp_path / "elsewhere")
    at = _read_folder(outside)
    assert [e.value for e in at.error] == [
        f"{outside}: outside the folders the console may read ({roots}): pick a folder under one of them, or add "
        "it to CONSOLE_DATA_ROOTS"]
    assert not at.dataframe  # nothing listed, nothing previewed


def test_a_link_inside_the_roots_to_a_folder_outside_is_refused(workdir, roots, tmp_path):
    outside = _export_folder(tmp_path / "elsewhere")
    (roots / "link").symlink_to(outside, target_is_directory=True)
    at = _read_folder(roots / "link")
    assert [e.value for e in at.error][0].startswith(f"{roots / 'link'}: outside the folders the console may read")
    assert not at.dataframe


def test_a_file_linked_from_outside_the_roots_is_left_out(workdir, roots, tmp_path):
    folder = _export_folder(roots / "export", n=5)
    secret = _export_folder(tmp_path / "elsewhere", n=9) / "recipes.json"
    (folder / "more.json").symlink_to(secret)
    at = _read_folder(folder)
    assert at.dataframe[0].value["file"].tolist() == ["recipes.json"]


def test_without_roots_reading_a_server_folder_is_off(workdir, tmp_path, monkeypatch):
    monkeypatch.delenv("CONSOLE_DATA_ROOTS", raising=False)
    _export_folder(tmp_path / "export")
    at = _open()
    at.radio[0].set_value("A folder on the server").run()
    assert at.text_input[0].disabled
    assert [e.value for e in at.error] == [
        "reading a folder on the server is off: set CONSOLE_DATA_ROOTS to the folders the console may read "
        "(separated by ':') and restart it, or upload the files"]
    assert not at.dataframe


def test_the_problems_list_names_every_unreadable_file(workdir):
    """Three unreadable uploads: "Problems (3)" used to open on nothing (the messages were only above it)."""
    at = _upload(_open(), ("a.csv", b"name\nx\n", "text/csv"), ("b.json", b"{not json", "application/json"),
                 ("c.jsonl", b"", "application/jsonl"))
    assert {m.label: m.value for m in at.metric}["Unreadable files"] == "3"
    [problems] = [e for e in at.expander if e.label == "Problems (3)"]
    listed = problems.code[0].value.splitlines()
    assert [line.split(",")[0].split(":")[0] for line in listed] == ["a.csv", "b.json", "c.jsonl"]
    assert listed == [e.value for e in at.error]


def test_the_source_choice_follows_one_click_and_a_new_upload_shows_its_validation(workdir, roots):
    at = _open()
    at.radio[0].set_value("A folder on the server").run()
    at.radio[0].set_value("Uploaded files").run()
    assert at.radio[0].value == "Uploaded files" and at.info[0].value == "No files uploaded yet."
    at.radio[0].set_value("A folder on the server").run()
    at = _upload(at, ("recipes.csv", b"id,type,text\nrecipe-1,recipe,Tempe goreng\n", "text/csv"))
    assert at.radio[0].value == "Uploaded files"
    assert [s.value for s in at.success] == ["All 1 records are valid (1 recipe). Next: the Generate page."]
