"""Evaluate: search quality of one or two finished runs on a labelled query set, before anything is pushed.

Layout only: the ranking, metrics (ranx) and disagreement are console.search.evaluate's; the query sets console.search.querysets'.
"""
import pandas as pd
import streamlit as st

from console.errors import ConsoleError
from console.search.evaluate import CONSOLE_MODES, STAT_TESTS, evaluate_console, load_run, query_encoder
from console.search.fusion import DEFAULT_FUSION, FUSIONS
from console.search.querysets import list_query_sets, read_query_set, save_query_set
from pages import common

ws = common.page_workspace()
QUERY_SETS = ws.root / "querysets"
st.title("Evaluate")
st.caption("Keyword (BM25 over the items' texts) against semantic search (the run's own vectors, queries embedded "
           "with its model) on a labelled query set: recall, MRR, nDCG and precision at k, with a paired test.")

files = list(common.outputs_by_run_and_type(ws).values())
if not files:
    st.info("No embeddings yet: generate some on the Generate page (they are kept in the work folder).")
    st.stop()
types = sorted({f.type for f in files})
runs = list(dict.fromkeys(f.run_id for f in files))
c1, c2 = st.columns([1, 3])
type_ = c1.selectbox("Item type", types, index=types.index("recipe") if "recipe" in types else 0, key="eval_type")
with_type = [f.run_id for f in files if f.type == type_]
chosen = c2.multiselect("Runs (one, or two to compare models or --dimensions)", runs, default=with_type[:1],
                        max_selections=2, key="eval_runs")

with st.expander("Upload a query set", expanded=False):
    st.caption('JSON Lines with {"id", "query", "relevant": [ids]} per line, or BEIR: queries.jsonl ({"_id", "text"}) '
               "together with its qrels .tsv (query-id, corpus-id, score).")
    uploads = st.file_uploader("Query set", type=["jsonl", "tsv"], accept_multiple_files=True, key="eval_upload")
    if uploads and st.button("Keep this query set", key="eval_keep"):
        try:
            kept = save_query_set(QUERY_SETS, {u.name: u.getvalue() for u in uploads})
        except ConsoleError as exc:
            st.error(str(exc))
        else:
            st.session_state["eval_set"] = f"uploaded: {kept.name}"
            st.success(f"Kept {kept.name}.")

sets = list_query_sets(QUERY_SETS)
if st.session_state.get("eval_set") not in sets:
    st.session_state.pop("eval_set", None)
set_name = st.selectbox("Query set", list(sets), key="eval_set")
c1, c2, c3 = st.columns(3)
modes = c1.multiselect("Modes", list(CONSOLE_MODES), default=list(CONSOLE_MODES), key="eval_modes")
k = int(c2.number_input("k (results per query)", min_value=1, max_value=100, value=10, key="eval_k"))
stat_test = c3.selectbox("Paired test", STAT_TESTS, key="eval_test",
                         help="student: paired t-test; fisher: randomisation test; tukey: Tukey's HSD")
fusions = st.multiselect("Hybrid's fusion (several: one hybrid column each)", list(FUSIONS), default=[DEFAULT_FUSION],
                         key="eval_fusions", help="weighted-rrf: each branch's reciprocal ranks weighted by how far "
                         "it can be trusted for the query (the backend's default); rrf: plain reciprocal rank fusion "
                         "(k = 60); convex: 0.5 x each branch's min-max normalised score")


@st.cache_resource(max_entries=4, show_spinner="Reading the run's vectors…")
def _run(path: str, mtime_ns: int, label: str):
    return load_run(path, label)


def _compute():
    by_run = {f.run_id: f for f in files if f.type == type_}
    missing = [r for r in chosen if r not in by_run]
    if missing:
        raise ConsoleError(f"run {missing[0]} has no {type_} vectors: generate them, or pick another run or type")
    loaded = [_run(str(by_run[r].path), by_run[r].path.stat().st_mtime_ns, r) for r in chosen]
    encoders = []
    for run in loaded:
        if not run.meta.get("model"):
            raise ConsoleError(f"{run.path.name} of run {run.label} has no .meta.json naming its model: the queries "
                               "cannot be embedded")
        encoders.append(query_encoder(common.embedder(run.meta["model"], run.meta.get("dimensions"))))
    query_set = read_query_set(sets[set_name])
    return evaluate_console(query_set, loaded, modes, k, encoders, stat_test=stat_test,
                            fusions=fusions or [DEFAULT_FUSION])


if st.button("Evaluate", type="primary", disabled=not chosen or not modes, key="eval_go"):
    try:
        with st.spinner("Ranking the queries and scoring them (the first time compiles ranx's metrics)…"):
            st.session_state["eval_result"] = _compute()
    except ConsoleError as exc:
        st.session_state.pop("eval_result", None)
        st.error(str(exc))

result = st.session_state.get("eval_result")
if result is None:
    st.stop()
ev = result.evaluation
st.subheader(f"{ev.query_set}: {ev.n_queries} queries, k = {k}")
st.dataframe(pd.DataFrame([{"mode": mode, **{m: round(ev.scores[mode][m], 4) for m in ev.metrics}}
                           for mode in ev.modes]), hide_index=True, width="stretch", key="eval_scores")
if ev.comparisons():
    st.caption(f"Paired {ev.stat_test} test between every two modes; significant when p < 0.05.")
    st.dataframe(pd.DataFrame([{
        "mode": r["mode"], "against": r["against"], "metric": r["metric"], "difference": round(r["difference"], 4),
        "p": None if r["p_value"] is None else round(r["p_value"], 4), "significant": r["significant"],
        "better / same / worse": f"{r['wins']} / {r['ties']} / {r['losses']}"} for r in ev.comparisons()]),
        hide_index=True, width="stretch", key="eval_tests")
if ev.by_kind:
    first = ev.metrics[0]
    st.caption(f"{first} per kind of query (the query set's `kind`)")
    st.dataframe(pd.DataFrame([{"kind": kind, "queries": sub.n_queries,
                                **{mode: round(sub.scores[mode][first], 4) for mode in sub.modes}}
                               for kind, sub in ev.by_kind.items()]), hide_index=True, width="stretch",
                 key="eval_kinds")
for note in ev.notes:
    st.caption(note)
if result.neighbours:
    n = result.neighbours
    st.metric(f"Neighbour overlap of the two runs ({n['items']:,} items, k = {n['k']})", f"{n['mean']:.1%}",
              help="share of each item's k nearest neighbours that both runs agree on (mean over a sample)")
if result.compared:
    first, second = result.compared
    st.subheader(f"Where {first} and {second} disagree most")
    st.dataframe(pd.DataFrame([{
        "query": r["query"], "top-k overlap": round(r["overlap"], 2), f"only {first}": ", ".join(r["only_first"]),
        f"only {second}": ", ".join(r["only_second"])} for r in result.overlap[:20]]),
        hide_index=True, width="stretch", key="eval_overlap")
