"""The embedding console: turn exported records into vectors, look at them, and put them into Neo4j.

`console/` is plain Python (no Streamlit, no Django): the CLI, the Streamlit pages and the backend are thin shells
over it. Its subpackages follow the data's way, files -> records -> vectors -> sinks:

- :mod:`console.files`: reading and checking the input files, and the embedding files the generator writes;
- :mod:`console.generation`: models, the embedding engine and its backends, checkpoints, the generate pipeline,
  Ray, and the query-embedding service;
- :mod:`console.explore`: looking at vectors (the map, clusters, curation of what is left out);
- :mod:`console.search`: search quality (query sets, fusion, evaluation);
- :mod:`console.sinks`: where vectors go (a push to Neo4j or to the backend; :mod:`console.sinks.neo4j`);
- :mod:`console.app`: the web console's own state (background jobs, the work folder, who may sign in).

Beside them, at the top: :mod:`console.errors` and :mod:`console.progress` (used by every stage),
:mod:`console.options` (the generate options, defined once) and :mod:`console.cli` (the command line).
``tests/test_layout.py`` states which subpackage may import which; docs/DESIGN.md has the module map.
"""

__version__ = "0.1.0"
