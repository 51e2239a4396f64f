"""The user's graph, described in one TOML file: which node types exist, their labels and id properties, how the
text to embed is built from a node's properties and its related nodes, the fields pages show, the vector property
and index, the full-text properties, the filters, the "best" sort and the export file names.

Everything that touches the graph reads this description (export, file names, upload checks, import, push, the
search modes, filters, similar items, the item page, evaluation): labels and property names reach Cypher only from
a validated :class:`GraphSchema` (:mod:`console.sinks.neo4j.cypher` quotes them), never from a request or an
uploaded file. The demo's description ships as ``console/demo_schema.toml`` and is the default; ``GRAPH_SCHEMA_FILE``
(or an explicit path) names the user's own. ``manage.py inspect_graph`` writes a starting file from a live graph.

A path names related nodes in Cypher's own arrow syntax, one or more hops from the node:
``-[:WROTE]->(:Book)``, ``<-[:WROTE]-(:Author)-[:LIVES_IN]->(:City)`` (``<-`` and ``->`` give the direction).
A template is a string or a list of pieces with ``{name}`` placeholders (a node property, a list, a count, or an
earlier record field); a piece whose placeholder is empty is left out; a list is joined with ", "; ``{n:one|many}``
writes a count with its noun (``3 recipes``). The ``text`` template's pieces are sentences (each ends with a full
stop); a field's pieces are joined as they are.

>>> schema = load_schema()
>>> schema.types["recipe"].label, schema.types["recipe"].file
('Recipe', 'recipes')
"""
from __future__ import annotations

import os
import re
import string
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from console.errors import ConsoleError

DEMO_SCHEMA = Path(__file__).with_name("demo_schema.toml")
SCHEMA_ENV = "GRAPH_SCHEMA_FILE"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# query parameters of the search API that a filter may not take as its name
RESERVED_PARAMS = frozenset({"q", "type", "mode", "k", "fusion", "format", "explain", "id", "page", "limit",
                             "csrfmiddlewaretoken"})
ORDERS = "'value' (alphabetical, the default), 'frequency', 'path', '<property>' or '-<property>' of the end node, " \
         "'rel.<property>' of the last relationship"
_HOP = re.compile(r"(?P<left><)?-\[:(?P<rel>[^\]]*)\]-(?P<right>>)?\(:(?P<label>[^)]*)\)")
_TYPE_KEYS = {"label", "id", "title", "show", "best", "file", "fulltext", "vector_property", "vector_index",
              "text", "record", "lists", "counts", "filters"}
_LIST_KEYS = {"path", "property", "order", "limit"}
_FILTER_KEYS = {"path", "property", "example"}


class SchemaError(ConsoleError):
    """The graph description is invalid: the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class Hop:
    """One step of a path: ``-[:REL]->(:Label)`` (direction "out"), ``<-[:REL]-(:Label)`` ("in") or
    ``-[:REL]-(:Label)`` ("both")."""
    rel: str
    direction: str
    label: str


@dataclass(frozen=True)
class ListSpec:
    """A list of related nodes' values: the ``property`` of the nodes at the end of ``path``, in ``order``."""
    name: str
    path: tuple[Hop, ...]
    property: str
    order: str = "value"
    limit: int | None = None

    @property
    def end_label(self) -> str:
        return self.path[-1].label


@dataclass(frozen=True)
class FilterSpec:
    """A search filter: items linked by ``path`` to a node whose ``property`` equals the value (ignoring case)."""
    name: str
    path: tuple[Hop, ...]
    property: str
    example: str = ""


@dataclass(frozen=True)
class TypeSpec:
    name: str
    label: str
    id: str = "id"
    title: str = "title"
    show: tuple[str, ...] = ()
    best: str | None = None
    file: str = ""
    fulltext: tuple[str, ...] = ()
    vector_property: str = "embedding"
    vector_index: str = ""
    text: tuple[str, ...] = ()
    record: dict[str, tuple[str, ...]] = field(default_factory=dict)
    lists: dict[str, ListSpec] = field(default_factory=dict)
    counts: dict[str, tuple[Hop, ...]] = field(default_factory=dict)
    filters: dict[str, FilterSpec] = field(default_factory=dict)

    def properties(self) -> list[str]:
        """The node's own properties the templates and pages read (id and title first)."""
        names = dict.fromkeys([self.id, self.title, *self.show])
        derived = set(self.lists) | set(self.counts)
        for field_name, template in self.record.items():  # a field refers to lists, counts and earlier fields
            names.update(dict.fromkeys(n for n in placeholders(template) if n not in derived))
            derived.add(field_name)
        names.update(dict.fromkeys(n for n in placeholders(self.text) if n not in derived))
        return list(names)


@dataclass(frozen=True)
class GraphSchema:
    types: dict[str, TypeSpec]
    fulltext_index: str = "item_fulltext"
    source: str = ""

    def __hash__(self) -> int:  # cached statements are keyed by schema (equal schemas have the same source)
        return hash(self.source)

    def type(self, name: str) -> TypeSpec:
        from console.errors import UnknownType

        try:
            return self.types[name]
        except (KeyError, TypeError):
            raise UnknownType(f"Unknown type {name!r}: expected one of {', '.join(self.types)} "
                              f"(the graph schema {self.source or 'in use'})") from None

    def label_to_type(self) -> dict[str, str]:
        return {spec.label: name for name, spec in self.types.items()}

    def labels(self) -> list[str]:
        return [spec.label for spec in self.types.values()]

    def fulltext_properties(self) -> list[str]:
        return list(dict.fromkeys(p for spec in self.types.values() for p in spec.fulltext))

    def file_names(self) -> dict[str, str]:
        return {name: spec.file for name, spec in self.types.items()}


# -- templates -----------------------------------------------------------------------------------------------------
class _Formatter(string.Formatter):
    def format_field(self, value: Any, spec: str) -> str:
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        if "|" in spec and isinstance(value, int):
            one, many = spec.split("|", 1)
            return f"{value} {one if value == 1 else many}"
        return super().format_field("" if value is None else value, spec)


_FORMATTER = _Formatter()


def placeholders(pieces) -> list[str]:
    """The names a template's pieces refer to, in order."""
    return [name for piece in pieces for _, name, _, _ in string.Formatter().parse(piece) if name]


def _empty(value) -> bool:
    return value is None or value == "" or value == [] or value == ()


def render(pieces: tuple[str, ...], values: dict) -> Any:
    """A field's value: a lone ``{list}`` placeholder keeps the list; otherwise the pieces whose placeholders all
    have a value, joined."""
    if len(pieces) == 1 and re.fullmatch(r"\{(\w+)\}", pieces[0]):
        value = values.get(pieces[0][1:-1])
        return list(value) if isinstance(value, (list, tuple)) else ("" if value is None else value)
    return "".join(_FORMATTER.format(p, **values) for p in pieces
                   if not any(_empty(values.get(n)) for n in placeholders([p])))


def sentence(text: str | None) -> str:
    text = " ".join((text or "").split()).strip()
    if text and text[-1] not in ".!?…":
        text += "."
    return text


def render_text(pieces: tuple[str, ...], values: dict) -> str:
    """The text to embed: each piece with all its placeholders filled is a sentence."""
    out = [sentence(_FORMATTER.format(p, **values)) for p in pieces
           if not any(_empty(values.get(n)) for n in placeholders([p]))]
    return " ".join(p for p in out if p)


def record_of(spec: TypeSpec, values: dict) -> dict:
    """The export record of one node: id, type, title, the record fields in order, then text. ``values`` holds the
    node's properties, lists and counts by name."""
    values = dict(values)
    rec = {"id": values.get(spec.id), "type": spec.name, "title": values.get(spec.title)}
    for name, pieces in spec.record.items():
        rec[name] = values[name] = render(pieces, values)
    rec["text"] = render_text(spec.text, values)
    return rec


# -- loading and validation ----------------------------------------------------------------------------------------
def schema_path(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get(SCHEMA_ENV) or DEMO_SCHEMA).expanduser()


def load_schema(path: str | Path | None = None) -> GraphSchema:
    """The validated schema of ``path``, else of ``$GRAPH_SCHEMA_FILE``, else the demo's; :class:`SchemaError`
    names the file and the key when it is invalid. Read once per file and modification time."""
    resolved = schema_path(path).resolve()
    try:
        mtime = resolved.stat().st_mtime_ns
    except OSError:
        raise SchemaError(f"{resolved}: the graph schema file does not exist — write one (python backend/manage.py "
                          f"inspect_graph --output schema.toml makes a start) or unset {SCHEMA_ENV}") from None
    return _load(str(resolved), mtime)


@lru_cache(maxsize=16)
def _load(path: str, mtime: int) -> GraphSchema:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SchemaError(f"{path}: not valid TOML ({exc}) — fix the file's syntax") from None
    return schema_from_dict(data, source=path)


def schema_from_dict(data: dict, source: str = "<schema>") -> GraphSchema:
    """A :class:`GraphSchema` from the file's parsed content (also the backend's ``/api/graph-schema/`` answer)."""
    _known_keys(source, "", data, {"types", "fulltext_index"})
    types = data.get("types")
    if not isinstance(types, dict) or not types:
        raise SchemaError(f"{source}: no [types.<name>] table — describe at least one node type")
    fulltext_index = _identifier(source, "fulltext_index", data.get("fulltext_index", "item_fulltext"))
    specs = {name: _type_spec(source, name, body) for name, body in types.items()}
    _check_unique(source, "label", {name: spec.label for name, spec in specs.items()})
    _check_unique(source, "file", {name: spec.file for name, spec in specs.items()})
    _check_unique(source, "vector_index", {name: spec.vector_index for name, spec in specs.items()})
    return GraphSchema(types=specs, fulltext_index=fulltext_index, source=source)


def _type_spec(source: str, name: str, body) -> TypeSpec:
    where = f"types.{name}"
    if not TYPE_NAME.match(str(name)):
        raise SchemaError(f"{source}: [{where}]: a type name is a lowercase word (letters, digits, _), "
                          f"such as 'recipe'")
    if not isinstance(body, dict):
        raise SchemaError(f"{source}: {where} must be a table ([{where}])")
    _known_keys(source, where, body, _TYPE_KEYS)
    if "label" not in body:
        raise SchemaError(f"{source}: [{where}] has no 'label' — name the Neo4j label of its nodes, e.g. "
                          f"label = \"{name.title()}\"")
    props = lambda key, default=(): tuple(_identifier(source, f"{where}.{key}", p)  # noqa: E731
                                          for p in _strings(source, f"{where}.{key}", body.get(key, default)))
    spec = TypeSpec(
        name=name, label=_identifier(source, f"{where}.label", body["label"]),
        id=_identifier(source, f"{where}.id", body.get("id", "id")),
        title=_identifier(source, f"{where}.title", body.get("title", "title")),
        show=props("show"), fulltext=props("fulltext", (body.get("title", "title"),)),
        best=_identifier(source, f"{where}.best", body["best"]) if body.get("best") else None,
        file=_file_name(source, f"{where}.file", body.get("file", name)),
        vector_property=_identifier(source, f"{where}.vector_property", body.get("vector_property", "embedding")),
        vector_index=_identifier(source, f"{where}.vector_index", body.get("vector_index", f"{name}_embedding")),
        text=_template(source, f"{where}.text", body.get("text", "{" + body.get("title", "title") + "}")),
        record={k: _template(source, f"{where}.record.{k}", v) for k, v in _table(source, where, body, "record")},
        lists={k: _list_spec(source, f"{where}.lists.{k}", k, v) for k, v in _table(source, where, body, "lists")},
        counts={k: _path(source, f"{where}.counts.{k}", v) for k, v in _table(source, where, body, "counts")},
        filters={k: _filter_spec(source, f"{where}.filters.{k}", k, v)
                 for k, v in _table(source, where, body, "filters")},
    )
    _check_names(source, where, spec)
    return spec


def _check_names(source: str, where: str, spec: TypeSpec) -> None:
    seen: dict[str, str] = {}
    for kind, names in (("list", spec.lists), ("count", spec.counts)):
        for name in names:
            _identifier(source, f"{where}.{kind}s.{name}", name)
            if name in seen:
                raise SchemaError(f"{source}: [{where}]: '{name}' is both a {seen[name]} and a {kind} — "
                                  "give each its own name")
            seen[name] = kind
    for name in spec.record:  # a field may take a list's or a count's name: it replaces that value in the record
        _identifier(source, f"{where}.record.{name}", name)
        if name in ("id", "type", "title", "text", "embedding"):
            raise SchemaError(f"{source}: {where}.record.{name}: '{name}' is always in the record — remove it")
    for name in spec.filters:
        if not TYPE_NAME.match(name) or name in RESERVED_PARAMS:
            raise SchemaError(f"{source}: {where}.filters.{name}: a filter is a query parameter: a lowercase word, "
                              f"not one of {', '.join(sorted(RESERVED_PARAMS))}")
    for name in spec.properties():
        _identifier(source, f"{where} (template placeholder)", name)


def _table(source: str, where: str, body: dict, key: str):
    value = body.get(key, {})
    if not isinstance(value, dict):
        raise SchemaError(f"{source}: {where}.{key} must be a table ([{where}.{key}])")
    return value.items()


def _list_spec(source: str, where: str, name: str, body) -> ListSpec:
    if not isinstance(body, dict):
        raise SchemaError(f"{source}: {where} must be a table: {{ path = \"-[:REL]->(:Label)\", property = \"name\" }}")
    _known_keys(source, where, body, _LIST_KEYS)
    order = str(body.get("order", "value"))
    prop = order.removeprefix("rel.").removeprefix("-")
    if order not in ("value", "frequency", "path") and not IDENTIFIER.match(prop):
        raise SchemaError(f"{source}: {where}.order: {order!r} is not an order: use {ORDERS}")
    limit = body.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise SchemaError(f"{source}: {where}.limit: {limit!r} is not a positive whole number")
    return ListSpec(name=name, path=_path(source, f"{where}.path", body.get("path")),
                    property=_identifier(source, f"{where}.property", body.get("property")), order=order, limit=limit)


def _filter_spec(source: str, where: str, name: str, body) -> FilterSpec:
    if not isinstance(body, dict):
        raise SchemaError(f"{source}: {where} must be a table: {{ path = \"-[:REL]->(:Label)\", property = \"name\" }}")
    _known_keys(source, where, body, _FILTER_KEYS)
    return FilterSpec(name=name, path=_path(source, f"{where}.path", body.get("path")),
                      property=_identifier(source, f"{where}.property", body.get("property")),
                      example=str(body.get("example", "")))


def _path(source: str, where: str, text) -> tuple[Hop, ...]:
    """``-[:REL]->(:Label)`` hops, each relationship type and label a plain identifier."""
    if not isinstance(text, str) or not text.strip():
        raise SchemaError(f"{source}: {where}: a path such as \"-[:WROTE]->(:Book)\" is needed")
    hops, pos, compact = [], 0, text.replace(" ", "")
    for match in _HOP.finditer(compact):
        if match.start() != pos or (match["left"] and match["right"]):
            break
        direction = "in" if match["left"] else "out" if match["right"] else "both"
        hops.append(Hop(_identifier(source, where, match["rel"]), direction, _identifier(source, where, match["label"])))
        pos = match.end()
    if not hops or pos != len(compact):
        raise SchemaError(f"{source}: {where}: {text!r} is not a path: write hops as -[:REL]->(:Label) or "
                          "<-[:REL]-(:Label), one after the other")
    return tuple(hops)


def _template(source: str, where: str, value) -> tuple[str, ...]:
    pieces = _strings(source, where, value)
    for piece in pieces:
        try:
            list(string.Formatter().parse(piece))
        except ValueError as exc:
            raise SchemaError(f"{source}: {where}: {piece!r} is not a template ({exc}) — write {{name}} "
                              "placeholders, {{{{ for a brace") from None
    return pieces


def _strings(source: str, where: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise SchemaError(f"{source}: {where}: expected a string or a list of strings, not {value!r}")


def _identifier(source: str, where: str, value) -> str:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise SchemaError(f"{source}: {where}: {value!r} is not a plain identifier (letters, digits and _, not "
                          "starting with a digit) — labels, relationship types and properties must be")
    return value


def _file_name(source: str, where: str, value) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", value):
        raise SchemaError(f"{source}: {where}: {value!r} is not a file name: lowercase letters, digits, _ and -")
    return value


def _known_keys(source: str, where: str, body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        at = f"[{where}]" if where else "the top level"
        raise SchemaError(f"{source}: {at}: unknown key {unknown[0]!r} — allowed: {', '.join(sorted(allowed))}")


def _check_unique(source: str, key: str, values: dict[str, str]) -> None:
    seen: dict[str, str] = {}
    for type_, value in values.items():
        if value in seen:
            raise SchemaError(f"{source}: types.{seen[value]}.{key} and types.{type_}.{key} are both {value!r} — "
                              f"each type needs its own {key}")
        seen[value] = type_


# -- the console and the backend must agree ------------------------------------------------------------------------
def to_dict(schema: GraphSchema) -> dict:
    """The schema as the file would say it (``schema_from_dict(to_dict(s))`` equals ``s``): the backend's
    ``/api/graph-schema/`` answer, which a console compares with its own copy before a push."""
    def path(hops) -> str:
        arrows = {"out": ("-", "->"), "in": ("<-", "-"), "both": ("-", "-")}
        return "".join(f"{arrows[h.direction][0]}[:{h.rel}]{arrows[h.direction][1]}(:{h.label})" for h in hops)

    types = {}
    for name, s in schema.types.items():
        types[name] = {
            "label": s.label, "id": s.id, "title": s.title, "show": list(s.show), "file": s.file,
            "fulltext": list(s.fulltext), "vector_property": s.vector_property, "vector_index": s.vector_index,
            "text": list(s.text), "record": {k: list(v) for k, v in s.record.items()},
            "lists": {k: {"path": path(v.path), "property": v.property, "order": v.order,
                          **({"limit": v.limit} if v.limit else {})} for k, v in s.lists.items()},
            "counts": {k: path(v) for k, v in s.counts.items()},
            "filters": {k: {"path": path(v.path), "property": v.property, "example": v.example}
                        for k, v in s.filters.items()},
            **({"best": s.best} if s.best else {}),
        }
    return {"fulltext_index": schema.fulltext_index, "types": types}


WRITE_FIELDS = ("label", "id", "vector_property", "vector_index")


def compare(mine: GraphSchema, theirs: GraphSchema, types, *, mine_name: str, theirs_name: str) -> list[str]:
    """What the two schemas disagree on for the ``types`` a push writes: a missing type, or another label, id,
    vector property or index. Empty when they agree."""
    problems = []
    for type_ in types:
        a, b = mine.types.get(type_), theirs.types.get(type_)
        if a is None or b is None:
            lacking = mine_name if a is None else theirs_name
            problems.append(f"type {type_!r} is not in {lacking}")
            continue
        for key in WRITE_FIELDS:
            if getattr(a, key) != getattr(b, key):
                problems.append(f"types.{type_}.{key} is {getattr(a, key)!r} in {mine_name} but "
                                f"{getattr(b, key)!r} in {theirs_name}")
    return problems
