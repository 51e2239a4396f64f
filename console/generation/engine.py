"""The embedding engine: any sentence-transformers model, batches we control, OOM halving, input order kept.

`Embedder.iter_batches(texts)` sorts the texts by length (longest first, so each batch pads little), encodes them
batch by batch with `SentenceTransformer.encode`, and yields each finished batch as `Batch(indices, vectors,
batch_size, messages)` (the generator checkpoints each one as it comes). `Embedder.encode(texts)`, the one entry
point for whole lists, consumes it and returns float32 vectors in input order, reporting `progress(Progress)`.

Prompts: documents are encoded with the model's document prompt ("document", "passage" or "corpus" in
`model.prompts`) or with no prompt at all, never with the query instruction (`encode_document` says so by name, as
sentence-transformers 5 does); `encode_query` uses the query prompt ("query", "search_query", ...). Matryoshka `dimensions`: vectors are cut to the first N values, then
re-normalised (when `normalize`). CUDA out of memory: the batch is halved (down to 1) and retried; nothing is lost.
`backend="onnx"|"openvino"|"auto"`, `quantize="int8"`: the transformer runs exported (console/generation/backends.py).
`max_tokens` / `overlap` (iter_batches, encode): token-budget batching and tokenisation ahead of the model.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np

from console.errors import ModelError, ModelLoadError, OptionError
from console.options import DEFAULT_MODEL, DEVICES, DTYPES
from console.progress import Progress

log = logging.getLogger(__name__)

QUERY_PROMPT_NAMES = ("query", "search_query", "retrieval.query", "query_prompt", "retrieval_query")
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus", "search_document", "retrieval.passage")


def resolve_device(device: str = "auto") -> tuple[str, str | None]:
    """(device, message): auto -> cuda when a CUDA GPU is visible, else cpu; cuda without a GPU -> cpu + message."""
    import torch

    if device not in DEVICES and not device.startswith("cuda:"):
        raise OptionError(f"--device must be one of {', '.join(DEVICES)}, not {device!r}")
    has_cuda = torch.cuda.is_available()
    if device == "auto":
        return ("cuda" if has_cuda else "cpu"), (None if has_cuda else "no CUDA GPU found; running on the CPU")
    if device.startswith("cuda") and not has_cuda:
        return "cpu", f"--device {device} asked for, but no CUDA GPU is visible; running on the CPU instead"
    return device, None


def resolve_dtype(dtype: str, device: str) -> str:
    """auto -> bfloat16 on a GPU that supports it, else float16 on CUDA; float32 on the CPU."""
    import torch

    if dtype not in DTYPES:
        raise OptionError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def gpu_memory_mb() -> float | None:
    """Peak CUDA memory allocated by this process (MB), or None on CPU."""
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except Exception:  # pragma: no cover
        pass
    return None


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower() and "cuda" in str(exc).lower()


def truncate_and_normalize(vectors: np.ndarray, dimensions: int | None, normalize: bool) -> np.ndarray:
    """Matryoshka: keep the first `dimensions` values; then scale each row to length 1 when `normalize`."""
    out = np.asarray(vectors, dtype=np.float32)
    if dimensions is not None:
        out = out[:, :dimensions]
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(out, dtype=np.float32)


class Batch(NamedTuple):
    """One finished batch of `Embedder.iter_batches`."""
    indices: np.ndarray  # positions in the input
    vectors: np.ndarray  # float32, one row per index
    batch_size: int  # the batch size in use now (after any OOM halving)
    messages: tuple[str, ...] = ()  # what happened since the previous batch (OOM halving), for the user
    max_tokens: int | None = None  # the token budget in use now (after any OOM halving); None: count-based


def length_order(texts: Sequence[str]) -> np.ndarray:
    """Indices of `texts`, longest first (stable), so that each batch holds texts of similar length."""
    return np.argsort([-len(t) for t in texts], kind="stable")


def next_batch(order: np.ndarray, lengths: np.ndarray | None, start: int, size: int,
               max_tokens: int | None) -> np.ndarray:
    """The indices of the batch beginning at `start` in `order` (longest first): `size` texts, or with a token
    budget as many as keep count x the longest one's tokens within `max_tokens` (at least one, at most `size`)."""
    if lengths is None or max_tokens is None:
        return order[start:start + size]
    longest = max(1, int(lengths[order[start]]))
    return order[start:start + max(1, min(size, max_tokens // longest))]


class Embedder:
    """A sentence-transformers model with the console's options. See the module docstring."""

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "auto", dtype: str = "auto",
                 dimensions: int | None = None, normalize: bool = True, max_length: int | None = None,
                 local_files_only: bool | None = None, backend: str = "torch", quantize: str = "none"):
        import torch
        from sentence_transformers import SentenceTransformer

        from console.generation.backends import check_backend
        from console.generation.models import hub_offline, hub_reachable, resolve_model, shipped_models_hint

        self.model_name = str(model)  # as given (a short name stays short in the .meta.json: each side resolves it)
        source = resolve_model(self.model_name)
        self.device, self.device_message = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        check_backend(backend, quantize, self.device, self.dtype)  # before minutes of loading
        self.normalize = bool(normalize)
        if local_files_only is None:  # an unreachable hub: the cache or nothing, at once (not minutes of retries)
            local_files_only = Path(source).exists() or hub_offline() or not hub_reachable()
        torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[self.dtype]
        try:
            self.model = SentenceTransformer(source, device=self.device, local_files_only=local_files_only,
                                             model_kwargs={"dtype": torch_dtype})
        except (OSError, ValueError) as exc:  # ValueError: a folder without a model ("Unrecognized model in …")
            if Path(source).exists() or not local_files_only:
                hint = str(exc).splitlines()[0]
            else:
                hint = "it is not a local folder and the model hub cannot be reached (HF_HUB_OFFLINE=1 or no network)"
            raise ModelLoadError(f"cannot load model {self.model_name!r}: {hint} — pass --model with a local "
                                 "sentence-transformers folder, a model id that can be downloaded, or a model shipped "
                                 f"here: {shipped_models_hint()}") from exc
        self.model.to(torch_dtype)
        if max_length is not None:
            if max_length < 1:
                raise OptionError("--max-length must be at least 1")
            self.model.max_seq_length = int(max_length)
        self.max_length = self.model.max_seq_length
        self.native_dimensions = int(self.model.get_embedding_dimension())
        if dimensions is not None and not 1 <= dimensions <= self.native_dimensions:
            raise OptionError(f"--dimensions {dimensions} is not possible: {self.model_name} gives "
                              f"{self.native_dimensions}-d vectors (choose 1..{self.native_dimensions})")
        self.dimensions = int(dimensions or self.native_dimensions)
        self._truncate = dimensions if dimensions and dimensions < self.native_dimensions else None
        prompts = dict(self.model.prompts or {})
        self.query_prompt_name = next((n for n in QUERY_PROMPT_NAMES if prompts.get(n)), None)
        self.query_prompt = prompts.get(self.query_prompt_name) if self.query_prompt_name else None
        # The document prompt, if the model has a non-empty one; else no prompt (never the default/query one).
        self.document_prompt_name = next((n for n in DOCUMENT_PROMPT_NAMES if prompts.get(n)), None)
        self.document_prompt = prompts[self.document_prompt_name] if self.document_prompt_name else ""
        self.batch_messages: list[str] = []
        self.export_dir: Path | None = None  # the exported model, for --backend onnx/openvino
        self.backend, self.quantize, self.backend_message = self._use_backend(backend, quantize)

    def _use_backend(self, backend: str, quantize: str) -> tuple[str, str, str | None]:
        """(backend, quantize, message): torch as loaded, or the transformer swapped for its exported model."""
        if backend == "torch":
            return "torch", "none", None
        from console.generation import backends

        message = None
        if backend == "auto":
            fingerprint = backends.weights_fingerprint(self.model[0].auto_model)
            backend, quantize, message = backends.pick_auto(fingerprint, self.device, self.dtype)
            if backend == "torch":
                return backend, quantize, message
        self.export_dir = backends.use_backend(self.model, self.model_name, backend, quantize)
        return backend, quantize, message

    @property
    def tokenize_ahead(self) -> bool:
        """Whether `overlap` pays: on CUDA the CPU tokenises the next batch while the GPU runs this one; on the CPU
        the tokeniser would only take cores from the model. (The vectors are the same either way.)"""
        return str(self.device).startswith("cuda")

    def describe(self) -> dict:
        """Metadata written next to the vectors."""
        return {"model": self.model_name, "dimensions": self.dimensions, "normalized": self.normalize,
                "dtype": self.dtype, "device": self.device, "max_length": self.max_length,
                "prompt": self.document_prompt_name, "query_prompt": self.query_prompt,
                "backend": self.backend, "quantize": self.quantize}

    def _encode_batch(self, texts: list[str], prompt: str) -> np.ndarray:
        out = self.model.encode(texts, prompt=prompt, batch_size=len(texts), convert_to_numpy=True,
                                normalize_embeddings=False, show_progress_bar=False)
        return truncate_and_normalize(out, self._truncate, self.normalize)

    def _prompt(self, prompt_name: str | None, prompt: str | None) -> str:
        """The prompt text to use: `prompt` as given, else the model's prompt named `prompt_name`, else the
        document prompt."""
        if prompt is not None:
            return prompt
        if prompt_name is None:
            return self.document_prompt
        if prompt_name not in self.model.prompts:
            raise OptionError(f"the model has no prompt named {prompt_name!r} "
                              f"(it has: {', '.join(self.model.prompts) or 'none'})")
        return self.model.prompts[prompt_name]

    def iter_batches(self, texts: Sequence[str], *, batch_size: int = 16, prompt_name: str | None = None,
                     prompt: str | None = None, max_tokens: int | None = None,
                     overlap: bool = False) -> Iterator[Batch]:
        """Encode `texts` longest first, yielding each finished `Batch` (input indices, their vectors, the batch
        size now in use, OOM messages since the last batch). Every index comes exactly once; a CUDA out-of-memory
        error halves the batch size (down to 1) and retries, so nothing is lost.

        `max_tokens` (token-budget batching): texts sorted by token count (prompt included, cut at max_length), and
        each batch cut at `max_tokens` padded tokens (its count x its longest text), `batch_size` texts at most; a
        text over the budget makes a batch of its own (never dropped, never split).
        `overlap`: the next batch is tokenised in a background thread while the model runs this one. Either gives
        the vectors of the plain path (same model calls on other groupings; tests/test_engine.py)."""
        if batch_size < 1:
            raise OptionError("--batch-size must be at least 1")
        if max_tokens is not None and max_tokens < 1:
            raise OptionError("max_tokens must be at least 1")
        prompt = self._prompt(prompt_name, prompt)
        texts = list(texts)
        if max_tokens is None and not overlap:
            yield from self._plain_batches(texts, length_order(texts), int(batch_size), prompt)
            return
        lengths = self.token_lengths(texts, prompt) if max_tokens is not None else None
        order = length_order(texts) if lengths is None else np.argsort(-lengths, kind="stable")
        yield from self._planned_batches(texts, order, lengths, int(batch_size), max_tokens, prompt, overlap)

    def _plain_batches(self, texts: list[str], order: np.ndarray, size: int, prompt: str) -> Iterator[Batch]:
        """Consecutive `size` texts of `order`, each through `SentenceTransformer.encode` (today's path)."""
        start = 0
        messages: list[str] = []
        while start < len(order):
            idx = order[start:start + size]
            try:
                vectors = self._encode_batch([texts[i] for i in idx], prompt)
            except Exception as exc:  # noqa: BLE001 - only CUDA OOM is handled, the rest re-raised
                if not _is_oom(exc):
                    raise
                size = self._halve_after_oom(size, exc)
                messages.append(self.batch_messages[-1])
                continue
            start += len(idx)
            yield Batch(idx, vectors, size, tuple(messages))
            messages = []

    def token_lengths(self, texts: Sequence[str], prompt: str = "") -> np.ndarray:
        """Tokens the model reads per text: the prompt and special tokens included, cut at `max_length`."""
        ids = self.model.tokenizer([prompt + t for t in texts], add_special_tokens=True, truncation=True,
                                   max_length=self.max_length, verbose=False)["input_ids"]
        return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(texts))

    def _tokenize(self, texts: list[str], prompt: str) -> dict:
        return self.model.preprocess(texts, prompt=prompt or None)

    def _embed_features(self, features: dict) -> np.ndarray:
        """The model's forward on tokenised features, as `SentenceTransformer.encode` runs it."""
        import torch
        from sentence_transformers.util import batch_to_device

        with torch.inference_mode():
            out = self.model(batch_to_device(features, self.model.device))["sentence_embedding"]
            out = out.float().cpu().numpy()
        return truncate_and_normalize(out, self._truncate, self.normalize)

    def _planned_batches(self, texts: list[str], order: np.ndarray, lengths: np.ndarray | None, size: int,
                         max_tokens: int | None, prompt: str, overlap: bool) -> Iterator[Batch]:
        """Batches cut by `next_batch`, tokenised ahead in a thread when `overlap`; OOM halves size and budget."""
        from concurrent.futures import ThreadPoolExecutor, wait

        pool = ThreadPoolExecutor(1, thread_name_prefix="tokenize") if overlap else None
        ahead = None  # (start, indices, future) of the batch tokenised in the background
        start, messages = 0, []
        try:
            while start < len(order):
                if ahead is not None and ahead[0] == start:
                    idx, features = ahead[1], ahead[2].result()
                else:
                    idx = next_batch(order, lengths, start, size, max_tokens)
                    features = self._tokenize([texts[i] for i in idx], prompt)
                ahead = None
                following = start + len(idx)
                if pool is not None and following < len(order):
                    nxt = next_batch(order, lengths, following, size, max_tokens)
                    ahead = (following, nxt, pool.submit(self._tokenize, [texts[i] for i in nxt], prompt))
                try:
                    vectors = self._embed_features(features)
                except Exception as exc:  # noqa: BLE001 - only CUDA OOM is handled, the rest re-raised
                    if not _is_oom(exc):
                        raise
                    size = self._halve_after_oom(min(size, len(idx)), exc)
                    max_tokens = max(1, max_tokens // 2) if max_tokens else None
                    messages.append(self.batch_messages[-1])
                    if ahead is not None:  # let it finish: never two tokenisations at once (one tokenizer)
                        wait([ahead[2]])
                    ahead = None
                    continue
                start = following
                yield Batch(idx, vectors, size, tuple(messages), max_tokens)
                messages = []
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _halve_after_oom(self, size: int, exc: BaseException) -> int:
        import torch

        torch.cuda.empty_cache()
        if size == 1:
            raise ModelError("CUDA out of memory even with batch size 1 — use --max-length to cut long "
                             "texts, --dtype float16, or --device cpu") from exc
        new = max(1, size // 2)
        message = f"CUDA out of memory at batch size {size}; going on with batch size {new}"
        log.warning(message)
        self.batch_messages.append(message)
        return new

    def encode(self, texts: Sequence[str], *, batch_size: int = 16, prompt_name: str | None = None,
               prompt: str | None = None, progress: Callable[[Progress], None] | None = None,
               label: str = "", max_tokens: int | None = None, overlap: bool = False) -> np.ndarray:
        """Vectors (float32, shape (len(texts), dimensions)) in input order.

        `prompt_name` picks one of the model's prompts; by default texts are documents (the model's document
        prompt, or none). `progress(Progress)` after each batch, and for each OOM message. `max_tokens`, `overlap`:
        token-budget batching and tokenisation ahead of the model (see `iter_batches`).
        """
        texts = list(texts)
        result = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        done = 0
        t0 = time.monotonic()
        for batch in self.iter_batches(texts, batch_size=batch_size, prompt_name=prompt_name, prompt=prompt,
                                       max_tokens=max_tokens, overlap=overlap):
            result[batch.indices] = batch.vectors
            done += len(batch.indices)
            if not progress:
                continue
            for message in batch.messages:
                progress(Progress(done=done - len(batch.indices), total=len(texts), label=label,
                                  batch_size=batch.batch_size, gpu_mem_mb=gpu_memory_mb(), message=message))
            elapsed = time.monotonic() - t0
            rate = done / elapsed if elapsed > 0 else None
            eta = (len(texts) - done) / rate if rate else None
            progress(Progress(done=done, total=len(texts), label=label, rate=rate, eta_s=eta,
                              batch_size=batch.batch_size, gpu_mem_mb=gpu_memory_mb()))
        return result

    def encode_document(self, texts: Sequence[str], **kw) -> np.ndarray:
        """Vectors for documents (the items to search): the model's document prompt, or none. Same as `encode`."""
        return self.encode(texts, **kw)

    def encode_query(self, texts: Sequence[str], **kw) -> np.ndarray:
        """Vectors for search queries, with the model's query prompt (e.g. Qwen3's "Instruct: ...\\nQuery:")."""
        kw.setdefault("prompt", self.query_prompt if self.query_prompt is not None else "")
        return self.encode(texts, **kw)

