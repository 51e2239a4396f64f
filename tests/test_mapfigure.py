"""The Explore map's figure (console.explore.mapfigure): a base layer made once, marks per rerun on top, and above the point
limit a density layer of every point that resolves to the points of a region. Map coordinates are made here (two
blobs); the texts are real demo recipe titles."""
from __future__ import annotations

import json

import numpy as np
import plotly.io
import pytest

from conftest import read_demo_recipes
from console.explore.mapfigure import in_region, map_figure, map_layer
from console.explore.projection import EmbeddingSet, Projection


@pytest.fixture(scope="module")
def two_blobs():
    """2,000 items: 1,000 ayam around (-5, 0) and 1,000 tempe around (5, 0)."""
    titles = [r["Title"] for kind in ("ayam", "tempe") for r in read_demo_recipes(kind, 1000)]
    n = len(titles)
    rng = np.random.default_rng(1)
    coords = rng.standard_normal((n, 2)).astype(np.float32)
    coords[:, 0] += np.where(np.arange(n) < n // 2, -5, 5)
    data = EmbeddingSet([f"recipe-{i}" for i in range(n)], ["recipe"] * n, titles, [f"{t}. Bahan: x." for t in titles],
                        np.zeros((n, 4), dtype=np.float32), ["Ayam"] * (n // 2) + ["Tempe"] * (n - n // 2), ["f"] * n)
    return data, Projection(coords, n, "given", {}, key="blobs")


def test_below_the_point_limit_every_point_is_drawn_with_hover_text(two_blobs):
    data, proj = two_blobs
    layer = map_layer(data, proj, color_by="category")
    assert not layer.density and layer.drawn == layer.in_view == 2000
    assert [t["type"] for t in layer.traces] == ["scattergl", "scattergl"]
    assert sum(len(t["hovertext"]) for t in layer.traces) == 2000


def test_above_the_point_limit_a_density_layer_of_every_point_has_a_sample_drawn_on_it(two_blobs):
    data, proj = two_blobs
    layer = map_layer(data, proj, color_by="category", point_limit=500, density_sample=300)
    assert layer.density and (layer.in_view, layer.drawn) == (2000, 300)
    assert layer.layout["dragmode"] == "select"  # a drag draws the box to zoom into
    heat, *points = layer.traces
    assert heat["type"] == "heatmap" and heat["hoverinfo"] == "skip"
    assert round(float(np.nansum(10 ** heat["z"].astype(np.float64) - 1))) == 2000  # every point counted
    rows = np.concatenate([t["customdata"] for t in points])
    assert len(rows) == 300 == len(set(rows.tolist()))
    assert sum(len(t["hovertext"]) for t in points) == 300
    again = map_layer(data, proj, color_by="category", point_limit=500, density_sample=300)
    assert np.array_equal(np.concatenate([t["customdata"] for t in again.traces[1:]]), rows)  # seeded: same rows


def test_a_region_draws_all_its_points_and_fills_the_map(two_blobs):
    data, proj = two_blobs
    region = (-9.0, -1.0, -3.0, 3.0)  # the ayam blob
    inside = in_region(proj.coords, region)
    layer = map_layer(data, proj, color_by="category", point_limit=500, region=region)
    assert layer.in_view == int(inside.sum()) > 900 and layer.drawn == 500 and layer.density  # still above 500
    layer = map_layer(data, proj, color_by="category", point_limit=1500, region=region)
    assert not layer.density and layer.drawn == layer.in_view
    rows = np.concatenate([t["customdata"] for t in layer.traces])
    assert sorted(rows.tolist()) == np.flatnonzero(inside).tolist()
    assert [t["name"] for t in layer.traces] == ["Ayam"]
    assert layer.layout["xaxis"]["range"] == [-9.0, -1.0] and layer.layout["yaxis"]["range"] == [-3.0, 3.0]


def test_marks_are_added_per_rerun_and_the_layer_is_shared_not_changed(two_blobs):
    data, proj = two_blobs
    layer = map_layer(data, proj, color_by="category", point_limit=500, density_sample=300)
    before = [sorted(t) for t in layer.traces]
    fig = map_figure(layer, proj, highlight=[1, 2], selected=0, excluded=[5])
    assert [t.name for t in fig.data][-3:] == ["excluded", "neighbours", "selected"]
    assert [sorted(t) for t in layer.traces] == before  # plotly popped "type" from its copies, not from these
    assert len(map_figure(layer, proj).data) == len(layer.traces)  # the next rerun: no marks, nothing left over
    spec = json.loads(plotly.io.to_json(fig, validate=False))
    assert spec["data"][1]["x"]["dtype"] == "f4" and spec["data"][1]["customdata"]["dtype"] == "i4"  # typed arrays
    assert spec["data"][0]["type"] == "heatmap"


def test_a_3d_map_above_the_limit_draws_a_sample_and_takes_no_region(two_blobs):
    data, proj = two_blobs
    proj3 = Projection(np.c_[proj.coords, proj.coords[:, :1]], proj.total, "given", {}, key="3d")
    layer = map_layer(data, proj3, point_limit=700)
    assert not layer.density and layer.drawn == 700 and {t["type"] for t in layer.traces} == {"scatter3d"}
    with pytest.raises(ValueError, match="a region is for a 2D map"):
        map_layer(data, proj3, region=(0, 1, 0, 1))
