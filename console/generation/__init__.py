"""Records -> vectors: where a model loads from (:mod:`~console.generation.models`,
:mod:`~console.generation.devmodels`), the :class:`~console.generation.engine.Embedder` and its CPU backends
(:mod:`~console.generation.backends`), batch checkpoints (:mod:`~console.generation.checkpoint`), the generate
pipeline in named stages (:mod:`~console.generation.generate`, with its status file, tracker and reuse of earlier
runs in their own modules), the Ray Data engine (:mod:`~console.generation.rayengine`) and the OpenAI-compatible
query-embedding service (:mod:`~console.generation.serve`). Reads :mod:`console.files`; knows nothing of Neo4j.
"""
