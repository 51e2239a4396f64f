"""Files in, files out: the records of an export (.json, .jsonl, .csv) read as they are and judged
(:mod:`~console.files.records`, :mod:`~console.files.validate`), and the embedding files the generator writes and
every later stage reads (:mod:`~console.files.embfiles`: their names, formats and ``.meta.json``). Imports nothing
of the console but :mod:`console.errors`.
"""
