"""console.explore.curation: a run's exclusions (exclusions.jsonl in its folder): add, undo, reload, a kill mid-write,
bad lines named by file and line, and downloads without the excluded items."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from console.explore import curation
from console.explore.curation import LeaveOut, exclude, exclusions_path, read_exclusions, undo, undo_all
from console.files.embfiles import EmbeddedItem, read_embeddings, read_meta, write_embeddings
from console.errors import InputError
from console.app.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run(tmp_path):
    """A run folder with 6 recipes, written as JSON (the run's own format)."""
    ws = Workspace(tmp_path / "work")
    folder = ws.new_run_dir("test")
    rng = np.random.default_rng(0)
    items = [EmbeddedItem(f"recipe-{n}", "recipe", f"resep {n}", rng.standard_normal(4).astype(np.float32))
             for n in range(6)]
    write_embeddings(folder, "recipe", items, formats=("json",), meta={"model": "m", "dimensions": 4})
    return ws, folder


def test_excluded_items_are_kept_in_a_readable_file_in_the_run_folder(run):
    _, folder = run
    assert exclude(folder / "embeddings_recipes.json", ["recipe-1", "recipe-2"], note="  duplicate\nof recipe-0 ") == 2
    path = folder / "exclusions.jsonl"
    assert exclusions_path(folder) == exclusions_path(folder / "embeddings_recipes.json") == path
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(e["id"], e["note"]) for e in lines] == [("recipe-1", "duplicate of recipe-0"),
                                                     ("recipe-2", "duplicate of recipe-0")]
    assert all(e["at"].endswith("Z") and e["at"][:4].isdigit() for e in lines)
    assert sorted(lines[0]) == ["at", "id", "note"]


def test_excluding_again_adds_nothing_and_a_new_note_replaces_the_old(run):
    _, folder = run
    exclude(folder, ["recipe-1"], note="old")
    first = read_exclusions(exclusions_path(folder))["recipe-1"]
    assert exclude(folder, ["recipe-1", "recipe-3"]) == 1
    assert read_exclusions(exclusions_path(folder))["recipe-1"] == first  # no note given: the old one stays
    exclude(folder, ["recipe-1"], note="new")
    entries = read_exclusions(exclusions_path(folder))
    assert list(entries) == ["recipe-1", "recipe-3"]
    assert (entries["recipe-1"].note, entries["recipe-1"].at) == ("new", first.at)


def test_undo_one_then_all(run):
    _, folder = run
    exclude(folder, ["recipe-1", "recipe-2", "recipe-3"], note="x")
    assert undo(folder, ["recipe-2", "recipe-9"]) == 1
    assert list(read_exclusions(exclusions_path(folder))) == ["recipe-1", "recipe-3"]
    assert undo_all(folder) == 2
    assert not exclusions_path(folder).exists()
    assert read_exclusions(exclusions_path(folder)) == {}
    assert undo_all(folder) == 0


def test_exclusions_are_read_back_by_another_process(run):
    """What a reload or a restarted server sees: the file, nothing held in memory."""
    _, folder = run
    exclude(folder, ["recipe-4"], note="salah kategori")
    code = ("import sys; from console.explore.curation import read_exclusions, exclusions_path; "
            "print([(e.id, e.note) for e in read_exclusions(exclusions_path(sys.argv[1])).values()])")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "[('recipe-4', 'salah kategori')]"


_WRITER = """
import sys
from console.explore.curation import exclude, undo
run = sys.argv[1]
ids = [f"item-{n}" for n in range(20000)]
exclude(run, ids[:10000], note="first half")
print("ready", flush=True)
while True:
    exclude(run, ids, note="x" * 40)
    undo(run, ids[10000:])
"""


@pytest.mark.parametrize("delay", [0.15, 0.4])
def test_a_writer_killed_mid_write_leaves_the_previous_file_whole(run, delay):
    """SIGKILL while a process rewrites 10,000 or 20,000 lines in a loop: the file is always one whole state."""
    _, folder = run
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(folder)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    entries = read_exclusions(exclusions_path(folder))
    assert len(entries) in (10000, 20000)
    assert list(entries)[:10000] == [f"item-{n}" for n in range(10000)]
    exclude(folder, ["recipe-1"])  # the next change clears what the killed writer left behind
    assert not list(folder.glob(".exclusions.jsonl.*.tmp"))


@pytest.mark.parametrize("line, message", [
    ('{"id": "recipe-1"', "exclusions.jsonl, line 2: not valid JSON at column 18: Expecting ',' delimiter"),
    ('{"note": "no id"}', 'exclusions.jsonl, line 2: no "id"'),
    ('{"id": ""}', 'exclusions.jsonl, line 2: "id" must be a non-empty text'),
    ('{"id": 12}', 'exclusions.jsonl, line 2: "id" must be a non-empty text'),
    ('["recipe-1"]', "exclusions.jsonl, line 2: not an object"),
    ('{"id": "recipe-1", "note": 3}', 'exclusions.jsonl, line 2: "note" must be a text'),
])
def test_a_bad_line_is_named_by_file_and_line(run, line, message):
    _, folder = run
    path = exclusions_path(folder)
    path.write_text('{"id": "recipe-0", "note": "ok"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_exclusions(path)
    assert str(err.value).startswith(message + " — each line must be a JSON object with an \"id\"")
    with pytest.raises(InputError):  # a change never overwrites a file it cannot read
        exclude(folder, ["recipe-2"])
    assert path.read_text(encoding="utf-8").endswith(line + "\n")


def test_a_file_written_by_hand_may_hold_only_ids_and_blank_lines(run):
    _, folder = run
    exclusions_path(folder).write_text('{"id": "recipe-1"}\n\n{"id": "recipe-2", "note": null}\n{"id": "recipe-1", '
                                       '"note": "again"}\n', encoding="utf-8")
    entries = read_exclusions(exclusions_path(folder))
    assert [(e.id, e.note, e.at) for e in entries.values()] == [("recipe-2", "", ""), ("recipe-1", "again", "")]


def test_leave_out_skips_and_counts_on_every_read(run):
    _, folder = run
    items = LeaveOut(read_embeddings(folder / "embeddings_recipes.json"), {"recipe-0", "recipe-5", "other-1"})
    assert [i.id for i in items] == ["recipe-1", "recipe-2", "recipe-3", "recipe-4"]
    assert (items.left_out, items.matched) == (2, {"recipe-0", "recipe-5"})
    assert items.by_type == {"recipe": {"recipe-0", "recipe-5"}}  # what a push clears in Neo4j
    dicts = LeaveOut([{"id": "a"}, {"id": "b"}], {"b"})
    assert [list(dicts), list(dicts)] == [[{"id": "a"}], [{"id": "a"}]] and dicts.left_out == 1
    assert dicts.by_type == {None: {"b"}}  # no type: counted, never cleared (push keeps only the allow-list's types)


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_a_download_leaves_the_excluded_items_out_and_the_run_files_untouched(run, fmt):
    ws, folder = run
    source = folder / "embeddings_recipes.json"
    before = source.read_bytes()
    assert curation.export_file(ws, source, fmt)[1] == 0
    exclude(folder, ["recipe-1", "recipe-4", "ingredient-9"])
    path, left_out = curation.export_file(ws, source, fmt)
    assert left_out == 2 and path.name == f"embeddings_recipes.{fmt}" and path.parent.name == fmt
    assert [i.id for i in read_embeddings(path)] == ["recipe-0", "recipe-2", "recipe-3", "recipe-5"]
    assert read_meta(path)["count"] == 4 and read_meta(path)["model"] == "m"
    assert curation.export_file(ws, source, fmt) == (path, 2)  # made once
    undo(folder, ["recipe-4"])
    path, left_out = curation.export_file(ws, source, fmt)  # other exclusions: made again
    assert left_out == 1 and len(list(read_embeddings(path))) == 5
    undo_all(folder)
    assert curation.export_file(ws, source, fmt) == (ws.export_file(source, fmt), 0)
    assert source.read_bytes() == before and len(list(read_embeddings(source))) == 6


def test_file_ids_reads_every_format(run):
    ws, folder = run
    source = folder / "embeddings_recipes.json"
    expected = [f"recipe-{n}" for n in range(6)]
    assert curation.file_ids(source) == curation.file_ids(ws.export_file(source, "parquet")) == expected


def test_the_ids_of_points_selected_on_the_map_come_from_their_customdata():
    """What st.plotly_chart's selection gives for a click, a box or a lasso: each map point carries its row number
    (``scatter_figure``); the neighbour rings carry none, and a row outside the map's data is ignored."""
    row_ids = [f"recipe-{n}" for n in range(10)]
    points = [{"curve_number": 0, "point_index": 3, "customdata": 3},
              {"curve_number": 1, "point_index": 0, "customdata": [7]},
              {"curve_number": 2, "point_index": 0},
              {"curve_number": 0, "point_index": 9, "customdata": 42},
              {"curve_number": 0, "point_index": 3, "customdata": 3}]
    assert curation.selected_ids(points, row_ids) == ["recipe-3", "recipe-7"]
    assert curation.selected_ids([], row_ids) == []


def test_the_command_line_excludes_lists_and_undoes(run, capsys):
    from console.cli import main as cli

    _, folder = run
    assert cli(["exclude", str(folder), "--id", "recipe-1", "--id", "recipe-9x", "--note", "ganda"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("Excluded 2 new items (0 were already). 1 ids are in none of the run's embedding files (kept "
                      "in the list anyway).")
    assert [line.split("\t")[::2] for line in out[1:3]] == [["recipe-1", "ganda"], ["recipe-9x", "ganda"]]
    assert out[3] == f"2 excluded items in {folder / 'exclusions.jsonl'}"
    assert cli(["exclude", str(folder), "--id", "recipe-9x", "--undo"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "Undone: 1 of 1 items."
    assert list(read_exclusions(exclusions_path(folder))) == ["recipe-1"]
    assert cli(["exclude", str(folder), "--undo-all"]) == 0
    assert capsys.readouterr().out == f"Undone: all 1 exclusions of {folder.name}.\n"
    assert cli(["exclude", str(folder)]) == 0
    assert capsys.readouterr().out == f"0 excluded items in {folder / 'exclusions.jsonl'}\n"


@pytest.mark.parametrize("args, message", [
    (["exclude", "/no/such/run", "--id", "x"],
     "error: /no/such/run: no such run folder — pass the folder of a generation run (work/runs/<run-id>)"),
    (["exclude", "{run}", "--undo"], "error: --undo needs the items to take back: --id ID (repeatable), or --undo-all"),
])
def test_the_command_line_refuses_what_cannot_work(run, capsys, args, message):
    from console.cli import main as cli

    _, folder = run
    assert cli([a.format(run=folder) for a in args]) == 1
    assert capsys.readouterr().err.strip() == message
