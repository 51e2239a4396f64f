"""Search filters, as the graph schema describes them (``[types.<type>.filters]``): items linked to a node whose
property equals the value, e.g. in the demo ``category=Ayam`` (recipes in the category Ayam) and
``ingredient=santan``.

Values match whole and ignoring case (``ayam`` = ``Ayam``; ``santan`` does not match "Santan kental"). A filter
applies to the types that define it: another type with that filter is a 400. A value no node has is a 400 naming
the parameter; the search statement itself says whether each value exists (``<name>_known`` columns of
:meth:`SearchFilters.known`), so checking costs no extra round trip. The Cypher is parameterised (``$f_<name>``:
lower-cased values) and its labels, relationship types and properties come from the validated schema
(:mod:`console.sinks.neo4j.cypher`).
"""
from __future__ import annotations

from dataclasses import dataclass

from console.graphschema import FilterSpec, GraphSchema
from console.sinks.neo4j.cypher import filter_matches, filter_param, filters_known
from embedding_search.errors import BadRequest

MAX_FILTER_CHARS = 100


def filter_names(schema: GraphSchema) -> list[str]:
    """Every filter's name (a query parameter), in the schema's order."""
    return list(dict.fromkeys(name for spec in schema.types.values() for name in spec.filters))


def filter_types(schema: GraphSchema, name: str) -> list[str]:
    return [type_ for type_, spec in schema.types.items() if name in spec.filters]


def filter_example(schema: GraphSchema, name: str) -> str:
    return next((s.filters[name].example for s in schema.types.values() if name in s.filters), "") or "..."


@dataclass(frozen=True)
class SearchFilters:
    """The filters set for one search: ``(name, value)`` pairs and, once a type is known, their descriptions."""
    values: tuple[tuple[str, str], ...] = ()
    names: tuple[str, ...] = ()            # every filter the schema has (for as_dict)
    specs: tuple[FilterSpec, ...] = ()     # those set, as the searched type describes them

    @classmethod
    def from_mapping(cls, params, schema: GraphSchema) -> "SearchFilters":
        """The filters from query parameters (a blank value is no filter); a too long value is a 400."""
        names = filter_names(schema)
        values = []
        for name in names:
            value = (params.get(name) or "").strip()
            if len(value) > MAX_FILTER_CHARS:
                raise BadRequest(f"The filter '{name}' is too long ({len(value):,} characters): a {name} name has "
                                 f"at most {MAX_FILTER_CHARS}")
            if value:
                values.append((name, value))
        return cls(tuple(values), tuple(names))

    @property
    def active(self) -> bool:
        return bool(self.values)

    def as_dict(self) -> dict:
        set_ = dict(self.values)
        return {name: set_.get(name) for name in self.names}

    def for_type(self, schema: GraphSchema, type_: str | None) -> "SearchFilters":
        """These filters as ``type_`` describes them (None: all types, each filter as the first type that has it),
        checked (:meth:`check_type`)."""
        self.check_type(schema, type_)
        specs = []
        for name, _ in self.values:
            owner = type_ or filter_types(schema, name)[0]
            specs.append(schema.types[owner].filters[name])
        return SearchFilters(self.values, self.names, tuple(specs))

    def matches(self, var: str = "node") -> str:
        """Cypher: ``var`` passes the filters."""
        return filter_matches(self.specs, var)

    def known(self) -> str:
        """Cypher RETURN columns: whether each filter's value exists."""
        return filters_known(self.specs)

    def params(self) -> dict:
        """The Cypher parameters of :meth:`matches` and :meth:`known`: lower-cased values."""
        return {filter_param(name): value.lower() for name, value in self.values}

    def check_type(self, schema: GraphSchema, type_: str | None) -> None:
        """A 400 when a filter is set for a type that does not define it (None: all types)."""
        for name, _ in self.values:
            owners = filter_types(schema, name)
            if type_ is not None and type_ not in owners:
                plural = " and ".join(schema.types[t].file for t in owners)
                raise BadRequest(f"The filter '{name}' applies to {plural} only: use type={owners[0]}, "
                                 f"not type={type_}")

    def check_known(self, row: dict, schema: GraphSchema) -> None:
        """A 400 naming the parameter and the value when the search said (``<name>_known``) that no node has it."""
        for name, value in self.values:
            if not row.get(f"{name}_known", True):
                raise BadRequest(f"Unknown {name} {value!r} in parameter '{name}': no {name} has that name "
                                 f"(names match whole, ignoring case; e.g. {name}={filter_example(schema, name)})")

    def describe(self) -> str:
        return ", ".join(f"{n}={v}" for n, v in self.values)


NO_FILTERS = SearchFilters()
