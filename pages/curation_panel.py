"""The Explore page's curation panel (not a page itself): the items selected on the map or in the neighbour list,
excluded with a note, and the run's exclusions listed with undo. The work is console.explore.curation's."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from console.explore import curation
from console.errors import ConsoleError

SELECTION = "curation_selection"  # the ids selected on the map (box, lasso, click) or taken from the neighbours


def remember_map_selection(points, row_ids) -> list[str]:
    """Keep the ids of the points selected on the map (plotly's selection event; ``row_ids``: the map's item ids
    by row) as the curation selection."""
    ids = curation.selected_ids(points, row_ids)
    st.session_state[SELECTION] = ids
    return ids


def excluded_ids(source: Path) -> frozenset:
    """The run's excluded ids (none when its file cannot be read: the panel says why)."""
    try:
        return frozenset(curation.read_exclusions(curation.exclusions_path(source)))
    except ConsoleError:
        return frozenset()


def _flash(text: str) -> None:
    st.session_state["curation_flash"] = text


def _exclude(source: Path, key: str) -> None:
    picked = st.session_state.get(key) or []
    note = st.session_state.get("curation_note", "")
    added = curation.exclude(source, picked, note)
    st.session_state[SELECTION] = []
    st.session_state["curation_note"] = ""
    _flash(f"Excluded {added} item{'s' if added != 1 else ''}" + (f" ({len(picked) - added} were already)"
                                                                   if added < len(picked) else "") + ".")


def _undo(source: Path, ids: list[str]) -> None:
    undone = curation.undo(source, ids)
    st.session_state["curation_undo"] = []
    _flash(f"Undone: {undone} item{'s' if undone != 1 else ''} back in downloads and pushes.")


def panel(source: Path, titles: dict[str, str], groups: dict[str, list[str]]) -> None:
    """The panel for the run of embedding file ``source``: ``titles`` maps this file's ids to their titles;
    ``groups``: items the operator can take as the selection at once, by what they are (the neighbours listed, the
    clusters shown), each a button."""
    st.subheader("Curation")
    try:
        entries = curation.read_exclusions(curation.exclusions_path(source))
    except ConsoleError as exc:
        st.error(f"{exc}. Downloads and pushes of this run stop until the file is fixed or removed.")
        return
    if "curation_flash" in st.session_state:
        st.success(st.session_state.pop("curation_flash"))
    selection = [i for i in st.session_state.get(SELECTION) or [] if i in titles]
    for n, (what, ids) in enumerate(groups.items()):
        st.button(f"Select {what} ({len(ids):,})" if what.startswith("the items") else f"Select {what}",
                  key=f"curation_take_{n}",
                  on_click=lambda ids=ids: st.session_state.update({SELECTION: list(ids)}))
    key = f"curation_pick_{curation.digest(selection)}"  # a new selection: a new list, every item ticked
    picked = st.multiselect("Selected items (box or lasso on the map, a click, the neighbours listed or the clusters "
                            "shown)",
                            options=selection, default=selection, key=key,
                            format_func=lambda i: f"{titles.get(i, i)} ({i})",
                            placeholder="Select points on the map (box or lasso) or take the neighbours listed")
    st.text_input("Note (optional)", key="curation_note", placeholder="e.g. duplicate, wrong category")
    st.button(f"Exclude {len(picked)} selected", disabled=not picked, key="curation_exclude",
              on_click=_exclude, args=(source, key))
    _excluded_list(source, entries, titles)


def _excluded_list(source: Path, entries: dict, titles: dict[str, str]) -> None:
    here = [e for e in entries.values() if e.id in titles]
    others = len(entries) - len(here)
    st.caption(f"{len(here)} excluded item{'s' if len(here) != 1 else ''} in this file: left out of downloads and "
               f"pushes (the run's vectors are kept; the list is {curation.EXCLUSIONS_FILE} in the run's folder)"
               + (f"; {others} more excluded ids are not in this file." if others else "."))
    if not here:
        return
    st.dataframe(pd.DataFrame([{"id": e.id, "title": titles[e.id], "note": e.note, "excluded at": e.at}
                               for e in here]), hide_index=True, width="stretch")
    undo = st.multiselect("Undo for", [e.id for e in here], key="curation_undo",
                          format_func=lambda i: f"{titles.get(i, i)} ({i})")
    c1, c2 = st.columns(2)
    c1.button(f"Undo {len(undo)}", disabled=not undo, key="curation_undo_some", on_click=_undo, args=(source, undo))
    c2.button(f"Undo all {len(here)}", key="curation_undo_all", on_click=_undo,
              args=(source, [e.id for e in here]))
