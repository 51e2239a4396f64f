"""Upload: export files in, per-file counts, a preview and the validation report before anything runs."""
from pathlib import Path

import pandas as pd
import streamlit as st

from console.errors import InputError
from console.app.workspace import FolderNotAllowed, data_roots, folder_input_files
from pages import common

ws = common.page_workspace()
st.title("Upload export files")
st.write(
    "Drop the files written by `manage.py export_data_for_embeddings` (JSON array, JSON Lines or CSV, each record "
    "with `id`, `type` and `text`), or read them from a folder on this server. They are kept in the work folder."
)

uploaded = st.file_uploader(
    "Export files", type=["json", "jsonl", "ndjson", "csv"], accept_multiple_files=True, key="uploader"
)
saved = st.session_state.setdefault("saved_upload_ids", set())
new_upload = False
for f in uploaded or []:
    if f.file_id in saved:
        continue
    try:
        path = ws.save_upload(f.name, f)
    except (ValueError, OSError) as exc:
        st.error(f"{f.name}: not saved: {exc}")
        continue
    saved.add(f.file_id)
    st.toast(f"Saved {path.name} in the work folder")
    new_upload = True

state = common.choices()  # this browser session's, not shared with other visitors
SOURCES = {"uploads": "Uploaded files", "folder": "A folder on the server"}
if new_upload:  # a file just dropped is what the operator wants to see validated
    common.remember("source", "uploads")
    st.session_state["source_radio"] = SOURCES["uploads"]
if "source_radio" not in st.session_state:  # the widget's own key holds the choice; seeded once from this session's
    st.session_state["source_radio"] = SOURCES[state.get("source", "uploads")]
# no index= next to the key: a default recomputed on every run made the widget's identity change with the choice,
# so that the first click back was lost (it took two)
source = st.radio("Generate from", list(SOURCES.values()), horizontal=True, key="source_radio")
paths: list[Path] = []
if source == SOURCES["uploads"]:
    common.remember("source", "uploads")
    files = ws.list_uploads()
    if not files:
        st.info("No files uploaded yet.")
    for f in files:
        left, right = st.columns([6, 1])
        left.write(f":material/description: **{f.name}** · {common.human_size(f.size)} · uploaded {f.modified:%Y-%m-%d %H:%M} UTC")
        if right.button("Remove", key=f"remove-{f.name}"):
            ws.remove_upload(f.name)
            st.rerun()
    paths = [f.path for f in files]
else:
    common.remember("source", "folder")
    roots = data_roots()
    if roots:
        st.caption("Allowed folders (CONSOLE_DATA_ROOTS): " + ", ".join(f"`{r}`" for r in roots))
    if "input_dir_text" not in st.session_state:  # the widget's key holds the text (seeded from this session's)
        st.session_state["input_dir_text"] = state.get("input_dir", "")
    folder = st.text_input("Folder on the server", key="input_dir_text",
                           placeholder=str(roots[0]) if roots else "", disabled=not roots)
    common.remember("input_dir", folder)
    if not roots or folder:
        try:
            paths = folder_input_files(folder, roots)
        except (FolderNotAllowed, InputError) as exc:
            st.error(str(exc))

if paths:
    summary = common.inspect(paths)

    st.subheader("Files")
    table = pd.DataFrame(summary.files).drop(columns="error").fillna(0)
    table[table.columns[1:]] = table[table.columns[1:]].astype(int)
    st.dataframe(table, hide_index=True, width="stretch")
    for row in summary.files:
        if row["error"]:
            st.error(row["error"])

    st.subheader("Validation")
    per_type = ", ".join(f"{n} {t}" for t, n in summary.counts.items()) or "none"
    cols = st.columns(5)
    cols[0].metric("Valid records", summary.valid)
    for col, (kind, n) in zip(cols[1:], summary.problems.items()):
        col.metric(kind.capitalize(), n)
    if summary.invalid:
        st.warning(
            f"{summary.valid} valid records ({per_type}); {summary.invalid} problems. The Generate page skips the "
            "invalid records and lists them in rejects.jsonl in the run folder, or stops if you ask it to."
        )
        with st.expander(f"Problems ({summary.invalid})", expanded=True):
            st.code("\n".join(summary.rejects), language=None)
    else:
        st.success(f"All {summary.valid} records are valid ({per_type}). Next: the Generate page.")

    if summary.outside_schema:
        unknown = ", ".join(f"{n} {t}" for t, n in summary.outside_schema.items())
        st.warning(
            f"Not in the graph schema ({summary.schema_source}): {unknown}. These records can be embedded and "
            "downloaded, but a push or an import leaves them out. Add a [types.<name>] table for each to the "
            "schema file (GRAPH_SCHEMA_FILE), or correct the records' \"type\"."
        )

    st.subheader("Preview")
    st.dataframe(pd.DataFrame(summary.preview), hide_index=True, width="stretch")
