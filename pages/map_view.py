"""The Explore page's map (not a page itself): the base layer made once per setting and kept (st.cache_resource), the
marks of each rerun put on top, and for a large map the zoom into a box-selected region, drawn as all its points.
The drawing is console.explore.mapfigure's."""
from __future__ import annotations

import streamlit as st

from console.explore import mapfigure
from pages import curation_panel

REGION = "explore_region"  # (map key, (x0, x1, y0, y1)): the region zoomed into, or None for the whole map
BOX = "explore_box"  # (map key, (x0, x1, y0, y1)): the last box selected on the map


@st.cache_resource(show_spinner="Drawing the map…", max_entries=4)
def _layer(_data, _proj, _clusters, key: tuple) -> mapfigure.MapLayer:
    """The base layer, by ``key``: (map, clusters, colour, clusters shown, names on, region, limits). The leading
    underscores keep Streamlit from hashing a million items at each rerun: the key names them."""
    _, _, color_by, shown, labels, region, point_limit, density_sample = key
    return mapfigure.map_layer(_data, _proj, color_by=color_by, clusters=_clusters,
                               shown_clusters=list(shown) if shown is not None else None, cluster_labels=labels,
                               region=region, point_limit=point_limit, density_sample=density_sample)


def region_of(proj) -> tuple | None:
    """The region of this map zoomed into, if any (one of another map, or of a 2D map seen in 3D, is not used)."""
    saved = st.session_state.get(REGION)
    if saved and saved[0] == proj.key and proj.coords.shape[1] == 2:
        return tuple(saved[1])
    return None


def remember_selection(row_ids, proj) -> tuple[list[str], bool]:
    """For the chart's on_select: the ids of the points selected (kept for the curation panel), and whether a box
    or lasso selected them (not a click); the last box is kept for "Zoom to the box"."""
    selection = st.session_state["map"].selection
    ids = curation_panel.remember_map_selection(selection.points, row_ids)
    boxes = [b for b in selection.get("box") or [] if len(b.get("x") or ()) == 2 and len(b.get("y") or ()) == 2]
    st.session_state[BOX] = (proj.key, (*map(float, boxes[-1]["x"]), *map(float, boxes[-1]["y"]))) if boxes else None
    return ids, bool(boxes or selection.get("lasso"))


def draw(data, proj, clusters, clusters_key, *, color_by: str, shown_clusters, labels: bool, highlight, selected,
         excluded, on_select) -> mapfigure.MapLayer:
    """The map: the cached base layer with this rerun's marks, what it shows in a caption, and the zoom buttons."""
    key = (proj.key, clusters_key, color_by, tuple(shown_clusters) if shown_clusters else None, labels,
           region_of(proj), mapfigure.POINT_LIMIT, mapfigure.DENSITY_SAMPLE)
    layer = _layer(data, proj, clusters, key)
    fig = mapfigure.map_figure(layer, proj, highlight=highlight, selected=selected, excluded=excluded)
    st.plotly_chart(fig, key="map", on_select=on_select, selection_mode=("points", "box", "lasso"))
    _caption(layer)
    _zoom_buttons(proj, layer)
    return layer


def _caption(layer: mapfigure.MapLayer) -> None:
    where = "in the map"
    if layer.region is not None:
        x_min, x_max, y_min, y_max = mapfigure.bounds(layer.region)
        where = f"in the region x {x_min:.2f} to {x_max:.2f}, y {y_min:.2f} to {y_max:.2f}"
    if layer.density:
        st.caption(f"{layer.in_view:,} items {where}: their density in grey, {layer.drawn:,} of them drawn as points "
                   "(a seeded sample). Drag a box over a region, then “Zoom to the box” to draw its points.")
    elif layer.three_d and layer.drawn < layer.in_view:
        st.caption(f"3D: {layer.drawn:,} of {layer.in_view:,} items drawn (a seeded sample; the 2D map shows them "
                   "all, as a density layer that zooms to points).")
    elif layer.region is not None:
        st.caption(f"{layer.in_view:,} items {where}, every one drawn.")


def _zoom(proj_key: str, region) -> None:
    st.session_state[REGION] = (proj_key, region) if region is not None else None
    st.session_state[BOX] = None


def _zoom_buttons(proj, layer: mapfigure.MapLayer) -> None:
    """“Zoom to the box” (a large map, or one zoomed already) and “Whole map” (when zoomed)."""
    if layer.three_d or not (layer.density or layer.region is not None):
        return
    box = st.session_state.get(BOX)
    box = box[1] if box and box[0] == proj.key else None
    c1, c2 = st.columns(2)
    c1.button("Zoom to the box", key="explore_zoom", disabled=box is None, on_click=_zoom, args=(proj.key, box),
              help="Drag a box on the map first (the box tool, top right): the points in it are then drawn, "
                   f"all of them up to {mapfigure.POINT_LIMIT:,}, with their hover text.")
    if layer.region is not None:
        c2.button("Whole map", key="explore_unzoom", on_click=_zoom, args=(proj.key, None))
