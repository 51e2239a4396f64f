"""The project's shape, as the team guide asks for it."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_console_package_imports_neither_streamlit_nor_django():
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & {"streamlit", "django", "rest_framework"})
        for path in (ROOT / "console").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_backend_never_imports_streamlit():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "backend").rglob("*.py") if "streamlit" in _imports(p)]
    assert offenders == []


def test_pages_never_speak_cypher():
    """Pages are layout over console/: no Cypher and no neo4j driver in them."""
    offenders = []
    for path in [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        if "neo4j" in _imports(path) or any(word in text for word in ("MATCH (", "MERGE (", "UNWIND $")):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_top_level_has_the_folders_the_user_asked_for():
    for name in ("console", "backend", "pages", ".streamlit", "tests", "requirements.txt"):
        assert (ROOT / name).exists(), name
