"""Explore page benchmark: how long the map takes to build and how big it is, at 100k and 1M points.

    python bench/map_page.py                      # 2k, 100k and 1M: about a quarter of an hour
    python bench/map_page.py --sizes 100000 --no-browser

Each size is a run folder with a synthetic embeddings file (clustered unit vectors, 384-d, demo recipe titles and
texts) whose map is put in the projection cache beforehand (the coordinates of the vectors' clusters plus noise:
UMAP's time is bench/projection.py's subject, not this one's). Then the real page (``pages/explore.py``) runs in
Streamlit's AppTest, as a browser's session would run it: the first view (the clusters found, the base layer built),
a rerun where only the neighbours change (an item chosen), and with ``--browser`` the seconds until a real headless
Chromium (no GPU: WebGL in software, no WebGPU) shows the map of ``streamlit run``. Recorded per size: seconds of
each step, the chart's payload (MB of the plotly JSON sent to the browser) and the number of base-layer builds.
Writes bench/results/map-page.json and prints a one-line summary.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, log, recipe_texts, summary, write_result  # noqa: E402

DIMS = 384
CLUSTERS = 40


def make_run(work: Path, n: int, dims: int = DIMS, seed: int = 0) -> Path:
    """A work folder with one run of ``n`` synthetic items (``.npy`` + ids) and its 2-D map already cached, the way
    ``console.explore.projection.project`` caches it for the page's default settings. Returns the embeddings file."""
    from console.files.embfiles import EmbeddedItem, make_meta, write_embeddings
    from console.explore.projection import Projection, _cache_key, _write_cached
    from console.app.workspace import Workspace

    ws = Workspace(work)
    run = ws.runs / f"20261128-000000-bench-{n}"
    path = run / "embeddings_recipes.npy"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dims)).astype(np.float32)
    spots = rng.uniform(-15, 15, (CLUSTERS, 2)).astype(np.float32)
    label = rng.integers(0, CLUSTERS, n)
    texts = [t[:300] for t in recipe_texts()]  # the page shows 160 characters; a real text is longer
    vectors = np.empty((n, dims), dtype=np.float32)
    for start in range(0, n, 100_000):
        x = centres[label[start:start + 100_000]]
        x = x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(1.4 / np.sqrt(dims))
        vectors[start:start + 100_000] = x / np.linalg.norm(x, axis=1, keepdims=True)

    def items():
        for i in range(n):
            text = texts[(i * 7 + int(label[i])) % len(texts)]
            yield EmbeddedItem(f"recipe-{i}", "recipe", text, vectors[i], text.split(".")[0])

    write_embeddings(run, "recipe", items(), formats=("npy",),
                     meta=make_meta(model="synthetic", dimensions=dims, normalized=True, dtype="float32", count=n,
                                    type_="recipe"))
    coords = spots[label] + rng.standard_normal((n, 2)).astype(np.float32) * 1.2
    params = dict(dims=2, sample=5000, pca_dims=50, n_neighbors=15, min_dist=0.1, seed=42)
    if n > 5000:  # project() names the placement only when some items are placed
        params["placement"] = "knn"
    key = _cache_key(vectors, [f"recipe-{i}" for i in range(n)], params)
    _write_cached(ws.projection_cache() / f"{key}.npz",
                  Projection(coords, min(n, 5000), "pca+umap+knn" if n > 5000 else "pca+umap", params, False, key))
    return path


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, round(time.perf_counter() - t0, 2)


def page_in_apptest(work: Path, n: int) -> dict:
    """The page as the server runs it (no browser): first view, a rerun that changes the neighbours only, and the
    chart's payload; the base-layer builds counted."""
    from streamlit.testing.v1 import AppTest

    from console.explore import mapfigure

    builds, build = [], mapfigure.map_layer

    def counted(*args, **kwargs):
        layer, seconds = _timed(build, *args, **kwargs)
        builds.append(seconds)
        return layer

    mapfigure.map_layer = counted
    os.environ["CONSOLE_WORKDIR"] = str(work)
    os.environ.pop("CONSOLE_PASSWORD", None)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800).run()
        at, first = _timed(lambda: at.switch_page("pages/explore.py").run())
        assert not at.exception, at.exception
        spec = at.get("plotly_chart")[0].proto.spec
        item = at.text_input(key="explore_item") if n > 20_000 else at.selectbox(key="explore_item")
        _, rerun = _timed(lambda: (item.set_value("recipe-7") if n <= 20_000 else item.input("recipe-7")).run())
        assert not at.exception and at.subheader[0].value.startswith("Nearest to "), at.exception
        rerun_spec = at.get("plotly_chart")[0].proto.spec
        _, again = _timed(at.run)  # nothing changed
        caption = next((c.value for c in at.caption if " drawn as points" in c.value), "every point drawn")
        built = len(builds)  # the first view's layer; a rerun builds none
        zoom = _zoom(at, work) if n > mapfigure.POINT_LIMIT else {}
        if zoom:
            zoom["zoom_layer_build_seconds"] = builds[-1]
    finally:
        mapfigure.map_layer = build
    return {"points": n, "first_view_seconds": first, "layer_builds_view_and_reruns": built,
            "layer_build_seconds": builds[0] if builds else None, "rerun_neighbours_seconds": rerun,
            "rerun_unchanged_seconds": again, "payload_mb": round(len(spec) / 1e6, 1),
            "payload_rerun_mb": round(len(rerun_spec) / 1e6, 1), "map": caption, **zoom,
            "load_after": [round(v, 2) for v in os.getloadavg()]}


def _zoom(at, work: Path) -> dict:
    """A box over a tenth of the map (x between its 45th and 55th percentiles), sent as the chart's selection the
    way the browser sends it, then "Zoom to the box": seconds, points drawn, payload."""
    cached = max((p for p in (work / "cache" / "projections").glob("*.npz") if not p.name.startswith("clusters-")),
                 key=lambda p: p.stat().st_mtime_ns)
    with np.load(cached) as saved:
        coords = saved["coords"]
    x0, x1 = (float(v) for v in np.percentile(coords[:, 0], [45, 55]))
    box = {"xref": "x", "yref": "y", "x": [x0, x1], "y": [float(coords[:, 1].min()), float(coords[:, 1].max())]}
    states = at._tree.get_widget_states()
    state = states.widgets.add()
    state.id = at.get("plotly_chart")[0].proto.id
    state.string_value = json.dumps({"selection": {"points": [], "point_indices": [], "box": [box], "lasso": []}})
    at._run(states)
    button = next(b for b in at.button if b.label == "Zoom to the box")
    _, seconds = _timed(lambda: button.click().run())
    assert not at.exception, at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    drawn = sum(len(base64.b64decode(t["customdata"]["bdata"])) // 4 for t in spec["data"] if t.get("customdata"))
    return {"zoom_seconds": seconds, "zoom_region_points": int(((coords[:, 0] >= x0) & (coords[:, 0] <= x1)).sum()),
            "zoom_points_drawn": drawn, "zoom_payload_mb": round(len(at.get("plotly_chart")[0].proto.spec) / 1e6, 1)}


def page_in_chromium(work: Path, n: int, chromium: str, shots: Path | None = None) -> dict:
    """Seconds until a real headless Chromium shows the map (``streamlit run app.py``; a first visit warms the
    server's caches, the timed one is a new tab), then until it shows a chosen item's neighbours on it."""
    import subprocess
    import urllib.request

    from playwright.sync_api import sync_playwright

    from bench.common import free_port

    port = free_port()
    env = dict(os.environ, CONSOLE_WORKDIR=str(work), HF_HUB_OFFLINE="1")
    env.pop("CONSOLE_PASSWORD", None)
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.headless", "true", "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/explore"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.set_default_timeout(1_800_000)
            _, cold = _timed(_shown, page, url)
            page.close()
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.set_default_timeout(600_000)
            shown, warm = _timed(_shown, page, url)
            box = page.get_by_label("…or an item id (or click a point on the map)") if n > 20_000 else None
            t0 = time.perf_counter()
            if box is not None:
                box.fill("recipe-7")
                box.press("Enter")
            else:
                page.get_by_test_id("stSelectbox").filter(has_text="…or an item").click()
                page.keyboard.type("recipe-7")
                page.keyboard.press("Enter")
            page.wait_for_function("() => (document.querySelector('.js-plotly-plot')?._fullData || [])"
                                   ".some(t => t.name === 'neighbours')", polling=100)
            neighbours = round(time.perf_counter() - t0, 2)
            if shots is not None:  # the page as the operator sees it, for the README
                shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shots / f"explore-{n // 1000}k.png"), full_page=False)
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    return {"points": n, "chromium_first_visit_seconds": cold, "chromium_map_seconds": warm,
            "chromium_points_drawn": shown["points"], "chromium_density_layer": shown["density"],
            "chromium_neighbours_seconds": neighbours}


def _shown(page, url: str) -> dict:
    """Open ``url`` and wait until the map's plotly graph holds its traces (typed arrays decoded, drawn)."""
    page.goto(url)
    page.wait_for_function("""() => { const gd = document.querySelector('.js-plotly-plot');
        return gd && gd._fullData && gd._fullData.some(t => t.type === 'scattergl' && t._length > 0); }""",
                           polling=100)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return page.evaluate("""() => { const d = document.querySelector('.js-plotly-plot')._fullData;
        return {points: d.filter(t => t.type === 'scattergl').reduce((n, t) => n + t._length, 0),
                density: d.some(t => t.type === 'heatmap')}; }""")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,100000,1000000",
                        help="comma-separated point counts (2,000: the page's own time, next to the large ones)")
    parser.add_argument("--work", default="/tmp/map-page-bench", help="where the synthetic runs are kept")
    parser.add_argument("--no-browser", action="store_true", help="skip the headless Chromium timing")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--screenshots", type=Path, default=None, metavar="DIR",
                        help="save Chromium's view of each page there as explore-<N>k.png")
    parser.add_argument("--output", default="map-page", help="result name: bench/results/<name>.json (map-page)")
    args = parser.parse_args(argv)
    load_before = [round(v, 2) for v in os.getloadavg()]
    runs = []
    for n in [int(s) for s in args.sizes.split(",") if s]:
        work = Path(args.work) / f"n{n}"
        _, made = _timed(make_run, work, n)
        log(f"{n} points: run written and its map cached in {made:.0f} s")
        row = page_in_apptest(work, n)
        log(f"{n} points, page: {row}")
        if not args.no_browser:
            row.update(page_in_chromium(work, n, args.chromium, args.screenshots))
            log(f"{n} points, Chromium: {row}")
        runs.append(row)
    write_result(args.output, {
        "what": "the Explore page (pages/explore.py) on a run of N synthetic items whose map is cached: seconds of "
                "the first view (file read, clusters, base layer), of a rerun that only changes the neighbours (an "
                "item chosen), of a rerun with nothing changed; base-layer builds; the chart's payload (MB of "
                "plotly JSON per rerun); with Chromium: seconds until headless Chromium (software WebGL, no GPU) "
                "shows the map (first visit: cold server caches; then a new tab) and an item's neighbours on it",
        "vectors": f"synthetic: {CLUSTERS} clusters, {DIMS}-d unit vectors; texts: demo recipes (300 characters)",
        "load_avg_before": load_before, "load_avg_after": [round(v, 2) for v in os.getloadavg()], "runs": runs})
    summary("map-page: " + "; ".join(
        f"{r['points'] // 1000}k: layer {r['layer_build_seconds']} s, rerun {r['rerun_neighbours_seconds']} s, "
        f"{r['payload_mb']} MB" + (f", Chromium {r['chromium_map_seconds']} s" if "chromium_map_seconds" in r else "")
        for r in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
