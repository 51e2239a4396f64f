"""UI helpers shared by the pages (not a page itself: app.py lists the pages with st.navigation)."""
from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from console.app import access
from console.app.jobs import Job, list_jobs
from console.app.workspace import EmbeddingFile, InputSummary, Workspace, human_size, inspect_inputs
from console.graphschema import load_schema

STATE_ICONS = {"running": ":material/autorenew:", "starting": ":material/hourglass_top:", "done": ":material/check_circle:",
               "failed": ":material/error:", "stopped": ":material/pause_circle:", "interrupted": ":material/warning:"}
FORMAT_PREFERENCE = ("npy", "parquet", "jsonl", "json")  # fastest to read first


def workspace() -> Workspace:
    return Workspace()


def page_workspace() -> Workspace:
    """What every page calls first: the sign-in (again), then the work folder.

    app.py signs the visitor in before ``st.navigation``. But until a visit of this server process has run that
    ``st.navigation``, Streamlit treats a project with a ``pages/`` folder as an app of its first multipage kind and
    runs ``pages/<name>.py`` straight from a URL such as ``/export_push``, without app.py: a new server's first
    visitor would get that page unsigned. Here such a run switches Streamlit's flag for that mode off (the flag
    ``st.navigation`` itself clears), and a session's first run reruns through app.py so that the visitor gets the
    console's navigation (a later run is not rerun: that would drop its button click); the page checks the sign-in
    itself as well. (Streamlit's AppTest sets that mode again on every run of an app with a pages/ folder.)"""
    from streamlit.runtime.pages_manager import PagesManager

    first_run = not st.session_state.get("page_run_before")
    st.session_state["page_run_before"] = True
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if first_run:
            st.rerun()
    if not password_gate():
        st.stop()
    return workspace()


def secret(name: str, default=None):
    """A value from Streamlit secrets (.streamlit/secrets.toml), or ``default`` when there is none."""
    try:
        return st.secrets.get(name, default)
    except Exception:  # noqa: BLE001 - no secrets file at all
        return default


def configured_neo4j():
    """The Neo4j the console is configured for: NEO4J_* (NEO4J_PASSWORD or NEO4J_PASSWORD_FILE), else the
    ``[neo4j]`` table of .streamlit/secrets.toml."""
    from console.sinks.neo4j.settings import Neo4jSettings

    configured = secret("neo4j", None) or {}
    values = {k: os.environ.get(f"NEO4J_{k.upper()}") or configured.get(k) for k in ("uri", "user", "database")}
    password = stored_secret("NEO4J_PASSWORD") or configured.get("password") or ""
    return Neo4jSettings(uri=values["uri"] or Neo4jSettings.uri, user=values["user"] or "neo4j", password=password,
                         database=values["database"] or "neo4j")


def freshness_table(settings, types: list[str]) -> pd.DataFrame:
    """The Graph page's freshness table: one row per type (console.sinks.neo4j.sync.freshness)."""
    from console.sinks.neo4j.store import Neo4jStore
    from console.sinks.neo4j.sync import freshness

    with Neo4jStore(settings) as store:
        counts = [freshness(store, t) for t in types]
    return pd.DataFrame([{"type": c.type, "model": c.model or "", "nodes": c.nodes, "current": c.current,
                          "stale": c.stale, "missing": c.missing, "other model": c.other_model, "marked": c.marked,
                          "out of date": c.out_of_date + c.marked} for c in counts])


def run_sync(settings, type_: str):
    """Embed a type's out-of-date nodes here, with a progress bar (counts, rate, ETA); None after an error."""
    import time

    from console.cli import sync_here
    from console.errors import ConsoleError
    from console.sinks.neo4j.store import Neo4jStore
    from console.sinks.neo4j.sync import freshness

    bar, started = st.progress(0.0, text="Loading the model…"), time.monotonic()
    try:
        with Neo4jStore(settings) as store:
            total = max(1, freshness(store, type_).to_embed())

            def progress(done: int, _reason: str) -> None:
                rate = done / max(time.monotonic() - started, 1e-9)
                bar.progress(min(1.0, done / total), text=f"{done:,} of {total:,} nodes, {rate:.1f}/s, "
                                                          f"ETA {max(0.0, (total - done) / rate):.0f} s")
            return sync_here(store, type_, progress=progress)
    except ConsoleError as exc:
        st.error(str(exc))
        return None


def expected_password() -> str | None:
    return access.configured_password(secret("console_password"))


def password_gate() -> bool:
    """True when the visitor may see the console: the address is loopback or a password is set, and then no
    password is configured or the right one was given. Wrong passwords are throttled (console.app.access.Throttle)
    per session and per server process. app.py calls this before st.navigation, so no page URL gets around it."""
    try:
        expected = expected_password()
    except access.AccessError as exc:
        st.error(f"The console cannot start: {exc}")
        return False
    address = st.get_option("server.address")
    if not expected and not access.is_loopback(address):
        st.title("Embedding console")
        st.error(f"The console listens on {address or 'every network interface'} without a password, so it shows "
                 f"nothing: {access.HOW_TO_SET_A_PASSWORD}.")
        return False
    if not expected or st.session_state.get("signed_in"):
        return True
    st.title("Embedding console")
    session = st.session_state.setdefault(
        "login_throttle", access.Throttle(max_failures=access.SESSION_MAX_FAILURES))
    with st.form("sign-in"):
        given = st.text_input("Password", type="password")
        if st.form_submit_button("Sign in"):
            wait = max(session.wait_s(), access.PROCESS_THROTTLE.wait_s())
            if wait:
                st.error(f"Too many wrong passwords: try again in {math.ceil(wait)} s.")
            elif access.password_matches(given, expected):
                st.session_state["signed_in"] = True
                st.rerun()
            else:
                session.failed()
                access.PROCESS_THROTTLE.failed()
                st.error("Wrong password.")
    return False


def stored_secret(name: str) -> str | None:
    """``name`` or the file ``<name>_FILE`` names (mode 600); a file that is unreadable or too open stops the page
    with what to do."""
    try:
        return access.secret_env(name)
    except access.AccessError as exc:
        st.error(str(exc))
        st.stop()


def choices() -> dict:
    """This browser session's choices (input source, server folder, model): not shared with other visitors."""
    return st.session_state.setdefault("choices", {})


def remember(key: str, value) -> None:
    choices()[key] = value


def run_label(job: Job, count: bool = True) -> str:
    """A run as people name it: "model · start time · N items" (the folder name is the detail shown next to it)."""
    spec, status = job.spec, (job.status() if count else None)
    model = "/".join(Path(spec.model.rstrip("/")).parts[-2:]) if spec else "?"  # a repo id, or folder's parent/name
    try:
        started = datetime.fromisoformat(job.record()["created_at"]).strftime("%Y-%m-%d %H:%M UTC")
    except (KeyError, TypeError, ValueError):
        started = job.id
    return f"{model} · {started}" + (f" · {status.total or status.done:,} items" if count else "")


def sidebar(ws: Workspace) -> None:
    """The work folder and what it holds, on every page."""
    with st.sidebar:
        st.caption(f"Work folder: `{ws.root}`")
        uploads = ws.list_uploads()
        with st.expander(f"Uploads ({len(uploads)})", expanded=False):
            for f in uploads:
                st.caption(f"{f.name} · {human_size(f.size)}")
        _sidebar_runs(ws)


def _sidebar_runs(ws: Workspace) -> None:
    """The runs and their progress; refreshed every 2 s on its own while one runs (the page around it does not)."""
    jobs = list_jobs(ws.runs)
    running = any(job.is_running() for job in jobs[:20])

    @st.fragment(run_every=2 if running else None)
    def runs() -> None:
        shown = list_jobs(ws.runs)
        with st.expander(f"Runs ({len(shown)})", expanded=bool(shown)):
            for job in shown[:20]:
                status = job.status()
                st.caption(f"{STATE_ICONS.get(status.state, '')} {run_label(job)} · {status.state} · "
                           f"{status.done}/{status.total}", help=f"Run folder: {job.run_dir}")
        if running and not any(job.is_running() for job in shown[:20]):
            st.rerun(scope="app")  # the last run ended: stop refreshing (a fragment keeps its run_every)

    runs()


def outputs_by_run_and_type(ws: Workspace) -> dict[str, EmbeddingFile]:
    """One embedding file per (run, type): the fastest format to read. Keys are "<run> / <type>"."""
    best: dict[str, EmbeddingFile] = {}
    for f in ws.embedding_files():
        key = f"{f.run_id} / {f.type}"
        if key not in best or FORMAT_PREFERENCE.index(f.format) < FORMAT_PREFERENCE.index(best[key].format):
            best[key] = f
    return best


def pick_output(ws: Workspace, label: str, key: str) -> EmbeddingFile | None:
    choices = outputs_by_run_and_type(ws)
    if not choices:
        st.info("No embeddings yet: generate some on the Generate page (they are kept in the work folder).")
        return None
    name = st.selectbox(label, list(choices), key=key)
    return choices[name]


@st.cache_resource(show_spinner="Loading the model (once per server process)…", max_entries=2)
def embedder(model: str, dimensions: int | None = None, device: str = "auto"):
    """The model, loaded once per process and shared by every session (for query search)."""
    from console.generation.engine import Embedder

    return Embedder(model, device=device, dimensions=dimensions)


@st.cache_data(show_spinner="Reading and validating the files…", max_entries=8)
def _inspect(stamp: tuple, schema_types: tuple) -> InputSummary:
    return inspect_inputs([path for path, _, _ in stamp])


def inspect(paths) -> InputSummary:
    """The input summary, cached until a file changes (name, size or modification time) or the graph schema's
    types do."""
    schema = load_schema()
    return _inspect(tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths),
                    (schema.source, *schema.types))


def report_table(report) -> pd.DataFrame:
    """One row of a push's counts; with exclusions, also the excluded items and their vectors cleared in Neo4j."""
    data = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    dry_run = data.get("dry_run")
    row = {
        "written" if not dry_run else "would write": data.get("written", 0),
        "unchanged": data.get("unchanged", 0),
        "unknown ids": data.get("unknown_count", len(data.get("unknown_ids") or [])),
        "rejected": data.get("rejected_count", len(data.get("rejected") or [])),
    }
    if data.get("excluded") or data.get("cleared"):
        row["excluded"] = data.get("excluded", 0)
        row["cleared" if not dry_run else "would clear"] = data.get("cleared", 0)
    return pd.DataFrame([row])


def job_for(ws: Workspace, run_id: str) -> Job:
    return Job(ws.runs / run_id)
