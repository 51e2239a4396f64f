"""The embedding console: `streamlit run app.py` (settings in .streamlit/config.toml).

Upload export files, generate embeddings in the background with progress, explore them on a UMAP map with a
similarity preview, download them or push them into Neo4j. Everything is kept in the work folder
(env CONSOLE_WORKDIR, default ./work). It listens on 127.0.0.1 (.streamlit/config.toml); on any
other address it shows no page until CONSOLE_PASSWORD (or CONSOLE_PASSWORD_FILE, or `console_password` in
.streamlit/secrets.toml) is set, and then asks for it (pages/common.py password_gate, console/app/access.py).
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import streamlit as st  # noqa: E402

from pages import common  # noqa: E402

st.set_page_config(page_title="Embedding console", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page(str(ROOT / "pages" / "upload.py"), title="Upload", icon=":material/upload_file:", default=True),
    st.Page(str(ROOT / "pages" / "generate.py"), title="Generate", icon=":material/memory:"),
    st.Page(str(ROOT / "pages" / "explore.py"), title="Explore", icon=":material/scatter_plot:"),
    st.Page(str(ROOT / "pages" / "evaluate.py"), title="Evaluate", icon=":material/fact_check:"),
    st.Page(str(ROOT / "pages" / "export_push.py"), title="Export & push", icon=":material/cloud_upload:"),
    st.Page(str(ROOT / "pages" / "graph.py"), title="Graph", icon=":material/account_tree:"),
]


def _signed_out() -> None:
    """The only page before sign-in: whatever page URL was asked for, nothing of it runs."""


if common.password_gate():
    common.sidebar(common.workspace())
    st.navigation(PAGES).run()
else:  # the gate showed the sign-in form (or why there is none); every URL lands on this empty page
    st.navigation([st.Page(_signed_out, title="Sign in", default=True)], position="hidden").run()
