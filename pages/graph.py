"""Graph: the graph schema the console works with (each type's label, properties, vectors, filters and file), and a
starting schema read from the configured Neo4j (the console's view of `manage.py inspect_graph`)."""
import pandas as pd
import streamlit as st

from console.errors import ConsoleError
from console.graphschema import SchemaError, load_schema
from console.sinks.neo4j.inspect import read_graph
from pages import common

st.title("Graph")
try:
    schema = load_schema()
except SchemaError as exc:
    st.error(str(exc))
    st.stop()
st.caption(f"The graph schema in use: {schema.source} (GRAPH_SCHEMA_FILE, or the demo's). The export's file names, "
           "validation, the push and the backend's search all read it; README: \"Use it on your own graph\".")
st.dataframe(pd.DataFrame([
    {"type": name, "label": t.label, "id": t.id, "title": t.title, "file": t.file,
     "vector": f"{t.vector_property} ({t.vector_index})", "full-text": ", ".join(t.fulltext),
     "filters": ", ".join(t.filters), "text": " ".join(t.text)}
    for name, t in schema.types.items()]), hide_index=True, width="stretch")

st.subheader("Start a schema from your graph")
settings = common.configured_neo4j()
st.caption(f"Reads the configured Neo4j ({settings.uri}, database {settings.database}): labels with node counts, "
           "properties with fill rate and type, relationships, vector and full-text indexes; writes a commented "
           "schema file to edit and point GRAPH_SCHEMA_FILE at.")
if st.button("Read the graph", icon=":material/travel_explore:"):
    try:
        with st.spinner("Reading the graph…"):
            st.session_state["graph_read"] = read_graph(settings)
    except ConsoleError as exc:
        st.error(str(exc))
if "graph_read" in st.session_state:
    info, text = st.session_state["graph_read"]
    st.dataframe(pd.DataFrame([{"label": i.label, "nodes": i.count, "properties": len(i.properties),
                                "relationships out": ", ".join(f"{r} -> {o}" for r, o, _ in i.out)}
                               for i in info.labels]), hide_index=True, width="stretch")
    st.download_button("schema.toml", data=text, file_name="schema.toml", mime="application/toml",
                       icon=":material/download:")
    st.code(text, language="toml")

st.subheader("Freshness")
st.caption("Per type, in the configured Neo4j: nodes whose vector is current, stale (the text changed since), "
           "missing, or made by another model than the type's recorded one, and those the app marked changed. "
           "\"Embed what is out of date\" embeds them here (this machine's GPU or CPU) with the recorded model, "
           "straight from Neo4j to Neo4j; stop it with any click, and press it again to go on where it stopped.")
if st.button("Count", icon=":material/fact_check:"):
    try:
        st.session_state["freshness"] = common.freshness_table(settings, list(schema.types))
    except ConsoleError as exc:
        st.error(str(exc))
        st.session_state.pop("freshness", None)
if done := st.session_state.pop("sync_done", None):
    st.success(done)
if "freshness" in st.session_state:
    table = st.session_state["freshness"]
    st.dataframe(table, hide_index=True, width="stretch")
    behind = [row["type"] for row in table.to_dict("records") if row["model"] and row["out of date"]]
    if behind:
        type_ = st.selectbox("Type", behind)
        if st.button(f"Embed what is out of date ({type_})", type="primary", icon=":material/sync:"):
            report = common.run_sync(settings, type_)
            if report is not None:
                st.session_state["sync_done"] = report.summary()
                st.session_state["freshness"] = common.freshness_table(settings, list(schema.types))
                st.rerun()
