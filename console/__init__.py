"""The embedding console: turn exported records into vectors, look at them, and put them into Neo4j.

`console/` is plain Python (no Streamlit, no Django): the CLI, the Streamlit pages and the backend are thin shells
over it. See docs/DESIGN.md for the module layout and the contracts between modules.
"""

__version__ = "0.1.0"
