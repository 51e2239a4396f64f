"""Explore: a UMAP map of every item, its clusters named in the data's language, and a similarity preview (a selected
point or a typed query)."""
import time

import pandas as pd
import streamlit as st

from console.files.embfiles import read_meta
from console.errors import ConsoleError
from console.explore.clusters import NOISE, default_min_size, find_clusters, languages
from console.explore.projection import COLOR_FIELDS, load_embedding_set, project
from pages import common, curation_panel, map_view, preview

ws = common.page_workspace()
st.title("Explore")
chosen = common.pick_output(ws, "Embeddings", key="explore_file")
if chosen is None:
    st.stop()


@st.cache_resource(max_entries=4, show_spinner="Reading the embeddings…")
def _load(path: str, mtime_ns: int):
    return load_embedding_set(path, vectors_dir=ws.projection_cache())  # vectors memory-mapped, not held


@st.cache_resource(show_spinner=False)
def _projections() -> dict:
    """Maps made in this server process, by (file, modification time, settings); the disk cache keeps them too."""
    return {}


def _project(path: str, mtime_ns: int, **params):
    """The map's coordinates; a new one is computed inside a status box that names each stage as it begins."""
    key = (path, mtime_ns, tuple(sorted(params.items())))
    made = _projections()
    if key not in made:
        started = time.monotonic()
        with st.status("Making the map…", expanded=True) as box:
            def stage(text: str) -> None:
                box.update(label=f"Making the map: {text}…")
                box.write(f"{text} · {time.monotonic() - started:.0f} s")

            stage("Reading the vectors")
            data = _load(path, mtime_ns)
            made[key] = project(data.vectors, ids=data.ids, cache_dir=ws.projection_cache(), on_stage=stage, **params)
            box.update(label=f"Map made in {time.monotonic() - started:.0f} s"
                             + (" (from the cache)" if made[key].from_cache else ""), state="complete", expanded=False)
        while len(made) > 16:
            made.pop(next(iter(made)))
    return made[key]


mtime = chosen.path.stat().st_mtime_ns
try:
    data = _load(str(chosen.path), mtime)
except ConsoleError as exc:  # a damaged or truncated file: named, with what to do
    st.error(str(exc))
    st.stop()
meta = read_meta(chosen.path) or {}
if len(data) == 0:
    st.warning(f"{chosen.path.name} holds no items.")
    st.stop()

with st.expander("Map settings", expanded=False):
    c1, c2, c3, c4, c5 = st.columns(5)
    dims = 3 if c1.radio("Map", ["2D", "3D"], horizontal=True) == "3D" else 2
    color_by = c2.selectbox("Colour by", COLOR_FIELDS, index=1 if len(set(data.types)) == 1 else 0)
    sample = c3.number_input("UMAP fitted on (the rest placed by neighbours)", min_value=100, max_value=200_000,
                             value=5_000, step=1_000)
    n_neighbors = c4.slider("UMAP neighbours", 2, 100, 15)
    pca_dims = c5.slider("PCA dimensions before UMAP", 10, 200, 50)
    k = st.slider("Neighbours to show", 1, 50, 10)
    c1, c2, c3 = st.columns(3)
    language = c1.selectbox("Language of the texts (for cluster names)", ["auto", *languages()],
                            format_func=lambda code: "detect from the data" if code == "auto" else code)
    min_size = c2.number_input("Smallest cluster", min_value=2, max_value=100_000,
                               value=default_min_size(len(data)), step=1)
    show_labels = c3.checkbox("Cluster names on the map", value=True)

proj = _project(str(chosen.path), mtime, dims=dims, sample=int(sample), n_neighbors=n_neighbors, pca_dims=pca_dims)
PLACED_BY = {"knn": "their nearest neighbours", "umap": "UMAP's transform"}
note = f"{proj.total:,} of {len(data):,} items" + (
    f" (UMAP fitted on {proj.fitted:,}, {proj.placed:,} placed by {PLACED_BY[proj.params['placement']]})"
    if proj.placed else "")
st.caption(f"{note} · {data.dimensions} dimensions · model `{meta.get('model', '?')}` · {proj.method.upper()}"
           + (" · from cache" if proj.from_cache else ""))


@st.cache_resource(show_spinner=False, max_entries=8)
def _clusters(path: str, mtime_ns: int, proj_key: str, language: str, min_size: int):
    """The map's clusters (by its projection's cache key and the settings); the disk cache keeps them too."""
    with st.spinner("Finding and naming the clusters…"):
        return find_clusters(proj.coords, data.texts, language=language, min_size=min_size,
                             cache_dir=ws.projection_cache())


clusters = _clusters(str(chosen.path), mtime, proj.key, language, int(min_size))
in_none = int((clusters.labels == NOISE).sum())
st.caption(f"{len(clusters.names)} clusters, named in `{clusters.language}`"
           + (" (detected)" if language == "auto" else "") + f" · {in_none:,} items in none"
           + (" · from cache" if clusters.from_cache else ""))
if "explore_clusters" in st.session_state:  # clusters of another map or setting: forgotten
    st.session_state["explore_clusters"] = [c for c in st.session_state["explore_clusters"] if c in clusters.names]
shown_clusters = st.multiselect(
    "Show only these clusters (none chosen: all)", clusters.ids(), key="explore_clusters",
    format_func=lambda c: f"{clusters.names[c]} ({clusters.sizes[c]:,})") or None


def _on_select():
    ids, region = map_view.remember_selection(data.ids, proj)
    if len(ids) == 1 and not region:  # a click: its neighbours (a box or lasso selects for the curation panel)
        st.session_state[preview.ITEM] = ids[0]
        st.session_state[preview.QUERY] = ""


hits, selected, target = preview.pick(data, chosen.path, mtime, meta, k)
titles, rows_by_id = preview.index(data, str(chosen.path), mtime)

if color_by != "cluster" and len(set({"type": data.types, "category": data.categories,
                                      "source": data.sources}[color_by])) == 1:
    st.caption(f"Every item has the same {color_by} here, so the map has one colour: pick another “Colour by” "
               "to tell them apart.")
excluded = curation_panel.excluded_ids(chosen.path)
map_view.draw(data, proj, clusters, (language, int(min_size)), color_by=color_by, shown_clusters=shown_clusters,
              labels=show_labels, highlight=[i for i, _ in hits], selected=selected,
              excluded=sorted(rows_by_id[i] for i in excluded if i in rows_by_id), on_select=_on_select)

if hits:
    st.subheader(f"Nearest to {target}")
    st.dataframe(pd.DataFrame([
        {"rank": n, "cosine": round(score, 4), "id": data.ids[i], "title": data.titles[i], "type": data.types[i],
         "cluster": clusters.name(clusters.labels[i]), "excluded": "yes" if data.ids[i] in excluded else ""}
        for n, (i, score) in enumerate(hits, start=1)
    ]), hide_index=True, width="stretch")

groups = {f"the {len(hits)} neighbours listed": [data.ids[i] for i, _ in hits]} if hits else {}
if shown_clusters:
    groups[f"the items of the cluster{'s' if len(shown_clusters) > 1 else ''} shown"] = [
        data.ids[r] for c in shown_clusters for r in clusters.rows(c).tolist()]
curation_panel.panel(chosen.path, titles, groups)
