"""Where a model name would be loaded from, before a run starts: a local folder, the local Hugging Face cache, or a
download from the model hub (refused when HF_HUB_OFFLINE is set). The console shows this next to the model field,
so that typing a name never fetches from the network unannounced. Plain Python: no Streamlit import.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LOCAL, CACHED, DOWNLOAD, UNAVAILABLE = "local", "cached", "download", "unavailable"


def hub_offline(env=None) -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (1/true/yes/on)."""
    env = os.environ if env is None else env
    return env.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    for filename in ("config.json", "modules.json"):
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return True
    return False


@dataclass(frozen=True)
class ModelSource:
    """``kind``: local | cached | download | unavailable; ``message``: what the page says (None for local)."""

    name: str
    kind: str
    message: str | None = None

    @property
    def may_start(self) -> bool:
        return self.kind != UNAVAILABLE


def model_source(name: str, env=None) -> ModelSource:
    """Where :class:`console.engine.Embedder` would find ``name``, without loading or downloading anything."""
    name = name.strip()
    if Path(name).expanduser().is_dir():
        return ModelSource(name, LOCAL)
    # sentence-transformers also finds a bare name under its own organisation
    candidates = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    try:
        if any(_cached(c) for c in candidates):
            return ModelSource(name, CACHED, f"`{name}` comes from the local model cache (no download).")
    except Exception:  # noqa: BLE001 - a name the hub would refuse (bad characters): it will not load either
        pass
    if hub_offline(env):
        return ModelSource(name, UNAVAILABLE, (
            f"`{name}` is neither a folder on this server nor in the local model cache, and HF_HUB_OFFLINE is set: "
            "it cannot be downloaded. Enter a local model folder (or a cached model), or unset HF_HUB_OFFLINE."))
    return ModelSource(name, DOWNLOAD, (
        f"`{name}` is neither a folder on this server nor in the local model cache: the run downloads it from the "
        "Hugging Face hub (set HF_HUB_OFFLINE=1 to forbid downloads)."))
