"""Validation before any model work: each bad record gets the exact message the user sees."""
from __future__ import annotations

import json

import pytest

from console.errors import InputError
from console.files.records import read_records
from console.files.validate import GoodRecords, validate, validate_files, write_rejects


def _validate_json(tmp_path, items, name="recipes.json"):
    path = tmp_path / name
    path.write_text("[\n" + ",\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n]\n", encoding="utf-8")
    return validate(read_records(path))


def _only_message(report):
    assert len(report.rejects) == 1, [r.message for r in report.rejects]
    return report.rejects[0].message


GOOD = {"id": "r0", "type": "recipe", "text": "Nasi goreng"}


@pytest.mark.parametrize("item, message", [
    ({"type": "recipe", "text": "Soto"},
     'recipes.json, line 3: record has no "id" — add a unique id or run with --on-invalid skip'),
    ({"id": "", "type": "recipe", "text": "Soto"},
     'recipes.json, line 3 (id ""): "id" is empty — add a unique id or run with --on-invalid skip'),
    ({"id": 12, "type": "recipe", "text": "Soto"},
     'recipes.json, line 3: "id" must be a string, not the number 12 — quote it ("12") or run with --on-invalid skip'),
    ({"id": "r1", "text": "Soto"},
     'recipes.json, line 3 (id "r1"): record has no "type" — add "type" (recipe, ingredient or category) '
     'or run with --on-invalid skip'),
    ({"id": "r1", "type": "Recipe!", "text": "Soto"},
     'recipes.json, line 3 (id "r1"): "type" must be a lowercase word such as "recipe", not "Recipe!" — '
     'use recipe, ingredient, category or another lowercase word or run with --on-invalid skip'),
    ({"id": "r1", "type": "recipes", "text": "Soto"},  # its files would take the name of recipe's
     'recipes.json, line 3 (id "r1"): "type" is "recipes", the plural of "recipe" — use "recipe" '
     'or run with --on-invalid skip'),
    ({"id": "r1", "type": "recipe"},
     'recipes.json, line 3 (id "r1"): record has no "text" — add the text to embed or run with --on-invalid skip'),
    ({"id": "r1", "type": "recipe", "text": "   "},
     'recipes.json, line 3 (id "r1"): "text" is empty — fill it in or run with --on-invalid skip'),
    ({"id": "r1", "type": "recipe", "text": ["Soto", "Ayam"]},
     'recipes.json, line 3 (id "r1"): "text" must be a string, not a list — put the text to embed in one string '
     'or run with --on-invalid skip'),
    ("just a string",
     'recipes.json, line 3: the item is a string, not an object with "id", "type" and "text" — '
     'fix or remove that line or run with --on-invalid skip'),
])
def test_bad_record_message(tmp_path, item, message):
    report = _validate_json(tmp_path, [GOOD, item])
    assert _only_message(report) == message
    assert [r.id for r in report.good] == ["r0"]


def test_duplicate_ids_keep_the_first_and_name_where_it_is(tmp_path):
    report = _validate_json(tmp_path, [GOOD, {"id": "r0", "type": "recipe", "text": "Soto"}])
    assert _only_message(report) == ('recipes.json, line 3: duplicate id "r0" (first in recipes.json, line 2) — '
                                     'give each record its own id or run with --on-invalid skip')
    assert report.good[0].text == "Nasi goreng"


def test_duplicate_ids_across_files_are_caught(tmp_path):
    a = tmp_path / "recipes.json"
    a.write_text(json.dumps([GOOD]))
    b = tmp_path / "more.jsonl"
    b.write_text(json.dumps(GOOD) + "\n")
    report = validate(read_records(a) + read_records(b))
    assert _only_message(report) == ('more.jsonl, line 1: duplicate id "r0" (first in recipes.json, line 1) — '
                                     'give each record its own id or run with --on-invalid skip')


def test_broken_jsonl_line_is_reported_with_its_line(tmp_path):
    path = tmp_path / "ingredients.jsonl"
    path.write_text('{"id": "i1", "type": "ingredient", "text": "nasi"}\n{"id": "i2", "type": "ingredient", "text": \n')
    report = validate(read_records(path))
    assert _only_message(report) == ("ingredients.jsonl, line 2: not valid JSON at column 44: Expecting value — "
                                     "fix or remove that line or run with --on-invalid skip")


def test_a_clean_file_gives_an_ok_report_with_counts_per_type(tmp_path):
    report = _validate_json(tmp_path, [GOOD, {"id": "i1", "type": "ingredient", "text": "nasi"}])
    assert report.ok
    assert report.counts == {"recipe": 1, "ingredient": 1}
    assert report.summary() == "2 valid records (1 recipe, 1 ingredient)"


def test_rejects_file_lists_each_bad_record_with_its_message(tmp_path):
    report = _validate_json(tmp_path, [GOOD, {"id": "r1", "type": "recipe", "text": ""}])
    path = write_rejects(report, tmp_path / "out" / "rejects.jsonl")
    [line] = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(line) == {
        "source": "recipes.json", "line": 3, "id": "r1",
        "error": 'recipes.json, line 3 (id "r1"): "text" is empty — fill it in or run with --on-invalid skip',
        "record": {"id": "r1", "type": "recipe", "text": ""}}
    assert report.summary() == "1 valid record (1 recipe); 1 invalid"


def test_validate_files_streams_with_the_same_messages_and_keeps_no_records(tmp_path):
    a = tmp_path / "recipes.json"
    a.write_text(json.dumps([GOOD, {"id": "r1", "type": "recipe", "text": ""}]))
    b = tmp_path / "more.jsonl"
    b.write_text(json.dumps(GOOD) + "\n" + json.dumps({"id": "r2", "type": "recipe", "text": "Soto"}) + "\n")
    report = validate_files([a, b])
    assert [r.message for r in report.rejects] == [
        'recipes.json, line 1 (id "r1"): "text" is empty — fill it in or run with --on-invalid skip',
        'more.jsonl, line 1: duplicate id "r0" (first in recipes.json, line 1) — give each record its own id or '
        'run with --on-invalid skip']
    assert isinstance(report.good, GoodRecords)  # the files are read again when the good records are wanted
    assert [(r.id, r.source) for r in report.good] == [("r0", "recipes.json"), ("r2", "more.jsonl")]
    assert report.summary() == "2 valid records (2 recipe); 2 invalid"


def test_validate_files_limit_keeps_the_first_valid_records(tmp_path):
    path = tmp_path / "recipes.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "type": "recipe", "text": "a"}) + "\n" for i in range(5)))
    report = validate_files([path], limit=2)
    assert ([r.id for r in report.good], report.counts) == (["r0", "r1"], {"recipe": 2})


def test_a_file_changed_after_validation_is_not_read_as_if_it_were_the_same(tmp_path):
    path = tmp_path / "recipes.jsonl"
    path.write_text(json.dumps(GOOD) + "\n")
    report = validate_files([path])
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({"id": "r9", "type": "recipe", "text": "b"}) + "\n")
    with pytest.raises(InputError) as info:
        list(report.good)
    assert str(info.value) == ("recipes.jsonl: the file changed while the run was reading it — run the command "
                               "again once the file is complete")
