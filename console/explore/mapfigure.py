"""The Explore map as a plotly figure, in two parts: the base layer (every point, or above ``POINT_LIMIT`` a density
layer of all points with a seeded sample drawn on it; colours, hover text, cluster names), built once per setting
and kept by the caller, and the marks of one interaction (neighbours, the selected point, exclusions), small traces
put on top for each rerun. WebGL (``Scattergl``/``Scatter3d``) and a plain heatmap: no WebGPU needed.

Typed arrays (float32 coordinates, int32 row numbers) go to the page as base64; the traces are built without
plotly's per-item validation (the values are made here). Plain Python: no Streamlit import.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOR_FIELDS = ("type", "category", "source", "cluster")
# above this many points in view, a 2D map is a density layer with DENSITY_SAMPLE points on it (bench/map_page.py:
# a rerun sends the whole figure, ~0.33 MB per 1,000 points with hover; headless Chromium showed 100k in ~32 s on the
# loaded 2-core machine, a 2k map in ~11 s, the 1M density map with 50k points in ~16 s)
POINT_LIMIT = 150_000
HOVER_LIMIT = POINT_LIMIT  # drawn points with hover text (title, id, text, cluster); beyond, a seeded subset has it
DENSITY_SAMPLE = 50_000  # points drawn (with hover) over the density layer of a large map
DENSITY_BINS = 200  # the density layer's grid (per axis)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#e6550d", "#31a354", "#756bb1", "#636363", "#843c39", "#d6616b", "#3182bd",
           "#fd8d3c", "#74c476")


@dataclass
class MapLayer:
    """The heavy part of a map, made once per (map, colour, clusters shown, names on/off, region): its traces and
    layout, and what it shows: ``in_view`` points (of the region, if any), ``drawn`` of them as points;
    ``density``: the points in view are (also) a density layer."""

    traces: list  # plotly trace dicts
    layout: dict
    three_d: bool
    in_view: int
    drawn: int
    density: bool = False
    region: tuple | None = None  # (x0, x1, y0, y1)
    color_by: str = "type"


def _short(text: str, n: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _marker_size(n: int, three_d: bool) -> int:
    return (4 if three_d else 7) if n <= 10_000 else 3 if n <= 200_000 else 2


def _point_labels(data, color_by: str, clusters) -> np.ndarray:
    if color_by == "cluster":
        if clusters is None:
            raise ValueError('color_by="cluster" needs the clusters')
        return np.asarray(clusters.names_of_rows(), dtype=object)
    values = {"type": data.types, "category": data.categories, "source": data.sources}[color_by]
    return np.asarray([v or "(none)" for v in values], dtype=object)


def _seeded_subset(mask: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """``mask`` with at most ``limit`` rows left: a seeded random choice (the same rows at every rerun)."""
    if mask.sum() <= limit:
        return mask
    rank = np.empty(len(mask), dtype=np.int64)
    rank[np.random.default_rng(seed).permutation(len(mask))] = np.arange(len(mask))
    chosen = np.zeros(len(mask), dtype=bool)
    chosen[np.flatnonzero(mask)[np.argsort(rank[mask], kind="stable")[:limit]]] = True
    return chosen


def bounds(region) -> tuple[float, float, float, float]:
    """``region`` (x0, x1, y0, y1, either order per axis, as a box selection gives it) as (x_min, x_max, y_min,
    y_max)."""
    x0, x1, y0, y1 = region
    return min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)


def in_region(coords: np.ndarray, region) -> np.ndarray:
    """Which rows of 2D ``coords`` lie in ``region`` (x0, x1, y0, y1; either order)."""
    x_min, x_max, y_min, y_max = bounds(region)
    x, y = coords[:, 0], coords[:, 1]
    return (x >= x_min) & (x <= x_max) & (y >= y_min) & (y <= y_max)


def _xyz(coords: np.ndarray, rows) -> dict:
    """The coordinates of ``rows`` as plotly's x, y (and z) columns, float32 (sent as typed arrays)."""
    return {axis: np.ascontiguousarray(coords[rows, i], dtype=np.float32)
            for i, axis in enumerate("xyz"[: coords.shape[1]])}


def map_layer(data, proj, *, color_by: str = "type", clusters=None, shown_clusters=None, cluster_labels: bool = True,
              hover_limit: int = HOVER_LIMIT, point_limit: int = POINT_LIMIT, density_sample: int = DENSITY_SAMPLE,
              region=None) -> MapLayer:
    """The base layer of the map of ``proj`` (the coordinates of ``data``'s rows), coloured by ``color_by``.
    ``clusters`` (``console.explore.clusters.Clusters``): ``shown_clusters`` (None = all) limits the points, and each shown
    cluster's name is written at its centre (``cluster_labels``). ``region`` (2D: x0, x1, y0, y1): only its points.
    Up to ``point_limit`` points in view, all are drawn; above, a 2D map is a density layer of them all with a seeded
    ``density_sample`` of them drawn on top (in a region: ``point_limit`` of them), a 3D map a seeded
    ``point_limit`` of them. Drawn points beyond ``hover_limit`` carry no hover text (a seeded subset does)."""
    if color_by not in COLOR_FIELDS:
        raise ValueError(f"color_by must be one of {COLOR_FIELDS}")
    labels = _point_labels(data, color_by, clusters)
    three_d = proj.coords.shape[1] == 3
    if region is not None and three_d:
        raise ValueError("a region is for a 2D map")
    view = np.ones(proj.total, dtype=bool)
    if clusters is not None and shown_clusters is not None:
        view = np.isin(clusters.labels, np.asarray(list(shown_clusters), dtype=np.int64))
    if region is not None:
        view &= in_region(proj.coords, region)
    in_view = int(view.sum())
    density = in_view > point_limit and not three_d
    drawn = _seeded_subset(view, density_sample if density and region is None else point_limit)
    traces = [_density_trace(proj.coords[view], region)] if density else []
    traces += _group_traces(data, proj, labels, drawn, _seeded_subset(drawn, hover_limit), clusters)
    layout = _layout(color_by, clusters if cluster_labels else None, shown_clusters, three_d, region)
    if density:  # a drag draws the box to zoom into (the modebar still has pan and plotly's own zoom)
        layout["dragmode"] = "select"
    return MapLayer(traces, layout, three_d, in_view, int(drawn.sum()), density, region, color_by)


def _group_traces(data, proj, labels, drawn, hover, clusters) -> list:
    """One trace per colour for the drawn points with hover text, one (legend-less) for those without."""
    three_d = proj.coords.shape[1] == 3
    size = _marker_size(int(drawn.sum()), three_d)
    names, group = np.unique(labels.astype(str), return_inverse=True)  # integer groups: cheap masks at 1M
    row_clusters = clusters.names_of_rows() if clusters is not None else None
    traces = []
    for n in np.unique(group[drawn]).tolist():
        in_group = drawn & (group == n)
        colour = PALETTE[n % len(PALETTE)]
        for rows, with_hover in ((np.flatnonzero(in_group & hover), True), (np.flatnonzero(in_group & ~hover), False)):
            if len(rows) or with_hover:
                traces.append(_points_trace(data, proj, rows, str(names[n]), colour, size,
                                            row_clusters if with_hover else False))
    return traces


def _points_trace(data, proj, rows, name, colour, size, row_clusters):
    """One group's points, each with its row number as ``customdata``; ``row_clusters``: False for no hover text,
    None for hover without a cluster line, else the cluster name of every row."""
    three_d = proj.coords.shape[1] == 3
    xyz = _xyz(proj.coords, rows)
    common = dict(type="scatter3d" if three_d else "scattergl", mode="markers", name=name, legendgroup=name,
                  marker=dict(size=size, opacity=0.8, color=colour),
                  customdata=np.asarray(rows, dtype=np.int32))  # the row: a selection event says which item
    if row_clusters is False:
        return dict(**xyz, **common, showlegend=False, hoverinfo="skip")
    # one prepared string per point, a plain list (JSON-encoded natively; 4 strings per point were 4x slower)
    cluster = (lambda r: f"<br>cluster: {row_clusters[r]}") if row_clusters else (lambda r: "")
    titles, ids, texts = data.titles, data.ids, data.texts
    hovertext = [f"<b>{titles[r]}</b><br>{ids[r]}<br>{_short(texts[r])}{cluster(r)}" for r in rows.tolist()]
    return dict(**xyz, **common, hovertext=hovertext, hovertemplate="%{hovertext}<extra></extra>")


def _density_trace(coords: np.ndarray, region, bins: int = DENSITY_BINS):
    """How many points fall in each cell of a ``bins`` x ``bins`` grid over the points (or the region), drawn as a
    grey heatmap on a log scale; empty cells transparent. A few hundred KB whatever the number of points."""
    if region is not None:
        x_min, x_max, y_min, y_max = bounds(region)
        extent = [[x_min, x_max], [y_min, y_max]]
    else:
        extent = [[float(coords[:, 0].min()), float(coords[:, 0].max())],
                  [float(coords[:, 1].min()), float(coords[:, 1].max())]]
    counts, xs, ys = np.histogram2d(coords[:, 0], coords[:, 1], bins=bins, range=extent)
    z = np.where(counts > 0, np.log10(counts + 1), np.nan).T.astype(np.float32)  # rows: y
    return dict(type="heatmap", z=z, x0=float(xs[0] + (xs[1] - xs[0]) / 2), dx=float(xs[1] - xs[0]),
                y0=float(ys[0] + (ys[1] - ys[0]) / 2), dy=float(ys[1] - ys[0]), name="density", colorscale="Greys",
                zmin=0, showscale=False, hoverinfo="skip", opacity=0.6)


def _layout(color_by: str, clusters, shown_clusters, three_d: bool, region) -> dict:
    layout = dict(height=620, margin=dict(l=0, r=0, t=30, b=0), clickmode="event+select",
                  showlegend=True,  # plotly hides the legend of a single trace: one colour then said nothing
                  legend=dict(itemsizing="constant", title=dict(text=color_by)))
    if region is not None:  # the region fills the map (a neighbour outside it does not widen it)
        x_min, x_max, y_min, y_max = bounds(region)
        layout.update(xaxis=dict(range=[x_min, x_max]), yaxis=dict(range=[y_min, y_max]))
    if clusters is not None:
        notes = _cluster_labels(clusters, shown_clusters)
        if three_d:
            layout["scene"] = dict(annotations=notes)
        else:
            layout["annotations"] = notes
    return layout


def _cluster_labels(clusters, shown_clusters) -> list[dict]:
    """Each shown cluster's name at its centre."""
    notes = []
    for label in clusters.ids():
        if shown_clusters is not None and label not in shown_clusters:
            continue
        note = dict(text=clusters.names[label], showarrow=False, font=dict(size=12, color="#111"),
                    bgcolor="rgba(255,255,255,0.75)")
        note.update(zip("xyz", (float(c) for c in clusters.centres[label])))
        notes.append(note)
    return notes


def map_figure(layer: MapLayer, proj, *, highlight=(), selected=None, excluded=()):
    """The figure of one rerun: ``layer``'s traces and on top the marks: ``excluded`` rows
    (console.explore.curation) crossed out, ``highlight`` rows (neighbours) as rings, the ``selected`` row as a star."""
    import plotly.graph_objects as go

    kind = "scatter3d" if layer.three_d else "scattergl"
    marks = []
    for rows, name, marker in (
        ([int(r) for r in excluded], "excluded", dict(size=9, symbol="x", color="rgba(90,90,90,0.9)")),
        ([int(r) for r in highlight], "neighbours", dict(size=14, symbol="circle-open", color="black")),
        ([selected] if selected is not None else [], "selected",
         dict(size=18, symbol="diamond" if layer.three_d else "star", color="red")),
    ):
        if rows:
            xyz = _xyz(proj.coords, rows)
            marks.append(dict(type=kind, **xyz, mode="markers", name=name, marker=marker, hoverinfo="skip"))
    # the layer's trace dicts are shared by every session's figure: plotly gets copies of the (small) dicts, whose
    # arrays it keeps without copying or checking them (they were made above, not typed by a user)
    return go.Figure(data=[dict(t) for t in [*layer.traces, *marks]], layout=dict(layer.layout), _validate=False)


def scatter_figure(data, proj, *, color_by: str = "type", highlight=(), selected=None, clusters=None,
                   shown_clusters=None, cluster_labels: bool = True, hover_limit: int = HOVER_LIMIT,
                   point_limit: int = POINT_LIMIT, excluded=(), region=None):
    """The whole map in one call: :func:`map_layer` with :func:`map_figure`'s marks on it."""
    layer = map_layer(data, proj, color_by=color_by, clusters=clusters, shown_clusters=shown_clusters,
                      cluster_labels=cluster_labels, hover_limit=hover_limit, point_limit=point_limit, region=region)
    return map_figure(layer, proj, highlight=highlight, selected=selected, excluded=excluded)
