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
    """The `name.py` entries of the module list under `console/` in the first code block; a package is a
    `  name/` line followed by its modules indented two more (`    module.py`), listed as `name/module.py`."""
    block = text.split("```", 2)[1]
    lines = block.split("console/", 1)[1].splitlines()[1:]
    listed, package = [], None
    for line in lines:
        if not line.startswith("  "):
            break
        module = re.match(r"  (\w+\.py)\s", line)
        package_line = re.match(r"  (\w+)/\s", line)
        member = re.match(r"    (\w+\.py)\s", line)
        if module:
            listed.append(module.group(1))
            package = None
        elif package_line:
            package = package_line.group(1)
        elif member and package:
            listed.append(f"{package}/{member.group(1)}")
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
    assert "neo4j/writer.py" in console_modules()  # subpackages are compared too


def test_the_commands_named_are_the_clis_subcommands():
    assert cli_commands() == {"generate", "validate", "exclude", "serve"}
    assert design_commands(DESIGN) == cli_commands()


def test_the_checks_see_a_missing_module_and_an_invented_command():
    text = "```\nconsole/   x\n  a.py   one\n  b.py   two\nother\n```\n`embedding-console push` and embedding-console generate"
    assert design_modules(text) == ["a.py", "b.py"]
    package = ("```\nconsole/   x\n  a.py   one\n  db/   pkg\n    __init__.py   doc\n    w.py   two\n"
               "                 more\n  c.py   three\n```")
    assert design_modules(package) == ["a.py", "db/__init__.py", "db/w.py", "c.py"]
    assert design_commands(text) == {"push", "generate"}
