"""Generate: choose the model and options, run in the background, follow the progress, stop and resume."""
import os
from pathlib import Path

import streamlit as st

from console.errors import InputError
from console.app.jobs import Job, JobLimitError, JobSpec, batch_size_advice, list_jobs
from console.generation.models import MODEL_ROOTS_ENV, local_models, model_source
from console.options import OPTIONS
from console.app.workspace import FolderNotAllowed, folder_input_files
from pages import common

ws = common.page_workspace()
st.title("Generate embeddings")

state = common.choices()  # this browser session's (the Upload page sets source and folder)
input_dir = None
if state.get("source") == "folder" and state.get("input_dir"):
    try:  # only under CONSOLE_DATA_ROOTS; the run gets the files, not the folder
        inputs = [str(p) for p in folder_input_files(state["input_dir"])]
        st.write(f"Input: the export files in the server folder `{state['input_dir']}` (change it on the Upload page).")
    except (FolderNotAllowed, InputError) as exc:
        inputs = []
        st.error(str(exc))
else:
    uploads = ws.list_uploads()
    names = [f.name for f in uploads]
    unreadable = {row["file"] for row in common.inspect([f.path for f in uploads]).files if row["error"]}
    if unreadable:
        st.warning(f"{len(unreadable)} uploaded file{'s' if len(unreadable) > 1 else ''} cannot be read ({', '.join(sorted(unreadable))}): they are "
                   "not selected. The Upload page says why; remove or fix them there.")
    picked = st.multiselect("Input files (uploaded)", names, default=[n for n in names if n not in unreadable],
                            format_func=lambda n: f"{n} — unreadable" if n in unreadable else n)
    inputs = [str(ws.uploads / n) for n in picked]
    if not names:
        st.info("Upload export files first (Upload page).")

advice = st.cache_data(ttl=30, show_spinner=False)(batch_size_advice)()
O = OPTIONS  # labels, choices, help and the console's defaults: console/options.py


def _pick(widget, name: str, **kw):
    """A choice widget for one option of the table: its label, choices, the console's default and help."""
    o = O[name]
    return widget(o.label, o.choices, index=o.choices.index(o.web_default), help=o.help, **kw)


OTHER = "other"  # the picker's last choice: a model id or folder typed in the field below it


@st.cache_data(ttl=60, show_spinner=False)
def _local_models(roots: str | None, cache: str | None):  # the settings are the cache key
    return local_models()


def _model_field() -> str:
    """The model: one of those available here (picker), or "other…" and a typed id or folder (text field)."""
    here = {m.name: m.label for m in _local_models(os.environ.get(MODEL_ROOTS_ENV), os.environ.get("HF_HUB_CACHE"))}
    wanted = state.get("model", O["model"].web_default)
    if "model_pick" not in st.session_state or st.session_state["model_pick"] not in [*here, OTHER]:
        st.session_state["model_pick"] = wanted if wanted in here else OTHER
    picked = st.selectbox(O["model"].label, [*here, OTHER], key="model_pick", help=O["model"].help,
                          format_func=lambda n: here.get(n, "other… (a model id or a folder on this server)"))
    if picked != OTHER:
        return picked
    st.session_state.setdefault("model_other", wanted if wanted not in here else "")
    return st.text_input("Model id or folder", key="model_other", placeholder=O["model"].web_default)


model = _model_field()
source = model_source(model) if model.strip() else None  # a download is said; refused offline or without the hub
if source is not None and source.kind in ("download", "unavailable"):
    st.warning(source.message)

with st.form("generate"):
    c1, c2, c3, c4 = st.columns(4)
    device = _pick(c1.selectbox, "device")
    dtype = _pick(c2.selectbox, "dtype")
    batch_size = c3.number_input(O["batch_size"].label, min_value=1, max_value=4096, value=advice.suggested,
                                 help=O["batch_size"].help)
    dimensions = c4.number_input(O["dimensions"].label, min_value=0, max_value=8192, value=0,
                                 help=O["dimensions"].help)
    st.caption(advice.text)
    c5, c6, c7, c8 = st.columns(4)
    backend = _pick(c7.selectbox, "backend")
    quantize = _pick(c8.selectbox, "quantize")
    formats = c5.multiselect(O["formats"].label, O["formats"].choices, default=list(O["formats"].web_default),
                             help=O["formats"].help)
    on_invalid = _pick(c6.radio, "on_invalid", horizontal=True)
    with st.expander("Advanced"):
        max_tokens = st.number_input(O["max_tokens"].label, min_value=0, max_value=10_000_000, value=0, step=1024,
                                     key="max_tokens", help=O["max_tokens"].help)
    ray_address = os.environ.get("CONSOLE_RAY_ADDRESS")  # a Ray cluster offers the Ray engine (docs/SCALING.md)
    engine = _pick(st.radio, "engine", horizontal=True) if ray_address else "local"
    start = st.form_submit_button("Start", type="primary", disabled=not (inputs or input_dir))

if start:
    if not model.strip():
        st.error("Enter a model name or folder.")
    elif not formats:
        st.error("Choose at least one output format.")
    elif not source.may_start:
        st.error(f"Not started: {source.message}")
    else:
        common.remember("model", model.strip())
        run_dir = ws.new_run_dir("-".join(Path(model.strip()).parts[-2:]))
        spec = JobSpec(output_dir=str(run_dir), inputs=inputs, input_dir=input_dir, model=model.strip(),
                       device=device, dtype=dtype, batch_size=int(batch_size), max_tokens=int(max_tokens) or None,
                       dimensions=int(dimensions) or None,
                       formats=formats, on_invalid=on_invalid, engine=engine, backend=backend, quantize=quantize,
                       ray_address=ray_address if engine == "ray" else None)
        try:
            Job.start(spec)
            st.session_state["shown_run"] = run_dir.name  # show the new run, whatever was shown before
        except JobLimitError as exc:
            run_dir.rmdir()
            st.error(f"Not started: {exc}.")

jobs = list_jobs(ws.runs)
if not jobs:
    st.stop()
st.divider()
ids = [j.id for j in jobs]
running = [j.id for j in jobs if j.is_running()]
if st.session_state.get("shown_run") not in ids:
    st.session_state["shown_run"] = running[0] if running else ids[0]
labels = {j.id: common.run_label(j, count=False) for j in jobs}  # stable texts (the count is in the caption below)
run_id = st.selectbox("Run", ids, key="shown_run", format_func=labels.__getitem__)
job = common.job_for(ws, run_id)
st.caption(f"{common.run_label(job)} · run folder: `{job.run_dir}`")


def _eta(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _model_reason(status) -> str:
    """The engine's reason without the command line's advice ("cannot load model 'x': <reason> — pass --model …")."""
    reason = (status.message or "").removeprefix("error: ").split(" — ")[0]
    return reason.split(": ", 1)[1] if reason.startswith("cannot load model") and ": " in reason else reason


@st.fragment(run_every=1 if job.is_running() else None)
def monitor():
    status = job.status()
    spec = job.spec
    st.markdown(f"**{common.STATE_ICONS.get(status.state, '')} {status.state.capitalize()}** · model `{spec.model}` · "
                f"batch size {status.batch_size or spec.batch_size}")
    rate = f"{status.rate:.1f} items/s" if status.rate else "— items/s"
    st.progress(status.fraction, text=f"Overall: {status.done} / {status.total} · {rate} · ETA {_eta(status.eta_s)}")
    for type_, f in status.files.items():
        done, total = f.get("done", 0), f.get("total", 0)
        st.progress(min(1.0, done / total) if total else 0.0, text=f"{type_}: {done} / {total}")
    if status.gpu_mem_mb:
        st.caption(f"GPU memory: {status.gpu_mem_mb:,.0f} MB")
    if status.model_failed:  # said in the page's terms: Resume would fail the same way, so it is not offered
        st.error(f"The model `{spec.model}` could not be loaded, so nothing was embedded: {_model_reason(status)}. "
                 "Resume would fail the same way: pick another model above (one available on this server) and "
                 "Start a new run.")
        with st.expander("Log"):
            st.code(job.log_tail(40), language=None)
    elif status.state == "failed":
        st.error(status.message or "The run failed.")
        with st.expander("Log"):
            st.code(job.log_tail(40), language=None)
    elif status.message:
        st.info(status.message)
    if status.state in ("running", "starting"):
        if st.button("Stop", key="stop"):
            job.stop()
            st.rerun()
    elif status.resumable:
        if st.button("Resume", key="resume", type="primary"):
            try:
                job.resume()
            except JobLimitError as exc:
                st.error(f"Not resumed: {exc}.")
            else:
                st.rerun()
    if status.state == "done":
        outputs = sorted(p.name for p in Path(job.run_dir).glob("embeddings_*") if p.is_file())
        st.success(f"Done: {status.done} items embedded. Files in `{job.run_dir}`: {', '.join(outputs)}. "
                   "Next: Explore, or Export & push.")
    if status.state not in ("running", "starting") and job.is_running() is False and st.session_state.get(
            "was_running") == run_id:
        st.session_state.pop("was_running")
        st.rerun()
    if status.state in ("running", "starting"):
        st.session_state["was_running"] = run_id


monitor()
