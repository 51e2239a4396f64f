"""The Explore page's similarity preview (not a page itself): the query box and the item picker (a list of the ids,
or above ``ITEM_LIST_LIMIT`` items a typed id), and the nearest items of either, kept per (file, item or query, k)."""
from __future__ import annotations

import streamlit as st

from console.errors import ConsoleError
from console.explore.projection import nearest
from pages import common

ITEM_LIST_LIMIT = 20_000  # above this many items, an item is typed by its id, not chosen from a list of them all
QUERY, ITEM = "explore_query", "explore_item"


@st.cache_resource(show_spinner=False, max_entries=4)
def index(_data, path: str, mtime_ns: int) -> tuple[dict, dict]:
    """(title by id, row by id) of the file: made once, not at each rerun (a million items)."""
    return dict(zip(_data.ids, _data.titles)), {i: r for r, i in enumerate(_data.ids)}


@st.cache_resource(show_spinner="Finding the nearest items…", max_entries=32)
def _neighbours(_data, path: str, mtime_ns: int, model, dimensions, row: int | None, query: str, k: int) -> list:
    """The ``k`` nearest items of a row or a query (kept: a rerun that changes something else reads no vectors)."""
    if row is not None:
        return nearest(_data.vectors, _data.vectors[row], k, exclude=row)
    vector = common.embedder(model, dimensions).encode_query([query])[0]
    return nearest(_data.vectors, vector, k)


def _forget(key: str, typed: bool):
    def clear():
        st.session_state[key] = "" if key == QUERY or typed else None
    return clear


def _picked_item(data, titles: dict, rows: dict, file_name: str, typed: bool) -> str | None:
    if not typed:
        return st.selectbox("…or an item (or click a point on the map)", data.ids, index=None, key=ITEM,
                            format_func=lambda i: f"{titles.get(i, i)} ({i})", on_change=_forget(QUERY, typed))
    item = (st.text_input("…or an item id (or click a point on the map)", key=ITEM, on_change=_forget(QUERY, typed),
                          placeholder=f"e.g. {data.ids[0]}") or "").strip() or None
    if item is not None and item not in rows:
        st.error(f"No item {item!r} in {file_name}: type an id of this file, e.g. {data.ids[0]!r}.")
        return None
    return item


def pick(data, path, mtime_ns: int, meta: dict, k: int) -> tuple[list, int | None, str | None]:
    """The query box and the item picker; returns (the k nearest as (row, cosine), the selected row, what they are
    nearest to)."""
    titles, rows = index(data, str(path), mtime_ns)
    typed = len(data) > ITEM_LIST_LIMIT  # a list of every id would be megabytes at each rerun
    query = st.text_input("Query (embedded with the run's model and its query prompt)", key=QUERY,
                          placeholder="e.g. sambal tempe pedas", on_change=_forget(ITEM, typed)).strip()
    item = _picked_item(data, titles, rows, path.name, typed)
    found = (str(path), mtime_ns, meta.get("model"), meta.get("dimensions"))
    if query:
        try:
            return _neighbours(data, *found, None, query, k), None, f"the query “{query}”"
        except ConsoleError as exc:  # e.g. the model cannot be loaded offline
            st.error(str(exc))
        except Exception as exc:  # noqa: BLE001 - shown to the user, no traceback
            st.error(f"Cannot embed the query with {meta.get('model')!r}: {exc}")
    elif item is not None:
        return _neighbours(data, *found, rows[item], "", k), rows[item], titles.get(item, item)
    return [], None, None
