"""docs/DESIGN.md stays true to the code: its module list is console/'s files and the commands it names are the
CLI's subcommands (as Datasette checks its documentation against the code)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from console.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DESIGN = (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")


def design_modules(text: str) -> list[str]:
    """The `name.py` entries of the module list under `console/` in the first code block. A package is a `name/`
    line whose modules are indented two more (`  files/` then `    records.py`, listed as `files/records.py`), at any
    depth; longer indents are the descriptions' continuation lines."""
    block = text.split("```", 2)[1]
    lines = block.split("console/", 1)[1].splitlines()[1:]
    listed, packages = [], []  # packages: (depth, name) of the open package folders
    for line in lines:
        if not line.startswith("  "):
            break
        entry = re.match(r"( +)(\w+)(/|\.py)\s", line)
        if not entry or len(entry.group(1)) % 2 or len(entry.group(1)) > 16:
            continue
        depth = len(entry.group(1)) // 2
        packages = [(d, name) for d, name in packages if d < depth]
        if entry.group(3) == "/":
            packages.append((depth, entry.group(2)))
        elif len(packages) == depth - 1:
            listed.append("/".join([name for _, name in packages] + [entry.group(2) + ".py"]))
    return listed


def console_modules() -> list[str]:
    """console/'s modules, a subpackage's as `package/module.py`."""
    return sorted(p.relative_to(ROOT / "console").as_posix() for p in (ROOT / "console").rglob("*.py"))


def design_commands(text: str) -> set[str]:
    return set(re.findall(r"embedding-console ([a-z][\w-]*)", text))


def cli_commands() -> set[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_the_module_list_names_every_console_module_and_no_other():
    assert sorted(design_modules(DESIGN)) == console_modules()
    assert "sinks/neo4j/writer.py" in console_modules()  # subpackages are compared too


def test_the_commands_named_are_the_clis_subcommands():
    assert cli_commands() == {"generate", "validate", "exclude", "serve", "sync"}
    assert design_commands(DESIGN) == cli_commands()


def test_the_checks_see_a_missing_module_and_an_invented_command():
    text = "```\nconsole/   x\n  a.py   one\n  b.py   two\nother\n```\n`embedding-console push` and embedding-console generate"
    assert design_modules(text) == ["a.py", "b.py"]
    package = ("```\nconsole/   x\n  a.py   one\n  db/   pkg\n    __init__.py   doc\n    w.py   two\n"
               "                 more\n  c.py   three\n```")
    assert design_modules(package) == ["a.py", "db/__init__.py", "db/w.py", "c.py"]
    nested = "```\nconsole/   x\n  a/   pkg\n    b/   inner\n      c.py   deep\n    d.py   back up\n  e.py   top\n```"
    assert design_modules(nested) == ["a/b/c.py", "a/d.py", "e.py"]
    assert design_commands(text) == {"push", "generate"}


def environment_settings() -> set[str]:
    """The variables start.sh, scripts/neo4j.sh (`${NAME:-default}`) and backend/gunicorn.conf.py
    (`os.environ.get("NAME")`) read."""
    shell = "".join((ROOT / name).read_text(encoding="utf-8") for name in ("start.sh", "scripts/neo4j.sh"))
    gunicorn = (ROOT / "backend" / "gunicorn.conf.py").read_text(encoding="utf-8")
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-", shell)) | set(re.findall(r'environ\.get\("([A-Z_]+)"', gunicorn))


def test_the_readme_names_every_setting_of_the_start_scripts_and_gunicorn():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    settings = environment_settings()
    assert {"NEO4J_BOLT_PORT", "BACKEND_PORT", "CONSOLE_PORT", "BACKEND_CONTROL_SOCKET"} <= settings
    assert sorted(name for name in settings if f"`{name}`" not in readme) == []
