"""Looking at vectors: the map (:mod:`~console.explore.projection`, UMAP; :mod:`~console.explore.mapfigure`, its
plotly figure), clusters named by their words (:mod:`~console.explore.clusters`), and the operator's exclusions
(:mod:`~console.explore.curation`), which downloads and pushes honour. Reads embedding files through
:mod:`console.files`.
"""
