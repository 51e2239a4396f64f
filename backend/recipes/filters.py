"""Search filters: recipes in a category and/or with an ingredient, by name (``category=Ayam``,
``ingredient=santan``).

Names match whole and ignoring case (``ayam`` = ``Ayam``; ``santan`` does not match "Santan kental"). Filters apply
to recipes only: another type with a filter is a 400. A name no category/ingredient has is a 400 naming the
parameter; the search statement itself says whether each name exists (``*_known`` columns of :data:`KNOWN`), so
checking costs no extra round trip. The Cypher is parameterised (``$category``, ``$ingredient``: lower-cased
names or null) and its labels and relationship types are fixed here, from the schema's allow-list.
"""
from __future__ import annotations

from dataclasses import dataclass

from console.sinks.neo4j.schema import TYPE_TO_LABEL
from recipes.errors import BadRequest

FILTER_TYPE = "recipe"
# filter parameter -> (relationship from a recipe, label of the node it names)
FILTERS = {"category": ("IN_CATEGORY", TYPE_TO_LABEL["category"]),
           "ingredient": ("HAS_INGREDIENT", TYPE_TO_LABEL["ingredient"])}
MAX_FILTER_CHARS = 100

# Cypher: `node` passes the filters (a null parameter is no filter).
MATCHES = " AND ".join(
    f"(${name} IS NULL OR EXISTS {{ (node)-[:{rel}]->(f:{label}) WHERE toLower(f.name) = ${name} }})"
    for name, (rel, label) in FILTERS.items())
# Cypher: whether each filter's name exists (true without that filter), as RETURN columns `<name>_known`.
KNOWN = ", ".join(
    f"(${name} IS NULL OR EXISTS {{ MATCH (f:{label}) WHERE toLower(f.name) = ${name} }}) AS {name}_known"
    for name, (_, label) in FILTERS.items())


@dataclass(frozen=True)
class SearchFilters:
    category: str | None = None
    ingredient: str | None = None

    @classmethod
    def from_mapping(cls, params) -> "SearchFilters":
        """The filters from query parameters (a blank value is no filter); a too long value is a 400."""
        values = {}
        for name in FILTERS:
            value = (params.get(name) or "").strip()
            if len(value) > MAX_FILTER_CHARS:
                raise BadRequest(f"The filter '{name}' is too long ({len(value):,} characters): a {name} name has "
                                 f"at most {MAX_FILTER_CHARS}")
            values[name] = value or None
        return cls(**values)

    @property
    def active(self) -> bool:
        return any(self.as_dict().values())

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in FILTERS}

    def params(self) -> dict:
        """The Cypher parameters of :data:`MATCHES` and :data:`KNOWN`: lower-cased names, null when unset."""
        return {name: value.lower() if value else None for name, value in self.as_dict().items()}

    def check_type(self, type_: str | None) -> None:
        """A 400 when a filter is set for a type other than recipes (None: all types, then only recipes match)."""
        if self.active and type_ not in (None, FILTER_TYPE):
            names = " and ".join(f"'{n}'" for n, v in self.as_dict().items() if v)
            raise BadRequest(f"The filter {names} applies to recipes only: use type=recipe, not type={type_}")

    def check_known(self, row: dict) -> None:
        """A 400 naming the parameter and the value when the search said (``<name>_known``) that no node has it."""
        for name, value in self.as_dict().items():
            if value and not row.get(f"{name}_known", True):
                raise BadRequest(f"Unknown {name} {value!r} in parameter '{name}': no {name} has that name "
                                 f"(names match whole, ignoring case; e.g. {name}={EXAMPLES[name]})")

    def describe(self) -> str:
        return ", ".join(f"{n}={v}" for n, v in self.as_dict().items() if v)


EXAMPLES = {"category": "Ayam", "ingredient": "santan"}
NO_FILTERS = SearchFilters()
