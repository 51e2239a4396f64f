"""Read a user's graph and write a starting graph schema (``manage.py inspect_graph``): labels with node counts,
property keys with fill rate and value type (from a sample), relationship types between labels, and the existing
vector and full-text indexes. The file it writes is a commented TOML for the user to edit (console/graphschema.py
says what each key means; console/demo_schema.toml is the worked example)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from console.sinks.neo4j.cypher import quote
from console.sinks.neo4j.schema import OWN_LABELS

SAMPLE = 1000   # nodes per label whose properties are read
_TITLE_HINTS = ("title", "name", "nama", "judul", "label")


@dataclass
class LabelInfo:
    label: str
    count: int
    properties: dict[str, tuple[float, str]] = field(default_factory=dict)   # key -> (fill rate, value type)
    out: list[tuple[str, str, int]] = field(default_factory=list)             # (relationship, other label, count)


@dataclass
class GraphInfo:
    labels: list[LabelInfo]
    indexes: list[dict]


def inspect(store, sample: int = SAMPLE) -> GraphInfo:
    """What the graph holds (labels largest first; the console's own EmbeddingSpace and sync-lease nodes left out)."""
    counts = store.read("MATCH (n) UNWIND labels(n) AS label RETURN label, count(*) AS n ORDER BY n DESC, label")
    labels = []
    for row in counts:
        if row["label"] in OWN_LABELS:
            continue
        info = LabelInfo(row["label"], row["n"])
        node = f"(n:{quote(info.label)})"
        props = store.read(
            f"MATCH {node} WITH n LIMIT $sample UNWIND keys(n) AS key "
            "WITH key, count(*) AS filled, collect(valueType(n[key]))[0] AS kind "
            "RETURN key, filled, kind ORDER BY filled DESC, key", sample=sample)
        seen = min(info.count, sample) or 1
        info.properties = {p["key"]: (p["filled"] / seen, p["kind"]) for p in props}
        info.out = [(r["rel"], r["other"], r["n"]) for r in store.read(
            f"MATCH {node}-[r]->(m) WITH type(r) AS rel, labels(m)[0] AS other RETURN rel, other, count(*) AS n "
            "ORDER BY n DESC")]
        labels.append(info)
    indexes = store.read("SHOW INDEXES YIELD name, type, labelsOrTypes, properties, state "
                         "WHERE type IN ['VECTOR', 'FULLTEXT'] RETURN name, type, labelsOrTypes, properties, state")
    return GraphInfo(labels, indexes)


def _type_name(label: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", re.sub(r"(?<!^)(?=[A-Z])", "_", label).lower()).strip("_") or "item"


def _pick(info: LabelInfo, hints, kinds=("STRING",)) -> str | None:
    strings = [k for k, (_, kind) in info.properties.items() if kind.startswith(kinds)]
    return next((k for h in hints for k in strings if k.lower() == h), strings[0] if strings else None)


def schema_toml(graph: GraphInfo) -> str:
    """A starting graph schema for ``graph``, with comments saying what was found and what to check."""
    lines = ["# A starting graph schema written by inspect_graph: check each type, remove the ones you do not want",
             "# to embed, and point GRAPH_SCHEMA_FILE at this file. console/demo_schema.toml is a worked example.", ""]
    for index in graph.indexes:
        lines.append(f"# existing {index['type'].lower()} index {index['name']}: {index['labelsOrTypes']} "
                     f"{index['properties']} ({index['state']})")
    for info in graph.labels:
        lines += _type_block(info)
    return "\n".join(lines) + "\n"


def _type_block(info: LabelInfo) -> list[str]:
    name = _type_name(info.label)
    ident = "id" if "id" in info.properties else _pick(info, ("id", "uuid", "code", "slug")) or "id"
    title = _pick(info, _TITLE_HINTS) or ident
    lines = ["", f"# {info.count:,} nodes; properties (fill rate, type):"]
    lines += [f"#   {k}: {rate:.0%} {kind}" for k, (rate, kind) in info.properties.items()]
    lines += [f"[types.{name}]", f'label = "{info.label}"', f'id = "{ident}"', f'title = "{title}"',
              f'fulltext = ["{title}"]', f'text = ["{{{title}}}"]']
    if info.out:
        lines.append("# related: " + ", ".join(f"-[:{rel}]->(:{other}) x{n:,}" for rel, other, n in info.out))
        lines.append(f"# [types.{name}.lists]")
        for rel, other, _ in info.out[:3]:
            lines.append(f'# {_type_name(other)}s = {{ path = "-[:{rel}]->(:{other})", property = "name" }}')
    return lines


def read_graph(settings) -> tuple[GraphInfo, str]:
    """Inspect the graph at ``settings`` (a ``Neo4jSettings``) and write its starting schema: the console's
    Graph page and ``manage.py inspect_graph`` give the same file."""
    from console.sinks.neo4j.store import Neo4jStore

    with Neo4jStore(settings) as store:
        info = inspect(store)
    return info, schema_toml(info)
