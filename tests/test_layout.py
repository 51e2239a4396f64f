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


# -- the guide's limits: no import cycle inside console/, functions of at most ~80 lines --------------------------
MAX_FUNCTION_LINES = 80


def _console_imports(path: Path) -> set[str]:
    """The console modules that `path` imports, wherever in the file (a function-level import is still a cycle)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("console."))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("console."):
                names.add(node.module)
            elif node.module == "console":
                names.update(f"console.{a.name}" for a in node.names)
    modules = set(console_modules())
    # `from console.neo4j import writer` names the module console.neo4j.writer; a package's own name stands for its
    # __init__ (console.neo4j)
    found = set()
    for name in names:
        parts = name.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        if parts:
            found.add(".".join(parts))
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("console"):
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
    return found


def module_name(path: Path) -> str:
    """console/neo4j/writer.py -> console.neo4j.writer; console/neo4j/__init__.py -> console.neo4j."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def console_modules() -> dict[str, Path]:
    """Every module of the console package, subpackages included, by dotted name."""
    return {module_name(p): p for p in sorted((ROOT / "console").rglob("*.py"))}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle of `graph` once, as the list of its modules (depth-first search)."""
    cycles, done = [], set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycle = path[path.index(nxt):]
                turned = min(cycle[i:] + cycle[:i] for i in range(len(cycle)))
                if turned not in cycles:
                    cycles.append(turned)
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    for start in sorted(graph):
        visit(start, [start])
    return cycles


def test_import_cycles_are_found():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_console():
    graph = {name: _console_imports(p) - {name} for name, p in console_modules().items()}
    assert graph["console.engine"] >= {"console.progress"}  # the scan sees imports (also inside functions)
    assert graph["console.neo4j.writer"] >= {"console.neo4j.store", "console.neo4j.schema"}  # and subpackages
    assert import_cycles(graph) == []


def long_functions(folder: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """'folder/file.py:line name() has N lines' for each function of `folder` longer than `limit` lines."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{folder.name}/{path.relative_to(folder).as_posix()}:{node.lineno} {node.name}() "
                                 f"has {lines} lines")
    return found


def test_no_function_in_console_pages_or_backend_is_over_80_lines():
    """console/ (subpackages included), pages/ and backend/ keep to the guide."""
    assert long_functions(ROOT / "console") + long_functions(ROOT / "pages") + long_functions(ROOT / "backend") == []


def test_long_functions_are_reported_with_file_line_and_length(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    (tmp_path / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    found = long_functions(tmp_path)
    assert len(found) == 1 and found[0] == f"{tmp_path.name}/m.py:5 long() has 82 lines"
