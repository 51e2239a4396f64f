"""Errors shown to users: each one names the file (and line or byte offset) and says what to do.

`str(error)` is the exact message the CLI prints after ``error: ``; tests assert it verbatim.
"""
from __future__ import annotations

from pathlib import Path


class ConsoleError(Exception):
    """Base class of the errors the console reports to a user (no traceback needed)."""


class InputError(ConsoleError):
    """A problem with an input file: `file`, then `line` or byte `offset` when known, then what to do (`hint`).

    >>> str(InputError('record has no "id"', file="recipes.json", line=12, hint="add a unique id"))
    'recipes.json, line 12: record has no "id" — add a unique id'
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        offset: int | None = None,
        hint: str | None = None,
    ):
        self.message = message
        self.file = Path(file).name if file is not None else None
        self.path = Path(file) if file is not None else None
        self.line = line
        self.offset = offset
        self.hint = hint
        super().__init__(str(self))

    @property
    def where(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.line is not None:
            parts.append(f"line {self.line}")
        return ", ".join(parts)

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" — {self.hint}"
        return text


class ValidationFailed(ConsoleError):
    """Validation found bad records and the user chose ``--on-invalid stop`` (the default)."""

    def __init__(self, report, rejects_path: Path | None = None):
        self.report = report
        self.rejects_path = rejects_path
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.report.rejects)
        lines = [f"{n} invalid record{'s' if n != 1 else ''}; nothing was embedded:"]
        shown = self.report.rejects[:20]
        lines += [f"  {r.message}" for r in shown]
        if n > len(shown):
            lines.append(f"  ... and {n - len(shown)} more")
        if self.rejects_path is not None:
            lines.append(f"All of them are listed in {self.rejects_path}.")
        lines.append("Fix them, or run with --on-invalid skip to embed the valid records and list the rest.")
        return "\n".join(lines)


class ModelError(ConsoleError):
    """The model cannot be loaded or used with the options given (e.g. --dimensions larger than the model's)."""


class ModelLoadError(ModelError):
    """The model cannot be loaded at all (not a model folder, not cached and no hub): running again cannot help."""


class OptionError(ConsoleError):
    """An option value that cannot work (e.g. --batch-size 0)."""


# -- Neo4j (console/sinks/neo4j/): the backend maps each type to an HTTP status (backend/embedding_search/errors.py) -----------------
class Neo4jStoreError(ConsoleError):
    """A Neo4j problem; the message says what went wrong and what to do."""


class Neo4jConfigError(Neo4jStoreError):
    """Settings that cannot work: no password, a URI that is not Neo4j's, a database that does not exist."""


class Neo4jUnavailable(Neo4jStoreError):
    """Neo4j does not answer at the configured URI."""


class Neo4jAuthError(Neo4jStoreError):
    """Neo4j refused the user or password."""


class DimensionMismatch(Neo4jStoreError):
    """Vectors (or a query vector) whose dimensions differ from the type's vector index."""


class UnknownType(Neo4jStoreError):
    """A type the graph schema (console.graphschema) does not describe."""


class NoEmbeddings(Neo4jStoreError):
    """A type has no vector index (no embeddings imported) yet."""


class ItemNotFound(Neo4jStoreError):
    """No node with that id."""
