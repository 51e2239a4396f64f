"""Cypher built from the validated graph description (:mod:`console.graphschema`): every label, relationship type
and property name is quoted with backticks here and comes from the schema file, never from a request or an
uploaded file; every value is a parameter. The statements are built once per schema and type (cached)."""
from __future__ import annotations

from functools import lru_cache

from console.graphschema import FilterSpec, GraphSchema, Hop, ListSpec, TypeSpec


def quote(name: str) -> str:
    """```name``` with any backtick doubled (names are validated identifiers already; this is the second lock)."""
    return "`" + str(name).replace("`", "``") + "`"


def hops(start: str, path: tuple[Hop, ...], end: str, rel: str = "") -> str:
    """``(start)-[:`REL`]->(end:`Label`)``: the path from ``start`` with the last node named ``end`` and the last
    relationship named ``rel`` (when given)."""
    out = f"({start})"
    for i, hop in enumerate(path):
        last = i == len(path) - 1
        name = rel if last else ""
        left, right = ("<-", "-") if hop.direction == "in" else ("-", "->") if hop.direction == "out" else ("-", "-")
        out += f"{left}[{name}:{quote(hop.rel)}]{right}({end if last else ''}:{quote(hop.label)})"
    return out


def _id_of_label(schema: GraphSchema, label: str) -> str | None:
    spec = next((s for s in schema.types.values() if s.label == label), None)
    return spec.id if spec else None


def list_expression(schema: GraphSchema, var: str, spec: ListSpec) -> str:
    """A ``COLLECT { ... }`` of the values of the list, in its order, at most ``limit``."""
    value = f"e.{quote(spec.property)}"
    match = f"MATCH {hops(var, spec.path, 'e', 'rel')} WHERE {value} IS NOT NULL"
    limit = f" LIMIT {int(spec.limit)}" if spec.limit else ""
    if spec.order == "frequency":
        return (f"COLLECT {{ {match} WITH {value} AS v, count(*) AS c RETURN v ORDER BY c DESC, v{limit} }}")
    if spec.order == "path":
        return f"COLLECT {{ {match} RETURN {value} AS v{limit} }}"
    if spec.order == "value":
        return f"COLLECT {{ {match} WITH DISTINCT {value} AS v RETURN v ORDER BY v{limit} }}"
    if spec.order.startswith("rel."):
        key = f"coalesce(rel.{quote(spec.order[4:])}, 0)"
        return f"COLLECT {{ {match} RETURN {value} AS v ORDER BY {key}, v{limit} }}"
    prop, descending = spec.order.lstrip("-"), spec.order.startswith("-")
    tie = _id_of_label(schema, spec.end_label)
    order = f"e.{quote(prop)}{' DESC' if descending else ''}" + (f", e.{quote(tie)}" if tie else "")
    return f"COLLECT {{ {match} WITH e, {value} AS v ORDER BY {order} RETURN v{limit} }}"


def count_expression(var: str, path: tuple[Hop, ...]) -> str:
    return f"COUNT {{ {hops(var, path, '')} }}"


@lru_cache(maxsize=64)
def export_page(schema: GraphSchema, type_: str, *, where: str = "", extra: str = "") -> str:
    """One keyset page of a type's nodes (``$after``: the last id of the previous page, null first; ``$page``):
    their properties, lists and counts by name, in id order. ``where``: a further condition on ``n``; ``extra``:
    further RETURN columns (both written by the caller from validated names)."""
    spec = schema.type(type_)
    columns = [f"n.{quote(p)} AS {quote(p)}" for p in spec.properties()]
    columns += [f"{list_expression(schema, 'n', ls)} AS {quote(name)}" for name, ls in spec.lists.items()]
    columns += [f"{count_expression('n', path)} AS {quote(name)}" for name, path in spec.counts.items()]
    key = f"n.{quote(spec.id)}"
    condition = f"($after IS NULL OR {key} > $after)" + (f" AND {where}" if where else "")
    return (f"MATCH (n:{quote(spec.label)}) WHERE {condition} "
            f"WITH n ORDER BY {key} LIMIT $page RETURN {', '.join(columns + ([extra] if extra else []))}")


def count_nodes(spec: TypeSpec) -> str:
    return f"MATCH (n:{quote(spec.label)}) RETURN count(n) AS n"


# -- filters -------------------------------------------------------------------------------------------------------
def filter_param(name: str) -> str:
    """The Cypher parameter of a filter (``$f_category``): the prefix keeps it apart from the search's own."""
    return f"f_{name}"


def filter_matches(filters: tuple[FilterSpec, ...], var: str = "node") -> str:
    """``var`` passes the filters (a null parameter is no filter); ``true`` when there are none."""
    parts = [f"(${filter_param(f.name)} IS NULL OR EXISTS {{ MATCH {hops(var, f.path, 'f')} "
             f"WHERE toLower(toString(f.{quote(f.property)})) = ${filter_param(f.name)} }})" for f in filters]
    return " AND ".join(parts) or "true"


def filters_known(filters: tuple[FilterSpec, ...]) -> str:
    """RETURN columns ``<name>_known``: whether some node has the filter's value (true without that filter)."""
    parts = [f"(${filter_param(f.name)} IS NULL OR EXISTS {{ MATCH (f:{quote(f.path[-1].label)}) "
             f"WHERE toLower(toString(f.{quote(f.property)})) = ${filter_param(f.name)} }}) AS {quote(f.name + '_known')}"
             for f in filters]
    return ", ".join(parts) or "true AS no_filter_known"


# -- per-type reads ------------------------------------------------------------------------------------------------
def title_expression(schema: GraphSchema, var: str, types: tuple[str, ...]) -> str:
    """The node's title property, by its label when several types are searched at once."""
    specs = [schema.type(t) for t in types]
    if len(specs) == 1:
        return f"{var}.{quote(specs[0].title)}"
    cases = " ".join(f"WHEN {var}:{quote(s.label)} THEN {var}.{quote(s.title)}" for s in specs)
    return f"CASE {cases} END"


def id_expression(schema: GraphSchema, var: str, types: tuple[str, ...]) -> str:
    specs = [schema.type(t) for t in types]
    if len({s.id for s in specs}) == 1:
        return f"{var}.{quote(specs[0].id)}"
    cases = " ".join(f"WHEN {var}:{quote(s.label)} THEN {var}.{quote(s.id)}" for s in specs)
    return f"CASE {cases} END"
