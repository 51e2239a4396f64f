"""Reading export files: JSON arrays, JSON Lines, CSV; UTF-8 with BOM; clear errors naming file and line/byte."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.errors import InputError
from console.files.records import Record, find_input_files, read_records

INPUTS = Path(__file__).parent / "data" / "inputs"


def test_json_array_records_keep_text_title_extras_and_start_line():
    records = read_records(INPUTS / "recipes.json")
    assert [r.id for r in records] == ["recipe-1", "recipe-2", "recipe-3"]
    first = records[0]
    assert first.type == "recipe"
    assert first.title == "Nasi Goreng"
    assert "🌶️" in first.text
    assert first.extra["ingredients"] == ["nasi", "bawang merah", "kecap manis", "telur"]
    assert (first.source, first.line) == ("recipes.json", 2)
    assert [r.line for r in records] == [2, 6, 9]
    assert "crème de la crème 😋" in records[2].text


def test_jsonl_records_use_their_line_and_skip_blank_lines():
    records = read_records(INPUTS / "ingredients.jsonl")
    assert [(r.id, r.line) for r in records] == [
        ("ingredient-nasi", 1), ("ingredient-bawang-merah", 2), ("ingredient-kecap-manis", 3),
        ("ingredient-tempe", 5)]
    assert records[0].title == "nasi"  # "name" is the display title when there is no "title"


def test_csv_records_use_the_line_where_the_row_starts_even_with_multiline_cells():
    records = read_records(INPUTS / "categories.csv")
    assert [(r.id, r.line) for r in records] == [("category-ayam", 2), ("category-tempe", 3), ("category-telur", 5)]
    assert records[1].text == "Tempe: mendoan, orek, bacem\nand other tempeh dishes"
    assert records[1].extra == {"name": "tempe"}


def test_a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "recipes.json"
    path.write_bytes(b"\xef\xbb\xbf" + '[{"id": "r1", "type": "recipe", "text": "Rendang 🥩"}]'.encode())
    assert read_records(path) == [Record("r1", "recipe", "Rendang 🥩", source="recipes.json", line=1)]


def test_invalid_utf8_names_the_file_and_byte_offset(tmp_path):
    path = tmp_path / "recipes.json"
    path.write_bytes(b'[\n{"id": "r1", "type": "recipe", "text": "Sate \xff ayam"}]')
    with pytest.raises(InputError) as info:
        read_records(path)
    assert str(info.value) == (
        "recipes.json: invalid UTF-8 at byte 47 (line 2) — re-save the file as UTF-8 or pass --encoding-errors replace")


def test_invalid_utf8_after_a_bom_counts_bytes_from_the_start_of_the_file(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"id": "r1", "type": "recipe", "text": "\xc3"}\n')
    with pytest.raises(InputError, match=r"^r.jsonl: invalid UTF-8 at byte 43 \(line 1\)"):
        read_records(path)


def test_encoding_errors_replace_turns_bad_bytes_into_replacement_characters(tmp_path):
    path = tmp_path / "recipes.json"
    path.write_bytes(b'[{"id": "r1", "type": "recipe", "text": "Sate \xff ayam"}]')
    [record] = read_records(path, encoding_errors="replace")
    assert record.text == "Sate \ufffd ayam"


def test_a_utf16_file_is_named_as_such(tmp_path):
    path = tmp_path / "recipes.json"
    path.write_bytes('[{"id": "r1"}]'.encode("utf-16"))
    with pytest.raises(InputError) as info:
        read_records(path)
    assert str(info.value) == ("recipes.json: invalid UTF-8 (the file looks like UTF-16) at byte 0 (line 1) — "
                               "re-save the file as UTF-8 or pass --encoding-errors replace")


def test_broken_json_array_names_file_line_and_column(tmp_path):
    path = tmp_path / "recipes.json"
    path.write_text('[\n  {"id": "r1", "type": "recipe", "text": "a"}\n  {"id": "r2"}\n]\n')
    with pytest.raises(InputError) as info:
        read_records(path)
    assert str(info.value) == ("recipes.json, line 3: not valid JSON at column 3: expected ',' or ']' after a record"
                               " — fix the JSON syntax (a JSON array of objects is expected)")


def test_a_json_object_instead_of_an_array_is_explained(tmp_path):
    path = tmp_path / "recipes.json"
    path.write_text('{"id": "r1", "type": "recipe", "text": "a"}')
    with pytest.raises(InputError) as info:
        read_records(path)
    assert str(info.value) == ("recipes.json, line 1: expected a JSON array of records ([{...}, ...]) — "
                               "wrap the records in [ ] or save them as JSON Lines (.jsonl)")


def test_a_broken_jsonl_line_becomes_a_record_for_validation_to_report(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "r1", "type": "recipe", "text": "a"}\n{"id": "r2", "type": \n')
    good, broken = read_records(path)
    assert good.id == "r1"
    assert (broken.id, broken.line, broken.extra["_problem"]) == (None, 2, "not valid JSON at column 22: Expecting value")


def test_csv_without_a_text_column_is_refused(tmp_path):
    path = tmp_path / "recipes.csv"
    path.write_text("id,type,title\nr1,recipe,Soto\n")
    with pytest.raises(InputError) as info:
        read_records(path)
    assert str(info.value) == ('recipes.csv, line 1: no "text" column (the header has: id, type, title) — '
                               'the first row must name the columns, at least "id", "type" and "text"')


def test_unknown_file_type_is_refused(tmp_path):
    path = tmp_path / "recipes.xml"
    path.write_text("<recipes/>")
    with pytest.raises(InputError) as info:
        read_records(path)
    assert str(info.value) == "recipes.xml: unknown file type .xml — use .json (array), .jsonl or .csv"


def test_find_input_files_lists_exports_and_leaves_out_the_consoles_own_outputs(tmp_path):
    for name in ["recipes.json", "ingredients.jsonl", "categories.csv", "embeddings_recipes.json",
                 "embeddings_recipes.meta.json", "embeddings_recipe.json", "embeddings_recipe.meta.json",
                 "embeddings_category.jsonl", "rejects.jsonl", "notes.txt"]:  # current and earlier output names
        (tmp_path / name).write_text("[]")
    assert [p.name for p in find_input_files(tmp_path)] == ["categories.csv", "ingredients.jsonl", "recipes.json"]


def test_find_input_files_in_an_empty_folder_says_what_to_do(tmp_path):
    folder = tmp_path / "embedding_data"
    folder.mkdir()
    with pytest.raises(InputError) as info:
        find_input_files(folder)
    assert str(info.value) == ("embedding_data: no input files (*.json, *.jsonl, *.csv) in the folder — "
                               "export the records first, or pass --input FILE")


def test_an_unclosed_quote_in_a_csv_is_an_error_not_a_cell_that_swallows_the_file(tmp_path):
    path = tmp_path / "recipes.csv"
    path.write_text('id,type,text\nr1,recipe,"Soto ayam\nr2,recipe,Rawon\n')
    with pytest.raises(InputError) as info:
        read_records(path)
    assert str(info.value) == ('recipes.csv, line 2: a quoted cell is never closed — quote whole cells ("like this") '
                               'and double the quotes inside them ("")')


@pytest.mark.parametrize("name, content, message", [
    ("recipes.jsonl", "\n\n", "recipes.jsonl: the file has no records — export the records again, or leave this "
                              "file out"),
    ("recipes.json", "[]", "recipes.json: the file has no records — export the records again, or leave this file out"),
    ("recipes.csv", "id,type,text\n", "recipes.csv: the file has only a header row — export the records again, or "
                                      "leave this file out"),
])
def test_a_file_without_records_is_an_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as info:
        read_records(path)
    assert str(info.value) == message


def test_a_json_array_is_decoded_item_by_item_over_a_small_window(tmp_path, monkeypatch):
    import console.files.records

    monkeypatch.setattr(console.files.records, "JSON_WINDOW", 100)  # ~1 MB normally: the file is never held whole
    items = [{"id": f"r{i}", "type": "recipe", "text": f"Soto {i} " * (i % 7), "loves": i * 1.5} for i in range(300)]
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps(items[:150])[:-1] + ",\n" + json.dumps(items[150:])[1:], encoding="utf-8")
    records = read_records(path)
    assert [(r.id, r.extra["loves"], r.line) for r in records] == [(i["id"], i["loves"], 1 if n < 150 else 2)
                                                                   for n, i in enumerate(items)]


def test_a_broken_item_far_into_a_json_array_names_its_line_and_column(tmp_path, monkeypatch):
    import console.files.records

    monkeypatch.setattr(console.files.records, "JSON_WINDOW", 100)
    lines = [json.dumps({"id": f"r{i}", "type": "recipe", "text": "Soto"}) for i in range(50)]
    lines[40] = lines[40].replace('"type":', '"type"')
    path = tmp_path / "recipes.json"
    path.write_text("[\n" + ",\n".join(lines) + "\n]\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_records(path)
    assert str(info.value) == ("recipes.json, line 42: not valid JSON at column 22: Expecting ':' delimiter — fix the "
                               "JSON syntax (a JSON array of objects is expected)")
