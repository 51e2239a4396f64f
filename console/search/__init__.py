"""Search quality: labelled query sets (:mod:`~console.search.querysets`), the one fusion of keyword and semantic
rankings that the backend and the console share (:mod:`~console.search.fusion`), and the evaluation of the three
modes with ranx metrics and paired tests (:mod:`~console.search.evaluate`). No Neo4j here: the backend's
``evaluate_search`` runs the same evaluation against the live graph.
"""
