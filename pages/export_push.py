"""Export & push: download the embeddings, or push them into Neo4j (directly or through the backend)."""
import os

import streamlit as st

from console.explore import curation
from console.files.embfiles import file_stem, read_meta
from console.errors import ConsoleError
from console.sinks.neo4j.settings import Neo4jSettings
from console.sinks.push import (
    check_neo4j_target,
    credential_for,
    import_endpoint,
    push_to_backend,
    push_to_neo4j,
    same_target,
)
from pages import common

ws = common.page_workspace()
st.title("Export & push")
chosen = common.pick_output(ws, "Embeddings", key="push_file")
if chosen is None:
    st.stop()
meta = read_meta(chosen.path) or {}
st.caption(f"`{chosen.path}` · {meta.get('count', '?')} items · {meta.get('dimensions', '?')} dimensions · "
           f"model `{meta.get('model', '?')}`")


@st.cache_data(max_entries=8, show_spinner=False)
def _file_ids(path: str, mtime_ns: int) -> frozenset:
    return frozenset(curation.file_ids(path))


try:  # the run's exclusions (set on the Explore page): left out of downloads and pushes
    excluded = frozenset(curation.read_exclusions(curation.exclusions_path(chosen.path)))
except ConsoleError as exc:  # a broken exclusions.jsonl: nothing goes out until it is fixed
    st.error(f"{exc}. Downloads and pushes of this run wait until the file is fixed or removed.")
    st.stop()
try:
    left_out = len(excluded & _file_ids(str(chosen.path), chosen.path.stat().st_mtime_ns)) if excluded else 0
except ConsoleError as exc:  # a damaged embedding file
    st.error(str(exc))
    st.stop()
if left_out:
    st.info(f"{left_out} excluded item{'s' if left_out != 1 else ''} left out of downloads and pushes (excluded on "
            f"the Explore page; listed in {curation.EXCLUSIONS_FILE} in the run's folder; the run's vectors are "
            "kept).")

st.subheader("Download")


def _file_for(fmt: str):
    """Read (or convert, once) only when the button is pressed; without the excluded items."""
    return lambda: curation.export_file(ws, chosen.path, fmt)[0].read_bytes()


mimes = {"json": "application/json", "jsonl": "application/jsonl", "parquet": "application/vnd.apache.parquet"}
for col, fmt in zip(st.columns(3), mimes):
    col.download_button(f"{file_stem(chosen.type)}.{fmt}", data=_file_for(fmt), mime=mimes[fmt],
                        file_name=f"{file_stem(chosen.type)}.{fmt}", key=f"download-{fmt}", icon="⬇️")

st.subheader("Push")
target = st.radio("Into", ["Neo4j (Bolt)", "The backend's import endpoint"], horizontal=True)
configured = common.secret("neo4j", None) or {}
if target.startswith("Neo4j"):
    env = {k: os.environ.get(f"NEO4J_{k.upper()}") for k in ("uri", "user", "database")}
    env["password"] = common.stored_secret("NEO4J_PASSWORD")  # or NEO4J_PASSWORD_FILE (mode 600)
    defaults = {k: env[k] or configured.get(k) for k in env}
    configured_uri = defaults["uri"] or Neo4jSettings.uri
    c1, c2, c3, c4 = st.columns(4)
    uri = c1.text_input("URI", value=configured_uri)
    user = c2.text_input("User", value=defaults["user"] or "neo4j")
    password = c3.text_input("Password", type="password", key="neo4j_password",  # a fixed placeholder keeps it typed
                             placeholder="from settings (configured URI)" if defaults["password"] else "")
    database = c4.text_input("Database", value=defaults["database"] or "neo4j")
    if defaults["password"] and not same_target(uri, configured_uri):
        st.caption(f"Not the configured Neo4j ({configured_uri}): type this server's password (NEO4J_PASSWORD is "
                   "only sent to the configured one).")
    destination = f"{uri} ({database})"

    def settings() -> Neo4jSettings:
        secret = credential_for(uri, password, configured_uri, defaults["password"] or "", "NEO4J_PASSWORD")
        return Neo4jSettings(uri=uri, user=user, password=secret, database=database)

    if st.button("Test connection"):
        try:
            check = check_neo4j_target(settings(), chosen.type, meta.get("dimensions"))
        except ConsoleError as exc:  # unreachable, refused, a stored password for another server
            st.error(str(exc))
        else:
            (st.success if check.level == "success" else st.warning)(check.message)

    def push(dry_run, progress):
        return push_to_neo4j(chosen.path, settings(), dry_run=dry_run, progress=progress, exclude=excluded)
else:
    configured_url = os.environ.get("BACKEND_URL") or common.secret("backend_url", "") or "http://127.0.0.1:8000"
    stored_token = common.stored_secret("EMBEDDINGS_IMPORT_TOKEN") or common.secret("embeddings_import_token", "") or ""
    url = st.text_input("Backend URL", value=configured_url)
    token = st.text_input("Import token", type="password", key="import_token",
                          placeholder="from settings (configured URL)" if stored_token else "")
    if stored_token and not same_target(url, configured_url):
        st.caption(f"Not the configured backend ({configured_url}): type this backend's import token "
                   "(EMBEDDINGS_IMPORT_TOKEN is only sent to the configured one).")
    destination = import_endpoint(url)

    def push(dry_run, progress):
        secret = credential_for(destination, token, configured_url, stored_token, "EMBEDDINGS_IMPORT_TOKEN")
        return push_to_backend(chosen.path, destination, secret, dry_run=dry_run, progress=progress,
                               exclude=excluded)

key = f"{chosen.path}|{destination}|{curation.digest(excluded)}"  # other exclusions: preview again
previews = st.session_state.setdefault("push_previews", {})
c1, c2 = st.columns(2)
preview_clicked = c1.button("Preview (dry run)")
write_clicked = c2.button("Push", type="primary", disabled=key not in previews,
                          help="Run the preview first: it checks every vector and writes nothing.")


def run(dry_run: bool):
    bar = st.progress(0.0, text="Starting…")

    def progress(done, total):
        bar.progress(min(1.0, done / total) if total else 0.0, text=f"{done} / {total or '?'} vectors")
    try:
        report = push(dry_run, progress)
    except ConsoleError as exc:  # unreachable, refused, dimension mismatch, unreadable file
        bar.empty()
        st.error(str(exc))
        return None
    except Exception as exc:  # noqa: BLE001 - a message, not a traceback
        bar.empty()
        st.error(f"The push stopped: {type(exc).__name__}: {exc}. Vectors written so far are kept; press again "
                 "to go on (unchanged vectors are skipped).")
        return None
    bar.progress(1.0, text=f"{report.total} / {report.total} vectors")
    return report


report = None
if preview_clicked:
    report = run(dry_run=True)
    if report is not None:
        previews[key] = report
        st.rerun()
elif write_clicked:
    report = run(dry_run=False)
    if report is not None:
        st.success(f"Pushed to {destination}: {report.summary()}. Pressing Push again is safe: unchanged vectors "
                   "are not written twice.")
if key in previews and report is None:
    st.info(f"Preview for {destination}: {previews[key].summary()}.")
    report = previews[key]
if report is not None:
    st.dataframe(common.report_table(report), hide_index=True)
    if report.unknown_ids:
        st.warning(f"{report.unknown_count} ids are not in the graph (first: {', '.join(report.unknown_ids[:5])}): "
                   "load or export the data again so that ids match.")
    if report.rejected:
        st.warning("Rejected: " + "; ".join(f"{r['id']}: {r['reason']}" for r in report.rejected[:5]))
