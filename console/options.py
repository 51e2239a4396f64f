"""The generate options, defined once."""
from __future__ import annotations

DEFAULT_MODEL = "Qwen/Qwen3-Embedding-0.6B"
DEVICES = ("auto", "cuda", "cpu")
DTYPES = ("auto", "float32", "float16", "bfloat16")
