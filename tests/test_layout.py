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
    # `from console.sinks.neo4j import writer` names the module console.sinks.neo4j.writer; a package's own name stands for its
    # __init__ (console.sinks.neo4j)
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
    """console/sinks/neo4j/writer.py -> console.sinks.neo4j.writer; console/sinks/neo4j/__init__.py -> console.sinks.neo4j."""
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
    assert graph["console.generation.engine"] >= {"console.progress"}  # the scan sees imports (also inside functions)
    assert graph["console.sinks.neo4j.writer"] >= {"console.sinks.neo4j.store", "console.sinks.neo4j.schema"}  # and subpackages
    assert import_cycles(graph) == []


# -- the rooms of console/ and which may use which (issue 23): data flows files -> generation -> sinks --------------
# A part is a subpackage (console.files, ...) or a top-level module (console.errors, ...); "console" is the package's
# own __init__ (__version__). A part may import only the parts named here; the graph has no cycle by construction.
MAY_IMPORT = {
    "console": set(),
    "errors": set(),
    "progress": set(),
    "graphschema": {"errors"},
    "files": {"console", "errors", "graphschema"},
    "options": {"errors", "files"},
    "generation": {"console", "errors", "progress", "options", "files"},
    "explore": {"errors", "files"},
    "search": {"errors", "files", "explore"},
    "sinks": {"errors", "progress", "graphschema", "files", "explore"},
    "app": {"errors", "options", "graphschema", "files"},
    "cli": {"console", "errors", "progress", "graphschema", "options", "files", "generation", "explore", "search", "sinks", "app"},
}


def part_of(module: str) -> str:
    """console.files.records -> files; console.errors -> errors; console -> console."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "console"


def forbidden_imports(modules: dict[str, Path], may_import: dict[str, set[str]]) -> list[str]:
    """'a.b imports c.d (part x may not use part y)' for each import across parts that `may_import` does not allow."""
    found = []
    for name, path in sorted(modules.items()):
        for dep in sorted(_console_imports(path) - {name}):
            mine, theirs = part_of(name), part_of(dep)
            if mine != theirs and theirs not in may_import.get(mine, set()):
                found.append(f"{name} imports {dep} (part {mine} may not use part {theirs})")
    return found


def test_every_part_of_console_is_in_the_table():
    assert {part_of(name) for name in console_modules()} == set(MAY_IMPORT)


def test_each_part_imports_only_the_parts_it_may():
    assert forbidden_imports(console_modules(), MAY_IMPORT) == []


def test_a_forbidden_import_is_reported():
    """Take a permission away and the check names the import that needed it."""
    modules = console_modules()
    table = dict(MAY_IMPORT, sinks=set(MAY_IMPORT["sinks"]) - {"explore"})
    assert any(line.startswith("console.sinks.push imports console.explore.curation") for line in
               forbidden_imports(modules, table))


def test_each_subpackage_says_what_it_is_for():
    for init in sorted((ROOT / "console").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert len(doc.split()) >= 20, f"{init.relative_to(ROOT)} needs a paragraph saying what the subpackage holds"


def test_the_generator_pipeline_stays_readable_at_once():
    lines = (ROOT / "console" / "generation" / "generate.py").read_text(encoding="utf-8").count("\n")
    assert lines < 500, f"console/generation/generate.py has {lines} lines: move a helper into its own module"


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
