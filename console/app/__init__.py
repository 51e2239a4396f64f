"""The web console's own state, below its Streamlit pages: background generation jobs
(:mod:`~console.app.jobs`), the work folder with its uploads, runs and caches (:mod:`~console.app.workspace`), and who
may use the console (:mod:`~console.app.access`). Nothing here is needed by the CLI or the backend.
"""
