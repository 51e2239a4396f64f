"""The embedding console: `streamlit run app.py` (settings in .streamlit/config.toml).

Upload export files, generate embeddings in the background with progress, explore them on a UMAP map with a
similarity preview, download them or push them into Neo4j. Everything is kept in the work folder
(env CONSOLE_WORKDIR, default ./work). Set CONSOLE_PASSWORD (or `console_password` in .streamlit/secrets.toml)
to require a password.
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

if not common.password_gate():
    st.stop()

common.sidebar(common.workspace())
page = st.navigation([
    st.Page(str(ROOT / "pages" / "upload.py"), title="Upload", icon=":material/upload_file:", default=True),
    st.Page(str(ROOT / "pages" / "generate.py"), title="Generate", icon=":material/memory:"),
    st.Page(str(ROOT / "pages" / "explore.py"), title="Explore", icon=":material/scatter_plot:"),
    st.Page(str(ROOT / "pages" / "evaluate.py"), title="Evaluate", icon=":material/fact_check:"),
    st.Page(str(ROOT / "pages" / "export_push.py"), title="Export & push", icon=":material/cloud_upload:"),
])
page.run()
