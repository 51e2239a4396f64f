"""A clone anywhere has all it needs: nothing in the project reaches outside its own checkout for data.

`.ci/run` runs the suite in a fresh clone inside an empty temporary folder; these tests say the same thing from
inside, so that a developer whose checkout has other folders beside it (reference material, other projects)
finds out here rather than from a user's failed first run.
"""
import subprocess
from pathlib import Path

from conftest import DEMO_DATA, ROOT

# Ways a path outside the checkout is spelled in code or scripts.
OUTSIDE = ("../shared", '"shared" / "data"', "parent / \"shared\"", "PROJECT_ROOT.parent", "ROOT.parent /")


def _tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / n for n in names.splitlines() if n.endswith((".py", ".sh", ".toml", ".ini", ".cfg", ".ipynb"))
            or n in (".ci/run",)]


def test_no_source_file_names_a_path_outside_the_checkout():
    offenders = []
    for path in _tracked_files():
        if path == Path(__file__):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{path.relative_to(ROOT)}: {word}" for word in OUTSIDE if word in text]
    assert offenders == []


def test_the_demo_recipes_ship_inside_the_repository():
    files = sorted(p.name for p in DEMO_DATA.glob("*.csv.gz"))
    assert files == [f"{n}.csv.gz" for n in ("ayam", "ikan", "sapi", "tahu", "telur", "tempe")]
    assert DEMO_DATA.resolve().is_relative_to(ROOT.resolve())
    assert (DEMO_DATA.parent / "README.md").read_text(encoding="utf-8").count("Cookpad") >= 1
    tracked = subprocess.run(["git", "ls-files", "data/indonesian-recipes"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert len(tracked) == 6, "the demo recipes must be committed, not only present in this checkout"


def test_the_suite_itself_refuses_to_read_beside_the_checkout(tmp_path):
    """conftest's audit hook turns any read of a file beside the checkout into an error naming the path."""
    import pytest

    outside = ROOT.parent / "definitely-not-part-of-the-project.txt"
    with pytest.raises(PermissionError, match="outside the project's checkout"):
        open(outside, encoding="utf-8")
