"""`embedding-console serve`: an OpenAI-compatible embeddings endpoint over the console's own `Embedder`, for the
machine with the GPU, so that the backend embeds search queries there (``BACKEND_QUERY_EMBEDDER=remote``).

    embedding-console serve --model MODEL_OR_FOLDER --host 127.0.0.1 --port 8080

- ``POST /v1/embeddings`` ``{"model", "input": str | [str], "dimensions"?, "encoding_format"?: "float"|"base64"}``
  answers ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model"}``, the shape HF
  TEI, vLLM and Infinity serve. ``GET /v1/models`` lists the one model; ``GET /health`` says it is up.
- The input is encoded **as given, with no prompt** (as those servers do): the client applies the query prompt
  (the backend sends the prompt recorded in the type's EmbeddingSpace before the query text). Vectors are
  L2-normalised; ``dimensions`` (Matryoshka) keeps the first N values, then normalises, as the generator does.
- A request naming another model gets 404 ``model_not_found`` (names compare by their last two path parts, so a
  folder and its model id both match).
- Concurrent requests are encoded together: a single thread runs the model; requests that arrive while it is busy
  (and, with ``--batch-wait-ms``, for that long after the first) become one batch of at most ``--max-batch`` texts.
- Binds 127.0.0.1 by default. With ``EMBEDDINGS_API_KEY`` set, every request needs ``Authorization: Bearer <key>``;
  binding any other address without that key is refused (no server open to the network without a password).
"""
from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePath
from typing import Callable

import numpy as np

from console.errors import OptionError

log = logging.getLogger(__name__)
API_KEY_ENV = "EMBEDDINGS_API_KEY"
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_INPUTS = 512


def served_label(name: str) -> str:
    """A model name compared by its last two path parts (``org/name``, ``.../org/name``, ``models--org--name``)."""
    path = PurePath(str(name).rstrip("/"))
    for part in path.parts:
        if part.startswith("models--"):
            return part[len("models--"):].replace("--", "/")
    return "/".join(path.parts[-2:])


@dataclass
class _Job:
    texts: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    vectors: np.ndarray | None = None
    error: BaseException | None = None


class MicroBatcher:
    """Encodes the texts of concurrent callers together: one thread runs ``encode``; the jobs queued while it works
    (and, with ``wait_s``, those arriving that long after the first) form the next batch, up to ``max_batch``
    texts. ``submit`` blocks until its own vectors are ready, or raises what ``encode`` raised."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], *, max_batch: int = 64, wait_s: float = 0.0):
        self.encode, self.max_batch, self.wait_s = encode, max(1, int(max_batch)), max(0.0, float(wait_s))
        self.batch_sizes: list[int] = []  # texts per encode call (the last 1,000), for tests and /health
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str]) -> np.ndarray:
        job = _Job(list(texts))
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.vectors

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, count, stop = [first], len(first.texts), False
        deadline = time.monotonic() + self.wait_s
        while count < self.max_batch:
            try:
                remaining = deadline - time.monotonic()
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stop = True
                break
            jobs.append(job)
            count += len(job.texts)
        return jobs, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = self._collect(first)
            self._encode(jobs)
            if stop:
                return

    def _encode(self, jobs: list[_Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        self.batch_sizes = [*self.batch_sizes[-999:], len(texts)]
        try:
            vectors = self.encode(texts)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
            for job in jobs:
                job.error = exc
                job.done.set()
            return
        start = 0
        for job in jobs:
            job.vectors = vectors[start:start + len(job.texts)]
            start += len(job.texts)
            job.done.set()


class RequestError(Exception):
    def __init__(self, status: int, message: str, code: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.code = status, code


def parse_request(body: dict, served: str, native_dimensions: int) -> tuple[list[str], int | None, str]:
    """The texts, the dimensions asked for (or None) and the encoding format of an embeddings request, checked."""
    if not isinstance(body, dict):
        raise RequestError(400, "The body must be a JSON object with 'model' and 'input'")
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or served_label(model) != served_label(served)):
        raise RequestError(404, f"This server serves the model {served!r}, not {model!r}", "model_not_found")
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise RequestError(400, "'input' must be a string or a non-empty list of strings (token ids are not taken)")
    if len(texts) > MAX_INPUTS:
        raise RequestError(413, f"{len(texts)} inputs in one request: at most {MAX_INPUTS}")
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)
                                   or not 1 <= dimensions <= native_dimensions):
        raise RequestError(400, f"'dimensions' must be a whole number from 1 to {native_dimensions}")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise RequestError(400, "'encoding_format' must be 'float' or 'base64'")
    return texts, dimensions, encoding


def embeddings_answer(vectors: np.ndarray, served: str, encoding: str) -> dict:
    def encoded(row: np.ndarray):
        if encoding == "base64":
            return base64.b64encode(np.ascontiguousarray(row, dtype="<f4").tobytes()).decode("ascii")
        return row.tolist()

    return {"object": "list", "model": served,
            "data": [{"object": "embedding", "index": i, "embedding": encoded(row)} for i, row in enumerate(vectors)]}


class EmbeddingService:
    """What the HTTP handler calls: the model's name, its vectors through the micro-batcher, the API key."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], *, served: str, dimensions: int,
                 api_key: str = "", max_batch: int = 64, wait_s: float = 0.0):
        from console.generation.engine import truncate_and_normalize

        self.served, self.dimensions, self.api_key = served, int(dimensions), api_key
        self._truncate = truncate_and_normalize
        self.batcher = MicroBatcher(encode, max_batch=max_batch, wait_s=wait_s)

    def authorised(self, header: str | None) -> bool:
        if not self.api_key:
            return True
        scheme, _, token = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())

    def embeddings(self, body) -> dict:
        texts, dimensions, encoding = parse_request(body, self.served, self.dimensions)
        vectors = self.batcher.submit(texts)
        if dimensions is not None and dimensions < vectors.shape[1]:
            vectors = self._truncate(vectors, dimensions, True)
        return embeddings_answer(vectors, self.served, encoding)

    def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.served, "object": "model", "owned_by": "embedding-console",
                                            "dimensions": self.dimensions}]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the backend reuses its connection
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK wait between them
    server_version = "embedding-console"
    service: EmbeddingService  # set on the subclass made by make_server

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str) -> None:
        self._send(status, {"error": {"message": message, "type": code, "code": code}})

    def do_GET(self):  # noqa: N802 - http.server's name
        if not self.service.authorised(self.headers.get("Authorization")):
            return self._error(401, f"Missing or wrong 'Authorization: Bearer <{API_KEY_ENV}>'", "unauthorized")
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            return self._send(200, self.service.models())
        if self.path.rstrip("/") == "/health":
            return self._send(200, {"status": "ok", "model": self.service.served})
        return self._error(404, f"No such path {self.path!r}: POST /v1/embeddings, GET /v1/models", "not_found")

    def do_POST(self):  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            return self._error(413, f"A body of at most {MAX_BODY_BYTES} bytes, with its Content-Length",
                               "invalid_request_error")
        raw = self.rfile.read(length) if length else b""
        if not self.service.authorised(self.headers.get("Authorization")):
            return self._error(401, f"Missing or wrong 'Authorization: Bearer <{API_KEY_ENV}>'", "unauthorized")
        if self.path.rstrip("/") not in ("/v1/embeddings", "/embeddings"):
            return self._error(404, f"No such path {self.path!r}: POST /v1/embeddings", "not_found")
        try:
            return self._send(200, self.service.embeddings(json.loads(raw or b"null")))
        except json.JSONDecodeError as exc:
            return self._error(400, f"The body is not JSON: {exc}", "invalid_request_error")
        except RequestError as exc:
            return self._error(exc.status, str(exc), exc.code)
        except Exception:  # noqa: BLE001 - the model failed: logged here, a short answer there
            log.exception("encoding failed")
            return self._error(500, "The model failed to encode the input: see the server's log", "server_error")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server(ThreadingHTTPServer):
    """A thread per connection; a listen backlog for bursts of concurrent clients (http.server's default of 5 made
    connections fail under 64 clients on a GPU machine)."""
    daemon_threads = True
    request_queue_size = 1024  # the kernel caps it at net.core.somaxconn


def make_server(service: EmbeddingService, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """The HTTP server (not started); refuses a non-loopback ``host`` when the service has no API key."""
    if not is_loopback(host) and not service.api_key:
        raise OptionError(f"--host {host} opens the server to the network: set {API_KEY_ENV} (clients send "
                          "'Authorization: Bearer <key>'; the backend's BACKEND_EMBEDDINGS_API_KEY), or bind 127.0.0.1")
    handler = type("BoundHandler", (Handler,), {"service": service})
    return Server((host, port), handler)


def embedder_service(model: str, *, device: str = "auto", dtype: str = "auto", served_name: str | None = None,
                     max_batch: int = 64, wait_ms: float = 0.0, max_length: int | None = None,
                     api_key: str | None = None, backend: str = "torch", quantize: str = "none") -> EmbeddingService:
    """An :class:`EmbeddingService` over ``console.generation.engine.Embedder`` (inputs encoded with no prompt)."""
    from console.generation.engine import Embedder

    embedder = Embedder(model, device=device, dtype=dtype, max_length=max_length, backend=backend, quantize=quantize)

    def encode(texts: list[str]) -> np.ndarray:
        return embedder.encode(texts, batch_size=max(len(texts), 1), prompt="")

    key = os.environ.get(API_KEY_ENV, "") if api_key is None else api_key
    return EmbeddingService(encode, served=served_name or model, dimensions=embedder.dimensions, api_key=key,
                            max_batch=max_batch, wait_s=wait_ms / 1000.0)
